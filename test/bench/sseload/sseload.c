/*
 * sseload — load generator and client of udaconnect-httpd's live encounter
 * streams, for test/bench/50-sse.sh.
 *
 *   sseload --port PORT --persons LO:HI [--host ADDR] [--inflight N]
 *           [--open-timeout S] [--httpd-pid PID] [--settle S]
 *           [--brokers B --topic T --rate R --seconds S --pair-rate E
 *            --background LO:HI [--drain S] [--dump FILE] [--linger-ms L]]
 *           [--hold-file F --dump FILE]
 *
 * 1. Opens one stream per person LO..HI (GET /api/persons/{id}/encounters/stream,
 *    with the bearer token of the environment's SSELOAD_TOKEN), at most N
 *    connecting at once, and waits until each has sent its first line.
 *    With --httpd-pid, httpd's resident memory (VmRSS) is read before the
 *    first and --settle seconds after the last: the difference over the
 *    streams is the memory of one idle subscriber.
 * 2. With --brokers: produces R points/s for S seconds (produce.c), of which
 *    E pairs/s make encounters of the watched persons, paired LO, LO+1 ...;
 *    every event the streams receive for an encounter that ended after the
 *    start is timed from the produce of the point that caused it (streams.c);
 *    then waits up to --drain seconds until every watched person's stream
 *    has the event of the person's last point ("missing" counts those that
 *    did not), and with --httpd-pid reads httpd's VmRSS again.  --dump
 *    writes every event timed: person, ended_at, received (realtime us).
 *    The producer lingers L ms (default 25): the development broker
 *    (librdkafka's mock cluster) answers a fetch with one message set per
 *    partition, found by walking the partition's log from its start, so its
 *    CPU grows with the number of sets in its log; 5 ms sets of ~8 points
 *    made it the largest user of the 2 cores, starving the ingest beside
 *    it.  The linger is part of every latency timed.
 * 3. With --hold-file (instead of --brokers): the streams stay open, every
 *    encounter event they receive written to --dump as it comes (line by
 *    line: person, ended_at, received), until the file F exists; the load
 *    is made by someone else (50-sse.sh's dense phase inserts locations),
 *    who reads the dump as it grows.
 *
 * Prints key=value lines.  Exit status 0 when every stream opened, every
 * message was delivered and nothing is missing.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sseload.h"

static const char usage[] =
	"usage: sseload --port PORT --persons LO:HI [--host ADDR] [--inflight N]\n"
	"               [--open-timeout S] [--httpd-pid PID] [--settle S]\n"
	"               [--brokers B --topic T --rate R --seconds S --pair-rate E\n"
	"                --background LO:HI [--drain S] [--dump FILE] [--linger-ms L]]\n"
	"               [--hold-file F --dump FILE]\n"
	"  (the bearer token comes from SSELOAD_TOKEN)\n";

static long
rss_kb(long pid)
{
	char		path[64];
	char		line[256];
	long		kb = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
range(const char *s, const char *what, int *lo, int *hi)
{
	if (sscanf(s, "%d:%d", lo, hi) != 2 || *lo < 1 || *hi < *lo)
	{
		fprintf(stderr, "sseload: %s wants LO:HI with 1 <= LO <= HI\n", what);
		exit(2);
	}
}

static double
pct_ms(const int64_t *v, long n, double q)
{
	long		i = (long) (q * (double) (n - 1) + 0.5);

	return n ? (double) v[i] / 1000.0 : -1;
}

/* The latency part; 0 when everything arrived. */
static int
latency_run(const struct produce_opts *po, int npersons, double drain_s, FILE *dump)
{
	int64_t    *last = calloc((size_t) npersons, sizeof(int64_t));
	struct produce_result pr;
	const int64_t *lat;
	long		n;
	int			prc;
	int			missing;

	if (!last)
		return 1;
	streams_measure(cli_clock_us(CLOCK_REALTIME), dump);
	prc = produce_run(po, last, &pr);
	missing = streams_wait_for(last, drain_s);
	lat = streams_latencies(&n);
	printf("produced=%ld delivered=%ld failed=%ld pair_points=%ld produce_s=%.2f offered_per_s=%.0f\n",
		   pr.sent, pr.delivered, pr.failed, pr.pair_points, pr.seconds,
		   pr.seconds > 0 ? pr.sent / pr.seconds : 0);
	printf("events=%ld timed=%ld removed=%ld missing=%d p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
		   streams_events(), n, streams_removed(), missing, pct_ms(lat, n, 0.5),
		   pct_ms(lat, n, 0.95), pct_ms(lat, n, 0.99), n ? (double) lat[n - 1] / 1000.0 : -1);
	free(last);
	return prc != 0 || missing != 0 || n == 0;
}

/* --hold-file: every event to the dump as it comes, until the file exists. */
static int
hold_run(const char *hold, const char *dump_path)
{
	FILE	   *dump = fopen(dump_path, "w");
	long		events,
				removed;

	if (!dump)
	{
		perror(dump_path);
		return 1;
	}
	setvbuf(dump, NULL, _IOLBF, 0);
	streams_measure(0, dump);
	while (access(hold, F_OK) != 0)
		usleep(100000);
	events = streams_events();
	removed = streams_removed();
	/* no more writes to the dump */
	streams_measure(-1, NULL);
	printf("events=%ld removed=%ld streams_failed_meanwhile=%d\n", events, removed,
		   streams_failed());
	fclose(dump);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"persons", 1, 0, 'P'},
		{"inflight", 1, 0, 'i'}, {"open-timeout", 1, 0, 'o'}, {"httpd-pid", 1, 0, 'm'},
		{"settle", 1, 0, 's'}, {"brokers", 1, 0, 'b'}, {"topic", 1, 0, 't'},
		{"rate", 1, 0, 'r'}, {"seconds", 1, 0, 'S'}, {"pair-rate", 1, 0, 'e'},
		{"background", 1, 0, 'B'}, {"drain", 1, 0, 'd'}, {"dump", 1, 0, 'D'},
		{"hold-file", 1, 0, 'H'}, {"linger-ms", 1, 0, 'L'}, {0, 0, 0, 0}
	};
	struct stream_opts so = {.host = "127.0.0.1", .token = getenv("SSELOAD_TOKEN")};
	struct produce_opts po = {.topic = "locations", .rate = 50000, .seconds = 10, .pair_rate = 100,
	.linger_ms = 25};
	int			inflight = 64;
	double		open_timeout = 300;
	double		settle = 2;
	double		drain = 10;
	const char *dump_path = NULL;
	const char *hold = NULL;
	long		pid = 0;
	long		rss0 = -1;
	int			n;
	int			ok;
	int			opt;
	double		t0;
	struct rlimit rl;

	cli_progname = "sseload";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'h': so.host = optarg; break;
			case 'p': so.port = (int) cli_parse_long(optarg, "--port", 1, 65535); break;
			case 'P': range(optarg, "--persons", &so.person_lo, &so.person_hi); break;
			case 'i': inflight = (int) cli_parse_long(optarg, "--inflight", 1, 100000); break;
			case 'o': open_timeout = cli_parse_double(optarg, "--open-timeout", 0, 1e6); break;
			case 'm': pid = cli_parse_long(optarg, "--httpd-pid", 1, 1L << 30); break;
			case 's': settle = cli_parse_double(optarg, "--settle", 0, 3600); break;
			case 'b': po.brokers = optarg; break;
			case 't': po.topic = optarg; break;
			case 'r': po.rate = cli_parse_long(optarg, "--rate", 1, 10000000); break;
			case 'S': po.seconds = cli_parse_double(optarg, "--seconds", 0.1, 3600); break;
			case 'e': po.pair_rate = cli_parse_double(optarg, "--pair-rate", 0, 1e6); break;
			case 'B': range(optarg, "--background", &po.bg_lo, &po.bg_hi); break;
			case 'd': drain = cli_parse_double(optarg, "--drain", 0, 3600); break;
			case 'D': dump_path = optarg; break;
			case 'H': hold = optarg; break;
			case 'L': po.linger_ms = cli_parse_double(optarg, "--linger-ms", 0, 900000); break;
			default: cli_usage(usage, 2);
		}
	}
	cli_no_operands(argc, argv, usage);
	if (!so.port || !so.person_lo || (po.brokers && !po.bg_lo) || (hold && (po.brokers || !dump_path)))
		cli_usage(usage, 2);
	/* a descriptor per stream */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (pid)
		rss0 = rss_kb(pid);
	t0 = cli_clock_s(CLOCK_MONOTONIC);
	n = streams_open(&so, inflight, open_timeout);
	printf("streams=%d established=%d failed=%d open_s=%.2f\n", so.person_hi - so.person_lo + 1,
		   n, streams_failed(), cli_clock_s(CLOCK_MONOTONIC) - t0);
	ok = n == so.person_hi - so.person_lo + 1;
	if (pid)
	{
		long		rss1;

		usleep((useconds_t) (settle * 1e6));
		rss1 = rss_kb(pid);
		printf("rss_before_kb=%ld rss_after_kb=%ld rss_per_stream_bytes=%.0f\n", rss0, rss1,
			   n > 0 ? (double) (rss1 - rss0) * 1024.0 / n : 0);
	}
	fflush(stdout);
	if (ok && po.brokers)
	{
		po.pair_lo = so.person_lo;
		po.pair_hi = so.person_hi;
		FILE	   *dump = dump_path ? fopen(dump_path, "w") : NULL;

		if (dump_path && !dump)
		{
			perror(dump_path);
			return 1;
		}
		ok = latency_run(&po, so.person_hi - so.person_lo + 1, drain, dump) == 0;
		streams_measure(-1, NULL);
		if (dump)
			fclose(dump);
		printf("streams_failed_meanwhile=%d\n", streams_failed());
		if (pid)
			printf("rss_end_kb=%ld\n", rss_kb(pid));
	}
	if (ok && hold)
		ok = hold_run(hold, dump_path) == 0;
	streams_close();
	return ok ? 0 : 1;
}
