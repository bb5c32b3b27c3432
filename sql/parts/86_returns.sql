-- Returns: an RMA for shipped units (within the channel's return window), received at a location
-- with a disposition per line (restock: sellable again; damaged: recorded, not sellable; vendor:
-- sent back to the supplier), the refund computed on receipt and paid through oms.refund_payment
-- unless the channel refunds outside; exchanges: a new order for replacement items, paid by the
-- value of the returned units.
--
-- Refund policy, per receipt: the units received (not exchanged) at their line's unit price,
-- rounded to the currency; plus the order's shipping charge once, when after this receipt every
-- unit of the order has come back or was cancelled (and nothing of it was exchanged). What is refunded through the payments is at
-- most what was captured and not refunded yet; the rest stays recorded as due (refund_due).

CREATE TABLE oms.returns (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	order_id			bigint NOT NULL,
	reason				text NOT NULL CHECK (reason <> '' AND length(reason) <= 1000),
	state				text NOT NULL DEFAULT 'authorized' CHECK (state IN ('authorized', 'partially_received', 'received')),
	refund_amount		numeric NOT NULL DEFAULT 0 CHECK (refund_amount >= 0),
	refunded			numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0),
	shipping_refunded	boolean NOT NULL DEFAULT false,
	exchange_order_id	bigint,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by			text NOT NULL,
	received_at			timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, exchange_order_id) REFERENCES oms.orders,
	CONSTRAINT returns_refunded_within_amount CHECK (refunded <= refund_amount)
);
CREATE INDEX returns_order_idx ON oms.returns (tenant_id, order_id);
COMMENT ON TABLE oms.returns IS 'Return authorisations (RMA; the id is the RMA number): reason, state, refund computed on receipt and the part refunded through the payments, the exchange order if any';
COMMENT ON COLUMN oms.returns.refund_amount IS 'Refund due for what was received (units at their price, plus shipping when the whole order came back)';
COMMENT ON COLUMN oms.returns.refunded IS 'Part of refund_amount refunded through oms.refund_payment (0 when the channel refunds outside)';

CREATE TABLE oms.return_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	return_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	qty_received	int NOT NULL DEFAULT 0,
	qty_exchanged	int NOT NULL DEFAULT 0,
	restocked		int NOT NULL DEFAULT 0 CHECK (restocked >= 0),
	damaged			int NOT NULL DEFAULT 0 CHECK (damaged >= 0),
	to_vendor		int NOT NULL DEFAULT 0 CHECK (to_vendor >= 0),
	exchange_sku	text,
	PRIMARY KEY (tenant_id, return_id, line_no),
	FOREIGN KEY (tenant_id, return_id) REFERENCES oms.returns,
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines,
	CONSTRAINT return_lines_received_within_qty CHECK (qty_received BETWEEN 0 AND qty),
	CONSTRAINT return_lines_exchanged_within_qty CHECK (qty_exchanged BETWEEN 0 AND qty),
	CONSTRAINT return_lines_dispositions CHECK (restocked + damaged + to_vendor = qty_received)
);
COMMENT ON TABLE oms.return_lines IS 'Units of order lines on a return: authorised, received (restocked, damaged, sent to the vendor), exchanged';

-- When the order's goods reached the customer (latest delivery or collection; shipment when not
-- delivered): the start of the return window.
CREATE FUNCTION oms._delivered_at(p_tenant int, p_order bigint) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT max(t) FROM (
		SELECT coalesce(s.delivered_at, s.shipped_at) AS t FROM oms.shipments s
		 WHERE s.tenant_id = p_tenant AND s.order_id = p_order AND s.shipped_at IS NOT NULL
		UNION ALL
		SELECT p.collected_at FROM oms.pickups p WHERE p.tenant_id = p_tenant AND p.order_id = p_order) x);
END
$$;
COMMENT ON FUNCTION oms._delivered_at(int, bigint) IS 'Internal: when an order''s goods last reached the customer (delivery, collection, or shipment when not delivered)';

CREATE FUNCTION oms.create_return(order_id bigint, lines jsonb, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_days		int;
	v_since		timestamptz;
	v_id		bigint;
	v_req		record;
	l			record;
	v_pending	int;
BEGIN
	o := oms._lock_order(v_tenant, create_return.order_id);
	PERFORM oms._reason(reason, 'create a return');
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines to return are required'
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 1}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines to return', ARRAY['line_no', 'qty']);

	SELECT c.return_days INTO v_days FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id;
	v_since := oms._delivered_at(v_tenant, o.id);
	IF v_days = 0 THEN
		RAISE EXCEPTION 'order % cannot be returned: its channel takes no returns', o.id
			USING ERRCODE = 'OM010', HINT = 'The channel''s return_days is 0.';
	END IF;
	IF v_since IS NOT NULL AND now() > v_since + make_interval(days => v_days) THEN
		RAISE EXCEPTION 'the return window of order % has closed', o.id
			USING ERRCODE = 'OM010',
			      DETAIL = format('Delivered %s; returns were accepted for %s days, until %s.', to_char(v_since, 'YYYY-MM-DD'),
							   v_days, to_char(v_since + make_interval(days => v_days), 'YYYY-MM-DD')),
			      HINT = 'The channel''s return_days sets the window.';
	END IF;

	INSERT INTO oms.returns (tenant_id, order_id, reason, created_by) VALUES (v_tenant, o.id, reason, oms._actor())
		RETURNING id INTO v_id;
	FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty
				   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
	LOOP
		SELECT x.state, x.qty_shipped, x.qty_returned INTO l FROM oms.order_lines x
			WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = v_req.line_no;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'order % has no line %', o.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
		END IF;
		IF l.state NOT IN ('shipped', 'delivered', 'partially_returned') THEN
			RAISE EXCEPTION 'line % of order % cannot be returned: it is %', v_req.line_no, o.id, l.state
				USING ERRCODE = '55000', HINT = 'Only shipped or delivered lines are returned.';
		END IF;
		-- Units already on another return and not received yet count as returning.
		SELECT coalesce(sum(rl.qty - rl.qty_received), 0) INTO v_pending FROM oms.return_lines rl
			WHERE rl.tenant_id = v_tenant AND rl.order_id = o.id AND rl.line_no = v_req.line_no AND rl.return_id <> v_id;
		IF v_req.qty > l.qty_shipped - l.qty_returned - v_pending THEN
			RAISE EXCEPTION 'cannot return % units of line % of order %', v_req.qty, v_req.line_no, o.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('Shipped %s, returned %s, on open returns %s: at most %s can be returned.',
									   l.qty_shipped, l.qty_returned, v_pending, l.qty_shipped - l.qty_returned - v_pending),
				      HINT = 'Return at most what was shipped and has not come back.';
		END IF;
		INSERT INTO oms.return_lines (tenant_id, return_id, order_id, line_no, qty)
			VALUES (v_tenant, v_id, o.id, v_req.line_no, v_req.qty);
	END LOOP;
	PERFORM oms._event(v_tenant, o.id, 'return_created',
		jsonb_build_object('rma', v_id, 'reason', reason,
			'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', rl.line_no, 'sku', i.sku, 'name', i.name, 'qty', rl.qty)
									   ORDER BY rl.line_no)
						FROM oms.return_lines rl
						JOIN oms.order_lines l2 ON l2.tenant_id = rl.tenant_id AND l2.order_id = rl.order_id AND l2.line_no = rl.line_no
						JOIN oms.items i ON i.tenant_id = l2.tenant_id AND i.id = l2.item_id
					   WHERE rl.tenant_id = v_tenant AND rl.return_id = v_id)));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.create_return(bigint, jsonb, text) IS 'Authorises a return (RMA) of shipped units [{"line_no": 1, "qty": 1}] with a reason, within the channel''s return window (OM010 after it); more than shipped, not returned and not on another open return: OM005; event return_created; returns the RMA id';

-- The return, its order locked first; unknown return: 22023.
CREATE FUNCTION oms._lock_return(p_tenant int, p_return bigint) RETURNS oms.returns
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_order		bigint;
	r			oms.returns;
BEGIN
	SELECT x.order_id INTO v_order FROM oms.returns x WHERE x.tenant_id = p_tenant AND x.id = p_return;
	IF v_order IS NULL THEN
		RAISE EXCEPTION 'unknown return %', coalesce(p_return::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Returns are created by oms.create_return(); its result is the RMA id.';
	END IF;
	PERFORM oms._lock_order(p_tenant, v_order);
	SELECT * INTO r FROM oms.returns x WHERE x.tenant_id = p_tenant AND x.id = p_return FOR UPDATE;
	RETURN r;
END
$$;
COMMENT ON FUNCTION oms._lock_return(int, bigint) IS 'Internal: locks the order of a return, then the return, and returns it; unknown return: 22023';

CREATE FUNCTION oms.receive_return(rma_id bigint, lines jsonb) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_minor		int;
	v_outside	boolean;
	v_req		record;
	rl			record;
	v_loc		int;
	v_on_hand	bigint;
	v_refund	numeric := 0;
	v_shipping	boolean := false;
	v_paid		numeric := 0;
	v_refundable numeric;
	v_received	jsonb := '[]';
	v_state		oms.order_state;
BEGIN
	r := oms._lock_return(v_tenant, receive_return.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines received are required'
			USING ERRCODE = '22023',
			      HINT = 'For example [{"line_no": 1, "qty": 1, "disposition": "restock", "location": "WH-1"}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines received', ARRAY['line_no', 'qty', 'disposition', 'location']);
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT ch.refunds_outside INTO v_outside FROM oms.channels ch WHERE ch.tenant_id = v_tenant AND ch.id = o.channel_id;

	PERFORM set_config('oms.reason', 'return ' || r.id || ' received', true);
	-- Lines in item order: restocking locks stock rows in (item, location) order.
	FOR v_req IN
		SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty,
			   x.v -> 'disposition' AS disposition, x.v -> 'location' AS location, ol.item_id
		  FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i)
		  LEFT JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = r.order_id
			   AND ol.line_no = (x.v -> 'line_no')::numeric::int
		 ORDER BY ol.item_id, x.i
	LOOP
		IF jsonb_typeof(v_req.disposition) IS DISTINCT FROM 'string'
		   OR v_req.disposition #>> '{}' NOT IN ('restock', 'damaged', 'vendor') THEN
			RAISE EXCEPTION 'invalid disposition % of line % of return %', coalesce(v_req.disposition::text, 'nothing'), v_req.line_no, r.id
				USING ERRCODE = '22023', HINT = 'Each line received is "restock" (sellable again, at "location"), "damaged" or "vendor".';
		END IF;
		SELECT x.* INTO rl FROM oms.return_lines x
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no FOR UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Receive the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty - rl.qty_received THEN
			RAISE EXCEPTION 'cannot receive % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('The return authorised %s, %s received already: at most %s can be received.',
									   rl.qty, rl.qty_received, rl.qty - rl.qty_received),
				      HINT = 'Create another return for more units.';
		END IF;

		IF v_req.disposition #>> '{}' = 'restock' THEN
			IF v_req.location IS NOT NULL THEN
				IF jsonb_typeof(v_req.location) <> 'string' THEN
					RAISE EXCEPTION 'invalid location % of line % of return %', v_req.location, v_req.line_no, r.id
						USING ERRCODE = '22023', HINT = 'A location code, e.g. "WH-1".';
				END IF;
				v_loc := oms._location_id(v_tenant, v_req.location #>> '{}');
			ELSE
				-- Where the line shipped from.
				SELECT s.location_id INTO v_loc FROM oms.shipment_lines sl
				  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
				 WHERE sl.tenant_id = v_tenant AND sl.order_id = r.order_id AND sl.line_no = v_req.line_no
				 ORDER BY s.id DESC LIMIT 1;
				v_loc := coalesce(v_loc, (SELECT ol.location_id FROM oms.order_lines ol
										   WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no));
			END IF;
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_req.item_id, v_loc, v_req.qty)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_on_hand;
			INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
				VALUES (v_tenant, v_req.item_id, v_loc, 'return', v_req.qty, v_on_hand,
						'returned: ' || r.reason, 'return ' || r.id, oms._actor());
		END IF;

		UPDATE oms.return_lines x
		   SET qty_received = x.qty_received + v_req.qty,
			   restocked = x.restocked + CASE WHEN v_req.disposition #>> '{}' = 'restock' THEN v_req.qty ELSE 0 END,
			   damaged = x.damaged + CASE WHEN v_req.disposition #>> '{}' = 'damaged' THEN v_req.qty ELSE 0 END,
			   to_vendor = x.to_vendor + CASE WHEN v_req.disposition #>> '{}' = 'vendor' THEN v_req.qty ELSE 0 END
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		UPDATE oms.order_lines x
		   SET qty_returned = x.qty_returned + v_req.qty,
			   state = CASE WHEN x.qty_returned + v_req.qty >= x.qty_shipped THEN 'returned' ELSE 'partially_returned' END::oms.line_state
		 WHERE x.tenant_id = v_tenant AND x.order_id = r.order_id AND x.line_no = v_req.line_no;

		-- Exchanged units are paid for by the exchange order, not refunded.
		-- The units' share of the line's gross (its tax included on a channel with net prices).
		v_refund := v_refund + (SELECT oms._units_value(ol.gross, ol.qty, ol.unit_price,
														greatest(v_req.qty - greatest(rl.qty_exchanged - rl.qty_received, 0), 0), v_minor)
								  FROM oms.order_lines ol
								 WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no);
		v_received := v_received || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty,
													   'disposition', v_req.disposition #>> '{}');
	END LOOP;

	-- Shipping comes back once, with the last units of the order.
	IF o.shipping_amount > 0
	   AND NOT EXISTS (SELECT FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.order_id = o.id
						 AND (x.shipping_refunded OR x.exchange_order_id IS NOT NULL))
	   AND NOT EXISTS (SELECT FROM oms.order_lines ol WHERE ol.tenant_id = v_tenant AND ol.order_id = o.id
						 AND ol.qty_returned + ol.qty_cancelled < ol.qty) THEN
		v_refund := v_refund + coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount);
		v_shipping := true;
	END IF;

	IF v_refund > 0 AND NOT v_outside THEN
		SELECT coalesce(sum(p.captured - p.refunded), 0) INTO v_refundable FROM oms.payments p
			WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
		v_paid := least(v_refund, v_refundable);
		IF v_paid > 0 THEN
			PERFORM oms.refund_payment(o.id, v_paid, 'return ' || r.id);
		END IF;
	ELSIF v_refund > 0 THEN
		-- The channel refunds outside oms: the invoiced goods still get their credit note.
		PERFORM oms._credit_refund(v_tenant, o.id, v_refund, 'return ' || r.id);
	END IF;
	UPDATE oms.returns x
	   SET refund_amount = x.refund_amount + v_refund, refunded = x.refunded + v_paid,
		   shipping_refunded = x.shipping_refunded OR v_shipping, received_at = now(),
		   state = CASE WHEN (SELECT bool_and(y.qty_received = y.qty) FROM oms.return_lines y
							   WHERE y.tenant_id = v_tenant AND y.return_id = r.id) THEN 'received' ELSE 'partially_received' END
	 WHERE x.tenant_id = v_tenant AND x.id = r.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'return_received',
		jsonb_build_object('rma', r.id,
			'lines', (SELECT jsonb_agg(x.v || jsonb_build_object('sku', i.sku, 'name', i.name) ORDER BY (x.v -> 'line_no')::numeric::int)
						FROM jsonb_array_elements(v_received) x(v)
						JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = o.id AND ol.line_no = (x.v -> 'line_no')::numeric::int
						JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = ol.item_id),
			'refund', v_refund, 'refunded', v_paid, 'refund_due', v_refund - v_paid, 'shipping_refunded', v_shipping,
			'currency', o.currency, 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_refund;
END
$$;
COMMENT ON FUNCTION oms.receive_return(bigint, jsonb) IS 'Receives units of a return [{"line_no": 1, "qty": 1, "disposition": "restock"|"damaged"|"vendor", "location": "WH-1"}]: restock adds to on_hand (movement "return", at the given location or where the line shipped from), the lines move to partially_returned/returned, the refund is computed (units at their price, plus shipping when the whole order is back), paid through oms.refund_payment up to what was captured unless the channel refunds outside; more than the return authorised and not received: OM005; returns the refund amount';

CREATE FUNCTION oms.exchange(rma_id bigint, lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_req		record;
	rl			record;
	v_payload	jsonb;
	v_lines		jsonb := '[]';
	v_new		bigint;
	v_total		numeric;
BEGIN
	r := oms._lock_return(v_tenant, exchange.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF r.exchange_order_id IS NOT NULL THEN
		RETURN r.exchange_order_id;		-- exchanged already: a retried call returns the same order
	END IF;
	IF r.state <> 'authorized' THEN
		RAISE EXCEPTION 'return % cannot be exchanged: it is %', r.id, r.state
			USING ERRCODE = '55000', HINT = 'An exchange is made before the returned units are received (and refunded).';
	END IF;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines to exchange are required'
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 1, "sku": "TEE-L"}]: returned line 1 replaced by TEE-L.';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines to exchange', ARRAY['line_no', 'qty', 'sku']);

	-- Each replacement is priced as the returned unit it replaces.
	FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty, x.v -> 'sku' AS sku
				   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
	LOOP
		SELECT x.qty, x.qty_exchanged, i.sku AS old_sku, ol.unit_price INTO rl
		  FROM oms.return_lines x
		  JOIN oms.order_lines ol ON ol.tenant_id = x.tenant_id AND ol.order_id = x.order_id AND ol.line_no = x.line_no
		  JOIN oms.items i ON i.tenant_id = ol.tenant_id AND i.id = ol.item_id
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Exchange the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty THEN
			RAISE EXCEPTION 'cannot exchange % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005', DETAIL = format('The return authorised %s.', rl.qty),
				      HINT = 'Exchange at most the units being returned.';
		END IF;
		IF v_req.sku IS NOT NULL AND jsonb_typeof(v_req.sku) <> 'string' THEN
			RAISE EXCEPTION 'invalid sku % of line % to exchange', v_req.sku, v_req.line_no
				USING ERRCODE = '22023', HINT = 'The SKU of the replacement; leave it out for the same item.';
		END IF;
		UPDATE oms.return_lines x SET qty_exchanged = v_req.qty, exchange_sku = coalesce(v_req.sku #>> '{}', rl.old_sku)
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		v_lines := v_lines || jsonb_build_object('sku', coalesce(v_req.sku #>> '{}', rl.old_sku), 'qty', v_req.qty,
												 'unit_price', rl.unit_price);
	END LOOP;

	-- The new order, routed and reserved like any order, linked to the return.
	v_payload := jsonb_strip_nulls(jsonb_build_object(
		'channel', (SELECT c.code FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id),
		'external_id', o.external_id || '/RMA-' || r.id,
		'currency', o.currency,
		'customer', nullif(jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'email', o.customer_email,
															  'name', o.customer_name, 'phone', o.customer_phone)), '{}'),
		'ship_to', o.ship_to,
		'pickup', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id),
		'attributes', jsonb_build_object('exchange_for_order', o.id, 'exchange_for_return', r.id),
		'lines', v_lines));
	v_new := oms.place_order(v_payload);
	UPDATE oms.returns x SET exchange_order_id = v_new WHERE x.tenant_id = v_tenant AND x.id = r.id;

	-- Paid by the returned value: an authorisation whose reference is the return.
	SELECT x.total INTO v_total FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = v_new;
	IF v_total > 0 THEN
		PERFORM oms.authorize_payment(v_new, v_total, 'return:' || r.id);
	END IF;
	PERFORM oms._event(v_tenant, o.id, 'exchange_created',
		jsonb_build_object('rma', r.id, 'exchange_order_id', v_new, 'exchange_order_ref', o.external_id || '/RMA-' || r.id,
						   'lines', v_lines));
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms.exchange(bigint, jsonb) IS 'Creates the replacement order of a return not yet received, [{"line_no": 1, "qty": 1, "sku": "TEE-L"}] (sku omitted: the same item), each replacement priced as the unit it replaces, placed (routed, reserved) like any order as <external_id>/RMA-<id>, paid by an authorisation of the returned value (reference return:<id>); the exchanged units are not refunded on receipt; returns the new order id';
