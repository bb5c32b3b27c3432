-- Alerts open when their condition starts, are never duplicated while open, and are resolved when
-- the condition ends. Today is 1 April 2024.
SELECT oms.create_tenant('t_alerts') > 0 AS created;
SET oms.tenant = 't_alerts';
SET datestyle = 'ISO, YMD';
SET oms.today = '2024-04-01';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'Warehouse 1', 1);
INSERT INTO oms.items (sku, name) VALUES ('AL-LOW', 'Low'), ('AL-OUT', 'Out'), ('AL-OVER', 'Over'), ('AL-OK', 'Fine');
INSERT INTO oms.suppliers (code, name) VALUES ('SUP', 'Supplier');
-- WH-1: min 5, max 20.
SELECT oms.set_policy(NULL, 'WH-1', '{"method": "min_max", "min": 5, "max": 20, "supplier": "SUP"}') IS NOT NULL AS set;
SELECT oms.set_stock('AL-LOW', 'WH-1', 4, 'count'), oms.set_stock('AL-OUT', 'WH-1', 0, 'count'),
	   oms.set_stock('AL-OVER', 'WH-1', 25, 'count'), oms.set_stock('AL-OK', 'WH-1', 10, 'count');
-- A purchase order that should have arrived on 28 March.
SELECT oms.create_purchase_order('SUP', 'WH-1', '[{"sku": "AL-OK", "qty": 6}]', '2024-03-28') AS po \gset
-- An order promised for 30 March, still not shipped.
SELECT oms.place_order('{"channel": "web", "external_id": "AL-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "AL-OK", "qty": 1, "unit_price": 3}]}') AS order_id \gset
UPDATE oms.order_lines SET promised_date = '2024-03-30' WHERE tenant_id = oms.current_tenant_id() AND order_id = :order_id;

CREATE TEMP VIEW alerts AS
SELECT kind, severity, regexp_replace(subject, '(PO-|\()\d+', '\1#') AS subject, sku, location,
	   regexp_replace(message, 'order \d+', 'order (id)') AS message
  FROM oms.open_alerts ORDER BY kind, subject;
-- AL-LOW: 4 available <= min 5. AL-OUT: 0. AL-OVER: 25 > max 20. AL-OK: 10 - 1 reserved = 9: fine.
SELECT * FROM oms.check_alerts();
SELECT * FROM alerts;
-- Checking again opens nothing new: the same five stay open, once each.
SELECT * FROM oms.check_alerts();
SELECT kind, count(*) FROM oms.alerts WHERE tenant_id = oms.current_tenant_id() GROUP BY kind ORDER BY kind;

-- The conditions change: AL-LOW is counted at 12; AL-OUT gets 3 (from out of stock to low); the
-- purchase order arrives; the order's promise moves to 5 April.
SELECT oms.set_stock('AL-LOW', 'WH-1', 12, 'count'), oms.set_stock('AL-OUT', 'WH-1', 3, 'count');
SELECT count(*) AS lines_received FROM oms.receive_purchase_order(:po, NULL);
UPDATE oms.order_lines SET promised_date = '2024-04-05' WHERE tenant_id = oms.current_tenant_id() AND order_id = :order_id;
SELECT * FROM oms.check_alerts();
SELECT * FROM alerts;
-- The history keeps every alert with when it opened and whether it was resolved.
SELECT kind, regexp_replace(subject, '(PO-|\()\d+', '\1#') AS subject, resolved_at IS NOT NULL AS resolved
  FROM oms.alerts WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
-- Overstock by days of cover: a policy with overstock_days 10 on a SKU selling 2 a day (14 days of
-- history) alerts above 20 units on hand.
INSERT INTO oms.items (sku, name) VALUES ('AL-COVER', 'Covered');
SELECT oms.set_policy('AL-COVER', 'WH-1', '{"method": "reorder_point", "history_days": 14, "overstock_days": 10}') IS NOT NULL AS set;
INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, lines)
SELECT oms.current_tenant_id(), i.id, l.id, c.id, date '2024-04-01' - g, 2, 1
  FROM generate_series(1, 14) g, oms.items i, oms.locations l, oms.channels c
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku = 'AL-COVER' AND l.tenant_id = i.tenant_id AND l.code = 'WH-1'
   AND c.tenant_id = i.tenant_id AND c.code = 'web';
SELECT oms.set_stock('AL-COVER', 'WH-1', 21, 'count');
SELECT * FROM oms.check_alerts();
SELECT * FROM alerts WHERE sku = 'AL-COVER';
