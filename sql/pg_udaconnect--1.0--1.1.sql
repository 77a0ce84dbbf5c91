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
--     longer executable by PUBLIC;
--   * the gateways' time-window rule lives once, in api_window(), and grpcd's
--     FindConnections goes through api_find_connections().
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

-- the gateways' connection searches: one window rule
CREATE FUNCTION api_window(window_seconds float8) RETURNS interval
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF window_seconds IS NULL THEN
        RETURN NULL;
    END IF;
    IF window_seconds = 'NaN'::float8 OR window_seconds < 0 OR window_seconds > 1e9 THEN
        RAISE EXCEPTION 'time_window must be a number of seconds in [0, 1e9], not %', window_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN make_interval(secs => window_seconds);
END;
$$;

CREATE FUNCTION api_find_connections(person_id integer, start_date date, end_date date,
                                     meters float8, window_seconds float8)
RETURNS TABLE (location_id bigint, person_id integer, latitude float8, longitude float8,
               creation_time timestamptz, distance_m float8)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
    SELECT * FROM udaconnect.find_connections($1, $2, $3, $4, udaconnect.api_window($5))
$$;

CREATE OR REPLACE FUNCTION api_connection(person_id integer, start_date date, end_date date,
                               meters float8, window_seconds float8)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
BEGIN
    -- the person of each row by primary key (a join would scan all persons)
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
                   'location', json_build_object('id', f.location_id, 'person_id', f.person_id,
                                                 'latitude', f.latitude, 'longitude', f.longitude,
                                                 'creation_time', f.creation_time),
                   'person', (SELECT udaconnect.api_person_json(p)
                                FROM udaconnect.person p WHERE p.id = f.person_id))
                 ORDER BY f.creation_time, f.location_id), '[]'::json)
          FROM udaconnect.find_connections($1, $2, $3, $4,
                   udaconnect.api_window($5)) f);
END;
$$;

CREATE OR REPLACE FUNCTION api_connections(person_id integer, start_date date, end_date date,
                                meters float8, window_seconds float8)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT coalesce(json_agg(
                   (SELECT json_build_object(
                               'person_id', p.id, 'first_name', p.first_name,
                               'last_name', p.last_name, 'company_name', p.company_name,
                               'first_met', g.first_met, 'last_met', g.last_met,
                               'meetings', g.meetings, 'min_distance_m', g.min_distance_m,
                               'latitude', g.latitude, 'longitude', g.longitude)
                      FROM udaconnect.person p WHERE p.id = g.person_id)
                 ORDER BY g.first_met, g.person_id), '[]'::json)
          FROM (SELECT f.person_id,
                       min(f.creation_time) AS first_met,
                       max(f.creation_time) AS last_met,
                       count(*) AS meetings,
                       min(f.distance_m) AS min_distance_m,
                       (array_agg(f.latitude ORDER BY f.creation_time, f.location_id))[1] AS latitude,
                       (array_agg(f.longitude ORDER BY f.creation_time, f.location_id))[1] AS longitude
                  FROM udaconnect.find_connections($1, $2, $3, $4,
                           udaconnect.api_window($5)) f
                 GROUP BY f.person_id) g);
END;
$$;

REVOKE ALL ON FUNCTION api_find_connections(integer, date, date, float8, float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_find_connections(integer, date, date, float8, float8) TO udaconnect_api;
