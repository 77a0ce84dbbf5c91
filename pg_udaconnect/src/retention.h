/*
 * retention.h — settings of privacy held in C and the retention background
 * worker.  See retention.c and docs/ingest.md, "Retention".
 */
#ifndef UDC_RETENTION_H
#define UDC_RETENTION_H

#include "postgres.h"

/* called from _PG_init() after udc_ingest_init(): GUCs, the worker */
extern void udc_retention_init(void);

/* worker entry point (bgw_function_name) */
extern PGDLLEXPORT void udc_retention_worker_main(Datum main_arg);

/* settings (GUCs) */
extern double udc_attendee_max_distance;
extern int	udc_attendee_max_window;
extern int	udc_attendee_max_report_age;
extern char *udc_location_retention;
extern int	udc_retention_naptime;
extern int	udc_retention_batch;

#endif							/* UDC_RETENTION_H */
