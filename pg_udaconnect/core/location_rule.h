/*
 * location_rule.h — the one rule a reported location must satisfy, whatever
 * path it comes by: the SQL API (record_location, and so REST), gRPC
 * (udaconnect-grpcd, which links this file) and the Kafka ingest.  It holds
 * the checks, the range of accepted times and the conversions of wire time
 * values into Unix microseconds, all overflow-checked.  It must not include
 * PostgreSQL headers (grpcd and the unit tests use it without them) and must
 * not decide how a path reports a failure: it returns false and a message
 * naming the field, and the caller maps that onto its own error channel
 * (SQLSTATE, gRPC status, ingest_rejects reason).
 *
 * Coordinates follow geodesy.h (udc_check_coordinates).  Times are Unix
 * microseconds (UTC); the accepted range is google.protobuf.Timestamp's
 * documented one, 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z, which
 * lies well inside PostgreSQL's timestamptz range, and a time may lie at
 * most max_future_skew seconds after now.
 */
#ifndef UDC_LOCATION_RULE_H
#define UDC_LOCATION_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* google.protobuf.Timestamp's range, in Unix seconds */
#define UDC_TIME_MIN_SECONDS INT64_C(-62135596800)	/* 0001-01-01T00:00:00Z */
#define UDC_TIME_MAX_SECONDS INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */

/* default and largest max_future_skew (seconds) of every entry path */
#define UDC_DEFAULT_MAX_FUTURE_SKEW 300
#define UDC_MAX_MAX_FUTURE_SKEW (10 * 365 * 86400)

/* PostgreSQL's epoch (2000-01-01) in Unix seconds */
#define UDC_PG_EPOCH_UNIX_SECONDS INT64_C(946684800)

/* How a path names the fields in its messages. */
typedef struct udc_location_fields
{
	const char *person_id;
	const char *latitude;
	const char *longitude;
	const char *creation_time;
} udc_location_fields;

/* person_id, latitude, longitude, creation_time */
extern const udc_location_fields udc_location_v1_fields;

/*
 * Unix microseconds of a (seconds, nanos) timestamp as protobuf sends it.
 * False, with a message, when nanos is outside [0, 1e9) or the time outside
 * the accepted range.
 */
bool		udc_time_from_timestamp(const udc_location_fields *f,
									int64_t seconds, int32_t nanos,
									int64_t *usec, char *err, size_t errlen);

/* The same for Unix milliseconds (a Kafka message timestamp). */
bool		udc_time_from_unix_ms(const udc_location_fields *f, int64_t ms,
								  int64_t *usec, char *err, size_t errlen);

/*
 * The same for PostgreSQL timestamptz microseconds (since 2000-01-01).
 * Infinite timestamps (INT64_MIN / INT64_MAX) are outside the range.
 */
bool		udc_time_from_pg(const udc_location_fields *f, int64_t pg_usec,
							 int64_t *usec, char *err, size_t errlen);

/*
 * The time part of the rule alone: time_usec inside the range and no later
 * than now_usec + max_future_skew seconds (clamped to
 * [0, UDC_MAX_MAX_FUTURE_SKEW]).  False, with a message, otherwise.
 */
bool		udc_check_time(const udc_location_fields *f, int64_t time_usec,
						   int64_t now_usec, int64_t max_future_skew,
						   char *err, size_t errlen);

/* Which field a check refused (UDC_FIELD_NONE: none, the location is valid). */
typedef enum udc_location_field
{
	UDC_FIELD_NONE = 0,
	UDC_FIELD_PERSON_ID,
	UDC_FIELD_LATITUDE,
	UDC_FIELD_LONGITUDE,
	UDC_FIELD_CREATION_TIME
} udc_location_field;

/*
 * The rule itself: person_id > 0, valid coordinates, and a time (Unix
 * microseconds, already converted by one of the functions above) no later
 * than now_usec + max_future_skew seconds.  Returns the first field that
 * breaks it, with a message naming the field and the value, or
 * UDC_FIELD_NONE.
 */
udc_location_field udc_check_location(const udc_location_fields *f, int64_t person_id,
									  double latitude, double longitude,
									  int64_t time_usec, int64_t now_usec,
									  int64_t max_future_skew,
									  char *err, size_t errlen);

#endif							/* UDC_LOCATION_RULE_H */
