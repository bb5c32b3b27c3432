-- demo/walk/40_deliver_return.sql: step 4 of the walk, carrier scans, delivery, a return and its refund.

\echo
\echo '4.6 The carrier reports its scans (oms.tracking_update; the same scan twice changes nothing);'
\echo '    "delivered" delivers the package.'
SELECT s.tracking, oms.tracking_update(s.carrier, s.tracking, 'out_for_delivery', now() + interval '20 hours') AS scan,
	   oms.tracking_update(s.carrier, s.tracking, 'delivered', now() + interval '23 hours') AS "then"
  FROM oms.shipments s WHERE s.order_id = demo.walk_order() ORDER BY s.id;

\echo
\echo '4.7 One shirt is too small. Giulia asks for a return (oms.create_return, within the 30-day'
\echo '    window); the warehouse receives it as sellable (restock): on hand grows, the refund of'
\echo '    53.90 goes back through the payment (oms.receive_return).'
SELECT oms.receive_return(oms.create_return(demo.walk_order(), '[{"line_no": 1, "qty": 1}]', 'too small'),
						  '[{"line_no": 1, "qty": 1, "disposition": "restock"}]') AS refund;
SELECT o.state AS "order", t.captured, t.refunded
  FROM oms.orders o, oms.payment_totals(o.id) t WHERE o.id = demo.walk_order();
