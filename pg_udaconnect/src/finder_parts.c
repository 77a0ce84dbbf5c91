/*
 * finder_parts.c — the partitions of a time span: which partitions of
 * udaconnect.location the connection finder reads for the creation times it
 * searches, each opened with its own two indexes, named after it, and
 * verified (finder_check_part(), finder_index.c).
 *
 * On 1.5 location is range-partitioned on creation_time (a day per partition
 * by default, and location_default for what no partition covers:
 * sql/src/10-schema.sql).  The bounds come from the relcache's partition
 * descriptor, without a query.  A partition whose range does not overlap the
 * span is neither opened nor locked, as the planner prunes it; one whose
 * heap is empty is locked but not read (a SERIALIZABLE transaction still
 * gets its relation-level predicate lock; one that had rows when it was
 * last checked, finder_memo.c, is read without asking for its size); the
 * DEFAULT partition is read last, unless the span is covered by other
 * partitions (it can then hold no row of the span).  A table partitioned
 * some other way (not by range on creation_time alone) has every
 * partition read.  A plain location table
 * (the 1.4 layout) is one partition with an unbounded range, read through the
 * indexes finder_open_rels() found by name, exactly as before partitioning.
 *
 * This file must not read index pages or rows (finder_scan.c does) nor
 * judge an index's layout (finder_index.c does); it calls only
 * finder_index.c and finder_memo.c.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "nodes/parsenodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "finder_int.h"

static char *
qualified_relid(Oid relid)
{
	return psprintf("%s.%s", get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

/*
 * Open partition relid, whose rows have a creation_time in [lo, hi], with
 * its two indexes, into the next of r->parts; an empty heap is only locked.
 */
static void
open_part(FinderRels *r, Oid relid, bool leaf, TimestampTz lo, TimestampTz hi)
{
	FinderPart *p = &r->parts[r->nparts];
	Relation	heap;

	if (!leaf)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" of table \"udaconnect.location\" is itself partitioned",
						qualified_relid(relid)),
				 errdetail("The connection finder reads one level of partitions."),
				 errhint("Attach plain tables as the partitions of udaconnect.location.")));
	heap = table_open(relid, AccessShareLock);
	if (heap->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" of table \"udaconnect.location\" is not a plain table",
						qualified_relid(relid)),
				 errdetail("The connection finder reads each partition's rows and indexes directly."),
				 errhint("Attach plain tables as the partitions of udaconnect.location.")));
	/*
	 * A partition checked before had rows then (finder_memo.c): its indexes
	 * are opened without asking the kernel for the heap's size (a system
	 * call per partition and search).  Should it have been emptied since, its
	 * index scans find nothing, and take the SERIALIZABLE predicate locks.
	 */
	if (!finder_memo_get(relid, NULL) && RelationGetNumberOfBlocks(heap) == 0)
	{
		/* as a scan of the empty heap would, for SERIALIZABLE */
		PredicateLockRelation(heap, GetActiveSnapshot());
		table_close(heap, NoLock);
		return;
	}
	memset(p, 0, sizeof(*p));
	p->heap = heap;
	p->lo = lo;
	p->hi = hi;
	p->owned = true;
	p->leaf = InvalidBuffer;
	p->vmbuf = InvalidBuffer;
	r->nparts++;				/* closed by finder_parts_close() from here on */
	finder_check_part(p);
}

/*
 * Is the table range-partitioned on creation_time alone, compared as
 * timestamptz?  Only then do the partition bounds say which creation times
 * a partition holds.
 */
static bool
by_creation_time(const FinderRels *r)
{
	PartitionKey key = RelationGetPartitionKey(r->location);

	return key->strategy == PARTITION_STRATEGY_RANGE && key->partnatts == 1 &&
		key->partattrs[0] == r->att_time &&
		key->partsupfunc[0].fn_oid == F_TIMESTAMPTZ_CMP &&
		!OidIsValid(key->partcollation[0]);
}

/* A range bound's value; MINVALUE and MAXVALUE lie beyond every timestamp. */
static bool
bound_value(PartitionBoundInfo bi, int i, TimestampTz *v)
{
	switch (bi->kind[i][0])
	{
		case PARTITION_RANGE_DATUM_MINVALUE:
		case PARTITION_RANGE_DATUM_MAXVALUE:
			return false;
		default:
			*v = DatumGetTimestampTz(bi->datums[i][0]);
			return true;
	}
}

/*
 * The inclusive range [*lo, *hi] of creation times of the partition whose
 * upper bound is bi->datums[i] (its lower bound is bi->datums[i - 1]);
 * false when it holds no timestamp.
 */
static bool
range_of(PartitionBoundInfo bi, int i, TimestampTz *lo, TimestampTz *hi)
{
	TimestampTz v;

	*lo = PG_INT64_MIN;
	*hi = PG_INT64_MAX;
	if (i > 0 && bound_value(bi, i - 1, &v))
		*lo = v;
	if (bound_value(bi, i, &v))
	{
		if (v == PG_INT64_MIN)
			return false;
		*hi = v - 1;
	}
	else if (bi->kind[i][0] == PARTITION_RANGE_DATUM_MINVALUE)
		return false;
	return *lo <= *hi;
}

/*
 * The range partitions overlapping [lo, hi], opened in time order; returns
 * whether they cover all of [lo, hi] (then DEFAULT holds none of its rows).
 */
static bool
open_ranges(FinderRels *r, PartitionDesc pd, TimestampTz lo, TimestampTz hi)
{
	PartitionBoundInfo bi = pd->boundinfo;
	TimestampTz need = lo;		/* earliest time of the span not yet covered */
	bool		gap = false,
				reached = false;

	for (int i = 0; bi != NULL && i < bi->ndatums; i++)
	{
		int			k = bi->indexes[i];
		TimestampTz plo,
					phi;

		if (k < 0 || !range_of(bi, i, &plo, &phi) || phi < lo || plo > hi)
			continue;
		if (!reached)
		{
			gap |= plo > need;
			reached = phi >= hi;
			if (!reached)
				need = phi + 1;
		}
		open_part(r, pd->oids[k], pd->is_leaf[k], plo, phi);
	}
	return reached && !gap;
}

void
finder_parts_open(FinderRels *r, TimestampTz lo, TimestampTz hi)
{
	PartitionDesc pd;
	int			def;
	bool		covered = false;

	if (!r->partitioned)
	{
		FinderPart *p = palloc0(sizeof(FinderPart));

		p->heap = r->location;
		p->person_time = r->loc_person_time;
		p->cell_time = r->loc_cell_time;
		p->lo = PG_INT64_MIN;
		p->hi = PG_INT64_MAX;
		p->att_id = r->att_id;
		p->att_person = r->att_person;
		p->att_coord = r->att_coord;
		p->att_time = r->att_time;
		p->leaf = InvalidBuffer;
		p->vmbuf = InvalidBuffer;
		r->parts = p;
		r->nparts = 1;
		return;
	}

	/* as a query does: without partitions being detached concurrently */
	pd = RelationGetPartitionDesc(r->location, true);
	r->parts = palloc(sizeof(FinderPart) * Max(pd->nparts, 1));
	r->nparts = 0;
	def = pd->boundinfo ? pd->boundinfo->default_index : -1;
	if (by_creation_time(r))
		covered = open_ranges(r, pd, lo, hi);
	else
	{
		for (int k = 0; k < pd->nparts; k++)
			if (k != def)
				open_part(r, pd->oids[k], pd->is_leaf[k], PG_INT64_MIN, PG_INT64_MAX);
	}
	if (def >= 0 && !covered)
		open_part(r, pd->oids[def], pd->is_leaf[def], PG_INT64_MIN, PG_INT64_MAX);
}

/* Close what finder_parts_open() opened; the locks stay to the end of the transaction. */
void
finder_parts_close(FinderRels *r)
{
	for (int i = 0; i < r->nparts; i++)
	{
		FinderPart *p = &r->parts[i];

		if (!p->owned)
			continue;
		if (p->cell_time)
			index_close(p->cell_time, NoLock);
		if (p->person_time)
			index_close(p->person_time, NoLock);
		table_close(p->heap, NoLock);
	}
	pfree(r->parts);
	r->parts = NULL;
	r->nparts = 0;
}
