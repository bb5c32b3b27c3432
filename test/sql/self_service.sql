-- Customer self-service: order_status for the right e-mail (the order in plain words, shipments
-- with carrier, tracking and last scan, what the customer may still do) and the same "not found"
-- for a wrong e-mail, an unknown order or channel; request_return within the window (RMA and
-- return label), for more than delivered and after the window (refusals that say why); the role
-- oms_storefront can call these and read nothing else.
SELECT oms.create_tenant('t_self') > 0 AS created;
SET oms.tenant = 't_self';
\set VERBOSITY terse
CREATE FUNCTION pg_temp.show(j jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(regexp_replace(jsonb_pretty(j), '"\d{4}-\d\d-\d\dT[^"]*"', '"<time>"', 'g'),
						  '"\d{4}-\d\d-\d\d"', '"<date>"', 'g') $$;
INSERT INTO oms.channels (code, kind, name, default_currency, return_days) VALUES ('web', 'web', 'Web shop', 'EUR', 30);
INSERT INTO oms.locations (code, kind, name, country, city, postal_code, priority)
	VALUES ('WH-1', 'warehouse', 'Warehouse Milano', 'IT', 'Milano', '20121', 1);
INSERT INTO oms.items (sku, name) VALUES ('TEE', 'T-shirt'), ('CAP', 'Cap');
SELECT oms.set_stock('TEE', 'WH-1', 20, 'init'), oms.set_stock('CAP', 'WH-1', 20, 'init');
SELECT oms.place_order('{"channel": "web", "external_id": "SS-1",
	"ship_to": {"name": "Anna Rossi", "line1": "Via Dante 5", "postal_code": "20123", "city": "Milano", "country": "IT"},
	"customer": {"name": "Anna Rossi", "email": "Anna.Rossi@example.com"},
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 20}, {"sku": "CAP", "qty": 1, "unit_price": 15}]}') AS o \gset

-- 1. Just placed: confirmed; the customer may cancel or change the address; nothing to return.
SELECT pg_temp.show(oms.order_status('web', 'SS-1', 'anna.rossi@example.com '));

-- 2. Shipped in one package, scanned by the carrier, delivered two days ago.
SELECT oms.authorize_payment(:o, 55, 'psp-ss1') > 0 AS authorized;
SELECT oms.release_order(:o);
SELECT oms.pack(:o, 'WH-1') AS p \gset
SELECT oms.ship(:p, 'brt.standard', 'BRT-777');
SELECT oms.tracking_update('brt', 'BRT-777', 'in_transit', now() - interval '3 days', '{"location": "Bologna hub"}');
SELECT oms.deliver(:p, now() - interval '2 days');
SELECT pg_temp.show(oms.order_status('web', 'SS-1', 'Anna.Rossi@example.com'));
SELECT oms.order_status('web', 'SS-1', 'Anna.Rossi@example.com') #>> '{you_can,return_until}'
	   = to_char((now() + interval '28 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS return_until_is_delivery_plus_30_days;

-- 3. Wrong e-mail, unknown order, unknown channel, no e-mail: one and the same answer.
SELECT oms.order_status('web', 'SS-1', 'someone@example.com') AS wrong_email;
SELECT oms.order_status('web', 'SS-404', 'anna.rossi@example.com') = oms.order_status('web', 'SS-1', 'someone@example.com') AS unknown_order_same,
	   oms.order_status('app', 'SS-1', 'anna.rossi@example.com') = oms.order_status('web', 'SS-1', 'someone@example.com') AS unknown_channel_same,
	   oms.order_status('web', 'SS-1', '') = oms.order_status('web', 'SS-1', NULL) AS empty_and_null_same;

-- 4. A return: more than delivered is refused with the reason; one T-shirt is accepted, with its
--    RMA and return label; a wrong e-mail gets "not found".
SELECT pg_temp.show(oms.request_return('web', 'SS-1', 'anna.rossi@example.com', '[{"line_no": 1, "qty": 3}]', 'too small'));
SELECT oms.request_return('web', 'SS-1', 'anna.rossi@example.com', '[{"line_no": 1, "qty": 1}]', 'too small') AS r \gset
SELECT (:'r'::jsonb) ->> 'accepted' AS accepted, (:'r'::jsonb) ->> 'rma' ~ '^RMA-\d+$' AS rma_code,
	   (:'r'::jsonb) ->> 'return_label_zpl' ~ '^\^XA' AS zpl_label, (:'r'::jsonb) ->> 'return_label_html' ~ '<svg' AS html_label;
SELECT oms.request_return('web', 'SS-1', 'someone@example.com', '[{"line_no": 1, "qty": 1}]', 'too small') AS wrong_email;
SELECT pg_temp.show(oms.order_status('web', 'SS-1', 'anna.rossi@example.com') -> 'lines');

-- 5. After the window: delivered 40 days ago on a 30-day channel.
SELECT oms.place_order('{"channel": "web", "external_id": "SS-2", "ship_to": {"country": "IT"},
	"customer": {"email": "bruno@example.com"}, "lines": [{"sku": "CAP", "qty": 1, "unit_price": 15}]}') AS o2 \gset
SELECT oms.authorize_payment(:o2, 15, 'psp-ss2') > 0 AS authorized;
SELECT oms.release_order(:o2);
SELECT oms.pack(:o2, 'WH-1') AS p2 \gset
SELECT oms.ship(:p2, 'brt.standard', 'BRT-778');
UPDATE oms.shipments SET shipped_at = now() - interval '41 days', status_at = now() - interval '41 days'
 WHERE tenant_id = oms.current_tenant_id() AND id = :p2;
SELECT oms.deliver(:p2, now() - interval '40 days');
SELECT (oms.order_status('web', 'SS-2', 'bruno@example.com') -> 'you_can') - 'return_until' AS you_can;
SELECT regexp_replace(oms.request_return('web', 'SS-2', 'bruno@example.com', '[{"line_no": 1, "qty": 1}]', 'changed my mind')::text,
					  '\d{4}-\d\d-\d\d', '<date>', 'g') AS refused;

-- 6. The storefront role, granted the tenant (99_access.sql): the two functions (and
--    current_tenant_id, granted to every role), nothing else.
SELECT oms.grant_tenant('oms_storefront', 't_self') AS tenant_granted;
SET ROLE oms_storefront;
SELECT oms.order_status('web', 'SS-1', 'anna.rossi@example.com') ->> 'status' AS status_as_storefront;
SELECT count(*) FROM oms.orders;
SELECT oms.place_order('{}');
SELECT oms.invoice_document(1);
RESET ROLE;
SELECT p.oid::regprocedure AS storefront_may_execute
  FROM pg_proc p WHERE p.pronamespace = 'oms'::regnamespace AND has_function_privilege('oms_storefront', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1;
SELECT c.relname AS storefront_may_read FROM pg_class c
 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind IN ('r', 'v', 'S') AND has_table_privilege('oms_storefront', c.oid, 'SELECT');
SELECT p.prosecdef AS security_definer, p.proconfig FROM pg_proc p
 WHERE p.oid IN ('oms.order_status(text, text, text)'::regprocedure, 'oms.request_return(text, text, text, jsonb, text)'::regprocedure);
