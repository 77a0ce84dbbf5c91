/*
 * gateway/common/log.h: the levelled logger shared by the gateway daemons.
 *
 * One line per event on stderr, with a UTC timestamp, the level and the
 * program's name and pid (set once by log_init()).  It holds no daemon's
 * state and must not grow any: a daemon decides its own level names on the
 * command line and calls only what is declared here.
 */
#ifndef UDC_COMMON_LOG_H
#define UDC_COMMON_LOG_H

#include <stdarg.h>

enum log_level
{
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARNING,
	LOG_ERROR,
	LOG_FATAL
};

/* Events below this level are not written (LOG_INFO unless changed). */
extern int	log_min_level;

/* The name every line carries, e.g. "udaconnect-httpd" (kept, not copied). */
extern void log_init(const char *program);

/* "debug", "info", "warning" (or "warn"), "error", "fatal"; -1 if none. */
extern int	log_level_from_name(const char *name);

extern void logmsg(int level, const char *fmt,...) __attribute__((format(printf, 2, 3)));
extern void vlogmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
