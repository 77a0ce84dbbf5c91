/*
 * static.c: the files udaconnect-httpd serves as they are: the web app
 * (gateway/web, everything under / that is not an API route) and the
 * OpenAPI document (/api/openapi.json).
 *
 * A path is served only when it resolves, links followed, to a regular file
 * inside the web root: no hidden files, no "..", no backslashes, no encoded
 * NULs; a directory is redirected to its slash form.  The OpenAPI document is
 * read once at start-up and served from memory.  This file must not touch
 * the database or the API routes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"

static char web_root_real[PATH_MAX];
static char *openapi_doc;
static size_t openapi_len;

/* The whole file, malloc'ed; NULL (errno set) when it cannot be read. */
static char *
read_whole_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	char	   *nb;
	size_t		cap = 0;
	size_t		n = 0;
	size_t		k;

	if (!f)
		return NULL;
	do
	{
		if (n + 4096 > cap)
		{
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb)
			{
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		k = fread(buf + n, 1, cap - n, f);
		n += k;
	} while (k > 0);
	fclose(f);
	*len = n;
	return buf;
}

int
static_init(void)
{
	if (!realpath(cfg.web_root, web_root_real))
	{
		logmsg(LOG_FATAL, "web root %s: %s", cfg.web_root, strerror(errno));
		return -1;
	}
	openapi_doc = read_whole_file(cfg.openapi_path, &openapi_len);
	if (!openapi_doc)
		logmsg(LOG_WARNING, "cannot read %s: %s", cfg.openapi_path, strerror(errno));
	return 0;
}

void
static_free(void)
{
	free(openapi_doc);
	openapi_doc = NULL;
}

const char *
static_web_root(void)
{
	return web_root_real;
}

enum MHD_Result
static_openapi(struct MHD_Connection *c, struct request *r)
{
	struct MHD_Response *resp;

	if (!openapi_doc)
		return send_error(c, r, 404, "not_found", "no OpenAPI document was loaded", NULL);
	resp = MHD_create_response_from_buffer(openapi_len, openapi_doc, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	common_headers(resp, "application/json");
	return queue(c, r, 200, resp);
}

static const char *
mime_type(const char *path)
{
	static const struct
	{
		const char *ext;
		const char *type;
	}			types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".json", "application/json"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(path, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

/* /dir -> /dir/ */
static enum MHD_Result
redirect_to_dir(struct MHD_Connection *c, struct request *r, const char *url)
{
	char		loc[PATH_MAX + 2];
	struct MHD_Response *resp;

	/* "//host" would be a protocol-relative Location (an open redirect to
	 * another site): one slash */
	while (url[0] == '/' && url[1] == '/')
		url++;
	snprintf(loc, sizeof(loc), "%s/", url);
	resp = empty_response();
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
	return queue(c, r, 301, resp);
}

/* The real path of the file url names, inside the web root; false if none. */
static bool
resolve(const char *url, char *real)
{
	char		path[PATH_MAX];
	size_t		rootlen = strlen(web_root_real);
	int			n;

	/* no hidden files, no "..", no backslashes, no NULs (left as %00) */
	if (strstr(url, "/.") || strchr(url, '\\') || url[0] != '/')
		return false;
	n = snprintf(path, sizeof(path), "%s%s%s", web_root_real, url,
				 url[strlen(url) - 1] == '/' ? "index.html" : "");
	if (n < 0 || (size_t) n >= sizeof(path))
		return false;
	return realpath(path, real) && strncmp(real, web_root_real, rootlen) == 0 &&
		(real[rootlen] == '/' || real[rootlen] == 0);
}

enum MHD_Result
static_file(struct MHD_Connection *c, struct request *r)
{
	char		real[PATH_MAX];
	struct stat st;
	struct MHD_Response *resp;
	int			fd;

	memset(&st, 0, sizeof(st));
	if (!resolve(r->url, real))
		return send_error(c, r, 404, "not_found", "no such file", NULL);
	fd = open(real, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return send_error(c, r, 404, "not_found", "no such file", NULL);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		if (S_ISDIR(st.st_mode))
			return redirect_to_dir(c, r, r->url);
		return send_error(c, r, 404, "not_found", "no such file", NULL);
	}
	resp = MHD_create_response_from_fd((size_t) st.st_size, fd);
	if (!resp)
	{
		close(fd);
		return MHD_NO;
	}
	common_headers(resp, mime_type(real));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "Content-Security-Policy",
							"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
	return queue(c, r, 200, resp);
}
