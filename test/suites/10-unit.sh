#!/usr/bin/env bash
# Unit tests (built by `make`): the PostgreSQL-independent core
# (test/unit/test_core), the gateways' JWT layer (test/unit/test_auth) and
# their reader of encounter notifications (test/unit/test_encnotify),
# each plainly and under AddressSanitizer + UndefinedBehaviorSanitizer; the
# JWT layer against PyJWT (auth_pyjwt.py, with Debian's python3-jwt) and its
# cost per verification (auth_bench).  Each program numbers its TAP lines
# from 1; here they are moved up by 100 per program so that the numbers stay
# distinct, and the sanitizer runs are marked [asan].
set -uo pipefail
U=$TOP/test/unit
rc=0

# tap OFFSET TAG COMMAND...: the command's TAP lines renumbered, its own plan dropped
tap() {
  local off=$1 tag=$2
  shift 2
  "$@" 2>&1 | awk -v off="$off" -v tag="$tag" '
    /^(not )?ok [0-9]+ - / { n = ($1 == "not") ? 3 : 2; $n = $n + off; if (tag != "") sub(/ - /, " - " tag " "); print; next }
    /^1\.\./ { next }
    { print }'
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
}

tap 0 "" "$U/test_core"
tap 100 "[asan]" "$U/test_core_asan"
tap 200 "" "$U/test_auth"
tap 300 "[asan]" "$U/test_auth_asan"
tap 400 "" /usr/bin/python3 "$U/auth_pyjwt.py" "$TOP"
tap 500 "" "$U/auth_bench"
tap 600 "" "$U/test_encnotify"
tap 700 "[asan]" "$U/test_encnotify_asan"
exit $rc
