/*
 * caller.c — who is calling udaconnect-grpcd: the verified caller of a call
 * and the one privacy rule the gateway applies itself.
 *
 * What this file holds: loading the signing keys at start (UDACONNECT_AUTH
 * on: no usable key file ends the program with status 2); establishing a
 * call's caller from its `authorization` request metadata ("Bearer <jwt>",
 * verified by gateway/common/auth.c); and the rule that an attendee reports
 * locations only for themself (caller_may_report), which the Kafka path
 * needs per point and cannot ask the database for.  Every other rule is the
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

/* the caller as udaconnect.api_* takes it: caller_role, and caller_id (NULL: none) */
const char *
caller_role_name(const caller *who)
{
	/* no established caller: a role the database refuses (42501) */
	return who->role == UDC_ROLE_ATTENDEE ? "attendee"
		: who->role == UDC_ROLE_ORGANIZER ? "organizer" : "none";
}
