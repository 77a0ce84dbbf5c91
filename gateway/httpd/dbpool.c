/*
 * dbpool.c: the statement threads of udaconnect-httpd, which run the
 * statements that do not go over a worker's pipelined connection.
 *
 * A worker thread serves every connection of its libmicrohttpd daemon,
 * live encounter streams included, so it must never wait for the
 * database: a statement held by a lock or a slow plan would stall all of
 * them.  It hands such a statement to this pool (db_submit), suspends the
 * HTTP connection and goes on; one of cfg.db_threads threads, each with a
 * blocking connection of its own (db.c), runs it (dbrun.c), keeps the
 * outcome in the job, resumes the connection and wakes its worker, which
 * takes the outcome on libmicrohttpd's next call of the request
 * (db_job_take) and answers.  A slow statement so holds one statement
 * thread, never a worker; jobs queue in arrival order, at most one per
 * HTTP connection (a suspended connection sends no next request), so the
 * queue is bounded by the connection limit.
 *
 * Stopping (db_jobs_abandon): a stopping worker must not stop its daemon
 * while a connection of it is suspended (libmicrohttpd aborts), so the
 * jobs of its requests still queued are given back not run (safe to
 * retry), those running are cancelled (PQcancel: a cancelled write did not
 * happen) and answered with what comes of them, and, last, one still
 * running is given back without an outcome.  The request owns its job but
 * for that last case, where the statement thread frees it; one mutex
 * decides who comes last.  libmicrohttpd is called under that mutex only
 * to resume a connection, as hub.c does.  This file must not answer a
 * request nor decide what a statement's outcome means (dbcall.c does).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

struct db_job
{
	struct db_job *next;		/* in the queue */
	struct MHD_Connection *conn;	/* suspended until the outcome is in */
	const struct MHD_Daemon *daemon;	/* whose worker to wake */
	enum stmt	s;
	int			n;
	bool		is_write;
	bool		done;			/* the outcome is in */
	bool		resumed;		/* its connection was resumed */
	bool		orphaned;		/* the request took no outcome: the statement
								 * thread frees the job */
	PGcancel   *cancel;			/* while it runs */
	struct db_outcome out;
	const char *values[DB_MAX_PARAMS];
	char		text[];			/* the values' text, one after another */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct db_job *head,
		   *tail;
static bool quit;
static pthread_t *threads;
static int	nthreads;
static struct db_job **running;	/* each statement thread's job, or NULL */

static void
job_free(struct db_job *j)
{
	PQclear(j->out.res);
	free(j);
}

/* mu held: the outcome is in; its worker is told unless it was already */
static void
job_done(struct db_job *j)
{
	j->done = true;
	if (!j->resumed)
	{
		j->resumed = true;
		MHD_resume_connection(j->conn);
		workers_wake(j->daemon);
	}
}

/* mu held: the next job to run, or NULL at the end; freed ones skipped */
static struct db_job *
next_job(void)
{
	struct db_job *j;

	for (;;)
	{
		while (!head && !quit)
			pthread_cond_wait(&more, &mu);
		if (!head)
			return NULL;
		j = head;
		head = j->next;
		if (!head)
			tail = NULL;
		metrics_db_queued(-1);
		if (!j->orphaned)
			return j;
		job_free(j);			/* nobody waits for it any more */
	}
}

static struct db_job *
job_new(struct MHD_Connection *c, enum stmt s, int n, const char *const *values)
{
	size_t		len = 0;
	struct db_job *j;
	char	   *p;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

	if (n > DB_MAX_PARAMS || !ci)
		return NULL;
	for (int i = 0; i < n; i++)
		if (values[i])
			len += strlen(values[i]) + 1;
	j = calloc(1, sizeof(*j) + len);
	if (!j)
		return NULL;
	j->conn = c;
	j->daemon = ci->daemon;
	j->s = s;
	j->n = n;
	p = j->text;
	for (int i = 0; i < n; i++)
	{
		if (!values[i])
			continue;			/* SQL NULL */
		len = strlen(values[i]) + 1;
		memcpy(p, values[i], len);
		j->values[i] = p;
		p += len;
	}
	return j;
}

static void *
statement_thread(void *arg)
{
	int			id = (int) (intptr_t) arg;
	struct db_job *j;
	PGconn	   *conn;
	PGcancel   *cancel;

	for (;;)
	{
		pthread_mutex_lock(&mu);
		j = next_job();
		if (j)
			running[id] = j;
		pthread_mutex_unlock(&mu);
		if (!j)
			break;

		/* the connection db_run() will use, for a stopping worker's cancel */
		conn = db_conn();
		cancel = conn ? PQgetCancel(conn) : NULL;
		pthread_mutex_lock(&mu);
		j->cancel = cancel;
		pthread_mutex_unlock(&mu);

		db_run(j->s, j->n, j->values, j->is_write, &j->out);

		pthread_mutex_lock(&mu);
		running[id] = NULL;
		j->cancel = NULL;
		if (j->orphaned)
			job_free(j);
		else
			job_done(j);
		pthread_mutex_unlock(&mu);
		PQfreeCancel(cancel);
	}
	db_drop();
	return NULL;
}

int
dbpool_start(int n)
{
	int			e;

	threads = calloc((size_t) n, sizeof(*threads));
	running = calloc((size_t) n, sizeof(*running));
	if (!threads || !running)
		return -1;
	for (int i = 0; i < n; i++)
	{
		e = pthread_create(&threads[i], NULL, statement_thread, (void *) (intptr_t) i);
		if (e != 0)
		{
			logmsg(LOG_FATAL, "cannot start a statement thread: %s", strerror(e));
			return -1;
		}
		nthreads = i + 1;
	}
	return 0;
}

void
dbpool_stop(void)
{
	pthread_mutex_lock(&mu);
	quit = true;
	pthread_cond_broadcast(&more);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	free(running);
	threads = NULL;
	running = NULL;
	nthreads = 0;
}

int
db_submit(struct request *r, struct MHD_Connection *c, enum stmt s, int n,
		  const char *const *values)
{
	struct db_job *j = nthreads ? job_new(c, s, n, values) : NULL;

	if (!j)
		return -1;
	j->is_write = r->is_post || r->is_delete;
	r->job = j;
	/* suspended before any thread can resume it */
	MHD_suspend_connection(c);
	workers_jobs(+1);
	pthread_mutex_lock(&mu);
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	metrics_db_queued(+1);
	pthread_cond_signal(&more);
	pthread_mutex_unlock(&mu);
	return 0;
}

bool
db_job_take(struct request *r, struct db_outcome *o)
{
	struct db_job *j = r->job;
	bool		done;
	bool		given_back;

	if (!j)
		return false;
	pthread_mutex_lock(&mu);
	done = j->done;
	/* a stopping worker gave it back while it still runs: left to its thread */
	given_back = !done && j->resumed;
	if (given_back)
		j->orphaned = true;
	pthread_mutex_unlock(&mu);
	if (!done && !given_back)
		return false;			/* cannot happen: the connection is suspended */
	if (given_back)
	{
		memset(o, 0, sizeof(*o));
		o->kind = DBO_UNKNOWN;
	}
	else
	{
		*o = j->out;
		j->out.res = NULL;
		free(j);
	}
	r->job = NULL;
	workers_jobs(-1);
	return true;
}

void
db_jobs_abandon(const struct MHD_Daemon *d, bool last)
{
	char		err[256];

	pthread_mutex_lock(&mu);
	for (struct db_job *prev = NULL, *j = head, *next; j; j = next)
	{
		next = j->next;
		if (j->daemon != d || j->orphaned)
		{
			prev = j;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			head = next;
		if (tail == j)
			tail = prev;
		metrics_db_queued(-1);
		j->out.kind = DBO_NOT_RUN;
		job_done(j);
	}
	for (int i = 0; i < nthreads; i++)
	{
		struct db_job *j = running[i];

		if (!j || j->daemon != d || j->resumed)
			continue;
		if (!last)
		{
			if (j->cancel && !PQcancel(j->cancel, err, sizeof(err)))
				logmsg(LOG_WARNING, "stopping: cannot cancel a statement: %s", err);
		}
		else
		{
			j->resumed = true;	/* db_job_take gives it to its thread */
			MHD_resume_connection(j->conn);
		}
	}
	pthread_mutex_unlock(&mu);
}

void
db_job_release(struct request *r)
{
	struct db_job *j = r->job;

	if (!j)
		return;
	r->job = NULL;
	workers_jobs(-1);
	pthread_mutex_lock(&mu);
	if (j->done)
		job_free(j);
	else
		j->orphaned = true;
	pthread_mutex_unlock(&mu);
}
