-- reject_line: a location that cannot fulfil a line releases it; the line is routed again without
-- that location, reserved elsewhere, and every move is audited.
--
-- The network of test routing.sql (customer at 0, 0 on the equator): balanced prefers WH-NEAR
-- (9.76) to WH-FAR (11.28) to ST-GREEN (12.63) for a 1 kg shirt.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_reject') > 0 AS created;
SET oms.tenant = 't_reject';
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'order \d+', 'order N', 'g');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1);
INSERT INTO oms.locations (code, kind, name, priority, latitude, longitude, handling_days, cost_per_package, can_pickup) VALUES
	('WH-NEAR', 'warehouse', 'Near warehouse', 2, 0, 0.90, 0, 2.00, false),
	('WH-FAR', 'warehouse', 'Far warehouse', 1, 0, 4.50, 1, 0.50, false),
	('ST-GREEN', 'store', 'Green store', 3, 0, 0.45, 2, 3.00, true);
INSERT INTO oms.items (sku, name, weight) VALUES ('SHIRT', 'Shirt', 1), ('MUG', 'Mug', 0.5);
SELECT oms.set_stock('SHIRT', 'WH-NEAR', 5, 'init'), oms.set_stock('SHIRT', 'WH-FAR', 5, 'init'),
	   oms.set_stock('SHIRT', 'ST-GREEN', 5, 'init'), oms.set_stock('MUG', 'WH-NEAR', 5, 'init');
CREATE TEMP VIEW line_view AS
SELECT o.external_id, o.state AS order_state, l.line_no, l.state, loc.code AS location, l.promised_date,
	   (SELECT string_agg(rl.code || ':' || r.qty, ' ' ORDER BY rl.code)
		  FROM oms.reservations r JOIN oms.locations rl ON rl.tenant_id = r.tenant_id AND rl.id = r.location_id
		 WHERE r.tenant_id = l.tenant_id AND r.order_id = l.order_id AND r.line_no = l.line_no) AS reserved_at
  FROM oms.orders o
  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  LEFT JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
 WHERE o.tenant_id = oms.current_tenant_id()
 ORDER BY o.id, l.line_no;

SELECT oms.place_order('{"channel": "web", "external_id": "J-1", "ship_to": {"country": "IT", "lat": 0, "lon": 0},
	"lines": [{"sku": "MUG", "qty": 1, "unit_price": 5}, {"sku": "SHIRT", "qty": 2, "unit_price": 10}]}') AS order_id \gset
SELECT * FROM line_view;

-- 1. WH-NEAR finds the shirts damaged: they go to WH-FAR, the next best (promised 2025-03-06).
SELECT * FROM oms.reject_line(:order_id, 2, 'WH-NEAR', 'damaged');
SELECT * FROM line_view;
-- 2. WH-FAR cannot find them: ST-GREEN, the last location with shirts.
SELECT * FROM oms.reject_line(:order_id, 2, 'WH-FAR', 'not found');
SELECT * FROM line_view;
-- 3. ST-GREEN rejects too: nothing can serve the line; it waits as backordered (nothing reserved).
SELECT * FROM oms.reject_line(:order_id, 2, 'ST-GREEN', 'sold in store');
SELECT * FROM line_view;
SELECT i.sku, l.code, s.on_hand, s.reserved FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY i.sku, l.code;
-- The audit: each move with its reason and who made it; the exclusions.
SELECT h.line_no, h.from_state, h.to_state, h.reason
  FROM oms.order_history h WHERE h.tenant_id = oms.current_tenant_id() AND h.order_id = :order_id ORDER BY h.id;
SELECT e.line_no, l.code, e.reason, e.excluded_by = session_user AS by_me
  FROM oms.line_exclusions e JOIN oms.locations l ON l.tenant_id = e.tenant_id AND l.id = e.location_id
 WHERE e.tenant_id = oms.current_tenant_id() ORDER BY e.excluded_at, l.code;

-- 4. Click & collect: the store rejects its line; the units are transferred from WH-NEAR.
SELECT oms.place_order('{"channel": "web", "external_id": "J-2", "pickup": "ST-GREEN",
	"lines": [{"sku": "SHIRT", "qty": 1, "unit_price": 10}]}') AS order2 \gset
SELECT * FROM line_view WHERE external_id = 'J-2';
SELECT * FROM oms.reject_line(:order2, 1, 'ST-GREEN', 'damaged');
SELECT * FROM line_view WHERE external_id = 'J-2';

-- 5. Refusals: a line not reserved at that location, a backordered line, unknown order, line or
--    location, no reason.
SELECT pg_temp.try(format('SELECT * FROM oms.reject_line(%s, 1, %L, %L)', :order_id, 'WH-FAR', 'wrong place'));
SELECT pg_temp.try(format('SELECT * FROM oms.reject_line(%s, 2, %L, %L)', :order_id, 'WH-NEAR', 'again'));
SELECT pg_temp.try('SELECT * FROM oms.reject_line(999999999, 1, ''WH-NEAR'', ''x'')');
SELECT pg_temp.try(format('SELECT * FROM oms.reject_line(%s, 9, %L, %L)', :order_id, 'WH-NEAR', 'x'));
SELECT pg_temp.try(format('SELECT * FROM oms.reject_line(%s, 1, %L, %L)', :order_id, 'NOWHERE', 'x'));
SELECT pg_temp.try(format('SELECT * FROM oms.reject_line(%s, 1, %L, %L)', :order_id, 'WH-NEAR', ' '));
SELECT * FROM oms.check_stock_invariants();
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
