/*
 * auth_bench [N] — the cost of udc_auth_verify (gateway/common/auth.c) per
 * call: uncached (the cache turned off: base64url, two JSON parses, libjwt's
 * decode and HMAC-SHA256), cached (hash, one slot lock, byte comparison), and
 * cached from 2 threads at once, on one token and on a token each.  Output is
 * TAP: one check that the cache is at least 5 times cheaper, the numbers as
 * its description and as comments.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"

#define NOW INT64_C(1800000000)

typedef struct
{
	udc_auth   *a;
	const char *token;
	long		n;
	long		bad;
} job;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run(void *p)
{
	job		   *j = p;
	size_t		len = strlen(j->token);
	udc_claims	c;
	char		reason[128];

	for (long i = 0; i < j->n; i++)
		if (udc_auth_verify(j->a, j->token, len, NOW, &c, reason, sizeof(reason)) != 0)
			j->bad++;
	return NULL;
}

/* ns per call with one thread */
static double
one(udc_auth *a, const char *token, long n)
{
	job			j = {a, token, n, 0};
	double		t0 = now_s();

	run(&j);
	if (j.bad)
		printf("# %ld calls failed\n", j.bad);
	return (now_s() - t0) * 1e9 / n;
}

/* calls per second with two threads */
static double
two(udc_auth *a, const char *t1, const char *t2, long n)
{
	job			j[2] = {{a, t1, n, 0}, {a, t2, n, 0}};
	pthread_t	th[2];
	double		t0 = now_s();

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, run, &j[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	return 2 * n / (now_s() - t0);
}

int
main(int argc, char **argv)
{
	long		n = argc > 1 ? atol(argv[1]) : 200000;
	char		path[] = "/tmp/auth_bench.XXXXXX";
	char		err[256];
	int			fd = mkstemp(path);
	udc_auth   *a;
	udc_claims	c1 = {.role = UDC_ROLE_ATTENDEE, .person = 1234567};
	udc_claims	c2 = {.role = UDC_ROLE_ATTENDEE, .person = 7654321};
	char	   *t1;
	char	   *t2;
	double		unc,
				hit;

	if (fd < 0 || write(fd, "bench-key-0123456789abcdefghijklmnopqrstuvwxyz\n", 47) != 47)
		return 2;
	close(fd);
	a = udc_auth_load(path, err, sizeof(err));
	unlink(path);
	if (a == NULL)
		return 2;
	t1 = udc_auth_sign(a, &c1, NOW - 10, 86400, err, sizeof(err));
	t2 = udc_auth_sign(a, &c2, NOW - 10, 86400, err, sizeof(err));
	udc_auth_set_cache_slots(a, 0);
	one(a, t1, n / 50);
	unc = one(a, t1, n / 10);
	printf("# uncached: %.0f ns per verify (%zu-byte token), %.0f calls/s on one core\n",
		   unc, strlen(t1), 1e9 / unc);
	printf("# uncached, 2 threads: %.0f calls/s\n", two(a, t1, t2, n / 10));
	udc_auth_set_cache_slots(a, UDC_AUTH_CACHE_SLOTS_DEFAULT);
	hit = one(a, t1, n);
	printf("# cached: %.0f ns per verify, %.0f calls/s on one core\n", hit, 1e9 / hit);
	printf("# cached, 2 threads, one token (one slot): %.0f calls/s\n", two(a, t1, t1, n));
	printf("# cached, 2 threads, a token each: %.0f calls/s\n", two(a, t1, t2, n));
	printf("%sok 1 - verify cost: uncached %.1f us, cached %.0f ns per call (cache %.0fx cheaper, at least 5x expected)\n",
		   hit * 5 < unc ? "" : "not ", unc / 1000, hit, unc / hit);
	printf("1..1\n");
	free(t1);
	free(t2);
	udc_auth_free(a);
	return hit * 5 < unc ? 0 : 1;
}
