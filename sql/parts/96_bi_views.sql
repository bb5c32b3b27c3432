-- Reporting for BI tools (issue 9), part 2: schema oms_bi, its views and oms_bi.top().
--
-- Every view shows the current tenant's rows only (setting oms.tenant; give a BI login its tenant
-- with ALTER ROLE ... SET oms.tenant). Money is in the order's currency and, in the *_reporting
-- columns, in the reporting currency (oms.reporting_currency()) at the rate of the order's UTC day;
-- a missing rate gives NULL there, and a row in oms_bi.data_quality. Customer contact data (name,
-- e-mail, phone, street) is masked unless the user is a member of oms_operator or oms_admin.
--
-- Freshness: every view is exact as of the last commit. oms_bi.sales_daily, kpis_daily and top()
-- (but customer and order) read the daily summary plus its not yet compacted deltas; the fact
-- views read the tables.

CREATE SCHEMA oms_bi;
COMMENT ON SCHEMA oms_bi IS 'oms reporting for BI tools: facts, daily sales, KPIs, top-N reports (README: data dictionary)';
REVOKE ALL ON SCHEMA oms_bi FROM PUBLIC;

CREATE FUNCTION oms.bi_tenant_id() RETURNS int
	LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	RETURN oms.current_tenant_id();
COMMENT ON FUNCTION oms.bi_tenant_id() IS 'The current tenant''s id for the BI views, looked up with the rights of oms (a BI login has no access to schema oms)';

CREATE FUNCTION oms.bi_unmasked() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.pg_has_role(CURRENT_USER, 'oms_operator', 'USAGE')
		OR pg_catalog.pg_has_role(CURRENT_USER, 'oms_admin', 'USAGE');
COMMENT ON FUNCTION oms.bi_unmasked() IS 'Whether the BI views show customer contact data in clear: the user is a member of oms_operator or oms_admin (not of oms_reader alone)';

CREATE FUNCTION oms.bi_mask_name(p_name text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN (SELECT pg_catalog.string_agg(pg_catalog.upper(pg_catalog.left(w, 1)) || '.', ' ' ORDER BY n)
			  FROM pg_catalog.regexp_split_to_table(pg_catalog.btrim(p_name), '\s+') WITH ORDINALITY AS t(w, n)
			 WHERE w <> '');
COMMENT ON FUNCTION oms.bi_mask_name(text) IS 'A customer name as the BI views show it masked: its initials ("Jane Doe" -> "J. D.")';

CREATE FUNCTION oms.bi_mask_email(p_email text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.left(p_email, 1) || '***'
		|| CASE WHEN pg_catalog.strpos(p_email, '@') > 0 THEN pg_catalog.substr(p_email, pg_catalog.strpos(p_email, '@')) ELSE '' END;
COMMENT ON FUNCTION oms.bi_mask_email(text) IS 'An e-mail address as the BI views show it masked: first character and domain ("jane@example.com" -> "j***@example.com")';

-- ----- facts

CREATE VIEW oms_bi.orders AS
SELECT o.id AS order_id, o.external_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.placed_at,
	   c.code AS channel, c.kind AS channel_kind, o.state::text AS state,
	   o.customer_ref AS customer,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_name ELSE oms.bi_mask_name(o.customer_name) END AS customer_name,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_email ELSE oms.bi_mask_email(o.customer_email) END AS customer_email,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_phone
			WHEN o.customer_phone IS NOT NULL THEN '***' || pg_catalog.right(o.customer_phone, 2) END AS customer_phone,
	   CASE WHEN oms.bi_unmasked() THEN o.ship_to ->> 'line1' WHEN o.ship_to ? 'line1' THEN '***' END AS ship_street,
	   o.ship_country AS country, o.ship_city AS city, pl.code AS pickup_location,
	   o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
	   o.currency::text AS currency, o.subtotal, o.shipping_amount, o.total,
	   o.total * r.rate AS total_reporting, p.rc::text AS reporting_currency
  FROM oms.orders o
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN LATERAL (SELECT CASE WHEN o.currency = p.rc THEN 1::numeric
								 ELSE (SELECT x.rate FROM oms.exchange_rates x
										WHERE x.rate_date = (o.placed_at AT TIME ZONE 'UTC')::date
										  AND x.from_currency = o.currency AND x.to_currency = p.rc) END AS rate) r ON true
 WHERE o.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.orders IS 'Fact: one row per order of the current tenant, with channel, customer (contact data masked for oms_reader), country, seller, page and totals in the order and the reporting currency';
COMMENT ON COLUMN oms_bi.orders.order_id IS 'Order id (oms.orders.id)';
COMMENT ON COLUMN oms_bi.orders.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.orders.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.orders.placed_at IS 'When the order was placed (filter on it to use the index)';
COMMENT ON COLUMN oms_bi.orders.channel IS 'Code of the sales channel';
COMMENT ON COLUMN oms_bi.orders.channel_kind IS 'Kind of the channel: web, marketplace, pos, app, social, call_centre';
COMMENT ON COLUMN oms_bi.orders.state IS 'Order state (rollup of its lines)';
COMMENT ON COLUMN oms_bi.orders.customer IS 'Customer reference given at placement';
COMMENT ON COLUMN oms_bi.orders.customer_name IS 'Customer name; initials only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.customer_email IS 'Customer e-mail; first character and domain only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.customer_phone IS 'Customer phone; last two digits only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.ship_street IS 'Street line of the ship-to address; *** for oms_reader';
COMMENT ON COLUMN oms_bi.orders.country IS 'Ship-to country (ISO 3166 alpha-2)';
COMMENT ON COLUMN oms_bi.orders.city IS 'Ship-to city';
COMMENT ON COLUMN oms_bi.orders.pickup_location IS 'Store of a click & collect order';
COMMENT ON COLUMN oms_bi.orders.seller IS 'Seller: the order attribute "seller" (channel seller or store associate)';
COMMENT ON COLUMN oms_bi.orders.page IS 'Landing or referring page: the order attribute "source_page"';
COMMENT ON COLUMN oms_bi.orders.currency IS 'Currency of the order''s money';
COMMENT ON COLUMN oms_bi.orders.subtotal IS 'Sum of the lines at placement, order currency';
COMMENT ON COLUMN oms_bi.orders.shipping_amount IS 'Shipping charged, order currency';
COMMENT ON COLUMN oms_bi.orders.total IS 'Subtotal plus shipping, order currency';
COMMENT ON COLUMN oms_bi.orders.total_reporting IS 'Total in the reporting currency at the rate of the order''s day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.orders.reporting_currency IS 'The reporting currency (setting oms.reporting_currency)';

CREATE VIEW oms_bi.order_lines AS
SELECT l.order_id, l.line_no, o.external_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.placed_at,
	   c.code AS channel, lo.code AS location, i.sku, i.name AS item_name, i.brand, i.category,
	   o.customer_ref AS customer,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_name ELSE oms.bi_mask_name(o.customer_name) END AS customer_name,
	   o.ship_country AS country, o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
	   l.state::text AS state, l.promised_date, l.qty, l.qty_cancelled, l.qty_shipped, l.qty_delivered, l.qty_returned,
	   l.unit_price, (l.qty - l.qty_cancelled) * l.unit_price AS revenue, o.currency::text AS currency,
	   (l.qty - l.qty_cancelled) * l.unit_price * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM oms.order_lines l
  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
  LEFT JOIN oms.locations lo ON lo.tenant_id = l.tenant_id AND lo.id = l.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN LATERAL (SELECT CASE WHEN o.currency = p.rc THEN 1::numeric
								 ELSE (SELECT x.rate FROM oms.exchange_rates x
										WHERE x.rate_date = (o.placed_at AT TIME ZONE 'UTC')::date
										  AND x.from_currency = o.currency AND x.to_currency = p.rc) END AS rate) r ON true
 WHERE l.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.order_lines IS 'Fact: one row per order line of the current tenant, with its order''s day, channel, customer, country, seller and page and its SKU, brand, category, location and quantity buckets';
COMMENT ON COLUMN oms_bi.order_lines.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.order_lines.line_no IS 'Line number in the order';
COMMENT ON COLUMN oms_bi.order_lines.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.order_lines.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.order_lines.placed_at IS 'When the order was placed';
COMMENT ON COLUMN oms_bi.order_lines.channel IS 'Code of the sales channel';
COMMENT ON COLUMN oms_bi.order_lines.location IS 'Code of the location serving the line; NULL while backordered';
COMMENT ON COLUMN oms_bi.order_lines.sku IS 'SKU of the item';
COMMENT ON COLUMN oms_bi.order_lines.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.order_lines.brand IS 'Brand of the item (oms.items.brand)';
COMMENT ON COLUMN oms_bi.order_lines.category IS 'Category of the item (oms.items.category)';
COMMENT ON COLUMN oms_bi.order_lines.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms_bi.order_lines.customer_name IS 'Customer name; initials only for oms_reader';
COMMENT ON COLUMN oms_bi.order_lines.country IS 'Ship-to country of the order';
COMMENT ON COLUMN oms_bi.order_lines.seller IS 'Order attribute "seller"';
COMMENT ON COLUMN oms_bi.order_lines.page IS 'Order attribute "source_page"';
COMMENT ON COLUMN oms_bi.order_lines.state IS 'Line state';
COMMENT ON COLUMN oms_bi.order_lines.promised_date IS 'Date promised to the customer for the line';
COMMENT ON COLUMN oms_bi.order_lines.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.order_lines.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.order_lines.qty_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.order_lines.qty_delivered IS 'Units delivered';
COMMENT ON COLUMN oms_bi.order_lines.qty_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms_bi.order_lines.unit_price IS 'Price of one unit, order currency';
COMMENT ON COLUMN oms_bi.order_lines.revenue IS 'Units not cancelled times the unit price, order currency (returns not deducted)';
COMMENT ON COLUMN oms_bi.order_lines.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.order_lines.revenue_reporting IS 'Revenue in the reporting currency; NULL when the rate of the day is missing';
COMMENT ON COLUMN oms_bi.order_lines.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.shipments AS
SELECT s.id AS shipment_id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date AS day, lo.code AS location,
	   c.code AS channel, s.carrier, s.service, s.state, s.packed_at, s.shipped_at, s.delivered_at,
	   sl.promised_date,
	   CASE WHEN s.shipped_at IS NOT NULL AND sl.promised_date IS NOT NULL
			THEN (s.shipped_at AT TIME ZONE 'UTC')::date <= sl.promised_date END AS on_time,
	   pg_catalog.round((EXTRACT(epoch FROM s.shipped_at - o.placed_at) / 3600)::numeric, 1) AS hours_to_ship,
	   pg_catalog.round((EXTRACT(epoch FROM s.delivered_at - o.placed_at) / 3600)::numeric, 1) AS hours_to_deliver,
	   sl.units
  FROM oms.shipments s
  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  JOIN oms.locations lo ON lo.tenant_id = s.tenant_id AND lo.id = s.location_id
 CROSS JOIN LATERAL (SELECT pg_catalog.min(l.promised_date) AS promised_date, pg_catalog.sum(x.qty)::bigint AS units
					   FROM oms.shipment_lines x
					   JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
					  WHERE x.tenant_id = s.tenant_id AND x.shipment_id = s.id) sl
 WHERE s.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.shipments IS 'Fact: one row per shipment (package) of the current tenant: location, channel, carrier, times, promised date, on time or not, hours from placement to shipment and to delivery';
COMMENT ON COLUMN oms_bi.shipments.shipment_id IS 'Shipment id';
COMMENT ON COLUMN oms_bi.shipments.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.shipments.day IS 'UTC day the shipment left (NULL while packed)';
COMMENT ON COLUMN oms_bi.shipments.location IS 'Code of the shipping location';
COMMENT ON COLUMN oms_bi.shipments.channel IS 'Code of the order''s channel';
COMMENT ON COLUMN oms_bi.shipments.carrier IS 'Carrier';
COMMENT ON COLUMN oms_bi.shipments.service IS 'Carrier service';
COMMENT ON COLUMN oms_bi.shipments.state IS 'packed, shipped, in_transit, out_for_delivery, exception, delivered';
COMMENT ON COLUMN oms_bi.shipments.packed_at IS 'When it was packed';
COMMENT ON COLUMN oms_bi.shipments.shipped_at IS 'When it left';
COMMENT ON COLUMN oms_bi.shipments.delivered_at IS 'When it was delivered';
COMMENT ON COLUMN oms_bi.shipments.promised_date IS 'Earliest promised date of the lines in it';
COMMENT ON COLUMN oms_bi.shipments.on_time IS 'Shipped (UTC day) on or before the promised date; NULL when not shipped or nothing was promised';
COMMENT ON COLUMN oms_bi.shipments.hours_to_ship IS 'Hours from placement to shipment';
COMMENT ON COLUMN oms_bi.shipments.hours_to_deliver IS 'Hours from placement to delivery';
COMMENT ON COLUMN oms_bi.shipments.units IS 'Units in the shipment';

CREATE VIEW oms_bi.returns AS
SELECT r.id AS rma, r.order_id, (r.created_at AT TIME ZONE 'UTC')::date AS day, c.code AS channel, r.reason, r.state,
	   rl.units, rl.units_received, rl.restocked, rl.damaged, rl.to_vendor,
	   r.refund_amount, o.currency::text AS currency
  FROM oms.returns r
  JOIN oms.orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
 CROSS JOIN LATERAL (SELECT pg_catalog.sum(x.qty)::bigint AS units, pg_catalog.sum(x.qty_received)::bigint AS units_received,
							pg_catalog.sum(x.restocked)::bigint AS restocked, pg_catalog.sum(x.damaged)::bigint AS damaged,
							pg_catalog.sum(x.to_vendor)::bigint AS to_vendor
					   FROM oms.return_lines x WHERE x.tenant_id = r.tenant_id AND x.return_id = r.id) rl
 WHERE r.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.returns IS 'Fact: one row per return (RMA) of the current tenant: day, channel, reason, state, units authorised and received with their disposition, refund';
COMMENT ON COLUMN oms_bi.returns.rma IS 'Return id (RMA number)';
COMMENT ON COLUMN oms_bi.returns.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.returns.day IS 'UTC day the return was authorised';
COMMENT ON COLUMN oms_bi.returns.channel IS 'Code of the order''s channel';
COMMENT ON COLUMN oms_bi.returns.reason IS 'Reason given for the return';
COMMENT ON COLUMN oms_bi.returns.state IS 'authorized, partially_received, received';
COMMENT ON COLUMN oms_bi.returns.units IS 'Units authorised';
COMMENT ON COLUMN oms_bi.returns.units_received IS 'Units received back';
COMMENT ON COLUMN oms_bi.returns.restocked IS 'Units received and put back in stock';
COMMENT ON COLUMN oms_bi.returns.damaged IS 'Units received damaged';
COMMENT ON COLUMN oms_bi.returns.to_vendor IS 'Units received and sent to the vendor';
COMMENT ON COLUMN oms_bi.returns.refund_amount IS 'Refund due for what was received, order currency';
COMMENT ON COLUMN oms_bi.returns.currency IS 'Currency of the order';

CREATE VIEW oms_bi.return_reasons AS
SELECT r.day, r.reason, pg_catalog.count(*) AS returns, pg_catalog.sum(r.units)::bigint AS units
  FROM oms_bi.returns r
 GROUP BY r.day, r.reason;
COMMENT ON VIEW oms_bi.return_reasons IS 'Returns and units authorised per UTC day and reason (the top return reasons: sum over a period, sort by returns)';
COMMENT ON COLUMN oms_bi.return_reasons.day IS 'UTC day the returns were authorised';
COMMENT ON COLUMN oms_bi.return_reasons.reason IS 'Reason given';
COMMENT ON COLUMN oms_bi.return_reasons.returns IS 'Returns (RMAs) with this reason';
COMMENT ON COLUMN oms_bi.return_reasons.units IS 'Units authorised on them';

CREATE VIEW oms_bi.stock_snapshot AS
SELECT i.sku, i.name AS item_name, i.brand, i.category, lo.code AS location, lo.kind AS location_kind,
	   lo.country, s.on_hand, s.reserved, s.safety_stock,
	   GREATEST(s.on_hand - s.reserved - s.safety_stock, 0) AS available,
	   i.unit_cost, s.on_hand * i.unit_cost AS stock_value, s.updated_at
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations lo ON lo.tenant_id = s.tenant_id AND lo.id = s.location_id
 WHERE s.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.stock_snapshot IS 'Fact: stock now per SKU and location of the current tenant, with its value at cost';
COMMENT ON COLUMN oms_bi.stock_snapshot.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.stock_snapshot.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.stock_snapshot.location_kind IS 'warehouse, store, 3pl, vendor';
COMMENT ON COLUMN oms_bi.stock_snapshot.country IS 'Country of the location';
COMMENT ON COLUMN oms_bi.stock_snapshot.on_hand IS 'Units physically there';
COMMENT ON COLUMN oms_bi.stock_snapshot.reserved IS 'Units reserved for orders and carts';
COMMENT ON COLUMN oms_bi.stock_snapshot.safety_stock IS 'Units kept back from promises';
COMMENT ON COLUMN oms_bi.stock_snapshot.available IS 'on_hand - reserved - safety_stock, at least 0';
COMMENT ON COLUMN oms_bi.stock_snapshot.unit_cost IS 'Cost of one unit in the tenant''s accounting currency';
COMMENT ON COLUMN oms_bi.stock_snapshot.stock_value IS 'on_hand times unit_cost (NULL when the cost is unknown)';
COMMENT ON COLUMN oms_bi.stock_snapshot.updated_at IS 'Last change of the stock row';

CREATE VIEW oms_bi.stock_movements AS
SELECT m.id AS movement_id, (m.moved_at AT TIME ZONE 'UTC')::date AS day, m.moved_at, i.sku, i.brand, i.category,
	   lo.code AS location, m.kind, m.delta, m.on_hand_after, m.reason, m.reference
  FROM oms.stock_movements m
  JOIN oms.items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id
  JOIN oms.locations lo ON lo.tenant_id = m.tenant_id AND lo.id = m.location_id
 WHERE m.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.stock_movements IS 'Fact: every change of on_hand of the current tenant (the stock ledger)';
COMMENT ON COLUMN oms_bi.stock_movements.movement_id IS 'Movement id';
COMMENT ON COLUMN oms_bi.stock_movements.day IS 'UTC day of the movement';
COMMENT ON COLUMN oms_bi.stock_movements.moved_at IS 'When it happened';
COMMENT ON COLUMN oms_bi.stock_movements.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.stock_movements.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.stock_movements.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.stock_movements.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.stock_movements.kind IS 'count, adjustment, receipt, shipment, return, transfer_in, transfer_out';
COMMENT ON COLUMN oms_bi.stock_movements.delta IS 'Signed change of on_hand';
COMMENT ON COLUMN oms_bi.stock_movements.on_hand_after IS 'on_hand after the movement';
COMMENT ON COLUMN oms_bi.stock_movements.reason IS 'Why';
COMMENT ON COLUMN oms_bi.stock_movements.reference IS 'Reference (order, shipment, receipt)';

CREATE VIEW oms_bi.purchase_orders AS
SELECT po.id AS po_id, pl.line_no, su.code AS supplier, lo.code AS location, po.state, po.origin,
	   (po.created_at AT TIME ZONE 'UTC')::date AS day, pl.expected_date, i.sku, i.brand, i.category,
	   pl.qty, pl.qty_received, pl.qty_cancelled, pl.qty - pl.qty_received - pl.qty_cancelled AS qty_open,
	   pl.unit_cost, pl.qty * pl.unit_cost AS value
  FROM oms.purchase_orders po
  JOIN oms.purchase_order_lines pl ON pl.tenant_id = po.tenant_id AND pl.po_id = po.id
  JOIN oms.suppliers su ON su.tenant_id = po.tenant_id AND su.id = po.supplier_id
  JOIN oms.locations lo ON lo.tenant_id = po.tenant_id AND lo.id = po.location_id
  JOIN oms.items i ON i.tenant_id = pl.tenant_id AND i.id = pl.item_id
 WHERE po.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.purchase_orders IS 'Fact: one row per purchase order line of the current tenant: supplier, receiving location, state, SKU, quantities ordered, received, cancelled and open, cost';
COMMENT ON COLUMN oms_bi.purchase_orders.po_id IS 'Purchase order id';
COMMENT ON COLUMN oms_bi.purchase_orders.line_no IS 'Line number';
COMMENT ON COLUMN oms_bi.purchase_orders.supplier IS 'Code of the supplier';
COMMENT ON COLUMN oms_bi.purchase_orders.location IS 'Code of the receiving location';
COMMENT ON COLUMN oms_bi.purchase_orders.state IS 'draft, sent, partially_received, received, cancelled';
COMMENT ON COLUMN oms_bi.purchase_orders.origin IS 'manual or replenishment';
COMMENT ON COLUMN oms_bi.purchase_orders.day IS 'UTC day the purchase order was created';
COMMENT ON COLUMN oms_bi.purchase_orders.expected_date IS 'Expected arrival of the line';
COMMENT ON COLUMN oms_bi.purchase_orders.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.purchase_orders.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.purchase_orders.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.purchase_orders.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_received IS 'Units received';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_open IS 'Units still expected';
COMMENT ON COLUMN oms_bi.purchase_orders.unit_cost IS 'Cost of one unit';
COMMENT ON COLUMN oms_bi.purchase_orders.value IS 'qty times unit_cost';

-- ----- the daily summary, with names and the reporting currency

CREATE VIEW oms_bi.sales_daily AS
SELECT x.day, c.code AS channel, lo.code AS location, i.sku, i.name AS item_name, i.brand, i.category,
	   x.currency::text AS currency, x.country, x.seller, x.page,
	   x.orders, x.lines, x.lines_backordered, x.units, x.units_cancelled, x.units_shipped, x.units_returned,
	   x.gross - x.cancelled_value AS revenue, x.returned_value,
	   (x.gross - x.cancelled_value) * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM (SELECT u.day, u.channel_id, u.location_id, u.item_id, u.currency, u.country, u.seller, u.page,
			   pg_catalog.sum(u.orders)::bigint AS orders, pg_catalog.sum(u.lines)::bigint AS lines,
			   pg_catalog.sum(u.lines_backordered)::bigint AS lines_backordered, pg_catalog.sum(u.units)::bigint AS units,
			   pg_catalog.sum(u.units_cancelled)::bigint AS units_cancelled,
			   pg_catalog.sum(u.units_shipped)::bigint AS units_shipped,
			   pg_catalog.sum(u.units_returned)::bigint AS units_returned, pg_catalog.sum(u.gross) AS gross,
			   pg_catalog.sum(u.cancelled_value) AS cancelled_value, pg_catalog.sum(u.returned_value) AS returned_value
		  FROM (SELECT h.day, h.channel_id, h.location_id, h.item_id, h.currency, h.country, h.seller, h.page, h.orders,
					   h.lines, h.lines_backordered, h.units, h.units_cancelled, h.units_shipped, h.units_returned,
					   h.gross, h.cancelled_value, h.returned_value
				  FROM oms.bi_sales_daily h WHERE h.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT d.day, d.channel_id, d.location_id, d.item_id, d.currency, d.country, d.seller, d.page, d.orders,
					   d.lines, d.lines_backordered, d.units, d.units_cancelled, d.units_shipped, d.units_returned,
					   d.gross, d.cancelled_value, d.returned_value
				  FROM oms.bi_sales_deltas d WHERE d.tenant_id = (SELECT oms.bi_tenant_id())) u
		 GROUP BY u.day, u.channel_id, u.location_id, u.item_id, u.currency, u.country, u.seller, u.page
		HAVING pg_catalog.sum(u.lines) <> 0) x
  JOIN oms.channels c ON c.tenant_id = (SELECT oms.bi_tenant_id()) AND c.id = x.channel_id
  JOIN oms.items i ON i.tenant_id = (SELECT oms.bi_tenant_id()) AND i.id = x.item_id
  LEFT JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = x.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = x.day AND xr.from_currency = x.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN x.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r;
COMMENT ON VIEW oms_bi.sales_daily IS 'Sales per UTC day of placement, channel, location, SKU, currency, country, seller and page of the current tenant, from the daily summary (exact as of the last commit); the base of kpis_daily and top()';
COMMENT ON COLUMN oms_bi.sales_daily.day IS 'UTC day the orders were placed';
COMMENT ON COLUMN oms_bi.sales_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.sales_daily.location IS 'Code of the location serving the lines; NULL: not assigned (backorder)';
COMMENT ON COLUMN oms_bi.sales_daily.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.sales_daily.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.sales_daily.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.sales_daily.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.sales_daily.currency IS 'Currency of the orders';
COMMENT ON COLUMN oms_bi.sales_daily.country IS 'Ship-to country of the orders (at placement)';
COMMENT ON COLUMN oms_bi.sales_daily.seller IS 'Order attribute "seller"';
COMMENT ON COLUMN oms_bi.sales_daily.page IS 'Order attribute "source_page"';
COMMENT ON COLUMN oms_bi.sales_daily.orders IS 'Orders, each counted once, on the row of its line 1';
COMMENT ON COLUMN oms_bi.sales_daily.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.sales_daily.lines_backordered IS 'Lines backordered when placed (counted on the row of location NULL)';
COMMENT ON COLUMN oms_bi.sales_daily.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.sales_daily.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.sales_daily.units_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.sales_daily.units_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.sales_daily.revenue IS 'Value of the units not cancelled, order currency (returns not deducted)';
COMMENT ON COLUMN oms_bi.sales_daily.returned_value IS 'Value of the units returned, order currency';
COMMENT ON COLUMN oms_bi.sales_daily.revenue_reporting IS 'Revenue in the reporting currency at the rate of the day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.sales_daily.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.sales_by_dimension AS
SELECT x.day, x.dimension, x.key, x.label, lo.code AS location, x.currency::text AS currency,
	   x.orders, x.lines, x.lines_backordered, x.units, x.units_cancelled, x.units_shipped, x.units_returned,
	   x.revenue, x.returned_value, x.revenue * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM (SELECT u.day, u.dimension, u.key, pg_catalog.max(u.label) AS label, u.location_id, u.currency,
			   pg_catalog.sum(u.orders)::bigint AS orders, pg_catalog.sum(u.lines)::bigint AS lines,
			   pg_catalog.sum(u.lines_backordered)::bigint AS lines_backordered, pg_catalog.sum(u.units)::bigint AS units,
			   pg_catalog.sum(u.units_cancelled)::bigint AS units_cancelled,
			   pg_catalog.sum(u.units_shipped)::bigint AS units_shipped,
			   pg_catalog.sum(u.units_returned)::bigint AS units_returned, pg_catalog.sum(u.revenue) AS revenue,
			   pg_catalog.sum(u.returned_value) AS returned_value
		  FROM (SELECT r.day, r.dimension, r.key, r.label, r.location_id, r.currency, r.orders, r.lines, r.lines_backordered,
					   r.units, r.units_cancelled, r.units_shipped, r.units_returned, r.revenue, r.returned_value
				  FROM oms.bi_sales_rollup r WHERE r.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT p.day, 'product', i.sku, i.name, NULL::int, p.currency, p.orders, p.lines, p.lines_backordered,
					   p.units, p.units_cancelled, p.units_shipped, p.units_returned, p.revenue, p.returned_value
				  FROM oms.bi_product_daily p
				  JOIN oms.items i ON i.tenant_id = p.tenant_id AND i.id = p.item_id
				 WHERE p.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT d.day, v.dimension,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.sku WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.name WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE WHEN v.dimension = 'channel' THEN d.location_id END, d.currency, d.orders, d.lines,
					   d.lines_backordered, d.units, d.units_cancelled, d.units_shipped, d.units_returned,
					   d.gross - d.cancelled_value, d.returned_value
				  FROM oms.bi_sales_deltas d
				  JOIN oms.items i ON i.tenant_id = d.tenant_id AND i.id = d.item_id
				  JOIN oms.channels c ON c.tenant_id = d.tenant_id AND c.id = d.channel_id
				 CROSS JOIN (VALUES ('channel'), ('product'), ('brand'), ('category'), ('country'), ('seller'), ('page')) v(dimension)
				 WHERE d.tenant_id = (SELECT oms.bi_tenant_id())) u
		 GROUP BY u.day, u.dimension, u.key, u.location_id, u.currency
		HAVING pg_catalog.sum(u.lines) <> 0) x
  LEFT JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = x.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = x.day AND xr.from_currency = x.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN x.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r;
COMMENT ON VIEW oms_bi.sales_by_dimension IS 'Sales per UTC day and value of a report dimension (channel with location, product, brand, category, country, seller, page) and currency of the current tenant: the fast base of kpis_daily and top(); filter on dimension and day';
COMMENT ON COLUMN oms_bi.sales_by_dimension.day IS 'UTC day the orders were placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.dimension IS 'channel, product, brand, category, country, seller or page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.key IS 'Channel code, SKU, brand, category, country, seller or page; NULL: none';
COMMENT ON COLUMN oms_bi.sales_by_dimension.label IS 'Item name for products, else the key';
COMMENT ON COLUMN oms_bi.sales_by_dimension.location IS 'Location of the lines (dimension channel only; NULL: backorders not assigned)';
COMMENT ON COLUMN oms_bi.sales_by_dimension.currency IS 'Currency of the orders';
COMMENT ON COLUMN oms_bi.sales_by_dimension.orders IS 'Orders (each counted once, with its line 1); meaningful for channel, country, seller, page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue IS 'Value of the units not cancelled, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.returned_value IS 'Value of the units returned, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue_reporting IS 'Revenue in the reporting currency; NULL when the rate of the day is missing';
COMMENT ON COLUMN oms_bi.sales_by_dimension.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.order_sales AS
SELECT b.order_id, b.day, c.code AS channel, b.customer, b.currency::text AS currency, b.lines, b.units, b.revenue,
	   b.revenue * r.rate AS revenue_reporting, p.rc::text AS reporting_currency, b.units_returned,
	   b.lines_incomplete = 0 AS complete, b.late_shipments = 0 AS on_time, b.units_returned > 0 OR b.returns > 0 AS returned,
	   b.lines_incomplete = 0 AND b.late_shipments = 0 AND b.units_returned = 0 AND b.returns = 0 AS perfect
  FROM oms.bi_order_sales b
  LEFT JOIN oms.channels c ON c.tenant_id = b.tenant_id AND c.id = b.channel_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = b.day AND xr.from_currency = b.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN b.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r
 WHERE b.tenant_id = (SELECT oms.bi_tenant_id()) AND b.lines <> 0;
COMMENT ON VIEW oms_bi.order_sales IS 'Sales per order of the current tenant, from the order summary kept by triggers (exact as of the last commit): day, channel, customer, units and revenue not cancelled, returns, and whether it is a perfect order; the base of top() for customers and orders and of perfect_orders_daily; filter on day';
COMMENT ON COLUMN oms_bi.order_sales.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.order_sales.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.order_sales.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.order_sales.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms_bi.order_sales.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.order_sales.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.order_sales.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.order_sales.revenue IS 'Units not cancelled times their price, order currency (shipping and returns not deducted)';
COMMENT ON COLUMN oms_bi.order_sales.revenue_reporting IS 'Revenue in the reporting currency at the rate of the order''s day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.order_sales.reporting_currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.order_sales.units_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms_bi.order_sales.complete IS 'Every line shipped in full, nothing cancelled';
COMMENT ON COLUMN oms_bi.order_sales.on_time IS 'No shipment of the order left after its promised date';
COMMENT ON COLUMN oms_bi.order_sales.returned IS 'A return was authorised or a unit returned';
COMMENT ON COLUMN oms_bi.order_sales.perfect IS 'Complete, on time and not returned (a perfect order)';

-- ----- KPIs

CREATE VIEW oms_bi.kpis_daily AS
SELECT k.day, k.channel, k.location, k.orders, k.revenue, k.reporting_currency,
	   pg_catalog.round(k.revenue / nullif(k.orders, 0), 2) AS average_order_value,
	   k.units, pg_catalog.round(k.units::numeric / nullif(k.orders, 0), 2) AS units_per_order,
	   k.lines, k.lines_backordered,
	   pg_catalog.round(1 - k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS fill_rate,
	   pg_catalog.round(k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS backorder_rate,
	   k.units_cancelled, pg_catalog.round(k.units_cancelled::numeric / nullif(k.units, 0), 4) AS cancellation_rate,
	   k.units_shipped, k.units_returned,
	   pg_catalog.round(k.units_returned::numeric / nullif(k.units_shipped, 0), 4) AS return_rate,
	   k.shipments, k.shipments_on_time,
	   pg_catalog.round(k.shipments_on_time::numeric / nullif(k.shipments_promised, 0), 4) AS on_time_ship_rate,
	   k.ship_hours_median, k.ship_hours_p90, k.deliver_hours_median, k.deliver_hours_p90
  FROM (SELECT g.*, pg_catalog.sum(g.lines) OVER w AS day_lines, pg_catalog.sum(g.lines_backordered) OVER w AS day_backordered
		  FROM (SELECT b.day, b.channel, b.location,
					   pg_catalog.sum(b.orders)::bigint AS orders,
					   CASE WHEN pg_catalog.bool_and(b.revenue_ok) THEN pg_catalog.sum(b.revenue) END AS revenue,
					   oms.reporting_currency()::text AS reporting_currency,
					   pg_catalog.sum(b.units)::bigint AS units, pg_catalog.sum(b.lines)::bigint AS lines,
					   pg_catalog.sum(b.lines_backordered)::bigint AS lines_backordered,
					   pg_catalog.sum(b.units_cancelled)::bigint AS units_cancelled,
					   pg_catalog.sum(b.units_shipped)::bigint AS units_shipped,
					   pg_catalog.sum(b.units_returned)::bigint AS units_returned,
					   pg_catalog.sum(b.shipments)::bigint AS shipments,
					   pg_catalog.sum(b.shipments_on_time)::bigint AS shipments_on_time,
					   pg_catalog.sum(b.shipments_promised)::bigint AS shipments_promised,
					   pg_catalog.max(b.ship_hours_median) AS ship_hours_median, pg_catalog.max(b.ship_hours_p90) AS ship_hours_p90,
					   pg_catalog.max(b.deliver_hours_median) AS deliver_hours_median,
					   pg_catalog.max(b.deliver_hours_p90) AS deliver_hours_p90
				  FROM (SELECT s.day, s.key AS channel, s.location, s.orders, s.revenue_reporting AS revenue,
							   s.revenue_reporting IS NOT NULL AS revenue_ok, s.units, s.lines, s.lines_backordered,
							   s.units_cancelled, s.units_shipped, s.units_returned,
							   NULL::bigint AS shipments, NULL::bigint AS shipments_on_time, NULL::bigint AS shipments_promised,
							   NULL::numeric AS ship_hours_median, NULL::numeric AS ship_hours_p90,
							   NULL::numeric AS deliver_hours_median, NULL::numeric AS deliver_hours_p90
						  FROM oms_bi.sales_by_dimension s
						 WHERE s.dimension = 'channel'
						UNION ALL
						SELECT h.day, c.code, lo.code, NULL, NULL, true, NULL, NULL, NULL, NULL, NULL, NULL,
							   h.shipments, h.shipments_on_time, h.shipments_promised,
							   pg_catalog.round(h.ship_hours[1]::numeric, 1), pg_catalog.round(h.ship_hours[2]::numeric, 1),
							   pg_catalog.round(h.deliver_hours[1]::numeric, 1), pg_catalog.round(h.deliver_hours[2]::numeric, 1)
						  FROM (SELECT f.day, f.channel_id, f.location_id, pg_catalog.count(*) AS shipments,
									   pg_catalog.count(*) FILTER (WHERE f.on_time) AS shipments_on_time,
									   pg_catalog.count(f.on_time) AS shipments_promised,
									   pg_catalog.percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.hours_to_ship) AS ship_hours,
									   pg_catalog.percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.hours_to_deliver) AS deliver_hours
								  FROM oms.bi_shipments f
								 WHERE f.tenant_id = (SELECT oms.bi_tenant_id())
								 GROUP BY f.day, f.channel_id, f.location_id) h
						  JOIN oms.channels c ON c.tenant_id = (SELECT oms.bi_tenant_id()) AND c.id = h.channel_id
						  JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = h.location_id) b
				 GROUP BY b.day, b.channel, b.location) g
		WINDOW w AS (PARTITION BY g.day, g.channel)) k;
COMMENT ON VIEW oms_bi.kpis_daily IS 'KPIs per UTC day, channel and location of the current tenant: sales counters from the daily summary by day of placement, shipment counters from the shipment summary (oms.bi_shipments) by day of shipment (README: definitions)';
COMMENT ON COLUMN oms_bi.kpis_daily.day IS 'UTC day (placement for sales, shipment for the shipment KPIs)';
COMMENT ON COLUMN oms_bi.kpis_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.kpis_daily.location IS 'Code of the location; NULL: lines not assigned (backorders)';
COMMENT ON COLUMN oms_bi.kpis_daily.orders IS 'Orders placed (each counted at the location of its line 1)';
COMMENT ON COLUMN oms_bi.kpis_daily.revenue IS 'Revenue (units not cancelled at their price) in the reporting currency; NULL when a rate of the day is missing';
COMMENT ON COLUMN oms_bi.kpis_daily.reporting_currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.kpis_daily.average_order_value IS 'revenue / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.kpis_daily.units_per_order IS 'units / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.kpis_daily.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.kpis_daily.fill_rate IS 'Share of the day''s and channel''s lines served in full from stock at placement (the same on every location row of the day and channel)';
COMMENT ON COLUMN oms_bi.kpis_daily.backorder_rate IS 'Share of the day''s and channel''s lines backordered at placement (1 - fill_rate)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.kpis_daily.cancellation_rate IS 'units_cancelled / units';
COMMENT ON COLUMN oms_bi.kpis_daily.units_shipped IS 'Units shipped (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_returned IS 'Units returned (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.return_rate IS 'units_returned / units_shipped';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments IS 'Shipments that left that day from the location';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments_on_time IS 'Those shipped on or before their promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.on_time_ship_rate IS 'shipments_on_time / shipments with a promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_median IS 'Median hours from placement to shipment of those shipments';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_p90 IS '90th percentile of hours from placement to shipment';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_median IS 'Median hours from placement to delivery of those shipments (delivered ones)';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_p90 IS '90th percentile of hours from placement to delivery';

CREATE VIEW oms_bi.perfect_orders_daily AS
SELECT o.day, o.channel, pg_catalog.count(*) AS orders, pg_catalog.count(*) FILTER (WHERE o.perfect) AS perfect_orders,
	   pg_catalog.round((pg_catalog.count(*) FILTER (WHERE o.perfect))::numeric / pg_catalog.count(*), 4) AS perfect_order_rate
  FROM oms_bi.order_sales o
 GROUP BY o.day, o.channel;
COMMENT ON VIEW oms_bi.perfect_orders_daily IS 'Perfect-order rate per UTC day of placement and channel: orders shipped complete (nothing cancelled), every shipment on time, nothing returned; from the order summary (oms_bi.order_sales)';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.day IS 'UTC day of placement';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.orders IS 'Orders placed';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_orders IS 'Orders complete, on time and not returned';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_order_rate IS 'perfect_orders / orders';

CREATE VIEW oms_bi.inventory_kpis AS
SELECT s.sku, s.item_name, s.brand, s.category, s.location, s.on_hand, s.available, s.safety_stock,
	   s.unit_cost, s.stock_value, q.units_shipped_30d,
	   pg_catalog.round(q.units_shipped_30d * 365.0 / 30 / nullif(s.on_hand, 0), 2) AS turnover,
	   pg_catalog.round(s.on_hand / nullif(q.units_shipped_30d / 30.0, 0), 1) AS days_of_cover
  FROM oms_bi.stock_snapshot s
  -- The 30 days' shipments summed once per SKU and location (not looked up per stock row).
  LEFT JOIN (SELECT i.sku, lo.code AS location, -pg_catalog.sum(x.delta) AS units
			   FROM oms.stock_movements x
			   JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
			   JOIN oms.locations lo ON lo.tenant_id = x.tenant_id AND lo.id = x.location_id
			  WHERE x.tenant_id = (SELECT oms.bi_tenant_id()) AND x.kind = 'shipment'
				AND x.moved_at >= ((oms.bi_today() - 29)::timestamp AT TIME ZONE 'UTC')
				AND x.moved_at < ((oms.bi_today() + 1)::timestamp AT TIME ZONE 'UTC')
			  GROUP BY i.sku, lo.code) m ON m.sku = s.sku AND m.location = s.location
 CROSS JOIN LATERAL (SELECT coalesce(m.units, 0)::bigint AS units_shipped_30d) q;
COMMENT ON VIEW oms_bi.inventory_kpis IS 'Inventory KPIs per SKU and location: stock value at cost, units shipped in the 30 days to today, annualised turnover (units shipped per year / on hand) and days of cover (on hand / units shipped per day)';
COMMENT ON COLUMN oms_bi.inventory_kpis.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.inventory_kpis.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.inventory_kpis.on_hand IS 'Units on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.available IS 'Units available to promise (on_hand - reserved - safety_stock, at least 0)';
COMMENT ON COLUMN oms_bi.inventory_kpis.safety_stock IS 'Safety stock';
COMMENT ON COLUMN oms_bi.inventory_kpis.unit_cost IS 'Cost of one unit';
COMMENT ON COLUMN oms_bi.inventory_kpis.stock_value IS 'on_hand times unit_cost';
COMMENT ON COLUMN oms_bi.inventory_kpis.units_shipped_30d IS 'Units shipped from there in the 30 days up to today (oms.today or the current date)';
COMMENT ON COLUMN oms_bi.inventory_kpis.turnover IS 'Annualised inventory turnover: units_shipped_30d * 365 / 30 / on_hand; NULL when nothing on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.days_of_cover IS 'Days the stock lasts at the last 30 days'' rate: on_hand / (units_shipped_30d / 30); NULL when nothing shipped';

-- ----- drill-down and data quality

CREATE VIEW oms_bi.customer_orders AS
SELECT o.customer, o.customer_name, o.customer_email, o.order_id, o.external_id, o.placed_at, o.channel,
	   o.state AS order_state, o.total, o.currency, l.line_no, l.sku, l.item_name, l.qty, l.state AS line_state,
	   l.qty_cancelled, l.qty_shipped, l.qty_delivered, l.qty_returned, l.location,
	   (SELECT pg_catalog.string_agg(s.shipment_id || ' ' || s.state || coalesce(' ' || s.carrier, ''), ', ' ORDER BY s.shipment_id)
		  FROM oms_bi.shipments s
		 WHERE s.order_id = o.order_id
		   AND EXISTS (SELECT FROM oms.shipment_lines x
						WHERE x.tenant_id = (SELECT oms.bi_tenant_id()) AND x.shipment_id = s.shipment_id
						  AND x.line_no = l.line_no)) AS shipments
  FROM oms_bi.orders o
  JOIN oms_bi.order_lines l ON l.order_id = o.order_id;
COMMENT ON VIEW oms_bi.customer_orders IS 'Drill-down: a customer''s orders with their lines, states and shipments (filter on customer; contact data masked for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.customer IS 'Customer reference';
COMMENT ON COLUMN oms_bi.customer_orders.customer_name IS 'Customer name (initials for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.customer_email IS 'Customer e-mail (masked for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.customer_orders.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.customer_orders.placed_at IS 'When the order was placed';
COMMENT ON COLUMN oms_bi.customer_orders.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.customer_orders.order_state IS 'Order state';
COMMENT ON COLUMN oms_bi.customer_orders.total IS 'Order total, order currency';
COMMENT ON COLUMN oms_bi.customer_orders.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.customer_orders.line_no IS 'Line number';
COMMENT ON COLUMN oms_bi.customer_orders.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.customer_orders.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.customer_orders.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.customer_orders.line_state IS 'Line state';
COMMENT ON COLUMN oms_bi.customer_orders.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.customer_orders.qty_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.customer_orders.qty_delivered IS 'Units delivered';
COMMENT ON COLUMN oms_bi.customer_orders.qty_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.customer_orders.location IS 'Location serving the line';
COMMENT ON COLUMN oms_bi.customer_orders.shipments IS 'Shipments with units of the line: "id state carrier", comma separated';

CREATE VIEW oms_bi.data_quality AS
SELECT 'missing exchange rate'::text AS issue, s.day, s.currency, s.reporting_currency,
	   pg_catalog.sum(s.orders)::bigint AS orders, pg_catalog.sum(s.lines)::bigint AS lines,
	   pg_catalog.sum(s.revenue) AS amount
  FROM oms_bi.sales_by_dimension s
 WHERE s.dimension = 'channel' AND s.revenue_reporting IS NULL
 GROUP BY s.day, s.currency, s.reporting_currency;
COMMENT ON VIEW oms_bi.data_quality IS 'Data-quality problems of the reports: days and currencies whose orders have no exchange rate to the reporting currency (their reporting amounts are NULL)';
COMMENT ON COLUMN oms_bi.data_quality.issue IS 'What is wrong';
COMMENT ON COLUMN oms_bi.data_quality.day IS 'UTC day of the orders concerned';
COMMENT ON COLUMN oms_bi.data_quality.currency IS 'Their currency';
COMMENT ON COLUMN oms_bi.data_quality.reporting_currency IS 'The reporting currency the rate is missing to';
COMMENT ON COLUMN oms_bi.data_quality.orders IS 'Orders concerned';
COMMENT ON COLUMN oms_bi.data_quality.lines IS 'Order lines concerned';
COMMENT ON COLUMN oms_bi.data_quality.amount IS 'Their revenue in their own currency';

-- ----- top-N

-- The reporting currency, for oms_bi.top: a BI login has no USAGE on schema oms, and top() is
-- PL/pgSQL, whose queries look names up when they run; this body is bound when it is created.
CREATE FUNCTION oms_bi.reporting_currency() RETURNS char(3)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms_bi, pg_catalog
	RETURN oms.reporting_currency();
COMMENT ON FUNCTION oms_bi.reporting_currency() IS 'The currency the BI views report money in (setting oms_bi.reporting_currency, else EUR)';
REVOKE ALL ON FUNCTION oms_bi.reporting_currency() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.reporting_currency() TO oms_reader, oms_admin;

-- The product ranking's sums, per SKU, for oms_bi.top: with the rights of oms (a BI login has no
-- access to schema oms), for the caller's tenant only. Products have a row per SKU and day: this
-- reads oms.bi_product_daily and the deltas not yet compacted once, summed per item, and looks
-- the SKU and name up for the sums only.
CREATE FUNCTION oms._bi_product_sales(p_from date, p_to date, p_tenant int)
	RETURNS TABLE (key text, label text, orders bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET work_mem = '64MB'
	SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	v_tenant	int := p_tenant;
	v_rc		char(3) := oms.reporting_currency();
BEGIN
	RETURN QUERY
	SELECT i.sku, i.name, g.lines, g.units, g.revenue, g.returns, g.last_order
	  FROM (SELECT u.item_id, sum(u.lines)::bigint AS lines, sum(u.units)::bigint AS units,
				   CASE WHEN count(*) FILTER (WHERE u.currency <> v_rc AND u.rate IS NULL) = 0
						THEN sum(CASE WHEN u.currency = v_rc THEN u.revenue ELSE u.revenue * u.rate END) END AS revenue,
				   sum(u.units_returned)::bigint AS returns, max(u.day) AS last_order
			  FROM (SELECT p.item_id, p.day, p.currency, p.lines::int AS lines, (p.units - p.units_cancelled)::int AS units,
						   p.revenue, p.units_returned::int AS units_returned, x.rate
					  FROM oms.bi_product_daily p
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = p.day AND x.from_currency = p.currency AND x.to_currency = v_rc
					 WHERE p.tenant_id = v_tenant AND p.day BETWEEN p_from AND p_to
					UNION ALL
					SELECT d.item_id, d.day, d.currency, d.lines::int, (d.units - d.units_cancelled)::int, d.gross - d.cancelled_value,
						   d.units_returned::int, x.rate
					  FROM oms.bi_sales_deltas d
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = d.day AND x.from_currency = d.currency AND x.to_currency = v_rc
					 WHERE d.tenant_id = v_tenant AND d.day BETWEEN p_from AND p_to) u
			 GROUP BY u.item_id
			HAVING sum(u.lines) <> 0) g
	  JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = g.item_id;
END
$$;
COMMENT ON FUNCTION oms._bi_product_sales(date, date, int) IS 'Internal: sales per SKU of a tenant over the UTC days p_from..p_to (lines, units not cancelled, revenue in the reporting currency, NULL when a rate is missing, units returned, last day), for oms_bi.top(''product'', ...)';
REVOKE ALL ON FUNCTION oms._bi_product_sales(date, date, int) FROM PUBLIC;
-- (SECURITY DEFINER: it passes the caller's tenant, checked by oms.bi_tenant_id(), to a function
-- that only oms may call; the copies of oms.bi_tenant_schema() pass their own tenant)
CREATE FUNCTION oms_bi.product_sales(from_day date, to_day date)
	RETURNS TABLE (sku text, item_name text, lines bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = oms_bi, pg_catalog
BEGIN ATOMIC
	SELECT * FROM oms._bi_product_sales(from_day, to_day, oms.bi_tenant_id());
END;
COMMENT ON FUNCTION oms_bi.product_sales(date, date) IS 'Sales per SKU over the UTC days from_day..to_day: order lines, units not cancelled, revenue in the reporting currency (NULL when a rate is missing), units returned, last day with an order (the base of top(''product'', ...))';
REVOKE ALL ON FUNCTION oms_bi.product_sales(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.product_sales(date, date) TO oms_reader, oms_admin;

-- The ranking of customers or orders for oms_bi.top, with the rights of oms, for the caller's
-- tenant only: one pass over the period's rows of oms.bi_order_sales (an order is its own group);
-- money in the reporting currency, multiplied by a rate only for the other currencies; the n first
-- taken by a bounded sort before they are numbered. Customers are grouped by sorting (most have
-- one order in a period: a hash table of ~70k numeric sums is slower than a sort of their rows).
CREATE FUNCTION oms_bi.order_ranking(dimension text, from_day date, to_day date, n int, metric text)
	RETURNS TABLE (rank bigint, key text, orders bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms_bi, pg_catalog
	SET work_mem = '64MB'
	SET enable_hashagg = off
	SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.bi_tenant_id();
	v_rc		char(3) := oms.reporting_currency();
BEGIN
	RETURN QUERY
	SELECT pg_catalog.row_number() OVER (ORDER BY t.sort_key DESC NULLS LAST, t.key),
		   t.key, t.orders, t.units, t.revenue, t.returns, t.last_order
	  FROM (SELECT g.*, CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
									WHEN 'orders' THEN g.orders ELSE g.returns END AS sort_key
			  FROM (SELECT b.customer AS key, pg_catalog.count(*) AS orders, pg_catalog.sum(b.units)::bigint AS units,
						   CASE WHEN pg_catalog.count(*) FILTER (WHERE b.currency <> v_rc AND x.rate IS NULL) = 0
								THEN pg_catalog.sum(CASE WHEN b.currency = v_rc THEN b.revenue ELSE b.revenue * x.rate END) END AS revenue,
						   pg_catalog.sum(b.units_returned)::bigint AS returns, pg_catalog.max(b.day) AS last_order
					  FROM oms.bi_order_sales b
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = b.day AND x.from_currency = b.currency AND x.to_currency = v_rc
					 WHERE order_ranking.dimension = 'customer' AND b.tenant_id = v_tenant
					   AND b.day BETWEEN from_day AND to_day AND b.lines <> 0
					 GROUP BY b.customer
					UNION ALL
					SELECT b.order_id::text, 1::bigint, b.units::bigint,
						   CASE WHEN b.currency = v_rc THEN b.revenue ELSE b.revenue * x.rate END, b.units_returned::bigint, b.day
					  FROM oms.bi_order_sales b
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = b.day AND x.from_currency = b.currency AND x.to_currency = v_rc
					 WHERE order_ranking.dimension = 'order' AND b.tenant_id = v_tenant
					   AND b.day BETWEEN from_day AND to_day AND b.lines <> 0) g
			 ORDER BY sort_key DESC NULLS LAST, g.key
			 LIMIT n) t
	 ORDER BY 1;
END
$$;
COMMENT ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) IS 'The ranking behind top(''customer'' | ''order'', ...), without labels: rank, key (customer reference or order id), orders, units not cancelled, revenue in the reporting currency (NULL when a rate is missing), units returned, last day with an order';
REVOKE ALL ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) TO oms_reader, oms_admin;

CREATE FUNCTION oms_bi.top(dimension text, from_day date, to_day date, n int DEFAULT 10, metric text DEFAULT 'revenue')
	RETURNS TABLE (rank bigint, key text, label text, orders bigint, units bigint, revenue numeric, currency text,
				   returns bigint, last_order date)
	LANGUAGE plpgsql STABLE
	SET search_path = oms_bi, pg_catalog
	SET work_mem = '64MB'
AS $$
#variable_conflict use_column
BEGIN
	IF top.dimension IS NULL OR top.dimension NOT IN ('product', 'customer', 'order', 'country', 'brand', 'category', 'seller',
											 'channel', 'day', 'weekday', 'page') THEN
		RAISE EXCEPTION 'invalid dimension "%"', CASE WHEN length(top.dimension) > 100 THEN left(top.dimension, 100) || '...' ELSE top.dimension END
			USING ERRCODE = '22023',
				  HINT = 'Use product, customer, order, country, brand, category, seller, channel, day, weekday or page.';
	END IF;
	IF metric IS NULL OR metric NOT IN ('revenue', 'units', 'orders', 'returns') THEN
		RAISE EXCEPTION 'invalid metric "%"', CASE WHEN length(metric) > 100 THEN left(metric, 100) || '...' ELSE metric END
			USING ERRCODE = '22023', HINT = 'Use revenue, units, orders or returns.';
	END IF;
	IF from_day IS NULL OR to_day IS NULL OR n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'invalid period or count: from % to %, n %', from_day, to_day, n
			USING ERRCODE = '22023', HINT = 'Give both days and n >= 1.';
	END IF;
	IF top.dimension IN ('customer', 'order') THEN
		RETURN QUERY
		-- Ranked from the order summary; the labels (external id, customer name masked for
		-- oms_reader) are looked up for the n winners only.
		SELECT t.rank, t.key,
			   CASE WHEN t.key IS NULL THEN '(none)'
					WHEN top.dimension = 'order' THEN (SELECT o.external_id FROM oms_bi.orders o WHERE o.order_id = t.key::bigint)
					ELSE (SELECT pg_catalog.max(o.customer_name) FROM oms_bi.orders o
						   WHERE o.customer = t.key AND o.placed_at >= (from_day::timestamp AT TIME ZONE 'UTC')
							 AND o.placed_at < ((to_day + 1)::timestamp AT TIME ZONE 'UTC')) END,
			   t.orders, t.units, t.revenue, oms_bi.reporting_currency()::text, t.returns, t.last_order
		  FROM oms_bi.order_ranking(top.dimension, from_day, to_day, n, metric) t
		 ORDER BY t.rank;
	ELSIF top.dimension = 'product' THEN
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY t.sort_key DESC NULLS LAST, t.key),
			   t.key, t.label, t.orders, t.units, t.revenue, oms_bi.reporting_currency()::text, t.returns, t.last_order
		  FROM (SELECT g.*, CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
										WHEN 'orders' THEN g.orders ELSE g.returns END AS sort_key
				  FROM oms_bi.product_sales(from_day, to_day) g(key, label, orders, units, revenue, returns, last_order)
				 ORDER BY sort_key DESC NULLS LAST, g.key
				 LIMIT n) t
		 ORDER BY 1;
	ELSE
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
																  WHEN 'orders' THEN g.orders ELSE g.returns END DESC NULLS LAST,
												  g.key),
			   g.key, coalesce(g.label, '(none)'), g.orders, g.units, g.revenue, oms_bi.reporting_currency()::text, g.returns,
			   g.last_order
		  FROM (SELECT CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD')
									  WHEN 'weekday' THEN EXTRACT(isodow FROM s.day)::text ELSE s.key END AS key,
					   pg_catalog.max(CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD Dy')
									  WHEN 'weekday' THEN pg_catalog.to_char(s.day, 'FMDay') ELSE s.label END) AS label,
					   CASE WHEN top.dimension IN ('product', 'brand', 'category') THEN pg_catalog.sum(s.lines)
							ELSE pg_catalog.sum(s.orders) END::bigint AS orders,
					   pg_catalog.sum(s.units - s.units_cancelled)::bigint AS units,
					   CASE WHEN pg_catalog.bool_and(s.revenue_reporting IS NOT NULL) THEN pg_catalog.sum(s.revenue_reporting) END AS revenue,
					   pg_catalog.sum(s.units_returned)::bigint AS returns, pg_catalog.max(s.day) AS last_order
				  FROM oms_bi.sales_by_dimension s
				 WHERE s.dimension = CASE WHEN top.dimension IN ('day', 'weekday') THEN 'channel' ELSE top.dimension END
				   AND s.day BETWEEN from_day AND to_day
				 GROUP BY 1) g
		 ORDER BY 1
		 LIMIT n;
	END IF;
END
$$;
COMMENT ON FUNCTION oms_bi.top(text, date, date, int, text) IS 'The top-N report of a dimension (product, customer, order, country, brand, category, seller, channel, day, weekday, page) over the UTC days from_day..to_day, ranked by revenue, units, orders or returns; revenue in the reporting currency (NULL when a rate is missing); orders are order lines for product, brand and category';

-- One view per report, over the last 30 days to today, for BI tools that cannot call functions.
CREATE VIEW oms_bi.top_products AS
SELECT t.* FROM oms_bi.top('product', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_products IS 'The top products: units, revenue, returns: top 10 over the 30 days to today (oms_bi.top(''product'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_products.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_products.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_products.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_products.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_products.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_products.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_products.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_products.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_products.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_customers AS
SELECT t.* FROM oms_bi.top('customer', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_customers IS 'The top customers: orders, revenue, last order (names masked for oms_reader): top 10 over the 30 days to today (oms_bi.top(''customer'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_customers.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_customers.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_customers.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_customers.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_customers.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_customers.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_customers.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_customers.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_customers.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_orders AS
SELECT t.* FROM oms_bi.top('order', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_orders IS 'The top orders by revenue: top 10 over the 30 days to today (oms_bi.top(''order'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_orders.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_orders.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_orders.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_orders.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_orders.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_orders.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_orders.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_orders.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_orders.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_countries AS
SELECT t.* FROM oms_bi.top('country', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_countries IS 'The top ship-to countries: top 10 over the 30 days to today (oms_bi.top(''country'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_countries.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_countries.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_countries.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_countries.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_countries.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_countries.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_countries.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_countries.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_countries.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_brands AS
SELECT t.* FROM oms_bi.top('brand', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_brands IS 'The top brands: top 10 over the 30 days to today (oms_bi.top(''brand'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_brands.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_brands.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_brands.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_brands.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_brands.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_brands.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_brands.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_brands.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_brands.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_categories AS
SELECT t.* FROM oms_bi.top('category', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_categories IS 'The top categories: top 10 over the 30 days to today (oms_bi.top(''category'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_categories.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_categories.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_categories.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_categories.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_categories.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_categories.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_categories.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_categories.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_categories.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_sellers AS
SELECT t.* FROM oms_bi.top('seller', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_sellers IS 'The top sellers (order attribute "seller"): top 10 over the 30 days to today (oms_bi.top(''seller'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_sellers.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_sellers.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_sellers.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_sellers.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_sellers.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_sellers.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_sellers.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_sellers.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_sellers.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_channels AS
SELECT t.* FROM oms_bi.top('channel', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_channels IS 'The top channels: top 10 over the 30 days to today (oms_bi.top(''channel'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_channels.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_channels.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_channels.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_channels.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_channels.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_channels.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_channels.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_channels.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_channels.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_days AS
SELECT t.* FROM oms_bi.top('day', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_days IS 'The top days: top 10 over the 30 days to today (oms_bi.top(''day'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_days.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_days.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_days.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_days.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_days.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_days.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_days.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_days.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_days.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_weekdays AS
SELECT t.* FROM oms_bi.top('weekday', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_weekdays IS 'The top weekdays (key: ISO day of week, 1 = Monday): top 10 over the 30 days to today (oms_bi.top(''weekday'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_weekdays.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_weekdays.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_weekdays.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_weekdays.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_weekdays.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_weekdays.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_weekdays.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_weekdays.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_weekdays.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_pages AS
SELECT t.* FROM oms_bi.top('page', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_pages IS 'The top landing or referring pages (order attribute "source_page"): top 10 over the 30 days to today (oms_bi.top(''page'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_pages.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_pages.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_pages.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_pages.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_pages.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_pages.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_pages.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_pages.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_pages.last_order IS 'Last day with an order';

-- ----- across tenants (platform operators)

CREATE VIEW oms_bi.platform_daily AS
SELECT t.code AS tenant, g.day, g.currency::text AS currency, g.orders, g.units, g.revenue, g.perfect_orders, g.orders_returned
  FROM (SELECT b.tenant_id, b.day, b.currency, pg_catalog.count(*) AS orders, pg_catalog.sum(b.units)::bigint AS units,
			   pg_catalog.sum(b.revenue) AS revenue,
			   pg_catalog.count(*) FILTER (WHERE b.lines_incomplete = 0 AND b.late_shipments = 0 AND b.units_returned = 0
												 AND b.returns = 0) AS perfect_orders,
			   pg_catalog.count(*) FILTER (WHERE b.units_returned > 0 OR b.returns > 0) AS orders_returned
		  FROM oms.bi_order_sales b
		 WHERE b.lines <> 0
		 GROUP BY b.tenant_id, b.day, b.currency) g
  JOIN oms.tenants t ON t.id = g.tenant_id;
COMMENT ON VIEW oms_bi.platform_daily IS 'Every tenant''s orders per UTC day of placement and currency (administrators only; on Citus one query over every node): orders, units and revenue not cancelled, perfect orders, orders with a return';
COMMENT ON COLUMN oms_bi.platform_daily.tenant IS 'Tenant code';
COMMENT ON COLUMN oms_bi.platform_daily.day IS 'UTC day of placement';
COMMENT ON COLUMN oms_bi.platform_daily.currency IS 'Order currency';
COMMENT ON COLUMN oms_bi.platform_daily.orders IS 'Orders with lines';
COMMENT ON COLUMN oms_bi.platform_daily.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.platform_daily.revenue IS 'Units not cancelled at their price, order currency';
COMMENT ON COLUMN oms_bi.platform_daily.perfect_orders IS 'Orders complete, on time and without a return';
COMMENT ON COLUMN oms_bi.platform_daily.orders_returned IS 'Orders with a return';

-- ----- a tenant's own copy of oms_bi (README "BI for one tenant: oms.bi_tenant_schema")

-- Every view and function of oms_bi, copied into schema oms_bi_<tenant id> with the tenant written
-- in as a constant instead of read from the setting oms.tenant. For BI tools that cannot set a
-- setting (the schema and its grants are the tenant boundary), and on Citus, where a constant
-- tenant lets every query of a report go to the tenant's node alone (Citus cannot route by a
-- setting, and cannot plan some of the views' queries across all nodes).
CREATE FUNCTION oms.bi_tenant_schema(tenant int, grantee regrole DEFAULT NULL) RETURNS name
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_schema	name;
	v_todo		oid[];
	v_left		oid[];
	v_oid		oid;
	v_name		name;
	v_sql		text;
	v_error		text;
	v_col		record;
BEGIN
	IF tenant IS NULL OR NOT EXISTS (SELECT FROM oms.tenants t WHERE t.id = tenant) THEN
		RAISE EXCEPTION 'unknown tenant id %', coalesce(tenant::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'oms.tenant_id(code) gives a tenant''s id.';
	END IF;
	v_schema := 'oms_bi_' || tenant;
	-- every name qualified in the definitions read below (until the function returns)
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);
	EXECUTE pg_catalog.format('DROP SCHEMA IF EXISTS %I CASCADE', v_schema);
	EXECUTE pg_catalog.format('CREATE SCHEMA %I', v_schema);
	EXECUTE pg_catalog.format('COMMENT ON SCHEMA %I IS %L', v_schema,
							  'oms reporting of tenant ' || tenant || ' alone: a copy of oms_bi made by oms.bi_tenant_schema(' || tenant || ')');
	EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', v_schema);
	-- the views and functions of oms_bi; one that reads another not yet copied waits for a later round
	v_todo := ARRAY(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'oms_bi'::regnamespace AND c.relkind = 'v'
									AND c.relname <> 'platform_daily'	-- every tenant's: not for one
					UNION ALL
					SELECT f.oid FROM pg_catalog.pg_proc f WHERE f.pronamespace = 'oms_bi'::regnamespace
					ORDER BY 1);
	WHILE pg_catalog.cardinality(v_todo) > 0 LOOP
		v_left := '{}';
		FOREACH v_oid IN ARRAY v_todo LOOP
			SELECT c.relname INTO v_name FROM pg_catalog.pg_class c WHERE c.oid = v_oid AND c.relkind = 'v';
			IF FOUND THEN
				v_sql := pg_catalog.format('CREATE VIEW %I.%I AS %s', v_schema, v_name, pg_catalog.pg_get_viewdef(v_oid));
			ELSE
				v_name := NULL;
				v_sql := pg_catalog.pg_get_functiondef(v_oid);
			END IF;
			v_sql := pg_catalog.replace(v_sql, '( SELECT oms.bi_tenant_id() AS bi_tenant_id)', tenant::text);
			v_sql := pg_catalog.replace(v_sql, 'oms.bi_tenant_id()', tenant::text);
			-- every row read is the tenant's: a join or correlation on tenant_id names it too, so that
			-- Citus sends each query to the tenant's node alone
			v_sql := pg_catalog.regexp_replace(v_sql, '\((\w+)\.tenant_id = \w+\.tenant_id\)', '(\1.tenant_id = ' || tenant || ')', 'g');
			v_sql := pg_catalog.regexp_replace(v_sql, '\moms_bi\.', v_schema || '.', 'g');
			v_sql := pg_catalog.replace(v_sql, '''oms_bi''', pg_catalog.quote_literal(v_schema));
			BEGIN
				EXECUTE v_sql;
			EXCEPTION WHEN undefined_table OR undefined_function THEN
				GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
				v_left := v_left || v_oid;
				CONTINUE;
			END;
			IF v_name IS NOT NULL THEN
				EXECUTE pg_catalog.format('COMMENT ON VIEW %I.%I IS %L', v_schema, v_name, pg_catalog.obj_description(v_oid, 'pg_class'));
				FOR v_col IN SELECT a.attname, d.description
							   FROM pg_catalog.pg_attribute a
							   JOIN pg_catalog.pg_description d ON d.objoid = v_oid AND d.classoid = 'pg_catalog.pg_class'::regclass
															   AND d.objsubid = a.attnum
							  WHERE a.attrelid = v_oid AND a.attnum > 0 LOOP
					EXECUTE pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', v_schema, v_name, v_col.attname, v_col.description);
				END LOOP;
			END IF;
		END LOOP;
		IF pg_catalog.cardinality(v_left) = pg_catalog.cardinality(v_todo) THEN
			RAISE EXCEPTION 'cannot copy % objects of oms_bi for tenant %: %', pg_catalog.cardinality(v_left), tenant, v_error
				USING ERRCODE = 'XX000', HINT = 'Report it: every object of oms_bi must be copyable.';
		END IF;
		v_todo := v_left;
	END LOOP;
	EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', v_schema);
	EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', v_schema);
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO oms_admin', v_schema);
	EXECUTE pg_catalog.format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO oms_admin', v_schema);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO oms_admin', v_schema);
	IF grantee IS NOT NULL THEN
		EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %s', v_schema, grantee);
		EXECUTE pg_catalog.format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %s', v_schema, grantee);
		EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %s', v_schema, grantee);
		-- what the views call as the user who reads them
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION oms.reporting_currency(), oms.bi_today(), oms.bi_unmasked(),
			oms.bi_mask_name(text), oms.bi_mask_email(text), oms._clip(text) TO %s', grantee);
	END IF;
	RETURN v_schema;
END
$$;
COMMENT ON FUNCTION oms.bi_tenant_schema(int, regrole) IS 'Copies every view (but platform_daily) and function of oms_bi into schema oms_bi_<tenant id>, for that tenant alone (written in: no setting needed), readable by oms_admin and the given role; replaces an earlier copy; returns the schema''s name. Call it again after ALTER EXTENSION oms UPDATE';
REVOKE ALL ON FUNCTION oms.bi_tenant_schema(int, regrole) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms.bi_tenant_schema(int, regrole) TO oms_admin;

-- ----- privileges: oms_reader and oms_admin read the schema; nothing to PUBLIC.

REVOKE ALL ON ALL TABLES IN SCHEMA oms_bi FROM PUBLIC;
REVOKE ALL ON FUNCTION oms_bi.top(text, date, date, int, text), oms.bi_tenant_id(), oms.bi_unmasked(), oms.bi_mask_name(text),
	oms.bi_mask_email(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA oms_bi TO oms_reader, oms_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA oms_bi TO oms_reader, oms_admin;
REVOKE ALL ON oms_bi.platform_daily FROM oms_reader;	-- every tenant's rows: administrators only
GRANT EXECUTE ON FUNCTION oms_bi.top(text, date, date, int, text) TO oms_reader, oms_admin;
-- What the views call as the user who reads them (no USAGE on schema oms: not callable by name).
GRANT EXECUTE ON FUNCTION oms.bi_tenant_id(), oms.reporting_currency(), oms.bi_today(), oms.bi_unmasked(),
	oms.bi_mask_name(text), oms.bi_mask_email(text), oms._clip(text) TO oms_reader, oms_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON oms.exchange_rates TO oms_admin;
GRANT EXECUTE ON FUNCTION oms.compact_bi_sales(), oms.rebuild_bi_sales() TO oms_admin;
