/*
 * gateway/common/auth.c — the JWT layer of auth.h: the key file, bearer
 * header parsing, verification with its cache of verified tokens, signing.
 *
 * Verification does not trust libjwt to choose the algorithm: libjwt 1.10's
 * jwt_decode verifies whatever alg the header names (an HS512 token passes
 * with an HS256 key) and, given no key, verifies nothing.  So the header is
 * decoded and its alg checked here first (only HS256), the payload's claims
 * are read here with jansson (strict types, duplicate names refused), and
 * libjwt is asked only whether the signature matches one of the keys.
 *
 * What it must not do: log, read the environment, or hand out claims of a
 * token that did not verify — the cache answers only for the very bytes of
 * a token it was given after that token verified, and re-checks the times.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <jansson.h>
#include <jwt.h>

#include "auth.h"
#include "smallfile.h"

#define KEY_MIN_BYTES 32
#define KEYS_MAX 16
#define KEY_FILE_MAX 65536
#define CACHE_SLOTS_MAX 65536

typedef struct cache_slot
{
	pthread_mutex_t lock;
	uint64_t	hash;
	size_t		len;			/* 0: empty */
	int64_t		nbf;			/* INT64_MIN when the token had none */
	udc_claims	claims;
	char		token[UDC_AUTH_CACHE_TOKEN_MAX];
} cache_slot;

struct udc_auth
{
	int			nkeys;
	unsigned char *keys[KEYS_MAX];
	int			keylen[KEYS_MAX];
	uint64_t	seed;			/* of the cache's hash, from getrandom() */
	unsigned	nslots;
	cache_slot *slots;
};

/* the three parts of a compact token, as offsets into it */
typedef struct token_parts
{
	size_t		hlen;			/* header: [0, hlen) */
	size_t		poff;
	size_t		plen;			/* payload: [poff, poff + plen) */
	size_t		soff;
	size_t		slen;			/* signature: [soff, soff + slen) */
} token_parts;

static int
fail(char *buf, size_t buflen, const char *fmt,...) __attribute__((format(printf, 3, 4)));

static int
fail(char *buf, size_t buflen, const char *fmt,...)
{
	va_list		ap;

	if (buf != NULL && buflen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(buf, buflen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---------------------------------------------------------------- base64url */

static const char b64url_chars[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
udc_base64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t		o = 0;
	size_t		i;

	for (i = 0; i + 2 < n; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (i < n)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (i + 1 < n ? (uint32_t) in[i + 1] << 8 : 0);

		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url_chars[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode n base64url characters (no padding) into out (room for n * 3 / 4
 * bytes); the decoded length, or -1 for a character outside the alphabet or
 * a length no encoding has (n % 4 == 1).
 */
static long
b64url_decode(const char *in, size_t n, unsigned char *out)
{
	uint32_t	acc = 0;
	int			bits = 0;
	long		o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++)
	{
		int			v = b64url_value((unsigned char) in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
		}
	}
	return o;
}

/* ----------------------------------------------------------------- key file */

static void
free_keys(udc_auth *a)
{
	for (int i = 0; i < a->nkeys; i++)
	{
		explicit_bzero(a->keys[i], a->keylen[i]);
		free(a->keys[i]);
	}
	a->nkeys = 0;
}

/* one key a non-empty line, trailing blanks stripped; 0 or -1 */
static int
parse_keys(udc_auth *a, const char *path, char *buf, long n, char *err, size_t errlen)
{
	long		start = 0;
	int			lineno = 0;

	while (start < n)
	{
		long		end = start;
		long		klen;

		while (end < n && buf[end] != '\n')
			end++;
		lineno++;
		klen = end - start;
		while (klen > 0 && isspace((unsigned char) buf[start + klen - 1]))
			klen--;
		if (klen > 0 && klen < KEY_MIN_BYTES)
			return fail(err, errlen, "key file \"%s\", line %d: the key is %ld bytes, at least %d are required",
						path, lineno, klen, KEY_MIN_BYTES);
		if (klen > 0 && a->nkeys == KEYS_MAX)
			return fail(err, errlen, "key file \"%s\" holds more than %d keys", path, KEYS_MAX);
		if (klen > 0)
		{
			a->keys[a->nkeys] = malloc(klen);
			if (a->keys[a->nkeys] == NULL)
				return fail(err, errlen, "out of memory");
			memcpy(a->keys[a->nkeys], buf + start, klen);
			a->keylen[a->nkeys++] = (int) klen;
		}
		start = end + 1;
	}
	if (a->nkeys == 0)
		return fail(err, errlen, "key file \"%s\" holds no key", path);
	return 0;
}

udc_auth *
udc_auth_load(const char *path, char *err, size_t errlen)
{
	udc_auth   *a;
	char	   *buf;
	size_t		n;
	int			rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
	{
		fail(err, errlen, "out of memory");
		return NULL;
	}
	buf = udc_read_small_file("key file", path, KEY_FILE_MAX, &n, err, errlen);
	rc = buf == NULL ? -1 : parse_keys(a, path, buf, (long) n, err, errlen);
	if (buf != NULL)
	{
		explicit_bzero(buf, n);
		free(buf);
	}
	if (rc == 0 && getrandom(&a->seed, sizeof(a->seed), 0) != sizeof(a->seed))
		rc = fail(err, errlen, "getrandom: %s", strerror(errno));
	if (rc == 0 && udc_auth_set_cache_slots(a, UDC_AUTH_CACHE_SLOTS_DEFAULT) != 0)
		rc = fail(err, errlen, "out of memory");
	if (rc != 0)
	{
		udc_auth_free(a);
		return NULL;
	}
	return a;
}

static void
free_cache(udc_auth *a)
{
	for (unsigned i = 0; i < a->nslots; i++)
	{
		explicit_bzero(&a->slots[i].claims, sizeof(a->slots[i].claims));
		pthread_mutex_destroy(&a->slots[i].lock);
	}
	free(a->slots);
	a->slots = NULL;
	a->nslots = 0;
}

int
udc_auth_set_cache_slots(udc_auth *a, unsigned slots)
{
	if (slots > CACHE_SLOTS_MAX || (slots & (slots - 1)) != 0)
		return -1;
	free_cache(a);
	if (slots == 0)
		return 0;
	/* calloc: the slots' pages are touched only as tokens land in them */
	a->slots = calloc(slots, sizeof(cache_slot));
	if (a->slots == NULL)
		return -1;
	for (unsigned i = 0; i < slots; i++)
		pthread_mutex_init(&a->slots[i].lock, NULL);
	a->nslots = slots;
	return 0;
}

void
udc_auth_free(udc_auth *a)
{
	if (a == NULL)
		return;
	free_keys(a);
	free_cache(a);
	free(a);
}

/* ------------------------------------------------------------ bearer header */

int
udc_auth_bearer(const char *h, const char **token, size_t *len)
{
	const char *p;
	size_t		n;

	if (h == NULL)
		return -1;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return -1;
	p = h + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	if (n == 0 || memchr(p, ' ', n) != NULL || memchr(p, '\t', n) != NULL)
		return -1;
	*token = p;
	*len = n;
	return 0;
}

/* -------------------------------------------------------------------- cache */

/* a seeded 64-bit hash of the token (it picks the slot; bytes are compared) */
static uint64_t
token_hash(uint64_t seed, const char *s, size_t n)
{
	uint64_t	h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		uint64_t	w;

		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
		h ^= h >> 31;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char) s[i]) * 0x94D049BB133111EBULL;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ULL;
	return h ^ (h >> 32);
}

static int
cache_lookup(udc_auth *a, uint64_t h, const char *token, size_t len,
			 udc_claims *c, int64_t *nbf)
{
	cache_slot *s;
	int			hit;

	if (a->nslots == 0 || len > UDC_AUTH_CACHE_TOKEN_MAX)
		return 0;
	s = &a->slots[h & (a->nslots - 1)];
	pthread_mutex_lock(&s->lock);
	hit = s->len == len && s->hash == h && memcmp(s->token, token, len) == 0;
	if (hit)
	{
		*c = s->claims;
		*nbf = s->nbf;
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

static void
cache_store(udc_auth *a, uint64_t h, const char *token, size_t len,
			const udc_claims *c, int64_t nbf)
{
	cache_slot *s;

	if (a->nslots == 0 || len > UDC_AUTH_CACHE_TOKEN_MAX)
		return;
	s = &a->slots[h & (a->nslots - 1)];
	pthread_mutex_lock(&s->lock);
	s->hash = h;
	s->len = len;
	s->nbf = nbf;
	s->claims = *c;
	memcpy(s->token, token, len);
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------- verification */

/* split into three parts of base64url characters (the signature may be empty) */
static int
split_token(const char *t, size_t len, token_parts *p)
{
	const char *d1;
	const char *d2;

	d1 = memchr(t, '.', len);
	if (d1 == NULL)
		return -1;
	d2 = memchr(d1 + 1, '.', len - (d1 + 1 - t));
	if (d2 == NULL || memchr(d2 + 1, '.', len - (d2 + 1 - t)) != NULL)
		return -1;
	p->hlen = d1 - t;
	p->poff = p->hlen + 1;
	p->plen = d2 - (d1 + 1);
	p->soff = (d2 + 1) - t;
	p->slen = len - p->soff;
	if (p->hlen == 0 || p->plen == 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (t[i] != '.' && b64url_value((unsigned char) t[i]) < 0)
			return -1;
	return 0;
}

/* a part decoded and parsed as a JSON object (duplicate names refused), or NULL */
static json_t *
decode_json_part(const char *s, size_t n)
{
	unsigned char buf[UDC_AUTH_TOKEN_MAX];
	long		m = b64url_decode(s, n, buf);
	json_t	   *j;

	if (m < 0)
		return NULL;
	j = json_loadb((const char *) buf, m, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL && !json_is_object(j))
	{
		json_decref(j);
		return NULL;
	}
	return j;
}

/* the header: a JSON object whose alg is HS256, and no crit */
static int
check_header(const char *token, const token_parts *p, char *reason, size_t rl)
{
	json_t	   *h = decode_json_part(token, p->hlen);
	json_t	   *alg;
	int			rc = 0;

	if (h == NULL)
		return fail(reason, rl, "malformed token: the header is not base64url-encoded JSON object");
	alg = json_object_get(h, "alg");
	if (alg == NULL || !json_is_string(alg))
		rc = fail(reason, rl, "malformed token: the header has no alg");
	else if (strcasecmp(json_string_value(alg), "none") == 0)
		rc = fail(reason, rl, "alg \"none\" (an unsigned token) is refused");
	else if (strcmp(json_string_value(alg), "HS256") != 0)
		rc = fail(reason, rl, "alg \"%.16s\" is refused (only HS256 is accepted)",
				  json_string_value(alg));
	else if (json_object_get(h, "crit") != NULL)
		rc = fail(reason, rl, "the header's crit extensions are not supported");
	json_decref(h);
	return rc;
}

/* does libjwt find the signature made by one of the keys (with HS256)? */
static int
check_signature(udc_auth *a, const char *token, size_t len, char *reason, size_t rl)
{
	char		buf[UDC_AUTH_TOKEN_MAX + 1];

	memcpy(buf, token, len);
	buf[len] = '\0';
	for (int i = 0; i < a->nkeys; i++)
	{
		jwt_t	   *j = NULL;
		int			rc = jwt_decode(&j, buf, a->keys[i], a->keylen[i]);
		int			hs256 = rc == 0 && j != NULL && jwt_get_alg(j) == JWT_ALG_HS256;

		if (j != NULL)
			jwt_free(j);
		if (hs256)
			return 0;
	}
	return fail(reason, rl, "the signature does not match any key");
}

/* a NumericDate claim: 1 and *v if present, 0 if absent, -1 if not a number */
static int
get_time(json_t *payload, const char *name, int64_t *v)
{
	json_t	   *j = json_object_get(payload, name);
	double		d;

	if (j == NULL)
		return 0;
	if (json_is_integer(j))
	{
		*v = json_integer_value(j);
		return 1;
	}
	if (!json_is_real(j))
		return -1;
	d = floor(json_real_value(j));
	if (!(d > -9.2e18 && d < 9.2e18))
		return -1;
	*v = (int64_t) d;
	return 1;
}

/* an attendee's sub: 1..INT32_MAX, a JSON integer or decimal digits (no sign, no leading 0) */
static int
attendee_person(json_t *sub, int32_t *person)
{
	const char *s;
	size_t		n;
	long long	v = 0;

	if (json_is_integer(sub))
	{
		v = json_integer_value(sub);
		if (v < 1 || v > INT32_MAX)
			return -1;
		*person = (int32_t) v;
		return 0;
	}
	if (!json_is_string(sub))
		return -1;
	s = json_string_value(sub);
	n = json_string_length(sub);
	if (n == 0 || n > 10 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > INT32_MAX)
		return -1;
	*person = (int32_t) v;
	return 0;
}

/* role and sub into *c */
static int
read_identity(json_t *payload, udc_claims *c, char *reason, size_t rl)
{
	json_t	   *sub = json_object_get(payload, "sub");
	json_t	   *role = json_object_get(payload, "role");
	const char *r;

	if (sub == NULL)
		return fail(reason, rl, "the token has no sub");
	if (role == NULL)
		return fail(reason, rl, "the token has no role");
	if (!json_is_string(role))
		return fail(reason, rl, "the token's role is not a string");
	r = json_string_value(role);
	if (strcmp(r, "attendee") == 0)
	{
		c->role = UDC_ROLE_ATTENDEE;
		if (attendee_person(sub, &c->person) != 0)
			return fail(reason, rl, "an attendee's sub must be a person id, a positive 32-bit integer");
		snprintf(c->sub, sizeof(c->sub), "%d", (int) c->person);
		return 0;
	}
	if (strcmp(r, "organizer") != 0)
		return fail(reason, rl, "role \"%.32s\" is neither attendee nor organizer", r);
	c->role = UDC_ROLE_ORGANIZER;
	c->person = 0;
	if (!json_is_string(sub) || json_string_length(sub) == 0 ||
		json_string_length(sub) >= sizeof(c->sub) ||
		strlen(json_string_value(sub)) != json_string_length(sub))
		return fail(reason, rl, "an organizer's sub must be a name of 1 to %zu bytes", sizeof(c->sub) - 1);
	memcpy(c->sub, json_string_value(sub), json_string_length(sub) + 1);
	return 0;
}

/* exp, nbf, role and sub from the payload */
static int
read_claims(json_t *payload, udc_claims *c, int64_t *nbf, char *reason, size_t rl)
{
	int			rc;

	memset(c, 0, sizeof(*c));
	*nbf = INT64_MIN;
	rc = get_time(payload, "exp", &c->exp);
	if (rc == 0)
		return fail(reason, rl, "the token has no exp");
	if (rc < 0)
		return fail(reason, rl, "the token's exp is not a number");
	if (get_time(payload, "nbf", nbf) < 0)
		return fail(reason, rl, "the token's nbf is not a number");
	return read_identity(payload, c, reason, rl);
}

/*
 * The whole check of a token not in the cache, in this order: the header
 * (alg), the payload is JSON, the signature, the claims.
 */
static int
verify_token(udc_auth *a, const char *token, size_t len, const token_parts *p,
			 udc_claims *c, int64_t *nbf, char *reason, size_t rl)
{
	json_t	   *payload;
	int			rc;

	if (check_header(token, p, reason, rl) != 0)
		return -1;
	payload = decode_json_part(token + p->poff, p->plen);
	if (payload == NULL)
		return fail(reason, rl, "malformed token: the payload is not a base64url-encoded JSON object");
	rc = check_signature(a, token, len, reason, rl);
	if (rc == 0)
		rc = read_claims(payload, c, nbf, reason, rl);
	json_decref(payload);
	return rc;
}

static int
check_times(const udc_claims *c, int64_t nbf, int64_t now_s, char *reason, size_t rl)
{
	if (c->exp <= now_s)
		return fail(reason, rl, "the token expired (exp %lld <= now %lld)",
					(long long) c->exp, (long long) now_s);
	if (nbf > now_s)
		return fail(reason, rl, "the token is not valid yet (nbf %lld > now %lld)",
					(long long) nbf, (long long) now_s);
	return 0;
}

int
udc_auth_verify(udc_auth *a, const char *token, size_t len, int64_t now_s,
				udc_claims *out, char *reason, size_t reasonlen)
{
	token_parts p;
	udc_claims	c;
	int64_t		nbf;
	uint64_t	h;

	if (len > UDC_AUTH_TOKEN_MAX)
		return fail(reason, reasonlen, "the token is longer than %d bytes", UDC_AUTH_TOKEN_MAX);
	if (token == NULL || len == 0)
		return fail(reason, reasonlen, "malformed token: not three base64url parts");

	/* the same bytes as a token that verified: only the times can have changed */
	h = token_hash(a->seed, token, len);
	if (cache_lookup(a, h, token, len, &c, &nbf))
	{
		if (check_times(&c, nbf, now_s, reason, reasonlen) != 0)
			return -1;
		*out = c;
		return 0;
	}
	if (split_token(token, len, &p) != 0)
		return fail(reason, reasonlen, "malformed token: not three base64url parts");
	if (verify_token(a, token, len, &p, &c, &nbf, reason, reasonlen) != 0 ||
		check_times(&c, nbf, now_s, reason, reasonlen) != 0)
		return -1;
	cache_store(a, h, token, len, &c, nbf);
	*out = c;
	return 0;
}

/* ------------------------------------------------------------------ signing */

static int
add_claims(jwt_t *j, const udc_claims *c, int64_t now_s, int64_t ttl_s)
{
	char		sub[16];

	if (c->role == UDC_ROLE_ATTENDEE)
		snprintf(sub, sizeof(sub), "%d", (int) c->person);
	if (jwt_add_grant(j, "sub", c->role == UDC_ROLE_ATTENDEE ? sub : c->sub) != 0 ||
		jwt_add_grant(j, "role", c->role == UDC_ROLE_ATTENDEE ? "attendee" : "organizer") != 0 ||
		jwt_add_grant_int(j, "iat", (long) now_s) != 0 ||
		jwt_add_grant_int(j, "exp", (long) (now_s + ttl_s)) != 0)
		return -1;
	return 0;
}

static int
check_sign_args(const udc_claims *c, int64_t now_s, int64_t ttl_s, char *err, size_t errlen)
{
	if (c->role != UDC_ROLE_ATTENDEE && c->role != UDC_ROLE_ORGANIZER)
		return fail(err, errlen, "unknown role %d", (int) c->role);
	if (c->role == UDC_ROLE_ATTENDEE && c->person <= 0)
		return fail(err, errlen, "an attendee's person id must be positive");
	if (c->role == UDC_ROLE_ORGANIZER &&
		(c->sub[0] == '\0' || memchr(c->sub, '\0', sizeof(c->sub)) == NULL))
		return fail(err, errlen, "an organizer's name must be 1 to %zu bytes", sizeof(c->sub) - 1);
	if (ttl_s <= 0 || ttl_s > INT32_MAX || now_s < 0 || now_s > INT64_MAX / 2)
		return fail(err, errlen, "the lifetime must be positive and the time not negative");
	return 0;
}

char *
udc_auth_sign(udc_auth *a, const udc_claims *c, int64_t now_s, int64_t ttl_s,
			  char *err, size_t errlen)
{
	jwt_t	   *j = NULL;
	char	   *token = NULL;

	if (check_sign_args(c, now_s, ttl_s, err, errlen) != 0)
		return NULL;
	if (jwt_new(&j) != 0)
	{
		fail(err, errlen, "out of memory");
		return NULL;
	}
	if (jwt_set_alg(j, JWT_ALG_HS256, a->keys[0], a->keylen[0]) != 0 ||
		add_claims(j, c, now_s, ttl_s) != 0 ||
		(token = jwt_encode_str(j)) == NULL)
		fail(err, errlen, "libjwt could not sign the token: %s", strerror(errno));
	jwt_free(j);
	return token;
}
