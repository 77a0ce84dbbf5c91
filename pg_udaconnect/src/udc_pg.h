/*
 * udc_pg.h — shared PostgreSQL-side helpers of pg_udaconnect.
 */
#ifndef UDC_PG_H
#define UDC_PG_H

#include "postgres.h"
#include "executor/spi.h"
#include "fmgr.h"

/*
 * SPI_execute_plan (SPI connected) with the rights of relation relid's
 * owner, as a SECURITY DEFINER function of the extension would run it: for
 * the maintenance and lookups that any role's write may set off.
 */
/* backend_memory.c: udaconnect.backend_memory_keep, applied at once */
extern void udc_backend_memory_init(void);

extern int	udc_spi_as_owner(Oid relid, SPIPlanPtr plan, Datum *args, bool read_only);

/* ereport(ERROR) with SQLSTATE 22003 naming the value unless valid. */
extern void udc_check_coordinates_or_error(double latitude, double longitude);

/* A PostGIS geometry(Point, 4326) datum for (latitude, longitude). */
extern Datum udc_point_datum(double latitude, double longitude);

/* Latitude/longitude of a PostGIS point datum (may be toasted). */
extern void udc_point_coordinates(Datum geom, double *latitude, double *longitude);

/* Is typid PostGIS's geometry?  *nsp (if not NULL) gets its schema. */
extern bool udc_is_geometry_type(Oid typid, Oid *nsp);

/* The schema PostGIS is installed in (palloc'd; error if missing). */
extern char *udc_postgis_schema_name(void);

/* ST_Covers(geometry, geometry) (cached per backend). */
extern Oid	udc_postgis_covers(void);

/*
 * For each of the n points (latitude, longitude: valid coordinates), the
 * id of the smallest place covering it (0: none), palloc'd; places_at()'s
 * rule (src/places_lookup.c).  SPI connected; the places read are those
 * the active snapshot sees, with the place table owner's rights.
 */
extern int32 *udc_places_lookup(const double *latitude, const double *longitude, int n);

/* OID of a function of the PostGIS extension (error if missing). */
extern Oid	udc_postgis_function(const char *name, int nargs, const Oid *argtypes);

#endif
