-- BI reports (issue 9) on a small data set whose answers are worked out by hand in the comments:
-- six orders in two currencies (EUR, USD; reporting currency EUR; the USD rate of 3 November is
-- missing), a backorder, a cancellation, an on-time and a late shipment, a delivery, a return.
-- Times of shipment, delivery and the stock ledger are set on the rows (fixtures), so that the
-- cycle times do not depend on when the test runs.
SELECT oms.create_tenant('t_bi') > 0 AS created;
SET oms.tenant = 't_bi';
SET oms_bi.reporting_currency = 'EUR';
SET oms.today = '2026-11-05';
SET TIME ZONE 'UTC';
-- The orders are dated November 2026 and returns are checked against the real clock: a return
-- window of ten years keeps the test's return valid whenever it runs.
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization, return_days) VALUES
	('web', 'web', 'Web shop', 'EUR', false, 3650), ('mkt', 'marketplace', 'Marketplace', 'USD', false, 3650);
INSERT INTO oms.locations (code, kind, name, priority, country) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1, 'DE');
INSERT INTO oms.items (sku, name, brand, category, unit_cost, backorderable) VALUES
	('TEE', 'T-shirt', 'Acme', 'Apparel', 5, false), ('MUG', 'Mug', 'Potter', 'Home', 3, false),
	('CAP', 'Cap', 'Acme', 'Apparel', 4, true);
SELECT oms.set_stock('TEE', 'WH-1', 20, 'init'), oms.set_stock('MUG', 'WH-1', 10, 'init'), oms.set_stock('CAP', 'WH-1', 0, 'init');
INSERT INTO oms.exchange_rates (rate_date, from_currency, to_currency, rate) VALUES
	('2026-11-02', 'USD', 'EUR', 0.9), ('2026-11-04', 'USD', 'EUR', 0.95);

-- O1 web EUR 1 Nov, Anna (C1), DE, seller alice, page /sale: TEE 2 x 20 + MUG 1 x 10 (+ shipping 5).
SELECT oms.place_order('{"channel": "web", "external_id": "O1", "placed_at": "2026-11-01T10:00:00Z", "shipping_amount": 5,
	"customer": {"ref": "C1", "name": "Anna Berg", "email": "anna@example.com", "phone": "+491701234567"},
	"ship_to": {"country": "DE", "city": "Berlin", "line1": "Hauptstr. 1"},
	"attributes": {"seller": "alice", "source_page": "/sale"},
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 20}, {"sku": "MUG", "qty": 1, "unit_price": 10}]}') AS o1 \gset
-- O2 web EUR 1 Nov, Bob (C2), FR, page /home: CAP 1 x 15 (backordered: no stock) + TEE 1 x 20.
SELECT oms.place_order('{"channel": "web", "external_id": "O2", "placed_at": "2026-11-01T12:00:00Z",
	"customer": {"ref": "C2", "name": "Bob Chen", "email": "bob@example.org"}, "ship_to": {"country": "FR", "city": "Paris"},
	"attributes": {"source_page": "/home"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 15}, {"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS o2 \gset
-- O3 mkt USD 2 Nov, Anna (C1), DE, seller bob, page /sale: MUG 3 x 10 USD = 27 EUR at 0.9.
SELECT oms.place_order('{"channel": "mkt", "external_id": "O3", "placed_at": "2026-11-02T09:00:00Z", "currency": "USD",
	"customer": {"ref": "C1", "name": "Anna Berg"}, "ship_to": {"country": "DE", "city": "Hamburg"},
	"attributes": {"seller": "bob", "source_page": "/sale"},
	"lines": [{"sku": "MUG", "qty": 3, "unit_price": 10}]}') AS o3 \gset
-- O4 mkt USD 3 Nov, Cara (C3), US: TEE 1 x 30 USD; no rate for 3 Nov: its EUR amounts are NULL.
SELECT oms.place_order('{"channel": "mkt", "external_id": "O4", "placed_at": "2026-11-03T09:00:00Z", "currency": "USD",
	"customer": {"ref": "C3", "name": "Cara Diaz"}, "ship_to": {"country": "US", "city": "Boston"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 30}]}') AS o4 \gset
-- O5 web EUR 3 Nov, Bob (C2), FR: MUG 2 x 10, cancelled.
SELECT oms.place_order('{"channel": "web", "external_id": "O5", "placed_at": "2026-11-03T11:00:00Z",
	"customer": {"ref": "C2", "name": "Bob Chen"}, "ship_to": {"country": "FR", "city": "Paris"},
	"lines": [{"sku": "MUG", "qty": 2, "unit_price": 10}]}') AS o5 \gset
SELECT oms.cancel_order(:o5, 'customer changed mind');
-- O6 web EUR 4 Nov, Dan (C4), DE: MUG 1 x 10; the perfect order.
SELECT oms.place_order('{"channel": "web", "external_id": "O6", "placed_at": "2026-11-04T12:00:00Z",
	"customer": {"ref": "C4", "name": "Dan Eve"}, "ship_to": {"country": "DE", "city": "Bonn"},
	"lines": [{"sku": "MUG", "qty": 1, "unit_price": 10}]}') AS o6 \gset

-- Promised dates (fixtures): O1 3 Nov, O3 3 Nov, O6 6 Nov.
UPDATE oms.order_lines SET promised_date = CASE order_id WHEN :o1 THEN date '2026-11-03' WHEN :o3 THEN date '2026-11-03'
	ELSE date '2026-11-06' END
 WHERE tenant_id = oms.current_tenant_id() AND order_id IN (:o1, :o3, :o6);
-- Ship O1 (2 Nov 10:00, 24 h after placement, on time; delivered 4 Nov 10:00, 72 h), O3 (5 Nov
-- 09:00, 72 h, late: promised 3 Nov), O6 (5 Nov 12:00, 24 h, on time).
SELECT oms.release_order(:o1), oms.release_order(:o3), oms.release_order(:o6);
SELECT oms.pack(:o1, 'WH-1') AS s1 \gset
SELECT oms.pack(:o3, 'WH-1') AS s3 \gset
SELECT oms.pack(:o6, 'WH-1') AS s6 \gset
SELECT oms.ship(:s1, 'dhl.standard', 'T1'), oms.ship(:s3, 'ups.ground', 'T3'), oms.ship(:s6, 'dhl.standard', 'T6');
UPDATE oms.shipments SET shipped_at = CASE id WHEN :s1 THEN timestamptz '2026-11-02 10:00Z' WHEN :s3 THEN timestamptz '2026-11-05 09:00Z'
	ELSE timestamptz '2026-11-05 12:00Z' END
 WHERE tenant_id = oms.current_tenant_id();
UPDATE oms.stock_movements SET moved_at = '2026-11-03 10:00Z' WHERE tenant_id = oms.current_tenant_id() AND kind = 'shipment';
SELECT oms.deliver(:s1, '2026-11-04 10:00Z');
-- O1: one T-shirt comes back, too small, restocked.
SELECT oms.create_return(:o1, '[{"line_no": 1, "qty": 1}]', 'too small') AS r1 \gset
SELECT oms.receive_return(:r1, '[{"line_no": 1, "qty": 1, "disposition": "restock"}]');
UPDATE oms.returns SET created_at = '2026-11-04 18:00Z' WHERE tenant_id = oms.current_tenant_id();

-- Sales per day, channel, location (EUR): 1 Nov web WH-1: O1 TEE 40 + MUG 10 + O2 TEE 20 = 70,
-- order O1 (its line 1 is there), 3 lines, 4 units, 3 shipped, 1 returned; 1 Nov web NULL: O2's
-- backordered CAP 15, order O2, 1 line backordered. 2 Nov mkt: 30 USD = 27 EUR. 3 Nov mkt: 30 USD,
-- no rate: NULL. 3 Nov web: 20 cancelled: 0. 4 Nov web: 10.
SELECT day, channel, location, sku, currency, country, seller, page, orders, lines, lines_backordered AS bo, units,
	   units_cancelled AS canc, units_shipped AS shp, units_returned AS ret, revenue, revenue_reporting AS rev_eur
  FROM oms_bi.sales_daily ORDER BY day, channel, location, sku;

-- KPIs. 1 Nov web: 2 orders, 4 lines of which 1 backordered: fill 0.75, backorder 0.25 on both
-- rows; WH-1 return rate 1/3. 2 Nov web WH-1: the O1 shipment, on time, 24 h, delivered in 72 h.
-- 3 Nov web: cancellation rate 2/2 = 1. 5 Nov: O3 late (72 h) for mkt, O6 on time (24 h) for web.
SELECT day, channel, location, orders, revenue, average_order_value AS aov, units, units_per_order AS upo,
	   fill_rate, backorder_rate AS bo_rate, cancellation_rate AS canc_rate, return_rate
  FROM oms_bi.kpis_daily ORDER BY day, channel, location;
SELECT day, channel, location, shipments, shipments_on_time AS on_time, on_time_ship_rate AS on_time_rate,
	   ship_hours_median AS ship_med, ship_hours_p90 AS ship_p90, deliver_hours_median AS dlv_med, deliver_hours_p90 AS dlv_p90
  FROM oms_bi.kpis_daily WHERE shipments IS NOT NULL ORDER BY day, channel, location;
-- Over the whole period: median of 24, 72, 24 hours is 24; p90 = 24 + 0.8 * 48 = 62.4 (linear).
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_ship) AS med, round(percentile_cont(0.9) WITHIN GROUP (ORDER BY hours_to_ship)::numeric, 1) AS p90
  FROM oms_bi.shipments;

-- Perfect orders: 1 Nov: O1 returned, O2 not shipped: 0 of 2; 2 Nov mkt: O3 late: 0 of 1;
-- 3 Nov: O4 not shipped, O5 cancelled; 4 Nov web: O6 complete, on time, kept: 1 of 1.
SELECT * FROM oms_bi.perfect_orders_daily ORDER BY day, channel;

-- Returns and their reasons.
SELECT order_id = :o1 AS is_o1, day, channel, reason, state, units, units_received, restocked, refund_amount, currency
  FROM oms_bi.returns;
SELECT * FROM oms_bi.return_reasons;

-- Inventory: TEE 20 - 2 shipped + 1 back = 19 on hand, 2 reserved (O2, O4), value 19 x 5 = 95,
-- 2 shipped in 30 days: turnover 2 x 365 / 30 / 19 = 1.28, cover 19 / (2 / 30) = 285 days.
-- MUG 10 - 1 - 3 - 1 = 5, value 15, 5 shipped: turnover 5 x 365 / 30 / 5 = 12.17, cover 30 days.
-- CAP: nothing on hand, nothing shipped.
SELECT sku, location, on_hand, available, stock_value, units_shipped_30d AS shipped_30d, turnover, days_of_cover
  FROM oms_bi.inventory_kpis ORDER BY sku;

-- Data quality: the USD order of 3 Nov has no rate to EUR.
SELECT * FROM oms_bi.data_quality;

-- Top-N over 1-5 Nov by revenue (EUR). Products: MUG 10 + 27 + 0 + 10 = 47, units 1 + 3 + 0 + 1 = 5;
-- CAP 15; TEE NULL (O4 has no rate), units 2 + 1 + 1 = 4, 1 returned.
SELECT * FROM oms_bi.top('product', '2026-11-01', '2026-11-05');
-- By units: MUG 5, TEE 4 (ties would go by key), CAP 1.
SELECT rank, key, units FROM oms_bi.top('product', '2026-11-01', '2026-11-05', 2, 'units');
-- Customers: C1 O1 50 + O3 27 = 77 (2 orders, 6 units, last 2 Nov); C2 O2 35 + O5 0 = 35 (2
-- orders, 2 units: O5's were cancelled); C4 10; C3 NULL.
SELECT * FROM oms_bi.top('customer', '2026-11-01', '2026-11-05');
-- Orders (lines, without shipping): O1 50, O2 35, O3 27, O6 10, O5 0, O4 NULL.
SELECT rank, label, orders, units, revenue FROM oms_bi.top('order', '2026-11-01', '2026-11-05');
-- Countries: DE O1 50 + O3 27 + O6 10 = 87 (3 orders); FR 35 (2); US NULL (1).
SELECT rank, key, label, orders, units, revenue FROM oms_bi.top('country', '2026-11-01', '2026-11-05');
-- Brands (orders = lines): Potter (MUG) 47, 4 lines; Acme (TEE, CAP) NULL, 4 lines. Categories alike.
SELECT rank, key, orders, units, revenue, returns FROM oms_bi.top('brand', '2026-11-01', '2026-11-05');
SELECT rank, key, orders, units, revenue FROM oms_bi.top('category', '2026-11-01', '2026-11-05');
-- Sellers: alice 50, bob 27, none (O2, O4, O5, O6) NULL.
SELECT rank, key, label, orders, revenue FROM oms_bi.top('seller', '2026-11-01', '2026-11-05');
-- Channels: web O1 + O2 + O5 + O6 = 95 (4 orders); mkt NULL (2).
SELECT rank, key, orders, units, revenue FROM oms_bi.top('channel', '2026-11-01', '2026-11-05');
-- Days: 1 Nov 85, 2 Nov 27, 4 Nov 10, 3 Nov NULL. Weekdays: 1 Nov 2026 is a Sunday (7).
SELECT rank, key, label, orders, revenue FROM oms_bi.top('day', '2026-11-01', '2026-11-05');
SELECT rank, key, label, orders, revenue FROM oms_bi.top('weekday', '2026-11-01', '2026-11-05');
-- Pages: /sale O1 + O3 = 77 (2), /home 35, none NULL.
SELECT rank, key, label, orders, revenue FROM oms_bi.top('page', '2026-11-01', '2026-11-05');
-- The views per report cover the 30 days to today (5 Nov): the same as above.
SELECT rank, key, revenue FROM oms_bi.top_products;
SELECT count(*) AS views_per_report FROM pg_views WHERE schemaname = 'oms_bi' AND viewname LIKE 'top\_%';
\set VERBOSITY terse
SELECT * FROM oms_bi.top('colour', '2026-11-01', '2026-11-05');
SELECT * FROM oms_bi.top('product', '2026-11-01', '2026-11-05', 10, 'margin');
\set VERBOSITY default

-- With a rate for 3 Nov the NULLs become numbers: TEE 40 + 20 + 30 x 0.92 = 87.6.
INSERT INTO oms.exchange_rates VALUES ('2026-11-03', 'USD', 'EUR', 0.92);
SELECT rank, key, revenue FROM oms_bi.top('product', '2026-11-01', '2026-11-05');
SELECT count(*) AS data_quality_issues FROM oms_bi.data_quality;
-- Reporting in USD: EUR orders have no EUR->USD rate: NULL and counted, never 1.0.
SET oms_bi.reporting_currency = 'USD';
SELECT rank, key, revenue, currency FROM oms_bi.top('channel', '2026-11-01', '2026-11-05');
SELECT day, currency, reporting_currency, orders, lines, amount FROM oms_bi.data_quality ORDER BY day;
RESET oms_bi.reporting_currency;

-- Compaction folds the deltas into the summary and its per-dimension rollup and changes no
-- answer (with the 3 Nov rate now: TEE 87.60, mkt 54.60, 3 Nov 27.60 + 0).
SELECT oms.compact_bi_sales() > 0 AS folded;
SELECT count(*) AS deltas_left FROM oms.bi_sales_deltas WHERE tenant_id = oms.current_tenant_id();
SELECT rank, key, orders, units, revenue FROM oms_bi.top('channel', '2026-11-01', '2026-11-05');
SELECT rank, key, orders, units, revenue, returns FROM oms_bi.top('product', '2026-11-01', '2026-11-05');
SELECT rank, key, orders, revenue FROM oms_bi.top('day', '2026-11-01', '2026-11-05');
SELECT day, channel, location, orders, revenue, fill_rate, cancellation_rate FROM oms_bi.kpis_daily WHERE orders IS NOT NULL ORDER BY 1, 2, 3;

-- Drill-down: Anna's orders, lines and shipments (as the operator sees them).
SELECT order_id = :o1 AS is_o1, external_id, order_state, customer_email, line_no, sku, qty, line_state, qty_shipped,
	   qty_returned, regexp_replace(shipments, '^\d+', 'S') AS shipments
  FROM oms_bi.customer_orders WHERE customer = 'C1' ORDER BY placed_at, line_no;

-- oms_reader: reads oms_bi with contact data masked, nothing of schema oms; a BI login acts for
-- the tenants granted to it (here to the group role itself).
SELECT oms.grant_tenant('oms_reader', 't_bi') AS granted;
SET ROLE oms_reader;
SELECT customer, customer_name, customer_email, customer_phone, ship_street, country, city FROM oms_bi.orders WHERE external_id = 'O1';
SELECT rank, key, label, revenue FROM oms_bi.top('customer', '2026-11-01', '2026-11-05', 2);
-- The reports read through definer functions and views of their own (no access to schema oms).
SELECT rank, key, label, revenue FROM oms_bi.top('product', '2026-11-01', '2026-11-05', 2);
SELECT rank, label, revenue FROM oms_bi.top('order', '2026-11-01', '2026-11-05', 2);
SELECT count(*) AS product_rows FROM oms_bi.product_sales('2026-11-01', '2026-11-05');
SELECT count(*) AS perfect_rows, sum(orders) AS orders FROM oms_bi.perfect_orders_daily;
SELECT count(*) AS kpi_rows FROM oms_bi.kpis_daily;
\set VERBOSITY terse
SELECT count(*) FROM oms.orders;
SELECT count(*) FROM oms.bi_sales_daily;
SELECT oms.compact_bi_sales();
-- Another tenant: refused while not granted (42501); once granted, its rows only (it has none).
SET oms.tenant = 'default';
SELECT count(*) AS other_tenant_orders FROM oms_bi.orders;
\set VERBOSITY default
RESET ROLE;
SELECT oms.grant_tenant('oms_reader', 'default') AS granted;
SET ROLE oms_reader;
SELECT count(*) AS other_tenant_orders FROM oms_bi.orders;
RESET ROLE;
SELECT oms.revoke_tenant('oms_reader', 'default') AND oms.revoke_tenant('oms_reader', 't_bi') AS revoked;
SET oms.tenant = 't_bi';
SELECT has_schema_privilege('oms_reader', 'oms', 'USAGE') AS reader_uses_oms,
	   has_schema_privilege('oms_reader', 'oms_bi', 'USAGE') AS reader_uses_oms_bi,
	   has_schema_privilege('public', 'oms_bi', 'USAGE') AS public_uses_oms_bi;
-- Every view of oms_bi and every column is documented.
SELECT c.relname AS undocumented_view FROM pg_class c
 WHERE c.relnamespace = 'oms_bi'::regnamespace AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT c.relname, a.attname AS undocumented_column FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = 'oms_bi'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
   AND col_description(c.oid, a.attnum) IS NULL;
