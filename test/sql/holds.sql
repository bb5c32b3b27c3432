-- Cart holds: hold, replace, release, choose a location, errors.
SELECT oms.create_tenant('t_holds') > 0 AS created;
SET oms.tenant = 't_holds';
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'WH 1', 1), ('WH-2', 'warehouse', 'WH 2', 2);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One'), ('SKU-2', 'Two');
SELECT oms.set_stock('SKU-1', 'WH-1', 3, 'init'), oms.set_stock('SKU-1', 'WH-2', 10, 'init'), oms.set_stock('SKU-2', 'WH-2', 1, 'init');

-- The best location that can serve the hold in full.
SELECT held_location, held_qty, expires_at > now() + interval '14 minutes' AS about_15_min FROM oms.hold('cart-a', 'SKU-1', 2);
SELECT oms.atp('SKU-1', 'WH-1') AS wh1, oms.atp('SKU-1') AS network;
-- Holding again replaces the hold (here: more than WH-1 can serve, so it moves to WH-2).
SELECT held_location, held_qty FROM oms.hold('cart-a', 'SKU-1', 5);
SELECT oms.atp('SKU-1', 'WH-1') AS wh1, oms.atp('SKU-1', 'WH-2') AS wh2;
-- A named location, a custom time to live.
SELECT held_location, held_qty, expires_at < now() + interval '2 minutes' AS short FROM oms.hold('cart-b', 'SKU-1', 3, 'WH-1', '1 minute');
SELECT oms.atp('SKU-1', 'WH-1') AS wh1;
-- Another cart cannot take what is held.
SELECT * FROM oms.hold('cart-c', 'SKU-1', 1, 'WH-1');
SELECT * FROM oms.hold('cart-c', 'SKU-1', 6);
SELECT * FROM oms.hold('cart-c', 'SKU-2', 2);
-- qty 0 releases one SKU's hold; release_hold releases a cart.
SELECT * FROM oms.hold('cart-b', 'SKU-1', 0);
SELECT oms.atp('SKU-1', 'WH-1') AS wh1;
SELECT oms.release_hold('cart-a');
SELECT oms.release_hold('cart-a');
SELECT oms.atp('SKU-1') AS network;
SELECT count(*) AS holds FROM oms.reservations WHERE tenant_id = oms.current_tenant_id();
-- Bad input.
SELECT * FROM oms.hold(NULL, 'SKU-1', 1);
SELECT * FROM oms.hold('cart-d', 'NOPE', 1);
SELECT * FROM oms.hold('cart-d', 'SKU-1', -1);
SELECT * FROM oms.hold('cart-d', 'SKU-1', 1, 'NOWHERE');
SELECT * FROM oms.hold('cart-d', 'SKU-1', 1, NULL, '-5 minutes');
SELECT * FROM oms.hold('cart-d', 'SKU-1', 1, NULL, '31 days');
SELECT oms.release_hold('cart-d', 'NOPE');
SELECT * FROM oms.check_stock_invariants();
RESET oms.tenant;
