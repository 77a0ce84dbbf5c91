/*
 * listen.c: the stream thread of udaconnect-httpd: the one database
 * connection of the process that LISTENs on udaconnect_encounter_person
 * and fetches what the live encounter streams send (hub.c holds the
 * streams).
 *
 * A notification names the persons whose encounters changed; those of them
 * that are watched are marked (a person nobody watches costs nothing).
 * The thread then fetches, one person at a time, api_encounter_changes
 * after the smallest position among that person's subscribers, once for
 * all of them, as an organizer (sse.c asked the database for the
 * subscriber's own right before it subscribed), and hands the rows to the
 * hub, which queues each subscriber what it lacks.  The connection is
 * non-blocking and driven by this thread's own epoll loop, which also runs
 * the heartbeat; no worker waits on it, and it waits on no client.
 *
 * When the connection breaks it is made again with a doubling back-off
 * (0.5 s up to 10 s), and once LISTEN is back every watched person is
 * fetched again, so each subscriber catches up from its own position and
 * the notifications missed meanwhile lose nothing.  (An attempt to connect
 * blocks this thread for at most libpq's connect_timeout, 3 s, while the
 * database is unreachable; the workers serve the streams meanwhile.)  This
 * file must not answer requests nor decide who may watch whom.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

/* rows a fetch takes at most: a subscriber far behind catches up in pages */
#define FETCH_ROWS 100
#define FETCH_ROWS_TEXT "100"
#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 10.0

enum
{
	EV_WAKE = 1,
	EV_STOP,
	EV_DB
};

static pthread_t tid;
static bool started;
static int	ep = -1;
static int	stop_fd = -1;
static volatile int stopping;
static PGconn *conn;
static bool want_write;			/* EPOLLOUT registered */
static bool busy;				/* a fetch is in flight */
static bool busy_failed;		/* ... and its result was an error */
static int32_t busy_person;
static double next_connect;		/* monotonic seconds */
static double backoff = BACKOFF_MIN;

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
back_off(void)
{
	next_connect = mono() + backoff;
	backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
}

/* Closes the connection; the fetch in flight is made again later. */
static void
drop(const char *why)
{
	char		msg[200];

	if (!conn)
		return;
	snprintf(msg, sizeof(msg), "%s", why ? why : "");
	msg[strcspn(msg, "\r\n")] = 0;
	logmsg(LOG_WARNING, "encounter streams: database connection closed (%s); reconnecting", msg);
	metrics_db_error("connection_lost");
	epoll_ctl(ep, EPOLL_CTL_DEL, PQsocket(conn), NULL);
	db_close(conn);
	conn = NULL;
	want_write = false;
	if (busy)
		hub_fetch_failed(busy_person);
	busy = false;
	back_off();
}

/* A new connection that LISTENs (when the back-off allows an attempt);
 * every watched person is fetched again from their subscribers' positions. */
static void
connect_listen(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_DB};
	PGresult   *res;
	PGconn	   *c;

	if (mono() < next_connect)
		return;
	c = db_connect_new();
	if (!c)
	{
		back_off();
		return;
	}
	res = PQexec(c, "SET application_name = 'udaconnect-httpd streams'; "
				 "LISTEN udaconnect_encounter_person");
	if (PQresultStatus(res) != PGRES_COMMAND_OK || PQsetnonblocking(c, 1) != 0 ||
		epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(c), &ev) != 0)
	{
		logmsg(LOG_WARNING, "encounter streams: cannot LISTEN: %s", PQerrorMessage(c));
		PQclear(res);
		db_close(c);
		back_off();
		return;
	}
	PQclear(res);
	conn = c;
	backoff = BACKOFF_MIN;
	logmsg(LOG_INFO, "encounter streams: listening for encounter changes");
	hub_mark_all();
}

static void
set_write(bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = EV_DB};

	if (conn && on != want_write)
	{
		epoll_ctl(ep, EPOLL_CTL_MOD, PQsocket(conn), &ev);
		want_write = on;
	}
}

static void
flush(void)
{
	int			f = PQflush(conn);

	if (f < 0)
		drop(PQerrorMessage(conn));
	else
		set_write(f == 1);
}

/* Sends the next fetch the hub wants, if none is in flight. */
static void
send_next(void)
{
	int32_t		person;
	int64_t		version;
	int64_t		id;
	char		pb[16];
	char		vb[24];
	char		ib[24];
	const char *vals[6] = {"organizer", NULL, pb, vb, ib, FETCH_ROWS_TEXT};

	if (!conn || busy || !hub_next_fetch(&person, &version, &id))
		return;
	snprintf(pb, sizeof(pb), "%d", (int) person);
	snprintf(vb, sizeof(vb), "%lld", (long long) version);
	snprintf(ib, sizeof(ib), "%lld", (long long) id);
	busy = true;
	busy_failed = false;
	busy_person = person;
	if (!PQsendQueryPrepared(conn, db_stmt_name(S_ENCOUNTER_CHANGES), 6, vals, NULL, NULL, 0))
	{
		drop(PQerrorMessage(conn));
		return;
	}
	flush();
}

/* The rows of a fetch to the hub. */
static void
deliver(const PGresult *res)
{
	int			n = PQntuples(res);
	struct hub_change *rows = calloc((size_t) n + 1, sizeof(*rows));

	if (!rows)
	{
		hub_fetch_failed(busy_person);
		return;
	}
	for (int i = 0; i < n; i++)
	{
		rows[i].version = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		rows[i].id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		rows[i].kind = PQgetvalue(res, i, 2);
		rows[i].body = PQgetvalue(res, i, 3);
		rows[i].body_len = (size_t) PQgetlength(res, i, 3);
	}
	hub_deliver(busy_person, rows, n, n < FETCH_ROWS);
	free(rows);
}

/* What arrived: notifications, and the result of the fetch in flight. */
static void
read_input(void)
{
	PGnotify   *nf;
	PGresult   *res;

	if (!PQconsumeInput(conn))
	{
		drop(PQerrorMessage(conn));
		return;
	}
	while (busy && !PQisBusy(conn))
	{
		res = PQgetResult(conn);
		if (!res)
		{
			busy = false;
			if (busy_failed)
			{
				hub_fetch_failed(busy_person);
				/* a fetch that fails again and again is tried at the
				 * back-off's pace, not at once */
				drop("a fetch failed");
				return;
			}
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			deliver(res);
		else
		{
			logmsg(LOG_WARNING, "encounter streams: fetching the changes of person %d: %s",
				   (int) busy_person, PQresultErrorMessage(res));
			busy_failed = true;
		}
		PQclear(res);
	}
	while ((nf = PQnotifies(conn)))
	{
		hub_mark_persons(nf->extra);
		PQfreemem(nf);
	}
	if (PQstatus(conn) != CONNECTION_OK)
		drop(PQerrorMessage(conn));
}

/* Milliseconds until `when` (monotonic seconds), at least 0. */
static int
ms_until(double when)
{
	double		d = (when - mono()) * 1000;

	return d <= 0 ? 0 : d > 60000 ? 60000 : (int) d + 1;
}

static void
handle(const struct epoll_event *ev)
{
	uint64_t	v;

	if (ev->data.u32 == EV_WAKE)
	{
		if (read(hub_wake_fd(), &v, sizeof(v)) < 0 && errno != EAGAIN)
			logmsg(LOG_WARNING, "eventfd: %m");
	}
	else if (ev->data.u32 == EV_DB && conn)
	{
		if (ev->events & EPOLLOUT)
			flush();
		if (conn)
			read_input();
	}
}

static void *
stream_main(void *arg)
{
	struct epoll_event evs[4];
	double		next_tick = mono() + cfg.stream_heartbeat_s;
	int			timeout;
	int			n;

	(void) arg;
	while (!stopping)
	{
		if (!conn)
			connect_listen();
		send_next();
		timeout = ms_until(next_tick);
		if (!conn && ms_until(next_connect) < timeout)
			timeout = ms_until(next_connect);
		n = epoll_wait(ep, evs, 4, timeout);
		if (n < 0 && errno != EINTR)
		{
			logmsg(LOG_ERROR, "encounter streams: epoll_wait: %m");
			break;
		}
		for (int i = 0; i < n; i++)
			handle(&evs[i]);
		if (mono() >= next_tick)
		{
			hub_tick((int64_t) time(NULL));
			next_tick = mono() + cfg.stream_heartbeat_s;
		}
	}
	if (conn)
		db_close(conn);
	conn = NULL;
	return NULL;
}

int
stream_start(void)
{
	struct epoll_event wake = {.events = EPOLLIN, .data.u32 = EV_WAKE};
	struct epoll_event stop = {.events = EPOLLIN, .data.u32 = EV_STOP};
	int			e;

	ep = epoll_create1(EPOLL_CLOEXEC);
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ep < 0 || stop_fd < 0 ||
		epoll_ctl(ep, EPOLL_CTL_ADD, hub_wake_fd(), &wake) != 0 ||
		epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &stop) != 0)
	{
		logmsg(LOG_FATAL, "encounter streams: epoll: %m");
		return -1;
	}
	e = pthread_create(&tid, NULL, stream_main, NULL);
	if (e != 0)
	{
		logmsg(LOG_FATAL, "encounter streams: pthread_create: %s", strerror(e));
		return -1;
	}
	started = true;
	return 0;
}

void
stream_stop(void)
{
	uint64_t	one = 1;

	if (started)
	{
		stopping = 1;
		if (write(stop_fd, &one, sizeof(one)) < 0)
			logmsg(LOG_WARNING, "eventfd: %m");
		pthread_join(tid, NULL);
		started = false;
	}
	hub_end_all();
}
