/*
 * main.c — udaconnect-grpcd, the gRPC ingest gateway: start-up, signals and
 * the orderly shutdown.
 *
 * gRPC core C API (no C++) + protobuf-c; produces validated locations to
 * Kafka with librdkafka (idempotent producer, acks=all) and answers only
 * after the broker's delivery report; serves FindConnections, ListEncounters
 * and WatchEncounters from PostgreSQL.  See docs/grpc.md, and docs/design.md ("Map of the code:
 * udaconnect-grpcd") for which file holds what.
 *
 * Threads
 *   main        configuration, start-up, sigwait(), orderly shutdown
 *   worker N    one completion queue each (server.c); never blocks
 *   kafka       rd_kafka_poll() of the unary calls' producer, and the
 *               deadline sweeper (kafka.c)
 *   kafka-s     rd_kafka_poll() of the client streams' producer; also
 *               resumes streams held by a full queue and ends idle ones
 *               (stream.c)
 *   db N        libpq, one connection each, for FindConnections and
 *               ListEncounters (db.c)
 *   watch       one libpq connection in non-blocking pipeline mode: LISTEN
 *               udaconnect_encounter and WatchEncounters' queries (listen.c,
 *               watch_feed.c); waits in poll() only
 *
 * What this file must not do: handle calls.  It starts the parts in an
 * order where nothing receives work before what it hands work to is
 * running, and stops them in the reverse order.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <grpc/support/log.h>

#include "grpcd.h"
#include "notify.h"

static void
grpc_log_to_ours(gpr_log_func_args *a)
{
	int			level = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_ERROR
		: a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO : LOG_DEBUG;

	logmsg(level, "grpc %s:%d: %s", a->file, a->line, a->message);
}

/* SIGTERM or SIGINT (SIGHUP is logged and ignored) */
static int
wait_for_signal(const sigset_t *sigs)
{
	int			sig;

	for (;;)
	{
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP)
		{
			logmsg(LOG_INFO, "SIGHUP ignored (settings are read at start only)");
			continue;
		}
		return sig;
	}
}

/*
 * Stop accepting calls, let them finish (cancel them after --grace), wait
 * for what they produced (purge it after --kafka-timeout-ms), then stop the
 * threads in the reverse order of their start.
 */
static void
shutdown_all(int sig)
{
	notify_stopping();
	logmsg(LOG_INFO, "%s received: draining %ld call(s), %.0f s grace", strsignal(sig),
		   calls_live(), cfg.grace);
	if (cfg.dburl)
		watch_drain();			/* watchers would otherwise hold the grace period */
	server_drain();
	/* calls still waiting for delivery reports or the database */
	if (!calls_wait_ended(now_ms() + cfg.kafka_timeout_ms + 1000))
	{
		kafka_purge();
		calls_wait_ended(INT64_MAX);
	}
	logmsg(LOG_DEBUG, "shutdown: all calls finished");
	if (cfg.dburl)
	{
		watch_stop();
		db_threads_stop();
	}
	server_stop();
	logmsg(LOG_DEBUG, "shutdown: gRPC server destroyed");
	kafka_stop();
	grpc_shutdown();
	caller_stop();
	tls_stop();
	config_free();
	logmsg(LOG_INFO, "stopped");
}

int
main(int argc, char **argv)
{
	sigset_t	sigs;
	int			bound;
	char		status[128];

	log_init("udaconnect-grpcd");
	config_load(argc, argv);
	caller_start();				/* exit(2) without usable keys */
	tls_start();				/* exit(2) on a bad certificate or key */

	/* signals are handled by sigwait() in main only */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	gpr_set_log_function(grpc_log_to_ours);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();

	if (kafka_start() != 0)
		return 1;
	if ((bound = server_start()) < 0)
		return 1;
	kafka_poll_start(streams_poll);
	if (cfg.dburl)
	{
		db_threads_start();
		watch_start();
	}
	server_workers_start();

	if (!tls_enabled())
		logmsg(LOG_INFO, "plaintext: terminate TLS in front of it (a proxy or the ingress), or set"
			   " UDACONNECT_TLS_CERT_FILE and UDACONNECT_TLS_KEY_FILE");
	/* "listening on ADDR:PORT" is what the stack hook and the tests wait for */
	logmsg(LOG_INFO, "listening on %s:%d (%s; %d worker threads); Kafka %s topic %s; database %s; authentication %s",
		   cfg.bind, bound, tls_enabled() ? "TLS" : "plaintext", cfg.threads, cfg.brokers, cfg.topic, cfg.dburl ? "configured" : "not configured (FindConnections answers UNAVAILABLE)",
		   cfg.auth ? "on" : "off (every caller is an organizer)");
	snprintf(status, sizeof(status), "listening on %s:%d", cfg.bind, bound);
	notify_ready(status);			/* systemd's Type=notify (notify.c) */

	shutdown_all(wait_for_signal(&sigs));
	return 0;
}
