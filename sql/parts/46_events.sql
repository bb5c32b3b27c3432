-- The transactional outbox (src/events.c): every change that a customer or an integration must
-- hear about writes a row of oms.events in its own transaction, so an aborted change leaves no
-- event and a committed one always has its event. Consumers read with oms.next_events() and
-- acknowledge with oms.ack_events(); each named consumer has its own position, sees every event,
-- and gets again what it has not acknowledged (at least once). NOTIFY oms_events is only a
-- wake-up; the table is the truth.

CREATE SEQUENCE oms.events_id_seq AS bigint NO CYCLE CACHE 1;
COMMENT ON SEQUENCE oms.events_id_seq IS 'Ids of oms.events, taken by the event trigger; must keep CACHE 1 (ids are taken in one global order)';

CREATE TABLE oms.events (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint NOT NULL,
	order_id		bigint,
	type			text NOT NULL CONSTRAINT events_type_known CHECK (type IN (
						'order_received', 'line_backordered', 'order_on_hold', 'order_confirmed',
						'order_released', 'shipped', 'ready_for_pickup', 'delivered', 'tracking',
						'delayed', 'pickup_uncollected', 'cancelled', 'line_cancelled',
						'address_changed', 'payment_authorized', 'payment_captured', 'payment_voided',
						'refunded', 'return_created', 'return_received', 'exchange_created', 'line_allocated')),
	payload			jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(payload) = 'object'),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	xid_horizon		pg_catalog.xid8 NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
ALTER SEQUENCE oms.events_id_seq OWNED BY oms.events.id;
COMMENT ON TABLE oms.events IS 'Transactional outbox: one row per thing that happened to an order, written in the same transaction; read with oms.next_events(), acknowledged with oms.ack_events()';
COMMENT ON COLUMN oms.events.id IS 'Taken by the event trigger from oms.events_id_seq; increases in the order events were written';
COMMENT ON COLUMN oms.events.type IS 'What happened (see the README for each type and its payload)';
COMMENT ON COLUMN oms.events.payload IS 'What a customer message or an integration needs: order reference, channel, customer contact, lines, dates, tracking; never card data';
COMMENT ON COLUMN oms.events.xid_horizon IS 'The next transaction id when the event took its id: the event is handed out only once every transaction older than this has finished, so no event with a smaller id can still appear';

CREATE FUNCTION oms.event_trigger() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_event_trigger';
COMMENT ON FUNCTION oms.event_trigger() IS 'Trigger on oms.events: takes the id and the xid horizon (in that order, after the transaction has its id), and queues NOTIFY oms_events when oms.notify_events = commit';

CREATE TRIGGER events_number BEFORE INSERT ON oms.events
	FOR EACH ROW EXECUTE FUNCTION oms.event_trigger();
COMMENT ON TRIGGER events_number ON oms.events IS 'Numbers every event so that consumers never skip one that commits late (see src/events.c)';

CREATE TABLE oms.event_consumers (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	consumer		text NOT NULL CHECK (consumer ~ '^[A-Za-z0-9_.:-]{1,100}$'),
	acked_up_to		bigint NOT NULL DEFAULT 0 CHECK (acked_up_to >= 0),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	acked_at		timestamptz,
	PRIMARY KEY (tenant_id, consumer)
);
COMMENT ON TABLE oms.event_consumers IS 'Named readers of oms.events (a mailer, an ERP bridge), each with the id up to which it has acknowledged; created by its first oms.next_events() call';

-- Refuses a bad consumer name (22023).
CREATE FUNCTION oms._check_consumer(p_consumer text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_consumer IS NULL OR p_consumer !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
		RAISE EXCEPTION 'invalid event consumer name "%"', coalesce(p_consumer, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A consumer name has 1 to 100 letters, digits, "_", ".", ":" or "-", e.g. ''mailer''.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_consumer(text) IS 'Internal: refuses (22023) an event consumer name that is not 1 to 100 letters, digits, _ . : -';

CREATE FUNCTION oms.next_events(consumer text, max int DEFAULT 100)
	RETURNS TABLE (id bigint, order_id bigint, type text, payload jsonb, created_at timestamptz)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_pos		bigint;
BEGIN
	PERFORM oms._check_consumer(next_events.consumer);
	IF next_events.max IS NULL OR next_events.max < 1 OR next_events.max > 10000 THEN
		RAISE EXCEPTION 'invalid max % of events for consumer "%"', coalesce(next_events.max::text, 'NULL'), next_events.consumer
			USING ERRCODE = '22023', HINT = 'Ask for 1 to 10000 events at a time.';
	END IF;
	SELECT c.acked_up_to INTO v_pos FROM oms.event_consumers c
		WHERE c.tenant_id = v_tenant AND c.consumer = next_events.consumer;

	-- The next events after the consumer's position, in id order, up to the last one that is
	-- safe: once an event's xid horizon is at most this snapshot's xmin, every smaller id is final
	-- (committed and visible here, or aborted), so nothing can appear behind it later. Events after
	-- it wait for the next call. This statement runs before any write of this function, so that
	-- this transaction's own id (if it gets one) does not hold the snapshot's xmin back.
	RETURN QUERY
		WITH candidates AS (
			SELECT e.id, e.order_id, e.type, e.payload, e.created_at, e.xid_horizon
			  FROM oms.events e
			 WHERE e.tenant_id = v_tenant AND e.id > coalesce(v_pos, 0)
			 ORDER BY e.id
			 LIMIT next_events.max)
		SELECT c.id, c.order_id, c.type, c.payload, c.created_at
		  FROM candidates c
		 WHERE c.id <= (SELECT pg_catalog.max(s.id) FROM candidates s
						 WHERE s.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()))
		 ORDER BY c.id;

	IF v_pos IS NULL THEN
		INSERT INTO oms.event_consumers AS c (tenant_id, consumer) VALUES (v_tenant, next_events.consumer)
			ON CONFLICT ON CONSTRAINT event_consumers_pkey DO NOTHING;
	END IF;
	RETURN;
END
$$;
COMMENT ON FUNCTION oms.next_events(text, int) IS 'The next events (at most max, in commit order for each order) after what the consumer has acknowledged; the same events come again until acknowledged; registers a new consumer at the oldest retained event';

CREATE FUNCTION oms.ack_events(consumer text, up_to bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_pos		bigint;
BEGIN
	PERFORM oms._check_consumer(ack_events.consumer);
	SELECT c.acked_up_to INTO v_pos FROM oms.event_consumers c
		WHERE c.tenant_id = v_tenant AND c.consumer = ack_events.consumer;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown event consumer "%"', ack_events.consumer
			USING ERRCODE = '22023', HINT = 'A consumer is registered by its first call of oms.next_events().';
	END IF;
	IF up_to IS NULL OR up_to < 0 THEN
		RAISE EXCEPTION 'invalid event id % to acknowledge for consumer "%"', coalesce(up_to::text, 'NULL'), ack_events.consumer
			USING ERRCODE = '22023', HINT = 'Acknowledge the id of the last event that oms.next_events() returned.';
	END IF;
	IF up_to <= v_pos THEN
		RETURN v_pos;				-- already acknowledged: a retried ack changes nothing
	END IF;
	-- Only an event that next_events() could have handed out: acknowledging beyond it would skip
	-- events that are not final yet.
	IF NOT EXISTS (SELECT FROM oms.events e
					WHERE e.tenant_id = v_tenant AND e.id = up_to
					  AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) THEN
		RAISE EXCEPTION 'event % cannot be acknowledged by consumer "%": it has not been delivered', up_to, ack_events.consumer
			USING ERRCODE = '22023',
			      DETAIL = format('The consumer has acknowledged up to %s.', v_pos),
			      HINT = 'Acknowledge the id of the last event that oms.next_events() returned.';
	END IF;
	UPDATE oms.event_consumers c
	   SET acked_up_to = GREATEST(c.acked_up_to, up_to), acked_at = pg_catalog.now()
	 WHERE c.tenant_id = v_tenant AND c.consumer = ack_events.consumer
	RETURNING c.acked_up_to INTO v_pos;
	RETURN v_pos;
END
$$;
COMMENT ON FUNCTION oms.ack_events(text, bigint) IS 'Acknowledges every event up to and including up_to for the consumer (idempotent); returns the consumer''s position';

CREATE FUNCTION oms.drop_event_consumer(consumer text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM oms._check_consumer(drop_event_consumer.consumer);
	DELETE FROM oms.event_consumers c
		WHERE c.tenant_id = oms.current_tenant_id() AND c.consumer = drop_event_consumer.consumer;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.drop_event_consumer(text) IS 'Forgets a consumer, so that its position no longer keeps events from being purged; true when it existed';

CREATE FUNCTION oms.purge_events(older_than interval, batch int DEFAULT 1000) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n			bigint;
	v_tenant	int;
	v_acked		bigint;
	v_k			bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'invalid retention %', coalesce(older_than::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Events older than this interval (0 or more) are purged once acknowledged.';
	END IF;
	IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Purge 1 to 100000 events per call.';
	END IF;
	IF oms._citus_distributed() THEN
		-- On Citus (the background worker of the coordinator), the same tenant by tenant: a
		-- query correlated on a reference table (oms.tenants) cannot reach the shards, and each
		-- statement naming one tenant goes to that tenant's node.
		v_n := 0;
		FOR v_tenant IN SELECT t.id FROM oms.tenants t ORDER BY t.id LOOP
			SELECT pg_catalog.min(c.acked_up_to) INTO v_acked FROM oms.event_consumers c WHERE c.tenant_id = v_tenant;
			WITH doomed AS (
				SELECT e.id, e.created_at
				  FROM oms.events e
				 WHERE e.tenant_id = v_tenant AND e.id <= coalesce(v_acked, 9223372036854775807)
				 ORDER BY e.id
				 LIMIT batch - v_n),
			gone AS (
				DELETE FROM oms.events e USING doomed d
				 WHERE e.tenant_id = v_tenant AND e.id = d.id AND d.created_at < pg_catalog.now() - older_than
				RETURNING 1)
			SELECT pg_catalog.count(*) INTO v_k FROM gone;
			v_n := v_n + v_k;
			EXIT WHEN v_n >= batch;
		END LOOP;
		RETURN v_n;
	END IF;
	-- Per tenant, the oldest events that every consumer has acknowledged; of those, the ones
	-- older than the retention. Only the first batch by id is looked at, so that a round costs the
	-- batch, not the table (created_at grows with id, so the old ones come first).
	WITH doomed AS (
		SELECT d.tenant_id, d.id
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.tenant_id, e.id, e.created_at
			  FROM oms.events e
			 WHERE e.tenant_id = t.id
			   AND e.id <= coalesce((SELECT pg_catalog.min(c.acked_up_to) FROM oms.event_consumers c
									  WHERE c.tenant_id = t.id), 9223372036854775807)
			 ORDER BY e.id
			 LIMIT batch) d
		 WHERE d.created_at < pg_catalog.now() - older_than
		 LIMIT batch),
	gone AS (
		DELETE FROM oms.events e USING doomed d
		 WHERE e.tenant_id = d.tenant_id AND e.id = d.id
		RETURNING 1)
	SELECT pg_catalog.count(*) INTO v_n FROM gone;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.purge_events(interval, int) IS 'Deletes up to batch events (all tenants) that are older than older_than and acknowledged by every consumer of their tenant; returns how many (the background worker calls it with oms.event_retention)';

CREATE FUNCTION oms._events_to_announce(after bigint)
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH safe AS (
		SELECT pg_catalog.max(m.id) AS up_to
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.id FROM oms.events e
			 WHERE e.tenant_id = t.id AND e.id > after
			   AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
			 ORDER BY e.id DESC LIMIT 1) m)
	SELECT t.code, s.up_to
	  FROM safe s, oms.tenants t
	 WHERE s.up_to IS NOT NULL
	   AND EXISTS (SELECT FROM oms.events e WHERE e.tenant_id = t.id AND e.id > after AND e.id <= s.up_to)
	 ORDER BY t.code;
END
$$;
COMMENT ON FUNCTION oms._events_to_announce(bigint) IS 'Internal (worker, oms.notify_events = worker): the tenants with events after the given id up to the newest safe one, and that id';

-- What the worker announces, node by node. Event ids come from each node's own sequence, in the
-- node's own range (on Citus, node group g numbers from g x 2^48: oms._node_sequences), and the
-- horizon of an event holds among the events of its node only; so the position announced is kept
-- per node group: after[g + 1] (missing: nothing announced yet). On one node that is
-- oms._events_to_announce(after[1]). Each row's up_to is the newest safe event of the tenant's
-- node (group up_to >> 48).
CREATE FUNCTION oms._events_to_announce_by_node(after bigint[])
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	IF NOT oms._citus_distributed() THEN
		RETURN QUERY SELECT a.tenant, a.up_to FROM oms._events_to_announce(coalesce(after[1], 0)) a;
		RETURN;
	END IF;
	-- On Citus: per tenant (grouped on the distribution column, so each node answers for its own
	-- tenants, with its own snapshot), the first event after its node's position and the newest
	-- safe one; then per node, the newest safe event of all its tenants.
	RETURN QUERY
	WITH per_tenant AS (
		SELECT e.tenant_id, (e.id >> 48)::int AS node_group, pg_catalog.min(e.id) AS first_id,
			   pg_catalog.max(e.id) FILTER (WHERE e.xid_horizon OPERATOR(pg_catalog.<=)
											  pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) AS safe_id
		  FROM oms.events e
		 WHERE e.id > coalesce(after[(e.id >> 48)::int + 1], 0)
		 GROUP BY e.tenant_id, (e.id >> 48)::int),
	per_node AS (
		SELECT p.node_group, pg_catalog.max(p.safe_id) AS up_to FROM per_tenant p GROUP BY p.node_group)
	SELECT t.code, n.up_to
	  FROM per_tenant p
	  JOIN per_node n ON n.node_group = p.node_group AND p.first_id <= n.up_to
	  JOIN oms.tenants t ON t.id = p.tenant_id
	 ORDER BY t.code;
END
$$;
COMMENT ON FUNCTION oms._events_to_announce_by_node(bigint[]) IS 'Internal (worker, oms.notify_events = worker): the tenants with events after their node''s position (after[node group + 1]) up to the newest safe event of that node, and that id; on one node oms._events_to_announce(after[1])';

-- The part of every payload that says which order it is about, and whom to tell.
CREATE FUNCTION oms._order_header(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (SELECT jsonb_build_object(
					'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
					'customer', jsonb_strip_nulls(jsonb_build_object(
						'ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
						'phone', o.customer_phone)))
			  FROM oms.orders o
			  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
			 WHERE o.tenant_id = p_tenant AND o.id = p_order);
END
$$;
COMMENT ON FUNCTION oms._order_header(int, bigint) IS 'Internal: the order part of an event payload: order id and reference, channel, customer contact';
