-- The data of an UdaConnect database as the update must keep it, one line per
-- aspect (count and md5), in a form every shipped version can print:
-- test/extension/updated-db.sh writes it before ALTER EXTENSION pg_udaconnect
-- UPDATE, test/suites/27-upgrade.sh after it and requires the same lines.
-- No ON_ERROR_STOP here: the caller chooses (after the update, a failing
-- aspect must not hide the others).
--   persons     every person row
--   locations   every location row: id, person_id, coordinate, creation_time
--               (the columns every version has; cell is derived from them)
--   ids         the smallest and largest location id
--   finder      every person's find_connections over 2020 at 5 m and 60 s,
--               rows in the finder's order
--   connected   every person's connected_persons, same arguments
--   finder-50m  find_connections at 50 m without a time window on the
--               synthetic day (2020-08-20), for the persons with points then
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
\pset tuples_only on
\pset format unaligned
SELECT 'persons ' || count(*) || ' '
       || coalesce(md5(string_agg(row(p.id, p.first_name, p.last_name, p.company_name)::text, '|' ORDER BY p.id)), '-')
  FROM udaconnect.person p;
SELECT 'locations ' || count(*) || ' '
       || coalesce(md5(string_agg(row(l.id, l.person_id, l.coordinate, l.creation_time)::text, '|' ORDER BY l.id)), '-')
  FROM udaconnect.location l;
SELECT 'ids ' || coalesce(min(id)::text, '-') || ' ' || coalesce(max(id)::text, '-') FROM udaconnect.location;
SELECT 'finder ' || count(*) || ' ' || coalesce(md5(string_agg(p.id || ':' || row(f.*)::text, '|' ORDER BY p.id, f.ord)), '-')
  FROM udaconnect.person p,
       udaconnect.find_connections(p.id, '2020-01-01', '2020-12-31', 5, '60 seconds') WITH ORDINALITY
         AS f(location_id, person_id, latitude, longitude, creation_time, distance_m, ord);
SELECT 'connected ' || count(*) || ' ' || coalesce(md5(string_agg(p.id || ':' || row(c.*)::text, '|' ORDER BY p.id, c.ord)), '-')
  FROM udaconnect.person p,
       udaconnect.connected_persons(p.id, '2020-01-01', '2020-12-31', 5, '60 seconds') WITH ORDINALITY
         AS c(person_id, first_name, last_name, company_name, first_met, last_met, meetings, min_distance_m, ord);
SELECT 'finder-50m ' || count(*) || ' ' || coalesce(md5(string_agg(p.id || ':' || row(f.*)::text, '|' ORDER BY p.id, f.ord)), '-')
  FROM udaconnect.person p,
       udaconnect.find_connections(p.id, '2020-08-20', '2020-08-20', 50, NULL) WITH ORDINALITY
         AS f(location_id, person_id, latitude, longitude, creation_time, distance_m, ord)
 WHERE EXISTS (SELECT 1 FROM udaconnect.location l
                WHERE l.person_id = p.id AND l.creation_time >= '2020-08-20 00:00+00'
                  AND l.creation_time < '2020-08-21 00:00+00');
