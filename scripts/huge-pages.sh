#!/usr/bin/env bash
# Huge pages for the local stack's PostgreSQL, as a production server with
# gigabytes of shared_buffers is configured (PostgreSQL's documentation,
# "Linux Huge Pages"): reads that hop between heap pages (encounters(), the
# finder's heap fetches) otherwise spend much of their time in TLB misses.
# PostgreSQL's default huge_pages = try takes them when they are there.
#   scripts/huge-pages.sh reserve   add what the stack's shared_buffers needs
#                                   to vm.nr_hugepages (root only; remembered)
#   scripts/huge-pages.sh release   give back what `reserve` added
# `make bench` reserves before its stack starts and releases after (every
# comparison of a run is made on the same server either way);
# UDACONNECT_HUGE_PAGES=off skips it.  Without root it does nothing.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
F=/proc/sys/vm/nr_hugepages
STATE=$TOP/.run/huge-pages.added
case "${1:-}" in
reserve)
  [ "${UDACONNECT_HUGE_PAGES:-on}" != off ] && [ "$(id -u)" = 0 ] && [ -w $F ] || exit 0
  sb_mb=$("$TOP/scripts/shared-buffers.sh"); sb_mb=${sb_mb%MB}
  # 2 MB pages for the buffers and the rest of the segment (~6 %)
  need=$(( sb_mb / 2 + sb_mb / 16 + 32 ))
  before=$(cat $F)
  if echo $(( before + need )) > $F 2>/dev/null && [ "$(cat $F)" -ge $(( before + need )) ]; then
    mkdir -p "$TOP/.run"; echo "$need" > "$STATE"
    echo "huge-pages: $need pages of 2 MB reserved for PostgreSQL's shared memory"
  else
    echo "$before" > $F 2>/dev/null
    echo "huge-pages: the kernel could not reserve $need pages of 2 MB; PostgreSQL runs on 4 kB pages"
  fi
  ;;
release)
  [ -f "$STATE" ] && [ -w $F ] || exit 0
  n=$(cat "$STATE"); rm -f "$STATE"
  cur=$(cat $F); echo $(( cur > n ? cur - n : 0 )) > $F 2>/dev/null || true
  ;;
*) echo "usage: $0 reserve|release" >&2; exit 2 ;;
esac
