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
 * What it must not do: block, or end a watcher but through watch.c.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "watch_int.h"

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

void
we_check_all(void)
{
	for (int b = 0; b < WATCH_BUCKETS; b++)
		for (group *g = wf_bucket(b); g; g = g->hnext)
			check_due(g);
}

/* a payload of NOTIFY udaconnect_person_erased (listen.c's hook) */
void
we_erased(const char *payload)
{
	int32_t		person;
	group	   *g;

	if (!encn_parse_erased(payload, &person))
	{
		logmsg(LOG_WARNING, "watch: unexpected payload \"%.40s\" of udaconnect_person_erased;"
			   " every watched person is checked", payload);
		we_check_all();
	}
	else if ((g = *wf_group_slot(person)) != NULL)
		check_due(g);
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
		logmsg(LOG_ERROR, "watch: checking that person %d still exists failed: %s", g->person,
			   PQresultErrorMessage(res));
	if (res != NULL && g->gone_due && g->head != NULL)
		wf_ready_push(&g->gone_job);
}
