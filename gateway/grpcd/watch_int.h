/*
 * watch_int.h — what watch_feed.c (the watchers, their queries and their
 * events) and watch_live.c (what NOTIFY announced, read by id) share on the
 * watch thread of udaconnect-grpcd.  Nothing else includes it; everything
 * here is the watch thread's alone.
 */
#ifndef UDC_WATCH_INT_H
#define UDC_WATCH_INT_H

#include "encnotify.h"
#include "grpcd.h"

enum job_kind
{
	J_START,					/* check, then find the last position (no resume point) */
	J_CHECK,					/* check only (a resume point was given) */
	J_CATCHUP,					/* the next chunk after a resuming watcher's position */
	J_GROUP						/* the live fetch of one person */
};

typedef struct watch_group
{
	int32_t		person;
	watcher    *head;			/* every watcher of the person, in any state */
	int			nlive;
	bool		dirty;			/* scan mode: notified since the last live fetch was sent */
	bool		more;			/* scan mode: the last live fetch was full */
	bool		pinned;			/* being walked: not to be freed yet */
	bool		noted;			/* in the list of groups the version being heard names */
	bool		by_id_out;		/* the job out reads by id */
	watch_job	job;
	encn_chain	chain;			/* by id: what was announced for the person */
	struct watch_group *nnext;	/* the named list */
	struct watch_group *hnext;
} group;

#define WATCH_BUCKETS 4096

/* watch_feed.c */
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

/* watch_live.c */
bool		wl_by_id(void);
void		wl_start(void);
void		wl_connected(void);
void		wl_notified(const char *payload);
void		wl_group_new(group *g);
void		wl_mark_sent(watcher *w);
bool		wl_may_join(const group *g, const watcher *w, int64_t k);
bool		wl_group_send(group *g);
void		wl_group_result(group *g, PGresult *res);

#endif
