/*
 * order_state.h
 *		The two state types of oms, oms.order_state and oms.line_state, as C sees them.
 *
 * A state is stored as a stable code number in 4 bytes, passed by value. Codes are never
 * renumbered: a new state is appended with the next code, and its place in the lifecycle order
 * (which the comparison operators use) comes from a separate rank table in order_state.c.
 */
#ifndef OMS_ORDER_STATE_H
#define OMS_ORDER_STATE_H

#include "postgres.h"
#include "fmgr.h"

/* Codes of oms.order_state: stored on disk, never renumber. */
typedef enum OrderState
{
	OS_CREATED = 1,
	OS_ON_HOLD = 2,
	OS_CONFIRMED = 3,
	OS_BACKORDERED = 4,
	OS_PARTIALLY_ALLOCATED = 5,
	OS_ALLOCATED = 6,
	OS_RELEASED = 7,
	OS_PARTIALLY_SHIPPED = 8,
	OS_SHIPPED = 9,
	OS_DELIVERED = 10,
	OS_PARTIALLY_RETURNED = 11,
	OS_RETURNED = 12,
	OS_CANCELLED = 13,
	OS_CLOSED = 14
} OrderState;

#define ORDER_STATE_MAX		14		/* highest code in use */

/* Codes of oms.line_state: stored on disk, never renumber. */
typedef enum LineState
{
	LS_CREATED = 1,
	LS_BACKORDERED = 2,
	LS_PREORDERED = 3,
	LS_ALLOCATED = 4,
	LS_RELEASED = 5,
	LS_PICKED = 6,
	LS_PACKED = 7,
	LS_READY_FOR_PICKUP = 8,
	LS_PARTIALLY_SHIPPED = 9,
	LS_SHIPPED = 10,
	LS_DELIVERED = 11,
	LS_PARTIALLY_RETURNED = 12,
	LS_RETURNED = 13,
	LS_REJECTED = 14,
	LS_CANCELLED = 15
} LineState;

#define LINE_STATE_MAX		15		/* highest code in use */

/* Which of the two types a value, a table or a trigger is about. */
typedef enum StateKind
{
	STATE_KIND_ORDER = 0,
	STATE_KIND_LINE = 1
} StateKind;

/*
 * The vocabulary of one state type: names indexed by code (index 0 unused), lifecycle rank
 * indexed by code, and the SQL name of the type for messages.
 */
typedef struct StateVocabulary
{
	const char *typname;			/* "oms.order_state" */
	int			max_code;			/* highest code in use */
	const char *const *names;		/* names[code] */
	const int16 *rank;				/* rank[code]: position in the lifecycle, 1-based */
} StateVocabulary;

extern const StateVocabulary order_state_vocabulary;
extern const StateVocabulary line_state_vocabulary;

static inline const StateVocabulary *
state_vocabulary(StateKind kind)
{
	return kind == STATE_KIND_ORDER ? &order_state_vocabulary : &line_state_vocabulary;
}

/* The name of a state code ("shipped"); "?" for a code outside the vocabulary. */
static inline const char *
state_name(StateKind kind, int32 code)
{
	const StateVocabulary *v = state_vocabulary(kind);

	return (code >= 1 && code <= v->max_code) ? v->names[code] : "?";
}

/* The code of a state name, or 0 when the name is not in the vocabulary. */
extern int32 state_code(StateKind kind, const char *name);

/* "created, on_hold, ..." in lifecycle order, palloc'd: for hints. */
extern char *state_name_list(StateKind kind);

/* transition.c: is there an event that moves a state of this kind from "from" to "to"? */
extern bool state_move_is_legal(StateKind kind, int32 from, int32 to);

/* order_state.c: the order state that a set of line states (a bitmask of codes) rolls up to. */
extern int32 order_state_rollup(uint32 line_states_seen);

#define StateBit(code)			((uint32) 1 << (code))

#define DatumGetStateCode(d)	DatumGetInt32(d)
#define StateCodeGetDatum(c)	Int32GetDatum(c)

#endif							/* OMS_ORDER_STATE_H */
