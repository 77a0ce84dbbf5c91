/*
 * db.c: the database connections of udaconnect-httpd: the statements, how a
 * connection is made, and the blocking connection of each statement thread.
 *
 * The reads go over each worker's pipelined connection (worker.c), to the
 * primary or, with a read URL (UDACONNECT_DATABASE_READ_URL), to that URL,
 * made by db_connect_attempt() on a thread of its own (connlink.c), never
 * by a worker: a database that drops packets holds only that thread, for
 * its connect timeout.  The other statements, and the pipelined ones that must be run
 * again, run on the statement threads (dbpool.c), each with a thread-local
 * blocking connection here (db_conn), so it needs no lock; the stream
 * thread (listen.c) makes its own with db_connect_new().  A thread's
 * connection is made on first use and again after it broke, with a short
 * back-off, so an unreachable database costs one attempt per 500 ms per
 * thread, not one per request.  Every statement is prepared once per
 * connection.  This file must not run a request's statement or answer it
 * (dbrun.c and dbcall.c do).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

/* How long a thread waits after a failed attempt to connect. */
#define RETRY_SECONDS 0.5

/* Every api_* statement takes the caller first: $1 caller_role, $2 caller_id. */
#define CALLER "$1::text, $2::integer"

static const struct
{
	const char *name;
	const char *sql;
	int			nparams;
	bool		may_be_empty;	/* 0 rows = NULL (a set-returning function) */
	bool		no_caller;		/* S_HEALTH and the LSN statements */

	/*
	 * A read without side effects: it may share a worker's pipelined round
	 * (dbcall.c).  The round's statements run under one Sync, i.e. one
	 * implicit transaction, so a statement that writes must never be in it:
	 * another request's error would roll its write back after its answer
	 * had gone out.
	 */
	bool		pipeline;

	/*
	 * A GET route's read that a hot standby may answer: its udaconnect.api_*
	 * function is STABLE and writes nothing (a write there fails with
	 * 25006), and it is no part of a live stream (NOTIFY does not reach a
	 * standby).  With a read URL these go over the pipelined connection,
	 * which is then the read one.
	 */
	bool		standby;
	bool		writes;			/* the caller's later reads must see it */
}			stmts[S_COUNT] = {
	[S_PERSONS] = {"persons", "SELECT udaconnect.api_persons(" CALLER ")", 2, .pipeline = true, .standby = true},
	/* inlined by the planner: see api_person in sql/src/60-http.sql */
	[S_PERSON] = {
		"person",
		"SELECT body FROM udaconnect.api_person(" CALLER ", $3::integer) AS body", 3, true,
		.pipeline = true, .standby = true
	},
	[S_CREATE_PERSON] = {
		"create_person",
		"SELECT udaconnect.api_create_person(" CALLER ", $3::text, $4::text, $5::text)", 5,
		.writes = true
	},
	[S_FORGET_PERSON] = {
		"forget_person", "SELECT udaconnect.api_forget_person(" CALLER ", $3::integer)", 3,
		.writes = true
	},
	[S_TOKEN_CLAIMS] = {
		"token_claims", "SELECT udaconnect.api_token_claims(" CALLER ", $3::integer)", 3
	},
	/* the original's shape (one entry per location) and per person */
	[S_CONNECTION] = {
		"connection",
		"SELECT udaconnect.api_connections(" CALLER ", $3::integer, $4::date, $5::date, "
		"$6::float8, $7::float8, false)", 7, .pipeline = true, .standby = true
	},
	[S_CONNECTIONS] = {
		"connections",
		"SELECT udaconnect.api_connections(" CALLER ", $3::integer, $4::date, $5::date, "
		"$6::float8, $7::float8, true)", 7, .pipeline = true, .standby = true
	},
	[S_LOCATIONS] = {
		"locations",
		"SELECT body, next_cursor FROM udaconnect.api_locations(" CALLER ", $3::integer, "
		"$4::bigint, $5::bigint, $6::integer, $7::date, $8::date)", 8, .pipeline = true,
		.standby = true
	},
	[S_LOCATION] = {
		"location", "SELECT udaconnect.api_location(" CALLER ", $3::bigint)", 3,
		.pipeline = true, .standby = true
	},
	[S_CREATE_LOCATION] = {
		"create_location",
		"SELECT udaconnect.api_create_location(" CALLER ", $3::integer, $4::float8, "
		"$5::float8, $6::text)", 6, .writes = true
	},
	[S_PLACES] = {"places", "SELECT udaconnect.api_places(" CALLER ")", 2, .pipeline = true, .standby = true},
	[S_PLACE] = {
		"place", "SELECT udaconnect.api_place(" CALLER ", $3::integer)", 3,
		.pipeline = true, .standby = true
	},
	[S_CREATE_PLACE] = {
		"create_place",
		"SELECT udaconnect.api_create_place(" CALLER ", $3::text, $4::text, $5::integer, "
		"$6::json, $7::float8, $8::float8, $9::float8)", 9, .writes = true
	},
	[S_DELETE_PLACE] = {
		"delete_place", "SELECT udaconnect.api_delete_place(" CALLER ", $3::integer)", 3,
		.writes = true
	},
	/* the encounters (sql/src/70-encounters-http.sql, 75-encounters-stream.sql) */
	[S_ENCOUNTERS] = {
		"encounters",
		"SELECT body, next_cursor FROM udaconnect.api_encounters(" CALLER ", $3::integer, "
		"$4::timestamptz, $5::timestamptz, $6::integer, $7::text)", 7, .pipeline = true,
		.standby = true
	},
	[S_ENCOUNTER_POSITION] = {
		"encounter_position",
		"SELECT version, id FROM udaconnect.api_encounter_position(" CALLER ", $3::integer)", 3
	},
	/*
	 * the stream thread's fetch (listen.c): the changes of several persons,
	 * each after its own position ($3, $4, $5: arrays of one length), in
	 * the persons' order; any number of rows
	 */
	[S_ENCOUNTER_CHANGES] = {
		"encounter_changes",
		"SELECT x.p, c.version, c.id, c.kind, c.body "
		"FROM unnest($3::integer[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS x(p, v, i, o), "
		"LATERAL udaconnect.api_encounter_changes(" CALLER ", x.p, x.v, x.i, $6::integer) c "
		"ORDER BY x.o, c.version, c.id", 6, true
	},
	/*
	 * the stream thread's live fetch (listen.c): what NOTIFY announced for
	 * several persons, each its versions ($4, $5] and its ids $8[$6:$7]
	 * ($3..$7: arrays of one length), in the persons' order
	 */
	[S_ENCOUNTER_CHANGES_BY_ID] = {
		"encounter_changes_by_id",
		"SELECT x.p, c.version, c.id, c.kind, c.body "
		"FROM unnest($3::integer[], $4::bigint[], $5::bigint[], $6::integer[], $7::integer[]) "
		"WITH ORDINALITY AS x(p, v, u, s, e, o), "
		"LATERAL udaconnect.api_encounter_changes_by_id(" CALLER ", x.p, "
		"coalesce(($8::bigint[])[x.s:x.e], '{}'), x.v, x.u, $9::integer) c "
		"ORDER BY x.o, c.version, c.id", 9, true
	},
	[S_HEALTH] = {"health", "SELECT 1", 0, false, true, .pipeline = true},

	/*
	 * Read-your-writes (ryw.c): where a standby's replay stands (NULL on a
	 * primary, which has everything), and the primary's position after a
	 * write committed (the insert position: at or past the commit record).
	 */
	[S_REPLAY_LSN] = {
		"replay_lsn",
		"SELECT CASE WHEN pg_catalog.pg_is_in_recovery() "
		"THEN pg_catalog.pg_last_wal_replay_lsn()::text END", 0, false, true
	},
	[S_WRITE_LSN] = {"write_lsn", "SELECT pg_catalog.pg_current_wal_insert_lsn()::text", 0, false, true},
};

static pthread_key_t conn_key;
static __thread PGconn *tconn;
static __thread double next_attempt;	/* monotonic seconds */
/* "cannot connect" is logged once per outage, whichever thread meets it
 * (the pipelined connections are made by short-lived threads) */
static atomic_bool primary_down;
static atomic_bool read_down;
static __thread char last_error[256];

const char *
db_last_error(void)
{
	return last_error;
}

static void
set_last_error(const char *prefix, const char *msg)
{
	snprintf(last_error, sizeof(last_error), "%s%s", prefix, msg ? msg : "");
	/* one line: drop libpq's trailing newline(s) */
	for (char *p = last_error; *p; p++)
		if (*p == '\n' || *p == '\r')
		{
			*p = 0;
			break;
		}
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * What the server says outside a result (e.g. that it is terminating the
 * session) goes to our log, not bare to stderr as libpq's default does.
 */
static void
notice_to_log(void *arg, const char *message)
{
	(void) arg;
	logmsg(LOG_WARNING, "database: %s", message);
}

void
db_close(PGconn *c)
{
	PQfinish(c);
	metrics_db_conn(-1);
}

/* A statement thread ends: close its blocking connection. */
static void
conn_destructor(void *p)
{
	if (p)
		db_close((PGconn *) p);
}

void
db_init(void)
{
	pthread_key_create(&conn_key, conn_destructor);
}

const char *
db_stmt_name(enum stmt s)
{
	return stmts[s].name;
}

bool
db_stmt_has_caller(enum stmt s)
{
	return !stmts[s].no_caller;
}

bool
db_stmt_may_be_empty(enum stmt s)
{
	return stmts[s].may_be_empty;
}

bool
db_stmt_may_pipeline(enum stmt s)
{
	return stmts[s].pipeline;
}

bool
db_stmt_on_standby(enum stmt s)
{
	return stmts[s].standby;
}

bool
db_stmt_writes(enum stmt s)
{
	return stmts[s].writes;
}

bool
db_reads_split(void)
{
	return cfg.database_read_url && *cfg.database_read_url;
}

void
db_drop(void)
{
	if (tconn)
	{
		db_close(tconn);
		tconn = NULL;
		pthread_setspecific(conn_key, NULL);
	}
}

static void
db_connect_failed(void)
{
	next_attempt = mono_now() + RETRY_SECONDS;
}

/* Prepares every statement on c: true, or false (logged, last_error set). */
static bool
prepare_all(PGconn *c)
{
	PGresult   *r;

	for (int i = 0; i < S_COUNT; i++)
	{
		r = PQprepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			logmsg(LOG_ERROR, "cannot prepare %s: %s", stmts[i].name, PQresultErrorMessage(r));
			set_last_error("the database lacks the HTTP API (is the pg_udaconnect extension "
						   "installed and up to date?): ",
						   PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
			metrics_db_error("prepare");
			PQclear(r);
			return false;
		}
		PQclear(r);
	}
	return true;
}

/* One attempt to connect: the connection, statements prepared, or NULL. */
static PGconn *
connect_once(bool read)
{
	char		options[160];
	const char *keys[8];
	const char *vals[8];
	int			n = 0;
	PGconn	   *c;

	snprintf(options, sizeof(options),
			 "-c statement_timeout=%d -c TimeZone=UTC -c DateStyle=ISO",
			 cfg.statement_timeout_ms);
	/* before the URL, so that a connect_timeout there wins (a standby that
	 * drops packets holds the connecting thread that long per host) */
	if (read)
	{
		keys[n] = "connect_timeout";
		vals[n++] = "2";
	}
	keys[n] = "dbname";
	vals[n++] = read ? cfg.database_read_url : cfg.database_url ? cfg.database_url : "";
	if (cfg.db_user && *cfg.db_user)
	{
		keys[n] = "user";
		vals[n++] = cfg.db_user;
	}
	keys[n] = "options";
	vals[n++] = options;
	/* the reads' sessions are told apart in pg_stat_activity */
	keys[n] = "application_name";
	vals[n++] = read ? "udaconnect-httpd-read" : "udaconnect-httpd";
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	if (!read)
	{
		keys[n] = "connect_timeout";
		vals[n++] = "3";
	}
	keys[n] = NULL;
	vals[n] = NULL;

	c = PQconnectdbParams(keys, vals, 1);
	PQsetNoticeProcessor(c, notice_to_log, NULL);
	if (PQstatus(c) != CONNECTION_OK)
	{
		if (!atomic_exchange(read ? &read_down : &primary_down, true))
			logmsg(LOG_WARNING, "cannot connect to the %s: %s",
				   read ? "read database (reads go to the primary meanwhile)" : "database",
				   PQerrorMessage(c));
		metrics_db_error("connect");
		PQfinish(c);
		/* the details (host, port, role) go to the log, not to clients */
		if (!read)
			set_last_error("cannot connect to the database", NULL);
		return NULL;
	}
	if (!prepare_all(c))
	{
		PQfinish(c);
		return NULL;
	}
	if (atomic_exchange(read ? &read_down : &primary_down, false))
		logmsg(LOG_INFO, "connected to the %s again", read ? "read database" : "database");
	if (!read)
		last_error[0] = 0;
	return c;
}

PGconn *
db_connect_attempt(bool read)
{
	PGconn	   *c = connect_once(read);

	if (c)
		metrics_db_conn(+1);
	return c;
}

PGconn *
db_connect_new(void)
{
	PGconn	   *c;

	if (mono_now() < next_attempt)
		return NULL;
	c = db_connect_attempt(false);
	if (!c)
		db_connect_failed();
	return c;
}

PGconn *
db_conn(void)
{
	/*
	 * The server may have closed the connection while it sat idle
	 * (pg_terminate_backend, a restart): reading what already arrived finds
	 * that before a statement is sent on it, so that a POST, which is not
	 * retried once sent, is not lost to it.  It never blocks (libpq's socket
	 * is non-blocking) and costs one recv.
	 */
	if (tconn && PQstatus(tconn) == CONNECTION_OK && PQconsumeInput(tconn) &&
		PQstatus(tconn) == CONNECTION_OK)
		return tconn;
	db_drop();
	tconn = db_connect_new();
	if (tconn)
		pthread_setspecific(conn_key, tconn);
	return tconn;
}
