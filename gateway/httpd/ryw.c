/*
 * ryw.c: read-your-writes while the GET routes read from a hot standby
 * (udaconnect-httpd with UDACONNECT_DATABASE_READ_URL).
 *
 * A standby replays the primary's WAL a moment later, so a client that
 * wrote (POST, DELETE) and then reads could be answered from before its
 * write.  After a write commits, the gateway asks the primary for its WAL
 * position (dbcall.c) and remembers it in two places:
 *
 *   - per caller, in this process: a fixed table of atomic positions indexed
 *     by a hash of the caller (role and person), each slot the latest write
 *     of every caller hashed there.  Bounded memory, no lock, nothing ever
 *     forgotten: two callers sharing a slot only make one of them read from
 *     the primary a moment longer than needed;
 *   - in a cookie (udaconnect_lsn) on the write's answer, so that a client
 *     that keeps cookies (browsers, curl -b/-c) has it honoured by every
 *     replica of the gateway, not just the one it wrote through.
 *
 * A read then asks the standby for nothing more than it would anyway: the
 * worker sends a one-row question about the standby's replay position in
 * the same pipelined round as the read (worker.c), and when the standby has
 * not replayed the caller's position the read's answer is dropped and the
 * statement runs on the primary instead.  No read ever waits for the
 * standby.  This file only keeps and hands out the positions; it must not
 * run statements or choose the connection (worker.c and dbcall.c do).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "httpd.h"

#define RYW_SLOTS 4096			/* a power of two */
#define RYW_COOKIE "udaconnect_lsn"
/* long past any sane replication lag; the per-caller table has no end */
#define RYW_COOKIE_MAX_AGE 300

static _Atomic uint64_t slots[RYW_SLOTS];

/* FNV-1a of the caller: role, then the attendee's person id */
static size_t
caller_slot(const struct request *r)
{
	uint64_t	h = 14695981039346656037ULL;
	const char *parts[2] = {r->caller_role ? r->caller_role : "", r->caller_id};

	for (int i = 0; i < 2; i++)
	{
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (unsigned char) *p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return (size_t) (h & (RYW_SLOTS - 1));
}

uint64_t
ryw_min_lsn(struct MHD_Connection *c, const struct request *r)
{
	uint64_t	lsn = 0;
	uint64_t	cookie;
	const char *v = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, RYW_COOKIE);

	if (r->caller_known)
		lsn = atomic_load_explicit(&slots[caller_slot(r)], memory_order_relaxed);
	/* a malformed cookie is ignored: it can only ever ask for more */
	if (v && parse_lsn(v, &cookie) == 0 && cookie > lsn)
		lsn = cookie;
	return lsn;
}

void
ryw_wrote(struct request *r, uint64_t lsn)
{
	_Atomic uint64_t *slot;
	uint64_t	old;

	r->wrote_lsn = lsn;
	if (!r->caller_known)
		return;
	slot = &slots[caller_slot(r)];
	old = atomic_load_explicit(slot, memory_order_relaxed);
	while (old < lsn &&
		   !atomic_compare_exchange_weak_explicit(slot, &old, lsn, memory_order_relaxed,
												  memory_order_relaxed))
		;
}

void
ryw_headers(struct MHD_Response *resp, const struct request *r)
{
	char		cookie[128];

	if (!r->wrote_lsn)
		return;
	snprintf(cookie, sizeof(cookie), RYW_COOKIE "=%X/%X; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
			 (unsigned) (r->wrote_lsn >> 32), (unsigned) r->wrote_lsn, RYW_COOKIE_MAX_AGE,
			 tls_on() ? "; Secure" : "");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
}
