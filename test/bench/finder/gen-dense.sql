-- Deterministic *dense* conference (issue 15): attendees crowd around booths
-- and report with phones of their own clocks.  Used by
-- test/bench/15-dense.sh (the finder against the PostGIS self-join) and
-- test/bench/25-encounters.sh (ingest with and without the encounter
-- maintenance).  psql variables:
--   persons       attendees (2000)         booths   booths (200)
--   days          conference days          reports  reports per person-day (270)
--   first_person  id of the first attendee (1)
-- The hall: booths 10 m apart along aisles 20 m apart, 20 booths an aisle
-- (200 booths: a 200 m x 200 m hall).  Each day from 09:00 UTC (2025-06-11 is the first day), an
-- attendee reports every 120 s (+-10 s jitter) from a phase of its own in
-- [0, 120) s, so reports of different persons are not aligned in time.  An
-- attendee stays 8..15 reports (16..30 min) at a booth, anywhere within 3 m
-- of its centre (a crowd of ~10 around each booth: two visitors of a booth
-- are within 5 m of each other ~95 % of the time), and spends the visit's
-- last two reports walking to the next booth.  So a person-day has thousands
-- of matches (another person within 5 m and 60 s), where gen.sql's
-- conference has about 1,800 over 167 reports.  All "randomness" is
-- hashint8extended(key, salt): the same parameters give the same rows.
-- Creates udaconnect.person rows first_person .. first_person + persons - 1
-- (kept if they exist) and the unlogged staging table
-- bench.src(person_id, coordinate, creation_time), filled in time order.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE SCHEMA IF NOT EXISTS bench;

-- 48-bit hash, and the same as a float in [0, 1) (as gen.sql)
CREATE OR REPLACE FUNCTION bench.h(x bigint, salt bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashint8extended(x, salt) & 281474976710655 $$;
CREATE OR REPLACE FUNCTION bench.u(x bigint, salt bigint) RETURNS float8
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (hashint8extended(x, salt) & 281474976710655)::float8 / 281474976710656.0 $$;

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT p, 'Attendee', format('No. %s', p), format('Company %s', p % 97)
  FROM generate_series(:first_person, :first_person + :persons - 1) p
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('udaconnect.person', 'id'),
              greatest((SELECT max(id) FROM udaconnect.person), 1));

DROP TABLE IF EXISTS bench.src;
CREATE UNLOGGED TABLE bench.src (person_id integer, coordinate geometry(Point, 4326), creation_time timestamptz);

INSERT INTO bench.src
SELECT (:first_person + p)::integer,
       ST_SetSRID(ST_MakePoint(-115.1516 + x / (111320.0 * cos(radians(36.1318))), 36.1318 + y / 111320.0), 4326),
       t
  FROM generate_series(0::bigint, :days::bigint * :reports * :persons - 1) r,
       LATERAL (SELECT r / (:reports * :persons) AS d, (r / :persons) % :reports AS k, r % :persons AS p) i,
       LATERAL (SELECT 8 + bench.h(p, 1) % 8 AS len, (d * 100000 + p) * 1000 + k AS xk) l,
       LATERAL (SELECT (k + bench.h(p, 2) % len) / len AS v, (k + bench.h(p, 2) % len) % len AS j) s,
       LATERAL (SELECT bench.h((d * 100000 + p) * 100000 + v, 3) % :booths AS b0,
                       bench.h((d * 100000 + p) * 100000 + v + 1, 3) % :booths AS b1,
                       CASE WHEN j >= len - 2 THEN (j - (len - 3))::float8 / 3 ELSE 0 END AS f,
                       3.0 * sqrt(bench.u(xk, 4)) AS rad, 2 * pi() * bench.u(xk, 5) AS ang) b,
       LATERAL (SELECT (b0 % 20) * 10.0 + ((b1 % 20) - (b0 % 20)) * 10.0 * f + rad * cos(ang) AS x,
                       (b0 / 20) * 20.0 + ((b1 / 20) - (b0 / 20)) * 20.0 * f + rad * sin(ang) AS y,
                       timestamptz '2025-06-11 09:00:00+00' + make_interval(days => d::int)
                         + make_interval(secs => bench.u(p, 7) * 120 + k * 120 + (bench.u(xk, 6) - 0.5) * 20) AS t) c
 ORDER BY t, p;
