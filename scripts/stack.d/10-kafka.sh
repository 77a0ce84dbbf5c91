#!/usr/bin/env bash
# Stack hook: Kafka for the in-database ingest workers.
#
# Unless UDACONNECT_KAFKA_BROKERS names a real Kafka, start the embedded
# development broker (scripts/devkafka/udaconnect-devkafka: librdkafka's mock
# cluster on loopback, in memory only) with topic $UDACONNECT_KAFKA_TOPIC
# (default locations) and $UDACONNECT_KAFKA_PARTITIONS partitions (default 4).
# Writes $RUN_DIR/conf.d/kafka.conf (read by PostgreSQL, which starts after
# this hook) and exports UDACONNECT_KAFKA_BROKERS / UDACONNECT_KAFKA_TOPIC in
# $RUN_DIR/env.
#
#   UDACONNECT_INGEST_WORKERS   udaconnect.ingest_workers (default 2)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
DIR=$RUN_DIR/kafka
PIDFILE=$DIR/devkafka.pid
BOOTFILE=$DIR/bootstrap
BIN=$TOP/scripts/devkafka/udaconnect-devkafka
TOPIC=${UDACONNECT_KAFKA_TOPIC:-locations}
PARTITIONS=${UDACONNECT_KAFKA_PARTITIONS:-4}
WORKERS=${UDACONNECT_INGEST_WORKERS:-2}

running() { pid_running "$PIDFILE"; }

case "$1" in
start)
  mkdir -p "$DIR" "$RUN_DIR/conf.d" "$LOG_DIR"
  if [ -n "${UDACONNECT_KAFKA_BROKERS:-}" ]; then
    BROKERS=$UDACONNECT_KAFKA_BROKERS
    WHAT="external Kafka"
  else
    if ! running || [ ! -s "$BOOTFILE" ]; then
      if [ ! -x "$BIN" ]; then
        echo "10-kafka: $BIN is not built; run make first" >&2
        exit 1
      fi
      rm -f "$BOOTFILE" "$PIDFILE"
      setsid "$BIN" -q -t "$TOPIC" -p "$PARTITIONS" -f "$BOOTFILE" -P "$PIDFILE" \
        </dev/null >>"$LOG_DIR/devkafka.log" 2>&1 &
      for _ in $(seq 1 100); do
        [ -s "$BOOTFILE" ] && [ -s "$PIDFILE" ] && break
        sleep 0.1
      done
      if [ ! -s "$BOOTFILE" ]; then
        echo "10-kafka: the development broker did not start; see $LOG_DIR/devkafka.log" >&2
        exit 1
      fi
    fi
    BROKERS=$(cat "$BOOTFILE")
    WHAT="embedded development broker"
  fi
  cat > "$RUN_DIR/conf.d/kafka.conf.tmp" <<CONF
# written by scripts/stack.d/10-kafka.sh ($WHAT)
udaconnect.kafka_brokers = '$BROKERS'
udaconnect.kafka_topic = '$TOPIC'
udaconnect.ingest_workers = $WORKERS
CONF
  mv "$RUN_DIR/conf.d/kafka.conf.tmp" "$RUN_DIR/conf.d/kafka.conf"
  cat >> "$RUN_DIR/env" <<ENV
export UDACONNECT_KAFKA_BROKERS='$BROKERS' UDACONNECT_KAFKA_TOPIC='$TOPIC'
ENV
  echo "Kafka       $BROKERS topic $TOPIC   ($WHAT)" >> "$RUN_DIR/endpoints"
  # PostgreSQL already running (hook re-run): make it read the new settings
  if [ -f "$RUN_DIR/pgdata/PG_VERSION" ] && "$PGBIN/pg_ctl" -D "$RUN_DIR/pgdata" status >/dev/null 2>&1; then
    "$PGBIN/pg_ctl" -D "$RUN_DIR/pgdata" reload >/dev/null
  fi
  ;;
stop)
  pid_stop "10-kafka: development broker" "$PIDFILE" 5
  rm -f "$PIDFILE" "$BOOTFILE"
  ;;
status)
  if [ -n "${UDACONNECT_KAFKA_BROKERS:-}" ]; then
    echo "kafka: external $UDACONNECT_KAFKA_BROKERS"
  elif running; then
    echo "kafka: development broker (pid $(cat "$PIDFILE")) at $(cat "$BOOTFILE" 2>/dev/null)"
  else
    echo "kafka: not running"
  fi
  ;;
esac
