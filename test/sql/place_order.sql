-- place_order: location choice, backorders, click & collect, carts, idempotency, multi-currency.
\set SHOW_CONTEXT never
SELECT oms.create_tenant('t_place') > 0 AS created;
SET oms.tenant = 't_place';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web', 'web', 'Web shop', 'EUR'), ('pos', 'pos', 'Stores', 'RON');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup, active) VALUES
	('WH-A', 'warehouse', 'Warehouse A', 1, true, false, true),
	('WH-B', 'warehouse', 'Warehouse B', 2, true, false, true),
	('WH-X', 'warehouse', 'Closed warehouse', 0, true, false, false),
	('STORE-1', 'store', 'Store 1', 5, false, true, true);
INSERT INTO oms.items (sku, name, backorderable) VALUES
	('SKU-1', 'Shirt', false), ('SKU-2', 'Lamp', false), ('SKU-BO', 'Sofa', true),
	('SKU-NB', 'Vase', false), ('SKU-ST', 'Scarf', false);
SELECT oms.set_stock('SKU-1', 'WH-A', 5, 'init'), oms.set_stock('SKU-1', 'WH-B', 10, 'init'),
	   oms.set_stock('SKU-1', 'WH-X', 50, 'init'), oms.set_stock('SKU-2', 'WH-B', 3, 'init'),
	   oms.set_stock('SKU-NB', 'WH-A', 1, 'init'), oms.set_stock('SKU-ST', 'STORE-1', 2, 'init');

CREATE TEMP VIEW lines AS
SELECT o.external_id, l.line_no, i.sku, l.qty, l.unit_price, l.state, loc.code AS location
  FROM oms.orders o
  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
  LEFT JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
 WHERE o.tenant_id = oms.current_tenant_id()
 ORDER BY o.id, l.line_no;
CREATE TEMP VIEW stock AS
SELECT i.sku, loc.code AS location, s.on_hand, s.reserved
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations loc ON loc.tenant_id = s.tenant_id AND loc.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id()
 ORDER BY i.sku, loc.code;

-- 1. Two lines: WH-B has both, so they ship in one package from there (inactive WH-X is skipped;
--    without carrier services or coordinates, packages and then location priority decide).
SELECT oms.place_order('{"channel": "web", "external_id": "W-1", "currency": "EUR",
	"customer": {"ref": "C1", "email": "anna@example.com", "name": "Anna Rossi"},
	"ship_to": {"name": "Anna Rossi", "line1": "Via Roma 1", "city": "Milano", "postal_code": "20121", "country": "it", "lat": 45.46, "lon": 9.19},
	"shipping_amount": 4.9,
	"lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 19.90}, {"sku": "SKU-2", "qty": 1, "unit_price": 35}]}') > 0 AS placed;
-- 2. WH-A has 3 left, not enough for 6: the whole line goes to WH-B.
SELECT oms.place_order('{"channel": "web", "external_id": "W-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 6, "unit_price": 19.90}]}') > 0 AS placed;
-- 3. A backorderable item without stock is backordered; the order is partially allocated.
SELECT oms.place_order('{"channel": "web", "external_id": "W-3", "ship_to": {"country": "RO"},
	"lines": [{"sku": "SKU-BO", "qty": 1, "unit_price": 899}, {"sku": "SKU-1", "qty": 1, "unit_price": 19.90}]}') > 0 AS placed;
-- 4. An item that is neither in stock nor backorderable fails the whole order, leaving nothing.
SELECT oms.place_order('{"channel": "web", "external_id": "W-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 19.90}, {"sku": "SKU-NB", "qty": 2, "unit_price": 10}]}');
-- 5. A duplicate submission returns the first order and changes nothing.
SELECT oms.place_order('{"channel": "web", "external_id": "W-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 99, "unit_price": 1}]}') = (SELECT id FROM oms.orders WHERE external_id = 'W-1') AS same_order;
-- 6. Click & collect reserves at the pickup store, in the channel's currency (RON).
SELECT oms.place_order('{"channel": "pos", "external_id": "P-1", "pickup": "STORE-1",
	"lines": [{"sku": "SKU-ST", "qty": 2, "unit_price": 49.99}]}') > 0 AS placed;
-- 7. Click & collect of an item the store lacks: a transfer from the best location (WH-A) to the store.
SELECT oms.place_order('{"channel": "pos", "external_id": "P-2", "pickup": "STORE-1",
	"lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 99}]}') > 0 AS placed;

SELECT external_id, state, currency, subtotal, shipping_amount, total, ship_country, ship_city,
	   customer_email, (SELECT code FROM oms.locations l WHERE l.tenant_id = o.tenant_id AND l.id = o.pickup_location_id) AS pickup
  FROM oms.orders o WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
SELECT * FROM lines;
SELECT * FROM stock;
SELECT o.external_id, r.line_no, i.sku, loc.code AS location, r.qty
  FROM oms.reservations r
  JOIN oms.orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
  JOIN oms.items i ON i.tenant_id = r.tenant_id AND i.id = r.item_id
  JOIN oms.locations loc ON loc.tenant_id = r.tenant_id AND loc.id = r.location_id
 WHERE r.tenant_id = oms.current_tenant_id()
 ORDER BY o.id, r.line_no;
SELECT o.external_id, h.line_no, h.from_state, h.to_state
  FROM oms.order_history h JOIN oms.orders o ON o.tenant_id = h.tenant_id AND o.id = h.order_id
 WHERE h.tenant_id = oms.current_tenant_id()
 ORDER BY h.id;

-- 8. A cart's hold becomes the order's reservation: nothing is released and taken again.
SELECT held_location, held_qty FROM oms.hold('cart-1', 'SKU-2', 2);
SELECT oms.atp('SKU-2') AS atp_sku2_held;
SELECT oms.place_order('{"channel": "web", "external_id": "W-5", "cart": "cart-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-2", "qty": 2, "unit_price": 35}]}') > 0 AS placed;
SELECT count(*) AS holds_left FROM oms.reservations WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';
SELECT * FROM lines WHERE external_id = 'W-5';
SELECT * FROM stock WHERE sku = 'SKU-2';
-- 9. A cart's hold for a SKU the order does not take is released; a smaller line gives back the rest.
SELECT held_location, held_qty FROM oms.hold('cart-2', 'SKU-1', 2, 'WH-B');
SELECT held_location, held_qty FROM oms.hold('cart-2', 'SKU-NB', 1);
SELECT oms.place_order('{"channel": "web", "external_id": "W-6", "cart": "cart-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 19.90}]}') > 0 AS placed;
SELECT count(*) AS holds_left FROM oms.reservations WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-2';
SELECT * FROM lines WHERE external_id = 'W-6';
SELECT * FROM stock WHERE sku IN ('SKU-1', 'SKU-NB');
SELECT * FROM oms.check_stock_invariants();

-- Another tenant sees none of this.
SELECT oms.create_tenant('t_place_other') > 0 AS created;
SET oms.tenant = 't_place_other';
SELECT count(*) AS orders_seen FROM oms.orders WHERE tenant_id = oms.current_tenant_id();
SELECT oms.place_order('{"channel": "web", "external_id": "W-1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1}]}');
RESET oms.tenant;
