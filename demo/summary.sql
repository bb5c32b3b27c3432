-- demo/summary.sql: what the demo's day left in the database, in a few tables.
-- Runs after demo/orders.sql and demo/walk/; can also be run alone against the demo database.

\echo
\echo '5. Summary'
\echo
\echo '5.1 Orders by channel and state'
SELECT c.code AS channel, o.state, count(*) AS orders, sum(l.lines) AS lines, sum(l.units) AS units,
	   (SELECT string_agg(v.currency || ' ' || v.total, ', ' ORDER BY v.currency)
		  FROM (SELECT x.currency, sum(x.total) AS total FROM oms.orders x
				 WHERE (x.tenant_id, x.channel_id) = (c.tenant_id, c.id) AND x.state = o.state
				 GROUP BY x.currency) v) AS value
  FROM oms.orders o
  JOIN oms.channels c ON (c.tenant_id, c.id) = (o.tenant_id, o.channel_id)
  JOIN LATERAL (SELECT count(*) AS lines, sum(x.qty) AS units FROM oms.order_lines x
				 WHERE (x.tenant_id, x.order_id) = (o.tenant_id, o.id)) l ON true
 GROUP BY c.tenant_id, c.id, c.code, o.state
 ORDER BY c.id, o.state;

\echo
\echo '5.2 Units reserved, by kind of location (order lines and live cart holds)'
SELECT l.kind AS location_kind,
	   coalesce(sum(r.qty) FILTER (WHERE r.order_id IS NOT NULL), 0) AS "for orders",
	   coalesce(sum(r.qty) FILTER (WHERE r.cart IS NOT NULL), 0) AS "for carts",
	   (SELECT sum(s.reserved) FROM oms.stock s JOIN oms.locations k ON (k.tenant_id, k.id) = (s.tenant_id, s.location_id)
		 WHERE k.kind = l.kind) AS "stock.reserved",
	   (SELECT sum(s.on_hand) FROM oms.stock s JOIN oms.locations k ON (k.tenant_id, k.id) = (s.tenant_id, s.location_id)
		 WHERE k.kind = l.kind) AS "on hand"
  FROM oms.locations l
  LEFT JOIN oms.reservations r ON (r.tenant_id, r.location_id) = (l.tenant_id, l.id)
 GROUP BY l.kind
 ORDER BY min(l.priority);
\echo '    Invariant check (stock.reserved = sum of reservations, 0 <= reserved <= on hand):'
SELECT count(*) AS "stock rows in breach", (SELECT count(*) FROM oms.stock) AS "stock rows checked"
  FROM oms.check_stock_invariants();

\echo
\echo '5.3 Top 5 SKUs by units ordered (cancelled orders left out)'
SELECT i.sku, i.name, i.category, sum(l.qty) AS units, count(DISTINCT l.order_id) AS orders,
	   oms.atp(i.sku) AS "ATP now"
  FROM oms.order_lines l
  JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
 WHERE l.state <> 'cancelled'
 GROUP BY i.tenant_id, i.id
 ORDER BY units DESC, i.sku
 LIMIT 5;

\echo
\echo '5.4 The Milano Brera store (STORE-MI-01) before and after the day: the SKUs that moved'
SELECT i.sku, i.category, b.on_hand AS "on hand", b.reserved AS "reserved before",
	   s.reserved AS "reserved after",
	   greatest(b.on_hand - b.reserved - b.safety_stock, 0) AS "ATP before",
	   oms.atp(i.sku, 'STORE-MI-01') AS "ATP after"
  FROM demo.store_before b
  JOIN oms.items i ON i.sku = b.sku
  JOIN oms.locations l ON l.code = 'STORE-MI-01'
  JOIN oms.stock s ON (s.tenant_id, s.item_id, s.location_id) = (i.tenant_id, i.id, l.id)
 WHERE (s.on_hand, s.reserved) IS DISTINCT FROM (b.on_hand, b.reserved)
 ORDER BY i.sku;

\echo
\echo '5.5 The history of Giulia''s order (walked through in 4), as oms.order_history keeps it'
SELECT h.changed_at::time(0) AS "at", coalesce('line ' || h.line_no, 'order') AS what,
	   coalesce(h.from_state, '') AS "from", h.to_state AS "to", h.changed_by AS "by",
	   coalesce(h.reason, '') AS reason
  FROM oms.order_history h
 WHERE h.order_id = demo.walk_order()
 ORDER BY h.id;
