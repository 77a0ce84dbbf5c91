#!/usr/bin/env bash
# Benchmark: Kafka ingest by the pg_udaconnect background workers.
#
#  1. sustained ingest rate from a pre-filled topic (N messages, default 1M)
#     into udaconnect.location with all its indexes, measured between the
#     first and the last committed batch (track_commit_timestamp);
#  (a) server-side COPY (binary) of the same rows into a table of the same
#      shape (indexes, generated cell column, person trigger): the practical
#      limit;
#  (b) the original consumer's approach: one INSERT (and commit) per message
#      over one connection, on a sample;
#  2. produce-to-row latency (p50/p95/p99, creation_time = produce time,
#     commit timestamp of the row) at a steady offered load.
#
# Sizes: UDACONNECT_BENCH_INGEST_ROWS (default 1000000, quick 100000),
# UDACONNECT_BENCH_INGEST_SAMPLE (default 5000, quick 1000),
# UDACONNECT_BENCH_LATENCY_RATE (default 50000/s), UDACONNECT_BENCH_LATENCY_SECONDS
# (default 10, quick 3).  Needs the stack's env (test/bench/run.sh) and the
# bench's own development broker (32 partitions) or UDACONNECT_BENCH_KAFKA_BROKERS.
set -euo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RUN_DIR=${RUN_DIR:-$UDACONNECT_RUN_DIR}
BENCH_DIR=${BENCH_DIR:-$RUN_DIR/bench/20-ingest}
mkdir -p "$BENCH_DIR"
PGBIN=${PGBIN:-$(${PG_CONFIG:-pg_config} --bindir)}
PRODUCE=$TOP/scripts/devkafka/udaconnect-produce
DEVKAFKA=$TOP/scripts/devkafka/udaconnect-devkafka
PARTITIONS=${UDACONNECT_BENCH_INGEST_PARTITIONS:-32}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  N=${UDACONNECT_BENCH_INGEST_ROWS:-100000}; SAMPLE=${UDACONNECT_BENCH_INGEST_SAMPLE:-1000}
  LAT_S=${UDACONNECT_BENCH_LATENCY_SECONDS:-3}
else
  N=${UDACONNECT_BENCH_INGEST_ROWS:-1000000}; SAMPLE=${UDACONNECT_BENCH_INGEST_SAMPLE:-5000}
  LAT_S=${UDACONNECT_BENCH_LATENCY_SECONDS:-10}
fi
LAT_RATE=${UDACONNECT_BENCH_LATENCY_RATE:-50000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
q() { "${PSQL[@]}" -c "$1"; }
# wait until the workers have committed offsets up to $1 in all (at most $2
# seconds), polling from one server-side loop: a psql per poll (a process and
# a backend each time) took ~20 % of the 2 CPUs away from the workers
wait_offsets() {
  q "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); done bigint;
     BEGIN
       LOOP
         SELECT coalesce(sum(next_offset), 0) INTO done FROM udaconnect.ingest_offset WHERE topic = '$TOPIC';
         EXIT WHEN done >= $1;
         IF clock_timestamp() - t0 > interval '$2 seconds' THEN
           RAISE EXCEPTION 'offsets reached % of %', done, $1;
         END IF;
         COMMIT;  -- no snapshot held across polls (it would hold back vacuum)
         PERFORM pg_sleep(0.05);
       END LOOP;
     END \$\$" >/dev/null
}

# A broker of our own: the development broker keeps at most ~5 MB per
# partition (librdkafka mock cluster), so 1M pre-filled messages need many
# partitions.  UDACONNECT_BENCH_KAFKA_BROKERS (+ _TOPIC) uses a real Kafka.
if [ -n "${UDACONNECT_BENCH_KAFKA_BROKERS:-}" ]; then
  BROKERS=$UDACONNECT_BENCH_KAFKA_BROKERS
  TOPIC=${UDACONNECT_BENCH_KAFKA_TOPIC:-bench_locations}
else
  TOPIC=bench_locations
  rm -f "$BENCH_DIR/bootstrap"
  "$DEVKAFKA" -q -t "$TOPIC" -p "$PARTITIONS" -f "$BENCH_DIR/bootstrap" -P "$BENCH_DIR/devkafka.pid" \
      2>>"$BENCH_DIR/devkafka.log" &
  for _ in $(seq 1 100); do [ -s "$BENCH_DIR/bootstrap" ] && break; sleep 0.1; done
  BROKERS=$(cat "$BENCH_DIR/bootstrap")
fi
cleanup() {
  q "ALTER SYSTEM RESET udaconnect.kafka_brokers" >/dev/null 2>&1 || true
  q "ALTER SYSTEM RESET udaconnect.kafka_topic" >/dev/null 2>&1 || true
  q "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
  [ -s "$BENCH_DIR/devkafka.pid" ] && kill "$(cat "$BENCH_DIR/devkafka.pid")" 2>/dev/null || true
}
trap cleanup EXIT
q "ALTER SYSTEM SET udaconnect.kafka_brokers = '$BROKERS'" >/dev/null
q "ALTER SYSTEM SET udaconnect.kafka_topic = '$TOPIC'" >/dev/null

# commit timestamps are how we time batches and latency
if [ "$(q 'SHOW track_commit_timestamp')" != on ]; then
  q "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
  "$PGBIN/pg_ctl" -D "$RUN_DIR/pgdata" -l "$RUN_DIR/log/postgresql.log" -w -t 60 restart -m fast >/dev/null
  for _ in $(seq 1 50); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi
q "SELECT pg_reload_conf()" >/dev/null
q "SELECT udaconnect.ingest_pause()" >/dev/null
# a fresh broker: offsets stored for an earlier one mean nothing
[ -z "${UDACONNECT_BENCH_KAFKA_BROKERS:-}" ] && q "DELETE FROM udaconnect.ingest_offset WHERE topic = '$TOPIC'" >/dev/null
q "INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
   SELECT g, 'Bench' || g, 'Person', 'Bench Inc' FROM generate_series(100001, 102000) g
   ON CONFLICT (id) DO NOTHING" >/dev/null
WORKERS=$(q "SHOW udaconnect.ingest_workers")
BATCH=$(q "SHOW udaconnect.ingest_batch_size")
START_OFF=$(q "SELECT coalesce(sum(next_offset), 0) FROM udaconnect.ingest_offset WHERE topic = '$TOPIC'")
MAXID=$(q "SELECT coalesce(max(id), 0) FROM udaconnect.location")

# ---- 1. pre-fill the topic, then ingest it
t0=$(date +%s.%N)
"$PRODUCE" -q -b "$BROKERS" -t "$TOPIC" -n "$N" -s 0 -p 100001:102000 -B 0 -T 1700000000
t1=$(date +%s.%N)
PRODUCE_RATE=$(echo "$N / ($t1 - $t0)" | bc)
END_OFF=$((START_OFF + N))
HZ=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
WPIDS=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'")
# shellcheck disable=SC2086
W_CPU0=$(cpu_ticks $WPIDS)
q "SELECT udaconnect.ingest_resume()" >/dev/null
wait_offsets "$END_OFF" 1800 || { echo "bench: ingest did not finish"; exit 1; }
# shellcheck disable=SC2086
W_CPU=$(( $(cpu_ticks $WPIDS) - W_CPU0 ))
# first..last commit; the first batch's own rows are not counted
read -r INGEST_ROWS INGEST_S <<<"$(q "
  WITH tx AS (SELECT pg_xact_commit_timestamp(xmin) AS ts, count(*) AS n
                FROM udaconnect.location WHERE id > $MAXID GROUP BY 1)
  SELECT sum(n) - (SELECT n FROM tx ORDER BY ts LIMIT 1),
         extract(epoch FROM max(ts) - min(ts)) FROM tx" | tr '|' ' ')"
INGESTED=$(q "SELECT count(*) FROM udaconnect.location WHERE id > $MAXID")
INGEST_RATE=$(echo "$INGEST_ROWS / $INGEST_S" | bc)

# ---- (a) server-side COPY of the same rows into a table of the same shape
DUMP=$BENCH_DIR/rows.bin
q "COPY (SELECT person_id, coordinate, creation_time FROM udaconnect.location WHERE id > $MAXID ORDER BY id)
   TO '$DUMP' (FORMAT binary)"
q "DROP TABLE IF EXISTS public.bench_copy_location;
   CREATE TABLE public.bench_copy_location (LIKE udaconnect.location INCLUDING ALL);
   CREATE TRIGGER bench_copy_person_fk AFTER INSERT ON public.bench_copy_location
     REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
     EXECUTE FUNCTION udaconnect.location_check_person();
   CHECKPOINT"
COPY_OUT=$("${PSQL[@]}" <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv UDC_COPY_PID :pid
\! awk '{print "cpu0", \$14 + \$15}' /proc/\$UDC_COPY_PID/stat
\timing on
COPY public.bench_copy_location (person_id, coordinate, creation_time) FROM '$DUMP' (FORMAT binary);
\timing off
\! awk '{print "cpu1", \$14 + \$15}' /proc/\$UDC_COPY_PID/stat
SQL
)
COPY_MS=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$COPY_OUT" | tail -1)
C_CPU=$(( $(sed -n 's/^cpu1 //p' <<<"$COPY_OUT") - $(sed -n 's/^cpu0 //p' <<<"$COPY_OUT") ))
COPY_RATE=$(echo "$INGESTED * 1000 / $COPY_MS" | bc)
q "DROP TABLE public.bench_copy_location"
rm -f "$DUMP"

# ---- (b) the original's consumer: one INSERT + commit per message
q "SELECT format('INSERT INTO udaconnect.location (person_id, coordinate, creation_time) VALUES (%s, ST_SetSRID(ST_Point(%s, %s), 4326), %L);',
                 person_id, ST_X(coordinate), ST_Y(coordinate), creation_time)
     FROM udaconnect.location WHERE id > $MAXID ORDER BY id LIMIT $SAMPLE" > "$BENCH_DIR/inserts.sql"
t0=$(date +%s.%N)
"${PSQL[@]}" -f "$BENCH_DIR/inserts.sql"
t1=$(date +%s.%N)
ROW_RATE=$(echo "$SAMPLE / ($t1 - $t0)" | bc)
rm -f "$BENCH_DIR/inserts.sql"

# ---- 2. latency at a steady offered load
LAT_N=$((LAT_RATE * LAT_S))
MAXID2=$(q "SELECT coalesce(max(id), 0) FROM udaconnect.location")
DONE0=$(q "SELECT coalesce(sum(next_offset), 0) FROM udaconnect.ingest_offset WHERE topic = '$TOPIC'")
"$PRODUCE" -q -b "$BROKERS" -t "$TOPIC" -n "$LAT_N" -s "$N" -p 100001:102000 -B 0 -L -r "$LAT_RATE"
wait_offsets $((DONE0 + LAT_N)) 600 || { echo "bench: latency run did not finish"; exit 1; }
read -r P50 P95 P99 PMAX <<<"$(q "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY l)),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)), round(max(l))
    FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - creation_time) * 1000 AS l
            FROM udaconnect.location WHERE id > $MAXID2) s" | tr '|' ' ')"

ratio() { echo "scale=2; $1 / $2" | bc; }
cpu_rate() { if [ "${2:-0}" -gt 0 ]; then echo "$1 * $HZ / $2" | bc; else echo "-"; fi; }
verdict() { if [ "$(echo "$1 >= $2" | bc)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
cat <<TABLE
Kafka ingest benchmark: $N messages, $PARTITIONS partitions, $WORKERS worker(s), batch size $BATCH
(producer filled the topic at $PRODUCE_RATE msgs/s; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg))

| method                                             | rows      | rows/s    | ingest is      | rows per CPU-second |
|----------------------------------------------------|-----------|-----------|----------------|---------------------|
| pg_udaconnect ingest workers (Kafka -> location)   | $(printf '%-9s' "$INGESTED") | $(printf '%-9s' "$INGEST_RATE") | -              | $(printf '%-19s' "$(cpu_rate "$INGESTED" "$W_CPU")") |
| (a) server-side COPY (binary), same table shape    | $(printf '%-9s' "$INGESTED") | $(printf '%-9s' "$COPY_RATE") | $(printf '%-14s' "$(ratio "$INGEST_RATE" "$COPY_RATE")x of it") | $(printf '%-19s' "$(cpu_rate "$INGESTED" "$C_CPU")") |
| (b) original consumer: INSERT + commit per message | $(printf '%-9s' "$SAMPLE") | $(printf '%-9s' "$ROW_RATE") | $(printf '%-14s' "$(ratio "$INGEST_RATE" "$ROW_RATE")x faster") | -                   |

(rows/s are wall-clock; rows per CPU-second count the workers' CPU time,
librdkafka threads included, and the COPY backend's)

Produce-to-row latency at $LAT_RATE msgs/s offered for ${LAT_S}s ($LAT_N rows): p50 ${P50} ms, p95 ${P95} ms, p99 ${P99} ms, max ${PMAX} ms

Targets: >= 150k rows/s: $(verdict "$INGEST_RATE" 150000); >= 0.7x COPY: $(verdict "$(ratio "$INGEST_RATE" "$COPY_RATE")" 0.7); >= 100x per-row INSERT: $(verdict "$(ratio "$INGEST_RATE" "$ROW_RATE")" 100); p99 <= 500 ms: $(verdict 500 "${P99:-999999}")
TABLE
