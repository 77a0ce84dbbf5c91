-- Named places (45-places.sql, 65-places-http.sql): creation and its
-- checks, round places, place_at (the smallest place covering a point),
-- deletion, and the api_* functions per caller.  The database is the
-- suite's own, so place ids start at 1; no check fails after the sequence
-- was advanced, so the ids are fixed.  Areas print rounded to 1 m².
SET client_min_messages = warning;
-- the answer of one query as text, 'NULL' for NULL / no row, or its error
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- the COLUMN an error names
CREATE FUNCTION pg_temp.col(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c text;
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS c = COLUMN_NAME; RETURN SQLSTATE || ' ' || c; END $$;

-- The scene, around (48.0, 11.0): a hall of about 74 x 111 m, a booth of
-- about 7 x 11 m inside it near its south-west corner, a stage outside.
SELECT id, name, kind, floor, round(area_m2) AS m2, ST_SRID(area) AS srid
  FROM udaconnect.create_place('  Hall A  ', 'room',
                               ST_MakeEnvelope(11.0, 48.0, 11.001, 48.001, 4326), 0);
SELECT id, name, kind, floor, round(area_m2) AS m2
  FROM udaconnect.create_place('Booth 1', 'booth',
                               ST_MakeEnvelope(11.0001, 48.0001, 11.0002, 48.0002, 4326), 0);
-- SRID 0 is taken as 4326
SELECT id, name, kind, floor IS NULL AS no_floor, round(area_m2) AS m2, ST_SRID(area) AS srid
  FROM udaconnect.create_place('Stage', 'stage',
                               'POLYGON((11.01 48.0, 11.0105 48.0, 11.0105 48.0005, 11.01 48.0005, 11.01 48.0))');
-- area_m2 is the geodesic area, kept by the column's generation
SELECT id, abs(area_m2 - ST_Area(area::geography)) < 1e-6 AS geodesic FROM udaconnect.place ORDER BY id;

-- every bad argument, with its SQLSTATE and the argument the error names
SELECT q, pg_temp.try(q) AS answer, pg_temp.col(q) AS state_column FROM (VALUES
    ($$SELECT udaconnect.create_place(NULL, 'room', ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('   ', 'room', ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place(repeat('x', 201), 'room', ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', NULL, ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', 'hall', ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', 'Room', ST_MakeEnvelope(0, 0, 0.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', 'room', NULL)$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POINT(11 48)')$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;MULTIPOLYGON(((0 0, 0.001 0, 0 0.001, 0 0)))')$$),
    ($$SELECT udaconnect.create_place('x', 'room', ST_MakeEnvelope(0, 0, 100, 100, 3857))$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POLYGON EMPTY')$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POLYGON((0 0, 0.003 0, 0.003 0.003, 0 0.003, 0 0), (0.001 0.001, 0.002 0.001, 0.002 0.002, 0.001 0.001))')$$),
    ($$SELECT udaconnect.create_place('x', 'room', ST_Buffer(ST_SetSRID(ST_MakePoint(0, 0), 4326), 0.001, 251))$$),
    ($$SELECT udaconnect.create_place('x', 'room', ST_MakeEnvelope(180, 0, 180.001, 0.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', 'room', ST_MakeEnvelope(0, 90, 0.001, 90.001, 4326))$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POLYGON((0 0, 0.001 0.001, 0.001 0, 0 0.001, 0 0))')$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POLYGON((0 0, 0.001 0, 0 0, 0 0))')$$),
    ($$SELECT udaconnect.create_place('x', 'room', 'SRID=4326;POLYGON((-179.99 0, 179.99 0, 179.99 0.00001, -179.99 0))')$$),
    ($$SELECT udaconnect.create_place('x', 'room', ST_MakeEnvelope(0, 0, 0.01, 0.01, 4326))$$)
) t(q);
-- at most 1000 vertices is allowed: 250 segments per quarter is 1000
SELECT ST_NPoints(area) - 1 AS vertices, name
  FROM udaconnect.create_place('Many corners', 'area',
                               ST_Buffer(ST_SetSRID(ST_MakePoint(12, 48), 4326), 0.0001, 250));
-- a PolygonZ is kept flat
SELECT ST_NDims(area) AS dims
  FROM udaconnect.create_place('Flat', 'area', 'SRID=4326;POLYGON Z((12.1 48 5, 12.1001 48 5, 12.1001 48.0001 5, 12.1 48 5))'::geometry);
SELECT count(*) AS places_now FROM udaconnect.place;

-- a round place: the geodesic buffer, 32 segments per quarter; its area is
-- pi r^2 within 0.1 %, and every vertex is r metres from the centre
SELECT id, name, kind, ST_NPoints(area) - 1 AS vertices,
       abs(area_m2 / (pi() * 9) - 1) < 0.001 AS pi_r2,
       (SELECT bool_and(abs(ST_Distance(d.geom::geography, udaconnect.make_point(48.0005, 11.0005)::geography) - 3) < 0.01)
          FROM ST_DumpPoints(area) d) AS radius_3_m
  FROM udaconnect.create_place_circle('Booth 2', 'booth', 48.0005, 11.0005, 3, 0);
SELECT q, pg_temp.try(q) AS answer, pg_temp.col(q) AS state_column FROM (VALUES
    ($$SELECT udaconnect.create_place_circle('x', 'booth', 48, 11, NULL)$$),
    ($$SELECT udaconnect.create_place_circle('x', 'booth', 48, 11, 0.4)$$),
    ($$SELECT udaconnect.create_place_circle('x', 'booth', 48, 11, 501)$$),
    ($$SELECT udaconnect.create_place_circle('x', 'booth', 48, 11, 'NaN')$$),
    ($$SELECT udaconnect.create_place_circle('x', 'booth', 91, 11, 3)$$),
    ($$SELECT udaconnect.create_place_circle('x', 'booth', NULL, 11, 3)$$),
    ($$SELECT udaconnect.create_place_circle('x', 'tent', 48, 11, 3)$$)
) t(q);

-- place_at: the smallest place covering the point
SELECT label, udaconnect.place_at(lat, lon) AS place FROM (VALUES
    ('inside booth 1 (and the hall)', 48.00015, 11.00015),
    ('inside the hall only', 48.0008, 11.0008),
    ('centre of booth 2 (and the hall)', 48.0005, 11.0005),
    ('on the hall''s west edge', 48.0008, 11.0),
    ('on the hall''s corner', 48.0, 11.0),
    ('on booth 1''s edge', 48.0001, 11.00015),
    ('on the stage', 48.0002, 11.0102),
    ('nowhere', 48.002, 11.002),
    ('far away', -33.9, 151.2)
) t(label, lat, lon);
SELECT pg_temp.try($$SELECT udaconnect.place_at(91, 11)$$) AS bad_latitude,
       pg_temp.try($$SELECT udaconnect.place_at(48, NULL)$$) AS null_longitude;
-- of equal places the lowest id: a twin of booth 1, then the other order
SELECT id AS twin FROM udaconnect.create_place('Booth 1 twin', 'booth',
                               ST_MakeEnvelope(11.0001, 48.0001, 11.0002, 48.0002, 4326));
SELECT udaconnect.place_at(48.00015, 11.00015) AS tie_lowest_id;
-- the probe goes through the GiST index
SET enable_seqscan = off;
CREATE FUNCTION pg_temp.plan_uses(idx text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE l text; found boolean := false;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN SELECT p.id FROM udaconnect.place p
                       WHERE ST_Covers(p.area, udaconnect.make_point(48.00015, 11.00015))
                       ORDER BY p.area_m2, p.id LIMIT 1' LOOP
        found := found OR l LIKE '%' || idx || '%';
    END LOOP;
    RETURN found;
END $$;
SELECT pg_temp.plan_uses('place_area_idx') AS gist_probe;
RESET enable_seqscan;

-- delete_place: true, then false; place_at falls back to the next smallest
-- (each in a statement of its own: place_at is STABLE, so it sees the
-- snapshot its statement started with)
SELECT udaconnect.delete_place(2) AS deleted;
SELECT udaconnect.delete_place(2) AS again;
SELECT udaconnect.place_at(48.00015, 11.00015) AS now_the_twin;
SELECT udaconnect.delete_place(7) AS twin_deleted;
SELECT udaconnect.place_at(48.00015, 11.00015) AS now_the_hall;
SELECT pg_temp.try($$SELECT udaconnect.delete_place(NULL)$$) AS null_id;

-- ---------------------------------------------------------------------------
-- api_*: every established caller reads; organizers create and delete
-- ---------------------------------------------------------------------------
SELECT udaconnect.api_place('organizer', NULL, 1) AS organizer_reads;
SELECT udaconnect.api_place('attendee', 5, 3) AS attendee_reads,
       udaconnect.api_place('attendee', 5, 999) AS no_such_place;
SELECT json_array_length(udaconnect.api_places('attendee', 5)) AS attendee_list,
       (SELECT array_agg((e ->> 'id')::int) FROM json_array_elements(udaconnect.api_places('organizer', NULL)) e) AS ids;
SELECT pg_temp.try(q) AS unknown_caller FROM (VALUES
    ($$SELECT udaconnect.api_places('attendee', NULL)$$),
    ($$SELECT udaconnect.api_places(NULL, NULL)$$),
    ($$SELECT udaconnect.api_place('guest', 1, 1)$$)) t(q);
-- a polygon as [{latitude, longitude}, ...]; the ring closes itself
SELECT udaconnect.api_create_place('organizer', NULL, 'Room 2', 'room', 1,
    '[{"latitude": 48.003, "longitude": 11.0}, {"latitude": 48.003, "longitude": 11.0005},
      {"latitude": 48.0035, "longitude": 11.0005}, {"latitude": 48.0035, "longitude": 11.0}]',
    NULL, NULL, NULL) AS created;
-- ... or closed already: the same outline
SELECT (udaconnect.api_create_place('organizer', NULL, 'Room 3', 'room', NULL,
    '[{"latitude": 48.004, "longitude": 11.0}, {"latitude": 48.004, "longitude": 11.0005},
      {"latitude": 48.0045, "longitude": 11.0005}, {"latitude": 48.004, "longitude": 11.0}]',
    NULL, NULL, NULL) -> 'polygon')::text AS closed_ring_given;
SELECT j ->> 'name' AS name, j ->> 'kind' AS kind, j -> 'floor' AS floor,
       round((j ->> 'area_m2')::numeric) AS m2, json_array_length(j -> 'polygon') AS vertices
  FROM udaconnect.api_create_place('organizer', NULL, 'Booth 3', 'booth', NULL, NULL,
                                   48.0003, 11.0003, 2) j;
SELECT q, pg_temp.try(q) AS answer, pg_temp.col(q) AS state_column FROM (VALUES
    ($$SELECT udaconnect.api_create_place('attendee', 5, 'x', 'booth', NULL, NULL, 48, 11, 2)$$),
    ($$SELECT udaconnect.api_create_place('nobody', NULL, 'x', 'booth', NULL, NULL, 48, 11, 2)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, NULL, NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[]', 48, 11, 2)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, NULL, 48, NULL, 2)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, NULL, 48, 11, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '{"type": "Polygon"}', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": 48.001, "longitude": 11}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": 48.001, "longitude": 11}, {"latitude": 48, "longitude": 11}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, [48.001, 11], {"latitude": 48, "longitude": 11.001}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": "48.001", "longitude": 11}, {"latitude": 48, "longitude": 11.001}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": 95, "longitude": 11}, {"latitude": 48, "longitude": 11.001}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": 1e400, "longitude": 11}, {"latitude": 48, "longitude": 11.001}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'booth', NULL, '[{"latitude": 48, "longitude": 11}, {"latitude": 48.001, "longitude": 11.001}, {"latitude": 48, "longitude": 11.001}, {"latitude": 48.001, "longitude": 11}]', NULL, NULL, NULL)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, '', 'booth', NULL, NULL, 48, 11, 2)$$),
    ($$SELECT udaconnect.api_create_place('organizer', NULL, 'x', 'shed', NULL, NULL, 48, 11, 2)$$)
) t(q);
SELECT count(*) AS places_before_delete FROM udaconnect.place;
SELECT pg_temp.try($$SELECT udaconnect.api_delete_place('attendee', 5, 1)$$) AS attendee_deletes,
       pg_temp.try($$SELECT udaconnect.api_delete_place(NULL, NULL, 1)$$) AS unknown_deletes;
SELECT udaconnect.api_delete_place('organizer', NULL, 3) AS deleted,
       udaconnect.api_delete_place('organizer', NULL, 3) AS no_such_place;
SELECT count(*) AS places_after_delete FROM udaconnect.place;

-- privileges: the gateway role calls the api_* functions, nothing else
SELECT f, has_function_privilege('udaconnect_api', f, 'EXECUTE') AS gateway,
       has_function_privilege('public', f, 'EXECUTE') AS public
  FROM unnest(ARRAY['udaconnect.api_places(text, integer)',
                    'udaconnect.api_place(text, integer, integer)',
                    'udaconnect.api_create_place(text, integer, text, text, integer, json, float8, float8, float8)',
                    'udaconnect.api_delete_place(text, integer, integer)',
                    'udaconnect.api_place_json(udaconnect.place)',
                    'udaconnect.api_place_polygon(json)',
                    'udaconnect.create_place(text, text, geometry, integer)',
                    'udaconnect.create_place_circle(text, text, float8, float8, float8, integer)',
                    'udaconnect.delete_place(integer)',
                    'udaconnect.place_at(float8, float8)']) f;
SELECT has_table_privilege('udaconnect_api', 'udaconnect.place', 'SELECT') AS gateway_reads_table;

-- ---------------------------------------------------------------------------
-- places_at() in C (from 1.7) answers as the SQL it replaced, point by point:
-- 3,000 points over the hall, 30 round booths in a grid (more places than
-- the lookup tests one by one: through its cell lists) and the stage, and
-- every vertex of every place (on the boundary: covered); a role that may
-- not read the places still gets them
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.ref_places_at(latitude float8[], longitude float8[]) RETURNS integer[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(p.id ORDER BY u.i), '{}')
      FROM unnest(latitude, longitude) WITH ORDINALITY AS u(lat, lon, i)
      LEFT JOIN LATERAL (SELECT q.id FROM udaconnect.place q
                          WHERE ST_Covers(q.area, udaconnect.make_point(u.lat, u.lon))
                          ORDER BY q.area_m2, q.id
                          LIMIT 1) p ON true
$$;
SELECT count(*) AS grid_booths
  FROM (SELECT udaconnect.create_place_circle('Grid booth ' || i, 'booth', 48.0001 + (i % 6) * 0.00015,
                                              11.0001 + (i / 6) * 0.0002, 3 + (i % 4))
          FROM generate_series(0, 29) i) s;
SELECT setseed(0.15);
CREATE TEMP TABLE pts AS
SELECT array_agg(lat ORDER BY k) AS lat, array_agg(lon ORDER BY k) AS lon
  FROM (SELECT k, 47.9999 + random() * 0.0012 AS lat, 10.9999 + random() * 0.0107 AS lon
          FROM generate_series(1, 3000) k
        UNION ALL
        SELECT 3000 + row_number() OVER (), ST_Y(d.geom), ST_X(d.geom)
          FROM udaconnect.place p, ST_DumpPoints(p.area) d) s;
SELECT cardinality(lat) > 3000 AS with_vertices,
       udaconnect.places_at(lat, lon) IS NOT DISTINCT FROM pg_temp.ref_places_at(lat, lon) AS same_as_sql,
       (SELECT count(DISTINCT x) FROM unnest(udaconnect.places_at(lat, lon)) x) AS places_met,
       (SELECT count(*) FROM unnest(udaconnect.places_at(lat, lon)) x WHERE x IS NULL) > 0 AS some_nowhere
  FROM pts;
-- points a hair apart under 16 floors (the grid over their tiny box must
-- still list every floor in every cell)
SELECT count(*) AS floors
  FROM (SELECT udaconnect.create_place('Floor ' || i, 'room',
                 ST_MakeEnvelope(11.00015 - 0.0001 * i, 48.00015 - 0.0001 * i,
                                 11.00015 + 0.0001 * i, 48.00015 + 0.0001 * i, 4326), i)
          FROM generate_series(1, 16) i) s;
SELECT udaconnect.places_at(a, o) IS NOT DISTINCT FROM pg_temp.ref_places_at(a, o) AS tiny_box_same,
       (udaconnect.places_at(a, o))[2] IS NOT NULL AS placed
  FROM (SELECT ARRAY[48.00015, 48.00015 + 1e-13] AS a, ARRAY[11.00015, 11.00015 + 1e-13] AS o) t;
SELECT count(udaconnect.delete_place(id)) AS floors_gone FROM udaconnect.place WHERE name LIKE 'Floor %';
SELECT q, pg_temp.try(q) AS answer FROM (VALUES
    ($$SELECT udaconnect.places_at('{}', '{}')$$),
    ($$SELECT udaconnect.places_at(NULL, NULL)$$),
    ($$SELECT udaconnect.places_at(NULL, ARRAY[11.00015])$$),
    ($$SELECT udaconnect.places_at(ARRAY[48.00015, 48.0008], ARRAY[11.00015])$$),
    ($$SELECT udaconnect.places_at(ARRAY[48.00015, NULL], ARRAY[11.00015, 11])$$),
    ($$SELECT udaconnect.places_at(ARRAY[48.00015, 48], ARRAY[11.00015, 'Infinity'])$$)
) t(q);
CREATE ROLE udc_places_reader_test;
GRANT USAGE ON SCHEMA udaconnect TO udc_places_reader_test;
GRANT EXECUTE ON FUNCTION udaconnect.places_at(float8[], float8[]) TO udc_places_reader_test;
SET ROLE udc_places_reader_test;
SELECT has_table_privilege('udaconnect.place', 'SELECT') AS may_read_places,
       udaconnect.places_at(ARRAY[48.00015], ARRAY[11.00015]) = ARRAY[1] AS placed_anyway;
RESET ROLE;
REVOKE ALL ON FUNCTION udaconnect.places_at(float8[], float8[]) FROM udc_places_reader_test;
REVOKE ALL ON SCHEMA udaconnect FROM udc_places_reader_test;
DROP ROLE udc_places_reader_test;
