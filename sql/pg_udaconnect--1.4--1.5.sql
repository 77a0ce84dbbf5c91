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
-- announced, encounter_remove()'s too; udaconnect_encounter_person stays
-- for the 1.4 gateways.

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

-- (end of live path)
