/*
 * transition.c
 *		The legal moves of order and line states, and the trigger that enforces and records them.
 *
 * The one idea: the lifecycle is data, one table per state type, like OFBiz's StatusValidChange.
 * Each row is an event (a verb: "ship", "cancel") with the states it may start from and the state
 * it leads to. Everything else is derived from these two tables: oms.transition() applies an
 * event, oms.is_legal() and the state trigger accept a change of state only when some event makes
 * it, oms.legal_moves() lists the tables, and every error hints at what would have been legal.
 *
 * Line events (a line is one SKU and quantity of an order):
 *
 *	event			from											to
 *	--------------	----------------------------------------------	------------------
 *	allocate		created, backordered, preordered, rejected		allocated
 *	backorder		created, allocated, rejected					backordered
 *	preorder		created, rejected								preordered
 *	release			allocated										released
 *	pick			released										picked
 *	pack			released, picked								packed
 *	stage			released, picked, packed						ready_for_pickup
 *	ship_partial	released, picked, packed, partially_shipped		partially_shipped
 *	ship			released, picked, packed, partially_shipped		shipped
 *	collect			ready_for_pickup								delivered
 *	deliver			shipped											delivered
 *	return_partial	shipped, delivered, partially_returned			partially_returned
 *	return			shipped, delivered, partially_returned			returned
 *	reject			allocated, released, picked						rejected
 *	reroute			rejected										created
 *	cancel			created, backordered, preordered, allocated,	cancelled
 *					released, picked, packed, ready_for_pickup,
 *					rejected
 *
 * Nothing leaves cancelled; once a unit has shipped, a line can only go forward (deliver, return).
 * A line that has shipped in part and whose remaining units are cancelled becomes "shipped" (the
 * cancelled units live in order_lines.qty_cancelled).
 *
 * Order events. The order's state is a rollup of its lines' (oms.rollup), and one API call may
 * move several lines, each by several events (a store rejects a line, which is rerouted and
 * allocated elsewhere in the same call). Enumerating the rollups of every such call shows that
 * before shipment every state can follow every other, so the pre-shipment states P = {created,
 * on_hold, confirmed, backordered, partially_allocated, allocated, released} move freely among
 * themselves; what the table guards is the rest: shipping needs stock, nothing goes back once
 * something has shipped, cancelling is for orders with nothing shipped, and terminal is terminal.
 *
 *	event			from											to
 *	--------------	----------------------------------------------	------------------
 *	hold			P except on_hold								on_hold
 *	unhold			on_hold											created
 *	reset			P except on_hold, created						created
 *	confirm			P except confirmed								confirmed
 *	backorder		P except backordered							backordered
 *	allocate_partial P except partially_allocated					partially_allocated
 *	allocate		P except allocated								allocated
 *	release			P except released								released
 *	ship_partial	partially_allocated, allocated, released		partially_shipped
 *	ship			partially_allocated, allocated, released,		shipped
 *					partially_shipped
 *	deliver			partially_allocated, allocated, released,		delivered
 *					partially_shipped, shipped
 *	return_partial	partially_shipped, shipped, delivered			partially_returned
 *	return			partially_shipped, shipped, delivered,			returned
 *					partially_returned
 *	close			shipped, delivered, partially_returned, returned	closed
 *	cancel			P												cancelled
 *
 * "unhold" returns the order to created; an API that knows the rollup may move an on_hold order
 * straight to it instead (on_hold -> allocated is legal: it is "allocate" from on_hold).
 * cancelled and closed are terminal.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "oms.h"
#include "order_state.h"

/* One row of a transition table: an event, the states it may start from, the state it leads to. */
typedef struct StateEvent
{
	const char *name;
	uint32		from;				/* StateBit() of every state the event may start from */
	int32		to;
} StateEvent;

#define B(code)		StateBit(code)

static const StateEvent line_events[] = {
	{"allocate", B(LS_CREATED) | B(LS_BACKORDERED) | B(LS_PREORDERED) | B(LS_REJECTED), LS_ALLOCATED},
	{"backorder", B(LS_CREATED) | B(LS_ALLOCATED) | B(LS_REJECTED), LS_BACKORDERED},
	{"preorder", B(LS_CREATED) | B(LS_REJECTED), LS_PREORDERED},
	{"release", B(LS_ALLOCATED), LS_RELEASED},
	{"pick", B(LS_RELEASED), LS_PICKED},
	{"pack", B(LS_RELEASED) | B(LS_PICKED), LS_PACKED},
	{"stage", B(LS_RELEASED) | B(LS_PICKED) | B(LS_PACKED), LS_READY_FOR_PICKUP},
	{"ship_partial", B(LS_RELEASED) | B(LS_PICKED) | B(LS_PACKED) | B(LS_PARTIALLY_SHIPPED), LS_PARTIALLY_SHIPPED},
	{"ship", B(LS_RELEASED) | B(LS_PICKED) | B(LS_PACKED) | B(LS_PARTIALLY_SHIPPED), LS_SHIPPED},
	{"collect", B(LS_READY_FOR_PICKUP), LS_DELIVERED},
	{"deliver", B(LS_SHIPPED), LS_DELIVERED},
	{"return_partial", B(LS_SHIPPED) | B(LS_DELIVERED) | B(LS_PARTIALLY_RETURNED), LS_PARTIALLY_RETURNED},
	{"return", B(LS_SHIPPED) | B(LS_DELIVERED) | B(LS_PARTIALLY_RETURNED), LS_RETURNED},
	{"reject", B(LS_ALLOCATED) | B(LS_RELEASED) | B(LS_PICKED), LS_REJECTED},
	{"reroute", B(LS_REJECTED), LS_CREATED},
	{"cancel", B(LS_CREATED) | B(LS_BACKORDERED) | B(LS_PREORDERED) | B(LS_ALLOCATED) | B(LS_RELEASED) |
	 B(LS_PICKED) | B(LS_PACKED) | B(LS_READY_FOR_PICKUP) | B(LS_REJECTED), LS_CANCELLED},
};

/* The pre-shipment order states, among which the rollup may move an order in one call. */
#define OS_PRE_SHIPMENT \
	(B(OS_CREATED) | B(OS_ON_HOLD) | B(OS_CONFIRMED) | B(OS_BACKORDERED) | \
	 B(OS_PARTIALLY_ALLOCATED) | B(OS_ALLOCATED) | B(OS_RELEASED))

static const StateEvent order_events[] = {
	{"hold", OS_PRE_SHIPMENT & ~B(OS_ON_HOLD), OS_ON_HOLD},
	{"unhold", B(OS_ON_HOLD), OS_CREATED},
	{"reset", OS_PRE_SHIPMENT & ~(B(OS_ON_HOLD) | B(OS_CREATED)), OS_CREATED},
	{"confirm", OS_PRE_SHIPMENT & ~B(OS_CONFIRMED), OS_CONFIRMED},
	{"backorder", OS_PRE_SHIPMENT & ~B(OS_BACKORDERED), OS_BACKORDERED},
	{"allocate_partial", OS_PRE_SHIPMENT & ~B(OS_PARTIALLY_ALLOCATED), OS_PARTIALLY_ALLOCATED},
	{"allocate", OS_PRE_SHIPMENT & ~B(OS_ALLOCATED), OS_ALLOCATED},
	{"release", OS_PRE_SHIPMENT & ~B(OS_RELEASED), OS_RELEASED},
	{"ship_partial", B(OS_PARTIALLY_ALLOCATED) | B(OS_ALLOCATED) | B(OS_RELEASED), OS_PARTIALLY_SHIPPED},
	{"ship", B(OS_PARTIALLY_ALLOCATED) | B(OS_ALLOCATED) | B(OS_RELEASED) | B(OS_PARTIALLY_SHIPPED), OS_SHIPPED},
	{"deliver", B(OS_PARTIALLY_ALLOCATED) | B(OS_ALLOCATED) | B(OS_RELEASED) | B(OS_PARTIALLY_SHIPPED) |
	 B(OS_SHIPPED), OS_DELIVERED},
	{"return_partial", B(OS_PARTIALLY_SHIPPED) | B(OS_SHIPPED) | B(OS_DELIVERED), OS_PARTIALLY_RETURNED},
	{"return", B(OS_PARTIALLY_SHIPPED) | B(OS_SHIPPED) | B(OS_DELIVERED) | B(OS_PARTIALLY_RETURNED), OS_RETURNED},
	{"close", B(OS_SHIPPED) | B(OS_DELIVERED) | B(OS_PARTIALLY_RETURNED) | B(OS_RETURNED), OS_CLOSED},
	{"cancel", OS_PRE_SHIPMENT, OS_CANCELLED},
};

#undef B

typedef struct TransitionTable
{
	const char *noun;				/* "line" or "order", for messages */
	const StateEvent *events;
	int			nevents;
} TransitionTable;

static const TransitionTable transition_tables[2] = {
	[STATE_KIND_ORDER] = {"order", order_events, lengthof(order_events)},
	[STATE_KIND_LINE] = {"line", line_events, lengthof(line_events)},
};

/*
 * legal_targets[kind][from]: StateBit() of every state one event leads to from "from", derived
 * once from the tables above, so that the trigger's check is one AND.
 */
static uint32 legal_targets[2][Max(ORDER_STATE_MAX, LINE_STATE_MAX) + 1];
static bool legal_targets_ready = false;

StaticAssertDecl(ORDER_STATE_MAX < 32 && LINE_STATE_MAX < 32,
				 "state codes must fit in a 32-bit mask");

static void
build_legal_targets(void)
{
	int			kind;

	for (kind = 0; kind < 2; kind++)
	{
		const TransitionTable *t = &transition_tables[kind];
		int			i;

		for (i = 0; i < t->nevents; i++)
		{
			int32		from;

			for (from = 1; from <= state_vocabulary(kind)->max_code; from++)
			{
				if (t->events[i].from & StateBit(from))
					legal_targets[kind][from] |= StateBit(t->events[i].to);
			}
		}
	}
	legal_targets_ready = true;
}

/* A code outside the vocabulary (written by a later version of oms) has no legal moves here. */
static inline uint32
targets_of(StateKind kind, int32 from)
{
	if (!legal_targets_ready)
		build_legal_targets();
	if (from < 1 || from > state_vocabulary(kind)->max_code)
		return 0;
	return legal_targets[kind][from];
}

bool
state_move_is_legal(StateKind kind, int32 from, int32 to)
{
	if (to < 1 || to > state_vocabulary(kind)->max_code)
		return false;
	return (targets_of(kind, from) & StateBit(to)) != 0;
}

/* "a, b, c" of the names of the states in a mask, in lifecycle order. */
static char *
state_mask_names(StateKind kind, uint32 mask)
{
	const StateVocabulary *v = state_vocabulary(kind);
	StringInfoData buf;
	int			rank;
	int32		code;

	initStringInfo(&buf);
	for (rank = 1; rank <= v->max_code; rank++)
		for (code = 1; code <= v->max_code; code++)
			if (v->rank[code] == rank && (mask & StateBit(code)))
				appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", v->names[code]);
	return buf.data;
}

/* "a, b, c" of the events that may start from a state (or of all events when from is 0). */
static char *
event_names(StateKind kind, int32 from)
{
	const TransitionTable *t = &transition_tables[kind];
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < t->nevents; i++)
		if (from == 0 || (t->events[i].from & StateBit(from)))
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", t->events[i].name);
	return buf.data;
}

/* Applies an event to a state; the errors name the state and event and hint at the legal ones. */
static int32
apply_event(StateKind kind, int32 from, const char *event)
{
	const TransitionTable *t = &transition_tables[kind];
	int			i;

	for (i = 0; i < t->nevents; i++)
	{
		if (strcmp(t->events[i].name, event) != 0)
			continue;
		if (t->events[i].from & StateBit(from))
			return t->events[i].to;
		if (targets_of(kind, from) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("illegal transition of %s state \"%s\" on event \"%s\"",
							t->noun, state_name(kind, from), event),
					 errhint("\"%s\" is a terminal state: no event leaves it.", state_name(kind, from))));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("illegal transition of %s state \"%s\" on event \"%s\"",
						t->noun, state_name(kind, from), event),
				 errhint("Legal events from \"%s\": %s.", state_name(kind, from), event_names(kind, from))));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown %s event \"%s\"", t->noun, oms_clip(event)),
			 errhint("The %s events are: %s.", t->noun, event_names(kind, 0))));
	return 0;						/* keep the compiler quiet */
}

PG_FUNCTION_INFO_V1(oms_order_state_transition);

/* oms.transition(oms.order_state, event text) RETURNS oms.order_state */
Datum
oms_order_state_transition(PG_FUNCTION_ARGS)
{
	char	   *event = text_to_cstring(PG_GETARG_TEXT_PP(1));

	return StateCodeGetDatum(apply_event(STATE_KIND_ORDER, DatumGetStateCode(PG_GETARG_DATUM(0)), event));
}

PG_FUNCTION_INFO_V1(oms_line_state_transition);

/* oms.transition(oms.line_state, event text) RETURNS oms.line_state */
Datum
oms_line_state_transition(PG_FUNCTION_ARGS)
{
	char	   *event = text_to_cstring(PG_GETARG_TEXT_PP(1));

	return StateCodeGetDatum(apply_event(STATE_KIND_LINE, DatumGetStateCode(PG_GETARG_DATUM(0)), event));
}

PG_FUNCTION_INFO_V1(oms_order_state_is_legal);

/* oms.is_legal(from oms.order_state, to oms.order_state) */
Datum
oms_order_state_is_legal(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(state_move_is_legal(STATE_KIND_ORDER, DatumGetStateCode(PG_GETARG_DATUM(0)),
									   DatumGetStateCode(PG_GETARG_DATUM(1))));
}

PG_FUNCTION_INFO_V1(oms_line_state_is_legal);

/* oms.is_legal(from oms.line_state, to oms.line_state) */
Datum
oms_line_state_is_legal(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(state_move_is_legal(STATE_KIND_LINE, DatumGetStateCode(PG_GETARG_DATUM(0)),
									   DatumGetStateCode(PG_GETARG_DATUM(1))));
}

PG_FUNCTION_INFO_V1(oms_legal_moves);

/*
 * oms.legal_moves() RETURNS TABLE (state_type, from_state, event, to_state): both transition
 * tables, one row per (from, event), orders first, then lines, each by lifecycle rank of "from"
 * and then in table order.
 */
Datum
oms_legal_moves(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const StateKind kinds[2] = {STATE_KIND_ORDER, STATE_KIND_LINE};
	int			k;

	InitMaterializedSRF(fcinfo, 0);

	for (k = 0; k < 2; k++)
	{
		StateKind	kind = kinds[k];
		const StateVocabulary *v = state_vocabulary(kind);
		const TransitionTable *t = &transition_tables[kind];
		int			rank;

		for (rank = 1; rank <= v->max_code; rank++)
		{
			int32		from;

			for (from = 1; from <= v->max_code; from++)
			{
				int			i;

				if (v->rank[from] != rank)
					continue;
				for (i = 0; i < t->nevents; i++)
				{
					Datum		values[4];
					bool		nulls[4] = {false, false, false, false};

					if (!(t->events[i].from & StateBit(from)))
						continue;
					values[0] = CStringGetTextDatum(v->typname + strlen("oms."));
					values[1] = CStringGetTextDatum(v->names[from]);
					values[2] = CStringGetTextDatum(t->events[i].name);
					values[3] = CStringGetTextDatum(state_name(kind, t->events[i].to));
					tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
				}
			}
		}
	}
	return (Datum) 0;
}

/* ----- the state trigger ----- */

/*
 * What the trigger needs to know about a table it is attached to, found once per table (and again
 * after the table is altered: a relcache callback forgets it).
 */
typedef struct StateRelInfo
{
	Oid			relid;				/* InvalidOid: free slot */
	StateKind	kind;				/* orders or order_lines */
	AttrNumber	tenant_att;			/* tenant_id */
	AttrNumber	order_att;			/* orders.id or order_lines.order_id */
	AttrNumber	line_att;			/* order_lines.line_no; InvalidAttrNumber for orders */
	AttrNumber	state_att;			/* state */
	AttrNumber	updated_att;		/* orders.updated_at; InvalidAttrNumber for order_lines */
} StateRelInfo;

#define STATE_REL_SLOTS 8

static StateRelInfo state_rels[STATE_REL_SLOTS];
static bool state_rel_callback_registered = false;

/* Cached name of the session user, who is changed_by unless oms.actor says otherwise. */
static Oid	session_user_oid = InvalidOid;
static char session_user_name[NAMEDATALEN];

static void
state_rel_invalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < STATE_REL_SLOTS; i++)
		if (relid == InvalidOid || state_rels[i].relid == relid)
			state_rels[i].relid = InvalidOid;
}

static AttrNumber
state_rel_column(Relation rel, const char *name, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		if (att->atttypid != type)
			elog(ERROR, "oms.state_trigger: column \"%s\" of table \"%s\" has type %s, expected %s",
				 name, RelationGetRelationName(rel), format_type_be(att->atttypid), format_type_be(type));
		return att->attnum;
	}
	elog(ERROR, "oms.state_trigger: table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), name);
	return InvalidAttrNumber;		/* keep the compiler quiet */
}

/* The trigger's knowledge of a table; the trigger argument says "order" or "line". */
static StateRelInfo *
state_rel_info(TriggerData *tdata)
{
	Relation	rel = tdata->tg_relation;
	Oid			relid = RelationGetRelid(rel);
	StateRelInfo info;
	const char *arg;
	Oid			state_type;
	int			i;

	for (i = 0; i < STATE_REL_SLOTS; i++)
		if (state_rels[i].relid == relid)
			return &state_rels[i];

	if (!state_rel_callback_registered)
	{
		oms_register_relcache_callback(state_rel_invalidate);
		state_rel_callback_registered = true;
	}

	if (tdata->tg_trigger->tgnargs != 1)
		elog(ERROR, "oms.state_trigger on \"%s\" needs one argument, 'order' or 'line'",
			 RelationGetRelationName(rel));
	arg = tdata->tg_trigger->tgargs[0];
	if (strcmp(arg, "order") == 0)
		info.kind = STATE_KIND_ORDER;
	else if (strcmp(arg, "line") == 0)
		info.kind = STATE_KIND_LINE;
	else
		elog(ERROR, "oms.state_trigger on \"%s\": argument \"%s\" is neither 'order' nor 'line'",
			 RelationGetRelationName(rel), arg);

	/* The state types live in the schema of the tables. */
	state_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								 CStringGetDatum(info.kind == STATE_KIND_ORDER ? "order_state" : "line_state"),
								 ObjectIdGetDatum(RelationGetNamespace(rel)));
	if (!OidIsValid(state_type))
		elog(ERROR, "oms.state_trigger: no state type in the schema of \"%s\"", RelationGetRelationName(rel));

	info.relid = relid;
	info.tenant_att = state_rel_column(rel, "tenant_id", INT4OID);
	info.state_att = state_rel_column(rel, "state", state_type);
	if (info.kind == STATE_KIND_ORDER)
	{
		info.order_att = state_rel_column(rel, "id", INT8OID);
		info.line_att = InvalidAttrNumber;
		info.updated_att = state_rel_column(rel, "updated_at", TIMESTAMPTZOID);
	}
	else
	{
		info.order_att = state_rel_column(rel, "order_id", INT8OID);
		info.line_att = state_rel_column(rel, "line_no", INT4OID);
		info.updated_att = InvalidAttrNumber;
	}

	for (i = 0; i < STATE_REL_SLOTS; i++)
	{
		if (state_rels[i].relid == InvalidOid)
		{
			state_rels[i] = info;
			return &state_rels[i];
		}
	}
	/* More tables than slots (never, with two tables): start over. */
	state_rel_invalidate((Datum) 0, InvalidOid);
	state_rels[0] = info;
	return &state_rels[0];
}

static const char *
current_actor(void)
{
	Oid			user = GetSessionUserId();

	if (oms_actor != NULL && oms_actor[0] != '\0')
		return oms_actor;
	if (user != session_user_oid)
	{
		strlcpy(session_user_name, GetUserNameFromId(user, false), NAMEDATALEN);
		session_user_oid = user;
	}
	return session_user_name;
}

/* One row of oms.order_history; from 0 means "created" (from_state NULL). */
static void
record_history(const StateRelInfo *info, HeapTuple tuple, TupleDesc desc, int32 from, int32 to)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int			rc;

	values[0] = heap_getattr(tuple, info->tenant_att, desc, &isnull);
	if (isnull)
		nulls[0] = 'n';
	values[1] = heap_getattr(tuple, info->order_att, desc, &isnull);
	if (isnull)
		nulls[1] = 'n';
	if (info->line_att != InvalidAttrNumber)
	{
		values[2] = heap_getattr(tuple, info->line_att, desc, &isnull);
		if (isnull)
			nulls[2] = 'n';
	}
	else
	{
		values[2] = (Datum) 0;
		nulls[2] = 'n';
	}
	if (from != 0)
		values[3] = CStringGetTextDatum(state_name(info->kind, from));
	else
	{
		values[3] = (Datum) 0;
		nulls[3] = 'n';
	}
	values[4] = CStringGetTextDatum(state_name(info->kind, to));
	values[5] = CStringGetTextDatum(current_actor());
	if (oms_reason != NULL && oms_reason[0] != '\0')
		values[6] = CStringGetTextDatum(oms_reason);
	else
	{
		values[6] = (Datum) 0;
		nulls[6] = 'n';
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "oms.state_trigger: SPI_connect failed");
	if (plan == NULL)
	{
		Oid			types[7] = {INT4OID, INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		plan = oms_prepare("INSERT INTO oms.order_history"
						   " (tenant_id, order_id, line_no, from_state, to_state, changed_by, reason)"
						   " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
	}
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "oms.state_trigger: history insert failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

PG_FUNCTION_INFO_V1(oms_state_trigger);

/*
 * oms.state_trigger(): on orders ('order') and order_lines ('line'), FOR EACH ROW.
 * INSERT (AFTER, so that a row skipped by ON CONFLICT leaves no history): records the first state.
 * UPDATE (BEFORE): a changed state must be a legal move, else error 55000 naming both states and
 * hinting at the legal targets; the move is recorded. On orders, updated_at is set to now().
 */
Datum
oms_state_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *tdata = (TriggerData *) fcinfo->context;
	const StateRelInfo *info;
	TupleDesc	desc;
	HeapTuple	result;
	Datum		d;
	bool		isnull;
	int32		from;
	int32		to;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("oms.state_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(tdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("oms.state_trigger() must be fired FOR EACH ROW")));

	info = state_rel_info(tdata);
	desc = RelationGetDescr(tdata->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(tdata->tg_event))
	{
		d = heap_getattr(tdata->tg_trigtuple, info->state_att, desc, &isnull);
		if (!isnull)
			record_history(info, tdata->tg_trigtuple, desc, 0, DatumGetStateCode(d));
		return PointerGetDatum(tdata->tg_trigtuple);
	}
	if (!TRIGGER_FIRED_BY_UPDATE(tdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("oms.state_trigger() must be fired by INSERT or UPDATE")));

	result = tdata->tg_newtuple;

	d = heap_getattr(tdata->tg_trigtuple, info->state_att, desc, &isnull);
	from = isnull ? 0 : DatumGetStateCode(d);
	d = heap_getattr(tdata->tg_newtuple, info->state_att, desc, &isnull);
	to = isnull ? 0 : DatumGetStateCode(d);

	/* A NULL state is left to the NOT NULL constraint, which runs after BEFORE triggers. */
	if (from != 0 && to != 0 && from != to)
	{
		if (!state_move_is_legal(info->kind, from, to))
		{
			const char *noun = info->kind == STATE_KIND_ORDER ? "order" : "line";
			int64		order_id = DatumGetInt64(heap_getattr(tdata->tg_trigtuple, info->order_att, desc, &isnull));
			uint32		targets = targets_of(info->kind, from);

			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("illegal change of %s state from \"%s\" to \"%s\"",
							noun, state_name(info->kind, from), state_name(info->kind, to)),
					 info->kind == STATE_KIND_ORDER ?
					 errdetail("Order %lld.", (long long) order_id) :
					 errdetail("Order %lld, line %d.", (long long) order_id,
							   DatumGetInt32(heap_getattr(tdata->tg_trigtuple, info->line_att, desc, &isnull))),
					 targets == 0 ?
					 errhint("\"%s\" is a terminal state: its %s cannot change.",
							 state_name(info->kind, from), noun) :
					 errhint("Legal targets from \"%s\": %s.",
							 state_name(info->kind, from), state_mask_names(info->kind, targets & ~StateBit(from)))));
		}
		record_history(info, tdata->tg_newtuple, desc, from, to);
	}

	/* updated_at, in the caller's memory context (not SPI's): the executor frees the old tuple. */
	if (info->updated_att != InvalidAttrNumber && TRIGGER_FIRED_BEFORE(tdata->tg_event))
	{
		int			col = info->updated_att;
		Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		bool		nonull = false;

		result = heap_modify_tuple_by_cols(tdata->tg_newtuple, desc, 1, &col, &now, &nonull);
	}
	return PointerGetDatum(result);
}
