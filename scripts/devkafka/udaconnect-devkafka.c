/*
 * udaconnect-devkafka — a small Kafka broker for development and tests.
 *
 * Runs librdkafka's built-in mock cluster (rdkafka_mock.h) on loopback,
 * creates the topic(s) with N partitions, writes the bootstrap address
 * ("127.0.0.1:PORT[,...]") to a file and waits for a signal:
 *
 *   SIGTERM, SIGINT  shut down cleanly (exit status 0)
 *   SIGUSR1          take every broker down (connections are refused/closed)
 *   SIGUSR2          bring every broker back up
 *
 * The mock cluster keeps messages in memory only: a restarted devkafka is
 * an empty Kafka on a new port.  SIGUSR1/SIGUSR2 simulate a broker outage
 * without losing the topic.  Never use it for anything but development.
 *
 * usage: udaconnect-devkafka [-t TOPIC]... [-p PARTITIONS] [-b BROKERS]
 *                            [-f BOOTSTRAP_FILE] [-P PID_FILE] [-q]
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli.h"

#define MAX_TOPICS 16

static int	quiet = 0;

static const char usage[] =
	"usage: udaconnect-devkafka [-t TOPIC]... [-p PARTITIONS] [-b BROKERS]\n"
	"                           [-f BOOTSTRAP_FILE] [-P PID_FILE] [-q]\n"
	"  -t TOPIC        topic to create (repeatable; default: locations)\n"
	"  -p PARTITIONS   partitions per topic, 1..1000 (default: 4)\n"
	"  -b BROKERS      number of mock brokers, 1..9 (default: 1)\n"
	"  -f FILE         write the bootstrap address to FILE (default: stdout)\n"
	"  -P FILE         write the process id to FILE\n"
	"  -q              only log errors\n"
	"signals: TERM/INT stop, USR1 brokers down, USR2 brokers up\n";

/* write a file atomically (tmp + rename) so readers never see half of it */
static int
write_file(const char *path, const char *text)
{
	char		tmp[4096];
	FILE	   *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid()) >= (int) sizeof(tmp))
	{
		fprintf(stderr, "udaconnect-devkafka: path too long: %s\n", path);
		return -1;
	}
	f = fopen(tmp, "w");
	if (f == NULL)
	{
		fprintf(stderr, "udaconnect-devkafka: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "%s\n", text);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
	{
		fprintf(stderr, "udaconnect-devkafka: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/*
 * TCP_NODELAY on the mock brokers' listening sockets (accepted connections
 * inherit it on Linux), as a real Kafka broker sets it on every connection.
 * Without it, small responses wait for the client's delayed ACK (up to
 * 40 ms) whenever several requests are in flight.  librdkafka's mock cluster
 * does not set it and has no option for it, so find the listeners here.
 */
static void
nodelay_listeners(void)
{
	DIR		   *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL)
	{
		int			fd = atoi(e->d_name),
					listening = 0,
					one = 1;
		socklen_t	len = sizeof(listening);

		if (e->d_name[0] != '.' && fd != dirfd(d) &&
			getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (d != NULL)
		closedir(d);
}

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	if ((quiet && level > 3) || strcmp(fac, "CONFWARN") == 0)
		return;
	fprintf(stderr, "udaconnect-devkafka: %s: %s\n", fac, buf);
}

/* the command line */
static const char *topics[MAX_TOPICS];
static int	ntopics = 0;
static int	partitions = 4;
static int	brokers = 1;
static const char *bootstrap_file = NULL;
static const char *pid_file = NULL;

static void
parse_args(int argc, char **argv)
{
	int			opt;

	while ((opt = getopt(argc, argv, "t:p:b:f:P:qh")) != -1)
	{
		switch (opt)
		{
			case 't':
				if (ntopics == MAX_TOPICS)
				{
					fprintf(stderr, "udaconnect-devkafka: at most %d topics\n", MAX_TOPICS);
					exit(2);
				}
				if (optarg[0] == '\0' || strlen(optarg) > 249)
				{
					fprintf(stderr, "udaconnect-devkafka: a topic name must have 1..249 characters\n");
					exit(2);
				}
				topics[ntopics++] = optarg;
				break;
			case 'p':
				partitions = (int) cli_parse_long(optarg, "-p PARTITIONS", 1, 1000);
				break;
			case 'b':
				brokers = (int) cli_parse_long(optarg, "-b BROKERS", 1, 9);
				break;
			case 'f':
				bootstrap_file = optarg;
				break;
			case 'P':
				pid_file = optarg;
				break;
			case 'q':
				quiet = 1;
				break;
			case 'h':
				cli_usage(usage, 0);
			default:
				cli_usage(usage, 2);
		}
	}
	cli_no_operands(argc, argv, usage);
	if (ntopics == 0)
		topics[ntopics++] = "locations";
}

/* the mock cluster with its topics, on a librdkafka handle of its own; NULL: failed (said) */
static rd_kafka_mock_cluster_t *
cluster_start(rd_kafka_t **rkp)
{
	char		errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;

	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (rd_kafka_conf_set(conf, "client.id", "udaconnect-devkafka", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "udaconnect-devkafka: %s\n", errstr);
		return NULL;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "udaconnect-devkafka: cannot create the librdkafka handle: %s\n", errstr);
		return NULL;
	}
	mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (mc == NULL)
	{
		fprintf(stderr, "udaconnect-devkafka: cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return NULL;
	}
	for (int i = 0; i < ntopics; i++)
	{
		rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, topics[i], partitions, 1);

		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, "udaconnect-devkafka: cannot create topic \"%s\": %s\n",
					topics[i], rd_kafka_err2str(err));
			rd_kafka_mock_cluster_destroy(mc);
			rd_kafka_destroy(rk);
			return NULL;
		}
	}
	*rkp = rk;
	return mc;
}

/* the pid file, then the bootstrap address (file or stdout): readers wait for it */
static int
publish(const char *bootstraps)
{
	if (pid_file != NULL)
	{
		char		pid[32];

		snprintf(pid, sizeof(pid), "%d", (int) getpid());
		if (write_file(pid_file, pid) != 0)
			return -1;
	}
	if (bootstrap_file != NULL)
		return write_file(bootstrap_file, bootstraps);
	printf("%s\n", bootstraps);
	fflush(stdout);
	return 0;
}

/* until SIGTERM/SIGINT: SIGUSR1 takes every broker down, SIGUSR2 brings them up */
static void
serve(const sigset_t *sigs, rd_kafka_mock_cluster_t *mc)
{
	for (;;)
	{
		int			sig = 0;

		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGUSR1 || sig == SIGUSR2)
		{
			for (int b = 1; b <= brokers; b++)
			{
				if (sig == SIGUSR1)
					rd_kafka_mock_broker_set_down(mc, b);
				else
					rd_kafka_mock_broker_set_up(mc, b);
			}
			nodelay_listeners();	/* in case a listener was re-created */
			fprintf(stderr, "udaconnect-devkafka: brokers %s\n", sig == SIGUSR1 ? "down" : "up");
		}
	}
}

int
main(int argc, char **argv)
{
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	const char *bootstraps;
	sigset_t	sigs;

	cli_progname = "udaconnect-devkafka";
	parse_args(argc, argv);

	/*
	 * Block the signals we wait for before librdkafka starts its threads, so
	 * they inherit the mask and only sigwait() below sees them.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if ((mc = cluster_start(&rk)) == NULL)
		return 1;
	bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
	nodelay_listeners();
	if (publish(bootstraps) != 0)
		return 1;
	if (!quiet)
		fprintf(stderr, "udaconnect-devkafka: %d broker(s) at %s, %d topic(s) with %d partition(s)\n",
				brokers, bootstraps, ntopics, partitions);

	serve(&sigs, mc);

	if (!quiet)
		fprintf(stderr, "udaconnect-devkafka: shutting down\n");
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	if (bootstrap_file != NULL)
		unlink(bootstrap_file);
	if (pid_file != NULL)
		unlink(pid_file);
	return 0;
}
