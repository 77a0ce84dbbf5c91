/*
 * watch_erased.c — the WatchEncounters calls that watch an erased person
 * (udaconnect.forget_person) end with NOT_FOUND, naming the erasure; a new
 * call for the person is refused NOT_FOUND by its first query
 * (docs/encounters.md, "Live", "The end of an erased person's streams").
 *
 * What this file holds (on the watch thread, as watch_feed.c): each
 * watched person's check, whether the person still exists, due when
 * NOTIFY udaconnect_person_erased names the person (any role may notify
 * any channel: the notification alone ends nothing), and for every watched
 * person when the connection listens anew (an erasure announced while it
 * was down was not heard).  The persons due wait in one list; one query at
 * a time on the watch connection asks api_persons_gone() about up to
 * CHECK_BATCH of them (the extension's rule, which httpd asks too), so a
 * check of every watched person costs one statement per CHECK_BATCH, not
 * one per person.  A person found gone ends every watcher of it, whatever
 * its state.  A new watcher needs no check
 * of its own: its first query (api_encounter_position, J_START or J_CHECK)
 * runs on this connection after LISTEN and after the watcher joined its
 * group, so either it sees the erasure, or the erasure commits after it
 * was sent and its notification, heard on this connection, finds the
 * watcher in its group.
 *
 * A check that fails (a statement timeout, a transient error) is made
 * again, later, for each person it asked about: after RETRY_MIN_MS,
 * doubling per failure of the same person up to RETRY_MAX_MS (a check
 * failing every time must not run in a loop), on listen.c's poll() timer
 * (we_timeout_ms, we_tick).  A
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
#define CHECK_BATCH 256			/* persons a statement (api_persons_gone: 1000) */

/* one row per person, in the array's order: whether the person is gone */
static const char SQL_GONE[] =
"SELECT gone FROM udaconnect.api_persons_gone($1::integer[]) ORDER BY ord";

/* the persons due for a check, in the order they became due */
static group *due_head,
		   *due_tail;

/* the one check in flight: its persons (each gone_busy) */
static watch_job check_job = {.kind = J_GONE};
static group *batch[CHECK_BATCH];
static int	batch_n;

/* g is checked once the connection can take the query */
static void
check_due(group *g)
{
	g->gone_due = true;
	if (g->gone_listed || g->gone_busy)
		return;					/* it is in the list, or listed again after its check */
	g->gone_listed = true;
	g->gone_next = NULL;
	if (due_tail)
		due_tail->gone_next = g;
	else
		due_head = g;
	due_tail = g;
	wf_ready_push(&check_job);
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

/* the first persons of the batch, for a log line: "12, 13, ..." */
static void
batch_names(char *buf, size_t len)
{
	size_t		used = 0;
	int			k;

	buf[0] = '\0';
	for (k = 0; k < batch_n && used + 16 < len; k++)
		used += snprintf(buf + used, len - used, "%s%d", k ? ", " : "", batch[k]->person);
	if (k < batch_n)
		snprintf(buf + used, len - used, ", ...");
}

/*
 * job_send for J_GONE: one query about the first CHECK_BATCH persons due
 * that someone still watches (false: none); the others are let go.
 */
bool
we_send(void)
{
	static char arr[CHECK_BATCH * 12 + 3];
	const char *params[1] = {arr};
	size_t		used = 1;
	group	   *g;

	arr[0] = '{';
	batch_n = 0;
	while (batch_n < CHECK_BATCH && (g = due_head) != NULL)
	{
		if ((due_head = g->gone_next) == NULL)
			due_tail = NULL;
		g->gone_listed = false;
		if (!g->gone_due || g->head == NULL)
		{
			wf_group_maybe_free(g);
			continue;
		}
		g->gone_due = false;
		g->gone_busy = true;
		batch[batch_n++] = g;
		used += snprintf(arr + used, sizeof(arr) - used, "%s%d", batch_n > 1 ? "," : "", g->person);
	}
	if (batch_n == 0)
		return false;
	snprintf(arr + used, sizeof(arr) - used, "}");
	check_job.busy = true;
	listen_send(&check_job, SQL_GONE, 1, params);
	return true;
}

/* g was found gone: every watcher of it ends */
static void
end_gone(group *g)
{
	int			n = 0;

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

/*
 * The check came back (res NULL: the connection was lost first; each
 * person is checked again once it is back, as every watched person is).
 * Each person of the batch is pinned while its answer is applied.
 */
void
we_result(PGresult *res)
{
	bool		ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK &&
		PQntuples(res) == batch_n && PQnfields(res) == 1;

	if (res != NULL && !ok)
	{
		char		names[200];

		batch_names(names, sizeof(names));
		for (int k = 0; k < batch_n; k++)
			retry_later(batch[k]);
		logmsg(LOG_ERROR, "watch: checking that person(s) %s still exist failed (checked again in"
			   " %d ms or more): %s", names, batch_n ? batch[0]->gone_backoff_ms : 0,
			   PQresultStatus(res) == PGRES_TUPLES_OK ? "unexpected rows" : PQresultErrorMessage(res));
	}
	for (int k = 0; k < batch_n; k++)
	{
		group	   *g = batch[k];

		g->gone_busy = false;
		g->pinned = true;
		if (res == NULL)
			g->gone_due = true;
		else if (ok && strcmp(PQgetvalue(res, k, 0), "t") == 0)
			end_gone(g);
		else if (ok)
			g->gone_backoff_ms = 0;
		g->pinned = false;
		if (res != NULL && g->gone_due && g->head != NULL)
			check_due(g);		/* named again while its check was out */
		wf_group_maybe_free(g);
	}
	batch_n = 0;
	if (due_head != NULL)
		wf_ready_push(&check_job);
}
