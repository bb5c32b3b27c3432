-- The transactional outbox: events written with the change they report (none for a change that
-- fails), read by named consumers with next_events, acknowledged with ack_events, purged once
-- every consumer has them.
SELECT oms.create_tenant('t_events') > 0 AS created;
SET oms.tenant = 't_events';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 1, true, false),
	('STORE-1', 'store', 'Store Milano', 5, false, true);
INSERT INTO oms.items (sku, name, backorderable) VALUES
	('TEE', 'T-shirt', false), ('SOFA', 'Sofa', true), ('LAMP', 'Lamp', false);
SELECT oms.set_stock('TEE', 'WH-1', 5, 'init'), oms.set_stock('TEE', 'STORE-1', 2, 'init');
-- An error as data: SQLSTATE, message, detail and hint (without the functions' line numbers).
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;

-- Event ids come from one sequence shared by every tenant: shown relative to the first one here.
SELECT coalesce(max(id), 0) AS before FROM oms.events \gset
CREATE TEMP VIEW events AS
SELECT e.id - :before AS n, e.type, e.payload ->> 'order_ref' AS order_ref,
	   (e.payload ->> 'order_id')::bigint = e.order_id AS id_ok
  FROM oms.events e
 WHERE e.tenant_id = oms.current_tenant_id()
 ORDER BY e.id;

-- 1. A new order: order_received (with everything a confirmation e-mail shows) and, because the
--    sofa has no stock, line_backordered listing only that line. Both in one INSERT.
SELECT oms.place_order('{"channel": "web", "external_id": "E-1", "currency": "EUR",
	"customer": {"ref": "C1", "email": "anna@example.com", "name": "Anna Rossi"},
	"ship_to": {"name": "Anna Rossi", "line1": "Via Roma 1", "city": "Milano", "postal_code": "20121", "country": "IT"},
	"shipping_amount": 4.9,
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 19.90}, {"sku": "SOFA", "qty": 1, "unit_price": 899}]}') AS o1 \gset
SELECT * FROM events;
SELECT jsonb_pretty(payload - 'order_id' - 'placed_at') AS order_received,
	   (payload ->> 'placed_at')::timestamptz = (SELECT placed_at FROM oms.orders o WHERE o.tenant_id = e.tenant_id AND o.id = :o1) AS placed_at_ok
  FROM oms.events e WHERE tenant_id = oms.current_tenant_id() AND type = 'order_received';
SELECT jsonb_pretty(payload - 'order_id') AS line_backordered
  FROM oms.events WHERE tenant_id = oms.current_tenant_id() AND type = 'line_backordered';

-- 2. Click & collect: the payload names the store instead of an address; nothing is backordered.
SELECT oms.place_order('{"channel": "web", "external_id": "E-2", "pickup": "STORE-1",
	"customer": {"email": "bruno@example.com"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 19.90}]}') AS o2 \gset
SELECT * FROM events;
SELECT payload -> 'pickup' AS pickup, payload ? 'ship_to' AS has_ship_to, payload -> 'customer' AS customer
  FROM oms.events WHERE tenant_id = oms.current_tenant_id() AND order_id = :o2;

-- 3. A retried submission returns the first order and writes no event; an order that fails
--    (no stock, not backorderable) leaves no event either.
SELECT oms.place_order('{"channel": "web", "external_id": "E-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 1}]}') = :o1 AS same_order;
SELECT state, message FROM pg_temp.err($$SELECT oms.place_order('{"channel": "web", "external_id": "E-3", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 19.90}, {"sku": "LAMP", "qty": 1, "unit_price": 30}]}')$$);
SELECT count(*) AS events FROM oms.events WHERE tenant_id = oms.current_tenant_id();

-- 4. Cancelling writes "cancelled" with the reason and the cancelled quantities; cancelling
--    again is a no-op and writes nothing.
SELECT oms.cancel_order(:o1, 'customer changed their mind');
SELECT oms.cancel_order(:o1, 'double click');
SELECT * FROM events;
SELECT jsonb_pretty(payload - 'order_id') AS cancelled
  FROM oms.events WHERE tenant_id = oms.current_tenant_id() AND type = 'cancelled';

-- 5. Consumers. A new consumer starts at the oldest event; it gets the same events again until it
--    acknowledges them (at least once); max bounds the batch.
SELECT id - :before AS n, type, payload ->> 'order_ref' AS order_ref FROM oms.next_events('mailer', 2);
SELECT id - :before AS n, type FROM oms.next_events('mailer', 2);
SELECT oms.ack_events('mailer', :before + 2) - :before AS mailer_at;
SELECT id - :before AS n, type FROM oms.next_events('mailer');
-- A second consumer is independent: it sees everything from the start (position 0).
SELECT id - :before AS n, type FROM oms.next_events('erp');
-- Acknowledging is idempotent, also with an older id.
SELECT oms.ack_events('mailer', :before + 2) - :before AS mailer_at,
	   oms.ack_events('mailer', :before + 1) - :before AS still_at;
SELECT consumer, CASE WHEN acked_up_to = 0 THEN 0 ELSE acked_up_to - :before END AS acked_up_to, acked_at IS NOT NULL AS acked
  FROM oms.event_consumers WHERE tenant_id = oms.current_tenant_id() ORDER BY consumer;
-- The events of one tenant are invisible to another, and so are its consumers.
SELECT oms.create_tenant('t_events_other') > 0 AS created;
SET oms.tenant = 't_events_other';
SELECT count(*) AS other_tenant_sees FROM oms.next_events('mailer');
SET oms.tenant = 't_events';

-- 6. Bad input: 22023 with the value and a hint.
\x on
SELECT state, message, replace(detail, (:before + 2)::text, '2 (relative)') AS detail, hint
  FROM pg_temp.err('SELECT oms.ack_events(''mailer'', 9223372036854775807)');
SELECT * FROM pg_temp.err('SELECT oms.ack_events(''nobody'', 1)');
SELECT * FROM pg_temp.err('SELECT oms.ack_events(''mailer'', -1)');
SELECT * FROM pg_temp.err('SELECT oms.ack_events(''mailer'', NULL)');
SELECT * FROM pg_temp.err('SELECT * FROM oms.next_events(''mail man'')');
SELECT * FROM pg_temp.err('SELECT * FROM oms.next_events(NULL)');
SELECT * FROM pg_temp.err('SELECT * FROM oms.next_events(''mailer'', 0)');
SELECT * FROM pg_temp.err('SELECT * FROM oms.next_events(''mailer'', 10001)');
SELECT * FROM pg_temp.err('SELECT oms.purge_events(''-1 day'')');
SELECT * FROM pg_temp.err('SELECT oms.purge_events(''1 day'', 0)');
\x off
-- A direct INSERT gets its id and horizon from the trigger, whatever it says (and is deleted
-- again here); unknown types and payloads that are not objects are refused by the table.
INSERT INTO oms.events (id, order_id, type, payload, xid_horizon) VALUES (1, NULL, 'delayed', '{}', '1')
RETURNING id > :before AS renumbered, xid_horizon > '1'::xid8 AS horizon_set;
DELETE FROM oms.events WHERE tenant_id = oms.current_tenant_id() AND order_id IS NULL;
SELECT state, message FROM pg_temp.err($$INSERT INTO oms.events (order_id, type, payload) VALUES (NULL, 'order_shipped', '{}')$$);
SELECT state, message FROM pg_temp.err($$INSERT INTO oms.events (order_id, type, payload) VALUES (NULL, 'delayed', '[]')$$);

-- 7. Purge: only events every consumer of the tenant has acknowledged, and older than the
--    retention. mailer is at 2, erp at 0: nothing goes.
SELECT oms.purge_events('0') >= 0 AS purged;
SELECT count(*) AS left FROM oms.events WHERE tenant_id = oms.current_tenant_id();
SELECT oms.ack_events('erp', :before + 4) - :before AS erp_at;
-- Too young for a retention of one hour: nothing goes.
SELECT oms.purge_events('1 hour') >= 0 AS purged;
SELECT count(*) AS left FROM oms.events WHERE tenant_id = oms.current_tenant_id();
-- With retention 0, events 1 and 2 (acknowledged by both) go; 3 and 4 stay for mailer.
SELECT oms.purge_events('0') >= 2 AS purged;
SELECT * FROM events;
-- Dropping mailer leaves erp, which has everything: the rest goes.
SELECT oms.drop_event_consumer('mailer'), oms.drop_event_consumer('mailer') AS again;
SELECT oms.purge_events('0') >= 2 AS purged;
SELECT count(*) AS left FROM oms.events WHERE tenant_id = oms.current_tenant_id();
-- erp keeps its position: new events come after it (ids 5 to 7 went to the rows of part 6: the
-- deleted one and the two refused ones; a refused or rolled back event leaves a gap).
SELECT oms.place_order('{"channel": "web", "external_id": "E-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 19.90}]}') > 0 AS placed;
SELECT id - :before AS n, type, payload ->> 'order_ref' AS order_ref FROM oms.next_events('erp');
RESET oms.tenant;
