/*
 * hub_live.c: which fetch each watched person of udaconnect-httpd's live
 * encounter streams needs, and which subscribers its rows go to (hub.c
 * holds the subscribers and their queues, listen.c makes the fetches).
 *
 * By id (--stream-fetch by-id, the default; docs/encounters.md, "Live"):
 * a subscriber is either live, fed by its person's live fetches, or wants
 * a scan (api_encounter_changes after its position).  A payload of NOTIFY
 * udaconnect_encounter names, for one version, the encounters written and
 * removed with their persons; the tracker (encnotify.c) checks that the
 * connection hears every version whole and in turn, and each watched
 * person's chain collects the ids announced for it.  Once a version is
 * heard whole, the person's live fetch reads those ids by primary key and
 * its removals by version (api_encounter_changes_by_id), for every live
 * subscriber at once, each given only what lies after its position.  A
 * scan that comes back short makes its subscribers live if nothing was
 * delivered live that the scan did not read (encn_chain_may_join);
 * otherwise they scan again.  Whenever the hub cannot tell what it missed
 * (a new connection, a version not heard, a payload it cannot read, a
 * person's ids past the bound, a live fetch that failed or came back
 * full, a subscriber whose queue filled), the subscribers concerned scan.
 *
 * By version (--stream-fetch scan, the path before 1.5): every
 * notification naming a person scans for all its subscribers.
 *
 * This file decides; it must not touch a queue but through hub_feed, nor
 * talk to the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_int.h"

encn_tracker hub_trk;
static encn_chain *named_head;	/* the chains the version being heard names */

/* The subscriber leaves the live ones: it reads from its position. */
static void
to_scan(struct sub *s)
{
	s->live = false;
	if (!s->full && !s->ended)
		s->want = true;
}

/* g's chain lost track: its live subscribers read by version. */
static void
group_lost(group *g, int64_t heard)
{
	for (struct sub *s = g->subs; s; s = s->next)
		if (s->live)
			to_scan(s);
	encn_chain_reset(&g->chain, heard);
	hub_pend(g);
}

/*
 * A new subscriber.  One that starts at "now" is live at once when its
 * position (the committed clock read by another connection) is at or past
 * everything this connection delivered live or cannot vouch for;
 * otherwise it reads by version first.  Either way its person is checked
 * (hub_erased.c): the person may have been erased since sse.c asked.
 */
struct sub *
hub_add(struct MHD_Connection *c, int32_t person, int64_t version, int64_t id,
		bool at_now, int64_t expires, bool *at_cap)
{
	struct sub *s;
	bool		new_group;

	pthread_mutex_lock(&hub_lock);
	s = hub_sub_create(c, person, version, id, expires, at_cap, &new_group);
	if (s)
	{
		if (new_group)
			encn_chain_reset(&s->g->chain, encn_heard(&hub_trk));
		if (cfg.stream_by_id && at_now && hub_trk.base >= 0 && version >= hub_trk.base &&
			encn_chain_may_join(&s->g->chain, &hub_trk, hub_trk.epoch, version))
			s->live = true;
		else
		{
			s->want = true;
			hub_pend(s->g);
		}
		hub_check_due(s->g);
	}
	pthread_mutex_unlock(&hub_lock);
	return s;
}

/* Every subscriber scans: a new epoch (a new connection, a resync). */
static void
all_scan(int64_t heard)
{
	while (encn_named_pop(&named_head))
		;
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (group *g = hub_groups(b); g; g = g->hnext)
		{
			if (cfg.stream_by_id)
				group_lost(g, heard);
			else
			{
				g->dirty = true;
				hub_pend(g);
			}
		}
}

void
hub_listening(void)
{
	pthread_mutex_lock(&hub_lock);
	encn_tracker_reset(&hub_trk);
	all_scan(-1);
	/* an erasure announced while nobody listened was not heard */
	hub_check_all();
	pthread_mutex_unlock(&hub_lock);
}

/* encn_note's way to the chain of a watched person (by id) */
static encn_chain *
chain_of(int32_t person)
{
	group	   *g = *hub_slot(person);

	if (g && !cfg.stream_by_id)
	{
		g->dirty = true;
		hub_pend(g);
	}
	return g && cfg.stream_by_id ? &g->chain : NULL;
}

static void
chain_full(int32_t person, encn_chain *c)
{
	logmsg(LOG_INFO, "encounter streams: more than %d changes of person %d at once; its "
		   "streams read them by version", ENCN_CHAIN_MAX_IDS, person);
	group_lost(GROUP_OF_CHAIN(c), encn_heard(&hub_trk));
}

void
hub_notified(const char *payload)
{
	encn_payload p;
	enum encn_verdict v;
	encn_chain *c;

	pthread_mutex_lock(&hub_lock);
	v = encn_track(&hub_trk, payload, &p);
	if (v == ENCN_RESYNC || v == ENCN_RESYNC_APPLY)
	{
		logmsg(LOG_WARNING, "encounter streams: %s \"%.40s\" (after version %lld); every "
			   "stream reads by version", v == ENCN_RESYNC ? "unexpected notification payload"
			   : "a version was not heard before", payload, (long long) hub_trk.base);
		metrics_stream_resync();
		all_scan(hub_trk.base);
	}
	if (v == ENCN_APPLY || v == ENCN_RESYNC_APPLY)
	{
		encn_noter	n = {p.version, chain_of, chain_full, &named_head};

		encn_each(&p, encn_note, &n);
	}
	/* heard whole: the persons it named may fetch */
	while (hub_trk.cur == 0 && (c = encn_named_pop(&named_head)))
		hub_pend(GROUP_OF_CHAIN(c));
	pthread_mutex_unlock(&hub_lock);
}

/* The position g's next scan starts after: the smallest of its subscribers
 * that want one (false: none does). */
static bool
scan_from(group *g, int64_t *version, int64_t *id)
{
	bool		any = false;

	for (struct sub *s = g->subs; s; s = s->next)
	{
		if (g->dirty && !s->full && !s->ended)
			s->want = true;
		if (!s->want || s->full || s->ended)
			continue;
		if (!any || s->version < *version || (s->version == *version && s->id < *id))
		{
			*version = s->version;
			*id = s->id;
		}
		any = true;
	}
	g->dirty = false;
	return any;
}

static bool
any_live(const group *g)
{
	for (const struct sub *s = g->subs; s; s = s->next)
		if (s->live && !s->full && !s->ended)
			return true;
	return false;
}

/* g's live fetch, if one is due and someone takes it. */
static bool
live_fetch(group *g, struct hub_fetch *f, int64_t *ids)
{
	const int64_t *cids;

	if (!cfg.stream_by_id || !encn_chain_ready(&g->chain, &hub_trk))
		return false;
	if (!any_live(g))
	{
		encn_chain_skip(&g->chain);
		return false;
	}
	encn_chain_take(&g->chain, &f->version, &f->upto, &cids, &f->nids);
	memcpy(ids, cids, sizeof(int64_t) * (size_t) f->nids);
	f->live = true;
	f->id = INT64_MAX;
	return true;
}

bool
hub_next_fetch(struct hub_fetch *f, int64_t *ids)
{
	group	   *g;

	pthread_mutex_lock(&hub_lock);
	while ((g = hub_pop()))
	{
		if (g->in_flight)
			continue;			/* queued again when its fetch is back */
		if (hub_check_take(g, f))
		{
			pthread_mutex_unlock(&hub_lock);
			return true;
		}
		f->person = g->person;
		f->check = false;
		if (live_fetch(g, f, ids))
		{
			g->in_flight = g->flight_live = true;
			pthread_mutex_unlock(&hub_lock);
			metrics_stream_fetch(true);
			return true;
		}
		if (scan_from(g, &f->version, &f->id))
		{
			f->live = false;
			f->nids = 0;
			g->in_flight = true;
			g->flight_live = false;
			g->from_version = f->version;
			g->from_id = f->id;
			/* the scan reads every version heard so far (it runs later) */
			g->k_send = hub_trk.known;
			g->k_epoch = hub_trk.epoch;
			pthread_mutex_unlock(&hub_lock);
			metrics_stream_fetch(false);
			return true;
		}
		hub_group_release(g);
	}
	pthread_mutex_unlock(&hub_lock);
	return false;
}

/* A live fetch's rows to the live subscribers. */
static void
deliver_live(group *g, const struct hub_change *rows, int n, bool complete,
			 char **text, size_t *tlen)
{
	for (struct sub *s = g->subs; s; s = s->next)
		if (s->live && !s->full && !s->ended && !hub_feed(s, rows, text, tlen, n))
			to_scan(s);			/* when its queue is out, or at once */
	encn_chain_done(&g->chain);
	/* a full page: the rest by version */
	if (!complete)
		group_lost(g, encn_heard(&hub_trk));
}

/* A scan's rows, after its from-position, to the subscribers that wanted one. */
static void
deliver_scan(group *g, const struct hub_change *rows, int n, bool complete,
			 char **text, size_t *tlen)
{
	bool		again = g->dirty;

	for (struct sub *s = g->subs; s; s = s->next)
	{
		if (!s->want || s->full || s->ended)
			continue;
		/* came after the fetch began, further back than it reaches */
		if (s->version < g->from_version ||
			(s->version == g->from_version && s->id < g->from_id))
		{
			again = true;
			continue;
		}
		if (hub_feed(s, rows, text, tlen, n) && complete && !g->dirty)
		{
			/* caught up: live, unless live rows went out it has not read */
			s->want = false;
			if (cfg.stream_by_id)
			{
				s->live = encn_chain_may_join(&g->chain, &hub_trk, g->k_epoch, g->k_send);
				s->want = !s->live;
				again |= s->want;
			}
		}
		else if (!s->full)
			again = true;
	}
	if (again)
		hub_pend(g);
}

void
hub_deliver(int32_t person, const struct hub_change *rows, int n, bool complete)
{
	char	  **text = calloc((size_t) n + 1, sizeof(char *));
	size_t	   *tlen = calloc((size_t) n + 1, sizeof(size_t));
	group	   *g;

	pthread_mutex_lock(&hub_lock);
	g = *hub_slot(person);
	if (g)
	{
		g->in_flight = false;
		if (!text || !tlen)
		{
			/* out of memory: again later, by version */
			if (g->flight_live)
			{
				encn_chain_done(&g->chain);
				group_lost(g, encn_heard(&hub_trk));
			}
			hub_pend(g);
		}
		else if (g->flight_live)
			deliver_live(g, rows, n, complete, text, tlen);
		else
			deliver_scan(g, rows, n, complete, text, tlen);
		/* a live fetch due meanwhile, subscribers that joined or left */
		hub_pend(g);
	}
	pthread_mutex_unlock(&hub_lock);
	for (int i = 0; text && i < n; i++)
		free(text[i]);
	free(text);
	free(tlen);
}

void
hub_fetch_failed(int32_t person)
{
	group	   *g;

	pthread_mutex_lock(&hub_lock);
	g = *hub_slot(person);
	if (g && g->flight_check)
		hub_check_failed(g);
	else if (g)
	{
		g->in_flight = false;
		if (g->flight_live)
		{
			encn_chain_done(&g->chain);
			group_lost(g, encn_heard(&hub_trk));
		}
		g->dirty = !cfg.stream_by_id;
		hub_pend(g);
	}
	pthread_mutex_unlock(&hub_lock);
}
