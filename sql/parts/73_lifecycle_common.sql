-- What the lifecycle functions (payments, holds, release, shipments, edits, returns) share: the
-- order lock every one of them takes first, money amounts checked against the order's currency,
-- the rollup that puts an order back in the state its lines add up to, and event writing.
--
-- The reason the state trigger records in order_history is the transaction-local setting
-- oms.reason: each function sets it with set_config(..., true) before it moves states, and clears
-- it before it returns, so that a later statement of the caller's transaction is not attributed
-- to it.
--
-- Lock order, the same in every function: the order's row first (SELECT ... FOR UPDATE), then
-- stock rows in (item, location) order through reservations and movements. Two calls on one order
-- therefore run one after the other, and their events come out in commit order.

CREATE FUNCTION oms._lock_order(p_tenant int, p_order bigint) RETURNS oms.orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o oms.orders;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(p_order::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION oms._lock_order(int, bigint) IS 'Internal: locks an order of the tenant (FOR UPDATE) and returns it; unknown order: 22023';

-- An amount of money in a currency: more than 0, at most the currency's minor units.
CREATE FUNCTION oms._amount(p_amount numeric, p_currency text, p_what text) RETURNS numeric
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor int := (SELECT c.minor_units FROM oms.currencies c WHERE c.code = p_currency);
BEGIN
	IF p_amount IS NULL OR p_amount <= 0 OR p_amount >= 1e15 THEN
		RAISE EXCEPTION 'invalid % amount %', p_what, coalesce(p_amount::text, 'NULL')
			USING ERRCODE = '22023', HINT = format('An amount is more than 0 and less than 10^15, in %s.', p_currency);
	END IF;
	IF p_amount <> round(p_amount, v_minor) THEN
		RAISE EXCEPTION 'invalid % amount %: % has % decimal places', p_what, p_amount, p_currency, v_minor
			USING ERRCODE = '22023', HINT = format('Round the amount to %s decimal places.', v_minor);
	END IF;
	RETURN p_amount;
END
$$;
COMMENT ON FUNCTION oms._amount(numeric, text, text) IS 'Internal: refuses (22023) an amount that is not more than 0 or has more decimals than its currency';

-- Checks a free-text reason of a lifecycle call.
CREATE FUNCTION oms._reason(p_reason text, p_what text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR btrim(p_reason) = '' OR length(p_reason) > 1000 THEN
		RAISE EXCEPTION 'a reason of 1 to 1000 characters is required to %', p_what
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in the history.';
	END IF;
	RETURN p_reason;
END
$$;
COMMENT ON FUNCTION oms._reason(text, text) IS 'Internal: refuses (22023) a missing, empty or over-long reason';

-- Writes one event of an order: the order header plus what the caller adds.
CREATE FUNCTION oms._event(p_tenant int, p_order bigint, p_type text, p_payload jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	-- Read before the INSERT, not inside it: on Citus a query of a distributed table cannot run
	-- inside another (README "Scale-out on Citus").
	v_payload	jsonb := oms._order_header(p_tenant, p_order) || coalesce(p_payload, '{}');
BEGIN
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
		VALUES (p_tenant, p_order, p_type, v_payload);
END
$$;
COMMENT ON FUNCTION oms._event(int, bigint, text, jsonb) IS 'Internal: writes an event of an order, its payload the order header (reference, channel, customer) and the given fields';

-- Puts an order in the state its lines add up to (oms.rollup), or on_hold while a hold is open;
-- cancelled and closed orders stay as they are. The state trigger checks the move and records it
-- with the reason in oms.reason. Returns the order's state.
CREATE FUNCTION oms._rollup(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	oms.order_state;
	v_new	oms.order_state;
BEGIN
	SELECT o.state INTO v_old FROM oms.orders o WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_old IN ('cancelled', 'closed') THEN
		RETURN v_old;
	END IF;
	IF EXISTS (SELECT FROM oms.order_holds h
				WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL) THEN
		v_new := 'on_hold';
	ELSE
		SELECT oms.rollup(l.state) INTO v_new FROM oms.order_lines l
			WHERE l.tenant_id = p_tenant AND l.order_id = p_order;
	END IF;
	IF v_new <> v_old THEN
		UPDATE oms.orders o SET state = v_new WHERE o.tenant_id = p_tenant AND o.id = p_order;
	END IF;
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms._rollup(int, bigint) IS 'Internal: moves an order to the rollup of its lines'' states, or on_hold while a hold is open (cancelled and closed stay); returns the state';


-- Checks a list of line quantities, [{"line_no": 1, "qty": 2, ...}] (NULL passes: "all"): an
-- array of objects with whole line_no and qty of at least 1, no key outside p_keys, each line
-- once. p_what names the list in messages ("lines to pack").
CREATE FUNCTION oms._check_line_list(p_lines jsonb, p_what text, p_keys text[]) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_bad	record;
	v_dup	int;
BEGIN
	IF p_lines IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(p_lines) <> 'array' OR jsonb_array_length(p_lines) = 0 OR jsonb_array_length(p_lines) > 10000 THEN
		RAISE EXCEPTION '% must be a non-empty array, got %', p_what, left(p_lines::text, 80)
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 2}].';
	END IF;
	SELECT x.i - 1 AS i, x.v,
		   (SELECT k FROM jsonb_object_keys(CASE WHEN jsonb_typeof(x.v) = 'object' THEN x.v ELSE '{}' END) k
			 WHERE k <> ALL (p_keys) ORDER BY k LIMIT 1) AS extra
	  INTO v_bad
	  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
	 WHERE CASE WHEN jsonb_typeof(x.v) <> 'object' THEN true
				WHEN EXISTS (SELECT FROM jsonb_object_keys(x.v) k WHERE k <> ALL (p_keys)) THEN true
				WHEN jsonb_typeof(x.v -> 'line_no') IS DISTINCT FROM 'number'
				  OR jsonb_typeof(x.v -> 'qty') IS DISTINCT FROM 'number' THEN true
				ELSE (x.v ->> 'line_no')::numeric NOT BETWEEN 1 AND 2147483647
				  OR (x.v ->> 'qty')::numeric NOT BETWEEN 1 AND 2147483647
				  OR (x.v ->> 'line_no')::numeric <> trunc((x.v ->> 'line_no')::numeric)
				  OR (x.v ->> 'qty')::numeric <> trunc((x.v ->> 'qty')::numeric) END
	 ORDER BY x.i LIMIT 1;
	IF FOUND THEN
		IF v_bad.extra IS NOT NULL THEN
			RAISE EXCEPTION '% [%]: field "%" is not known', p_what, v_bad.i, v_bad.extra
				USING ERRCODE = '22023', HINT = format('Known fields: %s.', array_to_string(p_keys, ', '));
		END IF;
		RAISE EXCEPTION '% [%] must have a whole line_no and qty of at least 1, got %', p_what, v_bad.i, left(v_bad.v::text, 80)
			USING ERRCODE = '22023', HINT = 'For example {"line_no": 1, "qty": 2}.';
	END IF;
	SELECT (x.v -> 'line_no')::numeric::int INTO v_dup FROM jsonb_array_elements(p_lines) x(v)
	 GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1;
	IF v_dup IS NOT NULL THEN
		RAISE EXCEPTION 'line % appears more than once in the %', v_dup, p_what
			USING ERRCODE = '22023', HINT = 'Give each line once, with its total quantity.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_line_list(jsonb, text, text[]) IS 'Internal: refuses (22023) a list of line quantities that is not [{"line_no": n, "qty": n, ...}] with whole values of at least 1, known keys and each line once';
