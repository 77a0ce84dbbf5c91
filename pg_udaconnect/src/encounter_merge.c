/*
 * encounter_merge.c — merges a batch's islands (encounter_chain.c) into
 * the stored encounters, and writes the result: for each pair of persons,
 * the stored encounters that reach within encounter_gap of the new
 * islands' span and the new islands together are split into islands by
 * the chaining rule (enc_starts_island(), encounter_int.h); an island with
 * a new item becomes one encounter, which keeps the lowest stored id among
 * its stored encounters (the others are removed and logged in
 * encounter_removed with merged_into) or gets a new one.  Every aggregate
 * (first start, last end, number of matches, the closest match, matches
 * per place) combines the same way however the matches were grouped, which
 * is why the maintained table equals the rebuilt one (docs/encounters.md).
 *
 * It reads the pair's encounters through encounter_pair_idx and writes
 * through the executor's simple-relation calls (as logical replication's
 * apply does: constraints checked, indexes maintained, HOT when the page
 * has room), where the SQL statement it replaces spent most of a dense
 * batch's time in hash joins, window functions and tuplestores.  It runs
 * with encounter_clock locked (encounter.c), gives every row it writes the
 * clock's next version and notifies the encounter ids
 * and the persons.  It must not decide what a match is (encounter_match.c)
 * nor lock anything itself.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "encounter_int.h"

/* The columns of udaconnect.encounter, all of them, by name. */
enum
{
	C_ID, C_A, C_B, C_START, C_END, C_MATCHES, C_MIND, C_PLACE, C_PLACE_IDS,
	C_PLACE_MATCHES, C_LAT, C_LON, C_CLOSEST_A, C_CLOSEST_B, C_VERSION, C_NCOLS
};

static const char *const enc_cols[C_NCOLS] = {
	"id", "person_a", "person_b", "started_at", "ended_at", "matches",
	"min_distance_m", "place_id", "place_ids", "place_matches", "latitude",
	"longitude", "closest_a", "closest_b", "version"
};

enum
{
	R_VERSION, R_ID, R_PERSON, R_MERGED_INTO, R_REMOVED_AT, R_NCOLS
};

static const char *const removed_cols[R_NCOLS] = {
	"version", "id", "person_id", "merged_into", "removed_at"
};

/* A new island or a stored encounter of one pair, while merging. */
typedef struct MergeItem
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
} MergeItem;

/* What one merge call holds open, and what it wrote. */
typedef struct Writer
{
	Relation	enc;
	Relation	removed;
	Relation	pair_idx;
	AttrNumber	att[C_NCOLS];
	AttrNumber	ratt[R_NCOLS];
	Oid			id_seq;
	EState	   *estate;
	EPQState	epq;
	ResultRelInfo *enc_rri;
	ResultRelInfo *removed_rri;
	IndexScanDesc scan;
	TupleTableSlot *scan_slot;
	TupleTableSlot *row_slot;
	TupleTableSlot *removed_slot;
	int64		version;
	TimestampTz now;
	/* the ids written, the persons told */
	int64	   *changed;
	int			nchanged;
	int32	   *persons;
	int			npersons;
	int			cap;
} Writer;

static Oid
encounter_relation(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("relation \"udaconnect.%s\" does not exist", name),
				 errdetail("The encounter maintenance writes it."),
				 errhint("Reinstall the extension: DROP EXTENSION pg_udaconnect; CREATE EXTENSION pg_udaconnect CASCADE.")));
	return relid;
}

/*
 * Attribute numbers of names[0..n) in rel, which must have exactly those
 * columns: every column of a row this file writes gets a value.
 */
static void
columns_of(Relation rel, const char *const *names, int n, AttrNumber *att)
{
	TupleDesc	td = RelationGetDescr(rel);
	int			live = 0;

	for (int i = 0; i < td->natts; i++)
		if (!TupleDescAttr(td, i)->attisdropped)
			live++;
	for (int c = 0; c < n; c++)
		att[c] = get_attnum(RelationGetRelid(rel), names[c]);
	for (int c = 0; c < n; c++)
		if (att[c] == InvalidAttrNumber || live != n)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"udaconnect.%s\" does not have the columns the encounter maintenance writes",
							RelationGetRelationName(rel)),
					 errhint("Reinstall the extension: DROP EXTENSION pg_udaconnect; CREATE EXTENSION pg_udaconnect CASCADE.")));
}

static ResultRelInfo *
result_rel(Writer *w, Relation rel, Index rti)
{
	ResultRelInfo *rri = makeNode(ResultRelInfo);

	InitResultRelInfo(rri, rel, rti, NULL, 0);
	ExecOpenIndices(rri, false);
	return rri;
}

static void
writer_open(Writer *w, int cap)
{
	Oid			nsp = get_namespace_oid("udaconnect", false);
	Oid			idx;
	List	   *rtes = NIL;

	w->enc = table_open(encounter_relation(nsp, "encounter"), RowExclusiveLock);
	w->removed = table_open(encounter_relation(nsp, "encounter_removed"), RowExclusiveLock);
	idx = encounter_relation(nsp, "encounter_pair_idx");
	w->pair_idx = index_open(idx, AccessShareLock);
	if (w->pair_idx->rd_index->indrelid != RelationGetRelid(w->enc) ||
		w->pair_idx->rd_index->indnkeyatts < 3)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"udaconnect.encounter_pair_idx\" is not the one the encounter maintenance reads"),
				 errhint("Recreate it: DROP INDEX udaconnect.encounter_pair_idx; CREATE INDEX encounter_pair_idx ON udaconnect.encounter (person_a, person_b, started_at);")));
	columns_of(w->enc, enc_cols, C_NCOLS, w->att);
	columns_of(w->removed, removed_cols, R_NCOLS, w->ratt);
	for (int k = 0; k < 3; k++)
		if (w->pair_idx->rd_index->indkey.values[k] != w->att[k == 0 ? C_A : k == 1 ? C_B : C_START] ||
			w->pair_idx->rd_indoption[k] != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("index \"udaconnect.encounter_pair_idx\" is not the one the encounter maintenance reads"),
					 errhint("Recreate it: DROP INDEX udaconnect.encounter_pair_idx; CREATE INDEX encounter_pair_idx ON udaconnect.encounter (person_a, person_b, started_at);")));
	w->id_seq = getIdentitySequence(RelationGetRelid(w->enc), w->att[C_ID], false);

	w->estate = CreateExecutorState();
	for (int i = 0; i < 2; i++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);
		Relation	rel = i == 0 ? w->enc : w->removed;

		rte->rtekind = RTE_RELATION;
		rte->relid = RelationGetRelid(rel);
		rte->relkind = rel->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		rtes = lappend(rtes, rte);
	}
	ExecInitRangeTable(w->estate, rtes);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = GetActiveSnapshot();
	EvalPlanQualInit(&w->epq, w->estate, NULL, NIL, -1);
	w->enc_rri = result_rel(w, w->enc, 1);
	w->removed_rri = result_rel(w, w->removed, 2);
	w->scan_slot = table_slot_create(w->enc, NULL);
	w->row_slot = table_slot_create(w->enc, NULL);
	w->removed_slot = table_slot_create(w->removed, NULL);
	w->scan = index_beginscan(w->enc, w->pair_idx, GetActiveSnapshot(), 3, 0);
	w->now = GetCurrentTransactionStartTimestamp();
	w->cap = Max(cap, 16);
	w->changed = palloc(sizeof(int64) * w->cap);
	w->persons = palloc(sizeof(int32) * 2 * w->cap);
}

static void
writer_close(Writer *w)
{
	index_endscan(w->scan);
	ExecDropSingleTupleTableSlot(w->scan_slot);
	ExecDropSingleTupleTableSlot(w->row_slot);
	ExecDropSingleTupleTableSlot(w->removed_slot);
	ExecCloseIndices(w->enc_rri);
	ExecCloseIndices(w->removed_rri);
	EvalPlanQualEnd(&w->epq);
	FreeExecutorState(w->estate);
	index_close(w->pair_idx, AccessShareLock);
	table_close(w->removed, NoLock);
	table_close(w->enc, NoLock);
}

/* The elements of a stored int4[] or int8[] (no NULLs: CHECKed). */
static int
array_elems(Datum d, Oid type, Datum **out)
{
	int			n;

	deconstruct_array(DatumGetArrayTypeP(d), type, type == INT4OID ? 4 : 8, true,
					  type == INT4OID ? TYPALIGN_INT : TYPALIGN_DOUBLE, out, NULL, &n);
	return n;
}

/*
 * Append to items the stored encounters of (pa, pb) with started_at <= hi
 * and ended_at >= lo.
 */
static int
stored_items(Writer *w, int32 pa, int32 pb, TimestampTz lo, TimestampTz hi,
			 MergeItem **items, int n, int *cap)
{
	ScanKeyData keys[3];
	TupleTableSlot *slot = w->scan_slot;
	const AttrNumber *a = w->att;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pa));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pb));
	ScanKeyInit(&keys[2], 3, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(hi));
	index_rescan(w->scan, keys, 3, NULL, 0);
	while (index_getnext_slot(w->scan, ForwardScanDirection, slot))
	{
		Datum	   *v;
		Datum	   *ids,
				   *cnts;
		MergeItem	   *it;

		slot_getallattrs(slot);
		v = slot->tts_values;
		if (DatumGetTimestampTz(v[a[C_END] - 1]) < lo)
			continue;
		if (n == *cap)
		{
			*cap *= 2;
			*items = repalloc(*items, sizeof(MergeItem) * *cap);
		}
		it = &(*items)[n++];
		it->stored = true;
		it->id = DatumGetInt64(v[a[C_ID] - 1]);
		it->tid = slot->tts_tid;
		it->s = DatumGetTimestampTz(v[a[C_START] - 1]);
		it->e = DatumGetTimestampTz(v[a[C_END] - 1]);
		it->n = DatumGetInt64(v[a[C_MATCHES] - 1]);
		it->dist = DatumGetFloat8(v[a[C_MIND] - 1]);
		it->ra = DatumGetInt64(v[a[C_CLOSEST_A] - 1]);
		it->rb = DatumGetInt64(v[a[C_CLOSEST_B] - 1]);
		it->lat = DatumGetFloat8(v[a[C_LAT] - 1]);
		it->lon = DatumGetFloat8(v[a[C_LON] - 1]);
		it->nplaces = array_elems(v[a[C_PLACE_IDS] - 1], INT4OID, &ids);
		if (array_elems(v[a[C_PLACE_MATCHES] - 1], INT8OID, &cnts) != it->nplaces)
			elog(ERROR, "encounter %lld has place_ids and place_matches of different lengths",
				 (long long) it->id);
		it->place_ids = palloc(sizeof(int32) * Max(it->nplaces, 1));
		it->place_counts = palloc(sizeof(int64) * Max(it->nplaces, 1));
		for (int k = 0; k < it->nplaces; k++)
		{
			it->place_ids[k] = DatumGetInt32(ids[k]);
			it->place_counts[k] = DatumGetInt64(cnts[k]);
		}
	}
	return n;
}

static int
item_cmp(const void *x, const void *y)
{
	const MergeItem *a = x;
	const MergeItem *b = y;

	if (a->s != b->s)
		return a->s < b->s ? -1 : 1;
	return (a->e > b->e) - (a->e < b->e);
}

/* is x's closest match closer than y's (distance, then location ids)? */
static inline bool
item_closer(const MergeItem *x, const MergeItem *y)
{
	if (x->dist != y->dist)
		return x->dist < y->dist;
	if (x->ra != y->ra)
		return x->ra < y->ra;
	return x->rb < y->rb;
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
 * The places of items[0..n) summed per place, into the row's place_id (the
 * place with most matches, ties the lowest id; NULL without places),
 * place_ids and place_matches.
 */
static void
group_places(const MergeItem *items, int n, Datum *values, bool *nulls, const AttrNumber *a)
{
	int			total = 0;
	int			k = 0;
	PlaceCount *pc;
	Datum	   *ids;
	Datum	   *cnts;
	int			top = -1;

	for (int i = 0; i < n; i++)
		total += items[i].nplaces;
	pc = palloc(sizeof(PlaceCount) * Max(total, 1));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < items[i].nplaces; j++)
			pc[k++] = (PlaceCount) {items[i].place_ids[j], items[i].place_counts[j]};
	qsort(pc, total, sizeof(PlaceCount), place_cmp);
	ids = palloc(sizeof(Datum) * Max(total, 1));
	cnts = palloc(sizeof(Datum) * Max(total, 1));
	k = 0;
	for (int i = 0; i < total;)
	{
		int64		sum = 0;
		int			j = i;

		for (; j < total && pc[j].id == pc[i].id; j++)
			sum += pc[j].n;
		ids[k] = Int32GetDatum(pc[i].id);
		cnts[k] = Int64GetDatum(sum);
		if (top < 0 || sum > DatumGetInt64(cnts[top]))
			top = k;
		k++;
		i = j;
	}
	nulls[a[C_PLACE] - 1] = top < 0;
	values[a[C_PLACE] - 1] = top < 0 ? (Datum) 0 : ids[top];
	values[a[C_PLACE_IDS] - 1] =
		PointerGetDatum(construct_array(ids, k, INT4OID, 4, true, TYPALIGN_INT));
	values[a[C_PLACE_MATCHES] - 1] =
		PointerGetDatum(construct_array(cnts, k, INT8OID, 8, true, TYPALIGN_DOUBLE));
}

static void
note_change(Writer *w, int64 id, int32 pa, int32 pb)
{
	if (w->nchanged == w->cap)
	{
		w->cap *= 2;
		w->changed = repalloc(w->changed, sizeof(int64) * w->cap);
		w->persons = repalloc(w->persons, sizeof(int32) * 2 * w->cap);
	}
	w->changed[w->nchanged++] = id;
	w->persons[w->npersons++] = pa;
	w->persons[w->npersons++] = pb;
}

/*
 * Remove stored encounter `it`, merged into `keep`, and log it for both
 * persons (whom note_change() told already).
 */
static void
remove_merged(Writer *w, const MergeItem *it, int64 keep, int32 pa, int32 pb)
{
	TupleTableSlot *rs = w->removed_slot;

	ExecClearTuple(w->row_slot);
	ExecStoreAllNullTuple(w->row_slot);
	w->row_slot->tts_tid = it->tid;
	ExecSimpleRelationDelete(w->enc_rri, w->estate, &w->epq, w->row_slot);
	for (int k = 0; k < 2; k++)
	{
		ExecClearTuple(rs);
		memset(rs->tts_isnull, true, sizeof(bool) * rs->tts_tupleDescriptor->natts);
		rs->tts_values[w->ratt[R_VERSION] - 1] = Int64GetDatum(w->version);
		rs->tts_values[w->ratt[R_ID] - 1] = Int64GetDatum(it->id);
		rs->tts_values[w->ratt[R_PERSON] - 1] = Int32GetDatum(k == 0 ? pa : pb);
		rs->tts_values[w->ratt[R_MERGED_INTO] - 1] = Int64GetDatum(keep);
		rs->tts_values[w->ratt[R_REMOVED_AT] - 1] = TimestampTzGetDatum(w->now);
		for (int c = 0; c < R_NCOLS; c++)
			rs->tts_isnull[w->ratt[c] - 1] = false;
		ExecStoreVirtualTuple(rs);
		ExecSimpleRelationInsert(w->removed_rri, w->estate, rs);
	}
}

/*
 * Write one island of a pair that holds a new item: items[0..n) sorted by
 * start.  The lowest stored id keeps its row, the other stored rows go.
 */
static void
write_group(Writer *w, int32 pa, int32 pb, const MergeItem *items, int n)
{
	TupleTableSlot *slot = w->row_slot;
	Datum	   *v = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	const AttrNumber *a = w->att;
	const MergeItem *keep = NULL;
	const MergeItem *best = &items[0];
	TimestampTz e = items[0].e;
	int64		matches = 0;
	int64		id;

	for (int i = 0; i < n; i++)
	{
		e = Max(e, items[i].e);
		matches += items[i].n;
		if (item_closer(&items[i], best))
			best = &items[i];
		if (items[i].stored && (keep == NULL || items[i].id < keep->id))
			keep = &items[i];
	}
	id = keep ? keep->id : nextval_internal(w->id_seq, false);

	ExecClearTuple(slot);
	memset(nulls, false, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	v[a[C_ID] - 1] = Int64GetDatum(id);
	v[a[C_A] - 1] = Int32GetDatum(pa);
	v[a[C_B] - 1] = Int32GetDatum(pb);
	v[a[C_START] - 1] = TimestampTzGetDatum(items[0].s);
	v[a[C_END] - 1] = TimestampTzGetDatum(e);
	v[a[C_MATCHES] - 1] = Int64GetDatum(matches);
	v[a[C_MIND] - 1] = Float8GetDatum(best->dist);
	group_places(items, n, v, nulls, a);
	v[a[C_LAT] - 1] = Float8GetDatum(best->lat);
	v[a[C_LON] - 1] = Float8GetDatum(best->lon);
	v[a[C_CLOSEST_A] - 1] = Int64GetDatum(best->ra);
	v[a[C_CLOSEST_B] - 1] = Int64GetDatum(best->rb);
	v[a[C_VERSION] - 1] = Int64GetDatum(w->version);
	ExecStoreVirtualTuple(slot);
	if (keep)
	{
		TupleTableSlot *search = w->scan_slot;

		ExecClearTuple(search);
		ExecStoreAllNullTuple(search);
		search->tts_tid = keep->tid;
		ExecSimpleRelationUpdate(w->enc_rri, w->estate, &w->epq, search, slot);
	}
	else
		ExecSimpleRelationInsert(w->enc_rri, w->estate, slot);
	note_change(w, id, pa, pb);
	for (int i = 0; i < n; i++)
		if (items[i].stored && &items[i] != keep)
			remove_merged(w, &items[i], id, pa, pb);
}

/*
 * Merge the islands isl[0..n) of one pair (sorted by start) with the
 * pair's stored encounters and write the islands that changed.
 */
static void
merge_pair(Writer *w, const EncIslands *is, int from, int to, int64 gap)
{
	const EncIsland *first = &is->isl[from];
	TimestampTz lo = first->start;
	TimestampTz hi = first->end;
	int			cap = (to - from) * 2 + 8;
	MergeItem	   *items = palloc(sizeof(MergeItem) * cap);
	int			n = 0;

	for (int i = from; i < to; i++)
	{
		const EncIsland *x = &is->isl[i];
		MergeItem	   *it = &items[n++];

		lo = Min(lo, x->start);
		hi = Max(hi, x->end);
		*it = (MergeItem) {
			.s = x->start,.e = x->end,.n = x->matches,.dist = x->closest.dist,
				.ra = x->closest.a_id,.rb = x->closest.b_id,.lat = x->closest.lat,
				.lon = x->closest.lon,.place_ids = is->place_ids + x->place_from,
				.place_counts = is->place_counts + x->place_from,.nplaces = x->place_n,
				.stored = false
		};
	}
	n = stored_items(w, first->person_a, first->person_b, lo - gap, hi + gap, &items, n, &cap);
	qsort(items, n, sizeof(MergeItem), item_cmp);
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

/* NOTIFY udaconnect_encounter: the ids written, 400 a payload, ascending. */
static void
notify_ids(Writer *w)
{
	StringInfoData buf;

	qsort(w->changed, w->nchanged, sizeof(int64), enc_cmp_int64);
	initStringInfo(&buf);
	for (int i = 0; i < w->nchanged; i++)
	{
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, INT64_FORMAT, w->changed[i]);
		if ((i + 1) % 400 == 0 || i == w->nchanged - 1)
		{
			Async_Notify("udaconnect_encounter", buf.data);
			resetStringInfo(&buf);
		}
	}
}

/* SPI connected: the next version, and the persons told */
static int64
spi_int64(const char *sql, int nargs, Oid *types, Datum *args)
{
	bool		isnull;
	Datum		d;
	int			rc = SPI_execute_with_args(sql, nargs, types, args, NULL, false, 1);

	if ((rc != SPI_OK_SELECT && rc != SPI_OK_UPDATE_RETURNING) || SPI_processed != 1)
		elog(ERROR, "%s failed", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Merge the islands (sorted by pair, then start) into udaconnect.encounter
 * with SPI connected and encounter_clock locked; gap in microseconds.
 * Returns the number of encounters written.
 */
int64
enc_merge(const EncIslands *is, int64 gap)
{
	Writer		w = {0};
	Datum	   *persons;
	Oid			type = INT4ARRAYOID;
	Datum		arg;

	if (is->n == 0)
		return 0;
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	writer_open(&w, is->n);
	w.version = spi_int64("UPDATE udaconnect.encounter_clock SET version = version + 1 RETURNING version",
						  0, NULL, NULL);
	for (int i = 0; i < is->n;)
	{
		int			j = i + 1;

		while (j < is->n && is->isl[j].person_a == is->isl[i].person_a &&
			   is->isl[j].person_b == is->isl[i].person_b)
			j++;
		merge_pair(&w, is, i, j, gap);
		i = j;
	}
	writer_close(&w);
	PopActiveSnapshot();

	notify_ids(&w);
	persons = palloc(sizeof(Datum) * Max(w.npersons, 1));
	for (int i = 0; i < w.npersons; i++)
		persons[i] = Int32GetDatum(w.persons[i]);
	arg = PointerGetDatum(construct_array(persons, w.npersons, INT4OID, 4, true, TYPALIGN_INT));
	spi_int64("SELECT udaconnect.encounter_notify_persons($1)::bigint", 1, &type, &arg);
	return w.nchanged;
}
