/*
 * idlist.h — the payload of NOTIFY udaconnect_encounter_person: the ids of
 * the persons whose encounters changed, as decimal integers separated by
 * commas ("3,17,42"; sql/src/50-encounters.sql).  Both gateways' live
 * streams read it to fetch only for the persons named.
 */
#ifndef UDC_IDLIST_H
#define UDC_IDLIST_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Call fn(id, arg) for each id of list, in order; false (having called fn
 * for the ids before it) when list is not such a list: the caller must then
 * assume that anyone may have changes.
 */
bool		idlist_each(const char *list, void (*fn) (int32_t id, void *arg), void *arg);

#endif
