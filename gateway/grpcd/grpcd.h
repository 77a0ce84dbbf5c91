/*
 * grpcd.h — the private header of udaconnect-grpcd, shared by all its files.
 *
 * It declares the configuration, the call record and what each file offers
 * the others, one section per file, lowest layer first: a file calls only
 * what is declared in the sections above its own, so the calls between
 * files run one way and never in a circle (docs/design.md, "Map of the code:
 * udaconnect-grpcd").  Where a lower file must hand control back to a
 * method's file (a call's last delivery report, its deadline, its end), it
 * calls the function the method's file stored in the call, as gRPC's own
 * completions do with a tag.  This header holds declarations only, plus the
 * two inline clocks, and must not declare anything one file keeps to itself.
 */
#ifndef UDACONNECT_GRPCD_H
#define UDACONNECT_GRPCD_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <grpc/grpc.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "auth.h"
#include "cli.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "location_rule.h"
#include "log.h"
#include "udaconnect/v1/location.pb-c.h"
#include "udaconnect/v1/location_service.pb-c.h"

#define GRPCD_VERSION "1.0"

/* wall clock (deadlines), and a cheap clock immune to steps (intervals) */
static inline int64_t
now_ms(void)
{
	return cli_clock_ms(CLOCK_REALTIME);
}

static inline int64_t
mono_ms(void)
{
	return cli_clock_ms(CLOCK_MONOTONIC_COARSE);
}

/* ---- config.c: flags and environment ------------------------------------ */
#define MAX_KAFKA_OPTS 64

typedef struct grpcd_config
{
	const char *bind;
	int			port;
	const char *brokers;
	const char *topic;
	const char *dburl;
	const char *read_dburl;		/* FindConnections' reads (NULL, "": dburl) */
	int			threads;
	int			db_threads;
	int			requests;		/* outstanding requests per method and queue */
	int			max_message;
	int			max_stream;
	int			max_rows;
	int			max_skew;
	int			attendee_max_report_age;	/* s; = udaconnect.attendee_max_report_age */
	int			kafka_timeout_ms;
	int			statement_timeout_ms;	/* FindConnections' longest query */
	double		linger_ms;
	double		stream_linger_ms;
	double		grace;
	int			max_streams;	/* RecordLocations calls at once */
	int			stream_idle_s;	/* end a stream nobody writes to */
	int			max_listed;		/* rejections listed per stream */
	int			max_find;		/* FindConnections calls at once */
	int			max_watchers;	/* WatchEncounters calls at once */
	int			watch_queue;	/* events waiting per watcher */
	const char *watch_fetch;	/* "by-id" (what NOTIFY announced) or "scan" */
	bool		auth;			/* UDACONNECT_AUTH: callers need a token */
	const char *jwt_key_file;
	const char *tls_cert;		/* PEM certificate (chain); with tls_key: TLS */
	const char *tls_key;		/* PEM private key of that certificate */
	int			nkopts;
	char	   *kopt_name[MAX_KAFKA_OPTS];
	const char *kopt_value[MAX_KAFKA_OPTS];
} grpcd_config;

extern grpcd_config cfg;

/* fill cfg from the environment, then the flags; exit(2) on a bad one */
void		config_load(int argc, char **argv);
void		config_free(void);

/* ---- tls.c: the listening port's credentials (TLS or plaintext) -------- */
void		tls_start(void);
bool		tls_enabled(void);
grpc_server_credentials *tls_credentials(void);
void		tls_stop(void);

/* ---- caller.c: who is calling, the self rule of location reports ------- */
typedef struct caller
{
	udc_role	role;
	int32_t		person;			/* an attendee's person id; organizer: 0 */
} caller;

void		caller_start(void);
void		caller_stop(void);
bool		caller_from_metadata(const grpc_metadata_array *md, caller *who, char *reason, size_t len);
bool		caller_may_report(const caller *who, int32_t person_id, char *reason, size_t len);
bool		caller_may_report_at(const caller *who, int64_t time_usec, int64_t now_usec,
								 char *reason, size_t len);
const char *caller_role_name(const caller *who);

/* ---- call.c: the call record, its life, its answer ---------------------- */
#define REASON_LEN 256

enum method_kind
{
	M_RECORD,
	M_RECORDS,
	M_LEGACY,
	M_HEALTH,
	M_FIND,
	M_LIST,
	M_WATCH,
	M_COUNT,
	M_UNKNOWN = M_COUNT
};

/* the registered methods: path, and whether the request comes with the call */
typedef struct method_def
{
	const char *path;
	bool		payload;
} method_def;

extern const method_def methods[M_COUNT];

/* a completion queue's tag: what to run when the batch completes */
typedef struct tag
{
	void		(*done) (struct tag *t, bool ok);
} tag;

struct db_thread;					/* db.c's section below */
struct watcher;					/* watch.c's section below */

typedef struct call
{
	tag			t;				/* the call's current batch */
	int			kind;
	grpc_call  *gc;
	int64_t		deadline_ms;	/* INT64_MAX: none */
	caller		who;			/* verified before the method's file sees the call */

	/*
	 * Set by the file that handles the method, so that call.c and kafka.c
	 * hand the call back without calling up into that file:
	 *   complete  every delivery report is in: send the answer
	 *   expired   the deadline sweeper's message (NULL: the unary one)
	 *   release   the call is being freed (NULL: nothing to free)
	 */
	void		(*complete) (struct call *c);
	void		(*expired) (struct call *c, char *msg, size_t len);
	void		(*release) (struct call *c);

	atomic_int	refs;
	atomic_int	answered;
	atomic_int	pending;		/* produced, delivery report outstanding */
	atomic_int	failed;			/* locations not stored (or not known to be) */
	atomic_int	maybe_stored;	/* of those: the broker may have stored them */
	atomic_int	half_closed;	/* no more messages will be produced */
	atomic_int	err_set;
	char		kafka_err[REASON_LEN];
	int32_t		partition;
	int64_t		offset;

	/* batch state */
	grpc_op		ops[6];
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_buf;
	grpc_slice	details;
	bool		has_details;
	bool		sent_initial;
	bool		close_started;	/* RECV_CLOSE_ON_SERVER is in a batch of its
								 * own (watch.c): the final batch must not
								 * start it again */
	int			cancelled;

	/* deadline sweeper list (kafka.c, under its sweep_mu) */
	struct call *sprev,
			   *snext;
	bool		in_sweep;
	int64_t		answer_by_ms;

	/* client stream (stream.c) */
	bool		counted;		/* holds one of --max-streams / --max-find-calls */
	atomic_int	index;			/* messages read */
	int32_t		valid;			/* valid locations handed to the producer */
	int32_t		rejected;
	int32_t		cut_at;			/* -1, or the first index not read: queue full */
	int			nrej;			/* rejections listed in rejbuf */
	size_t		rejlen,
				rejcap;
	char	   *rejbuf;			/* per rejection: int32 index, reason, NUL */
	atomic_int	reading;		/* a RECV_MESSAGE is outstanding */
	_Atomic int64_t wait_since_ms;	/* monotonic: when that receive started */
	struct call *lprev,
			   *lnext;			/* open streams (idle sweep), under streams_mu */
	bool		listed;
	Udaconnect__V1__Location held;	/* the point the full queue refused */
	Google__Protobuf__Timestamp held_ts;
	int64_t		held_since_ms;

	/* the request of ListEncounters, WatchEncounters (its file frees it) */
	ProtobufCMessage *req;
	struct watcher *watcher;	/* WatchEncounters (watch.c) */

	/* a job on a db thread (db.c): what it runs */
	void		(*db_job) (struct call *c, struct db_thread *t);

	/* FindConnections (find.c) */
	Udaconnect__V1__FindConnectionsRequest *freq;
	PGresult   *res;			/* the current chunk of rows */
	int			row;
	int			nrows;
	int64_t		fetched;		/* rows fetched so far (--max-rows) */
	bool		exhausted;		/* no cursor left open */
	bool		truncated;
	int			owner;			/* db thread holding the cursor */
	bool		on_read;		/* ... on its read connection (a standby) */
	unsigned	conn_gen;
	unsigned	cursor_no;
	bool		deadline_timeout;	/* the query's statement_timeout is the
									 * call's deadline, not the server's own */

	struct call *qnext;			/* in a call_queue: a stream waiting for room
								 * in the producer queue, or a job waiting for
								 * a db thread */
} call;

extern atomic_int stopping;		/* SIGTERM received: no new calls */

call	   *call_new(int kind, grpc_call *gc, int64_t deadline_ms);
void		call_unref(call *c);
void		call_finish(call *c, grpc_status_code code, const char *msg, const ProtobufCMessage *resp);
void		call_fail(call *c, grpc_status_code code, const char *fmt,...) __attribute__((format(printf, 3, 4)));
int64_t		call_answer_by(const call *c);
long		calls_live(void);
bool		calls_wait_ended(int64_t until_ms);

/* a FIFO of calls linked through c->qnext; its owner's lock guards it */
typedef struct call_queue
{
	call	   *head;
	call	   *tail;
} call_queue;

void		call_queue_push(call_queue *q, call *c);
call	   *call_queue_pop(call_queue *q);

grpc_slice	buffer_slice(grpc_byte_buffer *bb);
grpc_byte_buffer *pack_message(const ProtobufCMessage *m);
const char *string_with_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);
ProtobufCMessage *request_unpack(call *c, grpc_byte_buffer *payload, const ProtobufCMessageDescriptor *d,
								 ProtobufCAllocator *al, bool check_nul);

/*
 * A protobuf-c allocator on the caller's stack for the small request
 * messages (a Location and its Timestamp need about 100 bytes): unpacking
 * then costs no malloc/free.  Whatever does not fit (e.g. large unknown
 * fields) falls back to malloc, bounded by --max-message-bytes.
 */
typedef struct stack_arena
{
	size_t		used;
	_Alignas(16) uint8_t buf[512];
} stack_arena;

void	   *arena_alloc(void *data, size_t size);
void		arena_free(void *data, void *p);

#define STACK_ALLOCATOR(arena) {.alloc = arena_alloc, .free = arena_free, .allocator_data = &(arena)}

/* ---- kafka.c: the two producers, delivery reports, the deadline sweeper - */
int			kafka_start(void);
void		kafka_poll_start(void (*streams_poll) (void));
void		kafka_purge(void);
void		kafka_stop(void);
bool		kafka_usable(void);
rd_kafka_resp_err_t produce_location(call *c, const Udaconnect__V1__Location *loc);
void		note_kafka_error(call *c, rd_kafka_resp_err_t err, bool maybe_stored);
void		ingest_complete(call *c);
void		sweep_add(call *c);
void		sweep_remove(call *c);

/* ---- location.c: the location rule, RecordLocation, updateLocation ------ */
Udaconnect__V1__Location *decode_v1(grpc_slice s, const caller *who, ProtobufCAllocator *al, char *err, size_t errlen);
void		handle_record(call *c, grpc_byte_buffer *payload);
void		handle_legacy(call *c, grpc_byte_buffer *payload);

/* ---- stream.c: RecordLocations ------------------------------------------ */
void		handle_stream(call *c, grpc_byte_buffer *payload);
void		streams_poll(void);

/* ---- db.c: the db threads of FindConnections and ListEncounters -------- */
typedef struct db_thread
{
	int			id;
	pthread_t	thread;
	call_queue	own;			/* its own jobs (its cursors), under db.c's lock */
	/* the thread's alone: */
	PGconn	   *conn;
	unsigned	gen;			/* bumped when the connection is replaced */
	unsigned	next_cursor;
	int			backoff_ms;		/* 0: the last connect succeeded */
	int64_t		retry_at_ms;	/* monotonic: no connect before this */

	/*
	 * With UDACONNECT_DATABASE_READ_URL, the connection to it (normally a hot
	 * standby): db_use() swaps it with the four fields above for the length
	 * of one FindConnections job, so that everything else a job calls works
	 * on whichever is current.  on_read: the read one is current.
	 */
	struct
	{
		PGconn	   *conn;
		unsigned	gen;
		int			backoff_ms;
		int64_t		retry_at_ms;
	}			other;
	bool		on_read;
} db_thread;

typedef void (*db_job_fn) (call *c, db_thread *t);

#define DB_CONN_NKEYS 5

void		db_threads_start(void);
void		db_threads_stop(void);
void		db_submit(call *c, db_job_fn fn);
void		db_submit_to(call *c, int owner, db_job_fn fn);
bool		db_connect(db_thread *t, call *c);
bool		db_reads_split(void);
void		db_use(db_thread *t, bool read);
bool		db_connect_read(db_thread *t);
void		db_reset(db_thread *t);
const char *const *db_conn_keys(void);
void		db_conn_values(const char **vals);
int			db_backoff_next(int backoff_ms);
grpc_status_code sqlstate_to_status(const char *st);
void		proto_field_names(const char *in, char *out, size_t len, const char *const (*names)[2], size_t n);
void		db_timeout_param(call *c, char *buf, size_t len);
bool		db_pipeline_results(db_thread *t, int rows_of, PGresult **rows, PGresult **err);

/* ---- find.c: FindConnections -------------------------------------------- */
void		handle_find(call *c, grpc_byte_buffer *payload);

/* ---- encounter_json.c: an encounter of the SQL API as a message ------- */
typedef struct encounter_msg
{
	Udaconnect__V1__Encounter e;
	Udaconnect__V1__Person person;
	Udaconnect__V1__Place place;
	Google__Protobuf__Int32Value floor;
	Google__Protobuf__Timestamp started;
	Google__Protobuf__Timestamp ended;
} encounter_msg;

json_t	   *json_parse(const char *text, char *err, size_t len);
bool		encounter_from_json(json_t *o, encounter_msg *m, char *err, size_t len);

/* ---- encounters.c: ListEncounters --------------------------------------- */
void		handle_list(call *c, grpc_byte_buffer *payload);

/* ---- listen.c: the watch connection (LISTEN, WatchEncounters' queries) - */
typedef struct listen_hooks
{
	void		(*result) (void *ctx, PGresult *res);	/* NULL res: connection lost */
	void		(*notified) (const char *payload);	/* of NOTIFY udaconnect_encounter */
	void		(*erased) (const char *payload);	/* of NOTIFY udaconnect_person_erased */
	void		(*connected) (void);	/* listening: catch every watcher up */
	void		(*pump) (void); /* after every wake-up: commands, new queries */
	int			(*timeout_ms) (void);	/* the longest poll() may wait (-1: no limit) */
} listen_hooks;

void		listen_start(const listen_hooks *h);
void		listen_stop(void);
void		listen_wake(void);
bool		listen_can_send(void);
void		listen_send(void *ctx, const char *sql, int n, const char *const *params);

/* ---- watch.c: WatchEncounters calls, their queues and sends ------------- */
enum watcher_state
{
	W_NEW,						/* not yet seen by the watch thread */
	W_START,					/* its check and "now" query */
	W_CHECK,					/* its check (a resume point was given) */
	W_CATCHUP,					/* fetching from its resume point */
	W_LIVE,						/* fed by its person's live fetches */
	W_GONE						/* ended or over */
};

/* a query the watch thread runs for a watcher or a person (watch_feed.c) */
typedef struct watch_job
{
	int			kind;
	void	   *obj;
	struct watch_job *next;		/* in the ready list */
	bool		queued;
	bool		busy;			/* in flight */
	int			lim;			/* the rows it asked for */
} watch_job;

#define WCMD_NEW 1
#define WCMD_ROOM 2
#define WCMD_GONE 4

typedef struct watcher
{
	call	   *c;
	int32_t		person;
	tag			send_t;
	tag			close_t;
	pthread_mutex_t mu;
	/* under mu: */
	grpc_byte_buffer **q;		/* ring of events to send, at most --watch-queue */
	int			qhead,
				qlen,
				qcap;
	grpc_byte_buffer *sending_buf;
	bool		sending;
	bool		ended;			/* the final status is decided */
	bool		status_sent;
	bool		closed;			/* the call is over */
	bool		want_room;
	bool		md_pending;		/* the initial metadata goes first */
	grpc_status_code end_code;
	char		end_msg[384];
	grpc_op		ops[2];
	grpc_metadata md[2];
	char		md_v[24],
				md_i[24];
	/* under watch.c's command lock: */
	unsigned	cmd_bits;
	bool		in_cmd;
	struct watcher *cmd_next;
	/* the watch thread's alone (watch_feed.c): */
	int			state;
	int64_t		cur_v,			/* the last event queued (or the start) */
				cur_id;
	int64_t		k_send;			/* its query out had heard every version up to this */
	uint64_t	k_epoch;		/* ... in this epoch of the connection (watch_live.c) */
	bool		pinned;
	bool		released;		/* the watch thread's reference is gone */
	struct watch_group *g;
	struct watcher *gprev,
			   *gnext;
	watch_job	job;
} watcher;

void		handle_watch(call *c, grpc_byte_buffer *payload);
void		watch_drain(void);
bool		watch_draining(void);
int			watch_chunk(void);
void		watcher_post(watcher *w, unsigned bits);
watcher    *watcher_cmd_take(unsigned *bits);
void		watcher_end(watcher *w, grpc_status_code code, const char *fmt,...) __attribute__((format(printf, 3, 4)));
bool		watcher_push(watcher *w, grpc_slice msg);
bool		watcher_has_room(watcher *w, int chunk);
void		watcher_established(watcher *w, int64_t version, int64_t id);

/* ---- watch_feed.c, watch_live.c: the watch thread: groups, queries, fan-out */
void		watch_start(void);
void		watch_stop(void);

/* ---- health.c: grpc.health.v1.Health/Check ------------------------------ */
void		handle_health(call *c, grpc_byte_buffer *payload);

/* ---- server.c: the gRPC server, completion queues, dispatch ------------- */
int			server_start(void);
void		server_workers_start(void);
void		server_drain(void);
void		server_stop(void);

#endif
