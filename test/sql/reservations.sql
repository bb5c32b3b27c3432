-- The reservation trigger moves stock.reserved; the stock guard lets nothing else move it.
-- Tenant t_res. Reservations here are cart holds (cart + expires_at); order lines' reservations
-- go through the same trigger.
SELECT oms.create_tenant('t_res') > 0 AS created;
SET oms.tenant = 't_res';

CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Inserts the hold of a cart on a SKU at a location.
CREATE FUNCTION pg_temp.hold(p_cart text, p_sku text, p_loc text, p_qty int) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO oms.reservations (item_id, location_id, qty, cart, expires_at)
	SELECT i.id, l.id, p_qty, p_cart, now() + interval '15 minutes'
	  FROM oms.items i, oms.locations l
	 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = p_sku
	   AND l.tenant_id = oms.current_tenant_id() AND l.code = p_loc;
$$;

INSERT INTO oms.locations (code, kind, name, priority) VALUES
	('WH-A', 'warehouse', 'Warehouse A', 10),
	('WH-B', 'warehouse', 'Warehouse B', 20);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'Item one'), ('SKU-2', 'Item two');
INSERT INTO oms.stock (item_id, location_id, on_hand, safety_stock)
SELECT i.id, l.id, v.on_hand, v.safety_stock
  FROM (VALUES ('SKU-1', 'WH-A', 10, 2), ('SKU-1', 'WH-B', 3, 0), ('SKU-2', 'WH-A', 5, 0))
	   AS v(sku, loc, on_hand, safety_stock)
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = v.sku
  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.code = v.loc;

CREATE TEMP VIEW stock_now AS
SELECT i.sku, l.code AS location, s.on_hand, s.reserved, s.safety_stock,
	   s.on_hand - s.reserved - s.safety_stock AS free
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id()
 ORDER BY i.sku, l.code;

CREATE TEMP VIEW holds_now AS
SELECT r.cart, i.sku, l.code AS location, r.qty
  FROM oms.reservations r
  JOIN oms.items i ON i.tenant_id = r.tenant_id AND i.id = r.item_id
  JOIN oms.locations l ON l.tenant_id = r.tenant_id AND l.id = r.location_id
 WHERE r.tenant_id = oms.current_tenant_id()
 ORDER BY r.cart, i.sku;

SELECT * FROM stock_now;

-- INSERT takes: SKU-1 at WH-A, 3 then 5: reserved 3, then 8; free 10 - 8 - 2 = 0.
SELECT pg_temp.hold('cart-1', 'SKU-1', 'WH-A', 3);
SELECT * FROM stock_now WHERE sku = 'SKU-1' AND location = 'WH-A';
SELECT pg_temp.hold('cart-2', 'SKU-1', 'WH-A', 5);
SELECT * FROM stock_now WHERE sku = 'SKU-1' AND location = 'WH-A';

-- One more unit: 2 are physically there (10 - 8), but both are safety stock. OM001.
SELECT pg_temp.hold('cart-3', 'SKU-1', 'WH-A', 1);
SELECT pg_temp.error_of($$SELECT pg_temp.hold('cart-3', 'SKU-1', 'WH-A', 1)$$) AS error;
SELECT * FROM stock_now WHERE sku = 'SKU-1' AND location = 'WH-A';

-- No stock row (SKU-2 at WH-B): nothing available.
SELECT pg_temp.hold('cart-3', 'SKU-2', 'WH-B', 1);

-- UPDATE, decrease: cart-2 from 5 to 2 gives 3 back (reserved 5, free 3).
UPDATE oms.reservations SET qty = 2 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-2';
SELECT * FROM stock_now WHERE sku = 'SKU-1' AND location = 'WH-A';

-- UPDATE, increase: cart-1 from 3 to 6 takes 3 more (reserved 8, free 0) ...
UPDATE oms.reservations SET qty = 6 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';
SELECT * FROM stock_now WHERE sku = 'SKU-1' AND location = 'WH-A';
-- ... and one more is refused; the increase is checked like an insert.
UPDATE oms.reservations SET qty = 7 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';

-- UPDATE of neither qty nor place (a hold extended) leaves stock alone.
UPDATE oms.reservations SET expires_at = expires_at + interval '5 minutes'
 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';
SELECT * FROM stock_now;

-- UPDATE, move: cart-2's 2 units from WH-A to WH-B (WH-A reserved 6, WH-B reserved 2).
UPDATE oms.reservations
   SET location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-B')
 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-2';
SELECT * FROM stock_now;
SELECT * FROM holds_now;
-- Moving cart-1's 6 units to WH-B (3 on hand, 2 reserved) is refused; nothing moves.
UPDATE oms.reservations
   SET location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-B')
 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';
-- Move and resize at once: cart-2 back to WH-A as 1 unit (WH-B gives back 2, WH-A takes 1).
UPDATE oms.reservations
   SET location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-A'),
	   qty = 1
 WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-2';
SELECT * FROM stock_now;

-- DELETE gives back: cart-1's 6 (WH-A reserved 1).
DELETE FROM oms.reservations WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-1';
SELECT * FROM stock_now;

-- Several rows in one statement: each row is checked; SKU-2 at WH-A has 5, 3 + 3 is refused as a
-- whole (the first row's take is undone with the statement).
INSERT INTO oms.reservations (item_id, location_id, qty, cart, expires_at)
SELECT i.id, l.id, 3, c.cart, now() + interval '15 minutes'
  FROM oms.items i, oms.locations l, (VALUES ('cart-4'), ('cart-5')) AS c(cart)
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'SKU-2'
   AND l.tenant_id = oms.current_tenant_id() AND l.code = 'WH-A';
SELECT * FROM stock_now WHERE sku = 'SKU-2';

-- A rolled-back transaction leaves reserved as it was; a failed savepoint keeps what came before.
BEGIN;
SELECT pg_temp.hold('cart-4', 'SKU-2', 'WH-A', 4);
SELECT * FROM stock_now WHERE sku = 'SKU-2';
ROLLBACK;
SELECT * FROM stock_now WHERE sku = 'SKU-2';
BEGIN;
SELECT pg_temp.hold('cart-4', 'SKU-2', 'WH-A', 4);
SAVEPOINT more;
SELECT pg_temp.hold('cart-5', 'SKU-2', 'WH-A', 2);
ROLLBACK TO SAVEPOINT more;
SELECT pg_temp.hold('cart-5', 'SKU-2', 'WH-A', 1);
COMMIT;
SELECT * FROM stock_now WHERE sku = 'SKU-2';
SELECT * FROM holds_now;

-- The guard: reserved moves only through oms.reservations (OM003).
UPDATE oms.stock SET reserved = 0
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-1')
   AND location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-A');
UPDATE oms.stock SET reserved = reserved + 1
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-1')
   AND location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-B');
SELECT pg_temp.error_of($$UPDATE oms.stock SET reserved = reserved - 1 WHERE reserved > 0 AND tenant_id = oms.current_tenant_id() AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2')$$) AS update_reserved;
-- A stock row with reserved units can be neither deleted nor moved to another SKU or location;
-- a new one cannot start with reserved units.
DELETE FROM oms.stock
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2');
UPDATE oms.stock SET location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-B')
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2');
INSERT INTO oms.stock (item_id, location_id, on_hand, reserved)
SELECT i.id, l.id, 5, 1
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'SKU-2'
   AND l.tenant_id = oms.current_tenant_id() AND l.code = 'WH-B';
SELECT pg_temp.error_of($$DELETE FROM oms.stock WHERE reserved > 0 AND tenant_id = oms.current_tenant_id() AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2')$$) AS delete_reserved;
-- Rows with nothing reserved are free to go, and to come with reserved 0.
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, 5
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'SKU-2'
   AND l.tenant_id = oms.current_tenant_id() AND l.code = 'WH-B';
DELETE FROM oms.stock
 WHERE tenant_id = oms.current_tenant_id() AND reserved = 0
   AND location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-B');
SELECT * FROM stock_now;

-- on_hand may change freely (receipts, counts, safety stock) but never below reserved: that is
-- the CHECK constraint, the last line of defence (set_stock and adjust_stock say OM002 first).
UPDATE oms.stock SET on_hand = on_hand + 5, safety_stock = 1
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2');
SELECT * FROM stock_now WHERE sku = 'SKU-2';
SELECT pg_temp.error_of($$UPDATE oms.stock SET on_hand = 4 WHERE tenant_id = oms.current_tenant_id() AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-2')$$) AS below_reserved;
SELECT * FROM stock_now WHERE sku = 'SKU-2';

-- The trigger works on the row's tenant, whatever oms.tenant says (as the hold-expiry worker
-- does): deleting t_res's cart-5 hold from another tenant's session gives its unit back in t_res.
SET oms.tenant = 'default';
DELETE FROM oms.reservations
 WHERE tenant_id = (SELECT id FROM oms.tenants WHERE code = 't_res') AND cart = 'cart-5';
SET oms.tenant = 't_res';
SELECT * FROM stock_now WHERE sku = 'SKU-2';

-- Healthy: reserved is the sum of the reservations everywhere, within 0 and on_hand.
SELECT s.sku, s.location, s.reserved,
	   (SELECT coalesce(sum(h.qty), 0) FROM holds_now h WHERE h.sku = s.sku AND h.location = s.location) AS holds
  FROM stock_now s;
SELECT * FROM oms.check_stock_invariants();
SELECT * FROM oms.check_stock_invariants('t_res');
SELECT * FROM oms.check_stock_invariants_all() WHERE tenant = 't_res';

-- The check does find drift when there is some. With triggers off (session_replication_role =
-- replica, as a logical replica or a restore runs) the counter can be changed behind the
-- trigger's back: SKU-1 at WH-A one too many, SKU-2 at WH-A's hold deleted without giving back,
-- a hold at WH-B, whose stock row was deleted above. Rolled back.
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE oms.stock SET reserved = reserved + 1
 WHERE tenant_id = oms.current_tenant_id()
   AND item_id = (SELECT id FROM oms.items WHERE tenant_id = oms.current_tenant_id() AND sku = 'SKU-1');
DELETE FROM oms.reservations WHERE tenant_id = oms.current_tenant_id() AND cart = 'cart-4';
INSERT INTO oms.reservations (item_id, location_id, qty, cart, expires_at)
SELECT i.id, l.id, 1, 'cart-9', now() + interval '15 minutes'
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'SKU-1'
   AND l.tenant_id = oms.current_tenant_id() AND l.code = 'WH-B';
SELECT * FROM oms.check_stock_invariants();
ROLLBACK;
SELECT * FROM oms.check_stock_invariants();

SELECT pg_temp.error_of($$SELECT * FROM oms.check_stock_invariants('t_res_nobody')$$) AS unknown_tenant;

-- Clean up the holds: every unit comes back. Then leave no stock behind for the tests that
-- follow (the tenant stays).
DELETE FROM oms.reservations WHERE tenant_id = oms.current_tenant_id();
SELECT * FROM stock_now;
DELETE FROM oms.stock WHERE tenant_id = oms.current_tenant_id();
DELETE FROM oms.items WHERE tenant_id = oms.current_tenant_id();
DELETE FROM oms.locations WHERE tenant_id = oms.current_tenant_id();
RESET oms.tenant;
