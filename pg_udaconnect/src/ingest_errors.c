/*
 * ingest_errors.c — the ingest worker's policy for database errors.
 *
 * It holds (1) the classification of an error raised while rows are
 * inserted: the rows' fault (reject the row that fails on its own) or not
 * (retry the whole batch); (2) the guard that catches an ERROR escaping a
 * turn of the worker's main loop, aborts the transaction and hands the error
 * back, so the worker retries instead of exiting; (3) the back-off between
 * such retries.
 *
 * It must not decide what a retry is (the worker re-seeks to the offsets
 * stored in the database, as after a crash: exactly-once rests on that and
 * on one transaction per batch), must not log (the worker's report_problem()
 * rate-limits that) and must not be called per row: it only runs on errors
 * (the guard costs one sigsetjmp per turn of the loop).  See docs/ingest.md,
 * "Database errors".
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "ingest_errors.h"

/*
 * Only errors caused by what a message says reject it:
 *
 * - class 22 (data exception): a value the table or a trigger cannot take;
 *   except 2200H, an exhausted sequence (the identity column): every row
 *   would fail alike, it is the table's state, not the row's content;
 * - class 23 (integrity constraint violation): CHECK, NOT NULL, unique,
 *   foreign key (e.g. a person deleted while the batch ran), exclusion;
 * - P0001, RAISE EXCEPTION without a SQLSTATE of its own: a user trigger
 *   refusing this row, as a CHECK constraint would.  A trigger that wants
 *   the batch retried instead raises any SQLSTATE outside 22, 23 and P0001.
 *
 * Everything else — serialization failure and deadlock (40xxx), lock
 * timeout (55P03), query cancel and statement timeout (57014),
 * insufficient resources such as out of memory or disk full (53xxx),
 * system and internal errors (58xxx, XX), connection errors (08), setup
 * errors such as a missing privilege or column (42xxx), and any other — is
 * the same for any row of the batch, or passes: the batch is retried.
 */
bool
udc_ingest_error_blames_row(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
			return sqlerrcode != ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED;
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
			return true;
		default:
			return sqlerrcode == ERRCODE_RAISE_EXCEPTION;
	}
}

/*
 * Called outside any transaction (the worker's main loop), so the memory
 * context current on entry survives the abort.
 */
bool
udc_ingest_run_guarded(void (*fn) (void *arg), void *arg, UdcIngestError *err)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	Assert(!IsTransactionState());
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* as PostgresMain's error recovery: no interrupt while cleaning up */
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();

		/*
		 * A shutdown request raised as an ERROR (a FATAL never gets here)
		 * still ends the worker: re-thrown, it reaches the background
		 * worker's own handler (StartBackgroundWorker), which reports it
		 * and exits.
		 */
		if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			edata->sqlerrcode == ERRCODE_CRASH_SHUTDOWN)
		{
			RESUME_INTERRUPTS();
			PG_RE_THROW();
		}
		FlushErrorState();

		/*
		 * A lock or deadlock timeout may still be armed, and the cancel that
		 * a lock timeout sends may still be pending: neither concerns the
		 * retry.  The abort releases locks, buffers, SPI, snapshots.
		 */
		disable_all_timeouts(false);
		QueryCancelPending = false;
		AbortCurrentTransaction();
		MemoryContextSwitchTo(oldcxt);

		err->sqlerrcode = edata->sqlerrcode;
		strlcpy(err->message, edata->message ? edata->message : "unknown error",
				sizeof(err->message));
		FreeErrorData(edata);
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static int	retry_delay_ms = 0;

int
udc_ingest_retry_delay_ms(void)
{
	retry_delay_ms = retry_delay_ms == 0 ? 500 : Min(retry_delay_ms * 2, 30000);
	return retry_delay_ms;
}

void
udc_ingest_retry_reset(void)
{
	retry_delay_ms = 0;
}
