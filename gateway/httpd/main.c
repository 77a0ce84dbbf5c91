/*
 * main.c: udaconnect-httpd, the REST/JSON API and the web app of UdaConnect:
 * start-up, signals and shutdown.
 *
 * It reads the settings (config.c, tls.c), opens the one listening socket
 * that every worker's libmicrohttpd daemon shares, starts the workers
 * (worker.c) with a daemon each (HTTPS only when tls.c says so), wired to
 * the request life cycle (request.c) and the connection limits (limits.c),
 * and the thread of the live encounter streams (listen.c), then waits for
 * SIGINT, SIGTERM or SIGHUP and stops them, answering what is in flight.
 * See docs/http.md for the service and docs/design.md for the map of the
 * code.  Nothing here serves a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "notify.h"

/*
 * libmicrohttpd's messages go to our log.  A live stream ends when its
 * client leaves, which libmicrohttpd reports as a failed send: that is
 * only DEBUG, or every reader closing a page would be a WARNING.
 */
static void
log_mhd(void *cls, const char *fmt, va_list ap)
{
	char		msg[512];
	va_list		aq;

	(void) cls;
	va_copy(aq, ap);
	vsnprintf(msg, sizeof(msg), fmt, aq);
	va_end(aq);
	if (strncmp(msg, "Failed to send the chunked response body", 40) == 0 &&
		strstr(msg, "/encounters/stream'"))
		logmsg(LOG_DEBUG, "%s", msg);
	else
		logmsg(LOG_WARNING, "%s", msg);
}

/*
 * Every connection and every live stream is a descriptor: take the hard
 * limit (a login's soft limit is often 1024), and say so when the limits
 * set may still need more.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t		need = (rlim_t) cfg.max_connections + 4 * (rlim_t) cfg.threads + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		logmsg(LOG_WARNING, "only %llu open files allowed (ulimit -n), fewer than "
			   "--max-connections (%u) needs; connections past it are refused",
			   (unsigned long long) rl.rlim_cur, cfg.max_connections);
}

/* MHD_OPTION_UNESCAPE_CALLBACK: see percent_decode() */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void) cls;
	(void) c;
	return percent_decode(s);
}

/* A worker's daemon: driven by the worker's own epoll loop. */
static struct MHD_Daemon *
make_daemon(void *cls)
{
	int			fd = dup(*(int *) cls);
	struct MHD_Daemon *d;

	if (fd < 0)
		return NULL;
	d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
						 MHD_ALLOW_SUSPEND_RESUME | tls_daemon_flags(),
						 0, limits_accept, NULL, request_handler, NULL,
						 MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
						 MHD_OPTION_LISTEN_SOCKET, fd,
						 MHD_OPTION_CONNECTION_LIMIT, cfg.max_connections,
						 MHD_OPTION_CONNECTION_TIMEOUT, cfg.connection_timeout_s,
						 MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg.connection_memory,
						 MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
						 MHD_OPTION_NOTIFY_CONNECTION, limits_notify, NULL,
						 MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
						 MHD_OPTION_ARRAY, tls_daemon_options(),
						 MHD_OPTION_END);
	if (!d)
		close(fd);
	return d;
}

/* The listening socket on cfg.bind:cfg.port, or -1 (logged). */
static int
listen_socket(const struct sockaddr_in *sa)
{
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int			one = 1;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, (const struct sockaddr *) sa, sizeof(*sa)) != 0 || listen(fd, 1024) != 0)
	{
		logmsg(LOG_FATAL, "cannot listen on %s:%d: %s", cfg.bind, cfg.port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	int			rc;
	struct sockaddr_in sa;
	sigset_t	set;
	int			lfd;
	int			sig = 0;
	char		status[128];

	log_init("udaconnect-httpd");
	rc = config_load(argc, argv);
	if (rc >= 0)
		return rc;
	if (caller_init() != 0)
		return 2;				/* a bad setting: the key file */
	if (tls_init() != 0)
		return 2;				/* a bad setting: the certificate or key */
	if (static_init() != 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) cfg.port);
	if (inet_pton(AF_INET, cfg.bind, &sa.sin_addr) != 1)
	{
		logmsg(LOG_FATAL, "--bind must be an IPv4 address, not \"%s\"", cfg.bind);
		return 2;
	}

	/* signals: handled synchronously here; worker threads inherit the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	db_init();

	/* one listening socket, shared by every worker's daemon (as MHD's own
	 * thread pool shares it) */
	lfd = listen_socket(&sa);
	if (lfd < 0)
		return 1;
	if (hub_init() != 0 || stream_start() != 0 || dbpool_start(cfg.db_threads) != 0)
		return 1;
	if (workers_start(cfg.threads, make_daemon, &lfd) != 0)
	{
		logmsg(LOG_FATAL, "cannot start the HTTP workers on %s:%d", cfg.bind, cfg.port);
		return 1;
	}
	close(lfd);					/* each daemon has its own descriptor of it */
	logmsg(LOG_INFO, "version %s listening on %s://%s:%d/ (%s, %d threads, %d statement threads, "
		   "web root %s)",
		   HTTPD_VERSION, tls_on() ? "https" : "http", cfg.bind, cfg.port,
		   tls_on() ? "HTTPS only, certificate from UDACONNECT_TLS_CERT_FILE"
		   : "plain HTTP: no UDACONNECT_TLS_CERT_FILE", cfg.threads, cfg.db_threads,
		   static_web_root());
	snprintf(status, sizeof(status), "listening on %s:%d", cfg.bind, cfg.port);
	notify_ready(status);

	sigwait(&set, &sig);
	notify_stopping();
	logmsg(LOG_INFO, "signal %d, stopping", sig);
	stream_stop();				/* the streams end while the workers still run */
	workers_stop();
	dbpool_stop();				/* after the workers: they answer with its help */
	static_free();
	caller_free();
	tls_free();
	return 0;
}
