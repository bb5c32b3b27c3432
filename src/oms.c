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
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "commands/extension.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "oms.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *oms_tenant = NULL;
bool		oms_route_pruning = true;
char	   *oms_database = NULL;
int			oms_worker_naptime = 10;
int			oms_notify_interval = 100;
char	   *oms_reason = NULL;
char	   *oms_actor = NULL;
int			oms_notify_events = OMS_NOTIFY_WORKER;
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

	DefineCustomIntVariable("oms.notify_interval",
							"With oms.notify_events = worker, how often the background worker looks for new events to announce.",
							"Listeners hear of an event at most this long after its commit.",
							&oms_notify_interval,
							100, 10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
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
							 "notifying transactions); worker: the background worker, every oms.notify_interval; off: nobody.",
							 &oms_notify_events,
							 OMS_NOTIFY_WORKER,
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
	DefineCustomBoolVariable("oms.route_pruning",
							 "Whether routing and promises over many locations read the most promising ones first.",
							 "Off: every location is read on every call (the same answers, slower); for tests and comparisons.",
							 &oms_route_pruning,
							 true,
							 PGC_USERSET,
							 0,
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

/*
 * Whether the database's schema oms has stock slots (0.2.0 and later). One library serves the
 * schema of every installed version until ALTER EXTENSION oms UPDATE, so statements that read the
 * slots have a form without them for an older schema. Plans are kept for the session: a session
 * that began before the update keeps the older form until it reconnects (it then takes a hot SKU
 * from its stock row, which stays exact, and its ATP leaves out the slots' free units).
 */
bool
oms_has_stock_slots(void)
{
	Oid			nsp = get_namespace_oid("oms", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("stock_slots", nsp));
}

SPIPlanPtr
oms_prepare(const char *sql, int nargs, Oid *argtypes)
{
	return oms_prepare_generic(sql, nargs, argtypes, false);
}

/*
 * A kept plan; generic: always the generic plan, never planned again for the values of a call
 * (the plan cache otherwise plans anew on every call when a custom plan looks cheaper, as it does
 * for statements with array parameters).
 */
SPIPlanPtr
oms_prepare_generic(const char *sql, int nargs, Oid *argtypes, bool generic)
{
	SPIPlanPtr	plan;

	/*
	 * Citus plans a statement on its distributed tables only with the parameters' values (a
	 * generic plan of one fails: "could not create distributed plan"): on a Citus database the
	 * plan cache chooses, as for any other statement.
	 */
	if (generic && OidIsValid(get_extension_oid("citus", true)))
		generic = false;
	plan = SPI_prepare_cursor(sql, nargs, argtypes, generic ? CURSOR_OPT_GENERIC_PLAN : 0);

	if (plan == NULL)
		elog(ERROR, "oms: SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "oms: SPI_keepplan failed");
	return plan;
}

/*
 * The caller, for the tenant boundary: the role the session acts as outside any SECURITY DEFINER
 * function (GetOuterUserId(): the session user, or the role of a SET ROLE). The API functions run
 * as their owner, so GetUserId() inside them is the owner; the outer user is who called them.
 */
Oid
oms_caller(void)
{
	return GetOuterUserId();
}

/* Superusers and members of oms_admin may act for every tenant. */
static bool
oms_caller_is_admin(Oid caller)
{
	Oid			admin;

	if (superuser_arg(caller))
		return true;
	admin = get_role_oid("oms_admin", true);
	return OidIsValid(admin) && has_privs_of_role(caller, admin);
}

/*
 * The last positive answer (this role may act for this tenant) is kept across transactions: the
 * hot path (oms.atp() called once per transaction) must not run SQL for it. It is dropped on any
 * change of oms.tenant_grants (the trigger oms._tenant_grants_changed sends a relcache
 * invalidation of the table, which every backend processes once the change commits) and on any
 * change of roles or role memberships (syscache callbacks).
 */
static struct
{
	bool		valid;
	Oid			caller;
	int32		tenant_id;
	Oid			grants_relid;	/* oms.tenant_grants */
}			grant_cache;
static bool grant_cache_registered = false;

static void
grant_cache_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	grant_cache.valid = false;
}

static void
grant_cache_relcache_callback(Datum arg, Oid relid)
{
	/* no catalog access here: the table's oid was noted when the answer was cached */
	if (!OidIsValid(relid) || relid == grant_cache.grants_relid)
		grant_cache.valid = false;
}

static void
grant_cache_register(void)
{
	if (grant_cache_registered)
		return;
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, grant_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, grant_cache_syscache_callback, (Datum) 0);
	oms_register_relcache_callback(grant_cache_relcache_callback);
	grant_cache_registered = true;
}

static void
grant_cache_set(Oid caller, int32 tenant_id)
{
	Oid			relid = get_relname_relid("tenant_grants", get_namespace_oid("oms", false));

	if (!OidIsValid(relid))
		return;
	grant_cache.grants_relid = relid;
	grant_cache.caller = caller;
	grant_cache.tenant_id = tenant_id;
	grant_cache.valid = true;
}

/*
 * May the caller act for this tenant? Admins may act for all; any other role needs a row of
 * oms.tenant_grants for itself or for a role whose privileges it has. Runs inside the caller's
 * SPI connection, as the owner of schema oms (a role that may call oms.atp() or read a view
 * needs no right on oms.tenant_grants).
 */
static bool
oms_may_act_for(Oid caller, int32 tenant_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	bool		isnull;
	bool		allowed;
	int			rc;

	if (grant_cache.valid && grant_cache.caller == caller && grant_cache.tenant_id == tenant_id)
		return true;
	grant_cache_register();
	if (oms_caller_is_admin(caller))
	{
		grant_cache_set(caller, tenant_id);
		return true;
	}
	if (plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, OIDOID};

		plan = oms_prepare("SELECT EXISTS (SELECT FROM oms.tenant_grants g"
						   " JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) g.role"
						   " WHERE g.tenant_id OPERATOR(pg_catalog.=) $1"
						   " AND pg_catalog.pg_has_role($2, r.oid, 'USAGE'))", 2, argtypes);
	}
	args[0] = Int32GetDatum(tenant_id);
	args[1] = ObjectIdGetDatum(caller);
	rc = SPI_execute_plan(plan, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "oms: tenant grant lookup failed: %s", SPI_result_code_string(rc));
	allowed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (allowed && !isnull)
	{
		grant_cache_set(caller, tenant_id);
		return true;
	}
	return false;
}

static void
oms_refuse_tenant(Oid caller, const char *code)
{
	char	   *role = GetUserNameFromId(caller, false);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not act for tenant \"%s\"", role, code),
			 errdetail("oms.tenant names a tenant that was not granted to this role or to a role it is a member of."),
			 errhint("An oms administrator grants it with SELECT oms.grant_tenant('%s', '%s');",
					 role, code)));
}

/*
 * On a Citus node, the tenant look-ups read oms.tenants and oms.tenant_grants (reference tables)
 * from inside a query of a shard: a row level security policy of a login role's query, or a call
 * of the tenant's node. Citus refuses such a nested query unless
 * citus.allow_nested_distributed_execution is on (a nested query sent to another node would not
 * see the transaction's writes); a reference table is read from the node's own copy, so the
 * look-ups turn it on for their own duration. Returns the GUC nest level to close with
 * AtEOXact_GUC, or -1 when Citus is not loaded.
 */
static int
oms_allow_nested_citus(void)
{
	int			nestlevel;

	if (GetConfigOption("citus.allow_nested_distributed_execution", true, false) == NULL)
		return -1;
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("citus.allow_nested_distributed_execution", "on",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/* The owner of schema oms: tenant look-ups run as this role. */
static Oid
oms_owner(void)
{
	Oid			nsp = get_namespace_oid("oms", false);
	HeapTuple	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "oms: cache lookup failed for schema oms");
	owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * The tenant's id is looked up once per transaction and caller: a tenant is never renamed under a
 * running transaction, and a new transaction sees a changed oms.tenant, a re-created tenant or a
 * revoked grant. The caller must be allowed to act for it (42501 otherwise).
 */
static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
static char cached_code[64];
static Oid	cached_caller = InvalidOid;
static int32 cached_id = 0;

static inline bool
oms_tenant_cached(void)
{
	return cached_lxid == MyProc->lxid && cached_caller == GetOuterUserId() &&
		strcmp(cached_code, oms_tenant) == 0;
}

int32
oms_tenant_id(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg;
	bool		isnull;
	int			rc;
	volatile int32 id = 0;
	Oid			caller = GetOuterUserId();
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;

	if (oms_tenant_cached())
		return cached_id;

	nestlevel = oms_allow_nested_citus();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(oms_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
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
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (!oms_may_act_for(caller, id))
			oms_refuse_tenant(caller, oms_tenant);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	/* (after an error, the abort of the transaction or subtransaction restores the setting) */
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);

	cached_id = id;
	strlcpy(cached_code, oms_tenant, sizeof(cached_code));
	cached_caller = caller;
	cached_lxid = MyProc->lxid;
	return cached_id;
}

/*
 * For oms.atp(), which finds the tenant itself through an index: refuses (42501) a tenant the
 * caller may not act for. Cheap for admins and within a transaction that already checked.
 */
void
oms_check_tenant(int32 tenant_id)
{
	Oid			caller = GetOuterUserId();
	Oid			save_userid;
	int			save_sec_context;
	volatile bool allowed = false;
	int			nestlevel;

	if (grant_cache.valid && grant_cache.caller == caller && grant_cache.tenant_id == tenant_id)
		return;
	SPI_connect();
	nestlevel = oms_allow_nested_citus();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(oms_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		allowed = oms_may_act_for(caller, tenant_id);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	if (!allowed)
		oms_refuse_tenant(caller, oms_tenant);
}

PG_FUNCTION_INFO_V1(oms_tenant_grants_changed);

/*
 * PostgreSQL has room for ten relcache callbacks per backend, and Citus takes several: oms's
 * modules share one, which calls each of theirs.
 */
#define OMS_RELCACHE_CALLBACKS 8
static void (*relcache_callbacks[OMS_RELCACHE_CALLBACKS]) (Datum arg, Oid relid);
static int	relcache_callback_count = 0;

static void
oms_relcache_dispatch(Datum arg, Oid relid)
{
	for (int i = 0; i < relcache_callback_count; i++)
		relcache_callbacks[i] (arg, relid);
}

void
oms_register_relcache_callback(void (*callback) (Datum arg, Oid relid))
{
	if (relcache_callback_count == 0)
		CacheRegisterRelcacheCallback(oms_relcache_dispatch, (Datum) 0);
	if (relcache_callback_count >= OMS_RELCACHE_CALLBACKS)
		elog(FATAL, "oms: out of relcache callback slots");
	relcache_callbacks[relcache_callback_count++] = callback;
}

/*
 * On a Citus cluster a trigger fires on a shard (oms.tenant_grants_102009, say), while backends
 * keep what they cached under the table's own name: invalidate that relation too.
 */
void
oms_invalidate_shell(Relation shard)
{
	const char *name = RelationGetRelationName(shard);
	const char *cut = strrchr(name, '_');
	Oid			nsp = RelationGetNamespace(shard);
	Oid			shell;
	char	   *shell_name;

	if (cut == NULL || cut[1] == '\0' || strspn(cut + 1, "0123456789") != strlen(cut + 1))
		return;
	shell_name = pnstrdup(name, cut - name);
	shell = get_relname_relid(shell_name, nsp);
	if (OidIsValid(shell) && shell != RelationGetRelid(shard))
		CacheInvalidateRelcacheByRelid(shell);
	pfree(shell_name);
}

/*
 * Trigger oms._tenant_grants_changed(), after any change of oms.tenant_grants: a relcache
 * invalidation of the table, so that every backend drops its cached grant (grant_cache).
 */
Datum
oms_tenant_grants_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms: _tenant_grants_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	oms_invalidate_shell(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(oms_current_tenant_id);

/*
 * oms.current_tenant_id(): the id of the tenant named by oms.tenant, for SQL callers (and the
 * tenant policies of row level security, which call it once per statement).
 */
Datum
oms_current_tenant_id(PG_FUNCTION_ARGS)
{
	int32		id;

	if (oms_tenant_cached())
		PG_RETURN_INT32(cached_id);
	SPI_connect();
	id = oms_tenant_id();
	SPI_finish();
	PG_RETURN_INT32(id);
}

PG_FUNCTION_INFO_V1(oms_caller_oid);

/* oms._caller(): the role that called oms (see oms_caller()). */
Datum
oms_caller_oid(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(oms_caller());
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
