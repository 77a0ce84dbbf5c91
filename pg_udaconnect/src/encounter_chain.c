/*
 * encounter_chain.c — a batch's matches chained into islands: the matches
 * of one pair of persons, sorted by start, with a new island wherever a
 * match starts more than encounter_gap after the latest end before it
 * (enc_starts_island()); per island its span, number of matches, closest
 * match (distance, then the two location ids) and matches per place.
 *
 * The merge with the stored encounters (encounter_merge.c) applies the same
 * rule to these islands and the stored encounters, so it handles a few
 * islands instead of every match: islands of islands are the islands of
 * the matches, and every aggregate combines the same way however the
 * matches are grouped (docs/encounters.md).  This file must not read or
 * write tables.
 */
#include "postgres.h"

#include "encounter_int.h"

/* a match and its place (0: none), for sorting */
typedef struct Placed
{
	const EncMatch *m;
	int32		place;
} Placed;

static inline TimestampTz
match_start(const EncMatch *m)
{
	return Min(m->a_t, m->b_t);
}

static inline TimestampTz
match_end(const EncMatch *m)
{
	return Max(m->a_t, m->b_t);
}

static inline int
cmp_placed(const Placed *x, const Placed *y)
{
	const EncMatch *a = x->m,
			   *b = y->m;

	if (a->person_a != b->person_a)
		return a->person_a < b->person_a ? -1 : 1;
	if (a->person_b != b->person_b)
		return a->person_b < b->person_b ? -1 : 1;
	if (match_start(a) != match_start(b))
		return match_start(a) < match_start(b) ? -1 : 1;
	return (match_end(a) > match_end(b)) - (match_end(a) < match_end(b));
}

#define ST_SORT sort_placed
#define ST_ELEMENT_TYPE Placed
#define ST_COMPARE(a, b) cmp_placed(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* The places of the island's matches, counted, into the output arrays. */
static void
count_places(EncIslands *out, int32 *places, int n)
{
	qsort(places, n, sizeof(int32), enc_cmp_int32);
	for (int i = 0; i < n;)
	{
		int			j = i;

		while (j < n && places[j] == places[i])
			j++;
		if (places[i] != 0)
		{
			out->place_ids[out->nplaces] = places[i];
			out->place_counts[out->nplaces] = j - i;
			out->nplaces++;
		}
		i = j;
	}
}

/*
 * Chain m[0..n) (place[i]: the place of m[i], 0 none; place may be NULL)
 * into islands with the given gap (microseconds).  The output's arrays are
 * palloc'd, sized for n.
 */
void
enc_chain(const EncMatch *m, const int32 *place, int n, int64 gap, EncIslands *out)
{
	Placed	   *p = palloc(sizeof(Placed) * Max(n, 1));
	int32	   *scratch = palloc(sizeof(int32) * Max(n, 1));

	out->n = 0;
	out->nplaces = 0;
	out->isl = palloc(sizeof(EncIsland) * Max(n, 1));
	out->place_ids = palloc(sizeof(int32) * Max(n, 1));
	out->place_counts = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
		p[i] = (Placed) {&m[i], place ? place[i] : 0};
	sort_placed(p, n);

	for (int i = 0; i < n;)
	{
		EncIsland  *isl = &out->isl[out->n++];
		const EncMatch *first = p[i].m;
		const EncMatch *best = first;
		TimestampTz end = match_end(first);
		int			k = 0;
		int			j;

		isl->start = match_start(first);
		isl->place_from = out->nplaces;
		for (j = i; j < n; j++)
		{
			const EncMatch *x = p[j].m;

			if (x->person_a != first->person_a || x->person_b != first->person_b)
				break;
			/* a start more than the gap after the latest end: a new island */
			if (j > i && enc_starts_island(match_start(x), end, gap))
				break;
			end = Max(end, match_end(x));
			if (enc_closer(x->dist, x->a_id, x->b_id, best->dist, best->a_id, best->b_id))
				best = x;
			scratch[k++] = p[j].place;
		}
		isl->person_a = first->person_a;
		isl->person_b = first->person_b;
		isl->end = end;
		isl->matches = j - i;
		isl->closest = *best;
		count_places(out, scratch, k);
		isl->place_n = out->nplaces - isl->place_from;
		i = j;
	}
	pfree(p);
	pfree(scratch);
}
