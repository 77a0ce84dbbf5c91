/*
 * udaconnect-grpcd — shared declarations.
 */
#ifndef UDACONNECT_GRPCD_H
#define UDACONNECT_GRPCD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "location_rule.h"

enum log_level
{
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARNING,
	LOG_ERROR,
	LOG_FATAL
};

extern int	log_min_level;

void		logmsg(int level, const char *fmt,...) __attribute__((format(printf, 2, 3)));
int			log_level_from_name(const char *name);

/* Field names used in validation messages (v1 or original proto). */
typedef udc_location_fields field_names;

extern const field_names v1_fields;
extern const field_names legacy_fields;

/*
 * Validate one location.  Returns true when valid; otherwise writes a
 * message naming the offending field into err (errlen bytes).
 * now = current Unix time in seconds; max_skew = seconds a creation_time may
 * lie in the future.
 */
bool		validate_location(const field_names *f, int32_t person_id,
							  double latitude, double longitude,
							  const Google__Protobuf__Timestamp *ts,
							  int64_t now, int64_t max_skew,
							  char *err, size_t errlen);

#endif
