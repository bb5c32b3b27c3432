/*
 * routing.h
 *		What the routing engine's files share: the in-memory picture of one routing problem (lines,
 *		candidate locations with their stock, carrier services, profile, destination), the plans
 *		weighed, and the rows that come out.
 *
 * route_load.c fills a Route from its input and from a handful of kept plans (one execution
 * each per call, never one per line or location); routing.c weighs it in memory and chooses;
 * route_api.c and promise.c turn the result into rows.
 */
#ifndef OMS_ROUTING_H
#define OMS_ROUTING_H

#include "postgres.h"

#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* Location kinds, in the order of locations.kind's CHECK. */
typedef enum LocationKind
{
	LK_WAREHOUSE,
	LK_STORE,
	LK_3PL,
	LK_VENDOR,
	LK_COUNT
} LocationKind;

/* Delivery modes of carrier services. */
typedef enum DeliveryMode
{
	DM_ANY = -1,
	DM_ECONOMY,
	DM_STANDARD,
	DM_EXPRESS
} DeliveryMode;

/* How a line (or part of it) is fulfilled. */
typedef enum RouteKind
{
	RK_SHIP,					/* shipped to the customer from a location of ours */
	RK_DROPSHIP,				/* shipped to the customer by a vendor */
	RK_PICKUP,					/* collected at the pickup store, from its own stock */
	RK_TRANSFER,				/* moved to the pickup store from another location */
	RK_PREORDER,				/* sold against incoming supply, reserved there */
	RK_BACKORDER,				/* waits for supply, nothing reserved */
	RK_UNSERVABLE				/* cannot be served: reason says why */
} RouteKind;

extern const char *const route_kind_names[];

/*
 * Why a location is not a candidate for any line (checked once per location), or for one line.
 * LS_OK: it is.
 */
typedef enum LocationStatus
{
	LS_OK,
	LS_KIND_NOT_ALLOWED,
	LS_CANNOT_SHIP,
	LS_TOO_FAR,
	LS_DISTANCE_UNKNOWN,		/* the profile limits distance, and we do not know it */
	LS_OVER_CAPACITY,
	LS_PICKUP_STORE,			/* the pickup store itself is no transfer source */
	/* per line */
	LS_EXCLUDED,
	LS_NO_STOCK,
	LS_SHORT
} LocationStatus;

typedef struct RouteProfile
{
	char	   *code;
	double		w_cost;
	double		w_days;
	double		w_co2;				/* per kg */
	double		w_packages;
	int			max_packages;
	double		max_distance_km;	/* 0: no limit */
	bool		kinds[LK_COUNT];
	bool		allow_backorder;
	bool		allow_preorder;
} RouteProfile;

typedef struct CarrierService
{
	char	   *code;
	DeliveryMode mode;
	double		base_cost;
	double		cost_per_kg;
	double		cost_per_km;
	int			base_days;
	double		km_per_day;			/* 0: transit is base_days */
	double		co2_per_km;
	double		co2_per_kg_km;
	double		max_weight;			/* 0: no limit */
	double		max_distance;		/* 0: no limit */
	int			ncountries;			/* 0: every country */
	char	  (*countries)[3];
} CarrierService;

typedef struct RouteLocation
{
	int32		id;
	char	   *code;
	LocationKind kind;
	bool		has_pos;			/* own coordinates, or its country's centroid */
	bool		pos_is_centroid;
	double		lat;
	double		lon;
	char		country[3];
	bool		can_ship;
	bool		can_pickup;
	int32		priority;
	int32		handling_days;
	double		cost_per_package;
	int32		capacity;			/* -1: unlimited */
	int32		used;
	DateADT		start_day;			/* local date handling starts (after cutoff: tomorrow) */
	int64	   *avail;				/* per line: on_hand - reserved - safety_stock (+ hold) */
	/* filled per destination by route_prepare_destination() */
	bool		distance_known;
	double		distance;
	LocationStatus status;
} RouteLocation;

typedef struct RouteLine
{
	int			line_no;			/* 1-based position in the input */
	char	   *sku;
	int32		item_id;
	int32		qty;
	double		weight;				/* of one unit, kg */
	bool		backorderable;
	bool		preorderable;
	int32		hold_location_id;	/* 0: none */
	int32		hold_qty;
	int			hold_loc;			/* index into locs, -1: none */
	int			nexclude;
	int32	   *exclude;			/* location ids */
} RouteLine;

/* A location as a pruned search first sees it: no stock, no start day (route_load_static). */
typedef struct RouteStatic
{
	int32		id;
	LocationKind kind;
	bool		has_pos;
	double		lat;
	double		lon;
	bool		can_ship;
	bool		can_pickup;
	int32		priority;
	int32		handling_days;
	double		cost_per_package;
	bool		server_time_zone;	/* no time zone of its own: its start day is not before today */
	double		bound;				/* lower bound of the score of any plan that ships from it */
	double		distance;			/* km to the destination, INFINITY: unknown */
	bool		read;				/* in the batch read first */
} RouteStatic;

/* One part of a plan: qty units of a line from a location. */
typedef struct Assignment
{
	int			line;
	int			loc;
	int32		qty;
} Assignment;

/* A package: everything a plan ships from one location, with the carrier service chosen. */
typedef struct RoutePackage
{
	int			loc;
	double		weight;
	int			service;			/* index into services; -1: no carrier model */
	double		cost;
	double		co2;
	int			days;				/* from today until it arrives */
	DateADT		eta;
	double		score;				/* its own: cost, days, CO2, one package */
} RoutePackage;

typedef struct RoutePlan
{
	const char *strategy;
	int			nassign;
	int			maxassign;
	Assignment *assign;
	int			npackages;
	RoutePackage *packages;
	bool		valid;
	char	   *invalid;			/* why not, when !valid */
	int64		units;
	double		cost;
	double		co2;
	int			max_days;
	DateADT		eta;
	double		score;
	int64		priority_sum;
} RoutePlan;

/* One row of the result. */
typedef struct RouteRow
{
	int			line;
	int			loc;				/* -1: none */
	int32		qty;
	RouteKind	kind;
	int			package;			/* number of its package in the plan, 0: none */
	int			service;			/* -1: none */
	bool		has_metrics;		/* cost, co2, score set */
	double		cost;
	double		co2;
	double		score;
	DateADT		eta;				/* DATEVAL_NOBEGIN: unknown */
	DateADT		capacity_day;		/* DATEVAL_NOBEGIN: no capacity counted */
	int64		supply_id;			/* 0: none */
	char	   *reason;
} RouteRow;

/* A row of the explanation. */
typedef struct ExplainRow
{
	const char *kind;				/* input, candidate, plan, result */
	int			line;				/* -1: none */
	char	   *location;
	int64		qty;
	bool		has_qty;
	double		distance;
	bool		has_distance;
	int			service;
	bool		has_metrics;
	double		cost;
	double		co2;
	double		score;
	DateADT		eta;
	bool		chosen;
	char	   *reason;
} ExplainRow;

typedef struct Route
{
	int32		tenant_id;
	TimestampTz now;
	DateADT		today;
	RouteProfile profile;
	DeliveryMode mode;				/* carrier services allowed; DM_ANY: all */
	int			nservices;
	CarrierService *services;
	int			nlines;
	RouteLine  *lines;
	int			nlocs;
	RouteLocation *locs;

	/* the destination: a ship-to address, or the pickup store */
	bool		dest_known;
	double		dest_lat;
	double		dest_lon;
	char		dest_country[3];
	char	   *dest_note;
	int			pickup;				/* index into locs, -1: shipping */
	int32		pickup_id;

	bool		explain;
	bool	   *pinned;			/* per line: kept at the location its cart holds it */
	double	   *alone;			/* [line * alone_stride + loc]: score of the line alone from there, NaN: cannot */
	int			alone_stride;	/* nlocs when alone was made (supply may add locations later) */
	int			nplans;
	int			maxplans;
	RoutePlan  *plans;
	int			chosen_plan;		/* -1: none */
	double		prune_next;			/* pruned search: lowest bound of a location not read */

	int			nrows;
	int			maxrows;
	RouteRow   *rows;

	int			nexplain;
	int			maxexplain;
	ExplainRow *explain_rows;
} Route;

/* route_load.c: input and data (the caller is connected to SPI) */
extern void route_init(Route *r, int32 tenant_id, bool explain);
extern void route_parse_lines(Route *r, Jsonb *lines, const char *what);
extern void route_set_lines(Route *r, ArrayType *items, ArrayType *qtys, ArrayType *hold_locations,
							ArrayType *hold_qtys, ArrayType *exclude_lines, ArrayType *exclude_locations);
extern void route_parse_ship_to(Route *r, Jsonb *ship_to, const char *what);
extern void route_set_pickup_id(Route *r, int32 location_id);
extern void route_load_profile(Route *r, const char *code);
extern void route_load(Route *r);
extern void route_load_at(Route *r, int32 *ids, int nids);
extern void route_unload(Route *r);
extern int	route_load_static(Route *r, RouteStatic **out);
extern int	route_add_locations_with_stock(Route *r, int32 *ids, int nids);
extern void route_load_services(Route *r);
extern int	route_add_locations(Route *r, int32 *ids, int nids);
extern void route_load_supply(Route *r, int *lines, int nlines, int64 **supply_out, int *nsupply);
extern int	route_find_location(Route *r, int32 id);

/* routing.c: the engine */
extern void route_solve(Route *r);
extern void route_load_and_solve(Route *r);
extern int	route_prune_batch(Route *r, RouteStatic *st, int nst, int32 **ids);
extern bool route_pruned_ok(Route *r);
extern void route_prune_rebound(Route *r, RouteStatic *st, int nst);

/* A pruned search (routing.c) needs more active locations than this to be worth it. */
#define ROUTE_PRUNE_MIN_LOCATIONS 64
extern void route_reset(Route *r);
extern bool route_eval_package(Route *r, int loc, double weight, RoutePackage *out);
extern LocationStatus route_line_status(Route *r, int line, int loc);
extern const char *route_location_status_text(Route *r, RouteLocation *loc, LocationStatus status,
											  int line);
extern int	route_compare_plans(Route *r, RoutePlan *a, RoutePlan *b);
extern double route_alone(Route *r, int line, int loc);

/* geo.c */
extern double oms_distance_km(double lat1, double lon1, double lat2, double lon2);

#endif							/* OMS_ROUTING_H */
