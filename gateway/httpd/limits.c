/*
 * limits.c: what a connection or a request may be before udaconnect-httpd
 * serves it.
 *
 * Connections: the process-wide connection limit and the per-client-address
 * limit.  Each worker runs its own libmicrohttpd daemon, whose own limits
 * would count per worker, so they are kept here for the whole process (the
 * daemons' accept policy callback and connection notifications).
 * Requests, on their headers: the size of the request target and of the
 * header block (our own limits, below what the per-connection memory lets
 * libmicrohttpd hold, so that an oversized request gets the JSON error shape:
 * libmicrohttpd's own 414/431, for requests that do not even fit in its
 * memory, are HTML and cannot be changed in 0.9.75), and a POST's caller
 * (caller.c), media type and declared length.  This file refuses; it must not read
 * bodies (request.c, discard.c) nor route.
 */
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"

#define MAX_TARGET  8192
#define MAX_HEADERS 16384

/* ---- connections ------------------------------------------------------------ */

#define IP_BUCKETS 1024

typedef struct ipcount
{
	struct ipcount *next;
	uint32_t	ip;
	unsigned	n;
} ipcount;

static ipcount *ip_table[IP_BUCKETS];
static unsigned total_conns;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
addr_ip(const struct sockaddr *a)
{
	return a && a->sa_family == AF_INET ? ((const struct sockaddr_in *) a)->sin_addr.s_addr : 0;
}

static ipcount **
ip_slot(uint32_t ip)
{
	ipcount   **p = &ip_table[(ip * 2654435761u) % IP_BUCKETS];

	while (*p && (*p)->ip != ip)
		p = &(*p)->next;
	return p;
}

enum MHD_Result
limits_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	enum MHD_Result ok;
	ipcount    *e;

	(void) cls;
	(void) addrlen;
	pthread_mutex_lock(&limit_lock);
	e = *ip_slot(addr_ip(addr));
	ok = total_conns < cfg.max_connections && (!e || e->n < cfg.max_per_ip) ? MHD_YES : MHD_NO;
	pthread_mutex_unlock(&limit_lock);
	return ok;
}

void
limits_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *ci;
	uint32_t	ip;
	ipcount   **p;
	ipcount    *e;

	(void) cls;
	(void) socket_context;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	ip = addr_ip(ci ? ci->client_addr : NULL);
	pthread_mutex_lock(&limit_lock);
	p = ip_slot(ip);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		total_conns++;
		if (!*p && (*p = calloc(1, sizeof(**p))))
			(*p)->ip = ip;
		if (*p)
			(*p)->n++;
	}
	else
	{
		total_conns--;
		if (*p && --(*p)->n == 0)
		{
			e = *p;
			*p = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&limit_lock);
}

/* ---- requests ----------------------------------------------------------------- */

static enum MHD_Result
add_len(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	size_t	   *n = cls;

	(void) kind;
	*n += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

bool
limits_oversized(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	size_t		target = strlen(r->url);
	size_t		headers = 0;
	char		msg[120];

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_len, &target);
	if (target > MAX_TARGET)
	{
		snprintf(msg, sizeof(msg),
				 "the request target (path and query) is longer than %d bytes", MAX_TARGET);
		*ret = send_error(c, r, 414, "uri_too_long", msg, NULL);
		return true;
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, add_len, &headers);
	if (headers > MAX_HEADERS)
	{
		snprintf(msg, sizeof(msg), "the request headers are larger than %d bytes", MAX_HEADERS);
		*ret = send_error(c, r, 431, "headers_too_large", msg, NULL);
		return true;
	}
	return false;
}

static bool
is_json_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return false;
	ct += 16;
	return *ct == 0 || *ct == ';' || *ct == ' ';
}

enum MHD_Result
limits_too_large(struct MHD_Connection *c, struct request *r)
{
	char		msg[120];

	snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", cfg.max_body);
	return send_error(c, r, 413, "payload_too_large", msg, NULL);
}

bool
limits_post_refused(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	const char *cl;
	long long	len;

	/* the caller first: a body is not worth reading for someone unknown */
	if (caller_needed(r->route) && caller_refused(c, r, ret))
		return true;
	/* the token route reads no body, so any (or none) will do */
	if (r->route != R_TOKEN &&
		!is_json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
												  MHD_HTTP_HEADER_CONTENT_TYPE)))
		*ret = send_error(c, r, 415, "unsupported_media_type",
						  "the request body must be JSON (Content-Type: application/json)", NULL);
	else if ((cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
											   MHD_HTTP_HEADER_CONTENT_LENGTH)) &&
			 parse_int64(cl, 0, LLONG_MAX, &len) == 0 &&
			 (unsigned long long) len > cfg.max_body)
		*ret = limits_too_large(c, r);
	else
		return false;
	return true;
}
