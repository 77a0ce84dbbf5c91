/*
 * udaconnect-grpcd — FindConnections, the server stream read from
 * PostgreSQL.
 *
 * What this file holds: checking the request, and streaming the rows in
 * bounded chunks from a cursor on a db thread (db.c).  A call's query runs
 * as
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
 * With UDACONNECT_DATABASE_READ_URL the query runs on the db thread's read
 * connection (a hot standby: api_find_connections is STABLE and writes
 * nothing, and a held cursor needs no write), and its later FETCHes on the
 * same one.  What the standby cannot answer for sure before a row was sent
 * runs again on the primary: the read connection down or lost, a recovery
 * conflict (40001), an unknown person (P0002: maybe not replayed yet).
 *
 * What it must not do: hold a whole result in the daemon, or keep a db
 * thread waiting for a client.
 *
 * Threads: a call's job (first query, next chunk, closing the cursor) runs
 * on a db thread; its sends complete on its worker thread.  One of them at a
 * time owns the call: a job is queued only when no batch is outstanding.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

#define FIND_CHUNK 256			/* rows per FETCH: about 40 KB of PGresult */

static atomic_int nfind;		/* calls counted against --max-find-calls */

static void find_send_done(tag *t, bool ok);
static void find_fetch_job(call *c, db_thread *t);
static void find_close_job(call *c, db_thread *t);
static void find_query_job(call *c, db_thread *t);

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
			db_submit_to(c, c->owner, find_fetch_job);
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
			db_submit_to(c, c->owner, find_close_job);	/* the job releases the flow */
		else
			call_unref(c);
		return;
	}
	find_send_next(c);
}

/*
 * The SQL API names its arguments as the REST API does (udaconnect.api_*);
 * where a message speaks of one by a name the request spells otherwise, the
 * client reads the request's name.  Whole words only.
 */
static const char *const sql_to_proto[][2] = {
	{"time_window", "time_window_seconds"},
};

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
	proto_field_names(sqlmsg, msg, sizeof(msg), sql_to_proto, sizeof(sql_to_proto) / sizeof(sql_to_proto[0]));
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

/* an error of the standby that the primary may answer otherwise */
static bool
standby_retry(const PGresult *err)
{
	const char *st = PQresultErrorField(err, PG_DIAG_SQLSTATE);

	return st == NULL || strcmp(st, "40001") == 0 || strcmp(st, "P0002") == 0 ||
		strcmp(st, "25006") == 0 || strncmp(st, "57P", 3) == 0 || strncmp(st, "08", 2) == 0;
}

/*
 * The first chunk on t's current connection: BEGIN, DECLARE (the values as
 * parameters), FETCH and COMMIT sent as one libpq pipeline, so they take
 * one round trip (see the header).  The window and date rules are the SQL
 * API's: udaconnect.api_find_connections(), its window through
 * api_window().  On a standby (`standby`): false when it could not answer
 * for sure (see the header), c untouched, to be run on the primary.
 */
static bool
find_query(call *c, db_thread *t, bool standby)
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
		if (standby)
			return false;
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
		return true;
	}
	if (err == NULL && rows == NULL)
		err = PQmakeEmptyPGresult(t->conn, PGRES_FATAL_ERROR);
	if (err != NULL)
	{
		PQclear(rows);
		if (PQtransactionStatus(t->conn) == PQTRANS_INERROR || PQtransactionStatus(t->conn) == PQTRANS_INTRANS)
			PQclear(PQexec(t->conn, "ROLLBACK"));	/* the cursor goes with it */
		if (standby && standby_retry(err))
		{
			if (PQstatus(t->conn) != CONNECTION_OK)
				db_reset(t);
			PQclear(err);
			return false;
		}
		db_fail(c, t, err);
		return true;
	}
	c->owner = t->id;
	c->on_read = standby;
	c->exhausted = false;
	db_take_chunk(c, t, rows);
	return true;
}

/* The first chunk: on the read connection when there is one, else (or when
 * it could not answer) on the primary. */
static void
find_query_job(call *c, db_thread *t)
{
	bool		done = false;

	if (now_ms() >= c->deadline_ms)
	{
		call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the query started");
		return;
	}
	if (db_reads_split())
	{
		db_use(t, true);
		done = db_connect_read(t) && find_query(c, t, true);
		db_use(t, false);
		if (!done)
			logmsg(LOG_DEBUG, "FindConnections: the read database did not answer; asking the primary");
	}
	if (done || (t->conn == NULL && !db_connect(t, c)))
		return;
	find_query(c, t, false);
}

/* the next chunk from c's cursor */
static void
find_fetch_on(call *c, db_thread *t)
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

/* on the connection holding c's cursor (grpcd.h: db_use) */
static void
find_fetch_job(call *c, db_thread *t)
{
	db_use(t, c->on_read);
	find_fetch_on(c, t);
	db_use(t, false);
}

/* the client went away: close the cursor and release the flow */
static void
find_close_job(call *c, db_thread *t)
{
	db_use(t, c->on_read);
	db_close_cursor(c, t);
	db_use(t, false);
	call_unref(c);
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
	db_submit(c, find_query_job);
}
