-- test/citus/checks.sql: functions of the Citus test (test/citus/test-citus.sh), in schema
-- citus_test of the coordinator. Not part of oms.

CREATE SCHEMA citus_test;

-- The node of a shard (its one placement).
CREATE FUNCTION citus_test.node_of_shard(p_shard bigint) RETURNS text
	LANGUAGE sql STABLE
	RETURN (SELECT n.nodename || ':' || n.nodeport FROM pg_dist_placement p
			  JOIN pg_dist_node n ON n.groupid = p.groupid WHERE p.shardid = p_shard);

-- Where each tenant's rows of each distributed table of oms are: one row per table, tenant and
-- node that holds some of them (read from the shards themselves).
CREATE FUNCTION citus_test.tenant_nodes()
	RETURNS TABLE (table_name text, tenant_id int, node text)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_table	regclass;
BEGIN
	FOR v_table IN
		SELECT p.logicalrelid FROM pg_dist_partition p
		  JOIN pg_class c ON c.oid = p.logicalrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND p.partmethod = 'h'
		 ORDER BY 1
	LOOP
		RETURN QUERY
		SELECT c.relname::text, t::int, citus_test.node_of_shard(r.shardid)
		  FROM run_command_on_shards(v_table,
				 $q$SELECT coalesce(string_agg(DISTINCT tenant_id::text, ','), '') FROM %s$q$) r
		  JOIN pg_class c ON c.oid = v_table
		 CROSS JOIN LATERAL unnest(string_to_array(r.result, ',')) t
		 WHERE r.success AND t <> '';
	END LOOP;
END
$$;

-- The node that holds a tenant's shard group.
CREATE FUNCTION citus_test.node_of(p_tenant int) RETURNS text
	LANGUAGE sql STABLE
	RETURN citus_test.node_of_shard(get_shard_id_for_distribution_column('oms.orders', p_tenant));

-- The BI summaries kept by the triggers on the shards against a recomputation from the tables,
-- per tenant: sales (daily summary plus deltas), orders (oms.bi_order_sales) and shipments
-- (oms.bi_shipments), and demand history (oms.demand_history plus its deltas). One row per tenant
-- and summary with its count of differing rows.
CREATE FUNCTION citus_test.bi_mismatches()
	RETURNS TABLE (tenant_id int, summary text, rows_differing bigint)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_t	int;
BEGIN
	FOR v_t IN SELECT t.id FROM oms.tenants t WHERE t.code LIKE 'shop-%' ORDER BY 1 LOOP
		RETURN QUERY
		WITH raw AS (
			SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, l.location_id, l.item_id, o.currency,
				   o.ship_country AS country, o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
				   count(*) FILTER (WHERE l.line_no = 1) AS orders, count(*) AS lines,
				   count(*) FILTER (WHERE h.order_id IS NOT NULL) AS lines_backordered,
				   sum(l.qty) AS units, sum(l.qty_cancelled) AS units_cancelled, sum(l.qty_shipped) AS units_shipped,
				   sum(l.qty_returned) AS units_returned, sum(l.qty * l.unit_price) AS gross,
				   sum(l.qty_cancelled * l.unit_price) AS cancelled_value, sum(l.qty_returned * l.unit_price) AS returned_value
			  FROM oms.orders o
			  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
			  LEFT JOIN (SELECT DISTINCT x.tenant_id, x.order_id, x.line_no FROM oms.order_history x
						  WHERE x.tenant_id = v_t AND x.from_state IS NULL AND x.to_state = 'backordered') h
					 ON h.tenant_id = l.tenant_id AND h.order_id = l.order_id AND h.line_no = l.line_no
			 WHERE o.tenant_id = v_t AND l.tenant_id = v_t
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
		), kept AS (
			SELECT u.day, u.channel_id, u.location_id, u.item_id, u.currency, u.country, u.seller, u.page,
				   sum(u.orders) AS orders, sum(u.lines) AS lines, sum(u.lines_backordered) AS lines_backordered,
				   sum(u.units) AS units, sum(u.units_cancelled) AS units_cancelled, sum(u.units_shipped) AS units_shipped,
				   sum(u.units_returned) AS units_returned, sum(u.gross) AS gross, sum(u.cancelled_value) AS cancelled_value,
				   sum(u.returned_value) AS returned_value
			  FROM (SELECT * FROM oms.bi_sales_daily d WHERE d.tenant_id = v_t
					UNION ALL SELECT * FROM oms.bi_sales_deltas d WHERE d.tenant_id = v_t) u
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
			HAVING sum(u.lines) <> 0 OR sum(u.orders) <> 0 OR sum(u.units) <> 0 OR sum(u.gross) <> 0
				OR sum(u.lines_backordered) <> 0
		)
		SELECT v_t, 'sales', count(*)
		  FROM ((SELECT * FROM raw EXCEPT SELECT * FROM kept) UNION ALL (SELECT * FROM kept EXCEPT SELECT * FROM raw)) x;

		RETURN QUERY
		WITH raw AS (
			SELECT o.id AS order_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.customer_ref AS customer,
				   o.currency, count(*)::int AS lines, sum(l.qty - l.qty_cancelled)::int AS units,
				   sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, sum(l.qty_returned)::int AS units_returned,
				   (count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty))::int AS lines_incomplete
			  FROM oms.orders o
			  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
			 WHERE o.tenant_id = v_t AND l.tenant_id = v_t
			 GROUP BY o.tenant_id, o.id
		), late AS (
			SELECT s.order_id, count(*) FILTER (WHERE s.shipped_at IS NOT NULL
												 AND (s.shipped_at AT TIME ZONE 'UTC')::date > p.promised)::int AS late
			  FROM oms.shipments s
			  JOIN (SELECT x.shipment_id, min(l.promised_date) AS promised
					  FROM oms.shipment_lines x
					  JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
					 WHERE x.tenant_id = v_t AND l.tenant_id = v_t
					 GROUP BY 1) p ON p.shipment_id = s.id
			 WHERE s.tenant_id = v_t
			 GROUP BY 1
		), rets AS (
			SELECT r.order_id, count(*)::int AS returns FROM oms.returns r WHERE r.tenant_id = v_t GROUP BY 1
		), direct AS (
			SELECT raw.*, coalesce(late.late, 0) AS late_shipments, coalesce(rets.returns, 0) AS returns
			  FROM raw LEFT JOIN late USING (order_id) LEFT JOIN rets USING (order_id)
		), kept AS (
			SELECT b.order_id, b.day, b.channel_id, b.customer, b.currency, b.lines, b.units, b.revenue, b.units_returned,
				   b.lines_incomplete, b.late_shipments, b.returns
			  FROM oms.bi_order_sales b WHERE b.tenant_id = v_t AND b.lines <> 0
		)
		SELECT v_t, 'orders', count(*)
		  FROM ((SELECT * FROM direct EXCEPT SELECT * FROM kept) UNION ALL (SELECT * FROM kept EXCEPT SELECT * FROM direct)) x;

		RETURN QUERY
		WITH direct AS (
			SELECT s.id AS shipment_id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, s.location_id
			  FROM oms.shipments s
			  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
			 WHERE s.tenant_id = v_t AND o.tenant_id = v_t AND s.shipped_at IS NOT NULL
		), kept AS (
			SELECT f.shipment_id, f.order_id, f.day, f.channel_id, f.location_id FROM oms.bi_shipments f WHERE f.tenant_id = v_t
		)
		SELECT v_t, 'shipments', count(*)
		  FROM ((SELECT * FROM direct EXCEPT SELECT * FROM kept) UNION ALL (SELECT * FROM kept EXCEPT SELECT * FROM direct)) x;

		RETURN QUERY
		WITH direct AS (
			SELECT l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day,
				   sum(l.qty) AS ordered, sum(l.qty_cancelled) AS cancelled, sum(l.qty_returned) AS returned, count(*) AS lines
			  FROM oms.orders o
			  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
			 WHERE o.tenant_id = v_t AND l.tenant_id = v_t
			 GROUP BY 1, 2, 3, 4
		), kept AS (
			SELECT u.item_id, u.location_id, u.channel_id, u.day, sum(u.ordered) AS ordered, sum(u.cancelled) AS cancelled,
				   sum(u.returned) AS returned, sum(u.lines) AS lines
			  FROM (SELECT h.item_id, h.location_id, h.channel_id, h.day, h.ordered, h.cancelled, h.returned, h.lines
					  FROM oms.demand_history h WHERE h.tenant_id = v_t
					UNION ALL
					SELECT d.item_id, d.location_id, d.channel_id, d.day, d.ordered, d.cancelled, d.returned, d.lines
					  FROM oms.demand_deltas d WHERE d.tenant_id = v_t) u
			 GROUP BY 1, 2, 3, 4
			HAVING sum(u.lines) <> 0 OR sum(u.ordered) <> 0 OR sum(u.cancelled) <> 0 OR sum(u.returned) <> 0
		)
		SELECT v_t, 'demand', count(*)
		  FROM ((SELECT * FROM direct EXCEPT SELECT * FROM kept) UNION ALL (SELECT * FROM kept EXCEPT SELECT * FROM direct)) x;
	END LOOP;
END
$$;
