/*
 * sseload.h: the parts of sseload (test/bench/50-sse.sh), a load generator
 * and client of udaconnect-httpd's live encounter streams.
 *
 * streams.c holds the SSE subscribers: thousands of sockets on one epoll
 * loop, each a GET .../encounters/stream whose events it parses (chunked
 * transfer decoding, SSE lines) to time them.  produce.c is the Kafka
 * producer of the offered load: background points that make no encounter,
 * and pairs of points of two watched persons at the same spot, which
 * create or extend their encounter.  sseload.c runs the phases and prints
 * the results.  Nothing here talks to the database.
 */
#ifndef SSELOAD_H
#define SSELOAD_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- streams.c ---------------------------------------------------------- */

struct stream_opts
{
	const char *host;			/* IPv4 address of httpd */
	int			port;
	const char *token;			/* bearer token (NULL: none) */
	int			person_lo;		/* one stream per person lo..hi */
	int			person_hi;
};

/* Opens a stream per person, at most `inflight` connecting at once; returns
 * how many are established (status 200 and the first bytes of the body)
 * within timeout_s.  Starts the thread that reads them. */
extern int	streams_open(const struct stream_opts *o, int inflight, double timeout_s);

/* Streams established and streams that ended or failed so far. */
extern int	streams_established(void);
extern int	streams_failed(void);

/* Event latencies are recorded from now on, for events whose encounter
 * ended at or after since_us (realtime): the ones this run caused; and
 * written to dump_to (unless NULL) as "person <TAB> ended_at <TAB>
 * received", both realtime microseconds. */
extern void streams_measure(int64_t since_us, FILE *dump_to);

/*
 * Waits until every person's stream has received an encounter that ended
 * at or after want_us[person - lo] (0: nothing wanted), at most timeout_s;
 * returns the number of persons still short.
 */
extern int	streams_wait_for(const int64_t *want_us, double timeout_s);

/* The latencies recorded (microseconds, sorted) and their count; events of
 * kind "removed" and encounter events received in all. */
extern const int64_t *streams_latencies(long *n);
extern long streams_removed(void);
extern long streams_events(void);

/* Closes every stream and stops the thread. */
extern void streams_close(void);

/* ---- produce.c ---------------------------------------------------------- */

struct produce_opts
{
	const char *brokers;
	const char *topic;
	long		rate;			/* points per second offered, all kinds */
	double		seconds;
	double		pair_rate;		/* encounter point pairs per second */
	int			pair_lo;		/* the watched persons, paired lo, lo+1 ... */
	int			pair_hi;
	int			bg_lo;			/* background persons */
	int			bg_hi;
	double		linger_ms;		/* the producer's linger.ms */
};

struct produce_result
{
	long		sent;			/* handed to librdkafka */
	long		delivered;
	long		failed;
	long		pair_points;	/* of them, encounter points */
	double		seconds;		/* producing, until the last was handed over */
};

/*
 * Produces the load; last_us[p - pair_lo] gets the produce time (realtime
 * us, also the point's creation_time) of person p's last encounter point.
 */
extern int	produce_run(const struct produce_opts *o, int64_t *last_us,
						struct produce_result *r);

#endif
