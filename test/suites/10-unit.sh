#!/usr/bin/env bash
# Unit tests of the PostgreSQL-independent core (built by `make`), plainly
# and under AddressSanitizer + UndefinedBehaviorSanitizer (TAP numbering is
# continued so the runner counts both).
set -uo pipefail
"$TOP/test/unit/test_core" | grep -v '^1\.\.'
rc1=${PIPESTATUS[0]}
"$TOP/test/unit/test_core_asan" 2>&1 | awk '
  /^(not )?ok [0-9]+ - / { n = ($1 == "not") ? 3 : 2; $n = $n + 100; sub(/ - /, " - [asan] "); print; next }
  /^1\.\./ { next }
  { print }'
rc2=${PIPESTATUS[0]}
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]
