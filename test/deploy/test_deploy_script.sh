#!/usr/bin/env bash
# scripts/deploy.sh and scripts/teardown.sh against a recording kubectl (no
# cluster here): the stand-in logs every call, hands `create secret
# --dry-run=client` and `kustomize` to the real kubectl, and keeps what is
# applied.  Checks the order of the steps, the generated Secret (keys the
# manifests use, random values, kept on a second deploy, never written into
# the tree; the keys that came later, jwt-key and replication-password,
# added to an older Secret through stdin) and that what is applied is
# `kubectl kustomize deployment/`
# (with --standby: plus components/standby).
# Prints "ok - ..." / "not ok - ..." lines; the suite numbers them.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
W=$SUITE_DIR/deploy-script
REAL_KUBECTL=${REAL_KUBECTL:-$(command -v kubectl)}

ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

rm -rf "$W"; mkdir -p "$W/bin" "$W/state"
cat > "$W/bin/kubectl" <<'STUB'
#!/usr/bin/env bash
# recording stand-in for kubectl (test/deploy/test_deploy_script.sh)
S=$STUB_STATE
echo "$*" >> "$S/calls.log"
args=" $* "
case "$args" in
  *" cluster-info "*) exit 0 ;;
  *" get secret "*"jsonpath={.data."*) # the one key asked for, as the real one prints it
    key=$(sed -n 's/.*jsonpath={\.data\.\([A-Za-z0-9_-]*\)}.*/\1/p' <<<"$args")
    [ -f "$S/secret.yaml" ] && python3 -c 'import sys, yaml; print((yaml.safe_load(open(sys.argv[1])).get("data") or {}).get(sys.argv[2], ""), end="")' "$S/secret.yaml" "$key" ;;
  *" get secret "*) [ -f "$S/secret.yaml" ] ;;
  *" patch secret "*) # keep the patch, and merge it as the API server would
    cat > "$S/patch.json"
    python3 -c '
import base64, json, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for k, v in json.load(open(sys.argv[2]))["stringData"].items():
    d.setdefault("data", {})[k] = base64.b64encode(v.encode()).decode()
yaml.safe_dump(d, open(sys.argv[1], "w"))' "$S/secret.yaml" "$S/patch.json" ;;
  *" create secret "*"--dry-run=client"*) exec "$REAL_KUBECTL" "$@" ;;
  *" apply -f - "*) cat > "$S/applied-stdin.yaml"; grep -q '^kind: Secret' "$S/applied-stdin.yaml" && cp "$S/applied-stdin.yaml" "$S/secret.yaml"; exit 0 ;;
  *" apply -f "*) exit 0 ;;
  *" apply -k "*) exec "$REAL_KUBECTL" kustomize "${@: -1}" > "$S/applied-k.yaml" ;;
  *" delete "*|*" rollout status "*|*" wait "*) exit 0 ;;
  *" get pods,svc "*) echo "NAME READY STATUS"; exit 0 ;;
  *) echo "stub kubectl: unexpected call: $*" >&2; exit 3 ;;
esac
STUB
chmod +x "$W/bin/kubectl"
export STUB_STATE=$W/state REAL_KUBECTL
K=$W/bin/kubectl

# --- first deploy ---------------------------------------------------------------
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok "deploy.sh runs through (recording kubectl)"; else nok "deploy.sh runs through (recording kubectl)" "rc=$rc" "$out"; fi

calls=$W/state/calls.log
line() { grep -n -- "$1" "$calls" | head -n 1 | cut -d: -f1; }
ns=$(line 'apply -f .*deployment/namespace.yaml'); sec=$(line 'create secret generic udaconnect-secrets')
job=$(line 'delete job kafka-create-topic'); app=$(line 'apply -k'); wt=$(line 'wait --for=condition=complete job/kafka-create-topic')
if [ -n "$ns" ] && [ -n "$sec" ] && [ -n "$job" ] && [ -n "$app" ] && [ -n "$wt" ] &&
   [ "$ns" -lt "$sec" ] && [ "$sec" -lt "$app" ] && [ "$job" -lt "$app" ] && [ "$app" -lt "$wt" ]; then
  ok "order: namespace, Secret, old topic Job deleted, apply -k, then waits"
else
  nok "order: namespace, Secret, old topic Job deleted, apply -k, then waits" "$(cat "$calls")"
fi

secret_check=$(python3 - "$W/state/secret.yaml" "$TOP" <<'PY'
import base64, re, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
probs = []
if d.get("kind") != "Secret" or d["metadata"].get("name") != "udaconnect-secrets" or d["metadata"].get("namespace") != "udaconnect":
    probs.append(f"not Secret udaconnect/udaconnect-secrets: {d.get('kind')} {d.get('metadata')}")
data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
want = {"postgres-password", "api-password", "reader-password", "replication-password", "jwt-key"}
if set(data) != want:
    probs.append(f"keys {sorted(data)}, want {sorted(want)}")
for k, v in data.items():
    if k == "jwt-key":
        if not re.fullmatch(r"[A-Za-z0-9_-]{64}", v):
            probs.append("jwt-key is not 48 random bytes as base64url (64 characters)")
    elif not re.fullmatch(r"[A-Za-z0-9]{32}", v):
        probs.append(f"{k} is not 32 random letters and digits")
if len(set(data.values())) != len(data):
    probs.append("two passwords are equal")
print("\n".join(probs))
print("VALUES " + " ".join(data.values()))
PY
)
probs=$(grep -v '^VALUES ' <<<"$secret_check")
values=$(sed -n 's/^VALUES //p' <<<"$secret_check")
if [ -z "$probs" ] && [ -n "$values" ]; then
  ok "the Secret has the four passwords (32 random characters each; replication-password for the standby's role) and the token signing key the manifests use"
else
  nok "the Secret has the four passwords and the token signing key the manifests use" "$probs"
fi

leak=""
for v in $values; do
  if grep -rqF -- "$v" "$TOP/deployment" "$TOP/scripts" "$TOP/test/deploy" 2>/dev/null; then leak="$leak $v"; fi
  if grep -qF -- "$v" "$calls"; then leak="$leak (on a kubectl command line)"; fi
done
if [ -z "$leak" ] && [ -n "$values" ]; then
  ok "no generated password is written into the tree or passed on a command line"
else
  nok "no generated password is written into the tree or passed on a command line" "$leak"
fi

if "$REAL_KUBECTL" kustomize "$TOP/deployment" | cmp -s - "$W/state/applied-k.yaml"; then
  ok "what deploy.sh applies is exactly kubectl kustomize deployment/"
else
  nok "what deploy.sh applies is exactly kubectl kustomize deployment/"
fi

# --- second deploy keeps the Secret --------------------------------------------------
cp "$W/state/secret.yaml" "$W/secret.first"
: > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --no-wait 2>&1); rc=$?
if [ $rc -eq 0 ] && ! grep -qE 'create secret|patch secret' "$calls" && cmp -s "$W/state/secret.yaml" "$W/secret.first" &&
   grep -q 'apply -k' "$calls" && ! grep -q 'rollout status' "$calls"; then
  ok "a second deploy keeps the existing Secret (the database was initialised with it), patches nothing; --no-wait does not wait"
else
  nok "a second deploy keeps the existing Secret; --no-wait does not wait" "rc=$rc" "$(cat "$calls")"
fi

# --- a Secret from before tokens existed gets its signing key, one from before
# the replication role its replication-password: one patch through stdin ----
drop_keys() { # drop_keys KEY...: the stand-in's Secret without them
  python3 - "$W/state/secret.yaml" "$@" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d["data"].pop(k, None)
yaml.safe_dump(d, open(sys.argv[1], "w"))
PY
}
patched_ok() { # patched_ok KEY...: the patch set exactly these keys, well-formed, none on a command line
  python3 - "$W/state/patch.json" "$calls" "$@" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))["stringData"]
calls = open(sys.argv[2]).read()
want = set(sys.argv[3:])
ok = set(d) == want
for k, v in d.items():
    pat = r"[A-Za-z0-9_-]{64}" if k == "jwt-key" else r"[A-Za-z0-9]{32}"
    ok = ok and re.fullmatch(pat, v) is not None and v not in calls
sys.exit(0 if ok else 1)
PY
}
drop_keys jwt-key
rm -f "$W/state/patch.json"; : > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --no-wait 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q 'patch secret udaconnect-secrets --patch-file=/dev/stdin' "$calls" && patched_ok jwt-key; then
  ok "an existing Secret without jwt-key gets one (a patch through stdin, not on the command line); its passwords stay"
else
  nok "an existing Secret without jwt-key gets one through stdin" "rc=$rc" "$(cat "$calls")" "$out"
fi

drop_keys replication-password
rm -f "$W/state/patch.json"; : > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --no-wait 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c 'patch secret' "$calls")" = 1 ] && patched_ok replication-password &&
   grep -q 'docs/deployment.md' <<<"$out"; then
  ok "an existing Secret without replication-password gets one (32 random characters, through stdin), with a pointer to adding the role to an older primary"
else
  nok "an existing Secret without replication-password gets one through stdin" "rc=$rc" "$(cat "$calls")" "$out"
fi

drop_keys jwt-key replication-password
rm -f "$W/state/patch.json"; : > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --no-wait 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c 'patch secret' "$calls")" = 1 ] && patched_ok jwt-key replication-password; then
  ok "a Secret lacking both gets both in one patch"
else
  nok "a Secret lacking both gets both in one patch" "rc=$rc" "$(cat "$calls")" "$out"
fi

out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --bogus 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q "unknown option '--bogus'" <<<"$out"; then
  ok "deploy.sh rejects an unknown option by name"
else
  nok "deploy.sh rejects an unknown option by name" "rc=$rc $out"
fi

# --- the optional hot standby -----------------------------------------------------------
: > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/deploy.sh" --standby 2>&1); rc=$?
ov=$(sed -n 's/^apply -k //p' "$calls" | head -n 1)
if [ $rc -eq 0 ] && python3 - "$W/state/applied-k.yaml" <<'PY' && grep -q 'rollout status statefulset/postgres-standby' "$calls" && [ -n "$ov" ] && [ ! -e "$ov" ]
import sys, yaml
got = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(open(sys.argv[1])) if d}
want = {("StatefulSet", "postgres"), ("StatefulSet", "postgres-standby"), ("Service", "postgres-read"),
        ("NetworkPolicy", "postgres-standby"), ("Deployment", "udaconnect-httpd")}
sys.exit(0 if want <= got else 1)
PY
then
  ok "deploy.sh --standby applies deployment/ with components/standby (from an overlay it removes), and waits for the standby"
else
  nok "deploy.sh --standby applies deployment/ with components/standby and waits for the standby" "rc=$rc" "$out" "$(cat "$calls")"
fi

# --- teardown --------------------------------------------------------------------------
: > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/teardown.sh" --keep-data 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q -- '-n udaconnect delete .*-l app.kubernetes.io/part-of=udaconnect' "$calls" &&
   ! grep -qE 'namespace|pvc|persistentvolumeclaim|secret' "$calls"; then
  ok "teardown.sh --keep-data deletes the labelled objects, not the namespace, PVCs or Secret"
else
  nok "teardown.sh --keep-data deletes the labelled objects, not the namespace, PVCs or Secret" "rc=$rc" "$(cat "$calls")"
fi
: > "$calls"
out=$(KUBECTL=$K "$TOP/scripts/teardown.sh" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -qx 'delete namespace udaconnect --ignore-not-found --wait=true' "$calls"; then
  ok "teardown.sh deletes namespace udaconnect"
else
  nok "teardown.sh deletes namespace udaconnect" "rc=$rc" "$(cat "$calls")"
fi
# the generated Secrets exist only in the stand-in's state
rm -rf "$W/state/secret.yaml" "$W/state/applied-stdin.yaml" "$W/secret.first"
exit 0
