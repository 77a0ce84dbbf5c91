-- find_connections reads its indexes by column position: it must refuse an
-- index of another layout, an invalid one and a missing one with an error
-- naming the problem and the DDL that fixes it, and work again once the index
-- is recreated with that DDL.  (Run as superuser: catalog updates, operator
-- class.)  On 1.5 location is partitioned and has no index of its own: these
-- rows (2022, which no partition covers) lie in location_default, read
-- through its own location_default_person_time_idx and
-- location_default_cell_time_idx, the indexes broken here; the errors name
-- the partition (test/sql/finder_parts.sql: the other partitions).  The plain
-- table of an installed 1.4, read through location_person_time_idx and
-- location_cell_time_idx found by name, gets the same checks: the end of
-- this file, in a database of its own.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
-- :LAST_ERROR_SQLSTATE after each failing call shows the SQLSTATE

SELECT id AS a FROM udaconnect.create_person('Ann', 'A', 'Acme') \gset
SELECT id AS b FROM udaconnect.create_person('Ben', 'B', 'Bolts') \gset
SELECT udaconnect.record_location(:a, 45, 7, '2022-05-01 12:00:00Z') IS NOT NULL AS ok;
-- Ben twice ~3 m away at the same instant: (cell, creation_time) is duplicated
SELECT udaconnect.record_location(:b, 45, 7.00004, '2022-05-01 12:00:30Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:b, 45, 7.00004, '2022-05-01 12:00:30Z') IS NOT NULL AS ok;
-- all-visible heap pages: the finder then reads every value from the index
VACUUM udaconnect.location;

CREATE TEMP TABLE shipped AS
SELECT c.relname, pg_get_indexdef(c.oid) AS def
  FROM pg_class c
 WHERE c.relnamespace = 'udaconnect'::regnamespace
   AND c.relname IN ('location_default_cell_time_idx', 'location_default_person_time_idx', 'person_pkey');

CREATE FUNCTION pg_temp.met(pid int) RETURNS TABLE (first_name text, distance_m numeric)
LANGUAGE sql AS $$
  SELECT p.first_name, round(f.distance_m::numeric, 3)
    FROM udaconnect.find_connections(pid, '2022-05-01', '2022-05-01', 5, '1 minute') f
    JOIN udaconnect.person p ON p.id = f.person_id
   ORDER BY f.location_id $$;

-- Call the finder; if it fails, run the DDL its hint gives, then call it again.
CREATE FUNCTION pg_temp.apply_hint(pid int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  hint text;
  ddl text;
  n bigint;
BEGIN
  BEGIN
    PERFORM * FROM pg_temp.met(pid);
    RETURN 'no error';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  END;
  ddl := substring(hint FROM 'with: (.*;)');
  EXECUTE ddl;
  SELECT count(*) INTO n FROM pg_temp.met(pid);
  RETURN format('ran %s -> %s rows', ddl, n);
END $$;

-- the shipped layout works
SELECT * FROM pg_temp.met(:a);

-- (a) INCLUDE columns in another order
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell, creation_time) INCLUDE (person_id, coordinate, id);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- (b) key columns in another order
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (creation_time, cell) INCLUDE (person_id, id, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- (b2) another key column
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell, person_id) INCLUDE (id, creation_time, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- (c) partial
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell, creation_time) INCLUDE (person_id, id, coordinate)
  WHERE person_id <> :b;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- (d) descending, and NULLS FIRST
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell, creation_time DESC) INCLUDE (person_id, id, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell NULLS FIRST, creation_time) INCLUDE (person_id, id, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- (e) missing
DROP INDEX udaconnect.location_default_cell_time_idx;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- an expression, another access method, another table, another operator class
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default ((cell + 0), creation_time) INCLUDE (person_id, id, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default USING hash (cell);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.person (id) INCLUDE (first_name);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
CREATE OPERATOR CLASS public.finder_test_int8_ops FOR TYPE int8 USING btree AS
  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
  FUNCTION 1 btint8cmp(int8, int8);
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE INDEX location_default_cell_time_idx ON udaconnect.location_default (cell public.finder_test_int8_ops, creation_time) INCLUDE (person_id, id, coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP OPERATOR FAMILY public.finder_test_int8_ops USING btree;

-- not an index at all
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE TABLE udaconnect.location_default_cell_time_idx (x int);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE udaconnect.location_default_cell_time_idx;
SELECT pg_temp.apply_hint(:a);

-- invalid: CREATE INDEX CONCURRENTLY that failed (here on a unique violation:
-- REINDEX would fail again, the hint recreates it)
DROP INDEX udaconnect.location_default_cell_time_idx;
CREATE UNIQUE INDEX CONCURRENTLY location_default_cell_time_idx ON udaconnect.location_default (cell, creation_time) INCLUDE (person_id, id, coordinate);
SELECT indisvalid, indisready, indislive FROM pg_index WHERE indexrelid = 'udaconnect.location_default_cell_time_idx'::regclass;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- invalid: right layout, indisvalid false (as during DROP INDEX CONCURRENTLY)
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'udaconnect.location_default_cell_time_idx'::regclass;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE pg_index SET indisvalid = true WHERE indexrelid = 'udaconnect.location_default_cell_time_idx'::regclass;
SELECT * FROM pg_temp.met(:a);

-- built over broken HOT chains (indcheckxmin) in this very transaction: not
-- usable yet, with a retryable SQLSTATE, as the planner would not use it
BEGIN;
UPDATE pg_index SET indcheckxmin = true WHERE indexrelid = 'udaconnect.location_default_cell_time_idx'::regclass;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- location_default_person_time_idx without its INCLUDE column, and with a wrong key
DROP INDEX udaconnect.location_default_person_time_idx;
CREATE INDEX location_default_person_time_idx ON udaconnect.location_default (person_id, creation_time);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP INDEX udaconnect.location_default_person_time_idx;
CREATE INDEX location_default_person_time_idx ON udaconnect.location_default (person_id, id) INCLUDE (coordinate);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
DROP INDEX udaconnect.location_default_person_time_idx;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- person_pkey on another column (the finder probes it with int4eq)
ALTER TABLE udaconnect.person DROP CONSTRAINT person_pkey;
ALTER TABLE udaconnect.person ADD CONSTRAINT person_pkey UNIQUE (first_name, id);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);

-- columns of another type, or nullable
ALTER TABLE udaconnect.location ALTER COLUMN person_id TYPE bigint;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE udaconnect.location ALTER COLUMN person_id TYPE integer;
ALTER TABLE udaconnect.location ALTER COLUMN person_id DROP NOT NULL;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE udaconnect.location ALTER COLUMN person_id SET NOT NULL;
SELECT * FROM pg_temp.met(:a);

-- the hints' DDL gave back exactly the shipped indexes
SELECT s.relname, s.def = pg_get_indexdef(format('udaconnect.%I', s.relname)::regclass) AS same_as_shipped
  FROM shipped s ORDER BY s.relname;

-- The plain location table of an installed 1.4, with the current library:
-- its indexes are found by name, with the same checks and hints
SELECT current_database() AS regress_db \gset
CREATE DATABASE udaconnect_regress_finder14;
\c udaconnect_regress_finder14
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE EXTENSION postgis;
CREATE EXTENSION pg_udaconnect VERSION '1.4';
SELECT relkind FROM pg_class WHERE oid = 'udaconnect.location'::regclass;
SELECT id AS a FROM udaconnect.create_person('Ann', 'A', 'Acme') \gset
SELECT id AS b FROM udaconnect.create_person('Ben', 'B', 'Bolts') \gset
SELECT udaconnect.record_location(:a, 45, 7, '2022-05-01 12:00:00Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:b, 45, 7.00004, '2022-05-01 12:00:30Z') IS NOT NULL AS ok;
CREATE TEMP TABLE shipped AS
SELECT c.relname, pg_get_indexdef(c.oid) AS def
  FROM pg_class c
 WHERE c.relnamespace = 'udaconnect'::regnamespace
   AND c.relname IN ('location_cell_time_idx', 'location_person_time_idx');
CREATE FUNCTION pg_temp.met(pid int) RETURNS TABLE (first_name text, distance_m numeric)
LANGUAGE sql AS $$
  SELECT p.first_name, round(f.distance_m::numeric, 3)
    FROM udaconnect.find_connections(pid, '2022-05-01', '2022-05-01', 5, '1 minute') f
    JOIN udaconnect.person p ON p.id = f.person_id
   ORDER BY f.location_id $$;
CREATE FUNCTION pg_temp.apply_hint(pid int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  hint text;
  ddl text;
  n bigint;
BEGIN
  BEGIN
    PERFORM * FROM pg_temp.met(pid);
    RETURN 'no error';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  END;
  ddl := substring(hint FROM 'with: (.*;)');
  EXECUTE ddl;
  SELECT count(*) INTO n FROM pg_temp.met(pid);
  RETURN format('ran %s -> %s rows', ddl, n);
END $$;
SELECT * FROM pg_temp.met(:a);
-- missing
DROP INDEX udaconnect.location_cell_time_idx;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
-- not an index
DROP INDEX udaconnect.location_cell_time_idx;
CREATE TABLE udaconnect.location_cell_time_idx (x int);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE udaconnect.location_cell_time_idx;
SELECT pg_temp.apply_hint(:a);
-- another layout
DROP INDEX udaconnect.location_person_time_idx;
CREATE INDEX location_person_time_idx ON udaconnect.location (person_id, creation_time);
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
-- not valid
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'udaconnect.location_cell_time_idx'::regclass;
SELECT * FROM pg_temp.met(:a);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.apply_hint(:a);
SELECT s.relname, s.def = pg_get_indexdef(format('udaconnect.%I', s.relname)::regclass) AS same_as_shipped
  FROM shipped s ORDER BY s.relname;
\c :regress_db
DROP DATABASE udaconnect_regress_finder14;
