-- The data set of the planning benchmark (scripts/bench.sh, workload "plan"; psql variables
-- plan_skus, plan_locations, plan_days, plan_today set by the script).
--
-- Tenant "plan": locations P1..P<plan_locations> (P1-P5 warehouses, the rest stores), items
-- PSKU-1..PSKU-<plan_skus>, every item stocked at every location (plan_skus x plan_locations
-- SKU-locations), a default policy at every location (supplier ACME, lead
-- time 5 days, service level 0.95, review period 2 days, pack size 6), and <plan_days> days of
-- compacted demand history before <plan_today> for every SKU-location: each pair has a rate of
-- 0-6 units a day (from its ids) and a day's demand is a uniform draw of 0 to twice the rate,
-- so most days of most pairs have a row (a day drawn 0 writes none). On hand is 6 to 24 days of
-- the pair's rate, around its reorder point (about 10 days): some pairs are short, many have
-- surplus, so a plan proposes transfers between locations for about 15% of the pairs. The history is written
-- straight into oms.demand_history (the summary that compaction produces; its triggers, which
-- would mark every pair's statistics stale, are off meanwhile), then
-- oms.refresh_demand_stats(true) builds the per-pair statistics from it.

\set ON_ERROR_STOP on
SELECT pg_catalog.setseed(0.17);
SELECT oms.create_tenant('plan', 'Planning benchmark') > 0 AS plan_tenant;
SET oms.tenant = 'plan';
SELECT pg_catalog.set_config('oms.today', :'plan_today', false);
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, country, city, can_ship, can_pickup, priority)
SELECT 'P' || n, CASE WHEN n <= 5 THEN 'warehouse' ELSE 'store' END, 'Planning location ' || n, 'IT', 'City ' || n,
	   true, n > 5, n
  FROM generate_series(1, :plan_locations) n;
INSERT INTO oms.items (sku, name, weight, unit_cost)
SELECT 'PSKU-' || k, 'Planned item ' || k, 1, round((1 + 20 * random())::numeric, 2)
  FROM generate_series(1, :plan_skus) k;
INSERT INTO oms.suppliers (code, name) VALUES ('ACME', 'Acme supplies');
SELECT count(oms.set_policy(NULL, l.code, '{"supplier": "ACME", "lead_time_days": 5, "review_period_days": 2,
											 "service_level": 0.95, "pack_size": 6}'))
  FROM oms.locations l WHERE l.tenant_id = oms.current_tenant_id();

INSERT INTO oms.stock (item_id, location_id, on_hand)
SELECT i.id, l.id, round(((i.id + l.id) % 7) * (6 + random() * 18))
  FROM oms.items i, oms.locations l
 WHERE i.tenant_id = oms.current_tenant_id() AND l.tenant_id = oms.current_tenant_id()
 ORDER BY i.id, l.id;

ALTER TABLE oms.demand_history DISABLE TRIGGER demand_history_inserted;
INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
SELECT s.tenant_id, s.item_id, s.location_id, c.id, g.day, q.qty, 0, 0, q.qty
  FROM oms.stock s
  JOIN oms.channels c ON c.tenant_id = s.tenant_id AND c.code = 'web'
 CROSS JOIN generate_series(:'plan_today'::date - :plan_days, :'plan_today'::date - 1, '1 day') g(day)
 CROSS JOIN LATERAL (SELECT (random() * 2 * ((s.item_id + s.location_id) % 7))::int AS qty) q
 WHERE s.tenant_id = oms.current_tenant_id() AND q.qty > 0;
ALTER TABLE oms.demand_history ENABLE TRIGGER demand_history_inserted;
SELECT oms.refresh_demand_stats(true) AS statistics_rows;
