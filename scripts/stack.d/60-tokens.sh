#!/usr/bin/env bash
# Stack hook: tokens to try the stack with (docs/security.md).  With
# UDACONNECT_AUTH=on it signs, with the stack's key, an organizer token and an
# attendee token for the first person of the sample data (12 hours each),
# prints them with the web app's sign-in link, and exports them to
# $RUN_DIR/env as UDACONNECT_ORGANIZER_TOKEN / UDACONNECT_ATTENDEE_TOKEN.
set -euo pipefail
BIN=$TOP/gateway/token/udaconnect-token
case "$1" in
start)
  # shellcheck disable=SC1091
  . "$RUN_DIR/env"
  if [ "${UDACONNECT_AUTH:-on}" != on ]; then
    echo "Tokens      none needed: UDACONNECT_AUTH=off (the original's open API; local trials only)" >> "$RUN_DIR/endpoints"
    exit 0
  fi
  if [ ! -x "$BIN" ]; then
    echo "60-tokens: $BIN is missing; run make" >&2
    exit 1
  fi
  org=$("$BIN" --key-file "$UDACONNECT_JWT_KEY_FILE" --organizer make-run --ttl 12h)
  echo "export UDACONNECT_ORGANIZER_TOKEN=$org" >> "$RUN_DIR/env"
  echo "Organizer token (12 h):  $org" >> "$RUN_DIR/endpoints"
  pid=$(psql -XAtq -c "SELECT min(id) FROM udaconnect.person" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    att=$("$BIN" --key-file "$UDACONNECT_JWT_KEY_FILE" --person "$pid" --ttl 12h)
    echo "export UDACONNECT_ATTENDEE_TOKEN=$att" >> "$RUN_DIR/env"
    echo "Attendee token of person $pid (12 h):  $att" >> "$RUN_DIR/endpoints"
    echo "  sign in as person $pid:  ${UDACONNECT_HTTP_URL:-http://127.0.0.1:$UDACONNECT_HTTP_PORT}/#token=$att" >> "$RUN_DIR/endpoints"
  fi
  echo "  more: $BIN --key-file $UDACONNECT_JWT_KEY_FILE --person N | --organizer NAME [--ttl 24h]" >> "$RUN_DIR/endpoints"
  ;;
stop|status) ;;
esac
