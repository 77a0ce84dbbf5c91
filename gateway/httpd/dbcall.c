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

/* SQLSTATE 57P01..57P03: the server ended the session (shutdown, terminated) */
static bool
is_termination(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state && strncmp(state, "57P0", 4) == 0 &&
		(state[4] == '1' || state[4] == '2' || state[4] == '3');
}

/*
 * PQexecPrepared, telling whether the statement certainly did not run
 * (*unrun): it never left, or the server reported the end of the session
 * before the statement's complete answer (CommandComplete) came back.  The
 * server commits only after that answer, at the Sync, so such a write did
 * not happen and may run again on a new connection.  libpq reports the lost
 * connection as a result of its own after the server's message: every
 * result is looked at, the last one returned.
 */
static PGresult *
exec_prepared(PGconn *conn, enum stmt s, int n, const char *const *values, bool *unrun)
{
	PGresult   *res = NULL;
	PGresult   *next;
	bool		answered = false;
	bool		terminated = false;

	if (PQsendQueryPrepared(conn, db_stmt_name(s), n, values, NULL, NULL, 0) != 1)
	{
		*unrun = true;
		return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	}
	while ((next = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(next) == PGRES_TUPLES_OK)
			answered = true;
		else if (is_termination(next))
			terminated = true;
		PQclear(res);
		res = next;
	}
	*unrun = terminated && !answered;
	return res ? res : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

/*
 * After a write committed: the primary's position, for the caller's next
 * reads on a standby (ryw.c).  Without it (the connection broke just after
 * the commit) the write stands, only its read-your-writes is not promised.
 */
static void
note_write(struct request *r, enum stmt s)
{
	PGconn	   *conn;
	PGresult   *res;
	uint64_t	lsn;

	if (!db_reads_split() || !db_stmt_writes(s) || !(conn = db_conn()))
		return;
	res = PQexecPrepared(conn, db_stmt_name(S_WRITE_LSN), 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		parse_lsn(PQgetvalue(res, 0, 0), &lsn) == 0)
		ryw_wrote(r, lsn);
	else
		logmsg(LOG_WARNING, "%s: the primary's WAL position is unknown after the write: %s",
			   db_stmt_name(s), PQresultErrorMessage(res));
	PQclear(res);
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
		bool		unrun;

		if (!conn)
		{
			*ret = send_unavailable(c, r);
			return NULL;
		}
		metrics_db_busy(+1);
		res = exec_prepared(conn, s, k, all, &unrun);
		metrics_db_busy(-1);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && result_shape_ok(res, s))
		{
			note_write(r, s);
			return res;
		}
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

			/*
			 * A read is run again; a write only when it certainly did not
			 * happen (else the client is told, and may retry).
			 */
			if (attempt == 0 && ((!r->is_post && !r->is_delete) || unrun))
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

	bool		split = db_reads_split();

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
	/* with a read URL the pipelined connection is the read one */
	else if (r->may_async && (split ? db_stmt_on_standby(s) : db_stmt_may_pipeline(s)) &&
			 (k = with_caller(r, s, n, values, all)) >= 0)
	{
		r->pipe.min_lsn = split ? ryw_min_lsn(c, r) : 0;
		if (pipe_send(&r->pipe, s, k, all) == 0)
		{
			*ret = MHD_YES;		/* suspended until the result is in */
			return NULL;
		}
		if (split)
			metrics_db_read("unavailable");
	}
	return db_call(c, r, s, n, values, fields, fallback_field, ret);
}

PGresult *
db_call_read(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
			 const char *const *values, const char *const *fields,
			 const char *fallback_field, enum MHD_Result *ret)
{
	if (db_reads_split())
		return db_call_fast(c, r, s, n, values, fields, fallback_field, ret);
	return db_call(c, r, s, n, values, fields, fallback_field, ret);
}
