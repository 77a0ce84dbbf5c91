# Shared by the Kafka ingest benchmarks (test/bench/20-ingest.sh,
# 25-encounters.sh); sourced, not run.  What it holds: the benchmark's own
# development broker, waiting for the ingest workers, their CPU time, and
# the server-side COPY baseline.  What it must not do: decide what is
# measured or print results (each benchmark prints its own table).
# Needs TOP, RUN_DIR, BENCH_DIR and the stack's environment (PG* variables).

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
q() { "${PSQL[@]}" -c "$1"; }
# no NOTICEs (DROP ... IF EXISTS and the like) between the benchmark's lines
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
HZ=$(getconf CLK_TCK)

# Start a development broker of the benchmark's own with the given topics,
# $1 partitions each: BROKERS is set, and ingest_broker_stop ends it.  The
# development broker keeps at most ~5 MB per partition (librdkafka mock
# cluster), so 1M pre-filled messages need many partitions.
ingest_broker_start() {
  local parts=$1 t args=()
  shift
  for t in "$@"; do args+=(-t "$t"); done
  rm -f "$BENCH_DIR/bootstrap"
  "$TOP/scripts/devkafka/udaconnect-devkafka" -q "${args[@]}" -p "$parts" -f "$BENCH_DIR/bootstrap" \
      -P "$BENCH_DIR/devkafka.pid" 2>>"$BENCH_DIR/devkafka.log" &
  for _ in $(seq 1 100); do [ -s "$BENCH_DIR/bootstrap" ] && break; sleep 0.1; done
  BROKERS=$(cat "$BENCH_DIR/bootstrap")
}
ingest_broker_stop() {
  [ -s "$BENCH_DIR/devkafka.pid" ] && kill "$(cat "$BENCH_DIR/devkafka.pid")" 2>/dev/null || true
}

# The ingest settings back to the stack's (on exit)
ingest_settings_reset() {
  q "ALTER SYSTEM RESET udaconnect.kafka_brokers" >/dev/null 2>&1 || true
  q "ALTER SYSTEM RESET udaconnect.kafka_topic" >/dev/null 2>&1 || true
  q "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}

# Commit timestamps are how the benchmarks time batches and latency: turn
# track_commit_timestamp on (a restart) unless it is.
ingest_track_commits() {
  local pgbin
  if [ "$(q 'SHOW track_commit_timestamp')" != on ]; then
    pgbin=${PGBIN:-$(${PG_CONFIG:-pg_config} --bindir)}
    q "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
    "$pgbin/pg_ctl" -D "$RUN_DIR/pgdata" -l "$RUN_DIR/log/postgresql.log" -w -t 60 restart -m fast >/dev/null
    for _ in $(seq 1 50); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

# Wait until the workers have committed offsets summing to $2 in topic $1
# (at most $3 seconds), polling from one server-side loop: a psql per poll
# (a process and a backend each time) took ~20 % of the 2 CPUs away from the
# workers.
wait_offsets() {
  q "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); done bigint;
     BEGIN
       LOOP
         SELECT coalesce(sum(next_offset), 0) INTO done FROM udaconnect.ingest_offset WHERE topic = '$1';
         EXIT WHEN done >= $2;
         IF clock_timestamp() - t0 > interval '$3 seconds' THEN
           RAISE EXCEPTION 'offsets reached % of %', done, $2;
         END IF;
         COMMIT;  -- no snapshot held across polls (it would hold back vacuum)
         PERFORM pg_sleep(0.05);
       END LOOP;
     END \$\$" >/dev/null
}

# CPU ticks (user + system) of the given processes
cpu_ticks() {
  local t=0 p
  for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
ingest_worker_pids() {
  q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'"
}

# Rows with id > $1 committed, and the seconds from the first to the last
# commit; the first batch's own rows are not counted (its start is unknown).
ingest_rate_rows() {
  q "WITH tx AS (SELECT pg_xact_commit_timestamp(xmin) AS ts, count(*) AS n
                   FROM udaconnect.location WHERE id > $1 GROUP BY 1)
     SELECT sum(n) - (SELECT n FROM tx ORDER BY ts LIMIT 1),
            extract(epoch FROM max(ts) - min(ts)) FROM tx" | tr '|' ' '
}

# (a) the practical limit: server-side binary COPY of the locations with
# id > $1 into an empty table of the same shape (indexes, generated cell
# column, the person trigger; no encounter maintenance).  A partitioned
# location (1.5) has its indexes on each partition, none on the table: the
# copy gets those of the partition that holds most of the rows.  Prints
# "milliseconds CPU-ticks" of the COPY and its backend.
copy_baseline() {
  local dump=$BENCH_DIR/rows.bin out ms c0 c1
  q "COPY (SELECT person_id, coordinate, creation_time FROM udaconnect.location WHERE id > $1 ORDER BY id)
     TO '$dump' (FORMAT binary)"
  q "DROP TABLE IF EXISTS public.bench_copy_location;
     CREATE TABLE public.bench_copy_location (LIKE udaconnect.location INCLUDING ALL);
     CREATE TRIGGER bench_copy_person_fk AFTER INSERT ON public.bench_copy_location
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
       EXECUTE FUNCTION udaconnect.location_check_person();
     DO \$\$
     DECLARE
       def text;
     BEGIN
       FOR def IN SELECT regexp_replace(pg_get_indexdef(i.indexrelid), 'INDEX \\S+ ON \\S+', 'INDEX ON public.bench_copy_location')
                    FROM pg_index i
                   WHERE i.indrelid = (SELECT tableoid FROM udaconnect.location WHERE id > $1
                                        GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)
                     AND i.indrelid <> 'udaconnect.location'::regclass
                     AND NOT EXISTS (SELECT 1 FROM pg_index j WHERE j.indrelid = 'public.bench_copy_location'::regclass)
       LOOP
         EXECUTE def;
       END LOOP;
     END \$\$;
     CHECKPOINT"
  out=$("${PSQL[@]}" <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv UDC_COPY_PID :pid
\! awk '{print "cpu0", \$14 + \$15}' /proc/\$UDC_COPY_PID/stat
\timing on
COPY public.bench_copy_location (person_id, coordinate, creation_time) FROM '$dump' (FORMAT binary);
\timing off
\! awk '{print "cpu1", \$14 + \$15}' /proc/\$UDC_COPY_PID/stat
SQL
)
  ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
  c0=$(sed -n 's/^cpu0 //p' <<<"$out")
  c1=$(sed -n 's/^cpu1 //p' <<<"$out")
  q "DROP TABLE public.bench_copy_location"
  rm -f "$dump"
  echo "$ms $((c1 - c0))"
}

ratio() { echo "scale=2; $1 / $2" | bc; }
cpu_rate() { if [ "${2:-0}" -gt 0 ]; then echo "$1 * $HZ / $2" | bc; else echo "-"; fi; }
verdict() { if [ "$(echo "$1 >= $2" | bc)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
