/*
 * request.c: the life of one request in libmicrohttpd (udaconnect-httpd).
 *
 * libmicrohttpd calls request_handler() several times per request: first
 * with the headers only, then once per piece of body, then a final time
 * (and again after a statement's result resumed the connection).  This file
 * keeps the per-request record across those calls: it makes it and routes
 * it on the first call, checks what can be checked before the body (limits.c)
 * and plans what happens to a body it will not use (discard.c), collects the
 * body of a POST up to the cap, answers on the final call through the router,
 * and frees the record and counts the request when libmicrohttpd is done
 * with it.  It must not answer a route itself nor know any route's
 * parameters.
 */
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

/* The record of a new request, or NULL when out of memory. */
static struct request *
request_new(struct MHD_Connection *c, const char *url)
{
	struct request *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	r->pipe.conn = c;
	r->url = strdup(url);
	if (!r->url)
	{
		free(r);
		return NULL;
	}
	return r;
}

/*
 * The first call of a request: headers only.  An answer queued here while
 * r->hold is set waits for the body (see queue() and discard.c).
 */
static enum MHD_Result
headers_in(struct MHD_Connection *c, struct request *r, const char *method,
		   enum body_plan plan)
{
	enum MHD_Result ret;

	if (limits_oversized(c, r, &ret))
		return ret;
	r->is_post = strcmp(method, "POST") == 0 && r->allow && strstr(r->allow, "POST");
	r->is_delete = strcmp(method, "DELETE") == 0 && r->allow && strstr(r->allow, "DELETE");
	if (!r->is_post)
	{
		/*
		 * Answered on the final call, which keeps the connection alive; a body
		 * we do not need is thrown away first, or, when we will not read it
		 * (see body_plan()), the request is answered now and the connection
		 * closed.
		 */
		if (plan == BODY_ANSWER_NOW)
			return dispatch(c, r, method);
		r->discarding = plan == BODY_DISCARD;
		return MHD_YES;
	}
	/* POST: check everything we can before reading the body */
	if (limits_post_refused(c, r, &ret))
		return ret;
	return MHD_YES;
}

static enum MHD_Result
first_call(struct MHD_Connection *c, const char *url, const char *method, void **con_cls)
{
	struct request *r = request_new(c, url);
	enum body_plan plan;
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	*con_cls = r;
	r->allow = route(r);
	plan = body_plan(c);
	r->hold = plan == BODY_DISCARD;
	ret = headers_in(c, r, method, plan);
	r->hold = false;
	return ret;
}

/* A piece of body (chunked bodies have no Content-Length to check early). */
static enum MHD_Result
body_in(struct request *r, const char *data, size_t n)
{
	char	   *nb;

	r->body_seen += n;
	if (!r->discarding && r->body_len + n > cfg.max_body)
	{
		r->body_too_big = true;
		r->discarding = true;
		r->status = 413;		/* for the metrics, should the bound be passed */
		free(r->body);
		r->body = NULL;
		r->body_len = 0;
	}
	if (r->discarding)
		return discard_more(&r->t0, r->body_seen) == 0 ? MHD_YES : MHD_NO;
	nb = realloc(r->body, r->body_len + n + 1);
	if (!nb)
		return MHD_NO;
	memcpy(nb + r->body_len, data, n);
	r->body = nb;
	r->body_len += n;
	r->body[r->body_len] = 0;
	return MHD_YES;
}

/* The whole request is in: answer it. */
static enum MHD_Result
final_call(struct MHD_Connection *c, struct request *r, const char *method)
{
	struct MHD_Response *resp;

	if (r->held)
	{
		/* the answer decided on the first call, now that the body is read */
		resp = r->held;
		r->held = NULL;
		return queue(c, r, r->status, resp);
	}
	r->may_suspend = true;
	if (!r->is_post)
	{
		r->may_async = !r->pipe.done;	/* not again after a result came */
		return dispatch(c, r, method);
	}
	if (r->body_too_big)
		return limits_too_large(c, r);
	return dispatch_post(c, r);
}

enum MHD_Result
request_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				const char *version, const char *upload_data, size_t *upload_data_size,
				void **con_cls)
{
	struct request *r = *con_cls;
	size_t		n;

	(void) cls;
	(void) version;
	if (!r)
		return first_call(c, url, method, con_cls);
	if (*upload_data_size)
	{
		n = *upload_data_size;
		*upload_data_size = 0;
		return body_in(r, upload_data, n);
	}
	return final_call(c, r, method);
}

void
request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;
	struct timespec t1;

	(void) cls;
	(void) c;
	(void) toe;
	if (!r)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_request(r->route, r->status,
					(t1.tv_sec - r->t0.tv_sec) + (t1.tv_nsec - r->t0.tv_nsec) / 1e9);
	pipe_release(&r->pipe);
	db_job_release(r);
	if (r->held)
		MHD_destroy_response(r->held);
	free(r->body);
	free(r->url);
	free(r);
	*con_cls = NULL;
}
