-- Finder benchmark: the three methods and the timing loop (test/bench/10-finder.sh).
-- psql variables: day (the measured UTC day), npersons (sample size),
-- persons (attendees in the data).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- planner trap (performance-facts.md): with parallel workers the self-join
-- reads P's points with a parallel seq scan instead of btree(person_id, ts)
SET max_parallel_workers_per_gather = 0;

CREATE TABLE IF NOT EXISTS bench.result (
  method text, win text, person int, ms float8, n bigint, idsum numeric, idhash bigint);

-- every query returns (rows, sum of ids, sum of hashint8(ids)): a checksum of
-- its set of location ids, to check the methods agree
CREATE OR REPLACE FUNCTION bench.q_finder(p int, day date, w interval) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format('SELECT count(*), sum(location_id), sum(hashint8(location_id)) '
                'FROM udaconnect.find_connections(%s, %L, %L, 5, %L)', p, day, day, w) $$;

-- the plain PostGIS single-statement self-join, same rows and columns as
-- find_connections (distinct locations, nearest distance, ordered)
CREATE OR REPLACE FUNCTION bench.q_selfjoin(p int, day date, w interval) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format($q$SELECT count(*), sum(id), sum(hashint8(id)) FROM (
  SELECT b.id, b.person_id, ST_Y(b.coordinate) AS latitude, ST_X(b.coordinate) AS longitude, b.creation_time,
         min(ST_Distance(a.coordinate::geography, b.coordinate::geography)) AS distance_m
    FROM bench.postgis a JOIN bench.postgis b
      ON ST_DWithin(b.coordinate::geography, a.coordinate::geography, 5)
   WHERE a.person_id = %1$s AND a.creation_time >= %2$L AND a.creation_time < %3$L
     AND b.person_id <> %1$s AND b.creation_time >= %2$L AND b.creation_time < %3$L%4$s
   GROUP BY b.id ORDER BY b.creation_time, b.id) s$q$,
    p, (day::timestamp AT TIME ZONE 'UTC')::text, ((day + 1)::timestamp AT TIME ZONE 'UTC')::text,
    CASE WHEN w IS NULL THEN ''
         ELSE format(E'\n     AND b.creation_time BETWEEN a.creation_time - %1$L::interval AND a.creation_time + %1$L::interval', w) END) $$;

CREATE OR REPLACE FUNCTION bench.timed(q text, OUT ms float8, OUT n bigint, OUT idsum numeric, OUT idhash bigint)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  EXECUTE q INTO n, idsum, idhash;
  ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
END $$;

-- the sample: npersons persons spread over the id range
CREATE OR REPLACE FUNCTION bench.sample(npersons int, persons int) RETURNS SETOF int
LANGUAGE sql IMMUTABLE AS $$ SELECT 1 + (i * persons) / npersons FROM generate_series(0, npersons - 1) i $$;

-- warm-up persons: nwarm attendees spread over the id range, none of them in
-- the sample (attendees move independently of one another in gen.sql)
CREATE OR REPLACE FUNCTION bench.warmup(nwarm int, npersons int, persons int) RETURNS SETOF int
LANGUAGE sql IMMUTABLE AS $$
  SELECT w FROM (SELECT DISTINCT least(persons, s + greatest(1, persons / (2 * npersons))) AS w
                   FROM bench.sample(nwarm, persons) s) x
   WHERE w NOT IN (SELECT bench.sample(npersons, persons)) ORDER BY w $$;

-- The measured day's pages, read by the measuring backend before a method's
-- block: a live conference day, where the day being asked about is the hot
-- set (it fits in shared_buffers: under 170 MB of index at 10M rows).  For each
-- layout, the index entries and rows its method reads for that day; the
-- backend maps those shared buffers as it reads them.  Without this, the
-- first queries after the load read the day's pages from disk and fault in
-- each shared buffer of the backend ('find_connections, first touch').
-- prewarm_scan forces index scans (its SET clauses) for the reads only;
-- prewarm collects the day's cells with whatever plan is fastest.
CREATE OR REPLACE FUNCTION bench.prewarm_scan(m text, t0 timestamptz, t1 timestamptz, cells bigint[], persons int[])
RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET max_parallel_workers_per_gather = 0 AS $$
BEGIN
  IF m LIKE 'find_connections%' THEN
    PERFORM count(*) FROM udaconnect.location
      WHERE cell = ANY (cells) AND creation_time >= t0 AND creation_time < t1;
    PERFORM count(*) FROM udaconnect.location
      WHERE person_id = ANY (persons) AND creation_time >= t0 AND creation_time < t1;
  ELSE
    PERFORM pg_prewarm('bench.bench_postgis_geog_idx');
    PERFORM sum(ST_X(coordinate)) FROM bench.postgis WHERE creation_time >= t0 AND creation_time < t1;
    PERFORM count(*) FROM bench.postgis
      WHERE person_id = ANY (persons) AND creation_time >= t0 AND creation_time < t1;
  END IF;
END $$;
CREATE OR REPLACE FUNCTION bench.prewarm(m text, day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := day::timestamp AT TIME ZONE 'UTC';
        t1 timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  PERFORM bench.prewarm_scan(m, t0, t1,
    CASE WHEN m LIKE 'find_connections%'
         THEN ARRAY(SELECT DISTINCT cell FROM udaconnect.location WHERE creation_time >= t0 AND creation_time < t1) END,
    ARRAY(SELECT id FROM udaconnect.person));
END $$;

-- each method and window in a block of its own: the day's pages
-- (bench.prewarm), a warm-up of nwarm other attendees' queries on the same
-- day, then the sampled persons.  'find_connections, first touch' skips the
-- prewarm and the warm-up: measured first, right after the load.
-- (Interleaving the methods person by person let the self-join, which reads
-- gigabytes per call at 10M, evict the finder's pages between two finder
-- calls: that measured the baseline's damage to the cache, not the finder.
-- docs/benchmarks.md.)
-- methods: the labels to measure: 'find_connections', 'PostGIS self-join',
-- or 'self-join, GiST only' (the self-join once btree(creation_time) is
-- dropped: the planner may AND that btree into the GiST probes; 10-finder.sh
-- then measures both).  lim: only the first lim persons of the sample.
CREATE OR REPLACE FUNCTION bench.measure(day date, npersons int, persons int, methods text[],
                                         windows interval[] DEFAULT ARRAY['60 seconds', NULL]::interval[],
                                         lim int DEFAULT NULL, nwarm int DEFAULT 3) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE p int; w interval; r record; warm boolean; m text;
BEGIN
  FOREACH m IN ARRAY methods LOOP
    FOREACH w IN ARRAY windows LOOP
      IF m NOT LIKE '%first touch' THEN
        PERFORM bench.prewarm(m, day);
      END IF;
      FOR warm IN SELECT unnest(ARRAY[true, false]) LOOP
        FOR p IN SELECT q FROM (SELECT bench.sample(npersons, persons) AS q LIMIT lim) y WHERE NOT warm
                 UNION ALL
                 SELECT q FROM bench.warmup(nwarm, npersons, persons) q WHERE warm AND m NOT LIKE '%first touch' LOOP
          r := bench.timed(CASE WHEN m LIKE 'find_connections%' THEN bench.q_finder(p, day, w)
                                ELSE bench.q_selfjoin(p, day, w) END);
          IF NOT warm THEN
            INSERT INTO bench.result VALUES (m, coalesce(w::text, 'none'), p, r.ms, r.n, r.idsum, r.idhash);
          END IF;
        END LOOP;
      END LOOP;
    END LOOP;
  END LOOP;
END $$;

-- The finder here and on another database holding the same rows (dsn, via
-- dblink: 10-finder.sh's 1.4 plain table, method label m2), person by person
-- alternately (and which goes first alternates too), so that the machine's
-- other work weighs on both alike: measured one block after the other, a
-- burst of load on a shared machine made either look slower.  Both days
-- are small next to shared_buffers: neither evicts the other's pages.  Each
-- side reads its day's pages first and runs the warm-up persons; the
-- timings are each server's own (bench.timed), as in bench.measure.
CREATE OR REPLACE FUNCTION bench.measure_pair(day date, npersons int, persons int, dsn text, m2 text,
                                              windows interval[] DEFAULT ARRAY['60 seconds', NULL]::interval[],
                                              nwarm int DEFAULT 3) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE p int; w interval; r record; i int := 0; here boolean;
BEGIN
  PERFORM dblink_connect('bench_pair', dsn);
  PERFORM * FROM dblink('bench_pair', 'SET max_parallel_workers_per_gather = 0') AS t(x text);
  FOREACH w IN ARRAY windows LOOP
    PERFORM bench.prewarm('find_connections', day);
    PERFORM * FROM dblink('bench_pair', format('SELECT bench.prewarm(%L, %L)', m2, day)) AS t(x text);
    FOR p IN SELECT q FROM bench.warmup(nwarm, npersons, persons) q LOOP
      PERFORM bench.timed(bench.q_finder(p, day, w));
      PERFORM * FROM dblink('bench_pair', format('SELECT ms FROM bench.timed(%L)', bench.q_finder(p, day, w)))
          AS t(ms float8);
    END LOOP;
    FOR p IN SELECT bench.sample(npersons, persons) LOOP
      i := i + 1;
      FOR here IN SELECT unnest(CASE WHEN i % 2 = 0 THEN ARRAY[true, false] ELSE ARRAY[false, true] END) LOOP
        IF here THEN
          r := bench.timed(bench.q_finder(p, day, w));
          INSERT INTO bench.result VALUES ('find_connections', coalesce(w::text, 'none'), p, r.ms, r.n, r.idsum, r.idhash);
        ELSE
          SELECT * INTO r
            FROM dblink('bench_pair', format('SELECT ms, n, idsum, idhash FROM bench.timed(%L)', bench.q_finder(p, day, w)))
                 AS t(ms float8, n bigint, idsum numeric, idhash bigint);
          INSERT INTO bench.result VALUES (m2, coalesce(w::text, 'none'), p, r.ms, r.n, r.idsum, r.idhash);
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
  PERFORM dblink_disconnect('bench_pair');
END $$;
