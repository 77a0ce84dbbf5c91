#!/usr/bin/env bash
# gRPC ingest benchmark: acknowledged unary RecordLocation calls per second at
# 64 concurrent calls, and streamed locations per second (RecordLocations),
# for udaconnect-grpcd and, in the same run and against the same broker, the
# reference server built the way the original was (test/bench/ref_grpc_server.py:
# Python grpcio, kafka-python, flush on every call).  Load generator:
# test/bench/grpcload (gRPC core C API), built here into $BENCH_DIR.
#
# Both servers produce to topic $TOPIC on a development broker of the
# benchmark's own (scripts/devkafka/udaconnect-devkafka, the same embedded
# broker as the stack's, on the same cores), so the database does not ingest
# the benchmark's millions of points meanwhile.  The topic has the
# deployment's partition count (deployment/config/udaconnect.env,
# UDACONNECT_KAFKA_PARTITIONS): the messages are keyed by person id, so the
# partition count decides how the calls in flight split into Kafka batches.
# udaconnect-grpcd runs twice, from the same binary: with tokens
# (UDACONNECT_AUTH=on, the default; the load generator sends an organizer
# token with every call) and without (off, the original's open API): the
# verified-token path must keep at least 0.8x the open one (docs/security.md).
# Besides the rates, the table shows the CPU time each process spent per
# acknowledged call (/proc/PID/stat and the load generator's getrusage).
#   UDACONNECT_BENCH_QUICK=1            2 s per run instead of 10
#   UDACONNECT_BENCH_GRPC_SECONDS       seconds per run
#   UDACONNECT_BENCH_GRPC_STREAM_SIZE   locations per stream (default 10000)
#   UDACONNECT_BENCH_GRPC_STREAMS       concurrent streams (default 4)
#   UDACONNECT_BENCH_GRPC_PARTITIONS    partitions of the topic (default: the deployment's)
set -euo pipefail
: "${BENCH_DIR:?}" "${TOP:?}"
PY=/usr/bin/python3
QUICK=${UDACONNECT_BENCH_QUICK:-0}
SECS=${UDACONNECT_BENCH_GRPC_SECONDS:-$([ "$QUICK" = 1 ] && echo 2 || echo 10)}
SSIZE=${UDACONNECT_BENCH_GRPC_STREAM_SIZE:-10000}
NSTREAMS=${UDACONNECT_BENCH_GRPC_STREAMS:-4}
TOPIC=grpcbench
CONC=64
DEPLOY_PARTITIONS=$(sed -n 's/^UDACONNECT_KAFKA_PARTITIONS=\([0-9]*\).*/\1/p' "$TOP/deployment/config/udaconnect.env" 2>/dev/null)
PARTITIONS=${UDACONNECT_BENCH_GRPC_PARTITIONS:-${DEPLOY_PARTITIONS:-6}}

make -s -C "$TOP/test/bench/grpcload" OUT="$BENCH_DIR" >/dev/null
LOAD=$BENCH_DIR/grpcload
rm -rf "$BENCH_DIR/gen" && mkdir -p "$BENCH_DIR/gen"
$PY -m grpc_tools.protoc -I"$TOP/proto" -I/usr/include --python_out="$BENCH_DIR/gen" \
  --grpc_python_out="$BENCH_DIR/gen" udaconnect/v1/location.proto udaconnect/v1/location_service.proto

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# the benchmark's broker
rm -f "$BENCH_DIR/kafka.bootstrap"
"$TOP/scripts/devkafka/udaconnect-devkafka" -q -t "$TOPIC" -p "$PARTITIONS" -f "$BENCH_DIR/kafka.bootstrap" \
  >"$BENCH_DIR/devkafka.log" 2>&1 &
KPID=$!
pids+=($KPID)
for _ in $(seq 1 100); do [ -s "$BENCH_DIR/kafka.bootstrap" ] && break; sleep 0.1; done
UDACONNECT_KAFKA_BROKERS=$(cat "$BENCH_DIR/kafka.bootstrap" 2>/dev/null) || { echo "30-grpc: the broker did not start"; exit 1; }

# udaconnect-grpcd (private instances on ephemeral ports, same binary and
# defaults as the stack's; the stack's signing key)
: "${UDACONNECT_JWT_KEY_FILE:?no signing key: scripts/stack.d/05-auth.sh did not run}"
TOKEN=$("$TOP/gateway/token/udaconnect-token" --key-file "$UDACONNECT_JWT_KEY_FILE" --organizer bench --ttl 1h)
UDACONNECT_AUTH=on UDACONNECT_KAFKA_BROKERS=$UDACONNECT_KAFKA_BROKERS "$TOP/gateway/grpcd/udaconnect-grpcd" \
  --bind 127.0.0.1 --port 0 --topic "$TOPIC" >"$BENCH_DIR/grpcd.log" 2>&1 &
GPID=$!
pids+=($GPID)
UDACONNECT_AUTH=off UDACONNECT_KAFKA_BROKERS=$UDACONNECT_KAFKA_BROKERS "$TOP/gateway/grpcd/udaconnect-grpcd" \
  --bind 127.0.0.1 --port 0 --topic "$TOPIC" >"$BENCH_DIR/grpcd-open.log" 2>&1 &
OPID=$!
pids+=($OPID)
# the reference
$PY "$TOP/test/bench/ref_grpc_server.py" --gen "$BENCH_DIR/gen" --brokers "$UDACONNECT_KAFKA_BROKERS" \
  --topic "$TOPIC" --port-file "$BENCH_DIR/ref.port" >"$BENCH_DIR/ref.log" 2>&1 &
RPID=$!
pids+=($RPID)
GPORT=; RPORT=
for _ in $(seq 1 100); do
  GPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$BENCH_DIR/grpcd.log" | head -1)
  OPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$BENCH_DIR/grpcd-open.log" | head -1)
  RPORT=$(cat "$BENCH_DIR/ref.port" 2>/dev/null || true)
  [ -n "$GPORT" ] && [ -n "$OPORT" ] && [ -n "$RPORT" ] && break
  sleep 0.1
done
if [ -z "$GPORT" ] || [ -z "$OPORT" ] || [ -z "$RPORT" ]; then
  echo "30-grpc: a server did not start"; tail -n 5 "$BENCH_DIR/grpcd.log" "$BENCH_DIR/grpcd-open.log" "$BENCH_DIR/ref.log"; exit 1
fi

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run() {  # name port server-pid mode concurrency [stream-size]
  local out s0 k0 s1 k1
  local -a tok=()
  [ "$3" = "$GPID" ] && tok=(--token "$TOKEN")
  s0=$(cpu_ticks "$3"); k0=$(cpu_ticks "$KPID")
  out=$("$LOAD" --addr "127.0.0.1:$2" --mode "$4" --concurrency "$5" --stream-size "${6:-1}" --seconds "$SECS" "${tok[@]}")
  s1=$(cpu_ticks "$3"); k1=$(cpu_ticks "$KPID")
  # CPU microseconds per acknowledged location: server, broker, load generator
  out="$out $(awk -v s=$((s1 - s0)) -v k=$((k1 - k0)) -v hz="$(getconf CLK_TCK)" -v o="$out" 'BEGIN {
    n = 0; c = 0
    if (match(o, / locations=[0-9]+/)) n = substr(o, RSTART + 11, RLENGTH - 11)
    if (match(o, / cpu_s=[0-9.]+/)) c = substr(o, RSTART + 7, RLENGTH - 7)
    if (n > 0) printf "server_cpu_us=%.1f broker_cpu_us=%.1f load_cpu_us=%.1f", s * 1e6 / hz / n, k * 1e6 / hz / n, c * 1e6 / n
    else printf "server_cpu_us=- broker_cpu_us=- load_cpu_us=-" }')"
  echo "$1 $out" >> "$BENCH_DIR/results.txt"
  echo "$out"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

: > "$BENCH_DIR/results.txt"
# warm-up (connections, metadata, producer id)
"$LOAD" --addr "127.0.0.1:$GPORT" --mode unary --concurrency 8 --seconds 0.5 --token "$TOKEN" >/dev/null
"$LOAD" --addr "127.0.0.1:$OPORT" --mode unary --concurrency 8 --seconds 0.5 >/dev/null
"$LOAD" --addr "127.0.0.1:$RPORT" --mode unary --concurrency 8 --seconds 0.5 >/dev/null
g_unary=$(run grpcd "$GPORT" "$GPID" unary $CONC)
g_legacy=$(run grpcd "$GPORT" "$GPID" legacy $CONC)
g_stream=$(run grpcd "$GPORT" "$GPID" stream "$NSTREAMS" "$SSIZE")
r_unary=$(run ref "$RPORT" "$RPID" unary $CONC)
r_stream=$(run ref "$RPORT" "$RPID" stream "$NSTREAMS" "$SSIZE")
h=$(run grpcd "$GPORT" "$GPID" health $CONC)
o_unary=$(run grpcd-open "$OPORT" "$OPID" unary $CONC)
o_stream=$(run grpcd-open "$OPORT" "$OPID" stream "$NSTREAMS" "$SSIZE")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
verdict() { awk -v v="$1" -v t="$2" -v r="$3" -v rt=10 'BEGIN { print (v >= t && r >= rt) ? "met" : "NOT met" }'; }
gu=$(field calls_per_s "$g_unary"); ru=$(field calls_per_s "$r_unary")
gs=$(field locations_per_s "$g_stream"); rs=$(field locations_per_s "$r_stream")
gl=$(field calls_per_s "$g_legacy"); gh=$(field calls_per_s "$h")
ur=$(awk -v a="$gu" -v b="$ru" 'BEGIN { print (b > 0) ? a / b : 0 }')
sr=$(awk -v a="$gs" -v b="$rs" 'BEGIN { print (b > 0) ? a / b : 0 }')

echo
echo "gRPC ingest, $SECS s per run, load generator and broker on the same $(nproc)-core machine (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "broker: udaconnect-devkafka, topic $TOPIC with $PARTITIONS partitions (the deployment's: ${DEPLOY_PARTITIONS:-?}), messages keyed by person id"
printf '%-44s %16s %16s %8s  %s\n' "metric" "udaconnect-grpcd" "reference (py)" "ratio" "target (>= value and >= 10x)"
printf '%-44s %16s %16s %8s  %s\n' "acknowledged RecordLocation/s, $CONC concurrent" "$gu" "$ru" "$(ratio "$gu" "$ru")" \
  ">= 20000: $(verdict "$gu" 20000 "$ur")"
printf '%-44s %16s %16s %8s  %s\n' "streamed locations/s, $NSTREAMS streams x $SSIZE" "$gs" "$rs" "$(ratio "$gs" "$rs")" \
  ">= 300000: $(verdict "$gs" 300000 "$sr")"
printf '%-44s %16s %16s\n' "RecordLocation p50 / p99 latency, ms" \
  "$(field p50_ms "$g_unary") / $(field p99_ms "$g_unary")" "$(field p50_ms "$r_unary") / $(field p99_ms "$r_unary")"
ou=$(field calls_per_s "$o_unary"); os=$(field locations_per_s "$o_stream")
at() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx (target >= 0.8x: %s)", a / b, (a / b >= 0.8) ? "met" : "NOT met"; else print "-" }'; }
printf '%-44s %16s %16s  %s\n' "RecordLocation/s: token (on) / open (off)" "$gu" "$ou" "$(at "$gu" "$ou")"
printf '%-44s %16s %16s  %s\n' "streamed locations/s: token / open" "$gs" "$os" "$(at "$gs" "$os")"
printf '%-44s %16s\n' "original updateLocation/s, $CONC concurrent" "$gl"
printf '%-44s %16s\n' "health Check/s (gRPC alone, no Kafka)" "$gh"
cpu3() { echo "$(field server_cpu_us "$1") / $(field broker_cpu_us "$1") / $(field load_cpu_us "$1")"; }
printf '%-44s %16s %16s\n' "CPU us per call, server / broker / load gen" "$(cpu3 "$g_unary")" "$(cpu3 "$r_unary")"
printf '%-44s %16s %16s\n' "CPU us per streamed location, same" "$(cpu3 "$g_stream")" "$(cpu3 "$r_stream")"
for v in "$g_unary" "$g_stream" "$r_unary" "$r_stream" "$g_legacy" "$o_unary" "$o_stream"; do
  if [ "$(field failed "$v")" != 0 ]; then echo "note: failed calls in: $v"; fi
done
