#!/usr/bin/env bash
# HTTP benchmark: wrk against udaconnect-httpd and, in the same run and from
# the same database, against the original's stack (Flask + psycopg2,
# test/bench/ref_flask_server.py), on two routes:
#   person      GET /api/persons/5
#   connection  GET /api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5
# (the seed data).  Prints requests/s, p50 and p99 latency and the speed-up.
# udaconnect-httpd runs with tokens (the stack's, UDACONNECT_AUTH=on: wrk
# sends an organizer token, and for the person route also the attendee's own)
# and, in the same run, a second instance without (off, the original's open
# API): the verified-token path must keep at least 0.8x the open one.
#
# Settings: UDACONNECT_BENCH_HTTP_SECONDS (default 10; 3 with
# UDACONNECT_BENCH_QUICK=1), UDACONNECT_BENCH_HTTP_CONNECTIONS (default 32),
# UDACONNECT_BENCH_HTTP_WRK_THREADS (default 2).
set -uo pipefail
: "${UDACONNECT_HTTP_URL:?udaconnect-httpd is not running}"
: "${UDACONNECT_DATABASE_URL:?}"
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${BENCH_DIR:-$(mktemp -d)}
if [ "${UDACONNECT_BENCH_QUICK:-0}" = 1 ]; then SECS=${UDACONNECT_BENCH_HTTP_SECONDS:-3}
else SECS=${UDACONNECT_BENCH_HTTP_SECONDS:-10}; fi
CONNS=${UDACONNECT_BENCH_HTTP_CONNECTIONS:-32}
WT=${UDACONNECT_BENCH_HTTP_WRK_THREADS:-2}
FLASK_PORT=$(( ${UDACONNECT_HTTP_PORT:-30001} + 2 ))
FLASK_URL=http://127.0.0.1:$FLASK_PORT
OPEN_PORT=$(( ${UDACONNECT_HTTP_PORT:-30001} + 3 ))
OPEN_URL=http://127.0.0.1:$OPEN_PORT
TOKENCLI=$TOP/gateway/token/udaconnect-token
: "${UDACONNECT_JWT_KEY_FILE:?no signing key: scripts/stack.d/05-auth.sh did not run}"
ORG=$("$TOKENCLI" --key-file "$UDACONNECT_JWT_KEY_FILE" --organizer bench --ttl 1h)
ATT5=$("$TOKENCLI" --key-file "$UDACONNECT_JWT_KEY_FILE" --person 5 --ttl 1h)

command -v wrk >/dev/null || { echo "bench 40-http: wrk is not installed"; exit 1; }

python3 "$TOP/test/bench/ref_flask_server.py" "$FLASK_PORT" >"$OUT/flask.log" 2>&1 &
FLASK_PID=$!
UDACONNECT_AUTH=off UDACONNECT_HTTP_DB_USER=udaconnect_api \
  "$TOP/gateway/httpd/udaconnect-httpd" --bind 127.0.0.1 --port "$OPEN_PORT" \
  --web-root "$TOP/gateway/web" >"$OUT/httpd-open.log" 2>&1 &
OPEN_PID=$!
trap 'kill $FLASK_PID $OPEN_PID 2>/dev/null; wait $FLASK_PID $OPEN_PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$FLASK_URL/api/persons/5" 2>/dev/null &&
    curl -fsS -o /dev/null "$OPEN_URL/api/persons/5" 2>/dev/null && break
  sleep 0.1
done

PERSON=/api/persons/5
CONN="/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5"

# both servers must give the same answers before we time them
same=$(python3 - "$UDACONNECT_HTTP_URL" "$FLASK_URL" "$ORG" "$PERSON" "$CONN" <<'PY'
import json, sys, urllib.request
from datetime import datetime
a, b, tok = sys.argv[1], sys.argv[2], sys.argv[3]
def get(u):
    h = {"Authorization": "Bearer " + tok} if u.startswith(a) else {}
    return json.load(urllib.request.urlopen(urllib.request.Request(u, headers=h), timeout=30))
def norm(x):
    if isinstance(x, dict):
        return {k: (datetime.fromisoformat(v).timestamp() if k == "creation_time" else norm(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [norm(v) for v in x]
    return x
ok = all(norm(get(a + p)) == norm(get(b + p)) for p in sys.argv[4:])
print("yes" if ok else "NO")
PY
)

# wrk latency figures -> milliseconds
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}'; }

run() {  # name url [token] -> "rps p50 p99 errors"
  local name=$1 url=$2 f="$OUT/wrk-$1.txt"
  local -a h=()
  [ -n "${3:-}" ] && h=(-H "Authorization: Bearer $3")
  wrk -t"$WT" -c"$CONNS" -d1s "${h[@]}" "$url" >/dev/null 2>&1      # warm-up
  wrk -t"$WT" -c"$CONNS" -d"${SECS}s" --latency "${h[@]}" "$url" >"$f" 2>&1
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
  p50=$(awk '$1=="50%" {print $2}' "$f" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$f" | to_ms)
  errs=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
              /Socket errors:/ {for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) {x = $i; sub(",", "", x); e += x}}
              END {print e + 0}' "$f")
  echo "${rps:-0} ${p50:-?} ${p99:-?} ${errs:-0}"
}

echo "wrk: $WT threads, $CONNS connections, ${SECS}s per run (after a 1 s warm-up); $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "same answers from both servers: $same"
printf '%-12s %-22s %10s %10s %10s %8s\n' route server req/s p50_ms p99_ms errors
declare -A R
for route in person connection; do
  path=$PERSON; [ $route = connection ] && path=$CONN
  srvs="httpd open flask"; [ $route = person ] && srvs="httpd attendee open flask"
  for srv in $srvs; do
    case $srv in
      httpd) base=$UDACONNECT_HTTP_URL tok=$ORG label="httpd, organizer token" ;;
      attendee) base=$UDACONNECT_HTTP_URL tok=$ATT5 label="httpd, own token" ;;
      open) base=$OPEN_URL tok= label="httpd, auth off" ;;
      flask) base=$FLASK_URL tok= label="Flask+psycopg2 (ref)" ;;
    esac
    read -r rps p50 p99 errs < <(run "$route-$srv" "$base$path" "$tok")
    R[$route-$srv]=$rps
    printf '%-12s %-22s %10s %10s %10s %8s\n' "$route" "$label" "$rps" "$p50" "$p99" "$errs"
  done
done
for route in person connection; do
  awk -v a="${R[$route-httpd]}" -v b="${R[$route-flask]}" -v r="$route" \
    'BEGIN { if (b > 0) printf "speed-up %-11s %.1fx  (target >= 15x)\n", r, a / b }'
done
# tokens vs auth off: the table's runs are minutes apart on a shared
# machine, so the ratio comes from pairs of short runs, A B A B ..., the
# median of the pair by pair ratios
PAIRS=${UDACONNECT_BENCH_HTTP_PAIRS:-5}
PSECS=${UDACONNECT_BENCH_HTTP_PAIR_SECONDS:-2}
rps_of() {  # url [token] -> req/s of one short run
  local -a h=()
  [ -n "${2:-}" ] && h=(-H "Authorization: Bearer $2")
  wrk -t"$WT" -c"$CONNS" -d"${PSECS}s" "${h[@]}" "$1" 2>&1 | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}
paired() {  # label path token
  local i a b ratios=""
  for i in $(seq 1 "$PAIRS"); do
    a=$(rps_of "$UDACONNECT_HTTP_URL$2" "$3"); b=$(rps_of "$OPEN_URL$2")
    ratios="$ratios $(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')"
  done
  echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk -v l="$1" -v n="$PAIRS" -v s="$PSECS" \
    '{ r[NR] = $1 } END { m = r[int((NR + 1) / 2)]; printf "with token / auth off %-26s %.2fx median of %d pairs of %d s runs (min %.2f, max %.2f)  (target >= 0.8x: %s)\n", l, m, n, s, r[1], r[NR], (m >= 0.8) ? "met" : "NOT met" }'
}
paired "person, organizer token" "$PERSON" "$ORG"
paired "person, own token" "$PERSON" "$ATT5"
paired "connection, organizer token" "$CONN" "$ORG"
awk -v a="${R[person-httpd]}" 'BEGIN { printf "person lookup: %d req/s (target >= 20000 on 2 cores, wrk included)\n", a }'
echo "raw wrk output: $OUT"
