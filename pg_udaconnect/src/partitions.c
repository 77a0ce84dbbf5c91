/*
 * partitions.c — the time partitions of udaconnect.location as C sees
 * them: the settings udaconnect.location_partition_width (how much time one
 * partition holds) and udaconnect.location_partitions_ahead (how many
 * partitions past the current one the maintenance worker keeps ready), and
 * two SQL functions that read them and the catalog:
 * location_partition_width() and location_partitions(), the partitions with
 * their bounds, read from pg_class.relpartbound rather than parsed out of
 * pg_get_expr()'s text, whose form depends on the session's DateStyle.
 *
 * It must not create, move or drop anything: 15-partitions.sql is the one
 * place that knows how a partition is made, and retention_drop_partitions()
 * (40-privacy.sql) the one that knows how one goes.  The finder and the
 * ingest find their partitions in the relcache themselves (finder_*.c,
 * ingest_*.c): this file is the SQL face, not a cache.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "partitions.h"
#include "retention.h"

char	   *udc_location_partition_width = NULL;
int			udc_location_partitions_ahead = 3;

/* the width as an interval, or false with a GUC detail and hint */
static bool
width_from_text(const char *s, Interval *iv)
{
	if (s == NULL || !udc_parse_interval(s, iv))
	{
		GUC_check_errdetail("\"%s\" is not an interval.", s ? s : "");
		GUC_check_errhint("Give an interval such as '1 day' or '6 hours'.");
		return false;
	}

	/*
	 * date_bin() aligns partitions to the width from 2000-01-01 UTC: it
	 * takes no months, whose length varies.  Under an hour a day would need
	 * more than 24 partitions, each opened by every search of that day;
	 * past a year one partition would outlive any retention.
	 */
	if (iv->month != 0)
	{
		GUC_check_errdetail("The width \"%s\" has months or years, whose length varies.", s);
		GUC_check_errhint("Give it in days or hours, such as '7 days' for a week.");
		return false;
	}
	if ((double) iv->time + (double) iv->day * USECS_PER_DAY < (double) USECS_PER_HOUR ||
		(double) iv->time + (double) iv->day * USECS_PER_DAY > 366.0 * USECS_PER_DAY)
	{
		GUC_check_errdetail("The width \"%s\" is outside 1 hour .. 366 days.", s);
		GUC_check_errhint("The default, '1 day', suits a conference: one partition a day.");
		return false;
	}
	return true;
}

static bool
check_partition_width(char **newval, void **extra, GucSource source)
{
	Interval	iv;

	return width_from_text(*newval, &iv);
}

void
udc_partitions_init(void)
{
	DefineCustomStringVariable("udaconnect.location_partition_width",
							   "How much time one partition of udaconnect.location holds (an interval in days or hours).",
							   "Partitions are aligned to it from 2000-01-01 00:00 UTC.  A new width applies to "
							   "partitions created from then on; existing ones keep theirs.",
							   &udc_location_partition_width, "1 day", PGC_SIGHUP, 0,
							   check_partition_width, NULL, NULL);
	DefineCustomIntVariable("udaconnect.location_partitions_ahead",
							"How many partitions of udaconnect.location past the current one the maintenance worker keeps ready.",
							"Rows for times no partition covers go to location_default until the worker "
							"creates their partition and moves them there.",
							&udc_location_partitions_ahead, 3, 0, 366, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(udc_location_partition_width_sql);
Datum
udc_location_partition_width_sql(PG_FUNCTION_ARGS)
{
	Interval   *iv = palloc(sizeof(Interval));

	/* the check hook accepted it; parsing again cannot fail */
	if (!udc_parse_interval(udc_location_partition_width, iv))
		elog(ERROR, "udaconnect.location_partition_width \"%s\" is not an interval",
			 udc_location_partition_width);
	PG_RETURN_INTERVAL_P(iv);
}

/* a range bound's value: -infinity below MINVALUE, infinity above MAXVALUE */
static Datum
bound_value(List *datums)
{
	PartitionRangeDatum *d = linitial_node(PartitionRangeDatum, datums);

	if (d->kind == PARTITION_RANGE_DATUM_MINVALUE)
		return TimestampTzGetDatum(DT_NOBEGIN);
	if (d->kind == PARTITION_RANGE_DATUM_MAXVALUE)
		return TimestampTzGetDatum(DT_NOEND);
	return castNode(Const, d->value)->constvalue;
}

/* one partition's row: (partition, from_time, to_time, is_default) */
static void
partition_row(ReturnSetInfo *rsinfo, Oid part)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(part));
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Datum		d;
	bool		isnull;
	PartitionBoundSpec *spec;

	if (!HeapTupleIsValid(tup))
		return;					/* dropped since the list was read */
	d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relpartbound, &isnull);
	if (isnull)
	{
		ReleaseSysCache(tup);
		return;
	}
	spec = castNode(PartitionBoundSpec, stringToNode(TextDatumGetCString(d)));
	ReleaseSysCache(tup);
	values[0] = ObjectIdGetDatum(part);
	values[3] = BoolGetDatum(spec->is_default);
	if (spec->is_default)
		nulls[1] = nulls[2] = true;
	else if (spec->strategy != PARTITION_STRATEGY_RANGE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("partition \"%s\" of udaconnect.location is not a range partition",
						get_rel_name(part)),
				 errdetail("udaconnect.location is partitioned by range of creation_time.")));
	else
	{
		values[1] = bound_value(spec->lowerdatums);
		values[2] = bound_value(spec->upperdatums);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * udaconnect.location_partitions(): the partitions of udaconnect.location
 * with their bounds [from_time, to_time); the DEFAULT partition with NULL
 * bounds.  None when location is a plain table (a 1.4 layout).
 */
PG_FUNCTION_INFO_V1(udc_location_partitions);
Datum
udc_location_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			nsp = get_namespace_oid("udaconnect", false);
	Oid			relid = get_relname_relid("location", nsp);
	List	   *parts;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table udaconnect.location does not exist")));
	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		PG_RETURN_NULL();
	/* the lock keeps the list from changing while it is read */
	LockRelationOid(relid, AccessShareLock);
	parts = find_inheritance_children(relid, AccessShareLock);
	foreach(lc, parts)
		partition_row(rsinfo, lfirst_oid(lc));
	PG_RETURN_NULL();
}
