-- Who may call what: the API functions and the ingest's worker state are not
-- for PUBLIC (a role without grants gets 42501), the pure helpers are.
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
REVOKE USAGE ON SCHEMA udaconnect FROM regress_udc_nobody;
DROP ROLE regress_udc_nobody;
