/*
 * geo.c
 *		Great-circle distance, the one piece of geometry routing needs.
 *
 * Distances are haversine distances on a sphere of radius 6371 km (the Earth's mean radius): no
 * road network, so a package travels further than this; carrier formulas absorb the difference
 * in their per-km rates. One degree of longitude on the equator is 111.195 km.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/float.h"

#include "routing.h"

#define EARTH_RADIUS_KM 6371.0

double
oms_distance_km(double lat1, double lon1, double lat2, double lon2)
{
	double		p1 = lat1 * M_PI / 180.0;
	double		p2 = lat2 * M_PI / 180.0;
	double		dp = p2 - p1;
	double		dl = (lon2 - lon1) * M_PI / 180.0;
	double		a = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);

	return 2.0 * EARTH_RADIUS_KM * atan2(sqrt(a), sqrt(Max(0.0, 1.0 - a)));
}

PG_FUNCTION_INFO_V1(oms_distance);

/* oms.distance_km(lat1, lon1, lat2, lon2): great-circle distance in km. */
Datum
oms_distance(PG_FUNCTION_ARGS)
{
	double		lat1 = PG_GETARG_FLOAT8(0);
	double		lon1 = PG_GETARG_FLOAT8(1);
	double		lat2 = PG_GETARG_FLOAT8(2);
	double		lon2 = PG_GETARG_FLOAT8(3);

	if (fabs(lat1) > 90 || fabs(lat2) > 90 || fabs(lon1) > 180 || fabs(lon2) > 180 ||
		isnan(lat1) || isnan(lat2) || isnan(lon1) || isnan(lon2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("coordinates out of range: (%g, %g), (%g, %g)", lat1, lon1, lat2, lon2),
				 errhint("Latitudes lie between -90 and 90, longitudes between -180 and 180 (decimal degrees).")));
	PG_RETURN_FLOAT8(oms_distance_km(lat1, lon1, lat2, lon2));
}
