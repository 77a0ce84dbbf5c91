/*
 * server.c — udaconnect-grpcd's gRPC server: the registered methods, the
 * completion queues and their worker threads, and dispatch.
 *
 * What this file holds: one completion queue per worker thread (--threads);
 * every call is bound to the queue it arrived on, so one call's events
 * never run concurrently.  Each queue keeps requests outstanding for every
 * method (32 per ingest method, 2 for health, the ConnectionService methods
 * and unregistered methods); a request that completes is re-armed before its
 * call is handled, and the call goes to its method's handler.  Also the
 * orderly end: no new calls, the grace period, cancelling what is left, and
 * tearing the queues and threads down.
 *
 * What it must not do: handle a method itself (location.c, stream.c, find.c,
 * encounters.c, watch.c, health.c do), or let a worker thread wait: not for
 * the broker, not for the database.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "grpcd.h"

/* a worker thread and its completion queue: every call arriving there stays there */
typedef struct worker
{
	int			id;
	grpc_completion_queue *cq;
	pthread_t	thread;
} worker;

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

static grpc_server *server;
static void *method_handle[M_COUNT];
static worker *workers;
static grpc_completion_queue *shutdown_cq;

static void request_done(tag *t, bool ok);

static int64_t
timespec_ms(gpr_timespec t)
{
	t = gpr_convert_clock_type(t, GPR_CLOCK_REALTIME);
	if (gpr_time_cmp(t, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0 || t.tv_sec > INT64_MAX / 2000)
		return INT64_MAX;
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* wait for the next call of r's method on r's queue (or free r: shutdown) */
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

/* each method's file takes a new call from here (on its worker thread) */
static void (*const handlers[M_COUNT]) (call *c, grpc_byte_buffer *payload) = {
	[M_RECORD] = handle_record,
	[M_RECORDS] = handle_stream,
	[M_LEGACY] = handle_legacy,
	[M_HEALTH] = handle_health,
	[M_FIND] = handle_find,
	[M_LIST] = handle_list,
	[M_WATCH] = handle_watch,
};

static void
request_done(tag *t, bool ok)
{
	request    *r = (request *) t;
	grpc_byte_buffer *payload = r->payload;
	call	   *c;
	int64_t		deadline;
	char		method[256] = "";
	char		reason[REASON_LEN];
	bool		known;

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
		grpc_metadata_array_destroy(&r->md);
		if (payload)
			grpc_byte_buffer_destroy(payload);
		if (r->call)
			grpc_call_unref(r->call);
		free(r);
		return;
	}
	c = call_new(r->kind, r->call, deadline);
	/*
	 * The caller, before the request is re-armed (which reuses r->md).  The
	 * health check is open; an unknown method is answered UNIMPLEMENTED
	 * whoever asks.  CPU only (caller.c): this thread must not wait.
	 */
	known = c != NULL && (c->kind == M_HEALTH || c->kind == M_UNKNOWN ||
						  caller_from_metadata(&r->md, &c->who, reason, sizeof(reason)));
	grpc_metadata_array_destroy(&r->md);
	/* re-arm before handling the call */
	request_arm(r);
	if (c == NULL)
	{
		logmsg(LOG_ERROR, "out of memory accepting a call");
		if (payload)
			grpc_byte_buffer_destroy(payload);
		return;					/* the call leaks its grpc_call: cannot answer without memory */
	}
	if (!known)
		call_fail(c, GRPC_STATUS_UNAUTHENTICATED, "%s", reason);
	else if (c->kind < M_COUNT)
		handlers[c->kind] (c, payload);
	else
		call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", method);
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
		int			n = (k == M_UNKNOWN || k == M_HEALTH || k == M_FIND || k == M_LIST ||
						 k == M_WATCH) ? 2 : cfg.requests;

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

/*
 * Create the server: message size limits, the registered methods, one
 * completion queue per worker, the listening port; then start it.  Returns
 * the port bound, or -1 (logged).  The workers start later
 * (server_workers_start), once the threads they hand calls to are running.
 */
int
server_start(void)
{
	char		addr[300];
	grpc_server_credentials *creds;
	int			bound;
	grpc_arg	args[3];
	grpc_channel_args chargs;

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
			return -1;
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
	creds = tls_credentials();
	bound = grpc_server_add_http2_port(server, addr, creds);
	grpc_server_credentials_release(creds);
	if (bound == 0)
	{
		logmsg(LOG_FATAL, "cannot listen on %s%s (address in use or not available)", addr,
			   tls_enabled() ? " with TLS" : "");
		return -1;
	}
	grpc_server_start(server);
	return bound;
}

void
server_workers_start(void)
{
	for (int i = 0; i < cfg.threads; i++)
		pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
}

/*
 * SIGTERM: accept no new calls and let the calls in flight finish; after
 * --grace seconds cancel the rest.  Calls may still wait for delivery
 * reports or the database afterwards.
 */
void
server_drain(void)
{
	int			shutdown_tag;
	grpc_event	ev;

	atomic_store(&stopping, 1);
	grpc_server_shutdown_and_notify(server, shutdown_cq, &shutdown_tag);
	ev = grpc_completion_queue_pluck(shutdown_cq, &shutdown_tag,
									 gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
												  gpr_time_from_millis((int64_t) (cfg.grace * 1000), GPR_TIMESPAN)),
									 NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT)
	{
		logmsg(LOG_WARNING, "grace period over: cancelling %ld call(s)", calls_live());
		grpc_server_cancel_all_calls(server);
		grpc_completion_queue_pluck(shutdown_cq, &shutdown_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	}
}

/* after every call ended: the queues, the worker threads, the server */
void
server_stop(void)
{
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
	free(workers);
}
