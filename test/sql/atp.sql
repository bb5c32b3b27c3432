-- ATP per location and over the network (oms.atp, oms.atp_by_location), in tenant t_atp.
--
-- The network: two warehouses that ship, a 3PL that ships, a store that cannot ship (click &
-- collect only) and an inactive warehouse.
SELECT oms.create_tenant('t_atp') > 0 AS created;
SET oms.tenant = 't_atp';

-- Runs a statement and returns its SQLSTATE and message (NULL when it succeeds).
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

INSERT INTO oms.locations (code, kind, name, can_ship, can_pickup, priority, active) VALUES
	('WH-NORTH', 'warehouse', 'North warehouse', true,  false, 10, true),
	('WH-SOUTH', 'warehouse', 'South warehouse', true,  false, 20, true),
	('TPL-EAST', '3pl',       'East 3PL',        true,  false, 20, true),
	('ST-MILAN', 'store',     'Milan store',     false, true,   5, true),
	('WH-OLD',   'warehouse', 'Closed warehouse', true, false,  1, false);
INSERT INTO oms.items (sku, name) VALUES
	('TSHIRT-M', 'T-shirt, size M'), ('MUG', 'Mug'), ('POSTER', 'Poster (never stocked)');

-- TSHIRT-M: on_hand / safety_stock per location; reserved comes from holds below.
INSERT INTO oms.stock (item_id, location_id, on_hand, safety_stock)
SELECT i.id, l.id, v.on_hand, v.safety_stock
  FROM (VALUES ('TSHIRT-M', 'WH-NORTH', 10, 2),
			   ('TSHIRT-M', 'WH-SOUTH',  4, 0),
			   ('TSHIRT-M', 'TPL-EAST',  0, 0),
			   ('TSHIRT-M', 'ST-MILAN',  6, 0),
			   ('TSHIRT-M', 'WH-OLD',  100, 0),
			   ('MUG',      'WH-SOUTH',  7, 0)) AS v(sku, loc, on_hand, safety_stock)
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = v.sku
  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.code = v.loc;

-- Nothing reserved yet. WH-NORTH: 10 - 0 - 2 = 8; WH-SOUTH: 4; TPL-EAST: 0; the store: 6;
-- the inactive warehouse: 0 although it has 100. Network: 8 + 4 + 0 = 12 (not the store, not
-- the inactive warehouse).
SELECT oms.atp('TSHIRT-M', 'WH-NORTH') AS north, oms.atp('TSHIRT-M', 'WH-SOUTH') AS south,
	   oms.atp('TSHIRT-M', 'TPL-EAST') AS east, oms.atp('TSHIRT-M', 'ST-MILAN') AS store,
	   oms.atp('TSHIRT-M', 'WH-OLD') AS inactive, oms.atp('TSHIRT-M') AS network;

-- Holds of 3 at WH-NORTH and 3 at WH-SOUTH: reserved counts against ATP.
INSERT INTO oms.reservations (item_id, location_id, qty, cart, expires_at)
SELECT i.id, l.id, 3, v.cart, now() + interval '15 minutes'
  FROM (VALUES ('cart-n', 'WH-NORTH'), ('cart-s', 'WH-SOUTH')) AS v(cart, loc)
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = 'TSHIRT-M'
  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.code = v.loc;
-- WH-NORTH: 10 - 3 - 2 = 5; WH-SOUTH: 4 - 3 - 0 = 1; network 5 + 1 + 0 = 6.
SELECT oms.atp('TSHIRT-M', 'WH-NORTH') AS north, oms.atp('TSHIRT-M', 'WH-SOUTH') AS south,
	   oms.atp('TSHIRT-M') AS network;

-- Safety stock at WH-SOUTH raised to 2: 4 - 3 - 2 = -1, shown as 0 (never negative), and it
-- takes nothing away from the other locations: network 5 + 0 + 0 = 5.
UPDATE oms.stock SET safety_stock = 2
 WHERE tenant_id = oms.current_tenant_id()
   AND location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-SOUTH')
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'TSHIRT-M');
SELECT oms.atp('TSHIRT-M', 'WH-SOUTH') AS south, oms.atp('TSHIRT-M') AS network;

-- One row per active location with a stock row, by priority then code (TPL-EAST before
-- WH-SOUTH at priority 20); the inactive WH-OLD is not listed.
SELECT * FROM oms.atp_by_location('TSHIRT-M');

-- The exclusions are the flags: activating WH-OLD adds its 100 to the network, letting the store
-- ship adds its 6; both undone again.
BEGIN;
UPDATE oms.locations SET active = true WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-OLD';
SELECT oms.atp('TSHIRT-M', 'WH-OLD') AS old, oms.atp('TSHIRT-M') AS network;
UPDATE oms.locations SET can_ship = true WHERE tenant_id = oms.current_tenant_id() AND code = 'ST-MILAN';
SELECT oms.atp('TSHIRT-M') AS network;
ROLLBACK;
SELECT oms.atp('TSHIRT-M') AS network;

-- MUG is stocked only at WH-SOUTH: no stock row at WH-NORTH means 0 there.
SELECT oms.atp('MUG') AS network, oms.atp('MUG', 'WH-SOUTH') AS south,
	   oms.atp('MUG', 'WH-NORTH') AS north;
SELECT * FROM oms.atp_by_location('MUG');

-- POSTER exists but is stocked nowhere: 0, and no rows.
SELECT oms.atp('POSTER') AS network, oms.atp('POSTER', 'WH-NORTH') AS north;
SELECT count(*) AS rows FROM oms.atp_by_location('POSTER');

-- NULL SKU: NULL; NULL location: the network.
SELECT oms.atp(NULL) IS NULL AS null_sku, oms.atp(NULL, 'WH-NORTH') IS NULL AS null_sku_at,
	   oms.atp('MUG', NULL) AS null_location;
SELECT count(*) AS rows FROM oms.atp_by_location(NULL);

-- Unknown SKU or location: 22023 naming it, with a hint.
SELECT oms.atp('NO-SUCH-SKU');
SELECT oms.atp('MUG', 'NO-SUCH-PLACE');
SELECT * FROM oms.atp_by_location('NO-SUCH-SKU');
SELECT pg_temp.error_of($$SELECT oms.atp('NO-SUCH-SKU')$$) AS sku_error,
	   pg_temp.error_of($$SELECT oms.atp('MUG', 'NO-SUCH-PLACE')$$) AS location_error;
SELECT pg_temp.error_of($$SELECT oms.atp('NO-SUCH-SKU', 'NO-SUCH-PLACE')$$) AS both_unknown,
	   pg_temp.error_of($$SELECT * FROM oms.atp_by_location('NO-SUCH-SKU')$$) AS by_location_error;
-- SKUs and codes are case sensitive.
SELECT pg_temp.error_of($$SELECT oms.atp('mug')$$) AS lower_case;

-- Tenant separation: t_atp_other has its own MUG and WH-SOUTH (and a SKU of its own).
SELECT oms.create_tenant('t_atp_other') > 0 AS created;
SET oms.tenant = 't_atp_other';
INSERT INTO oms.locations (code, kind, name) VALUES ('WH-SOUTH', 'warehouse', 'Other south warehouse');
INSERT INTO oms.items (sku, name) VALUES ('MUG', 'Other mug'), ('ONLY-OTHER', 'Only in the other tenant');
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, 50
  FROM oms.items i JOIN oms.locations l ON l.tenant_id = i.tenant_id
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'MUG' AND l.code = 'WH-SOUTH';
SELECT oms.atp('MUG') AS other_network, oms.atp('MUG', 'WH-SOUTH') AS other_south;
SELECT * FROM oms.atp_by_location('MUG');
SELECT pg_temp.error_of($$SELECT oms.atp('TSHIRT-M')$$) AS not_in_other;
SET oms.tenant = 't_atp';
SELECT oms.atp('MUG') AS network, oms.atp('MUG', 'WH-SOUTH') AS south;
SELECT pg_temp.error_of($$SELECT oms.atp('ONLY-OTHER')$$) AS not_in_t_atp;

-- An unknown tenant is an error too.
SET oms.tenant = 't_atp_nobody';
SELECT pg_temp.error_of($$SELECT oms.atp('MUG')$$) AS unknown_tenant;
RESET oms.tenant;

-- oms.atp() reads through indexes, but asks for the privileges its SQL would need: EXECUTE, and
-- SELECT on oms.tenants, oms.items, oms.locations and oms.stock.
SET oms.tenant = 't_atp';
CREATE ROLE regress_oms_atp_reader;
GRANT USAGE ON SCHEMA oms TO regress_oms_atp_reader;
GRANT EXECUTE ON FUNCTION oms.atp(text, text) TO regress_oms_atp_reader;
SET ROLE regress_oms_atp_reader;
SELECT pg_temp.error_of($$SELECT oms.atp('MUG')$$) AS without_select;
RESET ROLE;
GRANT SELECT ON oms.tenants, oms.items, oms.locations TO regress_oms_atp_reader;
SET ROLE regress_oms_atp_reader;
SELECT pg_temp.error_of($$SELECT oms.atp('MUG')$$) AS without_select_on_stock;
RESET ROLE;
GRANT SELECT ON oms.stock TO regress_oms_atp_reader;
-- row level security is on, and index reads do not apply it: oms.atp() applies the tenant rule
-- itself, refusing a tenant the role may not act for (42501) until it is granted
SET ROLE regress_oms_atp_reader;
SELECT pg_temp.error_of($$SELECT oms.atp('MUG')$$) AS tenant_not_granted;
RESET ROLE;
SELECT oms.grant_tenant('regress_oms_atp_reader', 't_atp');
SET ROLE regress_oms_atp_reader;
SELECT oms.atp('MUG') AS with_select;
RESET ROLE;
REVOKE SELECT ON oms.stock FROM regress_oms_atp_reader;
SET ROLE regress_oms_atp_reader;
SELECT pg_temp.error_of($$SELECT oms.atp('MUG')$$) AS after_revoke;
RESET ROLE;
REVOKE ALL ON oms.tenants, oms.items, oms.locations FROM regress_oms_atp_reader;
REVOKE ALL ON FUNCTION oms.atp(text, text) FROM regress_oms_atp_reader;
REVOKE ALL ON SCHEMA oms FROM regress_oms_atp_reader;
SELECT oms.revoke_tenant('regress_oms_atp_reader', 't_atp');
DROP ROLE regress_oms_atp_reader;

-- Row level security is enabled on those of its tables that have a tenant_id (the policies of
-- 99_access.sql); oms.atp() works under it (as above, for a role the policies apply to).
SELECT c.relname, c.relrowsecurity FROM pg_class c
 WHERE c.oid IN ('oms.tenants'::regclass, 'oms.items'::regclass, 'oms.locations'::regclass, 'oms.stock'::regclass)
 ORDER BY 1;
RESET oms.tenant;

-- Function properties: cheap reads, safe in parallel plans.
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'oms' AND p.proname IN ('atp', 'atp_by_location')
 ORDER BY p.proname;

-- Leave no stock behind for the tests that follow (the tenants stay).
SET oms.tenant = 't_atp';
DELETE FROM oms.reservations WHERE tenant_id = oms.current_tenant_id();
SELECT oms.atp('TSHIRT-M') AS network_without_holds;
DELETE FROM oms.stock WHERE tenant_id IN (SELECT id FROM oms.tenants WHERE code IN ('t_atp', 't_atp_other'));
DELETE FROM oms.items WHERE tenant_id IN (SELECT id FROM oms.tenants WHERE code IN ('t_atp', 't_atp_other'));
DELETE FROM oms.locations WHERE tenant_id IN (SELECT id FROM oms.tenants WHERE code IN ('t_atp', 't_atp_other'));
RESET oms.tenant;
