-- Order edits before release: cancel part or all of a line (its stock returns), change the
-- shipping address. Both refuse with 55000, naming the state, once goods are released to a
-- location (or further): the location may already be picking them.
--
-- change_address keeps the lines' allocations where they are: re-routing to the new address is
-- routing's work (oms.route, issue 3), to be called here once it is on main.

-- The line states an edit may still change.
CREATE FUNCTION oms._editable(p_state oms.line_state) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN p_state IN ('created', 'backordered', 'preordered', 'allocated', 'rejected');
END
$$;
COMMENT ON FUNCTION oms._editable(oms.line_state) IS 'Internal: true for the line states an order edit may change (before release)';

CREATE FUNCTION oms.cancel_line(order_id bigint, line_no int, qty int, reason text) RETURNS oms.line_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	l			record;
	v_open		int;
	v_left		int;
	v_take		int;
	v_state		oms.line_state;
	v_order		oms.order_state;
	r			record;
BEGIN
	o := oms._lock_order(v_tenant, cancel_line.order_id);
	PERFORM oms._reason(reason, 'cancel a line');
	SELECT x.line_no, x.item_id, x.qty, x.qty_cancelled, x.qty_shipped, x.state, i.sku, i.name INTO l
		FROM oms.order_lines x JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
		WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = cancel_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', o.id, coalesce(cancel_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
	END IF;
	IF NOT oms._editable(l.state) THEN
		RAISE EXCEPTION 'line % of order % cannot be cancelled: it is %', l.line_no, o.id, l.state
			USING ERRCODE = '55000',
			      HINT = CASE WHEN l.state = 'cancelled' THEN 'The line is cancelled already.'
						 ELSE 'Goods released to a location are no longer cancelled here; once shipped, return them (oms.create_return).' END;
	END IF;
	v_open := l.qty - l.qty_cancelled - l.qty_shipped;
	IF cancel_line.qty IS NULL OR cancel_line.qty < 1 OR cancel_line.qty > v_open THEN
		RAISE EXCEPTION 'invalid qty % to cancel of line % of order %', coalesce(cancel_line.qty::text, 'NULL'), l.line_no, o.id
			USING ERRCODE = '22023',
			      DETAIL = format('Ordered %s, cancelled %s, shipped %s: %s open.', l.qty, l.qty_cancelled, l.qty_shipped, v_open),
			      HINT = 'Cancel from 1 up to the open quantity.';
	END IF;

	-- The stock comes back: the line's reservations shrink by qty, in (location) order (one item).
	v_left := cancel_line.qty;
	FOR r IN SELECT x.id, x.qty FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
			  ORDER BY x.location_id, x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, r.qty);
		IF v_take = r.qty THEN
			DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
		ELSE
			UPDATE oms.reservations x SET qty = x.qty - v_take WHERE x.tenant_id = v_tenant AND x.id = r.id;
		END IF;
		v_left := v_left - v_take;
	END LOOP;

	PERFORM set_config('oms.reason', 'line cancelled: ' || reason, true);
	UPDATE oms.order_lines x
	   SET qty_cancelled = x.qty_cancelled + cancel_line.qty,
		   state = CASE WHEN x.qty_cancelled + cancel_line.qty = x.qty THEN 'cancelled'::oms.line_state ELSE x.state END
	 WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
	RETURNING x.state INTO v_state;
	v_order := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'line_cancelled',
		jsonb_build_object('line_no', l.line_no, 'sku', l.sku, 'name', l.name, 'qty', cancel_line.qty,
						   'qty_left', v_open - cancel_line.qty, 'reason', reason, 'order_state', v_order::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_line(bigint, int, int, text) IS 'Cancels qty units of a line not yet released (its reservation shrinks, the stock returns to ATP; all of it: the line is cancelled), rolls the order up, event line_cancelled; a released, shipped or cancelled line: 55000 naming its state; returns the line state';

-- A ship-to address as place_order accepts it, normalised (country in upper case); 22023 naming
-- the field otherwise.
CREATE FUNCTION oms._check_ship_to(p_ship_to jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_key	text;
BEGIN
	IF p_ship_to IS NULL OR jsonb_typeof(p_ship_to) <> 'object' THEN
		RAISE EXCEPTION 'ship_to must be an address object, got %', coalesce(left(p_ship_to::text, 80), 'NULL')
			USING ERRCODE = '22023',
			      HINT = '{"name": "...", "line1": "...", "city": "Milano", "postal_code": "20121", "country": "IT", "lat": 45.46, "lon": 9.19}.';
	END IF;
	PERFORM oms._check_keys(p_ship_to, 'ship_to.', ARRAY['city', 'company', 'country', 'lat', 'line1', 'line2',
														 'lon', 'name', 'phone', 'postal_code', 'region']);
	SELECT k INTO v_key FROM jsonb_each(p_ship_to) AS f(k, v)
		WHERE k NOT IN ('lat', 'lon') AND (jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 200)
		ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'ship_to.% must be text of at most 200 characters, got %', v_key, left((p_ship_to -> v_key)::text, 80)
			USING ERRCODE = '22023', HINT = 'Address fields are text; lat and lon are numbers.';
	END IF;
	IF jsonb_typeof(p_ship_to -> 'country') IS DISTINCT FROM 'string' OR p_ship_to ->> 'country' !~ '^[A-Za-z]{2}$' THEN
		RAISE EXCEPTION 'ship_to.country must be an ISO 3166 country code, got %', coalesce((p_ship_to -> 'country')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Two letters, e.g. "IT" or "RO".';
	END IF;
	IF (p_ship_to ? 'lat') <> (p_ship_to ? 'lon')
	   OR (p_ship_to ? 'lat' AND (jsonb_typeof(p_ship_to -> 'lat') <> 'number' OR jsonb_typeof(p_ship_to -> 'lon') <> 'number'
								 OR abs((p_ship_to ->> 'lat')::numeric) > 90 OR abs((p_ship_to ->> 'lon')::numeric) > 180)) THEN
		RAISE EXCEPTION 'ship_to.lat and ship_to.lon must be given together as a latitude and a longitude, got %, %',
				coalesce((p_ship_to -> 'lat')::text, 'nothing'), coalesce((p_ship_to -> 'lon')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Decimal degrees, e.g. 45.4642 and 9.19; or neither.';
	END IF;
	RETURN jsonb_set(p_ship_to, '{country}', to_jsonb(upper(p_ship_to ->> 'country')));
END
$$;
COMMENT ON FUNCTION oms._check_ship_to(jsonb) IS 'Internal: a ship-to address checked as place_order checks it (22023 naming the field), country in upper case';

CREATE FUNCTION oms.change_address(order_id bigint, ship_to jsonb) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_addr		jsonb;
	l			record;
BEGIN
	o := oms._lock_order(v_tenant, change_address.order_id);
	IF o.pickup_location_id IS NOT NULL THEN
		RAISE EXCEPTION 'order % is a click & collect order: it has no address to change', o.id
			USING ERRCODE = '22023', HINT = 'A click & collect order is collected at its store.';
	END IF;
	v_addr := oms._check_ship_to(change_address.ship_to);
	SELECT x.line_no, x.state INTO l FROM oms.order_lines x
		WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.state <> 'cancelled' AND NOT oms._editable(x.state)
		ORDER BY x.line_no LIMIT 1;
	IF FOUND OR o.state IN ('cancelled', 'closed') THEN
		RAISE EXCEPTION 'the address of order % cannot change: %', o.id,
				CASE WHEN l.line_no IS NOT NULL THEN format('line %s is %s', l.line_no, l.state) ELSE format('it is %s', o.state) END
			USING ERRCODE = '55000', HINT = 'The address changes only before the order is released to its locations.';
	END IF;
	UPDATE oms.orders x
	   SET ship_to = v_addr, ship_country = v_addr ->> 'country', ship_postal_code = v_addr ->> 'postal_code',
		   ship_city = v_addr ->> 'city', ship_lat = round((v_addr ->> 'lat')::numeric, 12)::double precision,
		   ship_lon = round((v_addr ->> 'lon')::numeric, 12)::double precision
	 WHERE x.tenant_id = v_tenant AND x.id = o.id;
	PERFORM oms._event(v_tenant, o.id, 'address_changed', jsonb_build_object('ship_to', v_addr, 'previous', o.ship_to));
	RETURN o.state;
END
$$;
COMMENT ON FUNCTION oms.change_address(bigint, jsonb) IS 'Changes the ship-to address of an order not yet released (checked as place_order checks it), event address_changed; released or further: 55000 naming the state; allocations stay where they are (re-routing comes with oms.route); returns the order state';
