-- Tax and money (issue 11): tax rates per tenant, country, tax class and validity date; a tax
-- class per item; a tax mode per channel (none, included, excluded); and each order line's net,
-- tax and gross amounts, computed once at placement and kept on the line.
--
-- Rounding rule: amounts are rounded to the currency's minor units (oms.currencies.minor_units:
-- JPY 0, EUR 2, KWD 3) per line, half away from zero (numeric round()). With prices including
-- tax, a line's gross is round(qty x unit_price), its net round(gross / (1 + rate)) and its tax
-- gross - net; with prices excluding tax, its net is round(qty x unit_price), its tax
-- round(net x rate) and its gross net + tax. The order's totals are the sums of its lines (and of
-- the shipping charge, taxed at the standard class), so lines always add up to the totals exactly.
-- The rate is the one valid on the order's day (placed_at in UTC) for the ship-to country, or
-- the store's country for click & collect. On a channel whose tax mode is not none, a missing
-- rate is error OM011 naming the country and class, never tax 0.

CREATE TABLE oms.tax_rates (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	country			text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
	tax_class		text NOT NULL CHECK (tax_class ~ '^[a-z0-9_]{1,40}$'),
	rate			numeric NOT NULL CHECK (rate >= 0 AND rate < 1),
	valid_from		date NOT NULL,
	PRIMARY KEY (tenant_id, country, tax_class, valid_from)
);
COMMENT ON TABLE oms.tax_rates IS 'Tax rates (a fraction: 0.22 for 22 %) per country and tax class, valid from a date until the next row of the same country and class';

ALTER TABLE oms.items
	ADD COLUMN tax_class text NOT NULL DEFAULT 'standard' CHECK (tax_class ~ '^[a-z0-9_]{1,40}$');
COMMENT ON COLUMN oms.items.tax_class IS 'Tax class of the item (standard, reduced, zero, ...), looked up in oms.tax_rates with the ship-to country';

ALTER TABLE oms.channels
	ADD COLUMN tax_mode text NOT NULL DEFAULT 'none' CHECK (tax_mode IN ('none', 'included', 'excluded')),
	ADD COLUMN invoice_on text NOT NULL DEFAULT 'shipment' CHECK (invoice_on IN ('shipment', 'capture'));
COMMENT ON COLUMN oms.channels.tax_mode IS 'none: no tax handling (the default); included: prices include tax (consumer web shops, stores); excluded: prices are net and tax is added (B2B)';
COMMENT ON COLUMN oms.channels.invoice_on IS 'shipment: oms.issue_invoice invoices what has shipped or been collected; capture: the whole order is invoiced when its payment is captured (a till)';

ALTER TABLE oms.orders
	ADD COLUMN tax_mode text NOT NULL DEFAULT 'none' CHECK (tax_mode IN ('none', 'included', 'excluded')),
	ADD COLUMN tax_country text,
	ADD COLUMN net_total numeric,
	ADD COLUMN tax_total numeric,
	ADD COLUMN shipping_tax_rate numeric,
	ADD COLUMN shipping_net numeric,
	ADD COLUMN shipping_tax numeric;
COMMENT ON COLUMN oms.orders.tax_mode IS 'The channel''s tax mode when the order was placed; none: the tax columns are NULL';
COMMENT ON COLUMN oms.orders.tax_country IS 'Country whose rates taxed the order: the ship-to country, or the store''s for click & collect';
COMMENT ON COLUMN oms.orders.net_total IS 'Sum of the lines'' net amounts and the shipping net (NULL when tax_mode is none)';
COMMENT ON COLUMN oms.orders.tax_total IS 'Sum of the lines'' tax and the shipping tax; total = net_total + tax_total';

ALTER TABLE oms.order_lines
	ADD COLUMN tax_rate numeric,
	ADD COLUMN net numeric,
	ADD COLUMN tax numeric,
	ADD COLUMN gross numeric,
	ADD CONSTRAINT order_lines_tax_adds_up CHECK (gross = net + tax);
COMMENT ON COLUMN oms.order_lines.net IS 'Net amount of the whole line (qty units) in the order''s currency, computed at placement; NULL when the order''s tax mode is none';
COMMENT ON COLUMN oms.order_lines.gross IS 'Gross amount of the line: net + tax';

-- Net, tax, gross of an amount (qty x price, or a shipping charge) in a tax mode.
CREATE FUNCTION oms.tax_split(amount numeric, rate numeric, mode text, minor_units int)
	RETURNS TABLE (net numeric, tax numeric, gross numeric)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT x.net, x.gross - x.net, x.gross
	  FROM (SELECT CASE WHEN tax_split.mode = 'excluded' THEN round(tax_split.amount, tax_split.minor_units)
						ELSE round(round(tax_split.amount, tax_split.minor_units) / (1 + tax_split.rate), tax_split.minor_units) END AS net,
				   CASE WHEN tax_split.mode = 'excluded'
						THEN round(tax_split.amount, tax_split.minor_units)
							 + round(round(tax_split.amount, tax_split.minor_units) * tax_split.rate, tax_split.minor_units)
						ELSE round(tax_split.amount, tax_split.minor_units) END AS gross) x;
END;
COMMENT ON FUNCTION oms.tax_split(numeric, numeric, text, int) IS 'Net, tax and gross of an amount at a rate: included (the amount is gross) or excluded (the amount is net), each rounded half away from zero to minor_units';

-- What k units of an order line are worth to the customer: their share of the line's gross (the
-- amount charged, whatever the tax mode), or of qty x unit_price on an untaxed order. Payments
-- (capture of what shipped, what cancelled units take off the amount due) and refunds of returns
-- use it, so that an order on a channel with net prices is charged and refunded its tax too.
CREATE FUNCTION oms._units_value(p_gross numeric, p_qty int, p_unit_price numeric, p_k numeric, p_minor int) RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN round(coalesce(p_gross, p_qty * p_unit_price) * p_k / p_qty, p_minor);
COMMENT ON FUNCTION oms._units_value(numeric, int, numeric, numeric, int) IS 'Internal: the gross value of k units of a line (gross, qty, unit_price), its share of the line''s gross rounded to the currency''s minor units';

-- The rate of a country and class on a day (NULL: none).
CREATE FUNCTION oms._tax_rate(p_tenant int, p_country text, p_class text, p_day date) RETURNS numeric
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT r.rate FROM oms.tax_rates r
	 WHERE r.tenant_id = p_tenant AND r.country = p_country AND r.tax_class = p_class AND r.valid_from <= p_day
	 ORDER BY r.valid_from DESC LIMIT 1);
END
$$;
COMMENT ON FUNCTION oms._tax_rate(int, text, text, date) IS 'Internal: the tax rate of a country and class valid on a day, NULL when there is none';

-- Called by oms._order_placed (72_placed.sql) for a new order: one read of the channel for an
-- untaxed channel, otherwise one UPDATE of the lines and one of the order.
CREATE FUNCTION oms._order_tax(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v			record;
	v_missing	text;
	v_ship		record;
BEGIN
	SELECT c.tax_mode, cur.minor_units, coalesce(pl.country, o.ship_country) AS country,
		   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.shipping_amount
	  INTO v
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v.tax_mode = 'none' THEN
		RETURN;
	END IF;

	SELECT x.tax_class INTO v_missing
	  FROM (SELECT i.tax_class FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order
			UNION ALL SELECT 'standard' WHERE v.shipping_amount > 0) x
	 WHERE oms._tax_rate(p_tenant, v.country, x.tax_class, v.day) IS NULL
	 ORDER BY 1 LIMIT 1;
	IF v_missing IS NOT NULL THEN
		RAISE EXCEPTION 'no tax rate for country "%" and tax class "%"', coalesce(v.country, 'NULL'), v_missing
			USING ERRCODE = 'OM011',
			      DETAIL = format('The channel''s tax mode is %s; the order is dated %s.', v.tax_mode, to_char(v.day, 'YYYY-MM-DD')),
			      HINT = 'Add the rate to oms.tax_rates (country, tax_class, rate, valid_from), or set the channel''s tax_mode to none.';
	END IF;

	UPDATE oms.order_lines l
	   SET tax_rate = x.rate, net = s.net, tax = s.tax, gross = s.gross
	  FROM (SELECT l2.line_no, oms._tax_rate(p_tenant, v.country, i.tax_class, v.day) AS rate, l2.qty * l2.unit_price AS amount
			  FROM oms.order_lines l2 JOIN oms.items i ON i.tenant_id = l2.tenant_id AND i.id = l2.item_id
			 WHERE l2.tenant_id = p_tenant AND l2.order_id = p_order) x
	 CROSS JOIN LATERAL oms.tax_split(x.amount, x.rate, v.tax_mode, v.minor_units) s
	 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = x.line_no;

	SELECT r.rate, s.net, s.tax, s.gross INTO v_ship
	  FROM (SELECT CASE WHEN v.shipping_amount > 0 THEN oms._tax_rate(p_tenant, v.country, 'standard', v.day) END AS rate) r
	 CROSS JOIN LATERAL oms.tax_split(v.shipping_amount, coalesce(r.rate, 0), v.tax_mode, v.minor_units) s;

	UPDATE oms.orders o
	   SET tax_mode = v.tax_mode, tax_country = v.country,
		   shipping_tax_rate = v_ship.rate, shipping_net = v_ship.net, shipping_tax = v_ship.tax,
		   net_total = t.net + v_ship.net, tax_total = t.tax + v_ship.tax,
		   subtotal = CASE WHEN v.tax_mode = 'excluded' THEN t.net ELSE t.gross END,
		   total = t.gross + v_ship.gross
	  FROM (SELECT sum(l.net) AS net, sum(l.tax) AS tax, sum(l.gross) AS gross FROM oms.order_lines l
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) t
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
END
$$;
COMMENT ON FUNCTION oms._order_tax(int, bigint) IS 'Internal: at placement, each line''s tax rate, net, tax and gross and the order''s tax totals, from the rates valid on the order''s day for its country; missing rate on a taxed channel: OM011';
