-- Replenishment policies: a location default, SKU overrides that inherit field by field, the
-- safety stock formula, and bad input (22023 naming the field and the value; nothing written).
SELECT oms.create_tenant('t_policy') > 0 AS created;
SET oms.tenant = 't_policy';
INSERT INTO oms.locations (code, kind, name) VALUES
	('WH-1', 'warehouse', 'Warehouse 1'), ('VEND-1', 'vendor', 'Drop-ship vendor 1');
INSERT INTO oms.items (sku, name) VALUES ('POL-A', 'A'), ('POL-B', 'B');
INSERT INTO oms.suppliers (code, name) VALUES ('ACME', 'Acme Ltd');

-- The main settings of an effective policy, on one line.
CREATE FUNCTION pg_temp.show(p jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(k || '=' || coalesce(p ->> k, '-'), ' ' ORDER BY n)
	  FROM unnest(ARRAY['source', 'method', 'service_level', 'lead_time_days', 'moq', 'pack_size', 'supplier', 'min', 'max']) WITH ORDINALITY AS u(k, n)
$$;
-- The location default, then a SKU override of two fields: the rest is inherited.
SELECT pg_temp.show(oms.set_policy(NULL, 'WH-1', '{"service_level": 0.98, "lead_time_days": 10, "supplier": "ACME", "moq": 100}'));
SELECT pg_temp.show(oms.set_policy('POL-A', 'WH-1', '{"lead_time_days": 3, "pack_size": 12}'));
-- Every field of the effective policy (the built-in defaults fill what nobody set).
SELECT oms.policy('POL-A', 'WH-1');
-- POL-B has no policy of its own: it gets the location default.
SELECT oms.policy('POL-B', 'WH-1') ->> 'source' AS source, oms.policy('POL-B', 'WH-1') ->> 'lead_time_days' AS lead_time_days;
-- Changing the default reaches the SKU where it does not override.
SELECT oms.set_policy(NULL, 'WH-1', '{"moq": 200}') ->> 'moq' AS default_moq;
SELECT oms.policy('POL-A', 'WH-1') ->> 'moq' AS sku_moq, oms.policy('POL-A', 'WH-1') ->> 'lead_time_days' AS sku_lead_time;
-- null gives a field back to inheritance; a vendor location is a supplier too.
SELECT pg_temp.show(oms.set_policy('POL-A', 'WH-1', '{"lead_time_days": null, "supplier": "VEND-1"}'));
SELECT code, name, (SELECT code FROM oms.locations l WHERE l.tenant_id = s.tenant_id AND l.id = s.location_id) AS location
  FROM oms.suppliers s WHERE tenant_id = oms.current_tenant_id() ORDER BY code;
-- min_max needs min and max; a NULL policy deletes the SKU's row.
SELECT pg_temp.show(oms.set_policy('POL-B', 'WH-1', '{"method": "min_max", "min": 10, "max": 50}'));
SELECT oms.set_policy('POL-B', 'WH-1', NULL) ->> 'method' AS method_after_delete;
SELECT count(*) AS policy_rows FROM oms.replenishment_policies WHERE tenant_id = oms.current_tenant_id();

-- Safety stock: z(0.95) = 1.644854; sigma 2 units a day over 4 days: 1.644854 x 2 x 2 = 6.5794;
-- with a lead time varying by 1 day and a mean of 4 a day: 1.644854 x sqrt(4 x 4 + 16 x 1) = 9.3047.
SELECT round(oms.safety_stock(0.95, 2, 4)::numeric, 4) AS ss, round(oms.safety_stock(0.95, 2, 4, 4, 1)::numeric, 4) AS ss_lt_var,
	   oms.safety_stock(0.5, 2, 4) AS ss_at_50pct, oms.safety_stock(0.95, 0, 4) AS ss_no_variation;

-- Bad input: SQLSTATE, message, hint; nothing written.
CREATE FUNCTION pg_temp.try(p_sku text, p_loc text, p jsonb, OUT code text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM oms.set_policy(p_sku, p_loc, p);
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;
CREATE TEMP TABLE before AS SELECT * FROM oms.replenishment_policies WHERE tenant_id = oms.current_tenant_id();
\x on
SELECT n, (pg_temp.try(sku, loc, p)).*
  FROM (VALUES
	(1, 'POL-A', 'WH-1', '{"service_level": 1}'::jsonb),
	(2, 'POL-A', 'WH-1', '{"service_level": 0}'),
	(3, 'POL-A', 'WH-1', '{"service_level": "high"}'),
	(4, 'POL-A', 'WH-1', '{"lead_time_days": -2}'),
	(5, 'POL-A', 'WH-1', '{"moq": -5}'),
	(6, 'POL-A', 'WH-1', '{"pack_size": 0}'),
	(7, 'POL-A', 'WH-1', '{"supplier": "NOBODY"}'),
	(8, 'POL-A', 'WH-1', '{"method": "just_in_time"}'),
	(9, 'POL-A', 'WH-1', '{"leadtime": 5}'),
	(10, 'POL-B', 'WH-1', '{"method": "min_max", "min": 10}'),
	(11, 'POL-B', 'WH-1', '{"method": "min_max", "min": 60, "max": 50}'),
	(12, 'POL-A', 'WH-1', '{"moq": 2.5}'),
	(13, 'POL-A', 'WH-1', '{"update_safety_stock": "yes"}'),
	(14, 'NOPE', 'WH-1', '{}'),
	(15, 'POL-A', 'NOWHERE', '{}'),
	(16, 'POL-A', 'WH-1', '[1]')) AS c(n, sku, loc, p)
 ORDER BY n;
\x off
SELECT count(*) AS changed FROM (
	SELECT * FROM oms.replenishment_policies WHERE tenant_id = oms.current_tenant_id()
	EXCEPT SELECT * FROM before) x;
SELECT oms.safety_stock(1.5, 2, 4);
SELECT oms.safety_stock(0.95, 2, -1);
