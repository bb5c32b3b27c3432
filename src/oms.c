/*
 * oms.c
 *		Module entry point: magic block, settings (GUCs), the background worker's registration,
 *		and the two helpers every other file uses: the current tenant and kept plans.
 *
 * Settings are defined before anything else, whether or not the library is preloaded, so that
 * "oms.*" names are always checked (MarkGUCPrefixReserved); the worker is registered only when
 * the library is in shared_preload_libraries.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "oms.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *oms_tenant = NULL;
char	   *oms_database = NULL;
int			oms_worker_naptime = 10;
char	   *oms_reason = NULL;
char	   *oms_actor = NULL;
int			oms_notify_events = OMS_NOTIFY_COMMIT;
int			oms_event_retention = 7 * 24 * 3600;

static const struct config_enum_entry notify_options[] = {
	{"commit", OMS_NOTIFY_COMMIT, false},
	{"worker", OMS_NOTIFY_WORKER, false},
	{"off", OMS_NOTIFY_OFF, false},
	{NULL, 0, false}
};
char	   *oms_now_setting = NULL;

/* A tenant code is an identifier-like word: letters, digits, '_', '-', '.', at most 63 bytes. */
static bool
check_tenant(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL || (*newval)[0] == '\0' || strlen(*newval) > 63)
	{
		GUC_check_errdetail("A tenant code has 1 to 63 characters.");
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.'))
		{
			GUC_check_errdetail("A tenant code uses only letters, digits, \"_\", \"-\" and \".\".");
			return false;
		}
	}
	return true;
}

void
_PG_init(void)
{
	DefineCustomStringVariable("oms.tenant",
							   "Code of the tenant (brand, merchant) that API calls work for.",
							   "Every oms function and view sees and changes this tenant's rows only.",
							   &oms_tenant,
							   "default",
							   PGC_USERSET,
							   0,
							   check_tenant, NULL, NULL);

	/*
	 * PostgreSQL refuses to create a PGC_POSTMASTER setting after startup; a backend that loads
	 * oms on first use (not preloaded) has no worker anyway, so there the setting is only shown.
	 */
	DefineCustomStringVariable("oms.database",
							   "Database in which the oms background worker runs.",
							   NULL,
							   &oms_database,
							   "postgres",
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("oms.worker_naptime",
							"Seconds the oms background worker sleeps between rounds.",
							NULL,
							&oms_worker_naptime,
							10, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("oms.reason",
							   "Reason recorded in order_history for the state changes of this transaction.",
							   "API functions set it with SET LOCAL; applications rarely need to.",
							   &oms_reason,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("oms.actor",
							   "Who is making the changes, recorded in order_history (default: the session user).",
							   "An application that connects through one pooled role sets it to the end user.",
							   &oms_actor,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	oms_planning_settings();
	DefineCustomEnumVariable("oms.notify_events",
							 "Who sends NOTIFY oms_events when events are written: commit, worker or off.",
							 "commit: the writing transaction, at its commit (PostgreSQL serialises the commits of "
							 "notifying transactions); worker: the background worker, once per round; off: nobody.",
							 &oms_notify_events,
							 OMS_NOTIFY_COMMIT,
							 notify_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("oms.event_retention",
							"How long acknowledged events are kept before the background worker purges them.",
							"An event is purged when it is older than this and every consumer of its tenant "
							"has acknowledged it.",
							&oms_event_retention,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("oms.now",
							   "The time at which routing and delivery promises are worked out (empty: the transaction's start).",
							   "For tests and what-if questions: cutoff times, start days, capacity days and ETAs follow it. Superusers only.",
							   &oms_now_setting,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("oms");

	if (!process_shared_preload_libraries_in_progress)
		return;

	oms_worker_register();
}

TimestampTz
oms_now(void)
{
	if (oms_now_setting == NULL || oms_now_setting[0] == '\0')
		return GetCurrentTransactionStartTimestamp();
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(oms_now_setting),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

SPIPlanPtr
oms_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "oms: SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "oms: SPI_keepplan failed");
	return plan;
}

/*
 * The tenant's id is looked up once per transaction: a tenant is never renamed under a running
 * transaction, and a new transaction sees a changed oms.tenant or a re-created tenant.
 */
int32
oms_tenant_id(void)
{
	static SPIPlanPtr plan = NULL;
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static char cached_code[64];
	static int32 cached_id = 0;
	Datum		arg;
	bool		isnull;
	int			rc;

	if (cached_lxid == MyProc->lxid && strcmp(cached_code, oms_tenant) == 0)
		return cached_id;

	if (plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		plan = oms_prepare("SELECT id FROM oms.tenants WHERE code = $1", 1, argtypes);
	}
	arg = CStringGetTextDatum(oms_tenant);
	rc = SPI_execute_plan(plan, &arg, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "oms: tenant lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown tenant \"%s\"", oms_tenant),
				 errhint("Create it with oms.create_tenant('%s'), or SET oms.tenant to an existing tenant.",
						 oms_tenant)));
	cached_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	strlcpy(cached_code, oms_tenant, sizeof(cached_code));
	cached_lxid = MyProc->lxid;
	return cached_id;
}

PG_FUNCTION_INFO_V1(oms_current_tenant_id);

/* oms.current_tenant_id(): the id of the tenant named by oms.tenant, for SQL callers. */
Datum
oms_current_tenant_id(PG_FUNCTION_ARGS)
{
	int32		id;

	SPI_connect();
	id = oms_tenant_id();
	SPI_finish();
	PG_RETURN_INT32(id);
}

char *
oms_clip(const char *s)
{
	int			len = strlen(s);

	if (len <= OMS_CLIP_BYTES)
		return pstrdup(s);
	return psprintf("%.*s...", pg_mbcliplen(s, len, OMS_CLIP_BYTES), s);
}

char *
oms_clip_text(const text *t)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len <= OMS_CLIP_BYTES)
		return text_to_cstring(t);
	return psprintf("%.*s...", pg_mbcliplen(s, len, OMS_CLIP_BYTES), s);
}
