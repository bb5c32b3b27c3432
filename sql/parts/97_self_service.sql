-- Customer self-service (issue 11): what a storefront's "where is my order" page shows, and a
-- return started by the customer. The storefront's role oms_storefront may execute these two
-- functions and nothing else: they run as SECURITY DEFINER (as the extension's owner) with a
-- pinned search_path, find the order by channel, external id and the customer's e-mail
-- (compared trimmed and case-insensitively), and answer about that order only. An unknown order,
-- an unknown channel and a wrong e-mail give the same answer, {"found": false, ...}, so that nobody
-- can learn which orders exist.
--
-- This part comes after 90_security.sql, so it takes EXECUTE back from PUBLIC itself.

-- The order of a channel, reference and e-mail; NULL when any of them does not match.
CREATE FUNCTION oms._customer_order(p_tenant int, p_channel text, p_external_id text, p_email text) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (
	SELECT o.id
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = p_tenant AND c.code = p_channel AND o.external_id = p_external_id
	   AND p_email IS NOT NULL AND btrim(p_email) <> ''
	   AND lower(btrim(o.customer_email)) = lower(btrim(p_email)));
END
$$;
COMMENT ON FUNCTION oms._customer_order(int, text, text, text) IS 'Internal: the id of the order with this channel, external id and customer e-mail (trimmed, case-insensitive), NULL when any does not match';

-- A state in the customer's words.
CREATE FUNCTION oms._plain_state(p_state text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog, pg_temp
	RETURN CASE p_state
		WHEN 'created' THEN 'received'
		WHEN 'on_hold' THEN 'being checked'
		WHEN 'confirmed' THEN 'confirmed'
		WHEN 'backordered' THEN 'waiting for stock'
		WHEN 'preordered' THEN 'pre-ordered'
		WHEN 'partially_allocated' THEN 'partly waiting for stock'
		WHEN 'allocated' THEN 'confirmed'
		WHEN 'released' THEN 'being prepared'
		WHEN 'picked' THEN 'being prepared'
		WHEN 'packed' THEN 'packed, about to ship'
		WHEN 'ready_for_pickup' THEN 'ready for pickup'
		WHEN 'partially_shipped' THEN 'partly shipped'
		WHEN 'shipped' THEN 'shipped'
		WHEN 'in_transit' THEN 'on its way'
		WHEN 'out_for_delivery' THEN 'out for delivery'
		WHEN 'exception' THEN 'delayed by the carrier'
		WHEN 'delivered' THEN 'delivered'
		WHEN 'partially_returned' THEN 'partly returned'
		WHEN 'returned' THEN 'returned'
		WHEN 'rejected' THEN 'could not be fulfilled'
		WHEN 'cancelled' THEN 'cancelled'
		WHEN 'closed' THEN 'completed'
		ELSE p_state END;
COMMENT ON FUNCTION oms._plain_state(text) IS 'Internal: an order, line or shipment state in the customer''s words';

CREATE FUNCTION oms._not_found() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog, pg_temp
	RETURN '{"found": false, "message": "No order matches this order number and e-mail address."}'::jsonb;
COMMENT ON FUNCTION oms._not_found() IS 'Internal: the one answer self-service gives for an unknown order, channel or a wrong e-mail';

-- The status of an order as the customer sees it.
CREATE FUNCTION oms._customer_view(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	o			oms.orders;
	v_days		int;
	v_since		timestamptz;
	v_open		boolean;
	v_editable	boolean;
	v_returnable bigint;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT c.return_days INTO v_days FROM oms.channels c WHERE c.tenant_id = p_tenant AND c.id = o.channel_id;
	v_since := oms._delivered_at(p_tenant, o.id);
	v_open := o.state NOT IN ('cancelled', 'closed');
	SELECT bool_and(l.state = 'cancelled' OR oms._editable(l.state)) INTO v_editable
	  FROM oms.order_lines l WHERE l.tenant_id = p_tenant AND l.order_id = o.id;
	SELECT coalesce(sum(l.qty_shipped - l.qty_returned
						- coalesce((SELECT sum(rl.qty - rl.qty_received) FROM oms.return_lines rl
									 WHERE rl.tenant_id = l.tenant_id AND rl.order_id = l.order_id AND rl.line_no = l.line_no), 0)), 0)
	  INTO v_returnable
	  FROM oms.order_lines l
	 WHERE l.tenant_id = p_tenant AND l.order_id = o.id AND l.state IN ('shipped', 'delivered', 'partially_returned');

	RETURN jsonb_strip_nulls(jsonb_build_object(
		'found', true,
		'order', o.external_id,
		'status', oms._plain_state(o.state::text),
		'placed_at', o.placed_at,
		'currency', o.currency,
		'total', o.total,
		'lines', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
						'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
						'status', oms._plain_state(l.state::text),
						'shipped', nullif(l.qty_shipped, 0), 'delivered', nullif(l.qty_delivered, 0),
						'returned', nullif(l.qty_returned, 0), 'cancelled', nullif(l.qty_cancelled, 0),
						'promised_date', CASE WHEN l.qty_shipped < l.qty - l.qty_cancelled THEN l.promised_date END))
					ORDER BY l.line_no)
					FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
				   WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
		'shipments', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
						'package', oms._package_no(p_tenant, s), 'status', oms._plain_state(s.state),
						'carrier', s.carrier, 'service', s.service, 'tracking', s.tracking,
						'shipped_at', s.shipped_at, 'delivered_at', s.delivered_at,
						'last_scan', (SELECT jsonb_build_object('status', oms._plain_state(t.status), 'at', t.occurred_at,
																'location', t.payload ->> 'location')
										FROM oms.tracking_events t WHERE t.tenant_id = s.tenant_id AND t.shipment_id = s.id
									   ORDER BY t.occurred_at DESC LIMIT 1),
						'items', (SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'qty', sl.qty) ORDER BY sl.line_no)
									FROM oms.shipment_lines sl
									JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
									JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
								   WHERE sl.tenant_id = s.tenant_id AND sl.shipment_id = s.id))) ORDER BY s.id)
						FROM oms.shipments s WHERE s.tenant_id = p_tenant AND s.order_id = o.id),
		'pickup', (SELECT jsonb_build_object('store', l.name, 'city', l.city)
					 FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id),
		'delivered_at', (SELECT max(s.delivered_at) FROM oms.shipments s WHERE s.tenant_id = p_tenant AND s.order_id = o.id),
		'you_can', jsonb_build_object(
			'cancel', v_open AND coalesce(v_editable, false),
			'change_address', v_open AND coalesce(v_editable, false) AND o.pickup_location_id IS NULL,
			'return', v_returnable > 0 AND v_days > 0
					  AND (v_since IS NULL OR now() <= v_since + make_interval(days => v_days)),
			'return_until', CASE WHEN v_returnable > 0 AND v_days > 0 AND v_since IS NOT NULL
								 THEN to_char((v_since + make_interval(days => v_days)) AT TIME ZONE 'UTC', 'YYYY-MM-DD') END)));
END
$$;
COMMENT ON FUNCTION oms._customer_view(int, bigint) IS 'Internal: an order as its customer sees it: status in plain words, lines, shipments with carrier, tracking and last scan, delivery, and what the customer may still do (cancel, change address, return and until when)';

CREATE FUNCTION oms.order_status(channel text, external_id text, email text) RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		bigint := oms._customer_order(v_tenant, order_status.channel, order_status.external_id, order_status.email);
BEGIN
	IF v_order IS NULL THEN
		RETURN oms._not_found();
	END IF;
	RETURN oms._customer_view(v_tenant, v_order);
END
$$;
COMMENT ON FUNCTION oms.order_status(text, text, text) IS 'Self-service "where is my order": the order of channel and external id whose customer e-mail matches, as the customer sees it (jsonb); unknown order, channel or wrong e-mail: the same {"found": false} answer';

CREATE FUNCTION oms.request_return(channel text, external_id text, email text, lines jsonb, reason text) RETURNS jsonb
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		bigint := oms._customer_order(v_tenant, request_return.channel, request_return.external_id, request_return.email);
	v_rma		bigint;
	v_state		text;
	v_message	text;
	v_detail	text;
	v_hint		text;
BEGIN
	IF v_order IS NULL THEN
		RETURN oms._not_found();
	END IF;
	BEGIN
		v_rma := oms.create_return(v_order, lines, reason);
	EXCEPTION WHEN SQLSTATE 'OM005' OR SQLSTATE 'OM010' OR SQLSTATE '55000' OR SQLSTATE '22023' THEN
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
								v_hint = PG_EXCEPTION_HINT;
		-- The refusal in the customer's terms: no internal ids.
		RETURN jsonb_strip_nulls(jsonb_build_object('found', true, 'accepted', false, 'code', v_state,
			'reason', regexp_replace(v_message, 'order \d+', 'order ' || request_return.external_id, 'g'),
			'detail', nullif(v_detail, ''), 'hint', nullif(v_hint, '')));
	END;
	RETURN jsonb_build_object('found', true, 'accepted', true, 'rma', 'RMA-' || v_rma,
							  'return_label_zpl', oms.return_label(v_rma, 'zpl'),
							  'return_label_html', oms.return_label(v_rma, 'html'));
END
$$;
COMMENT ON FUNCTION oms.request_return(text, text, text, jsonb, text) IS 'Self-service return: for the order of channel, external id and matching e-mail, creates the RMA of [{"line_no": 1, "qty": 1}] with the reason (oms.create_return) and returns its code and return label (ZPL and HTML); outside the return window or more than delivered: {"accepted": false} with the reason; unknown order or wrong e-mail: {"found": false}';

REVOKE ALL ON FUNCTION oms._customer_order(int, text, text, text), oms._plain_state(text), oms._not_found(),
	oms._customer_view(int, bigint), oms.order_status(text, text, text),
	oms.request_return(text, text, text, jsonb, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA oms TO oms_storefront;
GRANT EXECUTE ON FUNCTION oms.order_status(text, text, text), oms.request_return(text, text, text, jsonb, text)
	TO oms_storefront;
