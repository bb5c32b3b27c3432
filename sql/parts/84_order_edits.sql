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
	PERFORM oms._release_order_capacity(v_tenant, o.id);
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

-- Re-routing after a change of address: the order's allocated lines (not yet released) are
-- routed again for the new address under the order's profile. Their reservations are released
-- first (in stock-lock order), so that the route sees their units as available where they are; a
-- line then moves only when another location serves the new address better. A line the new route
-- cannot serve wholly from stock (beyond the profile's maximum distance, say) gets its old
-- reservation back. The new reservations are taken in stock-lock order; a location that lost a
-- race meanwhile (OM001, OM030) makes us route again, up to three times. Releasing and taking are
-- two ordered passes, not one, so two concurrent re-routings of overlapping stock can deadlock;
-- PostgreSQL then cancels one (40P01) and nothing is half-written. Capacity: a location a line
-- moves to counts the order for its day; a location the order leaves gets its count back
-- (oms._release_order_capacity). Returns the lines that moved: [{"line_no", "sku", "from", "to"}].
CREATE FUNCTION oms._reroute_for_address(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			record;
	v_lines		int[];
	v_items		int[];
	v_qtys		int[];
	v_old_line	int[];
	v_old_item	int[];
	v_old_loc	int[];
	v_old_qty	int[];
	v_new_line	int[];
	v_new_item	int[];
	v_new_loc	int[];
	v_new_qty	int[];
	v_new_eta	date[];
	v_new_day	date[];
	v_moved		jsonb;
	v_attempt	int := 0;
	v_cap_loc	int[];
	v_cap_day	date[];
	r			record;
BEGIN
	SELECT x.ship_to, coalesce(x.routing_profile, c.routing_profile, 'balanced') AS profile INTO o
	  FROM oms.orders x JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
	 WHERE x.tenant_id = p_tenant AND x.id = p_order;
	-- The allocated lines with stock reserved (pre-ordered lines wait for their supply: not moved).
	SELECT array_agg(l.line_no ORDER BY l.line_no), array_agg(l.item_id ORDER BY l.line_no),
		   array_agg((l.qty - l.qty_cancelled - l.qty_shipped)::int ORDER BY l.line_no)
	  INTO v_lines, v_items, v_qtys
	  FROM oms.order_lines l
	 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated'
	   AND l.qty - l.qty_cancelled - l.qty_shipped > 0
	   AND NOT EXISTS (SELECT FROM oms.reservations x
						WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = l.line_no
						  AND x.supply_id IS NOT NULL);
	IF v_lines IS NULL THEN
		RETURN '[]';
	END IF;
	SELECT array_agg(x.line_no ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.item_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.location_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.qty ORDER BY x.item_id, x.location_id, x.line_no)
	  INTO v_old_line, v_old_item, v_old_loc, v_old_qty
	  FROM oms.reservations x
	 WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines)
			  ORDER BY x.item_id, x.location_id, x.line_no
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = p_tenant AND x.id = r.id;
	END LOOP;
	-- The capacity the order counted where only these lines were gives way too, so the route sees
	-- those locations as they would be without the order; a line that keeps its old reservation
	-- counts there again for the same day.
	SELECT array_agg(c.location_id), array_agg(c.day) INTO v_cap_loc, v_cap_day
	  FROM oms._release_order_capacity(p_tenant, p_order) c;

	LOOP
		BEGIN
			-- The new route; per line, its rows when all of them reserve stock, else its old ones.
			WITH rt AS (
				SELECT v_lines[q.line_no] AS line_no, v_items[q.line_no] AS item_id, q.location_id, q.qty, q.kind,
					   q.eta, q.capacity_day
				  FROM oms._route(p_tenant, v_items, v_qtys, NULL, NULL, NULL, NULL, o.ship_to, NULL, o.profile) q
			), served AS (
				SELECT rt.line_no FROM rt GROUP BY rt.line_no HAVING bool_and(rt.kind = ANY (oms._stock_kinds()))
			), plan AS (
				SELECT rt.line_no, rt.item_id, rt.location_id, rt.qty, rt.eta, rt.capacity_day
				  FROM rt WHERE rt.line_no IN (SELECT line_no FROM served)
				UNION ALL
				SELECT v_old_line[n], v_old_item[n], v_old_loc[n], v_old_qty[n], NULL,
					   v_cap_day[array_position(v_cap_loc, v_old_loc[n])]
				  FROM generate_subscripts(v_old_line, 1) n
				 WHERE v_old_line[n] NOT IN (SELECT line_no FROM served)
			)
			SELECT array_agg(p.line_no ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.item_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.location_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.qty ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.eta ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.capacity_day ORDER BY p.item_id, p.location_id, p.line_no)
			  INTO v_new_line, v_new_item, v_new_loc, v_new_qty, v_new_eta, v_new_day
			  FROM plan p;
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
				SELECT p_tenant, v_new_item[n], v_new_loc[n], v_new_qty[n], p_order, v_new_line[n]
				  FROM generate_subscripts(v_new_line, 1) n
				 ORDER BY v_new_item[n], v_new_loc[n], v_new_line[n];
			PERFORM oms._take_order_capacity(p_tenant, p_order, v_new_loc, v_new_day);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- Every line the new route serves: its one location (NULL when split) and the new date; the
	-- answer lists those whose locations changed.
	WITH old AS (
		SELECT v_old_line[n] AS line_no, array_agg(v_old_loc[n] ORDER BY v_old_loc[n]) AS locs
		  FROM generate_subscripts(v_old_line, 1) n GROUP BY 1
	), new AS (
		SELECT v_new_line[n] AS line_no, array_agg(v_new_loc[n] ORDER BY v_new_loc[n]) AS locs,
			   max(v_new_eta[n]) AS eta
		  FROM generate_subscripts(v_new_line, 1) n GROUP BY 1
		HAVING count(v_new_eta[n]) > 0
	), upd AS (
		UPDATE oms.order_lines l
		   SET location_id = CASE WHEN cardinality(new.locs) = 1 THEN new.locs[1] END, promised_date = new.eta
		  FROM new
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = new.line_no
		RETURNING l.line_no, l.item_id
	)
	SELECT jsonb_agg(jsonb_build_object(
				'line_no', new.line_no, 'sku', i.sku,
				'from', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						  WHERE c.tenant_id = p_tenant AND c.id = ANY (old.locs)),
				'to', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						WHERE c.tenant_id = p_tenant AND c.id = ANY (new.locs)))
			ORDER BY new.line_no)
	  INTO v_moved
	  FROM new
	  JOIN old USING (line_no)
	  JOIN upd u USING (line_no)
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = u.item_id
	 WHERE old.locs IS DISTINCT FROM new.locs;
	RETURN coalesce(v_moved, '[]');
END
$$;
COMMENT ON FUNCTION oms._reroute_for_address(int, bigint) IS 'Internal: after a change of address, routes the order''s allocated lines again for the new address (their reservations released first, a line the new route cannot serve from stock keeps its old one), reserves in stock-lock order, counts capacity; returns the lines that moved';

CREATE FUNCTION oms.change_address(order_id bigint, ship_to jsonb) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_addr		jsonb;
	v_moved		jsonb;
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
	v_moved := oms._reroute_for_address(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'address_changed',
		jsonb_build_object('ship_to', v_addr, 'previous', o.ship_to, 'rerouted_lines', v_moved));
	RETURN o.state;
END
$$;
COMMENT ON FUNCTION oms.change_address(bigint, jsonb) IS 'Changes the ship-to address of an order not yet released (checked as place_order checks it), re-routes its allocated lines for the new address (oms._reroute_for_address), event address_changed with the lines that moved; released or further: 55000 naming the state; returns the order state';
