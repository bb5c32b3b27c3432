-- Pre-orders reserve incoming supply; time-phased ATP counts the supply not yet promised by a date.
--
-- BOOK is not out yet: 10 arrive at WH-1 on 2025-03-20 (PO-1) and 5 on 2025-04-10 (PO-2); WH-2
-- has 3 in stock. No carrier services, no coordinates: a package arrives when handed over.
SELECT oms.create_tenant('t_preorder') > 0 AS created;
SET oms.tenant = 't_preorder';
\set SHOW_CONTEXT never
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
SET oms.now = '2025-03-03 10:00:00+00';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, handling_days) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 1, 1), ('WH-2', 'warehouse', 'Warehouse 2', 2, 0);
INSERT INTO oms.items (sku, name, preorderable) VALUES ('BOOK', 'Book', true), ('PEN', 'Pen', false);
SELECT oms.set_stock('BOOK', 'WH-2', 3, 'init');
INSERT INTO oms.supply (item_id, location_id, qty, expected_date, reference)
	SELECT i.id, l.id, v.qty, v.day::date, v.ref
	  FROM (VALUES (10, '2025-03-20', 'PO-1'), (5, '2025-04-10', 'PO-2')) v(qty, day, ref)
	  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = 'BOOK'
	  JOIN oms.locations l ON l.tenant_id = oms.current_tenant_id() AND l.code = 'WH-1';
CREATE TEMP VIEW supply_view AS
SELECT s.reference, s.expected_date, s.qty, s.promised FROM oms.supply s
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY s.expected_date;
CREATE TEMP VIEW atp_view AS
SELECT d::date AS on_date, oms.atp('BOOK', 'WH-1', d::date) AS wh1, oms.atp('BOOK', 'WH-2', d::date) AS wh2,
	   oms.atp('BOOK', NULL, d::date) AS network
  FROM unnest(ARRAY['2025-03-03', '2025-03-19', '2025-03-20', '2025-04-10']) d;

-- 1. Time-phased ATP: WH-2's 3 in stock from today; WH-1's supply from its dates (10, then 15).
SELECT * FROM atp_view;
SELECT oms.atp('BOOK') AS now_network, oms.atp('BOOK', 'WH-1') AS now_wh1;

-- 2. An order for 3 takes WH-2's stock; the next for 4 cannot be served from stock: it is
--    pre-ordered against PO-1, the earliest supply that covers it (2025-03-20 + 1 handling day),
--    and PO-1's promised moves to 4.
SELECT oms.place_order('{"channel": "web", "external_id": "P-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 3, "unit_price": 20}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "P-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 4, "unit_price": 20}]}') AS p2 \gset
SELECT o.external_id, o.state AS order_state, l.state, loc.code AS location, l.promised_date
  FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  LEFT JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
 WHERE o.tenant_id = oms.current_tenant_id() ORDER BY o.id;
SELECT r.line_no, loc.code, r.qty, s.reference AS supply
  FROM oms.reservations r JOIN oms.locations loc ON loc.tenant_id = r.tenant_id AND loc.id = r.location_id
  LEFT JOIN oms.supply s ON s.tenant_id = r.tenant_id AND s.id = r.supply_id
 WHERE r.tenant_id = oms.current_tenant_id() AND r.order_id = :p2;
SELECT * FROM supply_view;
-- ATP by date now: nothing in stock; PO-1 has 6 left to promise, PO-2 5.
SELECT * FROM atp_view;

-- 3. 8 more: PO-1's 6 do not cover them; PO-2 has 5: not enough either. BOOK is not
--    backorderable, so the order is refused.
SELECT oms.place_order('{"channel": "web", "external_id": "P-3", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 8, "unit_price": 20}]}');
-- 5 more: PO-1's 6 cover them (2025-03-20 + 1 day); PO-1's promised moves to 9.
SELECT oms.place_order('{"channel": "web", "external_id": "P-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 5, "unit_price": 20}]}') AS p4 \gset
SELECT l.state, l.promised_date FROM oms.order_lines l WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = :p4;
SELECT * FROM supply_view;

-- 4. The guard: promised moves only through pre-order reservations; promised supply cannot be
--    deleted or moved, nor cut below what is promised; a cart cannot hold supply. (Supply ids
--    depend on what ran before: shown as N.)
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_detail text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
	RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM || CASE WHEN SQLSTATE = 'OM003' THEN ' (' || v_detail || ')' ELSE '' END,
						  'supply \d+', 'supply N', 'g');
END
$$;
SELECT pg_temp.try($$UPDATE oms.supply SET promised = 0 WHERE tenant_id = oms.current_tenant_id() AND reference = 'PO-1'$$);
SELECT pg_temp.try($$DELETE FROM oms.supply WHERE tenant_id = oms.current_tenant_id() AND reference = 'PO-1'$$);
SELECT pg_temp.try($$UPDATE oms.supply SET location_id = (SELECT id FROM oms.locations WHERE tenant_id = oms.current_tenant_id() AND code = 'WH-2')
					  WHERE tenant_id = oms.current_tenant_id() AND reference = 'PO-1'$$);
SELECT pg_temp.try($$UPDATE oms.supply SET qty = 3 WHERE tenant_id = oms.current_tenant_id() AND reference = 'PO-1'$$);
SELECT pg_temp.try($$INSERT INTO oms.supply (item_id, location_id, qty, expected_date, promised)
	SELECT i.id, l.id, 1, '2025-05-01', 1 FROM oms.items i, oms.locations l
	 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'BOOK' AND l.tenant_id = i.tenant_id AND l.code = 'WH-1'$$);
SELECT pg_temp.try($$INSERT INTO oms.reservations (item_id, location_id, qty, cart, expires_at, supply_id)
	SELECT s.item_id, s.location_id, 1, 'cart-1', now() + interval '1 hour', s.id FROM oms.supply s
	 WHERE s.tenant_id = oms.current_tenant_id() AND s.reference = 'PO-2'$$);
-- A supply that changes after the pre-order: more on PO-1 is fine, the date may move.
UPDATE oms.supply SET qty = 12, expected_date = '2025-03-22' WHERE tenant_id = oms.current_tenant_id() AND reference = 'PO-1';
SELECT * FROM supply_view;

-- 5. The goods arrive: the receiving process moves the pre-order to stock (the trigger gives the
--    supply back and takes the stock); cancelling P-4 gives PO-2 back.
SELECT oms.adjust_stock('BOOK', 'WH-1', 4, 'receipt PO-1 (part)');
UPDATE oms.reservations SET supply_id = NULL WHERE tenant_id = oms.current_tenant_id() AND order_id = :p2;
SELECT oms.cancel_order(:p4, 'customer changed their mind');
SELECT * FROM supply_view;
SELECT l.code, s.on_hand, s.reserved FROM oms.stock s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY l.code;
SELECT * FROM oms.check_stock_invariants();

-- 6. Bad input.
SELECT oms.atp('NOPE', 'WH-1', '2025-03-20');
SELECT oms.atp('BOOK', 'NOWHERE', '2025-03-20');
SELECT oms.atp('BOOK', 'WH-1', NULL) IS NULL AS null_date;
RESET oms.tenant;
RESET oms.now;
RESET datestyle;
RESET timezone;
