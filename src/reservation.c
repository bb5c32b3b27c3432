/*
 * reservation.c
 *		The reservation trigger, the only thing that moves stock.reserved, and the guard that
 *		keeps it the only thing.
 *
 * Every insert, update or delete of a row of oms.reservations moves stock.reserved of the same
 * (tenant, item, location) in the same transaction. Taking stock is ONE statement that checks
 * and takes:
 *
 *		UPDATE oms.stock SET reserved = reserved + q
 *		 WHERE (key) AND on_hand - reserved - safety_stock >= q
 *
 * so there is no window between the check and the write: a concurrent transaction that wants
 * the same row waits for its lock and, under READ COMMITTED, re-evaluates the WHERE clause on the
 * row version the first one committed. Two orders can never both take the last unit, however
 * many application servers send them. (Under REPEATABLE READ or SERIALIZABLE the waiter gets a
 * serialization failure instead and must retry, as usual.) The check honours safety stock: a
 * reservation can take on_hand - reserved - safety_stock units at most, the same number that
 * oms.atp() promises. No stock row means nothing is available.
 *
 * The counter cannot drift (the lesson of Odoo and Medusa, whose reserved counters did): the
 * guard oms.stock_guard() refuses every change of stock.reserved that this trigger does not make
 * (a backend-local "moving" key is set around our own UPDATE, and cleared again on error), every
 * stock row inserted with reserved <> 0, and every delete or re-keying of a stock row that still
 * has reserved units. What is left is the CHECK (0 <= reserved <= on_hand) as the last line of
 * defence, and oms.check_stock_invariants() to prove it.
 *
 * Pre-orders reserve incoming supply instead of stock: a reservation with supply_id moves
 * oms.supply.promised of that supply by the same kind of statement (qty - promised must cover
 * it), and oms.supply_guard() keeps promised moving only that way. Stock rows are always locked
 * before supply rows (keys compare so), so a reservation moving from supply to stock when the
 * goods arrive follows the same order as everything else.
 *
 * The trigger reads the tenant from the row itself, never from oms.tenant, so that it touches only
 * rows of the reservation's own tenant (node-local on Citus) and works in the background worker.
 * Callers that reserve several rows in one transaction insert them in (item_id, location_id) order,
 * so that concurrent orders lock stock rows in one order and never deadlock.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "errcodes.h"
#include "oms.h"

/*
 * The key of a stock row, and of the stock a reservation takes from; supply_id (0: none) names
 * the supply a pre-order takes from instead.
 */
typedef struct StockKey
{
	int32		tenant_id;
	int32		item_id;
	int32		location_id;
	int64		supply_id;
} StockKey;

/* Column numbers, found once per relation (by OID: a re-created table is looked at again). */
typedef struct KeyColumns
{
	Oid			relid;
	AttrNumber	tenant_id;
	AttrNumber	item_id;
	AttrNumber	location_id;
	AttrNumber	amount;			/* reservations.qty or stock.reserved */
	AttrNumber	supply_id;		/* reservations.supply_id; 0: no such column */
} KeyColumns;

static KeyColumns reservation_columns = {InvalidOid};
static KeyColumns stock_columns = {InvalidOid};

/*
 * The stock row that the reservation trigger is updating right now, or NULL. The guard lets a
 * change of reserved through only for this row; it is set around our own UPDATE and restored
 * also when that UPDATE fails.
 */
static const StockKey *moving_key = NULL;

static SPIPlanPtr take_plan = NULL;
static SPIPlanPtr give_back_plan = NULL;
static SPIPlanPtr take_supply_plan = NULL;
static SPIPlanPtr give_supply_plan = NULL;
static SPIPlanPtr hot_plan = NULL;
static SPIPlanPtr slot_take_plan = NULL;
static SPIPlanPtr slot_take_unheld_plan = NULL;
static SPIPlanPtr slot_refill_plan = NULL;
static SPIPlanPtr refill_plan = NULL;
static bool slots_schema = false;	/* the plans were made for a schema with stock slots */

/* $1 tenant, $2 item, $3 location, $4 quantity: the check and the take are one statement. */
#define TAKE_SQL_WITH(HOT) \
	"UPDATE oms.stock SET reserved = reserved + $4, updated_at = pg_catalog.now()" \
	" WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3" \
	"   AND " HOT "on_hand - reserved - safety_stock >= $4"
#define TAKE_SQL TAKE_SQL_WITH("NOT hot AND ")
#define TAKE_SQL_V1 TAKE_SQL_WITH("")	/* a schema without stock slots (before 0.2.0) */

#define GIVE_BACK_SQL \
	"UPDATE oms.stock SET reserved = reserved - $4, updated_at = pg_catalog.now()" \
	" WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3"

/* $1 tenant, $2 item, $3 location, $4 quantity, $5 supply: the same for a pre-order's supply. */
#define TAKE_SUPPLY_SQL \
	"UPDATE oms.supply SET promised = promised + $4" \
	" WHERE tenant_id = $1 AND id = $5 AND item_id = $2 AND location_id = $3" \
	"   AND qty - promised >= $4"

#define GIVE_SUPPLY_SQL \
	"UPDATE oms.supply SET promised = promised - $4" \
	" WHERE tenant_id = $1 AND id = $5 AND item_id = $2 AND location_id = $3"

/* For error messages only: the supply's SKU, location, expected date and what is unpromised. */
#define DESCRIBE_SUPPLY_SQL \
	"SELECT i.sku, l.code, s.expected_date::text, greatest(s.qty - s.promised, 0)" \
	"  FROM oms.supply s" \
	"  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id" \
	"  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id" \
	" WHERE s.tenant_id = $1 AND s.id = $2"

/* For error messages only: SKU, location code and what is available now (0 without stock row). */
#define DESCRIBE_SQL_WITH(SLOTS) \
	"SELECT (SELECT i.sku FROM oms.items i WHERE i.tenant_id = $1 AND i.id = $2)," \
	"       (SELECT l.code FROM oms.locations l WHERE l.tenant_id = $1 AND l.id = $3)," \
	"       coalesce((SELECT greatest(s.on_hand - s.reserved - s.safety_stock, 0)" SLOTS \
	"                   FROM oms.stock s" \
	"                  WHERE s.tenant_id = $1 AND s.item_id = $2 AND s.location_id = $3), 0)"
#define DESCRIBE_SQL DESCRIBE_SQL_WITH( \
	"                        + CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(x.free), 0)::int8" \
	"                                                  FROM oms.stock_slots x" \
	"                                                 WHERE x.tenant_id = $1 AND x.item_id = $2" \
	"                                                   AND x.location_id = $3) ELSE 0 END")
#define DESCRIBE_SQL_V1 DESCRIBE_SQL_WITH("")

/*
 * Hot SKUs (oms.set_hot, sql/parts/56_stock_slots.sql): a hot stock row is not taken from
 * directly (TAKE_SQL skips it without locking it); its units are in slot rows. $1 tenant,
 * $2 item, $3 location, $4 quantity, $5 slot, $6 units added to the slot (a refill).
 */
#define HOT_SQL \
	"SELECT s.hot," \
	"       (SELECT pg_catalog.count(*) FROM oms.stock_slots x" \
	"         WHERE x.tenant_id = $1 AND x.item_id = $2 AND x.location_id = $3)::int4," \
	"       greatest(s.on_hand - s.reserved - s.safety_stock, 0)" \
	"  FROM oms.stock s WHERE s.tenant_id = $1 AND s.item_id = $2 AND s.location_id = $3"

/* This slot: check and take in one statement (waits while another order holds the slot). */
#define SLOT_TAKE_SQL \
	"UPDATE oms.stock_slots SET free = free - $4" \
	" WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3 AND slot = $5 AND free >= $4"

/*
 * Any slot that nobody holds and that has the units (with $6 added), slot $5 first: no waiting.
 * The slot is chosen by a scalar subquery, run once (an InitPlan): as a join, the subquery would
 * be scanned again for each slot row and, skipping the row this statement had just updated,
 * choose and update another slot each time.
 */
#define SLOT_TAKE_UNHELD_SQL \
	"UPDATE oms.stock_slots u SET free = u.free + $6 - $4" \
	" WHERE u.tenant_id = $1 AND u.item_id = $2 AND u.location_id = $3 AND u.free + $6 >= $4" \
	"   AND u.slot = (SELECT x.slot FROM oms.stock_slots x" \
	"                  WHERE x.tenant_id = $1 AND x.item_id = $2 AND x.location_id = $3" \
	"                    AND x.free + $6 >= $4" \
	"                  ORDER BY x.slot = $5 DESC, x.slot LIMIT 1 FOR UPDATE SKIP LOCKED)"

/* A refill into slot $5 (waiting for it if held), the order's units taken from it at once. */
#define SLOT_REFILL_SQL \
	"UPDATE oms.stock_slots SET free = free + $6 - $4" \
	" WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3 AND slot = $5"

/* The stock row's side of a refill: its available units move into reserved. */
#define REFILL_SQL \
	"UPDATE oms.stock SET reserved = reserved + $4, updated_at = pg_catalog.now()" \
	" WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3" \
	"   AND hot AND on_hand - reserved - safety_stock >= $4"

static void
find_columns(KeyColumns *cols, Relation rel, const char *amount_name, Oid amount_type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *names[4] = {"tenant_id", "item_id", "location_id", amount_name};
	Oid			types[4] = {INT4OID, INT4OID, INT4OID, amount_type};
	AttrNumber	found[4];

	for (int i = 0; i < 4; i++)
	{
		int			attnum = SPI_fnumber(desc, names[i]);

		if (attnum <= 0 || TupleDescAttr(desc, attnum - 1)->atttypid != types[i])
			elog(ERROR, "oms: table \"%s\" has no column \"%s\" of type %s",
				 RelationGetRelationName(rel), names[i], format_type_be(types[i]));
		found[i] = (AttrNumber) attnum;
	}
	cols->tenant_id = found[0];
	cols->item_id = found[1];
	cols->location_id = found[2];
	cols->amount = found[3];
	cols->supply_id = 0;
	if (strcmp(amount_name, "qty") == 0)
	{
		int			attnum = SPI_fnumber(desc, "supply_id");

		if (attnum > 0 && TupleDescAttr(desc, attnum - 1)->atttypid == INT8OID)
			cols->supply_id = (AttrNumber) attnum;
	}
	cols->relid = RelationGetRelid(rel);
}

static Datum
get_column(HeapTuple tuple, Relation rel, AttrNumber attnum)
{
	bool		isnull;
	Datum		value = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);

	if (isnull)
		elog(ERROR, "oms: column %d of \"%s\" is NULL", attnum, RelationGetRelationName(rel));
	return value;
}

static void
get_key(StockKey *key, HeapTuple tuple, Relation rel, const KeyColumns *cols)
{
	key->tenant_id = DatumGetInt32(get_column(tuple, rel, cols->tenant_id));
	key->item_id = DatumGetInt32(get_column(tuple, rel, cols->item_id));
	key->location_id = DatumGetInt32(get_column(tuple, rel, cols->location_id));
	key->supply_id = 0;
	if (cols->supply_id > 0)
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, cols->supply_id, RelationGetDescr(rel), &isnull);

		if (!isnull)
			key->supply_id = DatumGetInt64(value);
	}
}

/*
 * Is the key or the amount of a new row NULL? A BEFORE trigger runs ahead of the NOT NULL
 * constraints; such a row is theirs to refuse (23502), not an internal error of ours.
 */
static bool
has_null(HeapTuple tuple, Relation rel, const KeyColumns *cols)
{
	TupleDesc	desc = RelationGetDescr(rel);

	return heap_attisnull(tuple, cols->tenant_id, desc) || heap_attisnull(tuple, cols->item_id, desc) ||
		heap_attisnull(tuple, cols->location_id, desc) || heap_attisnull(tuple, cols->amount, desc);
}

/* Stock keys before supply keys, then by tenant, item, location, supply: the lock order. */
static int
compare_keys(const StockKey *a, const StockKey *b)
{
	if ((a->supply_id != 0) != (b->supply_id != 0))
		return a->supply_id == 0 ? -1 : 1;
	if (a->tenant_id != b->tenant_id)
		return a->tenant_id < b->tenant_id ? -1 : 1;
	if (a->item_id != b->item_id)
		return a->item_id < b->item_id ? -1 : 1;
	if (a->location_id != b->location_id)
		return a->location_id < b->location_id ? -1 : 1;
	if (a->supply_id != b->supply_id)
		return a->supply_id < b->supply_id ? -1 : 1;
	return 0;
}

/*
 * SKU and location code of a stock key (the ids, when they do not exist), and the units
 * available there now. Error paths only. Runs with a fresh snapshot (read_only = false), so that
 * after losing a race it reports what the winner left. The caller is connected to SPI.
 */
static void
describe_stock(const StockKey *key, char **sku, char **location, int64 *available)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	if (plan == NULL)
	{
		Oid			argtypes[3] = {INT4OID, INT4OID, INT4OID};

		plan = oms_prepare(oms_has_stock_slots() ? DESCRIBE_SQL : DESCRIBE_SQL_V1, 3, argtypes);
	}
	args[0] = Int32GetDatum(key->tenant_id);
	args[1] = Int32GetDatum(key->item_id);
	args[2] = Int32GetDatum(key->location_id);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "oms: stock description failed");
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	*sku = SPI_getvalue(row, desc, 1);
	if (*sku == NULL)
		*sku = psprintf("(item id %d)", key->item_id);
	*location = SPI_getvalue(row, desc, 2);
	if (*location == NULL)
		*location = psprintf("(location id %d)", key->location_id);
	*available = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
}

/*
 * Runs one of the two stock updates, with the guard open for this stock row only. Returns the
 * number of rows updated (0 or 1).
 */
static uint64
move_reserved(SPIPlanPtr plan, const StockKey *key, int64 qty)
{
	const StockKey *volatile saved = moving_key;
	volatile int rc = 0;
	Datum		args[5];

	args[0] = Int32GetDatum(key->tenant_id);
	args[1] = Int32GetDatum(key->item_id);
	args[2] = Int32GetDatum(key->location_id);
	args[3] = Int64GetDatum(qty);
	args[4] = Int64GetDatum(key->supply_id);

	moving_key = key;
	PG_TRY();
	{
		rc = SPI_execute_plan(plan, args, NULL, false, 0);
	}
	PG_FINALLY();
	{
		moving_key = saved;
	}
	PG_END_TRY();

	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "oms: stock update failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* Raises OM001 for a pre-order that its supply cannot cover (any more). */
static void
refuse_supply(const StockKey *key, int32 qty)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];

	if (plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, INT8OID};

		plan = oms_prepare(DESCRIBE_SUPPLY_SQL, 2, argtypes);
	}
	args[0] = Int32GetDatum(key->tenant_id);
	args[1] = Int64GetDatum(key->supply_id);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: supply description failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OMS_INSUFFICIENT_STOCK),
				 errmsg("insufficient supply: supply %lld does not exist or is of another SKU or location",
						(long long) key->supply_id),
				 errhint("A pre-order reserves supply of its own SKU at the supply's location.")));
	ereport(ERROR,
			(errcode(ERRCODE_OMS_INSUFFICIENT_STOCK),
			 errmsg("insufficient supply for SKU \"%s\" at location \"%s\"",
					SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
					SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
			 errdetail("Requested %d of supply %lld expected %s, not yet promised %s.", qty,
					   (long long) key->supply_id,
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3),
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4)),
			 errhint("oms.atp(sku, location, date) shows what supply can still promise.")));
}

static void
prepare_hot_plans(void)
{
	Oid			argtypes[6] = {INT4OID, INT4OID, INT4OID, INT8OID, INT4OID, INT8OID};

	if (refill_plan != NULL)
		return;
	hot_plan = oms_prepare(HOT_SQL, 3, argtypes);
	slot_take_plan = oms_prepare(SLOT_TAKE_SQL, 5, argtypes);
	slot_take_unheld_plan = oms_prepare(SLOT_TAKE_UNHELD_SQL, 6, argtypes);
	slot_refill_plan = oms_prepare(SLOT_REFILL_SQL, 6, argtypes);
	refill_plan = oms_prepare(REFILL_SQL, 4, argtypes);
}

/* One slot statement; true when it updated a slot. */
static bool
slot_update(SPIPlanPtr plan, const StockKey *key, int64 qty, int32 slot, int64 added)
{
	Datum		args[6];
	int			rc;

	args[0] = Int32GetDatum(key->tenant_id);
	args[1] = Int32GetDatum(key->item_id);
	args[2] = Int32GetDatum(key->location_id);
	args[3] = Int64GetDatum(qty);
	args[4] = Int32GetDatum(slot);
	args[5] = Int64GetDatum(added);
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "oms: slot update failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

/*
 * Takes qty units of a hot stock row from its slots; false when the row is not hot or no slot
 * can have the units (then the caller refuses with OM001). In this order: the backend's own slot
 * (pid mod slots); any slot nobody holds; a refill from the stock row (a batch of up to 1/(2 x
 * slots) of what it has available, at least qty), into a slot nobody holds or else our own; and
 * last the slots that still have units, waiting for each that another order holds, so that
 * nobody is refused while units are left in a slot whose holder may yet abort.
 */
static bool
take_hot(const StockKey *key, int32 qty)
{
	Datum		args[3];
	bool		isnull;
	int32		nslots;
	int64		available;
	int32		own;

	if (!slots_schema)
		return false;
	prepare_hot_plans();
	args[0] = Int32GetDatum(key->tenant_id);
	args[1] = Int32GetDatum(key->item_id);
	args[2] = Int32GetDatum(key->location_id);
	if (SPI_execute_plan(hot_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: reading a stock row failed");
	if (SPI_processed != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return false;
	nslots = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	available = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (nslots <= 0)
		return false;
	own = MyProcPid % nslots;

	if (slot_update(slot_take_plan, key, qty, own, 0) ||
		slot_update(slot_take_unheld_plan, key, qty, own, 0))
		return true;

	if (available >= qty)
	{
		int64		batch = Max((int64) qty, available / (2 * nslots));

		if (move_reserved(refill_plan, key, batch) == 1 ||
			(batch > qty && move_reserved(refill_plan, key, (batch = qty)) == 1))
		{
			if (slot_update(slot_take_unheld_plan, key, qty, own, batch) ||
				slot_update(slot_refill_plan, key, qty, own, batch))
				return true;
			elog(ERROR, "oms: slot %d of a hot stock row is missing", own);
		}
	}

	for (int32 i = 1; i <= nslots; i++)
		if (slot_update(slot_take_plan, key, qty, (own + i) % nslots, 0))
			return true;
	return false;
}

/*
 * Takes qty units at key, or raises OM001. already: units the reservation held before (an
 * increase), for the message.
 */
static void
take(const StockKey *key, int32 qty, int32 already)
{
	char	   *sku;
	char	   *location;
	int64		available;

	if (key->supply_id != 0)
	{
		if (move_reserved(take_supply_plan, key, qty) != 1)
			refuse_supply(key, qty);
		return;
	}
	if (move_reserved(take_plan, key, qty) == 1 || take_hot(key, qty))
		return;

	describe_stock(key, &sku, &location, &available);
	ereport(ERROR,
			(errcode(ERRCODE_OMS_INSUFFICIENT_STOCK),
			 errmsg("insufficient stock for SKU \"%s\" at location \"%s\"", sku, location),
			 already > 0 ?
			 errdetail("Requested %d more than the %d already reserved, available %lld.",
					   qty, already, (long long) available) :
			 errdetail("Requested %d, available %lld.", qty, (long long) available),
			 errhint("Available is on_hand - reserved - safety_stock; oms.atp_by_location('%s') shows it for every location.",
					 sku)));
}

/*
 * Gives qty units back at key. No stock row: nothing is reserved there to give back (the row
 * cannot be deleted while it has reserved units; oms.check_stock_invariants() reports the
 * reservations left without one).
 */
static void
give_back(const StockKey *key, int32 qty)
{
	(void) move_reserved(key->supply_id != 0 ? give_supply_plan : give_back_plan, key, qty);
}

PG_FUNCTION_INFO_V1(oms_reservation_trigger);

/*
 * oms.reservation_trigger(): AFTER INSERT OR UPDATE OR DELETE ON oms.reservations FOR EACH ROW.
 */
Datum
oms_reservation_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	Relation	rel;
	StockKey	old_key;
	StockKey	new_key;
	int32		old_qty = 0;
	int32		new_qty = 0;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms: reservation_trigger() must be called as a trigger");
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event) ||
		TRIGGER_FIRED_BY_TRUNCATE(event))
		elog(ERROR, "oms: reservation_trigger() must fire AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW");

	rel = trigdata->tg_relation;
	if (reservation_columns.relid != RelationGetRelid(rel))
		find_columns(&reservation_columns, rel, "qty", INT4OID);

	if (TRIGGER_FIRED_BY_INSERT(event))
	{
		get_key(&new_key, trigdata->tg_trigtuple, rel, &reservation_columns);
		new_qty = DatumGetInt32(get_column(trigdata->tg_trigtuple, rel, reservation_columns.amount));
	}
	else if (TRIGGER_FIRED_BY_DELETE(event))
	{
		get_key(&old_key, trigdata->tg_trigtuple, rel, &reservation_columns);
		old_qty = DatumGetInt32(get_column(trigdata->tg_trigtuple, rel, reservation_columns.amount));
	}
	else
	{
		get_key(&old_key, trigdata->tg_trigtuple, rel, &reservation_columns);
		old_qty = DatumGetInt32(get_column(trigdata->tg_trigtuple, rel, reservation_columns.amount));
		get_key(&new_key, trigdata->tg_newtuple, rel, &reservation_columns);
		new_qty = DatumGetInt32(get_column(trigdata->tg_newtuple, rel, reservation_columns.amount));

		/* Neither key nor quantity changed (a hold's expiry, say): stock is not touched. */
		if (old_qty == new_qty && compare_keys(&old_key, &new_key) == 0)
			return PointerGetDatum(NULL);
	}

	SPI_connect();
	if (take_supply_plan == NULL)
	{
		Oid			argtypes[5] = {INT4OID, INT4OID, INT4OID, INT8OID, INT8OID};

		slots_schema = oms_has_stock_slots();
		take_plan = oms_prepare(slots_schema ? TAKE_SQL : TAKE_SQL_V1, 4, argtypes);
		give_back_plan = oms_prepare(GIVE_BACK_SQL, 4, argtypes);
		take_supply_plan = oms_prepare(TAKE_SUPPLY_SQL, 5, argtypes);
		give_supply_plan = oms_prepare(GIVE_SUPPLY_SQL, 5, argtypes);
	}

	if (TRIGGER_FIRED_BY_INSERT(event))
		take(&new_key, new_qty, 0);
	else if (TRIGGER_FIRED_BY_DELETE(event))
		give_back(&old_key, old_qty);
	else if (compare_keys(&old_key, &new_key) == 0)
	{
		if (new_qty > old_qty)
			take(&new_key, new_qty - old_qty, old_qty);
		else
			give_back(&old_key, old_qty - new_qty);
	}
	else if (compare_keys(&old_key, &new_key) < 0)
	{
		/* Moved: lock the two stock rows in key order, as every other path does. */
		give_back(&old_key, old_qty);
		take(&new_key, new_qty, 0);
	}
	else
	{
		take(&new_key, new_qty, 0);
		give_back(&old_key, old_qty);
	}

	SPI_finish();
	return PointerGetDatum(NULL);
}

/* What the guard refuses. */
typedef enum GuardedChange
{
	GUARD_UPDATE,				/* reserved changed by someone else than the trigger */
	GUARD_REKEY,				/* the key of a row with reserved units changed */
	GUARD_INSERT,				/* a new row with reserved <> 0 */
	GUARD_DELETE				/* a row with reserved units deleted */
} GuardedChange;

/* Raises OM003 for a change of the stock row at key; runs only on this error path. */
static void
refuse(GuardedChange change, const StockKey *key, int64 reserved_from, int64 reserved_to)
{
	char	   *sku;
	char	   *location;
	int64		available;

	SPI_connect();
	describe_stock(key, &sku, &location, &available);
	switch (change)
	{
		case GUARD_UPDATE:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot change reserved of SKU \"%s\" at location \"%s\" directly",
							sku, location),
					 errdetail("The update would change reserved from %lld to %lld.",
							   (long long) reserved_from, (long long) reserved_to),
					 errhint("Reserved stock moves only through oms.reservations: insert, update or delete a reservation.")));
			break;
		case GUARD_REKEY:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot move stock of SKU \"%s\" at location \"%s\" to another tenant, SKU or location",
							sku, location),
					 errdetail("The row has %lld reserved units.", (long long) reserved_from),
					 errhint("Reserved stock moves only through oms.reservations: move or delete the reservations first.")));
			break;
		case GUARD_INSERT:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot insert stock of SKU \"%s\" at location \"%s\" with reserved units",
							sku, location),
					 errdetail("The new row has reserved %lld; a stock row starts with reserved 0.",
							   (long long) reserved_to),
					 errhint("Reserved stock moves only through oms.reservations: insert the stock row, then the reservations.")));
			break;
		case GUARD_DELETE:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot delete stock of SKU \"%s\" at location \"%s\" while units are reserved",
							sku, location),
					 errdetail("The row has %lld reserved units.", (long long) reserved_from),
					 errhint("Reserved stock moves only through oms.reservations: delete the reservations first.")));
			break;
	}
	pg_unreachable();
}

PG_FUNCTION_INFO_V1(oms_stock_guard);

/*
 * oms.stock_guard(): BEFORE INSERT OR UPDATE OR DELETE ON oms.stock FOR EACH ROW.
 * Lets reserved change only through the reservation trigger. Cheap on the common paths: it
 * compares column values and runs SQL only to word its error.
 */
Datum
oms_stock_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	Relation	rel;
	StockKey	old_key;
	StockKey	new_key;
	int64		old_reserved;
	int64		new_reserved;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms: stock_guard() must be called as a trigger");
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_BEFORE(event) || !TRIGGER_FIRED_FOR_ROW(event) ||
		TRIGGER_FIRED_BY_TRUNCATE(event))
		elog(ERROR, "oms: stock_guard() must fire BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW");

	rel = trigdata->tg_relation;
	if (stock_columns.relid != RelationGetRelid(rel))
		find_columns(&stock_columns, rel, "reserved", INT8OID);

	if (TRIGGER_FIRED_BY_INSERT(event))
	{
		if (has_null(trigdata->tg_trigtuple, rel, &stock_columns))
			return PointerGetDatum(trigdata->tg_trigtuple);
		new_reserved = DatumGetInt64(get_column(trigdata->tg_trigtuple, rel, stock_columns.amount));
		if (new_reserved != 0)
		{
			get_key(&new_key, trigdata->tg_trigtuple, rel, &stock_columns);
			refuse(GUARD_INSERT, &new_key, 0, new_reserved);
		}
		return PointerGetDatum(trigdata->tg_trigtuple);
	}

	if (TRIGGER_FIRED_BY_DELETE(event))
	{
		old_reserved = DatumGetInt64(get_column(trigdata->tg_trigtuple, rel, stock_columns.amount));
		if (old_reserved != 0)
		{
			get_key(&old_key, trigdata->tg_trigtuple, rel, &stock_columns);
			refuse(GUARD_DELETE, &old_key, old_reserved, 0);
		}
		return PointerGetDatum(trigdata->tg_trigtuple);
	}

	/* UPDATE */
	if (has_null(trigdata->tg_newtuple, rel, &stock_columns))
		return PointerGetDatum(trigdata->tg_newtuple);
	old_reserved = DatumGetInt64(get_column(trigdata->tg_trigtuple, rel, stock_columns.amount));
	new_reserved = DatumGetInt64(get_column(trigdata->tg_newtuple, rel, stock_columns.amount));
	if (old_reserved == new_reserved && old_reserved == 0)
		return PointerGetDatum(trigdata->tg_newtuple);	/* nothing reserved, nothing to guard */

	get_key(&old_key, trigdata->tg_trigtuple, rel, &stock_columns);
	get_key(&new_key, trigdata->tg_newtuple, rel, &stock_columns);
	if (old_reserved != 0 && compare_keys(&old_key, &new_key) != 0)
		refuse(GUARD_REKEY, &old_key, old_reserved, new_reserved);
	if (old_reserved != new_reserved &&
		(moving_key == NULL || compare_keys(moving_key, &old_key) != 0 ||
		 compare_keys(&old_key, &new_key) != 0))
		refuse(GUARD_UPDATE, &old_key, old_reserved, new_reserved);

	return PointerGetDatum(trigdata->tg_newtuple);
}

/* Column numbers of oms.supply for its guard, found once per relation. */
typedef struct SupplyColumns
{
	Oid			relid;
	AttrNumber	tenant_id;
	AttrNumber	id;
	AttrNumber	item_id;
	AttrNumber	location_id;
	AttrNumber	promised;
} SupplyColumns;

static SupplyColumns supply_columns = {InvalidOid};

static AttrNumber
supply_column(Relation rel, const char *name, Oid type)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != type)
		elog(ERROR, "oms: table \"%s\" has no column \"%s\" of type %s",
			 RelationGetRelationName(rel), name, format_type_be(type));
	return (AttrNumber) attnum;
}

static bool
supply_has_null(HeapTuple tuple, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	return heap_attisnull(tuple, supply_columns.tenant_id, desc) || heap_attisnull(tuple, supply_columns.id, desc) ||
		heap_attisnull(tuple, supply_columns.item_id, desc) ||
		heap_attisnull(tuple, supply_columns.location_id, desc) ||
		heap_attisnull(tuple, supply_columns.promised, desc);
}

static void
supply_key(StockKey *key, HeapTuple tuple, Relation rel)
{
	key->tenant_id = DatumGetInt32(get_column(tuple, rel, supply_columns.tenant_id));
	key->item_id = DatumGetInt32(get_column(tuple, rel, supply_columns.item_id));
	key->location_id = DatumGetInt32(get_column(tuple, rel, supply_columns.location_id));
	key->supply_id = DatumGetInt64(get_column(tuple, rel, supply_columns.id));
}

static void
refuse_promised(const StockKey *key, GuardedChange change, int64 from, int64 to)
{
	switch (change)
	{
		case GUARD_INSERT:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot insert supply %lld with promised units", (long long) key->supply_id),
					 errdetail("The new row has promised %lld; a supply row starts with promised 0.", (long long) to),
					 errhint("Supply is promised only through pre-order reservations (oms.reservations.supply_id).")));
			break;
		case GUARD_DELETE:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot delete supply %lld while it is promised to pre-orders", (long long) key->supply_id),
					 errdetail("%lld units of it are promised.", (long long) from),
					 errhint("Move or cancel its pre-orders first (oms.reservations.supply_id).")));
			break;
		case GUARD_REKEY:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot move supply %lld to another tenant, SKU or location while it is promised to pre-orders",
							(long long) key->supply_id),
					 errdetail("%lld units of it are promised.", (long long) from),
					 errhint("Move or cancel its pre-orders first (oms.reservations.supply_id).")));
			break;
		case GUARD_UPDATE:
			ereport(ERROR,
					(errcode(ERRCODE_OMS_RESERVED_GUARDED),
					 errmsg("cannot change promised of supply %lld directly", (long long) key->supply_id),
					 errdetail("The update would change promised from %lld to %lld.", (long long) from, (long long) to),
					 errhint("Supply is promised only through pre-order reservations (oms.reservations.supply_id).")));
			break;
	}
}

PG_FUNCTION_INFO_V1(oms_supply_guard);

/*
 * oms.supply_guard(): BEFORE INSERT OR UPDATE OR DELETE ON oms.supply FOR EACH ROW.
 * promised moves only through the reservation trigger (OM003 otherwise), a new row starts at 0,
 * and a row with promised units can be neither deleted nor moved to another SKU or location.
 */
Datum
oms_supply_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	Relation	rel;
	StockKey	old_key;
	StockKey	new_key;
	int64		old_promised;
	int64		new_promised;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms: supply_guard() must be called as a trigger");
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_BEFORE(event) || !TRIGGER_FIRED_FOR_ROW(event) ||
		TRIGGER_FIRED_BY_TRUNCATE(event))
		elog(ERROR, "oms: supply_guard() must fire BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW");
	rel = trigdata->tg_relation;
	if (supply_columns.relid != RelationGetRelid(rel))
	{
		supply_columns.tenant_id = supply_column(rel, "tenant_id", INT4OID);
		supply_columns.id = supply_column(rel, "id", INT8OID);
		supply_columns.item_id = supply_column(rel, "item_id", INT4OID);
		supply_columns.location_id = supply_column(rel, "location_id", INT4OID);
		supply_columns.promised = supply_column(rel, "promised", INT8OID);
		supply_columns.relid = RelationGetRelid(rel);
	}

	/* A NULL key or promised in a new row is for the NOT NULL constraints to refuse (23502). */
	if (!TRIGGER_FIRED_BY_DELETE(event) &&
		supply_has_null(TRIGGER_FIRED_BY_INSERT(event) ? trigdata->tg_trigtuple : trigdata->tg_newtuple, rel))
		return PointerGetDatum(TRIGGER_FIRED_BY_INSERT(event) ? trigdata->tg_trigtuple : trigdata->tg_newtuple);

	old_promised = DatumGetInt64(get_column(trigdata->tg_trigtuple, rel, supply_columns.promised));
	if (TRIGGER_FIRED_BY_INSERT(event))
	{
		if (old_promised != 0)
		{
			supply_key(&new_key, trigdata->tg_trigtuple, rel);
			refuse_promised(&new_key, GUARD_INSERT, 0, old_promised);
		}
		return PointerGetDatum(trigdata->tg_trigtuple);
	}
	if (TRIGGER_FIRED_BY_DELETE(event))
	{
		if (old_promised != 0)
		{
			supply_key(&old_key, trigdata->tg_trigtuple, rel);
			refuse_promised(&old_key, GUARD_DELETE, old_promised, 0);
		}
		return PointerGetDatum(trigdata->tg_trigtuple);
	}

	new_promised = DatumGetInt64(get_column(trigdata->tg_newtuple, rel, supply_columns.promised));
	if (old_promised == 0 && new_promised == 0)
		return PointerGetDatum(trigdata->tg_newtuple);
	supply_key(&old_key, trigdata->tg_trigtuple, rel);
	supply_key(&new_key, trigdata->tg_newtuple, rel);
	if (compare_keys(&old_key, &new_key) != 0)
		refuse_promised(&old_key, GUARD_REKEY, old_promised, new_promised);
	if (old_promised != new_promised &&
		(moving_key == NULL || compare_keys(moving_key, &old_key) != 0))
		refuse_promised(&old_key, GUARD_UPDATE, old_promised, new_promised);
	return PointerGetDatum(trigdata->tg_newtuple);
}

PG_FUNCTION_INFO_V1(oms_slot_units);

/*
 * oms._slot_units(tenant int, item int, location int, delta bigint) RETURNS boolean
 *		The stock row's side of moving units into (delta > 0) or out of (delta < 0) the slots of a
 *		hot SKU (oms.set_hot): reserved moves by delta with the guard open for that row; units go
 *		in only if available. The caller moves the slots' free units by as much.
 */
Datum
oms_slot_units(PG_FUNCTION_ARGS)
{
	StockKey	key;
	int64		delta;
	uint64		done;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	key.tenant_id = PG_GETARG_INT32(0);
	key.item_id = PG_GETARG_INT32(1);
	key.location_id = PG_GETARG_INT32(2);
	key.supply_id = 0;
	delta = PG_GETARG_INT64(3);
	if (delta == 0)
		PG_RETURN_BOOL(true);

	SPI_connect();
	if (give_back_plan == NULL)
	{
		Oid			argtypes[5] = {INT4OID, INT4OID, INT4OID, INT8OID, INT8OID};

		give_back_plan = oms_prepare(GIVE_BACK_SQL, 4, argtypes);
	}
	prepare_hot_plans();
	done = delta > 0 ? move_reserved(refill_plan, &key, delta) : move_reserved(give_back_plan, &key, -delta);
	SPI_finish();
	PG_RETURN_BOOL(done == 1);
}
