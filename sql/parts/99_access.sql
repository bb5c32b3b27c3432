-- Privileges of the group roles, row level security, and the SECURITY DEFINER API.
--
-- Design. Tables are written only through the API (and by oms_admin directly). An API function
-- granted to a non-admin role runs as SECURITY DEFINER (its owner, the role that installed oms)
-- with its pinned search_path, so that its callers need no right on the tables. The owner is not
-- limited by row level security, so the definer functions check the caller's rights explicitly:
--   the tenant   every function finds its tenant through oms_tenant_id() (src/oms.c), which
--                refuses (42501) a tenant the caller was not granted (oms.grant_tenant);
--   the location a store role's writes at a location (shipments, pickups, stock movements) are
--                refused (42501) by the trigger oms._store_guard unless the location is assigned
--                to it (oms.assign_store).
-- The caller is the outer user (the session user or the role of a SET ROLE), never the owner.
-- Reads by non-admin roles go through row level security: every table with a tenant_id shows the
-- current tenant's rows only (and oms.current_tenant_id() refuses a tenant not granted), and the
-- store tables show a store role only its locations' rows. oms.atp() reads through indexes, where
-- no policy applies, and applies the tenant rule itself (src/atp.c).
--
--   oms_admin       EXECUTE on every function, every right on every table and sequence, all tenants
--   oms_operator    order operations, payments, returns, stock adjustments, replenishment; reads
--                   every table of its tenants
--   oms_store       the fulfilment steps at its locations (pack, ship, deliver, ready_for_pickup,
--                   collect, adjust_stock, set_stock); reads its locations' orders, lines, stock,
--                   reservations, shipments, pickups and alerts
--   oms_app         promise, place, cancel, holds, ATP, self-service; reads the catalogue and stock
--   oms_storefront  the self-service functions only (granted by the part that defines them)
--   oms_reader      nothing in schema oms (no USAGE): schema oms_bi only

GRANT USAGE ON SCHEMA oms TO oms_admin, oms_operator, oms_store, oms_app, oms_storefront;

GRANT ALL ON ALL TABLES IN SCHEMA oms TO oms_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA oms TO oms_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oms TO oms_admin;

-- Everyone who may call oms at all may ask which tenant it works for (views of oms_bi call it).
GRANT EXECUTE ON FUNCTION oms.current_tenant_id() TO oms_operator, oms_store, oms_app, oms_storefront, oms_reader;
-- The store policies call these as the reading role.
GRANT EXECUTE ON FUNCTION oms._caller(), oms._store_locations() TO oms_store;

-- Reads, limited by the policies below.
DO $$
DECLARE
	v_table text;
BEGIN
	FOR v_table IN
		SELECT c.relname FROM pg_catalog.pg_class c
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
		   AND c.relname NOT IN ('tenant_grants')
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON oms.%I TO oms_operator', v_table);
	END LOOP;
END
$$;
GRANT SELECT ON oms.tenants, oms.currencies, oms.channels, oms.items, oms.locations, oms.stock, oms.supply,
	oms.stock_slots
	TO oms_app, oms_store;
GRANT SELECT ON oms.orders, oms.order_lines, oms.reservations, oms.shipments, oms.shipment_lines,
	oms.pickups, oms.alerts, oms.store_assignments
	TO oms_store;

-- Row level security: the tenant rule on every table with a tenant_id (oms.tenants and
-- oms.currencies have none; oms.tenants shows codes and names, not data). The owner (the definer
-- functions, the worker) and superusers are not subject to it; oms_admin sees every tenant.
DO $$
DECLARE
	v_table text;
BEGIN
	FOR v_table IN
		SELECT c.relname FROM pg_catalog.pg_class c
		  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
		 ORDER BY 1
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE oms.%I ENABLE ROW LEVEL SECURITY', v_table);
		EXECUTE pg_catalog.format('CREATE POLICY tenant ON oms.%I USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()))', v_table);
		EXECUTE pg_catalog.format('CREATE POLICY admin ON oms.%I TO oms_admin USING (true) WITH CHECK (true)', v_table);
	END LOOP;
END
$$;

-- Store staff: only the rows of the locations assigned to them (restrictive: on top of the tenant
-- rule). An order is a store's when it is picked up there or one of its lines is sourced there.
DO $$
DECLARE
	v_table text;
BEGIN
	FOREACH v_table IN ARRAY ARRAY['order_lines', 'stock', 'stock_slots', 'reservations', 'shipments', 'pickups', 'alerts']
	LOOP
		EXECUTE pg_catalog.format('CREATE POLICY store ON oms.%I AS RESTRICTIVE TO oms_store USING (location_id OPERATOR(pg_catalog.=) ANY ((SELECT oms._store_locations())::int[]))', v_table);
	END LOOP;
END
$$;
CREATE POLICY store ON oms.orders AS RESTRICTIVE TO oms_store
	USING (pickup_location_id = ANY ((SELECT oms._store_locations())::int[])
		   OR EXISTS (SELECT FROM oms.order_lines l
					   WHERE l.tenant_id = orders.tenant_id AND l.order_id = orders.id
						 AND l.location_id = ANY ((SELECT oms._store_locations())::int[])));
CREATE POLICY store ON oms.shipment_lines AS RESTRICTIVE TO oms_store
	USING (EXISTS (SELECT FROM oms.shipments s
					WHERE s.tenant_id = shipment_lines.tenant_id AND s.id = shipment_lines.shipment_id));
CREATE POLICY store ON oms.store_assignments AS RESTRICTIVE TO oms_store
	USING (pg_catalog.pg_has_role(oms._caller(), role, 'USAGE'));

-- The location check of store staff's writes (see 22_access.sql).
CREATE TRIGGER store_guard BEFORE INSERT OR UPDATE OF location_id, state ON oms.shipments
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();
CREATE TRIGGER store_guard BEFORE INSERT OR UPDATE ON oms.pickups
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();
CREATE TRIGGER store_guard BEFORE INSERT ON oms.stock_movements
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();

-- The API per role. Every function granted here to a non-admin role becomes SECURITY DEFINER
-- (they all pin search_path), except the readers that run as the caller on purpose: oms.atp()
-- (both forms: now, and time-phased) and oms.atp_by_location() (their callers read the tables,
-- under the policies; oms.atp(sku, location) applies the tenant rule itself). A name that no part
-- defines (yet) is skipped.
DO $$
DECLARE
	v_fn	text;
	v_roles	text;
	v_proc	regprocedure;
BEGIN
	FOR v_fn, v_roles IN
		VALUES
			('atp', 'oms_app, oms_operator'),
			('atp_by_location', 'oms_app, oms_operator, oms_store'),
			('promise', 'oms_app, oms_operator'),
			('route', 'oms_operator'),
			('route_explain', 'oms_operator'),
			('place_order', 'oms_app, oms_operator'),
			('cancel_order', 'oms_app, oms_operator'),
			('hold', 'oms_app, oms_operator'),
			('release_hold', 'oms_app, oms_operator'),
			('order_status', 'oms_app, oms_operator'),
			('request_return', 'oms_app, oms_operator'),
			('cancel_line', 'oms_app, oms_operator'),
			('change_address', 'oms_app, oms_operator'),
			('payment_totals', 'oms_operator'),
			('authorize_payment', 'oms_operator'),
			('capture_payment', 'oms_operator'),
			('refund_payment', 'oms_operator'),
			('void_payment', 'oms_operator'),
			('hold_order', 'oms_operator'),
			('resolve_hold', 'oms_operator'),
			('release_order', 'oms_operator'),
			('pack', 'oms_operator, oms_store'),
			('ship', 'oms_operator, oms_store'),
			('deliver', 'oms_operator, oms_store'),
			('ready_for_pickup', 'oms_operator, oms_store'),
			('collect', 'oms_operator, oms_store'),
			('adjust_stock', 'oms_operator, oms_store'),
			('set_stock', 'oms_operator, oms_store'),
			('set_hot', 'oms_operator'),
			('create_return', 'oms_operator'),
			('receive_return', 'oms_operator'),
			('exchange', 'oms_operator'),
			('forecast', 'oms_operator'),
			('forecast_methods', 'oms_operator'),
			('policy', 'oms_operator'),
			('plan_replenishment', 'oms_operator'),
			('run_replenishment', 'oms_operator'),
			('check_alerts', 'oms_operator'),
			('run_subscriptions', 'oms_operator'),
			('compact_demand_history', 'oms_operator'),
			('compact_bi_sales', 'oms_operator'),
			('_job_begin', 'oms_operator'),
			('_job_next', 'oms_operator'),
			('_job_end', 'oms_operator'),
			('create_purchase_order', 'oms_operator'),
			('send_purchase_order', 'oms_operator'),
			('cancel_purchase_order', 'oms_operator'),
			('receive_purchase_order', 'oms_operator'),
			('create_transfer', 'oms_operator'),
			('receive_transfer', 'oms_operator'),
			('cancel_transfer', 'oms_operator'),
			('subscribe', 'oms_app, oms_operator'),
			('pause_subscription', 'oms_app, oms_operator'),
			('resume_subscription', 'oms_app, oms_operator'),
			('cancel_subscription', 'oms_app, oms_operator'),
			('check_stock_invariants', 'oms_operator'),
			('reject_line', 'oms_operator, oms_store'),
			('tax_split', 'oms_app, oms_operator'),
			('issue_invoice', 'oms_operator'),
			('issue_credit_note', 'oms_operator'),
			('invoice_document', 'oms_operator'),
			('packing_slip', 'oms_operator, oms_store'),
			('shipping_label', 'oms_operator, oms_store'),
			('return_label', 'oms_operator')
	LOOP
		FOR v_proc IN
			SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = v_fn
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', v_proc, v_roles);
			IF v_fn NOT IN ('atp', 'atp_by_location') THEN
				EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', v_proc);
			END IF;
		END LOOP;
	END LOOP;
END
$$;
-- Operators run the scheduled jobs by hand (CALL oms.run_job('alerts')). The procedure runs as
-- its caller (a SECURITY DEFINER procedure cannot commit); the three calls it makes are definer
-- functions granted above. Scheduling with pg_cron (oms.schedule, oms.unschedule) is the
-- administrators'.
GRANT EXECUTE ON PROCEDURE oms.run_job(text, text, int) TO oms_operator;
