/*
 * hub_int.h: what hub.c (the subscribers and their queues) gives hub_live.c
 * (which fetch each watched person needs, and whom its rows go to) and
 * hub_erased.c (the streams of an erased person end), which are above it,
 * inside the hub of udaconnect-httpd's live encounter streams.  Everything
 * here is guarded by hub_lock.  Nothing outside the three files includes
 * it.
 */
#ifndef UDC_HUB_INT_H
#define UDC_HUB_INT_H

#include <pthread.h>
#include <stddef.h>

#include "encnotify.h"
#include "httpd.h"

#define HUB_BUCKETS 4096

typedef struct group group;

struct sub
{
	struct sub *next;			/* in its group */
	struct sub *prev;
	group	   *g;
	struct MHD_Connection *conn;
	const struct MHD_Daemon *daemon;	/* the worker's daemon serving it */
	int64_t		version;		/* the position: the last event queued */
	int64_t		id;
	int64_t		expires;		/* the stream ends then (0: never) */
	char	   *q;				/* the text to send: q[off .. off + len) */
	size_t		off;
	size_t		len;
	size_t		cap;
	bool		want;			/* needs a scan: may have changes after its
								 * position that no live fetch will bring */
	bool		live;			/* fed by its group's live fetches (by id) */
	bool		full;			/* an event did not fit: waits to be sent */
	bool		suspended;		/* hub_read suspended the connection */
	bool		ended;			/* the stream ends when the queue is sent */
	bool		touched;		/* pages of hub_read's buffer may hold data */
};

struct group
{
	group	   *hnext;			/* hash chain */
	group	   *pnext;			/* the pending list */
	int32_t		person;
	struct sub *subs;
	unsigned	nsubs;
	bool		pending;		/* in the pending list */
	bool		dirty;			/* scan mode: notified since its last scan began */
	bool		in_flight;		/* a fetch of it is running ... */
	bool		flight_live;	/* ... by id (else a scan) */
	bool		flight_check;	/* ... or a check that the person exists */
	bool		check_due;		/* a check must be sent (hub_erased.c) */
	int64_t		from_version;	/* the scan out reads after this position */
	int64_t		from_id;
	int64_t		k_send;			/* ... having heard every version up to this */
	uint64_t	k_epoch;		/* ... in this epoch */
	encn_chain	chain;			/* what its live fetches read (by-id mode); in
								 * the named list (encn_note) */
};

#define GROUP_OF_CHAIN(c) ((group *) ((char *) (c) - offsetof(group, chain)))

extern pthread_mutex_t hub_lock;
extern encn_tracker hub_trk;

/* hub.c */
extern group **hub_slot(int32_t person);
extern group *hub_groups(int bucket);	/* a hash chain; HUB_BUCKETS of them */
extern void hub_pend(group *g);
extern group *hub_pop(void);
extern void hub_group_release(group *g);
extern void hub_resume(struct sub *s);
extern bool hub_feed(struct sub *s, const struct hub_change *rows, char **text, size_t *tlen,
					 int n);

extern struct sub *hub_sub_create(struct MHD_Connection *c, int32_t person, int64_t version,
								  int64_t id, int64_t expires, bool *at_cap, bool *new_group);
extern void hub_sub_erased(struct sub *s);

/* hub_erased.c */
extern void hub_check_due(group *g);
extern void hub_check_all(void);
extern bool hub_check_take(group *g, struct hub_fetch *f);
extern void hub_check_failed(group *g);

#endif
