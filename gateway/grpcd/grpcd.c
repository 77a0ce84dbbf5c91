/*
 * udaconnect-grpcd — the gRPC ingest gateway.
 *
 * gRPC core C API (no C++) + protobuf-c; produces validated locations to
 * Kafka with librdkafka (idempotent producer, acks=all) and answers only
 * after the broker's delivery report.  See docs/grpc.md.
 *
 * Threads
 *   main        configuration, start-up, sigwait(), orderly shutdown
 *   worker N    one completion queue each; every call is bound to the queue
 *               it arrived on, so one call's events never run concurrently.
 *               It never blocks: a full producer queue is answered
 *               (unary) or waited out by the Kafka poll thread (streams).
 *   kafka       rd_kafka_poll() of the unary calls' producer: delivery
 *               reports answer the calls; also the deadline sweeper
 *               (UNAVAILABLE before a call's deadline when the broker has
 *               not acknowledged)
 *   kafka-s     rd_kafka_poll() of the client streams' producer; also
 *               resumes streams held by a full queue and ends idle ones
 *               (stream.c)
 *   db N        libpq, one connection each, for FindConnections (find.c)
 *
 * Call lifetime: a reference count.  The "flow" holds one reference until
 * the call's final batch completed (or failed); every message handed to
 * librdkafka holds one until its delivery report.  `answered` (an atomic
 * flag) makes sure exactly one party sends the final status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "grpcd.h"
#include "grpc/health/v1/health.pb-c.h"
#include "original/location.pb-c.h"
#include "udaconnect/v1/location.pb-c.h"
#include "udaconnect/v1/location_service.pb-c.h"

#define GRPCD_VERSION "1.0"

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */
grpcd_config cfg = {
	.bind = "0.0.0.0",
	.port = 30005,
	.topic = "locations",
	.threads = 1,
	.db_threads = 2,
	.requests = 32,
	.max_message = 16384,
	.max_stream = 1000000,
	.max_rows = 100000,
	.max_skew = UDC_DEFAULT_MAX_FUTURE_SKEW,
	.kafka_timeout_ms = 10000,
	.linger_ms = 0.5,
	.stream_linger_ms = 5,
	.grace = 10,
	.max_streams = 256,
	.stream_idle_s = 60,
	.max_listed = 1000,
	.max_find = 64,
};

/* ------------------------------------------------------------------------
 * Global state
 * ------------------------------------------------------------------------ */
static grpc_server *server;
/*
 * Two producers of the same kind (idempotent, acks=all, same topic and key):
 * one for unary calls, whose callers wait for each acknowledgement (short
 * linger), one for client streams, which are answered once at the end (longer
 * linger: fewer, larger produce requests).  One RPC's points always go
 * through one producer, so they stay in order per person; points of calls
 * that overlap in time have no order to keep.  See docs/grpc.md.
 */
typedef struct producer
{
	const char *name;			/* for log lines and the thread name */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	pthread_t	poll_thread;
} producer;

static producer unary_producer = {.name = "unary"};
static producer stream_producer = {.name = "stream"};
atomic_int	stopping;		/* SIGTERM received */
static atomic_int kafka_fatal;	/* producer unusable */
static atomic_int poll_stop;
static atomic_long live_calls;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;

static const struct
{
	const char *path;
	bool		payload;		/* unary request read with the call */
}			methods[M_COUNT] = {
	[M_RECORD] = {"/udaconnect.v1.LocationService/RecordLocation", true},
	[M_RECORDS] = {"/udaconnect.v1.LocationService/RecordLocations", false},
	[M_LEGACY] = {"/LocationService/updateLocation", true},
	[M_HEALTH] = {"/grpc.health.v1.Health/Check", true},
	[M_FIND] = {"/udaconnect.v1.ConnectionService/FindConnections", true},
};
static void *method_handle[M_COUNT];

static worker *workers;

typedef struct request
{
	tag			t;
	worker	   *w;
	int			kind;
	grpc_call  *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_call_details details;	/* unregistered methods only */
} request;

static int64_t
timespec_ms(gpr_timespec t)
{
	t = gpr_convert_clock_type(t, GPR_CLOCK_REALTIME);
	if (gpr_time_cmp(t, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0 || t.tv_sec > INT64_MAX / 2000)
		return INT64_MAX;
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Byte buffers
 * ------------------------------------------------------------------------ */
grpc_slice
buffer_slice(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice	s;

	/* the usual case, one uncompressed slice: a reference, no copy */
	if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
		bb->data.raw.slice_buffer.count == 1)
		return grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return grpc_empty_slice();
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return s;
}

grpc_byte_buffer *
pack_message(const ProtobufCMessage *m)
{
	size_t		n = protobuf_c_message_get_packed_size(m);
	grpc_slice	s = grpc_slice_malloc(n);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/*
 * protobuf-c hands string fields over as C strings, so "2020-01-01\0junk"
 * would silently arrive as "2020-01-01".  Returns the name of the first
 * top-level string field of the (already unpacked, so well-formed) message
 * that contains a NUL byte, or NULL.
 */
const char *
string_with_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;

	while (p < end)
	{
		uint64_t	v = 0;
		int			shift = 0;
		uint32_t	wire;

#define VARINT() do { v = 0; shift = 0; \
			while (p < end && shift < 64) { v |= (uint64_t) (*p & 0x7f) << shift; shift += 7; if (!(*p++ & 0x80)) break; } \
		} while (0)
		VARINT();
		wire = (uint32_t) (v & 7);
		{
			uint64_t	number = v >> 3;

			switch (wire)
			{
				case 0:
					VARINT();
					break;
				case 1:
				case 5:
					if (end - p < (wire == 1 ? 8 : 4))
						return NULL;
					p += wire == 1 ? 8 : 4;
					break;
				case 2:
					{
						const ProtobufCFieldDescriptor *f;

						VARINT();
						if (v > (uint64_t) (end - p))
							return NULL;
						f = number <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned) number) : NULL;
						if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t) v))
							return f->name;
						p += v;
						break;
					}
				default:
					return NULL;
			}
		}
#undef VARINT
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Call life cycle
 * ------------------------------------------------------------------------ */
static call *
call_new(worker *w, int kind, grpc_call *gc, int64_t deadline_ms)
{
	call	   *c = calloc(1, sizeof(call));

	if (c == NULL)
		return NULL;
	c->w = w;
	c->kind = kind;
	c->gc = gc;
	c->deadline_ms = deadline_ms;
	atomic_init(&c->refs, 1);
	atomic_fetch_add(&live_calls, 1);
	return c;
}

void
call_unref(call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->gc)
		grpc_call_unref(c->gc);
	if (c->recv_buf)
		grpc_byte_buffer_destroy(c->recv_buf);
	if (c->send_buf)
		grpc_byte_buffer_destroy(c->send_buf);
	if (c->has_details)
		grpc_slice_unref(c->details);
	if (c->kind == M_RECORDS)
		stream_release(c);
	else if (c->kind == M_FIND)
		find_release(c);
	free(c);
	if (atomic_fetch_sub(&live_calls, 1) == 1 && atomic_load(&stopping))
	{
		pthread_mutex_lock(&live_mu);
		pthread_cond_broadcast(&live_cv);
		pthread_mutex_unlock(&live_mu);
	}
}

static void
final_done(tag *t, bool ok)
{
	call	   *c = (call *) t;

	(void) ok;
	call_unref(c);				/* the flow's reference */
}

/*
 * Send the final status (and optionally a response message) and release
 * the flow's reference when it completed.  May be called from any thread,
 * but only once per call and never while another batch of the call is in
 * flight.
 */
void
call_finish(call *c, grpc_status_code code, const char *msg, const ProtobufCMessage *resp)
{
	size_t		n = 0;
	grpc_call_error e;

	if (!c->sent_initial)
	{
		memset(&c->ops[n], 0, sizeof(grpc_op));
		c->ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial = true;
	}
	if (resp != NULL && code == GRPC_STATUS_OK)
	{
		if (c->send_buf)
			grpc_byte_buffer_destroy(c->send_buf);
		c->send_buf = pack_message(resp);
		memset(&c->ops[n], 0, sizeof(grpc_op));
		c->ops[n].op = GRPC_OP_SEND_MESSAGE;
		c->ops[n++].data.send_message.send_message = c->send_buf;
	}
	memset(&c->ops[n], 0, sizeof(grpc_op));
	c->ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	c->ops[n].data.send_status_from_server.status = code;
	if (msg != NULL)
	{
		if (c->has_details)
			grpc_slice_unref(c->details);
		c->details = grpc_slice_from_copied_string(msg);
		c->has_details = true;
		c->ops[n].data.send_status_from_server.status_details = &c->details;
	}
	n++;
	memset(&c->ops[n], 0, sizeof(grpc_op));
	c->ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	c->ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	c->t.done = final_done;
	/*
	 * Log before starting the batch: once it is started, the worker thread
	 * may complete it and free the call (final_done) before this returns
	 * when we run on another thread (db thread, Kafka poll thread).
	 */
	if (code != GRPC_STATUS_OK)
		logmsg(LOG_DEBUG, "%s -> status %d: %s",
			   c->kind < M_COUNT ? methods[c->kind].path : "unknown method", (int) code,
			   msg ? msg : "");
	e = grpc_call_start_batch(c->gc, c->ops, n, &c->t, NULL);
	if (e != GRPC_CALL_OK)
	{
		logmsg(LOG_ERROR, "grpc_call_start_batch (final status) failed: error %d", (int) e);
		call_unref(c);
	}
	/* c may be freed from here on */
}

/* Final status without a response; used by every error path. */
void
call_fail(call *c, grpc_status_code code, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	atomic_store(&c->answered, 1);
	call_finish(c, code, msg, NULL);
}

/* ------------------------------------------------------------------------
 * Deadline sweeper: calls waiting for delivery reports
 * ------------------------------------------------------------------------ */
static pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
static call *sweep_head;

/*
 * When to give up on the broker for call c: a little before the client
 * does (a quarter of the time left, at most 250 ms), so that it gets
 * UNAVAILABLE rather than its own DEADLINE_EXCEEDED.  INT64_MAX: never.
 */
int64_t
call_answer_by(const call *c)
{
	int64_t		left;

	if (c->deadline_ms == INT64_MAX)
		return INT64_MAX;
	left = c->deadline_ms - now_ms();
	return c->deadline_ms - (left / 4 < 250 ? (left > 0 ? left / 4 : 0) : 250);
}

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

static void
sweep_remove(call *c)
{
	pthread_mutex_lock(&sweep_mu);
	if (c->in_sweep)
		sweep_unlink_locked(c);
	pthread_mutex_unlock(&sweep_mu);
}

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
			if (c->kind == M_RECORDS)
				stream_deadline_message(c, msg, sizeof(msg));
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
 * Kafka
 * ------------------------------------------------------------------------ */

/* the answer of a unary call whose location the broker did not acknowledge */
static void
unary_unavailable(call *c)
{
	char		msg[512];

	snprintf(msg, sizeof(msg), "the Kafka broker did not acknowledge the location (%s); %s",
			 atomic_load(&c->err_set) ? c->kafka_err : "unknown error",
			 atomic_load(&c->maybe_stored) ? "it was not accepted, but it may still be stored"
			 : "it was not stored");
	call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
}

/* All delivery reports have arrived (or the stream ended): answer. */
void
ingest_complete(call *c)
{
	if (atomic_exchange(&c->answered, 1) != 0)
		return;
	sweep_remove(c);
	switch (c->kind)
	{
		case M_RECORD:
			if (atomic_load(&c->failed))
				unary_unavailable(c);
			else
			{
				Udaconnect__V1__RecordLocationResponse r = UDACONNECT__V1__RECORD_LOCATION_RESPONSE__INIT;

				r.partition = c->partition;
				r.offset = c->offset;
				call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
			}
			break;
		case M_LEGACY:
			if (atomic_load(&c->failed))
				unary_unavailable(c);
			else
			{
				Status		s = STATUS__INIT;

				s.currentstate = "Received";
				call_finish(c, GRPC_STATUS_OK, NULL, &s.base);
			}
			break;
		case M_RECORDS:
			stream_answer(c);
			break;
	}
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

/*
 * One thread per producer: delivery reports; the unary one also sweeps
 * deadlines, the stream one resumes or ends held and idle streams.
 */
static void *
poll_main(void *arg)
{
	producer   *pr = arg;

	pthread_setname_np(pthread_self(), pr == &unary_producer ? "grpcd-kafka" : "grpcd-kafka-s");
	while (!atomic_load(&poll_stop))
	{
		rd_kafka_poll(pr->rk, 20);
		if (pr == &unary_producer)
			sweep_expired();
		else
			streams_poll();
	}
	return NULL;
}

static int
kafka_start(producer *pr, double linger_ms)
{
	char		errstr[512];
	char		num[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *names[32],
			   *values[32];
	int			n = 0;

#define SET(k, v) (names[n] = (k), values[n] = (v), n++)
	SET("bootstrap.servers", cfg.brokers);
	SET("client.id", pr == &unary_producer ? "udaconnect-grpcd" : "udaconnect-grpcd-stream");
	SET("enable.idempotence", "true");
	SET("acks", "all");
	SET("queue.buffering.max.messages", "200000");
	SET("socket.nagle.disable", "true");
	SET("reconnect.backoff.max.ms", "1000");
#undef SET
	for (int i = 0; i < n; i++)
		if (rd_kafka_conf_set(conf, names[i], values[i], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		{
			logmsg(LOG_FATAL, "Kafka setting %s=%s: %s", names[i], values[i], errstr);
			rd_kafka_conf_destroy(conf);
			return -1;
		}
	snprintf(num, sizeof(num), "%d", cfg.kafka_timeout_ms);
	if (rd_kafka_conf_set(conf, "message.timeout.ms", num, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		logmsg(LOG_FATAL, "Kafka setting message.timeout.ms=%s: %s", num, errstr);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	snprintf(num, sizeof(num), "%g", linger_ms);
	if (rd_kafka_conf_set(conf, "linger.ms", num, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		logmsg(LOG_FATAL, "Kafka setting linger.ms=%s: %s", num, errstr);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	for (int i = 0; i < cfg.nkopts; i++)
		if (rd_kafka_conf_set(conf, cfg.kopt_name[i], cfg.kopt_value[i], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		{
			logmsg(LOG_FATAL, "Kafka setting %s (from --kafka-opt): %s", cfg.kopt_name[i], errstr);
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

/* ------------------------------------------------------------------------
 * Location RPCs
 * ------------------------------------------------------------------------ */

/* see stack_arena in grpcd.h */
void *
arena_alloc(void *data, size_t size)
{
	stack_arena *a = data;
	size_t		n = (size + 15) & ~(size_t) 15;

	if (n >= size && n <= sizeof(a->buf) - a->used)
	{
		void	   *p = a->buf + a->used;

		a->used += n;
		return p;
	}
	return malloc(size);
}

void
arena_free(void *data, void *p)
{
	stack_arena *a = data;

	if ((uint8_t *) p < a->buf || (uint8_t *) p >= a->buf + sizeof(a->buf))
		free(p);
}

/*
 * Decode + validate a v1 Location from a slice; NULL + err on failure.
 * The result is freed with udaconnect__v1__location__free_unpacked(loc, al).
 */
Udaconnect__V1__Location *
decode_v1(grpc_slice s, ProtobufCAllocator *al, char *err, size_t errlen)
{
	Udaconnect__V1__Location *loc;

	loc = udaconnect__v1__location__unpack(al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	if (loc == NULL)
	{
		snprintf(err, errlen, "the request is not a valid udaconnect.v1.Location message");
		return NULL;
	}
	if (!validate_location(&v1_fields, loc->person_id, loc->latitude, loc->longitude,
						   loc->creation_time, time(NULL), cfg.max_skew, err, errlen))
	{
		udaconnect__v1__location__free_unpacked(loc, al);
		return NULL;
	}
	return loc;
}

static void
produce_unary(call *c, Udaconnect__V1__Location *loc)
{
	rd_kafka_resp_err_t err;

	sweep_add(c);
	atomic_store(&c->half_closed, 1);
	err = produce_location(c, loc);
	if (err)
	{
		if (atomic_exchange(&c->answered, 1) == 0)
		{
			char		msg[256];

			sweep_remove(c);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				snprintf(msg, sizeof(msg), "the Kafka producer queue is full (the broker is slow or unreachable);"
						 " the location was not stored");
			else
				snprintf(msg, sizeof(msg), "the Kafka producer refused the location: %s; it was not stored",
						 rd_kafka_err2str(err));
			call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
		}
	}
}

static void
handle_record(call *c, grpc_byte_buffer *payload)
{
	char		err[256];
	grpc_slice	s;
	Udaconnect__V1__Location *loc;
	stack_arena arena = {0};
	ProtobufCAllocator al = STACK_ALLOCATOR(arena);

	if (payload == NULL)
	{
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request message is missing");
		return;
	}
	s = buffer_slice(payload);
	loc = decode_v1(s, &al, err, sizeof(err));
	grpc_slice_unref(s);
	if (loc == NULL)
	{
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
		return;
	}
	produce_unary(c, loc);
	udaconnect__v1__location__free_unpacked(loc, &al);
}

static void
handle_legacy(call *c, grpc_byte_buffer *payload)
{
	char		err[256];
	grpc_slice	s;
	Location   *old;
	Udaconnect__V1__Location loc = UDACONNECT__V1__LOCATION__INIT;
	stack_arena arena = {0};
	ProtobufCAllocator al = STACK_ALLOCATOR(arena);

	if (payload == NULL)
	{
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request message is missing");
		return;
	}
	s = buffer_slice(payload);
	old = location__unpack(&al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (old == NULL)
	{
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid Location message");
		return;
	}
	if (!validate_location(&legacy_fields, old->personid, old->latitude, old->longitude,
						   old->createdtime, time(NULL), cfg.max_skew, err, sizeof(err)))
	{
		location__free_unpacked(old, &al);
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
		return;
	}
	loc.person_id = old->personid;
	loc.latitude = old->latitude;
	loc.longitude = old->longitude;
	loc.creation_time = old->createdtime;
	produce_unary(c, &loc);
	location__free_unpacked(old, &al);
}

/* ------------------------------------------------------------------------
 * Health
 * ------------------------------------------------------------------------ */
static void
handle_health(call *c, grpc_byte_buffer *payload)
{
	Grpc__Health__V1__HealthCheckRequest *req = NULL;
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	const char *svc = "";
	static const char *const known[] = {
		"", "udaconnect.v1.LocationService", "udaconnect.v1.ConnectionService",
		"LocationService", "grpc.health.v1.Health", NULL
	};
	bool		found = false;

	if (payload != NULL)
	{
		grpc_slice	s = buffer_slice(payload);

		req = grpc__health__v1__health_check_request__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
		if (req != NULL && string_with_nul(&grpc__health__v1__health_check_request__descriptor,
										   GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s)))
		{
			grpc_slice_unref(s);
			grpc__health__v1__health_check_request__free_unpacked(req, NULL);
			call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "service must not contain a NUL character");
			return;
		}
		grpc_slice_unref(s);
		if (req == NULL)
		{
			call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid grpc.health.v1.HealthCheckRequest message");
			return;
		}
		svc = req->service;
	}
	for (int i = 0; known[i]; i++)
		if (strcmp(svc, known[i]) == 0)
			found = true;
	if (!found)
	{
		call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown service \"%.200s\"", svc);
		if (req)
			grpc__health__v1__health_check_request__free_unpacked(req, NULL);
		return;
	}
	if (strcmp(svc, "udaconnect.v1.ConnectionService") == 0)
		r.status = (atomic_load(&stopping) || cfg.dburl == NULL)
			? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
			: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	else
		r.status = (atomic_load(&stopping) || atomic_load(&kafka_fatal))
			? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
			: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	if (req)
		grpc__health__v1__health_check_request__free_unpacked(req, NULL);
	atomic_store(&c->answered, 1);
	call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}

/* ------------------------------------------------------------------------
 * Requests and dispatch
 * ------------------------------------------------------------------------ */
static void request_done(tag *t, bool ok);

static void
request_arm(request *r)
{
	grpc_call_error e;

	if (atomic_load(&stopping))
	{
		free(r);
		return;
	}
	r->t.done = request_done;
	r->call = NULL;
	r->payload = NULL;
	grpc_metadata_array_init(&r->md);
	if (r->kind == M_UNKNOWN)
	{
		grpc_call_details_init(&r->details);
		e = grpc_server_request_call(server, &r->call, &r->details, &r->md, r->w->cq, r->w->cq, r);
	}
	else
		e = grpc_server_request_registered_call(server, method_handle[r->kind], &r->call,
												&r->deadline, &r->md,
												methods[r->kind].payload ? &r->payload : NULL,
												r->w->cq, r->w->cq, r);
	if (e != GRPC_CALL_OK)
	{
		logmsg(LOG_ERROR, "cannot request calls for %s: grpc error %d",
			   r->kind == M_UNKNOWN ? "unregistered methods" : methods[r->kind].path, (int) e);
		grpc_metadata_array_destroy(&r->md);
		if (r->kind == M_UNKNOWN)
			grpc_call_details_destroy(&r->details);
		free(r);
	}
}

static void
request_done(tag *t, bool ok)
{
	request    *r = (request *) t;
	grpc_byte_buffer *payload = r->payload;
	call	   *c;
	int64_t		deadline;
	char		method[256] = "";

	grpc_metadata_array_destroy(&r->md);
	if (r->kind == M_UNKNOWN)
	{
		deadline = timespec_ms(r->details.deadline);
		snprintf(method, sizeof(method), "%.*s", (int) GRPC_SLICE_LENGTH(r->details.method),
				 (const char *) GRPC_SLICE_START_PTR(r->details.method));
		grpc_call_details_destroy(&r->details);
	}
	else
		deadline = timespec_ms(r->deadline);
	if (!ok)
	{
		/* server shutting down */
		if (payload)
			grpc_byte_buffer_destroy(payload);
		if (r->call)
			grpc_call_unref(r->call);
		free(r);
		return;
	}
	c = call_new(r->w, r->kind, r->call, deadline);
	/* re-arm before handling the call */
	request_arm(r);
	if (c == NULL)
	{
		logmsg(LOG_ERROR, "out of memory accepting a call");
		if (payload)
			grpc_byte_buffer_destroy(payload);
		return;					/* the call leaks its grpc_call: cannot answer without memory */
	}
	switch (c->kind)
	{
		case M_RECORD:
			handle_record(c, payload);
			break;
		case M_LEGACY:
			handle_legacy(c, payload);
			break;
		case M_RECORDS:
			stream_start(c);
			break;
		case M_HEALTH:
			handle_health(c, payload);
			break;
		case M_FIND:
			handle_find(c, payload);
			break;
		default:
			call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", method);
			break;
	}
	if (payload)
		grpc_byte_buffer_destroy(payload);
}

static void *
worker_main(void *arg)
{
	worker	   *w = arg;
	char		name[16];

	snprintf(name, sizeof(name), "grpcd-worker%d", w->id);
	pthread_setname_np(pthread_self(), name);
	for (int k = 0; k <= M_UNKNOWN; k++)
	{
		int			n = (k == M_UNKNOWN || k == M_HEALTH || k == M_FIND) ? 2 : cfg.requests;

		for (int i = 0; i < n; i++)
		{
			request    *r = calloc(1, sizeof(request));

			if (r == NULL)
				break;
			r->w = w;
			r->kind = k;
			request_arm(r);
		}
	}
	for (;;)
	{
		grpc_event	ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			((tag *) ev.tag)->done((tag *) ev.tag, ev.success != 0);
	}
	return NULL;
}

static void
grpc_log_to_ours(gpr_log_func_args *a)
{
	int			level = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_ERROR
		: a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO : LOG_DEBUG;

	logmsg(level, "grpc %s:%d: %s", a->file, a->line, a->message);
}

/* ------------------------------------------------------------------------
 * Configuration parsing
 * ------------------------------------------------------------------------ */
static const char usage[] =
	"usage: udaconnect-grpcd [options]\n"
	"  -p, --port N              listen port (env UDACONNECT_GRPC_PORT, default 30005)\n"
	"      --bind ADDR           listen address (env UDACONNECT_GRPC_BIND, default 0.0.0.0)\n"
	"  -b, --brokers LIST        Kafka bootstrap servers (env UDACONNECT_KAFKA_BROKERS; required)\n"
	"  -t, --topic NAME          Kafka topic (env UDACONNECT_KAFKA_TOPIC, default locations)\n"
	"  -d, --database-url URL    libpq conninfo for FindConnections (env UDACONNECT_DATABASE_URL)\n"
	"  -j, --threads N           worker threads = completion queues (default 1)\n"
	"      --db-threads N        database connections (default 2)\n"
	"      --max-message-bytes N largest request message (default 16384)\n"
	"      --max-stream N        most locations in one RecordLocations stream (default 1000000)\n"
	"      --max-rows N          most rows one FindConnections call streams (default 100000)\n"
	"      --max-find-calls N    FindConnections calls at once (env UDACONNECT_GRPC_MAX_FIND_CALLS, default 64)\n"
	"      --max-streams N       RecordLocations streams at once (env UDACONNECT_GRPC_MAX_STREAMS, default 256)\n"
	"      --stream-idle-timeout S  end a stream that sends nothing for S s\n"
	"                            (env UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT, default 60)\n"
	"      --max-listed-rejections N  rejections listed per stream, 0..1000\n"
	"                            (env UDACONNECT_GRPC_MAX_LISTED_REJECTIONS, default 1000)\n"
	"      --max-future-skew S   seconds a creation_time may lie in the future (default 300)\n"
	"      --kafka-timeout-ms N  message.timeout.ms: give up on the broker after N ms (default 10000)\n"
	"      --linger-ms X         linger.ms of the producer for unary calls (default 0.5)\n"
	"      --stream-linger-ms X  linger.ms of the producer for RecordLocations streams (default 5)\n"
	"  -X, --kafka-opt K=V       any other librdkafka producer setting (repeatable)\n"
	"      --grace S             seconds SIGTERM waits for calls before cancelling them (default 10)\n"
	"  -l, --log-level LEVEL     debug, info, warning, error (env UDACONNECT_LOG_LEVEL, default info)\n"
	"  -h, --help, -V, --version\n";

static void
configure(int argc, char **argv)
{
	const char *e;
	enum
	{
		O_BIND = 256, O_DBT, O_MAXMSG, O_MAXSTREAM, O_MAXROWS, O_SKEW, O_KTO, O_LINGER, O_SLINGER, O_GRACE,
		O_MAXFIND, O_MAXSTREAMS, O_IDLE, O_MAXLISTED
	};
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"bind", required_argument, NULL, O_BIND},
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"database-url", required_argument, NULL, 'd'},
		{"threads", required_argument, NULL, 'j'},
		{"db-threads", required_argument, NULL, O_DBT},
		{"max-message-bytes", required_argument, NULL, O_MAXMSG},
		{"max-stream", required_argument, NULL, O_MAXSTREAM},
		{"max-rows", required_argument, NULL, O_MAXROWS},
		{"max-find-calls", required_argument, NULL, O_MAXFIND},
		{"max-streams", required_argument, NULL, O_MAXSTREAMS},
		{"stream-idle-timeout", required_argument, NULL, O_IDLE},
		{"max-listed-rejections", required_argument, NULL, O_MAXLISTED},
		{"max-future-skew", required_argument, NULL, O_SKEW},
		{"kafka-timeout-ms", required_argument, NULL, O_KTO},
		{"linger-ms", required_argument, NULL, O_LINGER},
		{"stream-linger-ms", required_argument, NULL, O_SLINGER},
		{"kafka-opt", required_argument, NULL, 'X'},
		{"grace", required_argument, NULL, O_GRACE},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			o;

	cli_progname = "udaconnect-grpcd";
	if ((e = getenv("UDACONNECT_GRPC_PORT")) && *e)
		cfg.port = (int) cli_parse_long(e, "UDACONNECT_GRPC_PORT", 0, 65535);
	if ((e = getenv("UDACONNECT_GRPC_BIND")) && *e)
		cfg.bind = e;
	if ((e = getenv("UDACONNECT_KAFKA_BROKERS")) && *e)
		cfg.brokers = e;
	if ((e = getenv("UDACONNECT_KAFKA_TOPIC")) && *e)
		cfg.topic = e;
	if ((e = getenv("UDACONNECT_DATABASE_URL")) && *e)
		cfg.dburl = e;
	if ((e = getenv("UDACONNECT_GRPC_MAX_FIND_CALLS")) && *e)
		cfg.max_find = (int) cli_parse_long(e, "UDACONNECT_GRPC_MAX_FIND_CALLS", 1, 100000);
	if ((e = getenv("UDACONNECT_GRPC_MAX_STREAMS")) && *e)
		cfg.max_streams = (int) cli_parse_long(e, "UDACONNECT_GRPC_MAX_STREAMS", 1, 100000);
	if ((e = getenv("UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT")) && *e)
		cfg.stream_idle_s = (int) cli_parse_long(e, "UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT", 1, 86400);
	if ((e = getenv("UDACONNECT_GRPC_MAX_LISTED_REJECTIONS")) && *e)
		cfg.max_listed = (int) cli_parse_long(e, "UDACONNECT_GRPC_MAX_LISTED_REJECTIONS", 0, 1000);
	if ((e = getenv("UDACONNECT_LOG_LEVEL")) && *e)
	{
		if ((log_min_level = log_level_from_name(e)) < 0)
		{
			fprintf(stderr, "udaconnect-grpcd: UDACONNECT_LOG_LEVEL must be debug, info, warning or error, got \"%s\"\n", e);
			exit(2);
		}
	}
	while ((o = getopt_long(argc, argv, "p:b:t:d:j:X:l:hV", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'p':
				cfg.port = (int) cli_parse_long(optarg, "--port", 0, 65535);
				break;
			case O_BIND:
				cfg.bind = optarg;
				break;
			case 'b':
				cfg.brokers = optarg;
				break;
			case 't':
				cfg.topic = optarg;
				break;
			case 'd':
				cfg.dburl = optarg;
				break;
			case 'j':
				cfg.threads = (int) cli_parse_long(optarg, "--threads", 1, 64);
				break;
			case O_DBT:
				cfg.db_threads = (int) cli_parse_long(optarg, "--db-threads", 1, 64);
				break;
			case O_MAXMSG:
				cfg.max_message = (int) cli_parse_long(optarg, "--max-message-bytes", 64, 64 * 1024 * 1024);
				break;
			case O_MAXSTREAM:
				cfg.max_stream = (int) cli_parse_long(optarg, "--max-stream", 1, INT32_MAX - 1);
				break;
			case O_MAXROWS:
				cfg.max_rows = (int) cli_parse_long(optarg, "--max-rows", 1, 100000000);
				break;
			case O_MAXFIND:
				cfg.max_find = (int) cli_parse_long(optarg, "--max-find-calls", 1, 100000);
				break;
			case O_MAXSTREAMS:
				cfg.max_streams = (int) cli_parse_long(optarg, "--max-streams", 1, 100000);
				break;
			case O_IDLE:
				cfg.stream_idle_s = (int) cli_parse_long(optarg, "--stream-idle-timeout", 1, 86400);
				break;
			case O_MAXLISTED:
				cfg.max_listed = (int) cli_parse_long(optarg, "--max-listed-rejections", 0, 1000);
				break;
			case O_SKEW:
				cfg.max_skew = (int) cli_parse_long(optarg, "--max-future-skew", 0, UDC_MAX_MAX_FUTURE_SKEW);
				break;
			case O_KTO:
				cfg.kafka_timeout_ms = (int) cli_parse_long(optarg, "--kafka-timeout-ms", 1, 900000);
				break;
			case O_LINGER:
				cfg.linger_ms = cli_parse_double(optarg, "--linger-ms", 0, 900000);
				break;
			case O_SLINGER:
				cfg.stream_linger_ms = cli_parse_double(optarg, "--stream-linger-ms", 0, 900000);
				break;
			case O_GRACE:
				cfg.grace = cli_parse_double(optarg, "--grace", 0, 3600);
				break;
			case 'X':
				{
					char	   *eq = strchr(optarg, '=');

					if (eq == NULL || eq == optarg)
					{
						fprintf(stderr, "udaconnect-grpcd: --kafka-opt takes NAME=VALUE, got \"%s\"\n", optarg);
						exit(2);
					}
					if (cfg.nkopts >= MAX_KAFKA_OPTS)
					{
						fprintf(stderr, "udaconnect-grpcd: at most %d --kafka-opt settings\n", MAX_KAFKA_OPTS);
						exit(2);
					}
					cfg.kopt_name[cfg.nkopts] = strndup(optarg, (size_t) (eq - optarg));
					cfg.kopt_value[cfg.nkopts] = eq + 1;
					cfg.nkopts++;
					break;
				}
			case 'l':
				if ((log_min_level = log_level_from_name(optarg)) < 0)
				{
					fprintf(stderr, "udaconnect-grpcd: --log-level must be debug, info, warning or error, got \"%s\"\n", optarg);
					exit(2);
				}
				break;
			case 'h':
				cli_usage(usage, 0);
			case 'V':
				printf("udaconnect-grpcd %s (gRPC core %s, librdkafka %s)\n", GRPCD_VERSION,
					   grpc_version_string(), rd_kafka_version_str());
				exit(0);
			default:
				cli_usage(usage, 2);
		}
	}
	cli_no_operands(argc, argv, usage);
	if (cfg.brokers == NULL)
	{
		fprintf(stderr, "udaconnect-grpcd: no Kafka brokers: set UDACONNECT_KAFKA_BROKERS or --brokers\n");
		exit(2);
	}
	if (cfg.topic[0] == '\0' || strlen(cfg.topic) > 249)
	{
		fprintf(stderr, "udaconnect-grpcd: the Kafka topic name must have 1..249 characters\n");
		exit(2);
	}
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */
int
main(int argc, char **argv)
{
	sigset_t	sigs;
	int			sig;
	char		addr[300];
	grpc_server_credentials *creds;
	int			bound;
	grpc_arg	args[3];
	grpc_channel_args chargs;
	grpc_completion_queue *shutdown_cq;
	grpc_event	ev;
	int			shutdown_tag;

	configure(argc, argv);

	/* signals are handled by sigwait() in main only */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	gpr_set_log_function(grpc_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();

	if (kafka_start(&unary_producer, cfg.linger_ms) != 0 ||
		kafka_start(&stream_producer, cfg.stream_linger_ms) != 0)
		return 1;

	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = cfg.max_message;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = 4 * 1024 * 1024;
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
	args[2].value.integer = 0;
	chargs.num_args = 3;
	chargs.args = args;
	server = grpc_server_create(&chargs, NULL);
	for (int k = 0; k < M_COUNT; k++)
	{
		method_handle[k] = grpc_server_register_method(server, methods[k].path, NULL,
													   methods[k].payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
													   : GRPC_SRM_PAYLOAD_NONE, 0);
		if (method_handle[k] == NULL)
		{
			logmsg(LOG_FATAL, "cannot register method %s", methods[k].path);
			return 1;
		}
	}
	workers = calloc(cfg.threads, sizeof(worker));
	for (int i = 0; i < cfg.threads; i++)
	{
		workers[i].id = i;
		workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(server, workers[i].cq, NULL);
	}
	shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	snprintf(addr, sizeof(addr), strchr(cfg.bind, ':') ? "[%s]:%d" : "%s:%d", cfg.bind, cfg.port);
	creds = grpc_insecure_server_credentials_create();
	bound = grpc_server_add_http2_port(server, addr, creds);
	grpc_server_credentials_release(creds);
	if (bound == 0)
	{
		logmsg(LOG_FATAL, "cannot listen on %s (address in use or not available)", addr);
		return 1;
	}
	grpc_server_start(server);

	pthread_create(&unary_producer.poll_thread, NULL, poll_main, &unary_producer);
	pthread_create(&stream_producer.poll_thread, NULL, poll_main, &stream_producer);
	if (cfg.dburl)
		find_threads_start();
	for (int i = 0; i < cfg.threads; i++)
		pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);

	logmsg(LOG_INFO, "listening on %s:%d (%d worker threads); Kafka %s topic %s; database %s",
		   cfg.bind, bound, cfg.threads, cfg.brokers, cfg.topic, cfg.dburl ? "configured" : "not configured (FindConnections answers UNAVAILABLE)");

	for (;;)
	{
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP)
		{
			logmsg(LOG_INFO, "SIGHUP ignored (settings are read at start only)");
			continue;
		}
		break;
	}

	/* ---- orderly shutdown ---- */
	logmsg(LOG_INFO, "%s received: draining %ld call(s), %.0f s grace", strsignal(sig),
		   atomic_load(&live_calls), cfg.grace);
	atomic_store(&stopping, 1);
	grpc_server_shutdown_and_notify(server, shutdown_cq, &shutdown_tag);
	ev = grpc_completion_queue_pluck(shutdown_cq, &shutdown_tag,
									 gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
												  gpr_time_from_millis((int64_t) (cfg.grace * 1000), GPR_TIMESPAN)),
									 NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT)
	{
		logmsg(LOG_WARNING, "grace period over: cancelling %ld call(s)", atomic_load(&live_calls));
		grpc_server_cancel_all_calls(server);
		grpc_completion_queue_pluck(shutdown_cq, &shutdown_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	}
	/* calls still waiting for delivery reports or the database */
	{
		int64_t		purge_at = now_ms() + cfg.kafka_timeout_ms + 1000;
		bool		purged = false;

		pthread_mutex_lock(&live_mu);
		while (atomic_load(&live_calls) > 0)
		{
			struct timespec ts;

			if (!purged && now_ms() >= purge_at)
			{
				/* the broker never answered: fail what is left (UNAVAILABLE) */
				logmsg(LOG_WARNING, "%d Kafka message(s) still unacknowledged; purging them",
					   rd_kafka_outq_len(unary_producer.rk) + rd_kafka_outq_len(stream_producer.rk));
				rd_kafka_purge(unary_producer.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
				rd_kafka_purge(stream_producer.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
				purged = true;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000;
			if (ts.tv_nsec >= 1000000000)
			{
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&live_cv, &live_mu, &ts);
		}
		pthread_mutex_unlock(&live_mu);
	}

	logmsg(LOG_DEBUG, "shutdown: all calls finished");
	if (cfg.dburl)
		find_threads_stop();
	for (int i = 0; i < cfg.threads; i++)
		grpc_completion_queue_shutdown(workers[i].cq);
	for (int i = 0; i < cfg.threads; i++)
	{
		pthread_join(workers[i].thread, NULL);
		grpc_completion_queue_destroy(workers[i].cq);
	}
	grpc_server_destroy(server);
	grpc_completion_queue_shutdown(shutdown_cq);
	grpc_completion_queue_destroy(shutdown_cq);

	logmsg(LOG_DEBUG, "shutdown: gRPC server destroyed");
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
	grpc_shutdown();
	free(workers);
	for (int i = 0; i < cfg.nkopts; i++)
		free(cfg.kopt_name[i]);
	logmsg(LOG_INFO, "stopped");
	return 0;
}
