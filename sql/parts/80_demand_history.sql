-- Demand history: units ordered, cancelled and returned per tenant, SKU, location, channel and
-- day, kept up to date as orders are placed, cancelled and returned, so that forecasting and
-- planning never sum the order lines at read time.
--
-- Two tables, because a summary row that every order updates is a hot row: every order for a
-- best seller on one day would wait for the previous one's commit, and an order (which writes
-- the summary before it reserves stock) and a cancellation (which releases stock before it
-- writes the summary) would take the two locks in opposite orders and deadlock. So:
--   oms.demand_deltas   append-only: the statement triggers on order_lines insert one row per
--                       (SKU, location, channel, day) a statement changed; nothing is updated,
--                       so no order ever waits for another one here;
--   oms.demand_history  the summary: oms.compact_demand_history() folds the deltas into it (the
--                       scheduled job "demand_history" does, and planning does before it reads).
-- Readers add both (view oms.daily_demand), so a delta counts from the moment it commits.
--
-- Definitions: the day is the UTC date of orders.placed_at; "ordered" is the lines' qty,
-- "cancelled" their qty_cancelled, "returned" their qty_returned; demand = ordered - cancelled.
-- Returns are kept apart and not subtracted from demand: a returned unit comes back into on_hand
-- through its return movement, and subtracting it from demand as well would count it twice in
-- planning. A line not yet assigned to a location (a backorder waiting for supply) counts with
-- location NULL, and moves to its location when it is allocated.

CREATE TABLE oms.demand_history (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int,
	channel_id		int NOT NULL,
	day				date NOT NULL,
	ordered			bigint NOT NULL DEFAULT 0,
	cancelled		bigint NOT NULL DEFAULT 0,
	returned		bigint NOT NULL DEFAULT 0,
	lines			bigint NOT NULL DEFAULT 0,
	CONSTRAINT demand_history_key UNIQUE NULLS NOT DISTINCT (tenant_id, item_id, location_id, channel_id, day)
);
COMMENT ON TABLE oms.demand_history IS 'Daily demand summary per SKU, location (NULL: not yet assigned), channel and UTC day: units ordered, cancelled, returned and lines; add oms.demand_deltas (or read oms.daily_demand) for the latest changes';
COMMENT ON COLUMN oms.demand_history.lines IS 'Order lines counted in this row';

CREATE TABLE oms.demand_deltas (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int,
	channel_id		int NOT NULL,
	day				date NOT NULL,
	ordered			bigint NOT NULL,
	cancelled		bigint NOT NULL,
	returned		bigint NOT NULL,
	lines			bigint NOT NULL
);
CREATE INDEX demand_deltas_item_idx ON oms.demand_deltas (tenant_id, item_id);
COMMENT ON TABLE oms.demand_deltas IS 'Append-only changes of demand written by the order_lines triggers, not yet folded into oms.demand_history by oms.compact_demand_history()';

-- Per SKU and location, the two sums that planning's demand mean and deviation need, over the
-- window of days planning reads: total = sum of the daily demand, sumsq = sum of its squares (a
-- day's demand summed over channels first). Planning then reads one row per SKU-location instead
-- of one per day. The rows are kept equal to oms.demand_history by its two writers:
-- oms.compact_demand_history() adds each folded day to the rows whose window holds it, and
-- oms.rebuild_demand_history() rebuilds them; oms.refresh_demand_stats() moves the windows (once
-- a day: the days that enter are added, those that leave are subtracted). Any other write into
-- oms.demand_history (an import straight into the table) marks the rows of the SKU-locations it
-- touches stale (window_end NULL) through the triggers below; planning sums the history for a
-- stale row, and oms.refresh_demand_stats() recomputes it. A SKU-location with demand history
-- always has a row; one without a row has no demand. Planning uses a row only when its window is
-- the one it needs ([today - history_days, today)), and otherwise sums the history. Every row is
-- rewritten once a day (its window moves): fillfactor 50 leaves room on its page for the new
-- version, so the update need not touch the index.
CREATE TABLE oms.demand_stats (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	window_end		date,
	window_days		int NOT NULL CHECK (window_days > 0),
	total			bigint NOT NULL,
	sumsq			bigint NOT NULL,
	PRIMARY KEY (tenant_id, item_id, location_id)
) WITH (fillfactor = 50);
COMMENT ON TABLE oms.demand_stats IS 'Per SKU and location, the sum (total) and sum of squares (sumsq) of the daily demand (ordered - cancelled, all channels) over the days [window_end - window_days, window_end) of oms.demand_history (window_end NULL: stale, to be recomputed); kept by compaction and oms.refresh_demand_stats() for planning';

-- The days of demand a window moves over: history rows are found by day.
CREATE INDEX demand_history_day_idx ON oms.demand_history (tenant_id, day);

-- Writes into oms.demand_history other than compaction and rebuild (which keep the statistics
-- themselves and say so with the transaction-local setting oms._stats_kept, reverted when they
-- return) mark the statistics of the SKU-locations they touch stale.
CREATE FUNCTION oms._demand_history_written() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF pg_catalog.current_setting('oms._stats_kept', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO oms.demand_stats AS st (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT DISTINCT n.tenant_id, n.item_id, n.location_id, NULL::date, 1, 0, 0
		  FROM new_rows n WHERE n.location_id IS NOT NULL
		ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE SET window_end = NULL;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE oms.demand_stats st SET window_end = NULL
		  FROM (SELECT DISTINCT o.tenant_id, o.item_id, o.location_id FROM old_rows o WHERE o.location_id IS NOT NULL) o
		 WHERE st.tenant_id = o.tenant_id AND st.item_id = o.item_id AND st.location_id = o.location_id;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_history_written() IS 'Internal: statement trigger on oms.demand_history: a write by anything but compaction or rebuild marks the statistics of the SKU-locations it touches stale (oms.demand_stats.window_end NULL)';
CREATE TRIGGER demand_history_inserted AFTER INSERT ON oms.demand_history
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
CREATE TRIGGER demand_history_updated AFTER UPDATE ON oms.demand_history
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
CREATE TRIGGER demand_history_deleted AFTER DELETE ON oms.demand_history
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
COMMENT ON TRIGGER demand_history_inserted ON oms.demand_history IS 'A direct insert marks the demand statistics of its SKU-locations stale';
COMMENT ON TRIGGER demand_history_updated ON oms.demand_history IS 'A direct update marks the demand statistics of its SKU-locations stale';
COMMENT ON TRIGGER demand_history_deleted ON oms.demand_history IS 'A direct delete marks the demand statistics of its SKU-locations stale';

-- The demand day of an order: the UTC date of placed_at (the same for every session).
CREATE FUNCTION oms.demand_day(placed_at timestamptz) RETURNS date
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN (placed_at AT TIME ZONE 'UTC')::date;
COMMENT ON FUNCTION oms.demand_day(timestamptz) IS 'The day an order counts in demand history: the UTC date of its placed_at';

-- "Today" for planning, forecasting, alerts and subscriptions: the setting oms.today when set
-- (tests, what-if runs), else the current date.
CREATE FUNCTION oms.today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN coalesce(NULLIF(pg_catalog.current_setting('oms.today'), '')::date, CURRENT_DATE);
COMMENT ON FUNCTION oms.today() IS 'The date that planning, forecasts, alerts and subscriptions treat as today: the setting oms.today, else the current date';

-- The triggers: one statement, one INSERT of the net change per key; an UPDATE that changes no
-- counted column (a state change) nets to nothing and writes nothing. They spell out
-- oms.demand_day's expression: a function with a pinned search_path is not inlined, and calling
-- it cost 10 us a row (measured).
-- A shard of a Citus cluster (README "Scale-out on Citus"): the triggers below fire on a shard of
-- order_lines, and Citus cannot join their transition tables with a distributed table. There they
-- pass their rows here as arrays: the lines' orders are read first, per tenant (a query of one
-- tenant, run on this node), and the net change per key written from an array, as the triggers'
-- own statement does on one node. p_new and p_old: the trigger's new and old rows (NULL if none).
CREATE FUNCTION oms._demand_lines_on_shard(p_new oms.order_lines[], p_old oms.order_lines[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
BEGIN
	FOR v_tenant IN
		SELECT DISTINCT x.tenant_id
		  FROM (SELECT n.tenant_id FROM pg_catalog.unnest(p_new) n UNION ALL SELECT d.tenant_id FROM pg_catalog.unnest(p_old) d) x
	LOOP
		-- the orders of the lines whose counted columns changed (a state change counts nothing and
		-- costs no query of the tables)
		v_ids := ARRAY(SELECT n.order_id
						 FROM pg_catalog.unnest(p_new) n
						 LEFT JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id
															AND d.line_no = n.line_no
						WHERE n.tenant_id = v_tenant
						  AND (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_returned)
							  IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_returned)
					   UNION
					   SELECT d.order_id
						 FROM pg_catalog.unnest(p_old) d
						 LEFT JOIN pg_catalog.unnest(p_new) n ON n.tenant_id = d.tenant_id AND n.order_id = d.order_id
															AND n.line_no = d.line_no
						WHERE d.tenant_id = v_tenant
						  AND (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_returned)
							  IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_returned));
		CONTINUE WHEN pg_catalog.cardinality(v_ids) = 0;
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT v_tenant, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
			  FROM (SELECT n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled,
						   n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
					  FROM pg_catalog.unnest(p_new) n WHERE n.tenant_id = v_tenant
					UNION ALL
					SELECT d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
					  FROM pg_catalog.unnest(p_old) d WHERE d.tenant_id = v_tenant) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.id = c.order_id
			 GROUP BY c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
			HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0) r;
		IF v_rows IS NOT NULL THEN
			INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_on_shard(oms.order_lines[], oms.order_lines[]) IS 'Internal: the demand triggers'' work on a shard of a Citus cluster, from their transition rows passed as arrays (new rows, old rows)';

CREATE FUNCTION oms._demand_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t), NULL);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.demand_deltas';

CREATE FUNCTION oms._demand_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
		  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
					   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
				  FROM new_lines n
				UNION ALL
				SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
				  FROM old_lines d) c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
		HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t),
									 ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.demand_deltas the net change of qty, qty_cancelled, qty_returned or location';

CREATE FUNCTION oms._demand_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(NULL, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of demand';

CREATE TRIGGER demand_lines_inserted AFTER INSERT ON oms.order_lines
	REFERENCING NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_inserted();
COMMENT ON TRIGGER demand_lines_inserted ON oms.order_lines IS 'Keeps demand history: new lines count as ordered on their order''s day';
CREATE TRIGGER demand_lines_updated AFTER UPDATE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_updated();
COMMENT ON TRIGGER demand_lines_updated ON oms.order_lines IS 'Keeps demand history: cancelled and returned quantities, and a line''s new location';
CREATE TRIGGER demand_lines_deleted AFTER DELETE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_deleted();
COMMENT ON TRIGGER demand_lines_deleted ON oms.order_lines IS 'Keeps demand history: deleted lines no longer count';

-- The lock that serialises the writers of oms.demand_history for one tenant.
CREATE FUNCTION oms._lock_demand_history(p_tenant int) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.demand_history'), p_tenant);
COMMENT ON FUNCTION oms._lock_demand_history(int) IS 'Internal: the transaction lock that compaction and rebuild of a tenant''s demand history take';

CREATE FUNCTION oms.compact_demand_history() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	-- One statement: the deltas it deletes are exactly those it adds (deltas that commit later
	-- are not in its snapshot and stay for the next run). Every part reads the summary as it was
	-- before the statement, so a day's demand before (q) and its change (dq) give the change of
	-- the statistics: total + dq, sumsq + (q + dq)^2 - q^2, for the rows whose window holds the
	-- day; a SKU-location seen for the first time gets its row, with the window planning would
	-- read today.
	WITH moved AS (
		DELETE FROM oms.demand_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day, pg_catalog.sum(m.ordered) AS ordered,
			   pg_catalog.sum(m.cancelled) AS cancelled, pg_catalog.sum(m.returned) AS returned,
			   pg_catalog.sum(m.lines) AS lines, pg_catalog.count(*) AS deltas
		  FROM moved m
		 GROUP BY m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day
	), upserted AS (
		INSERT INTO oms.demand_history AS h (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT s.tenant_id, s.item_id, s.location_id, s.channel_id, s.day, s.ordered, s.cancelled, s.returned, s.lines
		  FROM summed s
		 ORDER BY s.item_id, s.location_id, s.channel_id, s.day
		ON CONFLICT ON CONSTRAINT demand_history_key DO UPDATE
		   SET ordered = h.ordered + EXCLUDED.ordered, cancelled = h.cancelled + EXCLUDED.cancelled,
			   returned = h.returned + EXCLUDED.returned, lines = h.lines + EXCLUDED.lines
		RETURNING 1
	), day_change AS (
		SELECT s.item_id, s.location_id, s.day, pg_catalog.sum(s.ordered - s.cancelled) AS dq
		  FROM summed s
		 WHERE s.location_id IS NOT NULL
		 GROUP BY s.item_id, s.location_id, s.day
	), day_before AS (
		SELECT c.item_id, c.location_id, c.day, c.dq,
			   coalesce((SELECT pg_catalog.sum(h.ordered - h.cancelled) FROM oms.demand_history h
						  WHERE h.tenant_id = v_tenant AND h.item_id = c.item_id AND h.location_id = c.location_id
							AND h.day = c.day), 0) AS q
		  FROM day_change c
	), stats_changed AS (
		UPDATE oms.demand_stats st
		   SET total = st.total + x.dtotal, sumsq = st.sumsq + x.dsumsq
		  FROM (SELECT b.item_id, b.location_id, st2.window_end, st2.window_days,
					   pg_catalog.sum(b.dq) AS dtotal, pg_catalog.sum((b.q + b.dq) * (b.q + b.dq) - b.q * b.q) AS dsumsq
				  FROM day_before b
				  JOIN oms.demand_stats st2 ON st2.tenant_id = v_tenant AND st2.item_id = b.item_id AND st2.location_id = b.location_id
				 WHERE b.day >= st2.window_end - st2.window_days AND b.day < st2.window_end
				 GROUP BY b.item_id, b.location_id, st2.window_end, st2.window_days) x
		 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id
		   AND (x.dtotal <> 0 OR x.dsumsq <> 0)
		RETURNING 1
	), stats_added AS (
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, n.item_id, n.location_id, v_today, n.days,
			   coalesce(pg_catalog.sum(b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0),
			   coalesce(pg_catalog.sum(b.dq * b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0)
		  FROM (SELECT DISTINCT b.item_id, b.location_id,
					   oms._history_days(v_tenant, b.item_id, b.location_id) AS days
				  FROM day_before b
				 WHERE NOT EXISTS (SELECT FROM oms.demand_stats st
									WHERE st.tenant_id = v_tenant AND st.item_id = b.item_id AND st.location_id = b.location_id)) n
		  JOIN day_before b ON b.item_id = n.item_id AND b.location_id = n.location_id
		 GROUP BY n.item_id, n.location_id, n.days
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING
		RETURNING 1
	)
	SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_rows FROM summed s;
	-- A new day (or stale rows): the windows move (the days that enter and leave them).
	IF EXISTS (SELECT FROM oms.demand_stats st WHERE st.tenant_id = v_tenant AND st.window_end IS DISTINCT FROM v_today) THEN
		PERFORM oms.refresh_demand_stats();
	END IF;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_demand_history() IS 'Folds the current tenant''s oms.demand_deltas into oms.demand_history and its per SKU-location statistics (oms.demand_stats); returns the number of deltas folded (the scheduled job "demand_history" runs it)';

-- Moves every statistics row of the current tenant to the window planning reads today
-- ([today - history_days, today), history_days of the SKU-location's policy): a row one day
-- behind gains the day that enters and loses the one that leaves, whatever the distance (a
-- window that moved further reads the days between, at most both windows). recompute: recompute every
-- row from the history. Returns the rows changed. Compaction calls it once the day has changed;
-- a replenishment run calls it before it plans.
CREATE FUNCTION oms.refresh_demand_stats(recompute boolean DEFAULT false) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_default	int := (oms._policy_defaults() ->> 'history_days')::int;
	v_rows		bigint;
	v_stale		bigint;
	b			record;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	IF recompute THEN
		DELETE FROM oms.demand_stats st WHERE st.tenant_id = v_tenant;
		WITH pairs AS (
			SELECT DISTINCT h.item_id, h.location_id FROM oms.demand_history h
			 WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
		), target AS (
			SELECT p.item_id, p.location_id, coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM pairs p
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		)
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, t.item_id, t.location_id, v_today, t.days,
			   coalesce(pg_catalog.sum(x.q), 0), coalesce(pg_catalog.sum(x.q * x.q), 0)
		  FROM target t
		  LEFT JOIN (SELECT h.item_id, h.location_id, h.day, pg_catalog.sum(h.ordered - h.cancelled) AS q
					   FROM oms.demand_history h
					  WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
					  GROUP BY h.item_id, h.location_id, h.day) x
			ON x.item_id = t.item_id AND x.location_id = t.location_id
		   AND x.day >= v_today - t.days AND x.day < v_today
		 GROUP BY t.item_id, t.location_id, t.days
		 ORDER BY t.item_id, t.location_id;
		GET DIAGNOSTICS v_rows = ROW_COUNT;
		RETURN v_rows;
	END IF;

	-- Stale rows (written around compaction): recomputed from the history.
	UPDATE oms.demand_stats st
	   SET window_end = v_today, window_days = x.days, total = x.total, sumsq = x.sumsq
	  FROM (SELECT s0.item_id, s0.location_id, t.days,
				   coalesce((SELECT pg_catalog.sum(y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS total,
				   coalesce((SELECT pg_catalog.sum(y.q * y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS sumsq
			  FROM oms.demand_stats s0
			 CROSS JOIN LATERAL (SELECT oms._history_days(v_tenant, s0.item_id, s0.location_id) AS days) t
			 WHERE s0.tenant_id = v_tenant AND s0.window_end IS NULL) x
	 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id;
	GET DIAGNOSTICS v_stale = ROW_COUNT;

	-- The rows whose window is not today's, with their old window [os, oe) and the new [ns, ne).
	CREATE TEMP TABLE pg_temp.oms_stats_moves ON COMMIT DROP AS
	SELECT t.item_id, t.location_id, t.window_end - t.window_days AS os, t.window_end AS oe,
		   v_today - t.days AS ns, v_today AS ne, t.days
	  FROM (SELECT st.item_id, st.location_id, st.window_end, st.window_days,
				   coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM oms.demand_stats st
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = st.location_id AND s.item_id = st.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = st.location_id AND d.item_id IS NULL
			 WHERE st.tenant_id = v_tenant) t
	 WHERE t.window_end <> v_today OR t.window_days <> t.days;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows = 0 THEN
		DROP TABLE pg_temp.oms_stats_moves;
		RETURN v_stale;
	END IF;
	ANALYZE pg_temp.oms_stats_moves;
	-- Only the days at the two edges change: [min(os, ns), max(os, ns)) and [min(oe, ne),
	-- max(oe, ne)); a day counts +1 when only the new window holds it, -1 when only the old one does.
	SELECT min(LEAST(m.os, m.ns)) AS lo1, max(GREATEST(m.os, m.ns)) AS hi1,
		   min(LEAST(m.oe, m.ne)) AS lo2, max(GREATEST(m.oe, m.ne)) AS hi2
	  INTO b FROM pg_temp.oms_stats_moves m;
	UPDATE oms.demand_stats st
	   SET window_end = m.ne, window_days = m.days,
		   total = st.total + coalesce(c.dtotal, 0), sumsq = st.sumsq + coalesce(c.dsumsq, 0)
	  FROM pg_temp.oms_stats_moves m
	  LEFT JOIN (SELECT y.item_id, y.location_id, pg_catalog.sum(y.sign * y.q) AS dtotal,
						pg_catalog.sum(y.sign * y.q * y.q) AS dsumsq
				   FROM (SELECT m2.item_id, m2.location_id, h.day,
								(h.day >= m2.ns AND h.day < m2.ne)::int - (h.day >= m2.os AND h.day < m2.oe)::int AS sign,
								pg_catalog.sum(h.ordered - h.cancelled) AS q
						   FROM oms.demand_history h
						   JOIN pg_temp.oms_stats_moves m2 ON m2.item_id = h.item_id AND m2.location_id = h.location_id
						  WHERE h.tenant_id = v_tenant
							AND ((h.day >= b.lo1 AND h.day < b.hi1) OR (h.day >= b.lo2 AND h.day < b.hi2))
							AND ((h.day >= LEAST(m2.os, m2.ns) AND h.day < GREATEST(m2.os, m2.ns))
								 OR (h.day >= LEAST(m2.oe, m2.ne) AND h.day < GREATEST(m2.oe, m2.ne)))
						  GROUP BY m2.item_id, m2.location_id, h.day, m2.ns, m2.ne, m2.os, m2.oe) y
				  WHERE y.sign <> 0
				  GROUP BY y.item_id, y.location_id) c
		ON c.item_id = m.item_id AND c.location_id = m.location_id
	 WHERE st.tenant_id = v_tenant AND st.item_id = m.item_id AND st.location_id = m.location_id;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	DROP TABLE pg_temp.oms_stats_moves;
	RETURN v_stale + v_rows;
END
$$;
COMMENT ON FUNCTION oms.refresh_demand_stats(boolean) IS 'Moves the current tenant''s demand statistics (oms.demand_stats) to the windows planning reads today (adding the days that enter, subtracting those that leave); recompute: recomputes them from oms.demand_history; returns the rows changed';

CREATE FUNCTION oms.rebuild_demand_history("from" date DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	DELETE FROM oms.demand_history h
	 WHERE h.tenant_id = v_tenant AND ($1 IS NULL OR h.day >= $1);
	-- One statement, one snapshot: an order committed before it is counted from its lines and its
	-- deltas are deleted; an order committed after it keeps its deltas. (A data-modifying WITH
	-- runs to completion whether or not the rest of the statement reads it.)
	WITH gone AS (
		DELETE FROM oms.demand_deltas d
		 WHERE d.tenant_id = v_tenant AND ($1 IS NULL OR d.day >= $1)
		RETURNING 1
	)
	INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_returned), pg_catalog.count(*)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	   AND ($1 IS NULL OR o.placed_at >= ($1::timestamp AT TIME ZONE 'UTC'))
	 GROUP BY l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	-- The statistics follow the summary they are kept from.
	PERFORM oms.refresh_demand_stats(true);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_demand_history(date) IS 'Recomputes the current tenant''s demand history from its order lines, for the days from the given date on (all days when NULL); returns the number of summary rows written';

CREATE VIEW oms.daily_demand AS
SELECT i.sku, l.code AS location, c.code AS channel, x.day,
	   pg_catalog.sum(x.ordered)::bigint AS ordered, pg_catalog.sum(x.cancelled)::bigint AS cancelled,
	   pg_catalog.sum(x.returned)::bigint AS returned,
	   (pg_catalog.sum(x.ordered) - pg_catalog.sum(x.cancelled))::bigint AS demand,
	   pg_catalog.sum(x.lines)::bigint AS lines
  FROM (SELECT h.tenant_id, h.item_id, h.location_id, h.channel_id, h.day, h.ordered, h.cancelled, h.returned, h.lines
		  FROM oms.demand_history h
		 WHERE h.tenant_id = oms.current_tenant_id()
		UNION ALL
		SELECT d.tenant_id, d.item_id, d.location_id, d.channel_id, d.day, d.ordered, d.cancelled, d.returned, d.lines
		  FROM oms.demand_deltas d
		 WHERE d.tenant_id = oms.current_tenant_id()) x
  JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
  JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
  LEFT JOIN oms.locations l ON l.tenant_id = x.tenant_id AND l.id = x.location_id
 GROUP BY i.sku, l.code, c.code, x.day
HAVING pg_catalog.sum(x.ordered) <> 0 OR pg_catalog.sum(x.cancelled) <> 0 OR pg_catalog.sum(x.returned) <> 0
	OR pg_catalog.sum(x.lines) <> 0;
COMMENT ON VIEW oms.daily_demand IS 'Demand per SKU, location (NULL: not yet assigned), channel and UTC day of the current tenant, including changes not yet compacted: ordered, cancelled, returned, demand (ordered - cancelled), lines';

-- The "placed_at" field of an order payload: a timestamp (with a time zone offset, else the
-- session's), not in the future; NULL when absent.
CREATE FUNCTION oms._payload_placed_at(p_value jsonb) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_at timestamptz;
BEGIN
	IF p_value IS NULL THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_value) = 'string' AND (p_value #>> '{}') ~ '^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?\s*(Z|[+-]\d\d(:?\d\d)?)?$' THEN
		BEGIN
			v_at := (p_value #>> '{}')::timestamptz;
		EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
			v_at := NULL;
		END;
	END IF;
	IF v_at IS NULL THEN
		PERFORM oms._payload_error('placed_at', 'must be an ISO 8601 timestamp', p_value,
			'For example "2024-03-01T10:15:00+01:00"; without an offset the session''s time zone applies.');
	END IF;
	IF v_at > pg_catalog.clock_timestamp() THEN
		PERFORM oms._payload_error('placed_at', 'must not be in the future', p_value,
			'placed_at records when an order was placed (e.g. when importing history); leave it out for now.');
	END IF;
	RETURN v_at;
END
$$;
COMMENT ON FUNCTION oms._payload_placed_at(jsonb) IS 'Internal: the placed_at of an order payload (22023 unless an ISO 8601 timestamp not in the future); NULL when absent';

SELECT pg_catalog.pg_extension_config_dump('oms.demand_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_stats', '');
