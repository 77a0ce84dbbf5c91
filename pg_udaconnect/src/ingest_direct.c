/*
 * ingest_direct.c — the ingest's direct insert path: what COPY does for a
 * batch's valid rows, minus what costs without being needed (details below
 * and in docs/ingest.md, "The direct insert path"): tuples formed from the
 * decoded values, table_multi_insert, index entries inserted one index at a
 * time in index order; into a partitioned table, each partition's rows into
 * that partition (ingest_route.c decides which) and its own indexes.
 *
 * It must not be used for a table or partition it does not reproduce
 * exactly (direct_path_ok, direct_partition_ok: it then returns -1, having
 * written nothing, and the caller uses COPY), must not catch errors or
 * reject rows (ingest_batch.c does), and must not call any other file of the
 * worker than ingest_route.c.  It is the hot path: nothing per row beyond
 * routing, forming, inserting and indexing the tuple.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "partitioning/partdesc.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/sortsupport.h"
#include "utils/syscache.h"

#include "encounter.h"
#include "ingest_int.h"
#include "udc_pg.h"
#include "geodesy.h"

/* ------------------------------------------------------------------------
 * The direct insert path
 *
 * What COPY does for these rows, minus what costs without being needed:
 * no COPY parsing (tuples are formed from the decoded values), no transition
 * table for the person trigger (check_persons() in ingest_batch.c has locked
 * every referenced person FOR KEY SHARE, which is all that trigger does), and
 * the index entries of a batch go in index order, one index at a time
 * (sorted inserts touch neighbouring leaf pages: the random-order (cell,
 * creation_time) index costs half as much per row).  The identity comes
 * from its sequence, the cell column from udc_cell_key() (see
 * generated_is_cell_key), any other generated column and the constraints
 * from the executor, as for COPY.
 *
 * A partitioned table (1.5) is written partition by partition: the rows
 * that tuple routing would send to a partition (ingest_route.c), multi-
 * inserted into it and entered into its own indexes; the ids are drawn in
 * batch order from the table's sequence, as COPY does; the person check and
 * the encounter maintenance, the table's statement triggers, stay once per
 * batch.  Bounds that changed while the partitions were being locked (a
 * partition attached meanwhile) make the batch route again (open_partitions).
 *
 * Only used when the table and every partition written are exactly what
 * this path reproduces (see direct_path_ok, direct_partition_ok); anything
 * else — another trigger (a partition's own included), a rule, row level
 * security, a partitioning other than by range on creation_time, a
 * sub-partitioned or foreign partition, an index with an expression or
 * predicate, an exclusion or deferrable constraint, another column — sends
 * the batch through COPY.
 * ------------------------------------------------------------------------ */
#define DIRECT_CHUNK 1000

/* the columns of one relation written, by attribute number in it */
typedef struct DirectCols
{
	AttrNumber	person;
	AttrNumber	coordinate;
	AttrNumber	creation_time;
	AttrNumber	identity;		/* 0: none */
	AttrNumber	cell;			/* 0: none; else computed here */
	bool		has_generated;	/* generated columns the executor computes */
} DirectCols;

/* what holds for the whole table, partitioned or not */
typedef struct DirectTable
{
	DirectCols	cols;			/* of the table itself */
	Oid			identity_seq;	/* the ids of every partition come from it */
	const char *identity_name;
	bool		encounters;		/* the encounter trigger: call it ourselves */
} DirectTable;

/* a relation written: the table itself, or a partition of it */
typedef struct DirectTarget
{
	Relation	rel;
	ResultRelInfo *rri;
	DirectCols	cols;
	const int  *rows;			/* its rows, by number in the batch; NULL: all */
	int			nrows;
} DirectTarget;

/* is e the function call fn(args...) of the given arity? */
static FuncExpr *
func_call(Node *e, Oid fn, int nargs)
{
	FuncExpr   *f = (FuncExpr *) e;

	if (e == NULL || !IsA(e, FuncExpr) || f->funcid != fn || list_length(f->args) != nargs)
		return NULL;
	return f;
}

static bool
is_var(Node *e, AttrNumber att)
{
	return e != NULL && IsA(e, Var) && ((Var *) e)->varattno == att;
}

/* function schema.name(argtype), or InvalidOid (never an error) */
static Oid
lookup_function(Oid nsp, const char *name, int nargs, const Oid *argtypes)
{
	char	   *schema = get_namespace_name(nsp);

	if (schema == NULL)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(schema), makeString(pstrdup(name))), nargs, argtypes, true);
}

/*
 * Is column att generated as udaconnect.cell_key(ST_Y(coordinate),
 * ST_X(coordinate))?  Then the direct path computes it with the function
 * behind cell_key (udc_cell_key) from the very doubles ST_Y and ST_X would
 * read back from the point: the same value, without evaluating the
 * expression per row.
 */
static bool
generated_is_cell_key(Relation rel, AttrNumber att, AttrNumber coordinate, Oid geomtype, Oid geomnsp)
{
	Oid			f8f8[2] = {FLOAT8OID, FLOAT8OID};
	Oid			cellfn = LookupFuncName(list_make2(makeString("udaconnect"), makeString("cell_key")), 2, f8f8, true);
	Oid			styfn = lookup_function(geomnsp, "st_y", 1, &geomtype);
	Oid			stxfn = lookup_function(geomnsp, "st_x", 1, &geomtype);
	FuncExpr   *f;
	FuncExpr   *y,
			   *x;

	if (!OidIsValid(cellfn) || !OidIsValid(styfn) || !OidIsValid(stxfn))
		return false;
	f = func_call(build_column_default(rel, att), cellfn, 2);
	if (f == NULL)
		return false;
	y = func_call(linitial(f->args), styfn, 1);
	x = func_call(lsecond(f->args), stxfn, 1);
	return y != NULL && x != NULL &&
		is_var(linitial(y->args), coordinate) && is_var(linitial(x->args), coordinate);
}

/*
 * Triggers: only the person check, whose lock check_persons() takes, and
 * the encounter maintenance, which we call with the inserted rows (*enc).
 */
static bool
direct_triggers_ok(Relation rel, bool *enc)
{
	List	   *fname = list_make2(makeString("udaconnect"), makeString("location_check_person"));
	Oid			checkfn = LookupFuncName(fname, 0, NULL, true);
	int			i;

	*enc = false;
	if (rel->trigdesc == NULL)
		return true;
	for (i = 0; i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];

		if (!TRIGGER_FOR_INSERT(t->tgtype) || t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_AFTER(t->tgtype))
			return false;
		if (udc_encounter_is_trigger_function(t->tgfoid) && !*enc)
			*enc = true;
		else if (t->tgfoid != checkfn || !OidIsValid(checkfn))
			return false;
	}
	return true;
}

/*
 * Columns: the three we supply, plus identity and generated ones.  In a
 * partition (identity != NULL) the identity is the column of that name: its
 * values come from the table's sequence, as COPY takes them from the
 * table's default.
 */
static bool
direct_cols_ok(Relation rel, const char *identity, DirectCols *dc)
{
	TupleDesc	td = RelationGetDescr(rel);
	Oid			geomtype = InvalidOid;
	Oid			geomnsp = InvalidOid;
	int			i;

	memset(dc, 0, sizeof(*dc));
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);
		const char *name = NameStr(a->attname);

		if (a->attisdropped)
			continue;
		if (strcmp(name, "person_id") == 0 && a->atttypid == INT4OID)
			dc->person = a->attnum;
		else if (strcmp(name, "coordinate") == 0 && udc_is_geometry_type(a->atttypid, &geomnsp))
		{
			dc->coordinate = a->attnum;
			geomtype = a->atttypid;
		}
		else if (strcmp(name, "creation_time") == 0 && a->atttypid == TIMESTAMPTZOID)
			dc->creation_time = a->attnum;
		else if (a->atttypid == INT8OID && dc->identity == 0 &&
				 (identity != NULL ? strcmp(name, identity) == 0 : a->attidentity != '\0'))
			dc->identity = a->attnum;
		else if (a->attgenerated == ATTRIBUTE_GENERATED_STORED)
		{
			if (strcmp(name, "cell") == 0 && a->atttypid == INT8OID && dc->cell == 0)
				dc->cell = a->attnum;	/* checked below */
			else
				dc->has_generated = true;
		}
		else
			return false;
	}
	if (dc->person == 0 || dc->coordinate == 0 || dc->creation_time == 0)
		return false;
	if (dc->cell != 0 && !generated_is_cell_key(rel, dc->cell, dc->coordinate, geomtype, geomnsp))
	{
		dc->cell = 0;
		dc->has_generated = true;
	}
	return true;
}

/* indexes: plain columns, checked immediately */
static bool
direct_indexes_ok(ResultRelInfo *rri)
{
	int			i;

	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];
		Relation	irel = rri->ri_IndexRelationDescs[i];

		if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL ||
			ii->ii_ExclusionOps != NULL ||
			(ii->ii_Unique && !irel->rd_index->indimmediate))
			return false;
	}
	return true;
}

/*
 * The table: a plain table, or one partitioned by range on creation_time
 * (its partitions are checked by direct_partition_ok); no rule, no policy,
 * only the triggers this path replaces, only the columns it fills.
 */
static bool
direct_path_ok(Relation rel, DirectTable *tab)
{
	char		kind = rel->rd_rel->relkind;

	memset(tab, 0, sizeof(*tab));
	if ((kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) ||
		rel->rd_rel->relrowsecurity || rel->rd_rules != NULL ||
		!direct_triggers_ok(rel, &tab->encounters) ||
		!direct_cols_ok(rel, NULL, &tab->cols))
		return false;
	if (tab->cols.identity != 0)
	{
		tab->identity_seq = getIdentitySequence(RelationGetRelid(rel), tab->cols.identity, true);
		if (!OidIsValid(tab->identity_seq))
			return false;
		tab->identity_name = pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel), tab->cols.identity - 1)->attname));
	}
	/* the matcher needs each row's id */
	return !tab->encounters || tab->cols.identity != 0;
}

/*
 * A partition the rows go into: the same checks as for a plain table, on its
 * own triggers, rules, policies, columns and indexes (a row trigger of its
 * own, say, sends the batch through COPY).  Its statement triggers would
 * not fire for rows routed to it, so the encounter maintenance is the
 * table's business only.
 */
static bool
direct_partition_ok(DirectTarget *t, const DirectTable *tab)
{
	Relation	rel = t->rel;
	bool		enc;

	return rel->rd_rel->relkind == RELKIND_RELATION &&
		!rel->rd_rel->relrowsecurity && rel->rd_rules == NULL &&
		direct_triggers_ok(rel, &enc) &&
		direct_cols_ok(rel, tab->identity_name, &t->cols) &&
		(t->cols.identity != 0) == (tab->cols.identity != 0) &&
		direct_indexes_ok(t->rri);
}

/*
 * A point datum: PostGIS's own serialization of (0, 0) with the coordinates
 * patched in, when that layout has been verified on this batch's sample;
 * otherwise ST_SetSRID(ST_MakePoint()) for every row.
 */
typedef struct PointMaker
{
	bool		patch;
	Size		len;
	char	   *tmpl;
} PointMaker;

static void
point_maker_init(PointMaker *pm)
{
	struct varlena *s = (struct varlena *) PG_DETOAST_DATUM(udc_point_datum(2.5, 1.5));
	double		x,
				y;

	pm->patch = false;
	if (VARATT_IS_4B_U(s) && VARSIZE(s) == 32)
	{
		memcpy(&x, (char *) s + 16, 8);
		memcpy(&y, (char *) s + 24, 8);
		if (x == 1.5 && y == 2.5)
		{
			pm->patch = true;
			pm->len = 32;
			pm->tmpl = (char *) s;
		}
	}
}

static Datum
point_maker_make(PointMaker *pm, double lat, double lon)
{
	char	   *p;

	if (!pm->patch)
		return udc_point_datum(lat, lon);
	p = palloc(pm->len);
	memcpy(p, pm->tmpl, 16);
	memcpy(p + 16, &lon, 8);
	memcpy(p + 24, &lat, 8);
	return PointerGetDatum(p);
}

/*
 * The decoded columns of every inserted row, side by side (index entries are
 * formed from these: no per-row slot access), and each row's heap TID.
 */
typedef struct DirectRows
{
	int			natts;
	Datum	   *values;			/* [row * natts + attnum - 1] */
	bool	   *isnull;
	ItemPointerData *tids;
} DirectRows;

/* sorting one index's entries */
typedef struct IndexSortCtx
{
	int			nkeys;
	SortSupport ssup;
	Datum	   *keys;			/* [row * nkeys + k] */
	bool	   *nulls;
	ItemPointerData *tids;
} IndexSortCtx;

static int
cmp_index_entry(const void *a, const void *b, void *arg)
{
	IndexSortCtx *c = (IndexSortCtx *) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int			k;

	for (k = 0; k < c->nkeys; k++)
	{
		int			r = ApplySortComparator(c->keys[x * c->nkeys + k], c->nulls[x * c->nkeys + k],
											c->keys[y * c->nkeys + k], c->nulls[y * c->nkeys + k],
											&c->ssup[k]);

		if (r != 0)
			return r;
	}
	return ItemPointerCompare(&c->tids[x], &c->tids[y]);
}

/* insert the entries of rows r[0..n) into index j, in index order */
static void
insert_index_sorted(Relation rel, ResultRelInfo *rri, int j, DirectRows *r, int n)
{
	Relation	irel = rri->ri_IndexRelationDescs[j];
	IndexInfo  *ii = rri->ri_IndexRelationInfo[j];
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(irel);
	int			natts = ii->ii_NumIndexAttrs;
	int		   *order = palloc(sizeof(int) * n);
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i,
				k;

	for (i = 0; i < n; i++)
		order[i] = i;
	if (irel->rd_rel->relam == BTREE_AM_OID && n > 1)
	{
		IndexSortCtx c;

		c.nkeys = nkeys;
		c.tids = r->tids;
		c.ssup = palloc0(sizeof(SortSupportData) * nkeys);
		c.keys = palloc(sizeof(Datum) * n * nkeys);
		c.nulls = palloc(sizeof(bool) * n * nkeys);
		for (k = 0; k < nkeys; k++)
		{
			int16		opt = irel->rd_indoption[k];
			int			a = ii->ii_IndexAttrNumbers[k] - 1;

			c.ssup[k].ssup_cxt = CurrentMemoryContext;
			c.ssup[k].ssup_collation = irel->rd_indcollation[k];
			c.ssup[k].ssup_nulls_first = (opt & INDOPTION_NULLS_FIRST) != 0;
			c.ssup[k].ssup_attno = k + 1;
			PrepareSortSupportFromIndexRel(irel, (opt & INDOPTION_DESC) ? BTGreaterStrategyNumber : BTLessStrategyNumber,
										   &c.ssup[k]);
			for (i = 0; i < n; i++)
			{
				c.keys[i * nkeys + k] = r->values[i * r->natts + a];
				c.nulls[i * nkeys + k] = r->isnull[i * r->natts + a];
			}
		}
		qsort_arg(order, n, sizeof(int), cmp_index_entry, &c);
		pfree(c.keys);
		pfree(c.nulls);
		pfree(c.ssup);
	}
	for (i = 0; i < n; i++)
	{
		int			row = order[i];

		for (k = 0; k < natts; k++)
		{
			int			a = ii->ii_IndexAttrNumbers[k] - 1;

			values[k] = r->values[row * r->natts + a];
			isnull[k] = r->isnull[row * r->natts + a];
		}
		index_insert(irel, values, isnull, &r->tids[row], rel,
					 ii->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO, false, ii);
	}
	pfree(order);
}

/* What the encounter trigger would have done for the inserted rows. */
static void
add_encounters(const IngestRow *rows, const int64 *ids, int n)
{
	EncPoint   *pts = palloc(sizeof(EncPoint) * n);

	for (int i = 0; i < n; i++)
		pts[i] = (EncPoint) {ids[i], rows[i].person_id, rows[i].latitude, rows[i].longitude,
			rows[i].creation_time};
	udc_encounters_add(pts, n);
	pfree(pts);
}

/*
 * Fill slot with row (id: its identity, if the relation has one), compute
 * and check what the executor would, and materialize it for the insert.
 */
static inline void
form_row(DirectTarget *t, EState *estate, TupleTableSlot *slot, const IngestRow *row, int64 id,
		 PointMaker *pm)
{
	DirectCols *dc = &t->cols;

	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	slot->tts_values[dc->person - 1] = Int32GetDatum(row->person_id);
	slot->tts_isnull[dc->person - 1] = false;
	slot->tts_values[dc->coordinate - 1] = point_maker_make(pm, row->latitude, row->longitude);
	slot->tts_isnull[dc->coordinate - 1] = false;
	slot->tts_values[dc->creation_time - 1] = TimestampTzGetDatum(row->creation_time);
	slot->tts_isnull[dc->creation_time - 1] = false;
	if (dc->cell != 0)
	{
		slot->tts_values[dc->cell - 1] = Int64GetDatum(udc_cell_key(row->latitude, row->longitude));
		slot->tts_isnull[dc->cell - 1] = false;
	}
	if (dc->identity != 0)
	{
		slot->tts_values[dc->identity - 1] = Int64GetDatum(id);
		slot->tts_isnull[dc->identity - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
	if (dc->has_generated)
		ExecComputeStoredGenerated(t->rri, estate, slot, CMD_INSERT);
	if (t->rel->rd_att->constr)
		ExecConstraints(t->rri, slot, estate);
	ExecMaterializeSlot(slot);
	ResetPerTupleExprContext(estate);
}

/*
 * Insert and index the rows of one relation written.  ids: the batch's
 * identities by row number (NULL: none).
 */
static void
insert_target(EState *estate, DirectTarget *t, const IngestRow *rows, const int64 *ids,
			  PointMaker *pm, CommandId cid)
{
	int			n = t->nrows;
	TupleDesc	td;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	DirectRows	r;
	int			i,
				j;

	/* an unpinned copy of the descriptor: slots need no resource owner */
	td = CreateTupleDescCopy(RelationGetDescr(t->rel));
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * n);
	r.natts = td->natts;
	r.values = palloc(sizeof(Datum) * n * r.natts);
	r.isnull = palloc(sizeof(bool) * n * r.natts);
	r.tids = palloc(sizeof(ItemPointerData) * n);
	for (i = 0; i < n; i += DIRECT_CHUNK)
	{
		int			m = Min(DIRECT_CHUNK, n - i);

		for (j = i; j < i + m; j++)
		{
			int			row = t->rows ? t->rows[j] : j;

			slots[j] = MakeSingleTupleTableSlot(td, &TTSOpsHeapTuple);
			form_row(t, estate, slots[j], &rows[row], ids ? ids[row] : 0, pm);
		}
		table_multi_insert(t->rel, slots + i, m, cid, 0, bistate);
		for (j = i; j < i + m; j++)
		{
			slot_getallattrs(slots[j]);
			memcpy(&r.values[j * r.natts], slots[j]->tts_values, sizeof(Datum) * r.natts);
			memcpy(&r.isnull[j * r.natts], slots[j]->tts_isnull, sizeof(bool) * r.natts);
			r.tids[j] = slots[j]->tts_tid;
		}
	}
	FreeBulkInsertState(bistate);

	/* as ExecInsertIndexTuples(): skip indexes still being built */
	for (j = 0; j < t->rri->ri_NumIndices; j++)
		if (t->rri->ri_IndexRelationInfo[j]->ii_ReadyForInserts)
			insert_index_sorted(t->rel, t->rri, j, &r, n);
	pfree(r.values);
	pfree(r.isnull);
	pfree(r.tids);
}

/* how the set-up of an insert ended */
typedef enum DirectSetup
{
	DIRECT_READY,
	DIRECT_USE_COPY,			/* not a table or partition this path handles */
	DIRECT_ROUTE_AGAIN			/* the partition bounds changed meanwhile */
} DirectSetup;

/* an insert's attempts to route before it leaves the batch to COPY */
#define DIRECT_ROUTINGS 3

/* one batch's insert: the table, and the relations it writes */
typedef struct DirectInsert
{
	EState	   *estate;
	ResultRelInfo *root;		/* the table */
	DirectTable tab;
	DirectTarget *targets;
	int			ntargets;		/* opened so far */
	bool		partitioned;
} DirectInsert;

/*
 * Open the partitions that rows[0..n) go into (RowExclusiveLock), as result
 * relations routed from the table.
 */
static DirectSetup
open_partitions(DirectInsert *d, IngestRow *rows, int n)
{
	Relation	rel = d->root->ri_RelationDesc;
	bool		omit_detached = !IsolationUsesXactSnapshot();
	PartitionDesc pd;
	RoutedRows	rr;
	int			g;

	/*
	 * The bounds as tuple routing reads them: a partition being detached
	 * concurrently is left out, except under snapshot isolation.
	 */
	d->estate->es_partition_directory = CreatePartitionDirectory(d->estate->es_query_cxt, omit_detached);
	pd = PartitionDirectoryLookup(d->estate->es_partition_directory, rel);
	if (!udc_ingest_route(rel, pd, d->tab.cols.creation_time, rows, n, &rr))
		return DIRECT_USE_COPY;
	d->targets = palloc0(sizeof(DirectTarget) * rr.ngroups);
	for (g = 0; g < rr.ngroups; g++)
	{
		DirectTarget *t = &d->targets[g];

		t->rel = table_open(rr.oids[g], RowExclusiveLock);
		t->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(t->rri, t->rel, 0, d->root, d->estate->es_instrument);
		ExecOpenIndices(t->rri, false);
		d->ntargets++;
		t->rows = &rr.rows[rr.start[g]];
		t->nrows = rr.start[g + 1] - rr.start[g];
		if (!direct_partition_ok(t, &d->tab))
			return DIRECT_USE_COPY;
	}

	/*
	 * Locking the partitions read the invalidations their locks waited for:
	 * if the bounds changed since they were read (a partition attached by
	 * location_partitions_maintain() while we waited for location_default),
	 * the rows are routed again by the new ones.  From here on, a partition
	 * that would take rows routed to location_default waits for this
	 * transaction (creating or attaching one locks the DEFAULT partition),
	 * so none of those rows can break its partition constraint: tuple
	 * routing checks that constraint row by row instead.
	 */
	return RelationGetPartitionDesc(rel, omit_detached) == pd ? DIRECT_READY : DIRECT_ROUTE_AGAIN;
}

/*
 * Set up the insert of rows[0..n) into rel (nothing written; direct_end()
 * to be called whatever it returns).
 */
static DirectSetup
direct_begin(DirectInsert *d, Relation rel, IngestRow *rows, int n)
{
	RangeTblEntry *rte;

	memset(d, 0, sizeof(*d));
	d->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(d->estate, list_make1(rte));
	d->root = makeNode(ResultRelInfo);
	ExecInitResultRelation(d->estate, d->root, 1);
	if (!direct_path_ok(rel, &d->tab))
		return DIRECT_USE_COPY;
	d->partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	if (d->partitioned)
		return open_partitions(d, rows, n);

	ExecOpenIndices(d->root, false);
	d->targets = palloc0(sizeof(DirectTarget));
	d->targets[0].rel = rel;
	d->targets[0].rri = d->root;
	d->targets[0].cols = d->tab.cols;
	d->targets[0].nrows = n;
	d->ntargets = 1;
	return direct_indexes_ok(d->root) ? DIRECT_READY : DIRECT_USE_COPY;
}

static void
direct_end(DirectInsert *d)
{
	int			i;

	/* the table's own indexes and relation are the executor's to close */
	if (d->partitioned)
		for (i = 0; i < d->ntargets; i++)
		{
			ExecCloseIndices(d->targets[i].rri);
			table_close(d->targets[i].rel, NoLock);
		}
	ExecCloseResultRelations(d->estate);
	ExecCloseRangeTableRelations(d->estate);
	FreeExecutorState(d->estate);
}

/*
 * Insert rows[0..n) directly, into the table or, partitioned, into the
 * partition of each row.  Returns the number inserted, or -1 if the table or
 * one of these partitions is not one this path handles (nothing written:
 * use COPY).
 */
int64
udc_ingest_insert_direct(Relation rel, IngestRow *rows, int n)
{
	DirectInsert d;
	int64	   *ids = NULL;
	PointMaker	pm;
	CommandId	cid;
	DirectSetup setup;
	int			i;

	for (i = 1;; i++)
	{
		setup = direct_begin(&d, rel, rows, n);
		if (setup == DIRECT_READY)
			break;
		direct_end(&d);
		if (setup == DIRECT_USE_COPY || i == DIRECT_ROUTINGS)
			return -1;
	}

	/* in batch order, as COPY draws them, whatever partition a row takes */
	if (d.tab.cols.identity != 0)
	{
		ids = palloc(sizeof(int64) * n);
		for (i = 0; i < n; i++)
			ids[i] = nextval_internal(d.tab.identity_seq, false);
	}
	point_maker_init(&pm);
	cid = GetCurrentCommandId(true);
	for (i = 0; i < d.ntargets; i++)
		insert_target(d.estate, &d.targets[i], rows, ids, &pm, cid);
	direct_end(&d);
	if (d.tab.encounters)
		add_encounters(rows, ids, n);
	return n;
}
