-- pg_udaconnect 1.6 -> 1.7 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.7').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- The shared library must be the 1.7 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.7'" to load this file. \quit

-- ====== places_at in C (begin) ======
-- places_at() reads the places whose box meets the points' once and tests
-- each point against those whose box holds it (src/places_lookup.c); the
-- encounters place their matches with the same C code, so the SQL helper
-- encounter_places_of() is gone.  Same signature, same privileges (REVOKE
-- ALL FROM PUBLIC stays); no longer SECURITY DEFINER: the C code reads the
-- places with the place table owner's rights itself.
CREATE OR REPLACE FUNCTION places_at(latitude float8[], longitude float8[]) RETURNS integer[]
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'udc_places_at';
DROP FUNCTION encounter_places_of(float8[], float8[]);
-- ====== places_at in C (end) ======

-- ====== encounter_clock.longest_us (begin) ======
-- The longest ended_at - started_at of any encounter written, raised by the
-- writer in the same transaction; encounters() and api_encounters() start
-- their index scans at started_at >= from - longest_us instead of at the
-- person's first encounter (on a later day of a conference they read every
-- earlier day's encounters of the person and dropped them).  The ALTER
-- TABLE waits for the writers (encounter_lock() locks the clock's row), so
-- the maximum taken after it covers every encounter stored.
ALTER TABLE encounter_clock ADD COLUMN longest_us bigint NOT NULL DEFAULT 0;
UPDATE encounter_clock
   SET longest_us = coalesce((SELECT max((extract(epoch FROM e.ended_at - e.started_at) * 1000000)::bigint)
                                FROM encounter e), 0);
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
    SELECT coalesce(json_agg(udaconnect.api_encounter_json(page, person_id)
                             ORDER BY page.started_at, page.id), '[]'::json),
           CASE WHEN count(*) = lim THEN
               (SELECT ((extract(epoch FROM l.started_at) * 1000000)::bigint)::text || '.' || l.id
                  FROM page l ORDER BY l.started_at DESC, l.id DESC LIMIT 1) END
      INTO body, next_cursor
      FROM page;
END;
$$;
-- ====== encounter_clock.longest_us (end) ======
