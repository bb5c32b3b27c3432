-- Reporting for BI tools (issue 9), part 1: exchange rates, the reporting currency and the daily
-- sales summary that the views of schema oms_bi (95_bi_views.sql) read.
--
-- The summary is kept like demand history (80_demand_history.sql), and for the same reason: a row
-- that every order updates is a hot row, and place_order must keep its throughput. So:
--   oms.bi_sales_deltas  append-only: statement triggers on order_lines (with transition tables)
--                        insert one row per summary key a statement changed; nothing is updated,
--                        so no order waits for another one here;
--   oms.bi_sales_daily   the summary: oms.compact_bi_sales() folds the deltas into it (schedule it,
--                        e.g. every minute with pg_cron; see the README).
-- The views read both (summary + deltas not yet folded), so they are exact as of the last commit:
-- compaction changes how fast they answer, never what they say.
--
-- Grain of a summary row: tenant, UTC day of placement, channel, the line's location (NULL: not
-- assigned, a backorder), SKU, the order's currency, ship-to country, seller and source page (the
-- order attributes "seller" and "source_page") as they were when the lines were written.
-- "orders" counts each order once, on the row of its line 1; every other counter counts lines or
-- units. "lines_backordered" counts lines that were backordered when placed (the INSERT trigger
-- only), on the row of the location they had then (NULL): fill and backorder rates are exact per
-- day and channel across locations.

CREATE TABLE oms.exchange_rates (
	rate_date		date NOT NULL,
	from_currency	char(3) NOT NULL REFERENCES oms.currencies,
	to_currency		char(3) NOT NULL REFERENCES oms.currencies,
	rate			numeric NOT NULL CHECK (rate > 0),
	PRIMARY KEY (rate_date, from_currency, to_currency),
	CHECK (from_currency <> to_currency)
);
COMMENT ON TABLE oms.exchange_rates IS 'Exchange rates per day: 1 unit of from_currency = rate units of to_currency; the BI views convert an order''s money with the rate of its UTC day of placement, and show NULL (counted in oms_bi.data_quality) when that rate is missing';
COMMENT ON COLUMN oms.exchange_rates.rate_date IS 'Day the rate applies to (orders placed that UTC day)';
COMMENT ON COLUMN oms.exchange_rates.rate IS 'Units of to_currency for one unit of from_currency';

CREATE FUNCTION oms.reporting_currency() RETURNS char(3)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN upper(coalesce(nullif(pg_catalog.current_setting('oms_bi.reporting_currency', true), ''), 'EUR'))::char(3);
COMMENT ON FUNCTION oms.reporting_currency() IS 'The currency the BI views report money in: the setting oms_bi.reporting_currency (e.g. ALTER ROLE bi SET oms_bi.reporting_currency = ''USD''), else EUR';

CREATE FUNCTION oms.bi_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN coalesce(nullif(pg_catalog.current_setting('oms.today', true), '')::date, CURRENT_DATE);
COMMENT ON FUNCTION oms.bi_today() IS 'Today for the BI views'' rolling periods: the setting oms.today when set, else the current date';

CREATE FUNCTION oms.bi_rate(p_day date, p_currency char(3)) RETURNS numeric
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN p_currency = oms.reporting_currency() THEN 1::numeric
				ELSE (SELECT r.rate FROM oms.exchange_rates r
					   WHERE r.rate_date = p_day AND r.from_currency = p_currency
						 AND r.to_currency = oms.reporting_currency()) END;
END
$$;
COMMENT ON FUNCTION oms.bi_rate(date, char) IS 'Rate from a currency to the reporting currency on a day: 1 for the reporting currency itself, NULL when oms.exchange_rates has no rate for that day (never a guessed 1.0)';

CREATE TABLE oms.bi_sales_daily (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int,
	item_id				int NOT NULL,
	currency			char(3) NOT NULL,
	country				text,
	seller				text,
	page				text,
	orders				bigint NOT NULL DEFAULT 0,
	lines				bigint NOT NULL DEFAULT 0,
	lines_backordered	bigint NOT NULL DEFAULT 0,
	units				bigint NOT NULL DEFAULT 0,
	units_cancelled		bigint NOT NULL DEFAULT 0,
	units_shipped		bigint NOT NULL DEFAULT 0,
	units_returned		bigint NOT NULL DEFAULT 0,
	gross				numeric NOT NULL DEFAULT 0,
	cancelled_value		numeric NOT NULL DEFAULT 0,
	returned_value		numeric NOT NULL DEFAULT 0,
	CONSTRAINT bi_sales_daily_key UNIQUE NULLS NOT DISTINCT
		(tenant_id, day, channel_id, location_id, item_id, currency, country, seller, page)
);
COMMENT ON TABLE oms.bi_sales_daily IS 'Daily sales summary for BI per tenant, UTC day of placement, channel, line location, SKU, currency, country, seller and page; add oms.bi_sales_deltas (the views do) for the changes not yet compacted';
COMMENT ON COLUMN oms.bi_sales_daily.orders IS 'Orders, each counted once on the row of its line 1';
COMMENT ON COLUMN oms.bi_sales_daily.lines_backordered IS 'Lines backordered when placed (no location had the stock), counted at placement only';
COMMENT ON COLUMN oms.bi_sales_daily.gross IS 'Sum of qty * unit_price in the order currency';
COMMENT ON COLUMN oms.bi_sales_daily.cancelled_value IS 'Sum of qty_cancelled * unit_price in the order currency';
COMMENT ON COLUMN oms.bi_sales_daily.returned_value IS 'Sum of qty_returned * unit_price in the order currency';

CREATE TABLE oms.bi_sales_deltas (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int,
	item_id				int NOT NULL,
	currency			char(3) NOT NULL,
	country				text,
	seller				text,
	page				text,
	orders				bigint NOT NULL,
	lines				bigint NOT NULL,
	lines_backordered	bigint NOT NULL,
	units				bigint NOT NULL,
	units_cancelled		bigint NOT NULL,
	units_shipped		bigint NOT NULL,
	units_returned		bigint NOT NULL,
	gross				numeric NOT NULL,
	cancelled_value		numeric NOT NULL,
	returned_value		numeric NOT NULL
);
CREATE INDEX bi_sales_deltas_day_idx ON oms.bi_sales_deltas (tenant_id, day);
CREATE INDEX bi_sales_daily_day_idx ON oms.bi_sales_daily (tenant_id, day);
COMMENT ON TABLE oms.bi_sales_deltas IS 'Append-only changes of the BI sales summary written by the order_lines triggers, not yet folded into oms.bi_sales_daily by oms.compact_bi_sales()';

-- The triggers spell out the day expression (a function with a pinned search_path is not inlined).
CREATE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT n.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, n.location_id, n.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   pg_catalog.count(*) FILTER (WHERE n.line_no = 1), pg_catalog.count(*),
			   pg_catalog.count(*) FILTER (WHERE n.state = 'backordered'),
			   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_shipped), pg_catalog.sum(n.qty_returned),
			   pg_catalog.sum(n.qty * n.unit_price), pg_catalog.sum(n.qty_cancelled * n.unit_price),
			   pg_catalog.sum(n.qty_returned * n.unit_price)
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT n.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, n.location_id, n.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   pg_catalog.count(*) FILTER (WHERE n.line_no = 1), pg_catalog.count(*),
				   pg_catalog.count(*) FILTER (WHERE n.state = 'backordered'),
				   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_shipped), pg_catalog.sum(n.qty_returned),
				   pg_catalog.sum(n.qty * n.unit_price), pg_catalog.sum(n.qty_cancelled * n.unit_price),
				   pg_catalog.sum(n.qty_returned * n.unit_price)
			  FROM new_lines n
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
			 WHERE n.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.bi_sales_deltas';

CREATE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT c.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, c.location_id, c.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), 0,
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
			   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
		  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, (n.line_no = 1)::int::bigint AS orders, 1::bigint AS lines,
					   n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled, n.qty_shipped::bigint AS qty_shipped,
					   n.qty_returned::bigint AS qty_returned, n.qty * n.unit_price AS gross,
					   n.qty_cancelled * n.unit_price AS cancelled_value, n.qty_returned * n.unit_price AS returned_value
				  FROM new_lines n
				UNION ALL
				SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -(d.line_no = 1)::int::bigint, -1,
					   -d.qty, -d.qty_cancelled, -d.qty_shipped, -d.qty_returned, -(d.qty * d.unit_price),
					   -(d.qty_cancelled * d.unit_price), -(d.qty_returned * d.unit_price)
				  FROM old_lines d) c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.qty) <> 0
			OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t UNION ALL SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant UNION SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT c.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, c.location_id, c.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), 0,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
				   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
			  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, (n.line_no = 1)::int::bigint AS orders, 1::bigint AS lines,
						   n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled, n.qty_shipped::bigint AS qty_shipped,
						   n.qty_returned::bigint AS qty_returned, n.qty * n.unit_price AS gross,
						   n.qty_cancelled * n.unit_price AS cancelled_value, n.qty_returned * n.unit_price AS returned_value
					  FROM new_lines n
					UNION ALL
					SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -(d.line_no = 1)::int::bigint, -1,
						   -d.qty, -d.qty_cancelled, -d.qty_shipped, -d.qty_returned, -(d.qty * d.unit_price),
						   -(d.qty_cancelled * d.unit_price), -(d.qty_returned * d.unit_price)
					  FROM old_lines d) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
			 WHERE c.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
			HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.qty) <> 0
				OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.bi_sales_deltas the net change of quantities, prices or location; a pure state change writes nothing';

CREATE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT d.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, d.location_id, d.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   -pg_catalog.count(*) FILTER (WHERE d.line_no = 1), -pg_catalog.count(*), 0,
			   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_shipped), -pg_catalog.sum(d.qty_returned),
			   -pg_catalog.sum(d.qty * d.unit_price), -pg_catalog.sum(d.qty_cancelled * d.unit_price),
			   -pg_catalog.sum(d.qty_returned * d.unit_price)
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT d.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, d.location_id, d.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   -pg_catalog.count(*) FILTER (WHERE d.line_no = 1), -pg_catalog.count(*), 0,
				   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_shipped), -pg_catalog.sum(d.qty_returned),
				   -pg_catalog.sum(d.qty * d.unit_price), -pg_catalog.sum(d.qty_cancelled * d.unit_price),
				   -pg_catalog.sum(d.qty_returned * d.unit_price)
			  FROM old_lines d
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
			 WHERE d.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of the BI sales summary';

CREATE TRIGGER bi_lines_inserted AFTER INSERT ON oms.order_lines
	REFERENCING NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_inserted();
COMMENT ON TRIGGER bi_lines_inserted ON oms.order_lines IS 'Keeps the BI sales summary: new lines count on their order''s day';
CREATE TRIGGER bi_lines_updated AFTER UPDATE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_updated();
COMMENT ON TRIGGER bi_lines_updated ON oms.order_lines IS 'Keeps the BI sales summary: cancelled, shipped and returned quantities and a line''s new location';
CREATE TRIGGER bi_lines_deleted AFTER DELETE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_deleted();
COMMENT ON TRIGGER bi_lines_deleted ON oms.order_lines IS 'Keeps the BI sales summary: deleted lines no longer count';

-- The second level: per day, the sales of each value of each report dimension (channel with its
-- location, product, brand, category, country, seller, page), recomputed from oms.bi_sales_daily
-- for the days a compaction touched. The line-grain summary above has about one row per line of
-- a day; a 30-day top-N or KPI query reads this one instead (a few thousand rows a day at most).
CREATE TABLE oms.bi_sales_rollup (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	dimension			text NOT NULL CHECK (dimension IN ('channel', 'product', 'brand', 'category', 'country', 'seller', 'page')),
	key					text,
	label				text,
	location_id			int,
	currency			char(3) NOT NULL,
	orders				bigint NOT NULL,
	lines				bigint NOT NULL,
	lines_backordered	bigint NOT NULL,
	units				bigint NOT NULL,
	units_cancelled		bigint NOT NULL,
	units_shipped		bigint NOT NULL,
	units_returned		bigint NOT NULL,
	revenue				numeric NOT NULL,
	returned_value		numeric NOT NULL,
	CONSTRAINT bi_sales_rollup_key UNIQUE NULLS NOT DISTINCT (tenant_id, dimension, day, key, location_id, currency)
);
COMMENT ON TABLE oms.bi_sales_rollup IS 'BI sales per tenant, UTC day and value of a report dimension (channel and location, product, brand, category, country, seller, page) and currency, recomputed from oms.bi_sales_daily for the days each compaction touches';
COMMENT ON COLUMN oms.bi_sales_rollup.key IS 'Channel code, SKU, brand, category, country, seller or page (NULL: none)';
COMMENT ON COLUMN oms.bi_sales_rollup.label IS 'Item name for products, else the key';
COMMENT ON COLUMN oms.bi_sales_rollup.location_id IS 'Location of the lines for dimension channel; NULL otherwise';
COMMENT ON COLUMN oms.bi_sales_rollup.revenue IS 'Units not cancelled at their price, in the currency';

CREATE FUNCTION oms._bi_rollup_days(p_tenant int, p_days date[]) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	DELETE FROM oms.bi_sales_rollup r WHERE r.tenant_id = p_tenant AND (p_days IS NULL OR r.day = ANY (p_days));
	INSERT INTO oms.bi_sales_rollup
	SELECT h.tenant_id, h.day,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN 'channel' WHEN GROUPING(i.sku) = 0 THEN 'product'
				WHEN GROUPING(i.brand) = 0 THEN 'brand' WHEN GROUPING(i.category) = 0 THEN 'category'
				WHEN GROUPING(h.country) = 0 THEN 'country' WHEN GROUPING(h.seller) = 0 THEN 'seller' ELSE 'page' END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.sku) = 0 THEN i.sku
				WHEN GROUPING(i.brand) = 0 THEN i.brand WHEN GROUPING(i.category) = 0 THEN i.category
				WHEN GROUPING(h.country) = 0 THEN h.country WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(i.sku) = 0 THEN max(i.name)
				WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.brand) = 0 THEN i.brand
				WHEN GROUPING(i.category) = 0 THEN i.category WHEN GROUPING(h.country) = 0 THEN h.country
				WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN h.location_id END,
		   h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units), sum(h.units_cancelled),
		   sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value), sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	  JOIN oms.items i ON i.tenant_id = h.tenant_id AND i.id = h.item_id
	  JOIN oms.channels c ON c.tenant_id = h.tenant_id AND c.id = h.channel_id
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.currency,
		   GROUPING SETS ((c.code, h.location_id), (i.sku), (i.brand), (i.category), (h.country), (h.seller), (h.page))
	HAVING sum(h.lines) <> 0;
END;
COMMENT ON FUNCTION oms._bi_rollup_days(int, date[]) IS 'Internal: recomputes a tenant''s oms.bi_sales_rollup for the given days (all days when NULL) from oms.bi_sales_daily';

CREATE FUNCTION oms.compact_bi_sales() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
	v_days		date[];
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), v_tenant);
	-- One statement: it adds exactly the deltas it deletes (later commits stay for the next run).
	WITH moved AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.day, m.channel_id, m.location_id, m.item_id, m.currency, m.country, m.seller, m.page,
			   sum(m.orders) AS orders, sum(m.lines) AS lines, sum(m.lines_backordered) AS lines_backordered,
			   sum(m.units) AS units, sum(m.units_cancelled) AS units_cancelled, sum(m.units_shipped) AS units_shipped,
			   sum(m.units_returned) AS units_returned, sum(m.gross) AS gross, sum(m.cancelled_value) AS cancelled_value,
			   sum(m.returned_value) AS returned_value, count(*) AS deltas
		  FROM moved m
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	), upserted AS (
		INSERT INTO oms.bi_sales_daily AS h
		SELECT s.tenant_id, s.day, s.channel_id, s.location_id, s.item_id, s.currency, s.country, s.seller, s.page,
			   s.orders, s.lines, s.lines_backordered, s.units, s.units_cancelled, s.units_shipped, s.units_returned,
			   s.gross, s.cancelled_value, s.returned_value
		  FROM summed s
		ON CONFLICT ON CONSTRAINT bi_sales_daily_key DO UPDATE
		   SET orders = h.orders + EXCLUDED.orders, lines = h.lines + EXCLUDED.lines,
			   lines_backordered = h.lines_backordered + EXCLUDED.lines_backordered,
			   units = h.units + EXCLUDED.units, units_cancelled = h.units_cancelled + EXCLUDED.units_cancelled,
			   units_shipped = h.units_shipped + EXCLUDED.units_shipped,
			   units_returned = h.units_returned + EXCLUDED.units_returned, gross = h.gross + EXCLUDED.gross,
			   cancelled_value = h.cancelled_value + EXCLUDED.cancelled_value,
			   returned_value = h.returned_value + EXCLUDED.returned_value
		RETURNING 1
	)
	SELECT coalesce(sum(s.deltas), 0), array_agg(DISTINCT s.day) INTO v_rows, v_days FROM summed s;
	IF v_days IS NOT NULL THEN
		PERFORM oms._bi_rollup_days(v_tenant, v_days);
	END IF;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_bi_sales() IS 'Folds the current tenant''s oms.bi_sales_deltas into oms.bi_sales_daily; returns the number of deltas folded (schedule it, e.g. every minute with pg_cron)';

CREATE FUNCTION oms.rebuild_bi_sales() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), v_tenant);
	DELETE FROM oms.bi_sales_daily h WHERE h.tenant_id = v_tenant;
	-- One snapshot: orders committed before are counted from their lines and their deltas deleted.
	-- Backorders at placement come from the lines' first state in order_history.
	WITH gone AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = v_tenant RETURNING 1
	)
	INSERT INTO oms.bi_sales_daily
	SELECT l.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, l.location_id, l.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   count(*) FILTER (WHERE l.line_no = 1), count(*),
		   count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
										   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
											 AND h.line_no = l.line_no AND h.from_state IS NULL
											 AND h.to_state = 'backordered')),
		   sum(l.qty), sum(l.qty_cancelled), sum(l.qty_shipped), sum(l.qty_returned),
		   sum(l.qty * l.unit_price), sum(l.qty_cancelled * l.unit_price), sum(l.qty_returned * l.unit_price)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	PERFORM oms._bi_rollup_days(v_tenant, NULL);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_bi_sales() IS 'Recomputes the current tenant''s BI sales summary from its orders, lines and history (backorders at placement); returns the number of summary rows written';

-- Shipments are reported by the UTC day they shipped.
CREATE INDEX bi_shipments_day_idx ON oms.shipments (tenant_id, ((shipped_at AT TIME ZONE 'UTC')::date))
	WHERE shipped_at IS NOT NULL;

REVOKE ALL ON oms.exchange_rates, oms.bi_sales_daily, oms.bi_sales_deltas, oms.bi_sales_rollup FROM PUBLIC;
REVOKE ALL ON FUNCTION oms.reporting_currency(), oms.bi_today(), oms.bi_rate(date, char), oms._bi_lines_inserted(),
	oms._bi_lines_updated(), oms._bi_lines_deleted(), oms.compact_bi_sales(), oms.rebuild_bi_sales(), oms._bi_rollup_days(int, date[]) FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('oms.exchange_rates', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_daily', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_rollup', '');
