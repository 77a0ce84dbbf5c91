/*
 * listen.c — the watch connection of udaconnect-grpcd: one libpq
 * connection, in non-blocking pipeline mode, that LISTENs on
 * udaconnect_encounter (each version's changes and their persons) and runs
 * the queries of WatchEncounters, driven by one thread (grpcd-watch) that
 * waits in poll() and nowhere else.
 *
 * What this file holds: connecting without blocking (PQconnectStartParams
 * and PQconnectPoll, given up after 10 s), SET and LISTEN
 * (udaconnect_encounter, udaconnect_person_erased) as the first queries of
 * every connection, the queries in flight (at most LISTEN_PIPE, each with
 * its own sync, so that one query's error aborts no other), their
 * results handed back in order, notifications, a lost connection (every
 * query in flight handed back without a result, a new connection after
 * 0.5 s doubling to 10 s), and the eventfd other threads wake the loop
 * with.  Because every query runs on this one connection, in order, each
 * sees at least what the ones before it saw: what watch.c's exactly-once
 * argument rests on.
 *
 * What it must not do: know what the queries mean (watch.c does: it is
 * called through the hooks given to listen_start, on this thread only), or
 * wait anywhere but in poll().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "grpcd.h"

#define LISTEN_PIPE 64			/* queries in flight at once */
#define CONNECT_TIMEOUT_MS 10000

enum phase
{
	P_DOWN,						/* no connection; the next try at retry_at */
	P_CONNECTING,				/* PQconnectPoll in progress */
	P_SETUP,					/* SET and LISTEN in flight */
	P_UP						/* listening: queries may be sent */
};

typedef struct inflight
{
	void	   *ctx;			/* the hook's; NULL: a set-up query */
	PGresult   *res;			/* the query's result (or its error) */
	bool		ended;			/* its results are all in; the sync is next */
} inflight;

static listen_hooks hooks;
static pthread_t thread;
static int wake_fd = -1;
static atomic_int stop_flag;

/* the watch thread's alone: */
static PGconn *conn;
static enum phase phase;
static PostgresPollingStatusType connect_wants;
static int64_t connect_deadline;
static int	backoff_ms;
static int64_t retry_at;
static inflight pipe_q[LISTEN_PIPE];
static int	pipe_head,
			pipe_len;
static bool want_write;			/* output left to flush */

void
listen_wake(void)
{
	uint64_t	one = 1;

	/* a full counter still wakes the loop: nothing to do on EAGAIN */
	if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		logmsg(LOG_ERROR, "watch: cannot wake the watch thread: %s", strerror(errno));
}

bool
listen_can_send(void)
{
	return phase == P_UP && pipe_len < LISTEN_PIPE;
}

/* flush what libpq holds; false: the connection broke */
static bool
flush_out(void)
{
	int			r = PQflush(conn);

	want_write = r == 1;
	return r >= 0;
}

/*
 * Queue one query and its sync.  It counts as in flight even when sending
 * failed, so that the caller hears of it again (without a result) once
 * the connection is dropped.  False: the connection broke.
 */
static bool
send_query(void *ctx, const char *sql, int n, const char *const *params)
{
	pipe_q[(pipe_head + pipe_len++) % LISTEN_PIPE] = (inflight) {.ctx = ctx};
	return PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0) && PQpipelineSync(conn) &&
		flush_out();
}

static void conn_lost(const char *why);

/* watch thread, listen_can_send(): its result comes to hooks.result(ctx, res) */
void
listen_send(void *ctx, const char *sql, int n, const char *const *params)
{
	if (!send_query(ctx, sql, n, params))
		conn_lost(PQerrorMessage(conn));
}

/* hand every query in flight back without a result, drop the connection */
static void
conn_lost(const char *why)
{
	if (phase == P_UP || phase == P_SETUP)
		logmsg(LOG_WARNING, "watch: lost the database connection (watchers stay open and catch up"
			   " once it is back): %s", why);
	while (pipe_len > 0)
	{
		inflight	f = pipe_q[pipe_head];

		pipe_head = (pipe_head + 1) % LISTEN_PIPE;
		pipe_len--;
		PQclear(f.res);
		if (f.ctx)
			hooks.result(f.ctx, NULL);
	}
	pipe_head = 0;
	if (conn)
		PQfinish(conn);
	conn = NULL;
	want_write = false;
	phase = P_DOWN;
	backoff_ms = db_backoff_next(backoff_ms);
	retry_at = mono_ms() + backoff_ms;
}

static void
connect_start(void)
{
	const char *vals[DB_CONN_NKEYS + 1];

	db_conn_values(vals);
	conn = PQconnectStartParams(db_conn_keys(), vals, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
	{
		logmsg(LOG_WARNING, "watch: cannot connect to the database (next attempt in %d ms): %s",
			   db_backoff_next(backoff_ms), conn ? PQerrorMessage(conn) : "out of memory");
		conn_lost("connect failed");
		return;
	}
	phase = P_CONNECTING;
	connect_wants = PGRES_POLLING_WRITING;
	connect_deadline = mono_ms() + CONNECT_TIMEOUT_MS;
}

/* connected: SET and LISTEN, each a query of the pipeline */
static void
connect_done(void)
{
	char		tmo[64];

	snprintf(tmo, sizeof(tmo), "SET statement_timeout = %d", cfg.statement_timeout_ms);
	if (PQsetnonblocking(conn, 1) != 0 || !PQenterPipelineMode(conn) ||
		!send_query(NULL, "SET application_name = 'udaconnect-grpcd-watch'", 0, NULL) ||
		!send_query(NULL, tmo, 0, NULL) ||
		!send_query(NULL, "LISTEN udaconnect_encounter", 0, NULL) ||
		!send_query(NULL, "LISTEN udaconnect_person_erased", 0, NULL))
	{
		conn_lost(PQerrorMessage(conn));
		return;
	}
	phase = P_SETUP;
}

static void
connect_step(void)
{
	connect_wants = PQconnectPoll(conn);
	if (connect_wants == PGRES_POLLING_OK)
		connect_done();
	else if (connect_wants == PGRES_POLLING_FAILED)
	{
		logmsg(LOG_WARNING, "watch: cannot connect to the database (next attempt in %d ms): %s",
			   db_backoff_next(backoff_ms), PQerrorMessage(conn));
		conn_lost("connect failed");
	}
}

/* a set-up query's result: the connection is listening after the last one */
static void
setup_result(PGresult *res)
{
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		logmsg(LOG_ERROR, "watch: setting up the connection failed: %s",
			   res ? PQresultErrorMessage(res) : "no result");
		conn_lost("set-up failed");
		return;
	}
	if (phase == P_SETUP && pipe_len == 0)
	{
		phase = P_UP;
		backoff_ms = 0;
		logmsg(LOG_INFO, "watch: listening for encounter changes");
		hooks.connected();
	}
}

/* the notifications libpq has parsed (before a reconnect's catch-up,
 * P_SETUP, every watcher is read, and every watched person checked, anyway) */
static void
drain_notifies(void)
{
	PGnotify   *n;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (phase == P_UP && strcmp(n->relname, "udaconnect_encounter") == 0)
			hooks.notified(n->extra);
		else if (phase == P_UP && strcmp(n->relname, "udaconnect_person_erased") == 0)
			hooks.erased(n->extra);
		PQfreemem(n);
	}
}

/* read what arrived: results in order, notifications */
static void
conn_read(void)
{
	if (!PQconsumeInput(conn))
	{
		conn_lost(PQerrorMessage(conn));
		return;
	}
	drain_notifies();
	while (pipe_len > 0 && !PQisBusy(conn))
	{
		inflight   *f = &pipe_q[pipe_head];
		PGresult   *r = PQgetResult(conn);

		if (r == NULL)
		{
			if (f->ended)
				break;			/* the sync has not arrived */
			f->ended = true;
			continue;
		}
		if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
		{
			if (f->res == NULL)
				f->res = r;
			else
				PQclear(r);
			continue;
		}
		PQclear(r);
		pipe_head = (pipe_head + 1) % LISTEN_PIPE;
		pipe_len--;
		if (f->ctx == NULL)
		{
			setup_result(f->res);
			PQclear(f->res);
			if (phase == P_DOWN)
				return;
		}
		else
			hooks.result(f->ctx, f->res);	/* the hook owns the result */
	}
	if (PQstatus(conn) == CONNECTION_BAD)
	{
		conn_lost(PQerrorMessage(conn));
		return;
	}
	/*
	 * libpq parses a notification that came after a result only inside the
	 * result calls above: read them again, or one could wait, already off
	 * the socket, until unrelated traffic arrives
	 */
	drain_notifies();
}

/* what to wait for: the wake fd, and the socket as the phase wants it */
static int
wait_events(struct pollfd *p, int *np)
{
	int64_t		now = mono_ms();
	int			timeout = -1;
	int			hook_ms;

	p[0] = (struct pollfd) {.fd = wake_fd, .events = POLLIN};
	*np = 1;
	if (phase == P_DOWN)
		timeout = retry_at > now ? (int) (retry_at - now) : 0;
	else if (conn != NULL && PQsocket(conn) >= 0)
	{
		short		ev = POLLIN;

		if (phase == P_CONNECTING)
		{
			ev = connect_wants == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			timeout = connect_deadline > now ? (int) (connect_deadline - now) : 0;
		}
		else if (want_write)
			ev |= POLLOUT;
		p[1] = (struct pollfd) {.fd = PQsocket(conn), .events = ev};
		*np = 2;
	}
	/* the hooks' own timers (a failed check retried later): pump runs after */
	if (hooks.timeout_ms && (hook_ms = hooks.timeout_ms()) >= 0 && (timeout < 0 || hook_ms < timeout))
		timeout = hook_ms;
	return timeout;
}

static void *
listen_main(void *arg)
{
	(void) arg;
	pthread_setname_np(pthread_self(), "grpcd-watch");
	while (!atomic_load(&stop_flag))
	{
		struct pollfd p[2];
		int			np;
		int			timeout = wait_events(p, &np);
		uint64_t	v;

		if (poll(p, np, timeout) < 0 && errno != EINTR)
			logmsg(LOG_ERROR, "watch: poll: %s", strerror(errno));
		if (p[0].revents & POLLIN)
			(void) !read(wake_fd, &v, sizeof(v));
		if (phase == P_DOWN && mono_ms() >= retry_at)
			connect_start();
		else if (phase == P_CONNECTING && np == 2 && p[1].revents)
			connect_step();
		else if (phase == P_CONNECTING && mono_ms() >= connect_deadline)
		{
			logmsg(LOG_WARNING, "watch: connecting to the database took more than %d ms", CONNECT_TIMEOUT_MS);
			conn_lost("connect timed out");
		}
		else if (np == 2 && phase >= P_SETUP)
		{
			if ((p[1].revents & POLLOUT) && !flush_out())
				conn_lost(PQerrorMessage(conn));
			else if (p[1].revents & (POLLIN | POLLERR | POLLHUP))
				conn_read();
		}
		hooks.pump();
	}
	if (conn)
		PQfinish(conn);
	conn = NULL;
	return NULL;
}

void
listen_start(const listen_hooks *h)
{
	hooks = *h;
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0)
	{
		logmsg(LOG_FATAL, "watch: eventfd: %s", strerror(errno));
		exit(1);
	}
	phase = P_DOWN;
	retry_at = 0;
	pthread_create(&thread, NULL, listen_main, NULL);
}

/* after every watcher ended */
void
listen_stop(void)
{
	atomic_store(&stop_flag, 1);
	listen_wake();
	pthread_join(thread, NULL);
	close(wake_fd);
}
