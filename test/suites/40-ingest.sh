#!/usr/bin/env bash
# Kafka ingest suite: TAP tests on PostgreSQL::Test::Cluster (each test runs
# its own PostgreSQL with shared_preload_libraries = 'pg_udaconnect' and its
# own development broker), run with prove -v so every "ok" line reaches the
# runner.  Scratch files go to $SUITE_DIR/tmp_check.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$TOP/.run/suites/40-ingest}
PGBIN=${PGBIN:-$(${PG_CONFIG:-pg_config} --bindir)}
PGXS_DIR=$(dirname "$(${PG_CONFIG:-pg_config} --pgxs)")/..
export TOP
export PATH="$PGBIN:$PATH"
export PERL5LIB="$PGXS_DIR/test/perl:$TOP/test/t${PERL5LIB:+:$PERL5LIB}"
export PG_REGRESS="$PGXS_DIR/test/regress/pg_regress"
export TESTDIR="$SUITE_DIR"
export PG_TEST_PORT_DIR="$SUITE_DIR/portlock"
mkdir -p "$PG_TEST_PORT_DIR"
# the tests use their own clusters and brokers, not the stack's
unset PGHOST PGPORT PGUSER PGDATABASE UDACONNECT_KAFKA_BROKERS
cd "$SUITE_DIR" || exit 1
rc=0
for t in "$TOP"/test/t/*_ingest_*.pl; do
  prove -v "$t" 2>&1 || rc=1
done
exit $rc
