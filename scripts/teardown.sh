#!/usr/bin/env bash
# Remove UdaConnect from the Kubernetes cluster kubectl points at.
#
#   scripts/teardown.sh              delete namespace udaconnect: every object,
#                                    the Secret and the data volumes (PVCs)
#   scripts/teardown.sh --keep-data  delete the workloads, Services, Jobs,
#                                    HPAs, NetworkPolicies and ConfigMaps, but
#                                    keep the PVCs and the Secret, so that a
#                                    later scripts/deploy.sh finds the same data
#
# Environment: KUBECTL (default kubectl).
set -euo pipefail
NS=udaconnect
KUBECTL=${KUBECTL:-kubectl}
keep=0
for a in "$@"; do
  case "$a" in
    --keep-data) keep=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "teardown.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done
command -v "$KUBECTL" >/dev/null 2>&1 || { echo "teardown: kubectl not found" >&2; exit 1; }

if [ $keep = 1 ]; then
  echo "teardown: deleting the UdaConnect objects in $NS (keeping PVCs and the Secret)"
  "$KUBECTL" -n "$NS" delete \
      hpa,deployment,statefulset,job,service,networkpolicy,configmap \
      -l app.kubernetes.io/part-of=udaconnect --ignore-not-found --wait=true
else
  echo "teardown: deleting namespace $NS (all objects, the Secret and the data)"
  "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=true
fi
echo "teardown: done"
