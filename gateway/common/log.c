/*
 * gateway/common/log.c: the levelled logger shared by the gateway daemons.
 *
 * It formats one event into one line and writes it with a single write(),
 * so that lines from different threads never mix:
 *   2026-11-30T04:30:00.123Z INFO udaconnect-httpd[1234]: message
 * It keeps only the program name and the minimum level; it must not know
 * any daemon's configuration, allocate memory or take locks (it is called
 * from every thread, also while a daemon is failing).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 1024

int			log_min_level = LOG_INFO;

static const char *log_program = "udaconnect";

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

void
log_init(const char *program)
{
	log_program = program;
}

int
log_level_from_name(const char *name)
{
	for (int i = 0; i <= LOG_FATAL; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

void
vlogmsg(int level, const char *fmt, va_list ap)
{
	char		line[LOG_LINE_MAX];
	int			save_errno = errno;
	struct timeval tv;
	struct tm	tm;
	size_t		n;
	int			m;

	if (level < log_min_level)
		return;
	if (level < LOG_DEBUG || level > LOG_FATAL)
		level = LOG_ERROR;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s[%d]: ",
				  (long) (tv.tv_usec / 1000), level_names[level], log_program,
				  (int) getpid());
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	errno = save_errno;			/* for %m */
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m > 0)
		n = n + (size_t) m >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t) m;
	/* one event, one line: fold inner line breaks, drop trailing ones (libpq's) */
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
	{
		/* nowhere left to report it */
	}
	errno = save_errno;
}

void
logmsg(int level, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vlogmsg(level, fmt, ap);
	va_end(ap);
}
