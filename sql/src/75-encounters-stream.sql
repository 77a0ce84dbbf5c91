-- ---------------------------------------------------------------------------
-- pg_udaconnect: the live encounter streams (udaconnect-httpd's
-- GET /api/persons/{id}/encounters/stream, grpcd's WatchEncounters;
-- docs/encounters.md, "Live").  A stream sends what api_encounter_changes
-- returns after a position (version, id); a client that gives none starts
-- after the current state (api_encounter_position).  While it is live, a
-- gateway reads the changes NOTIFY udaconnect_encounter announced by id
-- (api_encounter_changes_by_id) instead of reading every encounter of the
-- person again.
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- api_encounter_position(caller, person_id) -> (version, id)
-- The caller may watch person_id (42501 as api_encounters; P0002 when the
-- person does not exist, an attendee's own record too: a token outlives
-- an erasure, and its stream would watch nobody), and the position after
-- every change committed so far: (the last version given, the largest
-- bigint).  Every committed encounter row has a version at most the
-- clock's committed value, and every writer still to commit takes a larger
-- one (50-encounters.sql), so the changes after this position are exactly
-- those committed later.
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_encounter_position(caller_role text, caller_id integer, person_id integer,
                                       OUT version bigint, OUT id bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    PERFORM udaconnect.api_encounters_check(caller_role, caller_id, person_id);
    IF NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = person_id) THEN
        IF EXISTS (SELECT 1 FROM udaconnect.erased_person e WHERE e.id = person_id) THEN
            RAISE EXCEPTION 'person % was erased', person_id USING ERRCODE = 'no_data_found',
                DETAIL = 'udaconnect.forget_person removed the person and every row about them: there is nothing to watch.';
        END IF;
        RAISE EXCEPTION 'person % does not exist', person_id USING ERRCODE = 'no_data_found';
    END IF;
    -- no row before the first encounter was written: nothing to skip
    SELECT coalesce(max(c.version), 0), 9223372036854775807 INTO version, id FROM udaconnect.encounter_clock c;
END;
$$;

REVOKE ALL ON FUNCTION api_encounter_position(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_encounter_position(text, integer, integer) TO udaconnect_api;

-- ---------------------------------------------------------------------------
-- api_encounter_changes_by_id(caller, person_id, ids, after_version,
--                             upto_version, lim) -> rows (version, id, kind, body)
-- The rows of api_encounter_changes(caller, person_id, after_version,
-- <largest id>, ...) whose version is at most upto_version, found by primary
-- key: the person's encounters among `ids` with a version in (after_version,
-- upto_version], and the person's encounter_removed rows with such a version
-- (by encounter_removed_person_idx); in (version, id) order, lim (1..10000)
-- at most.  It equals that slice of api_encounter_changes when ids holds
-- every encounter of the person written at a version in the range: the
-- entries NOTIFY udaconnect_encounter announced for those versions
-- (docs/encounters.md, "Live").  An id of another person's encounter, of a
-- removed one, or of one changed again since (its version is now above
-- upto_version: a later announcement brings it) gives no row.  The
-- caller's rights are api_encounter_changes' (42501; no check that the
-- person exists); 22023 for a bad limit, range or id array (NULL, NULLs, or
-- more than 10000 ids).
-- A gateway calls it for every person a notification names, a few rows
-- each, so what is paid per call counts: the plan is generic (planned once
-- per session: the ids are looked up by primary key whatever their
-- number), and the body is api_encounter_json()'s (70-encounters-http.sql),
-- which the planner inlines (until 1.7 it was written out here: a call per
-- row was planned again at every call of this one, ~3x the rest).
-- ---------------------------------------------------------------------------
CREATE FUNCTION api_encounter_changes_by_id(caller_role text, caller_id integer, person_id integer,
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

REVOKE ALL ON FUNCTION
    api_encounter_changes_by_id(text, integer, integer, bigint[], bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    api_encounter_changes_by_id(text, integer, integer, bigint[], bigint, bigint, integer) TO udaconnect_api;

-- ---------------------------------------------------------------------------
-- api_persons_gone(person_ids) -> rows (ord, gone)
-- Whether each person of person_ids (in its order, ord from 1) no longer
-- exists: erased (forget_person) or never made.  What a gateway asks before
-- it ends the live streams of a person that NOTIFY udaconnect_person_erased
-- named (any role may notify any channel: the notification alone ends
-- nothing), for up to 1000 watched persons in one statement.  Who may call
-- it: the gateways' roles only (not PUBLIC); it tells no more than whether
-- a person id is in use, which udaconnect_api reads in api_person_public
-- anyway.  22004 for a NULL array or a NULL in it, 22023 for more than
-- 1000 persons.
-- ---------------------------------------------------------------------------
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
