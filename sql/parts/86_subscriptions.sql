-- Subscriptions (recurring orders): every N days, weeks or months from a first date, an order is
-- placed through oms.place_order, exactly once per period.
--
-- oms.run_subscriptions(on_date) (the job "subscriptions") handles every subscription due on or
-- before on_date: each period gets one row in oms.subscription_runs, whose primary key
-- (subscription, period) makes a second placement impossible, and the order's external id
-- (SUB-<id>-<period>) makes place_order itself idempotent as well. A period is
--   placed     the order was placed (its lines may be backordered if the items allow it);
--   skipped    with the reason: an item is discontinued, out of stock and not backorderable, the
--              subscription was paused, the period was missed (only the latest due period is
--              placed when runs were missed: nobody wants three deliveries at once), or any
--              other refusal of place_order (its message).
-- Periods are counted from the first date (period k is first_date + k x N units), so a monthly
-- subscription from 31 January comes on 29 February, then 31 March, without drifting.

CREATE TABLE oms.subscriptions (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	channel_id			int NOT NULL,
	customer			jsonb NOT NULL DEFAULT '{}',
	ship_to				jsonb,
	pickup_location_id	int,
	currency			char(3),
	lines				jsonb NOT NULL CHECK (jsonb_typeof(lines) = 'array' AND jsonb_array_length(lines) > 0),
	every				int NOT NULL CHECK (every BETWEEN 1 AND 1000),
	unit				text NOT NULL CHECK (unit IN ('day', 'week', 'month')),
	first_date			date NOT NULL,
	periods_done		int NOT NULL DEFAULT 0 CHECK (periods_done >= 0),
	next_date			date NOT NULL,
	state				text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	changed_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, channel_id) REFERENCES oms.channels,
	FOREIGN KEY (tenant_id, pickup_location_id) REFERENCES oms.locations,
	CHECK ((ship_to IS NULL) <> (pickup_location_id IS NULL))
);
CREATE INDEX subscriptions_due_idx ON oms.subscriptions (tenant_id, next_date) WHERE state <> 'cancelled';
COMMENT ON TABLE oms.subscriptions IS 'Recurring orders: channel, customer, ship-to or pickup store, lines, every N days, weeks or months from first_date; next_date is the next period to place';

CREATE TABLE oms.subscription_runs (
	tenant_id			int NOT NULL,
	subscription_id		bigint NOT NULL,
	period				date NOT NULL,
	status				text NOT NULL CHECK (status IN ('placed', 'skipped')),
	order_id			bigint,
	reason				text,
	run_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, subscription_id, period),
	FOREIGN KEY (tenant_id, subscription_id) REFERENCES oms.subscriptions,
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CHECK ((status = 'placed') = (order_id IS NOT NULL)),
	CHECK (status = 'placed' OR reason IS NOT NULL)
);
COMMENT ON TABLE oms.subscription_runs IS 'One row per period of a subscription: the order placed, or why the period was skipped; the primary key makes every period happen once';

-- The date of period k of a subscription.
CREATE FUNCTION oms._subscription_period(p_first date, p_every int, p_unit text, p_k int) RETURNS date
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN CASE p_unit WHEN 'day' THEN p_first + p_k * p_every
					   WHEN 'week' THEN p_first + 7 * p_k * p_every
					   ELSE (p_first + pg_catalog.make_interval(months => p_k * p_every))::date END;
COMMENT ON FUNCTION oms._subscription_period(date, int, text, int) IS 'Internal: the date of period k (0 = the first date) of a subscription every N days, weeks or months';

CREATE FUNCTION oms.subscribe(subscription jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p			jsonb := subscription;
	v_tenant	int := oms.current_tenant_id();
	v_what		text := 'subscription';
	v_channel	int;
	v_pickup	int;
	v_every		int;
	v_first		date;
	v_bad		record;
	v_sku		text;
	v_id		bigint;
	v_hint		text := 'A subscription is {"channel": "web", "customer": {...}, "ship_to": {...} or "pickup": "STORE", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 9.90}], "every": 2, "unit": "week", "first_date": "2024-05-01"}.';
BEGIN
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		RAISE EXCEPTION 'subscription must be a JSON object, got %', coalesce(left(p::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = v_hint;
	END IF;
	SELECT k INTO v_sku FROM jsonb_object_keys(p) k
	 WHERE k NOT IN ('channel', 'customer', 'ship_to', 'pickup', 'currency', 'lines', 'every', 'unit', 'first_date')
	 ORDER BY k LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'subscription field "%" is not known', v_sku
			USING ERRCODE = '22023', HINT = 'Known fields: channel, currency, customer, every, first_date, lines, pickup, ship_to, unit.';
	END IF;
	SELECT c.id INTO v_channel FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.code = p ->> 'channel';
	IF v_channel IS NULL THEN
		RAISE EXCEPTION 'unknown channel %', coalesce((p -> 'channel')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Channels are rows of oms.channels of the current tenant.';
	END IF;
	IF (p ? 'ship_to') = (p ? 'pickup') THEN
		RAISE EXCEPTION 'subscription needs exactly one of "ship_to" and "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	END IF;
	IF p ? 'ship_to' AND jsonb_typeof(p -> 'ship_to') <> 'object' THEN
		RAISE EXCEPTION 'subscription field "ship_to" must be an address object, got %', left((p -> 'ship_to')::text, 80)
			USING ERRCODE = '22023', HINT = 'The same address object as in oms.place_order, e.g. {"country": "IT", "city": "Milano"}.';
	END IF;
	IF p ? 'pickup' THEN
		SELECT l.id INTO v_pickup FROM oms.locations l
		 WHERE l.tenant_id = v_tenant AND l.code = p ->> 'pickup' AND l.can_pickup;
		IF v_pickup IS NULL THEN
			RAISE EXCEPTION 'unknown pickup location %', (p -> 'pickup')::text
				USING ERRCODE = '22023', HINT = 'A pickup location is a row of oms.locations with can_pickup.';
		END IF;
	END IF;
	IF p ? 'customer' AND jsonb_typeof(p -> 'customer') <> 'object' THEN
		RAISE EXCEPTION 'subscription field "customer" must be an object, got %', left((p -> 'customer')::text, 80)
			USING ERRCODE = '22023', HINT = '{"ref": "C1", "email": "a@example.com", "name": "..."}.';
	END IF;
	IF jsonb_typeof(p -> 'lines') IS DISTINCT FROM 'array' OR jsonb_array_length(p -> 'lines') = 0 THEN
		RAISE EXCEPTION 'subscription field "lines" must be a non-empty array, got %', coalesce(left((p -> 'lines')::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = 'A subscription orders at least one line: [{"sku": "SKU-1", "qty": 1, "unit_price": 9.90}].';
	END IF;
	SELECT * INTO v_bad FROM oms._check_lines(p -> 'lines');
	IF v_bad.path IS NOT NULL THEN
		RAISE EXCEPTION 'subscription field "%" %, got %', v_bad.path, v_bad.problem, coalesce(v_bad.value::text, 'nothing')
			USING ERRCODE = '22023', HINT = v_bad.hint;
	END IF;
	SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p -> 'lines') l
	 WHERE NOT EXISTS (SELECT FROM oms.items i WHERE i.tenant_id = v_tenant AND i.sku = l ->> 'sku') LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'unknown SKU "%" in subscription', v_sku
			USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant.';
	END IF;
	SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p -> 'lines') l GROUP BY 1 HAVING count(*) > 1 LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line of the subscription', v_sku
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
	v_every := oms._json_number(p, v_what, 'every', 1, false, 1000, true,
								'"every": N and "unit": "day", "week" or "month" order every N units, N from 1 to 1000.');
	IF v_every IS NULL THEN
		RAISE EXCEPTION 'subscription field "every" is required'
			USING ERRCODE = '22023', HINT = '"every": 2, "unit": "week" orders every two weeks.';
	END IF;
	IF jsonb_typeof(p -> 'unit') IS DISTINCT FROM 'string' OR p ->> 'unit' NOT IN ('day', 'week', 'month') THEN
		RAISE EXCEPTION 'subscription field "unit" must be day, week or month, got %', coalesce((p -> 'unit')::text, 'nothing')
			USING ERRCODE = '22023', HINT = '"every": 2, "unit": "week" orders every two weeks.';
	END IF;
	IF p ? 'first_date' THEN
		BEGIN
			v_first := (p ->> 'first_date')::date;
		EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
			v_first := NULL;
		END;
		IF v_first IS NULL OR jsonb_typeof(p -> 'first_date') <> 'string' THEN
			RAISE EXCEPTION 'subscription field "first_date" must be a date, got %', (p -> 'first_date')::text
				USING ERRCODE = '22023', HINT = 'Write it as "2024-05-01".';
		END IF;
	ELSE
		v_first := oms.today();
	END IF;
	IF p ? 'currency' AND NOT EXISTS (SELECT FROM oms.currencies c WHERE c.code = p ->> 'currency') THEN
		RAISE EXCEPTION 'unsupported currency code %', (p -> 'currency')::text
			USING ERRCODE = '22023', HINT = 'Currencies are the ISO 4217 codes in oms.currencies, e.g. "EUR".';
	END IF;

	INSERT INTO oms.subscriptions AS s (tenant_id, channel_id, customer, ship_to, pickup_location_id, currency, lines,
										every, unit, first_date, next_date)
		VALUES (v_tenant, v_channel, coalesce(p -> 'customer', '{}'), p -> 'ship_to', v_pickup, p ->> 'currency',
				p -> 'lines', v_every, p ->> 'unit', v_first, v_first)
		RETURNING s.id INTO v_id;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.subscribe(jsonb) IS 'Creates a subscription (recurring order): {"channel", "customer", "ship_to" or "pickup", "currency", "lines", "every": N, "unit": "day" | "week" | "month", "first_date"}; returns its id';

-- The subscription, locked; 22023 when unknown, 55000 when cancelled (unless allowed).
CREATE FUNCTION oms._lock_subscription(p_tenant int, p_id bigint) RETURNS oms.subscriptions
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.subscriptions;
BEGIN
	SELECT * INTO v FROM oms.subscriptions s WHERE s.tenant_id = p_tenant AND s.id = p_id FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown subscription %', coalesce(p_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Subscriptions are rows of oms.subscriptions of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_subscription(int, bigint) IS 'Internal: locks and returns a subscription; 22023 when unknown';

CREATE FUNCTION oms._set_subscription_state(p_id bigint, p_from text[], p_to text) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.subscriptions := oms._lock_subscription(v_tenant, p_id);
BEGIN
	IF v.state = p_to THEN
		RETURN v.state;
	END IF;
	IF v.state <> ALL (p_from) THEN
		RAISE EXCEPTION 'subscription % is %', v.id, v.state
			USING ERRCODE = '55000', HINT = format('Only a subscription that is %s can become %s.', array_to_string(p_from, ' or '), p_to);
	END IF;
	UPDATE oms.subscriptions s SET state = p_to, changed_at = pg_catalog.now()
	 WHERE s.tenant_id = v_tenant AND s.id = v.id;
	RETURN p_to;
END
$$;
COMMENT ON FUNCTION oms._set_subscription_state(bigint, text[], text) IS 'Internal: moves a subscription to a state from one of the given ones (55000 otherwise; a no-op when already there)';

CREATE FUNCTION oms.pause_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['active'], 'paused');
COMMENT ON FUNCTION oms.pause_subscription(bigint) IS 'Pauses a subscription: its periods are skipped (reason "paused") until it is resumed';

CREATE FUNCTION oms.resume_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['paused'], 'active');
COMMENT ON FUNCTION oms.resume_subscription(bigint) IS 'Resumes a paused subscription from its next period';

CREATE FUNCTION oms.cancel_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['active', 'paused'], 'cancelled');
COMMENT ON FUNCTION oms.cancel_subscription(bigint) IS 'Cancels a subscription: no period is placed any more';

-- One subscription's due periods up to p_on (the row locked by the caller).
CREATE FUNCTION oms._run_subscription(p_tenant int, p_sub oms.subscriptions, p_on date)
	RETURNS TABLE (subscription_id bigint, period date, status text, order_id bigint, reason text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_k			int := p_sub.periods_done;
	v_period	date;
	v_next		date;
	v_status	text;
	v_order		bigint;
	v_reason	text;
	v_sku		text;
	v_payload	jsonb;
BEGIN
	-- Every due period gets its row; only the latest due one is placed, earlier ones were missed.
	v_period := p_sub.next_date;
	WHILE v_period <= p_on LOOP
		v_next := oms._subscription_period(p_sub.first_date, p_sub.every, p_sub.unit, v_k + 1);
		v_order := NULL;
		v_reason := NULL;
		IF EXISTS (SELECT FROM oms.subscription_runs r
					WHERE r.tenant_id = p_tenant AND r.subscription_id = p_sub.id AND r.period = v_period) THEN
			v_status := NULL;		-- already handled (cannot happen while next_date moves with it)
		ELSIF p_sub.state = 'paused' THEN
			v_status := 'skipped';
			v_reason := 'paused';
		ELSIF v_next <= p_on THEN
			v_status := 'skipped';
			v_reason := pg_catalog.format('missed: the period ended on %s before any run; only the latest due period is placed', v_next - 1);
		ELSE
			SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p_sub.lines) l
			 WHERE NOT EXISTS (SELECT FROM oms.items i WHERE i.tenant_id = p_tenant AND i.sku = l ->> 'sku' AND i.active)
			 LIMIT 1;
			IF v_sku IS NOT NULL THEN
				v_status := 'skipped';
				v_reason := pg_catalog.format('item "%s" is discontinued', v_sku);
			ELSE
				v_payload := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
					'channel', (SELECT c.code FROM oms.channels c WHERE c.tenant_id = p_tenant AND c.id = p_sub.channel_id),
					'external_id', 'SUB-' || p_sub.id || '-' || pg_catalog.to_char(v_period, 'YYYYMMDD'),
					'customer', CASE WHEN p_sub.customer <> '{}' THEN p_sub.customer END,
					'ship_to', p_sub.ship_to,
					'pickup', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_sub.pickup_location_id),
					'currency', p_sub.currency,
					'lines', p_sub.lines,
					'attributes', pg_catalog.jsonb_build_object('subscription', p_sub.id, 'period', v_period)));
				BEGIN
					v_order := oms.place_order(v_payload);
					v_status := 'placed';
				EXCEPTION
					WHEN SQLSTATE 'OM001' THEN
						GET STACKED DIAGNOSTICS v_reason = MESSAGE_TEXT;
						v_status := 'skipped';
						v_reason := 'out of stock and not backorderable: ' || v_reason;
					WHEN SQLSTATE '22023' OR SQLSTATE '55000' THEN
						GET STACKED DIAGNOSTICS v_reason = MESSAGE_TEXT;
						v_status := 'skipped';
				END;
			END IF;
		END IF;
		IF v_status IS NOT NULL THEN
			INSERT INTO oms.subscription_runs (tenant_id, subscription_id, period, status, order_id, reason)
				VALUES (p_tenant, p_sub.id, v_period, v_status, v_order, v_reason);
			subscription_id := p_sub.id;
			period := v_period;
			status := v_status;
			order_id := v_order;
			reason := v_reason;
			RETURN NEXT;
		END IF;
		v_k := v_k + 1;
		v_period := v_next;
	END LOOP;
	UPDATE oms.subscriptions s SET periods_done = v_k, next_date = v_period
	 WHERE s.tenant_id = p_tenant AND s.id = p_sub.id AND s.periods_done <> v_k;
END
$$;
COMMENT ON FUNCTION oms._run_subscription(int, oms.subscriptions, date) IS 'Internal: places or skips (with the reason) every due period of one locked subscription up to a date, and moves its next date';

CREATE FUNCTION oms.run_subscriptions(on_date date DEFAULT NULL)
	RETURNS TABLE (subscription_id bigint, period date, status text, order_id bigint, reason text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_on		date := coalesce(on_date, oms.today());
	s			oms.subscriptions;
BEGIN
	-- SKIP LOCKED: a subscription that another run is placing right now is its business.
	FOR s IN SELECT * FROM oms.subscriptions x
			  WHERE x.tenant_id = v_tenant AND x.state <> 'cancelled' AND x.next_date <= v_on
			  ORDER BY x.next_date, x.id
			  FOR UPDATE SKIP LOCKED LOOP
		RETURN QUERY SELECT * FROM oms._run_subscription(v_tenant, s, v_on);
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms.run_subscriptions(date) IS 'Places the order of every subscription period due on or before on_date (default oms.today()) exactly once, records skipped periods with the reason (paused, missed, item discontinued, out of stock and not backorderable), moves next dates; returns what it did';

SELECT pg_catalog.pg_extension_config_dump('oms.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscription_runs', '');
