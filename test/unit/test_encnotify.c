/*
 * test_encnotify.c — the gateways' reader of NOTIFY udaconnect_encounter and
 * their proof of gap-freeness (gateway/common/encnotify.c): the payload
 * read exactly or refused whole; the tracker hearing versions in turn, and
 * calling for a resync (every stream reads by version) whenever a version
 * or a part was not heard; a person's chain giving each live fetch exactly
 * the ids and the versions announced since the last, and letting a stream
 * join the live fetches only when nothing delivered live is after what it
 * read; the step both gateways take for each entry heard (encn_note).
 */
#include <stdio.h>
#include <string.h>

#include "encnotify.h"

static int	test_no = 0;
static int	failures = 0;

static void
ok(int good, const char *what)
{
	test_no++;
	if (!good)
		failures++;
	printf("%sok %d - %s\n", good ? "" : "not ", test_no, what);
}

typedef struct Seen
{
	encn_entry	e[16];
	int			n;
} Seen;

static void
collect(const encn_entry *e, void *arg)
{
	Seen	   *s = arg;

	if (s->n < 16)
		s->e[s->n] = *e;
	s->n++;
}

static int
entries_are(const char *payload, const char *want)
{
	encn_payload p;
	Seen		s = {{{0}}, 0};
	char		got[512] = "";

	if (!encn_parse(payload, &p))
		return 0;
	encn_each(&p, collect, &s);
	for (int i = 0; i < s.n && i < 16; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s%lld/%d/%d", i ? " " : "",
				 s.e[i].removed ? "-" : "", (long long) s.e[i].id, s.e[i].a, s.e[i].b);
	return strcmp(got, want) == 0;
}

static void
test_parse(void)
{
	encn_payload p;

	ok(encn_parse("v42.1/3:7.1.2,-8.1.2", &p) && p.version == 42 && p.part == 1 && p.parts == 3,
	   "the head: version 42, part 1 of 3");
	ok(entries_are("v42.1/1:7.1.2,-8.3.4,9223372036854775807.0.2147483647",
				   "7/1/2 -8/3/4 9223372036854775807/0/2147483647"),
	   "entries: written, removed (-), the largest id and person");
	ok(entries_are("v1.1/1:", ""), "a version that changed nothing: no entries");
	{
		const char *bad[] = {
			"", "1,2,3", "v.1/1:", "v0.1/1:", "v-3.1/1:", "v5.0/1:", "v5.2/1:", "v5.1/0:",
			"v5.1/1", "v5.1/1:7", "v5.1/1:7.1", "v5.1/1:7.1.2,", "v5.1/1:,7.1.2",
			"v5.1/1:7.1.2,,8.1.2", "v5.1/1:0.1.2", "v5.1/1:7.-1.2", "v5.1/1:7.1.2147483648",
			"v5.1/1:9223372036854775808.1.2", "v99999999999999999999.1/1:", "v5.1/1:7.1.2x",
			"v5.1/1: 7.1.2", "v5.1/1:+7.1.2", "V5.1/1:7.1.2", "v5.1/1:--7.1.2"
		};
		int			refused = 0;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			refused += !encn_parse(bad[i], &p);
		ok(refused == (int) (sizeof(bad) / sizeof(bad[0])),
		   "24 malformed payloads (old id lists, bad heads, empty or bad entries, overflow) refused");
	}
}

static void
test_erased(void)
{
	int32_t		person = 0;
	const char *bad[] = {"", "0", "-5", "+5", " 5", "5 ", "5x", "2147483648", "v5.1/1:", "5,6"};
	int			refused = 0;

	ok(encn_parse_erased("42", &person) && person == 42 &&
	   encn_parse_erased("2147483647", &person) && person == 2147483647,
	   "an erased person's id: 42, the largest integer");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += !encn_parse_erased(bad[i], &person);
	ok(refused == (int) (sizeof(bad) / sizeof(bad[0])) && person == 2147483647,
	   "anything else is not an erased person's id (0, signs, blanks, too large, a version payload)");
}

static void
test_tracker(void)
{
	encn_tracker t = {0};
	encn_payload p;
	uint64_t	e0;

	encn_tracker_reset(&t);
	e0 = t.epoch;
	ok(t.known == -1 && t.base == -1 && encn_heard(&t) == -1, "a new epoch knows nothing");
	ok(encn_track(&t, "v10.1/1:1.1.2", &p) == ENCN_APPLY && t.base == 9 && t.known == 10,
	   "the epoch's first payload: applied; versions before it are the scans' (base 9)");
	ok(encn_track(&t, "v11.1/2:2.1.2", &p) == ENCN_APPLY && t.known == 10 && t.cur == 11 &&
	   encn_heard(&t) == 11, "part 1 of 2 of the next version: applied, not yet heard whole");
	ok(encn_track(&t, "v11.2/2:3.1.2", &p) == ENCN_APPLY && t.known == 11 && t.cur == 0,
	   "part 2 of 2: the version is heard whole");
	ok(encn_track(&t, "v9.1/1:4.1.2", &p) == ENCN_SKIP && t.known == 11 && t.epoch == e0,
	   "a version already known: skipped");
	ok(encn_track(&t, "v13.1/1:5.1.2", &p) == ENCN_RESYNC_APPLY && t.epoch == e0 + 1 &&
	   t.base == 12 && t.known == 13, "a version skipped (12 not heard): resync, 13 starts the new epoch");
	ok(encn_track(&t, "v14.1/2:6.1.2", &p) == ENCN_APPLY &&
	   encn_track(&t, "v15.1/1:7.1.2", &p) == ENCN_RESYNC_APPLY && t.known == 15 && t.cur == 0,
	   "the next version before the last part of one: resync");
	ok(encn_track(&t, "v16.1/2:8.1.2", &p) == ENCN_APPLY &&
	   encn_track(&t, "v16.1/2:8.1.2", &p) == ENCN_RESYNC_APPLY && t.cur == 16,
	   "a part heard twice: resync");
	e0 = t.epoch;
	ok(encn_track(&t, "17,18", &p) == ENCN_RESYNC && t.epoch == e0 + 1 && t.known == -1,
	   "an unreadable payload (an older library's ids): resync, nothing known");
	ok(encn_track(&t, "v20.2/3:9.1.2", &p) == ENCN_SKIP && t.known == 20 && t.base == 20 &&
	   encn_track(&t, "v20.3/3:9.1.2", &p) == ENCN_SKIP &&
	   encn_track(&t, "v21.1/1:9.1.2", &p) == ENCN_APPLY,
	   "an epoch starting inside a version: that version is the scans', the next one applies");
	encn_tracker_reset(&t);
	ok(encn_track(&t, "v30.1/1:", &p) == ENCN_APPLY && encn_track(&t, "v31.1/1:", &p) == ENCN_APPLY &&
	   t.known == 31, "versions that changed nothing keep the count going");
}

static void
test_chain(void)
{
	encn_tracker t = {0};
	encn_chain	c = {0};
	encn_payload p;
	int64_t		from,
				to;
	const int64_t *ids;
	int			n;
	bool		all = true;

	encn_tracker_reset(&t);
	encn_chain_reset(&c, encn_heard(&t));
	encn_track(&t, "v10.1/1:5.1.2", &p);
	ok(encn_chain_note(&c, 10, 5) && encn_chain_ready(&c, &t), "an id of a version heard whole: ready");
	encn_track(&t, "v11.1/2:6.1.2", &p);
	encn_chain_note(&c, 11, 6);
	ok(!encn_chain_ready(&c, &t), "with a version still being heard: not ready");
	encn_track(&t, "v11.2/2:5.1.2,-4.1.2", &p);
	encn_chain_note(&c, 11, 5);
	encn_chain_note(&c, 11, 0);
	ok(encn_chain_ready(&c, &t), "... ready once heard whole");
	encn_chain_take(&c, &from, &to, &ids, &n);
	ok(from == 9 && to == 11 && n == 2 && ids[0] == 5 && ids[1] == 6,
	   "the fetch: versions (9, 11], ids 5 and 6 (5 once, the removal by version)");
	ok(!encn_chain_ready(&c, &t), "one fetch out at a time");
	ok(encn_chain_may_join(&c, &t, t.epoch, 9) && !encn_chain_may_join(&c, &t, t.epoch - 1, 9),
	   "while it is out, a stream that read up to 9 may join (in this epoch only)");
	encn_chain_done(&c);
	ok(c.seen == 11 && !encn_chain_may_join(&c, &t, t.epoch, 10) &&
	   encn_chain_may_join(&c, &t, t.epoch, 11), "delivered: a stream must have read up to 11 to join");
	encn_track(&t, "v12.1/1:", &p);
	encn_track(&t, "v13.1/1:", &p);
	encn_track(&t, "v14.1/1:7.1.3", &p);
	encn_chain_note(&c, 14, 7);
	encn_chain_take(&c, &from, &to, &ids, &n);
	ok(from == 13 && to == 14 && n == 1, "versions that did not name the person are skipped: (13, 14]");
	ok(encn_chain_may_join(&c, &t, t.epoch, 11), "... and a stream that read up to 11 may still join");
	encn_chain_done(&c);
	encn_chain_note(&c, 14, 8);
	ok(c.hi == 0, "an entry of a version already fetched is ignored");
	encn_track(&t, "v15.1/1:9.1.2", &p);
	encn_chain_note(&c, 15, 9);
	encn_chain_skip(&c);
	ok(c.seen == 15 && c.lv == 15 && !encn_chain_ready(&c, &t), "nobody live: dropped as delivered");
	encn_chain_reset(&c, 20);
	ok(c.seen == 20 && encn_chain_note(&c, 20, 1) && c.hi == 0 && encn_chain_note(&c, 21, 1) && c.lv == 20,
	   "reset at 20: what is heard up to 20 is the scans', 21 on is noted");
	for (int i = 0; i < 600; i++)
		all &= encn_chain_note(&c, 21, 100 + i % 300);
	ok(all && c.nids == 301, "a repeated id is held once");
	for (int i = 0; i < ENCN_CHAIN_MAX_IDS - 301; i++)
		all &= encn_chain_note(&c, 21, 1000 + i);
	ok(all && !encn_chain_note(&c, 21, 99999), "past ENCN_CHAIN_MAX_IDS ids: refused (the caller resets)");
	encn_chain_free(&c);
}

/* a gateway for encn_note: persons 1..3 watched (by id), 5 watched in scan
 * mode, 4 by nobody */
static encn_chain chains[4];
static int	marked[6];
static int	lost_person;
static int	lost_calls;

static encn_chain *
fake_chain(int32_t person)
{
	if (person == 5)
		marked[5]++;
	return person >= 1 && person <= 3 ? &chains[person] : NULL;
}

static void
fake_lost(int32_t person, encn_chain *c)
{
	lost_person = person;
	lost_calls++;
	encn_chain_reset(c, 0);
}

static int
chain_ids_are(const encn_chain *c, int n, int64_t a, int64_t b)
{
	return c->nids == n && (n < 1 || c->ids[0] == a) && (n < 2 || c->ids[1] == b);
}

static void
test_note(void)
{
	encn_chain *named = NULL;
	encn_noter	nt = {10, fake_chain, fake_lost, &named};
	encn_payload p;
	encn_chain *order[4];
	int			k = 0;
	bool		all = true;

	for (int i = 1; i <= 3; i++)
		encn_chain_reset(&chains[i], 0);
	encn_parse("v10.1/1:7.1.2,8.2.3,-9.1.4,11.3.3,12.4.5,13.5.4", &p);
	encn_each(&p, encn_note, &nt);
	ok(chain_ids_are(&chains[1], 1, 7, 0) && chains[1].hi == 10 && chains[1].lv == 9,
	   "note: person 1's chain holds 7 at version 10 (its removal 9 by version, no id)");
	ok(chain_ids_are(&chains[2], 2, 7, 8) && chain_ids_are(&chains[3], 2, 8, 11),
	   "note: both persons of an entry get it; an entry of one person with itself, once");
	ok(marked[5] == 2 && lost_calls == 0,
	   "note: a person read by version is marked by the gateway per entry, nothing chained");
	while (k < 4 && (order[k] = encn_named_pop(&named)))
		k++;
	ok(k == 3 && order[0] == &chains[3] && order[1] == &chains[2] && order[2] == &chains[1],
	   "note: the named list holds each watched person's chain once (the last named first)");
	ok(!chains[1].named && !chains[2].named && !chains[3].named && named == NULL &&
	   encn_named_pop(&named) == NULL, "note: popped, a chain is no longer named; the list is empty");

	nt.version = 11;
	/* 7 and these: the bound */
	for (int i = 0; i < ENCN_CHAIN_MAX_IDS - 1; i++)
		all &= encn_chain_note(&chains[1], 11, 1000 + i);
	encn_parse("v11.1/1:99999.1.2", &p);
	encn_each(&p, encn_note, &nt);
	ok(all && lost_calls == 1 && lost_person == 1 && !chains[1].named && chains[1].nids == 0,
	   "note: a chain past its bound is the gateway's to reset (lost), and not named");
	ok(named == &chains[2] && chains[2].named && chains[2].nnext == NULL && chains[2].hi == 11,
	   "note: ... the entry's other person is noted and named as usual");
	encn_named_pop(&named);

	nt.version = 9;
	encn_parse("v9.1/1:14.2.3", &p);
	encn_each(&p, encn_note, &nt);
	ok(chains[3].hi == 10 && chains[3].nids == 2 && chains[3].named,
	   "note: an entry of a version already covered: nothing chained, the chain named as before");
	while (encn_named_pop(&named))
		;
	for (int i = 1; i <= 3; i++)
		encn_chain_free(&chains[i]);
}

static void
test_literal(void)
{
	int64_t		ids[] = {1, 22, 9223372036854775807};
	char		buf[64];
	char		small[8];

	ok(encn_ids_literal(ids, 3, buf, sizeof(buf)) && strcmp(buf, "{1,22,9223372036854775807}") == 0,
	   "ids as an array literal");
	ok(encn_ids_literal(ids, 0, buf, sizeof(buf)) && strcmp(buf, "{}") == 0, "no ids: {}");
	ok(!encn_ids_literal(ids, 3, small, sizeof(small)), "a buffer too small: refused");
}

int
main(void)
{
	test_parse();
	test_erased();
	test_tracker();
	test_chain();
	test_note();
	test_literal();
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
