/*
 * routing.c
 *		The routing engine: for an order's lines and a destination, choose where each line ships
 *		from, with which carrier service, at what cost, CO2 and date, under a routing profile.
 *
 * The one idea: a plan is a set of packages (one per location used), and plans are compared by
 * one number. A package from location L carrying w kg gets the carrier service that minimises
 * its own score; the plan's score is
 *
 *		w_cost * sum(cost) + w_co2 * sum(kg CO2) + w_days * (days until the last package arrives)
 *		+ w_packages * packages
 *
 * and the plan that serves the most units from stock, then has the lowest score, then the fewest
 * packages, then the lowest sum of location priorities, then the lowest location ids, wins: the
 * same input and state always give the same answer.
 *
 * Finding the best plan is a set-cover problem; we weigh a small, fixed family of plans, which is
 * what the commercial engines do too and which keeps a call within a few hundred microseconds for
 * 10 lines and 1,000 locations:
 *	- "one location": every location that has every line in full;
 *	- "fewest packages": greedily the location that has the most remaining lines in full;
 *	- "best per line": each line from the location best for it alone, then packages merged
 *	  into the others while that lowers the score.
 * Lines no single location has in full are split over locations (existing packages first). No
 * plan uses more than the profile's max_packages. Lines held by a cart at a location that can
 * still serve them stay there. Lines stock cannot serve are pre-ordered against supply,
 * backordered, or reported unservable, with the reason.
 *
 * For click & collect, lines the pickup store has are collected there; the others are planned
 * the same way with the store as destination (a transfer), arriving handling_days before pickup.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/datetime.h"

#include "oms.h"
#include "routing.h"

#define SCORE_EPS 1e-9

const char *const route_kind_names[] = {
	"ship", "drop-ship", "pickup", "transfer", "preorder", "backorder", "unservable"
};

static const char *const kind_names[LK_COUNT] = {"warehouse", "store", "3pl", "vendor"};

static bool
same_score(double a, double b)
{
	return fabs(a - b) <= SCORE_EPS * Max(1.0, Max(fabs(a), fabs(b)));
}

/* ----- locations */

static void
prepare_location(Route *r, int i)
{
	RouteLocation *loc = &r->locs[i];
	RouteProfile *p = &r->profile;

	loc->distance_known = r->dest_known && loc->has_pos;
	loc->distance = loc->distance_known ?
		oms_distance_km(loc->lat, loc->lon, r->dest_lat, r->dest_lon) : 0;
	if (i == r->pickup)
		loc->status = LS_PICKUP_STORE;
	else if (!p->kinds[loc->kind])
		loc->status = LS_KIND_NOT_ALLOWED;
	else if (!loc->can_ship)
		loc->status = LS_CANNOT_SHIP;
	else if (p->max_distance_km > 0 && !loc->distance_known)
		loc->status = LS_DISTANCE_UNKNOWN;
	else if (p->max_distance_km > 0 && loc->distance > p->max_distance_km)
		loc->status = LS_TOO_FAR;
	else if (loc->capacity >= 0 && loc->used >= loc->capacity)
		loc->status = LS_OVER_CAPACITY;
	else
		loc->status = LS_OK;
}

static bool
line_excludes(RouteLine *line, int32 location_id)
{
	for (int k = 0; k < line->nexclude; k++)
		if (line->exclude[k] == location_id)
			return true;
	return false;
}

/* Whether location i may serve line l at all, and whether it has the whole line. */
static LocationStatus
line_status(Route *r, int l, int i)
{
	RouteLocation *loc = &r->locs[i];
	RouteLine  *line = &r->lines[l];

	if (loc->status != LS_OK)
		return loc->status;
	if (line_excludes(line, loc->id))
		return LS_EXCLUDED;
	if (loc->avail[l] <= 0)
		return LS_NO_STOCK;
	if (loc->avail[l] < line->qty)
		return LS_SHORT;
	return LS_OK;
}

const char *
route_location_status_text(Route *r, RouteLocation *loc, LocationStatus status, int line)
{
	switch (status)
	{
		case LS_OK:
			return "ok";
		case LS_KIND_NOT_ALLOWED:
			return psprintf("kind %s not allowed by profile %s", kind_names[loc->kind], r->profile.code);
		case LS_CANNOT_SHIP:
			return "cannot ship (can_ship is false)";
		case LS_TOO_FAR:
			return psprintf("too far: %.1f km, profile %s allows %.0f km", loc->distance,
							r->profile.code, r->profile.max_distance_km);
		case LS_DISTANCE_UNKNOWN:
			return psprintf("distance unknown (no coordinates) and profile %s limits distance",
							r->profile.code);
		case LS_OVER_CAPACITY:
			return psprintf("over capacity: %d of %d orders taken for %s", loc->used, loc->capacity,
							DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(loc->start_day))));
		case LS_PICKUP_STORE:
			return "the pickup store itself";
		case LS_EXCLUDED:
			return "excluded: it rejected this line";
		case LS_NO_STOCK:
			return "no stock";
		case LS_SHORT:
			return psprintf("short: %lld of %d available", (long long) loc->avail[line],
							r->lines[line].qty);
	}
	return "?";
}

/* ----- packages */

static double
package_score(Route *r, double cost, int days, double co2)
{
	RouteProfile *p = &r->profile;

	return p->w_cost * cost + p->w_days * days + p->w_co2 * co2 / 1000.0 + p->w_packages;
}

static bool
serves_country(CarrierService *s, const char *country)
{
	if (s->ncountries == 0)
		return true;
	for (int k = 0; k < s->ncountries; k++)
		if (strcmp(s->countries[k], country) == 0)
			return true;
	return false;
}

/*
 * The best carrier service for a package of weight kg from location li, handled from start (or
 * the location's own start day, if later): cost, CO2, ETA, days and score. false: no service of
 * the allowed mode can carry it. With no carrier service defined at all, a package costs the
 * location's cost_per_package and arrives when it is handed over.
 */
static bool
eval_package(Route *r, int li, double weight, DateADT start, RoutePackage *out)
{
	RouteLocation *loc = &r->locs[li];
	double		d = loc->distance;
	DateADT		ship = Max(start, loc->start_day) + loc->handling_days;
	int			extra = r->pickup >= 0 ? r->locs[r->pickup].handling_days : 0;
	bool		found = false;

	out->loc = li;
	out->weight = weight;
	out->service = -1;
	if (r->nservices == 0)
	{
		out->cost = loc->cost_per_package;
		out->co2 = 0;
		out->eta = ship + extra;
		out->days = out->eta - r->today;
		out->score = package_score(r, out->cost, out->days, out->co2);
		return true;
	}
	for (int s = 0; s < r->nservices; s++)
	{
		CarrierService *cs = &r->services[s];
		double		cost;
		double		co2;
		int			transit;
		DateADT		eta;
		double		score;

		if (r->mode != DM_ANY && cs->mode != r->mode)
			continue;
		if (cs->max_weight > 0 && weight > cs->max_weight + SCORE_EPS)
			continue;
		if (cs->max_distance > 0 && d > cs->max_distance)
			continue;
		if (!serves_country(cs, r->dest_country))
			continue;
		cost = loc->cost_per_package + cs->base_cost + cs->cost_per_kg * weight + cs->cost_per_km * d;
		transit = cs->base_days + (cs->km_per_day > 0 ? (int) floor(d / cs->km_per_day) : 0);
		eta = ship + transit + extra;
		co2 = d * (cs->co2_per_km + cs->co2_per_kg_km * weight);
		score = package_score(r, cost, eta - r->today, co2);
		if (!found || (score < out->score && !same_score(score, out->score)))
		{
			found = true;
			out->service = s;
			out->cost = cost;
			out->co2 = co2;
			out->eta = eta;
			out->days = eta - r->today;
			out->score = score;
		}
	}
	return found;
}

bool
route_eval_package(Route *r, int loc, double weight, RoutePackage *out)
{
	return eval_package(r, loc, weight, DATEVAL_NOBEGIN, out);
}

/* ----- plans */

static RoutePlan *
plan_new(Route *r, const char *strategy)
{
	RoutePlan  *p = palloc0(sizeof(RoutePlan));

	p->strategy = strategy;
	p->maxassign = r->nlines + 4;
	p->assign = palloc(sizeof(Assignment) * p->maxassign);
	p->valid = true;
	return p;
}

static void
plan_add(RoutePlan *p, int line, int loc, int32 qty)
{
	if (p->nassign >= p->maxassign)
	{
		p->maxassign = p->maxassign * 2 + 4;
		p->assign = repalloc(p->assign, sizeof(Assignment) * p->maxassign);
	}
	p->assign[p->nassign].line = line;
	p->assign[p->nassign].loc = loc;
	p->assign[p->nassign].qty = qty;
	p->nassign++;
}

static RoutePlan *
plan_copy(Route *r, RoutePlan *from, const char *strategy)
{
	RoutePlan  *p = plan_new(r, strategy);

	for (int k = 0; k < from->nassign; k++)
		plan_add(p, from->assign[k].line, from->assign[k].loc, from->assign[k].qty);
	return p;
}

static bool
plan_has_loc(RoutePlan *p, int loc)
{
	for (int k = 0; k < p->nassign; k++)
		if (p->assign[k].loc == loc)
			return true;
	return false;
}

static int
plan_count_locs(RoutePlan *p)
{
	int			n = 0;

	for (int k = 0; k < p->nassign; k++)
	{
		bool		seen = false;

		for (int j = 0; j < k && !seen; j++)
			seen = p->assign[j].loc == p->assign[k].loc;
		if (!seen)
			n++;
	}
	return n;
}

static Route *sort_route;			/* qsort has no context argument */

static int
compare_assignments(const void *a, const void *b)
{
	const Assignment *x = a;
	const Assignment *y = b;

	if (x->line != y->line)
		return x->line - y->line;
	if (sort_route->locs[x->loc].id != sort_route->locs[y->loc].id)
		return sort_route->locs[x->loc].id < sort_route->locs[y->loc].id ? -1 : 1;
	return 0;
}

/* Packs a plan into packages and scores it. */
static void
plan_score(Route *r, RoutePlan *p)
{
	p->packages = palloc(sizeof(RoutePackage) * Max(p->nassign, 1));
	p->npackages = 0;
	p->units = 0;
	p->cost = 0;
	p->co2 = 0;
	p->max_days = 0;
	p->eta = DATEVAL_NOBEGIN;
	p->priority_sum = 0;
	p->valid = true;
	p->invalid = NULL;
	sort_route = r;
	qsort(p->assign, p->nassign, sizeof(Assignment), compare_assignments);

	for (int k = 0; k < p->nassign; k++)
	{
		int			loc = p->assign[k].loc;
		bool		seen = false;
		double		weight = 0;
		RoutePackage *pk;

		p->units += p->assign[k].qty;
		for (int j = 0; j < p->npackages && !seen; j++)
			seen = p->packages[j].loc == loc;
		if (seen)
			continue;
		for (int j = k; j < p->nassign; j++)
			if (p->assign[j].loc == loc)
				weight += r->lines[p->assign[j].line].weight * p->assign[j].qty;
		pk = &p->packages[p->npackages++];
		if (!eval_package(r, loc, weight, DATEVAL_NOBEGIN, pk))
		{
			p->valid = false;
			p->invalid = psprintf("no carrier service for %.2f kg over %.1f km from %s", weight,
								  r->locs[loc].distance, r->locs[loc].code);
			pk->cost = pk->co2 = pk->score = 0;
			pk->days = 0;
			pk->eta = r->today;
		}
		p->cost += pk->cost;
		p->co2 += pk->co2;
		p->max_days = Max(p->max_days, pk->days);
		p->eta = Max(p->eta, pk->eta);
		p->priority_sum += r->locs[loc].priority;
	}
	p->score = r->profile.w_cost * p->cost + r->profile.w_co2 * p->co2 / 1000.0 +
		r->profile.w_days * p->max_days + r->profile.w_packages * p->npackages;
	if (p->valid && p->npackages > r->profile.max_packages)
	{
		p->valid = false;
		p->invalid = psprintf("%d packages, profile %s allows %d", p->npackages, r->profile.code,
							  r->profile.max_packages);
	}
}

/* < 0: a is the better plan. Total and deterministic. */
static int
compare_plans(Route *r, RoutePlan *a, RoutePlan *b)
{
	if (a->valid != b->valid)
		return a->valid ? -1 : 1;
	if (a->units != b->units)
		return a->units > b->units ? -1 : 1;
	if (!same_score(a->score, b->score))
		return a->score < b->score ? -1 : 1;
	if (a->npackages != b->npackages)
		return a->npackages < b->npackages ? -1 : 1;
	if (a->priority_sum != b->priority_sum)
		return a->priority_sum < b->priority_sum ? -1 : 1;
	for (int k = 0; k < a->nassign && k < b->nassign; k++)
	{
		int32		x = r->locs[a->assign[k].loc].id;
		int32		y = r->locs[b->assign[k].loc].id;

		if (a->assign[k].line != b->assign[k].line)
			return a->assign[k].line - b->assign[k].line;
		if (x != y)
			return x < y ? -1 : 1;
		if (a->assign[k].qty != b->assign[k].qty)
			return a->assign[k].qty > b->assign[k].qty ? -1 : 1;
	}
	return a->nassign - b->nassign;
}

static void
keep_plan(Route *r, RoutePlan *p, bool dedupe)
{
	plan_score(r, p);
	if (r->nplans >= r->maxplans)
	{
		r->maxplans = r->maxplans * 2 + 8;
		r->plans = r->plans ? repalloc(r->plans, sizeof(RoutePlan) * r->maxplans) :
			palloc(sizeof(RoutePlan) * r->maxplans);
	}
	/* the same plan reached by two strategies is weighed once */
	for (int k = 0; dedupe && k < r->nplans; k++)
		if (r->plans[k].nassign == p->nassign && compare_plans(r, &r->plans[k], p) == 0)
			return;
	r->plans[r->nplans++] = *p;
}

/* ----- strategies */

/* Working state of one planning run. */
typedef struct Planning
{
	int		   *free;			/* lines to place (indices into r->lines) */
	int			nfree;
	RoutePlan  *base;			/* held lines, fixed */
} Planning;

#define ALONE(r, l, i)	((r)->alone[(l) * (r)->alone_stride + (i)])

/* Whether location i has line l in full and a carrier service for it alone. */
static bool
covers(Route *r, int l, int i)
{
	return !isnan(ALONE(r, l, i));
}

/*
 * Takes a line that no single location can serve from several: from the plan's packages first,
 * then from the location that can finish it with the best score, else the one with the most.
 * false (and the plan unchanged) when it cannot be done within the profile's packages.
 */
static bool
split_line(Route *r, RoutePlan *p, int l)
{
	RouteLine  *line = &r->lines[l];
	int			start = p->nassign;
	int64		need = line->qty;
	int			npk = plan_count_locs(p);

	for (int k = 0; k < start && need > 0; k++)
	{
		int			loc = p->assign[k].loc;
		LocationStatus st = line_status(r, l, loc);
		bool		dup = false;

		for (int j = start; j < p->nassign; j++)
			dup |= p->assign[j].loc == loc;
		if (dup || (st != LS_OK && st != LS_SHORT))
			continue;
		plan_add(p, l, loc, (int32) Min(need, r->locs[loc].avail[l]));
		need -= p->assign[p->nassign - 1].qty;
	}
	while (need > 0)
	{
		int			best = -1;
		bool		best_full = false;
		double		best_score = 0;

		if (npk >= r->profile.max_packages)
			break;
		for (int i = 0; i < r->nlocs; i++)
		{
			LocationStatus st = line_status(r, l, i);
			RoutePackage pk;
			bool		full;
			bool		better;

			if ((st != LS_OK && st != LS_SHORT) || plan_has_loc(p, i))
				continue;
			full = r->locs[i].avail[l] >= need;
			if (!eval_package(r, i, line->weight * Min(need, r->locs[i].avail[l]), DATEVAL_NOBEGIN, &pk))
				continue;
			/* one that finishes the line, else the one with the most; then score, priority */
			if (best < 0)
				better = true;
			else if (full != best_full)
				better = full;
			else if (!full && r->locs[i].avail[l] != r->locs[best].avail[l])
				better = r->locs[i].avail[l] > r->locs[best].avail[l];
			else if (!same_score(pk.score, best_score))
				better = pk.score < best_score;
			else
				better = r->locs[i].priority < r->locs[best].priority;
			if (better)
			{
				best = i;
				best_full = full;
				best_score = pk.score;
			}
		}
		if (best < 0)
			break;
		plan_add(p, l, best, (int32) Min(need, r->locs[best].avail[l]));
		need -= p->assign[p->nassign - 1].qty;
		npk++;
	}
	if (need > 0)
	{
		p->nassign = start;
		return false;
	}
	return true;
}

/*
 * Every location that has every free line in full. Only the best of them is kept, unless we
 * explain (then all are, to show why each lost).
 */
static void
plans_one_location(Route *r, Planning *w)
{
	int			base_pk = plan_count_locs(w->base);
	RoutePlan  *best = NULL;

	for (int i = 0; i < r->nlocs; i++)
	{
		bool		all = true;
		RoutePlan  *p;

		for (int k = 0; k < w->nfree && all; k++)
			all = covers(r, w->free[k], i);
		if (!all)
			continue;
		if (base_pk + (plan_has_loc(w->base, i) ? 0 : 1) > r->profile.max_packages)
			continue;
		p = plan_copy(r, w->base, "one location");
		for (int k = 0; k < w->nfree; k++)
			plan_add(p, w->free[k], i, r->lines[w->free[k]].qty);
		if (r->explain)
			keep_plan(r, p, false);
		else
		{
			plan_score(r, p);
			if (best == NULL || compare_plans(r, p, best) < 0)
				best = p;
		}
	}
	if (best != NULL)
		keep_plan(r, best, false);
}

/* Greedily the location that has the most remaining lines, until all are placed. */
static void
plan_fewest_packages(Route *r, Planning *w)
{
	RoutePlan  *p = plan_copy(r, w->base, "fewest packages");
	bool	   *done = palloc0(sizeof(bool) * Max(w->nfree, 1));
	int			left = w->nfree;
	int			npk = plan_count_locs(p);

	for (;;)
	{
		int			best = -1;
		int			best_count = 0;
		double		best_score = 0;

		/* lines a location already in the plan has go there */
		for (int k = 0; k < w->nfree; k++)
			for (int j = 0; j < p->nassign && !done[k]; j++)
				if (covers(r, w->free[k], p->assign[j].loc))
				{
					plan_add(p, w->free[k], p->assign[j].loc, r->lines[w->free[k]].qty);
					done[k] = true;
					left--;
				}
		if (left == 0 || npk >= r->profile.max_packages)
			break;
		for (int i = 0; i < r->nlocs; i++)
		{
			int			count = 0;
			double		weight = 0;
			RoutePackage pk;

			if (r->locs[i].status != LS_OK)
				continue;
			for (int k = 0; k < w->nfree; k++)
				if (!done[k] && covers(r, w->free[k], i))
				{
					count++;
					weight += r->lines[w->free[k]].weight * r->lines[w->free[k]].qty;
				}
			if (count == 0 || count < best_count)
				continue;
			if (!eval_package(r, i, weight, DATEVAL_NOBEGIN, &pk))
				continue;
			if (count > best_count || (pk.score < best_score && !same_score(pk.score, best_score)) ||
				(same_score(pk.score, best_score) && r->locs[i].priority < r->locs[best].priority))
			{
				best = i;
				best_count = count;
				best_score = pk.score;
			}
		}
		if (best < 0)
			break;
		for (int k = 0; k < w->nfree; k++)
			if (!done[k] && covers(r, w->free[k], best))
			{
				plan_add(p, w->free[k], best, r->lines[w->free[k]].qty);
				done[k] = true;
				left--;
			}
		npk++;
	}
	for (int k = 0; k < w->nfree; k++)
		if (!done[k])
			split_line(r, p, w->free[k]);
	keep_plan(r, p, true);
}

/*
 * Each line from the location best for it alone, then packages merged into the plan's other
 * packages while that lowers the score (smallest packages first).
 */
static void
plan_best_per_line(Route *r, Planning *w)
{
	RoutePlan  *p = plan_copy(r, w->base, "best per line");
	RoutePlan  *unmerged;
	bool		improved = true;

	for (int k = 0; k < w->nfree; k++)
	{
		int			l = w->free[k];
		int			best = -1;

		for (int i = 0; i < r->nlocs; i++)
		{
			if (!covers(r, l, i))
				continue;
			if (best < 0 || (ALONE(r, l, i) < ALONE(r, l, best) && !same_score(ALONE(r, l, i), ALONE(r, l, best))) ||
				(same_score(ALONE(r, l, i), ALONE(r, l, best)) && r->locs[i].priority < r->locs[best].priority))
				best = i;
		}
		if (best >= 0)
			plan_add(p, l, best, r->lines[l].qty);
	}
	for (int k = 0; k < w->nfree; k++)
	{
		bool		placed = false;

		for (int j = 0; j < p->nassign && !placed; j++)
			placed = p->assign[j].line == w->free[k];
		if (!placed)
			split_line(r, p, w->free[k]);
	}
	plan_score(r, p);
	unmerged = p;

	while (improved && p->npackages > 1)
	{
		improved = false;
		for (int pk = 0; pk < p->npackages && !improved; pk++)
		{
			int			from = p->packages[pk].loc;
			RoutePlan  *q = plan_copy(r, p, p->strategy);
			bool		movable = true;

			for (int k = 0; k < q->nassign && movable; k++)
			{
				Assignment *a = &q->assign[k];
				int			to = -1;
				int			parts = 0;

				if (a->loc != from)
					continue;
				for (int j = 0; j < q->nassign; j++)
					parts += q->assign[j].line == a->line;
				if (parts > 1 || r->pinned[a->line])
				{
					movable = false;
					break;
				}
				for (int o = 0; o < p->npackages; o++)
				{
					int			i = p->packages[o].loc;

					if (i != from && covers(r, a->line, i) &&
						(to < 0 || ALONE(r, a->line, i) < ALONE(r, a->line, to)))
						to = i;
				}
				if (to < 0)
					movable = false;
				else
					a->loc = to;
			}
			if (!movable)
				continue;
			plan_score(r, q);
			if (compare_plans(r, q, p) < 0)
			{
				p = q;
				p->strategy = "best per line, merged";
				improved = true;
			}
		}
	}
	if (r->explain && p != unmerged)
	{
		unmerged->strategy = "best per line, unmerged";
		keep_plan(r, unmerged, true);
	}
	keep_plan(r, p, true);
}

/* ----- results */

static RouteRow *
add_row(Route *r, int line, int loc, int32 qty, RouteKind kind)
{
	RouteRow   *row;

	if (r->nrows >= r->maxrows)
	{
		r->maxrows = r->maxrows * 2 + 16;
		r->rows = r->rows ? repalloc(r->rows, sizeof(RouteRow) * r->maxrows) :
			palloc(sizeof(RouteRow) * r->maxrows);
	}
	row = &r->rows[r->nrows++];
	memset(row, 0, sizeof(RouteRow));
	row->line = line;
	row->loc = loc;
	row->qty = qty;
	row->kind = kind;
	row->service = -1;
	row->eta = DATEVAL_NOBEGIN;
	row->capacity_day = DATEVAL_NOBEGIN;
	return row;
}

static char *
date_text(DateADT d)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)));
}

/* Why the chosen plan has more than one package, for the rows' reasons. */
static char *
split_note(Route *r, RoutePlan *chosen)
{
	RoutePlan  *single = NULL;

	if (chosen->npackages <= 1)
		return "";
	for (int k = 0; k < r->nplans; k++)
	{
		RoutePlan  *p = &r->plans[k];

		if (p->valid && p->npackages == 1 && p->units == chosen->units &&
			(single == NULL || compare_plans(r, p, single) < 0))
			single = p;
	}
	if (single == NULL)
		return r->nlines == 1 && chosen->nassign > 1 ? "; split: no location has the whole line" :
			"; split: no location has every line in full";
	return psprintf("; split: scores %.2f, one package from %s would score %.2f", chosen->score,
					r->locs[single->packages[0].loc].code, single->score);
}

static void
emit_plan(Route *r, RoutePlan *p)
{
	char	   *note = split_note(r, p);

	for (int k = 0; k < p->nassign; k++)
	{
		Assignment *a = &p->assign[k];
		RouteLocation *loc = &r->locs[a->loc];
		RouteLine  *line = &r->lines[a->line];
		RouteKind	kind = r->pickup >= 0 ? RK_TRANSFER : loc->kind == LK_VENDOR ? RK_DROPSHIP : RK_SHIP;
		RoutePackage *pk = NULL;
		int			pkno = 0;
		RouteRow   *row;
		char	   *what;

		for (int j = 0; j < p->npackages; j++)
			if (p->packages[j].loc == a->loc)
			{
				pk = &p->packages[j];
				pkno = j + 1;
			}
		row = add_row(r, a->line, a->loc, a->qty, kind);
		row->package = pkno;
		row->service = pk->service;
		row->has_metrics = true;
		row->cost = pk->cost;
		row->co2 = pk->co2;
		row->score = pk->score;
		row->eta = pk->eta;
		if (loc->capacity >= 0)
			row->capacity_day = loc->start_day;
		if (kind == RK_TRANSFER)
			what = psprintf("transfer from %s to %s", loc->code, r->locs[r->pickup].code);
		else
			what = psprintf("%s from %s", route_kind_names[kind], loc->code);
		row->reason = psprintf("%s: %s%s%s%s", what,
							   p->npackages == 1 ? "one package" : psprintf("package %d of %d", pkno, p->npackages),
							   r->lines[a->line].hold_loc == a->loc && r->pinned[a->line] ? ", held by the cart" : "",
							   a->qty < line->qty ? psprintf(", line split: %d of %d here", a->qty, line->qty) : "",
							   note);
	}
}

/* Plans the given lines (shipping, or transfers to the pickup store); marks them served. */
static void
plan_lines(Route *r, int *todo, int ntodo, bool *served)
{
	Planning	w;
	RoutePlan  *best = NULL;

	w.base = plan_new(r, "held by the cart");
	w.free = palloc(sizeof(int) * Max(ntodo, 1));
	w.nfree = 0;

	for (int k = 0; k < ntodo; k++)
	{
		int			l = todo[k];
		RouteLine  *line = &r->lines[l];
		RoutePackage pk;

		for (int i = 0; i < r->nlocs; i++)
			ALONE(r, l, i) = (line_status(r, l, i) == LS_OK &&
							  eval_package(r, i, line->weight * line->qty, DATEVAL_NOBEGIN, &pk)) ?
				pk.score : NAN;
		if (line->hold_loc >= 0 && covers(r, l, line->hold_loc))
		{
			plan_add(w.base, l, line->hold_loc, line->qty);
			r->pinned[l] = true;
		}
		else
			w.free[w.nfree++] = l;
	}

	if (w.nfree == 0)
	{
		if (w.base->nassign > 0)
			keep_plan(r, w.base, false);
	}
	else
	{
		plans_one_location(r, &w);
		plan_fewest_packages(r, &w);
		plan_best_per_line(r, &w);
	}
	for (int k = 0; k < r->nplans; k++)
		if (best == NULL || compare_plans(r, &r->plans[k], best) < 0)
		{
			best = &r->plans[k];
			r->chosen_plan = k;
		}
	if (best == NULL || !best->valid || best->nassign == 0)
	{
		r->chosen_plan = -1;
		return;
	}
	emit_plan(r, best);
	for (int k = 0; k < best->nassign; k++)
		served[best->assign[k].line] = true;
}

/* Why stock could not serve a line. */
static char *
unserved_reason(Route *r, int l)
{
	RouteLine  *line = &r->lines[l];
	int64		total = 0;
	int			nlocs = 0;
	int			excluded = 0;

	for (int i = 0; i < r->nlocs; i++)
	{
		if (r->locs[i].status != LS_OK || r->locs[i].avail[l] <= 0)
			continue;
		if (line_excludes(line, r->locs[i].id))
		{
			excluded++;
			continue;
		}
		total += r->locs[i].avail[l];
		nlocs++;
	}
	if (total >= line->qty)
		return psprintf("stock exists (%lld at %d location%s) but not within %d package%s (profile %s)",
						(long long) total, nlocs, nlocs == 1 ? "" : "s", r->profile.max_packages,
						r->profile.max_packages == 1 ? "" : "s", r->profile.code);
	return psprintf("%lld of %d available at the locations profile %s can use%s", (long long) total,
					line->qty, r->profile.code,
					excluded > 0 ? psprintf(" (%d excluded)", excluded) : "");
}

/* The supply location may serve line l (after its arrival): a transfer source or the store. */
static bool
supply_location_ok(Route *r, int l, int i)
{
	RouteLocation *loc = &r->locs[i];

	if (i == r->pickup)
		return true;
	if (loc->status != LS_OK && loc->status != LS_OVER_CAPACITY)
		return false;
	return !line_excludes(&r->lines[l], loc->id);
}

/* ETA of units arriving at location i on day, for line l; false: no carrier can take them. */
static bool
supply_eta(Route *r, int l, int i, DateADT day, RoutePackage *pk)
{
	if (i == r->pickup)
	{
		RouteLocation *loc = &r->locs[i];

		pk->loc = i;
		pk->service = -1;
		pk->cost = 0;
		pk->co2 = 0;
		pk->eta = Max(day, loc->start_day) + loc->handling_days;
		pk->days = pk->eta - r->today;
		pk->score = package_score(r, 0, pk->days, 0);
		return true;
	}
	return eval_package(r, i, r->lines[l].weight * r->lines[l].qty, day, pk);
}

/* Lines stock could not serve: pre-order, backorder or unservable. */
static void
plan_supply(Route *r, bool *served)
{
	int		   *left = palloc(sizeof(int) * r->nlines);
	int			nleft = 0;
	int64	   *supply = NULL;
	int			nsupply = 0;
	bool		want = false;

	for (int l = 0; l < r->nlines; l++)
		if (!served[l])
		{
			left[nleft++] = l;
			want |= (r->lines[l].preorderable && r->profile.allow_preorder) ||
				(r->lines[l].backorderable && r->profile.allow_backorder);
		}
	if (nleft == 0)
		return;
	if (want)
	{
		int32	   *missing;
		int			nmissing = 0;
		int			before = r->nlocs;

		route_load_supply(r, left, nleft, &supply, &nsupply);
		missing = palloc(sizeof(int32) * Max(nsupply, 1));
		for (int s = 0; s < nsupply; s++)
			if (route_find_location(r, (int32) supply[s * 5 + 2]) < 0)
				missing[nmissing++] = (int32) supply[s * 5 + 2];
		if (nmissing > 0 && route_add_locations(r, missing, nmissing) > 0)
		{
			for (int i = before; i < r->nlocs; i++)
				prepare_location(r, i);
		}
	}

	for (int k = 0; k < nleft; k++)
	{
		int			l = left[k];
		RouteLine  *line = &r->lines[l];
		char	   *why = unserved_reason(r, l);
		int			best = -1;
		int			best_loc = -1;
		DateADT		best_day = 0;
		RoutePackage best_pk;
		RouteRow   *row;

		memset(&best_pk, 0, sizeof(best_pk));
		if (line->preorderable && r->profile.allow_preorder)
		{
			for (int s = 0; s < nsupply; s++)
			{
				int			i;
				RoutePackage pk;

				if (supply[s * 5 + 1] != l || supply[s * 5 + 4] < line->qty)
					continue;
				i = route_find_location(r, (int32) supply[s * 5 + 2]);
				if (i < 0 || !supply_location_ok(r, l, i) ||
					!supply_eta(r, l, i, (DateADT) supply[s * 5 + 3], &pk))
					continue;
				if (best < 0 || pk.eta < best_pk.eta ||
					(pk.eta == best_pk.eta && r->locs[i].priority < r->locs[best_loc].priority))
				{
					best = s;
					best_loc = i;
					best_pk = pk;
				}
			}
			if (best >= 0)
			{
				row = add_row(r, l, best_loc, line->qty, RK_PREORDER);
				row->supply_id = supply[best * 5];
				row->service = best_pk.service;
				row->has_metrics = true;
				row->cost = best_pk.cost;
				row->co2 = best_pk.co2;
				row->score = best_pk.score;
				row->eta = best_pk.eta;
				row->reason = psprintf("preorder: %d of supply %lld expected %s at %s; %s", line->qty,
									   (long long) supply[best * 5], date_text((DateADT) supply[best * 5 + 3]),
									   r->locs[best_loc].code, why);
				continue;
			}
		}
		if (line->backorderable && r->profile.allow_backorder)
		{
			/* the first day on which one location's incoming supply covers the line */
			for (int s = 0; s < nsupply; s++)
			{
				int			i;
				int64		cum = 0;
				RoutePackage pk;

				if (supply[s * 5 + 1] != l)
					continue;
				i = route_find_location(r, (int32) supply[s * 5 + 2]);
				if (i < 0 || !supply_location_ok(r, l, i))
					continue;
				for (int t = 0; t <= s; t++)
					if (supply[t * 5 + 1] == l && supply[t * 5 + 2] == supply[s * 5 + 2])
						cum += supply[t * 5 + 4];
				if (cum < line->qty || !supply_eta(r, l, i, (DateADT) supply[s * 5 + 3], &pk))
					continue;
				if (best < 0 || pk.eta < best_pk.eta ||
					(pk.eta == best_pk.eta && r->locs[i].priority < r->locs[best_loc].priority))
				{
					best = s;
					best_loc = i;
					best_pk = pk;
					best_day = (DateADT) supply[s * 5 + 3];
				}
			}
			row = add_row(r, l, best_loc, line->qty, RK_BACKORDER);
			if (best >= 0)
			{
				row->service = best_pk.service;
				row->has_metrics = true;
				row->cost = best_pk.cost;
				row->co2 = best_pk.co2;
				row->score = best_pk.score;
				row->eta = best_pk.eta;
				row->reason = psprintf("backorder: supply expected %s at %s; %s", date_text(best_day),
									   r->locs[best_loc].code, why);
			}
			else
				row->reason = psprintf("backorder: no supply expected; %s", why);
			continue;
		}
		row = add_row(r, l, -1, line->qty, RK_UNSERVABLE);
		if (line->preorderable && r->profile.allow_preorder)
			row->reason = psprintf("unservable: %s; no supply to pre-order against", why);
		else if (line->backorderable && !r->profile.allow_backorder)
			row->reason = psprintf("unservable: %s; profile %s allows no backorder", why, r->profile.code);
		else if (line->preorderable)
			row->reason = psprintf("unservable: %s; profile %s allows no pre-order", why, r->profile.code);
		else
			row->reason = psprintf("unservable: %s; %s is not backorderable", why, line->sku);
	}
}

static int
compare_rows(const void *a, const void *b)
{
	const RouteRow *x = a;
	const RouteRow *y = b;

	if (x->line != y->line)
		return x->line - y->line;
	if ((x->loc < 0) != (y->loc < 0))
		return x->loc < 0 ? 1 : -1;
	if (x->package != y->package)
		return x->package - y->package;
	if (x->loc >= 0 && x->loc != y->loc)
		return strcmp(sort_route->locs[x->loc].code, sort_route->locs[y->loc].code);
	return 0;
}

void
route_solve(Route *r)
{
	bool	   *served = palloc0(sizeof(bool) * r->nlines);
	int		   *todo = palloc(sizeof(int) * r->nlines);
	int			ntodo = 0;

	if (r->profile.max_distance_km > 0 && !r->dest_known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("routing profile \"%s\" limits distance, but the destination has no coordinates",
						r->profile.code),
				 errdetail("%s.", r->dest_note),
				 errhint("Give ship_to \"lat\" and \"lon\", add the country to oms.country_centroids, or use a profile without max_distance_km.")));

	r->pinned = palloc0(sizeof(bool) * r->nlines);
	r->alone_stride = r->nlocs;
	r->alone = palloc(sizeof(double) * Max(r->nlines * r->nlocs, 1));
	for (int k = 0; k < r->nlines * r->nlocs; k++)
		r->alone[k] = NAN;
	for (int i = 0; i < r->nlocs; i++)
		prepare_location(r, i);

	if (r->pickup >= 0)
	{
		RouteLocation *store = &r->locs[r->pickup];

		for (int l = 0; l < r->nlines; l++)
		{
			RouteLine  *line = &r->lines[l];

			if (!line_excludes(line, store->id) && store->avail[l] >= line->qty)
			{
				RouteRow   *row = add_row(r, l, r->pickup, line->qty, RK_PICKUP);

				row->has_metrics = true;
				row->eta = store->start_day + store->handling_days;
				row->score = r->profile.w_days * (row->eta - r->today);
				row->reason = psprintf("pickup at %s: in stock there", store->code);
				served[l] = true;
			}
			else
				todo[ntodo++] = l;
		}
	}
	else
		for (int l = 0; l < r->nlines; l++)
			todo[ntodo++] = l;

	if (ntodo > 0)
		plan_lines(r, todo, ntodo, served);
	plan_supply(r, served);

	sort_route = r;
	qsort(r->rows, r->nrows, sizeof(RouteRow), compare_rows);
}

/* ----- pruned search
 *
 * A tenant with many locations (more than ROUTE_PRUNE_MIN_LOCATIONS active ones) is not read
 * whole. Every location gets, from its static data alone, a lower bound of the score of any plan
 * that serves the whole cart and ships a package from it: the lower of (a) the whole cart in one
 * package from there, with its best carrier service, and (b) its lightest unit from there and the
 * rest in at least one more package (one more package's weight, the cheapest base cost, every
 * other kilogram at the lowest cost per kg), leaving today (the day before for a location with a
 * time zone of its own, whose local date may lag the server's). Every term of a plan's score is
 * at least what the bound counts, so no such plan scores less. The PRUNE_BATCH locations with the lowest bounds
 * (then priority, then id) are read with their stock and solved. The answer stands when the
 * chosen plan ships every line from stock in one package and scores strictly less than the bound
 * of every location not read; otherwise everything is read and solved again. So a pruned answer is
 * the plan the full search would choose whenever the full search's best plan is one package (the
 * other locations could only give worse plans), and the same input and state always give the
 * same answer.
 */
#define PRUNE_BATCH 32

static double
static_bound(Route *r, RouteStatic *s, double w_min, double w_total, double kg_rate, double base_min)
{
	RouteProfile *p = &r->profile;
	bool		known = !isinf(s->distance);	/* measured by route_prune_batch */
	double		d = known ? s->distance : 0;
	int			days = s->handling_days - (s->server_time_zone ? 0 : 1);
	double		best = INFINITY;

	if (!p->kinds[s->kind] || !s->can_ship)
		return INFINITY;
	if (p->max_distance_km > 0 && (!known || d > p->max_distance_km))
		return INFINITY;
	if (r->nservices == 0)
		return package_score(r, s->cost_per_package, days, 0);
	for (int k = 0; k < r->nservices; k++)
	{
		CarrierService *cs = &r->services[k];
		int			transit;
		double		fixed;

		if (r->mode != DM_ANY && cs->mode != r->mode)
			continue;
		if (cs->max_weight > 0 && w_min > cs->max_weight + SCORE_EPS)
			continue;
		if (cs->max_distance > 0 && d > cs->max_distance)
			continue;
		if (!serves_country(cs, r->dest_country))
			continue;
		transit = cs->base_days + (cs->km_per_day > 0 ? (int) floor(d / cs->km_per_day) : 0);
		fixed = s->cost_per_package + cs->base_cost + cs->cost_per_km * d;
		/* the whole cart in this one package */
		if (cs->max_weight <= 0 || w_total <= cs->max_weight + SCORE_EPS)
			best = Min(best, package_score(r, fixed + cs->cost_per_kg * w_total, days + transit,
										   d * (cs->co2_per_km + cs->co2_per_kg_km * w_total)));
		/*
		 * or at least its lightest unit here and the rest in other packages: each one more
		 * package, at least the cheapest service's base cost, every kilogram at the lowest rate
		 */
		if (p->max_packages > 1)
			best = Min(best, package_score(r, fixed + cs->cost_per_kg * w_min, days + transit,
										   d * (cs->co2_per_km + cs->co2_per_kg_km * w_min)) +
					   p->w_cost * (base_min + kg_rate * (w_total - w_min)) + p->w_packages);
	}
	return best;
}

static int
compare_static(const void *a, const void *b)
{
	const RouteStatic *x = a;
	const RouteStatic *y = b;

	if (x->bound != y->bound)
		return x->bound < y->bound ? -1 : 1;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/*
 * What the bounds need of the cart and the carrier services of the current mode: a plan that
 * could beat one serving every unit must serve every unit too (compare_plans), so its packages
 * carry the cart's whole weight, each kilogram at least at the lowest cost per kg and each
 * package at least the lowest base cost of the services it may use.
 */
static void
bound_params(Route *r, double *w_min, double *w_total, double *kg_rate, double *base_min)
{
	*w_min = INFINITY;
	*w_total = 0;
	*kg_rate = INFINITY;
	*base_min = INFINITY;
	for (int l = 0; l < r->nlines; l++)
	{
		*w_min = Min(*w_min, r->lines[l].weight);
		*w_total += r->lines[l].weight * r->lines[l].qty;
	}
	if (isinf(*w_min) || *w_min < 0)
		*w_min = 0;
	*w_total = Max(*w_total, *w_min);
	for (int k = 0; k < r->nservices; k++)
		if ((r->mode == DM_ANY || r->services[k].mode == r->mode) && serves_country(&r->services[k], r->dest_country))
		{
			*kg_rate = Min(*kg_rate, r->services[k].cost_per_kg);
			*base_min = Min(*base_min, r->services[k].base_cost);
		}
	if (isinf(*kg_rate))
		*kg_rate = 0;
	if (isinf(*base_min))
		*base_min = 0;
}

/*
 * Bounds every location for the current mode and returns the ids to read first: the PRUNE_BATCH
 * best bounded (marked read in st) and the locations the cart holds stock at. Sets r->prune_next,
 * the lowest bound of a location not read.
 */
int
route_prune_batch(Route *r, RouteStatic *st, int nst, int32 **ids)
{
	double		w_min,
				w_total,
				kg_rate,
				base_min;
	int32	   *out = palloc(sizeof(int32) * (PRUNE_BATCH + r->nlines + 1));
	int			n = 0;

	RouteStatic **best = palloc(sizeof(RouteStatic *) * (PRUNE_BATCH + 1));
	int			nbest = 0;

	bound_params(r, &w_min, &w_total, &kg_rate, &base_min);
	for (int i = 0; i < nst; i++)
	{
		RouteStatic *x = &st[i];
		int			j;

		x->distance = r->dest_known && x->has_pos ?
			oms_distance_km(x->lat, x->lon, r->dest_lat, r->dest_lon) : INFINITY;
		x->bound = static_bound(r, x, w_min, w_total, kg_rate, base_min);
		x->read = false;
		if (isinf(x->bound))
			continue;
		/* the PRUNE_BATCH + 1 best, in order: a selection, not a sort of every location */
		if (nbest == PRUNE_BATCH + 1 && compare_static(x, best[PRUNE_BATCH]) >= 0)
			continue;
		j = nbest < PRUNE_BATCH + 1 ? nbest++ : PRUNE_BATCH;
		while (j > 0 && compare_static(x, best[j - 1]) < 0)
		{
			best[j] = best[j - 1];
			j--;
		}
		best[j] = x;
	}
	for (int k = 0; k < Min(nbest, PRUNE_BATCH); k++)
	{
		best[k]->read = true;
		out[n++] = best[k]->id;
	}
	r->prune_next = nbest > PRUNE_BATCH ? best[PRUNE_BATCH]->bound : INFINITY;
	for (int l = 0; l < r->nlines; l++)
		if (r->lines[l].hold_location_id != 0)
			out[n++] = r->lines[l].hold_location_id;
	*ids = out;
	return n;
}

/*
 * After route_prune_batch: r->prune_next again for the current mode (the lowest bound among the
 * locations not read), when the batch was chosen for another (promise: DM_ANY for every mode).
 */
void
route_prune_rebound(Route *r, RouteStatic *st, int nst)
{
	double		w_min,
				w_total,
				kg_rate,
				base_min;

	bound_params(r, &w_min, &w_total, &kg_rate, &base_min);
	r->prune_next = INFINITY;
	for (int i = 0; i < nst; i++)
		if (!st[i].read)
			r->prune_next = Min(r->prune_next, static_bound(r, &st[i], w_min, w_total, kg_rate, base_min));
}

/* Whether a route solved on a pruned batch is the answer (see above). */
bool
route_pruned_ok(Route *r)
{
	RoutePlan  *p;

	if (r->chosen_plan < 0)
		return false;
	p = &r->plans[r->chosen_plan];
	if (!p->valid || p->npackages != 1)
		return false;
	for (int k = 0; k < r->nrows; k++)
		if (r->rows[k].kind != RK_SHIP && r->rows[k].kind != RK_DROPSHIP)
			return false;
	return p->score < r->prune_next && !same_score(p->score, r->prune_next);
}

/*
 * Loads and solves: a pruned search first when the tenant has many locations and the route ships
 * to a customer (not for explain, which shows every candidate, nor click & collect), else, or when
 * the pruned answer does not stand, every candidate.
 */
void
route_load_and_solve(Route *r)
{
	if (oms_route_pruning && !r->explain && r->pickup_id == 0)
	{
		RouteStatic *st;
		int			nst;

		route_load_services(r);
		nst = route_load_static(r, &st);
		if (nst > ROUTE_PRUNE_MIN_LOCATIONS)
		{
			int32	   *ids;
			int			n = route_prune_batch(r, st, nst, &ids);

			route_load_at(r, ids, n);
			route_solve(r);
			if (route_pruned_ok(r))
				return;
			elog(DEBUG1, "oms: pruned route not taken: chosen %d, score %g, next bound %g",
				 r->chosen_plan, r->chosen_plan >= 0 ? r->plans[r->chosen_plan].score : -1, r->prune_next);
			route_unload(r);
		}
	}
	route_load(r);
	route_solve(r);
}

LocationStatus
route_line_status(Route *r, int line, int loc)
{
	return line_status(r, line, loc);
}

int
route_compare_plans(Route *r, RoutePlan *a, RoutePlan *b)
{
	return compare_plans(r, a, b);
}

/* Forgets a solution, so that the same loaded route can be solved again (another mode). */
void
route_reset(Route *r)
{
	r->nplans = 0;
	r->chosen_plan = -1;
	r->nrows = 0;
}

/* Score of line alone from location loc, NaN when it cannot ship it (or loc came later). */
double
route_alone(Route *r, int line, int loc)
{
	if (r->alone == NULL || loc >= r->alone_stride)
		return NAN;
	return ALONE(r, line, loc);
}
