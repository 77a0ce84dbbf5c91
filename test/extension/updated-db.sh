#!/usr/bin/env bash
# The update-with-data recipe (issue 16), the one place every test that needs
# "an installed old version, holding data, updated to the current version"
# makes its database: 27-upgrade (its own checks, then 30-oracle on a copy)
# and the ingest TAP tests (test/t/IngestTest.pm, UDACONNECT_INGEST_UPDATED_FROM).
#
#   test/extension/updated-db.sh [-f FROM] [-c SQL]... [-s DIR] DBNAME
#
#   1. CREATE EXTENSION pg_udaconnect VERSION 'FROM' (default 1.0): that
#      version's install script exactly as it shipped (sql/pg_udaconnect--FROM.sql)
#   2. the sample data (scripts/run_db_command.sh: 5 persons, 38 locations
#      between 2020-01-05 and 2020-08-19, ids kept)
#   3. a synthetic day (test/extension/synthetic_day.sql: 36 persons, 4324
#      locations on 2020-08-20, thousands of close pairs)
#   4. each -c SQL, in order (still at FROM: data of the old version)
#   5. ALTER EXTENSION pg_udaconnect UPDATE (to the control file's default_version)
#
#   -s DIR  also write the data (test/extension/data_state.sql: rows, ids,
#           finder answers) to DIR/state-before.txt just before the update
#           (the caller prints it again after the update and compares)
#
# Connects with the libpq environment (PGHOST, PGPORT, PGUSER); creates DBNAME
# when it does not exist and refuses one that already has pg_udaconnect.
# Prints one summary line; exits non-zero (saying which step failed) on error.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FROM=1.0
STATE_DIR=
EXTRA=()
usage() { echo "usage: $0 [-f FROM] [-c SQL]... [-s DIR] DBNAME" >&2; exit 2; }
while getopts "f:c:s:" opt; do
  case $opt in
    f) FROM=$OPTARG;;
    c) EXTRA+=("$OPTARG");;
    s) STATE_DIR=$OPTARG;;
    *) usage;;
  esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || usage
DB=$1
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
die() { echo "updated-db.sh: $DB: $*" >&2; exit 1; }
step() {
  local what=$1; shift
  local out
  out=$("$@" 2>&1) || die "$what failed: $out"
}

if [ "$("${PSQL[@]}" -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
  step "createdb" "${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$DB\""
fi
[ "$("${PSQL[@]}" -d "$DB" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_udaconnect'")" = 0 ] \
  || die "pg_udaconnect is installed already"
step "CREATE EXTENSION pg_udaconnect VERSION '$FROM'" \
  "${PSQL[@]}" -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS postgis" -c "CREATE EXTENSION pg_udaconnect VERSION '$FROM'"
step "loading the sample (scripts/run_db_command.sh)" env PGDATABASE="$DB" sh "$TOP/scripts/run_db_command.sh"
step "loading the synthetic day" "${PSQL[@]}" -d "$DB" -f "$TOP/test/extension/synthetic_day.sql"
for sql in "${EXTRA[@]}"; do
  step "the extra SQL ($sql)" "${PSQL[@]}" -d "$DB" -c "$sql"
done
if [ -n "$STATE_DIR" ]; then
  mkdir -p "$STATE_DIR"
  step "recording the data before the update" \
    "${PSQL[@]}" -d "$DB" -f "$TOP/test/extension/data_state.sql" -o "$STATE_DIR/state-before.txt"
fi
step "ALTER EXTENSION pg_udaconnect UPDATE" "${PSQL[@]}" -d "$DB" -c "ALTER EXTENSION pg_udaconnect UPDATE"
"${PSQL[@]}" -d "$DB" -c "
  SELECT format('%s: %s -> %s: %s persons, %s locations (%s on the synthetic day)', '$DB', '$FROM',
                (SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'),
                (SELECT count(*) FROM udaconnect.person), (SELECT count(*) FROM udaconnect.location),
                (SELECT count(*) FROM udaconnect.location
                  WHERE creation_time >= '2020-08-20 00:00+00' AND creation_time < '2020-08-21 00:00+00'))"
