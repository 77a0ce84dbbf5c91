#!/bin/bash
# Entrypoint of the udaconnect/postgres image (deployment/docker/postgres.Dockerfile).
#
# First start (no $PGDATA/PG_VERSION): initdb, append the UdaConnect settings
# (/usr/share/udaconnect/postgresql.conf: shared_preload_libraries and an
# include of the ConfigMap-mounted file), install the image's pg_hba.conf
# (/usr/share/udaconnect/pg_hba.conf), then, on a server that listens on
# the unix socket only and with the Kafka workers held idle, run init.sql:
# database geoconnections, CREATE EXTENSION pg_udaconnect CASCADE, the
# login roles the gateways use and the replication role of the hot standby.
# Every start: exec postgres (PID 1's child, under tini).
#
# Later starts change nothing in $PGDATA: after the first start its files are
# the operator's (hand edits, a restored backup), and a role needs SQL on a
# running server anyway.  A primary initialised by an older image gets the
# replication role and the new pg_hba.conf by hand: docs/deployment.md,
# "Hot standby for reads".
#
# Environment (the Kubernetes manifests set these from the Secret and ConfigMap):
#   POSTGRES_PASSWORD              superuser password (TCP logins; the local
#                                  socket trusts every local user, so
#                                  `kubectl exec ... psql -U postgres` works)
#   UDACONNECT_API_PASSWORD        password of role udaconnect_api    (udaconnect-httpd)
#   UDACONNECT_READER_PASSWORD     password of role udaconnect_reader (udaconnect-grpcd reads)
#   UDACONNECT_REPLICATION_PASSWORD  password of role udaconnect_replicator
#                                  (REPLICATION only: the hot standby's copy and stream)
#   PGDATA   (default /var/lib/postgresql/data/pgdata)
#   PGPORT   (default 5432)        PGHOST / socket directory (default /var/run/postgresql)
#   PGBIN    (default /usr/lib/postgresql/15/bin)
#   UDACONNECT_SHARE (default /usr/share/udaconnect): init.sql, postgresql.conf, pg_hba.conf
#   UDACONNECT_DATABASE (default geoconnections)
# Extra arguments are passed to postgres (e.g. -c work_mem=32MB).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
PGPORT=${PGPORT:-5432}
SOCKET_DIR=${PGHOST:-/var/run/postgresql}
SHARE=${UDACONNECT_SHARE:-/usr/share/udaconnect}
DB=${UDACONNECT_DATABASE:-geoconnections}
export PGDATA PGPORT PGHOST=$SOCKET_DIR

log() { echo "udaconnect-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$(id -u)" = 0 ]; then
  die "refusing to run as root; run as the postgres user (uid 999 in the image)"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || die "POSTGRES_PASSWORD is not set (scripts/deploy.sh puts it in the Secret udaconnect-secrets)"
  [ -n "${UDACONNECT_API_PASSWORD:-}" ] || die "UDACONNECT_API_PASSWORD is not set"
  [ -n "${UDACONNECT_READER_PASSWORD:-}" ] || die "UDACONNECT_READER_PASSWORD is not set"
  [ -n "${UDACONNECT_REPLICATION_PASSWORD:-}" ] || die "UDACONNECT_REPLICATION_PASSWORD is not set (scripts/deploy.sh puts it in the Secret udaconnect-secrets, key replication-password)"
  for f in init.sql postgresql.conf pg_hba.conf; do
    [ -f "$SHARE/$f" ] || die "$SHARE/$f is missing"
  done
  log "initialising $PGDATA"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo
    echo "# --- UdaConnect (from $SHARE/postgresql.conf) ---"
    echo "port = $PGPORT"
    echo "unix_socket_directories = '$SOCKET_DIR'"
    cat "$SHARE/postgresql.conf"
  } >> "$PGDATA/postgresql.conf"
  # Who may log in from where, and replicate (only udaconnect_replicator, the
  # hot standby's role): the image's file, whole (its header says why).
  cp "$SHARE/pg_hba.conf" "$PGDATA/pg_hba.conf"
  chmod 0600 "$PGDATA/pg_hba.conf"

  log "creating database $DB, extension pg_udaconnect and roles"
  # Socket only, and the ingest workers idle while the schema is created.
  "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 120 -l "$PGDATA/init.log" \
      -o "-c listen_addresses='' -c udaconnect.kafka_brokers=''" start >/dev/null
  if ! "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres \
        -v db="$DB" -f "$SHARE/init.sql"; then
    "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
    # leave no half-initialised cluster behind: the next start retries
    rm -rf "${PGDATA:?}"/* 2>/dev/null || true
    die "init.sql failed (see the messages above)"
  fi
  "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 stop >/dev/null
  log "initialisation done"
fi

exec "$PGBIN/postgres" -D "$PGDATA" "$@"
