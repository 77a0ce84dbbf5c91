/*
 * encounter_rels.c — the relations that the encounter reader
 * (encounter_read.c) and writer (encounter_write.c) use directly, below
 * SQL: the columns of udaconnect.encounter as C knows them (one list for
 * both), its two indexes with the DDL that restores them, and the checks
 * that all of them are what those files assume: the tables have
 * the columns read or written, of the expected types, and each index is a
 * live, valid btree on the table, without expressions or predicate, whose
 * leading key columns are the expected ones in ascending order.  Reading a
 * partial index, or one of another layout, would silently miss rows (the
 * writer would then create a second encounter where one exists).
 *
 * Only relcache fields are read on the success path; anything else is an
 * error that names the object and how to restore it.  This file must not
 * read or write rows.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/snapmgr.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "encounter_int.h"
#include "udc_pg.h"

const EncColumn enc_encounter_cols[ENC_NCOLS] = {
	[ENC_ID] = {"id", INT8OID},
	[ENC_A] = {"person_a", INT4OID},
	[ENC_B] = {"person_b", INT4OID},
	[ENC_START] = {"started_at", TIMESTAMPTZOID},
	[ENC_END] = {"ended_at", TIMESTAMPTZOID},
	[ENC_MATCHES] = {"matches", INT8OID},
	[ENC_MIND] = {"min_distance_m", FLOAT8OID},
	[ENC_PLACE] = {"place_id", INT4OID},
	[ENC_PLACE_IDS] = {"place_ids", INT4ARRAYOID},
	[ENC_PLACE_MATCHES] = {"place_matches", INT8ARRAYOID},
	[ENC_LAT] = {"latitude", FLOAT8OID},
	[ENC_LON] = {"longitude", FLOAT8OID},
	[ENC_CLOSEST_A] = {"closest_a", INT8OID},
	[ENC_CLOSEST_B] = {"closest_b", INT8OID},
	[ENC_VERSION] = {"version", INT8OID},
};

#define RESTORE_HINT "Restore it as sql/src/50-encounters.sql (or 45-places.sql) of the installed version creates it."

Oid
enc_relid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"udaconnect.%s\" does not exist", name),
				 errdetail("The encounter maintenance and udaconnect.encounters() use it."),
				 errhint(RESTORE_HINT)));
	return relid;
}

/*
 * Attribute numbers of cols[0..n) in rel, checking their types; with
 * `exact`, rel must have no other column (its rows are written whole).
 */
void
enc_columns(Relation rel, const EncColumn *cols, int n, bool exact, AttrNumber *att)
{
	TupleDesc	td = RelationGetDescr(rel);
	int			live = 0;

	for (int i = 0; i < td->natts; i++)
		if (!TupleDescAttr(td, i)->attisdropped)
			live++;
	for (int c = 0; c < n; c++)
	{
		att[c] = get_attnum(RelationGetRelid(rel), cols[c].name);
		if (att[c] == InvalidAttrNumber ||
			TupleDescAttr(td, att[c] - 1)->atttypid != cols[c].type)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of table \"udaconnect.%s\" is missing or not of type %s",
							cols[c].name, RelationGetRelationName(rel),
							format_type_be(cols[c].type)),
					 errhint(RESTORE_HINT)));
	}
	if (exact && live != n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"udaconnect.%s\" has %d columns, not the %d the encounter maintenance writes",
						RelationGetRelationName(rel), live, n),
				 errhint(RESTORE_HINT)));
}

/*
 * Open index `name` of heap (AccessShareLock, held to the end of the
 * transaction as the executor holds it) and check its layout: the scan
 * keys of the callers address its columns by position.
 */
Relation
enc_open_btree(Oid nsp, Relation heap, const char *name, const AttrNumber *keys,
			   int nkeys, const char *ddl)
{
	Relation	idx = index_open(enc_relid(nsp, name), AccessShareLock);
	Form_pg_index ix = idx->rd_index;
	bool		ok = idx->rd_rel->relam == BTREE_AM_OID &&
		ix->indrelid == RelationGetRelid(heap) &&
		ix->indisvalid && ix->indisready && ix->indislive &&
		ix->indnkeyatts >= nkeys &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);

	for (int k = 0; ok && k < nkeys; k++)
		ok = ix->indkey.values[k] == keys[k] && idx->rd_indoption[k] == 0;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"udaconnect.%s\" is not the one the encounters are read through", name),
				 errdetail("It must be a valid btree index without expressions or predicate whose leading columns are as the extension creates them."),
				 errhint("Recreate it: DROP INDEX udaconnect.%s; %s", name, ddl)));
	return idx;
}

/* encounter_pair_idx (person_a, person_b, started_at); att: enc_encounter_cols' */
Relation
enc_open_pair_idx(Oid nsp, Relation enc, const AttrNumber *att)
{
	AttrNumber	keys[3] = {att[ENC_A], att[ENC_B], att[ENC_START]};

	return enc_open_btree(nsp, enc, "encounter_pair_idx", keys, 3,
						  "CREATE INDEX encounter_pair_idx ON udaconnect.encounter (person_a, person_b, started_at);");
}

/* encounter_b_idx (person_b, started_at) */
Relation
enc_open_b_idx(Oid nsp, Relation enc, const AttrNumber *att)
{
	AttrNumber	keys[2] = {att[ENC_B], att[ENC_START]};

	return enc_open_btree(nsp, enc, "encounter_b_idx", keys, 2,
						  "CREATE INDEX encounter_b_idx ON udaconnect.encounter (person_b, started_at);");
}

AttrNumber
enc_clock_longest_att(Relation clock)
{
	AttrNumber	att = get_attnum(RelationGetRelid(clock), "longest_us");

	if (att == InvalidAttrNumber || TupleDescAttr(RelationGetDescr(clock), att - 1)->atttypid != INT8OID)
		return InvalidAttrNumber;
	return att;
}

int64
enc_clock_longest(Oid nsp)
{
	Relation	clock = table_open(enc_relid(nsp, "encounter_clock"), AccessShareLock);
	AttrNumber	att = enc_clock_longest_att(clock);
	int64		longest = -1;

	if (att != InvalidAttrNumber)
	{
		TupleTableSlot *slot = table_slot_create(clock, NULL);
		TableScanDesc scan = table_beginscan(clock, GetActiveSnapshot(), 0, NULL);
		bool		isnull;

		if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			Datum		d = slot_getattr(slot, att, &isnull);

			longest = isnull ? -1 : DatumGetInt64(d);
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
	}
	table_close(clock, NoLock);
	return longest;
}

void
enc_clock_raise_longest(Oid nsp, int64 span)
{
	static SPIPlanPtr plan = NULL;
	Oid			type = INT8OID;
	Datum		arg = Int64GetDatum(span);
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("UPDATE udaconnect.encounter_clock SET longest_us = "
									"greatest(longest_us, $1)", 1, &type);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	rc = udc_spi_as_owner(enc_relid(nsp, "encounter_clock"), plan, &arg, false);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "raising udaconnect.encounter_clock.longest_us failed: %s",
			 SPI_result_code_string(rc));
	SPI_finish();
}
