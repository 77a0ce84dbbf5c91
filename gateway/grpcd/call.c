/*
 * call.c — the call record of udaconnect-grpcd: its life, its answer and
 * the request message it carries.
 *
 * What this file holds: creating and freeing a call (a reference count: the
 * call's own "flow" holds one reference until its final batch completed,
 * every message handed to librdkafka holds one until its delivery report);
 * sending the final status (call_finish, call_fail), which `answered` makes
 * happen exactly once; when to give up on the broker before the client's
 * deadline (call_answer_by); the count of live calls that shutdown waits
 * for; and reading a request: byte buffers, unpacking into a stack arena,
 * the NUL-in-a-string check.
 *
 * What it must not do: know what a method does with its call (the method's
 * file sets c->release, c->complete, c->expired), allocate per message
 * beyond the call itself, or block: call_finish runs on worker, Kafka poll
 * and db threads alike.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>

#include "grpcd.h"

const method_def methods[M_COUNT] = {
	[M_RECORD] = {"/udaconnect.v1.LocationService/RecordLocation", true},
	[M_RECORDS] = {"/udaconnect.v1.LocationService/RecordLocations", false},
	[M_LEGACY] = {"/LocationService/updateLocation", true},
	[M_HEALTH] = {"/grpc.health.v1.Health/Check", true},
	[M_FIND] = {"/udaconnect.v1.ConnectionService/FindConnections", true},
	[M_LIST] = {"/udaconnect.v1.ConnectionService/ListEncounters", true},
	[M_WATCH] = {"/udaconnect.v1.ConnectionService/WatchEncounters", true},
};

atomic_int	stopping;			/* SIGTERM received */

/* calls not yet freed: shutdown waits for them (calls_wait_ended) */
static atomic_long live_calls;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;

call *
call_new(int kind, grpc_call *gc, int64_t deadline_ms)
{
	call	   *c = calloc(1, sizeof(call));

	if (c == NULL)
		return NULL;
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
	if (c->release)
		c->release(c);
	free(c);
	if (atomic_fetch_sub(&live_calls, 1) == 1 && atomic_load(&stopping))
	{
		pthread_mutex_lock(&live_mu);
		pthread_cond_broadcast(&live_cv);
		pthread_mutex_unlock(&live_mu);
	}
}

long
calls_live(void)
{
	return atomic_load(&live_calls);
}

/*
 * Shutdown: wait until no call is left or until_ms (wall clock) passed.
 * True when none is left.  The wait wakes every 200 ms as well, in case the
 * last call ended just before `stopping` was set.
 */
bool
calls_wait_ended(int64_t until_ms)
{
	bool		ended;

	pthread_mutex_lock(&live_mu);
	while (atomic_load(&live_calls) > 0 && now_ms() < until_ms)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000;
		if (ts.tv_nsec >= 1000000000)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&live_cv, &live_mu, &ts);
	}
	ended = atomic_load(&live_calls) == 0;
	pthread_mutex_unlock(&live_mu);
	return ended;
}

void
call_queue_push(call_queue *q, call *c)
{
	c->qnext = NULL;
	if (q->tail)
		q->tail->qnext = c;
	else
		q->head = c;
	q->tail = c;
}

/* the oldest call, or NULL */
call *
call_queue_pop(call_queue *q)
{
	call	   *c = q->head;

	if (c != NULL && (q->head = c->qnext) == NULL)
		q->tail = NULL;
	return c;
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
	if (!c->close_started)
	{
		memset(&c->ops[n], 0, sizeof(grpc_op));
		c->ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		c->ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	}
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

/* ------------------------------------------------------------------------
 * Request messages
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

/*
 * The request of a unary or server-streaming call, unpacked as message d
 * (with allocator al; NULL: malloc).  NULL when c was answered
 * INVALID_ARGUMENT: no message, not a valid d, or (check_nul) a string
 * field with a NUL byte.  The result is freed with
 * protobuf_c_message_free_unpacked(m, al).
 */
ProtobufCMessage *
request_unpack(call *c, grpc_byte_buffer *payload, const ProtobufCMessageDescriptor *d,
			   ProtobufCAllocator *al, bool check_nul)
{
	grpc_slice	s;
	ProtobufCMessage *m;
	const char *bad = NULL;

	if (payload == NULL)
	{
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request message is missing");
		return NULL;
	}
	s = buffer_slice(payload);
	m = protobuf_c_message_unpack(d, al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	if (m != NULL && check_nul)
		bad = string_with_nul(d, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
	grpc_slice_unref(s);
	if (m == NULL)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid %s message", d->name);
	else if (bad != NULL)
	{
		protobuf_c_message_free_unpacked(m, al);
		m = NULL;
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s must not contain a NUL character", bad);
	}
	return m;
}

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
