-- record_location, make_point, cell_key, geodesic_distance and the
-- person/location integrity rules.
SET client_min_messages = warning;
SET TimeZone = 'America/New_York';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT id AS pid FROM udaconnect.create_person('Loc', 'Tester', 'Acme') \gset

-- a valid location: x = longitude, y = latitude, time kept exactly
SELECT person_id = :pid AS right_person, ST_Y(coordinate) AS latitude, ST_X(coordinate) AS longitude,
       ST_SRID(coordinate) AS srid, creation_time AT TIME ZONE 'UTC' AS utc,
       cell = udaconnect.cell_key(37.55363, -122.290883) AS cell_ok
  FROM udaconnect.record_location(:pid, 37.55363, -122.290883, '2020-08-18 10:37:06+00');
-- creation_time defaults to now()
SELECT creation_time = now() AS defaults_to_now FROM udaconnect.record_location(:pid, 0, 0);
-- range edges are inclusive
SELECT ST_AsText(coordinate) FROM udaconnect.record_location(:pid, 90, 180, '2020-01-01Z');
SELECT ST_AsText(coordinate) FROM udaconnect.record_location(:pid, -90, -180, '2020-01-01Z');
-- out of range, NaN, infinite: refused, never wrapped
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, -106.5719566, 35.0585136)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 90.000001, 0)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 0, -180.5)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 'NaN', 0)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 0, 'Infinity')$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, '-Infinity', 0)$$, :pid));
-- NULLs name the argument
SELECT pg_temp.err($$SELECT udaconnect.record_location(NULL, 1, 1)$$);
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, NULL, 1)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, NULL)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, NULL)$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, 'infinity')$$, :pid));
-- the location rule's time range and future skew, as on every entry path
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, '-infinity')$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, '9999-12-31Z')$$, :pid)) ~ '^22023: creation_time is \d+ s in the future \(at most 300 s allowed\)$' AS year_9999_refused;
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, '0001-01-01 00:00Z BC')$$, :pid));
SELECT pg_temp.err(format($$SELECT udaconnect.record_location(%s, 1, 1, now() + interval '10 minutes')$$, :pid));
SELECT creation_time = now() + interval '4 minutes' AS within_skew
  FROM udaconnect.record_location(:pid, 1, 1, now() + interval '4 minutes');
SELECT creation_time AT TIME ZONE 'UTC' AS earliest FROM udaconnect.record_location(:pid, 1, 1, '0001-01-01 00:00Z');
-- unknown person: 23503
SELECT pg_temp.err($$SELECT udaconnect.record_location(2000000000, 1, 1)$$);
-- the same rules hold for plain INSERT and COPY into the table
SELECT pg_temp.err($$INSERT INTO udaconnect.location (person_id, coordinate) VALUES (2000000000, 'SRID=4326;POINT(1 1)')$$);
SELECT pg_temp.err(format($$INSERT INTO udaconnect.location (person_id, coordinate) VALUES (%s, 'SRID=4326;POINT(35.0585136 -106.5719566)')$$, :pid));
SELECT pg_temp.err(format($$INSERT INTO udaconnect.location (person_id, coordinate) VALUES (%s, 'SRID=4326;POINT(1 1 1)')$$, :pid));
SELECT pg_temp.err(format($$INSERT INTO udaconnect.location (person_id, coordinate) VALUES (%s, 'SRID=3857;POINT(1 1)')$$, :pid));
SELECT pg_temp.err(format($$UPDATE udaconnect.location SET person_id = 2000000000 WHERE person_id = %s$$, :pid));
-- a person with locations cannot be deleted or renumbered
SELECT pg_temp.err(format($$DELETE FROM udaconnect.person WHERE id = %s$$, :pid));
SELECT pg_temp.err(format($$UPDATE udaconnect.person SET id = 2000000001 WHERE id = %s$$, :pid));
SELECT count(*) AS locations_kept FROM udaconnect.location WHERE person_id = :pid;

-- make_point and cell_key
SELECT ST_AsEWKT(udaconnect.make_point(37.5, -122.25));
SELECT pg_temp.err($$SELECT udaconnect.make_point(NULL, 1)$$);
SELECT pg_temp.err($$SELECT udaconnect.cell_key(91, 1)$$);
SELECT udaconnect.cell_key(-90, -180) AS min_key, udaconnect.cell_key(90, 180) AS max_key;

-- geodesic_distance agrees with PostGIS's spheroid distance to well under 1 mm
SELECT bool_and(abs(udaconnect.geodesic_distance(la1, lo1, la2, lo2)
                    - ST_Distance(ST_MakePoint(lo1, la1)::geography, ST_MakePoint(lo2, la2)::geography)) < 1e-4) AS agrees
  FROM (VALUES (37.55363, -122.290883, 37.553441, -122.290524),
               (0, 179.99999, 0, -179.99999),
               (89.99999, 0, 89.99999, 180),
               (-45, 10, -45.05, 10.05),
               (10, 20, 10.00001, 20.00001)) v(la1, lo1, la2, lo2);
