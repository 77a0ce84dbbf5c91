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

-- each method and window in a block of its own: a warm-up of 3 persons, then
-- the sampled persons.  (Interleaving the methods person by person let the
-- self-join, which reads gigabytes per call at 10M, evict the finder's pages
-- between two finder calls: that measured the baseline's damage to the cache,
-- not the finder.  docs/benchmarks.md.)
-- methods: the labels to measure: 'find_connections', 'PostGIS self-join',
-- or 'self-join, GiST only' (the self-join once btree(creation_time) is
-- dropped: the planner may AND that btree into the GiST probes; 10-finder.sh
-- then measures both).  lim: only the first lim persons of the sample.
CREATE OR REPLACE FUNCTION bench.measure(day date, npersons int, persons int, methods text[],
                                         windows interval[] DEFAULT ARRAY['60 seconds', NULL]::interval[],
                                         lim int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE p int; w interval; r record; warm boolean; m text;
BEGIN
  FOREACH m IN ARRAY methods LOOP
    FOREACH w IN ARRAY windows LOOP
      FOR warm IN SELECT unnest(ARRAY[true, false]) LOOP
        FOR p IN SELECT bench.sample(npersons, persons) LIMIT CASE WHEN warm THEN 3 ELSE lim END LOOP
          r := bench.timed(CASE WHEN m = 'find_connections' THEN bench.q_finder(p, day, w)
                                ELSE bench.q_selfjoin(p, day, w) END);
          IF NOT warm THEN
            INSERT INTO bench.result VALUES (m, coalesce(w::text, 'none'), p, r.ms, r.n, r.idsum, r.idhash);
          END IF;
        END LOOP;
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
