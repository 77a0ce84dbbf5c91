# Shared by the finder benchmarks (test/bench/10-finder.sh, 15-dense.sh);
# sourced, not run.  What it holds: the benchmark database with the
# extension, the plain PostGIS layout of the same points (the baseline's
# table), and the check of the self-join's plan.  What it must not do:
# generate data, measure latencies or print tables (finder/*.sql and each
# benchmark do).  Needs DB (the database's name) and PSQL (psql and its
# options) set by the benchmark; the 1.4 baseline also DB14.

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

# Day partitions of udaconnect.location for every UTC day of bench.src, made
# before the load so that no row goes to location_default, by
# udaconnect.location_partitions_ensure() (day partitions at the default
# udaconnect.location_partition_width, each with its key and its two btrees
# named after it, which the finder reads).  Prints "N partitions ...".
finder_partitions() {
  q -c "SET client_min_messages = warning" -c "
    SELECT udaconnect.location_partitions_ensure(d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC')
      FROM (SELECT DISTINCT (creation_time AT TIME ZONE 'UTC')::date AS d FROM bench.src ORDER BY 1) days" >/dev/null || return 1
  q -c "SELECT format('%s day partitions besides location_default (udaconnect.location_partitions_ensure())', count(*))
          FROM udaconnect.location_partitions() WHERE NOT is_default"
}

# Heap, index and total bytes of udaconnect.location, partitions included.
location_sizes() {
  q -F ' ' -c "SELECT sum(pg_relation_size(relid)), sum(pg_indexes_size(relid)), sum(pg_total_relation_size(relid))
                 FROM pg_partition_tree('udaconnect.location')"
}

# $DB14: a database at pg_udaconnect VERSION '1.4' (one plain location
# table) holding $DB's persons and locations, same ids, copied in id order
# (the order they were loaded in), then VACUUM ANALYZE: the baseline the
# partitioned table's finder is compared with (issue 16).  Prints the copy's
# seconds.
q14() { "${PSQL[@]}" -d "$DB14" "$@"; }
finder14_load() {
  local t0 t
  "${PSQL[@]}" -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB14" \
    -c "CREATE DATABASE $DB14" >&2 || return 1
  q14 -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_udaconnect VERSION '1.4' CASCADE" \
    -c "CREATE EXTENSION pg_prewarm" -c "CREATE SCHEMA bench" \
    -c "ALTER TABLE udaconnect.location DISABLE TRIGGER location_track_encounters" >&2 || return 1
  q -c "COPY udaconnect.person (id, first_name, last_name, company_name) TO STDOUT" |
    q14 -c "COPY udaconnect.person (id, first_name, last_name, company_name) FROM STDIN" >&2 || return 1
  t0=$(now)
  q -c "COPY (SELECT id, person_id, coordinate, creation_time FROM udaconnect.location ORDER BY id) TO STDOUT" |
    q14 -c "COPY udaconnect.location (id, person_id, coordinate, creation_time) FROM STDIN" >&2 || return 1
  t=$(since "$t0")
  q14 -c "VACUUM ANALYZE udaconnect.location" >&2 || return 1
  echo "$t"
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
