/*
 * Unit tests of gateway/common/auth.c: key files, the bearer header,
 * signing, verification with each way a token can fail, the cache of
 * verified tokens, and verification from several threads at once.
 *
 * Tokens to refuse are made here with OpenSSL's HMAC and a base64url of
 * this file's own, not with libjwt, so that a mistake shared by auth.c and
 * libjwt cannot pass unseen.  Output is TAP, one line per check group.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

#define KEY1 "k1-0123456789abcdefghijklmnopqrstuvwxyz"
#define KEY2 "k2-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"
#define NOW  INT64_C(1800000000)

static int	test_no = 0;
static int	failures = 0;
static char tmpdir[] = "/tmp/test_auth.XXXXXX";

static void
report(int ok, const char *what)
{
	test_no++;
	if (!ok)
		failures++;
	printf("%sok %d - %s\n", ok ? "" : "not ", test_no, what);
}

/* a file in tmpdir holding text; its path (static, one at a time per name) */
static const char *
write_file(const char *name, const char *text)
{
	static char path[8][256];
	static int	next = 0;
	char	   *p = path[next++ % 8];
	FILE	   *f;

	snprintf(p, 256, "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	if (f == NULL)
	{
		perror(p);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	return p;
}

static udc_auth *
load(const char *text)
{
	char		err[256];
	udc_auth   *a = udc_auth_load(write_file("keys", text), err, sizeof(err));

	if (a == NULL)
	{
		printf("# cannot load keys: %s\n", err);
		exit(1);
	}
	return a;
}

/* did loading text fail with a message containing want? */
static int
load_fails(const char *text, const char *want)
{
	char		err[256] = "";
	udc_auth   *a = udc_auth_load(write_file("bad", text), err, sizeof(err));

	if (a != NULL || strstr(err, want) == NULL)
	{
		printf("# key file \"%s\": loaded %d, message \"%s\", want \"%s\"\n",
			   text, a != NULL, err, want);
		udc_auth_free(a);
		return 0;
	}
	return 1;
}

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char cs[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		o = 0;

	for (size_t i = 0; i < n; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t) in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = cs[v >> 18];
		out[o++] = cs[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = cs[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = cs[v & 63];
	}
	out[o] = '\0';
}

/*
 * header.payload.signature with an HMAC of md (EVP_sha256() etc.) under key;
 * md NULL: an empty signature.  Static result.
 */
static const char *
make_token(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
	static char tok[8192];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t		n;

	b64url((const unsigned char *) header, strlen(header), tok);
	n = strlen(tok);
	tok[n++] = '.';
	b64url((const unsigned char *) payload, strlen(payload), tok + n);
	n = strlen(tok);
	if (md != NULL)
		HMAC(md, key, (int) strlen(key), (unsigned char *) tok, n, mac, &maclen);
	tok[n++] = '.';
	b64url(mac, maclen, tok + n);
	return tok;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* a payload with printf formatting (static) */
static const char *
fmt(const char *f,...)
{
	static char buf[4][1024];
	static int	next = 0;
	char	   *p = buf[next++ % 4];
	va_list		ap;

	va_start(ap, f);
	vsnprintf(p, 1024, f, ap);
	va_end(ap);
	return p;
}

/* is token refused at NOW with a reason containing want? */
static int
refused(udc_auth *a, const char *token, const char *want, const char *what)
{
	udc_claims	c;
	char		reason[256] = "";
	int			rc = udc_auth_verify(a, token, strlen(token), NOW, &c, reason, sizeof(reason));

	if (rc != -1 || strstr(reason, want) == NULL)
	{
		printf("# %s: rc %d, reason \"%s\", want \"%s\"\n", what, rc, reason, want);
		return 0;
	}
	return 1;
}

/* is token accepted at now as role/person/sub? */
static int
accepted_at(udc_auth *a, const char *token, int64_t now, udc_role role, int32_t person,
			const char *sub, const char *what)
{
	udc_claims	c;
	char		reason[256] = "";
	int			rc;

	memset(&c, 0x5a, sizeof(c));
	rc = udc_auth_verify(a, token, strlen(token), now, &c, reason, sizeof(reason));
	if (rc != 0 || c.role != role || c.person != person || strcmp(c.sub, sub) != 0)
	{
		printf("# %s: rc %d (%s), role %d person %d sub \"%.63s\"\n",
			   what, rc, reason, (int) c.role, (int) c.person, rc == 0 ? c.sub : "");
		return 0;
	}
	return 1;
}

static int
accepted(udc_auth *a, const char *token, udc_role role, int32_t person, const char *sub, const char *what)
{
	return accepted_at(a, token, NOW, role, person, sub, what);
}

static void
test_key_files(void)
{
	char		err[256] = "";
	int			ok = 1;
	char		many[40 * 17 + 1] = "";
	udc_auth   *a;

	ok &= udc_auth_load("/nonexistent/keys", err, sizeof(err)) == NULL &&
		strstr(err, "cannot open key file \"/nonexistent/keys\"") != NULL;
	ok &= load_fails("", "holds no key");
	ok &= load_fails("\n  \n\t\n", "holds no key");
	ok &= load_fails(KEY1 "\nshort-key  \n", "line 2: the key is 9 bytes, at least 32 are required");
	ok &= load_fails("0123456789012345678901234567890\n", "line 1: the key is 31 bytes");
	for (int i = 0; i < 17; i++)
		strcat(many, KEY1 "\n");
	ok &= load_fails(many, "more than 16 keys");
	report(ok, "key file: missing, empty, blank-only, a short key (line named), 17 keys are refused");

	/* CRLF, trailing blanks, blank lines, no final newline: KEY2 signs, KEY1 verifies */
	a = load("\n" KEY2 " \t\r\n\n" KEY1);
	ok = a != NULL;
	if (a != NULL)
	{
		udc_claims	c = {.role = UDC_ROLE_ATTENDEE, .person = 7};
		char	   *t = udc_auth_sign(a, &c, NOW, 60, err, sizeof(err));

		ok &= t != NULL && accepted(a, make_token(HS256, fmt("{\"sub\":\"7\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY2), UDC_ROLE_ATTENDEE, 7, "7", "signed with KEY2 (line 2 after blank line 1)");
		ok &= accepted(a, make_token(HS256, fmt("{\"sub\":\"7\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 7, "7", "signed with KEY1 (the last line, no newline)");
		/* the first key signs: the token is exactly what KEY2's HMAC gives */
		udc_auth_free(a);
		a = load(KEY1 "\n");
		ok &= t != NULL && refused(a, t, "signature does not match", "KEY2's token under KEY1 alone");
		free(t);
		udc_auth_free(a);
	}
	report(ok, "key file: CRLF, trailing blanks and blank lines stripped; the first key signs, every key verifies");
}

static void
test_bearer(void)
{
	const char *t = NULL;
	size_t		n = 0;
	int			ok = 1;

	ok &= udc_auth_bearer("Bearer abc.def.ghi", &t, &n) == 0 && n == 11 && strncmp(t, "abc.def.ghi", n) == 0;
	ok &= udc_auth_bearer("bearer    xyz  \r\n", &t, &n) == 0 && n == 3 && strncmp(t, "xyz", 3) == 0;
	ok &= udc_auth_bearer("BEARER\tq", &t, &n) == 0 && n == 1 && *t == 'q';
	ok &= udc_auth_bearer(NULL, &t, &n) == -1;
	ok &= udc_auth_bearer("", &t, &n) == -1;
	ok &= udc_auth_bearer("Basic dXNlcjpwdw==", &t, &n) == -1;
	ok &= udc_auth_bearer("Bearer", &t, &n) == -1;
	ok &= udc_auth_bearer("Bearer    ", &t, &n) == -1;
	ok &= udc_auth_bearer("Bearerabc", &t, &n) == -1;
	ok &= udc_auth_bearer("Bearer a b", &t, &n) == -1;
	ok &= udc_auth_bearer("Bear abc", &t, &n) == -1;
	report(ok, "bearer: scheme in any case, one or more blanks, trailing blanks cut; other schemes, no token, two tokens refused");
}

static void
test_sign(udc_auth *a)
{
	char		err[256] = "";
	udc_claims	att = {.role = UDC_ROLE_ATTENDEE, .person = 2147483647};
	udc_claims	org = {.role = UDC_ROLE_ORGANIZER, .sub = "alice@example.org"};
	udc_claims	c;
	char	   *t1 = udc_auth_sign(a, &att, NOW, 3600, err, sizeof(err));
	char	   *t2 = udc_auth_sign(a, &org, NOW, 60, err, sizeof(err));
	int			ok = t1 != NULL && t2 != NULL;

	ok = ok && accepted(a, t1, UDC_ROLE_ATTENDEE, 2147483647, "2147483647", "signed attendee");
	ok = ok && accepted(a, t2, UDC_ROLE_ORGANIZER, 0, "alice@example.org", "signed organizer");
	ok = ok && udc_auth_verify(a, t1, strlen(t1), NOW, &c, err, sizeof(err)) == 0 && c.exp == NOW + 3600;
	ok = ok && accepted_at(a, t2, NOW + 59, UDC_ROLE_ORGANIZER, 0, "alice@example.org", "organizer 1 s before exp");
	free(t1);
	free(t2);
	report(ok, "sign: attendee (sub = person id) and organizer tokens verify with their claims, exp = now + ttl");

	ok = 1;
	att.person = 0;
	ok &= udc_auth_sign(a, &att, NOW, 60, err, sizeof(err)) == NULL && strstr(err, "person id") != NULL;
	att.person = 5;
	ok &= udc_auth_sign(a, &att, NOW, 0, err, sizeof(err)) == NULL && strstr(err, "lifetime") != NULL;
	org.sub[0] = '\0';
	ok &= udc_auth_sign(a, &org, NOW, 60, err, sizeof(err)) == NULL && strstr(err, "organizer's name") != NULL;
	memset(org.sub, 'x', sizeof(org.sub));
	ok &= udc_auth_sign(a, &org, NOW, 60, err, sizeof(err)) == NULL;
	c.role = 3;
	ok &= udc_auth_sign(a, &c, NOW, 60, err, sizeof(err)) == NULL && strstr(err, "unknown role") != NULL;
	report(ok, "sign: person 0, ttl 0, an empty or unterminated organizer name, an unknown role are refused");
}

#define ATT(sub_json) fmt("{\"sub\":%s,\"role\":\"attendee\",\"exp\":%lld}", sub_json, (long long) NOW + 60)

static void
test_subjects(udc_auth *a)
{
	int			ok = 1;
	char		longname[80];

	ok &= accepted(a, make_token(HS256, ATT("\"42\""), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 42, "42", "sub \"42\"");
	ok &= accepted(a, make_token(HS256, ATT("42"), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 42, "42", "sub 42 (JSON integer)");
	ok &= accepted(a, make_token(HS256, ATT("\"2147483647\""), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 2147483647, "2147483647", "sub INT32_MAX");
	report(ok, "attendee sub: a decimal string or a JSON integer, up to 2147483647");

	ok = 1;
	{
		static const char *const bad[] = {"\"abc\"", "\"0\"", "\"-1\"", "\"99999999999\"", "\"2147483648\"",
			"\"007\"", "\"+7\"", "\" 7\"", "\"7 \"", "\"\"", "0", "-1", "2147483648", "7.5", "true", "null",
		"[7]"};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			ok &= refused(a, make_token(HS256, ATT(bad[i]), EVP_sha256(), KEY1),
						  "attendee's sub must be a person id", bad[i]);
	}
	report(ok, "attendee sub: abc, 0, -1, 99999999999, 2^31, 007, +7, blanks, empty, non-strings refused");

	ok = 1;
	memset(longname, 'n', 64);
	longname[64] = '\0';
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"%s\",\"role\":\"organizer\",\"exp\":%lld}", longname, (long long) NOW + 60), EVP_sha256(), KEY1),
				  "organizer's sub must be a name of 1 to 63 bytes", "64-byte organizer");
	longname[63] = '\0';
	ok &= accepted(a, make_token(HS256, fmt("{\"sub\":\"%s\",\"role\":\"organizer\",\"exp\":%lld}", longname, (long long) NOW + 60), EVP_sha256(), KEY1),
				   UDC_ROLE_ORGANIZER, 0, longname, "63-byte organizer");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"\",\"role\":\"organizer\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY1),
				  "organizer's sub", "empty organizer");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"a\\u0000b\",\"role\":\"organizer\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY1),
				  "payload is not", "organizer with NUL (jansson refuses \\u0000)");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":5,\"role\":\"organizer\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY1),
				  "organizer's sub", "organizer sub an integer");
	report(ok, "organizer sub: 1 to 63 bytes of string; 64 bytes, empty, an embedded NUL, an integer refused");
}

static void
test_refusals(udc_auth *a)
{
	const char *good = ATT("\"5\"");
	char	   *t;
	int			ok = 1;
	long long	exp = NOW + 60;

	ok &= refused(a, make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", good, NULL, NULL), "alg \"none\"", "alg none, empty signature");
	ok &= refused(a, make_token("{\"alg\":\"none\"}", good, EVP_sha256(), KEY1), "alg \"none\"", "alg none with an HS256 signature");
	ok &= refused(a, make_token("{\"alg\":\"None\"}", good, NULL, NULL), "alg \"none\"", "alg None");
	ok &= refused(a, make_token("{\"alg\":\"HS512\"}", good, EVP_sha512(), KEY1), "alg \"HS512\" is refused", "HS512 with the right key");
	ok &= refused(a, make_token("{\"alg\":\"RS256\"}", good, EVP_sha256(), KEY1), "alg \"RS256\" is refused", "RS256");
	ok &= refused(a, make_token("{\"typ\":\"JWT\"}", good, EVP_sha256(), KEY1), "header has no alg", "no alg");
	ok &= refused(a, make_token("{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", good, EVP_sha256(), KEY1), "crit", "crit");
	report(ok, "alg: none (any case, with or without a signature), HS512 even with the right key, RS256, no alg, crit refused");

	ok = 1;
	ok &= refused(a, make_token(HS256, good, EVP_sha256(), KEY2), "signature does not match any key", "wrong key");
	ok &= refused(a, make_token(HS256, good, NULL, NULL), "signature does not match any key", "empty signature");
	t = strdup(make_token(HS256, good, EVP_sha256(), KEY1));
	t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
	ok &= refused(a, t, "signature does not match any key", "signature changed");
	free(t);
	/* the payload of another person, the signature of person 5 */
	t = strdup(make_token(HS256, good, EVP_sha256(), KEY1));
	{
		char		other[2048];
		const char *dot2 = strrchr(t, '.');

		snprintf(other, sizeof(other), "%s", make_token(HS256, ATT("\"6\""), EVP_sha256(), KEY1));
		strcpy(strrchr(other, '.'), dot2);
		ok &= refused(a, other, "signature does not match any key", "payload swapped");
	}
	free(t);
	report(ok, "signature: a wrong key, none, one changed character, another payload under the signature refused");

	ok = 1;
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\"}"), EVP_sha256(), KEY1), "has no exp", "no exp");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":\"%lld\"}", exp), EVP_sha256(), KEY1), "exp is not a number", "exp a string");
	ok &= refused(a, make_token(HS256, fmt("{\"role\":\"attendee\",\"exp\":%lld}", exp), EVP_sha256(), KEY1), "has no sub", "no sub");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"exp\":%lld}", exp), EVP_sha256(), KEY1), "has no role", "no role");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"admin\",\"exp\":%lld}", exp), EVP_sha256(), KEY1), "role \"admin\" is neither", "role admin");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":[\"attendee\"],\"exp\":%lld}", exp), EVP_sha256(), KEY1), "role is not a string", "role an array");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld,\"nbf\":\"x\"}", exp), EVP_sha256(), KEY1), "nbf is not a number", "nbf a string");
	report(ok, "claims: no exp, exp not a number, no sub, no role, role admin, role not a string, nbf not a number refused");

	ok = 1;
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW), EVP_sha256(), KEY1), "expired", "exp == now");
	ok &= accepted(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW + 1), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 5, "5", "exp == now + 1");
	ok &= accepted(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld.5}", (long long) NOW + 1), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 5, "5", "exp a real");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld,\"nbf\":%lld}", exp, (long long) NOW + 1), EVP_sha256(), KEY1), "not valid yet", "nbf == now + 1");
	ok &= accepted(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld,\"nbf\":%lld}", exp, (long long) NOW), EVP_sha256(), KEY1), UDC_ROLE_ATTENDEE, 5, "5", "nbf == now");
	report(ok, "times: exp <= now is expired, nbf > now is not valid yet (no leeway)");
}

static void
test_malformed(udc_auth *a)
{
	static char huge[UDC_AUTH_TOKEN_MAX + 2];
	const char *good = make_token(HS256, ATT("\"5\""), EVP_sha256(), KEY1);
	char		t[2048];
	int			ok = 1;

	ok &= refused(a, "", "not three base64url parts", "empty");
	ok &= refused(a, "abc", "not three base64url parts", "one part");
	ok &= refused(a, "abc.def", "not three base64url parts", "two parts");
	ok &= refused(a, "a.b.c.d", "not three base64url parts", "four parts");
	ok &= refused(a, ".abc.def", "not three base64url parts", "empty header");
	ok &= refused(a, "abc..def", "not three base64url parts", "empty payload");
	ok &= refused(a, "ab+c.def.ghi", "not three base64url parts", "'+'");
	ok &= refused(a, "abc.de=f.ghi", "not three base64url parts", "padding");
	ok &= refused(a, "garbage.garbage.garbage", "header is not", "three parts of garbage");
	ok &= refused(a, make_token("[\"alg\"]", ATT("\"5\""), EVP_sha256(), KEY1), "header is not", "header an array");
	ok &= refused(a, make_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", ATT("\"5\""), EVP_sha256(), KEY1), "header is not", "duplicate alg");
	ok &= refused(a, make_token(HS256, "{\"sub\":", EVP_sha256(), KEY1), "payload is not", "payload not JSON");
	ok &= refused(a, make_token(HS256, "17", EVP_sha256(), KEY1), "payload is not", "payload a number");
	ok &= refused(a, make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"role\":\"organizer\",\"exp\":%lld}", (long long) NOW + 60), EVP_sha256(), KEY1), "payload is not", "duplicate role");
	snprintf(t, sizeof(t), "%.*sA.%s", (int) (strchr(good, '.') - good), good, strchr(good, '.') + 1);
	ok &= refused(a, t, "header is not", "header of impossible length");
	memset(huge, 'A', sizeof(huge) - 1);
	huge[10] = '.';
	huge[20] = '.';
	ok &= refused(a, huge, "longer than 4096 bytes", "4097 bytes");
	huge[UDC_AUTH_TOKEN_MAX] = '\0';
	ok &= refused(a, huge, "header is not", "4096 bytes is decoded");
	report(ok, "malformed: parts missing or extra, non-base64url, bad or duplicate-keyed JSON, over 4096 bytes refused each with its reason");
}

static void
test_cache(udc_auth *a)
{
	const char *tok5;
	char		t5[1024];
	char		t6[1024];
	char		bad[1024];
	char		reason[256];
	udc_claims	c;
	int			ok = 1;

	/* one slot: every token lands in it, so only byte comparison tells them apart */
	ok &= udc_auth_set_cache_slots(a, 3) == -1;
	ok &= udc_auth_set_cache_slots(a, 1) == 0;
	tok5 = make_token(HS256, fmt("{\"sub\":\"5\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW + 100), EVP_sha256(), KEY1);
	snprintf(t5, sizeof(t5), "%s", tok5);
	snprintf(t6, sizeof(t6), "%s", make_token(HS256, fmt("{\"sub\":\"6\",\"role\":\"attendee\",\"exp\":%lld}", (long long) NOW + 100), EVP_sha256(), KEY1));
	snprintf(bad, sizeof(bad), "%s", t5);
	bad[strlen(bad) - 3] ^= 1;	/* same length, one character off */
	for (int round = 0; round < 2; round++)
	{
		ok &= accepted(a, t5, UDC_ROLE_ATTENDEE, 5, "5", "t5");
		ok &= refused(a, bad, "signature does not match", "t5 with its signature changed, after t5");
		ok &= accepted(a, t5, UDC_ROLE_ATTENDEE, 5, "5", "t5 again");
		ok &= accepted(a, t6, UDC_ROLE_ATTENDEE, 6, "6", "t6 after t5");
		ok &= accepted(a, t5, UDC_ROLE_ATTENDEE, 5, "5", "t5 after t6");
	}
	/* a prefix of a cached token (same hash input prefix) */
	ok &= udc_auth_verify(a, t5, strlen(t5) - 1, NOW, &c, reason, sizeof(reason)) == -1;
	report(ok, "cache: with one slot, a token differing in one byte or a prefix is refused after the real one was cached");

	ok = 1;
	ok &= accepted_at(a, t5, NOW + 99, UDC_ROLE_ATTENDEE, 5, "5", "cached t5 at exp - 1");
	ok &= udc_auth_verify(a, t5, strlen(t5), NOW + 100, &c, reason, sizeof(reason)) == -1 && strstr(reason, "expired") != NULL;
	snprintf(t6, sizeof(t6), "%s", make_token(HS256, fmt("{\"sub\":\"6\",\"role\":\"attendee\",\"exp\":%lld,\"nbf\":%lld}", (long long) NOW + 100, (long long) NOW + 10), EVP_sha256(), KEY1));
	ok &= refused(a, t6, "not valid yet", "t6 before nbf");
	ok &= accepted_at(a, t6, NOW + 10, UDC_ROLE_ATTENDEE, 6, "6", "t6 at nbf (now cached)");
	ok &= udc_auth_verify(a, t6, strlen(t6), NOW + 5, &c, reason, sizeof(reason)) == -1 && strstr(reason, "not valid yet") != NULL;
	ok &= udc_auth_verify(a, t6, strlen(t6), NOW + 100, &c, reason, sizeof(reason)) == -1 && strstr(reason, "expired") != NULL;
	report(ok, "cache: a cached token still expires at exp and is still refused before nbf");

	ok = 1;
	ok &= udc_auth_set_cache_slots(a, 0) == 0;
	ok &= accepted(a, t5, UDC_ROLE_ATTENDEE, 5, "5", "no cache");
	ok &= refused(a, bad, "signature does not match", "no cache, bad");
	ok &= udc_auth_set_cache_slots(a, UDC_AUTH_CACHE_SLOTS_DEFAULT) == 0;
	report(ok, "cache: turned off (0 slots), verification still works");
}

/* threads: tokens of persons 1..8 and each with a signature off by one byte */
#define NTOK 8
static char thread_tokens[2 * NTOK][512];

typedef struct
{
	udc_auth   *a;
	int			seed;
	int			errors;
} thread_arg;

static void *
verify_thread(void *p)
{
	thread_arg *arg = p;

	for (int i = 0; i < 20000; i++)
	{
		int			k = (i * 7 + arg->seed) % (2 * NTOK);
		udc_claims	c;
		char		reason[128];
		int			rc = udc_auth_verify(arg->a, thread_tokens[k], strlen(thread_tokens[k]),
										 NOW, &c, reason, sizeof(reason));

		if (k < NTOK ? rc != 0 || c.person != k + 1 : rc != -1)
			arg->errors++;
	}
	return NULL;
}

static void
test_threads(udc_auth *a)
{
	pthread_t	th[4];
	thread_arg	args[4];
	int			errors = 0;

	udc_auth_set_cache_slots(a, 4);
	for (int k = 0; k < NTOK; k++)
	{
		snprintf(thread_tokens[k], 512, "%s",
				 make_token(HS256, ATT(fmt("\"%d\"", k + 1)), EVP_sha256(), KEY1));
		memcpy(thread_tokens[NTOK + k], thread_tokens[k], sizeof(thread_tokens[k]));
		thread_tokens[NTOK + k][strlen(thread_tokens[k]) - 5] ^= 2;
	}
	for (int i = 0; i < 4; i++)
	{
		args[i] = (thread_arg) {a, i * 3, 0};
		pthread_create(&th[i], NULL, verify_thread, &args[i]);
	}
	for (int i = 0; i < 4; i++)
	{
		pthread_join(th[i], NULL);
		errors += args[i].errors;
	}
	if (errors)
		printf("# %d wrong answers\n", errors);
	report(errors == 0, "threads: 4 threads x 20000 verifications over 4 shared slots, 8 good and 8 forged tokens, all answered right");
	udc_auth_set_cache_slots(a, UDC_AUTH_CACHE_SLOTS_DEFAULT);
}

int
main(void)
{
	udc_auth   *a;

	if (mkdtemp(tmpdir) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}
	test_key_files();
	test_bearer();
	a = load(KEY1 "\n");
	test_sign(a);
	test_subjects(a);
	test_refusals(a);
	test_malformed(a);
	test_cache(a);
	test_threads(a);
	udc_auth_free(a);
	unlink(fmt("%s/keys", tmpdir));
	unlink(fmt("%s/bad", tmpdir));
	rmdir(tmpdir);
	printf("1..%d\n", test_no);
	return failures != 0;
}
