#!/usr/bin/env bash
# 27-upgrade: upgrades with data in them (issue 16).  One database is made by
# test/extension/updated-db.sh: 1.0 installed from its shipped script, the
# sample and a synthetic day (36 persons, 4324 locations, thousands of close
# pairs) loaded, ALTER EXTENSION pg_udaconnect UPDATE to the current version.
# On it:
#  1. the update kept every person and location row (id, person_id,
#     coordinate, creation_time), the ids and every finder answer
#     (test/extension/data_state.sql before and after);
#  2. it built the synthetic day's encounters as an oracle chains the close
#     pairs of a self-join;
#  3. location is partitioned as in a fresh install, every row in the
#     partition of its UTC day (from 1.5: the 1.4 -> 1.5 conversion);
#  4. 30-oracle passes on a copy (UDACONNECT_ORACLE_TEMPLATE);
#  5. the ingest TAP tests 001 (exactly once through crashes) and 006
#     (encounters through the ingest) pass on a database made by the same
#     recipe (UDACONNECT_INGEST_UPDATED_FROM=1.0, test/t/IngestTest.pm).
# Every line says "on a 1.0 database updated to VERSION"; the time each part
# took is a "#" line.  25-extension checks the update from every shipped
# version (schema equal to a fresh install, API on old data); this suite runs
# the other suites' checks on an updated database.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
PG_CONFIG=${PG_CONFIG:-pg_config}
FROM=1.0
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TOP/pg_udaconnect/pg_udaconnect.control")
ON="on a $FROM database updated to $CURRENT"
DB=udaconnect_upgraded_${FROM/./_}_$$
FRESH=udaconnect_upgrade_fresh_$$
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
n=0
rc=0
ok() { n=$((n + 1)); echo "ok $n - $ON: $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $ON: $1"; rc=1; }
check() { if [ "$1" = "$2" ]; then ok "$3"; else fail "$3 (got '$1', expected '$2')"; fi; }
q() { "${PSQL[@]}" -d "$DB" -c "$1" 2>&1; }
cleanup() { for d in "$DB" "$FRESH"; do "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done; }
trap cleanup EXIT
# another suite's TAP lines, renumbered into ours and labelled; its other
# output as comments.  Sets sub_not_ok to its number of failures.
relabel() {
  local label=$1 file=$2
  sub_not_ok=$(grep -cE '^not ok [0-9]+' "$file")
  awk -v n="$n" -v on="$ON" -v label="$label" '
    /^(not )?ok [0-9]+/ { not = ($1 == "not"); sub(/^(not )?ok [0-9]+( -)? ?/, "");
                          n++; printf "%sok %d - %s: %s: %s\n", not ? "not " : "", n, on, label, $0; next }
    { print "# " $0 }' "$file"
  n=$((n + $(grep -cE '^(not )?ok [0-9]+' "$file")))
  [ "$sub_not_ok" = 0 ] || rc=1
}
took() { echo "# $1 took $(( $(date +%s) - $2 )) s"; }

# --- the database ------------------------------------------------------------
start=$(date +%s)
if out=$("$TOP/test/extension/updated-db.sh" -f "$FROM" -s "$SUITE_DIR" "$DB" 2>&1); then
  ok "made by test/extension/updated-db.sh: $FROM from its shipped script, the sample, a synthetic day, ALTER EXTENSION UPDATE ($out)"
else
  fail "test/extension/updated-db.sh"; printf '%s\n' "$out" | sed 's/^/#   /'
  exit 1
fi
check "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'")" "$CURRENT" "the extension is at $CURRENT"

# --- 1. the data kept ---------------------------------------------------------
declare -A what=(
  [persons]="every person row is kept"
  [locations]="every location row is kept (id, person_id, coordinate, creation_time)"
  [ids]="the location ids are kept (smallest, largest)"
  [finder]="every person's find_connections answer over 2020 at 5 m and 60 s is kept, row for row"
  [connected]="every person's connected_persons answer over 2020 at 5 m and 60 s is kept"
  [finder-50m]="find_connections at 50 m without a window on the synthetic day is kept, row for row")
# each aspect on its own: an error in one (printed with it) leaves the others
psql -X -q -At -d "$DB" -f "$TOP/test/extension/data_state.sql" > "$SUITE_DIR/state-after.txt" 2>&1
for aspect in persons locations ids finder connected finder-50m; do
  before=$(grep "^$aspect " "$SUITE_DIR/state-before.txt")
  after=$(grep "^$aspect " "$SUITE_DIR/state-after.txt")
  read -r _ count _ <<<"$before"
  if [ -n "$before" ] && [ "$before" = "$after" ] && [ "${count:-0}" != 0 ] && [ "${count:-0}" != - ]; then
    ok "${what[$aspect]} ($before)"
  else
    fail "${what[$aspect]}: before '$before', after '$after'"
    if [ -z "$after" ] && [ -z "${shown:-}" ]; then
      grep -E "ERROR|DETAIL|HINT" "$SUITE_DIR/state-after.txt" | sed 's/^/#   /'; shown=1
    fi
  fi
done

# --- 2. the synthetic day's encounters ---------------------------------------
# The oracle: every pair of points of two persons within encounter_distance
# and encounter_window, chained while at most encounter_gap apart (as in
# test/t/006); the synthetic day keeps clear of every threshold.
got=$(q "
SET TimeZone = 'UTC';
CREATE TEMP TABLE l AS
  SELECT person_id AS p, ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon, creation_time AS t
    FROM udaconnect.location WHERE creation_time >= '2020-08-20 00:00+00' AND creation_time < '2020-08-21 00:00+00';
CREATE INDEX ON l (t);
ANALYZE l;
CREATE TEMP TABLE om AS
  SELECT a.p AS pa, b.p AS pb, least(a.t, b.t) AS s, greatest(a.t, b.t) AS e,
         udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) AS d
    FROM l a JOIN l b
      ON b.t BETWEEN a.t - udaconnect.encounter_window() AND a.t + udaconnect.encounter_window() AND a.p < b.p
   WHERE udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) <= udaconnect.encounter_distance();
CREATE TEMP TABLE oracle AS
  SELECT pa, pb, min(s) AS s, max(e) AS e, count(*) AS n, min(d) AS d
    FROM (SELECT *, sum(brk) OVER (PARTITION BY pa, pb ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS isl
            FROM (SELECT *, CASE WHEN s > max(e) OVER (PARTITION BY pa, pb ORDER BY s, e
                                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                                         + udaconnect.encounter_gap() THEN 1 ELSE 0 END AS brk
                    FROM om) x) y
   GROUP BY pa, pb, isl;
CREATE TEMP TABLE kept AS
  SELECT * FROM udaconnect.encounter WHERE started_at >= '2020-08-20 00:00+00' AND started_at < '2020-08-21 00:00+00';
SELECT (SELECT count(*) FROM om) || ' ' || (SELECT count(*) FROM oracle) || ' ' || (SELECT max(n) FROM oracle) || ' ' ||
       (SELECT count(*) FROM oracle o FULL JOIN kept k ON (k.person_a, k.person_b, k.started_at) = (o.pa, o.pb, o.s)
         WHERE o.pa IS NULL OR k.person_a IS NULL OR k.ended_at <> o.e OR k.matches <> o.n
            OR abs(k.min_distance_m - o.d) > 1e-6)")
read -r npairs nenc maxn ndiff <<<"$got"
if [ "${npairs:-0}" -gt 1000 ] 2>/dev/null && [ "${maxn:-0}" -gt 1 ] && [ "$ndiff" = 0 ]; then
  ok "the update built the synthetic day's encounters as the oracle chains a self-join's close pairs ($nenc encounters of $npairs matches, up to $maxn in one)"
else
  fail "the synthetic day's encounters differ from the oracle's (close pairs / oracle encounters / most matches / differences: $got)"
fi

# --- 3. location partitioned as in a fresh install ------------------------------
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $FRESH" >/dev/null 2>&1
"${PSQL[@]}" -d "$FRESH" -c "CREATE EXTENSION pg_udaconnect CASCADE" >/dev/null 2>&1
LAYOUT_SQL="SELECT c.relkind::text || ' ' || coalesce(pg_get_partkeydef(c.oid), '-') || ' default=' ||
                   coalesce((SELECT string_agg(p.relname, ',') FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                              WHERE i.inhparent = c.oid AND pg_get_expr(p.relpartbound, p.oid) = 'DEFAULT'), '-')
              FROM pg_class c WHERE c.oid = 'udaconnect.location'::regclass"
fresh=$("${PSQL[@]}" -d "$FRESH" -c "$LAYOUT_SQL" 2>&1)
got=$(q "$LAYOUT_SQL")
# (the 1.4 -> 1.5 update script converts the plain table of 1.0 .. 1.4)
if [ "${got%% *}" = p ] && [ "$got" = "$fresh" ]; then
  ok "udaconnect.location is partitioned as in a fresh install (relkind, key, default partition: $got)"
else
  fail "udaconnect.location is not partitioned as in a fresh install (updated: '$got'; fresh: '$fresh')"
fi
got=$(q "
SET TimeZone = 'UTC';
SELECT count(DISTINCT l.tableoid) || ' ' || count(DISTINCT (l.creation_time AT TIME ZONE 'UTC')::date) || ' ' ||
       count(*) FILTER (WHERE c.relkind IS DISTINCT FROM 'r' OR pg_get_expr(c.relpartbound, c.oid) IS DISTINCT FROM
         format('FOR VALUES FROM (%L) TO (%L)', (l.creation_time AT TIME ZONE 'UTC')::date || ' 00:00:00+00',
                (l.creation_time AT TIME ZONE 'UTC')::date + 1 || ' 00:00:00+00'))
  FROM udaconnect.location l LEFT JOIN pg_class c ON c.oid = l.tableoid")
read -r nparts ndays nbad <<<"$got"
if [ "${nbad:-x}" = 0 ] && [ "$nparts" = "$ndays" ]; then
  ok "every location is in the partition of its UTC day ($nparts day partitions, none in the default partition)"
else
  fail "locations not in the partition of their UTC day (partitions holding rows / days / rows elsewhere: $got)"
fi
took "making and checking the updated database" "$start"

# --- 4. 30-oracle on a copy ---------------------------------------------------
start=$(date +%s)
mkdir -p "$SUITE_DIR/oracle"
SUITE_DIR=$SUITE_DIR/oracle UDACONNECT_ORACLE_TEMPLATE=$DB bash "$TOP/test/suites/30-oracle.sh" > "$SUITE_DIR/oracle.out" 2>&1
orc=$?
relabel "30-oracle" "$SUITE_DIR/oracle.out"
[ $orc = 0 ] || [ "$sub_not_ok" != 0 ] || fail "30-oracle exited with status $orc"
took "30-oracle" "$start"

# --- 5. ingest TAP tests --------------------------------------------------------
HANG_GUARD=${UDACONNECT_UPGRADE_TAP_TIMEOUT:-600}
PGBIN=${PGBIN:-$($PG_CONFIG --bindir)}
PGXS_DIR=$(dirname "$($PG_CONFIG --pgxs)")/..
for t in 001_ingest_exactly_once 006_ingest_encounters; do
  start=$(date +%s)
  mkdir -p "$SUITE_DIR/ingest/portlock"
  (
    export TOP PATH="$PGBIN:$PATH" UDACONNECT_INGEST_UPDATED_FROM=$FROM
    export PERL5LIB="$PGXS_DIR/test/perl:$TOP/test/t${PERL5LIB:+:$PERL5LIB}"
    export PG_REGRESS="$PGXS_DIR/test/regress/pg_regress"
    export TESTDIR="$SUITE_DIR/ingest" PG_TEST_PORT_DIR="$SUITE_DIR/ingest/portlock"
    unset PGHOST PGPORT PGUSER PGDATABASE UDACONNECT_KAFKA_BROKERS
    # a guard against a hang (a test waiting for rows that never come), not
    # a speed check: either test takes well under a minute.  perl, not
    # prove: Test::More flushes each line, so a stopped test keeps its lines.
    cd "$SUITE_DIR/ingest" && timeout -k 30 "$HANG_GUARD" perl "$TOP/test/t/$t.pl"
  ) > "$SUITE_DIR/$t.out" 2>&1
  prc=$?
  relabel "$t" "$SUITE_DIR/$t.out"
  if [ $prc = 124 ] || [ $prc = 137 ]; then
    fail "$t did not finish within $HANG_GUARD s: stopped (hung?)"
  elif [ $prc != 0 ] && [ "$sub_not_ok" = 0 ]; then
    fail "$t exited with status $prc"
  fi
  took "$t" "$start"
done
exit $rc
