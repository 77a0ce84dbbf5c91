#!/usr/bin/env bash
# Install the Debian 12 packages UdaConnect needs to build, run and test.
# Only missing packages are installed (apt-get; sudo when not root).
set -euo pipefail
PKGS=(
  build-essential pkg-config ca-certificates openssl curl jq procps
  postgresql-15 postgresql-server-dev-15 postgresql-15-postgis-3 postgresql-contrib
  librdkafka-dev kcat
  libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev protobuf-compiler
  libgrpc-dev libmicrohttpd-dev libpq-dev libjansson-dev libjwt-dev
  python3 python3-grpcio python3-grpc-tools python3-psycopg2 python3-flask python3-kafka
  libipc-run-perl wrk
  chromium chromium-driver python3-selenium python3-requests
  python3-yaml tini python3-jwt
  libsystemd-dev
  # `make deb` (debian/) and the installed-package suite (test/suites/80-packages.sh)
  debhelper dpkg-dev fakeroot postgresql-server-dev-all lintian systemd adduser
)
PKGS+=(${UDACONNECT_EXTRA_PKGS:-})
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
