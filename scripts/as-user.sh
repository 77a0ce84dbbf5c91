#!/usr/bin/env bash
# Run a command as an unprivileged user when invoked as root: PostgreSQL
# refuses to run as root.  The user is $UDACONNECT_USER (default: postgres,
# created by Debian's postgresql-common).  As any other user, just run it.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
U=${UDACONNECT_USER:-postgres}
if ! id "$U" >/dev/null 2>&1; then
  useradd --system --create-home --shell /bin/bash "$U"
fi
if ! runuser -u "$U" -- test -r "$TOP/Makefile" -a -x "$TOP/scripts/stack.sh"; then
  # The checkout lies below a directory the user cannot enter (e.g. /root):
  # work from a copy the user owns.
  COPY=/var/tmp/udaconnect-$(printf '%s' "$TOP" | md5sum | cut -c1-8)
  echo "as-user: $U cannot read $TOP; using a copy in $COPY" >&2
  mkdir -p "$COPY"
  tar -C "$TOP" --exclude=./.run -cf - . | tar -C "$COPY" -xf -
  chown -R "$U": "$COPY"
  TOP=$COPY
  cd "$COPY"
  # re-resolve the command inside the copy when it names a file of the tree
  if [ -e "$COPY/$1" ]; then set -- "$COPY/$1" "${@:2}"; fi
fi
mkdir -p "$TOP/.run"
chown "$U": "$TOP/.run"
cd "$TOP"
exec runuser -u "$U" -- "$@"
