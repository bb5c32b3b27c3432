-- demo/walk/30_pay_release_ship.sql: step 3 of the walk, payment, release, packing and shipping.

\echo
\echo '4.4 The payment provider authorises the total; the web channel releases an order only once it'
\echo '    is authorised (channels.requires_authorization). oms.release_order() sends the lines to'
\echo '    their locations:'
SELECT oms.authorize_payment(demo.walk_order(), o.total, 'psp_giulia_7F3K') AS payment, oms.release_order(o.id) AS "order"
  FROM oms.orders o WHERE o.id = demo.walk_order();

\echo
\echo '4.5 Each location packs what it holds of the order (oms.pack) and hands it to the carrier'
\echo '    (oms.ship): reservation and on hand drop together, with a "shipment" movement.'
SELECT format('SELECT oms.pack(%s, %L) AS "package packed at %s"', demo.walk_order(), l.code, l.code)
  FROM (SELECT DISTINCT loc.code FROM oms.order_lines ol
		  JOIN oms.locations loc ON (loc.tenant_id, loc.id) = (ol.tenant_id, ol.location_id)
		 WHERE ol.order_id = demo.walk_order() ORDER BY loc.code) l \gexec
SELECT format('SELECT %s AS package, %L AS tracking, oms.ship(%s, %L, %L) AS "order now"',
			  s.id, 'BRT' || lpad(s.id::text, 9, '0'), s.id, 'brt.standard', 'BRT' || lpad(s.id::text, 9, '0'))
  FROM oms.shipments s WHERE s.order_id = demo.walk_order() AND s.state = 'packed' ORDER BY s.id \gexec
SELECT l.line_no AS line, i.sku, l.qty, l.qty_shipped AS shipped, l.state,
	   (SELECT count(*) FROM oms.reservations r WHERE (r.tenant_id, r.order_id, r.line_no) = (l.tenant_id, l.order_id, l.line_no)) AS reservations
  FROM oms.order_lines l JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
 WHERE l.order_id = demo.walk_order() ORDER BY l.line_no;
SELECT oms.capture_payment(demo.walk_order()) AS "captured (what shipped)";
