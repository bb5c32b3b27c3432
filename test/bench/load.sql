-- make bench: the data set (psql script; variables skus, locations, net_skus, net_locations,
-- flash_stock are set by scripts/bench.sh).
--
-- Tenant "default", the shop that takes the orders:
--   locations L1..L<locations> (L1-L4 warehouses, the rest stores that also ship); priority = n,
--     so L1 is preferred;
--   items SKU-1..SKU-<skus>, every one stocked at every location. SKU-k has nothing at the
--     locations before its "home" L<k % 4 + 1>, 10,000,000 units there (never sold out during a
--     run) and 0-199 units at the locations after it. oms.place_order's location choice (the
--     preferred location that covers the line) therefore takes SKU-k at its home, and the
--     PL/pgSQL baseline is told to reserve there too: both lock the same stock rows.
--   FLASH-1: 100,000,000 units at L1 only (the flash-sale throughput run);
--   FLASH-2: <flash_stock> units at L1 only (the sell-out run: exactly that many are served);
--   <history> delivered orders of 3 lines (placed over the last days, nothing reserved).
-- Tenant "bench_net", a network for routing and network-wide ATP:
--   locations N1..N<net_locations> spread over Europe (5% warehouses, the rest stores), items
--   NSKU-1..NSKU-<net_skus>, every one at every location with 0-20 units.
-- Stock rows are inserted directly (reserved 0, which the stock guard allows), without ledger
-- movements: the ledger is not on any path measured here.

\set ON_ERROR_STOP on
SELECT pg_catalog.setseed(0.42);

SET oms.tenant = 'default';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, country, city, latitude, longitude, can_ship, can_pickup, priority)
SELECT 'L' || n, CASE WHEN n <= 4 THEN 'warehouse' ELSE 'store' END, 'Location ' || n, 'IT', 'City ' || n,
	   38 + 8 * random(), 8 + 8 * random(), true, n > 4, n
  FROM generate_series(1, :locations) n;
INSERT INTO oms.items (sku, name, weight, unit_cost)
SELECT 'SKU-' || k, 'Item ' || k, round((0.1 + 2 * random())::numeric, 2), round((1 + 50 * random())::numeric, 2)
  FROM generate_series(1, :skus) k;
INSERT INTO oms.items (sku, name, weight, unit_cost) VALUES
	('FLASH-1', 'Flash sale item, plenty', 0.5, 10), ('FLASH-2', 'Flash sale item, limited', 0.5, 10);

INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id,
	   CASE WHEN l.priority < k.n % 4 + 1 THEN 0
			WHEN l.priority = k.n % 4 + 1 THEN 10000000
			ELSE (random() * 199)::int END
  FROM oms.items i
 CROSS JOIN LATERAL (SELECT substr(i.sku, 5)::int AS n) k
 CROSS JOIN oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku LIKE 'SKU-%'
   AND l.tenant_id = oms.current_tenant_id()
 ORDER BY i.id, l.id;
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, CASE i.sku WHEN 'FLASH-1' THEN 100000000 ELSE :flash_stock END
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND i.sku IN ('FLASH-1', 'FLASH-2')
   AND l.tenant_id = oms.current_tenant_id() AND l.code = 'L1';

-- A history of <history> delivered orders of 3 lines, as a shop has: without it the orders tables
-- start empty, the plans cached in the first seconds of a run (the idempotency look-up, the
-- foreign-key checks) are sequential scans of a table that then grows under them, and the first
-- runs measure that instead of oms. The state trigger records their history rows as it would.
INSERT INTO oms.orders (channel_id, external_id, state, customer_ref, ship_to, ship_country, ship_city,
						ship_postal_code, currency, subtotal, total, placed_at)
SELECT c.id, 'hist-' || n, 'delivered', 'C' || (n % 5000), '{"country": "IT", "city": "Milano", "postal_code": "20121"}',
	   'IT', 'Milano', '20121', 'EUR', 59.70, 59.70, pg_catalog.now() - (n || ' minutes')::interval
  FROM generate_series(1, :history) n, oms.channels c
 WHERE c.tenant_id = oms.current_tenant_id() AND c.code = 'web';
INSERT INTO oms.order_lines (order_id, line_no, item_id, qty, unit_price, state, location_id,
							 qty_shipped, qty_delivered)
SELECT o.id, ln, i.id, 1, 19.90, 'delivered', l.id, 1, 1
  FROM oms.orders o
 CROSS JOIN generate_series(1, 3) ln
 CROSS JOIN LATERAL (SELECT 1 + (abs(hashint8(o.id * 3 + ln)) % :skus) AS k) pick
  JOIN oms.items i ON i.tenant_id = o.tenant_id AND i.sku = 'SKU-' || pick.k
  JOIN oms.locations l ON l.tenant_id = o.tenant_id AND l.code = 'L' || (pick.k % 4 + 1)
 WHERE o.tenant_id = oms.current_tenant_id() AND o.external_id LIKE 'hist-%'
 ORDER BY o.id, ln;

SELECT oms.create_tenant('bench_net', 'Routing network') > 0 AS net_tenant;
SET oms.tenant = 'bench_net';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, country, latitude, longitude, can_ship, can_pickup, priority)
SELECT 'N' || n, CASE WHEN n % 20 = 1 THEN 'warehouse' ELSE 'store' END, 'Network location ' || n,
	   (ARRAY['IT', 'FR', 'DE', 'ES', 'RO', 'PL', 'NL', 'AT'])[1 + n % 8],
	   36 + 24 * random(), -9 + 37 * random(), true, n % 20 <> 1,
	   CASE WHEN n % 20 = 1 THEN 1 ELSE 10 END
  FROM generate_series(1, :net_locations) n;
INSERT INTO oms.items (sku, name, weight, unit_cost)
SELECT 'NSKU-' || k, 'Network item ' || k, round((0.2 + 5 * random())::numeric, 2), 10
  FROM generate_series(1, :net_skus) k;
INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, (random() * 20)::int
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = oms.current_tenant_id()
 ORDER BY i.id, l.id;

RESET oms.tenant;
