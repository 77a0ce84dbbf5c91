/*
 * encounter_places.c — stored encounters placed anew after places changed
 * (docs/encounters.md, "Places"), for places_refresh()
 * (sql/src/55-place-changes.sql), which holds the encounter lock:
 *
 * - encounter_matches_near(cells, ranges, from, to): the matches between
 *   two locations of the given cell keys (the cells near a changed area)
 *   whose earlier location is in [from, to), found with the finder's probes
 *   (enc_find_matches(), as the merge finds them) among those locations;
 *   their midpoints tell which lie in the area, and so which encounters
 *   may be placed otherwise now;
 * - encounter_places_refresh(ids): for each encounter given, the places of
 *   its matches counted again as the place table is now (the matches found
 *   again, each placed at its midpoint by the merge's own rule,
 *   enc_places_of()); the rows whose place_id, place_ids or place_matches
 *   change are rewritten: same id, the next version, announced as every
 *   write is (a live stream is told).  An encounter whose matches found
 *   again are not the stored ones (a setting changed since, say) is
 *   recomputed by encounters_rebuild() over its span for its two persons
 *   instead: the table then equals a rebuild either way.
 *
 * It must not decide which areas to look at (the queue's), nor change
 * anything of an encounter but its places (its matches, span and closest
 * match do not depend on places).  It reads on snapshots taken after the
 * caller's encounter_lock(), as every encounter writer does.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "encounter_int.h"

/* a stored encounter being re-placed */
typedef struct Cand
{
	int64		id;
	int32		pa;
	int32		pb;
	TimestampTz s;
	TimestampTz e;
	int64		matches;
	int64		closest_a;
	int64		closest_b;
	int32	   *place_ids;
	int64	   *place_counts;
	int			nplaces;
	int			island;			/* its island among the matches found, or -1 */
} Cand;

static int
cand_cmp_key(int32 pa, int32 pb, TimestampTz s, const Cand *c)
{
	if (pa != c->pa)
		return pa < c->pa ? -1 : 1;
	if (pb != c->pb)
		return pb < c->pb ? -1 : 1;
	return (s > c->s) - (s < c->s);
}

/*
 * The candidate of pair (pa, pb) whose span holds [s, e], or -1; cands
 * are sorted by pair and start, and a pair's encounters do not overlap.
 */
static int
cand_of(const Cand *c, int n, int32 pa, int32 pb, TimestampTz s, TimestampTz e)
{
	int			lo = 0,
				hi = n - 1,
				found = -1;

	/* the last candidate at or before (pa, pb, s) */
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (cand_cmp_key(pa, pb, s, &c[mid]) >= 0)
		{
			found = mid;
			lo = mid + 1;
		}
		else
			hi = mid - 1;
	}
	if (found < 0 || c[found].pa != pa || c[found].pb != pb || c[found].e < e)
		return -1;
	return found;
}

/* The encounters of ids as they are stored now, by pair and start. */
static Cand *
read_cands(ArrayType *ids, int *ncands)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1] = {PointerGetDatum(ids)};
	Cand	   *c;

	if (SPI_execute_with_args("SELECT id, person_a, person_b, started_at, ended_at, matches,"
							  "       closest_a, closest_b, place_ids, place_matches"
							  "  FROM udaconnect.encounter WHERE id = ANY ($1)"
							  " ORDER BY person_a, person_b, started_at",
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.encounter failed");
	c = palloc(sizeof(Cand) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum	   *pids,
				   *cnts;

		c[i].id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		c[i].pa = DatumGetInt32(SPI_getbinval(t, d, 2, &isnull));
		c[i].pb = DatumGetInt32(SPI_getbinval(t, d, 3, &isnull));
		c[i].s = DatumGetTimestampTz(SPI_getbinval(t, d, 4, &isnull));
		c[i].e = DatumGetTimestampTz(SPI_getbinval(t, d, 5, &isnull));
		c[i].matches = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
		c[i].closest_a = DatumGetInt64(SPI_getbinval(t, d, 7, &isnull));
		c[i].closest_b = DatumGetInt64(SPI_getbinval(t, d, 8, &isnull));
		c[i].nplaces = enc_array_elems(SPI_getbinval(t, d, 9, &isnull), INT4OID, &pids);
		if (enc_array_elems(SPI_getbinval(t, d, 10, &isnull), INT8OID, &cnts) != c[i].nplaces)
			c[i].nplaces = -1;	/* not what a merge writes: recomputed */
		c[i].place_ids = palloc(sizeof(int32) * Max(c[i].nplaces, 1));
		c[i].place_counts = palloc(sizeof(int64) * Max(c[i].nplaces, 1));
		for (int k = 0; k < c[i].nplaces; k++)
		{
			c[i].place_ids[k] = DatumGetInt32(pids[k]);
			c[i].place_counts[k] = DatumGetInt64(cnts[k]);
		}
		c[i].island = -1;
	}
	*ncands = (int) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	return c;
}

/*
 * The locations of person_a of every candidate within its span, each once:
 * a match of an encounter has one location of each person in the span, so
 * these "own points" find every match of every candidate.  A person's
 * spans less than 10 minutes apart are read as one range (a probe of the
 * partitioned table costs more than the few points between them).  OFFSET
 * 0 keeps the lateral subquery a probe of each partition's (person_id,
 * creation_time) btree: flattened, the planner may hash-join a scan of
 * every location instead.
 */
static EncPoint *
read_points(const Cand *c, int n, int *npts)
{
	Oid			types[3] = {INT4ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	Datum	   *p = palloc(sizeof(Datum) * n);
	Datum	   *s = palloc(sizeof(Datum) * n);
	Datum	   *e = palloc(sizeof(Datum) * n);
	Datum		args[3];
	EncPoint   *pts;

	for (int i = 0; i < n; i++)
	{
		p[i] = Int32GetDatum(c[i].pa);
		s[i] = TimestampTzGetDatum(c[i].s);
		e[i] = TimestampTzGetDatum(c[i].e);
	}
	args[0] = PointerGetDatum(construct_array(p, n, INT4OID, 4, true, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(s, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_array(e, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_with_args("SELECT l.id, l.person_id, ST_Y(l.coordinate), ST_X(l.coordinate), l.creation_time"
							  "  FROM (SELECT g.p, min(g.s) AS s, max(g.e) AS e"
							  "          FROM (SELECT x.*, sum(x.brk) OVER (PARTITION BY x.p ORDER BY x.s, x.e) AS run"
							  "                  FROM (SELECT c.p, c.s, c.e,"
							  "                               CASE WHEN c.s > max(c.e) OVER (PARTITION BY c.p ORDER BY c.s, c.e"
							  "                                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
							  "                                              + interval '10 minutes' THEN 1 ELSE 0 END AS brk"
							  "                          FROM unnest($1, $2, $3) AS c(p, s, e)) x) g"
							  "         GROUP BY g.p, g.run) c"
							  "  CROSS JOIN LATERAL (SELECT l.id, l.person_id, l.coordinate, l.creation_time"
							  "                        FROM udaconnect.location l"
							  "                       WHERE l.person_id = c.p AND l.creation_time >= c.s"
							  "                         AND l.creation_time <= c.e OFFSET 0) l",
							  3, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.location failed");
	pts = enc_points_of_rows(SPI_processed);
	*npts = (int) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	return pts;
}

/*
 * The candidates' matches, found again: the points' matches (counted once,
 * the EncSet rule) that lie within a candidate's span and pair.
 */
static EncMatch *
find_matches(Cand *c, int n, int *nkept)
{
	int			npts,
				nm,
				k = 0;
	EncPoint   *pts = read_points(c, n, &npts);
	EncSet		set = {0};
	EncMatch   *m;

	*nkept = 0;
	if (npts == 0)
		return NULL;
	enc_idset_of_points(&set, pts, npts);
	/* as the merge: a snapshot taken now, after the lock */
	CommandCounterIncrement();
	PushActiveSnapshot(GetLatestSnapshot());
	m = enc_find_matches(pts, npts, &set, enc_setting_distance(), enc_setting_window(), &nm);
	PopActiveSnapshot();
	for (int i = 0; i < nm; i++)
		if (cand_of(c, n, m[i].person_a, m[i].person_b, Min(m[i].a_t, m[i].b_t),
					Max(m[i].a_t, m[i].b_t)) >= 0)
			m[k++] = m[i];
	*nkept = k;
	return m;
}

/*
 * Each candidate's island among the matches found: the one that starts
 * where it starts and equals it in everything but the places.  A candidate
 * without one keeps island -1 (recomputed in full).
 */
static void
match_islands(Cand *c, int n, const EncIslands *is)
{
	for (int i = 0; i < is->n; i++)
	{
		const EncIsland *x = &is->isl[i];
		int			k = cand_of(c, n, x->person_a, x->person_b, x->start, x->end);

		if (k >= 0 && c[k].s == x->start && c[k].e == x->end && c[k].matches == x->matches &&
			c[k].closest_a == x->closest.a_id && c[k].closest_b == x->closest.b_id &&
			c[k].nplaces >= 0)
			c[k].island = i;
	}
}

static bool
same_places(const Cand *c, const EncIslands *is, const EncIsland *x)
{
	if (c->nplaces != x->place_n)
		return false;
	for (int k = 0; k < x->place_n; k++)
		if (c->place_ids[k] != is->place_ids[x->place_from + k] ||
			c->place_counts[k] != is->place_counts[x->place_from + k])
			return false;
	return true;
}

/*
 * Rewrite the places of the candidates whose island places them otherwise
 * (the row read again through the writer, under the lock); returns how
 * many were written.
 */
static int64
write_places(const Cand *c, int n, const EncIslands *is)
{
	EncWriter  *w = NULL;
	int			cap = 4;
	EncItem    *items = palloc(sizeof(EncItem) * cap);
	int64		written = 0;

	for (int i = 0; i < n; i++)
	{
		const EncIsland *x;
		EncOut		o = {0};
		int			got;

		if (c[i].island < 0)
			continue;
		x = &is->isl[c[i].island];
		if (same_places(&c[i], is, x))
			continue;
		if (w == NULL)
		{
			/* the merge's snapshot rule; the writer takes the next version */
			CommandCounterIncrement();
			PushActiveSnapshot(GetTransactionSnapshot());
			w = enc_writer_open(n);
		}
		got = enc_read_pair(w, c[i].pa, c[i].pb, c[i].s, c[i].e, &items, 0, &cap);
		for (int k = 0; k < got; k++)
			if (items[k].id == c[i].id)
				o.keep = &items[k];
		if (o.keep == NULL)
			elog(ERROR, "encounter %lld went while the encounter lock was held", (long long) c[i].id);
		o.person_a = c[i].pa;
		o.person_b = c[i].pb;
		o.start = o.keep->s;
		o.end = o.keep->e;
		o.matches = o.keep->n;
		o.closest = o.keep;
		o.place_ids = is->place_ids + x->place_from;
		o.place_counts = is->place_counts + x->place_from;
		o.nplaces = x->place_n;
		/* the most matches, ties to the lowest id (ids ascending) */
		o.top = -1;
		for (int k = 0; k < o.nplaces; k++)
			if (o.top < 0 || o.place_counts[k] > o.place_counts[o.top])
				o.top = k;
		enc_write(w, &o);
	}
	if (w != NULL)
	{
		written = enc_writer_close(w);
		PopActiveSnapshot();
	}
	pfree(items);
	return written;
}

/* The candidates whose matches found again are not the stored ones. */
static int64
rebuild_unmatched(const Cand *c, int n)
{
	Oid			types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4ARRAYOID};
	int64		written = 0;
	int			nrebuilt = 0;

	for (int i = 0; i < n; i++)
	{
		Datum		pair[2] = {Int32GetDatum(c[i].pa), Int32GetDatum(c[i].pb)};
		Datum		args[3];
		bool		isnull;

		if (c[i].island >= 0)
			continue;
		args[0] = TimestampTzGetDatum(c[i].s);
		args[1] = TimestampTzGetDatum(c[i].e);
		args[2] = PointerGetDatum(construct_array(pair, 2, INT4OID, 4, true, TYPALIGN_INT));
		if (SPI_execute_with_args("SELECT udaconnect.encounters_rebuild($1, $2, $3)",
								  3, types, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "udaconnect.encounters_rebuild() failed");
		written += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		nrebuilt++;
	}
	if (nrebuilt > 0)
		ereport(DEBUG1,
				(errmsg("udaconnect places: %d encounters were not their matches found again (a setting changed since?) and were recomputed in full",
						nrebuilt)));
	return written;
}

/*
 * encounter_places_refresh(ids bigint[]) -> bigint: the encounters of ids
 * (those that still exist) placed as the places are now; returns how many
 * rows were written.
 */
PG_FUNCTION_INFO_V1(udc_encounter_places_refresh);
Datum
udc_encounter_places_refresh(PG_FUNCTION_ARGS)
{
	ArrayType  *ids;
	Cand	   *c;
	int			n,
				nm;
	EncMatch   *m;
	EncIslands	is = {0};
	int64		written;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids must not be null")));
	ids = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_ELEMTYPE(ids) != INT8OID || ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids must be a one-dimensional bigint[]")));
	if (ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) == 0)
		PG_RETURN_INT64(0);

	/* what the call allocates goes with SPI_finish(): bounded by its ids */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT udaconnect.encounter_lock()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "udaconnect.encounter_lock() failed");
	c = read_cands(ids, &n);
	m = find_matches(c, n, &nm);
	enc_chain(m, nm > 0 ? enc_places_of(m, nm) : NULL, nm, enc_setting_gap(), &is);
	match_islands(c, n, &is);
	written = write_places(c, n, &is);
	written += rebuild_unmatched(c, n);
	SPI_finish();
	PG_RETURN_INT64(written);
}

/* The locations of the cells or ranges with creation_time in [from, to]. */
static EncPoint *
read_near(Datum cells, Datum lo, Datum hi, TimestampTz from, TimestampTz to, int *npts)
{
	Oid			types[5] = {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[5] = {cells, lo, hi, TimestampTzGetDatum(from), TimestampTzGetDatum(to)};
	EncPoint   *pts;

	/*
	 * a probe of the partitions' (cell, creation_time) btrees a key (OFFSET
	 * 0: never flattened into a join with a scan of location)
	 */
	if (SPI_execute_with_args("SELECT l.id, l.person_id, ST_Y(l.coordinate), ST_X(l.coordinate), l.creation_time"
							  "  FROM unnest($1) AS k(cell)"
							  "  CROSS JOIN LATERAL (SELECT l.id, l.person_id, l.coordinate, l.creation_time"
							  "                        FROM udaconnect.location l"
							  "                       WHERE l.cell = k.cell AND l.creation_time >= $4"
							  "                         AND l.creation_time <= $5 OFFSET 0) l"
							  " UNION ALL "
							  "SELECT l.id, l.person_id, ST_Y(l.coordinate), ST_X(l.coordinate), l.creation_time"
							  "  FROM unnest($2, $3) AS r(lo, hi)"
							  "  CROSS JOIN LATERAL (SELECT l.id, l.person_id, l.coordinate, l.creation_time"
							  "                        FROM udaconnect.location l"
							  "                       WHERE l.cell BETWEEN r.lo AND r.hi AND l.creation_time >= $4"
							  "                         AND l.creation_time <= $5 OFFSET 0) l",
							  5, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.location failed");
	pts = enc_points_of_rows(SPI_processed);
	*npts = (int) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	return pts;
}

static Datum
int8_array_arg(FunctionCallInfo fcinfo, int arg)
{
	ArrayType  *a;

	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("cells, range_lo and range_hi must not be null")));
	a = PG_GETARG_ARRAYTYPE_P(arg);
	if (ARR_ELEMTYPE(a) != INT8OID || ARR_NDIM(a) > 1 || array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cells, range_lo and range_hi must be one-dimensional bigint[] without NULLs")));
	return PointerGetDatum(a);
}

/*
 * encounter_matches_near(cells bigint[], range_lo bigint[], range_hi
 * bigint[], from_time, to_time) -> (person_a, person_b, started_at,
 * ended_at, latitude, longitude): the matches whose two locations lie in
 * the cells (or the inclusive ranges of keys) and whose earlier location
 * has creation_time in [from_time, to_time), each once, with the midpoint.
 */
PG_FUNCTION_INFO_V1(udc_encounter_matches_near);
Datum
udc_encounter_matches_near(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		cells = int8_array_arg(fcinfo, 0);
	Datum		lo = int8_array_arg(fcinfo, 1);
	Datum		hi = int8_array_arg(fcinfo, 2);
	TimestampTz from,
				to,
				upto;
	EncPoint   *pts;
	int64	   *ids;
	int			npts,
				nm;
	EncSet		set = {0};
	EncMatch   *m = NULL;

	if (PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_time and to_time must not be null")));
	from = PG_GETARG_TIMESTAMPTZ(3);
	to = PG_GETARG_TIMESTAMPTZ(4);
	InitMaterializedSRF(fcinfo, 0);
	/* the later location of a match is at most the window after the earlier */
	if (pg_add_s64_overflow(to, enc_setting_window(), &upto))
		upto = DT_NOEND;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pts = read_near(cells, lo, hi, from, upto, &npts);
	if (npts > 0)
	{
		ids = palloc(sizeof(int64) * npts);
		for (int i = 0; i < npts; i++)
			ids[i] = pts[i].id;
		qsort(ids, npts, sizeof(int64), enc_cmp_int64);
		enc_idset_init(&set, ids[0], ids[npts - 1], npts);
		for (int i = 0; i < npts; i++)
			enc_idset_add(&set, ids[i]);
		enc_idset_finish(&set);
		CommandCounterIncrement();
		PushActiveSnapshot(GetLatestSnapshot());
		m = enc_find_matches(pts, npts, &set, enc_setting_distance(), enc_setting_window(), &nm);
		PopActiveSnapshot();
		for (int i = 0; i < nm; i++)
		{
			TimestampTz s = Min(m[i].a_t, m[i].b_t);
			Datum		values[6];
			bool		nulls[6] = {false, false, false, false, false, false};

			/* both locations near: a match with one farther is not in the area */
			if (s < from || s >= to ||
				!bsearch(&m[i].a_id, ids, npts, sizeof(int64), enc_cmp_int64) ||
				!bsearch(&m[i].b_id, ids, npts, sizeof(int64), enc_cmp_int64))
				continue;
			values[0] = Int32GetDatum(m[i].person_a);
			values[1] = Int32GetDatum(m[i].person_b);
			values[2] = TimestampTzGetDatum(s);
			values[3] = TimestampTzGetDatum(Max(m[i].a_t, m[i].b_t));
			values[4] = Float8GetDatum(m[i].lat);
			values[5] = Float8GetDatum(m[i].lon);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}
