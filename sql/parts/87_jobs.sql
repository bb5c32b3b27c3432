-- Scheduled jobs: one entry point, oms.run_job(job, tenant), that pg_cron calls, a record of every
-- run in oms.job_runs, and oms.schedule / oms.unschedule as thin wrappers over cron.schedule.
--
-- Jobs (per tenant):
--	replenishment	oms._run_replenishment over batches of batch_items item ids (default 1000), committing after each batch; rows = lines and safety stocks written
--	alerts			oms.check_alerts(); rows = alerts opened + refreshed + resolved
--	subscriptions	oms.run_subscriptions(); rows = periods handled (placed or skipped)
--	demand_history	oms.compact_demand_history(); rows = deltas folded
-- (Purging events is the background worker's, not a cron job.)
--
-- Overlap: a run takes the session advisory lock (hashtext('oms.' || job), tenant id); a second
-- run of the same job and tenant finds it taken, records a run with status 'skipped' and returns
-- at once with a notice. oms.run_replenishment() and oms.check_alerts() take the same key, so
-- a run by hand and a scheduled one do not overlap either.
--
-- Progress: oms.job_runs is written and committed as the run goes (status 'running', then
-- progress_done of progress_total batches after each committed batch), so other sessions see it
-- in oms.job_progress while the run works; no shared memory is needed, and a run killed midway
-- stays 'running' with its last progress until the next run of the job marks it 'failed'.

CREATE TABLE oms.job_runs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		int NOT NULL REFERENCES oms.tenants,
	job				text NOT NULL CHECK (job IN ('replenishment', 'alerts', 'subscriptions', 'demand_history', 'bi_summaries')),
	started_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at		timestamptz,
	status			text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
	rows_touched	bigint NOT NULL DEFAULT 0,
	progress_done	bigint NOT NULL DEFAULT 0,
	progress_total	bigint,
	error			text,
	backend_pid		int NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
	error_code		text,
	batch_items		int,
	next_item		int,
	last_item		int,
	run_day			date
);
COMMENT ON COLUMN oms.job_runs.error_code IS 'SQLSTATE of the error of a failed run';
COMMENT ON COLUMN oms.job_runs.batch_items IS 'The run''s cursor: item ids per batch (replenishment; 1 for the other jobs), next_item the first id of the next batch, last_item the last id to plan, run_day the day it plans for';
CREATE INDEX job_runs_job_idx ON oms.job_runs (tenant_id, job, started_at);
COMMENT ON TABLE oms.job_runs IS 'Every run of a scheduled job (oms.run_job): job, tenant, start and end, status (running, succeeded, failed, skipped when another run held the job), rows touched, progress in batches and the error of a failed run';

CREATE FUNCTION oms._check_job(p_job text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_job IS NULL OR p_job NOT IN ('replenishment', 'alerts', 'subscriptions', 'demand_history', 'bi_summaries') THEN
		RAISE EXCEPTION 'unknown job "%"', coalesce(p_job, 'NULL')
			USING ERRCODE = '22023',
				  HINT = 'The jobs are replenishment, alerts, subscriptions, demand_history and bi_summaries.';
	END IF;
	RETURN p_job;
END
$$;
COMMENT ON FUNCTION oms._check_job(text) IS 'Internal: the job name when it is one of replenishment, alerts, subscriptions, demand_history, bi_summaries; 22023 otherwise';

-- One step of a job: a batch of items for replenishment, the whole job for the others. Returns the
-- rows it touched.
CREATE FUNCTION oms._job_step(p_job text, p_tenant int, p_today date, p_item_from int, p_item_to int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_rows	bigint;
BEGIN
	CASE p_job
	WHEN 'replenishment' THEN
		SELECT coalesce(sum(r.lines), 0) INTO v_rows FROM oms._run_replenishment(p_tenant, p_today, p_item_from, p_item_to) r;
	WHEN 'alerts' THEN
		SELECT a.opened + a.still_open + a.resolved INTO v_rows FROM oms.check_alerts() a;
	WHEN 'subscriptions' THEN
		SELECT count(*) INTO v_rows FROM oms.run_subscriptions(p_today);
	WHEN 'demand_history' THEN
		v_rows := oms.compact_demand_history();
	WHEN 'bi_summaries' THEN
		v_rows := oms.compact_bi_sales();	-- 95_bi_summaries.sql
	END CASE;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms._job_step(text, int, date, int, int) IS 'Internal: one step of a scheduled job for a tenant (a batch of item ids for replenishment, the whole job otherwise); returns the rows it touched';

-- A run is three kinds of calls, each a function with a pinned search_path, that the procedure
-- oms.run_job strings together with a COMMIT after each: _job_begin (checks, the advisory lock,
-- the run's row with its cursor), _job_next (one batch; false when there is no more or the batch
-- failed, which it records) and _job_end (closes the run, releases the lock, raises the error of a
-- failed run). The procedure itself cannot pin search_path (a procedure with a SET clause cannot
-- COMMIT), so its body holds nothing but schema-qualified calls with arguments of their exact
-- types: no operator, cast or unqualified name that a caller's search_path could redirect.
CREATE FUNCTION oms._job_begin(p_job text, p_tenant text, p_batch_items int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(p_job);
	v_tenant	int;
	v_from		int := 0;
	v_max		int := 0;
	v_batch		int := p_batch_items;
	v_run		bigint;
BEGIN
	IF p_batch_items IS NULL OR p_batch_items < 1 THEN
		RAISE EXCEPTION 'batch_items must be at least 1, got %', coalesce(p_batch_items::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'A replenishment run commits after every batch of this many item ids.';
	END IF;
	IF p_tenant IS NOT NULL THEN
		PERFORM set_config('oms.tenant', p_tenant, false);
	END IF;
	v_tenant := oms.current_tenant_id();

	IF NOT pg_try_advisory_lock(hashtext('oms.' || v_job), v_tenant) THEN
		INSERT INTO oms.job_runs (tenant_id, job, status, finished_at, error)
		VALUES (v_tenant, v_job, 'skipped', clock_timestamp(), 'another run of this job was in progress');
		RAISE NOTICE 'job "%" of tenant "%" is already running in another session; this run does nothing',
			v_job, current_setting('oms.tenant');
		RETURN NULL;
	END IF;

	-- Runs left 'running' by a backend that is gone are closed as failed.
	UPDATE oms.job_runs r SET status = 'failed', finished_at = clock_timestamp(),
							  error = 'the run ended without finishing (server restart or backend terminated)'
	 WHERE r.tenant_id = v_tenant AND r.job = v_job AND r.status = 'running';
	IF v_job = 'replenishment' THEN
		-- The demand statistics in today's windows before the batches read them.
		PERFORM oms.refresh_demand_stats();
		SELECT min(i.id), max(i.id) INTO v_from, v_max FROM oms.items i WHERE i.tenant_id = v_tenant;
	ELSE
		v_batch := 1;
	END IF;
	INSERT INTO oms.job_runs (tenant_id, job, status, progress_total, batch_items, next_item, last_item, run_day)
	VALUES (v_tenant, v_job, 'running', coalesce(ceil((v_max - v_from + 1)::numeric / v_batch), 0),
			v_batch, v_from, v_max, oms.today())
	RETURNING id INTO v_run;
	RETURN v_run;
END
$$;
COMMENT ON FUNCTION oms._job_begin(text, text, int) IS 'Internal (oms.run_job): checks the job, takes its advisory lock for the tenant (or records a skipped run and returns NULL), closes runs left running, and records the new run with its cursor; returns its id';

CREATE FUNCTION oms._job_next(p_run bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		oms.job_runs;
	v_to	int;
	v_rows	bigint;
	v_state	text;
	v_msg	text;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.status = 'running' AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not running in this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.next_item IS NULL OR r.next_item > r.last_item THEN
		RETURN false;
	END IF;
	-- The pause between batches (oms.job_batch_pause), before this batch takes any lock.
	IF r.progress_done > 0 AND current_setting('oms.job_batch_pause') NOT IN ('0', '0ms') THEN
		PERFORM pg_sleep_for(current_setting('oms.job_batch_pause')::interval);
	END IF;
	v_to := int4(LEAST(r.next_item::bigint + r.batch_items - 1, r.last_item));
	BEGIN
		v_rows := oms._job_step(r.job, r.tenant_id, r.run_day, r.next_item, v_to);
	EXCEPTION WHEN OTHERS THEN
		-- The batches before this one are committed; the run is recorded as failed, and
		-- oms._job_end raises the error once this record is committed.
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
		UPDATE oms.job_runs x SET status = 'failed', finished_at = clock_timestamp(), error = v_msg, error_code = v_state
		 WHERE x.id = p_run;
		RETURN false;
	END;
	UPDATE oms.job_runs x SET progress_done = x.progress_done + 1, rows_touched = x.rows_touched + v_rows, next_item = v_to + 1
	 WHERE x.id = p_run;
	RETURN v_to < r.last_item;
END
$$;
COMMENT ON FUNCTION oms._job_next(bigint) IS 'Internal (oms.run_job): runs the next batch of a run of this session and records its progress; false when nothing is left or the batch failed (recorded)';

CREATE FUNCTION oms._job_end(p_run bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	oms.job_runs;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not a run of this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.status = 'running' THEN
		UPDATE oms.job_runs x SET status = 'succeeded', finished_at = clock_timestamp() WHERE x.id = p_run;
	END IF;
	PERFORM pg_advisory_unlock(hashtext('oms.' || r.job), r.tenant_id);
	IF r.status = 'failed' THEN
		RAISE EXCEPTION USING ERRCODE = coalesce(r.error_code, 'XX000'), MESSAGE = r.error,
			  DETAIL = format('Job "%s", run %s: the batches before this one are committed.', r.job, r.id);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._job_end(bigint) IS 'Internal (oms.run_job): marks a finished run succeeded, releases the job''s advisory lock, and raises the recorded error of a failed run';

-- The entry point of every scheduled run: CALL oms.run_job('alerts', 'shop').
CREATE PROCEDURE oms.run_job(job text, tenant text DEFAULT NULL, batch_items int DEFAULT 1000)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_run	bigint;
BEGIN
	v_run := oms._job_begin(job, tenant, batch_items);
	COMMIT;
	IF v_run IS NULL THEN
		RETURN;
	END IF;
	WHILE oms._job_next(v_run) LOOP
		COMMIT;
	END LOOP;
	COMMIT;
	PERFORM oms._job_end(v_run);
	COMMIT;
END
$$;
-- Procedures are not covered by 90_security's REVOKE ON ALL FUNCTIONS.
REVOKE ALL ON PROCEDURE oms.run_job(text, text, int) FROM PUBLIC;
COMMENT ON PROCEDURE oms.run_job(text, text, int) IS 'Runs a scheduled job (replenishment, alerts, subscriptions, demand_history, bi_summaries) for a tenant (default: the setting oms.tenant): records it in oms.job_runs, commits after each batch (replenishment: batch_items item ids at a time) with its progress, and does nothing but record a skipped run when the same job of the tenant is already running';

CREATE VIEW oms.job_progress AS
SELECT r.id, t.code AS tenant, r.job, r.status, r.started_at, r.progress_done, r.progress_total,
	   CASE WHEN r.progress_total > 0 THEN pg_catalog.round(100.0 * r.progress_done / r.progress_total, 1) END AS percent,
	   r.rows_touched, pg_catalog.clock_timestamp() - r.started_at AS elapsed, r.backend_pid
  FROM oms.job_runs r JOIN oms.tenants t ON t.id = r.tenant_id
 WHERE r.status = 'running';
COMMENT ON VIEW oms.job_progress IS 'The jobs running now, as committed batch by batch: batches done of the total, percent, rows touched so far, elapsed time and the backend running it';

-- pg_cron: job names are oms:<tenant>:<job>; the command calls oms.run_job for that tenant.
CREATE FUNCTION oms._cron_available() RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = '55000',
				  HINT = pg_catalog.format('Add pg_cron to postgresql.conf: shared_preload_libraries = ''pg_cron,oms'' and cron.database_name = ''%s'', restart, then CREATE EXTENSION pg_cron in that database.', current_database());
	END IF;
END
$$;
COMMENT ON FUNCTION oms._cron_available() IS 'Internal: 55000 naming the shared_preload_libraries line when the pg_cron extension is not installed in this database';

CREATE FUNCTION oms.schedule(job text, cron text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(job);
	v_tenant	text := pg_catalog.current_setting('oms.tenant', true);
	v_name		text;
	v_cmd		text;
	v_id		bigint;
BEGIN
	PERFORM oms.current_tenant_id();
	PERFORM oms._cron_available();
	v_name := 'oms:' || v_tenant || ':' || v_job;
	v_cmd := pg_catalog.format('CALL oms.run_job(%L, %L)', v_job, v_tenant);
	BEGIN
		IF current_database() = pg_catalog.current_setting('cron.database_name', true) THEN
			EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO v_id USING v_name, cron, v_cmd;
		ELSE
			EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)' INTO v_id USING v_name, cron, v_cmd, current_database();
		END IF;
	EXCEPTION WHEN OTHERS THEN
		IF SQLERRM LIKE 'invalid schedule%' OR cron IS NULL THEN
			RAISE EXCEPTION 'invalid cron schedule "%" for job "%"', coalesce(cron, 'NULL'), v_job
				USING ERRCODE = '22023',
					  HINT = 'Write five cron fields (minute hour day month weekday, e.g. ''*/15 * * * *''), @daily-style names, or ''N seconds'' with N from 1 to 59.';
		END IF;
		RAISE;
	END;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.schedule(text, text) IS 'Schedules a job (replenishment, alerts, subscriptions, demand_history) of the current tenant with pg_cron (cron.schedule; cron.schedule_in_database when pg_cron runs from another database): the command is CALL oms.run_job(job, tenant); scheduling again replaces the schedule; returns the pg_cron job id; 22023 for invalid cron text, 55000 when pg_cron is missing';

CREATE FUNCTION oms.unschedule(job text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job	text := oms._check_job(job);
	v_name	text;
	v_found	boolean;
BEGIN
	PERFORM oms.current_tenant_id();
	PERFORM oms._cron_available();
	v_name := 'oms:' || pg_catalog.current_setting('oms.tenant', true) || ':' || v_job;
	EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE jobname = $1 AND username = current_user)' INTO v_found USING v_name;
	IF v_found THEN
		EXECUTE 'SELECT cron.unschedule($1)' USING v_name;
	END IF;
	RETURN v_found;
END
$$;
COMMENT ON FUNCTION oms.unschedule(text) IS 'Removes the pg_cron schedule of a job of the current tenant; false when it was not scheduled';
