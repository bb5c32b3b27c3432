-- Payments: authorise, capture (explicit, or what has shipped), refund, void; the invariants are
-- CHECKs; every operation is in the ledger and writes an event; bad input and business rules fail
-- with their SQLSTATE, the value and a hint, leaving nothing behind.
SELECT oms.create_tenant('t_payments') > 0 AS created;
SET oms.tenant = 't_payments';
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(message, 'order \d+', 'order N', 'g');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR'), ('jp', 'web', 'Japan shop', 'JPY');
INSERT INTO oms.locations (code, kind, name) VALUES ('WH-1', 'warehouse', 'Warehouse 1');
INSERT INTO oms.items (sku, name) VALUES ('TEE', 'T-shirt'), ('CAP', 'Cap');
SELECT oms.set_stock('TEE', 'WH-1', 10, 'init'), oms.set_stock('CAP', 'WH-1', 10, 'init');

-- An order of 2 x 19.90 + 1 x 12.50 + shipping 4.90 = 57.20 EUR.
SELECT oms.place_order('{"channel": "web", "external_id": "P-1", "ship_to": {"country": "IT"}, "shipping_amount": 4.90,
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 19.90}, {"sku": "CAP", "qty": 1, "unit_price": 12.50}]}') AS o \gset
SELECT total FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = :o;
CREATE TEMP VIEW pay AS
SELECT p.reference, p.authorized, p.captured, p.refunded, p.voided
  FROM oms.payments p WHERE p.tenant_id = oms.current_tenant_id() ORDER BY p.id;
CREATE TEMP VIEW ledger AS
SELECT p.reference, x.kind, x.amount, x.reason
  FROM oms.payment_operations x JOIN oms.payments p ON p.tenant_id = x.tenant_id AND p.id = x.payment_id
 WHERE x.tenant_id = oms.current_tenant_id() ORDER BY x.id;
CREATE TEMP VIEW pay_events AS
SELECT e.type, e.payload - 'order_id' - 'customer' - 'channel' - 'order_ref' AS payload
  FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id() AND e.type <> 'order_received' ORDER BY e.id;

-- 1. Two authorisations (a split payment): 40 by card, 17.20 by gift card. The same reference
--    again returns the same payment (a retried call), and writes nothing.
SELECT oms.authorize_payment(:o, 40, 'psp-card-1') AS card \gset
SELECT oms.authorize_payment(:o, 17.20, 'psp-gift-1') AS gift \gset
SELECT oms.authorize_payment(:o, 40, 'psp-card-1') = :card AS same_payment;
SELECT * FROM pay;
SELECT * FROM oms.payment_totals(:o);

-- 2. More than the total, a reference reused for another amount, amounts of the wrong shape.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, 0.01, %L)', :o, 'psp-3'));
SELECT * FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, 41, %L)', :o, 'psp-card-1'));
SELECT * FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, 1.005, %L)', :o, 'psp-3'));
SELECT * FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, -5, %L)', :o, 'psp-3'));
SELECT * FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, 5, %L)', :o, ''));
SELECT * FROM pg_temp.err('SELECT oms.authorize_payment(-1, 5, ''psp-3'')');
\x off

-- 3. Capture: 50 is taken from the card first (40), then the gift card (10).
SELECT oms.capture_payment(:o, 50);
SELECT * FROM pay;
-- Capturing more than is left (7.20) is refused: OM006, nothing changes.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.capture_payment(%s, 7.30)', :o));
\x off
-- Capture with no amount takes what has shipped and is not captured yet: nothing has shipped,
-- so 0 (nothing to do). After 2 T-shirts ship (set by hand here; oms.ship does it for real),
-- shipped value 39.80 + shipping 4.90 = 44.70 is less than the 50 already captured: still 0.
SELECT oms.capture_payment(:o) AS captured_nothing_shipped;
UPDATE oms.order_lines SET state = 'released' WHERE tenant_id = oms.current_tenant_id() AND order_id = :o;
UPDATE oms.order_lines SET state = 'shipped', qty_shipped = qty WHERE tenant_id = oms.current_tenant_id() AND order_id = :o AND line_no = 1;
SELECT oms.capture_payment(:o) AS captured_first_shipment;
-- The cap ships too: 57.20 shipped, 50 captured: the remaining 7.20 is captured.
UPDATE oms.order_lines SET state = 'shipped', qty_shipped = qty WHERE tenant_id = oms.current_tenant_id() AND order_id = :o AND line_no = 2;
SELECT oms.capture_payment(:o) AS captured_rest, oms.capture_payment(:o) AS again;
SELECT * FROM oms.payment_totals(:o);

-- 4. Refund: 45 goes back, card first (40), then gift card (5); more than the remaining 12.20 is
--    refused (OM007); a reason is required.
SELECT oms.refund_payment(:o, 45, 'cap and one shirt returned');
SELECT * FROM pay;
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.refund_payment(%s, 12.21, %L)', :o, 'too much'));
SELECT * FROM pg_temp.err(format('SELECT oms.refund_payment(%s, 1, NULL)', :o));
\x off

-- 5. Void gives up what is authorised and not captured: a second order, authorised, cancelled by
--    the customer before anything ships; voiding twice voids nothing the second time.
SELECT oms.place_order('{"channel": "web", "external_id": "P-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 19.90}]}') AS o2 \gset
SELECT oms.authorize_payment(:o2, 19.90, 'psp-card-2') > 0 AS authorised;
SELECT oms.void_payment(:o2) AS voided, oms.void_payment(:o2) AS voided_again;
SELECT * FROM oms.payment_totals(:o2);
-- A cancelled order takes no new payment (55000).
SELECT oms.cancel_order(:o2, 'customer request');
SELECT state, message FROM pg_temp.err(format('SELECT oms.authorize_payment(%s, 1, %L)', :o2, 'psp-late'));

-- 6. Currencies without minor units: 1500 JPY is fine, 1500.5 is not.
SELECT oms.place_order('{"channel": "jp", "external_id": "J-1", "ship_to": {"country": "JP"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 1500}]}') AS o3 \gset
SELECT oms.authorize_payment(:o3, 1500, 'psp-jp') > 0 AS authorised;
SELECT state, message FROM pg_temp.err(format('SELECT oms.capture_payment(%s, 1500.5)', :o3));

-- 7. The ledger and the events (payloads without the order header, shown in events_outbox).
SELECT * FROM ledger;
SELECT * FROM pay_events;

-- 8. The CHECKs hold even against direct writes.
SELECT state, message FROM pg_temp.err(format('UPDATE oms.payments SET captured = authorized + 1 WHERE tenant_id = oms.current_tenant_id() AND order_id = %s', :o));
SELECT state, message FROM pg_temp.err(format('UPDATE oms.payments SET refunded = captured + 1 WHERE tenant_id = oms.current_tenant_id() AND order_id = %s', :o));
SELECT state, message FROM pg_temp.err(format('UPDATE oms.payments SET voided = -1 WHERE tenant_id = oms.current_tenant_id() AND order_id = %s', :o));
RESET oms.tenant;
