/*
 * geodesy.h — PostgreSQL-independent geodesy and spatial-indexing core of
 * pg_udaconnect.  Nothing here includes PostgreSQL or PostGIS headers, so it
 * can be unit-tested on its own (test/unit/test_core.c).
 *
 * Coordinates are WGS84 degrees: latitude in [-90, 90], longitude in
 * [-180, 180].  Distances are metres on the WGS84 spheroid.
 *
 * Cell keys: the globe is cut into a 2^22 x 2^22 equirectangular grid
 * (latitude step 180/2^22 deg ~ 4.77 m, longitude step 360/2^22 deg ~ 9.5 m
 * at the equator) and the two 22-bit indexes are bit-interleaved (Morton /
 * Z-order) into a 44-bit key.  A cell of a coarser level L (0..22) is then a
 * contiguous range of fine keys, which is what makes "all points within r
 * metres of P" a handful of btree range scans.
 */
#ifndef UDC_GEODESY_H
#define UDC_GEODESY_H

#include <stdint.h>

#define UDC_GRID_BITS 22
#define UDC_GRID_SIZE (1u << UDC_GRID_BITS)

/* WGS84 */
#define UDC_WGS84_A 6378137.0
#define UDC_WGS84_F (1.0 / 298.257223563)

/* Largest radius the finder accepts (metres).  Documented in the README. */
#define UDC_MAX_METERS 10000.0

/* Result of coordinate validation. */
typedef enum udc_coord_check
{
	UDC_COORD_OK = 0,
	UDC_COORD_BAD_LATITUDE,		/* NaN, infinite or outside [-90, 90] */
	UDC_COORD_BAD_LONGITUDE		/* NaN, infinite or outside [-180, 180] */
} udc_coord_check;

udc_coord_check udc_check_coordinates(double latitude, double longitude);

/*
 * Geodesic distance in metres between two points on the WGS84 spheroid
 * (Vincenty's inverse formula; sub-millimetre agreement with GeographicLib,
 * which PostGIS uses, for the distances this extension works with).
 * Returns a negative value if the iteration fails to converge (nearly
 * antipodal points), never for points closer than ~19,000 km.
 */
double		udc_geodesic_distance(double lat1, double lon1, double lat2, double lon2);

/*
 * Fast local approximation of the same distance, accurate to ~1e-5 relative
 * for distances up to UDC_MAX_METERS away from the poles.  Used only as a
 * pre-filter with a safety margin; never as the answer.
 */
double		udc_approx_distance(double lat1, double lon1, double lat2, double lon2);

/*
 * Largest latitude difference (degrees) two points at most radius_m apart can
 * have: any path between two parallels is at least the meridian arc, whose
 * radius of curvature is at least a(1 - e^2).  Conservative (margin added).
 */
double		udc_max_dlat(double radius_m);

/* Is the approximation trustworthy (as a pre-filter) for these points? */
int			udc_approx_ok(double lat1, double lat2);

/* Fine-level cell key of a (valid) point. */
int64_t		udc_cell_key(double latitude, double longitude);

/* Inclusive range of fine keys. */
typedef struct udc_key_range
{
	int64_t		lo;
	int64_t		hi;
} udc_key_range;

/* Most ranges udc_cover() ever returns. */
#define UDC_COVER_MAX 128

/*
 * Ranges of fine cell keys that together contain every point whose geodesic
 * distance to (latitude, longitude) is at most radius_m (0 < radius_m <=
 * UDC_MAX_METERS).  The covering is conservative (it may contain more, never
 * less).  Writes at most UDC_COVER_MAX ranges, sorted and non-overlapping, and
 * returns their number.  When every range is a single fine cell the caller
 * can bound the second index column (time) precisely; otherwise ranges are
 * coarser cells.
 */
int			udc_cover(double latitude, double longitude, double radius_m,
					  udc_key_range *out);

/* Interleave / de-interleave (exposed for tests). */
int64_t		udc_morton(uint32_t lat_idx, uint32_t lon_idx);
void		udc_unmorton(int64_t key, uint32_t *lat_idx, uint32_t *lon_idx);

#endif							/* UDC_GEODESY_H */
