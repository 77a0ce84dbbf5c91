-- pg_udaconnect 1.5 -> 1.6 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.6').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- The shared library must be the 1.6 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.6'" to load this file. \quit

-- ====== erased-streams (begin) ======
-- The live encounter streams of an erased person end (docs/encounters.md,
-- "Live"): forget_person announces the erasure on commit, NOTIFY
-- udaconnect_person_erased with the id (a channel of its own: the 1.5
-- gateways do not listen to it); api_encounter_position refuses a person
-- that does not exist to attendees too (an erased attendee's token still
-- verifies), and names an erasure ('person N was erased', P0002).
CREATE OR REPLACE FUNCTION forget_person(id integer, requested_by text DEFAULT NULL,
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
    -- their encounters first (the other person's stream hears of it), so
    -- that deleting their locations leaves no encounter to recompute; the
    -- lock before the ids are read, so that no writer adds one meanwhile
    PERFORM udaconnect.encounter_lock();
    PERFORM udaconnect.encounter_remove(ARRAY(
        SELECT x.id FROM udaconnect.encounter x
         WHERE x.person_a = forget_person.id OR x.person_b = forget_person.id));
    -- what they were told is theirs too
    DELETE FROM udaconnect.encounter_removed r WHERE r.person_id = forget_person.id;
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
    -- the person's live streams end: delivered on commit, after the
    -- removals announced above; dropped with a rollback
    PERFORM pg_catalog.pg_notify('udaconnect_person_erased', forget_person.id::text);
END;
$$;

CREATE OR REPLACE FUNCTION api_encounter_position(caller_role text, caller_id integer, person_id integer,
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
-- ====== erased-streams (end) ======
