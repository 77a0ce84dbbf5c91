/*
 * udaconnect-grpcd — logging and location validation.
 */
#include <math.h>
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

/* google.protobuf.Timestamp's documented range: 0001-01-01 .. 9999-12-31 */
#define TS_MIN_SECONDS INT64_C(-62135596800)
#define TS_MAX_SECONDS INT64_C(253402300799)

bool
validate_location(const field_names *f, int32_t person_id,
				  double latitude, double longitude,
				  const Google__Protobuf__Timestamp *ts,
				  int64_t now, int64_t max_skew,
				  char *err, size_t errlen)
{
	if (person_id <= 0)
	{
		snprintf(err, errlen, "%s must be a positive integer, got %d", f->person_id, person_id);
		return false;
	}
	if (!isfinite(latitude) || latitude < -90.0 || latitude > 90.0)
	{
		snprintf(err, errlen, "%s must be a finite number of degrees in [-90, 90], got %g",
				 f->latitude, latitude);
		return false;
	}
	if (!isfinite(longitude) || longitude < -180.0 || longitude > 180.0)
	{
		snprintf(err, errlen, "%s must be a finite number of degrees in [-180, 180], got %g",
				 f->longitude, longitude);
		return false;
	}
	if (ts != NULL)
	{
		if (ts->nanos < 0 || ts->nanos > 999999999)
		{
			snprintf(err, errlen, "%s.nanos must be in [0, 999999999], got %d",
					 f->creation_time, ts->nanos);
			return false;
		}
		if (ts->seconds < TS_MIN_SECONDS || ts->seconds > TS_MAX_SECONDS)
		{
			snprintf(err, errlen, "%s.seconds must be between 0001-01-01 and 9999-12-31 (%lld .. %lld), got %lld",
					 f->creation_time, (long long) TS_MIN_SECONDS, (long long) TS_MAX_SECONDS,
					 (long long) ts->seconds);
			return false;
		}
		if (ts->seconds > now + max_skew)
		{
			snprintf(err, errlen, "%s is %lld s in the future (at most %lld s allowed)",
					 f->creation_time, (long long) (ts->seconds - now), (long long) max_skew);
			return false;
		}
	}
	return true;
}
