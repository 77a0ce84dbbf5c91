/*
 * geodesy.c — PostgreSQL-independent geodesy and cell-key covering: the
 * WGS84 distances (Vincenty, and the local approximation the finder uses as
 * a pre-filter), the Morton cell keys, and udc_cover(), which turns a disc
 * into ranges of cell keys (geodesy.h states the contract).  It must not
 * include PostgreSQL or PostGIS headers, allocate memory or keep state: the
 * gateways link it too, and test/unit/test_core.c tests it without a server.
 */
#include "geodesy.h"

#include <math.h>
#include <stdlib.h>

#define DEG2RAD (M_PI / 180.0)
#define RAD2DEG (180.0 / M_PI)

/* Most fine cells enumerated one by one before switching to coarse ranges. */
#define UDC_FINE_MAX 128
/* Most coarse cells a covering may use. */
#define UDC_COARSE_MAX 16

udc_coord_check
udc_check_coordinates(double latitude, double longitude)
{
	if (!isfinite(latitude) || latitude < -90.0 || latitude > 90.0)
		return UDC_COORD_BAD_LATITUDE;
	if (!isfinite(longitude) || longitude < -180.0 || longitude > 180.0)
		return UDC_COORD_BAD_LONGITUDE;
	return UDC_COORD_OK;
}

/* Longitude difference in radians, folded into [-pi, pi]. */
static double
lon_delta(double lon1, double lon2)
{
	double		d = (lon2 - lon1);

	if (d > 180.0)
		d -= 360.0;
	else if (d < -180.0)
		d += 360.0;
	return d * DEG2RAD;
}

double
udc_geodesic_distance(double lat1, double lon1, double lat2, double lon2)
{
	const double a = UDC_WGS84_A;
	const double f = UDC_WGS84_F;
	const double b = a * (1.0 - f);
	double		L = lon_delta(lon1, lon2);
	double		U1 = atan((1.0 - f) * tan(lat1 * DEG2RAD));
	double		U2 = atan((1.0 - f) * tan(lat2 * DEG2RAD));
	double		sinU1 = sin(U1),
				cosU1 = cos(U1);
	double		sinU2 = sin(U2),
				cosU2 = cos(U2);
	double		lambda = L,
				lambdaP;
	double		sinSigma,
				cosSigma,
				sigma,
				sinAlpha,
				cosSqAlpha,
				cos2SigmaM;
	int			iter = 0;

	if (lat1 == lat2 && L == 0.0)
		return 0.0;

	/* at the poles tan() is huge but atan() brings it back to +-pi/2 */
	do
	{
		double		sinLambda = sin(lambda),
					cosLambda = cos(lambda);
		double		t1 = cosU2 * sinLambda;
		double		t2 = cosU1 * sinU2 - sinU1 * cosU2 * cosLambda;
		double		C;

		sinSigma = sqrt(t1 * t1 + t2 * t2);
		if (sinSigma == 0.0)
			return 0.0;			/* coincident points */
		cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosLambda;
		sigma = atan2(sinSigma, cosSigma);
		sinAlpha = cosU1 * cosU2 * sinLambda / sinSigma;
		cosSqAlpha = 1.0 - sinAlpha * sinAlpha;
		cos2SigmaM = (cosSqAlpha != 0.0) ?
			cosSigma - 2.0 * sinU1 * sinU2 / cosSqAlpha : 0.0;
		C = f / 16.0 * cosSqAlpha * (4.0 + f * (4.0 - 3.0 * cosSqAlpha));
		lambdaP = lambda;
		lambda = L + (1.0 - C) * f * sinAlpha *
			(sigma + C * sinSigma *
			 (cos2SigmaM + C * cosSigma * (-1.0 + 2.0 * cos2SigmaM * cos2SigmaM)));
	} while (fabs(lambda - lambdaP) > 1e-13 && ++iter < 200);

	if (iter >= 200)
		return -1.0;

	{
		double		uSq = cosSqAlpha * (a * a - b * b) / (b * b);
		double		A = 1.0 + uSq / 16384.0 *
			(4096.0 + uSq * (-768.0 + uSq * (320.0 - 175.0 * uSq)));
		double		B = uSq / 1024.0 *
			(256.0 + uSq * (-128.0 + uSq * (74.0 - 47.0 * uSq)));
		double		deltaSigma = B * sinSigma *
			(cos2SigmaM + B / 4.0 *
			 (cosSigma * (-1.0 + 2.0 * cos2SigmaM * cos2SigmaM) -
			  B / 6.0 * cos2SigmaM * (-3.0 + 4.0 * sinSigma * sinSigma) *
			  (-3.0 + 4.0 * cos2SigmaM * cos2SigmaM)));

		return b * A * (sigma - deltaSigma);
	}
}

double
udc_approx_distance(double lat1, double lon1, double lat2, double lon2)
{
	const double a = UDC_WGS84_A;
	const double f = UDC_WGS84_F;
	const double e2 = f * (2.0 - f);
	double		phim = 0.5 * (lat1 + lat2) * DEG2RAD;
	double		s = sin(phim);
	double		w = sqrt(1.0 - e2 * s * s);
	double		M = a * (1.0 - e2) / (w * w * w);
	double		N = a / w;
	double		dy = M * (lat2 - lat1) * DEG2RAD;
	double		dx = N * cos(phim) * lon_delta(lon1, lon2);

	return sqrt(dx * dx + dy * dy);
}

double
udc_max_dlat(double radius_m)
{
	const double f = UDC_WGS84_F;
	const double e2 = f * (2.0 - f);
	const double m_min = UDC_WGS84_A * (1.0 - e2);

	return radius_m / m_min * RAD2DEG * 1.001 + 1e-9;
}

int
udc_approx_ok(double lat1, double lat2)
{
	return fabs(lat1) <= 80.0 && fabs(lat2) <= 80.0;
}

static uint32_t
lat_index(double lat)
{
	double		v = floor((lat + 90.0) / 180.0 * (double) UDC_GRID_SIZE);

	if (v < 0.0)
		return 0;
	if (v > (double) (UDC_GRID_SIZE - 1))
		return UDC_GRID_SIZE - 1;
	return (uint32_t) v;
}

static uint32_t
lon_index(double lon)
{
	double		v = floor((lon + 180.0) / 360.0 * (double) UDC_GRID_SIZE);

	if (v < 0.0)
		return 0;
	if (v > (double) (UDC_GRID_SIZE - 1))
		return UDC_GRID_SIZE - 1;
	return (uint32_t) v;
}

static uint64_t
spread_bits(uint32_t v)
{
	uint64_t	x = v;

	x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
	x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
	x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
	x = (x | (x << 2)) & 0x3333333333333333ULL;
	x = (x | (x << 1)) & 0x5555555555555555ULL;
	return x;
}

static uint32_t
gather_bits(uint64_t x)
{
	x &= 0x5555555555555555ULL;
	x = (x | (x >> 1)) & 0x3333333333333333ULL;
	x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0FULL;
	x = (x | (x >> 4)) & 0x00FF00FF00FF00FFULL;
	x = (x | (x >> 8)) & 0x0000FFFF0000FFFFULL;
	x = (x | (x >> 16)) & 0x00000000FFFFFFFFULL;
	return (uint32_t) x;
}

int64_t
udc_morton(uint32_t lat_idx, uint32_t lon_idx)
{
	return (int64_t) ((spread_bits(lat_idx) << 1) | spread_bits(lon_idx));
}

void
udc_unmorton(int64_t key, uint32_t *lat_idx, uint32_t *lon_idx)
{
	*lat_idx = gather_bits(((uint64_t) key) >> 1);
	*lon_idx = gather_bits((uint64_t) key);
}

int64_t
udc_cell_key(double latitude, double longitude)
{
	return udc_morton(lat_index(latitude), lon_index(longitude));
}

typedef struct idx_range
{
	uint32_t	lo;
	uint32_t	hi;
} idx_range;

static int
cmp_key_range(const void *a, const void *b)
{
	const udc_key_range *x = a;
	const udc_key_range *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->hi < y->hi) ? -1 : (x->hi > y->hi);
}

/* Shift longitude index ranges to a coarser level, merging what now touches. */
static int
shift_lon_ranges(const idx_range *in, int n, int s, idx_range *out)
{
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		idx_range	r = {in[i].lo >> s, in[i].hi >> s};

		if (m > 0 && r.lo <= out[m - 1].hi + 1)
		{
			if (r.hi > out[m - 1].hi)
				out[m - 1].hi = r.hi;
		}
		else
			out[m++] = r;
	}
	return m;
}

/*
 * Latitude band [*la0, *la1] that holds every point within radius_m of
 * latitude: any path between two parallels is at least the meridian arc.
 * Returns 1 when the band reaches a pole, where every longitude is near.
 */
static int
cover_lat_band(double latitude, double radius_m, double *la0, double *la1)
{
	double		dlat = udc_max_dlat(radius_m);
	int			pole = 0;

	*la0 = latitude - dlat;
	*la1 = latitude + dlat;
	if (*la0 <= -90.0)
	{
		*la0 = -90.0;
		pole = 1;
	}
	if (*la1 >= 90.0)
	{
		*la1 = 90.0;
		pole = 1;
	}
	return pole;
}

/*
 * Longitude index ranges (one, or two split at the antimeridian) that hold
 * every point within radius_m of longitude anywhere in the band [la0, la1];
 * the whole circle when full_lon is set or the bound reaches that far.
 * Returns their number.
 */
static int
cover_lon_ranges(double longitude, double radius_m, double la0, double la1,
				 int full_lon, idx_range *lon_r)
{
	const double b = UDC_WGS84_A * (1.0 - UDC_WGS84_F);
	int			nlon = 0;

	if (!full_lon)
	{
		/*
		 * Bound the longitude difference with the haversine inequality on the
		 * auxiliary sphere of radius b: hav(sigma) >= cos^2(phimax) hav(dlon),
		 * where sigma <= s / b.  Reduced latitudes are no larger than
		 * geodetic ones and the ellipsoidal longitude difference is no larger
		 * than the auxiliary-sphere one; a 1 % margin is added on top.
		 */
		double		phimax = fmax(fabs(la0), fabs(la1)) * DEG2RAD;
		double		sigma = radius_m / b * 1.001;
		double		x = sin(sigma / 2.0) / cos(phimax);

		if (x >= 0.5)
			full_lon = 1;
		else
		{
			double		dlon = 2.0 * asin(x) * RAD2DEG * 1.01 + 1e-9;
			double		lo = longitude - dlon,
						hi = longitude + dlon;

			if (dlon >= 90.0)
				full_lon = 1;
			else if (lo < -180.0)
			{
				lon_r[nlon++] = (idx_range) {0, lon_index(hi)};
				lon_r[nlon++] = (idx_range) {lon_index(lo + 360.0), UDC_GRID_SIZE - 1};
			}
			else if (hi > 180.0)
			{
				lon_r[nlon++] = (idx_range) {0, lon_index(hi - 360.0)};
				lon_r[nlon++] = (idx_range) {lon_index(lo), UDC_GRID_SIZE - 1};
			}
			else
				lon_r[nlon++] = (idx_range) {lon_index(lo), lon_index(hi)};
		}
	}
	if (full_lon)
	{
		nlon = 1;
		lon_r[0] = (idx_range) {0, UDC_GRID_SIZE - 1};
	}
	if (nlon == 2 && lon_r[0].hi + 1 >= lon_r[1].lo)
	{
		lon_r[0].hi = lon_r[1].hi;
		nlon = 1;
	}
	return nlon;
}

/* Number of cells in latitude rows [i0, i1] times the longitude ranges. */
static uint64_t
cell_count(uint32_t i0, uint32_t i1, const idx_range *lon_r, int nlon)
{
	uint64_t	count = 0;

	for (int k = 0; k < nlon; k++)
		count += (uint64_t) (lon_r[k].hi - lon_r[k].lo + 1);
	return count * (uint64_t) (i1 - i0 + 1);
}

/*
 * Write the cells of level s (0: fine) in rows [ci0, ci1] and the longitude
 * ranges cl (indexes of that level) as ranges of fine keys, in row order;
 * returns their number.  A level-s cell is the 2^(2s) fine keys from its
 * Morton base on (that is what the bit interleaving buys).
 */
static int
emit_cells(uint32_t ci0, uint32_t ci1, const idx_range *cl, int ncl, int s,
		   udc_key_range *out)
{
	int			n = 0;

	for (uint32_t ci = ci0; ci <= ci1; ci++)
		for (int k = 0; k < ncl; k++)
			for (uint32_t cj = cl[k].lo; cj <= cl[k].hi; cj++)
			{
				int64_t		base = udc_morton(ci << s, cj << s);

				out[n].lo = base;
				out[n].hi = base + (int64_t) ((1ULL << (2 * s)) - 1);
				n++;
			}
	return n;
}

/*
 * Cover fine rows [i0, i1] x lon_r with the finest level whose cells number
 * at most UDC_COARSE_MAX (the coarsest, one cell, at worst); sorted, with
 * ranges that touch merged (coarse ranges are scanned as ranges anyway).
 */
static int
cover_coarse(uint32_t i0, uint32_t i1, const idx_range *lon_r, int nlon,
			 udc_key_range *out)
{
	int			n = 0,
				m = 0;

	for (int s = 1; s <= UDC_GRID_BITS; s++)
	{
		idx_range	cl[2];
		int			ncl = shift_lon_ranges(lon_r, nlon, s, cl);

		if (cell_count(i0 >> s, i1 >> s, cl, ncl) > UDC_COARSE_MAX &&
			s < UDC_GRID_BITS)
			continue;
		n = emit_cells(i0 >> s, i1 >> s, cl, ncl, s, out);
		break;
	}
	qsort(out, n, sizeof(udc_key_range), cmp_key_range);
	for (int k = 0; k < n; k++)
	{
		if (m > 0 && out[k].lo <= out[m - 1].hi + 1)
		{
			if (out[k].hi > out[m - 1].hi)
				out[m - 1].hi = out[k].hi;
		}
		else
			out[m++] = out[k];
	}
	return m;
}

/*
 * The covering is built in steps: the latitude band, the longitude ranges
 * over that band, then either every fine cell (few enough: the finder can
 * bound both index columns of a single cell) or coarse cells.  Fine cells are
 * never merged, even where they touch: a single-cell range is what lets the
 * finder bound the time column too.
 */
int
udc_cover(double latitude, double longitude, double radius_m, udc_key_range *out)
{
	double		la0,
				la1;
	idx_range	lon_r[2];
	int			nlon;
	uint32_t	i0,
				i1;
	int			full_lon,
				n;

	full_lon = cover_lat_band(latitude, radius_m, &la0, &la1);
	nlon = cover_lon_ranges(longitude, radius_m, la0, la1, full_lon, lon_r);
	i0 = lat_index(la0);
	i1 = lat_index(la1);
	if (cell_count(i0, i1, lon_r, nlon) > UDC_FINE_MAX)
		return cover_coarse(i0, i1, lon_r, nlon, out);
	n = emit_cells(i0, i1, lon_r, nlon, 0, out);
	qsort(out, n, sizeof(udc_key_range), cmp_key_range);
	return n;
}
