#!/usr/bin/env bash
# Runs the udaconnect/postgres image's entrypoint and init.sql for real, on
# this machine's PostgreSQL 15 (the image installs the same Debian packages
# at the same paths), with the ConfigMap's postgresql-udaconnect.conf:
# first start (initdb, extension, roles), what the gateways' roles may and
# may not do, the seed path that scripts/run_db_command.sh POD uses
# (psql -U postgres -d geoconnections on the local socket, SQL on stdin),
# a restart that keeps the data, and a refused start without passwords.
# The hot standby's role (issue 16): the standby's own init-container script
# (from the rendered manifests when given, test_pg_entrypoint.sh
# RENDERED-STANDBY.yaml) copies the server with pg_basebackup as
# udaconnect_replicator, the password in PGPASSWORD only; the copy starts
# as a hot standby and streams as that role; the role can do nothing else
# (no SQL login over TCP, no privilege on the socket) and the superuser can
# no longer replicate from a host address.
#
# Must not run as root (the entrypoint refuses root, as in the image).
# Prints "ok - ..." / "not ok - ..." lines; the suite numbers them.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
W=$SUITE_DIR/pgimage
PORT=${UDACONNECT_DEPLOY_TEST_PGPORT:-$(( ${UDACONNECT_PGPORT:-54330} + 7 ))}
COPY_PORT=$((PORT + 1))       # the hot standby made of it
PGBIN=${PGBIN:-$("${PG_CONFIG:-pg_config}" --bindir)}
ENTRY=$TOP/deployment/docker/postgres/entrypoint.sh
RENDERED_STANDBY=${1:-}

ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
t() { # t DESC CMD...: ok when CMD succeeds
  local d=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$d"; else nok "$d" "${out:0:400}"; fi
}

rm -rf "$W"
mkdir -p "$W/share" "$W/sock"
cp "$TOP/deployment/docker/postgres/init.sql" "$TOP/deployment/docker/postgres/pg_hba.conf" "$W/share/"
# The image's settings, pointed at this test's copy of the ConfigMap file and
# listening on loopback only.
sed -e "s|'/etc/udaconnect/postgresql/udaconnect.conf'|'$W/udaconnect.conf'|" \
    -e "s|^listen_addresses = .*|listen_addresses = '127.0.0.1'|" \
    "$TOP/deployment/docker/postgres/postgresql.conf" > "$W/share/postgresql.conf"
# The ConfigMap's file as deployed, except: no broker (this server is not the
# stack's, its workers stay idle) and less memory.
sed -e "s|^udaconnect.kafka_brokers = .*|udaconnect.kafka_brokers = ''|" \
    -e "s|^shared_buffers = .*|shared_buffers = 64MB|" \
    "$TOP/deployment/config/postgresql-udaconnect.conf" > "$W/udaconnect.conf"

export PGDATA=$W/pgdata PGPORT=$PORT PGHOST=$W/sock UDACONNECT_SHARE=$W/share PGBIN
unset PGUSER PGDATABASE PGPASSWORD
SUPER_PW=super-$RANDOM$RANDOM API_PW=api-$RANDOM$RANDOM READER_PW=reader-$RANDOM$RANDOM REPL_PW=repl-$RANDOM$RANDOM

pid=""
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  pid=""
}
stop_copy() {
  if [ -f "$W/copy/postmaster.pid" ]; then
    "$PGBIN/pg_ctl" -D "$W/copy" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}
trap 'stop_copy; stop_server; rm -rf "$W/pgdata" "$W/copy"' EXIT

start_server() { # start_server LOG: entrypoint in the background, wait for TCP
  env POSTGRES_PASSWORD="$SUPER_PW" UDACONNECT_API_PASSWORD="$API_PW" UDACONNECT_READER_PASSWORD="$READER_PW" \
    UDACONNECT_REPLICATION_PASSWORD="$REPL_PW" bash "$ENTRY" >"$1" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

for p in "$PORT" "$COPY_PORT"; do
  if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$p"; then
    nok "ports $PORT and $COPY_PORT are free for the image test's servers" "something already answers on $p (set UDACONNECT_DEPLOY_TEST_PGPORT)"
    exit 0
  fi
done

# --- refused without passwords: clear message, nothing half-initialised ----
out=$(env -u POSTGRES_PASSWORD bash "$ENTRY" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q 'POSTGRES_PASSWORD is not set' <<<"$out" && [ ! -e "$PGDATA/PG_VERSION" ]; then
  ok "entrypoint refuses to initialise without POSTGRES_PASSWORD, naming it"
else
  nok "entrypoint refuses to initialise without POSTGRES_PASSWORD, naming it" "rc=$rc" "$out"
fi

out=$(env POSTGRES_PASSWORD=x UDACONNECT_API_PASSWORD=x UDACONNECT_READER_PASSWORD=x \
      bash -c 'unset UDACONNECT_REPLICATION_PASSWORD; exec bash "$1"' _ "$ENTRY" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q 'UDACONNECT_REPLICATION_PASSWORD is not set' <<<"$out" && [ ! -e "$PGDATA/PG_VERSION" ]; then
  ok "entrypoint refuses to initialise without UDACONNECT_REPLICATION_PASSWORD, naming it"
else
  nok "entrypoint refuses to initialise without UDACONNECT_REPLICATION_PASSWORD, naming it" "rc=$rc" "$out"
fi

# --- first start ---------------------------------------------------------------
if ! start_server "$W/first.log"; then
  nok "first start: initdb, init.sql, server accepts TCP connections" "$(tail -n 30 "$W/first.log")" "$(tail -n 30 "$PGDATA/init.log" 2>/dev/null)"
  exit 1
fi
ok "first start: initdb, init.sql, server accepts TCP connections"

# kubectl exec -i postgres-0 -- psql -U postgres -d geoconnections (local socket, no password)
sock_psql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$W/sock" -p "$PORT" -U postgres -d geoconnections "$@"; }
tcp_psql() { # tcp_psql USER PASSWORD SQL
  PGPASSWORD=$2 psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h 127.0.0.1 -p "$PORT" -U "$1" -d geoconnections -c "$3"
}
expect_fail() { # expect_fail SQLSTATE-or-text CMD...: the command fails with that text
  local want=$1; shift
  local out
  out=$("$@" 2>&1) && { echo "succeeded: $out"; return 1; }
  grep -q -- "$want" <<<"$out" || { echo "failed differently: $out"; return 1; }
}

out=$(echo "SELECT extversion FROM pg_extension WHERE extname = 'pg_udaconnect'; SELECT count(*) FROM pg_extension WHERE extname = 'postgis';" | sock_psql 2>&1)
if grep -qE '^[0-9][0-9.]*$' <<<"$(head -n1 <<<"$out")" && [ "$(tail -n1 <<<"$out")" = 1 ]; then
  ok "psql -U postgres -d geoconnections on the local socket, SQL on stdin: pg_udaconnect and postgis installed"
else
  nok "psql -U postgres -d geoconnections on the local socket, SQL on stdin: pg_udaconnect and postgis installed" "$out"
fi

t "superuser over TCP needs its password (scram-sha-256)" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'password authentication failed' tcp_psql postgres wrong-password 'SELECT 1' && tcp_psql postgres '$SUPER_PW' 'SELECT 1' >/dev/null"

out=$(sock_psql -c "SHOW shared_preload_libraries" 2>&1)
if grep -qw pg_udaconnect <<<"$out"; then ok "shared_preload_libraries loads pg_udaconnect"; else nok "shared_preload_libraries loads pg_udaconnect" "$out"; fi

# The ConfigMap's ingest settings are real settings of the library.
probs=()
while read -r name value; do
  got=$(sock_psql -c "SHOW $name" 2>&1) || { probs+=("SHOW $name: $got"); continue; }
  [ "$got" = "$value" ] || probs+=("$name is '$got', the ConfigMap says '$value'")
done < <(sed -n "s/^\(udaconnect\.[a-z_]*\) = '\{0,1\}\([^'#]*\)'\{0,1\}.*/\1 \2/p" "$W/udaconnect.conf" | sed 's/ *$//')
if grep -iE 'unrecognized configuration parameter|invalid configuration parameter|invalid value for parameter' "$W/first.log" >/dev/null; then
  probs+=("$(grep -iE 'unrecognized configuration parameter|invalid configuration parameter|invalid value for parameter' "$W/first.log" | head -n 3)")
fi
if [ ${#probs[@]} -eq 0 ]; then
  ok "the ConfigMap's udaconnect.* settings are accepted and in force ($(grep -c '^udaconnect\.' "$W/udaconnect.conf") settings)"
else
  nok "the ConfigMap's udaconnect.* settings are accepted and in force" "${probs[@]}"
fi

# --- the seed path of scripts/run_db_command.sh POD (same psql, same socket) ----
if [ -x "$TOP/scripts/run_db_command.sh" ]; then
  out=$(PGHOST=$W/sock PGPORT=$PORT PGUSER=postgres PGDATABASE=geoconnections "$TOP/scripts/run_db_command.sh" 2>&1)
  n=$(sock_psql -c "SELECT count(*) FROM udaconnect.person" 2>&1)
  if [ "${n:-0}" -gt 0 ] 2>/dev/null; then
    ok "the seed data loads through psql -U postgres -d geoconnections on the pod's socket ($n persons)"
  else
    nok "the seed data loads through psql -U postgres -d geoconnections on the pod's socket" "$out" "$n"
  fi
else
  ok "the seed data loads through psql on the pod's socket # SKIP scripts/run_db_command.sh missing"
fi

# --- the gateways' roles ------------------------------------------------------------
t "udaconnect_api (httpd) logs in with its password and calls the API functions" \
  tcp_psql udaconnect_api "$API_PW" "SELECT udaconnect.api_persons('organizer', NULL) IS NOT NULL"
t "udaconnect_api cannot read or change tables directly, nor create objects" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'ERROR:  42501' tcp_psql udaconnect_api '$API_PW' 'SELECT * FROM udaconnect.location LIMIT 1' &&
           expect_fail 'ERROR:  42501' tcp_psql udaconnect_api '$API_PW' 'DELETE FROM udaconnect.person' &&
           expect_fail 'ERROR:  42501' tcp_psql udaconnect_api '$API_PW' 'CREATE TABLE public.t (i int)'"
t "udaconnect_api with a wrong password is refused" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'password authentication failed' tcp_psql udaconnect_api wrong 'SELECT 1'"
pid1=$(sock_psql -c "SELECT min(id) FROM udaconnect.person" 2>/dev/null)
t "udaconnect_reader (grpcd) runs api_find_connections, with its caller rules" \
  tcp_psql udaconnect_reader "$READER_PW" "SELECT count(*) >= 0 FROM udaconnect.api_find_connections('organizer', NULL, ${pid1:-1}, '2020-01-01', '2020-12-30', 5, NULL)"
t "udaconnect_reader (grpcd) reads and watches encounters through api_encounters, api_encounter_changes, api_encounter_changes_by_id, api_encounter_position and api_persons_gone" \
  tcp_psql udaconnect_reader "$READER_PW" "SELECT (SELECT body IS NOT NULL FROM udaconnect.api_encounters('organizer', NULL, ${pid1:-1}, NULL, NULL, 10, NULL))
                                                 AND (SELECT count(*) >= 0 FROM udaconnect.api_encounter_changes('organizer', NULL, ${pid1:-1}, 0, 0, 10))
                                                 AND (SELECT count(*) >= 0 FROM udaconnect.api_encounter_changes_by_id('organizer', NULL, ${pid1:-1}, '{1}', 0, 1, 10))
                                                 AND (SELECT version >= 0 FROM udaconnect.api_encounter_position('organizer', NULL, ${pid1:-1}))
                                                 AND (SELECT array_agg(gone ORDER BY ord) = '{f,t}' FROM udaconnect.api_persons_gone(ARRAY[${pid1:-1}, -1]))"
t "udaconnect_reader cannot call the raw finder (it would bypass the caller rules)" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'ERROR:  42501' tcp_psql udaconnect_reader '$READER_PW' \"SELECT count(*) FROM udaconnect.find_connections(${pid1:-1}, '2020-01-01', '2020-12-30', 5)\" &&
           expect_fail 'ERROR:  42501' tcp_psql udaconnect_reader '$READER_PW' \"SELECT count(*) FROM udaconnect.connected_persons(${pid1:-1}, '2020-01-01', '2020-12-30', 5)\" &&
           expect_fail 'ERROR:  42501' tcp_psql udaconnect_reader '$READER_PW' \"SELECT * FROM udaconnect.api_find_connections('attendee', ${pid1:-1}, ${pid1:-1} + 1, '2020-01-01', '2020-12-30', 5, NULL)\""
t "udaconnect_reader can neither write nor read tables directly" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'ERROR:  42501' tcp_psql udaconnect_reader '$READER_PW' \"SELECT udaconnect.create_person('a', 'b', 'c')\" &&
           expect_fail 'ERROR:  42501' tcp_psql udaconnect_reader '$READER_PW' 'SELECT * FROM udaconnect.person LIMIT 1'"

# --- the hot standby's replication role ---------------------------------------------
out=$(sock_psql -F ' ' -c "SELECT rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls,
                                  rolinherit, rolconnlimit,
                                  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid),
                                  (SELECT count(*) FROM information_schema.role_table_grants g WHERE g.grantee = r.rolname)
                             FROM pg_roles r WHERE rolname = 'udaconnect_replicator'" 2>&1)
if [ "$out" = "t t f f f f f 5 0 0" ]; then
  ok "udaconnect_replicator: LOGIN REPLICATION, not superuser, no CREATEDB/CREATEROLE/BYPASSRLS, CONNECTION LIMIT 5, no membership, no table grant"
else
  nok "udaconnect_replicator: LOGIN REPLICATION and nothing else, CONNECTION LIMIT 5" "got: $out" "want: t t f f f f f 5 0 0"
fi

# The standby's init container: its script from the rendered manifests (as
# the pod runs it), pointed at this server; PGPASSWORD as the Secret gives it.
script=""
if [ -n "$RENDERED_STANDBY" ] && [ -s "$RENDERED_STANDBY" ]; then
  script=$(python3 - "$RENDERED_STANDBY" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "StatefulSet" and d["metadata"]["name"] == "postgres-standby":
        for c in d["spec"]["template"]["spec"].get("initContainers", []):
            if any("pg_basebackup" in x for x in c.get("command", [])):
                print(c["command"][-1])
PY
)
fi
if [ -n "$script" ]; then
  how="the standby's init-container script (rendered manifests)"
else
  how="pg_basebackup -R -X stream"
  script='pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U udaconnect_replicator -D "$PGDATA" -R -X stream -c fast'
fi
rm -rf "$W/copy"
out=$(env PGDATA="$W/copy" PRIMARY_HOST=127.0.0.1 PRIMARY_PORT="$PORT" PGPASSWORD="$REPL_PW" PATH="$PGBIN:$PATH" \
      bash -ec "$script" 2>&1); rc=$?
conninfo=$(grep -h '^primary_conninfo' "$W/copy/postgresql.auto.conf" 2>/dev/null)
if [ $rc -eq 0 ] && [ -s "$W/copy/PG_VERSION" ] && [ -f "$W/copy/standby.signal" ] &&
   grep -q "user=udaconnect_replicator" <<<"$conninfo" && ! grep -q "password" <<<"$conninfo" &&
   ! grep -rqF -- "$REPL_PW" "$W/copy/postgresql.auto.conf"; then
  ok "$how copies the server as udaconnect_replicator over TCP (password from PGPASSWORD only; none left in postgresql.auto.conf)"
else
  nok "$how copies the server as udaconnect_replicator over TCP" "rc=$rc" "${out:0:600}" "conninfo: $conninfo"
fi

# The copy as the standby container runs it: the walreceiver's password from
# PGPASSWORD in its environment.
# The test's ports lie in the kernel's range of ephemeral ports, so any
# outgoing connection on this machine may hold COPY_PORT as its local port
# at the moment the copy binds (it happened once in CI): such a start is
# made again on another port that nothing answers on.
start_copy() {
  local try
  for try in 1 2 3 4 5; do
    : >"$W/copy.log"
    env PGPASSWORD="$REPL_PW" "$PGBIN/pg_ctl" -D "$W/copy" -l "$W/copy.log" -w -t 120 \
        -o "-p $COPY_PORT" start >/dev/null 2>&1 && return 0
    # only a postmaster that gave up for want of its port (not one that
    # merely lost one of several addresses, or timed out) is tried again
    grep -q "Address already in use" "$W/copy.log" &&
      grep -q "could not create any TCP/IP sockets" "$W/copy.log" || return 1
    echo "# the copy could not bind port $COPY_PORT (in use); trying another" >&2
    COPY_PORT=$((COPY_PORT + 100 + try))
    while "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$COPY_PORT"; do COPY_PORT=$((COPY_PORT + 1)); done
  done
  return 1
}

streaming=""
if [ -s "$W/copy/PG_VERSION" ] && start_copy; then
  for _ in $(seq 1 240); do
    streaming=$(sock_psql -c "SELECT usename || ' ' || state FROM pg_stat_replication" 2>/dev/null)
    [ "$streaming" = "udaconnect_replicator streaming" ] && break
    sleep 0.5
  done
fi
rec=$(psql -X -At -h "$W/sock" -p "$COPY_PORT" -U postgres -d geoconnections -c "SELECT pg_is_in_recovery()" 2>&1)
if [ "$streaming" = "udaconnect_replicator streaming" ] && [ "$rec" = t ]; then
  ok "the copy runs as a hot standby streaming from the server as udaconnect_replicator (pg_stat_replication)"
else
  nok "the copy runs as a hot standby streaming from the server as udaconnect_replicator" "pg_stat_replication: $streaming" "in recovery: $rec" "$(tail -n 15 "$W/copy.log" 2>/dev/null)"
fi
stop_copy

t "udaconnect_replicator with a wrong password cannot replicate" \
  bash -c "$(declare -f expect_fail); PGPASSWORD=wrong-password expect_fail 'password authentication failed' \
           '$PGBIN/pg_basebackup' -h 127.0.0.1 -p '$PORT' -U udaconnect_replicator -D '$W/nocopy' -X stream"
t "postgres (the superuser, right password) can no longer replicate from a host address: pg_hba.conf has no line for it" \
  bash -c "$(declare -f expect_fail); PGPASSWORD='$SUPER_PW' expect_fail 'no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"postgres\"' \
           '$PGBIN/pg_basebackup' -h 127.0.0.1 -p '$PORT' -U postgres -D '$W/nocopy' -X stream"
t "nor can the gateways' roles (udaconnect_api, right password)" \
  bash -c "$(declare -f expect_fail); PGPASSWORD='$API_PW' expect_fail 'no pg_hba.conf entry for replication connection' \
           '$PGBIN/pg_basebackup' -h 127.0.0.1 -p '$PORT' -U udaconnect_api -D '$W/nocopy' -X stream"
t "udaconnect_replicator cannot log in for SQL over TCP, right password (pg_hba.conf rejects it)" \
  bash -c "$(declare -f expect_fail tcp_psql); expect_fail 'pg_hba.conf rejects connection for host \"127.0.0.1\", user \"udaconnect_replicator\", database \"geoconnections\"' \
           tcp_psql udaconnect_replicator '$REPL_PW' 'SELECT 1'"
repl_sock() { psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$W/sock" -p "$PORT" -U udaconnect_replicator -d geoconnections -c "$1"; }
t "udaconnect_replicator on the socket (which trusts local users) has no privilege: SELECT from udaconnect.location, udaconnect.person, an API call, CREATE: permission denied" \
  bash -c "$(declare -f expect_fail repl_sock); W='$W' PORT='$PORT'
           expect_fail 'ERROR:  42501: permission denied' repl_sock 'SELECT * FROM udaconnect.location LIMIT 1' &&
           expect_fail 'ERROR:  42501: permission denied' repl_sock 'SELECT * FROM udaconnect.person LIMIT 1' &&
           expect_fail 'ERROR:  42501: permission denied' repl_sock \"SELECT udaconnect.api_persons('organizer', NULL)\" &&
           expect_fail 'ERROR:  42501: permission denied' repl_sock 'CREATE TABLE public.t (i int)'"
rm -rf "$W/copy" "$W/nocopy"

# --- a primary initialised by an older image: docs/deployment.md's steps ---------------
# The server made as the older image left it (no replication role; initdb's
# pg_hba.conf plus "host replication postgres"), then the commands the doc
# gives for `kubectl exec postgres-0 -c postgres -- ...`, run here as the pod
# would (its environment, the image's files at $W/share).
repl_ok() { # repl_ok USER PASSWORD: a physical replication connection answers IDENTIFY_SYSTEM
  PGPASSWORD=$2 psql -X -At "host=127.0.0.1 port=$PORT user=$1 dbname=replication replication=true" -c IDENTIFY_SYSTEM >/dev/null 2>&1
}
sock_psql -c "DROP ROLE udaconnect_replicator" >/dev/null 2>&1
printf '%s\n' "local all all trust" "host all all 127.0.0.1/32 scram-sha-256" "host all all ::1/128 scram-sha-256" \
  "local replication all trust" "host replication all 127.0.0.1/32 scram-sha-256" "host replication all ::1/128 scram-sha-256" \
  "host all all 0.0.0.0/0 scram-sha-256" "host all all ::/0 scram-sha-256" \
  "host replication postgres 0.0.0.0/0 scram-sha-256" "host replication postgres ::/0 scram-sha-256" > "$PGDATA/pg_hba.conf"
sock_psql -c "SELECT pg_reload_conf()" >/dev/null
old_state=$(repl_ok postgres "$SUPER_PW" && echo "postgres replicates"; repl_ok udaconnect_replicator "$REPL_PW" && echo "replicator replicates")
doc_cmds=$(python3 - "$TOP/docs/deployment.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = text.split("**A primary initialised by an older image**", 1)[1]
block = re.search(r"\n((?:    .*\n|\n)+)", block).group(1)
cmd = ""
for ln in block.splitlines():
    ln = ln[4:]
    if ln.lstrip().startswith("#") and not cmd:
        continue
    cmd += ln + "\n"
    if ln.endswith("\\") or cmd.count("'") % 2:
        continue
    prefix = "kubectl -n udaconnect exec postgres-0 -c postgres -- "
    c = re.sub(r"\\\n\s*", " ", cmd.strip())
    if c.startswith(prefix):
        print(c[len(prefix):].replace("/usr/share/udaconnect/", "$UDACONNECT_SHARE/").replace("\n", "\\n"))
    cmd = ""
PY
)
doc_rc=0 doc_out=""
while IFS= read -r c; do
  [ -n "$c" ] || continue
  o=$(env UDACONNECT_API_PASSWORD="$API_PW" UDACONNECT_READER_PASSWORD="$READER_PW" UDACONNECT_REPLICATION_PASSWORD="$REPL_PW" \
        bash -ec "$(printf '%b' "$c")" 2>&1) || { doc_rc=1; doc_out="$doc_out$c: $o"$'\n'; }
done <<<"$doc_cmds"
ncmds=$(grep -c . <<<"$doc_cmds")
if [ "$old_state" = "postgres replicates" ] && [ "$ncmds" -ge 3 ] && [ $doc_rc -eq 0 ] &&
   repl_ok udaconnect_replicator "$REPL_PW" && ! repl_ok postgres "$SUPER_PW" && [ -f "$PGDATA/pg_hba.conf.before-replicator" ] &&
   tcp_psql udaconnect_api "$API_PW" "SELECT 1" >/dev/null 2>&1; then
  ok "docs/deployment.md's $ncmds commands turn a primary of an older image (postgres replicates, no role) into one where only udaconnect_replicator replicates; the gateways' logins still work"
else
  nok "docs/deployment.md's commands turn a primary of an older image into one where only udaconnect_replicator replicates" \
    "before: $old_state" "commands ($ncmds):" "$doc_cmds" "$doc_out"
fi

# --- restart: no second initialisation, data kept -------------------------------------
before=$(sock_psql -c "SELECT count(*) FROM udaconnect.person" 2>&1)
stop_server
if start_server "$W/second.log" && ! grep -q initialising "$W/second.log" &&
   [ "$(sock_psql -c "SELECT count(*) FROM udaconnect.person" 2>&1)" = "$before" ]; then
  ok "a restart keeps the data and does not initialise again ($before persons)"
else
  nok "a restart keeps the data and does not initialise again" "$(tail -n 20 "$W/second.log")"
fi
stop_server
exit 0
