-- Reservations move stock.reserved (src/reservation.c): the reservation trigger is the only way
-- reserved changes, the check and the take are one UPDATE, and the stock guard refuses every
-- other change of reserved. Reservations honour safety stock: a reservation takes at most
-- on_hand - reserved - safety_stock units, what oms.atp() promises.

CREATE FUNCTION oms.reservation_trigger() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_reservation_trigger';
COMMENT ON FUNCTION oms.reservation_trigger() IS 'Trigger on oms.reservations: an insert takes qty from stock.reserved with the availability check in the same UPDATE (error OM001 when on_hand - reserved - safety_stock is short), a delete gives it back, an update moves the difference or the whole reservation';

CREATE TRIGGER reservations_move_stock
	AFTER INSERT OR UPDATE OR DELETE ON oms.reservations
	FOR EACH ROW EXECUTE FUNCTION oms.reservation_trigger();
COMMENT ON TRIGGER reservations_move_stock ON oms.reservations IS 'Keeps stock.reserved equal to the sum of the reservations, in the same transaction; refuses to oversell (OM001)';

CREATE FUNCTION oms.stock_guard() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_stock_guard';
COMMENT ON FUNCTION oms.stock_guard() IS 'Trigger on oms.stock: refuses (OM003) any change of reserved not made by the reservation trigger, a new row with reserved <> 0, and deleting or re-keying a row with reserved units';

CREATE TRIGGER stock_reserved_guard
	BEFORE INSERT OR UPDATE OR DELETE ON oms.stock
	FOR EACH ROW EXECUTE FUNCTION oms.stock_guard();
COMMENT ON TRIGGER stock_reserved_guard ON oms.stock IS 'reserved moves only through oms.reservations (error OM003 otherwise), so the counter cannot drift';

-- The invariant checks: one row per broken invariant, none when healthy.
CREATE FUNCTION oms.check_stock_invariants(tenant text)
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant_id int;
BEGIN
	SELECT t.id INTO v_tenant_id FROM oms.tenants t WHERE t.code = check_stock_invariants.tenant;
	IF v_tenant_id IS NULL THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(check_stock_invariants.tenant)
			USING ERRCODE = '22023',
			      HINT = 'Tenants are listed in oms.tenants.';
	END IF;
	RETURN QUERY
	WITH r AS (
		SELECT r.item_id, r.location_id, pg_catalog.sum(r.qty)::bigint AS qty
		  FROM oms.reservations r
		 WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NULL	-- pre-orders take supply (64_preorders.sql)
		 GROUP BY r.item_id, r.location_id
	), s AS (
		-- a hot SKU's stock row also counts the free units of its slots (56_stock_slots.sql)
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.hot,
			   (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
				 WHERE z.tenant_id = v_tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id)::bigint AS slot_free
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant_id
	)
	SELECT i.sku, l.code, s.on_hand, s.reserved, coalesce(r.qty, 0), p.problem
	  FROM s FULL JOIN r ON r.item_id = s.item_id AND r.location_id = s.location_id
	  JOIN oms.items i ON i.tenant_id = v_tenant_id AND i.id = coalesce(s.item_id, r.item_id)
	  JOIN oms.locations l ON l.tenant_id = v_tenant_id AND l.id = coalesce(s.location_id, r.location_id)
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN s.item_id IS NULL THEN 'reservations without a stock row' END),
		(CASE WHEN s.reserved <> coalesce(r.qty, 0) + s.slot_free THEN 'reserved differs from the sum of reservations' END),
		(CASE WHEN s.slot_free > 0 AND NOT s.hot THEN 'stock slots hold units of a SKU that is not hot' END),
		(CASE WHEN s.reserved > s.on_hand THEN 'reserved exceeds on_hand' END),
		(CASE WHEN s.reserved < 0 THEN 'reserved is negative' END)) AS p(problem)
	 WHERE p.problem IS NOT NULL
	UNION ALL
	-- Supply: promised equals the sum of its pre-order reservations, within [0, qty].
	SELECT i.sku, l.code, u.qty, u.promised, coalesce(x.qty, 0), p.problem
	  FROM oms.supply u
	  JOIN oms.items i ON i.tenant_id = u.tenant_id AND i.id = u.item_id
	  JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
	  LEFT JOIN (SELECT r.supply_id, pg_catalog.sum(r.qty)::bigint AS qty FROM oms.reservations r
				  WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NOT NULL GROUP BY r.supply_id) x
			 ON x.supply_id = u.id
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN u.promised <> coalesce(x.qty, 0) THEN format('promised of supply %s differs from the sum of its pre-orders', u.id) END),
		(CASE WHEN u.promised > u.qty OR u.promised < 0 THEN format('promised of supply %s outside 0 to qty', u.id) END)) AS p(problem)
	 WHERE u.tenant_id = v_tenant_id AND p.problem IS NOT NULL
	 ORDER BY 1, 2, 6;
END
$$;
COMMENT ON FUNCTION oms.check_stock_invariants(text) IS 'Stock rows of the given tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand, no reservation without a stock row), and supply whose promised differs from its pre-orders (on_hand: supply qty, reserved: promised); one row per problem; empty when healthy';

CREATE FUNCTION oms.check_stock_invariants()
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
AS $$
	SELECT * FROM oms.check_stock_invariants(pg_catalog.current_setting('oms.tenant'))
$$;
COMMENT ON FUNCTION oms.check_stock_invariants() IS 'Stock rows of the current tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand), one row per problem; empty when healthy';

CREATE FUNCTION oms.check_stock_invariants_all()
	RETURNS TABLE (tenant text, sku text, location text, on_hand bigint, reserved bigint,
				   reservations_sum bigint, problem text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
AS $$
	SELECT t.code, c.*
	  FROM oms.tenants t
	 CROSS JOIN LATERAL oms.check_stock_invariants(t.code) AS c
	 ORDER BY t.code, c.sku, c.location, c.problem
$$;
COMMENT ON FUNCTION oms.check_stock_invariants_all() IS 'The stock invariant problems of every tenant (for administrators and stress tests); empty when healthy';
REVOKE ALL ON FUNCTION oms.check_stock_invariants_all() FROM PUBLIC;
