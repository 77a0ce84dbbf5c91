/*
 * udaconnect-grpcd — logging and location validation.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "grpcd.h"

int			log_min_level = LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

int
log_level_from_name(const char *name)
{
	for (int i = 0; i <= LOG_FATAL; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

/*
 * One line per event on stderr:
 *   2026-11-30T04:30:00.123Z INFO udaconnect-grpcd[1234]: message
 * written with a single write() so lines from different threads never mix.
 */
void
logmsg(int level, const char *fmt,...)
{
	char		line[1024];
	struct timeval tv;
	struct tm	tm;
	size_t		n;
	va_list		ap;

	if (level < log_min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %s udaconnect-grpcd[%d]: ",
				  (long) (tv.tv_usec / 1000), level_names[level], (int) getpid());
	va_start(ap, fmt);
	if (n < sizeof(line))
	{
		int			m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);

		n = (m < 0) ? n : (n + (size_t) m >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t) m);
	}
	va_end(ap);
	/* keep one event on one line */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
	{
		/* nowhere left to report it */
	}
}

const field_names v1_fields = {"person_id", "latitude", "longitude", "creation_time"};
const field_names legacy_fields = {"personId", "latitude", "longitude", "createdTime"};

/*
 * The location rule is pg_udaconnect's (core/location_rule.c), the same code
 * the ingest workers and record_location() run, so a point accepted here is
 * never rejected later for its content.  A missing creation_time is allowed:
 * the ingest then takes the Kafka message's timestamp, i.e. about now.
 */
bool
validate_location(const field_names *f, int32_t person_id,
				  double latitude, double longitude,
				  const Google__Protobuf__Timestamp *ts,
				  int64_t now, int64_t max_skew,
				  char *err, size_t errlen)
{
	int64_t		now_usec = now * INT64_C(1000000);
	int64_t		time_usec = now_usec;

	if (ts != NULL &&
		!udc_time_from_timestamp(f, ts->seconds, ts->nanos, &time_usec, err, errlen))
		return false;
	return udc_check_location(f, person_id, latitude, longitude, time_usec, now_usec,
							  max_skew, err, errlen) == UDC_FIELD_NONE;
}
