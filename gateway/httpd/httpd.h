/*
 * httpd.h: the private header of udaconnect-httpd, shared by all its files.
 *
 * It declares the configuration, the per-request record and what each file
 * offers the others, one section per file, lowest layer first: a file calls
 * only what is declared in the sections above its own, so the calls between
 * files run one way and never in a circle (docs/design.md, "Map of the
 * code: udaconnect-httpd").  It holds declarations only, no definitions and
 * no state, and must not declare anything a single file keeps to itself.
 */
#ifndef UDC_HTTPD_H
#define UDC_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#include "auth.h"
#include "log.h"

#define HTTPD_VERSION "1.0"

/* ---- shared types -------------------------------------------------------- */

/* The routes (also the metrics label, see metrics.c). */
enum route
{
	R_PERSONS,
	R_PERSON,
	R_CONNECTION,
	R_CONNECTIONS,
	R_TOKEN,
	R_LOCATIONS,
	R_LOCATION,
	R_PLACES,
	R_PLACE,
	R_ENCOUNTERS,
	R_ENCOUNTER_STREAM,
	R_OPENAPI,
	R_HEALTHZ,
	R_METRICS,
	R_STATIC,
	R_NOT_FOUND,
	R_COUNT
};

/* The prepared statements, one udaconnect.api_* call each (see db.c); all
 * but S_HEALTH take the caller (caller_role, caller_id) first. */
enum stmt
{
	S_PERSONS,
	S_PERSON,
	S_CREATE_PERSON,
	S_FORGET_PERSON,
	S_TOKEN_CLAIMS,
	S_CONNECTION,
	S_CONNECTIONS,
	S_LOCATIONS,
	S_LOCATION,
	S_CREATE_LOCATION,
	S_PLACES,
	S_PLACE,
	S_CREATE_PLACE,
	S_DELETE_PLACE,
	S_ENCOUNTERS,
	S_ENCOUNTER_POSITION,
	S_ENCOUNTER_CHANGES,
	S_ENCOUNTER_CHANGES_BY_ID,
	S_HEALTH,
	S_REPLAY_LSN,				/* a standby's replay position (read-your-writes) */
	S_WRITE_LSN,				/* the primary's position after a write */
	S_COUNT
};

/* ---- parse.c: strict parsing of request text ----------------------------- */

/* 0, or -1 when s is not a decimal integer, -2 when it is out of [min, max]. */
extern int	parse_int64(const char *s, long long min, long long max, long long *out);

/* 0, or -1 when s is not a finite decimal number. */
extern int	parse_number(const char *s, double *out);

/* Whether s is YYYY-MM-DD of a real calendar day. */
extern bool valid_date(const char *s);

/*
 * Whether s is an ISO 8601 date (YYYY-MM-DD, *date_only set) or date and
 * time: YYYY-MM-DD, 'T' (or 't' or a space), HH:MM[:SS[.fraction]], then
 * nothing (UTC), 'Z' or an offset +HH:MM, +HHMM or +HH (- likewise).
 */
extern bool valid_timestamp(const char *s, bool *date_only);

/* 0, or -1 when s is not a WAL position as PostgreSQL prints one (X/Y). */
extern int	parse_lsn(const char *s, uint64_t *out);

/* s made safe to echo in a message (printable ASCII, at most 40 characters). */
extern const char *shown(const char *s, char *buf, size_t size);

/* Percent-decodes s in place, leaving "%00" encoded; the new length. */
extern size_t percent_decode(char *s);

/* ---- config.c: flags and environment ------------------------------------- */

struct config
{
	const char *bind;			/* listen address */
	int			port;
	const char *database_url;	/* libpq conninfo */
	const char *database_read_url;	/* the GET routes' conninfo (NULL or "":
									 * database_url) */
	const char *db_user;		/* overrides the conninfo's user */
	int			threads;
	int			db_threads;		/* statement threads (dbpool.c) */
	int			statement_timeout_ms;
	size_t		max_body;
	size_t		max_discard;	/* body bytes read of a refused request */
	unsigned	max_connections;
	unsigned	max_per_ip;
	unsigned	connection_timeout_s;
	size_t		connection_memory;
	const char *cors_origin;	/* NULL = CORS off */
	bool		auth;			/* UDACONNECT_AUTH: /api routes need a token */
	const char *auth_text;		/* its text as given ("on", "off") */
	const char *jwt_key_file;	/* UDACONNECT_JWT_KEY_FILE */
	const char *tls_cert_file;	/* UDACONNECT_TLS_CERT_FILE (NULL: no TLS) */
	const char *tls_key_file;	/* UDACONNECT_TLS_KEY_FILE */
	const char *web_root;
	const char *openapi_path;
	/* the live encounter streams (hub.c, listen.c, sse.c) */
	unsigned	stream_max;		/* subscribers at once */
	int			stream_heartbeat_s;
	size_t		stream_queue;	/* unsent bytes queued per subscriber */
	const char *stream_fetch_text;	/* "by-id" or "scan" */
	bool		stream_by_id;	/* live streams read what NOTIFY announced by id */
};

extern struct config cfg;

/* Reads the environment, then the flags: -1 to go on, else the exit status
 * (0 after --help or --version, 2 after a bad setting). */
extern int	config_load(int argc, char **argv);

/* ---- tls.c: HTTPS ------------------------------------------------------- */

/* Reads and checks the certificate and key when TLS is configured: 0 (TLS on
 * or plain HTTP), or -1 (logged: a bad setting, exit status 2). */
extern int	tls_init(void);
extern void tls_free(void);

/* The daemons speak HTTPS. */
extern bool tls_on(void);

/* What each daemon adds for TLS: its flag, and its options (for
 * MHD_OPTION_ARRAY; just MHD_OPTION_END when TLS is off). */
extern unsigned tls_daemon_flags(void);
extern struct MHD_OptionItem *tls_daemon_options(void);

/* ---- metrics.c: Prometheus counters -------------------------------------- */

extern void metrics_request(enum route r, unsigned status, double seconds);
extern void metrics_db_error(const char *kind);
extern void metrics_db_conn(int delta);
extern void metrics_db_busy(int delta);
extern void metrics_db_queued(int delta);
extern void metrics_db_pipe_stalled(void);
extern void metrics_streams(int delta);
extern void metrics_stream_fetch(bool by_id);
extern void metrics_stream_statement(bool by_id, double seconds);
extern void metrics_stream_resync(void);

/* A read routed to a standby: answered there, or run again on the primary
 * (why: "lagging", "not_found", "conflict", "lost", "unavailable"). */
extern void metrics_db_read(const char *outcome);

/* Prometheus text; malloc'ed, *len set; NULL when out of memory. */
extern char *metrics_render(size_t *len);

/* ---- db.c: the statements, connecting, each statement thread's connection */

extern void db_init(void);

/* The thread's connection, (re)connecting when needed; NULL when the
 * database is unreachable (the reason in db_last_error()). */
extern PGconn *db_conn(void);

/* Drops the thread's connection (after it broke). */
extern void db_drop(void);

/* UDACONNECT_DATABASE_READ_URL is set: the GET routes read from it. */
extern bool db_reads_split(void);

extern const char *db_stmt_name(enum stmt s);

/* The statement takes the caller as its first two parameters. */
extern bool db_stmt_has_caller(enum stmt s);

/* The statement returns no row instead of a NULL one (treated the same). */
extern bool db_stmt_may_be_empty(enum stmt s);
extern bool db_stmt_may_pipeline(enum stmt s);

/* A read-only statement that a hot standby may answer (the GET routes). */
extern bool db_stmt_on_standby(enum stmt s);

/* A statement that writes: its commit position is remembered for the
 * caller's next reads (ryw.c). */
extern bool db_stmt_writes(enum stmt s);

/* Why the thread's last connection attempt failed ("" if it did not). */
extern const char *db_last_error(void);

/*
 * One attempt to connect to the read URL (`read`, db_reads_split()) or to
 * the primary (--database-url), statements prepared, counted: the
 * connection or NULL (logged once per outage).  It waits for the database
 * (connect_timeout, each host of the list): call it on a thread that
 * serves nobody, never a worker (connlink.c).
 */
extern PGconn *db_connect_attempt(bool read);

/*
 * A new connection to the primary for this thread (the stream thread, a
 * statement thread), or NULL: the thread's reconnection back-off allows no
 * attempt yet, or the attempt failed (the reason in db_last_error(); the
 * back-off starts).  It waits for the database like db_connect_attempt().
 */
extern PGconn *db_connect_new(void);

/* Closes a connection of db_connect_attempt() or db_connect_new(). */
extern void db_close(PGconn *c);

/* ---- connlink.c: making a worker's pipelined connection without waiting -- */

/* A worker's way to its pipelined connection (zeroed but `read`: none yet,
 * no back-off). */
typedef struct conn_link
{
	bool		read;			/* to the read URL (db_reads_split()) */
	struct conn_attempt *attempt;	/* in progress, or done and not taken */
	double		next_attempt;	/* monotonic seconds */
	double		backoff;		/* seconds; 0 after a success */
} conn_link;

/* The connection once an attempt (on a thread of its own) made it, else
 * NULL at once: an attempt starts when none runs and the back-off allows. */
extern PGconn *conn_link_get(conn_link *cl);

/* A connection it gave could not be used: back off. */
extern void conn_link_failed(conn_link *cl);

/* The worker stops: an attempt in progress is left to its thread. */
extern void conn_link_abandon(conn_link *cl);

/* ---- worker.c: worker threads and the pipelined connection --------------- */

/*
 * A statement on the worker's pipelined connection.  The request holds the
 * record; worker.c suspends the HTTP connection, fills the record when the
 * result is in and resumes the connection.  It calls nothing of the
 * caller's: the caller looks at `done` when libmicrohttpd calls it again.
 */
struct pipe_wait
{
	struct MHD_Connection *conn;	/* suspended while the statement runs */
	bool		waiting;		/* sent, no result yet */
	bool		done;			/* the result came: res */
	PGresult   *res;			/* NULL = run it with the blocking connection
								 * (pipeline aborted, connection lost) */
	uint64_t	min_lsn;		/* a standby answers only once it replayed this
								 * (0: any) */
	bool		stale;			/* the standby had not: run on the primary */
	bool		standby;		/* res came from a hot standby */
};

/* Starts n threads, each running the daemon make(cls) returns. */
extern int	workers_start(int n, struct MHD_Daemon *(*make) (void *cls), void *cls);

/* Stops them (answering what is in flight) and their daemons. */
extern void workers_stop(void);

/* This worker's requests waiting for a statement thread: +1 or -1.  A
 * stopping worker answers them before its daemon stops. */
extern void workers_jobs(int delta);

/* The workers are stopping: answers close their connection, and a request
 * that was not waiting for the database yet is refused (dbcall.c). */
extern bool workers_stopping(void);

/* Wakes the worker running daemon d, after a connection of its was resumed
 * from another thread. */
extern void workers_wake(const struct MHD_Daemon *d);

/* Sends statement s on this worker's pipelined connection and suspends
 * pw->conn: 0 = sent, -1 = not possible now (run it with the blocking
 * connection).  With a read URL the pipelined connection is the read one:
 * a standby that has not replayed pw->min_lsn yet gets the statement but
 * its result comes back NULL (stale), i.e. it runs on the primary. */
extern int	pipe_send(struct pipe_wait *pw, enum stmt s, int n, const char *const *values);

/* The request ends: forget its statement in flight, free a result unused. */
extern void pipe_release(struct pipe_wait *pw);

/* ---- hub.c: the subscribers of the live encounter streams ---------------- */

/* A subscriber (opaque): one stream's position and unsent text. */
struct sub;

/* One change of a person's encounters, as api_encounter_changes gives it. */
struct hub_change
{
	int64_t		version;
	int64_t		id;
	const char *kind;			/* "encounter" or "removed" */
	const char *body;			/* JSON text */
	size_t		body_len;
};

/* 0, or -1 (logged): the wake-up descriptor could not be made. */
extern int	hub_init(void);

/* Readable when the stream thread has a fetch to make (listen.c). */
extern int	hub_wake_fd(void);

/* The stream response's content reader and its free callback (the
 * subscriber goes away with the response). */
extern ssize_t hub_read(void *cls, uint64_t pos, char *buf, size_t max);
extern void hub_free(void *cls);

/* ---- hub_live.c: which fetch each watched person needs -------------------- */

/*
 * A new subscriber of `person`'s changes after (version, id) on connection
 * c, until `expires` (seconds since the epoch; 0: no end); at_now: the
 * position is api_encounter_position's (the client gave none).  NULL when
 * cfg.stream_max are subscribed already (*at_cap set) or out of memory.
 */
extern struct sub *hub_add(struct MHD_Connection *c, int32_t person, int64_t version,
						   int64_t id, bool at_now, int64_t expires, bool *at_cap);

/* The stream thread listens anew: every subscriber reads by version. */
extern void hub_listening(void);

/* A payload of NOTIFY udaconnect_encounter. */
extern void hub_notified(const char *payload);

/* A fetch to make for one person. */
struct hub_fetch
{
	int32_t		person;
	bool		check;			/* whether the person still exists (hub_erased.c) */
	bool		live;			/* by id: versions (version, upto], ids */
	int64_t		version;		/* a scan: after (version, id) */
	int64_t		id;
	int64_t		upto;
	int			nids;			/* ids written to the caller's buffer */
};

/*
 * The next fetch to make: true with f filled (a live fetch's ids written
 * to ids[0 .. f->nids), which has room for ENCN_CHAIN_MAX_IDS); false when
 * nobody waits for one.
 */
extern bool hub_next_fetch(struct hub_fetch *f, int64_t *ids);

/* The fetch's rows (ordered by version, id); `complete`: they were all
 * there were. */
extern void hub_deliver(int32_t person, const struct hub_change *rows, int n,
						bool complete);

/* The fetch failed: it will be made again (a live one, by version). */
extern void hub_fetch_failed(int32_t person);

/* ---- hub_erased.c: the streams of an erased person end -------------------- */

/* A payload of NOTIFY udaconnect_person_erased: the person is checked. */
extern void hub_erased(const char *payload);

/* The check-all that unexpected payloads asked for, if due; returns when
 * the next one is (monotonic seconds; 0: none waits). */
extern double hub_erased_tick(void);

/* A check's answer: gone, the person's streams end ("erased"). */
extern void hub_checked(int32_t person, bool gone);

/* Heartbeats to idle subscribers; streams past their end are ended. */
extern void hub_tick(int64_t now);

/* Every stream ends once its queue is sent (shutdown). */
extern void hub_end_all(void);

/* ---- listen.c: the stream thread (LISTEN and fetches) --------------------- */

/* Starts it: 0, or -1 (logged). */
extern int	stream_start(void);

/* Stops it and ends every stream. */
extern void stream_stop(void);

/* ---- the per-request record (libmicrohttpd's con_cls; request.c) --------- */

struct db_job;					/* dbpool.c */

struct request
{
	struct timespec t0;			/* first call (metrics, discard bound) */
	enum route	route;
	unsigned	status;			/* the status answered (metrics) */
	bool		is_post;
	bool		is_delete;
	const char *allow;			/* methods of the route (405, CORS) */
	char	   *url;			/* copy of the path, cut by route() */
	const char *id_str;			/* the path's id, points into url */
	char	   *body;
	size_t		body_len;
	bool		body_too_big;
	/* a refused body read and thrown away (discard.c) */
	bool		hold;			/* first call: queue() keeps the answer */
	bool		discarding;		/* body data is counted and dropped */
	uint64_t	body_seen;		/* body bytes received */
	struct MHD_Response *held;	/* queued on the final call */
	/* a statement on the pipelined connection (worker.c fills it) */
	bool		may_async;		/* the final call of a request without body */
	bool		in_flight;		/* its statement was sent (pipelined) */
	struct pipe_wait pipe;
	/* a statement on a statement thread (dbpool.c) */
	bool		may_suspend;	/* the final call: libmicrohttpd may suspend */
	struct db_job *job;
	/* the verified caller (caller.c): the udaconnect.api_* calls' first two
	 * parameters */
	bool		caller_known;	/* verified (or auth off) */
	const char *caller_role;	/* "organizer" or "attendee" */
	char		caller_id[16];	/* an attendee's person id; "" = NULL */
	int64_t		caller_exp;		/* the token's exp (0: auth off) */
	/* read-your-writes (ryw.c) */
	uint64_t	wrote_lsn;		/* this request wrote: the primary's position
								 * after it (0: none) */
};

/* ---- ryw.c: read-your-writes with reads on a standby --------------------- */

/* The WAL position a standby must have replayed before it may answer this
 * request's read: the caller's last write through this process, or the
 * position its cookie carries, whichever is later; 0 when neither. */
extern uint64_t ryw_min_lsn(struct MHD_Connection *c, const struct request *r);

/* The request wrote and committed; lsn is the primary's position after it. */
extern void ryw_wrote(struct request *r, uint64_t lsn);

/* The answer to a request that wrote carries its position (Set-Cookie). */
extern void ryw_headers(struct MHD_Response *resp, const struct request *r);

/* ---- response.c: answers, errors, SQLSTATE -> HTTP ----------------------- */

/* Content-Type, nosniff and the CORS headers every answer carries. */
extern void common_headers(struct MHD_Response *resp, const char *content_type);

/* Queues resp (or holds it until the body is read, see discard.c). */
extern enum MHD_Result queue(struct MHD_Connection *c, struct request *r,
							 unsigned status, struct MHD_Response *resp);

/* The 401 of RFC 6750: the error shape with `code` and `message` and the
 * WWW-Authenticate challenge (its error_description from `reason`, made a
 * valid quoted-string; NULL = no token was given). */
extern enum MHD_Result send_unauthorized(struct MHD_Connection *c, struct request *r,
										 const char *code, const char *message,
										 const char *reason);

/* An answer without a body; NULL when out of memory. */
extern struct MHD_Response *empty_response(void);

/* A malloc'ed body, freed by the response. */
extern enum MHD_Result send_owned(struct MHD_Connection *c, struct request *r,
								  unsigned status, char *body, size_t len,
								  const char *content_type);

/* A response whose body is column 0 of the single-row result, which it owns
 * from now on; NULL when out of memory (the result is freed). */
extern struct MHD_Response *result_response(PGresult *res);

/* Passes the single-row result through as the body. */
extern enum MHD_Result send_result(struct MHD_Connection *c, struct request *r,
								   unsigned status, PGresult *res,
								   const char *location_header);

/* The one error shape, with everything a database error brings. */
extern enum MHD_Result send_error_ex(struct MHD_Connection *c, struct request *r,
									 unsigned status, const char *code,
									 const char *message, const char *field,
									 const char *sqlstate, const char *detail,
									 const char *hint, const char *allow);
extern enum MHD_Result send_error(struct MHD_Connection *c, struct request *r,
								  unsigned status, const char *code,
								  const char *message, const char *field);

/* 400 invalid_parameter about `field`. */
extern enum MHD_Result bad_param(struct MHD_Connection *c, struct request *r,
								 const char *field, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

/* The answer to a failed statement (SQLSTATE -> HTTP).  `fields` lists the
 * request's fields ("name" or "sqlname:name") an error may be about. */
extern enum MHD_Result send_db_error(struct MHD_Connection *c, struct request *r,
									 enum stmt s, const PGresult *res,
									 const char *const *fields,
									 const char *fallback_field);

/* ---- caller.c: who is asking (the bearer token) -------------------------- */

/* Loads the signing key when auth is on: 0, or -1 (logged). */
extern int	caller_init(void);
extern void caller_free(void);

/* The route needs a caller (the /api routes but the OpenAPI document). */
extern bool caller_needed(enum route rt);

/*
 * Establishes the request's caller once (from the token, or the organizer
 * when auth is off): false when it is known, true with the 401 queued in
 * *ret.  CPU only, no database: a verified token is cached (auth.h).
 */
extern bool caller_refused(struct MHD_Connection *c, struct request *r,
						   enum MHD_Result *ret);

/* Signs an attendee token for `person`: malloc'd, or NULL with err set. */
extern char *caller_sign_attendee(int32_t person, int64_t now_s, int64_t ttl_s,
								  char *err, size_t errlen);

/* ---- dbrun.c: one statement on this thread's blocking connection -------- */

/* The most parameters of a statement, the caller's two included. */
#define DB_MAX_PARAMS 10

/* What came of running a statement (db_run). */
struct db_outcome
{
	enum
	{
		DBO_OK,					/* res: its row (db_result_shape_ok) */
		DBO_ERROR,				/* res: the SQL error */
		DBO_UNAVAILABLE,		/* no connection; why: the reason */
		DBO_LOST,				/* the connection broke, not run again */
		DBO_SHAPE,				/* a result of the wrong shape */
		DBO_NOT_RUN,			/* given back unrun by a stopping worker */
		DBO_UNKNOWN				/* given back running by a stopping worker */
	}			kind;
	PGresult   *res;
	char		why[256];
	uint64_t	wrote_lsn;		/* a write's commit position (0: unknown, or
								 * no read URL) */
};

/* A successful result has the shape statement s answers with. */
extern bool db_result_shape_ok(const PGresult *res, enum stmt s);

/* Runs statement s with its n parameters (the caller's included) on this
 * thread's blocking connection, retrying what may be retried (a write,
 * `is_write`, only when it certainly did not run).  It waits for the
 * database: never call it on a worker thread. */
extern void db_run(enum stmt s, int n, const char *const *values, bool is_write,
				   struct db_outcome *o);

/* ---- dbpool.c: the statement threads ------------------------------------- */

/* Starts n statement threads: 0, or -1 (logged). */
extern int	dbpool_start(int n);

/* Stops them once the queue is empty (after workers_stop()). */
extern void dbpool_stop(void);

/* Queues statement s for a statement thread and suspends c until its
 * outcome is in: 0, or -1 (out of memory; nothing queued). */
extern int	db_submit(struct request *r, struct MHD_Connection *c, enum stmt s, int n,
					  const char *const *values);

/* The outcome of r's statement, once in: true, *o filled (o->res is the
 * caller's to clear). */
extern bool db_job_take(struct request *r, struct db_outcome *o);

/* The request ends: its statement, if still queued or running, is
 * forgotten (its thread frees it). */
extern void db_job_release(struct request *r);

/* A stopping worker (of daemon d) gives its requests' statements back:
 * the queued ones unrun (DBO_NOT_RUN), their connections resumed; the
 * running ones cancelled, or with `last` given back as they are
 * (DBO_UNKNOWN), so that no connection of d stays suspended. */
extern void db_jobs_abandon(const struct MHD_Daemon *d, bool last);

/* ---- dbcall.c: one statement for one request ----------------------------- */

/* The result (a single row of PGRES_TUPLES_OK), or NULL with the error
 * answer queued in *ret, or NULL with *ret MHD_YES: suspended while a
 * statement thread runs it, the result comes on the next call.  `values` are the statement's own
 * parameters: the request's caller goes before them (db_stmt_has_caller). */
extern PGresult *db_call(struct MHD_Connection *c, struct request *r, enum stmt s,
						 int n, const char *const *values,
						 const char *const *fields, const char *fallback_field,
						 enum MHD_Result *ret);

/* A read: db_call() over the pipelined connection when it can be (a
 * statement flagged pipeline; with a read URL, one a standby may answer,
 * over the read one).  NULL with *ret MHD_YES: suspended, the result comes
 * on the next call. */
extern PGresult *db_call_fast(struct MHD_Connection *c, struct request *r,
							  enum stmt s, int n, const char *const *values,
							  const char *const *fields,
							  const char *fallback_field, enum MHD_Result *ret);

/* ---- params.c: query parameters and JSON bodies -------------------------- */

/* The query parameter `name`, or NULL. */
extern const char *arg(struct MHD_Connection *c, const char *name);

/* Each query parameter of `names` (NULL-ended) given at most once: 0, or -1
 * with the 400 queued in *ret (likewise check_dates() and path_id()). */
extern int	unique_args(struct MHD_Connection *c, struct request *r,
						const char *const *names, enum MHD_Result *ret);

/* start_date/end_date (both required when `required`). */
extern int	check_dates(struct MHD_Connection *c, struct request *r, bool required,
						const char **start, const char **end, enum MHD_Result *ret);

/* The path's id, an integer in [-max, max]. */
extern int	path_id(struct MHD_Connection *c, struct request *r, long long max,
					long long *id, enum MHD_Result *ret);

/* A field of a JSON body, read by read_fields(). */
enum field_type
{
	F_STRING,
	F_INTEGER,					/* an SQL integer (32 bits) */
	F_NUMBER,
	F_ARRAY						/* passed on as its JSON text */
};

struct body_field
{
	const char *name;
	enum field_type type;
	bool		required;		/* else absent or null = SQL NULL */
	const char *type_desc;		/* "<name> must be <type_desc>" */
};

#define FIELD_TEXT_MAX 40		/* a number as text */

/* The body's fields as text parameters, checked in the table's order; see
 * params.c.  The document (free it after the call), or NULL with the 400
 * queued in *ret. */
extern json_t *read_fields(struct MHD_Connection *c, struct request *r,
						   const struct body_field *f, int n, const char **vals,
						   char (*text)[FIELD_TEXT_MAX], enum MHD_Result *ret);

/* ---- api.c: the routes that call the database ---------------------------- */

extern enum MHD_Result api_persons(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_person(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_connection(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_connections(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_locations(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_location(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_create_person(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_create_location(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_forget_person(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_token(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_places(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_place(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_create_place(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_delete_place(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result api_healthz(struct MHD_Connection *c, struct request *r);

/* ---- encounters.c: GET /api/persons/{id}/encounters ---------------------- */

extern enum MHD_Result api_encounters(struct MHD_Connection *c, struct request *r);

/* ---- sse.c: GET /api/persons/{id}/encounters/stream ---------------------- */

extern enum MHD_Result api_encounter_stream(struct MHD_Connection *c, struct request *r);

/* ---- static.c: the web app and the OpenAPI document ---------------------- */

/* Resolves the web root and reads the OpenAPI document: 0, or -1 (logged). */
extern int	static_init(void);
extern void static_free(void);
extern const char *static_web_root(void);
extern enum MHD_Result static_file(struct MHD_Connection *c, struct request *r);
extern enum MHD_Result static_openapi(struct MHD_Connection *c, struct request *r);

/* ---- limits.c: what a connection or a request may be --------------------- */

/* libmicrohttpd's accept policy and connection notifications: the
 * connection limits of the whole process. */
extern enum MHD_Result limits_accept(void *cls, const struct sockaddr *addr,
									 socklen_t addrlen);
extern void limits_notify(void *cls, struct MHD_Connection *c, void **socket_context,
						  enum MHD_ConnectionNotificationCode toe);

/* The request target or headers too large: true with the 414/431 queued. */
extern bool limits_oversized(struct MHD_Connection *c, struct request *r,
							 enum MHD_Result *ret);

/* A POST's headers refused (401, 415, 413): true with the answer queued. */
extern bool limits_post_refused(struct MHD_Connection *c, struct request *r,
								enum MHD_Result *ret);

/* The 413 for a body past cfg.max_body. */
extern enum MHD_Result limits_too_large(struct MHD_Connection *c, struct request *r);

/* ---- discard.c: bodies of refused requests ------------------------------- */

enum body_plan
{
	BODY_NONE,					/* the request has no body */
	BODY_DISCARD,				/* an answer decided now waits until the body
								 * has been read and thrown away */
	BODY_ANSWER_NOW				/* an answer decided now goes at once and the
								 * connection closes (Expect: 100-continue, or
								 * a declared body past cfg.max_discard) */
};

extern enum body_plan body_plan(struct MHD_Connection *c);

/* A refused body whose request started at t0 has now brought `seen` bytes:
 * 0 = read on, -1 = past the byte or time bound (close the connection). */
extern int	discard_more(const struct timespec *t0, uint64_t seen);

/* ---- router.c: method and path to handler -------------------------------- */

/* Sets r->route and r->id_str from r->url; the route's methods (NULL for
 * no route). */
extern const char *route(struct request *r);

/* Answers a GET, HEAD or OPTIONS request, or the 404/405. */
extern enum MHD_Result dispatch(struct MHD_Connection *c, struct request *r,
								const char *method);

/* Answers a POST whose body is read. */
extern enum MHD_Result dispatch_post(struct MHD_Connection *c, struct request *r);

/* ---- request.c: the life of a request in libmicrohttpd ------------------- */

extern enum MHD_Result request_handler(void *cls, struct MHD_Connection *c,
									   const char *url, const char *method,
									   const char *version, const char *upload_data,
									   size_t *upload_data_size, void **con_cls);
extern void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
							  enum MHD_RequestTerminationCode toe);

#endif							/* UDC_HTTPD_H */
