-- find_connections and connected_persons: semantics and every error.
SET client_min_messages = warning;
-- dates are UTC days whatever the session's time zone
SET TimeZone = 'Pacific/Chatham';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT id AS a FROM udaconnect.create_person('Alice', 'A', 'Acme') \gset
SELECT id AS b FROM udaconnect.create_person('Bob', 'B', 'Bolts') \gset
SELECT id AS c FROM udaconnect.create_person('Carol', 'C', 'Cogs') \gset
SELECT id AS d FROM udaconnect.create_person('Dan', 'D', 'Dials') \gset
SELECT id AS e FROM udaconnect.create_person('Eve', 'E', 'Echo') \gset

-- Alice: twice at the booth at 12:00 and 12:01, at another booth just before
-- midnight UTC, and at the first booth at midnight (the next UTC day)
SELECT udaconnect.record_location(:a, 10, 10, '2021-03-01 12:00:00Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:a, 10, 10, '2021-03-01 12:01:00Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:a, 10.001, 10, '2021-03-01 23:59:59.999999Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:a, 10, 10, '2021-03-02 00:00:00Z') IS NOT NULL AS ok;
-- Bob: ~4.4 m east of the booth at 12:00:30 (within 60 s of both of Alice's
-- points: reported once, nearest distance) and again at 12:05
SELECT udaconnect.record_location(:b, 10, 10.00004, '2021-03-01 12:00:30Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:b, 10, 10.00004, '2021-03-01 12:05:00Z') IS NOT NULL AS ok;
-- Carol: at the booth the UTC day before, and at Alice's late spot at
-- 00:00:00 UTC the next day (1 microsecond after Alice was there)
SELECT udaconnect.record_location(:c, 10.00004, 10, '2021-02-28 23:59:59Z') IS NOT NULL AS ok;
SELECT udaconnect.record_location(:c, 10.001, 10, '2021-03-02 00:00:00Z') IS NOT NULL AS ok;
-- Dan: ~11 m away
SELECT udaconnect.record_location(:d, 10, 10.0001, '2021-03-01 12:00:00Z') IS NOT NULL AS ok;
-- Eve: exactly at the booth, exactly 60 s after Alice's 12:01 point
SELECT udaconnect.record_location(:e, 10, 10, '2021-03-01 12:02:00Z') IS NOT NULL AS ok;

CREATE TEMP VIEW names AS SELECT id, first_name FROM udaconnect.person;

-- one UTC day, 5 m, no window
SELECT n.first_name, f.latitude, f.longitude, f.creation_time AT TIME ZONE 'UTC' AS utc, round(f.distance_m::numeric, 3) AS distance_m
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
-- each location once
SELECT count(*) = count(DISTINCT location_id) AS no_duplicates
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-02', 50);
-- 60 s window (inclusive)
SELECT n.first_name, f.creation_time AT TIME ZONE 'UTC' AS utc, round(f.distance_m::numeric, 3) AS distance_m
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01', 5, '60 seconds') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
SELECT n.first_name, f.creation_time AT TIME ZONE 'UTC' AS utc
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01', 5, '59.999999 seconds') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
-- the next day counts only when it is in the range; the window bridges midnight
SELECT n.first_name, f.creation_time AT TIME ZONE 'UTC' AS utc
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-02', 5, '1 second') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
SELECT n.first_name, f.creation_time AT TIME ZONE 'UTC' AS utc
  FROM udaconnect.find_connections(:a, '2021-03-02', '2021-03-02', 5) f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
-- a wider radius reaches Dan
SELECT n.first_name, round(f.distance_m::numeric, 2) AS distance_m
  FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01', 20, '1 minute') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
-- the connection is symmetric
SELECT n.first_name FROM udaconnect.find_connections(:b, '2021-03-01', '2021-03-01', 5, '1 minute') f JOIN names n ON n.id = f.person_id
 ORDER BY f.creation_time, f.location_id;
-- no locations in range: no rows, no error
SELECT count(*) FROM udaconnect.find_connections(:a, '2019-01-01', '2019-12-31');
-- unbounded dates
SELECT count(*) FROM udaconnect.find_connections(:a, '-infinity', 'infinity', 5);
-- the summary
SELECT first_name, last_name, company_name, first_met AT TIME ZONE 'UTC' AS first_met,
       last_met AT TIME ZONE 'UTC' AS last_met, meetings, round(min_distance_m::numeric, 3) AS min_distance_m
  FROM udaconnect.connected_persons(:a, '2021-03-01', '2021-03-02', 20);

-- errors
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(2000000000, '2021-03-01', '2021-03-01')$$);
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-02', '2021-03-01')$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 0)$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', -5)$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 'NaN')$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 'Infinity')$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 10000.001)$$, :a));
SELECT count(*) >= 0 AS cap_is_inclusive FROM udaconnect.find_connections(:a, '2021-03-01', '2021-03-01', 10000);
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 5, '-1 second')$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', 5, '1 month')$$, :a));
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(NULL, '2021-03-01', '2021-03-01')$$);
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, NULL, '2021-03-01')$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', NULL)$$, :a));
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01', NULL)$$, :a));
SELECT pg_temp.err($$SELECT * FROM udaconnect.connected_persons(2000000000, '2021-03-01', '2021-03-01')$$);
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.connected_persons(%s, '2021-03-02', '2021-03-01')$$, :a));

-- EXECUTE is not granted to PUBLIC: the API is opened role by role
CREATE ROLE udc_regress_nobody;
SET ROLE udc_regress_nobody;
SELECT pg_temp.err(format($$SELECT * FROM udaconnect.find_connections(%s, '2021-03-01', '2021-03-01')$$, :a));
RESET ROLE;
DROP ROLE udc_regress_nobody;
