-- Re-routing: a location that cannot fulfil a line (damaged, not found) rejects it. The line's
-- reservation there is released, the location is excluded for the line for good
-- (oms.line_exclusions), and the line is routed again in the same transaction, under the order's
-- routing profile. The line moves allocated/released/picked -> rejected -> allocated (or
-- preordered, or backordered when nothing can serve it), each move in order_history with why.

CREATE FUNCTION oms.reject_line(order_id bigint, line_no int, location text, reason text)
	RETURNS TABLE (routed_line int, routed_location text, routed_qty int, line_state oms.line_state,
				   eta date, detail text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		record;
	v_line		record;
	v_loc		int;
	v_rejected	int;
	v_kept		int;
	v_attempt	int := 0;
	v_excl		int[];
	v_a_loc		int[];
	v_a_qty		int[];
	v_a_kind	text[];
	v_a_eta		date[];
	v_a_capday	date[];
	v_a_reason	text[];
	v_a_supply	bigint[];
	v_state		oms.line_state;
	v_new_loc	int;
	v_promised	date;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to reject line % of order %', reject_line.line_no, reject_line.order_id
			USING ERRCODE = '22023', HINT = 'Say why the location cannot fulfil it (e.g. ''damaged''); it is kept in oms.order_history.';
	END IF;
	SELECT o.id, o.ship_to, o.pickup_location_id, o.state,
		   coalesce(o.routing_profile, c.routing_profile, 'balanced') AS profile
	  INTO v_order
	  FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = v_tenant AND o.id = reject_line.order_id
	   FOR UPDATE OF o;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(reject_line.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	SELECT l.line_no, l.item_id, l.state, l.qty, i.sku INTO v_line
	  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = reject_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', v_order.id, coalesce(reject_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed (oms.order_lines.line_no).';
	END IF;
	v_loc := oms._location_id(v_tenant, reject_line.location);
	PERFORM oms._check_store_location(v_tenant, v_loc);		-- store staff reject at their own store only
	SELECT coalesce(sum(x.qty), 0) INTO v_rejected FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no AND x.location_id = v_loc;
	IF v_rejected = 0 OR NOT oms.is_legal(v_line.state, 'rejected') THEN
		RAISE EXCEPTION 'line % of order % cannot be rejected at location "%": it is % %', v_line.line_no, v_order.id,
				oms._clip(reject_line.location), v_line.state, CASE WHEN v_rejected = 0 THEN 'with nothing reserved there' ELSE 'there' END
			USING ERRCODE = '55000',
			      HINT = 'A location rejects a line that is allocated, released or picked there (oms.reservations shows where).';
	END IF;

	-- The rejection: exclusion, then the line's state (history: why, by whom).
	INSERT INTO oms.line_exclusions (tenant_id, order_id, line_no, location_id, reason, excluded_by)
		VALUES (v_tenant, v_order.id, v_line.line_no, v_loc, reason, oms._actor())
		ON CONFLICT DO NOTHING;
	PERFORM pg_catalog.set_config('oms.reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000)), true);
	UPDATE oms.order_lines l SET state = 'rejected', location_id = NULL
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	SELECT array_agg(e.location_id ORDER BY e.location_id) INTO v_excl FROM oms.line_exclusions e
	 WHERE e.tenant_id = v_tenant AND e.order_id = v_order.id AND e.line_no = v_line.line_no;

	-- Route the rejected units again and move the reservation, in stock-lock order. A location
	-- that lost the race meanwhile (OM001, OM030) makes us route again, as place_order does.
	LOOP
		SELECT array_agg(rt.location_id ORDER BY rt.ord), array_agg(rt.qty ORDER BY rt.ord),
			   array_agg(rt.kind ORDER BY rt.ord), array_agg(rt.eta ORDER BY rt.ord),
			   array_agg(rt.capacity_day ORDER BY rt.ord), array_agg(rt.reason ORDER BY rt.ord),
			   array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, ARRAY[v_line.item_id], ARRAY[v_rejected], NULL, NULL,
						  array_fill(1, ARRAY[cardinality(v_excl)]), v_excl,
						  v_order.ship_to, v_order.pickup_location_id, v_order.profile)
			   WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind, carrier_service, eta,
									 capacity_day, supply_id, reason, ord);
		BEGIN
			FOR r IN SELECT o.loc, o.qty
					   FROM (SELECT v_loc AS loc, 0 AS qty
							 UNION ALL
							 SELECT v_a_loc[n], v_a_qty[n] FROM generate_subscripts(v_a_loc, 1) n
							  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) o
					  ORDER BY o.loc, o.qty
			LOOP
				IF r.loc = v_loc AND r.qty = 0 THEN
					DELETE FROM oms.reservations x
					 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
					   AND x.location_id = v_loc;
				ELSE
					INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
						VALUES (v_tenant, v_line.item_id, r.loc, r.qty, v_order.id, v_line.line_no);
				END IF;
			END LOOP;
			-- a pre-order reserves its supply, after the stock rows
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
				SELECT v_tenant, v_line.item_id, v_a_loc[n], v_a_qty[n], v_order.id, v_line.line_no, v_a_supply[n]
				  FROM generate_subscripts(v_a_loc, 1) n
				 WHERE v_a_kind[n] = 'preorder';
			PERFORM oms._take_order_capacity(v_tenant, v_order.id, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- The line's new state: allocated where stock was found, else pre-ordered, else backordered
	-- (also when nothing can serve it: it waits for stock). Its location: the one place that holds
	-- all of it now, or NULL.
	v_state := CASE WHEN v_a_kind && oms._stock_kinds() THEN 'allocated'
					WHEN v_a_kind && ARRAY['preorder'] THEN 'preordered'
					ELSE 'backordered' END;
	SELECT CASE WHEN count(DISTINCT x.location_id) = 1 THEN min(x.location_id) END, coalesce(sum(x.qty), 0)
	  INTO v_new_loc, v_kept
	  FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
	   AND x.supply_id IS NULL;
	IF v_state = 'backordered' AND v_kept > 0 THEN
		-- Part of the line is still reserved elsewhere: the line stays allocated for that part.
		v_state := 'allocated';
	END IF;
	-- The date promised: the new route's, or the later of it and the old one while other parts of
	-- a split line are still reserved where they were.
	SELECT max(e) INTO v_promised FROM unnest(v_a_eta) e;
	IF v_kept > (SELECT coalesce(sum(v_a_qty[n]), 0) FROM generate_subscripts(v_a_loc, 1) n
				  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) THEN
		v_promised := (SELECT greatest(v_promised, l.promised_date) FROM oms.order_lines l
						WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no);
	END IF;
	PERFORM pg_catalog.set_config('oms.reason',
		format('rerouted after rejection at %s: %s', reject_line.location,
			   coalesce((SELECT string_agg(x, '; ') FROM unnest(v_a_reason) x), 'no route')), true);
	IF v_state = 'preordered' THEN
		v_new_loc := v_a_loc[1];
	END IF;
	UPDATE oms.order_lines l
	   SET state = v_state, location_id = CASE WHEN v_state IN ('allocated', 'preordered') THEN v_new_loc END,
		   promised_date = v_promised
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	PERFORM oms._rollup(v_tenant, v_order.id);
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	-- The rejecting location's daily capacity comes back when the order no longer uses it.
	PERFORM oms._release_order_capacity(v_tenant, v_order.id);
	-- The customer hears of a line that now waits for stock (a line served elsewhere keeps its
	-- promise or gets the new date in the order's history and oms.order_status).
	IF v_state = 'backordered' THEN
		PERFORM oms._event(v_tenant, v_order.id, 'line_backordered',
			jsonb_build_object('lines', jsonb_build_array(jsonb_build_object(
				'line_no', v_line.line_no, 'sku', v_line.sku, 'qty', v_line.qty, 'promised_date', v_promised)),
				'reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000))));
	END IF;

	RETURN QUERY
		SELECT v_line.line_no, l.code, v_a_qty[n], v_state, v_a_eta[n], v_a_reason[n]
		  FROM generate_subscripts(v_a_loc, 1) n
		  LEFT JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = v_a_loc[n]
								   AND v_a_kind[n] <> 'backorder'
		 ORDER BY n;
END
$$;
COMMENT ON FUNCTION oms.reject_line(bigint, int, text, text) IS 'A location cannot fulfil a line (damaged, not found): releases the line''s reservation there, excludes the location for the line, routes the units again under the order''s profile and reserves them (allocated, pre-ordered, or backordered when nothing can serve them); every move in order_history; returns the new route';
