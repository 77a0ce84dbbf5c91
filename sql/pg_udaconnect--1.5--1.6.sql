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
