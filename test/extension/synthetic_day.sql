-- A synthetic conference day for the update-with-data tests (issue 16),
-- loaded by test/extension/updated-db.sh after the sample data.  It uses only
-- what every shipped version has (create_person, make_point, a plain INSERT
-- into location), so it loads into an installed 1.0 as well as into 1.5.
--
-- 36 persons of the company 'Synthetic Day Ltd' on 2020-08-20 (UTC), a day
-- the sample does not touch:
--   * persons 1..35 visit one booth of 8 (40 m apart) every hour and report
--     5 times there, 120 s apart, from hh:00:00 UTC + (i - 1) % 10 seconds
--     (person 1 exactly at midnight), each time within a 3 m x 3 m square
--     around the booth's centre.  So two persons at the same booth in the
--     same hour and report slot are at most 4.25 m and 9 s apart (a
--     connection at 5 m and 60 s; consecutive slots chain into encounters of
--     up to 5 matches, 120 s < encounter_gap), any other two points at least
--     37 m or 111 s apart: no pair is near a threshold.
--   * persons 1..4 report once more at 23:59:59.999999 UTC at booth 0: the
--     last microsecond of the day, connected to each other.
--   * person 36 reports as often 1.1 km away: never connected.
-- 4324 locations.  Deterministic: every "random" number is derived from md5
-- of a fixed key, never random(); person and location ids come from the
-- sequences, so they depend only on what was loaded before (the sample).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.syn_u(k text) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
  SELECT ('x' || substr(md5('udaconnect-synthetic-day/' || k), 1, 13))::bit(52)::bigint
         / 4503599627370496.0::float8 $$;

CREATE TEMP TABLE syn_person AS
SELECT i, (udaconnect.create_person('Synthetic', format('Day %s', i), 'Synthetic Day Ltd')).id
  FROM generate_series(1, 36) i ORDER BY i;

-- (person index, hour h, slot k) -> booth 0..7, or -1 for the loner
CREATE TEMP TABLE syn_point AS
SELECT sp.id AS person_id, i, k,
       timestamptz '2020-08-20 00:00:00+00' + make_interval(secs => (k / 5) * 3600 + (k % 5) * 120 + (i - 1) % 10) AS t,
       CASE WHEN i = 36 THEN -1 ELSE floor(pg_temp.syn_u(format('booth/%s/%s', i, k / 5)) * 8)::int END AS booth,
       pg_temp.syn_u(format('dy/%s/%s', i, k)) - 0.5 AS dy,
       pg_temp.syn_u(format('dx/%s/%s', i, k)) - 0.5 AS dx
  FROM syn_person sp, generate_series(0, 119) k
UNION ALL
SELECT sp.id, i, 120, timestamptz '2020-08-20 23:59:59.999999+00', 0,
       pg_temp.syn_u(format('dy/%s/last', i)) - 0.5, pg_temp.syn_u(format('dx/%s/last', i)) - 0.5
  FROM syn_person sp WHERE i <= 4;

-- booth b's centre: 37.7842 N, -122.4016 E + b * 40 m east; 3 m squares
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT person_id,
       udaconnect.make_point(37.7842 + CASE WHEN booth < 0 THEN 0.01 ELSE 0 END + dy * 3 / 111320.0,
                             -122.4016 + (greatest(booth, 0) * 40 + dx * 3) / (111320.0 * cos(radians(37.7842)))),
       t
  FROM syn_point
 ORDER BY t, i;

DROP TABLE syn_point;
DROP TABLE syn_person;
