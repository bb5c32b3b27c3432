-- Replenishment planning: for every SKU and location with a policy, the demand statistics, safety
-- stock, reorder point and inventory position, and what to buy or move.
--
-- Per SKU and location (H = the policy's history_days, the days before today):
--   mean d    = demand over the last H days / H (days without demand count as 0)
--   sigma s   = the standard deviation of those H daily values
--   P         = lead_time_days + review_period_days (the protection period)
--   safety stock SS = ceil(z(service_level) * sqrt(P * s^2 + d^2 * lead_time_sd^2))
--   forecast over the lead time F = d * P
--   reorder point ROP = ceil(F + SS)
--   position  = on_hand - reserved + on order (open supply) - backordered (lines waiting here,
--               and unassigned backorders of shipped orders at the preferred location that can ship)
--   reorder_point: when position < ROP (or = ROP > 0), order Q = order_qty (default ceil(d * lead
--                  time), at least 1) as many times as needed to bring position above ROP;
--                  the level it orders up to is S = ROP + Q
--   min_max:       when position <= min, order max - position; S = max
--   then the quantity is raised to the MOQ and rounded up to whole packs.
-- A SKU and location with an open purchase order line or transfer coming in is covered: no new
-- proposal until it is received or cancelled (so running twice creates nothing new).
-- Transfers: a short location whose policy allows rebalancing is first served from locations with
-- surplus, min(on_hand - reserved - backordered, position - S) above 0, largest surplus first, in
-- the order of the short locations' priority; what transfers cannot cover is bought.
--
-- JIT is off in these functions (SET jit = off): the planner's estimate for the correlated
-- per-pair subqueries is far above jit_above_cost even on a handful of rows, and compiling the
-- ~1,000 expressions of these queries took 6 s per call (measured with auto_explain: JIT
-- optimization 3.3 s + emission 2.7 s for a one-row plan that executes in 15 ms). The SET also
-- keeps the functions from being inlined into their callers' queries.
-- work_mem is 128MB in the candidates and proposals (SET work_mem): a plan over a million
-- SKU-locations sorts and hashes a few hundred MB, which would otherwise spill to disk in 4MB runs.
-- The demand of a SKU-location comes from oms.demand_stats (80_demand_history.sql): one row with the
-- sum and sum of squares over its window, instead of summing the window's days at every run.

-- Lines waiting for supply, found without reading every order line.
CREATE INDEX order_lines_waiting_idx ON oms.order_lines (tenant_id, item_id)
	WHERE state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state);

-- Set-based: every source is read once for the whole item range (demand statistics, supply,
-- waiting lines, open orders) and joined to the pairs; no per-pair subquery or function call.
-- This is what planning reads per SKU-location; oms._replenishment_candidates (src/planning.c)
-- computes the levels from it. The item range is written BETWEEN coalesce(from, min) AND
-- coalesce(to, max) so that a batch of the replenishment job reads its range through the indexes
-- (a "from IS NULL OR item_id >= from" is planned as a filter: every batch read every row), and
-- without nested loops (SET enable_nestloop = off: the planner cannot know how many rows a range
-- holds and would probe the statistics of a million SKU-locations one by one; hash and merge
-- joins read each source once).
-- (This, oms._replenishment_candidates and oms._replenishment_proposals set
-- citus.allow_nested_distributed_execution: on Citus they run on the tenant's node inside a query
-- of a shard, as part of a statement that names the tenant, and their queries, all of that one
-- tenant, run there too. A mere placeholder without Citus.)
CREATE FUNCTION oms._replenishment_base(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
										p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, order_qty bigint, service_level double precision,
				   lead_time_sd double precision, protection double precision, lead_time double precision,
				   history_days int, total double precision, sumsq double precision, exact boolean)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET jit = off
	SET enable_nestloop = off
AS $$
#variable_conflict use_column
BEGIN
	-- PL/pgSQL, not SQL: Citus cannot plan the parameters of an SQL function's statements.
	RETURN QUERY
	WITH extra AS (
		-- SKU-locations planned that are not a stock row at a location with a default policy: SKU
		-- overrides, and lines waiting at a location with a default policy.
		SELECT r.item_id, r.location_id FROM oms.replenishment_policies r
		 WHERE r.tenant_id = p_tenant AND r.item_id IS NOT NULL
		   AND r.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT l.item_id, l.location_id FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = l.location_id AND d.item_id IS NULL)
	), pairs AS NOT MATERIALIZED (
		-- Every SKU-location planned, once: the stock rows at locations with a default policy,
		-- and the others above.
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM oms.stock s
		 WHERE s.tenant_id = p_tenant
		   AND s.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = s.location_id AND d.item_id IS NULL)
		UNION ALL
		SELECT e.item_id, e.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM extra e
		  LEFT JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = e.item_id AND s.location_id = e.location_id
		 WHERE s.item_id IS NULL
			OR NOT EXISTS (SELECT FROM oms.replenishment_policies d
							WHERE d.tenant_id = p_tenant AND d.location_id = e.location_id AND d.item_id IS NULL)
	), unassigned AS (
		-- Backorders of shipped orders not yet at a location count at the preferred location that
		-- can ship and has a policy for the SKU.
		SELECT DISTINCT ON (u.item_id) u.item_id, c.location_id, u.qty
		  FROM (SELECT l.item_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
				  FROM oms.order_lines l
				  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
				 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
				   AND l.location_id IS NULL AND o.pickup_location_id IS NULL
				   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
				 GROUP BY l.item_id) u
		 CROSS JOIN LATERAL (
				SELECT p.location_id, loc.priority, loc.code
				  FROM pairs p
				  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active AND loc.can_ship
				 WHERE p.item_id = u.item_id) c
		 ORDER BY u.item_id, c.priority, c.code
	), waiting AS (
		SELECT l.item_id, l.location_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
		  FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY l.item_id, l.location_id
	), incoming AS (
		SELECT su.item_id, su.location_id, pg_catalog.sum(su.qty) AS qty
		  FROM oms.supply su
		 WHERE su.tenant_id = p_tenant
		   AND su.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY su.item_id, su.location_id
	), open_orders AS (
		SELECT pl.item_id, po.location_id
		  FROM oms.purchase_order_lines pl
		  JOIN oms.purchase_orders po ON po.tenant_id = pl.tenant_id AND po.id = pl.po_id
		 WHERE pl.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
		   AND pl.qty_received + pl.qty_cancelled < pl.qty
		   AND pl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT tl.item_id, t.to_location_id
		  FROM oms.transfer_order_lines tl
		  JOIN oms.transfer_orders t ON t.tenant_id = tl.tenant_id AND t.id = tl.transfer_id
		 WHERE tl.tenant_id = p_tenant AND t.state IN ('in_transit', 'partially_received')
		   AND tl.qty_received + tl.qty_cancelled < tl.qty
		   AND tl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	), delta AS (
		-- SKU-locations with demand not yet compacted inside their window: their statistics
		-- cannot be used.
		SELECT DISTINCT dl.item_id, dl.location_id
		  FROM oms.demand_deltas dl
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = dl.location_id AND s.item_id = dl.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = dl.location_id AND d.item_id IS NULL
		 WHERE dl.tenant_id = p_tenant AND dl.location_id IS NOT NULL
		   AND dl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND dl.day < p_today
		   AND dl.day >= p_today - coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int)
	), pol AS (
		-- The effective policy (as oms._effective_policy: the SKU's setting, else the location
		-- default's, else the built-in default), joined for all pairs at once.
		SELECT p.item_id, p.location_id, loc.priority, loc.code,
			   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method') AS method,
			   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric) AS service_level,
			   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric) AS lead_time_days,
			   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric) AS lead_time_sd,
			   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric) AS review_period_days,
			   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int) AS history_days,
			   coalesce(s.min_qty, d.min_qty) AS min_qty, coalesce(s.max_qty, d.max_qty) AS max_qty,
			   coalesce(s.order_qty, d.order_qty) AS order_qty,
			   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint) AS moq,
			   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint) AS pack_size,
			   coalesce(s.supplier_id, d.supplier_id) AS supplier_id, coalesce(s.unit_cost, d.unit_cost) AS unit_cost,
			   coalesce(s.overstock_days, d.overstock_days) AS overstock_days,
			   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean) AS update_safety_stock,
			   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean) AS rebalance,
			   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean) AS auto_send,
			   coalesce(p.on_hand, 0) AS on_hand, coalesce(p.reserved, 0) AS reserved,
			   coalesce(p.safety_stock, 0) AS current_ss
		  FROM pairs p
		  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		 WHERE s.id IS NOT NULL OR d.id IS NOT NULL
	)
	-- The demand: the statistics row when its window is this pair's; exact (summed from the history
	-- by oms._replenishment_candidates) when it is not, or when deltas are pending; none without a row.
	SELECT pol.item_id, pol.location_id, pol.priority, pol.code, pol.method, pol.supplier_id,
		   coalesce(pol.unit_cost, it.unit_cost),
		   pol.moq, pol.pack_size, pol.lead_time_days, pol.rebalance, pol.auto_send, pol.update_safety_stock,
		   pol.overstock_days, pol.min_qty, pol.max_qty, pol.on_hand, pol.reserved, pol.current_ss,
		   coalesce(inc.qty, 0)::bigint, (coalesce(w.qty, 0) + coalesce(u.qty, 0))::bigint, oo.item_id IS NOT NULL,
		   pol.order_qty, pol.service_level::double precision, pol.lead_time_sd::double precision,
		   (pol.lead_time_days + pol.review_period_days)::double precision, pol.lead_time_days::double precision,
		   pol.history_days,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.total ELSE 0 END::double precision,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.sumsq ELSE 0 END::double precision,
		   dl.item_id IS NOT NULL
			OR (ds.item_id IS NOT NULL AND NOT coalesce(ds.window_end = p_today AND ds.window_days = pol.history_days, false))
	  FROM pol
	  LEFT JOIN oms.demand_stats ds ON ds.tenant_id = p_tenant AND ds.item_id = pol.item_id AND ds.location_id = pol.location_id
		   AND ds.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	  LEFT JOIN incoming inc ON inc.item_id = pol.item_id AND inc.location_id = pol.location_id
	  LEFT JOIN waiting w ON w.item_id = pol.item_id AND w.location_id = pol.location_id
	  LEFT JOIN unassigned u ON u.item_id = pol.item_id AND u.location_id = pol.location_id
	  LEFT JOIN open_orders oo ON oo.item_id = pol.item_id AND oo.location_id = pol.location_id
	  LEFT JOIN delta dl ON dl.item_id = pol.item_id AND dl.location_id = pol.location_id
	  LEFT JOIN oms.items it ON it.tenant_id = p_tenant AND it.id = pol.item_id;
END
$$;
COMMENT ON FUNCTION oms._replenishment_base(int, date, int, int) IS 'Internal: what planning reads for every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, whether an open order covers it, and the sum and sum of squares of its daily demand over its history window from oms.demand_stats (exact: to be summed from the history instead)';

-- The levels, in C over the whole set (src/planning.c, formulas at the top of this file): demand
-- mean and deviation, safety stock, reorder point, inventory position, whether it must order, how
-- much, and its surplus; one row per row of oms._replenishment_base.
CREATE FUNCTION oms._replenishment_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											  p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, demand_mean double precision, demand_sd double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, inventory_position bigint,
				   order_up_to bigint, triggered boolean, need bigint, surplus bigint)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET work_mem = '128MB'
	AS 'MODULE_PATHNAME', 'oms_replenishment_candidates';
COMMENT ON FUNCTION oms._replenishment_candidates(int, date, int, int) IS 'Internal: every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, demand mean and deviation, safety stock, reorder point, inventory position, whether it must order, how much, and its surplus';

-- Proposals: transfers from surplus first, purchases for the rest (after MOQ and packs), and the
-- safety stock to write (kind safety_stock: proposed_qty is the new stock.safety_stock) where the
-- policy asks for it, so that a run computes the candidates once.
CREATE FUNCTION oms._replenishment_proposals(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											 p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, kind text, supplier_id int, from_location_id int, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_mean double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, auto_send boolean, reason text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET jit = off
	SET work_mem = '128MB'
AS $$
#variable_conflict use_column
BEGIN
	-- PL/pgSQL, not SQL: Citus cannot plan the parameters of an SQL function's statements.
	RETURN QUERY
	WITH c AS (
		-- Only what can make a proposal: a need, a surplus, a safety stock to write.
		SELECT * FROM oms._replenishment_candidates(p_tenant, p_today, p_item_from, p_item_to) c
		 WHERE c.need > 0 OR c.surplus > 0 OR (c.update_safety_stock AND c.safety_stock <> c.current_safety_stock)
	), short AS (
		SELECT c.item_id, c.location_id, c.need,
			   pg_catalog.sum(c.need) OVER w - c.need AS from_n, pg_catalog.sum(c.need) OVER w AS to_n
		  FROM c WHERE c.need > 0 AND c.rebalance
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.priority, c.location_code)
	), spare AS (
		SELECT c.item_id, c.location_id, c.surplus,
			   pg_catalog.sum(c.surplus) OVER w - c.surplus AS from_n, pg_catalog.sum(c.surplus) OVER w AS to_n
		  FROM c WHERE c.surplus > 0
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.surplus DESC, c.priority, c.location_code)
	), segments AS (
		-- Short locations take the units [from_n, to_n) of the item's need, surplus locations give
		-- [from_n, to_n) of its surplus; a transfer is where the two overlap. The ends of both cut
		-- [0, total) into segments, each inside one short and one surplus range: those that end
		-- first at or after it. Linear in the locations of an item (comparing every short location
		-- with every surplus one was quadratic: 17 million pairs for 10,000 SKUs x 100 locations).
		SELECT b.item_id,
			   b.p - coalesce(pg_catalog.lag(b.p) OVER (PARTITION BY b.item_id ORDER BY b.p), 0) AS len,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_short) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS short_end,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_spare) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS spare_end
		  FROM (SELECT e.item_id, e.p, pg_catalog.bool_or(e.is_short) AS is_short, pg_catalog.bool_or(NOT e.is_short) AS is_spare
				  FROM (SELECT sh.item_id, sh.to_n AS p, true AS is_short FROM short sh
						UNION ALL
						SELECT sp.item_id, sp.to_n, false FROM spare sp) e
				 GROUP BY e.item_id, e.p) b
	), moves AS (
		SELECT sh.item_id, sh.location_id, sp.location_id AS from_location_id, pg_catalog.sum(g.len)::bigint AS qty
		  FROM segments g
		  JOIN short sh ON sh.item_id = g.item_id AND sh.to_n = g.short_end
		  JOIN spare sp ON sp.item_id = g.item_id AND sp.to_n = g.spare_end
		 GROUP BY sh.item_id, sh.location_id, sp.location_id
	), moved AS (
		SELECT m.item_id, m.location_id, pg_catalog.sum(m.qty) AS qty FROM moves m GROUP BY m.item_id, m.location_id
	), buy AS (
		SELECT c.*, c.need - coalesce(mv.qty, 0)::bigint AS rest
		  FROM c LEFT JOIN moved mv ON mv.item_id = c.item_id AND mv.location_id = c.location_id
		 WHERE c.need > 0
	), rounded AS (
		SELECT b.*, (pg_catalog.ceil(GREATEST(b.rest, b.moq)::numeric / b.pack_size) * b.pack_size)::bigint AS qty
		  FROM buy b WHERE b.rest > 0
	)
	SELECT r.item_id, r.location_id, 'purchase', r.supplier_id, NULL::int, r.on_hand, r.reserved, r.on_order, r.backordered,
		   r.demand_mean, r.lead_time_demand, r.safety_stock, r.reorder_point, r.qty, r.unit_cost,
		   p_today + pg_catalog.ceil(r.lead_time_days)::int, r.auto_send,
		   pg_catalog.concat_ws('; ',
			   CASE WHEN r.method = 'min_max'
					THEN pg_catalog.format('position %s <= min %s: up to max %s', r.inventory_position, r.min_qty, r.max_qty)
					ELSE pg_catalog.format('position %s <= reorder point %s', r.inventory_position, r.reorder_point) END,
			   CASE WHEN r.rest < r.need THEN pg_catalog.format('%s of %s by transfer', r.need - r.rest, r.need) END,
			   CASE WHEN r.qty <> r.rest THEN pg_catalog.format('%s rounded up to %s (moq %s, pack %s)', r.rest, r.qty, r.moq, r.pack_size) END,
			   CASE WHEN r.supplier_id IS NULL THEN 'no supplier in the policy: nothing will be ordered' END)
	  FROM rounded r
	UNION ALL
	SELECT m.item_id, m.location_id, 'transfer', NULL::int, m.from_location_id, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, m.qty, c.unit_cost, p_today + 1, false,
		   pg_catalog.format('surplus at %s', fl.code)
	  FROM moves m
	  JOIN c ON c.item_id = m.item_id AND c.location_id = m.location_id
	  JOIN oms.locations fl ON fl.tenant_id = p_tenant AND fl.id = m.from_location_id
	UNION ALL
	SELECT c.item_id, c.location_id, 'safety_stock', NULL::int, NULL::int, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, c.safety_stock, NULL::numeric, NULL::date, false,
		   pg_catalog.format('safety stock %s (was %s)', c.safety_stock, c.current_safety_stock)
	  FROM c
	 WHERE c.update_safety_stock AND c.safety_stock <> c.current_safety_stock;
END
$$;
COMMENT ON FUNCTION oms._replenishment_proposals(int, date, int, int) IS 'Internal: what to transfer and what to buy for the SKUs in the given item id range, and the safety stock to write (kind safety_stock) where the policy asks for it';

CREATE FUNCTION oms.plan_replenishment(location text DEFAULT NULL)
	RETURNS TABLE (sku text, location text, kind text, supplier text, from_location text, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_per_day numeric,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, reason text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
	WITH t AS (
		SELECT oms.current_tenant_id() AS id
	), f AS (
		SELECT t.id AS tenant_id, CASE WHEN $1 IS NOT NULL THEN oms._location_id(t.id, $1) END AS location_id FROM t
	)
	SELECT i.sku, l.code, p.kind, s.code, fl.code, p.on_hand, p.reserved, p.on_order, p.backordered,
		   pg_catalog.round(p.demand_mean::numeric, 3), pg_catalog.round(p.lead_time_demand, 2),
		   p.safety_stock, p.reorder_point, p.proposed_qty, p.unit_cost, p.expected_date, p.reason
	  FROM f
	 CROSS JOIN LATERAL oms._replenishment_proposals(f.tenant_id, oms.today()) p
	  JOIN oms.items i ON i.tenant_id = f.tenant_id AND i.id = p.item_id
	  JOIN oms.locations l ON l.tenant_id = f.tenant_id AND l.id = p.location_id
	  LEFT JOIN oms.suppliers s ON s.tenant_id = f.tenant_id AND s.id = p.supplier_id
	  LEFT JOIN oms.locations fl ON fl.tenant_id = f.tenant_id AND fl.id = p.from_location_id
	 WHERE p.kind <> 'safety_stock' AND (f.location_id IS NULL OR p.location_id = f.location_id)
	 ORDER BY i.sku, l.code, p.kind DESC, fl.code
$$;
COMMENT ON FUNCTION oms.plan_replenishment(text) IS 'What replenishment would order now, writing nothing: per SKU and location (all, or the given one) the transfers from surplus and the purchases, with on hand, reserved, on order, backordered, daily demand, lead time demand, safety stock, reorder point, proposed quantity (after MOQ and pack size) and the reason';

-- A run that writes many lines while the statistics of oms.supply (or of the order tables the
-- lines reference) say it is nearly empty, as on a new installation, would have every
-- foreign-key check of those lines planned as a scan of the whole table, and the plan kept for
-- the session: a first run of 150,000 transfer lines took minutes per batch instead of seconds.
-- After its first 1,000 lines a run analyzes those tables if so (rows it inserted itself count).
CREATE FUNCTION oms._analyze_written(p_lines bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = 'oms.supply'::pg_catalog.regclass) < p_lines THEN
		ANALYZE oms.supply, oms.transfer_orders, oms.purchase_orders;
		RETURN true;
	END IF;
	RETURN false;
END
$$;
COMMENT ON FUNCTION oms._analyze_written(bigint) IS 'Internal: analyzes oms.supply, oms.transfer_orders and oms.purchase_orders when the statistics of oms.supply count fewer rows than a replenishment run has just written (so that the foreign-key checks of the next lines read the indexes)';

-- One run over the SKUs in an item id range: transfers, purchase orders (one per supplier and
-- location), and the safety stock of policies that write it. Returns what it created.
CREATE FUNCTION oms._run_replenishment(p_tenant int, p_today date, p_item_from int DEFAULT NULL, p_item_to int DEFAULT NULL)
	RETURNS TABLE (kind text, id bigint, supplier_id int, from_location_id int, location_id int, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	r			record;
	v_id		bigint;
	v_lines		bigint := 0;
	v_analyzed	boolean := false;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
			v_lines := v_lines + cardinality(r.items);
			IF NOT v_analyzed AND v_lines >= 1000 THEN
				v_analyzed := true;
				PERFORM oms._analyze_written(v_lines);
			END IF;
			kind := 'transfer'; id := v_id; supplier_id := NULL; from_location_id := r.from_location_id;
			location_id := r.location_id; lines := cardinality(r.items);
			units := (SELECT sum(q) FROM unnest(r.qtys) q);
			RETURN NEXT;
		EXCEPTION WHEN SQLSTATE 'OM002' THEN
			-- An order took the surplus since the plan was made: the next run buys instead.
			RAISE NOTICE 'transfer from location % to % skipped: %', r.from_location_id, r.location_id, SQLERRM;
		END;
	END LOOP;

	FOR r IN SELECT p.supplier_id, p.location_id, p.auto_send, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, array_agg(p.unit_cost ORDER BY p.item_id) AS costs,
					array_agg(p.expected_date ORDER BY p.item_id) AS dates
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'purchase' AND p.supplier_id IS NOT NULL
			  GROUP BY p.supplier_id, p.location_id, p.auto_send ORDER BY p.supplier_id, p.location_id, p.auto_send LOOP
		v_id := oms._new_purchase_order(p_tenant, r.supplier_id, r.location_id,
										CASE WHEN r.auto_send THEN 'sent' ELSE 'draft' END, 'replenishment',
										r.items, r.qtys, r.costs, r.dates);
		v_lines := v_lines + cardinality(r.items);
		IF NOT v_analyzed AND v_lines >= 1000 THEN
			v_analyzed := true;
			PERFORM oms._analyze_written(v_lines);
		END IF;
		kind := 'purchase_order'; id := v_id; supplier_id := r.supplier_id; from_location_id := NULL;
		location_id := r.location_id; lines := cardinality(r.items);
		units := (SELECT sum(q) FROM unnest(r.qtys) q);
		RETURN NEXT;
	END LOOP;

	FOR r IN SELECT p.item_id, p.location_id, p.proposed_qty AS safety_stock
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'safety_stock'
			  ORDER BY p.item_id, p.location_id LOOP
		INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, safety_stock)
			VALUES (p_tenant, r.item_id, r.location_id, r.safety_stock)
			ON CONFLICT (tenant_id, item_id, location_id)
			DO UPDATE SET safety_stock = EXCLUDED.safety_stock, updated_at = EXCLUDED.updated_at;
		kind := 'safety_stock'; id := NULL; supplier_id := NULL; from_location_id := NULL;
		location_id := r.location_id; lines := 1; units := r.safety_stock;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.oms_proposals;
END
$$;
COMMENT ON FUNCTION oms._run_replenishment(int, date, int, int) IS 'Internal: turns the proposals of an item id range into transfers and purchase orders, and writes the safety stock of policies that ask for it';

CREATE FUNCTION oms.run_replenishment()
	RETURNS TABLE (kind text, id bigint, supplier text, from_location text, location text, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('oms.replenishment'), v_tenant) THEN
		RAISE NOTICE 'replenishment of tenant "%" is already running in another session; this run does nothing',
			pg_catalog.current_setting('oms.tenant');
		RETURN;
	END IF;
	-- The demand statistics in today's windows (a no-op once they are).
	PERFORM oms.refresh_demand_stats();
	RETURN QUERY
	SELECT r.kind, r.id, s.code, f.code, l.code, r.lines, r.units
	  FROM oms._run_replenishment(v_tenant, oms.today()) r
	  LEFT JOIN oms.suppliers s ON s.tenant_id = v_tenant AND s.id = r.supplier_id
	  LEFT JOIN oms.locations f ON f.tenant_id = v_tenant AND f.id = r.from_location_id
	  JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = r.location_id;
END
$$;
COMMENT ON FUNCTION oms.run_replenishment() IS 'Turns the replenishment plan into transfers and purchase orders (draft, or sent when the policy says auto_send) with their incoming supply, and writes safety stock where the policy asks; a SKU and location with an open order is covered, so a second run creates nothing; a run while another is in progress does nothing and says so';
