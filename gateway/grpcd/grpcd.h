/*
 * udaconnect-grpcd — shared declarations.
 *
 * util.c: logging and location validation.  grpcd.c: configuration, call
 * life cycle, Kafka, unary RPCs, health, dispatch, main.  stream.c: the
 * client stream RecordLocations.  find.c: FindConnections (libpq).  The
 * call structure and the helpers below are the interface between them.
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
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "location_rule.h"
#include "udaconnect/v1/location.pb-c.h"
#include "udaconnect/v1/location_service.pb-c.h"

enum log_level
{
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARNING,
	LOG_ERROR,
	LOG_FATAL
};

extern int	log_min_level;

void		logmsg(int level, const char *fmt,...) __attribute__((format(printf, 2, 3)));
int			log_level_from_name(const char *name);

/* Field names used in validation messages (v1 or original proto). */
typedef udc_location_fields field_names;

extern const field_names v1_fields;
extern const field_names legacy_fields;

/*
 * Validate one location.  Returns true when valid; otherwise writes a
 * message naming the offending field into err (errlen bytes).
 * now = current Unix time in seconds; max_skew = seconds a creation_time may
 * lie in the future.
 */
bool		validate_location(const field_names *f, int32_t person_id,
							  double latitude, double longitude,
							  const Google__Protobuf__Timestamp *ts,
							  int64_t now, int64_t max_skew,
							  char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * The daemon's internals (grpcd.c, stream.c, find.c)
 * ------------------------------------------------------------------------ */
#define MAX_KAFKA_OPTS 64
#define REASON_LEN 256

typedef struct grpcd_config
{
	const char *bind;
	int			port;
	const char *brokers;
	const char *topic;
	const char *dburl;
	int			threads;
	int			db_threads;
	int			requests;		/* outstanding requests per method and queue */
	int			max_message;
	int			max_stream;
	int			max_rows;
	int			max_skew;
	int			kafka_timeout_ms;
	double		linger_ms;
	double		stream_linger_ms;
	double		grace;
	int			max_streams;	/* RecordLocations calls at once */
	int			stream_idle_s;	/* end a stream nobody writes to */
	int			max_listed;		/* rejections listed per stream */
	int			max_find;		/* FindConnections calls at once */
	int			nkopts;
	char	   *kopt_name[MAX_KAFKA_OPTS];
	char	   *kopt_value[MAX_KAFKA_OPTS];
} grpcd_config;

extern grpcd_config cfg;
extern atomic_int stopping;		/* SIGTERM received */

enum method_kind
{
	M_RECORD,
	M_RECORDS,
	M_LEGACY,
	M_HEALTH,
	M_FIND,
	M_COUNT,
	M_UNKNOWN = M_COUNT
};

typedef struct tag
{
	void		(*done) (struct tag *t, bool ok);
} tag;

typedef struct worker
{
	int			id;
	grpc_completion_queue *cq;
	pthread_t	thread;
} worker;

typedef struct call
{
	tag			t;				/* the call's current batch */
	worker	   *w;
	int			kind;
	grpc_call  *gc;
	int64_t		deadline_ms;	/* INT64_MAX: none */

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
	int			cancelled;

	/* deadline sweeper list (under sweep_mu) */
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
	struct call *pnext;			/* streams waiting for room in the queue */

	/* FindConnections (find.c) */
	Udaconnect__V1__FindConnectionsRequest *freq;
	PGresult   *res;			/* the current chunk of rows */
	int			row;
	int			nrows;
	int64_t		fetched;		/* rows fetched so far (--max-rows) */
	bool		exhausted;		/* no cursor left open */
	bool		truncated;
	int			job;
	int			owner;			/* db thread holding the cursor */
	unsigned	conn_gen;
	unsigned	cursor_no;
	struct call *qnext;
} call;

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

/* grpcd.c */
grpc_slice	buffer_slice(grpc_byte_buffer *bb);
grpc_byte_buffer *pack_message(const ProtobufCMessage *m);
const char *string_with_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);
void		call_unref(call *c);
void		call_finish(call *c, grpc_status_code code, const char *msg, const ProtobufCMessage *resp);
void		call_fail(call *c, grpc_status_code code, const char *fmt,...) __attribute__((format(printf, 3, 4)));
int64_t		call_answer_by(const call *c);
void		sweep_add(call *c);
void		ingest_complete(call *c);
void		note_kafka_error(call *c, rd_kafka_resp_err_t err, bool maybe_stored);
rd_kafka_resp_err_t produce_location(call *c, const Udaconnect__V1__Location *loc);
Udaconnect__V1__Location *decode_v1(grpc_slice s, ProtobufCAllocator *al, char *err, size_t errlen);

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

/* stream.c */
void		stream_start(call *c);
void		stream_release(call *c);
void		stream_answer(call *c);
void		stream_deadline_message(call *c, char *msg, size_t len);
void		streams_poll(void);

/* find.c */
void		handle_find(call *c, grpc_byte_buffer *payload);
void		find_release(call *c);
void		find_threads_start(void);
void		find_threads_stop(void);

#endif
