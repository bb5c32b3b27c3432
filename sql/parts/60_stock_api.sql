-- Stock API: set and adjust on_hand, always with a movement in the ledger.

-- Resolves a SKU of the current tenant to its item id; unknown SKU: 22023.
CREATE FUNCTION oms._item_id(p_tenant int, p_sku text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT i.id INTO v_id FROM oms.items i WHERE i.tenant_id = p_tenant AND i.sku = p_sku;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown SKU "%"', oms._clip(p_sku)
			USING ERRCODE = '22023',
			      HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._item_id(int, text) IS 'Internal: the item id of a SKU in a tenant; error 22023 naming an unknown SKU';

-- Resolves a location code of the current tenant to its id; unknown location: 22023.
CREATE FUNCTION oms._location_id(p_tenant int, p_code text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT l.id INTO v_id FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.code = p_code;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown location "%"', oms._clip(p_code)
			USING ERRCODE = '22023',
			      HINT = 'Locations are rows of oms.locations of the current tenant (setting oms.tenant).';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._location_id(int, text) IS 'Internal: the location id of a location code in a tenant; error 22023 naming an unknown location';

-- Checks the free-text reason that every stock change carries.
CREATE FUNCTION oms._check_reason(p_reason text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR btrim(p_reason) = '' THEN
		RAISE EXCEPTION 'a reason is required'
			USING ERRCODE = '22023',
			      HINT = 'Say why the stock changes (e.g. ''cycle count'', ''damaged''); it is kept in oms.stock_movements.';
	END IF;
	IF length(p_reason) > 1000 THEN
		RAISE EXCEPTION 'reason is too long (% characters)', length(p_reason)
			USING ERRCODE = '22023', HINT = 'A reason has at most 1000 characters.';
	END IF;
	RETURN p_reason;
END
$$;
COMMENT ON FUNCTION oms._check_reason(text) IS 'Internal: refuses an empty or over-long reason (22023)';

CREATE FUNCTION oms.set_stock(sku text, location text, on_hand bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF set_stock.on_hand IS NULL OR set_stock.on_hand < 0 OR set_stock.on_hand > 1000000000000 THEN
		RAISE EXCEPTION 'invalid on_hand % for SKU "%" at location "%"', coalesce(set_stock.on_hand::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'on_hand is a whole number of units from 0 to 10^12.';
	END IF;

	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id)
		VALUES (v_tenant, v_item, v_loc)
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING;
	SELECT s.on_hand, s.reserved INTO v_old, v_reserved
		FROM oms.stock s
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		FOR UPDATE;
	IF set_stock.on_hand < v_reserved THEN
		-- a hot SKU's slots may hold the units: they go back to the stock row first
		v_reserved := v_reserved - oms._unslot(v_tenant, v_item, v_loc);
	END IF;
	IF set_stock.on_hand < v_reserved THEN
		RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below what is reserved', sku, location
			USING ERRCODE = 'OM002',
			      DETAIL = format('Requested on hand %s, reserved %s.', set_stock.on_hand, v_reserved),
			      HINT = 'Cancel or move the orders that hold this stock first (see oms.reservations).';
	END IF;
	UPDATE oms.stock s SET on_hand = set_stock.on_hand, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'count', set_stock.on_hand - v_old, set_stock.on_hand, reason, oms._actor());
	RETURN set_stock.on_hand;
END
$$;
COMMENT ON FUNCTION oms.set_stock(text, text, bigint, text) IS 'Sets on hand of a SKU at a location (a stock count) and records the movement; returns the new on hand';

CREATE FUNCTION oms.adjust_stock(sku text, location text, delta bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_new		bigint;
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF delta IS NULL OR delta = 0 OR delta NOT BETWEEN -1000000000000 AND 1000000000000 THEN	-- (abs(-2^63) overflows)
		RAISE EXCEPTION 'invalid delta % for SKU "%" at location "%"', coalesce(delta::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'delta is the signed change of on hand, not 0 and at most 10^12 either way: +5 for found units, -2 for damaged ones.';
	END IF;

	-- One statement checks and changes, so concurrent adjustments and reservations cannot race.
	UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		  AND s.on_hand + delta >= s.reserved
		RETURNING s.on_hand INTO v_new;
	IF v_new IS NULL AND delta < 0 THEN
		-- A hot SKU's slots may hold the units: back to the stock row (locked first, as every
		-- path locks it before its slots), then once more.
		PERFORM FROM oms.stock s
		  WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc AND s.hot
		  FOR UPDATE;
		IF FOUND AND oms._unslot(v_tenant, v_item, v_loc) > 0 THEN
			UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
				WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
				  AND s.on_hand + delta >= s.reserved
				RETURNING s.on_hand INTO v_new;
		END IF;
	END IF;
	IF v_new IS NULL THEN
		SELECT s.on_hand, s.reserved INTO v_old, v_reserved
			FROM oms.stock s
			WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
		IF v_old IS NULL AND delta > 0 THEN
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_item, v_loc, delta)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_new;
		ELSE
			RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below %', sku, location,
					CASE WHEN coalesce(v_reserved, 0) > 0 THEN 'what is reserved' ELSE '0' END
				USING ERRCODE = 'OM002',
				      DETAIL = format('On hand %s, reserved %s, delta %s.', coalesce(v_old, 0), coalesce(v_reserved, 0), delta),
				      HINT = 'On hand never goes below reserved or below 0; cancel or move the orders that hold this stock first.';
		END IF;
	END IF;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'adjustment', delta, v_new, reason, oms._actor());
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms.adjust_stock(text, text, bigint, text) IS 'Adds a signed delta to on hand of a SKU at a location and records the movement; returns the new on hand';
