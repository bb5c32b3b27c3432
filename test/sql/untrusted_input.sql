-- Hostile input: numbers at and past the limits of int and bigint, NaN and Infinity, 10 MB
-- strings, deep nesting and unicode. Each refusal is a documented SQLSTATE with a message that
-- names the value, clipped to 100 characters however long the value; nothing is written. Also the
-- regression tests of what the fuzzer (test/fuzz) found: qty 1.0 (was 22P02), a latitude of
-- 1e-400 (was 22003: double precision underflow), a delta of -2^63 (was 22003: abs() overflow),
-- and error messages that repeated a value of any length; and what sqlsmith found: a stock row
-- written with a NULL key or reserved got an internal error from the stock guard (now 23502).
SELECT oms.create_tenant('t_hostile') > 0 AS created;
SET oms.tenant = 't_hostile';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web', 'EUR');
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One'), ('ÇAMAŞIR-☃-ß', 'Unicode'), ('café', 'Composed é');
SELECT oms.set_stock('SKU-1', 'WH', 10, 'init'), oms.set_stock('ÇAMAŞIR-☃-ß', 'WH', 5, 'init'),
	   oms.set_stock('café', 'WH', 5, 'init');

-- Runs one statement: ok, or the SQLSTATE, the message (first 120 characters) and its length.
CREATE FUNCTION pg_temp.try(sql text, OUT code text, OUT message text, OUT message_length int)
	LANGUAGE plpgsql AS $$
DECLARE
	m text;
BEGIN
	EXECUTE sql;
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
	message := left(m, 120);
	message_length := length(m);
END
$$;
-- What the tenant has: orders, lines, reservations, stock movements, on hand and reserved.
CREATE TEMP VIEW written AS
SELECT (SELECT count(*) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()) AS orders,
	   (SELECT count(*) FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id()) AS lines,
	   (SELECT count(*) FROM oms.reservations WHERE tenant_id = oms.current_tenant_id()) AS reservations,
	   (SELECT count(*) FROM oms.stock_movements WHERE tenant_id = oms.current_tenant_id()) AS movements,
	   (SELECT sum(on_hand) || '/' || sum(reserved) FROM oms.stock WHERE tenant_id = oms.current_tenant_id()) AS on_hand_reserved;
SELECT * FROM written;

CREATE TEMP TABLE cases (n serial, what text, sql text);
-- An order of SKU-1 whose line is "qty": Q.
CREATE FUNCTION pg_temp.order_qty(q text) RETURNS text LANGUAGE sql
	RETURN format($f$SELECT oms.place_order('{"channel": "web", "external_id": "Q-%s", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": %s, "unit_price": 1}]}')$f$, md5(q), q);
INSERT INTO cases (what, sql) VALUES
	('qty 2^31 - 1 (the largest int)', pg_temp.order_qty('2147483647')),
	('qty 2^31', pg_temp.order_qty('2147483648')),
	('qty 2^63', pg_temp.order_qty('9223372036854775808')),
	('qty 1e400', pg_temp.order_qty('1e400')),
	('qty 1e-400', pg_temp.order_qty('1e-400')),
	('qty -0', pg_temp.order_qty('-0')),
	('qty "NaN"', pg_temp.order_qty('"NaN"')),
	('qty NaN::numeric', $$SELECT oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'N-1', 'ship_to', jsonb_build_object('country', 'IT'), 'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-1', 'qty', 'NaN'::numeric, 'unit_price', 1))))$$),
	('qty Infinity::numeric', $$SELECT oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'N-2', 'ship_to', jsonb_build_object('country', 'IT'), 'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-1', 'qty', 'Infinity'::numeric, 'unit_price', 1))))$$),
	('JSON NaN (not JSON)', $$SELECT oms.place_order('{"qty": NaN}')$$),
	('unit_price 1e15', $$SELECT oms.place_order('{"channel": "web", "external_id": "P-1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1e15}]}')$$),
	('unit_price -Infinity', $$SELECT oms.place_order('{"channel": "web", "external_id": "P-2", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": "-Infinity"}]}')$$),
	('shipping_amount 1e400', $$SELECT oms.place_order('{"channel": "web", "external_id": "P-3", "shipping_amount": 1e400, "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1}]}')$$),
	('lat 1e400', $$SELECT oms.place_order('{"channel": "web", "external_id": "P-4", "ship_to": {"country": "IT", "lat": 1e400, "lon": 0}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1}]}')$$),
	('adjust_stock delta -2^63', $$SELECT oms.adjust_stock('SKU-1', 'WH', -9223372036854775808, 'x')$$),
	('adjust_stock delta 2^63 - 1', $$SELECT oms.adjust_stock('SKU-1', 'WH', 9223372036854775807, 'x')$$),
	('adjust_stock delta 10^12 + 1', $$SELECT oms.adjust_stock('SKU-1', 'WH', 1000000000001, 'x')$$),
	('set_stock on_hand 2^63 - 1', $$SELECT oms.set_stock('SKU-1', 'WH', 9223372036854775807, 'x')$$),
	('set_stock on_hand -2^63', $$SELECT oms.set_stock('SKU-1', 'WH', -9223372036854775808, 'x')$$),
	('hold qty 2^31 - 1', $$SELECT oms.hold('c1', 'SKU-1', 2147483647)$$),
	('hold qty -2^31', $$SELECT oms.hold('c1', 'SKU-1', -2147483648)$$),
	('hold ttl 178000000 years', $$SELECT oms.hold('c1', 'SKU-1', 1, NULL, '178000000 years')$$),
	('cancel_order -2^63', $$SELECT oms.cancel_order(-9223372036854775808, 'x')$$),
	('external_id of 10 MB', $$SELECT oms.place_order(jsonb_build_object('channel', 'web', 'external_id', repeat('x', 10000000)))$$),
	('channel of 10 MB', $$SELECT oms.place_order(jsonb_build_object('channel', repeat('é', 5000000)))$$),
	('unknown key of 10 MB', $$SELECT oms.place_order(jsonb_build_object(repeat('k', 10000000), 1))$$),
	('SKU of 10 MB (adjust_stock)', $$SELECT oms.adjust_stock(repeat('S', 10000000), 'WH', 1, 'x')$$),
	('location of 10 MB (set_stock)', $$SELECT oms.set_stock('SKU-1', repeat('L', 10000000), 1, 'x')$$),
	('reason of 10 MB', $$SELECT oms.adjust_stock('SKU-1', 'WH', 1, repeat('r', 10000000))$$),
	('cart of 10 MB', $$SELECT oms.hold(repeat('c', 10000000), 'SKU-1', 1)$$),
	('SKU of 10 MB (atp, C)', $$SELECT oms.atp(repeat('S', 10000000))$$),
	('state of 10 MB (input function, C)', $$SELECT repeat('s', 10000000)::oms.line_state$$),
	('event of 10 MB (transition, C)', $$SELECT oms.transition('allocated'::oms.line_state, repeat('e', 10000000))$$),
	('tenant code of 10 MB', $$SELECT oms.create_tenant(repeat('t', 10000000))$$),
	('attributes nested 10000 deep', $$SELECT oms.place_order(('{"channel": "web", "external_id": "D-1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1}], "attributes": ' || repeat('[', 10000) || repeat(']', 10000) || '}')::jsonb)$$),
	('lines nested 10000 deep', $$SELECT oms.place_order(('{"channel": "web", "external_id": "D-2", "ship_to": {"country": "IT"}, "lines": [' || repeat('[', 10000) || repeat(']', 10000) || ']}')::jsonb)$$),
	('JSON nested 100000 deep', $$SELECT oms.place_order(('{"a":' || repeat('[', 100000) || repeat(']', 100000) || '}')::jsonb)$$),
	('JSON \u0000', $$SELECT oms.place_order('{"channel": "web\u0000"}')$$),
	('tenant code with unicode', $$SELECT oms.create_tenant('tenant-☃')$$),
	('oms.tenant with unicode', $$SELECT set_config('oms.tenant', 'brand-☃', true)$$),
	('SKU é decomposed (e + U+0301)', $$SELECT oms.atp(U&'cafe\0301')$$),
	('SKU with a zero-width space', $$SELECT oms.atp(U&'SKU-\200B1')$$),
	('state with a right-to-left override', $$SELECT U&'allo\202Ecated'::oms.line_state$$),
	('stock row updated to a NULL reserved', $$UPDATE oms.stock SET reserved = NULL WHERE tenant_id = oms.current_tenant_id()$$),
	('stock row inserted with a NULL location', $$INSERT INTO oms.stock (item_id, location_id) SELECT id, NULL FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-1'$$);
SELECT n, what, t.* FROM cases, pg_temp.try(sql) t ORDER BY n;

-- None of that wrote anything.
SELECT * FROM written;

-- What is accepted: qty 1.0 is 1 (regression: was 22P02), a latitude of 1e-400 is 0 (regression:
-- was 22003), unicode SKUs and texts work as any other (compared as written: the composed "é"
-- is another SKU than "e" + U+0301).
SELECT oms.place_order('{"channel": "web", "external_id": "OK-1", "ship_to": {"country": "IT", "lat": 1e-400, "lon": -1e-400},
	"customer": {"name": "Zoë 😀 \u202eevil"},
	"lines": [{"sku": "SKU-1", "qty": 1.0, "unit_price": 1}, {"sku": "ÇAMAŞIR-☃-ß", "qty": 0.02e2, "unit_price": 1}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "OK-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "café", "qty": 1, "unit_price": 1}]}') = (SELECT id FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND external_id = 'OK-1') AS same_order;
SELECT o.ship_lat, o.ship_lon, o.customer_name, l.line_no, i.sku, l.qty, l.state
  FROM oms.orders o
  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
 WHERE o.tenant_id = oms.current_tenant_id()
 ORDER BY l.line_no;
SELECT held_location, held_qty FROM oms.hold('cart-☃', 'café', 1);
SELECT oms.atp('café'), oms.atp('ÇAMAŞIR-☃-ß');
SELECT * FROM written;
SELECT count(*) AS invariant_problems FROM oms.check_stock_invariants();
