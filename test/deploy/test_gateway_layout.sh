#!/usr/bin/env bash
# The gateway image's file layout, for real: lays out under $SUITE_DIR/root
# exactly what the final stage of deployment/docker/gateway.Dockerfile
# installs (the package udaconnect-gateways of build/deb, unpacked: the
# daemons, openapi.json and the web app where the package puts them) and copies,
# then runs each daemon the way its Deployment does (command without tini,
# working directory, environment from the ConfigMap's keys) against the
# running test stack, and asks what the Kubernetes probes ask:
#   udaconnect-httpd: GET /healthz, the web app at /, /api/openapi.json
#   udaconnect-grpcd: grpc.health.v1.Health/Check -> SERVING (python3-grpcio)
# and that SIGTERM stops each with status 0.
# Needs the stack's env (UDACONNECT_DATABASE_URL, UDACONNECT_KAFKA_BROKERS) and
# the rendered manifests ($1).  Prints "ok - ..." / "not ok - ..." lines.
set -uo pipefail
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SUITE_DIR=${SUITE_DIR:-$(mktemp -d)}
RENDERED=$1
W=$SUITE_DIR/gwimage
HP=$(( ${UDACONNECT_HTTP_PORT:-30011} + 7 ))
GP=$(( ${UDACONNECT_GRPC_PORT:-30015} + 7 ))

ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

if ! ls "$TOP"/build/deb/udaconnect-gateways_*.deb >/dev/null 2>&1; then
  ok "the gateway image's layout runs both daemons # SKIP the package is not built (run make deb)"
  exit 0
fi

rm -rf "$W"; mkdir -p "$W/root"
# Materialise the final stage's COPYs and read each Deployment's command.
layout=$(python3 - "$TOP" "$W/root" "$RENDERED" <<'PY'
import os, shutil, subprocess, sys, yaml
top, root, rendered = sys.argv[1:4]
sys.path.insert(0, os.path.join(top, "test", "deploy"))
import check_dockerfiles as cd
stages = cd.parse(os.path.join(top, "deployment", "docker", "gateway.Dockerfile"))
# the packages the final stage installs, as apt-get would unpack them
for files in cd.installed_debs(stages[-1], top).values():
    for f in files:
        subprocess.run(["dpkg-deb", "-x", f, root], check=True)
for instr, rest in stages[-1]["instr"]:
    if instr != "COPY":
        continue
    frm, srcs, dst = cd.copy_parts(rest)
    for src in srcs:
        if src.endswith(".deb"):
            continue  # unpacked above
        if frm:
            assert src.startswith("/src/"), src
            src = src[len("/src/"):]
        s = os.path.join(top, src)
        d = root + dst
        if os.path.isdir(s):
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            os.makedirs(os.path.dirname(d) if not dst.endswith("/") else d, exist_ok=True)
            shutil.copy2(s, d if not dst.endswith("/") else os.path.join(d, os.path.basename(s)))
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
for d in docs:
    if d["kind"] != "Deployment":
        continue
    c = d["spec"]["template"]["spec"]["containers"][0]
    cmd = [a for a in c["command"] if a not in ("/usr/bin/tini", "--")]
    env = []
    for e in c.get("env", []):
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            env.append(e["name"])
    wd = c.get("workingDir", "/")
    print(d["metadata"]["name"], root + wd, " ".join(root + a for a in cmd), ",".join(env))
PY
) || { nok "the gateway image's layout can be materialised from the Dockerfile" "$layout"; exit 0; }

DPID="" DERR=""
run_daemon() { # run_daemon NAME LOG VAR=VALUE...: start the Deployment's command from the layout (sets DPID)
  local name=$1 log=$2; shift 2
  local line wd cmd
  DPID=""
  line=$(grep "^$name " <<<"$layout") || { DERR="no Deployment $name"; return 1; }
  wd=$(cut -d' ' -f2 <<<"$line"); cmd=$(cut -d' ' -f3 <<<"$line")
  [ -x "$cmd" ] || { DERR="$cmd is not in the layout"; return 1; }
  (cd "$wd" && exec env -i PATH=/usr/bin:/bin "$@" "$cmd") >"$log" 2>&1 &
  DPID=$!
}
stop_daemon() { # stop_daemon PID: SIGTERM, wait, exit status
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; return 99; fi
  wait "$pid"
}

# --- the token signing key, as the Secret's jwt-key is mounted --------------
TOKENCLI=$(find "$W/root" -name udaconnect-token -type f -perm -u+x | head -n 1)
if [ -n "$TOKENCLI" ] && (umask 077; "$TOKENCLI" --genkey > "$W/jwt.key") && [ -s "$W/jwt.key" ]; then
  ok "the image carries udaconnect-token, which makes a signing key (--genkey)"
else
  nok "the image carries udaconnect-token, which makes a signing key (--genkey)" "found: ${TOKENCLI:-none}"
fi

# --- udaconnect-httpd --------------------------------------------------------
run_daemon udaconnect-httpd "$W/httpd.log" UDACONNECT_HTTP_PORT="$HP" \
  UDACONNECT_AUTH=on UDACONNECT_JWT_KEY_FILE="$W/jwt.key" \
  UDACONNECT_DATABASE_URL="$UDACONNECT_DATABASE_URL" || nok "udaconnect-httpd starts from the image layout" "$DERR"
hpid=$DPID
if [ -n "$hpid" ]; then
  up=0
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$HP/healthz" && { up=1; break; }
    kill -0 "$hpid" 2>/dev/null || break
    sleep 0.2
  done
  h=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/healthz")
  i=$(curl -s "http://127.0.0.1:$HP/"); ic=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/")
  o=$(curl -s "http://127.0.0.1:$HP/api/openapi.json")
  if [ $up = 1 ] && [ "$h" = 200 ] && [ "$ic" = 200 ] && grep -qi '<html' <<<"$i" &&
     python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(0 if "openapi" in d else 1)' <<<"$o"; then
    ok "udaconnect-httpd from the image layout: /healthz 200 (readiness probe), web app at /, /api/openapi.json"
  else
    nok "udaconnect-httpd from the image layout: /healthz 200 (readiness probe), web app at /, /api/openapi.json" \
        "healthz=$h index=$ic" "$(tail -n 5 "$W/httpd.log")"
  fi
  tok=$("$TOKENCLI" --key-file "$W/jwt.key" --organizer layout-test --ttl 5m 2>/dev/null)
  with=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:$HP/api/persons")
  without=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/api/persons")
  if [ "$with" = 200 ] && [ "$without" = 401 ]; then
    ok "udaconnect-httpd from the image layout asks for a token: 401 without, 200 with one udaconnect-token signed"
  else
    nok "udaconnect-httpd from the image layout asks for a token" "with=$with without=$without"
  fi
  stop_daemon "$hpid"; rc=$?
  if [ $rc = 0 ]; then ok "udaconnect-httpd stops on SIGTERM with status 0"; else nok "udaconnect-httpd stops on SIGTERM with status 0" "status $rc"; fi
fi

# --- udaconnect-grpcd --------------------------------------------------------
run_daemon udaconnect-grpcd "$W/grpcd.log" UDACONNECT_GRPC_PORT="$GP" \
  UDACONNECT_AUTH=on UDACONNECT_JWT_KEY_FILE="$W/jwt.key" \
  UDACONNECT_KAFKA_BROKERS="${UDACONNECT_KAFKA_BROKERS:-}" UDACONNECT_KAFKA_TOPIC=locations \
  UDACONNECT_DATABASE_URL="$UDACONNECT_DATABASE_URL" || nok "udaconnect-grpcd starts from the image layout" "$DERR"
gpid=$DPID
if [ -n "$gpid" ]; then
  out=$(python3 - "$GP" <<'PY' 2>&1
import sys, grpc
ch = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}")
grpc.channel_ready_future(ch).result(timeout=30)
check = ch.unary_unary("/grpc.health.v1.Health/Check")   # raw bytes in and out
resp = check(b"", timeout=10)                              # HealthCheckRequest{service: ""}
print(resp.hex())
PY
)
  if [ "$out" = 0801 ]; then
    ok "udaconnect-grpcd from the image layout answers grpc.health.v1.Health/Check SERVING (the gRPC probe)"
  else
    nok "udaconnect-grpcd from the image layout answers grpc.health.v1.Health/Check SERVING (the gRPC probe)" \
        "${out:0:300}" "$(tail -n 5 "$W/grpcd.log")"
  fi
  stop_daemon "$gpid"; rc=$?
  if [ $rc = 0 ]; then ok "udaconnect-grpcd stops on SIGTERM with status 0"; else nok "udaconnect-grpcd stops on SIGTERM with status 0" "status $rc" "$(tail -n 5 "$W/grpcd.log")"; fi
fi
exit 0
