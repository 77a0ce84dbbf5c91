/*
 * watch_int.h — what watch_feed.c (the watchers, their queries and their
 * events) gives watch_live.c (what NOTIFY announced, read by id), which is
 * above it, and what it and watch_erased.c (the watchers of an erased
 * person end) give each other, on the watch thread of udaconnect-grpcd.
 * Nothing else includes it; everything here is the watch thread's alone.
 */
#ifndef UDC_WATCH_INT_H
#define UDC_WATCH_INT_H

#include <stddef.h>

#include "encnotify.h"
#include "grpcd.h"

enum job_kind
{
	J_START,					/* check, then find the last position (no resume point) */
	J_CHECK,					/* check only (a resume point was given) */
	J_CATCHUP,					/* the next chunk after a resuming watcher's position */
	J_GROUP,					/* the live fetch of one person */
	J_GONE						/* whether the persons due still exist (watch_erased.c) */
};

typedef struct watch_group
{
	int32_t		person;
	watcher    *head;			/* every watcher of the person, in any state */
	int			nlive;
	bool		dirty;			/* scan mode: notified since the last live fetch was sent */
	bool		more;			/* scan mode: the last live fetch was full */
	bool		pinned;			/* being walked: not to be freed yet */
	bool		by_id_out;		/* the job out reads by id */
	bool		gone_due;		/* a check must be made */
	bool		gone_listed;	/* in watch_erased.c's list of persons due */
	bool		gone_busy;		/* in its check in flight */
	bool		gone_retry;		/* its check failed: due again at gone_retry_at */
	int			gone_backoff_ms;	/* the wait before the next retry (0: none failed) */
	int64_t		gone_retry_at;	/* mono_ms() */
	watch_job	job;
	encn_chain	chain;			/* by id: what was announced for the person; in
								 * the named list (encn_note) */
	struct watch_group *hnext;
	struct watch_group *gone_next;	/* in the list of persons due */
} group;

#define WATCH_BUCKETS 4096
#define GROUP_OF_CHAIN(c) ((group *) ((char *) (c) - offsetof(group, chain)))

/*
 * watch_feed.c.  It calls the live path (watch_live.c, above it) only
 * through these hooks, which watch_live.c hands to wf_start().
 */
typedef struct wf_live_hooks
{
	bool		(*by_id) (void);	/* live watchers read by id */
	void		(*group_new) (group *g);
	void		(*mark_sent) (watcher *w);	/* a set-up or catch-up query goes out */
	bool		(*may_join) (const group *g, const watcher *w, int64_t k);
	bool		(*group_send) (group *g);	/* a live read by id, if one is due */
	void		(*group_result) (group *g, PGresult *res);
	void		(*connected) (void);	/* listening anew */
	void		(*notified) (const char *payload);
} wf_live_hooks;

void		wf_start(const wf_live_hooks *h);
group	   *wf_bucket(int b);
group	  **wf_group_slot(int32_t person);
void		wf_ready_push(watch_job *j);
void		wf_mark_dirty(group *g);
void		wf_all_dirty(void);
void		wf_group_maybe_free(group *g);
void		wf_watcher_drop(watcher *w);
void		wf_caller_params(const watcher *w, const char **params, char *buf, size_t len);
void		wf_deliver(PGresult *res, group *g, watcher *only);
void		wf_end_live(group *g, PGresult *res);

/* watch_erased.c, called by watch_feed.c */
void		we_check_all(void);
void		we_erased(const char *payload);
bool		we_send(void);
void		we_result(PGresult *res);
int			we_timeout_ms(void);
void		we_tick(void);

#endif
