/*
 * finder.c — udaconnect.find_connections(): who crossed paths with a person.
 * The SQL entry point: it checks the arguments, runs the steps below in
 * order and returns the rows.  It must not read index pages or test
 * candidates itself (finder_scan.c and the inline test of finder_int.h do),
 * so that what the finder does can be read here in one screen.
 *
 * Algorithm (see docs/design.md):
 *  0. finder_open_rels() (finder_index.c) opens the tables and indexes and
 *     refuses any index whose layout differs from the column positions the
 *     reads below use (finder_int.h); finder_parts_open() (finder_parts.c)
 *     opens the partitions of location whose rows may lie in [t0, t1), each
 *     with its own indexes, verified the same way (a plain table is one
 *     partition).  Every read below is of those partitions only.
 *  1. Read the person's own locations in [t0, t1) through the btree
 *     (person_id, creation_time) (finder_scan.c).
 *  2. For each of them, core/geodesy.c gives the grid cells (as ranges of
 *     fine cell keys) that can hold a point within `meters`; group the
 *     (cell range, own location) pairs by cell range and merge the time
 *     intervals [t - window, t + window] of each group (finder_match.c).
 *  3. Scan the btree (cell, creation_time) once per (cell range, merged
 *     interval): with single-cell ranges both columns bound the scan, so only
 *     candidates that are close in space and time are ever read
 *     (finder_scan.c).
 *  4. Keep a candidate of another person if the exact geodesic distance
 *     (Vincenty on WGS84) to some own location within the window is at most
 *     `meters`, remembering the smallest such distance (consider() in
 *     finder_int.h).  Each location is reported once (a hash on its id
 *     merges the rare overlapping ranges).
 *
 * Memory: the person's own locations, their cell ranges, and the output.
 * Nothing depends on the size of the table.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/timestamp.h"

#include "finder_int.h"
#include "geodesy.h"

/* Midnight UTC of a date; -infinity and infinity where it has none. */
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

/*
 * time_window as microseconds in st->window.  Months have no fixed length,
 * so they are refused rather than guessed; a window too long to count in
 * microseconds is capped (it covers any stored time anyway), at a quarter of
 * the range so that t +- window cannot overflow twice.
 */
static void
read_window(Interval *w, FinderState *st)
{
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
	st->has_window = true;
	st->window = Min(us, PG_INT64_MAX / 4);
}

/*
 * The arguments (person_id, start_date, end_date, meters, time_window) into
 * st, checked in that order, before anything is read: every bad one is an
 * error naming it.  The dates become [t0, t1) in UTC, whatever the session's
 * TimeZone.
 */
static void
read_args(FunctionCallInfo fcinfo, FinderState *st)
{
	DateADT		start_date,
				end_date;

	if (PG_ARGISNULL(0))
		null_arg_error("person_id");
	if (PG_ARGISNULL(1))
		null_arg_error("start_date");
	if (PG_ARGISNULL(2))
		null_arg_error("end_date");
	if (PG_ARGISNULL(3))
		null_arg_error("meters");
	st->pid = PG_GETARG_INT32(0);
	start_date = PG_GETARG_DATEADT(1);
	end_date = PG_GETARG_DATEADT(2);
	st->meters = PG_GETARG_FLOAT8(3);

	if (start_date > end_date)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_date must not be after end_date"),
				 errdetail("start_date is %s, end_date is %s.",
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(start_date))),
						   DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(end_date))))));
	if (!(st->meters > 0.0) || !isfinite(st->meters) || st->meters > UDC_MAX_METERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("meters must be greater than 0 and at most %g, not %s",
						UDC_MAX_METERS, float8out_internal(st->meters)),
				 errdetail("meters is the largest geodesic distance, in metres, between two locations that counts as a connection.")));
	if (!PG_ARGISNULL(4))
		read_window(PG_GETARG_INTERVAL_P(4), st);

	st->t0 = utc_midnight(start_date);
	st->t1 = DATE_IS_NOEND(end_date) ? DT_NOEND : utc_midnight(end_date + 1);
}

/*
 * Scan each group (the probes of one cell range) over its time segments.
 * The merge gap is taken once per group, from the statistics of the scans
 * before it.  The encounter matcher (encounter_match.c) runs the same scans.
 */
void
finder_scan_groups(FinderState *st, const Probe *probes, int nprobes)
{
	for (int g = 0; g < nprobes;)
	{
		const Probe *group = &probes[g];
		int			ng = 1;
		int64		gap;
		int			k = 0;
		TimestampTz a,
					b;

		while (g + ng < nprobes && probes[g + ng].lo == group->lo &&
			   probes[g + ng].hi == group->hi)
			ng++;
		gap = st->has_window ? finder_merge_gap(st) : 0;
		while (finder_next_segment(st, group, ng, gap, &k, &a, &b))
			finder_scan_segment(st, group, ng, a, b);
		g += ng;
	}
}

/* The hits, in their final order, into the function's tuplestore. */
static void
return_rows(ReturnSetInfo *rsinfo, const FinderState *st)
{
	for (int i = 0; i < st->nhits; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		const Hit  *h = &st->hits[i];

		values[0] = Int64GetDatum(h->id);
		values[1] = Int32GetDatum(h->person_id);
		values[2] = Float8GetDatum(h->lat);
		values[3] = Float8GetDatum(h->lon);
		values[4] = TimestampTzGetDatum(h->t);
		values[5] = Float8GetDatum(h->dist);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

PG_FUNCTION_INFO_V1(udc_find_connections);
Datum
udc_find_connections(PG_FUNCTION_ARGS)
{
	FinderRels	rels;
	FinderState st = {0};
	int			nown;
	Probe	   *probes;
	int			nprobes;

	read_args(fcinfo, &st);
	InitMaterializedSRF(fcinfo, 0);

	finder_open_rels(&rels);
	if (!finder_person_exists(&rels, st.pid))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("person %d does not exist", st.pid)));
	st.rels = &rels;
	st.max_dlat = udc_max_dlat(st.meters);
	/* every location read, own or candidate, lies in [t0, t1) */
	finder_parts_open(&rels, st.t0, st.t1 > st.t0 ? st.t1 - 1 : st.t0);
	st.own = finder_read_own_points(&rels, st.pid, st.t0, st.t1, &nown);
	probes = finder_make_probes(&st, nown, &nprobes);

	finder_hits_begin(&st);
	finder_scan_begin(&st);
	finder_scan_groups(&st, probes, nprobes);
	finder_scan_end(&st);
	finder_parts_close(&rels);
	finder_close_rels(&rels);

	elog(DEBUG1, "find_connections(%d): %d own points, %d probes, %ld index scans (%ld started on the previous leaf), %ld entries, %ld exact distances, %d hits",
		 st.pid, nown, nprobes, st.nscans, st.nreused, st.nentries, st.ndist, st.nhits);
	finder_sort_hits(&st);
	return_rows((ReturnSetInfo *) fcinfo->resultinfo, &st);
	return (Datum) 0;
}
