/*
 * atp.c
 *		Available to promise: what can still be sold of a SKU, per location and over the network.
 *
 * ATP at a location is on_hand - reserved - safety_stock, never below 0, and 0 at an inactive
 * location or where the SKU has no stock row. The network's ATP is the sum of that over the
 * active locations that can ship (a store that only serves click & collect does not count).
 *
 * oms.atp() is called for every product page view, so it runs no SQL: it reads the rows it needs
 * through their btree indexes (tenant by code, item by (tenant, sku), location by (tenant, code)
 * or (tenant, id), stock by its primary key), under the snapshot of the calling query, exactly
 * what a kept plan would read but without the executor's start-up and shut-down around each call.
 * The tables, indexes and column numbers are looked up once per backend (and again after a
 * relcache invalidation of one of them, e.g. when the extension is re-created); no catalog look-up
 * happens on later calls. Because it runs no SQL it needs no pinned search_path, and does without
 * the GUC save and restore that a SET clause costs on every call (about a third of its time).
 * It asks for the same privileges as that SQL would (SELECT on the four tables, checked once
 * per user until a GRANT, a REVOKE or a change of roles). Index reads do not apply row level
 * security, so it applies oms's tenant rule itself (the policies' rule): it reads only the current
 * tenant's rows, and refuses (42501) a tenant the caller may not act for (oms_check_tenant()).
 *
 * oms.atp_by_location() lists the stock per location for a product's detail page; it runs one
 * kept plan (SPI_prepare + SPI_keepplan) per call. So does the time-phased oms.atp(sku, location,
 * date), which adds the supply expected by a date that pre-orders have not promised yet.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "oms.h"

/*
 * One row per active location that has a stock row for the SKU, preferred locations first
 * ($1 = tenant code, $2 = SKU). No row at all: unknown tenant or SKU; a single row with a NULL
 * location: the SKU exists but is stocked nowhere.
 */
/*
 * What a hot SKU's stock slots add to the ATP of its stock row s (oms.set_hot). The statements
 * below are prepared without it for a schema that has no slots (before 0.2.0; see
 * oms_has_stock_slots).
 */
#define ATP_SLOTS \
	" + CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0)::int8 FROM oms.stock_slots z" \
	"   WHERE z.tenant_id = s.tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id)" \
	"   ELSE 0 END"

/* A statement without ATP_SLOTS, for a schema without stock slots. */
static const char *
atp_sql(const char *sql)
{
	const char *at;
	StringInfoData buf;

	if (oms_has_stock_slots() || (at = strstr(sql, ATP_SLOTS)) == NULL)
		return sql;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, sql, at - sql);
	appendStringInfoString(&buf, at + strlen(ATP_SLOTS));
	return buf.data;
}

#define ATP_BY_LOCATION_SQL \
	"SELECT l.code, l.kind, s.on_hand, s.reserved, s.safety_stock," \
	"       greatest(s.on_hand - s.reserved - s.safety_stock, 0)" \
	ATP_SLOTS "," \
	"       l.can_ship, l.can_pickup" \
	"  FROM oms.tenants t" \
	"  JOIN oms.items i ON i.tenant_id = t.id AND i.sku = $2" \
	"  LEFT JOIN (oms.stock s" \
	"             JOIN oms.locations l" \
	"               ON l.tenant_id = s.tenant_id AND l.id = s.location_id AND l.active)" \
	"         ON s.tenant_id = t.id AND s.item_id = i.id" \
	" WHERE t.code = $1" \
	" ORDER BY l.priority, l.code"

#define ATP_BY_LOCATION_COLUMNS 8

static void
pg_attribute_noreturn()
report_unknown_sku(text *sku)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown SKU \"%s\"", oms_clip_text(sku)),
			 errhint("Items of tenant \"%s\" are listed in oms.items; SKUs are case sensitive.",
					 oms_tenant)));
}

static void
pg_attribute_noreturn()
report_unknown_location(text *location)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown location \"%s\"", oms_clip_text(location)),
			 errhint("Locations of tenant \"%s\" are listed in oms.locations; pass NULL for the whole network.",
					 oms_tenant)));
}

/* The current tenant does not exist: oms_tenant_id() raises the project's error for that. */
static void
pg_attribute_noreturn()
report_unknown_tenant(void)
{
	SPI_connect();
	(void) oms_tenant_id();
	elog(ERROR, "oms: tenant \"%s\" found by SQL but not by its index", oms_tenant);
}

/*
 * The relations that oms.atp() reads, with the indexes and column numbers it uses; filled on the
 * first call and again after a relcache invalidation of any of them.
 */
typedef struct AtpRelations
{
	bool		valid;
	Oid			tenants;
	Oid			tenants_by_code;	/* (code) */
	Oid			items;
	Oid			items_by_sku;		/* (tenant_id, sku) */
	Oid			locations;
	Oid			locations_by_code;	/* (tenant_id, code) */
	Oid			locations_by_id;	/* (tenant_id, id) */
	Oid			stock;
	Oid			stock_by_key;		/* (tenant_id, item_id, location_id) */
	Oid			stock_slots;
	Oid			stock_slots_by_key; /* (tenant_id, item_id, location_id, slot) */
	AttrNumber	tenants_id;
	AttrNumber	items_id;
	AttrNumber	locations_id;
	AttrNumber	locations_active;
	AttrNumber	locations_can_ship;
	AttrNumber	stock_location_id;
	AttrNumber	stock_on_hand;
	AttrNumber	stock_reserved;
	AttrNumber	stock_safety_stock;
	AttrNumber	stock_tenant_id;
	AttrNumber	stock_item_id;
	AttrNumber	stock_hot;
	AttrNumber	slots_free;
	Oid			checked_user;	/* has SELECT on the four tables (InvalidOid: not checked) */
	Oid			checked_slots_user; /* has SELECT on stock_slots, read for hot SKUs only */
	bool		distributed;	/* Citus holds the rows in shards: read them with SQL */
} AtpRelations;

static AtpRelations atp_rels = {false};
static bool atp_callback_registered = false;

/* Role memberships or attributes changed: check the privileges again. */
static void
atp_roles_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	atp_rels.checked_user = InvalidOid;
	atp_rels.checked_slots_user = InvalidOid;
}

static void
atp_relcache_callback(Datum arg, Oid relid)
{
	if (!atp_rels.valid)
		return;
	if (relid == InvalidOid ||
		relid == atp_rels.tenants || relid == atp_rels.tenants_by_code ||
		relid == atp_rels.items || relid == atp_rels.items_by_sku ||
		relid == atp_rels.locations || relid == atp_rels.locations_by_code ||
		relid == atp_rels.locations_by_id ||
		relid == atp_rels.stock || relid == atp_rels.stock_by_key ||
		relid == atp_rels.stock_slots || relid == atp_rels.stock_slots_by_key)
		atp_rels.valid = false;
}

/* The number of a column of the given type; the extension's tables always have it. */
static AttrNumber
atp_column(Relation rel, const char *name, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			if (att->atttypid != type)
				break;
			return att->attnum;
		}
	}
	elog(ERROR, "oms: table \"%s\" has no column \"%s\" of type %s",
		 RelationGetRelationName(rel), name, format_type_be(type));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/*
 * A valid plain btree index of rel whose first key columns are exactly the given columns (a
 * unique constraint's or primary key's index).
 */
static Oid
atp_index(Relation rel, int ncolumns, const char *const *columns)
{
	AttrNumber	keys[INDEX_MAX_KEYS];
	List	   *indexes;
	ListCell   *lc;
	Oid			found = InvalidOid;

	for (int i = 0; i < ncolumns; i++)
		keys[i] = get_attnum(RelationGetRelid(rel), columns[i]);

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		bool		match;

		match = index->rd_rel->relam == BTREE_AM_OID && form->indisvalid &&
			form->indnkeyatts >= ncolumns &&
			RelationGetIndexExpressions(index) == NIL &&
			RelationGetIndexPredicate(index) == NIL;
		for (int i = 0; match && i < ncolumns; i++)
			match = form->indkey.values[i] == keys[i];
		/* the shortest one wins: a unique key of exactly these columns */
		if (match && (!OidIsValid(found) || form->indnkeyatts == ncolumns))
			found = RelationGetRelid(index);
		index_close(index, AccessShareLock);
	}
	list_free(indexes);

	if (!OidIsValid(found))
		elog(ERROR, "oms: table \"%s\" has no btree index on (%s, ...)",
			 RelationGetRelationName(rel), columns[0]);
	return found;
}

static void
atp_load_relations(void)
{
	Oid			nsp = get_namespace_oid("oms", false);
	Relation	rel;
	static const char *const tenant_code[] = {"code"};
	static const char *const tenant_sku[] = {"tenant_id", "sku"};
	static const char *const tenant_code2[] = {"tenant_id", "code"};
	static const char *const tenant_id[] = {"tenant_id", "id"};
	static const char *const stock_key[] = {"tenant_id", "item_id", "location_id"};

	if (!atp_callback_registered)
	{
		oms_register_relcache_callback(atp_relcache_callback);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, atp_roles_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, atp_roles_callback, (Datum) 0);
		atp_callback_registered = true;
	}
	atp_rels.valid = false;

	atp_rels.tenants = get_relname_relid("tenants", nsp);
	atp_rels.items = get_relname_relid("items", nsp);
	atp_rels.locations = get_relname_relid("locations", nsp);
	atp_rels.stock = get_relname_relid("stock", nsp);
	atp_rels.stock_slots = get_relname_relid("stock_slots", nsp);	/* none before 0.2.0 */
	if (!OidIsValid(atp_rels.tenants) || !OidIsValid(atp_rels.items) ||
		!OidIsValid(atp_rels.locations) || !OidIsValid(atp_rels.stock))
		elog(ERROR, "oms: the tables of schema oms are missing");

	rel = table_open(atp_rels.tenants, AccessShareLock);
	atp_rels.tenants_id = atp_column(rel, "id", INT4OID);
	(void) atp_column(rel, "code", TEXTOID);
	atp_rels.tenants_by_code = atp_index(rel, 1, tenant_code);
	table_close(rel, AccessShareLock);

	rel = table_open(atp_rels.items, AccessShareLock);
	atp_rels.items_id = atp_column(rel, "id", INT4OID);
	(void) atp_column(rel, "tenant_id", INT4OID);
	(void) atp_column(rel, "sku", TEXTOID);
	atp_rels.items_by_sku = atp_index(rel, 2, tenant_sku);
	table_close(rel, AccessShareLock);

	rel = table_open(atp_rels.locations, AccessShareLock);
	atp_rels.locations_id = atp_column(rel, "id", INT4OID);
	atp_rels.locations_active = atp_column(rel, "active", BOOLOID);
	atp_rels.locations_can_ship = atp_column(rel, "can_ship", BOOLOID);
	(void) atp_column(rel, "tenant_id", INT4OID);
	(void) atp_column(rel, "code", TEXTOID);
	atp_rels.locations_by_code = atp_index(rel, 2, tenant_code2);
	atp_rels.locations_by_id = atp_index(rel, 2, tenant_id);
	table_close(rel, AccessShareLock);

	rel = table_open(atp_rels.stock, AccessShareLock);
	atp_rels.stock_tenant_id = atp_column(rel, "tenant_id", INT4OID);
	atp_rels.stock_item_id = atp_column(rel, "item_id", INT4OID);
	atp_rels.stock_location_id = atp_column(rel, "location_id", INT4OID);
	atp_rels.stock_hot = OidIsValid(atp_rels.stock_slots) ? atp_column(rel, "hot", BOOLOID) : InvalidAttrNumber;
	atp_rels.stock_on_hand = atp_column(rel, "on_hand", INT8OID);
	atp_rels.stock_reserved = atp_column(rel, "reserved", INT8OID);
	atp_rels.stock_safety_stock = atp_column(rel, "safety_stock", INT8OID);
	atp_rels.stock_by_key = atp_index(rel, 3, stock_key);
	table_close(rel, AccessShareLock);

	atp_rels.stock_slots_by_key = InvalidOid;
	if (OidIsValid(atp_rels.stock_slots))
	{
		rel = table_open(atp_rels.stock_slots, AccessShareLock);
		atp_rels.slots_free = atp_column(rel, "free", INT8OID);
		atp_rels.stock_slots_by_key = atp_index(rel, 3, stock_key);
		table_close(rel, AccessShareLock);
	}

	/*
	 * On a Citus cluster (oms.distribute()) the tables here are empty shells: the rows live in
	 * shards, which only SQL finds. Citus invalidates a table's relcache entry when it
	 * distributes it, so this is decided again then.
	 */
	atp_rels.distributed = false;
	if (OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		arg = ObjectIdGetDatum(atp_rels.stock);
		bool		isnull;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "oms: SPI_connect failed");
		if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
								  " WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)",
								  1, argtypes, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "oms: reading pg_dist_partition failed");
		atp_rels.distributed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}

	atp_rels.checked_user = InvalidOid;
	atp_rels.checked_slots_user = InvalidOid;
	atp_rels.valid = true;
}

/* oms.atp() on Citus: the same answer from SQL, oms._atp_distributed(), run as the caller. */
static Datum
atp_distributed(FunctionCallInfo fcinfo)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	char		nulls[2] = {' ', PG_ARGISNULL(1) ? 'n' : ' '};
	bool		isnull;
	Datum		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "oms: SPI_connect failed");
	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		plan = oms_prepare("SELECT oms._atp_distributed($1, $2)", 2, argtypes);
	}
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	if (SPI_execute_plan(plan, args, nulls, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "oms: oms._atp_distributed failed");
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	return result;				/* int8 is passed by value */
}

/*
 * The caller needs SELECT on the tables, as for the SQL this replaces. Checked once per user;
 * a GRANT or REVOKE invalidates the relation, a change of roles the role caches, and either the
 * check.
 */
static void
atp_check_privileges(void)
{
	Oid			user = GetUserId();
	Oid			tables[4] = {atp_rels.tenants, atp_rels.items, atp_rels.locations, atp_rels.stock};

	for (int i = 0; i < 4; i++)
	{
		if (pg_class_aclcheck(tables[i], user, ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(tables[i]));
	}
	atp_rels.checked_user = user;
}

/*
 * An equality look-up through a btree index, rescanned for each set of key values. The scan
 * keys carry the index's collations, so that text keys are compared as the index orders them.
 */
typedef struct IndexLookup
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			nkeys;
	ScanKeyData keys[3];
} IndexLookup;

static void
lookup_begin(IndexLookup *lookup, Oid heap, Oid index, int nkeys, Snapshot snapshot)
{
	lookup->heap = table_open(heap, AccessShareLock);
	lookup->index = index_open(index, AccessShareLock);
	lookup->nkeys = nkeys;
	for (int i = 0; i < nkeys; i++)
	{
		Oid			type = TupleDescAttr(RelationGetDescr(lookup->index), i)->atttypid;

		ScanKeyEntryInitialize(&lookup->keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   lookup->index->rd_indcollation[i],
							   type == TEXTOID ? F_TEXTEQ : F_INT4EQ, (Datum) 0);
	}
	lookup->scan = index_beginscan(lookup->heap, lookup->index, snapshot, nkeys, 0);
	lookup->slot = table_slot_create(lookup->heap, NULL);
}

/* Positions on the first visible row with these key values; false when there is none. */
static bool
lookup_first(IndexLookup *lookup, Datum key1, Datum key2, Datum key3)
{
	Datum		values[3] = {key1, key2, key3};

	for (int i = 0; i < lookup->nkeys; i++)
		lookup->keys[i].sk_argument = values[i];
	index_rescan(lookup->scan, lookup->keys, lookup->nkeys, NULL, 0);
	return index_getnext_slot(lookup->scan, ForwardScanDirection, lookup->slot);
}

static bool
lookup_next(IndexLookup *lookup)
{
	return index_getnext_slot(lookup->scan, ForwardScanDirection, lookup->slot);
}

static Datum
lookup_column(IndexLookup *lookup, AttrNumber attnum)
{
	bool		isnull;
	Datum		value = slot_getattr(lookup->slot, attnum, &isnull);

	if (isnull)
		elog(ERROR, "oms: NULL in column %d of \"%s\"", attnum, RelationGetRelationName(lookup->heap));
	return value;
}

/* Locks stay until the end of the transaction, as the executor keeps them. */
static void
lookup_end(IndexLookup *lookup)
{
	ExecDropSingleTupleTableSlot(lookup->slot);
	index_endscan(lookup->scan);
	index_close(lookup->index, NoLock);
	table_close(lookup->heap, NoLock);
}

/*
 * ATP of the stock row in the lookup's current slot: greatest(on_hand - reserved - safety, 0),
 * plus the free units of its stock slots when the SKU is hot there (oms.set_hot).
 */
static int64
stock_available(IndexLookup *stock, Snapshot snapshot)
{
	int64		available = DatumGetInt64(lookup_column(stock, atp_rels.stock_on_hand))
		- DatumGetInt64(lookup_column(stock, atp_rels.stock_reserved))
		- DatumGetInt64(lookup_column(stock, atp_rels.stock_safety_stock));

	if (available < 0)
		available = 0;
	if (atp_rels.stock_hot != InvalidAttrNumber && DatumGetBool(lookup_column(stock, atp_rels.stock_hot)))
	{
		IndexLookup slots;
		bool		found;

		if (atp_rels.checked_slots_user != GetUserId())
		{
			if (pg_class_aclcheck(atp_rels.stock_slots, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(atp_rels.stock_slots));
			atp_rels.checked_slots_user = GetUserId();
		}
		lookup_begin(&slots, atp_rels.stock_slots, atp_rels.stock_slots_by_key, 3, snapshot);
		for (found = lookup_first(&slots, lookup_column(stock, atp_rels.stock_tenant_id),
								  lookup_column(stock, atp_rels.stock_item_id),
								  lookup_column(stock, atp_rels.stock_location_id));
			 found; found = lookup_next(&slots))
			available += DatumGetInt64(lookup_column(&slots, atp_rels.slots_free));
		lookup_end(&slots);
	}
	return available;
}

PG_FUNCTION_INFO_V1(oms_atp);

/*
 * oms.atp(sku text, location text DEFAULT NULL) RETURNS bigint
 *		Units of the SKU that can be promised now at the location, or over the network when
 *		location is NULL. NULL SKU: NULL.
 */
Datum
oms_atp(PG_FUNCTION_ARGS)
{
	text	   *sku;
	text	   *location;
	Snapshot	snapshot;
	IndexLookup lookup;
	Datum		tenant_id;
	Datum		item_id;
	int64		atp = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	sku = PG_GETARG_TEXT_PP(0);
	location = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);

	if (!atp_rels.valid)
		atp_load_relations();
	if (atp_rels.distributed)
		return atp_distributed(fcinfo);
	if (atp_rels.checked_user != GetUserId())
		atp_check_privileges();
	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();

	/* the current tenant */
	lookup_begin(&lookup, atp_rels.tenants, atp_rels.tenants_by_code, 1, snapshot);
	if (!lookup_first(&lookup, CStringGetTextDatum(oms_tenant), 0, 0))
		report_unknown_tenant();
	tenant_id = lookup_column(&lookup, atp_rels.tenants_id);
	lookup_end(&lookup);
	oms_check_tenant(DatumGetInt32(tenant_id));	/* the tenant rule of the RLS policies */

	/* the item */
	lookup_begin(&lookup, atp_rels.items, atp_rels.items_by_sku, 2, snapshot);
	if (!lookup_first(&lookup, tenant_id, PointerGetDatum(sku), 0))
		report_unknown_sku(sku);
	item_id = lookup_column(&lookup, atp_rels.items_id);
	lookup_end(&lookup);

	if (location != NULL)
	{
		Datum		location_id;
		bool		active;

		lookup_begin(&lookup, atp_rels.locations, atp_rels.locations_by_code, 2, snapshot);
		if (!lookup_first(&lookup, tenant_id, PointerGetDatum(location), 0))
			report_unknown_location(location);
		location_id = lookup_column(&lookup, atp_rels.locations_id);
		active = DatumGetBool(lookup_column(&lookup, atp_rels.locations_active));
		lookup_end(&lookup);

		if (active)
		{
			lookup_begin(&lookup, atp_rels.stock, atp_rels.stock_by_key, 3, snapshot);
			if (lookup_first(&lookup, tenant_id, item_id, location_id))
				atp = stock_available(&lookup, snapshot);
			lookup_end(&lookup);
		}
	}
	else
	{
		IndexLookup place;
		bool		found;

		/* every stock row of the item (a prefix of the primary key), and its location */
		lookup_begin(&lookup, atp_rels.stock, atp_rels.stock_by_key, 2, snapshot);
		lookup_begin(&place, atp_rels.locations, atp_rels.locations_by_id, 2, snapshot);
		for (found = lookup_first(&lookup, tenant_id, item_id, 0); found; found = lookup_next(&lookup))
		{
			int64		available = stock_available(&lookup, snapshot);

			if (available == 0)
				continue;
			if (!lookup_first(&place, tenant_id, lookup_column(&lookup, atp_rels.stock_location_id), 0))
				continue;		/* cannot happen: stock references locations */
			if (!DatumGetBool(lookup_column(&place, atp_rels.locations_active)) ||
				!DatumGetBool(lookup_column(&place, atp_rels.locations_can_ship)))
				continue;
			if (pg_add_s64_overflow(atp, available, &atp))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("ATP of SKU \"%s\" is out of range for type bigint", text_to_cstring(sku))));
		}
		lookup_end(&place);
		lookup_end(&lookup);
	}

	PG_RETURN_INT64(atp);
}

PG_FUNCTION_INFO_V1(oms_atp_by_location);

/*
 * oms.atp_by_location(sku text) RETURNS TABLE(location, kind, on_hand, reserved, safety_stock,
 *		available, can_ship, can_pickup)
 *		The SKU's stock at every active location that has a stock row, preferred locations first.
 */
Datum
oms_atp_by_location(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *sku = PG_GETARG_TEXT_PP(0);
	Datum		args[2];
	SPITupleTable *tuptable;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (rsinfo->setDesc->natts != ATP_BY_LOCATION_COLUMNS)
		elog(ERROR, "oms: atp_by_location must return %d columns", ATP_BY_LOCATION_COLUMNS);

	SPI_connect();
	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		plan = oms_prepare(atp_sql(ATP_BY_LOCATION_SQL), 2, argtypes);
	}

	args[0] = CStringGetTextDatum(oms_tenant);
	args[1] = PointerGetDatum(sku);
	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "oms: ATP by location statement failed");
	if (SPI_processed == 0)
	{
		/* no row at all: the tenant or the SKU is unknown */
		(void) oms_tenant_id();
		report_unknown_sku(sku);
	}

	tuptable = SPI_tuptable;
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		Datum		values[ATP_BY_LOCATION_COLUMNS];
		bool		nulls[ATP_BY_LOCATION_COLUMNS];

		heap_deform_tuple(tuptable->vals[row], tuptable->tupdesc, values, nulls);
		if (nulls[0])
			continue;			/* the SKU is stocked nowhere */
		/* tuplestore_putvalues copies the values into the tuplestore's own memory */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * Time-phased ATP at one location ($1 tenant code, $2 SKU, $3 location code, $4 date): ATP now
 * plus the supply expected there by the date that pre-orders have not yet promised. No row: the
 * tenant, the SKU or the location does not exist.
 */
#define ATP_ON_LOCATION_SQL \
	"SELECT CASE WHEN l.active" \
	"            THEN coalesce(greatest(s.on_hand - s.reserved - s.safety_stock, 0)" \
	ATP_SLOTS ", 0)" \
	"                 + coalesce((SELECT pg_catalog.sum(p.qty - p.promised) FROM oms.supply p" \
	"                              WHERE p.tenant_id = t.id AND p.item_id = i.id" \
	"                                AND p.location_id = l.id AND p.expected_date <= $4), 0)" \
	"            ELSE 0 END::bigint" \
	"  FROM oms.tenants t" \
	"  JOIN oms.items i ON i.tenant_id = t.id AND i.sku = $2" \
	"  JOIN oms.locations l ON l.tenant_id = t.id AND l.code = $3" \
	"  LEFT JOIN oms.stock s" \
	"         ON s.tenant_id = t.id AND s.item_id = i.id AND s.location_id = l.id" \
	" WHERE t.code = $1"

/* The same over the active locations that can ship ($1 tenant code, $2 SKU, $3 date). */
#define ATP_ON_NETWORK_SQL \
	"SELECT (coalesce(pg_catalog.sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0)" \
	ATP_SLOTS ")" \
	"                 FILTER (WHERE l.active AND l.can_ship), 0)" \
	"        + coalesce((SELECT pg_catalog.sum(p.qty - p.promised) FROM oms.supply p" \
	"                      JOIN oms.locations pl ON pl.tenant_id = p.tenant_id AND pl.id = p.location_id" \
	"                     WHERE p.tenant_id = t.id AND p.item_id = i.id AND p.expected_date <= $3" \
	"                       AND pl.active AND pl.can_ship), 0))::bigint" \
	"  FROM oms.tenants t" \
	"  JOIN oms.items i ON i.tenant_id = t.id AND i.sku = $2" \
	"  LEFT JOIN oms.stock s ON s.tenant_id = t.id AND s.item_id = i.id" \
	"  LEFT JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id" \
	" WHERE t.code = $1" \
	" GROUP BY t.id, i.id"

/*
 * Says which of tenant, SKU or location a time-phased ATP statement did not find; error path
 * only. The caller is connected to SPI.
 */
static void
pg_attribute_noreturn()
atp_on_report_unknown(text *sku, text *location)
{
	static SPIPlanPtr sku_plan = NULL;
	static SPIPlanPtr location_plan = NULL;
	Datum		args[2];

	if (sku_plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};

		sku_plan = oms_prepare("SELECT 1 FROM oms.items WHERE tenant_id = $1 AND sku = $2", 2, argtypes);
		location_plan = oms_prepare("SELECT 1 FROM oms.locations WHERE tenant_id = $1 AND code = $2", 2, argtypes);
	}
	args[0] = Int32GetDatum(oms_tenant_id());
	args[1] = PointerGetDatum(sku);
	if (SPI_execute_plan(sku_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: SKU lookup failed");
	if (SPI_processed == 0)
		report_unknown_sku(sku);
	if (location != NULL)
	{
		args[1] = PointerGetDatum(location);
		if (SPI_execute_plan(location_plan, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "oms: location lookup failed");
		if (SPI_processed == 0)
			report_unknown_location(location);
	}
	elog(ERROR, "oms: time-phased ATP statement found no row for an existing SKU");
}

PG_FUNCTION_INFO_V1(oms_atp_on);

/*
 * oms.atp(sku text, location text, on_date date) RETURNS bigint
 *		Units of the SKU that can be promised for delivery from the location (or the network, when
 *		location is NULL) by on_date: ATP now plus supply expected by then and not yet promised to
 *		pre-orders. NULL SKU or date: NULL.
 */
Datum
oms_atp_on(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr location_plan = NULL;
	static SPIPlanPtr network_plan = NULL;
	text	   *sku;
	text	   *location;
	Datum		args[4];
	bool		isnull;
	int64		atp;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	sku = PG_GETARG_TEXT_PP(0);
	location = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);

	SPI_connect();
	if (location_plan == NULL)
	{
		Oid			loc_types[4] = {TEXTOID, TEXTOID, TEXTOID, DATEOID};
		Oid			net_types[3] = {TEXTOID, TEXTOID, DATEOID};

		location_plan = oms_prepare(atp_sql(ATP_ON_LOCATION_SQL), 4, loc_types);
		network_plan = oms_prepare(atp_sql(ATP_ON_NETWORK_SQL), 3, net_types);
	}

	args[0] = CStringGetTextDatum(oms_tenant);
	args[1] = PointerGetDatum(sku);
	if (location != NULL)
	{
		args[2] = PointerGetDatum(location);
		args[3] = PG_GETARG_DATUM(2);
	}
	else
		args[2] = PG_GETARG_DATUM(2);
	if (SPI_execute_plan(location != NULL ? location_plan : network_plan,
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: time-phased ATP statement failed");
	if (SPI_processed == 0)
		atp_on_report_unknown(sku, location);

	atp = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		atp = 0;
	SPI_finish();
	PG_RETURN_INT64(atp);
}
