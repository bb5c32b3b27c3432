-- Click & collect: the store stages a released order for the customer (ready_for_pickup, the
-- customer is told where and until when), the customer collects it (the stock leaves as for a
-- shipment, and the lines are delivered at once). A pickup not collected within the store's
-- pickup_days is reported by the background worker (event pickup_uncollected, 88_overdue.sql);
-- cancelling the order then returns its stock, like any cancellation.

CREATE TABLE oms.pickups (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	ready_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	collect_by		timestamptz NOT NULL,
	collected_at	timestamptz,
	uncollected_at	timestamptz,
	PRIMARY KEY (tenant_id, order_id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CHECK (collect_by > ready_at)
);
CREATE INDEX pickups_waiting_idx ON oms.pickups (collect_by) WHERE collected_at IS NULL AND uncollected_at IS NULL;
COMMENT ON TABLE oms.pickups IS 'Click & collect orders staged at their store: when ready, until when the store keeps them (pickup_days), when collected, when reported uncollected';

CREATE FUNCTION oms.ready_for_pickup(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_store		record;
	v_lines		jsonb;
	v_by		timestamptz;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, ready_for_pickup.order_id);
	IF o.pickup_location_id IS NULL THEN
		RAISE EXCEPTION 'order % is not a click & collect order', o.id
			USING ERRCODE = '22023', HINT = 'Only orders placed with "pickup" are staged for the customer; ship the others.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'staged for pickup');
	SELECT l.code, l.name, l.city, l.pickup_days INTO v_store
		FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id;

	PERFORM set_config('oms.reason', 'ready for pickup at ' || v_store.code, true);
	WITH staged AS (
		UPDATE oms.order_lines l SET state = 'ready_for_pickup'
		 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state IN ('released', 'picked', 'packed')
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty)
	SELECT jsonb_agg(jsonb_build_object('line_no', s.line_no, 'sku', i.sku, 'name', i.name, 'qty', s.qty) ORDER BY s.line_no)
	  INTO v_lines
	  FROM staged s JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = s.item_id;
	IF v_lines IS NULL THEN
		IF o.state = 'released' AND EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id) THEN
			RETURN o.state;		-- staged already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no released line to stage for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Release the order first (oms.release_order).';
	END IF;
	v_by := now() + make_interval(days => v_store.pickup_days);
	INSERT INTO oms.pickups AS p (tenant_id, order_id, location_id, collect_by)
		VALUES (v_tenant, o.id, o.pickup_location_id, v_by)
		ON CONFLICT ON CONSTRAINT pickups_pkey
		DO UPDATE SET ready_at = EXCLUDED.ready_at, collect_by = EXCLUDED.collect_by, uncollected_at = NULL;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'ready_for_pickup',
		jsonb_build_object('store', jsonb_build_object('location', v_store.code, 'name', v_store.name, 'city', v_store.city),
						   'collect_by', v_by, 'lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.ready_for_pickup(bigint) IS 'Stages the released lines of a click & collect order at its store (line state ready_for_pickup) and tells the customer (event ready_for_pickup with the store and the date until which it is kept); returns the order state';

CREATE FUNCTION oms.collect(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, collect.order_id);
	SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'qty', l.qty - l.qty_cancelled - l.qty_shipped))
	  INTO v_lines
	  FROM oms.order_lines l
	 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state = 'ready_for_pickup';
	IF v_lines IS NULL THEN
		IF EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id AND p.collected_at IS NOT NULL) THEN
			RETURN o.state;		-- collected already
		END IF;
		RAISE EXCEPTION 'order % is not ready for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Stage it first with oms.ready_for_pickup().';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'collected');
	PERFORM set_config('oms.reason', 'collected by the customer', true);
	PERFORM oms._goods_leave(v_tenant, o.id, o.pickup_location_id, v_lines, 'order ' || o.external_id,
							 'collected by the customer', true);
	UPDATE oms.pickups p SET collected_at = now() WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'delivered',
		jsonb_build_object('collected', true, 'delivered_at', now(),
						   'store', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id),
						   'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', x.line_no, 'sku', i.sku, 'name', i.name, 'qty', x.qty)
													  ORDER BY x.line_no)
									   FROM jsonb_to_recordset(v_lines) x(line_no int, qty int)
									   JOIN oms.order_lines l ON l.tenant_id = v_tenant AND l.order_id = o.id AND l.line_no = x.line_no
									   JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = l.item_id),
						   'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.collect(bigint) IS 'The customer collects a staged click & collect order: the stock leaves the store (reservation consumed, on_hand lowered, movement "shipment"), the lines are delivered, event delivered (collected); returns the order state';
