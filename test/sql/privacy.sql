-- Who may see what (40-privacy.sql, 60-http.sql), erasure and retention, at
-- the SQL level: the gateways only pass the caller their token proves, so
-- these answers are the REST and gRPC answers.
-- Persons and locations get explicit ids (9xx, 900xx) so the output holds no
-- sequence value; times are fixed; nothing prints now().
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- the answer of one query as text, 'NULL' for NULL / no row, or its error
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- The scene (one day, 2021-05-01 UTC): Ada and Ben 3 m apart half a minute
-- apart (met within 5 m); Cy 1 km away; Dee 50 m from Ada (not met at 10 m);
-- Eve (far away) and Fay are erased below.
INSERT INTO udaconnect.person (id, first_name, last_name, company_name) VALUES
    (901, 'Ada', 'A', 'Privacy'), (902, 'Ben', 'B', 'Privacy'), (903, 'Cy', 'C', 'Privacy'),
    (904, 'Dee', 'D', 'Privacy'), (905, 'Eve', 'E', 'Privacy'), (906, 'Fay', 'F', 'Privacy');
INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) VALUES
    (90001, 901, udaconnect.make_point(48.0, 11.0), '2021-05-01 10:00Z'),
    (90002, 902, udaconnect.make_point(48.000027, 11.0), '2021-05-01 10:00:30Z'),
    (90003, 903, udaconnect.make_point(48.01, 11.0), '2021-05-01 10:00Z'),
    (90004, 904, udaconnect.make_point(48.00045, 11.0), '2021-05-01 10:01Z'),
    (90005, 905, udaconnect.make_point(46.0, 11.0), '2021-05-01 10:00:10Z'),
    (90006, 905, udaconnect.make_point(46.0, 11.0), '2021-05-01 11:00Z'),
    (90007, 906, udaconnect.make_point(47.0, 11.0), '2021-05-01 12:00Z');
SELECT l.person_id, round(udaconnect.geodesic_distance(48.0, 11.0, ST_Y(l.coordinate), ST_X(l.coordinate))::numeric, 1) AS m_from_ada
  FROM udaconnect.location l WHERE l.id IN (90002, 90003, 90004) ORDER BY l.id;

-- met_persons: within attendee_max_distance() (10 m by default) on one's days
SELECT p.id, p.first_name,
       (SELECT coalesce(array_agg(m ORDER BY m), '{}') FROM udaconnect.met_persons(p.id) m) AS met
  FROM udaconnect.person p WHERE p.id IN (901, 902, 903, 904) ORDER BY p.id;
SELECT udaconnect.attendee_max_distance() AS default_m;
SET udaconnect.attendee_max_distance = 60;
SELECT udaconnect.attendee_max_distance() AS set_m,
       (SELECT array_agg(m ORDER BY m) FROM udaconnect.met_persons(901) m) AS ada_met_at_60_m;
RESET udaconnect.attendee_max_distance;
SELECT coalesce(array_agg(m), '{}') AS nobody_without_locations FROM udaconnect.met_persons(99999) m;
-- met means co-present: Ben's point 30 s after Ada's counts, but with the
-- window at 10 s he is not met
SELECT extract(epoch FROM udaconnect.attendee_max_window())::float8 AS default_window_s;
SET udaconnect.attendee_max_window = '10s';
SELECT (SELECT coalesce(array_agg(m ORDER BY m), '{}') FROM udaconnect.met_persons(901) m) AS ada_met_within_10_s;
-- an attendee's search without a window gets that window; longer is refused
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_find_connections('attendee', 901, 901, '2021-05-01', '2021-05-01', 5, NULL)$$) AS ada_no_window_at_10_s,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_find_connections('attendee', 901, 901, '2021-05-01', '2021-05-01', 5, 11)$$) AS ada_window_11_s,
       pg_temp.try($$SELECT count(*) FROM udaconnect.api_find_connections('organizer', NULL, 901, '2021-05-01', '2021-05-01', 5, NULL)$$) AS organizer_no_window;
RESET udaconnect.attendee_max_window;

-- Every api_* function for every kind of caller (the creating calls are
-- rolled back).  42501 = the caller may not.  api_persons shows the scene's
-- persons and whether any other is listed.  A missing id is zero rows
-- (-> 404) only for those who could see it if it existed (an organizer); an
-- attendee is denied as for an existing one (no existence oracle).
CREATE TEMP TABLE callers (n int, who text, role text, id int);
INSERT INTO callers VALUES (1, 'organizer', 'organizer', NULL), (2, 'attendee Ada', 'attendee', 901),
    (3, 'no role', NULL, NULL), (4, 'admin', 'admin', NULL), (5, 'attendee, no id', 'attendee', NULL),
    (6, 'attendee 0', 'attendee', 0);
CREATE TEMP TABLE calls (n int, call text, q text);
INSERT INTO calls VALUES
    (1, 'api_persons', $$SELECT string_agg(e->>'first_name', ' ' ORDER BY (e->>'id')::int) FILTER (WHERE (e->>'id')::int BETWEEN 900 AND 999)
                                || ' (other persons: ' || (count(*) FILTER (WHERE (e->>'id')::int NOT BETWEEN 900 AND 999) > 0) || ')'
                           FROM json_array_elements(udaconnect.api_persons(%1$s, %2$s)) e$$),
    (2, 'api_person(Ada)', $$SELECT udaconnect.api_person(%1$s, %2$s, 901)$$),
    (3, 'api_person(Ben, met)', $$SELECT udaconnect.api_person(%1$s, %2$s, 902)$$),
    (4, 'api_person(Dee, not met)', $$SELECT udaconnect.api_person(%1$s, %2$s, 904)$$),
    (5, 'api_person(none)', $$SELECT udaconnect.api_person(%1$s, %2$s, 99999)$$),
    (6, 'api_create_person', $$SELECT (udaconnect.api_create_person(%1$s, %2$s, 'New', 'Person', 'X')::jsonb - 'id')::text$$),
    (7, 'api_forget_person(none)', $$SELECT udaconnect.api_forget_person(%1$s, %2$s, 99999)$$),
    (8, 'api_token_claims(Ben)', $$SELECT udaconnect.api_token_claims(%1$s, %2$s, 902)$$),
    (9, 'api_find_connections(Ada, 10 m)',
        $$SELECT string_agg(f.location_id || ':' || f.person_id, ' ') FROM udaconnect.api_find_connections(%1$s, %2$s, 901, '2021-05-01', '2021-05-01', 10, NULL) f$$),
    (10, 'api_find_connections(Ada, 60 m)',
        $$SELECT string_agg(f.location_id || ':' || f.person_id, ' ') FROM udaconnect.api_find_connections(%1$s, %2$s, 901, '2021-05-01', '2021-05-01', 60, NULL) f$$),
    (11, 'api_find_connections(Ben, 5 m)',
        $$SELECT string_agg(f.location_id || ':' || f.person_id, ' ') FROM udaconnect.api_find_connections(%1$s, %2$s, 902, '2021-05-01', '2021-05-01', 5, NULL) f$$),
    (12, 'api_connections(Ada, rows)', $$SELECT udaconnect.api_connections(%1$s, %2$s, 901, '2021-05-01', '2021-05-01', 5, 60, false)$$),
    (13, 'api_connections(Ada, persons)', $$SELECT udaconnect.api_connections(%1$s, %2$s, 901, '2021-05-01', '2021-05-01', 5, 60, true)$$),
    (14, 'api_connections(Cy, persons)', $$SELECT udaconnect.api_connections(%1$s, %2$s, 903, '2021-05-01', '2021-05-01', 5, NULL, true)$$),
    (15, 'api_locations(anyone)', $$SELECT row(l.*)::text FROM udaconnect.api_locations(%1$s, %2$s, 3, 90000, NULL, NULL, NULL, NULL) l$$),
    (16, 'api_locations(Ben)', $$SELECT row(l.*)::text FROM udaconnect.api_locations(%1$s, %2$s, 3, 90000, NULL, 902, NULL, NULL) l$$),
    (17, 'api_location(Ada''s)', $$SELECT udaconnect.api_location(%1$s, %2$s, 90001)$$),
    (18, 'api_location(Ben''s)', $$SELECT udaconnect.api_location(%1$s, %2$s, 90002)$$),
    (19, 'api_location(none)', $$SELECT udaconnect.api_location(%1$s, %2$s, 1e15::bigint)$$),
    -- 30 minutes old: within attendee_max_report_age (below)
    (20, 'api_create_location(Ada)', $$SELECT (udaconnect.api_create_location(%1$s, %2$s, 901, 48, 11, (now() - interval '30 minutes')::text)::jsonb - 'id' - 'creation_time')::text$$),
    (21, 'api_create_location(Ben)', $$SELECT (udaconnect.api_create_location(%1$s, %2$s, 902, 48, 11, '2021-05-02 13:00Z')::jsonb - 'id')::text$$);
BEGIN;
SELECT c.who, k.call, pg_temp.try(format(k.q, quote_nullable(c.role), quote_nullable(c.id))) AS answer
  FROM callers c, calls k ORDER BY c.n, k.n;
ROLLBACK;
-- what an attendee may search widens with the setting (the organizer's never narrows)
SET udaconnect.attendee_max_distance = 60;
SELECT pg_temp.try($$SELECT string_agg(f.person_id::text, ' ' ORDER BY f.person_id) FROM udaconnect.api_find_connections('attendee', 901, 901, '2021-05-01', '2021-05-01', 60, NULL) f$$) AS ada_at_60_m,
       pg_temp.try($$SELECT udaconnect.api_person('attendee', 901, 904)$$) AS dee_now_met;
RESET udaconnect.attendee_max_distance;
SELECT pg_temp.try($$SELECT count(*) FROM udaconnect.api_find_connections('attendee', 901, 901, '2021-05-01', '2021-05-01', 10.000001, NULL)$$) AS just_over;

-- How far back an attendee may report their own locations
-- (attendee_max_report_age, 1 h by default): a point of a forged past would
-- open a connection search of who was there then.  Organizers are not
-- limited.  now() is the transaction's, so "exactly the limit" is exact; the
-- refusal's times are masked (they are now's).
CREATE FUNCTION pg_temp.try_report(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; h text;
BEGIN EXECUTE q INTO r; RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z', '<time>', 'g')
           || ' HINT: ' || coalesce(h, '');
END $$;
SHOW udaconnect.attendee_max_report_age;
SELECT extract(epoch FROM udaconnect.attendee_max_report_age())::int AS default_report_age_s;
BEGIN;
SELECT a.what, pg_temp.try_report(format($$SELECT (udaconnect.api_create_location(%s, %s, 901, 48, 11, %L)::jsonb->>'person_id')$$,
                                         quote_nullable(a.role), quote_nullable(a.id), a.t)) AS answer
  FROM (VALUES (1, 'attendee Ada, 2 h old', 'attendee', 901, (now() - interval '2 hours')::text),
               (2, 'attendee Ada, 30 min old', 'attendee', 901, (now() - interval '30 minutes')::text),
               (3, 'attendee Ada, exactly 1 h old', 'attendee', 901, (now() - interval '1 hour')::text),
               (4, 'attendee Ada, 1 h and 1 ms old', 'attendee', 901, (now() - interval '1 hour 0.001 seconds')::text),
               (5, 'attendee Ada, no creation_time (now)', 'attendee', 901, NULL),
               (6, 'attendee Ada, 2021-05-02', 'attendee', 901, '2021-05-02 13:00Z'),
               (7, 'attendee Ada, -infinity', 'attendee', 901, '-infinity'),
               (8, 'organizer, 2 h old', 'organizer', NULL, (now() - interval '2 hours')::text),
               (9, 'organizer, 2021-05-02', 'organizer', NULL, '2021-05-02 13:00Z'))
       AS a(n, what, role, id, t) ORDER BY a.n;
-- the limit follows the setting, in seconds
SET LOCAL udaconnect.attendee_max_report_age = '10min';
SELECT extract(epoch FROM udaconnect.attendee_max_report_age())::int AS report_age_s,
       pg_temp.try_report($$SELECT udaconnect.api_create_location('attendee', 901, 901, 48, 11, (now() - interval '30 minutes')::text)->>'person_id'$$) AS ada_30_min_old,
       pg_temp.try_report($$SELECT udaconnect.api_create_location('attendee', 901, 901, 48, 11, (now() - interval '9 minutes')::text)->>'person_id'$$) AS ada_9_min_old;
ROLLBACK;
-- its range: 1 min .. 7 days
SELECT pg_temp.try($$SELECT set_config('udaconnect.attendee_max_report_age', '59', true)$$) AS s59,
       pg_temp.try($$SELECT set_config('udaconnect.attendee_max_report_age', '60', true)$$) AS s60,
       pg_temp.try($$SELECT set_config('udaconnect.attendee_max_report_age', '7d', true)$$) AS s7d,
       pg_temp.try($$SELECT set_config('udaconnect.attendee_max_report_age', '604801', true)$$) AS s604801,
       pg_temp.try($$SELECT set_config('udaconnect.attendee_max_report_age', 'soon', true)$$) AS soon;
SELECT (SELECT setting FROM pg_settings WHERE name = 'udaconnect.attendee_max_report_age') AS setting,
       (SELECT unit FROM pg_settings WHERE name = 'udaconnect.attendee_max_report_age') AS unit,
       (SELECT context FROM pg_settings WHERE name = 'udaconnect.attendee_max_report_age') AS context;

-- ---------------------------------------------------------------------------
-- Erasure.  ingest_payload_person: field 1 (varint) of the Kafka payload.
-- ---------------------------------------------------------------------------
SELECT udaconnect.ingest_payload_person('\x0805') AS five, udaconnect.ingest_payload_person('\x088907') AS eve,
       udaconnect.ingest_payload_person('\x0800') AS zero, udaconnect.ingest_payload_person('\x') AS empty,
       udaconnect.ingest_payload_person('\x0a0b') AS wrong_type, udaconnect.ingest_payload_person('\x08') AS cut;
-- Eve's rejects: one by person_id, one by payload only (stored before the
-- column existed); the others name someone else or nobody and must stay.
INSERT INTO udaconnect.ingest_rejects (topic, "partition", "offset", key, payload, reason, received_at, person_id) VALUES
    ('privacy', 0, 1, '905', '\x088907', 'eve by person_id', '2021-05-01', 905),
    ('privacy', 0, 2, '905', '\x088907', 'eve by payload', '2021-05-01', NULL),
    ('privacy', 0, 3, '5', '\x0805', 'names person 5', '2021-05-01', NULL),
    ('privacy', 0, 4, NULL, '\x0a0b', 'undecodable', '2021-05-01', NULL),
    ('privacy', 0, 5, NULL, NULL, 'no payload', '2021-05-01', NULL),
    ('privacy', 0, 6, '906', '\x088a07', 'fay by payload', '2021-05-01', NULL),
    ('privacy', 0, 7, '902', '\x088907', 'column 902, payload names Eve: goes with Eve', '2021-05-01', 902);
-- who may erase: an attendee only themself, unknown callers nobody
SELECT pg_temp.try($$SELECT udaconnect.api_forget_person('attendee', 901, 905)$$) AS ada_erases_eve,
       pg_temp.try($$SELECT udaconnect.api_forget_person(NULL, NULL, 905)$$) AS nobody_erases_eve,
       pg_temp.try($$SELECT udaconnect.api_forget_person('attendee', NULL, 905)$$) AS no_id_erases_eve;
SELECT count(*) AS eve_locations FROM udaconnect.location WHERE person_id = 905;
-- the organizer erases Eve: rows counted
SELECT udaconnect.api_forget_person('organizer', NULL, 905) AS erased;
SELECT (SELECT count(*) FROM udaconnect.person WHERE id = 905) AS person,
       (SELECT count(*) FROM udaconnect.location WHERE person_id = 905) AS locations,
       (SELECT count(*) FROM udaconnect.erased_person WHERE id = 905) AS erased_id;
SELECT "offset", reason FROM udaconnect.ingest_rejects WHERE topic = 'privacy' ORDER BY "offset";
-- every table of the extension, searched for Eve: her record, a person_id of
-- hers, a payload naming her (erased_person, which holds only the id so the
-- ingest can drop her messages, is the one exception)
CREATE FUNCTION pg_temp.mentions_eve() RETURNS TABLE (tbl text, nrows bigint)
LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, c.relname
               FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
               JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_udaconnect'
              WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind = 'r'
                AND c.relname <> 'erased_person'
              ORDER BY c.relname
    LOOP
        tbl := r.relname;
        EXECUTE format($q$SELECT count(*) FROM %s t
                          WHERE to_jsonb(t)::text ~ '"first_name": "Eve", "company_name": "Privacy"|"person_id": 905\M|"id": 905\M'
                             OR (to_jsonb(t) ? 'payload' AND to_jsonb(t)->>'payload' IS NOT NULL
                                 AND udaconnect.ingest_payload_person(decode(substr(to_jsonb(t)->>'payload', 3), 'hex')) = 905)$q$,
                       r.rel) INTO nrows;
        RETURN NEXT;
    END LOOP;
END;
$f$;
SELECT string_agg(tbl || ':' || nrows, ' ' ORDER BY tbl) AS eve_mentioned_in FROM pg_temp.mentions_eve();
-- the audit: who asked and how many rows, no person id, no name
SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) AS audit_columns
  FROM information_schema.columns WHERE table_schema = 'udaconnect' AND table_name = 'erasure_audit';
SELECT requested_by, locations, rejects, persons, erased_at IS NOT NULL AS has_time,
       -- (its time left out: its digits may happen to read 905)
       (to_jsonb(a) - 'erased_at')::text !~ '(Eve|\y905\y)' AS nothing_personal
  FROM udaconnect.erasure_audit a ORDER BY a.id;
-- an erased id is never given again
SELECT pg_temp.try($$INSERT INTO udaconnect.person (id, first_name, last_name, company_name) VALUES (905, 'New', 'Eve', 'X') RETURNING 'inserted'$$) AS insert_erased_id;
SELECT pg_temp.try($$UPDATE udaconnect.person SET id = 905 WHERE id = 904 RETURNING 'updated'$$) AS renumber_to_erased_id;
-- a second erasure finds nobody
SELECT pg_temp.try($$SELECT row(f.*)::text FROM udaconnect.forget_person(905) f$$) AS forget_again;
SELECT pg_temp.try($$SELECT udaconnect.api_forget_person('organizer', NULL, 905)$$) AS api_forget_again;
-- Fay erases herself (her reject found by its payload)
SELECT udaconnect.api_forget_person('attendee', 906, 906) AS fay_erased;
SELECT "offset", reason FROM udaconnect.ingest_rejects WHERE topic = 'privacy' ORDER BY "offset";
SELECT requested_by, locations, rejects, persons FROM udaconnect.erasure_audit a ORDER BY a.id;
-- forget_person called directly: the audit names the database role
SELECT row(f.*)::text AS direct FROM udaconnect.forget_person(904) f;
SELECT requested_by = 'role ' || session_user AS by_role, locations, rejects
  FROM udaconnect.erasure_audit a ORDER BY a.id DESC LIMIT 1;
SELECT array_agg(id ORDER BY id) AS erased FROM udaconnect.erased_person WHERE id BETWEEN 900 AND 999;
SELECT pg_temp.try($$SELECT row(f.*)::text FROM udaconnect.forget_person(NULL) f$$) AS forget_null;

-- ---------------------------------------------------------------------------
-- Retention, on a table of its own (rolled back): old = before the cutoff
-- 2010-01-01; a row exactly at the cutoff stays.
-- ---------------------------------------------------------------------------
BEGIN;
DELETE FROM udaconnect.location;
DELETE FROM udaconnect.ingest_rejects;
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT 901, udaconnect.make_point(1, 1), t
  FROM unnest(ARRAY['2001-01-01', '2001-01-02', '2001-01-03', '2002-06-01', '2005-01-01', '2009-12-31 23:59:59.999999',
                    '2009-12-31', '2010-01-01', '2010-01-02', '2021-05-01']::timestamptz[]) t;
INSERT INTO udaconnect.ingest_rejects (topic, "partition", "offset", reason, received_at)
SELECT 'retention', 0, i, 'r' || i, t
  FROM unnest(ARRAY['2001-01-01', '2003-01-01', '2004-01-01', '2009-12-31', '2010-01-01', '2020-01-01']::timestamptz[])
       WITH ORDINALITY AS u(t, i);
SELECT row(s.*)::text AS sweep_1 FROM udaconnect.retention_sweep('2010-01-01', 3) s;
SELECT row(s.*)::text AS sweep_2 FROM udaconnect.retention_sweep('2010-01-01', 3) s;
SELECT row(s.*)::text AS sweep_3 FROM udaconnect.retention_sweep('2010-01-01', 3) s;
SELECT row(s.*)::text AS sweep_4 FROM udaconnect.retention_sweep('2010-01-01', 3) s;
SELECT array_agg(creation_time AT TIME ZONE 'UTC' ORDER BY creation_time) AS locations_kept FROM udaconnect.location;
SELECT array_agg(reason ORDER BY "offset") AS rejects_kept FROM udaconnect.ingest_rejects;
-- the default batch takes everything old in one call
SELECT row(s.*)::text AS default_batch FROM udaconnect.retention_sweep('2021-01-01') s;
SELECT count(*) AS left_locations FROM udaconnect.location;
ROLLBACK;
SELECT pg_temp.try($$SELECT row(s.*)::text FROM udaconnect.retention_sweep(NULL) s$$) AS no_cutoff,
       pg_temp.try($$SELECT row(s.*)::text FROM udaconnect.retention_sweep('2010-01-01', 0) s$$) AS batch_0;
SELECT pg_temp.try($$SELECT row(s.*)::text FROM udaconnect.retention_sweep('2010-01-01', NULL) s$$) AS batch_null,
       pg_temp.try($$SELECT row(s.*)::text FROM udaconnect.retention_sweep('2010-01-01', -5) s$$) AS batch_negative;
-- what retention and erasure leave of the scene: Ada, Ben, Cy untouched
SELECT id, first_name FROM udaconnect.person WHERE id BETWEEN 900 AND 999 ORDER BY id;
SELECT person_id, count(*) FROM udaconnect.location WHERE id BETWEEN 90000 AND 90999 GROUP BY 1 ORDER BY 1;

-- forget_person needs READ COMMITTED: at a higher level its deletes would
-- not see rows committed while it waited for the person's lock
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.try($$SELECT row(f.*)::text FROM udaconnect.forget_person(901) f$$) AS forget_at_repeatable_read;
ROLLBACK;
