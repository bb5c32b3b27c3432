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

-- Lines waiting for supply, found without reading every order line.
CREATE INDEX order_lines_waiting_idx ON oms.order_lines (tenant_id, item_id)
	WHERE state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state);

-- Set-based: every source is read once for the whole item range (demand history, supply, waiting
-- lines, open orders) and joined to the pairs; no per-pair subquery or function call.
CREATE FUNCTION oms._replenishment_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											  p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, demand_mean double precision, demand_sd double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, inventory_position bigint,
				   order_up_to bigint, triggered boolean, need bigint, surplus bigint)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
BEGIN ATOMIC
	WITH pairs AS (
		SELECT s.item_id, s.location_id FROM oms.stock s
		 WHERE s.tenant_id = p_tenant
		   AND (p_item_from IS NULL OR s.item_id >= p_item_from) AND (p_item_to IS NULL OR s.item_id <= p_item_to)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = s.location_id AND d.item_id IS NULL)
		UNION
		SELECT r.item_id, r.location_id FROM oms.replenishment_policies r
		 WHERE r.tenant_id = p_tenant AND r.item_id IS NOT NULL
		   AND (p_item_from IS NULL OR r.item_id >= p_item_from) AND (p_item_to IS NULL OR r.item_id <= p_item_to)
		UNION
		SELECT l.item_id, l.location_id FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = l.location_id AND d.item_id IS NULL)
	), pol AS (
		-- The effective policy (as oms._effective_policy: the SKU's setting, else the location
		-- default's, else the built-in default), joined for all pairs at once.
		SELECT p.item_id, p.location_id, loc.priority, loc.code, loc.can_ship,
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
			   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean) AS auto_send
		  FROM pairs p
		  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		 WHERE s.id IS NOT NULL OR d.id IS NOT NULL
	), unassigned AS (
		-- Backorders of shipped orders not yet at a location count at the preferred location that
		-- can ship and has a policy for the SKU.
		SELECT DISTINCT ON (u.item_id) u.item_id, pol.location_id, u.qty
		  FROM (SELECT l.item_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
				  FROM oms.order_lines l
				  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
				 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
				   AND l.location_id IS NULL AND o.pickup_location_id IS NULL
				   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
				 GROUP BY l.item_id) u
		  JOIN pol ON pol.item_id = u.item_id AND pol.can_ship
		 ORDER BY u.item_id, pol.priority, pol.code
	), waiting AS (
		SELECT l.item_id, l.location_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
		  FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
		 GROUP BY l.item_id, l.location_id
	), incoming AS (
		SELECT su.item_id, su.location_id, pg_catalog.sum(su.qty) AS qty
		  FROM oms.supply su
		 WHERE su.tenant_id = p_tenant
		   AND (p_item_from IS NULL OR su.item_id >= p_item_from) AND (p_item_to IS NULL OR su.item_id <= p_item_to)
		 GROUP BY su.item_id, su.location_id
	), open_orders AS (
		SELECT pl.item_id, po.location_id
		  FROM oms.purchase_order_lines pl
		  JOIN oms.purchase_orders po ON po.tenant_id = pl.tenant_id AND po.id = pl.po_id
		 WHERE pl.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
		   AND pl.qty_received + pl.qty_cancelled < pl.qty
		   AND (p_item_from IS NULL OR pl.item_id >= p_item_from) AND (p_item_to IS NULL OR pl.item_id <= p_item_to)
		UNION
		SELECT tl.item_id, t.to_location_id
		  FROM oms.transfer_order_lines tl
		  JOIN oms.transfer_orders t ON t.tenant_id = tl.tenant_id AND t.id = tl.transfer_id
		 WHERE tl.tenant_id = p_tenant AND t.state IN ('in_transit', 'partially_received')
		   AND tl.qty_received + tl.qty_cancelled < tl.qty
		   AND (p_item_from IS NULL OR tl.item_id >= p_item_from) AND (p_item_to IS NULL OR tl.item_id <= p_item_to)
	), hist AS (
		-- Demand per pair over its own history window, summing the rows as they are: exact when
		-- a pair has one row a day (one channel), which the min/max of the channel tells.
		SELECT pol.item_id, pol.location_id, pg_catalog.sum(h.ordered - h.cancelled) AS total,
			   pg_catalog.sum((h.ordered - h.cancelled) * (h.ordered - h.cancelled)) AS sumsq,
			   pg_catalog.min(h.channel_id) <> pg_catalog.max(h.channel_id) AS multi
		  FROM pol
		  JOIN oms.demand_history h ON h.tenant_id = p_tenant AND h.item_id = pol.item_id AND h.location_id = pol.location_id
		 WHERE h.day >= p_today - pol.history_days AND h.day < p_today
		 GROUP BY pol.item_id, pol.location_id
	), delta AS (
		SELECT d.item_id, d.location_id, d.day, d.ordered, d.cancelled
		  FROM pol
		  JOIN oms.demand_deltas d ON d.tenant_id = p_tenant AND d.item_id = pol.item_id AND d.location_id = pol.location_id
		 WHERE d.day >= p_today - pol.history_days AND d.day < p_today
	), exact AS (
		-- Pairs with several rows a day (several channels, or deltas not yet compacted): the
		-- day's demand first, then its square.
		SELECT x.item_id, x.location_id, pg_catalog.sum(x.q) AS total, pg_catalog.sum(x.q * x.q) AS sumsq
		  FROM (SELECT y.item_id, y.location_id, y.day, pg_catalog.sum(y.ordered - y.cancelled) AS q
				  FROM (SELECT h.item_id, h.location_id, h.day, h.ordered, h.cancelled
						  FROM (SELECT hs.item_id, hs.location_id FROM hist hs WHERE hs.multi
								UNION
								SELECT dl.item_id, dl.location_id FROM delta dl) e
						  JOIN pol ON pol.item_id = e.item_id AND pol.location_id = e.location_id
						  JOIN oms.demand_history h ON h.tenant_id = p_tenant AND h.item_id = e.item_id AND h.location_id = e.location_id
						 WHERE h.day >= p_today - pol.history_days AND h.day < p_today
						UNION ALL
						SELECT dl.item_id, dl.location_id, dl.day, dl.ordered, dl.cancelled FROM delta dl) y
				 GROUP BY y.item_id, y.location_id, y.day) x
		 GROUP BY x.item_id, x.location_id
	), base AS (
		SELECT pol.*,
			   coalesce(s.on_hand, 0) AS on_hand, coalesce(s.reserved, 0) AS reserved,
			   coalesce(s.safety_stock, 0) AS current_ss,
			   coalesce(inc.qty, 0)::bigint AS on_order,
			   (coalesce(w.qty, 0) + coalesce(u.qty, 0))::bigint AS backordered,
			   oo.item_id IS NOT NULL AS covered,
			   coalesce(ex.total, hs.total, 0)::double precision AS total,
			   coalesce(ex.sumsq, hs.sumsq, 0)::double precision AS sumsq
		  FROM pol
		  LEFT JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = pol.item_id AND s.location_id = pol.location_id
		  LEFT JOIN incoming inc ON inc.item_id = pol.item_id AND inc.location_id = pol.location_id
		  LEFT JOIN waiting w ON w.item_id = pol.item_id AND w.location_id = pol.location_id
		  LEFT JOIN unassigned u ON u.item_id = pol.item_id AND u.location_id = pol.location_id
		  LEFT JOIN open_orders oo ON oo.item_id = pol.item_id AND oo.location_id = pol.location_id
		  LEFT JOIN hist hs ON hs.item_id = pol.item_id AND hs.location_id = pol.location_id
		  LEFT JOIN exact ex ON ex.item_id = pol.item_id AND ex.location_id = pol.location_id
	), stats AS (
		SELECT b.*,
			   b.total / b.history_days AS mean,
			   pg_catalog.sqrt(GREATEST((b.sumsq - b.total * b.total / b.history_days) / (b.history_days - 1), 0)) AS sd,
			   b.lead_time_days + b.review_period_days AS protection,
			   b.on_hand - b.reserved + b.on_order - b.backordered AS inv_position
		  FROM base b
	), levels AS (
		SELECT st.*,
			   pg_catalog.ceil(pg_catalog.round(oms.safety_stock(st.service_level::double precision, st.sd,
						st.protection::double precision, st.mean, st.lead_time_sd::double precision)::numeric, 6))::bigint AS ss,
			   pg_catalog.round((st.mean * st.protection::double precision)::numeric, 6) AS ltd
		  FROM stats st
	), rop AS (
		SELECT lv.*,
			   pg_catalog.ceil(lv.ltd + lv.ss)::bigint AS rop,
			   coalesce(lv.order_qty, GREATEST(pg_catalog.ceil(pg_catalog.round((lv.mean * lv.lead_time_days::double precision)::numeric, 6)), 1))::bigint AS q
		  FROM levels lv
	), decision AS (
		SELECT r.*,
			   CASE WHEN r.method = 'min_max' THEN r.max_qty ELSE r.rop + r.q END AS s_level,
			   NOT r.covered AND CASE WHEN r.method = 'min_max' THEN r.inv_position <= r.min_qty
									  ELSE r.inv_position < r.rop OR (r.inv_position = r.rop AND r.rop > 0) END AS trig
		  FROM rop r
	)
	SELECT d.item_id, d.location_id, d.priority, d.code, d.method, d.supplier_id,
		   coalesce(d.unit_cost, it.unit_cost),
		   d.moq, d.pack_size, d.lead_time_days, d.rebalance, d.auto_send, d.update_safety_stock, d.overstock_days,
		   d.min_qty, d.max_qty, d.on_hand, d.reserved, d.current_ss, d.on_order, d.backordered, d.covered,
		   d.mean, d.sd, d.ltd, d.ss, d.rop, d.inv_position, d.s_level, d.trig,
		   CASE WHEN NOT d.trig THEN 0
				WHEN d.method = 'min_max' THEN d.max_qty - d.inv_position
				ELSE d.q * pg_catalog.ceil((d.rop - d.inv_position + 1)::numeric / d.q)::bigint END,
		   CASE WHEN d.trig THEN 0
				ELSE GREATEST(LEAST(d.on_hand - d.reserved - d.backordered, d.inv_position - d.s_level), 0) END
	  FROM decision d
	  LEFT JOIN oms.items it ON it.tenant_id = p_tenant AND it.id = d.item_id;
END;
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
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
BEGIN ATOMIC
	WITH c AS (
		SELECT * FROM oms._replenishment_candidates(p_tenant, p_today, p_item_from, p_item_to)
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
	), moves AS (
		SELECT sh.item_id, sh.location_id, sp.location_id AS from_location_id,
			   (LEAST(sh.to_n, sp.to_n) - GREATEST(sh.from_n, sp.from_n))::bigint AS qty
		  FROM short sh JOIN spare sp ON sp.item_id = sh.item_id
		 WHERE LEAST(sh.to_n, sp.to_n) > GREATEST(sh.from_n, sp.from_n)
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
END;
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
	r		record;
	v_id	bigint;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
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
	RETURN QUERY
	SELECT r.kind, r.id, s.code, f.code, l.code, r.lines, r.units
	  FROM oms._run_replenishment(v_tenant, oms.today()) r
	  LEFT JOIN oms.suppliers s ON s.tenant_id = v_tenant AND s.id = r.supplier_id
	  LEFT JOIN oms.locations f ON f.tenant_id = v_tenant AND f.id = r.from_location_id
	  JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = r.location_id;
END
$$;
COMMENT ON FUNCTION oms.run_replenishment() IS 'Turns the replenishment plan into transfers and purchase orders (draft, or sent when the policy says auto_send) with their incoming supply, and writes safety stock where the policy asks; a SKU and location with an open order is covered, so a second run creates nothing; a run while another is in progress does nothing and says so';
