-- The original's algorithm, run from the client (psql) as the original's
-- service did from Python: read P's points of the day, then send one
-- ST_DWithin(coordinate::geography, point::geography, meters) query per point
-- (10-finder.sh appends one \gexec loop per person and window after this
-- header).  Results go to psql's output (-o FILE), then into
-- bench.original_rows.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET max_parallel_workers_per_gather = 0;
PREPARE near_none(float8, float8, int, timestamptz, timestamptz) AS
  SELECT $3, 'none', id, person_id, ST_X(coordinate), ST_Y(coordinate), creation_time
    FROM bench.postgis
   WHERE ST_DWithin(coordinate::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 5)
     AND person_id <> $3 AND creation_time >= $4 AND creation_time < $5;
PREPARE near_window(float8, float8, int, timestamptz, timestamptz, timestamptz) AS
  SELECT $3, '00:01:00', id, person_id, ST_X(coordinate), ST_Y(coordinate), creation_time
    FROM bench.postgis
   WHERE ST_DWithin(coordinate::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 5)
     AND person_id <> $3 AND creation_time >= $4 AND creation_time < $5
     AND creation_time BETWEEN $6 - interval '60 seconds' AND $6 + interval '60 seconds';
CREATE TABLE IF NOT EXISTS bench.original_rows (
  person int, win text, id bigint, person_id int, longitude float8, latitude float8, creation_time timestamptz);
