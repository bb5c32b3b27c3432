-- oms.route: capacity, cutoff, location kinds, distance limits, destinations without coordinates,
-- exclusions, cart holds, click & collect, backorders and pre-orders.
--
-- The network of test routing.sql (customer at 0, 0 on the equator; 1 degree = 111.19 km):
--   WH-NEAR  100.1 km, handling 0, 2.00 per package   (a 1 kg shirt by post: 6.70, 1 day, 110 g)
--   WH-FAR   500.4 km, handling 1, 0.50 per package   (6.00, 3 days, 550 g)
--   ST-GREEN  50.0 km, handling 2, 3.00 per package   (7.60, 3 days, 55 g)
-- balanced scores cost + days + kg CO2 / 2 + 2 per package: NEAR 9.76, FAR 11.28, GREEN 12.63.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_route_rules') > 0 AS created;
SET oms.tenant = 't_route_rules';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';		-- a Monday; 11:00 in Rome
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1);
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup, country) VALUES
	('WH-NEAR', 'warehouse', 'Near warehouse', 2, 0, 0.90, 0, 2.00, false, 'IT'),
	('WH-FAR', 'warehouse', 'Far warehouse', 1, 0, 4.50, 1, 0.50, false, 'IT'),
	('ST-GREEN', 'store', 'Green store', 3, 0, 0.45, 2, 3.00, true, 'IT');
INSERT INTO oms.items (sku, name, weight, backorderable, preorderable) VALUES
	('SHIRT', 'Shirt', 1, false, false), ('MUG', 'Mug', 0.5, false, false),
	('BOOK', 'Book not yet out', 1, false, true), ('SOFA', 'Sofa on order', 1, true, false),
	('VASE', 'Vase', 1, false, false);
SELECT oms.set_stock('SHIRT', 'WH-NEAR', 10, 'init'), oms.set_stock('SHIRT', 'WH-FAR', 10, 'init'),
	   oms.set_stock('SHIRT', 'ST-GREEN', 10, 'init'), oms.set_stock('MUG', 'WH-NEAR', 3, 'init');
CREATE TEMP VIEW shirt AS
SELECT location, qty, cost, eta, score, reason FROM oms.route('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');
SELECT * FROM shirt;

-- 1. Capacity: WH-NEAR takes 1 order a day and has taken it today: the order moves to WH-FAR.
UPDATE oms.locations SET daily_capacity = 1 WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';
SELECT * FROM shirt;
INSERT INTO oms.location_capacity_used (location_id, day, used)
	SELECT id, '2025-03-03', 1 FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';
SELECT * FROM shirt;
SELECT location, chosen, reason FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}')
 WHERE kind = 'candidate';
-- Tomorrow it has room again.
SET oms.now = '2025-03-04 10:00:00+00';
SELECT * FROM shirt;
SET oms.now = '2025-03-03 10:00:00+00';
UPDATE oms.locations SET daily_capacity = NULL WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';

-- 2. Cutoff: WH-NEAR hands over orders placed before 12:00 in Rome the same day. At 10:00 UTC
--    (11:00 in Rome) the shirt arrives tomorrow; at 11:30 UTC (12:30 in Rome) a day later.
UPDATE oms.locations SET cutoff_time = '12:00', timezone = 'Europe/Rome' WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';
SELECT * FROM shirt;
SET oms.now = '2025-03-03 11:30:00+00';
SELECT * FROM shirt;
-- A day later, balanced still prefers WH-NEAR (6.70 + 2 days + 0.06 + 2 = 10.76 < 11.28).
-- The cutoff is local time: at 11:30 UTC it is 06:30 in New York, before its cutoff.
UPDATE oms.locations SET timezone = 'America/New_York' WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';
SELECT * FROM shirt;
SET oms.now = '2025-03-03 10:00:00+00';
UPDATE oms.locations SET cutoff_time = NULL, timezone = NULL WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';

-- 3. Location kinds and distance: a tenant profile that ships only from warehouses within 300 km.
INSERT INTO oms.routing_profiles (tenant_id, code, name, weight_cost, weight_co2, location_kinds, max_distance_km)
	VALUES (oms.current_tenant_id(), 'local-wh', 'Local warehouses', 0.01, 1, '{warehouse}', 300);
SELECT location, chosen, reason FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'local-wh')
 WHERE kind IN ('candidate', 'result');
-- A tenant profile with a built-in code overrides the built-in one for this tenant only.
INSERT INTO oms.routing_profiles (tenant_id, code, name, weight_cost) VALUES (oms.current_tenant_id(), 'balanced', 'Our balanced: cost only', 1);
SELECT * FROM shirt;
DELETE FROM oms.routing_profiles WHERE tenant_id = oms.current_tenant_id() AND code = 'balanced';

-- 4. Destinations without coordinates: the country's centroid (Italy: 42.83, 12.83), or distances
--    unknown (0 km) for a country without one; a profile that limits distance then refuses.
SELECT kind, location, distance_km, cost, eta, chosen, reason
  FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT"}') WHERE kind <> 'plan';
SELECT kind, location, distance_km, cost, eta, chosen, reason
  FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}]', '{"country": "ZZ"}') WHERE kind IN ('input', 'result');
SELECT * FROM oms.route('[{"sku": "SHIRT", "qty": 1}]', '{"country": "ZZ"}', 'local-wh');

-- 5. Exclusions (a location that rejected the line) and cart holds (units held at a location
--    keep the line there when they cover it).
SELECT location, reason FROM oms.route('[{"sku": "SHIRT", "qty": 1, "exclude": ["WH-NEAR"]}]', '{"country": "IT", "lat": 0, "lon": 0}');
SELECT location, reason FROM oms.route('[{"sku": "SHIRT", "qty": 1, "exclude": ["WH-NEAR", "WH-FAR", "ST-GREEN"]}]', '{"country": "IT", "lat": 0, "lon": 0}');
SELECT location, qty, reason FROM oms.route('[{"sku": "SHIRT", "qty": 2, "hold": {"location": "ST-GREEN", "qty": 2}}]', '{"country": "IT", "lat": 0, "lon": 0}');

-- 6. Click & collect: a line the store has is collected there after its 2 handling days; a line
--    it lacks is transferred from the best location to the store (2 mugs, 1 kg, from WH-NEAR to
--    ST-GREEN: 50.0 km, 2 + 4 + 0.5 + 0.10 = 6.60, 1 day by post, then 2 days at the store).
SELECT * FROM oms.route('[{"sku": "SHIRT", "qty": 1}, {"sku": "MUG", "qty": 2}]', '{"pickup": "ST-GREEN"}');
SELECT kind, line_no, location, qty, distance_km, cost, eta, chosen, reason
  FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}, {"sku": "MUG", "qty": 2}]', '{"pickup": "ST-GREEN"}') WHERE kind <> 'plan';

-- 7. Pre-orders and backorders. BOOK (pre-orderable) has no stock: 20 arrive at WH-FAR on
--    2025-03-20, handed over a day later, 2 days by post: 2025-03-23. SOFA (backorderable): 5
--    arrive at WH-NEAR on 2025-03-10 and 10 at WH-FAR on 2025-03-08; 8 are needed: WH-NEAR's
--    do not cover them, WH-FAR's do: 2025-03-08 + 1 + 2 = 2025-03-11. VASE is neither.
INSERT INTO oms.supply (item_id, location_id, qty, expected_date, reference)
	SELECT i.id, l.id, v.qty, v.day::date, v.ref
	  FROM (VALUES ('BOOK', 'WH-FAR', 20, '2025-03-20', 'PO-1'), ('SOFA', 'WH-NEAR', 5, '2025-03-10', 'PO-2'),
				   ('SOFA', 'WH-FAR', 10, '2025-03-08', 'PO-3')) v(sku, loc, qty, day, ref)
	  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = v.sku
	  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.code = v.loc;
SELECT line_no, sku, location, qty, carrier_service, cost, eta, regexp_replace(reason, 'supply \d+', 'supply N') AS reason
  FROM oms.route('[{"sku": "BOOK", "qty": 2}, {"sku": "SOFA", "qty": 8}, {"sku": "VASE", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');
-- 5 sofas: WH-NEAR's supply covers them too, arriving the same day (2025-03-10 + 0 + 1); the
-- tie goes to WH-FAR, priority 1.
SELECT line_no, sku, location, eta, reason
  FROM oms.route('[{"sku": "SOFA", "qty": 5}]', '{"country": "IT", "lat": 0, "lon": 0}');
-- More than any supply: backordered without a date.
SELECT line_no, sku, location, eta, reason
  FROM oms.route('[{"sku": "SOFA", "qty": 50}]', '{"country": "IT", "lat": 0, "lon": 0}');
-- A profile that allows neither.
INSERT INTO oms.routing_profiles (tenant_id, code, name, allow_backorder, allow_preorder)
	VALUES (oms.current_tenant_id(), 'in-stock-only', 'Only what is in stock', false, false);
SELECT line_no, sku, location, reason
  FROM oms.route('[{"sku": "BOOK", "qty": 2}, {"sku": "SOFA", "qty": 8}]', '{"country": "IT", "lat": 0, "lon": 0}', 'in-stock-only');
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
