/*
 * person_fk.c — the person side of the location -> person reference: a
 * person that still has locations can be neither deleted nor renumbered.
 *
 * The location side is checked once per statement in SQL
 * (location_check_person() in 10-schema.sql, and the ingest's batch check),
 * which locks the referenced persons FOR KEY SHARE.  This side must then do
 * what ri_triggers.c does for a NO ACTION foreign key, or a transaction whose
 * snapshot predates a new location could delete its person and leave an
 * orphan: it runs AFTER the row was deleted (so the deletion already holds
 * the row lock and has waited for every inserter that locked the person),
 * and under REPEATABLE READ or SERIALIZABLE it looks for locations with the
 * latest snapshot, not the transaction's.  It must not lock or change
 * locations, and it never runs on the ingest's hot path.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

static SPIPlanPtr has_location_plan = NULL;

/* The person's id in a person row (attribute "id", int4). */
static int32
person_id_of(HeapTuple tuple, TupleDesc desc, bool *isnull)
{
	int			attno = SPI_fnumber(desc, "id");

	if (attno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table udaconnect.person has no column \"id\"")));
	return DatumGetInt32(SPI_getbinval(tuple, desc, attno, isnull));
}

/* Does any location reference person id, as of the latest snapshot? */
static bool
person_has_locations(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	Snapshot	test_snapshot = InvalidSnapshot;
	int			rc;

	if (has_location_plan == NULL)
	{
		Oid			argtype = INT4OID;
		SPIPlanPtr	plan;

		/* parsed under the caller's search_path: qualify the operator, as ri_triggers.c does */
		plan = SPI_prepare("SELECT 1 FROM udaconnect.location l WHERE l.person_id OPERATOR(pg_catalog.=) $1 LIMIT 1",
						   1, &argtype);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		has_location_plan = plan;
	}

	/*
	 * As ri_triggers.c does for a NO ACTION check: with a transaction
	 * snapshot, rows committed after it must be seen too, so use a fresh one.
	 * Under READ COMMITTED the query takes a new snapshot anyway.
	 */
	if (IsolationUsesXactSnapshot())
	{
		CommandCounterIncrement();
		test_snapshot = GetLatestSnapshot();
	}
	rc = SPI_execute_snapshot(has_location_plan, &arg, NULL,
							  test_snapshot, InvalidSnapshot, false, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot returned %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

PG_FUNCTION_INFO_V1(udc_person_check_locations);
Datum
udc_person_check_locations(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int32		old_id;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("person_check_locations() must be an AFTER DELETE OR UPDATE row trigger")));

	desc = RelationGetDescr(trigdata->tg_relation);
	old_id = person_id_of(trigdata->tg_trigtuple, desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		int32		new_id = person_id_of(trigdata->tg_newtuple, desc, &isnull);

		if (!isnull && new_id == old_id)
			return PointerGetDatum(NULL);
	}

	SPI_connect();
	if (person_has_locations(old_id))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("person %d still has locations", old_id),
				 errdetail("udaconnect.location rows reference this person."),
				 errhint("Delete the person's locations first.")));
	SPI_finish();
	return PointerGetDatum(NULL);
}
