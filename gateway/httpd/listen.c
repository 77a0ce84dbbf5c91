/*
 * listen.c: the stream thread of udaconnect-httpd: the one database
 * connection of the process that LISTENs on udaconnect_encounter and
 * fetches what the live encounter streams send (hub.c holds the streams,
 * hub_live.c decides what each watched person needs).
 *
 * A notification announces a version's changes with their persons; the hub
 * keeps those of the watched persons (a person nobody watches costs
 * nothing).  One of udaconnect_person_erased names an erased person: the
 * hub has the person checked (hub_erased.c), and the thread sends the
 * checks it asks for, whether each person still exists (api_persons_gone,
 * FETCH_PERSONS a statement), on this same connection.  The thread then fetches, for each person the hub names,
 * either what was announced, by id (api_encounter_changes_by_id), for the
 * person's live subscribers, or the changes after a position
 * (api_encounter_changes), for subscribers catching up; once for all of a
 * person's subscribers, as an organizer (sse.c asked the database for the
 * subscriber's own right before it subscribed).  The hub queues each
 * subscriber what it lacks.  Up to FETCH_PERSONS persons go in one
 * statement (unnest ... LATERAL), one statement of each kind at a time: an
 * ingest batch names many persons at once, and one round trip each would
 * make the last of them wait for all the others.  The connection is
 * non-blocking and driven by this thread's own epoll loop, which also runs
 * the heartbeat; no worker waits on it, and it waits on no client.
 *
 * When the connection breaks it is made again with a doubling back-off
 * (0.5 s up to 10 s), and once LISTEN is back every subscriber catches up
 * from its own position, so the notifications missed meanwhile lose
 * nothing.  (An attempt to connect blocks this thread for at most libpq's
 * connect_timeout, 3 s, while the database is unreachable; the workers
 * serve the streams meanwhile.)  This file must not answer requests nor
 * decide who may watch whom or who needs what.
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

#include "encnotify.h"
#include "httpd.h"

/* rows a scan takes at most per person: a subscriber far behind catches
 * up in pages */
#define FETCH_ROWS 100
#define FETCH_ROWS_TEXT "100"
/* rows a live fetch takes at most per person (its ids and the removals
 * announced with them); a full one leaves the rest to a scan */
#define LIVE_ROWS 2000
#define LIVE_ROWS_TEXT "2000"
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
/*
 * which of the persons still exist: a check (hub_erased.c), one row each
 * in the persons' order, true when gone (the extension's rule, shared with
 * grpcd); not prepared (db.c prepares the API's statements)
 */
static const char SQL_GONE[] =
"SELECT gone FROM udaconnect.api_persons_gone($1::integer[]) ORDER BY ord";

/*
 * The same against an extension older than 1.8 (no api_persons_gone: the
 * package is upgraded, the daemon restarted, ALTER EXTENSION ... UPDATE
 * not yet run): read from the view udaconnect_api may read.  Otherwise
 * every check would fail, and with it the connection, again and again.
 * Chosen after a 42883 on the connection; a new connection tries anew.
 */
static const char SQL_GONE_OLD[] =
"SELECT NOT EXISTS (SELECT 1 FROM udaconnect.api_person_public q WHERE q.id = x.p) "
"FROM unnest($1::integer[]) WITH ORDINALITY AS x(p, o) ORDER BY x.o";
static bool gone_old;

/* the fetches of one statement: its persons and its array parameters */
struct batch
{
	bool		check;			/* SQL_GONE */
	bool		live;			/* api_encounter_changes_by_id, else a scan */
	int			n;
	int32_t		persons[FETCH_PERSONS];
	char		p[FETCH_PERSONS * 12 + 2];	/* persons */
	char		v[FETCH_PERSONS * 21 + 2];	/* after versions */
	char		i[FETCH_PERSONS * 21 + 2];	/* a scan: after ids; live: up to versions */
	char		s[FETCH_PERSONS * 12 + 2];	/* live: each person's ids in ids[s..e] */
	char		e[FETCH_PERSONS * 12 + 2];
	size_t		pn,
				vn,
				in,
				sn,
				en;
	char	   *ids;			/* live: every person's ids, one array literal */
	size_t		idn;
	size_t		idcap;
	int			nids;
};

static PGconn *conn;
static bool want_write;			/* EPOLLOUT registered */
static struct batch live_b = {.live = true};
static struct batch scan_b;
static struct batch check_b = {.check = true};
static struct batch *busy;		/* the batch in flight */
static double busy_since;		/* ... sent then (monotonic seconds) */
static bool busy_failed;		/* ... and its result was an error */
static bool busy_old;			/* ... a check the extension is too old for */
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

static void
batch_clear(struct batch *b)
{
	b->n = 0;
	b->pn = b->vn = b->in = b->sn = b->en = b->idn = 0;
	b->nids = 0;
}

/* The batch's fetches failed (or will not be sent): the hub asks again. */
static void
batch_fail(struct batch *b)
{
	for (int k = 0; k < b->n; k++)
		hub_fetch_failed(b->persons[k]);
	batch_clear(b);
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
	batch_fail(&live_b);
	batch_fail(&scan_b);
	batch_fail(&check_b);
	busy = NULL;
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
				 "LISTEN udaconnect_encounter; LISTEN udaconnect_person_erased");
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
	gone_old = false;
	connected_at = mono();
	logmsg(LOG_INFO, "encounter streams: listening for encounter changes (%s)",
		   cfg.stream_by_id ? "read by id" : "read by version");
	hub_listening();
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

/* Closes the array literal b at n ("{}" when empty). */
static void
array_end(char *b, size_t n, size_t cap)
{
	snprintf(b + n, cap - n, "%s", n ? "}" : "{}");
}

/* Adds a live fetch's ids to the batch's one literal; false: no memory. */
static bool
add_ids(struct batch *b, const int64_t *ids, int n)
{
	size_t		need = b->idn + (size_t) n * 21 + 3;
	char	   *nb;

	if (need > b->idcap)
	{
		size_t		ncap = b->idcap ? b->idcap : 4096;

		while (ncap < need)
			ncap *= 2;
		if (!(nb = realloc(b->ids, ncap)))
			return false;
		b->ids = nb;
		b->idcap = ncap;
	}
	for (int k = 0; k < n; k++)
		array_add(b->ids, &b->idn, b->idcap, b->nids + k, ids[k]);
	b->nids += n;
	return true;
}

static void
batch_add(struct batch *b, const struct hub_fetch *f, const int64_t *ids)
{
	if (b->live && !add_ids(b, ids, f->nids))
	{
		hub_fetch_failed(f->person);
		return;
	}
	array_add(b->p, &b->pn, sizeof(b->p), b->n, f->person);
	if (b->check)
	{
		b->persons[b->n++] = f->person;
		return;
	}
	array_add(b->v, &b->vn, sizeof(b->v), b->n, f->version);
	array_add(b->i, &b->in, sizeof(b->i), b->n, b->live ? f->upto : f->id);
	if (b->live)
	{
		/* 1-based, inclusive: [s, e] is empty when e < s */
		array_add(b->s, &b->sn, sizeof(b->s), b->n, b->nids - f->nids + 1);
		array_add(b->e, &b->en, sizeof(b->e), b->n, b->nids);
	}
	b->persons[b->n++] = f->person;
}

/* The fetches the hub wants, up to FETCH_PERSONS of each kind. */
static void
fill(void)
{
	static int64_t ids[ENCN_CHAIN_MAX_IDS];
	struct hub_fetch f;
	int			cap = solo ? 1 : FETCH_PERSONS;

	while (live_b.n < cap && scan_b.n < cap && check_b.n < cap && hub_next_fetch(&f, ids))
		batch_add(f.check ? &check_b : f.live ? &live_b : &scan_b, &f, ids);
	if (solo && (live_b.n || scan_b.n || check_b.n))
		solo--;
}

/* Sends b's statement: false when libpq could not. */
static bool
send_batch(struct batch *b)
{
	const char *vals[9] = {"organizer", NULL};

	array_end(b->p, b->pn, sizeof(b->p));
	if (b->check)
	{
		vals[0] = b->p;
		return PQsendQueryParams(conn, gone_old ? SQL_GONE_OLD : SQL_GONE, 1, NULL, vals,
								 NULL, NULL, 0);
	}
	array_end(b->v, b->vn, sizeof(b->v));
	array_end(b->i, b->in, sizeof(b->i));
	vals[2] = b->p;
	vals[3] = b->v;
	vals[4] = b->i;
	if (b->live)
	{
		array_end(b->s, b->sn, sizeof(b->s));
		array_end(b->e, b->en, sizeof(b->e));
		array_end(b->ids, b->idn, b->idcap);
		vals[5] = b->s;
		vals[6] = b->e;
		vals[7] = b->ids;
		vals[8] = LIVE_ROWS_TEXT;
		return PQsendQueryPrepared(conn, db_stmt_name(S_ENCOUNTER_CHANGES_BY_ID), 9, vals,
								   NULL, NULL, 0);
	}
	vals[5] = FETCH_ROWS_TEXT;
	return PQsendQueryPrepared(conn, db_stmt_name(S_ENCOUNTER_CHANGES), 6, vals, NULL, NULL, 0);
}

/* Sends the next batch (live fetches first, checks last), if none is in flight. */
static void
send_next(void)
{
	struct batch *b;

	if (!conn || busy)
		return;
	if (live_b.n == 0 && scan_b.n == 0 && check_b.n == 0)
		fill();
	b = live_b.n ? &live_b : scan_b.n ? &scan_b : check_b.n ? &check_b : NULL;
	if (!b)
		return;
	busy = b;
	busy_since = mono();
	busy_failed = false;
	busy_old = false;
	if (!send_batch(b))
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
deliver(const PGresult *res, struct batch *b)
{
	int			n = PQntuples(res);
	int			limit = b->live ? LIVE_ROWS : FETCH_ROWS;
	struct hub_change *rows = calloc((size_t) n + 1, sizeof(*rows));
	int			r = 0;

	if (!rows)
	{
		batch_fail(b);
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
	for (int k = 0; k < b->n; k++)
	{
		int			first = r;

		while (r < n && strtol(PQgetvalue(res, r, 0), NULL, 10) == b->persons[k])
			r++;
		hub_deliver(b->persons[k], rows + first, r - first, r - first < limit);
	}
	batch_clear(b);
	free(rows);
}

/* A check's answer to the hub, person by person (one row each, in order). */
static void
deliver_check(const PGresult *res, struct batch *b)
{
	if (PQntuples(res) != b->n)
	{
		logmsg(LOG_WARNING, "encounter streams: a check of %d person(s) came back with %d row(s)",
			   b->n, PQntuples(res));
		batch_fail(b);
		return;
	}
	for (int k = 0; k < b->n; k++)
		hub_checked(b->persons[k], strcmp(PQgetvalue(res, k, 0), "t") == 0);
	batch_clear(b);
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
			struct batch *b = busy;

			if (!b->check)
				metrics_stream_statement(b->live, mono() - busy_since);
			busy = NULL;
			if (busy_old)
			{
				batch_fail(b);	/* asked again at once, the old way */
				break;
			}
			if (busy_failed)
			{
				int			k = b->n;

				batch_fail(b);
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
		if (PQresultStatus(res) == PGRES_TUPLES_OK && busy->check)
			deliver_check(res, busy);
		else if (PQresultStatus(res) == PGRES_TUPLES_OK)
			deliver(res, busy);
		else if (busy->check && !gone_old &&
				 strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
						PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "42883") == 0)
		{
			logmsg(LOG_WARNING, "encounter streams: the database's pg_udaconnect is older than 1.8"
				   " (no api_persons_gone): the persons' checks read api_person_public until it is"
				   " updated (ALTER EXTENSION pg_udaconnect UPDATE)");
			gone_old = true;
			busy_old = true;
		}
		else
		{
			logmsg(LOG_WARNING, "encounter streams: %s of %d person(s) (%d first): %s",
				   busy->check ? "checking the existence" : busy->live ?
				   "reading by id the changes" : "reading the changes", busy->n,
				   busy->n ? (int) busy->persons[0] : 0, PQresultErrorMessage(res));
			busy_failed = true;
		}
		PQclear(res);
	}
	while ((nf = PQnotifies(conn)))
	{
		if (strcmp(nf->relname, "udaconnect_encounter") == 0)
			hub_notified(nf->extra);
		else if (strcmp(nf->relname, "udaconnect_person_erased") == 0)
			hub_erased(nf->extra);
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
	double		erased_at;
	int			timeout;
	int			n;

	(void) arg;
	while (!stopping)
	{
		if (!conn)
			connect_listen();
		erased_at = hub_erased_tick();
		send_next();
		timeout = ms_until(next_tick);
		if (!conn && ms_until(next_connect) < timeout)
			timeout = ms_until(next_connect);
		if (erased_at > 0 && ms_until(erased_at) < timeout)
			timeout = ms_until(erased_at);
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
