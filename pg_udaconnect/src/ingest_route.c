/*
 * ingest_route.c — the partition of a range-partitioned udaconnect.location
 * that each row of a batch goes into, for the direct insert path
 * (ingest_direct.c): the batch's rows grouped by leaf partition, decided
 * from the relcache's partition descriptor and bounds exactly as the
 * executor's tuple routing decides it for COPY (ExecFindPartition): the
 * partition whose range covers the row's creation_time, else the DEFAULT
 * partition.
 *
 * It must not open, lock or judge the partitions (ingest_direct.c does),
 * nor insert anything.  The one error it raises is tuple routing's own for
 * a row that no partition takes (none covers it and there is no DEFAULT):
 * same SQLSTATE, message and detail, so that the batch fails as under COPY
 * and ingest_batch.c rejects just those rows, never losing the others.
 * Per row it costs one binary search of the bounds.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/fmgrprotos.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "ingest_int.h"

/*
 * The index in pd of the partition that takes time t, or -1 (as
 * get_partition_for_tuple() for a range partitioning on one column).
 */
static int
find_partition(PartitionKey key, PartitionDesc pd, TimestampTz t)
{
	PartitionBoundInfo bi = pd->boundinfo;
	Datum		v = TimestampTzGetDatum(t);
	bool		equal;
	int			offset;
	int			part;

	if (pd->nparts == 0)
		return -1;

	/* the bound at offset is <= t: the next one closes t's partition */
	offset = partition_range_datum_bsearch(key->partsupfunc, key->partcollation, bi, 1, &v, &equal);
	part = bi->indexes[offset + 1];
	return part >= 0 ? part : bi->default_index;
}

static void
no_partition_error(Relation rel, AttrNumber att, TimestampTz t)
{
	char	   *value = DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(t)));

	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("no partition of relation \"%s\" found for row",
					RelationGetRelationName(rel)),
			 errdetail("Partition key of the failing row contains (%s) = (%s).",
					   NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname), value),
			 errtable(rel)));
}

/*
 * Group rows[0..n) by the leaf partition of rel (described by pd) that
 * takes them; att is the creation_time column.  Returns false, having
 * raised nothing, for a partitioning it does not route: other than by range
 * on creation_time alone, or a row whose partition is itself partitioned.
 * Raises tuple routing's error for a row no partition takes.
 */
bool
udc_ingest_route(Relation rel, PartitionDesc pd, AttrNumber att,
				 const IngestRow *rows, int n, RoutedRows *out)
{
	PartitionKey key = RelationGetPartitionKey(rel);
	int		   *part;
	int		   *first;			/* per partition of pd: its first slot in
								 * out->rows, -1 if it takes no row */
	int			i;

	if (key == NULL || key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 ||
		key->partattrs[0] != att || key->parttypid[0] != TIMESTAMPTZOID)
		return false;

	part = palloc(sizeof(int) * n);
	first = palloc(sizeof(int) * (pd->nparts + 1));
	for (i = 0; i < pd->nparts; i++)
		first[i] = 0;
	for (i = 0; i < n; i++)
	{
		part[i] = find_partition(key, pd, rows[i].creation_time);
		if (part[i] < 0)
			no_partition_error(rel, att, rows[i].creation_time);
		if (!pd->is_leaf[part[i]])
			return false;
		first[part[i]]++;
	}

	/* a counting sort: partitions in bound order, rows in batch order */
	out->ngroups = 0;
	out->oids = palloc(sizeof(Oid) * Min(n, pd->nparts));
	out->start = palloc(sizeof(int) * (Min(n, pd->nparts) + 1));
	out->rows = palloc(sizeof(int) * n);
	out->start[0] = 0;
	for (i = 0; i < pd->nparts; i++)
	{
		int			count = first[i];

		if (count == 0)
		{
			first[i] = -1;
			continue;
		}
		first[i] = out->start[out->ngroups];
		out->oids[out->ngroups] = pd->oids[i];
		out->start[out->ngroups + 1] = first[i] + count;
		out->ngroups++;
	}
	for (i = 0; i < n; i++)
		out->rows[first[part[i]]++] = i;
	pfree(part);
	pfree(first);
	return true;
}
