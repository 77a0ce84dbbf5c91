-- A changed place applied to the encounters already stored (issue 15;
-- 55-place-changes.sql): a place created, moved, enlarged, renumbered or
-- deleted queues its areas, stored encounters stay as they were until
-- places_refresh() works the queue, and then they equal what
-- encounters_rebuild() makes of the same locations, with the same ids and
-- new versions for exactly the encounters whose places changed (what a
-- live stream is told).  The worker that calls places_refresh() on its own
-- is tested by test/encounters/test_places_worker.py.
--
-- Persons 1701..1706 and locations 1700001.. get explicit ids, all on
-- 2003-04-05 UTC around (-12.05, -77.04), where no other test has points;
-- encounter ids and versions come from sequences other tests also advance,
-- so they are only compared with each other.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- a point n metres north and e metres east of the base (-12.05, -77.04)
CREATE FUNCTION pg_temp.lat(n float8) RETURNS float8 LANGUAGE sql AS $$
    SELECT -12.05 + n / (udaconnect.geodesic_distance(-12.05, -77.04, -12.0501, -77.04) / 1e-4) $$;
CREATE FUNCTION pg_temp.lon(e float8) RETURNS float8 LANGUAGE sql AS $$
    SELECT -77.04 + e / (udaconnect.geodesic_distance(-12.05, -77.04, -12.05, -77.0399) / 1e-4) $$;
CREATE FUNCTION pg_temp.name(p integer) RETURNS text LANGUAGE sql AS $$
    SELECT first_name FROM udaconnect.person WHERE id = p $$;
-- the encounters of persons 1701..1706: pair, span, matches, the place and
-- the matches per place, by name
CREATE FUNCTION pg_temp.enc() RETURNS TABLE (pair text, span text, matches bigint, place text, places text)
LANGUAGE sql AS $$
    SELECT pg_temp.name(x.person_a) || '-' || pg_temp.name(x.person_b),
           to_char(x.started_at, 'HH24:MI:SS') || '..' || to_char(x.ended_at, 'HH24:MI:SS'),
           x.matches,
           (SELECT p.name FROM udaconnect.place p WHERE p.id = x.place_id),
           (SELECT string_agg(coalesce(p.name, '#' || u.id) || ':' || u.n, ' ' ORDER BY u.i)
              FROM unnest(x.place_ids, x.place_matches) WITH ORDINALITY u(id, n, i)
              LEFT JOIN udaconnect.place p ON p.id = u.id)
      FROM udaconnect.encounter x
     WHERE x.person_a BETWEEN 1701 AND 1706
     ORDER BY x.person_a, x.person_b, x.started_at
$$;
-- 'equal', or how many rows of persons 1701..1706 differ from what
-- encounters_rebuild('-infinity', 'infinity') makes of the same locations
-- (every column but id and version; the rebuild is undone)
CREATE FUNCTION pg_temp.vs_rebuild() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    diff text;
BEGIN
    BEGIN
        CREATE TEMP TABLE enc_kept AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1701 AND 1706;
        PERFORM udaconnect.encounters_rebuild('-infinity', 'infinity');
        CREATE TEMP TABLE enc_rebuilt AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1701 AND 1706;
        SELECT CASE WHEN count(*) = 0 THEN 'equal' ELSE count(*) || ' rows differ' END INTO diff
          FROM (SELECT * FROM enc_kept EXCEPT ALL SELECT * FROM enc_rebuilt
                UNION ALL
                SELECT * FROM enc_rebuilt EXCEPT ALL SELECT * FROM enc_kept) d;
        RAISE EXCEPTION USING ERRCODE = 'UDC01', MESSAGE = diff;
    EXCEPTION WHEN SQLSTATE 'UDC01' THEN
        GET STACKED DIAGNOSTICS diff = MESSAGE_TEXT;
    END;
    RETURN diff;
END $$;
-- the encounters as they are now (id, version), to compare with later
CREATE TEMP TABLE seen (id bigint, version bigint);
CREATE FUNCTION pg_temp.remember() RETURNS void LANGUAGE sql AS $$
    DELETE FROM seen;
    INSERT INTO seen SELECT x.id, x.version FROM udaconnect.encounter x WHERE x.person_a BETWEEN 1701 AND 1706 $$;
-- of the remembered encounters, those whose version advanced, and whether
-- every one kept its id
CREATE FUNCTION pg_temp.advanced() RETURNS TABLE (advanced text, same_ids boolean) LANGUAGE sql AS $$
    SELECT coalesce(string_agg(pg_temp.name(x.person_a) || '-' || pg_temp.name(x.person_b)
                               || ' ' || to_char(x.started_at, 'HH24:MI'), ', '
                               ORDER BY x.person_a, x.person_b, x.started_at)
                        FILTER (WHERE x.version > s.version), '-'),
           count(x.id) = (SELECT count(*) FROM seen)
             AND (SELECT count(*) FROM udaconnect.encounter e WHERE e.person_a BETWEEN 1701 AND 1706) = count(x.id)
      FROM seen s LEFT JOIN udaconnect.encounter x ON x.id = s.id $$;

-- Whatever the earlier tests queued is worked off first: this file's
-- counts are its own
SELECT remaining = 0 AS drained FROM udaconnect.places_refresh();

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT 1700 + i, n, 'Refresh', 'Places'
  FROM unnest(ARRAY['Ann', 'Bob', 'Cat', 'Dan', 'Eve', 'Fox']) WITH ORDINALITY AS u(n, i);
-- A booth spot X at the base, a spot Y 30 m east, a spot Z 300 m north.
-- Ann and Bob at X 10:00..10:10 (1 m apart, a point each every 30 s); Ann
-- and Cat at Y 11:00..11:05; Dan and Eve at Z 10:00..10:10; Bob and Fox at
-- X 12:00..12:04, then together at Y until 12:08 (one encounter)
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time)
SELECT 1700000 + row_number() OVER (ORDER BY s.p, s.t0, i), s.p,
       udaconnect.make_point(pg_temp.lat(s.n), pg_temp.lon(s.e + s.side)),
       ('2003-04-05 ' || s.t0 || 'Z')::timestamptz + i * interval '30 seconds'
  FROM (VALUES (1701, '10:00', 20, 0, 0, 0), (1702, '10:00', 20, 0, 0, 1),
               (1701, '11:00', 10, 0, 30, 0), (1703, '11:00', 10, 0, 30, 1),
               (1704, '10:00', 20, 300, 0, 0), (1705, '10:00', 20, 300, 0, 1),
               (1702, '12:00', 8, 0, 0, 0), (1706, '12:00', 8, 0, 0, 1),
               (1702, '12:04', 8, 0, 30, 0), (1706, '12:04', 8, 0, 30, 1)) s(p, t0, k, n, e, side),
       generate_series(0, s.k) i;
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS no_places;

-- The booth is drawn at X after the meetings: one area queued (no person
-- data in the queue: its columns), the stored encounters unchanged
SELECT pg_temp.remember();
SELECT name FROM udaconnect.create_place_circle('Booth', 'booth', pg_temp.lat(0), pg_temp.lon(0), 3);
SELECT count(*) AS queued, bool_and(done_to IS NULL AND chunks = 0) AS untouched FROM udaconnect.place_change;
SELECT string_agg(attname, ', ' ORDER BY attnum) AS queue_columns
  FROM pg_attribute WHERE attrelid = 'udaconnect.place_change'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() <> 'equal' AS stale_before_refresh;
-- the refresh: Ann-Bob and Bob-Fox are placed anew (the same rows, new
-- versions), Ann-Cat and Dan-Eve are not touched
SELECT * FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS after_create;
SELECT * FROM pg_temp.advanced();
-- what Bob's live stream reads after the versions it had: both changes
SELECT c.kind, pg_temp.name((c.body::jsonb->'person'->>'id')::integer) AS met, c.body::jsonb->'place'->>'name' AS place
  FROM udaconnect.api_encounter_changes('organizer', NULL, 1702, (SELECT max(version) FROM seen), 0, 100) c
 ORDER BY met;

-- The booth moves to Y (its outline fixed mid-conference): the old and the
-- new outline together are one area
SELECT pg_temp.remember();
UPDATE udaconnect.place SET area = ST_Translate(area, pg_temp.lon(30) - pg_temp.lon(0), 0) WHERE name = 'Booth';
SELECT count(*) AS queued FROM udaconnect.place_change;
SELECT * FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS after_move;
SELECT * FROM pg_temp.advanced();

-- A room around X and Y: where the booth is, the booth (the smaller place)
-- stays; at X the room
SELECT name FROM udaconnect.create_place('Room', 'room',
    ST_MakeEnvelope(pg_temp.lon(-8), pg_temp.lat(-8), pg_temp.lon(38), pg_temp.lat(8), 4326));
SELECT * FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS after_room;

-- Renaming changes nothing; a new id does (place_id names it)
SELECT pg_temp.remember();
UPDATE udaconnect.place SET name = 'Room 1' WHERE name = 'Room';
SELECT count(*) AS queued_by_rename FROM udaconnect.place_change;
UPDATE udaconnect.place SET id = id + 1000 WHERE name = 'Room 1';
SELECT count(*) AS queued_by_new_id FROM udaconnect.place_change;
SELECT * FROM udaconnect.places_refresh();
SELECT pg_temp.vs_rebuild() AS after_new_id;
SELECT * FROM pg_temp.advanced();

-- The booth is deleted: Y falls to the room
SELECT pg_temp.remember();
SELECT udaconnect.delete_place(id) FROM udaconnect.place WHERE name = 'Booth';
SELECT * FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS after_delete;
SELECT * FROM pg_temp.advanced();

-- A place where no one met: its area is worked off with no encounter
-- touched, no version taken
SELECT pg_temp.remember();
SELECT (SELECT version FROM udaconnect.encounter_clock) AS clock_before \gset
SELECT name FROM udaconnect.create_place_circle('Empty corner', 'area', pg_temp.lat(-500), pg_temp.lon(-500), 5);
SELECT * FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.advanced();
SELECT version = :clock_before AS no_version_taken FROM udaconnect.encounter_clock;

-- A queued area a chunk fails on (here one beyond the pole, which
-- place_cells() refuses) does not hold up the areas behind it: the failed
-- chunk is rolled back and recorded on its area, which waits for its
-- retry_after; the kiosk queued after it is worked off (undone here)
BEGIN;
INSERT INTO udaconnect.place_change (id, area, queued_at)
VALUES ('00000000-0000-0000-0000-0000000000ba', ST_MakeEnvelope(0, 95, 1, 96, 4326), '-infinity');
SELECT name FROM udaconnect.create_place_circle('Kiosk', 'booth', pg_temp.lat(0), pg_temp.lon(0), 3);
SELECT pg_temp.vs_rebuild() <> 'equal' AS stale_before_refresh;
SELECT * FROM udaconnect.places_refresh();
SELECT id, attempts, last_error, retry_after > now() AS waits, done_to IS NULL AND chunks = 0 AS no_progress
  FROM udaconnect.place_change;
SELECT pg_temp.vs_rebuild() AS behind_the_failed_one;
SELECT chunks, remaining FROM udaconnect.places_refresh();
-- once its retry_after has passed it is tried again
UPDATE udaconnect.place_change SET retry_after = now() - interval '1 second';
SELECT chunks, changes, remaining FROM udaconnect.places_refresh();
SELECT attempts FROM udaconnect.place_change;
ROLLBACK;

-- A hall of 400 m x 400 m over everything (Dan and Eve too): queued as
-- tiles of at most 50 m, worked off a chunk at most each
SELECT name FROM udaconnect.create_place('Hall', 'room',
    ST_MakeEnvelope(pg_temp.lon(-50), pg_temp.lat(-50), pg_temp.lon(350), pg_temp.lat(350), 4326));
SELECT count(*) > 1 AS tiles, bool_and(udaconnect.place_change_fits(area, 50)) AS at_most_50_m FROM udaconnect.place_change;
SELECT chunks = changes AS one_chunk_a_tile, encounters, remaining FROM udaconnect.places_refresh();
SELECT * FROM pg_temp.enc();
SELECT pg_temp.vs_rebuild() AS after_hall;

-- max_chunks bounds the work of a call; the rest stays queued
UPDATE udaconnect.place SET area = ST_Translate(area, 0, pg_temp.lat(1) - pg_temp.lat(0)) WHERE name = 'Hall';
SELECT chunks, remaining > 0 AS more_queued FROM udaconnect.places_refresh(2);
SELECT remaining FROM udaconnect.places_refresh();
SELECT pg_temp.vs_rebuild() AS after_hall_moved;

-- TRUNCATE queues every place as it goes (undone here: other tests' places)
BEGIN;
SELECT count(*) AS areas FROM udaconnect.place p, udaconnect.place_change_areas(p.area, NULL) a \gset
TRUNCATE udaconnect.place;
SELECT count(*) = :areas AS truncate_queued_every_place FROM udaconnect.place_change;
ROLLBACK;

-- An area whose meetings span more slices than a chunk takes (24): Cat and
-- Dan meet at a stand W, 1 km north, once an hour for 30 hours (a match
-- each, 30 encounters); the stand is drawn after.  The first chunk places
-- the first 24 and leaves its progress (done_to) on the queued area; the
-- next call carries on from there
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time)
SELECT 1700500 + 2 * h + s.side, s.p, udaconnect.make_point(pg_temp.lat(1000), pg_temp.lon(s.side)),
       '2003-04-06 00:00Z'::timestamptz + h * interval '1 hour'
  FROM generate_series(0, 29) h, (VALUES (1703, 0), (1704, 1)) s(p, side);
SELECT name FROM udaconnect.create_place_circle('Stand W', 'booth', pg_temp.lat(1000), pg_temp.lon(0.5), 3);
CREATE FUNCTION pg_temp.at_w() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE p.name = 'Stand W') || ' of ' || count(*) || ' at Stand W'
      FROM udaconnect.encounter x LEFT JOIN udaconnect.place p ON p.id = x.place_id
     WHERE x.person_a = 1703 AND x.person_b = 1704 AND x.started_at >= '2003-04-06' $$;
SELECT pg_temp.at_w();
SELECT chunks, changes, encounters, remaining FROM udaconnect.places_refresh(1);
SELECT done_to = '2003-04-07 00:00Z' AS done_to_after_24_hours, chunks, encounters FROM udaconnect.place_change;
SELECT pg_temp.at_w();
SELECT chunks, changes, encounters, remaining FROM udaconnect.places_refresh();
SELECT pg_temp.at_w();
SELECT pg_temp.vs_rebuild() AS after_carried_over;

-- A stored encounter that is not what its matches found again make (as a
-- setting changed since would leave it: here its count is tampered with)
-- is recomputed in full by encounters_rebuild() over its span when an
-- area over it is worked off
UPDATE udaconnect.encounter SET matches = matches + 5
 WHERE person_a = 1701 AND person_b = 1702 AND started_at = '2003-04-05 10:00Z';
SELECT pg_temp.vs_rebuild() AS tampered;
SELECT name FROM udaconnect.create_place_circle('Stool', 'booth', pg_temp.lat(0), pg_temp.lon(0), 1);
SELECT changes, remaining FROM udaconnect.places_refresh();
SELECT matches FROM udaconnect.encounter
 WHERE person_a = 1701 AND person_b = 1702 AND started_at = '2003-04-05 10:00Z';
SELECT pg_temp.vs_rebuild() AS after_recomputed;
SELECT udaconnect.delete_place(id) IS NOT NULL AS deleted FROM udaconnect.place WHERE name IN ('Stand W', 'Stool');
SELECT remaining FROM udaconnect.places_refresh();
SELECT pg_temp.vs_rebuild() AS after_both_deleted;

-- bad arguments
SELECT pg_temp.try($$SELECT udaconnect.places_refresh(0)$$) AS zero_chunks;
SELECT pg_temp.try($$SELECT udaconnect.encounter_places_refresh(NULL)$$) AS null_ids;
SELECT pg_temp.try($$SELECT udaconnect.place_cells('{1}', '{2}', '{0}', '{3}', 1)$$) AS south_of_north;
SELECT pg_temp.try($$SELECT udaconnect.place_cells('{1}', '{2}', '{1}', '{3}', 0)$$) AS no_growth;

-- a box too large for fine keys at the antimeridian (a huge place inserted
-- directly): grown past 180 it wraps, and the coarse ranges cover both ends
SELECT cardinality(c.cells) = 0 AS coarse,
       bool_or(udaconnect.cell_key(0.5, 179.95) BETWEEN r.lo AND r.hi) AS near_side,
       bool_or(udaconnect.cell_key(0.5, -179.9995) BETWEEN r.lo AND r.hi) AS far_side
  FROM udaconnect.place_cells('{0}', '{179.9}', '{1}', '{180}', 100) c,
       unnest(c.range_lo, c.range_hi) AS r(lo, hi)
 GROUP BY c.cells;
