-- Fulfilment: release an order to its locations, pack shipments (packages), ship them (the goods
-- leave: on_hand and reserved drop together), deliver them, and take carriers' tracking scans.
--
-- Quantities, per line: open = qty - qty_cancelled - qty_shipped is what is still to ship; it is
-- reserved at the line's location(s) (oms.reservations). Packed = what sits in shipments that have
-- not shipped yet; at most the line's reservation at the shipment's location can be packed there.
-- Shipping consumes the reservation (the reservation trigger lowers stock.reserved) and then lowers
-- on_hand by the same quantity with a movement of kind "shipment", in one transaction, stock rows
-- in (item, location) order. A line moves by quantity: partially_shipped while units remain,
-- shipped when none do; the order rolls up from its lines.
--
-- Daily capacity: routing counts an order against its locations' daily capacity when it is placed
-- (oms.location_capacity_used, routing's part); release does not count it a second time.

-- ----- release

-- What keeps an order from being released: its open holds, and a missing authorisation when the
-- channel requires one. NULL columns: nothing of that kind.
CREATE FUNCTION oms._release_blockers(p_tenant int, p_order bigint,
									  OUT holds text, OUT payment_missing numeric, OUT authorized numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_required	boolean;
	v_total		numeric;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	-- What is due: the total less the cancelled units (oms.cancel_line).
	SELECT c.requires_authorization,
		   o.total - coalesce((SELECT sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_cancelled, cur.minor_units))
								 FROM oms.order_lines l
								WHERE l.tenant_id = p_tenant AND l.order_id = p_order), 0)
	  INTO v_required, v_total
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_required THEN
		SELECT coalesce(sum(p.authorized - p.voided), 0) INTO authorized FROM oms.payments p
			WHERE p.tenant_id = p_tenant AND p.order_id = p_order;
		IF authorized < v_total THEN
			payment_missing := v_total - authorized;
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION oms._release_blockers(int, bigint) IS 'Internal: the open holds of an order and, when its channel requires authorisation, how much of what is due (total less cancelled units) is not authorised';

-- Refuses (OM009) to go on with an order that has open holds; p_action names what was refused.
CREATE FUNCTION oms._check_not_held(p_tenant int, p_order bigint, p_action text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_holds text;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO v_holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	IF v_holds IS NOT NULL THEN
		RAISE EXCEPTION 'order % is on hold (%): it cannot be %', p_order, v_holds, p_action
			USING ERRCODE = 'OM009', HINT = 'Resolve its holds first with oms.resolve_hold().';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_not_held(int, bigint, text) IS 'Internal: refuses (OM009) to release, pack, ship or stage an order that has open holds';

-- Releases the allocated lines of a locked order that nothing blocks; writes order_released.
CREATE FUNCTION oms._release(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	PERFORM set_config('oms.reason', 'released', true);
	WITH released AS (
		UPDATE oms.order_lines l SET state = 'released'
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated'
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty, l.location_id)
	SELECT jsonb_agg(jsonb_build_object('line_no', r.line_no, 'sku', i.sku, 'name', i.name, 'qty', r.qty,
										'location', loc.code) ORDER BY r.line_no)
	  INTO v_lines
	  FROM released r
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = r.item_id
	  LEFT JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = r.location_id;
	v_state := oms._rollup(p_tenant, p_order);
	PERFORM oms._event(p_tenant, p_order, 'order_released', jsonb_build_object('lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms._release(int, bigint) IS 'Internal: moves the allocated lines of a locked order to released, rolls the order up and writes order_released';

-- Releases a locked order when its channel releases automatically and nothing blocks it.
CREATE FUNCTION oms._auto_release(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	b			record;
BEGIN
	IF EXISTS (SELECT FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
				WHERE o.tenant_id = p_tenant AND o.id = p_order AND c.auto_release)
	   AND EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated') THEN
		b := oms._release_blockers(p_tenant, p_order);
		IF b.holds IS NULL AND b.payment_missing IS NULL THEN
			RETURN oms._release(p_tenant, p_order);
		END IF;
	END IF;
	RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = p_tenant AND o.id = p_order);
END
$$;
COMMENT ON FUNCTION oms._auto_release(int, bigint) IS 'Internal: releases a locked order when its channel has auto_release and neither a hold nor a missing authorisation blocks it; returns the order state';

CREATE FUNCTION oms.release_order(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	b			record;
BEGIN
	o := oms._lock_order(v_tenant, release_order.order_id);
	IF NOT EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state = 'allocated') THEN
		IF o.state = 'released' THEN
			RETURN o.state;			-- released already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no allocated line to release: it is %', o.id, o.state
			USING ERRCODE = '55000',
			      HINT = 'Only lines with stock allocated can be released; backordered lines are released once allocated.';
	END IF;
	b := oms._release_blockers(v_tenant, o.id);
	IF b.holds IS NOT NULL THEN
		PERFORM oms._check_not_held(v_tenant, o.id, 'released');
	END IF;
	IF b.payment_missing IS NOT NULL THEN
		RAISE EXCEPTION 'order % cannot be released: its payment is not authorised', o.id
			USING ERRCODE = 'OM009',
			      DETAIL = format('Due %s %s, authorised %s; %s missing.', b.authorized + b.payment_missing, o.currency,
							   b.authorized, b.payment_missing),
			      HINT = 'The channel requires authorisation before release: call oms.authorize_payment() first.';
	END IF;
	RETURN oms._release(v_tenant, o.id);
END
$$;
COMMENT ON FUNCTION oms.release_order(bigint) IS 'Sends the allocated lines of an order to their locations (line state released); refused with OM009 while a hold is open or, on a channel that requires it, the total is not authorised; a released order: no-op; returns the order state';

-- ----- shipments

CREATE TABLE oms.shipments (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	state			text NOT NULL DEFAULT 'packed'
					CHECK (state IN ('packed', 'shipped', 'in_transit', 'out_for_delivery', 'exception', 'delivered')),
	carrier			text CHECK (carrier ~ '^[a-z0-9_-]{1,40}$'),
	service			text CHECK (service ~ '^[a-z0-9_-]{1,40}$'),
	tracking		text CHECK (tracking <> '' AND length(tracking) <= 100),
	packed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	shipped_at		timestamptz,
	delivered_at	timestamptz,
	status_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CONSTRAINT shipments_tracking_key UNIQUE (tenant_id, carrier, tracking),
	CHECK ((state = 'packed') = (shipped_at IS NULL)),
	CHECK ((state = 'packed') = (tracking IS NULL AND carrier IS NULL)),
	CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX shipments_order_idx ON oms.shipments (tenant_id, order_id);
COMMENT ON TABLE oms.shipments IS 'Packages of an order from one location: packed, then shipped with carrier, service and tracking number, then in transit, out for delivery, exception, delivered';
COMMENT ON COLUMN oms.shipments.status_at IS 'Time of the carrier scan that set the current state (tracking_update), so that a late scan of an earlier status does not move it back';

CREATE TABLE oms.shipment_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	shipment_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	PRIMARY KEY (tenant_id, shipment_id, line_no),
	FOREIGN KEY (tenant_id, shipment_id) REFERENCES oms.shipments,
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines
);
CREATE INDEX shipment_lines_line_idx ON oms.shipment_lines (tenant_id, order_id, line_no);
COMMENT ON TABLE oms.shipment_lines IS 'Units of order lines in a shipment';

CREATE TABLE oms.tracking_events (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	shipment_id		bigint NOT NULL,
	status			text NOT NULL CHECK (status IN ('in_transit', 'out_for_delivery', 'exception', 'delivered')),
	occurred_at		timestamptz NOT NULL,
	payload			jsonb NOT NULL DEFAULT '{}',
	received_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, shipment_id, status, occurred_at),
	FOREIGN KEY (tenant_id, shipment_id) REFERENCES oms.shipments
);
COMMENT ON TABLE oms.tracking_events IS 'Carriers'' scans of a shipment (status, when, the carrier''s data); a scan sent twice is stored once';

-- Units of a line in shipments that have not shipped yet, at one location (NULL: anywhere).
CREATE FUNCTION oms._packed_qty(p_tenant int, p_order bigint, p_line int, p_location int) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT coalesce(sum(sl.qty), 0)::bigint
	  FROM oms.shipment_lines sl
	  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
	 WHERE sl.tenant_id = p_tenant AND sl.order_id = p_order AND sl.line_no = p_line
	   AND s.state = 'packed' AND (p_location IS NULL OR s.location_id = p_location));
END
$$;
COMMENT ON FUNCTION oms._packed_qty(int, bigint, int, int) IS 'Internal: units of an order line in shipments packed and not yet shipped (at a location, or anywhere)';

CREATE FUNCTION oms.pack(order_id bigint, location text, lines jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_loc		int;
	v_req		record;
	v_line		record;
	v_pack		jsonb := '[]';
	v_ship		bigint;
BEGIN
	o := oms._lock_order(v_tenant, pack.order_id);
	v_loc := oms._location_id(v_tenant, pack.location);
	PERFORM oms._check_line_list(lines, 'lines to pack', ARRAY['line_no', 'qty']);
	PERFORM oms._check_not_held(v_tenant, o.id, 'packed');

	-- What may be packed here, per line: its reservation at this location minus what is packed
	-- there already. With lines NULL: all of it, for every released line.
	IF lines IS NULL THEN
		SELECT coalesce(jsonb_agg(jsonb_build_object('line_no', x.line_no, 'qty', x.qty) ORDER BY x.line_no), '[]')
		  INTO v_pack
		  FROM (SELECT l.line_no,
					   (SELECT sum(r.qty) FROM oms.reservations r
						 WHERE r.tenant_id = v_tenant AND r.order_id = o.id AND r.line_no = l.line_no AND r.location_id = v_loc)
					   - oms._packed_qty(v_tenant, o.id, l.line_no, v_loc) AS qty
				  FROM oms.order_lines l
				 WHERE l.tenant_id = v_tenant AND l.order_id = o.id
				   AND l.state IN ('released', 'picked', 'packed', 'partially_shipped')) x
		 WHERE x.qty > 0;
		IF v_pack = '[]' THEN
			RAISE EXCEPTION 'order % has nothing released at location "%" to pack', o.id, pack.location
				USING ERRCODE = '55000',
				      HINT = 'Release the order first (oms.release_order), and pack at the location its lines are reserved at.';
		END IF;
	ELSE
		FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty
					   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
		LOOP
			SELECT l.state, l.qty, l.qty_cancelled, l.qty_shipped,
				   (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r
					 WHERE r.tenant_id = v_tenant AND r.order_id = o.id AND r.line_no = l.line_no
					   AND r.location_id = v_loc) AS reserved_here,
				   oms._packed_qty(v_tenant, o.id, l.line_no, v_loc) AS packed
			  INTO v_line
			  FROM oms.order_lines l
			 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.line_no = v_req.line_no;
			IF NOT FOUND THEN
				RAISE EXCEPTION 'order % has no line %', o.id, v_req.line_no
					USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
			END IF;
			IF v_line.state NOT IN ('released', 'picked', 'packed', 'partially_shipped') THEN
				RAISE EXCEPTION 'line % of order % cannot be packed: it is %', v_req.line_no, o.id, v_line.state
					USING ERRCODE = '55000',
					      HINT = 'Only released lines are packed; release the order first (oms.release_order).';
			END IF;
			IF v_req.qty > v_line.reserved_here - v_line.packed THEN
				RAISE EXCEPTION 'cannot pack % units of line % of order % at location "%"', v_req.qty, v_req.line_no, o.id, pack.location
					USING ERRCODE = 'OM004',
					      DETAIL = format('Ordered %s, cancelled %s, shipped %s; reserved here %s, of which %s already packed: at most %s can be packed.',
									   v_line.qty, v_line.qty_cancelled, v_line.qty_shipped, v_line.reserved_here, v_line.packed,
									   v_line.reserved_here - v_line.packed),
					      HINT = 'Pack at most what is released at this location and not packed yet.';
			END IF;
			v_pack := v_pack || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty);
		END LOOP;
	END IF;

	INSERT INTO oms.shipments (tenant_id, order_id, location_id) VALUES (v_tenant, o.id, v_loc) RETURNING id INTO v_ship;
	INSERT INTO oms.shipment_lines (tenant_id, shipment_id, order_id, line_no, qty)
		SELECT v_tenant, v_ship, o.id, p.line_no, p.qty FROM jsonb_to_recordset(v_pack) p(line_no int, qty int);

	-- A line whose every open unit is now in a package is packed.
	PERFORM set_config('oms.reason', 'packed in shipment ' || v_ship, true);
	UPDATE oms.order_lines l SET state = 'packed'
	 WHERE l.tenant_id = v_tenant AND l.order_id = o.id
	   AND l.line_no IN (SELECT p.line_no FROM jsonb_to_recordset(v_pack) p(line_no int, qty int))
	   AND l.state IN ('released', 'picked')
	   AND oms._packed_qty(v_tenant, o.id, l.line_no, NULL) >= l.qty - l.qty_cancelled - l.qty_shipped;
	PERFORM oms._rollup(v_tenant, o.id);
	PERFORM set_config('oms.reason', '', true);
	RETURN v_ship;
END
$$;
COMMENT ON FUNCTION oms.pack(bigint, text, jsonb) IS 'Creates a shipment (package) at a location for [{"line_no": 1, "qty": 1}] or, when lines is NULL, for everything released there and not packed; more than released there and unpacked: OM004; returns the shipment id';

-- The shipment and its order, the order locked; unknown shipment: 22023.
CREATE FUNCTION oms._lock_shipment(p_tenant int, p_shipment bigint) RETURNS oms.shipments
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_order		bigint;
	s			oms.shipments;
BEGIN
	SELECT x.order_id INTO v_order FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.id = p_shipment;
	IF v_order IS NULL THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(p_shipment::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._lock_order(p_tenant, v_order);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.id = p_shipment FOR UPDATE;
	RETURN s;
END
$$;
COMMENT ON FUNCTION oms._lock_shipment(int, bigint) IS 'Internal: locks the order of a shipment, then the shipment, and returns it; unknown shipment: 22023';

-- The lines of a shipment for an event payload.
CREATE FUNCTION oms._shipment_lines_json(p_tenant int, p_shipment bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'sku', i.sku, 'name', i.name, 'qty', sl.qty)
					 ORDER BY sl.line_no)
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = p_tenant AND sl.shipment_id = p_shipment);
END
$$;
COMMENT ON FUNCTION oms._shipment_lines_json(int, bigint) IS 'Internal: the lines of a shipment (line_no, sku, name, qty) as JSON';

-- The goods of some lines leave a location: per line, its reservation there shrinks (or goes) and
-- on_hand drops by the same units with a movement; the line's buckets and state follow. Lines are
-- processed in (item, location) order, the order in which every transaction locks stock rows.
-- p_delivered: the customer has them at once (click & collect).
CREATE FUNCTION oms._goods_leave(p_tenant int, p_order bigint, p_location int, p_lines jsonb,
								 p_reference text, p_reason text, p_delivered boolean) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r			record;
	v_res		record;
	v_on_hand	bigint;
BEGIN
	FOR r IN SELECT x.line_no, x.qty, l.item_id, l.qty AS ordered, l.qty_cancelled, l.qty_shipped, l.state
			   FROM jsonb_to_recordset(p_lines) x(line_no int, qty int)
			   JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = x.line_no
			  ORDER BY l.item_id, x.line_no
	LOOP
		IF r.qty > r.ordered - r.qty_cancelled - r.qty_shipped THEN
			RAISE EXCEPTION 'cannot ship % units of line % of order %', r.qty, r.line_no, p_order
				USING ERRCODE = 'OM004',
				      DETAIL = format('Ordered %s, cancelled %s, shipped %s: %s left to ship.', r.ordered, r.qty_cancelled,
									   r.qty_shipped, r.ordered - r.qty_cancelled - r.qty_shipped),
				      HINT = 'Ship at most what is left of the line.';
		END IF;
		SELECT x.id, x.qty INTO v_res FROM oms.reservations x
			WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = r.line_no AND x.location_id = p_location
			ORDER BY x.id LIMIT 1 FOR UPDATE;
		IF v_res.id IS NULL OR v_res.qty < r.qty THEN
			RAISE EXCEPTION 'cannot ship % units of line % of order %: only % reserved at the location', r.qty, r.line_no,
					p_order, coalesce(v_res.qty, 0)
				USING ERRCODE = 'OM004', HINT = 'Only reserved (released) units can leave a location.';
		END IF;
		IF v_res.qty = r.qty THEN
			DELETE FROM oms.reservations x WHERE x.tenant_id = p_tenant AND x.id = v_res.id;
		ELSE
			UPDATE oms.reservations x SET qty = x.qty - r.qty WHERE x.tenant_id = p_tenant AND x.id = v_res.id;
		END IF;
		UPDATE oms.stock s SET on_hand = s.on_hand - r.qty, updated_at = now()
		 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_location
		RETURNING s.on_hand INTO v_on_hand;
		INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
			VALUES (p_tenant, r.item_id, p_location, 'shipment', -r.qty, v_on_hand, p_reason, p_reference, oms._actor());
		UPDATE oms.order_lines l
		   SET qty_shipped = l.qty_shipped + r.qty,
			   qty_delivered = l.qty_delivered + CASE WHEN p_delivered THEN r.qty ELSE 0 END,
			   state = CASE WHEN p_delivered THEN 'delivered'
							WHEN l.qty_shipped + r.qty + l.qty_cancelled >= l.qty THEN 'shipped'
							ELSE 'partially_shipped' END::oms.line_state
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = r.line_no;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._goods_leave(int, bigint, int, jsonb, text, text, boolean) IS 'Internal: lines'' units leave a location: reservation consumed, on_hand lowered with a shipment movement, buckets and line states moved (delivered at once for a collection)';

CREATE FUNCTION oms.ship(shipment_id bigint, carrier_service text, tracking text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	v_carrier	text;
	v_service	text;
	v_other		bigint;
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	IF carrier_service IS NULL OR carrier_service !~ '^[a-z0-9_-]{1,40}\.[a-z0-9_-]{1,40}$' THEN
		RAISE EXCEPTION 'invalid carrier service "%"', coalesce(carrier_service, 'NULL')
			USING ERRCODE = '22023', HINT = 'A carrier service is carrier.service in lower case, e.g. ''dhl.express''.';
	END IF;
	IF tracking IS NULL OR tracking = '' OR length(tracking) > 100 THEN
		RAISE EXCEPTION 'invalid tracking number "%"', coalesce(tracking, 'NULL')
			USING ERRCODE = '22023', HINT = 'The carrier''s tracking number: text of 1 to 100 characters.';
	END IF;
	v_carrier := split_part(carrier_service, '.', 1);
	v_service := split_part(carrier_service, '.', 2);
	s := oms._lock_shipment(v_tenant, ship.shipment_id);

	IF s.state <> 'packed' THEN
		IF s.carrier = v_carrier AND s.service = v_service AND s.tracking = ship.tracking THEN
			RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = s.order_id);	-- a retried call
		END IF;
		RAISE EXCEPTION 'shipment % cannot be shipped: it is %', s.id, s.state
			USING ERRCODE = '55000',
			      DETAIL = format('It left with %s.%s, tracking %s.', s.carrier, s.service, s.tracking),
			      HINT = 'A shipment ships once; pack the remaining units in a new one.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, s.order_id, 'shipped');
	SELECT x.id INTO v_other FROM oms.shipments x
		WHERE x.tenant_id = v_tenant AND x.carrier = v_carrier AND x.tracking = ship.tracking;
	IF v_other IS NOT NULL THEN
		RAISE EXCEPTION 'tracking number "%" of carrier "%" is already used by shipment %', tracking, v_carrier, v_other
			USING ERRCODE = '22023', HINT = 'Each package has its own tracking number.';
	END IF;

	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'qty', sl.qty)) INTO v_lines
		FROM oms.shipment_lines sl WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	PERFORM set_config('oms.reason', format('shipped: shipment %s, %s, tracking %s', s.id, carrier_service, tracking), true);
	PERFORM oms._goods_leave(v_tenant, s.order_id, s.location_id, v_lines, 'shipment ' || s.id,
							 format('shipped with %s, tracking %s', carrier_service, tracking), false);
	UPDATE oms.shipments x SET state = 'shipped', carrier = v_carrier, service = v_service, tracking = ship.tracking,
		   shipped_at = now(), status_at = now()
	 WHERE x.tenant_id = v_tenant AND x.id = s.id;
	v_state := oms._rollup(v_tenant, s.order_id);
	PERFORM oms._event(v_tenant, s.order_id, 'shipped',
		jsonb_build_object('shipment_id', s.id, 'carrier', v_carrier, 'service', v_service, 'tracking', tracking,
						   'shipped_at', now(), 'from', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = s.location_id),
						   'lines', oms._shipment_lines_json(v_tenant, s.id), 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.ship(bigint, text, text) IS 'The packed shipment leaves with a carrier service (carrier.service) and tracking number: reservations consumed, on_hand lowered (movement "shipment"), lines partially_shipped or shipped, order rolled up, event shipped; the same call again is a no-op; returns the order state';

CREATE FUNCTION oms.deliver(shipment_id bigint, at timestamptz DEFAULT now()) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	v_state		oms.order_state;
BEGIN
	IF at IS NULL OR at > now() + interval '1 day' THEN
		RAISE EXCEPTION 'invalid delivery time %', coalesce(at::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'When the customer received the shipment: not in the future.';
	END IF;
	s := oms._lock_shipment(v_tenant, deliver.shipment_id);
	IF s.state = 'delivered' THEN
		RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = s.order_id);
	END IF;
	IF s.state = 'packed' THEN
		RAISE EXCEPTION 'shipment % cannot be delivered: it has not shipped', s.id
			USING ERRCODE = '55000', HINT = 'Ship it first with oms.ship().';
	END IF;
	PERFORM set_config('oms.reason', format('delivered: shipment %s', s.id), true);
	UPDATE oms.shipments x SET state = 'delivered', delivered_at = deliver.at, status_at = deliver.at
		WHERE x.tenant_id = v_tenant AND x.id = s.id;
	UPDATE oms.order_lines l
	   SET qty_delivered = l.qty_delivered + sl.qty,
		   state = CASE WHEN l.state = 'shipped' AND l.qty_delivered + sl.qty = l.qty_shipped THEN 'delivered'::oms.line_state
						ELSE l.state END
	  FROM oms.shipment_lines sl
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id
	   AND l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no;
	v_state := oms._rollup(v_tenant, s.order_id);
	PERFORM oms._event(v_tenant, s.order_id, 'delivered',
		jsonb_build_object('shipment_id', s.id, 'carrier', s.carrier, 'tracking', s.tracking, 'delivered_at', deliver.at,
						   'lines', oms._shipment_lines_json(v_tenant, s.id), 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.deliver(bigint, timestamptz) IS 'Marks a shipped shipment delivered at a time: lines'' delivered quantities grow, a line whose shipped units are all delivered is delivered, the order rolls up, event delivered; delivering again is a no-op; returns the order state';

CREATE FUNCTION oms.tracking_update(carrier text, tracking text, status text, at timestamptz,
									payload jsonb DEFAULT '{}') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_id		bigint;
	s			oms.shipments;
	v_new		boolean;
BEGIN
	IF status IS NULL OR status NOT IN ('in_transit', 'out_for_delivery', 'exception', 'delivered') THEN
		RAISE EXCEPTION 'invalid tracking status "%"', coalesce(status, 'NULL')
			USING ERRCODE = '22023', HINT = 'A scan is in_transit, out_for_delivery, exception or delivered.';
	END IF;
	IF at IS NULL THEN
		RAISE EXCEPTION 'a scan of tracking number "%" needs its time', tracking
			USING ERRCODE = '22023', HINT = 'Pass the time of the scan as the carrier reports it.';
	END IF;
	IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
		RAISE EXCEPTION 'invalid scan payload %', coalesce(payload::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The carrier''s data of the scan, as a JSON object (may be {}).';
	END IF;
	SELECT x.id INTO v_id FROM oms.shipments x
		WHERE x.tenant_id = v_tenant AND x.carrier = tracking_update.carrier AND x.tracking = tracking_update.tracking;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown tracking number "%" of carrier "%"', tracking, coalesce(carrier, 'NULL')
			USING ERRCODE = '22023', HINT = 'Tracking numbers are those given to oms.ship() (see oms.shipments).';
	END IF;
	s := oms._lock_shipment(v_tenant, v_id);

	INSERT INTO oms.tracking_events (tenant_id, shipment_id, status, occurred_at, payload)
		VALUES (v_tenant, s.id, status, at, payload)
		ON CONFLICT ON CONSTRAINT tracking_events_pkey DO NOTHING;
	v_new := FOUND;
	IF NOT v_new OR s.state = 'delivered' THEN
		RETURN s.state;			-- the same scan again, or news about a delivered shipment: nothing changes
	END IF;
	IF status = 'delivered' THEN
		PERFORM oms.deliver(s.id, at);
		RETURN 'delivered';
	END IF;
	IF s.status_at IS NOT NULL AND at < s.status_at THEN
		RETURN s.state;			-- an older scan arriving late: kept, but the state stays
	END IF;
	UPDATE oms.shipments x SET state = tracking_update.status, status_at = at WHERE x.tenant_id = v_tenant AND x.id = s.id;
	PERFORM oms._event(v_tenant, s.order_id, 'tracking',
		jsonb_build_object('shipment_id', s.id, 'carrier', s.carrier, 'tracking', s.tracking, 'status', status, 'at', at));
	RETURN status;
END
$$;
COMMENT ON FUNCTION oms.tracking_update(text, text, text, timestamptz, jsonb) IS 'Takes a carrier''s scan (in_transit, out_for_delivery, exception, delivered) of a tracking number: stored once (the same scan again changes nothing), moves the shipment''s state (an older scan does not move it back), delivered delivers; returns the shipment state';
