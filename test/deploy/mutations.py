#!/usr/bin/env python3
"""Proves check_manifests.py is not vacuous: each mutation of the rendered
manifests must make the named check fail.

    python3 test/deploy/mutations.py rendered.yaml TOP WORKDIR

One TAP line per mutation ("ok - ..."/"not ok - ..."; the suite numbers them).
"""
import copy
import os
import subprocess
import sys

import yaml

rendered, top, work = sys.argv[1], sys.argv[2], sys.argv[3]
checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_manifests.py")
base = [d for d in yaml.safe_load_all(open(rendered)) if d]


def get(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"].startswith(name):
            return d
    raise KeyError(f"{kind}/{name}")


def ctr(docs, kind, name):
    return get(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def env(c, name):
    return next(e for e in c["env"] if e["name"] == name)


def m_probe(d):
    del ctr(d, "Deployment", "udaconnect-httpd")["readinessProbe"]


def m_limits(d):
    del ctr(d, "Deployment", "udaconnect-grpcd")["resources"]["limits"]


def m_latest(d):
    ctr(d, "StatefulSet", "kafka")["image"] = "apache/kafka:latest"


def m_selector(d):
    get(d, "Service", "udaconnect-api")["spec"]["selector"] = {"app.kubernetes.io/name": "udaconnect-web"}


def m_port(d):
    get(d, "ConfigMap", "udaconnect-config")["data"]["UDACONNECT_HTTP_PORT"] = "8080"


def m_zookeeper(d):
    c = ctr(d, "StatefulSet", "kafka")
    env(c, "KAFKA_PROCESS_ROLES")["value"] = "broker"
    c["env"].append({"name": "KAFKA_ZOOKEEPER_CONNECT", "value": "zookeeper:2181"})


def m_netpol(d):
    d.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "oops", "namespace": "udaconnect"},
              "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "udaconnect-httpd"}},
                       "policyTypes": ["Egress"], "egress": [{}]}})


def m_secret(d):
    d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "udaconnect-secrets", "namespace": "udaconnect"},
              "data": {"postgres-password": "c2VjcmV0"}})


def m_partitions(d):
    get(d, "ConfigMap", "udaconnect-config")["data"]["UDACONNECT_KAFKA_PARTITIONS"] = "3"


def m_hpa(d):
    d.remove(get(d, "HorizontalPodAutoscaler", "udaconnect-grpcd"))


def m_root(d):
    get(d, "StatefulSet", "postgres")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0


def m_dburl(d):
    cm = get(d, "ConfigMap", "udaconnect-config")["data"]
    cm["UDACONNECT_HTTPD_DATABASE_URL"] = cm["UDACONNECT_HTTPD_DATABASE_URL"].replace("host=postgres", "host=postgresql")


def m_standby_in_write_service(d):
    get(d, "Service", "postgres")["spec"]["selector"] = {"app.kubernetes.io/part-of": "udaconnect"}


def m_read_url_no_fallback(d):
    cm = get(d, "ConfigMap", "udaconnect-config")["data"]
    cm["UDACONNECT_HTTPD_DATABASE_READ_URL"] = cm["UDACONNECT_HTTPD_DATABASE_READ_URL"].replace(
        "host=postgres-read,postgres", "host=postgres-read")


def m_copy_not_standby(d):
    init = get(d, "StatefulSet", "postgres-standby")["spec"]["template"]["spec"]["initContainers"][0]
    init["command"] = [x.replace(" -R ", " ") for x in init["command"]]


def m_standby_to_kafka(d):
    get(d, "NetworkPolicy", "postgres-standby")["spec"]["egress"].append(
        {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "kafka"}}}],
         "ports": [{"protocol": "TCP", "port": 9092}]})


def m_primary_no_replication_password(d):
    c = ctr(d, "StatefulSet", "postgres")
    c["env"] = [e for e in c["env"] if e["name"] != "UDACONNECT_REPLICATION_PASSWORD"]


def standby_spec(d):
    return get(d, "StatefulSet", "postgres-standby")["spec"]["template"]["spec"]


def m_walreceiver_superuser_password(d):
    env(standby_spec(d)["containers"][0], "PGPASSWORD")["valueFrom"]["secretKeyRef"]["key"] = "postgres-password"


def m_copy_superuser_password(d):
    env(standby_spec(d)["initContainers"][0], "PGPASSWORD")["valueFrom"]["secretKeyRef"]["key"] = "postgres-password"


def m_copy_as_superuser(d):
    init = standby_spec(d)["initContainers"][0]
    init["command"] = [x.replace("-U udaconnect_replicator", "-U postgres") for x in init["command"]]


def m_standby_mounts_secret(d):
    spec = standby_spec(d)
    spec["volumes"].append({"name": "secrets", "secret": {"secretName": "udaconnect-secrets"}})
    spec["containers"][0]["volumeMounts"].append({"name": "secrets", "mountPath": "/etc/udaconnect/secrets", "readOnly": True})


# rendered with the optional hot standby (components/standby): its own checks
STANDBY_MUTATIONS = [
    ("the write Service selecting the standby too", m_standby_in_write_service, "hot standby"),
    ("a read URL without the primary as fallback", m_read_url_no_fallback, "hot standby"),
    ("a copy that is no standby (no -R)", m_copy_not_standby, "hot standby"),
    ("the standby allowed to reach Kafka", m_standby_to_kafka, "NetworkPolicies"),
    ("the walreceiver's PGPASSWORD back to postgres-password", m_walreceiver_superuser_password, "hot standby"),
    ("the copy's PGPASSWORD back to postgres-password", m_copy_superuser_password, "hot standby"),
    ("the copy made as the superuser (pg_basebackup -U postgres)", m_copy_as_superuser, "hot standby"),
    ("the whole Secret mounted into the standby", m_standby_mounts_secret, "hot standby"),
]

MUTATIONS = [
    ("httpd without a readiness probe", m_probe, "readiness and a liveness probe"),
    ("grpcd without limits", m_limits, "requests and limits"),
    ("Kafka image apache/kafka:latest", m_latest, "pinned"),
    ("a Service selecting no pod", m_selector, "selector matches a pod template"),
    ("httpd on port 8080", m_port, "ports agree"),
    ("Kafka with ZooKeeper", m_zookeeper, "KRaft"),
    ("an allow-all egress policy", m_netpol, "NetworkPolicies"),
    ("a committed Secret", m_secret, "no Secret"),
    ("a 3-partition topic", m_partitions, ">= 6 partitions"),
    ("no HPA for grpcd", m_hpa, "HorizontalPodAutoscaler"),
    ("PostgreSQL as root", m_root, "non-root"),
    ("a database host with no Service", m_dburl, "name existing Services"),
    ("the primary without UDACONNECT_REPLICATION_PASSWORD", m_primary_no_replication_password, "first start needs"),
]

os.makedirs(work, exist_ok=True)
with_standby = any(d["kind"] == "StatefulSet" and d["metadata"]["name"] == "postgres-standby" for d in base)
for desc, fn, check_words in (STANDBY_MUTATIONS if with_standby else MUTATIONS):
    docs = copy.deepcopy(base)
    fn(docs)
    path = os.path.join(work, "mutated.yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f)
    out = subprocess.run([sys.executable, checker, path, top], stdout=subprocess.PIPE, text=True).stdout
    failed = [ln for ln in out.splitlines() if ln.startswith("not ok")]
    if any(check_words in ln for ln in failed):
        print(f"ok - the structural check catches {desc}")
    else:
        print(f"not ok - the structural check catches {desc} (expected '{check_words}' to fail)")
        for ln in failed or ["(nothing failed)"]:
            print(f"#   {ln}")
