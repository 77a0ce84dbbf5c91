/*
 * caller.c — who is calling udaconnect-grpcd: the verified caller of a call
 * and the one privacy rule the gateway applies itself.
 *
 * What this file holds: loading the signing keys at start (UDACONNECT_AUTH
 * on: no usable key file ends the program with status 2); establishing a
 * call's caller from its `authorization` request metadata ("Bearer <jwt>",
 * verified by gateway/common/auth.c); and the two rules of an attendee's
 * location reports, only for themself (caller_may_report) and at most
 * --attendee-max-report-age back (caller_may_report_at), which the Kafka
 * path needs per point and cannot ask the database for.  Every other rule is the
 * database's: FindConnections hands the caller to
 * udaconnect.api_find_connections, which decides (docs/grpc.md,
 * "Authentication").  With UDACONNECT_AUTH=off every caller is an
 * organizer: the original's open API.
 *
 * What it must not do: block or touch the network.  It runs on the worker
 * threads for every call; verification is CPU only, and auth.c's cache of
 * verified tokens spares the HMAC for a token seen before.  It must not log
 * tokens either.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcd.h"

static udc_auth *keys;			/* NULL: authentication off */

/* "Bearer " and a token at auth.c's limit, then a few blanks */
#define AUTH_HEADER_MAX (UDC_AUTH_TOKEN_MAX + 64)

void
caller_start(void)
{
	char		err[256];

	if (!cfg.auth)
		return;
	keys = udc_auth_load(cfg.jwt_key_file, err, sizeof(err));
	if (keys == NULL)
	{
		fprintf(stderr, "udaconnect-grpcd: authentication is on (UDACONNECT_AUTH) but the key file %s"
				" (UDACONNECT_JWT_KEY_FILE) is not usable: %s\n", cfg.jwt_key_file, err);
		exit(2);
	}
}

void
caller_stop(void)
{
	if (keys)
		udc_auth_free(keys);
	keys = NULL;
}

/*
 * The caller of a call from its request metadata.  True with *who filled;
 * false with the reason (for UNAUTHENTICATED) otherwise.  Authentication
 * off: always the organizer.
 */
bool
caller_from_metadata(const grpc_metadata_array *md, caller *who, char *reason, size_t len)
{
	const grpc_slice *value = NULL;
	char		header[AUTH_HEADER_MAX + 1];
	const char *token;
	size_t		n;
	udc_claims	claims;

	/* no caller until one is established (fail closed) */
	who->role = 0;
	who->person = 0;
	if (keys == NULL)
	{
		who->role = UDC_ROLE_ORGANIZER;
		return true;
	}
	for (size_t i = 0; i < md->count; i++)
	{
		if (!grpc_slice_str_cmp(md->metadata[i].key, "authorization"))
		{
			if (value != NULL)
			{
				snprintf(reason, len, "more than one authorization metadata entry");
				return false;
			}
			value = &md->metadata[i].value;
		}
	}
	if (value == NULL)
	{
		snprintf(reason, len, "no token: send the metadata \"authorization: Bearer <token>\"");
		return false;
	}
	n = GRPC_SLICE_LENGTH(*value);
	if (n > AUTH_HEADER_MAX)
	{
		snprintf(reason, len, "the token is longer than %d bytes", UDC_AUTH_TOKEN_MAX);
		return false;
	}
	memcpy(header, GRPC_SLICE_START_PTR(*value), n);
	header[n] = '\0';
	if (memchr(header, '\0', n) != NULL || udc_auth_bearer(header, &token, &n) != 0)
	{
		snprintf(reason, len, "the authorization metadata is not \"Bearer <token>\"");
		return false;
	}
	if (udc_auth_verify(keys, token, n, now_ms() / 1000, &claims, reason, len) != 0)
		return false;
	who->role = claims.role;
	who->person = claims.role == UDC_ROLE_ATTENDEE ? claims.person : 0;
	return true;
}

/*
 * May `who` report a location for person `person_id`?  An organizer for
 * anyone, an attendee for themself only.  This is the rule of the
 * database's udaconnect.caller_require_self (sql/src/40-privacy.sql), its
 * other home: the ingest path produces to Kafka and cannot ask the database
 * per point, so the rule is applied here, with the database's wording.  False
 * with the reason (for PERMISSION_DENIED, or a stream's rejection).
 */
bool
caller_may_report(const caller *who, int32_t person_id, char *reason, size_t len)
{
	if (who->role == UDC_ROLE_ORGANIZER ||
		(who->role == UDC_ROLE_ATTENDEE && who->person > 0 && person_id == who->person))
		return true;
	snprintf(reason, len, "attendee %d may not report locations for person %d: an attendee reports only"
			 " their own locations", (int) who->person, (int) person_id);
	return false;
}

/* t (microseconds since the Unix epoch) as ISO 8601 UTC, as the database writes it */
static void
format_time(int64_t t, char *buf, size_t len)
{
	int64_t		sec = t / 1000000;
	int64_t		usec = t % 1000000;
	time_t		tt;
	struct tm	tm;

	if (usec < 0)
	{
		sec--;
		usec += 1000000;
	}
	tt = (time_t) sec;
	if (gmtime_r(&tt, &tm) == NULL)
	{
		snprintf(buf, len, "%lld s after 1970", (long long) sec);
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) usec);
}

/*
 * May `who` report a location made at time_usec (now: now_usec)?  An
 * organizer any time; an attendee at most cfg.attendee_max_report_age back,
 * or a point of a forged past would let their connection search show who
 * was there then.  This is the rule of the database's api_create_location
 * with udaconnect.attendee_max_report_age() (sql/src/60-http.sql,
 * 40-privacy.sql), its other home, applied here for the same reason as
 * caller_may_report, with the database's wording: the setting and
 * --attendee-max-report-age must be equal.  The ingest itself stores late
 * points of any age: this gateway, which knows the caller, is the gate.
 */
bool
caller_may_report_at(const caller *who, int64_t time_usec, int64_t now_usec, char *reason, size_t len)
{
	int64_t		cutoff = now_usec - (int64_t) cfg.attendee_max_report_age * INT64_C(1000000);
	char		t[48];
	char		c[48];

	if (who->role == UDC_ROLE_ORGANIZER || time_usec >= cutoff)
		return true;
	format_time(time_usec, t, sizeof(t));
	format_time(cutoff, c, sizeof(c));
	snprintf(reason, len, "an attendee may report a location at most %d s old: creation_time %s is before %s"
			 " (only an organizer may report older ones)", cfg.attendee_max_report_age, t, c);
	return false;
}

/* the caller as udaconnect.api_* takes it: caller_role, and caller_id (NULL: none) */
const char *
caller_role_name(const caller *who)
{
	/* no established caller: a role the database refuses (42501) */
	return who->role == UDC_ROLE_ATTENDEE ? "attendee"
		: who->role == UDC_ROLE_ORGANIZER ? "organizer" : "none";
}
