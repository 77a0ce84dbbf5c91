#!/usr/bin/env bash
# Stack hook: the PostgreSQL 15 cluster with PostGIS and pg_udaconnect, on
# 127.0.0.1:$UDACONNECT_PGPORT, data in $RUN_DIR/pgdata, database
# geoconnections, seed data loaded on first start.
set -euo pipefail
PGDATA=$RUN_DIR/pgdata
DB=geoconnections
export PGHOST=127.0.0.1 PGPORT=$UDACONNECT_PGPORT PGUSER=postgres PGDATABASE=$DB

case "$1" in
start)
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    UDACONNECT_PG_SHARED_BUFFERS=$("$TOP/scripts/shared-buffers.sh")
    "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1
    cat >> "$PGDATA/postgresql.conf" <<CONF
# --- UdaConnect local stack ---
listen_addresses = '127.0.0.1'
port = $UDACONNECT_PGPORT
unix_socket_directories = '$RUN_DIR'
shared_preload_libraries = 'pg_udaconnect'
max_connections = 200
shared_buffers = $UDACONNECT_PG_SHARED_BUFFERS
work_mem = 16MB
maintenance_work_mem = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
synchronous_commit = on
# a hot standby can be made of it (pg_basebackup -R -U udaconnect_replicator;
# test/suites/65-standby.sh): initdb's pg_hba.conf already lets 127.0.0.1
# replicate
wal_level = replica
max_wal_senders = 10
hot_standby = on
log_line_prefix = '%m [%p] %b '
include_dir = '$RUN_DIR/conf.d'
CONF
  fi
  # unix socket path must stay short (107 bytes): fall back to TCP only
  if [ ${#RUN_DIR} -gt 90 ]; then
    sed -i "s|^unix_socket_directories = .*|unix_socket_directories = ''|" "$PGDATA/postgresql.conf"
  fi
  if ! "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOG_DIR/postgresql.log" -w -t 60 start >/dev/null
  fi
  if ! psql -d postgres -XtAc "select 1 from pg_database where datname='$DB'" | grep -q 1; then
    createdb "$DB"
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_udaconnect CASCADE"
    if [ "$UDACONNECT_SEED" = 1 ]; then
      "$TOP/scripts/run_db_command.sh" | sed 's/^/  seed: /'
    fi
  else
    psql -X -q -v ON_ERROR_STOP=1 -c "ALTER EXTENSION pg_udaconnect UPDATE" >/dev/null
  fi
  # The role a hot standby copies and streams as, as in the image
  # (deployment/docker/postgres/init.sql): REPLICATION and nothing else, so
  # 65-standby proves that this is enough.  No password: the local stack
  # trusts 127.0.0.1.  Every start, so an older run directory gets it too.
  psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SELECT 'CREATE ROLE udaconnect_replicator'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'udaconnect_replicator') \gexec
ALTER ROLE udaconnect_replicator LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    NOBYPASSRLS CONNECTION LIMIT 5;
SQL
  cat >> "$RUN_DIR/env" <<ENV
export PGHOST=127.0.0.1 PGPORT=$UDACONNECT_PGPORT PGUSER=postgres PGDATABASE=$DB
export UDACONNECT_DATABASE_URL='host=127.0.0.1 port=$UDACONNECT_PGPORT user=postgres dbname=$DB'
ENV
  echo "PostgreSQL  postgresql://postgres@127.0.0.1:$UDACONNECT_PGPORT/$DB   (psql -h 127.0.0.1 -p $UDACONNECT_PGPORT -U postgres $DB)" >> "$RUN_DIR/endpoints"
  ;;
stop)
  if [ -f "$PGDATA/PG_VERSION" ] && "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
  fi
  ;;
status)
  "$PGBIN/pg_ctl" -D "$PGDATA" status || true ;;
esac
