#!/usr/bin/env bash
# 35-retention: retention by partition drop against retention by DELETE
# (issue 16: "dropping one day of 1M rows vs DELETE of the same rows, as a
# ratio"), the way the product does each:
#   * DELETE: an extension at VERSION '1.4' (one plain location table, the
#     same library) removes the day with retention_sweep(cutoff, 10000)
#     calls, each its own transaction, until one removes fewer than 10,000,
#     as its maintenance worker did; then VACUUM (ANALYZE off) of location,
#     the debt the deletes leave (dead tuples in the heap and every index);
#   * DROP: the current extension (location partitioned by day) removes it
#     with retention_sweep(cutoff, 10000) (nothing in location_default) and
#     retention_drop_partitions(cutoff), as its worker does.
# The same rows in both: N locations of 2,000 persons scattered over a
# 10 km square on the old day (few encounters, as 20-ingest's data), and
# N/10 on the next day, which both keep; both databases load them with the
# encounter maintenance on.  Checked: both remove the same rows and keep
# the same rows.
#
# Sizes:  default 1,000,000 rows on the old day; UDACONNECT_BENCH_QUICK=1 100,000.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$BENCH_DIR" || exit 1
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
OLD_DAY=2025-03-10
KEEP_DAY=2025-03-11
CUTOFF="${KEEP_DAY} 00:00+00"
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then N=100000; else N=1000000; fi
BATCH=10000

. "$TOP/test/bench/lib/table.sh"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
die() { echo "35-retention: $*" >&2; exit 1; }
q() { local db=$1; shift; "${PSQL[@]}" -d "$db" "$@"; }

# $1 database, $2 extension version ('' for the current one)
make_db() {
  local db=$1 version=$2
  q postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
  q "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION postgis" \
    -c "CREATE EXTENSION pg_udaconnect ${version:+VERSION '$version'}" || return 1
  if [ -z "$version" ]; then
    q "$db" -c "SELECT udaconnect.location_partitions_ensure('$OLD_DAY 00:00+00', '$KEEP_DAY 00:00+00'::timestamptz + interval '1 day')" \
      >/dev/null || return 1
  fi
  # the same rows in both: setseed() before random()
  q "$db" -c "INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
              SELECT g, 'Retention', 'P' || g, 'Bench' FROM generate_series(1, 2000) g" \
    -c "SELECT setseed(0.35)" \
    -c "INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
        SELECT 1 + (g % 2000), ST_SetSRID(ST_MakePoint(11.5 + random() * 0.13, 48.1 + random() * 0.09), 4326),
               '$OLD_DAY 00:00+00'::timestamptz + (g::float8 / $N) * interval '1 day'
          FROM generate_series(0, $N - 1) g" \
    -c "INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
        SELECT 1 + (g % 2000), ST_SetSRID(ST_MakePoint(11.5 + random() * 0.13, 48.1 + random() * 0.09), 4326),
               '$KEEP_DAY 00:00+00'::timestamptz + (g::float8 / ($N / 10)) * interval '1 day'
          FROM generate_series(0, $N / 10 - 1) g" \
    -c "VACUUM ANALYZE udaconnect.location" || return 1
}

echo "--- retention of one day of $N locations (and $((N / 10)) kept on the next day): DELETE (1.4) against DROP (partitions)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
t0=$(now)
make_db bench_ret_delete 1.4 || die "cannot load the 1.4 database"
make_db bench_ret_drop '' || die "cannot load the partitioned database"
echo "loaded both in $(since "$t0") s"
keep_sql="SELECT count(*) || ' ' || md5(string_agg(id || ':' || person_id || ':' || creation_time, ',' ORDER BY id)) FROM udaconnect.location"
size_sql="SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c
           WHERE c.oid = 'udaconnect.location'::regclass
              OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'udaconnect.location'::regclass)"
size_before=$(q bench_ret_delete -c "$size_sql")
size_before_drop=$(q bench_ret_drop -c "$size_sql")

# DELETE: the 1.4 worker's calls, each in its own transaction
calls=$((N / BATCH + 1))
for i in $(seq 1 $calls); do
  echo "SELECT locations FROM udaconnect.retention_sweep('$CUTOFF', $BATCH);"
done > "$BENCH_DIR/sweeps.sql"
t0=$(now)
del_rows=$(q bench_ret_delete -f "$BENCH_DIR/sweeps.sql" | awk '{ s += $1 } END { print s + 0 }') || die "retention_sweep failed (1.4)"
t_delete=$(since "$t0")
t0=$(now)
q bench_ret_delete -c "VACUUM (ANALYZE off) udaconnect.location" || die "VACUUM failed"
t_vacuum=$(since "$t0")
size_delete=$(q bench_ret_delete -c "$size_sql")

# DROP: the 1.5 worker's calls
t0=$(now)
q bench_ret_drop -c "SELECT udaconnect.retention_sweep('$CUTOFF', $BATCH)" >/dev/null || die "retention_sweep failed (1.5)"
drop_rows=$(q bench_ret_drop -c "SELECT locations FROM udaconnect.retention_drop_partitions('$CUTOFF')") ||
  die "retention_drop_partitions failed"
t_drop=$(since "$t0")
size_drop=$(q bench_ret_drop -c "$size_sql")

left_delete=$(q bench_ret_delete -c "$keep_sql")
left_drop=$(q bench_ret_drop -c "$keep_sql")
if [ "$del_rows" = "$N" ] && [ "$drop_rows" = "$N" ] && [ "$left_delete" = "$left_drop" ]; then
  echo "checked: both removed the $N rows of $OLD_DAY and kept the same $((N / 10)) rows"
else
  echo "CHECK FAILED: DELETE removed $del_rows, DROP $drop_rows (of $N); kept: '$left_delete' vs '$left_drop'"
fi
{
  echo "method|seconds|rows removed|location on disk before -> after|ratio"
  echo "DELETE (1.4: retention_sweep x $calls)|$t_delete|$del_rows|$size_before -> $size_delete|"
  echo "  + VACUUM of location (the debt)|$t_vacuum||"
  echo "DROP (1.5+: retention_drop_partitions)|$t_drop|$drop_rows|$size_before_drop -> $size_drop|"
  awk -v d="$t_delete" -v v="$t_vacuum" -v p="$t_drop" 'BEGIN {
        printf "DELETE / DROP||||%.0fx (%.0fx with the VACUUM)\n", d / p, (d + v) / p }'
} | fmt_table
[ "${UDACONNECT_BENCH_KEEP:-0}" = 1 ] || q postgres -c "DROP DATABASE bench_ret_delete" -c "DROP DATABASE bench_ret_drop"
exit 0   # a benchmark reports; it fails only when it cannot run
