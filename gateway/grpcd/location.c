/*
 * location.c — the location rule as udaconnect-grpcd applies it, and the
 * two unary ingest RPCs: RecordLocation (udaconnect.v1) and the original
 * proto's updateLocation.
 *
 * What this file holds: checking a location with pg_udaconnect's own rule
 * (core/location_rule.c), its messages naming the fields as the request's
 * proto spells them, between the caller's rights to report it (caller.c:
 * for whom, then how far back); decoding a v1 Location (also for
 * stream.c); and a unary call's path: unpack, check, produce to Kafka,
 * answer once the broker's delivery report is in (or UNAVAILABLE at once
 * when the producer queue is full: nothing was produced, so a retry is
 * safe).
 *
 * What it must not do: block (it runs on the worker thread), or allocate per
 * call: requests are unpacked into a stack arena.  This is the path of
 * tens of thousands of calls a second.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"
#include "original/location.pb-c.h"

/* Field names used in validation messages (v1 or original proto). */
typedef udc_location_fields field_names;

static const field_names v1_fields = {"person_id", "latitude", "longitude", "creation_time"};
static const field_names legacy_fields = {"personId", "latitude", "longitude", "createdTime"};

/*
 * The location rule is pg_udaconnect's (core/location_rule.c), the same code
 * the ingest workers and record_location() run, so a point accepted here is
 * never rejected later for its content.  A missing creation_time is allowed:
 * the ingest then takes the Kafka message's timestamp, i.e. about now.
 * Returns true when valid, with the point's time in *time_usec (now_usec
 * when it has none) for caller_may_report_at; otherwise writes a message
 * naming the offending field into err.
 */
static bool
check_location(const field_names *f, const Udaconnect__V1__Location *loc, int64_t now_usec,
			   int64_t *time_usec, char *err, size_t errlen)
{
	const Google__Protobuf__Timestamp *ts = loc->creation_time;

	*time_usec = now_usec;
	if (ts != NULL &&
		!udc_time_from_timestamp(f, ts->seconds, ts->nanos, time_usec, err, errlen))
		return false;
	return udc_check_location(f, loc->person_id, loc->latitude, loc->longitude, *time_usec, now_usec,
							  cfg.max_skew, err, errlen) == UDC_FIELD_NONE;
}

static int64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * INT64_C(1000000) + ts.tv_nsec / 1000;
}

/*
 * Decode + validate a v1 Location from a slice, reported by `who`; NULL +
 * err on failure.  Who may report for whom comes first, as in the SQL API
 * (api_create_location), then the content, then how old an attendee's
 * point may be (caller_may_report_at).  The result is freed with
 * udaconnect__v1__location__free_unpacked(loc, al).
 */
Udaconnect__V1__Location *
decode_v1(grpc_slice s, const caller *who, ProtobufCAllocator *al, char *err, size_t errlen)
{
	Udaconnect__V1__Location *loc;
	int64_t		now = now_usec();
	int64_t		t;

	loc = udaconnect__v1__location__unpack(al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	if (loc == NULL)
	{
		snprintf(err, errlen, "the request is not a valid udaconnect.v1.Location message");
		return NULL;
	}
	if (!caller_may_report(who, loc->person_id, err, errlen) ||
		!check_location(&v1_fields, loc, now, &t, err, errlen) ||
		!caller_may_report_at(who, t, now, err, errlen))
	{
		udaconnect__v1__location__free_unpacked(loc, al);
		return NULL;
	}
	return loc;
}

/* the answer of a unary call whose location the broker did not acknowledge */
static void
unary_unavailable(call *c)
{
	char		msg[512];

	snprintf(msg, sizeof(msg), "the Kafka broker did not acknowledge the location (%s); %s",
			 atomic_load(&c->err_set) ? c->kafka_err : "unknown error",
			 atomic_load(&c->maybe_stored) ? "it was not accepted, but it may still be stored"
			 : "it was not stored");
	call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
}

/* c->complete of a unary call: its delivery report is in */
static void
unary_complete(call *c)
{
	if (atomic_load(&c->failed))
		unary_unavailable(c);
	else if (c->kind == M_LEGACY)
	{
		Status		s = STATUS__INIT;

		s.currentstate = "Received";
		call_finish(c, GRPC_STATUS_OK, NULL, &s.base);
	}
	else
	{
		Udaconnect__V1__RecordLocationResponse r = UDACONNECT__V1__RECORD_LOCATION_RESPONSE__INIT;

		r.partition = c->partition;
		r.offset = c->offset;
		call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
	}
}

static void
produce_unary(call *c, const Udaconnect__V1__Location *loc)
{
	rd_kafka_resp_err_t err;

	c->complete = unary_complete;
	sweep_add(c);
	atomic_store(&c->half_closed, 1);
	err = produce_location(c, loc);
	if (err)
	{
		if (atomic_exchange(&c->answered, 1) == 0)
		{
			char		msg[256];

			sweep_remove(c);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				snprintf(msg, sizeof(msg), "the Kafka producer queue is full (the broker is slow or unreachable);"
						 " the location was not stored");
			else
				snprintf(msg, sizeof(msg), "the Kafka producer refused the location: %s; it was not stored",
						 rd_kafka_err2str(err));
			call_finish(c, GRPC_STATUS_UNAVAILABLE, msg, NULL);
		}
	}
}

/*
 * The path of both unary ingest methods once the request is a v1 Location:
 * check that the caller may report it (PERMISSION_DENIED: for whom, and an
 * attendee's point how old) and its content (INVALID_ARGUMENT),
 * naming the fields as the request's proto does (f), and produce it.
 */
static void
record_location(call *c, const Udaconnect__V1__Location *loc, const field_names *f)
{
	char		err[256];
	int64_t		now = now_usec();
	int64_t		t;

	if (!caller_may_report(&c->who, loc->person_id, err, sizeof(err)))
		call_fail(c, GRPC_STATUS_PERMISSION_DENIED, "%s", err);
	else if (!check_location(f, loc, now, &t, err, sizeof(err)))
		call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	else if (!caller_may_report_at(&c->who, t, now, err, sizeof(err)))
		call_fail(c, GRPC_STATUS_PERMISSION_DENIED, "%s", err);
	else
		produce_unary(c, loc);
}

/* RecordLocation: udaconnect.v1.Location -> RecordLocationResponse */
void
handle_record(call *c, grpc_byte_buffer *payload)
{
	stack_arena arena = {0};
	ProtobufCAllocator al = STACK_ALLOCATOR(arena);
	Udaconnect__V1__Location *loc;

	loc = (Udaconnect__V1__Location *)
		request_unpack(c, payload, &udaconnect__v1__location__descriptor, &al, false);
	if (loc == NULL)
		return;
	record_location(c, loc, &v1_fields);
	udaconnect__v1__location__free_unpacked(loc, &al);
}

/*
 * updateLocation, the original proto: its Location (integer degrees) made a
 * v1 Location, then RecordLocation's path.  What stays the original's: the
 * field names in messages (personId, createdTime) and the answer,
 * Status{currentState: "Received"} (unary_complete).
 */
void
handle_legacy(call *c, grpc_byte_buffer *payload)
{
	stack_arena arena = {0};
	ProtobufCAllocator al = STACK_ALLOCATOR(arena);
	Location   *old;
	Udaconnect__V1__Location loc = UDACONNECT__V1__LOCATION__INIT;

	old = (Location *) request_unpack(c, payload, &location__descriptor, &al, false);
	if (old == NULL)
		return;
	loc.person_id = old->personid;
	loc.latitude = old->latitude;
	loc.longitude = old->longitude;
	loc.creation_time = old->createdtime;
	record_location(c, &loc, &legacy_fields);
	location__free_unpacked(old, &al);
}
