/*
 * route_api.c
 *		The SQL face of the routing engine: oms.route(), oms.route_explain() and the internal
 *		oms._route() that place_order and reject_line call.
 *
 * Each is a materialised set-returning function: connect to SPI, load (route_load.c), solve
 * (routing.c), then write rows into the tuplestore, which copies them out of SPI's memory.
 * route_explain() lists, besides the answer, the inputs as routing understood them, every
 * candidate (line, location) with what shipping the line alone from there would cost and why it
 * was not chosen, and every plan weighed with its score and why it lost.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "oms.h"
#include "routing.h"

static Datum
rounded_numeric(double v, int scale)
{
	Datum		n = DirectFunctionCall1(float8_numeric, Float8GetDatum(v));

	return DirectFunctionCall2(numeric_round, n, Int32GetDatum(scale));
}

static double
rounded_score(double v)
{
	return rint(v * 10000.0) / 10000.0;
}

static void
check_columns(ReturnSetInfo *rsinfo, int natts, const char *name)
{
	if (rsinfo->setDesc->natts != natts)
		elog(ERROR, "oms: %s must return %d columns", name, natts);
}

/* Loads and solves a route from the public arguments (lines, ship_to, profile). */
static void
solve_public(Route *r, FunctionCallInfo fcinfo, bool explain, const char *what)
{
	Jsonb	   *lines = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	Jsonb	   *ship_to = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	char	   *profile = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));

	route_init(r, oms_tenant_id(), explain);
	route_parse_lines(r, lines, what);
	route_parse_ship_to(r, ship_to, what);
	route_load_profile(r, profile);
	if (explain)
	{
		route_load(r);
		route_solve(r);
	}
	else
		route_load_and_solve(r);
}

#define ROUTE_COLUMNS 10

PG_FUNCTION_INFO_V1(oms_route);

/*
 * oms.route(lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
 *		RETURNS TABLE (line_no, sku, location, qty, carrier_service, cost, eta, co2_g, score, reason)
 */
Datum
oms_route(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Route		r;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	check_columns(rsinfo, ROUTE_COLUMNS, "route");
	SPI_connect();
	solve_public(&r, fcinfo, false, "route");

	for (int k = 0; k < r.nrows; k++)
	{
		RouteRow   *row = &r.rows[k];
		Datum		values[ROUTE_COLUMNS];
		bool		nulls[ROUTE_COLUMNS];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(r.lines[row->line].line_no);
		values[1] = CStringGetTextDatum(r.lines[row->line].sku);
		nulls[2] = row->loc < 0 || row->kind == RK_BACKORDER;
		if (!nulls[2])
			values[2] = CStringGetTextDatum(r.locs[row->loc].code);
		values[3] = Int32GetDatum(row->qty);
		nulls[4] = row->service < 0;
		if (!nulls[4])
			values[4] = CStringGetTextDatum(r.services[row->service].code);
		nulls[5] = nulls[7] = nulls[8] = !row->has_metrics;
		if (row->has_metrics)
		{
			values[5] = rounded_numeric(row->cost, 2);
			values[7] = rounded_numeric(row->co2, 0);
			values[8] = Float8GetDatum(rounded_score(row->score));
		}
		nulls[6] = DATE_NOT_FINITE(row->eta);
		values[6] = DateADTGetDatum(row->eta);
		values[9] = CStringGetTextDatum(row->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

#define INTERNAL_COLUMNS 10

PG_FUNCTION_INFO_V1(oms_route_internal);

/*
 * oms._route(tenant int, items int[], qtys int[], hold_locations int[], hold_qtys int[],
 *			  exclude_lines int[], exclude_locations int[], ship_to jsonb, pickup int, profile text)
 *		RETURNS TABLE (line_no, item_id, location_id, qty, kind, carrier_service, eta,
 *					   capacity_day, supply_id, reason)
 * What place_order and reject_line need: ids instead of codes, the kind of fulfilment, the day
 * whose capacity a package takes, the supply a pre-order reserves.
 */
Datum
oms_route_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Route		r;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	check_columns(rsinfo, INTERNAL_COLUMNS, "_route");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		elog(ERROR, "oms: _route needs a tenant, items and quantities");
	SPI_connect();
	route_init(&r, PG_GETARG_INT32(0), false);
	route_set_lines(&r, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_ARRAYTYPE_P(2),
					PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3),
					PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4),
					PG_ARGISNULL(5) ? NULL : PG_GETARG_ARRAYTYPE_P(5),
					PG_ARGISNULL(6) ? NULL : PG_GETARG_ARRAYTYPE_P(6));
	if (!PG_ARGISNULL(8))
		route_set_pickup_id(&r, PG_GETARG_INT32(8));
	else
		route_parse_ship_to(&r, PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7), "order payload");
	route_load_profile(&r, PG_ARGISNULL(9) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(9)));
	route_load_and_solve(&r);

	for (int k = 0; k < r.nrows; k++)
	{
		RouteRow   *row = &r.rows[k];
		Datum		values[INTERNAL_COLUMNS];
		bool		nulls[INTERNAL_COLUMNS];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(r.lines[row->line].line_no);
		values[1] = Int32GetDatum(r.lines[row->line].item_id);
		nulls[2] = row->loc < 0;
		if (!nulls[2])
			values[2] = Int32GetDatum(r.locs[row->loc].id);
		values[3] = Int32GetDatum(row->qty);
		values[4] = CStringGetTextDatum(route_kind_names[row->kind]);
		nulls[5] = row->service < 0;
		if (!nulls[5])
			values[5] = CStringGetTextDatum(r.services[row->service].code);
		nulls[6] = DATE_NOT_FINITE(row->eta);
		values[6] = DateADTGetDatum(row->eta);
		nulls[7] = DATE_NOT_FINITE(row->capacity_day);
		values[7] = DateADTGetDatum(row->capacity_day);
		nulls[8] = row->supply_id == 0;
		values[8] = Int64GetDatum(row->supply_id);
		values[9] = CStringGetTextDatum(row->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ----- explain */

#define EXPLAIN_COLUMNS 13

typedef struct ExplainOut
{
	ReturnSetInfo *rsinfo;
	Route	   *r;
} ExplainOut;

static void
put_explain(ExplainOut *out, const char *kind, int line, const char *location, bool has_qty,
			int64 qty, bool has_distance, double distance, RoutePackage *pk, bool chosen, const char *reason)
{
	Datum		values[EXPLAIN_COLUMNS];
	bool		nulls[EXPLAIN_COLUMNS];
	Route	   *r = out->r;

	memset(nulls, 0, sizeof(nulls));
	values[0] = CStringGetTextDatum(kind);
	nulls[1] = nulls[2] = line < 0;
	if (line >= 0)
	{
		values[1] = Int32GetDatum(r->lines[line].line_no);
		values[2] = CStringGetTextDatum(r->lines[line].sku);
	}
	nulls[3] = location == NULL;
	if (location)
		values[3] = CStringGetTextDatum(location);
	nulls[4] = !has_qty;
	values[4] = Int64GetDatum(qty);
	nulls[5] = !has_distance;
	if (has_distance)
		values[5] = rounded_numeric(distance, 1);
	nulls[6] = pk == NULL || pk->service < 0;
	if (!nulls[6])
		values[6] = CStringGetTextDatum(r->services[pk->service].code);
	nulls[7] = nulls[8] = nulls[9] = nulls[10] = pk == NULL;
	if (pk != NULL)
	{
		values[7] = rounded_numeric(pk->cost, 2);
		values[8] = DateADTGetDatum(pk->eta);
		values[9] = rounded_numeric(pk->co2, 0);
		values[10] = Float8GetDatum(rounded_score(pk->score));
	}
	values[11] = BoolGetDatum(chosen);
	values[12] = CStringGetTextDatum(reason);
	tuplestore_putvalues(out->rsinfo->setResult, out->rsinfo->setDesc, values, nulls);
}

static const char *
plan_locations(Route *r, RoutePlan *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int k = 0; k < p->npackages; k++)
		appendStringInfo(&buf, "%s%s", k ? "+" : "", r->locs[p->packages[k].loc].code);
	return buf.data;
}

/* Why plan p lost to the chosen plan c. */
static char *
plan_lost(Route *r, RoutePlan *p, RoutePlan *c)
{
	if (!p->valid)
		return p->invalid;
	if (c == NULL)
		return "no plan chosen";
	if (p->units != c->units)
		return psprintf("serves %lld units from stock, the chosen plan %lld", (long long) p->units,
						(long long) c->units);
	if (fabs(p->score - c->score) > 1e-9 * Max(1.0, fabs(c->score)))
		return psprintf("worse score: %.2f > %.2f", p->score, c->score);
	if (p->npackages != c->npackages)
		return psprintf("same score, more packages: %d > %d", p->npackages, c->npackages);
	if (p->priority_sum != c->priority_sum)
		return psprintf("same score, lower location priority (sum %lld > %lld)",
						(long long) p->priority_sum, (long long) c->priority_sum);
	return "same score and priority, higher location ids";
}

typedef struct CandidateOrder
{
	int			loc;
	const char *code;
} CandidateOrder;

static int
compare_candidates(const void *a, const void *b)
{
	return strcmp(((const CandidateOrder *) a)->code, ((const CandidateOrder *) b)->code);
}

static void
explain_route(Route *r, ExplainOut *out)
{
	RouteProfile *p = &r->profile;
	RoutePlan  *chosen = r->chosen_plan >= 0 ? &r->plans[r->chosen_plan] : NULL;
	int		   *via = palloc(sizeof(int) * Max(r->nlines * r->nlocs, 1));
	CandidateOrder *order = palloc(sizeof(CandidateOrder) * Max(r->nlocs, 1));
	StringInfoData kinds;
	static const char *const kind_names[LK_COUNT] = {"warehouse", "store", "3pl", "vendor"};

	/* the inputs as routing understood them */
	initStringInfo(&kinds);
	for (int k = 0; k < LK_COUNT; k++)
		if (p->kinds[k])
			appendStringInfo(&kinds, "%s%s", kinds.len ? ", " : "", kind_names[k]);
	put_explain(out, "input", -1, NULL, false, 0, false, 0, NULL, false,
				psprintf("profile %s: score = %g x cost + %g x days + %g x kg CO2 + %g x packages; at most %d packages%s; from %s; backorder %s, pre-order %s",
						 p->code, p->w_cost, p->w_days, p->w_co2, p->w_packages, p->max_packages,
						 p->max_distance_km > 0 ? psprintf(", %g km", p->max_distance_km) : "",
						 kinds.data, p->allow_backorder ? "allowed" : "not allowed",
						 p->allow_preorder ? "allowed" : "not allowed"));
	put_explain(out, "input", -1, NULL, false, 0, false, 0, NULL, false, r->dest_note);
	put_explain(out, "input", -1, NULL, false, 0, false, 0, NULL, false,
				psprintf("today is %s (oms.now %s)",
						 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(r->today))),
						 DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(r->now)))));
	if (r->nservices == 0)
		put_explain(out, "input", -1, NULL, false, 0, false, 0, NULL, false,
					"no carrier services: a package costs its location's cost_per_package and arrives when handed over");

	/* for each (line, location): the best plan weighed that ships it from there */
	for (int k = 0; k < r->nlines * r->nlocs; k++)
		via[k] = -1;
	for (int k = 0; k < r->nplans; k++)
	{
		RoutePlan  *pl = &r->plans[k];

		if (!pl->valid)
			continue;
		for (int a = 0; a < pl->nassign; a++)
		{
			int		   *v = &via[pl->assign[a].line * r->nlocs + pl->assign[a].loc];

			if (*v < 0 || route_compare_plans(r, pl, &r->plans[*v]) < 0)
				*v = k;
		}
	}

	/* candidates, by line and location code */
	for (int i = 0; i < r->nlocs; i++)
	{
		order[i].loc = i;
		order[i].code = r->locs[i].code;
	}
	qsort(order, r->nlocs, sizeof(CandidateOrder), compare_candidates);
	for (int l = 0; l < r->nlines; l++)
	{
		RouteLine  *line = &r->lines[l];
		int			line_row = -1;	/* the line's first result row */
		bool		line_chosen_loc_alone = false;
		double		chosen_alone = 0;
		const char *chosen_code = NULL;

		for (int k = 0; k < r->nrows; k++)
			if (r->rows[k].line == l && line_row < 0)
				line_row = k;
		if (line_row >= 0 && r->rows[line_row].loc >= 0 &&
			!isnan(route_alone(r, l, r->rows[line_row].loc)))
		{
			line_chosen_loc_alone = true;
			chosen_alone = route_alone(r, l, r->rows[line_row].loc);
			chosen_code = r->locs[r->rows[line_row].loc].code;
		}

		for (int o = 0; o < r->nlocs; o++)
		{
			int			i = order[o].loc;
			RouteLocation *loc = &r->locs[i];
			RoutePackage pk;
			bool		has_pk;
			bool		chosen_here = false;
			int32		chosen_qty = 0;
			LocationStatus st;
			const char *reason;
			double		alone = route_alone(r, l, i);

			if (loc->avail[l] < 0)
				continue;		/* no stock row for this SKU here */
			for (int k = 0; k < r->nrows; k++)
				if (r->rows[k].line == l && r->rows[k].loc == i && r->rows[k].kind != RK_BACKORDER)
				{
					chosen_here = true;
					chosen_qty += r->rows[k].qty;
				}
			has_pk = loc->avail[l] > 0 && i != r->pickup &&
				route_eval_package(r, i, line->weight * Min((int64) line->qty, loc->avail[l]), &pk);
			st = route_line_status(r, l, i);

			if (chosen_here)
				reason = chosen_qty < line->qty ?
					psprintf("chosen: %d of %d here (line split)", chosen_qty, line->qty) : "chosen";
			else if (i == r->pickup)
				reason = psprintf("pickup store: %s, so the line is transferred",
								  route_location_status_text(r, loc, loc->avail[l] <= 0 ? LS_NO_STOCK : LS_SHORT, l));
			else if (r->pickup >= 0 && line_row >= 0 && r->rows[line_row].kind == RK_PICKUP)
				reason = "not needed: collected at the pickup store";
			else if (st != LS_OK)
				reason = route_location_status_text(r, loc, st, l);
			else if (isnan(alone))
				reason = psprintf("no carrier service for %.2f kg over %.1f km",
								  line->weight * line->qty, loc->distance);
			else if (via[l * r->nlocs + i] >= 0)
			{
				RoutePlan  *vp = &r->plans[via[l * r->nlocs + i]];

				reason = psprintf("its best plan %s (%s): %s", plan_locations(r, vp), vp->strategy,
								  plan_lost(r, vp, chosen));
			}
			else if (line_chosen_loc_alone && alone > chosen_alone + 1e-9)
				reason = psprintf("worse score alone: %.2f > %.2f from %s", alone, chosen_alone, chosen_code);
			else if (chosen != NULL)
				reason = psprintf("alone it scores %.2f, but no better plan uses it (chosen plan %.2f)",
								  alone, chosen->score);
			else
				reason = "not used";
			put_explain(out, "candidate", l, loc->code, true, loc->avail[l], loc->distance_known,
						loc->distance, has_pk ? &pk : NULL, chosen_here, reason);
		}
	}

	/* plans */
	for (int k = 0; k < r->nplans; k++)
	{
		RoutePlan  *pl = &r->plans[k];
		RoutePackage sum;

		memset(&sum, 0, sizeof(sum));
		sum.service = -1;
		sum.cost = pl->cost;
		sum.co2 = pl->co2;
		sum.eta = pl->eta;
		sum.score = pl->score;
		put_explain(out, "plan", -1, plan_locations(r, pl), true, pl->units, false, 0,
					pl->npackages > 0 ? &sum : NULL, k == r->chosen_plan,
					psprintf("%s: %s", pl->strategy, k == r->chosen_plan ? "chosen" : plan_lost(r, pl, chosen)));
	}

	/* the answer */
	for (int k = 0; k < r->nrows; k++)
	{
		RouteRow   *row = &r->rows[k];
		RoutePackage pk;

		memset(&pk, 0, sizeof(pk));
		pk.service = row->service;
		pk.cost = row->cost;
		pk.co2 = row->co2;
		pk.eta = row->eta;
		pk.score = row->score;
		put_explain(out, "result", row->line,
					row->loc >= 0 && row->kind != RK_BACKORDER ? r->locs[row->loc].code : NULL,
					true, row->qty, row->loc >= 0 && r->locs[row->loc].distance_known,
					row->loc >= 0 ? r->locs[row->loc].distance : 0,
					row->has_metrics ? &pk : NULL, row->kind != RK_UNSERVABLE, row->reason);
	}
}

PG_FUNCTION_INFO_V1(oms_route_explain);

/*
 * oms.route_explain(lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
 *		RETURNS TABLE (kind, line_no, sku, location, qty, distance_km, carrier_service, cost, eta,
 *					   co2_g, score, chosen, reason)
 */
Datum
oms_route_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Route		r;
	ExplainOut	out;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	check_columns(rsinfo, EXPLAIN_COLUMNS, "route_explain");
	SPI_connect();
	solve_public(&r, fcinfo, true, "route");
	out.rsinfo = rsinfo;
	out.r = &r;
	explain_route(&r, &out);
	SPI_finish();
	return (Datum) 0;
}
