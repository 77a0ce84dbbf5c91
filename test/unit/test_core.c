/*
 * Unit tests of pg_udaconnect/core/geodesy.c, without PostgreSQL.
 * Output is TAP: one "ok N - ..." / "not ok N - ..." line per check group.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "geodesy.h"
#include "location_rule.h"

static int	test_no = 0;
static int	failures = 0;

static void
report(int ok, const char *what)
{
	test_no++;
	if (!ok)
		failures++;
	printf("%sok %d - %s\n", ok ? "" : "not ", test_no, what);
}

static int
near(double got, double want, double tol, const char *what)
{
	if (fabs(got - want) > tol)
	{
		printf("# %s: got %.9f, want %.9f (tolerance %g)\n", what, got, want, tol);
		return 0;
	}
	return 1;
}

/* xorshift64*: deterministic pseudo-random numbers */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double) ((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double
dms(double d, double m, double s)
{
	return (d < 0 ? -1 : 1) * (fabs(d) + m / 60.0 + s / 3600.0);
}

static void
test_coordinates(void)
{
	int			ok = 1;

	ok &= udc_check_coordinates(0, 0) == UDC_COORD_OK;
	ok &= udc_check_coordinates(90, 180) == UDC_COORD_OK;
	ok &= udc_check_coordinates(-90, -180) == UDC_COORD_OK;
	ok &= udc_check_coordinates(90.0000001, 0) == UDC_COORD_BAD_LATITUDE;
	ok &= udc_check_coordinates(-106.5719566, 35.0585136) == UDC_COORD_BAD_LATITUDE;
	ok &= udc_check_coordinates(NAN, 0) == UDC_COORD_BAD_LATITUDE;
	ok &= udc_check_coordinates(INFINITY, 0) == UDC_COORD_BAD_LATITUDE;
	ok &= udc_check_coordinates(0, 180.5) == UDC_COORD_BAD_LONGITUDE;
	ok &= udc_check_coordinates(0, -INFINITY) == UDC_COORD_BAD_LONGITUDE;
	ok &= udc_check_coordinates(0, NAN) == UDC_COORD_BAD_LONGITUDE;
	report(ok, "coordinate validation: ranges inclusive, NaN and infinities refused, nothing wraps");
}

static void
test_distance_known(void)
{
	/* Vincenty's own test line: Flinders Peak to Buninyong, 54972.271 m */
	double		d = udc_geodesic_distance(dms(-37, 57, 3.72030), dms(144, 25, 29.52440),
										  dms(-37, 39, 10.15610), dms(143, 55, 35.38390));

	report(near(d, 54972.271, 0.001, "Flinders Peak - Buninyong"),
		   "geodesic distance: Flinders Peak to Buninyong is 54972.271 m");
	report(udc_geodesic_distance(37.55363, -122.290883, 37.55363, -122.290883) == 0.0,
		   "geodesic distance: identical points are 0 m apart");
	/* 0.00002 deg of longitude on the equator: a * 2e-5 * pi / 180 */
	d = udc_geodesic_distance(0, 179.99999, 0, -179.99999);
	report(near(d, 6378137.0 * 2e-5 * M_PI / 180.0, 1e-6, "antimeridian"),
		   "geodesic distance: across the antimeridian takes the short way");
	/* near the pole: meridian arc of 1e-5 deg, radius of curvature a^2/b */
	{
		double		a = UDC_WGS84_A,
					b = a * (1 - UDC_WGS84_F);

		d = udc_geodesic_distance(90, 0, 89.99999, 45);
		report(near(d, a * a / b * 1e-5 * M_PI / 180.0, 1e-4, "pole"),
			   "geodesic distance: from the north pole along a meridian");
	}
	/* one degree of latitude at the equator: 110574.389 m */
	d = udc_geodesic_distance(0, 10, 1, 10);
	report(near(d, 110574.389, 0.001, "1 deg latitude"),
		   "geodesic distance: one degree of latitude at the equator is 110574.389 m");
	d = udc_geodesic_distance(10, 20, -30, 50);
	report(d > 0 && near(d, udc_geodesic_distance(-30, 50, 10, 20), 1e-6, "symmetry"),
		   "geodesic distance: symmetric");
}

static void
test_approx(void)
{
	int			ok = 1;
	double		worst = 0;

	for (int i = 0; i < 100000; i++)
	{
		double		lat = -80 + 160 * rnd(),
					lon = -180 + 360 * rnd();
		double		dlat = (rnd() - 0.5) * 0.18,
					dlon = (rnd() - 0.5) * 0.18 / cos(lat * M_PI / 180);
		double		lat2 = fmax(-80, fmin(80, lat + dlat)),
					lon2 = lon + dlon;
		double		exact,
					approx,
					rel;

		if (lon2 > 180)
			lon2 -= 360;
		if (lon2 < -180)
			lon2 += 360;
		exact = udc_geodesic_distance(lat, lon, lat2, lon2);
		if (exact > UDC_MAX_METERS || exact < 0.001)
			continue;
		approx = udc_approx_distance(lat, lon, lat2, lon2);
		rel = fabs(approx - exact) / exact;
		if (rel > worst)
			worst = rel;
		if (fabs(approx - exact) > exact * 1e-3 * 0.5 + 0.0005)
		{
			ok = 0;
			printf("# approx %.6f vs exact %.6f at (%f,%f)-(%f,%f)\n", approx, exact, lat, lon, lat2, lon2);
			break;
		}
	}
	printf("# worst relative error of the approximation: %.3g\n", worst);
	report(ok, "approximate distance stays well inside the pre-filter margin up to 10 km, |lat| <= 80");
}

static void
test_morton(void)
{
	int			ok = 1;

	for (int i = 0; i < 100000 && ok; i++)
	{
		uint32_t	a = (uint32_t) (rnd() * UDC_GRID_SIZE),
					b = (uint32_t) (rnd() * UDC_GRID_SIZE),
					a2,
					b2;

		udc_unmorton(udc_morton(a, b), &a2, &b2);
		ok = (a == a2 && b == b2);
	}
	ok &= udc_cell_key(-90, -180) == 0;
	ok &= udc_cell_key(90, 180) == (int64_t) ((1ULL << 44) - 1);
	report(ok, "cell keys: Morton interleave round-trips and spans [0, 2^44)");
}

static int
covered(int64_t key, const udc_key_range *r, int n)
{
	for (int i = 0; i < n; i++)
		if (key >= r[i].lo && key <= r[i].hi)
			return 1;
	return 0;
}

/* A point at about `dist` metres from (lat, lon) in direction `az`. */
static void
offset_point(double lat, double lon, double dist, double az, double *lat2, double *lon2)
{
	double		R = 6371008.8;
	double		d = dist / R,
				p1 = lat * M_PI / 180,
				l1 = lon * M_PI / 180;
	double		p2 = asin(sin(p1) * cos(d) + cos(p1) * sin(d) * cos(az));
	double		l2 = l1 + atan2(sin(az) * sin(d) * cos(p1), cos(d) - sin(p1) * sin(p2));

	*lat2 = p2 * 180 / M_PI;
	*lon2 = fmod(l2 * 180 / M_PI + 540.0, 360.0) - 180.0;
	if (*lat2 > 90)
		*lat2 = 90;
	if (*lat2 < -90)
		*lat2 = -90;
}

static void
cover_trial(double lat, double lon, double r, int *ok, long *checked, int *max_ranges)
{
	udc_key_range ranges[UDC_COVER_MAX];
	int			n = udc_cover(lat, lon, r, ranges);

	if (n > *max_ranges)
		*max_ranges = n;
	for (int k = 1; k < n; k++)
		if (ranges[k].lo <= ranges[k - 1].hi)
		{
			printf("# ranges overlap or unsorted at (%f,%f) r=%f\n", lat, lon, r);
			*ok = 0;
		}
	for (int j = 0; j < 60 && *ok; j++)
	{
		double		lat2,
					lon2,
					d;

		/* aim at the rim: most misses would happen there */
		offset_point(lat, lon, r * (0.95 + 0.06 * rnd()), rnd() * 2 * M_PI, &lat2, &lon2);
		d = udc_geodesic_distance(lat, lon, lat2, lon2);
		if (d < 0 || d > r)
			continue;
		(*checked)++;
		if (!covered(udc_cell_key(lat2, lon2), ranges, n))
		{
			printf("# (%.9f,%.9f) at %.6f m from (%.9f,%.9f), r=%.3f, not covered\n",
				   lat2, lon2, d, lat, lon, r);
			*ok = 0;
		}
	}
}

static void
test_cover(void)
{
	static const double radii[] = {0.5, 5, 5, 5, 20, 50, 500, 5000, 10000};
	int			ok = 1,
				max_ranges = 0;
	long		checked = 0;

	for (int i = 0; i < 20000 && ok; i++)
	{
		double		r = radii[i % 9];
		double		lat,
					lon;

		switch (i % 5)
		{
			case 0:				/* anywhere */
				lat = -90 + 180 * rnd();
				lon = -180 + 360 * rnd();
				break;
			case 1:				/* near a pole */
				lat = (rnd() < 0.5 ? -1 : 1) * (90 - rnd() * 0.2);
				lon = -180 + 360 * rnd();
				break;
			case 2:				/* near the antimeridian */
				lat = -80 + 160 * rnd();
				lon = (rnd() < 0.5 ? -1 : 1) * (180 - rnd() * 0.001);
				break;
			case 3:				/* near the equator and the prime meridian */
				lat = (rnd() - 0.5) * 0.001;
				lon = (rnd() - 0.5) * 0.001;
				break;
			default:			/* a conference hall */
				lat = 37.5536 + (rnd() - 0.5) * 0.01;
				lon = -122.2909 + (rnd() - 0.5) * 0.01;
				break;
		}
		cover_trial(lat, lon, r, &ok, &checked, &max_ranges);
	}
	/* exact poles and the antimeridian itself */
	cover_trial(90, 0, 5, &ok, &checked, &max_ranges);
	cover_trial(-90, 123, 50, &ok, &checked, &max_ranges);
	cover_trial(0, 180, 5, &ok, &checked, &max_ranges);
	cover_trial(0, -180, 5, &ok, &checked, &max_ranges);
	printf("# %ld points within the radius checked; at most %d ranges\n", checked, max_ranges);
	report(ok && checked > 100000, "covering: every point within the radius lies in a returned cell range");
	report(max_ranges <= UDC_COVER_MAX, "covering: never more ranges than UDC_COVER_MAX");
}

static void
test_cover_size(void)
{
	udc_key_range ranges[UDC_COVER_MAX];
	int			n = udc_cover(37.5536, -122.2909, 5, ranges);
	int			single = 1;

	for (int i = 0; i < n; i++)
		single &= ranges[i].lo == ranges[i].hi;
	printf("# 5 m at 37.55 N: %d single cells\n", n);
	report(single && n >= 4 && n <= 16,
		   "covering: 5 m at mid latitude is a handful of single cells (exact btree probes)");
}

/* the location rule every entry path shares (core/location_rule.c) */
static void
test_location_rule(void)
{
	const udc_location_fields *f = &udc_location_v1_fields;
	char		err[256];
	int64_t		us;
	int64_t		now = INT64_C(1700000000) * 1000000;
	int			ok;

	/* the review's case: ms * 1000 wraps to a date in 2020 when unchecked */
	ok = !udc_time_from_unix_ms(f, INT64_C(18448341820735551), &us, err, sizeof(err));
	ok &= !udc_time_from_unix_ms(f, INT64_MAX, &us, err, sizeof(err));
	ok &= !udc_time_from_unix_ms(f, INT64_MIN, &us, err, sizeof(err));
	ok &= udc_time_from_unix_ms(f, INT64_C(1600000000123), &us, err, sizeof(err)) &&
		us == INT64_C(1600000000123000);
	ok &= udc_time_from_unix_ms(f, UDC_TIME_MAX_SECONDS * 1000 + 999, &us, err, sizeof(err));
	ok &= !udc_time_from_unix_ms(f, (UDC_TIME_MAX_SECONDS + 1) * 1000, &us, err, sizeof(err));
	report(ok, "location rule: Kafka millisecond timestamps are range-checked before they are scaled");

	ok = udc_time_from_timestamp(f, UDC_TIME_MAX_SECONDS, 999999999, &us, err, sizeof(err));
	ok &= udc_time_from_timestamp(f, UDC_TIME_MIN_SECONDS, 0, &us, err, sizeof(err));
	ok &= !udc_time_from_timestamp(f, UDC_TIME_MAX_SECONDS + 1, 0, &us, err, sizeof(err));
	ok &= !udc_time_from_timestamp(f, INT64_MAX, 0, &us, err, sizeof(err));
	ok &= !udc_time_from_timestamp(f, UDC_TIME_MIN_SECONDS - 1, 0, &us, err, sizeof(err));
	ok &= !udc_time_from_timestamp(f, 0, -1, &us, err, sizeof(err));
	ok &= !udc_time_from_timestamp(f, 0, 1000000000, &us, err, sizeof(err));
	ok &= udc_time_from_pg(f, 0, &us, err, sizeof(err)) &&
		us == UDC_PG_EPOCH_UNIX_SECONDS * 1000000;
	ok &= !udc_time_from_pg(f, INT64_MAX, &us, err, sizeof(err));	/* 'infinity' */
	ok &= !udc_time_from_pg(f, INT64_MIN, &us, err, sizeof(err));	/* '-infinity' */
	ok &= !udc_time_from_pg(f, INT64_C(9223371331200000000) - 1, &us, err, sizeof(err));
	report(ok, "location rule: protobuf and PostgreSQL times convert inside 0001-01-01 .. 9999-12-31 only");

	ok = udc_check_location(f, 1, 37.5, -122.3, now + 300 * INT64_C(1000000), now, 300,
							err, sizeof(err)) == UDC_FIELD_NONE;
	ok &= udc_check_location(f, 1, 37.5, -122.3, now + 300 * INT64_C(1000000) + 1, now, 300,
							 err, sizeof(err)) == UDC_FIELD_CREATION_TIME;
	printf("# %s\n", err);
	ok &= udc_check_location(f, 1, 37.5, -122.3, now, now, INT64_MAX,
							 err, sizeof(err)) == UDC_FIELD_NONE;
	ok &= udc_check_location(f, 0, 37.5, -122.3, now, now, 300, err, sizeof(err)) == UDC_FIELD_PERSON_ID;
	ok &= udc_check_location(f, 1, 90.5, -122.3, now, now, 300, err, sizeof(err)) == UDC_FIELD_LATITUDE;
	ok &= udc_check_location(f, 1, NAN, -122.3, now, now, 300, err, sizeof(err)) == UDC_FIELD_LATITUDE;
	ok &= udc_check_location(f, 1, 37.5, 180.5, now, now, 300, err, sizeof(err)) == UDC_FIELD_LONGITUDE;
	report(ok, "location rule: person, coordinates and future skew checked in one place");
}

int
main(void)
{
	test_coordinates();
	test_distance_known();
	test_approx();
	test_morton();
	test_cover();
	test_cover_size();
	test_location_rule();
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
