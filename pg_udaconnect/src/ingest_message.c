/*
 * ingest_message.c — decoding and checking one Kafka message of the ingest:
 * the udaconnect.v1.Location protobuf (protobuf-c, allocating in the
 * worker's per-batch context) and the location rule of every entry path
 * (core/location_rule.h: overflow-checked conversion of the wire time —
 * creation_time, or the Kafka message timestamp when it is absent — person,
 * coordinates, time range, future skew).
 *
 * It runs once per message on the hot path: compares only, no allocation
 * for a valid message beyond protobuf-c's, no catalog access, no error
 * raised for a bad message (the reason is returned, for ingest_rejects).  It
 * must not touch the database or the consumer: the worker does
 * (ingest_worker.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "ingest.h"
#include "ingest_message.h"
#include "location_rule.h"

#include "udaconnect/v1/location.pb-c.h"

/*
 * protobuf-c allocations go to the per-batch memory context.  Out of memory
 * raises an ERROR (the batch is retried): returning NULL would make
 * protobuf-c report a good message as undecodable, and it would be rejected.
 */
static void *
pb_alloc(void *data, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) data, size, MCXT_ALLOC_HUGE);
}

static void
pb_free(void *data, void *ptr)
{
	/* freed with the batch context */
}

void
udc_ingest_pb_allocator(ProtobufCAllocator *alloc, MemoryContext cxt)
{
	alloc->alloc = pb_alloc;
	alloc->free = pb_free;
	alloc->allocator_data = cxt;
}

/* how reasons name the time when it is the Kafka message timestamp */
static const udc_location_fields kafka_time_fields = {
	"person_id", "latitude", "longitude",
	"Kafka message timestamp (creation_time is absent)"
};

char *
udc_ingest_validate_message(const rd_kafka_message_t *m, ProtobufCAllocator *alloc, int64 now_usec, IngestRow *row)
{
	Udaconnect__V1__Location *loc;
	const udc_location_fields *f = &udc_location_v1_fields;
	int64_t		usec;
	bool		time_ok;
	char		time_err[UDC_ERRLEN];
	char		err[UDC_ERRLEN];

	/* a reject names the person when the payload does (erasure finds it) */
	row->person_id = 0;
	if (m->payload == NULL)
		return pstrdup("empty message: no value (tombstone)");
	loc = udaconnect__v1__location__unpack(alloc, m->len, (const uint8_t *) m->payload);
	if (loc == NULL)
		return psprintf("undecodable payload: %zu bytes that are not a udaconnect.v1.Location protobuf", m->len);
	row->person_id = loc->person_id > 0 ? loc->person_id : 0;
	if (loc->creation_time != NULL)
		time_ok = udc_time_from_timestamp(f, loc->creation_time->seconds, loc->creation_time->nanos,
										  &usec, time_err, sizeof(time_err));
	else
	{
		rd_kafka_timestamp_type_t tstype;
		int64		ms = rd_kafka_message_timestamp(m, &tstype);

		f = &kafka_time_fields;
		/* -1 is Kafka's "no timestamp": then the time of ingest */
		time_ok = true;
		usec = now_usec;
		if (tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ms != -1)
			time_ok = udc_time_from_unix_ms(f, ms, &usec, time_err, sizeof(time_err));
	}

	/*
	 * An unusable time is reported after the fields the rule checks first
	 * (person, coordinates), so the reason names the first bad field.
	 */
	if (udc_check_location(f, loc->person_id, loc->latitude, loc->longitude,
						   time_ok ? usec : now_usec, now_usec, udc_ingest_max_future_skew,
						   err, sizeof(err)) != UDC_FIELD_NONE)
		return pstrdup(err);
	if (!time_ok)
		return pstrdup(time_err);
	row->latitude = loc->latitude;
	row->longitude = loc->longitude;
	row->creation_time = (TimestampTz) (usec - UDC_UNIX_TO_PG_EPOCH_USEC);
	return NULL;
}

/*
 * udaconnect.ingest_payload_person(payload bytea) -> integer: the person id a
 * Kafka message's payload names, or NULL when it names none (undecodable, or
 * person_id 0).  Erasure uses it to find the ingest rejects of a person that
 * were stored before ingest_rejects had a person_id column; the decoder is
 * the ingest's own, so "names person N" means the same thing in both.
 */
PG_FUNCTION_INFO_V1(udc_ingest_payload_person);
Datum
udc_ingest_payload_person(PG_FUNCTION_ARGS)
{
	bytea	   *payload = PG_GETARG_BYTEA_PP(0);
	Udaconnect__V1__Location *loc;
	int32		person;

	loc = udaconnect__v1__location__unpack(NULL, VARSIZE_ANY_EXHDR(payload),
										   (const uint8_t *) VARDATA_ANY(payload));
	if (loc == NULL)
		PG_RETURN_NULL();
	person = loc->person_id;
	udaconnect__v1__location__free_unpacked(loc, NULL);
	if (person <= 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(person);
}
