-- pg_udaconnect: the JSON API behind udaconnect-httpd (gateway/httpd).
--
-- Each api_* function produces a complete JSON response body, so the HTTP
-- gateway only parses the request, calls one function with parameters and
-- passes the text through.  They are PL/pgSQL so that their query plans are
-- cached per session (a non-inlined SQL function is planned on every call,
-- which halves the throughput of the person lookup).  They run as SECURITY DEFINER with a fixed
-- search_path and TimeZone (timestamps are rendered in UTC, ISO 8601), so the
-- gateway's role, udaconnect_api, needs EXECUTE on these functions and no
-- table privileges at all (api_person, the hot path, is the one exception:
-- see there).
--
-- Errors name the offending request field in the COLUMN error field where
-- the gateway cannot know it (e.g. an unparsable creation_time).
--
-- Every api_* function takes the verified caller first (caller_role,
-- caller_id; 40-privacy.sql says who may see what) and applies the rule
-- itself: 42501 when the caller may not (-> 403 / PERMISSION_DENIED).

-- ---------------------------------------------------------------------------
-- The gateway's least-privilege role (roles are cluster-wide: create it only
-- if it does not exist yet).  NOLOGIN is not set: the gateway logs in as it.
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'udaconnect_api') THEN
        CREATE ROLE udaconnect_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- JSON renderings of one row (the original's field names; latitude and
-- longitude are numbers, the right way round: latitude = y, longitude = x).
-- ---------------------------------------------------------------------------
-- STABLE, as json_build_object is: a SQL function declared IMMUTABLE whose
-- body is not is never inlined, and a non-inlined one is planned again in
-- every statement that calls it (that cost api_connection almost half of its
-- time).
CREATE FUNCTION api_person_json(p udaconnect.person) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object('id', p.id, 'first_name', p.first_name,
                             'last_name', p.last_name, 'company_name', p.company_name)
$$;

CREATE FUNCTION api_location_json(l udaconnect.location) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object('id', l.id, 'person_id', l.person_id,
                             'latitude', public.ST_Y(l.coordinate),
                             'longitude', public.ST_X(l.coordinate),
                             'creation_time', l.creation_time)
$$;

-- ---------------------------------------------------------------------------
-- GET /api/persons: organizers all persons; an attendee themself and those
-- they have met.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_persons(caller_role text, caller_id integer) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT coalesce(json_agg(udaconnect.api_person_json(p) ORDER BY p.id), '[]'::json)
          FROM udaconnect.person p
         WHERE udaconnect.caller_is_organizer($1, $2)
            OR p.id = $2
            OR p.id IN (SELECT udaconnect.met_persons($2)));
END;
$$;

-- GET /api/persons/{id}: the hot read route, so it is the one exception to
-- the pattern above.  A LANGUAGE sql set-returning function without
-- SECURITY DEFINER or SET clauses is inlined into the gateway's prepared
-- statement (SELECT body FROM udaconnect.api_person($1, $2, $3) AS body):
-- one plan, cached by the prepared statement, no PL/pgSQL call, no SPI, no
-- GUC save/restore, no security-definer switch (together about half of the
-- backend's CPU per request).  The body is SQL-standard (BEGIN ATOMIC), so
-- its names are bound when the extension is created and the caller's
-- search_path cannot change them.  Being inlined, it runs with the caller's
-- privileges: it reads api_person_public, a view of exactly the four
-- published person fields, on which udaconnect_api has SELECT (the tables
-- themselves stay closed to it).
-- Who may see the row: caller_may_see_person (C), which does not depend on
-- the row, so the planner makes it a one-time filter: checked once, before
-- the index probe, and raising 42501 whether or not the person exists.
-- Zero rows when there is no such person and the caller could see it
-- (-> 404).
CREATE VIEW api_person_public AS
    SELECT p.id, p.first_name, p.last_name, p.company_name FROM udaconnect.person p;
COMMENT ON VIEW api_person_public IS
    'The published fields of every person (what GET /api/persons returns): '
    'the only relation the gateway role udaconnect_api may read.';

CREATE FUNCTION api_person(caller_role text, caller_id integer, id integer) RETURNS SETOF json
LANGUAGE sql STABLE PARALLEL RESTRICTED ROWS 1
BEGIN ATOMIC
    SELECT pg_catalog.json_build_object('id', p.id, 'first_name', p.first_name,
                                        'last_name', p.last_name, 'company_name', p.company_name)
      FROM udaconnect.api_person_public p
     WHERE udaconnect.caller_may_see_person(api_person.caller_role, api_person.caller_id, api_person.id)
       AND p.id = api_person.id;
END;

-- POST /api/persons (organizers)
CREATE FUNCTION api_create_person(caller_role text, caller_id integer,
                                  first_name text, last_name text, company_name text)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM udaconnect.caller_require_organizer($1, $2, 'create persons');
    RETURN (
        SELECT udaconnect.api_person_json(udaconnect.create_person($3, $4, $5)));
END;
$$;

-- DELETE /api/persons/{id} (organizers, or the attendee themself):
-- forget_person, answered with how many rows went.  NULL when there is no
-- such person (-> 404).
CREATE FUNCTION api_forget_person(caller_role text, caller_id integer, id integer)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    by_organizer boolean := udaconnect.caller_is_organizer(caller_role, caller_id);
    f record;
BEGIN
    PERFORM udaconnect.caller_require_self(caller_role, caller_id, id, 'erase');
    -- the lock forget_person takes, taken first: of two concurrent erasures
    -- the second waits, then finds no person (NULL -> 404)
    PERFORM 1 FROM udaconnect.person p WHERE p.id = api_forget_person.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO f FROM udaconnect.forget_person(id, CASE WHEN by_organizer THEN 'organizer' ELSE 'self' END);
    RETURN json_build_object('erased', true, 'locations', f.locations, 'rejects', f.rejects);
END;
$$;

-- POST /api/persons/{id}/token (organizers): the claims of an attendee
-- token for the person, which the gateway signs.  NULL when there is no
-- such person (-> 404).
CREATE FUNCTION api_token_claims(caller_role text, caller_id integer, id integer)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_require_organizer(caller_role, caller_id, 'issue tokens');
    IF NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = api_token_claims.id) THEN
        RETURN NULL;
    END IF;
    RETURN json_build_object('sub', id::text, 'role', 'attendee');
END;
$$;

-- ---------------------------------------------------------------------------
-- The time window of a connection search as both gateways take it, a number
-- of seconds: NULL = none; otherwise finite, >= 0 and at most 1e9
-- (make_interval() saturates silently past ~1e13 s into a negative
-- interval).  The one place this rule lives: httpd's `window` and grpcd's
-- `time_window_seconds` come here, then find_connections applies its own.
-- ---------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------
-- A connection search as a caller may make it: an attendee only for
-- themself, at most attendee_max_distance() wide and attendee_max_window()
-- long (that window when none is given: co-presence, not "anyone who was
-- ever near one of my points"); the window in seconds
-- as above; rows in the finder's order.  grpcd's FindConnections streams
-- these rows; api_connections shapes them for httpd.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_find_connections(caller_role text, caller_id integer,
                                     person integer, start_date date, end_date date,
                                     meters float8, window_seconds float8)
RETURNS TABLE (location_id bigint, person_id integer, latitude float8, longitude float8,
               creation_time timestamptz, distance_m float8)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM udaconnect.caller_require_self($1, $2, $3, 'search the connections of');
    IF udaconnect.caller_is_organizer($1, $2) THEN
        RETURN QUERY
            SELECT * FROM udaconnect.find_connections($3, $4, $5, $6, udaconnect.api_window($7));
        RETURN;
    END IF;
    IF $6 > udaconnect.attendee_max_distance() THEN
        RAISE EXCEPTION 'an attendee may search at most % m around their locations, not % m',
                udaconnect.attendee_max_distance(), $6
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Organizers may search wider (setting udaconnect.attendee_max_distance).';
    END IF;
    IF udaconnect.api_window($7) > udaconnect.attendee_max_window() THEN
        RAISE EXCEPTION 'an attendee may search a time window of at most % s, not % s',
                extract(epoch FROM udaconnect.attendee_max_window())::float8, $7
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Organizers may search longer (setting udaconnect.attendee_max_window).';
    END IF;
    -- no window given: the attendee's longest
    RETURN QUERY
        SELECT * FROM udaconnect.find_connections($3, $4, $5, $6,
                   coalesce(udaconnect.api_window($7), udaconnect.attendee_max_window()));
END;
$$;

-- ---------------------------------------------------------------------------
-- GET /api/persons/{id}/connection (per_person false): the original's
-- shape, one entry per qualifying location of another person.
-- GET /api/persons/{id}/connections (per_person true): one entry per
-- connected person, the connected_persons summary plus where they first met
-- (latitude, longitude of the earliest qualifying location).
-- window_seconds NULL = no time window.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_connections(caller_role text, caller_id integer,
                                person_id integer, start_date date, end_date date,
                                meters float8, window_seconds float8, per_person boolean)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
BEGIN
    IF per_person IS NULL THEN
        RAISE EXCEPTION 'per_person must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT per_person THEN
        -- the person of each row by primary key (a join would scan all persons)
        RETURN (
            SELECT coalesce(json_agg(json_build_object(
                       'location', json_build_object('id', f.location_id, 'person_id', f.person_id,
                                                     'latitude', f.latitude, 'longitude', f.longitude,
                                                     'creation_time', f.creation_time),
                       'person', (SELECT udaconnect.api_person_json(p)
                                    FROM udaconnect.person p WHERE p.id = f.person_id))
                     ORDER BY f.creation_time, f.location_id), '[]'::json)
              FROM udaconnect.api_find_connections($1, $2, $3, $4, $5, $6, $7) f);
    END IF;
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
                  FROM udaconnect.api_find_connections($1, $2, $3, $4, $5, $6, $7) f
                 GROUP BY f.person_id) g);
END;
$$;

-- ---------------------------------------------------------------------------
-- GET /api/locations: a page of locations in id order.
--   lim       page size (the gateway enforces 1..1000)
--   after_id  keyset cursor: only ids greater than this (NULL = from the start)
--   skip      offset (NULL = 0)
--   person, start_date, end_date  optional filters (dates are UTC days,
--             end_date inclusive, as in find_connections)
-- An attendee reads only their own: person defaults to them, another is 42501.
-- next_cursor is the last id of a full page (NULL when this page is the last).
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_locations(caller_role text, caller_id integer,
                              lim integer, after_id bigint, skip bigint, person integer,
                              start_date date, end_date date,
                              OUT body json, OUT next_cursor bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    t0 timestamptz := (start_date::timestamp AT TIME ZONE 'UTC');
    t1 timestamptz := ((end_date + 1)::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF NOT udaconnect.caller_is_organizer(caller_role, caller_id) THEN
        person := coalesce(person, caller_id);
        PERFORM udaconnect.caller_require_self(caller_role, caller_id, person, 'read the locations of');
    END IF;
    IF lim IS NULL OR lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000, not %', lim
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'limit';
    END IF;
    IF skip < 0 THEN
        RAISE EXCEPTION 'offset must not be negative, not %', skip
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'offset';
    END IF;
    IF start_date > end_date THEN
        RAISE EXCEPTION 'start_date % must not be after end_date %', start_date, end_date
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'start_date';
    END IF;
    -- one plan per filter combination keeps the indexes usable
    EXECUTE format(
        'WITH page AS (SELECT l.* FROM udaconnect.location l WHERE true %s %s %s %s
                        ORDER BY l.id LIMIT $1 OFFSET $3)
         SELECT coalesce(json_agg(udaconnect.api_location_json(page) ORDER BY page.id), ''[]''::json),
                CASE WHEN count(*) = $1 THEN max(page.id) END
           FROM page',
        CASE WHEN after_id IS NOT NULL THEN 'AND l.id > $2' ELSE '' END,
        CASE WHEN person IS NOT NULL THEN 'AND l.person_id = $4' ELSE '' END,
        CASE WHEN start_date IS NOT NULL THEN 'AND l.creation_time >= $5' ELSE '' END,
        CASE WHEN end_date IS NOT NULL THEN 'AND l.creation_time < $6' ELSE '' END)
    INTO body, next_cursor
    USING lim, after_id, coalesce(skip, 0), person, t0, t1;
END;
$$;

-- GET /api/locations/{id}: NULL when there is no such location (-> 404);
-- an attendee's own only (42501 for any other id, existing or not).
CREATE FUNCTION api_location(caller_role text, caller_id integer, id bigint) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    l udaconnect.location;
BEGIN
    SELECT * INTO l FROM udaconnect.location o WHERE o.id = api_location.id;
    IF udaconnect.caller_is_organizer(caller_role, caller_id) THEN
        RETURN CASE WHEN FOUND THEN udaconnect.api_location_json(l) END;   -- NULL -> 404
    END IF;
    -- an attendee: one answer for another's location and for a missing id,
    -- naming neither an owner nor whether it exists
    IF NOT FOUND OR l.person_id <> caller_id THEN
        RAISE EXCEPTION 'attendee % may not read location %', caller_id, id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'An attendee sees and reports only their own locations and connections.';
    END IF;
    RETURN udaconnect.api_location_json(l);
END;
$$;

-- POST /api/locations.  creation_time is ISO 8601 text (no zone = UTC);
-- NULL means now().  An attendee reports only for themself, and at most
-- attendee_max_report_age() back.
CREATE FUNCTION api_create_location(caller_role text, caller_id integer,
                                    person_id integer, latitude float8, longitude float8,
                                    creation_time text)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    ts timestamptz;
BEGIN
    PERFORM udaconnect.caller_require_self(caller_role, caller_id, person_id, 'report locations for');
    IF creation_time IS NULL THEN
        ts := now();
    ELSE
        BEGIN
            ts := creation_time::timestamptz;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'creation_time is not a valid timestamp: "%"', creation_time
                USING ERRCODE = 'invalid_datetime_format', COLUMN = 'creation_time',
                      HINT = 'Use ISO 8601, e.g. 2020-08-15T10:37:06Z.';
        END;
    END IF;
    -- a point of a forged past would open a connection search of who was
    -- there then (attendee_max_report_age, 40-privacy.sql)
    IF ts < now() - udaconnect.attendee_max_report_age()
       AND NOT udaconnect.caller_is_organizer(caller_role, caller_id) THEN
        RAISE EXCEPTION 'an attendee may report a location at most % s old: creation_time % is before %',
                extract(epoch FROM udaconnect.attendee_max_report_age())::bigint,
                coalesce(to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), ts::text),
                to_char(now() - udaconnect.attendee_max_report_age(), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            USING ERRCODE = 'insufficient_privilege', COLUMN = 'creation_time',
                  HINT = 'Report a location within that time of its creation_time; only an organizer may report older ones (setting udaconnect.attendee_max_report_age).';
    END IF;
    RETURN udaconnect.api_location_json(
        udaconnect.record_location(person_id, latitude, longitude, ts));
END;
$$;

-- ---------------------------------------------------------------------------
-- Privileges: udaconnect_api may call exactly these functions and read
-- api_person_public; api_person, inlined into its statement, calls
-- caller_may_see_person and (through it) met_persons with its rights.
-- ---------------------------------------------------------------------------
REVOKE ALL ON FUNCTION api_persons(text, integer), api_person(text, integer, integer),
    api_create_person(text, integer, text, text, text),
    api_forget_person(text, integer, integer),
    api_token_claims(text, integer, integer),
    api_find_connections(text, integer, integer, date, date, float8, float8),
    api_connections(text, integer, integer, date, date, float8, float8, boolean),
    api_locations(text, integer, integer, bigint, bigint, integer, date, date),
    api_location(text, integer, bigint),
    api_create_location(text, integer, integer, float8, float8, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA udaconnect TO udaconnect_api;
REVOKE ALL ON api_person_public FROM PUBLIC;
GRANT SELECT ON api_person_public TO udaconnect_api;
GRANT EXECUTE ON FUNCTION api_persons(text, integer), api_person(text, integer, integer),
    api_create_person(text, integer, text, text, text),
    api_forget_person(text, integer, integer),
    api_token_claims(text, integer, integer),
    api_find_connections(text, integer, integer, date, date, float8, float8),
    api_connections(text, integer, integer, date, date, float8, float8, boolean),
    api_locations(text, integer, integer, bigint, bigint, integer, date, date),
    api_location(text, integer, bigint),
    api_create_location(text, integer, integer, float8, float8, text),
    caller_may_see_person(text, integer, integer), met_persons(integer) TO udaconnect_api;
