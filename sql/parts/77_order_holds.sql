-- Order holds: a person or a rule stops an order before release (fraud review, payment review,
-- address check, customer request...). An order may carry several holds, each with a reason code;
-- while any is open the order is on_hold and cannot be released, packed, shipped or staged. When
-- the last one is resolved the order returns to the state its lines add up to, the customer hears
-- "order_confirmed", and a channel with auto_release releases it if nothing else blocks.
-- (Cart holds, stock set aside for a shopping cart, are another thing: 66_holds.sql.)

CREATE TABLE oms.order_holds (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	reason			text NOT NULL CHECK (reason ~ '^[a-z][a-z0-9_]{0,62}$'),
	note			text CHECK (length(note) <= 1000),
	rule			text,
	held_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	held_by			text NOT NULL,
	resolved_at		timestamptz,
	resolved_by		text,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CHECK ((resolved_at IS NULL) = (resolved_by IS NULL))
);
CREATE UNIQUE INDEX order_holds_open_key ON oms.order_holds (tenant_id, order_id, reason) WHERE resolved_at IS NULL;
COMMENT ON TABLE oms.order_holds IS 'Holds on orders with a reason code (fraud_review, payment_review, address_check, customer_request, ...), the fraud rule that placed it, who placed and resolved it and when; at most one open hold per order and reason';

-- Puts an order on hold; the caller has locked it. Returns true when a new hold was placed.
CREATE FUNCTION oms._hold(p_tenant int, o oms.orders, p_reason text, p_note text, p_rule text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR p_reason !~ '^[a-z][a-z0-9_]{0,62}$' THEN
		RAISE EXCEPTION 'invalid hold reason "%"', coalesce(p_reason, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A reason code is a lower-case word such as fraud_review, payment_review, address_check or customer_request.';
	END IF;
	IF length(p_note) > 1000 THEN
		RAISE EXCEPTION 'hold note is too long (% characters)', length(p_note)
			USING ERRCODE = '22023', HINT = 'A note has at most 1000 characters.';
	END IF;
	IF EXISTS (SELECT FROM oms.order_holds h WHERE h.tenant_id = p_tenant AND h.order_id = o.id
				 AND h.reason = p_reason AND h.resolved_at IS NULL) THEN
		RETURN false;			-- already held for this reason: nothing changes
	END IF;
	IF o.state <> 'on_hold' THEN
		PERFORM oms.transition(o.state, 'hold');	-- 55000 with the legal events when it may not
	END IF;
	INSERT INTO oms.order_holds (tenant_id, order_id, reason, note, rule, held_by)
		VALUES (p_tenant, o.id, p_reason, p_note, p_rule, oms._actor());
	PERFORM set_config('oms.reason', 'hold: ' || p_reason || coalesce(' (rule ' || p_rule || ')', ''), true);
	PERFORM oms._rollup(p_tenant, o.id);
	PERFORM oms._event(p_tenant, o.id, 'order_on_hold', jsonb_build_object('reason', p_reason));
	PERFORM set_config('oms.reason', '', true);
	RETURN true;
END
$$;
COMMENT ON FUNCTION oms._hold(int, oms.orders, text, text, text) IS 'Internal: places a hold on a locked order (no-op when one with this reason is open) and writes order_on_hold';

CREATE FUNCTION oms.hold_order(order_id bigint, reason text, note text DEFAULT NULL) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
BEGIN
	o := oms._lock_order(v_tenant, hold_order.order_id);
	PERFORM oms._hold(v_tenant, o, hold_order.reason, hold_order.note, NULL);
	RETURN (SELECT x.state FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = o.id);
END
$$;
COMMENT ON FUNCTION oms.hold_order(bigint, text, text) IS 'Puts an order on hold for a reason code, with an optional note; several holds may be open; the same reason twice is a no-op; an order that has shipped cannot be held (55000); returns the order state';

CREATE FUNCTION oms.resolve_hold(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_id		bigint;
	v_open		text;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, resolve_hold.order_id);
	SELECT h.id INTO v_id FROM oms.order_holds h
		WHERE h.tenant_id = v_tenant AND h.order_id = o.id AND h.reason = resolve_hold.reason AND h.resolved_at IS NULL;
	IF v_id IS NULL THEN
		IF EXISTS (SELECT FROM oms.order_holds h WHERE h.tenant_id = v_tenant AND h.order_id = o.id
					 AND h.reason = resolve_hold.reason) THEN
			RETURN o.state;		-- resolved already: a retried call changes nothing
		END IF;
		SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO v_open FROM oms.order_holds h
			WHERE h.tenant_id = v_tenant AND h.order_id = o.id AND h.resolved_at IS NULL;
		RAISE EXCEPTION 'order % has no hold "%"', o.id, coalesce(resolve_hold.reason, 'NULL')
			USING ERRCODE = '22023',
			      HINT = CASE WHEN v_open IS NULL THEN 'The order has no open hold.'
						 ELSE format('Its open holds: %s.', v_open) END;
	END IF;
	UPDATE oms.order_holds h SET resolved_at = now(), resolved_by = oms._actor()
		WHERE h.tenant_id = v_tenant AND h.id = v_id;
	PERFORM set_config('oms.reason', 'hold resolved: ' || resolve_hold.reason, true);
	v_state := oms._rollup(v_tenant, o.id);
	IF v_state <> 'on_hold' AND o.state = 'on_hold' THEN
		PERFORM oms._event(v_tenant, o.id, 'order_confirmed', jsonb_build_object('resolved', resolve_hold.reason));
		v_state := oms._auto_release(v_tenant, o.id);
	END IF;
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.resolve_hold(bigint, text) IS 'Resolves the open hold of that reason; when none is left the order returns to the rollup of its lines, order_confirmed is written, and a channel with auto_release releases it; returns the order state';

-- ----- fraud rules, applied when an order is placed

CREATE TABLE oms.fraud_rules (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	name			text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$'),
	kind			text NOT NULL CHECK (kind IN ('total_over', 'country_mismatch', 'customer_velocity')),
	channel_id		int,
	currency		char(3) REFERENCES oms.currencies,
	amount			numeric CHECK (amount > 0),
	max_orders		int CHECK (max_orders > 0),
	within			interval CHECK (within > interval '0'),
	active			boolean NOT NULL DEFAULT true,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, name),
	FOREIGN KEY (tenant_id, channel_id) REFERENCES oms.channels,
	CHECK (kind <> 'total_over' OR (currency IS NOT NULL AND amount IS NOT NULL)),
	CHECK (kind <> 'customer_velocity' OR (max_orders IS NOT NULL AND within IS NOT NULL))
);
COMMENT ON TABLE oms.fraud_rules IS 'Rules that put a new order on hold fraud_review: total_over (total above amount in currency), country_mismatch (ship-to country other than attributes.billing_country), customer_velocity (more than max_orders orders of one customer ref within an interval); channel_id NULL: every channel';

-- Applies the tenant's active fraud rules to a new order; matching ones put it on hold
-- fraud_review, the rules named in the hold and its history. Returns the names, or NULL.
CREATE FUNCTION oms._screen_order(p_tenant int, p_order bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			oms.orders;
	v_rules		text;
	v_notes		text;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT string_agg(r.name, ', ' ORDER BY r.name),
		   string_agg(CASE r.kind
						WHEN 'total_over' THEN format('%s: total %s %s over %s', r.name, o.total, o.currency, r.amount)
						WHEN 'country_mismatch' THEN format('%s: ships to %s, billed in %s', r.name, o.ship_country,
															 o.attributes ->> 'billing_country')
						ELSE format('%s: more than %s orders of customer %s within %s', r.name, r.max_orders,
									o.customer_ref, r.within) END, '; ' ORDER BY r.name)
	  INTO v_rules, v_notes
	  FROM oms.fraud_rules r
	 WHERE r.tenant_id = p_tenant AND r.active AND (r.channel_id IS NULL OR r.channel_id = o.channel_id)
	   AND CASE r.kind
			WHEN 'total_over' THEN o.currency = r.currency AND o.total > r.amount
			WHEN 'country_mismatch' THEN o.ship_country IS NOT NULL AND o.attributes ? 'billing_country'
										 AND upper(o.attributes ->> 'billing_country') <> o.ship_country
			ELSE o.customer_ref IS NOT NULL
				 AND (SELECT count(*) FROM oms.orders x
					   WHERE x.tenant_id = p_tenant AND x.customer_ref = o.customer_ref
						 AND x.placed_at > o.placed_at - r.within) > r.max_orders
		   END;
	IF v_rules IS NOT NULL THEN
		PERFORM oms._hold(p_tenant, o, 'fraud_review', v_notes, v_rules);
	END IF;
	RETURN v_rules;
END
$$;
COMMENT ON FUNCTION oms._screen_order(int, bigint) IS 'Internal: applies the active fraud rules to a new order; the matching ones put it on hold fraud_review (rules named in the hold, its note and the history); returns their names or NULL';
