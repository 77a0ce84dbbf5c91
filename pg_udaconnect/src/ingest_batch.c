/*
 * ingest_batch.c — one batch of the ingest worker in one transaction: lock
 * the batch's partitions' offset rows, skip what is already ingested,
 * decode and check each message (ingest_message.c), check that its person
 * exists (and drop the messages of erased persons, rows and rejects alike:
 * check_persons), insert the valid rows (ingest_direct.c, partition by
 * partition if the table is partitioned, else ingest_copy.c) in
 * subtransactions that split a failing insert down to the rows at fault
 * (ingest_errors.c decides whose fault), write the rejects, store the next
 * offsets and counts (ingest_offsets.c), commit.
 *
 * It must not talk to Kafka (the messages are w->batch[], held and released
 * by ingest_consumer.c), must not catch an error that is not a row's fault
 * (it aborts the batch; ingest_worker.c retries it from the stored offsets)
 * and must not commit in any other place than the end of the batch:
 * exactly-once rests on rows, rejects and offsets committing together.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "ingest_int.h"
#include "ingest_errors.h"

typedef struct IngestReject
{
	int			msg;			/* index into w->batch[] */
	int32		person;			/* the person the payload names; 0: none */
	char	   *reason;
} IngestReject;

/* a batch in progress (its arrays live in w->batch_cxt) */
typedef struct Batch
{
	IngestRow  *rows;
	int			nrows;
	IngestReject *rejects;
	int			nrejects;
	BatchPart  *bp;				/* the partitions of the batch */
	int			nbp;
	uint64		inserted;
	int			erased;			/* messages of erased persons dropped */
} Batch;

/* Log which insert path the batches take, once per change of path. */
static void
note_insert_path(IngestWorker *w, bool direct)
{
	if (w->insert_path == (int) direct)
		return;
	w->insert_path = (int) direct;
	if (direct)
		ereport(LOG,
				(errmsg("udaconnect ingest worker %d: rows go into udaconnect.location through the direct insert path",
						w->index)));
	else
		ereport(LOG,
				(errmsg("udaconnect ingest worker %d: rows go into udaconnect.location through COPY",
						w->index),
				 errdetail("The table or a partition written has a trigger, rule, policy, partitioning, index or column the direct insert path does not reproduce (docs/ingest.md).")));
}

/*
 * Insert rows[0..n) in a subtransaction; if that fails because of the rows'
 * content (udc_ingest_error_blames_row), split in halves and retry, so that
 * only the rows that fail on their own are rejected.  Any other error
 * (deadlock, lock timeout, out of memory, cancel...) is re-thrown: the whole
 * batch is aborted and retried (ingest_worker.c), never rejected.
 */
static void
insert_resilient(IngestWorker *w, Relation rel, IngestRow *rows, int n, Batch *b)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile failure = NULL;

	if (n <= 0)
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		int64		c = udc_ingest_insert_direct(rel, rows, n);

		note_insert_path(w, c >= 0);
		if (c < 0)
			c = (int64) udc_ingest_copy_rows(rel, rows, n);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		b->inserted += c;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (!udc_ingest_error_blames_row(edata->sqlerrcode))
			ReThrowError(edata);
		failure = psprintf("insert failed: %s (SQLSTATE %s)", edata->message,
						   unpack_sql_state(edata->sqlerrcode));
		FreeErrorData(edata);
	}
	PG_END_TRY();

	if (failure == NULL)
		return;
	if (n == 1)
	{
		b->rejects[b->nrejects].msg = rows[0].msg;
		b->rejects[b->nrejects].person = rows[0].person_id;
		b->rejects[b->nrejects].reason = failure;
		b->nrejects++;
		return;
	}
	insert_resilient(w, rel, rows, n / 2, b);
	insert_resilient(w, rel, rows + n / 2, n - n / 2, b);
}

/* Kafka keys are bytes: keep them readable when they are text */
static Datum
key_datum(const rd_kafka_message_t *m, bool *isnull)
{
	const char *k = (const char *) m->key;
	size_t		len = m->key_len;

	*isnull = (k == NULL);
	if (k == NULL)
		return (Datum) 0;
	if (len <= 1024 && memchr(k, '\0', len) == NULL &&
		pg_verify_mbstr(GetDatabaseEncoding(), k, (int) len, true))
		return PointerGetDatum(cstring_to_text_with_len(k, (int) len));
	else
	{
		StringInfoData s;
		size_t		i;

		initStringInfo(&s);
		appendStringInfoString(&s, "\\x");
		for (i = 0; i < len && i < 1024; i++)
			appendStringInfo(&s, "%02x", (unsigned char) k[i]);
		if (len > 1024)
			appendStringInfoString(&s, "...");
		return PointerGetDatum(cstring_to_text(s.data));
	}
}

static void
insert_rejects(IngestWorker *w, IngestReject *rejects, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[7] = {TEXTOID, INT4OID, INT8OID, TEXTOID, BYTEAOID, TEXTOID, INT4OID};
	int			i;

	if (n == 0)
		return;
	udc_ingest_kept_plan(&plan, "INSERT INTO udaconnect.ingest_rejects (topic, \"partition\", \"offset\", key, payload, reason, person_id) "
						 "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
	for (i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = w->batch[rejects[i].msg];
		Datum		values[7];
		char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
		bool		isnull;
		int			rc;

		values[0] = CStringGetTextDatum(w->consumer_topic);
		values[1] = Int32GetDatum(m->partition);
		values[2] = Int64GetDatum(m->offset);
		values[3] = key_datum(m, &isnull);
		if (isnull)
			nulls[3] = 'n';
		if (m->payload == NULL)
			nulls[4] = 'n';
		else
		{
			bytea	   *b = palloc(VARHDRSZ + m->len);

			SET_VARSIZE(b, VARHDRSZ + m->len);
			memcpy(VARDATA(b), m->payload, m->len);
			values[4] = PointerGetDatum(b);
		}
		values[5] = CStringGetTextDatum(rejects[i].reason);
		values[6] = Int32GetDatum(rejects[i].person);
		if (rejects[i].person <= 0)
			nulls[6] = 'n';
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "inserting into udaconnect.ingest_rejects failed: %s", SPI_result_code_string(rc));
	}
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

static inline bool
id_in(int32 id, const int32 *set, int n)
{
	return n > 0 && bsearch(&id, set, n, sizeof(int32), cmp_int32) != NULL;
}

/*
 * Run a kept plan that joins the int4[] $1, ids[0..nids), to a table by id,
 * and return the ids of its rows, sorted, in *found (*nfound of them).
 *
 * Not "WHERE id = ANY ($1)": its generic plan, when the table was small as
 * it was planned, is a scan testing each row against the whole array, one
 * element after another (a quarter of a worker's time at 2,300 persons and
 * batches of ~2,000 of them); a join is a hash or an index probe per id
 * whatever the plan.
 */
static void
query_ids(SPIPlanPtr *plan, const char *sql, const int32 *ids, int nids,
		  int32 **found, int *nfound)
{
	Datum	   *elems = palloc(sizeof(Datum) * nids);
	Oid			types[1] = {INT4ARRAYOID};
	Datum		values[1];
	int			rc;
	int			i;

	for (i = 0; i < nids; i++)
		elems[i] = Int32GetDatum(ids[i]);
	values[0] = PointerGetDatum(construct_array(elems, nids, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	udc_ingest_kept_plan(plan, sql, 1, types);
	rc = SPI_execute_plan(*plan, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "\"%s\" failed: %s", sql, SPI_result_code_string(rc));
	*found = palloc(sizeof(int32) * (SPI_processed + 1));
	*nfound = 0;
	for (i = 0; i < (int) SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			(*found)[(*nfound)++] = DatumGetInt32(d);
	}
	qsort(*found, *nfound, sizeof(int32), cmp_int32);
}

/*
 * The distinct person ids of rows[] (sorted by person_id, insert_rows) and
 * of the rejects that name one, sorted.  Rejects are few: the normal batch
 * pays nothing for them.
 */
static int32 *
batch_person_ids(IngestRow *rows, int n, IngestReject *rejects, int nrejects, int *nids)
{
	int32	   *ids = palloc(sizeof(int32) * (n + nrejects + 1));
	int			k = 0;
	int			i;
	bool		more = false;

	for (i = 0; i < n; i++)
		if (k == 0 || ids[k - 1] != rows[i].person_id)
			ids[k++] = rows[i].person_id;
	for (i = 0; i < nrejects; i++)
		if (rejects[i].person > 0)
		{
			ids[k++] = rejects[i].person;
			more = true;
		}
	if (more)
	{
		int			j = 0;

		qsort(ids, k, sizeof(int32), cmp_int32);
		for (i = 0; i < k; i++)
			if (j == 0 || ids[j - 1] != ids[i])
				ids[j++] = ids[i];
		k = j;
	}
	*nids = k;
	return ids;
}

/* a message of an erased person: counted, never stored */
static inline void
drop_erased(IngestWorker *w, Batch *b, int msg)
{
	udc_ingest_batch_part(b->bp, &b->nbp, w->batch[msg]->partition)->erased++;
	b->erased++;
}

/*
 * The person check of a batch, one query in the normal case:
 *
 * 1. Lock FOR KEY SHARE every person that a row or a reject names: a
 *    concurrent forget_person() (FOR UPDATE) then waits for this batch and
 *    deletes its rows and its rejects after it commits; a forget_person()
 *    that got there first makes this query wait, and then find the person
 *    gone (READ COMMITTED) or fail to serialize (the batch is retried).
 * 2. Only for the ids not found (a rare case): which were erased?  A query
 *    of its own, after 1, so its snapshot sees an erasure that 1 waited for.
 * 3. Rows of existing persons stay; rows and rejects of erased persons are
 *    dropped (counted in erased_dropped: their payload is personal data);
 *    rows of other unknown persons become rejects.
 *
 * Compacts b->rows and b->rejects.  See docs/ingest.md, "Erasure".
 */
static void
check_persons(IngestWorker *w, Batch *b)
{
	static SPIPlanPtr person_plan = NULL;
	static SPIPlanPtr erased_plan = NULL;
	int32	   *ids;
	int32	   *found;
	int32	   *missing;
	int32	   *erased = NULL;
	int			nids,
				nfound,
				nmissing = 0,
				nerased = 0;
	int			i,
				kept;
	int			nold = b->nrejects;

	if (b->nrows == 0 && b->nrejects == 0)
		return;
	ids = batch_person_ids(b->rows, b->nrows, b->rejects, b->nrejects, &nids);
	if (nids == 0)
		return;
	query_ids(&person_plan, "SELECT p.id FROM unnest($1) u(id) JOIN udaconnect.person p ON p.id = u.id FOR KEY SHARE OF p",
			  ids, nids, &found, &nfound);
	if (nfound < nids)
	{
		missing = palloc(sizeof(int32) * nids);
		for (i = 0; i < nids; i++)
			if (!id_in(ids[i], found, nfound))
				missing[nmissing++] = ids[i];
		query_ids(&erased_plan, "SELECT e.id FROM unnest($1) u(id) JOIN udaconnect.erased_person e ON e.id = u.id",
				  missing, nmissing, &erased, &nerased);
	}

	/* the validation's rejects first: new ones are appended below */
	kept = 0;
	for (i = 0; i < nold; i++)
	{
		if (b->rejects[i].person > 0 && id_in(b->rejects[i].person, erased, nerased))
			drop_erased(w, b, b->rejects[i].msg);
		else
			b->rejects[kept++] = b->rejects[i];
	}
	b->nrejects = kept;

	kept = 0;
	for (i = 0; i < b->nrows; i++)
	{
		IngestRow  *r = &b->rows[i];

		if (id_in(r->person_id, found, nfound))
			b->rows[kept++] = *r;
		else if (id_in(r->person_id, erased, nerased))
			drop_erased(w, b, r->msg);
		else
		{
			b->rejects[b->nrejects].msg = r->msg;
			b->rejects[b->nrejects].person = r->person_id;
			b->rejects[b->nrejects].reason = psprintf("person %d does not exist", r->person_id);
			b->nrejects++;
		}
	}
	b->nrows = kept;
}

static int
cmp_row(const void *a, const void *b)
{
	const IngestRow *x = (const IngestRow *) a;
	const IngestRow *y = (const IngestRow *) b;

	if (x->person_id != y->person_id)
		return x->person_id < y->person_id ? -1 : 1;
	if (x->creation_time != y->creation_time)
		return x->creation_time < y->creation_time ? -1 : 1;
	return (x->msg > y->msg) - (x->msg < y->msg);
}


/*
 * Sort each message of w->batch[0..n) into b: skipped when already ingested
 * (re-delivery after a re-seek), else a row or a reject.  The first message
 * of a partition locks its offset row (a concurrent consumer waits).
 */
static void
validate_messages(IngestWorker *w, Batch *b, int n, MemoryContext txcxt)
{
	ProtobufCAllocator alloc;
	int64		now_usec = GetCurrentTimestamp() + UDC_UNIX_TO_PG_EPOCH_USEC;
	IngestRow  *rows = b->rows;
	IngestReject *rejects = b->rejects;
	int			nrows = 0;
	int			nrejects = 0;
	int			nbp = 0;
	int			i;

	/* counts in locals (registers) in this loop, as before the split */
	udc_ingest_pb_allocator(&alloc, w->batch_cxt);
	for (i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = w->batch[i];
		BatchPart  *p = udc_ingest_batch_part(b->bp, &nbp, m->partition);
		char	   *reason;

		if (p->stored == -2)
		{
			MemoryContextSwitchTo(txcxt);
			p->stored = udc_ingest_stored_offset(w, m->partition, true);
			MemoryContextSwitchTo(w->batch_cxt);
			p->next = p->stored;
		}
		if (p->stored >= 0 && m->offset < p->stored)
			continue;
		if (m->offset + 1 > p->next)
			p->next = m->offset + 1;
		p->any = true;
		p->taken++;
		reason = udc_ingest_validate_message(m, &alloc, now_usec, &rows[nrows]);
		if (reason == NULL)
			rows[nrows++].msg = i;
		else
		{
			rejects[nrejects].msg = i;
			rejects[nrejects].person = rows[nrows].person_id;
			rejects[nrejects].reason = reason;
			nrejects++;
		}
	}
	b->nrows = nrows;
	b->nrejects = nrejects;
	b->nbp = nbp;
}

/* the person check, then the rows of existing persons into the table */
static void
insert_rows(IngestWorker *w, Batch *b)
{
	Oid			locrel;
	Relation	rel;

	/*
	 * Rows in (person_id, creation_time) order: the heap keeps a person's
	 * rows of a batch together, and check_persons() gets its ids sorted.
	 */
	qsort(b->rows, b->nrows, sizeof(IngestRow), cmp_row);
	check_persons(w, b);
	if (b->nrows == 0)
		return;
	locrel = get_relname_relid("location", get_namespace_oid("udaconnect", false));
	if (!OidIsValid(locrel))
		elog(ERROR, "table udaconnect.location does not exist");
	rel = table_open(locrel, RowExclusiveLock);
	insert_resilient(w, rel, b->rows, b->nrows, b);
	table_close(rel, NoLock);
}

/*
 * Ingest w->batch[0..n) in one transaction.  Returns false if the batch was
 * not applied (paused, extension missing): the caller must re-seek.
 */
bool
udc_ingest_process_batch(IngestWorker *w, int n)
{
	MemoryContext oldcxt;
	Batch		b = {0};
	int			i;
	bool		applied = true;

	udc_ingest_begin_tx("udaconnect ingest: batch");
	oldcxt = MemoryContextSwitchTo(w->batch_cxt);
	MemoryContextReset(w->batch_cxt);

	if (!udc_ingest_extension_ready())
	{
		applied = false;
		goto done;
	}
	if (udc_ingest_read_paused(true))
	{
		w->paused = true;
		applied = false;
		goto done;
	}

	b.rows = palloc(sizeof(IngestRow) * n);
	b.rejects = palloc(sizeof(IngestReject) * n);
	b.bp = palloc(sizeof(BatchPart) * n);
	validate_messages(w, &b, n, oldcxt);
	insert_rows(w, &b);
	MemoryContextSwitchTo(oldcxt);
	insert_rejects(w, b.rejects, b.nrejects);

	/* per-partition counts, next offsets */
	for (i = 0; i < b.nrejects; i++)
		udc_ingest_batch_part(b.bp, &b.nbp, w->batch[b.rejects[i].msg]->partition)->rejects++;
	udc_ingest_store_offsets(w, b.bp, b.nbp);

done:
	MemoryContextSwitchTo(oldcxt);
	udc_ingest_end_tx();
	if (!applied)
		udc_ingest_set_state(w, w->paused ? "paused" : "waiting for CREATE EXTENSION");
	MemoryContextReset(w->batch_cxt);
	if (applied && (b.nrejects > 0 || b.erased > 0))
		ereport(DEBUG1,
				(errmsg_internal("udaconnect ingest worker %d: batch of %d messages: %llu rows, %d rejects, %d of erased persons dropped",
								 w->index, n, (unsigned long long) b.inserted, b.nrejects, b.erased)));
	return applied;
}
