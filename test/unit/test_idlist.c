/*
 * test_idlist.c — the reader of the udaconnect_encounter_person payload
 * (gateway/common/idlist.c), which both gateways' live streams use to fetch
 * only for the persons a notification names.  A payload it cannot read must
 * say so (the gateways then fetch for everyone: never miss a change), after
 * handing over only ids it did read.
 */
#include <stdio.h>
#include <string.h>

#include "idlist.h"

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
	int32_t		ids[16];
	int			n;
} Seen;

static void
collect(int32_t id, void *arg)
{
	Seen	   *s = arg;

	if (s->n < 16)
		s->ids[s->n] = id;
	s->n++;
}

/* read list; true when the result and the ids match */
static int
reads(const char *list, int want_ok, const int32_t *want, int nwant)
{
	Seen		s = {{0}, 0};
	int			got = idlist_each(list, collect, &s);

	if (got != want_ok || s.n != nwant)
		return 0;
	return nwant == 0 || memcmp(s.ids, want, sizeof(int32_t) * (nwant < 16 ? nwant : 16)) == 0;
}

int
main(void)
{
	const int32_t three[] = {3, 17, 42};
	const int32_t one[] = {7};
	const int32_t edge[] = {2147483647, -2147483647 - 1};

	ok(reads("3,17,42", 1, three, 3), "\"3,17,42\": the three ids, in order");
	ok(reads("7", 1, one, 1), "one id");
	ok(reads("", 1, NULL, 0), "an empty payload names nobody");
	ok(reads("2147483647,-2147483648", 1, edge, 2), "the int4 limits");
	ok(reads("2147483648", 0, NULL, 0), "past int4: unreadable, no id handed over");
	ok(reads("3,x,4", 0, (const int32_t[]){3}, 1),
	   "a bad id in the middle: unreadable, after the ids before it");
	ok(reads("3,,4", 0, (const int32_t[]){3}, 1), "an empty item: unreadable");
	ok(reads("3,4,", 0, (const int32_t[]){3, 4}, 2), "a trailing comma: unreadable, after the ids before it");
	ok(reads("3 ,4", 0, NULL, 0), "a space after an id: unreadable");
	ok(reads("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20", 1,
			 (const int32_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 20),
	   "many ids");
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
