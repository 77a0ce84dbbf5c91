#!/usr/bin/env python3
"""Structural checks of the rendered Kubernetes manifests (issue 6).

    kubectl kustomize deployment/ > rendered.yaml
    python3 test/deploy/check_manifests.py rendered.yaml [TOP]

The same checks hold for deployment/ with the optional hot standby
(components/standby), which adds its own (17: among them, that it copies and
streams as the replication role and sees no other Secret key) and its
network paths.

Prints one TAP line per check ("ok - ..." / "not ok - ..."; the suite numbers
them) with "# ..." diagnostics under each failure.  Offline: it reads the
rendered objects and a few files of the tree (the gateways' and the local
stack's port defaults, scripts/deploy.sh for the Secret's keys).
"""
import base64
import ipaddress
import os
import re
import sys

import yaml

NS = "udaconnect"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")

results = []
# prefixed to every check's description (the suite checks two renderings)
LABEL = os.environ.get("CHECK_LABEL", "")


def check(desc, problems):
    """Record one TAP result; problems is a list of strings (empty = ok)."""
    results.append((desc, list(problems)))


def emit():
    for desc, problems in results:
        if problems:
            print(f"not ok - {LABEL}{desc}")
            for p in problems[:40]:
                print(f"#   {p}")
        else:
            print(f"ok - {LABEL}{desc}")


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------
def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name_of(o):
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


def pod_spec(o):
    k = o["kind"]
    if k == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if k in WORKLOAD_KINDS:
        return o["spec"]["template"]["spec"]
    return None


def pod_labels(o):
    k = o["kind"]
    if k == "CronJob":
        t = o["spec"]["jobTemplate"]["spec"]["template"]
    else:
        t = o["spec"]["template"]
    return t.get("metadata", {}).get("labels", {}) or {}


def containers(spec):
    return list(spec.get("initContainers", []) or []) + list(spec.get("containers", []) or [])


def selector_matches(sel, labels):
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain map."""
    if sel is None:
        return False
    if "matchLabels" in sel or "matchExpressions" in sel:
        for k, v in (sel.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for e in sel.get("matchExpressions") or []:
            k, op, vals = e["key"], e["operator"], e.get("values") or []
            if op == "In" and labels.get(k) not in vals:
                return False
            if op == "NotIn" and labels.get(k) in vals:
                return False
            if op == "Exists" and k not in labels:
                return False
            if op == "DoesNotExist" and k in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in sel.items())


def secret_keys_seen(spec):
    """(secret, key) pairs a pod can read; key '*' = every key of the Secret
    (envFrom, or a volume without items)."""
    seen = set()
    for c in containers(spec):
        for e in c.get("env", []) or []:
            r = (e.get("valueFrom") or {}).get("secretKeyRef")
            if r:
                seen.add((r["name"], r["key"]))
        for ef in c.get("envFrom", []) or []:
            if ef.get("secretRef"):
                seen.add((ef["secretRef"]["name"], "*"))
    for v in spec.get("volumes", []) or []:
        sources = [v] if "secret" in v else [src for src in (v.get("projected") or {}).get("sources", []) or []]
        for src in sources:
            sec = src.get("secret")
            if not sec:
                continue
            name = sec.get("secretName") or sec.get("name")
            items = sec.get("items")
            if items:
                seen |= {(name, it["key"]) for it in items}
            else:
                seen.add((name, "*"))
    return seen


def secret_env(c, name):
    """(secret, key) of a container's env var taken from a Secret, else None."""
    for e in (c or {}).get("env", []) or []:
        r = (e.get("valueFrom") or {}).get("secretKeyRef")
        if e["name"] == name and r:
            return (r["name"], r["key"])
    return None


REPLICATION_ROLE = "udaconnect_replicator"
REPLICATION_KEY = ("udaconnect-secrets", "replication-password")


def check_standby(standby, services, pods_selected, container, env_value):
    """The problems of the optional hot standby (components/standby)."""
    probs = []

    def names(svc):
        if not svc:
            return set()
        return {pod_labels(w).get("app.kubernetes.io/name") for w in pods_selected(svc["spec"].get("selector") or {})}

    if names(services.get("postgres")) != {"postgres"}:
        probs.append(f"Service postgres (the writes) selects {sorted(names(services.get('postgres')))}, not the primary alone")
    if names(services.get("postgres-read")) != {"postgres-standby"}:
        probs.append(f"Service postgres-read selects {sorted(names(services.get('postgres-read')))}, not the standbys alone")
    inits = pod_spec(standby).get("initContainers") or []
    script = " ".join(" ".join(c.get("command", []) + c.get("args", [])) for c in inits)
    if not re.search(r"pg_basebackup\b[^\n]*(?:\\\n[^\n]*)*\s-R\b", script):
        probs.append("no init container makes the copy with pg_basebackup ... -R (standby.signal, primary_conninfo)")
    if "postgres-0.postgres-headless" not in script and "postgres-0.postgres-headless" not in str(inits):
        probs.append("the copy is not taken from the primary postgres-0.postgres-headless")
    # a standby holds the replication role's password and nothing more
    # (issue 16): the copy and the walreceiver use udaconnect_replicator
    users = re.findall(r"pg_basebackup\b[^\n]*?(?:\\\n[^\n]*?)*?\s-U\s*['\"]?([\w$]+)", script)
    if not users or set(users) != {REPLICATION_ROLE}:
        probs.append(f"the copy is made as {users or 'the default user'}, not -U {REPLICATION_ROLE}")
    seen = secret_keys_seen(pod_spec(standby))
    if seen != {REPLICATION_KEY}:
        probs.append(f"the standby pod can read Secret keys {sorted(seen)}; only {REPLICATION_KEY} (never postgres-password)")
    for c in inits:
        if REPLICATION_ROLE in " ".join(c.get("command", []) + c.get("args", [])) and secret_env(c, "PGPASSWORD") != REPLICATION_KEY:
            probs.append(f"init container {c['name']}: PGPASSWORD is {secret_env(c, 'PGPASSWORD')}, not {REPLICATION_KEY}")
    main = (pod_spec(standby).get("containers") or [{}])[0]
    if secret_env(main, "PGPASSWORD") != REPLICATION_KEY:
        probs.append(f"the walreceiver's PGPASSWORD (container {main.get('name')}) is {secret_env(main, 'PGPASSWORD')}, not {REPLICATION_KEY}")
    for who in ("udaconnect-httpd", "udaconnect-grpcd"):
        c = container("Deployment", who)
        url = env_value(c, "UDACONNECT_DATABASE_READ_URL") if c else None
        if not url:
            probs.append(f"{who}: no UDACONNECT_DATABASE_READ_URL")
            continue
        kv = dict(re.findall(r"(\w+)=(\S+)", url))
        hosts = kv.get("host", "").split(",")
        if hosts[:1] != ["postgres-read"] or hosts[-1] != "postgres" or len(hosts) < 2:
            probs.append(f"{who}: read URL hosts {hosts}: the read Service first, the primary last (fallback)")
        if kv.get("target_session_attrs") not in ("prefer-standby", "any"):
            probs.append(f"{who}: read URL target_session_attrs={kv.get('target_session_attrs')}")
        if kv.get("dbname") != "geoconnections" or kv.get("user") in (None, "postgres") or "password" in kv:
            probs.append(f"{who}: read URL {url!r}: dbname geoconnections, a least-privilege role, no password")
    return probs


def main():
    rendered = sys.argv[1]
    top = sys.argv[2] if len(sys.argv) > 2 else os.getcwd()
    objs = load(rendered)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    workloads = [o for o in objs if o["kind"] in WORKLOAD_KINDS]
    configmaps = {o["metadata"]["name"]: o.get("data", {}) or {} for o in by_kind.get("ConfigMap", [])}
    services = {o["metadata"]["name"]: o for o in by_kind.get("Service", [])}

    def find(kind, name):
        for o in by_kind.get(kind, []):
            if o["metadata"]["name"] == name:
                return o
        return None

    def env_value(c, name):
        """Resolve a container env var (value or configMapKeyRef) to a string."""
        for e in c.get("env", []) or []:
            if e["name"] != name:
                continue
            if "value" in e:
                return e["value"]
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                return configmaps.get(ref["name"], {}).get(ref["key"])
            return None
        for ef in c.get("envFrom", []) or []:
            ref = ef.get("configMapRef")
            if ref and name in configmaps.get(ref["name"], {}):
                return configmaps[ref["name"]][name]
        return None

    def pods_selected(sel):
        return [w for w in workloads if selector_matches(sel, pod_labels(w))]

    # ---- 1. the namespace -------------------------------------------------
    probs = []
    if not find("Namespace", NS):
        probs.append(f"no Namespace {NS}")
    for o in objs:
        if o["kind"] == "Namespace":
            continue
        ns = o.get("metadata", {}).get("namespace")
        if ns != NS:
            probs.append(f"{name_of(o)} is in namespace {ns!r}, not {NS}")
    check(f"everything renders into namespace {NS} ({len(objs)} objects)", probs)

    # ---- 2. what the issue asks for exists --------------------------------
    want = [("StatefulSet", "postgres"), ("StatefulSet", "kafka"), ("Job", "kafka-create-topic"),
            ("Deployment", "udaconnect-grpcd"), ("Deployment", "udaconnect-httpd"),
            ("Service", "postgres"), ("Service", "kafka"), ("Service", "udaconnect-grpcd"),
            ("Service", "udaconnect-api"), ("Service", "udaconnect-app"),
            ("HorizontalPodAutoscaler", "udaconnect-grpcd"), ("HorizontalPodAutoscaler", "udaconnect-httpd")]
    check("the system's objects are all there (PostgreSQL, Kafka, topic Job, both gateways, Services, HPAs)",
          [f"missing {k}/{n}" for k, n in want if not find(k, n)])

    # ---- 3. probes ----------------------------------------------------------
    probs = []
    for w in workloads:
        if w["kind"] not in LONG_RUNNING:
            continue
        for c in pod_spec(w).get("containers", []):
            for p in ("readinessProbe", "livenessProbe"):
                if not c.get(p):
                    probs.append(f"{name_of(w)} container {c['name']} has no {p}")
    check("every long-running container has a readiness and a liveness probe", probs)

    # ---- 4. requests and limits ---------------------------------------------
    probs = []
    units = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}

    def qty(s):
        m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(s))
        if not m or m.group(2) not in units:
            raise ValueError(f"bad quantity {s!r}")
        return float(m.group(1)) * units[m.group(2)]

    for w in workloads:
        for c in containers(pod_spec(w)):
            r = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in (r.get(kind) or {}):
                        probs.append(f"{name_of(w)} container {c['name']}: no {kind}.{res}")
            for res in ("cpu", "memory"):
                try:
                    if qty(r["requests"][res]) > qty(r["limits"][res]):
                        probs.append(f"{name_of(w)} container {c['name']}: {res} request above its limit")
                except (KeyError, TypeError):
                    pass
                except ValueError as e:
                    probs.append(f"{name_of(w)} container {c['name']}: {e}")
    check("every container has cpu and memory requests and limits (requests <= limits)", probs)

    # ---- 5. pinned images -----------------------------------------------------
    probs = []
    for w in workloads:
        for c in containers(pod_spec(w)):
            img = c.get("image", "")
            if "@sha256:" in img:
                continue
            last = img.rsplit("/", 1)[-1]
            if ":" not in last:
                probs.append(f"{name_of(w)} container {c['name']}: image {img!r} has no tag")
            elif last.split(":", 1)[1] in ("latest", "stable", "main", "master", ""):
                probs.append(f"{name_of(w)} container {c['name']}: image {img!r} has a floating tag")
            if c.get("imagePullPolicy") == "Always":
                probs.append(f"{name_of(w)} container {c['name']}: imagePullPolicy Always")
    check("every image is pinned to an exact tag or digest", probs)

    # ---- 6. non-root, no privileges (Pod Security 'restricted') ---------------
    probs = []
    for w in workloads:
        spec = pod_spec(w)
        psc = spec.get("securityContext") or {}
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            where = f"{name_of(w)} container {c['name']}"
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot"))):
                probs.append(f"{where}: runAsNonRoot is not set")
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            if uid in (None, 0):
                probs.append(f"{where}: no non-zero runAsUser")
            if sc.get("allowPrivilegeEscalation") is not False:
                probs.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                probs.append(f"{where}: capabilities not dropped")
            if sc.get("privileged"):
                probs.append(f"{where}: privileged")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                probs.append(f"{where}: no seccompProfile")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            probs.append(f"{name_of(w)}: uses host namespaces")
        for v in spec.get("volumes", []) or []:
            if "hostPath" in v:
                probs.append(f"{name_of(w)}: hostPath volume {v['name']}")
    ns = find("Namespace", NS)
    if ns and (ns["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        probs.append("namespace does not enforce Pod Security 'restricted'")
    check("every pod runs as non-root without privileges (Pod Security 'restricted')", probs)

    # ---- 7. Services select pods and reach their ports --------------------------
    probs = []
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector")
        if not sel:
            probs.append(f"{name_of(s)} has no selector")
            continue
        pods = pods_selected(sel)
        if not pods:
            probs.append(f"{name_of(s)} selector {sel} matches no pod template")
            continue
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p["port"])
            found = False
            for w in pods:
                for c in pod_spec(w).get("containers", []):
                    for cp in c.get("ports", []) or []:
                        if tp == cp.get("name") or tp == cp.get("containerPort"):
                            found = True
            if not found:
                probs.append(f"{name_of(s)} port {p.get('name', p['port'])}: targetPort {tp!r} is no container port of {[name_of(w) for w in pods]}")
    check("every Service's selector matches a pod template and its targetPorts are container ports", probs)

    # ---- 8. ports agree with the gateways' defaults -----------------------------
    probs = []
    defaults = {"grpc": 30005, "http": 30001}
    stack = os.path.join(top, "scripts", "stack.sh")
    if os.path.exists(stack):
        txt = open(stack).read()
        for key, var in (("grpc", "UDACONNECT_GRPC_PORT"), ("http", "UDACONNECT_HTTP_PORT")):
            m = re.search(r"%s=\$\{%s:-(\d+)\}" % (var, var), txt)
            if not m:
                probs.append(f"scripts/stack.sh has no default for {var}")
            elif int(m.group(1)) != defaults[key]:
                probs.append(f"scripts/stack.sh defaults {var} to {m.group(1)}, not {defaults[key]}")
    for src, var, port in (("gateway/grpcd/grpcd.c", "UDACONNECT_GRPC_PORT", 30005),
                           ("gateway/httpd/httpd.c", "UDACONNECT_HTTP_PORT", 30001)):
        p = os.path.join(top, src)
        if os.path.exists(p) and str(port) not in open(p, errors="replace").read():
            probs.append(f"{src} does not mention its default port {port}")

    def container(kind, name):
        o = find(kind, name)
        return pod_spec(o)["containers"][0] if o else None

    g = container("Deployment", "udaconnect-grpcd")
    h = container("Deployment", "udaconnect-httpd")
    if g:
        if env_value(g, "UDACONNECT_GRPC_PORT") != "30005":
            probs.append(f"grpcd UDACONNECT_GRPC_PORT resolves to {env_value(g, 'UDACONNECT_GRPC_PORT')!r}")
        if [cp["containerPort"] for cp in g.get("ports", [])] != [30005]:
            probs.append("grpcd container port is not 30005")
        rp = g.get("readinessProbe") or {}
        if (rp.get("grpc") or {}).get("port") != 30005:
            probs.append("grpcd readiness probe is not the native gRPC health probe on 30005")
    if h:
        if env_value(h, "UDACONNECT_HTTP_PORT") != "30001":
            probs.append(f"httpd UDACONNECT_HTTP_PORT resolves to {env_value(h, 'UDACONNECT_HTTP_PORT')!r}")
        if [cp["containerPort"] for cp in h.get("ports", [])] != [30001]:
            probs.append("httpd container port is not 30001")
        rp = (h.get("readinessProbe") or {}).get("httpGet") or {}
        if rp.get("path") != "/healthz" or rp.get("port") not in ("http", 30001):
            probs.append("httpd readiness probe is not GET /healthz on the API port")
    nodeports = {}
    for s in by_kind.get("Service", []):
        for p in s["spec"].get("ports", []):
            if "nodePort" in p:
                nodeports[p["nodePort"]] = (s["metadata"]["name"], p.get("targetPort"))
    want_np = {30000: "udaconnect-app", 30001: "udaconnect-api", 30005: "udaconnect-grpcd"}
    if set(nodeports) != set(want_np):
        probs.append(f"NodePorts are {sorted(nodeports)}, want {sorted(want_np)}")
    for np_, svc in want_np.items():
        if np_ in nodeports and nodeports[np_][0] != svc:
            probs.append(f"NodePort {np_} belongs to {nodeports[np_][0]}, want {svc}")
    for svc in ("udaconnect-app", "udaconnect-api"):
        s = services.get(svc)
        if s and not selector_matches(s["spec"]["selector"], pod_labels(find("Deployment", "udaconnect-httpd") or {"kind": "Job", "spec": {"template": {}}})):
            probs.append(f"Service {svc} does not select udaconnect-httpd")
    check("ports agree with the gateways' defaults (gRPC 30005, HTTP 30001) and NodePorts 30000/30001/30005", probs)

    # ---- 9. Kafka is KRaft --------------------------------------------------------
    probs = []
    k = find("StatefulSet", "kafka")
    if k:
        c = pod_spec(k)["containers"][0]
        if not c["image"].startswith("apache/kafka:"):
            probs.append(f"Kafka image is {c['image']}, not the official apache/kafka")
        roles = set((env_value(c, "KAFKA_PROCESS_ROLES") or "").split(","))
        if not {"broker", "controller"} <= roles:
            probs.append(f"KAFKA_PROCESS_ROLES is {roles}, want broker and controller")
        node_id = env_value(c, "KAFKA_NODE_ID")
        voters = env_value(c, "KAFKA_CONTROLLER_QUORUM_VOTERS") or ""
        m = re.fullmatch(r"(\d+)@([a-z0-9.-]+):(\d+)", voters)
        if not m:
            probs.append(f"KAFKA_CONTROLLER_QUORUM_VOTERS {voters!r} is not a single id@host:port voter")
        else:
            if m.group(1) != node_id:
                probs.append(f"voter id {m.group(1)} is not KAFKA_NODE_ID {node_id}")
            want_host = f"{k['metadata']['name']}-0.{k['spec']['serviceName']}"
            if m.group(2) != want_host:
                probs.append(f"voter host {m.group(2)} is not {want_host}")
            cports = {cp["containerPort"]: cp.get("name") for cp in c.get("ports", [])}
            if int(m.group(3)) not in cports:
                probs.append(f"controller port {m.group(3)} is no container port")
        listeners = env_value(c, "KAFKA_LISTENERS") or ""
        names = env_value(c, "KAFKA_CONTROLLER_LISTENER_NAMES") or ""
        if f"{names}://" not in listeners:
            probs.append(f"controller listener {names} not in KAFKA_LISTENERS {listeners}")
        pmap = dict(x.split(":") for x in (env_value(c, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP") or "").split(",") if ":" in x)
        for lst in re.findall(r"([A-Z_]+)://", listeners):
            if lst not in pmap:
                probs.append(f"listener {lst} has no security protocol")
        adv = env_value(c, "KAFKA_ADVERTISED_LISTENERS") or ""
        if names and f"{names}://" in adv:
            probs.append("the controller listener is advertised")
        if f".{k['spec']['serviceName']}:" not in adv:
            probs.append(f"advertised listener {adv} is not on the headless service {k['spec']['serviceName']}")
        hl = services.get(k["spec"]["serviceName"])
        if not hl or hl["spec"].get("clusterIP") != "None":
            probs.append(f"governing service {k['spec']['serviceName']} is not headless")
        cid = env_value(c, "CLUSTER_ID") or ""
        try:
            if len(base64.urlsafe_b64decode(cid + "=" * (-len(cid) % 4))) != 16 or len(cid) != 22:
                raise ValueError
        except ValueError:
            probs.append(f"CLUSTER_ID {cid!r} is not a base64 UUID (22 characters, 16 bytes)")
        if pod_spec(k).get("enableServiceLinks") is not False:
            probs.append("enableServiceLinks is not false (KAFKA_PORT=tcp://... would become a broker property)")
        if not k["spec"].get("volumeClaimTemplates"):
            probs.append("Kafka has no PersistentVolumeClaim")
        logdirs = env_value(c, "KAFKA_LOG_DIRS") or ""
        mounts = [vm["mountPath"] for vm in c.get("volumeMounts", []) or []]
        if not any(logdirs.startswith(mp.rstrip("/") + "/") or logdirs == mp for mp in mounts):
            probs.append(f"KAFKA_LOG_DIRS {logdirs} is not on a mounted volume {mounts}")
    for o in objs:
        if "zookeeper" in yaml.safe_dump(o).lower():
            probs.append(f"{name_of(o)} mentions ZooKeeper")
    check("Kafka runs in KRaft mode (broker+controller, quorum voters, cluster id, no ZooKeeper)", probs)

    # ---- 10. the topic ---------------------------------------------------------------
    probs = []
    j = find("Job", "kafka-create-topic")
    if j:
        c = pod_spec(j)["containers"][0]
        topic, parts = env_value(c, "TOPIC"), env_value(c, "PARTITIONS")
        if topic != "locations":
            probs.append(f"topic is {topic!r}, not 'locations'")
        if not (parts or "").isdigit() or int(parts) < 6:
            probs.append(f"partitions {parts!r} < 6")
        script = " ".join(c.get("command", []) + c.get("args", []))
        for word in ("--create", "--if-not-exists", '--partitions "$PARTITIONS"', '--topic "$TOPIC"'):
            if word not in script:
                probs.append(f"the Job's script lacks {word}")
        if c["image"] != pod_spec(find("StatefulSet", "kafka"))["containers"][0]["image"]:
            probs.append("the Job does not use the broker's image")
        if pod_spec(j).get("restartPolicy") not in ("OnFailure", "Never"):
            probs.append("the Job's restartPolicy")
    g = container("Deployment", "udaconnect-grpcd")
    if g and env_value(g, "UDACONNECT_KAFKA_TOPIC") != "locations":
        probs.append("grpcd produces to another topic")
    check("a Job creates topic 'locations' with >= 6 partitions, the topic grpcd produces to", probs)

    # ---- 11. PostgreSQL ------------------------------------------------------------------
    probs = []
    pg = find("StatefulSet", "postgres")
    pgconf = ""
    if pg:
        spec = pod_spec(pg)
        c = spec["containers"][0]
        vct = [t["metadata"]["name"] for t in pg["spec"].get("volumeClaimTemplates", [])]
        if not vct:
            probs.append("no volumeClaimTemplates")
        mounts = {vm["name"]: vm["mountPath"] for vm in c.get("volumeMounts", [])}
        pgdata = env_value(c, "PGDATA") or ""
        if not any(n in mounts and pgdata.startswith(mounts[n].rstrip("/") + "/") for n in vct):
            probs.append(f"PGDATA {pgdata} is not below a PersistentVolumeClaim mount")
        if not c.get("startupProbe"):
            probs.append("no startupProbe (first start runs initdb and CREATE EXTENSION)")
        cm_vols = {v["name"]: v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        conf_mount = [(mounts[n], cm_vols[n]) for n in cm_vols if n in mounts]
        if not conf_mount or conf_mount[0][0] != "/etc/udaconnect/postgresql":
            probs.append("the postgres ConfigMap is not mounted at /etc/udaconnect/postgresql")
        else:
            data = configmaps.get(conf_mount[0][1], {})
            pgconf = data.get("udaconnect.conf", "")
            if not pgconf:
                probs.append("ConfigMap has no udaconnect.conf")
        image_conf = os.path.join(top, "deployment/docker/postgres/postgresql.conf")
        if os.path.exists(image_conf):
            ic = open(image_conf).read()
            if "include_if_exists = '/etc/udaconnect/postgresql/udaconnect.conf'" not in ic:
                probs.append("the image's postgresql.conf does not include the ConfigMap file")
            if not re.search(r"^shared_preload_libraries = '[^']*pg_udaconnect", ic, re.M):
                probs.append("the image's postgresql.conf does not preload pg_udaconnect")
    gucs = dict(re.findall(r"^\s*([a-z_.]+)\s*=\s*'?([^'\n#]*?)'?\s*(?:#.*)?$", pgconf, re.M))
    for g_ in ("udaconnect.kafka_brokers", "udaconnect.kafka_topic", "udaconnect.kafka_group",
               "udaconnect.database", "udaconnect.ingest_workers"):
        if g_ not in gucs:
            probs.append(f"postgres ConfigMap does not set {g_}")
    if gucs.get("udaconnect.kafka_topic") not in (None, "locations"):
        probs.append(f"udaconnect.kafka_topic is {gucs['udaconnect.kafka_topic']}")
    if gucs.get("udaconnect.database") not in (None, "geoconnections"):
        probs.append(f"udaconnect.database is {gucs['udaconnect.database']}")
    if j and gucs.get("udaconnect.ingest_workers", "").isdigit():
        parts = env_value(pod_spec(j)["containers"][0], "PARTITIONS") or "0"
        if int(gucs["udaconnect.ingest_workers"]) > int(parts):
            probs.append("more ingest workers than partitions")
    check("PostgreSQL: StatefulSet with PGDATA on a PVC, startup probe, ingest settings from the ConfigMap", probs)

    # ---- 11b. the passwords the image needs on its first start ---------------------------
    # The entrypoint refuses to initialise without them and init.sql reads them
    # (\getenv): each must reach the primary from the Secret, never as a value.
    probs = []
    needed = set()
    for rel, pat in (("deployment/docker/postgres/entrypoint.sh", r'\[ -n "\$\{(\w+):-\}" \] \|\| die'),
                     ("deployment/docker/postgres/init.sql", r"^\\getenv\s+\w+\s+(\w+)")):
        path = os.path.join(top, rel)
        if os.path.exists(path):
            needed |= set(re.findall(pat, open(path).read(), re.M))
    if not needed:
        probs.append("found no password the image's entrypoint or init.sql needs (changed format?)")
    pgc = pod_spec(pg)["containers"][0] if pg else None
    for var in sorted(needed):
        ref = secret_env(pgc, var)
        if not ref:
            probs.append(f"the primary does not get {var} from a Secret (its first start would fail)")
        elif ref[0] != "udaconnect-secrets":
            probs.append(f"the primary gets {var} from Secret {ref[0]}, not udaconnect-secrets")
    if "UDACONNECT_REPLICATION_PASSWORD" in needed and secret_env(pgc, "UDACONNECT_REPLICATION_PASSWORD") not in (None, REPLICATION_KEY):
        probs.append(f"UDACONNECT_REPLICATION_PASSWORD comes from {secret_env(pgc, 'UDACONNECT_REPLICATION_PASSWORD')}, "
                     f"not {REPLICATION_KEY} (what the standby uses)")
    check(f"PostgreSQL: every password the image's first start needs ({', '.join(sorted(needed))}) comes from Secret udaconnect-secrets", probs)

    # ---- 12. addresses between components resolve to Services ---------------------------
    probs = []

    def svc_port(host, port):
        s = services.get(host.split(".")[0])
        if not s:
            return f"no Service {host}"
        if int(port) not in [p["port"] for p in s["spec"]["ports"]]:
            return f"Service {host} has no port {port}"
        return None

    for who in ("udaconnect-grpcd", "udaconnect-httpd"):
        c = container("Deployment", who)
        if not c:
            continue
        url = env_value(c, "UDACONNECT_DATABASE_URL") or ""
        kv = dict(re.findall(r"(\w+)=(\S+)", url))
        if kv.get("dbname") != "geoconnections":
            probs.append(f"{who}: database URL {url!r} does not name dbname=geoconnections")
        e = svc_port(kv.get("host", "?"), kv.get("port", "5432"))
        if e:
            probs.append(f"{who}: {e}")
        if kv.get("user") in (None, "postgres"):
            probs.append(f"{who}: connects as {kv.get('user')!r}, not a least-privilege role")
        if "password" in kv:
            probs.append(f"{who}: a password in the database URL")
    brokers = []
    if g:
        brokers.append(("udaconnect-grpcd", env_value(g, "UDACONNECT_KAFKA_BROKERS") or ""))
    if gucs.get("udaconnect.kafka_brokers"):
        brokers.append(("postgres", gucs["udaconnect.kafka_brokers"]))
    for who, b in brokers:
        for hp in b.split(","):
            host, _, port = hp.partition(":")
            e = svc_port(host, port or "9092")
            if e:
                probs.append(f"{who}: broker {hp}: {e}")
    check("database URLs and Kafka brokers name existing Services and ports, least-privilege roles", probs)

    # ---- 13. ConfigMap and Secret references ---------------------------------------------
    probs = []
    secret_refs = set()
    for w in workloads:
        spec = pod_spec(w)
        for c in containers(spec):
            for e in c.get("env", []) or []:
                vf = e.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    r = vf["configMapKeyRef"]
                    if r["key"] not in configmaps.get(r["name"], {}):
                        probs.append(f"{name_of(w)}: env {e['name']}: no key {r['key']} in ConfigMap {r['name']}")
                if "secretKeyRef" in vf:
                    r = vf["secretKeyRef"]
                    secret_refs.add((r["name"], r["key"], bool(r.get("optional"))))
        for v in spec.get("volumes", []) or []:
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                probs.append(f"{name_of(w)}: volume {v['name']}: no ConfigMap {v['configMap']['name']}")
            if "secret" in v:
                secret_refs.add((v["secret"]["secretName"], None, False))
    deploy = os.path.join(top, "scripts", "deploy.sh")
    deploy_txt = open(deploy).read() if os.path.exists(deploy) else ""
    for name, key, optional in sorted(secret_refs, key=str):
        if f"SECRET={name}" not in deploy_txt:
            probs.append(f"Secret {name} is not the one scripts/deploy.sh creates")
        if key and not optional and not re.search(r"echo \"%s=" % re.escape(key), deploy_txt):
            probs.append(f"Secret key {key} is not generated by scripts/deploy.sh")
    check("every ConfigMap key and Secret key referenced exists or is generated by scripts/deploy.sh", probs)

    # ---- 14. no Secret committed -----------------------------------------------------------
    probs = []
    for o in by_kind.get("Secret", []):
        probs.append(f"{name_of(o)} is rendered from the tree")
    for gen in ("secretGenerator",):
        kz = os.path.join(top, "deployment", "kustomization.yaml")
        if os.path.exists(kz) and gen in (yaml.safe_load(open(kz)) or {}):
            probs.append(f"kustomization.yaml has a {gen}")
    for root, _dirs, files in os.walk(os.path.join(top, "deployment")):
        for fn in files:
            p = os.path.join(root, fn)
            try:
                txt = open(p, errors="replace").read()
            except OSError:
                continue
            rel = os.path.relpath(p, top)
            if re.search(r"^kind:\s*Secret\b", txt, re.M):
                probs.append(f"{rel} holds a Secret")
            if fn.endswith((".yaml", ".yml")):
                continue  # YAML keys like "key: api-password" name a Secret key; Secrets are caught above
            for m in re.finditer(r"(?im)^[^#\n]*?\b[\w-]*(password|passwd|token|secret)\s*[=:]\s*['\"]?([A-Za-z0-9][A-Za-z0-9+/_.-]{7,})['\"]?\s*$", txt):
                probs.append(f"{rel}: looks like a committed credential: {m.group(0).strip()[:60]}")
    for s in by_kind.get("ConfigMap", []):
        for k_, v in (s.get("data") or {}).items():
            if re.search(r"password\s*=", str(v), re.I):
                probs.append(f"ConfigMap {s['metadata']['name']} key {k_} holds a password")
    check("no Secret and no credential is committed (the Secret is generated at deploy time)", probs)

    # ---- 15. HPAs ----------------------------------------------------------------------
    probs = []
    hpa_targets = {}
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]
        tgt = find(ref["kind"], ref["name"])
        if not tgt:
            probs.append(f"{name_of(h)} targets missing {ref['kind']}/{ref['name']}")
            continue
        hpa_targets[ref["name"]] = h
        mn, mx = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
        if not 1 <= mn < mx:
            probs.append(f"{name_of(h)}: replicas {mn}..{mx}")
        for m in h["spec"].get("metrics", []):
            if m["type"] == "Resource":
                rn = m["resource"]["name"]
                for c in pod_spec(tgt)["containers"]:
                    if rn not in ((c.get("resources") or {}).get("requests") or {}):
                        probs.append(f"{name_of(h)} scales on {rn} but {c['name']} requests none")
    for gw in ("udaconnect-grpcd", "udaconnect-httpd"):
        if gw not in hpa_targets:
            probs.append(f"no HorizontalPodAutoscaler for {gw}")
    check("each gateway has a HorizontalPodAutoscaler on a resource it requests", probs)

    # ---- 16. NetworkPolicies: exactly the needed paths ------------------------------------
    standby = find("StatefulSet", "postgres-standby")
    probs = []
    pols = by_kind.get("NetworkPolicy", [])
    comps = {}
    for w in workloads:
        comps[pod_labels(w).get("app.kubernetes.io/name")] = w
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in pols):
        probs.append("no default deny-all policy (podSelector {}, Ingress and Egress, no rules)")
    for p in pols:
        if p["spec"].get("podSelector") != {} and not pods_selected(p["spec"]["podSelector"]):
            probs.append(f"{name_of(p)} selects no pod")

    def peers(rule_peers):
        """Component names a from/to list admits; 'world' for no restriction."""
        if rule_peers is None:
            return {"world"}
        out = set()
        for peer in rule_peers:
            if "podSelector" in peer and "namespaceSelector" not in peer:
                for w in pods_selected(peer["podSelector"]):
                    out.add(pod_labels(w).get("app.kubernetes.io/name"))
            elif "namespaceSelector" in peer:
                lab = (peer["namespaceSelector"].get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                out.add(f"ns:{lab}" if lab else "ns:*")
            elif "ipBlock" in peer:
                net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                out.add("world" if net.prefixlen == 0 else f"ip:{net}")
        return out

    def ports(rule):
        ps = rule.get("ports")
        if not ps:
            return {"*"}
        return {f"{x.get('protocol', 'TCP')}/{x.get('port', '*')}" for x in ps}

    ingress, egress = set(), set()
    for p in pols:
        targets = [pod_labels(w).get("app.kubernetes.io/name") for w in pods_selected(p["spec"]["podSelector"])] \
            if p["spec"]["podSelector"] != {} else list(comps)
        for rule in p["spec"].get("ingress", []) or []:
            for t in targets:
                for src in peers(rule.get("from")):
                    for pt in ports(rule):
                        ingress.add((src, t, pt))
        for rule in p["spec"].get("egress", []) or []:
            for t in targets:
                for dst in peers(rule.get("to")):
                    for pt in ports(rule):
                        egress.add((t, dst, pt))
    dns = {(c_, "ns:kube-system", pt) for c_ in comps for pt in ("UDP/53", "TCP/53")}
    want_paths = {
        ("world", "udaconnect-httpd", "TCP/30001"),
        ("world", "udaconnect-grpcd", "TCP/30005"),
        ("udaconnect-httpd", "postgres", "TCP/5432"),
        ("udaconnect-grpcd", "postgres", "TCP/5432"),
        ("udaconnect-grpcd", "kafka", "TCP/9092"),
        ("postgres", "kafka", "TCP/9092"),
        ("kafka-create-topic", "kafka", "TCP/9092"),
        ("kafka", "kafka", "TCP/9092"),
        ("kafka", "kafka", "TCP/9093"),
    }
    if standby:
        # the optional hot standby (deployment/components/standby)
        want_paths |= {
            ("postgres-standby", "postgres", "TCP/5432"),
            ("udaconnect-httpd", "postgres-standby", "TCP/5432"),
            ("udaconnect-grpcd", "postgres-standby", "TCP/5432"),
        }
    # a path is open when the source may send (egress; 'world' is outside the
    # namespace) and the destination may receive (ingress)
    open_paths = set()
    for src, dst, pt in ingress:
        if src == "world" or (src, dst, pt) in egress:
            open_paths.add((src, dst, pt))
    for a, b, pt in sorted(want_paths - open_paths):
        probs.append(f"needed path {a} -> {b} {pt} is not open")
    for a, b, pt in sorted(open_paths - want_paths):
        probs.append(f"path {a} -> {b} {pt} is open but not needed")
    extra_egress = {e for e in egress if e not in dns and (e[0], e[1], e[2]) not in want_paths}
    for a, b, pt in sorted(extra_egress):
        probs.append(f"egress {a} -> {b} {pt} is allowed but not needed")
    for c_ in comps:
        for pt in ("UDP/53", "TCP/53"):
            if (c_, "ns:kube-system", pt) not in egress:
                probs.append(f"{c_} cannot reach DNS ({pt})")
    check("NetworkPolicies: default deny, and each component reaches exactly what it needs", probs)

    # ---- 17. the optional hot standby (only when rendered with it) ------------------------
    if standby:
        check("the hot standby: a pg_basebackup -R copy of the primary as udaconnect_replicator "
              "(the pod sees replication-password alone), behind its own read Service, "
              "named by both gateways' read URLs before the primary", check_standby(
                  standby, services, pods_selected, container, env_value))

    emit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
