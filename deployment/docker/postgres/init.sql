-- First-start initialisation of the udaconnect/postgres image, run by
-- entrypoint.sh as the superuser over the local socket with psql 15:
--   psql -v ON_ERROR_STOP=1 -v db=geoconnections -f init.sql
-- Passwords come from the environment (\getenv), never from the command line.
-- Idempotent: safe to run again by hand (it then resets the three passwords
-- to the pod's environment, i.e. the Secret's; docs/deployment.md uses that to
-- add the replication role to a primary initialised by an older image).

\getenv api_password UDACONNECT_API_PASSWORD
\getenv reader_password UDACONNECT_READER_PASSWORD
\getenv replication_password UDACONNECT_REPLICATION_PASSWORD
\if :{?api_password}
\else
  \warn 'UDACONNECT_API_PASSWORD is not set'
  SELECT 1/0 AS udaconnect_api_password_missing;
\endif
\if :{?reader_password}
\else
  \warn 'UDACONNECT_READER_PASSWORD is not set'
  SELECT 1/0 AS udaconnect_reader_password_missing;
\endif
-- required like the others: the hot standby (deployment/components/standby)
-- copies and streams as this role, and a first start is the one moment the
-- image creates roles.
\if :{?replication_password}
\else
  \warn 'UDACONNECT_REPLICATION_PASSWORD is not set'
  SELECT 1/0 AS udaconnect_replication_password_missing;
\endif

SELECT format('CREATE DATABASE %I', :'db')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec

\connect :db

-- The passwords below must reach no log: with log_statement (or an error's
-- statement) logged at the first start, they would be written into
-- init.log in the data directory, which pg_basebackup copies to every
-- standby.
SET log_statement = 'none';
SET log_min_error_statement = 'panic';

-- PostGIS comes with it (CASCADE).  The extension also creates the role
-- udaconnect_api with EXECUTE on its api_* functions (SECURITY DEFINER):
-- the HTTP gateway needs no table privilege at all.
CREATE EXTENSION IF NOT EXISTS pg_udaconnect CASCADE;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- udaconnect-httpd logs in as udaconnect_api.
SELECT 'CREATE ROLE udaconnect_api NOINHERIT'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_api') \gexec
ALTER ROLE udaconnect_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'api_password';

-- udaconnect-grpcd logs in as udaconnect_reader for FindConnections,
-- ListEncounters and WatchEncounters: EXECUTE on api_find_connections,
-- api_encounters, api_encounter_changes, api_encounter_changes_by_id,
-- api_encounter_position and api_persons_gone (SECURITY DEFINER), which
-- apply the caller rules (docs/security.md), nothing else: not the raw
-- finder.
SELECT 'CREATE ROLE udaconnect_reader NOINHERIT'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_reader') \gexec
ALTER ROLE udaconnect_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'reader_password';
GRANT USAGE ON SCHEMA udaconnect TO udaconnect_reader;
-- (a database initialised before 1.2 granted the raw finder: take it back)
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM udaconnect_reader', p.oid::regprocedure)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'udaconnect' AND p.proname IN ('find_connections', 'connected_persons')
 ORDER BY 1 \gexec
SELECT format('GRANT EXECUTE ON FUNCTION %s TO udaconnect_reader', p.oid::regprocedure)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'udaconnect'
   AND p.proname IN ('api_find_connections', 'api_encounters', 'api_encounter_changes',
                     'api_encounter_changes_by_id', 'api_encounter_position',
                     'api_persons_gone')
 ORDER BY 1 \gexec

-- A bounded statement time for every gateway connection unless it sets its own.
ALTER ROLE udaconnect_api SET statement_timeout = '30s';
ALTER ROLE udaconnect_reader SET statement_timeout = '30s';

-- The hot standby (deployment/components/standby) copies the primary with
-- pg_basebackup and streams from it as udaconnect_replicator: REPLICATION and
-- nothing else, so a standby holds no credential that could read or change
-- a table.  pg_hba.conf (the image's, /usr/share/udaconnect/pg_hba.conf)
-- lets it in over TCP for replication only and rejects its SQL logins; it
-- gets no grant here.  A few connections are enough (a base backup takes
-- two, each standby's walreceiver one); the limit keeps a leaked password
-- from using up max_wal_senders.
SELECT 'CREATE ROLE udaconnect_replicator NOINHERIT'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_replicator') \gexec
ALTER ROLE udaconnect_replicator LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    NOBYPASSRLS CONNECTION LIMIT 5 PASSWORD :'replication_password';
