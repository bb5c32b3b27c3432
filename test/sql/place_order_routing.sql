-- place_order routes with oms._route: the payload's profile or the channel's, splits, click &
-- collect with and without store stock, drop-ship, capacity, promised dates.
--
-- The network of test routing.sql (customer at 0, 0 on the equator; 1 degree = 111.19 km):
--   WH-NEAR  100.1 km, handling 0, 2.00 per package   (a 1 kg shirt by post: 6.70, 1 day)
--   WH-FAR   500.4 km, handling 1, 0.50 per package   (6.00, 3 days)
--   ST-GREEN  50.0 km, handling 2, 3.00 per package   (7.60, 3 days); offers pickup
--   VEN-1    a vendor at 200.2 km that drop-ships VASE
-- balanced picks WH-NEAR for a shirt (9.76), cheapest WH-FAR (6.00).
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_place_route') > 0 AS created;
SET oms.tenant = 't_place_route';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';
INSERT INTO oms.channels (code, kind, name, default_currency, routing_profile) VALUES
	('web', 'web', 'Web shop', 'EUR', 'balanced'), ('outlet', 'web', 'Outlet', 'EUR', 'cheapest');
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1);
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup) VALUES
	('WH-NEAR', 'warehouse', 'Near warehouse', 2, 0, 0.90, 0, 2.00, false),
	('WH-FAR', 'warehouse', 'Far warehouse', 1, 0, 4.50, 1, 0.50, false),
	('ST-GREEN', 'store', 'Green store', 3, 0, 0.45, 2, 3.00, true),
	('VEN-1', 'vendor', 'Vase maker', 9, 0, 1.80, 0, 0, false);
INSERT INTO oms.items (sku, name, weight) VALUES
	('SHIRT', 'Shirt', 1), ('MUG', 'Mug', 0.5), ('VASE', 'Vase', 3), ('RARE', 'Rare', 1);
SELECT oms.set_stock('SHIRT', 'WH-NEAR', 10, 'init'), oms.set_stock('SHIRT', 'WH-FAR', 10, 'init'),
	   oms.set_stock('SHIRT', 'ST-GREEN', 2, 'init'), oms.set_stock('MUG', 'WH-NEAR', 5, 'init'),
	   oms.set_stock('VASE', 'VEN-1', 4, 'init');
CREATE TEMP VIEW lines AS
SELECT o.external_id, o.routing_profile AS profile, l.line_no, i.sku, l.qty, l.state, loc.code AS location,
	   l.promised_date,
	   (SELECT string_agg(rl.code || ':' || r.qty, ' ' ORDER BY rl.code)
		  FROM oms.reservations r JOIN oms.locations rl ON rl.tenant_id = r.tenant_id AND rl.id = r.location_id
		 WHERE r.tenant_id = l.tenant_id AND r.order_id = l.order_id AND r.line_no = l.line_no) AS reserved_at
  FROM oms.orders o
  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
  LEFT JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
 WHERE o.tenant_id = oms.current_tenant_id()
 ORDER BY o.id, l.line_no;

-- 1. The channel's profile (web: balanced -> WH-NEAR, promised 2025-03-04; outlet: cheapest ->
--    WH-FAR, 2025-03-06), and the payload's "routing", which wins over the channel's.
SELECT oms.place_order('{"channel": "web", "external_id": "R-1", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "outlet", "external_id": "R-2", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "R-3", "routing": "cheapest", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
-- 2. A line split over two locations (15 shirts; WH-NEAR has 9 left, WH-FAR 8): one reservation
--    per location, no single location on the line, the later date promised.
SELECT oms.place_order('{"channel": "web", "external_id": "R-4", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 15, "unit_price": 10}]}') > 0 AS placed;
-- 3. Click & collect: the store's own shirts are reserved there (ready after 2 handling days);
--    the mug it lacks is reserved at WH-NEAR and transferred (1 day by post + 2 days in store).
SELECT oms.place_order('{"channel": "web", "external_id": "R-5", "pickup": "ST-GREEN",
	"lines": [{"sku": "SHIRT", "qty": 2, "unit_price": 10}, {"sku": "MUG", "qty": 1, "unit_price": 5}]}') > 0 AS placed;
-- 4. Drop-ship: the vase is reserved at the vendor; the shirt ships from WH-FAR, the only location
--    with shirts left (WH-NEAR 0, ST-GREEN 0): two packages.
SELECT oms.place_order('{"channel": "web", "external_id": "R-6", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}, {"sku": "VASE", "qty": 1, "unit_price": 80}]}') > 0 AS placed;
SELECT * FROM lines;
SELECT external_id, state, (SELECT code FROM oms.locations l WHERE l.tenant_id = o.tenant_id AND l.id = o.pickup_location_id) AS pickup
  FROM oms.orders o WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
SELECT * FROM oms.check_stock_invariants();

-- 5. Capacity: WH-NEAR may ship 2 orders a day. Only locations with a daily_capacity are counted,
--    from now on: the first order takes 1, the second 2, the third goes to WH-FAR, balanced's
--    next best (both get 10 more shirts first).
UPDATE oms.locations SET daily_capacity = 2 WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-NEAR';
SELECT oms.adjust_stock('SHIRT', 'WH-NEAR', 10, 'receipt'), oms.adjust_stock('SHIRT', 'WH-FAR', 10, 'receipt');
SELECT oms.place_order(format('{"channel": "web", "external_id": "C-%s", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}', n)::jsonb) > 0 AS placed
  FROM generate_series(1, 3) n;
SELECT external_id, location, promised_date FROM lines WHERE external_id LIKE 'C-%';
SELECT l.code, u.day, u.used FROM oms.location_capacity_used u JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
 WHERE u.tenant_id = oms.current_tenant_id() ORDER BY l.code, u.day;

-- 6a. A change of address re-routes the allocated lines for it: C-1's customer moves next to
--     WH-FAR (0, 4.5), which now serves it from 0 km (1 handling day + 1 day by post: 2025-03-05);
--     the event says which line moved from where to where. An address that no other location
--     serves better moves nothing, but the date follows it (C-3 stays at WH-FAR, 11 km away now:
--     2025-03-05 instead of 2025-03-06).
SELECT oms.change_address(o.id, '{"country": "IT", "lat": 0, "lon": 4.5}') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'C-1';
SELECT oms.change_address(o.id, '{"country": "IT", "lat": 0, "lon": 4.6}') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'C-3';
SELECT external_id, location, promised_date, reserved_at FROM lines WHERE external_id IN ('C-1', 'C-3');
SELECT o.external_id, e.payload -> 'rerouted_lines' AS rerouted_lines
  FROM oms.events e JOIN oms.orders o ON o.tenant_id = e.tenant_id AND o.id = e.order_id
 WHERE e.tenant_id = oms.current_tenant_id() AND e.type = 'address_changed' ORDER BY e.id;
SELECT * FROM oms.check_stock_invariants();

-- 6b. Capacity follows the order: C-1 left WH-NEAR, so WH-NEAR counts 1 order (C-2) again, and
--     a new order C-4 goes there (2 of 2). A change of address that keeps C-4 at WH-NEAR does not
--     find WH-NEAR full because of C-4 itself: C-4 stays, still 2. Cancelling C-2 gives its count
--     back (1); WH-NEAR rejecting C-4's line sends it to WH-FAR and gives C-4's count back (0).
--     Where each order counts: oms.order_capacity.
CREATE TEMP VIEW capacity AS
SELECT l.code, u.day, u.used,
	   (SELECT string_agg(o.external_id, ' ' ORDER BY o.external_id) FROM oms.order_capacity c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 WHERE c.tenant_id = u.tenant_id AND c.location_id = u.location_id AND c.day = u.day) AS orders
  FROM oms.location_capacity_used u JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
 WHERE u.tenant_id = oms.current_tenant_id() ORDER BY l.code, u.day;
SELECT * FROM capacity;
SELECT oms.place_order('{"channel": "web", "external_id": "C-4", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.change_address(o.id, '{"country": "IT", "lat": 0, "lon": 0.5}') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'C-4';
SELECT external_id, location, reserved_at FROM lines WHERE external_id = 'C-4';
SELECT * FROM capacity;
SELECT oms.cancel_order(o.id, 'customer changed their mind') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'C-2';
SELECT * FROM capacity;
SELECT routed_line, routed_location, routed_qty, line_state FROM oms.reject_line(
	(SELECT o.id FROM oms.orders o WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'C-4'),
	1, 'WH-NEAR', 'damaged');
SELECT * FROM capacity;
SELECT * FROM oms.check_stock_invariants();

-- 6. Refusals: an item nowhere in stock for pickup (OM001, with routing's reason), an unknown
--    profile in the payload or as the channel's default, a profile that is not text.
SELECT oms.place_order('{"channel": "web", "external_id": "E-1", "pickup": "ST-GREEN",
	"lines": [{"sku": "RARE", "qty": 1, "unit_price": 10}]}');
SELECT oms.place_order('{"channel": "web", "external_id": "E-2", "routing": "slowest", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}');
SELECT oms.place_order('{"channel": "web", "external_id": "E-3", "routing": 7, "ship_to": {"country": "IT"},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}');
UPDATE oms.channels SET routing_profile = 'gone' WHERE tenant_id = oms.current_tenant_id() AND code = 'outlet';
SELECT oms.place_order('{"channel": "outlet", "external_id": "E-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}');
SELECT count(*) AS orders FROM oms.orders WHERE tenant_id = oms.current_tenant_id();
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
