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
rc=0

# 1. the running stack: its broker (10-kafka.sh) feeds its PostgreSQL
stack_check() {
  local n=300 pid got i
  if [ -z "${UDACONNECT_KAFKA_BROKERS:-}" ] || [ -z "${PGPORT:-}" ]; then
    echo "not ok 1 - stack: UDACONNECT_KAFKA_BROKERS and PGPORT are set by the stack"; return 1
  fi
  echo "ok 1 - stack: UDACONNECT_KAFKA_BROKERS and PGPORT are set by the stack"
  # a fresh stack's workers start a few seconds after its database exists
  for i in $(seq 1 150); do
    got=$(psql -XAtc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' AND query <> 'waiting for CREATE EXTENSION'")
    [ "${got:-0}" -ge 1 ] && break
    sleep 0.2
  done
  if [ "${got:-0}" -ge 1 ]; then echo "ok 2 - stack: $got ingest worker(s) running"; else echo "not ok 2 - stack: no ingest worker running"; return 1; fi
  pid=$(psql -XAtc "SELECT (udaconnect.create_person('Ingest', 'Suite', 'Kafka Test Ltd')).id")
  "$TOP/scripts/devkafka/udaconnect-produce" -q -b "$UDACONNECT_KAFKA_BROKERS" -t "${UDACONNECT_KAFKA_TOPIC:-locations}" \
      -n $n -p "$pid:$pid" -B 0 -T 1600000000 -o "$SUITE_DIR/stack-expect.txt"
  for i in $(seq 1 300); do
    got=$(psql -XAtc "SELECT count(*) FROM udaconnect.location WHERE person_id = $pid")
    [ "$got" = $n ] && break
    sleep 0.2
  done
  if [ "$got" = $n ]; then echo "ok 3 - stack: $n messages produced to the stack's broker became $n rows"
  else echo "not ok 3 - stack: $n messages produced, $got rows"; fi
  # leave the shared stack as it was for the suites that follow
  psql -Xq -c "DELETE FROM udaconnect.location WHERE person_id = $pid" -c "DELETE FROM udaconnect.person WHERE id = $pid"
  [ "$got" = $n ]
}
stack_check || rc=1

# 2. the TAP tests use their own clusters and brokers, not the stack's
unset PGHOST PGPORT PGUSER PGDATABASE UDACONNECT_KAFKA_BROKERS
cd "$SUITE_DIR" || exit 1
for t in "$TOP"/test/t/*_ingest_*.pl; do
  prove -v "$t" 2>&1 || rc=1
done
exit $rc
