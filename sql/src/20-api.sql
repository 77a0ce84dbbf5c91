-- pg_udaconnect: the SQL API (the contract gateways and users rely on).

-- ---------------------------------------------------------------------------
-- create_person(first_name, last_name, company_name) -> person
-- Names are trimmed; each must be non-empty and at most 200 characters.
-- ---------------------------------------------------------------------------
CREATE FUNCTION create_person(first_name text, last_name text, company_name text)
RETURNS udaconnect.person
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    names  text[] := ARRAY[first_name, last_name, company_name];
    labels text[] := ARRAY['first_name', 'last_name', 'company_name'];
    v      text;
    result udaconnect.person;
BEGIN
    FOR i IN 1..3 LOOP
        v := names[i];
        IF v IS NULL THEN
            RAISE EXCEPTION '% must not be null', labels[i]
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        v := btrim(v);
        IF v = '' THEN
            RAISE EXCEPTION '% must not be empty', labels[i]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF length(v) > 200 THEN
            RAISE EXCEPTION '% is too long (% characters; at most 200)', labels[i], length(v)
                USING ERRCODE = 'string_data_right_truncation';
        END IF;
        names[i] := v;
    END LOOP;
    INSERT INTO udaconnect.person (first_name, last_name, company_name)
    VALUES (names[1], names[2], names[3])
    RETURNING * INTO result;
    RETURN result;
END;
$$;

-- ---------------------------------------------------------------------------
-- check_creation_time(creation_time) -> creation_time
-- The time part of the location rule every entry path applies
-- (core/location_rule.c; the ingest and udaconnect-grpcd use the same code):
-- between 0001-01-01 and 9999-12-31 UTC and at most
-- udaconnect.ingest_max_future_skew after the server's clock (22023 both).
-- ---------------------------------------------------------------------------
CREATE FUNCTION check_creation_time(creation_time timestamptz) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'udc_check_creation_time'
    LANGUAGE C VOLATILE PARALLEL SAFE;

-- ---------------------------------------------------------------------------
-- record_location(person_id, latitude, longitude, creation_time) -> location
-- ---------------------------------------------------------------------------
CREATE FUNCTION record_location(person_id integer, latitude float8, longitude float8,
                                creation_time timestamptz DEFAULT now())
RETURNS udaconnect.location
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
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

-- ---------------------------------------------------------------------------
-- find_connections: the connection finder (C, pg_udaconnect/src/finder.c).
--
-- One row per location L2 of another person that lies within `meters`
-- (geodesic, WGS84 spheroid) of some location L1 of `person_id`, both in
-- [start_date 00:00 UTC, end_date + 1 day 00:00 UTC), and, when time_window
-- is given, |L1.creation_time - L2.creation_time| <= time_window.
-- distance_m is the distance to the nearest such L1.  Rows come ordered by
-- creation_time, location_id.
-- ---------------------------------------------------------------------------
CREATE FUNCTION find_connections(person_id integer, start_date date, end_date date,
                                 meters float8 DEFAULT 5, time_window interval DEFAULT NULL)
RETURNS TABLE (location_id bigint, person_id integer, latitude float8, longitude float8,
               creation_time timestamptz, distance_m float8)
AS 'MODULE_PATHNAME', 'udc_find_connections'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 100;

-- ---------------------------------------------------------------------------
-- connected_persons: one row per connected person (a summary of
-- find_connections, same arguments and rules).
-- ---------------------------------------------------------------------------
CREATE FUNCTION connected_persons(person_id integer, start_date date, end_date date,
                                  meters float8 DEFAULT 5, time_window interval DEFAULT NULL)
RETURNS TABLE (person_id integer, first_name text, last_name text, company_name text,
               first_met timestamptz, last_met timestamptz, meetings bigint,
               min_distance_m float8)
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
    SELECT p.id, p.first_name, p.last_name, p.company_name,
           min(f.creation_time), max(f.creation_time), count(*), min(f.distance_m)
      FROM udaconnect.find_connections($1, $2, $3, $4, $5) f
      JOIN udaconnect.person p ON p.id = f.person_id
     GROUP BY p.id
     ORDER BY min(f.creation_time), p.id
$$;

-- ---------------------------------------------------------------------------
-- Privileges.  The API functions read and write the tables with the
-- extension owner's rights (find_connections, in C, reads them directly), so
-- EXECUTE is the gate: it is not granted to PUBLIC.  Grant it to the roles
-- that may use the API (the HTTP gateway's role udaconnect_api gets it in
-- 60-http.sql).
-- ---------------------------------------------------------------------------
REVOKE ALL ON FUNCTION create_person(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION record_location(integer, float8, float8, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION find_connections(integer, date, date, float8, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION connected_persons(integer, date, date, float8, interval) FROM PUBLIC;
