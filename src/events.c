/*
 * events.c
 *		The transactional outbox: the trigger that numbers every row of oms.events and wakes
 *		listeners when the writing transaction commits.
 *
 * The one idea: an event's id is taken late and recorded together with a horizon, so that a
 * consumer can never skip an event that commits after a later one.
 *
 * Events are written in the same transaction as the change they report; ids come from a sequence,
 * so they are handed out in the order transactions ask for them, not in the order they commit. A
 * consumer that has read id 11 and acknowledged it must never later find an id 10 that committed
 * after it had read. The trigger therefore does three things in this order, for every new row:
 *
 *	1. makes sure the transaction has its (top-level) transaction id, GetTopTransactionId();
 *	2. takes the id, nextval(oms.events_id_seq);
 *	3. records in xid_horizon the next transaction id that will be assigned, read after step 2.
 *
 * Any transaction that took a smaller id did steps 1 and 2 before our step 2, so its transaction
 * id is below our xid_horizon. When a snapshot's xmin (the oldest transaction still running) has
 * reached an event's xid_horizon, every transaction that could hold a smaller id has finished:
 * those that committed are visible to that snapshot, those that aborted never will be. So
 * oms.next_events() hands out events in id order, up to the last one whose xid_horizon is at most
 * its snapshot's xmin, and never beyond. One order's events come out in commit order too: every
 * API function locks the order's row before it writes the order's events, and holds the lock until
 * it commits, so a later transaction on the same order takes its ids after the earlier committed.
 * The price: a long-running writing transaction delays delivery (never loses an event).
 *
 * The sequence must keep CACHE 1: with a per-backend cache, ids would no longer be taken in a
 * single global order.
 *
 * Wake-up: with oms.notify_events = commit, the trigger notes the tenant, and NOTIFY oms_events
 * with the tenant's code as payload is queued when the transaction commits, once per transaction
 * and tenant; PostgreSQL delivers it then, and nothing is sent if the transaction aborts. A
 * transaction that is prepared (PREPARE TRANSACTION, or a Citus transaction that wrote on two
 * nodes, which Citus commits in two phases) sends no NOTIFY: PostgreSQL cannot prepare one that
 * has queued it, so it is queued only at commit, not in the trigger. NOTIFY is a hint, not the truth: listeners
 * always read the table with oms.next_events(). PostgreSQL serialises the commits of notifying
 * transactions (a database-wide lock taken at commit and held through the WAL flush: no group
 * commit), which halved place_order's throughput at 8 clients; so the default is
 * oms.notify_events = worker: the background worker sends the wake-up, every
 * oms.notify_interval (100 ms), for the tenants with new events (src/worker.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/xid8.h"

#include "oms.h"

/* What the trigger needs to know about oms.events, found once (and again after an ALTER). */
typedef struct EventRelInfo
{
	Oid			relid;				/* InvalidOid: not looked up yet */
	Oid			seqid;				/* oms.events_id_seq */
	AttrNumber	tenant_att;
	AttrNumber	id_att;
	AttrNumber	horizon_att;
} EventRelInfo;

static EventRelInfo event_rel = {InvalidOid};
static bool event_rel_callback_registered = false;

/*
 * The tenants whose NOTIFY this transaction will send (oms.notify_events = commit), each with the
 * (sub)transaction level that queued it, in TopTransactionContext. They are handed to
 * Async_Notify() only when the transaction commits (XACT_EVENT_PRE_COMMIT, before PostgreSQL
 * processes its notifications): a transaction that is prepared instead (PREPARE TRANSACTION, or
 * Citus's two-phase commit of a transaction that wrote on two nodes) cannot NOTIFY at all, and
 * would fail if it had queued one; it commits without the wake-up. An aborted subtransaction takes
 * its tenants with it, as PostgreSQL does with its own notifications.
 */
typedef struct PendingNotify
{
	int32		tenant_id;
	int			level;
	char	   *code;
} PendingNotify;

static List *pending_notifies = NIL;
static bool notify_callbacks_registered = false;

static void
pending_notify_xact(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event == XACT_EVENT_PRE_COMMIT)
	{
		foreach(lc, pending_notifies)
			Async_Notify("oms_events", ((PendingNotify *) lfirst(lc))->code);
	}
	/* Sent, dropped with a prepared transaction, or aborted: nothing is pending any more. */
	if (event != XACT_EVENT_PARALLEL_PRE_COMMIT)
		pending_notifies = NIL;
}

static void
pending_notify_subxact(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_notifies)
		{
			if (((PendingNotify *) lfirst(lc))->level >= level)
				pending_notifies = foreach_delete_current(pending_notifies, lc);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_notifies)
		{
			PendingNotify *p = (PendingNotify *) lfirst(lc);

			if (p->level >= level)
				p->level = level - 1;
		}
	}
}

static void
event_rel_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == event_rel.relid)
		event_rel.relid = InvalidOid;
}

static AttrNumber
event_column(Relation rel, const char *name, Oid type)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != type)
		elog(ERROR, "oms.event_trigger: table \"%s\" has no column \"%s\" of type %s",
			 RelationGetRelationName(rel), name, format_type_be(type));
	return (AttrNumber) attnum;
}

static const EventRelInfo *
event_rel_info(Relation rel)
{
	if (event_rel.relid == RelationGetRelid(rel))
		return &event_rel;

	if (!event_rel_callback_registered)
	{
		oms_register_relcache_callback(event_rel_invalidate);
		event_rel_callback_registered = true;
	}
	event_rel.tenant_att = event_column(rel, "tenant_id", INT4OID);
	event_rel.id_att = event_column(rel, "id", INT8OID);
	event_rel.horizon_att = event_column(rel, "xid_horizon", XID8OID);
	event_rel.seqid = get_relname_relid("events_id_seq", RelationGetNamespace(rel));
	if (!OidIsValid(event_rel.seqid))
		elog(ERROR, "oms.event_trigger: no sequence \"events_id_seq\" beside table \"%s\"",
			 RelationGetRelationName(rel));
	event_rel.relid = RelationGetRelid(rel);
	return &event_rel;
}

/* Queues NOTIFY oms_events, '<tenant code>' for when this transaction commits, once per tenant. */
static void
notify_tenant(int32 tenant_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg = Int32GetDatum(tenant_id);
	char	   *code;
	MemoryContext oldcontext;
	PendingNotify *p;
	ListCell   *lc;

	foreach(lc, pending_notifies)
	{
		if (((PendingNotify *) lfirst(lc))->tenant_id == tenant_id)
			return;
	}
	if (!notify_callbacks_registered)
	{
		RegisterXactCallback(pending_notify_xact, NULL);
		RegisterSubXactCallback(pending_notify_subxact, NULL);
		notify_callbacks_registered = true;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "oms.event_trigger: SPI_connect failed");
	if (plan == NULL)
	{
		Oid			argtypes[1] = {INT4OID};

		plan = oms_prepare("SELECT code FROM oms.tenants WHERE id = $1", 1, argtypes);
	}
	if (SPI_execute_plan(plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms.event_trigger: tenant lookup failed");
	code = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;

	oldcontext = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc(sizeof(PendingNotify));
	p->tenant_id = tenant_id;
	p->level = GetCurrentTransactionNestLevel();
	p->code = pstrdup(code != NULL ? code : "");
	pending_notifies = lappend(pending_notifies, p);
	MemoryContextSwitchTo(oldcontext);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(oms_event_trigger);

/*
 * oms.event_trigger(): BEFORE INSERT ON oms.events FOR EACH ROW. Sets id and xid_horizon (any
 * value given is replaced) and queues the NOTIFY.
 */
Datum
oms_event_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *tdata = (TriggerData *) fcinfo->context;
	const EventRelInfo *info;
	Relation	rel;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	Datum		tenant;
	bool		isnull;
	HeapTuple	result;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms.event_trigger() must be called as a trigger");
	if (!TRIGGER_FIRED_BEFORE(tdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(tdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(tdata->tg_event))
		elog(ERROR, "oms.event_trigger() must fire BEFORE INSERT FOR EACH ROW");

	rel = tdata->tg_relation;
	info = event_rel_info(rel);

	/* The order of these three steps is what makes delivery safe; see the file header. */
	(void) GetTopTransactionId();
	values[0] = Int64GetDatum(nextval_internal(info->seqid, false));
	values[1] = FullTransactionIdGetDatum(ReadNextFullTransactionId());
	cols[0] = info->id_att;
	cols[1] = info->horizon_att;
	result = heap_modify_tuple_by_cols(tdata->tg_trigtuple, RelationGetDescr(rel), 2, cols, values, nulls);

	if (oms_notify_events == OMS_NOTIFY_COMMIT)
	{
		tenant = heap_getattr(result, info->tenant_att, RelationGetDescr(rel), &isnull);
		if (!isnull)
			notify_tenant(DatumGetInt32(tenant));
	}
	return PointerGetDatum(result);
}
