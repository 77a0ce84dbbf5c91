/*
 * ingest.c — settings, shared memory, worker registration and the
 * SQL-callable status function of the Kafka ingest.  The worker itself is in
 * ingest_worker.c.  See docs/ingest.md.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "ingest.h"
#include "location_rule.h"

char	   *udc_kafka_brokers = NULL;
char	   *udc_kafka_topic = NULL;
char	   *udc_kafka_group = NULL;
char	   *udc_kafka_options = NULL;
char	   *udc_database = NULL;
int			udc_ingest_workers = 1;
int			udc_ingest_batch_size = 10000;
int			udc_ingest_batch_min = 1;
int			udc_ingest_batch_timeout = 100;
int			udc_ingest_max_future_skew = UDC_DEFAULT_MAX_FUTURE_SKEW;
int			udc_ingest_error_log_interval = 60;
bool		udc_ingest_synchronous_commit = false;

UdcIngestShared *udc_ingest_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* keys the worker sets itself: they must not be overridden */
static const char *const reserved_keys[] = {
	"bootstrap.servers", "metadata.broker.list", "group.id",
	"enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset",
	"enable.partition.eof", NULL
};

bool
udc_parse_kafka_options(const char *options, udc_kafka_option_fn fn, void *arg, char **err)
{
	StringInfoData key;
	StringInfoData value;
	const char *p = options;

	*err = NULL;
	if (options == NULL)
		return true;
	initStringInfo(&key);
	initStringInfo(&value);
	while (*p)
	{
		StringInfo	cur = &key;
		bool		seen_eq = false;
		char	   *k;
		char	   *v;

		resetStringInfo(&key);
		resetStringInfo(&value);
		for (; *p && *p != ';'; p++)
		{
			if (*p == '\\' && (p[1] == ';' || p[1] == '\\'))
			{
				p++;
				appendStringInfoChar(cur, *p);
			}
			else if (*p == '=' && !seen_eq)
			{
				seen_eq = true;
				cur = &value;
			}
			else
				appendStringInfoChar(cur, *p);
		}
		if (*p == ';')
			p++;
		/* trim blanks around key and value */
		k = key.data;
		while (*k == ' ' || *k == '\t' || *k == '\n')
			k++;
		while (key.len > 0 && (key.data[key.len - 1] == ' ' || key.data[key.len - 1] == '\t' || key.data[key.len - 1] == '\n'))
			key.data[--key.len] = '\0';
		v = value.data;
		while (*v == ' ' || *v == '\t')
			v++;
		while (value.len > 0 && (value.data[value.len - 1] == ' ' || value.data[value.len - 1] == '\t' || value.data[value.len - 1] == '\n'))
			value.data[--value.len] = '\0';
		if (*k == '\0' && !seen_eq)
			continue;			/* empty entry, e.g. trailing ';' */
		if (*k == '\0' || !seen_eq)
		{
			*err = psprintf("\"%s\" is not of the form key=value", key.data);
			return false;
		}
		if (!fn(k, v, arg, err))
			return false;
	}
	return true;
}

static bool
check_one_option(const char *key, const char *value, void *arg, char **err)
{
	rd_kafka_conf_t *conf = (rd_kafka_conf_t *) arg;
	char		errstr[512];
	int			i;

	for (i = 0; reserved_keys[i]; i++)
	{
		if (strcmp(key, reserved_keys[i]) == 0)
		{
			*err = psprintf("librdkafka option \"%s\" is managed by pg_udaconnect and cannot be set here", key);
			return false;
		}
	}
	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		*err = psprintf("librdkafka rejected option \"%s\": %s", key, errstr);
		return false;
	}
	return true;
}

static bool
check_kafka_options(char **newval, void **extra, GucSource source)
{
	rd_kafka_conf_t *conf;
	char	   *err = NULL;
	bool		ok;

	if (*newval == NULL || **newval == '\0')
		return true;
	conf = rd_kafka_conf_new();
	ok = udc_parse_kafka_options(*newval, check_one_option, conf, &err);
	rd_kafka_conf_destroy(conf);
	if (!ok)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("udaconnect.kafka_options is a list of librdkafka settings \"key=value;key=value\" (see CONFIGURATION.md of librdkafka).");
		return false;
	}
	return true;
}

static bool
check_kafka_topic(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	size_t		len = s ? strlen(s) : 0;
	size_t		i;

	if (len == 0 || len > 249)
	{
		GUC_check_errdetail("A Kafka topic name has 1 to 249 characters.");
		return false;
	}
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-'))
		{
			GUC_check_errdetail("A Kafka topic name may contain only ASCII letters, digits, '.', '_' and '-'; \"%s\" contains '%c'.", s, c);
			return false;
		}
	}
	return true;
}

static bool
check_kafka_group(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0')
	{
		GUC_check_errdetail("udaconnect.kafka_group must not be empty.");
		return false;
	}
	return true;
}

static Size
ingest_shmem_size(void)
{
	return MAXALIGN(sizeof(UdcIngestShared));
}

static void
ingest_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ingest_shmem_size());
}

static void
ingest_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	udc_ingest_shared = ShmemInitStruct("pg_udaconnect ingest", ingest_shmem_size(), &found);
	if (!found)
	{
		int			i;

		memset(udc_ingest_shared, 0, sizeof(UdcIngestShared));
		SpinLockInit(&udc_ingest_shared->mutex);
		for (i = 0; i < UDC_MAX_PARTITIONS; i++)
		{
			udc_ingest_shared->partitions[i].worker = -1;
			udc_ingest_shared->partitions[i].low_watermark = -1;
			udc_ingest_shared->partitions[i].high_watermark = -1;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
udc_ingest_init(void)
{
	int			i;

	DefineCustomStringVariable("udaconnect.kafka_brokers",
							   "Kafka bootstrap servers the ingest workers consume from (host:port,...).",
							   "Empty: the workers stay idle.",
							   &udc_kafka_brokers, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("udaconnect.kafka_topic",
							   "Kafka topic holding udaconnect.v1.Location messages.",
							   NULL, &udc_kafka_topic, "locations", PGC_SIGHUP, 0,
							   check_kafka_topic, NULL, NULL);
	DefineCustomStringVariable("udaconnect.kafka_group",
							   "Kafka consumer group id of the ingest workers.",
							   "Offsets are kept in udaconnect.ingest_offset, never committed to Kafka.",
							   &udc_kafka_group, "udaconnect-ingest", PGC_SIGHUP, 0,
							   check_kafka_group, NULL, NULL);
	DefineCustomStringVariable("udaconnect.kafka_options",
							   "Further librdkafka settings for the ingest workers, \"key=value;key=value\".",
							   "E.g. security.protocol=SASL_SSL;sasl.mechanisms=SCRAM-SHA-512.  Every setting is checked by librdkafka.",
							   &udc_kafka_options, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_kafka_options, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_batch_size",
							"Maximum number of messages per ingest transaction.",
							NULL, &udc_ingest_batch_size, 10000, 1, 1000000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_batch_min",
							"Number of messages a worker waits for (at most udaconnect.ingest_batch_timeout) before it takes the ones already fetched as a batch.",
							"With the default 1 a batch is what is ready once a message is there: what arrived while the previous batch was written.",
							&udc_ingest_batch_min, 1, 1, 1000000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_batch_timeout",
							"Maximum time a worker collects messages before committing a batch.",
							NULL, &udc_ingest_batch_timeout, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_max_future_skew",
							"How far in the future a location's creation_time may lie.",
							"Applies to every entry path: record_location() and the REST API refuse "
							"later times (22023), the ingest rejects them into udaconnect.ingest_rejects; "
							"udaconnect-grpcd has its own --max-future-skew, to be kept no larger.",
							&udc_ingest_max_future_skew, UDC_DEFAULT_MAX_FUTURE_SKEW, 0,
							UDC_MAX_MAX_FUTURE_SKEW, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_error_log_interval",
							"Minimum time between two log lines about the same Kafka problem.",
							NULL, &udc_ingest_error_log_interval, 60, 1, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("udaconnect.ingest_synchronous_commit",
							 "Whether an ingest batch waits for its WAL to be flushed before the next one.",
							 "off (the default) commits batches with synchronous_commit = off: a crash may lose "
							 "the last batches' commits, rows and offsets together, and the workers consume them "
							 "again from Kafka.  on uses the server's synchronous_commit.",
							 &udc_ingest_synchronous_commit, false, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	/*
	 * Without shared_preload_libraries the module is loaded by a backend on
	 * first use: PostgreSQL refuses PGC_POSTMASTER settings then (FATAL), and
	 * there is no shared memory or worker to set up.  The SQL API works all
	 * the same; ingest_status and ingest_pause() say that ingest is off (as
	 * pg_stat_statements leaves its settings undefined when not preloaded).
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("udaconnect.database",
							   "Database the ingest workers connect to.",
							   NULL, &udc_database, "geoconnections", PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.ingest_workers",
							"Number of Kafka ingest workers (they share the topic's partitions).",
							"0 disables the ingest.",
							&udc_ingest_workers, 1, 0, UDC_MAX_WORKERS, PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ingest_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ingest_shmem_startup;

	for (i = 0; i < udc_ingest_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_udaconnect");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "udc_ingest_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "udaconnect ingest worker %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "udaconnect ingest");
		worker.bgw_main_arg = Int32GetDatum(i);
		worker.bgw_notify_pid = 0;
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * Whether the ingest runs in this server, i.e. the library was preloaded;
 * otherwise a NOTICE says why not and how to turn it on.  Every SQL entry of
 * the ingest (ingest_status, ingest_pause, ingest_resume) asks here, so the
 * message is written once.
 */
bool
udc_ingest_loaded(void)
{
	if (udc_ingest_shared != NULL)
		return true;
	ereport(NOTICE,
			(errmsg("the Kafka ingest of pg_udaconnect is not running in this server"),
			 errdetail("The library was loaded on first use, not at server start; the SQL API works, "
					   "but no ingest worker consumes Kafka."),
			 errhint("Add pg_udaconnect to shared_preload_libraries and restart the server.")));
	return false;
}

PG_FUNCTION_INFO_V1(udc_ingest_check_loaded);
Datum
udc_ingest_check_loaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(udc_ingest_loaded());
}

/*
 * udaconnect.ingest_worker_partitions(): the live per-partition state kept in
 * shared memory (empty when the library was not preloaded).
 */
PG_FUNCTION_INFO_V1(udc_ingest_worker_partitions);
Datum
udc_ingest_worker_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	UdcIngestShared *copy;
	int			i;

	SetSingleFuncCall(fcinfo, 0);
	if (!udc_ingest_loaded())
		return (Datum) 0;

	copy = palloc(sizeof(UdcIngestShared));
	SpinLockAcquire(&udc_ingest_shared->mutex);
	memcpy(copy, udc_ingest_shared, sizeof(UdcIngestShared));
	SpinLockRelease(&udc_ingest_shared->mutex);
	copy->topic[UDC_TOPICLEN - 1] = '\0';

	for (i = 0; i < UDC_MAX_PARTITIONS; i++)
	{
		UdcPartitionSlot *p = &copy->partitions[i];
		Datum		values[9];
		bool		nulls[9];
		UdcWorkerSlot *w;

		if (p->worker < 0 || p->worker >= UDC_MAX_WORKERS)
			continue;
		w = &copy->workers[p->worker];
		w->state[UDC_STATELEN - 1] = '\0';
		w->last_error[UDC_ERRLEN - 1] = '\0';
		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(copy->topic);
		values[1] = Int32GetDatum(i);
		values[2] = Int32GetDatum(p->worker);
		values[3] = Int32GetDatum((int32) w->pid);
		nulls[3] = (w->pid == 0);
		values[4] = CStringGetTextDatum(w->state);
		values[5] = Int64GetDatum(p->low_watermark);
		nulls[5] = (p->low_watermark < 0);
		values[6] = Int64GetDatum(p->high_watermark);
		nulls[6] = (p->high_watermark < 0);
		values[7] = CStringGetTextDatum(w->last_error);
		nulls[7] = (w->last_error[0] == '\0');
		values[8] = TimestampTzGetDatum(w->last_error_at);
		nulls[8] = (w->last_error_at == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
