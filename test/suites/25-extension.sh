#!/usr/bin/env bash
# 25-extension: the extension as a PostgreSQL user meets it.
#  1. On a stock server (no shared_preload_libraries: pg_regress's temporary
#     instance) CREATE EXTENSION works and so does the whole SQL API (the
#     pg_regress files of 20-regress), while the ingest says it is off
#     (ingest_off).
#  2. An installed 1.0 (through the chain of update scripts), 1.1, 1.2, 1.3 and 1.4,
#     each holding data, are updated with ALTER EXTENSION ... UPDATE:
#     every row and every finder answer is kept, new columns get their values
#     (erased_dropped 0, ingest_rejects.person_id from the stored payloads),
#     the result is the same extension as a fresh install of the current
#     version, the encounters of the old data are built (equal to a rebuild
#     and to a self-join's close pairs), and the new API works on the old
#     data (callers, erasure, encounters).
#     The updated 1.4 database (partitioned by the update) is dumped with
#     pg_dump and restored into a new database: partitions, rows, answers
#     and the encounter clock come back.
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

# --- 2. update from 1.0 (the chain), 1.1, 1.2, 1.3 and 1.4 with data -------
NEW=udaconnect_fresh_install
dropdb --if-exists "$NEW" 2>/dev/null
createdb "$NEW"
"${PSQL[@]}" -d $NEW -c "CREATE EXTENSION pg_udaconnect CASCADE"
"${PSQL[@]}" -d $NEW -f "$TOP/test/extension/schema_fingerprint.sql" > "$SUITE_DIR/schema-fresh.txt"
# Only the columns every version has: new columns are checked on their own.
state_sql="
SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
  SELECT 'p' || row(p.*)::text AS t FROM udaconnect.person p
  UNION ALL SELECT 'l' || row(l.*)::text FROM udaconnect.location l
  UNION ALL SELECT 'o' || row(o.topic, o.\"partition\", o.next_offset, o.rows_ingested, o.rejects, o.last_batch_at)::text
              FROM udaconnect.ingest_offset o
  UNION ALL SELECT 'r' || row(r.id, r.topic, r.\"partition\", r.\"offset\", r.key, r.payload, r.reason, r.received_at)::text
              FROM udaconnect.ingest_rejects r
  UNION ALL SELECT 'c' || row(c.paused)::text FROM udaconnect.ingest_control c
  UNION ALL SELECT 'f' || p.id || row(f.*)::text
              FROM udaconnect.person p, udaconnect.find_connections(p.id, '2020-01-01', '2020-12-31', 5, '60 seconds') f
  UNION ALL SELECT 'n' || p.id || ':' || count(*) FROM udaconnect.person p,
                   udaconnect.connected_persons(p.id, '2020-01-01', '2020-12-31', 10) c GROUP BY p.id) s"
counts_sql="SELECT (SELECT count(*) FROM udaconnect.person) || ' persons, ' || (SELECT count(*) FROM udaconnect.location) || ' locations, ' || (SELECT count(*) FROM udaconnect.ingest_rejects) || ' rejects'"
# the person of the payloads below: the seed's first person with locations
# (a 1- or 2-byte varint in field 1 of the Kafka message, as the ingest reads it)
PAYLOAD_PERSON_SQL="SELECT min(person_id) FROM udaconnect.location"
VARINT_SQL="CASE WHEN \$1 < 128 THEN set_byte('\\x0800'::bytea, 1, \$1)
                 ELSE set_byte(set_byte('\\x080000'::bytea, 1, (\$1 & 127) | 128), 2, \$1 >> 7) END"

q() { "${PSQL[@]}" -d "$1" -c "$2" 2>&1; }

# The update builds the encounters of the stored locations: their matches
# are the close pairs an independent self-join counts, and the table is what
# a rebuild makes; a new location then extends them (the trigger works).
ENC_ROWS="SELECT md5(string_agg(row(person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                                   place_ids, place_matches, latitude, longitude, closest_a, closest_b)::text, '|'
                               ORDER BY person_a, person_b, started_at)) FROM udaconnect.encounter"
check_encounters_after_update() {
  local got want rows rebuilt
  got=$(q $db "SELECT count(*) || ' encounters, ' || coalesce(sum(matches), 0) || ' matches' FROM udaconnect.encounter")
  want=$(q $db "SELECT count(*) FROM udaconnect.location a JOIN udaconnect.location b
                   ON a.person_id < b.person_id AND abs(extract(epoch FROM a.creation_time - b.creation_time)) <= 60
                  AND udaconnect.geodesic_distance(ST_Y(a.coordinate), ST_X(a.coordinate), ST_Y(b.coordinate), ST_X(b.coordinate)) <= 5")
  case "$got" in
    *" encounters, $want matches") [ "$want" -gt 0 ] && ok "$from: the update built the encounters of the stored locations ($got = the close pairs of a self-join)" \
      || fail "$from: the data has no close pairs ($got)";;
    *) fail "$from: after the update: $got; a self-join counts $want close pairs";;
  esac
  # the readers' bound (1.7): the clock's longest span covers every stored one
  got=$(q $db "SELECT c.longest_us || ' ' || coalesce((SELECT max((extract(epoch FROM e.ended_at - e.started_at) * 1000000)::bigint)
                                                        FROM udaconnect.encounter e), 0)
                 FROM udaconnect.encounter_clock c")
  [ -n "$got" ] && [ "${got%% *}" -ge "${got##* }" ] 2>/dev/null && [ "${got##* }" -gt 0 ] \
    && ok "$from: encounter_clock.longest_us covers the longest stored encounter ($got)" \
    || fail "$from: encounter_clock.longest_us against the longest stored encounter: '$got'"
  rows=$(q $db "$ENC_ROWS")
  q $db "SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')" >/dev/null
  rebuilt=$(q $db "$ENC_ROWS")
  [ -n "$rows" ] && [ "$rows" = "$rebuilt" ] && ok "$from: the encounters built by the update equal a rebuild, row for row" \
    || fail "$from: the encounters built by the update differ from a rebuild"
  got=$(q $db "SELECT coalesce(sum(matches), 0) FROM udaconnect.encounter")
  q $db "SELECT udaconnect.record_location($pid, ST_Y(p.coordinate), ST_X(p.coordinate), p.creation_time)
           FROM (SELECT coordinate, creation_time FROM udaconnect.location
                  WHERE person_id <> $pid ORDER BY creation_time DESC, id LIMIT 1) p" >/dev/null
  want=$(q $db "SELECT coalesce(sum(matches), 0) FROM udaconnect.encounter")
  [ "$want" -gt "$got" ] 2>/dev/null && ok "$from: after the update a new location adds its matches ($got -> $want)" \
    || fail "$from: after the update a new location added no match ($got -> $want)"
}

# Places changed under the old version (from 1.2, which has places): a booth
# where the crowd stands before its locations come (from 1.3 its encounters
# are placed there), moved 1 km away after them, and a new one among the
# crowd after them: the stored encounters are placed as the places were.
PLACES_BEFORE=
PLACES_AFTER=
places_for() {
  case "$1" in
    1.0|1.1) PLACES_BEFORE=; PLACES_AFTER=;;
    *) PLACES_BEFORE="SELECT udaconnect.create_place_circle('Old booth', 'booth', 37.5536, -122.2909, 4);"
       PLACES_AFTER="UPDATE udaconnect.place SET area = ST_Translate(area, 0.01, 0) WHERE name = 'Old booth';
SELECT udaconnect.create_place_circle('New booth', 'booth', 37.5536, -122.2909, 2);";;
  esac
}

update_from() {
  local from=$1 db=udaconnect_update_from_${1/./_}
  local before counts maxid after got out pid rejects_after locs placed at_sql
  places_for "$from"
  dropdb --if-exists "$db" 2>/dev/null
  createdb "$db"
  UPDATED_DBS="$UPDATED_DBS $db"
  "${PSQL[@]}" -d $db -c "CREATE EXTENSION postgis; CREATE EXTENSION pg_udaconnect VERSION '$from'"
  if [ "$(q $db "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'")" = "$from" ]; then
    ok "$from: installs from its shipped script"
  else
    fail "$from: installs from its shipped script"
  fi
  # data: the original's seed, a synthetic crowd, ingest bookkeeping with
  # rejects whose payloads name a person, a missing person, nobody
  PGDATABASE=$db sh "$TOP/scripts/run_db_command.sh" >/dev/null
  pid=$(q $db "$PAYLOAD_PERSON_SQL")
  "${PSQL[@]}" -d $db >/dev/null <<SQL
CREATE FUNCTION pg_temp.varint_payload(integer) RETURNS bytea LANGUAGE sql AS \$\$ SELECT $VARINT_SQL \$\$;
SELECT udaconnect.create_person('Crowd', 'Member ' || i, 'Upgrade Test') FROM generate_series(1, 20) i;
$PLACES_BEFORE
SELECT udaconnect.record_location(p.id, 37.5536 + (random() - 0.5) * 1e-4, -122.2909 + (random() - 0.5) * 1e-4,
                                  '2020-08-18 10:00Z'::timestamptz + i * interval '17 seconds')
  FROM udaconnect.person p, generate_series(1, 100) i WHERE p.company_name = 'Upgrade Test';
SELECT udaconnect.record_location((udaconnect.create_person('Far', 'Away', 'Upgrade Test')).id, 0, 0, '2020-08-18 10:00Z');
INSERT INTO udaconnect.ingest_offset (topic, "partition", next_offset, rows_ingested, rejects, last_batch_at)
VALUES ('locations', 0, 1234, 1200, 34, '2020-08-18 10:00Z'), ('locations', 1, 99, 99, 0, NULL);
INSERT INTO udaconnect.ingest_rejects (topic, "partition", "offset", key, payload, reason, received_at)
VALUES ('locations', 0, 7, '1', '\x0a0b', 'undecodable payload: 2 bytes', '2020-08-18 10:00Z'),
       ('locations', 0, 8, '$pid', pg_temp.varint_payload($pid), 'creation_time is missing', '2020-08-18 10:01Z'),
       ('locations', 0, 9, '5000', pg_temp.varint_payload(5000), 'person 5000 does not exist', '2020-08-18 10:02Z'),
       ('locations', 0, 10, NULL, NULL, 'empty message', '2020-08-18 10:03Z'),
       ('locations', 0, 11, '0', '\x0800', 'person_id is missing', '2020-08-18 10:04Z');
SELECT udaconnect.ingest_pause();
$PLACES_AFTER
SQL
  # from 1.2 on the ingest fills person_id itself, as it decodes
  if [ "$from" != 1.0 ] && [ "$from" != 1.1 ]; then
    q $db "UPDATE udaconnect.ingest_rejects SET person_id = udaconnect.ingest_payload_person(payload) WHERE payload IS NOT NULL" >/dev/null
  fi
  before=$(q $db "$state_sql")
  counts=$(q $db "$counts_sql")
  # from 1.3 on encounters() exists: every person's answer is kept
  enc_sql="SELECT md5(string_agg(row(e.*)::text, '|' ORDER BY p.id, e.ord)) FROM udaconnect.person p,
             udaconnect.encounters(p.id, '-infinity', 'infinity') WITH ORDINALITY e(id, o, s, x, d, m, dm, pl, pn, la, lo, v, ord)"
  enc_before=
  [ "$from" = 1.0 ] || [ "$from" = 1.1 ] || [ "$from" = 1.2 ] || enc_before=$(q $db "$enc_sql")
  maxid=$(q $db "SELECT max(id) FROM udaconnect.location")
  if out=$(q $db "ALTER EXTENSION pg_udaconnect UPDATE"); then
    ok "$from: ALTER EXTENSION pg_udaconnect UPDATE with data ($counts)"
  else
    fail "$from: ALTER EXTENSION pg_udaconnect UPDATE"; printf '%s\n' "$out" | sed 's/^/#   /'
  fi
  got=$(q $db "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'")
  [ "$got" = "$CURRENT" ] && ok "$from: the updated database is at version $CURRENT" \
    || fail "$from: updated database is at version $got, not $CURRENT"
  after=$(q $db "$state_sql")
  [ -n "$before" ] && [ "$before" = "$after" ] \
    && ok "$from: every row (the columns it had), the pause switch and every finder answer are kept by the update" \
    || fail "$from: rows or finder answers changed by the update ($before -> $after)"
  if [ -n "$enc_before" ]; then
    got=$(q $db "$enc_sql")
    [ "$got" = "$enc_before" ] && ok "$from: every person's encounters() answer is kept by the update" \
      || fail "$from: encounters() answers changed by the update ($enc_before -> $got)"
  fi
  got=$(q $db "SELECT string_agg(\"partition\" || ':' || erased_dropped, ' ' ORDER BY \"partition\") FROM udaconnect.ingest_offset")
  [ "$got" = "0:0 1:0" ] && ok "$from: ingest_offset.erased_dropped is 0 for the partitions it had" \
    || fail "$from: ingest_offset.erased_dropped after the update: $got"
  got=$(q $db "SELECT string_agg(\"offset\" || ':' || coalesce(person_id::text, '-'), ' ' ORDER BY \"offset\") FROM udaconnect.ingest_rejects")
  [ "$got" = "7:- 8:$pid 9:5000 10:- 11:-" ] \
    && ok "$from: ingest_rejects.person_id filled from the stored payloads ($got)" \
    || fail "$from: ingest_rejects.person_id after the update: '$got', not '7:- 8:$pid 9:5000 10:- 11:-'"
  "${PSQL[@]}" -d $db -f "$TOP/test/extension/schema_fingerprint.sql" > "$SUITE_DIR/schema-updated-$from.txt"
  if [ -s "$SUITE_DIR/schema-fresh.txt" ] && diff "$SUITE_DIR/schema-fresh.txt" "$SUITE_DIR/schema-updated-$from.txt" > "$SUITE_DIR/schema-$from.diff"; then
    ok "$from: the updated extension is the same as a fresh install ($(wc -l < "$SUITE_DIR/schema-fresh.txt") objects: functions, ACLs, tables, indexes, triggers, views)"
  else
    fail "$from: the updated extension differs from a fresh install"; sed 's/^/#   /' "$SUITE_DIR/schema-$from.diff" | head -40
  fi
  # the update queues the places' areas and the placed encounters' tiles;
  # worked off, every encounter is placed as the places are now (then equal
  # to a rebuild: check_encounters_after_update)
  got=$(q $db "SELECT count(*) FROM udaconnect.place_change")
  if [ -z "$PLACES_AFTER" ]; then
    [ "$got" = 0 ] && ok "$from: without places the update queues no place change" \
      || fail "$from: without places the update left $got rows in udaconnect.place_change"
  else
    [ "${got:-0}" -gt 0 ] 2>/dev/null && ok "$from: the update queues the areas of the places and of the placed encounters ($got)" \
      || fail "$from: the update queued no place change ($got)"
    # encounters with matches counted at the old booth / at the new one
    at_sql="SELECT (SELECT count(*) FROM udaconnect.encounter x, udaconnect.place p
                     WHERE p.name = 'Old booth' AND p.id = ANY (x.place_ids)) || ' ' ||
                   (SELECT count(*) FROM udaconnect.encounter x, udaconnect.place p
                     WHERE p.name = 'New booth' AND p.id = ANY (x.place_ids))"
    placed=$(q $db "$at_sql")
    case "$from" in
      1.2) ;;  # its encounters were built by the update, as the places were then
      *) [ "${placed%% *}" -gt 0 ] 2>/dev/null && [ "${placed##* }" = 0 ] \
           && ok "$from: before places_refresh() the encounters are placed as the places were (old booth, new booth: $placed)" \
           || fail "$from: before places_refresh() the encounters at the old and the new booth: $placed";;
    esac
    got=$(q $db "SELECT remaining FROM udaconnect.places_refresh()")
    placed=$(q $db "$at_sql")
    [ "$got" = 0 ] && [ "${placed%% *}" = 0 ] && [ "${placed##* }" -gt 0 ] 2>/dev/null \
      && ok "$from: places_refresh() works the queue off: no match at the booth moved away, some at the new one ($placed)" \
      || fail "$from: after places_refresh() $got areas are left; encounters at the old and the new booth: $placed"
  fi
  check_encounters_after_update
  got=$(q $db "SELECT id FROM udaconnect.record_location($pid, 1, 1, now())")
  [ "${got:-0}" -gt "${maxid:-0}" ] 2>/dev/null \
    && ok "$from: after the update new locations continue the id sequence ($got > $maxid)" \
    || fail "$from: after the update a new location got id $got (max before $maxid)"
  out=$(q $db "SELECT udaconnect.record_location($pid, 1, 1, now() + interval '1 day')")
  grep -q "creation_time is .* s in the future" <<< "$out" \
    && ok "$from: after the update record_location applies the future-skew rule" \
    || { fail "$from: after the update record_location accepted a time a day ahead"; printf '%s\n' "$out" | sed 's/^/#   /'; }
  # the api_* functions answer with callers on the updated data
  got=$(q $db "SELECT json_array_length(udaconnect.api_persons('organizer', NULL)) = (SELECT count(*) FROM udaconnect.person)
                  AND (SELECT a::jsonb->>'id' FROM udaconnect.api_person('attendee', $pid, $pid) a) = '$pid'
                  AND json_array_length(udaconnect.api_persons('attendee', $pid))
                      = 1 + (SELECT count(*) FROM udaconnect.met_persons($pid) m WHERE m <> $pid)
                  AND json_array_length(udaconnect.api_connections('attendee', $pid, $pid, '2020-01-01', '2020-12-31', 10, NULL, true))
                      = (SELECT count(DISTINCT f.person_id) FROM udaconnect.find_connections($pid, '2020-01-01', '2020-12-31', 10, '300 seconds') f)
                  AND (SELECT count(*) FROM udaconnect.api_find_connections('organizer', NULL, $pid, '2020-01-01', '2020-12-31', 5, 60))
                      = (SELECT count(*) FROM udaconnect.find_connections($pid, '2020-01-01', '2020-12-31', 5, '60 seconds'))")
  [ "$got" = t ] && ok "$from: after the update api_persons, api_person, api_connections, api_find_connections answer organizer and attendee $pid" \
    || { fail "$from: after the update the api_* answers are wrong"; printf '%s\n' "$got" | sed 's/^/#   /'; }
  out=$(q $db "SELECT udaconnect.api_person('attendee', $pid, p.id) FROM udaconnect.person p WHERE p.last_name = 'Away'")
  grep -q "attendee $pid may not see person" <<< "$out" \
    && ok "$from: after the update an attendee may not see a person they have not met (42501)" \
    || { fail "$from: after the update an attendee saw a person they have not met"; printf '%s\n' "$out" | sed 's/^/#   /'; }
  out=$(q $db "SELECT udaconnect.api_persons(NULL, NULL)")
  grep -q "unknown caller" <<< "$out" \
    && ok "$from: after the update an unknown caller gets 42501" \
    || { fail "$from: after the update an unknown caller got an answer"; printf '%s\n' "$out" | sed 's/^/#   /'; }
  # erasure on the updated data: the reject stored before person_id existed goes too
  locs=$(q $db "SELECT count(*) FROM udaconnect.location WHERE person_id = $pid")
  got=$(q $db "SELECT udaconnect.api_forget_person('organizer', NULL, $pid)::jsonb::text")
  [ "$got" = "{\"erased\": true, \"rejects\": 1, \"locations\": $locs}" ] \
    && ok "$from: after the update forget_person erases person $pid ($got)" \
    || fail "$from: after the update forget_person($pid) answered '$got' (expected $locs locations, 1 reject)"
  got=$(q $db "SELECT (SELECT count(*) FROM udaconnect.person WHERE id = $pid) || ' ' ||
                      (SELECT count(*) FROM udaconnect.location WHERE person_id = $pid) || ' ' ||
                      (SELECT string_agg(\"offset\"::text, ',' ORDER BY \"offset\") FROM udaconnect.ingest_rejects) || ' ' ||
                      (SELECT count(*) FROM udaconnect.erased_person WHERE id = $pid) || ' ' ||
                      (SELECT count(*) FROM udaconnect.erasure_audit WHERE requested_by = 'organizer')")
  [ "$got" = "0 0 7,9,10,11 1 1" ] \
    && ok "$from: person $pid, their locations and their reject are gone; the id is kept as erased; one audit row" \
    || fail "$from: after forget_person($pid): person/locations/rejects/erased/audit = '$got', not '0 0 7,9,10,11 1 1'"
  out=$(q $db "INSERT INTO udaconnect.person (id, first_name, last_name, company_name) VALUES ($pid, 'Re', 'Used', 'X')")
  grep -q "is not reused" <<< "$out" \
    && ok "$from: after the update the erased id $pid is not given again" \
    || { fail "$from: after the update the erased id $pid could be inserted"; printf '%s\n' "$out" | sed 's/^/#   /'; }
}

UPDATED_DBS=
update_from 1.0
update_from 1.1
update_from 1.2
update_from 1.3
update_from 1.4
update_from 1.5
update_from 1.6
update_from 1.7
update_from 1.8

# --- pg_dump and restore of the updated 1.4 database: the partitions, their
# rows, the configuration tables and the encounter clock come back -----------
dump_restore() {
  local src=udaconnect_update_from_1_4 dst=udaconnect_restored out got want parts_sql clock
  parts_sql="SELECT string_agg(c.relname || coalesce(' ' || p.from_time || ' ' || p.to_time, ' default'), ', ' ORDER BY c.relname)
               FROM udaconnect.location_partitions() p JOIN pg_class c ON c.oid = p.partition"
  dropdb --if-exists "$dst" 2>/dev/null
  createdb "$dst"
  # a booth drawn where the crowd met, not yet applied: its queued area is
  # in the dump (place_change is a configuration table)
  q $src "SELECT udaconnect.create_place_circle('Dumped booth', 'booth', 37.5536, -122.2909, 4)" >/dev/null
  queued_sql="SELECT string_agg(h, ',' ORDER BY h) FROM (SELECT md5(ST_AsEWKB(area)::text) AS h FROM udaconnect.place_change) x"
  local queued
  # what the restored queue must hold: the dumped rows, and every place
  # once more (the restore's COPY of place is an INSERT; it changes nothing)
  queued=$(q $src "SELECT string_agg(h, ',' ORDER BY h) FROM (
                     SELECT md5(ST_AsEWKB(area)::text) AS h FROM udaconnect.place_change
                     UNION ALL SELECT md5(ST_AsEWKB(a)::text) FROM udaconnect.place p,
                                      udaconnect.place_change_areas(p.area, NULL) a) x")
  if out=$("$BINDIR/pg_dump" -d "$src" -f "$SUITE_DIR/updated-1.4.dump.sql" 2>&1) &&
     out=$("${PSQL[@]}" -d "$dst" -f "$SUITE_DIR/updated-1.4.dump.sql" 2>&1); then
    ok "restore: pg_dump of the updated 1.4 database restores without an error"
  else
    fail "restore: pg_dump of the updated 1.4 database does not restore"; printf '%s\n' "$out" | head -20 | sed 's/^/#   /'
  fi
  want=$(q $src "$parts_sql")
  got=$(q $dst "$parts_sql")
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "restore: the same partitions with the same bounds ($(q $dst "SELECT count(*) FROM udaconnect.location_partitions()") partitions)" \
    || fail "restore: partitions '$got', not '$want'"
  # the pause switch is not dumped (ingest_control is not a configuration
  # table): a restored database's ingest runs; docs/upgrades.md says so
  local restore_sql=${state_sql/"UNION ALL SELECT 'c' || row(c.paused)::text FROM udaconnect.ingest_control c"/}
  want=$(q $src "$restore_sql")
  got=$(q $dst "$restore_sql")
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "restore: every row and every finder answer is the same" \
    || fail "restore: rows or finder answers differ ($want -> $got)"
  want=$(q $src "$enc_sql")
  got=$(q $dst "$enc_sql")
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "restore: every person's encounters() answer is the same" \
    || fail "restore: encounters() answers differ"
  want=$(q $src "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
                   WHERE d.deptype = 'e' AND c.relname LIKE 'location%'")
  got=$(q $dst "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
                  WHERE d.deptype = 'e' AND c.relname LIKE 'location%'")
  [ "$got" = "$want" ] && ok "restore: the same location tables belong to the extension ($got: location, location_default, the sequence)" \
    || fail "restore: $got location tables belong to the extension, not $want"
  clock=$(q $src "SELECT version FROM udaconnect.encounter_clock")
  got=$(q $dst "SELECT version FROM udaconnect.encounter_clock")
  [ -n "$clock" ] && [ "$got" = "$clock" ] && ok "restore: the encounter clock is restored at version $clock" \
    || fail "restore: the encounter clock is at '$got', not '$clock'"
  out=$(q $dst "SELECT udaconnect.record_location((SELECT id FROM udaconnect.person ORDER BY id LIMIT 1), 10, 20, now());
                SELECT udaconnect.record_location((SELECT id FROM udaconnect.person ORDER BY id OFFSET 1 LIMIT 1), 10, 20.00001, now());
                SELECT coalesce(max(version), 0) FROM udaconnect.encounter")
  got=$(printf '%s\n' "$out" | tail -1)
  [ "${got:-0}" -gt "${clock:-0}" ] 2>/dev/null && ok "restore: new locations go on with the restored clock (an encounter at version $got > $clock)" \
    || { fail "restore: after the restore the newest encounter version is '$got' (clock was $clock)"; printf '%s\n' "$out" | sed 's/^/#   /'; }
  # the queued place change comes back; worked off, the booth's encounters
  # are placed, equal to a rebuild
  got=$(q $dst "$queued_sql")
  [ -n "$got" ] && [ "$got" = "$queued" ] \
    && ok "restore: the queued place change is restored (udaconnect.place_change is a configuration table)" \
    || fail "restore: place_change holds '$got', not '$queued'"
  local rows rebuilt placed
  got=$(q $dst "SELECT remaining FROM udaconnect.places_refresh()")
  placed=$(q $dst "SELECT count(*) FROM udaconnect.encounter x JOIN udaconnect.place p ON p.id = x.place_id WHERE p.name = 'Dumped booth'")
  rows=$(q $dst "$ENC_ROWS")
  q $dst "SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')" >/dev/null
  rebuilt=$(q $dst "$ENC_ROWS")
  [ "$got" = 0 ] && [ "${placed:-0}" -gt 0 ] 2>/dev/null && [ -n "$rows" ] && [ "$rows" = "$rebuilt" ] \
    && ok "restore: places_refresh() works off the restored queue: $placed encounters at the booth, the table equal to a rebuild" \
    || fail "restore: after places_refresh() $got areas are left, $placed encounters at the booth, equal to a rebuild: $([ "$rows" = "$rebuilt" ] && echo yes || echo no)"
}
dump_restore

# --- 3. the person reference, fresh and updated ----------------------------------
for db in $NEW $UPDATED_DBS; do
  python3 "$TOP/test/extension/person_reference.py" "dbname=$db" $((n + 1)) > "$SUITE_DIR/reference-$db.tap" 2>&1 || rc=1
  sed "s/^\(\(not \)\?ok [0-9]* - \)/\1$db: /" "$SUITE_DIR/reference-$db.tap"
  n=$((n + $(grep -cE '^(not )?ok [0-9]+' "$SUITE_DIR/reference-$db.tap")))
done

for db in $UPDATED_DBS $NEW; do dropdb --if-exists "$db" 2>/dev/null; done
exit $rc
