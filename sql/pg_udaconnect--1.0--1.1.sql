-- pg_udaconnect 1.0 -> 1.1 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.1').
-- Keeps every row.  What changes (docs/upgrades.md):
--   * the person side of the location -> person reference becomes an AFTER
--     row trigger in C that sees locations committed after a REPEATABLE READ
--     or SERIALIZABLE snapshot (no orphan; 23503 as a foreign key raises);
--   * record_location() (and so POST /api/locations) applies the location
--     rule's time check: 0001-01-01 .. 9999-12-31 UTC and at most
--     udaconnect.ingest_max_future_skew in the future, as the ingest does;
--   * ingest_status / ingest_pause() / ingest_resume() say with a NOTICE when
--     the library is not preloaded (ingest off);
--   * ingest_worker_partitions(), ingest_pause() and ingest_resume() are no
--     longer executable by PUBLIC.
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.1'" to load this file. \quit

-- person side of the reference
DROP TRIGGER person_locations_fk ON person;
DROP FUNCTION person_check_locations();
CREATE FUNCTION person_check_locations() RETURNS trigger
    AS 'MODULE_PATHNAME', 'udc_person_check_locations'
    LANGUAGE C;
CREATE TRIGGER person_locations_fk AFTER DELETE OR UPDATE OF id ON person
    FOR EACH ROW EXECUTE FUNCTION person_check_locations();

-- one time rule on every entry path
CREATE FUNCTION check_creation_time(creation_time timestamptz) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'udc_check_creation_time'
    LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION record_location(person_id integer, latitude float8, longitude float8,
                                           creation_time timestamptz DEFAULT now())
RETURNS udaconnect.location
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    point  geometry;
    result udaconnect.location;
BEGIN
    IF person_id IS NULL THEN
        RAISE EXCEPTION 'person_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM udaconnect.check_creation_time(creation_time);   -- 22004 / 22023
    point := udaconnect.make_point(latitude, longitude);   -- validates: 22004 / 22003
    IF NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = record_location.person_id) THEN
        RAISE EXCEPTION 'person % does not exist', person_id
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Create the person first with udaconnect.create_person().';
    END IF;
    INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
    VALUES (record_location.person_id, point, record_location.creation_time)
    RETURNING * INTO result;
    RETURN result;
END;
$$;

-- ingest: say when it is off; not for PUBLIC
CREATE FUNCTION ingest_check_loaded() RETURNS boolean
    AS 'MODULE_PATHNAME', 'udc_ingest_check_loaded'
    LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION ingest_pause() RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    was_paused boolean;
BEGIN
    PERFORM udaconnect.ingest_check_loaded();
    SELECT paused INTO was_paused FROM udaconnect.ingest_control FOR UPDATE;
    UPDATE udaconnect.ingest_control SET paused = true, changed_at = now() WHERE NOT paused;
    RETURN NOT was_paused;
END;
$$;

CREATE OR REPLACE FUNCTION ingest_resume() RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    was_paused boolean;
BEGIN
    PERFORM udaconnect.ingest_check_loaded();
    SELECT paused INTO was_paused FROM udaconnect.ingest_control FOR UPDATE;
    UPDATE udaconnect.ingest_control SET paused = false, changed_at = now() WHERE paused;
    RETURN was_paused;
END;
$$;

REVOKE ALL ON FUNCTION ingest_worker_partitions() FROM PUBLIC;
REVOKE ALL ON FUNCTION ingest_check_loaded() FROM PUBLIC;
REVOKE ALL ON FUNCTION ingest_pause() FROM PUBLIC;
REVOKE ALL ON FUNCTION ingest_resume() FROM PUBLIC;
