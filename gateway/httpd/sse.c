/*
 * sse.c: GET /api/persons/{id}/encounters/stream (udaconnect-httpd): a
 * person's encounters as they change, as Server-Sent Events.
 *
 * Before the stream starts, the database says whether the caller may
 * watch the person (api_encounter_position: 403 for an attendee watching
 * someone else, 404 for an organizer naming nobody, as ordinary JSON
 * answers) and where "now" is.  The stream then starts after the position
 * the client gives, the Last-Event-ID header (what EventSource sends when
 * it reconnects) or else ?since= (0: from the beginning), each
 * "<version>.<id>" as the events' id lines carry it; with neither, after
 * the current state (only what changes from now on).  Each event is
 *
 *   id: <version>.<id>
 *   event: encounter | removed
 *   data: <the encounter as JSON | {"id": ..., "merged_into": ...}>
 *
 * and ": heartbeat" comment lines keep an idle stream's connection alive.
 * When the person is erased, the last event is "erased", without an id
 * (hub_erased.c), and a client that comes back is answered 404 here.
 * The subscriber is then the hub's (hub.c), fed by the stream thread
 * (listen.c); a stream opened with a token ends when the token expires.
 * This file only checks and opens streams: it must not queue events.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "httpd.h"

/*
 * The kernel's send buffer of a stream's socket.  Events are small and
 * rare, and a stream's memory is to be bounded: the kernel's autotuning
 * would let a client that stopped reading park megabytes there.
 */
#define STREAM_SNDBUF 32768

/* "<version>.<id>", both non-negative, or "0" when `zero_ok`: 0, or -1. */
static int
parse_position(const char *s, bool zero_ok, int64_t *version, int64_t *id)
{
	const char *dot = strchr(s, '.');
	char		v[24];
	long long	a;
	long long	b;

	if (zero_ok && strcmp(s, "0") == 0)
	{
		*version = *id = 0;
		return 0;
	}
	if (!dot || (size_t) (dot - s) >= sizeof(v))
		return -1;
	memcpy(v, s, (size_t) (dot - s));
	v[dot - s] = 0;
	if (parse_int64(v, 0, LLONG_MAX, &a) < 0 || parse_int64(dot + 1, 0, LLONG_MAX, &b) < 0)
		return -1;
	*version = a;
	*id = b;
	return 0;
}

/*
 * Where the client asks to start: 1 with *version, *id set (Last-Event-ID
 * or since), 0 when it asks for neither, -1 with the 400 queued.
 */
static int
start_position(struct MHD_Connection *c, struct request *r, int64_t *version,
			   int64_t *id, enum MHD_Result *ret)
{
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	const char *since = arg(c, "since");
	char		b[64];

	if (last)
	{
		if (parse_position(last, false, version, id) == 0)
			return 1;
		*ret = bad_param(c, r, "Last-Event-ID",
						 "Last-Event-ID must be <version>.<id> as an event's id line gave it, "
						 "not \"%s\"", shown(last, b, sizeof(b)));
		return -1;
	}
	if (since)
	{
		if (parse_position(since, true, version, id) == 0)
			return 1;
		*ret = bad_param(c, r, "since",
						 "since must be 0 (from the beginning) or <version>.<id> as an event's "
						 "id line gave it, not \"%s\"", shown(since, b, sizeof(b)));
		return -1;
	}
	return 0;
}

/* The 200 whose body the hub writes for subscriber s (NULL: no memory; s
 * is gone then). */
static struct MHD_Response *
stream_response(struct sub *s)
{
	struct MHD_Response *resp;

	/* a small block (it is allocated with the response): chunked bodies
	 * are written straight into the connection's buffer, this one serves
	 * only HTTP/1.0 clients */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 128, hub_read, s, hub_free);
	if (!resp)
	{
		hub_free(s);
		return NULL;
	}
	common_headers(resp, "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* a proxy in front must pass each event on at once */
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return resp;
}

enum MHD_Result
api_encounter_stream(struct MHD_Connection *c, struct request *r)
{
	static const char *const params[] = {"since", NULL};
	static const char *const fields[] = {"id", NULL};
	enum MHD_Result ret;
	long long	person;
	int64_t		version = 0;
	int64_t		id = 0;
	int			given;
	char		idbuf[16];
	const char *vals[1] = {idbuf};
	PGresult   *res;
	struct sub *s;
	bool		at_cap;
	const union MHD_ConnectionInfo *ci;
	int			sndbuf = STREAM_SNDBUF;

	if (path_id(c, r, INT_MAX, &person, &ret) < 0 || unique_args(c, r, params, &ret) < 0 ||
		(given = start_position(c, r, &version, &id, &ret)) < 0)
		return ret;
	snprintf(idbuf, sizeof(idbuf), "%lld", person);
	res = db_call(c, r, S_ENCOUNTER_POSITION, 1, vals, fields, "id", &ret);
	if (!res)
		return ret;
	if (!given)
	{
		version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	s = hub_add(c, (int32_t) person, version, id, !given, r->caller_exp, &at_cap);
	if (!s && at_cap)
		return send_error(c, r, 503, "too_many_streams",
						  "this server has as many live streams as it takes "
						  "(--stream-max); retry later", NULL);
	if (!s)
		return MHD_NO;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	return queue(c, r, 200, stream_response(s));
}
