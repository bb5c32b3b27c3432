/*
 * atp.c
 *		Available to promise: what can still be sold of a SKU, per location and over the network.
 *
 * ATP at a location is on_hand - reserved - safety_stock, never below 0, and 0 at an inactive
 * location or where the SKU has no stock row. The network's ATP is the sum of that over the
 * active locations that can ship (a store that only serves click & collect does not count).
 *
 * These functions are called for every product page view, so each call is one execution of a
 * kept plan (SPI_prepare + SPI_keepplan, prepared on the first call of the backend): the tenant,
 * the item and the location are resolved by the same statement that reads the stock, and no
 * catalog lookup happens after the first call. Only when that statement finds nothing does a
 * second look-up run, to say which of tenant, SKU or location is unknown.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "oms.h"

/*
 * ATP at one location of the current tenant ($1 = tenant code, $2 = SKU, $3 = location code).
 * No row: the tenant, the SKU or the location does not exist.
 */
#define ATP_LOCATION_SQL \
	"SELECT CASE WHEN l.active" \
	"            THEN coalesce(greatest(s.on_hand - s.reserved - s.safety_stock, 0), 0)" \
	"            ELSE 0 END" \
	"  FROM oms.tenants t" \
	"  JOIN oms.items i ON i.tenant_id = t.id AND i.sku = $2" \
	"  JOIN oms.locations l ON l.tenant_id = t.id AND l.code = $3" \
	"  LEFT JOIN oms.stock s" \
	"         ON s.tenant_id = t.id AND s.item_id = i.id AND s.location_id = l.id" \
	" WHERE t.code = $1"

/*
 * ATP over the active locations that can ship ($1 = tenant code, $2 = SKU). The stock rows of
 * one item are a prefix range of stock's primary key (tenant_id, item_id, location_id).
 * No row: the tenant or the SKU does not exist.
 */
#define ATP_NETWORK_SQL \
	"SELECT coalesce(pg_catalog.sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0))" \
	"                FILTER (WHERE l.active AND l.can_ship), 0)::bigint" \
	"  FROM oms.tenants t" \
	"  JOIN oms.items i ON i.tenant_id = t.id AND i.sku = $2" \
	"  LEFT JOIN oms.stock s ON s.tenant_id = t.id AND s.item_id = i.id" \
	"  LEFT JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id" \
	" WHERE t.code = $1" \
	" GROUP BY i.id"

/*
 * One row per active location that has a stock row for the SKU, preferred locations first
 * ($1 = tenant code, $2 = SKU). No row at all: unknown tenant or SKU; a single row with a NULL
 * location: the SKU exists but is stocked nowhere.
 */
#define ATP_BY_LOCATION_SQL \
	"SELECT l.code, l.kind, s.on_hand, s.reserved, s.safety_stock," \
	"       greatest(s.on_hand - s.reserved - s.safety_stock, 0)," \
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

/*
 * Raises the error that explains why an ATP statement found nothing: unknown tenant (raised by
 * oms_tenant_id), unknown SKU, or unknown location (location may be NULL: not looked up).
 * Runs only on that error path. The caller is connected to SPI.
 */
static void
atp_report_unknown(text *sku, text *location)
{
	static SPIPlanPtr sku_plan = NULL;
	static SPIPlanPtr location_plan = NULL;
	Datum		args[2];
	int32		tenant_id = oms_tenant_id();

	if (sku_plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};

		sku_plan = oms_prepare("SELECT 1 FROM oms.items WHERE tenant_id = $1 AND sku = $2",
							   2, argtypes);
		location_plan = oms_prepare("SELECT 1 FROM oms.locations WHERE tenant_id = $1 AND code = $2",
									2, argtypes);
	}

	args[0] = Int32GetDatum(tenant_id);
	args[1] = PointerGetDatum(sku);
	if (SPI_execute_plan(sku_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: SKU lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown SKU \"%s\"", text_to_cstring(sku)),
				 errhint("Items of tenant \"%s\" are listed in oms.items; SKUs are case sensitive.",
						 oms_tenant)));

	if (location != NULL)
	{
		args[1] = PointerGetDatum(location);
		if (SPI_execute_plan(location_plan, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "oms: location lookup failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown location \"%s\"", text_to_cstring(location)),
					 errhint("Locations of tenant \"%s\" are listed in oms.locations; pass NULL for the whole network.",
							 oms_tenant)));
	}

	/* Everything exists after all: the statement and this look-up disagree. */
	elog(ERROR, "oms: ATP statement found no row for an existing SKU");
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
	static SPIPlanPtr location_plan = NULL;
	static SPIPlanPtr network_plan = NULL;
	text	   *sku;
	text	   *location;
	Datum		args[3];
	bool		isnull;
	int64		atp;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	sku = PG_GETARG_TEXT_PP(0);
	location = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);

	SPI_connect();
	if (location_plan == NULL)
	{
		Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};

		location_plan = oms_prepare(ATP_LOCATION_SQL, 3, argtypes);
		network_plan = oms_prepare(ATP_NETWORK_SQL, 2, argtypes);
	}

	args[0] = CStringGetTextDatum(oms_tenant);
	args[1] = PointerGetDatum(sku);
	args[2] = PointerGetDatum(location);
	if (SPI_execute_plan(location != NULL ? location_plan : network_plan,
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: ATP statement failed");
	if (SPI_processed == 0)
		atp_report_unknown(sku, location);

	atp = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		atp = 0;
	SPI_finish();
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

		plan = oms_prepare(ATP_BY_LOCATION_SQL, 2, argtypes);
	}

	args[0] = CStringGetTextDatum(oms_tenant);
	args[1] = PointerGetDatum(sku);
	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "oms: ATP by location statement failed");
	if (SPI_processed == 0)
		atp_report_unknown(sku, NULL);

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
	"            THEN coalesce(greatest(s.on_hand - s.reserved - s.safety_stock, 0), 0)" \
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
	"SELECT (coalesce(pg_catalog.sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0))" \
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

		location_plan = oms_prepare(ATP_ON_LOCATION_SQL, 4, loc_types);
		network_plan = oms_prepare(ATP_ON_NETWORK_SQL, 3, net_types);
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
		atp_report_unknown(sku, location);

	atp = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		atp = 0;
	SPI_finish();
	PG_RETURN_INT64(atp);
}
