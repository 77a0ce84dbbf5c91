/*
 * dbcall.c: one request's statement, from the handler's call to its answer
 * (udaconnect-httpd).
 *
 * db_call() hands the statement to a statement thread (dbpool.c) and
 * suspends the HTTP connection, so the worker thread never waits for the
 * database; when libmicrohttpd calls the handler again, db_call() takes
 * the outcome and turns every failure into the request's answer: the
 * database unreachable (503), the connection lost (503; dbrun.c already
 * ran a read again), a result of the wrong shape (500), an SQL error
 * (response.c's SQLSTATE mapping).  db_call_fast() sends the statement on
 * the worker's pipelined connection instead when it can (worker.c) and
 * falls back to db_call() whenever that cannot give the statement's own
 * answer.  With a read URL, the GET routes' reads go to the pipelined
 * connection, which is then the read one (a hot standby): whatever the
 * standby cannot answer for sure runs again on the primary (db_call), and a
 * write remembers the primary's position for the caller's next reads
 * (ryw.c).  Both put the request's caller (caller.c) before the statement's
 * own parameters, so no handler can forget it.  This file must not decide
 * what a route asks nor build a success answer: the handlers (api.c) do.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

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

	if (n + 2 > DB_MAX_PARAMS)
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
send_unavailable(struct MHD_Connection *c, struct request *r, const char *why)
{
	char		msg[320];

	snprintf(msg, sizeof(msg), "the database is unavailable; retry later%s%s%s",
			 *why ? " (" : "", why, *why ? ")" : "");
	return send_error(c, r, 503, "database_unavailable", msg, NULL);
}

/* Stopping, the statement certainly not run: safe to retry elsewhere. */
static enum MHD_Result
send_not_run(struct MHD_Connection *c, struct request *r)
{
	return send_error(c, r, 503, "server_stopping",
					  "the server is stopping and did not run the request; retry", NULL);
}

/* The outcome's row, or NULL with the answer to its failure queued. */
static PGresult *
answer(struct MHD_Connection *c, struct request *r, enum stmt s, struct db_outcome *o,
	   const char *const *fields, const char *fallback_field, enum MHD_Result *ret)
{
	switch (o->kind)
	{
		case DBO_OK:
			if (o->wrote_lsn)
				ryw_wrote(r, o->wrote_lsn);
			return o->res;
		case DBO_UNAVAILABLE:
			*ret = send_unavailable(c, r, o->why);
			break;
		case DBO_LOST:
			*ret = send_error(c, r, 503, "database_unavailable",
							  "the database connection was lost; retry later", NULL);
			break;
		case DBO_SHAPE:
			*ret = send_error(c, r, 500, "internal_error", "unexpected result shape", NULL);
			break;
		case DBO_ERROR:
			*ret = send_db_error(c, r, s, o->res, fields, fallback_field);
			PQclear(o->res);
			break;
		case DBO_NOT_RUN:
			*ret = send_not_run(c, r);
			break;
		case DBO_UNKNOWN:
			*ret = send_error(c, r, 503, "server_stopping",
							  "the server stopped before the request's statement finished: "
							  "a write may or may not have been made", NULL);
			break;
	}
	return NULL;
}

/*
 * The standby says there is no such thing (P0002, no row, a NULL body): it
 * may not have replayed its creation yet, by another gateway or a client
 * that keeps no cookie, so the primary, which has everything, is asked.
 */
static bool
standby_not_found(const PGresult *res)
{
	const char *state;

	if (PQresultStatus(res) == PGRES_FATAL_ERROR)
	{
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		return state && strcmp(state, "P0002") == 0;
	}
	return PQresultStatus(res) == PGRES_TUPLES_OK &&
		(PQntuples(res) == 0 || PQgetisnull(res, 0, 0));
}

PGresult *
db_call(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
		const char *const *values, const char *const *fields,
		const char *fallback_field, enum MHD_Result *ret)
{
	const char *all[DB_MAX_PARAMS];
	struct db_outcome o;
	int			k;

	if (r->job)
	{
		if (db_job_take(r, &o))
			return answer(c, r, s, &o, fields, fallback_field, ret);
		logmsg(LOG_ERROR, "%s: called again while its statement runs", db_stmt_name(s));
		*ret = send_error(c, r, 500, "internal_error", "the statement is still running", NULL);
		return NULL;
	}
	k = with_caller(r, s, n, values, all);
	if (k < 0)
	{
		logmsg(LOG_ERROR, "%s: called without an established caller", db_stmt_name(s));
		*ret = send_error(c, r, 500, "internal_error", "the caller was not established", NULL);
		return NULL;
	}

	/*
	 * Answered before its body was read (body_plan(): Expect: 100-continue,
	 * or more than --max-discard bytes declared): libmicrohttpd cannot
	 * suspend the request then, and this worker must not wait for the
	 * database.  Only a route without a body gets here, and it takes none.
	 */
	if (!r->may_suspend)
	{
		*ret = send_error(c, r, 413, "payload_too_large",
						  "this route takes no request body; send the request without one", NULL);
		return NULL;
	}
	if (workers_stopping() && !r->in_flight)
	{
		*ret = send_not_run(c, r);
		return NULL;
	}
	if (db_submit(r, c, s, k, all) != 0)
	{
		*ret = send_error(c, r, 503, "server_busy",
						  "the gateway is out of memory; retry later", NULL);
		return NULL;
	}
	*ret = MHD_YES;				/* suspended until the outcome is in */
	return NULL;
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
	const char *all[DB_MAX_PARAMS];
	int			k;

	bool		split = db_reads_split();

	if (r->job)					/* the pipelined round sent it here already */
		return db_call(c, r, s, n, values, fields, fallback_field, ret);
	if (r->pipe.done)
	{
		res = r->pipe.res;
		r->pipe.res = NULL;
		r->pipe.done = false;
		r->may_async = false;
		if (res && r->pipe.standby && standby_not_found(res))
		{
			metrics_db_read("not_found");
			PQclear(res);
			res = NULL;
		}
		if (res && PQresultStatus(res) == PGRES_TUPLES_OK && db_result_shape_ok(res, s))
			return res;
		if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
		{
			*ret = send_db_error(c, r, s, res, fields, fallback_field);
			PQclear(res);
			return NULL;
		}
		PQclear(res);			/* not the statement's own answer: run it here */
	}
	/* with a read URL the pipelined connection is the read one */
	else if (r->may_async && (split ? db_stmt_on_standby(s) : db_stmt_may_pipeline(s)) &&
			 (k = with_caller(r, s, n, values, all)) >= 0)
	{
		r->pipe.min_lsn = split ? ryw_min_lsn(c, r) : 0;
		if (pipe_send(&r->pipe, s, k, all) == 0)
		{
			r->in_flight = true;
			*ret = MHD_YES;		/* suspended until the result is in */
			return NULL;
		}
		if (split)
			metrics_db_read("unavailable");
	}
	return db_call(c, r, s, n, values, fields, fallback_field, ret);
}
