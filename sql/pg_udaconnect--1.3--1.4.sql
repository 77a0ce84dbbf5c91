-- pg_udaconnect 1.3 -> 1.4 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.4').
-- Keeps every row.  What changes (docs/upgrades.md):
--   * encounters(person_id, from, to) is read in C (src/encounter_read.c)
--     instead of an inlined SQL query: the same rows in the same order,
--     in about half the time.
-- The shared library must be the 1.4 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.4'" to load this file. \quit

CREATE OR REPLACE FUNCTION encounters(person_id integer, from_time timestamptz, to_time timestamptz)
RETURNS TABLE (id bigint, other_person_id integer, started_at timestamptz,
               ended_at timestamptz, duration interval, matches bigint,
               min_distance_m float8, place_id integer, place_name text,
               latitude float8, longitude float8, version bigint)
LANGUAGE C STABLE STRICT ROWS 500
AS 'MODULE_PATHNAME', 'udc_encounters';
