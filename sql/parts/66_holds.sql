-- Cart holds: stock set aside for a shopper's cart for a while (default 15 minutes). The hold is a
-- reservation row with cart and expires_at; the reservation trigger takes the stock, the
-- background worker deletes expired holds (giving it back), and place_order with the same cart
-- turns the holds into the order's reservations.

CREATE FUNCTION oms.hold(cart text, sku text, qty int, location text DEFAULT NULL,
						 ttl interval DEFAULT '15 minutes')
	RETURNS TABLE (held_location text, held_qty int, expires_at timestamptz)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_loc		int;
	v_old_loc	int;
	v_old_qty	int;
	v_expires	timestamptz;
BEGIN
	IF hold.cart IS NULL OR hold.cart = '' OR length(hold.cart) > 200 THEN
		RAISE EXCEPTION 'invalid cart "%"', coalesce(oms._clip(hold.cart), 'NULL')
			USING ERRCODE = '22023', HINT = 'A cart id is a non-empty text of at most 200 characters.';
	END IF;
	v_item := oms._item_id(v_tenant, hold.sku);
	IF hold.qty IS NULL OR hold.qty < 0 THEN
		RAISE EXCEPTION 'invalid qty % for SKU "%" in cart "%"', coalesce(hold.qty::text, 'NULL'), hold.sku, hold.cart
			USING ERRCODE = '22023', HINT = 'qty is a whole number of units; 0 releases the hold.';
	END IF;
	IF ttl IS NULL OR ttl <= interval '0' OR ttl > interval '30 days' THEN
		RAISE EXCEPTION 'invalid ttl % for cart "%"', coalesce(ttl::text, 'NULL'), hold.cart
			USING ERRCODE = '22023', HINT = 'A hold lasts more than 0 and at most 30 days.';
	END IF;

	SELECT r.location_id, r.qty INTO v_old_loc, v_old_qty
		FROM oms.reservations r
		WHERE r.tenant_id = v_tenant AND r.cart = hold.cart AND r.item_id = v_item
		FOR UPDATE;

	IF hold.qty = 0 THEN
		DELETE FROM oms.reservations r WHERE r.tenant_id = v_tenant AND r.cart = hold.cart AND r.item_id = v_item;
		RETURN;
	END IF;

	IF hold.location IS NOT NULL THEN
		v_loc := oms._location_id(v_tenant, hold.location);
		IF NOT EXISTS (SELECT FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_loc AND l.active) THEN
			RAISE EXCEPTION 'location "%" is not active', hold.location
				USING ERRCODE = '22023', HINT = 'Hold stock at an active location, or pass NULL to let oms choose.';
		END IF;
	ELSE
		SELECT c.location_id INTO v_loc
			FROM oms._choose_locations(v_tenant, ARRAY[v_item], ARRAY[hold.qty], ARRAY[v_old_loc],
									   ARRAY[v_old_qty::bigint], NULL) c;
		IF v_loc IS NULL THEN
			RAISE EXCEPTION 'insufficient stock for SKU "%"', hold.sku
				USING ERRCODE = 'OM001',
				      DETAIL = format('Requested %s, available %s across the network, and no single location has %s.',
									  hold.qty, oms.atp(hold.sku) + coalesce(v_old_qty, 0), hold.qty),
				      HINT = 'Hold fewer units, or see oms.atp_by_location() for where the stock is.';
		END IF;
	END IF;
	v_expires := pg_catalog.now() + ttl;

	-- Insert or replace: the reservation trigger takes (or gives back) the difference, and
	-- refuses with OM001 what the location cannot serve.
	INSERT INTO oms.reservations AS r (tenant_id, item_id, location_id, qty, cart, expires_at)
		VALUES (v_tenant, v_item, v_loc, hold.qty, hold.cart, v_expires)
		ON CONFLICT (tenant_id, cart, item_id) WHERE cart IS NOT NULL
		DO UPDATE SET location_id = EXCLUDED.location_id, qty = EXCLUDED.qty, expires_at = EXCLUDED.expires_at;

	RETURN QUERY SELECT l.code, hold.qty, v_expires FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_loc;
END
$$;
COMMENT ON FUNCTION oms.hold(text, text, int, text, interval) IS 'Holds qty of a SKU for a cart until now() + ttl (replacing the cart''s earlier hold of that SKU); returns where, how many and until when';

CREATE FUNCTION oms.release_hold(cart text, sku text DEFAULT NULL) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_n			int := 0;
	r			record;
BEGIN
	IF release_hold.sku IS NOT NULL THEN
		v_item := oms._item_id(v_tenant, release_hold.sku);
	END IF;
	-- In (item, location) order, the order in which every transaction locks stock rows.
	FOR r IN SELECT h.id FROM oms.reservations h
			  WHERE h.tenant_id = v_tenant AND h.cart = release_hold.cart
			    AND (v_item IS NULL OR h.item_id = v_item)
			  ORDER BY h.item_id, h.location_id
	LOOP
		DELETE FROM oms.reservations h WHERE h.tenant_id = v_tenant AND h.id = r.id;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.release_hold(text, text) IS 'Releases a cart''s holds (all, or of one SKU) and returns how many; their stock returns to ATP';
