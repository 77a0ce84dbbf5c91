/*
 * connlink.c: making a worker's pipelined connection, to the primary or to
 * the read URL (UDACONNECT_DATABASE_READ_URL), without ever making the
 * worker wait for it (udaconnect-httpd).
 *
 * Connecting may wait: a host that drops packets holds libpq for the
 * connect_timeout, per host of the list, and a reachable one takes round
 * trips to log in and prepare the statements.  So each attempt runs on a
 * detached thread of its own (db_connect_attempt()),
 * and the worker only looks whether it is done: until then, and after a
 * failed attempt, its statements go to the statement threads (dbpool.c),
 * which run them on the primary.  Failed attempts back off: for the read
 * URL 2 s, doubling up to 30 s; for the primary 0.5 s, doubling up to 4 s
 * (its statements then wait for a statement thread: it is worth coming
 * back soon).  A worker that stops leaves an attempt in progress to its
 * thread, so that stopping never waits for the database either.  This file
 * only makes the connection; it must not use it (worker.c does).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

#define READ_RETRY_MIN 2.0
#define READ_RETRY_MAX 30.0
#define PRIMARY_RETRY_MIN 0.5
#define PRIMARY_RETRY_MAX 4.0

enum
{
	ATTEMPT_RUNNING,
	ATTEMPT_DONE,
	ATTEMPT_ABANDONED
};

/*
 * One attempt.  Whoever of the thread and the worker comes last frees it
 * (and closes a connection nobody will use): the thread when the worker
 * abandoned it, the worker when it takes the result.
 */
struct conn_attempt
{
	atomic_int	state;
	bool		read;			/* to the read URL, else to the primary */
	PGconn	   *made;			/* NULL: failed; set before ATTEMPT_DONE */
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
attempt_main(void *arg)
{
	struct conn_attempt *a = arg;

	a->made = db_connect_attempt(a->read);
	if (atomic_exchange(&a->state, ATTEMPT_DONE) == ATTEMPT_ABANDONED)
	{
		if (a->made)
			db_close(a->made);
		free(a);
	}
	return NULL;
}

void
conn_link_failed(conn_link *cl)
{
	double		lo = cl->read ? READ_RETRY_MIN : PRIMARY_RETRY_MIN;
	double		hi = cl->read ? READ_RETRY_MAX : PRIMARY_RETRY_MAX;

	cl->backoff = cl->backoff == 0 ? lo : cl->backoff * 2 > hi ? hi : cl->backoff * 2;
	cl->next_attempt = mono_now() + cl->backoff;
}

PGconn *
conn_link_get(conn_link *cl)
{
	struct conn_attempt *a = cl->attempt;
	PGconn	   *c;
	pthread_attr_t attr;
	pthread_t	tid;
	int			e;

	if (a)
	{
		if (atomic_load(&a->state) != ATTEMPT_DONE)
			return NULL;
		c = a->made;
		free(a);
		cl->attempt = NULL;
		if (!c)
			conn_link_failed(cl);
		else
			cl->backoff = 0;
		return c;
	}
	if (mono_now() < cl->next_attempt || !(a = calloc(1, sizeof(*a))))
		return NULL;
	atomic_init(&a->state, ATTEMPT_RUNNING);
	a->read = cl->read;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&tid, &attr, attempt_main, a);
	pthread_attr_destroy(&attr);
	if (e != 0)
	{
		logmsg(LOG_WARNING, "cannot start a thread to connect to the %s: %s",
			   cl->read ? "read database" : "database", strerror(e));
		free(a);
		conn_link_failed(cl);
		return NULL;
	}
	cl->attempt = a;
	return NULL;
}

void
conn_link_abandon(conn_link *cl)
{
	struct conn_attempt *a = cl->attempt;

	cl->attempt = NULL;
	if (a && atomic_exchange(&a->state, ATTEMPT_ABANDONED) == ATTEMPT_DONE)
	{
		if (a->made)
			db_close(a->made);
		free(a);
	}
}
