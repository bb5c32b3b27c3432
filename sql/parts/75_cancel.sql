-- Cancellation of a whole order: every reservation is released (in stock-lock order) and the
-- order and its open lines move to cancelled, with the reason in their history, and the event
-- "cancelled" tells the customer.

CREATE FUNCTION oms.cancel_order(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_state		oms.order_state;
	v_blocking	oms.line_state;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to cancel order %', cancel_order.order_id
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in oms.order_history.';
	END IF;
	SELECT o.state INTO v_state FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id
		FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(cancel_order.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	IF v_state = 'cancelled' THEN
		RETURN v_state;
	END IF;

	-- Goods that have left (or are staged for the customer) cannot be cancelled.
	SELECT l.state INTO v_blocking FROM oms.order_lines l
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id
		  AND (l.qty_shipped > 0 OR l.state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned'))
		ORDER BY l.line_no LIMIT 1;
	-- Nor can goods packed into a shipment that has not left yet: shipping it would find its
	-- reservation gone (ship it, and return it, instead).
	IF v_blocking IS NULL AND EXISTS (SELECT FROM oms.shipments s
									   WHERE s.tenant_id = v_tenant AND s.order_id = cancel_order.order_id
										 AND s.state = 'packed') THEN
		v_blocking := 'packed';
	END IF;
	IF v_blocking IS NOT NULL OR v_state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned', 'closed') THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it is %', cancel_order.order_id,
				coalesce(v_blocking::text, v_state::text)
			USING ERRCODE = '55000',
			      HINT = 'Only orders with nothing shipped can be cancelled; return what was shipped instead.';
	END IF;

	PERFORM pg_catalog.set_config('oms.reason', reason, true);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = cancel_order.order_id
			  ORDER BY x.supply_id IS NOT NULL, x.item_id, x.location_id, x.supply_id
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
	END LOOP;
	UPDATE oms.order_lines l SET state = 'cancelled', qty_cancelled = l.qty - l.qty_shipped
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id AND l.state <> 'cancelled';
	UPDATE oms.orders o SET state = 'cancelled'
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	PERFORM oms._release_order_capacity(v_tenant, cancel_order.order_id);
	-- The payload is read first, then written: on Citus a query of a distributed table cannot run
	-- inside another.
	<<event>>
	DECLARE
		v_payload	jsonb := oms._order_header(v_tenant, cancel_order.order_id);
	BEGIN
	v_payload := v_payload
		   || jsonb_build_object('reason', cancel_order.reason,
				'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
															  'qty', l.qty_cancelled) ORDER BY l.line_no)
							FROM oms.order_lines l
							JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						   WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id));
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	VALUES (v_tenant, cancel_order.order_id, 'cancelled', v_payload);
	END event;
	RETURN 'cancelled'::oms.order_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_order(bigint, text) IS 'Cancels an order with nothing shipped or packed: releases its reservations, moves order and lines to cancelled, writes the cancelled event; a no-op when already cancelled';
