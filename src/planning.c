/*
 * planning.c
 *		The settings of replenishment planning, and the statistics it rests on: the inverse of the
 *		standard normal distribution and the safety stock formula.
 *
 * "Today" is a setting (oms.today, empty: the current date) so that forecasts, plans, alerts and
 * subscriptions can be run for another day: tests get stable output, planners get what-if runs.
 *
 * oms._replenishment_candidates computes the levels of every SKU-location of a planning run in one
 * call over the rows of oms._replenishment_base (sql/parts/84_planning.sql, where the formulas are
 * written out): no SQL function is called per row. Its figures are those the SQL formulas gave
 * before (test replenishment_stats compares them): the same double arithmetic in the same order,
 * and ceil(round(x::numeric, 6)) done exactly as PostgreSQL does it (see ceil_round6).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"

#include "oms.h"

char	   *oms_today_setting = NULL;
int			oms_forecast_history_days = 365;
static bool oms_stats_kept = false;
static int	oms_job_batch_pause = 0;

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

	/*
	 * Internal: set (transaction-local) by the functions that keep oms.demand_stats themselves
	 * while they write oms.demand_history, so that its triggers do not mark the statistics stale.
	 */
	DefineCustomBoolVariable("oms._stats_kept",
							 "Internal: the demand statistics are being kept by the writer of demand history.",
							 NULL,
							 &oms_stats_kept,
							 false,
							 PGC_USERSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_NO_RESET_ALL,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("oms.job_batch_pause",
							"Pause between two batches of a scheduled job run (oms.run_job), after the first has committed.",
							"Lets a long replenishment run leave the CPU to order placement; 0: no pause.",
							&oms_job_batch_pause,
							0, 0, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

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

/*
 * ceil(round(x::numeric, 6)) of SQL, for x >= 0: float8 to numeric keeps 15 significant digits
 * (DBL_DIG), round to 6 decimals, then the ceiling. Away from the integers (a fraction of at least
 * 2e-6, x below 1e8, so that 15 digits keep 7 decimals) the answer is floor(x) + 1; otherwise, and
 * for anything unusual, PostgreSQL's own numeric functions decide.
 */
static int64
ceil_round6(double x)
{
	double		f;

	if (x >= 0.0 && x < 1e8)
	{
		f = floor(x);
		if (x - f >= 2e-6)
			return (int64) f + 1;
		if (x == f)
			return (int64) f;
	}
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 DirectFunctionCall1(numeric_ceil,
																 DirectFunctionCall2(numeric_round,
																					 DirectFunctionCall1(float8_numeric, Float8GetDatum(x)),
																					 Int32GetDatum(6)))));
}

/* round(x::numeric, 6) of SQL. */
static Datum
round6_numeric(double x)
{
	return DirectFunctionCall2(numeric_round, DirectFunctionCall1(float8_numeric, Float8GetDatum(x)),
							   Int32GetDatum(6));
}

/* The columns of oms._replenishment_base, in order (0-based). */
enum
{
	B_ITEM, B_LOCATION, B_PRIORITY, B_LOCATION_CODE, B_METHOD, B_SUPPLIER, B_UNIT_COST, B_MOQ,
	B_PACK_SIZE, B_LEAD_TIME_DAYS, B_REBALANCE, B_AUTO_SEND, B_UPDATE_SS, B_OVERSTOCK_DAYS, B_MIN,
	B_MAX, B_ON_HAND, B_RESERVED, B_CURRENT_SS, B_ON_ORDER, B_BACKORDERED, B_COVERED, B_ORDER_QTY,
	B_SERVICE_LEVEL, B_LEAD_TIME_SD, B_PROTECTION, B_LEAD_TIME, B_HISTORY_DAYS, B_TOTAL, B_SUMSQ,
	B_EXACT, B_NCOLS
};

/* The columns of oms._replenishment_candidates: the first 22 are those of the base, then these. */
enum
{
	C_MEAN = 22, C_SD, C_LTD, C_SS, C_ROP, C_POSITION, C_ORDER_UP_TO, C_TRIGGERED, C_NEED, C_SURPLUS,
	C_NCOLS
};

#define PLAN_FETCH 10000

PG_FUNCTION_INFO_V1(oms_replenishment_candidates);

/*
 * The demand of one SKU-location summed from the history and the deltas, for a row whose
 * statistics cannot be used (exact): per day first, then the sum and the sum of squares, in
 * numeric, as planning did before the statistics.
 */
static const char *const exact_query =
"SELECT coalesce(pg_catalog.sum(x.q), 0)::double precision, coalesce(pg_catalog.sum(x.q * x.q), 0)::double precision"
"  FROM (SELECT y.day, pg_catalog.sum(y.ordered - y.cancelled) AS q"
"		  FROM (SELECT h.day, h.ordered, h.cancelled FROM oms.demand_history h"
"				 WHERE h.tenant_id = $1 AND h.item_id = $2 AND h.location_id = $3 AND h.day >= $4 AND h.day < $5"
"				UNION ALL"
"				SELECT d.day, d.ordered, d.cancelled FROM oms.demand_deltas d"
"				 WHERE d.tenant_id = $1 AND d.item_id = $2 AND d.location_id = $3 AND d.day >= $4 AND d.day < $5) y"
"		 GROUP BY y.day) x";

/*
 * oms._replenishment_candidates(tenant, today, item_from, item_to): reads
 * oms._replenishment_base(...) through a cursor, PLAN_FETCH rows at a time, and returns each row
 * with its levels.
 */
Datum
oms_replenishment_candidates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[4] = {INT4OID, DATEOID, INT4OID, INT4OID};
	Datum		args[4];
	char		argnulls[4];
	SPIPlanPtr	plan;
	SPIPlanPtr	exact_plan;
	Portal		portal;
	MemoryContext rowcxt;
	MemoryContext oldcxt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant and day of a replenishment plan must not be null")));
	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != C_NCOLS)
		elog(ERROR, "oms._replenishment_candidates must return %d columns", C_NCOLS);

	for (int i = 0; i < 4; i++)
	{
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		argnulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "oms planning rows", ALLOCSET_DEFAULT_SIZES);
	SPI_connect();
	plan = SPI_prepare("SELECT * FROM oms._replenishment_base($1, $2, $3, $4)", 4, argtypes);
	if (plan == NULL)
		elog(ERROR, "oms._replenishment_candidates: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, argnulls, true);
	{
		Oid			exact_types[5] = {INT4OID, INT4OID, INT4OID, DATEOID, DATEOID};

		exact_plan = SPI_prepare(exact_query, 5, exact_types);
		if (exact_plan == NULL)
			elog(ERROR, "oms._replenishment_candidates: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}

	for (;;)
	{
		SPITupleTable *tt;
		uint64		n;

		SPI_cursor_fetch(portal, true, PLAN_FETCH);
		n = SPI_processed;
		tt = SPI_tuptable;
		if (n == 0 || tt == NULL)
			break;
		if (tt->tupdesc->natts != B_NCOLS)
			elog(ERROR, "oms._replenishment_base must return %d columns", B_NCOLS);

		for (uint64 r = 0; r < n; r++)
		{
			Datum		in[B_NCOLS];
			bool		inull[B_NCOLS];
			Datum		out[C_NCOLS];
			bool		onull[C_NCOLS];
			bool		min_max;
			double		total,
						sumsq,
						hdays,
						mean,
						sd,
						var,
						protection;
			int64		position,
						ss,
						rop,
						q,
						s_level = 0;
			bool		s_level_null = false;
			int			trig;	/* 1 true, 0 false, -1 null */

			CHECK_FOR_INTERRUPTS();
			oldcxt = MemoryContextSwitchTo(rowcxt);
			heap_deform_tuple(tt->vals[r], tt->tupdesc, in, inull);

			for (int i = 0; i < C_MEAN; i++)
			{
				out[i] = in[i];
				onull[i] = inull[i];
			}
			for (int i = C_MEAN; i < C_NCOLS; i++)
				onull[i] = false;

			/*
			 * As the SQL did: mean = total / H, sd = sqrt(max((sumsq - total * total / H) / (H - 1),
			 * 0)), in doubles and in this order.
			 */
			total = DatumGetFloat8(in[B_TOTAL]);
			sumsq = DatumGetFloat8(in[B_SUMSQ]);
			if (DatumGetBool(in[B_EXACT]))
			{
				Datum		eargs[5];
				bool		isnull;

				eargs[0] = args[0];
				eargs[1] = in[B_ITEM];
				eargs[2] = in[B_LOCATION];
				eargs[3] = DateADTGetDatum(DatumGetDateADT(args[1]) - DatumGetInt32(in[B_HISTORY_DAYS]));
				eargs[4] = args[1];
				if (SPI_execute_plan(exact_plan, eargs, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
					elog(ERROR, "oms._replenishment_candidates: the exact demand query failed");
				total = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				sumsq = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
				SPI_freetuptable(SPI_tuptable);
			}
			hdays = (double) DatumGetInt32(in[B_HISTORY_DAYS]);
			mean = total / hdays;
			var = (sumsq - total * total / hdays) / (hdays - 1.0);
			sd = sqrt(var > 0.0 ? var : 0.0);
			protection = DatumGetFloat8(in[B_PROTECTION]);
			position = DatumGetInt64(in[B_ON_HAND]) - DatumGetInt64(in[B_RESERVED]) +
				DatumGetInt64(in[B_ON_ORDER]) - DatumGetInt64(in[B_BACKORDERED]);

			ss = ceil_round6(oms_safety_stock(DatumGetFloat8(in[B_SERVICE_LEVEL]), sd, protection, mean,
											  DatumGetFloat8(in[B_LEAD_TIME_SD])));
			/* rop = ceil(round(mean * P, 6) + ss) = ss + ceil(round(mean * P, 6)) */
			rop = ss + ceil_round6(mean * protection);
			if (!inull[B_ORDER_QTY])
				q = DatumGetInt64(in[B_ORDER_QTY]);
			else
			{
				q = ceil_round6(mean * DatumGetFloat8(in[B_LEAD_TIME]));
				if (q < 1)
					q = 1;
			}

			min_max = strcmp(TextDatumGetCString(in[B_METHOD]), "min_max") == 0;
			if (min_max)
			{
				s_level_null = inull[B_MAX];
				if (!s_level_null)
					s_level = DatumGetInt64(in[B_MAX]);
			}
			else
				s_level = rop + q;

			/* NOT covered AND (min_max: position <= min; else position < rop OR (= rop AND rop > 0)) */
			if (DatumGetBool(in[B_COVERED]))
				trig = 0;
			else if (min_max)
				trig = inull[B_MIN] ? -1 : (position <= DatumGetInt64(in[B_MIN]));
			else
				trig = position < rop || (position == rop && rop > 0);

			out[C_MEAN] = Float8GetDatum(mean);
			out[C_SD] = Float8GetDatum(sd);
			out[C_SS] = Int64GetDatum(ss);
			out[C_ROP] = Int64GetDatum(rop);
			out[C_POSITION] = Int64GetDatum(position);
			out[C_ORDER_UP_TO] = Int64GetDatum(s_level);
			onull[C_ORDER_UP_TO] = s_level_null;
			out[C_TRIGGERED] = BoolGetDatum(trig == 1);
			onull[C_TRIGGERED] = trig < 0;

			/* need: CASE WHEN NOT trig THEN 0 WHEN min_max THEN max - position ELSE q * ceil((rop - position + 1) / q) */
			if (trig == 0)
				out[C_NEED] = Int64GetDatum(0);
			else if (min_max)
			{
				out[C_NEED] = Int64GetDatum(s_level - position);
				onull[C_NEED] = s_level_null;
			}
			else
			{
				int64		short_by = rop - position + 1;	/* at least 1 when triggered */

				out[C_NEED] = Int64GetDatum(q * ((short_by + q - 1) / q));
			}

			/* surplus: CASE WHEN trig THEN 0 ELSE greatest(least(free, position - S), 0) (least skips a null S) */
			if (trig == 1)
				out[C_SURPLUS] = Int64GetDatum(0);
			else
			{
				int64		surplus = DatumGetInt64(in[B_ON_HAND]) - DatumGetInt64(in[B_RESERVED]) -
					DatumGetInt64(in[B_BACKORDERED]);

				if (!s_level_null && position - s_level < surplus)
					surplus = position - s_level;
				out[C_SURPLUS] = Int64GetDatum(surplus > 0 ? surplus : 0);
			}

			out[C_LTD] = round6_numeric(mean * protection);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, onull);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(rowcxt);
	return (Datum) 0;
}
