-- Deterministic conference generator for the finder benchmark
-- (test/bench/10-finder.sh).  psql variables:
--   persons   attendees (2000)          booths    booths (persons / 10)
--   reports   reports per person-day    editions  yearly editions in the table
-- Each edition is a 3-day conference (2025-06-10..12 for the last edition,
-- one year earlier for each earlier one), 09:00 UTC onwards, every person
-- reporting every 120 s (+-10 s jitter).  Booths stand on a 20-column grid
-- 8 m apart (Las Vegas Convention Center); a person stays 8..15 reports
-- (16..30 min) at a booth, within +-1.5 m of its centre, then spends the
-- visit's last 2 reports walking to the next booth.  All "randomness" is
-- hashint8extended(key, salt): the same parameters give the same rows.
-- Creates udaconnect.person rows 1..persons and the unlogged staging table
-- bench.src(person_id, coordinate, creation_time) in time order (row r is
-- person r % persons + 1 at report slot r / persons).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE SCHEMA IF NOT EXISTS bench;

-- 48-bit hash, and the same as a float in [0, 1)
CREATE FUNCTION bench.h(x bigint, salt bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashint8extended(x, salt) & 281474976710655 $$;
CREATE FUNCTION bench.u(x bigint, salt bigint) RETURNS float8
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (hashint8extended(x, salt) & 281474976710655)::float8 / 281474976710656.0 $$;

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT p, 'Attendee', format('No. %s', p), format('Company %s', p % 97)
  FROM generate_series(1, :persons) p;
SELECT setval(pg_get_serial_sequence('udaconnect.person', 'id'), :persons);

CREATE UNLOGGED TABLE bench.src (person_id integer, coordinate geometry(Point, 4326), creation_time timestamptz);

INSERT INTO bench.src
SELECT p::integer,
       ST_SetSRID(ST_MakePoint(-115.1516 + x / (111320.0 * cos(radians(36.1318))), 36.1318 + y / 111320.0), 4326),
       timestamptz '2025-06-10 09:00:00+00' - make_interval(years => (:editions - 1 - e)::int) + make_interval(days => d::int)
         + make_interval(secs => k * 120 + (bench.u(xk, 6) - 0.5) * 20)
  FROM generate_series(0::bigint, :editions::bigint * 3 * :reports * :persons - 1) r,
       LATERAL (SELECT r / (3 * :reports * :persons) AS e, (r / (:reports * :persons)) % 3 AS d,
                       (r / :persons) % :reports AS k, r % :persons + 1 AS p) i,
       LATERAL (SELECT 8 + bench.h(p, 1) % 8 AS len) l,
       LATERAL (SELECT (k + bench.h(p, 2) % len) / len AS v, (k + bench.h(p, 2) % len) % len AS j,
                       ((e * 8 + d) * 100000 + p) * 1000 + k AS xk) s,
       LATERAL (SELECT bench.h(((e * 8 + d) * 100000 + p) * 100000 + v, 3) % :booths AS b0,
                       bench.h(((e * 8 + d) * 100000 + p) * 100000 + v + 1, 3) % :booths AS b1,
                       CASE WHEN j >= len - 2 THEN (j - (len - 3))::float8 / 3 ELSE 0 END AS f) b,
       LATERAL (SELECT (b0 % 20) * 8.0 + ((b1 % 20) - (b0 % 20)) * 8.0 * f + (bench.u(xk, 4) - 0.5) * 3 AS x,
                       (b0 / 20) * 8.0 + ((b1 / 20) - (b0 / 20)) * 8.0 * f + (bench.u(xk, 5) - 0.5) * 3 AS y) c;
