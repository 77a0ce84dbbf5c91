#!/usr/bin/env bash
# pg_regress suite (test/sql, test/expected) over the whole SQL API, run
# against the stack's server in a database of its own; one TAP line per file.
set -uo pipefail
REGRESS=$(sed -n 's/^REGRESS *= *//p' "$TOP/pg_udaconnect/Makefile")
PGXS_DIR=$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")
"$PGXS_DIR/../test/regress/pg_regress" \
  --inputdir="$TOP/test" --outputdir="$SUITE_DIR" \
  --bindir="$(${PG_CONFIG:-pg_config} --bindir)" \
  --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
  --dbname=udaconnect_regress \
  --load-extension=postgis --load-extension=pg_udaconnect \
  $REGRESS > "$SUITE_DIR/pg_regress.out" 2>&1
rc=$?
cat "$SUITE_DIR/pg_regress.out" | sed 's/^/# /'
n=0
while read -r name result; do
  n=$((n + 1))
  if [ "$result" = ok ]; then echo "ok $n - pg_regress $name"; else echo "not ok $n - pg_regress $name"; fi
done < <(sed -nE 's/^(test )?[ ]*([a-z0-9_]+)[ ]+\.\.\. (ok|FAILED).*/\2 \3/p' "$SUITE_DIR/pg_regress.out")
if [ $rc -ne 0 ] && [ -f "$SUITE_DIR/regression.diffs" ]; then
  sed 's/^/# /' "$SUITE_DIR/regression.diffs" | head -200
fi
[ $n -gt 0 ] || { echo "not ok 1 - pg_regress ran no test"; exit 1; }

# isolation specs (test/specs): two sessions, steps interleaved as written
ISOLATION=$(sed -n 's/^ISOLATION *= *//p' "$TOP/pg_udaconnect/Makefile")
mkdir -p "$SUITE_DIR/isolation"
"$PGXS_DIR/../test/isolation/pg_isolation_regress" \
  --inputdir="$TOP/test" --outputdir="$SUITE_DIR/isolation" \
  --bindir="$(${PG_CONFIG:-pg_config} --bindir)" \
  --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
  --dbname=udaconnect_isolation \
  --load-extension=postgis --load-extension=pg_udaconnect \
  $ISOLATION > "$SUITE_DIR/isolation/pg_isolation_regress.out" 2>&1
irc=$?
sed 's/^/# /' "$SUITE_DIR/isolation/pg_isolation_regress.out"
m=0
while read -r name result; do
  m=$((m + 1)); n=$((n + 1))
  if [ "$result" = ok ]; then echo "ok $n - isolation $name"; else echo "not ok $n - isolation $name"; fi
done < <(sed -nE 's/^(test )?[ ]*([a-z0-9_]+)[ ]+\.\.\. (ok|FAILED).*/\2 \3/p' "$SUITE_DIR/isolation/pg_isolation_regress.out")
if [ $irc -ne 0 ] && [ -f "$SUITE_DIR/isolation/regression.diffs" ]; then
  sed 's/^/# /' "$SUITE_DIR/isolation/regression.diffs" | head -200
fi
[ $m -gt 0 ] || { n=$((n + 1)); echo "not ok $n - pg_isolation_regress ran no test"; }
exit 0
