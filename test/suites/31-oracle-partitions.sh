#!/usr/bin/env bash
# 31-oracle-partitions: the oracle test of the connection finder
# (test/oracle/gen.sql and check.sql, as 30-oracle runs them) on a
# partitioned udaconnect.location whose data spans partition boundaries and
# location_default, and the same data in a plain location table of the 1.4
# layout, read by the same library (issue 16).
#
# Two scratch databases, filled by gen.sql with the same seed (same persons,
# ids and rows):
#   oraclep_<pid>  the current version, partitioned: a day each for
#                  2024-02-29 .. 2024-03-03 (location_partitions_ensure: key
#                  and btrees named after each), and by plain DDL, each with
#                  its key and its two btrees named after it (the parent has
#                  none; the finder reads a partition through those), one from
#                  MINVALUE to 2024-02-29 (the 2023 points and the last
#                  microsecond of 2024-02-28) and one from 2024-03-06 to
#                  MAXVALUE; 2024-03-04 and 2024-03-05 (a quarter of the
#                  random times, and day boundaries) stay in
#                  location_default, between partitions
#   oraclel_<pid>  CREATE EXTENSION pg_udaconnect VERSION '1.4': one plain table
# Checked: where the rows lie; every scenario of gen.sql against the PostGIS
# self-join on the partitioned database (one TAP line each, check.sql); that
# find_connections and connected_persons give, for every scenario, exactly
# the 1.4 table's rows in the same order (every column, every bit of the
# distances); that the encounters the inserts maintained (across midnight
# between partitions, with location_default) are those of the 1.4 database
# and those a rebuild makes.  Both databases are dropped at the end.
#
#   UDACONNECT_ORACLE_SEED   another seed (default udaconnect-oracle-1)
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ORACLE=$TOP/test/oracle
SEED=${UDACONNECT_ORACLE_SEED:-udaconnect-oracle-1}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
DBP=oraclep_$$
DBL=oraclel_$$
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; }

cleanup() {
  for db in "$DBP" "$DBL"; do "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

setup() {
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DBP" -c "CREATE DATABASE $DBL" &&
  "${PSQL[@]}" -d "$DBP" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_udaconnect CASCADE" &&
  "${PSQL[@]}" -d "$DBP" <<'SQL' &&
SET client_min_messages = warning;
SELECT udaconnect.location_partitions_ensure('2024-02-29 00:00+00', '2024-03-04 00:00+00');
CREATE TABLE udaconnect.location_before PARTITION OF udaconnect.location
  FOR VALUES FROM (MINVALUE) TO ('2024-02-29 00:00+00');
ALTER TABLE udaconnect.location_before ADD CONSTRAINT location_before_pkey PRIMARY KEY (id, creation_time);
CREATE INDEX location_before_person_time_idx ON udaconnect.location_before (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_before_cell_time_idx ON udaconnect.location_before (cell, creation_time) INCLUDE (person_id, id, coordinate);
CREATE TABLE udaconnect.location_after PARTITION OF udaconnect.location
  FOR VALUES FROM ('2024-03-06 00:00+00') TO (MAXVALUE);
ALTER TABLE udaconnect.location_after ADD CONSTRAINT location_after_pkey PRIMARY KEY (id, creation_time);
CREATE INDEX location_after_person_time_idx ON udaconnect.location_after (person_id, creation_time) INCLUDE (coordinate);
CREATE INDEX location_after_cell_time_idx ON udaconnect.location_after (cell, creation_time) INCLUDE (person_id, id, coordinate);
SQL
  "${PSQL[@]}" -d "$DBL" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_udaconnect VERSION '1.4' CASCADE" &&
  "${PSQL[@]}" -d "$DBP" -v seed="$SEED" -f "$ORACLE/gen.sql" &&
  "${PSQL[@]}" -d "$DBL" -v seed="$SEED" -f "$ORACLE/gen.sql"
}
if ! setup >"$SUITE_DIR/setup.log" 2>&1; then
  fail "two oracle databases (partitioned, and 1.4) generated (seed $SEED)"
  sed 's/^/#   /' "$SUITE_DIR/setup.log"
  exit 1
fi

# 1: the layouts, and where the rows lie
read -r kindp kindl <<<"$("${PSQL[@]}" -d "$DBP" -c "SELECT relkind FROM pg_class WHERE oid = 'udaconnect.location'::regclass") \
                      $("${PSQL[@]}" -d "$DBL" -c "SELECT relkind FROM pg_class WHERE oid = 'udaconnect.location'::regclass")"
where=$("${PSQL[@]}" -d "$DBP" -c "
  SELECT string_agg(format('%s %s', c, n), ', ' ORDER BY c)
    FROM (SELECT tableoid::regclass::text AS c, count(*) AS n FROM udaconnect.location GROUP BY 1) x")
empty=$("${PSQL[@]}" -d "$DBP" -c "
  SELECT count(*) FROM pg_inherits i
   WHERE i.inhparent = 'udaconnect.location'::regclass
     AND NOT EXISTS (SELECT 1 FROM udaconnect.location l WHERE l.tableoid = i.inhrelid)")
same=$("${PSQL[@]}" -d "$DBP" -c "SELECT md5(string_agg(format('%s %s %s %s', id, person_id, ST_AsEWKB(coordinate), creation_time), ',' ORDER BY id)) FROM udaconnect.location")
samel=$("${PSQL[@]}" -d "$DBL" -c "SELECT md5(string_agg(format('%s %s %s %s', id, person_id, ST_AsEWKB(coordinate), creation_time), ',' ORDER BY id)) FROM udaconnect.location")
if [ "$kindp" = p ] && [ "$kindl" = r ] && [ "$empty" = 0 ] && [ -n "$same" ] && [ "$same" = "$samel" ]; then
  ok "the same rows in a partitioned table ($where) and in the 1.4 plain table"
else
  fail "layouts: partitioned relkind $kindp, 1.4 relkind $kindl, $empty partitions empty, rows $same vs $samel ($where)"
fi

# 2..: every scenario against the PostGIS self-join, on the partitioned table
while read -r sn; do
  n=$((n + 1))
  out=$("${PSQL[@]}" -d "$DBP" -f "$ORACLE/check.sql" -c "
      SELECT pg_temp.udc_check($n, 'partitioned: ' || pg_temp.udc_label(pe.id, s, e, m, w, tz), pe.id, s, e, m, w, tz)
        FROM oracle.scenario sc JOIN oracle.people pe ON pe.idx = sc.subj
       WHERE sc.n = $sn" 2>&1)
  if printf '%s\n' "$out" | grep -qE "^(not )?ok $n "; then
    printf '%s\n' "$out"
  else
    echo "not ok $n - partitioned: scenario $sn: the check did not run"
    printf '%s\n' "$out" | sed 's/^/#   /'
  fi
done < <("${PSQL[@]}" -d "$DBP" -c "SELECT n FROM oracle.scenario ORDER BY n")

# the finder's answers, every scenario, as text: identical on both layouts
answers() {
  "${PSQL[@]}" -d "$1" -F '|' -c "SET TimeZone = 'UTC'" -c "SET extra_float_digits = 3" -c "
    SELECT sc.n, f.*
      FROM oracle.scenario sc JOIN oracle.people pe ON pe.idx = sc.subj,
           LATERAL udaconnect.find_connections(pe.id, sc.s, sc.e, sc.m, sc.w) WITH ORDINALITY f
     ORDER BY sc.n, f.ordinality" -c "
    SELECT sc.n, c.*
      FROM oracle.scenario sc JOIN oracle.people pe ON pe.idx = sc.subj,
           LATERAL udaconnect.connected_persons(pe.id, sc.s, sc.e, sc.m, sc.w) c
     ORDER BY sc.n, c.person_id"
}
answers "$DBP" >"$SUITE_DIR/answers-partitioned.txt" 2>&1; rp=$?
answers "$DBL" >"$SUITE_DIR/answers-1.4.txt" 2>&1; rl=$?
nscen=$("${PSQL[@]}" -d "$DBP" -c "SELECT count(*) FROM oracle.scenario")
rows=$(wc -l <"$SUITE_DIR/answers-1.4.txt")
if [ $rp = 0 ] && [ $rl = 0 ] && [ "$rows" -gt 1000 ] &&
   cmp -s "$SUITE_DIR/answers-partitioned.txt" "$SUITE_DIR/answers-1.4.txt"; then
  ok "find_connections and connected_persons: the partitioned table gives the 1.4 plain table's rows, in its order, to the last bit, in all $nscen scenarios ($rows rows)"
else
  fail "find_connections / connected_persons differ between the partitioned and the 1.4 table (exit $rp, $rl; $SUITE_DIR/answers-*.txt)"
  diff "$SUITE_DIR/answers-partitioned.txt" "$SUITE_DIR/answers-1.4.txt" | head -n 20 | sed 's/^/#   /'
fi

# the encounters the inserts maintained: those of the 1.4 database, and those
# of a rebuild; some join rows of two partitions, or of location_default
ENC="SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
            place_ids, place_matches, latitude, longitude, closest_a, closest_b
       FROM udaconnect.encounter ORDER BY person_a, person_b, started_at"
encounters() { "${PSQL[@]}" -d "$1" -F '|' -c "SET TimeZone = 'UTC'" -c "SET extra_float_digits = 3" -c "$ENC"; }
encounters "$DBP" >"$SUITE_DIR/encounters-partitioned.txt" 2>&1; rp=$?
encounters "$DBL" >"$SUITE_DIR/encounters-1.4.txt" 2>&1; rl=$?
read -r nenc across <<<"$("${PSQL[@]}" -d "$DBP" -F ' ' -c "
  SELECT count(*), count(*) FILTER (WHERE a.tableoid <> b.tableoid)
    FROM udaconnect.encounter x
    JOIN udaconnect.location a ON a.id = x.closest_a JOIN udaconnect.location b ON b.id = x.closest_b")"
withdef=$("${PSQL[@]}" -d "$DBP" -c "
  SELECT count(*) FROM udaconnect.encounter x
    JOIN udaconnect.location a ON a.id = x.closest_a JOIN udaconnect.location b ON b.id = x.closest_b
   WHERE a.tableoid <> b.tableoid AND 'udaconnect.location_default'::regclass IN (a.tableoid, b.tableoid)")
if [ $rp = 0 ] && [ $rl = 0 ] && [ "${across:-0}" -gt 0 ] && [ "${withdef:-0}" -gt 0 ] &&
   cmp -s "$SUITE_DIR/encounters-partitioned.txt" "$SUITE_DIR/encounters-1.4.txt"; then
  ok "the maintained encounters equal the 1.4 database's ($nenc; $across with their closest match's rows in two partitions, $withdef of them with location_default)"
else
  fail "encounters differ between the partitioned and the 1.4 database, or none crosses partitions (exit $rp, $rl; $nenc, $across across, $withdef with DEFAULT; $SUITE_DIR/encounters-*.txt)"
  diff "$SUITE_DIR/encounters-partitioned.txt" "$SUITE_DIR/encounters-1.4.txt" | head -n 20 | sed 's/^/#   /'
fi
"${PSQL[@]}" -d "$DBP" -c "SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')" >"$SUITE_DIR/rebuild.log" 2>&1; rr=$?
encounters "$DBP" >"$SUITE_DIR/encounters-rebuilt.txt" 2>&1
if [ $rr = 0 ] && cmp -s "$SUITE_DIR/encounters-partitioned.txt" "$SUITE_DIR/encounters-rebuilt.txt"; then
  ok "encounters_rebuild('-infinity', 'infinity') on the partitioned table makes the same $nenc encounters"
else
  fail "the rebuild on the partitioned table differs from the maintained encounters (exit $rr; $SUITE_DIR/rebuild.log, encounters-*.txt)"
  diff "$SUITE_DIR/encounters-partitioned.txt" "$SUITE_DIR/encounters-rebuilt.txt" | head -n 20 | sed 's/^/#   /'
fi
exit 0
