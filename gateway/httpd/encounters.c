/*
 * encounters.c: GET /api/persons/{id}/encounters (udaconnect-httpd): a page
 * of the person's encounters, who met whom, where and from when to when
 * (sql/src/70-encounters-http.sql, api_encounters).
 *
 * It checks the query (limit, cursor, from, to), calls api_encounters with
 * the verified caller and passes its JSON array through as the body, with
 * the next page's cursor in X-Next-Cursor and a Link rel="next", as
 * GET /api/locations does.  from and to are ISO 8601 dates or timestamps
 * (parse.c, valid_timestamp); a date alone is a UTC day, and `to` as a date
 * includes that whole day, as end_date does on the other routes.  Who may
 * read whose encounters is the database's rule (403/404 come from its
 * SQLSTATE).  The live stream of the same encounters is sse.c's; this file
 * must not speak to libpq beyond taking the result.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

#define LIMIT_DEFAULT "100"

/* The page's parameters, as text for api_encounters($3..$7). */
typedef struct enc_page
{
	char		id[16];
	char		limit[16];
	char		from[40];
	char		to[40];
	const char *from_arg;		/* as given, for the Link */
	const char *to_arg;
	const char *vals[5];
} enc_page;

/* The day after the date d (YYYY-MM-DD, valid) into out. */
static void
next_day(const char *d, char *out, size_t len)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(d) - 1900;
	tm.tm_mon = atoi(d + 5) - 1;
	tm.tm_mday = atoi(d + 8) + 1;
	tm.tm_hour = 12;			/* far from any edge of the day */
	timegm(&tm);				/* normalizes the day past the month's end */
	snprintf(out, len, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/*
 * The time parameter `name` into buf (the day after a date when `day_end`):
 * 0 (buf "" when absent), or -1 with the 400 queued.  *date_only tells
 * whether a date alone was given.
 */
static int
time_arg(struct MHD_Connection *c, struct request *r, const char *name, bool day_end,
		 char *buf, size_t len, bool *date_only, enum MHD_Result *ret)
{
	const char *v = arg(c, name);
	char		b[64];

	buf[0] = 0;
	*date_only = false;
	if (!v)
		return 0;
	if (strlen(v) >= len || !valid_timestamp(v, date_only))
	{
		*ret = bad_param(c, r, name,
						 "%s must be an ISO 8601 date (YYYY-MM-DD) or timestamp "
						 "(YYYY-MM-DDTHH:MM:SS with Z or an offset such as +02:00), not \"%s\"",
						 name, shown(v, b, sizeof(b)));
		return -1;
	}
	if (*date_only && day_end)
		next_day(v, buf, len);
	else
		snprintf(buf, len, "%s", v);
	return 0;
}

/* Reads the page's parameters into pg: 0, or -1 with the 400 queued. */
static int
enc_params(struct MHD_Connection *c, struct request *r, enc_page *pg, enum MHD_Result *ret)
{
	static const char *const params[] = {"limit", "cursor", "after", "from", "to", NULL};
	long long	id;
	long long	lim;
	const char *s = arg(c, "limit");
	const char *cursor = arg(c, "cursor");
	bool		from_date;
	bool		to_date;
	char		b[64];

	memset(pg, 0, sizeof(*pg));
	if (path_id(c, r, INT_MAX, &id, ret) < 0 || unique_args(c, r, params, ret) < 0)
		return -1;
	snprintf(pg->id, sizeof(pg->id), "%lld", id);
	if (!s)
		s = LIMIT_DEFAULT;
	if (parse_int64(s, 1, 1000, &lim) < 0)
	{
		*ret = bad_param(c, r, "limit", "limit must be an integer between 1 and 1000, not \"%s\"",
						 shown(s, b, sizeof(b)));
		return -1;
	}
	snprintf(pg->limit, sizeof(pg->limit), "%lld", lim);
	if (cursor && arg(c, "after"))
	{
		*ret = bad_param(c, r, "cursor", "use either after or cursor (the same thing), not both");
		return -1;
	}
	if (!cursor)
		cursor = arg(c, "after");
	if (time_arg(c, r, "from", false, pg->from, sizeof(pg->from), &from_date, ret) < 0 ||
		time_arg(c, r, "to", true, pg->to, sizeof(pg->to), &to_date, ret) < 0)
		return -1;
	pg->from_arg = arg(c, "from");
	pg->to_arg = arg(c, "to");
	/* two days: the database would see from > the day after `to` only */
	if (from_date && to_date && strcmp(pg->from_arg, pg->to_arg) > 0)
	{
		*ret = bad_param(c, r, "from", "from %s must not be after to %s", pg->from_arg, pg->to_arg);
		return -1;
	}
	pg->vals[0] = pg->id;
	pg->vals[1] = pg->from[0] ? pg->from : NULL;
	pg->vals[2] = pg->to[0] ? pg->to : NULL;
	pg->vals[3] = pg->limit;
	pg->vals[4] = cursor;
	return 0;
}

/* s percent-encoded for a query string into out (cut short if it is long). */
static void
query_escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		n = 0;

	for (; *s && n + 4 < len; s++)
	{
		unsigned char ch = (unsigned char) *s;

		if ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == ':')
			out[n++] = (char) ch;
		else
		{
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = 0;
}

/* The next page's cursor (X-Next-Cursor) and its Link. */
static void
next_page_headers(struct MHD_Response *resp, const enc_page *pg, const char *next)
{
	char		cur[80];
	char		from[128] = "";
	char		to[128] = "";
	char		link[512];
	int			n;

	MHD_add_response_header(resp, "X-Next-Cursor", next);
	query_escape(next, cur, sizeof(cur));
	if (pg->from_arg)
		query_escape(pg->from_arg, from, sizeof(from));
	if (pg->to_arg)
		query_escape(pg->to_arg, to, sizeof(to));
	n = snprintf(link, sizeof(link),
				 "</api/persons/%s/encounters?limit=%s&cursor=%s%s%s%s%s>; rel=\"next\"",
				 pg->id, pg->limit, cur,
				 pg->from_arg ? "&from=" : "", from, pg->to_arg ? "&to=" : "", to);
	if (n > 0 && (size_t) n < sizeof(link))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LINK, link);
}

enum MHD_Result
api_encounters(struct MHD_Connection *c, struct request *r)
{
	/* the SQL function's COLUMN names are the parameters' */
	static const char *const fields[] = {"limit", "cursor", "from", "to", NULL};
	enum MHD_Result ret;
	enc_page	pg;
	PGresult   *res;
	struct MHD_Response *resp;

	if (enc_params(c, r, &pg, &ret) < 0)
		return ret;
	res = db_call_fast(c, r, S_ENCOUNTERS, 5, pg.vals, fields, "id", &ret);
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
