/*
 * config.c: the settings of udaconnect-httpd, from the environment and the
 * command line.
 *
 * One table names every setting once: its flag, its environment variable,
 * its default and its range; the environment is read first, then the flags
 * override it.  A bad value ends the program with status 2 and a message
 * naming the setting.  This file only fills `cfg`; it must not act on the
 * settings (main.c and the others do) nor be written to after start-up.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"

struct config cfg;

typedef enum opt_kind
{
	OPT_INT,					/* int */
	OPT_UINT,					/* unsigned */
	OPT_SIZE,					/* size_t */
	OPT_TEXT					/* const char * */
} opt_kind;

typedef struct opt_def
{
	const char *flag;			/* NULL: environment only */
	const char *env;			/* NULL: flag only */
	/*
	 * The default when the variable is unset or empty.  NULL: the value set
	 * before the table is read stays; a number's variable, when set, must
	 * then be valid even if empty.
	 */
	const char *def;
	opt_kind	kind;
	long		min;
	long		max;
	void	   *target;
} opt_def;

static const opt_def opts[] = {
	{"--port", "UDACONNECT_HTTP_PORT", "30001", OPT_INT, 0, 65535, &cfg.port},
	{"--bind", "UDACONNECT_HTTP_BIND", "0.0.0.0", OPT_TEXT, 0, 0, &cfg.bind},
	{"--database-url", "UDACONNECT_DATABASE_URL", "", OPT_TEXT, 0, 0, &cfg.database_url},
	{"--database-read-url", "UDACONNECT_DATABASE_READ_URL", NULL, OPT_TEXT, 0, 0,
		&cfg.database_read_url},
	{"--db-user", "UDACONNECT_HTTP_DB_USER", NULL, OPT_TEXT, 0, 0, &cfg.db_user},
	{"--threads", "UDACONNECT_HTTP_THREADS", NULL, OPT_INT, 1, 256, &cfg.threads},
	{"--db-threads", "UDACONNECT_HTTP_DB_THREADS", NULL, OPT_INT, 1, 256, &cfg.db_threads},
	{"--statement-timeout", "UDACONNECT_HTTP_STATEMENT_TIMEOUT", "5000", OPT_INT,
		1, 3600000, &cfg.statement_timeout_ms},
	{"--max-body", "UDACONNECT_HTTP_MAX_BODY", "65536", OPT_SIZE, 1, 64L << 20, &cfg.max_body},
	{"--max-discard", "UDACONNECT_HTTP_MAX_DISCARD", NULL, OPT_SIZE, 0, 1L << 30, &cfg.max_discard},
	{"--max-connections", "UDACONNECT_HTTP_MAX_CONNECTIONS", "1024", OPT_UINT,
		1, 100000, &cfg.max_connections},
	{"--max-connections-per-ip", "UDACONNECT_HTTP_MAX_PER_IP", "256", OPT_UINT,
		1, 100000, &cfg.max_per_ip},
	{"--connection-timeout", "UDACONNECT_HTTP_CONNECTION_TIMEOUT", "30", OPT_UINT,
		1, 86400, &cfg.connection_timeout_s},
	{"--connection-memory", "UDACONNECT_HTTP_CONNECTION_MEMORY", "32768", OPT_SIZE,
		4096, 1 << 24, &cfg.connection_memory},
	{"--cors-origin", "UDACONNECT_HTTP_CORS_ORIGIN", NULL, OPT_TEXT, 0, 0, &cfg.cors_origin},
	{"--web-root", "UDACONNECT_WEB_ROOT", NULL, OPT_TEXT, 0, 0, &cfg.web_root},
	{"--openapi", NULL, NULL, OPT_TEXT, 0, 0, &cfg.openapi_path},
	{"--auth", "UDACONNECT_AUTH", "on", OPT_TEXT, 0, 0, &cfg.auth_text},
	{"--jwt-key-file", "UDACONNECT_JWT_KEY_FILE", NULL, OPT_TEXT, 0, 0, &cfg.jwt_key_file},
	{"--tls-cert", "UDACONNECT_TLS_CERT_FILE", NULL, OPT_TEXT, 0, 0, &cfg.tls_cert_file},
	{"--tls-key", "UDACONNECT_TLS_KEY_FILE", NULL, OPT_TEXT, 0, 0, &cfg.tls_key_file},
	{"--stream-max", "UDACONNECT_HTTP_STREAM_MAX", "10000", OPT_UINT, 1, 1000000, &cfg.stream_max},
	{"--stream-heartbeat", "UDACONNECT_HTTP_STREAM_HEARTBEAT", "15", OPT_INT, 1, 3600,
		&cfg.stream_heartbeat_s},
	{"--stream-queue", "UDACONNECT_HTTP_STREAM_QUEUE", "16384", OPT_SIZE, 1024, 1 << 24,
		&cfg.stream_queue},
	{"--stream-fetch", "UDACONNECT_HTTP_STREAM_FETCH", "by-id", OPT_TEXT, 0, 0,
		&cfg.stream_fetch_text},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* the defaults next to the binary */
static char default_web[PATH_MAX + 8];
static char default_openapi[PATH_MAX + 16];

static void
usage(FILE *f)
{
	fprintf(f,
			"usage: udaconnect-httpd [options]\n"
			"  --port N                    listen port (UDACONNECT_HTTP_PORT, default 30001)\n"
			"  --bind ADDR                 listen address (UDACONNECT_HTTP_BIND, default 0.0.0.0)\n"
			"  --database-url CONNINFO     libpq conninfo or URI (UDACONNECT_DATABASE_URL)\n"
			"  --database-read-url CONNINFO  the GET routes' reads go there, e.g. hot standbys\n"
			"                              with the primary last: \"host=standby,primary\n"
			"                              target_session_attrs=prefer-standby ...\"; what it cannot\n"
			"                              answer runs on the primary (UDACONNECT_DATABASE_READ_URL;\n"
			"                              default: unset, every read on --database-url)\n"
			"  --db-user ROLE              connect as ROLE (UDACONNECT_HTTP_DB_USER)\n"
			"  --threads N                 worker threads, which never wait for the database (each\n"
			"                              with a pipelined connection for the reads)\n"
			"                              (UDACONNECT_HTTP_THREADS, default: 2 x CPUs, at most 16)\n"
			"  --db-threads N              statement threads, each with a database connection: they\n"
			"                              run the other statements, so a slow one holds one of them,\n"
			"                              never a worker (UDACONNECT_HTTP_DB_THREADS, default: --threads)\n"
			"  --statement-timeout MS      per statement (UDACONNECT_HTTP_STATEMENT_TIMEOUT, default 5000)\n"
			"  --max-body BYTES            request body cap (UDACONNECT_HTTP_MAX_BODY, default 65536)\n"
			"  --max-discard BYTES         the body of a refused request is read and thrown away up to\n"
			"                              this size, so that clients sending it whole still get the answer;\n"
			"                              0 = never (UDACONNECT_HTTP_MAX_DISCARD,\n"
			"                              default 8 MiB or 4 x --max-body, whichever is larger)\n"
			"  --max-connections N         (UDACONNECT_HTTP_MAX_CONNECTIONS, default 1024)\n"
			"  --max-connections-per-ip N  (UDACONNECT_HTTP_MAX_PER_IP, default 256)\n"
			"  --connection-timeout S      idle connection timeout (UDACONNECT_HTTP_CONNECTION_TIMEOUT, default 30)\n"
			"  --connection-memory BYTES   per-connection memory for headers (UDACONNECT_HTTP_CONNECTION_MEMORY, default 32768)\n"
			"  --cors-origin ORIGIN        enable CORS for ORIGIN or * (UDACONNECT_HTTP_CORS_ORIGIN; default off)\n"
			"  --web-root DIR              the web app (UDACONNECT_WEB_ROOT, default <binary>/../web)\n"
			"  --openapi FILE              OpenAPI document (default <binary>/openapi.json)\n"
			"  --auth on|off               on: every /api route needs Authorization: Bearer <JWT>;\n"
			"                              off: the open API, every caller an organizer\n"
			"                              (UDACONNECT_AUTH, default on)\n"
			"  --jwt-key-file FILE         the HS256 keys, one a line, the first signs\n"
			"                              (UDACONNECT_JWT_KEY_FILE; required when auth is on)\n"
			"  --tls-cert FILE             PEM certificate, the chain after it: serve HTTPS only\n"
			"                              (UDACONNECT_TLS_CERT_FILE; needs --tls-key; default plain HTTP)\n"
			"  --tls-key FILE              its PEM private key, unencrypted (UDACONNECT_TLS_KEY_FILE)\n"
			"  --stream-max N              live encounter streams at once; more are 503\n"
			"                              (UDACONNECT_HTTP_STREAM_MAX, default 10000; each is also\n"
			"                              a connection: see --max-connections)\n"
			"  --stream-heartbeat S        a comment line to an idle stream every S seconds\n"
			"                              (UDACONNECT_HTTP_STREAM_HEARTBEAT, default 15)\n"
			"  --stream-queue BYTES        unsent event text held per stream; a stream past it\n"
			"                              takes no more until it is sent\n"
			"                              (UDACONNECT_HTTP_STREAM_QUEUE, default 16384)\n"
			"  --stream-fetch by-id|scan   how live streams read a change: by-id reads what the\n"
			"                              notification announced by primary key, scan reads every\n"
			"                              encounter of the person after the stream's position (the\n"
			"                              path before 1.5, for comparison)\n"
			"                              (UDACONNECT_HTTP_STREAM_FETCH, default by-id)\n");
}

/* Stores v (named `name` in the message) into o's target; exits on a bad
 * number. */
static void
set_opt(const opt_def *o, const char *name, const char *v)
{
	long long	x = 0;

	if (o->kind != OPT_TEXT && (!v || parse_int64(v, o->min, o->max, &x) < 0))
	{
		logmsg(LOG_FATAL, "%s must be an integer between %ld and %ld, not \"%s\"",
			   name, o->min, o->max, v ? v : "");
		exit(2);
	}
	switch (o->kind)
	{
		case OPT_INT:
			*(int *) o->target = (int) x;
			break;
		case OPT_UINT:
			*(unsigned *) o->target = (unsigned) x;
			break;
		case OPT_SIZE:
			*(size_t *) o->target = (size_t) x;
			break;
		case OPT_TEXT:
			*(const char **) o->target = v;
			break;
	}
}

/* The defaults that depend on the machine: the files next to the binary,
 * the number of threads. */
static void
computed_defaults(void)
{
	char		exe_dir[PATH_MAX] = ".";
	ssize_t		n = readlink("/proc/self/exe", exe_dir, sizeof(exe_dir) - 1);
	char	   *slash;
	cpu_set_t	cpus;
	long		ncpu;

	if (n > 0)
	{
		exe_dir[n] = 0;
		slash = strrchr(exe_dir, '/');
		if (slash)
			*slash = 0;
	}
	snprintf(default_web, sizeof(default_web), "%s/../web", exe_dir);
	snprintf(default_openapi, sizeof(default_openapi), "%s/openapi.json", exe_dir);
	cfg.web_root = default_web;
	cfg.openapi_path = default_openapi;

	/*
	 * Two worker threads per CPU this process may run on (not the whole
	 * machine's), the setting docs/http.md's figures were measured with; at
	 * most 16 by default.  The statement threads default to as many
	 * (config_load), which keeps the number of database connections what it
	 * was when each worker also had a blocking one.
	 */
	ncpu = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus)
		: sysconf(_SC_NPROCESSORS_ONLN);
	cfg.threads = ncpu > 0 ? (int) (2 * ncpu) : 4;
	if (cfg.threads > 16)
		cfg.threads = 16;
	cfg.max_discard = SIZE_MAX; /* set from max_body at the end */
}

static void
read_environment(void)
{
	for (size_t i = 0; i < N_OPTS; i++)
	{
		const opt_def *o = &opts[i];
		const char *v;

		if (!o->env)
			continue;
		v = getenv(o->env);
		if (v && *v)
			set_opt(o, o->env, v);
		else if (o->def)
			set_opt(o, o->env, o->def);
		else if (v && o->kind != OPT_TEXT)
			set_opt(o, o->env, v);	/* set but empty: refused */
	}
}

static const opt_def *
find_flag(const char *a)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (opts[i].flag && strcmp(opts[i].flag, a) == 0)
			return &opts[i];
	return NULL;
}

/* UDACONNECT_AUTH is on or off; on needs a key file (caller.c loads it). */
static int
check_auth(void)
{
	if (strcmp(cfg.auth_text, "on") != 0 && strcmp(cfg.auth_text, "off") != 0)
	{
		logmsg(LOG_FATAL, "--auth (UDACONNECT_AUTH) must be on or off, not \"%s\"",
			   cfg.auth_text);
		return -1;
	}
	cfg.auth = strcmp(cfg.auth_text, "on") == 0;
	if (cfg.auth && (!cfg.jwt_key_file || !*cfg.jwt_key_file))
	{
		logmsg(LOG_FATAL, "UDACONNECT_AUTH is on but no key file is given: set "
			   "UDACONNECT_JWT_KEY_FILE (--jwt-key-file) to the HS256 key file "
			   "(udaconnect-token --genkey makes one), or UDACONNECT_AUTH=off for the "
			   "open API");
		return -1;
	}
	return 0;
}

/* UDACONNECT_HTTP_STREAM_FETCH is by-id or scan. */
static int
check_stream_fetch(void)
{
	if (strcmp(cfg.stream_fetch_text, "by-id") != 0 && strcmp(cfg.stream_fetch_text, "scan") != 0)
	{
		logmsg(LOG_FATAL, "--stream-fetch (UDACONNECT_HTTP_STREAM_FETCH) must be by-id or "
			   "scan, not \"%s\"", cfg.stream_fetch_text);
		return -1;
	}
	cfg.stream_by_id = strcmp(cfg.stream_fetch_text, "by-id") == 0;
	return 0;
}

int
config_load(int argc, char **argv)
{
	computed_defaults();
	read_environment();
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const opt_def *o;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
		{
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0)
		{
			printf("udaconnect-httpd %s (libmicrohttpd %s, libpq %d)\n", HTTPD_VERSION,
				   MHD_get_version(), PQlibVersion());
			return 0;
		}
		o = find_flag(a);
		if (!o)
		{
			logmsg(LOG_FATAL, "unknown option %s", a);
			usage(stderr);
			return 2;
		}
		if (i + 1 >= argc)
		{
			logmsg(LOG_FATAL, "%s needs a value", a);
			return 2;
		}
		set_opt(o, o->flag, argv[++i]);
	}
	if (cfg.max_discard == SIZE_MAX)
		cfg.max_discard = cfg.max_body * 4 > (8u << 20) ? cfg.max_body * 4 : (8u << 20);
	/* at or below the cap, a chunked body past it would be cut off unanswered */
	else if (cfg.max_discard != 0 && cfg.max_discard <= cfg.max_body)
	{
		logmsg(LOG_FATAL, "--max-discard (UDACONNECT_HTTP_MAX_DISCARD) must be 0 or more than "
			   "--max-body (%zu), not %zu", (size_t) cfg.max_body, cfg.max_discard);
		return 2;
	}
	if (check_auth() != 0 || check_stream_fetch() != 0)
		return 2;
	if (cfg.max_connections < (unsigned) cfg.threads)
		cfg.max_connections = (unsigned) cfg.threads;
	if (cfg.db_threads == 0)
		cfg.db_threads = cfg.threads;
	return -1;
}
