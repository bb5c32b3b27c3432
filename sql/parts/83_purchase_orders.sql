-- Purchase orders, transfer orders, and receipts that serve waiting customers.
--
-- Every open purchase order line and transfer line has one oms.supply row holding its open
-- quantity at its expected date (what time-phased ATP and planning count as on order). A receipt
-- adds to on_hand (movement "receipt" or "transfer_in"), shrinks the supply row, and in the same
-- transaction allocates the backordered and pre-ordered lines waiting for that SKU, first come
-- first served by placement time (oms._allocate_backorders).
--
-- Purchase order states: draft -> sent -> partially_received -> received, and cancelled from any
-- open state. Transfer states: in_transit -> partially_received -> received, or cancelled.
--
-- Lock order: a receipt locks the purchase order, then the orders it may serve (by id), then stock
-- rows in (item, location) order, the order cancel_order and place_order take them in.

CREATE TABLE oms.purchase_orders (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	supplier_id		int NOT NULL,
	location_id		int NOT NULL,
	state			text NOT NULL DEFAULT 'draft'
					CHECK (state IN ('draft', 'sent', 'partially_received', 'received', 'cancelled')),
	expected_date	date NOT NULL,
	origin			text NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'replenishment')),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		text NOT NULL DEFAULT session_user,
	sent_at			timestamptz,
	closed_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, supplier_id) REFERENCES oms.suppliers,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
CREATE INDEX purchase_orders_open_idx ON oms.purchase_orders (tenant_id, expected_date)
	WHERE state IN ('draft', 'sent', 'partially_received');
COMMENT ON TABLE oms.purchase_orders IS 'Purchase orders to a supplier for one receiving location: draft, sent, partially_received, received, cancelled';

CREATE TABLE oms.purchase_order_lines (
	tenant_id		int NOT NULL,
	po_id			bigint NOT NULL,
	line_no			int NOT NULL CHECK (line_no > 0),
	item_id			int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	qty_received	bigint NOT NULL DEFAULT 0 CHECK (qty_received >= 0),
	qty_cancelled	bigint NOT NULL DEFAULT 0 CHECK (qty_cancelled >= 0),
	unit_cost		numeric CHECK (unit_cost >= 0),
	expected_date	date NOT NULL,
	supply_id		bigint,
	PRIMARY KEY (tenant_id, po_id, line_no),
	UNIQUE (tenant_id, po_id, item_id),
	FOREIGN KEY (tenant_id, po_id) REFERENCES oms.purchase_orders,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supply_id) REFERENCES oms.supply ON DELETE SET NULL (supply_id),
	CONSTRAINT purchase_order_lines_buckets CHECK (qty_received + qty_cancelled <= qty)
);
CREATE INDEX purchase_order_lines_item_idx ON oms.purchase_order_lines (tenant_id, item_id);
COMMENT ON TABLE oms.purchase_order_lines IS 'Lines of purchase orders: SKU, quantity ordered, received and cancelled, unit cost, expected date, and the supply row of the open quantity';

CREATE TABLE oms.transfer_orders (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	from_location_id	int NOT NULL,
	to_location_id		int NOT NULL,
	state				text NOT NULL DEFAULT 'in_transit'
						CHECK (state IN ('in_transit', 'partially_received', 'received', 'cancelled')),
	expected_date		date NOT NULL,
	origin				text NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'replenishment')),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by			text NOT NULL DEFAULT session_user,
	closed_at			timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, from_location_id) REFERENCES oms.locations,
	FOREIGN KEY (tenant_id, to_location_id) REFERENCES oms.locations,
	CHECK (from_location_id <> to_location_id)
);
COMMENT ON TABLE oms.transfer_orders IS 'Stock moving between two locations: taken from the source when created (in transit), received at the destination';

CREATE TABLE oms.transfer_order_lines (
	tenant_id		int NOT NULL,
	transfer_id		bigint NOT NULL,
	line_no			int NOT NULL CHECK (line_no > 0),
	item_id			int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	qty_received	bigint NOT NULL DEFAULT 0 CHECK (qty_received >= 0),
	qty_cancelled	bigint NOT NULL DEFAULT 0 CHECK (qty_cancelled >= 0),
	supply_id		bigint,
	PRIMARY KEY (tenant_id, transfer_id, line_no),
	UNIQUE (tenant_id, transfer_id, item_id),
	FOREIGN KEY (tenant_id, transfer_id) REFERENCES oms.transfer_orders,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supply_id) REFERENCES oms.supply ON DELETE SET NULL (supply_id),
	CONSTRAINT transfer_order_lines_buckets CHECK (qty_received + qty_cancelled <= qty)
);
CREATE INDEX transfer_order_lines_item_idx ON oms.transfer_order_lines (tenant_id, item_id);
COMMENT ON TABLE oms.transfer_order_lines IS 'Lines of transfer orders: SKU, quantity sent, received and cancelled, and the supply row at the destination';

-- The lines of a purchase order, transfer or receipt payload: [{"sku": "A", "qty": 10, "unit_cost": 2.5}],
-- checked (22023 naming the field and value), one line per SKU, in payload order.
CREATE FUNCTION oms._parse_stock_lines(p_tenant int, p_lines jsonb, p_what text, p_keys text[])
	RETURNS TABLE (line_no int, item_id int, sku text, qty bigint, unit_cost numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_hint	text := format('Lines are [{"sku": "SKU-1", "qty": 10%s}]: known SKUs, one line each, whole quantities of at least 1.',
					   CASE WHEN 'unit_cost' = ANY (p_keys) THEN ', "unit_cost": 2.50' ELSE '' END);
	v		jsonb;
	i		int := 0;
	v_key	text;
BEGIN
	IF p_lines IS NULL OR jsonb_typeof(p_lines) <> 'array' OR jsonb_array_length(p_lines) = 0 THEN
		RAISE EXCEPTION '% field "lines" must be a non-empty array, got %', p_what, coalesce(left(p_lines::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = v_hint;
	END IF;
	IF jsonb_array_length(p_lines) > 10000 THEN
		RAISE EXCEPTION '% field "lines" has % lines, more than 10000', p_what, jsonb_array_length(p_lines)
			USING ERRCODE = '22023', HINT = 'Split it: at most 10000 lines.';
	END IF;
	FOR v IN SELECT a FROM jsonb_array_elements(p_lines) a LOOP
		IF jsonb_typeof(v) <> 'object' THEN
			RAISE EXCEPTION '% field "lines[%]" must be an object, got %', p_what, i, left(v::text, 80)
				USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		SELECT k INTO v_key FROM jsonb_object_keys(v) k WHERE k <> ALL (p_keys) ORDER BY k LIMIT 1;
		IF v_key IS NOT NULL THEN
			RAISE EXCEPTION '% field "lines[%].%" is not known', p_what, i, v_key
				USING ERRCODE = '22023', HINT = 'Known fields of a line: ' || array_to_string(p_keys, ', ') || '.';
		END IF;
		IF jsonb_typeof(v -> 'sku') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION '% field "lines[%].sku" must be a SKU, got %', p_what, i, coalesce((v -> 'sku')::text, 'nothing')
				USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		line_no := i + 1;
		sku := v ->> 'sku';
		SELECT it.id INTO item_id FROM oms.items it WHERE it.tenant_id = p_tenant AND it.sku = v ->> 'sku';
		IF item_id IS NULL THEN
			RAISE EXCEPTION 'unknown SKU "%" in % field "lines[%].sku"', v ->> 'sku', p_what, i
				USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
		END IF;
		qty := oms._json_number(v, p_what, 'qty', 0, true, 1e12, true, v_hint, format('lines[%s].', i));
		IF qty IS NULL THEN
			RAISE EXCEPTION '% field "lines[%].qty" is required', p_what, i USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		unit_cost := oms._json_number(v, p_what, 'unit_cost', 0, false, 1e15, false, 'The purchase price of one unit, 0 or more.',
									  format('lines[%s].', i));
		RETURN NEXT;
		i := i + 1;
	END LOOP;
	SELECT s INTO v_key FROM (SELECT a ->> 'sku' AS s FROM jsonb_array_elements(p_lines) a) x
	 GROUP BY s HAVING count(*) > 1 ORDER BY s LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line of the %', v_key, p_what
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._parse_stock_lines(int, jsonb, text, text[]) IS 'Internal: the checked lines of a purchase order, transfer or receipt payload (22023 naming the field and the value)';

-- Backorders served by stock that has just arrived: the backordered and pre-ordered lines of the
-- SKU that this location can serve (lines waiting at this location, e.g. click & collect at this
-- store, and lines of shipped orders not yet assigned when the location can ship), first come
-- first served by the order's placement time, each in full while the available stock
-- (on_hand - reserved - safety_stock) covers it; the first line it cannot cover stops the round, so
-- that a later order never overtakes an earlier one. Each served line moves backordered/preordered
-- -> allocated at this location with its reservation (the reservation trigger checks and takes
-- the stock), its order's state follows its lines (oms._rollup), the order gets the event
-- line_allocated, and a channel with auto_release releases it (oms._auto_release). One function,
-- so that routing can switch it to its engine.
CREATE FUNCTION oms._allocate_backorders(p_tenant int, p_item int, p_location int)
	RETURNS TABLE (order_id bigint, line_no int, qty int)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_available	bigint;
	r			record;
	v_orders	bigint[] := '{}';
	v_lines		int[] := '{}';
	v_order		bigint;
	v_state		oms.order_state;
BEGIN
	SELECT s.on_hand - s.reserved - s.safety_stock INTO v_available
	  FROM oms.stock s
	 WHERE s.tenant_id = p_tenant AND s.item_id = p_item AND s.location_id = p_location;
	IF coalesce(v_available, 0) <= 0 OR NOT EXISTS (SELECT FROM oms.locations l
													 WHERE l.tenant_id = p_tenant AND l.id = p_location AND l.active) THEN
		RETURN;
	END IF;
	PERFORM pg_catalog.set_config('oms.reason', 'supply received', true);
	FOR r IN
		SELECT l.order_id, l.line_no, l.qty - l.qty_cancelled AS open_qty
		  FROM oms.order_lines l
		  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
		 WHERE l.tenant_id = p_tenant AND l.item_id = p_item
		   AND l.state IN ('backordered', 'preordered')
		   AND l.qty - l.qty_cancelled > 0
		   AND (l.location_id = p_location
				OR (l.location_id IS NULL AND o.pickup_location_id IS NULL
					AND EXISTS (SELECT FROM oms.locations loc
								 WHERE loc.tenant_id = p_tenant AND loc.id = p_location AND loc.can_ship)))
		 ORDER BY o.placed_at, o.id, l.line_no
	LOOP
		EXIT WHEN r.open_qty > v_available;
		UPDATE oms.order_lines l SET state = 'allocated', location_id = p_location
		 WHERE l.tenant_id = p_tenant AND l.order_id = r.order_id AND l.line_no = r.line_no;
		INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
			VALUES (p_tenant, p_item, p_location, r.open_qty, r.order_id, r.line_no);
		v_available := v_available - r.open_qty;
		v_orders := v_orders || r.order_id;
		v_lines := v_lines || r.line_no;
		order_id := r.order_id;
		line_no := r.line_no;
		qty := r.open_qty;
		RETURN NEXT;
	END LOOP;
	-- Each order served, in id order (the callers hold their locks): its state follows its lines
	-- (on_hold while a hold is open), the event line_allocated says which lines now have stock,
	-- and a channel with auto_release releases it when nothing blocks, as after placement.
	FOR v_order IN SELECT DISTINCT x.o FROM unnest(v_orders) AS x(o) ORDER BY x.o LOOP
		v_state := oms._rollup(p_tenant, v_order);
		PERFORM oms._event(p_tenant, v_order, 'line_allocated', pg_catalog.jsonb_build_object(
			'lines', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
																				'qty', l.qty - l.qty_cancelled, 'location', loc.code)
												   ORDER BY l.line_no)
						FROM unnest(v_orders, v_lines) AS s(o, line_no)
						JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = s.o AND l.line_no = s.line_no
						JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
					   WHERE s.o = v_order),
			'reason', 'supply received', 'order_state', v_state::text));
		PERFORM oms._auto_release(p_tenant, v_order);
	END LOOP;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
END
$$;
COMMENT ON FUNCTION oms._allocate_backorders(int, int, int) IS 'Internal: allocates the backordered and pre-ordered lines of an item that a location can serve, first come first served by placement time, while its available stock covers them; rolls each order up, writes line_allocated and releases it when its channel auto-releases; returns the lines served';

-- Locks the orders that a receipt of these items at this location may serve, by id, before any
-- stock row is locked (the order cancel_order takes: order, then stock).
CREATE FUNCTION oms._lock_waiting_orders(p_tenant int, p_items int[], p_location int) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM pg_catalog.count(*) FROM (
		SELECT o.id FROM oms.orders o
		 WHERE o.tenant_id = p_tenant
		   AND o.id IN (SELECT l.order_id FROM oms.order_lines l
						 WHERE l.tenant_id = p_tenant AND l.item_id = ANY (p_items)
						   AND l.state IN ('backordered', 'preordered')
						   AND (l.location_id = p_location OR l.location_id IS NULL))
		 ORDER BY o.id
		 FOR UPDATE) x;
END
$$;
COMMENT ON FUNCTION oms._lock_waiting_orders(int, int[], int) IS 'Internal: locks, in id order, the orders whose backorders a receipt of these items at this location may serve';

-- Units arriving at a location: on_hand grows (with its movement), then the waiting backorders
-- are served. Returns the new on_hand and what was allocated.
CREATE FUNCTION oms._receive_stock(p_tenant int, p_item int, p_location int, p_qty bigint, p_kind text,
								   p_reason text, p_reference text,
								   OUT on_hand bigint, OUT lines_allocated int, OUT units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
		VALUES (p_tenant, p_item, p_location, p_qty)
		ON CONFLICT (tenant_id, item_id, location_id)
		DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
		RETURNING s.on_hand INTO on_hand;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
		VALUES (p_tenant, p_item, p_location, p_kind, p_qty, on_hand, p_reason, p_reference, oms._actor());
	SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(a.qty), 0) INTO lines_allocated, units_allocated
	  FROM oms._allocate_backorders(p_tenant, p_item, p_location) a;
END
$$;
COMMENT ON FUNCTION oms._receive_stock(int, int, int, bigint, text, text, text) IS 'Internal: adds received units to on_hand with a movement, then allocates the backorders they can serve';

CREATE FUNCTION oms._new_purchase_order(p_tenant int, p_supplier int, p_location int, p_state text, p_origin text,
										p_items int[], p_qtys bigint[], p_costs numeric[], p_dates date[])
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_po		bigint;
	v_expected	date := (SELECT max(d) FROM unnest(p_dates) d);	-- (not in the VALUES: Citus refuses subqueries there)
BEGIN
	INSERT INTO oms.purchase_orders AS po (tenant_id, supplier_id, location_id, state, expected_date, origin, created_by, sent_at)
		VALUES (p_tenant, p_supplier, p_location, p_state, v_expected, p_origin, oms._actor(),
				CASE WHEN p_state = 'sent' THEN pg_catalog.now() END)
		RETURNING po.id INTO v_po;
	WITH l AS (
		SELECT i AS line_no, p_items[i] AS item_id, p_qtys[i] AS qty, p_costs[i] AS unit_cost, p_dates[i] AS expected_date
		  FROM generate_subscripts(p_items, 1) i
	), s AS (
		INSERT INTO oms.supply (tenant_id, item_id, location_id, qty, expected_date, kind, reference)
		SELECT p_tenant, l.item_id, p_location, l.qty, l.expected_date, 'purchase_order', 'PO-' || v_po || ':' || l.line_no
		  FROM l ORDER BY l.line_no
		RETURNING id, item_id
	)
	INSERT INTO oms.purchase_order_lines (tenant_id, po_id, line_no, item_id, qty, unit_cost, expected_date, supply_id)
	SELECT p_tenant, v_po, l.line_no, l.item_id, l.qty,
		   coalesce(l.unit_cost, (SELECT it.unit_cost FROM oms.items it WHERE it.tenant_id = p_tenant AND it.id = l.item_id)),
		   l.expected_date, s.id
	  FROM l JOIN s ON s.item_id = l.item_id;
	RETURN v_po;
END
$$;
COMMENT ON FUNCTION oms._new_purchase_order(int, int, int, text, text, int[], bigint[], numeric[], date[]) IS 'Internal: inserts a purchase order, its lines and one supply row per line';

CREATE FUNCTION oms.create_purchase_order(supplier text, location text, lines jsonb, expected date)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_supplier	int := oms._supplier_id(v_tenant, supplier);
	v_loc		int := oms._location_id(v_tenant, location);
	v_items		int[];
	v_qtys		bigint[];
	v_costs		numeric[];
BEGIN
	IF expected IS NULL THEN
		RAISE EXCEPTION 'an expected date is required for a purchase order'
			USING ERRCODE = '22023', HINT = 'The day the supplier should deliver; it becomes the supply''s expected date.';
	END IF;
	SELECT array_agg(l.item_id ORDER BY l.line_no), array_agg(l.qty ORDER BY l.line_no), array_agg(l.unit_cost ORDER BY l.line_no)
	  INTO v_items, v_qtys, v_costs
	  FROM oms._parse_stock_lines(v_tenant, lines, 'purchase order', ARRAY['sku', 'qty', 'unit_cost']) l;
	RETURN oms._new_purchase_order(v_tenant, v_supplier, v_loc, 'sent', 'manual', v_items, v_qtys, v_costs,
								   array_fill(expected, ARRAY[cardinality(v_items)]));
END
$$;
COMMENT ON FUNCTION oms.create_purchase_order(text, text, jsonb, date) IS 'Creates a purchase order (state sent) to a supplier for a receiving location, with its lines ([{"sku", "qty", "unit_cost"}]) and their incoming supply at the expected date; returns its id';

-- The purchase order, locked; 22023 when unknown.
CREATE FUNCTION oms._lock_purchase_order(p_tenant int, p_po bigint) RETURNS oms.purchase_orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.purchase_orders;
BEGIN
	SELECT * INTO v FROM oms.purchase_orders po WHERE po.tenant_id = p_tenant AND po.id = p_po FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown purchase order %', coalesce(p_po::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Purchase orders are rows of oms.purchase_orders of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_purchase_order(int, bigint) IS 'Internal: locks and returns a purchase order; 22023 when unknown';

CREATE FUNCTION oms.send_purchase_order(po_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
BEGIN
	IF v.state = 'draft' THEN
		UPDATE oms.purchase_orders po SET state = 'sent', sent_at = pg_catalog.now()
		 WHERE po.tenant_id = v_tenant AND po.id = v.id;
		RETURN 'sent';
	ELSIF v.state IN ('sent', 'partially_received') THEN
		RETURN v.state;
	END IF;
	RAISE EXCEPTION 'purchase order % cannot be sent: it is %', v.id, v.state
		USING ERRCODE = '55000', HINT = 'Only a draft purchase order is sent.';
END
$$;
COMMENT ON FUNCTION oms.send_purchase_order(bigint) IS 'Marks a draft purchase order as sent to its supplier (a sent one is left as it is); returns its state';

CREATE FUNCTION oms.cancel_purchase_order(po_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
BEGIN
	IF v.state = 'cancelled' THEN
		RETURN v.state;
	ELSIF v.state = 'received' THEN
		RAISE EXCEPTION 'purchase order % cannot be cancelled: it is received', v.id
			USING ERRCODE = '55000', HINT = 'Everything on it has arrived; return goods to the supplier with oms.adjust_stock.';
	END IF;
	DELETE FROM oms.supply s
	 WHERE s.tenant_id = v_tenant
	   AND s.id IN (SELECT l.supply_id FROM oms.purchase_order_lines l WHERE l.tenant_id = v_tenant AND l.po_id = v.id);
	UPDATE oms.purchase_order_lines l SET qty_cancelled = l.qty - l.qty_received
	 WHERE l.tenant_id = v_tenant AND l.po_id = v.id AND l.qty_received + l.qty_cancelled < l.qty;
	UPDATE oms.purchase_orders po SET state = 'cancelled', closed_at = pg_catalog.now()
	 WHERE po.tenant_id = v_tenant AND po.id = v.id;
	RETURN 'cancelled';
END
$$;
COMMENT ON FUNCTION oms.cancel_purchase_order(bigint) IS 'Cancels what is still open on a purchase order and removes its incoming supply; a cancelled one is left as it is; a received one: 55000';

-- What a receipt payload asks for, checked against the open lines (qty - received - cancelled) of a
-- purchase order or transfer; NULL lines: everything open.
CREATE FUNCTION oms._receipt_lines(p_tenant int, p_open jsonb, p_lines jsonb, p_what text)
	RETURNS TABLE (line_no int, item_id int, sku text, qty bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_open	jsonb;
BEGIN
	IF p_lines IS NULL THEN
		RETURN QUERY SELECT (o ->> 'line_no')::int, (o ->> 'item_id')::int, o ->> 'sku', (o ->> 'open')::bigint
					   FROM jsonb_array_elements(p_open) o WHERE (o ->> 'open')::bigint > 0
					  ORDER BY (o ->> 'line_no')::int;
		RETURN;
	END IF;
	FOR r IN SELECT * FROM oms._parse_stock_lines(p_tenant, p_lines, 'receipt', ARRAY['sku', 'qty']) LOOP
		SELECT o INTO v_open FROM jsonb_array_elements(p_open) o WHERE (o ->> 'item_id')::int = r.item_id;
		IF v_open IS NULL THEN
			RAISE EXCEPTION 'SKU "%" is not on %', r.sku, p_what
				USING ERRCODE = '22023', HINT = 'A receipt lists SKUs of the order''s lines.';
		END IF;
		IF r.qty > (v_open ->> 'open')::bigint THEN
			RAISE EXCEPTION 'receipt of % units of SKU "%" exceeds what is open on %', r.qty, r.sku, p_what
				USING ERRCODE = 'OM020',
				      DETAIL = format('Ordered %s, received %s, cancelled %s: %s open.', v_open ->> 'qty',
									  v_open ->> 'received', v_open ->> 'cancelled', v_open ->> 'open'),
				      HINT = 'Receive at most the open quantity; book extra units with oms.adjust_stock, or order them.';
		END IF;
		line_no := (v_open ->> 'line_no')::int;
		item_id := r.item_id;
		sku := r.sku;
		qty := r.qty;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._receipt_lines(int, jsonb, jsonb, text) IS 'Internal: the checked lines of a receipt against the open lines of its order (22023, OM020 for more than is open); NULL: all that is open';

-- A receipt of a purchase order or a transfer (p_kind) at its location, shared by both: the lines
-- are checked against what is open, the orders waiting for those SKUs there are locked, and per
-- line (in item order): received grows, the line's supply row shrinks or goes, on_hand grows
-- (movement receipt or transfer_in) and waiting backorders are allocated. The caller locks the
-- order before and updates its state after.
CREATE FUNCTION oms._receive_lines(p_tenant int, p_kind text, p_id bigint, p_location int, p_lines jsonb)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_what		text := p_kind || ' ' || p_id;
	v_po		boolean := p_kind = 'purchase order';
	v_open		jsonb;
	v_line_nos	int[];
	v_items		int[];
	v_skus		text[];
	v_qtys		bigint[];
	v_supply	bigint;
	r			record;
	x			record;
BEGIN
	SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'item_id', l.item_id, 'sku', i.sku, 'qty', l.qty,
										'received', l.qty_received, 'cancelled', l.qty_cancelled,
										'open', l.qty - l.qty_received - l.qty_cancelled))
	  INTO v_open
	  FROM (SELECT pl.line_no, pl.item_id, pl.qty, pl.qty_received, pl.qty_cancelled FROM oms.purchase_order_lines pl
			 WHERE v_po AND pl.tenant_id = p_tenant AND pl.po_id = p_id
			UNION ALL
			SELECT tl.line_no, tl.item_id, tl.qty, tl.qty_received, tl.qty_cancelled FROM oms.transfer_order_lines tl
			 WHERE NOT v_po AND tl.tenant_id = p_tenant AND tl.transfer_id = p_id) l
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = l.item_id;
	SELECT array_agg(t.line_no), array_agg(t.item_id), array_agg(t.sku), array_agg(t.qty)
	  INTO v_line_nos, v_items, v_skus, v_qtys
	  FROM oms._receipt_lines(p_tenant, v_open, p_lines, v_what) t;

	PERFORM oms._lock_waiting_orders(p_tenant, v_items, p_location);
	FOR r IN SELECT t.* FROM unnest(v_line_nos, v_items, v_skus, v_qtys) AS t(line_no, item_id, sku, qty)
			  ORDER BY t.item_id LOOP
		IF v_po THEN
			UPDATE oms.purchase_order_lines l SET qty_received = l.qty_received + r.qty
			 WHERE l.tenant_id = p_tenant AND l.po_id = p_id AND l.line_no = r.line_no
			RETURNING l.qty - l.qty_received - l.qty_cancelled, l.supply_id INTO still_open, v_supply;
		ELSE
			UPDATE oms.transfer_order_lines l SET qty_received = l.qty_received + r.qty
			 WHERE l.tenant_id = p_tenant AND l.transfer_id = p_id AND l.line_no = r.line_no
			RETURNING l.qty - l.qty_received - l.qty_cancelled, l.supply_id INTO still_open, v_supply;
		END IF;
		UPDATE oms.supply s SET qty = still_open WHERE s.tenant_id = p_tenant AND s.id = v_supply AND still_open > 0;
		DELETE FROM oms.supply s WHERE s.tenant_id = p_tenant AND s.id = v_supply AND still_open = 0;
		x := oms._receive_stock(p_tenant, r.item_id, p_location, r.qty, CASE WHEN v_po THEN 'receipt' ELSE 'transfer_in' END,
								v_what, CASE WHEN v_po THEN 'PO-' ELSE 'TO-' END || p_id || ':' || r.line_no);
		sku := r.sku;
		received := r.qty;
		on_hand := x.on_hand;
		backorders_allocated := x.lines_allocated;
		units_allocated := x.units_allocated;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._receive_lines(int, text, bigint, int, jsonb) IS 'Internal: books the lines of a receipt of a purchase order or transfer (p_kind ''purchase order'' or ''transfer'') at its location: received, supply, on_hand, backorders allocated; the caller locks the order and updates its state';

CREATE FUNCTION oms.receive_purchase_order(po_id bigint, lines jsonb DEFAULT NULL)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
	v_open		boolean;
	v_now		timestamptz := pg_catalog.now();
BEGIN
	IF v.state IN ('received', 'cancelled') THEN
		RAISE EXCEPTION 'purchase order % is closed: it is %', v.id, v.state
			USING ERRCODE = '55000', HINT = 'Receipts are booked on open purchase orders (draft, sent, partially_received).';
	END IF;
	RETURN QUERY SELECT * FROM oms._receive_lines(v_tenant, 'purchase order', v.id, v.location_id, lines);
	-- (the open lines read first, and now() as a value: Citus refuses subqueries and volatile
	-- functions in an UPDATE's SET)
	v_open := EXISTS (SELECT FROM oms.purchase_order_lines l
					   WHERE l.tenant_id = v_tenant AND l.po_id = v.id AND l.qty_received + l.qty_cancelled < l.qty);
	UPDATE oms.purchase_orders po
	   SET state = CASE WHEN v_open THEN 'partially_received' ELSE 'received' END,
		   sent_at = coalesce(po.sent_at, v_now),
		   closed_at = CASE WHEN v_open THEN po.closed_at ELSE v_now END
	 WHERE po.tenant_id = v_tenant AND po.id = v.id;
END
$$;
COMMENT ON FUNCTION oms.receive_purchase_order(bigint, jsonb) IS 'Books a (partial) receipt of a purchase order ([{"sku", "qty"}]; NULL: everything open): on_hand grows (movement receipt), supply shrinks, waiting backorders of those SKUs are allocated first come first served; OM020 beyond what is open, 55000 on a closed order';

-- Transfers: created by hand or by oms.run_replenishment. The units leave the source at once
-- (movement transfer_out; never below what is reserved there) and wait as supply at the
-- destination until received.
CREATE FUNCTION oms._new_transfer(p_tenant int, p_from int, p_to int, p_expected date, p_origin text,
								  p_items int[], p_qtys bigint[]) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id	bigint;
	v_new	bigint;
	r		record;
BEGIN
	IF p_from = p_to THEN
		RAISE EXCEPTION 'a transfer needs two different locations'
			USING ERRCODE = '22023', HINT = 'Name the location the stock leaves and the one it goes to.';
	END IF;
	INSERT INTO oms.transfer_orders AS t (tenant_id, from_location_id, to_location_id, expected_date, origin, created_by)
		VALUES (p_tenant, p_from, p_to, p_expected, p_origin, oms._actor())
		RETURNING t.id INTO v_id;
	FOR r IN SELECT i AS line_no, p_items[i] AS item_id, p_qtys[i] AS qty
			   FROM generate_subscripts(p_items, 1) i ORDER BY p_items[i] LOOP
		UPDATE oms.stock s SET on_hand = s.on_hand - r.qty, updated_at = pg_catalog.now()
		 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_from
		   AND s.on_hand - s.reserved >= r.qty
		RETURNING s.on_hand INTO v_new;
		IF v_new IS NULL THEN
			RAISE EXCEPTION 'insufficient stock to transfer % units of SKU "%" from location "%"', r.qty,
					(SELECT i.sku FROM oms.items i WHERE i.tenant_id = p_tenant AND i.id = r.item_id),
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_from)
				USING ERRCODE = 'OM002',
				      DETAIL = format('Unreserved on hand there: %s.',
									  coalesce((SELECT s.on_hand - s.reserved FROM oms.stock s
												 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_from), 0)),
				      HINT = 'A transfer takes only units that no order has reserved.';
		END IF;
		INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
			VALUES (p_tenant, r.item_id, p_from, 'transfer_out', -r.qty, v_new, 'transfer ' || v_id, 'TO-' || v_id || ':' || r.line_no, oms._actor());
		WITH s AS (
			INSERT INTO oms.supply (tenant_id, item_id, location_id, qty, expected_date, kind, reference)
				VALUES (p_tenant, r.item_id, p_to, r.qty, p_expected, 'transfer', 'TO-' || v_id || ':' || r.line_no)
				RETURNING id
		)
		INSERT INTO oms.transfer_order_lines (tenant_id, transfer_id, line_no, item_id, qty, supply_id)
			SELECT p_tenant, v_id, r.line_no, r.item_id, r.qty, s.id FROM s;
	END LOOP;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._new_transfer(int, int, int, date, text, int[], bigint[]) IS 'Internal: creates a transfer: takes the units from the source (transfer_out), adds supply at the destination';

CREATE FUNCTION oms.create_transfer(from_location text, to_location text, lines jsonb, expected date)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_from		int := oms._location_id(v_tenant, from_location);
	v_to		int := oms._location_id(v_tenant, to_location);
	v_items		int[];
	v_qtys		bigint[];
BEGIN
	IF expected IS NULL THEN
		RAISE EXCEPTION 'an expected date is required for a transfer'
			USING ERRCODE = '22023', HINT = 'The day the stock should arrive; it becomes the supply''s expected date.';
	END IF;
	SELECT array_agg(l.item_id ORDER BY l.line_no), array_agg(l.qty ORDER BY l.line_no) INTO v_items, v_qtys
	  FROM oms._parse_stock_lines(v_tenant, lines, 'transfer', ARRAY['sku', 'qty']) l;
	RETURN oms._new_transfer(v_tenant, v_from, v_to, expected, 'manual', v_items, v_qtys);
END
$$;
COMMENT ON FUNCTION oms.create_transfer(text, text, jsonb, date) IS 'Moves stock between locations: the units ([{"sku", "qty"}]) leave the source now (never below what is reserved there) and become supply at the destination until received; returns the transfer id';

CREATE FUNCTION oms._lock_transfer(p_tenant int, p_id bigint) RETURNS oms.transfer_orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.transfer_orders;
BEGIN
	SELECT * INTO v FROM oms.transfer_orders t WHERE t.tenant_id = p_tenant AND t.id = p_id FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown transfer %', coalesce(p_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Transfers are rows of oms.transfer_orders of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_transfer(int, bigint) IS 'Internal: locks and returns a transfer order; 22023 when unknown';

CREATE FUNCTION oms.receive_transfer(transfer_id bigint, lines jsonb DEFAULT NULL)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.transfer_orders := oms._lock_transfer(v_tenant, transfer_id);
BEGIN
	IF v.state IN ('received', 'cancelled') THEN
		RAISE EXCEPTION 'transfer % is closed: it is %', v.id, v.state
			USING ERRCODE = '55000', HINT = 'Receipts are booked on open transfers (in_transit, partially_received).';
	END IF;
	RETURN QUERY SELECT * FROM oms._receive_lines(v_tenant, 'transfer', v.id, v.to_location_id, lines);
	UPDATE oms.transfer_orders t
	   SET state = CASE WHEN NOT EXISTS (SELECT FROM oms.transfer_order_lines l
										  WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id
											AND l.qty_received + l.qty_cancelled < l.qty)
						THEN 'received' ELSE 'partially_received' END
	 WHERE t.tenant_id = v_tenant AND t.id = v.id;
	UPDATE oms.transfer_orders t SET closed_at = pg_catalog.now()
	 WHERE t.tenant_id = v_tenant AND t.id = v.id AND t.state = 'received';
END
$$;
COMMENT ON FUNCTION oms.receive_transfer(bigint, jsonb) IS 'Books a (partial) receipt of a transfer at its destination ([{"sku", "qty"}]; NULL: everything open): on_hand grows (transfer_in), supply shrinks, waiting backorders are allocated; OM020 beyond what is open, 55000 on a closed transfer';

CREATE FUNCTION oms.cancel_transfer(transfer_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.transfer_orders := oms._lock_transfer(v_tenant, transfer_id);
	r			record;
BEGIN
	IF v.state = 'cancelled' THEN
		RETURN v.state;
	ELSIF v.state = 'received' THEN
		RAISE EXCEPTION 'transfer % cannot be cancelled: it is received', v.id
			USING ERRCODE = '55000', HINT = 'Move the stock back with a new transfer.';
	END IF;
	PERFORM oms._lock_waiting_orders(v_tenant, (SELECT array_agg(l.item_id) FROM oms.transfer_order_lines l
												 WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id), v.from_location_id);
	FOR r IN SELECT l.line_no, l.item_id, l.qty - l.qty_received - l.qty_cancelled AS open_qty, l.supply_id
			   FROM oms.transfer_order_lines l
			  WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id AND l.qty - l.qty_received - l.qty_cancelled > 0
			  ORDER BY l.item_id LOOP
		DELETE FROM oms.supply s WHERE s.tenant_id = v_tenant AND s.id = r.supply_id;
		UPDATE oms.transfer_order_lines l SET qty_cancelled = l.qty_cancelled + r.open_qty
		 WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id AND l.line_no = r.line_no;
		PERFORM oms._receive_stock(v_tenant, r.item_id, v.from_location_id, r.open_qty, 'transfer_in',
								   'transfer ' || v.id || ' cancelled', 'TO-' || v.id || ':' || r.line_no);
	END LOOP;
	UPDATE oms.transfer_orders t SET state = 'cancelled', closed_at = pg_catalog.now()
	 WHERE t.tenant_id = v_tenant AND t.id = v.id;
	RETURN 'cancelled';
END
$$;
COMMENT ON FUNCTION oms.cancel_transfer(bigint) IS 'Cancels what is still in transit on a transfer: the units go back on hand at the source (movement transfer_in), the destination''s supply is removed';

SELECT pg_catalog.pg_extension_config_dump('oms.purchase_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_order_lines', '');
