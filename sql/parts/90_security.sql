-- Privileges and backups.
--
-- PostgreSQL lets PUBLIC execute every new function; oms takes that back, so that nobody can
-- place or cancel orders, or read stock, unless granted. The only functions left to PUBLIC are the
-- support functions of the state types (input, output, comparison, hashing) and the pure functions
-- of the state machine (transition, is_legal, legal_moves, rollup): they read no table, and any role
-- that may read a state column needs them. (PUBLIC still has no USAGE on schema oms.)

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA oms FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA oms FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA oms FROM PUBLIC;

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT DISTINCT p.oid::regprocedure
		  FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'oms'::regnamespace
		   AND (p.oid IN (SELECT t.typinput FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typoutput FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typreceive FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typsend FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace)
				OR p.oid IN (SELECT o.oprcode FROM pg_catalog.pg_operator o WHERE o.oprnamespace = 'oms'::regnamespace)
				OR p.oid IN (SELECT a.amproc FROM pg_catalog.pg_amproc a
							   JOIN pg_catalog.pg_opfamily f ON f.oid = a.amprocfamily
							  WHERE f.opfnamespace = 'oms'::regnamespace)
				-- the pure functions of the state machine: they read no table
				OR p.proname IN ('transition', 'is_legal', 'legal_moves', 'rollup', 'state_rank', 'state_code'))
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
	END LOOP;
END
$$;

-- pg_dump leaves out the rows of extension tables unless they are marked: without this, a backup
-- of an oms database would have no orders. Rows the install script itself creates are filtered.
SELECT pg_catalog.pg_extension_config_dump('oms.tenants', 'WHERE code <> ''default''');
SELECT pg_catalog.pg_extension_config_dump('oms.currencies', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('oms.channels', '');
SELECT pg_catalog.pg_extension_config_dump('oms.locations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.items', '');
SELECT pg_catalog.pg_extension_config_dump('oms.stock', '');
SELECT pg_catalog.pg_extension_config_dump('oms.supply', '');
SELECT pg_catalog.pg_extension_config_dump('oms.stock_movements', '');
SELECT pg_catalog.pg_extension_config_dump('oms.orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.reservations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.events', '');
SELECT pg_catalog.pg_extension_config_dump('oms.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('oms.event_consumers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.payments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.payment_operations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_holds', '');
SELECT pg_catalog.pg_extension_config_dump('oms.shipments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.shipment_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tracking_events', '');
SELECT pg_catalog.pg_extension_config_dump('oms.fraud_rules', '');
SELECT pg_catalog.pg_extension_config_dump('oms.pickups', '');
SELECT pg_catalog.pg_extension_config_dump('oms.delay_notices', '');
SELECT pg_catalog.pg_extension_config_dump('oms.returns', '');
SELECT pg_catalog.pg_extension_config_dump('oms.return_lines', '');
-- routing (62_shipping.sql): the built-in profiles and country centroids are the install's own
SELECT pg_catalog.pg_extension_config_dump('oms.carrier_services', '');
SELECT pg_catalog.pg_extension_config_dump('oms.routing_profiles', 'WHERE tenant_id IS NOT NULL');
SELECT pg_catalog.pg_extension_config_dump('oms.country_centroids', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('oms.location_capacity_used', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_capacity', '');
SELECT pg_catalog.pg_extension_config_dump('oms.stock_slots', '');
SELECT pg_catalog.pg_extension_config_dump('oms.line_exclusions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.job_runs', '');
SELECT pg_catalog.pg_extension_config_dump('oms.job_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('oms.store_assignments', '');
-- replenishment (80..88)
SELECT pg_catalog.pg_extension_config_dump('oms.suppliers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.replenishment_policies', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscription_runs', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tax_rates', '');
SELECT pg_catalog.pg_extension_config_dump('oms.document_settings', '');
SELECT pg_catalog.pg_extension_config_dump('oms.document_counters', '');
SELECT pg_catalog.pg_extension_config_dump('oms.invoices', '');
SELECT pg_catalog.pg_extension_config_dump('oms.invoice_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.sscc_serial_seq', '');
