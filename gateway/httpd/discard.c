/*
 * discard.c: reading and throwing away the body of a refused request, a
 * "lingering close" as nginx does it (udaconnect-httpd).
 *
 * When the answer to a request is known before its body has been read (413
 * from Content-Length, 401, 415, ...), libmicrohttpd 0.9.75 lets it be queued
 * at once, but it then reads no more of the body and closes the socket after
 * the answer.  Body bytes still unread in the kernel make that close a TCP
 * reset, and a client that sends its whole body before reading (Python's
 * http.client and requests, most HTTP/1.1 libraries) sees ECONNRESET or
 * EPIPE instead of the answer.  The answer cannot be queued later while the
 * body is still arriving either: MHD accepts a response only on the first
 * call (headers) or the final one (whole request received).  So queue()
 * (response.c) holds such an answer, request.c lets the body arrive and
 * throws it away, and the answer is queued on the final call, with
 * "Connection: close".
 *
 * This file decides whether a request's body is read that way, and bounds
 * it: at most cfg.max_discard bytes of body in all and DISCARD_SECONDS from
 * the request's start.  Past either bound the connection is closed without
 * an answer (the handler returns MHD_NO): a client sending gigabytes holds a
 * connection for a bounded time, never a thread (the worker's event loop
 * serves its other connections meanwhile), and no discarded byte is stored.
 * It must not build or queue answers (request.c and response.c do).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "httpd.h"

/* How long a refused body may take to arrive (nginx's lingering_time). */
#define DISCARD_SECONDS 30

/* The declared Content-Length, or -1 when there is none or it is not a
 * plain decimal number (MHD refuses those itself before calling us). */
static long long
declared_length(struct MHD_Connection *c)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
												 MHD_HTTP_HEADER_CONTENT_LENGTH);
	long long	v;

	return cl && parse_int64(cl, 0, LLONG_MAX, &v) == 0 ? v : -1;
}

enum body_plan
body_plan(struct MHD_Connection *c)
{
	bool		chunked = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
													  MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	long long	len = chunked ? -1 : declared_length(c);
	const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

	if (!chunked && len <= 0)
		return BODY_NONE;
	if (cfg.max_discard == 0)
		return BODY_ANSWER_NOW; /* configured off: answer at once, as MHD does */

	/*
	 * The client waits for our answer before it sends the body (curl does
	 * for bodies over 1 MiB): answering now saves it the upload.  Reading on
	 * would make MHD send "100 Continue" and ask for the whole body.
	 */
	if (expect && strcasecmp(expect, "100-continue") == 0)
		return BODY_ANSWER_NOW;
	if (len > 0 && (unsigned long long) len > cfg.max_discard)
		return BODY_ANSWER_NOW; /* too much to read: answer and close */
	return BODY_DISCARD;
}

int
discard_more(const struct timespec *t0, uint64_t seen)
{
	struct timespec now;

	if (seen > cfg.max_discard)
	{
		logmsg(LOG_INFO, "a refused request body passed %zu bytes; "
			   "closing its connection without an answer", cfg.max_discard);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - t0->tv_sec > DISCARD_SECONDS)
	{
		logmsg(LOG_INFO, "a refused request body took over %d s; "
			   "closing its connection without an answer", DISCARD_SECONDS);
		return -1;
	}
	return 0;
}
