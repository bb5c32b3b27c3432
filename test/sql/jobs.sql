-- Scheduled jobs: oms.run_job records every run in oms.job_runs, commits replenishment batch by
-- batch with its progress, refuses unknown jobs; oms.schedule needs pg_cron (this database does not
-- have the extension: the TAP test 030_cron_jobs runs a job under pg_cron).
SELECT oms.create_tenant('t_jobs') > 0 AS created;
SET oms.tenant = 't_jobs';
SET oms.today = '2024-04-01';
INSERT INTO oms.locations (code, kind, name) VALUES ('WH-1', 'warehouse', 'Warehouse 1');
INSERT INTO oms.items (sku, name) VALUES ('J-1', 'Job item 1'), ('J-2', 'Job item 2'), ('J-3', 'Job item 3');
INSERT INTO oms.suppliers (code, name) VALUES ('SUP', 'Supplier');
SELECT oms.set_stock('J-1', 'WH-1', 0, 'count'), oms.set_stock('J-2', 'WH-1', 30, 'count'),
	   oms.set_stock('J-3', 'WH-1', 2, 'count');
SELECT oms.set_policy(NULL, 'WH-1', '{"method": "min_max", "min": 5, "max": 20, "supplier": "SUP"}') IS NOT NULL AS set;

-- Replenishment in batches of 2 item ids: 3 items make 2 batches; J-1 (0 on hand: 20) and J-3
-- (2: 18) are ordered, J-2 (30 > min) is not. One purchase order per batch: 2 lines in all.
CALL oms.run_job('replenishment', batch_items => 2);
SELECT job, status, rows_touched, progress_done, progress_total, error, finished_at >= started_at AS finished
  FROM oms.job_runs WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
SELECT i.sku, pl.qty FROM oms.purchase_order_lines pl JOIN oms.items i ON i.tenant_id = pl.tenant_id AND i.id = pl.item_id
 WHERE pl.tenant_id = oms.current_tenant_id() ORDER BY i.sku;
-- Nothing is running now.
SELECT count(*) AS running FROM oms.job_progress WHERE tenant = 't_jobs';

-- The other jobs, with the tenant named in the call (as pg_cron calls them; the call sets
-- oms.tenant for the session). Alerts: J-1 has nothing available (stock_out), J-3 has 2, at or
-- below min 5 (low_stock), J-2 has 30 on hand, above max 20 (overstock): 3 opened. No
-- subscriptions, no demand deltas, no BI sales deltas: 0 rows each.
RESET oms.tenant;
CALL oms.run_job('alerts', 't_jobs');
CALL oms.run_job('subscriptions', 't_jobs');
CALL oms.run_job('demand_history', 't_jobs');
CALL oms.run_job('bi_summaries', 't_jobs');
SELECT job, status, rows_touched, progress_done, progress_total FROM oms.job_runs
 WHERE tenant_id = oms.current_tenant_id() ORDER BY id;
SELECT kind, subject FROM oms.open_alerts ORDER BY subject;

-- A run while another holds the job is in iso_replenishment_runs.

-- Bad input.
\set VERBOSITY terse
CALL oms.run_job('reindex');
CALL oms.run_job('alerts', batch_items => 0);
SELECT oms.schedule('backup', '* * * * *');
SELECT oms.schedule('alerts', '*/5 * * * *');
SELECT oms.unschedule('alerts');
\set VERBOSITY default
SELECT count(*) AS runs FROM oms.job_runs WHERE tenant_id = oms.current_tenant_id();

-- A hostile search_path cannot reach into run_job: the procedure (which cannot pin search_path,
-- as it commits) makes only schema-qualified calls with arguments of their exact types, and
-- everything else runs in functions that pin it. Operators and functions planted in a schema
-- put before pg_catalog are never called.
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.trap_log (what text);
CREATE FUNCTION regress_evil.trap_int(int, int) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO regress_evil.trap_log VALUES ('int <= int'); RETURN $1 OPERATOR(pg_catalog.<=) $2; END$$;
CREATE OPERATOR regress_evil.<= (LEFTARG = int, RIGHTARG = int, FUNCTION = regress_evil.trap_int);
CREATE FUNCTION regress_evil.trap_text(text, text) RETURNS text LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO regress_evil.trap_log VALUES ('text || text'); RETURN $1 OPERATOR(pg_catalog.||) $2; END$$;
CREATE OPERATOR regress_evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.trap_text);
CREATE FUNCTION regress_evil.hashtext(text) RETURNS int LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO regress_evil.trap_log VALUES ('hashtext'); RETURN 0; END$$;
SET search_path = regress_evil, pg_catalog;
CALL oms.run_job('replenishment', 't_jobs', 2);
CALL oms.run_job('alerts', 't_jobs');
RESET search_path;
SELECT count(*) AS traps_sprung FROM regress_evil.trap_log;
SELECT job, status FROM oms.job_runs WHERE tenant_id = oms.current_tenant_id() ORDER BY id DESC LIMIT 2;
DROP SCHEMA regress_evil CASCADE;

-- oms.job_batch_pause: a pause between committed batches (before the next takes any lock). Three
-- batches of one item id: two pauses of 100 ms, so the run takes at least 200 ms.
SET oms.job_batch_pause = 100;
CALL oms.run_job('replenishment', 't_jobs', 1);
SELECT status, progress_done, progress_total, finished_at - started_at >= interval '200 ms' AS paused
  FROM oms.job_runs WHERE tenant_id = oms.current_tenant_id() ORDER BY id DESC LIMIT 1;
RESET oms.job_batch_pause;
\set VERBOSITY terse
SET oms.job_batch_pause = -1;
SET oms.job_batch_pause = '1h';
\set VERBOSITY default
