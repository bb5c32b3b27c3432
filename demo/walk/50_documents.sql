-- demo/walk/50_documents.sql: documents (issue 11): tax at placement, an invoice, a packing slip
-- and a shipping label, written as HTML files too.

\echo
\echo '5.1 Documents. The shop sets its seller data and GS1 company prefix (packages get an SSCC when'
\echo '    packed), the Italian VAT rates, and a channel whose prices include VAT. A new order there:'
\echo '    2 shirts at 53.90 (22 %) and a set of moka cups at 24.00 (taxed as reduced, 10 %, for the'
\echo '    example), shipping 4.90. Net, tax and gross are computed once per line, half away from zero.'
SELECT oms.set_document_settings('{"seller": {"name": "Albero & Brad S.r.l.", "address": ["Via Brera 12", "20121 Milano MI", "Italia"],
	"vat_id": "IT09876543210"}, "gs1_company_prefix": "8012345"}');
INSERT INTO oms.tax_rates (country, tax_class, rate, valid_from) VALUES
	('IT', 'standard', 0.22, '2013-10-01'), ('IT', 'reduced', 0.10, '2000-01-01');
UPDATE oms.items SET tax_class = 'reduced' WHERE sku = 'MOKA-CUPS-6';
INSERT INTO oms.channels (code, kind, name, default_currency, tax_mode, return_days)
	VALUES ('web-vat', 'web', 'albero-brad.com, prices with VAT', 'EUR', 'included', 30);
SELECT oms.place_order('{"channel": "web-vat", "external_id": "AB-DOC-1", "shipping_amount": 4.90,
	"ship_to": {"name": "Marco Bianchi", "line1": "Corso Buenos Aires 20", "postal_code": "20124", "city": "Milano", "country": "IT"},
	"customer": {"name": "Marco Bianchi", "email": "marco.bianchi@example.com"},
	"lines": [{"sku": "SHIRT-BRERA-M", "qty": 2, "unit_price": 53.90}, {"sku": "MOKA-CUPS-6", "qty": 1, "unit_price": 24.00}]}') AS doc_order \gset
SELECT l.line_no AS line, i.sku, l.qty, l.unit_price, l.tax_rate, l.net, l.tax, l.gross
  FROM oms.order_lines l JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
 WHERE l.order_id = :doc_order ORDER BY l.line_no;
SELECT o.subtotal, o.shipping_amount AS shipping, o.net_total, o.tax_total, o.total FROM oms.orders o WHERE o.id = :doc_order;

\echo
\echo '5.2 Paid, released, packed and shipped; then oms.issue_invoice() invoices what has shipped,'
\echo '    with the next gapless number of the year''s series:'
SELECT oms.authorize_payment(:doc_order, o.total, 'psp_marco_1') IS NOT NULL AS authorised, oms.release_order(:doc_order) AS "order"
  FROM oms.orders o WHERE o.id = :doc_order;
SELECT format('SELECT oms.pack(%s, %L) AS "package packed at %s"', :doc_order, l.code, l.code)
  FROM (SELECT DISTINCT loc.code FROM oms.order_lines ol
		  JOIN oms.locations loc ON (loc.tenant_id, loc.id) = (ol.tenant_id, ol.location_id)
		 WHERE ol.order_id = :doc_order ORDER BY loc.code) l \gexec
SELECT format('SELECT oms.ship(%s, %L, %L) AS "order now"', s.id, 'brt.express', 'BRTDOC' || lpad(s.id::text, 8, '0'))
  FROM oms.shipments s WHERE s.order_id = :doc_order AND s.state = 'packed' ORDER BY s.id \gexec
SELECT oms.issue_invoice(:doc_order) AS invoice \gset
SELECT number, net, tax, gross, currency FROM oms.invoices WHERE id = :invoice;
SELECT min(id) AS package FROM oms.shipments WHERE order_id = :doc_order \gset

\echo
\echo '5.3 The invoice as an accounting integration gets it (oms.invoice_document(id, ''json'')):'
\pset format unaligned
\pset tuples_only on
SELECT oms.invoice_document(:invoice, 'json');
\echo
\echo '5.4 The packing slip of the first package (oms.packing_slip(id, ''text'')) and its 4x6 label'
\echo '    in ZPL II for a thermal printer (oms.shipping_label(id)), with the SSCC as GS1-128:'
SELECT oms.packing_slip(:package, 'text');
SELECT oms.shipping_label(:package);
\o /tmp/oms-demo-invoice.html
SELECT oms.invoice_document(:invoice);
\o /tmp/oms-demo-label.html
SELECT oms.shipping_label(:package, 'html');
\o /tmp/oms-demo-packing-slip.html
SELECT oms.packing_slip(:package);
\o
\pset tuples_only off
\pset format aligned
\echo
\echo '5.5 Written for a browser: /tmp/oms-demo-invoice.html (the invoice), /tmp/oms-demo-label.html'
\echo '    (the label, barcode drawn as SVG) and /tmp/oms-demo-packing-slip.html.'

\echo
\echo '5.6 The customer checks the order on the shop''s "where is my order" page (oms.order_status,'
\echo '    the only thing the storefront''s role may call besides oms.request_return):'
SELECT oms.order_status('web-vat', 'AB-DOC-1', 'Marco.Bianchi@example.com') #>> '{status}' AS status,
	   oms.order_status('web-vat', 'AB-DOC-1', 'Marco.Bianchi@example.com') -> 'you_can' AS "you can",
	   oms.order_status('web-vat', 'AB-DOC-1', 'someone.else@example.com') ->> 'found' AS "found with another e-mail";
