/*
 * finder_scan.c — the connection finder's index access: reading the
 * person's own locations through (person_id, creation_time), the
 * (cell, creation_time) scans of the candidates (an index scan for coarse
 * cell ranges; for single cells a btree descent and a walk of the leaf level
 * of our own), visibility checks, predicate locks, index statistics and the
 * finder's counters (which size finder_merge_gap()).  Where location is
 * partitioned, each partition that finder_parts.c opened is read through its
 * own indexes, with scan state of its own (FinderPart): a segment is scanned
 * in every partition its time range overlaps.
 *
 * This file decides where to read, never what matches: every entry it reads
 * goes to consider() (finder_int.h, inlined here), and it must not call into
 * finder.c or finder_match.c.  The loops over entries must stay free of
 * allocations, catalog lookups and calls through pointers: they are the
 * finder's hot path (docs/design.md; test/bench/10-finder.sh).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/itup.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/visibilitymap.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "finder_int.h"

/* Does person pid exist (through person_pkey)? */
bool
finder_person_exists(FinderRels *r, int32 pid)
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

/* An own point's time and its position as read, for the stable sort. */
typedef struct OwnOrder
{
	TimestampTz t;
	int			pos;
} OwnOrder;

static inline int
cmp_own_order(const OwnOrder *x, const OwnOrder *y)
{
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

#define ST_SORT sort_own_order
#define ST_ELEMENT_TYPE OwnOrder
#define ST_COMPARE(a, b) cmp_own_order(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* pts[0..n) in time order, points of the same time in the order read */
static OwnPoint *
sort_own_points(OwnPoint *pts, int n)
{
	OwnOrder   *order = palloc_extended(sizeof(OwnOrder) * Max(n, 1), MCXT_ALLOC_HUGE);
	OwnPoint   *out = palloc_extended(sizeof(OwnPoint) * Max(n, 1), MCXT_ALLOC_HUGE);

	for (int i = 0; i < n; i++)
		order[i] = (OwnOrder) {pts[i].t, i};
	sort_own_order(order, n);
	for (int i = 0; i < n; i++)
		out[i] = pts[order[i].pos];
	pfree(order);
	pfree(pts);
	return out;
}

/* Partition p's locations of pid in [t0, t1), in time order, after pts[*n]. */
static void
read_own_part(FinderPart *p, int32 pid, TimestampTz t0, TimestampTz t1,
			  OwnPoint **pts, int *n, int *cap)
{
	ScanKeyData keys[3];
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(p->heap, NULL);
	Buffer		vmbuf = InvalidBuffer;
	const AttrNumber idx[2] = {PT_IDX_COORD, PT_IDX_TIME};
	const AttrNumber heap[2] = {p->att_coord, p->att_time};
	Datum		values[2];

	ScanKeyInit(&keys[0], PT_IDX_PERSON, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pid));
	ScanKeyInit(&keys[1], PT_IDX_TIME, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE, TimestampTzGetDatum(t0));
	ScanKeyInit(&keys[2], PT_IDX_TIME, BTLessStrategyNumber, F_TIMESTAMPTZ_LT, TimestampTzGetDatum(t1));
	scan = index_beginscan(p->heap, p->person_time, GetActiveSnapshot(), 3, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, keys, 3, NULL, 0);
	while (next_entry(scan, &vmbuf, slot, 2, idx, heap, values))
	{
		if (*n == *cap)
		{
			*cap *= 2;
			*pts = repalloc_huge(*pts, sizeof(OwnPoint) * *cap);
		}
		udc_point_coordinates(values[0], &(*pts)[*n].lat, &(*pts)[*n].lon);
		(*pts)[*n].t = DatumGetTimestampTz(values[1]);
		(*n)++;
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * The person's own locations in [t0, t1), in time order, from every
 * partition the range overlaps.  Range partitions come in time order, so
 * their points do; the DEFAULT partition's may fall anywhere in between,
 * and are then sorted in (points of the same time all lie in one partition,
 * in its index's order, which the sort keeps).
 */
OwnPoint *
finder_read_own_points(FinderRels *r, int32 pid, TimestampTz t0, TimestampTz t1,
					   int *count)
{
	int			n = 0,
				cap = 256;
	OwnPoint   *pts = palloc(sizeof(OwnPoint) * cap);
	bool		sorted = true;

	for (int i = 0; i < r->nparts && t0 < t1; i++)
	{
		int			from = n;

		if (!finder_part_overlaps(&r->parts[i], t0, t1 - 1))
			continue;
		read_own_part(&r->parts[i], pid, t0, t1, &pts, &n, &cap);
		if (from > 0 && n > from && pts[from].t < pts[from - 1].t)
			sorted = false;
	}
	if (!sorted)
		pts = sort_own_points(pts, n);
	*count = n;
	return pts;
}

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
int64
finder_merge_gap(const FinderState *st)
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
scan_range(FinderState *st, FinderPart *p, const Probe *group, int ngroup,
		   TimestampTz a, TimestampTz b)
{
	ScanKeyData keys[4];
	const AttrNumber idx[4] = {IDX_PERSON, IDX_COORD, IDX_TIME, IDX_ID};
	const AttrNumber heap[4] = {p->att_person, p->att_coord, p->att_time, p->att_id};
	Datum		values[4];

	if (p->scan_range == NULL)
	{
		p->scan_range = index_beginscan(p->heap, p->cell_time, GetActiveSnapshot(), 4, 0);
		p->scan_range->xs_want_itup = true;
	}

	ScanKeyInit(&keys[0], IDX_CELL, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(group[0].lo));
	ScanKeyInit(&keys[1], IDX_CELL, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(group[0].hi));
	ScanKeyInit(&keys[2], IDX_TIME, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE, TimestampTzGetDatum(a));
	ScanKeyInit(&keys[3], IDX_TIME, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(b));
	index_rescan(p->scan_range, keys, 4, NULL, 0);
	while (next_entry(p->scan_range, &p->vmbuf, p->slot, 4, idx, heap, values))
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
leaf_covers(FinderPart *p, Buffer buf, int64 cell, TimestampTz a)
{
	Relation	irel = p->cell_time;
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
	return P_RIGHTMOST(op) || _bt_compare(irel, p->key, page, P_HIKEY) < 1;
}

/*
 * Copy the entries of a locked leaf page from `off` on while they are in
 * cell `cell` and at most `b`.  Returns true when the walk is over (an entry
 * beyond the range was seen).
 */
static bool
leaf_read(const FinderState *st, const FinderPart *p, Page page, OffsetNumber off,
		  int64 cell, TimestampTz b, LeafBatch *lb)
{
	TupleDesc	td = RelationGetDescr(p->cell_time);
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
				 RelationGetRelationName(p->cell_time));
		leaf_key(itup, td, &c, &t);
		if (c != cell || t > b)
			return true;
		coord = index_getattr(itup, IDX_COORD, td, &isnull);
		len = MAXALIGN(VARSIZE_ANY(DatumGetPointer(coord)));
		if (lb->used + len > sizeof(lb->coords))
			elog(ERROR, "index page of \"%s\" holds more data than a page",
				 RelationGetRelationName(p->cell_time));
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
leaf_lower_bound(const FinderPart *p, Page page, int64 cell, TimestampTz a)
{
	TupleDesc	td = RelationGetDescr(p->cell_time);
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
leaf_check(FinderState *st, FinderPart *p, const Probe *group, int ngroup, LeafBatch *lb)
{
	Snapshot	snap = GetActiveSnapshot();

	for (int i = 0; i < lb->n; i++)
	{
		LeafEntry  *e = &lb->e[i];
		BlockNumber blk = ItemPointerGetBlockNumber(&e->tid);

		CHECK_FOR_INTERRUPTS();
		st->nentries++;
		pgstat_count_index_tuples(p->cell_time, 1);
		if (VM_ALL_VISIBLE(p->heap, blk, &p->vmbuf))
		{
			PredicateLockPage(p->heap, blk, snap);
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
			pgstat_count_heap_fetch(p->heap);
			if (table_index_fetch_tuple(p->fetch, &e->tid, snap, p->slot, &call_again, NULL))
				consider(st, group, ngroup,
						 DatumGetInt32(slot_getattr(p->slot, p->att_person, &isnull)),
						 DatumGetInt64(slot_getattr(p->slot, p->att_id, &isnull)),
						 slot_getattr(p->slot, p->att_coord, &isnull),
						 DatumGetTimestampTz(slot_getattr(p->slot, p->att_time, &isnull)));
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
scan_cell(FinderState *st, FinderPart *p, const Probe *group, int ngroup,
		  TimestampTz a, TimestampTz b)
{
	Relation	irel = p->cell_time;
	Snapshot	snap = GetActiveSnapshot();
	int64		cell = group[0].lo;
	Buffer		buf = p->leaf;
	LeafBatch  *lb = st->batch;
	OffsetNumber off;
	bool		done;

	pgstat_count_index_scan(irel);
	p->key->scankeys[0].sk_argument = Int64GetDatum(cell);
	p->key->scankeys[1].sk_argument = TimestampTzGetDatum(a);

	p->leaf = InvalidBuffer;
	if (BufferIsValid(buf))
	{
		_bt_lockbuf(irel, buf, BT_READ);
		TestForOldSnapshot(snap, irel, BufferGetPage(buf));
		if (leaf_covers(p, buf, cell, a))
			st->nreused++;
		else
		{
			_bt_relbuf(irel, buf);
			buf = InvalidBuffer;
		}
	}
	if (!BufferIsValid(buf))
	{
		BTStack		stack = _bt_search(irel, p->key, &buf, BT_READ, snap);

		_bt_freestack(stack);
		if (!BufferIsValid(buf))
		{
			/* empty index: lock the whole relation, as _bt_first() does */
			PredicateLockRelation(irel, snap);
			return;
		}
	}
	off = leaf_lower_bound(p, BufferGetPage(buf), cell, a);
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
			done = leaf_read(st, p, page, off, cell, b, lb);
		}
		_bt_unlockbuf(irel, buf);
		if (!P_IGNORE(op))
			leaf_check(st, p, group, ngroup, lb);
		if (done || next == P_NONE)
			break;
		ReleaseBuffer(buf);
		buf = _bt_getbuf(irel, next, BT_READ);
		TestForOldSnapshot(snap, irel, BufferGetPage(buf));
		off = P_FIRSTDATAKEY(BTPageGetOpaque(BufferGetPage(buf)));
	}
	p->leaf = buf;				/* pinned, for the next walk */
}

/*
 * Partition p's scan state: the slot for heap fetches, the insertion key
 * and heap fetcher of the leaf walk (the index scan of coarse ranges comes
 * with the first such range).
 */
static void
part_scan_begin(FinderPart *p)
{
	p->slot = table_slot_create(p->heap, NULL);
	p->scan_range = NULL;
	p->key = _bt_mkscankey(p->cell_time, NULL);
	_bt_metaversion(p->cell_time, &p->key->heapkeyspace, &p->key->allequalimage);
	p->key->keysz = 2;
	p->key->anynullkeys = false;
	p->key->scankeys[0].sk_flags &= ~SK_ISNULL;
	p->key->scankeys[1].sk_flags &= ~SK_ISNULL;
	p->leaf = InvalidBuffer;
	p->fetch = table_index_fetch_begin(p->heap);
	p->vmbuf = InvalidBuffer;
	p->scanning = true;
}

/*
 * Scan one cell range over [a, b], in each partition whose rows may lie in
 * [a, b], and check candidates against the group.  The statistics count the
 * segment once, as on an unpartitioned table, so the merge gap does not
 * depend on the partitioning.
 */
void
finder_scan_segment(FinderState *st, const Probe *group, int ngroup,
					TimestampTz a, TimestampTz b)
{
	FinderRels *r = st->rels;

	st->nscans++;
	st->scanned_us += (double) b - (double) a + 1.0;
	for (int i = 0; i < r->nparts; i++)
	{
		FinderPart *p = &r->parts[i];

		if (!finder_part_overlaps(p, a, b))
			continue;
		if (!p->scanning)
			part_scan_begin(p);
		if (group[0].lo == group[0].hi)
			scan_cell(st, p, group, ngroup, a, b);
		else
			scan_range(st, p, group, ngroup, a, b);
	}
}

/* Set up what the segment scans of every partition share: the leaf copy. */
void
finder_scan_begin(FinderState *st)
{
	st->skip_killed = !TransactionStartedDuringRecovery();
	st->batch = palloc(sizeof(LeafBatch));
}

/* Release what the scans hold in each partition (buffer pins, scans). */
void
finder_scan_end(FinderState *st)
{
	for (int i = 0; i < st->rels->nparts; i++)
	{
		FinderPart *p = &st->rels->parts[i];

		if (!p->scanning)
			continue;
		if (p->scan_range)
			index_endscan(p->scan_range);
		if (BufferIsValid(p->leaf))
			ReleaseBuffer(p->leaf);
		table_index_fetch_end(p->fetch);
		if (BufferIsValid(p->vmbuf))
			ReleaseBuffer(p->vmbuf);
		ExecDropSingleTupleTableSlot(p->slot);
		p->scanning = false;
	}
	pfree(st->batch);
}
