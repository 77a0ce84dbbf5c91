/*
 * encnotify.c — the payloads of NOTIFY udaconnect_encounter and
 * udaconnect_person_erased, the tracker of the versions a connection
 * heard, and a watched person's chain of live fetches (encnotify.h; why it
 * is gap-free: docs/encounters.md, "Live").
 * It must not allocate anything but a chain's ids, nor keep state of its
 * own: everything is in the caller's structs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encnotify.h"

/* A decimal integer in [lo, hi] at *s, moved past; false when there is none. */
static bool
number(const char **s, long long lo, long long hi, long long *out)
{
	char	   *end;

	if (**s < '0' || **s > '9')
		return false;
	errno = 0;
	*out = strtoll(*s, &end, 10);
	if (errno != 0 || *out < lo || *out > hi)
		return false;
	*s = end;
	return true;
}

/* One entry at *s ("[-]<id>.<a>.<b>"), moved past it. */
static bool
entry(const char **s, encn_entry *e)
{
	long long	id,
				a,
				b;

	e->removed = **s == '-';
	if (e->removed)
		(*s)++;
	if (!number(s, 1, INT64_MAX, &id) || *(*s)++ != '.' ||
		!number(s, 0, INT32_MAX, &a) || *(*s)++ != '.' ||
		!number(s, 0, INT32_MAX, &b))
		return false;
	e->id = id;
	e->a = (int32_t) a;
	e->b = (int32_t) b;
	return true;
}

bool
encn_parse(const char *payload, encn_payload *p)
{
	const char *s = payload;
	long long	v,
				part,
				parts;
	encn_entry	e;

	if (*s++ != 'v' || !number(&s, 1, INT64_MAX, &v) || *s++ != '.' ||
		!number(&s, 1, 1000000000, &part) || *s++ != '/' ||
		!number(&s, part, 1000000000, &parts) || *s++ != ':')
		return false;
	p->version = v;
	p->part = (int) part;
	p->parts = (int) parts;
	p->entries = s;
	while (*s)
	{
		if (!entry(&s, &e) || (*s != ',' && *s != '\0') || (*s == ',' && s[1] == '\0'))
			return false;
		if (*s == ',')
			s++;
	}
	return true;
}

bool
encn_parse_erased(const char *payload, int32_t *person)
{
	const char *s = payload;
	long long	id;

	if (!number(&s, 1, INT32_MAX, &id) || *s != '\0')
		return false;
	*person = (int32_t) id;
	return true;
}

void
encn_each(const encn_payload *p, void (*fn) (const encn_entry *e, void *arg), void *arg)
{
	const char *s = p->entries;
	encn_entry	e;

	while (*s && entry(&s, &e))
	{
		fn(&e, arg);
		if (*s == ',')
			s++;
	}
}

void
encn_tracker_reset(encn_tracker *t)
{
	t->epoch++;
	t->base = -1;
	t->known = -1;
	t->cur = 0;
	t->next_part = 0;
	t->parts = 0;
}

int64_t
encn_heard(const encn_tracker *t)
{
	return t->cur != 0 && t->cur > t->known ? t->cur : t->known;
}

/*
 * The first payload of an epoch.  Every version before it committed before
 * it, so was announced before it: before the epoch began, hence read by the
 * scans that follow.  A version caught in part is read by them as a whole
 * (its first part came before the epoch: it committed before).
 */
static enum encn_verdict
first_of_epoch(encn_tracker *t, const encn_payload *p, enum encn_verdict apply)
{
	if (p->part != 1)
	{
		t->base = t->known = p->version;
		return apply == ENCN_APPLY ? ENCN_SKIP : ENCN_RESYNC;
	}
	t->base = p->version - 1;
	t->known = p->version - 1;
	if (p->parts == 1)
		t->known = p->version;
	else
	{
		t->cur = p->version;
		t->next_part = 2;
		t->parts = p->parts;
	}
	return apply;
}

enum encn_verdict
encn_track(encn_tracker *t, const char *payload, encn_payload *p)
{
	if (!encn_parse(payload, p))
	{
		encn_tracker_reset(t);
		return ENCN_RESYNC;
	}
	if (t->cur != 0)
	{
		/* the next part of the version being heard, or a gap */
		if (p->version == t->cur && p->part == t->next_part && p->parts == t->parts)
		{
			if (++t->next_part > t->parts)
			{
				t->known = t->cur;
				t->cur = 0;
			}
			return ENCN_APPLY;
		}
	}
	else if (t->known < 0)
		return first_of_epoch(t, p, ENCN_APPLY);
	else if (p->version <= t->known)
		return ENCN_SKIP;		/* announced before the epoch's scans */
	else if (p->version == t->known + 1 && p->part == 1)
	{
		if (p->parts == 1)
			t->known = p->version;
		else
		{
			t->cur = p->version;
			t->next_part = 2;
			t->parts = p->parts;
		}
		return ENCN_APPLY;
	}
	/* a version or a part not heard: what it held is not known */
	encn_tracker_reset(t);
	return first_of_epoch(t, p, ENCN_RESYNC_APPLY);
}

void
encn_chain_reset(encn_chain *c, int64_t heard)
{
	c->lv = heard;
	c->seen = heard;
	c->hi = 0;
	c->nids = 0;
	/* a fetch still out is delivered, to streams that joined after this */
}

void
encn_chain_free(encn_chain *c)
{
	free(c->ids);
	c->ids = NULL;
	c->nids = c->cap = 0;
}

bool
encn_chain_note(encn_chain *c, int64_t version, int64_t id)
{
	if (version <= c->lv)
		return true;			/* read by version by whoever joins */
	if (c->hi == 0)
	{
		/* nothing announced for the person between lv and this version */
		c->lv = version - 1;
		c->nids = 0;
	}
	c->hi = version;
	if (id == 0)
		return true;
	for (int i = 0; i < c->nids; i++)
		if (c->ids[i] == id)
			return true;
	if (c->nids == c->cap)
	{
		int			ncap = c->cap ? 2 * c->cap : 8;
		int64_t    *n;

		if (ncap > ENCN_CHAIN_MAX_IDS || !(n = realloc(c->ids, sizeof(int64_t) * ncap)))
			return false;
		c->ids = n;
		c->cap = ncap;
	}
	c->ids[c->nids++] = id;
	return true;
}

bool
encn_chain_ready(const encn_chain *c, const encn_tracker *t)
{
	return c->hi > 0 && c->hi <= t->known && c->busy_to == 0;
}

void
encn_chain_take(encn_chain *c, int64_t *from, int64_t *to, const int64_t **ids, int *nids)
{
	*from = c->lv;
	*to = c->hi;
	*ids = c->ids;
	*nids = c->nids;
	c->busy_to = c->hi;
	c->lv = c->hi;
	c->hi = 0;
	c->nids = 0;
}

void
encn_chain_done(encn_chain *c)
{
	if (c->busy_to > c->seen)
		c->seen = c->busy_to;
	c->busy_to = 0;
	/* a burst's buffer is not kept for the stream's whole life */
	if (c->nids == 0 && c->cap > 64)
		encn_chain_free(c);
}

void
encn_chain_skip(encn_chain *c)
{
	if (c->hi > c->seen)
		c->seen = c->hi;
	c->lv = c->hi > c->lv ? c->hi : c->lv;
	c->hi = 0;
	c->nids = 0;
}

bool
encn_chain_may_join(const encn_chain *c, const encn_tracker *t, uint64_t epoch, int64_t k)
{
	return epoch == t->epoch && k >= c->seen;
}

/* The entry for one of the persons it names. */
static void
note_person(const encn_noter *n, int32_t person, const encn_entry *e)
{
	encn_chain *c = n->chain(person);

	if (c == NULL)
		return;
	if (!encn_chain_note(c, n->version, e->removed ? 0 : e->id))
	{
		n->lost(person, c);
		return;
	}
	if (!c->named)
	{
		c->named = true;
		c->nnext = *n->named;
		*n->named = c;
	}
}

void
encn_note(const encn_entry *e, void *noter)
{
	const encn_noter *n = noter;

	note_person(n, e->a, e);
	if (e->b != e->a)
		note_person(n, e->b, e);
}

encn_chain *
encn_named_pop(encn_chain **head)
{
	encn_chain *c = *head;

	if (c)
	{
		*head = c->nnext;
		c->named = false;
		c->nnext = NULL;
	}
	return c;
}

bool
encn_ids_literal(const int64_t *ids, int n, char *buf, size_t cap)
{
	size_t		len = 0;
	int			w;

	if (cap < 3)
		return false;
	buf[len++] = '{';
	for (int i = 0; i < n; i++)
	{
		w = snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", (long long) ids[i]);
		if (w < 0 || (size_t) w >= cap - len)
			return false;
		len += (size_t) w;
	}
	if (len + 2 > cap)
		return false;
	buf[len++] = '}';
	buf[len] = 0;
	return true;
}
