/*
 * udaconnect-grpcd — RecordLocations, the client stream.
 *
 * What this file holds: reading a stream one message at a time; the list
 * of rejections (compact, allocated on the first one, at most
 * --max-listed-rejections); the limits that bound the memory of all streams
 * together (--max-streams open at once, --stream-idle-timeout for a stream
 * nobody writes to); and what happens when the stream producer's queue is
 * full.  Then the stream stops reading (HTTP/2 flow control holds the
 * client back), and the Kafka poll thread of the stream producer
 * (grpcd-kafka-s, streams_poll) produces the refused point once there is
 * room and resumes reading.  If there is no room within --kafka-timeout-ms
 * (or before the call's deadline, or once one of the stream's points has
 * failed), the stream is cut there, and the answer says from which index
 * on nothing was read or stored.
 *
 * What it must not do: block a worker thread or the poll thread; report a
 * point as not stored that was produced, or as stored that was not.
 *
 * Threads: a stream's receive completions run on its worker thread, one at
 * a time.  While a stream waits for room in the queue it has no batch
 * outstanding and belongs to the poll thread alone, until that thread
 * starts its next receive or ends it.  The idle sweep (poll thread) only
 * cancels a call, which gRPC allows from any thread.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

static atomic_int nstreams;		/* streams counted against --max-streams */

/* open streams, for the idle sweep; a listed call holds its flow reference */
static pthread_mutex_t streams_mu = PTHREAD_MUTEX_INITIALIZER;
static call *streams_head;

/* streams waiting for room in the producer queue (FIFO) */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static call_queue held_streams;

static void stream_recv_done(tag *t, bool ok);
static void stream_next(call *c);
static void stream_release(call *c);
static void stream_answer(call *c);
static void stream_deadline_message(call *c, char *msg, size_t len);

static void
stream_list(call *c)
{
	pthread_mutex_lock(&streams_mu);
	c->lprev = NULL;
	c->lnext = streams_head;
	if (streams_head)
		streams_head->lprev = c;
	streams_head = c;
	c->listed = true;
	pthread_mutex_unlock(&streams_mu);
}

static void
stream_unlist_locked(call *c)
{
	if (!c->listed)
		return;
	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else
		streams_head = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	c->lprev = c->lnext = NULL;
	c->listed = false;
}

/* The stream reads no more: before its flow reference can go away. */
static void
stream_unlist(call *c)
{
	pthread_mutex_lock(&streams_mu);
	stream_unlist_locked(c);
	pthread_mutex_unlock(&streams_mu);
}

/* a new RecordLocations call (worker thread); it has no message yet */
void
handle_stream(call *c, grpc_byte_buffer *payload)
{
	(void) payload;
	c->release = stream_release;
	c->complete = stream_answer;
	c->expired = stream_deadline_message;
	c->cut_at = -1;
	if (atomic_fetch_add(&nstreams, 1) >= cfg.max_streams)
	{
		atomic_fetch_sub(&nstreams, 1);
		call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				  "too many RecordLocations streams are open (at most %d, --max-streams); nothing was read, retry later",
				  cfg.max_streams);
		return;
	}
	c->counted = true;
	stream_list(c);
	stream_next(c);
}

/* c->release: the call is being freed */
static void
stream_release(call *c)
{
	if (c->listed)
	{
		/* cannot happen: every end of the flow unlists first */
		logmsg(LOG_ERROR, "internal error: a RecordLocations call freed while listed");
		stream_unlist(c);
	}
	if (c->counted)
		atomic_fetch_sub(&nstreams, 1);
	free(c->rejbuf);
}

/* wait for the next message (any thread, no batch of the call outstanding) */
static void
stream_next(call *c)
{
	grpc_call_error e;

	memset(&c->ops[0], 0, sizeof(grpc_op));
	c->ops[0].op = GRPC_OP_RECV_MESSAGE;
	c->ops[0].data.recv_message.recv_message = &c->recv_buf;
	c->t.done = stream_recv_done;
	/* wait_since before reading: the idle sweep reads them in that order */
	atomic_store_explicit(&c->wait_since_ms, mono_ms(), memory_order_relaxed);
	atomic_store(&c->reading, 1);
	e = grpc_call_start_batch(c->gc, c->ops, 1, &c->t, NULL);
	if (e != GRPC_CALL_OK)
	{
		logmsg(LOG_ERROR, "grpc_call_start_batch (receive) failed: error %d", (int) e);
		atomic_store(&c->reading, 0);
		stream_unlist(c);
		atomic_store(&c->answered, 1);
		call_unref(c);
	}
}

/* No more points will be produced: answer once every delivery report is in. */
static void
stream_end(call *c)
{
	stream_unlist(c);
	sweep_add(c);
	atomic_store(&c->half_closed, 1);
	if (atomic_load(&c->pending) == 0)
		ingest_complete(c);
}

/*
 * Count a rejection and list it while fewer than --max-listed-rejections
 * are.  One buffer per stream, allocated on the first rejection and grown
 * by doubling, holds each listed one as its index and its reason (with the
 * NUL): 50 to 130 bytes each rather than a fixed 260.
 */
static void
stream_reject(call *c, int32_t index, const char *reason)
{
	size_t		len = strnlen(reason, REASON_LEN - 1);
	size_t		need = sizeof(int32_t) + len + 1;

	c->rejected++;
	if (c->nrej >= cfg.max_listed)
		return;
	if (c->rejcap - c->rejlen < need)
	{
		size_t		cap = c->rejcap ? c->rejcap * 2 : 1024;
		char	   *nb;

		while (cap - c->rejlen < need)
			cap *= 2;
		nb = realloc(c->rejbuf, cap);
		if (nb == NULL)
			return;				/* counted, not listed */
		c->rejbuf = nb;
		c->rejcap = cap;
	}
	memcpy(c->rejbuf + c->rejlen, &index, sizeof(index));
	memcpy(c->rejbuf + c->rejlen + sizeof(index), reason, len);
	c->rejbuf[c->rejlen + sizeof(index) + len] = '\0';
	c->rejlen += need;
	c->nrej++;
}

/*
 * The producer queue is full: keep the point (its known fields only) and
 * stop reading; the poll thread produces it when there is room (see
 * streams_poll).  From here on the call belongs to the poll thread.
 */
static void
stream_hold(call *c, const Udaconnect__V1__Location *loc, int32_t index)
{
	c->held = (Udaconnect__V1__Location) UDACONNECT__V1__LOCATION__INIT;
	c->held.person_id = loc->person_id;
	c->held.latitude = loc->latitude;
	c->held.longitude = loc->longitude;
	if (loc->creation_time != NULL)
	{
		c->held_ts = (Google__Protobuf__Timestamp) GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		c->held_ts.seconds = loc->creation_time->seconds;
		c->held_ts.nanos = loc->creation_time->nanos;
		c->held.creation_time = &c->held_ts;
	}
	c->cut_at = index;
	c->held_since_ms = mono_ms();
	c->answer_by_ms = call_answer_by(c);
	pthread_mutex_lock(&held_mu);
	call_queue_push(&held_streams, c);
	pthread_mutex_unlock(&held_mu);
}

static void
stream_recv_done(tag *t, bool ok)
{
	call	   *c = (call *) t;
	grpc_slice	s;
	char		err[REASON_LEN];
	int32_t		index;
	Udaconnect__V1__Location *loc;
	stack_arena arena = {0};
	ProtobufCAllocator al = STACK_ALLOCATOR(arena);

	atomic_store(&c->reading, 0);
	if (!ok)
	{
		/* cancelled, deadline exceeded, idle, or the connection went away */
		stream_unlist(c);
		atomic_store(&c->answered, 1);
		call_unref(c);
		return;
	}
	if (c->recv_buf == NULL)
	{
		stream_end(c);			/* the client half-closed */
		return;
	}
	s = buffer_slice(c->recv_buf);
	grpc_byte_buffer_destroy(c->recv_buf);
	c->recv_buf = NULL;
	index = atomic_load_explicit(&c->index, memory_order_relaxed);
	atomic_store_explicit(&c->index, index + 1, memory_order_relaxed);
	if (index >= cfg.max_stream)
	{
		grpc_slice_unref(s);
		stream_unlist(c);
		call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				  "the stream carries more than %d locations (--max-stream): the locations from index %d on were not read;"
				  " the %d valid ones before were produced to Kafka; split the stream into several calls",
				  cfg.max_stream, index, c->valid);
		return;
	}
	/* a point the caller may not report is rejected like an invalid one */
	loc = decode_v1(s, &c->who, &al, err, sizeof(err));
	grpc_slice_unref(s);
	if (loc == NULL)
		stream_reject(c, index, err);
	else
	{
		rd_kafka_resp_err_t e = produce_location(c, loc);

		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			stream_hold(c, loc, index);
			udaconnect__v1__location__free_unpacked(loc, &al);
			return;				/* c belongs to the poll thread now */
		}
		c->valid++;
		if (e)
			note_kafka_error(c, e, false);
		udaconnect__v1__location__free_unpacked(loc, &al);
	}
	stream_next(c);
}

/*
 * Poll thread: produce the points of held streams, resume those that got
 * room, and cut those that waited too long: once one of their points
 * failed (the answer will be UNAVAILABLE anyway), at the call's deadline,
 * or after --kafka-timeout-ms (by then every message that was in the queue
 * when the stream was held is delivered or failed: a queue still full
 * means the broker does not keep up).
 */
static void
streams_resume_held(void)
{
	call_queue	list;
	call	   *c;
	int64_t		now = mono_ms();
	int64_t		wall = now_ms();

	pthread_mutex_lock(&held_mu);
	list = held_streams;
	held_streams = (call_queue) {0};
	pthread_mutex_unlock(&held_mu);
	while ((c = call_queue_pop(&list)) != NULL)
	{
		rd_kafka_resp_err_t e = produce_location(c, &c->held);

		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			if (atomic_load(&c->failed) == 0 && wall < c->answer_by_ms &&
				now - c->held_since_ms < cfg.kafka_timeout_ms)
			{
				pthread_mutex_lock(&held_mu);
				call_queue_push(&held_streams, c);
				pthread_mutex_unlock(&held_mu);
				continue;
			}
			logmsg(LOG_DEBUG, "RecordLocations: the producer queue stayed full; stream cut at index %d", c->cut_at);
			stream_end(c);		/* cut_at stays: nothing from there on was read */
			continue;
		}
		c->valid++;
		if (e)
			note_kafka_error(c, e, false);
		c->cut_at = -1;
		c->answer_by_ms = 0;
		stream_next(c);
	}
}

/*
 * Poll thread: end streams whose client sent nothing for
 * --stream-idle-timeout seconds (each holds a slot of --max-streams and its
 * rejections).  The cancel completes the pending receive (ok = false) on the
 * call's worker thread, which releases the flow.
 */
static void
streams_idle_sweep(int64_t now)
{
	call	   *batch[64];
	int			n = 0;
	int64_t		idle_ms = (int64_t) cfg.stream_idle_s * 1000;

	pthread_mutex_lock(&streams_mu);
	for (call *c = streams_head, *next; c != NULL && n < 64; c = next)
	{
		next = c->lnext;
		if (atomic_load(&c->reading) &&
			now - atomic_load_explicit(&c->wait_since_ms, memory_order_relaxed) >= idle_ms)
		{
			stream_unlist_locked(c);
			atomic_fetch_add(&c->refs, 1);	/* listed: the flow still holds one */
			batch[n++] = c;
		}
	}
	pthread_mutex_unlock(&streams_mu);
	for (int i = 0; i < n; i++)
	{
		call	   *c = batch[i];
		char		msg[400];

		snprintf(msg, sizeof(msg),
				 "no message arrived for %d s (--stream-idle-timeout), so the stream was ended: the %d messages"
				 " before were processed (valid locations produced to Kafka, which may store them), nothing after them was read",
				 cfg.stream_idle_s, atomic_load_explicit(&c->index, memory_order_relaxed));
		logmsg(LOG_DEBUG, "RecordLocations: %s", msg);
		grpc_call_cancel_with_status(c->gc, GRPC_STATUS_DEADLINE_EXCEEDED, msg, NULL);
		call_unref(c);
	}
}

/* the stream producer's poll thread, after each rd_kafka_poll() */
void
streams_poll(void)
{
	static int64_t last_sweep_ms;
	int64_t		now;

	streams_resume_held();
	now = mono_ms();
	if (now - last_sweep_ms >= 250)
	{
		streams_idle_sweep(now);
		last_sweep_ms = now;
	}
}

/* append to msg (bounded; a cut message is still a message) */
static void
msg_add(char *msg, size_t len, const char *fmt,...) __attribute__((format(printf, 3, 4)));
static void
msg_add(char *msg, size_t len, const char *fmt,...)
{
	size_t		n = strlen(msg);
	va_list		ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + n, len - n, fmt, ap);
	va_end(ap);
}

/*
 * The answer of a stream whose points have all been acknowledged or failed
 * (c->complete, from ingest_complete; `answered` is set).  It says which points were stored:
 *   OK                  every valid point read was stored; the whole stream
 *                       was read
 *   RESOURCE_EXHAUSTED  cut at a full producer queue: the points before the
 *                       cut were stored, none from the cut on was read
 *   UNAVAILABLE         some valid points were not acknowledged
 */
static void
stream_answer(call *c)
{
	int			failed = atomic_load(&c->failed);
	char		msg[768] = "";

	if (failed > 0)
	{
		int			maybe = atomic_load(&c->maybe_stored);

		msg_add(msg, sizeof(msg), "%d of the %d valid locations were not acknowledged by the Kafka broker (%s): ",
				failed, c->valid, atomic_load(&c->err_set) ? c->kafka_err : "unknown error");
		if (maybe == 0)
			msg_add(msg, sizeof(msg), "they were not stored");
		else if (maybe == failed)
			msg_add(msg, sizeof(msg), "they may still be stored");
		else
			msg_add(msg, sizeof(msg), "%d of them may still be stored", maybe);
		if (c->valid > failed)
			msg_add(msg, sizeof(msg), "; the other %d were stored", c->valid - failed);
		if (c->cut_at >= 0)
			msg_add(msg, sizeof(msg), "; the producer queue was full, so the stream was cut at index %d:"
					" the locations from there on were not read", c->cut_at);
		msg_add(msg, sizeof(msg), "; nothing is reported as accepted: resend the stream"
				" (locations already stored are then stored twice)");
		call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
		return;
	}
	if (c->cut_at >= 0)
	{
		msg_add(msg, sizeof(msg), "the Kafka producer queue stayed full (the broker is slow or unreachable), so the stream"
				" was cut at index %d: the locations from index %d on were not read and not stored; the %d valid"
				" locations before it were stored and %d were rejected; send the locations from index %d again",
				c->cut_at, c->cut_at, c->valid, c->rejected, c->cut_at);
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
		return;
	}
	{
		Udaconnect__V1__RecordLocationsResponse r = UDACONNECT__V1__RECORD_LOCATIONS_RESPONSE__INIT;
		Udaconnect__V1__Rejection *rv = NULL;
		Udaconnect__V1__Rejection **rp = NULL;
		size_t		off = 0;

		r.accepted = c->valid;
		r.rejected = c->rejected;
		if (c->nrej > 0)
		{
			rv = calloc(c->nrej, sizeof(*rv));
			rp = calloc(c->nrej, sizeof(*rp));
			if (rv == NULL || rp == NULL)
			{
				free(rv);
				free(rp);
				call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
				return;
			}
		}
		for (int i = 0; i < c->nrej; i++)
		{
			udaconnect__v1__rejection__init(&rv[i]);
			memcpy(&rv[i].index, c->rejbuf + off, sizeof(int32_t));
			rv[i].reason = c->rejbuf + off + sizeof(int32_t);
			off += sizeof(int32_t) + strlen(rv[i].reason) + 1;
			rp[i] = &rv[i];
		}
		r.n_rejections = c->nrej;
		r.rejections = rp;
		call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
		free(rv);
		free(rp);
	}
}

/* c->expired: the deadline sweeper's answer for a stream still waiting for the broker */
static void
stream_deadline_message(call *c, char *msg, size_t len)
{
	int			pending = atomic_load(&c->pending);
	int			failed = atomic_load(&c->failed);
	int			maybe = atomic_load(&c->maybe_stored);

	msg[0] = '\0';
	msg_add(msg, len, "the Kafka broker did not acknowledge every location before the call's deadline: of the %d"
			" valid ones, %d were stored, %d may still be stored later and %d were not stored",
			c->valid, c->valid - pending - failed, pending + maybe, failed - maybe);
	if (c->cut_at >= 0)
		msg_add(msg, len, "; the producer queue was full, so the stream was cut at index %d:"
				" the locations from there on were not read", c->cut_at);
	msg_add(msg, len, "; nothing is reported as accepted: resend the stream"
			" (locations already stored are then stored twice)");
}
