-- demo/walk/90_notifications.sql: last step of the walk, what the customer was told.

\echo
\echo '4.8 A notification service reads the outbox: LISTEN oms_events wakes it, oms.next_events()'
\echo '    gives the events in order, oms.ack_events() moves its position. Every step above wrote'
\echo '    its event in its own transaction. The messages Giulia got, as the mailer writes them:'
SELECT to_char(e.created_at, 'HH24:MI:SS') AS "at", e.type,
	   CASE e.type
		WHEN 'order_received' THEN format('Thank you, %s! We have your order %s: %s items, %s %s.',
				e.payload #>> '{customer,name}', e.payload ->> 'order_ref',
				(SELECT sum((l ->> 'qty')::int) FROM jsonb_array_elements(e.payload -> 'lines') l),
				e.payload ->> 'total', e.payload ->> 'currency')
		WHEN 'payment_authorized' THEN format('Your payment of %s %s is authorised.', e.payload ->> 'amount', e.payload ->> 'currency')
		WHEN 'order_released' THEN 'Your order is being prepared.'
		WHEN 'shipped' THEN format('On its way with %s: tracking %s (%s).', upper(e.payload ->> 'carrier'),
				e.payload ->> 'tracking', (SELECT string_agg((l ->> 'qty') || ' x ' || (l ->> 'name'), ', ')
											 FROM jsonb_array_elements(e.payload -> 'lines') l))
		WHEN 'payment_captured' THEN format('We charged %s %s.', e.payload ->> 'amount', e.payload ->> 'currency')
		WHEN 'tracking' THEN format('Package %s: %s.', e.payload ->> 'tracking', replace(e.payload ->> 'status', '_', ' '))
		WHEN 'delivered' THEN format('Delivered: package %s.', e.payload ->> 'tracking')
		WHEN 'return_created' THEN format('Return %s accepted: send back %s.', e.payload ->> 'rma',
				(SELECT string_agg((l ->> 'qty') || ' x ' || (l ->> 'name'), ', ') FROM jsonb_array_elements(e.payload -> 'lines') l))
		WHEN 'return_received' THEN format('We received your return %s.', e.payload ->> 'rma')
		WHEN 'refunded' THEN format('We refunded %s %s.', e.payload ->> 'amount', e.payload ->> 'currency')
		ELSE e.type END AS message
  FROM oms.next_events('demo-mailer', 10000) e
 WHERE e.order_id = demo.walk_order()
 ORDER BY e.id;
SELECT oms.ack_events('demo-mailer', (SELECT max(id) FROM oms.next_events('demo-mailer', 10000))) > 0 AS "mailer acknowledged";
