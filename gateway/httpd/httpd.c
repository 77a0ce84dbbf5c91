/*
 * udaconnect-httpd: the REST/JSON API and the web app of UdaConnect.
 *
 * A thin gateway: it parses and validates the request, calls one
 * udaconnect.api_* SQL function with parameters (sql/src/60-http.sql) and
 * passes the JSON text it returns straight through (zero-copy: the response
 * owns the PGresult).  Everything else under / is a static file of the web
 * app (gateway/web).  See docs/http.md.
 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VERSION "1.0"

struct config cfg;

const char *const route_names[R_COUNT] = {
    [R_PERSONS] = "/api/persons",
    [R_PERSON] = "/api/persons/{id}",
    [R_CONNECTION] = "/api/persons/{id}/connection",
    [R_CONNECTIONS] = "/api/persons/{id}/connections",
    [R_LOCATIONS] = "/api/locations",
    [R_LOCATION] = "/api/locations/{id}",
    [R_OPENAPI] = "/api/openapi.json",
    [R_HEALTHZ] = "/healthz",
    [R_METRICS] = "/metrics",
    [R_STATIC] = "static",
    [R_NOT_FOUND] = "not_found",
};

static char *openapi_doc;
static size_t openapi_len;
static char web_root_real[PATH_MAX];

/* Per-request state (MHD's con_cls), freed in request_completed(). */
struct request
{
    struct timespec t0;
    enum route route;
    unsigned    status;
    int         is_post;
    const char *allow;        /* methods of the route (405) */
    const char *id_str;       /* points into the url copy */
    char       *url;          /* copy of the path */
    char       *body;
    size_t      body_len;
    int         body_too_big;
    /* a body thrown away (discard.c): */
    int         hold;         /* first call: queue() keeps the answer in held */
    int         discarding;   /* body data is counted and dropped */
    uint64_t    body_seen;    /* body bytes received */
    struct MHD_Response *held;    /* queued on the final call */
    /* pipelined statement (worker.c fills it) */
    int         may_async;    /* the final call of a request without a body */
    struct pipe_wait pipe;
};

/* ======================================================================= */
/* responses                                                               */
/* ======================================================================= */

static void
common_headers(struct MHD_Response *resp, const char *content_type)
{
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (cfg.cors_origin)
    {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", cfg.cors_origin);
        if (strcmp(cfg.cors_origin, "*") != 0)
            MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Next-Cursor, Link, Location");
    }
}

static enum MHD_Result
queue(struct MHD_Connection *c, struct request *r, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;      /* out of memory: MHD closes the connection */
    r->status = status;
    /* A refusal decided before the body was read (or once it passed the
     * cap): the rest of the connection is not worth keeping. */
    if (r->hold || r->body_too_big)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->hold)
    {
        /* answered on the final call, after the body (see discard.c) */
        r->held = resp;
        r->discarding = 1;
        return MHD_YES;
    }
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A malloc'ed body. */
static enum MHD_Result
send_owned(struct MHD_Connection *c, struct request *r, unsigned status,
           char *body, size_t len, const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
    {
        free(body);
        return MHD_NO;
    }
    common_headers(resp, content_type);
    if (strncmp(r->url, "/api/", 5) == 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(c, r, status, resp);
}

/* Printable ASCII only, at most 40 characters: safe to echo in a message. */
static const char *
shown(const char *s, char *buf, size_t size)
{
    size_t i = 0;

    for (; *s && i + 4 < size && i < 40; s++)
        buf[i++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\') ? *s : '?';
    if (*s)
    {
        buf[i++] = '.'; buf[i++] = '.'; buf[i++] = '.';
    }
    buf[i] = 0;
    return buf;
}

/* The one error shape:
 *   {"error": {"status": 400, "code": "...", "message": "...", "field": ...}}
 * plus "sqlstate" (and "detail"/"hint" when present) for database errors. */
static enum MHD_Result
send_error_ex(struct MHD_Connection *c, struct request *r, unsigned status, const char *code,
              const char *message, const char *field, const char *sqlstate,
              const char *detail, const char *hint, const char *allow)
{
    json_t *err = json_object();
    json_t *msg = json_string(message);

    if (!msg)   /* not UTF-8 */
        msg = json_string("the request was refused");
    json_object_set_new(err, "status", json_integer(status));
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", msg);
    json_object_set_new(err, "field", field ? json_string(field) : json_null());
    if (sqlstate)
        json_object_set_new(err, "sqlstate", json_string(sqlstate));
    json_t *d = detail ? json_string(detail) : NULL;    /* NULL if not UTF-8 */
    if (d)
        json_object_set_new(err, "detail", d);
    json_t *h = hint ? json_string(hint) : NULL;
    if (h)
        json_object_set_new(err, "hint", h);
    json_t *doc = json_pack("{s:o}", "error", err);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
    {
        free(text);
        return MHD_NO;
    }
    common_headers(resp, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return queue(c, r, status, resp);
}

static enum MHD_Result
send_error(struct MHD_Connection *c, struct request *r, unsigned status, const char *code,
           const char *message, const char *field)
{
    return send_error_ex(c, r, status, code, message, field, NULL, NULL, NULL, NULL);
}

static enum MHD_Result
bad_param(struct MHD_Connection *c, struct request *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result
bad_param(struct MHD_Connection *c, struct request *r, const char *field, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_error(c, r, 400, "invalid_parameter", msg, field);
}

static void
free_pgresult(void *cls)
{
    PQclear((PGresult *) cls);
}

/* A response whose body is column 0 of the single-row result, which it owns
 * from now on; NULL when out of memory (the result is freed). */
static struct MHD_Response *
result_response(PGresult *res)
{
    char *text = PQgetvalue(res, 0, 0);
    size_t len = (size_t) PQgetlength(res, 0, 0);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, text, free_pgresult, res);
    if (!resp)
    {
        PQclear(res);
        return NULL;
    }
    common_headers(resp, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return resp;
}

/* Pass the single-row result through as the body. */
static enum MHD_Result
send_result(struct MHD_Connection *c, struct request *r, unsigned status, PGresult *res,
            const char *location_header)
{
    struct MHD_Response *resp = result_response(res);

    if (!resp)
        return MHD_NO;
    if (location_header)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location_header);
    return queue(c, r, status, resp);
}

/* ======================================================================= */
/* database calls and SQLSTATE -> HTTP                                     */
/* ======================================================================= */

struct sqlmap
{
    const char *prefix;
    unsigned    status;
    const char *code;
};

/* PostgREST's mapping, first match wins (see docs/http.md). */
static const struct sqlmap sqlmap[] = {
    {"23503", 409, "foreign_key_violation"},
    {"23505", 409, "conflict"},
    {"23502", 400, "invalid_parameter"},
    {"23514", 400, "invalid_parameter"},
    {"25006", 405, "read_only"},
    {"42501", 403, "forbidden"},
    {"57014", 504, "statement_timeout"},
    {"57P", 503, "database_unavailable"},
    {"P0002", 404, "not_found"},
    {"P0001", 400, "invalid_parameter"},
    {"08", 503, "database_unavailable"},
    {"53", 503, "database_unavailable"},
    {"40", 503, "retry"},
    {"28", 403, "forbidden"},
    {"0L", 403, "forbidden"},
    {"0P", 403, "forbidden"},
    {"22", 400, "invalid_parameter"},
    {"23", 400, "invalid_parameter"},
    {"42", 500, "server_misconfigured"},
    {"", 500, "internal_error"},
};

/* The request field an error is about: the COLUMN the SQL function named,
 * else the one field name the message mentions as a word.  An entry of
 * `fields` is "name" or "sqlname:fieldname" (the SQL API's argument name and
 * the request's name for it). */
static const char *
match_field(const char *entry, const char *word, size_t wlen)
{
    const char *colon = strchr(entry, ':');
    size_t n = colon ? (size_t) (colon - entry) : strlen(entry);

    if (n == wlen && strncmp(entry, word, n) == 0)
        return colon ? colon + 1 : entry;
    return NULL;
}

static const char *
error_field(const PGresult *res, const char *const *fields)
{
    const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *f;

    if (!fields)
        return NULL;
    if (col)
        for (int i = 0; fields[i]; i++)
            if ((f = match_field(fields[i], col, strlen(col))))
                return f;
    if (!msg)
        return NULL;
    /* every identifier-like word of the message */
    for (const char *p = msg; *p;)
    {
        if (!(isalnum((unsigned char) *p) || *p == '_'))
        {
            p++;
            continue;
        }
        const char *w = p;
        while (isalnum((unsigned char) *p) || *p == '_')
            p++;
        for (int i = 0; fields[i]; i++)
            if ((f = match_field(fields[i], w, (size_t) (p - w))))
                return f;       /* the first one mentioned: the subject */
    }
    return NULL;
}

/* Whether a successful result has the shape statement s answers with. */
static int
result_shape_ok(const PGresult *res, enum stmt s)
{
    return PQnfields(res) > 0 &&
           (PQntuples(res) == 1 || (PQntuples(res) == 0 && db_stmt_may_be_empty(s)));
}

/* The error response for a failed statement (SQLSTATE -> HTTP). */
static enum MHD_Result
db_error(struct MHD_Connection *c, struct request *r, enum stmt s, const PGresult *res,
         const char *const *fields, const char *fallback_field)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!state)
        state = "XX000";
    if (!msg)
        msg = "database error";
    const struct sqlmap *m = sqlmap;
    while (strncmp(state, m->prefix, strlen(m->prefix)) != 0)
        m++;
    if (m->status == 504)
        metrics_db_error("timeout");
    else if (m->status >= 500)
        metrics_db_error("server_error");
    else
        metrics_db_error("client_error");
    if (m->status >= 500 && m->status != 503 && m->status != 504)
        logmsg(LOG_ERROR, "%s: SQLSTATE %s: %s", db_stmt_name(s), state, msg);
    const char *field = error_field(res, fields);
    /* an unknown referenced id is about the fallback field */
    if (!field && (strcmp(state, "P0002") == 0 || strcmp(state, "23503") == 0))
        field = fallback_field;
    const char *message = msg;
    if (m->status == 504)
        message = "the query took longer than the statement timeout";
    return send_error_ex(c, r, m->status, m->code, message, field, state,
                         PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
                         PQresultErrorField(res, PG_DIAG_MESSAGE_HINT), NULL);
}

/*
 * Run a prepared statement on the thread's connection.  Returns the result
 * (PGRES_TUPLES_OK) or NULL after queueing the error response in *ret.
 * A GET is retried once on a fresh connection when the old one broke (e.g.
 * the server restarted).
 */
static PGresult *
db_call(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
        const char *const *values, const char *const *fields, const char *fallback_field,
        enum MHD_Result *ret)
{
    for (int attempt = 0;; attempt++)
    {
        PGconn *conn = db_conn();
        if (!conn)
        {
            char msg[320];
            const char *why = db_last_error();
            snprintf(msg, sizeof msg, "the database is unavailable; retry later%s%s%s",
                     *why ? " (" : "", why, *why ? ")" : "");
            *ret = send_error(c, r, 503, "database_unavailable", msg, NULL);
            return NULL;
        }
        metrics_db_busy(+1);
        PGresult *res = PQexecPrepared(conn, db_stmt_name(s), n, values, NULL, NULL, 0);
        metrics_db_busy(-1);
        ExecStatusType st = PQresultStatus(res);
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
            if (attempt == 0 && !r->is_post)
                continue;
            *ret = send_error(c, r, 503, "database_unavailable",
                              "the database connection was lost; retry later", NULL);
            return NULL;
        }
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* the prepared statement vanished (e.g. DISCARD ALL by a pooler) */
        if (state && strcmp(state, "26000") == 0 && attempt == 0)
        {
            PQclear(res);
            db_drop();
            continue;
        }
        *ret = db_error(c, r, s, res, fields, fallback_field);
        PQclear(res);
        return NULL;
    }
}

/*
 * db_call() for the hot read routes: the statement goes to the worker's
 * pipelined connection and the HTTP connection is suspended until its result
 * arrives (worker.c); then MHD calls the handler again, which comes back here
 * and takes the result.  Returns the result, or NULL with *ret set (an error
 * response was queued, or the connection was suspended).  Whenever the
 * pipelined path cannot give the statement's own answer, it runs through
 * db_call() as before.
 */
static PGresult *
db_call_fast(struct MHD_Connection *c, struct request *r, enum stmt s, int n,
             const char *const *values, const char *const *fields, const char *fallback_field,
             enum MHD_Result *ret)
{
    if (r->pipe.done)
    {
        PGresult *res = r->pipe.res;
        r->pipe.res = NULL;
        r->pipe.done = 0;
        r->may_async = 0;
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK && result_shape_ok(res, s))
            return res;
        if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
        {
            *ret = db_error(c, r, s, res, fields, fallback_field);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
    }
    else if (r->may_async && pipe_send(&r->pipe, s, n, values) == 0)
    {
        *ret = MHD_YES;     /* suspended until the result is in */
        return NULL;
    }
    return db_call(c, r, s, n, values, fields, fallback_field, ret);
}

/* ======================================================================= */
/* parameter parsing                                                       */
/* ======================================================================= */

static int
parse_int64(const char *s, long long min, long long max, long long *out)
{
    char *end;

    if (!s || !*s || isspace((unsigned char) *s))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE || v < min || v > max)
        return -2;
    *out = v;
    return 0;
}

static int
parse_number(const char *s, double *out)
{
    char *end;

    if (!s || !*s)
        return -1;
    /* decimal only: strtod() alone also takes "0x1p4", "inf", "nan", " 5" */
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char) *p) && !strchr("+-.eE", *p))
            return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Strict YYYY-MM-DD of a real calendar day. */
static int
valid_date(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char) s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 0;
    return 1;
}

static const char *
arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* A query parameter given twice (?limit=5&limit=7) is ambiguous: 400 naming
 * it, rather than silently using one of the values. */
struct argcount
{
    const char *const *names;
    int         counts[16];
    const char *dup;
};

static enum MHD_Result
count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct argcount *a = cls;
    (void) kind; (void) value;

    for (int i = 0; i < 16 && a->names[i]; i++)
        if (key && strcmp(key, a->names[i]) == 0 && ++a->counts[i] == 2 && !a->dup)
            a->dup = a->names[i];
    return MHD_YES;
}

static int
unique_args(struct MHD_Connection *c, struct request *r, const char *const *names,
            enum MHD_Result *ret)
{
    struct argcount a = {.names = names};

    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_arg, &a);
    if (a.dup)
        return *ret = bad_param(c, r, a.dup, "%s is given more than once", a.dup), -1;
    return 0;
}

/* Checks start_date/end_date (both required when `required`). */
static int
check_dates(struct MHD_Connection *c, struct request *r, int required,
            const char **start, const char **end, enum MHD_Result *ret)
{
    char b[64];

    *start = arg(c, "start_date");
    *end = arg(c, "end_date");
    if (required && !*start)
        return *ret = bad_param(c, r, "start_date", "start_date is required (YYYY-MM-DD)"), -1;
    if (required && !*end)
        return *ret = bad_param(c, r, "end_date", "end_date is required (YYYY-MM-DD)"), -1;
    if (*start && !valid_date(*start))
        return *ret = bad_param(c, r, "start_date",
                                "start_date must be a date as YYYY-MM-DD, not \"%s\"",
                                shown(*start, b, sizeof b)), -1;
    if (*end && !valid_date(*end))
        return *ret = bad_param(c, r, "end_date",
                                "end_date must be a date as YYYY-MM-DD, not \"%s\"",
                                shown(*end, b, sizeof b)), -1;
    if (*start && *end && strcmp(*start, *end) > 0)
        return *ret = bad_param(c, r, "start_date", "start_date must not be after end_date"), -1;
    return 0;
}

/* The path id: an integer; anything else is a 400 naming "id". */
static int
path_id(struct MHD_Connection *c, struct request *r, long long max, long long *id,
        enum MHD_Result *ret)
{
    char b[64];
    int e = parse_int64(r->id_str, LLONG_MIN, LLONG_MAX, id);

    if (e == -1)
        return *ret = bad_param(c, r, "id", "id must be an integer, not \"%s\"",
                                shown(r->id_str, b, sizeof b)), -1;
    if (e == -2 || *id > max || *id < -max)
        return *ret = bad_param(c, r, "id", "id %s is out of range", shown(r->id_str, b, sizeof b)), -1;
    return 0;
}

/* ======================================================================= */
/* handlers                                                                */
/* ======================================================================= */

static enum MHD_Result
get_one(struct MHD_Connection *c, struct request *r, enum stmt s, long long max, const char *what)
{
    enum MHD_Result ret;
    long long id;
    char idbuf[24];
    static const char *const fields[] = {"id", NULL};

    if (path_id(c, r, max, &id, &ret) < 0)
        return ret;
    snprintf(idbuf, sizeof idbuf, "%lld", id);
    const char *vals[] = {idbuf};
    PGresult *res = db_call_fast(c, r, s, 1, vals, fields, "id", &ret);
    if (!res)
        return ret;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
    {
        char msg[80];
        PQclear(res);
        snprintf(msg, sizeof msg, "%s %lld does not exist", what, id);
        return send_error(c, r, 404, "not_found", msg, "id");
    }
    return send_result(c, r, 200, res, NULL);
}

static enum MHD_Result
get_connection(struct MHD_Connection *c, struct request *r, enum stmt s)
{
    enum MHD_Result ret;
    long long id;
    const char *start, *end, *d, *w;
    char b[64], idbuf[24], dbuf[40], wbuf[40];
    double distance = 5, window = 0;
    static const char *const params[] = {"start_date", "end_date", "distance", "window", NULL};

    if (path_id(c, r, INT_MAX, &id, &ret) < 0)
        return ret;
    if (unique_args(c, r, params, &ret) < 0)
        return ret;
    if (check_dates(c, r, 1, &start, &end, &ret) < 0)
        return ret;
    d = arg(c, "distance");
    if (d && parse_number(d, &distance) < 0)
        return bad_param(c, r, "distance", "distance must be a number of metres, not \"%s\"",
                         shown(d, b, sizeof b));
    if (distance <= 0)
        return bad_param(c, r, "distance", "distance must be greater than 0, not %s",
                         shown(d, b, sizeof b));
    w = arg(c, "window");
    if (w && *w && (parse_number(w, &window) < 0 || window < 0))
        return bad_param(c, r, "window",
                         "window must be a non-negative number of seconds, not \"%s\"",
                         shown(w, b, sizeof b));
    if (w && *w && window > 1e9)
        return bad_param(c, r, "window", "window is out of range (at most 1e9 seconds)");
    snprintf(idbuf, sizeof idbuf, "%lld", id);
    snprintf(dbuf, sizeof dbuf, "%.17g", distance);
    snprintf(wbuf, sizeof wbuf, "%.17g", window);
    const char *vals[] = {idbuf, start, end, dbuf, (w && *w) ? wbuf : NULL};
    /* "meters" / "time_window" in the finder's messages are our distance/window */
    static const char *const fields[] = {"start_date", "end_date", "meters:distance",
                                         "time_window:window", "distance", "window", NULL};
    PGresult *res = db_call_fast(c, r, s, 5, vals, fields, "id", &ret);
    if (!res)
        return ret;
    return send_result(c, r, 200, res, NULL);
}

static enum MHD_Result
get_locations(struct MHD_Connection *c, struct request *r)
{
    enum MHD_Result ret;
    const char *start, *end, *s;
    char b[64], lim[16], after[24], off[24], pid[16];
    long long v;
    const char *vals[6] = {NULL};
    int e;
    static const char *const fields[] = {"limit", "after", "offset", "person_id",
                                         "start_date", "end_date", NULL};
    static const char *const params[] = {"limit", "after", "cursor", "offset", "person_id",
                                         "start_date", "end_date", NULL};

    if (unique_args(c, r, params, &ret) < 0)
        return ret;

    long long limit = 100;
    if ((s = arg(c, "limit")))
    {
        if ((e = parse_int64(s, 1, 1000, &limit)) < 0)
            return bad_param(c, r, "limit", "limit must be an integer between 1 and 1000, not \"%s\"",
                             shown(s, b, sizeof b));
    }
    snprintf(lim, sizeof lim, "%lld", limit);
    vals[0] = lim;
    const char *a = arg(c, "after");
    if (a && arg(c, "cursor"))
        return bad_param(c, r, "cursor", "use either after or cursor (the same thing), not both");
    if (!a)
        a = arg(c, "cursor");
    if (a)
    {
        if (parse_int64(a, 0, LLONG_MAX, &v) < 0)
            return bad_param(c, r, "after", "after (the cursor) must be a non-negative integer, not \"%s\"",
                             shown(a, b, sizeof b));
        snprintf(after, sizeof after, "%lld", v);
        vals[1] = after;
    }
    if ((s = arg(c, "offset")))
    {
        if (parse_int64(s, 0, 1000000000, &v) < 0)
            return bad_param(c, r, "offset", "offset must be an integer between 0 and 1000000000, not \"%s\"",
                             shown(s, b, sizeof b));
        if (a)
            return bad_param(c, r, "offset", "use either offset or the cursor (after), not both");
        snprintf(off, sizeof off, "%lld", v);
        vals[2] = off;
    }
    if ((s = arg(c, "person_id")))
    {
        if (parse_int64(s, INT_MIN, INT_MAX, &v) < 0)
            return bad_param(c, r, "person_id", "person_id must be an integer, not \"%s\"",
                             shown(s, b, sizeof b));
        snprintf(pid, sizeof pid, "%lld", v);
        vals[3] = pid;
    }
    if (check_dates(c, r, 0, &start, &end, &ret) < 0)
        return ret;
    vals[4] = start;
    vals[5] = end;

    PGresult *res = db_call(c, r, S_LOCATIONS, 6, vals, fields, NULL, &ret);
    if (!res)
        return ret;
    /* column 1: the cursor of the next page (NULL on the last page) */
    struct MHD_Response *resp = result_response(res);
    if (!resp)
        return MHD_NO;
    if (!PQgetisnull(res, 0, 1))
    {
        char link[256];
        const char *next = PQgetvalue(res, 0, 1);
        MHD_add_response_header(resp, "X-Next-Cursor", next);
        int n = snprintf(link, sizeof link, "</api/locations?limit=%s&after=%s%s%s%s%s%s%s>; rel=\"next\"",
                         lim, next,
                         vals[3] ? "&person_id=" : "", vals[3] ? vals[3] : "",
                         start ? "&start_date=" : "", start ? start : "",
                         end ? "&end_date=" : "", end ? end : "");
        if (n > 0 && (size_t) n < sizeof link)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LINK, link);
    }
    return queue(c, r, 200, resp);
}

/* ---- POST bodies --------------------------------------------------------- */

static json_t *
parse_body(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
    json_error_t err;
    char msg[300];

    if (r->body_len == 0)
    {
        *ret = send_error(c, r, 400, "invalid_json", "the request body is empty; send a JSON object", NULL);
        return NULL;
    }
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!doc)
    {
        snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s",
                 err.line, err.column, err.text);
        *ret = send_error(c, r, 400, "invalid_json", msg, NULL);
        return NULL;
    }
    if (!json_is_object(doc))
    {
        json_decref(doc);
        *ret = send_error(c, r, 400, "invalid_json", "the request body must be a JSON object", NULL);
        return NULL;
    }
    return doc;
}

/* 201 with the created object (the function's JSON) and its Location. */
static enum MHD_Result
send_created(struct MHD_Connection *c, struct request *r, PGresult *res, const char *collection)
{
    json_t *created = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    char loc[96] = "";

    if (created)
    {
        snprintf(loc, sizeof loc, "%s/%lld", collection,
                 (long long) json_integer_value(json_object_get(created, "id")));
        json_decref(created);
    }
    return send_result(c, r, 201, res, created ? loc : NULL);
}

/* A field of a POST body, read by read_fields(). */
enum field_type
{
    F_STRING, F_INTEGER, F_NUMBER
};
struct body_field
{
    const char *name;
    enum field_type type;
    int         required;       /* else absent or null = SQL NULL */
    const char *type_desc;      /* "<name> must be <type_desc>" */
};
#define MAX_FIELDS 4

/* A creation route: the body's fields, in the order of the SQL function's
 * arguments, and where the created object lives. */
struct creation
{
    enum stmt   stmt;
    const char *collection;     /* the Location header's prefix */
    const char *fallback_field; /* what an unknown referenced id is about */
    int         nfields;
    struct body_field fields[MAX_FIELDS];
};

static const struct creation create_person = {
    S_CREATE_PERSON, "/api/persons", NULL, 3, {
        {"first_name", F_STRING, 1, "a string"},
        {"last_name", F_STRING, 1, "a string"},
        {"company_name", F_STRING, 1, "a string"},
    }
};

static const struct creation create_location = {
    S_CREATE_LOCATION, "/api/locations", "person_id", 4, {
        {"person_id", F_INTEGER, 1, "an integer"},
        {"latitude", F_NUMBER, 1, "a number"},
        {"longitude", F_NUMBER, 1, "a number"},
        {"creation_time", F_STRING, 0, "a string (ISO 8601)"},
    }
};

/* The body's fields as the SQL call's text parameters, checked in the
 * table's order (the first bad one is the answer).  vals[i] points into the
 * document (returned: free it after the call) or into text[i]; NULL for an
 * absent optional field.  NULL after queueing the 400 in *ret. */
static json_t *
read_fields(struct MHD_Connection *c, struct request *r, const struct body_field *f, int n,
            const char **vals, char (*text)[40], enum MHD_Result *ret)
{
    json_t *doc = parse_body(c, r, ret);
    char msg[120];

    if (!doc)
        return NULL;
    for (int i = 0; i < n; i++)
    {
        json_t *v = json_object_get(doc, f[i].name);
        const char *code = "invalid_type";
        int ok = 0;

        vals[i] = NULL;
        if (!v || json_is_null(v))
        {
            if (!f[i].required)
                continue;
            code = "missing_field";
            snprintf(msg, sizeof msg, "%s is required", f[i].name);
        }
        else if (f[i].type == F_STRING ? !json_is_string(v) :
                 f[i].type == F_INTEGER ? !json_is_integer(v) : !json_is_number(v))
            snprintf(msg, sizeof msg, "%s must be %s", f[i].name, f[i].type_desc);
        else if (f[i].type == F_INTEGER &&
                 (json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX))
        {
            code = "invalid_parameter";
            snprintf(msg, sizeof msg, "%s is out of range", f[i].name);
        }
        else
            ok = 1;
        if (!ok)
        {
            json_decref(doc);
            *ret = send_error(c, r, 400, code, msg, f[i].name);
            return NULL;
        }
        if (f[i].type == F_STRING)
            vals[i] = json_string_value(v);
        else
        {
            if (f[i].type == F_INTEGER)
                snprintf(text[i], sizeof text[i], "%lld", (long long) json_integer_value(v));
            else
                snprintf(text[i], sizeof text[i], "%.17g", json_number_value(v));
            vals[i] = text[i];
        }
    }
    return doc;
}

/* POST of a creation route: 201 with the created object and its Location. */
static enum MHD_Result
create(struct MHD_Connection *c, struct request *r, const struct creation *k)
{
    enum MHD_Result ret;
    const char *vals[MAX_FIELDS];
    const char *names[MAX_FIELDS + 1];
    char text[MAX_FIELDS][40];
    json_t *doc = read_fields(c, r, k->fields, k->nfields, vals, text, &ret);

    if (!doc)
        return ret;
    for (int i = 0; i < k->nfields; i++)
        names[i] = k->fields[i].name;
    names[k->nfields] = NULL;
    PGresult *res = db_call(c, r, k->stmt, k->nfields, vals, names, k->fallback_field, &ret);
    json_decref(doc);
    if (!res)
        return ret;
    return send_created(c, r, res, k->collection);
}

/* ---- health, metrics, openapi, static ---------------------------------- */

static enum MHD_Result
healthz(struct MHD_Connection *c, struct request *r)
{
    enum MHD_Result ret;
    PGresult *res = db_call(c, r, S_HEALTH, 0, NULL, NULL, NULL, &ret);

    if (!res)
        return ret;
    PQclear(res);
    char *body = strdup("{\"status\":\"ok\",\"database\":\"up\"}");
    return send_owned(c, r, 200, body, strlen(body), "application/json");
}

static enum MHD_Result
metrics(struct MHD_Connection *c, struct request *r)
{
    size_t len;
    char *text = metrics_render(&len);

    if (!text)
        return MHD_NO;
    return send_owned(c, r, 200, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result
openapi(struct MHD_Connection *c, struct request *r)
{
    if (!openapi_doc)
        return send_error(c, r, 404, "not_found", "no OpenAPI document was loaded", NULL);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(openapi_len, openapi_doc, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    common_headers(resp, "application/json");
    return queue(c, r, 200, resp);
}

static const char *
mime_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"}, {".json", "application/json"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');

    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static enum MHD_Result
static_file(struct MHD_Connection *c, struct request *r)
{
    char path[PATH_MAX], real[PATH_MAX];
    const char *url = r->url;
    struct stat st;

    memset(&st, 0, sizeof st);
    /* no hidden files, no "..", no backslashes, no NULs (MHD unescaped %00) */
    if (strstr(url, "/.") || strchr(url, '\\') || url[0] != '/')
        return send_error(c, r, 404, "not_found", "no such file", NULL);
    int n = snprintf(path, sizeof path, "%s%s%s", web_root_real, url,
                     url[strlen(url) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t) n >= sizeof path)
        return send_error(c, r, 404, "not_found", "no such file", NULL);
    if (!realpath(path, real) || strncmp(real, web_root_real, strlen(web_root_real)) != 0 ||
        (real[strlen(web_root_real)] != '/' && real[strlen(web_root_real)] != 0))
        return send_error(c, r, 404, "not_found", "no such file", NULL);
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return send_error(c, r, 404, "not_found", "no such file", NULL);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
    {
        close(fd);
        if (S_ISDIR(st.st_mode))
        {
            /* /dir -> /dir/; "//host" would be a protocol-relative
             * Location (an open redirect to another site): one slash */
            char loc[PATH_MAX + 2];
            while (url[0] == '/' && url[1] == '/')
                url++;
            snprintf(loc, sizeof loc, "%s/", url);
            struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            if (!resp)
                return MHD_NO;
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
            return queue(c, r, 301, resp);
        }
        return send_error(c, r, 404, "not_found", "no such file", NULL);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t) st.st_size, fd);
    if (!resp)
    {
        close(fd);
        return MHD_NO;
    }
    common_headers(resp, mime_type(real));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    return queue(c, r, 200, resp);
}

/* ======================================================================= */
/* routing                                                                 */
/* ======================================================================= */

/* Sets r->route / r->id_str; returns the allowed methods for 405. */
static const char *
route(struct request *r)
{
    char *u = r->url;
    size_t n = strlen(u);

    if (strncmp(u, "/api/", 5) != 0 && strcmp(u, "/api") != 0)
    {
        if (strcmp(u, "/healthz") == 0)
            return r->route = R_HEALTHZ, "GET, HEAD";
        if (strcmp(u, "/metrics") == 0)
            return r->route = R_METRICS, "GET, HEAD";
        return r->route = R_STATIC, "GET, HEAD";
    }
    if (n > 5 && u[n - 1] == '/')
        u[--n] = 0;    /* /api/persons/ == /api/persons */
    if (strcmp(u, "/api/openapi.json") == 0)
        return r->route = R_OPENAPI, "GET, HEAD";
    if (strcmp(u, "/api/persons") == 0)
        return r->route = R_PERSONS, "GET, HEAD, POST";
    if (strcmp(u, "/api/locations") == 0)
        return r->route = R_LOCATIONS, "GET, HEAD, POST";
    if (strncmp(u, "/api/persons/", 13) == 0)
    {
        char *id = u + 13, *slash = strchr(id, '/');
        r->id_str = id;
        if (!slash)
            return r->route = R_PERSON, "GET, HEAD";
        *slash = 0;
        if (strcmp(slash + 1, "connection") == 0)
            return r->route = R_CONNECTION, "GET, HEAD";
        if (strcmp(slash + 1, "connections") == 0)
            return r->route = R_CONNECTIONS, "GET, HEAD";
        *slash = '/';
    }
    else if (strncmp(u, "/api/locations/", 15) == 0 || strncmp(u, "/api/location/", 14) == 0)
    {
        char *id = u + (u[13] == 's' ? 15 : 14);
        if (!strchr(id, '/'))
        {
            r->id_str = id;
            return r->route = R_LOCATION, "GET, HEAD";
        }
    }
    r->route = R_NOT_FOUND;
    return NULL;
}

static int
token_ok(struct MHD_Connection *c)
{
    if (!cfg.api_token)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(cfg.api_token);
    unsigned char diff = a != b;
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned char) (h[i] ^ cfg.api_token[i]);
    return diff == 0;
}

static int
is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    ct += 16;
    return *ct == 0 || *ct == ';' || *ct == ' ';
}

static enum MHD_Result
dispatch(struct MHD_Connection *c, struct request *r, const char *method)
{
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    if (r->route == R_NOT_FOUND)
        return send_error(c, r, 404, "not_found", "no such route", NULL);
    if (strcmp(method, "OPTIONS") == 0 && cfg.cors_origin)
    {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        common_headers(resp, NULL);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
        return queue(c, r, 204, resp);
    }
    if (!is_get)
    {
        char msg[120];
        snprintf(msg, sizeof msg, "method %.16s is not allowed here; allowed: %s", method, r->allow);
        return send_error_ex(c, r, 405, "method_not_allowed", msg, NULL, NULL, NULL, NULL, r->allow);
    }
    switch (r->route)
    {
        case R_PERSONS:
        {
            enum MHD_Result ret;
            PGresult *res = db_call(c, r, S_PERSONS, 0, NULL, NULL, NULL, &ret);
            return res ? send_result(c, r, 200, res, NULL) : ret;
        }
        case R_PERSON: return get_one(c, r, S_PERSON, INT_MAX, "person");
        case R_CONNECTION: return get_connection(c, r, S_CONNECTION);
        case R_CONNECTIONS: return get_connection(c, r, S_CONNECTIONS);
        case R_LOCATIONS: return get_locations(c, r);
        case R_LOCATION: return get_one(c, r, S_LOCATION, LLONG_MAX, "location");
        case R_OPENAPI: return openapi(c, r);
        case R_HEALTHZ: return healthz(c, r);
        case R_METRICS: return metrics(c, r);
        default: return static_file(c, r);
    }
}

/* Our own limits on the request target and the header block, below what the
 * per-connection memory lets libmicrohttpd hold, so that an oversized request
 * gets the JSON error shape (libmicrohttpd's own 414/431, for requests that
 * do not even fit in its memory, are HTML and cannot be changed in 0.9.75). */
#define MAX_TARGET  8192
#define MAX_HEADERS 16384

static enum MHD_Result
add_len(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    size_t *n = cls;
    (void) kind;

    *n += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* 414/431 in the JSON shape, or MHD_YES to go on (*ret unset). */
static int
oversized(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
    size_t target = strlen(r->url), headers = 0;
    char msg[120];

    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_len, &target);
    if (target > MAX_TARGET)
    {
        snprintf(msg, sizeof msg, "the request target (path and query) is longer than %d bytes",
                 MAX_TARGET);
        *ret = send_error(c, r, 414, "uri_too_long", msg, NULL);
        return 1;
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_len, &headers);
    if (headers > MAX_HEADERS)
    {
        snprintf(msg, sizeof msg, "the request headers are larger than %d bytes", MAX_HEADERS);
        *ret = send_error(c, r, 431, "headers_too_large", msg, NULL);
        return 1;
    }
    return 0;
}

static enum MHD_Result
too_large(struct MHD_Connection *c, struct request *r)
{
    char msg[120];

    snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", cfg.max_body);
    return send_error(c, r, 413, "payload_too_large", msg, NULL);
}

/* The first call of a request: headers only.  An answer queued here while
 * r->hold is set waits for the body (see queue() and discard.c). */
static enum MHD_Result
headers_in(struct MHD_Connection *c, struct request *r, const char *method, enum body_plan plan)
{
    enum MHD_Result ret;

    if (oversized(c, r, &ret))
        return ret;
    r->is_post = strcmp(method, "POST") == 0 && r->allow && strstr(r->allow, "POST");
    if (!r->is_post)
    {
        /* answered on the final call, which keeps the connection alive; a
         * body we do not need is thrown away first, or, when we will not
         * read it (see body_plan()), the request is answered now and the
         * connection closed */
        if (plan == BODY_ANSWER_NOW)
            return dispatch(c, r, method);
        r->discarding = plan == BODY_DISCARD;
        return MHD_YES;
    }
    /* POST: check everything we can before reading the body */
    if (!token_ok(c))
        return send_error(c, r, 401, "unauthorized",
                          "this route needs the header Authorization: Bearer <token>", NULL);
    if (!is_json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return send_error(c, r, 415, "unsupported_media_type",
                          "the request body must be JSON (Content-Type: application/json)", NULL);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long len;
    if (cl && parse_int64(cl, 0, LLONG_MAX, &len) == 0 && (unsigned long long) len > cfg.max_body)
        return too_large(c, r);
    return MHD_YES;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct request *r = *con_cls;
    (void) cls; (void) version;

    if (!r)
    {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        r->pipe.conn = c;
        r->url = strdup(url);
        if (!r->url)
        {
            free(r);
            return MHD_NO;
        }
        *con_cls = r;
        r->allow = route(r);
        enum body_plan plan = body_plan(c);
        r->hold = plan == BODY_DISCARD;
        enum MHD_Result ret = headers_in(c, r, method, plan);
        r->hold = 0;
        return ret;
    }

    if (*upload_data_size)
    {
        /* body data (chunked bodies have no Content-Length to check early) */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->body_seen += n;
        if (!r->discarding && r->body_len + n > cfg.max_body)
        {
            r->body_too_big = 1;
            r->discarding = 1;
            r->status = 413;    /* for the metrics, should the bound be passed */
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
        }
        if (r->discarding)
            return discard_more(&r->t0, r->body_seen) == 0 ? MHD_YES : MHD_NO;
        char *nb = realloc(r->body, r->body_len + n + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + r->body_len, upload_data, n);
        r->body = nb;
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }

    if (r->held)
    {
        /* the answer decided on the first call, now that the body is read */
        struct MHD_Response *resp = r->held;
        r->held = NULL;
        return queue(c, r, r->status, resp);
    }
    if (!r->is_post)
    {
        r->may_async = !r->pipe.done;     /* not again after a result came */
        return dispatch(c, r, method);
    }
    /* final call of a POST */
    if (r->body_too_big)
        return too_large(c, r);
    return create(c, r, r->route == R_PERSONS ? &create_person : &create_location);
}

static void
request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;
    struct timespec t1;
    (void) cls; (void) c; (void) toe;

    if (!r)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    metrics_request(r->route, r->status,
                    (t1.tv_sec - r->t0.tv_sec) + (t1.tv_nsec - r->t0.tv_nsec) / 1e9);
    pipe_release(&r->pipe);
    if (r->held)
        MHD_destroy_response(r->held);
    free(r->body);
    free(r->url);
    free(r);
    *con_cls = NULL;
}

static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char) (ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/*
 * Percent-decoding of the path and of query values (MHD_OPTION_UNESCAPE_CALLBACK).
 * Like MHD's own, except that "%00" stays as it is: a decoded NUL would
 * silently cut the string short for everything after it, e.g.
 * "/index.html%00.png" served index.html and "start_date=2020-01-01%00junk"
 * was taken as 2020-01-01.  Left encoded, such input is refused (404 / 400).
 */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *w = s;
    (void) cls; (void) c;

    for (const char *p = s; *p;)
    {
        int hi, lo;
        if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 && (hi | lo) != 0)
        {
            *w++ = (char) (hi * 16 + lo);
            p += 3;
        }
        else
            *w++ = *p++;
    }
    *w = 0;
    return (size_t) (w - s);
}

static void
log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void) cls;

    vlogmsg(LOG_WARNING, fmt, ap);
}

/* ---- connection limits across all workers --------------------------------
 * Each worker runs its own daemon, so MHD's connection and per-IP limits
 * would count per worker: they are kept here for the whole process (accept
 * policy callback + connection notifications). */
#define IP_BUCKETS 1024
struct ipcount
{
    struct ipcount *next;
    uint32_t    ip;
    unsigned    n;
};
static struct ipcount *ip_table[IP_BUCKETS];
static unsigned total_conns;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
addr_ip(const struct sockaddr *a)
{
    return a && a->sa_family == AF_INET ? ((const struct sockaddr_in *) a)->sin_addr.s_addr : 0;
}

static struct ipcount **
ip_slot(uint32_t ip)
{
    struct ipcount **p = &ip_table[(ip * 2654435761u) % IP_BUCKETS];
    while (*p && (*p)->ip != ip)
        p = &(*p)->next;
    return p;
}

static enum MHD_Result
accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    enum MHD_Result ok;
    (void) cls; (void) addrlen;

    pthread_mutex_lock(&limit_lock);
    struct ipcount *e = *ip_slot(addr_ip(addr));
    ok = total_conns < cfg.max_connections && (!e || e->n < cfg.max_per_ip) ? MHD_YES : MHD_NO;
    pthread_mutex_unlock(&limit_lock);
    return ok;
}

static void
connection_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                  enum MHD_ConnectionNotificationCode toe)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint32_t ip = addr_ip(ci ? ci->client_addr : NULL);
    (void) cls; (void) socket_context;

    pthread_mutex_lock(&limit_lock);
    struct ipcount **p = ip_slot(ip);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    {
        total_conns++;
        if (!*p && (*p = calloc(1, sizeof **p)))
            (*p)->ip = ip;
        if (*p)
            (*p)->n++;
    }
    else
    {
        total_conns--;
        if (*p && --(*p)->n == 0)
        {
            struct ipcount *e = *p;
            *p = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&limit_lock);
}

/* A worker's daemon: driven by the worker's own epoll loop. */
static struct MHD_Daemon *
make_daemon(void *cls)
{
    int fd = dup(*(int *) cls);

    if (fd < 0)
        return NULL;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME,
        0, accept_policy, NULL, handler, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg.connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg.connection_memory,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, connection_notify, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_END);
    if (!d)
        close(fd);
    return d;
}

/* ======================================================================= */
/* configuration and main                                                  */
/* ======================================================================= */

static void
usage(FILE *f)
{
    fprintf(f,
"usage: udaconnect-httpd [options]\n"
"  --port N                    listen port (UDACONNECT_HTTP_PORT, default 30001)\n"
"  --bind ADDR                 listen address (UDACONNECT_HTTP_BIND, default 0.0.0.0)\n"
"  --database-url CONNINFO     libpq conninfo or URI (UDACONNECT_DATABASE_URL)\n"
"  --db-user ROLE              connect as ROLE (UDACONNECT_HTTP_DB_USER)\n"
"  --threads N                 worker threads (each with up to two database connections)\n"
"                              (UDACONNECT_HTTP_THREADS, default: 2 x CPUs, at most 16)\n"
"  --statement-timeout MS      per statement (UDACONNECT_HTTP_STATEMENT_TIMEOUT, default 5000)\n"
"  --max-body BYTES            request body cap (UDACONNECT_HTTP_MAX_BODY, default 65536)\n"
"  --max-discard BYTES         the body of a refused request is read and thrown away up to\n"
"                              this size, so that clients sending it whole still get the answer;\n"
"                              0 = never (UDACONNECT_HTTP_MAX_DISCARD,\n"
"                              default 8 MiB or 4 x --max-body, whichever is larger)\n"
"  --max-connections N         (UDACONNECT_HTTP_MAX_CONNECTIONS, default 1024)\n"
"  --max-connections-per-ip N  (UDACONNECT_HTTP_MAX_PER_IP, default 256)\n"
"  --connection-timeout S      idle connection timeout (UDACONNECT_HTTP_CONNECTION_TIMEOUT, default 30)\n"
"  --connection-memory BYTES   per-connection memory for headers (UDACONNECT_HTTP_CONNECTION_MEMORY, default 32768)\n"
"  --cors-origin ORIGIN        enable CORS for ORIGIN or * (UDACONNECT_HTTP_CORS_ORIGIN; default off)\n"
"  --web-root DIR              the web app (UDACONNECT_WEB_ROOT, default <binary>/../web)\n"
"  --openapi FILE              OpenAPI document (default <binary>/openapi.json)\n"
"  UDACONNECT_API_TOKEN        if set, POST routes need Authorization: Bearer <token>\n");
}

static long
num_opt(const char *name, const char *v, long min, long max)
{
    long long x;

    if (!v || parse_int64(v, min, max, &x) < 0)
    {
        logmsg(LOG_FATAL, "%s must be an integer between %ld and %ld, not \"%s\"",
               name, min, max, v ? v : "");
        exit(2);
    }
    return (long) x;
}

static const char *
env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, k;
    do
    {
        if (n + 4096 > cap)
        {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb)
            {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
    } while (k > 0);
    fclose(f);
    *len = n;
    return buf;
}

int
main(int argc, char **argv)
{
    log_init("udaconnect-httpd");
    char exe_dir[PATH_MAX] = ".", defweb[PATH_MAX + 8], defopenapi[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof exe_dir - 1);
    if (n > 0)
    {
        exe_dir[n] = 0;
        char *s = strrchr(exe_dir, '/');
        if (s)
            *s = 0;
    }
    snprintf(defweb, sizeof defweb, "%s/../web", exe_dir);
    snprintf(defopenapi, sizeof defopenapi, "%s/openapi.json", exe_dir);
    /* CPUs this process may run on (not the whole machine's) */
    cpu_set_t cpus;
    long ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus)
                                                             : sysconf(_SC_NPROCESSORS_ONLN);

    cfg.port = (int) num_opt("UDACONNECT_HTTP_PORT", env("UDACONNECT_HTTP_PORT", "30001"), 0, 65535);
    cfg.bind = env("UDACONNECT_HTTP_BIND", "0.0.0.0");
    cfg.database_url = env("UDACONNECT_DATABASE_URL", "");
    cfg.db_user = env("UDACONNECT_HTTP_DB_USER", NULL);
    /* two per CPU (a worker still blocks on the routes that are not
     * pipelined); at most 16 by default (each has up to two database
     * connections) */
    cfg.threads = ncpu > 0 ? (int) (2 * ncpu) : 4;
    if (cfg.threads > 16)
        cfg.threads = 16;
    if (getenv("UDACONNECT_HTTP_THREADS"))
        cfg.threads = (int) num_opt("UDACONNECT_HTTP_THREADS", getenv("UDACONNECT_HTTP_THREADS"), 1, 256);
    cfg.statement_timeout_ms = (int) num_opt("UDACONNECT_HTTP_STATEMENT_TIMEOUT",
                                             env("UDACONNECT_HTTP_STATEMENT_TIMEOUT", "5000"), 1, 3600000);
    cfg.max_body = (size_t) num_opt("UDACONNECT_HTTP_MAX_BODY", env("UDACONNECT_HTTP_MAX_BODY", "65536"),
                                    1, 64L << 20);
    cfg.max_discard = SIZE_MAX;     /* default: set below from max_body */
    if (getenv("UDACONNECT_HTTP_MAX_DISCARD"))
        cfg.max_discard = (size_t) num_opt("UDACONNECT_HTTP_MAX_DISCARD",
                                           getenv("UDACONNECT_HTTP_MAX_DISCARD"), 0, 1L << 30);
    cfg.max_connections = (unsigned) num_opt("UDACONNECT_HTTP_MAX_CONNECTIONS",
                                             env("UDACONNECT_HTTP_MAX_CONNECTIONS", "1024"), 1, 100000);
    cfg.max_per_ip = (unsigned) num_opt("UDACONNECT_HTTP_MAX_PER_IP", env("UDACONNECT_HTTP_MAX_PER_IP", "256"),
                                        1, 100000);
    cfg.connection_timeout_s = (unsigned) num_opt("UDACONNECT_HTTP_CONNECTION_TIMEOUT",
                                                  env("UDACONNECT_HTTP_CONNECTION_TIMEOUT", "30"), 1, 86400);
    cfg.connection_memory = (size_t) num_opt("UDACONNECT_HTTP_CONNECTION_MEMORY",
                                             env("UDACONNECT_HTTP_CONNECTION_MEMORY", "32768"), 4096, 1 << 24);
    cfg.cors_origin = env("UDACONNECT_HTTP_CORS_ORIGIN", NULL);
    cfg.api_token = env("UDACONNECT_API_TOKEN", NULL);
    cfg.web_root = env("UDACONNECT_WEB_ROOT", defweb);
    cfg.openapi_path = defopenapi;

    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && (v || (logmsg(LOG_FATAL, "%s needs a value", name), exit(2), 0)) && ++i)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        {
            usage(stdout);
            return 0;
        }
        else if (strcmp(a, "--version") == 0)
        {
            printf("udaconnect-httpd %s (libmicrohttpd %s, libpq %d)\n", VERSION, MHD_get_version(),
                   PQlibVersion());
            return 0;
        }
        else if (OPT("--port")) cfg.port = (int) num_opt("--port", v, 0, 65535);
        else if (OPT("--bind")) cfg.bind = v;
        else if (OPT("--database-url")) cfg.database_url = v;
        else if (OPT("--db-user")) cfg.db_user = v;
        else if (OPT("--threads")) cfg.threads = (int) num_opt("--threads", v, 1, 256);
        else if (OPT("--statement-timeout")) cfg.statement_timeout_ms = (int) num_opt("--statement-timeout", v, 1, 3600000);
        else if (OPT("--max-body")) cfg.max_body = (size_t) num_opt("--max-body", v, 1, 64L << 20);
        else if (OPT("--max-discard")) cfg.max_discard = (size_t) num_opt("--max-discard", v, 0, 1L << 30);
        else if (OPT("--max-connections")) cfg.max_connections = (unsigned) num_opt("--max-connections", v, 1, 100000);
        else if (OPT("--max-connections-per-ip")) cfg.max_per_ip = (unsigned) num_opt("--max-connections-per-ip", v, 1, 100000);
        else if (OPT("--connection-timeout")) cfg.connection_timeout_s = (unsigned) num_opt("--connection-timeout", v, 1, 86400);
        else if (OPT("--connection-memory")) cfg.connection_memory = (size_t) num_opt("--connection-memory", v, 4096, 1 << 24);
        else if (OPT("--cors-origin")) cfg.cors_origin = v;
        else if (OPT("--web-root")) cfg.web_root = v;
        else if (OPT("--openapi")) cfg.openapi_path = v;
        else
        {
            logmsg(LOG_FATAL, "unknown option %s", a);
            usage(stderr);
            return 2;
        }
#undef OPT
    }
    if (cfg.max_discard == SIZE_MAX)
        cfg.max_discard = cfg.max_body * 4 > (8u << 20) ? cfg.max_body * 4 : (8u << 20);
    if (cfg.max_connections < (unsigned) cfg.threads)
        cfg.max_connections = (unsigned) cfg.threads;
    if (!realpath(cfg.web_root, web_root_real))
    {
        logmsg(LOG_FATAL, "web root %s: %s", cfg.web_root, strerror(errno));
        return 1;
    }
    openapi_doc = read_file(cfg.openapi_path, &openapi_len);
    if (!openapi_doc)
        logmsg(LOG_WARNING, "cannot read %s: %s", cfg.openapi_path, strerror(errno));

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) cfg.port);
    if (inet_pton(AF_INET, cfg.bind, &sa.sin_addr) != 1)
    {
        logmsg(LOG_FATAL, "--bind must be an IPv4 address, not \"%s\"", cfg.bind);
        return 2;
    }

    /* signals: handled synchronously in main; worker threads inherit the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    db_init();

    /* one listening socket, shared by every worker's daemon (as MHD's own
     * thread pool shares it) */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *) &sa, sizeof sa) != 0 || listen(lfd, 1024) != 0)
    {
        logmsg(LOG_FATAL, "cannot listen on %s:%d: %s", cfg.bind, cfg.port, strerror(errno));
        return 1;
    }
    if (workers_start(cfg.threads, make_daemon, &lfd) != 0)
    {
        logmsg(LOG_FATAL, "cannot start the HTTP workers on %s:%d", cfg.bind, cfg.port);
        return 1;
    }
    close(lfd);     /* each daemon has its own descriptor of it */
    logmsg(LOG_INFO, "version %s listening on http://%s:%d/ (%d threads, web root %s)",
           VERSION, cfg.bind, cfg.port, cfg.threads, web_root_real);

    int sig = 0;
    sigwait(&set, &sig);
    logmsg(LOG_INFO, "signal %d, stopping", sig);
    workers_stop();
    free(openapi_doc);
    return 0;
}
