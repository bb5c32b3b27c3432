-- What the lifecycle functions (payments, holds, release, shipments, edits, returns) share: the
-- order lock every one of them takes first, money amounts checked against the order's currency,
-- the rollup that puts an order back in the state its lines add up to, and event writing.
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
BEGIN
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
		VALUES (p_tenant, p_order, p_type, oms._order_header(p_tenant, p_order) || coalesce(p_payload, '{}'));
END
$$;
COMMENT ON FUNCTION oms._event(int, bigint, text, jsonb) IS 'Internal: writes an event of an order, its payload the order header (reference, channel, customer) and the given fields';
