-- The oracle check: compares udaconnect.find_connections and
-- udaconnect.connected_persons with the plain PostGIS answer for one set of
-- arguments.  Defined in pg_temp (session-local), so it can run in any
-- database holding the extension without changing it (35-seed uses it on
-- geoconnections).  Usage:
--   SELECT pg_temp.udc_check(n, label, person_id, start_date, end_date, meters, time_window, timezone);
-- returns one TAP line "ok n - label ..." / "not ok n - label ...", followed
-- by "# ..." lines describing each problem.
--
-- The oracle (issue 2): L2 of person Q <> P qualifies when some L1 of P has
-- both creation times in [start_date 00:00 UTC, end_date + 1 day 00:00 UTC),
-- ST_DWithin(L1::geography, L2::geography, meters), and, with a window,
-- |L1.creation_time - L2.creation_time| <= time_window.  distance_m is
-- min ST_Distance(geography, use_spheroid => true) over those L1.
-- Tolerances: a location found by only one side must have its nearest
-- time-qualifying L1 within 1 mm of the threshold; distances agree within 1 mm.
-- Checked as well: no duplicate location ids, rows ordered by
-- (creation_time, location_id), the other columns equal the stored row,
-- never P's own points, and connected_persons equal to the aggregate of the
-- oracle's rows.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.udc_check(n int, label text, p int, s date, e date, m float8,
                                  w interval, tz text)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
  lo timestamptz := s::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (e + 1)::timestamp AT TIME ZONE 'UTC';
  wsec numeric := extract(epoch FROM w);
  tol constant float8 := 0.001;
  problems text[] := '{}';
  nf bigint; nfd bigint; no bigint; ncp bigint; ntol int := 0;
  r record;
  old_tz text := current_setting('TimeZone');
  use_finder boolean;
BEGIN
  DROP TABLE IF EXISTS pg_temp._f, pg_temp._o, pg_temp._cp, pg_temp._l1, pg_temp._ref, pg_temp._d;
  -- the finder, in the scenario's session TimeZone
  PERFORM set_config('TimeZone', tz, false);
  BEGIN
    CREATE TEMP TABLE _f AS
      SELECT x.* FROM udaconnect.find_connections(p, s, e, m, w) WITH ORDINALITY
             AS x(location_id, person_id, latitude, longitude, creation_time, distance_m, ord);
    CREATE TEMP TABLE _cp AS SELECT * FROM udaconnect.connected_persons(p, s, e, m, w);
  EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('TimeZone', old_tz, false);
    RETURN NEXT format('not ok %s - %s: the finder raised %s: %s', n, label, SQLSTATE, SQLERRM);
    RETURN;
  END;
  PERFORM set_config('TimeZone', old_tz, false);

  -- the oracle
  CREATE TEMP TABLE _l1 AS
    SELECT l.id, l.coordinate::geography AS g, l.creation_time AS t
      FROM udaconnect.location l
     WHERE l.person_id = p AND l.creation_time >= lo AND l.creation_time < hi;
  ANALYZE _l1;
  CREATE TEMP TABLE _o AS
    SELECT l2.id AS location_id, min(ST_Distance(l1.g, l2.coordinate::geography, true)) AS d
      FROM _l1 l1 JOIN udaconnect.location l2
        ON ST_DWithin(l2.coordinate::geography, l1.g, m)
     WHERE l2.person_id <> p AND l2.creation_time >= lo AND l2.creation_time < hi
       AND (w IS NULL OR abs(extract(epoch FROM l2.creation_time) - extract(epoch FROM l1.t)) <= wsec)
     GROUP BY l2.id;

  SELECT count(*), count(DISTINCT location_id) INTO nf, nfd FROM _f;
  SELECT count(*) INTO no FROM _o;
  IF nf <> nfd THEN
    problems := problems || format('%s duplicate rows, e.g. location %s', nf - nfd,
      (SELECT location_id FROM _f GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1));
  END IF;

  -- order: (creation_time, location_id) ascending
  FOR r IN SELECT a.ord, a.location_id AS a_id, a.creation_time AS a_t, b.location_id AS b_id, b.creation_time AS b_t
             FROM _f a JOIN _f b ON b.ord = a.ord + 1
            WHERE (b.creation_time, b.location_id) < (a.creation_time, a.location_id)
            ORDER BY a.ord LIMIT 3 LOOP
    problems := problems || format('order: row %s (location %s, %s) comes before location %s, %s',
                                   r.ord, r.a_id, r.a_t, r.b_id, r.b_t);
  END LOOP;

  -- the other columns are the stored row's
  FOR r IN SELECT f.*, l.id AS lid, l.person_id AS lp, ST_Y(l.coordinate) AS lat, ST_X(l.coordinate) AS lon,
                  l.creation_time AS lt
             FROM _f f LEFT JOIN udaconnect.location l ON l.id = f.location_id
            WHERE l.id IS NULL OR f.person_id IS DISTINCT FROM l.person_id OR f.person_id = p
               OR f.latitude IS DISTINCT FROM ST_Y(l.coordinate)
               OR f.longitude IS DISTINCT FROM ST_X(l.coordinate)
               OR f.creation_time IS DISTINCT FROM l.creation_time
            ORDER BY f.ord LIMIT 3 LOOP
    problems := problems || format('row %s: got (location %s, person %s, lat %s, lon %s, %s), stored (location %s, person %s, lat %s, lon %s, %s)',
                                   r.ord, r.location_id, r.person_id, r.latitude, r.longitude, r.creation_time,
                                   r.lid, r.lp, r.lat, r.lon, r.lt);
  END LOOP;

  -- set differences, tolerated only within 1 mm of the threshold
  CREATE TEMP TABLE _d AS
    SELECT f.location_id, 'unexpected'::text AS kind
      FROM _f f LEFT JOIN _o o ON o.location_id = f.location_id WHERE o.location_id IS NULL
    UNION
    SELECT o.location_id, 'missing'
      FROM _o o LEFT JOIN _f f ON f.location_id = o.location_id WHERE f.location_id IS NULL;
  FOR r IN
    SELECT diff.*, l2.person_id AS q, ST_AsText(l2.coordinate) AS pt, l2.creation_time AS t2,
           (SELECT f.distance_m FROM _f f WHERE f.location_id = diff.location_id LIMIT 1) AS fd,
           nn.id AS l1_id, nn.pt AS l1_pt, nn.t AS l1_t, nn.d AS l1_d
      FROM _d diff
      LEFT JOIN udaconnect.location l2 ON l2.id = diff.location_id
      LEFT JOIN LATERAL (
        SELECT l1.id, ST_AsText(l1.g::geometry) AS pt, l1.t, ST_Distance(l1.g, l2.coordinate::geography, true) AS d
          FROM _l1 l1
         WHERE l2.person_id <> p AND l2.creation_time >= lo AND l2.creation_time < hi
           AND (w IS NULL OR abs(extract(epoch FROM l2.creation_time) - extract(epoch FROM l1.t)) <= wsec)
         ORDER BY 4, 1 LIMIT 1) nn ON true
     ORDER BY diff.location_id
  LOOP
    IF r.l1_d IS NOT NULL AND abs(r.l1_d - m) <= tol
       AND (r.kind = 'missing' OR abs(r.fd - r.l1_d) <= tol) THEN
      ntol := ntol + 1;
    ELSIF cardinality(problems) < 12 THEN
      problems := problems || format('%s location %s (person %s, %s, %s): nearest qualifying point of P is %s (%s, %s) at %s m; meters %s; finder distance_m %s',
                                     r.kind, r.location_id, r.q, r.pt, r.t2,
                                     coalesce(r.l1_id::text, 'none'), r.l1_pt, r.l1_t, r.l1_d, m, r.fd);
    ELSE
      problems := problems || format('%s location %s', r.kind, r.location_id);
    END IF;
  END LOOP;

  -- distances
  FOR r IN SELECT f.location_id, f.distance_m, o.d FROM _f f JOIN _o o USING (location_id)
            WHERE NOT (abs(f.distance_m - o.d) <= tol) ORDER BY 1 LIMIT 5 LOOP
    problems := problems || format('location %s: distance_m %s, oracle %s', r.location_id, r.distance_m, r.d);
  END LOOP;

  -- connected_persons = the aggregate of the oracle's rows (of the finder's
  -- rows when they differ from the oracle's only within the tolerance)
  use_finder := ntol > 0;
  CREATE TEMP TABLE _ref AS
    SELECT l.person_id, pe.first_name, pe.last_name, pe.company_name,
           min(l.creation_time) AS first_met, max(l.creation_time) AS last_met,
           count(*) AS meetings, min(x.d) AS min_d
      FROM (SELECT location_id, d FROM _o WHERE NOT use_finder
            UNION ALL SELECT location_id, distance_m FROM _f WHERE use_finder) x
      JOIN udaconnect.location l ON l.id = x.location_id
      JOIN udaconnect.person pe ON pe.id = l.person_id
     GROUP BY 1, 2, 3, 4;
  SELECT count(*) INTO ncp FROM _cp;
  IF ncp <> (SELECT count(DISTINCT person_id) FROM _cp) THEN
    problems := problems || 'connected_persons: duplicate person rows'::text;
  END IF;
  FOR r IN SELECT c.person_id AS cp, c.first_name AS cf, c.last_name AS cl, c.company_name AS cc,
                  c.first_met AS cfirst, c.last_met AS clast, c.meetings AS cm, c.min_distance_m AS cd,
                  x.person_id AS xp, x.first_name AS xf, x.last_name AS xl, x.company_name AS xc,
                  x.first_met AS xfirst, x.last_met AS xlast, x.meetings AS xm, x.min_d AS xd
             FROM _cp c FULL JOIN _ref x ON x.person_id = c.person_id
            WHERE c.person_id IS NULL OR x.person_id IS NULL
               OR (c.first_name, c.last_name, c.company_name, c.first_met, c.last_met, c.meetings)
                  IS DISTINCT FROM (x.first_name, x.last_name, x.company_name, x.first_met, x.last_met, x.meetings)
               OR NOT (abs(c.min_distance_m - x.min_d) <= tol)
            ORDER BY coalesce(c.person_id, x.person_id) LIMIT 5 LOOP
    problems := problems || format('connected_persons: got %s, expected %s',
      CASE WHEN r.cp IS NULL THEN 'no row' ELSE format('(%s, %s, %s, %s, %s, %s, %s, %s)', r.cp, r.cf, r.cl, r.cc, r.cfirst, r.clast, r.cm, r.cd) END,
      CASE WHEN r.xp IS NULL THEN 'no row' ELSE format('(%s, %s, %s, %s, %s, %s, %s, %s)', r.xp, r.xf, r.xl, r.xc, r.xfirst, r.xlast, r.xm, r.xd) END);
  END LOOP;

  RETURN NEXT format('%s %s - %s: %s rows, oracle %s%s, %s persons',
                     CASE WHEN cardinality(problems) = 0 THEN 'ok' ELSE 'not ok' END, n, label, nf, no,
                     CASE WHEN ntol > 0 THEN format(' (%s within 1 mm of the threshold)', ntol) ELSE '' END, ncp);
  FOR i IN 1 .. cardinality(problems) LOOP
    RETURN NEXT '#   ' || problems[i];
  END LOOP;
  DROP TABLE IF EXISTS pg_temp._f, pg_temp._o, pg_temp._cp, pg_temp._l1, pg_temp._ref, pg_temp._d;
END;
$fn$;

-- the TAP label of a scenario
CREATE FUNCTION pg_temp.udc_label(p int, s date, e date, m float8, w interval, tz text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT format('person %s, %s..%s, %s m, window %s, TimeZone %s', p, s, e, m, coalesce(w::text, 'none'), tz) $$;
