-- Invoices and credit notes (issue 11).
--
-- A document (invoice or credit note) is a row of oms.invoices with its lines in
-- oms.invoice_lines: copies of the seller, buyer and address as of issue, one line per order line
-- (and one for the shipping charge on the order's first invoice) with quantity, unit price, net,
-- tax rate, tax and gross, and the totals. Credit notes have negative quantities and amounts.
--
-- Numbering: gapless and increasing per tenant and series (INV-2026, CN-2026: a prefix and the
-- year of issue, settings in oms.document_settings). The document is written first with no
-- number; the last statement of the issuing transaction's work takes the next number from its
-- series' counter row (oms.document_counters, INSERT ... ON CONFLICT DO UPDATE) and writes it on
-- the document. The counter row stays locked only from that moment to the commit, so concurrent
-- issuers queue for a moment and nothing else (order placement never touches it); a transaction
-- that rolls back rolls its counter back too, so no number is lost.
--
-- Immutability: a trigger refuses UPDATE and DELETE of a numbered document and of any document's
-- lines (OM013); the one UPDATE allowed is the numbering itself.

CREATE TABLE oms.document_settings (
	tenant_id			int PRIMARY KEY DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	seller				jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(seller) = 'object'),
	invoice_prefix		text NOT NULL DEFAULT 'INV' CHECK (invoice_prefix ~ '^[A-Z0-9]{1,10}$'),
	credit_note_prefix	text NOT NULL DEFAULT 'CN' CHECK (credit_note_prefix ~ '^[A-Z0-9]{1,10}$'),
	yearly_series		boolean NOT NULL DEFAULT true,
	gs1_company_prefix	text CHECK (gs1_company_prefix ~ '^[0-9]{6,12}$'),
	sscc_extension		int NOT NULL DEFAULT 0 CHECK (sscc_extension BETWEEN 0 AND 9)
);
COMMENT ON TABLE oms.document_settings IS 'Per tenant: the seller printed on documents, invoice and credit note series (prefix, one series per year), GS1 company prefix and SSCC extension digit; set with oms.set_document_settings()';

CREATE TABLE oms.document_counters (
	tenant_id		int NOT NULL REFERENCES oms.tenants,
	series			text NOT NULL,
	last			int NOT NULL CHECK (last > 0),
	PRIMARY KEY (tenant_id, series)
);
COMMENT ON TABLE oms.document_counters IS 'Last number issued per tenant and document series; updated only by the numbering of a document, at the end of the issuing transaction';

CREATE TABLE oms.invoices (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	kind				text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
	series				text NOT NULL,
	seq					int,
	number				text,
	order_id			bigint NOT NULL,
	credited_invoice_id	bigint,
	issued_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	currency			char(3) NOT NULL REFERENCES oms.currencies,
	tax_mode			text NOT NULL,
	seller				jsonb NOT NULL,
	buyer				jsonb NOT NULL,
	address				jsonb,
	reason				text,
	net					numeric NOT NULL,
	tax					numeric NOT NULL,
	gross				numeric NOT NULL,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT invoices_number_key UNIQUE (tenant_id, number),
	CONSTRAINT invoices_seq_key UNIQUE (tenant_id, series, seq),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, credited_invoice_id) REFERENCES oms.invoices,
	CHECK ((seq IS NULL) = (number IS NULL)),
	CHECK (gross = net + tax),
	CHECK ((kind = 'credit_note') = (credited_invoice_id IS NOT NULL)),
	CHECK (CASE kind WHEN 'invoice' THEN gross >= 0 ELSE gross <= 0 END)
);
CREATE INDEX invoices_order_idx ON oms.invoices (tenant_id, order_id);
COMMENT ON TABLE oms.invoices IS 'Issued invoices and credit notes (kind): gapless number per series, copies of seller, buyer and address as of issue, totals; immutable once numbered';
COMMENT ON COLUMN oms.invoices.credited_invoice_id IS 'For a credit note: the invoice it refers to (the order''s latest invoice)';

CREATE TABLE oms.invoice_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	invoice_id		bigint NOT NULL,
	position		int NOT NULL CHECK (position > 0),
	line_no			int,
	sku				text,
	description		text NOT NULL,
	qty				int NOT NULL,
	unit_price		numeric,
	net				numeric NOT NULL,
	tax_rate		numeric,
	tax				numeric NOT NULL,
	gross			numeric NOT NULL,
	PRIMARY KEY (tenant_id, invoice_id, position),
	FOREIGN KEY (tenant_id, invoice_id) REFERENCES oms.invoices,
	CHECK (gross = net + tax)
);
COMMENT ON TABLE oms.invoice_lines IS 'Lines of an invoice or credit note: the order line (NULL: shipping or a refund adjustment), quantity (negative on a credit note; 0 for an adjustment), unit price, net, tax rate, tax, gross';

CREATE FUNCTION oms._documents_immutable() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	jsonb;
	-- the table's name, also on a shard of a Citus cluster (invoices_102550: invoices)
	v_table	text := pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '');
BEGIN
	IF TG_OP = 'INSERT' THEN	-- lines: only while their document is not numbered
		IF EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = NEW.tenant_id AND i.id = NEW.invoice_id
					  AND i.number IS NOT NULL) THEN
			RAISE EXCEPTION 'document % is issued: lines cannot be added', NEW.invoice_id
				USING ERRCODE = 'OM013', HINT = 'Correct an issued invoice with a credit note.';
		END IF;
		RETURN NEW;
	END IF;
	v_old := pg_catalog.to_jsonb(OLD);
	IF v_table = 'invoices' AND TG_OP = 'UPDATE' THEN
		IF v_old ->> 'number' IS NULL AND pg_catalog.to_jsonb(NEW) ->> 'number' IS NOT NULL
		   AND (pg_catalog.to_jsonb(NEW) - 'number' - 'seq') = (v_old - 'number' - 'seq') THEN
			RETURN NEW;		-- the numbering of a document being issued
		END IF;
	END IF;
	RAISE EXCEPTION 'issued documents cannot be changed: % of % refused', TG_OP, v_table
		USING ERRCODE = 'OM013',
		      DETAIL = format('Document %s.', coalesce(v_old ->> 'number', v_old ->> 'invoice_id', v_old ->> 'id')),
		      HINT = 'An invoice is corrected by a credit note, never edited or deleted.';
END
$$;
COMMENT ON FUNCTION oms._documents_immutable() IS 'Internal: trigger refusing (OM013) UPDATE and DELETE of issued invoices and credit notes and of their lines; only the numbering is allowed';

CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON oms.invoices
	FOR EACH ROW EXECUTE FUNCTION oms._documents_immutable();
COMMENT ON TRIGGER invoices_immutable ON oms.invoices IS 'An issued document is never changed or deleted';
CREATE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON oms.invoice_lines
	FOR EACH ROW EXECUTE FUNCTION oms._documents_immutable();
COMMENT ON TRIGGER invoice_lines_immutable ON oms.invoice_lines IS 'Lines of a document are written once, before it is numbered';

-- The outbox's event types, plus this part's two: the list of 46_events.sql as it stands, so that
-- types other parts add there are kept.
DO $$
DECLARE
	v_def	text;
BEGIN
	SELECT pg_catalog.pg_get_constraintdef(c.oid) INTO v_def FROM pg_catalog.pg_constraint c
	 WHERE c.conrelid = 'oms.events'::regclass AND c.conname = 'events_type_known';
	IF v_def IS NULL OR v_def !~ '\]\)\)\)$' THEN
		RAISE EXCEPTION 'unexpected constraint events_type_known: %', v_def;
	END IF;
	ALTER TABLE oms.events DROP CONSTRAINT events_type_known;
	EXECUTE pg_catalog.format('ALTER TABLE oms.events ADD CONSTRAINT events_type_known %s',
		pg_catalog.regexp_replace(v_def, '\]\)\)\)$', ', ''invoice_issued''::text, ''credit_note_issued''::text])))'));
END
$$;

-- ----- settings

CREATE FUNCTION oms.set_document_settings(settings jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_key		text;
	v_prefix	text;
BEGIN
	IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
		RAISE EXCEPTION 'document settings must be a JSON object'
			USING ERRCODE = '22023', HINT = 'For example {"seller": {"name": "Shop"}, "gs1_company_prefix": "0614141"}.';
	END IF;
	SELECT k INTO v_key FROM jsonb_object_keys(settings) k
	 WHERE k NOT IN ('seller', 'invoice_prefix', 'credit_note_prefix', 'yearly_series', 'gs1_company_prefix', 'sscc_extension')
	 ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'unknown document setting "%"', oms._clip(v_key)
			USING ERRCODE = '22023',
			      HINT = 'Settings: seller, invoice_prefix, credit_note_prefix, yearly_series, gs1_company_prefix, sscc_extension.';
	END IF;
	IF settings ? 'gs1_company_prefix' AND jsonb_typeof(settings -> 'gs1_company_prefix') <> 'null' THEN
		v_prefix := settings ->> 'gs1_company_prefix';
		IF jsonb_typeof(settings -> 'gs1_company_prefix') <> 'string' OR v_prefix !~ '^[0-9]{6,12}$' THEN
			RAISE EXCEPTION 'invalid GS1 company prefix %', oms._clip((settings -> 'gs1_company_prefix')::text)
				USING ERRCODE = '22023',
				      HINT = 'A GS1 company prefix is a string of 6 to 12 digits, as GS1 assigned it (e.g. "0614141").';
		END IF;
	END IF;
	IF settings ? 'seller' AND jsonb_typeof(settings -> 'seller') <> 'object' THEN
		RAISE EXCEPTION 'seller must be a JSON object, got %', oms._clip((settings -> 'seller')::text)
			USING ERRCODE = '22023', HINT = 'For example {"name": "Shop S.r.l.", "address": ["Via Roma 1", "20121 Milano"], "vat_id": "IT01234567890"}.';
	END IF;
	IF settings ? 'sscc_extension' AND (jsonb_typeof(settings -> 'sscc_extension') <> 'number'
										OR (settings ->> 'sscc_extension') !~ '^[0-9]$') THEN
		RAISE EXCEPTION 'invalid SSCC extension digit %', oms._clip((settings -> 'sscc_extension')::text)
			USING ERRCODE = '22023', HINT = 'The extension digit is a number from 0 to 9.';
	END IF;
	IF (settings ? 'invoice_prefix' AND coalesce(settings ->> 'invoice_prefix', '') !~ '^[A-Z0-9]{1,10}$')
	   OR (settings ? 'credit_note_prefix' AND coalesce(settings ->> 'credit_note_prefix', '') !~ '^[A-Z0-9]{1,10}$') THEN
		RAISE EXCEPTION 'invalid document prefix %', oms._clip(coalesce(settings -> 'invoice_prefix', settings -> 'credit_note_prefix')::text)
			USING ERRCODE = '22023', HINT = 'A prefix has 1 to 10 capital letters or digits, e.g. "INV".';
	END IF;
	IF settings ? 'yearly_series' AND jsonb_typeof(settings -> 'yearly_series') <> 'boolean' THEN
		RAISE EXCEPTION 'yearly_series must be true or false'
			USING ERRCODE = '22023', HINT = 'true: a series per calendar year (INV-2026-000001); false: one series (INV-000001).';
	END IF;

	INSERT INTO oms.document_settings AS d (tenant_id) VALUES (v_tenant) ON CONFLICT (tenant_id) DO NOTHING;
	UPDATE oms.document_settings d
	   SET seller = CASE WHEN settings ? 'seller' THEN settings -> 'seller' ELSE d.seller END,
		   invoice_prefix = coalesce(settings ->> 'invoice_prefix', d.invoice_prefix),
		   credit_note_prefix = coalesce(settings ->> 'credit_note_prefix', d.credit_note_prefix),
		   yearly_series = coalesce((settings ->> 'yearly_series')::boolean, d.yearly_series),
		   gs1_company_prefix = CASE WHEN settings ? 'gs1_company_prefix' THEN v_prefix ELSE d.gs1_company_prefix END,
		   sscc_extension = coalesce((settings ->> 'sscc_extension')::int, d.sscc_extension)
	 WHERE d.tenant_id = v_tenant;
END
$$;
COMMENT ON FUNCTION oms.set_document_settings(jsonb) IS 'Sets the current tenant''s document settings: seller (object printed on documents), invoice_prefix, credit_note_prefix, yearly_series, gs1_company_prefix (6 to 12 digits), sscc_extension (0-9); keys not given keep their value';

-- ----- issuing

-- Numbers a document written by this transaction: the next number of its series, taken last.
CREATE FUNCTION oms._number_document(p_tenant int, p_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_series	text;
	v_seq		int;
	v_number	text;
BEGIN
	SELECT i.series INTO v_series FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_id;
	INSERT INTO oms.document_counters AS c (tenant_id, series, last) VALUES (p_tenant, v_series, 1)
		ON CONFLICT (tenant_id, series) DO UPDATE SET last = c.last + 1
		RETURNING c.last INTO v_seq;
	v_number := v_series || '-' || lpad(v_seq::text, 6, '0');
	UPDATE oms.invoices i SET seq = v_seq, number = v_number WHERE i.tenant_id = p_tenant AND i.id = p_id;
	RETURN v_number;
END
$$;
COMMENT ON FUNCTION oms._number_document(int, bigint) IS 'Internal: gives a document just written the next number of its series (counter row locked from here to commit; a rollback returns the number)';

-- Writes a document from its lines (jsonb array of line objects) and numbers it; returns its id.
CREATE FUNCTION oms._write_document(p_tenant int, o oms.orders, p_kind text, p_credited bigint, p_reason text,
									p_lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s			oms.document_settings;
	v_id		bigint;
	v_number	text;
	v_tot		record;
	v_address	jsonb := o.ship_to;
BEGIN
	SELECT * INTO s FROM oms.document_settings d WHERE d.tenant_id = p_tenant;
	IF NOT FOUND THEN
		s.seller := '{}'; s.invoice_prefix := 'INV'; s.credit_note_prefix := 'CN'; s.yearly_series := true;
	END IF;
	SELECT sum(x.net) AS net, sum(x.tax) AS tax, sum(x.gross) AS gross INTO v_tot
		FROM jsonb_to_recordset(p_lines) x(net numeric, tax numeric, gross numeric);
	-- Read before the INSERT: Citus takes no subquery in an INSERT's VALUES.
	IF o.pickup_location_id IS NOT NULL THEN
		SELECT jsonb_strip_nulls(jsonb_build_object('pickup', l.code, 'name', l.name, 'city', l.city,
													 'postal_code', l.postal_code, 'country', l.country))
		  INTO v_address
		  FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id;
	END IF;

	INSERT INTO oms.invoices (tenant_id, kind, series, order_id, credited_invoice_id, currency, tax_mode,
							  seller, buyer, address, reason, net, tax, gross)
		VALUES (p_tenant, p_kind,
				CASE p_kind WHEN 'invoice' THEN s.invoice_prefix ELSE s.credit_note_prefix END
				|| CASE WHEN s.yearly_series THEN to_char(now() AT TIME ZONE 'UTC', '-YYYY') ELSE '' END,
				o.id, p_credited, o.currency, o.tax_mode, s.seller,
				jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
													 'phone', o.customer_phone)),
				v_address,
				p_reason, v_tot.net, v_tot.tax, v_tot.gross)
		RETURNING id INTO v_id;
	INSERT INTO oms.invoice_lines (tenant_id, invoice_id, position, line_no, sku, description, qty, unit_price,
								   net, tax_rate, tax, gross)
		SELECT p_tenant, v_id, x.i, y.line_no, y.sku, y.description, y.qty, y.unit_price, y.net, y.tax_rate, y.tax, y.gross
		  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
		 CROSS JOIN LATERAL jsonb_to_record(x.v) y(line_no int, sku text, description text, qty int, unit_price numeric,
												   net numeric, tax_rate numeric, tax numeric, gross numeric);

	v_number := oms._number_document(p_tenant, v_id);
	PERFORM oms._event(p_tenant, o.id, CASE p_kind WHEN 'invoice' THEN 'invoice_issued' ELSE 'credit_note_issued' END,
		jsonb_strip_nulls(jsonb_build_object('invoice_id', v_id, 'number', v_number, 'currency', o.currency,
			'net', v_tot.net, 'tax', v_tot.tax, 'gross', v_tot.gross,
			'credited_invoice', (SELECT i.number FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_credited),
			'reason', p_reason)));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._write_document(int, oms.orders, text, bigint, text, jsonb) IS 'Internal: writes an invoice or credit note of an order (copies of seller, buyer, address; lines; totals), numbers it last and writes its event; returns its id';

-- What each order line (and the shipping charge, line_no 0) has on documents: units invoiced, and
-- net of credit notes: units, net, tax, gross still invoiced.
CREATE FUNCTION oms._invoiced(p_tenant int, p_order bigint)
	RETURNS TABLE (line_no int, tax_rate numeric, invoiced_qty bigint, credited_qty bigint,
				   open_gross numeric, open_tax numeric, invoiced_gross numeric, invoiced_tax numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT coalesce(il.line_no, 0), il.tax_rate,
		   coalesce(sum(il.qty) FILTER (WHERE i.kind = 'invoice'), 0)::bigint,
		   coalesce(-sum(il.qty) FILTER (WHERE i.kind = 'credit_note'), 0)::bigint,
		   sum(il.gross), sum(il.tax),
		   coalesce(sum(il.gross) FILTER (WHERE i.kind = 'invoice'), 0),
		   coalesce(sum(il.tax) FILTER (WHERE i.kind = 'invoice'), 0)
	  FROM oms.invoices i
	  JOIN oms.invoice_lines il ON il.tenant_id = i.tenant_id AND il.invoice_id = i.id
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order
	 GROUP BY coalesce(il.line_no, 0), il.tax_rate;
END
$$;
COMMENT ON FUNCTION oms._invoiced(int, bigint) IS 'Internal: per order line (0: shipping and adjustments) and tax rate, units invoiced and credited and the gross and tax still invoiced after credit notes';

CREATE FUNCTION oms._issue_invoice(p_tenant int, o oms.orders, p_capture boolean) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor		int;
	v_lines		jsonb;
	v_no		int[];
	v_qty		bigint[];
	v_gross		numeric[];
	v_tax		numeric[];
BEGIN
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	-- What was invoiced before, read first: on Citus a query of the tenant's tables inside
	-- another would be sent to the shard's node on a connection of its own (README "Scale-out
	-- on Citus").
	SELECT pg_catalog.array_agg(v.line_no), pg_catalog.array_agg(v.invoiced_qty),
		   pg_catalog.array_agg(v.invoiced_gross), pg_catalog.array_agg(v.invoiced_tax)
	  INTO v_no, v_qty, v_gross, v_tax
	  FROM oms._invoiced(p_tenant, o.id) v;
	-- Per line: the units to invoice now (shipped or collected; with invoicing on capture, every
	-- unit not cancelled) less those invoiced before. Amounts are cumulative shares of the line's
	-- amounts, so that the invoices of a line add up to its amounts exactly once it is all invoiced.
	WITH inv AS (SELECT * FROM unnest(v_no, v_qty, v_gross, v_tax)
						AS v(line_no, invoiced_qty, invoiced_gross, invoiced_tax)),
	l AS (
		SELECT l.line_no, i.sku, i.name, l.qty, l.unit_price, l.tax_rate,
			   coalesce(l.gross, round(l.qty * l.unit_price, v_minor)) AS gross, coalesce(l.tax, 0) AS tax,
			   CASE WHEN p_capture THEN l.qty - l.qty_cancelled ELSE l.qty_shipped END AS due,
			   coalesce((SELECT sum(v.invoiced_qty) FROM inv v WHERE v.line_no = l.line_no), 0) AS done,
			   coalesce((SELECT sum(v.invoiced_gross) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_gross,
			   coalesce((SELECT sum(v.invoiced_tax) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_tax
		  FROM oms.order_lines l
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		 WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
	now_lines AS (
		SELECT l.line_no, l.sku, l.name, l.due - l.done AS q, l.unit_price, l.tax_rate,
			   round(l.gross * l.due / l.qty, v_minor) - l.done_gross AS gross,
			   round(l.tax * l.due / l.qty, v_minor) - l.done_tax AS tax
		  FROM l WHERE l.due > l.done),
	ship AS (
		SELECT 0 AS line_no, NULL::text AS sku, 'Shipping' AS name, 1 AS q, o.shipping_amount AS unit_price,
			   o.shipping_tax_rate AS tax_rate, coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) AS gross,
			   coalesce(o.shipping_tax, 0) AS tax
		 WHERE o.shipping_amount > 0 AND EXISTS (SELECT FROM now_lines)
		   AND NOT EXISTS (SELECT FROM inv v WHERE v.line_no = 0 AND v.invoiced_qty > 0))
	SELECT jsonb_agg(jsonb_build_object('line_no', nullif(x.line_no, 0), 'sku', x.sku, 'description', x.name, 'qty', x.q,
										'unit_price', x.unit_price, 'net', x.gross - x.tax, 'tax_rate', x.tax_rate,
										'tax', x.tax, 'gross', x.gross)
					 ORDER BY x.line_no = 0, x.line_no)
	  INTO v_lines
	  FROM (SELECT * FROM now_lines UNION ALL SELECT * FROM ship) x;

	IF v_lines IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'invoice', NULL, NULL, v_lines);
END
$$;
COMMENT ON FUNCTION oms._issue_invoice(int, oms.orders, boolean) IS 'Internal: invoices the units of a locked order due and not yet invoiced (shipped, or all not cancelled when p_capture) and the shipping charge on the first invoice; NULL when nothing is due';

CREATE FUNCTION oms.issue_invoice(order_id bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_on		text;
	v_id		bigint;
	v_shipped	bigint;
BEGIN
	o := oms._lock_order(v_tenant, issue_invoice.order_id);
	SELECT c.invoice_on INTO v_on FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id;
	IF v_on = 'capture' AND NOT EXISTS (SELECT FROM oms.payments p WHERE p.tenant_id = v_tenant AND p.order_id = o.id
										  AND p.captured > 0) THEN
		RAISE EXCEPTION 'order % has nothing to invoice: its payment is not captured', o.id
			USING ERRCODE = '55000',
			      HINT = 'The order''s channel invoices on capture: capture the payment (oms.capture_payment), which issues the invoice.';
	END IF;
	v_id := oms._issue_invoice(v_tenant, o, v_on = 'capture');
	IF v_id IS NULL THEN
		SELECT coalesce(sum(l.qty_shipped), 0) INTO v_shipped FROM oms.order_lines l
			WHERE l.tenant_id = v_tenant AND l.order_id = o.id;
		RAISE EXCEPTION 'order % has nothing to invoice', o.id
			USING ERRCODE = '55000',
			      DETAIL = format('The order is %s; units shipped or collected: %s, already invoiced: %s.', o.state, v_shipped,
							   (SELECT coalesce(sum(v.invoiced_qty), 0) FROM oms._invoiced(v_tenant, o.id) v WHERE v.line_no > 0)),
			      HINT = CASE WHEN o.state = 'cancelled' THEN 'A cancelled order is not invoiced.'
						  ELSE 'Invoice after shipping (oms.ship) or collection (oms.collect).' END;
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.issue_invoice(bigint) IS 'Issues an invoice for what the order has shipped or had collected and is not invoiced yet (the whole order, once captured, on a channel invoicing on capture); nothing to invoice: 55000; returns the invoice id';

-- Called by oms.capture_payment (76_payments.sql): on a channel that invoices on capture, issue the
-- invoice of everything not invoiced yet.
CREATE FUNCTION oms._invoice_on_capture(p_tenant int, p_order bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o	oms.orders;
BEGIN
	IF NOT EXISTS (SELECT FROM oms.orders x JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
					WHERE x.tenant_id = p_tenant AND x.id = p_order AND c.invoice_on = 'capture') THEN
		RETURN NULL;
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	RETURN oms._issue_invoice(p_tenant, o, true);
END
$$;
COMMENT ON FUNCTION oms._invoice_on_capture(int, bigint) IS 'Internal: after a capture, on a channel with invoice_on = capture, invoices what is not invoiced yet; returns the invoice id or NULL';

-- Called by oms.refund_payment (76_payments.sql) for every refund: a refund of invoiced goods
-- issues a credit note of the same amount (at most what is invoiced and not yet credited). Units
-- returned and not credited yet are credited first, at their share of their line's invoiced
-- amounts; what remains of the refund (a goodwill refund, shipping) is credited as one adjustment
-- per tax rate, in proportion to what is still invoiced at each rate.
CREATE FUNCTION oms._credit_refund(p_tenant int, p_order bigint, p_amount numeric, p_reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			oms.orders;
	v_minor		int;
	v_open		numeric;
	v_left		numeric;
	v_lines		jsonb := '[]';
	v_units		jsonb;
	v_units_g	numeric;
	v_last		bigint;
	r			record;
	v_n			int;
	v_k			int := 0;
	v_share		numeric;
	v_tax		numeric;
	v_done		numeric := 0;
BEGIN
	SELECT i.id INTO v_last FROM oms.invoices i
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order AND i.kind = 'invoice' ORDER BY i.id DESC LIMIT 1;
	IF v_last IS NULL THEN
		RETURN NULL;	-- nothing invoiced: a refund of what was never invoiced needs no credit note
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT coalesce(sum(v.open_gross), 0) INTO v_open FROM oms._invoiced(p_tenant, p_order) v;
	v_left := least(p_amount, v_open);
	IF v_left <= 0 THEN
		RETURN NULL;
	END IF;

	-- Returned units invoiced and not yet credited, at their share of what is still invoiced.
	WITH inv AS (SELECT * FROM oms._invoiced(p_tenant, p_order) WHERE line_no > 0),
	u AS (
		SELECT l.line_no, i.sku, i.name, l.unit_price, v.tax_rate, v.invoiced_qty - v.credited_qty AS open_qty,
			   v.open_gross, v.open_tax,
			   least(l.qty_returned - v.credited_qty, v.invoiced_qty - v.credited_qty) AS q
		  FROM inv v
		  JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = v.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id),
	c AS (
		SELECT u.*, round(u.open_gross * u.q / u.open_qty, v_minor) AS gross, round(u.open_tax * u.q / u.open_qty, v_minor) AS tax
		  FROM u WHERE u.q > 0)
	SELECT jsonb_agg(jsonb_build_object('line_no', c.line_no, 'sku', c.sku, 'description', c.name, 'qty', -c.q,
										'unit_price', c.unit_price, 'net', -(c.gross - c.tax), 'tax_rate', c.tax_rate,
										'tax', -c.tax, 'gross', -c.gross) ORDER BY c.line_no),
		   sum(c.gross)
	  INTO v_units, v_units_g
	  FROM c;
	IF v_units IS NOT NULL AND v_units_g <= v_left THEN
		v_lines := v_units;
		v_left := v_left - v_units_g;
	END IF;

	-- The rest: one adjustment per tax rate, in proportion to what is still invoiced at that rate.
	IF v_left > 0 THEN
		SELECT count(*) INTO v_n FROM (SELECT v.tax_rate FROM oms._invoiced(p_tenant, p_order) v
										GROUP BY v.tax_rate HAVING sum(v.open_gross) > 0) x;
		FOR r IN SELECT v.tax_rate, sum(v.open_gross) AS g FROM oms._invoiced(p_tenant, p_order) v
				  GROUP BY v.tax_rate HAVING sum(v.open_gross) > 0 ORDER BY v.tax_rate NULLS FIRST
		LOOP
			v_k := v_k + 1;
			v_share := CASE WHEN v_k = v_n THEN v_left - v_done ELSE round(v_left * r.g / v_open, v_minor) END;
			v_tax := round(v_share * coalesce(r.tax_rate, 0) / (1 + coalesce(r.tax_rate, 0)), v_minor);
			v_done := v_done + v_share;
			IF v_share <> 0 THEN
				v_lines := v_lines || jsonb_build_object('description', 'Refund: ' || p_reason, 'qty', 0,
					'net', -(v_share - v_tax), 'tax_rate', r.tax_rate, 'tax', -v_tax, 'gross', -v_share);
			END IF;
		END LOOP;
	END IF;
	IF v_lines = '[]' THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'credit_note', v_last, p_reason, v_lines);
END
$$;
COMMENT ON FUNCTION oms._credit_refund(int, bigint, numeric, text) IS 'Internal: for a refund of an invoiced order, issues a credit note of the refund (at most what is invoiced and not credited): returned units first, the rest as an adjustment per tax rate; returns its id or NULL';

-- A credit note for a refund made outside oms (a channel with refunds_outside, a goodwill gesture
-- paid by the marketplace): the same document oms.refund_payment issues, without touching payments.
CREATE FUNCTION oms.issue_credit_note(order_id bigint, amount numeric, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_open		numeric;
	v_id		bigint;
BEGIN
	o := oms._lock_order(v_tenant, issue_credit_note.order_id);
	PERFORM oms._reason(reason, 'issue a credit note');
	amount := oms._amount(amount, o.currency, 'credit');
	IF NOT EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = v_tenant AND i.order_id = o.id AND i.kind = 'invoice') THEN
		RAISE EXCEPTION 'order % has no invoice to credit', o.id
			USING ERRCODE = '55000',
			      HINT = 'A credit note corrects an invoice: issue the invoice first (oms.issue_invoice); a refund of what was never invoiced needs no credit note.';
	END IF;
	SELECT coalesce(sum(v.open_gross), 0) INTO v_open FROM oms._invoiced(v_tenant, o.id) v;
	IF amount > v_open THEN
		RAISE EXCEPTION 'credit note of % % for order % exceeds what is invoiced and not credited', amount, o.currency, o.id
			USING ERRCODE = 'OM012',
			      DETAIL = format('Invoiced and not yet credited: %s %s.', v_open, o.currency),
			      HINT = 'Credit at most what is still invoiced.';
	END IF;
	v_id := oms._credit_refund(v_tenant, o.id, amount, reason);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.issue_credit_note(bigint, numeric, text) IS 'Issues a credit note of amount against the order''s invoices for a refund made outside oms (returned units not yet credited first, the rest per tax rate); no invoice: 55000; more than is invoiced and not credited: OM012; returns its id';

-- ----- documents

-- Text escaped for HTML.
CREATE FUNCTION oms._html(p_text text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN replace(replace(replace(replace(coalesce(p_text, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;');
COMMENT ON FUNCTION oms._html(text) IS 'Internal: text escaped for HTML (& < > ")';

-- An address object as lines of text.
CREATE FUNCTION oms._address_lines(p_addr jsonb) RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN array_remove(ARRAY[p_addr ->> 'name', p_addr ->> 'line1', p_addr ->> 'line2', p_addr ->> 'street',
							  nullif(concat_ws(' ', p_addr ->> 'postal_code', p_addr ->> 'city'), ''), p_addr ->> 'country'], NULL)
		   || coalesce(ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(p_addr -> 'address') = 'array'
																   THEN p_addr -> 'address' ELSE '[]' END)), '{}');
COMMENT ON FUNCTION oms._address_lines(jsonb) IS 'Internal: the printable lines of an address object (name, line1, line2, street, postal code and city, country, address array)';

-- Checks a document format name.
CREATE FUNCTION oms._format(p_format text, p_allowed text[]) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_format IS NULL OR p_format <> ALL (p_allowed) THEN
		RAISE EXCEPTION 'unknown document format "%"', oms._clip(coalesce(p_format, 'NULL'))
			USING ERRCODE = '22023', HINT = format('Formats: %s.', array_to_string(p_allowed, ', '));
	END IF;
	RETURN p_format;
END
$$;
COMMENT ON FUNCTION oms._format(text, text[]) IS 'Internal: refuses (22023) a format name not in the list';

CREATE FUNCTION oms.invoice_document(invoice_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	d			jsonb;
	v_title		text;
	h			text;
	l			jsonb;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'json']);
	SELECT jsonb_build_object(
			'id', i.id, 'kind', i.kind, 'number', i.number, 'issued_at', i.issued_at,
			'issue_date', to_char(i.issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
			'order_id', i.order_id, 'order_ref', o.external_id, 'currency', i.currency, 'tax_mode', i.tax_mode,
			'credited_invoice', ci.number, 'reason', i.reason,
			'seller', i.seller, 'buyer', i.buyer, 'address', i.address,
			'lines', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('position', il.position, 'line_no', il.line_no,
						'sku', il.sku, 'description', il.description, 'qty', il.qty, 'unit_price', il.unit_price,
						'net', il.net, 'tax_rate', il.tax_rate, 'tax', il.tax, 'gross', il.gross)) ORDER BY il.position)
						FROM oms.invoice_lines il WHERE il.tenant_id = i.tenant_id AND il.invoice_id = i.id),
			'tax_summary', (SELECT jsonb_agg(jsonb_build_object('tax_rate', s.tax_rate, 'net', s.net, 'tax', s.tax, 'gross', s.gross)
											 ORDER BY s.tax_rate NULLS FIRST)
							  FROM (SELECT il.tax_rate, sum(il.net) AS net, sum(il.tax) AS tax, sum(il.gross) AS gross
									  FROM oms.invoice_lines il WHERE il.tenant_id = i.tenant_id AND il.invoice_id = i.id
									 GROUP BY il.tax_rate) s),
			'totals', jsonb_build_object('net', i.net, 'tax', i.tax, 'gross', i.gross))
	  INTO d
	  FROM oms.invoices i
	  JOIN oms.orders o ON o.tenant_id = i.tenant_id AND o.id = i.order_id
	  LEFT JOIN oms.invoices ci ON ci.tenant_id = i.tenant_id AND ci.id = i.credited_invoice_id
	 WHERE i.tenant_id = v_tenant AND i.id = invoice_document.invoice_id;
	IF d IS NULL THEN
		RAISE EXCEPTION 'unknown invoice %', coalesce(invoice_document.invoice_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Invoices and credit notes are rows of oms.invoices of the current tenant.';
	END IF;
	IF format = 'json' THEN
		RETURN jsonb_pretty(d);
	END IF;

	v_title := CASE WHEN d ->> 'kind' = 'invoice' THEN 'Invoice' ELSE 'Credit note' END || ' ' || (d ->> 'number');
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>' || oms._html(v_title) || '</title>' || E'\n'
		 || '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px;text-align:left}td.n,th.n{text-align:right}'
		 || '.parties{display:flex;justify-content:space-between;margin:1em 0}</style></head><body>' || E'\n'
		 || '<h1>' || oms._html(v_title) || '</h1>' || E'\n'
		 || '<p>Date: ' || (d ->> 'issue_date') || ' &middot; Order: ' || oms._html(d ->> 'order_ref')
		 || ' &middot; Currency: ' || (d ->> 'currency')
		 || CASE WHEN d ->> 'credited_invoice' IS NOT NULL THEN ' &middot; Credits invoice ' || oms._html(d ->> 'credited_invoice') ELSE '' END
		 || '</p>' || E'\n'
		 || CASE WHEN d ->> 'reason' IS NOT NULL THEN '<p>Reason: ' || oms._html(d ->> 'reason') || '</p>' || E'\n' ELSE '' END
		 || '<div class="parties"><div><h3>Seller</h3>'
		 || coalesce((SELECT string_agg(oms._html(x), '<br>') FROM unnest(oms._address_lines(d -> 'seller')) x), '')
		 || CASE WHEN d -> 'seller' ->> 'vat_id' IS NOT NULL THEN '<br>VAT ' || oms._html(d -> 'seller' ->> 'vat_id') ELSE '' END
		 || '</div><div><h3>Bill to</h3>'
		 || coalesce((SELECT string_agg(oms._html(x), '<br>')
						FROM unnest(array_remove(ARRAY[d -> 'buyer' ->> 'name', d -> 'buyer' ->> 'email'], NULL)
									|| oms._address_lines(coalesce(d -> 'address', '{}') - 'name')) x), '')
		 || '</div></div>' || E'\n'
		 || '<table><tr><th>#</th><th>SKU</th><th>Description</th><th class="n">Qty</th><th class="n">Unit price</th>'
		 || '<th class="n">Net</th><th class="n">Tax rate</th><th class="n">Tax</th><th class="n">Gross</th></tr>' || E'\n';
	FOR l IN SELECT x FROM jsonb_array_elements(d -> 'lines') x LOOP
		h := h || '<tr><td>' || (l ->> 'position') || '</td><td>' || oms._html(l ->> 'sku') || '</td><td>'
			 || oms._html(l ->> 'description') || '</td><td class="n">' || (l ->> 'qty') || '</td><td class="n">'
			 || coalesce(l ->> 'unit_price', '') || '</td><td class="n">' || (l ->> 'net') || '</td><td class="n">'
			 || coalesce(((l ->> 'tax_rate')::numeric * 100)::numeric(6,2)::text || ' %', '') || '</td><td class="n">'
			 || (l ->> 'tax') || '</td><td class="n">' || (l ->> 'gross') || '</td></tr>' || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n' || '<h3>Tax summary</h3><table><tr><th>Tax rate</th><th class="n">Net</th>'
		 || '<th class="n">Tax</th><th class="n">Gross</th></tr>' || E'\n';
	FOR l IN SELECT x FROM jsonb_array_elements(d -> 'tax_summary') x LOOP
		h := h || '<tr><td>' || coalesce(((l ->> 'tax_rate')::numeric * 100)::numeric(6,2)::text || ' %', 'no tax')
			 || '</td><td class="n">' || (l ->> 'net') || '</td><td class="n">' || (l ->> 'tax') || '</td><td class="n">'
			 || (l ->> 'gross') || '</td></tr>' || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n' || '<h2>Total ' || (d -> 'totals' ->> 'gross') || ' ' || (d ->> 'currency')
		 || '</h2><p>Net ' || (d -> 'totals' ->> 'net') || ' + tax ' || (d -> 'totals' ->> 'tax') || '</p>' || E'\n'
		 || '</body></html>' || E'\n';
	RETURN h;
END
$$;
COMMENT ON FUNCTION oms.invoice_document(bigint, text) IS 'An invoice or credit note as a printable HTML page (format html) or as JSON (format json: seller, buyer, address, number, date, lines, tax summary, totals, currency); unknown invoice or format: 22023';

-- ----- shipping documents: SSCC, packing slip, shipping label, return label
--
-- Each package (shipment) gets an SSCC-18 when it is packed (a trigger on oms.shipments, so that
-- oms.pack itself is unchanged): the extension digit and GS1 company prefix of the tenant's
-- document settings, a serial reference from oms.sscc_serial_seq filling the 16 digits, and the
-- GS1 mod-10 check digit. A tenant without a company prefix gets no SSCC (and no label).

CREATE SEQUENCE oms.sscc_serial_seq AS bigint MINVALUE 1;
COMMENT ON SEQUENCE oms.sscc_serial_seq IS 'Serial references of SSCCs (shared by all tenants, so an SSCC is unique per tenant whatever the prefixes)';

ALTER TABLE oms.shipments
	ADD COLUMN sscc text CHECK (sscc ~ '^[0-9]{18}$'),
	ADD CONSTRAINT shipments_sscc_key UNIQUE (tenant_id, sscc);
COMMENT ON COLUMN oms.shipments.sscc IS 'Serial Shipping Container Code (18 digits, GS1 application identifier 00) of the package, given at pack when the tenant has a GS1 company prefix';

CREATE FUNCTION oms.gs1_check_digit(digits text) RETURNS int
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_sum	int := 0;
	n		int := length(digits);
BEGIN
	IF digits !~ '^[0-9]{1,40}$' THEN
		RAISE EXCEPTION 'invalid GS1 digits "%"', oms._clip(digits)
			USING ERRCODE = '22023', HINT = 'Give the digits of the key without its check digit (e.g. the 17 first digits of an SSCC).';
	END IF;
	-- From the right: weights 3, 1, 3, 1, ...
	FOR i IN 1 .. n LOOP
		v_sum := v_sum + substr(digits, n - i + 1, 1)::int * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END;
	END LOOP;
	RETURN (10 - v_sum % 10) % 10;
END
$$;
COMMENT ON FUNCTION oms.gs1_check_digit(text) IS 'GS1 mod-10 check digit of a key''s digits (GTIN, SSCC, GLN) given without the check digit';

CREATE FUNCTION oms.sscc(extension int, company_prefix text, serial bigint) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_body	text;
BEGIN
	IF company_prefix IS NULL OR company_prefix !~ '^[0-9]{6,12}$' THEN
		RAISE EXCEPTION 'invalid GS1 company prefix "%"', oms._clip(coalesce(company_prefix, 'NULL'))
			USING ERRCODE = '22023', HINT = 'A GS1 company prefix has 6 to 12 digits, as GS1 assigned it (e.g. "0614141").';
	END IF;
	IF extension IS NULL OR extension NOT BETWEEN 0 AND 9 THEN
		RAISE EXCEPTION 'invalid SSCC extension digit %', coalesce(extension::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The extension digit is 0 to 9.';
	END IF;
	IF serial IS NULL OR serial < 0 THEN
		RAISE EXCEPTION 'invalid SSCC serial reference %', coalesce(serial::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The serial reference is a number of 0 or more.';
	END IF;
	v_body := extension::text || company_prefix
			  || lpad((serial % (10::numeric ^ (16 - length(company_prefix)))::bigint)::text, 16 - length(company_prefix), '0');
	RETURN v_body || oms.gs1_check_digit(v_body);
END
$$;
COMMENT ON FUNCTION oms.sscc(int, text, bigint) IS 'An SSCC-18: extension digit, GS1 company prefix (6 to 12 digits), serial reference (the serial modulo the digits left), GS1 check digit';

CREATE FUNCTION oms._shipment_sscc() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s	record;
BEGIN
	SELECT d.gs1_company_prefix, d.sscc_extension INTO s FROM oms.document_settings d WHERE d.tenant_id = NEW.tenant_id;
	IF s.gs1_company_prefix IS NOT NULL AND NEW.sscc IS NULL THEN
		NEW.sscc := oms.sscc(s.sscc_extension, s.gs1_company_prefix, nextval('oms.sscc_serial_seq'));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION oms._shipment_sscc() IS 'Internal: trigger giving a new shipment its SSCC when the tenant has a GS1 company prefix';

CREATE TRIGGER shipments_sscc BEFORE INSERT ON oms.shipments
	FOR EACH ROW EXECUTE FUNCTION oms._shipment_sscc();
COMMENT ON TRIGGER shipments_sscc ON oms.shipments IS 'A package gets its SSCC when it is packed';

-- Code 128 (ISO/IEC 15417): the bar and space widths of symbol values 0 to 106 (106: stop,
-- with its final bar).
CREATE FUNCTION oms._code128_patterns() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN ARRAY[
	'212222', '222122', '222221', '121223', '121322', '131222', '122213', '122312', '132212', '221213',
	'221312', '231212', '112232', '122132', '122231', '113222', '123122', '123221', '223211', '221132',
	'221231', '213212', '223112', '312131', '311222', '321122', '321221', '312212', '322112', '322211',
	'212123', '212321', '232121', '111323', '131123', '131321', '112313', '132113', '132311', '211313',
	'231113', '231311', '112133', '112331', '132131', '113123', '113321', '133121', '313121', '211331',
	'231131', '213113', '213311', '213131', '311123', '311321', '331121', '312113', '312311', '332111',
	'314111', '221411', '431111', '111224', '111422', '121124', '121421', '141122', '141221', '112214',
	'112412', '122114', '122411', '142112', '142211', '241211', '221114', '413111', '241112', '134111',
	'111242', '121142', '121241', '114212', '124112', '124211', '411212', '421112', '421211', '212141',
	'214121', '412121', '111143', '111341', '131141', '114113', '114311', '411113', '411311', '113141',
	'114131', '311141', '411131', '211412', '211214', '211232', '2331112'];
COMMENT ON FUNCTION oms._code128_patterns() IS 'Internal: Code 128 module widths (bar, space, ...) of symbol values 0-106';

-- The symbol values of a Code 128 barcode: code set C for an even number of digits, else B
-- (ASCII 32-126); GS1-128 starts with FNC1. Start, data, check (mod 103), stop.
CREATE FUNCTION oms.code128_values(data text, gs1 boolean DEFAULT false) RETURNS int[]
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v		int[];
	v_sum	int;
BEGIN
	IF data IS NULL OR data = '' OR length(data) > 80 OR data !~ '^[ -~]+$' THEN
		RAISE EXCEPTION 'cannot encode "%" in Code 128', oms._clip(coalesce(data, 'NULL'))
			USING ERRCODE = '22023', HINT = 'Barcode data is 1 to 80 printable ASCII characters.';
	END IF;
	IF data ~ '^([0-9]{2})+$' THEN
		v := ARRAY[105];
		IF gs1 THEN v := v || 102; END IF;
		v := v || ARRAY(SELECT substr(data, 2 * i - 1, 2)::int FROM generate_series(1, length(data) / 2) i ORDER BY i);
	ELSE
		v := ARRAY[104];
		IF gs1 THEN v := v || 102; END IF;
		v := v || ARRAY(SELECT ascii(substr(data, i, 1)) - 32 FROM generate_series(1, length(data)) i ORDER BY i);
	END IF;
	SELECT v[1] + coalesce(sum(v[i] * (i - 1)), 0) INTO v_sum FROM generate_series(2, cardinality(v)) i;
	RETURN v || (v_sum % 103) || 106;
END
$$;
COMMENT ON FUNCTION oms.code128_values(text, boolean) IS 'Symbol values of a Code 128 barcode of data (set C for digit pairs, else set B; FNC1 after the start for GS1-128), with check symbol and stop';

CREATE FUNCTION oms.barcode_svg(data text, gs1 boolean DEFAULT false, module numeric DEFAULT 2, height int DEFAULT 120)
	RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p		text[] := oms._code128_patterns();
	x		int := 10;		-- quiet zone, in modules
	rects	text := '';
	w		int;
	s		int;
	pat		text;
BEGIN
	FOREACH s IN ARRAY oms.code128_values(data, gs1) LOOP
		pat := p[s + 1];
		FOR i IN 1 .. length(pat) LOOP
			w := substr(pat, i, 1)::int;
			IF i % 2 = 1 THEN
				rects := rects || format('<rect x="%s" y="0" width="%s" height="%s"/>', x * module, w * module, height);
			END IF;
			x := x + w;
		END LOOP;
	END LOOP;
	x := x + 10;
	RETURN format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s">',
				  x * module, height, x * module, height)
		   || '<rect width="100%" height="100%" fill="#fff"/><g fill="#000">' || rects || '</g></svg>';
END
$$;
COMMENT ON FUNCTION oms.barcode_svg(text, boolean, numeric, int) IS 'A Code 128 (gs1: GS1-128) barcode of data drawn as SVG: black bars, 10-module quiet zones, module width and height in pixels';

-- The SSCC as printed under its barcode: (00) extension, company prefix, serial, check digit.
CREATE FUNCTION oms._sscc_text(p_sscc text, p_prefix_len int) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN '(00) ' || substr(p_sscc, 1, 1) || ' ' || substr(p_sscc, 2, p_prefix_len) || ' '
		   || substr(p_sscc, 2 + p_prefix_len, 16 - p_prefix_len) || ' ' || substr(p_sscc, 18, 1);
COMMENT ON FUNCTION oms._sscc_text(text, int) IS 'Internal: human-readable SSCC with AI (00) and its parts separated';

-- Text for a ZPL field: no ^ or ~ (ZPL commands), at most 40 characters.
CREATE FUNCTION oms._zpl(p_text text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN left(translate(coalesce(p_text, ''), '^~', '  '), 40);
COMMENT ON FUNCTION oms._zpl(text) IS 'Internal: text safe inside a ZPL ^FD field (^ and ~ removed, 40 characters)';

-- A 4x6 inch label (203 dpi) in ZPL II or HTML: from, to, the facts lines, and a barcode.
CREATE FUNCTION oms._label(p_format text, p_title text, p_from text[], p_to text[], p_facts text[],
						   p_barcode text, p_gs1 boolean, p_barcode_text text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	z		text;
	y		int;
	v_line	text;
BEGIN
	IF p_format = 'zpl' THEN
		z := '^XA' || E'\n' || '^CI28' || E'\n' || '^PW812' || E'\n' || '^LL1218' || E'\n'
			 || '^FO40,30^A0N,40,40^FD' || oms._zpl(p_title) || '^FS' || E'\n'
			 || '^FO40,90^A0N,25,25^FDFROM^FS' || E'\n';
		y := 120;
		FOREACH v_line IN ARRAY p_from LOOP
			z := z || format('^FO40,%s^A0N,28,28^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 32;
		END LOOP;
		z := z || '^FO30,290^GB752,3,3^FS' || E'\n' || '^FO40,310^A0N,25,25^FDTO^FS' || E'\n';
		y := 345;
		FOREACH v_line IN ARRAY p_to LOOP
			z := z || format('^FO40,%s^A0N,45,45^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 52;
		END LOOP;
		z := z || '^FO30,640^GB752,3,3^FS' || E'\n';
		y := 660;
		FOREACH v_line IN ARRAY p_facts LOOP
			z := z || format('^FO40,%s^A0N,32,32^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 40;
		END LOOP;
		z := z || '^FO30,880^GB752,3,3^FS' || E'\n'
			 -- GS1-128: start in subset C (>;), FNC1 (>8), then the digits; otherwise automatic subsets.
			 || '^FO60,910^BY3^BCN,200,N,N,N,N^FD'
			 || CASE WHEN p_gs1 THEN '>;>8' || p_barcode ELSE oms._zpl(p_barcode) END || '^FS' || E'\n'
			 || '^FO60,1125^A0N,36,36^FD' || oms._zpl(p_barcode_text) || '^FS' || E'\n'
			 || '^XZ' || E'\n';
		RETURN z;
	END IF;
	RETURN '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>' || oms._html(p_title) || '</title>' || E'\n'
		   || '<style>@page{size:4in 6in;margin:0}body{margin:0}.label{width:4in;height:6in;box-sizing:border-box;'
		   || 'padding:0.15in;font-family:sans-serif;border:1px solid #000}.to{font-size:20pt;font-weight:bold}'
		   || 'hr{border:0;border-top:2px solid #000}.small{font-size:9pt}</style></head><body>' || E'\n'
		   || '<div class="label"><div><b>' || oms._html(p_title) || '</b></div>' || E'\n'
		   || '<div class="small">FROM<br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_from) x), '<br>') || '</div><hr>' || E'\n'
		   || '<div class="small">TO</div><div class="to">' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_to) x), '<br>')
		   || '</div><hr>' || E'\n'
		   || '<div>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_facts) x), '<br>') || '</div><hr>' || E'\n'
		   || '<div>' || oms.barcode_svg(p_barcode, p_gs1, 1.5, 110) || '</div>' || E'\n'
		   || '<div>' || oms._html(p_barcode_text) || '</div></div>' || E'\n'
		   || '</body></html>' || E'\n';
END
$$;
COMMENT ON FUNCTION oms._label(text, text, text[], text[], text[], text, boolean, text) IS 'Internal: a 4x6 inch label in ZPL II (203 dpi) or HTML with SVG barcode: title, from, to, facts, barcode and its text';

-- The ship-to of an order as lines (the store for click & collect).
CREATE FUNCTION oms._ship_to_lines(p_tenant int, o oms.orders) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN o.pickup_location_id IS NOT NULL
				THEN (SELECT array_remove(ARRAY[coalesce(o.customer_name, o.customer_ref), 'c/o ' || l.name,
												nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
						FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id)
				ELSE CASE WHEN o.ship_to ? 'name' THEN '{}'::text[] ELSE array_remove(ARRAY[o.customer_name], NULL) END
					 || oms._address_lines(o.ship_to) END;
END
$$;
COMMENT ON FUNCTION oms._ship_to_lines(int, oms.orders) IS 'Internal: the printable ship-to of an order (customer and store for click & collect)';

-- A location as lines (a label's ship-from).
CREATE FUNCTION oms._location_lines(p_tenant int, p_location int) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT array_remove(ARRAY[coalesce(nullif(d.seller ->> 'name', ''), l.name), l.name,
							  nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
	  FROM oms.locations l
	  LEFT JOIN oms.document_settings d ON d.tenant_id = l.tenant_id
	 WHERE l.tenant_id = p_tenant AND l.id = p_location);
END
$$;
COMMENT ON FUNCTION oms._location_lines(int, int) IS 'Internal: the printable address of a location, under the seller''s name';

-- A package's number within its order (1, 2, ... in packing order), as slips and labels print it.
CREATE FUNCTION oms._package_no(p_tenant int, s oms.shipments) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT count(*) FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.order_id = s.order_id AND x.id <= s.id);
END
$$;
COMMENT ON FUNCTION oms._package_no(int, oms.shipments) IS 'Internal: the number of a package within its order (1 for the first packed)';

CREATE FUNCTION oms.packing_slip(shipment_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	r			record;
	h			text;
	t			text;
	v_follow	text := '';
	v_tfollow	text := '';
	v_no		bigint;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'text']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = packing_slip.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(packing_slip.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	v_no := oms._package_no(v_tenant, s);
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>Packing slip ' || oms._html(o.external_id)
		 || '</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px 12px;text-align:left}</style></head><body>' || E'\n'
		 || '<h1>Packing slip</h1>' || E'\n'
		 || '<p>Order ' || oms._html(o.external_id) || ' &middot; package ' || v_no
		 || coalesce(' &middot; SSCC ' || s.sscc, '') || '</p>' || E'\n'
		 || '<p><b>Ship to</b><br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(oms._ship_to_lines(v_tenant, o)) x), '<br>')
		 || '</p>' || E'\n' || '<table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n';
	t := 'PACKING SLIP' || E'\n' || 'Order ' || o.external_id || ', package ' || v_no || coalesce(', SSCC ' || s.sscc, '') || E'\n'
		 || 'Ship to: ' || array_to_string(oms._ship_to_lines(v_tenant, o), ', ') || E'\n' || 'In this package:' || E'\n';
	FOR r IN SELECT sl.line_no, i.sku, i.name, sl.qty FROM oms.shipment_lines sl
			   JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
			   JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id ORDER BY sl.line_no
	LOOP
		h := h || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku), oms._html(r.name), r.qty) || E'\n';
		t := t || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n';
	-- To follow: units of each line not cancelled and not in this package or an earlier one.
	FOR r IN SELECT l.line_no, i.sku, i.name,
					l.qty - l.qty_cancelled - coalesce((SELECT sum(sl.qty) FROM oms.shipment_lines sl
														 WHERE sl.tenant_id = l.tenant_id AND sl.order_id = l.order_id
														   AND sl.line_no = l.line_no AND sl.shipment_id <= s.id), 0) AS qty
			   FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE l.tenant_id = v_tenant AND l.order_id = o.id ORDER BY l.line_no
	LOOP
		CONTINUE WHEN r.qty <= 0;
		v_follow := v_follow || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku),
									   oms._html(r.name), r.qty) || E'\n';
		v_tfollow := v_tfollow || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	IF v_follow = '' THEN
		h := h || '<p>This package completes your order.</p>' || E'\n';
		t := t || 'This package completes the order.' || E'\n';
	ELSE
		h := h || '<h3>To follow in other packages</h3><table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n'
			 || v_follow || '</table>' || E'\n';
		t := t || 'To follow in other packages:' || E'\n' || v_tfollow;
	END IF;
	RETURN CASE format WHEN 'text' THEN t ELSE h || '</body></html>' || E'\n' END;
END
$$;
COMMENT ON FUNCTION oms.packing_slip(bigint, text) IS 'The packing slip of a package (html or text): order reference, SSCC, ship-to, the lines and quantities in it, and what is still to follow in other packages; unknown shipment or format: 22023';

CREATE FUNCTION oms.shipping_label(shipment_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	v_prefix	text;
	v_weight	numeric;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = shipping_label.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(shipping_label.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	IF s.sscc IS NULL THEN
		RAISE EXCEPTION 'shipment % has no SSCC', s.id
			USING ERRCODE = '55000',
			      HINT = 'Set the tenant''s GS1 company prefix (oms.set_document_settings) before packing: packages get their SSCC when packed.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	SELECT d.gs1_company_prefix INTO v_prefix FROM oms.document_settings d WHERE d.tenant_id = v_tenant;
	SELECT coalesce(sum(sl.qty * i.weight), 0) INTO v_weight
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	RETURN oms._label(format, 'Order ' || o.external_id || ' / package ' || oms._package_no(v_tenant, s),
					  oms._location_lines(v_tenant, s.location_id), oms._ship_to_lines(v_tenant, o),
					  ARRAY['Service: ' || coalesce(s.carrier || '.' || s.service, 'not shipped yet'),
							'Tracking: ' || coalesce(s.tracking, '-'),
							'Weight: ' || round(v_weight, 2) || ' kg'],
					  '00' || s.sscc, true, oms._sscc_text(s.sscc, coalesce(length(v_prefix), 7)));
END
$$;
COMMENT ON FUNCTION oms.shipping_label(bigint, text) IS 'A 4x6 inch shipping label of a package in ZPL II (format zpl) or HTML with an SVG barcode (format html): ship-from, ship-to, carrier service, tracking, weight, the SSCC as GS1-128 with its text; unknown shipment or format: 22023; no SSCC: 55000';

CREATE FUNCTION oms.return_label(rma_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_loc		int;
	v_items		text;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO r FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.id = return_label.rma_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown return %', coalesce(return_label.rma_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Returns (RMAs) are created by oms.create_return() and listed in oms.returns.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	-- Back to where the goods left from: the location of the order's first shipment.
	SELECT s.location_id INTO v_loc FROM oms.shipments s
	 WHERE s.tenant_id = v_tenant AND s.order_id = o.id ORDER BY s.id LIMIT 1;
	SELECT string_agg(i.sku || ' x ' || rl.qty, ', ' ORDER BY rl.line_no) INTO v_items
	  FROM oms.return_lines rl
	  JOIN oms.order_lines l ON l.tenant_id = rl.tenant_id AND l.order_id = rl.order_id AND l.line_no = rl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE rl.tenant_id = v_tenant AND rl.return_id = r.id;
	RETURN oms._label(format, 'RETURN RMA-' || r.id || ' / order ' || o.external_id,
					  oms._ship_to_lines(v_tenant, o), coalesce(oms._location_lines(v_tenant, v_loc), '{}'),
					  ARRAY['Return of: ' || coalesce(v_items, '-'), 'Reason: ' || left(r.reason, 60)],
					  'RMA-' || r.id, false, 'RMA-' || r.id);
END
$$;
COMMENT ON FUNCTION oms.return_label(bigint, text) IS 'The return label of an RMA in ZPL II or HTML: from the customer to the location the order shipped from, the items returned and the RMA as a Code 128 barcode; unknown RMA or format: 22023';
