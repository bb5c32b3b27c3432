-- set_stock and adjust_stock: on hand changes with a movement each, never below reserved.
SELECT oms.create_tenant('t_stock') > 0 AS created;
SET oms.tenant = 't_stock';
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1);
INSERT INTO oms.items (sku, name) VALUES ('SKU-A', 'Item A'), ('SKU-B', 'Item B');

-- A first count creates the stock row; later counts and adjustments move it.
SELECT oms.set_stock('SKU-A', 'WH-1', 10, 'initial count');
SELECT oms.adjust_stock('SKU-A', 'WH-1', 5, 'found in aisle 3');
SELECT oms.adjust_stock('SKU-A', 'WH-1', -3, 'damaged');
SELECT oms.set_stock('SKU-A', 'WH-1', 12, 'cycle count');
-- adjust_stock with no stock row yet creates it for a positive delta.
SELECT oms.adjust_stock('SKU-B', 'WH-1', 4, 'receipt without PO');
SELECT i.sku, s.on_hand, s.reserved, s.safety_stock
  FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
 WHERE s.tenant_id = oms.current_tenant_id()
 ORDER BY i.sku;
SELECT i.sku, m.kind, m.delta, m.on_hand_after, m.reason
  FROM oms.stock_movements m JOIN oms.items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id
 WHERE m.tenant_id = oms.current_tenant_id()
 ORDER BY m.id;

-- Reserved stock is protected: on hand never goes below it.
SELECT held_location, held_qty FROM oms.hold('cart-s1', 'SKU-A', 8, 'WH-1');
SELECT oms.set_stock('SKU-A', 'WH-1', 7, 'recount');
SELECT oms.adjust_stock('SKU-A', 'WH-1', -5, 'theft');
SELECT oms.adjust_stock('SKU-A', 'WH-1', -4, 'damaged');
SELECT oms.adjust_stock('SKU-B', 'WH-1', -5, 'more than there is');
SELECT on_hand, reserved FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id WHERE s.tenant_id = oms.current_tenant_id() AND i.sku = 'SKU-A';

-- Bad input: clear errors, nothing written.
SELECT oms.set_stock('NOPE', 'WH-1', 1, 'x');
SELECT oms.set_stock('SKU-A', 'NOPE', 1, 'x');
SELECT oms.set_stock('SKU-A', 'WH-1', -1, 'x');
SELECT oms.set_stock('SKU-A', 'WH-1', 1, '');
SELECT oms.adjust_stock('SKU-A', 'WH-1', 0, 'nothing');
SELECT oms.adjust_stock('SKU-A', 'WH-1', NULL, 'nothing');
SELECT oms.adjust_stock('SKU-A', 'WH-1', 9223372036854775807, 'overflow');
SELECT count(*) AS movements FROM oms.stock_movements WHERE tenant_id = oms.current_tenant_id();
SELECT oms.release_hold('cart-s1');
