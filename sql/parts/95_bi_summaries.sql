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
-- order attributes "seller" and "source_page"); when an order's country, seller, page (or day,
-- channel, currency) changes, a trigger on orders moves its sales to the new keys.
-- "orders" counts each order once, on the row of its line 1; every other counter counts lines or
-- units. "lines_backordered" counts lines that were backordered when placed, on the row of the
-- line's location (NULL while it has none; the count moves with the line when it gets one).

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

-- Two summaries at the grain of the reports that cannot use a daily total (issue 9 at a million
-- orders): one row per order (top customers, top orders, perfect orders) and one row per shipment
-- that left (the shipment KPIs: on-time rate, hours to ship and deliver, with median and p90).
-- An order's or a shipment's row is written only by the transactions that change that order or
-- shipment, which hold its row lock anyway: they are kept up to date in place by the triggers
-- (no deltas, no compaction), exact as of the last commit.
CREATE TABLE oms.bi_order_sales (
	tenant_id			int NOT NULL,
	order_id			bigint NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	customer			text,
	currency			char(3) NOT NULL,
	lines				int NOT NULL,
	units				int NOT NULL,
	revenue				numeric NOT NULL,
	units_returned		int NOT NULL,
	lines_incomplete	int NOT NULL,
	late_shipments		int NOT NULL DEFAULT 0,
	returns				int NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX bi_order_sales_day_idx ON oms.bi_order_sales (tenant_id, day);
COMMENT ON TABLE oms.bi_order_sales IS 'BI summary, one row per order with lines: its UTC day of placement, channel, customer and currency, and what its lines add up to; kept in place by the triggers on order_lines, orders, shipments and returns (exact as of the last commit)';
COMMENT ON COLUMN oms.bi_order_sales.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms.bi_order_sales.lines IS 'Order lines';
COMMENT ON COLUMN oms.bi_order_sales.units IS 'Units not cancelled';
COMMENT ON COLUMN oms.bi_order_sales.revenue IS 'Units not cancelled at their price, order currency';
COMMENT ON COLUMN oms.bi_order_sales.units_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms.bi_order_sales.lines_incomplete IS 'Lines with a unit cancelled or not shipped';
COMMENT ON COLUMN oms.bi_order_sales.late_shipments IS 'Shipments of the order that left after their promised date (oms.bi_shipments.on_time false)';
COMMENT ON COLUMN oms.bi_order_sales.returns IS 'Returns (RMAs) authorised for the order';

CREATE TABLE oms.bi_shipments (
	tenant_id			int NOT NULL,
	shipment_id			bigint NOT NULL,
	order_id			bigint NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int NOT NULL,
	promised_date		date,
	on_time				boolean,
	hours_to_ship		double precision,
	hours_to_deliver	double precision,
	PRIMARY KEY (tenant_id, shipment_id)
);
CREATE INDEX bi_shipments_by_day_idx ON oms.bi_shipments (tenant_id, day);
COMMENT ON TABLE oms.bi_shipments IS 'BI summary, one row per shipment that left: UTC day shipped, the order''s channel, the shipping location, promised date (earliest of its lines), on time or not, hours from placement to shipment and to delivery; kept in place by the triggers on shipments and order_lines (exact as of the last commit)';
COMMENT ON COLUMN oms.bi_shipments.promised_date IS 'Earliest promised date of the order lines in the shipment';
COMMENT ON COLUMN oms.bi_shipments.on_time IS 'Shipped (UTC day) on or before the promised date; NULL when nothing was promised';
COMMENT ON COLUMN oms.bi_shipments.hours_to_ship IS 'Hours from placement to shipment, rounded to 0.1 (as oms_bi.shipments shows them; a float for the percentiles of kpis_daily)';
COMMENT ON COLUMN oms.bi_shipments.hours_to_deliver IS 'Hours from placement to delivery, rounded to 0.1; NULL until delivered';

-- Products have the most values by far (a row per SKU and day): they get a narrow table of their
-- own, written a day at a time (rows of a day together), instead of rows of oms.bi_sales_rollup.
CREATE TABLE oms.bi_product_daily (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	item_id				int NOT NULL,
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
	PRIMARY KEY (tenant_id, day, item_id, currency)
);
COMMENT ON TABLE oms.bi_product_daily IS 'BI sales per tenant, UTC day, SKU and currency, recomputed from oms.bi_sales_daily for the days each compaction touches (the product rows of oms_bi.sales_by_dimension)';
COMMENT ON COLUMN oms.bi_product_daily.revenue IS 'Units not cancelled at their price, in the currency';

-- A shard of a Citus cluster (README "Scale-out on Citus"): the triggers below fire on a shard of
-- order_lines, and Citus cannot join their transition tables with a distributed table. There they
-- pass their rows here as arrays: the lines' orders and backorder history are read first, per
-- tenant (each a query of one tenant, run on this node), and the deltas and the orders' rows of
-- oms.bi_order_sales are computed from the arrays, with the same rules as the triggers' own
-- queries for one node; a shipped line whose promised date changed re-evaluates its shipments.
-- p_op is the trigger's TG_OP; p_new and p_old its new and old rows (NULL where it has none).
CREATE FUNCTION oms._bi_lines_on_shard(p_op text, p_new oms.order_lines[], p_old oms.order_lines[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_plus		oms.order_lines[];
	v_minus		oms.order_lines[];
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_back		oms.order_history[];
	v_deltas	oms.bi_sales_deltas[];
	v_sales		oms.bi_order_sales[];
	v_o			bigint[];
	v_l			int[];
	v_shipments	bigint[];
BEGIN
	FOR v_tenant IN
		SELECT DISTINCT x.tenant_id
		  FROM (SELECT n.tenant_id FROM pg_catalog.unnest(p_new) n UNION ALL SELECT d.tenant_id FROM pg_catalog.unnest(p_old) d) x
	LOOP
		-- The lines whose quantities, price, item or location changed, as a new (+) and an old
		-- (-) side.
		SELECT pg_catalog.array_agg(n)
		  INTO v_plus
		  FROM pg_catalog.unnest(p_new) n
		  LEFT JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
		 WHERE n.tenant_id = v_tenant
		   AND (d.order_id IS NULL
				OR (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price));
		SELECT pg_catalog.array_agg(d)
		  INTO v_minus
		  FROM pg_catalog.unnest(p_old) d
		  LEFT JOIN pg_catalog.unnest(p_new) n ON n.tenant_id = d.tenant_id AND n.order_id = d.order_id AND n.line_no = d.line_no
		 WHERE d.tenant_id = v_tenant
		   AND (n.order_id IS NULL
				OR (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price));
		v_ids := ARRAY(SELECT x.order_id FROM pg_catalog.unnest(v_plus) x UNION SELECT x.order_id FROM pg_catalog.unnest(v_minus) x);
		IF pg_catalog.cardinality(v_ids) > 0 THEN
			SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
			IF p_op <> 'INSERT' THEN	-- (a new line counts its state)
				SELECT pg_catalog.array_agg(h) INTO v_back FROM oms.order_history h
				 WHERE h.tenant_id = v_tenant AND h.order_id = ANY (v_ids) AND h.line_no IS NOT NULL
				   AND h.from_state IS NULL AND h.to_state = 'backordered';
			END IF;
			-- backordered: a new line counts its state; an updated line its placement (history)
			-- when it moved, on both sides; a deleted line its placement
			WITH c AS (
				SELECT 1 AS sign, x.*,
					   CASE WHEN p_op = 'INSERT' THEN x.state = 'backordered'
							ELSE EXISTS (SELECT FROM pg_catalog.unnest(p_old) d
										  WHERE d.tenant_id = x.tenant_id AND d.order_id = x.order_id AND d.line_no = x.line_no
											AND d.location_id IS DISTINCT FROM x.location_id)
								 AND EXISTS (SELECT FROM pg_catalog.unnest(v_back) b
											  WHERE b.order_id = x.order_id AND b.line_no = x.line_no) END AS backordered
				  FROM pg_catalog.unnest(v_plus) x
				UNION ALL
				SELECT -1, x.*,
					   (p_op = 'DELETE'
						OR EXISTS (SELECT FROM pg_catalog.unnest(p_new) n
									WHERE n.tenant_id = x.tenant_id AND n.order_id = x.order_id AND n.line_no = x.line_no
									  AND n.location_id IS DISTINCT FROM x.location_id))
					   AND EXISTS (SELECT FROM pg_catalog.unnest(v_back) b WHERE b.order_id = x.order_id AND b.line_no = x.line_no)
				  FROM pg_catalog.unnest(v_minus) x
			), k AS (
				SELECT c.sign, c.order_id, c.line_no, c.item_id, c.location_id, c.backordered, c.qty::bigint AS qty,
					   c.qty_cancelled::bigint AS qty_cancelled, c.qty_shipped::bigint AS qty_shipped,
					   c.qty_returned::bigint AS qty_returned, c.unit_price,
					   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency, o.ship_country, o.attributes, o.customer_ref
				  FROM c
				  JOIN pg_catalog.unnest(v_orders) o ON o.id = c.order_id
			)
			SELECT (SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) FROM (
						SELECT v_tenant, k.day, k.channel_id, k.location_id, k.item_id, k.currency,
							   k.ship_country, k.attributes ->> 'seller', k.attributes ->> 'source_page',
							   pg_catalog.sum(k.sign * (k.line_no = 1)::int), pg_catalog.sum(k.sign), pg_catalog.sum(k.sign * k.backordered::int),
							   pg_catalog.sum(k.sign * k.qty), pg_catalog.sum(k.sign * k.qty_cancelled), pg_catalog.sum(k.sign * k.qty_shipped),
							   pg_catalog.sum(k.sign * k.qty_returned), pg_catalog.sum(k.sign * k.qty * k.unit_price),
							   pg_catalog.sum(k.sign * k.qty_cancelled * k.unit_price), pg_catalog.sum(k.sign * k.qty_returned * k.unit_price)
						  FROM k
						 GROUP BY 2, 3, 4, 5, 6, 7, 8, 9
						HAVING pg_catalog.sum(k.sign * (k.line_no = 1)::int) <> 0 OR pg_catalog.sum(k.sign) <> 0
							OR pg_catalog.sum(k.sign * k.backordered::int) <> 0 OR pg_catalog.sum(k.sign * k.qty) <> 0
							OR pg_catalog.sum(k.sign * k.qty_cancelled) <> 0 OR pg_catalog.sum(k.sign * k.qty_shipped) <> 0
							OR pg_catalog.sum(k.sign * k.qty_returned) <> 0 OR pg_catalog.sum(k.sign * k.qty * k.unit_price) <> 0
							OR pg_catalog.sum(k.sign * k.qty_cancelled * k.unit_price) <> 0
							OR pg_catalog.sum(k.sign * k.qty_returned * k.unit_price) <> 0) r),
				   (SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_order_sales) FROM (
						SELECT v_tenant, k.order_id, k.day, k.channel_id, k.customer_ref, k.currency,
							   pg_catalog.sum(k.sign)::int, pg_catalog.sum(k.sign * (k.qty - k.qty_cancelled))::int,
							   pg_catalog.sum(k.sign * (k.qty - k.qty_cancelled) * k.unit_price),
							   pg_catalog.sum(k.sign * k.qty_returned)::int,
							   pg_catalog.sum(k.sign * (k.qty_cancelled > 0 OR k.qty_shipped < k.qty)::int)::int, 0, 0
						  FROM k
						 GROUP BY 2, 3, 4, 5, 6) r)
			  INTO v_deltas, v_sales;
			IF v_deltas IS NOT NULL THEN
				INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_deltas);
			END IF;
			IF v_sales IS NOT NULL THEN
				INSERT INTO oms.bi_order_sales AS b SELECT * FROM pg_catalog.unnest(v_sales)
				ON CONFLICT (tenant_id, order_id) DO UPDATE
				   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
					   units_returned = b.units_returned + EXCLUDED.units_returned,
					   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;
			END IF;
		END IF;
		IF p_op = 'UPDATE' THEN
			SELECT pg_catalog.array_agg(n.order_id), pg_catalog.array_agg(n.line_no) INTO v_o, v_l
			  FROM pg_catalog.unnest(p_new) n
			  JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			 WHERE n.tenant_id = v_tenant AND n.promised_date IS DISTINCT FROM d.promised_date AND n.qty_shipped > 0;
			IF v_o IS NOT NULL THEN
				SELECT pg_catalog.array_agg(DISTINCT x.shipment_id) INTO v_shipments
				  FROM oms.shipment_lines x
				 WHERE x.tenant_id = v_tenant AND x.order_id = ANY (v_o)
				   AND (x.order_id, x.line_no) IN (SELECT * FROM pg_catalog.unnest(v_o, v_l));
				IF v_shipments IS NOT NULL THEN
					PERFORM oms._bi_refresh_shipments(v_tenant, v_shipments);
				END IF;
			END IF;
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_on_shard(text, oms.order_lines[], oms.order_lines[]) IS 'Internal: the BI line triggers'' work on a shard of a Citus cluster, from their transition rows passed as arrays (TG_OP, new rows, old rows)';

-- The triggers spell out the day expression (a function with a pinned search_path is not inlined).
-- Each writes the sales deltas (per summary key) and the order's row of oms.bi_order_sales.
CREATE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH l AS MATERIALIZED (
			SELECT n.tenant_id, n.order_id, n.line_no, n.item_id, n.location_id, n.state, n.qty, n.qty_cancelled, n.qty_shipped,
				   n.qty_returned, n.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
				   o.ship_country, o.attributes, o.customer_ref
			  FROM new_lines n
			  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
				   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
				   pg_catalog.count(*) FILTER (WHERE l.line_no = 1), pg_catalog.count(*),
				   pg_catalog.count(*) FILTER (WHERE l.state = 'backordered'),
				   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_shipped), pg_catalog.sum(l.qty_returned),
				   pg_catalog.sum(l.qty * l.unit_price), pg_catalog.sum(l.qty_cancelled * l.unit_price),
				   pg_catalog.sum(l.qty_returned * l.unit_price)
			  FROM l
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		)
		INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
											 units_returned, lines_incomplete)
		SELECT l.tenant_id, l.order_id, l.day, l.channel_id, l.customer_ref, l.currency, pg_catalog.count(*),
			   pg_catalog.sum(l.qty - l.qty_cancelled), pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price),
			   pg_catalog.sum(l.qty_returned), pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty)
		  FROM l
		 GROUP BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (tenant_id, order_id) DO UPDATE
		   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
			   units_returned = b.units_returned + EXCLUDED.units_returned,
			   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t), NULL);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.bi_sales_deltas and to their order''s row of oms.bi_order_sales';

-- Only the lines whose quantities, price, item, location or promised date changed count: a pure
-- state change (most updates) writes nothing. A line backordered when placed carries that count
-- to the location it gets (as oms.rebuild_bi_sales() counts it: on the line's location now). A
-- shipped line whose promised date changed re-evaluates its shipments' on-time flag.
CREATE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_shipments	bigint[];
	v_tenant	int;
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH changed AS MATERIALIZED (
			SELECT n.tenant_id, n.order_id, n.line_no,
				   n.item_id AS n_item, n.location_id AS n_loc, n.qty AS n_qty, n.qty_cancelled AS n_cancelled,
				   n.qty_shipped AS n_shipped, n.qty_returned AS n_returned, n.unit_price AS n_price,
				   d.item_id AS d_item, d.location_id AS d_loc, d.qty AS d_qty, d.qty_cancelled AS d_cancelled,
				   d.qty_shipped AS d_shipped, d.qty_returned AS d_returned, d.unit_price AS d_price,
				   n.location_id IS DISTINCT FROM d.location_id
					   AND EXISTS (SELECT FROM oms.order_history h
									WHERE h.tenant_id = n.tenant_id AND h.order_id = n.order_id AND h.line_no = n.line_no
									  AND h.from_state IS NULL AND h.to_state = 'backordered') AS moved_backorder
			  FROM new_lines n
			  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			 WHERE (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price)
		), c AS MATERIALIZED (
			SELECT x.tenant_id, x.order_id, v.item_id, v.location_id, v.sign * (x.line_no = 1)::int AS orders, v.sign AS lines,
				   v.sign * x.moved_backorder::int AS lines_backordered, v.sign * v.qty AS qty,
				   v.sign * v.qty_cancelled AS qty_cancelled, v.sign * v.qty_shipped AS qty_shipped,
				   v.sign * v.qty_returned AS qty_returned, v.sign * v.qty * v.unit_price AS gross,
				   v.sign * v.qty_cancelled * v.unit_price AS cancelled_value, v.sign * v.qty_returned * v.unit_price AS returned_value,
				   v.sign * (v.qty_cancelled > 0 OR v.qty_shipped < v.qty)::int AS incomplete,
				   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency, o.ship_country, o.attributes, o.customer_ref
			  FROM changed x
			 CROSS JOIN LATERAL (VALUES (1, x.n_item, x.n_loc, x.n_qty::bigint, x.n_cancelled::bigint, x.n_shipped::bigint,
										 x.n_returned::bigint, x.n_price),
										(-1, x.d_item, x.d_loc, x.d_qty, x.d_cancelled, x.d_shipped, x.d_returned, x.d_price))
				   v(sign, item_id, location_id, qty, qty_cancelled, qty_shipped, qty_returned, unit_price)
			  JOIN oms.orders o ON o.tenant_id = x.tenant_id AND o.id = x.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT c.tenant_id, c.day, c.channel_id, c.location_id, c.item_id, c.currency,
				   c.ship_country, c.attributes ->> 'seller', c.attributes ->> 'source_page',
				   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), pg_catalog.sum(c.lines_backordered),
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
				   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
			  FROM c
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
			HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.lines_backordered) <> 0
				OR pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0 OR pg_catalog.sum(c.cancelled_value) <> 0
				OR pg_catalog.sum(c.returned_value) <> 0
		)
		INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
											 units_returned, lines_incomplete)
		SELECT c.tenant_id, c.order_id, c.day, c.channel_id, c.customer_ref, c.currency, pg_catalog.sum(c.lines),
			   pg_catalog.sum(c.qty - c.qty_cancelled), pg_catalog.sum(c.gross - c.cancelled_value),
			   pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.incomplete)
		  FROM c
		 GROUP BY 1, 2, 3, 4, 5, 6
		HAVING pg_catalog.sum(c.qty - c.qty_cancelled) <> 0 OR pg_catalog.sum(c.gross - c.cancelled_value) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.incomplete) <> 0
		ON CONFLICT (tenant_id, order_id) DO UPDATE
		   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
			   units_returned = b.units_returned + EXCLUDED.units_returned,
			   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;

		FOR v_tenant, v_shipments IN
			SELECT x.tenant_id, pg_catalog.array_agg(DISTINCT x.shipment_id)
			  FROM new_lines n
			  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			  JOIN oms.shipment_lines x ON x.tenant_id = n.tenant_id AND x.order_id = n.order_id AND x.line_no = n.line_no
			 WHERE n.promised_date IS DISTINCT FROM d.promised_date AND n.qty_shipped > 0
			 GROUP BY x.tenant_id
		LOOP
			PERFORM oms._bi_refresh_shipments(v_tenant, v_shipments);
		END LOOP;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t),
								 ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.bi_sales_deltas and oms.bi_order_sales the net change of the lines whose quantities, price, item or location changed (a pure state change writes nothing); a shipped line''s new promised date re-evaluates its shipments in oms.bi_shipments';

CREATE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH l AS MATERIALIZED (
			SELECT d.tenant_id, d.order_id, d.line_no, d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped,
				   d.qty_returned, d.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
				   o.ship_country, o.attributes, o.customer_ref,
				   EXISTS (SELECT FROM oms.order_history h
							WHERE h.tenant_id = d.tenant_id AND h.order_id = d.order_id AND h.line_no = d.line_no
							  AND h.from_state IS NULL AND h.to_state = 'backordered') AS backordered
			  FROM old_lines d
			  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
				   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
				   -pg_catalog.count(*) FILTER (WHERE l.line_no = 1), -pg_catalog.count(*), -pg_catalog.count(*) FILTER (WHERE l.backordered),
				   -pg_catalog.sum(l.qty), -pg_catalog.sum(l.qty_cancelled), -pg_catalog.sum(l.qty_shipped), -pg_catalog.sum(l.qty_returned),
				   -pg_catalog.sum(l.qty * l.unit_price), -pg_catalog.sum(l.qty_cancelled * l.unit_price),
				   -pg_catalog.sum(l.qty_returned * l.unit_price)
			  FROM l
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		)
		UPDATE oms.bi_order_sales b
		   SET lines = b.lines - g.lines, units = b.units - g.units, revenue = b.revenue - g.revenue,
			   units_returned = b.units_returned - g.units_returned, lines_incomplete = b.lines_incomplete - g.incomplete
		  FROM (SELECT l.tenant_id, l.order_id, pg_catalog.count(*) AS lines, pg_catalog.sum(l.qty - l.qty_cancelled) AS units,
					   pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, pg_catalog.sum(l.qty_returned) AS units_returned,
					   pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
				  FROM l GROUP BY 1, 2) g
		 WHERE b.tenant_id = g.tenant_id AND b.order_id = g.order_id;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, NULL, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of the BI sales summary and their order''s row of oms.bi_order_sales';

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
-- An order's day, channel, currency, country, seller, page or customer changes (change_address
-- changes the country): its lines' sales move from the old summary keys to the new ones.
CREATE FUNCTION oms._bi_order_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT l.tenant_id, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page,
		   v.sign * pg_catalog.count(*) FILTER (WHERE l.line_no = 1), v.sign * pg_catalog.count(*),
		   v.sign * pg_catalog.count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
															   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
																 AND h.line_no = l.line_no AND h.from_state IS NULL
																 AND h.to_state = 'backordered')),
		   v.sign * pg_catalog.sum(l.qty), v.sign * pg_catalog.sum(l.qty_cancelled), v.sign * pg_catalog.sum(l.qty_shipped),
		   v.sign * pg_catalog.sum(l.qty_returned), v.sign * pg_catalog.sum(l.qty * l.unit_price),
		   v.sign * pg_catalog.sum(l.qty_cancelled * l.unit_price), v.sign * pg_catalog.sum(l.qty_returned * l.unit_price)
	  FROM oms.order_lines l
	 CROSS JOIN (VALUES (-1, (OLD.placed_at AT TIME ZONE 'UTC')::date, OLD.channel_id, OLD.currency, OLD.ship_country,
						 OLD.attributes ->> 'seller', OLD.attributes ->> 'source_page'),
						(1, (NEW.placed_at AT TIME ZONE 'UTC')::date, NEW.channel_id, NEW.currency, NEW.ship_country,
						 NEW.attributes ->> 'seller', NEW.attributes ->> 'source_page'))
		   v(sign, day, channel_id, currency, country, seller, page)
	 WHERE l.tenant_id = NEW.tenant_id AND l.order_id = NEW.id
	 GROUP BY l.tenant_id, v.sign, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page;
	UPDATE oms.bi_order_sales b
	   SET day = (NEW.placed_at AT TIME ZONE 'UTC')::date, channel_id = NEW.channel_id, customer = NEW.customer_ref,
		   currency = NEW.currency
	 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.id;
	UPDATE oms.bi_shipments f SET channel_id = NEW.channel_id WHERE f.tenant_id = NEW.tenant_id AND f.order_id = NEW.id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_order_changed() IS 'Internal: row trigger on orders UPDATE of what the BI summaries are keyed by (day of placement, channel, currency, country, seller, page, customer): moves the order''s sales from the old keys to the new ones';
CREATE TRIGGER bi_order_changed AFTER UPDATE OF placed_at, channel_id, currency, ship_country, attributes, customer_ref ON oms.orders
	FOR EACH ROW
	WHEN (OLD.placed_at IS DISTINCT FROM NEW.placed_at OR OLD.channel_id IS DISTINCT FROM NEW.channel_id
		  OR OLD.currency IS DISTINCT FROM NEW.currency OR OLD.ship_country IS DISTINCT FROM NEW.ship_country
		  OR (OLD.attributes ->> 'seller') IS DISTINCT FROM (NEW.attributes ->> 'seller')
		  OR (OLD.attributes ->> 'source_page') IS DISTINCT FROM (NEW.attributes ->> 'source_page')
		  OR OLD.customer_ref IS DISTINCT FROM NEW.customer_ref)
	EXECUTE FUNCTION oms._bi_order_changed();
COMMENT ON TRIGGER bi_order_changed ON oms.orders IS 'Keeps the BI summaries: a changed address (country), seller, page, customer, channel, currency or day of placement moves the order''s sales';

-- A shipment's row of oms.bi_shipments, and its order's count of late shipments, from the tables:
-- for the given shipments of a tenant (all of them when NULL). (PL/pgSQL: Citus cannot plan a
-- SQL function's statements with parameters.)
CREATE FUNCTION oms._bi_refresh_shipments(p_tenant int, p_ids bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	WITH gone AS (
		DELETE FROM oms.bi_shipments f
		 WHERE f.tenant_id = p_tenant AND (p_ids IS NULL OR f.shipment_id = ANY (p_ids))
		RETURNING f.order_id, f.on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments - g.late
	  FROM (SELECT gone.order_id, count(*) AS late FROM gone WHERE gone.on_time IS FALSE GROUP BY gone.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
	WITH added AS (
		INSERT INTO oms.bi_shipments
		SELECT s.tenant_id, s.id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date, o.channel_id, s.location_id,
			   min(l.promised_date),
			   (s.shipped_at AT TIME ZONE 'UTC')::date <= min(l.promised_date),
			   round((EXTRACT(epoch FROM s.shipped_at - o.placed_at) / 3600)::numeric, 1)::double precision,
			   round((EXTRACT(epoch FROM s.delivered_at - o.placed_at) / 3600)::numeric, 1)::double precision
		  FROM oms.shipments s
		  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
		  LEFT JOIN oms.shipment_lines x ON x.tenant_id = s.tenant_id AND x.shipment_id = s.id
		  LEFT JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
		 WHERE s.tenant_id = p_tenant AND (p_ids IS NULL OR s.id = ANY (p_ids)) AND s.shipped_at IS NOT NULL
		 GROUP BY s.tenant_id, s.id, o.channel_id, o.placed_at
		 ORDER BY 4, 2
		RETURNING order_id, on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments + g.late
	  FROM (SELECT added.order_id, count(*) AS late FROM added WHERE added.on_time IS FALSE GROUP BY added.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
END
$$;
COMMENT ON FUNCTION oms._bi_refresh_shipments(int, bigint[]) IS 'Internal: recomputes the rows of oms.bi_shipments of the given shipments of a tenant (all when NULL) and their orders'' count of late shipments in oms.bi_order_sales';

CREATE FUNCTION oms._bi_shipment_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM oms._bi_refresh_shipments(NEW.tenant_id, ARRAY[NEW.id]);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_shipment_changed() IS 'Internal: row trigger on shipments: a shipment that left, was delivered or moved gets its row of oms.bi_shipments recomputed';
CREATE TRIGGER bi_shipment_changed AFTER INSERT OR UPDATE OF shipped_at, delivered_at, location_id, order_id ON oms.shipments
	FOR EACH ROW WHEN (NEW.shipped_at IS NOT NULL)
	EXECUTE FUNCTION oms._bi_shipment_changed();
COMMENT ON TRIGGER bi_shipment_changed ON oms.shipments IS 'Keeps the BI shipment summary (oms.bi_shipments): shipped, delivered';

CREATE FUNCTION oms._bi_return_added() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	UPDATE oms.bi_order_sales b SET returns = b.returns + 1 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.order_id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_return_added() IS 'Internal: row trigger on returns INSERT: counts the return on its order''s row of oms.bi_order_sales (perfect orders)';
CREATE TRIGGER bi_return_added AFTER INSERT ON oms.returns
	FOR EACH ROW EXECUTE FUNCTION oms._bi_return_added();
COMMENT ON TRIGGER bi_return_added ON oms.returns IS 'Keeps the BI order summary: an order with a return is not a perfect order';

-- The second level: per day, the sales of each value of each report dimension (channel with its
-- location, brand, category, country, seller, page), recomputed from oms.bi_sales_daily for the
-- days a compaction touched. The line-grain summary above has about one row per line of a day; a
-- 30-day top-N or KPI query reads this one instead (a few hundred rows a day). Products, with a
-- row per SKU and day, are in oms.bi_product_daily (above), written by the same function.
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
COMMENT ON TABLE oms.bi_sales_rollup IS 'BI sales per tenant, UTC day and value of a report dimension (channel and location, brand, category, country, seller, page) and currency, recomputed from oms.bi_sales_daily for the days each compaction touches (products: oms.bi_product_daily)';
COMMENT ON COLUMN oms.bi_sales_rollup.key IS 'Channel code, brand, category, country, seller or page (NULL: none)';
COMMENT ON COLUMN oms.bi_sales_rollup.label IS 'Readable label: the key';
COMMENT ON COLUMN oms.bi_sales_rollup.location_id IS 'Location of the lines for dimension channel; NULL otherwise';
COMMENT ON COLUMN oms.bi_sales_rollup.revenue IS 'Units not cancelled at their price, in the currency';

CREATE FUNCTION oms._bi_rollup_days(p_tenant int, p_days date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	DELETE FROM oms.bi_sales_rollup r WHERE r.tenant_id = p_tenant AND (p_days IS NULL OR r.day = ANY (p_days));
	INSERT INTO oms.bi_sales_rollup
	SELECT h.tenant_id, h.day,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN 'channel'
				WHEN GROUPING(i.brand) = 0 THEN 'brand' WHEN GROUPING(i.category) = 0 THEN 'category'
				WHEN GROUPING(h.country) = 0 THEN 'country' WHEN GROUPING(h.seller) = 0 THEN 'seller' ELSE 'page' END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code
				WHEN GROUPING(i.brand) = 0 THEN i.brand WHEN GROUPING(i.category) = 0 THEN i.category
				WHEN GROUPING(h.country) = 0 THEN h.country WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.brand) = 0 THEN i.brand
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
		   GROUPING SETS ((c.code, h.location_id), (i.brand), (i.category), (h.country), (h.seller), (h.page))
	HAVING sum(h.lines) <> 0;
	DELETE FROM oms.bi_product_daily p WHERE p.tenant_id = p_tenant AND (p_days IS NULL OR p.day = ANY (p_days));
	INSERT INTO oms.bi_product_daily
	SELECT h.tenant_id, h.day, h.item_id, h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units),
		   sum(h.units_cancelled), sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value),
		   sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.item_id, h.currency
	HAVING sum(h.lines) <> 0
	 ORDER BY h.day, h.item_id, h.currency;
END
$$;
COMMENT ON FUNCTION oms._bi_rollup_days(int, date[]) IS 'Internal: recomputes a tenant''s oms.bi_sales_rollup and oms.bi_product_daily for the given days (all days when NULL) from oms.bi_sales_daily';

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

CREATE FUNCTION oms._bi_rebuild(p_tenant int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_rows		bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), p_tenant);
	DELETE FROM oms.bi_sales_daily h WHERE h.tenant_id = p_tenant;
	-- One snapshot: orders committed before are counted from their lines and their deltas deleted.
	-- Backorders at placement come from the lines' first state in order_history.
	WITH gone AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = p_tenant RETURNING 1
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
	 WHERE o.tenant_id = p_tenant
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	PERFORM oms._bi_rollup_days(p_tenant, NULL);
	-- The order and shipment summaries (their rows are locked by whoever changes them: a
	-- concurrent change waits for this transaction, or this one for it).
	DELETE FROM oms.bi_shipments f WHERE f.tenant_id = p_tenant;
	DELETE FROM oms.bi_order_sales b WHERE b.tenant_id = p_tenant;
	INSERT INTO oms.bi_order_sales (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
									units_returned, lines_incomplete, returns)
	SELECT o.tenant_id, o.id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, o.customer_ref, o.currency,
		   l.lines, l.units, l.revenue, l.units_returned, l.incomplete, coalesce(r.returns, 0)
	  FROM oms.orders o
	  JOIN (SELECT l.order_id, count(*) AS lines, sum(l.qty - l.qty_cancelled) AS units,
				   sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, sum(l.qty_returned) AS units_returned,
				   count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
			  FROM oms.order_lines l WHERE l.tenant_id = p_tenant GROUP BY l.order_id) l ON l.order_id = o.id
	  LEFT JOIN (SELECT r.order_id, count(*) AS returns FROM oms.returns r WHERE r.tenant_id = p_tenant GROUP BY r.order_id) r
		ON r.order_id = o.id
	 WHERE o.tenant_id = p_tenant
	 ORDER BY 3, 2;
	PERFORM oms._bi_refresh_shipments(p_tenant, NULL);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms._bi_rebuild(int) IS 'Internal: recomputes a tenant''s BI summaries (sales per day and dimension, per order, per shipment) from its orders, lines, history, shipments and returns; returns the number of rows of oms.bi_sales_daily written';

CREATE FUNCTION oms.rebuild_bi_sales() RETURNS bigint
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._bi_rebuild(oms.current_tenant_id());
COMMENT ON FUNCTION oms.rebuild_bi_sales() IS 'Recomputes the current tenant''s BI summaries from its orders, lines, history (backorders at placement), shipments and returns; returns the number of rows of the daily sales summary written';

-- The shipment movements of a period (inventory_kpis: units shipped in the last 30 days).
CREATE INDEX bi_stock_movements_shipped_idx ON oms.stock_movements (tenant_id, moved_at) WHERE kind = 'shipment';

-- Shipments are reported by the UTC day they shipped.
CREATE INDEX bi_shipments_day_idx ON oms.shipments (tenant_id, ((shipped_at AT TIME ZONE 'UTC')::date))
	WHERE shipped_at IS NOT NULL;

REVOKE ALL ON oms.exchange_rates, oms.bi_sales_daily, oms.bi_sales_deltas, oms.bi_sales_rollup, oms.bi_order_sales,
	oms.bi_shipments, oms.bi_product_daily FROM PUBLIC;
REVOKE ALL ON FUNCTION oms.reporting_currency(), oms.bi_today(), oms.bi_rate(date, char), oms._bi_lines_inserted(),
	oms._bi_lines_updated(), oms._bi_lines_deleted(), oms.compact_bi_sales(), oms.rebuild_bi_sales(), oms._bi_rollup_days(int, date[]),
	oms._bi_order_changed(), oms._bi_refresh_shipments(int, bigint[]), oms._bi_shipment_changed(), oms._bi_return_added(),
	oms._bi_lines_on_shard(text, oms.order_lines[], oms.order_lines[]),
	oms._bi_rebuild(int) FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('oms.exchange_rates', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_daily', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_rollup', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_order_sales', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_shipments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_product_daily', '');
