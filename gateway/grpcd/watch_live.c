/*
 * watch_live.c — WatchEncounters' live watchers read by id: what NOTIFY
 * udaconnect_encounter announced for their person, by primary key
 * (udaconnect.api_encounter_changes_by_id), instead of every encounter of
 * the person after a position (docs/encounters.md, "Live").
 *
 * What this file holds (on the watch thread, as watch_feed.c):
 *   - the tracker of the watch connection (gateway/common/encnotify.c):
 *     every version heard whole and in turn, or a resync;
 *   - each watched person's chain: the ids announced for it since its last
 *     live fetch, sent once the version is heard whole, for every live
 *     watcher of the person at once;
 *   - when a watcher may go live: when the query that brought it up to
 *     date (its start position, or a short catch-up chunk) had heard
 *     everything delivered live before (encn_chain_may_join); else it
 *     catches up again;
 *   - losing track: a resync, a new connection, more ids than a chain
 *     holds, a live fetch that came back full or was lost: the live
 *     watchers concerned catch up from their own positions;
 *   - the scan mode (--watch-fetch scan, or a database without
 *     api_encounter_changes_by_id): a notification marks the persons it
 *     names, watch_feed.c scans for them.
 *
 * It is above watch_feed.c: watch_feed.c calls it only through the hooks
 * watch_start() hands to wf_start().  What it must not do: block, or queue
 * to a watcher but through watch_feed.c's wf_deliver.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_int.h"

/* rows a live fetch takes at most (its ids and the removals announced with
 * them): a full one leaves the rest to the watchers' catch-up */
#define LIVE_ROWS 2000

static const char SQL_BY_ID[] =
"SELECT version, id, kind, body::text"
"  FROM udaconnect.api_encounter_changes_by_id($1::text, $2::int4, $3::int4, $4::int8[],"
"                                              $5::int8, $6::int8, $7::int4)";

static bool by_id;
static encn_tracker trk;
static encn_chain *named_head;	/* the chains the version being heard names */

static bool
wl_by_id(void)
{
	return by_id;
}


static void
wl_group_new(group *g)
{
	encn_chain_reset(&g->chain, encn_heard(&trk));
}

/* a query that brings w up to date is sent now: it hears what was heard */
static void
wl_mark_sent(watcher *w)
{
	w->k_send = trk.known;
	w->k_epoch = trk.epoch;
}

static bool
wl_may_join(const group *g, const watcher *w, int64_t k)
{
	return !by_id || encn_chain_may_join(&g->chain, &trk, w->k_epoch, k);
}

/* g's chain lost track: its live watchers catch up from their positions */
static void
group_lost(group *g, int64_t heard)
{
	for (watcher *x = g->head; x; x = x->gnext)
	{
		if (x->state != W_LIVE)
			continue;
		x->state = W_CATCHUP;
		x->job.kind = J_CATCHUP;
		g->nlive--;
		wf_ready_push(&x->job);
	}
	encn_chain_reset(&g->chain, heard);
}

static void
all_lost(int64_t heard)
{
	while (encn_named_pop(&named_head))
		;
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = wf_bucket(b); g; g = g->hnext)
			group_lost(g, heard);
}

/* the connection listens anew: a new epoch, every live watcher catches up */
static void
wl_connected(void)
{
	encn_tracker_reset(&trk);
	all_lost(-1);
}

/* encn_note's way to the chain of a watched person (by id) */
static encn_chain *
chain_of(int32_t person)
{
	group	   *g = *wf_group_slot(person);

	if (g && !by_id)
		wf_mark_dirty(g);
	return g && by_id ? &g->chain : NULL;
}

static void
chain_full(int32_t person, encn_chain *c)
{
	logmsg(LOG_INFO, "watch: more than %d changes of person %d at once; its watchers"
		   " catch up by version", ENCN_CHAIN_MAX_IDS, person);
	group_lost(GROUP_OF_CHAIN(c), encn_heard(&trk));
}

/* the entries of p to the chains of the persons they name */
static void
note_payload(const encn_payload *p)
{
	encn_noter	n = {p->version, chain_of, chain_full, &named_head};

	encn_each(p, encn_note, &n);
}

/* a payload of NOTIFY udaconnect_encounter (listen.c's hook) */
static void
wl_notified(const char *payload)
{
	encn_payload p;
	enum encn_verdict v;
	encn_chain *c;
	group	   *g;

	if (!by_id)
	{
		if (!encn_parse(payload, &p))
		{
			logmsg(LOG_ERROR, "watch: unexpected notification payload \"%.40s\"; reading every"
				   " watched person", payload);
			wf_all_dirty();
		}
		else
			note_payload(&p);
		return;
	}
	v = encn_track(&trk, payload, &p);
	if (v == ENCN_RESYNC || v == ENCN_RESYNC_APPLY)
	{
		logmsg(LOG_WARNING, "watch: %s \"%.40s\"; every live watcher catches up by version",
			   v == ENCN_RESYNC ? "unexpected notification payload" : "a version was not heard before",
			   payload);
		all_lost(trk.base);
	}
	if (v == ENCN_APPLY || v == ENCN_RESYNC_APPLY)
		note_payload(&p);
	if (trk.cur != 0)
		return;
	/* heard whole: the persons it named may fetch */
	while ((c = encn_named_pop(&named_head)))
	{
		g = GROUP_OF_CHAIN(c);
		if (g->nlive > 0)
			wf_ready_push(&g->job);
		else
			wf_group_maybe_free(g);
	}
}

/* the first live watcher of g, or NULL */
static watcher *
first_live(const group *g)
{
	for (watcher *x = g->head; x; x = x->gnext)
		if (x->state == W_LIVE)
			return x;
	return NULL;
}

/* job_send for a person by id: its live fetch, if one is due (false: none) */
static bool
wl_group_send(group *g)
{
	static char ids_lit[ENCN_CHAIN_MAX_IDS * 21 + 3];
	char		p_caller[16],
				p_person[16],
				p_from[24],
				p_to[24],
				p_lim[16];
	const char *params[7];
	const int64_t *ids;
	int			nids;
	int64_t		from,
				to;
	watcher    *w;

	if (!encn_chain_ready(&g->chain, &trk))
		return false;
	if ((w = first_live(g)) == NULL)
	{
		encn_chain_skip(&g->chain);
		return false;
	}
	encn_chain_take(&g->chain, &from, &to, &ids, &nids);
	encn_ids_literal(ids, nids, ids_lit, sizeof(ids_lit));
	wf_caller_params(w, params, p_caller, sizeof(p_caller));
	snprintf(p_person, sizeof(p_person), "%d", g->person);
	snprintf(p_from, sizeof(p_from), "%lld", (long long) from);
	snprintf(p_to, sizeof(p_to), "%lld", (long long) to);
	snprintf(p_lim, sizeof(p_lim), "%d", LIVE_ROWS);
	params[2] = p_person;
	params[3] = ids_lit;
	params[4] = p_from;
	params[5] = p_to;
	params[6] = p_lim;
	logmsg(LOG_DEBUG, "watch: person %d: reading by id %d encounter(s) announced in versions %lld..%lld",
		   g->person, nids, (long long) from + 1, (long long) to);
	g->by_id_out = true;
	g->job.lim = LIVE_ROWS;
	g->job.busy = true;
	listen_send(&g->job, SQL_BY_ID, 7, params);
	return true;
}

/* a person's live fetch by id came back (g pinned; res NULL: the connection was lost) */
static void
wl_group_result(group *g, PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	g->by_id_out = false;
	encn_chain_done(&g->chain);
	if (res == NULL)
		group_lost(g, encn_heard(&trk));
	else if (PQresultStatus(res) != PGRES_TUPLES_OK && st && strcmp(st, "42883") == 0)
	{
		/* a database without the 1.5 API: the path before it */
		logmsg(LOG_ERROR, "watch: the database has no udaconnect.api_encounter_changes_by_id"
			   " (update the extension: ALTER EXTENSION pg_udaconnect UPDATE); live watchers"
			   " read every change of their person by version from now on");
		by_id = false;
		wf_all_dirty();
		return;
	}
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		wf_end_live(g, res);
		encn_chain_reset(&g->chain, encn_heard(&trk));
	}
	else
	{
		wf_deliver(res, g, NULL);
		if (PQntuples(res) == g->job.lim)
			group_lost(g, encn_heard(&trk));
	}
	if (g->head != NULL && encn_chain_ready(&g->chain, &trk))
		wf_ready_push(&g->job);
}

/* the watch thread starts, reading by id unless --watch-fetch scan */
void
watch_start(void)
{
	static const wf_live_hooks h = {
		.by_id = wl_by_id,
		.group_new = wl_group_new,
		.mark_sent = wl_mark_sent,
		.may_join = wl_may_join,
		.group_send = wl_group_send,
		.group_result = wl_group_result,
		.connected = wl_connected,
		.notified = wl_notified,
	};

	by_id = strcmp(cfg.watch_fetch, "by-id") == 0;
	wf_start(&h);
}
