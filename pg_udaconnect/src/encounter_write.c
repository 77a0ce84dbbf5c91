/*
 * encounter_write.c — the rows of udaconnect.encounter and
 * encounter_removed as the merge (encounter_merge.c) reads and writes them,
 * below SQL: a pair's stored encounters through encounter_pair_idx, and
 * inserts, updates and deletes through the executor's simple-relation calls
 * (as logical replication's apply worker writes: constraints checked,
 * indexes maintained, HOT where the page has room, row triggers of the
 * table fired), within one call of the merge.
 *
 * Opening a writer takes the clock's next version (encounter_clock, whose
 * row the caller locked with encounter_lock()): every row written or
 * logged as removed in the call gets it.  Closing it announces the version
 * with the encounters written and removed and their persons
 * (encounter_notify.c: NOTIFY udaconnect_encounter and
 * udaconnect_encounter_person).  The writes
 * check no privileges, as the SECURITY DEFINER SQL they replace did not:
 * whoever may add locations may have their encounters maintained.  This
 * file must not decide what is merged with what (encounter_merge.c).
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
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "encounter_int.h"

enum
{
	R_VERSION, R_ID, R_PERSON, R_MERGED_INTO, R_REMOVED_AT, R_NCOLS
};

static const EncColumn removed_cols[R_NCOLS] = {
	{"version", INT8OID}, {"id", INT8OID}, {"person_id", INT4OID},
	{"merged_into", INT8OID}, {"removed_at", TIMESTAMPTZOID}
};

static const EncColumn clock_cols[1] = {{"version", INT8OID}};

struct EncWriter
{
	Relation	enc;
	Relation	removed;
	Relation	clock;
	Relation	pair_idx;
	AttrNumber	att[ENC_NCOLS];
	AttrNumber	ratt[R_NCOLS];
	AttrNumber	clock_att;
	Oid			id_seq;
	EState	   *estate;
	EPQState	epq;
	ResultRelInfo *rri[3];		/* encounter, encounter_removed, encounter_clock */
	IndexScanDesc scan;
	TupleTableSlot *scan_slot;
	TupleTableSlot *row_slot;
	TupleTableSlot *removed_slot;
	int64		version;
	AttrNumber	longest_att;	/* encounter_clock.longest_us (0: none) */
	int64		longest_stored; /* its value when opened */
	int64		longest;		/* the longest span written */
	TimestampTz now;
	/* the encounters written and removed, and their persons, to notify */
	EncNotice  *notes;
	int			nnotes;
	int32	   *persons;
	int			npersons;
	int			cap;
	int64		nwritten;
};

static void
open_estate(EncWriter *w)
{
	Relation	rels[3] = {w->enc, w->removed, w->clock};
	List	   *rtes = NIL;

	w->estate = CreateExecutorState();
	for (int i = 0; i < 3; i++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relid = RelationGetRelid(rels[i]);
		rte->relkind = rels[i]->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		rtes = lappend(rtes, rte);
	}
	ExecInitRangeTable(w->estate, rtes);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = GetActiveSnapshot();
	EvalPlanQualInit(&w->epq, w->estate, NULL, NIL, -1);
	for (int i = 0; i < 3; i++)
	{
		w->rri[i] = makeNode(ResultRelInfo);
		InitResultRelInfo(w->rri[i], rels[i], i + 1, NULL, 0);
		ExecOpenIndices(w->rri[i], false);
		w->estate->es_opened_result_relations =
			lappend(w->estate->es_opened_result_relations, w->rri[i]);
	}
	/* row triggers someone put on these tables fire at writer_close() */
	AfterTriggerBeginQuery();
}

/* version = version + 1 in encounter_clock's one row, which we locked. */
static int64
next_version(EncWriter *w)
{
	TupleTableSlot *old = table_slot_create(w->clock, NULL);
	TupleTableSlot *upd = table_slot_create(w->clock, NULL);
	TableScanDesc scan = table_beginscan(w->clock, GetActiveSnapshot(), 0, NULL);
	int64		v;

	if (!table_scan_getnextslot(scan, ForwardScanDirection, old))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("table \"udaconnect.encounter_clock\" has no row"),
				 errhint("INSERT INTO udaconnect.encounter_clock (version) SELECT coalesce(max(version), 0) FROM udaconnect.encounter;")));
	table_endscan(scan);
	slot_getallattrs(old);
	ExecClearTuple(upd);
	memcpy(upd->tts_values, old->tts_values, sizeof(Datum) * old->tts_nvalid);
	memcpy(upd->tts_isnull, old->tts_isnull, sizeof(bool) * old->tts_nvalid);
	v = DatumGetInt64(old->tts_values[w->clock_att - 1]) + 1;
	if (w->longest_att != InvalidAttrNumber && !old->tts_isnull[w->longest_att - 1])
		w->longest_stored = DatumGetInt64(old->tts_values[w->longest_att - 1]);
	upd->tts_values[w->clock_att - 1] = Int64GetDatum(v);
	ExecStoreVirtualTuple(upd);
	ExecSimpleRelationUpdate(w->rri[2], w->estate, &w->epq, old, upd);
	ExecDropSingleTupleTableSlot(old);
	ExecDropSingleTupleTableSlot(upd);
	return v;
}

/*
 * Open the relations (checked: encounter_rels.c) and the executor state;
 * take the next version.  cap: about how many encounters will be written.
 * The caller holds the encounter lock and a snapshot taken after it.
 */
EncWriter *
enc_writer_open(int cap)
{
	EncWriter  *w = palloc0(sizeof(EncWriter));
	Oid			nsp = get_namespace_oid("udaconnect", false);

	w->enc = table_open(enc_relid(nsp, "encounter"), RowExclusiveLock);
	w->removed = table_open(enc_relid(nsp, "encounter_removed"), RowExclusiveLock);
	w->clock = table_open(enc_relid(nsp, "encounter_clock"), RowExclusiveLock);
	enc_columns(w->enc, enc_encounter_cols, ENC_NCOLS, true, w->att);
	enc_columns(w->removed, removed_cols, R_NCOLS, true, w->ratt);
	enc_columns(w->clock, clock_cols, 1, false, &w->clock_att);
	w->longest_att = enc_clock_longest_att(w->clock);
	w->pair_idx = enc_open_pair_idx(nsp, w->enc, w->att);
	w->id_seq = getIdentitySequence(RelationGetRelid(w->enc), w->att[ENC_ID], false);

	open_estate(w);
	w->scan_slot = table_slot_create(w->enc, NULL);
	w->row_slot = table_slot_create(w->enc, NULL);
	w->removed_slot = table_slot_create(w->removed, NULL);
	w->scan = index_beginscan(w->enc, w->pair_idx, GetActiveSnapshot(), 3, 0);
	w->now = GetCurrentTransactionStartTimestamp();
	w->cap = Max(cap, 16);
	w->notes = palloc(sizeof(EncNotice) * w->cap);
	w->persons = palloc(sizeof(int32) * 2 * w->cap);
	w->version = next_version(w);
	return w;
}

/*
 * The elements of a stored int4[] or int8[] (no NULLs: CHECKed): place_ids
 * and place_matches, as the merge and encounter_places.c read them.
 */
int
enc_array_elems(Datum d, Oid type, Datum **out)
{
	int			n;

	if (type == INT4OID)
		deconstruct_array(DatumGetArrayTypeP(d), INT4OID, 4, true, TYPALIGN_INT, out, NULL, &n);
	else
		deconstruct_array(DatumGetArrayTypeP(d), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  out, NULL, &n);
	return n;
}

/* One stored encounter, from the scan's slot, as an item. */
static void
stored_item(EncWriter *w, TupleTableSlot *slot, EncItem *it)
{
	Datum	   *v = slot->tts_values;
	const AttrNumber *a = w->att;
	Datum	   *ids,
			   *cnts;

	it->stored = true;
	it->id = DatumGetInt64(v[a[ENC_ID] - 1]);
	it->tid = slot->tts_tid;
	it->s = DatumGetTimestampTz(v[a[ENC_START] - 1]);
	it->e = DatumGetTimestampTz(v[a[ENC_END] - 1]);
	it->n = DatumGetInt64(v[a[ENC_MATCHES] - 1]);
	it->dist = DatumGetFloat8(v[a[ENC_MIND] - 1]);
	it->ra = DatumGetInt64(v[a[ENC_CLOSEST_A] - 1]);
	it->rb = DatumGetInt64(v[a[ENC_CLOSEST_B] - 1]);
	it->lat = DatumGetFloat8(v[a[ENC_LAT] - 1]);
	it->lon = DatumGetFloat8(v[a[ENC_LON] - 1]);
	it->nplaces = enc_array_elems(v[a[ENC_PLACE_IDS] - 1], INT4OID, &ids);
	if (enc_array_elems(v[a[ENC_PLACE_MATCHES] - 1], INT8OID, &cnts) != it->nplaces)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("encounter %lld has place_ids and place_matches of different lengths",
						(long long) it->id),
				 errhint("Recompute it: SELECT udaconnect.encounters_rebuild(started_at, ended_at) FROM udaconnect.encounter WHERE id = %lld;",
						 (long long) it->id)));
	it->place_ids = palloc(sizeof(int32) * Max(it->nplaces, 1));
	it->place_counts = palloc(sizeof(int64) * Max(it->nplaces, 1));
	for (int k = 0; k < it->nplaces; k++)
	{
		it->place_ids[k] = DatumGetInt32(ids[k]);
		it->place_counts[k] = DatumGetInt64(cnts[k]);
	}
}

/*
 * Append to items[n..] the stored encounters of (pa, pb) with started_at
 * <= hi and ended_at >= lo; returns the new count.  The snapshot is the
 * writer's: this call's own writes are not seen (each pair is read once).
 */
int
enc_read_pair(EncWriter *w, int32 pa, int32 pb, TimestampTz lo, TimestampTz hi,
			  EncItem **items, int n, int *cap)
{
	ScanKeyData keys[3];
	TupleTableSlot *slot = w->scan_slot;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pa));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pb));
	ScanKeyInit(&keys[2], 3, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(hi));
	index_rescan(w->scan, keys, 3, NULL, 0);
	while (index_getnext_slot(w->scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		if (DatumGetTimestampTz(slot->tts_values[w->att[ENC_END] - 1]) < lo)
			continue;
		if (n == *cap)
		{
			*cap *= 2;
			*items = repalloc_huge(*items, sizeof(EncItem) * *cap);
		}
		stored_item(w, slot, &(*items)[n++]);
	}
	return n;
}

/*
 * An encounter written or removed, for the notifications.  A removal's
 * persons are those of the encounter written in its place: they are named
 * on udaconnect_encounter_person by that one.
 */
static void
note_change(EncWriter *w, int64 id, int32 pa, int32 pb, bool removed)
{
	if (w->nnotes == w->cap)
	{
		w->cap *= 2;
		w->notes = repalloc_huge(w->notes, sizeof(EncNotice) * w->cap);
		w->persons = repalloc_huge(w->persons, sizeof(int32) * 2 * w->cap);
	}
	w->notes[w->nnotes++] = (EncNotice) {id, pa, pb, removed};
	if (!removed)
	{
		w->persons[w->npersons++] = pa;
		w->persons[w->npersons++] = pb;
		w->nwritten++;
	}
}

/* Write one encounter: update the kept row, or insert a new one. */
int64
enc_write(EncWriter *w, const EncOut *o)
{
	TupleTableSlot *slot = w->row_slot;
	Datum	   *v = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	const AttrNumber *a = w->att;
	Datum	   *ids = palloc(sizeof(Datum) * Max(o->nplaces, 1));
	Datum	   *cnts = palloc(sizeof(Datum) * Max(o->nplaces, 1));
	int64		id = o->keep ? o->keep->id : nextval_internal(w->id_seq, false);

	for (int k = 0; k < o->nplaces; k++)
	{
		ids[k] = Int32GetDatum(o->place_ids[k]);
		cnts[k] = Int64GetDatum(o->place_counts[k]);
	}
	ResetPerTupleExprContext(w->estate);
	ExecClearTuple(slot);
	memset(nulls, false, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	v[a[ENC_ID] - 1] = Int64GetDatum(id);
	v[a[ENC_A] - 1] = Int32GetDatum(o->person_a);
	v[a[ENC_B] - 1] = Int32GetDatum(o->person_b);
	v[a[ENC_START] - 1] = TimestampTzGetDatum(o->start);
	v[a[ENC_END] - 1] = TimestampTzGetDatum(o->end);
	v[a[ENC_MATCHES] - 1] = Int64GetDatum(o->matches);
	v[a[ENC_MIND] - 1] = Float8GetDatum(o->closest->dist);
	nulls[a[ENC_PLACE] - 1] = o->top < 0;
	v[a[ENC_PLACE] - 1] = o->top < 0 ? (Datum) 0 : Int32GetDatum(o->place_ids[o->top]);
	v[a[ENC_PLACE_IDS] - 1] =
		PointerGetDatum(construct_array(ids, o->nplaces, INT4OID, 4, true, TYPALIGN_INT));
	v[a[ENC_PLACE_MATCHES] - 1] =
		PointerGetDatum(construct_array(cnts, o->nplaces, INT8OID, 8, FLOAT8PASSBYVAL,
										TYPALIGN_DOUBLE));
	v[a[ENC_LAT] - 1] = Float8GetDatum(o->closest->lat);
	v[a[ENC_LON] - 1] = Float8GetDatum(o->closest->lon);
	v[a[ENC_CLOSEST_A] - 1] = Int64GetDatum(o->closest->ra);
	v[a[ENC_CLOSEST_B] - 1] = Int64GetDatum(o->closest->rb);
	v[a[ENC_VERSION] - 1] = Int64GetDatum(w->version);
	ExecStoreVirtualTuple(slot);
	w->longest = Max(w->longest, o->end - o->start);
	if (o->keep)
	{
		TupleTableSlot *search = w->scan_slot;

		ExecClearTuple(search);
		ExecStoreAllNullTuple(search);
		search->tts_tid = o->keep->tid;
		ExecSimpleRelationUpdate(w->rri[0], w->estate, &w->epq, search, slot);
	}
	else
		ExecSimpleRelationInsert(w->rri[0], w->estate, slot);
	note_change(w, id, o->person_a, o->person_b, false);
	pfree(ids);
	pfree(cnts);
	return id;
}

/*
 * Remove stored encounter `it`, merged into `keep`, and log it for both
 * persons (whom the write of `keep` notifies).
 */
void
enc_write_removed(EncWriter *w, const EncItem *it, int64 keep, int32 pa, int32 pb)
{
	TupleTableSlot *rs = w->removed_slot;

	ResetPerTupleExprContext(w->estate);
	ExecClearTuple(w->row_slot);
	ExecStoreAllNullTuple(w->row_slot);
	w->row_slot->tts_tid = it->tid;
	ExecSimpleRelationDelete(w->rri[0], w->estate, &w->epq, w->row_slot);
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
		ExecSimpleRelationInsert(w->rri[1], w->estate, rs);
	}
	note_change(w, it->id, pa, pb, true);
}

/*
 * Fire the row triggers, close everything, notify; returns the number of
 * encounters written.  The locks are held to the end of the transaction.
 */
int64
enc_writer_close(EncWriter *w)
{
	int64		n = w->nwritten;

	index_endscan(w->scan);
	AfterTriggerEndQuery(w->estate);
	ExecDropSingleTupleTableSlot(w->scan_slot);
	ExecDropSingleTupleTableSlot(w->row_slot);
	ExecDropSingleTupleTableSlot(w->removed_slot);
	for (int i = 0; i < 3; i++)
		ExecCloseIndices(w->rri[i]);
	EvalPlanQualEnd(&w->epq);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	index_close(w->pair_idx, NoLock);
	table_close(w->clock, NoLock);
	table_close(w->removed, NoLock);
	table_close(w->enc, NoLock);
	/* a reader bounds its scans by it: raised in the same transaction */
	if (w->longest_att != InvalidAttrNumber && w->longest > w->longest_stored)
		enc_clock_raise_longest(get_namespace_oid("udaconnect", false), w->longest);

	enc_notify_version(w->version, w->notes, w->nnotes);
	enc_notify_persons(w->persons, w->npersons);
	return n;
}
