/*
 * watch.c — ConnectionService/WatchEncounters, the call side: one watcher
 * per call, its bounded queue of events and its sends.
 *
 * What this file holds: the request and the limits (--max-watchers open at
 * once; --watch-queue events waiting per watcher: a watcher whose queue is
 * full when one more event comes is ended RESOURCE_EXHAUSTED, its memory
 * never grows past that); the sends, one batch in flight at a time, the
 * initial metadata first (sent once the watch is set up, with the position
 * it starts after); the RECV_CLOSE_ON_SERVER batch started with the call,
 * which tells at once when the client cancels or its deadline passes; the
 * final status; and the commands other threads post to the watch thread
 * (a new watcher, room in a queue, a call that is over).
 *
 * What it must not do: ask the database or decide what a watcher is sent
 * (watch_feed.c, on the watch thread, does), or wait: watcher_push and the
 * others run on the watch thread, which serves every watcher.
 *
 * References on the call: the watch thread's (the one call_new gave, held
 * while the watcher is registered), one while the close batch is out, one
 * while a send is out, one for the final status, one while the watcher is
 * in the command list.  The last one gone frees the watcher (watch_release).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

#define WATCHER_OF(t, field) ((watcher *) ((char *) (t) - offsetof(watcher, field)))

static atomic_int nwatchers;	/* counted against --max-watchers */
static atomic_int draining;		/* SIGTERM: no new watchers, the open ones end */

/* the command list: watchers with something for the watch thread */
static pthread_mutex_t cmd_mu = PTHREAD_MUTEX_INITIALIZER;
static watcher *cmd_head,
		   *cmd_tail;

static void send_done(tag *t, bool ok);

bool
watch_draining(void)
{
	return atomic_load(&draining) != 0;
}

/* SIGTERM: end every watcher now rather than after the grace period */
void
watch_drain(void)
{
	atomic_store(&draining, 1);
	listen_wake();
}

/* events per fetch: what a queue must have room for before one is sent */
int
watch_chunk(void)
{
	return cfg.watch_queue / 2 < 256 ? cfg.watch_queue / 2 : 256;
}

/* any thread: tell the watch thread (bits WCMD_*) */
void
watcher_post(watcher *w, unsigned bits)
{
	pthread_mutex_lock(&cmd_mu);
	w->cmd_bits |= bits;
	if (!w->in_cmd)
	{
		w->in_cmd = true;
		w->cmd_next = NULL;
		if (cmd_tail)
			cmd_tail->cmd_next = w;
		else
			cmd_head = w;
		cmd_tail = w;
		atomic_fetch_add(&w->c->refs, 1);	/* released by the watch thread */
	}
	pthread_mutex_unlock(&cmd_mu);
	listen_wake();
}

/* watch thread: the next watcher with commands (its bits in *bits), or NULL */
watcher *
watcher_cmd_take(unsigned *bits)
{
	watcher    *w;

	pthread_mutex_lock(&cmd_mu);
	if ((w = cmd_head) != NULL)
	{
		if ((cmd_head = w->cmd_next) == NULL)
			cmd_tail = NULL;
		*bits = w->cmd_bits;
		w->cmd_bits = 0;
		w->in_cmd = false;
	}
	pthread_mutex_unlock(&cmd_mu);
	return w;
}

static void
queue_discard_locked(watcher *w)
{
	for (int i = 0; i < w->qlen; i++)
		grpc_byte_buffer_destroy(w->q[(w->qhead + i) % w->qcap]);
	w->qlen = 0;
	w->qhead = 0;
}

/*
 * Start the next batch: the final status once the watcher is ended, else
 * the initial metadata and/or the next event.  Under w->mu, with no send
 * out and the call not over.
 */
static void
start_send_locked(watcher *w)
{
	call	   *c = w->c;
	size_t		n = 0;
	grpc_call_error e;

	if (w->ended)
	{
		if (!w->status_sent)
		{
			w->status_sent = true;
			atomic_fetch_add(&c->refs, 1);	/* final_done releases it */
			atomic_store(&c->answered, 1);
			call_finish(c, w->end_code, w->end_msg, NULL);
		}
		return;
	}
	memset(w->ops, 0, sizeof(w->ops));
	if (w->md_pending)
	{
		w->ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		w->ops[n].data.send_initial_metadata.count = 2;
		w->ops[n++].data.send_initial_metadata.metadata = w->md;
		w->md_pending = false;
		c->sent_initial = true;
	}
	if (w->qlen > 0 && c->sent_initial)
	{
		w->sending_buf = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % w->qcap;
		w->qlen--;
		w->ops[n].op = GRPC_OP_SEND_MESSAGE;
		w->ops[n++].data.send_message.send_message = w->sending_buf;
	}
	if (n == 0)
		return;
	w->sending = true;
	atomic_fetch_add(&c->refs, 1);	/* send_done releases it */
	w->send_t.done = send_done;
	e = grpc_call_start_batch(c->gc, w->ops, n, &w->send_t, NULL);
	if (e != GRPC_CALL_OK)
	{
		/* not expected on a live call; the close batch still ends it */
		logmsg(LOG_ERROR, "WatchEncounters: grpc_call_start_batch (send) failed: error %d", (int) e);
		w->sending = false;
		atomic_fetch_sub(&c->refs, 1);	/* the watch thread's and the close's remain */
		w->closed = true;
		queue_discard_locked(w);
	}
}

/* worker thread: a send completed */
static void
send_done(tag *t, bool ok)
{
	watcher    *w = WATCHER_OF(t, send_t);
	call	   *c = w->c;

	pthread_mutex_lock(&w->mu);
	w->sending = false;
	if (w->sending_buf)
		grpc_byte_buffer_destroy(w->sending_buf);
	w->sending_buf = NULL;
	if (!ok)
		queue_discard_locked(w);	/* the call is over: the close batch says so */
	else
	{
		if (w->want_room && w->qlen <= cfg.watch_queue - watch_chunk())
		{
			w->want_room = false;
			watcher_post(w, WCMD_ROOM);
		}
		if (!w->closed)
			start_send_locked(w);
	}
	pthread_mutex_unlock(&w->mu);
	call_unref(c);
}

/* worker thread: the call is over (status sent, cancelled, deadline, gone) */
static void
close_done(tag *t, bool ok)
{
	watcher    *w = WATCHER_OF(t, close_t);
	call	   *c = w->c;

	(void) ok;
	pthread_mutex_lock(&w->mu);
	w->closed = true;
	queue_discard_locked(w);
	if (c->cancelled && !w->status_sent)
		logmsg(LOG_DEBUG, "WatchEncounters: the watcher of person %d was cancelled (by the client,"
			   " its deadline or its connection)", w->person);
	pthread_mutex_unlock(&w->mu);
	watcher_post(w, WCMD_GONE);
	call_unref(c);
}

static void
end_locked(watcher *w, grpc_status_code code, const char *msg)
{
	if (w->ended || w->closed)
		return;
	w->ended = true;
	w->end_code = code;
	snprintf(w->end_msg, sizeof(w->end_msg), "%s", msg);
	queue_discard_locked(w);
	logmsg(LOG_DEBUG, "WatchEncounters: the watcher of person %d ends with status %d: %s", w->person,
		   (int) code, msg);
	if (!w->sending)
		start_send_locked(w);
}

/* watch thread: end the call with this status (the queue is dropped) */
void
watcher_end(watcher *w, grpc_status_code code, const char *fmt,...)
{
	char		msg[384];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&w->mu);
	end_locked(w, code, msg);
	pthread_mutex_unlock(&w->mu);
}

/*
 * Watch thread: queue one event (a packed EncounterEvent; the queue takes
 * its own reference).  False when the watcher is over, or was ended now
 * because its queue is full.
 */
bool
watcher_push(watcher *w, grpc_slice msg)
{
	bool		ok = false;

	pthread_mutex_lock(&w->mu);
	if (w->ended || w->closed)
		;
	else if (w->qlen >= cfg.watch_queue)
		end_locked(w, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "the client did not read the events as fast as they came: --watch-queue events were"
				   " waiting; watch again with after = the last event received");
	else
	{
		if (w->qlen == w->qcap)
		{
			int			cap = w->qcap ? w->qcap * 2 : 8;
			grpc_byte_buffer **nq;

			cap = cap < cfg.watch_queue ? cap : cfg.watch_queue;
			nq = malloc(cap * sizeof(*nq));
			if (nq == NULL)
			{
				end_locked(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the events to send");
				pthread_mutex_unlock(&w->mu);
				return false;
			}
			for (int i = 0; i < w->qlen; i++)
				nq[i] = w->q[(w->qhead + i) % w->qcap];
			free(w->q);
			w->q = nq;
			w->qcap = cap;
			w->qhead = 0;
		}
		w->q[(w->qhead + w->qlen++) % w->qcap] = grpc_raw_byte_buffer_create(&msg, 1);
		if (!w->sending)
			start_send_locked(w);
		ok = true;
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

/*
 * Watch thread: whether the queue has room for a whole fetch (chunk
 * events); if not, a WCMD_ROOM comes once it has.
 */
bool
watcher_has_room(watcher *w, int chunk)
{
	bool		room;

	pthread_mutex_lock(&w->mu);
	room = w->qlen <= cfg.watch_queue - chunk;
	if (!room)
		w->want_room = true;
	pthread_mutex_unlock(&w->mu);
	return room;
}

/*
 * Watch thread: the watch is set up; the client learns it from the initial
 * metadata, which carries the position the events start after.
 */
void
watcher_established(watcher *w, int64_t version, int64_t id)
{
	pthread_mutex_lock(&w->mu);
	snprintf(w->md_v, sizeof(w->md_v), "%lld", (long long) version);
	snprintf(w->md_i, sizeof(w->md_i), "%lld", (long long) id);
	w->md[0].key = grpc_slice_from_static_string("udaconnect-after-version");
	w->md[0].value = grpc_slice_from_static_string(w->md_v);
	w->md[1].key = grpc_slice_from_static_string("udaconnect-after-id");
	w->md[1].value = grpc_slice_from_static_string(w->md_i);
	w->md_pending = true;
	if (!w->sending && !w->ended && !w->closed)
		start_send_locked(w);
	pthread_mutex_unlock(&w->mu);
}

/* c->release: the call is being freed */
static void
watch_release(call *c)
{
	watcher    *w = c->watcher;

	if (w != NULL)
	{
		queue_discard_locked(w);
		free(w->q);
		pthread_mutex_destroy(&w->mu);
		logmsg(LOG_DEBUG, "WatchEncounters: the watcher of person %d is freed (%d open)", w->person,
			   atomic_fetch_sub(&nwatchers, 1) - 1);
		free(w);
	}
	if (c->req)
		protobuf_c_message_free_unpacked(c->req, NULL);
}

static bool
watch_check(call *c, const Udaconnect__V1__WatchEncountersRequest *q)
{
	if (q->person_id <= 0)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "person_id must be a positive integer, got %d", q->person_id);
	else if (q->after && (q->after->version < 0 || q->after->id < 0))
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "after.version and after.id must be >= 0, got %lld and %lld",
				  (long long) q->after->version, (long long) q->after->id);
	else if (cfg.dburl == NULL)
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "no database configured (UDACONNECT_DATABASE_URL / --database-url)");
	else if (watch_draining())
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down; watch on another one");
	else
		return true;
	return false;
}

/* a new WatchEncounters call (worker thread) */
void
handle_watch(call *c, grpc_byte_buffer *payload)
{
	Udaconnect__V1__WatchEncountersRequest *q;
	watcher    *w;
	grpc_op		op;
	grpc_call_error e;

	c->release = watch_release;
	q = (Udaconnect__V1__WatchEncountersRequest *)
		request_unpack(c, payload, &udaconnect__v1__watch_encounters_request__descriptor, NULL, false);
	if (q == NULL)
		return;
	c->req = &q->base;
	if (!watch_check(c, q))
		return;
	if (atomic_fetch_add(&nwatchers, 1) >= cfg.max_watchers)
	{
		atomic_fetch_sub(&nwatchers, 1);
		call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				  "too many WatchEncounters calls are open (at most %d, --max-watchers); retry later", cfg.max_watchers);
		return;
	}
	if ((w = calloc(1, sizeof(watcher))) == NULL)
	{
		atomic_fetch_sub(&nwatchers, 1);
		call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for a watcher");
		return;
	}
	pthread_mutex_init(&w->mu, NULL);
	w->c = c;
	w->person = q->person_id;
	c->watcher = w;

	/* the end of the call, whoever ends it, completes this batch */
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	w->close_t.done = close_done;
	c->close_started = true;
	atomic_fetch_add(&c->refs, 1);
	e = grpc_call_start_batch(c->gc, &op, 1, &w->close_t, NULL);
	if (e != GRPC_CALL_OK)
	{
		atomic_fetch_sub(&c->refs, 1);
		c->close_started = false;
		call_fail(c, GRPC_STATUS_INTERNAL, "cannot watch the call's end (grpc error %d)", (int) e);
		return;
	}
	/* the call's first reference is the watch thread's from here on */
	watcher_post(w, WCMD_NEW);
}
