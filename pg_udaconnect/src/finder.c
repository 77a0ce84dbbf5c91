/*
 * finder.c — udaconnect.find_connections(): who crossed paths with a person.
 *
 * Algorithm (see docs/design.md):
 *  0. finder_open_rels() (finder_index.c) opens the tables and indexes and
 *     refuses any index whose layout differs from the column positions the
 *     reads below use (finder_int.h).
 *  1. Read the person's own locations in [t0, t1) through the btree
 *     (person_id, creation_time).
 *  2. For each of them, core/geodesy.c gives the grid cells (as ranges of
 *     fine cell keys) that can hold a point within `meters`; group the
 *     (cell range, own location) pairs by cell range and merge the time
 *     intervals [t - window, t + window] of each group.
 *  3. Scan the btree (cell, creation_time) once per (cell range, merged
 *     interval): with single-cell ranges both columns bound the scan, so only
 *     candidates that are close in space and time are ever read.
 *  4. Keep a candidate of another person if the exact geodesic distance
 *     (Vincenty on WGS84) to some own location within the window is at most
 *     `meters`, remembering the smallest such distance.  Each location is
 *     reported once (a hash on its id merges the rare overlapping ranges).
 *
 * Memory: the person's own locations, their cell ranges, and the output.
 * Nothing depends on the size of the table.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/transam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "access/itup.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "finder_int.h"
#include "geodesy.h"
#include "udc_pg.h"


static inline int
cmp_probe(const Probe *x, const Probe *y)
{
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return (x->own > y->own) - (x->own < y->own);
}

static inline int
cmp_hit(const Hit *x, const Hit *y)
{
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* sort_probes() and sort_hits(): qsort with the comparison inlined */
#define ST_SORT sort_probes
#define ST_ELEMENT_TYPE Probe
#define ST_COMPARE(a, b) cmp_probe(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

#define ST_SORT sort_hits
#define ST_ELEMENT_TYPE Hit
#define ST_COMPARE(a, b) cmp_hit(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"


static TimestampTz
sat_add(TimestampTz t, int64 d)
{
	TimestampTz r;

	if (pg_add_s64_overflow(t, d, &r))
		return d < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	return r;
}

static TimestampTz
utc_midnight(DateADT d)
{
	int			overflow = 0;
	Timestamp	ts;

	if (DATE_IS_NOBEGIN(d))
		return DT_NOBEGIN;
	if (DATE_IS_NOEND(d))
		return DT_NOEND;
	ts = date2timestamp_opt_overflow(d, &overflow);
	if (overflow < 0)
		return DT_NOBEGIN;
	if (overflow > 0)
		return DT_NOEND;
	/* a timestamp's midnight, read as UTC: same microseconds since 2000 */
	return (TimestampTz) ts;
}

static void
null_arg_error(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", name)));
}

PG_FUNCTION_INFO_V1(udc_find_connections);
Datum
udc_find_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		pid;
	DateADT		start_date,
				end_date;
	double		meters;
	TimestampTz t0,
				t1;
	FinderRels	rels;
	FinderState st = {0};
	int			nown;
	Probe	   *probes;
	int			nprobes = 0;
	udc_key_range ranges[UDC_COVER_MAX];
	HASHCTL		hctl;

	if (PG_ARGISNULL(0))
		null_arg_error("person_id");
	if (PG_ARGISNULL(1))
		null_arg_error("start_date");
	if (PG_ARGISNULL(2))
		null_arg_error("end_date");
	if (PG_ARGISNULL(3))
		null_arg_error("meters");
	pid = PG_GETARG_INT32(0);
	start_date = PG_GETARG_DATEADT(1);
	end_date = PG_GETARG_DATEADT(2);
	meters = PG_GETARG_FLOAT8(3);

	if (start_date > end_date)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_date must not be after end_date"),
				 errdetail("start_date is %s, end_date is %s.",
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(start_date))),
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(end_date))))));
	if (!(meters > 0.0) || !isfinite(meters) || meters > UDC_MAX_METERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("meters must be greater than 0 and at most %g, not %s",
						UDC_MAX_METERS, float8out_internal(meters)),
				 errdetail("meters is the largest geodesic distance, in metres, between two locations that counts as a connection.")));
	if (!PG_ARGISNULL(4))
	{
		Interval   *w = PG_GETARG_INTERVAL_P(4);
		int64		us;

		if (w->month != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time_window must not contain months or years"),
					 errhint("Express it in days, hours, minutes or seconds.")));
		if (pg_mul_s64_overflow((int64) w->day, USECS_PER_DAY, &us) ||
			pg_add_s64_overflow(us, w->time, &us))
			us = (w->day < 0) ? -1 : PG_INT64_MAX / 4;
		if (us < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time_window must not be negative"),
					 errdetail("time_window is %s.",
							   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(w))))));
		st.has_window = true;
		st.window = Min(us, PG_INT64_MAX / 4);
	}

	t0 = utc_midnight(start_date);
	t1 = DATE_IS_NOEND(end_date) ? DT_NOEND : utc_midnight(end_date + 1);

	InitMaterializedSRF(fcinfo, 0);

	finder_open_rels(&rels);
	if (!finder_person_exists(&rels, pid))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("person %d does not exist", pid)));

	st.rels = &rels;
	st.pid = pid;
	st.meters = meters;
	st.max_dlat = udc_max_dlat(meters);
	st.own = finder_read_own_points(&rels, pid, t0, t1, &nown);

	/* (cell range, own point) pairs, grouped by cell range */
	{
		Size		cap = 1024;

		probes = palloc(sizeof(Probe) * cap);
		for (int i = 0; i < nown; i++)
		{
			int			n = udc_cover(st.own[i].lat, st.own[i].lon, meters, ranges);

			CHECK_FOR_INTERRUPTS();
			if (nprobes + n > cap)
			{
				cap = Max(cap * 2, (Size) (nprobes + n));
				probes = repalloc_huge(probes, sizeof(Probe) * cap);
			}
			for (int k = 0; k < n; k++)
			{
				probes[nprobes++] = (Probe) {ranges[k].lo, ranges[k].hi, i};
				/* single cells never overlap, and merged intervals are disjoint */
				if (ranges[k].lo != ranges[k].hi)
					st.dedupe = true;
			}
		}
		sort_probes(probes, nprobes);
	}

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(int64);
	hctl.entrysize = sizeof(HitEntry);
	hctl.hcxt = CurrentMemoryContext;
	st.seen = hash_create("udaconnect finder hits", 1024, &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	st.caphits = 256;
	st.hits = palloc(sizeof(Hit) * st.caphits);
	finder_scan_begin(&st);
	for (int g = 0; g < nprobes;)
	{
		int			ng = 1;

		while (g + ng < nprobes && probes[g + ng].lo == probes[g].lo &&
			   probes[g + ng].hi == probes[g].hi)
			ng++;

		if (!st.has_window)
			finder_scan_segment(&st, &probes[g], ng, t0, t1 - 1);
		else
		{
			/* merge [t - w, t + w] of the group's points (time order) */
			TimestampTz seg_a = 0,
						seg_b = 0;
			bool		open = false;
			int64		gap = finder_merge_gap(&st);

			for (int k = 0; k < ng; k++)
			{
				TimestampTz t = st.own[probes[g + k].own].t;
				TimestampTz a = Max(t0, sat_add(t, -st.window));
				TimestampTz b = Min(t1 - 1, sat_add(t, st.window));

				if (open && a <= sat_add(seg_b, gap + 1))
				{
					if (b > seg_b)
						seg_b = b;
					continue;
				}
				if (open)
					finder_scan_segment(&st, &probes[g], ng, seg_a, seg_b);
				seg_a = a;
				seg_b = b;
				open = true;
			}
			if (open)
				finder_scan_segment(&st, &probes[g], ng, seg_a, seg_b);
		}
		g += ng;
	}
	finder_scan_end(&st);
	finder_close_rels(&rels);

	elog(DEBUG1, "find_connections(%d): %d own points, %d probes, %ld index scans (%ld started on the previous leaf), %ld entries, %ld exact distances, %d hits",
		 pid, nown, nprobes, st.nscans, st.nreused, st.nentries, st.ndist, st.nhits);
	sort_hits(st.hits, st.nhits);
	for (int i = 0; i < st.nhits; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		Hit		   *h = &st.hits[i];

		values[0] = Int64GetDatum(h->id);
		values[1] = Int32GetDatum(h->person_id);
		values[2] = Float8GetDatum(h->lat);
		values[3] = Float8GetDatum(h->lon);
		values[4] = TimestampTzGetDatum(h->t);
		values[5] = Float8GetDatum(h->dist);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
