-- pg_udaconnect 1.3 -> 1.4 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.4').
-- Keeps every row.  What changes (docs/upgrades.md):
--   * encounters(person_id, from, to) is read in C (src/encounter_read.c)
--     instead of an inlined SQL query: the same rows in the same order,
--     in about half the time;
--   * the merge of new matches with the stored encounters is C
--     (src/encounter_merge.c, encounter_write.c): encounter_merge() goes,
--     encounter_notify_persons() is the C function the merge notifies with;
--   * encounter is filled to 60 % a page from now on (fillfactor), so that
--     extending an encounter is a HOT update; pages written before keep
--     their fill until rewritten (VACUUM FULL udaconnect.encounter, when
--     convenient).
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

DROP FUNCTION encounter_merge(integer[], integer[], timestamptz[], timestamptz[], bigint[], float8[],
                              float8[], float8[], bigint[], bigint[], integer[], integer[], integer[], bigint[]);

CREATE OR REPLACE FUNCTION encounter_notify_persons(persons integer[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'udc_encounter_notify_persons'
    LANGUAGE C VOLATILE;

ALTER TABLE encounter SET (fillfactor = 60);
