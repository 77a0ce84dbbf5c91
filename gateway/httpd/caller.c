/*
 * caller.c: who is asking (udaconnect-httpd): the bearer token of an /api
 * request, verified with the deployment's HS256 keys (gateway/common/auth.h),
 * becomes the caller every udaconnect.api_* call takes first, and the
 * gateway signs the attendee tokens the token route hands out.
 *
 * With UDACONNECT_AUTH=on a request without a valid token is answered 401
 * here, before any database work; with it off every caller is an organizer
 * (the original's open API).  Verification is CPU only and does not wait on
 * anything but a per-slot lock of auth.c's cache, so it runs in the worker's
 * event loop without holding up its other connections.  This file decides
 * who the caller is, never what the caller may do (the database does: the
 * rules live in sql/src/40-privacy.sql), and it must not run statements.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

static udc_auth *auth;

int
caller_init(void)
{
	char		err[256];

	if (!cfg.auth)
		return 0;
	auth = udc_auth_load(cfg.jwt_key_file, err, sizeof(err));
	if (!auth)
	{
		logmsg(LOG_FATAL, "UDACONNECT_AUTH is on but UDACONNECT_JWT_KEY_FILE is not usable: %s",
			   err);
		return -1;
	}
	return 0;
}

void
caller_free(void)
{
	if (auth)
		udc_auth_free(auth);
	auth = NULL;
}

bool
caller_needed(enum route rt)
{
	switch (rt)
	{
		case R_PERSONS:
		case R_PERSON:
		case R_CONNECTION:
		case R_CONNECTIONS:
		case R_TOKEN:
		case R_LOCATIONS:
		case R_LOCATION:
		case R_PLACES:
		case R_PLACE:
		case R_ENCOUNTERS:
		case R_ENCOUNTER_STREAM:
			return true;
		default:
			return false;
	}
}

bool
caller_refused(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	const char *h;
	const char *token;
	size_t		len;
	udc_claims	claims;
	char		reason[200];
	char		msg[260];

	if (r->caller_known)
		return false;
	if (!cfg.auth)
	{
		r->caller_role = "organizer";
		r->caller_id[0] = 0;
		r->caller_exp = 0;
		r->caller_known = true;
		return false;
	}
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (udc_auth_bearer(h, &token, &len) < 0)
	{
		*ret = send_unauthorized(c, r, "unauthorized",
								 h ? "the Authorization header is not \"Bearer <token>\""
								 : "this route needs the header Authorization: Bearer <token>",
								 NULL);
		return true;
	}
	if (udc_auth_verify(auth, token, len, (int64_t) time(NULL), &claims,
						reason, sizeof(reason)) != 0)
	{
		snprintf(msg, sizeof(msg), "invalid token: %s", reason);
		*ret = send_unauthorized(c, r, "invalid_token", msg, reason);
		return true;
	}
	if (claims.role == UDC_ROLE_ATTENDEE)
	{
		r->caller_role = "attendee";
		snprintf(r->caller_id, sizeof(r->caller_id), "%d", (int) claims.person);
	}
	else
	{
		r->caller_role = "organizer";
		r->caller_id[0] = 0;
	}
	r->caller_exp = claims.exp;
	r->caller_known = true;
	return false;
}

char *
caller_sign_attendee(int32_t person, int64_t now_s, int64_t ttl_s, char *err, size_t errlen)
{
	udc_claims	claims;

	if (!auth)
	{
		snprintf(err, errlen, "tokens need UDACONNECT_AUTH=on");
		return NULL;
	}
	memset(&claims, 0, sizeof(claims));
	claims.role = UDC_ROLE_ATTENDEE;
	claims.person = person;
	snprintf(claims.sub, sizeof(claims.sub), "%d", (int) person);
	return udc_auth_sign(auth, &claims, now_s, ttl_s, err, errlen);
}
