/*
 * metrics.c: the Prometheus metrics of udaconnect-httpd (text exposition
 * format 0.0.4, GET /metrics): requests by route and status, their durations,
 * database errors by kind, database connections and statements in flight,
 * the live streams and their fetches.
 *
 * Lock-free: relaxed atomic counters, rendered on demand.  This file only
 * counts what the others report; it must not call into them (only the
 * settings are read, for the pool size).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

/* the route label */
static const char *const route_names[R_COUNT] = {
	[R_PERSONS] = "/api/persons",
	[R_PERSON] = "/api/persons/{id}",
	[R_CONNECTION] = "/api/persons/{id}/connection",
	[R_CONNECTIONS] = "/api/persons/{id}/connections",
	[R_TOKEN] = "/api/persons/{id}/token",
	[R_LOCATIONS] = "/api/locations",
	[R_LOCATION] = "/api/locations/{id}",
	[R_PLACES] = "/api/places",
	[R_PLACE] = "/api/places/{id}",
	[R_ENCOUNTERS] = "/api/persons/{id}/encounters",
	[R_ENCOUNTER_STREAM] = "/api/persons/{id}/encounters/stream",
	[R_OPENAPI] = "/api/openapi.json",
	[R_HEALTHZ] = "/healthz",
	[R_METRICS] = "/metrics",
	[R_STATIC] = "static",
	[R_NOT_FOUND] = "not_found",
};

static const unsigned status_codes[] = {
	200, 201, 204, 301, 304, 400, 401, 403, 404, 405, 409, 413, 414, 415, 431,
	500, 503, 504, 0			/* other */
};

#define N_STATUS (sizeof(status_codes) / sizeof(status_codes[0]))

static const double buckets[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10
};

#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const char *const db_error_kinds[] = {
	"connect", "prepare", "connection_lost", "timeout", "client_error", "server_error"
};

#define N_DB_KINDS (sizeof(db_error_kinds) / sizeof(db_error_kinds[0]))

/* where a GET route's read was answered with a read URL: the standby, or the
 * primary and why (see httpd.h) */
static const char *const db_read_outcomes[] = {
	"standby", "lagging", "not_found", "conflict", "lost", "unavailable"
};

#define N_READ_OUTCOMES (sizeof(db_read_outcomes) / sizeof(db_read_outcomes[0]))

static unsigned long requests[R_COUNT][N_STATUS];
static unsigned long hist[R_COUNT][N_BUCKETS + 1];	/* non-cumulative; last = +Inf */
static unsigned long hist_sum_us[R_COUNT];
static unsigned long db_errors[N_DB_KINDS];
static unsigned long db_reads[N_READ_OUTCOMES];
static long db_conns;
static long db_busy;
static long db_queued;
static unsigned long pipe_stalled;
static long streams;
static unsigned long stream_fetches[2];	/* [0] scans, [1] by id */
static unsigned long stream_fetch_us[2];	/* their statements' time */
static unsigned long stream_resyncs;

#define INC(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void
metrics_request(enum route r, unsigned status, double seconds)
{
	size_t		s;
	size_t		b;

	if ((unsigned) r >= R_COUNT)
		return;
	for (s = 0; s < N_STATUS - 1 && status_codes[s] != status; s++)
		;
	INC(requests[r][s], 1);
	for (b = 0; b < N_BUCKETS && seconds > buckets[b]; b++)
		;
	INC(hist[r][b], 1);
	if (seconds > 0)
		INC(hist_sum_us[r], (unsigned long) (seconds * 1e6));
}

void
metrics_db_error(const char *kind)
{
	for (size_t i = 0; i < N_DB_KINDS; i++)
		if (strcmp(db_error_kinds[i], kind) == 0)
		{
			INC(db_errors[i], 1);
			return;
		}
}

void
metrics_db_read(const char *outcome)
{
	for (size_t i = 0; i < N_READ_OUTCOMES; i++)
		if (strcmp(db_read_outcomes[i], outcome) == 0)
		{
			INC(db_reads[i], 1);
			return;
		}
}

void
metrics_db_conn(int delta)
{
	INC(db_conns, delta);
}

void
metrics_streams(int delta)
{
	INC(streams, delta);
}

void
metrics_stream_fetch(bool by_id)
{
	INC(stream_fetches[by_id], 1);
}

void
metrics_stream_statement(bool by_id, double seconds)
{
	if (seconds > 0)
		INC(stream_fetch_us[by_id], (unsigned long) (seconds * 1e6));
}

void
metrics_stream_resync(void)
{
	INC(stream_resyncs, 1);
}

void
metrics_db_busy(int delta)
{
	INC(db_busy, delta);
}

void
metrics_db_queued(int delta)
{
	INC(db_queued, delta);
}

void
metrics_db_pipe_stalled(void)
{
	INC(pipe_stalled, 1);
}

static void
render_requests(FILE *f)
{
	unsigned long v;

	fputs("# HELP udaconnect_http_requests_total HTTP requests by route and status.\n"
		  "# TYPE udaconnect_http_requests_total counter\n", f);
	for (int r = 0; r < R_COUNT; r++)
		for (size_t s = 0; s < N_STATUS; s++)
		{
			v = GET(requests[r][s]);
			if (v == 0)
				continue;
			if (status_codes[s])
				fprintf(f, "udaconnect_http_requests_total{route=\"%s\",status=\"%u\"} %lu\n",
						route_names[r], status_codes[s], v);
			else
				fprintf(f, "udaconnect_http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
						route_names[r], v);
		}
}

static void
render_durations(FILE *f)
{
	unsigned long cum;

	fputs("# HELP udaconnect_http_request_duration_seconds Time from the request's first byte "
		  "parsed to the response sent, by route.\n"
		  "# TYPE udaconnect_http_request_duration_seconds histogram\n", f);
	for (int r = 0; r < R_COUNT; r++)
	{
		cum = 0;
		for (size_t b = 0; b <= N_BUCKETS; b++)
			cum += GET(hist[r][b]);
		if (cum == 0)
			continue;
		cum = 0;
		for (size_t b = 0; b < N_BUCKETS; b++)
		{
			cum += GET(hist[r][b]);
			fprintf(f, "udaconnect_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
					route_names[r], buckets[b], cum);
		}
		cum += GET(hist[r][N_BUCKETS]);
		fprintf(f, "udaconnect_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n",
				route_names[r], cum);
		fprintf(f, "udaconnect_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
				route_names[r], GET(hist_sum_us[r]) / 1e6);
		fprintf(f, "udaconnect_http_request_duration_seconds_count{route=\"%s\"} %lu\n",
				route_names[r], cum);
	}
}

char *
metrics_render(size_t *len)
{
	char	   *buf = NULL;
	FILE	   *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	render_requests(f);
	render_durations(f);
	fputs("# HELP udaconnect_http_db_errors_total Database errors by kind.\n"
		  "# TYPE udaconnect_http_db_errors_total counter\n", f);
	for (size_t i = 0; i < N_DB_KINDS; i++)
		fprintf(f, "udaconnect_http_db_errors_total{kind=\"%s\"} %lu\n",
				db_error_kinds[i], GET(db_errors[i]));
	if (cfg.database_read_url && *cfg.database_read_url)
	{
		fputs("# HELP udaconnect_http_db_reads_total GET reads with a read URL: answered by "
			  "the standby, or by the primary and why.\n"
			  "# TYPE udaconnect_http_db_reads_total counter\n", f);
		for (size_t i = 0; i < N_READ_OUTCOMES; i++)
			fprintf(f, "udaconnect_http_db_reads_total{outcome=\"%s\"} %lu\n",
					db_read_outcomes[i], GET(db_reads[i]));
	}
	fprintf(f, "# HELP udaconnect_http_db_pool_size Database connections allowed "
			"(a pipelined one per worker thread, one per statement thread, and the "
			"encounter streams' one).\n"
			"# TYPE udaconnect_http_db_pool_size gauge\n"
			"udaconnect_http_db_pool_size %d\n"
			"# HELP udaconnect_http_db_connections Open database connections.\n"
			"# TYPE udaconnect_http_db_connections gauge\n"
			"udaconnect_http_db_connections %ld\n"
			"# HELP udaconnect_http_db_busy Statements in flight (pipelined ones included).\n"
			"# TYPE udaconnect_http_db_busy gauge\n"
			"udaconnect_http_db_busy %ld\n"
			"# HELP udaconnect_http_db_queued Statements waiting for a statement thread.\n"
			"# TYPE udaconnect_http_db_queued gauge\n"
			"udaconnect_http_db_queued %ld\n"
			"# HELP udaconnect_http_db_pipe_stalled_total Reads sent to a statement thread because "
			"the oldest statement on their worker's pipelined connection was out over 100 ms.\n"
			"# TYPE udaconnect_http_db_pipe_stalled_total counter\n"
			"udaconnect_http_db_pipe_stalled_total %lu\n"
			"# HELP udaconnect_http_streams Live encounter streams open (at most --stream-max).\n"
			"# TYPE udaconnect_http_streams gauge\n"
			"udaconnect_http_streams %ld\n",
			cfg.threads + cfg.db_threads + 1, GET(db_conns), GET(db_busy),
			GET(db_queued), GET(pipe_stalled), GET(streams));
	fprintf(f, "# HELP udaconnect_http_stream_fetches_total Reads of one watched person's "
			"encounter changes for its live streams: by id (what a notification announced) "
			"or by version (a scan after the stream's position).\n"
			"# TYPE udaconnect_http_stream_fetches_total counter\n"
			"udaconnect_http_stream_fetches_total{kind=\"by_id\"} %lu\n"
			"udaconnect_http_stream_fetches_total{kind=\"scan\"} %lu\n"
			"# HELP udaconnect_http_stream_fetch_seconds_total Time the stream thread waited for "
			"the database's answers to those reads (their statements, up to 64 persons each).\n"
			"# TYPE udaconnect_http_stream_fetch_seconds_total counter\n"
			"udaconnect_http_stream_fetch_seconds_total{kind=\"by_id\"} %.6f\n"
			"udaconnect_http_stream_fetch_seconds_total{kind=\"scan\"} %.6f\n"
			"# HELP udaconnect_http_stream_resyncs_total Notifications after which the streams "
			"could not tell what they missed (a version not heard, an unreadable payload): "
			"every stream read by version.\n"
			"# TYPE udaconnect_http_stream_resyncs_total counter\n"
			"udaconnect_http_stream_resyncs_total %lu\n",
			GET(stream_fetches[1]), GET(stream_fetches[0]), GET(stream_fetch_us[1]) / 1e6,
			GET(stream_fetch_us[0]) / 1e6, GET(stream_resyncs));
	if (fclose(f) != 0)
	{
		free(buf);
		return NULL;
	}
	return buf;
}
