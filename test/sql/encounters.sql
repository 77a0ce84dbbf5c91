-- Encounters (issue 15; 50-encounters.sql, 70-encounters-http.sql) on
-- hand-made cases: what a match is (5 m, 60 s, both boundaries), how matches
-- chain (gap 5 min), late points that extend, start in the past or bridge,
-- places, the closest match, encounters(), api_encounters and
-- api_encounter_changes per caller, and what deleting, moving, erasing and
-- the retention sweep do.  After each step the maintained rows of these
-- persons are compared with what encounters_rebuild() makes of the same
-- locations (in a rolled-back subtransaction, so nothing else changes).
--
-- The settings are the defaults (PGC_SIGHUP: a session cannot change them).
-- Persons 1501..1512 and locations 1500001.. get explicit ids, all on
-- 2001-02-03 UTC around (-33.86, 151.2), where no other test has points;
-- encounter ids and versions come from sequences the other tests also
-- advance, so they are never printed: only compared with each other.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- the answer of one query as text, 'NULL' for NULL / no row, or its error
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- a point n metres north and e metres east of the base (-33.86, 151.2);
-- metres per degree measured with the extension's own geodesic distance
CREATE FUNCTION pg_temp.pt(n float8, e float8) RETURNS geometry LANGUAGE sql AS $$
    SELECT udaconnect.make_point(
        -33.86 + n / (udaconnect.geodesic_distance(-33.86, 151.2, -33.8601, 151.2) / 1e-4),
        151.2 + e / (udaconnect.geodesic_distance(-33.86, 151.2, -33.86, 151.2001) / 1e-4)) $$;
CREATE FUNCTION pg_temp.t(hms text) RETURNS timestamptz LANGUAGE sql AS $$
    SELECT ('2001-02-03 ' || hms || 'Z')::timestamptz $$;
CREATE FUNCTION pg_temp.hms(t timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT replace(to_char(t AT TIME ZONE 'UTC', 'HH24:MI:SS.US'), '.000000', '') $$;
CREATE FUNCTION pg_temp.name(p integer) RETURNS text LANGUAGE sql AS $$
    SELECT first_name FROM udaconnect.person WHERE id = p $$;
-- the encounters of persons 1501..1512, every column but id and version;
-- the position as metres from the base, and whether it is the midpoint of
-- the closest match (whose distance is min_distance_m)
CREATE FUNCTION pg_temp.enc() RETURNS TABLE (pair text, span text, matches bigint, min_m numeric,
                                             place text, places text, north_m numeric, east_m numeric,
                                             closest text, mid boolean)
LANGUAGE sql AS $$
    SELECT pg_temp.name(x.person_a) || '-' || pg_temp.name(x.person_b),
           pg_temp.hms(x.started_at) || '..' || pg_temp.hms(x.ended_at),
           x.matches, round(x.min_distance_m::numeric, 3),
           (SELECT p.name FROM udaconnect.place p WHERE p.id = x.place_id),
           (SELECT string_agg(p.name || ':' || u.n, ' ' ORDER BY u.i)
              FROM unnest(x.place_ids, x.place_matches) WITH ORDINALITY u(id, n, i)
              JOIN udaconnect.place p ON p.id = u.id),
           round(udaconnect.geodesic_distance(-33.86, 151.2, x.latitude, 151.2)::numeric
                 * sign(x.latitude + 33.86)::numeric, 1),
           round(udaconnect.geodesic_distance(-33.86, 151.2, -33.86, x.longitude)::numeric
                 * sign(x.longitude - 151.2)::numeric, 1),
           -- record_location's rows get ids from the sequence
           concat_ws('/', CASE WHEN x.closest_a >= 1500000 THEN x.closest_a::text ELSE 'recorded' END,
                          CASE WHEN x.closest_b >= 1500000 THEN x.closest_b::text ELSE 'recorded' END),
           (SELECT x.latitude = (ST_Y(a.coordinate) + ST_Y(b.coordinate)) / 2
               AND x.longitude = (ST_X(a.coordinate) + ST_X(b.coordinate)) / 2
               AND abs(x.min_distance_m - udaconnect.geodesic_distance(ST_Y(a.coordinate), ST_X(a.coordinate),
                                                                       ST_Y(b.coordinate), ST_X(b.coordinate))) < 1e-6
               AND a.person_id = x.person_a AND b.person_id = x.person_b
              FROM udaconnect.location a, udaconnect.location b
             WHERE a.id = x.closest_a AND b.id = x.closest_b)
      FROM udaconnect.encounter x
     WHERE x.person_a BETWEEN 1501 AND 1512
     ORDER BY x.person_a, x.person_b, x.started_at
$$;
-- 'equal', or the rows of persons 1501..1512 that differ from what
-- encounters_rebuild('-infinity', 'infinity') makes of the same locations
-- (compared on every column but id and version; the rebuild is undone)
CREATE FUNCTION pg_temp.vs_rebuild() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    diff text;
BEGIN
    BEGIN
        CREATE TEMP TABLE enc_kept AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1501 AND 1512;
        PERFORM udaconnect.encounters_rebuild('-infinity', 'infinity');
        CREATE TEMP TABLE enc_rebuilt AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1501 AND 1512;
        SELECT string_agg(d.side || ' ' || d.r, '; ' ORDER BY d.r, d.side) INTO diff
          FROM (SELECT 'kept' AS side, k::text AS r FROM (SELECT * FROM enc_kept EXCEPT ALL SELECT * FROM enc_rebuilt) k
                UNION ALL
                SELECT 'rebuilt', b::text FROM (SELECT * FROM enc_rebuilt EXCEPT ALL SELECT * FROM enc_kept) b) d;
        RAISE EXCEPTION USING ERRCODE = 'UDC01', MESSAGE = coalesce(diff, 'equal');
    EXCEPTION WHEN SQLSTATE 'UDC01' THEN
        GET STACKED DIAGNOSTICS diff = MESSAGE_TEXT;
    END;
    RETURN diff;
END $$;

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT 1500 + i, n, 'Enc', 'Encounters'
  FROM unnest(ARRAY['Ann', 'Bob', 'Cat', 'Dan', 'Eve', 'Fox', 'Gus', 'Hal', 'Ivy', 'Jay', 'Kim', 'Lou'])
       WITH ORDINALITY AS u(n, i);
-- the settings as the maintenance reads them (these calls also load the
-- library where it is not preloaded)
SELECT udaconnect.encounter_distance() AS distance_m, udaconnect.encounter_window() AS window,
       udaconnect.encounter_gap() AS gap;

-- Places, before any point (an encounter takes the places there are when its
-- matches are added): two booths of radius 3 m 20 m apart, 1000 m east,
-- inside a hall of radius 60 m
SELECT name, kind FROM udaconnect.create_place_circle('Coffee', 'booth', ST_Y(pg_temp.pt(0, 1000)), ST_X(pg_temp.pt(0, 1000)), 3);
SELECT name, kind FROM udaconnect.create_place_circle('Robots', 'booth', ST_Y(pg_temp.pt(0, 1020)), ST_X(pg_temp.pt(0, 1020)), 3);
SELECT name, kind FROM udaconnect.create_place_circle('Hall 9', 'room', ST_Y(pg_temp.pt(0, 1010)), ST_X(pg_temp.pt(0, 1010)), 60);

-- ---------------------------------------------------------------------------
-- One match: Ann and Bob 2 m apart, 20 s apart (COPY)
-- ---------------------------------------------------------------------------
COPY udaconnect.location (id, person_id, coordinate, creation_time) FROM stdin;
1500001	1501	SRID=4326;POINT(151.2 -33.86)	2001-02-03 08:00:00+00
\.
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500002, 1502, pg_temp.pt(2, 0), pg_temp.t('08:00:20'));
SELECT * FROM pg_temp.enc();

-- ---------------------------------------------------------------------------
-- Chaining, 100 m east: Ann and Cat meet at 09:00 and 09:04 (4 min: one
-- encounter) and 09:10 (6 min after: another).  Ann and Dan, 200 m east, at
-- 10:00 and exactly the gap later, 10:05 (one), then 10:10:00.000001 (5 min
-- and 1 us after: another).
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500011, 1501, pg_temp.pt(0, 100), pg_temp.t('09:00')),
    (1500012, 1503, pg_temp.pt(1, 100), pg_temp.t('09:00')),
    (1500013, 1501, pg_temp.pt(0, 100), pg_temp.t('09:04')),
    (1500014, 1503, pg_temp.pt(1, 100), pg_temp.t('09:04')),
    (1500015, 1501, pg_temp.pt(0, 100), pg_temp.t('09:10')),
    (1500016, 1503, pg_temp.pt(1, 100), pg_temp.t('09:10')),
    (1500021, 1501, pg_temp.pt(0, 200), pg_temp.t('10:00')),
    (1500022, 1504, pg_temp.pt(1, 200), pg_temp.t('10:00')),
    (1500023, 1501, pg_temp.pt(0, 200), pg_temp.t('10:05')),
    (1500024, 1504, pg_temp.pt(1, 200), pg_temp.t('10:05')),
    (1500025, 1501, pg_temp.pt(0, 200), pg_temp.t('10:10:00.000001')),
    (1500026, 1504, pg_temp.pt(1, 200), pg_temp.t('10:10:00.000001'));
SELECT * FROM pg_temp.enc() WHERE pair IN ('Ann-Cat', 'Ann-Dan');

-- ---------------------------------------------------------------------------
-- The window, 300 m east: Bob at 11:00, Cat exactly 60 s later (a match);
-- Bob at 11:30, Dan 60.000001 s later (none).  The distance, 400 m east:
-- Eve and Fox 4.999 m apart (a match), Eve and Gus 5.001 m apart (none).
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500031, 1502, pg_temp.pt(0, 300), pg_temp.t('11:00')),
    (1500032, 1503, pg_temp.pt(1, 300), pg_temp.t('11:01')),
    (1500033, 1502, pg_temp.pt(0, 300), pg_temp.t('11:30')),
    (1500034, 1504, pg_temp.pt(1, 300), pg_temp.t('11:31:00.000001')),
    (1500041, 1505, pg_temp.pt(0, 400), pg_temp.t('12:00')),
    (1500042, 1506, pg_temp.pt(4.999, 400), pg_temp.t('12:00')),
    (1500043, 1505, pg_temp.pt(0, 400), pg_temp.t('12:30')),
    (1500044, 1507, pg_temp.pt(5.001, 400), pg_temp.t('12:30'));
SELECT pg_temp.name(l.person_id) AS who,
       round(udaconnect.geodesic_distance(ST_Y(e.coordinate), ST_X(e.coordinate), ST_Y(l.coordinate), ST_X(l.coordinate))::numeric, 4) AS m_from_eve
  FROM udaconnect.location e, udaconnect.location l
 WHERE e.id = 1500041 AND l.id IN (1500042, 1500044) ORDER BY l.id;
SELECT * FROM pg_temp.enc() WHERE pair IN ('Bob-Cat', 'Bob-Dan', 'Eve-Fox', 'Eve-Gus');
SELECT pg_temp.vs_rebuild() AS after_definition;

-- ---------------------------------------------------------------------------
-- Late points, 500 m east.  Ann and Bob meet at 13:00, 13:02, 13:04; Ann is
-- there at 13:08 too, Bob's 13:08 point arrives last: it extends the
-- encounter (same id).  Cat and Dan meet at 14:00; Cat was there at 07:00,
-- and Dan's 07:00 point arrives late: an encounter in the past.  Eve and Fox
-- meet at 15:00 and 15:02 and (8 min later) 15:10 and 15:12; Eve was there at
-- 15:06, Fox's 15:06 point arrives late: it bridges both into one.
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500051, 1501, pg_temp.pt(0, 500), pg_temp.t('13:00')),
    (1500052, 1502, pg_temp.pt(3, 500), pg_temp.t('13:00')),
    (1500053, 1501, pg_temp.pt(0, 500), pg_temp.t('13:02')),
    (1500054, 1502, pg_temp.pt(3, 500), pg_temp.t('13:02')),
    (1500055, 1501, pg_temp.pt(0, 500), pg_temp.t('13:04')),
    (1500056, 1502, pg_temp.pt(3, 500), pg_temp.t('13:04')),
    (1500057, 1501, pg_temp.pt(0, 500), pg_temp.t('13:08')),
    (1500061, 1503, pg_temp.pt(0, 510), pg_temp.t('07:00')),
    (1500062, 1503, pg_temp.pt(0, 510), pg_temp.t('14:00')),
    (1500063, 1504, pg_temp.pt(2, 510), pg_temp.t('14:00:30')),
    -- 15:10 and 15:12 first: the encounter they make gets the lower id
    (1500075, 1505, pg_temp.pt(0, 520), pg_temp.t('15:10')),
    (1500076, 1506, pg_temp.pt(1, 520), pg_temp.t('15:10')),
    (1500077, 1505, pg_temp.pt(0, 520), pg_temp.t('15:12')),
    (1500078, 1506, pg_temp.pt(1, 520), pg_temp.t('15:12'));
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500071, 1505, pg_temp.pt(0, 520), pg_temp.t('15:00')),
    (1500072, 1506, pg_temp.pt(1, 520), pg_temp.t('15:00')),
    (1500073, 1505, pg_temp.pt(0, 520), pg_temp.t('15:02')),
    (1500074, 1506, pg_temp.pt(1, 520), pg_temp.t('15:02')),
    (1500079, 1505, pg_temp.pt(0, 520), pg_temp.t('15:06'));
CREATE TEMP TABLE before_late AS
    SELECT x.id, pg_temp.name(x.person_a) || '-' || pg_temp.name(x.person_b) AS pair, x.started_at, x.version
      FROM udaconnect.encounter x WHERE x.person_a BETWEEN 1501 AND 1512;
SELECT * FROM pg_temp.enc() WHERE pair IN ('Ann-Bob', 'Cat-Dan', 'Eve-Fox') AND span >= '13';
-- the late points, through record_location
SELECT l.id > 0 AS recorded FROM udaconnect.record_location(1502, ST_Y(pg_temp.pt(3, 500)), ST_X(pg_temp.pt(3, 500)), pg_temp.t('13:08')) l;
SELECT l.id > 0 AS recorded FROM udaconnect.record_location(1504, ST_Y(pg_temp.pt(2, 510)), ST_X(pg_temp.pt(2, 510)), pg_temp.t('07:00:40')) l;
SELECT l.id > 0 AS recorded FROM udaconnect.record_location(1506, ST_Y(pg_temp.pt(1, 520)), ST_X(pg_temp.pt(1, 520)), pg_temp.t('15:06')) l;
SELECT * FROM pg_temp.enc() WHERE pair IN ('Ann-Bob', 'Cat-Dan', 'Eve-Fox') AND (span >= '13' OR span < '08');
-- the extended encounter and the bridged one kept an id they had (the
-- bridge keeps the lower of the two: the one from 15:10), with a new version
SELECT e.pair, e.span, pg_temp.hms(b.started_at) AS has_the_id_of, x.version > b.version AS newer
  FROM udaconnect.encounter x
  JOIN pg_temp.enc() e ON e.pair = pg_temp.name(x.person_a) || '-' || pg_temp.name(x.person_b)
                      AND e.span = pg_temp.hms(x.started_at) || '..' || pg_temp.hms(x.ended_at)
  LEFT JOIN before_late b ON b.id = x.id
 WHERE e.pair IN ('Ann-Bob', 'Eve-Fox') AND x.started_at >= pg_temp.t('13:00')
 ORDER BY x.started_at;
-- the other one of the bridge is gone, told to both persons as merged into it
SELECT pg_temp.name(r.person_id) AS told, pg_temp.hms(b.started_at) AS removed_was_from,
       r.merged_into = (SELECT k.id FROM before_late k WHERE k.pair = 'Eve-Fox' AND k.started_at = pg_temp.t('15:10')) AS merged_into_kept,
       r.version = (SELECT x.version FROM udaconnect.encounter x WHERE x.id = r.merged_into) AS same_version
  FROM udaconnect.encounter_removed r JOIN before_late b ON b.id = r.id
 ORDER BY r.person_id;
SELECT pg_temp.vs_rebuild() AS after_late_points;

-- ---------------------------------------------------------------------------
-- Places (1000 m east): Gus and Hal meet twice at the Coffee booth (3 m,
-- then 1 m apart) and once at Robots (2 m): the place is Coffee, the
-- position the midpoint of the 1 m match.  Gus and Ivy: once at Coffee,
-- twice at Robots: Robots.  Gus and Jay: once in each booth, a tie: the
-- lower place id, Coffee.  Gus and Kim in the hall between the booths: Hall 9;
-- Gus and Lou 100 m away from it all: no place.
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500101, 1507, pg_temp.pt(-1.5, 1000), pg_temp.t('16:00')),
    (1500102, 1508, pg_temp.pt(1.5, 1000), pg_temp.t('16:00')),
    (1500103, 1507, pg_temp.pt(-0.5, 1000), pg_temp.t('16:02')),
    (1500104, 1508, pg_temp.pt(0.5, 1000), pg_temp.t('16:02')),
    (1500105, 1507, pg_temp.pt(-1, 1020), pg_temp.t('16:04')),
    (1500106, 1508, pg_temp.pt(1, 1020), pg_temp.t('16:04')),
    (1500111, 1507, pg_temp.pt(0, 1000), pg_temp.t('16:20')),
    (1500112, 1509, pg_temp.pt(2, 1000), pg_temp.t('16:20')),
    (1500113, 1507, pg_temp.pt(0, 1020), pg_temp.t('16:22')),
    (1500114, 1509, pg_temp.pt(2, 1020), pg_temp.t('16:22')),
    (1500115, 1507, pg_temp.pt(0, 1020), pg_temp.t('16:24')),
    (1500116, 1509, pg_temp.pt(2, 1020), pg_temp.t('16:24')),
    (1500121, 1507, pg_temp.pt(0, 1020), pg_temp.t('16:40')),
    (1500122, 1510, pg_temp.pt(2, 1020), pg_temp.t('16:40')),
    (1500123, 1507, pg_temp.pt(0, 1000), pg_temp.t('16:42')),
    (1500124, 1510, pg_temp.pt(2, 1000), pg_temp.t('16:42')),
    (1500131, 1507, pg_temp.pt(0, 1010), pg_temp.t('16:50')),
    (1500132, 1511, pg_temp.pt(2, 1010), pg_temp.t('16:50')),
    (1500141, 1507, pg_temp.pt(100, 1010), pg_temp.t('16:55')),
    (1500142, 1512, pg_temp.pt(102, 1010), pg_temp.t('16:55'));
SELECT * FROM pg_temp.enc() WHERE pair LIKE 'Gus-%';
SELECT pg_temp.vs_rebuild() AS after_places;

-- ---------------------------------------------------------------------------
-- A transaction that rolls back leaves no encounter (Kim and Lou)
-- ---------------------------------------------------------------------------
BEGIN;
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500151, 1511, pg_temp.pt(0, 1500), pg_temp.t('17:00'));
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500152, 1512, pg_temp.pt(1, 1500), pg_temp.t('17:00'));
SELECT * FROM pg_temp.enc() WHERE pair = 'Kim-Lou';
ROLLBACK;
SELECT count(*) AS kim_lou_after_rollback FROM pg_temp.enc() WHERE pair = 'Kim-Lou';

-- ---------------------------------------------------------------------------
-- encounters(person, from, to): those overlapping [from, to), in time order
-- ---------------------------------------------------------------------------
SELECT pg_temp.name(e.other_person_id) AS other, pg_temp.hms(e.started_at) AS started,
       pg_temp.hms(e.ended_at) AS ended, e.duration, e.matches, round(e.min_distance_m::numeric, 3) AS min_m,
       e.place_name
  FROM udaconnect.encounters(1501, '2001-02-03', '2001-02-04') e;
-- an encounter that ended exactly at `from` is in, one that starts at `to` is not
SELECT pg_temp.name(e.other_person_id) AS other, pg_temp.hms(e.started_at) AS started, pg_temp.hms(e.ended_at) AS ended
  FROM udaconnect.encounters(1501, pg_temp.t('09:04'), pg_temp.t('10:00')) e;
SELECT pg_temp.name(e.other_person_id) AS other, pg_temp.hms(e.started_at) AS started
  FROM udaconnect.encounters(1502, pg_temp.t('11:00:30'), pg_temp.t('13:00:00.000001')) e;
SELECT count(*) AS none_on_another_day FROM udaconnect.encounters(1501, '2001-02-04', '2001-02-05');
SELECT count(*) AS none_for_unknown FROM udaconnect.encounters(99999, '-infinity', 'infinity');
-- the reader (C) against the rule written in SQL, in order, for every
-- person and every window between two of the stored ends (and the infinities)
WITH ends AS (SELECT started_at AS t FROM udaconnect.encounter UNION SELECT ended_at FROM udaconnect.encounter
              UNION SELECT ended_at + interval '1 microsecond' FROM udaconnect.encounter
              UNION VALUES ('-infinity'::timestamptz), ('infinity')),
     calls AS (SELECT p.id AS person, f.t AS f, t.t AS t FROM udaconnect.person p, ends f, ends t WHERE f.t <= t.t),
     got AS (SELECT c.person, c.f, c.t, e.* FROM calls c,
                    udaconnect.encounters(c.person, c.f, c.t) WITH ORDINALITY e),
     want AS (SELECT c.person, c.f, c.t, x.id,
                     CASE WHEN x.person_a = c.person THEN x.person_b ELSE x.person_a END,
                     x.started_at, x.ended_at, x.ended_at - x.started_at, x.matches, x.min_distance_m,
                     x.place_id, pl.name, x.latitude, x.longitude, x.version,
                     row_number() OVER (PARTITION BY c.person, c.f, c.t ORDER BY x.started_at, x.id)
                FROM calls c JOIN udaconnect.encounter x
                  ON c.person IN (x.person_a, x.person_b) AND x.started_at < c.t AND x.ended_at >= c.f
                LEFT JOIN udaconnect.place pl ON pl.id = x.place_id)
SELECT (SELECT count(*) FROM calls) > 1000 AS many_calls, (SELECT count(*) FROM want) > 1000 AS many_rows,
       (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want) d) AS extra,
       (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got) d) AS missing;
SELECT count(*) AS null_args FROM udaconnect.encounters(1501, NULL, 'infinity');
-- api_encounter_json is inlined into the statements that call it (1.8: no
-- function call of its own per row, which was most of a REST page's time)
CREATE FUNCTION pg_temp.plan_names(q text, word text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        IF l LIKE '%' || word || '%' THEN RETURN true; END IF;
    END LOOP;
    RETURN false;
END $$;
SELECT NOT pg_temp.plan_names('SELECT udaconnect.api_encounter_json(x, o, pl) FROM udaconnect.encounter x
                                 LEFT JOIN udaconnect.person o ON o.id = x.person_b
                                 LEFT JOIN udaconnect.place pl ON pl.id = x.place_id',
                              'api_encounter_json') AS json_inlined;

-- ---------------------------------------------------------------------------
-- api_encounters: who may ask, its errors, its pages
-- ---------------------------------------------------------------------------
SELECT a.who, pg_temp.try(format($$SELECT json_array_length(body) || ' encounters, next ' || coalesce(next_cursor IS NOT NULL, false)
                                     FROM udaconnect.api_encounters(%s, %s, %s, NULL, NULL, 100, NULL)$$,
                                  quote_nullable(a.role), quote_nullable(a.id), a.person)) AS answer
  FROM (VALUES (1, 'Ann about Ann', 'attendee', 1501, '1501'),
               (2, 'Ann about Bob', 'attendee', 1501, '1502'),
               (3, 'Ann about nobody', 'attendee', 1501, '99999'),
               (4, 'attendee without id', 'attendee', NULL, '1501'),
               (5, 'no role', NULL, NULL, '1501'),
               (6, 'unknown role', 'speaker', 1501, '1501'),
               (7, 'organizer about Bob', 'organizer', NULL, '1502'),
               (8, 'organizer about nobody', 'organizer', NULL, '99999'),
               (9, 'organizer about NULL', 'organizer', NULL, 'NULL'))
       AS a(n, who, role, id, person) ORDER BY a.n;
SELECT a.what, pg_temp.try(format($$SELECT json_array_length(body) FROM udaconnect.api_encounters('organizer', NULL, 1501, %s, %s, %s, %s)$$,
                                  a.f, a.t, a.lim, a.cur)) AS answer
  FROM (VALUES (1, 'limit 0', 'NULL', 'NULL', '0', 'NULL'),
               (2, 'limit 1001', 'NULL', 'NULL', '1001', 'NULL'),
               (3, 'limit NULL', 'NULL', 'NULL', 'NULL', 'NULL'),
               (4, 'limit 1000', 'NULL', 'NULL', '1000', 'NULL'),
               (5, 'cursor garbage', 'NULL', 'NULL', '10', '''abc'''),
               (6, 'cursor empty', 'NULL', 'NULL', '10', ''''''),
               (7, 'cursor out of range', 'NULL', 'NULL', '10', '''9999999999999999999.1'''),
               (8, 'cursor id overflow', 'NULL', 'NULL', '10', '''0.99999999999999999999'''),
               (9, 'from after to', '''2001-02-04''', '''2001-02-03''', '10', 'NULL'),
               (10, 'from 09:04 to 10:00', '''2001-02-03 09:04Z''', '''2001-02-03 10:00Z''', '10', 'NULL'))
       AS a(n, what, f, t, lim, cur) ORDER BY a.n;
-- the JSON of one encounter (the keys and values that are not ids)
SELECT (e::jsonb - 'id' - 'version' - 'person' - 'place' - 'latitude' - 'longitude')::text AS encounter,
       (e->'person')::jsonb - 'id' AS person, (e->'place')::jsonb - 'id' AS place,
       round((e->>'latitude')::numeric, 7) AS latitude, round((e->>'longitude')::numeric, 7) AS longitude
  FROM udaconnect.api_encounters('attendee', 1507, 1507, '2001-02-03 16:00Z', '2001-02-03 16:01Z', 10, NULL) a,
       json_array_elements(a.body) e;
-- every page of Ann's encounters two at a time: the same rows as one page,
-- in the same order; the last page says there is no next one
CREATE FUNCTION pg_temp.pages(lim integer) RETURNS TABLE (page integer, started text, next boolean)
LANGUAGE plpgsql AS $$
DECLARE
    cur text := NULL;
    b json;
    n integer := 0;
BEGIN
    LOOP
        n := n + 1;
        SELECT a.body, a.next_cursor INTO b, cur
          FROM udaconnect.api_encounters('attendee', 1501, 1501, '2001-02-03', '2001-02-04', lim, cur) a;
        RETURN QUERY SELECT n, string_agg(pg_temp.hms((e->>'started_at')::timestamptz), ' ' ORDER BY o), cur IS NOT NULL
                       FROM json_array_elements(b) WITH ORDINALITY AS j(e, o);
        EXIT WHEN cur IS NULL OR n > 20;
    END LOOP;
END $$;
SELECT * FROM pg_temp.pages(2);
SELECT string_agg(started, ' ' ORDER BY page) = (SELECT started FROM pg_temp.pages(1000)) AS pages_equal_one_page
  FROM pg_temp.pages(2);

-- ---------------------------------------------------------------------------
-- api_encounter_changes: Eve's changes in (version, id) order: her three
-- encounters and the removal of the bridged one; resuming after any change
-- gives exactly the ones after it
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE eve_changes AS
    SELECT row_number() OVER () AS n, c.*
      FROM udaconnect.api_encounter_changes('attendee', 1505, 1505, 0, 0, 100) c;
SELECT n, kind, coalesce(pg_temp.hms((body->>'started_at')::timestamptz) || '..' || pg_temp.hms((body->>'ended_at')::timestamptz),
                         'merged into ' || CASE WHEN (body->>'merged_into')::bigint = (SELECT k.id FROM before_late k WHERE k.pair = 'Eve-Fox' AND k.started_at = pg_temp.t('15:10'))
                                                THEN 'the kept one' ELSE body->>'merged_into' END) AS what,
       (version, id) > lag((version, id)) OVER (ORDER BY n) AS after_previous
  FROM eve_changes WHERE kind = 'removed' OR (body->>'started_at') >= '2001-02-03T12' ORDER BY n;
SELECT bool_and(c.ok) AS resumes_exactly
  FROM (SELECT (SELECT array_agg(x.n ORDER BY x.n) FROM eve_changes x WHERE x.n > e.n)
               IS NOT DISTINCT FROM
               (SELECT array_agg(y.n ORDER BY r.o)
                  FROM udaconnect.api_encounter_changes('attendee', 1505, 1505, e.version, e.id, 100) WITH ORDINALITY r(version, id, kind, body, o)
                  JOIN eve_changes y ON (y.version, y.id, y.kind) = (r.version, r.id, r.kind)) AS ok
          FROM eve_changes e) c;
SELECT (SELECT count(*) FROM udaconnect.api_encounter_changes('organizer', NULL, 1505, 0, 0, 2)) AS limited_to_2,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes('attendee', 1505, 1506, 0, 0, 10)$$) AS eve_about_fox,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes('organizer', NULL, 1505, 0, 0, 0)$$) AS limit_0,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes('organizer', NULL, 1505, 0, 0, 10001)$$) AS limit_10001;
-- the web role may call the API functions, not the rest
SELECT p.proname, has_function_privilege('udaconnect_api', p.oid, 'EXECUTE') AS api_may
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'udaconnect'
 WHERE p.proname IN ('api_encounters', 'api_encounter_changes', 'encounters', 'encounters_rebuild',
                     'encounter_remove', 'encounter_add_range', 'encounter_lock')
 ORDER BY p.proname;

-- ---------------------------------------------------------------------------
-- Deleting and moving locations recomputes.  Ann and Jay meet at 17:00,
-- 17:04 and 17:08 (2000 m east): one encounter.  Without Jay's 17:04 point
-- it splits in two; without his 17:08 point the second one goes too.
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500201, 1501, pg_temp.pt(0, 2000), pg_temp.t('17:00')),
    (1500202, 1510, pg_temp.pt(1, 2000), pg_temp.t('17:00')),
    (1500203, 1501, pg_temp.pt(0, 2000), pg_temp.t('17:04')),
    (1500204, 1510, pg_temp.pt(1, 2000), pg_temp.t('17:04')),
    (1500205, 1501, pg_temp.pt(0, 2000), pg_temp.t('17:08')),
    (1500206, 1510, pg_temp.pt(1, 2000), pg_temp.t('17:08'));
SELECT * FROM pg_temp.enc() WHERE pair = 'Ann-Jay';
CREATE TEMP TABLE removed_mark AS SELECT coalesce(max(version), 0) AS v FROM udaconnect.encounter_removed;
DELETE FROM udaconnect.location WHERE id = 1500204;
SELECT * FROM pg_temp.enc() WHERE pair = 'Ann-Jay';
SELECT pg_temp.vs_rebuild() AS after_delete_split;
DELETE FROM udaconnect.location WHERE id = 1500206;
SELECT * FROM pg_temp.enc() WHERE pair = 'Ann-Jay';
-- each recomputed encounter was removed (not merged) and told to both
SELECT pg_temp.name(r.person_id) AS told, count(*) AS removals, count(r.merged_into) AS merged
  FROM udaconnect.encounter_removed r, removed_mark m WHERE r.version > m.v
 GROUP BY r.person_id ORDER BY r.person_id;
-- moving Jay's 17:00 point 50 m away: no encounter left; back and 1 minute
-- later, at 17:01 (a match with Ann's 17:00 point): one again
UPDATE udaconnect.location SET coordinate = pg_temp.pt(50, 2000) WHERE id = 1500202;
SELECT count(*) AS ann_jay_moved_away FROM pg_temp.enc() WHERE pair = 'Ann-Jay';
UPDATE udaconnect.location SET coordinate = pg_temp.pt(1, 2000), creation_time = pg_temp.t('17:01') WHERE id = 1500202;
SELECT * FROM pg_temp.enc() WHERE pair = 'Ann-Jay';
-- moving a point in time away from a match: Ann's 09:04 point to 12:04
-- leaves Ann and Cat 09:00 and 09:10 apart (two encounters of one match)
UPDATE udaconnect.location SET creation_time = pg_temp.t('12:04') WHERE id = 1500013;
SELECT * FROM pg_temp.enc() WHERE pair = 'Ann-Cat';
-- moving a person's point to another person: Jay's 17:01 point becomes
-- Kim's (an encounter Ann-Kim instead of Ann-Jay)
UPDATE udaconnect.location SET person_id = 1511 WHERE id = 1500202;
SELECT * FROM pg_temp.enc() WHERE pair IN ('Ann-Jay', 'Ann-Kim') AND span LIKE '17%';
SELECT pg_temp.vs_rebuild() AS after_updates;

-- ---------------------------------------------------------------------------
-- Erasure: forgetting Hal removes his encounters and tells Gus (removed, not
-- merged); Hal's own change feed goes with him
-- ---------------------------------------------------------------------------
TRUNCATE removed_mark;
INSERT INTO removed_mark SELECT coalesce(max(version), 0) FROM udaconnect.encounter_removed;
SELECT count(*) AS hal_encounters_before FROM udaconnect.encounter WHERE 1508 IN (person_a, person_b);
SELECT f.locations FROM udaconnect.forget_person(1508, 'encounters test') f;
SELECT count(*) AS hal_encounters_after FROM udaconnect.encounter WHERE 1508 IN (person_a, person_b);
SELECT pg_temp.name(r.person_id) AS told, r.merged_into IS NULL AS not_merged, count(*) AS removals
  FROM udaconnect.encounter_removed r, removed_mark m WHERE r.version > m.v
 GROUP BY 1, 2 ORDER BY 1;
SELECT count(*) AS about_hal_left FROM udaconnect.encounter_removed WHERE person_id = 1508;
SELECT c.kind, c.body->>'merged_into' AS merged_into
  FROM udaconnect.api_encounter_changes('attendee', 1507, 1507, (SELECT v FROM removed_mark), 0, 10) c;
SELECT * FROM pg_temp.enc() WHERE pair LIKE 'Gus-%';
SELECT pg_temp.vs_rebuild() AS after_erasure;

-- ---------------------------------------------------------------------------
-- Retention (rolled back): a sweep with the cutoff 12:00 removes the
-- encounters that ended before it; Ivy and Jay, who meet at 11:58 and 12:02
-- (3000 m east), keep an encounter of the 12:02 match only
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500301, 1509, pg_temp.pt(0, 3000), pg_temp.t('11:58')),
    (1500302, 1510, pg_temp.pt(1, 3000), pg_temp.t('11:58')),
    (1500303, 1509, pg_temp.pt(0, 3000), pg_temp.t('12:02')),
    (1500304, 1510, pg_temp.pt(1, 3000), pg_temp.t('12:02'));
BEGIN;
SELECT count(*) AS before_noon FROM udaconnect.encounter WHERE person_a BETWEEN 1501 AND 1512 AND ended_at < pg_temp.t('12:00');
SELECT * FROM pg_temp.enc() WHERE pair = 'Ivy-Jay';
SELECT s.locations > 0 AS swept FROM udaconnect.retention_sweep(pg_temp.t('12:00')) s;
SELECT count(*) AS before_noon FROM udaconnect.encounter WHERE person_a BETWEEN 1501 AND 1512 AND ended_at < pg_temp.t('12:00');
SELECT * FROM pg_temp.enc() WHERE pair = 'Ivy-Jay';
SELECT pg_temp.vs_rebuild() AS after_retention;
ROLLBACK;

-- encounters_rebuild's arguments
SELECT pg_temp.try($$SELECT udaconnect.encounters_rebuild('2001-02-04', '2001-02-03')$$) AS reversed,
       pg_temp.try($$SELECT udaconnect.encounters_rebuild(NULL, '2001-02-03')$$) AS no_from;
-- a rebuild of a part changes nothing that was right
SELECT udaconnect.encounters_rebuild(pg_temp.t('13:01'), pg_temp.t('15:07'), ARRAY[1505, 1502]) > 0 AS rebuilt_part;
SELECT pg_temp.vs_rebuild() AS after_partial_rebuild;
SELECT count(*) AS encounters_left FROM pg_temp.enc();

-- ---------------------------------------------------------------------------
-- The tables below SQL (rolled back): a row trigger someone puts on encounter
-- fires for the merge's writes; a partial encounter_pair_idx, which would hide
-- stored encounters from the merge, is refused with the DDL that restores it
-- ---------------------------------------------------------------------------
BEGIN;
CREATE TEMP TABLE enc_audit (op text, id bigint);
CREATE FUNCTION pg_temp.audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO enc_audit VALUES (TG_OP, coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER enc_audit AFTER INSERT OR UPDATE OR DELETE ON udaconnect.encounter
    FOR EACH ROW EXECUTE FUNCTION pg_temp.audit();
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500401, 1511, pg_temp.pt(0, 5000), pg_temp.t('18:00')),
    (1500402, 1512, pg_temp.pt(1, 5000), pg_temp.t('18:00'));
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (1500403, 1511, pg_temp.pt(0, 5000), pg_temp.t('18:03')),
    (1500404, 1512, pg_temp.pt(1, 5000), pg_temp.t('18:03'));
SELECT op, count(*) AS rows, count(DISTINCT id) AS encounters FROM enc_audit GROUP BY op ORDER BY op;
SELECT count(DISTINCT id) AS one_encounter_inserted_then_extended FROM enc_audit;
ROLLBACK;
BEGIN;
DROP INDEX udaconnect.encounter_pair_idx;
CREATE INDEX encounter_pair_idx ON udaconnect.encounter (person_a, person_b, started_at) WHERE person_a < 0;
SELECT pg_temp.try($$INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
                     VALUES (1511, pg_temp.pt(0, 6000), pg_temp.t('19:00')), (1512, pg_temp.pt(1, 6000), pg_temp.t('19:00'))$$)
       AS partial_pair_index;
ROLLBACK;
-- ---------------------------------------------------------------------------
-- The readers start their scans at from - encounter_clock.longest_us (the
-- longest span written): an encounter that began two days before the day
-- asked for is found (encounters() and api_encounters()); an earlier short
-- one of the person is not even read
-- ---------------------------------------------------------------------------
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
VALUES (1521, 'Long', 'Enc', 'Encounters'), (1522, 'Stay', 'Enc', 'Encounters'),
       (1523, 'Brief', 'Enc', 'Encounters');
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT p, pg_temp.pt(0, 9000 + (p - 1521)), timestamptz '2001-02-05 10:00Z' + d * interval '1 min'
  FROM (VALUES (1521), (1523)) v(p), generate_series(0, 1) d;
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT p, pg_temp.pt(0, 7000 + (p - 1521)), timestamptz '2001-02-05 22:00Z' + k * interval '4 min'
  FROM (VALUES (1521), (1522)) v(p), generate_series(0, 765) k;
SELECT pg_temp.name(other_person_id) AS met, started_at, ended_at, duration
  FROM udaconnect.encounters(1522, '2001-02-07', '2001-02-08');
SELECT (SELECT longest_us FROM udaconnect.encounter_clock)
         >= (SELECT max((extract(epoch FROM ended_at - started_at) * 1000000)::bigint) FROM udaconnect.encounter)
       AS longest_covers_every_span,
       json_array_length((udaconnect.api_encounters('organizer', NULL, 1522, '2001-02-07', '2001-02-08', 10, NULL)).body)
       AS api_finds_it;
BEGIN;
CREATE TEMP TABLE fetched0 AS
SELECT coalesce(sum(idx_tup_fetch), 0) AS n FROM pg_stat_xact_user_tables WHERE relid = 'udaconnect.encounter'::regclass;
SELECT count(*) AS on_the_8th FROM udaconnect.encounters(1521, '2001-02-08', '2001-02-09');
SELECT coalesce(sum(idx_tup_fetch), 0) - (SELECT n FROM fetched0) AS heap_rows_read
  FROM pg_stat_xact_user_tables WHERE relid = 'udaconnect.encounter'::regclass;
COMMIT;
SELECT pg_temp.vs_rebuild() AS at_the_end;
