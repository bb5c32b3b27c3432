-- The state trigger on orders and order_lines: a change of state must be a legal move, and every
-- state an order or a line takes is recorded in oms.order_history with who and why. Plain INSERTs
-- and UPDATEs on the tables only; no API function. Order ids are given (OVERRIDING SYSTEM VALUE)
-- so that the output does not depend on the tests before this one (identity values stay far below).
SELECT oms.create_tenant('t_history') > 0 AS created;
SET oms.tenant = 't_history';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) VALUES ('SKU-A', 'Item A'), ('SKU-B', 'Item B'), ('SKU-C', 'Item C');

-- Every error below as SQLSTATE, message, detail and hint.
CREATE FUNCTION pg_temp.try(sql text, OUT code text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
							hint = PG_EXCEPTION_HINT;
END
$$;
-- Tables are shared by all tenants: every query below names this one.
-- The history of this tenant, numbered from 1; the session user shows as such.
CREATE VIEW pg_temp.history AS
	SELECT row_number() OVER (ORDER BY h.id) AS n, h.order_id, h.line_no, h.from_state, h.to_state,
		   CASE WHEN h.changed_by = session_user THEN '(session user)' ELSE h.changed_by END AS changed_by,
		   h.reason
	  FROM oms.order_history h
	 WHERE h.tenant_id = oms.current_tenant_id();

-- ===== INSERT records the first state (from_state NULL): an order of three lines, all created.
INSERT INTO oms.orders (id, channel_id, external_id, currency, ship_to, updated_at)
	OVERRIDING SYSTEM VALUE
	SELECT 9000001, c.id, 'H-1', 'EUR', '{"country": "IT"}', '2024-01-01 00:00+00'
	  FROM oms.channels c WHERE c.tenant_id = oms.current_tenant_id() AND c.code = 'web';
INSERT INTO oms.order_lines (order_id, line_no, item_id, qty, unit_price)
	SELECT 9000001, row_number() OVER (ORDER BY i.sku), i.id, 1, 10
	  FROM oms.items i WHERE i.tenant_id = oms.current_tenant_id();
-- An order placed as place_order does it: lines inserted allocated or backordered, the order in
-- their rollup.
INSERT INTO oms.orders (id, channel_id, external_id, state, currency, ship_to)
	OVERRIDING SYSTEM VALUE
	SELECT 9000002, c.id, 'H-2', oms.rollup('{allocated,backordered}'::oms.line_state[]), 'EUR', '{"country": "IT"}'
	  FROM oms.channels c WHERE c.tenant_id = oms.current_tenant_id() AND c.code = 'web';
INSERT INTO oms.order_lines (order_id, line_no, item_id, qty, unit_price, state)
	SELECT 9000002, v.line_no, i.id, 1, 10, v.state::oms.line_state
	  FROM (VALUES (1, 'SKU-A', 'allocated'), (2, 'SKU-B', 'backordered')) v(line_no, sku, state)
	  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = v.sku;
SELECT * FROM pg_temp.history;
-- A second capture of H-1 that ON CONFLICT skips leaves no history.
INSERT INTO oms.orders (channel_id, external_id, currency, ship_to)
	SELECT c.id, 'H-1', 'EUR', '{"country": "IT"}' FROM oms.channels c WHERE c.tenant_id = oms.current_tenant_id() AND c.code = 'web'
	ON CONFLICT ON CONSTRAINT orders_channel_external_id_key DO NOTHING;
SELECT count(*) AS history_rows FROM pg_temp.history;

-- ===== legal changes are recorded, with oms.actor and oms.reason when set
UPDATE oms.order_lines SET state = 'allocated' WHERE order_id = 9000001 AND line_no = 1;
BEGIN;
SET LOCAL oms.actor = 'clerk@example.com';
SET LOCAL oms.reason = 'stock found for line 2, line 3 waits for the PO';
UPDATE oms.order_lines SET state = CASE line_no WHEN 2 THEN 'allocated' ELSE 'backordered' END::oms.line_state
	WHERE order_id = 9000001 AND line_no IN (2, 3);
-- The order follows its lines: the rollup of allocated, allocated, backordered.
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001;
SELECT state, updated_at = now() AS updated_now FROM oms.orders WHERE id = 9000001;
COMMIT;
-- SET LOCAL ended with the transaction.
SELECT current_setting('oms.actor') = '' AS actor_reset, current_setting('oms.reason') = '' AS reason_reset;
SELECT * FROM pg_temp.history WHERE n > 7;

-- ===== unchanged states record nothing; other columns do not even fire the line trigger
UPDATE oms.order_lines SET state = state WHERE order_id = 9000001;
UPDATE oms.order_lines SET promised_date = '2024-02-01' WHERE order_id = 9000001 AND line_no = 3;
-- An order update without a change of state moves updated_at only.
UPDATE oms.orders SET updated_at = '2024-01-01 00:00+00' WHERE id = 9000001;
BEGIN;
UPDATE oms.orders SET customer_name = 'Ada' WHERE id = 9000001;
SELECT state, updated_at = now() AS updated_now FROM oms.orders WHERE id = 9000001;
COMMIT;
SELECT count(*) AS history_rows FROM pg_temp.history;

-- ===== illegal changes: 55000 naming both states, detail naming the row, hint with the targets
UPDATE oms.order_lines SET state = 'shipped' WHERE order_id = 9000001 AND line_no = 1;
SELECT * FROM pg_temp.try($$UPDATE oms.order_lines SET state = 'created' WHERE order_id = 9000001 AND line_no = 2$$);
SELECT * FROM pg_temp.try($$UPDATE oms.orders SET state = 'closed' WHERE id = 9000001$$);
SELECT * FROM pg_temp.try($$UPDATE oms.orders SET state = 'returned' WHERE id = 9000002$$);
-- One illegal row fails the whole statement: lines 1 and 2 may be released, line 3 (backordered)
-- may not, so none is.
SELECT * FROM pg_temp.try($$UPDATE oms.order_lines SET state = 'released' WHERE order_id = 9000001$$);
SELECT line_no, state FROM oms.order_lines WHERE order_id = 9000001 ORDER BY line_no;
-- A rolled back change leaves no history either.
BEGIN;
UPDATE oms.order_lines SET state = 'released' WHERE order_id = 9000001 AND line_no = 1;
ROLLBACK;
SELECT count(*) AS history_rows FROM pg_temp.history;

-- ===== a whole life: line 3 cancelled, lines 1 and 2 released, shipped, delivered; order closed
BEGIN;
SET LOCAL oms.reason = 'customer cancelled SKU-C';
UPDATE oms.order_lines SET state = 'cancelled', qty_cancelled = qty WHERE order_id = 9000001 AND line_no = 3;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001 RETURNING state;
COMMIT;
UPDATE oms.order_lines SET state = 'released' WHERE order_id = 9000001 AND line_no = 1;
UPDATE oms.order_lines SET state = 'released' WHERE order_id = 9000001 AND line_no = 2;
UPDATE oms.order_lines SET state = 'picked' WHERE order_id = 9000001 AND line_no = 1;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001 RETURNING state;
BEGIN;
SET LOCAL oms.actor = 'carrier-webhook';
UPDATE oms.order_lines SET state = 'shipped', qty_shipped = qty WHERE order_id = 9000001 AND line_no = 1;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001 RETURNING state;
UPDATE oms.order_lines SET state = 'shipped', qty_shipped = qty WHERE order_id = 9000001 AND line_no = 2;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001 RETURNING state;
UPDATE oms.order_lines SET state = 'delivered', qty_delivered = qty WHERE order_id = 9000001 AND line_no = 1;
UPDATE oms.order_lines SET state = 'delivered', qty_delivered = qty WHERE order_id = 9000001 AND line_no = 2;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000001 RETURNING state;
COMMIT;
UPDATE oms.orders SET state = 'closed' WHERE id = 9000001;
-- Terminal states stay terminal.
SELECT * FROM pg_temp.try($$UPDATE oms.orders SET state = 'returned' WHERE id = 9000001$$);
SELECT * FROM pg_temp.try($$UPDATE oms.order_lines SET state = 'allocated' WHERE order_id = 9000001 AND line_no = 3$$);

-- ===== the history is written even by a role that may not write it (the trigger is SECURITY DEFINER)
CREATE ROLE regress_oms_clerk;
GRANT USAGE ON SCHEMA oms TO regress_oms_clerk;
GRANT SELECT, UPDATE (state) ON oms.order_lines TO regress_oms_clerk;
-- (row level security: the role reads its tenant's rows, once granted the tenant)
GRANT EXECUTE ON FUNCTION oms.current_tenant_id() TO regress_oms_clerk;
SELECT oms.grant_tenant('regress_oms_clerk', current_setting('oms.tenant')) AS tenant_granted;
SET ROLE regress_oms_clerk;
SELECT has_table_privilege('oms.order_history', 'INSERT') AS may_insert_history;
UPDATE oms.order_lines SET state = 'allocated' WHERE order_id = 9000002 AND line_no = 2;
RESET ROLE;
UPDATE oms.orders o SET state = (SELECT oms.rollup(l.state) FROM oms.order_lines l WHERE l.order_id = o.id)
	WHERE o.id = 9000002 RETURNING state;
REVOKE ALL ON oms.order_lines FROM regress_oms_clerk;
REVOKE ALL ON FUNCTION oms.current_tenant_id() FROM regress_oms_clerk;
SELECT oms.revoke_tenant('regress_oms_clerk', current_setting('oms.tenant')) AS tenant_revoked;
REVOKE ALL ON SCHEMA oms FROM regress_oms_clerk;
DROP ROLE regress_oms_clerk;

-- ===== the full history of both orders
SELECT * FROM pg_temp.history;
-- Every recorded change is a legal move, and each row's to_state is the next row's from_state.
SELECT count(*) AS changes,
	   count(*) FILTER (WHERE CASE WHEN line_no IS NULL
							THEN oms.is_legal(from_state::oms.order_state, to_state::oms.order_state)
							ELSE oms.is_legal(from_state::oms.line_state, to_state::oms.line_state) END) AS legal,
	   count(*) FILTER (WHERE from_state IS DISTINCT FROM previous) AS broken_chains
  FROM (SELECT h.*, lag(h.to_state) OVER (PARTITION BY h.order_id, h.line_no ORDER BY h.n) AS previous
		  FROM pg_temp.history h) x
 WHERE from_state IS NOT NULL;
-- The final states agree with the last history row of each order and line.
SELECT o.id, NULL::int AS line_no, o.state::text, (SELECT h.to_state FROM pg_temp.history h
		WHERE h.order_id = o.id AND h.line_no IS NULL ORDER BY h.n DESC LIMIT 1) AS last_recorded
  FROM oms.orders o WHERE o.id IN (9000001, 9000002)
UNION ALL
SELECT l.order_id, l.line_no, l.state::text, (SELECT h.to_state FROM pg_temp.history h
		WHERE h.order_id = l.order_id AND h.line_no = l.line_no ORDER BY h.n DESC LIMIT 1)
  FROM oms.order_lines l WHERE l.order_id IN (9000001, 9000002)
 ORDER BY 1, 2 NULLS FIRST;
