/*
 * produce.c: sseload's Kafka producer (librdkafka): o->rate points per
 * second for o->seconds, as udaconnect.v1.Location messages, each with
 * creation_time = the time it is produced (realtime, microseconds).
 *
 * Most are background points of persons bg_lo..bg_hi at random positions
 * over the globe (as udaconnect-produce's), which make no encounter.  At
 * o->pair_rate per second a pair of watched persons (pair_lo + 2j and
 * pair_lo + 2j + 1, round robin over j) is given two points 1 m apart, back
 * to back, at the pair's own spot (a grid of 111 m steps far from any
 * background point): the second point matches the first (and the pair's
 * earlier points within the window), which creates or extends the pair's
 * encounter, whose ended_at is then the second point's creation_time.
 * Both points are keyed alike, so they share a partition and arrive in
 * that order.  This file must not read streams.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "sseload.h"

static long delivered;
static long failed;

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (m->err)
	{
		if (failed++ < 5)
			fprintf(stderr, "sseload: a message was not delivered: %s\n", rd_kafka_err2str(m->err));
	}
	else
		delivered++;
}

static uint64_t
mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* person, latitude, longitude, creation_time (us) as a Location message */
static size_t
encode(uint8_t *buf, int32_t person, double lat, double lon, int64_t ts_us)
{
	uint8_t		ts[24];
	size_t		tn = 0;
	size_t		n = 0;

	buf[n++] = (1 << 3) | 0;
	n += pb_put_varint(buf + n, (uint64_t) person);
	n += pb_put_double(buf + n, 2, lat);
	n += pb_put_double(buf + n, 3, lon);
	ts[tn++] = (1 << 3) | 0;
	tn += pb_put_varint(ts + tn, (uint64_t) (ts_us / 1000000));
	if (ts_us % 1000000)
	{
		ts[tn++] = (2 << 3) | 0;
		tn += pb_put_varint(ts + tn, (uint64_t) (ts_us % 1000000) * 1000);
	}
	buf[n++] = (4 << 3) | 2;
	n += pb_put_varint(buf + n, tn);
	memcpy(buf + n, ts, tn);
	return n + tn;
}

static rd_kafka_t *
producer_new(const char *brokers, double linger_ms)
{
	char		err[512];
	char		linger[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;

	snprintf(linger, sizeof(linger), "%g", linger_ms);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) ||
		rd_kafka_conf_set(conf, "linger.ms", linger, err, sizeof(err)) ||
		rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof(err)) ||
		rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err)) ||
		rd_kafka_conf_set(conf, "message.timeout.ms", "120000", err, sizeof(err)))
	{
		fprintf(stderr, "sseload: %s\n", err);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk)
		fprintf(stderr, "sseload: %s\n", err);
	return rk;
}

static int
send_point(rd_kafka_t *rk, const char *topic, const char *key, int32_t person,
		   double lat, double lon, int64_t ts_us)
{
	uint8_t		buf[64];
	size_t		len = encode(buf, person, lat, lon, ts_us);
	rd_kafka_resp_err_t err;

	while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
									RD_KAFKA_V_KEY(key, strlen(key)),
									RD_KAFKA_V_VALUE(buf, len),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 10);
	if (err)
	{
		fprintf(stderr, "sseload: produce failed: %s\n", rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/* A background point, away from the pairs' grid (latitude 10..11, longitude 20..21). */
static int
send_background(rd_kafka_t *rk, const struct produce_opts *o, long i)
{
	uint64_t	h = mix((uint64_t) i);
	int32_t		person = o->bg_lo + (int32_t) (h % (uint64_t) (o->bg_hi - o->bg_lo + 1));
	double		lat = -60.0 + (double) ((h >> 20) % 1200000) / 10000.0;
	double		lon = -179.0 + (double) ((h >> 40) % 3580000) / 10000.0;
	char		key[16];

	if (lat > 9.5 && lat < 11.5)
		lat += 3;
	snprintf(key, sizeof(key), "%d", person);
	return send_point(rk, o->topic, key, person, lat, lon, cli_clock_us(CLOCK_REALTIME));
}

/* Pair j's two points; both persons' last point is the second one's time. */
static int
send_pair(rd_kafka_t *rk, const struct produce_opts *o, int j, int64_t *last_us)
{
	int32_t		a = o->pair_lo + 2 * j;
	double		lat = 10.0 + (j / 100) * 0.001;
	double		lon = 20.0 + (j % 100) * 0.001;
	char		key[16];
	int64_t		t;

	snprintf(key, sizeof(key), "p%d", a);
	if (send_point(rk, o->topic, key, a, lat, lon, cli_clock_us(CLOCK_REALTIME)) < 0)
		return -1;
	t = cli_clock_us(CLOCK_REALTIME);
	if (send_point(rk, o->topic, key, a + 1, lat + 0.00001, lon, t) < 0)
		return -1;
	last_us[2 * j] = last_us[2 * j + 1] = t;
	return 0;
}

int
produce_run(const struct produce_opts *o, int64_t *last_us, struct produce_result *r)
{
	rd_kafka_t *rk = producer_new(o->brokers, o->linger_ms);
	long		total = (long) (o->rate * o->seconds);
	int			npairs = (o->pair_hi - o->pair_lo + 1) / 2;
	double		per_point = npairs > 0 ? 2.0 * o->pair_rate / (double) o->rate : 0;
	double		acc = 0;
	int			j = 0;
	int64_t		t0;
	long		i = 0;

	memset(r, 0, sizeof(*r));
	if (!rk)
		return -1;
	delivered = failed = 0;
	t0 = cli_clock_us(CLOCK_MONOTONIC);
	while (i < total)
	{
		int64_t		due;
		int64_t		now;

		acc += per_point;
		if (acc >= 2.0 && i + 2 <= total)
		{
			acc -= 2.0;
			if (send_pair(rk, o, j, last_us) < 0)
				break;
			j = (j + 1) % npairs;
			i += 2;
			r->pair_points += 2;
		}
		else if (send_background(rk, o, i++) < 0)
			break;
		rd_kafka_poll(rk, 0);
		due = t0 + (int64_t) ((double) i * 1e6 / (double) o->rate);
		now = cli_clock_us(CLOCK_MONOTONIC);
		if (due > now + 1000)
			usleep((useconds_t) (due - now));
	}
	r->sent = i;
	r->seconds = (double) (cli_clock_us(CLOCK_MONOTONIC) - t0) / 1e6;
	for (int k = 0; k < 120 && rd_kafka_outq_len(rk) > 0; k++)
		rd_kafka_flush(rk, 1000);
	rd_kafka_poll(rk, 0);
	rd_kafka_destroy(rk);
	r->delivered = delivered;
	r->failed = failed;
	return i == total && failed == 0 && delivered == total ? 0 : -1;
}
