-- oms.route and oms.route_explain on a small network that can be checked by hand.
--
-- Everything lies on the equator, the customer at longitude 0, so a location at longitude x is
-- x * 111.19493 km away (one degree on a sphere of radius 6371 km). Two carrier services:
--   post.standard:  cost 4 + 0.5/kg + 0.002/km, 1 day + 1 per 300 km, CO2 1 g/km + 0.1 g/kg/km
--   fast.express:   cost 9 + 1/kg + 0.004/km,   1 day + 1 per 1000 km, CO2 3 g/km + 0.2 g/kg/km
-- and three locations:
--   WH-NEAR  warehouse, lon 0.90 (100.1 km), handling 0 days, 2.00 per package, priority 2
--   WH-FAR   warehouse, lon 4.50 (500.4 km), handling 1 day,  0.50 per package, priority 1
--   ST-GREEN store,     lon 0.45 (50.0 km),  handling 2 days, 3.00 per package, priority 3
-- A 1 kg shirt by post costs NEAR 2 + 4 + 0.5 + 0.20 = 6.70, FAR 0.5 + 4 + 0.5 + 1.00 = 6.00,
-- GREEN 3 + 4 + 0.5 + 0.10 = 7.60; arrives after NEAR 0 + 1 = 1 day, FAR 1 + 1 + 1 = 3 days,
-- GREEN 2 + 1 = 3 days; emits NEAR 1.1 * 100.1 = 110 g, FAR 550 g, GREEN 55 g.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_route') > 0 AS created;
SET oms.tenant = 't_route';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';		-- a Monday
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1),
	('fast', 'express', 'express', 9, 1, 0.004, 1, 1000, 3, 0.2);
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup) VALUES
	('WH-NEAR', 'warehouse', 'Near warehouse', 2, 0, 0.90, 0, 2.00, false),
	('WH-FAR', 'warehouse', 'Far warehouse', 1, 0, 4.50, 1, 0.50, false),
	('ST-GREEN', 'store', 'Green store', 3, 0, 0.45, 2, 3.00, true);
INSERT INTO oms.items (sku, name, weight, backorderable, preorderable) VALUES
	('SHIRT', 'Shirt', 1, false, false), ('MUG', 'Mug', 0.5, false, false), ('LAMP', 'Lamp', 2, false, false);
SELECT oms.set_stock('SHIRT', 'WH-NEAR', 10, 'init'), oms.set_stock('SHIRT', 'WH-FAR', 10, 'init'),
	   oms.set_stock('SHIRT', 'ST-GREEN', 10, 'init');
SELECT code, round(oms.distance_km(0, 0, latitude, longitude)::numeric, 2) AS km
  FROM oms.locations WHERE tenant_id = oms.current_tenant_id() ORDER BY code;

-- 1. The four built-in profiles choose by what they weigh: cheapest FAR (6.00), fastest NEAR
--    (1 day), greenest GREEN (55 g), balanced NEAR (cost + days + CO2/2 + 2 per package: NEAR
--    6.70 + 1 + 0.06 + 2 = 9.76, FAR 6.00 + 3 + 0.28 + 2 = 11.28, GREEN 7.60 + 3 + 0.03 + 2 = 12.63).
SELECT p.profile, r.*
  FROM unnest(ARRAY['cheapest', 'fastest', 'greenest', 'balanced']) AS p(profile)
 CROSS JOIN LATERAL oms.route('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', p.profile) r;
-- The default profile is balanced.
SELECT location, score FROM oms.route('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');

-- 2. Explain: every candidate with its cost, ETA, CO2 and score alone, and why it lost.
SELECT kind, line_no, location, qty, distance_km, carrier_service, cost, eta, co2_g, score, chosen, reason
  FROM oms.route_explain('[{"sku": "SHIRT", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'cheapest');

-- 3. Splits. MUG is only at WH-NEAR and LAMP only at WH-FAR: two packages, because no location
--    has both. SHIRT with MUG: WH-NEAR has both, one package of 1.5 kg (2 + 4 + 0.75 + 0.20 =
--    6.95) beats SHIRT from WH-FAR (6.00) plus MUG from WH-NEAR (6.45) even for cheapest.
SELECT oms.set_stock('MUG', 'WH-NEAR', 5, 'init'), oms.set_stock('LAMP', 'WH-FAR', 5, 'init');
SELECT * FROM oms.route('[{"sku": "MUG", "qty": 1}, {"sku": "LAMP", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');
SELECT * FROM oms.route('[{"sku": "SHIRT", "qty": 1}, {"sku": "MUG", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'cheapest');
-- A split when it is cheaper: CAP and SOCK (1 kg each) are together only at 3PL-X (100.1 km,
-- 11.00 per package, handling 0): one package costs 11 + 4 + 1 + 0.20 = 16.20; CAP from WH-NEAR
-- (6.70) and SOCK from WH-FAR (6.00) cost 12.70. Cheapest splits; balanced keeps one package
-- (16.20 + 1 day + 0.06 + 2 = 19.26 against 12.70 + 3 days + 0.33 + 4 = 20.03); fastest and
-- greenest too (1 day against 3; 120 g against 660 g).
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, cost_per_package) VALUES
	('3PL-X', '3pl', 'Expensive 3PL', 4, 0, 0.90, 11.00);
INSERT INTO oms.items (sku, name, weight) VALUES ('CAP', 'Cap', 1), ('SOCK', 'Sock', 1);
SELECT oms.set_stock('CAP', 'WH-NEAR', 5, 'init'), oms.set_stock('SOCK', 'WH-FAR', 5, 'init'),
	   oms.set_stock('CAP', '3PL-X', 5, 'init'), oms.set_stock('SOCK', '3PL-X', 5, 'init');
SELECT p.profile, r.line_no, r.sku, r.location, r.cost, r.eta, r.co2_g, r.reason
  FROM unnest(ARRAY['cheapest', 'fastest', 'greenest', 'balanced']) AS p(profile)
 CROSS JOIN LATERAL oms.route('[{"sku": "CAP", "qty": 1}, {"sku": "SOCK", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', p.profile) r;
SELECT kind, line_no, location, qty, cost, eta, co2_g, score, chosen, reason
  FROM oms.route_explain('[{"sku": "CAP", "qty": 1}, {"sku": "SOCK", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'cheapest')
 WHERE kind <> 'input';
-- A line no location has in full is split over locations: 12 shirts, 10 at each. The location
-- with the most takes first, the cheapest of those for 10 (WH-FAR 0.5 + 4 + 5 + 1.00 = 10.50,
-- WH-NEAR 11.20, ST-GREEN 12.10), then the cheapest for the other 2 (WH-NEAR 2 + 4 + 1 + 0.20 = 7.20).
SELECT * FROM oms.route('[{"sku": "SHIRT", "qty": 12}]', '{"country": "IT", "lat": 0, "lon": 0}', 'cheapest');
-- A profile allowing one package: MUG and LAMP cannot both ship; the line with the better
-- package goes, the other is unservable (neither item is backorderable).
INSERT INTO oms.routing_profiles (tenant_id, code, name, weight_cost, weight_days, max_packages)
	VALUES (oms.current_tenant_id(), 'onebox', 'One package only', 1, 1, 1);
SELECT * FROM oms.route('[{"sku": "MUG", "qty": 1}, {"sku": "LAMP", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}', 'onebox');

-- 4. Drop-ship: VASE is only at the vendor, which ships it itself.
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude) VALUES ('VEN-1', 'vendor', 'Vase maker', 9, 0, 1.8);
INSERT INTO oms.items (sku, name, weight) VALUES ('VASE', 'Vase', 3);
SELECT oms.set_stock('VASE', 'VEN-1', 4, 'init');
SELECT * FROM oms.route('[{"sku": "SHIRT", "qty": 1}, {"sku": "VASE", "qty": 1}]', '{"country": "IT", "lat": 0, "lon": 0}');

-- 5. Ties: without carrier services or coordinates (another tenant) every package scores the
--    same, and location priority decides, then the lower id. Deterministic: the same answer twice.
SELECT oms.create_tenant('t_route_tie') > 0 AS created;
SET oms.tenant = 't_route_tie';
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('B', 'warehouse', 'B', 5), ('A', 'warehouse', 'A', 5), ('C', 'warehouse', 'C', 1);
INSERT INTO oms.items (sku, name) VALUES ('X', 'X');
SELECT oms.set_stock('X', 'A', 1, 'init'), oms.set_stock('X', 'B', 1, 'init');
SELECT location, cost, eta, score, reason FROM oms.route('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}');
SELECT kind, location, qty, distance_km, cost, score, chosen, reason FROM oms.route_explain('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}')
 WHERE kind IN ('candidate', 'plan');
SELECT oms.set_stock('X', 'C', 1, 'init');
SELECT location, cost, eta, score, reason FROM oms.route('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}');
SELECT (SELECT array_agg(r ORDER BY r.line_no) FROM oms.route('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}') r)
	 = (SELECT array_agg(r ORDER BY r.line_no) FROM oms.route('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}') r) AS same_answer;
SELECT kind, location, qty, distance_km, cost, score, chosen, reason FROM oms.route_explain('[{"sku": "X", "qty": 1}]', '{"country": "ZZ"}');
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
