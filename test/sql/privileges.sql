-- Who may call what: the API functions and the ingest's worker state are not
-- for PUBLIC (a role without grants gets 42501), the pure helpers are; the
-- gateways' role udaconnect_api may call the api_* functions and no more.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
CREATE ROLE regress_udc_nobody NOLOGIN;
GRANT USAGE ON SCHEMA udaconnect TO regress_udc_nobody;
SET ROLE regress_udc_nobody;
SELECT pg_temp.err($$SELECT * FROM udaconnect.ingest_worker_partitions()$$);
SELECT pg_temp.err($$SELECT * FROM udaconnect.ingest_status$$);
SELECT pg_temp.err($$SELECT udaconnect.ingest_pause()$$);
SELECT pg_temp.err($$SELECT udaconnect.ingest_resume()$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('A', 'B', 'C')$$);
SELECT pg_temp.err($$SELECT udaconnect.record_location(1, 1, 1)$$);
SELECT pg_temp.err($$SELECT * FROM udaconnect.find_connections(1, '2020-01-01', '2020-01-02')$$);
SELECT pg_temp.err($$SELECT * FROM udaconnect.location$$);
SELECT udaconnect.cell_key(1, 1) > 0 AS helpers_are_public;
SELECT pg_temp.err($$SELECT * FROM udaconnect.api_person_public$$);
-- every function a role without grants may call: the pure helpers only (the
-- SECURITY DEFINER api_* functions write with the owner's rights)
SELECT p.oid::regprocedure AS callable_by_public
  FROM pg_proc p
 WHERE p.pronamespace = 'udaconnect'::regnamespace
   AND has_function_privilege('regress_udc_nobody', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
RESET ROLE;
-- every function the gateways' role may call: the api_* functions (each
-- takes the verified caller first) and what api_person, inlined into the
-- gateway's own statement, calls with its rights; and the one relation it
-- may read
SELECT p.oid::regprocedure AS callable_by_udaconnect_api
  FROM pg_proc p
 WHERE p.pronamespace = 'udaconnect'::regnamespace
   AND has_function_privilege('udaconnect_api', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('regress_udc_nobody', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
SELECT c.oid::regclass AS readable_by_udaconnect_api
  FROM pg_class c
 WHERE c.relnamespace = 'udaconnect'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'S')
   AND has_table_privilege('udaconnect_api', c.oid, 'SELECT')
 ORDER BY 1::text;
BEGIN;
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
VALUES (801, 'Priv', 'A', 'X'), (802, 'Priv', 'B', 'X');
SET LOCAL ROLE udaconnect_api;
SELECT pg_temp.err($$SELECT * FROM udaconnect.person$$);
SELECT pg_temp.err($$SELECT udaconnect.forget_person(801)$$);
SELECT pg_temp.err($$SELECT udaconnect.retention_sweep(now())$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('A', 'B', 'C')$$);
-- api_person runs as udaconnect_api: caller_may_see_person and (through
-- it) met_persons with its rights
SELECT udaconnect.api_person('organizer', NULL, 802) AS organizer_reads_802,
       udaconnect.api_person('attendee', 801, 801) AS attendee_reads_self;
SELECT pg_temp.err($$SELECT udaconnect.api_person('attendee', 801, 802)$$) AS attendee_reads_unmet;
SELECT pg_temp.err($$SELECT udaconnect.api_person('visitor', 801, 802)$$) AS unknown_caller;
ROLLBACK;
REVOKE USAGE ON SCHEMA udaconnect FROM regress_udc_nobody;
DROP ROLE regress_udc_nobody;
