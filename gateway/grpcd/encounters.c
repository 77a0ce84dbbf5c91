/*
 * encounters.c — ConnectionService/ListEncounters: one page of a person's
 * encounters, read from PostgreSQL on a db thread (db.c).
 *
 * What this file holds: checking the request (what only the gateway can:
 * the person id, the page size, the times as protobuf gives them), the query
 *
 *   BEGIN; SELECT set_config('statement_timeout', $1, true);
 *   SELECT body, next_cursor FROM udaconnect.api_encounters(caller_role,
 *       caller_id, person_id, from_time, to_time, page_size, page_token);
 *   COMMIT
 *
 * sent as one libpq pipeline (one round trip; the statement ends at the
 * call's deadline, at most --statement-timeout-ms), and the answer: the
 * page's JSON turned into Encounter messages (encounter_json.c), the next
 * cursor as the page token, unchanged.  Who may read what, the cursor's
 * form, the limit's range: the SQL API decides (SQLSTATE -> status as for
 * FindConnections, its argument names spelt as the request's fields).
 *
 * What it must not do: keep anything between pages (the token is the whole
 * state), or second-guess the SQL API's rules.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000

/* years 1..9999, as PostgreSQL's timestamptz and the location rule take them */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL

/* the SQL API's argument names, as this request spells them */
static const char *const sql_to_proto[][2] = {
	{"limit", "page_size"},
	{"cursor", "page_token"},
	{"next_cursor", "next_page_token"},
};

/* c->release */
static void
list_release(call *c)
{
	if (c->req)
		protobuf_c_message_free_unpacked(c->req, NULL);
}

/* ts as microseconds since the epoch, in decimal (NULL ts: nothing) */
static const char *
us_param(const Google__Protobuf__Timestamp *ts, char *buf, size_t len)
{
	if (ts == NULL)
		return NULL;
	snprintf(buf, len, "%lld", (long long) (ts->seconds * 1000000 + ts->nanos / 1000));
	return buf;
}

/* ts is absent or a time PostgreSQL takes; else c was answered INVALID_ARGUMENT */
static bool
time_check(call *c, const Google__Protobuf__Timestamp *ts, const char *field)
{
	if (ts == NULL)
		return true;
	if (ts->nanos < 0 || ts->nanos > 999999999)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s.nanos must be in [0, 999999999], got %d", field, ts->nanos);
	else if (ts->seconds < TS_MIN_SECONDS || ts->seconds > TS_MAX_SECONDS)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s must lie in the years 1 to 9999, got %lld s since the epoch",
				  field, (long long) ts->seconds);
	else
		return true;
	return false;
}

static bool
list_check(call *c, const Udaconnect__V1__ListEncountersRequest *q)
{
	if (q->person_id <= 0)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "person_id must be a positive integer, got %d", q->person_id);
	else if (q->page_size < 0 || q->page_size > LIST_MAX_PAGE)
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "page_size must be between 0 and %d (0 = %d), got %d",
				  LIST_MAX_PAGE, LIST_DEFAULT_PAGE, q->page_size);
	else if (!time_check(c, q->from_time, "from_time") || !time_check(c, q->to_time, "to_time"))
		return false;
	else if (q->from_time && q->to_time &&
			 (q->from_time->seconds > q->to_time->seconds ||
			  (q->from_time->seconds == q->to_time->seconds && q->from_time->nanos > q->to_time->nanos)))
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "from_time must not be after to_time");
	else
		return true;
	return false;
}

/* answer c with the error of res (or of the connection) */
static void
list_fail(call *c, db_thread *t, PGresult *res)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *pm = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *dt = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	grpc_status_code code = sqlstate_to_status(st);
	char		sqlmsg[768];
	char		msg[768];

	if (PQstatus(t->conn) != CONNECTION_OK)
	{
		db_reset(t);
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
	}
	else if (st != NULL && strcmp(st, "57014") == 0 && !c->deadline_timeout)
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the server's statement timeout (%d ms) was reached; retry later",
				  cfg.statement_timeout_ms);
	else
	{
		if (st != NULL && strcmp(st, "57014") == 0)
			code = GRPC_STATUS_DEADLINE_EXCEEDED;
		if (code == GRPC_STATUS_INTERNAL)
			logmsg(LOG_ERROR, "ListEncounters: database error %s: %s", st ? st : "?",
				   pm ? pm : PQresultErrorMessage(res));
		snprintf(sqlmsg, sizeof(sqlmsg), "%s%s%s%s%s", pm ? pm : "the database query failed",
				 dt ? ": " : "", dt ? dt : "", hint ? ". " : "", hint ? hint : "");
		/* only the argument errors name arguments */
		if (code == GRPC_STATUS_INVALID_ARGUMENT)
			proto_field_names(sqlmsg, msg, sizeof(msg), sql_to_proto, sizeof(sql_to_proto) / sizeof(sql_to_proto[0]));
		else
			snprintf(msg, sizeof(msg), "%s", sqlmsg);
		call_fail(c, code, "%s", msg);
	}
	PQclear(res);
}

/* the page (body: a JSON array of encounters) as the response */
static void
list_answer(call *c, const char *body, const char *next)
{
	Udaconnect__V1__ListEncountersResponse r = UDACONNECT__V1__LIST_ENCOUNTERS_RESPONSE__INIT;
	char		err[256];
	json_t	   *j = json_parse(body, err, sizeof(err));
	encounter_msg *ms = NULL;
	Udaconnect__V1__Encounter **ps = NULL;
	size_t		n = 0;

	if (j != NULL && !json_is_array(j))
		snprintf(err, sizeof(err), "the page is not a JSON array");
	else if (j != NULL)
	{
		n = json_array_size(j);
		ms = calloc(n ? n : 1, sizeof(*ms));
		ps = calloc(n ? n : 1, sizeof(*ps));
		if (ms == NULL || ps == NULL)
			snprintf(err, sizeof(err), "out of memory for %zu encounters", n);
		for (size_t i = 0; ms != NULL && ps != NULL && i < n; i++)
		{
			if (!encounter_from_json(json_array_get(j, i), &ms[i], err, sizeof(err)))
				break;
			ps[i] = &ms[i].e;
			r.n_encounters = i + 1;
		}
	}
	if (j == NULL || !json_is_array(j) || ms == NULL || ps == NULL || r.n_encounters != n)
	{
		logmsg(LOG_ERROR, "ListEncounters: the database's answer cannot be read: %s", err);
		call_fail(c, GRPC_STATUS_INTERNAL, "the database's answer cannot be read: %s", err);
	}
	else
	{
		r.encounters = ps;
		r.next_page_token = (char *) (next ? next : "");
		atomic_store(&c->answered, 1);
		call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
	}
	free(ms);
	free(ps);
	json_decref(j);
}

/* db thread: the query and the answer */
static void
list_job(call *c, db_thread *t)
{
	Udaconnect__V1__ListEncountersRequest *q = (Udaconnect__V1__ListEncountersRequest *) c->req;
	char		p_timeout[16],
				p_caller[16],
				p_person[16],
				p_from[32],
				p_to[32],
				p_limit[16];
	const char *params[7];
	const char *ptimeout = p_timeout;
	PGresult   *rows = NULL,
			   *err = NULL;
	bool		sent;

	if (now_ms() >= c->deadline_ms)
	{
		call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed before the query started");
		return;
	}
	if (t->conn == NULL && !db_connect(t, c))
		return;
	db_timeout_param(c, p_timeout, sizeof(p_timeout));
	snprintf(p_caller, sizeof(p_caller), "%d", c->who.person);
	snprintf(p_person, sizeof(p_person), "%d", q->person_id);
	snprintf(p_limit, sizeof(p_limit), "%d", q->page_size > 0 ? q->page_size : LIST_DEFAULT_PAGE);
	/* the verified caller: the database decides what it may read (42501) */
	params[0] = caller_role_name(&c->who);
	params[1] = c->who.role == UDC_ROLE_ATTENDEE ? p_caller : NULL;
	params[2] = p_person;
	params[3] = us_param(q->from_time, p_from, sizeof(p_from));
	params[4] = us_param(q->to_time, p_to, sizeof(p_to));
	params[5] = p_limit;
	params[6] = q->page_token[0] ? q->page_token : NULL;

	sent = PQenterPipelineMode(t->conn) &&
		PQsendQueryParams(t->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
		PQsendQueryParams(t->conn, "SELECT pg_catalog.set_config('statement_timeout', $1, true)",
						  1, NULL, &ptimeout, NULL, NULL, 0) &&
		PQsendQueryParams(t->conn,
						  "SELECT body::text, next_cursor FROM udaconnect.api_encounters($1::text, $2::int4, $3::int4,"
						  " 'epoch'::timestamptz + $4::int8 * interval '1 microsecond',"
						  " 'epoch'::timestamptz + $5::int8 * interval '1 microsecond', $6::int4, $7::text)",
						  7, NULL, params, NULL, NULL, 0) &&	/* query 2 */
		PQsendQueryParams(t->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
		PQpipelineSync(t->conn);
	if (!sent || !db_pipeline_results(t, 2, &rows, &err) || !PQexitPipelineMode(t->conn))
	{
		PQclear(rows);
		PQclear(err);
		db_reset(t);
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "the database is unavailable");
		return;
	}
	if (err == NULL && (rows == NULL || PQntuples(rows) != 1 || PQgetisnull(rows, 0, 0)))
	{
		/* api_encounters always answers one row: this is our bug, not the database's state */
		PQclear(rows);
		if (PQtransactionStatus(t->conn) == PQTRANS_INERROR || PQtransactionStatus(t->conn) == PQTRANS_INTRANS)
			PQclear(PQexec(t->conn, "ROLLBACK"));
		call_fail(c, GRPC_STATUS_INTERNAL, "udaconnect.api_encounters() returned no page");
		return;
	}
	if (err != NULL)
	{
		PQclear(rows);
		if (PQtransactionStatus(t->conn) == PQTRANS_INERROR || PQtransactionStatus(t->conn) == PQTRANS_INTRANS)
			PQclear(PQexec(t->conn, "ROLLBACK"));
		list_fail(c, t, err);
		return;
	}
	list_answer(c, PQgetvalue(rows, 0, 0), PQgetisnull(rows, 0, 1) ? NULL : PQgetvalue(rows, 0, 1));
	PQclear(rows);
}

/* a new ListEncounters call (worker thread) */
void
handle_list(call *c, grpc_byte_buffer *payload)
{
	Udaconnect__V1__ListEncountersRequest *q;

	c->release = list_release;
	q = (Udaconnect__V1__ListEncountersRequest *)
		request_unpack(c, payload, &udaconnect__v1__list_encounters_request__descriptor, NULL, true);
	if (q == NULL)
		return;
	c->req = &q->base;
	if (!list_check(c, q))
		return;
	if (cfg.dburl == NULL)
	{
		call_fail(c, GRPC_STATUS_UNAVAILABLE, "no database configured (UDACONNECT_DATABASE_URL / --database-url)");
		return;
	}
	db_submit(c, list_job);
}
