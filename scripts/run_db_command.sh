#!/usr/bin/env bash
# Load the original UdaConnect sample data (persons and locations, ids kept).
#
#   scripts/run_db_command.sh              into the local database named by the
#                                          standard libpq environment (PGHOST,
#                                          PGPORT, PGUSER, PGDATABASE), else the
#                                          local stack started by `make run`
#   scripts/run_db_command.sh POD_NAME     into the PostgreSQL pod of the
#                                          Kubernetes deployment (namespace
#                                          $UDACONNECT_NAMESPACE, default udaconnect)
#
# Points stored as (latitude, longitude) are repaired (swapped) when only the
# swapped form is valid; rows invalid either way are refused and listed.
# Running it twice changes nothing.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEED=$TOP/sql/seed

seed_sql() {
  echo '\set ON_ERROR_STOP on'
  echo 'BEGIN;'
  echo 'CREATE TEMP TABLE seed_person (id integer, first_name text, last_name text, company_name text) ON COMMIT DROP;'
  echo 'CREATE TEMP TABLE seed_location (id integer, person_id integer, coordinate geometry, creation_time timestamp) ON COMMIT DROP;'
  sed -e 's/insert into public\.person /INSERT INTO pg_temp.seed_person /I' "$SEED/udaconnect_public_person.sql"
  echo
  sed -e 's/insert into public\.location /INSERT INTO pg_temp.seed_location /I' "$SEED/udaconnect_public_location.sql"
  echo
  cat "$SEED/load.sql"
  echo 'COMMIT;'
}

if [ $# -ge 1 ]; then
  POD=$1
  NS=${UDACONNECT_NAMESPACE:-udaconnect}
  seed_sql | kubectl -n "$NS" exec -i "$POD" -- psql -X -q -U postgres -d geoconnections
  exit
fi

if [ -z "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}" ]; then
  env_file=${UDACONNECT_RUN_DIR:-$TOP/.run}/env
  if [ -f "$env_file" ]; then
    # shellcheck disable=SC1090
    . "$env_file"
  fi
fi
seed_sql | psql -X -q
