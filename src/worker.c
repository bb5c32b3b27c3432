/*
 * worker.c
 *		The oms background worker: housekeeping that must happen even when no client asks.
 *
 * One worker per cluster, connected to the database named by oms.database. Each round (every
 * oms.worker_naptime seconds) it expires cart holds whose time is up, so that their stock returns
 * to ATP. Every unit of work is one short transaction; an error is logged and the round is tried
 * again after the nap, never in a hot loop. SIGTERM stops it at once, SIGHUP reloads settings, and
 * the postmaster restarts it after a crash.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
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
expire_holds_batch(bool *extension_missing)
{
	static SPIPlanPtr select_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	uint64		done = 0;
	uint64		n;
	SPITupleTable *batch;

	SPI_connect();
	if (!extension_present())
	{
		*extension_missing = true;
		SPI_finish();
		return 0;
	}
	*extension_missing = false;

	if (select_plan == NULL || delete_plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, INT8OID};

		select_plan = oms_prepare(
			"SELECT tenant_id, id FROM oms.reservations"
			" WHERE cart IS NOT NULL AND expires_at < pg_catalog.now()"
			" ORDER BY tenant_id, item_id, location_id, id"
			" LIMIT " CppAsString2(EXPIRE_BATCH) " FOR UPDATE SKIP LOCKED", 0, NULL);
		delete_plan = oms_prepare(
			"DELETE FROM oms.reservations WHERE tenant_id = $1 AND id = $2", 2, argtypes);
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
	SPI_finish();
	return done;
}

/* Context of the errors of a round: the log says which process failed, doing what. */
static void
round_error_context(void *arg)
{
	errcontext("oms background worker in database \"%s\": %s; the round is retried in %d s",
			   oms_database, (const char *) arg, oms_worker_naptime);
}

/*
 * One round: expire holds batch by batch, each batch its own transaction.
 *
 * statement_timeout (from postgresql.conf, or ALTER DATABASE/ROLE ... SET) bounds each batch as it
 * would a client's statement: PostgreSQL arms it only for client queries, so the worker does it
 * itself. A batch stuck behind a lock then fails, is logged, and is retried after the nap.
 */
static void
worker_round(void)
{
	static bool said_missing = false;
	bool		missing = false;
	uint64		total = 0;
	uint64		n;
	ErrorContextCallback round_context;

	round_context.callback = round_error_context;
	round_context.arg = (void *) "expiring cart holds";
	round_context.previous = error_context_stack;
	error_context_stack = &round_context;
	do
	{
		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (StatementTimeout > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "oms worker: expiring cart holds");
		n = expire_holds_batch(&missing);
		PopActiveSnapshot();
		disable_timeout(STATEMENT_TIMEOUT, false);
		CommitTransactionCommand();
		total += n;
	} while (n == EXPIRE_BATCH);
	error_context_stack = round_context.previous;

	if (missing && !said_missing)
		ereport(LOG,
				(errmsg("oms worker: extension \"oms\" is not installed in database \"%s\"; waiting for it",
						oms_database)));
	said_missing = missing;
	if (total > 0)
		elog(DEBUG1, "oms worker: expired " UINT64_FORMAT " cart holds", total);
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

void
oms_worker_main(Datum main_arg)
{
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
		MemoryContext oldcontext;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * An error in a round (a statement timeout, a lock timeout, a dropped table) is logged
		 * and the round is retried after the nap; the worker itself stays up.
		 */
		oldcontext = MemoryContextSwitchTo(round_context);
		PG_TRY();
		{
			worker_round();
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

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 oms_worker_naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
