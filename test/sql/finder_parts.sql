-- find_connections and the encounter maintenance on the partitioned
-- udaconnect.location (1.5): day partitions made by
-- location_partition_create() and one by plain DDL, a day without partition
-- (its rows go to location_default), a year long one, one open at the end
-- (MAXVALUE; test/suites/31-oracle-partitions.sh has one from MINVALUE), and
-- one in another schema whose columns lie in another order and whose name
-- needs quoting.  The parent has no index: each partition made by hand gets
-- its two btrees named after it (<partition>_person_time_idx,
-- <partition>_cell_time_idx), which the finder opens by those names.  A
-- search reads only the partitions of its days (and location_default where
-- it may hold rows of them), each through its own indexes, and must give the
-- PostGIS answer; matches across midnight and with rows of location_default
-- make encounters equal to a rebuild's.  A partition missing one of its
-- indexes, one whose index of that name has another layout or is not valid,
-- or a partition that is itself partitioned, is an error naming the
-- partition and the index, whose hint's DDL fixes it.  Persons 1601..1604,
-- all around (20, 30) in July 2023 (and in 1980 and 2095), where no other
-- test has points.  Runs last: it drops what it made at the end.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never

-- as the extension makes them: key and btrees named after the partition
SELECT partition, created, moved FROM udaconnect.location_partition_create('2023-07-01 12:00Z');
SELECT partition, created, moved FROM udaconnect.location_partition_create('2023-07-02 00:00Z');
-- by hand: the two btrees named after it are all the finder needs
CREATE TABLE udaconnect.location_p20230704 PARTITION OF udaconnect.location
    FOR VALUES FROM ('2023-07-04 00:00+00') TO ('2023-07-05 00:00+00');
CREATE INDEX location_p20230704_person_time_idx ON udaconnect.location_p20230704 (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_p20230704_cell_time_idx ON udaconnect.location_p20230704 (cell, creation_time) INCLUDE (person_id, id, coordinate);
-- a year; open at the end; each with its key too, as every partition has
CREATE TABLE udaconnect.location_old PARTITION OF udaconnect.location
    FOR VALUES FROM ('1980-01-01 00:00+00') TO ('1981-01-01 00:00+00');
ALTER TABLE udaconnect.location_old ADD CONSTRAINT location_old_pkey PRIMARY KEY (id, creation_time);
CREATE INDEX location_old_person_time_idx ON udaconnect.location_old (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_old_cell_time_idx ON udaconnect.location_old (cell, creation_time) INCLUDE (person_id, id, coordinate);
CREATE TABLE udaconnect.location_future PARTITION OF udaconnect.location
    FOR VALUES FROM ('2090-01-01 00:00+00') TO (MAXVALUE);
ALTER TABLE udaconnect.location_future ADD CONSTRAINT location_future_pkey PRIMARY KEY (id, creation_time);
CREATE INDEX location_future_person_time_idx ON udaconnect.location_future (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_future_cell_time_idx ON udaconnect.location_future (cell, creation_time) INCLUDE (person_id, id, coordinate);
-- another schema, another column order, a dropped column: other attnums;
-- a name that needs quoting; its indexes in its schema, attached with it
CREATE SCHEMA udc_parts;
CREATE TABLE udc_parts."Loc_20230705" (
    creation_time timestamptz NOT NULL,
    dropped integer,
    coordinate geometry(Point, 4326) NOT NULL,
    person_id integer NOT NULL,
    id bigint NOT NULL,
    cell bigint NOT NULL GENERATED ALWAYS AS (udaconnect.cell_key(ST_Y(coordinate), ST_X(coordinate))) STORED,
    CONSTRAINT location_creation_time_finite CHECK (isfinite(creation_time)));
ALTER TABLE udc_parts."Loc_20230705" DROP COLUMN dropped;
CREATE INDEX "Loc_20230705_person_time_idx" ON udc_parts."Loc_20230705" (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX "Loc_20230705_cell_time_idx" ON udc_parts."Loc_20230705" (cell, creation_time) INCLUDE (person_id, id, coordinate);
ALTER TABLE udaconnect.location ATTACH PARTITION udc_parts."Loc_20230705"
    FOR VALUES FROM ('2023-07-05 00:00+00') TO ('2023-07-06 00:00+00');

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT 1600 + i, n, 'Parts', 'Partitions'
  FROM unnest(ARRAY['Ann', 'Bob', 'Cid', 'Dee']) WITH ORDINALITY AS u(n, i);
-- a point n metres north and e metres east of (20, 30)
CREATE FUNCTION pg_temp.pt(n float8, e float8) RETURNS geometry LANGUAGE sql AS $$
    SELECT udaconnect.make_point(
        20 + n / (udaconnect.geodesic_distance(20, 30, 20.0001, 30) / 1e-4),
        30 + e / (udaconnect.geodesic_distance(20, 30, 20, 30.0001) / 1e-4)) $$;
CREATE FUNCTION pg_temp.name(p integer) RETURNS text LANGUAGE sql AS $$
    SELECT first_name FROM udaconnect.person WHERE id = p $$;

-- one statement: its encounter maintenance matches points of every partition
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT 1600 + p, pg_temp.pt(n, e), t::timestamptz
  FROM (VALUES
    -- Ann, at (0, 0): each partition, the day without one, around midnight
    (1, 0, 0, '2023-07-01 12:00:00Z'), (1, 0, 0, '2023-07-01 23:59:59.5Z'),
    (1, 0, 0, '2023-07-02 12:00:00Z'), (1, 0, 0, '2023-07-03 12:00:00Z'),
    (1, 0, 0, '2023-07-04 00:00:10Z'), (1, 0, 0, '2023-07-05 09:00:00Z'),
    (1, 0, 0, '1980-06-01 10:00:00Z'), (1, 0, 0, '2095-06-01 10:00:00Z'),
    -- Bob, 2 m east: in the same partition, the next one after midnight, in
    -- location_default, in location_default before midnight of a partition's
    -- day, in the other schema's partition, in 1980 and 2095
    (2, 0, 2, '2023-07-01 12:00:20Z'), (2, 0, 2, '2023-07-02 00:00:00.2Z'),
    (2, 0, 2, '2023-07-03 12:00:30Z'), (2, 0, 2, '2023-07-03 23:59:50Z'),
    (2, 0, 2, '2023-07-05 09:00:40Z'), (2, 0, 2, '1980-06-01 10:00:30Z'),
    (2, 0, 2, '2095-06-01 10:00:30Z'),
    -- Cid, 3 m north: 5 minutes after Ann (no window only); with Ann in
    -- location_default
    (3, 3, 0, '2023-07-02 12:05:00Z'), (3, 3, 0, '2023-07-03 12:00:00Z'),
    -- Dee, 10 m west: only within 20 m
    (4, 0, -10, '2023-07-01 12:00:00Z')) v(p, n, e, t);
SELECT pg_temp.name(person_id) AS who, tableoid::regclass AS partition, count(*)
  FROM udaconnect.location WHERE person_id BETWEEN 1601 AND 1604
 GROUP BY 1, 2 ORDER BY 1, 2::text;

-- the PostGIS answer (the oracle of test/oracle/check.sql, no tolerance
-- needed here: every distance is far from the threshold)
CREATE FUNCTION pg_temp.oracle(p int, s date, e date, m float8, w interval)
RETURNS TABLE (location_id bigint, distance_m float8) LANGUAGE sql AS $$
    SELECT l2.id, min(ST_Distance(l1.coordinate::geography, l2.coordinate::geography, true))
      FROM udaconnect.location l1 JOIN udaconnect.location l2
        ON ST_DWithin(l2.coordinate::geography, l1.coordinate::geography, m)
     WHERE l1.person_id = p AND l2.person_id <> p
       AND l1.creation_time >= s::timestamp AT TIME ZONE 'UTC'
       AND l1.creation_time < (e + 1)::timestamp AT TIME ZONE 'UTC'
       AND l2.creation_time >= s::timestamp AT TIME ZONE 'UTC'
       AND l2.creation_time < (e + 1)::timestamp AT TIME ZONE 'UTC'
       AND (w IS NULL OR abs(extract(epoch FROM l2.creation_time - l1.creation_time)) <= extract(epoch FROM w))
     GROUP BY l2.id $$;
-- the finder's rows, where each one lives, and whether the set, the order
-- and the distances are the oracle's
CREATE FUNCTION pg_temp.found(p int, s date, e date, m float8, w interval)
RETURNS TABLE (who text, utc timestamp, partition regclass, distance_m numeric, as_postgis boolean)
LANGUAGE sql AS $$
    WITH f AS (SELECT f.*, row_number() OVER () AS ord
                 FROM udaconnect.find_connections(p, s, e, m, w) f),
         same AS (SELECT (SELECT count(*) FROM f) = (SELECT count(*) FROM pg_temp.oracle(p, s, e, m, w))
                     AND NOT EXISTS (SELECT 1 FROM f LEFT JOIN pg_temp.oracle(p, s, e, m, w) o USING (location_id)
                                      WHERE o.location_id IS NULL OR abs(o.distance_m - f.distance_m) > 1e-6)
                     AND NOT EXISTS (SELECT 1 FROM f a JOIN f b ON b.ord = a.ord + 1
                                      WHERE (b.creation_time, b.location_id) < (a.creation_time, a.location_id)) AS ok)
    SELECT pg_temp.name(f.person_id), f.creation_time AT TIME ZONE 'UTC', l.tableoid::regclass,
           round(f.distance_m::numeric, 3), same.ok
      FROM f JOIN udaconnect.location l ON l.id = f.location_id, same
     ORDER BY f.ord $$;

-- one day: its partition only; Bob's point after midnight is another day's
SELECT * FROM pg_temp.found(1601, '2023-07-01', '2023-07-01', 5, '1 minute');
-- two days: the match across midnight, from the next partition
SELECT * FROM pg_temp.found(1601, '2023-07-01', '2023-07-02', 5, '1 minute');
-- five days: Ann's point in location_default lies between those of the
-- partitions (her points are read in time order), matches in
-- location_default, across midnight into it, in the other schema
SELECT * FROM pg_temp.found(1601, '2023-07-01', '2023-07-05', 5, '1 minute');
SELECT * FROM pg_temp.found(1601, '2023-07-01', '2023-07-05', 5, NULL);
-- every partition, 1980 and 2095 too
SELECT * FROM pg_temp.found(1601, '-infinity', 'infinity', 20, '1 minute');
-- Bob's own points in location_default only
SELECT * FROM pg_temp.found(1602, '2023-07-03', '2023-07-03', 5, '1 minute');
SELECT * FROM pg_temp.found(1603, '2023-07-03', '2023-07-03', 5, '1 minute');

-- the partitions a search locks (to the end of the transaction) are those
-- it reads: location_default only where no partition covers the days
CREATE FUNCTION pg_temp.locked(p int, s date, e date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    PERFORM count(*) FROM udaconnect.find_connections(p, s, e, 5, '1 minute');
    SELECT string_agg(c.relname, ' ' ORDER BY c.relname) INTO r
      FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE l.pid = pg_backend_pid() AND l.mode = 'AccessShareLock' AND c.relkind IN ('r', 'p')
       AND (c.relname LIKE 'location%' OR c.relname LIKE 'Loc\_%');
    RETURN r;
END $$;
BEGIN;
SELECT pg_temp.locked(1601, '2023-07-01', '2023-07-01');
COMMIT;
BEGIN;
SELECT pg_temp.locked(1601, '2023-07-02', '2023-07-04');
COMMIT;
BEGIN;
SELECT pg_temp.locked(1601, '2023-07-05', '2023-07-05');
COMMIT;

-- errors name the partition and the index, and the hint the DDL that fixes it
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(E'\n', SQLSTATE || ': ' || m, 'DETAIL: ' || d, 'HINT: ' || h);
END $$;
-- run the DDL the error's hint gives, then the search again: its rows
CREATE FUNCTION pg_temp.apply_hint(p int, s date, e date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text; ddl text; r text;
BEGIN
    BEGIN
        PERFORM count(*) FROM udaconnect.find_connections(p, s, e, 5, '1 minute');
        RETURN 'no error';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    END;
    ddl := substring(h FROM 'with: (.*;)');
    EXECUTE ddl;
    SELECT format('%s rows, as PostGIS: %s', count(*), bool_and(f.as_postgis)) INTO r
      FROM pg_temp.found(p, s, e, 5, '1 minute') f;
    RETURN format('ran %s -> %s', ddl, r);
END $$;

-- a partition missing one of its indexes
BEGIN;
DROP INDEX udaconnect.location_p20230702_person_time_idx;
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-02', '2023-07-02', 5, '1 minute')$$);
-- days that partition does not hold are still searched
SELECT count(*) FROM udaconnect.find_connections(1601, '2023-07-03', '2023-07-04', 5, '1 minute');
SELECT pg_temp.apply_hint(1601, '2023-07-01', '2023-07-02');
ROLLBACK;
-- a relation of that name that is not an index
BEGIN;
DROP INDEX udc_parts."Loc_20230705_cell_time_idx";
CREATE SEQUENCE udc_parts."Loc_20230705_cell_time_idx";
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-05', '2023-07-05', 5, '1 minute')$$);
ROLLBACK;
-- an index of that name with other columns, without its INCLUDE column,
-- partial, of another table: recreated by the hint's DDL
BEGIN;
DROP INDEX udaconnect.location_p20230701_cell_time_idx;
CREATE INDEX location_p20230701_cell_time_idx ON udaconnect.location_p20230701 (creation_time, cell) INCLUDE (person_id, id, coordinate);
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-01', '2023-07-01', 5, '1 minute')$$);
SELECT pg_temp.apply_hint(1601, '2023-07-01', '2023-07-01');
ROLLBACK;
BEGIN;
DROP INDEX udaconnect.location_old_person_time_idx;
CREATE INDEX location_old_person_time_idx ON udaconnect.location_old (person_id, creation_time);
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '1980-06-01', '1980-06-01', 5, '1 minute')$$);
SELECT pg_temp.apply_hint(1601, '1980-06-01', '1980-06-01');
ROLLBACK;
BEGIN;
DROP INDEX udc_parts."Loc_20230705_cell_time_idx";
CREATE INDEX "Loc_20230705_cell_time_idx" ON udc_parts."Loc_20230705" (cell, creation_time) INCLUDE (person_id, id, coordinate)
    WHERE person_id <> 1602;
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-05', '2023-07-05', 5, '1 minute')$$);
SELECT pg_temp.apply_hint(1601, '2023-07-05', '2023-07-05');
ROLLBACK;
BEGIN;
DROP INDEX udc_parts."Loc_20230705_person_time_idx";
CREATE TABLE udc_parts.other (LIKE udc_parts."Loc_20230705");
CREATE INDEX "Loc_20230705_person_time_idx" ON udc_parts.other (person_id, creation_time) INCLUDE (coordinate);
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-05', '2023-07-05', 5, '1 minute')$$);
SELECT pg_temp.apply_hint(1601, '2023-07-05', '2023-07-05');
ROLLBACK;
-- not valid: a CREATE INDEX CONCURRENTLY of that name that failed (here on a
-- unique violation: Ann and Dee at the same instant; REINDEX would fail
-- again, the hint recreates it)
DROP INDEX udaconnect.location_p20230701_cell_time_idx;
CREATE UNIQUE INDEX CONCURRENTLY location_p20230701_cell_time_idx ON udaconnect.location_p20230701 (creation_time);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'udaconnect.location_p20230701_cell_time_idx'::regclass;
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-01', '2023-07-01', 5, '1 minute')$$);
-- days that partition does not hold are still searched
SELECT count(*) FROM udaconnect.find_connections(1601, '2023-07-02', '2023-07-03', 5, '1 minute');
SELECT pg_temp.apply_hint(1601, '2023-07-01', '2023-07-02');
SELECT pg_get_indexdef('udaconnect.location_p20230701_cell_time_idx'::regclass);
-- built over broken HOT chains in this transaction: retry later
BEGIN;
UPDATE pg_index SET indcheckxmin = true WHERE indexrelid = 'udc_parts."Loc_20230705_person_time_idx"'::regclass;
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-05', '2023-07-05', 5, '1 minute')$$);
ROLLBACK;
SELECT count(*) FROM udaconnect.find_connections(1601, '2023-07-01', '2023-07-05', 5, '1 minute');
-- a partition that is itself partitioned: refused where it is read
CREATE TABLE udaconnect.location_p202307a PARTITION OF udaconnect.location
    FOR VALUES FROM ('2023-07-10 00:00+00') TO ('2023-07-12 00:00+00') PARTITION BY RANGE (creation_time);
CREATE TABLE udaconnect.location_p20230710 PARTITION OF udaconnect.location_p202307a
    FOR VALUES FROM ('2023-07-10 00:00+00') TO ('2023-07-11 00:00+00');
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1601, '2023-07-10', '2023-07-10', 5, '1 minute')$$);
SELECT count(*) FROM udaconnect.find_connections(1601, '2023-07-01', '2023-07-02', 5, '1 minute');
DROP TABLE udaconnect.location_p202307a;
-- a partition made by hand without its indexes: while empty it is locked,
-- not read; the first row put into it is refused (the encounter maintenance
-- reads it), naming the index
CREATE TABLE udaconnect.location_p20230706 PARTITION OF udaconnect.location
    FOR VALUES FROM ('2023-07-06 00:00+00') TO ('2023-07-07 00:00+00');
BEGIN;
SELECT pg_temp.locked(1601, '2023-07-05', '2023-07-06');
ROLLBACK;
SELECT pg_temp.err($$INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
                     VALUES (1601, pg_temp.pt(0, 0), '2023-07-06 10:00Z')$$);
SELECT count(*) FROM udaconnect.location_p20230706;
-- with its two indexes, as the hints say, the row goes in
CREATE INDEX location_p20230706_person_time_idx ON udaconnect.location_p20230706 (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_p20230706_cell_time_idx ON udaconnect.location_p20230706 (cell, creation_time) INCLUDE (person_id, id, coordinate);
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
VALUES (1601, pg_temp.pt(0, 0), '2023-07-06 10:00Z') RETURNING tableoid::regclass AS partition;
DELETE FROM udaconnect.location WHERE person_id = 1601 AND creation_time = '2023-07-06 10:00Z';

-- the encounters the inserts made: across midnight between partitions, with
-- location_default, in 1980 and 2095; and the same as a rebuild makes
SELECT pg_temp.name(person_a) || '-' || pg_temp.name(person_b) AS pair,
       started_at AT TIME ZONE 'UTC' AS started, ended_at AT TIME ZONE 'UTC' AS ended, matches
  FROM udaconnect.encounter WHERE person_a BETWEEN 1601 AND 1604
 ORDER BY started_at, person_a, person_b;
CREATE FUNCTION pg_temp.vs_rebuild() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    diff text;
BEGIN
    BEGIN
        CREATE TEMP TABLE enc_kept AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1601 AND 1604;
        PERFORM udaconnect.encounters_rebuild('-infinity', 'infinity', '{1601,1602,1603,1604}');
        CREATE TEMP TABLE enc_rebuilt AS
            SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                   place_ids, place_matches, latitude, longitude, closest_a, closest_b
              FROM udaconnect.encounter WHERE person_a BETWEEN 1601 AND 1604;
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
SELECT pg_temp.vs_rebuild() AS after_inserts;
-- one at a time, in another order, each row alone in its statement
DELETE FROM udaconnect.location WHERE person_id BETWEEN 1601 AND 1604;
SELECT count(*) AS encounters_left FROM udaconnect.encounter WHERE person_a BETWEEN 1601 AND 1604;
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
VALUES (1602, pg_temp.pt(0, 2), '2023-07-03 23:59:50Z');
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
VALUES (1601, pg_temp.pt(0, 0), '2023-07-04 00:00:10Z');
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
VALUES (1602, pg_temp.pt(0, 2), '2023-07-02 00:00:00.2Z');
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
VALUES (1601, pg_temp.pt(0, 0), '2023-07-01 23:59:59.5Z');
SELECT pg_temp.name(person_a) || '-' || pg_temp.name(person_b) AS pair,
       started_at AT TIME ZONE 'UTC' AS started, ended_at AT TIME ZONE 'UTC' AS ended, matches
  FROM udaconnect.encounter WHERE person_a BETWEEN 1601 AND 1604
 ORDER BY started_at, person_a, person_b;
SELECT pg_temp.vs_rebuild() AS after_single_rows;

DELETE FROM udaconnect.location WHERE person_id BETWEEN 1601 AND 1604;
DROP TABLE udaconnect.location_p20230701, udaconnect.location_p20230702, udaconnect.location_p20230704,
           udaconnect.location_p20230706, udaconnect.location_old, udaconnect.location_future;
DROP SCHEMA udc_parts CASCADE;
