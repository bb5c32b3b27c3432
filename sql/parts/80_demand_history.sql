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
CREATE FUNCTION oms._demand_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
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
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
			  FROM new_lines n
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
			 WHERE n.tenant_id = v_tenant
			 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.demand_deltas';

CREATE FUNCTION oms._demand_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
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
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t UNION ALL SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant UNION SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
			  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
						   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
					  FROM new_lines n
					UNION ALL
					SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
					  FROM old_lines d) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
			 WHERE c.tenant_id = v_tenant
			 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
			HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.demand_deltas the net change of qty, qty_cancelled, qty_returned or location';

CREATE FUNCTION oms._demand_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
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
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
			  FROM old_lines d
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
			 WHERE d.tenant_id = v_tenant
			 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
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
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	-- One statement: the deltas it deletes are exactly those it adds (deltas that commit later
	-- are not in its snapshot and stay for the next run).
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
	)
	SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_rows FROM summed s;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_demand_history() IS 'Folds the current tenant''s oms.demand_deltas into oms.demand_history; returns the number of deltas folded (the scheduled job "demand_history" runs it)';

CREATE FUNCTION oms.rebuild_demand_history("from" date DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
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
