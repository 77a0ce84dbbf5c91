/*
 * location_time.c — the SQL face of the location rule's time check
 * (core/location_rule.c): udaconnect.check_creation_time(), which
 * record_location() (and so the REST API) applies, so that a time the Kafka
 * ingest would reject is refused on every path alike.  The rule itself, its
 * range and its arithmetic stay in core/; this file only maps a refusal onto
 * a SQLSTATE.  It must not grow rules of its own.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ingest.h"
#include "location_rule.h"

PG_FUNCTION_INFO_V1(udc_check_creation_time);
Datum
udc_check_creation_time(PG_FUNCTION_ARGS)
{
	TimestampTz ts;
	TimestampTz now;
	int64		unix_usec;
	int64		now_usec;
	char		err[256];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("creation_time must not be null")));
	ts = PG_GETARG_TIMESTAMPTZ(0);
	if (!udc_time_from_pg(&udc_location_v1_fields, ts, &unix_usec, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err),
				 errdetail("creation_time is %s.", timestamptz_to_str(ts))));
	now = GetCurrentTimestamp();
	if (!udc_time_from_pg(&udc_location_v1_fields, now, &now_usec, err, sizeof(err)))
		elog(ERROR, "the server's clock is out of range: %s", err);
	if (!udc_check_time(&udc_location_v1_fields, unix_usec, now_usec,
						udc_ingest_max_future_skew, err, sizeof(err)))
	{
		/* timestamptz_to_str() returns one static buffer: copy each */
		char	   *ts_str = pstrdup(timestamptz_to_str(ts));
		char	   *now_str = pstrdup(timestamptz_to_str(now));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err),
				 errdetail("creation_time is %s; the server's time is %s.", ts_str, now_str),
				 errhint("Check the device's clock; the limit is udaconnect.ingest_max_future_skew.")));
	}
	PG_RETURN_TIMESTAMPTZ(ts);
}
