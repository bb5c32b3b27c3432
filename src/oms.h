/*
 * oms.h
 *		What the C files of oms share: settings, the current tenant, and plan caching.
 */
#ifndef OMS_H
#define OMS_H

#include "postgres.h"
#include "executor/spi.h"
#include "utils/date.h"
#include "utils/timestamp.h"

/* Settings (GUCs), defined in oms.c */
extern char *oms_tenant;			/* oms.tenant: the current tenant's code */
extern char *oms_database;			/* oms.database: the background worker's database */
extern int	oms_worker_naptime;		/* oms.worker_naptime: seconds between worker rounds */
extern int	oms_notify_interval;	/* oms.notify_interval: ms between announcements (worker mode) */
extern char *oms_reason;			/* oms.reason: why the current change happens (history) */
extern char *oms_actor;				/* oms.actor: who makes it, when not the session user */
extern int	oms_notify_events;		/* oms.notify_events: who sends NOTIFY oms_events */
extern int	oms_event_retention;	/* oms.event_retention: seconds acknowledged events are kept */

/* Values of oms.notify_events. */
typedef enum OmsNotifyMode
{
	OMS_NOTIFY_COMMIT,				/* the transaction that writes events, at its commit */
	OMS_NOTIFY_WORKER,				/* the background worker, once per round with new events */
	OMS_NOTIFY_OFF					/* nobody: consumers poll */
} OmsNotifyMode;
extern bool oms_route_pruning;		/* oms.route_pruning: pruned routing searches (routing.c) */
extern char *oms_now_setting;		/* oms.now: the time routing and promises work at (tests) */

/*
 * The id of the current tenant (setting oms.tenant), looked up once per transaction.
 * The caller must be connected to SPI. Unknown tenant: ERROR 22023.
 */
extern int32 oms_tenant_id(void);
extern void oms_check_tenant(int32 tenant_id);
extern Oid oms_caller(void);

/*
 * The time that routing, promises and capacity days work at: the setting oms.now when set (for
 * tests and what-if questions), else the start of the current transaction.
 */
extern TimestampTz oms_now(void);

/* Prepares a statement once per backend and keeps it (SPI_prepare + SPI_keepplan). */
extern SPIPlanPtr oms_prepare(const char *sql, int nargs, Oid *argtypes);
extern void oms_invalidate_shell(Relation shard);
extern void oms_register_relcache_callback(void (*callback) (Datum arg, Oid relid));
extern bool oms_has_stock_slots(void);
extern SPIPlanPtr oms_prepare_generic(const char *sql, int nargs, Oid *argtypes, bool generic);

/*
 * A user's value as an error message shows it: at most OMS_CLIP_BYTES bytes (whole characters),
 * then "...". A message must not repeat a 1 GB argument in the reply and in the server log.
 */
#define OMS_CLIP_BYTES 100
extern char *oms_clip(const char *s);
extern char *oms_clip_text(const text *t);

/* planning.c: the settings of replenishment (oms.today, ...), defined from _PG_init. */
extern char *oms_today_setting;		/* oms.today: the date planning treats as today ('' = now) */
extern int	oms_forecast_history_days;	/* oms.forecast_history_days */
extern void oms_planning_settings(void);
extern DateADT oms_today(void);
extern double oms_inverse_normal(double p);
extern double oms_safety_stock(double service_level, double demand_sd, double lead_time,
							   double demand_mean, double lead_time_sd);

/* worker.c: registers the background worker; called from _PG_init when preloaded. */
extern void oms_worker_register(void);

#endif							/* OMS_H */
