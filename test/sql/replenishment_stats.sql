-- Planning reads per SKU-location statistics (oms.demand_stats: the sum and sum of squares of the
-- daily demand over its window) kept by compaction, and computes the levels in C
-- (oms._replenishment_candidates). This test proves that the figures are exactly those of the
-- planning before (the SQL below, which summed the history at every run and did the arithmetic
-- in SQL): on the same data, both give the same rows, column by column, with deltas not yet
-- compacted, after compaction, when today moves (by a day, by weeks, backwards), when a policy
-- changes its history window, after a direct import into the history and after a rebuild. It also
-- checks that every statistics row equals the sums of the history over its window.
SELECT oms.create_tenant('t_rstats') > 0 AS created;
SET oms.tenant = 't_rstats';
SET datestyle = 'ISO, YMD';
SET oms.today = '2024-06-01';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web', 'web', 'Web shop', 'EUR'), ('pos', 'pos', 'Stores', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 1, true, false),
	('WH-2', 'warehouse', 'Warehouse 2', 2, true, false),
	('ST-1', 'store', 'Store 1', 5, false, true);
INSERT INTO oms.items (sku, name, unit_cost, backorderable)
SELECT 'S' || k, 'Item ' || k, k, k % 2 = 0 FROM generate_series(1, 6) k;
INSERT INTO oms.suppliers (code, name) VALUES ('ACME', 'Acme Ltd');
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, (substr(i.sku, 2)::int * 7 + l.priority * 13) % 40
  FROM oms.items i JOIN oms.locations l ON l.tenant_id = i.tenant_id
 WHERE i.tenant_id = oms.current_tenant_id();

-- Policies with different windows: WH-1 90 days (the default), S2 there 30 days; WH-2 28 days,
-- min/max, a varying lead time; ST-1 14 days, a review period, a high service level.
SELECT oms.set_policy(NULL, 'WH-1', '{"supplier": "ACME", "lead_time_days": 5}') IS NOT NULL AS set;
SELECT oms.set_policy('S2', 'WH-1', '{"history_days": 30, "order_qty": 10, "moq": 25, "pack_size": 6}') IS NOT NULL AS set;
SELECT oms.set_policy(NULL, 'WH-2', '{"supplier": "ACME", "method": "min_max", "min": 5, "max": 40, "history_days": 28, "lead_time_days": 3, "lead_time_sd": 1.5}') IS NOT NULL AS set;
SELECT oms.set_policy(NULL, 'ST-1', '{"supplier": "ACME", "history_days": 14, "service_level": 0.99, "review_period_days": 3, "lead_time_days": 2.5}') IS NOT NULL AS set;

-- 150 days of demand up to today, as the order triggers write it (oms.demand_deltas): per SKU,
-- location, channel and day a quantity from a hash (about a third of the days have none), some of
-- it cancelled, some of it not yet at a location.
INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
SELECT i.tenant_id, i.id, CASE WHEN x.h % 17 = 0 THEN NULL ELSE l.id END, c.id, d.day, x.h % 9, (x.h % 9) / 4, 0, 1
  FROM oms.items i
  JOIN oms.locations l ON l.tenant_id = i.tenant_id
  JOIN oms.channels c ON c.tenant_id = i.tenant_id
 CROSS JOIN generate_series(date '2024-06-01' - 150, date '2024-06-01', '1 day') d(day)
 CROSS JOIN LATERAL (SELECT abs(hashtext(i.sku || l.code || c.code || d.day::text)) AS h) x
 WHERE i.tenant_id = oms.current_tenant_id() AND x.h % 3 <> 0 AND (c.code = 'web' OR l.code = 'ST-1');

-- The planning of before, verbatim (it read oms.demand_history and oms.demand_deltas at every run).
SET search_path = oms, pg_catalog;
CREATE FUNCTION pg_temp.old_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
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
CREATE FUNCTION pg_temp.old_proposals(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
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
		SELECT * FROM pg_temp.old_candidates(p_tenant, p_today, p_item_from, p_item_to)
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
RESET search_path;

-- Both plans on the same data: rows only one of them has (none expected), and how many rows;
-- the same for the proposals (transfers and purchases), over all items and over a batch.
CREATE TEMP VIEW compare AS
SELECT (SELECT count(*) FROM (SELECT * FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today())
							  EXCEPT ALL
							  SELECT * FROM pg_temp.old_candidates(oms.current_tenant_id(), oms.today())) n) AS only_new,
	   (SELECT count(*) FROM (SELECT * FROM pg_temp.old_candidates(oms.current_tenant_id(), oms.today())
							  EXCEPT ALL
							  SELECT * FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today())) o) AS only_old,
	   (SELECT count(*) FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today())) AS pairs,
	   (SELECT count(*) FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today()) c WHERE c.triggered) AS ordering,
	   (SELECT count(*) FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today()) c WHERE c.demand_sd > 0) AS varying,
	   (SELECT count(*) FROM (SELECT * FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today())
							  EXCEPT ALL
							  SELECT * FROM pg_temp.old_proposals(oms.current_tenant_id(), oms.today())) n) AS proposals_only_new,
	   (SELECT count(*) FROM (SELECT * FROM pg_temp.old_proposals(oms.current_tenant_id(), oms.today())
							  EXCEPT ALL
							  SELECT * FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today())) o) AS proposals_only_old,
	   (SELECT string_agg(p.kind || ' ' || p.n, ', ' ORDER BY p.kind)
		  FROM (SELECT kind, count(*) AS n FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today()) GROUP BY kind) p) AS proposals,
	   -- a batch of the job: the items S2 to S4 only
	   (SELECT count(*) FROM (SELECT min(id) + 1 AS lo, min(id) + 3 AS hi FROM oms.items WHERE tenant_id = oms.current_tenant_id()) b
		 CROSS JOIN LATERAL (SELECT * FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today(), b.lo, b.hi)
							 EXCEPT ALL
							 SELECT * FROM pg_temp.old_proposals(oms.current_tenant_id(), oms.today(), b.lo, b.hi)) n) AS batch_only_new,
	   (SELECT count(*) FROM (SELECT min(id) + 1 AS lo, min(id) + 3 AS hi FROM oms.items WHERE tenant_id = oms.current_tenant_id()) b
		 CROSS JOIN LATERAL (SELECT * FROM pg_temp.old_proposals(oms.current_tenant_id(), oms.today(), b.lo, b.hi)
							 EXCEPT ALL
							 SELECT * FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today(), b.lo, b.hi)) n) AS batch_only_old;
-- Every statistics row against the history of its window; pairs with history but no row.
CREATE TEMP VIEW stats_check AS
SELECT (SELECT count(*) FROM oms.demand_stats st
		 WHERE st.tenant_id = oms.current_tenant_id() AND st.window_end IS NOT NULL
		   AND (st.total::numeric, st.sumsq::numeric) IS DISTINCT FROM
			   (SELECT (coalesce(sum(y.q), 0), coalesce(sum(y.q * y.q), 0))
				  FROM (SELECT sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
						 WHERE h.tenant_id = st.tenant_id AND h.item_id = st.item_id AND h.location_id = st.location_id
						   AND h.day >= st.window_end - st.window_days AND h.day < st.window_end
						 GROUP BY h.day) y)) AS wrong_rows,
	   (SELECT count(DISTINCT (h.item_id, h.location_id)) FROM oms.demand_history h
		 WHERE h.tenant_id = oms.current_tenant_id() AND h.location_id IS NOT NULL
		   AND NOT EXISTS (SELECT FROM oms.demand_stats st WHERE st.tenant_id = h.tenant_id
							  AND st.item_id = h.item_id AND st.location_id = h.location_id)) AS missing_rows,
	   (SELECT count(*) FROM oms.demand_stats st WHERE st.tenant_id = oms.current_tenant_id()) AS stats_rows,
	   (SELECT count(*) FROM oms.demand_stats st WHERE st.tenant_id = oms.current_tenant_id() AND st.window_end IS NULL) AS stale_rows,
	   (SELECT count(*) FROM oms.demand_stats st WHERE st.tenant_id = oms.current_tenant_id()
		   AND st.window_end = oms.today() AND st.window_days = oms._history_days(st.tenant_id, st.item_id, st.location_id)) AS current_rows;

-- 1. Nothing compacted yet: every pair's demand is in the deltas.
SELECT * FROM compare;
-- 2. Compacted: the statistics carry it (every pair with demand has its row, in today's window).
SELECT oms.compact_demand_history() > 0 AS compacted;
SELECT * FROM stats_check;
SELECT * FROM compare;
-- The figures themselves, for a few pairs (S2 at WH-1 reads 30 days, at WH-2 28, at ST-1 14).
SELECT i.sku, l.code AS location, round(c.demand_mean::numeric, 4) AS mean, round(c.demand_sd::numeric, 4) AS sd,
	   c.lead_time_demand, c.safety_stock, c.reorder_point, c.inventory_position, c.triggered, c.need, c.surplus
  FROM oms._replenishment_candidates(oms.current_tenant_id(), oms.today()) c
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.id = c.item_id
  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.id = c.location_id
 WHERE i.sku IN ('S1', 'S2') ORDER BY i.sku, l.code;

-- 3. Orders placed yesterday and today through place_order, one cancelled: deltas again.
SELECT oms.place_order('{"channel": "web", "external_id": "RS-1", "placed_at": "2024-05-31T10:00:00Z",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "S1", "qty": 3, "unit_price": 10}, {"sku": "S3", "qty": 2, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "pos", "external_id": "RS-2", "placed_at": "2024-05-31T11:00:00Z",
	"pickup": "ST-1", "lines": [{"sku": "S1", "qty": 1, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "RS-3", "placed_at": "2024-05-20T09:00:00Z",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "S2", "qty": 4, "unit_price": 10}]}') > 0 AS placed;
SELECT oms.cancel_order((SELECT id FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND external_id = 'RS-3'), 'test') IS NOT NULL AS cancelled;
SELECT count(*) > 0 AS deltas FROM oms.demand_deltas WHERE tenant_id = oms.current_tenant_id();
SELECT * FROM compare;
SELECT oms.compact_demand_history() > 0 AS compacted;
SELECT * FROM stats_check;
SELECT * FROM compare;

-- 4. Today moves on by a day: the statistics are a day behind (planning sums the history
-- meanwhile), then refreshed: a day enters, a day leaves each window.
SET oms.today = '2024-06-02';
SELECT * FROM compare;
SELECT oms.refresh_demand_stats() AS moved;
SELECT * FROM stats_check;
SELECT * FROM compare;
-- By seven weeks (windows that no longer overlap the old ones), and back before the first day.
SET oms.today = '2024-07-20';
SELECT oms.refresh_demand_stats() AS moved;
SELECT * FROM stats_check;
SELECT * FROM compare;
SET oms.today = '2024-01-01';
SELECT oms.refresh_demand_stats() AS moved;
SELECT * FROM stats_check;
SELECT * FROM compare;
-- Compaction on a new day moves the windows itself.
SET oms.today = '2024-05-15';
SELECT oms.compact_demand_history() AS compacted;
SELECT * FROM stats_check;
SELECT * FROM compare;

-- 5. A policy reads another window: planning sums the history until the refresh.
SELECT oms.set_policy('S3', 'ST-1', '{"history_days": 7}') IS NOT NULL AS set;
SELECT * FROM compare;
SELECT oms.refresh_demand_stats() AS moved;
SELECT * FROM stats_check;
SELECT * FROM compare;

-- 6. History imported straight into the summary: the rows of those pairs turn stale (planning
-- sums their history) until the refresh recomputes them.
INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, lines)
SELECT i.tenant_id, i.id, l.id, c.id, date '2024-05-10', 11, 1
  FROM oms.items i JOIN oms.locations l ON l.tenant_id = i.tenant_id JOIN oms.channels c ON c.tenant_id = i.tenant_id
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku IN ('S4', 'S5') AND l.code = 'WH-1' AND c.code = 'pos';
UPDATE oms.demand_history h SET ordered = h.ordered + 2
 WHERE h.tenant_id = oms.current_tenant_id() AND h.day = '2024-05-12'
   AND h.item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'S6');
SELECT * FROM stats_check;
SELECT * FROM compare;
SELECT oms.refresh_demand_stats() AS moved;
SELECT * FROM stats_check;
SELECT * FROM compare;

-- 7. A rebuild from the order lines (only the orders above have lines) rebuilds the statistics.
SELECT oms.rebuild_demand_history() AS rows;
SELECT * FROM stats_check;
SELECT * FROM compare;

-- 8. The proposals over the statistics are those of a plan of the same data.
SELECT oms.compact_demand_history() >= 0 AS compacted;
SELECT count(*) > 0 AS proposals FROM oms.plan_replenishment();

-- 9. Transfers between many locations: five more stores below their minimum, and the two
-- warehouses with surplus, so that each SKU's needs and surpluses overlap in many pieces.
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup)
SELECT 'ST-' || n, 'store', 'Store ' || n, 5 + n, false, true FROM generate_series(2, 6) n;
SELECT count(oms.set_policy(NULL, 'ST-' || n, '{"supplier": "ACME", "method": "min_max", "min": 10, "max": 30}')) AS set
  FROM generate_series(2, 6) n;
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, (substr(i.sku, 2)::int * 3 + l.priority * 5) % 10
  FROM oms.items i JOIN oms.locations l ON l.tenant_id = i.tenant_id
 WHERE i.tenant_id = oms.current_tenant_id() AND l.code IN ('ST-2', 'ST-3', 'ST-4', 'ST-5', 'ST-6');
UPDATE oms.stock s SET on_hand = 40 + substr(i.sku, 2)::int * 9
  FROM oms.items i, oms.locations l
 WHERE s.tenant_id = oms.current_tenant_id() AND i.tenant_id = s.tenant_id AND i.id = s.item_id
   AND l.tenant_id = s.tenant_id AND l.id = s.location_id AND l.code IN ('WH-1', 'WH-2');
SELECT * FROM compare;
-- The transfers, SKU by SKU: from which location to which, how many.
SELECT i.sku, l.code AS location, f.code AS from_location, p.proposed_qty
  FROM oms._replenishment_proposals(oms.current_tenant_id(), oms.today()) p
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.id = p.item_id
  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.id = p.location_id
  JOIN oms.locations f ON f.tenant_id = oms.current_tenant_id() AND f.id = p.from_location_id
 WHERE p.kind = 'transfer' AND i.sku IN ('S1', 'S6')
 ORDER BY i.sku, l.code, f.code;
