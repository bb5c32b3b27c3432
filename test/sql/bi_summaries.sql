-- The BI sales summary (oms.bi_sales_daily + oms.bi_sales_deltas) equals a recomputation from
-- the raw tables after a random mix of places (some backordered), cancellations, shipments and
-- returns; again after compaction; and oms.rebuild_bi_sales() gives the same summary. The same for
-- the order and shipment summaries (oms.bi_order_sales, oms.bi_shipments), and the reports read
-- from them (top customers and orders, shipment KPIs, perfect orders) equal the same reports
-- computed directly from the tables. The mix also changes addresses (the order's country moves)
-- and receives stock that serves backorders (their count moves to the location they get).
SELECT oms.create_tenant('t_bi_sum') > 0 AS created;
SET oms.tenant = 't_bi_sum';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES
	('web', 'web', 'Web shop', 'EUR', false), ('app', 'app', 'App', 'USD', false);
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1), ('WH-2', 'warehouse', 'Warehouse 2', 2);
INSERT INTO oms.items (sku, name, backorderable) SELECT 'SKU-' || i, 'Item ' || i, true FROM generate_series(1, 6) i;
INSERT INTO oms.suppliers (code, name) VALUES ('SUP', 'Supplier');
SELECT count(oms.set_stock('SKU-' || i, l, 8, 'init')) AS stock_rows FROM generate_series(1, 6) i, unnest(ARRAY['WH-1', 'WH-2']) l;

-- Raw recomputation of the summary, per key.
CREATE TEMP VIEW raw_sales AS
SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, l.location_id, l.item_id, o.currency,
	   o.ship_country AS country, o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
	   count(*) FILTER (WHERE l.line_no = 1) AS orders, count(*) AS lines,
	   count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
										  AND h.line_no = l.line_no AND h.from_state IS NULL AND h.to_state = 'backordered')) AS lines_backordered,
	   sum(l.qty) AS units, sum(l.qty_cancelled) AS units_cancelled, sum(l.qty_shipped) AS units_shipped,
	   sum(l.qty_returned) AS units_returned, sum(l.qty * l.unit_price) AS gross,
	   sum(l.qty_cancelled * l.unit_price) AS cancelled_value, sum(l.qty_returned * l.unit_price) AS returned_value
  FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
 WHERE o.tenant_id = oms.current_tenant_id()
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
CREATE TEMP VIEW kept_sales AS
SELECT day, channel_id, location_id, item_id, currency, country, seller, page,
	   sum(orders) AS orders, sum(lines) AS lines, sum(lines_backordered) AS lines_backordered, sum(units) AS units,
	   sum(units_cancelled) AS units_cancelled, sum(units_shipped) AS units_shipped, sum(units_returned) AS units_returned,
	   sum(gross) AS gross, sum(cancelled_value) AS cancelled_value, sum(returned_value) AS returned_value
  FROM (SELECT * FROM oms.bi_sales_daily WHERE tenant_id = oms.current_tenant_id()
		UNION ALL SELECT * FROM oms.bi_sales_deltas WHERE tenant_id = oms.current_tenant_id()) u
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
HAVING sum(lines) <> 0 OR sum(orders) <> 0 OR sum(units) <> 0 OR sum(gross) <> 0 OR sum(lines_backordered) <> 0;
CREATE TEMP VIEW mismatches AS
(SELECT 'raw only' AS side, * FROM raw_sales EXCEPT SELECT 'raw only', * FROM kept_sales)
UNION ALL
(SELECT 'summary only', * FROM kept_sales EXCEPT SELECT 'summary only', * FROM raw_sales);

-- The per-dimension rollup (oms_bi.sales_by_dimension) against the line-grain summary.
CREATE TEMP VIEW by_dim_from_lines AS
SELECT s.day, v.dimension,
	   CASE v.dimension WHEN 'channel' THEN s.channel WHEN 'product' THEN s.sku WHEN 'brand' THEN s.brand
			WHEN 'category' THEN s.category WHEN 'country' THEN s.country WHEN 'seller' THEN s.seller ELSE s.page END AS key,
	   CASE WHEN v.dimension = 'channel' THEN s.location END AS location, s.currency,
	   sum(s.orders) AS orders, sum(s.lines) AS lines, sum(s.units) AS units, sum(s.units_cancelled) AS units_cancelled,
	   sum(s.units_returned) AS units_returned, sum(s.revenue) AS revenue
  FROM oms_bi.sales_daily s
 CROSS JOIN (VALUES ('channel'), ('product'), ('brand'), ('category'), ('country'), ('seller'), ('page')) v(dimension)
 GROUP BY 1, 2, 3, 4, 5;
CREATE TEMP VIEW by_dim AS
SELECT day, dimension, key, location, currency, sum(orders) AS orders, sum(lines) AS lines, sum(units) AS units,
	   sum(units_cancelled) AS units_cancelled, sum(units_returned) AS units_returned, sum(revenue) AS revenue
  FROM oms_bi.sales_by_dimension GROUP BY 1, 2, 3, 4, 5;
CREATE TEMP VIEW rollup_mismatches AS
SELECT count(*) AS rollup_mismatches
  FROM ((SELECT * FROM by_dim EXCEPT SELECT * FROM by_dim_from_lines)
		UNION ALL (SELECT * FROM by_dim_from_lines EXCEPT SELECT * FROM by_dim)) x;

-- The order summary against the tables (late shipments and returns as perfect orders count them).
CREATE TEMP VIEW raw_orders AS
SELECT o.id AS order_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.customer_ref AS customer, o.currency,
	   count(*)::int AS lines, sum(l.qty - l.qty_cancelled) AS units, sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue,
	   sum(l.qty_returned) AS units_returned, (count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty))::int AS lines_incomplete,
	   (SELECT count(*) FROM oms_bi.shipments s WHERE s.order_id = o.id AND s.on_time IS FALSE)::int AS late_shipments,
	   (SELECT count(*) FROM oms.returns r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.id)::int AS returns
  FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
 WHERE o.tenant_id = oms.current_tenant_id()
 GROUP BY o.tenant_id, o.id;
CREATE TEMP VIEW kept_orders AS
SELECT order_id, day, channel_id, customer, currency, lines, units, revenue, units_returned, lines_incomplete, late_shipments, returns
  FROM oms.bi_order_sales WHERE tenant_id = oms.current_tenant_id();
-- The shipment summary against oms_bi.shipments (computed from the tables).
CREATE TEMP VIEW raw_shipments AS
SELECT shipment_id, order_id, day, channel, location, promised_date, on_time, hours_to_ship, hours_to_deliver
  FROM oms_bi.shipments WHERE day IS NOT NULL;
CREATE TEMP VIEW kept_shipments AS
SELECT f.shipment_id, f.order_id, f.day, c.code AS channel, lo.code AS location, f.promised_date, f.on_time, f.hours_to_ship,
	   f.hours_to_deliver
  FROM oms.bi_shipments f
  JOIN oms.channels c ON c.tenant_id = f.tenant_id AND c.id = f.channel_id
  JOIN oms.locations lo ON lo.tenant_id = f.tenant_id AND lo.id = f.location_id
 WHERE f.tenant_id = oms.current_tenant_id();
-- Top customers and orders computed directly from the order lines.
CREATE FUNCTION pg_temp.top_direct(p_dimension text, p_from date, p_to date, p_n int, p_metric text)
	RETURNS TABLE (rank bigint, key text, label text, orders bigint, units bigint, revenue numeric, currency text,
				   returns bigint, last_order date)
	LANGUAGE sql AS $$
SELECT row_number() OVER (ORDER BY CASE p_metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
										WHEN 'orders' THEN g.orders ELSE g.returns END DESC NULLS LAST, g.key),
	   g.key, CASE WHEN g.key IS NULL THEN '(none)' ELSE g.label END, g.orders, g.units, g.revenue,
	   oms.reporting_currency()::text, g.returns, g.last_order
  FROM (SELECT CASE p_dimension WHEN 'customer' THEN l.customer ELSE l.order_id::text END AS key,
			   max(CASE p_dimension WHEN 'customer' THEN l.customer_name ELSE l.external_id END) AS label,
			   count(DISTINCT l.order_id) AS orders, sum(l.qty - l.qty_cancelled)::bigint AS units,
			   CASE WHEN bool_and(l.revenue_reporting IS NOT NULL) THEN sum(l.revenue_reporting) END AS revenue,
			   sum(l.qty_returned)::bigint AS returns, max(l.day) AS last_order
		  FROM oms_bi.order_lines l
		 WHERE l.day BETWEEN p_from AND p_to
		 GROUP BY 1) g
 ORDER BY 1 LIMIT p_n
$$;
-- The shipment KPIs and perfect orders computed directly from oms_bi.shipments and the tables.
CREATE TEMP VIEW kpis_direct AS
SELECT h.day, h.channel, h.location, count(*) AS shipments, count(*) FILTER (WHERE h.on_time) AS shipments_on_time,
	   round((count(*) FILTER (WHERE h.on_time))::numeric / nullif(count(h.on_time), 0), 4) AS on_time_ship_rate,
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY h.hours_to_ship)::numeric, 1) AS ship_hours_median,
	   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY h.hours_to_ship)::numeric, 1) AS ship_hours_p90,
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY h.hours_to_deliver)::numeric, 1) AS deliver_hours_median,
	   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY h.hours_to_deliver)::numeric, 1) AS deliver_hours_p90
  FROM oms_bi.shipments h WHERE h.day IS NOT NULL GROUP BY 1, 2, 3;
CREATE TEMP VIEW perfect_direct AS
SELECT o.day, o.channel, count(*) AS orders,
	   count(*) FILTER (WHERE q.complete AND q.on_time AND NOT q.returned) AS perfect_orders,
	   round((count(*) FILTER (WHERE q.complete AND q.on_time AND NOT q.returned))::numeric / count(*), 4) AS perfect_order_rate
  FROM oms_bi.orders o
 CROSS JOIN LATERAL (
		SELECT bool_and(l.qty_cancelled = 0 AND l.qty_shipped = l.qty) AS complete,
			   bool_or(l.qty_returned > 0) OR EXISTS (SELECT FROM oms.returns r WHERE r.tenant_id = oms.current_tenant_id()
															AND r.order_id = o.order_id) AS returned,
			   NOT EXISTS (SELECT FROM oms_bi.shipments s WHERE s.order_id = o.order_id AND s.on_time IS FALSE) AS on_time
		  FROM oms.order_lines l
		 WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = o.order_id) q
 GROUP BY o.day, o.channel;
CREATE TEMP VIEW report_mismatches AS
SELECT (SELECT count(*) FROM ((SELECT * FROM raw_orders EXCEPT SELECT * FROM kept_orders)
							  UNION ALL (SELECT * FROM kept_orders EXCEPT SELECT * FROM raw_orders)) x) AS orders,
	   (SELECT count(*) FROM ((SELECT * FROM raw_shipments EXCEPT SELECT * FROM kept_shipments)
							  UNION ALL (SELECT * FROM kept_shipments EXCEPT SELECT * FROM raw_shipments)) x) AS shipments,
	   (SELECT count(*) FROM (VALUES ('customer'), ('order')) d(dim), (VALUES ('revenue'), ('units'), ('orders'), ('returns')) m(metric),
			   (VALUES (date '2026-10-30', date '2026-11-06', 1000), (date '2026-11-01', date '2026-11-02', 3)) p(f, t, n),
			   LATERAL ((SELECT * FROM oms_bi.top(d.dim, p.f, p.t, p.n, m.metric) EXCEPT SELECT * FROM pg_temp.top_direct(d.dim, p.f, p.t, p.n, m.metric))
						UNION ALL (SELECT * FROM pg_temp.top_direct(d.dim, p.f, p.t, p.n, m.metric) EXCEPT SELECT * FROM oms_bi.top(d.dim, p.f, p.t, p.n, m.metric))) x) AS top,
	   (SELECT count(*) FROM ((SELECT * FROM kpis_direct
							   EXCEPT SELECT day, channel, location, shipments, shipments_on_time, on_time_ship_rate, ship_hours_median,
										   ship_hours_p90, deliver_hours_median, deliver_hours_p90
										FROM oms_bi.kpis_daily WHERE shipments IS NOT NULL)
							  UNION ALL (SELECT day, channel, location, shipments, shipments_on_time, on_time_ship_rate, ship_hours_median,
												ship_hours_p90, deliver_hours_median, deliver_hours_p90
										   FROM oms_bi.kpis_daily WHERE shipments IS NOT NULL
										 EXCEPT SELECT * FROM kpis_direct)) x) AS kpis,
	   (SELECT count(*) FROM ((SELECT * FROM perfect_direct EXCEPT SELECT * FROM oms_bi.perfect_orders_daily)
							  UNION ALL (SELECT * FROM oms_bi.perfect_orders_daily EXCEPT SELECT * FROM perfect_direct)) x) AS perfect;

-- 120 random steps: place (1 to 3 lines, over 4 days, 2 currencies, countries, sellers, pages,
-- customers), change an order's address, receive stock for a backordered SKU, cancel an order,
-- ship an order (delivered or not), return a shipped unit. A step the API refuses is skipped.
SELECT setseed(0.42);
DO $$
DECLARE
	v_step		int;
	v_dice		float8;
	v_order		bigint;
	v_ship		bigint;
	v_rma		bigint;
	v_lines		jsonb;
	v_n			int := 0;
	v_done		jsonb := '{}';
BEGIN
	FOR v_step IN 1..120 LOOP
		v_dice := random();
		BEGIN
			IF v_dice < 0.5 OR v_n < 5 THEN
				SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (1 + floor(random() * 6))::int,
													'qty', 1 + floor(random() * 3)::int, 'unit_price', 5 + floor(random() * 20)::int))
				  INTO v_lines FROM generate_series(1, 1 + floor(random() * 3)::int);
				v_n := v_n + 1;
				PERFORM oms.place_order(jsonb_build_object(
					'channel', CASE WHEN random() < 0.6 THEN 'web' ELSE 'app' END,
					'external_id', 'R-' || v_n,
					'placed_at', to_jsonb(timestamptz '2026-11-01 08:00Z' + (floor(random() * 4) || ' days')::interval),
					'ship_to', jsonb_build_object('country', (ARRAY['DE', 'FR', 'IT'])[1 + floor(random() * 3)::int]),
					'customer', jsonb_strip_nulls(jsonb_build_object('ref', (ARRAY['C1', 'C2', 'C3', 'C4', NULL])[1 + floor(random() * 5)::int],
																	 'name', (ARRAY['Ann Lee', 'Bo Chan', NULL])[1 + floor(random() * 3)::int])),
					'attributes', jsonb_strip_nulls(jsonb_build_object(
						'seller', (ARRAY['ann', 'ben', NULL])[1 + floor(random() * 3)::int],
						'source_page', (ARRAY['/home', '/sale', NULL])[1 + floor(random() * 3)::int])),
					'lines', v_lines));
				v_done := jsonb_set(v_done, '{place}', to_jsonb(coalesce((v_done ->> 'place')::int, 0) + 1));
			ELSE
				SELECT o.id INTO v_order FROM oms.orders o
				 WHERE o.tenant_id = oms.current_tenant_id() ORDER BY random() LIMIT 1;
				IF v_dice < 0.55 THEN
					PERFORM oms.change_address(v_order, jsonb_build_object('country', (ARRAY['DE', 'FR', 'IT', 'ES'])[1 + floor(random() * 4)::int]));
					v_done := jsonb_set(v_done, '{address}', to_jsonb(coalesce((v_done ->> 'address')::int, 0) + 1));
				ELSIF v_dice < 0.61 THEN
					-- Stock arrives for a backordered SKU: the waiting lines get WH-1.
					SELECT oms.create_purchase_order('SUP', 'WH-1', jsonb_build_array(jsonb_build_object('sku', i.sku, 'qty', 4, 'unit_cost', 1)),
													 date '2026-11-10')
					  INTO v_rma
					  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
					 WHERE l.tenant_id = oms.current_tenant_id() AND l.state::text = 'backordered'
					 ORDER BY random() LIMIT 1;
					PERFORM oms.receive_purchase_order(v_rma);
					v_done := jsonb_set(v_done, '{receipt}', to_jsonb(coalesce((v_done ->> 'receipt')::int, 0) + 1));
				ELSIF v_dice < 0.68 THEN
					PERFORM oms.cancel_order(v_order, 'random');
					v_done := jsonb_set(v_done, '{cancel}', to_jsonb(coalesce((v_done ->> 'cancel')::int, 0) + 1));
				ELSIF v_dice < 0.85 THEN
					PERFORM oms.release_order(v_order);
					SELECT oms.pack(v_order, lo.code) INTO v_ship
					  FROM oms.order_lines l JOIN oms.locations lo ON lo.tenant_id = l.tenant_id AND lo.id = l.location_id
					 WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = v_order AND l.state::text = 'released'
					 LIMIT 1;
					PERFORM oms.ship(v_ship, 'dhl.standard', 'T-' || v_ship);
					IF random() < 0.5 THEN
						PERFORM oms.deliver(v_ship);
					END IF;
					v_done := jsonb_set(v_done, '{ship}', to_jsonb(coalesce((v_done ->> 'ship')::int, 0) + 1));
				ELSE
					SELECT o.id INTO v_order FROM oms.orders o
					 WHERE o.tenant_id = oms.current_tenant_id()
					   AND EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id
									  AND l.qty_shipped > l.qty_returned)
					 ORDER BY random() LIMIT 1;
					SELECT oms.create_return(v_order, jsonb_build_array(jsonb_build_object('line_no', l.line_no, 'qty', 1)), 'random')
					  INTO v_rma
					  FROM oms.order_lines l
					 WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = v_order AND l.qty_shipped > l.qty_returned
					 ORDER BY l.line_no LIMIT 1;
					PERFORM oms.receive_return(v_rma, (SELECT jsonb_agg(jsonb_build_object('line_no', x.line_no, 'qty', x.qty,
																							 'disposition', 'restock'))
														 FROM oms.return_lines x
														WHERE x.tenant_id = oms.current_tenant_id() AND x.return_id = v_rma));
					v_done := jsonb_set(v_done, '{return}', to_jsonb(coalesce((v_done ->> 'return')::int, 0) + 1));
				END IF;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			v_done := jsonb_set(v_done, '{refused}', to_jsonb(coalesce((v_done ->> 'refused')::int, 0) + 1));
		END;
	END LOOP;
	-- Counts vary with the random draws; only that each kind happened is checked.
	RAISE NOTICE 'kinds done: %', (SELECT string_agg(k, ' ' ORDER BY k) FROM jsonb_object_keys(v_done - 'refused') k);
END
$$;

-- Enough happened: backorders, cancellations, shipments, returns, two currencies.
SELECT count(*) > 20 AS orders, sum(lines_backordered) > 0 AS backorders, sum(units_cancelled) > 0 AS cancelled,
	   sum(units_shipped) > 0 AS shipped, sum(units_returned) > 0 AS returned, count(DISTINCT currency) AS currencies
  FROM raw_sales;
-- Promised dates are counted from the real date: make some shipped lines' promises earlier, so
-- that their shipments were late (the line trigger re-evaluates the shipments of such lines).
UPDATE oms.order_lines l SET promised_date = date '2026-11-01'
 WHERE l.tenant_id = oms.current_tenant_id() AND l.qty_shipped > 0 AND l.order_id % 2 = 0;
-- ... and on the summaries of orders and shipments: late shipments, returns, customers, moved orders.
SELECT count(*) FILTER (WHERE late_shipments > 0) > 0 AS late, count(*) FILTER (WHERE returns > 0) > 0 AS with_returns,
	   count(DISTINCT customer) > 2 AS customers, count(*) FILTER (WHERE lines_incomplete = 0) > 0 AS complete
  FROM oms.bi_order_sales WHERE tenant_id = oms.current_tenant_id();
SELECT count(*) > 0 AS moved_backorders FROM oms.order_history h
 WHERE h.tenant_id = oms.current_tenant_id() AND h.from_state IS NULL AND h.to_state = 'backordered'
   AND EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = h.tenant_id AND l.order_id = h.order_id
				  AND l.line_no = h.line_no AND l.location_id IS NOT NULL);
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT * FROM report_mismatches;
SELECT oms.compact_bi_sales() > 0 AS compacted;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT * FROM report_mismatches;
SELECT oms.rebuild_bi_sales() > 0 AS rebuilt;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT * FROM report_mismatches;
-- A few more orders after compaction: deltas on top of the rollup.
SELECT oms.place_order('{"channel": "web", "external_id": "LATE-1", "placed_at": "2026-11-02T10:00:00Z", "ship_to": {"country": "DE"},
	"lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 7}, {"sku": "SKU-2", "qty": 1, "unit_price": 3}]}') > 0 AS placed;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT * FROM report_mismatches;
-- And oms_bi.sales_daily shows the same totals as the lines.
SELECT (SELECT sum(units) FROM oms_bi.sales_daily) = (SELECT sum(qty) FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id()) AS units_agree,
	   (SELECT sum(orders) FROM oms_bi.sales_daily) = (SELECT count(*) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()) AS orders_agree;
-- A tenant's own copy of oms_bi (oms.bi_tenant_schema): every view gives the rows oms_bi gives
-- for that tenant; a role granted the copy reads it without the setting oms.tenant, with contact
-- data masked, and nothing else; the copy is made again on a second call.
SET oms.today = '2026-11-10';
CREATE ROLE r_bi_copy;
SET client_min_messages = warning;
SELECT oms.bi_tenant_schema(oms.current_tenant_id(), 'r_bi_copy') = 'oms_bi_' || oms.current_tenant_id() AS copied,
	   oms.bi_tenant_schema(oms.current_tenant_id(), 'r_bi_copy') = 'oms_bi_' || oms.current_tenant_id() AS copied_again;
CREATE TEMP TABLE copy_check (view_name text, same boolean, row_count bigint);
DO $$
DECLARE
	v text;
	v_same boolean;
	v_rows bigint;
BEGIN
	FOR v IN SELECT table_name FROM information_schema.views WHERE table_schema = 'oms_bi' AND table_name <> 'platform_daily' ORDER BY 1 LOOP
		EXECUTE format('SELECT (SELECT array_agg(t::text ORDER BY t::text) FROM oms_bi.%1$I t)
							   IS NOT DISTINCT FROM (SELECT array_agg(t::text ORDER BY t::text) FROM %2$I.%1$I t),
							   (SELECT count(*) FROM oms_bi.%1$I)', v, 'oms_bi_' || oms.current_tenant_id())
		  INTO v_same, v_rows;
		INSERT INTO copy_check VALUES (v, v_same, v_rows);
	END LOOP;
END
$$;
SELECT count(*) AS views, count(*) FILTER (WHERE NOT same) AS differing, count(*) FILTER (WHERE row_count > 0) > 20 AS with_rows
  FROM copy_check;
SELECT view_name FROM copy_check WHERE NOT same;
-- Across tenants (administrators): this tenant's row of oms_bi.platform_daily agrees with its orders.
SELECT p.orders = s.orders AND p.units = s.units AND p.revenue = s.revenue AS platform_agrees
  FROM (SELECT sum(orders) AS orders, sum(units) AS units, sum(revenue) AS revenue FROM oms_bi.platform_daily WHERE tenant = 't_bi_sum') p,
	   (SELECT count(*) AS orders, sum(units) AS units, sum(revenue) AS revenue FROM oms_bi.order_sales) s;
SELECT has_table_privilege('oms_reader', 'oms_bi.platform_daily', 'SELECT') AS reader_sees_platform,
	   has_table_privilege('oms_admin', 'oms_bi.platform_daily', 'SELECT') AS admin_sees_platform;
SELECT set_config('test.copy', 'oms_bi_' || oms.current_tenant_id(), false) IS NOT NULL AS noted;
RESET oms.tenant;
SET ROLE r_bi_copy;
DO $$
DECLARE
	v_n bigint;
	v_masked boolean;
BEGIN
	EXECUTE format('SELECT count(*), bool_and(customer_name IS NULL OR customer_name NOT IN (''Ann Lee'', ''Bo Chan''))
					  FROM %I.orders', current_setting('test.copy')) INTO v_n, v_masked;
	RAISE WARNING 'copy read without oms.tenant: % orders, names masked: %', v_n > 0, v_masked;
	EXECUTE format('SELECT count(*) FROM %I.top_customers', current_setting('test.copy')) INTO v_n;
	RAISE WARNING 'top customers from the copy: %', v_n > 0;
END
$$;
SELECT count(*) FROM oms_bi.orders;
RESET ROLE;
SELECT oms.bi_tenant_schema(NULL);
SELECT oms.bi_tenant_schema(-5);
SET oms.tenant = 't_bi_sum';
DO $$ BEGIN EXECUTE format('DROP SCHEMA %I CASCADE', current_setting('test.copy')); END $$;
DROP OWNED BY r_bi_copy;
DROP ROLE r_bi_copy;
RESET client_min_messages;
RESET oms.today;
