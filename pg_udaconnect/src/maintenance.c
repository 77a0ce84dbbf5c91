/*
 * maintenance.c — the maintenance background worker.  One per server
 * (registered only when the library is preloaded, as the ingest workers
 * are), connected to udaconnect.database.  Every
 * udaconnect.retention_naptime it
 *   1. keeps udaconnect.location's time partitions ready: one call of
 *      udaconnect.location_partitions_maintain() (15-partitions.sql), which
 *      creates the current partition and udaconnect.location_partitions_ahead
 *      more, and moves rows out of location_default into partitions of
 *      their own;
 *   2. while udaconnect.location_retention is set, calls
 *      udaconnect.retention_sweep(now() - retention, batch) until a call
 *      removes fewer than udaconnect.retention_batch locations and rejects,
 *      then udaconnect.retention_drop_partitions(now() - retention), which
 *      drops one expired partition a call, until it drops none; each call
 *      in a short transaction of its own;
 *   3. calls udaconnect.places_refresh(1) until no changed place is left
 *      in the queue (55-place-changes.sql): a chunk of stored encounters
 *      placed anew a transaction, so the ingest waits for a chunk at most;
 * then sleeps on its latch.  Its state is its pg_stat_activity.query
 * (backend_type and application_name "udaconnect maintenance").
 *
 * It must not know how partitions are made or how old rows go (the SQL
 * functions do: the one place for each), must not hold a lock between
 * calls (the ingest never waits for it), and must not die of a failed
 * call: the error is logged and the call retried after naptime.  A database
 * whose extension predates a function (an older version under a newer
 * library) is given only what its version has.  See docs/ingest.md,
 * "Retention", and docs/scaling.md, "Time partitions".
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "ingest.h"
#include "ingest_errors.h"
#include "maintenance.h"
#include "retention.h"

void
udc_maintenance_init(void)
{
	BackgroundWorker worker;

	/* as the ingest: a worker only in a server that preloads the library */
	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_udaconnect");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "udc_maintenance_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "udaconnect maintenance");
	snprintf(worker.bgw_type, BGW_MAXLEN, "udaconnect maintenance");
	RegisterBackgroundWorker(&worker);
}

static void
set_state(const char *state)
{
	pgstat_report_activity(STATE_IDLE, state);
}

/* what the installed extension has */
typedef struct Installed
{
	bool		extension;
	bool		retention;		/* retention_sweep (1.2) */
	bool		partitions;		/* partitions and their drop (1.5) */
	bool		places;			/* places_refresh (1.6) */
} Installed;

static bool
has_function(const char *name, int nargs, const Oid *argtypes)
{
	List	   *fname = list_make2(makeString("udaconnect"), makeString(pstrdup(name)));

	return OidIsValid(LookupFuncName(fname, nargs, argtypes, true));
}

static Installed
installed(void)
{
	Installed	i = {0};
	Oid			ts = TIMESTAMPTZOID;
	Oid			int4 = INT4OID;

	StartTransactionCommand();
	i.extension = OidIsValid(get_extension_oid("pg_udaconnect", true));
	if (i.extension)
	{
		i.retention = OidIsValid(get_relname_relid("erased_person", get_namespace_oid("udaconnect", true)));
		i.partitions = has_function("location_partitions_maintain", 0, NULL) &&
			has_function("retention_drop_partitions", 1, &ts);
		i.places = has_function("places_refresh", 1, &int4);
	}
	CommitTransactionCommand();
	return i;
}

/*
 * One statement in its own transaction, with the retention as $1 when
 * asked; it returns one row of nout bigints (NULL read as 0).
 */
static void
call_n(const char *activity, const char *sql, bool with_retention, int64 *out, int nout)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int			rc;
	int			i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (with_retention)
		values[0] = CStringGetTextDatum(udc_location_retention);
	rc = SPI_execute_with_args(sql, with_retention ? 1 : 0, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "%s failed: %s", sql, SPI_result_code_string(rc));
	for (i = 0; i < nout; i++)
	{
		out[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull));
		if (isnull)
			out[i] = 0;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

static void
call_once(const char *activity, const char *sql, bool with_retention, int64 out[2])
{
	call_n(activity, sql, with_retention, out, 2);
}

/* counts of the round in progress, kept when a call fails */
typedef struct Round
{
	Installed	has;
	int64		created;		/* partitions */
	int64		moved;			/* rows out of location_default */
	int64		locations;
	int64		rejects;
	int64		dropped;		/* partitions */
	int64		dropped_locations;
	int			calls;
	int64		place_chunks;	/* places_refresh */
	int64		place_changes;
	int64		place_encounters;
} Round;

static void
partitions(void *arg)
{
	Round	   *r = (Round *) arg;
	int64		out[2];

	call_once("udaconnect partitions: maintaining",
			  "SELECT created::bigint, moved FROM udaconnect.location_partitions_maintain()",
			  false, out);
	r->created = out[0];
	r->moved = out[1];
}

/*
 * Retention: sweeps until one removes fewer than a batch of both, then the
 * partitions.  Settings are reloaded between calls, so turning retention
 * off stops it there.
 */
static void
sweep(void *arg)
{
	Round	   *r = (Round *) arg;
	int64		out[2];

	for (;;)
	{
		int			batch;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (udc_location_retention == NULL || udc_location_retention[0] == '\0')
			return;
		batch = udc_retention_batch;
		call_once("udaconnect retention: sweeping",
				  psprintf("SELECT locations, rejects FROM udaconnect.retention_sweep(now() - $1::interval, %d)", batch),
				  true, out);
		r->locations += out[0];
		r->rejects += out[1];
		r->calls++;
		if (out[0] < batch && out[1] < batch)
			break;
	}
	if (!r->has.partitions)
		return;
	/* a partition a transaction, oldest first, until none is left (or in use) */
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		call_once("udaconnect retention: dropping partitions",
				  "SELECT partitions::bigint, locations FROM udaconnect.retention_drop_partitions(now() - $1::interval)",
				  true, out);
		r->calls++;
		if (out[0] == 0)
			break;
		r->dropped += out[0];
		r->dropped_locations += out[1];
		r->locations += out[1];
	}
}

/* a failed call: logged, shown, retried at the next round */
static void
report_failure(const char *what, const UdcIngestError *err, const char *detail)
{
	ereport(WARNING,
			(errmsg("udaconnect %s failed: %s (SQLSTATE %s)", what, err->message,
					unpack_sql_state(err->sqlerrcode)),
			 errdetail("%s The call is retried in %d s.", detail, udc_retention_naptime)));
	set_state(psprintf("error: %s; retried in %d s", err->message, udc_retention_naptime));
}

static void
run_partitions(Round *r)
{
	UdcIngestError err;

	if (!udc_ingest_run_guarded(partitions, r, &err))
	{
		report_failure("partitions: maintenance", &err,
					   "Rows for times no partition covers go to udaconnect.location_default meanwhile.");
		return;
	}
	ereport(r->created + r->moved > 0 ? LOG : DEBUG1,
			(errmsg("udaconnect partitions: created %lld partitions of udaconnect.location, moved %lld rows out of location_default",
					(long long) r->created, (long long) r->moved)));
}

static void
run_sweep(Round *r)
{
	UdcIngestError err;
	TimestampTz start = GetCurrentTimestamp();
	long		secs;
	int			usecs;

	if (!udc_ingest_run_guarded(sweep, r, &err))
	{
		report_failure("retention: sweep", &err,
					   psprintf("%lld locations and %lld ingest rejects were removed before the failure.",
								(long long) r->locations, (long long) r->rejects));
		return;
	}
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	ereport(r->locations + r->rejects > 0 ? LOG : DEBUG1,
			(errmsg("udaconnect retention: removed %lld locations and %lld ingest rejects older than %s in %d transactions, %ld.%03d s",
					(long long) r->locations, (long long) r->rejects, udc_location_retention, r->calls,
					secs, usecs / 1000),
			 r->dropped > 0 ?
			 errdetail("%lld of the locations went with %lld dropped partitions.",
					   (long long) r->dropped_locations, (long long) r->dropped) : 0));
	set_state(psprintf("sleeping: last sweep removed %lld locations, %lld rejects",
					   (long long) r->locations, (long long) r->rejects));
}

/*
 * Changed places: a chunk a transaction until the queue is empty, or until
 * only areas whose chunk failed are left (places_refresh() records those,
 * WARNING each, and skips them until their retry_after: a call then runs no
 * chunk, so one failing area neither stops the areas behind it nor keeps
 * this loop busy).  Settings are reloaded between chunks, as between sweeps.
 */
static void
places(void *arg)
{
	Round	   *r = (Round *) arg;
	int64		out[4];

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		call_n("udaconnect places: placing stored encounters anew",
			   "SELECT chunks::bigint, changes::bigint, encounters, remaining FROM udaconnect.places_refresh(1)",
			   false, out, 4);
		r->place_chunks += out[0];
		r->place_changes += out[1];
		r->place_encounters += out[2];
		if (out[0] == 0 || out[3] == 0)
			break;
	}
}

static void
run_places(Round *r)
{
	UdcIngestError err;
	TimestampTz start = GetCurrentTimestamp();
	long		secs;
	int			usecs;

	if (!udc_ingest_run_guarded(places, r, &err))
	{
		report_failure("places: refresh", &err,
					   psprintf("%lld encounters were placed anew in %lld chunks before the failure; the changed places stay queued in udaconnect.place_change.",
								(long long) r->place_encounters, (long long) r->place_chunks));
		return;
	}
	if (r->place_chunks == 0)
		return;
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	ereport(LOG,
			(errmsg("udaconnect places: %lld place changes applied to the stored encounters, %lld encounters placed anew, in %lld chunks, %ld.%03d s",
					(long long) r->place_changes, (long long) r->place_encounters,
					(long long) r->place_chunks, secs, usecs / 1000)));
}

static void
run_round(void)
{
	Round		r = {0};
	bool		retention = udc_location_retention != NULL && udc_location_retention[0] != '\0';

	r.has = installed();
	if (!r.has.extension)
	{
		set_state("waiting for CREATE EXTENSION");
		return;
	}
	if (r.has.partitions)
		run_partitions(&r);
	if (r.has.places)
		run_places(&r);
	if (!retention)
		set_state("idle: udaconnect.location_retention is off");
	else if (r.has.retention)
		run_sweep(&r);
}

void
udc_maintenance_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(udc_database, NULL, 0);
	pgstat_report_appname("udaconnect maintenance");
	ereport(LOG, (errmsg("udaconnect maintenance worker started")));

	/*
	 * A round every naptime, and at once after a reload (a new retention
	 * applies then).  The latch is also set by catch-up interrupts, which
	 * any DDL elsewhere causes: those only shorten the wait, not start a
	 * round.
	 */
	for (;;)
	{
		TimestampTz next;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		run_round();
		next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), udc_retention_naptime * 1000L);
		for (;;)
		{
			long		wait = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next);
			int			rc;

			if (wait <= 0 || ConfigReloadPending)
				break;
			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   wait, PG_WAIT_EXTENSION);
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}
