-- pg_udaconnect 1.7 -> 1.8 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.8').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- No restart needed for the SQL; the 1.8 library reads a person's
-- encounters in block order (encounters()), which a restart brings.
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.8'" to load this file. \quit

-- ====== api_persons_gone (begin) ======
-- Whether each of up to 1000 persons no longer exists, in one statement:
-- what both gateways ask before they end the live streams of a person that
-- NOTIFY udaconnect_person_erased named (grpcd asked once per person, as
-- api_encounter_position; httpd read api_person_public).
CREATE FUNCTION api_persons_gone(person_ids integer[])
RETURNS TABLE (ord bigint, gone boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF person_ids IS NULL OR array_position(person_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'person_ids must be an array of person ids without NULLs'
            USING ERRCODE = 'null_value_not_allowed', COLUMN = 'person_ids';
    END IF;
    IF cardinality(person_ids) > 1000 THEN
        RAISE EXCEPTION 'at most 1000 persons a call, not %', cardinality(person_ids)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'person_ids',
                  HINT = 'Ask for the rest in another call.';
    END IF;
    RETURN QUERY
    SELECT x.o, NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = x.p)
      FROM unnest(person_ids) WITH ORDINALITY AS x(p, o)
     ORDER BY x.o;
END;
$$;

REVOKE ALL ON FUNCTION api_persons_gone(integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_persons_gone(integer[]) TO udaconnect_api;

-- A deployment's grpcd role (deployment/docker/postgres/init.sql) asks it
-- too, as a fresh deployment's does.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'udaconnect_reader') THEN
        GRANT EXECUTE ON FUNCTION api_persons_gone(integer[]) TO udaconnect_reader;
    END IF;
END;
$$;
-- ====== api_persons_gone (end) ======
