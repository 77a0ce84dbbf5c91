#!/usr/bin/env bash
# 15-dense: the connection finder on a dense conference (issue 15, section
# Numbers; docs/benchmarks.md): find_connections(P, day, day, 5 m, 60 s)
# per person-day against the plain PostGIS self-join (ST_DWithin on
# geography and the 60 s window) on the same points, timed and checked as
# 10-finder.sh does (finder/measure.sql: in the server, planning included,
# each method in a block of its own after the day's pages are read and 3
# other attendees' queries; the same set of location ids per person).
#
# The data: finder/gen-dense.sql, 2,000 attendees crowding around 200
# booths of a 200 m x 200 m hall, each reporting every ~2 min from a phase
# of its own, one conference day in the table (09:00-18:00 UTC, 270 reports
# a person): a person-day has thousands of matches, where 10-finder.sh's
# conference has ~1,800.  Since the finder's work grows with the matches
# and the self-join's with the points near each of P's, this is where the
# finder's per-match cost shows (issue target: >= 50x the self-join).
# After the timing, the finder's own counters (DEBUG1: own points, probes,
# index scans, entries read, exact distances, hits) are printed for the
# first persons of the sample: what a person-day costs it, per hit.
#
# Sizes:  UDACONNECT_BENCH_QUICK=1   200 attendees, 20 booths (54,000 rows)
#         default                    2,000 attendees, 200 booths (540,000 rows)
#         UDACONNECT_BENCH_DENSE_DAYS=1  conference days in the table (the
#                                    measured day is the first; more days
#                                    make every GiST probe of the self-join
#                                    return more points, not the finder's)
#         UDACONNECT_BENCH_PERSONS=40, UDACONNECT_BENCH_WARMUP=3 (as 10-finder.sh)
#         UDACONNECT_BENCH_KEEP=1    keep database bench_dense afterwards
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
F=$TOP/test/bench/finder
BENCH_DIR=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$BENCH_DIR" || exit 1
DB=bench_dense
DAY=2025-06-11
REPORTS=270
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  persons=200; booths=20
else
  persons=2000; booths=200
fi
DAYS=${UDACONNECT_BENCH_DENSE_DAYS:-1}
NSAMPLE=${UDACONNECT_BENCH_PERSONS:-40}
NWARM=${UDACONNECT_BENCH_WARMUP:-3}
NSTATS=$(( NSAMPLE < 10 ? NSAMPLE : 10 ))
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)

die() { echo "15-dense: $*" >&2; exit 1; }
. "$TOP/test/bench/lib/table.sh"
. "$TOP/test/bench/lib/finder.sh"

rows=$((DAYS * REPORTS * persons))
echo "--- dense conference: $rows locations: $persons persons, $booths booths, $DAYS day(s) x $REPORTS reports (every ~120 s, phases of their own); measured day $DAY"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
finder_db_create || die "cannot create database $DB with pg_udaconnect and pg_prewarm"
t0=$(now)
q -v persons=$persons -v booths=$booths -v days="$DAYS" -v reports=$REPORTS -v first_person=1 -f "$F/gen-dense.sql" >/dev/null ||
  die "gen-dense.sql failed"
tgen=$(since "$t0")
t0=$(now)
q -c "INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
      SELECT person_id, coordinate, creation_time FROM bench.src" || die "load into udaconnect.location failed"
tours=$(since "$t0")
q -c "VACUUM ANALYZE udaconnect.location" -c "DROP TABLE bench.src" || die "VACUUM failed"
tpg=$(postgis_load) || die "load into bench.postgis failed"
q -c "CHECKPOINT"
printf 'generated in %.1f s; loaded in %.1f s (udaconnect.location) and %.1f s (PostGIS layout)\n' "$tgen" "$tours" "$tpg"

q -f "$F/measure.sql" >/dev/null || die "measure.sql failed"
first=$(q -c "SELECT bench.sample($NSAMPLE, $persons) LIMIT 1")
plan_of "$first" "$DAY" "'60 seconds'" "self-join, 60 s window"
t0=$(now)
q -f "$F/measure.sql" -c "SELECT bench.measure('$DAY', $NSAMPLE, $persons, ARRAY['find_connections', 'PostGIS self-join'],
                                               ARRAY['60 seconds']::interval[], nwarm => $NWARM)" >/dev/null ||
  die "measurement failed"
printf 'find_connections and self-join measured in %.0f s\n' "$(since "$t0")"

# the finder's counters (DEBUG1) for the first persons of the sample
STATS=$BENCH_DIR/finder-stats.txt
: > "$STATS"
for p in $(q -c "SELECT bench.sample($NSAMPLE, $persons) LIMIT $NSTATS"); do
  q -c "SET client_min_messages = debug1" \
    -c "SELECT count(*) FROM udaconnect.find_connections($p, '$DAY', '$DAY', 5, '60 seconds')" 2>&1 >/dev/null |
    sed -n 's/.*find_connections([0-9]*): \([0-9]*\) own points, \([0-9]*\) probes, \([0-9]*\) index scans (\([0-9]*\) started on the previous leaf), \([0-9]*\) entries, \([0-9]*\) exact distances, \([0-9]*\) hits.*/\1 \2 \3 \4 \5 \6 \7/p' >> "$STATS"
done

TABLE=$(q -F '|' <<'SQL'
WITH s AS (
  SELECT method, count(*) AS persons,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95, avg(n) AS rows_out
    FROM bench.result GROUP BY 1),
differ AS (
  SELECT count(*) FILTER (WHERE (r.n, r.idsum, r.idhash) IS DISTINCT FROM (j.n, j.idsum, j.idhash)) AS n
    FROM bench.result r LEFT JOIN bench.result j ON j.method = 'PostGIS self-join' AND j.person = r.person
   WHERE r.method = 'find_connections'),
t AS (SELECT s.*, (SELECT p50 FROM s j WHERE j.method = 'PostGIS self-join') / nullif(s.p50, 0) AS ratio FROM s)
SELECT method, persons, round(p50::numeric, 2), round(p95::numeric, 2), round(ratio::numeric, 1) || 'x',
       CASE WHEN method = 'PostGIS self-join' THEN '-'
            WHEN (SELECT n FROM differ) = 0 THEN 'yes'
            ELSE format('NO (%s of %s persons differ)', (SELECT n FROM differ), persons) END,
       round(rows_out),
       CASE WHEN method <> 'find_connections' THEN '-'
            WHEN ratio >= 50 AND (SELECT n FROM differ) = 0 THEN 'met (>= 50x, identical)'
            ELSE 'NOT met: ' || concat_ws(', ', CASE WHEN NOT ratio >= 50 THEN 'speedup < 50x' END,
                                        CASE WHEN (SELECT n FROM differ) <> 0 THEN 'results differ' END) END
  FROM t ORDER BY method <> 'find_connections';
SQL
) || die "report failed"
FINDER_P50=$(q -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM bench.result WHERE method = 'find_connections'")
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine inflates every latency)"
if [ "${UDACONNECT_BENCH_KEEP:-0}" != 1 ]; then
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB"
fi

echo
echo "find_connections(P, $DAY, $DAY, 5 m, 60 s) per person-day on the dense conference ($rows rows), over the sampled persons:"
{ echo "method|persons|p50 ms|p95 ms|speedup (p50)|identical to self-join|rows out|target (issue 15)"; echo "$TABLE"; } | fmt_table
echo
echo "The finder's work per person-day (DEBUG1 counters, mean over the first $NSTATS sampled persons):"
awk -v p50="$FINDER_P50" '{ for (i = 1; i <= 7; i++) s[i] += $i; n++ }
  END { if (n == 0) { print "  (no counters: DEBUG1 lines not found)"; exit }
        for (i = 1; i <= 7; i++) s[i] /= n
        printf "  own points %.0f, probes %.0f (%.1f cells a point), index scans %.0f (%.0f started on the previous leaf, %.2f scans a point),\n", s[1], s[2], s[2] / s[1], s[3], s[4], s[3] / s[1]
        printf "  entries read %.0f (%.2f a hit), exact distances %.0f (%.2f a hit), hits %.0f; at the p50 above: %.2f us a hit\n", s[5], s[5] / s[7], s[6], s[6] / s[7], s[7], p50 * 1000 / s[7] }' "$STATS"
exit 0   # a benchmark reports (targets met or not); it fails only when it cannot run
