-- make bench: the invariants after the runs, one line "name count" each; every count must be 0.

-- reserved = sum of reservations, 0 <= reserved <= on_hand, in every tenant
SELECT 'stock_invariant_problems', count(*) FROM oms.check_stock_invariants_all();

-- every allocated line has its reservation, at its location, of its open quantity (also when
-- released and not yet shipped: the reservation is consumed when the goods leave)
SELECT 'allocated_lines_without_their_reservation', count(*)
  FROM oms.order_lines l
 WHERE l.state::text IN ('allocated', 'released', 'picked', 'packed', 'ready_for_pickup', 'partially_shipped')
   AND NOT EXISTS (SELECT FROM oms.reservations r
					WHERE r.tenant_id = l.tenant_id AND r.order_id = l.order_id AND r.line_no = l.line_no
					  AND r.location_id = l.location_id AND r.qty = l.qty - l.qty_cancelled - l.qty_shipped);

-- no reservation is left behind by a line that holds no stock any more (cancelled, shipped)
SELECT 'reservations_of_lines_not_allocated', count(*)
  FROM oms.reservations r
  JOIN oms.order_lines l ON l.tenant_id = r.tenant_id AND l.order_id = r.order_id AND l.line_no = r.line_no
 WHERE l.state::text NOT IN ('allocated', 'released', 'picked', 'packed', 'ready_for_pickup', 'partially_shipped');

-- an order's reservations are all of its lines' (none for a line twice)
SELECT 'lines_reserved_twice', count(*)
  FROM (SELECT 1 FROM oms.reservations r WHERE r.order_id IS NOT NULL
		 GROUP BY r.tenant_id, r.order_id, r.line_no HAVING count(*) > 1) d;

-- the baseline's own books: reserved = the quantity of its lines (but the delivered history's),
-- never above on_hand
SELECT 'baseline_stock_mismatches', count(*)
  FROM bench.b_stock s
  LEFT JOIN (SELECT ol.item_id, ol.location_id, sum(ol.qty) AS qty
			   FROM bench.b_order_lines ol JOIN bench.b_orders o ON o.id = ol.order_id
			  WHERE o.external_id NOT LIKE 'hist-%'
			  GROUP BY ol.item_id, ol.location_id) l ON l.item_id = s.item_id AND l.location_id = s.location_id
 WHERE s.reserved <> coalesce(l.qty, 0) OR s.reserved > s.on_hand;
