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

-- The tax of a new order is computed by oms.place_order itself (70_place_order.sql), before it
-- inserts the order and its lines, so that they are written once, with their amounts.
