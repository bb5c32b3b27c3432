/*
 * planning.c
 *		The settings of replenishment planning, and the statistics it rests on: the inverse of the
 *		standard normal distribution and the safety stock formula.
 *
 * "Today" is a setting (oms.today, empty: the current date) so that forecasts, plans, alerts and
 * subscriptions can be run for another day: tests get stable output, planners get what-if runs.
 */
#include "postgres.h"

#include <math.h>

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"

#include "oms.h"

char	   *oms_today_setting = NULL;
int			oms_forecast_history_days = 365;

/*
 * oms.today is empty or a date written YYYY-MM-DD. Checked here, without raising, so that a bad
 * value is refused by SET with the setting's name in the message.
 */
static bool
check_today(char **newval, void **extra, GucSource source)
{
	int			y,
				m,
				d;
	char		tail;
	int			jd;
	int			y2,
				m2,
				d2;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (sscanf(*newval, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || strlen(*newval) != 10)
	{
		GUC_check_errdetail("oms.today is a date written YYYY-MM-DD, or empty for the current date.");
		return false;
	}
	if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
	{
		GUC_check_errdetail("\"%s\" is not a date between 1900-01-01 and 9999-12-31.", *newval);
		return false;
	}
	jd = date2j(y, m, d);
	j2date(jd, &y2, &m2, &d2);
	if (y2 != y || m2 != m || d2 != d)
	{
		GUC_check_errdetail("\"%s\" is not a day of the calendar.", *newval);
		return false;
	}
	return true;
}

void
oms_planning_settings(void)
{
	DefineCustomStringVariable("oms.today",
							   "The date that forecasts, replenishment plans, alerts and subscriptions treat as today (empty: the current date).",
							   "Set it for what-if runs and reproducible tests; format YYYY-MM-DD.",
							   &oms_today_setting,
							   "",
							   PGC_USERSET,
							   0,
							   check_today, NULL, NULL);

	DefineCustomIntVariable("oms.forecast_history_days",
							"Days of demand history (up to yesterday) that oms.forecast reads.",
							NULL,
							&oms_forecast_history_days,
							365, 7, 3660,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

/* Today, as a DateADT: oms.today when set, else the current date in the session's time zone. */
DateADT
oms_today(void)
{
	if (oms_today_setting != NULL && oms_today_setting[0] != '\0')
		return DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(oms_today_setting)));
	return GetSQLCurrentDate();
}

/*
 * The inverse of the standard normal distribution function: the z with P(Z <= z) = p, for
 * 0 < p < 1. Peter Acklam's rational approximations (central region |p - 0.5| <= 0.47575, and
 * the two tails in q = sqrt(-2 ln p)), relative error below 1.15e-9, then one step of Halley's
 * method on erfc, which brings it to the precision of a double.
 */
double
oms_inverse_normal(double p)
{
	static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
		-2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01,
	2.506628277459239e+00};
	static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
		-1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01};
	static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
		-2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00,
	2.938163982698783e+00};
	static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
	2.445134137142996e+00, 3.754408661907416e+00};
	const double p_low = 0.02425;
	double		q,
				r,
				x,
				e,
				u;

	Assert(p > 0.0 && p < 1.0);
	if (p < p_low)
	{
		q = sqrt(-2.0 * log(p));
		x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}
	else if (p <= 1.0 - p_low)
	{
		q = p - 0.5;
		r = q * q;
		x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
			(((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
	}
	else
	{
		q = sqrt(-2.0 * log(1.0 - p));
		x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}

	/* Halley's step: e is the error of Phi(x), u = e / phi(x). */
	e = 0.5 * erfc(-x / M_SQRT2) - p;
	u = e * sqrt(2.0 * M_PI) * exp(x * x / 2.0);
	x = x - u / (1.0 + x * u / 2.0);
	return x;
}

/* Refuses a service level (or probability) outside the open interval (0, 1). */
static void
check_probability(double p, const char *what)
{
	if (isnan(p) || p <= 0.0 || p >= 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %g is outside (0, 1)", what, p),
				 errhint("A service level is a probability strictly between 0 and 1, e.g. 0.95 for 95%%.")));
}

PG_FUNCTION_INFO_V1(oms_inverse_normal_sql);

/* oms.inverse_normal(p): the standard normal quantile of p (z of a service level). */
Datum
oms_inverse_normal_sql(PG_FUNCTION_ARGS)
{
	double		p = PG_GETARG_FLOAT8(0);

	check_probability(p, "probability");
	PG_RETURN_FLOAT8(oms_inverse_normal(p));
}

/*
 * Safety stock for a service level over a protection period of L days (lead time plus review
 * period), daily demand of mean d and standard deviation s_d, and lead time standard deviation
 * s_L (days):
 *		SS = z(service level) * sqrt(L * s_d^2 + d^2 * s_L^2)
 * which is z * s_d * sqrt(L) when the lead time does not vary. Never negative.
 */
double
oms_safety_stock(double service_level, double demand_sd, double lead_time,
				 double demand_mean, double lead_time_sd)
{
	double		z = oms_inverse_normal(service_level);
	double		variance = lead_time * demand_sd * demand_sd +
		demand_mean * demand_mean * lead_time_sd * lead_time_sd;

	if (variance <= 0.0 || z <= 0.0)
		return 0.0;
	return z * sqrt(variance);
}

PG_FUNCTION_INFO_V1(oms_safety_stock_sql);

/* oms.safety_stock(service_level, demand_sd, lead_time_days, demand_mean, lead_time_sd) */
Datum
oms_safety_stock_sql(PG_FUNCTION_ARGS)
{
	double		level = PG_GETARG_FLOAT8(0);
	double		demand_sd = PG_GETARG_FLOAT8(1);
	double		lead_time = PG_GETARG_FLOAT8(2);
	double		demand_mean = PG_GETARG_FLOAT8(3);
	double		lead_time_sd = PG_GETARG_FLOAT8(4);

	check_probability(level, "service level");
	if (isnan(demand_sd) || demand_sd < 0.0 || isnan(demand_mean) || demand_mean < 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("demand mean %g and standard deviation %g must not be negative", demand_mean, demand_sd),
				 errhint("They are units a day, from oms.daily_demand.")));
	if (isnan(lead_time) || lead_time < 0.0 || isnan(lead_time_sd) || lead_time_sd < 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lead time %g days and its standard deviation %g must not be negative", lead_time, lead_time_sd),
				 errhint("Lead time is the days from ordering to receiving, 0 or more.")));
	PG_RETURN_FLOAT8(oms_safety_stock(level, demand_sd, lead_time, demand_mean, lead_time_sd));
}
