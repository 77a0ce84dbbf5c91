/*
 * encounter_int.h — private header of the encounter maintenance: the match
 * (two locations of different persons within encounter_distance and
 * encounter_window), the set of locations a call is adding, and the calls
 * between encounter.c (entry points, settings, locking) and
 * encounter_match.c (finding the matches with the finder's probes).  Only
 * encounter*.c include it.
 */
#ifndef UDC_ENCOUNTER_INT_H
#define UDC_ENCOUNTER_INT_H

#include "encounter.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

/*
 * One match, person_a < person_b; a_id and a_t are person_a's location.
 * (lat, lon) is the midpoint of the two locations.
 */
typedef struct EncMatch
{
	int32		person_a;
	int32		person_b;
	int64		a_id;
	int64		b_id;
	TimestampTz a_t;
	TimestampTz b_t;
	double		dist;
	double		lat;
	double		lon;
} EncMatch;

/*
 * The locations being added: either the ids given (sorted), or every
 * location with creation_time in [lo, hi) (and, if npersons > 0, of one of
 * the persons given, sorted).  A match between two of them is counted once,
 * from its location with the larger id; a match with a location outside the
 * set is counted from the location in the set.  So adding a set of
 * locations, in one call or in any number of calls over parts of it, counts
 * each new match exactly once (docs/encounters.md).
 */
typedef struct EncSet
{
	/* by id: a bitmap over [base, base + nbits) or, if sparse, a sorted array */
	bool		by_id;
	int64		base;
	int64		nbits;
	uint64	   *bits;
	int64	   *ids;
	int64		nids;
	/* by time (and person) */
	TimestampTz lo;
	TimestampTz hi;
	const int32 *persons;
	int			npersons;
} EncSet;

/*
 * A batch's matches of one pair of persons chained into one island
 * (encounter_chain.c): what encounter_merge() merges with the stored
 * encounters.  Its places are place_ids/place_counts[place_from ..
 * place_from + place_n) of its EncIslands.
 */
typedef struct EncIsland
{
	int32		person_a;
	int32		person_b;
	TimestampTz start;
	TimestampTz end;
	int64		matches;
	EncMatch	closest;
	int			place_from;
	int			place_n;
} EncIsland;

typedef struct EncIslands
{
	EncIsland  *isl;
	int			n;
	int32	   *place_ids;
	int64	   *place_counts;
	int			nplaces;
} EncIslands;

/*
 * The chaining rule, for matches (encounter_chain.c) and for islands and
 * stored encounters (encounter_merge.c): sorted by start, an item starts a
 * new island when it starts more than the gap after the latest end before
 * it (written so that no subtraction overflows).
 */
static inline bool
enc_starts_island(TimestampTz start, TimestampTz latest_end, int64 gap)
{
	return start > latest_end && start - latest_end > gap;
}

/*
 * The representative match of an encounter is its closest: the smallest
 * distance, then the smallest location ids (a total order, so it does not
 * depend on the order matches come in).  Is (d1, a1, b1) closer than
 * (d2, a2, b2)?
 */
static inline bool
enc_closer(double d1, int64 a1, int64 b1, double d2, int64 a2, int64 b2)
{
	if (d1 != d2)
		return d1 < d2;
	if (a1 != a2)
		return a1 < a2;
	return b1 < b2;
}

/* encounter.c: the settings (metres, microseconds) and the place rule */
extern double enc_setting_distance(void);
extern int64 enc_setting_window(void);
extern int64 enc_setting_gap(void);
extern int32 *enc_places_of(const EncMatch *m, int n);
extern EncPoint *enc_points_of_rows(uint64 n);

/* encounter_chain.c */
extern void enc_chain(const EncMatch *m, const int32 *place, int n, int64 gap,
					  EncIslands *out);

/* encounter_match.c */
extern int	enc_cmp_int32(const void *a, const void *b);	/* for qsort, bsearch */
extern int	enc_cmp_int64(const void *a, const void *b);
extern void enc_idset_init(EncSet *set, int64 min, int64 max, int64 count);
extern void enc_idset_add(EncSet *set, int64 id);
extern void enc_idset_finish(EncSet *set);
extern void enc_idset_of_points(EncSet *set, const EncPoint *pts, int n);
extern EncMatch *enc_find_matches(EncPoint *pts, int n, const EncSet *set,
								  double meters, int64 window, int *nmatches);

/* encounter_merge.c */
extern int64 enc_merge(const EncIslands *is, int64 gap);

/*
 * encounter_write.c: reading a pair's stored encounters and writing
 * encounter and encounter_removed rows below SQL, for encounter_merge.c.
 * An EncItem is a new island or a stored encounter while merging; an
 * EncOut one encounter as it is written.
 */
typedef struct EncItem
{
	TimestampTz s;
	TimestampTz e;
	int64		n;
	/* the closest match: distance, then the two location ids */
	double		dist;
	int64		ra;
	int64		rb;
	double		lat;
	double		lon;
	int32	   *place_ids;		/* sorted */
	int64	   *place_counts;
	int			nplaces;
	bool		stored;
	int64		id;				/* stored only */
	ItemPointerData tid;
} EncItem;

typedef struct EncOut
{
	const EncItem *keep;		/* the stored row that keeps its id, or NULL */
	int32		person_a;
	int32		person_b;
	TimestampTz start;
	TimestampTz end;
	int64		matches;
	const EncItem *closest;		/* the item holding the closest match */
	int32	   *place_ids;		/* summed per place, sorted by id */
	int64	   *place_counts;
	int			nplaces;
	int			top;			/* index of the place with most, or -1 */
} EncOut;

typedef struct EncWriter EncWriter;

extern EncWriter *enc_writer_open(int cap);
extern int	enc_read_pair(EncWriter *w, int32 pa, int32 pb, TimestampTz lo,
						  TimestampTz hi, EncItem **items, int n, int *cap);
extern int64 enc_write(EncWriter *w, const EncOut *o);
extern void enc_write_removed(EncWriter *w, const EncItem *it, int64 keep,
							  int32 pa, int32 pb);
extern int64 enc_writer_close(EncWriter *w);
extern int	enc_array_elems(Datum d, Oid type, Datum **out);

/* encounter_notify.c: what the live streams are told (docs/encounters.md) */
typedef struct EncNotice
{
	int64		id;
	int32		person_a;
	int32		person_b;
	bool		removed;		/* logged in encounter_removed, not written */
} EncNotice;

extern void enc_notify_version(int64 version, EncNotice *notes, int n);
extern int	enc_notify_persons(int32 *persons, int n);

/* encounter_rels.c: the relations read and written below SQL, checked */
typedef struct EncColumn
{
	const char *name;
	Oid			type;
} EncColumn;

/* the columns of udaconnect.encounter, all of them, in table order */
enum
{
	ENC_ID, ENC_A, ENC_B, ENC_START, ENC_END, ENC_MATCHES, ENC_MIND, ENC_PLACE,
	ENC_PLACE_IDS, ENC_PLACE_MATCHES, ENC_LAT, ENC_LON, ENC_CLOSEST_A,
	ENC_CLOSEST_B, ENC_VERSION, ENC_NCOLS
};
extern const EncColumn enc_encounter_cols[ENC_NCOLS];

extern Oid	enc_relid(Oid nsp, const char *name);
extern void enc_columns(Relation rel, const EncColumn *cols, int n, bool exact,
						AttrNumber *att);
extern Relation enc_open_btree(Oid nsp, Relation heap, const char *name,
							   const AttrNumber *keys, int nkeys, const char *ddl);
extern Relation enc_open_pair_idx(Oid nsp, Relation enc, const AttrNumber *att);
extern Relation enc_open_b_idx(Oid nsp, Relation enc, const AttrNumber *att);

/*
 * encounter_clock.longest_us (from 1.7): the longest ended_at - started_at
 * of any encounter written, so that a reader of [from, to) may start its
 * index scans at started_at >= from - longest.  Its attribute number, or
 * InvalidAttrNumber on an older version's table (the library serves them
 * too: nothing is tracked nor bounded there).
 */
extern AttrNumber enc_clock_longest_att(Relation clock);

/* Its value as the active snapshot sees it: -1 when unknown (no column, no
 * row). */
extern int64 enc_clock_longest(Oid nsp);

/* Raise it to at least span (encounter_clock locked by the caller), with
 * the table owner's rights, as encounter_lock() writes the clock. */
extern void enc_clock_raise_longest(Oid nsp, int64 span);

#endif							/* UDC_ENCOUNTER_INT_H */
