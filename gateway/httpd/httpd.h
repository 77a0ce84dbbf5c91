/*
 * udaconnect-httpd: shared declarations.
 */
#ifndef UDC_HTTPD_H
#define UDC_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <libpq-fe.h>

#include "log.h"

/* ---- configuration (flags and environment, see usage()) ---------------- */
struct config
{
    const char *bind;            /* listen address */
    int         port;
    const char *database_url;    /* libpq conninfo */
    const char *db_user;         /* overrides the conninfo's user */
    int         threads;
    int         statement_timeout_ms;
    size_t      max_body;
    size_t      max_discard;     /* body bytes read of a refused request (discard.c) */
    unsigned    max_connections;
    unsigned    max_per_ip;
    unsigned    connection_timeout_s;
    size_t      connection_memory;
    const char *cors_origin;     /* NULL = CORS off */
    const char *api_token;       /* NULL = writes need no token */
    const char *web_root;
    const char *openapi_path;
};
extern struct config cfg;

/* ---- routes (also the metrics label) ------------------------------------ */
enum route
{
    R_PERSONS, R_PERSON, R_CONNECTION, R_CONNECTIONS,
    R_LOCATIONS, R_LOCATION, R_OPENAPI, R_HEALTHZ, R_METRICS,
    R_STATIC, R_NOT_FOUND, R_COUNT
};
extern const char *const route_names[R_COUNT];

/* ---- database (one connection per worker thread) ------------------------ */
enum stmt
{
    S_PERSONS, S_PERSON, S_CREATE_PERSON, S_CONNECTION, S_CONNECTIONS,
    S_LOCATIONS, S_LOCATION, S_CREATE_LOCATION, S_HEALTH, S_COUNT
};
void db_init(void);
/* Returns the thread's connection, (re)connecting when needed; NULL when the
 * database is unreachable. */
PGconn *db_conn(void);
/* Drops the thread's connection (after it broke). */
void db_drop(void);
const char *db_stmt_name(enum stmt s);
/* The statement returns no row instead of a NULL one (treated the same). */
int db_stmt_may_be_empty(enum stmt s);
/* Why the thread's last connection attempt failed ("" if it did not). */
const char *db_last_error(void);

/* A new connection to the database as configured (statements prepared,
 * counted in the metrics), or NULL: the thread's reconnection back-off
 * (shared by both of its connections) allows no attempt yet, or the attempt
 * failed (the reason in db_last_error(); the back-off starts). */
PGconn *db_connect_new(void);
/* Closes a connection of db_connect_new(). */
void db_close(PGconn *c);
/* A new connection was made but could not be set up: back off as after a
 * failed attempt. */
void db_connect_failed(void);

/* ---- worker threads (worker.c) -------------------------------------------- */
struct MHD_Daemon;
/* Starts n threads, each running the daemon make(cls) returns. */
int workers_start(int n, struct MHD_Daemon *(*make)(void *cls), void *cls);
/* Stops them (answering what is in flight) and their daemons. */
void workers_stop(void);
/* A statement on the worker's pipelined connection.  The request holds the
 * record; worker.c fills it and resumes the HTTP connection when the result
 * is in, and calls nothing of the caller's: the caller looks at `done` when
 * libmicrohttpd calls it again. */
struct MHD_Connection;
struct pipe_wait
{
    struct MHD_Connection *conn;   /* suspended while the statement runs */
    int         waiting;           /* sent, no result yet */
    int         done;              /* the result came: res */
    PGresult   *res;               /* NULL = run it with the blocking connection
                                    * (pipeline aborted, connection lost) */
};
/* Sends statement s on this worker's pipelined connection and suspends
 * pw->conn: 0 = sent, -1 = not possible now (run it with the blocking
 * connection). */
int pipe_send(struct pipe_wait *pw, enum stmt s, int n, const char *const *values);
/* The request ends: forget its statement in flight, free a result unused. */
void pipe_release(struct pipe_wait *pw);

/* ---- bodies of refused requests (discard.c) ------------------------------ */
enum body_plan
{
    BODY_NONE,          /* the request has no body */
    BODY_DISCARD,       /* an answer decided now waits until the body has
                         * been read and thrown away */
    BODY_ANSWER_NOW     /* an answer decided now goes at once and the
                         * connection closes (Expect: 100-continue, or a
                         * declared body past cfg.max_discard) */
};
enum body_plan body_plan(struct MHD_Connection *c);
/* A refused body whose request started at t0 has now brought `seen` bytes:
 * 0 = read on, -1 = past the byte or time bound (close the connection). */
int discard_more(const struct timespec *t0, uint64_t seen);

/* ---- metrics -------------------------------------------------------------- */
void metrics_request(enum route r, unsigned status, double seconds);
void metrics_db_error(const char *kind);
void metrics_db_conn(int delta);
void metrics_db_busy(int delta);
/* Prometheus text; malloc'ed, *len set. */
char *metrics_render(size_t *len);

#endif
