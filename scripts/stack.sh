#!/usr/bin/env bash
# Start, stop or show the local UdaConnect stack (never as root: use
# scripts/as-user.sh, as the Makefile does).
#
#   scripts/stack.sh start|stop|status
#
# Every component is a hook in scripts/stack.d/NN-name.sh, called with
# "start" in ascending order and "stop" in descending order, with the settings
# below exported.  A hook adds the variables clients need to $RUN_DIR/env
# (a shell file sourced by tests and operators) and a line for each endpoint to
# $RUN_DIR/endpoints.
#
# Settings (environment):
#   UDACONNECT_RUN_DIR     state directory        (default: <repo>/.run)
#   UDACONNECT_PGPORT      PostgreSQL TCP port    (default: 54320)
#   UDACONNECT_HTTP_PORT   REST API and web app   (default: 30001)
#   UDACONNECT_GRPC_PORT   gRPC ingest            (default: 30005)
#   UDACONNECT_KAFKA_BROKERS  use this Kafka instead of the embedded broker
#   UDACONNECT_SEED        load the sample data   (default: 1)
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TOP
export RUN_DIR=${UDACONNECT_RUN_DIR:-$TOP/.run}
export UDACONNECT_PGPORT=${UDACONNECT_PGPORT:-54320}
export UDACONNECT_HTTP_PORT=${UDACONNECT_HTTP_PORT:-30001}
export UDACONNECT_GRPC_PORT=${UDACONNECT_GRPC_PORT:-30005}
export UDACONNECT_SEED=${UDACONNECT_SEED:-1}
export PGBIN=${PGBIN:-$(${PG_CONFIG:-pg_config} --bindir)}
export LOG_DIR=$RUN_DIR/log

if [ "$(id -u)" = 0 ]; then
  echo "stack.sh: do not run as root; use scripts/as-user.sh scripts/stack.sh $*" >&2
  exit 1
fi

hooks() { ls "$TOP"/scripts/stack.d/[0-9]*.sh 2>/dev/null | sort "$@"; }

case "${1:-}" in
  start)
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$RUN_DIR/conf.d"
    : > "$RUN_DIR/env"
    : > "$RUN_DIR/endpoints"
    for h in $(hooks); do
      bash "$h" start || { echo "stack.sh: $(basename "$h") failed to start; see $LOG_DIR" >&2; exit 1; }
    done
    echo
    echo "UdaConnect is running (state in $RUN_DIR):"
    sed 's/^/  /' "$RUN_DIR/endpoints"
    echo "  environment for clients:  . $RUN_DIR/env"
    echo "  stop it with:             make stop"
    ;;
  stop)
    [ -d "$RUN_DIR" ] || exit 0
    rc=0
    for h in $(hooks -r); do bash "$h" stop || rc=1; done
    exit $rc
    ;;
  status)
    for h in $(hooks); do bash "$h" status || true; done
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
