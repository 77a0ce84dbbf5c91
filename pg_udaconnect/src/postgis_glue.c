/*
 * postgis_glue.c — building and reading PostGIS points without linking
 * against PostGIS: functions are looked up in the postgis extension's schema
 * (whatever the caller's search_path), and 2-D points in PostGIS's
 * serialized form are read directly, with a fallback to ST_X/ST_Y.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "udc_pg.h"

static Oid
postgis_schema(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("postgis"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"postgis\" is not installed"),
				 errhint("CREATE EXTENSION pg_udaconnect CASCADE installs it.")));
	return nsp;
}

Oid
udc_postgis_function(const char *name, int nargs, const Oid *argtypes)
{
	char	   *schema = get_namespace_name(postgis_schema());
	List	   *names = list_make2(makeString(schema), makeString(pstrdup(name)));

	return LookupFuncName(names, nargs, argtypes, false);
}

static Oid
postgis_type(const char *name)
{
	Oid			nsp = postgis_schema();
	Oid			typ = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									  CStringGetDatum(name), ObjectIdGetDatum(nsp));

	if (!OidIsValid(typ))
		elog(ERROR, "type %s of extension postgis not found", name);
	return typ;
}

char *
udc_postgis_schema_name(void)
{
	return get_namespace_name(postgis_schema());
}

/* Cached per backend; reset if PostGIS is reinstalled would need a restart. */
static bool glue_ready = false;
static FmgrInfo makepoint_fn;
static FmgrInfo setsrid_fn;
static FmgrInfo stx_fn;
static FmgrInfo sty_fn;
static Oid	covers_oid;

static void
glue_init(void)
{
	Oid			f8f8[2] = {FLOAT8OID, FLOAT8OID};
	Oid			geom;
	Oid			geom_int[2];

	/* before any lookup: postgis_type() scans pg_extension */
	if (glue_ready)
		return;
	geom = postgis_type("geometry");
	geom_int[0] = geom;
	geom_int[1] = INT4OID;
	fmgr_info_cxt(udc_postgis_function("st_makepoint", 2, f8f8), &makepoint_fn, TopMemoryContext);
	fmgr_info_cxt(udc_postgis_function("st_setsrid", 2, geom_int), &setsrid_fn, TopMemoryContext);
	fmgr_info_cxt(udc_postgis_function("st_x", 1, &geom), &stx_fn, TopMemoryContext);
	fmgr_info_cxt(udc_postgis_function("st_y", 1, &geom), &sty_fn, TopMemoryContext);
	covers_oid = udc_postgis_function("st_covers", 2, (Oid[]) {geom, geom});
	glue_ready = true;
}

Datum
udc_point_datum(double latitude, double longitude)
{
	Datum		p;

	glue_init();
	p = FunctionCall2(&makepoint_fn, Float8GetDatum(longitude), Float8GetDatum(latitude));
	return FunctionCall2(&setsrid_fn, p, Int32GetDatum(4326));
}

Oid
udc_postgis_covers(void)
{
	glue_init();
	return covers_oid;
}

/*
 * PostGIS 3 serialization (gserialized v2) of a 2-D point without bounding
 * box: varlena header (4, or 1 on disk), srid (3), flags (1), type (4) = 1, npoints (4) = 1,
 * x (8), y (8): 32 bytes.  Anything else goes through ST_X/ST_Y.
 */
#define G2FLAG_Z        0x01
#define G2FLAG_M        0x02
#define G2FLAG_BBOX     0x04
#define G2FLAG_EXTENDED 0x10

void
udc_point_coordinates(Datum geom, double *latitude, double *longitude)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(geom);

	if (!VARATT_IS_EXTERNAL(v) && !VARATT_IS_COMPRESSED(v) &&
		VARSIZE_ANY_EXHDR(v) == 28)
	{
		const uint8 *b = (const uint8 *) VARDATA_ANY(v);
		uint8		flags = b[3];
		uint32		type,
					npoints;

		memcpy(&type, b + 4, 4);
		memcpy(&npoints, b + 8, 4);
		if ((flags & (G2FLAG_Z | G2FLAG_M | G2FLAG_BBOX | G2FLAG_EXTENDED)) == 0 &&
			type == 1 && npoints == 1)
		{
			memcpy(longitude, b + 12, 8);
			memcpy(latitude, b + 20, 8);
			return;
		}
	}
	glue_init();
	*longitude = DatumGetFloat8(FunctionCall1(&stx_fn, geom));
	*latitude = DatumGetFloat8(FunctionCall1(&sty_fn, geom));
}

/*
 * Is typid PostGIS's geometry (in whatever schema PostGIS lives)?  *nsp, when
 * nsp is not NULL, gets the type's schema.  PostGIS has no fixed type OID:
 * the one found by name is remembered, so that the finder's per-call index
 * check compares integers only.
 */
bool
udc_is_geometry_type(Oid typid, Oid *nsp)
{
	static Oid	geometry_oid = InvalidOid;
	static Oid	geometry_nsp = InvalidOid;
	HeapTuple	tup;
	bool		yes;

	if (!OidIsValid(geometry_oid) || typid != geometry_oid)
	{
		tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
		if (!HeapTupleIsValid(tup))
			return false;
		yes = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "geometry") == 0;
		if (yes)
		{
			geometry_oid = typid;
			geometry_nsp = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
		}
		ReleaseSysCache(tup);
		if (!yes)
			return false;
	}
	if (nsp)
		*nsp = geometry_nsp;
	return true;
}
