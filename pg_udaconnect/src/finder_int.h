/*
 * finder_int.h — the relations the connection finder reads, opened and
 * verified (private to finder.c and finder_index.c).
 *
 * The finder reads its two location indexes by column position, straight
 * from the index tuples, so finder_open_rels() refuses any index whose
 * layout differs from the one below (and from sql/src/10-schema.sql).
 */
#ifndef UDC_FINDER_INT_H
#define UDC_FINDER_INT_H

#include "postgres.h"

#include "utils/rel.h"

/*
 * Columns of location_person_time_idx:
 *   (person_id, creation_time) INCLUDE (coordinate)
 */
#define PT_IDX_PERSON	1
#define PT_IDX_TIME		2
#define PT_IDX_COORD	3

/*
 * Columns of location_cell_time_idx:
 *   (cell, creation_time) INCLUDE (person_id, id, coordinate)
 */
#define IDX_CELL	1
#define IDX_TIME	2
#define IDX_PERSON	3
#define IDX_ID		4
#define IDX_COORD	5

/* Relations and attribute numbers the finder works with. */
typedef struct FinderRels
{
	Relation	person;
	Relation	person_pkey;
	Relation	location;
	Relation	loc_person_time;
	Relation	loc_cell_time;
	AttrNumber	att_id;
	AttrNumber	att_person;
	AttrNumber	att_coord;
	AttrNumber	att_time;
} FinderRels;

/*
 * Open (AccessShareLock) and verify the tables and indexes: an index that is
 * missing, not valid, or not laid out as above raises a clear error naming
 * what is wrong and the DDL that recreates it.  Only the relcache entries are
 * consulted: the check costs a few comparisons per call.
 */
extern void finder_open_rels(FinderRels *r);
extern void finder_close_rels(FinderRels *r);

#endif
