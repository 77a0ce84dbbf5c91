-- Finder benchmark: one size's latency table (psql variable rows = label;
-- baseline = off in the long mode, where no self-join was measured: no
-- speedup, identity or target then).
-- Columns: rows|method|window|persons|p50 ms|p95 ms|speedup (p50) over the
--          faster self-join variant|identical to the self-join|rows out per query|target
\set ON_ERROR_STOP 1
\if :{?baseline}
\else
\set baseline on
\endif
WITH s AS (
  SELECT method, win, count(*) AS persons,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
         avg(n) AS rows_out
    FROM bench.result GROUP BY 1, 2),
ident AS (
  SELECT r.method, r.win,
         count(*) FILTER (WHERE (r.n, r.idsum, r.idhash) IS DISTINCT FROM (j.n, j.idsum, j.idhash)) AS differ,
         count(*) FILTER (WHERE j.person IS NULL) AS unmatched
    FROM bench.result r LEFT JOIN bench.result j
      ON j.method = 'PostGIS self-join' AND j.win = r.win AND j.person = r.person
   WHERE r.method <> 'PostGIS self-join' GROUP BY 1, 2),
t AS (
  SELECT s.*, (SELECT min(sj.p50) FROM s sj WHERE sj.method LIKE '%self-join%' AND sj.win = s.win)
                / nullif(s.p50, 0) AS speedup, i.differ, i.unmatched
    FROM s LEFT JOIN ident i ON i.method = s.method AND i.win = s.win)
SELECT concat_ws('|', :'rows', method, CASE win WHEN 'none' THEN 'none' ELSE '60 s' END, persons,
       round(p50::numeric, 2), round(p95::numeric, 2),
       CASE WHEN :'baseline' = 'off' THEN '-' ELSE round(speedup::numeric, 1) || 'x' END,
       CASE WHEN method = 'PostGIS self-join' OR :'baseline' = 'off' THEN '-'
            WHEN differ = 0 AND unmatched = 0 THEN 'yes'
            ELSE format('NO (%s of %s persons differ)', differ, persons) END,
       round(rows_out),
       CASE WHEN method <> 'find_connections' OR :'baseline' = 'off' THEN '-'
            WHEN win <> 'none' THEN
              CASE WHEN p50 <= 5 AND speedup >= 50 AND differ = 0 THEN 'met (p50 <= 5 ms, >= 50x, identical)'
                   ELSE 'NOT met: ' || concat_ws(', ', CASE WHEN p50 > 5 THEN 'p50 > 5 ms' END,
                                  CASE WHEN NOT speedup >= 50 THEN 'speedup < 50x' END,
                                  CASE WHEN differ <> 0 THEN 'results differ' END) END
            ELSE
              CASE WHEN speedup >= 5 AND differ = 0 THEN 'met (>= 5x, identical)'
                   ELSE 'NOT met: ' || concat_ws(', ', CASE WHEN NOT speedup >= 5 THEN 'speedup < 5x' END,
                                  CASE WHEN differ <> 0 THEN 'results differ' END) END
       END)
  FROM t
 ORDER BY win <> 'none' DESC,
          CASE method WHEN 'find_connections' THEN 1 WHEN 'find_connections, 1.4 plain table' THEN 2
                      WHEN 'find_connections, first touch' THEN 3
                      WHEN 'PostGIS self-join' THEN 4 WHEN 'original' THEN 6 ELSE 5 END;
