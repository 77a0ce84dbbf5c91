-- The gateways' entry to the finder: the window rule (api_window) and
-- api_find_connections, which grpcd's FindConnections calls (here as an
-- organizer; privacy.sql shows the other callers).
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT udaconnect.api_window(NULL) AS none, udaconnect.api_window(0) AS zero,
       udaconnect.api_window(90.5) AS ninety, udaconnect.api_window(1e9) AS largest;
SELECT pg_temp.err($$SELECT udaconnect.api_window(-1)$$);
SELECT pg_temp.err($$SELECT udaconnect.api_window(1e9 + 1)$$);
SELECT pg_temp.err($$SELECT udaconnect.api_window('NaN')$$);
SELECT pg_temp.err($$SELECT udaconnect.api_window('Infinity')$$);
-- two persons who meet, one who does not
SELECT id AS a FROM udaconnect.create_person('Api', 'A', 'X') \gset
SELECT id AS b FROM udaconnect.create_person('Api', 'B', 'X') \gset
SELECT id AS c FROM udaconnect.create_person('Api', 'C', 'X') \gset
SELECT count(*) FROM (
    SELECT udaconnect.record_location(:a, -33.123, 151.456, '2021-03-01 10:00Z')
    UNION ALL SELECT udaconnect.record_location(:b, -33.12301, 151.456, '2021-03-01 10:00:30Z')
    UNION ALL SELECT udaconnect.record_location(:b, -33.12301, 151.456, '2021-03-01 12:00Z')
    UNION ALL SELECT udaconnect.record_location(:c, -33.2, 151.5, '2021-03-01 10:00Z')) s;
-- the same rows as find_connections, window given in seconds
SELECT count(*) AS rows, bool_and(f.person_id = :b) AS only_b
  FROM udaconnect.api_find_connections('organizer', NULL, :a, '2021-03-01', '2021-03-01', 5, 60) f;
SELECT count(*) AS rows_without_window, bool_and(f.person_id = :b) AS only_b
  FROM udaconnect.api_find_connections('organizer', NULL, :a, '2021-03-01', '2021-03-01', 5, NULL) f;
SELECT (SELECT array_agg(row(f.*)::text ORDER BY f.creation_time)
          FROM udaconnect.api_find_connections('organizer', NULL, :a, '2021-03-01', '2021-03-01', 5, 3600) f)
     = (SELECT array_agg(row(f.*)::text ORDER BY f.creation_time)
          FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01', 5, '1 hour') f) AS same_as_finder;
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.api_find_connections('organizer', NULL, %s, '2021-03-01', '2021-03-01', 5, -5)$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.api_find_connections('organizer', NULL, %s, '2021-03-02', '2021-03-01', 5, NULL)$$, :a));
