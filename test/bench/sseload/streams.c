/*
 * streams.c: sseload's SSE subscribers: one GET /api/persons/{id}/encounters/stream
 * per person, all on one epoll loop in a thread of their own, cheap per
 * connection (a socket and ~100 bytes; a line buffer only while a line is
 * incomplete), so that thousands of them cost the machine little besides
 * what they cost httpd.
 *
 * Each stream's body is HTTP/1.1 chunked; the chunks are decoded and the
 * SSE lines assembled here.  For an `encounter` event the encounter's
 * ended_at is its latest match, i.e. the creation_time of the point that
 * caused the change (produce.c sets it to the time of producing): the
 * event's latency is the time of its receipt minus that, on the same clock
 * (CLOCK_REALTIME of this process).  This file must not produce.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sseload.h"

enum cstate
{
	C_IDLE,						/* not yet connecting */
	C_CONNECTING,
	C_HEAD,						/* reading the response head */
	C_BODY,
	C_DONE						/* closed or failed */
};

enum chunk
{
	K_SIZE,						/* hex digits */
	K_SIZE_EXT,					/* after ';' up to LF */
	K_DATA,
	K_DATA_CR,					/* the CRLF after a chunk's data */
	K_DATA_LF
};

struct conn
{
	int			fd;
	int			person;
	enum cstate state;
	bool		established;
	enum chunk	k;
	size_t		chunk_left;
	char	   *buf;			/* response head, or the incomplete SSE line */
	size_t		len;
	size_t		cap;
	bool		ev_removed;		/* the event being read is "removed" */
	int64_t		ev_ended_us;	/* ... its encounter's ended_at (0: none) */
	int64_t		max_ended_us;	/* the latest ended_at received */
};

static struct stream_opts opts;
static struct conn *conns;
static int	nconns;
static int	ep = -1;
static int	wake_fd = -1;
static pthread_t tid;
static bool started;
static atomic_bool stopping;
static int	max_inflight;
static int	next_idx;
static int	inflight;
static atomic_int n_established;
static atomic_int n_failed;
static char request_tail[2048];

/* under lk: what the main thread reads */
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static int64_t measure_since = -1;
static FILE *dump;				/* one line per event timed, or NULL */
static int64_t *lat;
static long nlat;
static long caplat;
static long n_removed;
static long n_events;

static void
fail(struct conn *c)
{
	if (c->state == C_DONE)
		return;
	if (!c->established)
		inflight--;
	if (c->fd >= 0)
	{
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_DONE;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	atomic_fetch_add(&n_failed, 1);
}

static void
start_connect(struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) opts.port)};
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int			one = 1;

	inet_pton(AF_INET, opts.host, &sa.sin_addr);
	inflight++;
	c->state = C_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
	{
		fprintf(stderr, "sseload: socket: %s\n", strerror(errno));
		fail(c);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS) ||
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
	{
		fprintf(stderr, "sseload: connect: %s\n", strerror(errno));
		fail(c);
	}
}

static void
send_request(struct conn *c)
{
	char		req[2400];
	int			err = 0;
	socklen_t	el = sizeof(err);
	int			n;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
	{
		fprintf(stderr, "sseload: connect: %s\n", strerror(err ? err : errno));
		fail(c);
		return;
	}
	n = snprintf(req, sizeof(req), "GET /api/persons/%d/encounters/stream HTTP/1.1\r\n%s",
				 c->person, request_tail);
	/* a fresh socket's send buffer takes a request head whole */
	if (send(c->fd, req, (size_t) n, MSG_NOSIGNAL) != n ||
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
	{
		fail(c);
		return;
	}
	c->state = C_HEAD;
}

static int
append(struct conn *c, const char *p, size_t n)
{
	if (c->len + n + 1 > c->cap)
	{
		size_t		ncap = c->cap ? c->cap * 2 : 256;
		char	   *nb;

		while (ncap < c->len + n + 1)
			ncap *= 2;
		nb = realloc(c->buf, ncap);
		if (!nb)
			return -1;
		c->buf = nb;
		c->cap = ncap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = 0;
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" after `key` in s, as unix microseconds; 0 if absent */
static int64_t
json_time(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	struct tm	tm;
	int64_t		us = 0;
	int			scale = 100000;

	if (!p || !(p = strchr(p + strlen(key), '"')))
		return 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(p + 1, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	p += 20;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			us += (*p - '0') * scale;
	return (int64_t) timegm(&tm) * 1000000 + us;
}

/* One complete event (its blank line came) received at now_us. */
static void
dispatch(struct conn *c, int64_t now_us)
{
	pthread_mutex_lock(&lk);
	if (c->ev_removed)
		n_removed++;
	else if (c->ev_ended_us > 0)
	{
		n_events++;
		if (c->ev_ended_us > c->max_ended_us)
			c->max_ended_us = c->ev_ended_us;
		if (measure_since >= 0 && c->ev_ended_us >= measure_since)
		{
			if (nlat == caplat)
			{
				caplat = caplat ? caplat * 2 : 4096;
				lat = realloc(lat, (size_t) caplat * sizeof(*lat));
				if (!lat)
					abort();
			}
			lat[nlat++] = now_us - c->ev_ended_us;
			if (dump)
				fprintf(dump, "%d\t%lld\t%lld\n", c->person, (long long) c->ev_ended_us,
						(long long) now_us);
		}
	}
	pthread_mutex_unlock(&lk);
	c->ev_removed = false;
	c->ev_ended_us = 0;
}

static void
sse_line(struct conn *c, const char *line, int64_t now_us)
{
	if (!c->established)
	{
		/* the first line of the body (the retry: preamble): subscribed */
		c->established = true;
		inflight--;
		atomic_fetch_add(&n_established, 1);
	}
	if (line[0] == 0)
		dispatch(c, now_us);
	else if (strncmp(line, "event:", 6) == 0)
		c->ev_removed = strstr(line, "removed") != NULL;
	else if (strncmp(line, "data:", 5) == 0)
		c->ev_ended_us = json_time(line, "\"ended_at\"");
}

/* Decoded body bytes: SSE lines. */
static int
sse_feed(struct conn *c, const char *p, size_t n, int64_t now_us)
{
	while (n > 0)
	{
		const char *nl = memchr(p, '\n', n);
		size_t		take = nl ? (size_t) (nl - p) : n;

		if (!nl)
			return append(c, p, n);
		if (c->len)
		{
			if (append(c, p, take) < 0)
				return -1;
			if (c->len && c->buf[c->len - 1] == '\r')
				c->buf[--c->len] = 0;
			sse_line(c, c->buf, now_us);
			c->len = 0;
		}
		else
		{
			char		small[4096];
			char	   *line = take < sizeof(small) ? small : malloc(take + 1);

			if (!line)
				return -1;
			memcpy(line, p, take);
			line[take] = 0;
			if (take && line[take - 1] == '\r')
				line[take - 1] = 0;
			sse_line(c, line, now_us);
			if (line != small)
				free(line);
		}
		p += take + 1;
		n -= take + 1;
	}
	if (c->len == 0 && c->buf)
	{
		free(c->buf);			/* an idle stream holds no buffer */
		c->buf = NULL;
		c->cap = 0;
	}
	return 0;
}

/* Chunked transfer decoding; -1 at the end of the body or on nonsense. */
static int
body_feed(struct conn *c, const char *p, size_t n, int64_t now_us)
{
	while (n > 0)
	{
		switch (c->k)
		{
			case K_SIZE:
			case K_SIZE_EXT:
				if (*p == '\n')
				{
					if (c->chunk_left == 0)
						return -1;	/* the last chunk: the stream ended */
					c->k = K_DATA;
				}
				else if (c->k == K_SIZE && *p != '\r')
				{
					int			d = (*p >= '0' && *p <= '9') ? *p - '0'
						: (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
						: (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10 : -1;

					if (d < 0)
						c->k = K_SIZE_EXT;
					else
						c->chunk_left = c->chunk_left * 16 + (size_t) d;
				}
				p++;
				n--;
				break;
			case K_DATA:
				{
					size_t		take = n < c->chunk_left ? n : c->chunk_left;

					if (sse_feed(c, p, take, now_us) < 0)
						return -1;
					p += take;
					n -= take;
					c->chunk_left -= take;
					if (c->chunk_left == 0)
						c->k = K_DATA_CR;
				}
				break;
			case K_DATA_CR:
			case K_DATA_LF:
				if (*p == '\n')
					c->k = K_SIZE;
				p++;
				n--;
				break;
		}
	}
	return 0;
}

/* The response head, then the body. */
static void
on_read(struct conn *c)
{
	char		b[16384];
	ssize_t		r;

	while ((r = recv(c->fd, b, sizeof(b), 0)) > 0)
	{
		int64_t		now_us = cli_clock_us(CLOCK_REALTIME);
		const char *p = b;
		size_t		n = (size_t) r;

		if (c->state == C_HEAD)
		{
			char	   *end;
			size_t		body;

			if (append(c, b, n) < 0)
			{
				fail(c);
				return;
			}
			end = strstr(c->buf, "\r\n\r\n");
			if (!end)
			{
				if (c->len > 8192)
				{
					fail(c);
					return;
				}
				continue;
			}
			if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0)
			{
				fprintf(stderr, "sseload: person %d: %.*s\n", c->person,
						(int) strcspn(c->buf, "\r\n"), c->buf);
				fail(c);
				return;
			}
			body = c->len - (size_t) (end + 4 - c->buf);
			p = b + n - body;
			n = body;
			free(c->buf);
			c->buf = NULL;
			c->len = c->cap = 0;
			c->state = C_BODY;
			c->k = K_SIZE;
			c->chunk_left = 0;
		}
		if (n && body_feed(c, p, n, now_us) < 0)
		{
			fail(c);
			return;
		}
	}
	if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		fail(c);
}

static void *
loop(void *arg)
{
	struct epoll_event evs[256];

	(void) arg;
	while (!atomic_load(&stopping))
	{
		int			n;

		while (next_idx < nconns && inflight < max_inflight)
			start_connect(&conns[next_idx++]);
		n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++)
		{
			struct conn *c = evs[i].data.ptr;

			if (!c)
				continue;		/* wake_fd: streams_close() */
			if (c->state == C_CONNECTING)
				send_request(c);
			else if (c->state == C_HEAD || c->state == C_BODY)
				on_read(c);
		}
	}
	return NULL;
}

int
streams_open(const struct stream_opts *o, int inflight_max, double timeout_s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	double		t0 = cli_clock_s(CLOCK_MONOTONIC);

	opts = *o;
	nconns = o->person_hi - o->person_lo + 1;
	max_inflight = inflight_max;
	conns = calloc((size_t) nconns, sizeof(*conns));
	if (!conns)
		return -1;
	for (int i = 0; i < nconns; i++)
	{
		conns[i].fd = -1;
		conns[i].person = o->person_lo + i;
	}
	snprintf(request_tail, sizeof(request_tail),
			 "Host: %s:%d\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
			 o->host, o->port, o->token ? "Authorization: Bearer " : "",
			 o->token ? o->token : "", o->token ? "\r\n" : "");
	ep = epoll_create1(EPOLL_CLOEXEC);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ep < 0 || wake_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev) < 0 ||
		pthread_create(&tid, NULL, loop, NULL) != 0)
		return -1;
	started = true;
	while (atomic_load(&n_established) + atomic_load(&n_failed) < nconns &&
		   cli_clock_s(CLOCK_MONOTONIC) - t0 < timeout_s)
		usleep(20000);
	return atomic_load(&n_established);
}

int
streams_established(void)
{
	return atomic_load(&n_established);
}

int
streams_failed(void)
{
	return atomic_load(&n_failed);
}

void
streams_measure(int64_t since_us, FILE *dump_to)
{
	pthread_mutex_lock(&lk);
	measure_since = since_us;
	dump = dump_to;
	nlat = 0;
	n_removed = n_events = 0;
	pthread_mutex_unlock(&lk);
}

int
streams_wait_for(const int64_t *want_us, double timeout_s)
{
	double		t0 = cli_clock_s(CLOCK_MONOTONIC);
	int			short_of;

	for (;;)
	{
		short_of = 0;
		pthread_mutex_lock(&lk);
		for (int i = 0; i < nconns; i++)
			if (want_us[i] > 0 && conns[i].max_ended_us < want_us[i])
				short_of++;
		pthread_mutex_unlock(&lk);
		if (short_of == 0 || cli_clock_s(CLOCK_MONOTONIC) - t0 >= timeout_s)
			return short_of;
		usleep(50000);
	}
}

static int
cmp64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

const int64_t *
streams_latencies(long *n)
{
	pthread_mutex_lock(&lk);
	qsort(lat, (size_t) nlat, sizeof(*lat), cmp64);
	*n = nlat;
	pthread_mutex_unlock(&lk);
	return lat;
}

long
streams_removed(void)
{
	long		n;

	pthread_mutex_lock(&lk);
	n = n_removed;
	pthread_mutex_unlock(&lk);
	return n;
}

long
streams_events(void)
{
	long		n;

	pthread_mutex_lock(&lk);
	n = n_events;
	pthread_mutex_unlock(&lk);
	return n;
}

void
streams_close(void)
{
	uint64_t	one = 1;

	if (!started)
		return;
	atomic_store(&stopping, true);
	if (write(wake_fd, &one, sizeof(one)) < 0)
		perror("sseload: eventfd");
	pthread_join(tid, NULL);
	started = false;
	for (int i = 0; i < nconns; i++)
	{
		if (conns[i].fd >= 0)
			close(conns[i].fd);
		free(conns[i].buf);
	}
	free(conns);
	conns = NULL;
	close(ep);
	close(wake_fd);
}
