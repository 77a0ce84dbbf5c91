/*
 * maintenance.h — the maintenance background worker (time partitions,
 * retention).  See maintenance.c.
 */
#ifndef UDC_MAINTENANCE_H
#define UDC_MAINTENANCE_H

#include "postgres.h"

/* called from _PG_init() after udc_ingest_init(): registers the worker */
extern void udc_maintenance_init(void);

/* worker entry point (bgw_function_name) */
extern PGDLLEXPORT void udc_maintenance_worker_main(Datum main_arg);

#endif							/* UDC_MAINTENANCE_H */
