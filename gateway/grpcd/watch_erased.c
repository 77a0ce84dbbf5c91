/*
 * watch_erased.c — the WatchEncounters calls that watch an erased person
 * (udaconnect.forget_person) end with NOT_FOUND, naming the erasure; a new
 * call for the person is refused NOT_FOUND by its first query
 * (docs/encounters.md, "Live", "The end of an erased person's streams").
 *
 * What this file holds (on the watch thread, as watch_feed.c): each
 * watched person's check, a query on the watch connection whether the
 * person still exists (api_encounter_position as an organizer: P0002 when
 * not), due when NOTIFY udaconnect_person_erased names the person (any
 * role may notify any channel: the notification alone ends nothing), and
 * for every watched person when the connection listens anew (an erasure
 * announced while it was down was not heard).  A person found gone ends
 * every watcher of it, whatever its state.  A new watcher needs no check
 * of its own: its first query (api_encounter_position, J_START or J_CHECK)
 * runs on this connection after LISTEN and after the watcher joined its
 * group, so either it sees the erasure, or the erasure commits after it
 * was sent and its notification, heard on this connection, finds the
 * watcher in its group.
 *
 * A check that fails otherwise (a statement timeout, a transient error)
 * is made again, later: after RETRY_MIN_MS, doubling per failure of the
 * same person up to RETRY_MAX_MS (a check failing every time must not
 * run in a loop), on listen.c's poll() timer (we_timeout_ms, we_tick).  A
 * payload that names no person (not the extension's: anyone may notify)
 * has every watched person checked, but at most once per ALL_EVERY_MS:
 * the payloads that come meanwhile share the next such check, and its
 * one log line, so that notifying in a loop costs the watch connection
 * one round of checks a second.
 *
 * What it must not do: block, or end a watcher but through watch.c.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "watch_int.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 8000
#define ALL_EVERY_MS 1000

/* P0002 when the person does not exist (as an organizer: no caller's right) */
static const char SQL_EXISTS[] =
"SELECT 1 FROM udaconnect.api_encounter_position('organizer', NULL, $1::int4)";

void
we_group_init(group *g)
{
	g->gone_job.kind = J_GONE;
	g->gone_job.obj = g;
}

/* g is checked once the connection can take the query */
static void
check_due(group *g)
{
	g->gone_due = true;
	wf_ready_push(&g->gone_job);
}

/* the timers: the earliest retry of a failed check (0: none) */
static int64_t retry_next;

/* check-alls asked for by payloads that name no person */
static int64_t all_last;		/* when the last one was made (0: never) */
static int	all_asked;			/* payloads since it (the next one is due) */
static char all_payload[48];	/* the first of them */

void
we_check_all(void)
{
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = wf_bucket(b); g; g = g->hnext)
			check_due(g);
}

/* the check-all that unexpected payloads asked for, and its log line */
static void
check_all_asked(int64_t now)
{
	logmsg(LOG_WARNING, "watch: unexpected payload \"%s\" of udaconnect_person_erased (%d such in"
		   " the last %d ms or more); every watched person is checked", all_payload, all_asked,
		   ALL_EVERY_MS);
	all_last = now;
	all_asked = 0;
	we_check_all();
}

/* a payload of NOTIFY udaconnect_person_erased (listen.c's hook) */
void
we_erased(const char *payload)
{
	int32_t		person;
	group	   *g;
	int64_t		now;

	if (encn_parse_erased(payload, &person))
	{
		if ((g = *wf_group_slot(person)) != NULL)
			check_due(g);
		return;
	}
	if (all_asked++ == 0)
		snprintf(all_payload, sizeof(all_payload), "%.40s", payload);
	now = mono_ms();
	if (all_last == 0 || now - all_last >= ALL_EVERY_MS)
		check_all_asked(now);
	/* else we_tick makes it, ALL_EVERY_MS after the last one */
}

/* poll()'s limit: until the next retry or check-all (-1: none waits) */
int
we_timeout_ms(void)
{
	int64_t		at = retry_next;
	int64_t		now = mono_ms();

	if (all_asked > 0 && (at == 0 || all_last + ALL_EVERY_MS < at))
		at = all_last + ALL_EVERY_MS;
	if (at == 0)
		return -1;
	return at <= now ? 0 : (int) (at - now) + 1;
}

/* after every wake-up: the retries and the check-all that are due */
void
we_tick(void)
{
	int64_t		now = mono_ms();
	int64_t		next = 0;

	if (all_asked > 0 && now - all_last >= ALL_EVERY_MS)
		check_all_asked(now);
	if (retry_next == 0 || now < retry_next)
		return;
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = wf_bucket(b); g; g = g->hnext)
		{
			if (!g->gone_retry)
				continue;
			if (g->gone_retry_at <= now)
			{
				g->gone_retry = false;
				check_due(g);
			}
			else if (next == 0 || g->gone_retry_at < next)
				next = g->gone_retry_at;
		}
	retry_next = next;
}

/* g's check failed: made again once its back-off has passed */
static void
retry_later(group *g)
{
	g->gone_backoff_ms = g->gone_backoff_ms == 0 ? RETRY_MIN_MS :
		g->gone_backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : g->gone_backoff_ms * 2;
	g->gone_retry = true;
	g->gone_retry_at = mono_ms() + g->gone_backoff_ms;
	if (retry_next == 0 || g->gone_retry_at < retry_next)
		retry_next = g->gone_retry_at;
}

/* job_send for J_GONE: false when no check is due or nobody watches */
bool
we_send(group *g)
{
	char		p_person[16];
	const char *params[1] = {p_person};

	if (!g->gone_due || g->head == NULL)
		return false;
	g->gone_due = false;
	snprintf(p_person, sizeof(p_person), "%d", g->person);
	g->gone_job.busy = true;
	listen_send(&g->gone_job, SQL_EXISTS, 1, params);
	return true;
}

/* the check came back (g pinned; res NULL: the connection was lost first) */
void
we_result(group *g, PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int			n = 0;

	if (res == NULL)
		g->gone_due = true;		/* checked again once the connection is back */
	else if (PQresultStatus(res) != PGRES_TUPLES_OK && st && strcmp(st, "P0002") == 0)
	{
		for (watcher *x = g->head, *next; x; x = next)
		{
			next = x->gnext;
			watcher_end(x, GRPC_STATUS_NOT_FOUND, "person %d was erased (udaconnect.forget_person):"
						" there is nothing left to watch", g->person);
			wf_watcher_drop(x);
			n++;
		}
		logmsg(LOG_INFO, "watch: person %d was erased; %d watcher(s) of it end", g->person, n);
	}
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		retry_later(g);
		logmsg(LOG_ERROR, "watch: checking that person %d still exists failed (checked again in"
			   " %d ms): %s", g->person, g->gone_backoff_ms, PQresultErrorMessage(res));
	}
	else
		g->gone_backoff_ms = 0;
	if (res != NULL && g->gone_due && g->head != NULL)
		wf_ready_push(&g->gone_job);
}
