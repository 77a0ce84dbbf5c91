# Shared by the finder benchmarks (test/bench/10-finder.sh, 15-dense.sh);
# sourced, not run.  What it holds: the benchmark database with the
# extension, the plain PostGIS layout of the same points (the baseline's
# table), and the check of the self-join's plan.  What it must not do:
# generate data, measure latencies or print tables (finder/*.sql and each
# benchmark do).  Needs DB (the database's name) and PSQL (psql and its
# options) set by the benchmark.

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
q() { "${PSQL[@]}" -d "$DB" "$@"; }

# A fresh database $DB with the extension and pg_prewarm.  The encounter
# maintenance (trigger location_track_encounters) is turned off: these
# benchmarks measure the finder and the plain load; 25-encounters.sh
# measures the maintenance.
finder_db_create() {
  "${PSQL[@]}" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" \
    -c "CREATE DATABASE $DB" || return 1
  q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_udaconnect CASCADE" -c "CREATE EXTENSION pg_prewarm" \
    -c "ALTER TABLE udaconnect.location DISABLE TRIGGER location_track_encounters"
}

# bench.postgis: the plain PostGIS layout (GiST on coordinate::geography,
# btree(creation_time), btree(person_id, creation_time)) loaded with the
# points and ids of udaconnect.location in one INSERT ... SELECT, then
# VACUUM ANALYZE.  Prints the load's seconds.
postgis_load() {
  local t0 t
  q -c "CREATE TABLE bench.postgis (id bigint PRIMARY KEY, person_id integer NOT NULL,
                                    coordinate geometry(Point, 4326) NOT NULL, creation_time timestamptz NOT NULL)" \
    -c "CREATE INDEX bench_postgis_geog_idx ON bench.postgis USING gist ((coordinate::geography))" \
    -c "CREATE INDEX bench_postgis_time_idx ON bench.postgis (creation_time)" \
    -c "CREATE INDEX bench_postgis_person_time_idx ON bench.postgis (person_id, creation_time)" >&2 || return 1
  t0=$(now)
  q -c "INSERT INTO bench.postgis SELECT id, person_id, coordinate, creation_time FROM udaconnect.location ORDER BY id" >&2 ||
    return 1
  t=$(since "$t0")
  q -c "VACUUM ANALYZE bench.postgis" >&2 || return 1
  echo "$t"
}

# Print the self-join's plan for person $1 on day $2 with window $3
# ('60 seconds' or NULL), labelled $4, and set gist=yes (a GiST index scan
# per point of P), bitmap or NO.  Needs finder/measure.sql loaded.
plan_of() {
  local sj plan how
  sj=$(q -c "SELECT bench.q_selfjoin($1, '$2', $3)")
  plan=$(q -c "SET max_parallel_workers_per_gather = 0" -c "EXPLAIN (COSTS OFF) $sj")
  if printf '%s\n' "$plan" | grep -q "Index Scan using bench_postgis_geog_idx"; then
    gist=yes; how="yes (index scan per point of P)"
  elif printf '%s\n' "$plan" | grep -q "Bitmap Index Scan on bench_postgis_geog_idx"; then
    gist=bitmap; how="yes, as a bitmap index scan"
    printf '%s\n' "$plan" | grep -q "BitmapAnd" && how="$how AND-ed with another index"
  else
    gist=NO; how="NO"
  fi
  echo "$4 (person $1): GiST index on coordinate::geography used: $how; the plan's joins and scans:"
  printf '%s\n' "$plan" | grep -E "Scan|Nested|Join" | head -n 8 | sed 's/^ */    /'
}
