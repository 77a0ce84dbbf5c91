/*
 * watch_feed.c — WatchEncounters, the watch thread's side: which queries
 * run for which watchers, and what each watcher is sent.
 *
 * What this file holds (all of it on the watch thread, listen.c's hooks):
 *   - the watchers grouped by the person they watch;
 *   - a new watcher's first query (udaconnect.api_encounter_position): the
 *     caller's right to watch the person (42501 / P0002, an erased person
 *     too, docs/encounters.md "Live"), and, without a resume point, where
 *     "now" is, which it starts after;
 *   - catching up a watcher that resumes: api_encounter_changes from its
 *     position, one chunk at a time, each only once its queue has room for
 *     it, until a chunk comes back short: then it is live;
 *   - live watchers: by id (--watch-fetch by-id, the default), what NOTIFY
 *     announced for their person, read by primary key (watch_live.c; a
 *     watcher joins only if that misses nothing, else it catches up again);
 *     by version (--watch-fetch scan, the path before 1.5), on a
 *     notification naming their person (and for every person after a
 *     reconnect) one api_encounter_changes per watched person, from the
 *     lowest position of its live watchers.  Either way each event is
 *     packed once and queued to every live watcher that has not had it.  A
 *     full chunk means more rows wait: the next one is fetched at once; a
 *     live watcher without room for it is ended (RESOURCE_EXHAUSTED)
 *     instead of holding the others back.
 *
 * Exactly once: every query runs on listen.c's one connection, in order, so
 * each sees at least what those before it saw; a watcher is sent only
 * events after its own position, and joins the live fetches only after a
 * query that saw everything before (see docs/grpc.md, "WatchEncounters",
 * and docs/encounters.md, "Live").
 *
 * What it must not do: block (it runs on the thread that serves every
 * watcher), or touch a watcher's queue except through watch.c.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_int.h"

static group *buckets[WATCH_BUCKETS];
static wf_live_hooks live;
static watch_job *ready_head,
		   *ready_tail;
static bool drained;

/* the caller's right, and the position after every change committed so far */
static const char SQL_START[] =
"SELECT 1, p.version, p.id FROM udaconnect.api_encounter_position($1::text, $2::int4, $3::int4) p";
/* the caller's right, and that the person exists (an attendee's own too) */
static const char SQL_CHECK[] =
"SELECT 1 FROM udaconnect.api_encounter_position($1::text, $2::int4, $3::int4)";
static const char SQL_CHANGES[] =
"SELECT version, id, kind, body::text"
"  FROM udaconnect.api_encounter_changes($1::text, $2::int4, $3::int4, $4::int8, $5::int8, $6::int4)";

void
wf_ready_push(watch_job *j)
{
	if (j->queued || j->busy)
		return;
	j->queued = true;
	j->next = NULL;
	if (ready_tail)
		ready_tail->next = j;
	else
		ready_head = j;
	ready_tail = j;
}

group *
wf_bucket(int b)
{
	return buckets[b];
}

group	  **
wf_group_slot(int32_t person)
{
	group	  **p = &buckets[(uint32_t) person % WATCH_BUCKETS];

	while (*p && (*p)->person != person)
		p = &(*p)->hnext;
	return p;
}

/* free g once nobody needs it: no watcher, no query out, not queued, not named */
void
wf_group_maybe_free(group *g)
{
	group	  **p;

	if (g->head != NULL || g->job.busy || g->job.queued || g->pinned || g->chain.named ||
		g->gone_busy || g->gone_listed)
		return;
	p = wf_group_slot(g->person);
	*p = g->hnext;
	encn_chain_free(&g->chain);
	free(g);
}

/* the watch thread's reference goes once the watcher is gone and no query needs it */
static void
watcher_maybe_release(watcher *w)
{
	if (w->state != W_GONE || w->job.busy || w->job.queued || w->pinned || w->released)
		return;
	w->released = true;
	call_unref(w->c);
}

/* the watcher is over (ended, or the call is): out of its group */
void
wf_watcher_drop(watcher *w)
{
	group	   *g = w->g;

	if (w->state == W_GONE)
		return;
	if (w->state == W_LIVE)
		g->nlive--;
	w->state = W_GONE;
	if (w->gprev)
		w->gprev->gnext = w->gnext;
	else
		g->head = w->gnext;
	if (w->gnext)
		w->gnext->gprev = w->gprev;
	w->g = NULL;
	watcher_maybe_release(w);
	wf_group_maybe_free(g);
}

static void
watcher_add(watcher *w)
{
	Udaconnect__V1__WatchEncountersRequest *q = (Udaconnect__V1__WatchEncountersRequest *) w->c->req;
	group	  **p = wf_group_slot(w->person);
	group	   *g = *p;

	if (g == NULL)
	{
		if ((g = calloc(1, sizeof(group))) == NULL)
		{
			watcher_end(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for a watcher");
			w->state = W_GONE;	/* in no group */
			watcher_maybe_release(w);
			return;
		}
		g->person = w->person;
		g->job.kind = J_GROUP;
		g->job.obj = g;
		live.group_new(g);
		*p = g;
	}
	w->g = g;
	w->gnext = g->head;
	w->gprev = NULL;
	if (g->head)
		g->head->gprev = w;
	g->head = w;
	w->job.obj = w;
	if (q->after)
	{
		w->state = W_CHECK;
		w->job.kind = J_CHECK;
		w->cur_v = q->after->version;
		w->cur_id = q->after->id;
	}
	else
	{
		w->state = W_START;
		w->job.kind = J_START;
	}
	wf_ready_push(&w->job);
}

static void
go_live(watcher *w)
{
	w->state = W_LIVE;
	w->g->nlive++;
	/* by id: what was announced meanwhile may be due */
	if (w->g->dirty || w->g->more || live.by_id())
		wf_ready_push(&w->g->job);
}

/* the caller's arguments of the SQL API, for w's caller */
void
wf_caller_params(const watcher *w, const char **params, char *buf, size_t len)
{
	snprintf(buf, len, "%d", w->c->who.person);
	params[0] = caller_role_name(&w->c->who);
	params[1] = w->c->who.role == UDC_ROLE_ATTENDEE ? buf : NULL;
}

/*
 * Send j's query if it still has one to run now.  False: nothing to send
 * (its object is gone, or waits for room; a WCMD_ROOM brings it back).
 */
static bool
job_send(watch_job *j)
{
	char		p_caller[16],
				p_person[16],
				p_v[24],
				p_i[24],
				p_lim[16];
	const char *params[6];
	watcher    *w = j->kind == J_GROUP ? NULL : j->obj;
	group	   *g = j->kind == J_GROUP ? j->obj : NULL;
	int64_t		v,
				id;

	if (j->kind == J_GONE)
		return we_send();
	if (g != NULL && live.by_id())
		return live.group_send(g);
	if (g != NULL)
	{
		if (g->nlive == 0 || (!g->dirty && !g->more))
			return false;
		w = NULL;
		v = INT64_MAX;
		id = INT64_MAX;
		g->pinned = true;
		for (watcher *x = g->head, *next; x; x = next)
		{
			next = x->gnext;
			if (x->state != W_LIVE)
				continue;

			/*
			 * The next full chunk goes to the live watchers with room for
			 * it.  One without must not hold the others back: it is so far
			 * behind (--watch-queue less a chunk of events waiting) that
			 * it is ended as one whose queue overflows, and resumes with
			 * after.  A notification's fetch waits for nobody.
			 */
			if (!g->dirty && !watcher_has_room(x, watch_chunk()))
			{
				watcher_end(x, GRPC_STATUS_RESOURCE_EXHAUSTED,
							"the client did not read the events as fast as they came: more than"
							" --watch-queue less a chunk of events were waiting; watch again with"
							" after = the last event received");
				wf_watcher_drop(x);
				continue;
			}
			if (w == NULL)
				w = x;
			if (x->cur_v < v || (x->cur_v == v && x->cur_id < id))
				v = x->cur_v, id = x->cur_id;
		}
		g->pinned = false;
		if (w == NULL)
			return false;
		g->dirty = false;
		g->more = false;
		j->lim = watch_chunk();
	}
	else
	{
		if (w->state == W_GONE)
			return false;
		if (w->state == W_CATCHUP && !watcher_has_room(w, watch_chunk()))
			return false;
		v = w->cur_v;
		id = w->cur_id;
		j->lim = watch_chunk();
	}
	if (g == NULL)
		live.mark_sent(w);
	else
		g->by_id_out = false;
	wf_caller_params(w, params, p_caller, sizeof(p_caller));
	snprintf(p_person, sizeof(p_person), "%d", w->person);
	snprintf(p_v, sizeof(p_v), "%lld", (long long) v);
	snprintf(p_i, sizeof(p_i), "%lld", (long long) id);
	snprintf(p_lim, sizeof(p_lim), "%d", j->lim);
	params[2] = p_person;
	params[3] = p_v;
	params[4] = p_i;
	params[5] = p_lim;
	j->busy = true;
	listen_send(j, j->kind == J_START ? SQL_START : j->kind == J_CHECK ? SQL_CHECK : SQL_CHANGES,
				j->kind == J_CHECK || j->kind == J_START ? 3 : 6, params);
	return true;
}

/* a query's error, as the status that ends the watchers it was for */
static void
error_status(PGresult *res, grpc_status_code *code, char *msg, size_t len)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *pm = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *dt = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

	*code = sqlstate_to_status(st);
	if (*code == GRPC_STATUS_INTERNAL)
		logmsg(LOG_ERROR, "WatchEncounters: database error %s: %s", st ? st : "?",
			   pm ? pm : PQresultErrorMessage(res));
	snprintf(msg, len, "%s%s%s%s", pm ? pm : "the database query failed", dt ? ": " : "", dt ? dt : "",
			 *code == GRPC_STATUS_UNAVAILABLE ? "; watch again with after = the last event received" : "");
}

/* one row of api_encounter_changes as a packed EncounterEvent; false: err says why not */
static bool
event_pack(PGresult *res, int r, grpc_slice *out, char *err, size_t len)
{
	Udaconnect__V1__EncounterEvent ev = UDACONNECT__V1__ENCOUNTER_EVENT__INIT;
	encounter_msg m;
	const char *kind = PQgetvalue(res, r, 2);
	json_t	   *j = json_parse(PQgetvalue(res, r, 3), err, len);
	bool		ok = j != NULL;

	ev.version = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	ev.id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
	if (ok && strcmp(kind, "encounter") == 0)
	{
		ev.kind = UDACONNECT__V1__ENCOUNTER_EVENT__KIND__ENCOUNTER;
		ok = encounter_from_json(j, &m, err, len);
		ev.encounter = &m.e;
	}
	else if (ok && strcmp(kind, "removed") == 0)
	{
		json_t	   *mi = json_object_get(j, "merged_into");

		ev.kind = UDACONNECT__V1__ENCOUNTER_EVENT__KIND__REMOVED;
		if (json_is_integer(mi))
			ev.merged_into = json_integer_value(mi);
		else if (!json_is_null(mi))
			ok = false, snprintf(err, len, "\"merged_into\" is neither an integer nor null");
	}
	else if (ok)
		ok = false, snprintf(err, len, "unknown kind of change \"%.20s\"", kind);
	if (ok)
	{
		*out = grpc_slice_malloc(protobuf_c_message_get_packed_size(&ev.base));
		protobuf_c_message_pack(&ev.base, GRPC_SLICE_START_PTR(*out));
	}
	json_decref(j);
	return ok;
}

/*
 * Queue the rows to w alone (only) or to every live watcher of g, each
 * only the rows after its position.  A watcher that cannot take them is
 * dropped (watch.c ended it).
 */
void
wf_deliver(PGresult *res, group *g, watcher *only)
{
	int			n = PQntuples(res);

	for (int r = 0; r < n; r++)
	{
		int64_t		v = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		int64_t		id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		grpc_slice	s;
		char		err[256];
		bool		packed = false;

		for (watcher *x = only ? only : g->head, *next; x; x = next)
		{
			next = only ? NULL : x->gnext;
			if ((!only && x->state != W_LIVE) || v < x->cur_v || (v == x->cur_v && id <= x->cur_id))
				continue;
			if (!packed && !(packed = event_pack(res, r, &s, err, sizeof(err))))
			{
				logmsg(LOG_ERROR, "WatchEncounters: the database's change (%lld, %lld) cannot be read: %s",
					   (long long) v, (long long) id, err);
				watcher_end(x, GRPC_STATUS_INTERNAL, "the database's change (%lld, %lld) cannot be read: %s",
							(long long) v, (long long) id, err);
				wf_watcher_drop(x);
				continue;
			}
			if (!watcher_push(x, s))
			{
				wf_watcher_drop(x);
				continue;
			}
			x->cur_v = v;
			x->cur_id = id;
		}
		if (packed)
			grpc_slice_unref(s);
	}
}

/* a watcher's query came back (res NULL: the connection was lost first) */
static void
watcher_result(watch_job *j, watcher *w, PGresult *res)
{
	grpc_status_code code;
	char		msg[384];

	if (w->state == W_GONE)
		return;
	if (res == NULL)
	{
		wf_ready_push(j);			/* again once the connection is back */
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		error_status(res, &code, msg, sizeof(msg));
		watcher_end(w, code, "%s", msg);
		wf_watcher_drop(w);
		return;
	}
	if (w->state == W_START)
	{
		/* api_encounter_position: one row, where "now" is */
		w->cur_v = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		w->cur_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		watcher_established(w, w->cur_v, w->cur_id);
		/* it has every change up to the clock it read */
		if (live.may_join(w->g, w, w->cur_v))
			go_live(w);
		else
		{
			w->state = W_CATCHUP;
			j->kind = J_CATCHUP;
			wf_ready_push(j);
		}
	}
	else if (w->state == W_CHECK)
	{
		watcher_established(w, w->cur_v, w->cur_id);
		w->state = W_CATCHUP;
		j->kind = J_CATCHUP;
		wf_ready_push(j);
	}
	else if (w->state == W_CATCHUP)
	{
		wf_deliver(res, NULL, w);
		if (w->state == W_GONE)
			return;
		/* short: it has every change up to what was heard when it was sent */
		if (PQntuples(res) == j->lim || !live.may_join(w->g, w, w->k_send))
			wf_ready_push(j);
		else
			go_live(w);
	}
}

/* a live fetch's error ends the live watchers of g with its status */
void
wf_end_live(group *g, PGresult *res)
{
	grpc_status_code code;
	char		msg[384];

	error_status(res, &code, msg, sizeof(msg));
	for (watcher *x = g->head, *next; x; x = next)
	{
		next = x->gnext;
		if (x->state != W_LIVE)
			continue;
		watcher_end(x, code, "%s", msg);
		wf_watcher_drop(x);
	}
}

/* a person's live fetch came back (g pinned) */
static void
group_result(group *g, PGresult *res)
{
	if (g->by_id_out)
	{
		live.group_result(g, res);
		return;
	}
	if (res == NULL)
		g->dirty = true;		/* again once the connection is back */
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		wf_end_live(g, res);
	else
	{
		wf_deliver(res, g, NULL);
		if (PQntuples(res) == g->job.lim)
			g->more = true;
	}
	if (res != NULL && g->head != NULL && (g->dirty || g->more))
		wf_ready_push(&g->job);
}

/*
 * listen.c hook: a query's result (owned here).  Its watcher or group is
 * pinned meanwhile: dropping watchers must not free what is still read.
 */
static void
feed_result(void *ctx, PGresult *res)
{
	watch_job  *j = ctx;

	j->busy = false;
	if (j->kind == J_GONE)
		we_result(res);			/* pins each person of the check itself */
	else if (j->kind == J_GROUP)
	{
		group	   *g = j->obj;

		g->pinned = true;
		group_result(g, res);
		g->pinned = false;
		wf_group_maybe_free(g);
	}
	else
	{
		watcher    *w = j->obj;

		w->pinned = true;
		watcher_result(j, w, res);
		w->pinned = false;
		watcher_maybe_release(w);
	}
	PQclear(res);
}

void
wf_mark_dirty(group *g)
{
	g->dirty = true;
	if (g->nlive > 0)
		wf_ready_push(&g->job);
}

/* every watched person may have changes (scan mode) */
void
wf_all_dirty(void)
{
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = buckets[b]; g; g = g->hnext)
			wf_mark_dirty(g);
}

/* shutting down: every watcher ends, told where to resume */
static void
drain_all(void)
{
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = buckets[b], *gn; g; g = gn)
		{
			g->pinned = true;
			for (watcher *x = g->head, *next; x; x = next)
			{
				next = x->gnext;
				watcher_end(x, GRPC_STATUS_UNAVAILABLE, "the server is shutting down; watch again (on"
							" another server) with after = the last event received");
				wf_watcher_drop(x);
			}
			g->pinned = false;
			gn = g->hnext;
			wf_group_maybe_free(g);
		}
	drained = true;
}

/* the commands other threads posted (watch.c) */
static void
take_commands(void)
{
	watcher    *w;
	unsigned	bits;

	while ((w = watcher_cmd_take(&bits)) != NULL)
	{
		call	   *c = w->c;

		if ((bits & WCMD_NEW) && w->state == W_NEW)
			watcher_add(w);
		if ((bits & WCMD_GONE) && w->state != W_NEW)
			wf_watcher_drop(w);
		else if (bits & WCMD_ROOM)
		{
			if (w->state == W_CATCHUP)
				wf_ready_push(&w->job);
			else if (w->state == W_LIVE)
				wf_ready_push(&w->g->job);
		}
		if (watch_draining() && w->state != W_GONE && w->state != W_NEW)
		{
			watcher_end(w, GRPC_STATUS_UNAVAILABLE, "the server is shutting down; watch on another one");
			wf_watcher_drop(w);
		}
		call_unref(c);			/* the command list's reference */
	}
}

/* listen.c hook, after every wake-up: commands, then as many queries as fit */
static void
feed_pump(void)
{
	take_commands();
	if (watch_draining() && !drained)
		drain_all();
	we_tick();
	while (listen_can_send() && ready_head != NULL)
	{
		watch_job  *j = ready_head;

		if ((ready_head = j->next) == NULL)
			ready_tail = NULL;
		j->queued = false;
		if (!job_send(j))
		{
			if (j->kind == J_GROUP)
				wf_group_maybe_free(j->obj);
			else if (j->kind != J_GONE)	/* it let its persons go itself */
				watcher_maybe_release(j->obj);
		}
	}
}

static void
feed_connected(void)
{
	if (live.by_id())
		live.connected();
	else
		wf_all_dirty();
	/* an erasure announced while nobody listened was not heard */
	we_check_all();
}

/* watch_live.c's watch_start: the watch thread runs, the live path's hooks set */
void
wf_start(const wf_live_hooks *lh)
{
	static listen_hooks h = {
		.result = feed_result,
		.connected = feed_connected,
		.pump = feed_pump,
		.timeout_ms = we_timeout_ms,
	};

	live = *lh;
	h.notified = lh->notified;
	h.erased = we_erased;
	listen_start(&h);
}

/* after every call ended */
void
watch_stop(void)
{
	listen_stop();
}
