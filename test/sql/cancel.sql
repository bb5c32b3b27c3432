-- cancel_order: releases every reservation, cancels order and lines, audits; idempotent; refuses shipped orders.
SELECT oms.create_tenant('t_cancel') > 0 AS created;
-- Order ids depend on what ran before; errors that name one are shown with it masked.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'order \d+', 'order N', 'g');
END
$$;
SET oms.tenant = 't_cancel';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority) VALUES ('WH-1', 'warehouse', 'WH 1', 1), ('WH-2', 'warehouse', 'WH 2', 2);
INSERT INTO oms.items (sku, name, backorderable) VALUES ('SKU-1', 'One', false), ('SKU-2', 'Two', false), ('SKU-3', 'Three', true);
SELECT oms.set_stock('SKU-1', 'WH-1', 5, 'init'), oms.set_stock('SKU-2', 'WH-2', 5, 'init');
CREATE TEMP VIEW stock AS
SELECT i.sku, loc.code AS location, s.on_hand, s.reserved
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations loc ON loc.tenant_id = s.tenant_id AND loc.id = s.location_id
 WHERE s.tenant_id = oms.current_tenant_id() ORDER BY 1, 2;

SELECT oms.place_order('{"channel": "web", "external_id": "C-1", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-2", "qty": 2, "unit_price": 5}, {"sku": "SKU-1", "qty": 3, "unit_price": 5}, {"sku": "SKU-3", "qty": 1, "unit_price": 5}]}') AS order_id \gset
SELECT * FROM stock;
SELECT oms.cancel_order(:order_id, 'customer changed their mind');
SELECT * FROM stock;
SELECT count(*) AS reservations_left FROM oms.reservations WHERE tenant_id = oms.current_tenant_id();
SELECT line_no, state, qty, qty_cancelled FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id() ORDER BY line_no;
SELECT line_no, from_state, to_state, reason FROM oms.order_history
 WHERE tenant_id = oms.current_tenant_id() AND order_id = :order_id ORDER BY id;
-- Cancelling again changes nothing.
SELECT oms.cancel_order(:order_id, 'double click');
SELECT count(*) AS history_rows FROM oms.order_history WHERE tenant_id = oms.current_tenant_id() AND order_id = :order_id;

-- A shipped order cannot be cancelled.
SELECT oms.place_order('{"channel": "web", "external_id": "C-2", "ship_to": {"country": "IT"},
	"lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 5}]}') AS order2 \gset
UPDATE oms.order_lines SET state = 'released' WHERE tenant_id = oms.current_tenant_id() AND order_id = :order2;
UPDATE oms.order_lines SET state = 'shipped', qty_shipped = 1 WHERE tenant_id = oms.current_tenant_id() AND order_id = :order2;
SELECT pg_temp.try(format('SELECT oms.cancel_order(%s, %L)', :order2, 'too late'));
SELECT state FROM oms.order_lines WHERE tenant_id = oms.current_tenant_id() AND order_id = :order2;

-- Bad input.
SELECT oms.cancel_order(999999999, 'unknown');
SELECT oms.cancel_order(NULL, 'unknown');
SELECT pg_temp.try(format('SELECT oms.cancel_order(%s, %L)', :order2, ''));
-- Another tenant cannot cancel this tenant's order.
SELECT oms.create_tenant('t_cancel_other') > 0 AS created;
SET oms.tenant = 't_cancel_other';
SELECT pg_temp.try(format('SELECT oms.cancel_order(%s, %L)', :order_id, 'not mine'));
RESET oms.tenant;
