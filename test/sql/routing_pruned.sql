-- Pruned routing: a tenant with more than 64 active locations has oms.route, oms._route
-- (place_order) and oms.promise read the locations whose score bounds are lowest first, and stop
-- when no other location can beat the plan found (src/routing.c, "pruned search"). This test
-- proves the answers are those of the full search (oms.route_pruning = off) over a network of 150
-- locations with uneven stock (lines split, locations short, stores without the cart, a location
-- in a time zone of its own, one over its daily capacity), for many carts and destinations, under
-- every profile, in every delivery mode; and that the cache of the tenant's locations follows a
-- change of them.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_pruned') > 0 AS created;
SET oms.tenant = 't_pruned';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'economy', 'economy', 3, 0.4, 0.001, 3, 250, 0.8, 0.08),
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1),
	('fast', 'express', 'express', 9, 1, 0.004, 1, 1000, 3, 0.2);
-- 150 locations on a 15 x 10 grid over Italy: every third a store (pickup), handling 0-2 days,
-- package cost 0-2.5, priorities mixed; L-77 works in Europe/Rome time with a 09:00 cutoff;
-- L-50 has a daily capacity of 1, used up today.
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup, country)
SELECT 'L-' || g, CASE WHEN g % 3 = 0 THEN 'store' ELSE 'warehouse' END, 'Location ' || g, 1 + g % 7,
	   37 + (g % 15) * 0.6, 7 + (g / 15) * 1.0, g % 3, (g % 6) * 0.5, g % 3 = 0, 'IT'
  FROM generate_series(0, 149) g;
UPDATE oms.locations SET timezone = 'Europe/Rome', cutoff_time = '09:00' WHERE tenant_id = oms.current_tenant_id() AND code = 'L-77';
UPDATE oms.locations SET daily_capacity = 1 WHERE tenant_id = oms.current_tenant_id() AND code = 'L-50';
INSERT INTO oms.location_capacity_used (tenant_id, location_id, day, used)
SELECT oms.current_tenant_id(), id, '2025-03-03', 1 FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'L-50';
-- 8 items, 0.2 to 3.7 kg; stock uneven: an item is missing at a third of the locations, short at others.
INSERT INTO oms.items (sku, name, weight) SELECT 'P-' || i, 'Product ' || i, 0.2 + i * 0.5 FROM generate_series(0, 7) i;
INSERT INTO oms.stock (tenant_id, item_id, location_id, on_hand)
SELECT oms.current_tenant_id(), i.id, l.id, (x.i * 7 + x.g * 13) % 5
  FROM oms.items i, oms.locations l
 CROSS JOIN LATERAL (SELECT substr(i.sku, 3)::int AS i, substr(l.code, 3)::int AS g) x
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = i.tenant_id AND (x.i + x.g) % 3 <> 0;
SELECT count(*) AS locations, (SELECT count(*) FROM oms.stock WHERE tenant_id = oms.current_tenant_id()) AS stock_rows
  FROM oms.locations WHERE tenant_id = oms.current_tenant_id();

-- The carts: 1 to 4 lines of 1 to 3 units; destinations over Italy and beyond (some far from
-- every location, some with no coordinates: the country's centroid).
CREATE TEMP TABLE carts AS
SELECT c AS cart,
	   (SELECT jsonb_agg(jsonb_build_object('sku', 'P-' || ((c * 3 + k * 5) % 8), 'qty', 1 + (c + k) % 3))
		  FROM generate_series(0, c % 4) k) AS lines,
	   CASE WHEN c % 17 = 0 THEN '{"country": "IT"}'::jsonb
			ELSE jsonb_build_object('country', 'IT', 'lat', 36 + (c * 37 % 1200) / 100.0, 'lon', 6 + (c * 53 % 1300) / 100.0) END AS ship_to,
	   (ARRAY['balanced', 'cheapest', 'fastest', 'greenest'])[1 + c % 4] AS profile
  FROM generate_series(1, 120) c;

CREATE FUNCTION pg_temp.routes(p_pruning boolean) RETURNS TABLE (cart int, line_no int, sku text, location text, qty int,
	carrier_service text, cost numeric, eta date, co2_g numeric, score float8, reason text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('oms.route_pruning', p_pruning::text, true);
	RETURN QUERY SELECT c.cart, r.* FROM carts c, oms.route(c.lines, c.ship_to, c.profile) r;
END
$$;
CREATE FUNCTION pg_temp.promises(p_pruning boolean) RETURNS TABLE (cart int, option text, location text,
	distance_km numeric, delivery_date date, cost numeric, co2_g numeric, packages int, ships_from text,
	carrier_services text, detail text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('oms.route_pruning', p_pruning::text, true);
	RETURN QUERY SELECT c.cart, p.* FROM carts c, oms.promise(c.lines, c.ship_to, c.profile) p;
END
$$;

-- Routes: the same rows, pruned or not; how many carts are served in one package, several, or
-- not entirely from stock (the pruned search stands only in the first case: the others are read
-- whole).
SELECT count(*) AS rows_differing FROM (
	(SELECT * FROM pg_temp.routes(true) EXCEPT ALL SELECT * FROM pg_temp.routes(false))
	UNION ALL
	(SELECT * FROM pg_temp.routes(false) EXCEPT ALL SELECT * FROM pg_temp.routes(true))) d;
SELECT packages, count(*) AS carts
  FROM (SELECT cart, CASE WHEN bool_or(location IS NULL) THEN 'not all from stock'
						  WHEN count(DISTINCT location) = 1 THEN 'one package' ELSE 'several' END AS packages
		  FROM pg_temp.routes(true) GROUP BY cart) x
 GROUP BY packages ORDER BY packages;
-- Promises: the same options.
SELECT count(*) AS options_differing FROM (
	(SELECT * FROM pg_temp.promises(true) EXCEPT ALL SELECT * FROM pg_temp.promises(false))
	UNION ALL
	(SELECT * FROM pg_temp.promises(false) EXCEPT ALL SELECT * FROM pg_temp.promises(true))) d;
SELECT option, count(*) AS options FROM pg_temp.promises(true) GROUP BY option ORDER BY option;

-- When the pruned answer does not stand, the search says so at DEBUG1 and reads every location:
-- one unit stands (nothing said), a cart the nearest locations cannot serve in one package does not.
SET client_min_messages = debug1;
SELECT count(*) AS rows FROM oms.route('[{"sku": "P-1", "qty": 1}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}');
SELECT line_no, location, qty FROM oms.route('[{"sku": "P-0", "qty": 4}, {"sku": "P-2", "qty": 4}, {"sku": "P-5", "qty": 4}]',
									   '{"country": "IT", "lat": 41.9, "lon": 12.5}');
RESET client_min_messages;

-- One cart in full: two units of P-1 to Rome, standard by post from the nearest location with
-- stock; the pickup options are the nearest stores that have it.
SELECT line_no, location, qty, carrier_service, cost, eta, score FROM oms.route('[{"sku": "P-1", "qty": 2}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}');
SELECT option, location, distance_km, delivery_date, cost, packages, ships_from
  FROM oms.promise('[{"sku": "P-1", "qty": 2}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}');

-- The locations are kept per backend: a location deactivated (or moved) is seen at once.
UPDATE oms.locations SET active = false
 WHERE tenant_id = oms.current_tenant_id()
   AND code = (SELECT location FROM oms.route('[{"sku": "P-1", "qty": 2}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}'));
SELECT line_no, location, qty, carrier_service, cost, eta, score FROM oms.route('[{"sku": "P-1", "qty": 2}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}');
SET oms.route_pruning = off;
SELECT line_no, location, qty, carrier_service, cost, eta, score FROM oms.route('[{"sku": "P-1", "qty": 2}]', '{"country": "IT", "lat": 41.9, "lon": 12.5}');
RESET oms.route_pruning;

RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
