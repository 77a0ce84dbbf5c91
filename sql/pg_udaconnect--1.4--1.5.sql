-- pg_udaconnect 1.4 -> 1.5 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.5').
-- Keeps every row.  What changes (docs/upgrades.md):
--   * udaconnect.location becomes range-partitioned on creation_time
--     (issue 16): see the section "time partitions" below;
--   * the live path (issue 15): see the section "live path" below.
-- The shared library must be the 1.5 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.5'" to load this file. \quit

-- ===========================================================================
-- time partitions (issue 16)
-- ===========================================================================

-- (end of time partitions)

-- ===========================================================================
-- live path (issue 15)
-- ===========================================================================

-- NOTIFY udaconnect_encounter carries the version of each change and the
-- persons of each encounter ("v<version>.<part>/<parts>:<id>.<a>.<b>,...",
-- the library's src/encounter_notify.c), and every version taken is
-- announced, encounter_remove()'s too; the gateways read what it announces
-- by id (api_encounter_changes_by_id) while a stream is live, and
-- udaconnect_encounter_person stays for the 1.4 gateways.

-- What encounter_remove() tells the live streams: NOTIFY
-- udaconnect_encounter announcing `version` (even when nothing went) with
-- the removed encounters and their persons, and udaconnect_encounter_person
-- with the persons; returns how many persons were named.  Every version
-- taken must be announced (docs/encounters.md, "Live"): a stream that hears
-- of no version misses nothing.  In C (src/encounter_notify.c), where the
-- merge announces its versions.
CREATE FUNCTION encounter_notify_removed(version bigint, ids bigint[], persons_a integer[],
                                         persons_b integer[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'udc_encounter_notify_removed'
    LANGUAGE C VOLATILE;

-- Remove encounters (a recompute, an erasure, retention): under the lock,
-- with the next version, each logged in encounter_removed for both of its
-- persons and notified, as live streams expect of every removal (the
-- version is announced even when none of the ids was left).  Returns how
-- many went.  The merge logs its own removals (with merged_into).
CREATE OR REPLACE FUNCTION encounter_remove(ids bigint[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    v bigint;
    gone_ids bigint[];
    gone_a integer[];
    gone_b integer[];
BEGIN
    IF coalesce(cardinality(ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM udaconnect.encounter_lock();
    UPDATE udaconnect.encounter_clock SET version = version + 1 RETURNING version INTO v;
    WITH gone AS (
        DELETE FROM udaconnect.encounter x WHERE x.id = ANY (ids)
        RETURNING x.id, x.person_a, x.person_b
    ), told AS (
        INSERT INTO udaconnect.encounter_removed (version, id, person_id)
        SELECT v, g.id, p.person
          FROM gone g, LATERAL (VALUES (g.person_a), (g.person_b)) AS p(person)
    )
    SELECT array_agg(g.id), array_agg(g.person_a), array_agg(g.person_b)
      INTO gone_ids, gone_a, gone_b FROM gone g;
    PERFORM udaconnect.encounter_notify_removed(v, gone_ids, gone_a, gone_b);
    RETURN coalesce(cardinality(gone_ids), 0);
END;
$$;

REVOKE ALL ON FUNCTION encounter_notify_removed(bigint, bigint[], integer[], integer[]) FROM PUBLIC;

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
-- number), and the body is api_encounter_json()'s (70-encounters-http.sql)
-- written out, because that function, called per row, is planned again at
-- every call of this one (~3x the rest).  pg_regress encounters_live holds
-- the two bodies equal.
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
               json_build_object(
                   'id', x.id,
                   'person', CASE WHEN o.id IS NOT NULL THEN
                                 json_build_object('id', o.id, 'first_name', o.first_name,
                                                   'last_name', o.last_name,
                                                   'company_name', o.company_name) END,
                   'started_at', to_char(x.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'ended_at', to_char(x.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   'duration_seconds', extract(epoch FROM x.ended_at - x.started_at),
                   'matches', x.matches,
                   'min_distance_m', round(x.min_distance_m::numeric, 3),
                   'place', CASE WHEN pl.id IS NOT NULL THEN
                                json_build_object('id', pl.id, 'name', pl.name, 'kind', pl.kind,
                                                  'floor', pl.floor) END,
                   'latitude', x.latitude,
                   'longitude', x.longitude,
                   'version', x.version) AS body
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

-- (end of live path)
