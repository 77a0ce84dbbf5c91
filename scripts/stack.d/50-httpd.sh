#!/usr/bin/env bash
# Stack hook: udaconnect-httpd (REST/JSON API + web app) on
# 127.0.0.1:$UDACONNECT_HTTP_PORT, connected to the stack's database as the
# least-privilege role udaconnect_api (sql/src/60-http.sql), asking for the
# tokens 05-auth.sh set up (UDACONNECT_AUTH, UDACONNECT_JWT_KEY_FILE from
# $RUN_DIR/env).  Other settings (UDACONNECT_HTTP_THREADS, ...) pass through
# from the environment; see docs/http.md.  With UDACONNECT_TLS_CERT_FILE and
# UDACONNECT_TLS_KEY_FILE both set in the environment it serves HTTPS only
# (and says https:// in $RUN_DIR/env and the endpoint line); by default, and
# in make check, plain HTTP.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
BIN=$TOP/gateway/httpd/udaconnect-httpd
PIDFILE=$RUN_DIR/httpd.pid
TLS_CERT=${UDACONNECT_TLS_CERT_FILE:-}
TLS_KEY=${UDACONNECT_TLS_KEY_FILE:-}
SCHEME=http
# the daemon refuses one without the other itself, naming the setting
if [ -n "$TLS_CERT" ] || [ -n "$TLS_KEY" ]; then SCHEME=https; fi
URL=$SCHEME://127.0.0.1:$UDACONNECT_HTTP_PORT
# the health probe only asks whether the daemon is up: the certificate is the
# operator's (its name need not be 127.0.0.1), so it is not verified here
PROBE=(curl -fsS -o /dev/null)
if [ "$SCHEME" = https ]; then PROBE+=(--insecure); fi

running() { pid_running "$PIDFILE"; }

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
    # shellcheck disable=SC1091
    AUTH=$(. "$RUN_DIR/env"; echo "${UDACONNECT_AUTH:-on}")
    # shellcheck disable=SC1091
    KEYFILE=$(. "$RUN_DIR/env"; echo "${UDACONNECT_JWT_KEY_FILE:-}")
    if [ "$AUTH" = on ] && [ -z "$KEYFILE" ]; then
      echo "50-httpd: UDACONNECT_JWT_KEY_FILE is not in $RUN_DIR/env (did 05-auth run?)" >&2
      exit 1
    fi
    UDACONNECT_DATABASE_URL=$DBURL UDACONNECT_HTTP_DB_USER=${UDACONNECT_HTTP_DB_USER:-udaconnect_api} \
    UDACONNECT_AUTH=$AUTH UDACONNECT_JWT_KEY_FILE=$KEYFILE \
    UDACONNECT_TLS_CERT_FILE=$TLS_CERT UDACONNECT_TLS_KEY_FILE=$TLS_KEY \
      nohup "$BIN" --bind 127.0.0.1 --port "$UDACONNECT_HTTP_PORT" \
        --web-root "$TOP/gateway/web" >>"$LOG_DIR/httpd.log" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    if ! pid_wait "$PIDFILE" 100 "${PROBE[@]}" "$URL/healthz"; then
      echo "50-httpd: udaconnect-httpd did not become healthy; see $LOG_DIR/httpd.log" >&2
      tail -n 20 "$LOG_DIR/httpd.log" >&2 || true
      exit 1
    fi
  fi
  echo "export UDACONNECT_HTTP_URL=$URL" >> "$RUN_DIR/env"
  echo "Web app and REST API  $URL/   (API: $URL/api/persons, OpenAPI: $URL/api/openapi.json, metrics: $URL/metrics)" >> "$RUN_DIR/endpoints"
  ;;
stop)
  pid_stop "50-httpd: udaconnect-httpd" "$PIDFILE" 5
  ;;
status)
  # the URL it was started with (https:// or not), not this shell's guess
  # shellcheck disable=SC1091
  if [ -f "$RUN_DIR/env" ]; then URL=$(. "$RUN_DIR/env"; echo "${UDACONNECT_HTTP_URL:-$URL}"); fi
  if running; then echo "udaconnect-httpd: running (pid $(cat "$PIDFILE")) on $URL"
  else echo "udaconnect-httpd: not running"; fi
  ;;
esac
