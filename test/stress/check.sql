-- The invariants of oms, checked over every tenant after a stress run (test/stress/stress.pl) or a
-- crash (test/t/011_crash_during_load.pl). One row per invariant: name, number of violations, and
-- the first few violations as examples. Healthy means 0 everywhere.
SET search_path = oms, pg_catalog;

WITH
-- 0 <= reserved <= on_hand on every stock row (the CHECK is the last line of defence).
stock_bounds AS (
	SELECT format('tenant %s item %s location %s: on_hand %s reserved %s',
				  s.tenant_id, s.item_id, s.location_id, s.on_hand, s.reserved) AS v
	  FROM oms.stock s
	 WHERE s.reserved < 0 OR s.reserved > s.on_hand
),
-- reserved = sum of the live reservations (the extension's own check).
reserved_sum AS (
	SELECT format('%s %s@%s: %s', c.tenant, c.sku, c.location, c.problem) AS v
	  FROM oms.check_stock_invariants_all() c
),
line_res AS (
	SELECT r.tenant_id, r.order_id, r.line_no, sum(r.qty) AS qty,
		   count(DISTINCT r.location_id) AS locations, min(r.location_id) AS location_id
	  FROM oms.reservations r
	 WHERE r.order_id IS NOT NULL AND r.supply_id IS NULL	-- stock, not a pre-order's supply
	 GROUP BY 1, 2, 3
),
-- Every line that holds stock (allocated, and on through fulfilment until it has all left) has
-- its reservation: its open quantity (not cancelled, not shipped), at its location.
-- (A line routing split over several locations has its location_id NULL and reservations at those.)
allocated_reserved AS (
	SELECT format('order %s line %s (location %s): qty %s, reserved %s at %s location(s) (first %s)', l.order_id,
				  l.line_no, coalesce(l.location_id::text, 'NULL'), l.qty - l.qty_cancelled - l.qty_shipped,
				  coalesce(r.qty, 0), coalesce(r.locations, 0), coalesce(r.location_id::text, 'none')) AS v
	  FROM oms.order_lines l
	  LEFT JOIN line_res r USING (tenant_id, order_id, line_no)
	 WHERE l.state IN ('allocated', 'released', 'picked', 'packed', 'ready_for_pickup', 'partially_shipped')
	   AND (r.qty IS DISTINCT FROM (l.qty - l.qty_cancelled - l.qty_shipped)::numeric
			OR (r.locations = 1 AND l.location_id IS NOT NULL AND r.location_id <> l.location_id)
			OR (r.locations > 1 AND l.location_id IS NOT NULL))
),
-- No other line holds stock: not cancelled, backordered, not yet allocated, shipped or later.
unallocated_unreserved AS (
	SELECT format('order %s line %s is %s and holds %s units', l.order_id, l.line_no, l.state, r.qty) AS v
	  FROM oms.order_lines l
	  JOIN line_res r USING (tenant_id, order_id, line_no)
	 WHERE l.state NOT IN ('allocated', 'released', 'picked', 'packed', 'ready_for_pickup', 'partially_shipped')
),
-- (channel, external_id) identifies one order.
external_id_unique AS (
	SELECT format('tenant %s channel %s external_id %s: %s orders', o.tenant_id, o.channel_id,
				  o.external_id, count(*)) AS v
	  FROM oms.orders o
	 GROUP BY o.tenant_id, o.channel_id, o.external_id
	HAVING count(*) > 1
),
h AS (
	SELECT h.tenant_id, h.order_id, h.line_no, h.id, h.from_state, h.to_state,
		   lag(h.to_state) OVER w AS prev_to,
		   row_number() OVER w AS n,
		   lead(h.id) OVER w IS NULL AS is_last
	  FROM oms.order_history h
	WINDOW w AS (PARTITION BY h.tenant_id, h.order_id, h.line_no ORDER BY h.id)
),
-- The history of every order and line is a chain: it starts from nothing, each change starts
-- where the previous one ended, and it ends in the current state.
history_chain AS (
	SELECT format('order %s line %s: history row %s starts from %s, previous ended in %s',
				  h.order_id, coalesce(h.line_no::text, '-'), h.id, coalesce(h.from_state, 'nothing'),
				  coalesce(h.prev_to, 'nothing')) AS v
	  FROM h
	 WHERE (h.n = 1 AND h.from_state IS NOT NULL) OR (h.n > 1 AND h.from_state IS DISTINCT FROM h.prev_to)
	UNION ALL
	SELECT format('order %s is %s, its history ends in %s', o.id, o.state, coalesce(h.to_state, 'nothing'))
	  FROM oms.orders o
	  LEFT JOIN h ON h.tenant_id = o.tenant_id AND h.order_id = o.id AND h.line_no IS NULL AND h.is_last
	 WHERE h.to_state IS DISTINCT FROM o.state::text
	UNION ALL
	SELECT format('order %s line %s is %s, its history ends in %s', l.order_id, l.line_no, l.state,
				  coalesce(h.to_state, 'nothing'))
	  FROM oms.order_lines l
	  LEFT JOIN h ON h.tenant_id = l.tenant_id AND h.order_id = l.order_id AND h.line_no = l.line_no AND h.is_last
	 WHERE h.to_state IS DISTINCT FROM l.state::text
),
-- Every recorded change is a legal move of its state type.
history_legal AS (
	SELECT format('order %s line %s: %s -> %s (history row %s)', h.order_id, coalesce(h.line_no::text, '-'),
				  h.from_state, h.to_state, h.id) AS v
	  FROM h
	 WHERE h.from_state IS NOT NULL
	   AND NOT CASE WHEN h.line_no IS NULL
					THEN oms.is_legal(h.from_state::oms.order_state, h.to_state::oms.order_state)
					ELSE oms.is_legal(h.from_state::oms.line_state, h.to_state::oms.line_state) END
),
-- An order's state is the rollup of its lines' states (on_hold and closed are set by hand).
order_rollup AS (
	SELECT format('order %s is %s, its lines roll up to %s', o.id, o.state, oms.rollup(l.state)) AS v
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.state NOT IN ('on_hold', 'closed')
	 GROUP BY o.tenant_id, o.id, o.state
	HAVING oms.rollup(l.state) <> o.state
),
-- Every order has at least one line.
order_lines_present AS (
	SELECT format('order %s has no lines', o.id) AS v
	  FROM oms.orders o
	 WHERE NOT EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id)
),
-- The ledger explains on_hand: the movements of a stock row add up to it, and the last one ends there.
ledger AS (
	SELECT format('tenant %s item %s location %s: on_hand %s, movements add up to %s, last one ends at %s',
				  s.tenant_id, s.item_id, s.location_id, s.on_hand, m.total, m.last_after) AS v
	  FROM oms.stock s
	  LEFT JOIN LATERAL (
			SELECT sum(m.delta) AS total,
				   (array_agg(m.on_hand_after ORDER BY m.id DESC))[1] AS last_after
			  FROM oms.stock_movements m
			 WHERE m.tenant_id = s.tenant_id AND m.item_id = s.item_id AND m.location_id = s.location_id) m ON true
	 WHERE s.on_hand <> coalesce(m.total, 0) OR (m.last_after IS NOT NULL AND m.last_after <> s.on_hand)
),
-- Reservations of cancelled orders (lines are checked above; this catches a cancelled header too).
cancelled_orders_unreserved AS (
	SELECT format('cancelled order %s holds %s units', o.id, sum(r.qty)) AS v
	  FROM oms.orders o
	  JOIN oms.reservations r ON r.tenant_id = o.tenant_id AND r.order_id = o.id
	 WHERE o.state = 'cancelled'
	 GROUP BY o.id
),
checks (ord, name, v) AS (
	SELECT 1, 'stock_bounds', v FROM stock_bounds
	UNION ALL SELECT 2, 'reserved_equals_reservations', v FROM reserved_sum
	UNION ALL SELECT 3, 'allocated_lines_reserved', v FROM allocated_reserved
	UNION ALL SELECT 4, 'unallocated_lines_unreserved', v FROM unallocated_unreserved
	UNION ALL SELECT 5, 'cancelled_orders_unreserved', v FROM cancelled_orders_unreserved
	UNION ALL SELECT 6, 'external_id_unique', v FROM external_id_unique
	UNION ALL SELECT 7, 'history_chain', v FROM history_chain
	UNION ALL SELECT 8, 'history_legal', v FROM history_legal
	UNION ALL SELECT 9, 'order_rollup', v FROM order_rollup
	UNION ALL SELECT 10, 'order_has_lines', v FROM order_lines_present
	UNION ALL SELECT 11, 'ledger_explains_on_hand', v FROM ledger
),
names (ord, name) AS (
	VALUES (1, 'stock_bounds'), (2, 'reserved_equals_reservations'), (3, 'allocated_lines_reserved'),
		   (4, 'unallocated_lines_unreserved'), (5, 'cancelled_orders_unreserved'),
		   (6, 'external_id_unique'), (7, 'history_chain'), (8, 'history_legal'),
		   (9, 'order_rollup'), (10, 'order_has_lines'), (11, 'ledger_explains_on_hand')
)
SELECT n.name, count(c.v) AS violations,
	   coalesce(array_to_string(((array_agg(c.v) FILTER (WHERE c.v IS NOT NULL))[1:5]), '; '), '') AS examples
  FROM names n
  LEFT JOIN checks c ON c.ord = n.ord
 GROUP BY n.ord, n.name
 ORDER BY n.ord;
