/*
 * retention.h — settings of privacy held in C.  See retention.c and
 * docs/ingest.md, "Retention"; the worker is maintenance.c's.
 */
#ifndef UDC_RETENTION_H
#define UDC_RETENTION_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* called from _PG_init(): the GUCs */
extern void udc_retention_init(void);

/* an interval from text, without raising an error (for check hooks) */
extern bool udc_parse_interval(const char *s, Interval *result);

/* settings (GUCs) */
extern double udc_attendee_max_distance;
extern int	udc_attendee_max_window;
extern int	udc_attendee_max_report_age;
extern char *udc_location_retention;
extern int	udc_retention_naptime;
extern int	udc_retention_batch;

#endif							/* UDC_RETENTION_H */
