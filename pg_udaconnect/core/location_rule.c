/*
 * location_rule.c — the location rule of every entry path (see
 * location_rule.h).  Pure C: no PostgreSQL headers, no allocation, no global
 * state, so the gRPC gateway, the ingest workers and the SQL functions share
 * it, and the unit tests drive it directly.  Every conversion of a wire value
 * into microseconds is checked against the accepted range before it is
 * multiplied, so no input can wrap around into a plausible date.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "geodesy.h"
#include "location_rule.h"

const udc_location_fields udc_location_v1_fields = {
	"person_id", "latitude", "longitude", "creation_time"
};

#define USEC_PER_SEC INT64_C(1000000)

/* the range in microseconds; both ends fit in int64 with room to spare */
#define TIME_MIN_USEC (UDC_TIME_MIN_SECONDS * USEC_PER_SEC)
#define TIME_MAX_USEC (UDC_TIME_MAX_SECONDS * USEC_PER_SEC + (USEC_PER_SEC - 1))

/*
 * The one wording of a time outside the range.  what names the wire value
 * (".seconds", " (Unix milliseconds)"), shown when show_value; a converted
 * time has no wire value worth showing.
 */
static bool
out_of_range(const udc_location_fields *f, const char *what, int64_t value,
			 bool show_value, char *err, size_t errlen)
{
	if (show_value)
		snprintf(err, errlen,
				 "%s%s must lie between 0001-01-01 and 9999-12-31 UTC, got %" PRId64,
				 f->creation_time, what, value);
	else
		snprintf(err, errlen, "%s must lie between 0001-01-01 and 9999-12-31 UTC",
				 f->creation_time);
	return false;
}

bool
udc_time_from_timestamp(const udc_location_fields *f, int64_t seconds, int32_t nanos,
						int64_t *usec, char *err, size_t errlen)
{
	if (nanos < 0 || nanos > 999999999)
	{
		snprintf(err, errlen, "%s.nanos must be in [0, 999999999], got %" PRId32,
				 f->creation_time, nanos);
		return false;
	}
	if (seconds < UDC_TIME_MIN_SECONDS || seconds > UDC_TIME_MAX_SECONDS)
		return out_of_range(f, ".seconds", seconds, true, err, errlen);
	*usec = seconds * USEC_PER_SEC + nanos / 1000;
	return true;
}

bool
udc_time_from_unix_ms(const udc_location_fields *f, int64_t ms,
					  int64_t *usec, char *err, size_t errlen)
{
	/* compare before multiplying: ms * 1000 may not fit in int64 */
	if (ms < TIME_MIN_USEC / 1000 || ms > TIME_MAX_USEC / 1000)
		return out_of_range(f, " (Unix milliseconds)", ms, true, err, errlen);
	*usec = ms * 1000;
	return true;
}

bool
udc_time_from_pg(const udc_location_fields *f, int64_t pg_usec,
				 int64_t *usec, char *err, size_t errlen)
{
	const int64_t offset = UDC_PG_EPOCH_UNIX_SECONDS * USEC_PER_SEC;

	/* compare in PostgreSQL's units: adding the offset first could overflow */
	if (pg_usec < TIME_MIN_USEC - offset || pg_usec > TIME_MAX_USEC - offset)
		return out_of_range(f, "", 0, false, err, errlen);
	*usec = pg_usec + offset;
	return true;
}

bool
udc_check_time(const udc_location_fields *f, int64_t time_usec, int64_t now_usec,
			   int64_t max_future_skew, char *err, size_t errlen)
{
	int64_t		skew_usec;

	if (time_usec < TIME_MIN_USEC || time_usec > TIME_MAX_USEC)
		return out_of_range(f, "", 0, false, err, errlen);

	/*
	 * Clamp the skew so the sum below cannot overflow whatever a caller
	 * passes; now itself is a clock reading, far from the int64 limits.
	 */
	if (max_future_skew < 0)
		max_future_skew = 0;
	if (max_future_skew > UDC_MAX_MAX_FUTURE_SKEW)
		max_future_skew = UDC_MAX_MAX_FUTURE_SKEW;
	skew_usec = max_future_skew * USEC_PER_SEC;
	if (time_usec > now_usec + skew_usec)
	{
		snprintf(err, errlen, "%s is %" PRId64 " s in the future (at most %" PRId64 " s allowed)",
				 f->creation_time, (time_usec - now_usec + USEC_PER_SEC - 1) / USEC_PER_SEC,
				 max_future_skew);
		return false;
	}
	return true;
}

udc_location_field
udc_check_location(const udc_location_fields *f, int64_t person_id,
				   double latitude, double longitude,
				   int64_t time_usec, int64_t now_usec, int64_t max_future_skew,
				   char *err, size_t errlen)
{
	if (person_id <= 0)
	{
		snprintf(err, errlen, "%s must be a positive integer, got %" PRId64,
				 f->person_id, person_id);
		return UDC_FIELD_PERSON_ID;
	}
	switch (udc_check_coordinates(latitude, longitude))
	{
		case UDC_COORD_OK:
			break;
		case UDC_COORD_BAD_LATITUDE:
			snprintf(err, errlen, "%s must be a finite number of degrees in [-90, 90], got %.17g",
					 f->latitude, latitude);
			return UDC_FIELD_LATITUDE;
		case UDC_COORD_BAD_LONGITUDE:
			snprintf(err, errlen, "%s must be a finite number of degrees in [-180, 180], got %.17g",
					 f->longitude, longitude);
			return UDC_FIELD_LONGITUDE;
	}

	if (!udc_check_time(f, time_usec, now_usec, max_future_skew, err, errlen))
		return UDC_FIELD_CREATION_TIME;
	return UDC_FIELD_NONE;
}
