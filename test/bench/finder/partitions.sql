-- Finder benchmark: the day-partitioned table against the same rows in the
-- 1.4 plain table (issue 16), one size's lines (psql variable rows = label).
-- Columns: rows|window|persons|partitioned p50 ms|1.4 plain p50 ms|
--          ratio of the p50s|same rows (set of location ids per person)|target
\set ON_ERROR_STOP 1
WITH s AS (
  SELECT method, win, count(*) AS persons,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50
    FROM bench.result
   WHERE method IN ('find_connections', 'find_connections, 1.4 plain table')
   GROUP BY 1, 2),
ident AS (
  SELECT p.win, count(*) FILTER (WHERE (p.n, p.idsum, p.idhash) IS DISTINCT FROM (l.n, l.idsum, l.idhash)) AS differ
    FROM bench.result p LEFT JOIN bench.result l
      ON l.method = 'find_connections, 1.4 plain table' AND l.win = p.win AND l.person = p.person
   WHERE p.method = 'find_connections' GROUP BY 1)
SELECT concat_ws('|', :'rows', CASE p.win WHEN 'none' THEN 'none' ELSE '60 s' END, p.persons,
       round(p.p50::numeric, 2), round(l.p50::numeric, 2),
       round((p.p50 / nullif(l.p50, 0))::numeric, 2) || 'x',
       CASE WHEN i.differ = 0 THEN 'yes' ELSE format('NO (%s of %s persons differ)', i.differ, p.persons) END,
       CASE WHEN p.p50 <= 1.2 * l.p50 AND i.differ = 0 THEN 'met (partitioned within 1.2x, same rows)'
            ELSE 'NOT met: ' || concat_ws(', ', CASE WHEN NOT p.p50 <= 1.2 * l.p50 THEN 'partitioned above 1.2x' END,
                                          CASE WHEN i.differ <> 0 THEN 'rows differ' END) END)
  FROM s p JOIN s l ON l.win = p.win AND l.method = 'find_connections, 1.4 plain table'
  JOIN ident i ON i.win = p.win
 WHERE p.method = 'find_connections'
 ORDER BY p.win <> 'none' DESC;
