-- pg_udaconnect 1.5 -> 1.6 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.6').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- The shared library must be the 1.6 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.6'" to load this file. \quit

-- ====== retention drop estimate (begin) ======
-- retention_drop_partitions() reports the rows of the partition it drops
-- from pg_class.reltuples instead of counting them while it holds location
-- in ACCESS EXCLUSIVE mode (sql/src/40-privacy.sql).  Same signature, same
-- privileges.
CREATE OR REPLACE FUNCTION retention_drop_partitions(cutoff timestamptz,
                                          OUT partitions integer, OUT locations bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET lock_timeout = '500ms'
AS $$
DECLARE
    p record;
    persons integer[];
BEGIN
    IF cutoff IS NULL THEN
        RAISE EXCEPTION 'retention_drop_partitions needs a cutoff'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    partitions := 0;
    locations := 0;
    SELECT x.partition, c.relname AS name, x.from_time, x.to_time INTO p
      FROM udaconnect.location_partitions() x JOIN pg_catalog.pg_class c ON c.oid = x.partition
     WHERE NOT x.is_default AND x.to_time <= cutoff ORDER BY x.from_time LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    BEGIN
        LOCK TABLE udaconnect.location IN ACCESS EXCLUSIVE MODE;
        PERFORM udaconnect.encounter_lock();
    EXCEPTION WHEN lock_not_available THEN
        IF p.to_time <= cutoff - udaconnect.location_partition_width() THEN
            RAISE WARNING 'udaconnect retention: udaconnect.location is in use; partition udaconnect.% and the later expired ones are left for the next round',
                    quote_ident(p.name)
                USING DETAIL = format('The partition ended at %s, more than a partition width before the cutoff: its rows are kept longer than udaconnect.location_retention says.  Dropping it needs udaconnect.location for a moment in ACCESS EXCLUSIVE mode; a transaction held it longer than lock_timeout (500 ms).', p.to_time),
                      HINT = 'Look for long transactions on udaconnect.location in pg_stat_activity.';
        ELSE
            RAISE LOG 'udaconnect retention: udaconnect.location is in use; partition udaconnect.% and the later expired ones are left for the next round',
                    quote_ident(p.name)
                USING DETAIL = 'Dropping a partition needs udaconnect.location for a moment in ACCESS EXCLUSIVE mode; a transaction held it longer than lock_timeout (500 ms).';
        END IF;
        RETURN;
    END;
    -- The rows dropped, for the worker's log, as the statistics have them
    -- (autovacuum keeps reltuples of every partition): counting them would
    -- hold location in ACCESS EXCLUSIVE mode, and with it every writer and
    -- reader, for a scan of the whole partition (most of a 1M-row drop's
    -- time).  Counted only for a partition never vacuumed nor analyzed.
    SELECT CASE WHEN c.reltuples >= 0 THEN round(c.reltuples)::bigint END INTO locations
      FROM pg_catalog.pg_class c WHERE c.oid = p.partition;
    IF locations IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', p.partition) INTO locations;
    END IF;
    -- normally none left: retention_sweep removed them in batches
    PERFORM udaconnect.encounter_remove(ARRAY(
        SELECT o.id FROM udaconnect.encounter o WHERE o.ended_at < p.to_time));
    -- the persons of the encounters reaching from the dropped points into
    -- later ones: only theirs are recomputed
    persons := ARRAY(SELECT DISTINCT q.person FROM udaconnect.encounter x,
                            LATERAL (VALUES (x.person_a), (x.person_b)) q(person)
                      WHERE x.started_at < p.to_time ORDER BY 1);
    EXECUTE format('ALTER TABLE udaconnect.location DETACH PARTITION %s', p.partition);
    EXECUTE format('DROP TABLE %s', p.partition);
    IF cardinality(persons) > 0 THEN
        PERFORM udaconnect.encounters_rebuild(p.from_time, p.to_time, persons);
    END IF;
    partitions := 1;
END;
$$;
-- ====== retention drop estimate (end) ======

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
