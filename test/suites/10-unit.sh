#!/usr/bin/env bash
# Unit tests of the PostgreSQL-independent core (built by `make`).
set -euo pipefail
exec "$TOP/test/unit/test_core"
