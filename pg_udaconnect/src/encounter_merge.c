/*
 * encounter_merge.c — merges a batch's islands (encounter_chain.c) into
 * the stored encounters: for each pair of persons, the stored encounters
 * that reach within encounter_gap of the new islands' span and the new
 * islands together are split into islands by the chaining rule
 * (enc_starts_island(), encounter_int.h); an island with a new item becomes
 * one encounter, which keeps the lowest stored id among its stored
 * encounters (the others are removed and logged with merged_into) or gets a
 * new one.  Every aggregate (first start, last end, number of matches, the
 * closest match, matches per place) combines the same way however the
 * matches were grouped, which is why the maintained table equals the
 * rebuilt one (docs/encounters.md).
 *
 * Reading and writing the rows is encounter_write.c's; this file must not
 * touch a relation itself, nor decide what a match is (encounter_match.c).
 * Until 1.3 this was one SQL statement, whose hash joins, window functions
 * and tuplestores took most of a dense batch's time.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/snapmgr.h"

#include "encounter_int.h"

static int
item_cmp(const void *x, const void *y)
{
	const EncItem *a = x;
	const EncItem *b = y;

	if (a->s != b->s)
		return a->s < b->s ? -1 : 1;
	return (a->e > b->e) - (a->e < b->e);
}

/* A place id and its count, for summing the places of a group. */
typedef struct PlaceCount
{
	int32		id;
	int64		n;
} PlaceCount;

static int
place_cmp(const void *x, const void *y)
{
	return enc_cmp_int32(&((const PlaceCount *) x)->id, &((const PlaceCount *) y)->id);
}

/*
 * The places of items[0..n) summed per place into o (ids ascending), and
 * the place with most matches (ties: the lowest id), or -1 without places.
 */
static void
group_places(const EncItem *items, int n, EncOut *o)
{
	int			total = 0;
	int			k = 0;
	PlaceCount *pc;

	for (int i = 0; i < n; i++)
		total += items[i].nplaces;
	pc = palloc(sizeof(PlaceCount) * Max(total, 1));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < items[i].nplaces; j++)
			pc[k++] = (PlaceCount) {items[i].place_ids[j], items[i].place_counts[j]};
	qsort(pc, total, sizeof(PlaceCount), place_cmp);
	o->place_ids = palloc(sizeof(int32) * Max(total, 1));
	o->place_counts = palloc(sizeof(int64) * Max(total, 1));
	o->nplaces = 0;
	o->top = -1;
	for (int i = 0; i < total;)
	{
		int64		sum = 0;
		int			j = i;

		for (; j < total && pc[j].id == pc[i].id; j++)
			sum += pc[j].n;
		o->place_ids[o->nplaces] = pc[i].id;
		o->place_counts[o->nplaces] = sum;
		if (o->top < 0 || sum > o->place_counts[o->top])
			o->top = o->nplaces;
		o->nplaces++;
		i = j;
	}
	pfree(pc);
}

/*
 * Write one island of a pair that holds a new item: items[0..n) sorted by
 * start.  The lowest stored id keeps its row, the other stored rows go.
 */
static void
write_group(EncWriter *w, int32 pa, int32 pb, const EncItem *items, int n)
{
	EncOut		o = {0};
	int64		id;

	o.person_a = pa;
	o.person_b = pb;
	o.start = items[0].s;
	o.end = items[0].e;
	o.closest = &items[0];
	for (int i = 0; i < n; i++)
	{
		o.end = Max(o.end, items[i].e);
		o.matches += items[i].n;
		if (enc_closer(items[i].dist, items[i].ra, items[i].rb,
					   o.closest->dist, o.closest->ra, o.closest->rb))
			o.closest = &items[i];
		if (items[i].stored && (o.keep == NULL || items[i].id < o.keep->id))
			o.keep = &items[i];
	}
	group_places(items, n, &o);
	id = enc_write(w, &o);
	for (int i = 0; i < n; i++)
		if (items[i].stored && &items[i] != o.keep)
			enc_write_removed(w, &items[i], id, pa, pb);
	pfree(o.place_ids);
	pfree(o.place_counts);
}

/*
 * Merge the islands is->isl[from..to) of one pair (sorted by start) with
 * the pair's stored encounters and write the islands that changed.
 */
static void
merge_pair(EncWriter *w, const EncIslands *is, int from, int to, int64 gap)
{
	const EncIsland *first = &is->isl[from];
	TimestampTz lo = first->start;
	TimestampTz hi = first->end;
	int			cap = (to - from) * 2 + 8;
	EncItem    *items = palloc(sizeof(EncItem) * cap);
	int			n = 0;

	for (int i = from; i < to; i++)
	{
		const EncIsland *x = &is->isl[i];

		lo = Min(lo, x->start);
		hi = Max(hi, x->end);
		items[n++] = (EncItem) {
			.s = x->start,.e = x->end,.n = x->matches,.dist = x->closest.dist,
				.ra = x->closest.a_id,.rb = x->closest.b_id,.lat = x->closest.lat,
				.lon = x->closest.lon,.place_ids = is->place_ids + x->place_from,
				.place_counts = is->place_counts + x->place_from,.nplaces = x->place_n,
				.stored = false
		};
	}
	n = enc_read_pair(w, first->person_a, first->person_b, lo - gap, hi + gap, &items, n, &cap);
	qsort(items, n, sizeof(EncItem), item_cmp);
	for (int i = 0; i < n;)
	{
		TimestampTz end = items[i].e;
		bool		has_new = !items[i].stored;
		int			j = i + 1;

		for (; j < n && !enc_starts_island(items[j].s, end, gap); j++)
		{
			end = Max(end, items[j].e);
			has_new |= !items[j].stored;
		}
		if (has_new)
			write_group(w, first->person_a, first->person_b, items + i, j - i);
		i = j;
	}
	pfree(items);
}

/*
 * Merge the islands (sorted by pair, then start) into udaconnect.encounter,
 * with encounter_clock locked; gap in microseconds.  Returns the number of
 * encounters written.  The rows are read on a snapshot taken now, after
 * the lock and this command's earlier writes, as the SQL statement this
 * replaces read them.
 */
int64
enc_merge(const EncIslands *is, int64 gap)
{
	EncWriter  *w;
	int64		written;

	if (is->n == 0)
		return 0;
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	w = enc_writer_open(is->n);
	for (int i = 0; i < is->n;)
	{
		int			j = i + 1;

		CHECK_FOR_INTERRUPTS();
		while (j < is->n && is->isl[j].person_a == is->isl[i].person_a &&
			   is->isl[j].person_b == is->isl[i].person_b)
			j++;
		merge_pair(w, is, i, j, gap);
		i = j;
	}
	written = enc_writer_close(w);
	PopActiveSnapshot();
	return written;
}
