/*
 * ingest_offsets.c — the ingest worker's transactions and its tables of
 * state: the transaction frame (SPI, snapshot, activity, the plans kept
 * for the worker's lifetime), the pause switch
 * (udaconnect.ingest_control) and udaconnect.ingest_offset — reading the
 * stored offsets a (re)assignment starts from, locking a partition's row for
 * a batch, storing each partition's next offset and counts in the batch's
 * transaction, and restarting a partition whose offset left the broker.
 *
 * Exactly-once rests on this file: consumption always (re)starts from what
 * is stored here, and a batch stores its offsets in its own transaction.
 * It must not talk to Kafka (the caller brings the watermarks) nor call the
 * consumer or the batch; it must not commit anything but what its callers
 * frame with udc_ingest_begin_tx()/udc_ingest_end_tx().
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "ingest_int.h"

/* start a transaction with SPI connected and a snapshot */
void
udc_ingest_begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
udc_ingest_end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* do the extension and its tables exist (in a transaction)? */
bool
udc_ingest_extension_ready(void)
{
	Oid			nsp;

	if (!OidIsValid(get_extension_oid("pg_udaconnect", true)))
		return false;
	nsp = get_namespace_oid("udaconnect", true);

	/*
	 * erased_person came with version 1.2: before ALTER EXTENSION ... UPDATE
	 * the worker waits (Kafka keeps the messages) rather than ingest without
	 * the erasure check.
	 */
	return OidIsValid(get_relname_relid("ingest_offset", nsp)) &&
		OidIsValid(get_relname_relid("erased_person", nsp));
}

/*
 * *plan, prepared on first use and kept for the worker's lifetime (the
 * worker's statements are fixed: preparing once per worker, not per batch).
 */
SPIPlanPtr
udc_ingest_kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* is ingest paused?  (FOR SHARE: ingest_pause() waits for us) */
bool
udc_ingest_read_paused(bool lock)
{
	int			rc;
	bool		isnull;
	Datum		d;

	rc = SPI_execute(lock ? "SELECT paused FROM udaconnect.ingest_control FOR SHARE"
					 : "SELECT paused FROM udaconnect.ingest_control", false, 1);
	if ((rc != SPI_OK_SELECT && rc != SPI_OK_SELINTO) || SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

/* stored next offset of partition p, or -1 (lock: FOR UPDATE) */
int64
udc_ingest_stored_offset(IngestWorker *w, int32 partition, bool lock)
{
	static SPIPlanPtr plan_lock = NULL;
	static SPIPlanPtr plan_nolock = NULL;
	Oid			types[2] = {TEXTOID, INT4OID};
	SPIPlanPtr	plan;
	Datum		values[2];
	int			rc;
	bool		isnull;
	Datum		d;

	if (lock)
		plan = udc_ingest_kept_plan(&plan_lock,
									"SELECT next_offset FROM udaconnect.ingest_offset WHERE topic = $1 AND \"partition\" = $2 FOR UPDATE",
									2, types);
	else
		plan = udc_ingest_kept_plan(&plan_nolock,
									"SELECT next_offset FROM udaconnect.ingest_offset WHERE topic = $1 AND \"partition\" = $2",
									2, types);
	values[0] = CStringGetTextDatum(w->consumer_topic);
	values[1] = Int32GetDatum(partition);
	rc = SPI_execute_plan(plan, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.ingest_offset failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * In a transaction of its own: the pause switch into w->paused and the
 * stored offset of every partition of w->parts.  False (nothing read) when
 * the extension does not exist.
 */
bool
udc_ingest_load_offsets(IngestWorker *w)
{
	bool		ok = true;
	int			i;

	udc_ingest_begin_tx("udaconnect ingest: reading offsets");
	if (!udc_ingest_extension_ready())
		ok = false;
	else
	{
		w->paused = udc_ingest_read_paused(false);
		for (i = 0; i < w->nparts; i++)
			w->parts[i].next_offset = udc_ingest_stored_offset(w, w->parts[i].partition, false);
	}
	udc_ingest_end_tx();
	return ok;
}

/*
 * In a transaction of its own: a partition's stored offset is no longer on
 * the broker, which holds [lo, hi): restart it at lo, loudly.
 */
void
udc_ingest_reset_offset(IngestWorker *w, int32 partition, int64 lo, int64 hi, const char *why)
{
	udc_ingest_begin_tx("udaconnect ingest: offset reset");
	if (udc_ingest_extension_ready())
	{
		Oid			types[3] = {TEXTOID, INT4OID, INT8OID};
		Datum		values[3];
		int64		stored = udc_ingest_stored_offset(w, partition, true);

		/* only move forward to the earliest offset, or restart a recreated topic */
		if (stored < 0 || stored < lo || stored > hi)
		{
			values[0] = CStringGetTextDatum(w->consumer_topic);
			values[1] = Int32GetDatum(partition);
			values[2] = Int64GetDatum(lo);
			SPI_execute_with_args("INSERT INTO udaconnect.ingest_offset (topic, \"partition\", next_offset) VALUES ($1, $2, $3) "
								  "ON CONFLICT (topic, \"partition\") DO UPDATE SET next_offset = excluded.next_offset",
								  3, types, values, NULL, false, 0);
			ereport(WARNING,
					(errmsg("udaconnect ingest worker %d: partition %d of topic \"%s\" restarts at offset %lld",
							w->index, partition, w->consumer_topic, (long long) lo),
					 stored < 0 ?
					 errdetail("%s: no offset was stored yet; the broker holds offsets [%lld, %lld).",
							   why, (long long) lo, (long long) hi) :
					 errdetail("%s: the stored offset %lld lies outside the broker's offsets [%lld, %lld).",
							   why, (long long) stored, (long long) lo, (long long) hi),
					 errhint("Messages between the stored offset and %lld are no longer on the broker (retention) or the topic was recreated.",
							 (long long) lo)));
		}
	}
	udc_ingest_end_tx();
}

static void
store_offset(IngestWorker *w, int32 partition, int64 next_offset, int64 rows, int64 nrejects,
			 int64 erased)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		values[6];
	int			rc;

	udc_ingest_kept_plan(&plan, "INSERT INTO udaconnect.ingest_offset AS o "
						 "(topic, \"partition\", next_offset, rows_ingested, rejects, erased_dropped, last_batch_at) "
						 "VALUES ($1, $2, $3, $4, $5, $6, now()) "
						 "ON CONFLICT (topic, \"partition\") DO UPDATE SET "
						 "next_offset = excluded.next_offset, "
						 "rows_ingested = o.rows_ingested + excluded.rows_ingested, "
						 "rejects = o.rejects + excluded.rejects, "
						 "erased_dropped = o.erased_dropped + excluded.erased_dropped, "
						 "last_batch_at = excluded.last_batch_at", 6, types);
	values[0] = CStringGetTextDatum(w->consumer_topic);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(next_offset);
	values[3] = Int64GetDatum(rows);
	values[4] = Int64GetDatum(nrejects);
	values[5] = Int64GetDatum(erased);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "updating udaconnect.ingest_offset failed: %s", SPI_result_code_string(rc));
}

static PartState *
find_part(IngestWorker *w, int32 partition)
{
	int			i;

	for (i = 0; i < w->nparts; i++)
		if (w->parts[i].partition == partition)
			return &w->parts[i];
	return NULL;
}

/*
 * In the batch's transaction: the next offset and the counts of every
 * partition bp[0..nbp) of the batch that had a new message (bp[].taken,
 * bp[].rejects and bp[].erased counted while the batch was checked).
 */
void
udc_ingest_store_offsets(IngestWorker *w, BatchPart *bp, int nbp)
{
	int			i;

	for (i = 0; i < nbp; i++)
	{
		PartState  *ps;

		if (!bp[i].any)
			continue;
		ps = find_part(w, bp[i].partition);
		if (ps)
			ps->next_offset = bp[i].next;
		store_offset(w, bp[i].partition, bp[i].next, bp[i].taken - bp[i].rejects - bp[i].erased,
					 bp[i].rejects, bp[i].erased);
	}
}
