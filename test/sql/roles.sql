-- Roles: a login role in each group, acting through SET ROLE; every allowed action works, every
-- forbidden one fails with 42501. Tenant t_roles has two stores, STORE-A and STORE-B, and an order
-- sourced at each (O-A of ALPHA at STORE-A, O-B of BRAVO at STORE-B, both released); tenant
-- t_roles_x is a second tenant that only the admin may act for.
\set VERBOSITY terse
SELECT oms.create_tenant('t_roles') > 0 AS created, oms.create_tenant('t_roles_x') > 0 AS created_x;
SET oms.tenant = 't_roles';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization)
	VALUES ('pos', 'pos', 'Tills', 'EUR', false);
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('STORE-A', 'store', 'Store A', 1, true, true),
	('STORE-B', 'store', 'Store B', 2, true, true);
INSERT INTO oms.items (sku, name) VALUES ('ALPHA', 'Alpha'), ('BRAVO', 'Bravo');
SELECT oms.set_stock('ALPHA', 'STORE-A', 10, 'init'), oms.set_stock('BRAVO', 'STORE-B', 10, 'init');
SELECT oms.place_order('{"channel": "pos", "external_id": "O-A",
	"customer": {"ref": "C1", "email": "anna@example.com", "name": "Anna Rossi"},
	"ship_to": {"name": "Anna Rossi", "line1": "Via Roma 1", "city": "Milano", "postal_code": "20121", "country": "IT"},
	"lines": [{"sku": "ALPHA", "qty": 2, "unit_price": 10}]}') AS oa \gset
SELECT oms.place_order('{"channel": "pos", "external_id": "O-B",
	"customer": {"ref": "C2", "email": "bruno@example.com", "name": "Bruno Bianchi"},
	"ship_to": {"name": "Bruno Bianchi", "line1": "Via Po 2", "city": "Torino", "postal_code": "10121", "country": "IT"},
	"lines": [{"sku": "BRAVO", "qty": 1, "unit_price": 30}]}') AS ob \gset
SELECT oms.place_order('{"channel": "pos", "external_id": "O-C",
	"customer": {"ref": "C3", "email": "carla@example.com", "name": "Carla Verdi"},
	"ship_to": {"name": "Carla Verdi", "line1": "Via Po 3", "city": "Torino", "postal_code": "10121", "country": "IT"},
	"lines": [{"sku": "BRAVO", "qty": 1, "unit_price": 30}]}') AS oc \gset
SELECT oms.release_order(:oa) AS released_a, oms.release_order(:ob) AS released_b;

-- The login roles, one per group, and a second app that was granted no tenant.
CREATE ROLE regress_roles_admin LOGIN IN ROLE oms_admin;
CREATE ROLE regress_roles_operator LOGIN IN ROLE oms_operator;
CREATE ROLE regress_roles_store_a LOGIN IN ROLE oms_store;
CREATE ROLE regress_roles_store_b LOGIN IN ROLE oms_store;
CREATE ROLE regress_roles_app LOGIN IN ROLE oms_app;
CREATE ROLE regress_roles_app_nogrant LOGIN IN ROLE oms_app;
CREATE ROLE regress_roles_reader LOGIN IN ROLE oms_reader;
CREATE ROLE regress_roles_storefront LOGIN IN ROLE oms_storefront;
SELECT oms.grant_tenant(r, 't_roles') AS granted
  FROM unnest(ARRAY['regress_roles_operator', 'regress_roles_store_a', 'regress_roles_store_b',
					'regress_roles_app', 'regress_roles_reader', 'regress_roles_storefront']) r;
SELECT oms.grant_tenant('regress_roles_app', 't_roles') AS granted_again;
SELECT oms.assign_store('regress_roles_store_a', 'STORE-A') AS assigned_a,
	   oms.assign_store('regress_roles_store_b', 'STORE-B') AS assigned_b;
-- bad input: an unknown role (42704), an unknown tenant (22023)
SELECT oms.grant_tenant('regress_roles_nobody', 't_roles');
SELECT oms.grant_tenant('regress_roles_app', 't_roles_nowhere');

-- Runs a statement as a role; 'ok: ' and the first column of its first row, or the SQLSTATE and
-- the message (order ids masked).
CREATE FUNCTION pg_temp.as_role(p_role text, p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', p_role);
	BEGIN
		EXECUTE p_sql INTO v;
		v := 'ok: ' || coalesce(v, 'NULL');
	EXCEPTION WHEN OTHERS THEN
		v := SQLSTATE || ': ' || SQLERRM;
	END;
	RESET ROLE;
	RETURN regexp_replace(v, 'order \d+', 'order N', 'g');
END
$$;
CREATE TEMP TABLE matrix (n serial, role text, action text, sql text);
GRANT SELECT ON matrix TO PUBLIC;

INSERT INTO matrix (role, action, sql) VALUES
	-- the app: ATP, holds, place, cancel; no table reads beyond the catalogue, no writes, no fulfilment
	('app', 'atp', $$SELECT oms.atp('ALPHA')$$),
	('app', 'hold', $$SELECT oms.hold('cart-1', 'ALPHA', 1) IS NOT NULL$$),
	('app', 'release_hold', $$SELECT oms.release_hold('cart-1')$$),
	('app', 'place_order', $$SELECT oms.place_order('{"channel": "pos", "external_id": "O-APP", "customer": {"ref": "C3", "email": "c@example.com"}, "ship_to": {"name": "C", "line1": "Via 3", "city": "Roma", "postal_code": "00100", "country": "IT"}, "lines": [{"sku": "ALPHA", "qty": 1, "unit_price": 10}]}') > 0$$),
	('app', 'cancel_order O-C', format($$SELECT oms.cancel_order(%s, 'customer_request') IS NOT NULL$$, :oc)),
	('app', 'read the catalogue', $$SELECT string_agg(sku, ',' ORDER BY sku) FROM oms.items$$),
	('app', 'read orders', $$SELECT count(*) FROM oms.orders$$),
	('app', 'insert an order line', $$INSERT INTO oms.order_lines (order_id, line_no, item_id, qty, unit_price) VALUES (1, 9, 1, 1, 1)$$),
	('app', 'write stock', $$UPDATE oms.stock SET on_hand = 99$$),
	('app', 'grant itself a tenant', $$SELECT oms.grant_tenant('regress_roles_app', 't_roles_x')$$),
	('app', 'pack', $$SELECT oms.pack(1, 'STORE-A')$$),
	-- the operator: reads its tenant, operates orders and stock through the API only
	('operator', 'read orders', $$SELECT string_agg(external_id, ',' ORDER BY external_id) FROM oms.orders$$),
	('operator', 'adjust_stock', $$SELECT oms.adjust_stock('BRAVO', 'STORE-B', 1, 'found one')$$),
	('operator', 'hold_order', $$SELECT oms.hold_order((SELECT id FROM oms.orders WHERE external_id = 'O-APP'), 'address_check')$$),
	('operator', 'write stock', $$UPDATE oms.stock SET on_hand = 99$$),
	('operator', 'delete events', $$DELETE FROM oms.events$$),
	('operator', 'read tenant grants', $$SELECT count(*) FROM oms.tenant_grants$$),
	-- store A: its own location's orders, lines and stock; refused at store B
	('store_a', 'read orders', $$SELECT string_agg(external_id, ',' ORDER BY external_id) FROM oms.orders$$),
	('store_a', 'read order O-B', $$SELECT count(*) FROM oms.orders WHERE external_id = 'O-B'$$),
	('store_a', 'read stock', $$SELECT string_agg(l.code || '=' || s.on_hand, ',') FROM oms.stock s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id$$),
	('store_a', 'pack O-A at STORE-A', $$SELECT oms.pack((SELECT id FROM oms.orders WHERE external_id = 'O-A'), 'STORE-A') > 0$$),
	('store_a', 'pack O-B at STORE-B', format($$SELECT oms.pack(%s, 'STORE-B')$$, :ob)),
	('store_a', 'adjust_stock at STORE-A', $$SELECT oms.adjust_stock('ALPHA', 'STORE-A', -1, 'broken')$$),
	('store_a', 'adjust_stock at STORE-B', $$SELECT oms.adjust_stock('BRAVO', 'STORE-B', -1, 'broken')$$),
	('store_a', 'set_stock at STORE-B', $$SELECT oms.set_stock('BRAVO', 'STORE-B', 5, 'count')$$),
	('store_a', 'write orders', $$UPDATE oms.orders SET customer_email = 'x@example.com'$$),
	('store_a', 'place_order', $$SELECT oms.place_order('{}')$$),
	('store_b', 'read orders', $$SELECT string_agg(external_id, ',' ORDER BY external_id) FROM oms.orders$$),
	('store_b', 'pack O-B at STORE-B', format($$SELECT oms.pack(%s, 'STORE-B') > 0$$, :ob)),
	-- the reader: nothing in schema oms
	('reader', 'read orders', $$SELECT count(*) FROM oms.orders$$),
	('reader', 'read customer e-mail', $$SELECT customer_email FROM oms.orders LIMIT 1$$),
	('reader', 'atp', $$SELECT oms.atp('ALPHA')$$),
	('reader', 'current tenant', $$SELECT oms.current_tenant_id() > 0$$),
	-- the storefront: nothing but the self-service functions
	('storefront', 'read orders', $$SELECT count(*) FROM oms.orders$$),
	('storefront', 'place_order', $$SELECT oms.place_order('{}')$$),
	-- an app that was granted no tenant
	('app_nogrant', 'current tenant', $$SELECT oms.current_tenant_id()$$),
	('app_nogrant', 'atp', $$SELECT oms.atp('ALPHA')$$),
	('app_nogrant', 'read the catalogue', $$SELECT count(*) FROM oms.items$$),
	('app_nogrant', 'hold', $$SELECT oms.hold('cart-2', 'ALPHA', 1)$$),
	-- the admin: every tenant, direct writes, grants
	('admin', 'read orders', $$SELECT string_agg(external_id, ',' ORDER BY external_id) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()$$),
	('admin', 'insert a channel', $$INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web', 'EUR') RETURNING code$$),
	('admin', 'grant a tenant', $$SELECT oms.revoke_tenant('regress_roles_storefront', 't_roles')$$);

SELECT n, role, action, pg_temp.as_role('regress_roles_' || role, sql) AS result FROM matrix ORDER BY n;

-- Store staff print the documents of their own location's packages only, and reject lines only
-- at their own store; operators run the scheduled jobs by hand (scheduling them with pg_cron is
-- the administrators'), store staff do not.
SELECT s.id AS ship_a FROM oms.shipments s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() AND l.code = 'STORE-A' \gset
SELECT s.id AS ship_b FROM oms.shipments s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() AND l.code = 'STORE-B' \gset
SELECT role, action, pg_temp.as_role('regress_roles_' || role, sql) AS result
  FROM (VALUES ('store_a', 'packing_slip at STORE-A', format($$SELECT oms.packing_slip(%s, 'text') LIKE 'PACKING SLIP%%'$$, :ship_a)),
			   ('store_a', 'packing_slip at STORE-B', format($$SELECT oms.packing_slip(%s, 'text')$$, :ship_b)),
			   ('store_a', 'shipping_label at STORE-B', format($$SELECT oms.shipping_label(%s)$$, :ship_b)),
			   ('store_a', 'reject_line at STORE-B', format($$SELECT oms.reject_line(%s, 1, 'STORE-B', 'not on the shelf')$$, :ob)),
			   ('store_a', 'check_alerts', $$SELECT count(*) FROM oms.check_alerts()$$),
			   ('operator', 'check_alerts', $$SELECT count(*) FROM oms.check_alerts()$$),
			   ('operator', 'run_subscriptions', $$SELECT count(*) FROM oms.run_subscriptions()$$),
			   ('operator', 'schedule', $$SELECT oms.schedule('alerts', '*/5 * * * *')$$))
	   AS t (role, action, sql);
SET ROLE regress_roles_operator;
CALL oms.run_job('alerts');
RESET ROLE;
SELECT job, status, error FROM oms.job_runs WHERE tenant_id = oms.current_tenant_id() ORDER BY id;

-- Another tenant: only the admin may act for it, whatever oms.tenant says.
SET oms.tenant = 't_roles_x';
SELECT role, action, pg_temp.as_role('regress_roles_' || role, sql) AS result
  FROM (VALUES ('app', 'atp', $$SELECT oms.atp('ALPHA')$$),
			   ('app', 'place_order', $$SELECT oms.place_order('{}')$$),
			   ('operator', 'read orders', $$SELECT count(*) FROM oms.orders$$),
			   ('store_a', 'read orders', $$SELECT count(*) FROM oms.orders$$),
			   ('admin', 'current tenant', $$SELECT oms.current_tenant_id() = (SELECT id FROM oms.tenants WHERE code = 't_roles_x')$$),
			   ('admin', 'read orders', $$SELECT count(*) FROM oms.orders WHERE tenant_id = oms.current_tenant_id()$$))
	   AS t (role, action, sql);
SET oms.tenant = 't_roles';

-- A revoked grant holds no more, from the next transaction.
SELECT oms.revoke_tenant('regress_roles_app', 't_roles') AS revoked,
	   oms.revoke_tenant('regress_roles_app', 't_roles') AS revoked_again;
SELECT pg_temp.as_role('regress_roles_app', $$SELECT oms.atp('ALPHA')$$) AS after_revoke;

-- What the matrix did: O-A packed by store A, O-B by store B; stock moved only where allowed
-- (ALPHA at STORE-A: 10 - 1 broken; BRAVO at STORE-B: 10 + 1 found); O-C cancelled by the app,
-- O-APP placed by the app and held by the operator.
SELECT o.external_id, o.state, (SELECT string_agg(l.code, ',') FROM oms.shipments s
	JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
	WHERE s.tenant_id = o.tenant_id AND s.order_id = o.id) AS packed_at
  FROM oms.orders o WHERE o.tenant_id = oms.current_tenant_id() ORDER BY 1;
SELECT i.sku, l.code, s.on_hand, s.reserved
  FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY 1, 2;

-- The API functions granted to non-admin roles run as definer (with their pinned search_path);
-- oms.atp() (both forms: now and time-phased) and oms.atp_by_location() run as the caller.
SELECT p.proname, p.prosecdef
  FROM pg_proc p
 WHERE p.pronamespace = 'oms'::regnamespace
   AND p.proname IN ('atp', 'atp_by_location', 'place_order', 'pack', 'adjust_stock', 'grant_tenant')
 ORDER BY 1;
-- Every table with a tenant_id has row level security.
SELECT c.relname AS tenant_table_without_rls
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r' AND NOT c.relrowsecurity;

DROP TABLE matrix;
DELETE FROM oms.tenant_grants WHERE role LIKE 'regress\_roles\_%';
DELETE FROM oms.store_assignments WHERE role LIKE 'regress\_roles\_%';
DROP ROLE regress_roles_admin, regress_roles_operator, regress_roles_store_a, regress_roles_store_b,
	regress_roles_app, regress_roles_app_nogrant, regress_roles_reader, regress_roles_storefront;
RESET oms.tenant;
