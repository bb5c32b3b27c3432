-- Fulfilment: release (blocked by a missing authorisation, by a hold), pack in two packages, ship
-- (on_hand and reserved drop together, lines move by quantity), carrier scans (idempotent, late
-- ones kept but not applied), delivery; click & collect (stage, collect); bad input and business
-- rules. After each step: lines, stock, new history rows and new events.
SELECT oms.create_tenant('t_fulfil') > 0 AS created;
SET oms.tenant = 't_fulfil';
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(regexp_replace(message, 'order \d+', 'order N', 'g'), 'shipment \d+', 'shipment S', 'g');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, city, priority, can_ship, can_pickup, pickup_days) VALUES
	('WH-1', 'warehouse', 'Warehouse Milano', 'Milano', 1, true, false, 7),
	('STORE-RM', 'store', 'Store Roma', 'Roma', 5, false, true, 3);
INSERT INTO oms.items (sku, name) VALUES ('TEE', 'T-shirt'), ('CAP', 'Cap');
SELECT oms.set_stock('TEE', 'WH-1', 10, 'init'), oms.set_stock('CAP', 'WH-1', 10, 'init'),
	   oms.set_stock('CAP', 'STORE-RM', 2, 'init');

-- What to look at after each step. Order and shipment ids differ from run to run: masked.
CREATE TEMP VIEW lines AS
SELECT o.external_id AS ord, l.line_no, i.sku, l.state, l.qty, l.qty_cancelled AS cancelled, l.qty_shipped AS shipped,
	   l.qty_delivered AS delivered, loc.code AS location
  FROM oms.order_lines l
  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
  LEFT JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
 WHERE l.tenant_id = oms.current_tenant_id() ORDER BY o.id, l.line_no;
CREATE TEMP VIEW stock AS
SELECT i.sku, loc.code AS location, s.on_hand, s.reserved,
	   (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r
		 WHERE r.tenant_id = s.tenant_id AND r.item_id = s.item_id AND r.location_id = s.location_id) AS reservations
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations loc ON loc.tenant_id = s.tenant_id AND loc.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY 1, 2;
CREATE TEMP TABLE seen (what text PRIMARY KEY, id bigint);
INSERT INTO seen VALUES ('history', 0), ('events', 0), ('movements', 0);
CREATE FUNCTION pg_temp.new_history() RETURNS TABLE (ord text, line_no int, from_state text, to_state text, reason text)
	LANGUAGE sql AS $$
	WITH n AS (SELECT h.* FROM oms.order_history h
				WHERE h.tenant_id = oms.current_tenant_id() AND h.id > (SELECT s.id FROM seen s WHERE s.what = 'history')),
	u AS (UPDATE seen SET id = (SELECT coalesce(max(n.id), seen.id) FROM n) WHERE what = 'history')
	SELECT o.external_id, n.line_no, n.from_state, n.to_state,
		   regexp_replace(regexp_replace(n.reason, 'shipment \d+', 'shipment S', 'g'), 'order \d+', 'order N', 'g')
	  FROM n JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id ORDER BY n.id $$;
CREATE FUNCTION pg_temp.new_events() RETURNS TABLE (ord text, type text, payload jsonb)
	LANGUAGE sql AS $$
	WITH n AS (SELECT e.* FROM oms.events e
				WHERE e.tenant_id = oms.current_tenant_id() AND e.id > (SELECT s.id FROM seen s WHERE s.what = 'events')),
	u AS (UPDATE seen SET id = (SELECT coalesce(max(n.id), seen.id) FROM n) WHERE what = 'events')
	SELECT n.payload ->> 'order_ref', n.type,
		   n.payload - 'order_id' - 'order_ref' - 'channel' - 'customer' - 'shipment_id' - 'shipped_at' - 'placed_at'
	  FROM n ORDER BY n.id $$;
CREATE FUNCTION pg_temp.new_movements() RETURNS TABLE (sku text, location text, kind text, delta bigint, on_hand_after bigint, reason text, reference text)
	LANGUAGE sql AS $$
	WITH n AS (SELECT m.* FROM oms.stock_movements m
				WHERE m.tenant_id = oms.current_tenant_id() AND m.id > (SELECT s.id FROM seen s WHERE s.what = 'movements')),
	u AS (UPDATE seen SET id = (SELECT coalesce(max(n.id), seen.id) FROM n) WHERE what = 'movements')
	SELECT i.sku, l.code, n.kind, n.delta, n.on_hand_after, n.reason, regexp_replace(n.reference, 'shipment \d+', 'shipment S')
	  FROM n JOIN oms.items i ON i.tenant_id = n.tenant_id AND i.id = n.item_id
	  JOIN oms.locations l ON l.tenant_id = n.tenant_id AND l.id = n.location_id ORDER BY n.id $$;
SELECT count(*) AS init_movements FROM pg_temp.new_movements();

-- 1. An order of 3 T-shirts and 1 cap (3 x 20 + 10 + shipping 5 = 75 EUR), from WH-1.
SELECT oms.place_order('{"channel": "web", "external_id": "F-1", "shipping_amount": 5,
	"customer": {"ref": "C1", "email": "anna@example.com", "name": "Anna Rossi"},
	"ship_to": {"name": "Anna Rossi", "line1": "Via Roma 1", "city": "Milano", "postal_code": "20121", "country": "IT"},
	"lines": [{"sku": "TEE", "qty": 3, "unit_price": 20}, {"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o \gset
SELECT * FROM lines;
SELECT * FROM stock;
SELECT * FROM pg_temp.new_history();
SELECT ord, type FROM pg_temp.new_events();

-- 2. The web channel requires authorisation before release: refused (OM009) until authorised.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.release_order(%s)', :o));
\x off
SELECT oms.authorize_payment(:o, 75, 'psp-F-1') > 0 AS authorised;
-- A hold blocks release too (OM009), and packing; resolving it confirms the order.
SELECT oms.hold_order(:o, 'address_check', 'the street number looks wrong');
SELECT * FROM pg_temp.err(format('SELECT oms.release_order(%s)', :o));
SELECT oms.resolve_hold(:o, 'address_check');
SELECT * FROM pg_temp.new_history();
SELECT * FROM pg_temp.new_events();

-- 3. Release: both lines go to WH-1; releasing again is a no-op.
SELECT oms.release_order(:o), oms.release_order(:o) AS again;
SELECT * FROM lines;
SELECT * FROM pg_temp.new_history();
SELECT * FROM pg_temp.new_events();

-- 4. Package 1: 2 T-shirts. Packing 4 is more than released (OM004); packing at a location that
--    holds nothing of the order is refused (55000).
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 1, "qty": 4}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L)', :o, 'STORE-RM'));
\x off
SELECT oms.pack(:o, 'WH-1', '[{"line_no": 1, "qty": 2}]') AS s1 \gset
-- Package 2: the rest (1 T-shirt, the cap): every open unit is packed, so both lines are packed.
SELECT oms.pack(:o, 'WH-1') AS s2 \gset
SELECT * FROM lines;
SELECT * FROM pg_temp.new_history();
-- Nothing is left to pack.
SELECT state, message FROM pg_temp.err(format('SELECT oms.pack(%s, %L)', :o, 'WH-1'));

-- 5. Package 1 ships: 2 T-shirts leave WH-1: reserved 3 -> 1 and on_hand 10 -> 8 for TEE, in one
--    transaction, with a shipment movement; line 1 is partially shipped, and so is the order.
SELECT oms.ship(:s1, 'dhl.express', 'JD0001');
SELECT * FROM lines;
SELECT * FROM stock;
SELECT * FROM pg_temp.new_movements();
SELECT * FROM pg_temp.new_history();
SELECT * FROM pg_temp.new_events();
-- The same call again (a retry) changes nothing; another tracking number for it is refused.
SELECT oms.ship(:s1, 'dhl.express', 'JD0001');
SELECT state, message FROM pg_temp.err(format('SELECT oms.ship(%s, %L, %L)', :s1, 'dhl.express', 'JD0009'));
-- Package 2 cannot reuse package 1's tracking number.
SELECT state, message FROM pg_temp.err(format('SELECT oms.ship(%s, %L, %L)', :s2, 'dhl.express', 'JD0001'));

-- 6. Package 2 ships: everything has left; the order is shipped; capture what shipped (75).
SELECT oms.ship(:s2, 'ups.standard', '1Z999');
SELECT * FROM lines;
SELECT * FROM stock;
SELECT * FROM pg_temp.new_movements();
SELECT * FROM pg_temp.new_history();
SELECT * FROM pg_temp.new_events();
SELECT oms.capture_payment(:o) AS captured;

-- 7. Carrier scans of package 1: in transit, the same scan again (nothing changes), an older scan
--    arriving late (kept, state stays), out for delivery, delivered.
SELECT oms.tracking_update('dhl', 'JD0001', 'in_transit', now() + interval '1 hour', '{"facility": "Bologna hub"}') AS scan1,
	   oms.tracking_update('dhl', 'JD0001', 'in_transit', now() + interval '1 hour', '{"facility": "Bologna hub"}') AS same_scan;
SELECT oms.tracking_update('dhl', 'JD0001', 'in_transit', now() + interval '30 minutes') AS late_scan;
SELECT oms.tracking_update('dhl', 'JD0001', 'out_for_delivery', now() + interval '20 hours') AS scan3;
SELECT oms.tracking_update('dhl', 'JD0001', 'delivered', now() + interval '22 hours') AS scan4,
	   oms.tracking_update('dhl', 'JD0001', 'delivered', now() + interval '22 hours') AS same_again;
SELECT status, round(extract(epoch FROM occurred_at - (SELECT shipped_at FROM oms.shipments WHERE tenant_id = oms.current_tenant_id() AND id = :s1)) / 60) AS minutes_after_shipping, payload
  FROM oms.tracking_events WHERE tenant_id = oms.current_tenant_id() AND shipment_id = :s1 ORDER BY occurred_at;
SELECT * FROM lines;
SELECT * FROM pg_temp.new_history();
SELECT ord, type, payload - 'at' - 'delivered_at' AS payload FROM pg_temp.new_events();

-- 8. Package 2 is delivered by oms.deliver (a carrier without scans); the order is delivered.
SELECT oms.deliver(:s2, now() + interval '1 day'), oms.deliver(:s2) AS again;
SELECT * FROM lines;
SELECT * FROM pg_temp.new_history();
SELECT ord, type, payload - 'delivered_at' AS payload FROM pg_temp.new_events();
SELECT state, carrier, service, tracking, delivered_at IS NOT NULL AS delivered
  FROM oms.shipments WHERE tenant_id = oms.current_tenant_id() ORDER BY id;

-- 9. Click & collect at STORE-RM: staged (the customer is told until when the store keeps it:
--    3 days), then collected: the cap leaves the store, the line is delivered at once.
SELECT oms.place_order('{"channel": "web", "external_id": "F-2", "pickup": "STORE-RM",
	"customer": {"email": "bruno@example.com"}, "lines": [{"sku": "CAP", "qty": 2, "unit_price": 10}]}') AS p \gset
SELECT state, message FROM pg_temp.err(format('SELECT oms.ready_for_pickup(%s)', :p));
SELECT oms.authorize_payment(:p, 20, 'psp-F-2') > 0 AS authorised;
SELECT oms.release_order(:p);
SELECT oms.ready_for_pickup(:p), oms.ready_for_pickup(:p) AS again;
SELECT collect_by - ready_at AS kept_for FROM oms.pickups WHERE tenant_id = oms.current_tenant_id() AND order_id = :p;
SELECT oms.collect(:p), oms.collect(:p) AS again;
SELECT * FROM lines WHERE ord = 'F-2';
SELECT * FROM stock WHERE location = 'STORE-RM';
SELECT * FROM pg_temp.new_movements();
SELECT * FROM pg_temp.new_history();
SELECT ord, type, payload - 'collect_by' - 'delivered_at' AS payload FROM pg_temp.new_events();

-- 10. Bad input and wrong states: each with its SQLSTATE, the value and a hint; nothing written.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 1, "qty": 1, "sku": "TEE"}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 1, "qty": 1}, {"line_no": 1, "qty": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '{"line_no": 1}'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-9', NULL));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 7, "qty": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.pack(%s, %L, %L)', :o, 'WH-1', '[{"line_no": 1, "qty": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.ship(%s, %L, %L)', :s2, 'DHL express', 'X'));
SELECT * FROM pg_temp.err(format('SELECT oms.ship(%s, %L, %L)', :s2, 'dhl.express', ''));
SELECT * FROM pg_temp.err('SELECT oms.ship(-1, ''dhl.express'', ''X'')');
SELECT * FROM pg_temp.err('SELECT oms.tracking_update(''dhl'', ''NOPE'', ''in_transit'', now())');
SELECT * FROM pg_temp.err('SELECT oms.tracking_update(''dhl'', ''JD0001'', ''lost'', now())');
SELECT * FROM pg_temp.err('SELECT oms.tracking_update(''dhl'', ''JD0001'', ''in_transit'', NULL)');
SELECT * FROM pg_temp.err(format('SELECT oms.deliver(%s, %L)', :s2, '2999-01-01 00:00+00'));
SELECT * FROM pg_temp.err(format('SELECT oms.ready_for_pickup(%s)', :o));
SELECT * FROM pg_temp.err(format('SELECT oms.hold_order(%s, %L)', :o, 'fraud_review'));
SELECT * FROM pg_temp.err(format('SELECT oms.hold_order(%s, %L)', :p, 'Fraud Review'));
\x off
-- A packed shipment cannot be delivered; an order on hold cannot be shipped.
SELECT oms.place_order('{"channel": "web", "external_id": "F-3", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS o3 \gset
SELECT oms.authorize_payment(:o3, 20, 'psp-F-3') > 0 AS authorised, oms.release_order(:o3);
SELECT oms.pack(:o3, 'WH-1') AS s3 \gset
SELECT state, message FROM pg_temp.err(format('SELECT oms.deliver(%s)', :s3));
SELECT oms.hold_order(:o3, 'customer_request', 'wants to change the size');
SELECT state, message FROM pg_temp.err(format('SELECT oms.ship(%s, %L, %L)', :s3, 'dhl.express', 'JD0003'));
SELECT * FROM lines WHERE ord = 'F-3';
SELECT * FROM stock WHERE sku = 'TEE';
SELECT * FROM oms.check_stock_invariants();
RESET oms.tenant;
