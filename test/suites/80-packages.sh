#!/usr/bin/env bash
# 80-packages: what `apt-get install ./build/deb/*.deb` gives a user
# (issue 17, docs/packages.md) is what is tested here, installed:
#   - the packages are installed at the tree's version and every file of the
#     extension's package is the package's own (dpkg --verify: no `make
#     install` overwrote it), with the expected contents (dpkg -L), the
#     PostGIS dependency, and no lintian error in the build's report
#   - the units pass `systemd-analyze verify`, are enabled, carry their
#     hardening, notify readiness and start only once the key exists; the
#     system user and /etc/udaconnect are as the postinst makes them
#   - the pg_regress suite against the installed extension in a scratch
#     cluster of the installed PostgreSQL 15 (`pg_buildext installcheck`, as
#     debian/tests/installcheck and Debian's extension packages run it),
#     CREATE EXTENSION included
#   - each daemon started as its unit starts it, with the packaged settings
#     (the test's port and, when not root, a readable key file instead):
#     READY=1, listening, STOPPING=1, exit 0 (test/packages/run_unit.py)
# Run as root (`test/run.sh` alone as root, or by hand) it builds and
# installs the packages itself when they are missing or older than the
# tree; under `make check`, which runs suites as the user postgres, the
# Makefile's install-deb step installed them first, and the daemons run as
# that user since only root can become udaconnect.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
mkdir -p "$SUITE_DIR"
export TOP SUITE_DIR
EXT_PKG=postgresql-15-udaconnect
GW_PKG=udaconnect-gateways
VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TOP/pg_udaconnect/pg_udaconnect.control")
UNITS=(udaconnect-httpd udaconnect-grpcd)
UNITDIR=/lib/systemd/system
HTTP_PORT=${UDACONNECT_HTTP_PORT:-30011}
GRPC_PORT=${UDACONNECT_GRPC_PORT:-30015}
# the stack of test/run.sh holds the ports given: use the next ones
HTTP_PORT=$((HTTP_PORT + 1)); GRPC_PORT=$((GRPC_PORT + 1))

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }

body() {
  if [ ! -r /etc/debian_version ] || ! command -v dpkg >/dev/null; then
    echo "ok - the Debian packages # SKIP not a Debian system"
    return
  fi

  # --- as root: build and install when needed ---------------------------------
  if [ "$(id -u)" = 0 ]; then
    local need=0 f
    for f in "$TOP"/build/deb/${EXT_PKG}_"$VERSION"_*.deb "$TOP"/build/deb/${GW_PKG}_"$VERSION"_*.deb; do
      [ -f "$f" ] || need=1
    done
    if [ $need = 1 ] || [ -n "$(find "$TOP/pg_udaconnect" "$TOP/gateway" "$TOP/sql" "$TOP/debian" -newer "$TOP/build/deb/lintian.txt" -type f ! -name '*.o' 2>/dev/null | head -n 1)" ]; then
      if "$TOP/scripts/make-deb.sh" > "$SUITE_DIR/make-deb.log" 2>&1; then
        echo "ok - make deb builds both packages ($(grep -o 'built in [0-9]* s' "$SUITE_DIR/make-deb.log"))"
      else
        echo "not ok - make deb builds both packages"; sed 's/^/#   /' "$SUITE_DIR/make-deb.log" | tail -n 30
      fi
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
         "$TOP"/build/deb/${EXT_PKG}_"$VERSION"_*.deb "$TOP"/build/deb/${GW_PKG}_"$VERSION"_*.deb \
         > "$SUITE_DIR/apt.log" 2>&1; then
      echo "ok - apt-get install ./build/deb/*.deb installs both packages with their dependencies"
    else
      echo "not ok - apt-get install ./build/deb/*.deb installs both packages with their dependencies"
      sed 's/^/#   /' "$SUITE_DIR/apt.log" | tail -n 20
    fi
  fi

  # --- installed, at this version, files untouched ----------------------------
  local p v bad=()
  for p in $EXT_PKG $GW_PKG; do
    v=$(installed_version $p)
    [ "$v" = "$VERSION" ] || bad+=("$p: installed ${v:-not at all}, the tree is $VERSION (make install-deb)")
  done
  if [ ${#bad[@]} -eq 0 ]; then echo "ok - $EXT_PKG and $GW_PKG $VERSION are installed"
  else echo "not ok - $EXT_PKG and $GW_PKG $VERSION are installed"; printf '#   %s\n' "${bad[@]}"; return; fi

  # an edited conffile (/etc/default) is the administrator's right, not a shadowed file
  dpkg --verify $EXT_PKG $GW_PKG 2>&1 | awk '$2 != "c"' > "$SUITE_DIR/verify.txt"
  if [ ! -s "$SUITE_DIR/verify.txt" ]; then
    echo "ok - dpkg --verify: every installed file is the package's own (tested is what users install)"
  else
    echo "not ok - dpkg --verify: every installed file is the package's own (tested is what users install)"
    sed 's/^/#   /' "$SUITE_DIR/verify.txt"
  fi

  local -a want_ext=(/usr/lib/postgresql/15/lib/pg_udaconnect.so
    /usr/share/postgresql/15/extension/pg_udaconnect.control
    "/usr/share/postgresql/15/extension/pg_udaconnect--$VERSION.sql"
    /usr/share/postgresql/15/extension/pg_udaconnect--1.0--1.1.sql
    /usr/share/doc/$EXT_PKG/META.json)
  local -a want_gw=(/usr/sbin/udaconnect-httpd /usr/sbin/udaconnect-grpcd /usr/bin/udaconnect-token
    /usr/lib/udaconnect/httpd/udaconnect-httpd /usr/lib/udaconnect/httpd/openapi.json
    /usr/share/udaconnect/web/index.html /usr/share/udaconnect/openapi.json
    $UNITDIR/udaconnect-httpd.service $UNITDIR/udaconnect-grpcd.service
    /etc/default/udaconnect-httpd /etc/default/udaconnect-grpcd
    /usr/share/doc/$GW_PKG/README.Debian)
  dpkg -L $EXT_PKG > "$SUITE_DIR/ext.list"; dpkg -L $GW_PKG > "$SUITE_DIR/gw.list"
  bad=()
  for f in "${want_ext[@]}"; do grep -qx "$f" "$SUITE_DIR/ext.list" || bad+=("$EXT_PKG lacks $f"); done
  for f in "${want_gw[@]}"; do grep -qx "$f" "$SUITE_DIR/gw.list" || bad+=("$GW_PKG lacks $f"); done
  # the dev broker is a test tool, the build's objects stay out
  grep -E 'devkafka|udaconnect-produce|\.o$|/test/' "$SUITE_DIR/ext.list" "$SUITE_DIR/gw.list" | sed 's/^/ships /' | while read -r l; do echo "$l"; done > "$SUITE_DIR/extra.txt"
  while read -r l; do bad+=("$l"); done < "$SUITE_DIR/extra.txt"
  [ "$(readlink -f /usr/sbin/udaconnect-httpd)" = /usr/lib/udaconnect/httpd/udaconnect-httpd ] \
    || bad+=("/usr/sbin/udaconnect-httpd does not lead to /usr/lib/udaconnect/httpd (its web root is found from there)")
  grep -qx /etc/default/udaconnect-httpd /var/lib/dpkg/info/$GW_PKG.conffiles 2>/dev/null || bad+=("/etc/default/udaconnect-httpd is not a conffile")
  if [ ${#bad[@]} -eq 0 ]; then echo "ok - dpkg -L: the extension, both daemons, udaconnect-token, the web app, the units, /etc/default files (conffiles); no dev broker"
  else echo "not ok - dpkg -L: the extension, both daemons, udaconnect-token, the web app, the units, /etc/default files (conffiles); no dev broker"; printf '#   %s\n' "${bad[@]}"; fi

  local deps
  deps=$(dpkg-query -W -f='${Depends}' $EXT_PKG)
  if [[ $deps == *postgresql-15-postgis-3* && $deps == *postgresql-15* ]]; then echo "ok - $EXT_PKG depends on PostgreSQL 15 and PostGIS ($deps)"
  else echo "not ok - $EXT_PKG depends on PostgreSQL 15 and PostGIS"; echo "#   Depends: $deps"; fi

  local meta_v
  meta_v=$(/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["version"], m["provides"]["pg_udaconnect"]["version"], m["meta-spec"]["version"], *sorted(m["prereqs"]["runtime"]["requires"]))' "$TOP/META.json" 2>&1)
  if [ "$meta_v" = "$VERSION.0 $VERSION.0 1.0.0 PostGIS PostgreSQL" ]; then echo "ok - META.json (PGXN 1.0.0) is at the extension's version $VERSION and requires PostgreSQL and PostGIS"
  else echo "not ok - META.json (PGXN 1.0.0) is at the extension's version $VERSION and requires PostgreSQL and PostGIS"; echo "#   read: $meta_v"; fi

  if [ -f "$TOP/build/deb/lintian.txt" ]; then
    if grep -q '^E:' "$TOP/build/deb/lintian.txt"; then
      echo "not ok - lintian reports no error on the packages"; grep '^E:' "$TOP/build/deb/lintian.txt" | sed 's/^/#   /'
    else
      echo "ok - lintian reports no error on the packages ($(grep -c '^W:' "$TOP/build/deb/lintian.txt") warnings, listed in docs/packages.md)"
    fi
  else
    echo "ok - lintian reports no error on the packages # SKIP no build/deb/lintian.txt (packages not built here)"
  fi

  # --- the units ---------------------------------------------------------------
  local u
  if command -v systemd-analyze >/dev/null; then
    if systemd-analyze verify "$UNITDIR/udaconnect-httpd.service" "$UNITDIR/udaconnect-grpcd.service" \
         > "$SUITE_DIR/verify-units.txt" 2>&1 && ! grep -q . "$SUITE_DIR/verify-units.txt"; then
      echo "ok - systemd-analyze verify passes both installed units"
    else
      echo "not ok - systemd-analyze verify passes both installed units"; sed 's/^/#   /' "$SUITE_DIR/verify-units.txt"
    fi
  else
    echo "ok - systemd-analyze verify passes both installed units # SKIP systemd-analyze is not installed"
  fi
  for u in "${UNITS[@]}"; do
    bad=()
    for k in Type=notify User=udaconnect Group=udaconnect "EnvironmentFile=/etc/default/$u" NoNewPrivileges=yes \
             ProtectSystem=strict PrivateTmp=yes ProtectHome=yes CapabilityBoundingSet= \
             ConditionPathExists=/etc/udaconnect/jwt.keys WantedBy=multi-user.target; do
      grep -qx "$k" "$UNITDIR/$u.service" || bad+=("no $k")
    done
    [ -L /etc/systemd/system/multi-user.target.wants/$u.service ] || bad+=("not enabled (no multi-user.target.wants link)")
    if [ ${#bad[@]} -eq 0 ]; then echo "ok - $u.service: enabled; Type=notify as udaconnect, settings from /etc/default/$u, hardened, starts once the key exists"
    else echo "not ok - $u.service: enabled; Type=notify as udaconnect, settings from /etc/default/$u, hardened, starts once the key exists"; printf '#   %s\n' "${bad[@]}"; fi
  done
  bad=()
  local pw
  pw=$(getent passwd udaconnect)
  [ -n "$pw" ] || bad+=("no user udaconnect")
  [ -n "$pw" ] && [ "$(echo "$pw" | cut -d: -f3)" -lt 1000 ] || bad+=("udaconnect is not a system user: $pw")
  [[ $pw == */usr/sbin/nologin || $pw == */bin/false ]] || bad+=("udaconnect has a login shell: $pw")
  [ "$(stat -c '%U:%G %a' /etc/udaconnect 2>/dev/null)" = "root:udaconnect 750" ] || bad+=("/etc/udaconnect is $(stat -c '%U:%G %a' /etc/udaconnect 2>&1)")
  if [ ${#bad[@]} -eq 0 ]; then echo "ok - the postinst made the system user udaconnect (no login) and /etc/udaconnect (root:udaconnect 0750)"
  else echo "not ok - the postinst made the system user udaconnect (no login) and /etc/udaconnect (root:udaconnect 0750)"; printf '#   %s\n' "${bad[@]}"; fi

  # --- the installed extension: pg_regress installcheck ------------------------
  # pg_buildext works in a copy: it writes results/ next to the Makefile
  local src=$SUITE_DIR/installcheck
  rm -rf "$src"; mkdir -p "$src/pg_udaconnect" "$src/test"
  cp -r "$TOP/debian" "$src/"
  cp "$TOP/pg_udaconnect/Makefile" "$TOP/pg_udaconnect/ingest.mk" "$TOP/pg_udaconnect/pg_udaconnect.control" "$src/pg_udaconnect/"
  cp -r "$TOP/test/sql" "$TOP/test/expected" "$TOP/test/specs" "$src/test/"
  local runas=()
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$src"; runas=(runuser -u postgres --); fi
  (cd "$src" && "${runas[@]}" env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
     sh debian/tests/installcheck) > "$SUITE_DIR/installcheck.out" 2>&1
  local irc=$? name result n=0
  sed 's/^/# /' "$SUITE_DIR/installcheck.out" | grep -E '^# (test |=+|### |.*CREATE EXTENSION|.*FAILED|.*rror)' 
  while read -r name result; do
    n=$((n + 1))
    if [ "$result" = ok ]; then echo "ok - installcheck of the installed extension: pg_regress $name"; else echo "not ok - installcheck of the installed extension: pg_regress $name"; fi
  done < <(sed -nE 's/^(test )?[ ]*([a-z0-9_]+)[ ]+\.\.\. (ok|FAILED).*/\2 \3/p' "$SUITE_DIR/installcheck.out")
  if grep -q '^installing pg_udaconnect\|installing pg_udaconnect' "$SUITE_DIR/installcheck.out" && grep -q 'CREATE EXTENSION' "$SUITE_DIR/installcheck.out" && [ $irc = 0 ] && [ $n -gt 0 ]; then
    echo "ok - pg_buildext installcheck: CREATE EXTENSION pg_udaconnect in a scratch cluster of the installed PostgreSQL 15, $n regression files pass"
  else
    echo "not ok - pg_buildext installcheck: CREATE EXTENSION pg_udaconnect in a scratch cluster of the installed PostgreSQL 15, $n regression files pass (exit $irc)"
    tail -n 40 "$SUITE_DIR/installcheck.out" | sed 's/^/#   /'
    find "$src" -name regression.diffs -exec head -n 80 {} \; | sed 's/^/#   /'
  fi

  # --- the daemons, started as their units start them --------------------------
  local keyfile=/etc/udaconnect/jwt.keys made_key=0 over=()
  if [ "$(id -u)" = 0 ]; then
    if [ ! -e $keyfile ]; then
      (umask 027; /usr/bin/udaconnect-token --genkey > $keyfile) && chgrp udaconnect $keyfile && made_key=1
    fi
  else
    keyfile=$SUITE_DIR/jwt.keys
    (umask 077; /usr/bin/udaconnect-token --genkey > "$keyfile")
    over=(UDACONNECT_JWT_KEY_FILE="$keyfile")
  fi
  /usr/bin/python3 "$TOP/test/packages/run_unit.py" $UNITDIR/udaconnect-httpd.service $HTTP_PORT \
    UDACONNECT_HTTP_PORT=$HTTP_PORT "${over[@]}"
  /usr/bin/python3 "$TOP/test/packages/run_unit.py" $UNITDIR/udaconnect-grpcd.service $GRPC_PORT \
    UDACONNECT_GRPC_PORT=$GRPC_PORT "${over[@]}"
  [ $made_key = 1 ] && rm -f $keyfile
  return 0
}

body 2>&1 | awk '
  /^ok( |$)/     { n++; sub(/^ok/, "ok " n) }
  /^not ok( |$)/ { n++; sub(/^not ok/, "not ok " n) }
  { print }
  END { print "1.." n }'
