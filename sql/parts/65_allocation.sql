-- Location choice for order lines and cart holds (the foundation's rule; the routing engine
-- replaces it): the preferred location when it can serve the line in full (a cart's hold, or the
-- pickup store), else the active location that can ship with the lowest priority number (then the
-- lowest code) whose ATP covers the line in full. A line no location can serve gets no row.

CREATE FUNCTION oms._choose_locations(
	p_tenant	int,
	p_items		int[],
	p_qtys		int[],
	p_prefer	int[],		-- per line: preferred location (a hold's), or NULL
	p_credit	bigint[],	-- per line: units already held at the preferred location
	p_only		int			-- a pickup store: choose only it, or nothing
) RETURNS TABLE (idx int, location_id int)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT DISTINCT ON (l.idx) l.idx::int, s.location_id
	  FROM unnest(p_items, p_qtys, p_prefer, p_credit) WITH ORDINALITY AS l(item_id, qty, prefer, credit, idx)
	  JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = l.item_id
	  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = s.location_id
	 WHERE loc.active
	   AND (CASE WHEN p_only IS NOT NULL THEN loc.id = p_only ELSE loc.can_ship END)
	   AND s.on_hand - s.reserved - s.safety_stock
	       + (CASE WHEN s.location_id = l.prefer THEN coalesce(l.credit, 0) ELSE 0 END)
	       + (CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
									 WHERE z.tenant_id = p_tenant AND z.item_id = s.item_id
									   AND z.location_id = s.location_id) ELSE 0 END) >= l.qty
	 ORDER BY l.idx, (s.location_id = l.prefer) IS TRUE DESC, loc.priority, loc.code;
END
$$;
COMMENT ON FUNCTION oms._choose_locations(int, int[], int[], int[], bigint[], int) IS 'Internal: per line, the location that serves it in full (preferred, else lowest priority number); no row when none can';
