-- Bad input to oms.route, oms.route_explain and oms.distance_km: each is refused with a SQLSTATE,
-- a message naming the field and the value, and a hint.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_route_err') > 0 AS created;
SET oms.tenant = 't_route_err';
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH', 'warehouse', 'WH', false), ('ST', 'store', 'Store', true);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One');
INSERT INTO oms.items (sku, name, active) VALUES ('SKU-OLD', 'Old', false);
SELECT oms.set_stock('SKU-1', 'WH', 5, 'init');
CREATE FUNCTION pg_temp.try_route(lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced',
								  OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM * FROM oms.route(lines, ship_to, profile);
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
CREATE TEMP TABLE cases (n serial, lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced');
INSERT INTO cases (lines, ship_to, profile) VALUES
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT"}', 'balanced'),
	(NULL, '{"country": "IT"}', 'balanced'),
	('[]', '{"country": "IT"}', 'balanced'),
	('{"sku": "SKU-1"}', '{"country": "IT"}', 'balanced'),
	('[7]', '{"country": "IT"}', 'balanced'),
	('[{"qty": 1}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "NOPE", "qty": 1}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-OLD", "qty": 1}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": -2}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1.5}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": "2"}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1, "colour": "red"}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-1", "qty": 2}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1, "exclude": "WH"}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1, "exclude": ["NOWHERE"]}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1, "hold": {"location": "WH"}}]', '{"country": "IT"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', NULL, 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '"IT"', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "ITA"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT", "lat": 45}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT", "lat": 95, "lon": 9}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT", "zip": "20121"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"pickup": "NOWHERE"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"pickup": "WH"}', 'balanced'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT"}', 'nope'),
	('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT"}', NULL);
SELECT c.n, t.code, t.message, t.hint
  FROM cases c CROSS JOIN LATERAL pg_temp.try_route(c.lines, c.ship_to, c.profile) t ORDER BY c.n;
-- 10,001 lines.
SELECT (pg_temp.try_route((SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || g, 'qty', 1)) FROM generate_series(1, 10001) g),
						  '{"country": "IT"}')).*;
-- route_explain validates the same way.
SELECT * FROM oms.route_explain('[{"sku": "SKU-1", "qty": 0}]', '{"country": "IT"}');
-- Coordinates out of range.
SELECT oms.distance_km(91, 0, 0, 0);
-- An unknown tenant.
SET oms.tenant = 't_route_nobody';
SELECT * FROM oms.route('[{"sku": "SKU-1", "qty": 1}]', '{"country": "IT"}');
RESET oms.tenant;
