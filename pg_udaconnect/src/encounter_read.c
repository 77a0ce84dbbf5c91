/*
 * encounter_read.c — udaconnect.encounters(person_id, from, to): a person's
 * maintained encounters overlapping [from, to), in order of started_at then
 * id, with the other person, the place's name and the duration
 * (sql/src/50-encounters.sql declares it and says what it returns).
 *
 * It is a read of maintained rows and must cost little more than reading
 * them (issue 15: p50 under 1 ms for a person-day of a dense conference,
 * ~700 rows): so it scans the two indexes the maintenance keeps anyway
 * (encounter_pair_idx for the person as person_a, encounter_b_idx as
 * person_b) with the time bound as an index condition, fetches each heap
 * row once, sorts in memory and looks up the few distinct places in one
 * scan of place_pkey.  The SQL text of the same query spent as much time
 * in planning, the UNION, the join and the sort nodes as in the reads.
 *
 * The rule it applies (the person is either side; an encounter overlaps
 * [from, to) when started_at < to and ended_at >= from) is the one
 * api_encounters() and the docs state; it must not decide anything about
 * who may read (the callers, api_encounters, do: this function is not
 * granted to PUBLIC) and checks only that its caller may SELECT the two
 * tables, as the SQL version did.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "encounter_int.h"

static const EncColumn place_cols[2] = {{"id", INT4OID}, {"name", TEXTOID}};

/* One result row before sorting. */
typedef struct EncRow
{
	int64		id;
	int32		other;
	TimestampTz start;
	TimestampTz end;
	int64		matches;
	double		min_distance_m;
	bool		has_place;
	int32		place_id;
	double		lat;
	double		lon;
	int64		version;
} EncRow;

typedef struct EncRows
{
	EncRow	   *rows;
	int			n;
	int			cap;
} EncRows;

/* TIDs of the person's index entries, fetched in block order later */
typedef struct EncTids
{
	uint64	   *tids;			/* block << 17 | offset << 1 | side */
	int			n;
	int			cap;
} EncTids;

#define ST_SORT sort_tids
#define ST_ELEMENT_TYPE uint64
#define ST_COMPARE(a, b) ((*(a) > *(b)) - (*(a) < *(b)))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * Append the heap TIDs of one side's index entries: the person (index
 * column 1) with started_at (index column tcol) in [lower, to_t).  Only
 * the index is read here: fetch_rows() reads the rows in block order, so a
 * page holding many of them (a batch writes its new encounters of a person
 * side by side) is looked up and pinned once, not once a row.  The
 * entries of dead rows stay in the index until VACUUM (an index scan would
 * have marked them, as this walk cannot).  side (0 or 1) says which index
 * the TID came from, for the statistics.
 */
static void
collect_side(Relation heap, Relation idx, int side, int32 person, int tcol,
			 TimestampTz lower, TimestampTz to_t, EncTids *out)
{
	ScanKeyData keys[3];
	int			nkeys = 2;
	IndexScanDesc scan;
	ItemPointer tid;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(person));
	ScanKeyInit(&keys[1], tcol, BTLessStrategyNumber, F_TIMESTAMPTZ_LT,
				TimestampTzGetDatum(to_t));
	/* no encounter that started before lower can reach from_t */
	if (lower != DT_NOBEGIN)
		ScanKeyInit(&keys[nkeys++], tcol, BTGreaterEqualStrategyNumber, F_TIMESTAMPTZ_GE,
					TimestampTzGetDatum(lower));
	scan = index_beginscan(heap, idx, GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (out->n == out->cap)
		{
			out->cap *= 2;
			out->tids = repalloc_huge(out->tids, sizeof(uint64) * out->cap);
		}
		out->tids[out->n++] = ((uint64) ItemPointerGetBlockNumber(tid) << 17) |
			((uint64) ItemPointerGetOffsetNumber(tid) << 1) | side;
	}
	index_endscan(scan);
}

/* One fetched row into r, seen from the person's side. */
static void
fill_row(EncRow *r, TupleTableSlot *slot, const AttrNumber *att, int32 person)
{
	Datum	   *v = slot->tts_values;
	int32		a = DatumGetInt32(v[att[ENC_A] - 1]);

	r->id = DatumGetInt64(v[att[ENC_ID] - 1]);
	r->other = a == person ? DatumGetInt32(v[att[ENC_B] - 1]) : a;
	r->start = DatumGetTimestampTz(v[att[ENC_START] - 1]);
	r->end = DatumGetTimestampTz(v[att[ENC_END] - 1]);
	r->matches = DatumGetInt64(v[att[ENC_MATCHES] - 1]);
	r->min_distance_m = DatumGetFloat8(v[att[ENC_MIND] - 1]);
	r->has_place = !slot->tts_isnull[att[ENC_PLACE] - 1];
	r->place_id = r->has_place ? DatumGetInt32(v[att[ENC_PLACE] - 1]) : 0;
	r->lat = DatumGetFloat8(v[att[ENC_LAT] - 1]);
	r->lon = DatumGetFloat8(v[att[ENC_LON] - 1]);
	r->version = DatumGetInt64(v[att[ENC_VERSION] - 1]);
}

/*
 * Fetch the rows the TIDs point to, in block order, as the snapshot sees
 * them (a HOT chain is followed from its root, as an index scan does),
 * keeping those with ended_at >= from_t.
 */
static void
fetch_rows(Relation heap, Relation *idx, const AttrNumber *att, int32 person,
		   TimestampTz from_t, EncTids *tids, EncRows *out)
{
	IndexFetchTableData *fetch = table_index_fetch_begin(heap);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	Snapshot	snap = GetActiveSnapshot();
	int			maxatt = 0;

	for (int c = 0; c < ENC_NCOLS; c++)
		maxatt = Max(maxatt, att[c]);
	sort_tids(tids->tids, tids->n);
	for (int i = 0; i < tids->n; i++)
	{
		ItemPointerData tid;
		bool		call_again = false;

		CHECK_FOR_INTERRUPTS();
		if (i > 0 && tids->tids[i] >> 1 == tids->tids[i - 1] >> 1)
			continue;
		ItemPointerSet(&tid, (BlockNumber) (tids->tids[i] >> 17),
					   (OffsetNumber) ((tids->tids[i] >> 1) & 0xFFFF));
		if (!table_index_fetch_tuple(fetch, &tid, snap, slot, &call_again, NULL))
			continue;
		/* counted on its index, as index_fetch_heap() does */
		pgstat_count_heap_fetch(idx[tids->tids[i] & 1]);
		slot_getsomeattrs(slot, maxatt);
		if (DatumGetTimestampTz(slot->tts_values[att[ENC_END] - 1]) < from_t)
			continue;
		if (out->n == out->cap)
		{
			out->cap *= 2;
			out->rows = repalloc_huge(out->rows, sizeof(EncRow) * out->cap);
		}
		fill_row(&out->rows[out->n++], slot, att, person);
	}
	table_index_fetch_end(fetch);
	ExecDropSingleTupleTableSlot(slot);
}

/* order of the result: started_at, then id */
static inline int
row_cmp(const EncRow *a, const EncRow *b)
{
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

/* sorts pointers: the rows are too wide to move around */
typedef EncRow *EncRowPtr;

#define ST_SORT sort_rows
#define ST_ELEMENT_TYPE EncRowPtr
#define ST_COMPARE(a, b) row_cmp(*(a), *(b))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * The names of the places the rows name, in one scan of place_pkey with
 * id = ANY(ids): *ids (sorted, distinct) and *names are parallel arrays.
 */
static void
place_names(Oid nsp, const EncRows *rows, int32 **ids, text ***names, int *n)
{
	Relation	heap;
	Relation	idx;
	AttrNumber	pcol[2];
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Datum	   *elems;
	int			k = 0;

	*ids = palloc_extended(sizeof(int32) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < rows->n; i++)
		if (rows->rows[i].has_place)
			(*ids)[k++] = rows->rows[i].place_id;
	qsort(*ids, k, sizeof(int32), enc_cmp_int32);
	*n = 0;
	for (int i = 0; i < k; i++)
		if (*n == 0 || (*ids)[*n - 1] != (*ids)[i])
			(*ids)[(*n)++] = (*ids)[i];
	*names = palloc0(sizeof(text *) * Max(*n, 1));
	if (*n == 0)
		return;

	heap = table_open(enc_relid(nsp, "place"), AccessShareLock);
	enc_columns(heap, place_cols, 2, false, pcol);
	idx = enc_open_btree(nsp, heap, "place_pkey", &pcol[0], 1,
						 "ALTER TABLE udaconnect.place ADD CONSTRAINT place_pkey PRIMARY KEY (id);");
	elems = palloc(sizeof(Datum) * *n);
	for (int i = 0; i < *n; i++)
		elems[i] = Int32GetDatum((*ids)[i]);
	ScanKeyEntryInitialize(&key, SK_SEARCHARRAY, 1, BTEqualStrategyNumber, INT4OID,
						   InvalidOid, F_INT4EQ,
						   PointerGetDatum(construct_array(elems, *n, INT4OID, 4, true,
														   TYPALIGN_INT)));
	slot = table_slot_create(heap, NULL);
	scan = index_beginscan(heap, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		int32		id = DatumGetInt32(slot_getattr(slot, pcol[0], &isnull));
		int32	   *at = bsearch(&id, *ids, *n, sizeof(int32), enc_cmp_int32);

		if (at != NULL)
			(*names)[at - *ids] = DatumGetTextPCopy(slot_getattr(slot, pcol[1], &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* the locks are held to the end of the transaction, as a query's are */
	index_close(idx, NoLock);
	table_close(heap, NoLock);
}

/*
 * ended_at - started_at as timestamp_mi() gives it (days of 24 hours and
 * the rest), without its two calls and two allocations a row; the span is
 * never negative (encounter_times_check).
 */
static Interval *
span_interval(TimestampTz start, TimestampTz end)
{
	Interval   *iv = palloc(sizeof(Interval));
	int64		span;

	/* only a row written by hand can hold one; as timestamp_mi() says */
	if (TIMESTAMP_NOT_FINITE(start) || TIMESTAMP_NOT_FINITE(end))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("cannot subtract infinite timestamps")));
	/* and a hand-written span too long for an interval, as PostgreSQL 16 does */
	if (pg_sub_s64_overflow(end, start, &span))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("interval out of range")));
	iv->month = 0;
	iv->day = (int32) (span / USECS_PER_DAY);
	iv->time = span % USECS_PER_DAY;
	return iv;
}

/* The rows, sorted, into the function's tuplestore. */
static void
return_rows(ReturnSetInfo *rsinfo, const EncRows *rows, Oid nsp)
{
	int32	   *ids;
	text	  **names;
	int			nplaces;
	EncRow	  **order = palloc_extended(sizeof(EncRow *) * Max(rows->n, 1), MCXT_ALLOC_HUGE);

	for (int i = 0; i < rows->n; i++)
		order[i] = &rows->rows[i];
	sort_rows(order, rows->n);
	place_names(nsp, rows, &ids, &names, &nplaces);
	for (int i = 0; i < rows->n; i++)
	{
		const EncRow *r = order[i];
		Datum		values[12];
		bool		nulls[12] = {0};
		int32	   *at = !r->has_place ? NULL :
			bsearch(&r->place_id, ids, nplaces, sizeof(int32), enc_cmp_int32);

		values[0] = Int64GetDatum(r->id);
		values[1] = Int32GetDatum(r->other);
		values[2] = TimestampTzGetDatum(r->start);
		values[3] = TimestampTzGetDatum(r->end);
		values[4] = IntervalPGetDatum(span_interval(r->start, r->end));
		values[5] = Int64GetDatum(r->matches);
		values[6] = Float8GetDatum(r->min_distance_m);
		values[7] = Int32GetDatum(r->place_id);
		nulls[7] = !r->has_place;
		/* a place deleted since (its encounters keep its id until rebuilt) */
		nulls[8] = at == NULL || names[at - ids] == NULL;
		values[8] = nulls[8] ? (Datum) 0 : PointerGetDatum(names[at - ids]);
		values[9] = Float8GetDatum(r->lat);
		values[10] = Float8GetDatum(r->lon);
		values[11] = Int64GetDatum(r->version);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * The caller may SELECT the table, as the SQL text of this function
 * required; row-level security is not applied below SQL, so a table with it
 * enabled is refused rather than read whole.
 */
static void
check_readable(Oid relid)
{
	AclResult	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(relid));
	if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("udaconnect.encounters() does not apply the row-level security of \"udaconnect.%s\"",
						get_rel_name(relid)),
				 errhint("Read through udaconnect.api_encounters(), which decides who may see whose encounters.")));
}

PG_FUNCTION_INFO_V1(udc_encounters);
Datum
udc_encounters(PG_FUNCTION_ARGS)
{
	int32		person = PG_GETARG_INT32(0);
	TimestampTz from_t = PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz to_t = PG_GETARG_TIMESTAMPTZ(2);
	Oid			nsp = get_namespace_oid("udaconnect", false);
	Relation	heap;
	Relation	pair_idx;
	Relation	b_idx;
	Relation	idx[2];
	AttrNumber	att[ENC_NCOLS];
	EncRows		rows = {palloc(sizeof(EncRow) * 256), 0, 256};
	EncTids		tids = {palloc(sizeof(uint64) * 256), 0, 256};
	int64		longest;
	TimestampTz lower = DT_NOBEGIN;

	InitMaterializedSRF(fcinfo, 0);
	/*
	 * An encounter overlapping [from, to) started at most the longest span
	 * ever written before from: the scans start there, not at the person's
	 * first encounter (a later day of a conference, a long history).
	 */
	longest = enc_clock_longest(nsp);
	if (longest >= 0 && !TIMESTAMP_NOT_FINITE(from_t) && from_t - longest >= MIN_TIMESTAMP)
		lower = from_t - longest;
	heap = table_open(enc_relid(nsp, "encounter"), AccessShareLock);
	check_readable(RelationGetRelid(heap));
	check_readable(enc_relid(nsp, "place"));
	enc_columns(heap, enc_encounter_cols, ENC_NCOLS, false, att);
	pair_idx = enc_open_pair_idx(nsp, heap, att);
	b_idx = enc_open_b_idx(nsp, heap, att);

	idx[0] = pair_idx;
	idx[1] = b_idx;
	collect_side(heap, pair_idx, 0, person, 3, lower, to_t, &tids);
	collect_side(heap, b_idx, 1, person, 2, lower, to_t, &tids);
	fetch_rows(heap, idx, att, person, from_t, &tids, &rows);
	index_close(b_idx, NoLock);
	index_close(pair_idx, NoLock);
	table_close(heap, NoLock);

	return_rows((ReturnSetInfo *) fcinfo->resultinfo, &rows, nsp);
	return (Datum) 0;
}
