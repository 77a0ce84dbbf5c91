/*
 * worker.c: the worker threads of udaconnect-httpd and their pipelined
 * database connections.
 *
 * Each worker thread runs its own libmicrohttpd daemon in "external epoll"
 * mode (all daemons share one listening socket, as MHD's own thread pool
 * does).  It never waits for the database.  It owns one libpq connection,
 * a pipelined one (libpq pipeline mode, non-blocking), for the hot read
 * routes: pipe_send() sends the statement and suspends the HTTP connection;
 * after every round of the event loop the statements of all requests that
 * arrived in it go to the server with ONE Sync, so one round trip (one
 * wake-up of the backend and of this thread) serves many requests.  Results
 * come back in order: each fills its request's struct pipe_wait and resumes
 * its connection.  Everything else goes to the statement threads
 * (dbpool.c), which are also the fallback when the pipelined connection is
 * down or a pipelined statement could not run (aborted pipeline, lost
 * connection, vanished prepared statement).
 *
 * With a read URL (UDACONNECT_DATABASE_READ_URL) the pipelined connection
 * is the read one, normally to a hot standby, and carries only the GET
 * routes' reads; the statement threads stay on the primary.  A read the standby
 * cannot give its own answer to (lost connection, recovery conflict, a
 * caller's write not replayed yet: ryw.c) comes back NULL and so runs on the
 * primary, which is the fallback: the client sees no error.  A slow standby
 * holds only the requests waiting for it, never the thread: the connection
 * is non-blocking like the primary's pipelined one, and either is made on a
 * thread of its own (connlink.c), the statements going to the statement
 * threads meanwhile.
 * One that libpq's host list made on the
 * primary (the standby was down) is given up when idle after
 * READ_RETRY_STANDBY seconds, so the next one tries the standby first.
 *
 * On this kind of machine a context switch or a loopback send costs far more
 * than the statement itself, so batching the round trips is what makes the
 * gateway fast; see docs/http.md.  This file must not call into the request
 * handling: it only fills the record the request gave it (the calls run one
 * way, from the handlers to here).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

/* a read connection that landed on the primary tries the standby again after */
#define READ_RETRY_STANDBY 30.0

/*
 * Results come back in order: while the oldest statement in flight has
 * been out this long (a slow plan, a lock), new reads go to the statement
 * threads rather than queue behind it.  Far above a normal round trip (a
 * few ms), far below a statement timeout.
 */
#define PIPE_STALL_SECONDS 0.1

/* the epoll tags of the pipelined connection's socket and of wake_fd (MHD's: 0) */
#define EV_DB 1
#define EV_WAKE 2

/* a statement in flight: the request waiting for it, or the replay
 * position question sent before a read (ryw.c) */
typedef struct qent
{
	struct pipe_wait *pw;		/* NULL: forgotten (pipe_release) */
	bool		check;			/* S_REPLAY_LSN for pw's read */
	double		sent_at;		/* monotonic seconds */
} qent;

typedef struct worker
{
	pthread_t	tid;
	struct MHD_Daemon *d;
	int			ep;				/* epoll: MHD's epoll fd, the pipelined socket,
								 * wake_fd */
	int			wake_fd;		/* eventfd: stop, or workers_wake() */
	atomic_bool wake_pending;	/* wake_fd written, not yet seen */
	PGconn	   *aconn;			/* pipelined connection (NULL = down) */
	int			asock;			/* its socket as registered in ep (-1) */
	bool		want_write;		/* EPOLLOUT registered (output not flushed) */
	conn_link	cl;				/* how the pipelined connection is made */
	/* ... on a hot standby, its replay position */
	bool		on_standby;
	uint64_t	replayed;		/* the latest this connection reported */
	double		connected_at;	/* monotonic seconds */
	/* requests waiting for a result, in the order their statements were sent */
	qent	   *q;
	size_t		qcap;
	size_t		qhead;
	size_t		qlen;
	int			unsynced;		/* statements sent since the last Sync */
	int			jobs;			/* requests waiting for a statement thread */
} worker;

static worker *workers;
static int	nworkers;
static volatile int stopping;
static __thread worker *self;

static void
ep_set(worker *w, bool want_write)
{
	struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.u32 = EV_DB};

	if (w->asock >= 0 && want_write != w->want_write)
	{
		epoll_ctl(w->ep, EPOLL_CTL_MOD, w->asock, &ev);
		w->want_write = want_write;
	}
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static qent
q_pop(worker *w)
{
	qent		e = w->q[w->qhead];

	w->qhead = (w->qhead + 1) % w->qcap;
	w->qlen--;
	return e;
}

static int
q_push(worker *w, struct pipe_wait *pw, bool check)
{
	size_t		ncap;
	qent	   *nq;

	if (w->qlen == w->qcap)
	{
		ncap = w->qcap ? 2 * w->qcap : 64;
		nq = malloc(ncap * sizeof(*nq));
		if (!nq)
			return -1;
		for (size_t i = 0; i < w->qlen; i++)
			nq[i] = w->q[(w->qhead + i) % w->qcap];
		free(w->q);
		w->q = nq;
		w->qcap = ncap;
		w->qhead = 0;
	}
	w->q[(w->qhead + w->qlen) % w->qcap] = (qent) {pw, check, mono_s()};
	w->qlen++;
	return 0;
}

/* The result of a waiting request's statement (NULL: a statement thread
 * runs it); libmicrohttpd calls its handler again. */
static void
deliver(struct pipe_wait *pw, PGresult *res)
{
	pw->waiting = false;
	pw->done = true;
	pw->res = res;
	MHD_resume_connection(pw->conn);
}

/* Drops the pipelined connection; every waiting request runs synchronously. */
static void
async_drop(worker *w)
{
	qent		e;

	if (w->aconn)
	{
		if (w->asock >= 0)
			epoll_ctl(w->ep, EPOLL_CTL_DEL, w->asock, NULL);
		db_close(w->aconn);
		w->aconn = NULL;
		w->asock = -1;
		w->want_write = false;
		w->unsynced = 0;
	}
	while (w->qlen)
	{
		e = q_pop(w);
		if (e.check)
			continue;			/* its read follows */
		metrics_db_busy(-1);
		if (e.pw)				/* NULL: forgotten (pipe_release) */
		{
			if (db_reads_split())
				metrics_db_read("lost");
			deliver(e.pw, NULL);
		}
	}
}

/* The connection is to a server in hot standby (reported by PostgreSQL 14+;
 * it follows a promotion). */
static bool
in_hot_standby(PGconn *c)
{
	const char *v = PQparameterStatus(c, "in_hot_standby");

	return v && strcmp(v, "on") == 0;
}

static PGconn *
async_conn(worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_DB};
	bool		read = db_reads_split();
	PGconn	   *c;

	/* the read URL's host list fell back on the primary: try the standby again */
	if (w->aconn && read && w->qlen == 0 && !in_hot_standby(w->aconn) &&
		mono_s() - w->connected_at > READ_RETRY_STANDBY)
		async_drop(w);
	if (w->aconn)
		return w->aconn;
	c = conn_link_get(&w->cl);
	if (!c)
		return NULL;
	if (PQenterPipelineMode(c) != 1 || PQsetnonblocking(c, 1) != 0 ||
		epoll_ctl(w->ep, EPOLL_CTL_ADD, PQsocket(c), &ev) != 0)
	{
		logmsg(LOG_WARNING, "cannot set up the pipelined connection: %s", PQerrorMessage(c));
		db_close(c);
		conn_link_failed(&w->cl);
		return NULL;
	}
	w->aconn = c;
	w->asock = PQsocket(c);
	w->want_write = false;
	w->replayed = 0;
	w->connected_at = mono_s();
	return c;
}

int
pipe_send(struct pipe_wait *pw, enum stmt s, int n, const char *const *values)
{
	worker	   *w = self;
	PGconn	   *c;
	bool		check;

	if (!w || stopping || !(c = async_conn(w)))
		return -1;
	if (w->qlen > 0 && mono_s() - w->q[w->qhead].sent_at > PIPE_STALL_SECONDS)
	{
		metrics_db_pipe_stalled();
		return -1;
	}
	w->on_standby = in_hot_standby(c);
	pw->stale = false;
	pw->standby = false;

	/*
	 * The caller wrote after what this standby is known to have replayed:
	 * ask where its replay stands, in the same round, before the read (whose
	 * snapshot is then at least as recent).
	 */
	check = w->on_standby && pw->min_lsn > w->replayed;
	if (check && (q_push(w, pw, true) < 0 ||
				  !PQsendQueryPrepared(c, db_stmt_name(S_REPLAY_LSN), 0, NULL, NULL, NULL, 0)))
	{
		async_drop(w);			/* the pushed entry (if any) goes with it */
		return -1;
	}
	if (q_push(w, pw, false) < 0)
	{
		if (check)
			async_drop(w);
		return -1;
	}
	if (!PQsendQueryPrepared(c, db_stmt_name(s), n, values, NULL, NULL, 0))
	{
		w->qlen--;				/* not sent: the caller runs it synchronously */
		async_drop(w);
		return -1;
	}
	w->unsynced += check ? 2 : 1;
	metrics_db_busy(+1);
	pw->waiting = true;
	MHD_suspend_connection(pw->conn);
	return 0;
}

void
pipe_release(struct pipe_wait *pw)
{
	worker	   *w = self;

	if (pw->waiting && w)
		for (size_t i = 0; i < w->qlen; i++)
			if (w->q[(w->qhead + i) % w->qcap].pw == pw)
				w->q[(w->qhead + i) % w->qcap].pw = NULL;	/* its result is dropped */
	pw->waiting = false;
	PQclear(pw->res);
	pw->res = NULL;
}

/* End of a loop round: one Sync (and flush) for the statements of the round. */
static void
async_sync(worker *w)
{
	int			f;

	if (!w->aconn)
		return;
	if (w->unsynced)
	{
		w->unsynced = 0;
		if (PQpipelineSync(w->aconn) != 1)
		{
			async_drop(w);
			return;
		}
	}
	f = PQflush(w->aconn);
	if (f < 0)
		async_drop(w);
	else
		ep_set(w, f == 1);
}

/*
 * The answer to the replay position question sent before pw's read: marks
 * the read stale when this standby has not replayed the caller's write yet.
 * NULL (the server is no longer in recovery: promoted) has everything.
 */
static void
take_check(worker *w, struct pipe_wait *pw, PGresult *res)
{
	uint64_t	lsn;
	bool		ok = false;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		if (PQgetisnull(res, 0, 0))
		{
			w->replayed = UINT64_MAX;
			ok = true;
		}
		else if (parse_lsn(PQgetvalue(res, 0, 0), &lsn) == 0)
		{
			if (lsn > w->replayed)
				w->replayed = lsn;
			ok = pw && w->replayed >= pw->min_lsn;
		}
	}
	if (pw && !ok)
		pw->stale = true;
}

/*
 * A result that is not the statement's own answer on this connection, so
 * the request runs it on the blocking connection instead: the session
 * ended, the prepared statement vanished, an earlier statement of the
 * batch failed; and on a standby, a recovery conflict cancelled it (40001),
 * it tried to write (25006: it belongs on the primary), or the standby had
 * not replayed the caller's write.  *why: the metrics' reason, or NULL.
 */
static bool
not_own_answer(worker *w, struct pipe_wait *pw, ExecStatusType st, const char *state,
			   bool lost, bool unprepared, const char **why)
{
	*why = lost || unprepared ? "lost" : st == PGRES_PIPELINE_ABORTED ? "conflict" : NULL;
	if (st == PGRES_PIPELINE_ABORTED || lost || unprepared)
		return true;
	if (w->on_standby && state && (strcmp(state, "40001") == 0 || strcmp(state, "25006") == 0))
	{
		if (strcmp(state, "25006") == 0)
			logmsg(LOG_WARNING, "a statement tried to write on the standby: run on the primary");
		*why = "conflict";
		return true;
	}
	if (pw && pw->stale)
	{
		*why = "lagging";
		return true;
	}
	return false;
}

/*
 * The result of the oldest statement in flight: to its request, or the
 * connection is dropped when it is not the statement's own answer that can
 * be trusted.  False when the connection was dropped.
 */
static bool
take_result(worker *w, PGconn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	const char *state = NULL;
	const char *why;
	qent		e;
	bool		lost;
	bool		unprepared;
	PGresult   *end;

	e = q_pop(w);
	if (st == PGRES_FATAL_ERROR)
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	lost = st == PGRES_FATAL_ERROR &&
		(PQstatus(c) != CONNECTION_OK || !state ||
		 strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0);

	/*
	 * The session lost its prepared statements (e.g. DISCARD ALL by a
	 * pooler): start over with a new connection, which prepares them.
	 */
	unprepared = state && strcmp(state, "26000") == 0;
	if (e.check)
	{
		take_check(w, e.pw, res);
		PQclear(res);
	}
	else
	{
		metrics_db_busy(-1);
		if (not_own_answer(w, e.pw, st, state, lost, unprepared, &why))
		{
			PQclear(res);
			res = NULL;
		}
		if (e.pw && db_reads_split())
			metrics_db_read(why ? why : w->on_standby ? "standby" : "unavailable");
		if (e.pw)
		{
			e.pw->standby = res && w->on_standby;
			deliver(e.pw, res);
		}
		else
			PQclear(res);
	}
	if (lost || unprepared)
	{
		if (lost)
			metrics_db_error("connection_lost");
		async_drop(w);
		return false;
	}
	/* drop the NULL that ends this statement's results */
	if (!PQisBusy(c))
	{
		end = PQgetResult(c);
		if (end)
		{
			/* more than one result for one statement: cannot happen for our
			 * single-row SELECTs */
			PQclear(end);
			async_drop(w);
			return false;
		}
	}
	return true;
}

/* Reads what arrived (when `consume`; else only what libpq has buffered
 * already) and hands every complete result to its request. */
static void
async_read(worker *w, bool consume)
{
	PGconn	   *c = w->aconn;
	PGresult   *res;

	if (!c)
		return;
	if (consume && !PQconsumeInput(c))
	{
		async_drop(w);
		return;
	}
	while (!PQisBusy(c))
	{
		res = PQgetResult(c);
		/* NULL: the end of one statement's results, or nothing pending */
		if (!res && (PQisBusy(c) || !(res = PQgetResult(c))))
			break;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
		{
			PQclear(res);
			continue;
		}
		if (w->qlen == 0)
		{
			/* a result nobody waits for: the protocol state is not what we
			 * think; start over */
			PQclear(res);
			async_drop(w);
			return;
		}
		if (!take_result(w, c, res))
			return;
	}
	if (PQstatus(c) != CONNECTION_OK)
		async_drop(w);
}

/* One round of the event loop: wait, then serve the database and MHD; false
 * when the loop cannot go on. */
static bool
worker_round(worker *w)
{
	struct epoll_event evs[8];
	MHD_UNSIGNED_LONG_LONG to;
	int			timeout = 1000;
	int			n;
	bool		db = false;

	if (MHD_get_timeout(w->d, &to) == MHD_YES && to < 1000)
		timeout = (int) to;
	n = epoll_wait(w->ep, evs, 8, timeout);
	if (n < 0 && errno != EINTR)
	{
		logmsg(LOG_ERROR, "epoll_wait: %m");
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		if (evs[i].data.u32 == EV_DB)
			db = true;
		else if (evs[i].data.u32 == EV_WAKE)
		{
			uint64_t	v;

			/*
			 * read, then cleared, then MHD_run: a resume before the clear is
			 * served by this round's MHD_run, one after it writes wake_fd
			 * again (cleared first, a write between the two would be read
			 * here and leave the flag set with nothing to wake the loop)
			 */
			if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				logmsg(LOG_WARNING, "eventfd: %m");
			atomic_store(&w->wake_pending, false);
		}
	}
	if (db && w->aconn)
	{
		if (w->want_write)
			async_sync(w);
		async_read(w, true);
	}
	MHD_run(w->d);
	async_sync(w);
	/* libpq reads input while it cannot send (a full socket buffer): results
	 * it buffered that way raise no epoll event */
	if (w->aconn && w->qlen && !PQisBusy(w->aconn))
	{
		async_read(w, false);
		MHD_run(w->d);
		async_sync(w);
	}
	return true;
}

void
workers_jobs(int delta)
{
	self->jobs += delta;
}

bool
workers_stopping(void)
{
	return stopping != 0;
}

/*
 * Stopping: serves the daemon for up to `seconds`, until no request of it
 * waits for a statement thread (or, `idle`, until nothing happened for
 * 50 ms: the answers queued are written out).
 */
static void
serve_until(worker *w, double seconds, bool idle)
{
	struct epoll_event evs[8];
	uint64_t	v;
	double		deadline = mono_s() + seconds;
	int			n;

	while ((idle || w->jobs > 0) && mono_s() < deadline)
	{
		n = epoll_wait(w->ep, evs, 8, idle ? 50 : 100);
		if (n < 0 && errno != EINTR)
			break;
		if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			logmsg(LOG_WARNING, "eventfd: %m");
		atomic_store(&w->wake_pending, false);
		MHD_run(w->d);
		if (idle && n == 0)
			break;
	}
}

/*
 * Stopping, with no new connection taken: every request of the daemon
 * waiting for a statement thread is answered before the daemon stops
 * (libmicrohttpd must not stop with a connection suspended).  They get as
 * long as a statement may take (its timeout, a connection attempt, some
 * slack); then the queued ones are given back unrun and the running ones
 * cancelled; last, what still runs is given back without its outcome.
 */
static void
drain_jobs(worker *w)
{
	serve_until(w, cfg.statement_timeout_ms / 1000.0 + 10, false);
	if (w->jobs > 0)
	{
		logmsg(LOG_WARNING, "stopping: %d requests still wait for the database; "
			   "their statements are cancelled", w->jobs);
		db_jobs_abandon(w->d, false);
		serve_until(w, 2, false);
	}
	if (w->jobs > 0)
	{
		db_jobs_abandon(w->d, true);
		serve_until(w, 1, false);
	}
	/* the last answers written, not cut off by the stop */
	serve_until(w, 2, true);
}

static void *
worker_main(void *arg)
{
	worker	   *w = arg;
	MHD_socket	lfd;

	self = w;
	/* the connection is made before the first read needs it */
	conn_link_get(&w->cl);
	while (!stopping && worker_round(w))
		;
	/*
	 * stopping: no new connection; the pipelined requests go to the
	 * statement threads, which answer them and every other waiting request,
	 * then MHD stops
	 */
	lfd = MHD_quiesce_daemon(w->d);
	async_drop(w);
	conn_link_abandon(&w->cl);
	MHD_run(w->d);
	drain_jobs(w);
	MHD_stop_daemon(w->d);
	w->d = NULL;
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	return NULL;
}

/* Worker w's daemon and epoll set: 0, or -1 (logged). */
static int
worker_init(worker *w, struct MHD_Daemon *(*make) (void *cls), void *cls)
{
	const union MHD_DaemonInfo *info;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
	struct epoll_event wev = {.events = EPOLLIN, .data.u32 = EV_WAKE};

	w->asock = -1;
	w->cl.read = db_reads_split();
	w->d = make(cls);
	if (!w->d)
		return -1;
	info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!info || w->ep < 0 || w->wake_fd < 0 ||
		epoll_ctl(w->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev) != 0 ||
		epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &wev) != 0)
	{
		logmsg(LOG_FATAL, "epoll: %m");
		return -1;
	}
	return 0;
}

int
workers_start(int n, struct MHD_Daemon *(*make) (void *cls), void *cls)
{
	int			e;

	workers = calloc((size_t) n, sizeof(*workers));
	if (!workers)
		return -1;
	for (int i = 0; i < n; i++)
	{
		if (worker_init(&workers[i], make, cls) != 0)
			return -1;
		nworkers = i + 1;
	}
	for (int i = 0; i < n; i++)
	{
		e = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
		if (e != 0)
		{
			logmsg(LOG_FATAL, "pthread_create: %s", strerror(e));
			exit(1);
		}
	}
	return 0;
}

/*
 * In the "external polling" mode the workers run libmicrohttpd in,
 * MHD_resume_connection() from another thread does not wake the loop that
 * owns the connection: it would only be served at the loop's next event or
 * timeout (up to a second).  The stream thread calls this after resuming a
 * connection of daemon d; one write per worker until it has woken.
 */
void
workers_wake(const struct MHD_Daemon *d)
{
	uint64_t	one = 1;

	for (int i = 0; i < nworkers; i++)
		if (workers[i].d == d)
		{
			if (!atomic_exchange(&workers[i].wake_pending, true) &&
				write(workers[i].wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				logmsg(LOG_WARNING, "eventfd: %m");
			return;
		}
}

void
workers_stop(void)
{
	uint64_t	one = 1;

	stopping = 1;
	for (int i = 0; i < nworkers; i++)
		if (write(workers[i].wake_fd, &one, sizeof(one)) < 0)
			logmsg(LOG_WARNING, "eventfd: %m");
	for (int i = 0; i < nworkers; i++)
	{
		pthread_join(workers[i].tid, NULL);
		close(workers[i].ep);
		close(workers[i].wake_fd);
		free(workers[i].q);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
}
