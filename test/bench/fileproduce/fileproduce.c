/*
 * fileproduce — puts a given list of locations on a Kafka topic as
 * udaconnect.v1.Location messages, in the order given, keyed by person id
 * (as the gateways key them).  test/bench/25-encounters.sh feeds it a
 * generated conference (test/bench/finder/gen-dense.sql), where the
 * locations of different persons meet, which udaconnect-produce's random
 * positions never do.
 *
 * Input (a file or stdin), one location per line, tab-separated:
 *   person_id  latitude  longitude  creation_time_unix_microseconds
 * A line that does not parse ends the program with status 1, naming it:
 * a benchmark must measure the data it was given, not part of it.
 *
 * What it must not do: invent or change data (no bad messages, no rate
 * control: udaconnect-produce does those), or write anything but the topic.
 * Exit status 0 only if every line was delivered.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"

static long delivered = 0;
static long failed = 0;

static const char usage[] =
	"usage: fileproduce -b BROKERS -t TOPIC [-q] [FILE]\n"
	"  FILE (default stdin): person_id<TAB>latitude<TAB>longitude<TAB>unix_usec per line\n";

/* proto3 canonical encoding of a Location with its creation_time */
static size_t
encode_location(uint8_t *buf, int32_t person, double lat, double lon, int64_t ts_us)
{
	size_t		n = 0;
	uint8_t		ts[32];
	size_t		tn = 0;
	int64_t		secs = ts_us / 1000000;
	int32_t		nanos = (int32_t) (ts_us % 1000000) * 1000;

	if (nanos < 0)
	{
		secs -= 1;
		nanos += 1000000000;
	}
	buf[n++] = (1 << 3) | 0;
	n += pb_put_varint(buf + n, (uint64_t) (int64_t) person);
	if (lat != 0.0)
		n += pb_put_double(buf + n, 2, lat);
	if (lon != 0.0)
		n += pb_put_double(buf + n, 3, lon);
	if (secs != 0)
	{
		ts[tn++] = (1 << 3) | 0;
		tn += pb_put_varint(ts + tn, (uint64_t) secs);
	}
	if (nanos != 0)
	{
		ts[tn++] = (2 << 3) | 0;
		tn += pb_put_varint(ts + tn, (uint64_t) nanos);
	}
	buf[n++] = (4 << 3) | 2;
	n += pb_put_varint(buf + n, tn);
	memcpy(buf + n, ts, tn);
	return n + tn;
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (m->err)
	{
		if (failed++ < 10)
			fprintf(stderr, "fileproduce: a message was not delivered: %s\n",
					rd_kafka_err2str(m->err));
	}
	else
		delivered++;
}

static rd_kafka_t *
producer_new(const char *brokers)
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
		fprintf(stderr, "fileproduce: %s\n", errstr);
		exit(1);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
	{
		fprintf(stderr, "fileproduce: %s\n", errstr);
		exit(1);
	}
	return rk;
}

/* hand one message to librdkafka, waiting while its queue is full */
static void
produce(rd_kafka_t *rk, const char *topic, int32_t person, const uint8_t *buf, size_t len)
{
	char		key[16];
	int			keylen = snprintf(key, sizeof(key), "%" PRId32, person);
	rd_kafka_resp_err_t err;

	while ((err = rd_kafka_producev(rk,
									RD_KAFKA_V_TOPIC(topic),
									RD_KAFKA_V_KEY(key, (size_t) keylen),
									RD_KAFKA_V_VALUE((void *) buf, len),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 10);
	if (err)
	{
		fprintf(stderr, "fileproduce: produce failed: %s\n", rd_kafka_err2str(err));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	const char *brokers = NULL;
	const char *topic = NULL;
	int			quiet = 0;
	int			opt;
	FILE	   *in = stdin;
	char		line[256];
	long		lineno = 0;
	int64_t		t0;
	rd_kafka_t *rk;

	cli_progname = "fileproduce";
	while ((opt = getopt(argc, argv, "b:t:q")) != -1)
	{
		switch (opt)
		{
			case 'b': brokers = optarg; break;
			case 't': topic = optarg; break;
			case 'q': quiet = 1; break;
			default: cli_usage(usage, 2);
		}
	}
	if (!brokers || !topic || argc - optind > 1)
		cli_usage(usage, 2);
	if (optind < argc && !(in = fopen(argv[optind], "r")))
	{
		fprintf(stderr, "fileproduce: cannot read %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}

	rk = producer_new(brokers);

	t0 = cli_clock_us(CLOCK_MONOTONIC);
	while (fgets(line, sizeof(line), in))
	{
		long		person;
		double		lat,
					lon;
		int64_t		ts_us;
		int			used = 0;
		uint8_t		buf[128];

		lineno++;
		if (sscanf(line, "%ld\t%lf\t%lf\t%" SCNd64 "%n", &person, &lat, &lon, &ts_us, &used) != 4 ||
			(line[used] != '\n' && line[used] != '\0') || person < 1 || person > INT32_MAX)
		{
			fprintf(stderr, "fileproduce: line %ld is not person_id<TAB>latitude<TAB>longitude<TAB>unix_usec: %s",
					lineno, line);
			return 1;
		}
		produce(rk, topic, (int32_t) person, buf, encode_location(buf, (int32_t) person, lat, lon, ts_us));
		rd_kafka_poll(rk, 0);
	}
	if (ferror(in))
	{
		fprintf(stderr, "fileproduce: read error after line %ld\n", lineno);
		return 1;
	}
	while (rd_kafka_outq_len(rk) > 0)
	{
		if (rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
	}
	rd_kafka_poll(rk, 0);
	rd_kafka_destroy(rk);
	if (!quiet)
		fprintf(stderr, "fileproduce: %ld delivered, %ld failed in %.2f s\n",
				delivered, failed, (double) (cli_clock_us(CLOCK_MONOTONIC) - t0) / 1e6);
	return (failed == 0 && delivered == lineno) ? 0 : 1;
}
