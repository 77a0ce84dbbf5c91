/*
 * encounter.c — the entry points of the encounter maintenance
 * (docs/encounters.md, sql/src/50-encounters.sql): the settings
 * udaconnect.encounter_distance, _window and _gap; the INSERT/COPY trigger
 * location_add_encounters() and udc_encounters_add(), which the ingest's
 * direct path calls for the rows it inserted; encounter_add_range(), which
 * encounters_rebuild() calls.
 *
 * Every call here locks encounter_clock first (encounter_lock()), then
 * finds the matches with a snapshot taken after the lock (so it sees the
 * locations of every writer that committed before it), then hands them to
 * the chaining (encounter_chain.c) and the merge with the stored encounters
 * (encounter_merge.c).  It must not decide what a match is (the finder's
 * test, encounter_match.c) nor how matches chain (enc_starts_island()).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "encounter_int.h"
#include "udc_pg.h"

/* locations per matcher call: bounds the memory of a statement's maintenance */
#define CHUNK 50000

static double udc_encounter_distance_m = 5.0;
static int	udc_encounter_window_s = 60;
static int	udc_encounter_gap_s = 300;

void
udc_encounter_init(void)
{
	DefineCustomRealVariable("udaconnect.encounter_distance",
							 "Largest geodesic distance, in metres, between two persons' locations that is a match.",
							 "Changing it applies to new locations; udaconnect.encounters_rebuild() recomputes the old ones.",
							 &udc_encounter_distance_m, 5.0, 0.01, 100.0, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.encounter_window",
							"Largest time between two persons' locations that is a match.",
							"Changing it applies to new locations; udaconnect.encounters_rebuild() recomputes the old ones.",
							&udc_encounter_window_s, 60, 0, 3600, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.encounter_gap",
							"Largest time between consecutive matches of one encounter.",
							"Changing it applies to new locations; udaconnect.encounters_rebuild() recomputes the old ones.",
							&udc_encounter_gap_s, 300, 0, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

static Interval *
seconds_interval(int s)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) s * USECS_PER_SEC;
	return iv;
}

PG_FUNCTION_INFO_V1(udc_encounter_distance);
Datum
udc_encounter_distance(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(udc_encounter_distance_m);
}

PG_FUNCTION_INFO_V1(udc_encounter_window);
Datum
udc_encounter_window(PG_FUNCTION_ARGS)
{
	PG_RETURN_INTERVAL_P(seconds_interval(udc_encounter_window_s));
}

PG_FUNCTION_INFO_V1(udc_encounter_gap);
Datum
udc_encounter_gap(PG_FUNCTION_ARGS)
{
	PG_RETURN_INTERVAL_P(seconds_interval(udc_encounter_gap_s));
}

bool
udc_encounter_is_trigger_function(Oid fn)
{
	List	   *name = list_make2(makeString("udaconnect"), makeString("location_add_encounters"));
	Oid			ours = LookupFuncName(name, 0, NULL, true);

	return OidIsValid(ours) && fn == ours;
}

/* SPI must be connected */
static void
lock_encounters(void)
{
	if (SPI_execute("SELECT udaconnect.encounter_lock()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "udaconnect.encounter_lock() failed");
}

/*
 * The settings in the units the maintenance uses (metres, microseconds),
 * for encounter_places.c, which recounts stored encounters' matches.
 */
double
enc_setting_distance(void)
{
	return udc_encounter_distance_m;
}

int64
enc_setting_window(void)
{
	return (int64) udc_encounter_window_s * USECS_PER_SEC;
}

int64
enc_setting_gap(void)
{
	return (int64) udc_encounter_gap_s * USECS_PER_SEC;
}

/*
 * The first n rows of SPI_tuptable as points: (id, person_id, latitude,
 * longitude, creation_time), the columns every query of encounter.c and
 * encounter_places.c reads locations with (none of them null).  The array
 * has room for at least one point.
 */
EncPoint *
enc_points_of_rows(uint64 n)
{
	EncPoint   *pts = palloc(sizeof(EncPoint) * Max(n, 1));
	TupleDesc	d = SPI_tuptable->tupdesc;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;

		pts[i].id = DatumGetInt64(SPI_getbinval(tup, d, 1, &isnull));
		pts[i].person = DatumGetInt32(SPI_getbinval(tup, d, 2, &isnull));
		pts[i].lat = DatumGetFloat8(SPI_getbinval(tup, d, 3, &isnull));
		pts[i].lon = DatumGetFloat8(SPI_getbinval(tup, d, 4, &isnull));
		pts[i].t = DatumGetTimestampTz(SPI_getbinval(tup, d, 5, &isnull));
	}
	return pts;
}

/*
 * The place of each match's midpoint (0: none), by places_at()'s rule
 * (SPI connected, encounter_clock locked).  The merge and
 * encounter_places.c place matches alike.  Places are read as they are now,
 * not on the caller's statement snapshot: a place change committed while
 * the caller waited for the lock may already have been worked off by a
 * places_refresh() chunk, which held the lock before it and could not see
 * its rows; placed on the older snapshot, these matches would keep the old
 * places for good.
 */
int32 *
enc_places_of(const EncMatch *m, int n)
{
	double	   *lat = palloc(sizeof(double) * n);
	double	   *lon = palloc(sizeof(double) * n);
	int32	   *out;

	for (int i = 0; i < n; i++)
	{
		lat[i] = m[i].lat;
		lon[i] = m[i].lon;
	}
	/* on an error, the abort pops the snapshot */
	PushActiveSnapshot(GetLatestSnapshot());
	out = udc_places_lookup(lat, lon, n);
	PopActiveSnapshot();
	pfree(lat);
	pfree(lon);
	return out;
}

/*
 * Chain the matches into the stored encounters (SPI connected): chained
 * among themselves first (encounter_chain.c), then merged with the stored
 * ones and written (encounter_merge.c).
 */
static void
merge_matches(const EncMatch *m, int n)
{
	EncIslands	is;

	if (n == 0)
		return;
	enc_chain(m, enc_places_of(m, n), n, (int64) udc_encounter_gap_s * USECS_PER_SEC, &is);
	enc_merge(&is, (int64) udc_encounter_gap_s * USECS_PER_SEC);
}

/*
 * Find and merge the matches of pts (all of them in `set`), with SPI
 * connected and encounter_clock locked.  The probes run on a snapshot taken
 * now, after the lock: it sees the rows of the writers that committed while
 * we waited, and this command's own.
 */
static int64
add_points(EncPoint *pts, int n, const EncSet *set)
{
	EncMatch   *m;
	int			nm;

	/*
	 * Everything a chunk allocates (probes, pairs, matches, islands, the
	 * merge's rows) goes with it: a large COPY's maintenance stays within
	 * one chunk's memory.
	 */
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "udaconnect encounters",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	CommandCounterIncrement();
	/* on an error, the abort pops the snapshot */
	PushActiveSnapshot(GetLatestSnapshot());
	m = enc_find_matches(pts, n, set, udc_encounter_distance_m,
						 (int64) udc_encounter_window_s * USECS_PER_SEC, &nm);
	PopActiveSnapshot();
	merge_matches(m, nm);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return nm;
}

void
udc_encounters_add(EncPoint *pts, int n)
{
	EncSet		set = {0};

	if (n == 0)
		return;
	enc_idset_of_points(&set, pts, n);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lock_encounters();
	for (int i = 0; i < n; i += CHUNK)
		add_points(pts + i, Min(CHUNK, n - i), &set);
	SPI_finish();
}

/* Attribute number of a column of location, or an error naming it. */
static AttrNumber
location_column(TupleDesc td, const char *name)
{
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of table \"udaconnect.location\" does not exist", name),
			 errdetail("The encounter maintenance reads it.")));
	return InvalidAttrNumber;	/* not reached */
}

/* The columns the maintenance reads from a transition table's rows. */
typedef struct NewRows
{
	Tuplestorestate *ts;
	TupleTableSlot *slot;
	AttrNumber	id;
	AttrNumber	person;
	AttrNumber	coord;
	AttrNumber	time;
} NewRows;

/* Read the next row of the transition table; false at its end. */
static bool
next_row(NewRows *nr, EncPoint *p, bool id_only)
{
	bool		isnull;

	if (!tuplestore_gettupleslot(nr->ts, true, false, nr->slot))
		return false;
	p->id = DatumGetInt64(slot_getattr(nr->slot, nr->id, &isnull));
	if (id_only)
		return true;
	p->person = DatumGetInt32(slot_getattr(nr->slot, nr->person, &isnull));
	p->t = DatumGetTimestampTz(slot_getattr(nr->slot, nr->time, &isnull));
	udc_point_coordinates(slot_getattr(nr->slot, nr->coord, &isnull), &p->lat, &p->lon);
	return true;
}

/*
 * The new rows' matches, CHUNK rows at a time: memory stays bounded however
 * many rows the statement (a COPY) inserted.  Two passes build the set of
 * their ids first (EncSet: which pairs count from which side).
 */
static void
add_new_rows(NewRows *nr)
{
	EncSet		set = {0};
	EncPoint	p;
	EncPoint   *pts;
	int64		min = PG_INT64_MAX,
				max = PG_INT64_MIN,
				count = 0;
	int			n;

	tuplestore_rescan(nr->ts);
	while (next_row(nr, &p, true))
	{
		min = Min(min, p.id);
		max = Max(max, p.id);
		count++;
	}
	if (count == 0)
		return;
	enc_idset_init(&set, min, max, count);
	tuplestore_rescan(nr->ts);
	while (next_row(nr, &p, true))
		enc_idset_add(&set, p.id);
	enc_idset_finish(&set);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lock_encounters();
	pts = palloc(sizeof(EncPoint) * CHUNK);
	tuplestore_rescan(nr->ts);
	do
	{
		for (n = 0; n < CHUNK && next_row(nr, &pts[n], false); n++)
			;
		if (n > 0)
			add_points(pts, n, &set);
	} while (n == CHUNK);
	SPI_finish();
}

/*
 * AFTER INSERT FOR EACH STATEMENT on location (INSERT, COPY, record_location
 * and the ingest's COPY path): the new rows' matches.
 */
PG_FUNCTION_INFO_V1(udc_location_add_encounters);
Datum
udc_location_add_encounters(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	NewRows		nr;
	int			rp;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || td->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("location_add_encounters() must be an AFTER INSERT FOR EACH STATEMENT trigger with REFERENCING NEW TABLE")));
	desc = RelationGetDescr(td->tg_relation);
	nr.ts = td->tg_newtable;
	nr.id = location_column(desc, "id");
	nr.person = location_column(desc, "person_id");
	nr.coord = location_column(desc, "coordinate");
	nr.time = location_column(desc, "creation_time");
	nr.slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	/* a read pointer of our own: other triggers read the same table */
	rp = tuplestore_alloc_read_pointer(nr.ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(nr.ts, rp);
	add_new_rows(&nr);
	tuplestore_select_read_pointer(nr.ts, 0);
	ExecDropSingleTupleTableSlot(nr.slot);
	return PointerGetDatum(NULL);
}

/* Locations with creation_time in [lo, hi), of persons (if any), in chunks. */
static int64
add_range(TimestampTz lo, TimestampTz hi, const int32 *persons, int npersons,
		  ArrayType *persons_arr)
{
	EncSet		set = {0};
	Oid			types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4ARRAYOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', persons_arr ? ' ' : 'n'};
	Portal		cur;
	int64		total = 0;

	set.lo = lo;
	set.hi = hi;
	set.persons = persons;
	set.npersons = npersons;
	args[0] = TimestampTzGetDatum(lo);
	args[1] = TimestampTzGetDatum(hi);
	args[2] = PointerGetDatum(persons_arr);
	/* the latest snapshot: what the matcher will see, not older */
	CommandCounterIncrement();
	cur = SPI_cursor_open_with_args(NULL,
									"SELECT l.id, l.person_id, ST_Y(l.coordinate), ST_X(l.coordinate), l.creation_time"
									"  FROM udaconnect.location l"
									" WHERE l.creation_time >= $1 AND l.creation_time < $2"
									"   AND ($3 IS NULL OR l.person_id = ANY ($3))",
									3, types, args, nulls, true, 0);
	for (;;)
	{
		EncPoint   *pts;
		uint64		got;

		SPI_cursor_fetch(cur, true, CHUNK);
		got = SPI_processed;
		if (got == 0)
			break;
		pts = enc_points_of_rows(got);
		SPI_freetuptable(SPI_tuptable);
		total += add_points(pts, (int) got, &set);
		pfree(pts);
	}
	SPI_cursor_close(cur);
	return total;
}

/*
 * encounter_add_range(lo, hi, persons): the matches of the locations with
 * creation_time in [lo, hi) (of persons, sorted and distinct, unless NULL);
 * returns their number.  encounters_rebuild() removed the encounters they
 * belonged to.
 */
PG_FUNCTION_INFO_V1(udc_encounter_add_range);
Datum
udc_encounter_add_range(PG_FUNCTION_ARGS)
{
	TimestampTz lo,
				hi;
	ArrayType  *arr = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	int32	   *persons = NULL;
	int			npersons = 0;
	int64		total;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lo and hi must not be null")));
	lo = PG_GETARG_TIMESTAMPTZ(0);
	hi = PG_GETARG_TIMESTAMPTZ(1);
	if (arr != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;

		if (ARR_ELEMTYPE(arr) != INT4OID || ARR_NDIM(arr) > 1)
			elog(ERROR, "persons must be a one-dimensional integer[]");
		deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &npersons);
		persons = palloc(sizeof(int32) * Max(npersons, 1));
		for (int i = 0; i < npersons; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("persons must not contain NULL")));
			persons[i] = DatumGetInt32(elems[i]);
			if (i > 0 && persons[i] <= persons[i - 1])
				elog(ERROR, "persons must be sorted and distinct");
		}
		if (npersons == 0)
			PG_RETURN_INT64(0);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lock_encounters();
	total = add_range(lo, hi, persons, npersons, arr);
	SPI_finish();
	PG_RETURN_INT64(total);
}

/*
 * encounter_notify_persons(persons integer[]) -> integer: enc_notify_persons()
 * for SQL (encounter_remove()); NULLs are skipped, a NULL array names none.
 */
PG_FUNCTION_INFO_V1(udc_encounter_notify_persons);
Datum
udc_encounter_notify_persons(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			k = 0;
	int32	   *persons;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT32(0);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_ELEMTYPE(arr) != INT4OID)
		elog(ERROR, "persons must be an integer[]");
	deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	persons = palloc(sizeof(int32) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			persons[k++] = DatumGetInt32(elems[i]);
	PG_RETURN_INT32(enc_notify_persons(persons, k));
}
