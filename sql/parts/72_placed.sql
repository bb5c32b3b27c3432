-- What follows the capture of a new order, in the same transaction: place_order calls
-- oms._order_placed() once, after its lines are in and reserved, and only for an order it has
-- just created (a retried submission returns before). It writes the order's events, applies the
-- tenant's fraud rules (77_order_holds.sql) and releases the order when its channel releases
-- automatically and nothing blocks it (78_fulfilment.sql).
--
-- Hot path: one statement for the common case: one INSERT for the whole order (one row per
-- event, never one per line), built from one read of the order, its lines and their items, which
-- also says whether fraud rules or an automatic release apply.

CREATE FUNCTION oms._order_placed(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_o			record;
BEGIN
	-- The order is read first, then its events are written from it: as one statement (a CTE feeding
	-- the INSERT), Citus would send the CTE's rows to every node (README "Scale-out on Citus").
	SELECT jsonb_build_object(
				'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
				'customer', jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name,
																 'email', o.customer_email, 'phone', o.customer_phone))) AS header,
		   o.state, o.placed_at, o.currency, o.subtotal, o.shipping_amount, o.total, o.ship_to,
		   pl.code AS pickup_code, pl.name AS pickup_name, c.auto_release,
		   EXISTS (SELECT FROM oms.fraud_rules r WHERE r.tenant_id = p_tenant AND r.active) AS screen
	  INTO v_o
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	SELECT p_tenant, p_order, ev.type, ev.payload
	  FROM (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'unit_price', l.unit_price, 'state', l.state::text)
							 ORDER BY l.line_no) AS lines,
				   jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'promised_date', l.promised_date)
							 ORDER BY l.line_no) FILTER (WHERE l.state = 'backordered') AS backordered
			  FROM oms.order_lines l
			  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) l
	 CROSS JOIN LATERAL (VALUES
			('order_received',
			 v_o.header || jsonb_build_object(
				'state', v_o.state::text, 'placed_at', v_o.placed_at, 'currency', v_o.currency, 'subtotal', v_o.subtotal,
				'shipping_amount', v_o.shipping_amount, 'total', v_o.total, 'lines', l.lines)
			 || CASE WHEN v_o.pickup_code IS NOT NULL
					 THEN jsonb_build_object('pickup', jsonb_build_object('location', v_o.pickup_code, 'name', v_o.pickup_name))
					 ELSE jsonb_build_object('ship_to', v_o.ship_to) END),
			('line_backordered',
			 CASE WHEN l.backordered IS NOT NULL THEN v_o.header || jsonb_build_object('lines', l.backordered) END)
		) ev(type, payload)
	 WHERE ev.payload IS NOT NULL;

	IF v_o.screen THEN
		PERFORM oms._screen_order(p_tenant, p_order);
	END IF;
	IF v_o.auto_release THEN
		PERFORM oms._auto_release(p_tenant, p_order);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._order_placed(int, bigint) IS 'Internal: what follows the capture of a new order in place_order''s transaction: its events (order_received, line_backordered), fraud rules, automatic release';
