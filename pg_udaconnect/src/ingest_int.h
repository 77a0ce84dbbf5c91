/*
 * ingest_int.h — the Kafka ingest worker's private interface (only
 * src/ingest_*.c include it).
 *
 * It holds the one state of a worker, IngestWorker (ingest_worker.c owns
 * it and passes it to every function), and a section per file of the
 * worker, lowest layer first: a file calls only the sections above its own,
 * so calls between the files run one way (ingest_worker.c on top).  The
 * per-message helpers of the batch's hot loop are static inline here, so
 * splitting the files added no call per row.  See docs/design.md, "Map of
 * the code: the ingest", and docs/ingest.md.
 */
#ifndef UDC_INGEST_INT_H
#define UDC_INGEST_INT_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "partitioning/partdefs.h"
#include "utils/memutils.h"
#include "utils/relcache.h"

#include "ingest.h"
#include "ingest_message.h"

/* a partition assigned to this worker */
typedef struct PartState
{
	int32		partition;
	int64		next_offset;	/* next offset we expect; -1 = unknown */
} PartState;

/* everything one ingest worker keeps between batches */
typedef struct IngestWorker
{
	int			index;			/* worker number (bgw_main_arg) */

	/* the consumer, and the settings it was made with */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *rkq;
	char	   *consumer_brokers;
	char	   *consumer_topic;
	char	   *consumer_group;
	char	   *consumer_options;
	bool		config_broken;	/* bad settings: wait for a reload */

	/* the assignment */
	PartState  *parts;			/* partitions assigned to this worker */
	int			nparts;
	int			topic_partitions;	/* partition count of the topic; -1 */
	bool		assigned;
	bool		need_reassign;
	bool		paused;
	TimestampTz next_metadata_at;
	int			backoff_ms;

	/* the messages of the batch in progress */
	rd_kafka_message_t **batch;
	int			batch_alloc;
	int			batch_held;		/* messages in batch[] not yet destroyed */
	MemoryContext batch_cxt;
	int			insert_path;	/* last logged: 1 direct, 0 COPY, -1 none */

	/* rate-limited error logging */
	TimestampTz last_error_logged_at;
	int			suppressed_errors;
} IngestWorker;

/* ------------------------------------------------------------------------
 * ingest_status.c: this worker's status in shared memory and the log
 * ------------------------------------------------------------------------ */
extern void udc_ingest_set_state(IngestWorker *w, const char *state);
extern void udc_ingest_clear_partition_slots(IngestWorker *w);
extern void udc_ingest_publish_partitions(IngestWorker *w);
extern void udc_ingest_publish_watermarks(IngestWorker *w, bool ask_broker);
extern void udc_ingest_status_stopped(IngestWorker *w);

/*
 * Record a problem: always in shared memory (ingest_status.last_error), in
 * the server log at most once per udaconnect.ingest_error_log_interval.
 */
extern void udc_ingest_report_problem(IngestWorker *w, int elevel, const char *fmt,...) pg_attribute_printf(3, 4);

/* ------------------------------------------------------------------------
 * ingest_offsets.c: the transaction frame, udaconnect.ingest_control and
 * udaconnect.ingest_offset
 * ------------------------------------------------------------------------ */

/* a batch's view of one partition */
typedef struct BatchPart
{
	int32		partition;
	int64		stored;			/* offset stored before this batch, -1 none,
								 * -2 not read yet */
	int64		next;			/* offset after the last message consumed */
	int64		taken;			/* new messages: become rows or rejects, or
								 * are dropped (erased person) */
	int64		rejects;
	int64		erased;			/* messages of erased persons dropped */
	bool		any;			/* any new message of this partition */
} BatchPart;

/* the entry of partition in bp[0..*nbp), added if new (once per message) */
static inline BatchPart *
udc_ingest_batch_part(BatchPart *bp, int *nbp, int32 partition)
{
	int			i;

	for (i = 0; i < *nbp; i++)
		if (bp[i].partition == partition)
			return &bp[i];
	bp[*nbp].partition = partition;
	bp[*nbp].stored = -2;
	bp[*nbp].next = -1;
	bp[*nbp].taken = 0;
	bp[*nbp].rejects = 0;
	bp[*nbp].erased = 0;
	bp[*nbp].any = false;
	return &bp[(*nbp)++];
}

extern void udc_ingest_begin_tx(const char *activity);
extern SPIPlanPtr udc_ingest_kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);
extern void udc_ingest_end_tx(void);
extern bool udc_ingest_extension_ready(void);
extern bool udc_ingest_read_paused(bool lock);
extern int64 udc_ingest_stored_offset(IngestWorker *w, int32 partition, bool lock);
extern bool udc_ingest_load_offsets(IngestWorker *w);
extern void udc_ingest_reset_offset(IngestWorker *w, int32 partition, int64 lo, int64 hi, const char *why);
extern void udc_ingest_store_offsets(IngestWorker *w, BatchPart *bp, int nbp);

/* ------------------------------------------------------------------------
 * ingest_copy.c: the COPY fallback
 * ------------------------------------------------------------------------ */
extern void udc_ingest_copy_init(void);
extern uint64 udc_ingest_copy_rows(Relation rel, IngestRow *rows, int n);

/* ------------------------------------------------------------------------
 * ingest_route.c: the rows of a batch by partition of a partitioned table
 * ------------------------------------------------------------------------ */

/* a batch's rows grouped by the leaf partition that takes them */
typedef struct RoutedRows
{
	int			ngroups;
	Oid		   *oids;			/* [group]: the partition */
	int		   *start;			/* [group]: its first entry in rows[];
								 * start[ngroups] is the batch's row count */
	int		   *rows;			/* row numbers, group by group, each group in
								 * batch order */
} RoutedRows;

/*
 * false: not a partitioning it routes (use COPY); raises tuple routing's
 * error for a row no partition takes
 */
extern bool udc_ingest_route(Relation rel, PartitionDesc pd, AttrNumber att,
							 const IngestRow *rows, int n, RoutedRows *out);

/* ------------------------------------------------------------------------
 * ingest_direct.c: the direct multi-insert path
 * ------------------------------------------------------------------------ */

/* rows inserted, or -1 if the table is not one this path handles */
extern int64 udc_ingest_insert_direct(Relation rel, IngestRow *rows, int n);

/* ------------------------------------------------------------------------
 * ingest_consumer.c: librdkafka, the assignment, the messages held
 * ------------------------------------------------------------------------ */
extern void udc_ingest_drain_kafka_log(IngestWorker *w);
extern bool udc_ingest_consumer_create(IngestWorker *w);
extern void udc_ingest_consumer_destroy(IngestWorker *w);
extern bool udc_ingest_consumer_settings_changed(IngestWorker *w);
extern bool udc_ingest_refresh_assignment(IngestWorker *w);
extern void udc_ingest_unassign(IngestWorker *w);
extern int	udc_ingest_collect_batch(IngestWorker *w);
extern void udc_ingest_release_batch(IngestWorker *w);

/* ------------------------------------------------------------------------
 * ingest_batch.c: one transaction per batch
 * ------------------------------------------------------------------------ */

/* false if the batch was not applied (paused, no extension): re-seek */
extern bool udc_ingest_process_batch(IngestWorker *w, int n);

#endif							/* UDC_INGEST_INT_H */
