#!/usr/bin/env bash
# Promote the hot standby postgres-standby-0 (scripts/deploy.sh --standby) to
# be the primary when the primary postgres-0 is lost: its volume gone or
# broken (docs/deployment.md, "Promoting the standby").  Manual on purpose:
# only an operator can tell a lost primary from a slow one.
#
#   scripts/promote-standby.sh --dry-run   print the kubectl commands, run none
#   scripts/promote-standby.sh --yes       promote
#
# Steps (run it again after a failure: each is idempotent):
#   1. postgres-standby-0 must answer; show how far it has replayed (what
#      the primary committed after that is lost with it, except the Kafka
#      ingest's batches: the promoted server ingests them again from Kafka)
#   2. fence the old primary: scale StatefulSet postgres to 0 and wait until
#      pod postgres-0 is gone (given a new, empty volume it would initialise
#      an empty database and take the gateways' writes and Kafka's messages)
#   3. keep postgres-standby-0 alone: scale StatefulSet postgres-standby to 1
#      (the other standbys follow the lost primary: postgres-read would serve
#      their stale reads)
#   4. let the standbys reach Kafka (its ingest workers start on promotion):
#      NetworkPolicies postgres-standby-kafka and kafka-from-postgres-standby
#   5. SELECT pg_promote(true, 60) in postgres-standby-0, unless it has
#      left recovery already
#   6. Service postgres (the gateways' write URL) selects postgres-standby-0
#   7. restart the gateways, so that no connection to the old address stays
#   8. show udaconnect.ingest_status on the new primary
#
# Afterwards scripts/deploy.sh and `kubectl apply -k deployment/` would point
# Service postgres back at StatefulSet postgres: docs/deployment.md says what
# to do instead.
#
# Environment: KUBECTL (default kubectl), UDACONNECT_NAMESPACE (default
# udaconnect), UDACONNECT_PROMOTE_TIMEOUT (default 300s).
set -euo pipefail
NS=${UDACONNECT_NAMESPACE:-udaconnect}
KUBECTL=${KUBECTL:-kubectl}
TIMEOUT=${UDACONNECT_PROMOTE_TIMEOUT:-300s}
STANDBY=postgres-standby-0
DB=geoconnections

mode=""
for a in "$@"; do
  case "$a" in
    --dry-run) mode=dry ;;
    --yes) [ "$mode" = dry ] || mode=yes ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "promote-standby.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$mode" ]; then
  echo "promote-standby.sh: this makes $STANDBY the primary and stops postgres-0 for good;" >&2
  echo "  --dry-run shows the commands, --yes runs them (docs/deployment.md, \"Promoting the standby\")" >&2
  exit 2
fi

say() { echo "promote: $*"; }
die() { echo "promote: error: $*" >&2; exit 1; }
# one shell word, quoted only when it needs it (the dry run's output is
# meant to be pasted)
word() {
  case $1 in
    *[!A-Za-z0-9_./=:,@%+-]*|"") printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}
show() { # show ARGS...: the kubectl command line as it would be typed
  local out="kubectl" a
  for a in "$@"; do out="$out $(word "$a")"; done
  echo "$out"
}
k() { # k ARGS...: run kubectl, or print it in a dry run
  if [ "$mode" = dry ]; then show "$@"; return 0; fi
  "$KUBECTL" "$@"
}
k_stdin() { # k_stdin TEXT ARGS...: kubectl with TEXT on stdin
  local text=$1; shift
  if [ "$mode" = dry ]; then
    echo "$(show "$@") <<'EOF'"
    printf '%s\n' "$text" "EOF"
    return 0
  fi
  printf '%s\n' "$text" | "$KUBECTL" "$@"
}
standby_sql() { # standby_sql SQL: one query in postgres-standby-0 over its socket
  k -n "$NS" exec "$STANDBY" -c postgres -- psql -X -At -F '|' -v ON_ERROR_STOP=1 -U postgres -d "$DB" -c "$1"
}

if [ "$mode" = yes ]; then
  command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL=...)"
fi

# --- 1. the standby answers; how far it got -----------------------------------------
say "1. $STANDBY: in recovery? replayed up to?"
if [ "$mode" = dry ]; then
  standby_sql "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()"
  recovery=t
else
  state=$(standby_sql "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()") ||
    die "$STANDBY does not answer: nothing was changed"
  recovery=${state%%|*}
  case "$recovery" in
    t) say "   in recovery; last replayed: ${state#*|}" ;;
    f) say "   not in recovery: promoted already (the remaining steps still run)" ;;
    *) die "$STANDBY answered '$state', not whether it is in recovery: nothing was changed" ;;
  esac
fi

# --- 2. fence the old primary -------------------------------------------------------
say "2. stopping the old primary for good (StatefulSet postgres to 0)"
k -n "$NS" scale statefulset/postgres --replicas=0
# (a failed `get` must not pass for "gone": the standby would be promoted
# while the old primary may still write)
if [ "$mode" = dry ]; then
  k -n "$NS" get pod postgres-0 --ignore-not-found -o name
  old=pod/postgres-0
else
  old=$(k -n "$NS" get pod postgres-0 --ignore-not-found -o name) ||
    die "cannot tell whether postgres-0 is gone (kubectl get failed): nothing was promoted; run this again"
fi
if [ -n "$old" ]; then
  k -n "$NS" wait --for=delete pod/postgres-0 --timeout="$TIMEOUT" ||
    die "postgres-0 did not go within $TIMEOUT: nothing was promoted. If its node is lost, make sure the node is down (it must not come back with the old primary), then: $KUBECTL -n $NS delete pod postgres-0 --force --grace-period=0; and run this again"
fi

# --- 3. no stale standby behind postgres-read ----------------------------------------
say "3. keeping $STANDBY alone (StatefulSet postgres-standby to 1)"
k -n "$NS" scale statefulset/postgres-standby --replicas=1

# --- 4. Kafka for the ingest workers -------------------------------------------------
say "4. letting the standby reach Kafka (its ingest workers start on promotion)"
policies="apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: postgres-standby-kafka
  namespace: $NS
  labels:
    app.kubernetes.io/part-of: udaconnect
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: postgres-standby
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: kafka
      ports:
        - protocol: TCP
          port: 9092
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: kafka-from-postgres-standby
  namespace: $NS
  labels:
    app.kubernetes.io/part-of: udaconnect
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: kafka
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: postgres-standby
      ports:
        - protocol: TCP
          port: 9092"
k_stdin "$policies" apply -f -

# --- 5. promote ---------------------------------------------------------------------
if [ "$recovery" = t ]; then
  say "5. promoting $STANDBY (pg_promote waits up to 60 s for the end of recovery)"
  if [ "$mode" = dry ]; then
    standby_sql "SELECT pg_promote(true, 60)"
  else
    got=$(standby_sql "SELECT pg_promote(true, 60)") || die "pg_promote failed; Service postgres was not changed"
    [ "$got" = t ] || die "pg_promote did not finish within 60 s (it answered '$got'); run this again"
  fi
else
  say "5. $STANDBY is out of recovery already"
fi

# --- 6. the write Service -----------------------------------------------------------
say "6. Service postgres -> $STANDBY"
k -n "$NS" patch service postgres --type=merge \
  -p '{"spec":{"selector":{"app.kubernetes.io/name":"postgres-standby","statefulset.kubernetes.io/pod-name":"'"$STANDBY"'"}}}'

# --- 7. the gateways ----------------------------------------------------------------
say "7. restarting the gateways"
k -n "$NS" rollout restart deployment/udaconnect-httpd deployment/udaconnect-grpcd
k -n "$NS" rollout status deployment/udaconnect-httpd --timeout="$TIMEOUT"
k -n "$NS" rollout status deployment/udaconnect-grpcd --timeout="$TIMEOUT"

# --- 8. the ingest on the new primary -----------------------------------------------
say "8. the ingest on $STANDBY"
k -n "$NS" exec "$STANDBY" -c postgres -- psql -X -U postgres -d "$DB" -c "SELECT * FROM udaconnect.ingest_status"

if [ "$mode" = yes ]; then
  cat <<EOF

$STANDBY is the primary: Service postgres selects it, its ingest workers
consume Kafka from the offsets it holds.  Do not run scripts/deploy.sh or
kubectl apply -k deployment/ as they are: they would point Service postgres
back at StatefulSet postgres (docs/deployment.md, "Promoting the standby").
EOF
fi
