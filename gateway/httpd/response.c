/*
 * response.c: how udaconnect-httpd answers: the headers every answer
 * carries (nosniff, CORS), the one JSON error shape, the pass-through of a
 * database result as the body (zero-copy: the response owns the PGresult),
 * and the mapping of a failed statement's SQLSTATE to the HTTP status, code
 * and request field (PostgREST's mapping, see docs/http.md).
 *
 * Every answer goes through queue(), which also holds an answer decided
 * before the body was read until the body is (discard.c).  This file decides
 * nothing about a request's validity and must not run statements: it only
 * shapes the answers the others decide on.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

void
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

enum MHD_Result
queue(struct MHD_Connection *c, struct request *r, unsigned status,
	  struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;			/* out of memory: MHD closes the connection */
	r->status = status;

	/*
	 * A refusal decided before the body was read (or once it passed the
	 * cap): the rest of the connection is not worth keeping.  Stopping:
	 * a keep-alive client's next request goes to a server that stays.
	 */
	if (r->hold || r->body_too_big || workers_stopping())
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	/* every answer, so a browser that once came over HTTPS never tries
	 * plain HTTP (which this port does not speak) for a year */
	if (tls_on())
		MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
	/* a write's position, for the caller's reads on other replicas */
	ryw_headers(resp, r);
	if (r->hold)
	{
		/* answered on the final call, after the body (see discard.c) */
		r->held = resp;
		r->discarding = true;
		return MHD_YES;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

struct MHD_Response *
empty_response(void)
{
	return MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result
send_owned(struct MHD_Connection *c, struct request *r, unsigned status,
		   char *body, size_t len, const char *content_type)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
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

static void
free_pgresult(void *cls)
{
	PQclear((PGresult *) cls);
}

struct MHD_Response *
result_response(PGresult *res)
{
	char	   *text = PQgetvalue(res, 0, 0);
	size_t		len = (size_t) PQgetlength(res, 0, 0);
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(len, text,
																  free_pgresult, res);
	if (!resp)
	{
		PQclear(res);
		return NULL;
	}
	common_headers(resp, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return resp;
}

enum MHD_Result
send_result(struct MHD_Connection *c, struct request *r, unsigned status,
			PGresult *res, const char *location_header)
{
	struct MHD_Response *resp = result_response(res);

	if (!resp)
		return MHD_NO;
	if (location_header)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location_header);
	return queue(c, r, status, resp);
}

/*
 * The one error shape:
 *   {"error": {"status": 400, "code": "...", "message": "...", "field": ...}}
 * plus "sqlstate" (and "detail"/"hint" when present) for database errors.
 * NULL when out of memory.
 */
static struct MHD_Response *
error_response(unsigned status, const char *code, const char *message,
			   const char *field, const char *sqlstate, const char *detail,
			   const char *hint)
{
	json_t	   *err = json_object();
	json_t	   *msg = json_string(message);
	json_t	   *d = detail ? json_string(detail) : NULL;	/* NULL if not UTF-8 */
	json_t	   *h = hint ? json_string(hint) : NULL;
	json_t	   *doc;
	char	   *text;
	struct MHD_Response *resp;

	if (!msg)					/* not UTF-8 */
		msg = json_string("the request was refused");
	json_object_set_new(err, "status", json_integer(status));
	json_object_set_new(err, "code", json_string(code));
	json_object_set_new(err, "message", msg);
	json_object_set_new(err, "field", field ? json_string(field) : json_null());
	if (sqlstate)
		json_object_set_new(err, "sqlstate", json_string(sqlstate));
	if (d)
		json_object_set_new(err, "detail", d);
	if (h)
		json_object_set_new(err, "hint", h);
	doc = json_pack("{s:o}", "error", err);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!text)
		return NULL;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp)
	{
		free(text);
		return NULL;
	}
	common_headers(resp, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return resp;
}

enum MHD_Result
send_error_ex(struct MHD_Connection *c, struct request *r, unsigned status,
			  const char *code, const char *message, const char *field,
			  const char *sqlstate, const char *detail, const char *hint,
			  const char *allow)
{
	struct MHD_Response *resp = error_response(status, code, message, field,
											   sqlstate, detail, hint);

	if (!resp)
		return MHD_NO;
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (status == 503)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	return queue(c, r, status, resp);
}

enum MHD_Result
send_unauthorized(struct MHD_Connection *c, struct request *r, const char *code,
				  const char *message, const char *reason)
{
	struct MHD_Response *resp = error_response(401, code, message, NULL, NULL, NULL, NULL);
	char		challenge[300];
	size_t		n;

	if (!resp)
		return MHD_NO;
	if (!reason)
		snprintf(challenge, sizeof(challenge), "Bearer realm=\"udaconnect\"");
	else
	{
		/*
		 * RFC 6750 allows error_description only printable ASCII without '"'
		 * and '\\': the reasons quote names with '"', which become '\''.
		 */
		n = (size_t) snprintf(challenge, sizeof(challenge),
							  "Bearer error=\"invalid_token\", error_description=\"");
		for (const char *p = reason; *p && n < sizeof(challenge) - 2; p++)
			challenge[n++] = *p == '"' ? '\'' : *p == '\\' ? '/' :
				(*p < 0x20 || *p > 0x7e) ? '?' : *p;
		challenge[n++] = '"';
		challenge[n] = 0;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
	return queue(c, r, 401, resp);
}

enum MHD_Result
send_error(struct MHD_Connection *c, struct request *r, unsigned status,
		   const char *code, const char *message, const char *field)
{
	return send_error_ex(c, r, status, code, message, field, NULL, NULL, NULL, NULL);
}

enum MHD_Result
bad_param(struct MHD_Connection *c, struct request *r, const char *field,
		  const char *fmt,...)
{
	char		msg[300];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_error(c, r, 400, "invalid_parameter", msg, field);
}

/* ---- SQLSTATE -> HTTP ------------------------------------------------------ */

typedef struct sqlmap
{
	const char *prefix;
	unsigned	status;
	const char *code;
} sqlmap;

/* PostgREST's mapping, first match wins (see docs/http.md). */
static const sqlmap sqlmaps[] = {
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

/*
 * An entry of `fields` is "name" or "sqlname:fieldname" (the SQL API's
 * argument name and the request's name for it): the request's name when the
 * word is the entry's, else NULL.
 */
static const char *
match_field(const char *entry, const char *word, size_t wlen)
{
	const char *colon = strchr(entry, ':');
	size_t		n = colon ? (size_t) (colon - entry) : strlen(entry);

	if (n == wlen && strncmp(entry, word, n) == 0)
		return colon ? colon + 1 : entry;
	return NULL;
}

/* The request field an error is about: the COLUMN the SQL function named,
 * else the first field name the message mentions as a word (its subject). */
static const char *
error_field(const PGresult *res, const char *const *fields)
{
	const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *f;
	const char *w;

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
		w = p;
		while (isalnum((unsigned char) *p) || *p == '_')
			p++;
		for (int i = 0; fields[i]; i++)
			if ((f = match_field(fields[i], w, (size_t) (p - w))))
				return f;
	}
	return NULL;
}

enum MHD_Result
send_db_error(struct MHD_Connection *c, struct request *r, enum stmt s,
			  const PGresult *res, const char *const *fields,
			  const char *fallback_field)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const sqlmap *m = sqlmaps;
	const char *field;

	if (!state)
		state = "XX000";
	if (!msg)
		msg = "database error";
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
	field = error_field(res, fields);
	/* an unknown referenced id is about the fallback field */
	if (!field && (strcmp(state, "P0002") == 0 || strcmp(state, "23503") == 0))
		field = fallback_field;
	if (m->status == 504)
		msg = "the query took longer than the statement timeout";
	return send_error_ex(c, r, m->status, m->code, msg, field, state,
						 PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
						 PQresultErrorField(res, PG_DIAG_MESSAGE_HINT), NULL);
}
