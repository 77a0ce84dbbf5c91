-- pg_udaconnect 1.6 -> 1.7 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.7').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- The shared library must be the 1.7 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.7'" to load this file. \quit

-- ====== places_at in C (begin) ======
-- places_at() reads the places whose box meets the points' once and tests
-- each point against those whose box holds it (src/places_lookup.c); the
-- encounters place their matches with the same C code, so the SQL helper
-- encounter_places_of() is gone.  Same signature, same privileges (REVOKE
-- ALL FROM PUBLIC stays); no longer SECURITY DEFINER: the C code reads the
-- places with the place table owner's rights itself.
CREATE OR REPLACE FUNCTION places_at(latitude float8[], longitude float8[]) RETURNS integer[]
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'udc_places_at';
DROP FUNCTION encounter_places_of(float8[], float8[]);
-- ====== places_at in C (end) ======
