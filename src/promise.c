/*
 * promise.c
 *		The delivery promise a checkout page shows: for each delivery mode the tenant's carriers
 *		offer (economy, standard, express) the earliest date the whole cart arrives, its cost,
 *		CO2, how many packages and from where; and click & collect at the nearest stores that
 *		have the whole cart. Nothing is reserved.
 *
 * The one idea: a promise is the routing engine run once per delivery mode on data loaded once.
 * The cart's stock at every location, the profile and the carrier services are read by the same
 * kept plans as oms.route (a fixed number of reads per call); each mode then solves in memory
 * with only that mode's carrier services, and the stores come from the same candidate list.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "oms.h"
#include "routing.h"

#define PROMISE_COLUMNS 10
#define PICKUP_STORES 3

static const char *const mode_names[] = {"economy", "standard", "express"};

typedef struct PromiseOut
{
	ReturnSetInfo *rsinfo;
} PromiseOut;

static Datum
rounded_numeric(double v, int scale)
{
	return DirectFunctionCall2(numeric_round, DirectFunctionCall1(float8_numeric, Float8GetDatum(v)),
							   Int32GetDatum(scale));
}

static void
put_option(PromiseOut *out, const char *option, const char *location, bool has_distance,
		   double distance, DateADT date, double cost, double co2, int packages,
		   const char *ships_from, const char *services, const char *detail)
{
	Datum		values[PROMISE_COLUMNS];
	bool		nulls[PROMISE_COLUMNS];

	memset(nulls, 0, sizeof(nulls));
	values[0] = CStringGetTextDatum(option);
	nulls[1] = location == NULL;
	if (location)
		values[1] = CStringGetTextDatum(location);
	nulls[2] = !has_distance;
	if (has_distance)
		values[2] = rounded_numeric(distance, 1);
	values[3] = DateADTGetDatum(date);
	values[4] = rounded_numeric(cost, 2);
	values[5] = rounded_numeric(co2, 0);
	values[6] = Int32GetDatum(packages);
	values[7] = CStringGetTextDatum(ships_from);
	nulls[8] = services == NULL || services[0] == '\0';
	if (!nulls[8])
		values[8] = CStringGetTextDatum(services);
	values[9] = CStringGetTextDatum(detail);
	tuplestore_putvalues(out->rsinfo->setResult, out->rsinfo->setDesc, values, nulls);
}

/* Appends s to a comma list unless it is there already. */
static void
add_unique(StringInfo buf, const char *s)
{
	const char *p = buf->data;
	size_t		len = strlen(s);

	while ((p = strstr(p, s)) != NULL)
	{
		if ((p == buf->data || p[-2] == ',') && (p[len] == '\0' || p[len] == ','))
			return;
		p += len;
	}
	appendStringInfo(buf, "%s%s", buf->len ? ", " : "", s);
}

/*
 * One delivery mode: solve, and turn the rows into one option if every line has a date (from
 * stock, a pre-order or a backorder with supply). false: the mode cannot deliver the cart.
 */
static bool
promise_mode(Route *r, DeliveryMode mode, const char *option, const char *location, PromiseOut *out)
{
	StringInfoData from;
	StringInfoData services;
	StringInfoData detail;
	DateADT		date = DATEVAL_NOBEGIN;
	double		cost = 0;
	double		co2 = 0;
	int			packages = 0;
	int		   *seen;
	int			nseen = 0;
	int			from_stock = 0;
	int			later = 0;

	route_reset(r);
	r->mode = mode;
	route_solve(r);
	seen = palloc(sizeof(int) * 2 * Max(r->nrows, 1));

	initStringInfo(&from);
	initStringInfo(&services);
	initStringInfo(&detail);
	for (int k = 0; k < r->nrows; k++)
	{
		RouteRow   *row = &r->rows[k];
		bool		counted = false;

		if (DATE_NOT_FINITE(row->eta) || row->loc < 0 || row->kind == RK_UNSERVABLE)
			return false;
		date = Max(date, row->eta);
		if (row->kind == RK_PREORDER || row->kind == RK_BACKORDER)
			later++;
		else
			from_stock++;
		/* a package is one (location, kind): lines sharing one are counted once */
		for (int j = 0; j < nseen && !counted; j++)
			counted = seen[2 * j] == row->loc && seen[2 * j + 1] == (int) row->kind;
		if (!counted)
		{
			seen[2 * nseen] = row->loc;
			seen[2 * nseen + 1] = (int) row->kind;
			nseen++;
			packages++;
			cost += row->cost;
			co2 += row->co2;
		}
		add_unique(&from, r->locs[row->loc].code);
		if (row->service >= 0)
			add_unique(&services, r->services[row->service].code);
	}
	if (r->nrows == 0)
		return false;
	appendStringInfo(&detail, "%s", packages == 1 ? "one package" : psprintf("%d packages", packages));
	if (later > 0)
		appendStringInfo(&detail, "; %d line%s from stock, %d waiting for supply", from_stock,
						 from_stock == 1 ? "" : "s", later);
	put_option(out, option, location, false, 0, date, cost, co2, packages, from.data, services.data,
			   detail.data);
	return true;
}

typedef struct StoreOption
{
	int			loc;
	double		distance;
} StoreOption;

static int
compare_stores(const void *a, const void *b, void *arg)
{
	const StoreOption *x = a;
	const StoreOption *y = b;
	Route	   *r = arg;

	if (x->distance != y->distance)
		return x->distance < y->distance ? -1 : 1;
	if (r->locs[x->loc].priority != r->locs[y->loc].priority)
		return r->locs[x->loc].priority < r->locs[y->loc].priority ? -1 : 1;
	return r->locs[x->loc].id < r->locs[y->loc].id ? -1 : 1;
}

/* Click & collect at the nearest stores that have the whole cart (by priority without a position). */
static void
promise_pickup(Route *r, PromiseOut *out)
{
	StoreOption *stores = palloc(sizeof(StoreOption) * Max(r->nlocs, 1));
	int			nstores = 0;

	for (int i = 0; i < r->nlocs; i++)
	{
		RouteLocation *loc = &r->locs[i];
		bool		all = loc->can_pickup;

		for (int l = 0; l < r->nlines && all; l++)
			all = loc->avail[l] >= r->lines[l].qty;
		if (!all)
			continue;
		stores[nstores].loc = i;
		stores[nstores].distance = r->dest_known && loc->has_pos ?
			oms_distance_km(r->dest_lat, r->dest_lon, loc->lat, loc->lon) : INFINITY;
		nstores++;
	}
	qsort_arg(stores, nstores, sizeof(StoreOption), compare_stores, r);
	for (int k = 0; k < nstores && k < PICKUP_STORES; k++)
	{
		RouteLocation *loc = &r->locs[stores[k].loc];

		put_option(out, "pickup", loc->code, !isinf(stores[k].distance), stores[k].distance,
				   loc->start_day + loc->handling_days, 0, 0, 1, loc->code, NULL,
				   isinf(stores[k].distance) ? "in stock there; distance unknown" : "in stock there");
	}
}

static int
compare_store_distance(const void *a, const void *b)
{
	const RouteStatic *x = *(const RouteStatic *const *) a;
	const RouteStatic *y = *(const RouteStatic *const *) b;

	if (x->distance != y->distance)
		return x->distance < y->distance ? -1 : 1;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/*
 * With a pruned load, the stores promise_pickup weighs are read in the order it ranks them
 * (distance, priority, id): the nearest PICKUP_BATCH with the shipping batch, and all of them
 * only when fewer than PICKUP_STORES of those have the whole cart. Its answer is then the same as
 * with every location read.
 */
#define PICKUP_BATCH 16

typedef struct PrunedLoad
{
	RouteStatic *st;
	int			nst;
	int32	   *stores;			/* every pickup store's id, in promise_pickup's order */
	int			nstores;
} PrunedLoad;

/*
 * A pruned load for a tenant with many locations (routing.c, "pruned search"): the locations
 * with the lowest bounds for any delivery mode are read with the nearest pickup stores, and every
 * mode is solved on them; if each mode's answer stands, they are what the promise uses, otherwise
 * every location is read. Returns whether the load is pruned.
 */
static bool
load_pruned(Route *r, bool *has_mode, PrunedLoad *pl)
{
	int32	   *ids;
	int			n;
	bool		ok = true;
	RouteStatic **stores;

	if (!oms_route_pruning)
	{
		route_load(r);
		return false;
	}
	pl->nst = route_load_static(r, &pl->st);
	if (pl->nst <= ROUTE_PRUNE_MIN_LOCATIONS)
	{
		route_load(r);
		return false;
	}
	r->mode = DM_ANY;			/* a bound for every mode */
	n = route_prune_batch(r, pl->st, pl->nst, &ids);

	/* the stores, nearest first (route_prune_batch measured the distances) */
	stores = palloc(sizeof(RouteStatic *) * pl->nst);
	pl->nstores = 0;
	for (int i = 0; i < pl->nst; i++)
		if (pl->st[i].can_pickup)
			stores[pl->nstores++] = &pl->st[i];
	qsort(stores, pl->nstores, sizeof(RouteStatic *), compare_store_distance);
	pl->stores = palloc(sizeof(int32) * Max(pl->nstores, 1));
	ids = repalloc(ids, sizeof(int32) * (n + PICKUP_BATCH));
	for (int k = 0; k < pl->nstores; k++)
	{
		pl->stores[k] = stores[k]->id;
		if (k < PICKUP_BATCH && !stores[k]->read)
		{
			stores[k]->read = true;
			ids[n++] = stores[k]->id;
		}
	}

	route_load_at(r, ids, n);
	for (int m = DM_ECONOMY - (r->nservices == 0 ? 1 : 0); m <= DM_EXPRESS && ok; m++)
	{
		if (m >= DM_ECONOMY && !has_mode[m])
			continue;
		route_reset(r);
		r->mode = (DeliveryMode) m;
		route_prune_rebound(r, pl->st, pl->nst);
		route_solve(r);
		ok = route_pruned_ok(r);
		if (r->nservices == 0)
			break;
	}
	if (ok)
		return true;
	elog(DEBUG1, "oms: pruned promise not taken in mode %d", (int) r->mode);
	route_unload(r);
	route_load(r);
	return false;
}

static void
load_pickup_stores(Route *r, PrunedLoad *pl)
{
	int			found = 0;

	for (int k = 0; k < Min(pl->nstores, PICKUP_BATCH); k++)
	{
		int			i = route_find_location(r, pl->stores[k]);
		bool		all = i >= 0 && r->locs[i].can_pickup;

		for (int l = 0; l < r->nlines && all; l++)
			all = r->locs[i].avail[l] >= r->lines[l].qty;
		found += all ? 1 : 0;
	}
	if (found < PICKUP_STORES && pl->nstores > PICKUP_BATCH)
	{
		elog(DEBUG1, "oms: promise reads every store: %d of the nearest %d have the cart", found, PICKUP_BATCH);
		route_add_locations_with_stock(r, pl->stores + PICKUP_BATCH, pl->nstores - PICKUP_BATCH);
	}
}

PG_FUNCTION_INFO_V1(oms_promise);

/*
 * oms.promise(cart jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
 *		RETURNS TABLE (option, location, distance_km, delivery_date, cost, co2_g, packages,
 *					   ships_from, carrier_services, detail)
 */
Datum
oms_promise(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Route		r;
	PromiseOut	out;
	bool		has_mode[3] = {false, false, false};

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (rsinfo->setDesc->natts != PROMISE_COLUMNS)
		elog(ERROR, "oms: promise must return %d columns", PROMISE_COLUMNS);
	out.rsinfo = rsinfo;

	SPI_connect();
	route_init(&r, oms_tenant_id(), false);
	route_parse_lines(&r, PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0), "promise");
	route_parse_ship_to(&r, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), "promise");
	route_load_profile(&r, PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	route_load_services(&r);
	for (int s = 0; s < r.nservices; s++)
		has_mode[r.services[s].mode] = true;

	if (r.pickup_id != 0)
	{
		/* a pickup store named: its own option only (in stock, or transferred there) */
		route_load(&r);
		promise_mode(&r, DM_ANY, "pickup", r.locs[r.pickup].code, &out);
	}
	else
	{
		PrunedLoad	pl;
		bool		pruned = load_pruned(&r, has_mode, &pl);

		if (r.nservices == 0)
			promise_mode(&r, DM_ANY, "standard", NULL, &out);
		for (int m = DM_ECONOMY; m <= DM_EXPRESS; m++)
			if (has_mode[m])
				promise_mode(&r, (DeliveryMode) m, mode_names[m], NULL, &out);
		if (pruned)
			load_pickup_stores(&r, &pl);
		promise_pickup(&r, &out);
	}
	SPI_finish();
	return (Datum) 0;
}
