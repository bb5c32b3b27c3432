/*
 * worker.c
 *		The oms background worker: housekeeping that must happen even when no client asks.
 *
 * One worker per cluster, connected to the database named by oms.database. Each round (every
 * oms.worker_naptime seconds) it:
 *	- expires cart holds whose time is up, so that their stock returns to ATP;
 *	- raises the events nobody's call raises: orders late on their promised date (delayed) and
 *	  click & collect orders left at the store (pickup_uncollected);
 *	- purges events older than oms.event_retention that every consumer has acknowledged;
 *	- with oms.notify_events = worker, sends NOTIFY oms_events for the tenants with new events.
 * On Citus it runs on the coordinator (on the workers oms.database names a database without oms)
 * and does the same for every tenant on every node, through Citus: each step is written so that
 * Citus can send it to the shards (see expire_holds_batch, oms.purge_events and
 * oms._events_to_announce_by_node).
 * Every unit of work (a batch) is one short transaction; an error is logged and the round is tried
 * again after the nap, never in a hot loop. SIGTERM stops it at once, SIGHUP reloads settings, and
 * the postmaster restarts it after a crash.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "oms.h"

PGDLLEXPORT void oms_worker_main(Datum main_arg);

/* Holds expired per transaction: small enough that no stock row stays locked for long. */
#define EXPIRE_BATCH 500

/* Seconds the postmaster waits before starting the worker again after it exited with an error. */
#define OMS_WORKER_RESTART_SECONDS 10

/* Events purged per transaction. */
#define PURGE_BATCH 1000

/* Orders reported late or uncollected per transaction (of each kind). */
#define OVERDUE_BATCH 100

/* One unit of work, run inside a transaction with SPI connected; returns how many rows it did. */
typedef uint64 (*WorkerStep) (void);

void
oms_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = OMS_WORKER_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "oms", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "oms_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "oms worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "oms worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Is the oms extension installed in this database? (It may be created after we start.) */
static bool
extension_present(void)
{
	int			rc = SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'oms'", true, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "oms worker: extension lookup failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

/*
 * Deletes one batch of expired cart holds; returns how many. The reservation trigger gives their
 * quantity back to stock. Rows are deleted one by one in (tenant, item, location) order, the same
 * order in which orders lock stock rows, so that the worker and orders never deadlock.
 */
static uint64
expire_holds_batch(void)
{
	static SPIPlanPtr select_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	uint64		done = 0;
	uint64		n;
	SPITupleTable *batch;

	/*
	 * The batch is read without locks, and each hold is locked only by the statement that deletes
	 * it, just before the reservation trigger locks its stock row: the worker never holds a hold
	 * while it waits for a stock row. (Locking the whole batch first let the worker hold a cart's
	 * second hold while it waited for the stock row of another hold, which oms.release_hold held
	 * while it waited for that second hold: a deadlock, isolation spec iso_hold_expiry.) A hold
	 * that another transaction has locked (an order taking it over, a release) is skipped until
	 * the next round, and one that is no longer an expired hold is left alone. On Citus the same
	 * statements go to the tenant's shard: Citus locks rows only in a statement of one shard.
	 */
	if (select_plan == NULL || delete_plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, INT8OID};

		select_plan = oms_prepare(
			"SELECT tenant_id, id FROM oms.reservations"
			" WHERE cart IS NOT NULL AND expires_at < pg_catalog.now()"
			" ORDER BY tenant_id, item_id, location_id, id"
			" LIMIT " CppAsString2(EXPIRE_BATCH), 0, NULL);
		delete_plan = oms_prepare(
			"DELETE FROM oms.reservations r WHERE r.tenant_id = $1"
			" AND r.id = (SELECT x.id FROM oms.reservations x"
			"              WHERE x.tenant_id = $1 AND x.id = $2"
			"                AND x.cart IS NOT NULL AND x.expires_at < pg_catalog.now()"
			"              FOR UPDATE SKIP LOCKED)", 2, argtypes);
	}

	if (SPI_execute_plan(select_plan, NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "oms worker: selecting expired holds failed");
	batch = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		Datum		args[2];
		bool		isnull;

		args[0] = SPI_getbinval(batch->vals[i], batch->tupdesc, 1, &isnull);
		args[1] = SPI_getbinval(batch->vals[i], batch->tupdesc, 2, &isnull);
		if (SPI_execute_plan(delete_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "oms worker: deleting an expired hold failed");
		done += SPI_processed;
	}
	return done;
}

/*
 * Deletes one batch of events that are older than oms.event_retention and acknowledged by every
 * consumer of their tenant (oms.purge_events); returns how many.
 */
static uint64
purge_events_batch(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	bool		isnull;
	Datum		n;

	if (plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, INT4OID};

		plan = oms_prepare("SELECT oms.purge_events(pg_catalog.make_interval(secs => $1), $2)", 2, argtypes);
	}
	args[0] = Int32GetDatum(oms_event_retention);
	args[1] = Int32GetDatum(PURGE_BATCH);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "oms worker: purging events failed");
	n = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : (uint64) DatumGetInt64(n);
}

/*
 * Writes one batch of the events about what did not happen in time (oms.raise_overdue_events);
 * returns how many orders it reported.
 */
static uint64
overdue_batch(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg = Int32GetDatum(OVERDUE_BATCH);
	bool		isnull;
	Datum		n;

	if (plan == NULL)
	{
		Oid			argtypes[1] = {INT4OID};

		plan = oms_prepare("SELECT oms.raise_overdue_events($1)", 1, argtypes);
	}
	if (SPI_execute_plan(plan, &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "oms worker: raising overdue events failed");
	n = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : (uint64) DatumGetInt32(n);
}

/*
 * With oms.notify_events = worker: NOTIFY oms_events, '<tenant>' for every tenant with events
 * after the last id announced, up to the newest event that is final (see src/events.c), so that
 * an event that commits late is still announced. The notifications go out when the step's
 * transaction commits. Returns the number of tenants woken.
 *
 * Event ids come from each node's own sequence, and on Citus every node numbers in its own range
 * (node group g from g x 2^48), so the position announced is kept per node group
 * (oms._events_to_announce_by_node); one node has group 0 only.
 */
static int64 *announced_up_to = NULL;	/* committed: the last event id announced, per group */
static int64 *announce_pending = NULL;	/* what the step's transaction will have announced */
static int	announce_groups = 0;		/* length of both arrays */

#define NODE_GROUP_SHIFT 48

static void
announce_grow(int groups)
{
	int			old = announce_groups;

	if (groups <= announce_groups)
		return;
	if (announced_up_to == NULL)
	{
		announced_up_to = MemoryContextAllocZero(TopMemoryContext, groups * sizeof(int64));
		announce_pending = MemoryContextAllocZero(TopMemoryContext, groups * sizeof(int64));
	}
	else
	{
		announced_up_to = repalloc(announced_up_to, groups * sizeof(int64));
		announce_pending = repalloc(announce_pending, groups * sizeof(int64));
		memset(announced_up_to + old, 0, (groups - old) * sizeof(int64));
		memset(announce_pending + old, 0, (groups - old) * sizeof(int64));
	}
	announce_groups = groups;
}

static uint64
announce_events(void)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *elems;
	Datum		arg;
	uint64		n;

	if (plan == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};

		plan = oms_prepare("SELECT tenant, up_to FROM oms._events_to_announce_by_node($1)", 1, argtypes);
	}
	announce_grow(1);
	elems = palloc(announce_groups * sizeof(Datum));
	for (int g = 0; g < announce_groups; g++)
		elems[g] = Int64GetDatum(announced_up_to[g]);
	arg = PointerGetDatum(construct_array(elems, announce_groups, INT8OID, sizeof(int64),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	memcpy(announce_pending, announced_up_to, announce_groups * sizeof(int64));
	if (SPI_execute_plan(plan, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "oms worker: looking for new events failed");
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *tenant = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		int64		up_to = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		int			group = isnull || up_to < 0 ? 0 : (int) (up_to >> NODE_GROUP_SHIFT);

		Async_Notify("oms_events", tenant != NULL ? tenant : "");
		announce_grow(group + 1);
		if (!isnull && up_to > announce_pending[group])
			announce_pending[group] = up_to;
	}
	return n;
}

/* The notifications of announce_events() are committed: its positions hold. */
static void
announce_done(void)
{
	memcpy(announced_up_to, announce_pending, announce_groups * sizeof(int64));
}

/* Context of the errors of a round: the log says which process failed, doing what. */
static void
round_error_context(void *arg)
{
	errcontext("oms background worker in database \"%s\": %s; the round is retried in %d s",
			   oms_database, (const char *) arg, oms_worker_naptime);
}

/*
 * Runs one unit of work in its own short transaction. Returns false, doing nothing, while the
 * extension is not installed in the database.
 *
 * statement_timeout (from postgresql.conf, or ALTER DATABASE/ROLE ... SET) bounds each batch as it
 * would a client's statement: PostgreSQL arms it only for client queries, so the worker does it
 * itself. A batch stuck behind a lock then fails, is logged, and is retried after the nap.
 */
static bool
run_step(const char *activity, WorkerStep step, uint64 *done)
{
	bool		present;
	ErrorContextCallback step_context;

	step_context.callback = round_error_context;
	step_context.arg = (void *) activity;
	step_context.previous = error_context_stack;
	error_context_stack = &step_context;

	CHECK_FOR_INTERRUPTS();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (StatementTimeout > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, psprintf("oms worker: %s", activity));
	SPI_connect();
	present = extension_present();
	*done = present ? step() : 0;
	SPI_finish();
	PopActiveSnapshot();
	disable_timeout(STATEMENT_TIMEOUT, false);
	CommitTransactionCommand();

	error_context_stack = step_context.previous;
	return present;
}

/* One round: each step batch by batch, each batch its own transaction (run_step). */
static void
worker_round(void)
{
	static bool said_missing = false;
	uint64		expired = 0;
	uint64		purged = 0;
	uint64		overdue = 0;
	uint64		n;
	bool		present;

	do
	{
		present = run_step("expiring cart holds", expire_holds_batch, &n);
		expired += n;
	} while (present && n == EXPIRE_BATCH);

	if (!present)
	{
		if (!said_missing)
			ereport(LOG,
					(errmsg("oms worker: extension \"oms\" is not installed in database \"%s\"; waiting for it",
							oms_database)));
		said_missing = true;
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}
	said_missing = false;

	do
	{
		present = run_step("raising overdue events", overdue_batch, &n);
		overdue += n;
	} while (present && n >= OVERDUE_BATCH);

	do
	{
		present = run_step("purging acknowledged events", purge_events_batch, &n);
		purged += n;
	} while (present && n == PURGE_BATCH);

	/* The position moves on only once the notifications are committed (sent). */
	if (present && oms_notify_events == OMS_NOTIFY_WORKER &&
		run_step("announcing new events", announce_events, &n))
		announce_done();

	if (expired > 0)
		elog(DEBUG1, "oms worker: expired " UINT64_FORMAT " cart holds", expired);
	if (purged > 0)
		elog(DEBUG1, "oms worker: purged " UINT64_FORMAT " events", purged);
	if (overdue > 0)
		elog(DEBUG1, "oms worker: reported " UINT64_FORMAT " late or uncollected orders", overdue);
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Context for the errors of connecting: "database "x" does not exist" alone does not tell a DBA
 * which process wanted it nor which setting to fix.
 */
static void
connect_error_context(void *arg)
{
	errcontext("oms background worker connecting to the database named by oms.database (\"%s\"); "
			   "it retries every %d seconds",
			   oms_database, OMS_WORKER_RESTART_SECONDS);
}

/* Between rounds (oms.notify_events = worker): only the announcement of new events. */
static void
announce_round(void)
{
	uint64		n;

	if (run_step("announcing new events", announce_events, &n))
		announce_done();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Runs a round, or the announcement between rounds. An error in it (a statement timeout, a lock
 * timeout, a dropped table) is logged and the work is retried later; the worker itself stays up.
 */
static void
guarded(MemoryContext round_context, void (*work) (void))
{
	MemoryContext oldcontext = MemoryContextSwitchTo(round_context);

	PG_TRY();
	{
		work();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(round_context);
		/* as PostgresMain does after an error: no timeout or cancel left over */
		disable_all_timeouts(false);
		QueryCancelPending = false;
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(round_context);
}

void
oms_worker_main(Datum main_arg)
{
	TimestampTz next_round = 0;
	MemoryContext round_context;
	ErrorContextCallback connect_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * A missing database is a FATAL error here: the process exits and the postmaster starts it
	 * again after bgw_restart_time, so a wrong setting costs one log entry per interval, not a
	 * hot loop.
	 */
	connect_context.callback = connect_error_context;
	connect_context.arg = NULL;
	connect_context.previous = error_context_stack;
	error_context_stack = &connect_context;
	BackgroundWorkerInitializeConnection(oms_database, NULL, 0);
	error_context_stack = connect_context.previous;
	ereport(LOG, (errmsg("oms worker started in database \"%s\"", oms_database)));

	round_context = AllocSetContextCreate(TopMemoryContext, "oms worker round",
										  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			TimestampTz sooner;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a shorter oms.worker_naptime applies to the current nap too */
			sooner = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), oms_worker_naptime * 1000L);
			if (sooner < next_round)
				next_round = sooner;
		}

		/*
		 * A whole round every oms.worker_naptime; in between, with oms.notify_events = worker,
		 * only the announcement of new events, every oms.notify_interval.
		 */
		now = GetCurrentTimestamp();
		if (now >= next_round)
		{
			guarded(round_context, worker_round);
			next_round = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), oms_worker_naptime * 1000L);
		}
		else if (oms_notify_events == OMS_NOTIFY_WORKER)
			guarded(round_context, announce_round);

		wait_ms = (long) ((next_round - GetCurrentTimestamp()) / 1000);
		if (oms_notify_events == OMS_NOTIFY_WORKER && wait_ms > oms_notify_interval)
			wait_ms = oms_notify_interval;
		if (wait_ms < 1)
			wait_ms = 1;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
