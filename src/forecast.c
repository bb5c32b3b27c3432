/*
 * forecast.c
 *		Demand forecasts from the daily demand history: moving average, simple exponential
 *		smoothing and additive Holt-Winters with a weekly season; "auto" picks the one that
 *		forecast a held-back part of the history best.
 *
 * The series y[0..n-1] is the daily demand (ordered - cancelled, oms.daily_demand) of a SKU at a
 * location (or across all locations), one value per day, 0 on days without demand, from the first
 * day with demand within the last oms.forecast_history_days days up to yesterday (today is
 * oms.today()). Forecasts are for today + 0 .. today + horizon - 1.
 *
 *	moving_average			k = min(7, n); every day's forecast is the mean of the last k days.
 *	exponential_smoothing	level l_0 = y_0, l_t = l_{t-1} + a (y_t - l_{t-1}); forecast l_{n-1};
 *							a from 0.05, 0.10, ..., 0.95, the smallest sum of squared one-step
 *							errors (ties: the smaller a). Needs 2 days.
 *	holt_winters			additive, season m = 7 days. Start: means M1, M2 of the first two
 *							weeks, trend b = (M2 - M1) / 7, level at day 6 l = M1 + 3b, season
 *							s_i = y_i - (M1 + b (i - 3)) for i = 0..6. Then for t >= 7:
 *							  l_t = a (y_t - s_{t-7}) + (1 - a)(l_{t-1} + b_{t-1})
 *							  b_t = b (l_t - l_{t-1}) + (1 - b) b_{t-1}
 *							  s_t = g (y_t - l_t) + (1 - g) s_{t-7}
 *							forecast h days after the last: l + h b + s of that weekday.
 *							a, b, g from 0.1, 0.2, ..., 0.9, the smallest sum of squared one-step
 *							errors (ties: the first). Needs 14 days. A linear trend or an exact
 *							weekly pattern is reproduced exactly.
 *	auto					fewer than 14 days: moving_average. Otherwise the last
 *							k = min(28, max(7, n / 4)) days are held back; each method that can be
 *							fitted on the n - k days before them forecasts them, and the one with
 *							the lowest mean absolute error wins (ties: the simpler, in the order
 *							above); it is then fitted on the whole series.
 *
 * A method asked for with too short a history falls back to the next simpler one that fits, and
 * the method column says which was used. No demand at all: every day 0, method "none".
 * Forecasts below 0 are 0. lower/upper: a 95% interval, qty -/+ 1.96 s sqrt(h) (h = 1 for today),
 * where s is the root mean square of the in-sample one-step errors (for the moving average with no
 * such error, the standard deviation of the series); widening with sqrt(h) treats errors as
 * accumulating like a random walk, a conservative choice. lower is never below 0.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/tuplestore.h"

#include "oms.h"

#define SEASON 7
#define MAX_HORIZON 730

typedef enum ForecastMethod
{
	FM_NONE,
	FM_MOVING_AVERAGE,
	FM_EXPONENTIAL_SMOOTHING,
	FM_HOLT_WINTERS,
	FM_AUTO
} ForecastMethod;

static const char *const method_names[] = {
	"none", "moving_average", "exponential_smoothing", "holt_winters", "auto"
};

/* The smallest history each method can be fitted on. */
static const int method_min_days[] = {0, 1, 2, 2 * SEASON, 0};

/* A fitted method: its forecast function needs these, plus the error scale. */
typedef struct Fit
{
	ForecastMethod method;
	double		sigma;			/* root mean square one-step error */
	double		level;
	double		trend;
	double		season[SEASON]; /* by (day index mod 7) */
	int			n;				/* days fitted */
	double		alpha,
				beta,
				gamma;
} Fit;

/* Standard deviation of y (n - 1 in the denominator); 0 for fewer than 2 values. */
static double
series_sd(const double *y, int n)
{
	double		mean = 0.0,
				ss = 0.0;

	if (n < 2)
		return 0.0;
	for (int i = 0; i < n; i++)
		mean += y[i];
	mean /= n;
	for (int i = 0; i < n; i++)
		ss += (y[i] - mean) * (y[i] - mean);
	return sqrt(ss / (n - 1));
}

static void
fit_moving_average(const double *y, int n, Fit *fit)
{
	int			k = Min(SEASON, n);
	double		sum = 0.0,
				sse = 0.0;
	int			errors = 0;

	for (int t = k; t < n; t++)
	{
		double		mean = 0.0;

		for (int i = t - k; i < t; i++)
			mean += y[i];
		mean /= k;
		sse += (y[t] - mean) * (y[t] - mean);
		errors++;
	}
	for (int i = n - k; i < n; i++)
		sum += y[i];
	fit->method = FM_MOVING_AVERAGE;
	fit->level = sum / k;
	fit->sigma = errors > 0 ? sqrt(sse / errors) : series_sd(y, n);
	fit->n = n;
}

/* Sum of squared one-step errors of simple exponential smoothing; the final level in *level. */
static double
ses_run(const double *y, int n, double alpha, double *level)
{
	double		l = y[0],
				sse = 0.0;

	for (int t = 1; t < n; t++)
	{
		double		e = y[t] - l;

		sse += e * e;
		l += alpha * e;
	}
	*level = l;
	return sse;
}

static void
fit_exponential_smoothing(const double *y, int n, Fit *fit)
{
	double		best_sse = -1.0;

	for (int i = 1; i <= 19; i++)
	{
		double		alpha = i * 0.05;
		double		level;
		double		sse = ses_run(y, n, alpha, &level);

		if (best_sse < 0.0 || sse < best_sse - 1e-9 * (1.0 + best_sse))
		{
			best_sse = sse;
			fit->alpha = alpha;
			fit->level = level;
		}
	}
	fit->method = FM_EXPONENTIAL_SMOOTHING;
	fit->sigma = sqrt(best_sse / (n - 1));
	fit->n = n;
}

/*
 * One run of Holt-Winters with the given parameters: the sum of squared one-step errors, and,
 * when out is not NULL, the final level, trend and season.
 */
static double
hw_run(const double *y, int n, double alpha, double beta, double gamma, Fit *out)
{
	double		m1 = 0.0,
				m2 = 0.0,
				l,
				b,
				s[SEASON],
				sse = 0.0;

	for (int i = 0; i < SEASON; i++)
	{
		m1 += y[i];
		m2 += y[SEASON + i];
	}
	m1 /= SEASON;
	m2 /= SEASON;
	b = (m2 - m1) / SEASON;
	l = m1 + b * (SEASON - 1) / 2.0;
	for (int i = 0; i < SEASON; i++)
		s[i] = y[i] - (m1 + b * (i - (SEASON - 1) / 2.0));

	for (int t = SEASON; t < n; t++)
	{
		int			w = t % SEASON;
		double		prev_l = l;
		double		e = y[t] - (l + b + s[w]);

		sse += e * e;
		l = alpha * (y[t] - s[w]) + (1.0 - alpha) * (l + b);
		b = beta * (l - prev_l) + (1.0 - beta) * b;
		s[w] = gamma * (y[t] - l) + (1.0 - gamma) * s[w];
	}
	if (out != NULL)
	{
		out->level = l;
		out->trend = b;
		memcpy(out->season, s, sizeof(s));
	}
	return sse;
}

static void
fit_holt_winters(const double *y, int n, Fit *fit)
{
	double		best_sse = -1.0;

	for (int i = 1; i <= 9; i++)
		for (int j = 1; j <= 9; j++)
			for (int k = 1; k <= 9; k++)
			{
				double		sse = hw_run(y, n, i / 10.0, j / 10.0, k / 10.0, NULL);

				if (best_sse < 0.0 || sse < best_sse - 1e-9 * (1.0 + best_sse))
				{
					best_sse = sse;
					fit->alpha = i / 10.0;
					fit->beta = j / 10.0;
					fit->gamma = k / 10.0;
				}
			}
	(void) hw_run(y, n, fit->alpha, fit->beta, fit->gamma, fit);
	fit->method = FM_HOLT_WINTERS;
	fit->sigma = sqrt(best_sse / (n - SEASON));
	fit->n = n;
}

/* The simplest method at or below the one asked for that n days can fit. */
static ForecastMethod
usable_method(ForecastMethod asked, int n)
{
	if (n == 0)
		return FM_NONE;
	while (asked > FM_MOVING_AVERAGE && n < method_min_days[asked])
		asked--;
	return asked;
}

static void
fit_method(ForecastMethod method, const double *y, int n, Fit *fit)
{
	memset(fit, 0, sizeof(Fit));
	switch (usable_method(method, n))
	{
		case FM_MOVING_AVERAGE:
			fit_moving_average(y, n, fit);
			break;
		case FM_EXPONENTIAL_SMOOTHING:
			fit_exponential_smoothing(y, n, fit);
			break;
		case FM_HOLT_WINTERS:
			fit_holt_winters(y, n, fit);
			break;
		default:
			fit->method = FM_NONE;
			fit->n = n;
			break;
	}
}

/* The fitted method's forecast for h = 1, 2, ... days after the last fitted day; never below 0. */
static double
fit_forecast(const Fit *fit, int h)
{
	double		f;

	switch (fit->method)
	{
		case FM_MOVING_AVERAGE:
		case FM_EXPONENTIAL_SMOOTHING:
			f = fit->level;
			break;
		case FM_HOLT_WINTERS:
			f = fit->level + h * fit->trend + fit->season[(fit->n - 1 + h) % SEASON];
			break;
		default:
			f = 0.0;
			break;
	}
	return f > 0.0 ? f : 0.0;
}

/*
 * The method "auto" chooses for y[0..n-1]; the held-back days' mean absolute error of each
 * candidate goes to mae[] (-1 when it could not be fitted).
 */
static ForecastMethod
choose_method(const double *y, int n, double *mae)
{
	int			k,
				train;
	ForecastMethod best = FM_MOVING_AVERAGE;
	double		best_mae = -1.0;

	for (int m = 0; m <= FM_AUTO; m++)
		mae[m] = -1.0;
	if (n == 0)
		return FM_NONE;
	if (n < 2 * SEASON)
		return FM_MOVING_AVERAGE;
	k = Min(28, Max(SEASON, n / 4));
	train = n - k;
	for (ForecastMethod m = FM_MOVING_AVERAGE; m <= FM_HOLT_WINTERS; m++)
	{
		Fit			fit;
		double		err = 0.0;

		if (train < method_min_days[m])
			continue;
		fit_method(m, y, train, &fit);
		for (int h = 1; h <= k; h++)
			err += fabs(y[train + h - 1] - fit_forecast(&fit, h));
		err /= k;
		mae[m] = err;
		if (best_mae < 0.0 || err < best_mae - 1e-9 * (1.0 + best_mae))
		{
			best_mae = err;
			best = m;
		}
	}
	return best;
}

static ForecastMethod
parse_method(text *name)
{
	char	   *s = text_to_cstring(name);

	for (int m = FM_MOVING_AVERAGE; m <= FM_AUTO; m++)
		if (strcmp(s, method_names[m]) == 0)
			return (ForecastMethod) m;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown forecast method \"%s\"", s),
			 errhint("Methods are auto, moving_average, exponential_smoothing and holt_winters.")));
	pg_unreachable();
}

/* The id of a SKU, or of a location, of the current tenant; 22023 naming an unknown one. */
static int32
lookup_id(SPIPlanPtr *plan, const char *sql, int32 tenant, text *code, const char *what,
		  const char *hint)
{
	Datum		args[2];
	bool		isnull;

	if (*plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};

		*plan = oms_prepare(sql, 2, argtypes);
	}
	args[0] = Int32GetDatum(tenant);
	args[1] = PointerGetDatum(code);
	if (SPI_execute_plan(*plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "oms: %s look-up failed", what);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown %s \"%s\"", what, text_to_cstring(code)),
				 errhint("%s", hint)));
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The daily demand series of an item (at a location, or everywhere when location_id is 0) for
 * the days [first, today): palloc'd, *n values, starting at the first day with demand.
 */
static double *
load_series(int32 tenant, int32 item_id, int32 location_id, DateADT first, DateADT today,
			int *n, DateADT *start)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	double	   *y;
	int			days = today - first;
	int			lo = days;

	if (plan == NULL)
	{
		Oid			argtypes[5] = {INT4OID, INT4OID, INT4OID, DATEOID, DATEOID};

		plan = oms_prepare(
			"SELECT x.day, pg_catalog.sum(x.ordered - x.cancelled)::float8"
			"  FROM (SELECT h.day, h.ordered, h.cancelled FROM oms.demand_history h"
			"         WHERE h.tenant_id = $1 AND h.item_id = $2 AND ($3 IS NULL OR h.location_id = $3)"
			"           AND h.day >= $4 AND h.day < $5"
			"        UNION ALL"
			"        SELECT d.day, d.ordered, d.cancelled FROM oms.demand_deltas d"
			"         WHERE d.tenant_id = $1 AND d.item_id = $2 AND ($3 IS NULL OR d.location_id = $3)"
			"           AND d.day >= $4 AND d.day < $5) x"
			" GROUP BY x.day",
			5, argtypes);
	}
	args[0] = Int32GetDatum(tenant);
	args[1] = Int32GetDatum(item_id);
	args[2] = Int32GetDatum(location_id);
	if (location_id == 0)
		nulls[2] = 'n';
	args[3] = DateADTGetDatum(first);
	args[4] = DateADTGetDatum(today);
	if (SPI_execute_plan(plan, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "oms: reading demand history failed");

	y = palloc0(sizeof(double) * Max(days, 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		DateADT		day = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		double		qty = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		int			i = day - first;

		y[i] = qty;
		if (qty != 0.0 && i < lo)
			lo = i;
	}
	*n = days - lo;
	*start = first + lo;
	return y + lo;
}

/*
 * The demand series of the SKU and location (NULL: the network) in arguments 0 and 1 of the
 * SQL-callable functions below, up to yesterday; today's date in *today.
 */
static double *
series_from_args(FunctionCallInfo fcinfo, int *n, DateADT *today)
{
	static SPIPlanPtr item_plan = NULL;
	static SPIPlanPtr location_plan = NULL;
	int32		tenant,
				item_id,
				location_id = 0;
	DateADT		start;
	double	   *y;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a SKU is required"),
				 errhint("Forecasts are per SKU, at a location or (NULL) across the network.")));
	SPI_connect();
	tenant = oms_tenant_id();
	item_id = lookup_id(&item_plan, "SELECT id FROM oms.items WHERE tenant_id = $1 AND sku = $2",
						tenant, PG_GETARG_TEXT_PP(0), "SKU",
						"Items are rows of oms.items of the current tenant (setting oms.tenant).");
	if (!PG_ARGISNULL(1))
		location_id = lookup_id(&location_plan, "SELECT id FROM oms.locations WHERE tenant_id = $1 AND code = $2",
								tenant, PG_GETARG_TEXT_PP(1), "location",
								"Locations are rows of oms.locations of the current tenant; NULL forecasts the whole network.");
	*today = oms_today();
	y = load_series(tenant, item_id, location_id, *today - oms_forecast_history_days, *today, n, &start);
	SPI_finish();
	return y;
}

PG_FUNCTION_INFO_V1(oms_forecast);

/*
 * oms.forecast(sku, location DEFAULT NULL, horizon DEFAULT 28, method DEFAULT 'auto')
 *		RETURNS TABLE (day date, qty float8, lower float8, upper float8, method text)
 */
Datum
oms_forecast(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		horizon;
	ForecastMethod asked;
	DateADT		today;
	double	   *y;
	int			n;
	double		mae[FM_AUTO + 1];
	Fit			fit;
	double		z;

	horizon = PG_ARGISNULL(2) ? 28 : PG_GETARG_INT32(2);
	if (horizon < 1 || horizon > MAX_HORIZON)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("forecast horizon %d is outside 1 to %d days", horizon, MAX_HORIZON),
				 errhint("The horizon is the number of days forecast, starting today.")));
	asked = PG_ARGISNULL(3) ? FM_AUTO : parse_method(PG_GETARG_TEXT_PP(3));
	y = series_from_args(fcinfo, &n, &today);
	InitMaterializedSRF(fcinfo, 0);

	if (asked == FM_AUTO)
		asked = choose_method(y, n, mae);
	fit_method(asked, y, n, &fit);

	z = oms_inverse_normal(0.975);
	for (int h = 1; h <= horizon; h++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		double		f = fit_forecast(&fit, h);
		double		half = z * fit.sigma * sqrt((double) h);

		values[0] = DateADTGetDatum(today + h - 1);
		values[1] = Float8GetDatum(f);
		values[2] = Float8GetDatum(f - half > 0.0 ? f - half : 0.0);
		values[3] = Float8GetDatum(f + half);
		values[4] = CStringGetTextDatum(method_names[fit.method]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(oms_forecast_methods);

/*
 * oms.forecast_methods(sku, location DEFAULT NULL)
 *		RETURNS TABLE (method text, history_days int, held_back_days int, mae float8,
 *					   chosen boolean, parameters text, sigma float8)
 * How "auto" chose: per method, its mean absolute error on the held-back days, and the
 * parameters and one-step error of its fit on the whole history.
 */
Datum
oms_forecast_methods(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DateADT		today;
	double	   *y;
	int			n;
	double		mae[FM_AUTO + 1];
	ForecastMethod chosen;

	y = series_from_args(fcinfo, &n, &today);
	InitMaterializedSRF(fcinfo, 0);
	chosen = choose_method(y, n, mae);

	for (ForecastMethod m = FM_MOVING_AVERAGE; m <= FM_HOLT_WINTERS; m++)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		Fit			fit;

		values[0] = CStringGetTextDatum(method_names[m]);
		values[1] = Int32GetDatum(n);
		values[2] = Int32GetDatum(n >= 2 * SEASON ? Min(28, Max(SEASON, n / 4)) : 0);
		values[3] = Float8GetDatum(mae[m]);
		nulls[3] = mae[m] < 0.0;
		values[4] = BoolGetDatum(m == chosen);
		if (n >= method_min_days[m])
		{
			fit_method(m, y, n, &fit);
			if (m == FM_MOVING_AVERAGE)
				values[5] = CStringGetTextDatum(psprintf("k=%d", Min(SEASON, n)));
			else if (m == FM_EXPONENTIAL_SMOOTHING)
				values[5] = CStringGetTextDatum(psprintf("alpha=%.2f", fit.alpha));
			else
				values[5] = CStringGetTextDatum(psprintf("alpha=%.1f beta=%.1f gamma=%.1f",
														 fit.alpha, fit.beta, fit.gamma));
			values[6] = Float8GetDatum(fit.sigma);
		}
		else
			nulls[5] = nulls[6] = true;
		if (n == 0)
			nulls[5] = nulls[6] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
