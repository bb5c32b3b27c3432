-- Payments of an order: authorisations from a payment provider, captured (money taken), refunded
-- and voided (authorisation given up) amounts. One row per authorisation (a provider reference),
-- in the order's currency; its invariants are CHECKs, so no code path can capture more than was
-- authorised or refund more than was captured. Every operation is also a row of the ledger
-- oms.payment_operations and an event. oms never sees card data: only amounts and the provider's
-- reference.
--
-- Several authorisations of one order (a split payment, a re-authorisation) are used oldest first:
-- captures, refunds and voids walk them in id order.

CREATE TABLE oms.payments (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	reference		text NOT NULL CHECK (reference <> '' AND length(reference) <= 200),
	currency		char(3) NOT NULL REFERENCES oms.currencies,
	authorized		numeric NOT NULL CHECK (authorized > 0),
	captured		numeric NOT NULL DEFAULT 0 CHECK (captured >= 0),
	refunded		numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0),
	voided			numeric NOT NULL DEFAULT 0 CHECK (voided >= 0),
	authorized_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT payments_reference_key UNIQUE (tenant_id, order_id, reference),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CONSTRAINT payments_captured_within_authorized CHECK (captured + voided <= authorized),
	CONSTRAINT payments_refunded_within_captured CHECK (refunded <= captured)
);
COMMENT ON TABLE oms.payments IS 'Authorisations of an order''s payment (provider reference, currency of the order) and the amounts captured, refunded and voided from each; captured + voided <= authorized and refunded <= captured always hold';

CREATE TABLE oms.payment_operations (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	payment_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('authorize', 'capture', 'refund', 'void')),
	amount			numeric NOT NULL CHECK (amount > 0),
	reason			text,
	operated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	operated_by		text NOT NULL,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, payment_id) REFERENCES oms.payments
);
CREATE INDEX payment_operations_order_idx ON oms.payment_operations (tenant_id, order_id);
COMMENT ON TABLE oms.payment_operations IS 'Ledger of every payment operation: authorise, capture, refund, void, with amount, reason, who and when';

-- The totals of an order's payments.
CREATE FUNCTION oms.payment_totals(order_id bigint)
	RETURNS TABLE (currency char(3), authorized numeric, captured numeric, refunded numeric, voided numeric,
				   capturable numeric, refundable numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT o.currency, coalesce(sum(p.authorized), 0), coalesce(sum(p.captured), 0),
		   coalesce(sum(p.refunded), 0), coalesce(sum(p.voided), 0),
		   coalesce(sum(p.authorized - p.captured - p.voided), 0), coalesce(sum(p.captured - p.refunded), 0)
	  FROM oms.orders o
	  LEFT JOIN oms.payments p ON p.tenant_id = o.tenant_id AND p.order_id = o.id
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.id = payment_totals.order_id
	 GROUP BY o.currency;
END
$$;
COMMENT ON FUNCTION oms.payment_totals(bigint) IS 'An order''s payments summed: authorized, captured, refunded, voided, still capturable (authorized - captured - voided) and refundable (captured - refunded); no row for an unknown order';

CREATE FUNCTION oms.authorize_payment(order_id bigint, amount numeric, reference text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_id		bigint;
	v_old		numeric;
	v_open		numeric;
BEGIN
	o := oms._lock_order(v_tenant, authorize_payment.order_id);
	IF reference IS NULL OR reference = '' OR length(reference) > 200 THEN
		RAISE EXCEPTION 'invalid payment reference "%" for order %', coalesce(reference, 'NULL'), o.id
			USING ERRCODE = '22023', HINT = 'The payment provider''s reference of the authorisation: text of 1 to 200 characters.';
	END IF;
	amount := oms._amount(amount, o.currency, 'authorisation');

	-- A retried call with the same reference returns the first result.
	SELECT p.id, p.authorized INTO v_id, v_old FROM oms.payments p
		WHERE p.tenant_id = v_tenant AND p.order_id = o.id AND p.reference = authorize_payment.reference;
	IF v_id IS NOT NULL THEN
		IF v_old <> amount THEN
			RAISE EXCEPTION 'payment reference "%" of order % was authorised for % %, not %', reference, o.id, v_old, o.currency, amount
				USING ERRCODE = '22023', HINT = 'A provider reference identifies one authorisation; use a new reference for another amount.';
		END IF;
		RETURN v_id;
	END IF;

	IF o.state IN ('cancelled', 'closed') THEN
		RAISE EXCEPTION 'order % cannot take a payment: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Payments are authorised for open orders only.';
	END IF;
	SELECT coalesce(sum(p.authorized - p.voided), 0) INTO v_open FROM oms.payments p
		WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
	IF v_open + amount > o.total THEN
		RAISE EXCEPTION 'authorisation of % % for order % exceeds its total', amount, o.currency, o.id
			USING ERRCODE = 'OM008',
			      DETAIL = format('Order total %s, already authorised %s (not voided), requested %s.', o.total, v_open, amount),
			      HINT = 'Authorise at most the order''s total; void an old authorisation first to replace it.';
	END IF;

	INSERT INTO oms.payments (tenant_id, order_id, reference, currency, authorized)
		VALUES (v_tenant, o.id, reference, o.currency, amount)
		RETURNING id INTO v_id;
	INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
		VALUES (v_tenant, v_id, o.id, 'authorize', amount, oms._actor());
	PERFORM oms._event(v_tenant, o.id, 'payment_authorized',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'reference', reference,
						   'authorized_total', v_open + amount));
	-- The authorisation may be what the order waited for, on a channel that releases by itself.
	PERFORM oms._auto_release(v_tenant, o.id);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.authorize_payment(bigint, numeric, text) IS 'Records an authorisation of amount (order currency) under the provider''s reference; returns the payment id; the same reference again returns the same id; more than the order total: OM008; releases the order when its channel has auto_release and nothing else blocks';

CREATE FUNCTION oms.capture_payment(order_id bigint, amount numeric DEFAULT NULL) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_minor		int;
	v_due		numeric;
	v_cap		record;
	v_left		numeric;
	v_take		numeric;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, capture_payment.order_id);
	SELECT sum(x.authorized) AS authorized, coalesce(sum(x.captured), 0) AS captured, sum(x.voided) AS voided,
		   coalesce(sum(x.authorized - x.captured - x.voided), 0) AS capturable
	  INTO v_cap
	  FROM oms.payments x WHERE x.tenant_id = v_tenant AND x.order_id = o.id;

	IF amount IS NULL THEN
		-- What has shipped (and the shipping charge, once anything has) and is not captured yet.
		SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
		-- Gross amounts: on a channel with net prices (tax_mode excluded) the tax is charged too.
		SELECT coalesce(sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_shipped, v_minor)), 0)
			   + CASE WHEN bool_or(l.qty_shipped > 0)
					  THEN coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) ELSE 0 END
		  INTO v_due
		  FROM oms.order_lines l WHERE l.tenant_id = v_tenant AND l.order_id = o.id;
		v_due := v_due - v_cap.captured;
		IF v_due <= 0 THEN
			RETURN 0;
		END IF;
		amount := v_due;
	ELSE
		amount := oms._amount(amount, o.currency, 'capture');
	END IF;

	IF amount > v_cap.capturable THEN
		RAISE EXCEPTION 'capture of % % for order % exceeds what is authorised and not captured', amount, o.currency, o.id
			USING ERRCODE = 'OM006',
			      DETAIL = format('Authorised %s, captured %s, voided %s: at most %s can be captured.',
							   coalesce(v_cap.authorized, 0), v_cap.captured, coalesce(v_cap.voided, 0), v_cap.capturable),
			      HINT = 'Capture less, or authorise more with oms.authorize_payment().';
	END IF;

	v_left := amount;
	FOR p IN SELECT x.id, x.authorized - x.captured - x.voided AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.authorized - x.captured - x.voided > 0
			  ORDER BY x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, p.open);
		UPDATE oms.payments x SET captured = x.captured + v_take, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
			VALUES (v_tenant, p.id, o.id, 'capture', v_take, oms._actor());
		v_left := v_left - v_take;
	END LOOP;
	PERFORM oms._event(v_tenant, o.id, 'payment_captured',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'captured_total', v_cap.captured + amount));
	PERFORM oms._invoice_on_capture(v_tenant, o.id);	-- channels that invoice on capture (89_documents.sql)
	RETURN amount;
END
$$;
COMMENT ON FUNCTION oms.capture_payment(bigint, numeric) IS 'Captures amount (NULL: the value shipped, with shipping once anything shipped, not yet captured) from the order''s authorisations, oldest first; returns the amount captured; more than is capturable: OM006';

CREATE FUNCTION oms.refund_payment(order_id bigint, amount numeric, reason text) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_captured	numeric;
	v_refunded	numeric;
	v_left		numeric;
	v_take		numeric;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, refund_payment.order_id);
	PERFORM oms._reason(reason, 'refund a payment');
	amount := oms._amount(amount, o.currency, 'refund');
	SELECT coalesce(sum(x.captured), 0), coalesce(sum(x.refunded), 0) INTO v_captured, v_refunded
		FROM oms.payments x WHERE x.tenant_id = v_tenant AND x.order_id = o.id;
	IF amount > v_captured - v_refunded THEN
		RAISE EXCEPTION 'refund of % % for order % exceeds what was captured and not refunded', amount, o.currency, o.id
			USING ERRCODE = 'OM007',
			      DETAIL = format('Captured %s, refunded %s: at most %s can be refunded.', v_captured, v_refunded, v_captured - v_refunded),
			      HINT = 'Refund at most what was captured; capture first with oms.capture_payment().';
	END IF;

	v_left := amount;
	FOR p IN SELECT x.id, x.captured - x.refunded AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.captured - x.refunded > 0
			  ORDER BY x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, p.open);
		UPDATE oms.payments x SET refunded = x.refunded + v_take, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, reason, operated_by)
			VALUES (v_tenant, p.id, o.id, 'refund', v_take, reason, oms._actor());
		v_left := v_left - v_take;
	END LOOP;
	PERFORM oms._credit_refund(v_tenant, o.id, amount, reason);	-- credit note of invoiced goods (89_documents.sql)
	PERFORM oms._event(v_tenant, o.id, 'refunded',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'reason', reason,
						   'refunded_total', v_refunded + amount));
	RETURN amount;
END
$$;
COMMENT ON FUNCTION oms.refund_payment(bigint, numeric, text) IS 'Refunds amount of what was captured, oldest authorisation first, with the reason; returns the amount; more than captured and not refunded: OM007';

CREATE FUNCTION oms.void_payment(order_id bigint) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_total		numeric := 0;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, void_payment.order_id);
	FOR p IN SELECT x.id, x.authorized - x.captured - x.voided AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.authorized - x.captured - x.voided > 0
			  ORDER BY x.id
	LOOP
		UPDATE oms.payments x SET voided = x.voided + p.open, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
			VALUES (v_tenant, p.id, o.id, 'void', p.open, oms._actor());
		v_total := v_total + p.open;
	END LOOP;
	IF v_total > 0 THEN
		PERFORM oms._event(v_tenant, o.id, 'payment_voided', jsonb_build_object('amount', v_total, 'currency', o.currency));
	END IF;
	RETURN v_total;
END
$$;
COMMENT ON FUNCTION oms.void_payment(bigint) IS 'Gives up what is authorised and not captured (every authorisation of the order); returns the amount voided, 0 when nothing was open';
