-- Order edits before release: cancel part or all of a line (its stock returns to ATP), change the
-- address; both refused with 55000, naming the state, once released. A cancelled line lowers what
-- must be authorised before release.
SELECT oms.create_tenant('t_edits') > 0 AS created;
SET oms.tenant = 't_edits';
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
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH-1', 'warehouse', 'Warehouse 1', true);
INSERT INTO oms.items (sku, name, backorderable) VALUES ('TEE', 'T-shirt', false), ('MUG', 'Mug', false), ('SOFA', 'Sofa', true);
SELECT oms.set_stock('TEE', 'WH-1', 10, 'init'), oms.set_stock('MUG', 'WH-1', 10, 'init');
CREATE TEMP VIEW lines AS
SELECT l.line_no, i.sku, l.state, l.qty, l.qty_cancelled AS cancelled, l.qty_shipped AS shipped,
	   (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r
		 WHERE r.tenant_id = l.tenant_id AND r.order_id = l.order_id AND r.line_no = l.line_no) AS reserved
  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
 WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = (SELECT max(id) FROM oms.orders WHERE tenant_id = oms.current_tenant_id())
 ORDER BY l.line_no;
CREATE TEMP VIEW events AS
SELECT e.type, e.payload - 'order_id' - 'order_ref' - 'channel' - 'customer' AS payload
  FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id() AND e.type NOT IN ('order_received', 'payment_authorized')
 ORDER BY e.id;

-- 1. 4 T-shirts (4 x 10), 2 mugs (2 x 5), a backordered sofa (1 x 300): total 350.
SELECT oms.place_order('{"channel": "web", "external_id": "ED-1", "ship_to": {"name": "Anna", "line1": "Via Roma 1", "city": "Milano", "country": "IT"},
	"lines": [{"sku": "TEE", "qty": 4, "unit_price": 10}, {"sku": "MUG", "qty": 2, "unit_price": 5}, {"sku": "SOFA", "qty": 1, "unit_price": 300}]}') AS o \gset
SELECT * FROM lines;
SELECT oms.atp('TEE') AS tee_atp;
-- Cancel 1 T-shirt: the reservation shrinks from 4 to 3, ATP grows from 6 to 7; the line stays allocated.
SELECT oms.cancel_line(:o, 1, 1, 'customer wants 3');
SELECT * FROM lines;
SELECT oms.atp('TEE') AS tee_atp;
-- Cancel the sofa (backordered: nothing reserved) and both mugs: those lines are cancelled.
SELECT oms.cancel_line(:o, 3, 1, 'too long to wait'), oms.cancel_line(:o, 2, 2, 'changed mind');
SELECT * FROM lines;
SELECT state FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = :o;
SELECT line_no, from_state, to_state, reason FROM oms.order_history
 WHERE tenant_id = oms.current_tenant_id() AND order_id = :o AND from_state IS NOT NULL ORDER BY id;
SELECT * FROM events;

-- 2. What is due is now 3 x 10 = 30: authorising 30 is enough to release.
SELECT oms.authorize_payment(:o, 30, 'psp-ed-1') > 0 AS authorised;
-- Before release, the address can change (allocations stay where they are: no routing yet).
SELECT oms.change_address(:o, '{"name": "Anna", "line1": "Corso Como 5", "city": "Milano", "postal_code": "20154", "country": "it", "lat": 45.48, "lon": 9.19}');
SELECT ship_country, ship_city, ship_postal_code, ship_lat, ship_lon, ship_to ->> 'line1' AS line1
  FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND id = :o;
SELECT type, payload -> 'ship_to' ->> 'line1' AS now, payload -> 'previous' ->> 'line1' AS before
  FROM oms.events WHERE tenant_id = oms.current_tenant_id() AND type = 'address_changed';
SELECT oms.release_order(:o);

-- 3. Released: both edits are refused with 55000, naming the state.
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 1, 1, %L)', :o, 'too late'));
SELECT * FROM pg_temp.err(format('SELECT oms.change_address(%s, %L)', :o, '{"country": "FR"}'));
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 2, 1, %L)', :o, 'again'));
\x off

-- 4. Bad input: 22023 with the value.
SELECT oms.place_order('{"channel": "web", "external_id": "ED-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 10}]}') AS o2 \gset
SELECT oms.place_order('{"channel": "web", "external_id": "ED-3", "pickup": "WH-1",
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 10}]}') AS o3 \gset
\x on
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 1, 3, %L)', :o2, 'more than ordered'));
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 1, 0, %L)', :o2, 'nothing'));
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 9, 1, %L)', :o2, 'no such line'));
SELECT * FROM pg_temp.err(format('SELECT oms.cancel_line(%s, 1, 1, NULL)', :o2));
SELECT * FROM pg_temp.err(format('SELECT oms.change_address(%s, %L)', :o2, '{"country": "Italy"}'));
SELECT * FROM pg_temp.err(format('SELECT oms.change_address(%s, %L)', :o2, '{"country": "IT", "lat": 45}'));
SELECT * FROM pg_temp.err(format('SELECT oms.change_address(%s, %L)', :o2, '{"country": "IT", "street": "x"}'));
SELECT * FROM pg_temp.err(format('SELECT oms.change_address(%s, %L)', :o3, '{"country": "IT"}'));
\x off
SELECT * FROM lines;
SELECT * FROM oms.check_stock_invariants();
RESET oms.tenant;
