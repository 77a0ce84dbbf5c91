/*
 * ingest_worker.c — the Kafka ingest background worker's main loop.
 *
 * Each worker consumes the partitions p of udaconnect.kafka_topic with
 * p % udaconnect.ingest_workers == its number, in batches.  One batch = one
 * transaction: the valid messages go into udaconnect.location, the invalid
 * ones into udaconnect.ingest_rejects, and the next offset of every
 * partition in the batch into udaconnect.ingest_offset.  Consumption always
 * (re)starts from the offsets stored in that table, so a crash at any
 * instant neither loses nor duplicates a message.  A database error that is
 * not the fault of a message (lock timeout, deadlock, out of memory...;
 * ingest_errors.c) aborts the batch, which is then consumed again from those
 * offsets, as after a crash.  See docs/ingest.md.
 *
 * This file holds the worker's one state (IngestWorker), its entry point,
 * signals, latch waits, reloads, the pause and recovery switches, and one
 * turn of the loop calling the other files (ingest_int.h lists them, lowest
 * first).  It must not hold Kafka, SQL or insert logic of its own: those
 * belong to ingest_consumer.c, ingest_offsets.c and ingest_batch.c.
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "ingest_int.h"
#include "ingest_errors.h"

static IngestWorker worker = {
	.topic_partitions = -1,
	.need_reassign = true,
	.insert_path = -1,
};

/*
 * Commit mode of the batches (udaconnect.ingest_synchronous_commit): off
 * unless asked for.  Exactly-once does not depend on it: rows, rejects and
 * offsets commit in one transaction, and a transaction whose commit record
 * did not reach the disk before a crash is lost as a whole — its offsets
 * too, so its messages are consumed again.  See docs/ingest.md.
 */
static void
apply_commit_mode(void)
{
	/* NULL: back to the server's own setting */
	SetConfigOption("synchronous_commit", udc_ingest_synchronous_commit ? NULL : "off",
					PGC_USERSET, PGC_S_SESSION);
}

static void
wait_ms(long ms)
{
	int			rc;

	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

static void
worker_exit_cb(int code, Datum arg)
{
	IngestWorker *w = (IngestWorker *) DatumGetPointer(arg);

	/* no consumer-group state to leave: just stop librdkafka's threads */
	udc_ingest_consumer_destroy(w);
	udc_ingest_status_stopped(w);
}

/* SIGHUP: new settings; a consumer made with other ones is remade */
static void
reload_settings(IngestWorker *w)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	apply_commit_mode();
	w->config_broken = false;
	if (udc_ingest_consumer_settings_changed(w))
	{
		ereport(LOG, (errmsg("udaconnect ingest worker %d: Kafka settings changed, reconnecting", w->index)));
		udc_ingest_consumer_destroy(w);
	}
	w->need_reassign = true;
	w->next_metadata_at = 0;
	w->backoff_ms = 0;
}

/*
 * Can the worker consume now?  If not, it has waited (or set its state) and
 * the turn is over.
 */
static bool
ready_to_consume(IngestWorker *w)
{
	if (RecoveryInProgress())
	{
		udc_ingest_consumer_destroy(w);
		udc_ingest_set_state(w, "idle: server in recovery");
		wait_ms(1000);
		return false;
	}
	if (udc_kafka_brokers == NULL || udc_kafka_brokers[0] == '\0')
	{
		udc_ingest_consumer_destroy(w);
		udc_ingest_set_state(w, "idle: udaconnect.kafka_brokers is empty");
		wait_ms(10000);
		return false;
	}
	if (w->config_broken)
	{
		wait_ms(10000);
		return false;
	}
	if (w->rk == NULL && !udc_ingest_consumer_create(w))
	{
		udc_ingest_set_state(w, "error: bad Kafka settings");
		w->config_broken = true;
		return false;
	}
	if (!udc_ingest_refresh_assignment(w))
	{
		/* paused, no extension, broker or topic unavailable: retry later */
		udc_ingest_drain_kafka_log(w);
		wait_ms(Max(Min(w->backoff_ms, 30000), 500));
		return false;
	}
	if (!w->assigned)
	{
		wait_ms(1000);
		return false;
	}
	return true;
}

/* One turn of the main loop: settings, assignment, at most one batch. */
static void
worker_turn(void *arg)
{
	IngestWorker *w = (IngestWorker *) arg;
	int			n;

	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
		reload_settings(w);
	udc_ingest_drain_kafka_log(w);
	if (!ready_to_consume(w))
		return;

	n = udc_ingest_collect_batch(w);
	if (n > 0)
	{
		bool		applied = udc_ingest_process_batch(w, n);

		udc_ingest_release_batch(w);
		if (!applied)
		{
			udc_ingest_unassign(w);
			w->need_reassign = true;
			w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 500);
		}
		else
			udc_ingest_retry_reset();
	}
	udc_ingest_publish_watermarks(w, false);
}

/*
 * An ERROR escaped a turn (udc_ingest_run_guarded has aborted its
 * transaction: nothing of the batch in progress is committed, its rows, its
 * rejects and its offsets alike).  Errors that are a message's fault never
 * get here (they reject that message inside the batch), so this one is
 * transient or a setup problem: consume the same messages again from the
 * offsets stored in the database, as after a crash, after a back-off, and
 * show the error in ingest_status.last_error and (rate-limited) in the log.
 */
static void
recover_after_error(IngestWorker *w, const UdcIngestError *err)
{
	int			delay = udc_ingest_retry_delay_ms();

	udc_ingest_release_batch(w);
	MemoryContextReset(w->batch_cxt);
	udc_ingest_unassign(w);
	w->need_reassign = true;
	/* udc_ingest_refresh_assignment() waits until then before it seeks again */
	w->backoff_ms = delay;
	w->next_metadata_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	udc_ingest_set_state(w, "retrying after a database error");
	udc_ingest_report_problem(w, WARNING, "%s (SQLSTATE %s): batch not committed, consumed again from the stored offsets in %d ms",
							  err->message, unpack_sql_state(err->sqlerrcode), delay);
}

void
udc_ingest_worker_main(Datum main_arg)
{
	IngestWorker *w = &worker;

	w->index = DatumGetInt32(main_arg);
	if (w->index < 0 || w->index >= UDC_MAX_WORKERS)
		elog(FATAL, "udaconnect ingest worker number %d out of range", w->index);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Every batch allocates and frees the same few megabytes (librdkafka's
	 * fetch buffers, the batch's memory contexts).  With glibc's defaults
	 * large blocks are mmap'ed and trimmed memory is returned to the kernel,
	 * so each batch page-faults its memory in again (~10 % of the worker's
	 * CPU; librdkafka's fetch buffers alone ~5 %).  Keep freed memory in the
	 * process instead: the peak is bounded by the batch size and the
	 * prefetch limit.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
	/* librdkafka's threads too (a thread arena's heaps are unmapped when empty) */
	mallopt(M_ARENA_MAX, 1);

	BackgroundWorkerInitializeConnection(udc_database, NULL, 0);
	pgstat_report_appname(psprintf("udaconnect ingest worker %d", w->index));

	w->batch_cxt = AllocSetContextCreate(TopMemoryContext, "udaconnect ingest batch", ALLOCSET_DEFAULT_SIZES);
	udc_ingest_copy_init();
	on_proc_exit(worker_exit_cb, PointerGetDatum(w));
	apply_commit_mode();
	udc_ingest_set_state(w, "starting");
	ereport(LOG, (errmsg("udaconnect ingest worker %d started", w->index)));

	for (;;)
	{
		UdcIngestError err;

		if (!udc_ingest_run_guarded(worker_turn, w, &err))
			recover_after_error(w, &err);
	}
}
