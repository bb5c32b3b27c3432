/*
 * route_load.c
 *		Everything routing reads: its input (JSON lines and ship-to, or the arrays place_order
 *		passes), the profile, the carrier services, the items, and the candidate locations with
 *		their stock, start day and capacity used.
 *
 * The one idea: a routing call reads the database a fixed number of times, whatever the number
 * of lines and locations. Each read is one execution of a kept plan (oms_prepare) returning
 * everything at once: the candidates query returns one row per location, with the stock of every
 * line's item at that location aggregated into two arrays, its local start day (time zone and
 * cutoff worked out by SQL) and what its capacity has used that day. The engine (routing.c) then
 * works on plain C arrays. Supply is read only when some line cannot be served from stock.
 *
 * Every function here expects the caller to be connected to SPI; allocations go to the current
 * memory context (SPI's procedure context), which dies with SPI_finish().
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "oms.h"
#include "routing.h"

#define MAX_ROUTE_LINES 10000

#define Q_ITEMS_BY_SKU \
	"SELECT u.i::int4, i.id, i.weight::float8, i.backorderable, i.preorderable, i.active" \
	"  FROM unnest($2::text[]) WITH ORDINALITY AS u(sku, i)" \
	"  LEFT JOIN oms.items i ON i.tenant_id = $1 AND i.sku = u.sku" \
	" ORDER BY u.i"

#define Q_ITEMS_BY_ID \
	"SELECT u.i::int4, i.sku, i.weight::float8, i.backorderable, i.preorderable, i.active" \
	"  FROM unnest($2::int4[]) WITH ORDINALITY AS u(id, i)" \
	"  LEFT JOIN oms.items i ON i.tenant_id = $1 AND i.id = u.id" \
	" ORDER BY u.i"

#define Q_LOCATION_CODES \
	"SELECT u.i::int4, l.id, l.active, l.can_pickup" \
	"  FROM unnest($2::text[]) WITH ORDINALITY AS u(code, i)" \
	"  LEFT JOIN oms.locations l ON l.tenant_id = $1 AND l.code = u.code" \
	" ORDER BY u.i"

#define Q_PROFILE \
	"SELECT p.code, p.weight_cost, p.weight_days, p.weight_co2, p.weight_packages, p.max_packages," \
	"       coalesce(p.max_distance_km, 0)::float8, p.location_kinds, p.allow_backorder, p.allow_preorder" \
	"  FROM oms.routing_profiles p" \
	" WHERE p.code = $2 AND (p.tenant_id = $1 OR p.tenant_id IS NULL)" \
	" ORDER BY p.tenant_id NULLS LAST LIMIT 1"

#define Q_PROFILE_CODES \
	"SELECT pg_catalog.string_agg(DISTINCT p.code, ', ' ORDER BY p.code)" \
	"  FROM oms.routing_profiles p WHERE p.tenant_id = $1 OR p.tenant_id IS NULL"

#define Q_SERVICES \
	"SELECT s.code, s.mode, s.base_cost::float8, s.cost_per_kg::float8, s.cost_per_km::float8," \
	"       s.base_days, coalesce(s.km_per_day, 0)::float8, s.co2_g_per_km::float8," \
	"       s.co2_g_per_kg_km::float8, coalesce(s.max_weight_kg, 0)::float8," \
	"       coalesce(s.max_distance_km, 0)::float8, s.countries" \
	"  FROM oms.carrier_services s" \
	" WHERE s.tenant_id = $1 AND s.active" \
	" ORDER BY s.code"

#define Q_CENTROID \
	"SELECT c.latitude, c.longitude FROM oms.country_centroids c WHERE c.country = $1"

/*
 * The candidates: every active location with stock of one of the items ($2) that is available
 * (or any stock row at all when $5, for explain), plus the locations named in $4 (holds, the
 * pickup store, supply). One row per location, its stock of the items in two arrays.
 */
/*
 * What a stock row s can still give: a hot SKU's (oms.set_hot) slots count too. The slots are
 * matched on the tenant $1 rather than on s.tenant_id: on Citus a subquery correlated on a column
 * is sent to every node, one on the tenant stays on the tenant's shard.
 */
#define STOCK_AVAILABLE \
	"(s.on_hand - s.reserved - s.safety_stock" \
	" + CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0)::int8 FROM oms.stock_slots z" \
	"                          WHERE z.tenant_id = $1 AND z.item_id = s.item_id" \
	"                            AND z.location_id = s.location_id) ELSE 0 END)"
#define STOCK_AVAILABLE_V1 "(s.on_hand - s.reserved - s.safety_stock)"	/* before 0.2.0: no slots */

#define Q_CANDIDATES_WITH(STOCK_FILTER, LOCATION_FILTER, AVAIL) \
	"SELECT l.id, l.code, l.kind," \
	"       coalesce(l.latitude, cc.latitude), coalesce(l.longitude, cc.longitude)," \
	"       l.latitude IS NULL AND cc.latitude IS NOT NULL, l.country," \
	"       l.can_ship, l.can_pickup, l.priority, l.handling_days, l.cost_per_package::float8," \
	"       coalesce(l.daily_capacity, -1), coalesce(cu.used, 0), d.start_day, st.items, st.avail" \
	"  FROM (SELECT s.location_id, pg_catalog.array_agg(s.item_id) AS items," \
	"               pg_catalog.array_agg(" AVAIL ") AS avail" \
	"          FROM oms.stock s" \
	"         WHERE s.tenant_id = $1 AND s.item_id = ANY ($2)" STOCK_FILTER \
	"           AND ($5 OR " AVAIL " > 0 OR s.location_id = ANY ($4))" \
	"         GROUP BY s.location_id) st" \
	"  FULL JOIN (SELECT DISTINCT x.id FROM unnest($4) AS x(id)) x ON x.id = st.location_id" \
	"  JOIN oms.locations l ON l.tenant_id = $1 AND l.id = coalesce(st.location_id, x.id)" \
	"  LEFT JOIN oms.country_centroids cc ON l.latitude IS NULL AND cc.country = l.country" \
	" CROSS JOIN LATERAL (SELECT $3 AT TIME ZONE coalesce(l.timezone, pg_catalog.current_setting('TimeZone')) AS t) lt" \
	" CROSS JOIN LATERAL (SELECT lt.t::date + CASE WHEN l.cutoff_time IS NOT NULL AND lt.t::time >= l.cutoff_time" \
	"                                              THEN 1 ELSE 0 END AS start_day) d" \
	"  LEFT JOIN oms.location_capacity_used cu" \
	"         ON l.daily_capacity IS NOT NULL AND cu.tenant_id = $1 AND cu.location_id = l.id" \
	"        AND cu.day = d.start_day" \
	" WHERE l.active" LOCATION_FILTER \
	" ORDER BY l.id"

/*
 * The candidates: every active location with stock of one of the items ($2) that is available
 * (or any stock row at all when $5, for explain), plus the locations named in $4 (holds, the
 * pickup store, supply). One row per location, its stock of the items in two arrays.
 */
#define Q_CANDIDATES Q_CANDIDATES_WITH("", "", STOCK_AVAILABLE)
#define Q_CANDIDATES_V1 Q_CANDIDATES_WITH("", "", STOCK_AVAILABLE_V1)

/* The same, for the locations $6 only (a pruned search reads the promising locations first). */
#define Q_CANDIDATES_AT Q_CANDIDATES_WITH(" AND s.location_id = ANY ($6)", " AND l.id = ANY ($6)", STOCK_AVAILABLE)
#define Q_CANDIDATES_AT_V1 Q_CANDIDATES_WITH(" AND s.location_id = ANY ($6)", " AND l.id = ANY ($6)", STOCK_AVAILABLE_V1)

/*
 * What the bound of a pruned search needs of every active location: no stock, no time zones,
 * one row each (route_bounds in routing.c).
 */
#define Q_LOCATION_STATIC \
	"SELECT l.id, l.kind, coalesce(l.latitude, cc.latitude), coalesce(l.longitude, cc.longitude)," \
	"       l.can_ship, l.can_pickup, l.priority, l.handling_days, l.cost_per_package::float8," \
	"       l.timezone IS NULL" \
	"  FROM oms.locations l" \
	"  LEFT JOIN oms.country_centroids cc ON l.latitude IS NULL AND cc.country = l.country" \
	" WHERE l.tenant_id = $1 AND l.active" \
	" ORDER BY l.id"

#define Q_SUPPLY \
	"SELECT s.id, s.item_id, s.location_id, s.expected_date, s.qty - s.promised" \
	"  FROM oms.supply s" \
	" WHERE s.tenant_id = $1 AND s.item_id = ANY ($2) AND s.qty > s.promised" \
	" ORDER BY s.item_id, s.expected_date, s.id"

typedef enum RouteQuery
{
	RQ_ITEMS_BY_SKU,
	RQ_ITEMS_BY_ID,
	RQ_LOCATION_CODES,
	RQ_PROFILE,
	RQ_PROFILE_CODES,
	RQ_SERVICES,
	RQ_CENTROID,
	RQ_CANDIDATES,
	RQ_CANDIDATES_AT,
	RQ_LOCATION_STATIC,
	RQ_SUPPLY,
	RQ_COUNT
} RouteQuery;

static SPIPlanPtr plans[RQ_COUNT];

static void
prepare_plans(void)
{
	Oid			int_text[2] = {INT4OID, TEXTARRAYOID};
	Oid			int_ints[2] = {INT4OID, INT4ARRAYOID};
	Oid			int_one_text[2] = {INT4OID, TEXTOID};
	Oid			int_only[1] = {INT4OID};
	Oid			text_only[1] = {TEXTOID};
	Oid			cand[6] = {INT4OID, INT4ARRAYOID, TIMESTAMPTZOID, INT4ARRAYOID, BOOLOID, INT4ARRAYOID};

	if (plans[RQ_SUPPLY] != NULL)
		return;
	plans[RQ_ITEMS_BY_SKU] = oms_prepare_generic(Q_ITEMS_BY_SKU, 2, int_text, true);
	plans[RQ_ITEMS_BY_ID] = oms_prepare_generic(Q_ITEMS_BY_ID, 2, int_ints, true);
	plans[RQ_LOCATION_CODES] = oms_prepare_generic(Q_LOCATION_CODES, 2, int_text, true);
	plans[RQ_PROFILE] = oms_prepare_generic(Q_PROFILE, 2, int_one_text, true);
	plans[RQ_PROFILE_CODES] = oms_prepare_generic(Q_PROFILE_CODES, 1, int_only, true);
	plans[RQ_SERVICES] = oms_prepare_generic(Q_SERVICES, 1, int_only, true);
	plans[RQ_CENTROID] = oms_prepare_generic(Q_CENTROID, 1, text_only, true);
	if (oms_has_stock_slots())
	{
		plans[RQ_CANDIDATES] = oms_prepare_generic(Q_CANDIDATES, 5, cand, true);
		plans[RQ_CANDIDATES_AT] = oms_prepare_generic(Q_CANDIDATES_AT, 6, cand, true);
	}
	else
	{
		plans[RQ_CANDIDATES] = oms_prepare_generic(Q_CANDIDATES_V1, 5, cand, true);
		plans[RQ_CANDIDATES_AT] = oms_prepare_generic(Q_CANDIDATES_AT_V1, 6, cand, true);
	}
	plans[RQ_LOCATION_STATIC] = oms_prepare_generic(Q_LOCATION_STATIC, 1, int_only, true);
	plans[RQ_SUPPLY] = oms_prepare_generic(Q_SUPPLY, 2, int_ints, true);
}

static void
run(RouteQuery q, Datum *args)
{
	int			rc = SPI_execute_plan(plans[q], args, NULL, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "oms: routing query %d failed: %s", (int) q, SPI_result_code_string(rc));
}

/* Column helpers on the current SPI result. */
static Datum
col(uint64 row, int n, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, n, isnull);
}

static int32
col_int(uint64 row, int n, int32 dflt)
{
	bool		isnull;
	Datum		d = col(row, n, &isnull);

	return isnull ? dflt : DatumGetInt32(d);
}

static double
col_float(uint64 row, int n, double dflt)
{
	bool		isnull;
	Datum		d = col(row, n, &isnull);

	return isnull ? dflt : DatumGetFloat8(d);
}

static bool
col_bool(uint64 row, int n, bool dflt)
{
	bool		isnull;
	Datum		d = col(row, n, &isnull);

	return isnull ? dflt : DatumGetBool(d);
}

static char *
col_text(uint64 row, int n)
{
	bool		isnull;
	Datum		d = col(row, n, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static Datum
int_array(int32 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

static Datum
text_array(char **values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

void
route_init(Route *r, int32 tenant_id, bool explain)
{
	memset(r, 0, sizeof(Route));
	prepare_plans();
	r->tenant_id = tenant_id;
	r->now = oms_now();
	r->today = DatumGetDateADT(DirectFunctionCall1(timestamptz_date, TimestampTzGetDatum(r->now)));
	r->mode = DM_ANY;
	r->pickup = -1;
	r->chosen_plan = -1;
	r->explain = explain;
	r->dest_note = "";
}

/* ----- JSON input */

/* The JSON text of a value, shortened for messages. */
static char *
json_shown(JsonbValue *v)
{
	char	   *s;

	if (v == NULL)
		return "nothing";
	s = JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
	if (strlen(s) > 80)
		s = psprintf("%.77s...", s);
	return s;
}

static void
field_error(const char *what, const char *path, const char *problem, JsonbValue *v, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s field \"%s\" %s, got %s", what, path, problem, json_shown(v)),
			 errhint("%s", hint)));
}

static JsonbValue *
json_get(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

static bool
json_is(JsonbValue *v, enum jbvType type)
{
	if (v == NULL)
		return false;
	if (type == jbvObject || type == jbvArray)
		return v->type == jbvBinary &&
			(type == jbvObject ? JsonContainerIsObject(v->val.binary.data) :
			 (JsonContainerIsArray(v->val.binary.data) && !JsonContainerIsScalar(v->val.binary.data)));
	return v->type == type;
}

static char *
json_string(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Compares a JSON number with an integer, without converting it (it may have 1000 digits). */
static int
numeric_cmp_int(Numeric n, int64 v)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
											 NumericGetDatum(int64_to_numeric(v))));
}

/* A whole number within [lo, hi], or false. */
static bool
json_int(JsonbValue *v, int64 lo, int64 hi, int32 *out)
{
	Numeric		n;
	Datum		whole;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	n = v->val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n) || numeric_cmp_int(n, lo) < 0 || numeric_cmp_int(n, hi) > 0)
		return false;
	whole = DirectFunctionCall2(numeric_trunc, NumericGetDatum(n), Int32GetDatum(0));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n), whole)) != 0)
		return false;
	*out = DatumGetInt32(DirectFunctionCall1(numeric_int4, whole));
	return true;
}

/*
 * A number within [lo, hi], or false; rounded to 9 decimals first (a millimetre on the globe),
 * so that 1e-400 is 0 and not an underflow.
 */
static bool
json_float(JsonbValue *v, int64 lo, int64 hi, double *out)
{
	Numeric		n;
	Datum		rounded;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	n = v->val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n) || numeric_cmp_int(n, lo) < 0 || numeric_cmp_int(n, hi) > 0)
		return false;
	rounded = DirectFunctionCall2(numeric_round, NumericGetDatum(n), Int32GetDatum(9));
	*out = DatumGetFloat8(DirectFunctionCall1(numeric_float8, rounded));
	return true;
}

/* Refuses a key of an object that is not among the allowed ones (the first in text order). */
static void
check_keys(JsonbContainer *c, const char *what, const char *prefix, const char *const *allowed,
		   const char *allowed_text)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *worst = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = json_string(&v);
			bool		known = false;

			for (const char *const *a = allowed; *a; a++)
				if (strcmp(*a, key) == 0)
					known = true;
			if (!known && (worst == NULL || strcmp(key, worst) < 0))
				worst = key;
		}
	}
	if (worst != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s field \"%s%s\" is not known", what, prefix, worst),
				 errhint("Known fields%s: %s.", prefix[0] ? psprintf(" of \"%.*s\"", (int) strlen(prefix) - 1, prefix) : "",
						 allowed_text)));
}

static const char *const line_keys[] = {"exclude", "hold", "qty", "sku", "unit_price", NULL};
static const char *const hold_keys[] = {"location", "qty", NULL};
static const char *const ship_to_keys[] = {"city", "company", "country", "lat", "line1", "line2", "lon",
	"name", "phone", "pickup", "postal_code", "region", NULL};

#define LINE_HINT "A line is {\"sku\": \"SKU-1\", \"qty\": 2}: a known SKU and a whole quantity of at least 1."

/* Resolves location codes to ids (0: unknown); active/can_pickup flags when asked. */
static void
resolve_codes(Route *r, char **codes, int n, int32 *ids, bool *active, bool *can_pickup)
{
	Datum		args[2];

	if (n == 0)
		return;
	args[0] = Int32GetDatum(r->tenant_id);
	args[1] = text_array(codes, n);
	run(RQ_LOCATION_CODES, args);
	for (uint64 i = 0; i < SPI_processed && i < (uint64) n; i++)
	{
		ids[i] = col_int(i, 2, 0);
		if (active)
			active[i] = col_bool(i, 3, false);
		if (can_pickup)
			can_pickup[i] = col_bool(i, 4, false);
	}
}

static void
unknown_location(const char *what, const char *path, const char *code)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown location \"%s\" in %s field \"%s\"", oms_clip(code), what, path),
			 errhint("Locations are rows of oms.locations of the current tenant (setting oms.tenant).")));
}

void
route_parse_lines(Route *r, Jsonb *lines, const char *what)
{
	JsonbContainer *c;
	int			n;
	char	  **skus;
	char	  **codes;
	char	  **code_paths;
	int		   *code_line;
	int			ncodes = 0;
	int32	   *ids;

	if (lines == NULL || !JsonContainerIsArray(&lines->root) || JsonContainerIsScalar(&lines->root) ||
		JsonContainerSize(&lines->root) == 0)
	{
		JsonbValue	v;

		v.type = jbvBinary;
		if (lines != NULL)
		{
			v.val.binary.data = &lines->root;
			v.val.binary.len = VARSIZE(lines) - VARHDRSZ;
		}
		field_error(what, "lines", "must be a non-empty array", lines ? &v : NULL,
					"A cart is [{\"sku\": \"SKU-1\", \"qty\": 2}, ...]: 1 to 10000 lines.");
	}
	c = &lines->root;
	n = JsonContainerSize(c);
	if (n > MAX_ROUTE_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s field \"lines\" has %d lines, more than %d", what, n, MAX_ROUTE_LINES),
				 errhint("Split the order: one order has at most %d lines.", MAX_ROUTE_LINES)));

	r->nlines = n;
	r->lines = palloc0(sizeof(RouteLine) * n);
	skus = palloc(sizeof(char *) * n);
	codes = palloc(sizeof(char *) * (n + 16));
	code_paths = palloc(sizeof(char *) * (n + 16));
	code_line = palloc(sizeof(int) * (n + 16));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(c, i);
		RouteLine  *line = &r->lines[i];
		JsonbValue *v;
		char	   *path = psprintf("lines[%d]", i);

		line->line_no = i + 1;
		line->hold_loc = -1;
		if (!json_is(e, jbvObject))
			field_error(what, path, "must be an object", e, LINE_HINT);
		check_keys(e->val.binary.data, what, psprintf("%s.", path), line_keys,
				   "exclude, hold, qty, sku, unit_price");
		v = json_get(e->val.binary.data, "sku");
		if (!json_is(v, jbvString) || v->val.string.len == 0 || v->val.string.len > 100)
			field_error(what, psprintf("%s.sku", path), "must be a SKU (text of 1 to 100 characters)", v, LINE_HINT);
		line->sku = skus[i] = json_string(v);
		v = json_get(e->val.binary.data, "qty");
		if (!json_int(v, 1, INT_MAX, &line->qty))
			field_error(what, psprintf("%s.qty", path), "must be a whole number greater than 0", v, LINE_HINT);

		v = json_get(e->val.binary.data, "exclude");
		if (v != NULL)
		{
			int			ne;

			if (!json_is(v, jbvArray))
				field_error(what, psprintf("%s.exclude", path), "must be an array of location codes", v,
							"For example \"exclude\": [\"STORE-1\"]: locations that must not serve the line.");
			ne = JsonContainerSize(v->val.binary.data);
			line->exclude = palloc(sizeof(int32) * Max(ne, 1));
			for (int j = 0; j < ne; j++)
			{
				JsonbValue *x = getIthJsonbValueFromContainer(v->val.binary.data, j);

				if (!json_is(x, jbvString))
					field_error(what, psprintf("%s.exclude[%d]", path, j), "must be a location code", x,
								"For example \"exclude\": [\"STORE-1\"]: locations that must not serve the line.");
				codes = repalloc(codes, sizeof(char *) * (ncodes + n + 16));
				code_paths = repalloc(code_paths, sizeof(char *) * (ncodes + n + 16));
				code_line = repalloc(code_line, sizeof(int) * (ncodes + n + 16));
				codes[ncodes] = json_string(x);
				code_paths[ncodes] = psprintf("%s.exclude[%d]", path, j);
				code_line[ncodes++] = i;
			}
		}
		v = json_get(e->val.binary.data, "hold");
		if (v != NULL)
		{
			JsonbValue *hl;
			JsonbValue *hq;
			const char *hint = "A hold is {\"location\": \"WH-1\", \"qty\": 2}: units already held for this line there (a cart hold).";

			if (!json_is(v, jbvObject))
				field_error(what, psprintf("%s.hold", path), "must be an object", v, hint);
			check_keys(v->val.binary.data, what, psprintf("%s.hold.", path), hold_keys, "location, qty");
			hl = json_get(v->val.binary.data, "location");
			hq = json_get(v->val.binary.data, "qty");
			if (!json_is(hl, jbvString))
				field_error(what, psprintf("%s.hold.location", path), "must be a location code", hl, hint);
			if (!json_int(hq, 1, INT_MAX, &line->hold_qty))
				field_error(what, psprintf("%s.hold.qty", path), "must be a whole number greater than 0", hq, hint);
			codes = repalloc(codes, sizeof(char *) * (ncodes + n + 16));
			code_paths = repalloc(code_paths, sizeof(char *) * (ncodes + n + 16));
			code_line = repalloc(code_line, sizeof(int) * (ncodes + n + 16));
			codes[ncodes] = json_string(hl);
			code_paths[ncodes] = psprintf("%s.hold.location", path);
			code_line[ncodes++] = -1 - i;	/* negative: a hold */
		}
	}

	/* One line per SKU: the stock of a SKU is weighed once. */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			if (strcmp(skus[i], skus[j]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("SKU \"%s\" appears in more than one line of the %s", skus[i], what),
						 errhint("Send one line per SKU with the total quantity.")));

	/* The items, in one query. */
	{
		Datum		args[2];

		args[0] = Int32GetDatum(r->tenant_id);
		args[1] = text_array(skus, n);
		run(RQ_ITEMS_BY_SKU, args);
		for (uint64 row = 0; row < SPI_processed; row++)
		{
			int			i = col_int(row, 1, 0) - 1;
			RouteLine  *line = &r->lines[i];

			line->item_id = col_int(row, 2, 0);
			if (line->item_id == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown SKU \"%s\" in %s field \"lines[%d].sku\"", line->sku, what, i),
						 errhint("Items are rows of oms.items of the current tenant (setting oms.tenant).")));
			if (!col_bool(row, 6, false))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("item \"%s\" in %s field \"lines[%d].sku\" is not active", line->sku, what, i),
						 errhint("Inactive items cannot be sold; remove the line or reactivate the item.")));
			line->weight = col_float(row, 3, 0);
			line->backorderable = col_bool(row, 4, false);
			line->preorderable = col_bool(row, 5, false);
		}
	}

	/* The location codes of exclusions and holds, in one query. */
	ids = palloc0(sizeof(int32) * Max(ncodes, 1));
	resolve_codes(r, codes, ncodes, ids, NULL, NULL);
	for (int k = 0; k < ncodes; k++)
	{
		RouteLine  *line;

		if (ids[k] == 0)
			unknown_location(what, code_paths[k], codes[k]);
		if (code_line[k] < 0)
		{
			line = &r->lines[-1 - code_line[k]];
			line->hold_location_id = ids[k];
		}
		else
		{
			line = &r->lines[code_line[k]];
			line->exclude[line->nexclude++] = ids[k];
		}
	}
}

/* ----- array input (place_order, reject_line) */

static int32 *
int_elems(ArrayType *a, int *n)
{
	Datum	   *d;
	bool	   *nulls;
	int32	   *out;

	if (a == NULL)
	{
		*n = 0;
		return NULL;
	}
	if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != INT4OID)
		elog(ERROR, "oms: routing expects one-dimensional int4 arrays");
	deconstruct_array(a, INT4OID, sizeof(int32), true, TYPALIGN_INT, &d, &nulls, n);
	out = palloc(sizeof(int32) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = nulls[i] ? 0 : DatumGetInt32(d[i]);
	return out;
}

void
route_set_lines(Route *r, ArrayType *items, ArrayType *qtys, ArrayType *hold_locations,
				ArrayType *hold_qtys, ArrayType *exclude_lines, ArrayType *exclude_locations)
{
	int			n,
				nq,
				nhl,
				nhq,
				nel,
				nex;
	int32	   *item_ids = int_elems(items, &n);
	int32	   *q = int_elems(qtys, &nq);
	int32	   *hl = int_elems(hold_locations, &nhl);
	int32	   *hq = int_elems(hold_qtys, &nhq);
	int32	   *el = int_elems(exclude_lines, &nel);
	int32	   *ex = int_elems(exclude_locations, &nex);
	Datum		args[2];

	if (n == 0 || n != nq || (nhl != 0 && nhl != n) || nhl != nhq || nel != nex)
		elog(ERROR, "oms: routing arrays of different lengths");
	r->nlines = n;
	r->lines = palloc0(sizeof(RouteLine) * n);
	for (int i = 0; i < n; i++)
	{
		RouteLine  *line = &r->lines[i];

		line->line_no = i + 1;
		line->item_id = item_ids[i];
		line->qty = q[i];
		line->hold_loc = -1;
		if (line->qty <= 0)
			elog(ERROR, "oms: routing line %d has quantity %d", i + 1, line->qty);
		if (nhl > 0 && hl[i] != 0 && hq[i] > 0)
		{
			line->hold_location_id = hl[i];
			line->hold_qty = hq[i];
		}
		line->exclude = palloc(sizeof(int32) * Max(nex, 1));
	}
	for (int k = 0; k < nex; k++)
	{
		if (el[k] < 1 || el[k] > n)
			elog(ERROR, "oms: routing exclusion for line %d of %d", el[k], n);
		r->lines[el[k] - 1].exclude[r->lines[el[k] - 1].nexclude++] = ex[k];
	}

	args[0] = Int32GetDatum(r->tenant_id);
	args[1] = PointerGetDatum(items);
	run(RQ_ITEMS_BY_ID, args);
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		int			i = col_int(row, 1, 0) - 1;
		RouteLine  *line = &r->lines[i];

		line->sku = col_text(row, 2);
		if (line->sku == NULL)
			elog(ERROR, "oms: routing line %d has unknown item id %d", i + 1, line->item_id);
		line->weight = col_float(row, 3, 0);
		line->backorderable = col_bool(row, 4, false);
		line->preorderable = col_bool(row, 5, false);
	}
}

/* ----- destination */

static bool
load_centroid(const char *country, double *lat, double *lon)
{
	Datum		arg = CStringGetTextDatum(country);

	run(RQ_CENTROID, &arg);
	if (SPI_processed == 0)
		return false;
	*lat = col_float(0, 1, 0);
	*lon = col_float(0, 2, 0);
	return true;
}

void
route_parse_ship_to(Route *r, Jsonb *ship_to, const char *what)
{
	JsonbContainer *c;
	JsonbValue *v;
	JsonbValue *lat;
	JsonbValue *lon;
	const char *hint = "An address {\"country\": \"IT\", \"postal_code\": \"20121\", \"lat\": 45.46, \"lon\": 9.19} (coordinates optional), or {\"pickup\": \"STORE-1\"} for click & collect.";

	if (ship_to == NULL || !JsonContainerIsObject(&ship_to->root))
	{
		JsonbValue	w;

		w.type = jbvBinary;
		if (ship_to != NULL)
		{
			w.val.binary.data = &ship_to->root;
			w.val.binary.len = VARSIZE(ship_to) - VARHDRSZ;
		}
		field_error(what, "ship_to", "must be an address object", ship_to ? &w : NULL, hint);
	}
	c = &ship_to->root;
	check_keys(c, what, "ship_to.", ship_to_keys,
			   "city, company, country, lat, line1, line2, lon, name, phone, pickup, postal_code, region");

	v = json_get(c, "pickup");
	if (v != NULL)
	{
		char	   *code;
		int32		id = 0;
		bool		active = false;
		bool		can_pickup = false;

		if (!json_is(v, jbvString))
			field_error(what, "ship_to.pickup", "must be a store's location code", v,
						"Click & collect names the store, e.g. {\"pickup\": \"STORE-MI-01\"}.");
		code = json_string(v);
		resolve_codes(r, &code, 1, &id, &active, &can_pickup);
		if (id == 0)
			unknown_location(what, "ship_to.pickup", code);
		if (!active || !can_pickup)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("location \"%s\" does not offer pickup", oms_clip(code)),
					 errhint("Choose an active location with can_pickup for click & collect.")));
		route_set_pickup_id(r, id);
		return;
	}

	v = json_get(c, "country");
	if (v != NULL)
	{
		if (!json_is(v, jbvString) || v->val.string.len != 2 ||
			!isalpha((unsigned char) v->val.string.val[0]) || !isalpha((unsigned char) v->val.string.val[1]))
			field_error(what, "ship_to.country", "must be an ISO 3166 country code", v, "Two letters, e.g. \"IT\" or \"RO\".");
		r->dest_country[0] = pg_toupper((unsigned char) v->val.string.val[0]);
		r->dest_country[1] = pg_toupper((unsigned char) v->val.string.val[1]);
		r->dest_country[2] = '\0';
	}
	lat = json_get(c, "lat");
	lon = json_get(c, "lon");
	if ((lat == NULL) != (lon == NULL))
		field_error(what, lat ? "ship_to.lon" : "ship_to.lat", "is required with the other coordinate", NULL,
					"Give both lat and lon, or neither.");
	if (lat != NULL)
	{
		if (!json_float(lat, -90, 90, &r->dest_lat))
			field_error(what, "ship_to.lat", "must be a latitude between -90 and 90", lat, "Decimal degrees, e.g. 45.4642.");
		if (!json_float(lon, -180, 180, &r->dest_lon))
			field_error(what, "ship_to.lon", "must be a longitude between -180 and 180", lon, "Decimal degrees, e.g. 9.19.");
		r->dest_known = true;
		r->dest_note = psprintf("ship to %.4f, %.4f%s%s", r->dest_lat, r->dest_lon,
								r->dest_country[0] ? " in " : "", r->dest_country);
		return;
	}
	if (r->dest_country[0] == '\0')
	{
		JsonbValue	w;

		w.type = jbvBinary;
		w.val.binary.data = c;
		w.val.binary.len = VARSIZE(ship_to) - VARHDRSZ;
		field_error(what, "ship_to", "needs a country or coordinates", &w, hint);
	}
	if (load_centroid(r->dest_country, &r->dest_lat, &r->dest_lon))
	{
		r->dest_known = true;
		r->dest_note = psprintf("ship to %s: no coordinates, the centroid of %s (%.2f, %.2f) is used",
								r->dest_country, r->dest_country, r->dest_lat, r->dest_lon);
	}
	else
		r->dest_note = psprintf("ship to %s: no coordinates and no centroid of %s in oms.country_centroids: distances unknown, counted as 0 km (location costs, handling days and priority still count)",
								r->dest_country, r->dest_country);
}

void
route_set_pickup_id(Route *r, int32 location_id)
{
	r->pickup_id = location_id;
}

/* ----- profile and services */

static bool
kind_from_text(const char *s, LocationKind *kind)
{
	static const char *const names[LK_COUNT] = {"warehouse", "store", "3pl", "vendor"};

	for (int k = 0; k < LK_COUNT; k++)
		if (strcmp(s, names[k]) == 0)
		{
			*kind = (LocationKind) k;
			return true;
		}
	return false;
}

void
route_load_profile(Route *r, const char *code)
{
	Datum		args[2];
	Datum	   *kinds;
	bool	   *nulls;
	int			nkinds;
	bool		isnull;

	if (code == NULL)
		code = "balanced";
	args[0] = Int32GetDatum(r->tenant_id);
	args[1] = CStringGetTextDatum(code);
	run(RQ_PROFILE, args);
	if (SPI_processed == 0)
	{
		char	   *known;

		run(RQ_PROFILE_CODES, args);
		known = col_text(0, 1);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown routing profile \"%s\"", oms_clip(code)),
				 errhint("Routing profiles are rows of oms.routing_profiles: %s.", known ? known : "none")));
	}
	r->profile.code = col_text(0, 1);
	r->profile.w_cost = col_float(0, 2, 0);
	r->profile.w_days = col_float(0, 3, 0);
	r->profile.w_co2 = col_float(0, 4, 0);
	r->profile.w_packages = col_float(0, 5, 0);
	r->profile.max_packages = col_int(0, 6, 1);
	r->profile.max_distance_km = col_float(0, 7, 0);
	deconstruct_array(DatumGetArrayTypeP(col(0, 8, &isnull)), TEXTOID, -1, false, TYPALIGN_INT,
					  &kinds, &nulls, &nkinds);
	for (int k = 0; k < nkinds; k++)
	{
		LocationKind kind;

		if (!nulls[k] && kind_from_text(TextDatumGetCString(kinds[k]), &kind))
			r->profile.kinds[kind] = true;
	}
	r->profile.allow_backorder = col_bool(0, 9, true);
	r->profile.allow_preorder = col_bool(0, 10, true);
}

static void
load_services(Route *r)
{
	Datum		arg = Int32GetDatum(r->tenant_id);

	run(RQ_SERVICES, &arg);
	r->nservices = (int) SPI_processed;
	r->services = palloc0(sizeof(CarrierService) * Max(r->nservices, 1));
	for (int i = 0; i < r->nservices; i++)
	{
		CarrierService *s = &r->services[i];
		char	   *mode = col_text(i, 2);
		bool		isnull;
		Datum		countries;

		s->code = col_text(i, 1);
		s->mode = strcmp(mode, "express") == 0 ? DM_EXPRESS :
			strcmp(mode, "economy") == 0 ? DM_ECONOMY : DM_STANDARD;
		s->base_cost = col_float(i, 3, 0);
		s->cost_per_kg = col_float(i, 4, 0);
		s->cost_per_km = col_float(i, 5, 0);
		s->base_days = col_int(i, 6, 0);
		s->km_per_day = col_float(i, 7, 0);
		s->co2_per_km = col_float(i, 8, 0);
		s->co2_per_kg_km = col_float(i, 9, 0);
		s->max_weight = col_float(i, 10, 0);
		s->max_distance = col_float(i, 11, 0);
		countries = col(i, 12, &isnull);
		if (!isnull)
		{
			Datum	   *d;
			bool	   *nulls;
			int			nc;

			deconstruct_array(DatumGetArrayTypeP(countries), TEXTOID, -1, false, TYPALIGN_INT,
							  &d, &nulls, &nc);
			s->countries = palloc0(sizeof(char[3]) * Max(nc, 1));
			for (int k = 0; k < nc; k++)
				strlcpy(s->countries[k], TextDatumGetCString(d[k]), 3);
			s->ncountries = nc;
		}
	}
}

/* ----- candidates */

typedef struct ItemLine
{
	int32		item_id;
	int			line;
} ItemLine;

static int
compare_item_lines(const void *a, const void *b)
{
	const ItemLine *x = a;
	const ItemLine *y = b;

	if (x->item_id != y->item_id)
		return x->item_id < y->item_id ? -1 : 1;
	return x->line - y->line;
}

static int
line_of_item(ItemLine *map, int n, int32 item_id)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (map[mid].item_id == item_id)
			return map[mid].line;
		if (map[mid].item_id < item_id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/*
 * Runs the candidates query for the items of every line (or none) and the extra location ids;
 * appends the locations not yet known. Returns how many were appended.
 */
static int
load_locations(Route *r, bool with_items, int32 *extra, int nextra, int32 *only, int nonly)
{
	Datum		args[6];
	int32	   *item_ids = palloc(sizeof(int32) * Max(r->nlines, 1));
	ItemLine   *map = palloc(sizeof(ItemLine) * Max(r->nlines, 1));
	int			added = 0;
	int			known = r->nlocs;

	for (int i = 0; i < r->nlines; i++)
	{
		item_ids[i] = r->lines[i].item_id;
		map[i].item_id = r->lines[i].item_id;
		map[i].line = i;
	}
	qsort(map, r->nlines, sizeof(ItemLine), compare_item_lines);

	args[0] = Int32GetDatum(r->tenant_id);
	args[1] = int_array(item_ids, with_items ? r->nlines : 0);
	args[2] = TimestampTzGetDatum(r->now);
	args[3] = int_array(extra, nextra);
	args[4] = BoolGetDatum(r->explain);
	if (only != NULL)
	{
		args[5] = int_array(only, nonly);
		run(RQ_CANDIDATES_AT, args);
	}
	else
		run(RQ_CANDIDATES, args);

	r->locs = r->nlocs == 0 ? palloc0(sizeof(RouteLocation) * Max(SPI_processed, 1)) :
		repalloc(r->locs, sizeof(RouteLocation) * (r->nlocs + SPI_processed));
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		RouteLocation *loc = &r->locs[r->nlocs];
		int32		id = col_int(row, 1, 0);
		char	   *kind;
		char	   *country;
		bool		isnull;
		Datum		items;

		if (known > 0 && route_find_location(r, id) >= 0)
			continue;
		memset(loc, 0, sizeof(RouteLocation));
		loc->id = id;
		loc->code = col_text(row, 2);
		kind = col_text(row, 3);
		if (!kind_from_text(kind, &loc->kind))
			loc->kind = LK_WAREHOUSE;
		loc->lat = col_float(row, 4, 0);
		col(row, 4, &isnull);
		loc->has_pos = !isnull;
		loc->lon = col_float(row, 5, 0);
		loc->pos_is_centroid = col_bool(row, 6, false);
		country = col_text(row, 7);
		if (country)
			strlcpy(loc->country, country, sizeof(loc->country));
		loc->can_ship = col_bool(row, 8, false);
		loc->can_pickup = col_bool(row, 9, false);
		loc->priority = col_int(row, 10, 0);
		loc->handling_days = col_int(row, 11, 0);
		loc->cost_per_package = col_float(row, 12, 0);
		loc->capacity = col_int(row, 13, -1);
		loc->used = col_int(row, 14, 0);
		loc->start_day = DatumGetDateADT(col(row, 15, &isnull));
		loc->avail = palloc(sizeof(int64) * Max(r->nlines, 1));
		for (int i = 0; i < r->nlines; i++)
			loc->avail[i] = -1;		/* no stock row */
		items = col(row, 16, &isnull);
		if (!isnull)
		{
			Datum	   *it;
			Datum	   *av;
			bool	   *nulls;
			int			n;
			int			n2;

			deconstruct_array(DatumGetArrayTypeP(items), INT4OID, sizeof(int32), true, TYPALIGN_INT,
							  &it, &nulls, &n);
			deconstruct_array(DatumGetArrayTypeP(col(row, 17, &isnull)), INT8OID, sizeof(int64),
							  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &av, &nulls, &n2);
			for (int k = 0; k < n && k < n2; k++)
			{
				int			line = line_of_item(map, r->nlines, DatumGetInt32(it[k]));

				if (line >= 0)
					loc->avail[line] = Max(DatumGetInt64(av[k]), 0);
			}
		}
		r->nlocs++;
		added++;
	}
	return added;
}

int
route_find_location(Route *r, int32 id)
{
	/* locations are kept in id order by the query; appended ones are few */
	for (int i = 0; i < r->nlocs; i++)
		if (r->locs[i].id == id)
			return i;
	return -1;
}

/*
 * Loads the candidate locations with their stock of the lines' items: every one (only == NULL),
 * or the given ones (a pruned search; the holds' locations must be among them).
 */
static void
load_candidates(Route *r, int32 *only, int nonly)
{
	int32	   *extra = palloc(sizeof(int32) * (r->nlines + 1));
	int			nextra = 0;


	route_load_services(r);
	for (int i = 0; i < r->nlines; i++)
		if (r->lines[i].hold_location_id != 0)
			extra[nextra++] = r->lines[i].hold_location_id;
	if (r->pickup_id != 0)
		extra[nextra++] = r->pickup_id;
	load_locations(r, true, extra, nextra, only, nonly);

	for (int i = 0; i < r->nlines; i++)
	{
		RouteLine  *line = &r->lines[i];

		if (line->hold_location_id == 0)
			continue;
		line->hold_loc = route_find_location(r, line->hold_location_id);
		if (line->hold_loc >= 0)
		{
			RouteLocation *loc = &r->locs[line->hold_loc];

			loc->avail[i] = Max(loc->avail[i], 0) + line->hold_qty;
		}
	}
	if (r->pickup_id != 0)
	{
		RouteLocation *store;

		r->pickup = route_find_location(r, r->pickup_id);
		if (r->pickup < 0)
			elog(ERROR, "oms: pickup location %d is not active", r->pickup_id);
		store = &r->locs[r->pickup];
		r->dest_known = store->has_pos;
		r->dest_lat = store->lat;
		r->dest_lon = store->lon;
		memcpy(r->dest_country, store->country, sizeof(r->dest_country));
		r->dest_note = store->has_pos ?
			psprintf("pickup at %s (%.4f, %.4f%s)", store->code, store->lat, store->lon,
					 store->pos_is_centroid ? ", centroid of its country" : "") :
			psprintf("pickup at %s: it has no coordinates, distances of transfers unknown, counted as 0 km",
					 store->code);
	}
}

void
route_load(Route *r)
{
	load_candidates(r, NULL, 0);
}

/* route_load for the given locations only (their stock of the lines' items included). */
void
route_load_at(Route *r, int32 *ids, int nids)
{
	load_candidates(r, ids, nids);
}

/* Forgets the loaded locations, so that route_load can load them all again. */
void
route_unload(Route *r)
{
	r->nlocs = 0;
	r->locs = NULL;
	r->pickup = -1;
	for (int i = 0; i < r->nlines; i++)
		r->lines[i].hold_loc = -1;
	route_reset(r);
}

int
route_add_locations(Route *r, int32 *ids, int nids)
{
	return load_locations(r, false, ids, nids, NULL, 0);
}

/* Appends the given locations with their stock of the lines' items (those not loaded yet). */
int
route_add_locations_with_stock(Route *r, int32 *ids, int nids)
{
	return load_locations(r, true, ids, nids, ids, nids);
}

/* The tenant's active carrier services, once per route. */
void
route_load_services(Route *r)
{
	if (r->services == NULL)
		load_services(r);
}

/*
 * What a pruned search bounds, every active location of a tenant without stock, is kept per
 * backend for the last few tenants: a checkout page calls oms.promise on every view, and reading
 * 1,000 locations each time would cost more than the search. Any change of oms.locations or
 * oms.country_centroids drops it in every backend: their statement triggers
 * (oms._routing_data_changed) send a relcache invalidation of the table, processed by every
 * backend once the change commits.
 */
#define STATIC_CACHE_TENANTS 8

typedef struct StaticCacheEntry
{
	int32		tenant_id;
	int			n;
	RouteStatic *locs;			/* in TopMemoryContext */
} StaticCacheEntry;

static StaticCacheEntry static_cache[STATIC_CACHE_TENANTS];
static int	static_cache_n = 0;
static int	static_cache_next = 0;	/* the entry replaced next when full */
static bool static_cache_registered = false;
static Oid	static_cache_rels[2];	/* oms.locations, oms.country_centroids */

static void
static_cache_reset(void)
{
	for (int k = 0; k < static_cache_n; k++)
		pfree(static_cache[k].locs);
	static_cache_n = 0;
	static_cache_next = 0;
}

static void
static_cache_callback(Datum arg, Oid relid)
{
	/* no catalog access here: the tables' oids were noted at registration */
	if (!OidIsValid(relid) || relid == static_cache_rels[0] || relid == static_cache_rels[1])
		static_cache_reset();
}

static void
static_cache_register(void)
{
	Oid			nsp;

	if (static_cache_registered)
		return;
	nsp = get_namespace_oid("oms", false);
	static_cache_rels[0] = get_relname_relid("locations", nsp);
	static_cache_rels[1] = get_relname_relid("country_centroids", nsp);
	oms_register_relcache_callback(static_cache_callback);
	static_cache_registered = true;
}

static int
read_static(Route *r, RouteStatic **out)
{
	Datum		args[1];
	RouteStatic *st;

	args[0] = Int32GetDatum(r->tenant_id);
	run(RQ_LOCATION_STATIC, args);
	st = MemoryContextAlloc(TopMemoryContext, sizeof(RouteStatic) * Max(SPI_processed, 1));
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		RouteStatic *s = &st[row];
		char	   *kind = col_text(row, 2);
		bool		isnull;

		memset(s, 0, sizeof(RouteStatic));
		s->id = col_int(row, 1, 0);
		if (!kind_from_text(kind, &s->kind))
			s->kind = LK_WAREHOUSE;
		s->lat = col_float(row, 3, 0);
		col(row, 3, &isnull);
		s->has_pos = !isnull;
		s->lon = col_float(row, 4, 0);
		s->can_ship = col_bool(row, 5, false);
		s->can_pickup = col_bool(row, 6, false);
		s->priority = col_int(row, 7, 0);
		s->handling_days = col_int(row, 8, 0);
		s->cost_per_package = col_float(row, 9, 0);
		s->server_time_zone = col_bool(row, 10, false);
	}
	*out = st;
	return (int) SPI_processed;
}

/* Every active location of the tenant, without stock (a copy the caller may reorder). */
int
route_load_static(Route *r, RouteStatic **out)
{
	StaticCacheEntry *e = NULL;

	static_cache_register();
	for (int k = 0; k < static_cache_n && e == NULL; k++)
		if (static_cache[k].tenant_id == r->tenant_id)
			e = &static_cache[k];
	if (e == NULL)
	{
		if (static_cache_n < STATIC_CACHE_TENANTS)
			e = &static_cache[static_cache_n++];
		else
		{
			e = &static_cache[static_cache_next];
			static_cache_next = (static_cache_next + 1) % STATIC_CACHE_TENANTS;
			pfree(e->locs);
		}
		e->tenant_id = r->tenant_id;
		e->n = read_static(r, &e->locs);
	}
	*out = palloc(sizeof(RouteStatic) * Max(e->n, 1));
	memcpy(*out, e->locs, sizeof(RouteStatic) * e->n);
	return e->n;
}

PG_FUNCTION_INFO_V1(oms_routing_data_changed);

/*
 * Trigger oms._routing_data_changed(), after any change of oms.locations or
 * oms.country_centroids: a relcache invalidation of the table, so that every backend drops the
 * locations it keeps for routing.
 */
Datum
oms_routing_data_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "oms: _routing_data_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	oms_invalidate_shell(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * Incoming supply not yet promised for the items of the given lines: *out gets 5 values per row
 * (supply id, line index, location id, expected date, free qty), by line then date.
 */
void
route_load_supply(Route *r, int *lines, int nlines, int64 **out, int *nsupply)
{
	Datum		args[2];
	int32	   *item_ids = palloc(sizeof(int32) * Max(nlines, 1));
	ItemLine   *map = palloc(sizeof(ItemLine) * Max(nlines, 1));
	int64	   *rows;

	for (int i = 0; i < nlines; i++)
	{
		item_ids[i] = r->lines[lines[i]].item_id;
		map[i].item_id = item_ids[i];
		map[i].line = lines[i];
	}
	qsort(map, nlines, sizeof(ItemLine), compare_item_lines);
	args[0] = Int32GetDatum(r->tenant_id);
	args[1] = int_array(item_ids, nlines);
	run(RQ_SUPPLY, args);
	rows = palloc(sizeof(int64) * 5 * Max(SPI_processed, 1));
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		bool		isnull;

		rows[row * 5] = DatumGetInt64(col(row, 1, &isnull));
		rows[row * 5 + 1] = line_of_item(map, nlines, col_int(row, 2, 0));
		rows[row * 5 + 2] = col_int(row, 3, 0);
		rows[row * 5 + 3] = DatumGetDateADT(col(row, 4, &isnull));
		rows[row * 5 + 4] = DatumGetInt64(col(row, 5, &isnull));
	}
	*out = rows;
	*nsupply = (int) SPI_processed;
}
