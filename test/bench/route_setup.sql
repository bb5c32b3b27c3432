-- make bench: what oms.route and oms.promise need beyond load.sql (carrier services of the
-- bench_net tenant). Run only when oms.route or oms.promise exists; if it fails (the routing
-- schema changed), bench.sh skips the routing runs with a note instead of failing.

\set ON_ERROR_STOP on
SET oms.tenant = 'bench_net';
INSERT INTO oms.carrier_services (carrier, service, mode, base_cost, cost_per_kg, cost_per_km, base_days, km_per_day,
								  co2_g_per_km, co2_g_per_kg_km) VALUES
	('post', 'standard', 'standard', 4, 0.5, 0.002, 1, 300, 1, 0.1),
	('post', 'economy', 'economy', 3, 0.4, 0.001, 3, 250, 0.8, 0.08),
	('fast', 'express', 'express', 9, 1, 0.004, 1, 1000, 3, 0.2);
RESET oms.tenant;
