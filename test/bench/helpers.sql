-- make bench: helpers that the pgbench scripts call (schema bench; not part of the extension).
--
-- pgbench (PostgreSQL 15) aborts a client on any error but a serialization failure or deadlock,
-- so a call that is expected to fail (OM001 in a flash sale) goes through a function that catches
-- that one error and says what happened; any other error still aborts the run.

\set ON_ERROR_STOP on

CREATE SCHEMA bench;

-- 'served' or 'refused' (OM001: not enough stock). Its exception block costs one subtransaction;
-- the flash-sale and spread-load runs both pay it, so their ratio is fair.
CREATE FUNCTION bench.try_place_order(p jsonb) RETURNS text
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM oms.place_order(p);
	RETURN 'served';
EXCEPTION WHEN SQLSTATE 'OM001' THEN
	RETURN 'refused';
END
$$;
COMMENT ON FUNCTION bench.try_place_order(jsonb) IS 'oms.place_order that returns refused instead of raising OM001';

-- The cancel run: every call cancels the next open order of a queue filled just before the run
-- (at most p_max orders, the oldest first), so that no two calls cancel the same order (a second
-- cancel is a no-op and would flatter the figure). The sequence hands out queue positions
-- without locks; bench.sh runs exactly as many calls as the queue holds.
CREATE TABLE bench.cancel_queue (
	n			bigint PRIMARY KEY,
	order_id	bigint NOT NULL
);
CREATE SEQUENCE bench.cancel_seq;

CREATE FUNCTION bench.fill_cancel_queue(p_max bigint) RETURNS bigint
	LANGUAGE sql
AS $$
	TRUNCATE bench.cancel_queue;
	SELECT setval('bench.cancel_seq', 1, false);
	INSERT INTO bench.cancel_queue (n, order_id)
	SELECT row_number() OVER (ORDER BY o.id), o.id
	  FROM oms.orders o
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id LIKE 'po-%'
	   AND o.state::text <> 'cancelled'
	 ORDER BY o.id
	 LIMIT p_max;
	SELECT count(*) FROM bench.cancel_queue;
$$;

-- Cancels the next order of the queue; 'empty' when the queue ran out.
CREATE FUNCTION bench.cancel_next() RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	v_n		bigint := nextval('bench.cancel_seq');
	v_order	bigint;
BEGIN
	SELECT q.order_id INTO v_order FROM bench.cancel_queue q WHERE q.n = v_n;
	IF v_order IS NULL THEN
		RETURN 'empty';
	END IF;
	RETURN oms.cancel_order(v_order, 'bench')::text;
END
$$;
