-- The BI sales summary (oms.bi_sales_daily + oms.bi_sales_deltas) equals a recomputation from
-- the raw tables after a random mix of places (some backordered), cancellations, shipments and
-- returns; again after compaction; and oms.rebuild_bi_sales() gives the same summary.
SELECT oms.create_tenant('t_bi_sum') > 0 AS created;
SET oms.tenant = 't_bi_sum';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES
	('web', 'web', 'Web shop', 'EUR', false), ('app', 'app', 'App', 'USD', false);
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1), ('WH-2', 'warehouse', 'Warehouse 2', 2);
INSERT INTO oms.items (sku, name, backorderable) SELECT 'SKU-' || i, 'Item ' || i, true FROM generate_series(1, 6) i;
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

-- 120 random steps: place (1 to 3 lines, over 4 days, 2 currencies, countries, sellers, pages),
-- cancel an order, ship an order, return a shipped unit. A step the API refuses is skipped.
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
					'attributes', jsonb_strip_nulls(jsonb_build_object(
						'seller', (ARRAY['ann', 'ben', NULL])[1 + floor(random() * 3)::int],
						'source_page', (ARRAY['/home', '/sale', NULL])[1 + floor(random() * 3)::int])),
					'lines', v_lines));
				v_done := jsonb_set(v_done, '{place}', to_jsonb(coalesce((v_done ->> 'place')::int, 0) + 1));
			ELSE
				SELECT o.id INTO v_order FROM oms.orders o
				 WHERE o.tenant_id = oms.current_tenant_id() ORDER BY random() LIMIT 1;
				IF v_dice < 0.65 THEN
					PERFORM oms.cancel_order(v_order, 'random');
					v_done := jsonb_set(v_done, '{cancel}', to_jsonb(coalesce((v_done ->> 'cancel')::int, 0) + 1));
				ELSIF v_dice < 0.85 THEN
					PERFORM oms.release_order(v_order);
					SELECT oms.pack(v_order, lo.code) INTO v_ship
					  FROM oms.order_lines l JOIN oms.locations lo ON lo.tenant_id = l.tenant_id AND lo.id = l.location_id
					 WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = v_order AND l.state::text = 'released'
					 LIMIT 1;
					PERFORM oms.ship(v_ship, 'dhl.standard', 'T-' || v_ship);
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
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT oms.compact_bi_sales() > 0 AS compacted;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
SELECT oms.rebuild_bi_sales() > 0 AS rebuilt;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
-- A few more orders after compaction: deltas on top of the rollup.
SELECT oms.place_order('{"channel": "web", "external_id": "LATE-1", "placed_at": "2026-11-02T10:00:00Z", "ship_to": {"country": "DE"},
	"lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 7}, {"sku": "SKU-2", "qty": 1, "unit_price": 3}]}') > 0 AS placed;
SELECT * FROM mismatches;
SELECT * FROM rollup_mismatches;
-- And oms_bi.sales_daily shows the same totals as the lines.
SELECT (SELECT sum(units) FROM oms_bi.sales_daily) = (SELECT sum(qty) FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id()) AS units_agree,
	   (SELECT sum(orders) FROM oms_bi.sales_daily) = (SELECT count(*) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()) AS orders_agree;
