/*
 * smallfile.c — reading a small file whole (see smallfile.h).  One reader
 * for the signing keys and the TLS files, so that a missing, unreadable or
 * oversized file is refused the same way everywhere.  It must not log or
 * exit: the callers do, naming their setting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smallfile.h"

char *
udc_read_small_file(const char *what, const char *path, size_t max, size_t *len,
					char *err, size_t errlen)
{
	int			fd;
	size_t		n = 0;
	char	   *buf;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(err, errlen, "cannot open %s \"%s\": %s", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(max + 1);
	if (buf == NULL)
	{
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (;;)
	{
		ssize_t		r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
		{
			snprintf(err, errlen, "cannot read %s \"%s\": %s", what, path, strerror(errno));
			break;
		}
		if (r == 0)
		{
			close(fd);
			buf[n] = '\0';
			*len = n;
			return buf;
		}
		n += r;
		if (n > max)
		{
			snprintf(err, errlen, "%s \"%s\" is larger than %zu bytes", what, path, max);
			break;
		}
	}
	close(fd);
	explicit_bzero(buf, n);
	free(buf);
	return NULL;
}
