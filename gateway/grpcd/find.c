/*
 * udaconnect-grpcd — FindConnections, the server stream read from
 * PostgreSQL.
 *
 * What this file holds: checking the request, the db threads (--db-threads,
 * one libpq connection each), and streaming the rows in bounded chunks.  A
 * call's query runs as
 *
 *   BEGIN; SELECT set_config('statement_timeout', $1, true);
 *   DECLARE grpcd_fc_N NO SCROLL CURSOR WITH HOLD FOR SELECT ...
 *   FROM udaconnect.api_find_connections(caller_role, caller_id, ...);
 *   FETCH 256 FROM
 *   grpcd_fc_N; COMMIT
 *
 * sent as one libpq pipeline, the values as parameters: one round trip.
 * The FETCH runs udaconnect.api_find_connections() under
 * the statement_timeout (the time left before the call's deadline, at most
 * --statement-timeout-ms, 30 s by default); at COMMIT, PostgreSQL keeps the
 * rest of the result in the cursor (in memory up to work_mem, then in a
 * temporary file).  Once the call has sent a chunk, the db thread that owns
 * the cursor fetches the next one; between fetches, it serves other calls.
 * So the daemon holds at most one chunk per call, however slowly the client
 * reads, and the rows are those of one snapshot, in the function's order.  --max-find-calls bounds the
 * calls in flight (waiting for a db thread or streaming); the excess gets
 * RESOURCE_EXHAUSTED.
 *
 * What it must not do: hold a whole result in the daemon, or keep a db
 * thread waiting for a client.
 *
 * Threads: a call's job (first query, next chunk, closing the cursor) runs
 * on a db thread; its sends complete on its worker thread.  One of them at a
 * time owns the call: a job is queued only when no batch is outstanding.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

#define FIND_CHUNK 256			/* rows per FETCH: about 40 KB of PGresult */

enum find_job
{
	JOB_QUERY,					/* run the query, send the first chunk */
	JOB_FETCH,					/* send the next chunk */
	JOB_CLOSE					/* the client went away: close the cursor */
};

typedef struct db_thread
{
	int			id;
	pthread_t	thread;
	call_queue	own;			/* its own jobs (its cursors), under dbq_mu */
	/* the thread's alone: */
	PGconn	   *conn;
	unsigned	gen;			/* bumped when the connection is replaced */
	unsigned	next_cursor;
	int			backoff_ms;		/* 0: the last connect succeeded */
	int64_t		retry_at_ms;	/* monotonic: no connect before this */
} db_thread;

#define DB_BACKOFF_MIN_MS 500
#define DB_BACKOFF_MAX_MS 10000

static pthread_mutex_t dbq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dbq_cv = PTHREAD_COND_INITIALIZER;
static call_queue dbq;			/* new calls: any db thread */
static bool dbq_stop;
static db_thread *dbt;
static atomic_int nfind;		/* calls counted against --max-find-calls */

static void find_send_done(tag *t, bool ok);

/* a job for the db thread that holds c's cursor (any thread) */
static void
push_own(call *c, int job)
{
	db_thread  *t = &dbt[c->owner];

	c->job = job;
	pthread_mutex_lock(&dbq_mu);
	call_queue_push(&t->own, c);
	/* one condition variable for all: wake them all, the owner takes it */
	pthread_cond_broadcast(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
}

/* the end of the rows: the final status (any thread) */
static void
find_finish(call *c)
{
	atomic_store(&c->answered, 1);
	if (c->truncated)
	{
		char		msg[256];

		snprintf(msg, sizeof(msg),
				 "more than %d connections; only the first %d were sent (narrow the date range)",
				 cfg.max_rows, cfg.max_rows);
		call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
	}
	else
		call_finish(c, GRPC_STATUS_OK, NULL, NULL);
}

/*
 * Send the next row of the chunk; at its end, ask the owner for the next
 * chunk or finish.  Runs on the db thread (first row of a chunk) or the
 * worker thread (the others); c is not touched after the batch started.
 */
static void
find_send_next(call *c)
{
	Udaconnect__V1__Connection m = UDACONNECT__V1__CONNECTION__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	size_t		n = 0;
	int64_t		us;
	grpc_call_error e;
	int			r = c->row;

	if (r >= c->nrows)
	{
		PQclear(c->res);
		c->res = NULL;
		if (!c->exhausted)
			push_own(c, JOB_FETCH);
		else
			find_finish(c);
		return;
	}
	m.location_id = strtoll(PQgetvalue(c->res, r, 0), NULL, 10);
	m.person_id = (int32_t) strtol(PQgetvalue(c->res, r, 1), NULL, 10);
	m.latitude = strtod(PQgetvalue(c->res, r, 2), NULL);
	m.longitude = strtod(PQgetvalue(c->res, r, 3), NULL);
	us = strtoll(PQgetvalue(c->res, r, 4), NULL, 10);
	ts.seconds = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	ts.nanos = (int32_t) ((us - ts.seconds * 1000000) * 1000);
	m.creation_time = &ts;
	m.distance_m = strtod(PQgetvalue(c->res, r, 5), NULL);
	c->row++;

	if (c->send_buf)
		grpc_byte_buffer_destroy(c->send_buf);
	c->send_buf = pack_message(&m.base);
	if (!c->sent_initial)
	{
		memset(&c->ops[n], 0, sizeof(grpc_op));
		c->ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial = true;
	}
	memset(&c->ops[n], 0, sizeof(grpc_op));
	c->ops[n].op = GRPC_OP_SEND_MESSAGE;
	c->ops[n++].data.send_message.send_message = c->send_buf;
	c->t.done = find_send_done;
	e = grpc_call_start_batch(c->gc, c->ops, n, &c->t, NULL);
	if (e != GRPC_CALL_OK)
	{
		logmsg(LOG_ERROR, "grpc_call_start_batch (send) failed: error %d", (int) e);
		find_send_done(&c->t, false);
	}
}

static void
find_send_done(tag *t, bool ok)
{
	call	   *c = (call *) t;

	if (!ok)
	{
		/* cancelled, deadline exceeded or the connection went away */
		atomic_store(&c->answered, 1);
		if (!c->exhausted)
			push_own(c, JOB_CLOSE); /* the job releases the flow */
		else
			call_unref(c);
		return;
	}
	find_send_next(c);
}

static grpc_status_code
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
 * Connect t, unless its last attempt failed a moment ago.  While PostgreSQL
 * is down, every call would otherwise hold the db thread for a connect
 * (up to connect_timeout) and log a line: after a failure, calls fail fast
 * for 0.5 s, doubling up to 10 s, until a connect succeeds.
 */
static bool
db_connect(db_thread *t, call *c)
{
	/*
	 * Bounded network waits: a dead server or peer must not hold a db thread
	 * (and shutdown) for the kernel's hours.  The URL comes last, so what it
	 * says overrides these defaults.
	 */
	static const char *const keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
	"keepalives_count", "dbname", NULL};
	const char *vals[] = {"5", "10", "5", "3", cfg.dburl, NULL};
	char		set[128];

	if (t->backoff_ms > 0 && mono_ms() < t->retry_at_ms)
	{
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "database unavailable, retry later"
				  " (the last connection attempt failed %lld ms ago)",
				  (long long) (mono_ms() - (t->retry_at_ms - t->backoff_ms)));
		return false;
	}
	t->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(t->conn) != CONNECTION_OK)
	{
		t->backoff_ms = t->backoff_ms == 0 ? DB_BACKOFF_MIN_MS :
			t->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : t->backoff_ms * 2;
		t->retry_at_ms = mono_ms() + t->backoff_ms;
		logmsg(LOG_WARNING, "db thread %d: cannot connect to the database (next attempt in %d ms at the earliest): %s",
			   t->id, t->backoff_ms, PQerrorMessage(t->conn));
		PQfinish(t->conn);
		t->conn = NULL;
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
		return false;
	}
	t->backoff_ms = 0;
	/* the session's limit: later FETCHes from a held cursor run under it */
	snprintf(set, sizeof(set), "SET application_name = 'udaconnect-grpcd'; SET statement_timeout = %d",
			 cfg.statement_timeout_ms);
	PQclear(PQexec(t->conn, set));
	logmsg(LOG_INFO, "db thread %d: connected to the database", t->id);
	return true;
}

/* drop a broken connection: its cursors are gone with it */
static void
db_reset(db_thread *t)
{
	logmsg(LOG_WARNING, "db thread %d: lost the database connection: %s", t->id, PQerrorMessage(t->conn));
	PQfinish(t->conn);
	t->conn = NULL;
	t->gen++;
}

/*
 * The SQL API names its arguments as the REST API does (udaconnect.api_*);
 * where a message speaks of one by a name the request spells otherwise, the
 * client reads the request's name.  Whole words only.
 */
static const char *const sql_to_proto[][2] = {
	{"time_window", "time_window_seconds"},
};

/* in, its SQL argument names replaced by the request's field names (bounded) */
static void
proto_field_names(const char *in, char *out, size_t len)
{
	size_t		n = 0;

	while (*in && n + 1 < len)
	{
		size_t		w = 0;
		const char *rep = NULL;
		int			m;

		while (isalnum((unsigned char) in[w]) || in[w] == '_')
			w++;
		if (w == 0)
		{
			out[n++] = *in++;
			continue;
		}
		for (size_t i = 0; i < sizeof(sql_to_proto) / sizeof(sql_to_proto[0]); i++)
			if (strlen(sql_to_proto[i][0]) == w && strncmp(in, sql_to_proto[i][0], w) == 0)
				rep = sql_to_proto[i][1];
		m = snprintf(out + n, len - n, "%.*s", rep ? (int) strlen(rep) : (int) w, rep ? rep : in);
		n = n + (size_t) m < len ? n + (size_t) m : len - 1;
		in += w;
	}
	out[n] = '\0';
}

/* answer c with the error of res (or of the connection); the cursor is gone */
static void
db_fail(call *c, db_thread *t, PGresult *res)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *pm = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *dt = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	grpc_status_code code = sqlstate_to_status(st);
	char		sent[64] = "";
	char		sqlmsg[512];
	char		msg[512];

	c->exhausted = true;
	if (PQstatus(t->conn) != CONNECTION_OK)
	{
		db_reset(t);
		code = GRPC_STATUS_UNAVAILABLE;
	}
	else if (st != NULL && strcmp(st, "57014") == 0)
	{
		/*
		 * Cancelled at the client's deadline: the client's own doing.  At the
		 * server's limit (no deadline, or a later one; or a FETCH under the
		 * session's limit): a server-side limit, worth a retry.  Another
		 * cancel (pg_cancel_backend) keeps its message, UNAVAILABLE too.
		 */
		if (c->deadline_timeout)
			code = GRPC_STATUS_DEADLINE_EXCEEDED;
		else if (pm == NULL || strstr(pm, "statement timeout") != NULL)
		{
			if (c->fetched > 0)
				snprintf(sent, sizeof(sent), " (after %lld rows were sent)", (long long) c->fetched);
			call_fail(c, GRPC_STATUS_UNAVAILABLE,
					  "the server's statement timeout (%d ms) was reached%s; retry later or narrow the date range",
					  cfg.statement_timeout_ms, sent);
			PQclear(res);
			return;
		}
	}
	if (code == GRPC_STATUS_INTERNAL)
		logmsg(LOG_ERROR, "FindConnections: database error %s: %s", st ? st : "?",
			   pm ? pm : PQresultErrorMessage(res));
	if (c->fetched > 0)
		snprintf(sent, sizeof(sent), " (after %lld rows were sent)", (long long) c->fetched);
	snprintf(sqlmsg, sizeof(sqlmsg), "%s%s%s%s", pm ? pm : "the database query failed", dt ? ": " : "",
			 dt ? dt : "", sent);
	proto_field_names(sqlmsg, msg, sizeof(msg));
	call_fail(c, code, "%s", msg);
	PQclear(res);
}

static void
db_close_cursor_no(db_thread *t, unsigned no, unsigned gen)
{
	char		sql[48];

	if (t->conn == NULL || gen != t->gen)
		return;
	snprintf(sql, sizeof(sql), "CLOSE grpcd_fc_%u", no);
	PQclear(PQexec(t->conn, sql));
}

static void
db_close_cursor(call *c, db_thread *t)
{
	c->exhausted = true;
	db_close_cursor_no(t, c->cursor_no, c->conn_gen);
}

/*
 * A chunk arrived (db thread): keep at most --max-rows rows in all, close
 * the cursor after the last chunk, and send its first row.
 */
static void
db_take_chunk(call *c, db_thread *t, PGresult *rows)
{
	int64_t		n = PQntuples(rows);
	bool		last = n < FIND_CHUNK;

	/* the query's LIMIT is --max-rows + 1: one row more means truncated */
	if (n > cfg.max_rows - c->fetched)
	{
		n = cfg.max_rows - c->fetched;
		c->truncated = true;
		last = true;
	}
	c->fetched += n;
	c->res = rows;
	c->row = 0;
	c->nrows = (int) n;
	if (!last)
	{
		find_send_next(c);
		return;
	}

	/*
	 * The last chunk: its first row goes out before the CLOSE's round trip.
	 * c may be finished by its worker once the send started, so the cursor
	 * is closed by number.
	 */
	{
		unsigned	no = c->cursor_no;
		unsigned	gen = c->conn_gen;

		c->exhausted = true;
		find_send_next(c);
		db_close_cursor_no(t, no, gen);
	}
}

/*
 * statement_timeout for c's query: the time left before its deadline, at
 * most --statement-timeout-ms (set with SET LOCAL inside the query's
 * pipeline, so it costs no round trip and ends with the transaction).
 * c->deadline_timeout tells db_fail() whose limit a 57014 was.
 */
static void
db_timeout_param(call *c, char *buf, size_t len)
{
	int64_t		left = c->deadline_ms == INT64_MAX ? INT64_MAX : c->deadline_ms - now_ms();
	int			tmo;

	c->deadline_timeout = left < cfg.statement_timeout_ms;
	tmo = !c->deadline_timeout ? cfg.statement_timeout_ms : left < 1 ? 1 : (int) left;
	snprintf(buf, len, "%d", tmo);
}
/*
 * Read the results of the pipeline db_query() sent: the result set of its
 * query number rows_of (counting from 0) into *rows, the first error into
 * *err; everything up to the pipeline's sync is consumed.  False when the
 * connection broke.
 */
static bool
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

/*
 * The first chunk: BEGIN, DECLARE (the values as parameters), FETCH and
 * COMMIT sent as one libpq pipeline, so they take one round trip (see the
 * header).  The window and date rules are the SQL API's:
 * udaconnect.api_find_connections(), its window through api_window().
 */
static void
db_query(call *c, db_thread *t)
{
	Udaconnect__V1__FindConnectionsRequest *q = c->freq;
	char		declare[512];
	char		fetch[64];
	char		p_timeout[16],
				p_caller[16],
				p_person[16],
				p_meters[32],
				p_window[32],
				p_limit[24];
	const char *params[8];
	const char *ptimeout;
	bool		sent;
	PGresult   *rows = NULL,
			   *err = NULL;

	if (now_ms() >= c->deadline_ms)
	{
		call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the query started");
		return;
	}
	if (t->conn == NULL && !db_connect(t, c))
		return;
	/*
	 * The query ends at the call's deadline: a client that gave up must not
	 * hold one of the few db threads for the full --statement-timeout-ms
	 * (SQLSTATE 57014 -> DEADLINE_EXCEEDED).
	 */
	db_timeout_param(c, p_timeout, sizeof(p_timeout));
	ptimeout = p_timeout;
	c->cursor_no = t->next_cursor++;
	c->conn_gen = t->gen;
	/* the cursor's name is ours, never the client's: only values are parameters */
	snprintf(declare, sizeof(declare),
			 "DECLARE grpcd_fc_%u NO SCROLL CURSOR WITH HOLD FOR"
			 " SELECT location_id, person_id, latitude, longitude,"
			 "        (extract(epoch FROM creation_time) * 1000000)::int8, distance_m"
			 "   FROM udaconnect.api_find_connections($1::text, $2::int4, $3::int4, $4::date, $5::date,"
			 "                                        $6::float8, $7::float8)"
			 "  LIMIT $8::int8",
			 c->cursor_no);
	snprintf(fetch, sizeof(fetch), "FETCH FORWARD %d FROM grpcd_fc_%u", FIND_CHUNK, c->cursor_no);
	snprintf(p_person, sizeof(p_person), "%d", q->person_id);
	snprintf(p_meters, sizeof(p_meters), "%.17g", q->meters > 0 ? q->meters : 5.0);
	/* spelled as PostgreSQL reads them, so that its message can quote them */
	if (isnan(q->time_window_seconds))
		snprintf(p_window, sizeof(p_window), "NaN");
	else if (isinf(q->time_window_seconds))
		snprintf(p_window, sizeof(p_window), "%sInfinity", q->time_window_seconds < 0 ? "-" : "");
	else
		snprintf(p_window, sizeof(p_window), "%.17g", q->time_window_seconds);
	snprintf(p_limit, sizeof(p_limit), "%lld", (long long) cfg.max_rows + 1);
	/* the verified caller: the database decides what it may search (42501) */
	snprintf(p_caller, sizeof(p_caller), "%d", c->who.person);
	params[0] = caller_role_name(&c->who);
	params[1] = c->who.role == UDC_ROLE_ATTENDEE ? p_caller : NULL;
	params[2] = p_person;
	params[3] = q->start_date;
	params[4] = q->end_date;
	params[5] = p_meters;
	/* proto3's 0 = none; anything else, NaN too, goes to api_window() */
	params[6] = q->time_window_seconds != 0 ? p_window : NULL;
	params[7] = p_limit;

	sent = PQenterPipelineMode(t->conn) &&
		PQsendQueryParams(t->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
		PQsendQueryParams(t->conn, "SELECT pg_catalog.set_config('statement_timeout', $1, true)",
						  1, NULL, (const char *const *) &ptimeout, NULL, NULL, 0) &&
		PQsendQueryParams(t->conn, declare, 8, NULL, params, NULL, NULL, 0) &&
		PQsendQueryParams(t->conn, fetch, 0, NULL, NULL, NULL, NULL, 0) &&	/* query 3 */
		PQsendQueryParams(t->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
		PQpipelineSync(t->conn);
	if (!sent || !db_pipeline_results(t, 3, &rows, &err) || !PQexitPipelineMode(t->conn))
	{
		PQclear(rows);
		PQclear(err);
		db_reset(t);
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
		return;
	}
	if (err == NULL && rows == NULL)
		err = PQmakeEmptyPGresult(t->conn, PGRES_FATAL_ERROR);
	if (err != NULL)
	{
		PQclear(rows);
		if (PQtransactionStatus(t->conn) == PQTRANS_INERROR || PQtransactionStatus(t->conn) == PQTRANS_INTRANS)
			PQclear(PQexec(t->conn, "ROLLBACK"));	/* the cursor goes with it */
		db_fail(c, t, err);
		return;
	}
	c->owner = t->id;
	c->exhausted = false;
	db_take_chunk(c, t, rows);
}

/* the next chunk from c's cursor */
static void
db_fetch(call *c, db_thread *t)
{
	char		sql[64];
	PGresult   *res;

	if (t->conn == NULL || c->conn_gen != t->gen)
	{
		c->exhausted = true;
		call_fail(c, GRPC_STATUS_UNAVAILABLE,
				  "the database connection was lost after %lld rows were sent; the rest is not available",
				  (long long) c->fetched);
		return;
	}
	if (now_ms() >= c->deadline_ms)
	{
		db_close_cursor(c, t);
		call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed after %lld rows were sent",
				  (long long) c->fetched);
		return;
	}
	/* the session's --statement-timeout-ms: reading a held cursor's stored result is quick */
	c->deadline_timeout = false;
	snprintf(sql, sizeof(sql), "FETCH FORWARD %d FROM grpcd_fc_%u", FIND_CHUNK, c->cursor_no);
	res = PQexec(t->conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		db_close_cursor(c, t);
		db_fail(c, t, res);
		return;
	}
	db_take_chunk(c, t, res);
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
		switch (c->job)
		{
			case JOB_QUERY:
				db_query(c, t);
				break;
			case JOB_FETCH:
				db_fetch(c, t);
				break;
			case JOB_CLOSE:
				db_close_cursor(c, t);
				call_unref(c);	/* the flow's reference */
				break;
		}
	}
	if (t->conn)
		PQfinish(t->conn);
	return NULL;
}

void
find_threads_start(void)
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
find_threads_stop(void)
{
	pthread_mutex_lock(&dbq_mu);
	dbq_stop = true;
	pthread_cond_broadcast(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
	for (int i = 0; i < cfg.db_threads; i++)
		pthread_join(dbt[i].thread, NULL);
	free(dbt);
}

/* c->release: the call is being freed */
static void
find_release(call *c)
{
	if (c->counted)
		atomic_fetch_sub(&nfind, 1);
	if (c->res)
		PQclear(c->res);
	if (c->freq)
		udaconnect__v1__find_connections_request__free_unpacked(c->freq, NULL);
}

/* YYYY-MM-DD (digits in the right places); the calendar check is PostgreSQL's */
static bool
iso_date(const char *s)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/*
 * Check the request's fields; false: c was answered INVALID_ARGUMENT.  The
 * time window's range is the SQL API's rule (udaconnect.api_window), whose
 * message comes back naming time_window_seconds (db_fail).
 */
static bool
find_check(call *c, const Udaconnect__V1__FindConnectionsRequest *q)
{
	if (q->person_id <= 0)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "person_id must be a positive integer, got %d", q->person_id);
	else if (q->start_date[0] == '\0')
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "start_date is required (YYYY-MM-DD)");
	else if (q->end_date[0] == '\0')
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "end_date is required (YYYY-MM-DD)");
	else if (!isfinite(q->meters) || q->meters < 0)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "meters must be a finite number >= 0 (0 = 5 m), got %g", q->meters);
	/* strict ISO dates: PostgreSQL alone would also take "epoch", "infinity", "today", "Jan 1 2020" ... */
	else if (!iso_date(q->start_date))
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "start_date must be a date as YYYY-MM-DD, got \"%.40s\"", q->start_date);
	else if (!iso_date(q->end_date))
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "end_date must be a date as YYYY-MM-DD, got \"%.40s\"", q->end_date);
	else
		return true;
	return false;
}

/* a new FindConnections call (worker thread) */
void
handle_find(call *c, grpc_byte_buffer *payload)
{
	Udaconnect__V1__FindConnectionsRequest *q;

	c->release = find_release;
	c->exhausted = true;		/* no cursor yet */
	q = (Udaconnect__V1__FindConnectionsRequest *)
		request_unpack(c, payload, &udaconnect__v1__find_connections_request__descriptor, NULL, true);
	if (q == NULL)
		return;
	c->freq = q;
	if (!find_check(c, q))
		return;
	if (cfg.dburl == NULL)
	{
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "no database configured (UDACONNECT_DATABASE_URL / --database-url)");
		return;
	}
	if (atomic_fetch_add(&nfind, 1) >= cfg.max_find)
	{
		atomic_fetch_sub(&nfind, 1);
		call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				  "too many FindConnections calls in flight (at most %d, --max-find-calls); retry later", cfg.max_find);
		return;
	}
	c->counted = true;
	c->job = JOB_QUERY;
	pthread_mutex_lock(&dbq_mu);
	call_queue_push(&dbq, c);
	pthread_cond_signal(&dbq_cv);
	pthread_mutex_unlock(&dbq_mu);
}
