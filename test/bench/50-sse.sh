#!/usr/bin/env bash
# Benchmark: live encounter streams (GET /api/persons/{id}/encounters/stream,
# Server-Sent Events) of udaconnect-httpd, issue 15's live numbers:
#
#  1. produce -> SSE event received: points produced through Kafka at
#     50k points/s offered, into the ingest workers (encounter maintenance
#     on); most are background points that make no encounter, and 100 pairs
#     of points a second create or extend encounters of persons that have a
#     stream open.  For every event a stream receives, the time from the
#     produce of the point that caused it (its creation_time: the
#     encounter's ended_at) to its receipt: p50/p95/p99/max.  Once with a
#     few hundred streams, once with 5,000 open (the same events, spread
#     over all of them: every stream gets some).
#  2. 5,000 concurrent streams on one httpd: its resident memory (VmRSS)
#     before the first and after the last was opened, over the streams:
#     the memory of one idle subscriber.
#  3. A dense hall where everyone streams (issue 15's live path at dense
#     scale): finder/gen-dense.sql's conference (2,000 attendees crowding
#     200 booths, 2 days: 1,080,000 locations, ~1,300 encounters a
#     person-day) loaded with the encounter maintenance, but for its last
#     report rounds; a stream open for every attendee; then those rounds
#     inserted one at a time, one commit of 2,000 points each, which
#     touches the encounters of most attendees.  Once with the live path by
#     id (httpd --stream-fetch by-id: what NOTIFY announced, read by primary
#     key) and once with the path before it (--stream-fetch scan: every
#     encounter of each person named read again), each on rounds of its
#     own.  Per path: the stream thread's statement time per round (the
#     database time of one notification's fetches:
#     udaconnect_http_stream_fetch_seconds_total) and per person fetched,
#     and the latency from each round's commit to each event received
#     (p50/p99/max), every event of a round waited for before the next.
#
# The load generator and client is test/bench/sseload (librdkafka, and one
# epoll loop holding every stream), built here into $BENCH_DIR.  httpd runs
# as a second instance of the stack's (tokens on, the stack's database
# role) with its default settings except the connection limits a few
# thousand streams need (--max-connections, --max-connections-per-ip);
# each phase starts a fresh one, so the memory figure is not flattered by
# memory an earlier phase freed.  The streams use an organizer's token.
# Kafka: a development broker of the benchmark's own (32 partitions, as
# 20-ingest's), a new one for each phase, or UDACONNECT_BENCH_KAFKA_BROKERS
# (+ _TOPIC).  Each phase starts after a 1 s warm-up and with the ingest
# caught up.
#
# Sizes: UDACONNECT_BENCH_SSE_STREAMS (default 5000, quick 500),
# UDACONNECT_BENCH_SSE_FEW (default 200, quick 100),
# UDACONNECT_BENCH_SSE_RATE (points/s offered, default 50000),
# UDACONNECT_BENCH_SSE_PAIRS (encounter point pairs/s, default 100),
# UDACONNECT_BENCH_SSE_SECONDS (default 10, quick 3),
# UDACONNECT_BENCH_SSE_LINGER (the producer's linger.ms, default 25: why in
# sseload.c);
# the dense hall: UDACONNECT_BENCH_SSE_DENSE_PERSONS (default 2000, quick
# 200; a tenth as many booths), _DENSE_DAYS (default 2, quick 1),
# _DENSE_ROUNDS (rounds per path, default 3, quick 2).
# UDACONNECT_BENCH_SSE_LATENCY=0 or UDACONNECT_BENCH_SSE_DENSE=0 leaves
# parts 1-2 or part 3 out.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RUN_DIR=${RUN_DIR:-$UDACONNECT_RUN_DIR}
BENCH_DIR=${BENCH_DIR:-$RUN_DIR/bench/50-sse}
mkdir -p "$BENCH_DIR"
: "${UDACONNECT_DATABASE_URL:?the stack is not running}" "${UDACONNECT_ORGANIZER_TOKEN:?no organizer token (60-tokens)}"
DEVKAFKA=$TOP/scripts/devkafka/udaconnect-devkafka
PGBIN=${PGBIN:-$(${PG_CONFIG:-pg_config} --bindir)}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  MANY=${UDACONNECT_BENCH_SSE_STREAMS:-500}; FEW=${UDACONNECT_BENCH_SSE_FEW:-100}
  SECS=${UDACONNECT_BENCH_SSE_SECONDS:-3}
else
  MANY=${UDACONNECT_BENCH_SSE_STREAMS:-5000}; FEW=${UDACONNECT_BENCH_SSE_FEW:-200}
  SECS=${UDACONNECT_BENCH_SSE_SECONDS:-10}
fi
RATE=${UDACONNECT_BENCH_SSE_RATE:-50000}
PAIRS=${UDACONNECT_BENCH_SSE_PAIRS:-100}
LINGER=${UDACONNECT_BENCH_SSE_LINGER:-25}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then
  DPERSONS=${UDACONNECT_BENCH_SSE_DENSE_PERSONS:-200}; DDAYS=${UDACONNECT_BENCH_SSE_DENSE_DAYS:-1}
  DROUNDS=${UDACONNECT_BENCH_SSE_DENSE_ROUNDS:-2}
else
  DPERSONS=${UDACONNECT_BENCH_SSE_DENSE_PERSONS:-2000}; DDAYS=${UDACONNECT_BENCH_SSE_DENSE_DAYS:-2}
  DROUNDS=${UDACONNECT_BENCH_SSE_DENSE_ROUNDS:-3}
fi
DP0=500000				# the dense hall's attendees: DP0+1 .. DP0+DPERSONS
LATENCY=${UDACONNECT_BENCH_SSE_LATENCY:-1}
DENSE=${UDACONNECT_BENCH_SSE_DENSE:-1}
# a free port (the stack's HTTP port + 4 would be its gRPC port)
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
P0=300000				# the watched persons: P0+1 .. P0+MANY
BG=100001:102000		# background persons (20-ingest's)
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
q() { "${PSQL[@]}" -c "$1"; }

make -s -C "$TOP/test/bench/sseload" OUT="$BENCH_DIR" >/dev/null || { echo "50-sse: sseload did not build"; exit 1; }
LOAD=$BENCH_DIR/sseload

HTTPD_PID=
DEVKAFKA_PID=
cleanup() {
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
  if [ -z "${UDACONNECT_BENCH_KAFKA_BROKERS:-}" ]; then
    q "ALTER SYSTEM RESET udaconnect.kafka_brokers" >/dev/null 2>&1
    q "ALTER SYSTEM RESET udaconnect.kafka_topic" >/dev/null 2>&1
    q "SELECT pg_reload_conf()" >/dev/null 2>&1
  fi
  [ -n "$DEVKAFKA_PID" ] && kill "$DEVKAFKA_PID" 2>/dev/null
  true
}
trap cleanup EXIT

# commit timestamps split the latency into the ingest's part and the rest
# (as 20-ingest, which turns them on too)
if [ "$(q 'SHOW track_commit_timestamp')" != on ]; then
  q "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
  "$PGBIN/pg_ctl" -D "$RUN_DIR/pgdata" -l "$RUN_DIR/log/postgresql.log" -w -t 60 restart -m fast >/dev/null
  for _ in $(seq 1 50); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi
q "SELECT udaconnect.ingest_resume()" >/dev/null
q "INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
   SELECT g, 'Watched' || g, 'Person', 'Bench Inc' FROM generate_series($((P0 + 1)), $((P0 + MANY))) g
   ON CONFLICT (id) DO NOTHING;
   INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
   SELECT g, 'Bench' || g, 'Person', 'Bench Inc' FROM generate_series(${BG%:*}, ${BG#*:}) g
   ON CONFLICT (id) DO NOTHING" >/dev/null
WORKERS=$(q "SHOW udaconnect.ingest_workers")

# ---- Kafka: the workers read the benchmark's topic.  The development
# broker (librdkafka's mock cluster) spends more CPU the longer its
# partitions' logs (3 CPU-s for the first 400k messages, 7-9 s for the
# next), on the same 2 cores as the ingest: each phase gets a new one, so
# that the second phase does not pay for the first's messages.
BROKERS='' TOPIC='' OFF0=0 PRODUCED=0
new_broker() {
  if [ -n "${UDACONNECT_BENCH_KAFKA_BROKERS:-}" ]; then
    BROKERS=$UDACONNECT_BENCH_KAFKA_BROKERS
    TOPIC=${UDACONNECT_BENCH_KAFKA_TOPIC:-bench_sse}
  else
    [ -n "$DEVKAFKA_PID" ] && kill "$DEVKAFKA_PID" 2>/dev/null && wait "$DEVKAFKA_PID" 2>/dev/null
    TOPIC=bench_sse
    rm -f "$BENCH_DIR/bootstrap"
    "$DEVKAFKA" -q -t "$TOPIC" -p 32 -f "$BENCH_DIR/bootstrap" 2>>"$BENCH_DIR/devkafka.log" &
    DEVKAFKA_PID=$!
    for _ in $(seq 1 100); do [ -s "$BENCH_DIR/bootstrap" ] && break; sleep 0.1; done
    BROKERS=$(cat "$BENCH_DIR/bootstrap" 2>/dev/null) || { echo "50-sse: the broker did not start"; exit 1; }
    # a fresh broker: offsets stored for an earlier one mean nothing
    q "DELETE FROM udaconnect.ingest_offset WHERE topic = '$TOPIC'" >/dev/null
    q "ALTER SYSTEM SET udaconnect.kafka_brokers = '$BROKERS'" >/dev/null
    q "ALTER SYSTEM SET udaconnect.kafka_topic = '$TOPIC'" >/dev/null
    q "SELECT pg_reload_conf()" >/dev/null
  fi
  OFF0=$(q "SELECT coalesce(sum(next_offset), 0) FROM udaconnect.ingest_offset WHERE topic = '$TOPIC'")
  PRODUCED=0
}

# wait until the workers have committed what was produced so far (a run
# must not start behind a backlog); offsets summed over the partitions,
# polled from one server-side loop (as 20-ingest does)
caught_up() {
  q "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); done bigint;
     BEGIN
       LOOP
         SELECT coalesce(sum(next_offset), 0) INTO done FROM udaconnect.ingest_offset WHERE topic = '$TOPIC';
         EXIT WHEN done >= $((OFF0 + PRODUCED));
         IF clock_timestamp() - t0 > interval '300 seconds' THEN
           RAISE EXCEPTION 'offsets reached % of %', done, $((OFF0 + PRODUCED));
         END IF;
         COMMIT;
         PERFORM pg_sleep(0.05);
       END LOOP;
     END \$\$" >/dev/null || { echo "50-sse: the ingest did not catch up"; exit 1; }
}

# a fresh httpd of the stack's kind on $PORT (the live path: $1, default by-id)
start_httpd() {
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
  UDACONNECT_HTTP_DB_USER=udaconnect_api UDACONNECT_HTTP_STREAM_FETCH=${1:-by-id} \
    "$TOP/gateway/httpd/udaconnect-httpd" --bind 127.0.0.1 --port "$PORT" --web-root "$TOP/gateway/web" \
    --max-connections $((MANY + 200)) --max-connections-per-ip $((MANY + 200)) \
    >>"$BENCH_DIR/httpd.log" 2>&1 </dev/null &
  HTTPD_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "50-sse: udaconnect-httpd did not start; see $BENCH_DIR/httpd.log"
  exit 1
}

# warm-up (its own httpd): the workers find the broker and the topic's
# partitions, and the first rows go in
warm_up() {
  start_httpd
  SSELOAD_TOKEN=$UDACONNECT_ORGANIZER_TOKEN "$LOAD" --port "$PORT" --persons $((P0 + 1)):$((P0 + 2)) \
    --brokers "$BROKERS" --topic "$TOPIC" --rate "$RATE" --seconds 1 --pair-rate 2 --background "$BG" \
    --linger-ms "$LINGER" --drain 60 >"$BENCH_DIR/warmup.txt" 2>&1 || { echo "50-sse: the warm-up failed:"; cat "$BENCH_DIR/warmup.txt"; exit 1; }
  PRODUCED=$((PRODUCED + $(sed -n 's/.*\bdelivered=\([0-9]*\).*/\1/p' "$BENCH_DIR/warmup.txt")))
  caught_up
}

val() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$BENCH_DIR/run-$1.txt" | head -1; }
# run N [--httpd-pid]: N streams, the load, -> $BENCH_DIR/run-N.txt
run() {
  local n=$1 f="$BENCH_DIR/run-$1.txt" maxid
  start_httpd
  maxid=$(q "SELECT coalesce(max(id), 0) FROM udaconnect.location")
  SSELOAD_TOKEN=$UDACONNECT_ORGANIZER_TOKEN "$LOAD" --port "$PORT" --persons $((P0 + 1)):$((P0 + n)) \
    --httpd-pid "$HTTPD_PID" --settle 3 --brokers "$BROKERS" --topic "$TOPIC" --rate "$RATE" \
    --seconds "$SECS" --pair-rate "$PAIRS" --background "$BG" --drain 30 --linger-ms "$LINGER" \
    --dump "$BENCH_DIR/events-$n.tsv" >"$f" 2>&1
  echo $? >>"$f.rc"
  PRODUCED=$((PRODUCED + $(val "$n" delivered)))
  caught_up
  # the parts: produce -> the causing point's row committed (the ingest),
  # and commit -> event received (the notification, the fetch, httpd)
  if [ "$(q 'SHOW track_commit_timestamp')" = on ]; then
    "${PSQL[@]}" >>"$f" <<SQL
CREATE TEMP TABLE ev (person integer, ended bigint, received bigint);
\\copy ev FROM '$BENCH_DIR/events-$n.tsv'
SELECT 'row_p50_ms=' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r)) ||
       ' row_p99_ms=' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY r)) ||
       ' commit_p50_ms=' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)) ||
       ' commit_p99_ms=' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c))
  FROM (SELECT DISTINCT ON (e.person, e.ended, e.received)
               (extract(epoch FROM pg_xact_commit_timestamp(l.xmin)) * 1000000 - e.ended) / 1000 AS r,
               (e.received - extract(epoch FROM pg_xact_commit_timestamp(l.xmin)) * 1000000) / 1000 AS c
          FROM ev e JOIN udaconnect.location l
            ON (extract(epoch FROM l.creation_time) * 1000000)::bigint = e.ended
         WHERE l.id > $maxid AND l.person_id BETWEEN $((P0 + 1)) AND $((P0 + n))) s;
SQL
  fi
}
# ---- 3. the dense hall ------------------------------------------------------
DB_HOLD=''
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" | sed -n "s/^$1 //p"; }
fetch_counters() {
  echo "$(metric 'udaconnect_http_stream_fetches_total{kind="by_id"}') $(metric 'udaconnect_http_stream_fetches_total{kind="scan"}')" \
       "$(metric 'udaconnect_http_stream_fetch_seconds_total{kind="by_id"}') $(metric 'udaconnect_http_stream_fetch_seconds_total{kind="scan"}')"
}

# the conference, but for its last 2 x DROUNDS report rounds (120 s each,
# one point per attendee), which go to bench.dense_round 1 .. 2 x DROUNDS
dense_load() {
  local t0
  t0=$(date +%s.%N)
  "${PSQL[@]}" -v persons="$DPERSONS" -v booths=$((DPERSONS / 10)) -v days="$DDAYS" -v reports=270 \
    -v first_person=$((DP0 + 1)) -f "$TOP/test/bench/finder/gen-dense.sql" >/dev/null || { echo "50-sse: gen-dense.sql failed"; exit 1; }
  # the conference's days get partitions of their own, as the maintenance
  # worker makes them ahead of a live conference (where the extension has them)
  q "SELECT count(*) FROM pg_proc WHERE proname = 'location_partitions_ensure'" | grep -q '^1$' &&
    q "SELECT udaconnect.location_partitions_ensure(min(creation_time), max(creation_time)) FROM bench.src" >/dev/null
  q "DROP TABLE IF EXISTS bench.dense_round;
     CREATE TABLE bench.dense_round AS
       SELECT s.*, $((2 * DROUNDS)) - floor(extract(epoch FROM e.t - s.creation_time) / 120)::int AS round
         FROM bench.src s, (SELECT max(creation_time) + interval '1 microsecond' AS t FROM bench.src) e
        WHERE s.creation_time >= e.t - interval '$((240 * DROUNDS)) seconds';
     DELETE FROM bench.src WHERE creation_time >= (SELECT min(creation_time) FROM bench.dense_round)" >/dev/null
  # as the ingest would, in batches of ~10 minutes of the hall (~10k points)
  q "DO \$\$ DECLARE lo timestamptz; hi timestamptz;
     BEGIN
       SELECT min(creation_time), max(creation_time) INTO lo, hi FROM bench.src;
       WHILE lo <= hi LOOP
         INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
         SELECT person_id, coordinate, creation_time FROM bench.src
          WHERE creation_time >= lo AND creation_time < lo + interval '10 minutes' ORDER BY creation_time;
         COMMIT;
         lo := lo + interval '10 minutes';
       END LOOP;
     END \$\$" >/dev/null || { echo "50-sse: loading the dense conference failed"; exit 1; }
  q "VACUUM ANALYZE udaconnect.encounter" >/dev/null
  q "VACUUM ANALYZE udaconnect.location" >/dev/null
  DLOAD_S=$(echo "$(date +%s.%N) - $t0" | bc)
  DLOCS=$(q "SELECT count(*) FROM udaconnect.location WHERE person_id > $DP0")
  DENCS=$(q "SELECT count(*) FROM udaconnect.encounter WHERE person_a > $DP0")
}

# dense_run MODE FIRST_ROUND: streams for every attendee on a fresh httpd
# reading MODE, then DROUNDS rounds from FIRST_ROUND on
dense_run() {
  local mode=$1 first=$2 f="$BENCH_DIR/dense-$1" prev now stable r v0 v1 want got c0 c1
  rm -f "$f.hold" "$f.tsv" "$f.out"
  start_httpd "$mode"
  SSELOAD_TOKEN=$UDACONNECT_ORGANIZER_TOKEN "$LOAD" --port "$PORT" --persons $((DP0 + 1)):$((DP0 + DPERSONS)) \
    --hold-file "$f.hold" --dump "$f.tsv" >"$f.out" 2>&1 &
  local lpid=$!
  for _ in $(seq 1 3000); do grep -q '^streams=' "$f.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "established=$DPERSONS " "$f.out" || { echo "50-sse: the dense streams did not open:"; cat "$f.out"; touch "$f.hold"; exit 1; }
  # the streams' first reads (by version, for the path before) are over
  prev='' stable=0
  while [ $stable -lt 3 ]; do
    sleep 1; now=$(fetch_counters)
    if [ "$now" = "$prev" ]; then stable=$((stable + 1)); else stable=0; fi
    prev=$now
  done
  c0=$now
  want=0
  for r in $(seq "$first" $((first + DROUNDS - 1))); do
    v0=$(q "SELECT version FROM udaconnect.encounter_clock")
    q "INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
       SELECT person_id, coordinate, creation_time FROM bench.dense_round WHERE round = $r ORDER BY creation_time" >/dev/null
    v1=$(q "SELECT version FROM udaconnect.encounter_clock")
    q "INSERT INTO bench.dense_commit
       SELECT '$mode', $r, pg_xact_commit_timestamp(l.xmin), $v0, $v1,
              (SELECT count(*) FROM bench.dense_round WHERE round = $r),
              (SELECT count(*) FILTER (WHERE x.person_a BETWEEN $((DP0 + 1)) AND $((DP0 + DPERSONS)))
                    + count(*) FILTER (WHERE x.person_b BETWEEN $((DP0 + 1)) AND $((DP0 + DPERSONS)))
                 FROM udaconnect.encounter x WHERE x.version > $v0 AND x.version <= $v1)
         FROM udaconnect.location l ORDER BY l.id DESC LIMIT 1" >/dev/null
    want=$((want + $(q "SELECT events FROM bench.dense_commit WHERE mode = '$mode' AND round = $r")))
    # every event of the round before the next (bounded: 10 min)
    for _ in $(seq 1 6000); do
      got=$(wc -l <"$f.tsv")
      [ "$got" -ge "$want" ] && break
      sleep 0.1
    done
    [ "$got" -ge "$want" ] || echo "50-sse: dense $mode round $r: $got of $want events after 10 minutes"
  done
  sleep 1
  c1=$(fetch_counters)
  touch "$f.hold"
  wait "$lpid"
  read -r ib0 is0 tb0 ts0 <<<"$c0"
  read -r ib1 is1 tb1 ts1 <<<"$c1"
  "${PSQL[@]}" >"$f.txt" <<SQL
CREATE TEMP TABLE ev (person integer, ended bigint, received bigint);
\copy ev FROM '$f.tsv'
SELECT 'events=' || count(*) || ' want=$want' ||
       ' p50_ms=' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) ||
       ' p99_ms=' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) ||
       ' max_ms=' || round(max(ms)::numeric, 1) ||
       ' versions=' || (SELECT sum(v1 - v0) FROM bench.dense_commit WHERE mode = '$mode') ||
       ' fetches_by_id=' || ($ib1 - $ib0) || ' scans=' || ($is1 - $is0) ||
       ' db_s=' || round(($tb1 - $tb0 + $ts1 - $ts0)::numeric, 3) ||
       ' db_ms_per_round=' || round((($tb1 - $tb0 + $ts1 - $ts0) * 1000 / $DROUNDS)::numeric, 1) ||
       ' db_ms_per_person=' || round((($tb1 - $tb0 + $ts1 - $ts0) * 1000
                                      / greatest($ib1 - $ib0 + $is1 - $is0, 1))::numeric, 3)
  FROM (SELECT (e.received - extract(epoch FROM c.committed) * 1000000) / 1000 AS ms
          FROM ev e
          JOIN LATERAL (SELECT committed FROM bench.dense_commit c
                         WHERE c.mode = '$mode' AND extract(epoch FROM c.committed) * 1000000 <= e.received
                         ORDER BY c.committed DESC LIMIT 1) c ON true) s;
SQL
}

dval() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$BENCH_DIR/dense-$1.txt" | head -1; }
dense_table() {
  local m
  [ "$DENSE" = 1 ] || return 0
  cat <<TABLE
Dense hall: $DPERSONS attendees of finder/gen-dense.sql ($((DPERSONS / 10)) booths, $DDAYS day(s)), $DLOCS locations
and $DENCS encounters (loaded with the maintenance in $(printf '%.0f' "$DLOAD_S") s), a stream open for each of them;
$DROUNDS report rounds per path, each one commit of ~$DPERSONS points (every event of a round received before the next)

| path                  | versions | events | person fetches (by id + scans) | stream DB time per round | per person fetched | event p50 ms | p99 ms | max ms |
|-----------------------|----------|--------|--------------------------------|--------------------------|--------------------|--------------|--------|--------|
TABLE
  for m in by-id scan; do
    printf '| %-21s | %-8s | %-6s | %-30s | %-24s | %-18s | %-12s | %-6s | %-6s |\n' \
      "$([ $m = by-id ] && echo "by id (1.5)" || echo "scan (before 1.5)")" "$(dval $m versions)" "$(dval $m events)" \
      "$(dval $m fetches_by_id) + $(dval $m scans)" "$(dval $m db_ms_per_round) ms" "$(dval $m db_ms_per_person) ms" \
      "$(dval $m p50_ms)" "$(dval $m p99_ms)" "$(dval $m max_ms)"
  done
  echo
  echo "(stream DB time: the stream thread's wait for its statements, udaconnect_http_stream_fetch_seconds_total;"
  echo " a round is one notification's version; event latency: the round's commit -> the event received)"
  rv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" "$BENCH_DIR/dense-replay.txt" | head -1; }
  echo "The last round's reads again in the server (one session, nothing else running), for its $(rv persons) persons:"
  echo "  by id $(rv by_id_ms) ms ($(rv by_id_us_per_person) us a person, $(rv rows_by_id) rows);" \
       "by version (scan) $(rv scan_ms) ms ($(rv scan_ms_per_person) ms a person, $(rv rows_scan) rows)"
}

rm -f "$BENCH_DIR"/run-*.txt* "$BENCH_DIR"/dense-*
if [ "$LATENCY" = 1 ]; then
  for n in "$FEW" "$MANY"; do
    new_broker
    warm_up
    run "$n"
  done
fi
# after the latency phases, whose tables it would make larger
if [ "$DENSE" = 1 ]; then
  dense_load
  q "DROP TABLE IF EXISTS bench.dense_commit;
     CREATE TABLE bench.dense_commit (mode text, round integer, committed timestamptz, v0 bigint, v1 bigint,
                                      points bigint, events bigint)" >/dev/null
  dense_run by-id 1
  dense_run scan $((DROUNDS + 1))
  # the last round's reads again, in the server, one session, nothing else
  # running: what either path costs the database for one notification
  "${PSQL[@]}" >"$BENCH_DIR/dense-replay.txt" 2>&1 <<SQL
CREATE TEMP TABLE f AS
  SELECT p, array_agg(id) AS ids FROM (
    SELECT x.id, x.person_a FROM udaconnect.encounter x, bench.dense_commit c
     WHERE c.round = $((2 * DROUNDS)) AND x.version > c.v0 AND x.version <= c.v1
    UNION ALL
    SELECT x.id, x.person_b FROM udaconnect.encounter x, bench.dense_commit c
     WHERE c.round = $((2 * DROUNDS)) AND x.version > c.v0 AND x.version <= c.v1) e(id, p)
   GROUP BY p;
DO \$\$
DECLARE
    v0 bigint;
    v1 bigint;
    t timestamptz;
    n1 bigint;
    n2 bigint;
    a float8;
    b float8;
BEGIN
    SELECT c.v0, c.v1 INTO v0, v1 FROM bench.dense_commit c WHERE c.round = $((2 * DROUNDS));
    PERFORM count(*) FROM udaconnect.encounter;   -- the table in the cache, as the gateways find it
    t := clock_timestamp();
    SELECT count(*) INTO n1 FROM f, LATERAL udaconnect.api_encounter_changes_by_id('organizer', NULL, f.p, f.ids, v0, v1, 2000) c;
    a := extract(epoch FROM clock_timestamp() - t) * 1000;
    t := clock_timestamp();
    SELECT count(*) INTO n2 FROM f, LATERAL udaconnect.api_encounter_changes('organizer', NULL, f.p, v0, 9223372036854775807, 100) c;
    b := extract(epoch FROM clock_timestamp() - t) * 1000;
    RAISE NOTICE 'replay persons=% rows_by_id=% rows_scan=% by_id_ms=% scan_ms=% by_id_us_per_person=% scan_ms_per_person=%',
        (SELECT count(*) FROM f), n1, n2, round(a::numeric, 1), round(b::numeric, 1),
        round((a * 1000 / greatest((SELECT count(*) FROM f), 1))::numeric, 1),
        round((b / greatest((SELECT count(*) FROM f), 1))::numeric, 3);
END
\$\$;
SQL
fi
if [ "$LATENCY" != 1 ]; then
  dense_table
  exit 0
fi

THREADS=$(sed -n 's/.*, \([0-9]*\) threads, .*/\1/p' "$BENCH_DIR/httpd.log" | tail -1)
verdict() { if [ "$(echo "$1" | bc)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
row() {
  printf '| %-11s | %-13s | %-12s | %-6s | %-6s | %-6s | %-6s | %-7s |\n' "$1" "$(val "$1" timed)" \
    "$(val "$1" offered_per_s)" "$(val "$1" p50_ms)" "$(val "$1" p95_ms)" "$(val "$1" p99_ms)" \
    "$(val "$1" max_ms)" "$(val "$1" missing)"
}
PER=$(val "$MANY" rss_per_stream_bytes)
P99F=$(val "$FEW" p99_ms); P99M=$(val "$MANY" p99_ms)
TF=$(val "$FEW" timed); TM=$(val "$MANY" timed)
parts() {
  [ -n "$(val "$1" row_p50_ms)" ] || return 0
  echo "  $1 subscribers: produce -> row committed p50 $(val "$1" row_p50_ms) ms, p99 $(val "$1" row_p99_ms) ms;" \
    "commit -> event received p50 $(val "$1" commit_p50_ms) ms, p99 $(val "$1" commit_p99_ms) ms"
}
cat <<TABLE
Live encounter streams (SSE): udaconnect-httpd with its defaults (${THREADS:-?} threads, --connection-memory 32768),
tokens on; $WORKERS ingest worker(s), Kafka topic of 32 partitions; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)
Offered: $RATE points/s for ${SECS}s (producer linger.ms $LINGER), of which $PAIRS pairs/s create or extend encounters of watched persons

| subscribers | events timed  | points/s     | p50 ms | p95 ms | p99 ms | max ms | missing |
|-------------|---------------|--------------|--------|--------|--------|--------|---------|
$(row "$FEW")
$(row "$MANY")

(produce of the point that caused an event -> the event received by the stream; "missing": watched
persons whose last point's event had not arrived 30 s after the last produce)
$(parts "$FEW"; parts "$MANY")

$MANY idle subscribers on one httpd: RSS $(val "$MANY" rss_before_kb) kB -> $(val "$MANY" rss_after_kb) kB, $PER bytes per subscriber
(after the load: $(val "$MANY" rss_end_kb) kB)

Targets: p99 <= 1 s: $(verdict "${TF:-0} > 0 && ${TM:-0} > 0 && ${P99F:-99999} <= 1000 && ${P99M:-99999} <= 1000") ($FEW: $P99F ms, $MANY: $P99M ms); memory per subscriber <= 20 KB: $(verdict "${PER:-999999} <= 20480")

$(dense_table)
TABLE
for n in "$FEW" "$MANY"; do
  [ "$(cat "$BENCH_DIR/run-$n.txt.rc")" = 0 ] || { echo "50-sse: the run with $n streams failed:"; cat "$BENCH_DIR/run-$n.txt"; exit 1; }
done
