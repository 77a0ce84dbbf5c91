/*
 * dbcall.c: running one request's statement (udaconnect-httpd).
 *
 * db_call() runs it on the worker's blocking connection and turns every
 * failure into the request's answer: the database unreachable (503), the
 * connection lost (a GET is retried once on a new one), the prepared
 * statement vanished (retried once), a result of the wrong shape (500), an
 * SQL error (response.c's SQLSTATE mapping).  db_call_fast() sends it on
 * the worker's pipelined connection instead when it can (worker.c) and
 * falls back to db_call() whenever that cannot give the statement's own
 * answer.  Both put the request's caller (caller.c) before the statement's
 * own parameters, so no handler can forget it.  This file must not decide
 * what a route asks nor build a success answer: the handlers (api.c) do.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

/* Whether a successful result has the shape statement s answers with. */
static bool
result_shape_ok(const PGresult *res, enum stmt s)
{
	return PQnfields(res) > 0 &&
		(PQntuples(res) == 1 || (PQntuples(res) == 0 && db_stmt_may_be_empty(s)));
}

/* The most parameters of a statement, the caller's two included. */
#define MAX_PARAMS 10

/*
 * The parameters of statement s: the caller's two, then the handler's n
 * values, in `all`; their count, or -1 when the caller is not established
 * (a handler reached without caller_refused(): a bug, answered 500) or
 * there are too many.
 */
static int
with_caller(const struct request *r, enum stmt s, int n, const char *const *values,
			const char **all)
{
	int			k = 0;

	if (n + 2 > MAX_PARAMS)
		return -1;
	if (db_stmt_has_caller(s))
	{
		if (!r->caller_known)
			return -1;
		all[k++] = r->caller_role;
		all[k++] = r->caller_id[0] ? r->caller_id : NULL;
	}
	for (int i = 0; i < n; i++)
		all[k++] = values[i];
	return k;
}

static enum MHD_Result
send_unavailable(struct MHD_Connection *c, struct request *r)
{
	char		msg[320];
	const char *why = db_last_error();

	snprintf(msg, sizeof(msg), "the database is unavailable; retry later%s%s%s",
			 *why ? " (" : "", why, *why ? ")" : "");
	return send_error(c, r, 503, "database_unavailable", msg, NULL);
}

PGresult *
db_call(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
		const char *const *values, const char *const *fields,
		const char *fallback_field, enum MHD_Result *ret)
{
	const char *all[MAX_PARAMS];
	int			k = with_caller(r, s, n, values, all);

	if (k < 0)
	{
		logmsg(LOG_ERROR, "%s: called without an established caller", db_stmt_name(s));
		*ret = send_error(c, r, 500, "internal_error", "the caller was not established", NULL);
		return NULL;
	}
	for (int attempt = 0;; attempt++)
	{
		PGconn	   *conn = db_conn();
		PGresult   *res;
		ExecStatusType st;
		const char *state;

		if (!conn)
		{
			*ret = send_unavailable(c, r);
			return NULL;
		}
		metrics_db_busy(+1);
		res = PQexecPrepared(conn, db_stmt_name(s), k, all, NULL, NULL, 0);
		metrics_db_busy(-1);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && result_shape_ok(res, s))
			return res;
		if (st == PGRES_TUPLES_OK)
		{
			PQclear(res);
			*ret = send_error(c, r, 500, "internal_error", "unexpected result shape", NULL);
			return NULL;
		}
		if (PQstatus(conn) != CONNECTION_OK)
		{
			PQclear(res);
			db_drop();
			metrics_db_error("connection_lost");
			/* a read is run again; a write may have happened */
			if (attempt == 0 && !r->is_post && !r->is_delete)
				continue;
			*ret = send_error(c, r, 503, "database_unavailable",
							  "the database connection was lost; retry later", NULL);
			return NULL;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* the prepared statement vanished (e.g. DISCARD ALL by a pooler) */
		if (state && strcmp(state, "26000") == 0 && attempt == 0)
		{
			PQclear(res);
			db_drop();
			continue;
		}
		*ret = send_db_error(c, r, s, res, fields, fallback_field);
		PQclear(res);
		return NULL;
	}
}

/*
 * For the hot read routes: the statement goes to the worker's pipelined
 * connection and the HTTP connection is suspended until its result arrives
 * (worker.c); then libmicrohttpd calls the handler again, which comes back
 * here and takes the result.
 */
PGresult *
db_call_fast(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
			 const char *const *values, const char *const *fields,
			 const char *fallback_field, enum MHD_Result *ret)
{
	PGresult   *res;
	const char *all[MAX_PARAMS];
	int			k;

	if (r->pipe.done)
	{
		res = r->pipe.res;
		r->pipe.res = NULL;
		r->pipe.done = false;
		r->may_async = false;
		if (res && PQresultStatus(res) == PGRES_TUPLES_OK && result_shape_ok(res, s))
			return res;
		if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
		{
			*ret = send_db_error(c, r, s, res, fields, fallback_field);
			PQclear(res);
			return NULL;
		}
		PQclear(res);			/* not the statement's own answer: run it here */
	}
	else if (r->may_async && db_stmt_may_pipeline(s) &&
			 (k = with_caller(r, s, n, values, all)) >= 0 &&
			 pipe_send(&r->pipe, s, k, all) == 0)
	{
		*ret = MHD_YES;			/* suspended until the result is in */
		return NULL;
	}
	return db_call(c, r, s, n, values, fields, fallback_field, ret);
}
