/*
 * udaconnect-produce — deterministic test and benchmark producer of
 * udaconnect.v1.Location messages (librdkafka), with malformed messages of
 * every kind the ingest must reject mixed in.
 *
 * Message i (START <= i < START+COUNT) is bad with probability BAD/1000
 * (deterministic hash of i); a good message has person PERSON_LO +
 * hash(i) % (PERSON_HI - PERSON_LO + 1), a pseudo-random position and
 * creation_time BASE + i milliseconds (so every good message is unique).
 * Every 7th good message carries no creation_time: its Kafka timestamp is
 * set to that value instead.  With -L, creation_time is the time of
 * production (latency measurements).
 *
 * With -o FILE, one line per delivered message is written:
 *   V <partition> <offset> <person_id> <creation_time_unix_usec> <lat> <lon>
 *   R <partition> <offset> <kind>
 * Exit status 0 only if every message was delivered.
 *
 * The protobuf encoding is written by hand (not protobuf-c), so the
 * consumer's decoder is tested against an independent encoder.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"

enum kind
{
	GOOD = 0,
	BAD_UNDECODABLE,
	BAD_TRUNCATED,
	BAD_NO_PERSON,
	BAD_NEGATIVE_PERSON,
	BAD_UNKNOWN_PERSON,
	BAD_LATITUDE,
	BAD_LONGITUDE,
	BAD_NAN,
	BAD_INFINITE,
	BAD_FUTURE,
	BAD_NANOS,
	BAD_EMPTY,
	NKINDS
};

static const char *const kind_names[NKINDS] = {
	"good", "undecodable", "truncated", "no_person", "negative_person",
	"unknown_person", "latitude", "longitude", "nan", "infinite", "future",
	"nanos", "empty"
};

static FILE *expect = NULL;
static long delivered = 0;
static long failed = 0;

typedef struct Sent
{
	long		index;
	int			kind;
	int			person;
	int64_t		ts_us;
	double		lat;
	double		lon;
} Sent;

static uint64_t
mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* proto3 canonical encoding: zero values are omitted */
static size_t
encode_location(uint8_t *buf, int32_t person, double lat, double lon,
				int has_ts, int64_t secs, int32_t nanos)
{
	size_t		n = 0;

	if (person != 0)
	{
		buf[n++] = (1 << 3) | 0;
		n += pb_put_varint(buf + n, (uint64_t) (int64_t) person);	/* int32: sign-extended */
	}
	if (lat != 0.0 || signbit(lat))
		n += pb_put_double(buf + n, 2, lat);
	if (lon != 0.0 || signbit(lon))
		n += pb_put_double(buf + n, 3, lon);
	if (has_ts)
	{
		uint8_t		ts[32];
		size_t		tn = 0;

		if (secs != 0)
		{
			ts[tn++] = (1 << 3) | 0;
			tn += pb_put_varint(ts + tn, (uint64_t) secs);
		}
		if (nanos != 0)
		{
			ts[tn++] = (2 << 3) | 0;
			tn += pb_put_varint(ts + tn, (uint64_t) (int64_t) nanos);
		}
		buf[n++] = (4 << 3) | 2;
		n += pb_put_varint(buf + n, tn);
		memcpy(buf + n, ts, tn);
		n += tn;
	}
	return n;
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	Sent	   *s = (Sent *) m->_private;

	(void) rk;
	(void) opaque;
	if (m->err)
	{
		failed++;
		fprintf(stderr, "udaconnect-produce: message %ld not delivered: %s\n",
				s ? s->index : -1L, rd_kafka_err2str(m->err));
	}
	else
	{
		delivered++;
		if (expect && s)
		{
			if (s->kind == GOOD)
				fprintf(expect, "V %d %" PRId64 " %d %" PRId64 " %.17g %.17g\n",
						(int) m->partition, (int64_t) m->offset, s->person, s->ts_us, s->lat, s->lon);
			else
				fprintf(expect, "R %d %" PRId64 " %s\n",
						(int) m->partition, (int64_t) m->offset, kind_names[s->kind]);
		}
	}
	free(s);
}

static const char usage[] =
	"usage: udaconnect-produce -b BROKERS [-t TOPIC] -n COUNT [-s START]\n"
	"         [-p PERSON_LO:PERSON_HI] [-u UNKNOWN_PERSON] [-B BAD_PER_MILLE]\n"
	"         [-T BASE_UNIX_SECONDS] [-r RATE_PER_S] [-L] [-o EXPECT_FILE] [-q]\n";

/* the command line */
static const char *brokers = NULL;
static const char *topic = "locations";
static const char *expect_path = NULL;
static long count = -1,
			start = 0;
static long person_lo = 1,
			person_hi = 1;
static long unknown_person = 999999999;
static long bad_pm = 0;
static long rate = 0;
static int64_t base_s = 1577836800;	/* 2020-01-01 */
static int	latency_mode = 0;
static int	quiet = 0;

static void
parse_args(int argc, char **argv)
{
	int			opt;

	while ((opt = getopt(argc, argv, "b:t:n:s:p:u:B:T:r:Lo:q")) != -1)
	{
		switch (opt)
		{
			case 'b': brokers = optarg; break;
			case 't': topic = optarg; break;
			case 'n': count = cli_parse_long(optarg, "-n", LONG_MIN, LONG_MAX); break;
			case 's': start = cli_parse_long(optarg, "-s", LONG_MIN, LONG_MAX); break;
			case 'p':
				if (sscanf(optarg, "%ld:%ld", &person_lo, &person_hi) != 2 || person_lo < 1 || person_hi < person_lo)
				{
					fprintf(stderr, "udaconnect-produce: -p wants LO:HI with 1 <= LO <= HI\n");
					exit(2);
				}
				break;
			case 'u': unknown_person = cli_parse_long(optarg, "-u", LONG_MIN, LONG_MAX); break;
			case 'B': bad_pm = cli_parse_long(optarg, "-B", LONG_MIN, LONG_MAX); break;
			case 'T': base_s = cli_parse_long(optarg, "-T", LONG_MIN, LONG_MAX); break;
			case 'r': rate = cli_parse_long(optarg, "-r", LONG_MIN, LONG_MAX); break;
			case 'L': latency_mode = 1; break;
			case 'o': expect_path = optarg; break;
			case 'q': quiet = 1; break;
			default: cli_usage(usage, 2);
		}
	}
	if (!brokers || count < 0 || bad_pm < 0 || bad_pm > 1000 || rate < 0)
		cli_usage(usage, 2);
}

static rd_kafka_t *
producer_new(void)
{
	char		errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "batch.num.messages", "10000", errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "message.timeout.ms", "120000", errstr, sizeof(errstr)))
	{
		fprintf(stderr, "udaconnect-produce: %s\n", errstr);
		exit(1);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
	{
		fprintf(stderr, "udaconnect-produce: %s\n", errstr);
		exit(1);
	}
	return rk;
}

/*
 * The value of message s (h: its hash) into buf; its length.  *payload is
 * buf, or NULL for the empty message.
 */
static size_t
encode_message(const Sent *s, uint64_t h, int has_ts, uint8_t *buf, const void **payload)
{
	int64_t		secs = s->ts_us / 1000000;

	*payload = buf;
	switch (s->kind)
	{
		case GOOD:
			return encode_location(buf, s->person, s->lat, s->lon, has_ts,
								   secs, (int32_t) (s->ts_us % 1000000) * 1000);
		case BAD_UNDECODABLE:
			memcpy(buf, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12);
			return 12;
		case BAD_TRUNCATED:
			return encode_location(buf, s->person, s->lat, s->lon, 1, secs, 0) - 3;
		case BAD_NO_PERSON:
			return encode_location(buf, 0, s->lat, s->lon, 1, secs, 0);
		case BAD_NEGATIVE_PERSON:
			return encode_location(buf, -s->person, s->lat, s->lon, 1, secs, 0);
		case BAD_UNKNOWN_PERSON:
			return encode_location(buf, (int32_t) unknown_person, s->lat, s->lon, 1, secs, 0);
		case BAD_LATITUDE:
			return encode_location(buf, s->person, (h & 1) ? -106.5719566 : 90.000001, s->lon, 1, secs, 0);
		case BAD_LONGITUDE:
			return encode_location(buf, s->person, s->lat, (h & 1) ? 180.5 : -361.0, 1, secs, 0);
		case BAD_NAN:
			return encode_location(buf, s->person, NAN, s->lon, 1, secs, 0);
		case BAD_INFINITE:
			return encode_location(buf, s->person, s->lat, (h & 1) ? INFINITY : -INFINITY, 1, secs, 0);
		case BAD_FUTURE:
			return encode_location(buf, s->person, s->lat, s->lon, 1,
								   cli_clock_us(CLOCK_REALTIME) / 1000000 + 7 * 86400, 0);
		case BAD_NANOS:
			return encode_location(buf, s->person, s->lat, s->lon, 1, secs, 1500000000);
		case BAD_EMPTY:
			*payload = NULL;
			return 0;
	}
	return 0;
}

/* message i: build it and hand it to librdkafka (waiting while its queue is full) */
static void
produce_one(rd_kafka_t *rk, long i)
{
	uint64_t	h = mix((uint64_t) i);
	Sent	   *s = calloc(1, sizeof(Sent));
	uint8_t		buf[128];
	size_t		len;
	char		key[32];
	int			keylen;
	const void *payload;
	int64_t		kafka_ts_ms = 0;
	int			has_ts = 1;
	rd_kafka_resp_err_t err;

	if (!s)
		abort();
	s->index = i;
	s->kind = ((long) (h % 1000) < bad_pm) ? 1 + (int) ((h >> 20) % (NKINDS - 1)) : GOOD;
	s->person = (int) (person_lo + (long) ((h >> 10) % (uint64_t) (person_hi - person_lo + 1)));
	/* positions: a 1 km area near the equator-free mid latitudes, varied */
	s->lat = -60.0 + (double) ((h >> 24) % 1200000) / 10000.0;
	s->lon = -179.0 + (double) ((h >> 40) % 3580000) / 10000.0;
	s->ts_us = latency_mode ? cli_clock_us(CLOCK_REALTIME) : (base_s * 1000000 + i * 1000);
	if (s->kind == GOOD && !latency_mode && i % 7 == 3)
	{
		has_ts = 0;
		kafka_ts_ms = s->ts_us / 1000;
	}
	len = encode_message(s, h, has_ts, buf, &payload);
	if (s->kind == BAD_UNDECODABLE && (h & 2))
		keylen = snprintf(key, sizeof(key), "\x01\xfe%ld", i);	/* not UTF-8 */
	else
		keylen = snprintf(key, sizeof(key), "%d", s->person);

	while ((err = rd_kafka_producev(rk,
									RD_KAFKA_V_TOPIC(topic),
									RD_KAFKA_V_KEY(key, (size_t) keylen),
									RD_KAFKA_V_VALUE((void *) payload, len),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_TIMESTAMP(kafka_ts_ms),
									RD_KAFKA_V_OPAQUE(s),
									RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 10);
	if (err)
	{
		fprintf(stderr, "udaconnect-produce: produce failed: %s\n", rd_kafka_err2str(err));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	rd_kafka_t *rk;
	int64_t		t0;

	cli_progname = "udaconnect-produce";
	parse_args(argc, argv);
	if (expect_path)
	{
		expect = fopen(expect_path, "w");
		if (!expect)
		{
			fprintf(stderr, "udaconnect-produce: cannot write %s: %s\n", expect_path, strerror(errno));
			return 1;
		}
	}
	rk = producer_new();

	t0 = cli_clock_us(CLOCK_MONOTONIC);
	for (long i = start; i < start + count; i++)
	{
		produce_one(rk, i);
		rd_kafka_poll(rk, 0);
		if (rate > 0)
		{
			int64_t		due = t0 + (int64_t) ((double) (i - start + 1) * 1e6 / (double) rate);
			int64_t		now = cli_clock_us(CLOCK_MONOTONIC);

			if (due > now + 1000)
			{
				rd_kafka_poll(rk, 0);
				usleep((useconds_t) (due - now));
			}
		}
	}
	while (rd_kafka_outq_len(rk) > 0)
	{
		if (rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
	}
	rd_kafka_poll(rk, 0);
	rd_kafka_destroy(rk);
	if (expect)
		fclose(expect);
	if (!quiet)
		fprintf(stderr, "udaconnect-produce: %ld delivered, %ld failed in %.2f s\n",
				delivered, failed, (double) (cli_clock_us(CLOCK_MONOTONIC) - t0) / 1e6);
	return (failed == 0 && delivered == count) ? 0 : 1;
}
