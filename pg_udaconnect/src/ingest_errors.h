/*
 * ingest_errors.h — what the Kafka ingest worker does with a database error
 * (private to src/ingest*.c; retention.c uses its guard too).  See ingest_errors.c and docs/ingest.md,
 * "Database errors".
 */
#ifndef UDC_INGEST_ERRORS_H
#define UDC_INGEST_ERRORS_H

#include "postgres.h"

#include "ingest.h"

/*
 * Is an error raised while inserting some rows the fault of those rows'
 * content, so that the row failing on its own goes to ingest_rejects?
 * False for every transient, resource or setup error: the batch must then
 * be retried, never rejected.
 */
extern bool udc_ingest_error_blames_row(int sqlerrcode);

/* A caught error, as the worker reports it. */
typedef struct UdcIngestError
{
	int			sqlerrcode;
	char		message[UDC_ERRLEN];
} UdcIngestError;

/*
 * Run fn(arg), which may start and commit transactions.  If it raises an
 * ERROR: abort the open transaction (nothing of it is committed), fill *err
 * and return false.  A shutdown request (FATAL, or an ERROR with SQLSTATE
 * 57P01/57P02) is not caught: the worker exits as before.
 */
extern bool udc_ingest_run_guarded(void (*fn) (void *arg), void *arg, UdcIngestError *err);

/*
 * Back-off between retries of a failed batch: 500 ms, doubling up to 30 s
 * (as the worker's other back-off: its wait loop sleeps at least 500 ms);
 * reset by the next batch that commits.
 */
extern int	udc_ingest_retry_delay_ms(void);
extern void udc_ingest_retry_reset(void);

#endif							/* UDC_INGEST_ERRORS_H */
