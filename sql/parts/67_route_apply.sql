-- Applying a route inside the order's transaction (place_order, reject_line): reservations in
-- (item, location) order, then one order of capacity per location and day, each taken by one
-- statement that checks and takes, as the reservation trigger does for stock.
--
-- Lock order, the same in every oms transaction: stock rows in (item, location) order (the
-- reservation trigger), then capacity rows in location order. The capacity row of a busy location
-- is a hot spot (every order it ships takes it); it is locked last so that it is held for as short
-- a time as possible, and locations without a daily_capacity are not counted at all.

-- Kinds of route rows that reserve stock at their location.
CREATE FUNCTION oms._stock_kinds() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN ARRAY['ship', 'drop-ship', 'pickup', 'transfer'];
COMMENT ON FUNCTION oms._stock_kinds() IS 'Internal: the oms._route kinds that reserve stock at their location (ship, drop-ship, pickup, transfer)';

CREATE FUNCTION oms._reserve_routed(p_tenant int, p_order bigint, p_cart text, p_items int[],
									p_line int[], p_loc int[], p_qty int[], p_kind text[],
									p_supply bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	IF p_cart IS NULL THEN
		-- Sorted by (item, location): every transaction locks stock rows in this order.
		INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
			SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n]
			  FROM generate_subscripts(p_line, 1) n
			 WHERE p_kind[n] = ANY (oms._stock_kinds())
			 ORDER BY p_items[p_line[n]], p_loc[n];
		IF 'preorder' = ANY (p_kind) THEN
			PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
		END IF;
		RETURN;
	END IF;
	-- A cart's hold at a location chosen for its line becomes that line's reservation there (the
	-- trigger moves only the difference); the cart's other holds are released. All in stock-lock
	-- order.
	FOR r IN
		SELECT ops.line_no, ops.item_id, ops.location_id, ops.qty, ops.hold_id
		  FROM (SELECT p_line[n] AS line_no, p_items[p_line[n]] AS item_id, p_loc[n] AS location_id, p_qty[n] AS qty,
					   (SELECT h.id FROM oms.reservations h
						 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
						   AND h.item_id = p_items[p_line[n]] AND h.location_id = p_loc[n]) AS hold_id
				  FROM generate_subscripts(p_line, 1) n
				 WHERE p_kind[n] = ANY (oms._stock_kinds())
				UNION ALL
				SELECT NULL, h.item_id, h.location_id, 0, h.id
				  FROM oms.reservations h
				 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
				   AND NOT EXISTS (SELECT FROM generate_subscripts(p_line, 1) n
									WHERE p_kind[n] = ANY (oms._stock_kinds()) AND p_items[p_line[n]] = h.item_id
									  AND p_loc[n] = h.location_id)) ops
		 ORDER BY ops.item_id, ops.location_id, ops.line_no NULLS FIRST
	LOOP
		IF r.line_no IS NULL THEN
			DELETE FROM oms.reservations h WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
		ELSE
			UPDATE oms.reservations h
			   SET cart = NULL, expires_at = NULL, order_id = p_order, line_no = r.line_no, qty = r.qty
			 WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
			IF NOT FOUND THEN
				INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
					VALUES (p_tenant, r.item_id, r.location_id, r.qty, p_order, r.line_no);
			END IF;
		END IF;
	END LOOP;
	IF 'preorder' = ANY (p_kind) THEN
		PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._reserve_routed(int, bigint, text, int[], int[], int[], int[], text[], bigint[]) IS 'Internal: reserves the stock a route assigns to an order''s lines, in (item, location) order, converting the cart''s holds, then the supply of its pre-orders; OM001 from the reservation trigger when a location or supply lost the race';


CREATE FUNCTION oms._take_capacity(p_tenant int, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_used	int;
	v_cap	int;
BEGIN
	FOR r IN SELECT DISTINCT p_loc[n] AS location_id, p_day[n] AS day
			   FROM generate_subscripts(p_loc, 1) n
			  WHERE p_day[n] IS NOT NULL
			  ORDER BY 1, 2
	LOOP
		v_used := NULL;
		-- The capacity is read first (on Citus an upsert cannot hold a query of another table).
		SELECT l.daily_capacity INTO v_cap FROM oms.locations l
		 WHERE l.tenant_id = p_tenant AND l.id = r.location_id;
		IF v_cap > 0 THEN
			INSERT INTO oms.location_capacity_used AS u (tenant_id, location_id, day, used)
				VALUES (p_tenant, r.location_id, r.day, 1)
				ON CONFLICT (tenant_id, location_id, day) DO UPDATE SET used = u.used + 1
				 WHERE u.used < v_cap
				RETURNING u.used INTO v_used;
		END IF;
		IF v_used IS NULL THEN
			RAISE EXCEPTION 'location "%" has no capacity left for %',
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id), r.day
				USING ERRCODE = 'OM030',
				      DETAIL = format('Its daily_capacity is %s orders.',
									  (SELECT l.daily_capacity FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id)),
				      HINT = 'Route again: oms.route() skips locations whose capacity for the day is taken.';
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._take_capacity(int, int[], date[]) IS 'Internal: counts one order per (location, day) in oms.location_capacity_used, checking and taking in one statement; OM030 when the day''s capacity is gone';

-- An order counts once per location (the day its first package there starts handling), and
-- oms.order_capacity remembers where, so that:
--   * routing the same order again (a rejected line, a new address) does not count it twice at a
--     location it already counts at;
--   * an order that no longer uses a location (no reservation there, nothing shipped from there:
--     it was cancelled, rejected or re-routed) gives its count back, and the location can take
--     another order that day.
CREATE FUNCTION oms._take_order_capacity(p_tenant int, p_order bigint, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_loc	int[];
	v_day	date[];
BEGIN
	-- The first (lowest) day per location the order is not yet counted at, in location order.
	SELECT array_agg(x.location_id ORDER BY x.location_id, x.day), array_agg(x.day ORDER BY x.location_id, x.day)
	  INTO v_loc, v_day
	  FROM (SELECT DISTINCT ON (p_loc[n]) p_loc[n] AS location_id, p_day[n] AS day
			  FROM generate_subscripts(p_loc, 1) n
			 WHERE p_day[n] IS NOT NULL
			   AND NOT EXISTS (SELECT FROM oms.order_capacity c
								WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = p_loc[n])
			 ORDER BY p_loc[n], p_day[n]) x;
	IF v_loc IS NULL THEN
		RETURN;
	END IF;
	PERFORM oms._take_capacity(p_tenant, v_loc, v_day);
	INSERT INTO oms.order_capacity (tenant_id, order_id, location_id, day)
		SELECT p_tenant, p_order, v_loc[n], v_day[n] FROM generate_subscripts(v_loc, 1) n
		 WHERE EXISTS (SELECT FROM oms.locations l
						WHERE l.tenant_id = p_tenant AND l.id = v_loc[n] AND l.daily_capacity > 0);
END
$$;
COMMENT ON FUNCTION oms._take_order_capacity(int, bigint, int[], date[]) IS 'Internal: counts an order at the locations (and their days) a route sends it to, once per order and location (oms.order_capacity); OM030 when a day''s capacity is gone';

CREATE FUNCTION oms._release_order_capacity(p_tenant int, p_order bigint)
	RETURNS TABLE (location_id int, day date)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	FOR r IN SELECT c.location_id, c.day FROM oms.order_capacity c
			  WHERE c.tenant_id = p_tenant AND c.order_id = p_order
				AND NOT EXISTS (SELECT FROM oms.reservations x
								 WHERE x.tenant_id = p_tenant AND x.order_id = p_order
								   AND x.location_id = c.location_id)
				AND NOT EXISTS (SELECT FROM oms.shipments s
								 WHERE s.tenant_id = p_tenant AND s.order_id = p_order
								   AND s.location_id = c.location_id)
			  ORDER BY c.location_id, c.day
	LOOP
		UPDATE oms.location_capacity_used u SET used = u.used - 1
		 WHERE u.tenant_id = p_tenant AND u.location_id = r.location_id AND u.day = r.day AND u.used > 0;
		DELETE FROM oms.order_capacity c
		 WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = r.location_id;
		location_id := r.location_id;
		day := r.day;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._release_order_capacity(int, bigint) IS 'Internal: gives back the daily capacity an order counted at locations it no longer uses (no reservation there, nothing shipped from there); returns those (location, day)';
