/*
 * api.c: the routes of udaconnect-httpd that call the database: persons,
 * locations, connections, places, and the health check.
 *
 * A thin gateway: each handler validates the request's parameters (with
 * params.c), calls one udaconnect.api_* SQL function with them (with
 * dbcall.c, which puts the verified caller first; sql/src/60-http.sql) and
 * passes the JSON text it returns straight through (response.c).  The token
 * route signs the claims its function returns (caller.c).  The SQL functions own the data rules;
 * nothing here reads or shapes the data itself, and this file must not
 * route requests or speak to libpq directly.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

/* ---- GET ------------------------------------------------------------------- */

enum MHD_Result
api_persons(struct MHD_Connection *c, struct request *r)
{
	enum MHD_Result ret;
	PGresult   *res = db_call_fast(c, r, S_PERSONS, 0, NULL, NULL, NULL, &ret);

	return res ? send_result(c, r, 200, res, NULL) : ret;
}

/* One person or location by the path's id. */
static enum MHD_Result
get_one(struct MHD_Connection *c, struct request *r, enum stmt s, long long max,
		const char *what)
{
	static const char *const fields[] = {"id", NULL};
	enum MHD_Result ret;
	long long	id;
	char		idbuf[24];
	char		msg[80];
	const char *vals[1];
	PGresult   *res;

	if (path_id(c, r, max, &id, &ret) < 0)
		return ret;
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	vals[0] = idbuf;
	res = db_call_fast(c, r, s, 1, vals, fields, "id", &ret);
	if (!res)
		return ret;
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		snprintf(msg, sizeof(msg), "%s %lld does not exist", what, id);
		return send_error(c, r, 404, "not_found", msg, "id");
	}
	return send_result(c, r, 200, res, NULL);
}

enum MHD_Result
api_person(struct MHD_Connection *c, struct request *r)
{
	return get_one(c, r, S_PERSON, INT_MAX, "person");
}

enum MHD_Result
api_location(struct MHD_Connection *c, struct request *r)
{
	return get_one(c, r, S_LOCATION, LLONG_MAX, "location");
}

/* distance and window of a connection query, as text in dbuf and wbuf; wbuf
 * "" when no window is given.  0, or -1 with the 400 queued in *ret. */
static int
distance_window(struct MHD_Connection *c, struct request *r, char *dbuf, char *wbuf,
				size_t len, enum MHD_Result *ret)
{
	const char *d = arg(c, "distance");
	const char *w = arg(c, "window");
	double		distance = 5;
	double		window = 0;
	char		b[64];

	if (d && parse_number(d, &distance) < 0)
		*ret = bad_param(c, r, "distance", "distance must be a number of metres, not \"%s\"",
						 shown(d, b, sizeof(b)));
	else if (distance <= 0)
		*ret = bad_param(c, r, "distance", "distance must be greater than 0, not %s",
						 shown(d, b, sizeof(b)));
	else if (w && *w && (parse_number(w, &window) < 0 || window < 0))
		*ret = bad_param(c, r, "window",
						 "window must be a non-negative number of seconds, not \"%s\"",
						 shown(w, b, sizeof(b)));
	else if (w && *w && window > 1e9)
		*ret = bad_param(c, r, "window", "window is out of range (at most 1e9 seconds)");
	else
	{
		snprintf(dbuf, len, "%.17g", distance);
		snprintf(wbuf, len, "%.17g", window);
		if (!w || !*w)
			wbuf[0] = 0;
		return 0;
	}
	return -1;
}

/* Who was near the person (connection) or its locations (connections). */
static enum MHD_Result
get_connection(struct MHD_Connection *c, struct request *r, enum stmt s)
{
	static const char *const params[] = {
		"start_date", "end_date", "distance", "window", NULL
	};

	/* "meters" / "time_window" in the finder's messages are our distance/window */
	static const char *const fields[] = {
		"start_date", "end_date", "meters:distance", "time_window:window",
		"distance", "window", NULL
	};
	enum MHD_Result ret;
	long long	id;
	const char *start;
	const char *end;
	char		idbuf[24];
	char		dbuf[40];
	char		wbuf[40];
	const char *vals[5];
	PGresult   *res;

	if (path_id(c, r, INT_MAX, &id, &ret) < 0 ||
		unique_args(c, r, params, &ret) < 0 ||
		check_dates(c, r, true, &start, &end, &ret) < 0 ||
		distance_window(c, r, dbuf, wbuf, sizeof(dbuf), &ret) < 0)
		return ret;
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	vals[0] = idbuf;
	vals[1] = start;
	vals[2] = end;
	vals[3] = dbuf;
	vals[4] = wbuf[0] ? wbuf : NULL;
	res = db_call_fast(c, r, s, 5, vals, fields, "id", &ret);
	if (!res)
		return ret;
	return send_result(c, r, 200, res, NULL);
}

enum MHD_Result
api_connection(struct MHD_Connection *c, struct request *r)
{
	return get_connection(c, r, S_CONNECTION);
}

enum MHD_Result
api_connections(struct MHD_Connection *c, struct request *r)
{
	return get_connection(c, r, S_CONNECTIONS);
}

/* ---- GET /api/locations: a page ------------------------------------------ */

/* An integer query parameter of the page. */
typedef struct int_param
{
	const char *field;			/* the parameter the error names */
	const char *label;			/* "<label> must be <desc>, not ..." */
	long long	min;
	long long	max;
	const char *desc;
} int_param;

static const int_param p_limit = {
	"limit", "limit", 1, 1000, "an integer between 1 and 1000"
};
static const int_param p_after = {
	"after", "after (the cursor)", 0, LLONG_MAX, "a non-negative integer"
};
static const int_param p_offset = {
	"offset", "offset", 0, 1000000000, "an integer between 0 and 1000000000"
};
static const int_param p_person = {
	"person_id", "person_id", INT_MIN, INT_MAX, "an integer"
};

/* The page's parameters, as text for api_locations($1..$6). */
typedef struct page
{
	char		limit[16];
	char		after[24];
	char		offset[24];
	char		person_id[16];
	const char *start;
	const char *end;
	const char *vals[6];
} page;

/* Parameter p's text s as an integer, written into buf: 0, or -1 with the 400. */
static int
int_arg(struct MHD_Connection *c, struct request *r, const int_param *p, const char *s,
		char *buf, size_t len, enum MHD_Result *ret)
{
	long long	v;
	char		b[64];

	if (parse_int64(s, p->min, p->max, &v) < 0)
	{
		*ret = bad_param(c, r, p->field, "%s must be %s, not \"%s\"", p->label, p->desc,
						 shown(s, b, sizeof(b)));
		return -1;
	}
	snprintf(buf, len, "%lld", v);
	return 0;
}

/* Reads the page's parameters into pg: 0, or -1 with the 400 queued. */
static int
page_params(struct MHD_Connection *c, struct request *r, page *pg, enum MHD_Result *ret)
{
	static const char *const params[] = {
		"limit", "after", "cursor", "offset", "person_id", "start_date", "end_date", NULL
	};
	const char *s;
	const char *a = arg(c, "after");

	memset(pg, 0, sizeof(*pg));
	if (unique_args(c, r, params, ret) < 0)
		return -1;
	s = arg(c, "limit");
	if (int_arg(c, r, &p_limit, s ? s : "100", pg->limit, sizeof(pg->limit), ret) < 0)
		return -1;
	pg->vals[0] = pg->limit;
	if (a && arg(c, "cursor"))
	{
		*ret = bad_param(c, r, "cursor", "use either after or cursor (the same thing), not both");
		return -1;
	}
	if (!a)
		a = arg(c, "cursor");
	if (a && int_arg(c, r, &p_after, a, pg->after, sizeof(pg->after), ret) < 0)
		return -1;
	pg->vals[1] = a ? pg->after : NULL;
	if ((s = arg(c, "offset")))
	{
		if (int_arg(c, r, &p_offset, s, pg->offset, sizeof(pg->offset), ret) < 0)
			return -1;
		if (a)
		{
			*ret = bad_param(c, r, "offset", "use either offset or the cursor (after), not both");
			return -1;
		}
		pg->vals[2] = pg->offset;
	}
	if ((s = arg(c, "person_id")))
	{
		if (int_arg(c, r, &p_person, s, pg->person_id, sizeof(pg->person_id), ret) < 0)
			return -1;
		pg->vals[3] = pg->person_id;
	}
	if (check_dates(c, r, false, &pg->start, &pg->end, ret) < 0)
		return -1;
	pg->vals[4] = pg->start;
	pg->vals[5] = pg->end;
	return 0;
}

/* The next page's cursor (X-Next-Cursor) and its Link. */
static void
next_page_headers(struct MHD_Response *resp, const page *pg, const char *next)
{
	char		link[256];
	int			n;

	MHD_add_response_header(resp, "X-Next-Cursor", next);
	n = snprintf(link, sizeof(link),
				 "</api/locations?limit=%s&after=%s%s%s%s%s%s%s>; rel=\"next\"",
				 pg->limit, next,
				 pg->vals[3] ? "&person_id=" : "", pg->vals[3] ? pg->vals[3] : "",
				 pg->start ? "&start_date=" : "", pg->start ? pg->start : "",
				 pg->end ? "&end_date=" : "", pg->end ? pg->end : "");
	if (n > 0 && (size_t) n < sizeof(link))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LINK, link);
}

enum MHD_Result
api_locations(struct MHD_Connection *c, struct request *r)
{
	static const char *const fields[] = {
		"limit", "after", "offset", "person_id", "start_date", "end_date", NULL
	};
	enum MHD_Result ret;
	page		pg;
	PGresult   *res;
	struct MHD_Response *resp;

	if (page_params(c, r, &pg, &ret) < 0)
		return ret;
	res = db_call_fast(c, r, S_LOCATIONS, 6, pg.vals, fields, NULL, &ret);
	if (!res)
		return ret;
	resp = result_response(res);
	if (!resp)
		return MHD_NO;
	/* column 1: the cursor of the next page (NULL on the last page) */
	if (!PQgetisnull(res, 0, 1))
		next_page_headers(resp, &pg, PQgetvalue(res, 0, 1));
	return queue(c, r, 200, resp);
}

/* ---- POST: creation -------------------------------------------------------- */

#define MAX_FIELDS 7

/* A creation route: the body's fields, in the order of the SQL function's
 * arguments, and where the created object lives. */
typedef struct creation
{
	enum stmt	stmt;
	const char *collection;		/* the Location header's prefix */
	const char *fallback_field; /* what an unknown referenced id is about */
	const char *alias;			/* NULL, or "sqlname:field": an argument of a
								 * function it calls that is a field here */
	int			nfields;
	struct body_field fields[MAX_FIELDS];
} creation;

static const creation create_person = {
	S_CREATE_PERSON, "/api/persons", NULL, NULL, 3, {
		{"first_name", F_STRING, true, "a string"},
		{"last_name", F_STRING, true, "a string"},
		{"company_name", F_STRING, true, "a string"},
	}
};

static const creation create_location = {
	S_CREATE_LOCATION, "/api/locations", "person_id", NULL, 4, {
		{"person_id", F_INTEGER, true, "an integer"},
		{"latitude", F_NUMBER, true, "a number"},
		{"longitude", F_NUMBER, true, "a number"},
		{"creation_time", F_STRING, false, "a string (ISO 8601)"},
	}
};

/* the polygon, or the centre and radius: which one is given is the SQL
 * function's rule; create_place's errors about its `area` are the polygon's */
static const creation create_place = {
	S_CREATE_PLACE, "/api/places", NULL, "area:polygon", 7, {
		{"name", F_STRING, true, "a string"},
		{"kind", F_STRING, true, "a string (booth, room, stage or area)"},
		{"floor", F_INTEGER, false, "an integer"},
		{"polygon", F_ARRAY, false, "an array of vertices {\"latitude\": ..., \"longitude\": ...}"},
		{"latitude", F_NUMBER, false, "a number"},
		{"longitude", F_NUMBER, false, "a number"},
		{"radius_m", F_NUMBER, false, "a number of metres"},
	}
};

/* 201 with the created object (the function's JSON) and its Location. */
static enum MHD_Result
send_created(struct MHD_Connection *c, struct request *r, PGresult *res,
			 const char *collection)
{
	json_t	   *created = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	char		loc[96] = "";

	if (created)
	{
		snprintf(loc, sizeof(loc), "%s/%lld", collection,
				 (long long) json_integer_value(json_object_get(created, "id")));
		json_decref(created);
	}
	return send_result(c, r, 201, res, created ? loc : NULL);
}

static enum MHD_Result
create(struct MHD_Connection *c, struct request *r, const creation *k)
{
	enum MHD_Result ret;
	const char *vals[MAX_FIELDS];
	const char *names[MAX_FIELDS + 2];
	char		text[MAX_FIELDS][FIELD_TEXT_MAX];
	json_t	   *doc;
	PGresult   *res;

	doc = read_fields(c, r, k->fields, k->nfields, vals, text, &ret);
	if (!doc)
		return ret;
	for (int i = 0; i < k->nfields; i++)
		names[i] = k->fields[i].name;
	names[k->nfields] = k->alias;
	names[k->nfields + 1] = NULL;
	res = db_call(c, r, k->stmt, k->nfields, vals, names, k->fallback_field, &ret);
	json_decref(doc);
	if (!res)
		return ret;
	return send_created(c, r, res, k->collection);
}

enum MHD_Result
api_create_person(struct MHD_Connection *c, struct request *r)
{
	return create(c, r, &create_person);
}

enum MHD_Result
api_create_location(struct MHD_Connection *c, struct request *r)
{
	return create(c, r, &create_location);
}

enum MHD_Result
api_create_place(struct MHD_Connection *c, struct request *r)
{
	return create(c, r, &create_place);
}

/* ---- DELETE /api/persons/{id}: erasure ------------------------------------ */

enum MHD_Result
api_forget_person(struct MHD_Connection *c, struct request *r)
{
	return get_one(c, r, S_FORGET_PERSON, INT_MAX, "person");
}

/* ---- POST /api/persons/{id}/token ----------------------------------------- */

#define TTL_MIN 60
#define TTL_MAX 31536000		/* a year */
#define TTL_DEFAULT 86400

/* The person id of attendee claims {"sub": "<id>", "role": "attendee"}, or 0. */
static int32_t
claims_person(const char *text)
{
	json_t	   *j = json_loads(text, 0, NULL);
	const char *role = json_string_value(json_object_get(j, "role"));
	const char *sub = json_string_value(json_object_get(j, "sub"));
	long long	id = 0;

	if (!role || strcmp(role, "attendee") != 0 || !sub || parse_int64(sub, 1, INT_MAX, &id) < 0)
		id = 0;
	json_decref(j);
	return (int32_t) id;
}

/* 201 {"token", "person_id", "expires_at"} for the claims' person. */
static enum MHD_Result
send_token(struct MHD_Connection *c, struct request *r, int32_t person, long long ttl)
{
	time_t		now = time(NULL);
	time_t		exp = now + (time_t) ttl;
	struct tm	tm;
	char		expires[32];
	char		err[200];
	char	   *token = caller_sign_attendee(person, (int64_t) now, ttl, err, sizeof(err));
	json_t	   *doc;
	char	   *text;

	if (!token)
	{
		logmsg(LOG_ERROR, "cannot sign a token: %s", err);
		return send_error(c, r, 500, "internal_error", "the token could not be signed", NULL);
	}
	gmtime_r(&exp, &tm);
	strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
	doc = json_pack("{s:s, s:I, s:s}", "token", token, "person_id", (json_int_t) person,
					"expires_at", expires);
	free(token);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return MHD_NO;
	return send_owned(c, r, 201, text, strlen(text), "application/json");
}

enum MHD_Result
api_token(struct MHD_Connection *c, struct request *r)
{
	static const char *const params[] = {"ttl", NULL};
	static const char *const fields[] = {"id", NULL};
	enum MHD_Result ret;
	long long	id;
	long long	ttl = TTL_DEFAULT;
	const char *t = arg(c, "ttl");
	char		idbuf[24];
	char		b[64];
	char		msg[80];
	const char *vals[1];
	PGresult   *res;
	int32_t		person;

	/* not a client mistake to retry: the deployment runs without tokens */
	if (!cfg.auth)
		return send_error(c, r, 409, "auth_off",
						  "tokens need UDACONNECT_AUTH=on (this server checks no tokens)", NULL);
	if (path_id(c, r, INT_MAX, &id, &ret) < 0 || unique_args(c, r, params, &ret) < 0)
		return ret;
	if (t && parse_int64(t, TTL_MIN, TTL_MAX, &ttl) < 0)
		return bad_param(c, r, "ttl", "ttl must be a number of seconds between %d and %d, not \"%s\"",
						 TTL_MIN, TTL_MAX, shown(t, b, sizeof(b)));
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	vals[0] = idbuf;
	res = db_call(c, r, S_TOKEN_CLAIMS, 1, vals, fields, "id", &ret);
	if (!res)
		return ret;
	if (PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		snprintf(msg, sizeof(msg), "person %lld does not exist", id);
		return send_error(c, r, 404, "not_found", msg, "id");
	}
	person = claims_person(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (person == 0)
	{
		logmsg(LOG_ERROR, "api_token_claims returned claims that are not an attendee's");
		return send_error(c, r, 500, "internal_error", "unexpected token claims", NULL);
	}
	return send_token(c, r, person, ttl);
}

/* ---- places: GET /api/places[/{id}], DELETE /api/places/{id} -------------- */

enum MHD_Result
api_places(struct MHD_Connection *c, struct request *r)
{
	enum MHD_Result ret;
	PGresult   *res = db_call_fast(c, r, S_PLACES, 0, NULL, NULL, NULL, &ret);

	return res ? send_result(c, r, 200, res, NULL) : ret;
}

enum MHD_Result
api_place(struct MHD_Connection *c, struct request *r)
{
	return get_one(c, r, S_PLACE, INT_MAX, "place");
}

enum MHD_Result
api_delete_place(struct MHD_Connection *c, struct request *r)
{
	return get_one(c, r, S_DELETE_PLACE, INT_MAX, "place");
}

/* ---- health ---------------------------------------------------------------- */

enum MHD_Result
api_healthz(struct MHD_Connection *c, struct request *r)
{
	enum MHD_Result ret;
	PGresult   *res = db_call_fast(c, r, S_HEALTH, 0, NULL, NULL, NULL, &ret);
	char	   *body;

	if (!res)
		return ret;
	PQclear(res);
	body = strdup("{\"status\":\"ok\",\"database\":\"up\"}");
	if (!body)
		return MHD_NO;
	return send_owned(c, r, 200, body, strlen(body), "application/json");
}
