-- Shipping documents: GS1 check digits against the GS1 worked examples, the SSCC given at pack,
-- a packing slip and a shipping label (ZPL II) shown in full, the HTML label's SVG barcode, a
-- return label; bad input.
SELECT oms.create_tenant('t_shipdocs') > 0 AS created;
SET oms.tenant = 't_shipdocs';
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	state := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;

-- 1. GS1 mod-10 check digits. GS1 General Specifications: SSCC (00) 0 0614141 123456789 0;
--    GS1 check digit calculator: GTIN-13 629104150021 3; UPC-A (GTIN-12) 03600029145 2.
SELECT oms.gs1_check_digit('00614141123456789') AS sscc_example,
	   oms.gs1_check_digit('629104150021') AS gtin13_example,
	   oms.gs1_check_digit('03600029145') AS gtin12_example;
SELECT oms.sscc(0, '0614141', 123456789) AS sscc, oms.sscc(1, '0614141', 123456789) AS ext_1,
	   oms.sscc(3, '123456789012', 7) AS prefix_12_digits;
SELECT * FROM pg_temp.err($$SELECT oms.sscc(0, '12345', 1)$$);
SELECT * FROM pg_temp.err($$SELECT oms.set_document_settings('{"gs1_company_prefix": "1234567890123"}')$$);
SELECT * FROM pg_temp.err($$SELECT oms.set_document_settings('{"gs1_company_prefix": 614141}')$$);
SELECT * FROM pg_temp.err($$SELECT oms.set_document_settings('{"gs1_prefix": "0614141"}')$$);

-- 2. Code 128 symbol values: set C packs digit pairs; GS1-128 puts FNC1 (102) after the start
--    (105); check = (105 + 102 x 1 + 0 x 2 + 0 x 3 + 61 x 4 + ...) mod 103; stop 106.
SELECT oms.code128_values('00006141411234567890', true) AS gs1_128;
SELECT oms.code128_values('RMA-7') AS set_b;

-- 3. An order packed in two packages from a warehouse.
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, country, city, postal_code, priority)
	VALUES ('WH-1', 'warehouse', 'Warehouse Milano', 'IT', 'Milano', '20121', 1);
INSERT INTO oms.items (sku, name, weight) VALUES ('TEE', 'T-shirt', 0.25), ('BOOK', 'Cookbook', 0.8);
SELECT oms.set_stock('TEE', 'WH-1', 20, 'init'), oms.set_stock('BOOK', 'WH-1', 20, 'init');
SELECT oms.set_document_settings('{"seller": {"name": "Bottega S.r.l."}, "gs1_company_prefix": "0614141"}');
SELECT oms.place_order('{"channel": "web", "external_id": "SD-1",
	"ship_to": {"name": "Anna Rossi", "line1": "Via Dante 5", "postal_code": "20123", "city": "Milano", "country": "IT"},
	"customer": {"name": "Anna Rossi", "email": "anna@example.com"},
	"lines": [{"sku": "TEE", "qty": 3, "unit_price": 20}, {"sku": "BOOK", "qty": 2, "unit_price": 12.5}]}') AS o \gset
SELECT oms.authorize_payment(:o, 85, 'psp-sd1') > 0 AS authorized;
SELECT oms.release_order(:o);
-- The serial reference comes from a sequence; set it so that the first package gets the GS1
-- worked example's serial 123456789.
SELECT setval('oms.sscc_serial_seq', 123456788) > 0 AS serial_set;
SELECT oms.pack(:o, 'WH-1', '[{"line_no": 1, "qty": 2}, {"line_no": 2, "qty": 2}]') AS p1 \gset
SELECT oms.pack(:o, 'WH-1', '[{"line_no": 1, "qty": 1}]') AS p2 \gset
SELECT sscc FROM oms.shipments WHERE tenant_id = oms.current_tenant_id() AND order_id = :o ORDER BY id;
SELECT oms.ship(:p1, 'brt.express', 'BRT-123456');

-- 4. The packing slip of the first package (text, then the HTML page) and the label in ZPL II.
SELECT oms.packing_slip(:p1, 'text');
SELECT oms.packing_slip(:p1);
SELECT oms.packing_slip(:p2, 'text');
SELECT oms.shipping_label(:p1);

-- 5. The HTML label: same layout, the barcode as SVG (start, FNC1, 10 digit pairs, check:
--    13 symbols of 11 modules, stop 13: 156 modules, plus 2 quiet zones of 10: 176 x 1.5 px = 264 px;
--    3 bars per symbol and 4 in the stop: 43 bars).
SELECT oms.shipping_label(:p1, 'html') ~ '<svg xmlns="http://www.w3.org/2000/svg" width="264.0"' AS svg_width,
	   (SELECT count(*) FROM regexp_matches(oms.shipping_label(:p1, 'html'), '<rect x=', 'g')) AS bars,
	   oms.shipping_label(:p1, 'html') ~ '\(00\) 0 0614141 123456789 0' AS human_readable;
SELECT oms.barcode_svg('0012', false, 1, 10) AS tiny_svg;

-- 6. A return label for an RMA: from the customer back to the warehouse, Code 128 of RMA-n.
SELECT oms.ship(:p2, 'brt.express', 'BRT-123457');
SELECT oms.create_return(:o, '[{"line_no": 1, "qty": 1}]', 'too small') AS rma \gset
SELECT regexp_replace(oms.return_label(:rma), 'RMA-\d+', 'RMA-n', 'g') AS return_label;

-- 7. Bad input: unknown shipment and RMA, a bad format, a label without SSCC.
SELECT * FROM pg_temp.err('SELECT oms.shipping_label(-1)');
SELECT * FROM pg_temp.err('SELECT oms.packing_slip(-1)');
SELECT * FROM pg_temp.err('SELECT oms.return_label(-1)');
SELECT * FROM pg_temp.err(format('SELECT oms.shipping_label(%s, %L)', :p1, 'pdf'));
SELECT oms.set_document_settings('{"gs1_company_prefix": null}');
SELECT oms.place_order('{"channel": "web", "external_id": "SD-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 20}]}') AS o2 \gset
SELECT oms.authorize_payment(:o2, 20, 'psp-sd2') > 0 AS authorized;
SELECT oms.release_order(:o2);
SELECT oms.pack(:o2, 'WH-1') AS p3 \gset
SELECT sscc FROM oms.shipments WHERE tenant_id = oms.current_tenant_id() AND id = :p3;
SELECT state, regexp_replace(message, '\d+', 'N') AS message, hint FROM pg_temp.err(format('SELECT oms.shipping_label(%s)', :p3));
