/*
 * grpcload — a gRPC load generator on the gRPC core C API, for
 * test/bench/30-grpc.sh.
 *
 *   grpcload --addr HOST:PORT --mode unary|legacy|stream
 *            [--concurrency N] [--seconds S] [--stream-size N]
 *            [--threads N] [--timeout S] [--token JWT]
 *
 * unary   N concurrent /udaconnect.v1.LocationService/RecordLocation calls
 * legacy  the same with /LocationService/updateLocation (original proto)
 * health  N concurrent /grpc.health.v1.Health/Check calls (gRPC only, no Kafka)
 * stream  N concurrent /udaconnect.v1.LocationService/RecordLocations
 *         streams of --stream-size locations each
 *
 * --token sends `authorization: Bearer JWT` with every call (the gateways'
 * UDACONNECT_AUTH=on).
 *
 * Each thread has its own channel (own TCP connection) and completion queue
 * and keeps concurrency/threads calls in flight for --seconds, then waits for
 * the calls in flight.  Prints one line of key=value results:
 *   calls ok failed seconds calls_per_s locations locations_per_s p50_ms p99_ms
 *   cpu_s (this process's user + system CPU time)
 * Locations count only what the server acknowledged (OK status; for streams
 * the response's `accepted`).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "cli.h"

#define NPAYLOAD 1024
#define HIST_BUCKETS 200000		/* 10 us each: 2 s */

static const char *addr = "127.0.0.1:30005";
static const char *mode = "unary";
static int	concurrency = 64;
static double seconds = 5;
static int	stream_size = 10000;
static int	nthreads = 1;
static int	timeout_s = 30;
static grpc_metadata auth_md;	/* authorization, when --token is given */
static size_t n_auth_md = 0;

static grpc_slice payload[NPAYLOAD];
static grpc_slice method;
static double t_end;

static atomic_long total_calls,
			total_ok,
			total_failed,
			total_locations;
static atomic_long hist[HIST_BUCKETS + 1];
static char first_error[256];
static atomic_int error_set;

static const char usage[] =
	"usage: grpcload --addr HOST:PORT --mode unary|legacy|stream [--concurrency N]"
	" [--seconds S] [--stream-size N] [--threads N] [--timeout S] [--token JWT]\n";

/* ---- request messages, hand-encoded (pb_put_* of gateway/common/cli.h) ---- */
static grpc_slice
make_location(int i, bool legacy)
{
	uint8_t		b[64],
				ts[24];
	size_t		n = 0,
				tn = 0;
	int			person = 1 + i % 997;
	double		lat = -80 + (i % 1600) / 10.0,
				lon = -170 + (i % 3400) / 10.0;
	int64_t		secs = (int64_t) time(NULL) - 3600 - i;

	ts[tn++] = 0x08;
	tn += pb_put_varint(ts + tn, (uint64_t) secs);
	ts[tn++] = 0x10;
	tn += pb_put_varint(ts + tn, (uint64_t) (i * 1000));
	b[n++] = 0x08;
	n += pb_put_varint(b + n, (uint64_t) person);
	if (legacy)
	{
		/* int32 latitude = 2; int32 longitude = 3 (negative: 10-byte varint) */
		b[n++] = 0x10;
		n += pb_put_varint(b + n, (uint64_t) (int64_t) (int) lat);
		b[n++] = 0x18;
		n += pb_put_varint(b + n, (uint64_t) (int64_t) (int) lon);
	}
	else
	{
		n += pb_put_double(b + n, 2, lat);
		n += pb_put_double(b + n, 3, lon);
	}
	b[n++] = 0x22;
	n += pb_put_varint(b + n, tn);
	memcpy(b + n, ts, tn);
	n += tn;
	return grpc_slice_from_copied_buffer((const char *) b, n);
}

/* field 1 (varint) of a response, e.g. RecordLocationsResponse.accepted */
static long
response_field1(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice	s;
	const uint8_t *p;
	size_t		n,
				i = 0;
	long		v = 0;

	if (bb == NULL || !grpc_byte_buffer_reader_init(&r, bb))
		return 0;
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	p = GRPC_SLICE_START_PTR(s);
	n = GRPC_SLICE_LENGTH(s);
	if (n > 0 && p[0] == 0x08)
	{
		int			shift = 0;

		for (i = 1; i < n && shift < 63; i++, shift += 7)
		{
			v |= (long) (p[i] & 0x7f) << shift;
			if (!(p[i] & 0x80))
				break;
		}
	}
	grpc_slice_unref(s);
	return v;
}

/* ---- calls ---- */
typedef struct slot
{
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_call  *call;
	int			phase;			/* 0 unary; 1 streaming sends; 2 stream final */
	int			sent;
	unsigned	seq;
	double		started;
	grpc_op		ops[6];
	grpc_metadata_array init_md,
				trail_md;
	grpc_byte_buffer *send_buf,
			   *recv_buf;
	grpc_status_code status;
	grpc_slice	details;
} slot;

static void
note_error(grpc_status_code st, grpc_slice details)
{
	if (atomic_exchange(&error_set, 1) == 0)
		snprintf(first_error, sizeof(first_error), "status %d: %.*s", (int) st,
				 (int) GRPC_SLICE_LENGTH(details), (const char *) GRPC_SLICE_START_PTR(details));
}

static void
start_call(slot *s)
{
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(timeout_s, GPR_TIMESPAN));
	size_t		n = 0;
	bool		streaming = strcmp(mode, "stream") == 0;

	s->call = grpc_channel_create_call(s->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, method, NULL, dl, NULL);
	s->started = cli_clock_s(CLOCK_MONOTONIC);
	s->sent = 0;
	grpc_metadata_array_init(&s->init_md);
	grpc_metadata_array_init(&s->trail_md);
	s->recv_buf = NULL;
	s->details = grpc_empty_slice();
	memset(s->ops, 0, sizeof(s->ops));
	s->ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	s->ops[n].data.send_initial_metadata.count = n_auth_md;
	s->ops[n++].data.send_initial_metadata.metadata = n_auth_md ? &auth_md : NULL;
	s->send_buf = grpc_raw_byte_buffer_create(&payload[s->seq++ % NPAYLOAD], 1);
	s->ops[n].op = GRPC_OP_SEND_MESSAGE;
	s->ops[n++].data.send_message.send_message = s->send_buf;
	if (!streaming)
	{
		s->phase = 0;
		s->ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		s->ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		s->ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
		s->ops[n].op = GRPC_OP_RECV_MESSAGE;
		s->ops[n++].data.recv_message.recv_message = &s->recv_buf;
		s->ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
		s->ops[n].data.recv_status_on_client.trailing_metadata = &s->trail_md;
		s->ops[n].data.recv_status_on_client.status = &s->status;
		s->ops[n++].data.recv_status_on_client.status_details = &s->details;
	}
	else
	{
		s->phase = 1;
		s->ops[1].flags = GRPC_WRITE_BUFFER_HINT;
	}
	s->sent = 1;
	if (grpc_call_start_batch(s->call, s->ops, n, s, NULL) != GRPC_CALL_OK)
	{
		fprintf(stderr, "grpcload: grpc_call_start_batch failed\n");
		exit(1);
	}
}

static void
stream_final(slot *s)
{
	size_t		n = 0;

	s->phase = 2;
	memset(s->ops, 0, sizeof(s->ops));
	s->ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	s->ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
	s->ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
	s->ops[n].op = GRPC_OP_RECV_MESSAGE;
	s->ops[n++].data.recv_message.recv_message = &s->recv_buf;
	s->ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	s->ops[n].data.recv_status_on_client.trailing_metadata = &s->trail_md;
	s->ops[n].data.recv_status_on_client.status = &s->status;
	s->ops[n++].data.recv_status_on_client.status_details = &s->details;
	grpc_call_start_batch(s->call, s->ops, n, s, NULL);
}

/* returns true when the call finished */
static bool
on_complete(slot *s, bool ok)
{
	if (s->send_buf)
	{
		grpc_byte_buffer_destroy(s->send_buf);
		s->send_buf = NULL;
	}
	if (s->phase == 1)
	{
		if (!ok || s->sent >= stream_size)
		{
			stream_final(s);
			return false;
		}
		memset(s->ops, 0, sizeof(grpc_op));
		s->send_buf = grpc_raw_byte_buffer_create(&payload[s->seq++ % NPAYLOAD], 1);
		s->ops[0].op = GRPC_OP_SEND_MESSAGE;
		s->ops[0].flags = (s->sent + 1 < stream_size) ? GRPC_WRITE_BUFFER_HINT : 0;
		s->ops[0].data.send_message.send_message = s->send_buf;
		s->sent++;
		grpc_call_start_batch(s->call, s->ops, 1, s, NULL);
		return false;
	}
	/* unary or stream final */
	atomic_fetch_add(&total_calls, 1);
	if (s->status == GRPC_STATUS_OK)
	{
		double		lat = cli_clock_s(CLOCK_MONOTONIC) - s->started;
		long		b = (long) (lat * 100000);

		atomic_fetch_add(&total_ok, 1);
		atomic_fetch_add(&total_locations, s->phase == 2 ? response_field1(s->recv_buf) : 1);
		atomic_fetch_add(&hist[b < HIST_BUCKETS ? b : HIST_BUCKETS], 1);
	}
	else
	{
		atomic_fetch_add(&total_failed, 1);
		note_error(s->status, s->details);
	}
	if (s->recv_buf)
		grpc_byte_buffer_destroy(s->recv_buf);
	grpc_slice_unref(s->details);
	grpc_metadata_array_destroy(&s->init_md);
	grpc_metadata_array_destroy(&s->trail_md);
	grpc_call_unref(s->call);
	s->call = NULL;
	return true;
}

static void *
thread_main(void *arg)
{
	int			id = (int) (intptr_t) arg;
	int			nslots = concurrency / nthreads + (id < concurrency % nthreads ? 1 : 0);
	grpc_arg	a[2];
	grpc_channel_args args = {2, a};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	slot	   *slots = calloc(nslots, sizeof(slot));
	int			active = 0;

	a[0].type = GRPC_ARG_INTEGER;
	a[0].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
	a[0].value.integer = 1;
	a[1].type = GRPC_ARG_INTEGER;
	a[1].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
	a[1].value.integer = 1000;
	ch = grpc_channel_create(addr, creds, &args);
	grpc_channel_credentials_release(creds);
	for (int i = 0; i < nslots; i++)
	{
		slots[i].ch = ch;
		slots[i].cq = cq;
		slots[i].seq = (unsigned) (i * 7919 + id * 104729);
		start_call(&slots[i]);
		active++;
	}
	while (active > 0)
	{
		grpc_event	ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

		if (ev.type != GRPC_OP_COMPLETE)
			break;
		if (on_complete(ev.tag, ev.success != 0))
		{
			if (cli_clock_s(CLOCK_MONOTONIC) < t_end)
				start_call(ev.tag);
			else
				active--;
		}
	}
	grpc_channel_destroy(ch);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	free(slots);
	return NULL;
}

static double
percentile(double p)
{
	long		total = 0,
				acc = 0;

	for (int i = 0; i <= HIST_BUCKETS; i++)
		total += hist[i];
	if (total == 0)
		return 0;
	for (int i = 0; i <= HIST_BUCKETS; i++)
	{
		acc += hist[i];
		if (acc >= p * total)
			return (i + 1) * 0.01;
	}
	return HIST_BUCKETS * 0.01;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"mode", required_argument, NULL, 'm'},
		{"concurrency", required_argument, NULL, 'c'},
		{"seconds", required_argument, NULL, 's'},
		{"stream-size", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"token", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0}
	};
	int			o;
	pthread_t  *th;
	double		t0,
				el;
	bool		legacy;
	struct rusage ru;
	const char *token = NULL;

	cli_progname = "grpcload";
	while ((o = getopt_long(argc, argv, "a:m:c:s:n:j:t:k:", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'a':
				addr = optarg;
				break;
			case 'm':
				mode = optarg;
				break;
			case 'c':
				concurrency = (int) cli_parse_long(optarg, "--concurrency", 1, 1000000);
				break;
			case 's':
				seconds = cli_parse_double(optarg, "--seconds", 0, 1e6);
				break;
			case 'n':
				stream_size = (int) cli_parse_long(optarg, "--stream-size", 1, 100000000);
				break;
			case 'j':
				nthreads = (int) cli_parse_long(optarg, "--threads", 1, 1024);
				break;
			case 't':
				timeout_s = (int) cli_parse_long(optarg, "--timeout", 1, 86400);
				break;
			case 'k':
				token = optarg;
				break;
			default:
				cli_usage(usage, 2);
		}
	}
	if (concurrency < 1 || nthreads < 1 || nthreads > concurrency || stream_size < 1 || seconds <= 0 || timeout_s < 1
		|| (strcmp(mode, "unary") && strcmp(mode, "legacy") && strcmp(mode, "stream") && strcmp(mode, "health")))
	{
		fprintf(stderr, "grpcload: bad arguments (mode unary|legacy|stream, concurrency >= threads >= 1)\n");
		return 2;
	}
	legacy = strcmp(mode, "legacy") == 0;
	grpc_init();
	if (token)
	{
		char	   *bearer = malloc(strlen(token) + 8);

		sprintf(bearer, "Bearer %s", token);
		auth_md.key = grpc_slice_from_static_string("authorization");
		auth_md.value = grpc_slice_from_copied_string(bearer);
		n_auth_md = 1;
		free(bearer);
	}
	method = grpc_slice_from_static_string(strcmp(mode, "health") == 0 ? "/grpc.health.v1.Health/Check"
										   : legacy ? "/LocationService/updateLocation"
										   : strcmp(mode, "stream") == 0 ? "/udaconnect.v1.LocationService/RecordLocations"
										   : "/udaconnect.v1.LocationService/RecordLocation");
	for (int i = 0; i < NPAYLOAD; i++)
		payload[i] = strcmp(mode, "health") == 0 ? grpc_empty_slice() : make_location(i, legacy);
	th = calloc(nthreads, sizeof(pthread_t));
	t0 = cli_clock_s(CLOCK_MONOTONIC);
	t_end = t0 + seconds;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, thread_main, (void *) (intptr_t) i);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	el = cli_clock_s(CLOCK_MONOTONIC) - t0;
	getrusage(RUSAGE_SELF, &ru);
	printf("mode=%s concurrency=%d calls=%ld ok=%ld failed=%ld seconds=%.2f calls_per_s=%.0f locations=%ld locations_per_s=%.0f p50_ms=%.2f p99_ms=%.2f cpu_s=%.3f%s%s\n",
		   mode, concurrency, atomic_load(&total_calls), atomic_load(&total_ok), atomic_load(&total_failed),
		   el, atomic_load(&total_ok) / el, atomic_load(&total_locations), atomic_load(&total_locations) / el,
		   percentile(0.5), percentile(0.99),
		   ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
		   error_set ? " first_error=" : "", error_set ? first_error : "");
	for (int i = 0; i < NPAYLOAD; i++)
		grpc_slice_unref(payload[i]);
	free(th);
	grpc_shutdown();
	return atomic_load(&total_failed) > 0 && atomic_load(&total_ok) == 0 ? 1 : 0;
}
