#!/usr/bin/env bash
# udaconnect-httpd: every route and error case over real HTTP (python3
# http.client), the named places (test_places.py), writes kept out of
# pipelined rounds (test_write_rounds.py), the original's API
# collection, the encounters and their live stream (test_encounters.py:
# pages, SSE read by a raw-socket client and curl, 200 subscribers, memory
# of 1000 idle ones), oversized bodies answered 413 to http.client, requests and
# curl alike, HTTPS (a daemon of its own with
# a test certificate: curl and urllib, HSTS, 413 over TLS, start-up refused
# for half or bad TLS settings), and the web app in headless
# Chromium (WebDriver: Debian's python3-selenium and chromium-driver),
# including its live encounters timeline fed by points sent through gRPC.
# Screenshots: $SUITE_DIR/webapp-*.png.
set -uo pipefail
: "${UDACONNECT_HTTP_URL:?the stack did not start udaconnect-httpd}"
cd "$TOP"
rc=0
last=0
# run_tap NAME: test/http/NAME.py, its TAP numbered on from the scripts before it
run_tap() {
  TAP_START=$((last + 1)) python3 "test/http/$1.py" > "$SUITE_DIR/$1.tap" 2>&1 || rc=1
  cat "$SUITE_DIR/$1.tap"
  last=$((last + $(grep -cE '^(ok|not ok) [0-9]+' "$SUITE_DIR/$1.tap")))
}
for t in test_api test_places test_encounters test_write_rounds test_oversized test_tls; do run_tap "$t"; done
missing=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
[ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ] || missing+=(chromium-driver)
python3 -c 'import selenium' 2>/dev/null || missing+=(python3-selenium)
if [ ${#missing[@]} -eq 0 ]; then
  # the browser test sends points through grpcd (python3-grpcio, stubs from proto/)
  mkdir -p "$SUITE_DIR/gen"
  /usr/bin/python3 -m grpc_tools.protoc -I"$TOP/proto" -I/usr/include --python_out="$SUITE_DIR/gen" \
    --grpc_python_out="$SUITE_DIR/gen" udaconnect/v1/location.proto udaconnect/v1/location_service.proto
  HOME=$SUITE_DIR TAP_START=$((last + 1)) \
    python3 test/http/browser_test.py || rc=1
else
  echo "not ok $((last + 1)) - the browser test needs ${missing[*]} (scripts/deps.sh installs them)"
  rc=1
fi
exit $rc
