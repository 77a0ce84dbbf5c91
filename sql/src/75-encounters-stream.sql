-- ---------------------------------------------------------------------------
-- pg_udaconnect: where a live encounter stream starts (udaconnect-httpd's
-- GET /api/persons/{id}/encounters/stream; docs/http.md, "Live
-- encounters").  A stream sends what api_encounter_changes returns after a
-- position (version, id); a client that gives none starts after the
-- current state, which is this function's answer.
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- api_encounter_position(caller, person_id) -> (version, id)
-- The caller may watch person_id (42501 as api_encounters, P0002 when an
-- organizer asks for a person that does not exist), and the position after
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
    IF caller_role = 'organizer'
       AND NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = person_id) THEN
        RAISE EXCEPTION 'person % does not exist', person_id USING ERRCODE = 'no_data_found';
    END IF;
    -- no row before the first encounter was written: nothing to skip
    SELECT coalesce(max(c.version), 0), 9223372036854775807 INTO version, id FROM udaconnect.encounter_clock c;
END;
$$;

REVOKE ALL ON FUNCTION api_encounter_position(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_encounter_position(text, integer, integer) TO udaconnect_api;
