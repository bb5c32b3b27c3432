-- Events that no API call raises, because they are about something that did not happen: an order
-- line whose promised date passed without it shipping (delayed), a click & collect order left at
-- the store past its pickup days (pickup_uncollected). The background worker calls
-- oms.raise_overdue_events() every round; each order is reported once per promised date, each
-- pickup once per staging. Orders locked by a running call are skipped until the next round.

CREATE TABLE oms.delay_notices (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	promised_date	date NOT NULL,
	notified_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, order_id, line_no, promised_date),
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines
);
COMMENT ON TABLE oms.delay_notices IS 'Lines reported late (event delayed) for a promised date; a new promised date can be reported again';

-- The lines that may be late: promised, and not all shipped or cancelled.
CREATE INDEX order_lines_promised_idx ON oms.order_lines (promised_date)
	WHERE promised_date IS NOT NULL AND qty_shipped + qty_cancelled < qty;

CREATE FUNCTION oms.raise_overdue_events(batch int DEFAULT 100) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n		int := 0;
	v_header	jsonb;
	r		record;
BEGIN
	IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Handle 1 to 10000 orders per call.';
	END IF;

	-- Late lines, per order (every tenant: the worker serves them all).
	FOR r IN
		SELECT l.tenant_id, l.order_id
		  FROM oms.order_lines l
		 WHERE l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
		   AND l.promised_date < current_date
		   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
		   AND NOT EXISTS (SELECT FROM oms.delay_notices d
							WHERE d.tenant_id = l.tenant_id AND d.order_id = l.order_id AND d.line_no = l.line_no
							  AND d.promised_date = l.promised_date)
		 GROUP BY l.tenant_id, l.order_id
		 ORDER BY l.tenant_id, l.order_id
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		-- The header is read first: on Citus a query of a distributed table cannot run inside another.
		v_header := oms._order_header(r.tenant_id, r.order_id);
		WITH late AS (
			INSERT INTO oms.delay_notices (tenant_id, order_id, line_no, promised_date)
			SELECT l.tenant_id, l.order_id, l.line_no, l.promised_date
			  FROM oms.order_lines l
			 WHERE l.tenant_id = r.tenant_id AND l.order_id = r.order_id
			   AND l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
			   AND l.promised_date < current_date
			   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
			ON CONFLICT DO NOTHING
			RETURNING line_no)
		INSERT INTO oms.events (tenant_id, order_id, type, payload)
		SELECT r.tenant_id, r.order_id, 'delayed',
			   v_header
			   || jsonb_build_object('lines', jsonb_agg(jsonb_build_object(
					'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty - l.qty_cancelled - l.qty_shipped,
					'promised_date', l.promised_date, 'state', l.state::text) ORDER BY l.line_no))
		  FROM late
		  JOIN oms.order_lines l ON l.tenant_id = r.tenant_id AND l.order_id = r.order_id AND l.line_no = late.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		HAVING count(*) > 0;
		v_n := v_n + 1;
	END LOOP;

	-- Pickups waiting past their date.
	FOR r IN
		SELECT p.tenant_id, p.order_id, p.ready_at, p.collect_by, l.code, l.name
		  FROM oms.pickups p
		  JOIN oms.locations l ON l.tenant_id = p.tenant_id AND l.id = p.location_id
		  JOIN oms.orders o ON o.tenant_id = p.tenant_id AND o.id = p.order_id
		 WHERE p.collected_at IS NULL AND p.uncollected_at IS NULL AND p.collect_by < now()
		   AND o.state NOT IN ('cancelled', 'closed')
		 ORDER BY p.collect_by
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		UPDATE oms.pickups p SET uncollected_at = now() WHERE p.tenant_id = r.tenant_id AND p.order_id = r.order_id;
		PERFORM oms._event(r.tenant_id, r.order_id, 'pickup_uncollected',
			jsonb_build_object('store', jsonb_build_object('location', r.code, 'name', r.name),
							   'ready_at', r.ready_at, 'collect_by', r.collect_by));
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.raise_overdue_events(int) IS 'Writes the events nobody''s call raises (every tenant): delayed for orders with lines past their promised date and not shipped, pickup_uncollected for click & collect orders past their store''s pickup days; each once; at most batch orders of each kind; returns how many orders it reported (the background worker calls it every round)';
