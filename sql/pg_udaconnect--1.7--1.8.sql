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

-- ====== api_encounter_json inlined (begin) ======
-- api_encounter_json(e, other, pl) builds an encounter's JSON from the
-- encounter, the other person and the place, which its callers LEFT JOIN:
-- one expression the planner inlines into api_encounters(),
-- api_encounter_changes() and api_encounter_changes_by_id() (until 1.7 it
-- looked them up itself, a function call per row, and
-- api_encounter_changes_by_id wrote the body out a second time).  The
-- three callers are re-made with the same signatures, privileges kept;
-- api_encounter_changes now takes its page first and makes the JSON of
-- those rows only.
DROP FUNCTION api_encounter_json(udaconnect.encounter, integer);
CREATE FUNCTION api_encounter_json(e udaconnect.encounter, other udaconnect.person,
                                   pl udaconnect.place) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
               'id', e.id,
               'person', CASE WHEN other.id IS NOT NULL THEN
                             json_build_object('id', other.id, 'first_name', other.first_name,
                                               'last_name', other.last_name,
                                               'company_name', other.company_name) END,
               'started_at', to_char(e.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'ended_at', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'duration_seconds', extract(epoch FROM e.ended_at - e.started_at),
               'matches', e.matches,
               'min_distance_m', round(e.min_distance_m::numeric, 3),
               'place', CASE WHEN pl.id IS NOT NULL THEN
                            json_build_object('id', pl.id, 'name', pl.name, 'kind', pl.kind,
                                              'floor', pl.floor) END,
               'latitude', e.latitude,
               'longitude', e.longitude,
               'version', e.version)
$$;
REVOKE ALL ON FUNCTION api_encounter_json(udaconnect.encounter, udaconnect.person, udaconnect.place) FROM PUBLIC;

CREATE OR REPLACE FUNCTION api_encounters(caller_role text, caller_id integer, person_id integer,
                               from_time timestamptz, to_time timestamptz,
                               lim integer, after text,
                               OUT body json, OUT next_cursor text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    after_t timestamptz;
    after_id bigint;
    parts text[];
    lower_t timestamptz;
BEGIN
    PERFORM udaconnect.api_encounters_check(caller_role, caller_id, person_id);
    IF lim IS NULL OR lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000, not %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'limit';
    END IF;
    IF from_time > to_time THEN
        RAISE EXCEPTION 'from % must not be after to %', from_time, to_time
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'from';
    END IF;
    IF after IS NOT NULL THEN
        parts := regexp_match(after, '^(-?[0-9]{1,19})\.([0-9]{1,19})$');
        IF parts IS NULL THEN
            RAISE EXCEPTION 'cursor "%" is not one this API gave', left(after, 40)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'cursor',
                      HINT = 'Pass the next_cursor of the previous page unchanged.';
        END IF;
        BEGIN
            after_t := 'epoch'::timestamptz + parts[1]::bigint * interval '1 microsecond';
            after_id := parts[2]::bigint;
        EXCEPTION WHEN numeric_value_out_of_range OR datetime_field_overflow THEN
            RAISE EXCEPTION 'cursor "%" is not one this API gave', left(after, 40)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'cursor',
                      HINT = 'Pass the next_cursor of the previous page unchanged.';
        END;
    END IF;
    IF caller_role = 'organizer'
       AND NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = person_id) THEN
        RAISE EXCEPTION 'person % does not exist', person_id USING ERRCODE = 'no_data_found';
    END IF;
    -- no encounter that started before this can reach from_time (see
    -- encounter_clock.longest_us): the index scans start there
    SELECT coalesce(from_time, '-infinity') - c.longest_us * interval '1 microsecond'
      INTO lower_t FROM udaconnect.encounter_clock c;
    WITH page AS (
        SELECT x.* FROM udaconnect.encounter x
         WHERE (x.person_a = person_id OR x.person_b = person_id)
           AND x.started_at < coalesce(to_time, 'infinity')
           AND x.started_at >= coalesce(lower_t, '-infinity')
           AND x.ended_at >= coalesce(from_time, '-infinity')
           AND (after_t IS NULL OR (x.started_at, x.id) > (after_t, after_id))
         ORDER BY x.started_at, x.id
         LIMIT lim
    )
    SELECT coalesce(json_agg(udaconnect.api_encounter_json(page, o, pl)
                             ORDER BY page.started_at, page.id), '[]'::json),
           CASE WHEN count(*) = lim THEN
               (SELECT ((extract(epoch FROM l.started_at) * 1000000)::bigint)::text || '.' || l.id
                  FROM page l ORDER BY l.started_at DESC, l.id DESC LIMIT 1) END
      INTO body, next_cursor
      FROM page
      LEFT JOIN udaconnect.person o
             ON o.id = CASE WHEN page.person_a = person_id THEN page.person_b ELSE page.person_a END
      LEFT JOIN udaconnect.place pl ON pl.id = page.place_id;
END;
$$;

CREATE OR REPLACE FUNCTION api_encounter_changes(caller_role text, caller_id integer, person_id integer,
                                      after_version bigint, after_id bigint, lim integer)
RETURNS TABLE (version bigint, id bigint, kind text, body json)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.api_encounters_check(caller_role, caller_id, person_id);
    IF lim IS NULL OR lim < 1 OR lim > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000, not %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'limit';
    END IF;
    -- the page first, then the JSON of its rows only (a watcher resuming
    -- from far back asks for a chunk of a long history)
    RETURN QUERY
    SELECT c.version, c.id, c.kind,
           CASE WHEN c.kind = 'encounter' THEN udaconnect.api_encounter_json(x, o, pl)
                ELSE json_build_object('id', c.id, 'merged_into', c.merged_into) END
      FROM (SELECT e.version, e.id, 'encounter'::text AS kind, NULL::bigint AS merged_into
              FROM udaconnect.encounter e
             WHERE (e.person_a = person_id OR e.person_b = person_id)
               AND (e.version, e.id) > (coalesce(after_version, 0), coalesce(after_id, 0))
            UNION ALL
            SELECT r.version, r.id, 'removed', r.merged_into
              FROM udaconnect.encounter_removed r
             WHERE r.person_id = api_encounter_changes.person_id
               AND (r.version, r.id) > (coalesce(after_version, 0), coalesce(after_id, 0))
             ORDER BY 1, 2
             LIMIT lim) c
      LEFT JOIN udaconnect.encounter x ON c.kind = 'encounter' AND x.id = c.id
      LEFT JOIN udaconnect.person o
             ON o.id = CASE WHEN x.person_a = person_id THEN x.person_b ELSE x.person_a END
      LEFT JOIN udaconnect.place pl ON pl.id = x.place_id
     ORDER BY c.version, c.id;
END;
$$;

CREATE OR REPLACE FUNCTION api_encounter_changes_by_id(caller_role text, caller_id integer, person_id integer,
                                            ids bigint[], after_version bigint,
                                            upto_version bigint, lim integer)
RETURNS TABLE (version bigint, id bigint, kind text, body json)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM udaconnect.api_encounters_check(caller_role, caller_id, person_id);
    IF lim IS NULL OR lim < 1 OR lim > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000, not %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'limit';
    END IF;
    IF ids IS NULL OR cardinality(ids) > 10000 OR array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must be an array of at most 10000 encounter ids without NULLs'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'ids';
    END IF;
    IF after_version IS NULL OR upto_version IS NULL OR after_version < 0
       OR upto_version < after_version THEN
        RAISE EXCEPTION 'the versions must be 0 <= after_version <= upto_version, not % and %',
                coalesce(after_version::text, 'NULL'), coalesce(upto_version::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'after_version';
    END IF;
    RETURN QUERY
    SELECT c.version, c.id, c.kind, c.body FROM (
        SELECT x.version, x.id, 'encounter'::text AS kind,
               udaconnect.api_encounter_json(x, o, pl) AS body
          FROM udaconnect.encounter x
          LEFT JOIN udaconnect.person o
                 ON o.id = CASE WHEN x.person_a = person_id THEN x.person_b ELSE x.person_a END
          LEFT JOIN udaconnect.place pl ON pl.id = x.place_id
         WHERE x.id = ANY (ids)
           AND (x.person_a = person_id OR x.person_b = person_id)
           AND x.version > after_version AND x.version <= upto_version
        UNION ALL
        SELECT r.version, r.id, 'removed',
               json_build_object('id', r.id, 'merged_into', r.merged_into)
          FROM udaconnect.encounter_removed r
         WHERE r.person_id = api_encounter_changes_by_id.person_id
           AND r.version > after_version AND r.version <= upto_version
    ) c
    ORDER BY c.version, c.id
    LIMIT lim;
END;
$$;
-- ====== api_encounter_json inlined (end) ======
