/*
 * ingest.h — in-database Kafka ingest (background workers).
 * See docs/ingest.md.
 */
#ifndef UDC_INGEST_H
#define UDC_INGEST_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/spin.h"

/* called from _PG_init(): GUCs, shared memory, background workers */
extern void udc_ingest_init(void);

/* true when preloaded; otherwise a NOTICE with the hint, and false */
extern bool udc_ingest_loaded(void);

/* worker entry point (bgw_function_name) */
extern PGDLLEXPORT void udc_ingest_worker_main(Datum main_arg);

/* settings (GUCs) */
extern char *udc_kafka_brokers;
extern char *udc_kafka_topic;
extern char *udc_kafka_group;
extern char *udc_kafka_options;
extern char *udc_database;
extern int	udc_ingest_workers;
extern int	udc_ingest_batch_size;
extern int	udc_ingest_batch_min;
extern int	udc_ingest_batch_timeout;
extern int	udc_ingest_max_future_skew;
extern int	udc_ingest_error_log_interval;
extern bool udc_ingest_synchronous_commit;

/* shared state shown by udaconnect.ingest_status */
#define UDC_MAX_WORKERS 64
#define UDC_MAX_PARTITIONS 1024
#define UDC_ERRLEN 256
#define UDC_STATELEN 64
#define UDC_TOPICLEN 256

typedef struct UdcWorkerSlot
{
	pid_t		pid;
	char		state[UDC_STATELEN];
	char		last_error[UDC_ERRLEN];
	TimestampTz last_error_at;
} UdcWorkerSlot;

typedef struct UdcPartitionSlot
{
	int32		worker;			/* -1: nobody consumes it */
	int64		low_watermark;	/* -1: unknown */
	int64		high_watermark; /* -1: unknown */
} UdcPartitionSlot;

typedef struct UdcIngestShared
{
	slock_t		mutex;
	char		topic[UDC_TOPICLEN];
	UdcWorkerSlot workers[UDC_MAX_WORKERS];
	UdcPartitionSlot partitions[UDC_MAX_PARTITIONS];
} UdcIngestShared;

extern UdcIngestShared *udc_ingest_shared;

/*
 * librdkafka options parser shared by the GUC check hook and the worker:
 * "key=value;key=value" ("\;" and "\\" escape).  Calls fn for each pair;
 * stops and returns false when fn does, or on a syntax error (message in
 * *err, palloc'd).
 */
typedef bool (*udc_kafka_option_fn) (const char *key, const char *value, void *arg, char **err);
extern bool udc_parse_kafka_options(const char *options, udc_kafka_option_fn fn, void *arg, char **err);

#endif							/* UDC_INGEST_H */
