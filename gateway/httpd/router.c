/*
 * router.c: from method and path to the handler that answers
 * (udaconnect-httpd).
 *
 * route() names the route of a path (the API's, /healthz, /metrics, or a
 * static file) and the methods it allows; dispatch() answers the CORS
 * preflight, the 404 and the 405 itself, establishes the caller of the /api
 * routes (caller.c: the 401 comes before any handler runs) and hands
 * everything else to its handler (api.c, static.c, the metrics text).  This
 * file must not look at parameters or bodies: the handlers do.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

/* Sets r->route / r->id_str; returns the allowed methods for 405. */
const char *
route(struct request *r)
{
	char	   *u = r->url;
	size_t		n = strlen(u);
	char	   *id;
	char	   *slash;

	if (strncmp(u, "/api/", 5) != 0 && strcmp(u, "/api") != 0)
	{
		if (strcmp(u, "/healthz") == 0)
			r->route = R_HEALTHZ;
		else if (strcmp(u, "/metrics") == 0)
			r->route = R_METRICS;
		else
			r->route = R_STATIC;
		return "GET, HEAD";
	}
	if (n > 5 && u[n - 1] == '/')
		u[--n] = 0;				/* /api/persons/ == /api/persons */
	if (strcmp(u, "/api/openapi.json") == 0)
		return r->route = R_OPENAPI, "GET, HEAD";
	if (strcmp(u, "/api/persons") == 0)
		return r->route = R_PERSONS, "GET, HEAD, POST";
	if (strcmp(u, "/api/locations") == 0)
		return r->route = R_LOCATIONS, "GET, HEAD, POST";
	if (strcmp(u, "/api/places") == 0)
		return r->route = R_PLACES, "GET, HEAD, POST";
	if (strncmp(u, "/api/persons/", 13) == 0)
	{
		id = u + 13;
		slash = strchr(id, '/');
		r->id_str = id;
		if (!slash)
			return r->route = R_PERSON, "GET, HEAD, DELETE";
		*slash = 0;
		if (strcmp(slash + 1, "connection") == 0)
			return r->route = R_CONNECTION, "GET, HEAD";
		if (strcmp(slash + 1, "connections") == 0)
			return r->route = R_CONNECTIONS, "GET, HEAD";
		if (strcmp(slash + 1, "token") == 0)
			return r->route = R_TOKEN, "POST";
		if (strcmp(slash + 1, "encounters") == 0)
			return r->route = R_ENCOUNTERS, "GET, HEAD";
		if (strcmp(slash + 1, "encounters/stream") == 0)
			return r->route = R_ENCOUNTER_STREAM, "GET, HEAD";
		*slash = '/';
	}
	else if (strncmp(u, "/api/locations/", 15) == 0 || strncmp(u, "/api/location/", 14) == 0)
	{
		id = u + (u[13] == 's' ? 15 : 14);
		if (!strchr(id, '/'))
		{
			r->id_str = id;
			return r->route = R_LOCATION, "GET, HEAD";
		}
	}
	else if (strncmp(u, "/api/places/", 12) == 0 && !strchr(u + 12, '/'))
	{
		r->id_str = u + 12;
		return r->route = R_PLACE, "GET, HEAD, DELETE";
	}
	r->route = R_NOT_FOUND;
	return NULL;
}

/* The CORS preflight: 204 with the route's methods. */
static enum MHD_Result
preflight(struct MHD_Connection *c, struct request *r)
{
	struct MHD_Response *resp = empty_response();

	if (!resp)
		return MHD_NO;
	common_headers(resp, NULL);
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->allow);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type, Authorization, Last-Event-ID");
	MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	return queue(c, r, 204, resp);
}

static enum MHD_Result
send_metrics(struct MHD_Connection *c, struct request *r)
{
	size_t		len;
	char	   *text = metrics_render(&len);

	if (!text)
		return MHD_NO;
	return send_owned(c, r, 200, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

typedef enum MHD_Result (*handler) (struct MHD_Connection *c, struct request *r);

/* The handler of GET and HEAD on each route (R_NOT_FOUND has none). */
static const handler get_handlers[R_COUNT] = {
	[R_PERSONS] = api_persons,
	[R_PERSON] = api_person,
	[R_CONNECTION] = api_connection,
	[R_CONNECTIONS] = api_connections,
	[R_LOCATIONS] = api_locations,
	[R_LOCATION] = api_location,
	[R_PLACES] = api_places,
	[R_PLACE] = api_place,
	[R_ENCOUNTERS] = api_encounters,
	[R_ENCOUNTER_STREAM] = api_encounter_stream,
	[R_OPENAPI] = static_openapi,
	[R_HEALTHZ] = api_healthz,
	[R_METRICS] = send_metrics,
	[R_STATIC] = static_file,
};

enum MHD_Result
dispatch(struct MHD_Connection *c, struct request *r, const char *method)
{
	char		msg[120];
	enum MHD_Result ret;
	bool		get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (r->route == R_NOT_FOUND)
		return send_error(c, r, 404, "not_found", "no such route", NULL);
	if (strcmp(method, "OPTIONS") == 0 && cfg.cors_origin)
		return preflight(c, r);
	if (!(get && strstr(r->allow, "GET")) && !r->is_delete)
	{
		snprintf(msg, sizeof(msg), "method %.16s is not allowed here; allowed: %s",
				 method, r->allow);
		return send_error_ex(c, r, 405, "method_not_allowed", msg, NULL, NULL, NULL, NULL,
							 r->allow);
	}
	if (caller_needed(r->route) && caller_refused(c, r, &ret))
		return ret;
	if (r->is_delete)
		return r->route == R_PLACE ? api_delete_place(c, r) : api_forget_person(c, r);
	return get_handlers[r->route] (c, r);
}

/* The caller was established with the headers (limits_post_refused). */
enum MHD_Result
dispatch_post(struct MHD_Connection *c, struct request *r)
{
	if (r->route == R_PERSONS)
		return api_create_person(c, r);
	if (r->route == R_TOKEN)
		return api_token(c, r);
	if (r->route == R_PLACES)
		return api_create_place(c, r);
	return api_create_location(c, r);
}
