/*
 * db.c — udaconnect-grpcd's db threads: the unary and cursor-reading calls
 * that ask PostgreSQL (FindConnections, ListEncounters).
 *
 * What this file holds: --db-threads threads, each with its own libpq
 * connection (blocking libpq: these threads wait for the database so that
 * no worker thread does); the queue of jobs, a job being a call and the
 * function to run with it (c->db_job) on any db thread, or on the one that
 * holds the call's cursor (db_submit_to); connecting with bounded network
 * waits and a back-off after a failed connect; and what every query of
 * these calls shares: the statement_timeout a call's deadline allows, the
 * results of a libpq pipeline, SQLSTATE -> gRPC status, and the SQL
 * API's argument names spelt as the request's fields.
 *
 * With UDACONNECT_DATABASE_READ_URL each db thread has a second connection,
 * to that URL (normally a hot standby), made current by db_use() for a
 * FindConnections job; its connect failures back off on their own and fail
 * no call: the job then runs on the primary (find.c).
 *
 * What it must not do: know what a method asks or answers (its file's job
 * does), or run the encounter watch (watch.c and listen.c have their own
 * connection, which must never wait for a query of these calls).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

#define DB_BACKOFF_MIN_MS 500
#define DB_BACKOFF_MAX_MS 10000

static pthread_mutex_t dbq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dbq_cv = PTHREAD_COND_INITIALIZER;
static call_queue dbq;			/* new calls: any db thread */
static bool dbq_stop;
static db_thread *dbt;

/* run fn(c, t) on any db thread (any thread) */
void
db_submit(call *c, db_job_fn fn)
{
	c->db_job = fn;
	pthread_mutex_lock(&dbq_mu);
	call_queue_push(&dbq, c);
	pthread_cond_signal(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
}

/* run fn(c, t) on db thread `owner`, the one holding c's cursor (any thread) */
void
db_submit_to(call *c, int owner, db_job_fn fn)
{
	c->db_job = fn;
	pthread_mutex_lock(&dbq_mu);
	call_queue_push(&dbt[owner].own, c);
	/* one condition variable for all: wake them all, the owner takes it */
	pthread_cond_broadcast(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
}

bool
db_reads_split(void)
{
	return cfg.read_dburl != NULL && cfg.read_dburl[0] != '\0';
}

/* make t's read connection (read) or its primary one current; see grpcd.h */
void
db_use(db_thread *t, bool read)
{
	PGconn	   *conn = t->conn;
	unsigned	gen = t->gen;
	int			backoff_ms = t->backoff_ms;
	int64_t		retry_at_ms = t->retry_at_ms;

	if (t->on_read == read)
		return;
	t->conn = t->other.conn;
	t->gen = t->other.gen;
	t->backoff_ms = t->other.backoff_ms;
	t->retry_at_ms = t->other.retry_at_ms;
	t->other.conn = conn;
	t->other.gen = gen;
	t->other.backoff_ms = backoff_ms;
	t->other.retry_at_ms = retry_at_ms;
	t->on_read = read;
}

/* One attempt to connect t's current connection: true, or false (logged,
 * the back-off grows). */
static bool
connect_current(db_thread *t)
{
	const char *const *keys = db_conn_keys();
	const char *vals[DB_CONN_NKEYS + 1];
	const char *what = t->on_read ? "the read database" : "the database";
	char		set[160];

	db_conn_values(vals);
	if (t->on_read)
	{
		/* a standby that drops packets holds this db thread that long (per
		 * host; the URL's own connect_timeout wins), then the primary answers */
		vals[0] = "2";
		vals[DB_CONN_NKEYS - 1] = cfg.read_dburl;
	}
	t->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(t->conn) != CONNECTION_OK)
	{
		t->backoff_ms = db_backoff_next(t->backoff_ms);
		t->retry_at_ms = mono_ms() + t->backoff_ms;
		logmsg(LOG_WARNING, "db thread %d: cannot connect to %s (next attempt in %d ms at the earliest%s): %s",
			   t->id, what, t->backoff_ms, t->on_read ? "; the primary answers meanwhile" : "",
			   PQerrorMessage(t->conn));
		PQfinish(t->conn);
		t->conn = NULL;
		return false;
	}
	t->backoff_ms = 0;
	/* the session's limit: later FETCHes from a held cursor run under it */
	snprintf(set, sizeof(set), "SET application_name = '%s'; SET statement_timeout = %d",
			 t->on_read ? "udaconnect-grpcd-read" : "udaconnect-grpcd", cfg.statement_timeout_ms);
	PQclear(PQexec(t->conn, set));
	logmsg(LOG_INFO, "db thread %d: connected to %s", t->id, what);
	return true;
}

/*
 * Connect t, unless its last attempt failed a moment ago.  While PostgreSQL
 * is down, every call would otherwise hold the db thread for a connect
 * (up to connect_timeout) and log a line: after a failure, calls fail fast
 * for 0.5 s, doubling up to 10 s, until a connect succeeds.  False: c was
 * answered UNAVAILABLE.
 */
bool
db_connect(db_thread *t, call *c)
{
	if (t->backoff_ms > 0 && mono_ms() < t->retry_at_ms)
	{
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "database unavailable, retry later"
				  " (the last connection attempt failed %lld ms ago)",
				  (long long) (mono_ms() - (t->retry_at_ms - t->backoff_ms)));
		return false;
	}
	if (!connect_current(t))
	{
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
		return false;
	}
	return true;
}

/* The read connection current and connected (db_use(t, true) done): false,
 * without failing any call, while it is down or backing off. */
bool
db_connect_read(db_thread *t)
{
	if (t->conn != NULL)
		return true;
	if (t->backoff_ms > 0 && mono_ms() < t->retry_at_ms)
		return false;
	return connect_current(t);
}

/*
 * Bounded network waits: a dead server or peer must not hold a thread (and
 * shutdown) for the kernel's hours.  The URL comes last, so what it says
 * overrides these defaults.  Shared with the watch connection (listen.c).
 */
static const char *const conn_keys[DB_CONN_NKEYS + 1] = {
	"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", NULL
};

const char *const *
db_conn_keys(void)
{
	return conn_keys;
}

void
db_conn_values(const char **vals)
{
	vals[0] = "5";
	vals[1] = "10";
	vals[2] = "5";
	vals[3] = "3";
	vals[4] = cfg.dburl;
	vals[5] = NULL;
}

/* the wait before the next connect after one more failure: 0.5 s doubling to 10 s */
int
db_backoff_next(int backoff_ms)
{
	return backoff_ms == 0 ? DB_BACKOFF_MIN_MS :
		backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : backoff_ms * 2;
}

/* drop a broken connection: its cursors are gone with it */
void
db_reset(db_thread *t)
{
	logmsg(LOG_WARNING, "db thread %d: lost the database connection: %s", t->id, PQerrorMessage(t->conn));
	PQfinish(t->conn);
	t->conn = NULL;
	t->gen++;
}

grpc_status_code
sqlstate_to_status(const char *st)
{
	if (st == NULL)
		return GRPC_STATUS_UNAVAILABLE;
	if (strcmp(st, "P0002") == 0)
		return GRPC_STATUS_NOT_FOUND;
	/* insufficient_privilege: the caller may not (udaconnect.caller_require_self ...) */
	if (strcmp(st, "42501") == 0)
		return GRPC_STATUS_PERMISSION_DENIED;
	if (strncmp(st, "22", 2) == 0)
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 || strncmp(st, "53", 2) == 0)
		return GRPC_STATUS_UNAVAILABLE;
	return GRPC_STATUS_INTERNAL;
}

/*
 * in, with the SQL API's argument names replaced by the request's field
 * names (names[i][0] -> names[i][1]), whole words only; bounded.  The SQL
 * API names its arguments as the REST API does; where a message speaks of
 * one by a name the request spells otherwise, the client reads its own.
 */
void
proto_field_names(const char *in, char *out, size_t len, const char *const (*names)[2], size_t n)
{
	size_t		o = 0;

	while (*in && o + 1 < len)
	{
		size_t		w = 0;
		const char *rep = NULL;
		int			m;

		while (isalnum((unsigned char) in[w]) || in[w] == '_')
			w++;
		if (w == 0)
		{
			out[o++] = *in++;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (strlen(names[i][0]) == w && strncmp(in, names[i][0], w) == 0)
				rep = names[i][1];
		m = snprintf(out + o, len - o, "%.*s", rep ? (int) strlen(rep) : (int) w, rep ? rep : in);
		o = o + (size_t) m < len ? o + (size_t) m : len - 1;
		in += w;
	}
	out[o] = '\0';
}

/*
 * statement_timeout for c's query: the time left before its deadline, at
 * most --statement-timeout-ms (set with SET LOCAL inside the query's
 * pipeline, so it costs no round trip and ends with the transaction).
 * c->deadline_timeout tells whose limit a 57014 was.
 */
void
db_timeout_param(call *c, char *buf, size_t len)
{
	int64_t		left = c->deadline_ms == INT64_MAX ? INT64_MAX : c->deadline_ms - now_ms();
	int			tmo;

	c->deadline_timeout = left < cfg.statement_timeout_ms;
	tmo = !c->deadline_timeout ? cfg.statement_timeout_ms : left < 1 ? 1 : (int) left;
	snprintf(buf, len, "%d", tmo);
}

/*
 * Read the results of a pipeline the caller sent: the result set of its
 * query number rows_of (counting from 0) into *rows, the first error into
 * *err; everything up to the pipeline's sync is consumed.  False when the
 * connection broke.
 */
bool
db_pipeline_results(db_thread *t, int rows_of, PGresult **rows, PGresult **err)
{
	PGresult   *res;
	int			query = 0;

	for (;;)
	{
		ExecStatusType st;

		res = PQgetResult(t->conn);
		if (res == NULL)
		{
			/* the end of one query's results; a dead connection also ends here */
			if (PQstatus(t->conn) != CONNECTION_OK)
				return false;
			query++;
			continue;
		}
		st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC)
		{
			PQclear(res);
			return true;
		}
		if (st == PGRES_TUPLES_OK && query == rows_of && *rows == NULL)
			*rows = res;
		else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
				 st != PGRES_PIPELINE_ABORTED && *err == NULL)
			*err = res;
		else
			PQclear(res);
	}
}

static void *
db_main(void *arg)
{
	db_thread  *t = arg;
	char		name[16];

	snprintf(name, sizeof(name), "grpcd-db%d", t->id);
	pthread_setname_np(pthread_self(), name);

	for (;;)
	{
		call	   *c;

		pthread_mutex_lock(&dbq_mu);
		while (t->own.head == NULL && dbq.head == NULL && !dbq_stop)
			pthread_cond_wait(&dbq_cv, &dbq_mu);
		/* its own cursors first: each holds memory until it is read */
		if ((c = call_queue_pop(&t->own)) == NULL && (c = call_queue_pop(&dbq)) == NULL)
		{
			pthread_mutex_unlock(&dbq_mu);
			break;
		}
		pthread_mutex_unlock(&dbq_mu);
		c->db_job(c, t);
	}
	if (t->conn)
		PQfinish(t->conn);
	if (t->other.conn)
		PQfinish(t->other.conn);
	return NULL;
}

void
db_threads_start(void)
{
	dbt = calloc(cfg.db_threads, sizeof(db_thread));
	for (int i = 0; i < cfg.db_threads; i++)
	{
		dbt[i].id = i;
		pthread_create(&dbt[i].thread, NULL, db_main, &dbt[i]);
	}
}

/* after every call ended: no job is left */
void
db_threads_stop(void)
{
	pthread_mutex_lock(&dbq_mu);
	dbq_stop = true;
	pthread_cond_broadcast(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
	for (int i = 0; i < cfg.db_threads; i++)
		pthread_join(dbt[i].thread, NULL);
	free(dbt);
}
