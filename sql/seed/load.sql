-- Load the original UdaConnect sample data (sql/seed/udaconnect_public_*.sql,
-- unchanged copies of the original files) into pg_udaconnect's tables.
-- scripts/run_db_command.sh feeds this file after the original INSERTs,
-- which it points at the temporary tables seed_person and seed_location.
--
-- Ids are kept.  Some original points are stored as POINT(latitude
-- longitude) instead of POINT(longitude latitude): a row is kept as given
-- when valid, swapped when only the swapped form is valid (and counted as
-- repaired), refused (and listed) when neither form is valid.
-- Idempotent: rows whose id already exists are left alone.

CREATE TEMP TABLE seed_checked AS
SELECT id, person_id,
       creation_time AT TIME ZONE 'UTC' AS creation_time,
       CASE
         WHEN y BETWEEN -90 AND 90 AND x BETWEEN -180 AND 180 THEN 'as given'
         WHEN x BETWEEN -90 AND 90 AND y BETWEEN -180 AND 180 THEN 'swapped'
         ELSE 'refused'
       END AS verdict,
       CASE
         WHEN y BETWEEN -90 AND 90 AND x BETWEEN -180 AND 180 THEN y
         WHEN x BETWEEN -90 AND 90 AND y BETWEEN -180 AND 180 THEN x
       END AS latitude,
       CASE
         WHEN y BETWEEN -90 AND 90 AND x BETWEEN -180 AND 180 THEN x
         WHEN x BETWEEN -90 AND 90 AND y BETWEEN -180 AND 180 THEN y
       END AS longitude,
       x, y
  FROM (SELECT id, person_id, creation_time,
               ST_X(coordinate) AS x, ST_Y(coordinate) AS y
          FROM seed_location) s;

INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT id, btrim(first_name), btrim(last_name), btrim(company_name)
  FROM seed_person
ON CONFLICT (id) DO NOTHING;

-- NOT EXISTS rather than ON CONFLICT (id): from 1.5 the primary key is
-- (id, creation_time) (the partition key must be in it), and this loader
-- also fills older versions in the update tests
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time)
SELECT s.id, s.person_id, udaconnect.make_point(s.latitude, s.longitude), s.creation_time
  FROM seed_checked s
 WHERE s.verdict <> 'refused'
   AND NOT EXISTS (SELECT 1 FROM udaconnect.location l WHERE l.id = s.id);

\o /dev/null
SELECT setval(pg_get_serial_sequence('udaconnect.person', 'id'),
              GREATEST((SELECT max(id) FROM udaconnect.person), 1));
SELECT setval(pg_get_serial_sequence('udaconnect.location', 'id'),
              GREATEST((SELECT max(id) FROM udaconnect.location), 1));
\o

\pset tuples_only on
\pset format unaligned
SELECT format('loaded %s persons and %s locations; repaired %s locations stored as (latitude, longitude); refused %s invalid either way',
              (SELECT count(*) FROM seed_person),
              (SELECT count(*) FROM seed_checked WHERE verdict <> 'refused'),
              (SELECT count(*) FROM seed_checked WHERE verdict = 'swapped'),
              (SELECT count(*) FROM seed_checked WHERE verdict = 'refused'));
SELECT format('refused location %s: POINT(%s %s) is not a valid coordinate either way', id, x, y)
  FROM seed_checked WHERE verdict = 'refused' ORDER BY id;
