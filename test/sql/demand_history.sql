-- Demand history: kept by the order_lines triggers as orders are placed (with "placed_at" for
-- imported history), cancelled and returned; compaction and rebuild give the same numbers.
SELECT oms.create_tenant('t_demand') > 0 AS created;
SET oms.tenant = 't_demand';
SET datestyle = 'ISO, YMD';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web', 'web', 'Web shop', 'EUR'), ('pos', 'pos', 'Stores', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-A', 'warehouse', 'Warehouse A', 1, true, false),
	('STORE-1', 'store', 'Store 1', 5, false, true);
INSERT INTO oms.items (sku, name, backorderable) VALUES ('SKU-A', 'Shirt', false), ('SKU-B', 'Sofa', true);
SELECT oms.set_stock('SKU-A', 'WH-A', 100, 'init'), oms.set_stock('SKU-A', 'STORE-1', 10, 'init');

-- DH-W1 on 1 March (UTC); DH-W2 at 23:30 on 1 March in UTC-2, which is 01:30 on 2 March in UTC;
-- DH-P1 click & collect on 2 March; DH-W3 a backorder (no location yet) on 2 March; DH-W4 now.
SELECT oms.place_order('{"channel": "web", "external_id": "DH-W1", "placed_at": "2024-03-01T10:00:00Z",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-A", "qty": 2, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "DH-W2", "placed_at": "2024-03-01T23:30:00-02:00",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-A", "qty": 3, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "pos", "external_id": "DH-P1", "placed_at": "2024-03-02 09:00+00",
	"pickup": "STORE-1", "lines": [{"sku": "SKU-A", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "DH-W3", "placed_at": "2024-03-02T12:00:00Z",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-B", "qty": 4, "unit_price": 500}, {"sku": "SKU-A", "qty": 5, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "DH-W4",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-A", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT external_id, placed_at AT TIME ZONE 'UTC' AS placed_at_utc FROM oms.orders
 WHERE tenant_id = oms.current_tenant_id() AND external_id <> 'DH-W4' ORDER BY id;

-- Day by day (DH-W4's day is today, shown as such). Every order is one delta row per SKU and location.
CREATE TEMP VIEW demand AS
SELECT sku, location, channel, CASE WHEN day = oms.demand_day(now()) THEN 'today' ELSE day::text END AS day,
	   ordered, cancelled, returned, demand, lines
  FROM oms.daily_demand ORDER BY day, sku, location, channel;
SELECT * FROM demand;
SELECT count(*) AS deltas FROM oms.demand_deltas WHERE tenant_id = oms.current_tenant_id();

-- Cancelling DH-W1 counts 2 cancelled on 1 March; a state change alone writes no delta.
SELECT oms.cancel_order((SELECT id FROM oms.orders WHERE external_id = 'DH-W1' AND tenant_id = oms.current_tenant_id()), 'customer request');
-- A return (as the lifecycle records it: qty_shipped, then qty_returned) counts on the order's day.
UPDATE oms.order_lines SET qty_shipped = 3 WHERE tenant_id = oms.current_tenant_id()
   AND order_id = (SELECT id FROM oms.orders WHERE external_id = 'DH-W2' AND tenant_id = oms.current_tenant_id());
UPDATE oms.order_lines SET qty_returned = 1 WHERE tenant_id = oms.current_tenant_id()
   AND order_id = (SELECT id FROM oms.orders WHERE external_id = 'DH-W2' AND tenant_id = oms.current_tenant_id());
SELECT count(*) AS deltas FROM oms.demand_deltas WHERE tenant_id = oms.current_tenant_id();
-- When the backorder is allocated at WH-A, its demand moves from "no location" to WH-A.
UPDATE oms.order_lines SET location_id = (SELECT id FROM oms.locations WHERE code = 'WH-A' AND tenant_id = oms.current_tenant_id())
 WHERE tenant_id = oms.current_tenant_id() AND item_id = (SELECT id FROM oms.items WHERE sku = 'SKU-B' AND tenant_id = oms.current_tenant_id());
SELECT * FROM demand;

-- Compaction folds the deltas into the summary: the same numbers, no delta left.
SELECT oms.compact_demand_history() AS deltas_folded;
SELECT count(*) AS deltas FROM oms.demand_deltas WHERE tenant_id = oms.current_tenant_id();
SELECT * FROM demand;

-- A rebuild from the order lines writes the same summary (rows that net to zero aside).
CREATE TEMP TABLE before AS
SELECT item_id, location_id, channel_id, day, ordered, cancelled, returned, lines FROM oms.demand_history
 WHERE tenant_id = oms.current_tenant_id() AND (ordered, cancelled, returned, lines) <> (0, 0, 0, 0);
SELECT oms.rebuild_demand_history() AS rows_rebuilt;
SELECT count(*) AS differences FROM (
	(SELECT * FROM before EXCEPT SELECT item_id, location_id, channel_id, day, ordered, cancelled, returned, lines
	   FROM oms.demand_history WHERE tenant_id = oms.current_tenant_id())
	UNION ALL
	(SELECT item_id, location_id, channel_id, day, ordered, cancelled, returned, lines
	   FROM oms.demand_history WHERE tenant_id = oms.current_tenant_id() EXCEPT SELECT * FROM before)) d;
-- A partial rebuild (from 2 March) leaves 1 March alone; uncompacted deltas of those days go too.
SELECT oms.place_order('{"channel": "web", "external_id": "DH-W5", "placed_at": "2024-03-02T18:00:00Z",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-A", "qty": 7, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.rebuild_demand_history('2024-03-02') AS rows_rebuilt;
SELECT count(*) AS deltas FROM oms.demand_deltas WHERE tenant_id = oms.current_tenant_id();
SELECT * FROM demand;

-- Bad "placed_at": 22023 naming the field and value, nothing written.
CREATE FUNCTION pg_temp.try_order(p jsonb, OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM oms.place_order(p);
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
SELECT (pg_temp.try_order(jsonb_build_object('channel', 'web', 'external_id', 'E-' || n, 'placed_at', v,
		'ship_to', '{"country": "IT"}'::jsonb, 'lines', '[{"sku": "SKU-A", "qty": 1, "unit_price": 1}]'::jsonb))).*
  FROM (VALUES (1, '"2999-01-01T00:00:00Z"'::jsonb), (2, '"yesterday"'), (3, '20240301'),
			   (4, '"2024-02-30T10:00:00Z"'), (5, 'null')) AS c(n, v)
 ORDER BY n;
SELECT count(*) AS orders_written FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND external_id LIKE 'E-%';

-- oms.today: a date setting for reproducible runs; anything but YYYY-MM-DD is refused.
SET oms.today = '2024-03-10';
SELECT oms.today();
SET oms.today = '2024-02-30';
SET oms.today = 'tomorrow';
RESET oms.today;
SELECT oms.today() = current_date AS today_is_current_date;
