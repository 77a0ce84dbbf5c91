-- ---------------------------------------------------------------------------
-- Time partitions of udaconnect.location (from 1.5; docs/scaling.md,
-- "Time partitions").
--
-- One partition holds udaconnect.location_partition_width of creation_time
-- (a day by default), aligned to it from 2000-01-01 00:00 UTC, and is named
-- after its start: location_p20261207 (location_p20261207_060000 for a
-- width that does not start at midnight).  It has its own primary key and
-- btrees, named after it (10-schema.sql says why the parent has none); a
-- partition attached by hand needs them too, or the finder refuses it,
-- naming the index and the DDL that makes it.  This file is the one place
-- that knows how a partition is made; retention_drop_partitions()
-- (40-privacy.sql) the one that knows how one goes.
--
-- The maintenance worker (src/retention.c) calls
-- location_partitions_maintain() every udaconnect.retention_naptime, so
-- the current partition and udaconnect.location_partitions_ahead more
-- exist before rows arrive for them, and rows that went to location_default
-- (a bad clock, an old day loaded later, a server without the worker) are
-- moved into partitions of their own.  Without the worker (the library not
-- preloaded) every row stays in location_default: correct, only unpartitioned
-- until someone calls location_partitions_maintain() (pg_cron does well).
--
-- Partitions are not members of the extension even when an extension script
-- creates them: pg_dump must dump their definitions and their rows, as it
-- does a user's table (a member's rows are dumped only for a configuration
-- table), and CREATE EXTENSION on restore makes none of them.  Nobody but
-- the extension's owner is granted anything on them: attendees reach
-- locations only through the api_* functions, organizers through location.
-- ---------------------------------------------------------------------------

-- The validated udaconnect.location_partition_width (src/partitions.c).
CREATE FUNCTION location_partition_width() RETURNS interval
    AS 'MODULE_PATHNAME', 'udc_location_partition_width_sql'
    LANGUAGE C STABLE;

-- The partitions of location and their bounds [from_time, to_time), read
-- from the catalog (src/partitions.c); location_default with NULL bounds.
CREATE FUNCTION location_partitions(OUT partition regclass, OUT from_time timestamptz,
                                    OUT to_time timestamptz, OUT is_default boolean)
RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'udc_location_partitions'
    LANGUAGE C STABLE ROWS 40;

-- The partition that holds at_time, created if there is none: of the
-- width's bin around at_time, narrowed to the neighbours' bounds (they may
-- have been made under another width).  Rows of location_default that
-- belong in it are moved into it in the same transaction, keeping their ids
-- (encounters name locations by id), so nobody sees a row twice or never.
CREATE FUNCTION location_partition_create(at_time timestamptz, OUT partition regclass,
                                          OUT created boolean, OUT moved bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    width interval := udaconnect.location_partition_width();
    lo timestamptz;
    hi timestamptz;
    part_name text;
BEGIN
    IF at_time IS NULL OR NOT isfinite(at_time) THEN
        RAISE EXCEPTION 'a partition of udaconnect.location needs a finite time, not %',
                coalesce(at_time::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the move reads location_default with this transaction's snapshot
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'location_partition_create must run at READ COMMITTED, not %',
                upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'active_sql_transaction';
    END IF;
    created := false;
    moved := 0;
    -- one creator at a time: ATTACH PARTITION takes this lock too; it
    -- conflicts with itself, not with the ingest's or the finder's locks
    LOCK TABLE udaconnect.location IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT p.partition INTO partition FROM udaconnect.location_partitions() p
     WHERE NOT p.is_default AND at_time >= p.from_time AND at_time < p.to_time;
    IF FOUND THEN
        RETURN;
    END IF;
    lo := date_bin(width, at_time, timestamptz '2000-01-01 00:00+00');
    hi := lo + width;
    SELECT greatest(lo, max(p.to_time)) INTO lo FROM udaconnect.location_partitions() p
     WHERE NOT p.is_default AND p.to_time <= at_time;
    SELECT least(hi, min(p.from_time)) INTO hi FROM udaconnect.location_partitions() p
     WHERE NOT p.is_default AND p.from_time > at_time;
    part_name := 'location_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD')
        || CASE WHEN (lo AT TIME ZONE 'UTC')::time <> '00:00'
                THEN to_char(lo AT TIME ZONE 'UTC', '"_"HH24MISS') ELSE '' END;
    -- No row may reach location_default's part of [lo, hi) between the
    -- move and the ATTACH (which would then fail): EXCLUSIVE keeps writers
    -- out of location_default, not readers.  When rows move, a reader
    -- planned before this commit and run after it would find them neither
    -- in location_default (deleted) nor in the new partition (not in its
    -- plan): then location itself is taken, for as long as the move.
    IF EXISTS (SELECT 1 FROM udaconnect.location_default d
                WHERE d.creation_time >= lo AND d.creation_time < hi) THEN
        LOCK TABLE udaconnect.location IN ACCESS EXCLUSIVE MODE;
    END IF;
    LOCK TABLE udaconnect.location_default IN EXCLUSIVE MODE;
    -- a table of location's columns (the cell generated alike, no identity:
    -- ids come from location's sequence), attached once filled, so that
    -- location_default is scanned once, by ATTACH, under its lock
    EXECUTE format('CREATE TABLE udaconnect.%I (LIKE udaconnect.location INCLUDING DEFAULTS'
                   ' INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE)', part_name);
    EXECUTE format('WITH m AS (DELETE FROM udaconnect.location_default d'
                   '            WHERE d.creation_time >= $1 AND d.creation_time < $2'
                   '        RETURNING d.id, d.person_id, d.coordinate, d.creation_time)'
                   ' INSERT INTO udaconnect.%I (id, person_id, coordinate, creation_time)'
                   ' SELECT m.id, m.person_id, m.coordinate, m.creation_time FROM m', part_name)
        USING lo, hi;
    GET DIAGNOSTICS moved = ROW_COUNT;
    -- its key and btrees (10-schema.sql: named after it), built after the move
    EXECUTE format('ALTER TABLE udaconnect.%I ADD CONSTRAINT %I PRIMARY KEY (id, creation_time)',
                   part_name, part_name || '_pkey');
    EXECUTE format('CREATE INDEX %I ON udaconnect.%I (person_id, creation_time) INCLUDE (coordinate)',
                   part_name || '_person_time_idx', part_name);
    EXECUTE format('CREATE INDEX %I ON udaconnect.%I (cell, creation_time) INCLUDE (person_id, id, coordinate)',
                   part_name || '_cell_time_idx', part_name);
    EXECUTE format('ALTER TABLE udaconnect.location ATTACH PARTITION udaconnect.%I FOR VALUES FROM (%L) TO (%L)',
                   part_name, lo, hi);
    partition := format('udaconnect.%I', part_name)::regclass;
    -- inside CREATE or ALTER EXTENSION the new table became a member
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = partition
                  AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION pg_udaconnect DROP TABLE %s', partition);
    END IF;
    created := true;
END;
$$;

-- Partitions covering [from_time, to_time); how many were created and how
-- many rows of location_default they took.  At most 1,000 partitions a
-- call: a wider span is almost certainly a mistake in its bounds.
CREATE FUNCTION location_partitions_ensure(from_time timestamptz, to_time timestamptz,
                                           OUT created integer, OUT moved bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
AS $$
DECLARE
    t timestamptz := from_time;
    r record;
    n integer := 0;
BEGIN
    IF from_time IS NULL OR to_time IS NULL OR NOT isfinite(from_time) OR NOT isfinite(to_time)
       OR from_time > to_time THEN
        RAISE EXCEPTION 'location_partitions_ensure needs finite from_time <= to_time, not % and %',
                coalesce(from_time::text, 'NULL'), coalesce(to_time::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    created := 0;
    moved := 0;
    WHILE t < to_time LOOP
        n := n + 1;
        IF n > 1000 THEN
            RAISE EXCEPTION 'location_partitions_ensure(%, %) would need more than 1000 partitions',
                    from_time, to_time
                USING ERRCODE = 'program_limit_exceeded',
                      HINT = 'Ask for a narrower span, or set a wider udaconnect.location_partition_width.';
        END IF;
        SELECT * INTO r FROM udaconnect.location_partition_create(t);
        created := created + r.created::integer;
        moved := moved + r.moved;
        SELECT p.to_time INTO t FROM udaconnect.location_partitions() p WHERE p.partition = r.partition;
    END LOOP;
END;
$$;

-- What the maintenance worker does each round: the current partition and
-- udaconnect.location_partitions_ahead more, then partitions for the rows
-- of location_default, oldest first, at most 32 a call (the next round
-- takes more), each move in this one transaction.  ATTACH locks
-- location_default, and moving its rows waits for any of them another
-- transaction holds: never longer than lock_timeout 500 ms, so the ingest
-- is not held up behind the worker; what could not be done is left for
-- the next round.
CREATE FUNCTION location_partitions_maintain(OUT created integer, OUT moved bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = udaconnect, public, pg_temp
SET lock_timeout = '500ms'
AS $$
DECLARE
    width interval := udaconnect.location_partition_width();
    retention interval;
    r record;
    t timestamptz;
BEGIN
    created := 0;
    moved := 0;
    BEGIN
        SELECT * INTO r FROM udaconnect.location_partitions_ensure(
            now(), now() + width * (1 + current_setting('udaconnect.location_partitions_ahead')::integer));
        created := r.created;
        moved := r.moved;
    EXCEPTION WHEN lock_not_available THEN
        RAISE LOG 'udaconnect partitions: location_default is in use; the partitions ahead are left for the next round';
        RETURN;
    WHEN OTHERS THEN
        -- a partition that cannot be made (a name taken by hand, ...) must
        -- not stop the rest: said at every round until someone acts
        RAISE WARNING 'udaconnect partitions: the partitions ahead could not be made: %', SQLERRM
            USING DETAIL = 'Rows for times no partition covers go to udaconnect.location_default meanwhile.';
    END;
    -- rows older than the retention are left to the sweep, which deletes
    -- them from location_default: a partition for them would be dropped next
    retention := nullif(current_setting('udaconnect.location_retention', true), '')::interval;
    FOR t IN SELECT DISTINCT date_bin(width, d.creation_time, timestamptz '2000-01-01 00:00+00') AS bin
               FROM udaconnect.location_default d
              WHERE retention IS NULL OR d.creation_time >= now() - retention
              ORDER BY bin LIMIT 32 LOOP
        -- the bin's start may lie in a neighbour made under another width:
        -- create the partition of the first row in the bin
        t := (SELECT min(d.creation_time) FROM udaconnect.location_default d
               WHERE d.creation_time >= t AND d.creation_time < t + width);
        CONTINUE WHEN t IS NULL;
        BEGIN
            SELECT * INTO r FROM udaconnect.location_partition_create(t);
        EXCEPTION WHEN lock_not_available THEN
            RAISE LOG 'udaconnect partitions: rows of location_default at % are in use; left for the next round', t;
            RETURN;
        WHEN OTHERS THEN
            RAISE WARNING 'udaconnect partitions: no partition could be made for the rows of location_default at %: %', t, SQLERRM
                USING DETAIL = 'They stay in udaconnect.location_default, where every search still finds them.';
            CONTINUE;
        END;
        created := created + r.created::integer;
        moved := moved + r.moved;
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION location_partition_width(), location_partitions(),
    location_partition_create(timestamptz), location_partitions_ensure(timestamptz, timestamptz),
    location_partitions_maintain() FROM PUBLIC;
