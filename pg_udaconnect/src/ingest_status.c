/*
 * ingest_status.c — what the ingest worker shows of itself: its slot and its
 * partitions' slots in shared memory (udaconnect.ingest_status, ingest.c
 * reads them), its pg_stat_activity text, and its rate-limited problem
 * reports in the server log.
 *
 * It must not call any other file of the worker (it is the lowest layer),
 * must not hold the spinlock across anything but plain copies, and must not
 * be called from librdkafka's threads: they only queue their log lines
 * (ingest_consumer.c), which the main loop reports through here.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "ingest_int.h"

void
udc_ingest_set_state(IngestWorker *w, const char *state)
{
	UdcWorkerSlot *slot;

	if (udc_ingest_shared == NULL)
	{
		if (!IsTransactionState())
			pgstat_report_activity(STATE_IDLE, state);
		return;
	}
	slot = &udc_ingest_shared->workers[w->index];
	SpinLockAcquire(&udc_ingest_shared->mutex);
	slot->pid = MyProcPid;
	strlcpy(slot->state, state, UDC_STATELEN);
	SpinLockRelease(&udc_ingest_shared->mutex);
	/* also visible in pg_stat_activity.query while the worker waits */
	if (!IsTransactionState())
		pgstat_report_activity(STATE_IDLE, state);
}

void
udc_ingest_clear_partition_slots(IngestWorker *w)
{
	int			i;

	if (udc_ingest_shared == NULL)
		return;
	SpinLockAcquire(&udc_ingest_shared->mutex);
	for (i = 0; i < UDC_MAX_PARTITIONS; i++)
	{
		if (udc_ingest_shared->partitions[i].worker == w->index)
		{
			udc_ingest_shared->partitions[i].worker = -1;
			udc_ingest_shared->partitions[i].low_watermark = -1;
			udc_ingest_shared->partitions[i].high_watermark = -1;
		}
	}
	SpinLockRelease(&udc_ingest_shared->mutex);
}

void
udc_ingest_publish_partitions(IngestWorker *w)
{
	int			i;

	if (udc_ingest_shared == NULL)
		return;
	udc_ingest_clear_partition_slots(w);
	SpinLockAcquire(&udc_ingest_shared->mutex);
	strlcpy(udc_ingest_shared->topic, udc_kafka_topic, UDC_TOPICLEN);
	for (i = 0; i < w->nparts; i++)
	{
		if (w->parts[i].partition < UDC_MAX_PARTITIONS)
			udc_ingest_shared->partitions[w->parts[i].partition].worker = w->index;
	}
	SpinLockRelease(&udc_ingest_shared->mutex);
}

void
udc_ingest_publish_watermarks(IngestWorker *w, bool ask_broker)
{
	int			i;

	if (udc_ingest_shared == NULL || w->rk == NULL)
		return;
	for (i = 0; i < w->nparts; i++)
	{
		int64_t		lo = -1,
					hi = -1;
		int32		p = w->parts[i].partition;

		if (p >= UDC_MAX_PARTITIONS)
			continue;
		if (ask_broker)
		{
			/* not consuming (paused): ask the partition leader, briefly */
			if (rd_kafka_query_watermark_offsets(w->rk, w->consumer_topic, p, &lo, &hi, 200) != RD_KAFKA_RESP_ERR_NO_ERROR)
				continue;
		}
		else if (rd_kafka_get_watermark_offsets(w->rk, w->consumer_topic, p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		SpinLockAcquire(&udc_ingest_shared->mutex);
		if (lo >= 0)
			udc_ingest_shared->partitions[p].low_watermark = lo;
		if (hi >= 0)
			udc_ingest_shared->partitions[p].high_watermark = hi;
		SpinLockRelease(&udc_ingest_shared->mutex);
	}
}

/* the worker is exiting: its partitions and its slot are free */
void
udc_ingest_status_stopped(IngestWorker *w)
{
	if (udc_ingest_shared == NULL)
		return;
	udc_ingest_clear_partition_slots(w);
	SpinLockAcquire(&udc_ingest_shared->mutex);
	udc_ingest_shared->workers[w->index].pid = 0;
	strlcpy(udc_ingest_shared->workers[w->index].state, "stopped", UDC_STATELEN);
	SpinLockRelease(&udc_ingest_shared->mutex);
}

void
udc_ingest_report_problem(IngestWorker *w, int elevel, const char *fmt,...)
{
	va_list		ap;
	char		msg[UDC_ERRLEN];
	TimestampTz now = GetCurrentTimestamp();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (udc_ingest_shared != NULL)
	{
		UdcWorkerSlot *slot = &udc_ingest_shared->workers[w->index];

		SpinLockAcquire(&udc_ingest_shared->mutex);
		strlcpy(slot->last_error, msg, UDC_ERRLEN);
		slot->last_error_at = now;
		SpinLockRelease(&udc_ingest_shared->mutex);
	}

	if (w->last_error_logged_at == 0 ||
		TimestampDifferenceExceeds(w->last_error_logged_at, now, udc_ingest_error_log_interval * 1000))
	{
		if (w->suppressed_errors > 0)
			ereport(elevel,
					(errmsg("udaconnect ingest worker %d: %s", w->index, msg),
					 errdetail("%d similar message(s) were suppressed in the last %d s.",
							   w->suppressed_errors, udc_ingest_error_log_interval)));
		else
			ereport(elevel,
					(errmsg("udaconnect ingest worker %d: %s", w->index, msg)));
		w->last_error_logged_at = now;
		w->suppressed_errors = 0;
	}
	else
		w->suppressed_errors++;
}
