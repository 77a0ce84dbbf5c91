/*
 * places_lookup.c — the place of many points at once: for each, the
 * smallest place (area_m2, then the lowest id) whose area covers it, its
 * boundary included; none when no place does.  This is places_at()'s rule
 * (sql/src/45-places.sql), and the encounters place their matches by it
 * (encounter.c, encounter_places.c): one implementation for both.
 *
 * A batch of the ingest asks for thousands of points, nearly all in the
 * same hall.  Probing the place index once per point cost 2 µs a point
 * with no place near and 13 µs a match among booths (the executor, a sort
 * and a PostGIS call per probe).  So the places are read once per call:
 * those whose bounding box meets the points' (one index scan, sorted by
 * area and id), then each point is tested against the candidates whose
 * box holds it, smallest first, and the first that covers it (PostGIS's
 * ST_Covers, the exact test places_at() always made) is its place.  With
 * many candidates a grid over the points' box lists, per cell, the
 * candidates meeting it, so a point looks at a few boxes, not all.  Each
 * candidate keeps its own FmgrInfo, in which PostGIS caches what it
 * prepared of the polygon for the next point.
 *
 * The places are read with the rights of the place table's owner, as the
 * SECURITY DEFINER functions that did this before: a location inserted by
 * a role that may not read the places is still placed.  This file must not
 * decide which points need a place, nor write anything.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "udc_pg.h"

/* with fewer candidates every point looks at all of them */
#define GRID_MIN_CANDIDATES 16
#define GRID_MAX_SIDE 64
/* cell list entries at most (many large places over many cells: linear) */
#define GRID_MAX_ITEMS (4 * 1024 * 1024)

typedef struct Candidate
{
	int32		id;
	double		xmin,			/* longitude */
				ymin,			/* latitude */
				xmax,
				ymax;
	Datum		area;			/* the polygon, detoasted */
	FmgrInfo	covers;
} Candidate;

/* cell lists over the points' box: cell k's candidates are
 * items[start[k] .. start[k + 1]), in the candidates' order */
typedef struct Grid
{
	int			nx,
				ny;
	double		x0,
				y0,
				dx,
				dy;
	int		   *start;
	int		   *items;
} Grid;

/* clamped in double before the cast: a tiny d makes the quotient huge */
static int
cell_of(double v, double v0, double d, int n)
{
	double		q;

	if (!(d > 0))
		return 0;
	q = floor((v - v0) / d);
	if (!(q >= 0))
		return 0;
	return q >= n ? n - 1 : (int) q;
}

/* The cell lists over the points' box; false (no grid) when too many. */
static bool
grid_build(Grid *g, const Candidate *c, int nc, double x0, double y0, double x1, double y1)
{
	int			side = (int) ceil(sqrt((double) nc));
	int			cells;
	int		   *fill;
	int		   *span = palloc(sizeof(int) * 4 * nc);	/* x0, x1, y0, y1 */
	int64		items = 0;

	side = side > GRID_MAX_SIDE ? GRID_MAX_SIDE : side;
	g->nx = x1 > x0 ? side : 1;
	g->ny = y1 > y0 ? side : 1;
	g->x0 = x0;
	g->y0 = y0;
	g->dx = (x1 - x0) / g->nx;
	g->dy = (y1 - y0) / g->ny;
	for (int i = 0; i < nc; i++)
	{
		int		   *k = &span[4 * i];

		k[0] = cell_of(c[i].xmin, g->x0, g->dx, g->nx);
		k[1] = cell_of(c[i].xmax, g->x0, g->dx, g->nx);
		k[2] = cell_of(c[i].ymin, g->y0, g->dy, g->ny);
		k[3] = cell_of(c[i].ymax, g->y0, g->dy, g->ny);
		items += (int64) (k[1] - k[0] + 1) * (k[3] - k[2] + 1);
	}
	if (items > GRID_MAX_ITEMS)
		return false;
	cells = g->nx * g->ny;
	g->start = palloc0(sizeof(int) * (cells + 1));
	g->items = palloc(sizeof(int) * Max(items, 1));
	fill = palloc0(sizeof(int) * cells);
	/* each cell's count, then each candidate placed, in order */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < nc; i++)
		{
			const int  *k = &span[4 * i];

			for (int cy = k[2]; cy <= k[3]; cy++)
				for (int cx = k[0]; cx <= k[1]; cx++)
				{
					int			cell = cy * g->nx + cx;

					if (pass == 0)
						g->start[cell + 1]++;
					else
						g->items[g->start[cell] + fill[cell]++] = i;
				}
		}
		for (int k = 0; pass == 0 && k < cells; k++)
			g->start[k + 1] += g->start[k];
	}
	pfree(fill);
	pfree(span);
	return true;
}

/* The places whose box meets [x0, x1] x [y0, y1], by area then id. */
static Candidate *
read_candidates(MemoryContext cxt, double x0, double y0, double x1, double y1, int *nc)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID};
	Datum		args[4] = {Float8GetDatum(x0), Float8GetDatum(y0),
	Float8GetDatum(x1), Float8GetDatum(y1)};
	Candidate  *c;
	int			rc;

	if (plan == NULL)
	{
		const char *s = quote_identifier(udc_postgis_schema_name());
		char	   *sql = psprintf("SELECT p.id, %1$s.st_xmin(p.area), %1$s.st_ymin(p.area), "
								   "%1$s.st_xmax(p.area), %1$s.st_ymax(p.area), p.area "
								   "FROM udaconnect.place p "
								   "WHERE p.area OPERATOR(%1$s.&&) %1$s.st_makeenvelope($1, $2, $3, $4, 4326) "
								   "ORDER BY p.area_m2, p.id", s);
		SPIPlanPtr	p = SPI_prepare(sql, 4, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	rc = udc_spi_as_owner(get_relname_relid("place", get_namespace_oid("udaconnect", false)),
						  plan, args, true);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading udaconnect.place failed: %s", SPI_result_code_string(rc));
	/* SPI returns in its procedure's context: the candidates go to ours */
	MemoryContextSwitchTo(cxt);
	*nc = (int) SPI_processed;
	c = palloc0(sizeof(Candidate) * Max(*nc, 1));
	for (int i = 0; i < *nc; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		double	   *box[4] = {&c[i].xmin, &c[i].ymin, &c[i].xmax, &c[i].ymax};

		c[i].id = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
		for (int k = 0; k < 4; k++)
			*box[k] = DatumGetFloat8(SPI_getbinval(t, d, k + 2, &isnull));
		c[i].area = PointerGetDatum(PG_DETOAST_DATUM_COPY(SPI_getbinval(t, d, 6, &isnull)));
		fmgr_info_cxt(udc_postgis_covers(), &c[i].covers, cxt);
	}
	SPI_freetuptable(SPI_tuptable);
	return c;
}

static bool
box_holds(const Candidate *c, double x, double y)
{
	return x >= c->xmin && x <= c->xmax && y >= c->ymin && y <= c->ymax;
}

/*
 * The first candidate of list (or of all, list NULL) covering the point:
 * its id, or 0.  What the exact tests allocate goes to `scratch`, reset
 * per point (a call may place a whole batch).
 */
static int32
place_of(Candidate *c, const int *list, int n, double lat, double lon, MemoryContext scratch)
{
	Datum		point = (Datum) 0;
	int32		found = 0;
	MemoryContext old = MemoryContextSwitchTo(scratch);

	for (int j = 0; j < n && found == 0; j++)
	{
		Candidate  *k = &c[list ? list[j] : j];

		if (!box_holds(k, lon, lat))
			continue;
		if (point == (Datum) 0)
			point = udc_point_datum(lat, lon);
		if (DatumGetBool(FunctionCall2(&k->covers, k->area, point)))
			found = k->id;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
	return found;
}

int32 *
udc_places_lookup(const double *latitude, const double *longitude, int n)
{
	int32	   *out = palloc0(sizeof(int32) * Max(n, 1));
	MemoryContext cxt;
	MemoryContext scratch;
	MemoryContext old;
	double		x0 = INFINITY,
				y0 = INFINITY,
				x1 = -INFINITY,
				y1 = -INFINITY;
	Candidate  *c;
	int			nc;
	Grid		g = {0};
	bool		gridded;

	if (n == 0)
		return out;
	for (int i = 0; i < n; i++)
	{
		x0 = Min(x0, longitude[i]);
		x1 = Max(x1, longitude[i]);
		y0 = Min(y0, latitude[i]);
		y1 = Max(y1, latitude[i]);
	}
	/* PostGIS's caches in the candidates' FmgrInfo die with the call */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "udaconnect places lookup",
								ALLOCSET_DEFAULT_SIZES);
	scratch = AllocSetContextCreate(cxt, "udaconnect places lookup point",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	c = read_candidates(cxt, x0, y0, x1, y1, &nc);
	gridded = nc >= GRID_MIN_CANDIDATES && grid_build(&g, c, nc, x0, y0, x1, y1);
	for (int i = 0; nc > 0 && i < n; i++)
	{
		if (!gridded)
			out[i] = place_of(c, NULL, nc, latitude[i], longitude[i], scratch);
		else
		{
			int			k = cell_of(latitude[i], g.y0, g.dy, g.ny) * g.nx +
				cell_of(longitude[i], g.x0, g.dx, g.nx);

			out[i] = place_of(c, g.items + g.start[k], g.start[k + 1] - g.start[k],
							  latitude[i], longitude[i], scratch);
		}
		if ((i & 1023) == 1023)
			CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return out;
}

/*
 * places_at(latitudes, longitudes) -> integer[]: each point's place, NULL
 * for none.  The arrays are paired as unnest(latitude, longitude) pairs
 * them (the shorter one, or a NULL one, padded with NULLs); a NULL or
 * invalid coordinate is an error, as make_point() makes it (22004, 22003).
 */
PG_FUNCTION_INFO_V1(udc_places_at);
Datum
udc_places_at(PG_FUNCTION_ARGS)
{
	Datum	   *vlat = NULL,
			   *vlon = NULL,
			   *ids;
	bool	   *nlat = NULL,
			   *nlon = NULL,
			   *nulls;
	int			klat = 0,
				klon = 0,
				n;
	double	   *lat,
			   *lon;
	int32	   *place;
	int			dims[1];
	int			lbs[1] = {1};

	/* a NULL array pairs as an empty one (unnest(NULL, ...) gives no row) */
	if (!PG_ARGISNULL(0))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), FLOAT8OID, 8, FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &vlat, &nlat, &klat);
	if (!PG_ARGISNULL(1))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), FLOAT8OID, 8, FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &vlon, &nlon, &klon);
	n = Max(klat, klon);
	lat = palloc(sizeof(double) * Max(n, 1));
	lon = palloc(sizeof(double) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (i >= klat || nlat[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("latitude must not be null"),
					 errdetail("Element %d of the latitudes is null or missing (%d latitudes, %d longitudes).",
							   i + 1, klat, klon)));
		if (i >= klon || nlon[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("longitude must not be null"),
					 errdetail("Element %d of the longitudes is null or missing (%d latitudes, %d longitudes).",
							   i + 1, klat, klon)));
		lat[i] = DatumGetFloat8(vlat[i]);
		lon[i] = DatumGetFloat8(vlon[i]);
		udc_check_coordinates_or_error(lat[i], lon[i]);
	}
	ids = palloc(sizeof(Datum) * Max(n, 1));
	nulls = palloc(sizeof(bool) * Max(n, 1));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* in SPI's memory, gone at SPI_finish: copied out first */
	place = udc_places_lookup(lat, lon, n);
	for (int i = 0; i < n; i++)
	{
		ids[i] = Int32GetDatum(place[i]);
		nulls[i] = place[i] == 0;
	}
	SPI_finish();
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT4OID));
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(ids, nulls, 1, dims, lbs, INT4OID, 4, true,
											 TYPALIGN_INT));
}
