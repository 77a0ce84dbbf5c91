-- pg_udaconnect 1.1 -> 1.2 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.2').
-- Keeps every row.  What changes (docs/upgrades.md, docs/security.md):
--   * every api_* function takes the verified caller first (caller_role,
--     caller_id) and decides who may see what (40-privacy.sql);
--     api_connection and api_connections become one api_connections(...,
--     per_person); new api_forget_person and api_token_claims;
--   * erasure: forget_person(), erased_person, erasure_audit, a trigger that
--     never lets an erased id be given again, ingest_rejects.person_id
--     (filled here from the stored payloads) and ingest_offset.erased_dropped;
--   * retention: retention_sweep() and a BRIN index on location.creation_time.
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.2'" to load this file. \quit

-- ingest bookkeeping for erasure
ALTER TABLE ingest_offset ADD COLUMN erased_dropped bigint NOT NULL DEFAULT 0;
ALTER TABLE ingest_rejects ADD COLUMN person_id integer;
CREATE INDEX ingest_rejects_received_idx ON ingest_rejects (received_at);

CREATE OR REPLACE VIEW ingest_status AS
SELECT coalesce(o.topic, w.topic)             AS topic,
       coalesce(o."partition", w."partition") AS "partition",
       w.worker,
       w.worker_pid,
       w.worker_state,
       o.next_offset                          AS stored_offset,
       w.high_watermark,
       greatest(w.high_watermark - coalesce(o.next_offset, w.low_watermark, 0), 0) AS lag,
       coalesce(o.rows_ingested, 0)           AS rows_ingested,
       coalesce(o.rejects, 0)                 AS rejects,
       w.last_error,
       w.last_error_at,
       o.last_batch_at,
       coalesce(o.erased_dropped, 0)          AS erased_dropped
  FROM ingest_offset o
  FULL JOIN ingest_worker_partitions() w
    ON w.topic = o.topic AND w."partition" = o."partition";
COMMENT ON VIEW ingest_status IS
    'Kafka ingest per partition: stored offset, high watermark, lag, rows, rejects, last error, last batch, messages of erased persons dropped.';


-- ---------------------------------------------------------------------------
-- (as in a fresh install) who may see what, erasure and retention (docs/security.md).
--
-- Callers.  The gateways verify a caller's token and pass what it proves to
-- every api_* function as its first two arguments: caller_role ('organizer'
-- or 'attendee') and caller_id (an attendee's person id).  The rules below
-- decide, so REST, gRPC and SQL give the same answer to the same caller.
-- With authentication off (UDACONNECT_AUTH=off) the gateways call as an
-- organizer: the original's open API.
--
--   organizer  everything: all persons, locations, connections; creates
--              persons, issues tokens, erases.
--   attendee   their own person record, locations and connections; of other
--              persons only those they have met (met_persons), and of those only
--              what GET /api/persons shows (names and company).  Connection
--              searches at most attendee_max_distance() metres wide and
--              attendee_max_window() long; their own points at most
--              attendee_max_report_age() old.
-- Everything else: SQLSTATE 42501 (-> 403 / PERMISSION_DENIED).
-- ---------------------------------------------------------------------------

-- Whether the caller is an organizer (true) or an attendee (false); 42501
-- for anything else, so a caller the gateway did not establish sees nothing.
-- C (src/caller.c): every api_* call asks it.
CREATE FUNCTION caller_is_organizer(caller_role text, caller_id integer) RETURNS boolean
    AS 'MODULE_PATHNAME', 'udc_caller_is_organizer'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- 42501 unless the caller is an organizer or the attendee person_id itself.
-- what: the action, for the message ("read the connections of").
CREATE FUNCTION caller_require_self(caller_role text, caller_id integer, person_id integer,
                                    what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF NOT udaconnect.caller_is_organizer(caller_role, caller_id)
       AND person_id IS DISTINCT FROM caller_id THEN
        RAISE EXCEPTION 'attendee % may not % person %', caller_id, what, coalesce(person_id::text, 'NULL')
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'An attendee sees and reports only their own locations and connections.';
    END IF;
END;
$$;

-- 42501 unless the caller is an organizer.
CREATE FUNCTION caller_require_organizer(caller_role text, caller_id integer, what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF NOT udaconnect.caller_is_organizer(caller_role, caller_id) THEN
        RAISE EXCEPTION 'only an organizer may %', what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;

-- The widest connection search an attendee may make, in metres (setting
-- udaconnect.attendee_max_distance, default 10): wider, a "connection" would
-- be a view of everyone in the hall.
CREATE FUNCTION attendee_max_distance() RETURNS float8
    AS 'MODULE_PATHNAME', 'udc_attendee_max_distance_sql'
    LANGUAGE C STABLE PARALLEL SAFE;

-- The longest time window of an attendee's connection search (setting
-- udaconnect.attendee_max_window, default 5 minutes; also the window an
-- attendee's search gets when it names none): without it a "connection"
-- would show where others were at any time of the day.
CREATE FUNCTION attendee_max_window() RETURNS interval
    AS 'MODULE_PATHNAME', 'udc_attendee_max_window_sql'
    LANGUAGE C STABLE PARALLEL SAFE;

-- How far back an attendee may report their own locations (setting
-- udaconnect.attendee_max_report_age, default 1 hour): a point reported for
-- a forged past place and time would let their connection search show who
-- was there then; repeated, others' past trails.  Organizers are not
-- limited.  udaconnect-grpcd applies the same limit to attendees' points
-- (its --attendee-max-report-age, which must equal this setting): the Kafka
-- path cannot ask the database per point.
CREATE FUNCTION attendee_max_report_age() RETURNS interval
    AS 'MODULE_PATHNAME', 'udc_attendee_max_report_age_sql'
    LANGUAGE C STABLE PARALLEL SAFE;

-- The persons `person_id` has met: those in its connection search over all
-- of its own days, attendee_max_distance() wide and attendee_max_window()
-- apart: co-present.  (When encounters exist, they will be the rule.)
CREATE FUNCTION met_persons(person_id integer) RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
ROWS 10
AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
BEGIN
    SELECT min(l.creation_time), max(l.creation_time) INTO t0, t1
      FROM udaconnect.location l WHERE l.person_id = met_persons.person_id;
    IF t0 IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT DISTINCT f.person_id
          FROM udaconnect.find_connections(met_persons.person_id,
                   (t0 AT TIME ZONE 'UTC')::date, (t1 AT TIME ZONE 'UTC')::date,
                   udaconnect.attendee_max_distance(), udaconnect.attendee_max_window()) f;
END;
$$;

-- May the caller read person `id`'s record?  True (organizers: any;
-- attendees: themself and the persons they have met, met_persons), else
-- 42501, for an id that does not exist too (no existence oracle).  C
-- (src/caller.c): api_person, the hot read route, asks it as a one-time
-- filter.
CREATE FUNCTION caller_may_see_person(caller_role text, caller_id integer, id integer)
RETURNS boolean
    AS 'MODULE_PATHNAME', 'udc_caller_may_see_person'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

-- ---------------------------------------------------------------------------
-- Erasure.  forget_person(id) removes, in one transaction, every row about
-- the person: locations, ingest rejects that name them, the person.  What
-- stays: the id in erased_person (so the ingest drops their messages still
-- in Kafka and the id is never given again) and an audit row that holds no
-- personal data (when, who asked, how many rows).
-- ---------------------------------------------------------------------------
CREATE TABLE erased_person (
    id integer PRIMARY KEY
);
COMMENT ON TABLE erased_person IS
    'Ids of erased persons: never reused; the ingest drops their messages.  No time column (the row''s xmin still ties it to its erasure_audit row).';

CREATE TABLE erasure_audit (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL,
    locations    bigint NOT NULL,
    rejects      bigint NOT NULL,
    persons      integer NOT NULL
);
COMMENT ON TABLE erasure_audit IS
    'One row per erasure: when, who asked (organizer, the person themself, or a database role), how many rows went.  No person id.';

SELECT pg_catalog.pg_extension_config_dump('erased_person', '');
SELECT pg_catalog.pg_extension_config_dump('erasure_audit', '');
SELECT pg_catalog.pg_extension_config_dump('erasure_audit_id_seq', '');

-- An erased id is never given again, not even by an explicit INSERT.
CREATE FUNCTION person_refuse_erased_id() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM udaconnect.erased_person e WHERE e.id = NEW.id) THEN
        RAISE EXCEPTION 'person id % belonged to an erased person and is not reused', NEW.id
            USING ERRCODE = 'unique_violation',
                  HINT = 'Let the id default (create_person() does).';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER person_not_erased BEFORE INSERT OR UPDATE OF id ON person
    FOR EACH ROW EXECUTE FUNCTION person_refuse_erased_id();

-- The person id a Kafka payload names (C, the ingest's own decoder), NULL
-- when it names none: finds rejects stored before they carried person_id.
CREATE FUNCTION ingest_payload_person(payload bytea) RETURNS integer
    AS 'MODULE_PATHNAME', 'udc_ingest_payload_person'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Erase person `id`.  requested_by goes to the audit ('organizer', 'self',
-- or by default the database role).  P0002 when there is no such person.
CREATE FUNCTION forget_person(id integer, requested_by text DEFAULT NULL,
                              OUT locations bigint, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- Under REPEATABLE READ or SERIALIZABLE the deletes below would use the
    -- snapshot from before the lock wait, and miss the rejects of a batch
    -- that committed meanwhile.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'forget_person must run at READ COMMITTED, not %',
                upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Call it in a READ COMMITTED transaction (the default), so it sees every row committed while it waited for the person''s lock.';
    END IF;
    -- FOR UPDATE waits for ingest batches that hold the person FOR KEY
    -- SHARE and keeps new ones out until we commit; those then find the
    -- person gone and the id erased, and drop the message.
    PERFORM 1 FROM udaconnect.person p WHERE p.id = forget_person.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'person % does not exist', forget_person.id
            USING ERRCODE = 'no_data_found';
    END IF;
    DELETE FROM udaconnect.location l WHERE l.person_id = forget_person.id;
    GET DIAGNOSTICS locations = ROW_COUNT;
    -- by the column, and by decoding every payload: a reject stored before
    -- the column existed, or whose payload names someone else than its
    -- column, still names them (rejects are few: retention bounds them)
    DELETE FROM udaconnect.ingest_rejects r
     WHERE r.person_id = forget_person.id
        OR (r.payload IS NOT NULL
            AND udaconnect.ingest_payload_person(r.payload) = forget_person.id);
    GET DIAGNOSTICS rejects = ROW_COUNT;
    DELETE FROM udaconnect.person p WHERE p.id = forget_person.id;
    INSERT INTO udaconnect.erased_person (id) VALUES (forget_person.id);
    INSERT INTO udaconnect.erasure_audit (requested_by, locations, rejects, persons)
    VALUES (coalesce(requested_by, 'role ' || session_user), locations, rejects, 1);
END;
$$;

-- ---------------------------------------------------------------------------
-- Retention.  With udaconnect.location_retention set (an interval; off by
-- default), the retention worker (src/retention.c) calls retention_sweep
-- with cutoff = now() - retention until a call removes fewer than `batch`
-- rows: each call is one short transaction that takes no lock the ingest
-- waits for.  This function is the one place that knows how old rows go
-- (the partitioned layout will drop whole partitions here instead).
-- ---------------------------------------------------------------------------
-- BRIN: positions arrive roughly in time order, so a summary per block range
-- finds the old ones at almost no cost per inserted row.
CREATE INDEX location_creation_time_brin ON location USING brin (creation_time);

CREATE FUNCTION retention_sweep(cutoff timestamptz, batch integer DEFAULT 10000,
                                OUT locations bigint, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF cutoff IS NULL OR batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'retention_sweep needs a cutoff and a batch of at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- SKIP LOCKED: rows another transaction holds (an erasure deleting the
    -- same person's old points) are left for the next sweep, so the sweep
    -- never waits, and never deadlocks with an erasure that locks in
    -- another order
    DELETE FROM udaconnect.location l
     WHERE l.ctid = ANY (ARRAY(SELECT o.ctid FROM udaconnect.location o
                                WHERE o.creation_time < cutoff LIMIT batch
                                  FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS locations = ROW_COUNT;
    DELETE FROM udaconnect.ingest_rejects r
     WHERE r.id IN (SELECT o.id FROM udaconnect.ingest_rejects o
                     WHERE o.received_at < cutoff ORDER BY o.received_at LIMIT batch
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS rejects = ROW_COUNT;
END;
$$;

REVOKE ALL ON FUNCTION caller_is_organizer(text, integer),
    caller_require_self(text, integer, integer, text),
    caller_require_organizer(text, integer, text),
    attendee_max_distance(), attendee_max_window(), attendee_max_report_age(),
    met_persons(integer),
    caller_may_see_person(text, integer, integer),
    person_refuse_erased_id(), ingest_payload_person(bytea),
    forget_person(integer, text), retention_sweep(timestamptz, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- pg_udaconnect: named places (issue 15): a booth, a room, a stage or any
-- other named area of the venue, managed by organizers.  A point belongs to
-- the smallest place that covers it (place_at), which the encounters will
-- ask for every meeting.
--
-- The area is a WGS84 polygon (x = longitude, y = latitude) without holes,
-- its edges straight in latitude/longitude (as ST_Covers on geometry sees
-- them; at the size of a venue the difference from a geodesic edge is
-- millimetres).  area_m2 is its geodesic area on the WGS84 spheroid: "the
-- smallest place" compares real sizes, not square degrees, which shrink
-- towards the poles.
-- ---------------------------------------------------------------------------
CREATE TABLE place (
    id      integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name    text NOT NULL,
    kind    text NOT NULL,
    floor   integer,
    area    geometry(Polygon, 4326) NOT NULL,
    -- generated, so no writer can let it drift from the area
    area_m2 float8 NOT NULL GENERATED ALWAYS AS (ST_Area(area::geography)) STORED,
    CONSTRAINT place_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 200),
    CONSTRAINT place_kind_check
        CHECK (kind IN ('booth', 'room', 'stage', 'area')),
    CONSTRAINT place_area_check
        CHECK (NOT ST_IsEmpty(area) AND ST_IsValid(area) AND ST_NumInteriorRings(area) = 0
               AND ST_XMin(area) >= -180 AND ST_XMax(area) <= 180
               AND ST_YMin(area) >= -90 AND ST_YMax(area) <= 90)
);
COMMENT ON TABLE place IS
    'Named areas of the venue (booth, room, stage, area): a WGS84 polygon (x = longitude, y = latitude), optional floor.  A point belongs to the smallest place covering it (place_at).';
COMMENT ON COLUMN place.area_m2 IS 'Geodesic area of the polygon in square metres (WGS84 spheroid).';

CREATE INDEX place_area_idx ON place USING gist (area);

SELECT pg_catalog.pg_extension_config_dump('place', '');
SELECT pg_catalog.pg_extension_config_dump('place_id_seq', '');

-- ---------------------------------------------------------------------------
-- create_place(name, kind, area, floor) -> place
-- name trimmed, 1..200 characters; kind one of booth, room, stage, area;
-- area a valid polygon without holes in SRID 4326 (an unknown SRID, 0, is
-- taken as 4326), at most 1000 vertices, 1 km² and one degree either way:
-- a place is part of a venue, and a bigger one is a mistake (a swapped
-- coordinate, a polygon around the antimeridian).  Errors name the
-- argument in their message and in the COLUMN field.
-- ---------------------------------------------------------------------------
CREATE FUNCTION create_place(name text, kind text, area geometry, floor integer DEFAULT NULL)
RETURNS udaconnect.place
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    v      text := btrim(name);
    g      geometry := area;
    n      integer;
    m2     float8;
    ok     boolean;
    why    text;
    result udaconnect.place;
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION 'name must not be null' USING ERRCODE = 'null_value_not_allowed', COLUMN = 'name';
    ELSIF v = '' THEN
        RAISE EXCEPTION 'name must not be empty' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'name';
    ELSIF length(v) > 200 THEN
        RAISE EXCEPTION 'name is too long (% characters; at most 200)', length(v)
            USING ERRCODE = 'string_data_right_truncation', COLUMN = 'name';
    END IF;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'kind must not be null' USING ERRCODE = 'null_value_not_allowed', COLUMN = 'kind';
    ELSIF kind NOT IN ('booth', 'room', 'stage', 'area') THEN
        RAISE EXCEPTION 'kind must be one of booth, room, stage, area, not "%"', kind
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'kind';
    END IF;
    IF g IS NULL THEN
        RAISE EXCEPTION 'area must not be null' USING ERRCODE = 'null_value_not_allowed', COLUMN = 'area';
    END IF;
    g := ST_Force2D(g);
    IF GeometryType(g) <> 'POLYGON' THEN
        RAISE EXCEPTION 'area must be a polygon, not a %', lower(GeometryType(g))
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    IF ST_SRID(g) = 0 THEN
        g := ST_SetSRID(g, 4326);
    ELSIF ST_SRID(g) <> 4326 THEN
        RAISE EXCEPTION 'area must be in SRID 4326 (WGS84 longitude/latitude), not SRID %', ST_SRID(g)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    IF ST_IsEmpty(g) THEN
        RAISE EXCEPTION 'area must not be empty' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    IF ST_NumInteriorRings(g) > 0 THEN
        RAISE EXCEPTION 'area must be a polygon without holes (it has %)', ST_NumInteriorRings(g)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area',
                  HINT = 'Make each part a place of its own: a point belongs to the smallest place covering it.';
    END IF;
    n := ST_NPoints(g) - 1;      -- the ring repeats its first vertex
    IF n > 1000 THEN
        RAISE EXCEPTION 'area has too many vertices (%; at most 1000)', n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    -- NaN compares greater than everything, so it fails here too
    IF NOT (ST_XMin(g) >= -180 AND ST_XMax(g) <= 180 AND ST_YMin(g) >= -90 AND ST_YMax(g) <= 90) THEN
        RAISE EXCEPTION 'area must lie within latitude [-90, 90] and longitude [-180, 180]'
            USING ERRCODE = 'numeric_value_out_of_range', COLUMN = 'area',
                  HINT = 'Vertices are (longitude, latitude): x is the longitude.';
    END IF;
    -- ST_IsValidDetail, not ST_IsValid: the latter also sends a NOTICE
    SELECT d.valid, d.reason INTO ok, why FROM ST_IsValidDetail(g) d;
    IF NOT ok THEN
        RAISE EXCEPTION 'area is not a valid polygon: %', why
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area',
                  HINT = 'The ring must not cross itself and needs at least three distinct vertices.';
    END IF;
    IF ST_XMax(g) - ST_XMin(g) > 1 OR ST_YMax(g) - ST_YMin(g) > 1 THEN
        RAISE EXCEPTION 'area spans more than one degree of latitude or longitude'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    m2 := ST_Area(g::geography);
    IF m2 > 1e6 THEN
        RAISE EXCEPTION 'area is too large (% m²; at most 1 km²)', round(m2::numeric)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'area';
    END IF;
    INSERT INTO udaconnect.place (name, kind, floor, area)
    VALUES (v, kind, floor, g)
    RETURNING * INTO result;
    RETURN result;
END;
$$;

-- ---------------------------------------------------------------------------
-- create_place_circle(name, kind, latitude, longitude, radius_m, floor)
-- A round place: the geodesic buffer of the centre (ST_Buffer on geography,
-- 32 segments per quarter circle), radius 0.5..500 m.
-- ---------------------------------------------------------------------------
CREATE FUNCTION create_place_circle(name text, kind text, latitude float8, longitude float8,
                                    radius_m float8, floor integer DEFAULT NULL)
RETURNS udaconnect.place
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    centre geometry := udaconnect.make_point(latitude, longitude);   -- 22004 / 22003
BEGIN
    IF radius_m IS NULL THEN
        RAISE EXCEPTION 'radius_m must not be null' USING ERRCODE = 'null_value_not_allowed', COLUMN = 'radius_m';
    END IF;
    IF NOT (radius_m BETWEEN 0.5 AND 500) THEN
        RAISE EXCEPTION 'radius_m must be between 0.5 and 500 metres, not %', radius_m
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'radius_m';
    END IF;
    RETURN udaconnect.create_place(name, kind,
        ST_Buffer(centre::geography, radius_m, 'quad_segs=32')::geometry, floor);
END;
$$;

-- delete_place(id) -> whether there was such a place
CREATE FUNCTION delete_place(id integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be null' USING ERRCODE = 'null_value_not_allowed', COLUMN = 'id';
    END IF;
    DELETE FROM udaconnect.place p WHERE p.id = delete_place.id;
    RETURN FOUND;
END;
$$;

-- ---------------------------------------------------------------------------
-- place_at(latitude, longitude) -> the id of the smallest place (area_m2)
-- covering the point, its boundary included; of equal ones the lowest id;
-- NULL when none.  Coordinates are checked as everywhere (make_point:
-- 22004 / 22003).  PL/pgSQL so its plan (a GiST probe, then a sort of the
-- few candidates) is cached per session: the encounters call it per meeting.
-- ---------------------------------------------------------------------------
CREATE FUNCTION place_at(latitude float8, longitude float8) RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    pt geometry := udaconnect.make_point(latitude, longitude);
BEGIN
    RETURN (SELECT p.id FROM udaconnect.place p
             WHERE ST_Covers(p.area, pt)
             ORDER BY p.area_m2, p.id
             LIMIT 1);
END;
$$;

REVOKE ALL ON FUNCTION create_place(text, text, geometry, integer),
    create_place_circle(text, text, float8, float8, float8, integer),
    delete_place(integer), place_at(float8, float8) FROM PUBLIC;

-- the person named by each reject stored before 1.2
UPDATE ingest_rejects SET person_id = ingest_payload_person(payload) WHERE payload IS NOT NULL;

-- the API with callers: the old signatures go
DROP FUNCTION api_persons();
DROP FUNCTION api_person(integer);
DROP FUNCTION api_create_person(text, text, text);
DROP FUNCTION api_connection(integer, date, date, float8, float8);
DROP FUNCTION api_connections(integer, date, date, float8, float8);
DROP FUNCTION api_find_connections(integer, date, date, float8, float8);
DROP FUNCTION api_locations(integer, bigint, bigint, integer, date, date);
DROP FUNCTION api_location(bigint);
DROP FUNCTION api_create_location(integer, float8, float8, text);

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

-- (api_window is unchanged)

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

-- ---------------------------------------------------------------------------
-- pg_udaconnect: the JSON API of named places (45-places.sql) behind
-- udaconnect-httpd's /api/places routes, in the pattern of 60-http.sql:
-- complete response bodies, the verified caller first, SECURITY DEFINER,
-- EXECUTE for udaconnect_api and no table privilege.
--
-- Places are not personal data: every established caller (an organizer, or
-- an attendee with their person id) reads them all; an unknown caller gets
-- 42501 as everywhere.  Only organizers create and delete them.
--
-- A place as JSON: {id, name, kind, floor, area_m2, polygon}, polygon the
-- outline's vertices in order as [{latitude, longitude}, ...] (latitude =
-- y), the closing vertex not repeated; area_m2 rounded to 0.01 m².
-- POST takes the polygon in the same shape (the ring closes itself; a
-- repeated first vertex at the end is fine too).
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_place_json(p udaconnect.place) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
               'id', p.id, 'name', p.name, 'kind', p.kind, 'floor', p.floor,
               'area_m2', round(p.area_m2::numeric, 2),
               'polygon', (SELECT json_agg(json_build_object('latitude', public.ST_Y(d.geom),
                                                             'longitude', public.ST_X(d.geom))
                                           ORDER BY d.path)
                             FROM public.ST_DumpPoints(public.ST_ExteriorRing(p.area)) d
                            WHERE d.path[1] < public.ST_NPoints(public.ST_ExteriorRing(p.area))))
$$;

-- The polygon of a request, [{latitude, longitude}, ...], as the WGS84
-- polygon create_place takes.  Errors name the vertex (1-based) and carry
-- COLUMN polygon; create_place checks the rest (valid, size, vertices).
CREATE FUNCTION api_place_polygon(polygon json) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    pts geometry[] := '{}';
    v   json;
    i   integer := 0;
    n   integer;
BEGIN
    IF json_typeof(polygon) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'polygon must be an array of vertices {"latitude": ..., "longitude": ...}'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    n := json_array_length(polygon);
    -- 1000 vertices, and the first repeated to close the ring
    IF n < 3 OR n > 1001 THEN
        RAISE EXCEPTION 'polygon must have between 3 and 1000 vertices, not %', n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    BEGIN
        FOR v IN SELECT e FROM json_array_elements(polygon) e LOOP
            i := i + 1;
            IF json_typeof(v) IS DISTINCT FROM 'object'
               OR json_typeof(v -> 'latitude') IS DISTINCT FROM 'number'
               OR json_typeof(v -> 'longitude') IS DISTINCT FROM 'number' THEN
                RAISE EXCEPTION 'polygon vertex % must be an object with the numbers latitude and longitude', i
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
            END IF;
            pts := pts || udaconnect.make_point((v ->> 'latitude')::float8, (v ->> 'longitude')::float8);
        END LOOP;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'polygon vertex %: %', i, SQLERRM
            USING ERRCODE = 'numeric_value_out_of_range', COLUMN = 'polygon';
    END;
    IF NOT (ST_X(pts[1]) = ST_X(pts[n]) AND ST_Y(pts[1]) = ST_Y(pts[n])) THEN
        pts := pts || pts[1];
    END IF;
    IF array_length(pts, 1) < 4 THEN
        RAISE EXCEPTION 'polygon must have at least 3 distinct vertices'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
    END IF;
    RETURN ST_MakePolygon(ST_MakeLine(pts));
END;
$$;

-- GET /api/places: every place, in id order.
CREATE FUNCTION api_places(caller_role text, caller_id integer) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_is_organizer(caller_role, caller_id);   -- 42501: unknown caller
    RETURN (SELECT coalesce(json_agg(udaconnect.api_place_json(p) ORDER BY p.id), '[]'::json)
              FROM udaconnect.place p);
END;
$$;

-- GET /api/places/{id}: NULL when there is no such place (-> 404).
CREATE FUNCTION api_place(caller_role text, caller_id integer, id integer) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_is_organizer(caller_role, caller_id);
    RETURN (SELECT udaconnect.api_place_json(p) FROM udaconnect.place p WHERE p.id = api_place.id);
END;
$$;

-- POST /api/places (organizers): exactly one of polygon (the shape above)
-- or latitude + longitude + radius_m (a round place, create_place_circle).
CREATE FUNCTION api_create_place(caller_role text, caller_id integer,
                                 name text, kind text, floor integer, polygon json,
                                 latitude float8, longitude float8, radius_m float8)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_require_organizer(caller_role, caller_id, 'create places');
    IF polygon IS NOT NULL THEN
        IF latitude IS NOT NULL OR longitude IS NOT NULL OR radius_m IS NOT NULL THEN
            RAISE EXCEPTION 'give either polygon or latitude, longitude and radius_m, not both'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'polygon';
        END IF;
        RETURN udaconnect.api_place_json(
            udaconnect.create_place(name, kind, udaconnect.api_place_polygon(polygon), floor));
    END IF;
    IF latitude IS NULL AND longitude IS NULL AND radius_m IS NULL THEN
        RAISE EXCEPTION 'polygon (or latitude, longitude and radius_m) is required'
            USING ERRCODE = 'null_value_not_allowed', COLUMN = 'polygon';
    END IF;
    -- make_point and create_place_circle name a missing latitude, longitude, radius_m
    RETURN udaconnect.api_place_json(
        udaconnect.create_place_circle(name, kind, latitude, longitude, radius_m, floor));
END;
$$;

-- DELETE /api/places/{id} (organizers): {"deleted": true, "id": id}; NULL
-- when there is no such place (-> 404).
CREATE FUNCTION api_delete_place(caller_role text, caller_id integer, id integer) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.caller_require_organizer(caller_role, caller_id, 'delete places');
    IF NOT udaconnect.delete_place(id) THEN
        RETURN NULL;
    END IF;
    RETURN json_build_object('deleted', true, 'id', id);
END;
$$;

REVOKE ALL ON FUNCTION api_place_json(udaconnect.place), api_place_polygon(json),
    api_places(text, integer), api_place(text, integer, integer),
    api_create_place(text, integer, text, text, integer, json, float8, float8, float8),
    api_delete_place(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_places(text, integer), api_place(text, integer, integer),
    api_create_place(text, integer, text, text, integer, json, float8, float8, float8),
    api_delete_place(text, integer, integer) TO udaconnect_api;

-- ---------------------------------------------------------------------------
-- A deployment's grpcd role (deployment/docker/postgres/init.sql) was given
-- the raw finder, which knows no callers: it gets the caller-checked
-- api_find_connections instead, as a fresh deployment does.
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'udaconnect_reader') THEN
        REVOKE EXECUTE ON FUNCTION find_connections(integer, date, date, float8, interval),
            connected_persons(integer, date, date, float8, interval) FROM udaconnect_reader;
        GRANT EXECUTE ON FUNCTION
            api_find_connections(text, integer, integer, date, date, float8, float8) TO udaconnect_reader;
    END IF;
END
$$;
