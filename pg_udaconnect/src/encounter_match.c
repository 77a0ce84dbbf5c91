/*
 * encounter_match.c — the matches of a set of locations: every location of
 * another person within encounter_distance and encounter_window of one of
 * them.  It runs the connection finder's own probes and scans (finder.c's
 * finder_scan_groups(), in the finder's pairs mode: consider_pairs() in
 * finder_int.h), with the set's locations as the "own points" of many
 * persons at once, over the partitions of location that the set's times,
 * widened by the window, overlap (finder_parts.c: a match may lie in another
 * partition than its own point, across midnight, or in DEFAULT), and then
 * keeps each match once (the rule of EncSet in encounter_int.h).
 *
 * It must not write anything nor decide what a match means beyond the
 * finder's test (distance as the finder measures it, |dt| <= window): the
 * chaining of matches into encounters is SQL's (encounter_merge in
 * sql/src/50-encounters.sql).  The caller provides the snapshot that must
 * see the set's own rows.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "encounter_int.h"
#include "finder_int.h"
#include "geodesy.h"

static inline int
cmp_point(const EncPoint *x, const EncPoint *y)
{
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

#define ST_SORT sort_points
#define ST_ELEMENT_TYPE EncPoint
#define ST_COMPARE(a, b) cmp_point(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

int
enc_cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

int
enc_cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * The ids of a statement's new rows are nearly always a dense range (one
 * identity sequence): a bitmap of it costs a bit per id, where an array
 * would cost 64.  Ids spread wider than 64 times their number go into a
 * sorted array instead.
 */
void
enc_idset_init(EncSet *set, int64 min, int64 max, int64 count)
{
	uint64		span;

	set->by_id = true;
	set->nids = 0;
	span = (uint64) max - (uint64) min + 1;
	if (count > 0 && span / 64 <= (uint64) count)
	{
		set->base = min;
		set->nbits = (int64) span;
		set->bits = palloc_extended(sizeof(uint64) * ((span + 63) / 64),
									 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		set->ids = NULL;
	}
	else
	{
		set->bits = NULL;
		set->ids = palloc_extended(sizeof(int64) * Max(count, 1), MCXT_ALLOC_HUGE);
	}
}

void
enc_idset_add(EncSet *set, int64 id)
{
	if (set->bits)
	{
		uint64		k = (uint64) id - (uint64) set->base;

		Assert(k < (uint64) set->nbits);
		set->bits[k / 64] |= UINT64CONST(1) << (k % 64);
	}
	else
		set->ids[set->nids++] = id;
}

void
enc_idset_finish(EncSet *set)
{
	if (set->ids)
		qsort(set->ids, set->nids, sizeof(int64), enc_cmp_int64);
}

/* The set of the ids of pts (n >= 1), ready for enc_find_matches(). */
void
enc_idset_of_points(EncSet *set, const EncPoint *pts, int n)
{
	int64		min = PG_INT64_MAX,
				max = PG_INT64_MIN;

	for (int i = 0; i < n; i++)
	{
		min = Min(min, pts[i].id);
		max = Max(max, pts[i].id);
	}
	enc_idset_init(set, min, max, n);
	for (int i = 0; i < n; i++)
		enc_idset_add(set, pts[i].id);
	enc_idset_finish(set);
}

static bool
idset_contains(const EncSet *set, int64 id)
{
	if (set->bits)
	{
		uint64		k = (uint64) id - (uint64) set->base;

		return k < (uint64) set->nbits && (set->bits[k / 64] >> (k % 64)) & 1;
	}
	return bsearch(&id, set->ids, set->nids, sizeof(int64), enc_cmp_int64) != NULL;
}

/* Is location (id, person, t) one of the set's? */
static bool
in_set(const EncSet *set, int64 id, int32 person, TimestampTz t)
{
	if (set->by_id)
		return idset_contains(set, id);
	if (t < set->lo || t >= set->hi)
		return false;
	return set->npersons == 0 ||
		bsearch(&person, set->persons, set->npersons, sizeof(int32), enc_cmp_int32) != NULL;
}

/* t + d, saturated at the ends of the timestamp range */
static TimestampTz
sat_add(TimestampTz t, int64 d)
{
	TimestampTz r;

	if (pg_add_s64_overflow(t, d, &r))
		return d < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	return r;
}

/* The midpoint of two nearby points (their longitudes may straddle 180). */
static void
midpoint(double lat1, double lon1, double lat2, double lon2, double *lat, double *lon)
{
	double		d = lon2 - lon1;

	*lat = (lat1 + lat2) / 2.0;
	if (d > 180.0)
		lon2 -= 360.0;
	else if (d < -180.0)
		lon2 += 360.0;
	*lon = (lon1 + lon2) / 2.0;
	if (*lon < -180.0)
		*lon += 360.0;
	else if (*lon > 180.0)
		*lon -= 360.0;
}

/* The raw pairs that count (see EncSet), as matches with person_a < person_b. */
static EncMatch *
keep_matches(const FinderState *st, const EncPoint *pts, const EncSet *set, int *nmatches)
{
	EncMatch   *out = palloc(sizeof(EncMatch) * Max(st->nraw, 1));
	int			n = 0;

	for (int i = 0; i < st->nraw; i++)
	{
		const RawPair *r = &st->raw[i];
		const EncPoint *p = &pts[r->own];
		EncMatch   *m = &out[n];
		double		lat1 = p->lat,
					lon1 = p->lon,
					lat2 = r->lat,
					lon2 = r->lon;

		if (r->id > p->id && in_set(set, r->id, r->person, r->t))
			continue;			/* counted from r's side */
		if (p->person < r->person)
		{
			*m = (EncMatch) {p->person, r->person, p->id, r->id, p->t, r->t, r->dist};
		}
		else
		{
			*m = (EncMatch) {r->person, p->person, r->id, p->id, r->t, p->t, r->dist};
			lat1 = r->lat, lon1 = r->lon, lat2 = p->lat, lon2 = p->lon;
		}
		/* from person_a's point, so the result does not depend on the side */
		midpoint(lat1, lon1, lat2, lon2, &m->lat, &m->lon);
		n++;
	}
	*nmatches = n;
	return out;
}

/*
 * The matches of pts[0..n) that count for `set` (pts must be the set's
 * locations, or part of them).  Sorts pts by time.
 */
EncMatch *
enc_find_matches(EncPoint *pts, int n, const EncSet *set, double meters,
				 int64 window, int *nmatches)
{
	FinderRels	rels;
	FinderState st = {0};
	OwnPoint   *own;
	int32	   *persons;
	Probe	   *probes;
	int			nprobes;
	EncMatch   *out;

	*nmatches = 0;
	if (n == 0)
		return NULL;
	sort_points(pts, n);
	own = palloc(sizeof(OwnPoint) * n);
	persons = palloc(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
	{
		own[i] = (OwnPoint) {pts[i].lat, pts[i].lon, pts[i].t};
		persons[i] = pts[i].person;
	}

	finder_open_rels(&rels);
	/* the partitions where a match of the set's points can lie */
	finder_parts_open(&rels, sat_add(own[0].t, -window), sat_add(own[n - 1].t, window));
	st.rels = &rels;
	st.meters = meters;
	st.max_dlat = udc_max_dlat(meters);
	st.has_window = true;
	st.window = window;
	st.t0 = DT_NOBEGIN;
	st.t1 = DT_NOEND;
	st.own = own;
	st.pairs = true;
	st.own_person = persons;
	probes = finder_make_probes(&st, n, &nprobes);
	finder_scan_begin(&st);
	finder_scan_groups(&st, probes, nprobes);
	finder_scan_end(&st);
	finder_parts_close(&rels);
	finder_close_rels(&rels);

	out = keep_matches(&st, pts, set, nmatches);
	elog(DEBUG1, "encounter matcher: %d locations, %d probes, %ld index scans, %ld entries, %ld exact distances, %d pairs, %d matches",
		 n, nprobes, st.nscans, st.nentries, st.ndist, st.nraw, *nmatches);
	if (st.raw)
		pfree(st.raw);
	pfree(probes);
	pfree(own);
	pfree(persons);
	return out;
}
