-- make bench: helpers of the lifecycle runs (psql script, after helpers.sql and load.sql):
-- queues of packed shipments and of return authorisations, each filled before its run with
-- orders of its own (external ids sh-N), so that no two calls work on the same one; and a filler
-- of the outbox for the consumer's drain. As with the cancel queue, a sequence hands out queue
-- positions without locks, and bench.sh runs exactly as many calls as the queue holds.

\set ON_ERROR_STOP on

CREATE TABLE bench.ship_queue (n bigint PRIMARY KEY, shipment_id bigint NOT NULL);
CREATE SEQUENCE bench.ship_seq;
CREATE TABLE bench.return_queue (n bigint PRIMARY KEY, rma_id bigint NOT NULL, lines jsonb NOT NULL);
CREATE SEQUENCE bench.return_seq;

-- Places p_orders orders of 2 lines (SKU-k at its home, so one package each), authorises,
-- releases and packs them; queues the shipments. Returns how many.
CREATE FUNCTION bench.fill_ship_queue(p_orders int, p_skus int) RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	v_order	bigint;
	v_k		int;
	v_n		bigint := 0;
BEGIN
	TRUNCATE bench.ship_queue;
	PERFORM setval('bench.ship_seq', 1, false);
	FOR i IN 1..p_orders LOOP
		v_k := 1 + (i * 7919) % (p_skus - 4);		-- SKU-k and SKU-(k+4) share their home
		v_order := oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'sh-' || i || '-' || txid_current(),
			'customer', jsonb_build_object('ref', 'C' || i, 'email', 'c' || i || '@example.com'),
			'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || v_k, 'qty', 1, 'unit_price', 19.90),
									   jsonb_build_object('sku', 'SKU-' || (v_k + 4), 'qty', 2, 'unit_price', 9.50))));
		PERFORM oms.authorize_payment(v_order, (SELECT o.total FROM oms.orders o
												  WHERE o.tenant_id = oms.current_tenant_id() AND o.id = v_order), 'psp-' || v_order);
		PERFORM oms.release_order(v_order);
		v_n := v_n + 1;
		INSERT INTO bench.ship_queue (n, shipment_id)
		SELECT v_n, oms.pack(v_order, l.code)
		  FROM oms.order_lines ol JOIN oms.locations l ON l.tenant_id = ol.tenant_id AND l.id = ol.location_id
		 WHERE ol.tenant_id = oms.current_tenant_id() AND ol.order_id = v_order AND ol.line_no = 1;
	END LOOP;
	RETURN v_n;
END
$$;

-- Ships the next packed shipment of the queue; 'empty' when the queue ran out.
CREATE FUNCTION bench.ship_next() RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	v_n		bigint := nextval('bench.ship_seq');	-- once: in the WHERE clause it would run per row
	v_ship	bigint;
BEGIN
	SELECT q.shipment_id INTO v_ship FROM bench.ship_queue q WHERE q.n = v_n;
	IF v_ship IS NULL THEN
		RETURN 'empty';
	END IF;
	RETURN oms.ship(v_ship, 'dhl.standard', 'BENCH-' || v_ship)::text;
END
$$;

-- Return authorisations for the orders the ship run shipped (all their units); returns how many.
CREATE FUNCTION bench.fill_return_queue() RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	r		record;
	v_n		bigint := 0;
BEGIN
	TRUNCATE bench.return_queue;
	PERFORM setval('bench.return_seq', 1, false);
	FOR r IN SELECT o.id, jsonb_agg(jsonb_build_object('line_no', l.line_no, 'qty', l.qty_shipped) ORDER BY l.line_no) AS lines
			   FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
			  WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id LIKE 'sh-%' AND o.state::text = 'shipped'
			  GROUP BY o.id ORDER BY o.id
	LOOP
		v_n := v_n + 1;
		INSERT INTO bench.return_queue (n, rma_id, lines)
		SELECT v_n, oms.create_return(r.id, r.lines, 'bench'),
			   (SELECT jsonb_agg(x || '{"disposition": "restock"}') FROM jsonb_array_elements(r.lines) x);
	END LOOP;
	RETURN v_n;
END
$$;

-- Receives the next return of the queue (every unit restocked): its refund, or 'empty'.
CREATE FUNCTION bench.receive_next() RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	v_n		bigint := nextval('bench.return_seq');
	q		record;
BEGIN
	SELECT * INTO q FROM bench.return_queue x WHERE x.n = v_n;
	IF q.rma_id IS NULL THEN
		RETURN 'empty';
	END IF;
	RETURN oms.receive_return(q.rma_id, q.lines)::text;
END
$$;

-- The drain run: consumer bench-drain starts at the newest event, then p_n events of the size of
-- an order_received of 3 lines are written for it to read.
CREATE FUNCTION bench.fill_events(p_n int) RETURNS bigint
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM oms.drop_event_consumer('bench-drain');
	INSERT INTO oms.event_consumers (consumer, acked_up_to)
		VALUES ('bench-drain', coalesce((SELECT max(e.id) FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id()), 0));
	INSERT INTO oms.events (order_id, type, payload)
	SELECT g, 'order_received', jsonb_build_object(
			'order_id', g, 'order_ref', 'drain-' || g, 'channel', 'web',
			'customer', jsonb_build_object('ref', 'C' || g, 'email', 'c' || g || '@example.com', 'name', 'Customer ' || g),
			'state', 'allocated', 'placed_at', now(), 'currency', 'EUR', 'subtotal', 58.39, 'shipping_amount', 4.90,
			'total', 63.29, 'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(
				jsonb_build_object('line_no', 1, 'sku', 'SKU-1', 'name', 'Item 1', 'qty', 1, 'unit_price', 19.90, 'state', 'allocated'),
				jsonb_build_object('line_no', 2, 'sku', 'SKU-2', 'name', 'Item 2', 'qty', 3, 'unit_price', 9.50, 'state', 'allocated'),
				jsonb_build_object('line_no', 3, 'sku', 'SKU-3', 'name', 'Item 3', 'qty', 2, 'unit_price', 4.99, 'state', 'allocated')))
	  FROM generate_series(1, p_n) g;
	RETURN p_n;
END
$$;

-- The invoice run (issue 11): one oms.issue_invoice per order that the ship run shipped, each
-- session on orders of its own; all of them take the one counter row of the tenant's series.
CREATE TABLE bench.invoice_queue (n bigint PRIMARY KEY, order_id bigint NOT NULL);
CREATE SEQUENCE bench.invoice_seq;

CREATE FUNCTION bench.fill_invoice_queue() RETURNS bigint
	LANGUAGE plpgsql
AS $$
BEGIN
	TRUNCATE bench.invoice_queue;
	PERFORM setval('bench.invoice_seq', 1, false);
	INSERT INTO bench.invoice_queue (n, order_id)
	SELECT row_number() OVER (ORDER BY o.id), o.id
	  FROM oms.orders o
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id LIKE 'sh-%'
	   AND EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id AND l.qty_shipped > 0)
	   AND NOT EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id);
	RETURN (SELECT count(*) FROM bench.invoice_queue);
END
$$;

CREATE FUNCTION bench.invoice_next() RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	v_n		bigint := nextval('bench.invoice_seq');
	v_order	bigint;
BEGIN
	SELECT q.order_id INTO v_order FROM bench.invoice_queue q WHERE q.n = v_n;
	IF v_order IS NULL THEN
		RETURN 'empty';
	END IF;
	RETURN oms.issue_invoice(v_order)::text;
END
$$;
