-- Suppliers and replenishment policies.
--
-- A policy belongs to a location: a row with item_id NULL is the location's default, a row with
-- an item overrides it for that SKU. Every setting is a nullable column: NULL inherits, field by
-- field, from the location's default, then from the built-in default (oms._policy_defaults()).
-- Planning (oms.plan_replenishment) reads the effective values.

CREATE TABLE oms.suppliers (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	code			text NOT NULL CHECK (code <> '' AND length(code) <= 100),
	name			text NOT NULL,
	location_id		int,
	email			text,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, code),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
COMMENT ON TABLE oms.suppliers IS 'Suppliers that purchase orders go to; location_id links a supplier that is also a vendor location (drop-ship vendor)';

CREATE TABLE oms.replenishment_policies (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					int GENERATED ALWAYS AS IDENTITY,
	location_id			int NOT NULL,
	item_id				int,
	method				text CHECK (method IN ('reorder_point', 'min_max')),
	service_level		numeric CHECK (service_level > 0 AND service_level < 1),
	lead_time_days		numeric CHECK (lead_time_days >= 0 AND lead_time_days <= 3650),
	lead_time_sd		numeric CHECK (lead_time_sd >= 0 AND lead_time_sd <= 3650),
	review_period_days	numeric CHECK (review_period_days >= 0 AND review_period_days <= 3650),
	history_days		int CHECK (history_days BETWEEN 7 AND 3660),
	min_qty				bigint CHECK (min_qty >= 0),
	max_qty				bigint CHECK (max_qty >= 0),
	order_qty			bigint CHECK (order_qty > 0),
	moq					bigint CHECK (moq >= 0),
	pack_size			bigint CHECK (pack_size >= 1),
	supplier_id			int,
	unit_cost			numeric CHECK (unit_cost >= 0),
	overstock_days		numeric CHECK (overstock_days > 0),
	update_safety_stock	boolean,
	rebalance			boolean,
	auto_send			boolean,
	updated_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_by			text NOT NULL DEFAULT session_user,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT replenishment_policies_key UNIQUE NULLS NOT DISTINCT (tenant_id, location_id, item_id),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supplier_id) REFERENCES oms.suppliers
);
COMMENT ON TABLE oms.replenishment_policies IS 'Replenishment policy per location (item_id NULL: the location''s default) or per SKU and location; NULL settings inherit from the default, then from oms._policy_defaults()';
COMMENT ON COLUMN oms.replenishment_policies.update_safety_stock IS 'When true, oms.run_replenishment writes the computed safety stock into stock.safety_stock, which ATP then keeps back';
COMMENT ON COLUMN oms.replenishment_policies.rebalance IS 'When true, a shortage here may be covered by a transfer from a location with surplus before buying';
COMMENT ON COLUMN oms.replenishment_policies.auto_send IS 'When true, purchase orders that oms.run_replenishment creates are sent at once (else they wait as draft)';

CREATE FUNCTION oms._policy_defaults() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN '{"method": "reorder_point", "service_level": 0.95, "lead_time_days": 7, "lead_time_sd": 0,
			 "review_period_days": 0, "history_days": 90, "min": null, "max": null, "order_qty": null,
			 "moq": 0, "pack_size": 1, "supplier": null, "unit_cost": null, "overstock_days": null,
			 "update_safety_stock": false, "rebalance": true, "auto_send": false}'::jsonb;
COMMENT ON FUNCTION oms._policy_defaults() IS 'The built-in replenishment policy settings that policies inherit when neither the SKU nor the location default sets them';

-- The days of history that planning reads for a SKU at a location: its policy's history_days,
-- else the location default's, else the built-in 90.
CREATE FUNCTION oms._history_days(p_tenant int, p_item int, p_location int) RETURNS int
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN coalesce((SELECT coalesce(s.history_days, d.history_days)
					   FROM (SELECT 1) one
					   LEFT JOIN oms.replenishment_policies s
						 ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
					   LEFT JOIN oms.replenishment_policies d
						 ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL),
					(oms._policy_defaults() ->> 'history_days')::int);
COMMENT ON FUNCTION oms._history_days(int, int, int) IS 'Internal: the days of demand history planning reads for an item at a location (its policy, the location default, else 90)';

-- The supplier named by a code: a row of oms.suppliers, else a vendor location (which then gets
-- its supplier row); 22023 otherwise.
CREATE FUNCTION oms._supplier_id(p_tenant int, p_code text) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT s.id INTO v_id FROM oms.suppliers s WHERE s.tenant_id = p_tenant AND s.code = p_code;
	IF v_id IS NULL THEN
		INSERT INTO oms.suppliers AS s (tenant_id, code, name, location_id)
		SELECT l.tenant_id, l.code, l.name, l.id FROM oms.locations l
		 WHERE l.tenant_id = p_tenant AND l.code = p_code AND l.kind = 'vendor'
		ON CONFLICT (tenant_id, code) DO UPDATE SET location_id = s.location_id
		RETURNING s.id INTO v_id;
	END IF;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown supplier "%"', coalesce(p_code, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A supplier is a row of oms.suppliers, or the code of a location of kind vendor.';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._supplier_id(int, text) IS 'Internal: the id of a supplier code (a vendor location''s code makes it a supplier); 22023 for an unknown one';

-- One numeric field of a JSON object, checked: NULL when absent or null.
CREATE FUNCTION oms._json_number(p_obj jsonb, p_what text, p_key text, p_min numeric, p_min_open boolean,
								 p_max numeric, p_whole boolean, p_hint text, p_path text DEFAULT '') RETURNS numeric
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v jsonb := p_obj -> p_key;
	n numeric;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) = 'number' THEN
		n := v::numeric;
	END IF;
	IF n IS NULL OR (p_whole AND n <> trunc(n)) OR n < p_min OR (p_min_open AND n = p_min) OR n > p_max THEN
		RAISE EXCEPTION '% field "%" must be %, got %', p_what, p_path || p_key,
				CASE WHEN p_whole THEN 'a whole number ' ELSE 'a number ' END
				|| CASE WHEN p_min_open THEN 'greater than ' || p_min ELSE 'of at least ' || p_min END
				|| CASE WHEN p_max < 1e15 THEN ' and at most ' || p_max ELSE '' END,
				v::text
			USING ERRCODE = '22023', HINT = p_hint;
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION oms._json_number(jsonb, text, text, numeric, boolean, numeric, boolean, text, text) IS 'Internal: a checked number from a JSON object (22023 naming the field, after the path prefix, and the value); NULL when absent or null';

CREATE FUNCTION oms._json_boolean(p_obj jsonb, p_what text, p_key text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_obj -> p_key IS NULL OR jsonb_typeof(p_obj -> p_key) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_obj -> p_key) <> 'boolean' THEN
		RAISE EXCEPTION '% field "%" must be true or false, got %', p_what, p_key, (p_obj -> p_key)::text
			USING ERRCODE = '22023', HINT = 'Write true or false, without quotes; null inherits.';
	END IF;
	RETURN (p_obj ->> p_key)::boolean;
END
$$;
COMMENT ON FUNCTION oms._json_boolean(jsonb, text, text) IS 'Internal: a checked boolean from a JSON object (22023 naming the field and the value); NULL when absent or null';

-- The effective policies of a tenant, one row per policy row's (location, item), with every
-- setting resolved: the SKU's value, else the location default's, else the built-in default.
CREATE FUNCTION oms._effective_policy(p_tenant int, p_location int, p_item int)
	RETURNS TABLE (policy_id int, default_id int, method text, service_level numeric, lead_time_days numeric,
				   lead_time_sd numeric, review_period_days numeric, history_days int, min_qty bigint,
				   max_qty bigint, order_qty bigint, moq bigint, pack_size bigint, supplier_id int,
				   unit_cost numeric, overstock_days numeric, update_safety_stock boolean, rebalance boolean,
				   auto_send boolean)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT s.id, d.id,
		   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method'),
		   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric),
		   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric),
		   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric),
		   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric),
		   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int),
		   coalesce(s.min_qty, d.min_qty), coalesce(s.max_qty, d.max_qty), coalesce(s.order_qty, d.order_qty),
		   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint),
		   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint),
		   coalesce(s.supplier_id, d.supplier_id), coalesce(s.unit_cost, d.unit_cost),
		   coalesce(s.overstock_days, d.overstock_days),
		   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean),
		   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean),
		   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean)
	  FROM (SELECT 1) one
	  LEFT JOIN oms.replenishment_policies s
		ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
	  LEFT JOIN oms.replenishment_policies d
		ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL
	 WHERE s.id IS NOT NULL OR d.id IS NOT NULL;
END
$$;
COMMENT ON FUNCTION oms._effective_policy(int, int, int) IS 'Internal: the effective policy of an item at a location (item NULL: the location default), every setting resolved; no row when there is no policy';

CREATE FUNCTION oms.policy(sku text, location text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_loc		int := oms._location_id(v_tenant, location);
	v_item		int := CASE WHEN sku IS NOT NULL THEN oms._item_id(v_tenant, sku) END;
	v_result	jsonb;
BEGIN
	SELECT jsonb_build_object('method', e.method, 'service_level', e.service_level, 'lead_time_days', e.lead_time_days,
			   'lead_time_sd', e.lead_time_sd, 'review_period_days', e.review_period_days, 'history_days', e.history_days,
			   'min', e.min_qty, 'max', e.max_qty, 'order_qty', e.order_qty, 'moq', e.moq, 'pack_size', e.pack_size,
			   'supplier', (SELECT s.code FROM oms.suppliers s WHERE s.tenant_id = v_tenant AND s.id = e.supplier_id),
			   'unit_cost', e.unit_cost, 'overstock_days', e.overstock_days,
			   'update_safety_stock', e.update_safety_stock, 'rebalance', e.rebalance, 'auto_send', e.auto_send,
			   'source', CASE WHEN e.policy_id IS NOT NULL AND v_item IS NOT NULL THEN 'sku' ELSE 'location' END)
	  INTO v_result
	  FROM oms._effective_policy(v_tenant, v_loc, v_item) e;
	RETURN v_result;
END
$$;
COMMENT ON FUNCTION oms.policy(text, text) IS 'The effective replenishment policy of a SKU at a location (sku NULL: the location default), every setting resolved, as JSON; NULL when neither the SKU nor the location has one';

CREATE FUNCTION oms.set_policy(sku text, location text, policy jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_loc		int := oms._location_id(v_tenant, location);
	v_item		int := CASE WHEN sku IS NOT NULL THEN oms._item_id(v_tenant, sku) END;
	p			jsonb := set_policy.policy;
	v_what		text := 'policy';
	v_key		text;
	v_supplier	int;
	e			record;
BEGIN
	IF p IS NULL THEN
		DELETE FROM oms.replenishment_policies r
		 WHERE r.tenant_id = v_tenant AND r.location_id = v_loc AND r.item_id IS NOT DISTINCT FROM v_item;
		RETURN oms.policy(sku, location);
	END IF;
	IF jsonb_typeof(p) <> 'object' THEN
		RAISE EXCEPTION 'policy must be a JSON object, got %', left(p::text, 80)
			USING ERRCODE = '22023', HINT = 'For example {"service_level": 0.95, "lead_time_days": 7, "moq": 10, "pack_size": 6}.';
	END IF;
	SELECT k INTO v_key FROM jsonb_object_keys(p) k WHERE NOT (oms._policy_defaults() ? k) ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'policy field "%" is not known', v_key
			USING ERRCODE = '22023',
			      HINT = 'Known fields: ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(oms._policy_defaults()) k) || '.';
	END IF;
	IF p ? 'method' AND jsonb_typeof(p -> 'method') <> 'null'
	   AND (jsonb_typeof(p -> 'method') <> 'string' OR p ->> 'method' NOT IN ('reorder_point', 'min_max')) THEN
		RAISE EXCEPTION 'policy field "method" must be reorder_point or min_max, got %', (p -> 'method')::text
			USING ERRCODE = '22023',
			      HINT = 'reorder_point orders when stock falls to the computed reorder point; min_max orders up to max when it falls to min.';
	END IF;
	IF p ? 'supplier' AND jsonb_typeof(p -> 'supplier') <> 'null' THEN
		IF jsonb_typeof(p -> 'supplier') <> 'string' THEN
			RAISE EXCEPTION 'policy field "supplier" must be a supplier code, got %', (p -> 'supplier')::text
				USING ERRCODE = '22023', HINT = 'A supplier is a row of oms.suppliers, or the code of a location of kind vendor.';
		END IF;
		v_supplier := oms._supplier_id(v_tenant, p ->> 'supplier');
	END IF;
	IF p ? 'service_level' AND jsonb_typeof(p -> 'service_level') <> 'null'
	   AND (jsonb_typeof(p -> 'service_level') <> 'number' OR (p ->> 'service_level')::numeric <= 0
			OR (p ->> 'service_level')::numeric >= 1) THEN
		RAISE EXCEPTION 'policy field "service_level" must be a number between 0 and 1, both excluded, got %', (p -> 'service_level')::text
			USING ERRCODE = '22023',
			      HINT = 'A service level is the probability of not running out during a lead time, e.g. 0.95 for 95%; a level of 1 would need infinite safety stock.';
	END IF;

	INSERT INTO oms.replenishment_policies AS r
		(tenant_id, location_id, item_id, method, service_level, lead_time_days, lead_time_sd, review_period_days,
		 history_days, min_qty, max_qty, order_qty, moq, pack_size, supplier_id, unit_cost, overstock_days,
		 update_safety_stock, rebalance, auto_send)
	VALUES (v_tenant, v_loc, v_item, p ->> 'method',
		oms._json_number(p, v_what, 'service_level', 0, true, 1, false, NULL),
		oms._json_number(p, v_what, 'lead_time_days', 0, false, 3650, false, 'Days from ordering to receiving, 0 or more.'),
		oms._json_number(p, v_what, 'lead_time_sd', 0, false, 3650, false, 'The standard deviation of the lead time in days, 0 or more.'),
		oms._json_number(p, v_what, 'review_period_days', 0, false, 3650, false, 'Days between two reviews of the stock, 0 for continuous review.'),
		oms._json_number(p, v_what, 'history_days', 7, false, 3660, true, 'Days of demand history that planning reads, 7 to 3660.'),
		oms._json_number(p, v_what, 'min', 0, false, 1e15, true, 'min is the stock level (units) at which a min_max policy orders.'),
		oms._json_number(p, v_what, 'max', 0, false, 1e15, true, 'max is the stock level (units) a min_max policy orders up to.'),
		oms._json_number(p, v_what, 'order_qty', 0, true, 1e15, true, 'The quantity a reorder_point policy orders (in multiples), at least 1.'),
		oms._json_number(p, v_what, 'moq', 0, false, 1e15, true, 'The minimum order quantity of the supplier, 0 for none.'),
		oms._json_number(p, v_what, 'pack_size', 0, true, 1e15, true, 'Orders are rounded up to whole packs of this many units, at least 1.'),
		v_supplier,
		oms._json_number(p, v_what, 'unit_cost', 0, false, 1e15, false, 'The purchase price of one unit, 0 or more.'),
		oms._json_number(p, v_what, 'overstock_days', 0, true, 36500, false, 'Stock covering more than this many days of demand is overstock (alerts).'),
		oms._json_boolean(p, v_what, 'update_safety_stock'), oms._json_boolean(p, v_what, 'rebalance'),
		oms._json_boolean(p, v_what, 'auto_send'))
	ON CONFLICT ON CONSTRAINT replenishment_policies_key DO UPDATE SET
		method = CASE WHEN p ? 'method' THEN EXCLUDED.method ELSE r.method END,
		service_level = CASE WHEN p ? 'service_level' THEN EXCLUDED.service_level ELSE r.service_level END,
		lead_time_days = CASE WHEN p ? 'lead_time_days' THEN EXCLUDED.lead_time_days ELSE r.lead_time_days END,
		lead_time_sd = CASE WHEN p ? 'lead_time_sd' THEN EXCLUDED.lead_time_sd ELSE r.lead_time_sd END,
		review_period_days = CASE WHEN p ? 'review_period_days' THEN EXCLUDED.review_period_days ELSE r.review_period_days END,
		history_days = CASE WHEN p ? 'history_days' THEN EXCLUDED.history_days ELSE r.history_days END,
		min_qty = CASE WHEN p ? 'min' THEN EXCLUDED.min_qty ELSE r.min_qty END,
		max_qty = CASE WHEN p ? 'max' THEN EXCLUDED.max_qty ELSE r.max_qty END,
		order_qty = CASE WHEN p ? 'order_qty' THEN EXCLUDED.order_qty ELSE r.order_qty END,
		moq = CASE WHEN p ? 'moq' THEN EXCLUDED.moq ELSE r.moq END,
		pack_size = CASE WHEN p ? 'pack_size' THEN EXCLUDED.pack_size ELSE r.pack_size END,
		supplier_id = CASE WHEN p ? 'supplier' THEN EXCLUDED.supplier_id ELSE r.supplier_id END,
		unit_cost = CASE WHEN p ? 'unit_cost' THEN EXCLUDED.unit_cost ELSE r.unit_cost END,
		overstock_days = CASE WHEN p ? 'overstock_days' THEN EXCLUDED.overstock_days ELSE r.overstock_days END,
		update_safety_stock = CASE WHEN p ? 'update_safety_stock' THEN EXCLUDED.update_safety_stock ELSE r.update_safety_stock END,
		rebalance = CASE WHEN p ? 'rebalance' THEN EXCLUDED.rebalance ELSE r.rebalance END,
		auto_send = CASE WHEN p ? 'auto_send' THEN EXCLUDED.auto_send ELSE r.auto_send END,
		updated_at = pg_catalog.now(), updated_by = oms._actor();

	-- What the SKU ends up with, inherited settings included, must make sense as a whole.
	SELECT * INTO e FROM oms._effective_policy(v_tenant, v_loc, v_item);
	IF e.method = 'min_max' AND (e.min_qty IS NULL OR e.max_qty IS NULL) THEN
		RAISE EXCEPTION 'a min_max policy needs both "min" and "max"'
			USING ERRCODE = '22023',
			      DETAIL = format('min is %s, max is %s.', coalesce(e.min_qty::text, 'not set'), coalesce(e.max_qty::text, 'not set')),
			      HINT = 'For example {"method": "min_max", "min": 20, "max": 100}.';
	END IF;
	IF e.min_qty > e.max_qty THEN
		RAISE EXCEPTION 'policy "min" % is above "max" %', e.min_qty, e.max_qty
			USING ERRCODE = '22023', HINT = 'min is the level at which to order, max the level to order up to: min <= max.';
	END IF;
	RETURN oms.policy(sku, location);
END
$$;
COMMENT ON FUNCTION oms.set_policy(text, text, jsonb) IS 'Sets replenishment policy fields for a SKU at a location (sku NULL: the location default); fields not given keep their value, null inherits; NULL policy deletes it; returns the effective policy';

SELECT pg_catalog.pg_extension_config_dump('oms.suppliers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.replenishment_policies', '');
