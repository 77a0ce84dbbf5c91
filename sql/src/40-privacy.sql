-- ---------------------------------------------------------------------------
-- pg_udaconnect: who may see what, erasure and retention (docs/security.md).
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
-- the person: encounters, locations, ingest rejects that name them, the
-- person.  What
-- stays: the id in erased_person (so the ingest drops their messages still
-- in Kafka and the id is never given again) and an audit row that holds no
-- personal data (when, who asked, how many rows).  On commit, NOTIFY
-- udaconnect_person_erased with the id (decimal) tells the gateways to end
-- the person's live encounter streams (docs/encounters.md, "Live"): a
-- channel of its own, which the gateways before 1.6 do not listen to.
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

-- ---------------------------------------------------------------------------
-- Retention.  With udaconnect.location_retention set (an interval; off by
-- default), the maintenance worker (src/retention.c) calls retention_sweep
-- with cutoff = now() - retention until a call removes fewer than `batch`
-- rows, each call one short transaction (the ingest waits for it only on
-- the encounter lock, for the length of one batch), then
-- retention_drop_partitions with the same cutoff.  These two functions are
-- the one place that knows how old rows go:
--   * whole partitions that end at or before the cutoff are detached and
--     dropped: no row-by-row delete, no vacuum debt.  A partition that
--     straddles the cutoff is kept whole until it ends before it, so a row
--     is kept for the retention plus at most one partition width
--     (udaconnect.location_partition_width, a day by default);
--   * rows of location_default (times no partition covered yet) are
--     deleted in batches, to the cutoff exactly;
--   * encounters that ended before the cutoff, ingest rejects received
--     before it and the removals streams were told of go in batches.
-- ---------------------------------------------------------------------------
-- BRIN on location_default, the one partition the sweep deletes from:
-- positions arrive roughly in time order, so a summary per block range
-- finds the old ones at almost no cost per inserted row.
CREATE INDEX location_default_creation_time_brin ON location_default USING brin (creation_time);

CREATE FUNCTION retention_sweep(cutoff timestamptz, batch integer DEFAULT 10000,
                                OUT locations bigint, OUT rejects bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    lo timestamptz;
    hi timestamptz;
    persons integer[];
BEGIN
    IF cutoff IS NULL OR batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'retention_sweep needs a cutoff and a batch of at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The encounter lock first, as every encounter writer takes it before
    -- any location row (an erasure waits here instead of deadlocking).
    -- Encounters that ended before the cutoff lose all their locations in
    -- this or a later call; those that reach across it are recomputed from
    -- what is left (below, and in retention_drop_partitions).
    PERFORM udaconnect.encounter_lock();
    PERFORM udaconnect.encounter_remove(ARRAY(
        SELECT o.id FROM udaconnect.encounter o WHERE o.ended_at < cutoff LIMIT batch));
    -- SKIP LOCKED: rows another transaction holds (an erasure deleting the
    -- same person's old points) are left for the next sweep, so the sweep
    -- never waits for row locks.  Straight from location_default, which
    -- fires none of location's statement triggers: what the delete trigger
    -- would do is done below.
    WITH gone AS (
        DELETE FROM udaconnect.location_default l
         WHERE l.ctid = ANY (ARRAY(SELECT o.ctid FROM udaconnect.location_default o
                                    WHERE o.creation_time < cutoff LIMIT batch
                                      FOR UPDATE SKIP LOCKED))
        RETURNING l.person_id, l.creation_time)
    SELECT count(*), min(g.creation_time), max(g.creation_time), array_agg(DISTINCT g.person_id)
      INTO locations, lo, hi, persons FROM gone g;
    PERFORM udaconnect.encounters_locations_gone(lo, hi, persons);
    DELETE FROM udaconnect.ingest_rejects r
     WHERE r.id IN (SELECT o.id FROM udaconnect.ingest_rejects o
                     WHERE o.received_at < cutoff ORDER BY o.received_at LIMIT batch
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS rejects = ROW_COUNT;
    -- what streams were told of removed encounters goes too
    DELETE FROM udaconnect.encounter_removed r
     WHERE r.ctid = ANY (ARRAY(SELECT o.ctid FROM udaconnect.encounter_removed o
                                WHERE o.removed_at < cutoff LIMIT batch));
END;
$$;

-- Detach and drop the oldest partition of location that ends at or before
-- the cutoff; the worker calls it until it drops none, each call its own
-- transaction, so location is held no longer than one drop.  locations:
-- the rows it held, estimated (pg_class.reltuples) unless never counted.  Locks in the
-- order every writer takes them: location (ACCESS EXCLUSIVE) first, then
-- encounter_lock(); never waited for longer than lock_timeout 500 ms (a
-- long reader, an erasure in progress): the partition is then left for the
-- next round, with a WARNING once it is a whole partition width overdue
-- (udaconnect.location_retention then holds rows longer than it says).
CREATE FUNCTION retention_drop_partitions(cutoff timestamptz,
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

REVOKE ALL ON FUNCTION caller_is_organizer(text, integer),
    caller_require_self(text, integer, integer, text),
    caller_require_organizer(text, integer, text),
    attendee_max_distance(), attendee_max_window(), attendee_max_report_age(),
    met_persons(integer),
    caller_may_see_person(text, integer, integer),
    person_refuse_erased_id(), ingest_payload_person(bytea),
    forget_person(integer, text), retention_sweep(timestamptz, integer),
    retention_drop_partitions(timestamptz) FROM PUBLIC;
