/*
 * udc_pg.h — shared PostgreSQL-side helpers of pg_udaconnect.
 */
#ifndef UDC_PG_H
#define UDC_PG_H

#include "postgres.h"
#include "fmgr.h"

/* ereport(ERROR) with SQLSTATE 22003 naming the value unless valid. */
extern void udc_check_coordinates_or_error(double latitude, double longitude);

/* A PostGIS geometry(Point, 4326) datum for (latitude, longitude). */
extern Datum udc_point_datum(double latitude, double longitude);

/* Latitude/longitude of a PostGIS point datum (may be toasted). */
extern void udc_point_coordinates(Datum geom, double *latitude, double *longitude);

/* Is typid PostGIS's geometry?  *nsp (if not NULL) gets its schema. */
extern bool udc_is_geometry_type(Oid typid, Oid *nsp);

/* OID of a function of the PostGIS extension (error if missing). */
extern Oid	udc_postgis_function(const char *name, int nargs, const Oid *argtypes);

#endif
