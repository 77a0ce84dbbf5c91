#!/usr/bin/env bash
# Prints the local stack's shared_buffers, e.g. "2048MB": the one rule for
# it, used by scripts/stack.d/20-postgres.sh (initdb) and
# scripts/huge-pages.sh (how many huge pages that needs).
# UDACONNECT_PG_SHARED_BUFFERS if set (in MB, with or without the unit),
# else 1/8 of the RAM between 128MB and 2GB: the finder's index pages of the
# days asked about should stay in PostgreSQL's own cache (docs/design.md).
set -euo pipefail
if [ -n "${UDACONNECT_PG_SHARED_BUFFERS:-}" ]; then
  echo "${UDACONNECT_PG_SHARED_BUFFERS%MB}MB"
  exit 0
fi
mb=$(( $(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) / 8 ))
[ "$mb" -lt 128 ] && mb=128
[ "$mb" -gt 2048 ] && mb=2048
echo "${mb}MB"
