#!/usr/bin/env bash
# places-refresh: what applying a changed place to the stored encounters
# costs (issue 15; sql/src/55-place-changes.sql, docs/encounters.md
# "Places"), on the dense conference of finder/gen-dense.sql (2,000
# attendees crowding around 200 booths 10 m apart in a 200 m x 200 m hall,
# a report every ~2 min; thousands of matches a person-day).  Run by hand
# (not part of `make bench`: no baseline to compare with):
#
#   . .run/check/env   # or any libpq environment of a 1.6 server
#   test/bench/places-refresh.sh
#
# The locations are inserted in time order in batches of a minute, with
# the encounter maintenance, into database bench_places; then, one after
# the other: a booth drawn after the fact (a circle of 3 m at a booth's
# centre), the same booth moved by 2 m, a room of 30 m x 20 m around three
# booths, the whole
# hall (queued as tiles of at most 50 m).  Each change is worked off as the
# maintenance worker does it, places_refresh(1) a transaction until the
# queue is empty, and timed in the server: the chunks, the encounters
# placed anew, the total, and the longest chunk (the encounter lock is
# held for a chunk: the longest the ingest can wait).  The table is then
# compared with encounters_rebuild('-infinity', 'infinity'), whose time is
# printed too.  Sizes: UDACONNECT_BENCH_QUICK=1 (200 attendees, 20 booths),
# UDACONNECT_BENCH_DENSE_DAYS (1).  UDACONNECT_BENCH_KEEP=1 keeps the
# database.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
F=$TOP/test/bench/finder
DB=bench_places
DAYS=${UDACONNECT_BENCH_DENSE_DAYS:-1}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  persons=200; booths=20
else
  persons=2000; booths=200
fi
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -d $DB "$@"; }
die() { echo "places-refresh: $*" >&2; exit 1; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
. "$TOP/test/bench/lib/table.sh"

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || die "cannot create $DB"
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_udaconnect CASCADE" || die "CREATE EXTENSION failed"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
q -v persons=$persons -v booths=$booths -v days="$DAYS" -v reports=270 -v first_person=1 -f "$F/gen-dense.sql" >/dev/null ||
  die "gen-dense.sql failed"
q -c "SELECT udaconnect.location_partitions_ensure(min(creation_time), max(creation_time)) FROM bench.src" >/dev/null
t0=$(date +%s.%N)
# a minute of reports a statement, in time order, as the ingest commits them
q -c "CREATE INDEX ON bench.src (creation_time)" -c "ANALYZE bench.src" || die "index failed"
q <<'SQL' >/dev/null || die "load failed"
CREATE PROCEDURE bench.load() LANGUAGE plpgsql AS $$
DECLARE t timestamptz := (SELECT date_trunc('minute', min(creation_time)) FROM bench.src);
        last timestamptz := (SELECT max(creation_time) FROM bench.src);
BEGIN
    WHILE t <= last LOOP
        INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
        SELECT person_id, coordinate, creation_time FROM bench.src
         WHERE creation_time >= t AND creation_time < t + interval '1 minute';
        COMMIT;
        t := t + interval '1 minute';
    END LOOP;
END $$;
CALL bench.load();
SQL
q -c "VACUUM ANALYZE udaconnect.location" -c "VACUUM ANALYZE udaconnect.encounter" >/dev/null
read -r nloc nenc nmatch < <(q -F ' ' -c "SELECT (SELECT count(*) FROM udaconnect.location), count(*), sum(matches) FROM udaconnect.encounter")
echo "loaded $nloc locations with their encounters in $(since "$t0") s: $nenc encounters, $nmatch matches"

# the hall's frame: booth b's centre is ((b % 20) * 10 m east, (b / 20) * 20 m north) of it
q <<'SQL' >/dev/null
CREATE FUNCTION bench.lat(n float8) RETURNS float8 LANGUAGE sql AS $$ SELECT 36.1318 + n / 111320.0 $$;
CREATE FUNCTION bench.lon(e float8) RETURNS float8 LANGUAGE sql AS $$ SELECT -115.1516 + e / (111320.0 * cos(radians(36.1318))) $$;
CREATE TABLE bench.chunk (change text, n integer, ms float8, encounters bigint, seq serial);
SQL

# work the queue off as the worker does: places_refresh(1) a transaction,
# in one session, timed in the server
q <<'SQL' >/dev/null || die "bench.work_off failed"
CREATE PROCEDURE bench.work_off(change text) LANGUAGE plpgsql AS $$
DECLARE
    r record;
    t0 timestamptz;
    k integer := 0;
    areas bigint := (SELECT count(*) FROM udaconnect.place_change);
BEGIN
    change := format('%s (%s area%s)', change, areas, CASE WHEN areas > 1 THEN 's' ELSE '' END);
    LOOP
        k := k + 1;
        t0 := clock_timestamp();
        SELECT * INTO r FROM udaconnect.places_refresh(1);
        INSERT INTO bench.chunk VALUES (change, k, extract(epoch FROM clock_timestamp() - t0) * 1000, r.encounters);
        COMMIT;
        EXIT WHEN r.remaining = 0;
    END LOOP;
END $$;
SQL
work_off() { q -c "CALL bench.work_off('$1')" >/dev/null || die "places_refresh failed"; }
q -c "SELECT udaconnect.create_place_circle('Booth 17', 'booth', bench.lat(0), bench.lon(170), 3)" >/dev/null
work_off "booth drawn (3 m circle)"
q -c "UPDATE udaconnect.place SET area = ST_Translate(area, bench.lon(2) - bench.lon(0), 0) WHERE name = 'Booth 17'" >/dev/null
work_off "booth moved by 2 m"
q -c "SELECT udaconnect.create_place('Room', 'room', ST_MakeEnvelope(bench.lon(45), bench.lat(-10), bench.lon(75), bench.lat(10), 4326))" >/dev/null
work_off "room of 30 m x 20 m drawn"
q -c "SELECT udaconnect.create_place('Hall', 'room', ST_MakeEnvelope(bench.lon(-5), bench.lat(-5), bench.lon(195), bench.lat(185), 4326))" >/dev/null
work_off "whole hall drawn (200 m x 190 m)"

TABLE=$(q -F '|' -c "
  SELECT change, count(*), sum(encounters), round(sum(ms)::numeric / 1000, 2), round(max(ms)::numeric, 1),
         round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1)
    FROM bench.chunk GROUP BY change ORDER BY min(seq)")
t0=$(date +%s.%N)
q -c "CREATE TABLE bench.kept AS SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                                        place_ids, place_matches, latitude, longitude, closest_a, closest_b
                                   FROM udaconnect.encounter" \
  -c "SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')" >/dev/null
trebuild=$(since "$t0")
differ=$(q -c "SELECT count(*) FROM (SELECT * FROM bench.kept EXCEPT ALL
                                     SELECT person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id,
                                            place_ids, place_matches, latitude, longitude, closest_a, closest_b
                                       FROM udaconnect.encounter) d")
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
[ "${UDACONNECT_BENCH_KEEP:-0}" = 1 ] || "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB"
echo
echo "Each change worked off by places_refresh(1), a transaction a chunk ($nloc locations, $nenc encounters):"
{ echo "change|chunks|encounters placed anew|total s|longest chunk ms|median chunk ms"; echo "$TABLE"; } | fmt_table
echo "For comparison, encounters_rebuild('-infinity', 'infinity'): $trebuild s (one transaction, the encounter lock held throughout)"
echo "Rows that differ between the refreshed table and the rebuild: $differ"
