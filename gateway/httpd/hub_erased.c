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
 * A payload that names no person (not the extension's: anyone may notify)
 * has every watched person checked, but at most once per ALL_EVERY (the
 * payloads that come meanwhile share the next such check-all and its one
 * log line, which hub_erased_tick makes): notifying in a loop costs one
 * round of checks a second.
 *
 * This file decides; it must not touch a queue but through hub_sub_erased
 * (hub.c), nor talk to the database.
 */
#include <stdio.h>
#include <time.h>

#include "hub_int.h"

#define ALL_EVERY 1.0			/* seconds between check-alls of bad payloads */

/* check-alls asked for by payloads that name no person (hub_lock) */
static double all_last = -1e9;	/* when the last one was made */
static int	all_asked;			/* payloads since it (the next one is due) */
static char all_payload[48];	/* the first of them */

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

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

/* the check-all unexpected payloads asked for, and its log line (hub_lock held) */
static void
check_all_asked(double now)
{
	logmsg(LOG_WARNING, "encounter streams: unexpected payload \"%s\" of udaconnect_person_erased"
		   " (%d such in the last %.0f s or more); every watched person is checked", all_payload,
		   all_asked, ALL_EVERY);
	all_last = now;
	all_asked = 0;
	hub_check_all();
}

void
hub_erased(const char *payload)
{
	int32_t		person;
	group	   *g;
	double		now = mono();

	pthread_mutex_lock(&hub_lock);
	if (encn_parse_erased(payload, &person))
	{
		if ((g = *hub_slot(person)) != NULL)
			hub_check_due(g);
	}
	else
	{
		if (all_asked++ == 0)
			snprintf(all_payload, sizeof(all_payload), "%.40s", payload);
		if (now - all_last >= ALL_EVERY)
			check_all_asked(now);
		/* else hub_erased_tick makes it, ALL_EVERY after the last one */
	}
	pthread_mutex_unlock(&hub_lock);
}

double
hub_erased_tick(void)
{
	double		now = mono();
	double		at = 0;

	pthread_mutex_lock(&hub_lock);
	if (all_asked > 0 && now - all_last >= ALL_EVERY)
		check_all_asked(now);
	if (all_asked > 0)
		at = all_last + ALL_EVERY;
	pthread_mutex_unlock(&hub_lock);
	return at;
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
