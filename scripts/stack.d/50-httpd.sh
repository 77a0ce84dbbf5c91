#!/usr/bin/env bash
# Stack hook: udaconnect-httpd (REST/JSON API + web app) on
# 127.0.0.1:$UDACONNECT_HTTP_PORT, connected to the stack's database as the
# least-privilege role udaconnect_api (sql/src/60-http.sql).  Other settings
# (UDACONNECT_HTTP_THREADS, UDACONNECT_API_TOKEN, ...) pass through from the
# environment; see docs/http.md.
set -euo pipefail
BIN=$TOP/gateway/httpd/udaconnect-httpd
PIDFILE=$RUN_DIR/httpd.pid
URL=http://127.0.0.1:$UDACONNECT_HTTP_PORT

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "$1" in
start)
  if [ ! -x "$BIN" ]; then
    echo "50-httpd: $BIN is missing; run make" >&2
    exit 1
  fi
  if ! running; then
    # shellcheck disable=SC1091
    DBURL=$(. "$RUN_DIR/env"; echo "${UDACONNECT_DATABASE_URL:-}")
    if [ -z "$DBURL" ]; then
      echo "50-httpd: UDACONNECT_DATABASE_URL is not in $RUN_DIR/env (is PostgreSQL up?)" >&2
      exit 1
    fi
    UDACONNECT_DATABASE_URL=$DBURL UDACONNECT_HTTP_DB_USER=${UDACONNECT_HTTP_DB_USER:-udaconnect_api} \
      nohup "$BIN" --bind 127.0.0.1 --port "$UDACONNECT_HTTP_PORT" \
        --web-root "$TOP/gateway/web" >>"$LOG_DIR/httpd.log" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    ok=0
    for _ in $(seq 1 100); do
      if ! running; then break; fi
      if curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    if [ $ok != 1 ]; then
      echo "50-httpd: udaconnect-httpd did not become healthy; see $LOG_DIR/httpd.log" >&2
      tail -n 20 "$LOG_DIR/httpd.log" >&2 || true
      exit 1
    fi
  fi
  echo "export UDACONNECT_HTTP_URL=$URL" >> "$RUN_DIR/env"
  echo "Web app and REST API  $URL/   (API: $URL/api/persons, OpenAPI: $URL/api/openapi.json, metrics: $URL/metrics)" >> "$RUN_DIR/endpoints"
  ;;
stop)
  if running; then
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  ;;
status)
  if running; then echo "udaconnect-httpd: running (pid $(cat "$PIDFILE")) on $URL"
  else echo "udaconnect-httpd: not running"; fi
  ;;
esac
