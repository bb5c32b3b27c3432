-- Tax at placement and invoices: a channel with prices including tax, two tax rates (IT standard
-- 22 %, reduced 10 %), an order shipped in two packages and invoiced twice; lines, tax summary and
-- totals exact to the cent; a partial refund and a return with their credit notes; gapless numbers;
-- immutable documents; bad input. (Named to run after "returns": its RMA would shift their numbers.)
SELECT oms.create_tenant('t_invoices') > 0 AS created;
SET oms.tenant = 't_invoices';
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(message, '(order|document|shipment) \d+', '\1 N', 'g');
	detail := regexp_replace(regexp_replace(detail, 'dated \d{4}-\d\d-\d\d', 'dated D'), 'INV-\d{4}', 'INV-YYYY');
END
$$;
INSERT INTO oms.channels (code, kind, name, default_currency, tax_mode) VALUES
	('web', 'web', 'Web shop', 'EUR', 'included'),
	('b2b', 'web', 'Trade', 'EUR', 'excluded'),
	('plain', 'web', 'No tax', 'EUR', 'none');
INSERT INTO oms.locations (code, kind, name, country, city, postal_code, priority)
	VALUES ('WH-1', 'warehouse', 'Warehouse Milano', 'IT', 'Milano', '20121', 1);
INSERT INTO oms.items (sku, name, tax_class, weight) VALUES
	('TEE', 'T-shirt', 'standard', 0.25), ('BOOK', 'Cookbook', 'reduced', 0.8), ('GIFT', 'Gift card', 'exempt', 0);
SELECT oms.set_stock('TEE', 'WH-1', 20, 'init'), oms.set_stock('BOOK', 'WH-1', 20, 'init'), oms.set_stock('GIFT', 'WH-1', 20, 'init');
INSERT INTO oms.tax_rates (country, tax_class, rate, valid_from) VALUES
	('IT', 'standard', 0.20, '2000-01-01'),		-- an old rate, replaced:
	('IT', 'standard', 0.22, '2013-10-01'),
	('IT', 'standard', 0.25, '2999-01-01'),		-- not valid yet
	('IT', 'reduced', 0.10, '2000-01-01');
SELECT oms.set_document_settings('{"seller": {"name": "Bottega S.r.l.", "address": ["Via Roma 1", "20121 Milano MI"], "vat_id": "IT01234567890"},
	"gs1_company_prefix": "0614141"}');
CREATE TEMP VIEW lines AS
SELECT o.external_id AS ord, l.line_no, i.sku, l.qty, l.unit_price, l.tax_rate, l.net, l.tax, l.gross
  FROM oms.order_lines l JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
 WHERE l.tenant_id = oms.current_tenant_id() ORDER BY o.id, l.line_no;
CREATE TEMP VIEW orders AS
SELECT o.external_id AS ord, o.tax_mode, o.tax_country, o.subtotal, o.shipping_amount, o.shipping_tax_rate,
	   o.shipping_net, o.shipping_tax, o.net_total, o.tax_total, o.total
  FROM oms.orders o WHERE o.tenant_id = oms.current_tenant_id() ORDER BY o.id;
CREATE TEMP VIEW docs AS
SELECT i.kind, regexp_replace(i.number, '-\d{4}-', '-YYYY-') AS number, o.external_id AS ord,
	   regexp_replace(c.number, '-\d{4}-', '-YYYY-') AS credits, i.net, i.tax, i.gross,
	   regexp_replace(i.reason, 'return \d+', 'return R') AS reason
  FROM oms.invoices i JOIN oms.orders o ON o.tenant_id = i.tenant_id AND o.id = i.order_id
  LEFT JOIN oms.invoices c ON c.tenant_id = i.tenant_id AND c.id = i.credited_invoice_id
 WHERE i.tenant_id = oms.current_tenant_id() ORDER BY i.id;
CREATE TEMP VIEW doc_lines AS
SELECT regexp_replace(i.number, '-\d{4}-', '-YYYY-') AS number, il.position AS pos, il.line_no, il.sku, il.description, il.qty,
	   il.unit_price, il.net, il.tax_rate, il.tax, il.gross
  FROM oms.invoice_lines il JOIN oms.invoices i ON i.tenant_id = il.tenant_id AND i.id = il.invoice_id
 WHERE il.tenant_id = oms.current_tenant_id() ORDER BY i.id, il.position;

-- 1. Prices include tax. 3 T-shirts at 24.99 (22 %), 2 cookbooks at 12.50 (10 %), shipping 4.90
--    (standard rate). Per line, half away from zero:
--      T-shirts: gross 74.97, net 74.97 / 1.22 = 61.4508 -> 61.45, tax 13.52
--      books:    gross 25.00, net 25.00 / 1.10 = 22.7273 -> 22.73, tax  2.27
--      shipping: gross  4.90, net  4.90 / 1.22 =  4.0164 ->  4.02, tax  0.88
--    totals: net 88.20 + tax 16.67 = 104.87.
SELECT oms.place_order('{"channel": "web", "external_id": "IV-1", "shipping_amount": 4.90,
	"ship_to": {"name": "Anna Rossi", "line1": "Via Dante 5", "postal_code": "20123", "city": "Milano", "country": "IT"},
	"customer": {"name": "Anna Rossi", "email": "anna@example.com"},
	"lines": [{"sku": "TEE", "qty": 3, "unit_price": 24.99}, {"sku": "BOOK", "qty": 2, "unit_price": 12.50}]}') AS o \gset
SELECT * FROM lines;
SELECT * FROM orders;

-- 2. Nothing shipped: nothing to invoice.
SELECT * FROM pg_temp.err(format('SELECT oms.issue_invoice(%s)', :o));

-- 3. Two packages: 2 T-shirts and the books, then the third T-shirt. Each has an SSCC (extension
--    0, prefix 0614141, a serial, the check digit).
SELECT oms.authorize_payment(:o, 104.87, 'psp-1') > 0 AS authorized;
SELECT oms.release_order(:o);
SELECT oms.pack(:o, 'WH-1', '[{"line_no": 1, "qty": 2}, {"line_no": 2, "qty": 2}]') AS p1 \gset
SELECT oms.pack(:o, 'WH-1', '[{"line_no": 1, "qty": 1}]') AS p2 \gset
SELECT substr(sscc, 1, 8) AS ext_and_prefix, length(sscc) AS digits,
	   right(sscc, 1)::int = oms.gs1_check_digit(left(sscc, 17)) AS check_digit_ok
  FROM oms.shipments WHERE tenant_id = oms.current_tenant_id() AND order_id = :o ORDER BY id;
SELECT oms.ship(:p1, 'brt.standard', 'BRT-0001');

-- 4. First invoice: 2 of 3 T-shirts (2/3 of the line: gross 49.98, tax 13.52 x 2/3 = 9.0133 ->
--    9.01, net 40.97), the books, shipping: net 67.72 + tax 12.16 = 79.88.
SELECT oms.issue_invoice(:o) AS inv1 \gset
SELECT * FROM doc_lines;
SELECT * FROM docs;
-- Again: nothing more has shipped.
SELECT * FROM pg_temp.err(format('SELECT oms.issue_invoice(%s)', :o));

-- 5. Second package shipped, second invoice: the last T-shirt takes what is left of the line
--    (74.97 - 49.98 = 24.99, tax 13.52 - 9.01 = 4.51). The two invoices add up to the order.
SELECT oms.ship(:p2, 'brt.standard', 'BRT-0002');
SELECT oms.issue_invoice(:o) AS inv2 \gset
SELECT * FROM doc_lines WHERE number LIKE 'INV-YYYY-000002';
SELECT sum(net) AS net, sum(tax) AS tax, sum(gross) AS gross FROM oms.invoices WHERE tenant_id = oms.current_tenant_id();

-- 6. The invoice as JSON (the HTML page has the same data; the demo writes it to a file).
SELECT regexp_replace(regexp_replace(oms.invoice_document(:inv1, 'json'), '"issued_at": "[^"]*"', '"issued_at": "T"'),
					  '\d{4}-\d\d-\d\d|-\d{4}-|"(id|order_id)": \d+', '~', 'g') AS invoice_json;
SELECT oms.invoice_document(:inv1) ~ '<title>Invoice INV-\d{4}-000001</title>' AS html_title,
	   oms.invoice_document(:inv1) ~ '<h2>Total 79.88 EUR</h2>' AS html_total;

-- 7. A goodwill refund of 10.00: credit note CN-YYYY-000001 for the first invoice's order, one
--    adjustment per rate in proportion to what is invoiced (10 %: 10 x 25.00 / 104.87 = 2.38, tax
--    2.38 x 0.10 / 1.10 = 0.2164 -> 0.22; 22 %: the rest 7.62, tax 7.62 x 0.22 / 1.22 = 1.3741 -> 1.37).
SELECT oms.capture_payment(:o);
SELECT oms.refund_payment(:o, 10.00, 'late delivery');
SELECT * FROM docs WHERE kind = 'credit_note';
SELECT * FROM doc_lines WHERE number LIKE 'CN-%';

-- 8. One T-shirt comes back: refund 24.99 and a credit note of that unit (74.97 / 3 = 24.99, tax
--    13.52 / 3 = 4.5067 -> 4.51), quantity -1.
SELECT oms.create_return(:o, '[{"line_no": 1, "qty": 1}]', 'too small') AS rma \gset
SELECT oms.receive_return(:rma, '[{"line_no": 1, "qty": 1, "disposition": "restock"}]');
SELECT * FROM doc_lines WHERE number LIKE 'CN-YYYY-000002';
SELECT e.type, regexp_replace(regexp_replace((e.payload - 'order_id' - 'invoice_id' - 'channel' - 'customer' - 'order_ref')::text,
							  '-\d{4}-', '-YYYY-', 'g'), 'return \d+', 'return R') AS payload
  FROM oms.events e WHERE e.tenant_id = oms.current_tenant_id() AND e.type IN ('invoice_issued', 'credit_note_issued')
 ORDER BY e.id;

-- 9. Issued documents are immutable.
SELECT state, message, hint FROM pg_temp.err(format('UPDATE oms.invoices SET gross = 0 WHERE id = %s', :inv1));
SELECT state, message FROM pg_temp.err(format('DELETE FROM oms.invoices WHERE id = %s', :inv1));
SELECT state, message FROM pg_temp.err(format('UPDATE oms.invoice_lines SET qty = 9 WHERE invoice_id = %s', :inv1));
SELECT state, message FROM pg_temp.err(format('INSERT INTO oms.invoice_lines (invoice_id, position, description, qty, net, tax, gross)
	VALUES (%s, 9, %L, 1, 1, 0, 1)', :inv1, 'extra'));

-- 10. Prices excluding tax (B2B): net per line, tax on top; the total grows by the tax.
--     3 x 9.99 = 29.97 net, tax 29.97 x 0.22 = 6.5934 -> 6.59; 1 book 33.33, tax 3.333 -> 3.33.
SELECT oms.place_order('{"channel": "b2b", "external_id": "IV-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 3, "unit_price": 9.99}, {"sku": "BOOK", "qty": 1, "unit_price": 33.33}]}') IS NOT NULL AS placed;
SELECT * FROM lines WHERE ord = 'IV-2';
SELECT * FROM orders WHERE ord = 'IV-2';

-- 11. No rate: a country without rates, and a class without a rate in Italy (OM011, nothing written).
SELECT state, message, detail, hint FROM pg_temp.err($$SELECT oms.place_order('{"channel": "web", "external_id": "IV-3",
	"ship_to": {"country": "FR"}, "lines": [{"sku": "TEE", "qty": 1, "unit_price": 10}]}')$$);
SELECT state, message FROM pg_temp.err($$SELECT oms.place_order('{"channel": "web", "external_id": "IV-4",
	"ship_to": {"country": "IT"}, "lines": [{"sku": "GIFT", "qty": 1, "unit_price": 50}]}')$$);
SELECT count(*) AS orders_iv3_iv4 FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND external_id IN ('IV-3', 'IV-4');
-- A channel without tax handling needs no rate: the tax columns stay empty.
SELECT oms.place_order('{"channel": "plain", "external_id": "IV-5", "ship_to": {"country": "FR"},
	"lines": [{"sku": "GIFT", "qty": 1, "unit_price": 50}]}') AS o5 \gset
SELECT * FROM lines WHERE ord = 'IV-5';
SELECT * FROM orders WHERE ord = 'IV-5';

-- 12. A cancelled order has nothing to invoice; bad format; unknown invoice.
SELECT oms.cancel_order(:o5, 'customer request');
SELECT state, message, hint FROM pg_temp.err(format('SELECT oms.issue_invoice(%s)', :o5));
SELECT state, message, hint FROM pg_temp.err(format('SELECT oms.invoice_document(%s, %L)', :inv1, 'pdf'));
SELECT state, message FROM pg_temp.err('SELECT oms.invoice_document(-1)');

-- 13. Rounding to the currency's minor units: JPY 0, KWD 3 (half away from zero:
--     2.5 -> 3, -2.5 -> -3).
SELECT * FROM oms.tax_split(1005, 0.10, 'included', 0);
SELECT * FROM oms.tax_split(12.345, 0.05, 'excluded', 3);
SELECT * FROM oms.tax_split(25, 0.10, 'excluded', 0);
SELECT * FROM oms.tax_split(-25, 0.10, 'excluded', 0);

-- 14. A till invoices on capture: capturing the payment issues the invoice of the whole order.
INSERT INTO oms.channels (code, kind, name, default_currency, tax_mode, invoice_on, requires_authorization)
	VALUES ('till', 'pos', 'Store till', 'EUR', 'included', 'capture', false);
SELECT oms.place_order('{"channel": "till", "external_id": "IV-6", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 1, "unit_price": 19.90}]}') AS o6 \gset
SELECT state, message, hint FROM pg_temp.err(format('SELECT oms.issue_invoice(%s)', :o6));
SELECT oms.authorize_payment(:o6, 19.90, 'till-1') > 0 AS authorized;
SELECT oms.capture_payment(:o6, 19.90);
SELECT * FROM docs WHERE ord = 'IV-6';
SELECT * FROM doc_lines WHERE number = (SELECT regexp_replace(number, '-\d{4}-', '-YYYY-') FROM oms.invoices
										  WHERE tenant_id = oms.current_tenant_id() AND order_id = :o6);

-- 15. Net prices (B2B, order IV-2 of step 10: gross 36.56 + 36.66 = 73.22): the customer pays the
--     tax too. Capturing what shipped takes the lines' gross, 73.22 (not the net 63.30), and a
--     returned T-shirt refunds its share of its line's gross, 36.56 / 3 = 12.1867 -> 12.19, with a
--     credit note of 12.19 (tax 6.59 / 3 = 2.1967 -> 2.20, net 9.99).
SELECT id AS o2 FROM oms.orders WHERE tenant_id = oms.current_tenant_id() AND external_id = 'IV-2' \gset
SELECT oms.authorize_payment(:o2, 73.22, 'psp-2') > 0 AS authorized;
SELECT oms.release_order(:o2);
SELECT oms.ship(oms.pack(:o2, 'WH-1'), 'brt.standard', 'BRT-0003');
SELECT oms.capture_payment(:o2) AS captured;
SELECT oms.issue_invoice(:o2) > 0 AS invoiced;
SELECT oms.create_return(:o2, '[{"line_no": 1, "qty": 1}]', 'wrong size') AS rma2 \gset
SELECT oms.receive_return(:rma2, '[{"line_no": 1, "qty": 1, "disposition": "damaged"}]');
SELECT refund_amount, refunded FROM oms.returns WHERE tenant_id = oms.current_tenant_id() AND id = :rma2;
SELECT captured, refunded FROM oms.payments WHERE tenant_id = oms.current_tenant_id() AND order_id = :o2;
SELECT * FROM docs WHERE ord = 'IV-2';

-- 16. A marketplace refunds its customers itself: a received return records the refund due and
--     still credits the invoiced unit (10 % book: 12.50, tax 12.50 x 0.10 / 1.10 = 1.1364 -> 1.14;
--     no payment is touched). A refund made outside for anything else is credited with
--     oms.issue_credit_note: 5.00 goodwill, split per rate in proportion to what is still invoiced
--     (10 %: 5.00 x 12.50 / 32.50 = 1.92, tax 1.92 x 0.10 / 1.10 = 0.1745 -> 0.17; 22 %: the rest
--     3.08, tax 3.08 x 0.22 / 1.22 = 0.5554 -> 0.56).
INSERT INTO oms.channels (code, kind, name, default_currency, tax_mode, refunds_outside, requires_authorization)
	VALUES ('market', 'marketplace', 'Marketplace', 'EUR', 'included', true, false);
SELECT oms.place_order('{"channel": "market", "external_id": "IV-7", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 2, "unit_price": 12.50}, {"sku": "TEE", "qty": 1, "unit_price": 20.00}]}') AS o7 \gset
SELECT oms.release_order(:o7);
SELECT oms.ship(oms.pack(:o7, 'WH-1'), 'brt.standard', 'BRT-0004');
SELECT oms.issue_invoice(:o7) > 0 AS invoiced;
SELECT oms.create_return(:o7, '[{"line_no": 1, "qty": 1}]', 'damaged in transit') AS rma7 \gset
SELECT oms.receive_return(:rma7, '[{"line_no": 1, "qty": 1, "disposition": "damaged"}]');
SELECT refund_amount, refunded FROM oms.returns WHERE tenant_id = oms.current_tenant_id() AND id = :rma7;
SELECT count(*) AS payments FROM oms.payments WHERE tenant_id = oms.current_tenant_id() AND order_id = :o7;
SELECT oms.issue_credit_note(:o7, 5.00, 'goodwill paid by the marketplace') > 0 AS credited;
SELECT * FROM docs WHERE ord = 'IV-7';
SELECT pos, line_no, sku, qty, net, tax_rate, tax, gross FROM doc_lines
 WHERE number IN (SELECT regexp_replace(number, '-\d{4}-', '-YYYY-') FROM oms.invoices
				   WHERE tenant_id = oms.current_tenant_id() AND order_id = :o7 AND kind = 'credit_note');
-- Left to credit: 45.00 - 12.50 - 5.00 = 27.50; more is OM012. No invoice: 55000. Nothing written.
SELECT state, message, detail, hint FROM pg_temp.err(format('SELECT oms.issue_credit_note(%s, 27.51, %L)', :o7, 'too much'));
SELECT state, message, hint FROM pg_temp.err(format('SELECT oms.issue_credit_note(%s, 1, %L)', :o6 + 1000000, 'unknown'));
SELECT oms.place_order('{"channel": "market", "external_id": "IV-8", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 1, "unit_price": 12.50}]}') AS o8 \gset
SELECT state, message, hint FROM pg_temp.err(format('SELECT oms.issue_credit_note(%s, 1, %L)', :o8, 'not invoiced'));
SELECT state, message FROM pg_temp.err(format('SELECT oms.issue_credit_note(%s, -1, %L)', :o7, 'negative'));
SELECT count(*) AS credit_notes FROM oms.invoices WHERE tenant_id = oms.current_tenant_id() AND kind = 'credit_note';
