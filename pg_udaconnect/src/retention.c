/*
 * retention.c — the settings of privacy that live in C (attendee search
 * width and window, how far back an attendee may report, location
 * retention) and the retention background worker.
 *
 * The worker (one per server, registered only when the library is
 * preloaded, as the ingest workers are) connects to udaconnect.database and,
 * while udaconnect.location_retention is set and the extension is installed,
 * calls udaconnect.retention_sweep(now() - retention, batch) until a call
 * removes fewer than udaconnect.retention_batch locations and rejects, each
 * call in a short transaction of its own; then it sleeps
 * udaconnect.retention_naptime on its latch.  Its state is its
 * pg_stat_activity.query (backend_type "udaconnect retention").
 *
 * It must not know how old rows go (retention_sweep in 40-privacy.sql does:
 * the one place that will drop whole partitions instead), must not hold a
 * lock between calls (the ingest never waits for it) and must not die of a
 * failed sweep: the error is logged and the sweep retried after naptime.
 * See docs/ingest.md, "Retention".
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "ingest.h"
#include "ingest_errors.h"
#include "retention.h"

double		udc_attendee_max_distance = 10.0;
int			udc_attendee_max_window = 300;
int			udc_attendee_max_report_age = 3600;
char	   *udc_location_retention = NULL;
int			udc_retention_naptime = 60;
int			udc_retention_batch = 10000;

/*
 * Parse s as an interval without raising an error (a check hook must not):
 * the same steps as interval_in.  False with a detail when it is not one.
 */
static bool
parse_interval(const char *s, Interval *result)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype = 0;
	int			dterr;
	struct pg_itm_in itm_in;

	memset(&itm_in, 0, sizeof(itm_in));
	dterr = ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE, &dtype, &itm_in);
	if (dterr == DTERR_BAD_FORMAT)
	{
		char	   *copy = pstrdup(s);

		memset(&itm_in, 0, sizeof(itm_in));
		dterr = DecodeISO8601Interval(copy, &dtype, &itm_in);
		pfree(copy);
	}
	if (dterr != 0 || dtype != DTK_DELTA)
		return false;
	return itmin2interval(&itm_in, result) == 0;
}

static bool
check_location_retention(char **newval, void **extra, GucSource source)
{
	Interval	iv;
	double		span;

	if (*newval == NULL || **newval == '\0')
		return true;
	if (!parse_interval(*newval, &iv))
	{
		GUC_check_errdetail("\"%s\" is not an interval.", *newval);
		GUC_check_errhint("Give an interval such as '30 days' or '12 hours', or '' to keep locations forever.");
		return false;
	}
	/* the sign as interval comparison sees it: a month is 30 days */
	span = (double) iv.time + ((double) iv.day + (double) iv.month * DAYS_PER_MONTH) * (double) USECS_PER_DAY;
	if (span < 0)
	{
		GUC_check_errdetail("The retention \"%s\" is negative: it would remove locations from the future.", *newval);
		GUC_check_errhint("Give a positive interval such as '30 days', or '' to keep locations forever.");
		return false;
	}

	/*
	 * '0' would remove every location at the next sweep: whoever writes it
	 * most likely means "off", which is ''.  Past a century, now() minus it
	 * approaches the start of timestamptz's range.
	 */
	if (span < (double) USECS_PER_HOUR || span > 36525.0 * USECS_PER_DAY)
	{
		GUC_check_errdetail("The retention \"%s\" is outside 1 hour .. 100 years.", *newval);
		GUC_check_errhint("Give an interval such as '30 days', or '' (not '0') to keep locations forever.");
		return false;
	}
	return true;
}

static bool
check_attendee_max_distance(double *newval, void **extra, GucSource source)
{
	if (*newval > 0)
		return true;
	GUC_check_errdetail("udaconnect.attendee_max_distance must be greater than 0 metres, got %g.", *newval);
	return false;
}

void
udc_retention_init(void)
{
	BackgroundWorker worker;

	DefineCustomRealVariable("udaconnect.attendee_max_distance",
							 "The widest connection search an attendee may make, in metres.",
							 "Wider, a connection search would show an attendee everyone in the hall.  "
							 "Organizers are not limited.",
							 &udc_attendee_max_distance, 10.0, 0.0, 2e7, PGC_SUSET, 0,
							 check_attendee_max_distance, NULL, NULL);
	DefineCustomIntVariable("udaconnect.attendee_max_window",
							"The longest time window of an attendee's connection search.",
							"Without one, a search would show where others were at any time "
							"of the day near the attendee's points.  Organizers are not limited.",
							&udc_attendee_max_window, 300, 1, 86400, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.attendee_max_report_age",
							"How far back an attendee may report their own locations.",
							"Older, a forged point would let their connection search show who was "
							"at that place and time.  Organizers are not limited.  udaconnect-grpcd's "
							"--attendee-max-report-age must equal it.",
							&udc_attendee_max_report_age, 3600, 60, 604800, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("udaconnect.location_retention",
							   "How long locations and ingest rejects are kept (an interval); empty keeps them forever.",
							   "The retention worker removes older ones in batches of udaconnect.retention_batch.",
							   &udc_location_retention, "", PGC_SIGHUP, 0,
							   check_location_retention, NULL, NULL);
	DefineCustomIntVariable("udaconnect.retention_naptime",
							"Time between two retention sweeps.",
							NULL, &udc_retention_naptime, 60, 1, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.retention_batch",
							"Maximum number of locations (and of rejects) one retention transaction removes.",
							NULL, &udc_retention_batch, 10000, 1, 1000000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	/* as the ingest: a worker only in a server that preloads the library */
	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_udaconnect");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "udc_retention_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "udaconnect retention");
	snprintf(worker.bgw_type, BGW_MAXLEN, "udaconnect retention");
	RegisterBackgroundWorker(&worker);
}

static void
set_state(const char *state)
{
	pgstat_report_activity(STATE_IDLE, state);
}

/* is the extension, at a version with retention_sweep, installed? */
static bool
extension_ready(void)
{
	bool		ready;

	StartTransactionCommand();
	ready = OidIsValid(get_extension_oid("pg_udaconnect", true)) &&
		OidIsValid(get_relname_relid("erased_person", get_namespace_oid("udaconnect", true)));
	CommitTransactionCommand();
	return ready;
}

/* One call of retention_sweep in its own transaction. */
static void
sweep_once(int64 *locations, int64 *rejects)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bool		isnull;
	int			rc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "udaconnect retention: sweeping");
	values[0] = CStringGetTextDatum(udc_location_retention);
	values[1] = Int32GetDatum(udc_retention_batch);
	rc = SPI_execute_with_args("SELECT locations, rejects FROM udaconnect.retention_sweep(now() - $1::interval, $2)",
							   2, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "udaconnect.retention_sweep failed: %s", SPI_result_code_string(rc));
	*locations = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		*locations = 0;
	*rejects = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		*rejects = 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/* counts of the sweep in progress, kept when a call fails */
typedef struct Sweep
{
	bool		ready;			/* the extension is installed */
	int64		locations;
	int64		rejects;
	int			calls;
} Sweep;

/*
 * A sweep: calls until one removes fewer than a batch of both.  Settings
 * are reloaded between calls, so turning retention off stops it there.
 */
static void
sweep(void *arg)
{
	Sweep	   *s = (Sweep *) arg;

	s->ready = extension_ready();
	if (!s->ready)
		return;
	for (;;)
	{
		int64		loc;
		int64		rej;
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
		sweep_once(&loc, &rej);
		s->locations += loc;
		s->rejects += rej;
		s->calls++;
		if (loc < batch && rej < batch)
			return;
	}
}

static void
run_sweep(void)
{
	Sweep		s = {0};
	UdcIngestError err;
	TimestampTz start = GetCurrentTimestamp();
	bool		ok = udc_ingest_run_guarded(sweep, &s, &err);
	long		secs;
	int			usecs;

	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	if (!ok)
	{
		ereport(WARNING,
				(errmsg("udaconnect retention: sweep failed: %s (SQLSTATE %s)",
						err.message, unpack_sql_state(err.sqlerrcode)),
				 errdetail("%lld locations and %lld ingest rejects were removed before the failure; the sweep is retried in %d s.",
						   (long long) s.locations, (long long) s.rejects, udc_retention_naptime)));
		set_state(psprintf("error: %s; retried in %d s", err.message, udc_retention_naptime));
		return;
	}
	if (!s.ready)
	{
		set_state("waiting for CREATE EXTENSION");
		return;
	}
	ereport(s.locations + s.rejects > 0 ? LOG : DEBUG1,
			(errmsg("udaconnect retention: removed %lld locations and %lld ingest rejects older than %s in %d transactions, %ld.%03d s",
					(long long) s.locations, (long long) s.rejects, udc_location_retention, s.calls,
					secs, usecs / 1000)));
	set_state(psprintf("sleeping: last sweep removed %lld locations, %lld rejects",
					   (long long) s.locations, (long long) s.rejects));
}

void
udc_retention_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(udc_database, NULL, 0);
	pgstat_report_appname("udaconnect retention");
	ereport(LOG, (errmsg("udaconnect retention worker started")));

	for (;;)
	{
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (udc_location_retention == NULL || udc_location_retention[0] == '\0')
			set_state("idle: udaconnect.location_retention is off");
		else
			run_sweep();

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   udc_retention_naptime * 1000L, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
	}
}
