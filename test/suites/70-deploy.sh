#!/usr/bin/env bash
# 70-deploy: the Kubernetes deployment, checked offline (issue 6).  No
# cluster and no Docker engine run here, so:
#   - `kubectl kustomize deployment/` renders, and a structural check of the
#     rendered objects (test/deploy/check_manifests.py): probes, requests and
#     limits, pinned images, non-root, Service selectors and ports, the
#     gateways' ports, Kafka in KRaft mode, the topic Job, PostgreSQL's PVC
#     and settings, no committed Secret, HPAs, NetworkPolicies path by path;
#     and proof that each of those checks catches what it is for
#     (test/deploy/mutations.py); the same, and the standby's own checks, for
#     deployment/ with the optional hot standby (components/standby)
#   - the Dockerfiles, statically (test/deploy/check_dockerfiles.py): pinned
#     Debian 12 bases, COPY sources, Debian packages, non-root, entrypoints,
#     the tree's own packages they install (build/deb, make deb: at the
#     tree's version, dependencies in Debian 12), every shared library the
#     packaged binaries link (a build stage's -dev packages for the
#     Makefiles' pkg-config names, should an image build again); each check
#     proven to catch a mutation (test/deploy/dockerfile_mutations.py); the
#     .debs they install unpack, or a build stage's RUN steps run on exactly
#     the copied context, without Docker (test/deploy/emulate_build.py)
#   - the PostgreSQL image's entrypoint and init.sql, run for real on this
#     machine's PostgreSQL 15 (test/deploy/test_pg_entrypoint.sh), with the
#     hot standby's init-container script copying it as the replication
#     role and the copy streaming from it
#   - the gateway image's file layout: both daemons started from it as their
#     Deployments start them, asked what the probes ask
#     (test/deploy/test_gateway_layout.sh)
#   - scripts/deploy.sh and scripts/teardown.sh against a recording kubectl
#     (test/deploy/test_deploy_script.sh)
#   - scripts/promote-standby.sh (the manual promotion of the hot standby)
#     against a recording kubectl on PATH: --dry-run, the order of the
#     steps, what it applies and patches against the rendered manifests
#     (test/deploy/test_promote_script.sh)
#   - the Vagrantfile's forwarded ports, docs/scaling.md's topics
# TAP lines are numbered here; a check that cannot run says "# SKIP why".
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
export TOP SUITE_DIR
D=$TOP/test/deploy

body() {
  local rendered=$SUITE_DIR/rendered.yaml have_yaml=1
  python3 -c 'import yaml' 2>/dev/null || have_yaml=0
  if [ $have_yaml = 0 ]; then
    echo "not ok - python3-yaml is installed (scripts/deps.sh installs it)"
  fi

  if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize "$TOP/deployment" > "$rendered" 2> "$SUITE_DIR/kustomize.err"; then
      echo "ok - kubectl kustomize deployment/ renders offline ($(grep -c '^kind:' "$rendered") objects, $(kubectl version --client 2>/dev/null | head -n 1))"
      if [ $have_yaml = 1 ]; then
        python3 "$D/check_manifests.py" "$rendered" "$TOP"
        python3 "$D/mutations.py" "$rendered" "$TOP" "$SUITE_DIR/mutations"
      fi
    else
      echo "not ok - kubectl kustomize deployment/ renders offline"
      sed 's/^/#   /' "$SUITE_DIR/kustomize.err"
    fi
  else
    echo "ok - kubectl kustomize deployment/ renders offline # SKIP kubectl is not installed"
  fi

  # the optional hot standby: deployment/ with components/standby, from an
  # overlay as scripts/deploy.sh --standby makes it
  if command -v kubectl >/dev/null 2>&1; then
    local ov=$SUITE_DIR/standby-overlay rs=$SUITE_DIR/rendered-standby.yaml rel
    mkdir -p "$ov"
    rel=$(realpath --relative-to="$ov" "$TOP/deployment")
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
      "resources:" "  - $rel" "components:" "  - $rel/components/standby" > "$ov/kustomization.yaml"
    if kubectl kustomize "$ov" > "$rs" 2> "$SUITE_DIR/kustomize-standby.err"; then
      echo "ok - deployment/ with components/standby renders offline ($(grep -c '^kind:' "$rs") objects)"
      if [ $have_yaml = 1 ]; then
        CHECK_LABEL="with the standby: " python3 "$D/check_manifests.py" "$rs" "$TOP"
        python3 "$D/mutations.py" "$rs" "$TOP" "$SUITE_DIR/mutations-standby"
      fi
    else
      echo "not ok - deployment/ with components/standby renders offline"
      sed 's/^/#   /' "$SUITE_DIR/kustomize-standby.err"
    fi
  fi

  python3 "$D/check_dockerfiles.py" "$TOP" "$TOP"/deployment/docker/*.Dockerfile
  python3 "$D/dockerfile_mutations.py" "$TOP" "$SUITE_DIR/dockerfile-mutations"
  python3 "$D/emulate_build.py" "$TOP" "$SUITE_DIR/emulated-build" "$TOP"/deployment/docker/*.Dockerfile

  if [ "$(id -u)" = 0 ]; then
    echo "ok - the PostgreSQL image's entrypoint and init.sql # SKIP run as root (use scripts/as-user.sh)"
  else
    # with the standby's own init-container script when it rendered
    bash "$D/test_pg_entrypoint.sh" "$SUITE_DIR/rendered-standby.yaml"
  fi

  if [ -s "$rendered" ] && [ $have_yaml = 1 ]; then
    bash "$D/test_gateway_layout.sh" "$rendered"
  else
    echo "ok - the gateway image's layout runs both daemons # SKIP needs the rendered manifests and python3-yaml"
  fi

  if command -v kubectl >/dev/null 2>&1 && [ $have_yaml = 1 ]; then
    bash "$D/test_deploy_script.sh"
  else
    echo "ok - scripts/deploy.sh against a recording kubectl # SKIP needs kubectl and python3-yaml"
  fi

  # the manual promotion of the standby, against a recording kubectl on PATH
  if [ $have_yaml = 1 ]; then
    bash "$D/test_promote_script.sh" "$SUITE_DIR/rendered-standby.yaml"
  else
    echo "ok - scripts/promote-standby.sh against a recording kubectl # SKIP needs python3-yaml"
  fi

  # scripts parse
  local bad=()
  for f in scripts/deploy.sh scripts/teardown.sh scripts/promote-standby.sh deployment/docker/postgres/entrypoint.sh; do
    bash -n "$TOP/$f" 2>/dev/null || bad+=("$f")
    [ -x "$TOP/$f" ] || bad+=("$f is not executable")
  done
  if [ ${#bad[@]} -eq 0 ]; then echo "ok - deploy scripts and the image entrypoint parse and are executable"
  else echo "not ok - deploy scripts and the image entrypoint parse and are executable"; printf '#   %s\n' "${bad[@]}"; fi

  # Vagrantfile: K3s, the three NodePorts forwarded
  local vf=$TOP/Vagrantfile missing=()
  for p in 30000 30001 30005; do
    grep -Eq "^\s*\[[0-9, ]*\b$p\b[0-9, ]*\]\.each|forwarded_port\", guest: $p\b" "$vf" 2>/dev/null || missing+=("$p")
  done
  grep -q 'get.k3s.io' "$vf" 2>/dev/null || missing+=("K3s install")
  grep -q 'scripts/deploy.sh' "$vf" 2>/dev/null || missing+=("scripts/deploy.sh")
  if command -v ruby >/dev/null 2>&1 && ! ruby -c "$vf" >/dev/null 2>&1; then missing+=("ruby -c fails"); fi
  if [ ${#missing[@]} -eq 0 ]; then echo "ok - the Vagrantfile installs K3s, deploys, and forwards NodePorts 30000, 30001, 30005"
  else echo "not ok - the Vagrantfile installs K3s, deploys, and forwards NodePorts 30000, 30001, 30005"; printf '#   missing: %s\n' "${missing[@]}"; fi

  # docs/scaling.md covers what the issue lists
  local doc=$TOP/docs/scaling.md gaps=()
  for w in partition "ingest_workers" replica "streaming replica" retention Citus person_id cell "make bench"; do
    grep -qi -- "$w" "$doc" 2>/dev/null || gaps+=("$w")
  done
  if [ ${#gaps[@]} -eq 0 ]; then echo "ok - docs/scaling.md covers partitions, workers, replicas, retention, Citus and the bench figures"
  else echo "not ok - docs/scaling.md covers partitions, workers, replicas, retention, Citus and the bench figures"; printf '#   missing: %s\n' "${gaps[@]}"; fi
}

body 2>&1 | awk '
  /^ok( |$)/     { n++; sub(/^ok/, "ok " n) }
  /^not ok( |$)/ { n++; sub(/^not ok/, "not ok " n) }
  { print }
  END { print "1.." n }'
