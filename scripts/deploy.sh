#!/usr/bin/env bash
# Deploy UdaConnect to the Kubernetes cluster kubectl points at (K3s in the
# Vagrant VM, or any cluster >= 1.27), into namespace "udaconnect".
#
#   scripts/deploy.sh [--build] [--seed] [--standby] [--no-wait]
#
#   --build    build the two images from this tree first: the Debian
#              packages (make deb, here or, without Debian's build tools, in
#              a debian:12 container), then docker build with
#              deployment/docker/*.Dockerfile, which install them; on K3s,
#              import the images into K3s' containerd (k3s ctr images import)
#   --seed     load the sample data once everything is up
#              (scripts/run_db_command.sh postgres-0)
#   --standby  also a streaming hot standby of PostgreSQL that the gateways'
#              GET routes and FindConnections read from, the primary as
#              their fallback (deployment/components/standby; docs/deployment.md)
#   --no-wait  apply and return without waiting for the pods
#
# Steps: namespace; the Secret udaconnect-secrets (random passwords and the
# gateways' token signing key jwt-key, generated here on the first deploy and
# kept afterwards: never in the tree; a Secret from before tokens existed
# gets its jwt-key added, one from before the replication role its
# replication-password);
# kubectl apply -k deployment/; wait for PostgreSQL, Kafka, the topic Job and
# the gateways; show `kubectl get pods,svc -n udaconnect`.
#
# Environment: KUBECTL (default kubectl), DOCKER (default docker).
# Tokens for the registration desk: see the closing message and
# docs/security.md.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS=udaconnect
SECRET=udaconnect-secrets
KUBECTL=${KUBECTL:-kubectl}
DOCKER=${DOCKER:-docker}
VERSION=1.0.0
TIMEOUT=${UDACONNECT_DEPLOY_TIMEOUT:-600s}

build=0 seed=0 wait=1 standby=0
for a in "$@"; do
  case "$a" in
    --build) build=1 ;;
    --seed) seed=1 ;;
    --no-wait) wait=0 ;;
    --standby) standby=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "deploy: $*"; }
die() { echo "deploy: error: $*" >&2; exit 1; }
k() { "$KUBECTL" "$@"; }

command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL=...)"

if [ $build = 1 ]; then
  command -v "$DOCKER" >/dev/null 2>&1 || die "--build needs docker (set DOCKER=...)"
  # the images install the packages of `make deb` (docs/packages.md): one build path
  if command -v dpkg-buildpackage >/dev/null 2>&1 && command -v pg_buildext >/dev/null 2>&1; then
    say "building the Debian packages (scripts/make-deb.sh)"
    "$TOP/scripts/make-deb.sh"
  else
    say "building the Debian packages in a debian:12.11-slim container (no dpkg-buildpackage here)"
    "$DOCKER" run --rm -v "$TOP:/src" -w /src debian:12.11-slim bash -ec '
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends build-essential git make dpkg-dev debhelper fakeroot \
        $(scripts/make-deb.sh --build-deps) >/dev/null
      git config --global --add safe.directory /src
      scripts/make-deb.sh'
  fi
  for img in postgres gateway; do
    say "building udaconnect/$img:$VERSION"
    "$DOCKER" build -f "$TOP/deployment/docker/$img.Dockerfile" -t "udaconnect/$img:$VERSION" "$TOP"
    if command -v k3s >/dev/null 2>&1; then
      say "importing udaconnect/$img:$VERSION into K3s"
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
      "$DOCKER" save "udaconnect/$img:$VERSION" | $SUDO k3s ctr images import -
    fi
  done
fi

k cluster-info >/dev/null 2>&1 || die "kubectl cannot reach a cluster (KUBECONFIG? on the Vagrant VM: export KUBECONFIG=/etc/rancher/k3s/k3s.yaml)"

say "namespace $NS"
k apply -f "$TOP/deployment/namespace.yaml"

# --- the Secret: generated once, never written into the tree ---------------
# passwords: 32 random letters and digits
pw() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }
# HS256 signing key of the gateways' tokens: 48 random bytes, base64url
jwtkey() { head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
if k -n "$NS" get secret "$SECRET" >/dev/null 2>&1; then
  say "secret $SECRET exists: keeping its passwords (the database was initialised with them)"
  # keys that came later: the token signing key (issue 14) and the hot
  # standby's replication password (issue 16); the values go through stdin,
  # never on a command line
  add=""
  if [ -z "$(k -n "$NS" get secret "$SECRET" -o 'jsonpath={.data.jwt-key}' 2>/dev/null)" ]; then
    say "adding the token signing key jwt-key to $SECRET"
    add="$add${add:+,}\"jwt-key\":\"$(jwtkey)\""
  fi
  if [ -z "$(k -n "$NS" get secret "$SECRET" -o 'jsonpath={.data.replication-password}' 2>/dev/null)" ]; then
    say "adding replication-password (role udaconnect_replicator, the hot standby's) to $SECRET"
    say "  a primary initialised before it has no such role yet: docs/deployment.md, \"Hot standby for reads\""
    add="$add${add:+,}\"replication-password\":\"$(pw)\""
  fi
  if [ -n "$add" ]; then
    printf '{"stringData":{%s}}' "$add" | k -n "$NS" patch secret "$SECRET" --patch-file=/dev/stdin
  fi
else
  say "generating secret $SECRET"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 700 "$tmp"
  {
    echo "postgres-password=$(pw)"
    echo "api-password=$(pw)"
    echo "reader-password=$(pw)"
    echo "replication-password=$(pw)"
    echo "jwt-key=$(jwtkey)"
  } > "$tmp/secret.env"
  k -n "$NS" create secret generic "$SECRET" --from-env-file="$tmp/secret.env" \
      --dry-run=client -o yaml | k apply -f -
  rm -rf "$tmp"
fi

# --- everything else ---------------------------------------------------------
# A Job's pod template is immutable: drop the finished topic Job so that the
# apply creates (and runs) it again.  It is idempotent.
k -n "$NS" delete job kafka-create-topic --ignore-not-found >/dev/null
if [ $standby = 1 ]; then
  # deployment/ plus the component, from an overlay outside the tree
  # (kustomize refuses an overlay inside the directory it includes)
  overlay=$(mktemp -d)
  trap 'rm -rf "$overlay"' EXIT
  rel=$(realpath --relative-to="$overlay" "$TOP/deployment")
  printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
    "resources:" "  - $rel" "components:" "  - $rel/components/standby" > "$overlay/kustomization.yaml"
  say "kubectl apply -k deployment/ with components/standby"
  k apply -k "$overlay"
else
  say "kubectl apply -k deployment/"
  k apply -k "$TOP/deployment"
fi

if [ $wait = 1 ]; then
  say "waiting for PostgreSQL (first start: initdb + CREATE EXTENSION)"
  k -n "$NS" rollout status statefulset/postgres --timeout="$TIMEOUT"
  say "waiting for Kafka"
  k -n "$NS" rollout status statefulset/kafka --timeout="$TIMEOUT"
  say "waiting for the topic"
  k -n "$NS" wait --for=condition=complete job/kafka-create-topic --timeout="$TIMEOUT"
  say "waiting for the gateways"
  k -n "$NS" rollout status deployment/udaconnect-grpcd --timeout="$TIMEOUT"
  k -n "$NS" rollout status deployment/udaconnect-httpd --timeout="$TIMEOUT"
  if [ $standby = 1 ]; then
    say "waiting for the hot standby (first start: a base backup of postgres-0)"
    k -n "$NS" rollout status statefulset/postgres-standby --timeout="$TIMEOUT"
  fi
fi

if [ $seed = 1 ]; then
  [ -x "$TOP/scripts/run_db_command.sh" ] || die "scripts/run_db_command.sh is missing"
  say "loading the sample data into postgres-0"
  UDACONNECT_NAMESPACE=$NS "$TOP/scripts/run_db_command.sh" postgres-0
fi

k get pods,svc -n "$NS"
cat <<EOF

UdaConnect is deployed in namespace $NS:
  web app     http://<node>:30000/
  REST API    http://<node>:30001/api/persons   (OpenAPI: /api/openapi.json)
  gRPC        <node>:30005                      (udaconnect.v1.LocationService)
  seed data   scripts/run_db_command.sh postgres-0
  tokens      kubectl exec -n $NS deploy/udaconnect-httpd -- udaconnect-token --organizer desk --ttl 12h
              (an organizer then issues attendee tokens: POST /api/persons/{id}/token)
  psql        kubectl exec -it -n $NS postgres-0 -c postgres -- psql -U postgres -d geoconnections
  remove it   scripts/teardown.sh
EOF
