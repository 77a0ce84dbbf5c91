-- Time partitions of udaconnect.location (15-partitions.sql, 40-privacy.sql):
-- the layout, making partitions (ahead, for rows of the DEFAULT partition,
-- narrowed to neighbours), rows routed and moved, the finder and the
-- encounters across a partition boundary, retention by partition drop, the
-- errors.  Times are fixed in March 1990 (no other file's) and ids explicit; nothing prints
-- now() or a sequence value.  The maintenance worker does not serve this
-- database (udaconnect.database names another), so nothing changes under us.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
CREATE VIEW pg_temp.parts AS
    SELECT p.partition, p.from_time, p.to_time, p.is_default
      FROM udaconnect.location_partitions() p
     WHERE p.is_default OR p.from_time < '1991-01-01'
     ORDER BY p.is_default, p.from_time;

-- the layout: partitioned by range of creation_time, a DEFAULT partition
SELECT c.relkind, pg_get_partkeydef(c.oid) AS key,
       (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
         WHERE k.conname = 'location_default_pkey') AS default_primary_key
  FROM pg_class c WHERE c.oid = 'udaconnect.location'::regclass;
SELECT * FROM pg_temp.parts;
SHOW udaconnect.location_partition_width;
SELECT udaconnect.location_partition_width() AS width;
SELECT pg_temp.try($$SET udaconnect.location_partition_width = '1 hour'$$) AS set_in_session;

-- partitions for three days, aligned to UTC midnight, named by their start
SELECT * FROM udaconnect.location_partitions_ensure('1990-03-01 06:00Z', '1990-03-03 12:00Z');
SELECT * FROM pg_temp.parts;
-- again: nothing to do
SELECT * FROM udaconnect.location_partitions_ensure('1990-03-01Z', '1990-03-04Z');
SELECT * FROM udaconnect.location_partition_create('1990-03-02 12:34Z');
-- each partition has its own key and btrees, named after it; the parent none
SELECT c.relname AS partition, array_agg(i.indexrelid::regclass::text || ': ' || pg_get_indexdef(i.indexrelid)
                                         ORDER BY i.indexrelid::regclass::text) AS indexes
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_index i ON i.indrelid = c.oid
 WHERE h.inhparent = 'udaconnect.location'::regclass AND c.relname <> 'location_default'
 GROUP BY c.relname ORDER BY 1 LIMIT 1;
SELECT count(*) AS indexes_of_the_parent FROM pg_index i WHERE i.indrelid = 'udaconnect.location'::regclass;
-- partitions are not members of the extension (pg_dump dumps them and
-- their rows as a user's tables); the parent and the DEFAULT partition are
SELECT c.relname, EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e') AS member
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'udaconnect' AND c.relname LIKE 'location%' AND c.relkind IN ('r', 'p')
 ORDER BY 1;
-- nobody else may see a partition's rows: no grants on them
SELECT c.relname, c.relacl FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
 WHERE i.inhparent = 'udaconnect.location'::regclass ORDER BY 1;

-- rows go to their partition; times no partition covers go to DEFAULT
INSERT INTO udaconnect.person (id, first_name, last_name, company_name) VALUES
    (951, 'Pia', 'P', 'Partitions'), (952, 'Quinn', 'Q', 'Partitions');
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (95001, 951, udaconnect.make_point(48.0, 11.0), '1990-03-02 23:59:50Z'),
    (95002, 952, udaconnect.make_point(48.000009, 11.0), '1990-03-03 00:00:10Z'),
    (95003, 951, udaconnect.make_point(48.0, 11.0), '1990-03-03 00:00:20Z'),
    (95004, 951, udaconnect.make_point(48.0, 11.0), '1990-03-05 10:00Z'),
    (95005, 952, udaconnect.make_point(48.000009, 11.0), '1990-03-05 10:00:30Z'),
    (95006, 951, udaconnect.make_point(48.0, 11.0), '1989-12-31 23:00Z');
SELECT l.id, l.tableoid::regclass AS partition FROM udaconnect.location l
 WHERE l.person_id IN (951, 952) ORDER BY l.id;
-- the finder and the encounters see across midnight and into DEFAULT
SELECT f.location_id, f.person_id, round(f.distance_m::numeric, 1) AS m
  FROM udaconnect.find_connections(951, '1990-03-02', '1990-03-05', 5, '60 seconds') f ORDER BY 1;
SELECT e.other_person_id, e.started_at, e.ended_at, e.matches
  FROM udaconnect.encounters(951, '1989-01-01', '1990-04-01') e ORDER BY e.started_at;

-- a partition for DEFAULT's rows takes them, ids and all; the encounters
-- are untouched
SELECT * FROM udaconnect.location_partition_create('1990-03-05 10:00:30Z');
SELECT l.id, l.tableoid::regclass AS partition FROM udaconnect.location l
 WHERE l.id IN (95004, 95005) ORDER BY l.id;
SELECT count(*) AS encounters_of_pia FROM udaconnect.encounters(951, '1989-01-01', '1990-04-01');
SELECT * FROM pg_temp.parts;

-- a partition is narrowed to its neighbours (made under another width);
-- one attached by hand needs its key and btrees too
CREATE TABLE udaconnect.location_hand PARTITION OF udaconnect.location
    FOR VALUES FROM ('1990-03-10 06:00Z') TO ('1990-03-10 18:00Z');
ALTER TABLE udaconnect.location_hand ADD CONSTRAINT location_hand_pkey PRIMARY KEY (id, creation_time);
CREATE INDEX location_hand_person_time_idx ON udaconnect.location_hand (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_hand_cell_time_idx ON udaconnect.location_hand (cell, creation_time) INCLUDE (person_id, id, coordinate);
SELECT * FROM udaconnect.location_partition_create('1990-03-10 03:00Z');
SELECT * FROM udaconnect.location_partition_create('1990-03-10 20:00Z');
SELECT * FROM udaconnect.location_partition_create('1990-03-10 07:00Z');
SELECT partition, from_time, to_time FROM pg_temp.parts WHERE from_time >= '1990-03-10';

-- refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.try($$SELECT udaconnect.location_partition_create('1990-03-20')$$) AS repeatable_read;
ROLLBACK;
SELECT pg_temp.try($$SELECT udaconnect.location_partition_create(NULL)$$) AS null_time,
       pg_temp.try($$SELECT udaconnect.location_partition_create('infinity')$$) AS infinite_time;
SELECT pg_temp.try($$SELECT udaconnect.location_partitions_ensure('1990-03-05', '1990-03-01')$$) AS backwards,
       pg_temp.try($$SELECT udaconnect.location_partitions_ensure(NULL, '1990-03-01')$$) AS null_from;
SELECT pg_temp.try($$SELECT udaconnect.location_partitions_ensure('2021-01-01', '2025-01-01')$$) AS too_wide;
SELECT count(*) AS nothing_made_by_the_refused_call FROM udaconnect.location_partitions() p
 WHERE p.from_time >= '2021-01-01' AND p.from_time < '2025-01-01';
CREATE ROLE udaconnect_partitions_nobody;
GRANT USAGE ON SCHEMA udaconnect TO udaconnect_partitions_nobody;
SET ROLE udaconnect_partitions_nobody;
SELECT pg_temp.try($$SELECT udaconnect.location_partitions_ensure('1990-04-01', '1990-04-02')$$) AS not_granted,
       pg_temp.try($$SELECT count(*) FROM udaconnect.location_p19900303$$) AS partition_not_granted;
RESET ROLE;
REVOKE USAGE ON SCHEMA udaconnect FROM udaconnect_partitions_nobody;
DROP ROLE udaconnect_partitions_nobody;

-- retention: whole partitions that end by the cutoff go; Pia and Quinn's
-- encounter across midnight keeps only what is left of it (its points of
-- March 3rd); DEFAULT's old row goes by the sweep; the partition the
-- cutoff falls in stays whole
SELECT * FROM udaconnect.retention_sweep('1990-03-03 00:00:15Z', 100);
-- the rows a drop reports are the statistics' figure (reltuples), not a
-- count made while location is held: a figure set by hand on the second
-- oldest partition (1 row) comes back; the oldest, never analyzed, is counted
UPDATE pg_catalog.pg_class c SET reltuples = 42
  FROM (SELECT x.partition FROM udaconnect.location_partitions() x
         WHERE NOT x.is_default ORDER BY x.from_time OFFSET 1 LIMIT 1) x
 WHERE c.oid = x.partition;
-- a partition a call, oldest first, until none is left
SELECT * FROM udaconnect.retention_drop_partitions('1990-03-03 00:00:15Z');
SELECT * FROM udaconnect.retention_drop_partitions('1990-03-03 00:00:15Z');
SELECT * FROM udaconnect.retention_drop_partitions('1990-03-03 00:00:15Z');
SELECT partition, from_time, to_time FROM pg_temp.parts WHERE from_time < '1990-03-04' OR is_default;
SELECT l.id, l.tableoid::regclass AS partition FROM udaconnect.location l
 WHERE l.person_id IN (951, 952) ORDER BY l.id;
SELECT e.other_person_id, e.started_at, e.ended_at, e.matches
  FROM udaconnect.encounters(951, '1989-01-01', '1990-04-01') e ORDER BY e.started_at;
SELECT udaconnect.encounters_rebuild('-infinity', 'infinity') IS NOT NULL AS rebuilt;
SELECT e.other_person_id, e.started_at, e.ended_at, e.matches
  FROM udaconnect.encounters(951, '1989-01-01', '1990-04-01') e ORDER BY e.started_at;
SELECT pg_temp.try($$SELECT udaconnect.retention_drop_partitions(NULL)$$) AS no_cutoff;

-- clean up what other files do not expect
DELETE FROM udaconnect.location WHERE person_id IN (951, 952);
DELETE FROM udaconnect.person WHERE id IN (951, 952);
DROP TABLE udaconnect.location_hand;
