/*
 * cli.h — small helpers shared by the project's command-line programs:
 * udaconnect-grpcd, udaconnect-token, the development Kafka tools
 * (scripts/devkafka) and the gRPC load generator (test/bench/grpcload).
 *
 * What it holds: clocks in the units those programs count in; strict parsing
 * of numbers given as flags or environment settings (a bad one ends the
 * program with status 2 and a message naming the setting); printing the
 * usage text; and the two primitives of the hand-written protobuf encoding
 * the test tools use, kept apart from protobuf-c so that the decoders under
 * test meet an independent encoder.
 *
 * What it must not do: log (each program keeps its own log format), allocate,
 * or know any program's settings.  Plain C on libc alone, so that every
 * Makefile can compile cli.c next to its own sources.
 */
#ifndef UDACONNECT_CLI_H
#define UDACONNECT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* the program's name at the start of every message; set it first in main() */
extern const char *cli_progname;

/*
 * Clocks.  Inline: udaconnect-grpcd reads the time on every call, and these
 * must cost no more than the clock_gettime() they wrap.
 */
static inline int64_t
cli_clock_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t
cli_clock_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline double
cli_clock_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The whole of s as a number in [lo, hi], or exit(2) naming `what` (a flag
 * or an environment variable).  cli_parse_long(s, what, LONG_MIN, LONG_MAX)
 * takes any integer and its message names no range.
 */
long		cli_parse_long(const char *s, const char *what, long lo, long hi);
double		cli_parse_double(const char *s, const char *what, double lo, double hi);

/* print the usage text (stdout for status 0, else stderr) and exit(status) */
void		cli_usage(const char *text, int status) __attribute__((noreturn));

/* after getopt: an operand left over is an error (status 2, with the usage) */
void		cli_no_operands(int argc, char **argv, const char *usage);

/*
 * Hand-written protobuf: a varint, and a double field (its tag, then the
 * 8 bytes little-endian whatever the host).  Both return the bytes written.
 */
size_t		pb_put_varint(uint8_t *p, uint64_t v);
size_t		pb_put_double(uint8_t *p, int field, double d);

#endif
