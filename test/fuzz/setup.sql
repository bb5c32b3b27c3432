-- Data and harness of the fuzzer (test/fuzz/fuzz.pl): tenant "fuzz" with a little of everything
-- (two channels, a warehouse and a pickup store, three SKUs, an order, a live cart hold), and
-- schema "fuzz" with fuzz.try(kind, input), which runs one input against one target and returns
-- its outcome without leaving anything behind.
SELECT oms.create_tenant('fuzz', 'Fuzzer') > 0 AS created;
SET oms.tenant = 'fuzz';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web', 'web', 'Web', 'EUR'), ('pos', 'pos', 'Store tills', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH', 'warehouse', 'Warehouse', 1, true, false),
	('ST', 'store', 'Store', 5, false, true);
INSERT INTO oms.items (sku, name, backorderable) VALUES
	('SKU-1', 'One', false), ('SKU-2', 'Two', false), ('BO-1', 'Backorderable', true);
-- For routing and promises: coordinates, a carrier service, a pre-orderable item with supply.
UPDATE oms.locations SET latitude = 45.5, longitude = 9.2, cutoff_time = '14:00', daily_capacity = 1000
 WHERE tenant_id = oms.current_tenant_id() AND code = 'WH';
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, km_per_day, co2_g_per_km)
	VALUES ('post', 'standard', 'standard', 4, 0.5, 0.002, 300, 1);
INSERT INTO oms.items (sku, name, weight, preorderable) VALUES ('PRE-1', 'Pre-orderable', 1.5, true);
INSERT INTO oms.supply (item_id, location_id, qty, expected_date)
	SELECT i.id, l.id, 10, '2030-03-01' FROM oms.items i, oms.locations l
	 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'PRE-1' AND l.tenant_id = i.tenant_id AND l.code = 'WH';
SELECT oms.set_stock('SKU-1', 'WH', 100, 'fuzz'), oms.set_stock('SKU-2', 'WH', 5, 'fuzz'),
	   oms.set_stock('SKU-1', 'ST', 3, 'fuzz');
SELECT oms.place_order('{"channel": "web", "external_id": "EXISTING-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 1}]}') > 0 AS placed;
SELECT held_qty FROM oms.hold('cart-held', 'SKU-1', 2, NULL, '30 days');
-- Orders further on, for the lifecycle targets: REL-1 released (order 2), SHIP-1 shipped and
-- delivered (order 3, shipment 1) with an open return (RMA 1) of one unit.
UPDATE oms.channels SET requires_authorization = false WHERE tenant_id = oms.current_tenant_id();
SELECT oms.place_order('{"channel": "web", "external_id": "REL-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 5}, {"sku": "SKU-2", "qty": 1, "unit_price": 7}]}') AS rel_1;
SELECT oms.release_order(2);
SELECT oms.place_order('{"channel": "web", "external_id": "SHIP-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 3, "unit_price": 5}]}') AS ship_1;
SELECT oms.release_order(3);
SELECT oms.pack(3, 'WH') AS shipment;
SELECT oms.ship(1, 'dhl.express', 'FUZZ-T1');
SELECT oms.deliver(1);
SELECT oms.create_return(3, '[{"line_no": 1, "qty": 1}]', 'fuzz') AS rma;

CREATE SCHEMA fuzz;

-- Runs one input against one target. Returns '00000' when the target accepted it (whatever it
-- did is then undone), the SQLSTATE and message of the target's error, or 'input:SQLSTATE' when
-- PostgreSQL itself refused to turn the input into the target's argument types (not valid
-- UTF-8, not JSON, not an int...): those inputs never reached oms.
CREATE FUNCTION fuzz.try(kind text, raw bytea) RETURNS text
	LANGUAGE plpgsql
	SET search_path = pg_catalog
AS $$
DECLARE
	input	text;
	j		jsonb;
	a		text[];
	n1		bigint;
	n2		int;
	iv		interval;
	j1		jsonb;
	j2		jsonb;
	d		date;
BEGIN
	-- 1. Arguments: PostgreSQL's own input functions.
	BEGIN
		input := convert_from(raw, 'UTF8');
		IF kind NOT IN ('order_state', 'line_state', 'tenant', 'rollup_final') THEN
			j := input::jsonb;
		END IF;
		IF kind NOT IN ('order_state', 'line_state', 'tenant', 'rollup_final', 'place_order', 'change_address') THEN
			IF jsonb_typeof(j) <> 'array' THEN
				RETURN 'input:not-an-array';
			END IF;
			SELECT array_agg(e ORDER BY i) INTO a FROM jsonb_array_elements_text(j) WITH ORDINALITY x(e, i);
		END IF;
		CASE kind
			WHEN 'hold' THEN n2 := a[3]::int; iv := a[5]::interval;
			WHEN 'adjust_stock', 'set_stock' THEN n1 := a[3]::bigint;
			WHEN 'cancel_order' THEN n1 := a[1]::bigint;
			WHEN 'rollup_final' THEN n2 := input::int;
			WHEN 'pack', 'create_return', 'receive_return', 'exchange', 'ship', 'release_order', 'hold_order' THEN n1 := a[1]::bigint;
			WHEN 'cancel_line' THEN n1 := a[1]::bigint; n2 := a[2]::int; iv := NULL; PERFORM a[3]::int;
			WHEN 'payment' THEN n1 := a[2]::bigint; PERFORM a[3]::numeric;
			WHEN 'tracking_update' THEN PERFORM a[4]::timestamptz;
			WHEN 'change_address' THEN n1 := (j ->> 0)::bigint;
			WHEN 'route', 'promise' THEN j1 := j -> 0; j2 := j -> 1;
			WHEN 'atp_on' THEN d := a[3]::date;
			ELSE NULL;
		END CASE;
	EXCEPTION WHEN OTHERS THEN
		RETURN 'input:' || SQLSTATE;
	END;

	-- 2. The target, in a subtransaction that is always rolled back.
	BEGIN
		CASE kind
			WHEN 'order_state' THEN PERFORM input::oms.order_state;
			WHEN 'line_state' THEN PERFORM input::oms.line_state;
			WHEN 'transition' THEN
				IF a[1] = 'order' THEN
					PERFORM oms.transition(a[2]::oms.order_state, a[3]);
					PERFORM oms.is_legal(a[2]::oms.order_state, a[3]::oms.order_state);
				ELSE
					PERFORM oms.transition(a[2]::oms.line_state, a[3]);
					PERFORM oms.is_legal(a[2]::oms.line_state, a[3]::oms.line_state);
				END IF;
			WHEN 'place_order' THEN PERFORM oms.place_order(j);
			WHEN 'hold' THEN PERFORM oms.hold(a[1], a[2], n2, a[4], coalesce(iv, '15 minutes'));
			WHEN 'release_hold' THEN PERFORM oms.release_hold(a[1], a[2]);
			WHEN 'adjust_stock' THEN PERFORM oms.adjust_stock(a[1], a[2], n1, a[4]);
			WHEN 'set_stock' THEN PERFORM oms.set_stock(a[1], a[2], n1, a[4]);
			WHEN 'cancel_order' THEN PERFORM oms.cancel_order(n1, a[2]);
			WHEN 'atp' THEN PERFORM oms.atp(a[1], a[2]);
			WHEN 'atp_on' THEN PERFORM oms.atp(a[1], a[2], d);
			WHEN 'route' THEN
				PERFORM * FROM oms.route(j1, j2, a[3]);
				PERFORM * FROM oms.route_explain(j1, j2, a[3]);
			WHEN 'promise' THEN PERFORM * FROM oms.promise(j1, j2, a[3]);
			WHEN 'tenant' THEN
				PERFORM set_config('oms.tenant', input, true);
				PERFORM oms.current_tenant_id();
			WHEN 'create_tenant' THEN PERFORM oms.create_tenant(a[1], a[2]);
			WHEN 'rollup_final' THEN PERFORM oms.rollup_final(n2);
			WHEN 'release_order' THEN PERFORM oms.release_order(n1);
			WHEN 'pack' THEN PERFORM oms.pack(n1, a[2], j -> 2);
			WHEN 'ship' THEN PERFORM oms.ship(n1, a[2], a[3]);
			WHEN 'cancel_line' THEN PERFORM oms.cancel_line(n1, n2, a[3]::int, a[4]);
			WHEN 'create_return' THEN PERFORM oms.create_return(n1, j -> 1, a[3]);
			WHEN 'receive_return' THEN PERFORM oms.receive_return(n1, j -> 1);
			WHEN 'exchange' THEN PERFORM oms.exchange(n1, j -> 1);
			WHEN 'change_address' THEN PERFORM oms.change_address(n1, j -> 1);
			WHEN 'hold_order' THEN PERFORM oms.hold_order(n1, a[2], a[3]);
			WHEN 'payment' THEN
				CASE a[1]
					WHEN 'authorize' THEN PERFORM oms.authorize_payment(n1, a[3]::numeric, a[4]);
					WHEN 'capture' THEN PERFORM oms.capture_payment(n1, a[3]::numeric);
					WHEN 'refund' THEN PERFORM oms.refund_payment(n1, a[3]::numeric, a[4]);
					ELSE PERFORM oms.void_payment(n1);
				END CASE;
			WHEN 'tracking_update' THEN PERFORM oms.tracking_update(a[1], a[2], a[3], a[4]::timestamptz, coalesce(j -> 4, '{}'));
		END CASE;
		RAISE EXCEPTION 'fuzz: undo' USING ERRCODE = 'FZ000';
	EXCEPTION
		WHEN SQLSTATE 'FZ000' THEN RETURN '00000';
		WHEN OTHERS THEN RETURN SQLSTATE || ' ' || translate(left(SQLERRM, 300), E'\n\r', '  ');
	END;
END
$$;

-- One batch: the outcome of every input, in order.
CREATE FUNCTION fuzz.run(kinds text[], inputs bytea[]) RETURNS SETOF text
	LANGUAGE sql
	SET search_path = pg_catalog
AS $$
	SELECT fuzz.try(k, i) FROM unnest(kinds, inputs) WITH ORDINALITY AS x(k, i, n) ORDER BY n
$$;

-- What must not change: every row of the tenant stays as the set-up left it.
CREATE FUNCTION fuzz.fingerprint() RETURNS text
	LANGUAGE sql
	SET search_path = pg_catalog
AS $$
	SELECT concat_ws(' ',
		(SELECT count(*) FROM oms.tenants), (SELECT count(*) FROM oms.orders),
		(SELECT count(*) FROM oms.order_lines), (SELECT count(*) FROM oms.order_history),
		(SELECT count(*) || '/' || sum(qty) FROM oms.reservations),
		(SELECT sum(on_hand) || '/' || sum(reserved) FROM oms.stock),
		(SELECT sum(promised) FROM oms.supply),
		(SELECT count(*) || '/' || sum(used) FROM oms.location_capacity_used),
		(SELECT count(*) FROM oms.stock_movements))
$$;
