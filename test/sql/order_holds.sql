-- Order holds and fraud rules: several holds with reason codes, the order on_hold until the last
-- is resolved and then back to the state its lines add up to; fraud rules applied at placement
-- put a matching order on hold fraud_review, the rules named in its history; channels that
-- release automatically do so at placement, on authorisation or when the last hold goes.
SELECT oms.create_tenant('t_order_holds') > 0 AS created;
SET oms.tenant = 't_order_holds';
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(message, 'order \d+', 'order N', 'g');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization, auto_release) VALUES
	('web', 'web', 'Web shop', 'EUR', true, true),
	('pos', 'pos', 'Store tills', 'EUR', false, true),
	('cc', 'call_centre', 'Call centre', 'EUR', true, false);
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH-1', 'warehouse', 'Warehouse 1', true);
INSERT INTO oms.items (sku, name) VALUES ('TEE', 'T-shirt'), ('TV', 'Television');
SELECT oms.set_stock('TEE', 'WH-1', 100, 'init'), oms.set_stock('TV', 'WH-1', 10, 'init');
CREATE TEMP VIEW orders AS
SELECT o.external_id AS ord, o.state,
	   (SELECT string_agg(h.reason || CASE WHEN h.resolved_at IS NULL THEN '' ELSE ' (resolved)' END, ', ' ORDER BY h.id)
		  FROM oms.order_holds h WHERE h.tenant_id = o.tenant_id AND h.order_id = o.id) AS holds
  FROM oms.orders o WHERE o.tenant_id = oms.current_tenant_id() ORDER BY o.id;
CREATE TEMP VIEW history AS
SELECT o.external_id AS ord, h.line_no, h.from_state, h.to_state, h.reason
  FROM oms.order_history h JOIN oms.orders o ON o.tenant_id = h.tenant_id AND o.id = h.order_id
 WHERE h.tenant_id = oms.current_tenant_id() ORDER BY h.id;
CREATE TEMP VIEW events AS
SELECT e.payload ->> 'order_ref' AS ord, e.type, e.payload - 'order_id' - 'order_ref' - 'channel' - 'customer' - 'lines'
	   - 'placed_at' - 'ship_to' - 'currency' - 'subtotal' - 'shipping_amount' - 'pickup' AS payload
  FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id() ORDER BY e.id;

-- 1. Two holds on one order; the order is on_hold until both are resolved, then allocated again
--    (the call centre does not release by itself); order_confirmed when the last one goes.
SELECT oms.place_order('{"channel": "cc", "external_id": "H-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS h1 \gset
SELECT oms.hold_order(:h1, 'payment_review', 'card declined once'),
	   oms.hold_order(:h1, 'customer_request', 'wait for the customer''s call'),
	   oms.hold_order(:h1, 'payment_review') AS same_reason_again;
SELECT * FROM orders;
SELECT reason, note, held_by IS NOT NULL AS by_whom FROM oms.order_holds WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
SELECT oms.resolve_hold(:h1, 'payment_review');
SELECT oms.resolve_hold(:h1, 'payment_review') AS resolved_again;
SELECT oms.resolve_hold(:h1, 'customer_request');
SELECT * FROM orders;
SELECT * FROM history WHERE ord = 'H-1';
SELECT * FROM events WHERE ord = 'H-1';
-- Resolving a hold the order never had: 22023 naming the open ones.
SELECT oms.hold_order(:h1, 'address_check');
SELECT * FROM pg_temp.err(format('SELECT oms.resolve_hold(%s, %L)', :h1, 'fraud_review'));
SELECT oms.resolve_hold(:h1, 'address_check');

-- 2. Fraud rules: an order total over 500 EUR, a ship-to country other than the billing country,
--    more than 2 orders of one customer within an hour; channel-specific or for every channel.
INSERT INTO oms.fraud_rules (name, kind, currency, amount) VALUES ('big-order', 'total_over', 'EUR', 500);
INSERT INTO oms.fraud_rules (name, kind) VALUES ('billing-country', 'country_mismatch');
INSERT INTO oms.fraud_rules (name, kind, max_orders, within, channel_id)
	SELECT 'velocity', 'customer_velocity', 2, '1 hour', id FROM oms.channels WHERE tenant_id = oms.current_tenant_id() AND code = 'web';
-- A television to Italy billed in France: two rules match; one hold names both.
SELECT oms.place_order('{"channel": "web", "external_id": "OHW-1", "customer": {"ref": "C7"},
	"attributes": {"billing_country": "FR"}, "ship_to": {"country": "IT"},
	"lines": [{"sku": "TV", "qty": 1, "unit_price": 799}]}') AS w1 \gset
SELECT * FROM orders WHERE ord = 'OHW-1';
SELECT reason, note, rule FROM oms.order_holds WHERE tenant_id = oms.current_tenant_id() AND order_id = :w1;
SELECT * FROM history WHERE ord = 'OHW-1';
-- Authorised, but still held: not released. Resolving the hold releases it (web: auto_release).
SELECT oms.authorize_payment(:w1, 799, 'psp-w1') > 0 AS authorised;
SELECT * FROM orders WHERE ord = 'OHW-1';
SELECT oms.resolve_hold(:w1, 'fraud_review');
SELECT * FROM history WHERE ord = 'OHW-1';
SELECT * FROM events WHERE ord = 'OHW-1';
-- The third order of customer C7 within the hour is held by the velocity rule; a small order of
-- a new customer is not held, and is released as soon as it is authorised.
SELECT oms.place_order('{"channel": "web", "external_id": "OHW-2", "customer": {"ref": "C7"}, "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS w2 \gset
SELECT oms.place_order('{"channel": "web", "external_id": "OHW-3", "customer": {"ref": "C7"}, "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS w3 \gset
SELECT oms.place_order('{"channel": "web", "external_id": "OHW-4", "customer": {"ref": "C8"}, "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS w4 \gset
SELECT oms.authorize_payment(:w4, 20, 'psp-w4') > 0 AS authorised;
SELECT * FROM orders WHERE ord IN ('OHW-2', 'OHW-3', 'OHW-4');
SELECT o.external_id, h.rule, h.note FROM oms.order_holds h JOIN oms.orders o ON o.tenant_id = h.tenant_id AND o.id = h.order_id
 WHERE h.tenant_id = oms.current_tenant_id() AND o.external_id IN ('OHW-2', 'OHW-3', 'OHW-4');
-- The velocity rule is for the web channel only; an inactive rule does nothing.
UPDATE oms.fraud_rules SET active = false WHERE tenant_id = oms.current_tenant_id() AND name = 'big-order';
SELECT oms.place_order('{"channel": "cc", "external_id": "H-2", "customer": {"ref": "C7"}, "ship_to": {"country": "IT"},
	"lines": [{"sku": "TV", "qty": 1, "unit_price": 799}]}') AS h2 \gset
SELECT * FROM orders WHERE ord = 'H-2';

-- 3. A till sale (POS: no authorisation required, auto_release): released at placement.
SELECT oms.place_order('{"channel": "pos", "external_id": "POS-1", "pickup": "WH-1",
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 20}]}') AS pos \gset
SELECT * FROM orders WHERE ord = 'POS-1';
SELECT * FROM history WHERE ord = 'POS-1';
SELECT * FROM events WHERE ord = 'POS-1';

-- 4. Holds end with shipping: a shipped order cannot be held (the state machine's 55000).
SELECT oms.pack(:pos, 'WH-1') AS s \gset
SELECT oms.ship(:s, 'dhl.standard', 'HOLD-T1');
SELECT * FROM pg_temp.err(format('SELECT oms.hold_order(%s, %L)', :pos, 'customer_request'));
SELECT * FROM pg_temp.err('SELECT oms.hold_order(-5, ''customer_request'')');
SELECT * FROM pg_temp.err(format('SELECT oms.hold_order(%s, %L, %L)', :h1, 'customer_request', repeat('x', 1001)));
-- Fraud rules must be complete for their kind.
SELECT state, message FROM pg_temp.err($$INSERT INTO oms.fraud_rules (name, kind) VALUES ('incomplete', 'total_over')$$);
RESET oms.tenant;
