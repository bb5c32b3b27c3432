-- Data for the upgrade test (test/t/050_upgrade.pl), loaded under the previous version: a shop
-- with two channels (one with tax), a warehouse and a store, stock, and orders in several states:
-- shipped and invoiced and partly returned, released, cancelled, on hold, backordered, a cart hold,
-- a purchase order, events. Only API calls that exist since 0.1.0.
\set ON_ERROR_STOP on
SELECT oms.create_tenant('shop') > 0 AS created;
SET oms.tenant = 'shop';
INSERT INTO oms.channels (code, kind, name, default_currency, tax_mode) VALUES
	('web', 'web', 'Web shop', 'EUR', 'included'), ('b2b', 'web', 'Trade', 'EUR', 'excluded');
INSERT INTO oms.locations (code, kind, name, country, city, postal_code, priority, can_ship, can_pickup, latitude, longitude) VALUES
	('WH-1', 'warehouse', 'Warehouse Milano', 'IT', 'Milano', '20121', 1, true, false, 45.46, 9.19),
	('ST-RM', 'store', 'Store Roma', 'IT', 'Roma', '00100', 5, true, true, 41.90, 12.50);
INSERT INTO oms.items (sku, name, tax_class, weight) VALUES
	('TEE', 'T-shirt', 'standard', 0.25), ('BOOK', 'Cookbook', 'reduced', 0.8), ('CAP', 'Cap', 'standard', 0.1);
INSERT INTO oms.tax_rates (country, tax_class, rate, valid_from) VALUES
	('IT', 'standard', 0.22, '2013-10-01'), ('IT', 'reduced', 0.10, '2000-01-01');
SELECT oms.set_stock('TEE', 'WH-1', 20, 'init'), oms.set_stock('BOOK', 'WH-1', 5, 'init'),
	   oms.set_stock('CAP', 'ST-RM', 3, 'init');
SELECT oms.set_document_settings('{"seller": {"name": "Bottega S.r.l."}, "gs1_company_prefix": "0614141"}');

-- 1: shipped, invoiced, one unit returned and refunded
SELECT oms.place_order('{"channel": "web", "external_id": "U-1", "shipping_amount": 4.90,
	"ship_to": {"name": "Anna", "line1": "Via Dante 5", "postal_code": "20123", "city": "Milano", "country": "IT"},
	"customer": {"ref": "C1", "name": "Anna Rossi", "email": "anna@example.com"},
	"lines": [{"sku": "TEE", "qty": 3, "unit_price": 24.99}, {"sku": "BOOK", "qty": 1, "unit_price": 12.50}]}') AS o1 \gset
SELECT oms.authorize_payment(:o1, 92.37, 'psp-1') > 0;
SELECT oms.release_order(:o1);
SELECT oms.ship(oms.pack(:o1, 'WH-1'), 'brt.standard', 'BRT-1');
SELECT oms.capture_payment(:o1);
SELECT oms.issue_invoice(:o1) > 0;
SELECT oms.receive_return(oms.create_return(:o1, '[{"line_no": 1, "qty": 1}]', 'too small'),
						  '[{"line_no": 1, "qty": 1, "disposition": "restock"}]');
-- 2: released (net prices)
SELECT oms.place_order('{"channel": "b2b", "external_id": "U-2", "ship_to": {"country": "IT", "city": "Milano"},
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 10}]}') AS o2 \gset
SELECT oms.authorize_payment(:o2, 24.40, 'psp-2') > 0;
SELECT oms.release_order(:o2);
-- 3: cancelled
SELECT oms.cancel_order(oms.place_order('{"channel": "web", "external_id": "U-3", "ship_to": {"country": "IT"},
	"lines": [{"sku": "TEE", "qty": 1, "unit_price": 24.99}]}'), 'customer request');
-- 4: on hold
SELECT oms.hold_order(oms.place_order('{"channel": "web", "external_id": "U-4", "ship_to": {"country": "IT"},
	"lines": [{"sku": "BOOK", "qty": 1, "unit_price": 12.50}]}'), 'fraud_review', 'checking');
-- 5: click & collect at the store
SELECT oms.place_order('{"channel": "web", "external_id": "U-5", "pickup": "ST-RM",
	"lines": [{"sku": "CAP", "qty": 1, "unit_price": 9.90}]}') > 0;
-- a cart hold and a purchase order
SELECT oms.hold('cart-1', 'TEE', 1, 'WH-1', interval '1 hour') IS NOT NULL;
INSERT INTO oms.locations (code, kind, name, country, priority, can_ship) VALUES ('VEND', 'vendor', 'Supplier', 'IT', 9, false);
SELECT oms.create_purchase_order('VEND', 'WH-1', '[{"sku": "BOOK", "qty": 10}]', current_date + 7) > 0;
