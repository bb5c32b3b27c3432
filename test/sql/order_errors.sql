-- Malformed order payloads: each gets 22023 naming the field and value, with a hint; nothing is written.
SELECT oms.create_tenant('t_err') > 0 AS created;
SET oms.tenant = 't_err';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web', 'EUR');
INSERT INTO oms.channels (code, kind, name, default_currency, active) VALUES ('old', 'web', 'Old shop', 'EUR', false);
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH', 'warehouse', 'WH', false);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One');
INSERT INTO oms.items (sku, name, active) VALUES ('SKU-OLD', 'Discontinued', false);
SELECT oms.set_stock('SKU-1', 'WH', 100, 'init');
-- Every case: the SQLSTATE, the message and the hint.
CREATE FUNCTION pg_temp.try_order(p jsonb, OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM oms.place_order(p);
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
CREATE TEMP TABLE cases (n serial, payload jsonb);
INSERT INTO cases (payload) VALUES
	(NULL),
	('[]'),
	('{"channel": "web"}'),
	('{"channel": 7, "external_id": "E1"}'),
	('{"channel": "nope", "external_id": "E1"}'),
	('{"channel": "old", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "", "lines": []}'),
	('{"channel": "web", "external_id": "E1", "shipto": {"country": "IT"}}'),
	('{"channel": "web", "external_id": "E1", "currency": "XYZ", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "currency": "eur", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "pickup": "WH", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "pickup": "WH", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "pickup": "NOWHERE", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "ITA"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT", "lat": 45}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT", "lat": 95, "lon": 9}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT", "city": 12}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "customer": {"email": "not-an-email"}, "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "customer": {"ref": 5}, "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "shipping_amount": -1, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "cart": "", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": {}}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": []}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}, 5]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1, "colour": "red"}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"qty": 1, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 0, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": -2, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1.5, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": "2", "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 2147483648, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1e400, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": -0.01}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-2", "qty": 1, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-OLD", "qty": 1, "unit_price": 1}]}'),
	('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}, {"sku": "SKU-1", "qty": 1, "unit_price": 10}]}');
-- More than 10,000 lines.
INSERT INTO cases (payload) SELECT jsonb_build_object('channel', 'web', 'external_id', 'E1', 'ship_to', '{"country": "IT"}'::jsonb,
	'lines', (SELECT jsonb_agg(jsonb_build_object('sku', 'S' || g, 'qty', 1, 'unit_price', 1)) FROM generate_series(1, 10001) g));
\x on
SELECT c.n, left(c.payload::text, 120) AS payload, r.* FROM cases c, pg_temp.try_order(c.payload) r ORDER BY c.n;
\x off
-- Nothing was written by any of them.
SELECT (SELECT count(*) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()) AS orders,
	   (SELECT count(*) FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id()) AS lines,
	   (SELECT count(*) FROM oms.reservations WHERE tenant_id = oms.current_tenant_id()) AS reservations,
	   (SELECT reserved FROM oms.stock WHERE tenant_id = oms.current_tenant_id()) AS reserved;
-- An unknown tenant is refused.
SET oms.tenant = 'nobody';
SELECT oms.place_order('{"channel": "web", "external_id": "E1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 10}]}');
SET oms.tenant = 'bad tenant!';
RESET oms.tenant;
