#!/usr/bin/env bash
# Test runner behind `make check`.  Starts a fresh stack of its own (state in
# .run/check, ports apart from `make run`'s), runs every suite in
# test/suites/NN-name.sh in order, counts TAP lines ("ok N ..." / "not ok N
# ..." at the start of a line) and ends with "N passed, N failed".
#
#   test/run.sh [PATTERN...]     only suites whose file name contains PATTERN
#
# A suite that exits non-zero without reporting a failure counts as one
# failure.  Suites see the stack's environment ($RUN_DIR/env), plus TOP,
# RUN_DIR and SUITE_DIR (a scratch directory of their own).
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TOP
export UDACONNECT_RUN_DIR=${UDACONNECT_RUN_DIR:-$TOP/.run/check}
export UDACONNECT_PGPORT=${UDACONNECT_PGPORT:-54330}
export UDACONNECT_HTTP_PORT=${UDACONNECT_HTTP_PORT:-30011}
export UDACONNECT_GRPC_PORT=${UDACONNECT_GRPC_PORT:-30015}
export RUN_DIR=$UDACONNECT_RUN_DIR
export PG_CONFIG=${PG_CONFIG:-pg_config}
# the stack under test is the default one: tokens on, plain HTTP/gRPC on
# 127.0.0.1 (the suites start their own auth-off and TLS instances)
export UDACONNECT_AUTH=on
unset UDACONNECT_TLS_CERT_FILE UDACONNECT_TLS_KEY_FILE

"$TOP/scripts/stack.sh" stop >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
if ! "$TOP/scripts/stack.sh" start; then
  echo "test/run.sh: the stack did not start"
  for f in "$RUN_DIR"/log/*; do echo "== $f"; tail -n 30 "$f"; done
  echo "0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC1091
. "$RUN_DIR/env"

passed=0; failed=0; failed_names=()
for suite in "$TOP"/test/suites/[0-9]*.sh; do
  name=$(basename "$suite" .sh)
  if [ $# -gt 0 ]; then
    keep=0; for p in "$@"; do [[ $name == *"$p"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  export SUITE_DIR=$RUN_DIR/suites/$name
  mkdir -p "$SUITE_DIR"
  echo "=== $name"
  start=$(date +%s)
  bash "$suite" > "$SUITE_DIR/output.log" 2>&1
  rc=$?
  cat "$SUITE_DIR/output.log"
  p=$(grep -cE '^ok [0-9]+' "$SUITE_DIR/output.log")
  f=$(grep -cE '^not ok [0-9]+' "$SUITE_DIR/output.log")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - $name exited with status $rc"
    f=1
  fi
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -gt 0 ] && failed_names+=("$name")
  echo "=== $name: $p passed, $f failed ($(( $(date +%s) - start )) s)"
done

"$TOP/scripts/stack.sh" stop >/dev/null 2>&1 || true
[ ${#failed_names[@]} -gt 0 ] && echo "failed suites: ${failed_names[*]} (logs in $RUN_DIR/suites)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
