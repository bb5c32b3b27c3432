-- demo/walk/20_place_order.sql: step 2 of the walk, checkout with the cart.

\echo
\echo '4.3 She pays. The web shop sends the order with her cart id in one call, oms.place_order():'
\echo '    the holds become the order''s reservations (no double count), lines get their location.'
SELECT demo.place('walk', '{
	"channel": "web", "external_id": "AB-WEB-200001", "currency": "EUR",
	"cart": "cart-giulia-0042",
	"customer": {"ref": "C10042", "name": "Giulia Rossi", "email": "giulia.rossi@example.com", "phone": "+39 02 555 0142"},
	"ship_to": {"name": "Giulia Rossi", "line1": "Corso Buenos Aires 21", "city": "Milano", "postal_code": "20124", "country": "IT", "lat": 45.4781, "lon": 9.2108},
	"shipping_amount": 0,
	"lines": [{"sku": "SHIRT-BRERA-M", "qty": 2, "unit_price": 53.90},
			  {"sku": "CUSHION-MARA", "qty": 1, "unit_price": 32.90}]}') AS walk_id \gset
SELECT o.id AS "order", c.code AS channel, o.external_id, o.state, o.currency, o.subtotal,
	   o.shipping_amount AS shipping, o.total, o.ship_city AS "ships to"
  FROM oms.orders o JOIN oms.channels c ON (c.tenant_id, c.id) = (o.tenant_id, o.channel_id)
 WHERE o.id = demo.walk_order();
SELECT l.line_no AS line, i.sku, l.qty, l.unit_price, l.state, loc.code AS location,
	   r.qty AS reserved
  FROM oms.order_lines l
  JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
  LEFT JOIN oms.locations loc ON (loc.tenant_id, loc.id) = (l.tenant_id, l.location_id)
  LEFT JOIN oms.reservations r ON (r.tenant_id, r.order_id, r.line_no) = (l.tenant_id, l.order_id, l.line_no)
 WHERE l.order_id = demo.walk_order()
 ORDER BY l.line_no;
SELECT (SELECT count(*) FROM oms.reservations WHERE cart = 'cart-giulia-0042') AS "holds left in the cart",
	   oms.atp('SHIRT-BRERA-M') AS "shirt ATP", oms.atp('CUSHION-MARA') AS "cushion ATP";
\echo '    ATP did not move at checkout: the units were already taken by the hold.'
