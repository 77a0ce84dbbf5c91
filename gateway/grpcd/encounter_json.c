/*
 * encounter_json.c — an encounter as the SQL API gives it (JSON, from
 * udaconnect.api_encounter_json in sql/src/70-encounters-http.sql) turned
 * into the udaconnect.v1.Encounter message, for ListEncounters and
 * WatchEncounters.
 *
 * What this file holds: the strict reading of that JSON with jansson (every
 * field of its type, duplicate names refused) and of its UTC times
 * (YYYY-MM-DDTHH:MI:SS.USZ).  The message's strings point into the parsed
 * JSON, which must outlive the message until it is packed.
 *
 * What it must not do: talk to the database or to gRPC, or accept a JSON it
 * does not fully understand (a changed SQL API must fail loudly, as
 * INTERNAL with the reason logged, not send zeros).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "grpcd.h"

/* "2020-07-07T10:32:00.000000Z" (to_char's US: always 6 digits) */
static bool
utc_time(const char *s, Google__Protobuf__Timestamp *ts)
{
	struct tm	tm = {0};
	int			us = 0,
				n = -1;
	time_t		t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us, &n) != 7 || n < 0 || s[n] != '\0' ||
		strlen(s) != 27)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	google__protobuf__timestamp__init(ts);
	ts->seconds = (int64_t) t;
	ts->nanos = us * 1000;
	return true;
}

static bool
get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *v, char *err, size_t len)
{
	json_t	   *x = json_object_get(o, key);

	if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max)
	{
		snprintf(err, len, "\"%s\" is not an integer in [%lld, %lld]", key, (long long) min, (long long) max);
		return false;
	}
	*v = json_integer_value(x);
	return true;
}

static bool
get_number(json_t *o, const char *key, double *v, char *err, size_t len)
{
	json_t	   *x = json_object_get(o, key);

	if (!json_is_number(x))
	{
		snprintf(err, len, "\"%s\" is not a number", key);
		return false;
	}
	*v = json_number_value(x);
	return true;
}

static bool
get_string(json_t *o, const char *key, char **v, char *err, size_t len)
{
	json_t	   *x = json_object_get(o, key);

	if (!json_is_string(x))
	{
		snprintf(err, len, "\"%s\" is not a string", key);
		return false;
	}
	/* the SQL text cannot hold a NUL, and protobuf-c's strings end at one */
	if (strlen(json_string_value(x)) != json_string_length(x))
	{
		snprintf(err, len, "\"%s\" holds a NUL character", key);
		return false;
	}
	*v = (char *) json_string_value(x);
	return true;
}

static bool
get_time(json_t *o, const char *key, Google__Protobuf__Timestamp *ts, char *err, size_t len)
{
	char	   *s;

	if (!get_string(o, key, &s, err, len))
		return false;
	if (!utc_time(s, ts))
	{
		snprintf(err, len, "\"%s\" is not a UTC time as YYYY-MM-DDTHH:MI:SS.USZ: \"%.40s\"", key, s);
		return false;
	}
	return true;
}

static bool
person_from_json(json_t *o, encounter_msg *m, char *err, size_t len)
{
	int64_t		id;

	if (!json_is_object(o))
	{
		snprintf(err, len, "\"person\" is not an object");
		return false;
	}
	udaconnect__v1__person__init(&m->person);
	if (!get_int(o, "id", 1, INT32_MAX, &id, err, len) ||
		!get_string(o, "first_name", &m->person.first_name, err, len) ||
		!get_string(o, "last_name", &m->person.last_name, err, len) ||
		!get_string(o, "company_name", &m->person.company_name, err, len))
		return false;
	m->person.id = (int32_t) id;
	m->e.person = &m->person;
	return true;
}

/* the place, or none (JSON null) */
static bool
place_from_json(json_t *o, encounter_msg *m, char *err, size_t len)
{
	int64_t		id,
				floor;
	json_t	   *f;

	if (json_is_null(o))
		return true;
	if (!json_is_object(o))
	{
		snprintf(err, len, "\"place\" is neither an object nor null");
		return false;
	}
	udaconnect__v1__place__init(&m->place);
	if (!get_int(o, "id", 1, INT32_MAX, &id, err, len) ||
		!get_string(o, "name", &m->place.name, err, len) ||
		!get_string(o, "kind", &m->place.kind, err, len))
		return false;
	m->place.id = (int32_t) id;
	f = json_object_get(o, "floor");
	if (f == NULL || !json_is_null(f))
	{
		if (!get_int(o, "floor", INT32_MIN, INT32_MAX, &floor, err, len))
			return false;
		google__protobuf__int32_value__init(&m->floor);
		m->floor.value = (int32_t) floor;
		m->place.floor = &m->floor;
	}
	m->e.place = &m->place;
	return true;
}

/*
 * Fill m from o, one encounter of the SQL API.  False with the reason in err
 * when o is not one.
 */
bool
encounter_from_json(json_t *o, encounter_msg *m, char *err, size_t len)
{
	udaconnect__v1__encounter__init(&m->e);
	if (!json_is_object(o))
	{
		snprintf(err, len, "an encounter is not a JSON object");
		return false;
	}
	if (!get_int(o, "id", 1, INT64_MAX, &m->e.id, err, len) ||
		!person_from_json(json_object_get(o, "person"), m, err, len) ||
		!get_time(o, "started_at", &m->started, err, len) ||
		!get_time(o, "ended_at", &m->ended, err, len) ||
		!get_number(o, "duration_seconds", &m->e.duration_seconds, err, len) ||
		!get_int(o, "matches", 1, INT64_MAX, &m->e.matches, err, len) ||
		!get_number(o, "min_distance_m", &m->e.min_distance_m, err, len) ||
		!place_from_json(json_object_get(o, "place"), m, err, len) ||
		!get_number(o, "latitude", &m->e.latitude, err, len) ||
		!get_number(o, "longitude", &m->e.longitude, err, len) ||
		!get_int(o, "version", 0, INT64_MAX, &m->e.version, err, len))
		return false;
	if (json_object_get(o, "place") == NULL)
	{
		snprintf(err, len, "\"place\" is missing (null when none)");
		return false;
	}
	m->e.started_at = &m->started;
	m->e.ended_at = &m->ended;
	return true;
}

/* text as JSON (duplicate names refused); NULL with the reason in err */
json_t *
json_parse(const char *text, char *err, size_t len)
{
	json_error_t je;
	json_t	   *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL)
		snprintf(err, len, "not JSON: %s at %d:%d", je.text, je.line, je.column);
	return j;
}
