/*
 * ingest_message.h — decoding and checking one Kafka message of the ingest
 * (private to src/ingest*.c).  See ingest_message.c and docs/ingest.md.
 */
#ifndef UDC_INGEST_MESSAGE_H
#define UDC_INGEST_MESSAGE_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>

#include "datatype/timestamp.h"
#include "utils/memutils.h"

#include "location_rule.h"

/* TimestampTz = Unix microseconds - this */
#define UDC_UNIX_TO_PG_EPOCH_USEC (UDC_PG_EPOCH_UNIX_SECONDS * USECS_PER_SEC)

/* one valid location, decoded */
typedef struct IngestRow
{
	int32		person_id;
	double		latitude;
	double		longitude;
	TimestampTz creation_time;
	int			msg;			/* index into the worker's batch[] */
} IngestRow;

/* a protobuf-c allocator that allocates in cxt (freed with it) */
extern void udc_ingest_pb_allocator(ProtobufCAllocator *alloc, MemoryContext cxt);

/*
 * Decode message m and check it against the location rule of every entry
 * path.  now_usec: Unix microseconds.  Returns NULL when valid (row filled
 * except row->msg), else the reason for ingest_rejects (palloc'd); then
 * row->person_id is the person the payload names (> 0), or 0 for none.
 */
extern char *udc_ingest_validate_message(const rd_kafka_message_t *m, ProtobufCAllocator *alloc,
										 int64 now_usec, IngestRow *row);

#endif							/* UDC_INGEST_MESSAGE_H */
