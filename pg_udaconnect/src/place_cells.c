/*
 * place_cells.c — which cell keys of udaconnect.location can hold a point
 * near a place (docs/encounters.md, "Places"): place_cells(south[], west[],
 * north[], east[], grow_m) covers the bounding boxes of areas, each grown
 * by grow_m metres, with fine cell keys (core/geodesy.h: a Morton code of a
 * 2^22 x 2^22 latitude/longitude grid) that the partitions'
 * (cell, creation_time) btrees are probed with, one key a probe, so that a
 * time slice bounds the second column too; when the boxes hold more than
 * FINE_MAX fine cells (a tile of a place far beyond the API's 1 km²,
 * inserted directly, or a box around a pole: queued areas are otherwise
 * at most 50 m a side), ranges of coarser cells instead (scanned whole:
 * the time is then a filter).
 *
 * The covering is conservative as udc_cover()'s is, by the same bounds:
 * any path between two parallels is at least the meridian arc
 * (udc_max_dlat()), and the haversine inequality on the auxiliary sphere
 * bounds the longitude difference at the band's largest latitude.  This
 * file must not read tables: it only turns boxes into keys.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "geodesy.h"

/* most fine keys probed one by one (64k probes: ~0.1 s a partition) */
#define FINE_MAX 65536
/* most coarse cells a box is covered with */
#define COARSE_MAX 64

#define DEG2RAD (M_PI / 180.0)
#define RAD2DEG (180.0 / M_PI)

typedef struct IdxRange
{
	uint32		lo;
	uint32		hi;
} IdxRange;

/* a grown box as grid indexes */
typedef struct GridBox
{
	uint32		i0;				/* latitude rows */
	uint32		i1;
	IdxRange	lon[2];			/* longitude columns: two across the antimeridian */
	int			nlon;
} GridBox;

static void
grid_index(double lat, double lon, uint32 *i, uint32 *j)
{
	udc_unmorton(udc_cell_key(lat, lon), i, j);
}

/* The grown box [south - dlat, north + dlat] x [west - dlon, east + dlon]. */
static void
grow_box(double south, double west, double north, double east, double grow_m, GridBox *b)
{
	double		dlat = udc_max_dlat(grow_m);
	double		la0 = south - dlat,
				la1 = north + dlat;
	bool		full = false;
	uint32		j;

	if (la0 <= -90.0)
	{
		la0 = -90.0;
		full = true;
	}
	if (la1 >= 90.0)
	{
		la1 = 90.0;
		full = true;
	}
	grid_index(la0, 0, &b->i0, &j);
	grid_index(la1, 0, &b->i1, &j);
	b->nlon = 1;
	if (!full)
	{
		const double semi_minor = UDC_WGS84_A * (1.0 - UDC_WGS84_F);
		double		phimax = fmax(fabs(la0), fabs(la1)) * DEG2RAD;
		double		x = sin(grow_m / semi_minor * 1.001 / 2.0) / cos(phimax);
		double		dlon = x >= 0.5 ? 360.0 : 2.0 * asin(x) * RAD2DEG * 1.01 + 1e-9;
		double		lo = west - dlon,
					hi = east + dlon;
		uint32		i;

		if (dlon >= 90.0)
			full = true;
		else if (lo < -180.0 || hi > 180.0)
		{
			/* across the antimeridian: both ends */
			if (lo < -180.0)
				lo += 360.0;
			else
				hi -= 360.0;
			grid_index(0, lo, &i, &b->lon[0].lo);
			b->lon[0].hi = UDC_GRID_SIZE - 1;
			b->lon[1].lo = 0;
			grid_index(0, hi, &i, &b->lon[1].hi);
			b->nlon = 2;
		}
		else
		{
			grid_index(0, lo, &i, &b->lon[0].lo);
			grid_index(0, hi, &i, &b->lon[0].hi);
		}
	}
	if (full)
	{
		b->nlon = 1;
		b->lon[0] = (IdxRange) {0, UDC_GRID_SIZE - 1};
	}
}

static uint64
fine_count(const GridBox *b)
{
	uint64		cols = 0;

	for (int k = 0; k < b->nlon; k++)
		cols += (uint64) (b->lon[k].hi - b->lon[k].lo + 1);
	return cols * (uint64) (b->i1 - b->i0 + 1);
}

static int
cmp_key(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

static int
cmp_range(const void *a, const void *b)
{
	return cmp_key(a, b);		/* by lo, the first member */
}

/* Every fine key of the box, appended to keys[*n..]. */
static void
fine_keys(const GridBox *b, int64 *keys, int *n)
{
	for (uint32 i = b->i0; i <= b->i1; i++)
		for (int k = 0; k < b->nlon; k++)
			for (uint32 j = b->lon[k].lo; j <= b->lon[k].hi; j++)
				keys[(*n)++] = udc_morton(i, j);
}

/*
 * The box as cells of the finest level with at most COARSE_MAX of them,
 * appended to r[*n..] as ranges of fine keys (a level-s cell is the 4^s
 * fine keys from its Morton base on).
 */
static void
coarse_ranges(const GridBox *b, udc_key_range *r, int *n)
{
	for (int s = 1; s <= UDC_GRID_BITS; s++)
	{
		IdxRange	cl[2];
		int			ncl = 0;
		uint64		cols = 0;

		/*
		 * Merged in longitude order: across the antimeridian grow_box()
		 * stores the eastern end [lo, MAX] before the western [0, hi], which
		 * merged as they come would fold [0, hi] into [lo, MAX] and lose it.
		 */
		int			first = (b->nlon == 2 && b->lon[1].lo < b->lon[0].lo) ? 1 : 0;

		for (int t = 0; t < b->nlon; t++)
		{
			int			k = (first + t) % b->nlon;
			IdxRange	x = {b->lon[k].lo >> s, b->lon[k].hi >> s};

			if (ncl > 0 && x.lo <= cl[ncl - 1].hi + 1)
				cl[ncl - 1].hi = Max(cl[ncl - 1].hi, x.hi);
			else
				cl[ncl++] = x;
		}
		for (int k = 0; k < ncl; k++)
			cols += cl[k].hi - cl[k].lo + 1;
		if (cols * ((b->i1 >> s) - (b->i0 >> s) + 1) > COARSE_MAX && s < UDC_GRID_BITS)
			continue;
		for (uint32 i = b->i0 >> s; i <= b->i1 >> s; i++)
			for (int k = 0; k < ncl; k++)
				for (uint32 j = cl[k].lo; j <= cl[k].hi; j++)
				{
					int64		base = udc_morton(i << s, j << s);

					r[*n].lo = base;
					r[*n].hi = base + (int64) ((UINT64CONST(1) << (2 * s)) - 1);
					(*n)++;
				}
		return;
	}
}

static Datum
int8_array(const int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static float8 *
float8_args(FunctionCallInfo fcinfo, int arg, int *n)
{
	ArrayType  *a;
	Datum	   *d;
	bool	   *nulls;
	float8	   *out;

	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the box arrays of place_cells() must not be null")));
	a = PG_GETARG_ARRAYTYPE_P(arg);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the box arrays of place_cells() must be one-dimensional")));
	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, n);
	out = palloc(sizeof(float8) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the box arrays of place_cells() must not contain NULL")));
		out[i] = DatumGetFloat8(d[i]);
	}
	return out;
}

/* The boxes of the arguments, checked and grown. */
static GridBox *
arg_boxes(FunctionCallInfo fcinfo, int *nboxes)
{
	float8	   *v[4];
	int			n[4];
	double		grow_m = PG_ARGISNULL(4) ? NAN : PG_GETARG_FLOAT8(4);
	GridBox    *boxes;

	for (int k = 0; k < 4; k++)
		v[k] = float8_args(fcinfo, k, &n[k]);
	if (n[1] != n[0] || n[2] != n[0] || n[3] != n[0])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("south, west, north and east must have as many elements")));
	if (!(grow_m > 0 && grow_m <= UDC_MAX_METERS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grow_m must be in (0, %g] metres, not %g", UDC_MAX_METERS, grow_m)));
	boxes = palloc(sizeof(GridBox) * Max(n[0], 1));
	for (int i = 0; i < n[0]; i++)
	{
		if (udc_check_coordinates(v[0][i], v[1][i]) != UDC_COORD_OK ||
			udc_check_coordinates(v[2][i], v[3][i]) != UDC_COORD_OK ||
			v[0][i] > v[2][i] || v[1][i] > v[3][i])
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("box %d of place_cells() is not south <= north in [-90, 90], west <= east in [-180, 180]",
							i + 1)));
		grow_box(v[0][i], v[1][i], v[2][i], v[3][i], grow_m, &boxes[i]);
	}
	*nboxes = n[0];
	return boxes;
}

/*
 * place_cells(south float8[], west float8[], north float8[], east float8[],
 *             grow_m float8, OUT cells bigint[], OUT range_lo bigint[],
 *             OUT range_hi bigint[])
 * Fine keys (sorted, distinct) or inclusive ranges of keys (sorted, merged
 * where they touch): one of the two is empty.
 */
PG_FUNCTION_INFO_V1(udc_place_cells);
Datum
udc_place_cells(PG_FUNCTION_ARGS)
{
	TupleDesc	td;
	int			nboxes,
				n = 0,
				m = 0;
	GridBox    *boxes = arg_boxes(fcinfo, &nboxes);
	uint64		total = 0;
	int64	   *keys = NULL;
	udc_key_range *r = NULL;
	int64	   *lo,
			   *hi;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "place_cells() must return a record");
	for (int i = 0; i < nboxes; i++)
		total += fine_count(&boxes[i]);
	if (total <= FINE_MAX)
	{
		keys = palloc(sizeof(int64) * Max(total, 1));
		for (int i = 0; i < nboxes; i++)
			fine_keys(&boxes[i], keys, &n);
		qsort(keys, n, sizeof(int64), cmp_key);
		for (int i = 0; i < n; i++)
			if (m == 0 || keys[i] != keys[m - 1])
				keys[m++] = keys[i];
		n = m;
		m = 0;
	}
	else
	{
		r = palloc(sizeof(udc_key_range) * COARSE_MAX * 2 * Max(nboxes, 1));
		for (int i = 0; i < nboxes; i++)
			coarse_ranges(&boxes[i], r, &m);
		qsort(r, m, sizeof(udc_key_range), cmp_range);
		n = 0;
		for (int i = 0; i < m; i++)
		{
			if (n > 0 && r[i].lo <= r[n - 1].hi + 1)
				r[n - 1].hi = Max(r[n - 1].hi, r[i].hi);
			else
				r[n++] = r[i];
		}
		m = n;
		n = 0;
	}
	lo = palloc(sizeof(int64) * Max(m, 1));
	hi = palloc(sizeof(int64) * Max(m, 1));
	for (int i = 0; i < m; i++)
	{
		lo[i] = r[i].lo;
		hi[i] = r[i].hi;
	}
	values[0] = int8_array(keys, n);
	values[1] = int8_array(lo, m);
	values[2] = int8_array(hi, m);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(td), values, nulls)));
}
