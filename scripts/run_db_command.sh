#!/bin/sh
# Load the original UdaConnect sample data (persons and locations, ids kept)
# and a few named places around them (sql/seed/places.sql).
#
#   sh scripts/run_db_command.sh           into the local database named by the
#                                          standard libpq environment (PGHOST,
#                                          PGPORT, PGUSER, PGDATABASE), else the
#                                          local stack started by `make run`
#   sh scripts/run_db_command.sh POD_NAME  into the PostgreSQL pod of the
#                                          Kubernetes deployment (namespace
#                                          $UDACONNECT_NAMESPACE, default udaconnect)
#
# Points stored as (latitude, longitude) are repaired (swapped) when only the
# swapped form is valid; rows invalid either way are refused and listed.
# Running it twice changes nothing.
#
# POSIX sh: the original README runs it as `sh scripts/run_db_command.sh POD`,
# and Debian's sh (dash) has no pipefail.  So the SQL is written to a file
# first (a failure there stops the script under set -e) and psql reads the
# file, its exit status being the script's.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
SEED=$TOP/sql/seed

seed_sql() {
  for f in udaconnect_public_person.sql udaconnect_public_location.sql places.sql load.sql; do
    if [ ! -r "$SEED/$f" ]; then
      echo "run_db_command.sh: $SEED/$f is missing" >&2
      return 1
    fi
  done
  echo '\set ON_ERROR_STOP on'
  echo 'BEGIN;'
  echo 'CREATE TEMP TABLE seed_person (id integer, first_name text, last_name text, company_name text) ON COMMIT DROP;'
  echo 'CREATE TEMP TABLE seed_location (id integer, person_id integer, coordinate geometry, creation_time timestamp) ON COMMIT DROP;'
  sed -e 's/insert into public\.person /INSERT INTO pg_temp.seed_person /I' "$SEED/udaconnect_public_person.sql"
  echo
  sed -e 's/insert into public\.location /INSERT INTO pg_temp.seed_location /I' "$SEED/udaconnect_public_location.sql"
  echo
  # places first: an encounter is placed when its matches are added
  cat "$SEED/places.sql"
  echo
  cat "$SEED/load.sql"
  echo 'COMMIT;'
}

SQL=$(mktemp "${TMPDIR:-/tmp}/udaconnect-seed.XXXXXX")
trap 'rm -f "$SQL"' EXIT
seed_sql > "$SQL"

if [ $# -ge 1 ]; then
  POD=$1
  NS=${UDACONNECT_NAMESPACE:-udaconnect}
  kubectl -n "$NS" exec -i "$POD" -- psql -X -q -U postgres -d geoconnections < "$SQL"
  exit
fi

if [ -z "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}" ]; then
  env_file=${UDACONNECT_RUN_DIR:-$TOP/.run}/env
  if [ -f "$env_file" ]; then
    # shellcheck disable=SC1090
    . "$env_file"
  fi
fi
psql -X -q < "$SQL"
