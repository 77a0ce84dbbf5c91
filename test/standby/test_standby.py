"""Reads on a streaming hot standby (suite 65-standby), with real clients:
curl for REST, python3-grpcio for gRPC, psql for the two servers.

It makes a hot standby of the stack's PostgreSQL (pg_basebackup -R, its own
port), starts two udaconnect-httpd (A and B, two replicas of one
deployment) and one udaconnect-grpcd with UDACONNECT_DATABASE_READ_URL =
the standby, then the primary as libpq's fallback host, and proves:

  - the GET routes and FindConnections are answered by the standby: with
    its replay paused, a person or location added on the primary behind
    the gateways' back is missing from their answers, and the standby's
    pg_stat_activity shows their read sessions with the statements;
  - writes go to the primary, and a caller reads their own writes at once
    (per caller in the gateway, and across replicas by the cookie), while
    another caller still reads from the standby;
  - what the standby does not have (an unknown id) is asked of the primary;
  - the live streams (SSE, WatchEncounters) LISTEN on the primary only;
  - the ingest workers stay idle on the standby (none runs, a location
    ingested on the primary arrives there once, by replication) and the
    standby's log has no error of a background worker;
  - when the standby stops (immediate shutdown), every read still answers,
    with at most one client retry, through libpq's host list (A, grpcd) or
    the gateway's own fallback (B, whose read URL names the standby alone);
  - promoted (SELECT pg_promote(), cut off from the primary first, which
    meanwhile ingested one more location), the copy starts its ingest
    workers and resumes from its own replicated offsets: what only the
    "lost" primary had is ingested once, nothing earlier again.

Nothing here waits a fixed time: every wait polls for a state, bounded.
Ports: the standby PGPORT+1 (UDACONNECT_STANDBY_PGPORT); the daemons take
free ones.  Whatever happens, the daemons and the standby are stopped at exit.
"""
import atexit
import json
import os
import re
import socket
import subprocess
import sys
import time
import traceback

TOP = os.environ["TOP"]
SUITE_DIR = os.environ["SUITE_DIR"]
sys.path[:0] = [os.path.join(SUITE_DIR, "gen"), os.path.join(TOP, "test/http")]

import grpc  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402
from udaconnect.v1 import location_pb2 as v1  # noqa: E402
from udaconnect.v1 import location_service_pb2 as svc  # noqa: E402
from udaconnect.v1 import location_service_pb2_grpc as svc_grpc  # noqa: E402

import tokens  # noqa: E402  (PyJWT, the stack's key)
from tap import Tap  # noqa: E402

PGBIN = os.environ["PGBIN"]
PRIMARY_PORT = int(os.environ["PGPORT"])
STANDBY_PORT = int(os.environ.get("UDACONNECT_STANDBY_PGPORT") or PRIMARY_PORT + 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTP_A, HTTP_B, GRPC_R = free_port(), free_port(), free_port()
STACK_GRPC = os.environ["UDACONNECT_GRPC_ADDR"]
STANDBY_DIR = os.path.join(SUITE_DIR, "standby")
STANDBY_LOG = os.path.join(SUITE_DIR, "standby.log")
DB = "geoconnections"
# A and grpcd: libpq's host list, the primary last; B: the standby alone (the
# gateway's own fallback to its write connection)
READ_URL = ("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=%s "
            "target_session_attrs=prefer-standby" % (STANDBY_PORT, PRIMARY_PORT, DB))
READ_URL_B = "host=127.0.0.1 port=%d user=postgres dbname=%s" % (STANDBY_PORT, DB)
ORG = tokens.organizer("standby-suite")
ATT1 = tokens.attendee(1)

tap = Tap()
procs = []


@atexit.register
def cleanup():
    """The daemons and the standby go, also when the script dies half-way."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    if os.path.exists(os.path.join(STANDBY_DIR, "postmaster.pid")):
        subprocess.run([os.path.join(PGBIN, "pg_ctl"), "-D", STANDBY_DIR, "-m", "immediate", "stop"],
                       capture_output=True)


def test(desc):
    """Decorator: run now, one TAP line; an exception is a failure."""
    def run(fn):
        try:
            r = fn()
            ok, diag = (r if isinstance(r, tuple) else (r is None or bool(r), None))
        except Exception:
            ok, diag = False, traceback.format_exc()
        tap(ok, desc, diag)
        return fn
    return run


def psql(port, sql):
    r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                        "-p", str(port), "-U", "postgres", "-d", DB, "-F", "\t", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql -p %d: %s" % (port, r.stderr.strip()))
    return r.stdout.strip()


def poll(fn, what, tries=600):
    """fn() until it is true, every 0.1 s (at most tries times)."""
    for _ in range(tries):
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise RuntimeError("gave up waiting for " + what)


def curl(port, path, token=ORG, method="GET", body=None, jar=None, save_jar=None):
    """(status, headers text, body text) of one request made by curl."""
    cmd = ["curl", "-sS", "-D", "-", "-X", method, "-H", "Authorization: Bearer " + token,
           "--max-time", "30", "http://127.0.0.1:%d%s" % (port, path)]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    if jar:
        cmd += ["-b", jar]
    if save_jar:
        cmd += ["-c", save_jar]
    # bytes: text mode would turn the header's CRLFs into LFs
    out = subprocess.run(cmd, capture_output=True, timeout=60).stdout.decode("utf-8", "replace")
    head, _, text = out.partition("\r\n\r\n")
    m = re.match(r"HTTP/\S+ (\d+)", head)
    return (int(m.group(1)) if m else 0), head, text


def person_ids(port, token=ORG, jar=None):
    st, _, text = curl(port, "/api/persons", token, jar=jar)
    if st != 200:
        raise RuntimeError("GET /api/persons: %d %s" % (st, text[:200]))
    return {p["id"] for p in json.loads(text)}


def metrics(port):
    st, _, text = curl(port, "/metrics")
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^udaconnect_http_db_reads_total\{outcome="(\w+)"\} (\d+)$', text, re.M)}


def start(cmd, env, log, ready):
    f = open(log, "ab")
    p = subprocess.Popen(cmd, env=env, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    procs.append(p)
    poll(lambda: p.poll() is not None or ready(), "%s to start (log %s)" % (cmd[0], log), 150)
    if p.poll() is not None:
        raise RuntimeError("%s exited: see %s" % (cmd[0], log))
    return p


def gateway_env():
    env = dict(os.environ)
    env.update(UDACONNECT_DATABASE_URL=os.environ["UDACONNECT_DATABASE_URL"],
               UDACONNECT_DATABASE_READ_URL=READ_URL, UDACONNECT_AUTH="on")
    return env


def replay_lsn_reached(lsn):
    return psql(STANDBY_PORT, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn) == "t"


def catch_up():
    """Until the standby has replayed everything the primary has now."""
    lsn = psql(PRIMARY_PORT, "SELECT pg_current_wal_insert_lsn()")
    poll(lambda: replay_lsn_reached(lsn), "the standby to replay " + lsn)


def add_person(first):
    """A person created on the primary directly (no gateway knows of it)."""
    return int(psql(PRIMARY_PORT, "SELECT id FROM udaconnect.create_person('%s', 'Standby', 'Suite')" % first))


def grpc_stub(addr):
    return svc_grpc.ConnectionServiceStub(grpc.insecure_channel(addr))


MD = [("authorization", "Bearer " + ORG)]


def find(stub, pid):
    rows = stub.FindConnections(svc.FindConnectionsRequest(
        person_id=pid, start_date="2020-01-01", end_date="2030-12-31", meters=5), metadata=MD, timeout=30)
    return sorted(c.location_id for c in rows)


def sql_find(port, pid):
    out = psql(port, "SELECT location_id FROM udaconnect.find_connections(%d, '2020-01-01', '2030-12-31', 5)"
               " ORDER BY 1" % pid)
    return [int(x) for x in out.split()] if out else []


# ------------------------------------------------------------------ set-up


@test("pg_basebackup -R -U udaconnect_replicator (REPLICATION, no other power) of the stack's PostgreSQL starts "
      "a hot standby on port %d, streaming as that role" % STANDBY_PORT)
def _():
    # as the deployment's standby does: the role with REPLICATION and nothing
    # else (made by the stack hook, as the image's init.sql makes it)
    subprocess.run([os.path.join(PGBIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(PRIMARY_PORT),
                    "-U", "udaconnect_replicator", "-D", STANDBY_DIR, "-R", "-X", "stream", "-c", "fast"],
                   check=True, capture_output=True, timeout=600)
    with open(os.path.join(STANDBY_DIR, "postgresql.auto.conf"), "a") as f:
        # its own port; the primary's settings (preloaded pg_udaconnect, its
        # Kafka settings in conf.d) come with the copy, as on a real replica
        f.write("port = %d\nhot_standby = on\n" % STANDBY_PORT)
    subprocess.run([os.path.join(PGBIN, "pg_ctl"), "-D", STANDBY_DIR, "-l", STANDBY_LOG, "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    rec = psql(STANDBY_PORT, "SELECT pg_is_in_recovery()")
    poll(lambda: psql(PRIMARY_PORT, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != "0",
         "streaming replication")
    who = psql(PRIMARY_PORT, "SELECT string_agg(usename, ',') FROM pg_stat_replication")
    return rec == "t" and who == "udaconnect_replicator", (rec, who)


httpd = os.path.join(TOP, "gateway/httpd/udaconnect-httpd")


def httpd_up(port):
    try:
        return curl(port, "/healthz")[0] == 200
    except Exception:
        return False


@test("two udaconnect-httpd (A: read URL standby then primary; B: the standby alone) and a udaconnect-grpcd (as A) start")
def _():
    for port, name, url in ((HTTP_A, "a", READ_URL), (HTTP_B, "b", READ_URL_B)):
        env = gateway_env()
        env.update(UDACONNECT_HTTP_DB_USER="udaconnect_api", UDACONNECT_DATABASE_READ_URL=url)
        start([httpd, "--bind", "127.0.0.1", "--port", str(port), "--threads", "2"], env,
              os.path.join(SUITE_DIR, "httpd-%s.log" % name), lambda port=port: httpd_up(port))
    genv = gateway_env()
    genv.update(UDACONNECT_GRPC_PORT=str(GRPC_R), UDACONNECT_GRPC_BIND="127.0.0.1")
    log = os.path.join(SUITE_DIR, "grpcd.log")
    start([os.path.join(TOP, "gateway/grpcd/udaconnect-grpcd")], genv, log,
          lambda: os.path.exists(log) and "listening on" in open(log).read())
    # httpd connects to the read URL on threads of its own, from the start:
    # two worker threads each for A and B
    poll(lambda: int(psql(STANDBY_PORT, "SELECT count(*) FROM pg_stat_activity "
                                        "WHERE application_name = 'udaconnect-httpd-read'")) >= 4,
         "httpd's read sessions on the standby")
    return True


# ------------------------------------------------------------------ reads on the standby

psql(STANDBY_PORT, "SELECT pg_wal_replay_pause()")
poll(lambda: psql(STANDBY_PORT, "SELECT pg_get_wal_replay_pause_state()") == "paused", "the replay to pause")
behind = add_person("Behind")      # on the primary only while the replay is paused


@test("GET /api/persons is answered by the standby: a person added on the primary during a replay pause is missing")
def _():
    ids = person_ids(HTTP_A)
    on_primary = psql(PRIMARY_PORT, "SELECT count(*) FROM udaconnect.person WHERE id = %d" % behind)
    return behind not in ids and 1 in ids and on_primary == "1", (behind, sorted(ids)[:20])


@test("pg_stat_activity on the standby shows httpd's read session (udaconnect-httpd-read) with the GET's statement")
def _():
    rows = psql(STANDBY_PORT, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'udaconnect-httpd-read'"
                " AND query LIKE '%udaconnect.api_persons(%'")
    return int(rows) >= 1, rows


@test("GET /api/locations, /api/places, /api/persons/1/connection(s), /api/persons/1/encounters answer 200 from the standby")
def _():
    before = metrics(HTTP_A).get("standby", 0)
    paths = ["/api/locations?limit=5", "/api/places", "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30",
             "/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30", "/api/persons/1/encounters",
             "/api/places/1", "/api/persons/1"]
    got = [(p, curl(HTTP_A, p)[0]) for p in paths]
    after = metrics(HTTP_A).get("standby", 0)
    return all(s == 200 for _, s in got) and after - before == len(paths), (got, before, after)


@test("GET /api/persons/{id} of a person the standby does not have yet: asked of the primary, 200")
def _():
    st, _, text = curl(HTTP_A, "/api/persons/%d" % behind)
    m = metrics(HTTP_A)
    return st == 200 and json.loads(text)["id"] == behind and m.get("not_found", 0) >= 1, (st, text, m)


@test("a truly unknown person is still 404 (the primary agrees)")
def _():
    st, _, text = curl(HTTP_A, "/api/persons/987654321")
    return st == 404, (st, text)


# ------------------------------------------------------------------ writes and read-your-writes

JAR = os.path.join(SUITE_DIR, "cookies.txt")
created = {}


@test("POST /api/persons through A goes to the primary (201; the row is there) and sets the udaconnect_lsn cookie")
def _():
    st, head, text = curl(HTTP_A, "/api/persons", method="POST",
                          body={"first_name": "Ada", "last_name": "Standby", "company_name": "AE"}, save_jar=JAR)
    if st != 201:
        return False, (st, text)
    created["id"] = json.loads(text)["id"]
    on_primary = psql(PRIMARY_PORT, "SELECT count(*) FROM udaconnect.person WHERE id = %d" % created["id"])
    on_standby = psql(STANDBY_PORT, "SELECT count(*) FROM udaconnect.person WHERE id = %d" % created["id"])
    cookie = re.search(r"Set-Cookie: udaconnect_lsn=([0-9A-F]+/[0-9A-F]+);", head, re.I)
    return on_primary == "1" and on_standby == "0" and cookie is not None, (on_primary, on_standby, head)


@test("read-your-writes: the writer's GET /api/persons/{id} and GET /api/persons at once see the new person (standby still paused)")
def _():
    before = metrics(HTTP_A).get("lagging", 0)
    st, _, text = curl(HTTP_A, "/api/persons/%d" % created["id"])
    ids = person_ids(HTTP_A)
    after = metrics(HTTP_A).get("lagging", 0)
    # both went to the primary because the standby had not replayed the write
    return (st == 200 and json.loads(text)["first_name"] == "Ada" and created["id"] in ids
            and after - before == 2), (st, text, before, after)


@test("another caller (attendee 1) meanwhile still reads from the standby")
def _():
    before = metrics(HTTP_A).get("standby", 0)
    st, _, text = curl(HTTP_A, "/api/persons/1", token=ATT1)
    after = metrics(HTTP_A).get("standby", 0)
    return st == 200 and after == before + 1, (st, text, before, after)


@test("the cookie carries read-your-writes to replica B: with it B reads from the primary, without it from the standby")
def _():
    with_cookie = person_ids(HTTP_B, jar=JAR)
    without = person_ids(HTTP_B)
    return created["id"] in with_cookie and created["id"] not in without, (created, len(with_cookie), len(without))


@test("the standby replays the write again: the writer's reads go back to the standby")
def _():
    psql(STANDBY_PORT, "SELECT pg_wal_replay_resume()")
    catch_up()
    before = metrics(HTTP_A)
    ids = person_ids(HTTP_A)
    after = metrics(HTTP_A)
    return (created["id"] in ids and behind in ids and after["standby"] == before["standby"] + 1
            and after["lagging"] == before["lagging"]), (before, after)


@test("a cookie position beyond the standby's sends the read to the primary; a malformed cookie is ignored")
def _():
    before = metrics(HTTP_B)
    st1 = curl(HTTP_B, "/api/persons/1", jar="udaconnect_lsn=FFFFFFFF/FFFFFFFF")[0]
    mid = metrics(HTTP_B)
    st2 = curl(HTTP_B, "/api/persons/1", jar="udaconnect_lsn=zz/1x")[0]
    after = metrics(HTTP_B)
    return (st1 == 200 and st2 == 200 and mid["lagging"] == before["lagging"] + 1
            and after["standby"] == mid["standby"] + 1), (st1, st2, before, mid, after)


# ------------------------------------------------------------------ gRPC FindConnections

stack_find = grpc_stub(STACK_GRPC)
read_find = grpc_stub("127.0.0.1:%d" % GRPC_R)


@test("FindConnections through the read grpcd is answered by the standby (a location added during a replay pause is missing)")
def _():
    psql(STANDBY_PORT, "SELECT pg_wal_replay_pause()")
    poll(lambda: psql(STANDBY_PORT, "SELECT pg_get_wal_replay_pause_state()") == "paused", "the replay to pause")
    # next to one of person 1's seed locations, by a new person
    newcomer = add_person("Near")
    created["near"] = newcomer
    psql(PRIMARY_PORT, "SELECT udaconnect.record_location(%d, latitude, longitude, creation_time) FROM "
         "(SELECT ST_Y(coordinate::geometry) AS latitude, ST_X(coordinate::geometry) AS longitude, creation_time "
         " FROM udaconnect.location WHERE person_id = 1 ORDER BY id LIMIT 1) s" % newcomer)
    primary_rows, standby_rows = sql_find(PRIMARY_PORT, 1), sql_find(STANDBY_PORT, 1)
    got = find(read_find, 1)
    return (got == standby_rows and got != primary_rows and find(stack_find, 1) == primary_rows), \
        (len(got), len(standby_rows), len(primary_rows))


@test("pg_stat_activity on the standby shows grpcd's read session (udaconnect-grpcd-read) with the finder's cursor")
def _():
    n = psql(STANDBY_PORT, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'udaconnect-grpcd-read'")
    return int(n) >= 1, n


@test("FindConnections of a person the standby does not have yet: asked of the primary, not NOT_FOUND")
def _():
    got = find(read_find, created["near"])
    want = sql_find(PRIMARY_PORT, created["near"])
    return got == want and len(want) >= 1, (got, want)


@test("the live streams stay on the primary: no LISTEN session (httpd streams, grpcd watch) on the standby")
def _():
    psql(STANDBY_PORT, "SELECT pg_wal_replay_resume()")
    catch_up()
    # a live stream through A: its first block arrives once it listens
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "3", "-H", "Authorization: Bearer " + ORG,
                          "http://127.0.0.1:%d/api/persons/1/encounters/stream" % HTTP_A],
                         capture_output=True, text=True, timeout=30).stdout
    on_standby = psql(STANDBY_PORT, "SELECT count(*) FROM pg_stat_activity WHERE application_name IN "
                      "('udaconnect-httpd streams', 'udaconnect-grpcd-watch')")
    on_primary = psql(PRIMARY_PORT, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                      "'udaconnect-httpd streams'")
    # the stack's httpd and A and B: one stream session each
    return on_standby == "0" and int(on_primary) >= 3 and out.startswith((":", "id", "event", "retry")), \
        (on_standby, on_primary, out[:80])


# ------------------------------------------------------------------ ingest workers on the standby


@test("the ingest and maintenance workers do not run on the standby (they do on the primary)")
def _():
    q = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('udaconnect ingest', "
         "'udaconnect maintenance')")
    s, p = psql(STANDBY_PORT, q), psql(PRIMARY_PORT, q)
    return s == "0" and int(p) >= 1, (s, p)


@test("a location sent through gRPC is ingested once, on the primary, and reaches the standby by replication")
def _():
    ts = timestamp_pb2.Timestamp(seconds=int(time.time()) - 5)
    locs = svc_grpc.LocationServiceStub(grpc.insecure_channel(STACK_GRPC))
    pid = created["near"]
    locs.RecordLocation(v1.Location(person_id=pid, latitude=-33.5, longitude=151.25, creation_time=ts),
                        metadata=MD, timeout=30)
    q = ("SELECT count(*) FROM udaconnect.location WHERE person_id = %d "
         "AND abs(ST_Y(coordinate::geometry) + 33.5) < 1e-9" % pid)
    poll(lambda: psql(PRIMARY_PORT, q) == "1", "the ingest on the primary")
    catch_up()
    offsets = ("SELECT string_agg(topic || ':' || \"partition\" || ':' || next_offset, ',' "
               "ORDER BY topic, \"partition\") FROM udaconnect.ingest_offset")
    return psql(STANDBY_PORT, q) == "1" and psql(STANDBY_PORT, offsets) == psql(PRIMARY_PORT, offsets), \
        (psql(STANDBY_PORT, q), psql(STANDBY_PORT, offsets), psql(PRIMARY_PORT, offsets))


@test("the standby's log has no error of a background worker (no error loop)")
def _():
    with open(STANDBY_LOG, errors="replace") as f:
        bad = [ln for ln in f if re.search(r"(udaconnect|background worker).*(ERROR|FATAL)|"
                                           r"(ERROR|FATAL).*(udaconnect ingest|retention)|exited with exit code", ln)]
    return not bad, "".join(bad[:10])


# ------------------------------------------------------------------ the standby stops


def with_one_retry(fn):
    """fn() -> (ok, detail); a failure may be retried once.  (ok, retries, detail)."""
    ok, detail = fn()
    if ok:
        return True, 0, detail
    ok, detail = fn()
    return ok, 1, detail


@test("the standby stops (pg_ctl stop -m immediate): every GET route still answers through A and B, at most one retry")
def _():
    subprocess.run([os.path.join(PGBIN, "pg_ctl"), "-D", STANDBY_DIR, "-m", "immediate", "-w", "stop"],
                   check=True, capture_output=True, timeout=60)
    paths = ["/api/persons", "/api/persons/1", "/api/locations?limit=5", "/api/places",
             "/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30", "/api/persons/1/encounters"]
    results, retries = [], 0
    for port in (HTTP_A, HTTP_B):
        for p in paths * 2:
            ok, r, detail = with_one_retry(lambda: (lambda s: (s[0] == 200, s[0]))(curl(port, p)))
            retries += r
            results.append((port, p, ok, detail))
    bad = [x for x in results if not x[2]]
    return not bad and retries <= 1, (bad, retries)


@test("... served by the primary: A through libpq's host list (its read sessions are there now), B by its own fallback")
def _():
    # made by A's connector threads (B's read URL has no primary in it)
    n = poll(lambda: int(psql(PRIMARY_PORT, "SELECT count(*) FROM pg_stat_activity "
                                            "WHERE application_name = 'udaconnect-httpd-read'")),
             "A's read sessions on the primary")
    a, b = metrics(HTTP_A), metrics(HTTP_B)
    st, _, text = curl(HTTP_A, "/api/persons", method="POST",
                       body={"first_name": "After", "last_name": "Standby", "company_name": "AE"})
    pid = json.loads(text)["id"] if st == 201 else None
    st2 = curl(HTTP_A, "/api/persons/%s" % pid)[0]
    # B has no read connection at all: every read counted unavailable, on the primary
    return (int(n) >= 1 and st == 201 and st2 == 200 and b.get("unavailable", 0) + b.get("lost", 0) >= 12
            and a.get("unavailable", 0) >= 1), (n, st, st2, a, b)


@test("the standby stopped: FindConnections through the read grpcd still answers (at most one retry)")
def _():
    def once():
        try:
            return find(read_find, 1) == sql_find(PRIMARY_PORT, 1), "ok"
        except grpc.RpcError as e:
            return False, (e.code(), e.details())
    ok, retries, detail = with_one_retry(once)
    return ok, (retries, detail)


@test("a read URL whose server never answers (connect_timeout 60 s) holds no worker: GETs answer from the primary; SIGTERM stops at once")
def _():
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)              # connections complete in the backlog, never answered
    port = free_port()
    env = gateway_env()
    env.update(UDACONNECT_HTTP_DB_USER="udaconnect_api", UDACONNECT_DATABASE_READ_URL=(
        "host=127.0.0.1 port=%d user=postgres dbname=%s connect_timeout=60" % (hole.getsockname()[1], DB)))
    p = start([httpd, "--bind", "127.0.0.1", "--port", str(port), "--threads", "1"], env,
              os.path.join(SUITE_DIR, "httpd-c.log"), lambda: httpd_up(port))
    got = [curl(port, path)[0] for path in ("/api/persons/1", "/api/persons", "/api/places")]
    hole.setblocking(False)
    try:
        stuck = hole.accept()[0]    # the connector's connection, waiting for an answer
    except BlockingIOError:
        stuck = None
    p.terminate()
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        rc = "still running"
    procs.remove(p)
    if stuck:
        stuck.close()
    hole.close()
    return got == [200, 200, 200] and stuck is not None and rc == 0, (got, stuck, rc)


def loc_count(port, pid, lat):
    return int(psql(port, "SELECT count(*) FROM udaconnect.location WHERE person_id = %d "
                          "AND abs(ST_Y(coordinate::geometry) - (%s)) < 1e-9" % (pid, lat)))


def send_location(pid, lat):
    ts = timestamp_pb2.Timestamp(seconds=int(time.time()) - 5)
    svc_grpc.LocationServiceStub(grpc.insecure_channel(STACK_GRPC)).RecordLocation(
        v1.Location(person_id=pid, latitude=lat, longitude=151.25, creation_time=ts), metadata=MD, timeout=30)


OFFSETS = ("SELECT string_agg(topic || ':' || \"partition\" || ':' || next_offset, ',' "
           "ORDER BY topic, \"partition\") FROM udaconnect.ingest_offset")
LOST, AFTER = -33.25, -33.125    # ingested by the "lost" primary only; sent after the promotion


@test("promoted with SELECT pg_promote() (as scripts/promote-standby.sh does), cut off from the primary as if it "
      "were lost: the copy leaves recovery, starts its ingest workers and is writable")
def _():
    # the primary ingests one more location while the copy is down: the
    # copy never gets it by replication (its primary_conninfo is emptied),
    # as a lost primary's last batches
    send_location(created["near"], LOST)
    poll(lambda: loc_count(PRIMARY_PORT, created["near"], LOST) == 1, "the ingest on the primary")
    with open(os.path.join(STANDBY_DIR, "postgresql.auto.conf"), "a") as f:
        f.write("primary_conninfo = ''\n")
    subprocess.run([os.path.join(PGBIN, "pg_ctl"), "-D", STANDBY_DIR, "-l", STANDBY_LOG, "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    before = (psql(STANDBY_PORT, "SELECT pg_is_in_recovery()"), loc_count(STANDBY_PORT, created["near"], LOST))
    promoted = psql(STANDBY_PORT, "SELECT pg_promote(true, 60)")
    q = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'"
    poll(lambda: psql(STANDBY_PORT, q) != "0", "the ingest workers on the promoted copy")
    writable = psql(STANDBY_PORT, "SELECT id FROM udaconnect.create_person('Promoted', 'Standby', 'Suite')")
    return (before == ("t", 0) and promoted == "t" and psql(STANDBY_PORT, "SELECT pg_is_in_recovery()") == "f"
            and writable.isdigit()), (before, promoted, writable)


@test("the promoted copy resumes the ingest from its own replicated offsets (exactly once): the lost primary's last "
      "location is ingested on it once, nothing earlier again, one sent after the promotion once")
def _():
    pid = created["near"]
    poll(lambda: loc_count(STANDBY_PORT, pid, LOST) >= 1, "the promoted copy to ingest what only the lost primary had")
    send_location(pid, AFTER)
    poll(lambda: loc_count(STANDBY_PORT, pid, AFTER) >= 1 and loc_count(PRIMARY_PORT, pid, AFTER) >= 1,
         "both servers to ingest the location sent after the promotion")
    # both consumed the whole topic, each from its own stored offsets
    poll(lambda: psql(STANDBY_PORT, OFFSETS) == psql(PRIMARY_PORT, OFFSETS), "the same offsets on both")
    counts = [loc_count(STANDBY_PORT, pid, lat) for lat in (-33.5, LOST, AFTER)]
    total = [psql(port, "SELECT count(*) FROM udaconnect.location WHERE person_id = %d" % pid)
             for port in (STANDBY_PORT, PRIMARY_PORT)]
    return counts == [1, 1, 1] and total[0] == total[1], (counts, total)


tap.exit()
