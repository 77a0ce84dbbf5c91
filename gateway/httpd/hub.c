/*
 * hub.c: the subscribers of the live encounter streams of udaconnect-httpd
 * (GET /api/persons/{id}/encounters/stream) and the text each has yet to
 * be sent.
 *
 * Subscribers are grouped by the person they watch, so that one fetch of
 * that person's changes (listen.c) serves all of them.  Each holds its
 * position, the (version, id) of the last event queued for it, and a queue
 * of event text bounded by cfg.stream_queue: an event that does not fit is
 * not queued, the subscriber is "full" and takes nothing more until its
 * queue has gone out, then catches up from its position like a new one.  So
 * its memory never grows past the bound whatever the rate of changes, and a
 * client that stops reading altogether is closed by libmicrohttpd's
 * connection timeout (no write goes through).
 *
 * libmicrohttpd sends the queue through hub_read(), the content reader of
 * the stream's response, in the worker thread that owns the connection:
 * with nothing queued it suspends the connection, and the stream thread
 * resumes it when it queues something, and wakes that worker (in the
 * workers' polling mode a resume alone does not).  A suspended connection is not
 * processed, so it cannot go away while the stream thread holds it
 * suspended here; the subscriber is freed with its response (hub_free).
 * One mutex guards everything here; libmicrohttpd is called under it only
 * to suspend or resume, which take its own connection lock after ours.
 * When a stream goes idle, hub_read also gives the whole pages of the
 * buffer libmicrohttpd lent it back to the kernel (release_pages): most
 * of an idle stream's memory would otherwise be zeros.
 * Which fetch a person needs and whom its rows go to is hub_live.c's,
 * which is above this file (and adds the subscribers, hub_add).
 * This file neither talks to the database nor decides who may watch whom
 * (sse.c asks the database before a subscriber is added).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hub_int.h"

#define HEARTBEAT ": heartbeat\n\n"
/*
 * the last text of the stream of an erased person: an event without an id
 * (the client's Last-Event-ID stays the last change it had), then the end
 */
#define ERASED_EVENT "event: erased\ndata: {\"person_id\": %d}\n\n"
/*
 * the first text of every stream: the client's reconnection delay (ms), and
 * the position the stream starts after as an event id without data, which
 * sets a client's Last-Event-ID without dispatching an event: a client that
 * reconnects before any event came resumes from there, missing nothing
 */
#define PREAMBLE "retry: 3000\nid: %lld.%lld\n\n"

pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static group *table[HUB_BUCKETS];
static bool closing;			/* hub_end_all ran: no new streams */
static group *pend_head;
static group *pend_tail;
static unsigned nsubs;
static int	wake_fd = -1;
static uintptr_t page_size = 4096;

int
hub_init(void)
{
	long		ps = sysconf(_SC_PAGESIZE);

	if (ps > 0)
		page_size = (uintptr_t) ps;
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0)
	{
		logmsg(LOG_FATAL, "eventfd: %m");
		return -1;
	}
	return 0;
}

int
hub_wake_fd(void)
{
	return wake_fd;
}

static void
wake(void)
{
	uint64_t	one = 1;

	if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		logmsg(LOG_WARNING, "eventfd: %m");
}

group *
hub_groups(int bucket)
{
	return table[bucket];
}

group **
hub_slot(int32_t person)
{
	group	  **p = &table[((uint32_t) person * 2654435761u) % HUB_BUCKETS];

	while (*p && (*p)->person != person)
		p = &(*p)->hnext;
	return p;
}

/* Queues g for a fetch (the stream thread is woken for the first). */
void
hub_pend(group *g)
{
	if (g->pending)
		return;
	g->pending = true;
	g->pnext = NULL;
	if (pend_tail)
		pend_tail->pnext = g;
	else
	{
		/* the stream thread takes the whole list once woken */
		pend_head = g;
		wake();
	}
	pend_tail = g;
}

/* The first group of the pending list, taken off it; NULL when empty. */
group *
hub_pop(void)
{
	group	   *g = pend_head;

	if (g)
	{
		pend_head = g->pnext;
		if (!pend_head)
			pend_tail = NULL;
		g->pending = false;
	}
	return g;
}

/* Frees g once nothing refers to it: no subscriber, not queued, no fetch. */
void
hub_group_release(group *g)
{
	group	  **p;

	if (g->nsubs || g->pending || g->in_flight || g->chain.named)
		return;
	p = hub_slot(g->person);
	*p = g->hnext;
	encn_chain_free(&g->chain);
	free(g);
}

void
hub_resume(struct sub *s)
{
	if (s->suspended)
	{
		s->suspended = false;
		MHD_resume_connection(s->conn);
		workers_wake(s->daemon);
	}
}

/*
 * Appends n bytes of text to s's queue: 0, or -1 when they do not fit the
 * bound (an empty queue takes any one event; `last`, the stream's last
 * event, goes past it) or memory is short.
 */
static int
append_text(struct sub *s, const char *text, size_t n, bool last)
{
	size_t		ncap;
	char	   *nq;

	if (s->len && s->len + n > cfg.stream_queue && !last)
		return -1;
	if (s->off + s->len + n > s->cap)
	{
		if (s->off)
		{
			memmove(s->q, s->q + s->off, s->len);
			s->off = 0;
		}
		if (s->len + n > s->cap)
		{
			ncap = s->cap ? 2 * s->cap : 1024;
			while (ncap < s->len + n)
				ncap *= 2;
			if (ncap > cfg.stream_queue && s->len + n <= cfg.stream_queue)
				ncap = cfg.stream_queue;
			else if (ncap > cfg.stream_queue && last)
				ncap = s->len + n;	/* past the bound by the last event only */
			nq = realloc(s->q, ncap);
			if (!nq)
				return -1;
			s->q = nq;
			s->cap = ncap;
		}
	}
	memcpy(s->q + s->off + s->len, text, n);
	s->len += n;
	return 0;
}

static int
append(struct sub *s, const char *text, size_t n)
{
	return append_text(s, text, n, false);
}

/*
 * A new subscriber, with hub_lock held: its group made if it is the
 * person's first (*new_group set), the preamble queued; neither live nor
 * wanting a read yet (hub_live.c decides).  NULL when cfg.stream_max are
 * subscribed already or the hub is closing (*at_cap set), or out of memory.
 */
struct sub *
hub_sub_create(struct MHD_Connection *c, int32_t person, int64_t version, int64_t id,
			   int64_t expires, bool *at_cap, bool *new_group)
{
	struct sub *s;
	group	  **p;
	group	   *g;
	const union MHD_ConnectionInfo *ci;
	char		pre[80];

	*at_cap = false;
	*new_group = false;
	/* shutting down: no thread would be left to resume a new stream */
	if (nsubs >= cfg.stream_max || closing)
	{
		*at_cap = true;
		return NULL;
	}
	p = hub_slot(person);
	if (!*p && (*p = calloc(1, sizeof(group))))
	{
		(*p)->person = person;
		*new_group = true;
	}
	g = *p;
	s = g ? calloc(1, sizeof(*s)) : NULL;
	snprintf(pre, sizeof(pre), PREAMBLE, (long long) version, (long long) id);
	if (!s || append(s, pre, strlen(pre)) < 0)
	{
		free(s);
		if (g)
			hub_group_release(g);
		return NULL;
	}
	s->g = g;
	s->conn = c;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
	s->daemon = ci ? ci->daemon : NULL;
	s->version = version;
	s->id = id;
	s->expires = expires;
	/* libmicrohttpd zeroed half its pool for the response (release_pages) */
	s->touched = true;
	s->next = g->subs;
	if (g->subs)
		g->subs->prev = s;
	g->subs = s;
	g->nsubs++;
	nsubs++;
	metrics_streams(+1);
	return s;
}

/*
 * The person s watches was erased: its last event, "erased", goes after
 * what is queued, then the stream ends.  (Out of memory, it ends without.)
 */
void
hub_sub_erased(struct sub *s)
{
	char		text[sizeof(ERASED_EVENT) + 16];
	int			n;

	if (s->ended)
		return;
	n = snprintf(text, sizeof(text), ERASED_EVENT, (int) s->g->person);
	if (append_text(s, text, (size_t) n, true) < 0)
		logmsg(LOG_WARNING, "encounter streams: out of memory for the last event of a stream of "
			   "person %d (erased); it ends without", (int) s->g->person);
	s->ended = true;
	s->live = false;
	s->want = false;
	hub_resume(s);
}

/*
 * Gives the whole pages of buf[0 .. max) back to the kernel.  buf is the
 * content reader's buffer: libmicrohttpd lends it to hub_read to write up
 * to max bytes into, and sends only what hub_read says it wrote.  It is
 * the free part of the connection's memory pool (--connection-memory),
 * which libmicrohttpd 0.9.75 zeroes where the request was read, about
 * half of it, when the response starts: resident zeros that would be most
 * of an idle stream's memory.  For the pool's private anonymous memory,
 * MADV_DONTNEED is the same as writing zeros (the pages come back zeroed
 * when touched), which hub_read may do to its buffer, so libmicrohttpd
 * sees no difference.  Pages only partly in the buffer are left alone:
 * they may hold the request, or other allocations.
 */
static void
release_pages(char *buf, size_t max)
{
	uintptr_t	lo = ((uintptr_t) buf + page_size - 1) & ~(page_size - 1);
	uintptr_t	hi = ((uintptr_t) buf + max) & ~(page_size - 1);

	if (hi > lo)
		(void) madvise((void *) lo, hi - lo, MADV_DONTNEED);
}

ssize_t
hub_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sub *s = cls;
	size_t		n;
	bool		release;

	(void) pos;
	if (max == 0)
		return 0;
	pthread_mutex_lock(&hub_lock);
	if (s->len == 0)
	{
		if (s->ended)
		{
			pthread_mutex_unlock(&hub_lock);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		/* nothing to send: off libmicrohttpd's loop until resume() */
		s->suspended = true;
		MHD_suspend_connection(s->conn);
		release = s->touched;
		s->touched = false;
		pthread_mutex_unlock(&hub_lock);
		/* the connection is ours until this returns: no one writes buf */
		if (release)
			release_pages(buf, max);
		return 0;
	}
	n = s->len < max ? s->len : max;
	memcpy(buf, s->q + s->off, n);
	/* the chunk and its CRLF reach past buf's first page boundary */
	if (((uintptr_t) buf & (page_size - 1)) + n + 2 > page_size)
		s->touched = true;
	s->off += n;
	s->len -= n;
	if (s->len == 0)
	{
		/* an idle stream holds no buffer */
		free(s->q);
		s->q = NULL;
		s->off = s->cap = 0;
		if (s->full && !s->ended)
		{
			s->full = false;
			s->want = true;
			hub_pend(s->g);
		}
	}
	pthread_mutex_unlock(&hub_lock);
	return (ssize_t) n;
}

void
hub_free(void *cls)
{
	struct sub *s = cls;
	group	   *g = s->g;

	pthread_mutex_lock(&hub_lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		g->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	g->nsubs--;
	nsubs--;
	metrics_streams(-1);
	free(s->q);
	free(s);
	hub_group_release(g);
	pthread_mutex_unlock(&hub_lock);
}

/* The SSE text of a change: id, event, data (one line: the JSON's own line
 * breaks are blanks to it); malloc'd, or NULL. */
static char *
event_text(const struct hub_change *c, size_t *len)
{
	size_t		cap = c->body_len + 96;
	char	   *t = malloc(cap);
	int			n;

	if (!t)
		return NULL;
	n = snprintf(t, cap, "id: %lld.%lld\nevent: %s\ndata: ",
				 (long long) c->version, (long long) c->id, c->kind);
	for (size_t i = 0; i < c->body_len; i++)
		t[n++] = c->body[i] == '\n' || c->body[i] == '\r' ? ' ' : c->body[i];
	t[n++] = '\n';
	t[n++] = '\n';
	*len = (size_t) n;
	return t;
}

/* Queues to s the rows after its position that fit; false when one did not. */
bool
hub_feed(struct sub *s, const struct hub_change *rows, char **text, size_t *tlen, int n)
{
	bool		queued = false;

	for (int i = 0; i < n; i++)
	{
		if (rows[i].version < s->version ||
			(rows[i].version == s->version && rows[i].id <= s->id))
			continue;
		if (!text[i] && !(text[i] = event_text(&rows[i], &tlen[i])))
			return false;
		if (append(s, text[i], tlen[i]) < 0)
		{
			s->full = true;
			break;
		}
		s->version = rows[i].version;
		s->id = rows[i].id;
		queued = true;
	}
	if (queued)
		hub_resume(s);
	return !s->full;
}

void
hub_tick(int64_t now)
{
	pthread_mutex_lock(&hub_lock);
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (group *g = table[b]; g; g = g->hnext)
			for (struct sub *s = g->subs; s; s = s->next)
			{
				/* the token it was opened with expired: the client must
				 * come back with a valid one */
				if (s->expires && now >= s->expires)
					s->ended = true;
				else if (s->len == 0 && !s->ended)
					append(s, HEARTBEAT, strlen(HEARTBEAT));
				hub_resume(s);
			}
	pthread_mutex_unlock(&hub_lock);
}

void
hub_end_all(void)
{
	pthread_mutex_lock(&hub_lock);
	closing = true;
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (group *g = table[b]; g; g = g->hnext)
			for (struct sub *s = g->subs; s; s = s->next)
			{
				s->ended = true;
				hub_resume(s);
			}
	pthread_mutex_unlock(&hub_lock);
}
