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
