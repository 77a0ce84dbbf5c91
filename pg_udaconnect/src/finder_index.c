/*
 * finder_index.c — opens the relations udaconnect.find_connections() reads
 * and verifies, before every use, that they are what finder.c assumes.
 *
 * finder.c reads location_person_time_idx and location_cell_time_idx by
 * column position, straight out of the index tuples (finder_int.h), walks
 * the cell index's btree leaves itself assuming ascending default ordering,
 * and reads the heap columns as NOT NULL values of fixed types.  An operator
 * can recreate an index of the same name with another layout, leave an
 * invalid one behind (a failed CREATE INDEX CONCURRENTLY), or change a
 * column's type: reading such an index would return wrong rows or read past
 * the index tuple.  So each call checks, from the relcache entries it opens
 * anyway (rd_index, rd_indextuple, rd_indcollation, rd_indoption, the tuple
 * descriptors), that each index is a live, ready and valid btree on the
 * right table, with no predicate and no expressions, with exactly the
 * expected key and INCLUDE columns in order, default operator classes,
 * no collation and ascending order, and that the columns have the expected
 * types and are NOT NULL; anything else is a clear error that names the
 * problem and the DDL of sql/src/10-schema.sql that recreates the index.
 *
 * On 1.5 location is partitioned (sql/src/10-schema.sql) and has no index
 * of its own: each partition has two, named after it
 * (location_p20261207_person_time_idx, ..._cell_time_idx), which
 * finder_check_part() opens for finder_parts.c and checks the same way; its
 * errors name the partition.  A partition checked once is remembered
 * (finder_memo.c) until the relcache is told it or its indexes changed:
 * a search over a season of day partitions would otherwise spend more on
 * looking up and checking their indexes than on reading them.  The
 * relations stay locked (AccessShareLock) to the end of the transaction, as
 * a query's do: no partition can be detached or dropped under a later call.
 *
 * This file must not run catalog queries on the success path (the finder
 * takes ~2 ms a call and the check must not show): only relcache fields and
 * integer comparisons; names are looked up only to word an error.  It must
 * not call finder_parts.c (which calls it).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "parser/scansup.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "finder_int.h"
#include "udc_pg.h"

/* A column the finder reads, as sql/src/10-schema.sql declares it. */
typedef struct ColumnSpec
{
	const char *name;
	Oid			type;			/* InvalidOid: PostGIS geometry */
	Oid			opclass;		/* default btree operator class */
	const char *decl;
} ColumnSpec;

enum
{
	LOC_ID, LOC_PERSON, LOC_COORD, LOC_TIME, LOC_CELL, LOC_NCOLS
};

static const ColumnSpec location_cols[LOC_NCOLS] = {
	[LOC_ID] = {"id", INT8OID, INT8_BTREE_OPS_OID, "id bigint NOT NULL"},
	[LOC_PERSON] = {"person_id", INT4OID, INT4_BTREE_OPS_OID, "person_id integer NOT NULL"},
	[LOC_COORD] = {"coordinate", InvalidOid, InvalidOid, "coordinate geometry(Point, 4326) NOT NULL"},
	[LOC_TIME] = {"creation_time", TIMESTAMPTZOID, TIMESTAMPTZ_BTREE_OPS_OID, "creation_time timestamptz NOT NULL"},
	[LOC_CELL] = {"cell", INT8OID, INT8_BTREE_OPS_OID, "cell bigint NOT NULL"},
};

static const ColumnSpec person_cols[1] = {
	{"id", INT4OID, INT4_BTREE_OPS_OID, "id integer NOT NULL"},
};

#define MAX_INDEX_COLS 5

/*
 * An index the finder reads, as sql/src/10-schema.sql creates it.  The two
 * location indexes are named after their table: location_person_time_idx
 * of the plain (1.4) table, location_p20261207_person_time_idx of a
 * partition (15-partitions.sql makes them so).
 */
typedef struct IndexSpec
{
	const char *name;			/* of the plain table's, in schema udaconnect */
	const char *suffix;			/* after a partition's name */
	const char *table;
	int			nkeys;
	int			natts;
	int			cols[MAX_INDEX_COLS];	/* ColumnSpec of each index column */
	const char *columns;		/* the columns in DDL */
	const char *create;			/* the DDL that creates it */
	const char *drop;			/* the DDL that drops it */
} IndexSpec;

/* index column positions come from finder_int.h, by which the finder reads */
static const IndexSpec person_time_spec = {
	"location_person_time_idx", "_person_time_idx", "location", 2, 3,
	{
		[PT_IDX_PERSON - 1] = LOC_PERSON,
		[PT_IDX_TIME - 1] = LOC_TIME,
		[PT_IDX_COORD - 1] = LOC_COORD,
	},
	"(person_id, creation_time) INCLUDE (coordinate)",
	"CREATE INDEX location_person_time_idx ON udaconnect.location (person_id, creation_time) INCLUDE (coordinate);",
	"DROP INDEX udaconnect.location_person_time_idx;"
};

static const IndexSpec cell_time_spec = {
	"location_cell_time_idx", "_cell_time_idx", "location", 2, 5,
	{
		[IDX_CELL - 1] = LOC_CELL,
		[IDX_TIME - 1] = LOC_TIME,
		[IDX_PERSON - 1] = LOC_PERSON,
		[IDX_ID - 1] = LOC_ID,
		[IDX_COORD - 1] = LOC_COORD,
	},
	"(cell, creation_time) INCLUDE (person_id, id, coordinate)",
	"CREATE INDEX location_cell_time_idx ON udaconnect.location (cell, creation_time) INCLUDE (person_id, id, coordinate);",
	"DROP INDEX udaconnect.location_cell_time_idx;"
};

/*
 * finder_person_exists() (finder_scan.c) probes the primary key with int4eq
 * on its first column
 */
static const IndexSpec person_pkey_spec = {
	"person_pkey", NULL, "person", 1, 1, {0}, "(id)",
	"ALTER TABLE udaconnect.person ADD CONSTRAINT person_pkey PRIMARY KEY (id);",
	"ALTER TABLE udaconnect.person DROP CONSTRAINT person_pkey;"
};

static void index_missing(const IndexSpec *spec) pg_attribute_noreturn();
static void index_bad_layout(const IndexSpec *spec, Relation irel, Relation part,
							 const char *problem) pg_attribute_noreturn();

/* "schema.name" of a relation, for an error */
static char *
qualified_name(Relation rel)
{
	return psprintf("%s.%s", get_namespace_name(RelationGetNamespace(rel)),
					RelationGetRelationName(rel));
}

/* "schema.name" of a relation, quoted where needed, for DDL in a hint */
static const char *
quoted_name(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

/*
 * How an error names an index: by its name for the indexes found by name,
 * with its partition for a partition's own index (part is not NULL).
 */
static char *
index_label(const IndexSpec *spec, Relation irel, Relation part)
{
	if (part == NULL)
		return psprintf("index \"udaconnect.%s\"", spec->name);
	return psprintf("index \"%s\" of partition \"%s\"", qualified_name(irel),
					qualified_name(part));
}

static Oid
table_relid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation udaconnect.%s does not exist", name),
				 errhint("Reinstall the extension: DROP EXTENSION pg_udaconnect; CREATE EXTENSION pg_udaconnect CASCADE.")));
	return relid;
}

/*
 * Attribute numbers of the columns in rel's (cached) tuple descriptor, after
 * checking that each exists, has the declared type and is NOT NULL: the
 * finder reads them without looking at the null flag.
 */
static void
check_columns(Relation rel, const ColumnSpec *cols, int ncols, AttrNumber *attnums)
{
	TupleDesc	td = RelationGetDescr(rel);

	for (int c = 0; c < ncols; c++)
	{
		Form_pg_attribute att = NULL;
		const char *problem = NULL;

		for (int i = 0; i < td->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(td, i);

			if (!a->attisdropped && strcmp(NameStr(a->attname), cols[c].name) == 0)
			{
				att = a;
				break;
			}
		}
		if (att == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" does not exist",
							cols[c].name, qualified_name(rel)),
					 errdetail("The connection finder reads it."),
					 errhint("The extension declares it as: %s.", cols[c].decl)));
		if (OidIsValid(cols[c].type) ? att->atttypid != cols[c].type : !udc_is_geometry_type(att->atttypid, NULL))
			problem = psprintf("Its column %s is of type %s; expected %s.", cols[c].name,
							   format_type_be(att->atttypid),
							   OidIsValid(cols[c].type) ? format_type_be(cols[c].type) : "geometry");
		else if (!att->attnotnull)
			problem = psprintf("Its column %s allows NULL; expected NOT NULL.", cols[c].name);
		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" does not have the layout the connection finder reads",
							qualified_name(rel)),
					 errdetail_internal("%s", problem),
					 errhint("The extension declares the column as: %s.", cols[c].decl)));
		attnums[c] = att->attnum;
	}
}

static void
index_missing(const IndexSpec *spec)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("index \"udaconnect.%s\" does not exist", spec->name),
			 errdetail("The connection finder reads udaconnect.%s through it.", spec->table),
			 errhint("Create it with: %s", spec->create)));
}

/*
 * The name of partition part's index: the partition's name and the suffix,
 * cut to NAMEDATALEN - 1 bytes as CREATE INDEX cuts an identifier.
 */
static char *
part_index_name(Relation part, const IndexSpec *spec)
{
	char	   *name = psprintf("%s%s", RelationGetRelationName(part), spec->suffix);

	truncate_identifier(name, strlen(name), false);
	return name;
}

/* the DDL that makes a partition's index, named after the partition */
static char *
part_index_create(const IndexSpec *spec, Relation part)
{
	return psprintf("CREATE INDEX %s ON %s %s;",
					quote_identifier(part_index_name(part, spec)),
					quoted_name(part), spec->columns);
}

/* The index has the wrong layout: say what is wrong and how to fix it. */
static void
index_bad_layout(const IndexSpec *spec, Relation irel, Relation part, const char *problem)
{
	if (part != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s does not have the layout the connection finder reads",
						index_label(spec, irel, part)),
				 errdetail_internal("%s", problem),
				 errhint("Recreate it with: DROP INDEX %s; %s",
						 quoted_name(irel), part_index_create(spec, part))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("index \"udaconnect.%s\" does not have the layout the connection finder reads",
					spec->name),
			 errdetail_internal("%s", problem),
			 errhint("Recreate it with: %s %s", spec->drop, spec->create)));
}

/*
 * Open the relation called name in schema nsp; NULL if there is none.  A
 * concurrent DROP or RENAME between the name look-up and the lock is seen
 * after locking (the lock processes invalidations), and the name is looked
 * up again.
 */
static Relation
open_named(Oid nsp, const char *name)
{
	for (int attempt = 0; attempt < 3; attempt++)
	{
		Oid			relid = get_relname_relid(name, nsp);
		Relation	rel;

		if (!OidIsValid(relid))
			return NULL;
		rel = try_relation_open(relid, AccessShareLock);
		if (rel == NULL)
			continue;
		if (RelationGetNamespace(rel) == nsp && strcmp(RelationGetRelationName(rel), name) == 0)
			return rel;
		relation_close(rel, AccessShareLock);
	}
	return NULL;
}

/* The index called spec->name in schema nsp, opened. */
static Relation
open_index(Oid nsp, const IndexSpec *spec)
{
	Relation	rel = open_named(nsp, spec->name);

	if (rel == NULL)
		index_missing(spec);
	if (rel->rd_rel->relkind != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"udaconnect.%s\" is not an index", spec->name),
				 errdetail("The connection finder reads udaconnect.%s through an index of that name.",
						   spec->table),
				 errhint("Rename or drop that relation, then create the index with: %s",
						 spec->create)));
	return rel;
}

/* The index of partition part named after it, opened, or a clear error. */
static Relation
open_part_index(Relation part, const IndexSpec *spec)
{
	char	   *name = part_index_name(part, spec);
	Relation	rel = open_named(RelationGetNamespace(part), name);

	if (rel == NULL || rel->rd_rel->relkind != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("partition \"%s\" of table \"udaconnect.location\" has no index \"%s\"",
						qualified_name(part), name),
				 errdetail("The connection finder reads each partition through its own two indexes, named after it; udaconnect.location_partition_create() makes partitions with them."),
				 errhint("Create it with: %s", part_index_create(spec, part))));
	return rel;
}

/* "a, b, c": the names of index columns [from, to), for an error */
static char *
index_columns(Relation irel, Relation table, int from, int to)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = from; i < to; i++)
	{
		AttrNumber	k = irel->rd_index->indkey.values[i];

		if (i > from)
			appendStringInfoString(&s, ", ");
		if (k > 0)
			appendStringInfoString(&s, quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(table), k - 1)->attname)));
		else
			appendStringInfoString(&s, "an expression");
	}
	return s.data;
}

/* "a, b, c": the expected names of index columns [from, to) */
static char *
spec_columns(const IndexSpec *spec, const ColumnSpec *cols, int from, int to)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = from; i < to; i++)
		appendStringInfo(&s, "%s%s", i > from ? ", " : "", cols[spec->cols[i]].name);
	return s.data;
}

static bool
same_columns(Relation irel, const IndexSpec *spec, const AttrNumber *attnums, int from, int to)
{
	for (int i = from; i < to; i++)
		if (irel->rd_index->indkey.values[i] != attnums[spec->cols[i]])
			return false;
	return true;
}

/* Key and INCLUDE columns, in order, as the spec has them. */
static void
check_index_columns(Relation irel, Relation table, Relation part, const IndexSpec *spec,
					const ColumnSpec *cols, const AttrNumber *attnums)
{
	Form_pg_index ind = irel->rd_index;

	if (ind->indnkeyatts != spec->nkeys || !same_columns(irel, spec, attnums, 0, spec->nkeys))
		index_bad_layout(spec, irel, part,
						 psprintf("Its key columns are (%s); expected (%s).",
								  index_columns(irel, table, 0, ind->indnkeyatts),
								  spec_columns(spec, cols, 0, spec->nkeys)));
	if (ind->indnatts != spec->natts ||
		!same_columns(irel, spec, attnums, spec->nkeys, spec->natts))
	{
		const char *want = "none";

		if (spec->natts > spec->nkeys)
			want = psprintf("(%s)", spec_columns(spec, cols, spec->nkeys, spec->natts));

		if (ind->indnatts == ind->indnkeyatts)
			index_bad_layout(spec, irel, part,
							 psprintf("It has no INCLUDE columns; expected %s.", want));
		index_bad_layout(spec, irel, part,
						 psprintf("Its INCLUDE columns are (%s); expected %s.",
								  index_columns(irel, table, ind->indnkeyatts, ind->indnatts),
								  want));
	}
}

/* "name" of an operator class, for an error */
static char *
opclass_name(Oid opclass)
{
	HeapTuple	tup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclass));
	char	   *name;

	if (!HeapTupleIsValid(tup))
		return psprintf("%u", opclass);
	name = pstrdup(NameStr(((Form_pg_opclass) GETSTRUCT(tup))->opcname));
	ReleaseSysCache(tup);
	return name;
}

/* Default operator class, no collation, ASC NULLS LAST for each key column. */
static void
check_index_ordering(Relation irel, Relation part, const IndexSpec *spec,
					 const ColumnSpec *cols)
{
	bool		isnull;
	oidvector  *indclass = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, irel->rd_indextuple,
																		  Anum_pg_index_indclass, &isnull));

	Assert(!isnull);
	for (int i = 0; i < spec->nkeys; i++)
	{
		const ColumnSpec *col = &cols[spec->cols[i]];

		if (indclass->values[i] != col->opclass)
			index_bad_layout(spec, irel, part,
							 psprintf("Its column %s uses operator class %s; expected the default %s.",
									  col->name, opclass_name(indclass->values[i]),
									  opclass_name(col->opclass)));
		if (OidIsValid(irel->rd_indcollation[i]))
			index_bad_layout(spec, irel, part,
							 psprintf("Its column %s uses collation %s; expected none.",
									  col->name, get_collation_name(irel->rd_indcollation[i])));
		if (irel->rd_indoption[i] != 0)
			index_bad_layout(spec, irel, part,
							 psprintf("Its column %s is sorted %s NULLS %s; expected ASC NULLS LAST.",
									  col->name,
									  (irel->rd_indoption[i] & INDOPTION_DESC) ? "DESC" : "ASC",
									  (irel->rd_indoption[i] & INDOPTION_NULLS_FIRST) ? "FIRST" : "LAST"));
	}
}

/*
 * An index that is not valid: say why it may be so and what fixes it.  Only
 * CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY leave an index of
 * that name invalid (REINDEX CONCURRENTLY leaves its invalid copy under
 * another name); REINDEX would not repair a failed CREATE UNIQUE INDEX, so
 * the hint recreates it.
 */
static void
index_not_valid(const IndexSpec *spec, Relation irel, Relation part)
{
	if (part != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not valid", index_label(spec, irel, part)),
				 errdetail("It is being created or dropped concurrently, or a CREATE INDEX CONCURRENTLY of it failed."),
				 errhint("If no CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY of it is running, recreate it with: DROP INDEX %s; %s",
						 quoted_name(irel), part_index_create(spec, part))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("index \"udaconnect.%s\" is not valid", spec->name),
			 errdetail("It is being created or dropped concurrently, or a CREATE INDEX CONCURRENTLY of it failed."),
			 errhint("If no CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY of it is running, recreate it with: %s %s",
					 spec->drop, spec->create)));
}

/* What CREATE and DROP INDEX CONCURRENTLY move: may the index be read? */
static bool
index_usable(Form_pg_index ind)
{
	return ind->indislive && ind->indisready && ind->indisvalid;
}

/*
 * Verify an open index against its spec: a live, ready and valid btree on
 * `table`, without predicate or expressions, with the spec's columns, and
 * usable by this transaction's snapshots.  part is the partition the index
 * belongs to (then table), NULL for the indexes found by name.
 */
static void
check_index(Relation irel, Relation table, Relation part, const IndexSpec *spec,
			const ColumnSpec *cols, const AttrNumber *attnums)
{
	Form_pg_index ind = irel->rd_index;

	if (irel->rd_rel->relam != BTREE_AM_OID)
		index_bad_layout(spec, irel, part,
						 psprintf("It uses access method %s; expected btree.",
								  get_am_name(irel->rd_rel->relam)));
	if (ind->indrelid != RelationGetRelid(table))
		index_bad_layout(spec, irel, part,
						 psprintf("It is an index of table %s.%s; expected %s.",
								  get_namespace_name(get_rel_namespace(ind->indrelid)),
								  get_rel_name(ind->indrelid), qualified_name(table)));
	if (!index_usable(ind))
		index_not_valid(spec, irel, part);
	if (!heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, NULL))
		index_bad_layout(spec, irel, part,
						 "It is a partial index (it has a WHERE clause); expected an index of every row.");
	if (!heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, NULL))
		index_bad_layout(spec, irel, part,
						 psprintf("Its key columns are (%s); expected (%s).",
								  index_columns(irel, table, 0, ind->indnkeyatts),
								  spec_columns(spec, cols, 0, spec->nkeys)));
	check_index_columns(irel, table, part, spec, cols, attnums);
	check_index_ordering(irel, part, spec, cols);

	/*
	 * An index built over broken HOT chains may lack entries for rows that
	 * older snapshots still see: as the planner does, use it only in
	 * transactions whose snapshots are newer than the index.  This passes by
	 * itself once those transactions end, hence a retryable SQLSTATE.
	 */
	if (ind->indcheckxmin &&
		!TransactionIdPrecedes(HeapTupleHeaderGetXmin(irel->rd_indextuple->t_data),
							   TransactionXmin))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("%s is too new for this transaction", index_label(spec, irel, part)),
				 errdetail("It was built while older transactions could still see rows it does not index."),
				 errhint("Retry in a new transaction.")));
}

void
finder_open_rels(FinderRels *r)
{
	Oid			nsp = get_namespace_oid("udaconnect", false);
	AttrNumber	loc_att[LOC_NCOLS];
	AttrNumber	person_att[1];

	r->person = table_open(table_relid(nsp, "person"), AccessShareLock);
	check_columns(r->person, person_cols, 1, person_att);
	r->person_pkey = open_index(nsp, &person_pkey_spec);
	check_index(r->person_pkey, r->person, NULL, &person_pkey_spec, person_cols, person_att);

	r->location = table_open(table_relid(nsp, "location"), AccessShareLock);
	r->partitioned = r->location->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	check_columns(r->location, location_cols, LOC_NCOLS, loc_att);
	r->loc_person_time = NULL;
	r->loc_cell_time = NULL;
	/* a partitioned location has no index: each partition has its own */
	if (!r->partitioned)
	{
		r->loc_person_time = open_index(nsp, &person_time_spec);
		check_index(r->loc_person_time, r->location, NULL, &person_time_spec, location_cols, loc_att);
		r->loc_cell_time = open_index(nsp, &cell_time_spec);
		check_index(r->loc_cell_time, r->location, NULL, &cell_time_spec, location_cols, loc_att);
	}

	r->att_id = loc_att[LOC_ID];
	r->att_person = loc_att[LOC_PERSON];
	r->att_coord = loc_att[LOC_COORD];
	r->att_time = loc_att[LOC_TIME];
	r->nparts = 0;
	r->parts = NULL;
}

/*
 * Whether an index checked by check_index() may be remembered, and a
 * remembered one used: what the relcache may have changed since without
 * the memo hearing of it in this transaction are the state flags; an index
 * with indcheckxmin is checked per call (which transactions may use it).
 */
static bool
usable_as_checked(Relation irel)
{
	return irel->rd_rel->relkind == RELKIND_INDEX && index_usable(irel->rd_index) &&
		!irel->rd_index->indcheckxmin;
}

/*
 * A partition checked before (finder_memo.c): its two indexes opened by the
 * OIDs remembered, if neither they nor the partition changed since, which
 * opening them (taking their locks) would have told the memo.
 */
static bool
open_remembered(FinderPart *p)
{
	FinderPartMemo m;
	uint64		gen = finder_memo_generation();
	Relation	pt;
	Relation	ct = NULL;

	if (!finder_memo_get(RelationGetRelid(p->heap), &m))
		return false;
	pt = try_relation_open(m.person_time, AccessShareLock);
	if (pt != NULL)
		ct = try_relation_open(m.cell_time, AccessShareLock);
	if (pt == NULL || ct == NULL || finder_memo_generation() != gen ||
		!usable_as_checked(pt) || !usable_as_checked(ct))
	{
		/* the locks stay, as those of any relation the call opened */
		if (ct != NULL)
			relation_close(ct, NoLock);
		if (pt != NULL)
			relation_close(pt, NoLock);
		return false;
	}
	p->person_time = pt;
	p->cell_time = ct;
	p->att_id = m.att_id;
	p->att_person = m.att_person;
	p->att_coord = m.att_coord;
	p->att_time = m.att_time;
	return true;
}

/*
 * A partition's columns, and its own two indexes opened and checked; once
 * checked, remembered until either changes.  An index with indcheckxmin is
 * not remembered: whether this transaction may use it is checked per call.
 */
void
finder_check_part(FinderPart *p)
{
	AttrNumber	att[LOC_NCOLS];
	FinderPartMemo m;
	uint64		gen;

	if (open_remembered(p))
		return;
	/* the heap is locked: what its own invalidations said is in its relcache */
	gen = finder_memo_generation();
	check_columns(p->heap, location_cols, LOC_NCOLS, att);
	p->person_time = open_part_index(p->heap, &person_time_spec);
	check_index(p->person_time, p->heap, p->heap, &person_time_spec, location_cols, att);
	p->cell_time = open_part_index(p->heap, &cell_time_spec);
	check_index(p->cell_time, p->heap, p->heap, &cell_time_spec, location_cols, att);
	p->att_id = att[LOC_ID];
	p->att_person = att[LOC_PERSON];
	p->att_coord = att[LOC_COORD];
	p->att_time = att[LOC_TIME];
	if (!usable_as_checked(p->person_time) || !usable_as_checked(p->cell_time) ||
		finder_memo_generation() != gen)
		return;
	m.part = RelationGetRelid(p->heap);
	m.person_time = RelationGetRelid(p->person_time);
	m.cell_time = RelationGetRelid(p->cell_time);
	m.att_id = p->att_id;
	m.att_person = p->att_person;
	m.att_coord = p->att_coord;
	m.att_time = p->att_time;
	finder_memo_put(&m);
}

/*
 * Closed without releasing the locks: they are held to the end of the
 * transaction, as a query holds those of the relations it read.
 */
void
finder_close_rels(FinderRels *r)
{
	if (r->loc_cell_time)
		index_close(r->loc_cell_time, NoLock);
	if (r->loc_person_time)
		index_close(r->loc_person_time, NoLock);
	table_close(r->location, NoLock);
	index_close(r->person_pkey, NoLock);
	table_close(r->person, NoLock);
}
