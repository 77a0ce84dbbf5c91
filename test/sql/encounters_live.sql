-- The live path's read by id (issue 15; 75-encounters-stream.sql):
-- api_encounter_changes_by_id(caller, person, ids, after_version,
-- upto_version, lim) on hand-made encounter and encounter_removed rows
-- (written directly: the maintenance has its own tests), against
-- api_encounter_changes, the scan it stands in for while a stream is live.
-- Persons 1601..1604, encounter ids 9160001.., versions 916001.., the place
-- 'Live booth' (no other test uses them).
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT 1600 + i, n, 'Live', 'Live Path'
  FROM unnest(ARRAY['Amy', 'Ben', 'Cid', 'Dot']) WITH ORDINALITY AS u(n, i);
-- Amy-Ben written at 916001 and changed again at 916004; Amy-Cid at 916002,
-- at the Live booth; Ben-Cid at 916002 (not Amy's); Amy with a person who
-- is no more (1699) at 916002; Amy-Dot at 916003, which removed an older
-- Amy-Dot (merged into it) at the same version; Cid-Dot at 916004
INSERT INTO udaconnect.place (name, kind, floor, area)
VALUES ('Live booth', 'booth', 2, ST_MakeEnvelope(0.9, 0.9, 1.1, 1.1, 4326));
INSERT INTO udaconnect.encounter (id, person_a, person_b, started_at, ended_at, matches, min_distance_m,
                                  place_id, place_ids, place_matches,
                                  latitude, longitude, closest_a, closest_b, version)
VALUES (9160001, 1601, 1602, '2002-03-04 10:00Z', '2002-03-04 10:20Z', 3, 1.5, NULL, '{}', '{}', 1, 1, 1, 2, 916004),
       (9160002, 1601, 1603, '2002-03-04 11:00Z', '2002-03-04 11:05Z', 1, 2.5,
        (SELECT id FROM udaconnect.place WHERE name = 'Live booth'),
        ARRAY[(SELECT id FROM udaconnect.place WHERE name = 'Live booth')], '{1}', 1, 1, 1, 2, 916002),
       (9160003, 1602, 1603, '2002-03-04 11:00Z', '2002-03-04 11:05Z', 1, 2.5, NULL, '{}', '{}', 1, 1, 1, 2, 916002),
       (9160005, 1601, 1604, '2002-03-04 12:00Z', '2002-03-04 12:30Z', 4, 0.5, NULL, '{}', '{}', 1, 1, 1, 2, 916003),
       (9160006, 1603, 1604, '2002-03-04 13:00Z', '2002-03-04 13:05Z', 1, 3.5, NULL, '{}', '{}', 1, 1, 1, 2, 916004),
       (9160007, 1601, 1699, '2002-03-04 14:00Z', '2002-03-04 14:01Z', 1, 4.5, NULL, '{}', '{}', 1, 1, 1, 2, 916002);
INSERT INTO udaconnect.encounter_removed (version, id, person_id, merged_into)
VALUES (916003, 9160004, 1601, 9160005), (916003, 9160004, 1604, 9160005);
CREATE TEMP TABLE notified (version bigint, ids bigint[]);
-- what NOTIFY udaconnect_encounter announced for each version
INSERT INTO notified VALUES (916001, '{9160001}'), (916002, '{9160002,9160003,9160007}'),
                            (916003, '{9160004,9160005}'), (916004, '{9160001,9160006}');

-- Amy's changes by id for each range, against the scan: equal, bodies
-- included (the encounter as JSON from Amy's side, place, a person who is
-- no more)
CREATE FUNCTION pg_temp.by_id(role text, caller integer, p integer, lo bigint, hi bigint, bodies boolean)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(c.version || '.' || c.id || ' ' || c.kind
                               || CASE WHEN bodies THEN ' ' || c.body::text ELSE '' END, ', ' ORDER BY o), '-')
      FROM udaconnect.api_encounter_changes_by_id(
               role, caller, p,
               (SELECT coalesce(array_agg(i), '{}') FROM notified n, unnest(n.ids) i
                 WHERE n.version > lo AND n.version <= hi),
               lo, hi, 100) WITH ORDINALITY c(version, id, kind, body, o) $$;
CREATE FUNCTION pg_temp.scan(p integer, lo bigint, hi bigint) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(c.version || '.' || c.id || ' ' || c.kind || ' ' || c.body::text, ', ' ORDER BY o), '-')
      FROM udaconnect.api_encounter_changes('organizer', NULL, p, lo, 9223372036854775807, 10000)
           WITH ORDINALITY c(version, id, kind, body, o)
     WHERE c.version <= hi $$;
SELECT r.lo, r.hi, pg_temp.by_id('organizer', NULL, 1601, r.lo, r.hi, false) AS amy_by_id,
       pg_temp.by_id('organizer', NULL, 1601, r.lo, r.hi, true) = pg_temp.scan(1601, r.lo, r.hi) AS equals_scan
  FROM (VALUES (916000, 916001), (916000, 916002), (916001, 916003), (916002, 916003),
               (916003, 916004), (916000, 916004)) r(lo, hi);
-- the same for Ben, Cid and Dot over every range
SELECT p, bool_and(pg_temp.by_id('organizer', NULL, p, lo, hi, true) = pg_temp.scan(p, lo, hi)) AS equals_scan
  FROM generate_series(1602, 1604) p, generate_series(916000, 916004) lo, generate_series(916000, 916004) hi
 WHERE lo <= hi GROUP BY p ORDER BY p;
SELECT body->'place'->>'name' AS amy_cid_place,
       (SELECT body->'person' FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160007}', 916001, 916002, 10)) AS one_no_more
  FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160002}', 916001, 916002, 10);

-- the body is the scan's, from the person's side
SELECT (SELECT body::text FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1602, '{9160001}', 916003, 916004, 10))
     = (SELECT body::text FROM udaconnect.api_encounter_changes('organizer', NULL, 1602, 916003, 0, 1)) AS same_body,
       (SELECT body->'person'->>'first_name' FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1602, '{9160001}', 916003, 916004, 10)) AS ben_met,
       (SELECT body::text FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{}', 916002, 916003, 10)) AS removal_body;

-- an id notified at a version whose row has changed since (Amy-Ben, now at
-- 916004) gives nothing for the earlier range: the later range brings it
SELECT pg_temp.by_id('organizer', NULL, 1601, 916000, 916001, false) AS amy_at_916001,
       pg_temp.by_id('organizer', NULL, 1601, 916003, 916004, false) AS amy_at_916004;

-- only the person's own: other persons' ids (even the caller's own attendee
-- rights do not widen it), ids that are no encounter, and removed ids give
-- no row
SELECT pg_temp.try($$SELECT string_agg(id::text, ',' ORDER BY id) FROM udaconnect.api_encounter_changes_by_id(
           'attendee', 1601, 1601, '{9160001,9160002,9160003,9160004,9160005,9160006,9160007,1,-5}', 916000, 916004, 100)$$) AS amy_own_ids,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id(
           'attendee', 1602, 1602, '{9160002,9160005,9160006}', 916000, 916004, 100)$$) AS ben_given_others,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id(
           'organizer', NULL, 1603, '{9160001,9160005}', 916000, 916004, 100)$$) AS cid_given_others;

-- callers: an attendee only themself (42501), an organizer anyone; a
-- person that does not exist has no changes (as api_encounter_changes)
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('attendee', 1602, 1601, '{9160001}', 916000, 916004, 10)$$) AS ben_reads_amy,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('attendee', NULL, 1601, '{9160001}', 916000, 916004, 10)$$) AS no_caller_id,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('visitor', 1601, 1601, '{9160001}', 916000, 916004, 10)$$) AS bad_role,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 2147483647, '{9160001}', 916000, 916004, 10)$$) AS nobody;

-- limits and bad arguments: 22023 naming what is wrong
SELECT pg_temp.try($$SELECT string_agg(version || '.' || id, ',') FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001,9160002,9160005}', 916000, 916004, 2)$$) AS limited_to_2,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', 916000, 916004, 0)$$) AS limit_0,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', 916000, 916004, 10001)$$) AS limit_10001;
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, NULL, 916000, 916004, 10)$$) AS null_ids,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001,NULL}', 916000, 916004, 10)$$) AS a_null_id,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, (SELECT array_agg(g) FROM generate_series(1, 10001) g), 916000, 916004, 10)$$) AS ids_10001;
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', 916004, 916000, 10)$$) AS upto_below_after,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', -1, 916000, 10)$$) AS after_negative,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', NULL, 916000, 10)$$) AS after_null,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, 1601, '{9160001}', 916001, 916001, 10)$$) AS empty_range;

-- the ids are found by primary key (as on a large table, where the
-- planner would not scan it whole): not by reading the person's encounters
CREATE FUNCTION pg_temp.plan_uses(q text, idx text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE line text; found boolean := false;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        found := found OR line LIKE '%' || idx || '%';
    END LOOP;
    RETURN found;
END $$;
SET enable_seqscan = off;
SELECT pg_temp.plan_uses($$SELECT x.id FROM udaconnect.encounter x
                            WHERE x.id = ANY ('{9160001,9160002}'::bigint[]) AND (x.person_a = 1601 OR x.person_b = 1601)
                              AND x.version > 916000 AND x.version <= 916004$$, 'encounter_pkey') AS ids_by_primary_key;
RESET enable_seqscan;

-- who may call it: the web role, not PUBLIC; encounter_notify_removed
-- (which sends NOTIFY) is nobody's but the extension's
SELECT p.proname, has_function_privilege('udaconnect_api', p.oid, 'EXECUTE') AS api_may,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'udaconnect'
 WHERE p.proname IN ('api_encounter_changes_by_id', 'encounter_notify_removed')
 ORDER BY p.proname;

-- encounter_remove announces its version even when nothing is left to
-- remove (it returns 0 then), and logs what it removes for both persons
SELECT udaconnect.encounter_remove('{9160006}') AS removed_one,
       udaconnect.encounter_remove('{9160006}') AS removed_none;
SELECT string_agg(person_id::text, ',' ORDER BY person_id) AS logged_for,
       count(DISTINCT version) AS versions
  FROM udaconnect.encounter_removed WHERE id = 9160006;
SELECT pg_temp.try($$SELECT udaconnect.encounter_notify_removed(NULL, NULL, NULL, NULL)$$) AS null_version,
       pg_temp.try($$SELECT udaconnect.encounter_notify_removed(1, '{1,2}', '{1}', '{2}')$$) AS lengths_differ,
       udaconnect.encounter_notify_removed(1, NULL, NULL, NULL) AS nothing_named;

-- An erasure ends the person's live streams (docs/encounters.md, "Live"):
-- forget_person announces it on commit, NOTIFY udaconnect_person_erased
-- with the id, and not when it is rolled back; api_encounter_position
-- then refuses the person, to an organizer and to the attendee themself
-- (whose token outlives the erasure), with P0002 naming the erasure.
-- psql prints each notification with its sender's PID: piped through sed
-- meanwhile (the output comes when the pipe closes, after the echo).
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
VALUES (1605, 'Eve', 'Live', 'Live Path'), (1606, 'Fay', 'Live', 'Live Path');
SELECT (udaconnect.api_encounter_position('attendee', 1605, 1605)).id > 0 AS attendee_self_before;
\o | sed -E 's/PID [0-9]+/PID N/'
LISTEN udaconnect_person_erased;
BEGIN;
SELECT locations AS rolled_back FROM udaconnect.forget_person(1605);
ROLLBACK;
SELECT 'no notification above: the erasure was rolled back' AS step;
SELECT locations AS committed FROM udaconnect.forget_person(1605);
BEGIN;
SELECT locations AS in_a_transaction FROM udaconnect.forget_person(1606);
SELECT 'none yet: it comes on commit' AS step;
COMMIT;
UNLISTEN udaconnect_person_erased;
\o
SELECT pg_temp.try($$SELECT udaconnect.api_encounter_position('organizer', NULL, 1605)$$) AS organizer,
       pg_temp.try($$SELECT udaconnect.api_encounter_position('attendee', 1605, 1605)$$) AS attendee_self,
       pg_temp.try($$SELECT udaconnect.api_encounter_position('attendee', 1606, 1605)$$) AS attendee_other,
       pg_temp.try($$SELECT udaconnect.api_encounter_position('organizer', NULL, 1698)$$) AS never_existed;

-- api_persons_gone: the same rule for many persons at once, in the array's
-- order (erased 1605, 1606; 1601 still here; 1698 never made; repeats
-- answered each time); bad arrays refused with their SQLSTATE; not PUBLIC's
SELECT array_agg(gone ORDER BY ord) AS gone, array_agg(ord ORDER BY ord) AS ords
  FROM udaconnect.api_persons_gone(ARRAY[1605, 1601, 1698, 1606, 1601]);
SELECT count(*) AS none_asked FROM udaconnect.api_persons_gone('{}');
SELECT count(*) AS a_thousand FROM udaconnect.api_persons_gone(ARRAY(SELECT 1601 FROM generate_series(1, 1000)));
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_persons_gone(NULL)$$) AS null_array,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_persons_gone(ARRAY[1601, NULL])$$) AS a_null,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_persons_gone(ARRAY(SELECT 1601 FROM generate_series(1, 1001)))$$)
         AS too_many;
SELECT has_function_privilege('public', 'udaconnect.api_persons_gone(integer[])', 'EXECUTE') AS public_may,
       has_function_privilege('udaconnect_api', 'udaconnect.api_persons_gone(integer[])', 'EXECUTE') AS api_may;

DELETE FROM udaconnect.encounter_removed WHERE id BETWEEN 9160001 AND 9160007;
DELETE FROM udaconnect.encounter WHERE id BETWEEN 9160001 AND 9160007;
DELETE FROM udaconnect.person WHERE id BETWEEN 1601 AND 1604;
DELETE FROM udaconnect.place WHERE name = 'Live booth';
