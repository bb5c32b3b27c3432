-- Stock and supply alerts, opened and resolved by oms.check_alerts() (the scheduled job "alerts").
--
-- An alert is open while its condition holds (resolved_at NULL) and never duplicated: one open
-- alert per kind and subject, which a partial unique index states. A check opens the new
-- conditions, refreshes the message of those still open and resolves those that have ended.
--
--	kind				severity	subject			condition (SKU and location with a policy)
--	stock_out			critical	SKU@location	available (on_hand - reserved - safety_stock) <= 0
--	low_stock			warning		SKU@location	0 < available <= reorder point (min for min_max)
--	overstock			info		SKU@location	on_hand > max (min_max), or > overstock_days of demand
--	late_purchase_order	warning		PO-id			open lines past their expected date
--	late_shipment		warning		order id		lines allocated but not shipped past their promised date

CREATE TABLE oms.alerts (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	kind			text NOT NULL CHECK (kind IN ('low_stock', 'stock_out', 'overstock', 'late_purchase_order', 'late_shipment')),
	severity		text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
	subject			text NOT NULL,
	item_id			int,
	location_id		int,
	purchase_order_id bigint,
	order_id		bigint,
	message			text NOT NULL,
	details			jsonb NOT NULL DEFAULT '{}',
	opened_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	checked_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	resolved_at		timestamptz,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX alerts_open_key ON oms.alerts (tenant_id, kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_location_idx ON oms.alerts (tenant_id, location_id) WHERE resolved_at IS NULL;
COMMENT ON TABLE oms.alerts IS 'Stock and supply alerts (low_stock, stock_out, overstock, late_purchase_order, late_shipment): open while resolved_at is NULL, at most one open per kind and subject';
COMMENT ON COLUMN oms.alerts.subject IS 'What the alert is about: SKU@location, PO-id of a purchase order, or the order id';

-- The conditions that hold now, one row per alert that should be open.
-- (citus.allow_nested_distributed_execution: on Citus, check_alerts sends its statement, this call
-- with it, to the tenant's node, where these queries run inside a query of a shard; they all
-- name that one tenant, whose shards are on that node. A mere placeholder without Citus.)
CREATE FUNCTION oms._alert_conditions(p_tenant int, p_today date)
	RETURNS TABLE (kind text, severity text, subject text, item_id int, location_id int, purchase_order_id bigint,
				   order_id bigint, message text, details jsonb)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH c AS (
		SELECT c.*, c.on_hand - c.reserved - c.current_safety_stock AS available,
			   CASE WHEN c.method = 'min_max' THEN c.min_qty ELSE c.reorder_point END AS low_level,
			   i.sku
		  FROM oms._replenishment_candidates(p_tenant, p_today) c
		  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = c.item_id
	)
	SELECT CASE WHEN c.available <= 0 THEN 'stock_out' ELSE 'low_stock' END,
		   CASE WHEN c.available <= 0 THEN 'critical' ELSE 'warning' END,
		   c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL::bigint, NULL::bigint,
		   CASE WHEN c.available <= 0
				THEN pg_catalog.format('SKU "%s" is out of stock at %s', c.sku, c.location_code)
				ELSE pg_catalog.format('SKU "%s" at %s: %s available, at or below %s %s', c.sku, c.location_code,
									   c.available, CASE WHEN c.method = 'min_max' THEN 'min' ELSE 'reorder point' END, c.low_level) END,
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'reserved', c.reserved, 'safety_stock', c.current_safety_stock,
										 'available', c.available, 'on_order', c.on_order, 'level', c.low_level)
	  FROM c
	 WHERE c.available <= 0 OR c.available <= c.low_level
	UNION ALL
	SELECT 'overstock', 'info', c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL, NULL,
		   pg_catalog.format('SKU "%s" at %s: %s on hand, above %s', c.sku, c.location_code, c.on_hand,
							 CASE WHEN c.method = 'min_max' AND c.on_hand > c.max_qty THEN 'max ' || c.max_qty
								  ELSE pg_catalog.round(c.overstock_days) || ' days of demand ('
									   || pg_catalog.round((c.overstock_days::double precision * c.demand_mean)::numeric, 1) || ')' END),
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'max', c.max_qty, 'overstock_days', c.overstock_days,
										 'demand_per_day', pg_catalog.round(c.demand_mean::numeric, 3))
	  FROM c
	 WHERE (c.method = 'min_max' AND c.on_hand > c.max_qty)
		OR (c.overstock_days IS NOT NULL AND c.demand_mean > 0 AND c.on_hand > c.overstock_days::double precision * c.demand_mean)
	UNION ALL
	SELECT 'late_purchase_order', 'warning', 'PO-' || po.id, NULL, po.location_id, po.id, NULL,
		   pg_catalog.format('purchase order %s from %s is late: %s units expected by %s have not arrived', po.id, s.code,
							 pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled), pg_catalog.min(l.expected_date)),
		   pg_catalog.jsonb_build_object('supplier', s.code, 'expected_date', pg_catalog.min(l.expected_date),
										 'units_late', pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled),
										 'days_late', p_today - pg_catalog.min(l.expected_date))
	  FROM oms.purchase_orders po
	  JOIN oms.purchase_order_lines l ON l.tenant_id = po.tenant_id AND l.po_id = po.id
	  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
	 WHERE po.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
	   AND l.expected_date < p_today AND l.qty_received + l.qty_cancelled < l.qty
	 GROUP BY po.id, po.location_id, s.code
	UNION ALL
	SELECT 'late_shipment', 'warning', o.external_id || ' (' || o.id || ')', NULL, NULL, NULL, o.id,
		   pg_catalog.format('order %s has %s line(s) not shipped by their promised date %s', o.external_id,
							 pg_catalog.count(*), pg_catalog.min(l.promised_date)),
		   pg_catalog.jsonb_build_object('promised_date', pg_catalog.min(l.promised_date), 'lines', pg_catalog.count(*))
	  FROM oms.order_lines l
	  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
	 WHERE l.tenant_id = p_tenant AND l.promised_date < p_today AND l.qty_shipped + l.qty_cancelled < l.qty
	   AND l.state IN ('allocated'::oms.line_state, 'released'::oms.line_state, 'picked'::oms.line_state,
					   'packed'::oms.line_state, 'backordered'::oms.line_state, 'preordered'::oms.line_state)
	 GROUP BY o.id, o.external_id;
END
$$;
COMMENT ON FUNCTION oms._alert_conditions(int, date) IS 'Internal: the alert conditions that hold for a tenant on a day, one row per alert that should be open';

CREATE FUNCTION oms.check_alerts() RETURNS TABLE (opened bigint, still_open bigint, resolved bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	-- Two checks at once would only do the same work twice; the second waits for the first.
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.alerts'), v_tenant);
	RETURN QUERY
	WITH cond AS (
		SELECT * FROM oms._alert_conditions(v_tenant, oms.today())
	), upserted AS (
		INSERT INTO oms.alerts AS a (tenant_id, kind, severity, subject, item_id, location_id, purchase_order_id,
									 order_id, message, details)
		SELECT v_tenant, c.kind, c.severity, c.subject, c.item_id, c.location_id, c.purchase_order_id, c.order_id,
			   c.message, c.details
		  FROM cond c
		 ORDER BY c.kind, c.subject
		ON CONFLICT (tenant_id, kind, subject) WHERE resolved_at IS NULL
		DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message, details = EXCLUDED.details,
					  checked_at = EXCLUDED.checked_at
		RETURNING (a.xmax = 0) AS inserted
	), ended AS (
		UPDATE oms.alerts a SET resolved_at = pg_catalog.now(), checked_at = pg_catalog.now()
		 WHERE a.tenant_id = v_tenant AND a.resolved_at IS NULL
		   AND NOT EXISTS (SELECT FROM cond c WHERE c.kind = a.kind AND c.subject = a.subject)
		RETURNING 1
	)
	SELECT (SELECT pg_catalog.count(*) FROM upserted u WHERE u.inserted),
		   (SELECT pg_catalog.count(*) FROM upserted u WHERE NOT u.inserted),
		   (SELECT pg_catalog.count(*) FROM ended);
END
$$;
COMMENT ON FUNCTION oms.check_alerts() IS 'Opens an alert for every condition that holds now (low_stock, stock_out, overstock, late_purchase_order, late_shipment) unless one is open, refreshes the open ones, resolves those whose condition ended; returns the counts';

CREATE VIEW oms.open_alerts AS
SELECT a.id, a.kind, a.severity, a.subject, i.sku, l.code AS location, a.message, a.details, a.opened_at, a.checked_at
  FROM oms.alerts a
  LEFT JOIN oms.items i ON i.tenant_id = a.tenant_id AND i.id = a.item_id
  LEFT JOIN oms.locations l ON l.tenant_id = a.tenant_id AND l.id = a.location_id
 WHERE a.tenant_id = oms.current_tenant_id() AND a.resolved_at IS NULL;
COMMENT ON VIEW oms.open_alerts IS 'The open alerts of the current tenant, with SKU and location codes';

SELECT pg_catalog.pg_extension_config_dump('oms.alerts', '');
