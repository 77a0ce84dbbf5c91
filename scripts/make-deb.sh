#!/usr/bin/env bash
# `make deb`: builds the Debian packages postgresql-15-udaconnect and
# udaconnect-gateways from this tree with debhelper and pg_buildext
# (debian/), into build/deb/ (gitignored), then runs lintian on them
# (build/deb/lintian.txt).  dpkg-buildpackage writes its results into the
# parent of the source directory, so it builds a copy of the tree's files
# (tracked and untracked, not ignored: no objects, no .run) in
# build/deb/src/udaconnect-VERSION.
#
#   scripts/make-deb.sh [OUTDIR]      default build/deb
#   scripts/make-deb.sh --build-deps  print debian/control's Build-Depends names
#                                     (for a bare Debian 12: scripts/deploy.sh --build)
# The build-only packages are in scripts/deps.sh (debhelper, postgresql-server-dev-all, ...).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${1:-}" = --build-deps ]; then
  sed -n '/^Build-Depends:/,/^[A-Z]/{/^ /p}' "$TOP/debian/control" | sed 's/[ ,]//g; s/(.*//' | grep -vx debhelper-compat | tr '\n' ' '
  echo
  exit 0
fi
OUT=${1:-$TOP/build/deb}
cd "$TOP"

# one version: the extension's default_version is the packages' version
ext=$(sed -n "s/^default_version = '\(.*\)'/\1/p" pg_udaconnect/pg_udaconnect.control)
deb=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$ext" != "$deb" ]; then
  echo "make deb: debian/changelog is at $deb but pg_udaconnect.control's default_version is $ext:" >&2
  echo "  add a debian/changelog entry for $ext (dch -v $ext)" >&2
  exit 1
fi
for tool in dpkg-buildpackage dh pg_buildext; do
  command -v "$tool" >/dev/null || { echo "make deb: $tool is missing: run scripts/deps.sh" >&2; exit 1; }
done

rm -rf "$OUT"
src=$OUT/src/udaconnect-$deb
mkdir -p "$src"
if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$TOP" ls-files -co --exclude-standard -z \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -C "$src" -xf -
else
  tar -C "$TOP" --exclude=./.run --exclude=./build --exclude='*.o' -cf - . | tar -C "$src" -xf -
fi

start=$(date +%s)
(cd "$src" && dpkg-buildpackage -b -us -uc) > "$OUT/build.log" 2>&1 || {
  tail -n 60 "$OUT/build.log" >&2
  echo "make deb: dpkg-buildpackage failed (log: $OUT/build.log)" >&2
  exit 1
}
mv "$OUT"/src/*.deb "$OUT"/src/*.buildinfo "$OUT"/src/*.changes "$OUT"/
rm -rf "$OUT/src"
echo "make deb: built in $(( $(date +%s) - start )) s:"
ls -1 "$OUT"/*.deb | sed 's|^|  |'

if command -v lintian >/dev/null; then
  # as root lintian wants to be told; the findings are what they are either way
  lintian --allow-root --info --pedantic "$OUT"/*.changes > "$OUT/lintian.txt" 2>&1 || true
  echo "make deb: lintian: $(grep -c '^E:' "$OUT/lintian.txt" || true) errors, $(grep -c '^W:' "$OUT/lintian.txt" || true) warnings, $(grep -c '^[IP]:' "$OUT/lintian.txt" || true) notes ($OUT/lintian.txt; docs/packages.md explains those left)"
  grep -E '^[EW]:' "$OUT/lintian.txt" | sed 's|^|  |' || true
fi
