-- Data of the stress test (test/stress/stress.pl): tenant "stress", three channels, three
-- warehouses and three stores, 40 SKUs. Stock is kept short on purpose: a few "hot" SKUs that
-- every client fights over (a flash sale), backorderable SKUs with almost no stock, and store-only
-- SKUs for click & collect, so that refusals (OM001), backorders and races are frequent.
SELECT oms.create_tenant('stress', 'Stress test') > 0 AS created;
SET oms.tenant = 'stress';

INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web', 'web', 'Web shop', 'EUR'),
	('app', 'app', 'App', 'EUR'),
	('pos', 'pos', 'Store tills', 'EUR');
-- Released without a payment authorisation: the stress test is about stock and states, not money.
UPDATE oms.channels SET requires_authorization = false WHERE tenant_id = oms.current_tenant_id();

INSERT INTO oms.locations (code, kind, name, country, priority, can_ship, can_pickup) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 'IT', 1, true, false),
	('WH-2', 'warehouse', 'Warehouse 2', 'IT', 2, true, false),
	('WH-3', 'warehouse', 'Warehouse 3', 'RO', 3, true, false),
	('ST-1', 'store', 'Store 1', 'IT', 10, true, true),
	('ST-2', 'store', 'Store 2', 'IT', 11, false, true),
	('ST-3', 'store', 'Store 3', 'RO', 12, false, true);

-- SKU-01..SKU-30: regular; HOT-1..HOT-4: few units, wanted by everybody; BO-1..BO-6: backorderable.
INSERT INTO oms.items (sku, name, weight, backorderable)
SELECT 'SKU-' || lpad(g::text, 2, '0'), 'Item ' || g, 0.5, false FROM generate_series(1, 30) g
UNION ALL SELECT 'HOT-' || g, 'Hot item ' || g, 0.3, false FROM generate_series(1, 4) g
UNION ALL SELECT 'BO-' || g, 'Backorderable item ' || g, 2, true FROM generate_series(1, 6) g;

SELECT count(oms.set_stock(i.sku, l.code,
		CASE WHEN i.sku LIKE 'HOT-%' THEN 5
			 WHEN i.sku LIKE 'BO-%' THEN 1
			 WHEN l.kind = 'store' THEN 20
			 ELSE 200 END, 'stress: initial count')) AS stock_rows
  FROM oms.items i CROSS JOIN oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = i.tenant_id
   AND (l.kind = 'warehouse' OR i.sku LIKE 'SKU-%');
-- HOT-1 and HOT-2 are declared hot (stock slots, 4 each): orders, holds, cancels, shipments,
-- returns, receipts and counts go through the slots' paths; HOT-3 and HOT-4 stay plain rows.
SELECT oms.set_hot('HOT-1', true, 4) + oms.set_hot('HOT-2', true, 4) AS hot_stock_rows;
