/*
 * ingest_worker.c — the Kafka ingest background worker.
 *
 * Each worker consumes the partitions p of udaconnect.kafka_topic with
 * p % udaconnect.ingest_workers == its number, in batches.  One batch = one
 * transaction: the valid messages go into udaconnect.location (multi-insert
 * of tuples built from the decoded values, or PostgreSQL's COPY machinery
 * for a table that path does not handle), the invalid ones
 * into udaconnect.ingest_rejects, and the next offset of every partition in
 * the batch into udaconnect.ingest_offset.  Consumption always (re)starts
 * from the offsets stored in that table, so a crash at any instant neither
 * loses nor duplicates a message.  A database error that is not the fault of
 * a message (lock timeout, deadlock, out of memory...; ingest_errors.c)
 * aborts the batch, which is then consumed again from those offsets, as after
 * a crash.  See docs/ingest.md.
 *
 * librdkafka runs its own threads; they never touch PostgreSQL: their log
 * and error callbacks only append to a mutex-protected queue that the
 * worker's main loop drains into the server log.
 */
#include "postgres.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/extension.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "pgstat.h"
#include "port/pg_bswap.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "utils/sortsupport.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "ingest.h"
#include "ingest_errors.h"
#include "ingest_message.h"
#include "udc_pg.h"
#include "geodesy.h"

/* ------------------------------------------------------------------------
 * librdkafka log queue (written by librdkafka threads, read by the worker)
 * ------------------------------------------------------------------------ */
#define LOGQ_SIZE 128
#define LOGQ_MSGLEN 512

typedef struct LogEntry
{
	int			level;
	char		fac[32];
	char		msg[LOGQ_MSGLEN];
} LogEntry;

static pthread_mutex_t logq_mutex = PTHREAD_MUTEX_INITIALIZER;
static LogEntry logq[LOGQ_SIZE];
static int	logq_head = 0;
static int	logq_count = 0;
static unsigned long logq_dropped = 0;

static void
logq_push(int level, const char *fac, const char *msg)
{
	pthread_mutex_lock(&logq_mutex);
	if (logq_count == LOGQ_SIZE)
		logq_dropped++;
	else
	{
		LogEntry   *e = &logq[(logq_head + logq_count) % LOGQ_SIZE];

		e->level = level;
		strlcpy(e->fac, fac, sizeof(e->fac));
		strlcpy(e->msg, msg, sizeof(e->msg));
		logq_count++;
	}
	pthread_mutex_unlock(&logq_mutex);
}

static void
kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	logq_push(level, fac, buf);
}

static void
kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	char		msg[LOGQ_MSGLEN];

	(void) rk;
	(void) opaque;
	snprintf(msg, sizeof(msg), "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
	logq_push(3, "ERROR", msg);
}

/* ------------------------------------------------------------------------
 * worker state
 * ------------------------------------------------------------------------ */
typedef struct PartState
{
	int32		partition;
	int64		next_offset;	/* next offset we expect; -1 = unknown */
} PartState;

static int	worker_index = 0;
static rd_kafka_t *rk = NULL;
static rd_kafka_topic_t *rkt = NULL;
static rd_kafka_queue_t *rkq = NULL;
static char *consumer_brokers = NULL;	/* settings the consumer was made with */
static char *consumer_topic = NULL;
static char *consumer_group = NULL;
static char *consumer_options = NULL;
static bool config_broken = false;	/* bad settings: wait for a reload */

static PartState *parts = NULL;		/* partitions assigned to this worker */
static int	nparts = 0;
static int	topic_partitions = -1;	/* partition count of the topic */
static bool assigned = false;
static bool need_reassign = true;
static bool paused = false;
static TimestampTz next_metadata_at = 0;
static int	backoff_ms = 0;

static rd_kafka_message_t **batch = NULL;
static int	batch_alloc = 0;
static int	batch_held = 0;		/* messages in batch[] not yet destroyed */
static MemoryContext batch_cxt = NULL;

/* rate-limited error logging */
static TimestampTz last_error_logged_at = 0;
static int	suppressed_errors = 0;
static char last_error_text[UDC_ERRLEN];

/* ------------------------------------------------------------------------
 * shared status
 * ------------------------------------------------------------------------ */
static void
set_state(const char *state)
{
	UdcWorkerSlot *w;

	if (udc_ingest_shared == NULL)
	{
		if (!IsTransactionState())
			pgstat_report_activity(STATE_IDLE, state);
		return;
	}
	w = &udc_ingest_shared->workers[worker_index];
	SpinLockAcquire(&udc_ingest_shared->mutex);
	w->pid = MyProcPid;
	strlcpy(w->state, state, UDC_STATELEN);
	SpinLockRelease(&udc_ingest_shared->mutex);
	/* also visible in pg_stat_activity.query while the worker waits */
	if (!IsTransactionState())
		pgstat_report_activity(STATE_IDLE, state);
}

static void
clear_partition_slots(void)
{
	int			i;

	if (udc_ingest_shared == NULL)
		return;
	SpinLockAcquire(&udc_ingest_shared->mutex);
	for (i = 0; i < UDC_MAX_PARTITIONS; i++)
	{
		if (udc_ingest_shared->partitions[i].worker == worker_index)
		{
			udc_ingest_shared->partitions[i].worker = -1;
			udc_ingest_shared->partitions[i].low_watermark = -1;
			udc_ingest_shared->partitions[i].high_watermark = -1;
		}
	}
	SpinLockRelease(&udc_ingest_shared->mutex);
}

static void
publish_partitions(void)
{
	int			i;

	if (udc_ingest_shared == NULL)
		return;
	clear_partition_slots();
	SpinLockAcquire(&udc_ingest_shared->mutex);
	strlcpy(udc_ingest_shared->topic, udc_kafka_topic, UDC_TOPICLEN);
	for (i = 0; i < nparts; i++)
	{
		if (parts[i].partition < UDC_MAX_PARTITIONS)
			udc_ingest_shared->partitions[parts[i].partition].worker = worker_index;
	}
	SpinLockRelease(&udc_ingest_shared->mutex);
}

static void
publish_watermarks(bool ask_broker)
{
	int			i;

	if (udc_ingest_shared == NULL || rk == NULL)
		return;
	for (i = 0; i < nparts; i++)
	{
		int64_t		lo = -1,
					hi = -1;
		int32		p = parts[i].partition;

		if (p >= UDC_MAX_PARTITIONS)
			continue;
		if (ask_broker)
		{
			/* not consuming (paused): ask the partition leader, briefly */
			if (rd_kafka_query_watermark_offsets(rk, consumer_topic, p, &lo, &hi, 200) != RD_KAFKA_RESP_ERR_NO_ERROR)
				continue;
		}
		else if (rd_kafka_get_watermark_offsets(rk, consumer_topic, p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		SpinLockAcquire(&udc_ingest_shared->mutex);
		if (lo >= 0)
			udc_ingest_shared->partitions[p].low_watermark = lo;
		if (hi >= 0)
			udc_ingest_shared->partitions[p].high_watermark = hi;
		SpinLockRelease(&udc_ingest_shared->mutex);
	}
}

/*
 * Record a problem: always in shared memory (ingest_status.last_error), in
 * the server log at most once per udaconnect.ingest_error_log_interval.
 */
static void
report_problem(int elevel, const char *fmt,...) pg_attribute_printf(2, 3);

static void
report_problem(int elevel, const char *fmt,...)
{
	va_list		ap;
	char		msg[UDC_ERRLEN];
	TimestampTz now = GetCurrentTimestamp();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (udc_ingest_shared != NULL)
	{
		UdcWorkerSlot *w = &udc_ingest_shared->workers[worker_index];

		SpinLockAcquire(&udc_ingest_shared->mutex);
		strlcpy(w->last_error, msg, UDC_ERRLEN);
		w->last_error_at = now;
		SpinLockRelease(&udc_ingest_shared->mutex);
	}
	strlcpy(last_error_text, msg, sizeof(last_error_text));

	if (last_error_logged_at == 0 ||
		TimestampDifferenceExceeds(last_error_logged_at, now, udc_ingest_error_log_interval * 1000))
	{
		if (suppressed_errors > 0)
			ereport(elevel,
					(errmsg("udaconnect ingest worker %d: %s", worker_index, msg),
					 errdetail("%d similar message(s) were suppressed in the last %d s.",
							   suppressed_errors, udc_ingest_error_log_interval)));
		else
			ereport(elevel,
					(errmsg("udaconnect ingest worker %d: %s", worker_index, msg)));
		last_error_logged_at = now;
		suppressed_errors = 0;
	}
	else
		suppressed_errors++;
}

static void
drain_kafka_log(void)
{
	for (;;)
	{
		LogEntry	e;
		unsigned long dropped;
		bool		have = false;

		pthread_mutex_lock(&logq_mutex);
		dropped = logq_dropped;
		logq_dropped = 0;
		if (logq_count > 0)
		{
			e = logq[logq_head];
			logq_head = (logq_head + 1) % LOGQ_SIZE;
			logq_count--;
			have = true;
		}
		pthread_mutex_unlock(&logq_mutex);

		if (dropped > 0)
			ereport(LOG,
					(errmsg("udaconnect ingest worker %d: %lu librdkafka log messages were dropped (queue full)",
							worker_index, dropped)));
		if (!have)
			break;
		e.fac[sizeof(e.fac) - 1] = '\0';
		e.msg[sizeof(e.msg) - 1] = '\0';
		if (e.level <= 4)
			report_problem(e.level <= 3 ? WARNING : LOG, "librdkafka %s: %s", e.fac, e.msg);
		else
			ereport(DEBUG1,
					(errmsg_internal("udaconnect ingest worker %d: librdkafka %s: %s",
									 worker_index, e.fac, e.msg)));
	}
}

/*
 * Commit mode of the batches (udaconnect.ingest_synchronous_commit): off
 * unless asked for.  Exactly-once does not depend on it: rows, rejects and
 * offsets commit in one transaction, and a transaction whose commit record
 * did not reach the disk before a crash is lost as a whole — its offsets
 * too, so its messages are consumed again.  See docs/ingest.md.
 */
static void
apply_commit_mode(void)
{
	/* NULL: back to the server's own setting */
	SetConfigOption("synchronous_commit", udc_ingest_synchronous_commit ? NULL : "off",
					PGC_USERSET, PGC_S_SESSION);
}

/* ------------------------------------------------------------------------
 * waiting
 * ------------------------------------------------------------------------ */
static void
wait_ms(long ms)
{
	int			rc;

	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

static void
backoff(void)
{
	backoff_ms = backoff_ms == 0 ? 500 : Min(backoff_ms * 2, 30000);
	next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_ms);
}

/* ------------------------------------------------------------------------
 * the consumer
 * ------------------------------------------------------------------------ */
static bool
set_one_option(const char *key, const char *value, void *arg, char **err)
{
	rd_kafka_conf_t *conf = (rd_kafka_conf_t *) arg;
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		*err = psprintf("librdkafka rejected option \"%s\": %s", key, errstr);
		return false;
	}
	return true;
}

/* destroy the messages held in batch[] (slots set to NULL are already gone) */
static void
release_batch(void)
{
	int			i;

	for (i = 0; i < batch_held; i++)
		if (batch[i] != NULL)
			rd_kafka_message_destroy(batch[i]);
	batch_held = 0;
}

/*
 * Stop librdkafka.  rd_kafka_destroy() waits for every message handed to us
 * to be destroyed, so the messages still held in batch[] (an error or a
 * shutdown in the middle of a batch) are released first, or it hangs.
 */
static void
consumer_destroy(void)
{
	if (rk == NULL)
		return;
	release_batch();
	if (rkq)
		rd_kafka_queue_destroy(rkq);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	rk = NULL;
	rkt = NULL;
	rkq = NULL;
	assigned = false;
	need_reassign = true;
	nparts = 0;
	topic_partitions = -1;
	clear_partition_slots();
	drain_kafka_log();
}

static void
consumer_exit_cb(int code, Datum arg)
{
	/* no consumer-group state to leave: just stop librdkafka's threads */
	consumer_destroy();
	if (udc_ingest_shared != NULL)
	{
		clear_partition_slots();
		SpinLockAcquire(&udc_ingest_shared->mutex);
		udc_ingest_shared->workers[worker_index].pid = 0;
		strlcpy(udc_ingest_shared->workers[worker_index].state, "stopped", UDC_STATELEN);
		SpinLockRelease(&udc_ingest_shared->mutex);
	}
}

static bool
conf_set_checked(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		report_problem(WARNING, "librdkafka rejected \"%s\" = \"%s\": %s", key, value, errstr);
		return false;
	}
	return true;
}

static bool
consumer_create(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];
	char		client_id[64];
	char	   *err = NULL;
	sigset_t	all,
				old;

	snprintf(client_id, sizeof(client_id), "udaconnect-ingest-%d", worker_index);
	rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
	rd_kafka_conf_set_error_cb(conf, kafka_error_cb);

	/*
	 * Defaults the user may override: bounded prefetch (librdkafka's default
	 * is 64 MB per partition) and short fetch waits (a batch is collected for
	 * at most udaconnect.ingest_batch_timeout, 100 ms by default; brokers that
	 * hold a fetch for the default 500 ms would dominate the latency).
	 */
	if (!conf_set_checked(conf, "queued.max.messages.kbytes", "16384") ||
		!conf_set_checked(conf, "fetch.wait.max.ms", "50"))
	{
		rd_kafka_conf_destroy(conf);
		return false;
	}
	/* the user's pass-through settings next: ours below win */
	if (!udc_parse_kafka_options(udc_kafka_options, set_one_option, conf, &err))
	{
		report_problem(WARNING, "invalid udaconnect.kafka_options: %s", err);
		rd_kafka_conf_destroy(conf);
		return false;
	}
	if (!conf_set_checked(conf, "bootstrap.servers", udc_kafka_brokers) ||
		!conf_set_checked(conf, "group.id", udc_kafka_group) ||
		!conf_set_checked(conf, "client.id", client_id) ||
		!conf_set_checked(conf, "enable.auto.commit", "false") ||
		!conf_set_checked(conf, "enable.auto.offset.store", "false") ||
		!conf_set_checked(conf, "enable.partition.eof", "false") ||
		!conf_set_checked(conf, "auto.offset.reset", "error"))
	{
		rd_kafka_conf_destroy(conf);
		return false;
	}

	/*
	 * librdkafka's threads inherit our signal mask: block everything while
	 * they are created so PostgreSQL's signal handlers only ever run in the
	 * main thread.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rk == NULL)
	{
		/* conf is freed by rd_kafka_new only on success */
		rd_kafka_conf_destroy(conf);
		report_problem(WARNING, "cannot create the Kafka consumer: %s", errstr);
		return false;
	}
	rkt = rd_kafka_topic_new(rk, udc_kafka_topic, NULL);
	if (rkt == NULL)
	{
		report_problem(WARNING, "cannot create a handle for topic \"%s\": %s",
					   udc_kafka_topic, rd_kafka_err2str(rd_kafka_last_error()));
		rd_kafka_destroy(rk);
		rk = NULL;
		return false;
	}
	rd_kafka_poll_set_consumer(rk);
	rkq = rd_kafka_queue_get_consumer(rk);
	if (rkq == NULL)
	{
		report_problem(WARNING, "cannot get the Kafka consumer queue");
		consumer_destroy();
		return false;
	}

	if (consumer_brokers)
		pfree(consumer_brokers);
	if (consumer_topic)
		pfree(consumer_topic);
	if (consumer_group)
		pfree(consumer_group);
	if (consumer_options)
		pfree(consumer_options);
	consumer_brokers = MemoryContextStrdup(TopMemoryContext, udc_kafka_brokers);
	consumer_topic = MemoryContextStrdup(TopMemoryContext, udc_kafka_topic);
	consumer_group = MemoryContextStrdup(TopMemoryContext, udc_kafka_group);
	consumer_options = MemoryContextStrdup(TopMemoryContext, udc_kafka_options ? udc_kafka_options : "");
	assigned = false;
	need_reassign = true;
	next_metadata_at = 0;
	ereport(LOG,
			(errmsg("udaconnect ingest worker %d: consuming topic \"%s\" from %s",
					worker_index, udc_kafka_topic, udc_kafka_brokers)));
	return true;
}

static bool
consumer_settings_changed(void)
{
	if (rk == NULL)
		return false;
	return strcmp(consumer_brokers, udc_kafka_brokers) != 0 ||
		strcmp(consumer_topic, udc_kafka_topic) != 0 ||
		strcmp(consumer_group, udc_kafka_group) != 0 ||
		strcmp(consumer_options, udc_kafka_options ? udc_kafka_options : "") != 0;
}

/* ------------------------------------------------------------------------
 * database helpers (must run inside a transaction with SPI connected)
 * ------------------------------------------------------------------------ */
static bool
extension_ready(void)
{
	return OidIsValid(get_extension_oid("pg_udaconnect", true)) &&
		OidIsValid(get_relname_relid("ingest_offset", get_namespace_oid("udaconnect", true)));
}

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* is ingest paused?  (FOR SHARE: ingest_pause() waits for us) */
static bool
read_paused(bool lock)
{
	int			rc;
	bool		isnull;
	Datum		d;

	rc = SPI_execute(lock ? "SELECT paused FROM udaconnect.ingest_control FOR SHARE"
					 : "SELECT paused FROM udaconnect.ingest_control", false, 1);
	if ((rc != SPI_OK_SELECT && rc != SPI_OK_SELINTO) || SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

/* stored next offset of partition p, or -1 */
static int64
stored_offset_of(int32 partition, bool lock)
{
	static SPIPlanPtr plan_lock = NULL;
	static SPIPlanPtr plan_nolock = NULL;
	SPIPlanPtr *planp = lock ? &plan_lock : &plan_nolock;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	int			rc;
	bool		isnull;
	Datum		d;

	if (*planp == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(lock ?
									"SELECT next_offset FROM udaconnect.ingest_offset WHERE topic = $1 AND \"partition\" = $2 FOR UPDATE" :
									"SELECT next_offset FROM udaconnect.ingest_offset WHERE topic = $1 AND \"partition\" = $2",
									2, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*planp = p;
	}
	values[0] = CStringGetTextDatum(consumer_topic);
	values[1] = Int32GetDatum(partition);
	rc = SPI_execute_plan(*planp, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.ingest_offset failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

/* ------------------------------------------------------------------------
 * partition assignment
 * ------------------------------------------------------------------------ */
static void
unassign(void)
{
	if (rk != NULL && assigned)
		rd_kafka_assign(rk, NULL);
	assigned = false;
}

/*
 * Learn the topic's partitions (metadata, 500 ms at most) and assign ours,
 * starting from the offsets stored in the database.  Returns false (after
 * scheduling a retry with backoff) when the broker or topic is unavailable
 * or the extension does not exist.
 */
static bool
refresh_assignment(void)
{
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_resp_err_t err;
	int			npartitions;
	rd_kafka_topic_partition_list_t *list;
	int			i;
	bool		ok = true;

	if (!need_reassign && GetCurrentTimestamp() < next_metadata_at)
		return true;
	if (need_reassign && GetCurrentTimestamp() < next_metadata_at && backoff_ms > 0)
		return false;

	err = rd_kafka_metadata(rk, 0, rkt, &md, 500);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR && assigned && !need_reassign)
	{
		/*
		 * Periodic check while consuming: keep going and try again later (a
		 * broker that is really down shows through librdkafka's errors).
		 */
		ereport(DEBUG1,
				(errmsg_internal("udaconnect ingest worker %d: metadata refresh failed: %s",
								 worker_index, rd_kafka_err2str(err))));
		next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
		return true;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		set_state("waiting for Kafka");
		report_problem(WARNING, "cannot read the metadata of topic \"%s\" from %s: %s (retrying in %d ms)",
					   consumer_topic, consumer_brokers, rd_kafka_err2str(err),
					   backoff_ms == 0 ? 500 : Min(backoff_ms * 2, 30000));
		backoff();
		return false;
	}
	if (md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
		md->topics[0].partition_cnt <= 0)
	{
		rd_kafka_resp_err_t terr = md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : md->topics[0].err;

		rd_kafka_metadata_destroy(md);
		set_state("waiting for topic");
		report_problem(WARNING, "topic \"%s\" is not available on %s: %s (retrying in %d ms)",
					   consumer_topic, consumer_brokers,
					   terr == RD_KAFKA_RESP_ERR_NO_ERROR ? "no partitions" : rd_kafka_err2str(terr),
					   backoff_ms == 0 ? 500 : Min(backoff_ms * 2, 30000));
		backoff();
		return false;
	}
	npartitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	backoff_ms = 0;
	next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);

	if (!need_reassign && npartitions == topic_partitions)
		return true;

	/* our share of the partitions */
	if (parts)
		pfree(parts);
	parts = MemoryContextAlloc(TopMemoryContext, sizeof(PartState) * Max(npartitions, 1));
	nparts = 0;
	for (i = 0; i < npartitions; i++)
	{
		if (i % udc_ingest_workers == worker_index)
		{
			parts[nparts].partition = i;
			parts[nparts].next_offset = -1;
			nparts++;
		}
	}
	topic_partitions = npartitions;

	/* offsets and pause state from the database */
	begin_tx("udaconnect ingest: reading offsets");
	if (!extension_ready())
		ok = false;
	else
	{
		paused = read_paused(false);
		for (i = 0; i < nparts; i++)
			parts[i].next_offset = stored_offset_of(parts[i].partition, false);
	}
	end_tx();

	if (!ok)
	{
		set_state("waiting for CREATE EXTENSION");
		unassign();
		next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 2000);
		return false;
	}
	publish_partitions();
	if (paused)
	{
		unassign();
		set_state("paused");
		publish_watermarks(true);
		need_reassign = true;
		next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 500);
		return false;
	}
	if (nparts == 0)
	{
		unassign();
		set_state("idle: no partition for this worker");
		need_reassign = false;
		return true;
	}

	list = rd_kafka_topic_partition_list_new(nparts);
	for (i = 0; i < nparts; i++)
	{
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(list, consumer_topic, parts[i].partition);

		tp->offset = parts[i].next_offset >= 0 ? parts[i].next_offset : RD_KAFKA_OFFSET_BEGINNING;
	}
	err = rd_kafka_assign(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		report_problem(WARNING, "cannot assign the partitions of topic \"%s\": %s",
					   consumer_topic, rd_kafka_err2str(err));
		backoff();
		return false;
	}
	assigned = true;
	need_reassign = false;
	set_state("consuming");
	ereport(DEBUG1,
			(errmsg_internal("udaconnect ingest worker %d: assigned %d of %d partitions of \"%s\"",
							 worker_index, nparts, npartitions, consumer_topic)));
	return true;
}

static PartState *
find_part(int32 partition)
{
	int			i;

	for (i = 0; i < nparts; i++)
		if (parts[i].partition == partition)
			return &parts[i];
	return NULL;
}

/*
 * A partition's stored offset is no longer on the broker (topic recreated,
 * retention): restart it from the earliest available offset, loudly.
 */
static void
handle_offset_reset(int32 partition, const char *why)
{
	int64_t		lo = -1,
				hi = -1;
	rd_kafka_resp_err_t err;

	err = rd_kafka_query_watermark_offsets(rk, consumer_topic, partition, &lo, &hi, 1000);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || lo < 0)
	{
		report_problem(WARNING, "partition %d of topic \"%s\": %s; cannot read its watermarks: %s",
					   partition, consumer_topic, why, rd_kafka_err2str(err));
		need_reassign = true;
		backoff();
		return;
	}
	begin_tx("udaconnect ingest: offset reset");
	if (extension_ready())
	{
		Oid			types[3] = {TEXTOID, INT4OID, INT8OID};
		Datum		values[3];
		int64		stored = stored_offset_of(partition, true);

		/* only move forward to the earliest offset, or restart a recreated topic */
		if (stored < 0 || stored < lo || stored > hi)
		{
			values[0] = CStringGetTextDatum(consumer_topic);
			values[1] = Int32GetDatum(partition);
			values[2] = Int64GetDatum(lo);
			SPI_execute_with_args("INSERT INTO udaconnect.ingest_offset (topic, \"partition\", next_offset) VALUES ($1, $2, $3) "
								  "ON CONFLICT (topic, \"partition\") DO UPDATE SET next_offset = excluded.next_offset",
								  3, types, values, NULL, false, 0);
			ereport(WARNING,
					(errmsg("udaconnect ingest worker %d: partition %d of topic \"%s\" restarts at offset %lld",
							worker_index, partition, consumer_topic, (long long) lo),
					 stored < 0 ?
					 errdetail("%s: no offset was stored yet; the broker holds offsets [%lld, %lld).",
							   why, (long long) lo, (long long) hi) :
					 errdetail("%s: the stored offset %lld lies outside the broker's offsets [%lld, %lld).",
							   why, (long long) stored, (long long) lo, (long long) hi),
					 errhint("Messages between the stored offset and %lld are no longer on the broker (retention) or the topic was recreated.",
							 (long long) lo)));
		}
	}
	end_tx();
	need_reassign = true;
}

/* ------------------------------------------------------------------------
 * batch processing
 * ------------------------------------------------------------------------ */
typedef struct IngestReject
{
	int			msg;
	char	   *reason;
} IngestReject;

/* COPY source: the binary COPY image in copy_src */
static StringInfoData copy_src;
static int	copy_pos;

static int
copy_read_cb(void *outbuf, int minread, int maxread)
{
	int			n = Min(maxread, copy_src.len - copy_pos);

	if (n <= 0)
		return 0;
	memcpy(outbuf, copy_src.data + copy_pos, n);
	copy_pos += n;
	return n;
}

static inline void
put_int16(StringInfo s, int16 v)
{
	uint16		n = pg_hton16((uint16) v);

	appendBinaryStringInfoNT(s, (char *) &n, 2);
}

static inline void
put_int32(StringInfo s, int32 v)
{
	uint32		n = pg_hton32((uint32) v);

	appendBinaryStringInfoNT(s, (char *) &n, 4);
}

static inline void
put_int64(StringInfo s, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	appendBinaryStringInfoNT(s, (char *) &n, 8);
}

/* little-endian EWKB point with SRID 4326 (x = longitude, y = latitude) */
static inline void
put_ewkb_point(StringInfo s, double lon, double lat)
{
	static const unsigned char head[9] = {0x01, 0x01, 0x00, 0x00, 0x20, 0xE6, 0x10, 0x00, 0x00};
	double		xy[2];

	appendBinaryStringInfoNT(s, (const char *) head, 9);
	xy[0] = lon;
	xy[1] = lat;
#ifdef WORDS_BIGENDIAN
#error "EWKB writer assumes a little-endian machine"
#endif
	appendBinaryStringInfoNT(s, (const char *) xy, 16);
}

static void
build_copy_image(IngestRow *rows, int n)
{
	static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
	int			i;

	resetStringInfo(&copy_src);
	enlargeStringInfo(&copy_src, 19 + n * 55 + 2);
	appendBinaryStringInfo(&copy_src, sig, 11);
	put_int32(&copy_src, 0);	/* flags */
	put_int32(&copy_src, 0);	/* header extension */
	for (i = 0; i < n; i++)
	{
		enlargeStringInfo(&copy_src, 64);
		put_int16(&copy_src, 3);
		put_int32(&copy_src, 4);
		put_int32(&copy_src, rows[i].person_id);
		put_int32(&copy_src, 25);
		put_ewkb_point(&copy_src, rows[i].longitude, rows[i].latitude);
		put_int32(&copy_src, 8);
		put_int64(&copy_src, rows[i].creation_time);
	}
	put_int16(&copy_src, -1);
	copy_pos = 0;
}

/* COPY rows into udaconnect.location (may raise an error) */
static uint64
copy_rows(Relation rel, IngestRow *rows, int n)
{
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	CopyFromState cstate;
	List	   *attnames;
	List	   *options;
	uint64		processed;

	build_copy_image(rows, n);
	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	nsitem->p_rte->requiredPerms = ACL_INSERT;
	attnames = list_make3(makeString("person_id"), makeString("coordinate"), makeString("creation_time"));
	options = list_make1(makeDefElem("format", (Node *) makeString("binary"), -1));
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_read_cb, attnames, options);
	processed = CopyFrom(cstate);
	EndCopyFrom(cstate);
	free_parsestate(pstate);
	return processed;
}

/* ------------------------------------------------------------------------
 * The direct insert path
 *
 * What COPY does for these rows, minus what costs without being needed:
 * no COPY parsing (tuples are formed from the decoded values), no transition
 * table for the person trigger (check_persons() has already locked every
 * referenced person FOR KEY SHARE, which is all that trigger does), and the
 * index entries of a batch go in index order, one index at a time (sorted
 * inserts touch neighbouring leaf pages: the random-order (cell,
 * creation_time) index costs half as much per row).  The identity comes
 * from its sequence, the cell column from udc_cell_key() (see
 * generated_is_cell_key), any other generated column and the constraints
 * from the executor, as for COPY.
 *
 * Only used when the table is exactly what this path reproduces (see
 * direct_path_ok); anything else — another trigger, a rule, row level
 * security, a partitioned table, an index with an expression or predicate,
 * an exclusion or deferrable constraint, another column — goes through COPY.
 * ------------------------------------------------------------------------ */
#define DIRECT_CHUNK 1000

typedef struct DirectCols
{
	AttrNumber	person;
	AttrNumber	coordinate;
	AttrNumber	creation_time;
	AttrNumber	identity;		/* 0: none */
	Oid			identity_seq;
	AttrNumber	cell;			/* 0: none; else computed here */
	bool		has_generated;	/* generated columns the executor computes */
} DirectCols;

/* is e the function call fn(args...) of the given arity? */
static FuncExpr *
func_call(Node *e, Oid fn, int nargs)
{
	FuncExpr   *f = (FuncExpr *) e;

	if (e == NULL || !IsA(e, FuncExpr) || f->funcid != fn || list_length(f->args) != nargs)
		return NULL;
	return f;
}

static bool
is_var(Node *e, AttrNumber att)
{
	return e != NULL && IsA(e, Var) && ((Var *) e)->varattno == att;
}

/*
 * Is column att generated as udaconnect.cell_key(ST_Y(coordinate),
 * ST_X(coordinate))?  Then the direct path computes it with the function
 * behind cell_key (udc_cell_key) from the very doubles ST_Y and ST_X would
 * read back from the point: the same value, without evaluating the
 * expression per row.
 */
/* the PostGIS type "geometry" (in whatever schema PostGIS lives)? */
static bool
is_geometry_type(Oid typid, Oid *nsp)
{
	HeapTuple	tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	bool		yes = false;

	if (HeapTupleIsValid(tp))
	{
		Form_pg_type t = (Form_pg_type) GETSTRUCT(tp);

		yes = strcmp(NameStr(t->typname), "geometry") == 0;
		*nsp = t->typnamespace;
		ReleaseSysCache(tp);
	}
	return yes;
}

/* function schema.name(argtype), or InvalidOid (never an error) */
static Oid
lookup_function(Oid nsp, const char *name, int nargs, const Oid *argtypes)
{
	char	   *schema = get_namespace_name(nsp);

	if (schema == NULL)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(schema), makeString(pstrdup(name))), nargs, argtypes, true);
}

static bool
generated_is_cell_key(Relation rel, AttrNumber att, AttrNumber coordinate, Oid geomtype, Oid geomnsp)
{
	Oid			f8f8[2] = {FLOAT8OID, FLOAT8OID};
	Oid			cellfn = LookupFuncName(list_make2(makeString("udaconnect"), makeString("cell_key")), 2, f8f8, true);
	Oid			styfn = lookup_function(geomnsp, "st_y", 1, &geomtype);
	Oid			stxfn = lookup_function(geomnsp, "st_x", 1, &geomtype);
	FuncExpr   *f;
	FuncExpr   *y,
			   *x;

	if (!OidIsValid(cellfn) || !OidIsValid(styfn) || !OidIsValid(stxfn))
		return false;
	f = func_call(build_column_default(rel, att), cellfn, 2);
	if (f == NULL)
		return false;
	y = func_call(linitial(f->args), styfn, 1);
	x = func_call(lsecond(f->args), stxfn, 1);
	return y != NULL && x != NULL &&
		is_var(linitial(y->args), coordinate) && is_var(linitial(x->args), coordinate);
}

static bool
direct_path_ok(Relation rel, ResultRelInfo *rri, DirectCols *dc)
{
	TupleDesc	td = RelationGetDescr(rel);
	Oid			geomtype = InvalidOid;
	Oid			geomnsp = InvalidOid;
	int			i;

	memset(dc, 0, sizeof(*dc));
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
		rel->rd_rules != NULL)
		return false;

	/* triggers: only the person check, whose lock check_persons() takes */
	if (rel->trigdesc != NULL)
	{
		List	   *fname = list_make2(makeString("udaconnect"), makeString("location_check_person"));
		Oid			checkfn = LookupFuncName(fname, 0, NULL, true);

		for (i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *t = &rel->trigdesc->triggers[i];

			if (!TRIGGER_FOR_INSERT(t->tgtype) || t->tgenabled == TRIGGER_DISABLED)
				continue;
			if (t->tgfoid != checkfn || !OidIsValid(checkfn) ||
				TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_AFTER(t->tgtype))
				return false;
		}
	}

	/* columns: the three we supply, plus identity and generated ones */
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);
		const char *name = NameStr(a->attname);

		if (a->attisdropped)
			continue;
		if (strcmp(name, "person_id") == 0 && a->atttypid == INT4OID)
			dc->person = a->attnum;
		else if (strcmp(name, "coordinate") == 0 && is_geometry_type(a->atttypid, &geomnsp))
		{
			dc->coordinate = a->attnum;
			geomtype = a->atttypid;
		}
		else if (strcmp(name, "creation_time") == 0 && a->atttypid == TIMESTAMPTZOID)
			dc->creation_time = a->attnum;
		else if (a->attidentity != '\0' && a->atttypid == INT8OID && dc->identity == 0)
		{
			dc->identity = a->attnum;
			dc->identity_seq = getIdentitySequence(RelationGetRelid(rel), a->attnum, true);
			if (!OidIsValid(dc->identity_seq))
				return false;
		}
		else if (a->attgenerated == ATTRIBUTE_GENERATED_STORED)
		{
			if (strcmp(name, "cell") == 0 && a->atttypid == INT8OID && dc->cell == 0)
				dc->cell = a->attnum;	/* checked below */
			else
				dc->has_generated = true;
		}
		else
			return false;
	}
	if (dc->person == 0 || dc->coordinate == 0 || dc->creation_time == 0)
		return false;
	if (dc->cell != 0 && !generated_is_cell_key(rel, dc->cell, dc->coordinate, geomtype, geomnsp))
	{
		dc->cell = 0;
		dc->has_generated = true;
	}

	/* indexes: plain columns, checked immediately */
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];
		Relation	irel = rri->ri_IndexRelationDescs[i];

		if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL ||
			ii->ii_ExclusionOps != NULL ||
			(ii->ii_Unique && !irel->rd_index->indimmediate))
			return false;
	}
	return true;
}

/*
 * A point datum: PostGIS's own serialization of (0, 0) with the coordinates
 * patched in, when that layout has been verified on this batch's sample;
 * otherwise ST_SetSRID(ST_MakePoint()) for every row.
 */
typedef struct PointMaker
{
	bool		patch;
	Size		len;
	char	   *tmpl;
} PointMaker;

static void
point_maker_init(PointMaker *pm)
{
	struct varlena *s = (struct varlena *) PG_DETOAST_DATUM(udc_point_datum(2.5, 1.5));
	double		x,
				y;

	pm->patch = false;
	if (VARATT_IS_4B_U(s) && VARSIZE(s) == 32)
	{
		memcpy(&x, (char *) s + 16, 8);
		memcpy(&y, (char *) s + 24, 8);
		if (x == 1.5 && y == 2.5)
		{
			pm->patch = true;
			pm->len = 32;
			pm->tmpl = (char *) s;
		}
	}
}

static Datum
point_maker_make(PointMaker *pm, double lat, double lon)
{
	char	   *p;

	if (!pm->patch)
		return udc_point_datum(lat, lon);
	p = palloc(pm->len);
	memcpy(p, pm->tmpl, 16);
	memcpy(p + 16, &lon, 8);
	memcpy(p + 24, &lat, 8);
	return PointerGetDatum(p);
}

/*
 * The decoded columns of every inserted row, side by side (index entries are
 * formed from these: no per-row slot access), and each row's heap TID.
 */
typedef struct DirectRows
{
	int			natts;
	Datum	   *values;			/* [row * natts + attnum - 1] */
	bool	   *isnull;
	ItemPointerData *tids;
} DirectRows;

/* sorting one index's entries */
typedef struct IndexSortCtx
{
	int			nkeys;
	SortSupport ssup;
	Datum	   *keys;			/* [row * nkeys + k] */
	bool	   *nulls;
	ItemPointerData *tids;
} IndexSortCtx;

static int
cmp_index_entry(const void *a, const void *b, void *arg)
{
	IndexSortCtx *c = (IndexSortCtx *) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int			k;

	for (k = 0; k < c->nkeys; k++)
	{
		int			r = ApplySortComparator(c->keys[x * c->nkeys + k], c->nulls[x * c->nkeys + k],
											c->keys[y * c->nkeys + k], c->nulls[y * c->nkeys + k],
											&c->ssup[k]);

		if (r != 0)
			return r;
	}
	return ItemPointerCompare(&c->tids[x], &c->tids[y]);
}

/* insert the entries of rows r[0..n) into index j, in index order */
static void
insert_index_sorted(Relation rel, ResultRelInfo *rri, int j, DirectRows *r, int n)
{
	Relation	irel = rri->ri_IndexRelationDescs[j];
	IndexInfo  *ii = rri->ri_IndexRelationInfo[j];
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(irel);
	int			natts = ii->ii_NumIndexAttrs;
	int		   *order = palloc(sizeof(int) * n);
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i,
				k;

	for (i = 0; i < n; i++)
		order[i] = i;
	if (irel->rd_rel->relam == BTREE_AM_OID && n > 1)
	{
		IndexSortCtx c;

		c.nkeys = nkeys;
		c.tids = r->tids;
		c.ssup = palloc0(sizeof(SortSupportData) * nkeys);
		c.keys = palloc(sizeof(Datum) * n * nkeys);
		c.nulls = palloc(sizeof(bool) * n * nkeys);
		for (k = 0; k < nkeys; k++)
		{
			int16		opt = irel->rd_indoption[k];
			int			a = ii->ii_IndexAttrNumbers[k] - 1;

			c.ssup[k].ssup_cxt = CurrentMemoryContext;
			c.ssup[k].ssup_collation = irel->rd_indcollation[k];
			c.ssup[k].ssup_nulls_first = (opt & INDOPTION_NULLS_FIRST) != 0;
			c.ssup[k].ssup_attno = k + 1;
			PrepareSortSupportFromIndexRel(irel, (opt & INDOPTION_DESC) ? BTGreaterStrategyNumber : BTLessStrategyNumber,
										   &c.ssup[k]);
			for (i = 0; i < n; i++)
			{
				c.keys[i * nkeys + k] = r->values[i * r->natts + a];
				c.nulls[i * nkeys + k] = r->isnull[i * r->natts + a];
			}
		}
		qsort_arg(order, n, sizeof(int), cmp_index_entry, &c);
		pfree(c.keys);
		pfree(c.nulls);
		pfree(c.ssup);
	}
	for (i = 0; i < n; i++)
	{
		int			row = order[i];

		for (k = 0; k < natts; k++)
		{
			int			a = ii->ii_IndexAttrNumbers[k] - 1;

			values[k] = r->values[row * r->natts + a];
			isnull[k] = r->isnull[row * r->natts + a];
		}
		index_insert(irel, values, isnull, &r->tids[row], rel,
					 ii->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO, false, ii);
	}
	pfree(order);
}

/*
 * Insert rows[0..n) directly.  Returns the number inserted, or -1 if the
 * table is not one this path handles (nothing done: use COPY).
 */
static int64
insert_rows_direct(Relation rel, IngestRow *rows, int n)
{
	EState	   *estate;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	DirectCols	dc;
	TupleDesc	td;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	CommandId	cid;
	PointMaker	pm;
	DirectRows	r;
	int			i,
				j;

	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, rri, 1);
	ExecOpenIndices(rri, false);

	if (!direct_path_ok(rel, rri, &dc))
	{
		ExecCloseResultRelations(estate);
		ExecCloseRangeTableRelations(estate);
		FreeExecutorState(estate);
		return -1;
	}

	/* an unpinned copy of the descriptor: slots need no resource owner */
	td = CreateTupleDescCopy(RelationGetDescr(rel));
	point_maker_init(&pm);
	cid = GetCurrentCommandId(true);
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * n);
	r.natts = td->natts;
	r.values = palloc(sizeof(Datum) * n * r.natts);
	r.isnull = palloc(sizeof(bool) * n * r.natts);
	r.tids = palloc(sizeof(ItemPointerData) * n);
	for (i = 0; i < n; i += DIRECT_CHUNK)
	{
		int			m = Min(DIRECT_CHUNK, n - i);

		for (j = i; j < i + m; j++)
		{
			TupleTableSlot *slot = MakeSingleTupleTableSlot(td, &TTSOpsHeapTuple);

			slots[j] = slot;
			memset(slot->tts_isnull, true, sizeof(bool) * td->natts);
			slot->tts_values[dc.person - 1] = Int32GetDatum(rows[j].person_id);
			slot->tts_isnull[dc.person - 1] = false;
			slot->tts_values[dc.coordinate - 1] = point_maker_make(&pm, rows[j].latitude, rows[j].longitude);
			slot->tts_isnull[dc.coordinate - 1] = false;
			slot->tts_values[dc.creation_time - 1] = TimestampTzGetDatum(rows[j].creation_time);
			slot->tts_isnull[dc.creation_time - 1] = false;
			if (dc.cell != 0)
			{
				slot->tts_values[dc.cell - 1] = Int64GetDatum(udc_cell_key(rows[j].latitude, rows[j].longitude));
				slot->tts_isnull[dc.cell - 1] = false;
			}
			if (dc.identity != 0)
			{
				slot->tts_values[dc.identity - 1] = Int64GetDatum(nextval_internal(dc.identity_seq, false));
				slot->tts_isnull[dc.identity - 1] = false;
			}
			ExecStoreVirtualTuple(slot);
			if (dc.has_generated)
				ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
			if (rel->rd_att->constr)
				ExecConstraints(rri, slot, estate);
			ExecMaterializeSlot(slot);
			ResetPerTupleExprContext(estate);
		}
		table_multi_insert(rel, slots + i, m, cid, 0, bistate);
		for (j = i; j < i + m; j++)
		{
			slot_getallattrs(slots[j]);
			memcpy(&r.values[j * r.natts], slots[j]->tts_values, sizeof(Datum) * r.natts);
			memcpy(&r.isnull[j * r.natts], slots[j]->tts_isnull, sizeof(bool) * r.natts);
			r.tids[j] = slots[j]->tts_tid;
		}
	}
	FreeBulkInsertState(bistate);

	/* as ExecInsertIndexTuples(): skip indexes still being built */
	for (j = 0; j < rri->ri_NumIndices; j++)
		if (rri->ri_IndexRelationInfo[j]->ii_ReadyForInserts)
			insert_index_sorted(rel, rri, j, &r, n);

	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	return n;
}

/* Log which insert path the batches take, once per change of path. */
static void
note_insert_path(bool direct)
{
	static int	last = -1;

	if (last == (int) direct)
		return;
	last = (int) direct;
	if (direct)
		ereport(LOG,
				(errmsg("udaconnect ingest worker %d: rows go into udaconnect.location through the direct insert path",
						worker_index)));
	else
		ereport(LOG,
				(errmsg("udaconnect ingest worker %d: rows go into udaconnect.location through COPY",
						worker_index),
				 errdetail("The table has a trigger, rule, policy, partitioning, index or column the direct insert path does not reproduce (docs/ingest.md).")));
}

/*
 * Insert rows[0..n) in a subtransaction; if that fails because of the rows'
 * content (udc_ingest_error_blames_row), split in halves and retry, so that
 * only the rows that fail on their own are rejected.  Any other error
 * (deadlock, lock timeout, out of memory, cancel...) is re-thrown: the whole
 * batch is aborted and retried (recover_after_error), never rejected.
 */
static void
copy_rows_resilient(Relation rel, IngestRow *rows, int n,
					IngestReject *rejects, int *nrejects, uint64 *inserted)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile failure = NULL;

	if (n <= 0)
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		int64		c = insert_rows_direct(rel, rows, n);

		note_insert_path(c >= 0);
		if (c < 0)
			c = (int64) copy_rows(rel, rows, n);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		*inserted += c;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (!udc_ingest_error_blames_row(edata->sqlerrcode))
			ReThrowError(edata);
		failure = psprintf("insert failed: %s (SQLSTATE %s)", edata->message,
						   unpack_sql_state(edata->sqlerrcode));
		FreeErrorData(edata);
	}
	PG_END_TRY();

	if (failure == NULL)
		return;
	if (n == 1)
	{
		rejects[*nrejects].msg = rows[0].msg;
		rejects[*nrejects].reason = failure;
		(*nrejects)++;
		return;
	}
	copy_rows_resilient(rel, rows, n / 2, rejects, nrejects, inserted);
	copy_rows_resilient(rel, rows + n / 2, n - n / 2, rejects, nrejects, inserted);
}

/* Kafka keys are bytes: keep them readable when they are text */
static Datum
key_datum(const rd_kafka_message_t *m, bool *isnull)
{
	const char *k = (const char *) m->key;
	size_t		len = m->key_len;

	*isnull = (k == NULL);
	if (k == NULL)
		return (Datum) 0;
	if (len <= 1024 && memchr(k, '\0', len) == NULL &&
		pg_verify_mbstr(GetDatabaseEncoding(), k, (int) len, true))
		return PointerGetDatum(cstring_to_text_with_len(k, (int) len));
	else
	{
		StringInfoData s;
		size_t		i;

		initStringInfo(&s);
		appendStringInfoString(&s, "\\x");
		for (i = 0; i < len && i < 1024; i++)
			appendStringInfo(&s, "%02x", (unsigned char) k[i]);
		if (len > 1024)
			appendStringInfoString(&s, "...");
		return PointerGetDatum(cstring_to_text(s.data));
	}
}

static void
insert_rejects(IngestReject *rejects, int n)
{
	static SPIPlanPtr plan = NULL;
	int			i;

	if (n == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[6] = {TEXTOID, INT4OID, INT8OID, TEXTOID, BYTEAOID, TEXTOID};
		SPIPlanPtr	p = SPI_prepare("INSERT INTO udaconnect.ingest_rejects (topic, \"partition\", \"offset\", key, payload, reason) "
									"VALUES ($1, $2, $3, $4, $5, $6)", 6, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	for (i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = batch[rejects[i].msg];
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		bool		isnull;
		int			rc;

		values[0] = CStringGetTextDatum(consumer_topic);
		values[1] = Int32GetDatum(m->partition);
		values[2] = Int64GetDatum(m->offset);
		values[3] = key_datum(m, &isnull);
		if (isnull)
			nulls[3] = 'n';
		if (m->payload == NULL)
			nulls[4] = 'n';
		else
		{
			bytea	   *b = palloc(VARHDRSZ + m->len);

			SET_VARSIZE(b, VARHDRSZ + m->len);
			memcpy(VARDATA(b), m->payload, m->len);
			values[4] = PointerGetDatum(b);
		}
		values[5] = CStringGetTextDatum(rejects[i].reason);
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "inserting into udaconnect.ingest_rejects failed: %s", SPI_result_code_string(rc));
	}
}

static void
store_offset(int32 partition, int64 next_offset, int64 rows, int64 nrejects)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[5];
	int			rc;

	if (plan == NULL)
	{
		Oid			types[5] = {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID};
		SPIPlanPtr	p = SPI_prepare("INSERT INTO udaconnect.ingest_offset AS o "
									"(topic, \"partition\", next_offset, rows_ingested, rejects, last_batch_at) "
									"VALUES ($1, $2, $3, $4, $5, now()) "
									"ON CONFLICT (topic, \"partition\") DO UPDATE SET "
									"next_offset = excluded.next_offset, "
									"rows_ingested = o.rows_ingested + excluded.rows_ingested, "
									"rejects = o.rejects + excluded.rejects, "
									"last_batch_at = excluded.last_batch_at", 5, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	values[0] = CStringGetTextDatum(consumer_topic);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(next_offset);
	values[3] = Int64GetDatum(rows);
	values[4] = Int64GetDatum(nrejects);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "updating udaconnect.ingest_offset failed: %s", SPI_result_code_string(rc));
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * Which person ids of rows[] exist?  Marks the others as rejects and
 * compacts rows[].  One query per batch.  rows[] is sorted by person_id
 * (process_batch), so its distinct ids come out sorted.
 */
static int
check_persons(IngestRow *rows, int n, IngestReject *rejects, int *nrejects)
{
	int32	   *ids;
	int			nids = 0;
	int32	   *found;
	int			nfound = 0;
	Datum	   *elems;
	ArrayType  *arr;
	Oid			types[1] = {INT4ARRAYOID};
	Datum		values[1];
	int			rc;
	int			i,
				kept = 0;
	static SPIPlanPtr plan = NULL;

	if (n == 0)
		return 0;
	ids = palloc(sizeof(int32) * n);
	for (i = 0; i < n; i++)
		if (nids == 0 || ids[nids - 1] != rows[i].person_id)
			ids[nids++] = rows[i].person_id;
	elems = palloc(sizeof(Datum) * nids);
	for (i = 0; i < nids; i++)
		elems[i] = Int32GetDatum(ids[i]);
	arr = construct_array(elems, nids, INT4OID, sizeof(int32), true, TYPALIGN_INT);

	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("SELECT id FROM udaconnect.person WHERE id = ANY ($1) FOR KEY SHARE", 1, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	values[0] = PointerGetDatum(arr);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.person failed: %s", SPI_result_code_string(rc));
	found = palloc(sizeof(int32) * (SPI_processed + 1));
	for (i = 0; i < (int) SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			found[nfound++] = DatumGetInt32(d);
	}
	qsort(found, nfound, sizeof(int32), cmp_int32);
	for (i = 0; i < n; i++)
	{
		if (bsearch(&rows[i].person_id, found, nfound, sizeof(int32), cmp_int32) != NULL)
			rows[kept++] = rows[i];
		else
		{
			rejects[*nrejects].msg = rows[i].msg;
			rejects[*nrejects].reason = psprintf("person %d does not exist", rows[i].person_id);
			(*nrejects)++;
		}
	}
	return kept;
}

static int
cmp_row(const void *a, const void *b)
{
	const IngestRow *x = (const IngestRow *) a;
	const IngestRow *y = (const IngestRow *) b;

	if (x->person_id != y->person_id)
		return x->person_id < y->person_id ? -1 : 1;
	if (x->creation_time != y->creation_time)
		return x->creation_time < y->creation_time ? -1 : 1;
	return (x->msg > y->msg) - (x->msg < y->msg);
}

typedef struct BatchPart
{
	int32		partition;
	int64		stored;			/* offset stored before this batch, -1 none */
	int64		next;			/* offset after the last message consumed */
	int64		rows;
	int64		rejects;
	bool		any;			/* any new message of this partition */
} BatchPart;

static BatchPart *
batch_part(BatchPart *bp, int *nbp, int32 partition)
{
	int			i;

	for (i = 0; i < *nbp; i++)
		if (bp[i].partition == partition)
			return &bp[i];
	bp[*nbp].partition = partition;
	bp[*nbp].stored = -2;
	bp[*nbp].next = -1;
	bp[*nbp].rows = 0;
	bp[*nbp].rejects = 0;
	bp[*nbp].any = false;
	return &bp[(*nbp)++];
}

/*
 * Ingest batch[0..n) in one transaction.  Returns false if the batch was not
 * applied (paused, extension missing): the caller must re-seek.
 */
static bool
process_batch(int n)
{
	MemoryContext oldcxt;
	ProtobufCAllocator alloc;
	IngestRow  *rows;
	IngestReject *rejects;
	BatchPart  *bp;
	int			nbp = 0;
	int			nrows = 0;
	int			nrejects = 0;
	int			i;
	bool		applied = true;
	uint64		inserted = 0;
	int64		now_usec;
	Oid			locrel;

	begin_tx("udaconnect ingest: batch");
	oldcxt = MemoryContextSwitchTo(batch_cxt);
	MemoryContextReset(batch_cxt);

	if (!extension_ready())
	{
		applied = false;
		goto done;
	}
	if (read_paused(true))
	{
		paused = true;
		applied = false;
		goto done;
	}

	udc_ingest_pb_allocator(&alloc, batch_cxt);
	rows = palloc(sizeof(IngestRow) * n);
	rejects = palloc(sizeof(IngestReject) * n);
	bp = palloc(sizeof(BatchPart) * n);
	now_usec = GetCurrentTimestamp() + UDC_UNIX_TO_PG_EPOCH_USEC;

	for (i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = batch[i];
		BatchPart  *p = batch_part(bp, &nbp, m->partition);
		char	   *reason;

		/* lock this partition's offset row: a concurrent consumer waits */
		if (p->stored == -2)
		{
			MemoryContextSwitchTo(oldcxt);
			p->stored = stored_offset_of(m->partition, true);
			MemoryContextSwitchTo(batch_cxt);
			p->next = p->stored;
		}
		/* already ingested (re-delivery after a re-seek): skip */
		if (p->stored >= 0 && m->offset < p->stored)
			continue;
		if (m->offset + 1 > p->next)
			p->next = m->offset + 1;
		p->any = true;
		reason = udc_ingest_validate_message(m, &alloc, now_usec, &rows[nrows]);
		if (reason == NULL)
			rows[nrows++].msg = i;
		else
		{
			rejects[nrejects].msg = i;
			rejects[nrejects].reason = reason;
			nrejects++;
		}
	}

	/*
	 * Rows in (person_id, creation_time) order: the heap keeps a person's
	 * rows of a batch together, and check_persons() gets its ids sorted.
	 */
	qsort(rows, nrows, sizeof(IngestRow), cmp_row);
	nrows = check_persons(rows, nrows, rejects, &nrejects);
	if (nrows > 0)
	{
		Relation	rel;

		locrel = get_relname_relid("location", get_namespace_oid("udaconnect", false));
		if (!OidIsValid(locrel))
			elog(ERROR, "table udaconnect.location does not exist");
		rel = table_open(locrel, RowExclusiveLock);
		copy_rows_resilient(rel, rows, nrows, rejects, &nrejects, &inserted);
		table_close(rel, NoLock);
	}
	MemoryContextSwitchTo(oldcxt);
	insert_rejects(rejects, nrejects);

	/* per-partition counts */
	for (i = 0; i < nrejects; i++)
		batch_part(bp, &nbp, batch[rejects[i].msg]->partition)->rejects++;
	for (i = 0; i < nbp; i++)
	{
		PartState  *ps;

		if (!bp[i].any)
			continue;
		ps = find_part(bp[i].partition);
		if (ps)
			ps->next_offset = bp[i].next;
	}
	/* rows per partition: every accepted message minus the rejected ones */
	{
		int64	   *accepted = palloc0(sizeof(int64) * nbp);
		int			j;

		for (i = 0; i < n; i++)
		{
			BatchPart  *p = NULL;

			for (j = 0; j < nbp; j++)
				if (bp[j].partition == batch[i]->partition)
				{
					p = &bp[j];
					accepted[j] += (p->stored < 0 || batch[i]->offset >= p->stored) ? 1 : 0;
					break;
				}
		}
		for (j = 0; j < nbp; j++)
		{
			if (!bp[j].any)
				continue;
			store_offset(bp[j].partition, bp[j].next, accepted[j] - bp[j].rejects, bp[j].rejects);
		}
	}

done:
	MemoryContextSwitchTo(oldcxt);
	end_tx();
	if (!applied)
		set_state(paused ? "paused" : "waiting for CREATE EXTENSION");
	MemoryContextReset(batch_cxt);
	if (applied && nrejects > 0)
		ereport(DEBUG1,
				(errmsg_internal("udaconnect ingest worker %d: batch of %d messages: %llu rows, %d rejects",
								 worker_index, n, (unsigned long long) inserted, nrejects)));
	return applied;
}

/*
 * Collect up to udaconnect.ingest_batch_size messages for at most
 * udaconnect.ingest_batch_timeout, waking up at least every 100 ms to serve
 * interrupts.  Error events are handled here and not returned.
 */
static int
collect_batch(void)
{
	int			n = 0;
	int			size = udc_ingest_batch_size;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), udc_ingest_batch_timeout);

	if (batch_alloc < size)
	{
		if (batch)
			pfree(batch);
		batch = MemoryContextAlloc(TopMemoryContext, sizeof(rd_kafka_message_t *) * size);
		batch_alloc = size;
	}
	for (;;)
	{
		long		remaining = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		ssize_t		got;
		int			i,
					w;

		if (remaining < 0)
			remaining = 0;
		got = rd_kafka_consume_batch_queue(rkq, (int) Min(remaining, 100), batch + n, size - n);
		if (got < 0)
		{
			report_problem(WARNING, "consuming from topic \"%s\" failed: %s",
						   consumer_topic, rd_kafka_err2str(rd_kafka_last_error()));
			break;
		}
		/*
		 * Everything in batch[0, n + got) is held from here on: handling an
		 * event below can raise an error (a transaction, an interrupt), and
		 * consumer_destroy() must then find every message still alive.
		 * Slots moved or destroyed are set to NULL first.
		 */
		batch_held = n + (int) got;
		w = n;
		for (i = 0; i < got; i++)
		{
			rd_kafka_message_t *m = batch[n + i];
			rd_kafka_resp_err_t err = m->err;
			int32		partition = m->partition;
			char		why[300];

			batch[n + i] = NULL;
			if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				batch[w++] = m;
				continue;
			}
			/* an event, not a message: done with it before acting on it */
			snprintf(why, sizeof(why), "%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			if (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
				err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
				handle_offset_reset(partition, why);
			else if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				report_problem(WARNING, "topic \"%s\" partition %d: %s",
							   consumer_topic, partition, why);
				if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
					err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
					err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
				{
					need_reassign = true;
					backoff();
				}
			}
		}
		n = w;
		batch_held = n;
		if (n >= size || need_reassign || InterruptPending || ConfigReloadPending ||
			GetCurrentTimestamp() >= deadline)
			break;
	}
	return n;
}

/* ------------------------------------------------------------------------
 * main loop
 * ------------------------------------------------------------------------ */

/* One turn of the main loop: settings, assignment, at most one batch. */
static void
worker_turn(void *arg)
{
	int			n;

	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		apply_commit_mode();
		config_broken = false;
		if (consumer_settings_changed())
		{
			ereport(LOG, (errmsg("udaconnect ingest worker %d: Kafka settings changed, reconnecting", worker_index)));
			consumer_destroy();
		}
		need_reassign = true;
		next_metadata_at = 0;
		backoff_ms = 0;
	}
	drain_kafka_log();

	if (RecoveryInProgress())
	{
		consumer_destroy();
		set_state("idle: server in recovery");
		wait_ms(1000);
		return;
	}
	if (udc_kafka_brokers == NULL || udc_kafka_brokers[0] == '\0')
	{
		consumer_destroy();
		set_state("idle: udaconnect.kafka_brokers is empty");
		wait_ms(10000);
		return;
	}
	if (config_broken)
	{
		wait_ms(10000);
		return;
	}
	if (rk == NULL && !consumer_create())
	{
		set_state("error: bad Kafka settings");
		config_broken = true;
		return;
	}
	if (!refresh_assignment())
	{
		/* paused, no extension, broker or topic unavailable: retry later */
		drain_kafka_log();
		wait_ms(Max(Min(backoff_ms, 30000), 500));
		return;
	}
	if (!assigned)
	{
		wait_ms(1000);
		return;
	}

	n = collect_batch();
	if (n > 0)
	{
		bool		applied = process_batch(n);

		release_batch();
		if (!applied)
		{
			unassign();
			need_reassign = true;
			next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 500);
		}
		else
		{
			udc_ingest_retry_reset();
			last_error_text[0] = '\0';
		}
	}
	publish_watermarks(false);
}

/*
 * An ERROR escaped a turn (udc_ingest_run_guarded has aborted its
 * transaction: nothing of the batch in progress is committed, its rows, its
 * rejects and its offsets alike).  Errors that are a message's fault never
 * get here (they reject that message inside the batch), so this one is
 * transient or a setup problem: consume the same messages again from the
 * offsets stored in the database, as after a crash, after a back-off, and
 * show the error in ingest_status.last_error and (rate-limited) in the log.
 */
static void
recover_after_error(const UdcIngestError *err)
{
	int			delay = udc_ingest_retry_delay_ms();

	release_batch();
	MemoryContextReset(batch_cxt);
	unassign();
	need_reassign = true;
	/* refresh_assignment() waits until then before it seeks again */
	backoff_ms = delay;
	next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	set_state("retrying after a database error");
	report_problem(WARNING, "%s (SQLSTATE %s): batch not committed, consumed again from the stored offsets in %d ms",
				   err->message, unpack_sql_state(err->sqlerrcode), delay);
}

void
udc_ingest_worker_main(Datum main_arg)
{
	worker_index = DatumGetInt32(main_arg);
	if (worker_index < 0 || worker_index >= UDC_MAX_WORKERS)
		elog(FATAL, "udaconnect ingest worker number %d out of range", worker_index);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Every batch allocates and frees the same few megabytes (librdkafka's
	 * fetch buffers, the batch's memory contexts).  With glibc's defaults
	 * large blocks are mmap'ed and trimmed memory is returned to the kernel,
	 * so each batch page-faults its memory in again (~10 % of the worker's
	 * CPU; librdkafka's fetch buffers alone ~5 %).  Keep freed memory in the process instead: the peak is bounded
	 * by the batch size and the prefetch limit.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
	/* librdkafka's threads too (a thread arena's heaps are unmapped when empty) */
	mallopt(M_ARENA_MAX, 1);

	BackgroundWorkerInitializeConnection(udc_database, NULL, 0);
	pgstat_report_appname(psprintf("udaconnect ingest worker %d", worker_index));

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "udaconnect ingest batch", ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&copy_src);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		copy_src.data = repalloc(copy_src.data, 1024);
		copy_src.maxlen = 1024;
		MemoryContextSwitchTo(old);
	}
	on_proc_exit(consumer_exit_cb, (Datum) 0);
	apply_commit_mode();
	set_state("starting");
	ereport(LOG, (errmsg("udaconnect ingest worker %d started", worker_index)));

	for (;;)
	{
		UdcIngestError err;

		if (!udc_ingest_run_guarded(worker_turn, NULL, &err))
			recover_after_error(&err);
	}
}
