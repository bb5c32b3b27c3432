-- Planning and running replenishment on numbers that can be checked by hand: a reorder point
-- policy with MOQ and pack size, safety stock from a varying demand and lead time, a min/max store
-- served first by a transfer from the warehouse's surplus, and a location without a supplier.
-- Today is 1 April 2024.
SELECT oms.create_tenant('t_plan') > 0 AS created;
SET oms.tenant = 't_plan';
SET datestyle = 'ISO, YMD';
SET oms.today = '2024-04-01';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 1, true, false),
	('WH-2', 'warehouse', 'Warehouse 2', 2, true, false),
	('STORE-A', 'store', 'Store A', 5, false, true),
	('VEND-1', 'vendor', 'Vendor 1', 9, false, false);
INSERT INTO oms.items (sku, name, unit_cost, backorderable) VALUES
	('P-CONST', 'Constant seller', 2.50, false), ('P-VAR', 'Varying seller', 4.00, true),
	('P-MM', 'Store item', 1.00, false), ('P-NOSUP', 'No supplier', NULL, false);
INSERT INTO oms.suppliers (code, name) VALUES ('ACME', 'Acme Ltd');

-- Demand history (written directly: the triggers are tested in demand_history).
-- P-CONST: 4 a day for the last 28 days. P-VAR: the last 10 days 1, 7, 1, 7, 4, 4, 4, 4, 4, 4
-- (mean 4, squared deviations 4 x 9 = 36, sigma = sqrt(36 / 9) = 2).
INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, lines)
SELECT oms.current_tenant_id(), i.id, l.id, c.id, d.day, d.qty, 1
  FROM (SELECT 'P-CONST' AS sku, date '2024-04-01' - g AS day, 4 AS qty FROM generate_series(1, 28) g
		UNION ALL
		SELECT 'P-VAR', date '2024-03-22' + g - 1, (ARRAY[1, 7, 1, 7, 4, 4, 4, 4, 4, 4])[g] FROM generate_series(1, 10) g) d
  JOIN oms.items i ON i.tenant_id = oms.current_tenant_id() AND i.sku = d.sku
  JOIN oms.locations l ON l.tenant_id = i.tenant_id AND l.code = 'WH-1'
  JOIN oms.channels c ON c.tenant_id = i.tenant_id AND c.code = 'web';
SELECT sku, count(*) AS days, sum(demand) AS units, min(day) AS first, max(day) AS last FROM oms.daily_demand GROUP BY sku ORDER BY sku;

-- Policies. WH-1: from VEND-1, lead time 5 days, 28 days of history. P-CONST orders 30 at a time,
-- MOQ 50, packs of 12. P-VAR: 10 days of history, lead time 4 days varying by 1, and its safety
-- stock goes into stock.safety_stock. STORE-A: min 5 / max 20 from ACME in packs of 6 (P-MM at
-- WH-1 has no demand, so its reorder point is 0 and it orders 1 at a time: level 1).
-- WH-2: no supplier.
SELECT oms.set_policy(NULL, 'WH-1', '{"supplier": "VEND-1", "lead_time_days": 5, "history_days": 28}') IS NOT NULL AS set;
SELECT oms.set_policy('P-CONST', 'WH-1', '{"order_qty": 30, "moq": 50, "pack_size": 12}') IS NOT NULL AS set;
SELECT oms.set_policy('P-VAR', 'WH-1', '{"lead_time_days": 4, "lead_time_sd": 1, "history_days": 10, "update_safety_stock": true}') IS NOT NULL AS set;
SELECT oms.set_policy(NULL, 'STORE-A', '{"method": "min_max", "min": 5, "max": 20, "supplier": "ACME", "pack_size": 6}') IS NOT NULL AS set;
SELECT oms.set_policy(NULL, 'WH-2', '{"method": "min_max", "min": 0, "max": 10}') IS NOT NULL AS set;

-- Stock. P-CONST 25 at WH-1. P-VAR: 10 on hand, an order reserves 5, another wants 6 (more than
-- the 5 left: backordered), and 8 are expected from production. P-MM: 10 at WH-1, 2 at STORE-A.
-- P-NOSUP: none at WH-2.
SELECT oms.set_stock('P-CONST', 'WH-1', 25, 'count'), oms.set_stock('P-VAR', 'WH-1', 10, 'count'),
	   oms.set_stock('P-MM', 'WH-1', 10, 'count'), oms.set_stock('P-MM', 'STORE-A', 2, 'count'),
	   oms.set_stock('P-NOSUP', 'WH-2', 0, 'count');
SELECT oms.place_order('{"channel": "web", "external_id": "PL-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "P-VAR", "qty": 5, "unit_price": 9}]}') > 0 AS placed;
SELECT oms.place_order('{"channel": "web", "external_id": "PL-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "P-VAR", "qty": 6, "unit_price": 9}]}') > 0 AS placed;
INSERT INTO oms.supply (item_id, location_id, qty, expected_date, kind, reference)
SELECT i.id, l.id, 8, '2024-04-03', 'production', 'batch 7' FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = i.tenant_id AND i.sku = 'P-VAR' AND l.code = 'WH-1';

-- The plan:
-- P-CONST at WH-1: mean 4, sigma 0: safety stock 0; lead time demand 4 x 5 = 20 = reorder point.
--   Position 25 > 20: nothing yet.
-- P-VAR at WH-1: mean 4, sigma 2, P = 4, lead time sigma 1: safety stock
--   ceil(1.644854 x sqrt(4 x 2^2 + 4^2 x 1^2)) = ceil(9.30) = 10; reorder point 16 + 10 = 26.
--   Position 10 - 5 + 8 - 6 = 7 <= 26. Q = ceil(4 x 4) = 16: 16 x ceil((26 - 7 + 1) / 16) = 32.
-- P-MM at STORE-A: position 2 <= min 5: up to max 20 is 18. WH-1 has 10, 9 above its level 1:
--   transfer 9; buy 9, rounded up to 2 packs of 6: 12.
-- P-NOSUP at WH-2: position 0 <= min 0: up to max 10, but there is no supplier.
SELECT sku, location, kind, coalesce(supplier, from_location) AS source, on_hand, reserved, on_order, backordered,
	   demand_per_day, lead_time_demand, safety_stock, reorder_point, proposed_qty, unit_cost, expected_date, reason
  FROM oms.plan_replenishment();
-- P-CONST falls to 12: 12 <= 20; one order of 30 is enough (20 - 12 + 1 = 9 <= 30), then MOQ 50,
-- then 5 packs of 12 = 60.
SELECT oms.set_stock('P-CONST', 'WH-1', 12, 'count');
SELECT sku, location, kind, supplier, proposed_qty, reason FROM oms.plan_replenishment('WH-1');
-- Planning writes nothing.
SELECT (SELECT count(*) FROM oms.purchase_orders WHERE tenant_id = oms.current_tenant_id()) AS purchase_orders,
	   (SELECT count(*) FROM oms.transfer_orders WHERE tenant_id = oms.current_tenant_id()) AS transfers;

-- The run: one transfer WH-1 -> STORE-A, one draft purchase order per supplier and location,
-- P-VAR's safety stock (10) written into stock; nothing for P-NOSUP.
SELECT kind, supplier, from_location, location, lines, units FROM oms.run_replenishment() ORDER BY kind, location;
SELECT po.id > 0 AS has_id, s.code AS supplier, l.code AS location, po.state, po.origin, po.expected_date,
	   i.sku, pl.qty, pl.unit_cost, pl.expected_date AS line_expected
  FROM oms.purchase_orders po
  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
  JOIN oms.locations l ON l.tenant_id = po.tenant_id AND l.id = po.location_id
  JOIN oms.purchase_order_lines pl ON pl.tenant_id = po.tenant_id AND pl.po_id = po.id
  JOIN oms.items i ON i.tenant_id = pl.tenant_id AND i.id = pl.item_id
 WHERE po.tenant_id = oms.current_tenant_id() ORDER BY s.code, i.sku;
SELECT i.sku, l.code AS location, s.qty, s.expected_date, s.kind
  FROM oms.supply s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY i.sku, l.code, s.kind;
SELECT i.sku, l.code AS location, s.on_hand, s.reserved, s.safety_stock
  FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY i.sku, l.code;

-- Running again creates nothing: every short SKU and location is covered by an open order.
SELECT count(*) AS created FROM oms.run_replenishment();
SELECT sku, location, proposed_qty, reason FROM oms.plan_replenishment();
-- Sending a draft; cancelling a purchase order removes its supply, and the next run orders again.
SELECT oms.send_purchase_order(po.id) FROM oms.purchase_orders po
  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
 WHERE po.tenant_id = oms.current_tenant_id() AND s.code = 'ACME';
SELECT oms.cancel_purchase_order(po.id) FROM oms.purchase_orders po
  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
 WHERE po.tenant_id = oms.current_tenant_id() AND s.code = 'VEND-1';
SELECT count(*) AS vend_1_supply FROM oms.supply s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() AND l.code = 'WH-1' AND s.kind = 'purchase_order';
SELECT kind, supplier, location, lines, units FROM oms.run_replenishment() ORDER BY kind, location;
