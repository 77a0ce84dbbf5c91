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
#                                template instead of CREATE EXTENSION: a
#                                database holding the extension, with or
#                                without data (27-upgrade passes one updated
#                                from 1.0 with data; gen.sql's ids start after
#                                the rows it holds), or a mock finder's
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

# Last: the finder under concurrent writes.  One "booth" where person A stands
# all day and 30 others mill around within 2 m (every pair within 5 m, so no
# threshold ambiguity; a 60 s window decides), thousands of entries per cell
# (leaf walks span many pages).  A writer keeps inserting into the same cells
# (page splits under the walks), deletes whole time ranges of a noise person
# and vacuums (deleted pages, dead entries); meanwhile each check compares
# find_connections with the PostGIS self-join in one REPEATABLE READ snapshot.
setup_rc=0
"${PSQL[@]}" -d "$DB" >"$SUITE_DIR/concurrent-setup.log" 2>&1 <<'SQL' || setup_rc=$?
-- the oracle's rows carry explicit ids: move the identity past them
SELECT setval(pg_get_serial_sequence('udaconnect.location', 'id'), (SELECT max(id) FROM udaconnect.location));
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT 900000 + g, 'Conc', format('No. %s', g), 'Concurrency' FROM generate_series(0, 32) g;
-- A = 900000 every 2 min; others 900001..900030 around it; noise 900032
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT 900000, udaconnect.make_point(48.8566, 2.3522), timestamptz '2024-05-05 00:00:00+00' + g * interval '10 minutes'
  FROM generate_series(0, 143) g;
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT 900001 + (g % 30),
       udaconnect.make_point(48.8566 + (((hashint4(g) & 1023) / 1023.0) - 0.5) * 2.8 / 111320,
                             2.3522 + (((hashint4(g + 7) & 1023) / 1023.0) - 0.5) * 2.8 / 73000),
       timestamptz '2024-05-05 00:00:00+00' + (hashint4(g + 13) & 65535) * interval '1318 milliseconds'
  FROM generate_series(1, 12000) g;
INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
SELECT 900032, udaconnect.make_point(48.8566, 2.3522), timestamptz '2024-05-05 00:00:00+00' + g * interval '3 seconds'
  FROM generate_series(0, 28799) g;
VACUUM ANALYZE udaconnect.location;
SQL
(
  for i in $(seq 1 40); do
    "${PSQL[@]}" -d "$DB" -c "
      INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
      SELECT 900001 + (g % 30),
             udaconnect.make_point(48.8566 + (((hashint4(g + $i * 1000003) & 1023) / 1023.0) - 0.5) * 2.8 / 111320,
                                   2.3522 + (((hashint4(g + $i * 7) & 1023) / 1023.0) - 0.5) * 2.8 / 73000),
             timestamptz '2024-05-05 00:00:00+00' + (hashint4(g * 31 + $i) & 65535) * interval '1318 milliseconds'
        FROM generate_series(1, 400) g" \
      -c "DELETE FROM udaconnect.location WHERE person_id = 900032
            AND creation_time >= timestamptz '2024-05-05 00:00:00+00' + ($i * 30) * interval '1 minute'
            AND creation_time <  timestamptz '2024-05-05 00:00:00+00' + ($i * 30 + 20) * interval '1 minute'" || exit 1
    [ $((i % 8)) = 0 ] && { "${PSQL[@]}" -d "$DB" -c "VACUUM udaconnect.location" || exit 1; }
  done
) >"$SUITE_DIR/concurrent-writer.log" 2>&1 &
writer=$!
bad=0; checks=0; rows=0
while kill -0 "$writer" 2>/dev/null || [ "$checks" -lt 5 ]; do
  checks=$((checks + 1))
  r=$("${PSQL[@]}" -d "$DB" -F ' ' 2>&1 <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET TimeZone = 'Asia/Tokyo';
-- the snapshot's rows of the day, indexed on time so that the oracle is cheap
CREATE TEMP TABLE day_rows ON COMMIT DROP AS
  SELECT id, person_id, coordinate, creation_time FROM udaconnect.location
   WHERE creation_time >= '2024-05-05 00:00:00+00' AND creation_time < '2024-05-06 00:00:00+00';
CREATE INDEX ON day_rows (creation_time);
ANALYZE day_rows;
WITH f AS (SELECT location_id AS id FROM udaconnect.find_connections(900000, '2024-05-05', '2024-05-05', 5, '60 seconds')),
     o AS (SELECT DISTINCT b.id
             FROM day_rows a JOIN day_rows b
               ON b.creation_time BETWEEN a.creation_time - interval '60 seconds' AND a.creation_time + interval '60 seconds'
              AND ST_DWithin(a.coordinate::geography, b.coordinate::geography, 5)
            WHERE a.person_id = 900000 AND b.person_id <> 900000)
SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM o),
       (SELECT count(*) FROM (SELECT id FROM f EXCEPT SELECT id FROM o) x) + (SELECT count(*) FROM (SELECT id FROM o EXCEPT SELECT id FROM f) y),
       (SELECT count(*) - count(DISTINCT id) FROM f);
COMMIT;
SQL
)
  read -r nf no ndiff ndup <<<"$(printf '%s\n' "$r" | grep -E '^[0-9]+ [0-9]+ [0-9]+ [0-9]+$' | tail -1)"
  # a WARNING (e.g. a buffer pin the finder leaked, reported at commit) fails too
  if [ -z "${nf:-}" ] || [ "$nf" != "$no" ] || [ "$ndiff" != 0 ] || [ "$ndup" != 0 ] ||
     printf '%s\n' "$r" | grep -q 'WARNING'; then
    bad=$((bad + 1)); echo "# concurrent check $checks: $r"
  fi
  rows=$((rows + ${nf:-0}))
  [ "$checks" -ge 200 ] && break
done
wait "$writer"; wrc=$?
n=$((n + 1))
if [ "$setup_rc" = 0 ] && [ "$bad" = 0 ] && [ "$wrc" = 0 ] && [ "$checks" -ge 5 ] && [ "$rows" -gt 0 ]; then
  echo "ok $n - find_connections agrees with the self-join in $checks REPEATABLE READ snapshots taken while a writer inserted 16,000 rows into the same cells, deleted time ranges and vacuumed ($((rows / checks)) rows per check)"
else
  echo "not ok $n - concurrent writes: $bad of $checks checks differ from the self-join or warned (setup exit $setup_rc, writer exit $wrc, $rows rows; $SUITE_DIR/concurrent-*.log)"
  sed 's/^/#   /' "$SUITE_DIR/concurrent-setup.log" "$SUITE_DIR/concurrent-writer.log" | tail -n 20
fi
exit 0
