/*
 * ingest_copy.c — the ingest's COPY fallback: a batch's valid rows as a
 * binary COPY image, fed to PostgreSQL's own COPY FROM machinery (triggers,
 * rules, policies, partitions and all) for a udaconnect.location that the
 * direct insert path (ingest_direct.c) does not reproduce.
 *
 * It must not decide which path a batch takes, catch errors or reject rows
 * (ingest_batch.c does), nor call any other file of the worker.  Its only
 * state is the image being read: CopyFrom's data source callback takes no
 * argument, so the image is this file's own, reused from batch to batch.
 */
#include "postgres.h"

#include "commands/copy.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "port/pg_bswap.h"
#include "storage/lockdefs.h"

#include "ingest_int.h"

/* COPY source: the binary COPY image in copy_src */
static StringInfoData copy_src;
static int	copy_pos;

/* once, at worker start: the image's buffer lives as long as the worker */
void
udc_ingest_copy_init(void)
{
	initStringInfo(&copy_src);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		copy_src.data = repalloc(copy_src.data, 1024);
		copy_src.maxlen = 1024;
		MemoryContextSwitchTo(old);
	}
}

static int
copy_read_cb(void *outbuf, int minread, int maxread)
{
	int			n = Min(maxread, copy_src.len - copy_pos);

	if (n <= 0)
		return 0;
	memcpy(outbuf, copy_src.data + copy_pos, n);
	copy_pos += n;
	return n;
}

static inline void
put_int16(StringInfo s, int16 v)
{
	uint16		n = pg_hton16((uint16) v);

	appendBinaryStringInfoNT(s, (char *) &n, 2);
}

static inline void
put_int32(StringInfo s, int32 v)
{
	uint32		n = pg_hton32((uint32) v);

	appendBinaryStringInfoNT(s, (char *) &n, 4);
}

static inline void
put_int64(StringInfo s, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	appendBinaryStringInfoNT(s, (char *) &n, 8);
}

/* little-endian EWKB point with SRID 4326 (x = longitude, y = latitude) */
static inline void
put_ewkb_point(StringInfo s, double lon, double lat)
{
	static const unsigned char head[9] = {0x01, 0x01, 0x00, 0x00, 0x20, 0xE6, 0x10, 0x00, 0x00};
	double		xy[2];

	appendBinaryStringInfoNT(s, (const char *) head, 9);
	xy[0] = lon;
	xy[1] = lat;
#ifdef WORDS_BIGENDIAN
#error "EWKB writer assumes a little-endian machine"
#endif
	appendBinaryStringInfoNT(s, (const char *) xy, 16);
}

static void
build_copy_image(IngestRow *rows, int n)
{
	static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
	int			i;

	resetStringInfo(&copy_src);
	enlargeStringInfo(&copy_src, 19 + n * 55 + 2);
	appendBinaryStringInfo(&copy_src, sig, 11);
	put_int32(&copy_src, 0);	/* flags */
	put_int32(&copy_src, 0);	/* header extension */
	for (i = 0; i < n; i++)
	{
		enlargeStringInfo(&copy_src, 64);
		put_int16(&copy_src, 3);
		put_int32(&copy_src, 4);
		put_int32(&copy_src, rows[i].person_id);
		put_int32(&copy_src, 25);
		put_ewkb_point(&copy_src, rows[i].longitude, rows[i].latitude);
		put_int32(&copy_src, 8);
		put_int64(&copy_src, rows[i].creation_time);
	}
	put_int16(&copy_src, -1);
	copy_pos = 0;
}

/* COPY rows into udaconnect.location (may raise an error) */
uint64
udc_ingest_copy_rows(Relation rel, IngestRow *rows, int n)
{
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	CopyFromState cstate;
	List	   *attnames;
	List	   *options;
	uint64		processed;

	build_copy_image(rows, n);
	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	nsitem->p_rte->requiredPerms = ACL_INSERT;
	attnames = list_make3(makeString("person_id"), makeString("coordinate"), makeString("creation_time"));
	options = list_make1(makeDefElem("format", (Node *) makeString("binary"), -1));
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_read_cb, attnames, options);
	processed = CopyFrom(cstate);
	EndCopyFrom(cstate);
	free_parsestate(pstate);
	return processed;
}
