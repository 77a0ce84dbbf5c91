/*
 * finder.c — udaconnect.find_connections(): who crossed paths with a person.
 *
 * Algorithm (see docs/design.md):
 *  0. finder_open_rels() (finder_index.c) opens the tables and indexes and
 *     refuses any index whose layout differs from the column positions the
 *     reads below use (finder_int.h).
 *  1. Read the person's own locations in [t0, t1) through the btree
 *     (person_id, creation_time).
 *  2. For each of them, core/geodesy.c gives the grid cells (as ranges of
 *     fine cell keys) that can hold a point within `meters`; group the
 *     (cell range, own location) pairs by cell range and merge the time
 *     intervals [t - window, t + window] of each group.
 *  3. Scan the btree (cell, creation_time) once per (cell range, merged
 *     interval): with single-cell ranges both columns bound the scan, so only
 *     candidates that are close in space and time are ever read.
 *  4. Keep a candidate of another person if the exact geodesic distance
 *     (Vincenty on WGS84) to some own location within the window is at most
 *     `meters`, remembering the smallest such distance.  Each location is
 *     reported once (a hash on its id merges the rare overlapping ranges).
 *
 * Memory: the person's own locations, their cell ranges, and the output.
 * Nothing depends on the size of the table.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/transam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "access/itup.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "finder_int.h"
#include "geodesy.h"
#include "udc_pg.h"

static bool
person_exists(FinderRels *r, int32 pid)
{
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(r->person, NULL);
	bool		found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pid));
	scan = index_beginscan(r->person, r->person_pkey, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return found;
}

/*
 * Next visible entry of an index scan, with n columns: read from the index
 * tuple where the heap page is all-visible (as nodeIndexonlyscan.c does: the
 * indexes INCLUDE what the finder needs), from the heap tuple otherwise.
 * idx[i] is a column's number in the index, heap[i] in the table; they are
 * all NOT NULL.  Values stay valid until the next call.
 */
static bool
next_entry(IndexScanDesc scan, Buffer *vmbuf, TupleTableSlot *slot, int n,
		   const AttrNumber *idx, const AttrNumber *heap, Datum *values)
{
	ItemPointer tid;
	bool		isnull;

	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		BlockNumber blk = ItemPointerGetBlockNumber(tid);

		CHECK_FOR_INTERRUPTS();
		if (VM_ALL_VISIBLE(scan->heapRelation, blk, vmbuf))
		{
			PredicateLockPage(scan->heapRelation, blk, scan->xs_snapshot);
			for (int i = 0; i < n; i++)
				values[i] = index_getattr(scan->xs_itup, idx[i], scan->xs_itupdesc, &isnull);
			return true;
		}
		if (index_fetch_heap(scan, slot))
		{
			for (int i = 0; i < n; i++)
				values[i] = slot_getattr(slot, heap[i], &isnull);
			return true;
		}
		/* not visible to our snapshot */
	}
	return false;
}

/* The person's own locations in [t0, t1), in time order. */
static OwnPoint *
read_own_points(FinderRels *r, int32 pid, TimestampTz t0, TimestampTz t1, int *count)
{
	ScanKeyData keys[3];
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(r->location, NULL);
	int			n = 0,
				cap = 256;
	OwnPoint   *pts = palloc(sizeof(OwnPoint) * cap);
	Buffer		vmbuf = InvalidBuffer;
	const AttrNumber idx[2] = {PT_IDX_COORD, PT_IDX_TIME};
	const AttrNumber heap[2] = {r->att_coord, r->att_time};
	Datum		values[2];

	ScanKeyInit(&keys[0], PT_IDX_PERSON, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pid));
	ScanKeyInit(&keys[1], PT_IDX_TIME, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE, TimestampTzGetDatum(t0));
	ScanKeyInit(&keys[2], PT_IDX_TIME, BTLessStrategyNumber, F_TIMESTAMPTZ_LT, TimestampTzGetDatum(t1));
	scan = index_beginscan(r->location, r->loc_person_time, GetActiveSnapshot(), 3, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, keys, 3, NULL, 0);
	while (next_entry(scan, &vmbuf, slot, 2, idx, heap, values))
	{
		if (n == cap)
		{
			cap *= 2;
			pts = repalloc_huge(pts, sizeof(OwnPoint) * cap);
		}
		udc_point_coordinates(values[0], &pts[n].lat, &pts[n].lon);
		pts[n].t = DatumGetTimestampTz(values[1]);
		n++;
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	*count = n;
	return pts;
}

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
 * Two time segments of one cell are scanned as one when the gap between them
 * is expected to hold fewer index entries than a fresh descent of the btree
 * costs (measured: a descent costs about as much as reading this many
 * entries).  The expected number comes from the entries per cell and per
 * microsecond seen so far in the query.
 */
#define RESCAN_COST_ENTRIES 32.0
/* gap merged before anything was measured: twice the report interval of a
 * phone reporting every minute */
#define DEFAULT_MERGE_GAP	(120 * USECS_PER_SEC)
#define MAX_MERGE_GAP		(3600 * USECS_PER_SEC)

/* Largest gap between two segments of a cell worth scanning through. */
static int64
merge_gap(const FinderState *st)
{
	double		per_us;

	if (st->nscans < 16 || st->scanned_us <= 0.0)
		return DEFAULT_MERGE_GAP;
	per_us = (double) st->nentries / st->scanned_us;
	if (per_us * (double) MAX_MERGE_GAP <= RESCAN_COST_ENTRIES)
		return MAX_MERGE_GAP;
	return (int64) (RESCAN_COST_ENTRIES / per_us);
}

/* Scan a range of cells over [a, b] with an index scan (coarse ranges). */
static void
scan_range(FinderState *st, const Probe *group, int ngroup,
		   TimestampTz a, TimestampTz b)
{
	FinderRels *r = st->rels;
	ScanKeyData keys[4];
	const AttrNumber idx[4] = {IDX_PERSON, IDX_COORD, IDX_TIME, IDX_ID};
	const AttrNumber heap[4] = {r->att_person, r->att_coord, r->att_time, r->att_id};
	Datum		values[4];

	ScanKeyInit(&keys[0], IDX_CELL, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(group[0].lo));
	ScanKeyInit(&keys[1], IDX_CELL, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(group[0].hi));
	ScanKeyInit(&keys[2], IDX_TIME, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE, TimestampTzGetDatum(a));
	ScanKeyInit(&keys[3], IDX_TIME, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(b));
	index_rescan(st->scan_range, keys, 4, NULL, 0);
	while (next_entry(st->scan_range, &st->vmbuf, st->slot, 4, idx, heap, values))
	{
		st->nentries++;
		consider(st, group, ngroup, DatumGetInt32(values[0]), DatumGetInt64(values[3]),
				 values[1], DatumGetTimestampTz(values[2]));
	}
}

/* An index entry of one leaf page, copied while the page was locked. */
typedef struct LeafEntry
{
	ItemPointerData tid;
	int32		person;
	int64		id;
	TimestampTz t;
	Datum		coord;			/* points into coords[] */
} LeafEntry;

typedef struct LeafBatch
{
	int			n;
	LeafEntry	e[MaxIndexTuplesPerPage];
	Size		used;
	char		coords[BLCKSZ];	/* the entries' coordinate datums */
} LeafBatch;

static inline int
cmp_key(int64 c1, TimestampTz t1, int64 c2, TimestampTz t2)
{
	if (c1 != c2)
		return c1 < c2 ? -1 : 1;
	return (t1 > t2) - (t1 < t2);
}

/* (cell, creation_time) of a leaf entry */
static inline void
leaf_key(IndexTuple itup, TupleDesc td, int64 *cell, TimestampTz *t)
{
	bool		isnull;

	*cell = DatumGetInt64(index_getattr(itup, IDX_CELL, td, &isnull));
	*t = DatumGetTimestampTz(index_getattr(itup, IDX_TIME, td, &isnull));
}

/*
 * Can the walk for key (cell, a) start on the pinned leaf `buf` (locked by
 * the caller)?  Yes when the page is live, its current first entry is below
 * the key (so no entry at or above the key can lie on a page to its left)
 * and the key is not above its high key (checked as _bt_moveright() does).
 */
static bool
leaf_covers(FinderState *st, Buffer buf, int64 cell, TimestampTz a)
{
	Relation	irel = st->rels->loc_cell_time;
	Page		page = BufferGetPage(buf);
	BTPageOpaque op = BTPageGetOpaque(page);
	OffsetNumber first = P_FIRSTDATAKEY(op);
	int64		c0;
	TimestampTz t0;

	if (P_IGNORE(op) || !P_ISLEAF(op) || first > PageGetMaxOffsetNumber(page))
		return false;
	leaf_key((IndexTuple) PageGetItem(page, PageGetItemId(page, first)),
			 RelationGetDescr(irel), &c0, &t0);
	if (cmp_key(c0, t0, cell, a) >= 0)
		return false;
	return P_RIGHTMOST(op) || _bt_compare(irel, st->key, page, P_HIKEY) < 1;
}

/*
 * Copy the entries of a locked leaf page from `off` on while they are in
 * cell `cell` and at most `b`.  Returns true when the walk is over (an entry
 * beyond the range was seen).
 */
static bool
leaf_read(FinderState *st, Page page, OffsetNumber off, int64 cell, TimestampTz b,
		  LeafBatch *lb)
{
	TupleDesc	td = RelationGetDescr(st->rels->loc_cell_time);
	OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

	lb->n = 0;
	lb->used = 0;
	for (; off <= maxoff; off = OffsetNumberNext(off))
	{
		ItemId		iid = PageGetItemId(page, off);
		IndexTuple	itup;
		int64		c;
		TimestampTz t;
		bool		isnull;
		Datum		coord;
		Size		len;
		LeafEntry  *e;

		if (st->skip_killed && ItemIdIsDead(iid))
			continue;
		itup = (IndexTuple) PageGetItem(page, iid);
		if (BTreeTupleIsPosting(itup))	/* never in an index with INCLUDE */
			elog(ERROR, "unexpected posting list tuple in index \"%s\"",
				 RelationGetRelationName(st->rels->loc_cell_time));
		leaf_key(itup, td, &c, &t);
		if (c != cell || t > b)
			return true;
		coord = index_getattr(itup, IDX_COORD, td, &isnull);
		len = MAXALIGN(VARSIZE_ANY(DatumGetPointer(coord)));
		if (lb->used + len > sizeof(lb->coords))
			elog(ERROR, "index page of \"%s\" holds more data than a page",
				 RelationGetRelationName(st->rels->loc_cell_time));
		e = &lb->e[lb->n++];
		memcpy(lb->coords + lb->used, DatumGetPointer(coord), VARSIZE_ANY(DatumGetPointer(coord)));
		e->coord = PointerGetDatum(lb->coords + lb->used);
		lb->used += len;
		e->tid = itup->t_tid;
		e->t = t;
		e->person = DatumGetInt32(index_getattr(itup, IDX_PERSON, td, &isnull));
		e->id = DatumGetInt64(index_getattr(itup, IDX_ID, td, &isnull));
	}
	return false;
}

/* First data entry of a locked leaf page at or above (cell, a). */
static OffsetNumber
leaf_lower_bound(FinderState *st, Page page, int64 cell, TimestampTz a)
{
	TupleDesc	td = RelationGetDescr(st->rels->loc_cell_time);
	OffsetNumber lo = P_FIRSTDATAKEY(BTPageGetOpaque(page)),
				hi = OffsetNumberNext(PageGetMaxOffsetNumber(page));

	while (lo < hi)
	{
		OffsetNumber mid = lo + (hi - lo) / 2;
		int64		c;
		TimestampTz t;

		leaf_key((IndexTuple) PageGetItem(page, PageGetItemId(page, mid)), td, &c, &t);
		if (cmp_key(c, t, cell, a) < 0)
			lo = OffsetNumberNext(mid);
		else
			hi = mid;
	}
	return lo;
}

/* Check the entries copied from one leaf page (page unlocked). */
static void
leaf_check(FinderState *st, const Probe *group, int ngroup, LeafBatch *lb)
{
	FinderRels *r = st->rels;
	Snapshot	snap = GetActiveSnapshot();

	for (int i = 0; i < lb->n; i++)
	{
		LeafEntry  *e = &lb->e[i];
		BlockNumber blk = ItemPointerGetBlockNumber(&e->tid);

		CHECK_FOR_INTERRUPTS();
		st->nentries++;
		pgstat_count_index_tuples(r->loc_cell_time, 1);
		if (VM_ALL_VISIBLE(r->location, blk, &st->vmbuf))
		{
			PredicateLockPage(r->location, blk, snap);
			consider(st, group, ngroup, e->person, e->id, e->coord, e->t);
		}
		else
		{
			bool		call_again = false,
						isnull;

			/*
			 * Unlike an index scan, the walk does not mark entries of dead
			 * rows (no _bt_killitems()): VACUUM removes them.
			 */
			pgstat_count_heap_fetch(r->location);
			if (table_index_fetch_tuple(st->fetch, &e->tid, snap, st->slot, &call_again, NULL))
				consider(st, group, ngroup,
						 DatumGetInt32(slot_getattr(st->slot, r->att_person, &isnull)),
						 DatumGetInt64(slot_getattr(st->slot, r->att_id, &isnull)),
						 slot_getattr(st->slot, r->att_coord, &isnull),
						 DatumGetTimestampTz(slot_getattr(st->slot, r->att_time, &isnull)));
		}
	}
}

/*
 * Scan one cell over [a, b] by walking the btree's leaf level ourselves, as
 * _bt_first()/_bt_readpage() do but without their per-scan set-up and
 * per-entry scan-key calls, and starting on the leaf where the previous walk
 * ended when it covers the key (probes come in key order, so consecutive
 * segments of a cell often share a page).  Pages are read under a share lock
 * into a local copy, then checked unlocked; moving right follows the
 * right-link as of the read (Lehman & Yao), skipping deleted pages.
 */
static void
scan_cell(FinderState *st, const Probe *group, int ngroup,
		  TimestampTz a, TimestampTz b)
{
	Relation	irel = st->rels->loc_cell_time;
	Snapshot	snap = GetActiveSnapshot();
	int64		cell = group[0].lo;
	Buffer		buf = st->leaf;
	LeafBatch  *lb = st->batch;
	OffsetNumber off;
	bool		done;

	pgstat_count_index_scan(irel);
	st->key->scankeys[0].sk_argument = Int64GetDatum(cell);
	st->key->scankeys[1].sk_argument = TimestampTzGetDatum(a);

	st->leaf = InvalidBuffer;
	if (BufferIsValid(buf))
	{
		_bt_lockbuf(irel, buf, BT_READ);
		TestForOldSnapshot(snap, irel, BufferGetPage(buf));
		if (leaf_covers(st, buf, cell, a))
			st->nreused++;
		else
		{
			_bt_relbuf(irel, buf);
			buf = InvalidBuffer;
		}
	}
	if (!BufferIsValid(buf))
	{
		BTStack		stack = _bt_search(irel, st->key, &buf, BT_READ, snap);

		_bt_freestack(stack);
		if (!BufferIsValid(buf))
		{
			/* empty index: lock the whole relation, as _bt_first() does */
			PredicateLockRelation(irel, snap);
			return;
		}
	}
	off = leaf_lower_bound(st, BufferGetPage(buf), cell, a);
	for (;;)
	{
		Page		page = BufferGetPage(buf);
		BTPageOpaque op = BTPageGetOpaque(page);
		BlockNumber next = op->btpo_next;

		if (P_IGNORE(op))
			done = false;
		else
		{
			PredicateLockPage(irel, BufferGetBlockNumber(buf), snap);
			done = leaf_read(st, page, off, cell, b, lb);
		}
		_bt_unlockbuf(irel, buf);
		if (!P_IGNORE(op))
			leaf_check(st, group, ngroup, lb);
		if (done || next == P_NONE)
			break;
		ReleaseBuffer(buf);
		buf = _bt_getbuf(irel, next, BT_READ);
		TestForOldSnapshot(snap, irel, BufferGetPage(buf));
		off = P_FIRSTDATAKEY(BTPageGetOpaque(BufferGetPage(buf)));
	}
	st->leaf = buf;				/* pinned, for the next walk */
}

/* Scan one cell range over [a, b] and check candidates against the group. */
static void
scan_segment(FinderState *st, const Probe *group, int ngroup,
			 TimestampTz a, TimestampTz b)
{
	st->nscans++;
	st->scanned_us += (double) b - (double) a + 1.0;
	if (group[0].lo == group[0].hi)
		scan_cell(st, group, ngroup, a, b);
	else
		scan_range(st, group, ngroup, a, b);
}

static TimestampTz
sat_add(TimestampTz t, int64 d)
{
	TimestampTz r;

	if (pg_add_s64_overflow(t, d, &r))
		return d < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	return r;
}

static TimestampTz
utc_midnight(DateADT d)
{
	int			overflow = 0;
	Timestamp	ts;

	if (DATE_IS_NOBEGIN(d))
		return DT_NOBEGIN;
	if (DATE_IS_NOEND(d))
		return DT_NOEND;
	ts = date2timestamp_opt_overflow(d, &overflow);
	if (overflow < 0)
		return DT_NOBEGIN;
	if (overflow > 0)
		return DT_NOEND;
	/* a timestamp's midnight, read as UTC: same microseconds since 2000 */
	return (TimestampTz) ts;
}

static void
null_arg_error(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", name)));
}

PG_FUNCTION_INFO_V1(udc_find_connections);
Datum
udc_find_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		pid;
	DateADT		start_date,
				end_date;
	double		meters;
	TimestampTz t0,
				t1;
	FinderRels	rels;
	FinderState st = {0};
	int			nown;
	Probe	   *probes;
	int			nprobes = 0;
	udc_key_range ranges[UDC_COVER_MAX];
	HASHCTL		hctl;

	if (PG_ARGISNULL(0))
		null_arg_error("person_id");
	if (PG_ARGISNULL(1))
		null_arg_error("start_date");
	if (PG_ARGISNULL(2))
		null_arg_error("end_date");
	if (PG_ARGISNULL(3))
		null_arg_error("meters");
	pid = PG_GETARG_INT32(0);
	start_date = PG_GETARG_DATEADT(1);
	end_date = PG_GETARG_DATEADT(2);
	meters = PG_GETARG_FLOAT8(3);

	if (start_date > end_date)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_date must not be after end_date"),
				 errdetail("start_date is %s, end_date is %s.",
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(start_date))),
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(end_date))))));
	if (!(meters > 0.0) || !isfinite(meters) || meters > UDC_MAX_METERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("meters must be greater than 0 and at most %g, not %s",
						UDC_MAX_METERS, float8out_internal(meters)),
				 errdetail("meters is the largest geodesic distance, in metres, between two locations that counts as a connection.")));
	if (!PG_ARGISNULL(4))
	{
		Interval   *w = PG_GETARG_INTERVAL_P(4);
		int64		us;

		if (w->month != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time_window must not contain months or years"),
					 errhint("Express it in days, hours, minutes or seconds.")));
		if (pg_mul_s64_overflow((int64) w->day, USECS_PER_DAY, &us) ||
			pg_add_s64_overflow(us, w->time, &us))
			us = (w->day < 0) ? -1 : PG_INT64_MAX / 4;
		if (us < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time_window must not be negative"),
					 errdetail("time_window is %s.",
							   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(w))))));
		st.has_window = true;
		st.window = Min(us, PG_INT64_MAX / 4);
	}

	t0 = utc_midnight(start_date);
	t1 = DATE_IS_NOEND(end_date) ? DT_NOEND : utc_midnight(end_date + 1);

	InitMaterializedSRF(fcinfo, 0);

	finder_open_rels(&rels);
	if (!person_exists(&rels, pid))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("person %d does not exist", pid)));

	st.rels = &rels;
	st.pid = pid;
	st.meters = meters;
	st.max_dlat = udc_max_dlat(meters);
	st.own = read_own_points(&rels, pid, t0, t1, &nown);

	/* (cell range, own point) pairs, grouped by cell range */
	{
		Size		cap = 1024;

		probes = palloc(sizeof(Probe) * cap);
		for (int i = 0; i < nown; i++)
		{
			int			n = udc_cover(st.own[i].lat, st.own[i].lon, meters, ranges);

			CHECK_FOR_INTERRUPTS();
			if (nprobes + n > cap)
			{
				cap = Max(cap * 2, (Size) (nprobes + n));
				probes = repalloc_huge(probes, sizeof(Probe) * cap);
			}
			for (int k = 0; k < n; k++)
			{
				probes[nprobes++] = (Probe) {ranges[k].lo, ranges[k].hi, i};
				/* single cells never overlap, and merged intervals are disjoint */
				if (ranges[k].lo != ranges[k].hi)
					st.dedupe = true;
			}
		}
		sort_probes(probes, nprobes);
	}

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(HitEntry);
	hctl.hcxt = CurrentMemoryContext;
	st.seen = hash_create("udaconnect finder hits", 1024, &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	st.caphits = 256;
	st.hits = palloc(sizeof(Hit) * st.caphits);
	st.slot = table_slot_create(rels.location, NULL);

	st.scan_range = index_beginscan(rels.location, rels.loc_cell_time, GetActiveSnapshot(), 4, 0);
	st.scan_range->xs_want_itup = true;
	st.key = _bt_mkscankey(rels.loc_cell_time, NULL);
	_bt_metaversion(rels.loc_cell_time, &st.key->heapkeyspace, &st.key->allequalimage);
	st.key->keysz = 2;
	st.key->anynullkeys = false;
	st.key->scankeys[0].sk_flags &= ~SK_ISNULL;
	st.key->scankeys[1].sk_flags &= ~SK_ISNULL;
	st.leaf = InvalidBuffer;
	st.fetch = table_index_fetch_begin(rels.location);
	st.skip_killed = !TransactionStartedDuringRecovery();
	st.batch = palloc(sizeof(LeafBatch));
	st.vmbuf = InvalidBuffer;
	for (int g = 0; g < nprobes;)
	{
		int			ng = 1;

		while (g + ng < nprobes && probes[g + ng].lo == probes[g].lo &&
			   probes[g + ng].hi == probes[g].hi)
			ng++;

		if (!st.has_window)
			scan_segment(&st, &probes[g], ng, t0, t1 - 1);
		else
		{
			/* merge [t - w, t + w] of the group's points (time order) */
			TimestampTz seg_a = 0,
						seg_b = 0;
			bool		open = false;
			int64		gap = merge_gap(&st);

			for (int k = 0; k < ng; k++)
			{
				TimestampTz t = st.own[probes[g + k].own].t;
				TimestampTz a = Max(t0, sat_add(t, -st.window));
				TimestampTz b = Min(t1 - 1, sat_add(t, st.window));

				if (open && a <= sat_add(seg_b, gap + 1))
				{
					if (b > seg_b)
						seg_b = b;
					continue;
				}
				if (open)
					scan_segment(&st, &probes[g], ng, seg_a, seg_b);
				seg_a = a;
				seg_b = b;
				open = true;
			}
			if (open)
				scan_segment(&st, &probes[g], ng, seg_a, seg_b);
		}
		g += ng;
	}
	index_endscan(st.scan_range);
	if (BufferIsValid(st.leaf))
		ReleaseBuffer(st.leaf);
	table_index_fetch_end(st.fetch);
	if (BufferIsValid(st.vmbuf))
		ReleaseBuffer(st.vmbuf);
	ExecDropSingleTupleTableSlot(st.slot);
	finder_close_rels(&rels);

	elog(DEBUG1, "find_connections(%d): %d own points, %d probes, %ld index scans (%ld started on the previous leaf), %ld entries, %ld exact distances, %d hits",
		 pid, nown, nprobes, st.nscans, st.nreused, st.nentries, st.ndist, st.nhits);
	sort_hits(st.hits, st.nhits);
	for (int i = 0; i < st.nhits; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		Hit		   *h = &st.hits[i];

		values[0] = Int64GetDatum(h->id);
		values[1] = Int32GetDatum(h->person_id);
		values[2] = Float8GetDatum(h->lat);
		values[3] = Float8GetDatum(h->lon);
		values[4] = TimestampTzGetDatum(h->t);
		values[5] = Float8GetDatum(h->dist);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
