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

-- ====== places refresh (begin) ======
-- A changed place applied to the encounters already stored (issue 15;
-- sql/src/55-place-changes.sql, docs/encounters.md "Places"): the queue
-- place_change (a configuration table) and the triggers on place that fill
-- it, places_refresh() and its helpers (C: src/place_cells.c,
-- src/encounter_places.c), which the maintenance worker calls.  An updated
-- database starts with an empty queue: places changed before the update
-- need encounters_rebuild('-infinity', 'infinity') as before.
CREATE TABLE place_change (
    -- not from a sequence: a restore's COPY of place queues rows (the
    -- trigger below) before the dump's own rows and sequence are restored
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- where points may lie in another place than before: a place's area
    -- before or after the change, both when a small place moved a little,
    -- or a tile of a large one
    area       geometry(Polygon, 4326) NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    -- progress: the encounters of the matches that start before done_to
    -- are placed anew; slice: the width of the last time slice
    done_to    timestamptz,
    slice      interval NOT NULL DEFAULT '1 hour',
    chunks     integer NOT NULL DEFAULT 0,
    encounters bigint NOT NULL DEFAULT 0,
    -- chunks that failed (rolled back: statement_timeout, out of memory, a
    -- bug), the last one's error, and when the area may be tried again:
    -- until then the areas behind it go first, so one failing area never
    -- holds up the queue
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    retry_after timestamptz
);
COMMENT ON TABLE place_change IS
    'Areas where points may lie in another place since a place changed, whose stored encounters are not placed anew yet (no person data); worked off by places_refresh(), which the maintenance worker calls every udaconnect.retention_naptime.';

-- a configuration table: a dump keeps the work still to do (the restore's
-- own COPY of place queues every place once more, which changes nothing)
SELECT pg_catalog.pg_extension_config_dump('place_change', '');

-- Does the geometry's bounding box measure at most side_m metres either
-- way (as a metre a degree of latitude, and of longitude at its middle
-- latitude, measure)?
CREATE FUNCTION place_change_fits(g geometry, side_m float8) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = udaconnect, public, pg_temp
AS $$
    SELECT (ST_YMax(g) - ST_YMin(g)) * 111320 <= side_m
       AND (ST_XMax(g) - ST_XMin(g)) * 111320 * cos(radians((ST_YMin(g) + ST_YMax(g)) / 2)) <= side_m
$$;

-- The areas to queue for a place whose area was old_area and is new_area
-- (either NULL: created or deleted): the convex hull of both when it
-- measures at most 50 m either way (a booth moved or reshaped: one pass),
-- else each of them; an area over 50 m either way as tiles (a quadtree of
-- its bounding box, the boxes that touch it) of at most 50 m, or larger
-- ones for an area larger than the API accepts, so that there are at most
-- about 256: a chunk then places the encounters of a tile's crowd, not of
-- a whole hall's.
CREATE FUNCTION place_change_areas(old_area geometry, new_area geometry)
RETURNS SETOF geometry
LANGUAGE sql IMMUTABLE
SET search_path = udaconnect, public, pg_temp
AS $$
    WITH RECURSIVE both_areas AS (
        SELECT ST_ConvexHull(ST_Collect(old_area, new_area)) AS hull
         WHERE old_area IS NOT NULL AND new_area IS NOT NULL
    ), a AS (
        SELECT h.hull AS g FROM both_areas h WHERE udaconnect.place_change_fits(h.hull, 50)
        UNION ALL
        SELECT x.g FROM unnest(ARRAY[old_area, new_area]) AS x(g)
         WHERE x.g IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM both_areas h WHERE udaconnect.place_change_fits(h.hull, 50))
    ), sized AS (
        SELECT a.g, greatest(50, 2 * sqrt(m.w * m.h / 256), greatest(m.w, m.h) / 128) AS side
          FROM a, LATERAL (SELECT (ST_YMax(a.g) - ST_YMin(a.g)) * 111320 AS h,
                                  (ST_XMax(a.g) - ST_XMin(a.g)) * 111320
                                  * cos(radians((ST_YMin(a.g) + ST_YMax(a.g)) / 2)) AS w) m
    ), q(g, side, box) AS (
        SELECT s.g, s.side, ST_Envelope(s.g) FROM sized s
        UNION ALL
        -- the box halved along each side longer than the tile side
        SELECT q.g, q.side, t.box
          FROM q,
               LATERAL (SELECT ST_XMin(q.box) AS x0, ST_YMin(q.box) AS y0,
                               ST_XMax(q.box) AS x1, ST_YMax(q.box) AS y1) b,
               LATERAL (SELECT (b.x1 - b.x0) * 111320 * cos(radians((b.y0 + b.y1) / 2)) > q.side AS wide,
                               (b.y1 - b.y0) * 111320 > q.side AS tall) s,
               LATERAL (SELECT ST_MakeEnvelope(xs.xa, ys.ya, xs.xb, ys.yb, 4326) AS box
                          FROM (VALUES (b.x0, CASE WHEN s.wide THEN (b.x0 + b.x1) / 2 ELSE b.x1 END),
                                       (CASE WHEN s.wide THEN (b.x0 + b.x1) / 2 END, b.x1)) xs(xa, xb),
                               (VALUES (b.y0, CASE WHEN s.tall THEN (b.y0 + b.y1) / 2 ELSE b.y1 END),
                                       (CASE WHEN s.tall THEN (b.y0 + b.y1) / 2 END, b.y1)) ys(ya, yb)
                         WHERE xs.xa IS NOT NULL AND ys.ya IS NOT NULL) t
         WHERE NOT udaconnect.place_change_fits(q.box, q.side) AND ST_Intersects(t.box, q.g)
    )
    SELECT CASE WHEN udaconnect.place_change_fits(q.g, q.side) THEN q.g ELSE q.box END
      FROM q
     WHERE udaconnect.place_change_fits(q.box, q.side)
$$;

-- The areas a statement on place changed, queued: new places, deleted
-- ones, and of an UPDATE the rows whose area or id changed (the smallest
-- covering place, ties to the lowest id, decides where a point is; name,
-- kind and floor do not).  Before a TRUNCATE, every place as it goes.
CREATE FUNCTION place_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO udaconnect.place_change (area)
        SELECT DISTINCT a FROM new_rows n, udaconnect.place_change_areas(NULL, n.area) a;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO udaconnect.place_change (area)
        SELECT DISTINCT a FROM old_rows o, udaconnect.place_change_areas(o.area, NULL) a;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO udaconnect.place_change (area)
        SELECT DISTINCT a
          FROM old_rows o FULL JOIN new_rows n ON n.id = o.id,
               udaconnect.place_change_areas(o.area, n.area) a
         WHERE o.id IS NULL OR n.id IS NULL OR ST_AsEWKB(o.area) <> ST_AsEWKB(n.area);
    ELSE
        INSERT INTO udaconnect.place_change (area)
        SELECT DISTINCT a FROM udaconnect.place p, udaconnect.place_change_areas(p.area, NULL) a;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER place_changes_insert AFTER INSERT ON place
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION place_changed();
CREATE TRIGGER place_changes_update AFTER UPDATE ON place
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION place_changed();
CREATE TRIGGER place_changes_delete AFTER DELETE ON place
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION place_changed();
CREATE TRIGGER place_changes_truncate BEFORE TRUNCATE ON place
    FOR EACH STATEMENT EXECUTE FUNCTION place_changed();

-- The cell keys of location that can hold a point within grow_m metres of
-- the boxes [south, north] x [west, east] (C, src/place_cells.c): fine
-- keys, probed one by one, or (more than 65,536 of them) ranges of coarse
-- cells.
CREATE FUNCTION place_cells(south float8[], west float8[], north float8[], east float8[],
                            grow_m float8, OUT cells bigint[], OUT range_lo bigint[],
                            OUT range_hi bigint[])
    AS 'MODULE_PATHNAME', 'udc_place_cells'
    LANGUAGE C IMMUTABLE;

-- The matches between two locations in the cells (or the ranges) whose
-- earlier location is in [from_time, to_time), with their midpoints (C,
-- src/encounter_places.c; the caller holds the encounter lock).
CREATE FUNCTION encounter_matches_near(cells bigint[], range_lo bigint[], range_hi bigint[],
                                       from_time timestamptz, to_time timestamptz)
RETURNS TABLE (person_a integer, person_b integer, started_at timestamptz,
               ended_at timestamptz, latitude float8, longitude float8)
    AS 'MODULE_PATHNAME', 'udc_encounter_matches_near'
    LANGUAGE C VOLATILE ROWS 1000;

-- The encounters of ids placed as the places are now: the rows whose
-- places change are rewritten (same id, the next version); returns how
-- many were written (C, src/encounter_places.c).
CREATE FUNCTION encounter_places_refresh(ids bigint[]) RETURNS bigint
    AS 'MODULE_PATHNAME', 'udc_encounter_places_refresh'
    LANGUAGE C VOLATILE;

-- The earliest creation_time at or after from_time of a location in the
-- cells (a probe of each partition's (cell, creation_time) btree a key) or
-- the ranges; NULL when there is none.
CREATE FUNCTION place_change_next(cells bigint[], range_lo bigint[], range_hi bigint[],
                                  from_time timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = udaconnect, public, pg_temp
AS $$
    SELECT min(x.t) FROM (
        SELECT (SELECT l.creation_time FROM udaconnect.location l
                 WHERE l.cell = k.cell AND l.creation_time >= from_time
                 ORDER BY l.creation_time LIMIT 1) AS t
          FROM unnest(cells) AS k(cell)
        UNION ALL
        SELECT (SELECT min(l.creation_time) FROM udaconnect.location l
                 WHERE l.cell BETWEEN r.lo AND r.hi AND l.creation_time >= from_time)
          FROM unnest(range_lo, range_hi) AS r(lo, hi)) x
$$;

-- The stored encounters holding a match that starts in [from_time,
-- to_time) and lies in area (of each pair, those overlapping the span of
-- its matches there), by id.
CREATE FUNCTION place_change_slice(cells bigint[], range_lo bigint[], range_hi bigint[],
                                   area geometry, from_time timestamptz, to_time timestamptz)
RETURNS bigint[]
LANGUAGE sql VOLATILE
SET search_path = udaconnect, public, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT x.id ORDER BY x.id), '{}')
      FROM (SELECT m.person_a, m.person_b, min(m.started_at) AS s, max(m.ended_at) AS e
              FROM udaconnect.encounter_matches_near(cells, range_lo, range_hi, from_time, to_time) m
             WHERE ST_Covers(area, ST_SetSRID(ST_MakePoint(m.longitude, m.latitude), 4326))
             GROUP BY m.person_a, m.person_b) p
     CROSS JOIN LATERAL (SELECT x.id FROM udaconnect.encounter x
                          WHERE x.person_a = p.person_a AND x.person_b = p.person_b
                            AND x.started_at <= p.e AND x.ended_at >= p.s
                         OFFSET 0) x
$$;

-- ---------------------------------------------------------------------------
-- places_refresh(max_chunks) -> what it did
-- Works the queue: up to max_chunks chunks (NULL: until it is empty), in
-- the caller's transaction.  A chunk takes the encounter lock (first, as
-- every encounter writer; the worker runs each chunk in a transaction of
-- its own, so the ingest waits for a chunk at most), takes the oldest
-- queued area (FOR UPDATE SKIP LOCKED: two callers never work the same
-- one) and places anew the encounters of the matches in the area that
-- start in the next time slices after its done_to: slices while it has
-- fewer than 250 encounters (so at most about 750), at most 24, each an
-- hour or narrower where an hour holds more than 500; an area with no
-- location near it after done_to is done and goes.  A chunk that fails is
-- rolled back (a subtransaction; the encounter lock stays) and recorded on
-- its area (attempts, last_error, retry_after: 1 minute, doubling up to an
-- hour), with a WARNING, and the next area is taken; a cancel or
-- statement_timeout (57014) is recorded so too and ends the call.  chunks:
-- chunks run (failed ones too); changes: queued areas finished;
-- encounters: rows rewritten; remaining: areas still queued (failed ones
-- waiting for their retry_after too).
-- ---------------------------------------------------------------------------
CREATE FUNCTION places_refresh(max_chunks integer DEFAULT NULL,
                               OUT chunks integer, OUT changes integer,
                               OUT encounters bigint, OUT remaining bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    cap constant integer := 500;
    q udaconnect.place_change;
    cov record;
    cur timestamptz;
    nxt timestamptz;
    w interval;
    ids bigint[];
    got bigint[];
    slices integer;
    finished boolean;
    n bigint;
    err_state text;
    err_text text;
BEGIN
    IF max_chunks IS NOT NULL AND max_chunks < 1 THEN
        RAISE EXCEPTION 'max_chunks must be at least 1 (or NULL: until the queue is empty), not %', max_chunks
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    chunks := 0;
    changes := 0;
    encounters := 0;
    WHILE max_chunks IS NULL OR chunks < max_chunks LOOP
        -- nothing queued: no lock taken (the worker asks every naptime)
        EXIT WHEN NOT EXISTS (SELECT 1 FROM udaconnect.place_change c
                               WHERE c.retry_after IS NULL OR c.retry_after <= now());
        PERFORM udaconnect.encounter_lock();
        -- A writer whose snapshot predates this chunk would place matches
        -- as the places were before the change; touching the clock row makes
        -- its encounter_lock() raise 40001 under REPEATABLE READ or
        -- SERIALIZABLE, as a committed merge does (at READ COMMITTED it
        -- takes its snapshot after the lock, and sees the change).
        UPDATE udaconnect.encounter_clock SET version = version;
        -- a failed area goes behind those queued before its retry_after
        SELECT * INTO q FROM udaconnect.place_change c
         WHERE c.retry_after IS NULL OR c.retry_after <= now()
         ORDER BY coalesce(c.retry_after, c.queued_at), c.id LIMIT 1 FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        chunks := chunks + 1;
        BEGIN
            -- a match's midpoint is within half the distance of its two
            -- locations (a coordinate average: within 1e-4 of the half at a
            -- venue's size), so both are within this of the area
            SELECT * INTO cov FROM udaconnect.place_cells(
                ARRAY[ST_YMin(q.area)], ARRAY[ST_XMin(q.area)], ARRAY[ST_YMax(q.area)], ARRAY[ST_XMax(q.area)],
                0.51 * udaconnect.encounter_distance() + 0.01);
            cur := coalesce(q.done_to, '-infinity');
            w := q.slice;
            ids := '{}';
            slices := 0;
            finished := false;
            -- slices while the chunk is under half full: at most 1.5 x cap
            WHILE slices < 24 AND cardinality(ids) < cap / 2 LOOP
                -- no location near the area in [cur, nxt): no match there
                nxt := udaconnect.place_change_next(cov.cells, cov.range_lo, cov.range_hi, cur);
                IF nxt IS NULL THEN
                    finished := true;
                    EXIT;
                END IF;
                LOOP
                    got := udaconnect.place_change_slice(cov.cells, cov.range_lo, cov.range_hi, q.area, nxt, nxt + w);
                    EXIT WHEN cardinality(got) <= cap OR w <= interval '1 minute';
                    w := greatest(interval '1 minute', w * (cap::float8 / cardinality(got) * 0.8));
                END LOOP;
                ids := ids || got;
                cur := nxt + w;
                slices := slices + 1;
                -- a slice far from full: the next one twice as wide
                IF cardinality(got) < cap / 4 THEN
                    w := least(w * 2, interval '1 hour');
                END IF;
            END LOOP;
            n := udaconnect.encounter_places_refresh(ARRAY(SELECT DISTINCT x FROM unnest(ids) x ORDER BY 1));
            IF finished THEN
                DELETE FROM udaconnect.place_change c WHERE c.id = q.id;
                changes := changes + 1;
            ELSE
                UPDATE udaconnect.place_change c
                   SET done_to = cur, slice = w, chunks = c.chunks + 1, encounters = c.encounters + n
                 WHERE c.id = q.id;
            END IF;
            encounters := encounters + n;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- the chunk's writes are undone, the encounter lock kept: the
            -- failure is recorded and the area waits, the next goes on
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_text = MESSAGE_TEXT;
            UPDATE udaconnect.place_change c
               SET attempts = c.attempts + 1, last_error = err_state || ': ' || err_text,
                   retry_after = now() + least(interval '1 hour', interval '1 minute' * 2 ^ least(c.attempts, 6))
             WHERE c.id = q.id
            RETURNING c.attempts, c.retry_after INTO q.attempts, q.retry_after;
            RAISE WARNING 'places_refresh: the chunk of queued area % failed (SQLSTATE %): %', q.id, err_state, err_text
                USING DETAIL = format('Attempt %s: the chunk is rolled back; the area stays queued and is tried again after its retry_after (a minute after the first failure, doubling up to an hour), the areas behind it meanwhile.',
                                      q.attempts),
                      HINT = 'See last_error of the area in udaconnect.place_change; once the cause is fixed, set its retry_after to NULL to try it at once.';
            -- a cancel or statement_timeout: the caller wants the call over
            EXIT WHEN err_state = '57014';
        END;
    END LOOP;
    remaining := (SELECT count(*) FROM udaconnect.place_change);
END;
$$;

REVOKE ALL ON FUNCTION place_change_areas(geometry, geometry), place_change_fits(geometry, float8),
    place_changed(),
    place_cells(float8[], float8[], float8[], float8[], float8),
    encounter_matches_near(bigint[], bigint[], bigint[], timestamptz, timestamptz),
    encounter_places_refresh(bigint[]),
    place_change_next(bigint[], bigint[], bigint[], timestamptz),
    place_change_slice(bigint[], bigint[], bigint[], geometry, timestamptz, timestamptz),
    places_refresh(integer) FROM PUBLIC;

-- Until now a place created, moved or deleted left the stored encounters
-- placed as the places were when their matches came (nothing was queued).
-- Queue every place's area, and the tile (0.0003 degrees, at most ~33 m
-- either way) of every placed encounter's representative position: that
-- is the midpoint of one of its matches, and a chunk places all of an
-- encounter's matches anew once one of them lies in its area.  Worked off
-- by the maintenance worker (or places_refresh()), every encounter that
-- lies, or should lie, in a place is then placed as the places are now.
INSERT INTO place_change (area)
SELECT DISTINCT a FROM place p, place_change_areas(NULL, p.area) a;
INSERT INTO place_change (area)
SELECT ST_MakeEnvelope(gx * 0.0003, gy * 0.0003, (gx + 1) * 0.0003, (gy + 1) * 0.0003, 4326)
  FROM (SELECT DISTINCT floor(longitude / 0.0003) AS gx, floor(latitude / 0.0003) AS gy
          FROM encounter WHERE cardinality(place_ids) > 0) t;
-- ====== places refresh (end) ======

-- ====== places lookup (begin) ======
-- place_area_idx becomes SP-GiST (45-places.sql says why)
DROP INDEX place_area_idx;
CREATE INDEX place_area_idx ON place USING spgist (area);
-- ====== places lookup (end) ======
