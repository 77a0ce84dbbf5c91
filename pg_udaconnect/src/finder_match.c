/*
 * finder_match.c — what the connection finder looks for and what it found:
 * the probes (each own point's covering by core/geodesy.c, as cell ranges,
 * sorted so that equal ranges form one group), the time segments each group
 * is scanned over (the windows [t - window, t + window] of its points,
 * merged), and the hits (the table that reports each location once, and
 * their final order).
 *
 * The candidate test itself, run for every index entry, is in finder_int.h
 * (consider(), nearest_own(), add_hit()) so that the scan loops compile it in
 * place.  This file must not read relations or buffers (finder_scan.c does)
 * nor call into finder.c or finder_scan.c: it works on the finder's state in
 * memory only.
 */
#include "postgres.h"

#include "common/int.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "finder_int.h"
#include "geodesy.h"

static inline int
cmp_probe(const Probe *x, const Probe *y)
{
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return (x->own > y->own) - (x->own < y->own);
}

static inline int
cmp_hit(const Hit *x, const Hit *y)
{
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* sort_probes() and sort_hits(): qsort with the comparison inlined */
#define ST_SORT sort_probes
#define ST_ELEMENT_TYPE Probe
#define ST_COMPARE(a, b) cmp_probe(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

#define ST_SORT sort_hits
#define ST_ELEMENT_TYPE Hit
#define ST_COMPARE(a, b) cmp_hit(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * The (cell range, own point) pairs of all own points, sorted by cell range
 * (then by own point, that is by time): each run of equal ranges is a group
 * that one scan per time segment serves.  Sets st->dedupe when a coarse range
 * occurs, as coarse ranges of different points may overlap.
 */
Probe *
finder_make_probes(FinderState *st, int nown, int *nprobes)
{
	udc_key_range ranges[UDC_COVER_MAX];
	Size		cap = 1024;
	Probe	   *probes = palloc(sizeof(Probe) * cap);
	int			np = 0;

	for (int i = 0; i < nown; i++)
	{
		int			n = udc_cover(st->own[i].lat, st->own[i].lon, st->meters, ranges);

		CHECK_FOR_INTERRUPTS();
		if (np + n > cap)
		{
			cap = Max(cap * 2, (Size) (np + n));
			probes = repalloc_huge(probes, sizeof(Probe) * cap);
		}
		for (int k = 0; k < n; k++)
		{
			probes[np++] = (Probe) {ranges[k].lo, ranges[k].hi, i};
			/* single cells never overlap, and merged intervals are disjoint */
			if (ranges[k].lo != ranges[k].hi)
				st->dedupe = true;
		}
	}
	sort_probes(probes, np);
	*nprobes = np;
	return probes;
}

static TimestampTz
sat_add(TimestampTz t, int64 d)
{
	TimestampTz r;

	if (pg_add_s64_overflow(t, d, &r))
		return d < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	return r;
}

/*
 * The next time segment [*a, *b] to scan for a group (ngroup probes of one
 * cell range, in time order), starting at its point *k, which it advances;
 * false when the group is done.  Without a window it is all of [t0, t1).
 * With one, the windows [t - window, t + window] of consecutive points are
 * merged while the gap between the segment and the next window is at most
 * `gap` (finder_merge_gap(): reading the entries in between is expected to
 * cost less than another descent).
 */
bool
finder_next_segment(const FinderState *st, const Probe *group, int ngroup,
					int64 gap, int *k, TimestampTz *a, TimestampTz *b)
{
	if (*k >= ngroup)
		return false;
	if (!st->has_window)
	{
		*a = st->t0;
		*b = st->t1 - 1;
		*k = ngroup;
		return true;
	}
	for (bool open = false; *k < ngroup; (*k)++)
	{
		TimestampTz t = st->own[group[*k].own].t;
		TimestampTz pa = Max(st->t0, sat_add(t, -st->window));
		TimestampTz pb = Min(st->t1 - 1, sat_add(t, st->window));

		if (!open)
		{
			*a = pa;
			*b = pb;
			open = true;
		}
		else if (pa <= sat_add(*b, gap + 1))
		{
			if (pb > *b)
				*b = pb;
		}
		else
			break;
	}
	return true;
}

/* An empty hit list, and the table on location ids behind st->dedupe. */
void
finder_hits_begin(FinderState *st)
{
	HASHCTL		hctl;

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(HitEntry);
	hctl.hcxt = CurrentMemoryContext;
	st->seen = hash_create("udaconnect finder hits", 1024, &hctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	st->caphits = 256;
	st->hits = palloc(sizeof(Hit) * st->caphits);
}

/* The hits in the order the function returns them: time, then location id. */
void
finder_sort_hits(FinderState *st)
{
	sort_hits(st->hits, st->nhits);
}
