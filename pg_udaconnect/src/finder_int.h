/*
 * finder_int.h — private header of the connection finder: the relations and
 * index column positions it reads, its working state, and the candidate test
 * every index entry goes through.  Only finder*.c and encounter_match.c
 * include it.
 *
 * The finder is split by responsibility, as pgvector splits its HNSW index
 * behind hnsw.h.  finder.c (the SQL entry point: arguments, the order of the
 * steps, the rows) calls finder_index.c (opening and verifying the
 * relations), finder_parts.c (the partitions of a time span: which
 * partitions of location to read, each opened with its own indexes),
 * finder_scan.c (index access, partition by partition: the own points, the
 * btree descent and leaf walk, the coarse-range index scans, predicate
 * locks, statistics) and finder_match.c (the probes, the time segments to
 * scan, the hit table, the order of the hits).  Of those four, only
 * finder_parts.c calls another (finder_index.c, to verify each partition's
 * columns and indexes), and none calls back, so there is no circle.
 * encounter_match.c runs the same steps in pairs mode, calling the same
 * files and finder.c's finder_scan_groups().  The per-entry candidate test
 * (consider(), nearest_own(), add_hit()) is defined here, static, and not in
 * finder_match.c: the scan loops of finder_scan.c run it for every index
 * entry they read, and a call into another file could not be inlined and
 * would go through the PLT.
 * Nothing here may allocate or look anything up per entry.
 */
#ifndef UDC_FINDER_INT_H
#define UDC_FINDER_INT_H

#include "postgres.h"

#include <math.h>

#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "geodesy.h"
#include "udc_pg.h"

/*
 * The finder reads its two location indexes by column position, straight
 * from the index tuples, so finder_open_rels() refuses any index whose
 * layout differs from the one below (and from sql/src/10-schema.sql).
 */

/*
 * Columns of location_person_time_idx:
 *   (person_id, creation_time) INCLUDE (coordinate)
 */
#define PT_IDX_PERSON	1
#define PT_IDX_TIME		2
#define PT_IDX_COORD	3

/*
 * Columns of location_cell_time_idx:
 *   (cell, creation_time) INCLUDE (person_id, id, coordinate)
 */
#define IDX_CELL	1
#define IDX_TIME	2
#define IDX_PERSON	3
#define IDX_ID		4
#define IDX_COORD	5

/*
 * One partition of udaconnect.location that the finder reads (the table
 * itself when it is not partitioned, the 1.4 layout): its heap, its own two
 * indexes, the creation_time range its rows can have, the attribute numbers
 * of its columns (a partition may lay them out differently from the parent),
 * and the scan state finder_scan.c keeps for it.  A buffer, index scan, slot,
 * insertion key or heap fetcher belongs to one relation: reusing one on
 * another partition would read the wrong pages (the visibility map's pin
 * only compares block numbers), so each partition has its own.
 */
typedef struct FinderPart
{
	Relation	heap;
	Relation	person_time;	/* its (person_id, creation_time) index */
	Relation	cell_time;		/* its (cell, creation_time) index */
	TimestampTz lo;				/* lowest creation_time it can hold */
	TimestampTz hi;				/* highest, inclusive */
	bool		owned;			/* opened by finder_parts_open() */
	AttrNumber	att_id;
	AttrNumber	att_person;
	AttrNumber	att_coord;
	AttrNumber	att_time;
	/* finder_scan.c: set up when a segment first reaches the partition */
	bool		scanning;
	IndexScanDesc scan_range;	/* cell range and time range: 4 keys */
	BTScanInsert key;			/* (cell, creation_time) >= */
	Buffer		leaf;			/* pinned, unlocked: where the last walk ended */
	Buffer		vmbuf;			/* visibility map page in use */
	IndexFetchTableData *fetch; /* heap fetches where not all-visible */
	TupleTableSlot *slot;
} FinderPart;

/*
 * Relations the finder works with: those it finds by name (the two location
 * indexes only on a plain, 1.4, table: a partitioned one has none), and the
 * partitions finder_parts_open() chose for a time span, each with its own.
 */
typedef struct FinderRels
{
	Relation	person;
	Relation	person_pkey;
	Relation	location;
	Relation	loc_person_time;
	Relation	loc_cell_time;
	bool		partitioned;	/* location is a partitioned table */
	AttrNumber	att_id;			/* location's columns */
	AttrNumber	att_person;
	AttrNumber	att_coord;
	AttrNumber	att_time;
	int			nparts;
	FinderPart *parts;			/* in time order; DEFAULT, if read, last */
} FinderRels;

/* Does partition p hold rows whose creation_time may lie in [a, b]? */
static inline bool
finder_part_overlaps(const FinderPart *p, TimestampTz a, TimestampTz b)
{
	return p->lo <= b && p->hi >= a;
}

/* One of the person's own locations. */
typedef struct OwnPoint
{
	double		lat;
	double		lon;
	TimestampTz t;
} OwnPoint;

/* A cell range of an own point's covering: one scan target. */
typedef struct Probe
{
	int64		lo;
	int64		hi;
	int			own;			/* index into own points (time order) */
} Probe;

/* A location of another person close enough to one of ours. */
typedef struct Hit
{
	int64		id;
	int32		person_id;
	double		lat;
	double		lon;
	TimestampTz t;
	double		dist;
} Hit;

typedef struct HitEntry
{
	int64		id;				/* hash key */
	int			idx;			/* into hits[] */
} HitEntry;

/* One leaf page's entries (finder_scan.c) */
struct LeafBatch;

typedef struct FinderState
{
	FinderRels *rels;
	int32		pid;
	double		meters;
	double		max_dlat;		/* udc_max_dlat(meters) */
	bool		has_window;
	int64		window;			/* microseconds */
	OwnPoint   *own;
	Hit		   *hits;
	int			nhits;
	int			caphits;
	HTAB	   *seen;
	bool		dedupe;			/* can a location be seen twice? */
	bool		skip_killed;	/* LP_DEAD entries may be skipped */
	struct LeafBatch *batch;	/* one leaf page's entries */
	/* statistics: DEBUG1, and the density that sizes finder_merge_gap() */
	long		nscans;
	long		nreused;		/* walks started on the previous walk's leaf */
	long		nentries;
	long		ndist;
	double		scanned_us;		/* total length of the scanned segments */
	/* the days asked about, [t0, t1) */
	TimestampTz t0;
	TimestampTz t1;

	/*
	 * Encounter matching (encounter_match.c): own points of many persons,
	 * and every close pair is kept, not the nearest own point per location.
	 */
	bool		pairs;
	const int32 *own_person;	/* person of each own point */
	struct RawPair *raw;
	int			nraw;
	int			capraw;
} FinderState;

/* A close pair found in pairs mode: own point `own` and a location. */
typedef struct RawPair
{
	int			own;
	int32		person;
	int64		id;
	double		lat;
	double		lon;
	TimestampTz t;
	double		dist;
} RawPair;

/* finder_index.c */

/*
 * Open (AccessShareLock, held to the end of the transaction) and verify the
 * tables and the indexes found by name: an index that is missing, not valid,
 * or not laid out as above raises a clear error naming what is wrong and the
 * DDL that recreates it.  Only the relcache entries are consulted: the check
 * costs a few comparisons per call.
 */
extern void finder_open_rels(FinderRels *r);
extern void finder_close_rels(FinderRels *r);

/*
 * The same checks for one partition: its columns (their attribute numbers
 * into p) and its two indexes, with errors naming the partition.
 */
extern void finder_check_part(FinderPart *p);

/* finder_memo.c */

/* A partition as finder_index.c verified it: its indexes and columns. */
typedef struct FinderPartMemo
{
	Oid			part;			/* hash key */
	Oid			person_time;
	Oid			cell_time;
	AttrNumber	att_id;
	AttrNumber	att_person;
	AttrNumber	att_coord;
	AttrNumber	att_time;
} FinderPartMemo;

/*
 * Whether part is remembered (and what, into *out unless NULL); remember
 * one; the count of relcache invalidations this backend processed since it
 * first asked, which moves whenever an entry may have become stale.
 */
extern bool finder_memo_get(Oid part, FinderPartMemo *out);
extern void finder_memo_put(const FinderPartMemo *m);
extern uint64 finder_memo_generation(void);

/* finder_parts.c */

/*
 * The partitions whose rows may have a creation_time in [lo, hi], opened
 * (AccessShareLock, held to the end of the transaction) with their own
 * indexes and verified, into r->parts; a plain table is one partition with
 * an unbounded range.
 */
extern void finder_parts_open(FinderRels *r, TimestampTz lo, TimestampTz hi);
extern void finder_parts_close(FinderRels *r);

/* finder_scan.c */
extern bool finder_person_exists(FinderRels *r, int32 pid);
extern OwnPoint *finder_read_own_points(FinderRels *r, int32 pid, TimestampTz t0,
										TimestampTz t1, int *count);
extern void finder_scan_begin(FinderState *st);
extern void finder_scan_end(FinderState *st);
extern int64 finder_merge_gap(const FinderState *st);
extern void finder_scan_segment(FinderState *st, const Probe *group, int ngroup,
								TimestampTz a, TimestampTz b);

/* finder.c */
extern void finder_scan_groups(FinderState *st, const Probe *probes, int nprobes);

/* finder_match.c */
extern Probe *finder_make_probes(FinderState *st, int nown, int *nprobes);
extern bool finder_next_segment(const FinderState *st, const Probe *group,
								int ngroup, int64 gap, int *k,
								TimestampTz *a, TimestampTz *b);
extern void finder_hits_begin(FinderState *st);
extern void finder_sort_hits(FinderState *st);

/*
 * The candidate test, run for every index entry read (see the file comment
 * for why it is here).
 */

/* First of the group's points (in time order) at or after t - window. */
static inline int
window_start(const FinderState *st, const Probe *group, int ngroup, TimestampTz t)
{
	int			lo = 0,
				hi = ngroup;
	TimestampTz tmin;

	if (!st->has_window)
		return 0;
	tmin = (t < PG_INT64_MIN + st->window) ? PG_INT64_MIN : t - st->window;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (st->own[group[mid].own].t < tmin)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Smallest exact distance <= meters from (lat, lon, t) to the group's points. */
static inline double
nearest_own(FinderState *st, const Probe *group, int ngroup, double lat, double lon,
			TimestampTz t)
{
	double		best = -1.0;
	double		cut = st->meters * (1.0 + 1e-3) + 1e-3;
	double		max_dlat = st->max_dlat;
	int			from = window_start(st, group, ngroup, t);

	for (int k = from; k < ngroup; k++)
	{
		const OwnPoint *p = &st->own[group[k].own];
		double		d;

		if (st->has_window)
		{
			int64		dt;

			if (pg_sub_s64_overflow(p->t, t, &dt) || dt > st->window)
				break;			/* later points are later still */
		}
		if (fabs(lat - p->lat) > max_dlat)
			continue;			/* too far north or south: no trigonometry */
		if (udc_approx_ok(lat, p->lat) &&
			udc_approx_distance(lat, lon, p->lat, p->lon) > cut)
			continue;
		st->ndist++;
		d = udc_geodesic_distance(lat, lon, p->lat, p->lon);
		if (d >= 0.0 && d <= st->meters && (best < 0.0 || d < best))
			best = d;
	}
	return best;
}

/*
 * Record a hit; where coarse ranges may overlap (st->dedupe), a location seen
 * again keeps its smallest distance instead of being reported twice.  It runs
 * per hit, not per entry: kept out of line, as the compiler chose when the
 * finder was one file, so that its hash and repalloc paths do not grow the
 * scan loops.
 */
static pg_noinline pg_attribute_unused() void
add_hit(FinderState *st, int64 id, int32 person, double lat, double lon,
		TimestampTz t, double dist)
{
	if (st->dedupe)
	{
		bool		found;
		HitEntry   *e = hash_search(st->seen, &id, HASH_ENTER, &found);

		if (found)
		{
			if (dist < st->hits[e->idx].dist)
				st->hits[e->idx].dist = dist;
			return;
		}
		e->idx = st->nhits;
	}
	if (st->nhits == st->caphits)
	{
		st->caphits *= 2;
		st->hits = repalloc_huge(st->hits, sizeof(Hit) * st->caphits);
	}
	st->hits[st->nhits++] = (Hit) {id, person, lat, lon, t, dist};
}

/*
 * Pairs mode: every own point of another person within the window and the
 * distance makes a pair with this location.  Out of line for the same reason
 * as add_hit(): the finder's scan loops must not grow.
 */
static pg_noinline pg_attribute_unused() void
consider_pairs(FinderState *st, const Probe *group, int ngroup, int32 person,
			   int64 id, Datum coord, TimestampTz t)
{
	double		lat,
				lon;
	double		cut = st->meters * (1.0 + 1e-3) + 1e-3;

	udc_point_coordinates(coord, &lat, &lon);
	for (int k = window_start(st, group, ngroup, t); k < ngroup; k++)
	{
		int			o = group[k].own;
		const OwnPoint *p = &st->own[o];
		int64		dt;
		double		d;

		if (pg_sub_s64_overflow(p->t, t, &dt) || dt > st->window)
			break;
		if (st->own_person[o] == person || fabs(lat - p->lat) > st->max_dlat)
			continue;
		if (udc_approx_ok(lat, p->lat) &&
			udc_approx_distance(lat, lon, p->lat, p->lon) > cut)
			continue;
		st->ndist++;

		/*
		 * The distance is not symmetric in its last bits: measure from the
		 * lower person's point, so a pair gets the same distance (and the
		 * same verdict at the threshold) whichever of its locations is the
		 * own one, as the rebuild must find what the ingest found.
		 */
		if (st->own_person[o] < person)
			d = udc_geodesic_distance(p->lat, p->lon, lat, lon);
		else
			d = udc_geodesic_distance(lat, lon, p->lat, p->lon);
		if (d < 0.0 || d > st->meters)
			continue;
		if (st->nraw == st->capraw)
		{
			st->capraw = Max(256, st->capraw * 2);
			st->raw = st->raw ? repalloc_huge(st->raw, sizeof(RawPair) * st->capraw)
				: palloc(sizeof(RawPair) * st->capraw);
		}
		st->raw[st->nraw++] = (RawPair) {o, person, id, lat, lon, t, d};
	}
}

/* A candidate location: keep it if another person's and close to the group. */
static inline void
consider(FinderState *st, const Probe *group, int ngroup, int32 person, int64 id,
		 Datum coord, TimestampTz t)
{
	double		lat,
				lon,
				d;

	if (unlikely(st->pairs))
	{
		consider_pairs(st, group, ngroup, person, id, coord, t);
		return;
	}
	if (person == st->pid)
		return;
	udc_point_coordinates(coord, &lat, &lon);
	d = nearest_own(st, group, ngroup, lat, lon, t);
	if (d >= 0.0)
		add_hit(st, id, person, lat, lon, t, d);
}

#endif							/* UDC_FINDER_INT_H */
