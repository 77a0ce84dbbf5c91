/*
 * kafka.c — udaconnect-grpcd's two Kafka producers and what waits for them.
 *
 * What this file holds: the producers (idempotent, acks=all, same topic and
 * key), one for unary calls, whose callers wait for each acknowledgement
 * (short linger), one for client streams, which are answered once at the
 * end (longer linger: fewer, larger produce requests).  One RPC's points
 * always go through one producer, so they stay in order per person; points
 * of calls that overlap in time have no order to keep (docs/grpc.md).  Also
 * producing one location (never blocking: a full queue is an error the
 * caller handles), the delivery reports that answer calls, librdkafka's
 * errors and log lines, the poll threads, and the deadline sweeper: the
 * calls waiting for delivery reports, answered UNAVAILABLE shortly before
 * their deadline when the broker has not acknowledged.
 *
 * What it must not do: know what a method answers.  When the last delivery
 * report of a call is in, ingest_complete() hands the call to c->complete;
 * the sweeper takes a stream's message from c->expired; the stream
 * producer's poll thread runs the hook kafka_poll_start() was given.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

typedef struct producer
{
	const char *name;			/* for log lines */
	const char *client_id;
	const char *thread_name;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	pthread_t	poll_thread;
	void		(*after_poll) (void);	/* the poll thread's other duty */
} producer;

static producer unary_producer = {
	.name = "unary", .client_id = "udaconnect-grpcd", .thread_name = "grpcd-kafka"
};
static producer stream_producer = {
	.name = "stream", .client_id = "udaconnect-grpcd-stream", .thread_name = "grpcd-kafka-s"
};
static atomic_int kafka_fatal;	/* producer unusable */
static atomic_int poll_stop;

/* ------------------------------------------------------------------------
 * Deadline sweeper: calls waiting for delivery reports
 * ------------------------------------------------------------------------ */
static pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
static call *sweep_head;

/*
 * Watch call c until its delivery reports are in.  answer_by_ms may be set
 * already (a stream cut at its deadline while waiting for room in the queue):
 * then that one stands, rather than one computed from the little time left.
 */
void
sweep_add(call *c)
{
	if (c->deadline_ms == INT64_MAX)
		return;
	if (c->answer_by_ms == 0)
		c->answer_by_ms = call_answer_by(c);
	pthread_mutex_lock(&sweep_mu);
	c->sprev = NULL;
	c->snext = sweep_head;
	if (sweep_head)
		sweep_head->sprev = c;
	sweep_head = c;
	c->in_sweep = true;
	pthread_mutex_unlock(&sweep_mu);
}

static void
sweep_unlink_locked(call *c)
{
	if (c->sprev)
		c->sprev->snext = c->snext;
	else
		sweep_head = c->snext;
	if (c->snext)
		c->snext->sprev = c->sprev;
	c->sprev = c->snext = NULL;
	c->in_sweep = false;
}

void
sweep_remove(call *c)
{
	pthread_mutex_lock(&sweep_mu);
	if (c->in_sweep)
		sweep_unlink_locked(c);
	pthread_mutex_unlock(&sweep_mu);
}

/* the unary producer's poll thread, after each rd_kafka_poll() */
static void
sweep_expired(void)
{
	static long expired_calls;
	static int64_t last_log_ms;
	call	   *batch[64];
	int			n = 0;
	int64_t		now = now_ms();

	pthread_mutex_lock(&sweep_mu);
	for (call *c = sweep_head, *next; c != NULL && n < 64; c = next)
	{
		next = c->snext;
		if (c->answer_by_ms <= now)
		{
			sweep_unlink_locked(c);
			atomic_fetch_add(&c->refs, 1);
			batch[n++] = c;
		}
	}
	pthread_mutex_unlock(&sweep_mu);
	for (int i = 0; i < n; i++)
	{
		call	   *c = batch[i];

		if (atomic_exchange(&c->answered, 1) == 0)
		{
			char		msg[512];

			expired_calls++;
			if (c->expired)
				c->expired(c, msg, sizeof(msg));
			else
				snprintf(msg, sizeof(msg), "the Kafka broker did not acknowledge the location before the call's deadline;"
						 " it was not accepted, but it may still be stored later");
			call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
		}
		call_unref(c);
	}
	/* one line per 10 s at most (only the poll thread gets here) */
	if (expired_calls > 0 && now - last_log_ms >= 10000)
	{
		logmsg(LOG_WARNING, "%ld call(s) answered UNAVAILABLE: Kafka did not acknowledge them before their deadline",
			   expired_calls);
		expired_calls = 0;
		last_log_ms = now;
	}
}

/* ------------------------------------------------------------------------
 * Producing and delivery reports
 * ------------------------------------------------------------------------ */

/* All delivery reports have arrived (or the stream ended): answer. */
void
ingest_complete(call *c)
{
	if (atomic_exchange(&c->answered, 1) != 0)
		return;
	sweep_remove(c);
	c->complete(c);
}

/*
 * A location of call c was not stored: librdkafka refused it (maybe_stored
 * false) or its delivery failed (maybe_stored: the broker may have written
 * it all the same, e.g. a timeout while the request was in flight).
 */
void
note_kafka_error(call *c, rd_kafka_resp_err_t err, bool maybe_stored)
{
	atomic_fetch_add(&c->failed, 1);
	if (maybe_stored)
		atomic_fetch_add(&c->maybe_stored, 1);
	if (atomic_exchange(&c->err_set, 1) == 0)
		snprintf(c->kafka_err, sizeof(c->kafka_err), "%s", rd_kafka_err2str(err));
}

static void
delivery_report(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque)
{
	call	   *c = m->_private;

	(void) k;
	(void) opaque;
	if (c == NULL)
		return;
	if (m->err)
		note_kafka_error(c, m->err, rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
	else
	{
		c->partition = m->partition;
		c->offset = m->offset;
	}
	if (atomic_fetch_sub(&c->pending, 1) == 1 && atomic_load(&c->half_closed))
		ingest_complete(c);
	call_unref(c);
}

/* decimal ASCII of v (the message key), without snprintf; returns the length */
static int
format_int32(char *out, int32_t v)
{
	char		tmp[12];
	int			n = 0,
				len = 0;
	uint32_t	u = v < 0 ? (uint32_t) 0 - (uint32_t) v : (uint32_t) v;

	do
	{
		tmp[n++] = (char) ('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		out[len++] = '-';
	while (n > 0)
		out[len++] = tmp[--n];
	out[len] = '\0';
	return len;
}

/*
 * Produce one location for call c.  Returns 0 or the librdkafka error; the
 * call's pending count and reference are taken here.  Never blocks: a full
 * producer queue is RD_KAFKA_RESP_ERR__QUEUE_FULL (the worker thread must
 * stay free for every other call, health checks included).
 *
 * The value holds only the fields the ingest workers decode (person_id,
 * latitude, longitude, creation_time's seconds and nanos): a newer client
 * may add fields this gateway does not know, and they are dropped here
 * rather than copied.  Its size is therefore bounded: at most 11 + 9 + 9 +
 * 2 + 11 + 6 = 48 bytes.
 */
rd_kafka_resp_err_t
produce_location(call *c, const Udaconnect__V1__Location *loc)
{
	uint8_t		value[64];
	char		key[16];
	size_t		vlen;
	int			klen;
	rd_kafka_resp_err_t err;
	producer   *pr;
	Udaconnect__V1__Location known = UDACONNECT__V1__LOCATION__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	if (atomic_load(&kafka_fatal))
		return RD_KAFKA_RESP_ERR__FATAL;
	known.person_id = loc->person_id;
	known.latitude = loc->latitude;
	known.longitude = loc->longitude;
	if (loc->creation_time != NULL)
	{
		ts.seconds = loc->creation_time->seconds;
		ts.nanos = loc->creation_time->nanos;
		known.creation_time = &ts;
	}
	vlen = udaconnect__v1__location__pack(&known, value);
	klen = format_int32(key, loc->person_id);
	atomic_fetch_add(&c->refs, 1);
	atomic_fetch_add(&c->pending, 1);
	pr = c->kind == M_RECORDS ? &stream_producer : &unary_producer;
	err = rd_kafka_producev(pr->rk,
							RD_KAFKA_V_RKT(pr->rkt),
							RD_KAFKA_V_KEY(key, (size_t) klen),
							RD_KAFKA_V_VALUE(value, vlen),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_OPAQUE(c),
							RD_KAFKA_V_END);
	if (err)
	{
		atomic_fetch_sub(&c->pending, 1);
		atomic_fetch_sub(&c->refs, 1);	/* the flow still holds one */
	}
	return err;
}

/* false once librdkafka reported a fatal error: every call fails */
bool
kafka_usable(void)
{
	return !atomic_load(&kafka_fatal);
}

/* ------------------------------------------------------------------------
 * librdkafka's errors and log lines
 * ------------------------------------------------------------------------ */
static void
kafka_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static int	last_err;
	static int64_t last_ms;
	int64_t		now = now_ms();
	bool		quiet;

	(void) opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		buf[256];
		rd_kafka_resp_err_t orig = rd_kafka_fatal_error(k, buf, sizeof(buf));

		atomic_store(&kafka_fatal, 1);
		logmsg(LOG_ERROR, "fatal Kafka producer error %s: %s; every call now fails with UNAVAILABLE; restart the daemon",
			   rd_kafka_err2name(orig), buf);
		return;
	}
	/* at most one line per error code per 10 s (both producers' poll threads) */
	pthread_mutex_lock(&mu);
	quiet = err == last_err && now - last_ms < 10000;
	if (!quiet)
	{
		last_err = err;
		last_ms = now;
	}
	pthread_mutex_unlock(&mu);
	if (!quiet)
		logmsg(LOG_WARNING, "Kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static void
kafka_log(const rd_kafka_t *k, int level, const char *fac, const char *buf)
{
	(void) k;
	/* connection failures also reach kafka_error(), which rate-limits them */
	if (strcmp(fac, "FAIL") == 0 && log_min_level > LOG_DEBUG)
		return;
	logmsg(level <= 3 ? LOG_ERROR : level <= 5 ? LOG_WARNING : level == 6 ? LOG_INFO : LOG_DEBUG,
		   "librdkafka %s: %s", fac, buf);
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

/*
 * One thread per producer: delivery reports; the unary one also sweeps
 * deadlines, the stream one resumes or ends held and idle streams.
 */
static void *
poll_main(void *arg)
{
	producer   *pr = arg;

	pthread_setname_np(pthread_self(), pr->thread_name);
	while (!atomic_load(&poll_stop))
	{
		rd_kafka_poll(pr->rk, 20);
		pr->after_poll();
	}
	return NULL;
}

/* one setting of a producer's configuration; false (logged) if refused */
static bool
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, const char *from)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
		return true;
	if (from != NULL)
		logmsg(LOG_FATAL, "Kafka setting %s (from %s): %s", name, from, errstr);
	else
		logmsg(LOG_FATAL, "Kafka setting %s=%s: %s", name, value, errstr);
	return false;
}

static int
producer_start(producer *pr, double linger_ms)
{
	char		errstr[512];
	char		timeout[32],
				linger[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	bool		ok;

	snprintf(timeout, sizeof(timeout), "%d", cfg.kafka_timeout_ms);
	snprintf(linger, sizeof(linger), "%g", linger_ms);
	ok = conf_set(conf, "bootstrap.servers", cfg.brokers, NULL) &&
		conf_set(conf, "client.id", pr->client_id, NULL) &&
		conf_set(conf, "enable.idempotence", "true", NULL) &&
		conf_set(conf, "acks", "all", NULL) &&
		conf_set(conf, "queue.buffering.max.messages", "200000", NULL) &&
		conf_set(conf, "socket.nagle.disable", "true", NULL) &&
		conf_set(conf, "reconnect.backoff.max.ms", "1000", NULL) &&
		conf_set(conf, "message.timeout.ms", timeout, NULL) &&
		conf_set(conf, "linger.ms", linger, NULL);
	for (int i = 0; ok && i < cfg.nkopts; i++)
		ok = conf_set(conf, cfg.kopt_name[i], cfg.kopt_value[i], "--kafka-opt");
	if (!ok)
	{
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_report);
	rd_kafka_conf_set_error_cb(conf, kafka_error);
	rd_kafka_conf_set_log_cb(conf, kafka_log);
	pr->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (pr->rk == NULL)
	{
		logmsg(LOG_FATAL, "cannot create the Kafka producer (%s calls): %s", pr->name, errstr);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	pr->rkt = rd_kafka_topic_new(pr->rk, cfg.topic, NULL);
	if (pr->rkt == NULL)
	{
		logmsg(LOG_FATAL, "cannot create the Kafka topic handle %s: %s", cfg.topic,
			   rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	return 0;
}

/* both producers (unary: --linger-ms, streams: --stream-linger-ms); -1 logged */
int
kafka_start(void)
{
	if (producer_start(&unary_producer, cfg.linger_ms) != 0 ||
		producer_start(&stream_producer, cfg.stream_linger_ms) != 0)
		return -1;
	return 0;
}

/* the poll threads; the stream producer's also runs streams_poll */
void
kafka_poll_start(void (*streams_poll) (void))
{
	unary_producer.after_poll = sweep_expired;
	stream_producer.after_poll = streams_poll;
	pthread_create(&unary_producer.poll_thread, NULL, poll_main, &unary_producer);
	pthread_create(&stream_producer.poll_thread, NULL, poll_main, &stream_producer);
}

/* shutdown: the broker never answered; fail what is left (UNAVAILABLE) */
void
kafka_purge(void)
{
	logmsg(LOG_WARNING, "%d Kafka message(s) still unacknowledged; purging them",
		   rd_kafka_outq_len(unary_producer.rk) + rd_kafka_outq_len(stream_producer.rk));
	rd_kafka_purge(unary_producer.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_purge(stream_producer.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

/* shutdown, after every call ended: stop polling, flush, destroy */
void
kafka_stop(void)
{
	atomic_store(&poll_stop, 1);
	pthread_join(unary_producer.poll_thread, NULL);
	pthread_join(stream_producer.poll_thread, NULL);
	for (producer *pr = &unary_producer; pr != NULL; pr = pr == &unary_producer ? &stream_producer : NULL)
		if (rd_kafka_flush(pr->rk, cfg.kafka_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
			logmsg(LOG_WARNING, "%d Kafka message(s) still unacknowledged at exit", rd_kafka_outq_len(pr->rk));
	logmsg(LOG_DEBUG, "shutdown: Kafka producer flushed");
	rd_kafka_topic_destroy(unary_producer.rkt);
	rd_kafka_destroy(unary_producer.rk);
	rd_kafka_topic_destroy(stream_producer.rkt);
	rd_kafka_destroy(stream_producer.rk);
	logmsg(LOG_DEBUG, "shutdown: Kafka producer destroyed");
}
