/*
 * config.c — the settings of udaconnect-grpcd, from the environment and the
 * command line.
 *
 * One table names every setting once: its flag, its environment variable
 * (if it has one), its default, its kind and range, and where it goes in
 * `cfg`.  The
 * environment is read first, then the flags override it.  A bad value ends
 * the program with status 2 and a message naming the setting (the flag or
 * the variable, as given).  This file only fills `cfg` and the log level;
 * it must not act on the settings (main.c and the others do), and nothing
 * writes to `cfg` after start-up.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcd.h"

/* what is not a setting; the settings' defaults are in the table below */
grpcd_config cfg = {
	.requests = 32,
};

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

typedef enum setting_kind
{
	S_TEXT,						/* const char * */
	S_INT,						/* int in [min, max] */
	S_NUMBER,					/* double in [min, max] */
	S_KAFKA_OPT,				/* NAME=VALUE, repeatable */
	S_ON_OFF,					/* bool: "on" or "off" */
	S_LOG_LEVEL,
	S_HELP,
	S_VERSION
} setting_kind;

typedef struct setting
{
	const char *flag;			/* the long flag, without "--" */
	int			letter;			/* the short flag, or 0 */
	const char *env;			/* NULL: flag only */
	const char *def;			/* the default; NULL: none */
	setting_kind kind;
	long		min;
	long		max;
	void	   *target;
} setting;

/* the environment is read in this order, so the first bad variable is named */
static const setting settings[] = {
	{"port", 'p', "UDACONNECT_GRPC_PORT", "30005", S_INT, 0, 65535, &cfg.port},
	{"bind", 0, "UDACONNECT_GRPC_BIND", "0.0.0.0", S_TEXT, 0, 0, &cfg.bind},
	{"brokers", 'b', "UDACONNECT_KAFKA_BROKERS", NULL, S_TEXT, 0, 0, &cfg.brokers},
	{"topic", 't', "UDACONNECT_KAFKA_TOPIC", "locations", S_TEXT, 0, 0, &cfg.topic},
	{"database-url", 'd', "UDACONNECT_DATABASE_URL", NULL, S_TEXT, 0, 0, &cfg.dburl},
	{"database-read-url", 0, "UDACONNECT_DATABASE_READ_URL", NULL, S_TEXT, 0, 0, &cfg.read_dburl},
	{"threads", 'j', NULL, "1", S_INT, 1, 64, &cfg.threads},
	{"db-threads", 0, NULL, "2", S_INT, 1, 64, &cfg.db_threads},
	{"max-message-bytes", 0, NULL, "16384", S_INT, 64, 64 * 1024 * 1024, &cfg.max_message},
	{"max-stream", 0, NULL, "1000000", S_INT, 1, INT32_MAX - 1, &cfg.max_stream},
	{"max-rows", 0, NULL, "100000", S_INT, 1, 100000000, &cfg.max_rows},
	{"max-find-calls", 0, "UDACONNECT_GRPC_MAX_FIND_CALLS", "64", S_INT, 1, 100000, &cfg.max_find},
	{"max-watchers", 0, "UDACONNECT_GRPC_MAX_WATCHERS", "4096", S_INT, 1, 1000000, &cfg.max_watchers},
	{"watch-queue", 0, "UDACONNECT_GRPC_WATCH_QUEUE", "1024", S_INT, 32, 100000, &cfg.watch_queue},
	{"watch-fetch", 0, "UDACONNECT_GRPC_WATCH_FETCH", "by-id", S_TEXT, 0, 0, &cfg.watch_fetch},
	{"max-streams", 0, "UDACONNECT_GRPC_MAX_STREAMS", "256", S_INT, 1, 100000, &cfg.max_streams},
	{"stream-idle-timeout", 0, "UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT", "60", S_INT, 1, 86400, &cfg.stream_idle_s},
	{"max-listed-rejections", 0, "UDACONNECT_GRPC_MAX_LISTED_REJECTIONS", "1000", S_INT, 0, 1000, &cfg.max_listed},
	{"max-future-skew", 0, NULL, STRINGIFY(UDC_DEFAULT_MAX_FUTURE_SKEW), S_INT, 0, UDC_MAX_MAX_FUTURE_SKEW, &cfg.max_skew},
	{"attendee-max-report-age", 0, "UDACONNECT_ATTENDEE_MAX_REPORT_AGE", "3600", S_INT, 60, 604800, &cfg.attendee_max_report_age},
	{"kafka-timeout-ms", 0, NULL, "10000", S_INT, 1, 900000, &cfg.kafka_timeout_ms},
	{"statement-timeout-ms", 0, NULL, "30000", S_INT, 1, 3600000, &cfg.statement_timeout_ms},
	{"linger-ms", 0, NULL, "0.5", S_NUMBER, 0, 900000, &cfg.linger_ms},
	{"stream-linger-ms", 0, NULL, "5", S_NUMBER, 0, 900000, &cfg.stream_linger_ms},
	{"kafka-opt", 'X', NULL, NULL, S_KAFKA_OPT, 0, 0, NULL},
	{"grace", 0, NULL, "10", S_NUMBER, 0, 3600, &cfg.grace},
	{"auth", 0, "UDACONNECT_AUTH", "on", S_ON_OFF, 0, 0, &cfg.auth},
	{"jwt-key-file", 0, "UDACONNECT_JWT_KEY_FILE", NULL, S_TEXT, 0, 0, &cfg.jwt_key_file},
	{"tls-cert", 0, "UDACONNECT_TLS_CERT_FILE", NULL, S_TEXT, 0, 0, &cfg.tls_cert},
	{"tls-key", 0, "UDACONNECT_TLS_KEY_FILE", NULL, S_TEXT, 0, 0, &cfg.tls_key},
	{"log-level", 'l', "UDACONNECT_LOG_LEVEL", "info", S_LOG_LEVEL, 0, 0, NULL},
	{"help", 'h', NULL, NULL, S_HELP, 0, 0, NULL},
	{"version", 'V', NULL, NULL, S_VERSION, 0, 0, NULL},
};

#define N_SETTINGS ((int) (sizeof(settings) / sizeof(settings[0])))

static const char usage[] =
	"usage: udaconnect-grpcd [options]\n"
	"  -p, --port N              listen port (env UDACONNECT_GRPC_PORT, default 30005)\n"
	"      --bind ADDR           listen address (env UDACONNECT_GRPC_BIND, default 0.0.0.0)\n"
	"  -b, --brokers LIST        Kafka bootstrap servers (env UDACONNECT_KAFKA_BROKERS; required)\n"
	"  -t, --topic NAME          Kafka topic (env UDACONNECT_KAFKA_TOPIC, default locations)\n"
	"  -d, --database-url URL    libpq conninfo for the ConnectionService (env UDACONNECT_DATABASE_URL)\n"
	"      --database-read-url URL  FindConnections reads there, e.g. hot standbys with the\n"
	"                            primary last (\"host=standby,primary target_session_attrs=\n"
	"                            prefer-standby ...\"); what it cannot answer runs on\n"
	"                            --database-url (env UDACONNECT_DATABASE_READ_URL; default unset)\n"
	"  -j, --threads N           worker threads = completion queues (default 1)\n"
	"      --db-threads N        database connections (default 2)\n"
	"      --max-message-bytes N largest request message (default 16384)\n"
	"      --max-stream N        most locations in one RecordLocations stream (default 1000000)\n"
	"      --max-rows N          most rows one FindConnections call streams (default 100000)\n"
	"      --max-find-calls N    FindConnections calls at once (env UDACONNECT_GRPC_MAX_FIND_CALLS, default 64)\n"
	"      --max-watchers N      WatchEncounters calls at once (env UDACONNECT_GRPC_MAX_WATCHERS, default 4096)\n"
	"      --watch-queue N       events waiting to be sent per watcher, 32..100000; a watcher\n"
	"                            with more is ended (env UDACONNECT_GRPC_WATCH_QUEUE, default 1024)\n"
	"      --watch-fetch by-id|scan  how live watchers read a change: by-id reads what the\n"
	"                            notification announced by primary key, scan every encounter\n"
	"                            of the person after the watcher's position (the path before\n"
	"                            1.5, for comparison) (env UDACONNECT_GRPC_WATCH_FETCH, default by-id)\n"
	"      --max-streams N       RecordLocations streams at once (env UDACONNECT_GRPC_MAX_STREAMS, default 256)\n"
	"      --stream-idle-timeout S  end a stream that sends nothing for S s\n"
	"                            (env UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT, default 60)\n"
	"      --max-listed-rejections N  rejections listed per stream, 0..1000\n"
	"                            (env UDACONNECT_GRPC_MAX_LISTED_REJECTIONS, default 1000)\n"
	"      --max-future-skew S   seconds a creation_time may lie in the future (default 300)\n"
	"      --attendee-max-report-age S  how old an attendee's point may be, 60..604800 s;\n"
	"                            must equal the database's udaconnect.attendee_max_report_age\n"
	"                            (env UDACONNECT_ATTENDEE_MAX_REPORT_AGE, default 3600)\n"
	"      --kafka-timeout-ms N  message.timeout.ms: give up on the broker after N ms (default 10000)\n"
	"      --statement-timeout-ms N  longest FindConnections query, 1..3600000 (default 30000)\n"
	"      --linger-ms X         linger.ms of the producer for unary calls (default 0.5)\n"
	"      --stream-linger-ms X  linger.ms of the producer for RecordLocations streams (default 5)\n"
	"  -X, --kafka-opt K=V       any other librdkafka producer setting (repeatable)\n"
	"      --grace S             seconds SIGTERM waits for calls before cancelling them (default 10)\n"
	"      --auth on|off         on: every call but the health check needs a token (JWT, HS256)\n"
	"                            off: every caller is an organizer (env UDACONNECT_AUTH, default on)\n"
	"      --jwt-key-file PATH   the keys that verify tokens, one a line\n"
	"                            (env UDACONNECT_JWT_KEY_FILE; required with --auth on)\n"
	"      --tls-cert PATH       PEM certificate, then any intermediates: serve TLS only\n"
	"                            (env UDACONNECT_TLS_CERT_FILE; needs --tls-key)\n"
	"      --tls-key PATH        PEM private key of that certificate, unencrypted\n"
	"                            (env UDACONNECT_TLS_KEY_FILE; neither set: plaintext)\n"
	"  -l, --log-level LEVEL     debug, info, warning, error (env UDACONNECT_LOG_LEVEL, default info)\n"
	"  -h, --help, -V, --version\n";

/* --kafka-opt NAME=VALUE: kept for kafka.c, which applies it to both producers */
static void
add_kafka_opt(const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg)
	{
		fprintf(stderr, "udaconnect-grpcd: --kafka-opt takes NAME=VALUE, got \"%s\"\n", arg);
		exit(2);
	}
	if (cfg.nkopts >= MAX_KAFKA_OPTS)
	{
		fprintf(stderr, "udaconnect-grpcd: at most %d --kafka-opt settings\n", MAX_KAFKA_OPTS);
		exit(2);
	}
	cfg.kopt_name[cfg.nkopts] = strndup(arg, (size_t) (eq - arg));
	cfg.kopt_value[cfg.nkopts] = eq + 1;
	cfg.nkopts++;
}

/* Apply value v of setting s, given as `what` (the flag or the variable). */
static void
apply(const setting *s, const char *what, const char *v)
{
	switch (s->kind)
	{
		case S_TEXT:
			*(const char **) s->target = v;
			break;
		case S_INT:
			*(int *) s->target = (int) cli_parse_long(v, what, s->min, s->max);
			break;
		case S_NUMBER:
			*(double *) s->target = cli_parse_double(v, what, (double) s->min, (double) s->max);
			break;
		case S_KAFKA_OPT:
			add_kafka_opt(v);
			break;
		case S_ON_OFF:
			if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			{
				fprintf(stderr, "udaconnect-grpcd: %s must be on or off, got \"%s\"\n", what, v);
				exit(2);
			}
			*(bool *) s->target = strcmp(v, "on") == 0;
			break;
		case S_LOG_LEVEL:
			if ((log_min_level = log_level_from_name(v)) < 0)
			{
				fprintf(stderr, "udaconnect-grpcd: %s must be debug, info, warning or error, got \"%s\"\n", what, v);
				exit(2);
			}
			break;
		case S_HELP:
			cli_usage(usage, 0);
		case S_VERSION:
			printf("udaconnect-grpcd %s (gRPC core %s, librdkafka %s)\n", GRPCD_VERSION,
				   grpc_version_string(), rd_kafka_version_str());
			exit(0);
	}
}

/* the flags, as getopt_long() wants them, built from the table */
static void
parse_flags(int argc, char **argv)
{
	struct option longopts[N_SETTINGS + 1];
	char		shortopts[2 * N_SETTINGS + 1];
	size_t		ns = 0;
	int			o;

	for (int i = 0; i < N_SETTINGS; i++)
	{
		const setting *s = &settings[i];
		bool		arg = s->kind != S_HELP && s->kind != S_VERSION;

		longopts[i] = (struct option) {s->flag, arg ? required_argument : no_argument, NULL,
		s->letter ? s->letter : 256 + i};
		if (s->letter)
		{
			shortopts[ns++] = (char) s->letter;
			if (arg)
				shortopts[ns++] = ':';
		}
	}
	longopts[N_SETTINGS] = (struct option) {NULL, 0, NULL, 0};
	shortopts[ns] = '\0';
	while ((o = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
	{
		const setting *s = NULL;
		char		what[64];

		if (o >= 256 && o < 256 + N_SETTINGS)
			s = &settings[o - 256];
		for (int i = 0; s == NULL && i < N_SETTINGS; i++)
			if (settings[i].letter == o)
				s = &settings[i];
		if (s == NULL)
			cli_usage(usage, 2);
		snprintf(what, sizeof(what), "--%s", s->flag);
		apply(s, what, optarg);
	}
	cli_no_operands(argc, argv, usage);
}

void
config_load(int argc, char **argv)
{
	const char *e;

	cli_progname = "udaconnect-grpcd";
	for (int i = 0; i < N_SETTINGS; i++)
		if (settings[i].def)
			apply(&settings[i], settings[i].flag, settings[i].def);
	/* an empty variable counts as unset */
	for (int i = 0; i < N_SETTINGS; i++)
		if (settings[i].env && (e = getenv(settings[i].env)) && *e)
			apply(&settings[i], settings[i].env, e);
	parse_flags(argc, argv);
	if (cfg.brokers == NULL)
	{
		fprintf(stderr, "udaconnect-grpcd: no Kafka brokers: set UDACONNECT_KAFKA_BROKERS or --brokers\n");
		exit(2);
	}
	/* the keys themselves are read by caller.c, which says what is wrong with them */
	if (cfg.auth && (cfg.jwt_key_file == NULL || cfg.jwt_key_file[0] == '\0'))
	{
		fprintf(stderr, "udaconnect-grpcd: authentication is on (UDACONNECT_AUTH) but no key file is set:"
				" set UDACONNECT_JWT_KEY_FILE or --jwt-key-file (or UDACONNECT_AUTH=off for an open API)\n");
		exit(2);
	}
	if (strcmp(cfg.watch_fetch, "by-id") != 0 && strcmp(cfg.watch_fetch, "scan") != 0)
	{
		fprintf(stderr, "udaconnect-grpcd: --watch-fetch (UDACONNECT_GRPC_WATCH_FETCH) must be by-id or scan, got \"%s\"\n",
				cfg.watch_fetch);
		exit(2);
	}
	if (cfg.topic[0] == '\0' || strlen(cfg.topic) > 249)
	{
		fprintf(stderr, "udaconnect-grpcd: the Kafka topic name must have 1..249 characters\n");
		exit(2);
	}
}

void
config_free(void)
{
	for (int i = 0; i < cfg.nkopts; i++)
		free(cfg.kopt_name[i]);
}
