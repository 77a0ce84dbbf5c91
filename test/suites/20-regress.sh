#!/usr/bin/env bash
# pg_regress suite (test/sql, test/expected) over the whole SQL API, then
# the isolation specs (test/specs: several sessions, steps interleaved as
# written), each run against the stack's server in a database of its own;
# one TAP line per file.
set -uo pipefail
PGXS_DIR=$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")
n=0

# run LABEL RUNNER MAKEVAR DB: the tests the Makefile lists in MAKEVAR,
# with PostgreSQL's runner, into $SUITE_DIR/LABEL; TAP lines go on from $n
run() {
  local label=$1 runner=$2 tests out=$SUITE_DIR/$1 rc count=0 name result
  tests=$(sed -n "s/^$3 *= *//p" "$TOP/pg_udaconnect/Makefile")
  mkdir -p "$out"
  "$PGXS_DIR/../test/$runner" \
    --inputdir="$TOP/test" --outputdir="$out" \
    --bindir="$(${PG_CONFIG:-pg_config} --bindir)" \
    --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
    --dbname="$4" \
    --load-extension=postgis --load-extension=pg_udaconnect \
    $tests > "$out/run.out" 2>&1
  rc=$?
  sed 's/^/# /' "$out/run.out"
  while read -r name result; do
    count=$((count + 1)); n=$((n + 1))
    if [ "$result" = ok ]; then echo "ok $n - $label $name"; else echo "not ok $n - $label $name"; fi
  done < <(sed -nE 's/^(test )?[ ]*([a-z0-9_]+)[ ]+\.\.\. (ok|FAILED).*/\2 \3/p' "$out/run.out")
  if [ $rc -ne 0 ] && [ -f "$out/regression.diffs" ]; then
    sed 's/^/# /' "$out/regression.diffs" | head -200
  fi
  [ $count -gt 0 ] || { n=$((n + 1)); echo "not ok $n - $label ran no test"; }
}

run pg_regress regress/pg_regress REGRESS udaconnect_regress
run isolation isolation/pg_isolation_regress ISOLATION udaconnect_isolation
exit 0
