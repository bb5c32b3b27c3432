/*
 * order_state.c
 *		The state types oms.order_state and oms.line_state: text and binary I/O, comparison in
 *		lifecycle order, btree and hash support, and the rollup of line states into an order state.
 *
 * The one idea: a state is a small stable code number (4 bytes, by value) that sorts by its place
 * in the lifecycle, not by its code. Codes are what is on disk, so they are never renumbered; a
 * state added later gets the next code and slots into the lifecycle through the rank table. This
 * is what an enum cannot do across versions without rewriting tables, and it is what lets C code
 * (the transition tables, the trigger, the rollup) work on plain integers.
 *
 * Vocabulary of oms.order_state (the order as a whole; mostly a rollup of its lines):
 *
 *	code rank name					meaning
 *	---- ---- --------------------	--------------------------------------------------------------
 *	  1    1  created				captured, nothing allocated yet (or no lines)
 *	  2    2  on_hold				held by a person or rule (fraud check, payment); no progress
 *	  3    3  confirmed				accepted, lines waiting for (re)allocation (e.g. a rejected line)
 *	  4    4  backordered			every open line waits for supply (backordered or preordered)
 *	  5    5  partially_allocated	some open lines have stock, others do not yet
 *	  6    6  allocated				every open line has stock reserved at a location
 *	  7    7  released				every open line sent to its location for fulfilment
 *	  8    8  partially_shipped		some units left, others have not yet
 *	  9    9  shipped				every open line shipped (some may be delivered already)
 *	 10   10  delivered				every open line delivered or collected
 *	 11   11  partially_returned	some units came back
 *	 12   12  returned				every open line came back
 *	 13   13  cancelled				every line cancelled; terminal
 *	 14   14  closed				finished (settled, no more returns); terminal
 *
 * Vocabulary of oms.line_state (one order line):
 *
 *	code rank name					meaning
 *	---- ---- --------------------	--------------------------------------------------------------
 *	  1    1  created				captured, not yet allocated
 *	  2    2  backordered			no stock now; waits for incoming supply
 *	  3    3  preordered			item not yet released for sale; waits for its release
 *	  4    4  allocated				stock reserved at a location
 *	  5    5  released				sent to the location (warehouse, store, 3PL) to fulfil
 *	  6    6  picked				picked from the shelf
 *	  7    7  packed				packed, waiting for the carrier
 *	  8    8  ready_for_pickup		waiting in store for the customer (click & collect)
 *	  9    9  partially_shipped		some units shipped, the rest still to come
 *	 10   10  shipped				every unit handed to the carrier
 *	 11   11  delivered				delivered to, or collected by, the customer
 *	 12   12  partially_returned	some units came back
 *	 13   13  returned				every shipped unit came back
 *	 14   14  rejected				the location could not fulfil it; to be rerouted
 *	 15   15  cancelled				cancelled; terminal
 *
 * Ranks equal codes today; they are kept in their own tables so that a state appended later
 * (code 16) can still sort between, say, picked and packed.
 */
#include "postgres.h"

#include "access/hash.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/sortsupport.h"

#include "oms.h"
#include "order_state.h"

static const char *const order_state_names[ORDER_STATE_MAX + 1] = {
	NULL,
	"created", "on_hold", "confirmed", "backordered", "partially_allocated", "allocated",
	"released", "partially_shipped", "shipped", "delivered", "partially_returned", "returned",
	"cancelled", "closed"
};

static const int16 order_state_rank[ORDER_STATE_MAX + 1] = {
	0,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14
};

static const char *const line_state_names[LINE_STATE_MAX + 1] = {
	NULL,
	"created", "backordered", "preordered", "allocated", "released", "picked", "packed",
	"ready_for_pickup", "partially_shipped", "shipped", "delivered", "partially_returned",
	"returned", "rejected", "cancelled"
};

static const int16 line_state_rank[LINE_STATE_MAX + 1] = {
	0,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
};

const StateVocabulary order_state_vocabulary = {
	"oms.order_state", ORDER_STATE_MAX, order_state_names, order_state_rank
};

const StateVocabulary line_state_vocabulary = {
	"oms.line_state", LINE_STATE_MAX, line_state_names, line_state_rank
};

int32
state_code(StateKind kind, const char *name)
{
	const StateVocabulary *v = state_vocabulary(kind);
	int32		code;

	for (code = 1; code <= v->max_code; code++)
	{
		if (strcmp(v->names[code], name) == 0)
			return code;
	}
	return 0;
}

char *
state_name_list(StateKind kind)
{
	const StateVocabulary *v = state_vocabulary(kind);
	StringInfoData buf;
	int			rank;

	initStringInfo(&buf);
	for (rank = 1; rank <= v->max_code; rank++)
	{
		int32		code;

		for (code = 1; code <= v->max_code; code++)
		{
			if (v->rank[code] == rank)
			{
				appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", v->names[code]);
				break;
			}
		}
	}
	return buf.data;
}

/* ----- text and binary I/O ----- */

static Datum
state_in(StateKind kind, const char *str)
{
	int32		code = state_code(kind, str);

	if (code == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input value for %s: \"%s\"",
						state_vocabulary(kind)->typname, oms_clip(str)),
				 errhint("Valid values are: %s.", state_name_list(kind))));
	return StateCodeGetDatum(code);
}

static Datum
state_out(StateKind kind, int32 code)
{
	if (code < 1 || code > state_vocabulary(kind)->max_code)
		elog(ERROR, "invalid %s code %d", state_vocabulary(kind)->typname, code);
	return CStringGetDatum(pstrdup(state_name(kind, code)));
}

/* Binary form: the code as an int4, so that a client reading it sees the stable number. */
static Datum
state_recv(StateKind kind, StringInfo buf)
{
	int32		code = pq_getmsgint(buf, 4);

	if (code < 1 || code > state_vocabulary(kind)->max_code)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid code %d for %s", code, state_vocabulary(kind)->typname)));
	return StateCodeGetDatum(code);
}

static Datum
state_send(int32 code)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, code);
	return PointerGetDatum(pq_endtypsend(&buf));
}

/* ----- comparison in lifecycle order ----- */

/*
 * Input and recv accept only codes of the vocabulary, but a value on disk may have been written
 * by a later version of oms with more states: refuse it rather than read past a table.
 */
static pg_noinline void
state_code_out_of_range(int32 code)
{
	elog(ERROR, "oms: state code %d is not known to this version of oms", code);
}

static inline int
state_cmp(const int16 *rank, int32 max_code, int32 a, int32 b)
{
	int16		ra;
	int16		rb;

	if (unlikely((uint32) a > (uint32) max_code || (uint32) b > (uint32) max_code))
		state_code_out_of_range((uint32) a > (uint32) max_code ? a : b);
	ra = rank[a];
	rb = rank[b];
	return (ra > rb) - (ra < rb);
}

static int
order_state_fastcmp(Datum a, Datum b, SortSupport ssup)
{
	return state_cmp(order_state_rank, ORDER_STATE_MAX, DatumGetStateCode(a), DatumGetStateCode(b));
}

static int
line_state_fastcmp(Datum a, Datum b, SortSupport ssup)
{
	return state_cmp(line_state_rank, LINE_STATE_MAX, DatumGetStateCode(a), DatumGetStateCode(b));
}

/*
 * The SQL-callable functions of both types, generated from one template: the two types differ
 * only in their vocabulary. A code outside the vocabulary cannot reach the comparison functions
 * (input and recv reject it), so they index the rank table directly.
 */
#define STATE_TYPE_FUNCTIONS(prefix, KIND, RANK, MAXCODE) \
PG_FUNCTION_INFO_V1(oms_##prefix##_in); \
Datum oms_##prefix##_in(PG_FUNCTION_ARGS) \
{ \
	return state_in(KIND, PG_GETARG_CSTRING(0)); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_out); \
Datum oms_##prefix##_out(PG_FUNCTION_ARGS) \
{ \
	return state_out(KIND, DatumGetStateCode(PG_GETARG_DATUM(0))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_recv); \
Datum oms_##prefix##_recv(PG_FUNCTION_ARGS) \
{ \
	return state_recv(KIND, (StringInfo) PG_GETARG_POINTER(0)); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_send); \
Datum oms_##prefix##_send(PG_FUNCTION_ARGS) \
{ \
	return state_send(DatumGetStateCode(PG_GETARG_DATUM(0))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_cmp); \
Datum oms_##prefix##_cmp(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_INT32(state_cmp(RANK, MAXCODE, DatumGetStateCode(PG_GETARG_DATUM(0)), \
							  DatumGetStateCode(PG_GETARG_DATUM(1)))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_lt); \
Datum oms_##prefix##_lt(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(state_cmp(RANK, MAXCODE, DatumGetStateCode(PG_GETARG_DATUM(0)), \
							 DatumGetStateCode(PG_GETARG_DATUM(1))) < 0); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_le); \
Datum oms_##prefix##_le(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(state_cmp(RANK, MAXCODE, DatumGetStateCode(PG_GETARG_DATUM(0)), \
							 DatumGetStateCode(PG_GETARG_DATUM(1))) <= 0); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_eq); \
Datum oms_##prefix##_eq(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(DatumGetStateCode(PG_GETARG_DATUM(0)) == DatumGetStateCode(PG_GETARG_DATUM(1))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_ne); \
Datum oms_##prefix##_ne(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(DatumGetStateCode(PG_GETARG_DATUM(0)) != DatumGetStateCode(PG_GETARG_DATUM(1))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_ge); \
Datum oms_##prefix##_ge(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(state_cmp(RANK, MAXCODE, DatumGetStateCode(PG_GETARG_DATUM(0)), \
							 DatumGetStateCode(PG_GETARG_DATUM(1))) >= 0); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_gt); \
Datum oms_##prefix##_gt(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(state_cmp(RANK, MAXCODE, DatumGetStateCode(PG_GETARG_DATUM(0)), \
							 DatumGetStateCode(PG_GETARG_DATUM(1))) > 0); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_hash); \
Datum oms_##prefix##_hash(PG_FUNCTION_ARGS) \
{ \
	return hash_uint32((uint32) DatumGetStateCode(PG_GETARG_DATUM(0))); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_hash_extended); \
Datum oms_##prefix##_hash_extended(PG_FUNCTION_ARGS) \
{ \
	return hash_uint32_extended((uint32) DatumGetStateCode(PG_GETARG_DATUM(0)), \
								PG_GETARG_INT64(1)); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_sortsupport); \
Datum oms_##prefix##_sortsupport(PG_FUNCTION_ARGS) \
{ \
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0); \
	ssup->comparator = prefix##_fastcmp; \
	PG_RETURN_VOID(); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_rank); \
Datum oms_##prefix##_rank(PG_FUNCTION_ARGS) \
{ \
	int32		code_ = DatumGetStateCode(PG_GETARG_DATUM(0)); \
	if (unlikely((uint32) code_ > (uint32) MAXCODE)) \
		state_code_out_of_range(code_); \
	PG_RETURN_INT32(RANK[code_]); \
} \
PG_FUNCTION_INFO_V1(oms_##prefix##_code); \
Datum oms_##prefix##_code(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_INT32(DatumGetStateCode(PG_GETARG_DATUM(0))); \
}

STATE_TYPE_FUNCTIONS(order_state, STATE_KIND_ORDER, order_state_rank, ORDER_STATE_MAX)
STATE_TYPE_FUNCTIONS(line_state, STATE_KIND_LINE, line_state_rank, LINE_STATE_MAX)

/* ----- rollup of line states into an order state ----- */

#define LS(code)	StateBit(LS_##code)

/*
 * The rules, first match wins; cancelled lines are ignored unless every line is cancelled:
 *
 *	lines (ignoring cancelled ones)							order
 *	-------------------------------------------------------	--------------------
 *	none at all												created
 *	all cancelled											cancelled
 *	all returned											returned
 *	any returned or partially_returned						partially_returned
 *	all delivered											delivered
 *	all shipped or delivered								shipped
 *	any partially_shipped, shipped or delivered				partially_shipped
 *	all released, picked, packed or ready_for_pickup		released
 *	all allocated or further (as in the line above)			allocated
 *	any allocated or further								partially_allocated
 *	all backordered or preordered							backordered
 *	all created												created
 *	otherwise (created, rejected, backordered, preordered)	confirmed
 *
 * Only which states occur matters, not how many lines are in each: the argument is a bitmask.
 */
int32
order_state_rollup(uint32 seen)
{
	const uint32 released = LS(RELEASED) | LS(PICKED) | LS(PACKED) | LS(READY_FOR_PICKUP);
	const uint32 allocated = released | LS(ALLOCATED);
	uint32		open = seen & ~LS(CANCELLED);

	if (seen == 0)
		return OS_CREATED;
	if (open == 0)
		return OS_CANCELLED;
	if (open == LS(RETURNED))
		return OS_RETURNED;
	if (open & (LS(RETURNED) | LS(PARTIALLY_RETURNED)))
		return OS_PARTIALLY_RETURNED;
	if (open == LS(DELIVERED))
		return OS_DELIVERED;
	if ((open & ~(LS(SHIPPED) | LS(DELIVERED))) == 0)
		return OS_SHIPPED;
	if (open & (LS(PARTIALLY_SHIPPED) | LS(SHIPPED) | LS(DELIVERED)))
		return OS_PARTIALLY_SHIPPED;
	if ((open & ~released) == 0)
		return OS_RELEASED;
	if ((open & ~allocated) == 0)
		return OS_ALLOCATED;
	if (open & allocated)
		return OS_PARTIALLY_ALLOCATED;
	if ((open & ~(LS(BACKORDERED) | LS(PREORDERED))) == 0)
		return OS_BACKORDERED;
	if (open == LS(CREATED))
		return OS_CREATED;
	return OS_CONFIRMED;
}

/*
 * The aggregate oms.rollup(oms.line_state): its state is the int4 bitmask of the line states
 * seen (initially 0, NULLs skipped as the step is strict); partial states combine with int4or.
 */
PG_FUNCTION_INFO_V1(oms_rollup_step);

Datum
oms_rollup_step(PG_FUNCTION_ARGS)
{
	uint32		seen = (uint32) PG_GETARG_INT32(0);
	int32		code = DatumGetStateCode(PG_GETARG_DATUM(1));

	if (unlikely(code < 1 || code > LINE_STATE_MAX))
		state_code_out_of_range(code);
	PG_RETURN_INT32((int32) (seen | StateBit(code)));
}

PG_FUNCTION_INFO_V1(oms_rollup_final);

Datum
oms_rollup_final(PG_FUNCTION_ARGS)
{
	uint32		seen = PG_ARGISNULL(0) ? 0 : (uint32) PG_GETARG_INT32(0);

	return StateCodeGetDatum(order_state_rollup(seen));
}

PG_FUNCTION_INFO_V1(oms_rollup_array);

/* oms.rollup(oms.line_state[]): the same rules over an array; NULL elements are skipped. */
Datum
oms_rollup_array(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	ArrayIterator it;
	Datum		value;
	bool		isnull;
	uint32		seen = 0;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("oms.rollup() takes a one-dimensional array of line states")));
	it = array_create_iterator(arr, 0, NULL);
	while (array_iterate(it, &value, &isnull))
	{
		if (isnull)
			continue;
		if (unlikely(DatumGetStateCode(value) < 1 || DatumGetStateCode(value) > LINE_STATE_MAX))
			state_code_out_of_range(DatumGetStateCode(value));
		seen |= StateBit(DatumGetStateCode(value));
	}
	array_free_iterator(it);
	return StateCodeGetDatum(order_state_rollup(seen));
}
