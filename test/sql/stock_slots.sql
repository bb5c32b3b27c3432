-- Hot SKUs (oms.set_hot): stock slots. ATP, routing and holds count the slots' free units; orders
-- take from the slots, refill them from the stock row, sell out exactly; a cancel gives the unit
-- back to the stock row; the invariants hold throughout (reserved = reservations + free slot
-- units); set_hot(false) puts every free unit back.
\set SHOW_CONTEXT never
-- The reservation trigger's statements as generic plans from the first call, as after five calls
-- in a long session (a join form of the slot choice once updated every slot under a generic plan).
SET plan_cache_mode = force_generic_plan;
SELECT oms.create_tenant('t_slots') > 0 AS created;
SET oms.tenant = 't_slots';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES ('web', 'web', 'Web shop', 'EUR', false);
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse', 1), ('WH-2', 'warehouse', 'Second', 2);
INSERT INTO oms.items (sku, name) VALUES ('DROP', 'Limited sneaker'), ('TEE', 'T-shirt');
SELECT oms.set_stock('DROP', 'WH-1', 40, 'init'), oms.set_stock('DROP', 'WH-2', 2, 'init'),
	   oms.set_stock('TEE', 'WH-1', 5, 'init');
CREATE FUNCTION pg_temp.buy(n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM oms.place_order(format('{"channel": "web", "external_id": "D-%s", "ship_to": {"country": "IT"},
		"lines": [{"sku": "DROP", "qty": 1, "unit_price": 180}]}', n)::jsonb);
	RETURN 'served';
EXCEPTION WHEN SQLSTATE 'OM001' THEN
	RETURN 'OM001: ' || SQLERRM;
END
$$;
CREATE TEMP VIEW slots AS
SELECT l.code, s.on_hand, s.reserved, s.hot,
	   (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r
		 WHERE r.tenant_id = s.tenant_id AND r.item_id = s.item_id AND r.location_id = s.location_id) AS reservations,
	   (SELECT count(*) FROM oms.stock_slots z
		 WHERE z.tenant_id = s.tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id) AS slots,
	   (SELECT coalesce(sum(z.free), 0) FROM oms.stock_slots z
		 WHERE z.tenant_id = s.tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id) AS slot_free,
	   oms.atp('DROP', l.code) AS atp
  FROM oms.stock s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
 WHERE s.tenant_id = oms.current_tenant_id() AND i.sku = 'DROP'
 ORDER BY l.code;

-- 1. Declared hot: 4 empty slots per stock row; nothing moves yet, ATP unchanged.
SELECT oms.set_hot('DROP', true, 4) AS stock_rows;
SELECT * FROM slots;
SELECT oms.atp('DROP') AS atp_network;

-- 2. Three orders (one backend: one slot): the first refills its slot from WH-1 with a batch of
--    40 / (2 x 4) = 5 units and takes 1, the next two take from the slot: reserved 8 = 3 orders + 5
--    slot units; 2 units are left in the slot, and ATP (37) counts them.
SELECT pg_temp.buy(n) FROM generate_series(1, 3) n;
SELECT code, on_hand, reserved, reservations, slot_free, atp FROM slots;
SELECT oms.atp('DROP') AS atp_network;
SELECT * FROM oms.check_stock_invariants();

-- 3. Sell out: 42 units in all (40 at WH-1, then 2 at WH-2); the 43rd buyer is refused (OM001).
SELECT pg_temp.buy(n) AS result, count(*) FROM generate_series(4, 43) n GROUP BY 1 ORDER BY 1;
SELECT code, on_hand, reservations, atp FROM slots;
SELECT * FROM oms.check_stock_invariants();

-- 4. A cancel gives its unit back to the stock row; the next buyer gets it through a refill.
SELECT oms.cancel_order(o.id, 'changed mind') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'D-2';
SELECT code, atp FROM slots;
SELECT pg_temp.buy(14), pg_temp.buy(15);
SELECT code, on_hand, reservations, atp FROM slots;
SELECT * FROM oms.check_stock_invariants();

-- 5. A hold (a cart) takes from the slots too; cancelling the hold gives it back.
SELECT oms.cancel_order(o.id, 'changed mind') FROM oms.orders o
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id = 'D-3';
SELECT held_location, held_qty FROM oms.hold('cart-1', 'DROP', 1);
SELECT code, reservations, atp FROM slots;
SELECT oms.release_hold('cart-1', 'DROP') AS released;
SELECT code, reservations, atp FROM slots;
SELECT * FROM oms.check_stock_invariants();

-- 5b. Stock changes during the sale: 80 more units arrive, two buyers come (the refill puts
--     80 / 8 = 10 units in a slot: 8 left there, reserved 48 = 40 for orders + 8); a count then
--     says 45, less than 48: the slots give their units back to the stock row first, and the
--     count goes through (ATP 5). 4 damaged units leave 41; 2 more would go below the orders'
--     40 units: refused (OM002).
SELECT oms.adjust_stock('DROP', 'WH-1', 80, 'late delivery');
SELECT pg_temp.buy(n) AS result, count(*) FROM generate_series(50, 51) n GROUP BY 1;
SELECT code, on_hand, reserved, reservations, slot_free, atp FROM slots WHERE code = 'WH-1';
SELECT oms.set_stock('DROP', 'WH-1', 45, 'count');
SELECT code, on_hand, reserved, reservations, slot_free, atp FROM slots WHERE code = 'WH-1';
SELECT oms.adjust_stock('DROP', 'WH-1', -4, 'damaged');
SELECT oms.adjust_stock('DROP', 'WH-1', -2, 'damaged');
SELECT * FROM oms.check_stock_invariants();

-- 6. Not hot any more: the slots' free units go back to the stock rows, the slots go.
SELECT oms.set_hot('DROP', false) AS stock_rows;
SELECT * FROM slots;
SELECT * FROM oms.check_stock_invariants();

-- 7. Bad input: an unknown SKU, a NULL flag, too few or too many slots (22023).
SELECT oms.set_hot('NOPE', true);
SELECT oms.set_hot('DROP', NULL);
SELECT oms.set_hot('DROP', true, 1);
SELECT oms.set_hot('DROP', true, 65);
RESET oms.tenant;
