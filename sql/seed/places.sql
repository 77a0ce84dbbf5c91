-- A few named places (udaconnect.place, issue 15) around the sample data's
-- points, so `make run` shows them: a hall in San Mateo with two booths
-- inside it (a point in a booth belongs to the booth, the smallest place;
-- elsewhere in the hall to the hall), and a stage in Albuquerque, where the
-- repaired points lie.  scripts/run_db_command.sh feeds this file before
-- load.sql, so the sample data's encounters are placed as they are made.  Ids are kept and a place whose id exists is left alone, so a
-- second load changes nothing; the table's checks apply as to
-- create_place(), and booth 2 is round as create_place_circle() makes it.
-- Into a database whose extension predates places (1.0, 1.1) it loads none
-- and says so.

-- an extension older than 1.2 has no places: the rest of the seed still loads
SELECT to_regclass('udaconnect.place') IS NOT NULL AS seed_has_places \gset
\if :seed_has_places
INSERT INTO udaconnect.place (id, name, kind, floor, area)
VALUES (1, 'Main hall', 'room', 0,
        ST_MakeEnvelope(-122.2912, 37.5532, -122.2902, 37.5538, 4326)),
       (2, 'Booth 1', 'booth', 0,
        ST_MakeEnvelope(-122.29055, 37.55341, -122.29049, 37.55347, 4326)),
       (3, 'Booth 2', 'booth', 0,
        ST_Buffer(udaconnect.make_point(37.55363, -122.290883)::geography, 3, 'quad_segs=32')::geometry),
       (4, 'Main stage', 'stage', NULL,
        ST_MakeEnvelope(-106.5725, 35.0583, -106.5717, 35.0588, 4326))
ON CONFLICT (id) DO NOTHING;

\o /dev/null
SELECT setval(pg_get_serial_sequence('udaconnect.place', 'id'),
              GREATEST((SELECT max(id) FROM udaconnect.place), 1));
\o

\pset tuples_only on
\pset format unaligned
SELECT format('loaded %s places: %s', count(*), string_agg(name || ' (' || kind || ')', ', ' ORDER BY id))
  FROM udaconnect.place WHERE id BETWEEN 1 AND 4;
\else
\echo 'no places loaded: udaconnect.place needs pg_udaconnect 1.2 (ALTER EXTENSION pg_udaconnect UPDATE)'
\endif
