/*
 * encounter.h — what the rest of the extension sees of the encounters
 * (docs/encounters.md): the settings, and the one call that the ingest's
 * direct insert path makes for the rows it inserted without firing the
 * location trigger.  Everything else is private (encounter_int.h).
 */
#ifndef UDC_ENCOUNTER_H
#define UDC_ENCOUNTER_H

#include "postgres.h"

#include "utils/timestamp.h"

/* A stored location, as the encounter matcher reads it. */
typedef struct EncPoint
{
	int64		id;
	int32		person;
	double		lat;
	double		lon;
	TimestampTz t;
} EncPoint;

/* Define the udaconnect.encounter_* settings (from _PG_init). */
extern void udc_encounter_init(void);

/*
 * Is fn the function of the trigger that maintains the encounters?  The
 * direct insert path accepts that trigger, and then calls
 * udc_encounters_add() itself.
 */
extern bool udc_encounter_is_trigger_function(Oid fn);

/*
 * Add the matches of these just inserted locations (all inserted by the
 * current command, and visible to it) to udaconnect.encounter.  Sorts pts.
 */
extern void udc_encounters_add(EncPoint *pts, int n);

#endif							/* UDC_ENCOUNTER_H */
