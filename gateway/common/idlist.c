/*
 * idlist.c — reads the person list of a udaconnect_encounter_person
 * notification (idlist.h).  It must not decide what a gateway does with
 * the ids, nor allocate.
 */
#include <errno.h>
#include <stdlib.h>

#include "idlist.h"

bool
idlist_each(const char *list, void (*fn) (int32_t id, void *arg), void *arg)
{
	const char *p = list;

	while (*p)
	{
		char	   *end;
		long		v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno != 0 || v < INT32_MIN || v > INT32_MAX ||
			(*end != ',' && *end != '\0'))
			return false;
		fn((int32_t) v, arg);
		if (*end == ',' && end[1] == '\0')
			return false;		/* a comma promises another id */
		p = *end ? end + 1 : end;
	}
	return true;
}
