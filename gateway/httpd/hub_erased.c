/*
 * hub_erased.c: the live encounter streams of a person who was erased
 * (udaconnect.forget_person) end, each with a last event, "erased", naming
 * the person; a client that connects again is answered 404 by sse.c
 * (api_encounter_position), so EventSource stops (docs/encounters.md,
 * "Live", "The end of an erased person's streams").
 *
 * The hub does not end a stream on NOTIFY udaconnect_person_erased's word
 * alone (any role may notify any channel): the notification, a new
 * subscriber, and a new LISTEN make the person's group due for a check,
 * which the stream thread sends on its listening connection (listen.c:
 * whether the person still exists, many persons in one statement), and
 * only a person the check finds gone ends its streams.  Why no stream of
 * an erased person stays open: a check is sent, after LISTEN, once the
 * subscriber is in the hub; it either sees the erasure committed, or the
 * erasure commits after it was sent and its notification comes on that
 * connection, is processed after the subscriber joined, and brings another
 * check; a connection lost in between is made again, and every group is
 * checked then.
 *
 * This file decides; it must not touch a queue but through hub_sub_erased
 * (hub.c), nor talk to the database.
 */
#include <stdio.h>

#include "hub_int.h"

/* g is checked once the stream thread gets to it (hub_lock held). */
void
hub_check_due(group *g)
{
	g->check_due = true;
	hub_pend(g);
}

/* Every watched person is checked (hub_lock held): a new LISTEN. */
void
hub_check_all(void)
{
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (group *g = hub_groups(b); g; g = g->hnext)
			hub_check_due(g);
}

void
hub_erased(const char *payload)
{
	int32_t		person;
	group	   *g;

	pthread_mutex_lock(&hub_lock);
	if (encn_parse_erased(payload, &person))
	{
		if ((g = *hub_slot(person)) != NULL)
			hub_check_due(g);
	}
	else
	{
		logmsg(LOG_WARNING, "encounter streams: unexpected payload \"%.40s\" of "
			   "udaconnect_person_erased; every watched person is checked", payload);
		hub_check_all();
	}
	pthread_mutex_unlock(&hub_lock);
}

/*
 * g's check, if one is due and a stream could end (hub_lock held): true
 * with f filled, g's fetch out.
 */
bool
hub_check_take(group *g, struct hub_fetch *f)
{
	bool		open = false;

	if (!g->check_due)
		return false;
	g->check_due = false;
	for (struct sub *s = g->subs; s && !open; s = s->next)
		open = !s->ended;
	if (!open)
		return false;
	f->check = true;
	f->person = g->person;
	f->nids = 0;
	g->in_flight = g->flight_check = true;
	return true;
}

/* g's check failed (hub_lock held): it is made again. */
void
hub_check_failed(group *g)
{
	g->in_flight = g->flight_check = false;
	hub_check_due(g);
}

void
hub_checked(int32_t person, bool gone)
{
	group	   *g;
	unsigned	n = 0;

	pthread_mutex_lock(&hub_lock);
	g = *hub_slot(person);
	if (g)
	{
		g->in_flight = g->flight_check = false;
		if (gone)
			for (struct sub *s = g->subs; s; s = s->next)
			{
				n += !s->ended;
				hub_sub_erased(s);
			}
		if (n)
			logmsg(LOG_INFO, "encounter streams: person %d was erased; %u stream(s) of it end",
				   (int) person, n);
		/* fetches that waited for the check; or the group goes */
		hub_pend(g);
	}
	pthread_mutex_unlock(&hub_lock);
}
