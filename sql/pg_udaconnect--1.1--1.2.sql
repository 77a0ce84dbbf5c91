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
--              persons only those they have met (has_met), and of those only
--              what GET /api/persons shows (names and company).  Connection
--              searches at most attendee_max_distance() metres wide.
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
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(nullif(current_setting('udaconnect.attendee_max_distance', true), '')::float8, 10)
$$;

-- The persons `person_id` has met: those in its connection search over all
-- of its own days, attendee_max_distance() wide, any time of day.  (When
-- encounters exist, they will be the rule.)
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
                   udaconnect.attendee_max_distance(), NULL) f;
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
    'Ids of erased persons: never reused; the ingest drops their messages.  No time, no link to the audit.';

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
    DELETE FROM udaconnect.location l
     WHERE l.ctid = ANY (ARRAY(SELECT o.ctid FROM udaconnect.location o
                                WHERE o.creation_time < cutoff LIMIT batch));
    GET DIAGNOSTICS locations = ROW_COUNT;
    DELETE FROM udaconnect.ingest_rejects r
     WHERE r.id IN (SELECT o.id FROM udaconnect.ingest_rejects o
                     WHERE o.received_at < cutoff ORDER BY o.received_at LIMIT batch);
    GET DIAGNOSTICS rejects = ROW_COUNT;
END;
$$;

REVOKE ALL ON FUNCTION caller_is_organizer(text, integer),
    caller_require_self(text, integer, integer, text),
    caller_require_organizer(text, integer, text),
    attendee_max_distance(), met_persons(integer),
    caller_may_see_person(text, integer, integer),
    person_refuse_erased_id(), ingest_payload_person(bytea),
    forget_person(integer, text), retention_sweep(timestamptz, integer) FROM PUBLIC;

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
-- themself and at most attendee_max_distance() wide; the window in seconds
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
    IF NOT udaconnect.caller_is_organizer($1, $2) AND $6 > udaconnect.attendee_max_distance() THEN
        RAISE EXCEPTION 'an attendee may search at most % m around their locations, not % m',
                udaconnect.attendee_max_distance(), $6
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Organizers may search wider (setting udaconnect.attendee_max_distance).';
    END IF;
    RETURN QUERY
        SELECT * FROM udaconnect.find_connections($3, $4, $5, $6, udaconnect.api_window($7));
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
    IF NOT FOUND THEN
        -- 404 for an organizer; an attendee is denied as for another's
        -- location, so they cannot tell which ids exist
        IF NOT udaconnect.caller_is_organizer(caller_role, caller_id) THEN
            RAISE EXCEPTION 'attendee % may not read location %', caller_id, id
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'An attendee sees and reports only their own locations and connections.';
        END IF;
        RETURN NULL;
    END IF;
    PERFORM udaconnect.caller_require_self(caller_role, caller_id, l.person_id, 'read the locations of');
    RETURN udaconnect.api_location_json(l);
END;
$$;

-- POST /api/locations.  creation_time is ISO 8601 text (no zone = UTC);
-- NULL means now().  An attendee reports only for themself.
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
