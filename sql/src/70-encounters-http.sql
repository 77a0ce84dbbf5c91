-- ---------------------------------------------------------------------------
-- pg_udaconnect: the JSON API of encounters (50-encounters.sql) behind
-- udaconnect-httpd's /api/persons/{id}/encounters routes and grpcd's
-- ListEncounters / WatchEncounters, in the pattern of 60-http.sql: the
-- verified caller first, SECURITY DEFINER, EXECUTE for udaconnect_api.
--
-- Who may see what: an organizer, anyone's encounters; an attendee, only
-- their own (42501 otherwise, whether or not the person exists), with the
-- other person's name and company (whom they met, as api_person allows).
--
-- An encounter as JSON: {id, person: {id, first_name, last_name,
-- company_name}, started_at, ended_at, duration_seconds, matches,
-- min_distance_m, place: {id, name, kind, floor} or null, latitude,
-- longitude, version}; times in UTC, ISO 8601.
-- ---------------------------------------------------------------------------

-- The encounter e as the person who met `other` sees it (other and pl, the
-- encounter's place, as the callers LEFT JOIN them: NULL when gone).  One
-- expression with no query of its own and no SET (1.8), so the planner
-- inlines it into the statements of its callers, the SECURITY DEFINER
-- api_* functions, which set the search_path; only they may call it (not
-- PUBLIC).  Until 1.7 it looked the person and the place up itself and was
-- a function call per row (~20 us), half of a REST page's time, and
-- api_encounter_changes_by_id wrote its body out a second time.
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

-- The caller may read person_id's encounters, or 42501.
CREATE FUNCTION api_encounters_check(caller_role text, caller_id integer, person_id integer)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF person_id IS NULL THEN
        RAISE EXCEPTION 'person id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT udaconnect.caller_is_organizer(caller_role, caller_id) THEN
        PERFORM udaconnect.caller_require_self(caller_role, caller_id, person_id,
                                               'read the encounters of');
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------
-- api_encounters(caller, person_id, from_time, to_time, lim, after)
--   -> {body: [encounter...], next_cursor}
-- The person's encounters overlapping [from_time, to_time) (NULL: no
-- bound), in order of started_at then id, lim (1..1000) a page; `after` is
-- the previous page's next_cursor (opaque), NULL when it was the last page.
-- 22023 for a bad limit, range or cursor; 42501 as above; P0002 when an
-- organizer asks for a person that does not exist.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_encounters(caller_role text, caller_id integer, person_id integer,
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

-- ---------------------------------------------------------------------------
-- api_encounter_changes(caller, person_id, after_version, after_id, lim)
--   -> rows (version, id, kind, body)
-- What a live stream sends: the person's encounters written, and removed,
-- after (after_version, after_id), in that order; kind is 'encounter'
-- (body the encounter as JSON) or 'removed' (body {id, merged_into}).
-- Versions are given in commit order (50-encounters.sql), so a client that
-- resumes after the last (version, id) it received misses nothing and gets
-- nothing twice.  (0, 0) starts from the beginning.  A stream wakes on
-- NOTIFY udaconnect_encounter_person (50-encounters.sql), which names the
-- persons whose encounters changed.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_encounter_changes(caller_role text, caller_id integer, person_id integer,
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

REVOKE ALL ON FUNCTION api_encounter_json(udaconnect.encounter, udaconnect.person, udaconnect.place),
    api_encounters_check(text, integer, integer),
    api_encounters(text, integer, integer, timestamptz, timestamptz, integer, text),
    api_encounter_changes(text, integer, integer, bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    api_encounters(text, integer, integer, timestamptz, timestamptz, integer, text),
    api_encounter_changes(text, integer, integer, bigint, bigint, integer) TO udaconnect_api;
