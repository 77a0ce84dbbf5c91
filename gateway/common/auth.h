/*
 * gateway/common/auth.h — the JWT layer of the gateway daemons and of
 * udaconnect-token: loading the HS256 key file, reading a bearer token out
 * of an Authorization header, verifying a token into the claims the
 * gateways act on, and signing one.
 *
 * Tokens are compact JWTs (RFC 7519) signed with HS256, verified with
 * Debian's libjwt (1.10) and read with jansson.  Their claims:
 *
 *	 role	"attendee" or "organizer"
 *	 sub	attendee: the person id, a positive 32-bit integer (a decimal string
 *			without sign or leading zeros, or a JSON integer);
 *			organizer: a name of 1 to 63 bytes
 *	 exp	required; a token is expired once exp <= now (no leeway: the
 *			issuer is udaconnect-token on the same deployment's clocks)
 *	 nbf	optional; a token is not yet valid while nbf > now (no leeway)
 *	 iat	written by udc_auth_sign, not checked
 *
 * The key file holds one secret a line (trailing blanks and the newline are
 * stripped, empty lines skipped), each at least 32 bytes, at most 16 lines.
 * The first line signs, every line verifies: to rotate, add the new key as
 * the first line and keep the old one after it until its tokens expire.
 * The key bytes are the line as written (udaconnect-token --genkey prints a
 * base64url line; it is used as text, not decoded).
 *
 * Every function may be called from any thread once udc_auth_load returned;
 * udc_auth_verify keeps a bounded cache of verified tokens (see below).
 *
 * What it must not do: log (the caller decides what to say and where), read
 * the environment, or know a daemon's settings.  libjwt, jansson and libc
 * only; the daemons' Makefiles compile auth.c next to their own sources and
 * link -ljwt -ljansson.
 */
#ifndef UDC_COMMON_AUTH_H
#define UDC_COMMON_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* a token longer than this is refused without being decoded */
#define UDC_AUTH_TOKEN_MAX 4096

/* verified tokens up to this length are cached; longer ones are re-verified */
#define UDC_AUTH_CACHE_TOKEN_MAX 1024

/* cache slots of a new udc_auth (see udc_auth_set_cache_slots) */
#define UDC_AUTH_CACHE_SLOTS_DEFAULT 1024

typedef enum
{
	UDC_ROLE_ATTENDEE = 1,
	UDC_ROLE_ORGANIZER = 2
} udc_role;

typedef struct udc_claims
{
	udc_role	role;
	int32_t		person;			/* attendee: the person id from sub, > 0;
								 * organizer: 0 */
	char		sub[64];		/* sub as text, NUL-terminated */
	int64_t		exp;			/* seconds since the epoch */
} udc_claims;

typedef struct udc_auth udc_auth;

/*
 * Read the key file at path.  NULL on failure, with the reason in err (a
 * missing or unreadable file, no key, a key shorter than 32 bytes, more than
 * 16 keys).  Free with udc_auth_free.
 */
extern udc_auth *udc_auth_load(const char *path, char *err, size_t errlen);
extern void udc_auth_free(udc_auth *a);

/*
 * The cache of verified tokens: `slots` entries (a power of two, at most
 * 65536; 0 turns it off), each holding a copy of a token of at most
 * UDC_AUTH_CACHE_TOKEN_MAX bytes and its claims.  An entry answers only for
 * the very same bytes, and only while exp > now and nbf <= now; only tokens
 * that verified are entered.  Each slot has its own lock, so threads meet
 * only on the same slot.  Memory: slots * ~1.2 kB, touched as used.
 * Call before the udc_auth is shared between threads.  0 or -1 (bad count).
 */
extern int	udc_auth_set_cache_slots(udc_auth *a, unsigned slots);

/*
 * "Bearer <token>": the scheme in any case, one or more spaces or tabs, then
 * the token up to trailing blanks.  0 with *token, *len pointing into the
 * header; -1 when the header is NULL, of another scheme, or has no token.
 */
extern int	udc_auth_bearer(const char *authorization_header,
							const char **token, size_t *len);

/*
 * Verify token[0..len) at time now_s (seconds since the epoch).  0 and *out
 * filled when valid; -1 with the reason in `reason` (one distinct sentence
 * for each way a token can fail) and *out untouched otherwise.
 */
extern int	udc_auth_verify(udc_auth *a, const char *token, size_t len,
							int64_t now_s, udc_claims *out,
							char *reason, size_t reasonlen);

/*
 * A token for *c (role; person for an attendee, sub for an organizer) signed
 * with the first key: iat = now_s, exp = now_s + ttl_s (ttl_s > 0).  The
 * result is malloc'd (free it); NULL with the reason in err.
 */
extern char *udc_auth_sign(udc_auth *a, const udc_claims *c, int64_t now_s,
						   int64_t ttl_s, char *err, size_t errlen);

/*
 * base64url (RFC 4648 section 5, no padding) of n bytes into out, which
 * must hold 4 * ((n + 2) / 3) + 1 bytes; returns the length written.
 */
extern size_t udc_base64url_encode(const unsigned char *in, size_t n, char *out);

#endif
