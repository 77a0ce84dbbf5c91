-- Deterministic test data for the randomised oracle test (test/suites/30-oracle.sh).
-- Run in a scratch database that has the extension:  psql -v seed=TEXT -f gen.sql
-- Every "random" number is u(key) = md5(seed/key) mapped to [0, 1): the data
-- depends only on the seed, never on plan order or random().
--
-- Persons (index -> id in oracle.people): 1..4 are the subjects P whose
-- connections the scenarios ask for; 5..38 are the others; 39 has no points;
-- 40 has points only in 2019.  The subjects' points (anchors) come in kinds:
--   thr      random places; partners at m +- 1..5 mm, m +- 2..5 cm and
--            random distances, for m in 0.5, 5, 50, 500, 5000, 10000 (the cap)
--   pole     lat +-90 (any longitude: all the same point), +-89.9999, +-89.99999
--   anti     lon +-180, +-179.99999, +-179.9999999; partners east/west across
--            the antimeridian, and at the mirrored longitude
--   equator  lat 0 and +-1e-7; partners north/south across it
--   day      creation times 23:59:59.999999 and 00:00:00 UTC around every day
--            boundary of 2024-02-29..2024-03-05; partners +-1 us around them
--   win      partners at 0..0.2 m with |dt| = 0, 0.5 s, 0.5 s + 1 us,
--            60 s - 1 us, 60 s, 60 s + 1 us, 3600 s, 3600 s + 1 us; the
--            subject has two more points next to the anchor (30 s apart), so
--            one partner qualifies through several of P's points
--   mine     the subject's own points next to its anchors (never in the output)
-- Partners belong to a random other person (the other subjects included).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT set_config('oracle.seed', :'seed', false) AS oracle_seed \gset
CREATE SCHEMA oracle;

CREATE FUNCTION oracle.u(k text) RETURNS float8 LANGUAGE sql STABLE AS $$
  SELECT ('x' || substr(md5(current_setting('oracle.seed') || '/' || k), 1, 13))::bit(52)::bigint
         / 4503599627370496.0::float8 $$;

-- the point at distance d (metres, on the spheroid) and azimuth az (radians)
-- from (lat, lon), longitude folded back into [-180, 180]
CREATE FUNCTION oracle.proj(lat float8, lon float8, d float8, az float8,
                            OUT plat float8, OUT plon float8) LANGUAGE sql IMMUTABLE AS $$
  SELECT greatest(-90, least(90, ST_Y(g))),
         CASE WHEN ST_X(g) > 180 THEN ST_X(g) - 360 WHEN ST_X(g) < -180 THEN ST_X(g) + 360 ELSE ST_X(g) END
    FROM (SELECT ST_Project(ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, d, az)::geometry AS g) s $$;

-- a random time in 2024-03-01 .. 2024-03-04 (UTC), microsecond resolution
CREATE FUNCTION oracle.rtime(k text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
  SELECT timestamptz '2024-03-01 00:00:00+00'
         + make_interval(secs => round(oracle.u(k) * 4 * 86400 * 1e6) / 1e6) $$;

-- a random other person (index 1..38, not subj)
CREATE FUNCTION oracle.other(subj int, k text) RETURNS int LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN i >= subj THEN i + 1 ELSE i END
    FROM (SELECT 1 + floor(oracle.u(k) * 37)::int AS i) s $$;

CREATE TABLE oracle.people (idx int PRIMARY KEY, id int NOT NULL);
INSERT INTO oracle.people
SELECT i, (udaconnect.create_person('Oracle' || i, 'Person ' || i, 'Company ' || (i % 7))).id
  FROM generate_series(1, 40) i;

-- The points' ids become the location ids: they start after the rows the
-- database holds already (none in a fresh install; the sample and a synthetic
-- day in one made by test/extension/updated-db.sh), so the same seed gives
-- the same points, ids shifted alike, in either.
SELECT coalesce(max(id), 0) + 1 AS first_pt_id FROM udaconnect.location \gset
CREATE TABLE oracle.pt (
  id bigint GENERATED ALWAYS AS IDENTITY (START WITH :first_pt_id) PRIMARY KEY,
  kind text NOT NULL, person_idx int NOT NULL, lat float8 NOT NULL, lon float8 NOT NULL,
  t timestamptz NOT NULL, note text);

-- anchors: (subj, kind, n, lat, lon, t, m) -- m: the meters the partners aim at
CREATE TABLE oracle.anchor (
  aid int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subj int, kind text, n int, lat float8, lon float8, t timestamptz, m float8);

-- thr: 25 anchors per subject and meters value
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'thr', i, oracle.u(k || 'lat') * 170 - 85, oracle.u(k || 'lon') * 360 - 180, oracle.rtime(k || 't'), m
  FROM generate_series(1, 4) s, unnest('{0.5,5,50,500,5000,10000}'::float8[]) m, generate_series(1, 25) i,
       LATERAL (SELECT format('thr/%s/%s/%s', s, m, i)) kk(k);

-- pole: 30 per subject
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'pole', i,
       ('{90,-90,89.9999,-89.9999,89.99999,-89.99999}'::float8[])[1 + floor(oracle.u(k || 'lat') * 6)::int],
       CASE WHEN i % 3 = 0 THEN ('{0,180,-180,90,-45.5}'::float8[])[1 + floor(oracle.u(k || 'lon0') * 5)::int]
            ELSE oracle.u(k || 'lon') * 360 - 180 END,
       oracle.rtime(k || 't'),
       ('{0.5,5,50}'::float8[])[1 + floor(oracle.u(k || 'm') * 3)::int]
  FROM generate_series(1, 4) s, generate_series(1, 30) i, LATERAL (SELECT format('pole/%s/%s', s, i)) kk(k);

-- anti: 30 per subject
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'anti', i,
       CASE WHEN i % 4 = 0 THEN 0 WHEN i % 4 = 1 THEN 89.99 ELSE oracle.u(k || 'lat') * 140 - 70 END,
       ('{179.99999,-179.99999,180,-180,179.9999999,-179.9999999}'::float8[])[1 + floor(oracle.u(k || 'lon') * 6)::int],
       oracle.rtime(k || 't'),
       ('{0.5,5,50,500}'::float8[])[1 + floor(oracle.u(k || 'm') * 4)::int]
  FROM generate_series(1, 4) s, generate_series(1, 30) i, LATERAL (SELECT format('anti/%s/%s', s, i)) kk(k);

-- equator: 20 per subject
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'equator', i,
       ('{0,1e-7,-1e-7}'::float8[])[1 + floor(oracle.u(k || 'lat') * 3)::int],
       oracle.u(k || 'lon') * 360 - 180,
       oracle.rtime(k || 't'),
       ('{0.5,5,50,500,5000}'::float8[])[1 + floor(oracle.u(k || 'm') * 5)::int]
  FROM generate_series(1, 4) s, generate_series(1, 20) i, LATERAL (SELECT format('eq/%s/%s', s, i)) kk(k);

-- day: both sides of every day boundary 2024-02-29 .. 2024-03-05, per subject
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'day', i,
       oracle.u(k || 'lat') * 170 - 85, oracle.u(k || 'lon') * 360 - 180,
       (date '2024-02-29' + (i / 2))::timestamp AT TIME ZONE 'UTC'
         - CASE WHEN i % 2 = 0 THEN interval '1 microsecond' ELSE interval '0' END,
       5
  FROM generate_series(1, 4) s, generate_series(0, 13) i, LATERAL (SELECT format('day/%s/%s', s, i)) kk(k);

-- win: 10 per subject
INSERT INTO oracle.anchor (subj, kind, n, lat, lon, t, m)
SELECT s, 'win', i, oracle.u(k || 'lat') * 170 - 85, oracle.u(k || 'lon') * 360 - 180, oracle.rtime(k || 't'), 0.5
  FROM generate_series(1, 4) s, generate_series(1, 10) i, LATERAL (SELECT format('win/%s/%s', s, i)) kk(k);

-- the anchors themselves (the subjects' points)
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT kind, subj, lat, lon, t, format('anchor %s', aid) FROM oracle.anchor ORDER BY aid;

-- partners near the threshold: m +- 1, 5 mm and +- 2, 5 cm, plus 2 random
-- distances in [0, 1.5 m]; times within +-120 s of the anchor
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT a.kind, oracle.other(a.subj, k || 'p'), p.plat, p.plon,
       a.t + make_interval(secs => round((oracle.u(k || 'dt') - 0.5) * 240 * 1e6) / 1e6),
       format('partner of anchor %s at %s m', a.aid, d)
  FROM oracle.anchor a, generate_series(1, 10) j,
       LATERAL (SELECT format('p/%s/%s', a.aid, j)) kk(k),
       LATERAL (SELECT CASE WHEN j <= 8 THEN a.m + ('{-0.05,-0.02,-0.005,-0.001,0.001,0.005,0.02,0.05}'::float8[])[j]
                            ELSE oracle.u(k || 'd') * 1.5 * a.m END) dd(d),
       LATERAL oracle.proj(a.lat, a.lon, greatest(d, 0),
                           CASE WHEN a.kind = 'anti' THEN (CASE WHEN j % 2 = 0 THEN 0.5 ELSE 1.5 END) * pi() + (oracle.u(k || 'az') - 0.5) * 0.2
                                WHEN a.kind = 'equator' THEN (CASE WHEN j % 2 = 0 THEN 0 ELSE 1 END) * pi() + (oracle.u(k || 'az') - 0.5) * 0.2
                                ELSE oracle.u(k || 'az') * 2 * pi() END) p
 WHERE a.kind IN ('thr', 'pole', 'anti', 'equator');

-- the same point written differently: the pole at another longitude, +-180
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT a.kind, oracle.other(a.subj, format('same/%s', a.aid)),
       a.lat, CASE WHEN a.kind = 'pole' THEN oracle.u(format('same/%s/lon', a.aid)) * 360 - 180 ELSE -a.lon END,
       a.t + make_interval(secs => round((oracle.u(format('same/%s/dt', a.aid)) - 0.5) * 240 * 1e6) / 1e6),
       format('anchor %s written differently', a.aid)
  FROM oracle.anchor a
 WHERE (a.kind = 'pole' AND abs(a.lat) = 90) OR (a.kind = 'anti' AND abs(a.lon) >= 179.99999);

-- the subject's own points next to its anchors (never a connection)
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT 'mine', a.subj, p.plat, p.plon, a.t + interval '1 second', format('own point next to anchor %s', a.aid)
  FROM oracle.anchor a, LATERAL oracle.proj(a.lat, a.lon, a.m * 0.3, 1.0) p
 WHERE a.kind IN ('thr', 'pole', 'anti') AND a.n % 5 = 0;

-- day: partners 0.1 m away at dt = 0, -1 us, +1 us
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT 'day', oracle.other(a.subj, format('day/%s/%s', a.aid, j)), p.plat, p.plon,
       a.t + make_interval(secs => j * 1e-6), format('anchor %s %s us', a.aid, j)
  FROM oracle.anchor a, generate_series(-1, 1) j, LATERAL oracle.proj(a.lat, a.lon, 0.1, j) p
 WHERE a.kind = 'day';

-- win: partners at 0..0.2 m with the listed time differences
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT 'win', oracle.other(a.subj, format('win/%s/%s', a.aid, dt)), p.plat, p.plon,
       a.t + make_interval(secs => dt), format('anchor %s dt %s s', a.aid, dt)
  FROM oracle.anchor a,
       unnest('{0,0.5,-0.5,0.500001,-0.500001,59.999999,60,-60,60.000001,-60.000001,3600,-3600,3600.000001,-3600.000001}'::numeric[]) dt,
       LATERAL oracle.proj(a.lat, a.lon, oracle.u(format('win/%s/%s/d', a.aid, dt)) * 0.2,
                           oracle.u(format('win/%s/%s/az', a.aid, dt)) * 2 * pi()) p
 WHERE a.kind = 'win';
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT 'win', a.subj, p.plat, p.plon, a.t + make_interval(secs => j * 30), format('anchor %s own %s', a.aid, j)
  FROM oracle.anchor a, unnest('{-1,1}'::int[]) j, LATERAL oracle.proj(a.lat, a.lon, 0.05, j) p
 WHERE a.kind = 'win';

-- person 40: points in 2019 only, at some anchors' places
INSERT INTO oracle.pt (kind, person_idx, lat, lon, t, note)
SELECT 'old', 40, a.lat, a.lon, a.t - interval '1 year', 'a year earlier'
  FROM oracle.anchor a WHERE a.aid % 7 = 0;

INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time)
SELECT pt.id, pe.id, ST_SetSRID(ST_MakePoint(pt.lon, pt.lat), 4326), pt.t
  FROM oracle.pt JOIN oracle.people pe ON pe.idx = pt.person_idx
 ORDER BY pt.id;

-- the oracle's own index (this scratch database only)
CREATE INDEX oracle_location_geog_idx ON udaconnect.location USING gist ((coordinate::geography));
ANALYZE udaconnect.location;

-- scenarios: every subject x meters x window x date range, session TimeZone
-- cycling through zones with non-whole-hour offsets
CREATE TABLE oracle.scenario (
  n int PRIMARY KEY, subj int, s date, e date, m float8, w interval, tz text);
INSERT INTO oracle.scenario
SELECT n, subj, s, e, m, w,
       ('{Pacific/Chatham,America/St_Johns,Asia/Kathmandu,UTC,Pacific/Kiritimati,America/Los_Angeles}'::text[])[1 + n % 6]
  FROM (SELECT row_number() OVER (ORDER BY subj, m, wi, ri)::int AS n, *
          FROM generate_series(1, 4) subj,
               unnest('{0.5,5,50,500,5000}'::float8[]) m,
               unnest(ARRAY[NULL, '60 seconds', '0.5 seconds']::interval[]) WITH ORDINALITY ww(w, wi),
               (VALUES (1, date '2024-03-01', date '2024-03-04'), (2, '2024-03-02', '2024-03-02'),
                       (3, '2024-03-03', '2024-03-05')) rr(ri, s, e)) x;
-- a few more: zero and one-hour windows, one day ending at a boundary, the
-- person without points, the person with 2019 points only, a range without data
INSERT INTO oracle.scenario
SELECT (SELECT max(n) FROM oracle.scenario) + row_number() OVER (), subj, s, e, m, w::interval, tz
  FROM (VALUES (1, date '2024-03-01', date '2024-03-04', 0.5::float8, '0'::text, 'Pacific/Chatham'),
               (2, '2024-03-01', '2024-03-04', 0.5, '0', 'UTC'),
               (3, '2024-03-01', '2024-03-04', 0.5, '1 hour', 'America/St_Johns'),
               (4, '2024-03-01', '2024-03-04', 0.5, '1 hour', 'Asia/Kathmandu'),
               (1, '2024-03-04', '2024-03-04', 5, NULL, 'Pacific/Kiritimati'),
               (2, '2024-02-29', '2024-02-29', 5, NULL, 'Pacific/Chatham'),
               (3, '2024-03-05', '2024-03-05', 5, '60 seconds', 'America/St_Johns'),
               (4, '2024-02-01', '2024-03-31', 50, '00:00:00.000001', 'UTC'),
               (39, '2024-03-01', '2024-03-04', 5000, NULL, 'Pacific/Chatham'),
               (40, '2024-03-01', '2024-03-04', 5000, NULL, 'UTC'),
               (40, '2023-03-01', '2023-03-04', 5000, NULL, 'America/St_Johns'),
               (1, '2019-01-01', '2019-12-31', 5, NULL, 'UTC'),
               (1, '2024-03-01', '2024-03-04', 10000, NULL, 'Asia/Kathmandu'),
               (2, '2024-03-01', '2024-03-04', 10000, NULL, 'UTC'),
               (3, '2024-03-02', '2024-03-02', 10000, '60 seconds', 'Pacific/Chatham'),
               (4, '2024-03-03', '2024-03-05', 10000, '0.5 seconds', 'America/St_Johns'),
               (1, '2024-03-01', '2024-03-04', 7.25, '01:00:00', 'Pacific/Chatham'),
               (2, '2024-03-01', '2024-03-04', 0.05, NULL, 'America/St_Johns')) v(subj, s, e, m, w, tz);
ANALYZE oracle.scenario;
