#!/usr/bin/env bash
# 25-extension: the extension as a PostgreSQL user meets it.
#  1. On a stock server (no shared_preload_libraries: pg_regress's temporary
#     instance) CREATE EXTENSION works and so does the whole SQL API (the
#     pg_regress files of 20-regress), while the ingest says it is off
#     (ingest_off).
#  2. An installed 1.0 holding data is updated with ALTER EXTENSION ... UPDATE:
#     every row and every finder answer is kept, and the result is the same
#     extension as a fresh install of the current version.
#  3. The location -> person reference holds as a foreign key would, at every
#     isolation level, in a fresh and in an updated database.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-pg_config}
BINDIR=$($PG_CONFIG --bindir)
PGXS_DIR=$(dirname "$($PG_CONFIG --pgxs)")
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TOP/pg_udaconnect/pg_udaconnect.control")
n=0
rc=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; rc=1; }

# --- 1. no preload ----------------------------------------------------------
REGRESS=$(sed -n 's/^REGRESS *= *//p' "$TOP/pg_udaconnect/Makefile")
"$PGXS_DIR/../test/regress/pg_regress" \
  --temp-instance="$SUITE_DIR/tmp_instance" --outputdir="$SUITE_DIR/nopreload" \
  --inputdir="$TOP/test" --bindir="$BINDIR" --dbname=udaconnect_regress \
  --load-extension=postgis --load-extension=pg_udaconnect \
  $REGRESS ingest_off > "$SUITE_DIR/nopreload.out" 2>&1
sed 's/^/# /' "$SUITE_DIR/nopreload.out"
while read -r name result; do
  if [ "$result" = ok ]; then ok "no preload: pg_regress $name"; else fail "no preload: pg_regress $name"; fi
done < <(sed -nE 's/^(test )?[ ]*([a-z0-9_]+)[ ]+\.\.\. (ok|FAILED).*/\2 \3/p' "$SUITE_DIR/nopreload.out")
if [ -f "$SUITE_DIR/nopreload/regression.diffs" ]; then
  sed 's/^/# /' "$SUITE_DIR/nopreload/regression.diffs" | head -100
fi
grep -q "ingest_off .* ok" "$SUITE_DIR/nopreload.out" || fail "no preload: pg_regress did not run ingest_off"

# --- 2. update from 1.0 with data -------------------------------------------
OLD=udaconnect_update_from_1_0
NEW=udaconnect_fresh_install
for db in $OLD $NEW; do
  dropdb --if-exists "$db" 2>/dev/null
  createdb "$db"
done
"${PSQL[@]}" -d $OLD -c "CREATE EXTENSION postgis; CREATE EXTENSION pg_udaconnect VERSION '1.0'"
"${PSQL[@]}" -d $NEW -c "CREATE EXTENSION pg_udaconnect CASCADE"
if [ "$("${PSQL[@]}" -d $OLD -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'")" = 1.0 ]; then
  ok "version 1.0 installs from its shipped script"
else
  fail "version 1.0 installs from its shipped script"
fi
# data: the original's seed, a synthetic crowd, ingest bookkeeping
PGDATABASE=$OLD sh "$TOP/scripts/run_db_command.sh" >/dev/null
"${PSQL[@]}" -d $OLD >/dev/null <<'SQL'
SELECT udaconnect.create_person('Crowd', 'Member ' || i, 'Upgrade Test') FROM generate_series(1, 20) i;
SELECT udaconnect.record_location(p.id, 37.5536 + (random() - 0.5) * 1e-4, -122.2909 + (random() - 0.5) * 1e-4,
                                  '2020-08-18 10:00Z'::timestamptz + i * interval '17 seconds')
  FROM udaconnect.person p, generate_series(1, 100) i WHERE p.company_name = 'Upgrade Test';
INSERT INTO udaconnect.ingest_offset (topic, "partition", next_offset, rows_ingested, rejects, last_batch_at)
VALUES ('locations', 0, 1234, 1200, 34, '2020-08-18 10:00Z'), ('locations', 1, 99, 99, 0, NULL);
INSERT INTO udaconnect.ingest_rejects (topic, "partition", "offset", key, payload, reason)
VALUES ('locations', 0, 7, '1', '\x0a0b', 'undecodable payload: 2 bytes');
SELECT udaconnect.ingest_pause();
SQL
state_sql="
SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
  SELECT 'p' || row(p.*)::text AS t FROM udaconnect.person p
  UNION ALL SELECT 'l' || row(l.*)::text FROM udaconnect.location l
  UNION ALL SELECT 'o' || row(o.*)::text FROM udaconnect.ingest_offset o
  UNION ALL SELECT 'r' || row(r.id, r.topic, r.\"partition\", r.\"offset\", r.key, r.payload, r.reason)::text FROM udaconnect.ingest_rejects r
  UNION ALL SELECT 'c' || row(c.paused)::text FROM udaconnect.ingest_control c
  UNION ALL SELECT 'f' || p.id || row(f.*)::text
              FROM udaconnect.person p, udaconnect.find_connections(p.id, '2020-01-01', '2020-12-31', 5, '60 seconds') f
  UNION ALL SELECT 'n' || p.id || ':' || count(*) FROM udaconnect.person p,
                   udaconnect.connected_persons(p.id, '2020-01-01', '2020-12-31', 10) c GROUP BY p.id) s"
counts_sql="SELECT (SELECT count(*) FROM udaconnect.person) || ' persons, ' || (SELECT count(*) FROM udaconnect.location) || ' locations'"
before=$("${PSQL[@]}" -d $OLD -c "$state_sql")
counts=$("${PSQL[@]}" -d $OLD -c "$counts_sql")
maxid=$("${PSQL[@]}" -d $OLD -c "SELECT max(id) FROM udaconnect.location")
if out=$("${PSQL[@]}" -d $OLD -c "ALTER EXTENSION pg_udaconnect UPDATE" 2>&1); then
  ok "ALTER EXTENSION pg_udaconnect UPDATE from 1.0 with data ($counts)"
else
  fail "ALTER EXTENSION pg_udaconnect UPDATE from 1.0"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
got=$("${PSQL[@]}" -d $OLD -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'")
[ "$got" = "$CURRENT" ] && ok "the updated database is at version $CURRENT" || fail "updated database is at version $got, not $CURRENT"
after=$("${PSQL[@]}" -d $OLD -c "$state_sql")
[ -n "$before" ] && [ "$before" = "$after" ] \
  && ok "every row, the pause switch and every finder answer are kept by the update" \
  || fail "rows or finder answers changed by the update ($before -> $after)"
"${PSQL[@]}" -d $OLD -f "$TOP/test/extension/schema_fingerprint.sql" > "$SUITE_DIR/schema-updated.txt"
"${PSQL[@]}" -d $NEW -f "$TOP/test/extension/schema_fingerprint.sql" > "$SUITE_DIR/schema-fresh.txt"
if [ -s "$SUITE_DIR/schema-fresh.txt" ] && diff "$SUITE_DIR/schema-fresh.txt" "$SUITE_DIR/schema-updated.txt" > "$SUITE_DIR/schema.diff"; then
  ok "the updated extension is the same as a fresh install ($(wc -l < "$SUITE_DIR/schema-fresh.txt") objects: functions, ACLs, tables, indexes, triggers, views)"
else
  fail "the updated extension differs from a fresh install"; sed 's/^/#   /' "$SUITE_DIR/schema.diff" | head -40
fi
pid=$("${PSQL[@]}" -d $OLD -c "SELECT min(id) FROM udaconnect.person")
newid=$("${PSQL[@]}" -d $OLD -c "SELECT id FROM udaconnect.record_location($pid, 1, 1, now())")
[ "${newid:-0}" -gt "${maxid:-0}" ] 2>/dev/null \
  && ok "after the update new locations continue the id sequence ($newid > $maxid)" \
  || fail "after the update a new location got id $newid (max before $maxid)"
out=$("${PSQL[@]}" -d $OLD -c "SELECT udaconnect.record_location($pid, 1, 1, now() + interval '1 day')" 2>&1)
printf '%s' "$out" | grep -q "creation_time is .* s in the future" \
  && ok "after the update record_location applies the future-skew rule" \
  || { fail "after the update record_location accepted a time a day ahead"; printf '%s\n' "$out" | sed 's/^/#   /'; }

# --- 3. the person reference, fresh and updated ----------------------------------
for db in $NEW $OLD; do
  python3 "$TOP/test/extension/person_reference.py" "dbname=$db" $((n + 1)) > "$SUITE_DIR/reference-$db.tap" 2>&1 || rc=1
  sed "s/^\(\(not \)\?ok [0-9]* - \)/\1$db: /" "$SUITE_DIR/reference-$db.tap"
  n=$((n + $(grep -cE '^(not )?ok [0-9]+' "$SUITE_DIR/reference-$db.tap")))
done

for db in $OLD $NEW; do dropdb --if-exists "$db" 2>/dev/null; done
exit $rc
