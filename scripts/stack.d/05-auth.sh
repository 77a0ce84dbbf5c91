#!/usr/bin/env bash
# Stack hook: the signing key of the stack's tokens (docs/security.md).
# Creates $RUN_DIR/jwt.key (HS256, 48 random bytes as base64url, mode 600)
# once, and tells the gateways where it is and whether to ask for tokens:
#
#   UDACONNECT_AUTH   on (default): every API call needs a token;
#                     off: the original's open API, for local trials only
set -euo pipefail
KEY=$RUN_DIR/jwt.key
case "$1" in
start)
  if [ ! -s "$KEY" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' > "$KEY.tmp" && echo >> "$KEY.tmp" && mv "$KEY.tmp" "$KEY")
  fi
  AUTH=${UDACONNECT_AUTH:-on}
  case "$AUTH" in on|off) ;; *) echo "05-auth: UDACONNECT_AUTH must be on or off, not '$AUTH'" >&2; exit 1 ;; esac
  echo "export UDACONNECT_JWT_KEY_FILE=$KEY" >> "$RUN_DIR/env"
  echo "export UDACONNECT_AUTH=$AUTH" >> "$RUN_DIR/env"
  ;;
stop|status) ;;
esac
