/*
 * dbrun.c: running one statement on this thread's blocking connection
 * (udaconnect-httpd), the statement threads' work (dbpool.c).
 *
 * db_run() runs it and says what came of it in a struct db_outcome: the
 * statement's row, its SQL error, or why it could not run (the database
 * unreachable, the connection lost, a result of the wrong shape).  It
 * retries what may be retried: a read, or a write that certainly did not
 * run, once on a new connection after the old one broke, and any
 * statement once after its prepared statement vanished.  After a write it
 * asks the primary's WAL position for the caller's next reads (ryw.c).
 * It runs on a thread that serves no HTTP connection, so it may wait on
 * the database; that is why it must not touch libmicrohttpd nor the
 * request: the worker that owns the request turns the outcome into the
 * answer (dbcall.c).
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

bool
db_result_shape_ok(const PGresult *res, enum stmt s)
{
	return PQnfields(res) > 0 &&
		(PQntuples(res) == 1 || (PQntuples(res) == 0 && db_stmt_may_be_empty(s)));
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
 * reads on a standby (ryw.c); 0 when unknown (the connection broke just
 * after the commit): the write stands, only its read-your-writes is not
 * promised.
 */
static uint64_t
wrote_lsn(PGconn *conn, enum stmt s)
{
	PGresult   *res;
	uint64_t	lsn = 0;

	if (!db_reads_split() || !db_stmt_writes(s))
		return 0;
	res = PQexecPrepared(conn, db_stmt_name(S_WRITE_LSN), 0, NULL, NULL, NULL, 0);
	if (!(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		  parse_lsn(PQgetvalue(res, 0, 0), &lsn) == 0))
	{
		logmsg(LOG_WARNING, "%s: the primary's WAL position is unknown after the write: %s",
			   db_stmt_name(s), PQresultErrorMessage(res));
		lsn = 0;
	}
	PQclear(res);
	return lsn;
}

void
db_run(enum stmt s, int n, const char *const *values, bool is_write,
	   struct db_outcome *o)
{
	memset(o, 0, sizeof(*o));
	for (int attempt = 0;; attempt++)
	{
		PGconn	   *conn = db_conn();
		PGresult   *res;
		ExecStatusType st;
		const char *state;
		bool		unrun;

		if (!conn)
		{
			o->kind = DBO_UNAVAILABLE;
			snprintf(o->why, sizeof(o->why), "%s", db_last_error());
			return;
		}
		metrics_db_busy(+1);
		res = exec_prepared(conn, s, n, values, &unrun);
		metrics_db_busy(-1);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && db_result_shape_ok(res, s))
		{
			o->kind = DBO_OK;
			o->res = res;
			o->wrote_lsn = wrote_lsn(conn, s);
			return;
		}
		if (st == PGRES_TUPLES_OK)
		{
			PQclear(res);
			o->kind = DBO_SHAPE;
			return;
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
			if (attempt == 0 && (!is_write || unrun))
				continue;
			o->kind = DBO_LOST;
			return;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* the prepared statement vanished (e.g. DISCARD ALL by a pooler) */
		if (state && strcmp(state, "26000") == 0 && attempt == 0)
		{
			PQclear(res);
			db_drop();
			continue;
		}
		o->kind = DBO_ERROR;
		o->res = res;
		return;
	}
}
