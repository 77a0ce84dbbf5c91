#!/usr/bin/env bash
# `make bench`: runs every benchmark test/bench/NN-name.sh against a fresh
# stack of its own (state in .run/bench) and prints each one's table.
#   test/bench/run.sh [PATTERN...]   only benchmarks whose name contains PATTERN
# Sizes can be reduced for a quick look with UDACONNECT_BENCH_QUICK=1.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export TOP
export UDACONNECT_RUN_DIR=${UDACONNECT_RUN_DIR:-$TOP/.run/bench}
export UDACONNECT_PGPORT=${UDACONNECT_PGPORT:-54390}
export UDACONNECT_HTTP_PORT=${UDACONNECT_HTTP_PORT:-30091}
export UDACONNECT_GRPC_PORT=${UDACONNECT_GRPC_PORT:-30095}
export RUN_DIR=$UDACONNECT_RUN_DIR
export PG_CONFIG=${PG_CONFIG:-pg_config}
# the stack under test is the default one: tokens on, plain HTTP/gRPC on
# 127.0.0.1 (the suites start their own auth-off and TLS instances)
export UDACONNECT_AUTH=on
unset UDACONNECT_TLS_CERT_FILE UDACONNECT_TLS_KEY_FILE
"$TOP/scripts/stack.sh" stop >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"

"$TOP/scripts/stack.sh" start || { echo "bench: the stack did not start"; exit 1; }
# huge pages: `make bench` reserves them (scripts/huge-pages.sh) as a
# production server with gigabytes of shared_buffers has them
pm=$(head -1 "$RUN_DIR/pgdata/postmaster.pid" 2>/dev/null)
if [ -n "$pm" ] && grep -q '^KernelPageSize: *2048 kB' "/proc/$pm/smaps" 2>/dev/null; then
  echo "bench: PostgreSQL's shared memory is on huge pages"
else
  echo "bench: PostgreSQL's shared memory is on 4 kB pages (no huge pages reserved: scripts/huge-pages.sh)"
fi
. "$RUN_DIR/env"
rc=0
for b in "$TOP"/test/bench/[0-9]*.sh; do
  name=$(basename "$b" .sh)
  if [ $# -gt 0 ]; then
    keep=0; for p in "$@"; do [[ $name == *"$p"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  export BENCH_DIR=$RUN_DIR/bench/$name
  mkdir -p "$BENCH_DIR"
  echo "=== $name"
  bash "$b" 2>&1 | tee "$BENCH_DIR/output.log" || rc=1
done
"$TOP/scripts/stack.sh" stop >/dev/null 2>&1 || true
exit $rc
