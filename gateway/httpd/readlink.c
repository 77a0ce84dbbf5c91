/*
 * readlink.c: making a worker's connection to the read URL
 * (UDACONNECT_DATABASE_READ_URL, udaconnect-httpd) without ever making the
 * worker wait for it.
 *
 * Connecting may wait: a standby that drops packets holds libpq for the
 * URL's connect_timeout, per host of its list.  So each attempt runs on a
 * detached thread of its own (db_connect_read()), and the worker only looks
 * whether it is done: until then, and after a failed attempt, its reads go
 * to the primary.  Failed attempts back off: 2 s, doubling up to 30 s.  A
 * worker that stops leaves an attempt in progress to its thread, so that
 * stopping never waits for a standby either.  This file only makes the
 * connection; it must not use it (worker.c does).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

#define READ_RETRY_MIN 2.0
#define READ_RETRY_MAX 30.0

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
struct read_attempt
{
	atomic_int	state;
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
	struct read_attempt *a = arg;

	a->made = db_connect_read();
	if (atomic_exchange(&a->state, ATTEMPT_DONE) == ATTEMPT_ABANDONED)
	{
		if (a->made)
			db_close(a->made);
		free(a);
	}
	return NULL;
}

void
read_link_failed(read_link *rl)
{
	rl->backoff = rl->backoff == 0 ? READ_RETRY_MIN :
		rl->backoff * 2 > READ_RETRY_MAX ? READ_RETRY_MAX : rl->backoff * 2;
	rl->next_attempt = mono_now() + rl->backoff;
}

PGconn *
read_link_get(read_link *rl)
{
	struct read_attempt *a = rl->attempt;
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
		rl->attempt = NULL;
		if (!c)
			read_link_failed(rl);
		else
			rl->backoff = 0;
		return c;
	}
	if (mono_now() < rl->next_attempt || !(a = calloc(1, sizeof(*a))))
		return NULL;
	atomic_init(&a->state, ATTEMPT_RUNNING);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&tid, &attr, attempt_main, a);
	pthread_attr_destroy(&attr);
	if (e != 0)
	{
		logmsg(LOG_WARNING, "cannot start a thread to connect to the read database: %s", strerror(e));
		free(a);
		read_link_failed(rl);
		return NULL;
	}
	rl->attempt = a;
	return NULL;
}

void
read_link_abandon(read_link *rl)
{
	struct read_attempt *a = rl->attempt;

	rl->attempt = NULL;
	if (a && atomic_exchange(&a->state, ATTEMPT_ABANDONED) == ATTEMPT_DONE)
	{
		if (a->made)
			db_close(a->made);
		free(a);
	}
}
