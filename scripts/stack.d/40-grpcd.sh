#!/usr/bin/env bash
# Stack hook: udaconnect-grpcd, the gRPC ingest gateway
# (gateway/grpcd/udaconnect-grpcd), on 127.0.0.1:$UDACONNECT_GRPC_PORT,
# producing to the Kafka named in $RUN_DIR/env (10-kafka.sh) and answering
# FindConnections from the database (20-postgres.sh).  Log: $LOG_DIR/grpcd.log.
#
#   UDACONNECT_GRPCD_ARGS   extra command-line options (see --help)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
DIR=$RUN_DIR/grpcd
PIDFILE=$DIR/grpcd.pid
BIN=$TOP/gateway/grpcd/udaconnect-grpcd
PORT=$UDACONNECT_GRPC_PORT

running() { pid_running "$PIDFILE"; }

case "$1" in
start)
  mkdir -p "$DIR" "$LOG_DIR"
  # authentication (05-auth.sh: UDACONNECT_AUTH, UDACONNECT_JWT_KEY_FILE),
  # brokers (10-kafka.sh) and database (20-postgres.sh), all exported
  # shellcheck disable=SC1091
  [ -f "$RUN_DIR/env" ] && . "$RUN_DIR/env"
  if ! running; then
    if [ ! -x "$BIN" ]; then
      echo "40-grpcd: $BIN is not built; run make first" >&2
      exit 1
    fi
    if [ -z "${UDACONNECT_KAFKA_BROKERS:-}" ]; then
      echo "40-grpcd: UDACONNECT_KAFKA_BROKERS is not set (10-kafka.sh did not run?)" >&2
      exit 1
    fi
    # shellcheck disable=SC2086
    UDACONNECT_GRPC_PORT=$PORT UDACONNECT_GRPC_BIND=127.0.0.1 \
      setsid "$BIN" ${UDACONNECT_GRPCD_ARGS:-} </dev/null >>"$LOG_DIR/grpcd.log" 2>&1 &
    pid=$!
    echo $pid > "$PIDFILE"
    # ready when this very process logged that it listens (another process
    # already on the port would make a plain connect test succeed)
    if ! pid_wait "$PIDFILE" 150 grep -q "udaconnect-grpcd\[$pid\]: listening on" "$LOG_DIR/grpcd.log"; then
      echo "40-grpcd: udaconnect-grpcd did not start; see $LOG_DIR/grpcd.log:" >&2
      tail -n 5 "$LOG_DIR/grpcd.log" >&2 || true
      exit 1
    fi
  fi
  echo "export UDACONNECT_GRPC_ADDR=127.0.0.1:$PORT" >> "$RUN_DIR/env"
  echo "gRPC        127.0.0.1:$PORT   (udaconnect.v1.LocationService, ConnectionService, /LocationService/updateLocation, grpc.health.v1.Health)" >> "$RUN_DIR/endpoints"
  ;;
stop)
  pid_stop "40-grpcd: udaconnect-grpcd" "$PIDFILE" 30
  ;;
status)
  if running; then
    echo "grpcd: running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
  else
    echo "grpcd: not running"
  fi
  ;;
esac
