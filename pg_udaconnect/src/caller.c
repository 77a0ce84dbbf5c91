/*
 * caller.c — who is calling the SQL API, in C because the hot read path
 * asks it on every request (docs/security.md, sql/src/40-privacy.sql).
 *
 * What it holds: the meaning of a caller — an organizer, or an attendee with
 * a person id; anything else is refused with 42501 — as
 * udaconnect.caller_is_organizer(), which every api_* function asks; and
 * udaconnect.caller_may_see_person(), the gate of api_person: true, or
 * 42501 whether or not the person exists (no existence oracle).  Whom an
 * attendee has met is SQL's rule (met_persons), asked through SPI only when
 * an attendee looks at someone else.
 *
 * It also hands SQL the attendee limits (attendee_max_distance() and its
 * siblings) straight from their settings, defined in retention.c: one
 * default, in C, and a value that is always the checked one.
 *
 * Why C: api_person is inlined into the gateway's prepared statement; an
 * expression with a sub-select and a PL/pgSQL call doubled the executor's
 * start-up work per request, a C call in a one-time filter adds nothing
 * measurable.  What it must not do: decide anything else (the other rules
 * stay in 40-privacy.sql), or cache an answer across statements.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "retention.h"

/*
 * The caller's kind from (caller_role, caller_id), both possibly NULL: true
 * for an organizer, false for an attendee; 42501 otherwise.
 */
static bool
caller_kind(FunctionCallInfo fcinfo)
{
	text	   *role = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	int			id_null = PG_ARGISNULL(1);
	int32		id = id_null ? 0 : PG_GETARG_INT32(1);
	const char *r = role ? VARDATA_ANY(role) : NULL;
	int			rlen = role ? VARSIZE_ANY_EXHDR(role) : 0;

	if (r && rlen == 9 && memcmp(r, "organizer", 9) == 0)
		return true;
	if (r && rlen == 8 && memcmp(r, "attendee", 8) == 0 && !id_null && id > 0)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("unknown caller: role %s, person %s",
					r ? quote_literal_cstr(text_to_cstring(role)) : "NULL",
					id_null ? "NULL" : psprintf("%d", id)),
			 errhint("A caller is an organizer, or an attendee with their person id.")));
	return false;				/* not reached */
}

PG_FUNCTION_INFO_V1(udc_caller_is_organizer);
Datum
udc_caller_is_organizer(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(caller_kind(fcinfo));
}

/* Has attendee `caller` met `person`?  (udaconnect.met_persons, via SPI) */
static bool
has_met(int32 caller, int32 person)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2];
	bool		isnull;
	bool		met;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("SELECT $2 OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT udaconnect.met_persons($1)))", 2, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "preparing the met_persons query failed: %s", SPI_result_code_string(SPI_result));
		plan = p;
	}
	values[0] = Int32GetDatum(caller);
	values[1] = Int32GetDatum(person);
	rc = SPI_execute_plan(plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the met_persons query failed: %s", SPI_result_code_string(rc));
	met = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	met = met && !isnull;
	SPI_finish();
	return met;
}

/*
 * udaconnect.caller_may_see_person(caller_role, caller_id, id): true when
 * the caller may read person id's record (an organizer: any; an attendee:
 * themself and the persons they have met), else 42501 — also for an id
 * that does not exist, except an attendee's own.
 */
PG_FUNCTION_INFO_V1(udc_caller_may_see_person);
Datum
udc_caller_may_see_person(PG_FUNCTION_ARGS)
{
	int32		caller;
	int32		person;

	if (caller_kind(fcinfo))
		PG_RETURN_BOOL(true);
	caller = PG_GETARG_INT32(1);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null")));
	person = PG_GETARG_INT32(2);
	if (person == caller || has_met(caller, person))
		PG_RETURN_BOOL(true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("attendee %d may not see person %d", caller, person),
			 errdetail("An attendee sees only themself and the persons they have met.")));
	PG_RETURN_BOOL(false);		/* not reached */
}

/* ---- the attendee limits, as SQL reads them ----------------------------- */

static Datum
seconds_interval(int seconds)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) seconds * USECS_PER_SEC;
	return IntervalPGetDatum(iv);
}

/* udaconnect.attendee_max_distance() -> float8 (metres) */
PG_FUNCTION_INFO_V1(udc_attendee_max_distance_sql);
Datum
udc_attendee_max_distance_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(udc_attendee_max_distance);
}

/* udaconnect.attendee_max_window() -> interval */
PG_FUNCTION_INFO_V1(udc_attendee_max_window_sql);
Datum
udc_attendee_max_window_sql(PG_FUNCTION_ARGS)
{
	return seconds_interval(udc_attendee_max_window);
}

/* udaconnect.attendee_max_report_age() -> interval */
PG_FUNCTION_INFO_V1(udc_attendee_max_report_age_sql);
Datum
udc_attendee_max_report_age_sql(PG_FUNCTION_ARGS)
{
	return seconds_interval(udc_attendee_max_report_age);
}
