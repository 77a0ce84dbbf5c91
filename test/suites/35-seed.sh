#!/usr/bin/env bash
# 35-seed: the sample data's connections compared with the PostGIS oracle
# (issue 2), in database geoconnections as loaded by the stack (read only:
# the check functions live in pg_temp, see test/oracle/check.sql).
# The original's example, person 1 for 2020-01-01..2020-12-30 at 5 m, plus
# every seed person at several distances, date ranges and time windows, in
# non-UTC session time zones.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DB=${PGDATABASE:-geoconnections}
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB")

# 1: the sample data is there, and person 1 does have connections (so the
# comparisons below are not vacuous)
read -r np nl nc <<<"$("${PSQL[@]}" -F ' ' -c "
  SELECT (SELECT count(*) FROM udaconnect.person), (SELECT count(*) FROM udaconnect.location),
         (SELECT count(*) FROM udaconnect.location a JOIN udaconnect.location b
             ON a.person_id = 1 AND b.person_id <> 1
            AND ST_DWithin(a.coordinate::geography, b.coordinate::geography, 5)
            AND a.creation_time >= '2020-01-01 00:00+00' AND a.creation_time < '2020-12-31 00:00+00'
            AND b.creation_time >= '2020-01-01 00:00+00' AND b.creation_time < '2020-12-31 00:00+00')" 2>&1)"
if [ "${np:-0}" -ge 5 ] 2>/dev/null && [ "${nl:-0}" -ge 30 ] && [ "${nc:-0}" -ge 1 ]; then
  echo "ok 1 - seed data loaded: $np persons, $nl locations; person 1 has $nc qualifying pairs in 2020 at 5 m"
else
  echo "not ok 1 - seed data loaded ($np persons, $nl locations, $nc pairs for person 1)"
fi

scenarios=$(cat <<'EOF2'
1 2020-01-01 2020-12-30 5 NULL America/St_Johns
1 2020-01-01 2020-12-30 5 NULL UTC
EOF2
)
persons=$("${PSQL[@]}" -c "SELECT id FROM udaconnect.person ORDER BY id")
zones=(Pacific/Chatham America/St_Johns Asia/Kathmandu UTC America/Los_Angeles Pacific/Kiritimati)
i=0
for p in $persons; do
  for args in "2020-01-01 2020-12-30 5 NULL" "2019-01-01 2020-12-31 5 NULL" "2020-07-07 2020-07-07 5 '00:01:00'" \
              "2020-01-01 2020-12-30 50 NULL" "2020-07-01 2020-08-31 5000 '01:00:00'" "2020-07-07 2020-07-07 1000 '0'" \
              "2020-08-15 2020-08-18 5 '72:00:00'"; do
    scenarios+=$'\n'"$p $args ${zones[$((i % ${#zones[@]}))]}"
    i=$((i + 1))
  done
done

n=1
while read -r p s e m w tz; do
  [ -n "$p" ] || continue
  n=$((n + 1))
  out=$("${PSQL[@]}" -f "$TOP/test/oracle/check.sql" -c "
      SELECT pg_temp.udc_check($n, pg_temp.udc_label($p, '$s', '$e', $m, $w, '$tz'),
                               $p, '$s', '$e', $m, $w, '$tz')" 2>&1)
  if printf '%s\n' "$out" | grep -qE "^(not )?ok $n "; then
    printf '%s\n' "$out"
  else
    echo "not ok $n - person $p, $s..$e, $m m, window $w, TimeZone $tz: the check did not run"
    printf '%s\n' "$out" | sed 's/^/#   /'
  fi
done <<<"$scenarios"

# scripts/run_db_command.sh as the original README runs it: through POSIX sh
# (Debian's dash), without and with a POD argument; a second load changes
# nothing.  The POD path goes through a stand-in kubectl that checks its
# arguments and runs the psql it was given against this stack.
counts() {
  "${PSQL[@]}" -c "SELECT (SELECT count(*) FROM udaconnect.person) || '/' || (SELECT count(*) FROM udaconnect.location)
                          || '/' || (SELECT coalesce(sum(hashtext(id || ':' || ST_AsText(coordinate) || ':' || creation_time)), 0)
                                       FROM udaconnect.location)"
}
# each run must put back a seed row (the lowest id: the seed keeps its ids,
# later rows come after them) removed from $DB first, so a load into
# another database (or none) cannot pass
drop_one() { "${PSQL[@]}" -c "DELETE FROM udaconnect.location WHERE id = (SELECT min(id) FROM udaconnect.location)"; }
before=$(counts)

# the seed's places (sql/seed/places.sql): every row, and which place a
# sample point belongs to (a booth inside the hall: the smallest wins); each
# load must put back a place removed first and change no other
places() {
  "${PSQL[@]}" -c "SELECT count(*) || '/' || coalesce(sum(hashtext(id || ':' || name || ':' || kind || ':'
                          || coalesce(floor::text, '-') || ':' || ST_AsText(area))), 0)
                     FROM udaconnect.place"
}
seed_places() {
  "${PSQL[@]}" -c "SELECT string_agg(id || ' ' || name || ' ' || kind, ', ' ORDER BY id)
                          || '; at point 29: ' || coalesce(udaconnect.place_at(37.553441, -122.290524)::text, 'none')
                          || ', point 30: ' || coalesce(udaconnect.place_at(37.55363, -122.290883)::text, 'none')
                          || ', point 42: ' || coalesce(udaconnect.place_at(35.0585136, -106.5719566)::text, 'none')
                     FROM udaconnect.place WHERE id BETWEEN 1 AND 4" 2>&1
}
want_places="1 Main hall room, 2 Booth 1 booth, 3 Booth 2 booth, 4 Main stage stage; at point 29: 2, point 30: 3, point 42: 4"
drop_place() { "${PSQL[@]}" -c "DELETE FROM udaconnect.place WHERE id = 2"; }
n=$((n + 1))
got=$(seed_places)
if [ "$got" = "$want_places" ]; then
  echo "ok $n - seed places loaded: $got"
else
  echo "not ok $n - seed places: '$got', want '$want_places'"
fi
# the sample data's encounters, made as the seed loads (places first, so
# they are placed): the seed's densest spot, point 30, is Booth 2 (its
# persons are also, at the same times, in Albuquerque: encounters chain by
# time, so one of them is placed on the Main stage)
n=$((n + 1))
got=$("${PSQL[@]}" -c "SELECT count(*) || ' encounters, ' || count(place_id) || ' placed; at point 30: '
                             || coalesce((SELECT string_agg(DISTINCT p.name, ', ') FROM udaconnect.encounter x
                                          JOIN udaconnect.place p ON p.id = x.place_id
                                         WHERE x.latitude = 37.55363 AND x.longitude = -122.290883), 'none')
                        FROM udaconnect.encounter" 2>&1)
case "$got" in
  "0 encounters"*|*" 0 placed"*|*"none") echo "not ok $n - the seed's encounters: $got";;
  *"at point 30: "*"Booth 2"*) echo "ok $n - the seed made its encounters, placed: $got";;
  *) echo "not ok $n - the seed's encounters: $got";;
esac
pbefore=$(places)
n=$((n + 1))
drop_one
drop_place
out=$(sh "$TOP/scripts/run_db_command.sh" 2>&1); rc=$?
after=$(counts)
if [ $rc = 0 ] && [ -n "$before" ] && [ "$before" = "$after" ] && ! printf '%s' "$out" | grep -qi "illegal option"; then
  echo "ok $n - sh scripts/run_db_command.sh (dash) puts back a removed seed row and changes nothing else ($after)"
else
  echo "not ok $n - sh scripts/run_db_command.sh: exit $rc, $before -> $after"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
n=$((n + 1))
pafter=$(places)
got=$(seed_places)
if [ $rc = 0 ] && [ -n "$pbefore" ] && [ "$pbefore" = "$pafter" ] && [ "$got" = "$want_places" ]; then
  echo "ok $n - the load puts back a removed seed place and changes no place ($pafter)"
else
  echo "not ok $n - places after the load: $pbefore -> $pafter; $got"
fi
mkdir -p "$SUITE_DIR/bin"
cat > "$SUITE_DIR/bin/kubectl" <<'EOF2'
#!/bin/sh
# stand-in for: kubectl -n NS exec -i POD -- psql ...
if [ "$1" != -n ] || [ "$2" != udaconnect ] || [ "$3" != exec ] || [ "$4" != -i ] || [ "$5" != postgres-0 ] || [ "$6" != -- ]; then
  echo "kubectl stand-in: unexpected arguments: $*" >&2
  exit 2
fi
shift 6
echo "$*" > "$SUITE_DIR/kubectl.args"
exec "$@"
EOF2
chmod +x "$SUITE_DIR/bin/kubectl"
rm -f "$SUITE_DIR/kubectl.args"
n=$((n + 1))
drop_one
drop_place
out=$(PATH="$SUITE_DIR/bin:$PATH" SUITE_DIR="$SUITE_DIR" sh "$TOP/scripts/run_db_command.sh" postgres-0 2>&1); rc=$?
after=$(counts)
if [ $rc = 0 ] && [ -n "$before" ] && [ "$before" = "$after" ] && grep -q "^psql .*-d geoconnections" "$SUITE_DIR/kubectl.args" 2>/dev/null; then
  echo "ok $n - sh scripts/run_db_command.sh POD feeds the seed to psql in the pod (kubectl exec): the removed row is back, nothing else changed"
else
  echo "not ok $n - sh scripts/run_db_command.sh postgres-0: exit $rc, $before -> $after"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
n=$((n + 1))
pafter=$(places)
got=$(seed_places)
if [ $rc = 0 ] && [ -n "$pbefore" ] && [ "$pbefore" = "$pafter" ] && [ "$got" = "$want_places" ]; then
  echo "ok $n - a second load (POD) again puts back the removed seed place and changes no place ($pafter)"
else
  echo "not ok $n - places after the second load: $pbefore -> $pafter; $got"
fi
exit 0
