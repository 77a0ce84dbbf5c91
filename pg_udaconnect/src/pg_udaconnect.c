/*
 * pg_udaconnect.c — module entry point, the small SQL-callable geodesy
 * wrappers and the shared helpers of udc_pg.h.  The algorithms live in
 * core/geodesy.c (no PostgreSQL headers).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/syscache.h"

#include "encounter.h"
#include "geodesy.h"
#include "ingest.h"
#include "maintenance.h"
#include "partitions.h"
#include "retention.h"
#include "udc_pg.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* first: in the postmaster, so that every server process inherits it */
	udc_backend_memory_init();
	/* components that need shared_preload_libraries register here */
	udc_ingest_init();
	udc_encounter_init();
	udc_partitions_init();
	/* after the ingest's: its worker uses udaconnect.database */
	udc_retention_init();
	udc_maintenance_init();
}

int
udc_spi_as_owner(Oid relid, SPIPlanPtr plan, Datum *args, bool read_only)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;
	Oid			save_user;
	int			save_sec;
	int			rc;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	/* restored by the abort on an error, as for a SECURITY DEFINER call */
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	rc = SPI_execute_plan(plan, args, NULL, read_only, 0);
	SetUserIdAndSecContext(save_user, save_sec);
	return rc;
}

void
udc_check_coordinates_or_error(double latitude, double longitude)
{
	switch (udc_check_coordinates(latitude, longitude))
	{
		case UDC_COORD_OK:
			break;
		case UDC_COORD_BAD_LATITUDE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("latitude %s is out of range", float8out_internal(latitude)),
					 errdetail("A latitude must be a finite number of degrees in [-90, 90]."),
					 errhint("Latitude comes first, longitude second; check that they are not swapped.")));
			break;
		case UDC_COORD_BAD_LONGITUDE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("longitude %s is out of range", float8out_internal(longitude)),
					 errdetail("A longitude must be a finite number of degrees in [-180, 180].")));
			break;
	}
}

PG_FUNCTION_INFO_V1(udc_cell_key_sql);
Datum
udc_cell_key_sql(PG_FUNCTION_ARGS)
{
	double		lat = PG_GETARG_FLOAT8(0);
	double		lon = PG_GETARG_FLOAT8(1);

	udc_check_coordinates_or_error(lat, lon);
	PG_RETURN_INT64(udc_cell_key(lat, lon));
}

PG_FUNCTION_INFO_V1(udc_geodesic_distance_sql);
Datum
udc_geodesic_distance_sql(PG_FUNCTION_ARGS)
{
	double		lat1 = PG_GETARG_FLOAT8(0);
	double		lon1 = PG_GETARG_FLOAT8(1);
	double		lat2 = PG_GETARG_FLOAT8(2);
	double		lon2 = PG_GETARG_FLOAT8(3);
	double		d;

	udc_check_coordinates_or_error(lat1, lon1);
	udc_check_coordinates_or_error(lat2, lon2);
	d = udc_geodesic_distance(lat1, lon1, lat2, lon2);
	if (d < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("geodesic distance did not converge for nearly antipodal points")));
	PG_RETURN_FLOAT8(d);
}

PG_FUNCTION_INFO_V1(udc_make_point);
Datum
udc_make_point(PG_FUNCTION_ARGS)
{
	double		lat,
				lon;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("latitude must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("longitude must not be null")));
	lat = PG_GETARG_FLOAT8(0);
	lon = PG_GETARG_FLOAT8(1);
	udc_check_coordinates_or_error(lat, lon);
	PG_RETURN_DATUM(udc_point_datum(lat, lon));
}
