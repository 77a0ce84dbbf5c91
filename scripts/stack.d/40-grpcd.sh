#!/usr/bin/env bash
# Stack hook: udaconnect-grpcd, the gRPC ingest gateway
# (gateway/grpcd/udaconnect-grpcd), on 127.0.0.1:$UDACONNECT_GRPC_PORT,
# producing to the Kafka named in $RUN_DIR/env (10-kafka.sh) and answering
# FindConnections from the database (20-postgres.sh).  Log: $LOG_DIR/grpcd.log.
#
#   UDACONNECT_GRPCD_ARGS   extra command-line options (see --help)
set -euo pipefail
DIR=$RUN_DIR/grpcd
PIDFILE=$DIR/grpcd.pid
BIN=$TOP/gateway/grpcd/udaconnect-grpcd
PORT=$UDACONNECT_GRPC_PORT

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "$1" in
start)
  mkdir -p "$DIR" "$LOG_DIR"
  # brokers (10-kafka.sh) and database (20-postgres.sh)
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
    ok=0
    for _ in $(seq 1 150); do
      if ! running; then break; fi
      if grep -q "udaconnect-grpcd\[$pid\]: listening on" "$LOG_DIR/grpcd.log" 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    if [ $ok != 1 ]; then
      echo "40-grpcd: udaconnect-grpcd did not start; see $LOG_DIR/grpcd.log:" >&2
      tail -n 5 "$LOG_DIR/grpcd.log" >&2 || true
      exit 1
    fi
  fi
  echo "export UDACONNECT_GRPC_ADDR=127.0.0.1:$PORT" >> "$RUN_DIR/env"
  echo "gRPC        127.0.0.1:$PORT   (udaconnect.v1.LocationService, ConnectionService, /LocationService/updateLocation, grpc.health.v1.Health)" >> "$RUN_DIR/endpoints"
  ;;
stop)
  if running; then
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "40-grpcd: udaconnect-grpcd $pid did not stop within 30 s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDFILE"
  ;;
status)
  if running; then
    echo "grpcd: running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
  else
    echo "grpcd: not running"
  fi
  ;;
esac
