/*
 * auth_verify KEY_FILE TOKEN [NOW] — the C verifier of gateway/common/auth.c
 * for test/unit/auth_pyjwt.py: prints "ok ROLE PERSON SUB EXP" and exits 0,
 * or "invalid: REASON" and exits 1 (2: bad arguments or key file).  NOW is
 * seconds since the epoch, the clock's time if not given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

int
main(int argc, char **argv)
{
	char		msg[512];
	udc_auth   *a;
	udc_claims	c;
	int64_t		now;
	int			rc;

	if (argc < 3 || argc > 4)
	{
		fprintf(stderr, "usage: auth_verify KEY_FILE TOKEN [NOW]\n");
		return 2;
	}
	now = argc == 4 ? strtoll(argv[3], NULL, 10) : (int64_t) time(NULL);
	a = udc_auth_load(argv[1], msg, sizeof(msg));
	if (a == NULL)
	{
		fprintf(stderr, "auth_verify: %s\n", msg);
		return 2;
	}
	rc = udc_auth_verify(a, argv[2], strlen(argv[2]), now, &c, msg, sizeof(msg));
	if (rc == 0)
		printf("ok %s %d %s %lld\n", c.role == UDC_ROLE_ATTENDEE ? "attendee" : "organizer",
			   (int) c.person, c.sub, (long long) c.exp);
	else
		printf("invalid: %s\n", msg);
	udc_auth_free(a);
	return rc == 0 ? 0 : 1;
}
