-- oms.promise: the delivery options of a checkout page, worked out without reserving anything.
--
-- The network of test routing.sql (customer at 0, 0 on the equator; 1 degree = 111.19 km) with
-- two carrier services, and a second store:
--   post.standard: 4 + 0.5/kg + 0.002/km, 1 day + 1 per 300 km, CO2 1 g/km + 0.1 g/kg/km
--   fast.express:  9 + 1/kg + 0.004/km,   1 day + 1 per 1000 km, CO2 3 g/km + 0.2 g/kg/km
--   WH-NEAR  100.1 km, handling 0, 2.00 per package    WH-FAR   500.4 km, handling 1, 0.50
--   ST-GREEN  50.0 km, handling 2, 3.00, pickup          ST-EAST 333.6 km (lon -3), handling 1, pickup
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_promise') > 0 AS created;
SET oms.tenant = 't_promise';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1),
	('fast', 'express', 'express', 9, 1, 0.004, 1, 1000, 3, 0.2);
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup) VALUES
	('WH-NEAR', 'warehouse', 'Near warehouse', 2, 0, 0.90, 0, 2.00, false),
	('WH-FAR', 'warehouse', 'Far warehouse', 1, 0, 4.50, 1, 0.50, false),
	('ST-GREEN', 'store', 'Green store', 3, 0, 0.45, 2, 3.00, true),
	('ST-EAST', 'store', 'East store', 4, 0, -3.00, 1, 3.00, true);
INSERT INTO oms.items (sku, name, weight, preorderable) VALUES
	('SHIRT', 'Shirt', 1, false), ('MUG', 'Mug', 0.5, false), ('BOOK', 'Book', 1, true);
SELECT oms.set_stock('SHIRT', 'WH-NEAR', 10, 'init'), oms.set_stock('SHIRT', 'WH-FAR', 10, 'init'),
	   oms.set_stock('SHIRT', 'ST-GREEN', 1, 'init'), oms.set_stock('SHIRT', 'ST-EAST', 5, 'init'),
	   oms.set_stock('MUG', 'WH-NEAR', 5, 'init'), oms.set_stock('MUG', 'ST-EAST', 5, 'init');

-- 1. Two shirts: standard from WH-NEAR by post (2 + 4 + 1 + 0.20 = 7.20, 1 day, 100.1 * 1.2 =
--    120 g); express from WH-NEAR too (2 + 9 + 2 + 0.40 = 13.40, also 1 day, 100.1 * 3.4 = 340 g);
--    click & collect at ST-EAST, the only store with 2 shirts, ready after its handling day.
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": 2}]', '{"country": "IT", "lat": 0, "lon": 0}');
-- 2. A customer at longitude 6 (WH-FAR 166.8 km, WH-NEAR 567.1 km), profile fastest: by post both
--    take 2 days (WH-FAR 1 + 1 + 0, WH-NEAR 0 + 1 + 1), and WH-FAR is cheaper (0.5 + 4 + 0.5 + 0.33
--    = 5.33); express from WH-NEAR takes 1 day (0 + 1 + 0; 2 + 9 + 1 + 2.27 = 14.27). Stores by distance.
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 6}', 'fastest');
-- 3. Shirt and mug: WH-NEAR has both, one package of 1.5 kg (2 + 4 + 0.75 + 0.20 = 6.95); of the
--    stores only ST-EAST has both.
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": 1}, {"sku": "MUG", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'cheapest');
-- 4. A pre-order: the date follows the supply (2025-03-20 at WH-FAR, + 1 + 2 days by post, + 1 + 1
--    by express), the shirt ships apart from WH-NEAR: two packages.
INSERT INTO oms.supply (item_id, location_id, qty, expected_date)
	SELECT i.id, l.id, 10, '2025-03-20' FROM oms.items i, oms.locations l
	 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'BOOK' AND l.tenant_id = i.tenant_id AND l.code = 'WH-FAR';
SELECT option, location, delivery_date, cost, packages, ships_from, detail
  FROM oms.promise('[{"sku": "BOOK", "qty": 1}, {"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');
-- 5. Click & collect at a named store: from its own stock, or transferred there.
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": 1}]', '{"pickup": "ST-GREEN"}');
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": 1}, {"sku": "MUG", "qty": 1}]', '{"pickup": "ST-GREEN"}');
-- Nothing was reserved.
SELECT sum(reserved) AS reserved FROM oms.stock WHERE tenant_id = oms.current_tenant_id();
-- 6. Bad input is refused as oms.route refuses it.
SELECT * FROM oms.promise('[]', '{"country": "IT"}');
SELECT * FROM oms.promise('[{"sku": "SHIRT", "qty": -1}]', '{"country": "IT"}');
SELECT * FROM oms.promise('[{"sku": "NOPE", "qty": 1}]', '{"country": "IT"}');
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
