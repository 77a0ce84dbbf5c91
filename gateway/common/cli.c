/*
 * cli.c — the helpers of cli.h shared by the command-line programs: number
 * parsing for flags and environment settings, usage printing, and the
 * hand-written protobuf primitives of the test tools.
 *
 * What it must not do: log, allocate, or keep any state but the program's
 * name (see cli.h).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *cli_progname = "?";

long
cli_parse_long(const char *s, const char *what, long lo, long hi)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
	{
		if (lo == LONG_MIN && hi == LONG_MAX)
			fprintf(stderr, "%s: %s must be an integer, got \"%s\"\n", cli_progname, what, s);
		else
			fprintf(stderr, "%s: %s must be an integer in [%ld, %ld], got \"%s\"\n",
					cli_progname, what, lo, hi, s);
		exit(2);
	}
	return v;
}

double
cli_parse_double(const char *s, const char *what, double lo, double hi)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
	{
		fprintf(stderr, "%s: %s must be a number in [%g, %g], got \"%s\"\n", cli_progname, what, lo, hi, s);
		exit(2);
	}
	return v;
}

void
cli_usage(const char *text, int status)
{
	fputs(text, status == 0 ? stdout : stderr);
	exit(status);
}

void
cli_no_operands(int argc, char **argv, const char *usage)
{
	if (optind < argc)
	{
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", cli_progname, argv[optind]);
		cli_usage(usage, 2);
	}
}

size_t
pb_put_varint(uint8_t *p, uint64_t v)
{
	size_t		n = 0;

	while (v >= 0x80)
	{
		p[n++] = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t) v;
	return n;
}

size_t
pb_put_double(uint8_t *p, int field, double d)
{
	uint64_t	bits;
	size_t		n = 0;

	memcpy(&bits, &d, 8);
	p[n++] = (uint8_t) ((field << 3) | 1);
	for (int i = 0; i < 8; i++)
		p[n++] = (uint8_t) (bits >> (8 * i));
	return n;
}
