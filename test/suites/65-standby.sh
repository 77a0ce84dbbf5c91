#!/usr/bin/env bash
# 65-standby: reads on a streaming hot standby (issue 16).  Makes a hot
# standby of the stack's PostgreSQL with pg_basebackup -R on its own port
# (PGPORT+1, or UDACONNECT_STANDBY_PGPORT), starts two udaconnect-httpd and a
# udaconnect-grpcd with UDACONNECT_DATABASE_READ_URL = the standby then the
# primary, and proves with curl, python3-grpcio and psql that the GET routes
# and FindConnections are answered there, writes go to the primary, a
# caller reads their own writes at once (per caller, and across replicas by
# the cookie), the live streams stay on the primary, the ingest workers stay
# idle on the standby, reads go on through an immediate shutdown of the
# standby with at most one retry, and, promoted, the standby resumes the
# ingest from its own replicated offsets, exactly once
# (test/standby/test_standby.py).  The copy is made and streams as
# udaconnect_replicator (REPLICATION only; the stack hook makes it, as the
# image's init.sql does).  About 15 s on the 2-core machine after the other
# suites (the base backup of the stack's database is most of it).
set -uo pipefail
: "${UDACONNECT_HTTP_URL:?the stack did not start udaconnect-httpd}"
: "${UDACONNECT_GRPC_ADDR:?the stack did not start udaconnect-grpcd}"
: "${PGPORT:?the stack did not start PostgreSQL}"
PGBIN=$("${PG_CONFIG:-pg_config}" --bindir)
export PGBIN
PY=/usr/bin/python3
rm -rf "$SUITE_DIR/gen" "$SUITE_DIR/standby" "$SUITE_DIR/standby.log"
mkdir -p "$SUITE_DIR/gen"
$PY -m grpc_tools.protoc -I"$TOP/proto" -I/usr/include --python_out="$SUITE_DIR/gen" --grpc_python_out="$SUITE_DIR/gen" \
  udaconnect/v1/location.proto udaconnect/v1/location_service.proto
rc=0
$PY "$TOP/test/standby/test_standby.py" || rc=1
# never leave the standby running (the script stops it; this is for a crash)
if [ -f "$SUITE_DIR/standby/postmaster.pid" ]; then
  "$PGBIN/pg_ctl" -D "$SUITE_DIR/standby" -m immediate stop >/dev/null 2>&1 || true
fi
exit $rc
