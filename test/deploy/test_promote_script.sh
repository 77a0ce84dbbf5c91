#!/usr/bin/env bash
# scripts/promote-standby.sh against a recording `kubectl` first on PATH (no
# cluster here): the stand-in logs every call (its argv, shell-quoted), keeps
# what is applied, and answers the standby's queries as told (in recovery or
# not, down, pg_promote true or false, postgres-0 present or gone).  Checks
# that --dry-run prints exactly the commands a real run makes and runs none;
# the order that makes a promotion safe (the old primary fenced before the
# promotion, Kafka opened before it, the write Service switched only after
# it); that nothing changes when the standby does not answer, and no Service
# moves when pg_promote fails; that a second run is harmless.  With the
# rendered manifests (test_promote_script.sh RENDERED-STANDBY.yaml): the
# policies it applies open exactly postgres-standby -> kafka:9092 (by
# check_manifests.py's path check) and the patched Service postgres selects
# postgres-standby-0 alone.
# Prints "ok - ..." / "not ok - ..." lines; the suite numbers them.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
W=$SUITE_DIR/promote-script
RENDERED_STANDBY=${1:-}
SCRIPT=$TOP/scripts/promote-standby.sh

ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

rm -rf "$W"; mkdir -p "$W/bin" "$W/state"
cat > "$W/bin/kubectl" <<'STUB'
#!/usr/bin/env bash
# recording stand-in for kubectl (test/deploy/test_promote_script.sh)
S=$STUB_STATE
printf '%q ' "$@" >> "$S/calls.log"; echo >> "$S/calls.log"
args=" $* "
case "$args" in
  *" exec "*"pg_is_in_recovery()"*)
    case "${FAKE_RECOVERY:-t}" in
      down) echo 'error: unable to upgrade connection: container not found ("postgres")' >&2; exit 1 ;;
      *) echo "${FAKE_RECOVERY:-t}|0/5000148|2025-01-01 12:00:00.5+00" ;;
    esac ;;
  *" exec "*"pg_promote("*) echo "${FAKE_PROMOTE:-t}" ;;
  *" exec "*"ingest_status"*) echo " worker | state"; echo " 0 | consuming" ;;
  *" get pod postgres-0 "*) [ "${FAKE_POD:-yes}" = fail ] && { echo "error: the server is unreachable" >&2; exit 1; }
                            [ "${FAKE_POD:-yes}" = yes ] && echo "pod/postgres-0"; exit 0 ;;
  *" apply -f - "*) cat > "$S/applied.yaml" ;;
  *" scale "*|*" wait "*|*" patch service "*|*" rollout "*) exit 0 ;;
  *) echo "stub kubectl: unexpected call: $*" >&2; exit 3 ;;
esac
STUB
chmod +x "$W/bin/kubectl"
export STUB_STATE=$W/state
calls=$W/state/calls.log

run() { # run ARGS...: the script with the stand-in first on PATH; sets out, rc
  : > "$calls"; rm -f "$W/state/applied.yaml"
  out=$(env -u KUBECTL PATH="$W/bin:$PATH" "$SCRIPT" "$@" 2>&1); rc=$?
}
has() { grep -qF -- "$1" "$calls"; }
# the line number of the first call containing TEXT (0: none)
at() { local n; n=$(grep -nF -- "$1" "$calls" | head -n 1 | cut -d: -f1); echo "${n:-0}"; }

# --- neither option: refuses, runs nothing -------------------------------------------
run
if [ $rc -eq 2 ] && [ ! -s "$calls" ] && grep -q -- '--dry-run' <<<"$out" && grep -q -- '--yes' <<<"$out"; then
  ok "promote-standby.sh without --yes or --dry-run refuses (status 2), runs no kubectl, names both options"
else
  nok "promote-standby.sh without --yes or --dry-run refuses and runs no kubectl" "rc=$rc" "$out" "$(cat "$calls")"
fi

# --- --dry-run: the commands, none run ----------------------------------------------------
run --dry-run
dry=$out dry_rc=$rc dry_calls=$(cat "$calls")
# --- --yes: the standby in recovery, postgres-0 still there -----------------------------
run --yes
if [ $rc -eq 0 ] && grep -q 'Do not run scripts/deploy.sh' <<<"$out"; then
  ok "promote-standby.sh --yes runs through (recording kubectl on PATH) and warns against running deploy.sh as it is afterwards"
else
  nok "promote-standby.sh --yes runs through (recording kubectl on PATH)" "rc=$rc" "$out"
fi

printf '%s\n' "$dry" > "$W/dry-run.txt"
cmp_out=$(python3 - "$W/dry-run.txt" "$calls" <<'PY' 2>&1
import shlex, sys
lines, skip = [], False
for ln in open(sys.argv[1]).read().splitlines():
    if skip:                      # a here-document: the text fed on stdin
        skip = ln != "EOF"
        continue
    if ln.startswith("kubectl "):
        if ln.endswith("<<'EOF'"):
            ln, skip = ln[: -len("<<'EOF'")], True
        lines.append(shlex.split(ln)[1:])
made = [shlex.split(ln) for ln in open(sys.argv[2]).read().splitlines()]
if lines != made:
    print("dry run:", *[" ".join(x) for x in lines], sep="\n  ")
    print("real run:", *[" ".join(x) for x in made], sep="\n  ")
    sys.exit(1)
print(len(made))
PY
)
if [ $dry_rc -eq 0 ] && [ -z "$dry_calls" ] && [[ $cmp_out =~ ^[0-9]+$ ]]; then
  ok "--dry-run runs no kubectl and prints exactly the $cmp_out commands a real run makes, in its order"
else
  nok "--dry-run runs no kubectl and prints exactly the commands a real run makes" "rc=$dry_rc" "calls: $dry_calls" "$cmp_out"
fi

check=$(at 'pg_is_in_recovery') fence=$(at 'scale statefulset/postgres --replicas=0') gone=$(at 'wait --for=delete pod/postgres-0')
alone=$(at 'scale statefulset/postgres-standby --replicas=1') pol=$(at 'apply -f -') prom=$(at 'pg_promote')
svc=$(at 'patch service postgres') rst=$(at 'rollout restart deployment/udaconnect-httpd deployment/udaconnect-grpcd')
st=$(at 'ingest_status')
if [ "$check" = 1 ] && [ "$check" -lt "$fence" ] && [ "$fence" -lt "$gone" ] && [ "$gone" -lt "$prom" ] &&
   [ "$alone" -gt 0 ] && [ "$alone" -lt "$prom" ] && [ "$pol" -gt 0 ] && [ "$pol" -lt "$prom" ] &&
   [ "$prom" -lt "$svc" ] && [ "$svc" -lt "$rst" ] && [ "$rst" -lt "$st" ] &&
   grep -q -- '-n udaconnect exec postgres-standby-0 -c postgres -- psql' "$calls"; then
  ok "order: standby checked first; old primary scaled to 0 and gone, other standbys dropped, Kafka opened, then pg_promote; then Service postgres, gateways restarted, ingest shown"
else
  nok "order: check, fence, drop standbys, open Kafka, promote, Service, restart" \
    "check=$check fence=$fence gone=$gone alone=$alone policies=$pol promote=$prom service=$svc restart=$rst status=$st" "$(cat "$calls")"
fi

# What was applied and patched, against the rendered manifests: the
# policies open exactly postgres-standby -> kafka:9092; the Service selects
# the promoted pod alone.
if [ -n "$RENDERED_STANDBY" ] && [ -s "$RENDERED_STANDBY" ] && [ -s "$W/state/applied.yaml" ]; then
  cat "$RENDERED_STANDBY" > "$W/with-policies.yaml"
  printf '%s\n' "---" >> "$W/with-policies.yaml"; cat "$W/state/applied.yaml" >> "$W/with-policies.yaml"
  diag=$(python3 "$TOP/test/deploy/check_manifests.py" "$W/with-policies.yaml" "$TOP" |
         sed -n '/^not ok - NetworkPolicies/,/^ok\|^not ok - [^N]/p' | grep '^#' | sed 's/^#   //' | sort)
  want=$(printf '%s\n' "egress postgres-standby -> kafka TCP/9092 is allowed but not needed" \
                       "path postgres-standby -> kafka TCP/9092 is open but not needed" | sort)
  if [ "$diag" = "$want" ]; then
    ok "the NetworkPolicies it applies open postgres-standby -> kafka:9092 and nothing else (check_manifests.py's path check)"
  else
    nok "the NetworkPolicies it applies open postgres-standby -> kafka:9092 and nothing else" "got:" "$diag" "want:" "$want"
  fi
  sel=$(python3 - "$RENDERED_STANDBY" "$calls" <<'PY' 2>&1
import json, shlex, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "postgres")
call = next(shlex.split(ln) for ln in open(sys.argv[2]) if "patch service postgres" in ln)
assert "--type=merge" in call, call
patch = json.loads(call[call.index("-p") + 1])
sel = dict(svc["spec"]["selector"])
sel.update(patch["spec"]["selector"])            # a JSON merge patch of a map
def pod(sts, i):
    d = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == sts)
    labels = dict(d["spec"]["template"]["metadata"]["labels"])
    labels["statefulset.kubernetes.io/pod-name"] = f"{sts}-{i}"   # set by the StatefulSet controller
    return labels
picks = [f"{s}-{i}" for s, i in (("postgres", 0), ("postgres-standby", 0), ("postgres-standby", 1))
         if all(pod(s, i).get(k) == v for k, v in sel.items())]
print(" ".join(picks) or "nothing")
PY
)
  if [ "$sel" = "postgres-standby-0" ]; then
    ok "the patched Service postgres selects postgres-standby-0 alone (not postgres-0, not another standby)"
  else
    nok "the patched Service postgres selects postgres-standby-0 alone" "selects: $sel"
  fi
else
  ok "what promote-standby.sh applies and patches, against the rendered manifests # SKIP no rendered standby manifests given"
fi

# --- the standby does not answer: nothing changes -----------------------------------
FAKE_RECOVERY=down run --yes
if [ $rc -ne 0 ] && grep -q 'does not answer: nothing was changed' <<<"$out" && [ "$(wc -l < "$calls")" = 1 ]; then
  ok "a standby that does not answer stops it before anything changes (postgres-0 is not scaled down)"
else
  nok "a standby that does not answer stops it before anything changes" "rc=$rc" "$out" "$(cat "$calls")"
fi

# --- kubectl cannot say whether the old primary is gone: nothing is promoted --------
FAKE_POD=fail run --yes
if [ $rc -ne 0 ] && ! has 'pg_promote' && ! has 'wait --for=delete' && grep -q 'cannot tell whether postgres-0 is gone' <<<"$out"; then
  ok "a failed 'get pod postgres-0' does not pass for gone: it stops before pg_promote"
else
  nok "a failed 'get pod postgres-0' does not pass for gone" "rc=$rc" "$out" "$(cat "$calls")"
fi

# --- pg_promote fails: the write Service stays --------------------------------------
FAKE_PROMOTE=f run --yes
if [ $rc -ne 0 ] && has 'pg_promote' && ! has 'patch service' && ! has 'rollout' && grep -q 'run this again' <<<"$out"; then
  ok "pg_promote answering false stops it before Service postgres moves or the gateways restart"
else
  nok "pg_promote answering false stops it before Service postgres moves" "rc=$rc" "$out" "$(cat "$calls")"
fi

# --- run again after a promotion: no second promotion, the rest idempotent -------
FAKE_RECOVERY=f FAKE_POD=no run --yes
if [ $rc -eq 0 ] && ! has 'pg_promote' && ! has 'wait --for=delete' && has 'patch service postgres' &&
   has 'apply -f -' && has 'scale statefulset/postgres --replicas=0' && grep -q 'promoted already' <<<"$out"; then
  ok "run again on a promoted standby (postgres-0 gone): no second pg_promote, no wait for a pod that is gone; the other steps again"
else
  nok "run again on a promoted standby: no second pg_promote" "rc=$rc" "$out" "$(cat "$calls")"
fi

run --bogus
if [ $rc -eq 2 ] && grep -q "unknown option '--bogus'" <<<"$out" && [ ! -s "$calls" ]; then
  ok "promote-standby.sh rejects an unknown option by name"
else
  nok "promote-standby.sh rejects an unknown option by name" "rc=$rc $out"
fi
exit 0
