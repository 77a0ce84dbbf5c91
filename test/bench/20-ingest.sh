#!/usr/bin/env bash
# Benchmark: Kafka ingest by the pg_udaconnect background workers.
#
#  1. sustained ingest rate from a pre-filled topic (N messages, default 1M)
#     into udaconnect.location with all its indexes and the encounter
#     maintenance as installed (on; its cost is measured by
#     25-encounters.sh), measured between the first and the last committed
#     batch (track_commit_timestamp); the table partitioned by day (1.5),
#     its day partitions made before (location_partitions_ensure()) so
#     that the rows go through the direct path into their day's partition;
#  (p) the same messages, in the same run, into a database at VERSION '1.4'
#      (one plain location table, same library; the workers are pointed at
#      it by udaconnect.database, a restart each way): partitioned against
#      unpartitioned (issue 16: at least 0.9x).  The topic is filled in two
#      halves, each ingested by both, in the order partitioned, 1.4, 1.4,
#      partitioned, each round right after a restart: the neighbours' load,
#      which moves the wall clock by tens of per cent on a shared machine,
#      weighs on both alike as long as it drifts steadily;
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
PARTITIONS=${UDACONNECT_BENCH_INGEST_PARTITIONS:-32}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  N=${UDACONNECT_BENCH_INGEST_ROWS:-100000}; SAMPLE=${UDACONNECT_BENCH_INGEST_SAMPLE:-1000}
  LAT_S=${UDACONNECT_BENCH_LATENCY_SECONDS:-3}
else
  N=${UDACONNECT_BENCH_INGEST_ROWS:-1000000}; SAMPLE=${UDACONNECT_BENCH_INGEST_SAMPLE:-5000}
  LAT_S=${UDACONNECT_BENCH_LATENCY_SECONDS:-10}
fi
LAT_RATE=${UDACONNECT_BENCH_LATENCY_RATE:-50000}
. "$TOP/test/bench/lib/ingest.sh"

# A broker of our own (lib/ingest.sh); UDACONNECT_BENCH_KAFKA_BROKERS
# (+ _TOPIC) uses a real Kafka.
if [ -n "${UDACONNECT_BENCH_KAFKA_BROKERS:-}" ]; then
  BROKERS=$UDACONNECT_BENCH_KAFKA_BROKERS
  TOPIC=${UDACONNECT_BENCH_KAFKA_TOPIC:-bench_locations}
else
  TOPIC=bench_locations
  ingest_broker_start "$PARTITIONS" "$TOPIC"
fi
DB14=bench_ingest_14
# the workers serve one database (udaconnect.database, set at server start)
restart_pg() {
  "$PGBIN/pg_ctl" -D "$RUN_DIR/pgdata" -l "$RUN_DIR/log/postgresql.log" -w -t 60 restart -m fast >/dev/null
  for _ in $(seq 1 50); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
}
# the workers' insert paths logged since byte $1 of the server log
paths_since() {
  local p
  p=$(tail -c +"$(($1 + 1))" "$RUN_DIR/log/postgresql.log" |
      grep -o 'rows go into udaconnect.location through [A-Za-z ]*' | sed 's/.* through //' | sort -u | paste -sd/ || true)
  echo "${p:-none logged}"
}
# the workers running, after a restart
workers_up() {
  for _ in $(seq 1 150); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'")" -ge "$WORKERS" ] && return 0
    sleep 0.2
  done
  return 1
}
workers_back() {
  if [ "$(q "SHOW udaconnect.database")" = "$DB14" ]; then
    q "ALTER SYSTEM RESET udaconnect.database" >/dev/null
    restart_pg
  fi
}
cleanup() {
  workers_back
  ingest_settings_reset
  ingest_broker_stop
}
trap cleanup EXIT
q "ALTER SYSTEM SET udaconnect.kafka_brokers = '$BROKERS'" >/dev/null
q "ALTER SYSTEM SET udaconnect.kafka_topic = '$TOPIC'" >/dev/null

ingest_track_commits
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
# the day partitions of the messages' times (creation_time BASE + i ms)
BASE=1700000000
q "SELECT udaconnect.location_partitions_ensure(to_timestamp($BASE), to_timestamp($BASE) + interval '1 millisecond' * ($N + 1))" >/dev/null
read -r NPARTS PARTS_OF <<<"$(q "SELECT count(*), string_agg(partition::text, ',' ORDER BY from_time)
  FROM udaconnect.location_partitions()
 WHERE NOT is_default AND to_time > to_timestamp($BASE) AND from_time < to_timestamp($BASE) + interval '1 millisecond' * $N" | tr '|' ' ')"

# One round of the workers on database $1, paused on entry and again on
# return: resume, wait until its stored offsets reach $3, then print the
# rows (ids above $2) and seconds of its batches after the first (their
# commit timestamps), the workers' CPU ticks, and the insert paths they
# logged meanwhile.
ingest_round() {
  local db=$1 from=$2 end=$3 pids cpu0 cpu logpos rows secs
  pids=$(ingest_worker_pids)
  # shellcheck disable=SC2086
  cpu0=$(cpu_ticks $pids)
  logpos=$(stat -c %s "$RUN_DIR/log/postgresql.log")
  PGDATABASE=$db q "SELECT udaconnect.ingest_resume()" >/dev/null
  PGDATABASE=$db wait_offsets "$TOPIC" "$end" 1800 || return 1
  # shellcheck disable=SC2086
  cpu=$(( $(cpu_ticks $pids) - cpu0 ))
  PGDATABASE=$db q "SELECT udaconnect.ingest_pause()" >/dev/null
  read -r rows secs <<<"$(PGDATABASE=$db ingest_rate_rows "$from")"
  echo "$rows $secs $cpu $(paths_since "$logpos")"
}
# the workers to database $1 (a restart)
workers_to() {
  if [ "$1" = "$DB14" ]; then
    q "ALTER SYSTEM SET udaconnect.database = '$DB14'" >/dev/null
  else
    q "ALTER SYSTEM RESET udaconnect.database" >/dev/null
  fi
  restart_pg
  workers_up || { echo "bench: the ingest workers did not start again"; exit 1; }
}
maxid() { PGDATABASE=$1 q "SELECT coalesce(max(id), 0) FROM udaconnect.location"; }

# The 1.4 database of (p), paused, its workers not yet pointed at it: it has
# no stored offsets, so it takes the topic from its beginning
q "DROP DATABASE IF EXISTS $DB14" >/dev/null
q "CREATE DATABASE $DB14" >/dev/null
PGDATABASE=$DB14 q "CREATE EXTENSION pg_udaconnect VERSION '1.4' CASCADE" >/dev/null
PGDATABASE=$DB14 q "INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
   SELECT g, 'Bench' || g, 'Person', 'Bench Inc' FROM generate_series(100001, 102000) g" >/dev/null
PGDATABASE=$DB14 q "SELECT udaconnect.ingest_pause()" >/dev/null
PLAIN_KIND=$(PGDATABASE=$DB14 q "SELECT CASE relkind WHEN 'r' THEN 'one plain table' ELSE 'relkind ' || relkind::text END
  FROM pg_class WHERE oid = 'udaconnect.location'::regclass")
PLAIN_ENC=$(PGDATABASE=$DB14 q "SELECT CASE tgenabled WHEN 'D' THEN 'off' ELSE 'on' END FROM pg_trigger WHERE tgname = 'location_track_encounters'")
STACK_DB=$(q "SELECT current_database()")

# ---- 1. and (p): the topic filled with N messages in two halves A and B,
# each ingested by the partitioned table and by 1.4's plain table, in the
# order P(A) U(A) U(B) P(B), each round right after a restart (a fresh
# server's shared buffers are page-faulted in by whoever touches them
# first): a load that drifts during the run weighs on both alike
HALF=$((N / 2))
END_OFF=$((START_OFF + N))
t0=$(date +%s.%N)
"$PRODUCE" -q -b "$BROKERS" -t "$TOPIC" -n "$HALF" -s 0 -p 100001:102000 -B 0 -T $BASE
t1=$(date +%s.%N)
workers_to "$STACK_DB"
out=$(ingest_round "$STACK_DB" "$MAXID" $((START_OFF + HALF))) || { echo "bench: ingest did not finish"; exit 1; }
read -r P1_ROWS P1_S P1_CPU P1_PATHS <<<"$out"
# no offsets stored in the 1.4 database: the topic from its beginning
workers_to "$DB14"
out=$(ingest_round "$DB14" 0 "$HALF") || { echo "bench: ingest into the 1.4 database did not finish"; exit 1; }
read -r U1_ROWS U1_S U1_CPU U1_PATHS <<<"$out"
U2_FROM=$(maxid "$DB14")
# the second half, produced while both are paused
t2=$(date +%s.%N)
"$PRODUCE" -q -b "$BROKERS" -t "$TOPIC" -n $((N - HALF)) -s "$HALF" -p 100001:102000 -B 0 -T $BASE
t3=$(date +%s.%N)
PRODUCE_RATE=$(echo "$N / ($t1 - $t0 + $t3 - $t2)" | bc)
workers_to "$DB14"
out=$(ingest_round "$DB14" "$U2_FROM" "$N") || { echo "bench: ingest into the 1.4 database did not finish"; exit 1; }
read -r U2_ROWS U2_S U2_CPU U2_PATHS <<<"$out"
PLAIN_INGESTED=$(PGDATABASE=$DB14 q "SELECT count(*) FROM udaconnect.location")
workers_to "$STACK_DB"
P2_FROM=$(maxid "$STACK_DB")
out=$(ingest_round "$STACK_DB" "$P2_FROM" "$END_OFF") || { echo "bench: ingest did not finish"; exit 1; }
read -r P2_ROWS P2_S P2_CPU P2_PATHS <<<"$out"
q "SELECT udaconnect.ingest_resume()" >/dev/null
q "DROP DATABASE $DB14" >/dev/null

INGESTED=$(q "SELECT count(*) FROM udaconnect.location WHERE id > $MAXID")
INGEST_RATE=$(echo "($P1_ROWS + $P2_ROWS) / ($P1_S + $P2_S)" | bc)
W_CPU=$((P1_CPU + P2_CPU))
PART_PATHS=$(echo "$P1_PATHS/$P2_PATHS" | tr '/' '\n' | grep -v '^none logged$' | sort -u | paste -sd/)
IN_PARTS=$(q "SELECT count(*) FROM udaconnect.location WHERE id > $MAXID AND tableoid::regclass::text = ANY (string_to_array('$PARTS_OF', ','))")
PLAIN_RATE=$(echo "($U1_ROWS + $U2_ROWS) / ($U1_S + $U2_S)" | bc)
W_CPU14=$((U1_CPU + U2_CPU))
PLAIN_PATHS=$(echo "$U1_PATHS/$U2_PATHS" | tr '/' '\n' | grep -v '^none logged$' | sort -u | paste -sd/)
P_HALVES="$(echo "$P1_ROWS / $P1_S" | bc) and $(echo "$P2_ROWS / $P2_S" | bc)"
U_HALVES="$(echo "$U1_ROWS / $U1_S" | bc) and $(echo "$U2_ROWS / $U2_S" | bc)"

# ---- (a) server-side COPY of the same rows into a table of the same shape
read -r COPY_MS C_CPU <<<"$(copy_baseline "$MAXID")"
COPY_RATE=$(echo "$INGESTED * 1000 / $COPY_MS" | bc)

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
wait_offsets "$TOPIC" $((DONE0 + LAT_N)) 600 || { echo "bench: latency run did not finish"; exit 1; }
read -r P50 P95 P99 PMAX <<<"$(q "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY l)),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)), round(max(l))
    FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - creation_time) * 1000 AS l
            FROM udaconnect.location WHERE id > $MAXID2) s" | tr '|' ' ')"

cat <<TABLE
Kafka ingest benchmark: $N messages, $PARTITIONS partitions, $WORKERS worker(s), batch size $BATCH
(producer filled the topic at $PRODUCE_RATE msgs/s; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg))

| method                                             | rows      | rows/s    | ingest is      | rows per CPU-second |
|----------------------------------------------------|-----------|-----------|----------------|---------------------|
| pg_udaconnect ingest workers (Kafka -> location)   | $(printf '%-9s' "$INGESTED") | $(printf '%-9s' "$INGEST_RATE") | -              | $(printf '%-19s' "$(cpu_rate "$INGESTED" "$W_CPU")") |
| (p) the same into 1.4's unpartitioned location     | $(printf '%-9s' "$PLAIN_INGESTED") | $(printf '%-9s' "$PLAIN_RATE") | $(printf '%-14s' "$(ratio "$INGEST_RATE" "$PLAIN_RATE")x of it") | $(printf '%-19s' "$(cpu_rate "$PLAIN_INGESTED" "$W_CPU14")") |
| (a) server-side COPY (binary), same table shape    | $(printf '%-9s' "$INGESTED") | $(printf '%-9s' "$COPY_RATE") | $(printf '%-14s' "$(ratio "$INGEST_RATE" "$COPY_RATE")x of it") | $(printf '%-19s' "$(cpu_rate "$INGESTED" "$C_CPU")") |
| (b) original consumer: INSERT + commit per message | $(printf '%-9s' "$SAMPLE") | $(printf '%-9s' "$ROW_RATE") | $(printf '%-14s' "$(ratio "$INGEST_RATE" "$ROW_RATE")x faster") | -                   |

(rows/s are wall-clock; rows per CPU-second count the workers' CPU time,
librdkafka threads included, and the COPY backend's; the workers' encounter
maintenance (trigger location_track_encounters) is $(q "SELECT CASE tgenabled WHEN 'D' THEN 'off' ELSE 'on' END FROM pg_trigger WHERE tgname = 'location_track_encounters'") (in 1.4's: $PLAIN_ENC), COPY's table has none)
(location partitioned by day: $NPARTS day partition(s) made before the run with
location_partitions_ensure(), $IN_PARTS of the $INGESTED rows in them; workers' insert
path: ${PART_PATHS:-none logged}.  (p): database $DB14 at VERSION '1.4', $PLAIN_KIND,
same messages, same run, the workers pointed at it by udaconnect.database; insert
path: ${PLAIN_PATHS:-none logged}.  Both took the messages in two halves, in the order
partitioned, 1.4, 1.4, partitioned: rows/s $P_HALVES partitioned, $U_HALVES in 1.4;
per worker CPU-second the partitioned table takes $(ratio "$(cpu_rate "$INGESTED" "$W_CPU")" "$(cpu_rate "$PLAIN_INGESTED" "$W_CPU14")")x the rows of 1.4's)

Produce-to-row latency at $LAT_RATE msgs/s offered for ${LAT_S}s ($LAT_N rows): p50 ${P50} ms, p95 ${P95} ms, p99 ${P99} ms, max ${PMAX} ms

Targets: >= 150k rows/s: $(verdict "$INGEST_RATE" 150000); >= 0.7x COPY: $(verdict "$(ratio "$INGEST_RATE" "$COPY_RATE")" 0.7); >= 100x per-row INSERT: $(verdict "$(ratio "$INGEST_RATE" "$ROW_RATE")" 100); p99 <= 500 ms: $(verdict 500 "${P99:-999999}"); partitioned at least 0.9x the unpartitioned (1.4) rate, same run: $(ratio "$INGEST_RATE" "$PLAIN_RATE")x, $(verdict "$(ratio "$INGEST_RATE" "$PLAIN_RATE")" 0.9)
TABLE
