/*
 * encnotify.h — how a gateway's live encounter streams know they missed
 * nothing while they read changes by id (docs/encounters.md, "Live"),
 * shared by udaconnect-httpd (hub_live.c) and udaconnect-grpcd (watch_live.c):
 *
 *   - the payload of NOTIFY udaconnect_encounter, as
 *     pg_udaconnect/src/encounter_notify.c writes it:
 *         v<version>.<part>/<parts>:<id>.<a>.<b>,-<id>.<a>.<b>,...
 *     (an encounter written, or removed ("-"), at that version, with its
 *     two persons), and that of NOTIFY udaconnect_person_erased (the id of
 *     a person forget_person erased: the person's streams end);
 *   - the tracker of one listening connection: the versions it has heard
 *     whole.  Versions are dense in commit order and every version is
 *     announced, in order, on a connection that stays up; a version heard
 *     out of turn, or a payload it cannot read, means it cannot tell what
 *     it missed: a resync (every stream reads again by version);
 *   - the chain of one watched person: the ids announced for the person
 *     since its last live fetch, the versions that fetch covers, and
 *     whether a stream that caught up by reading by version may join the
 *     live fetches without a gap;
 *   - the step both gateways take for each entry of a version they hear:
 *     the entry noted in the chain of each watched person it names, the
 *     chain put in the list of those the version names (encn_note), the
 *     gateway's own groups reached through a callback.
 *
 * It holds no lock and does no I/O: each gateway calls it under its own
 * lock or on its one stream thread.  It must not decide which stream gets
 * which row (the gateways do, by each stream's position).
 */
#ifndef UDC_ENCNOTIFY_H
#define UDC_ENCNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ids a chain holds at most between two live fetches: 4 kB a person; more
 * and the person's streams read by version instead */
#define ENCN_CHAIN_MAX_IDS 512

typedef struct encn_entry
{
	int64_t		id;
	int32_t		a;				/* the encounter's persons */
	int32_t		b;
	bool		removed;
} encn_entry;

typedef struct encn_payload
{
	int64_t		version;		/* >= 1 */
	int			part;			/* 1 .. parts */
	int			parts;
	const char *entries;		/* within the payload; checked */
} encn_payload;

/* Reads the head and checks every entry; false: not such a payload. */
bool		encn_parse(const char *payload, encn_payload *p);

/* A payload of udaconnect_person_erased: a person id, decimal; false: not one. */
bool		encn_parse_erased(const char *payload, int32_t *person);

/* fn(entry, arg) for each entry of a payload encn_parse accepted, in order. */
void		encn_each(const encn_payload *p, void (*fn) (const encn_entry *e, void *arg),
					  void *arg);

typedef struct encn_tracker
{
	uint64_t	epoch;			/* bumped by every reset and resync */
	int64_t		base;			/* the epoch's first version less one (or a version
								 * heard only in part): the scans after the epoch
								 * began read everything up to it; -1: none yet */
	int64_t		known;			/* versions <= known: heard whole, or read by the
								 * scans after the epoch began; -1: none yet */
	int64_t		cur;			/* the version whose parts are coming; 0: none */
	int			next_part;
	int			parts;
} encn_tracker;

enum encn_verdict
{
	ENCN_SKIP,					/* nothing new: the scans after the epoch began read it */
	ENCN_APPLY,					/* note its entries (of p->version) */
	ENCN_RESYNC,				/* every stream must read by version; nothing to note */
	ENCN_RESYNC_APPLY			/* the same, then note its entries: the new epoch's first */
};

/* Listening anew (a new connection): a new epoch, nothing known. */
void		encn_tracker_reset(encn_tracker *t);

/* What to do with a payload of udaconnect_encounter; p is filled for the APPLYs. */
enum encn_verdict encn_track(encn_tracker *t, const char *payload, encn_payload *p);

/* The highest version anything was heard of (-1: none). */
int64_t		encn_heard(const encn_tracker *t);

typedef struct encn_chain
{
	int64_t		lv;				/* the next live fetch reads versions after lv */
	int64_t		seen;			/* live fetches up to this version are delivered */
	int64_t		hi;				/* the last version announced for the person since
								 * the last fetch was taken; 0: none */
	int64_t		busy_to;		/* a live fetch is out, up to this version; 0: none */
	int64_t    *ids;
	int			nids;
	int			cap;
	bool		named;			/* in the list of the chains the version being
								 * heard names (encn_note) */
	struct encn_chain *nnext;	/* ... the next in it */
} encn_chain;

/*
 * A new chain, or one that lost track (a fetch failed or came back full,
 * too many ids, a resync): the versions up to `heard` count as delivered,
 * so that only a stream that read them by version joins it again.
 */
void		encn_chain_reset(encn_chain *c, int64_t heard);
void		encn_chain_free(encn_chain *c);

/*
 * An entry of `version` names the person: id (0: a removal, found by
 * version).  False: the chain holds ENCN_CHAIN_MAX_IDS or memory is short;
 * the caller resets it and its streams read by version.
 */
bool		encn_chain_note(encn_chain *c, int64_t version, int64_t id);

/* A live fetch is due: something announced, its version heard whole, none out. */
bool		encn_chain_ready(const encn_chain *c, const encn_tracker *t);

/*
 * The live fetch to send: versions (*from, *to], the ids announced (valid
 * until the next note or encn_chain_done).  The chain then waits for
 * encn_chain_done().
 */
void		encn_chain_take(encn_chain *c, int64_t *from, int64_t *to, const int64_t **ids,
							int *nids);

/* The fetch's rows went to the live streams (or it was dropped on a reset). */
void		encn_chain_done(encn_chain *c);

/* Nobody is live: what was announced is dropped as if delivered. */
void		encn_chain_skip(encn_chain *c);

/*
 * May a stream that has every change up to version k (read by version in
 * epoch `epoch`: -1 = before the epoch's first notification) join the live
 * fetches?  Only if nothing announced after k was delivered without it.
 */
bool		encn_chain_may_join(const encn_chain *c, const encn_tracker *t, uint64_t epoch,
								int64_t k);

/* What encn_note is given: the version heard, and the gateway's side. */
typedef struct encn_noter
{
	int64_t		version;

	/*
	 * The chain of the group watching person; NULL when nobody watches it,
	 * or when the gateway reads by version (it marks the group itself then:
	 * nothing is chained).
	 */
	encn_chain *(*chain) (int32_t person);

	/*
	 * The chain holds ENCN_CHAIN_MAX_IDS or memory is short: the gateway
	 * resets it, and its streams read by version.
	 */
	void		(*lost) (int32_t person, encn_chain *c);
	encn_chain **named;			/* the list of the chains the version names */
} encn_noter;

/*
 * encn_each's fn, arg an encn_noter: the entry noted in the chain of each
 * of its persons (once when both are one), a removal by version (id 0);
 * each chain that took it joins the named list once.
 */
void		encn_note(const encn_entry *e, void *noter);

/* The first chain of a named list, taken off it; NULL when it is empty. */
encn_chain *encn_named_pop(encn_chain **head);

/* "{1,2,3}": ids as a PostgreSQL array literal; false when buf is short. */
bool		encn_ids_literal(const int64_t *ids, int n, char *buf, size_t cap);

#endif
