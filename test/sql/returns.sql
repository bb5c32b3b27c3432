-- Returns: an RMA for shipped units within the channel's window; receipt with a disposition per
-- line (restock: on_hand grows with a "return" movement; damaged and vendor: recorded only); the
-- refund computed (units at their price, plus shipping when the whole order is back) and paid
-- through the payments, or left due when the channel refunds outside; an exchange paid by the
-- returned value. Bad input and business rules: OM005, OM010, 55000, 22023.
SELECT oms.create_tenant('t_returns') > 0 AS created;
SET oms.tenant = 't_returns';
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(regexp_replace(regexp_replace(message, 'order \d+', 'order N', 'g'), '(on|of) return \d+', '\1 return R', 'g'),
							  '^return \d+', 'return R');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency, return_days, refunds_outside) VALUES
	('web', 'web', 'Web shop', 'EUR', 30, false),
	('mkt', 'marketplace', 'Marketplace', 'EUR', 14, true),
	('final', 'web', 'Final sale', 'EUR', 0, false);
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1), ('OUTLET', 'store', 'Outlet', 9);
INSERT INTO oms.items (sku, name) VALUES ('TEE-M', 'T-shirt M'), ('TEE-L', 'T-shirt L'), ('CAP', 'Cap'), ('MUG', 'Mug');
SELECT oms.set_stock('TEE-M', 'WH-1', 10, 'init'), oms.set_stock('TEE-L', 'WH-1', 10, 'init'),
	   oms.set_stock('CAP', 'WH-1', 10, 'init'), oms.set_stock('MUG', 'WH-1', 10, 'init');
CREATE TEMP VIEW stock AS
SELECT i.sku, loc.code AS location, s.on_hand, s.reserved
  FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations loc ON loc.tenant_id = s.tenant_id AND loc.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY 1, 2;
CREATE TEMP VIEW lines AS
SELECT o.external_id AS ord, l.line_no, i.sku, l.state, l.qty, l.qty_shipped AS shipped, l.qty_returned AS returned
  FROM oms.order_lines l JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
 WHERE l.tenant_id = oms.current_tenant_id() ORDER BY o.id, l.line_no;
CREATE TEMP VIEW rl AS
SELECT x.line_no, x.qty, x.qty_received AS received, x.restocked, x.damaged, x.to_vendor, x.qty_exchanged AS exchanged, x.exchange_sku
  FROM oms.return_lines x WHERE x.tenant_id = oms.current_tenant_id() ORDER BY x.return_id, x.line_no;
CREATE TEMP TABLE seen (id bigint);
INSERT INTO seen VALUES (0);
-- Return ids come from one sequence shared by every tenant: the events below show them relative to
-- the last id taken before this test (the first return of this test is 1 when it runs alone).
CREATE TEMP TABLE rma_base AS
	SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS id FROM oms.returns_id_seq;
CREATE FUNCTION pg_temp.rel(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m		text[];
	done	text := '';
BEGIN
	LOOP
		m := regexp_match(t, '^(.*?)(RMA-|return )([0-9]+)(.*)$', 's');
		EXIT WHEN m IS NULL;
		done := done || m[1] || m[2] || (m[3]::bigint - (SELECT id FROM rma_base))::text;
		t := m[4];
	END LOOP;
	RETURN done || t;
END $$;
CREATE FUNCTION pg_temp.new_events() RETURNS TABLE (ord text, type text, payload jsonb)
	LANGUAGE sql AS $$
	WITH n AS (SELECT e.* FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id() AND e.id > (SELECT id FROM seen)),
	u AS (UPDATE seen SET id = (SELECT coalesce(max(n.id), seen.id) FROM n))
	SELECT pg_temp.rel(n.payload ->> 'order_ref'), n.type,
		   pg_temp.rel((n.payload - 'order_id' - 'order_ref' - 'channel' - 'customer' - 'rma' - 'exchange_order_id' - 'placed_at' - 'shipped_at'
		   - 'shipment_id' - 'ship_to' - 'subtotal' - 'shipping_amount' - 'currency')::text)::jsonb
	  FROM n WHERE n.type NOT IN ('payment_authorized', 'order_released', 'shipped', 'payment_captured') ORDER BY n.id $$;
-- Places, pays, ships and captures an order; returns its id.
CREATE FUNCTION pg_temp.shipped_order(payload text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	v_id bigint := oms.place_order(payload::jsonb);
BEGIN
	PERFORM oms.authorize_payment(v_id, (SELECT total FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = v_id), 'psp-' || v_id);
	PERFORM oms.release_order(v_id);
	PERFORM oms.ship(oms.pack(v_id, 'WH-1'), 'dhl.standard', 'RET-' || v_id);
	PERFORM oms.capture_payment(v_id);
	RETURN v_id;
END $$;

-- 1. 2 T-shirts M (2 x 20), a cap (10), shipping 5: 55 EUR, shipped and captured.
SELECT pg_temp.shipped_order('{"channel": "web", "external_id": "RT-1", "shipping_amount": 5, "ship_to": {"country": "IT"},
	"customer": {"email": "anna@example.com"},
	"lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 20}, {"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o \gset
SELECT * FROM stock;
SELECT ord, type FROM pg_temp.new_events();

-- 2. Returning 3 of 2 shipped T-shirts is refused (OM005); 2 are authorised; a second return of
--    the same units is refused while the first is open.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o, '[{"line_no": 1, "qty": 3}]', 'too big'));
\x off
SELECT oms.create_return(:o, '[{"line_no": 1, "qty": 2}]', 'too big') AS r1 \gset
SELECT state, message FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o, '[{"line_no": 1, "qty": 1}]', 'again'));
SELECT * FROM pg_temp.new_events();

-- 3. Exchange one of them for a size L: a new order R-1/RMA-n, priced as the unit it replaces,
--    reserved like any order, paid by an authorisation of the returned value.
SELECT oms.exchange(:r1, '[{"line_no": 1, "qty": 1, "sku": "TEE-L"}]') AS x \gset
SELECT oms.exchange(:r1, '[{"line_no": 1, "qty": 1, "sku": "TEE-L"}]') = :x AS same_exchange;
SELECT regexp_replace(external_id, '\d+$', 'R') AS external_id, state, total, attributes ? 'exchange_for_return' AS linked
  FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = :x;
SELECT reference ~ '^return:' AS paid_by_return, authorized FROM oms.payments WHERE tenant_id = oms.current_tenant_id() AND order_id = :x;
SELECT * FROM stock WHERE sku = 'TEE-L';
SELECT ord ~ '/RMA-' AS exchange_order, type, payload FROM pg_temp.new_events();

-- 4. Receipt in two parts: the first T-shirt is restocked at WH-1 (the exchanged unit: no refund),
--    the second is damaged (recorded, not sellable; refunded: 20).
SELECT oms.receive_return(:r1, '[{"line_no": 1, "qty": 1, "disposition": "restock"}]') AS refund;
SELECT * FROM stock WHERE sku = 'TEE-M';
SELECT kind, delta, on_hand_after, reason, regexp_replace(reference, '\d+', 'R') AS reference FROM oms.stock_movements
 WHERE tenant_id = oms.current_tenant_id() AND kind = 'return';
SELECT oms.receive_return(:r1, '[{"line_no": 1, "qty": 1, "disposition": "damaged"}]') AS refund;
SELECT * FROM stock WHERE sku = 'TEE-M';
SELECT * FROM rl;
SELECT * FROM lines WHERE ord = 'RT-1';
-- Receiving more than the return authorised: OM005, nothing changes.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.receive_return(%s, %L)', :r1, '[{"line_no": 1, "qty": 1, "disposition": "restock"}]'));
\x off
SELECT * FROM pg_temp.new_events();

-- 5. The cap comes back too, restocked at the outlet: the whole order is back, but one unit was
--    exchanged, so shipping is not refunded: 10.
SELECT oms.create_return(:o, '[{"line_no": 2, "qty": 1}]', 'unwanted') AS r2 \gset
SELECT oms.receive_return(:r2, '[{"line_no": 2, "qty": 1, "disposition": "restock", "location": "OUTLET"}]') AS refund;
SELECT * FROM lines WHERE ord = 'RT-1';
SELECT state FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = :o;
SELECT * FROM stock WHERE sku = 'CAP';
SELECT state, refund_amount, refunded, shipping_refunded, exchange_order_id IS NOT NULL AS exchanged
  FROM oms.returns WHERE tenant_id = oms.current_tenant_id() AND order_id = :o ORDER BY id;
SELECT * FROM oms.payment_totals(:o);
SELECT * FROM pg_temp.new_events();

-- 6. A whole order back, nothing exchanged: the shipping charge is refunded with it (2 x 8 + 4).
--    Sent to the vendor: no stock change.
SELECT pg_temp.shipped_order('{"channel": "web", "external_id": "RT-2", "shipping_amount": 4, "ship_to": {"country": "IT"},
	"lines": [{"sku": "MUG", "qty": 2, "unit_price": 8}]}') AS o2 \gset
SELECT oms.create_return(:o2, '[{"line_no": 1, "qty": 2}]', 'broken in transit') AS r3 \gset
SELECT oms.receive_return(:r3, '[{"line_no": 1, "qty": 2, "disposition": "vendor"}]') AS refund;
SELECT * FROM stock WHERE sku = 'MUG';
SELECT * FROM oms.payment_totals(:o2);
SELECT ord, type, payload FROM pg_temp.new_events();

-- 7. A marketplace refunds outside: the refund is recorded as due, no payment is touched.
SELECT pg_temp.shipped_order('{"channel": "mkt", "external_id": "RT-3", "ship_to": {"country": "IT"},
	"lines": [{"sku": "MUG", "qty": 1, "unit_price": 8}]}') AS o3 \gset
SELECT oms.receive_return(oms.create_return(:o3, '[{"line_no": 1, "qty": 1}]', 'unwanted'),
						  '[{"line_no": 1, "qty": 1, "disposition": "restock"}]') AS refund;
SELECT refund_amount, refunded FROM oms.returns WHERE tenant_id = oms.current_tenant_id() AND order_id = :o3;
SELECT refunded FROM oms.payment_totals(:o3);
SELECT type, payload ->> 'refund_due' AS refund_due FROM pg_temp.new_events();

-- 8. Return windows: a channel without returns (OM010), and a window that has closed (the
--    delivery moved back 31 days for the test).
SELECT pg_temp.shipped_order('{"channel": "final", "external_id": "RT-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o4 \gset
SELECT pg_temp.shipped_order('{"channel": "web", "external_id": "RT-5", "ship_to": {"country": "IT"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o5 \gset
UPDATE oms.shipments SET delivered_at = timestamptz '2024-03-01 10:00+00', state = 'delivered', shipped_at = timestamptz '2024-02-28 10:00+00'
 WHERE tenant_id = oms.current_tenant_id() AND order_id = :o5;
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o4, '[{"line_no": 1, "qty": 1}]', 'unwanted'));
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o5, '[{"line_no": 1, "qty": 1}]', 'unwanted'));
\x off

-- 9. Bad input and wrong states.
SELECT oms.place_order('{"channel": "web", "external_id": "RT-6", "ship_to": {"country": "IT"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o6 \gset
SELECT pg_temp.shipped_order('{"channel": "web", "external_id": "RT-7", "ship_to": {"country": "IT"},
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 10}]}') AS o7 \gset
SELECT oms.create_return(:o7, '[{"line_no": 1, "qty": 1}]', 'unwanted') AS r9 \gset
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o6, '[{"line_no": 1, "qty": 1}]', 'not shipped'));
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o, '[{"line_no": 9, "qty": 1}]', 'no line'));
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, NULL, %L)', :o, 'nothing'));
SELECT * FROM pg_temp.err(format('SELECT oms.create_return(%s, %L, %L)', :o, '[{"line_no": 1, "qty": 1}]', ''));
SELECT * FROM pg_temp.err('SELECT oms.receive_return(-1, ''[{"line_no": 1, "qty": 1, "disposition": "restock"}]'')');
SELECT * FROM pg_temp.err(format('SELECT oms.receive_return(%s, %L)', :r1, '[{"line_no": 1, "qty": 1, "disposition": "lost"}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.receive_return(%s, %L)', :r1, '[{"line_no": 1, "qty": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.receive_return(%s, %L)', :r1, '[{"line_no": 2, "qty": 1, "disposition": "restock"}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.receive_return(%s, %L)', :r9, '[{"line_no": 1, "qty": 1, "disposition": "restock", "location": "NOWHERE"}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.exchange(%s, %L)', :r2, '[{"line_no": 2, "qty": 1}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.exchange(%s, %L)', :r9, '[{"line_no": 1, "qty": 2}]'));
SELECT * FROM pg_temp.err(format('SELECT oms.exchange(%s, %L)', :r9, '[{"line_no": 1, "qty": 1, "sku": "NOPE"}]'));
\x off
-- The failed exchange left nothing behind: the return is still only authorised, unexchanged.
SELECT state, exchange_order_id FROM oms.returns WHERE tenant_id = oms.current_tenant_id() AND id = :r9;
SELECT * FROM rl WHERE exchange_sku IS NULL AND received = 0;
SELECT * FROM oms.check_stock_invariants();
RESET oms.tenant;
