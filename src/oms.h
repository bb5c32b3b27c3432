/*
 * oms.h
 *		What the C files of oms share: settings, the current tenant, and plan caching.
 */
#ifndef OMS_H
#define OMS_H

#include "postgres.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

/* Settings (GUCs), defined in oms.c */
extern char *oms_tenant;			/* oms.tenant: the current tenant's code */
extern char *oms_database;			/* oms.database: the background worker's database */
extern int	oms_worker_naptime;		/* oms.worker_naptime: seconds between worker rounds */
extern char *oms_reason;			/* oms.reason: why the current change happens (history) */
extern char *oms_actor;				/* oms.actor: who makes it, when not the session user */
extern char *oms_now_setting;		/* oms.now: the time routing and promises work at (tests) */

/*
 * The id of the current tenant (setting oms.tenant), looked up once per transaction.
 * The caller must be connected to SPI. Unknown tenant: ERROR 22023.
 */
extern int32 oms_tenant_id(void);

/*
 * The time that routing, promises and capacity days work at: the setting oms.now when set (for
 * tests and what-if questions), else the start of the current transaction.
 */
extern TimestampTz oms_now(void);

/* Prepares a statement once per backend and keeps it (SPI_prepare + SPI_keepplan). */
extern SPIPlanPtr oms_prepare(const char *sql, int nargs, Oid *argtypes);

/*
 * A user's value as an error message shows it: at most OMS_CLIP_BYTES bytes (whole characters),
 * then "...". A message must not repeat a 1 GB argument in the reply and in the server log.
 */
#define OMS_CLIP_BYTES 100
extern char *oms_clip(const char *s);
extern char *oms_clip_text(const text *t);

/* worker.c: registers the background worker; called from _PG_init when preloaded. */
extern void oms_worker_register(void);

#endif							/* OMS_H */
