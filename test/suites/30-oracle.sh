#!/usr/bin/env bash
# 30-oracle: randomised oracle test of the connection finder (issue 2).
#
# Creates a scratch database oracle_<pid> with the extension, fills it with
# ~11k deterministic points (test/oracle/gen.sql: pairs at the distance
# threshold +- 1..5 mm and +- 2..5 cm for 0.5/5/50/500/5000/10000 m, UTC day
# boundaries to the microsecond, the poles, the antimeridian, the equator,
# time-window edges), then compares udaconnect.find_connections and
# udaconnect.connected_persons with the plain PostGIS self-join for ~200
# argument sets, each in a non-UTC session TimeZone most of the time
# (test/oracle/check.sql).  One TAP line per scenario; the database is
# dropped at the end.
#
#   UDACONNECT_ORACLE_SEED       another seed (default udaconnect-oracle-1)
#   UDACONNECT_ORACLE_TEMPLATE   create the scratch database from this
#                                template instead of CREATE EXTENSION (only for
#                                developing the oracle against a mock finder)
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ORACLE=$TOP/test/oracle
SEED=${UDACONNECT_ORACLE_SEED:-udaconnect-oracle-1}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
DB=oracle_$$
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)

cleanup() { "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ -n "${UDACONNECT_ORACLE_TEMPLATE:-}" ]; then
  setup=("${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB TEMPLATE ${UDACONNECT_ORACLE_TEMPLATE}")
else
  setup=(bash -c "${PSQL[*]} -d postgres -c 'CREATE DATABASE $DB' && ${PSQL[*]} -d $DB -c 'CREATE EXTENSION pg_udaconnect CASCADE'")
fi
if ! "${setup[@]}" >"$SUITE_DIR/setup.log" 2>&1 ||
   ! "${PSQL[@]}" -d "$DB" -v seed="$SEED" -f "$ORACLE/gen.sql" >>"$SUITE_DIR/setup.log" 2>&1; then
  echo "not ok 1 - oracle data generated (seed $SEED)"
  sed 's/^/#   /' "$SUITE_DIR/setup.log"
  exit 1
fi

# 1: the data has what the scenarios are meant to exercise
summary=$("${PSQL[@]}" -F ' ' -d "$DB" <<'SQL'
WITH near AS (
  SELECT a.m, abs(ST_Distance(l1.coordinate::geography, l2.coordinate::geography, true) - a.m) AS off
    FROM oracle.anchor a
    JOIN oracle.pt p1 ON p1.note = format('anchor %s', a.aid)
    JOIN udaconnect.location l1 ON l1.id = p1.id
    JOIN oracle.pt p2 ON p2.note LIKE format('partner of anchor %s at %%', a.aid)
    JOIN udaconnect.location l2 ON l2.id = p2.id)
SELECT (SELECT count(*) FROM udaconnect.location),
       (SELECT count(*) FROM near WHERE off <= 0.0051),
       (SELECT count(*) FROM near WHERE off > 0.0051 AND off <= 0.051),
       (SELECT count(DISTINCT m) FROM near WHERE off <= 0.0051),
       (SELECT count(*) FROM udaconnect.location WHERE abs(ST_Y(coordinate)) >= 89.9999),
       (SELECT count(*) FROM udaconnect.location WHERE abs(ST_X(coordinate)) >= 179.9999),
       (SELECT count(*) FROM udaconnect.location WHERE abs(ST_Y(coordinate)) = 90 OR abs(ST_X(coordinate)) = 180),
       (SELECT count(*) FROM udaconnect.location
         WHERE (creation_time AT TIME ZONE 'UTC')::time IN ('00:00:00', '23:59:59.999999')),
       (SELECT count(*) FROM oracle.scenario)
SQL
)
read -r npts nmm ncm nm npole nanti nexact nday nscen <<<"$summary"
if [ "${npts:-0}" -ge 5000 ] && [ "${nmm:-0}" -ge 1000 ] && [ "${ncm:-0}" -ge 1000 ] && [ "${nm:-0}" -ge 6 ] &&
   [ "${npole:-0}" -ge 100 ] && [ "${nanti:-0}" -ge 100 ] && [ "${nexact:-0}" -ge 50 ] && [ "${nday:-0}" -ge 50 ]; then
  echo "ok 1 - oracle data (seed $SEED): $npts points; $nmm pairs within 5 mm and $ncm within 5 cm of a threshold ($nm meters values); $npole near a pole, $nanti near the antimeridian, $nexact at exactly lat +-90 or lon +-180; $nday at 00:00:00 or 23:59:59.999999 UTC"
else
  echo "not ok 1 - oracle data (seed $SEED) lacks the cases it should contain: $summary"
fi

# 2..: one scenario per psql session (a crash in one cannot hide the others)
n=1
while read -r sn; do
  n=$((n + 1))
  out=$("${PSQL[@]}" -d "$DB" -f "$ORACLE/check.sql" -c "
      SELECT pg_temp.udc_check($n, pg_temp.udc_label(pe.id, s, e, m, w, tz), pe.id, s, e, m, w, tz)
        FROM oracle.scenario sc JOIN oracle.people pe ON pe.idx = sc.subj
       WHERE sc.n = $sn" 2>&1)
  if printf '%s\n' "$out" | grep -qE "^(not )?ok $n "; then
    printf '%s\n' "$out"
  else
    echo "not ok $n - scenario $sn: the check did not run"
    printf '%s\n' "$out" | sed 's/^/#   /'
  fi
done < <("${PSQL[@]}" -d "$DB" -c "SELECT n FROM oracle.scenario ORDER BY n")
[ "$n" -gt 1 ] || echo "not ok 2 - no scenarios"
exit 0
