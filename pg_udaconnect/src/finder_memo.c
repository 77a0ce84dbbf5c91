/*
 * finder_memo.c — what this backend has already verified about the
 * partitions of udaconnect.location: the OIDs of each one's two indexes and
 * the attribute numbers of its columns, so that a search over many
 * partitions (a season of day partitions, as the REST connection route
 * reads without a time window) does not look each index up by name and
 * check its layout again on every call.  finder_index.c checks a partition
 * once, the slow way, and remembers it here.
 *
 * An entry is forgotten when the relcache is told that the partition or
 * either of its indexes changed (DDL of any kind, a rename, ANALYZE or
 * VACUUM updating pg_class, the state changes of CREATE or DROP INDEX
 * CONCURRENTLY, the undoing of an aborted transaction's catalog changes)
 * and when the whole relcache is reset.  Every invalidation this backend
 * processes moves the generation on, whatever it names: finder_index.c
 * opens the remembered indexes by OID, which takes their locks and so
 * processes pending invalidations, and uses them only if the generation
 * has not moved meanwhile; and it remembers a partition only if the
 * generation did not move while it opened and checked the indexes (an
 * invalidation of the first index, processed while the second is locked,
 * would otherwise find no entry to remove and be lost to the memo).
 *
 * This file must not open relations or judge a layout (finder_index.c
 * does); it holds OIDs and numbers only.
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"

#include "finder_int.h"

static HTAB *memo;
static bool registered;
static uint64 generation;

/* Forget every entry that names relid (InvalidOid: all of them). */
static void
memo_inval(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	FinderPartMemo *m;

	generation++;
	if (memo == NULL)
		return;
	hash_seq_init(&seq, memo);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		if (OidIsValid(relid) && m->part != relid &&
			m->person_time != relid && m->cell_time != relid)
			continue;
		/* removing the entry just returned is allowed during a scan */
		hash_search(memo, &m->part, HASH_REMOVE, NULL);
	}
}

/* once per backend, before the first generation is read */
static void
memo_register(void)
{
	if (registered)
		return;
	CacheRegisterRelcacheCallback(memo_inval, (Datum) 0);
	registered = true;
}

static void
memo_init(void)
{
	HASHCTL		ctl;

	memo_register();
	if (memo != NULL)
		return;
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(FinderPartMemo);
	memo = hash_create("udaconnect finder partitions", 64, &ctl, HASH_ELEM | HASH_BLOBS);
}

bool
finder_memo_get(Oid part, FinderPartMemo *out)
{
	FinderPartMemo *m;

	if (memo == NULL)
		return false;
	m = hash_search(memo, &part, HASH_FIND, NULL);
	if (m == NULL)
		return false;
	if (out)
		*out = *m;
	return true;
}

void
finder_memo_put(const FinderPartMemo *m)
{
	FinderPartMemo *e;

	memo_init();
	e = hash_search(memo, &m->part, HASH_ENTER, NULL);
	*e = *m;
}

uint64
finder_memo_generation(void)
{
	memo_register();
	return generation;
}
