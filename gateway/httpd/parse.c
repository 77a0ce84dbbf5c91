/*
 * parse.c: strict parsing of the text a request or a setting brings
 * (udaconnect-httpd).
 *
 * Integers, decimal numbers and calendar dates as they appear in paths,
 * query parameters, headers and flags; the percent-decoding of the path and
 * the query; and shown(), which makes a client's text safe to echo in a
 * message.  Pure functions of their arguments: nothing here answers a
 * request, logs or reads the configuration (params.c, limits.c and config.c
 * do that, with these).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

int
parse_int64(const char *s, long long min, long long max, long long *out)
{
	char	   *end;
	long long	v;

	if (!s || !*s || isspace((unsigned char) *s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return -1;
	if (errno == ERANGE || v < min || v > max)
		return -2;
	*out = v;
	return 0;
}

int
parse_number(const char *s, double *out)
{
	char	   *end;
	double		v;

	if (!s || !*s)
		return -1;
	/* decimal only: strtod() alone also takes "0x1p4", "inf", "nan", " 5" */
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char) *p) && !strchr("+-.eE", *p))
			return -1;
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

bool
valid_date(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y;
	int			m;
	int			d;

	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char) s[i]))
			return false;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

/* Two digits at s, at most max: the value, or -1. */
static int
two_digits(const char *s, int max)
{
	int			v;

	if (!isdigit((unsigned char) s[0]) || !isdigit((unsigned char) s[1]))
		return -1;
	v = (s[0] - '0') * 10 + (s[1] - '0');
	return v <= max ? v : -1;
}

/* The zone designator of a timestamp (all that is left of it): "", Z,
 * +HH:MM, +HHMM or +HH (or -), offsets up to 15:59 as PostgreSQL takes. */
static bool
valid_zone(const char *s)
{
	if (!*s || ((*s == 'Z' || *s == 'z') && !s[1]))
		return true;
	if ((*s != '+' && *s != '-') || two_digits(s + 1, 15) < 0)
		return false;
	s += 3;
	if (*s == ':')
		s++;
	else if (!*s)
		return true;
	return two_digits(s, 59) >= 0 && !s[2];
}

bool
valid_timestamp(const char *s, bool *date_only)
{
	char		date[11];

	if (!s || strlen(s) < 10)
		return false;
	memcpy(date, s, 10);
	date[10] = 0;
	if (!valid_date(date))
		return false;
	*date_only = !s[10];
	if (*date_only)
		return true;
	s += 10;
	if ((*s != 'T' && *s != 't' && *s != ' ') || two_digits(s + 1, 23) < 0 ||
		s[3] != ':' || two_digits(s + 4, 59) < 0)
		return false;
	s += 6;
	if (*s == ':')
	{
		if (two_digits(s + 1, 59) < 0)
			return false;
		s += 3;
		if (*s == '.')
		{
			int			n = 0;

			while (isdigit((unsigned char) s[n + 1]))
				n++;
			if (n < 1 || n > 9)
				return false;
			s += n + 1;
		}
	}
	return valid_zone(s);
}

const char *
shown(const char *s, char *buf, size_t size)
{
	size_t		i = 0;

	for (; *s && i + 4 < size && i < 40; s++)
		buf[i++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\') ? *s : '?';
	if (*s)
	{
		buf[i++] = '.';
		buf[i++] = '.';
		buf[i++] = '.';
	}
	buf[i] = 0;
	return buf;
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char) (ch | 0x20);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/*
 * Like libmicrohttpd's own decoding, except that "%00" stays as it is: a
 * decoded NUL would silently cut the string short for everything after it,
 * e.g. "/index.html%00.png" served index.html and
 * "start_date=2020-01-01%00junk" was taken as 2020-01-01.  Left encoded,
 * such input is refused (404 / 400).
 */
size_t
percent_decode(char *s)
{
	char	   *w = s;
	const char *p = s;
	int			hi;
	int			lo;

	while (*p)
	{
		if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 &&
			(hi | lo) != 0)
		{
			*w++ = (char) (hi * 16 + lo);
			p += 3;
		}
		else
			*w++ = *p++;
	}
	*w = 0;
	return (size_t) (w - s);
}

/* Reads 1..8 hex digits up to `stop` at *sp: the value, or -1. */
static long long
hex32(const char **sp, char stop)
{
	const char *s = *sp;
	long long	v = 0;
	int			n = 0;

	for (; *s && *s != stop; s++, n++)
	{
		if (!isxdigit((unsigned char) *s) || n == 8)
			return -1;
		v = v * 16 + (isdigit((unsigned char) *s) ? *s - '0' : tolower((unsigned char) *s) - 'a' + 10);
	}
	*sp = s;
	return n == 0 ? -1 : v;
}

int
parse_lsn(const char *s, uint64_t *out)
{
	long long	hi;
	long long	lo;

	/* as pg_lsn prints it: 1..8 hex digits, '/', 1..8 hex digits */
	if (!s || (hi = hex32(&s, '/')) < 0 || *s++ != '/' || (lo = hex32(&s, '\0')) < 0)
		return -1;
	*out = (uint64_t) hi << 32 | (uint64_t) lo;
	return 0;
}
