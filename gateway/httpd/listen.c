/*
 * listen.c: the stream thread of udaconnect-httpd: the one database
 * connection of the process that LISTENs on udaconnect_encounter_person
 * and fetches what the live encounter streams send (hub.c holds the
 * streams).
 *
 * A notification names the persons whose encounters changed; those of them
 * that are watched are marked (a person nobody watches costs nothing).
 * The thread then fetches api_encounter_changes for each marked person,
 * after the smallest position among that person's subscribers, once for
 * all of them, as an organizer (sse.c asked the database for the
 * subscriber's own right before it subscribed), and hands the rows to the
 * hub, which queues each subscriber what it lacks.  Up to FETCH_PERSONS
 * persons go in one statement (unnest ... LATERAL): an ingest batch names
 * many persons at once, and one round trip each would make the last of
 * them wait for all the others (hundreds of ms on a busy machine).  The connection is
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

/* rows a fetch takes at most per person: a subscriber far behind catches
 * up in pages */
#define FETCH_ROWS 100
#define FETCH_ROWS_TEXT "100"
/* persons one fetch takes at most */
#define FETCH_PERSONS 64
#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 10.0
#define BACKOFF_STABLE 30.0		/* seconds up that reset the back-off */

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
static int32_t busy_persons[FETCH_PERSONS];	/* ... of these persons */
static int	nbusy;
static int	solo;				/* fetches to make of one person each */
static double next_connect;		/* monotonic seconds */
static double backoff = BACKOFF_MIN;
static double connected_at;		/* when the connection came up; 0: down */

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The next connect waits `backoff`, doubling up to BACKOFF_MAX.  It starts
 * again from BACKOFF_MIN only after a connection that stayed up a while: one
 * that connects and then fails at once (a fetch the database refuses every
 * time) must not reconnect twice a second for ever.
 */
static void
back_off(void)
{
	if (connected_at > 0 && mono() - connected_at > BACKOFF_STABLE)
		backoff = BACKOFF_MIN;
	connected_at = 0;
	next_connect = mono() + backoff;
	backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
}

/* The fetch in flight failed: the hub asks again for its persons. */
static void
busy_fail(void)
{
	for (int i = 0; i < nbusy; i++)
		hub_fetch_failed(busy_persons[i]);
	nbusy = 0;
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
		busy_fail();
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
	/* always the primary: NOTIFY is not delivered on a standby */
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
	connected_at = mono();
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

/* Appends ",<v>" (or "{<v>" for the first) to the array literal b at *n. */
static void
array_add(char *b, size_t *n, size_t cap, int k, long long v)
{
	*n += (size_t) snprintf(b + *n, cap - *n, "%c%lld", k ? ',' : '{', v);
}

/* Sends the next fetch the hub wants (up to FETCH_PERSONS persons), if none
 * is in flight. */
static void
send_next(void)
{
	int32_t		person;
	int64_t		version;
	int64_t		id;
	static char pb[FETCH_PERSONS * 12 + 2];
	static char vb[FETCH_PERSONS * 21 + 2];
	static char ib[FETCH_PERSONS * 21 + 2];
	size_t		pn = 0;
	size_t		vn = 0;
	size_t		in = 0;
	const char *vals[6] = {"organizer", NULL, pb, vb, ib, FETCH_ROWS_TEXT};

	if (!conn || busy)
		return;
	nbusy = 0;
	while (nbusy < (solo ? 1 : FETCH_PERSONS) && hub_next_fetch(&person, &version, &id))
	{
		array_add(pb, &pn, sizeof(pb), nbusy, person);
		array_add(vb, &vn, sizeof(vb), nbusy, version);
		array_add(ib, &in, sizeof(ib), nbusy, id);
		busy_persons[nbusy++] = person;
	}
	if (nbusy == 0)
		return;
	if (solo)
		solo--;
	snprintf(pb + pn, sizeof(pb) - pn, "}");
	snprintf(vb + vn, sizeof(vb) - vn, "}");
	snprintf(ib + in, sizeof(ib) - in, "}");
	busy = true;
	busy_failed = false;
	if (!PQsendQueryPrepared(conn, db_stmt_name(S_ENCOUNTER_CHANGES), 6, vals, NULL, NULL, 0))
	{
		drop(PQerrorMessage(conn));
		return;
	}
	flush();
}

/*
 * The rows of a fetch to the hub, person by person (the rows come ordered
 * by the persons' places in the fetch, each person's in (version, id)
 * order); a person without rows is told so too.
 */
static void
deliver(const PGresult *res)
{
	int			n = PQntuples(res);
	struct hub_change *rows = calloc((size_t) n + 1, sizeof(*rows));
	int			r = 0;

	if (!rows)
	{
		busy_fail();
		return;
	}
	for (int i = 0; i < n; i++)
	{
		rows[i].version = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		rows[i].id = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		rows[i].kind = PQgetvalue(res, i, 3);
		rows[i].body = PQgetvalue(res, i, 4);
		rows[i].body_len = (size_t) PQgetlength(res, i, 4);
	}
	for (int k = 0; k < nbusy; k++)
	{
		int			first = r;

		while (r < n && strtol(PQgetvalue(res, r, 0), NULL, 10) == busy_persons[k])
			r++;
		hub_deliver(busy_persons[k], rows + first, r - first, r - first < FETCH_ROWS);
	}
	nbusy = 0;
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
				int			k = nbusy;

				busy_fail();
				/* one person's fetch failing (a person just erased) must not
				 * hold back the others: they are fetched one by one next */
				if (k > 1)
				{
					solo = k;
					break;
				}
				if (solo > 0)
					break;		/* the rest of that batch, one by one */
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
			logmsg(LOG_WARNING, "encounter streams: fetching the changes of %d person(s) (%d first): %s",
				   nbusy, nbusy ? (int) busy_persons[0] : 0, PQresultErrorMessage(res));
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
