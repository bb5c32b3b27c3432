-- BI benchmark data set (issue 9): tenant "bench_bi" with <orders> orders of 3 lines over <days>
-- days up to 2026-11-22, a shipment per order, in EUR and USD (with the rates), then the BI
-- summary rebuilt from the lines. psql variables (psql -v): orders (default 100000), days (365).
--   psql -v orders=1000000 -f test/bench/bi_load.sql     (1M orders / 3M lines)
-- Rows are inserted directly with session_replication_role = replica (no triggers, no foreign
-- key checks: the data is made consistent by construction), which loads about 10x faster than
-- place_order; oms.rebuild_bi_sales() then builds the summaries the triggers would have kept.
-- Run test/bench/bi_top.pgbench and bi_kpis.pgbench against it (README, "BI benchmark").
\set ON_ERROR_STOP on
\if :{?orders}
\else
\set orders 100000
\endif
\if :{?days}
\else
\set days 365
\endif
\timing on
SELECT pg_catalog.setseed(0.42);
SELECT oms.create_tenant('bench_bi') > 0 AS tenant;
SET oms.tenant = 'bench_bi';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES
	('web', 'web', 'Web', 'EUR', true), ('app', 'app', 'App', 'EUR', true),
	('mkt', 'marketplace', 'Marketplace', 'USD', true), ('pos', 'pos', 'Stores', 'EUR', false);
INSERT INTO oms.locations (code, kind, name, country, priority)
SELECT 'BL' || n, CASE WHEN n <= 3 THEN 'warehouse' ELSE 'store' END, 'Location ' || n, 'IT', n FROM generate_series(1, 10) n;
INSERT INTO oms.items (sku, name, unit_cost, brand, category)
SELECT 'B-' || n, 'Item ' || n, 2 + n % 40, 'Brand ' || (n % 50), 'Category ' || (n % 20) FROM generate_series(1, 5000) n;
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, 50 + (i.id + l.id) % 100 FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = i.tenant_id;
INSERT INTO oms.exchange_rates (rate_date, from_currency, to_currency, rate)
SELECT d::date, 'USD', 'EUR', 0.92 FROM generate_series(date '2026-11-22' - :days, date '2026-11-22', interval '1 day') d
ON CONFLICT DO NOTHING;

SET session_replication_role = replica;
CREATE TEMP TABLE bi_ch AS SELECT id, code, row_number() OVER (ORDER BY id) AS n FROM oms.channels WHERE tenant_id = oms.current_tenant_id();
CREATE TEMP TABLE bi_loc AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM oms.locations WHERE tenant_id = oms.current_tenant_id();
CREATE TEMP TABLE bi_item AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM oms.items WHERE tenant_id = oms.current_tenant_id();

INSERT INTO oms.orders (channel_id, external_id, state, customer_ref, customer_email, customer_name, ship_to, ship_country,
						ship_city, currency, subtotal, shipping_amount, total, attributes, placed_at)
SELECT c.id, 'BO-' || g, 'shipped', 'C' || (1 + floor(random() * (:orders / 5 + 1))::int),
	   'c' || g || '@example.com', 'Customer ' || g, '{"line1": "Via Roma 1", "country": "IT"}',
	   (ARRAY['IT', 'DE', 'FR', 'ES', 'AT', 'NL', 'BE', 'PL'])[1 + floor(random() * 8)::int], 'City',
	   CASE WHEN c.code = 'mkt' THEN 'USD' ELSE 'EUR' END, 0, 0, 0,
	   jsonb_build_object('seller', 'seller-' || floor(random() * 30)::int, 'source_page', '/page-' || floor(random() * 40)::int),
	   timestamptz '2026-11-22 23:59:59Z' - random() * (:days || ' days')::interval
  FROM generate_series(1, :orders) g
  JOIN bi_ch c ON c.n = 1 + g % 4;
-- Statistics first: analysed before this tenant had orders (make bench), the planner would loop.
ANALYZE oms.orders, bi_ch, bi_loc, bi_item;
INSERT INTO oms.order_lines (order_id, line_no, item_id, qty, unit_price, state, location_id, promised_date, qty_shipped)
SELECT o.id, ln, it.id, q.qty, 5 + (it.n % 50), 'shipped', lo.id, (o.placed_at AT TIME ZONE 'UTC')::date + 2, q.qty
  FROM oms.orders o
 CROSS JOIN generate_series(1, 3) ln
 CROSS JOIN LATERAL (SELECT 1 + floor(random() * 3)::int AS qty, 1 + floor(random() * 5000)::int AS item,
							1 + floor(random() * 10)::int AS loc WHERE ln > 0 AND o.id > 0) q
  JOIN bi_item it ON it.n = q.item
  JOIN bi_loc lo ON lo.n = q.loc
 WHERE o.tenant_id = oms.current_tenant_id();
ANALYZE oms.order_lines;
UPDATE oms.orders o SET subtotal = s.v, total = s.v
  FROM (SELECT order_id, sum(qty * unit_price) AS v FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id() GROUP BY 1) s
 WHERE o.tenant_id = oms.current_tenant_id() AND o.id = s.order_id;
-- One shipment per order, from its line 1's location, 6 to 78 hours after placement.
INSERT INTO oms.shipments (order_id, location_id, state, carrier, service, tracking, packed_at, shipped_at, status_at)
SELECT l.order_id, l.location_id, 'shipped', 'dhl', 'standard', 'BT-' || l.order_id, s.at, s.at, s.at
  FROM oms.order_lines l
  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
 CROSS JOIN LATERAL (SELECT o.placed_at + (6 + random() * 72) * interval '1 hour' AS at WHERE l.line_no > 0) s
 WHERE l.tenant_id = oms.current_tenant_id() AND l.line_no = 1;
INSERT INTO oms.shipment_lines (shipment_id, order_id, line_no, qty)
SELECT s.id, l.order_id, l.line_no, l.qty
  FROM oms.shipments s JOIN oms.order_lines l ON l.tenant_id = s.tenant_id AND l.order_id = s.order_id
 WHERE s.tenant_id = oms.current_tenant_id();
RESET session_replication_role;
SELECT oms.rebuild_bi_sales() AS summary_rows;
ANALYZE;
SELECT count(*) AS orders FROM oms.orders WHERE tenant_id = oms.current_tenant_id();
SELECT count(*) AS lines FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id();
