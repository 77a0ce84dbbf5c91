/*
 * ingest_consumer.c — the ingest worker's Kafka side: librdkafka's
 * configuration and handle, the assignment of this worker's partitions
 * (p % udaconnect.ingest_workers == its number) at the offsets stored in the
 * database, the events it reports (offset reset, unknown topic), collecting
 * a batch of messages and holding them until the batch is done.
 *
 * librdkafka runs its own threads; they never touch PostgreSQL: their log
 * and error callbacks only append to the mutex-protected queue below, which
 * the main loop drains into the server log (udc_ingest_drain_kafka_log).
 * That queue is the only state here outside IngestWorker, because it is the
 * only state another thread writes.  This file must not decode, insert or
 * commit messages (ingest_batch.c does) nor call the batch or the main loop;
 * what it knows of the database goes through ingest_offsets.c.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/timestamp.h"

#include "ingest_int.h"

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

/* main thread only: the queued librdkafka lines into the server log */
void
udc_ingest_drain_kafka_log(IngestWorker *w)
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
							w->index, dropped)));
		if (!have)
			break;
		e.fac[sizeof(e.fac) - 1] = '\0';
		e.msg[sizeof(e.msg) - 1] = '\0';
		if (e.level <= 4)
			udc_ingest_report_problem(w, e.level <= 3 ? WARNING : LOG, "librdkafka %s: %s", e.fac, e.msg);
		else
			ereport(DEBUG1,
					(errmsg_internal("udaconnect ingest worker %d: librdkafka %s: %s",
									 w->index, e.fac, e.msg)));
	}
}

/* ------------------------------------------------------------------------
 * the consumer
 * ------------------------------------------------------------------------ */

/* the delay of the next retry of the metadata: 500 ms doubling up to 30 s */
static int
next_backoff_ms(IngestWorker *w)
{
	return w->backoff_ms == 0 ? 500 : Min(w->backoff_ms * 2, 30000);
}

static void
backoff(IngestWorker *w)
{
	w->backoff_ms = next_backoff_ms(w);
	w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), w->backoff_ms);
}

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
void
udc_ingest_release_batch(IngestWorker *w)
{
	int			i;

	for (i = 0; i < w->batch_held; i++)
		if (w->batch[i] != NULL)
			rd_kafka_message_destroy(w->batch[i]);
	w->batch_held = 0;
}

/*
 * Stop librdkafka.  rd_kafka_destroy() waits for every message handed to us
 * to be destroyed, so the messages still held in batch[] (an error or a
 * shutdown in the middle of a batch) are released first, or it hangs.
 */
void
udc_ingest_consumer_destroy(IngestWorker *w)
{
	if (w->rk == NULL)
		return;
	udc_ingest_release_batch(w);
	if (w->rkq)
		rd_kafka_queue_destroy(w->rkq);
	if (w->rkt)
		rd_kafka_topic_destroy(w->rkt);
	rd_kafka_destroy_flags(w->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	w->rk = NULL;
	w->rkt = NULL;
	w->rkq = NULL;
	w->assigned = false;
	w->need_reassign = true;
	w->nparts = 0;
	w->topic_partitions = -1;
	udc_ingest_clear_partition_slots(w);
	udc_ingest_drain_kafka_log(w);
}

static bool
conf_set_checked(IngestWorker *w, rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		udc_ingest_report_problem(w, WARNING, "librdkafka rejected \"%s\" = \"%s\": %s", key, value, errstr);
		return false;
	}
	return true;
}

/* the consumer's configuration from the settings, or NULL (reported) */
static rd_kafka_conf_t *
consumer_conf(IngestWorker *w)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		client_id[64];
	char	   *err = NULL;

	snprintf(client_id, sizeof(client_id), "udaconnect-ingest-%d", w->index);
	rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
	rd_kafka_conf_set_error_cb(conf, kafka_error_cb);

	/*
	 * Defaults the user may override: bounded prefetch (librdkafka's default
	 * is 64 MB per partition) and short fetch waits (a batch is collected for
	 * at most udaconnect.ingest_batch_timeout, 100 ms by default; brokers that
	 * hold a fetch for the default 500 ms would dominate the latency).
	 */
	if (!conf_set_checked(w, conf, "queued.max.messages.kbytes", "16384") ||
		!conf_set_checked(w, conf, "fetch.wait.max.ms", "50"))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	/* the user's pass-through settings next: ours below win */
	if (!udc_parse_kafka_options(udc_kafka_options, set_one_option, conf, &err))
	{
		udc_ingest_report_problem(w, WARNING, "invalid udaconnect.kafka_options: %s", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (!conf_set_checked(w, conf, "bootstrap.servers", udc_kafka_brokers) ||
		!conf_set_checked(w, conf, "group.id", udc_kafka_group) ||
		!conf_set_checked(w, conf, "client.id", client_id) ||
		!conf_set_checked(w, conf, "enable.auto.commit", "false") ||
		!conf_set_checked(w, conf, "enable.auto.offset.store", "false") ||
		!conf_set_checked(w, conf, "enable.partition.eof", "false") ||
		!conf_set_checked(w, conf, "auto.offset.reset", "error"))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

/* remember the settings the consumer was made with */
static void
keep_setting(char **kept, const char *value)
{
	if (*kept)
		pfree(*kept);
	*kept = MemoryContextStrdup(TopMemoryContext, value);
}

bool
udc_ingest_consumer_create(IngestWorker *w)
{
	rd_kafka_conf_t *conf = consumer_conf(w);
	char		errstr[512];
	sigset_t	all,
				old;

	if (conf == NULL)
		return false;

	/*
	 * librdkafka's threads inherit our signal mask: block everything while
	 * they are created so PostgreSQL's signal handlers only ever run in the
	 * main thread.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (w->rk == NULL)
	{
		/* conf is freed by rd_kafka_new only on success */
		rd_kafka_conf_destroy(conf);
		udc_ingest_report_problem(w, WARNING, "cannot create the Kafka consumer: %s", errstr);
		return false;
	}
	w->rkt = rd_kafka_topic_new(w->rk, udc_kafka_topic, NULL);
	if (w->rkt == NULL)
	{
		udc_ingest_report_problem(w, WARNING, "cannot create a handle for topic \"%s\": %s",
								  udc_kafka_topic, rd_kafka_err2str(rd_kafka_last_error()));
		rd_kafka_destroy(w->rk);
		w->rk = NULL;
		return false;
	}
	rd_kafka_poll_set_consumer(w->rk);
	w->rkq = rd_kafka_queue_get_consumer(w->rk);
	if (w->rkq == NULL)
	{
		udc_ingest_report_problem(w, WARNING, "cannot get the Kafka consumer queue");
		udc_ingest_consumer_destroy(w);
		return false;
	}

	keep_setting(&w->consumer_brokers, udc_kafka_brokers);
	keep_setting(&w->consumer_topic, udc_kafka_topic);
	keep_setting(&w->consumer_group, udc_kafka_group);
	keep_setting(&w->consumer_options, udc_kafka_options ? udc_kafka_options : "");
	w->assigned = false;
	w->need_reassign = true;
	w->next_metadata_at = 0;
	ereport(LOG,
			(errmsg("udaconnect ingest worker %d: consuming topic \"%s\" from %s",
					w->index, udc_kafka_topic, udc_kafka_brokers)));
	return true;
}

bool
udc_ingest_consumer_settings_changed(IngestWorker *w)
{
	if (w->rk == NULL)
		return false;
	return strcmp(w->consumer_brokers, udc_kafka_brokers) != 0 ||
		strcmp(w->consumer_topic, udc_kafka_topic) != 0 ||
		strcmp(w->consumer_group, udc_kafka_group) != 0 ||
		strcmp(w->consumer_options, udc_kafka_options ? udc_kafka_options : "") != 0;
}

/* ------------------------------------------------------------------------
 * partition assignment
 * ------------------------------------------------------------------------ */
void
udc_ingest_unassign(IngestWorker *w)
{
	if (w->rk != NULL && w->assigned)
		rd_kafka_assign(w->rk, NULL);
	w->assigned = false;
}

/*
 * The topic's partition count from the metadata (500 ms at most).  0: the
 * periodic check failed while consuming (keep going); -1: the broker or
 * topic is unavailable (reported, retry scheduled with backoff).
 */
static int
topic_partition_count(IngestWorker *w)
{
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_resp_err_t err;
	int			npartitions;

	err = rd_kafka_metadata(w->rk, 0, w->rkt, &md, 500);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR && w->assigned && !w->need_reassign)
	{
		/*
		 * Periodic check while consuming: keep going and try again later (a
		 * broker that is really down shows through librdkafka's errors).
		 */
		ereport(DEBUG1,
				(errmsg_internal("udaconnect ingest worker %d: metadata refresh failed: %s",
								 w->index, rd_kafka_err2str(err))));
		w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
		return 0;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		udc_ingest_set_state(w, "waiting for Kafka");
		udc_ingest_report_problem(w, WARNING, "cannot read the metadata of topic \"%s\" from %s: %s (retrying in %d ms)",
								  w->consumer_topic, w->consumer_brokers, rd_kafka_err2str(err),
								  next_backoff_ms(w));
		backoff(w);
		return -1;
	}
	if (md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
		md->topics[0].partition_cnt <= 0)
	{
		rd_kafka_resp_err_t terr = md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : md->topics[0].err;

		rd_kafka_metadata_destroy(md);
		udc_ingest_set_state(w, "waiting for topic");
		udc_ingest_report_problem(w, WARNING, "topic \"%s\" is not available on %s: %s (retrying in %d ms)",
								  w->consumer_topic, w->consumer_brokers,
								  terr == RD_KAFKA_RESP_ERR_NO_ERROR ? "no partitions" : rd_kafka_err2str(terr),
								  next_backoff_ms(w));
		backoff(w);
		return -1;
	}
	npartitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return npartitions;
}

/* our share of the topic's partitions, offsets unknown */
static void
choose_partitions(IngestWorker *w, int npartitions)
{
	int			i;

	if (w->parts)
		pfree(w->parts);
	w->parts = MemoryContextAlloc(TopMemoryContext, sizeof(PartState) * Max(npartitions, 1));
	w->nparts = 0;
	for (i = 0; i < npartitions; i++)
	{
		if (i % udc_ingest_workers == w->index)
		{
			w->parts[w->nparts].partition = i;
			w->parts[w->nparts].next_offset = -1;
			w->nparts++;
		}
	}
	w->topic_partitions = npartitions;
}

/* hand our partitions to librdkafka at their stored offsets */
static bool
assign_partitions(IngestWorker *w)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	int			i;

	list = rd_kafka_topic_partition_list_new(w->nparts);
	for (i = 0; i < w->nparts; i++)
	{
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(list, w->consumer_topic, w->parts[i].partition);

		tp->offset = w->parts[i].next_offset >= 0 ? w->parts[i].next_offset : RD_KAFKA_OFFSET_BEGINNING;
	}
	err = rd_kafka_assign(w->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		udc_ingest_report_problem(w, WARNING, "cannot assign the partitions of topic \"%s\": %s",
								  w->consumer_topic, rd_kafka_err2str(err));
		backoff(w);
		return false;
	}
	w->assigned = true;
	w->need_reassign = false;
	udc_ingest_set_state(w, "consuming");
	ereport(DEBUG1,
			(errmsg_internal("udaconnect ingest worker %d: assigned %d of %d partitions of \"%s\"",
							 w->index, w->nparts, w->topic_partitions, w->consumer_topic)));
	return true;
}

/*
 * Learn the topic's partitions (metadata, 500 ms at most) and assign ours,
 * starting from the offsets stored in the database.  Returns false (after
 * scheduling a retry with backoff) when the broker or topic is unavailable
 * or the extension does not exist.
 */
bool
udc_ingest_refresh_assignment(IngestWorker *w)
{
	int			npartitions;

	if (!w->need_reassign && GetCurrentTimestamp() < w->next_metadata_at)
		return true;
	if (w->need_reassign && GetCurrentTimestamp() < w->next_metadata_at && w->backoff_ms > 0)
		return false;

	npartitions = topic_partition_count(w);
	if (npartitions == 0)
		return true;
	if (npartitions < 0)
		return false;
	w->backoff_ms = 0;
	w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);

	if (!w->need_reassign && npartitions == w->topic_partitions)
		return true;
	choose_partitions(w, npartitions);

	/* offsets and pause state from the database */
	if (!udc_ingest_load_offsets(w))
	{
		udc_ingest_set_state(w, "waiting for CREATE EXTENSION");
		udc_ingest_unassign(w);
		w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 2000);
		return false;
	}
	udc_ingest_publish_partitions(w);
	if (w->paused)
	{
		udc_ingest_unassign(w);
		udc_ingest_set_state(w, "paused");
		udc_ingest_publish_watermarks(w, true);
		w->need_reassign = true;
		w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 500);
		return false;
	}
	if (w->nparts == 0)
	{
		udc_ingest_unassign(w);
		udc_ingest_set_state(w, "idle: no partition for this worker");
		w->need_reassign = false;
		return true;
	}
	return assign_partitions(w);
}

/*
 * A partition's stored offset is no longer on the broker (topic recreated,
 * retention): restart it from the earliest available offset, loudly.
 */
static void
handle_offset_reset(IngestWorker *w, int32 partition, const char *why)
{
	int64_t		lo = -1,
				hi = -1;
	rd_kafka_resp_err_t err;

	err = rd_kafka_query_watermark_offsets(w->rk, w->consumer_topic, partition, &lo, &hi, 1000);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || lo < 0)
	{
		udc_ingest_report_problem(w, WARNING, "partition %d of topic \"%s\": %s; cannot read its watermarks: %s",
								  partition, w->consumer_topic, why, rd_kafka_err2str(err));
		w->need_reassign = true;
		backoff(w);
		return;
	}
	udc_ingest_reset_offset(w, partition, lo, hi, why);
	w->need_reassign = true;
}

/* an event, not a message: m is destroyed first, then acted upon */
static void
handle_event(IngestWorker *w, rd_kafka_message_t *m)
{
	rd_kafka_resp_err_t err = m->err;
	int32		partition = m->partition;
	char		why[300];

	snprintf(why, sizeof(why), "%s", rd_kafka_message_errstr(m));
	rd_kafka_message_destroy(m);
	if (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
		err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
		handle_offset_reset(w, partition, why);
	else if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
	{
		udc_ingest_report_problem(w, WARNING, "topic \"%s\" partition %d: %s",
								  w->consumer_topic, partition, why);
		if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
		{
			w->need_reassign = true;
			backoff(w);
		}
	}
}

/*
 * Collect up to udaconnect.ingest_batch_size messages for at most
 * udaconnect.ingest_batch_timeout, waking up at least every 100 ms to serve
 * interrupts.  Error events are handled here and not returned.
 *
 * The worker waits only for udaconnect.ingest_batch_min messages (as a
 * Kafka fetch waits for fetch.min.bytes), by default the first one; after
 * them it takes what is already fetched and stops when nothing more is
 * ready.  Under a steady stream a batch is then what arrived while the
 * previous one was written, so its size follows the load: a backlog still
 * fills batches to the limit, while a worker that keeps up commits each
 * point a batch's writing time after it arrived instead of waiting out the
 * timeout (at 50k points/s, 100 ms of waiting per batch was most of the
 * produce-to-row latency).
 */
int
udc_ingest_collect_batch(IngestWorker *w)
{
	int			n = 0;
	int			size = udc_ingest_batch_size;
	int			min = Min(udc_ingest_batch_min, size);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), udc_ingest_batch_timeout);

	if (w->batch_alloc < size)
	{
		if (w->batch)
			pfree(w->batch);
		w->batch = MemoryContextAlloc(TopMemoryContext, sizeof(rd_kafka_message_t *) * size);
		w->batch_alloc = size;
	}
	for (;;)
	{
		long		remaining = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		ssize_t		got;
		int			i,
					kept;

		if (remaining < 0)
			remaining = 0;
		/* a batch call waits for all it asks for: the minimum, then no more */
		if (n < min)
			got = rd_kafka_consume_batch_queue(w->rkq, (int) Min(remaining, 100), w->batch + n, min - n);
		else
			got = rd_kafka_consume_batch_queue(w->rkq, 0, w->batch + n, size - n);
		if (got < 0)
		{
			udc_ingest_report_problem(w, WARNING, "consuming from topic \"%s\" failed: %s",
									  w->consumer_topic, rd_kafka_err2str(rd_kafka_last_error()));
			break;
		}

		/*
		 * Everything in batch[0, n + got) is held from here on: handling an
		 * event below can raise an error (a transaction, an interrupt), and
		 * udc_ingest_consumer_destroy() must then find every message still
		 * alive.  Slots moved or destroyed are set to NULL first.
		 */
		w->batch_held = n + (int) got;
		kept = n;
		for (i = 0; i < got; i++)
		{
			rd_kafka_message_t *m = w->batch[n + i];

			w->batch[n + i] = NULL;
			if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
				w->batch[kept++] = m;
			else
				handle_event(w, m);
		}
		n = kept;
		w->batch_held = n;
		if (n >= size || w->need_reassign || InterruptPending || ConfigReloadPending ||
			GetCurrentTimestamp() >= deadline)
			break;
		/* caught up: nothing more was ready */
		if (n >= min && got == 0)
			break;
	}
	return n;
}
