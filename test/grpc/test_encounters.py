#!/usr/bin/python3
"""Tests of ConnectionService/ListEncounters and WatchEncounters
(udaconnect-grpcd) with python3-grpcio clients generated from proto/ by
test/suites/50-grpc.sh.  Output: TAP lines.

Encounters are made through SQL (udaconnect.record_location as the stack's
superuser): two persons' points within udaconnect.encounter_distance (5 m)
and encounter_window (60 s) are a match.  Every test makes persons of its
own, so it reads only what it made.  Nothing here waits on a clock: a watch
is known to be set up when its initial metadata arrived, and a daemon's
state is read from its log.  The live path by id holds a daemon's read of
what NOTIFY announced at an advisory lock (FetchGate) while a later
transaction changes the same encounters.  An erased person's watchers end
NOT_FOUND, another person's go on, a watch set up as the erasure commits
(its first query held at a lock: PositionGate) or while the watch
connection is down ends too.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

SUITE_DIR = os.environ["SUITE_DIR"]
TOP = os.environ["TOP"]
sys.path[:0] = [os.path.join(SUITE_DIR, "gen")]

import grpc  # noqa: E402
import psycopg2  # noqa: E402
import jwt  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from udaconnect.v1 import location_service_pb2 as svc  # noqa: E402
from udaconnect.v1 import location_service_pb2_grpc as svc_grpc  # noqa: E402

ADDR = os.environ["UDACONNECT_GRPC_ADDR"]
BROKERS = os.environ["UDACONNECT_KAFKA_BROKERS"]
DBURL = os.environ["UDACONNECT_DATABASE_URL"]
KEY_FILE = os.environ["UDACONNECT_JWT_KEY_FILE"]
GRPCD = os.path.join(TOP, "gateway/grpcd/udaconnect-grpcd")
E = svc.EncounterEvent

n_tests = n_failed = 0


def tap(ok, desc, diag=None):
    global n_tests, n_failed
    n_tests += 1
    n_failed += 0 if ok else 1
    print(("ok" if ok else "not ok"), n_tests, "-", desc, flush=True)
    if diag is not None and not ok:
        for line in str(diag).splitlines():
            print("#", line, flush=True)


def test(desc):
    def run(fn):
        try:
            r = fn()
            tap(r[0], desc, r[1]) if isinstance(r, tuple) else tap(bool(r) or r is None, desc)
        except Exception:
            tap(False, desc, traceback.format_exc())
        return fn
    return run


def psql(sql):
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def token(role, sub):
    with open(KEY_FILE) as f:
        key = f.readline().rstrip(" \t\r\n")
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + 7200}, key, algorithm="HS256")


ORG = [("authorization", "Bearer " + token("organizer", "encounter-tests"))]


def att(pid):
    return [("authorization", "Bearer " + token("attendee", str(pid)))]


def rpc_error(fn):
    try:
        r = fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("expected an error, got %r" % (r,))


persons_made = iter(range(1, 100000))


def person():
    k = next(persons_made)
    return int(psql("SELECT id FROM udaconnect.create_person('Enc%d', 'Tester', 'Co %d')" % (k, k)).split()[0])


# each meeting at its own place: far from the seed data and from each other
spots = iter(range(1, 100000))


def meet(a, b, t, lat=None, lon=None):
    """a and b 1 m apart at time t (epoch seconds): one match."""
    if lat is None:
        k = next(spots)
        lat, lon = 12.0 + k * 0.001, 34.0
    psql("SELECT udaconnect.record_location(%d, %r, %r, to_timestamp(%d)),"
         "       udaconnect.record_location(%d, %r, %r, to_timestamp(%d))"
         % (a, lat, lon, t, b, lat + 0.000009, lon, t))


def sql_encounters(pid):
    return [tuple(int(x) for x in line.split("\t")) for line in psql(
        "SELECT id, version FROM udaconnect.encounter WHERE %d IN (person_a, person_b) ORDER BY started_at, id"
        % pid).splitlines()]


def sql_changes(pid, v, i):
    return [(int(a), int(b), k) for a, b, k in (line.split("\t") for line in psql(
        "SELECT version, id, kind FROM udaconnect.api_encounter_changes('organizer', NULL, %d, %d, %d, 10000)"
        % (pid, v, i)).splitlines())]


ch = grpc.insecure_channel(ADDR)
grpc.channel_ready_future(ch).result(timeout=30)
conns = svc_grpc.ConnectionServiceStub(ch)
P = person()
# days of this run's own, even in a database an earlier run filled (2021-03-01 on)
T0 = 1614556800 + (P % 10000) * 10 * 86400


def list_all(pid, md=ORG, **kw):
    """Every page; returns (encounters, pages)."""
    out, pages, tok = [], 0, ""
    while True:
        r = conns.ListEncounters(svc.ListEncountersRequest(person_id=pid, page_token=tok, **kw),
                                 metadata=md, timeout=30)
        pages += 1
        out += list(r.encounters)
        tok = r.next_page_token
        if not tok or pages > 1000:
            return out, pages


# ---------------------------------------------------------------- ListEncounters
OTHERS = [person() for _ in range(23)]
for n, o in enumerate(OTHERS):
    meet(P, o, T0 + n * 600)
# one more inside a place (Booth 1 of the sample data, on floor 0)
BOOTH = [float(x) for x in psql("SELECT ST_Y(ST_Centroid(area)), ST_X(ST_Centroid(area)), floor"
                                " FROM udaconnect.place WHERE name = 'Booth 1'").split()]
IN_PLACE = person()
meet(P, IN_PLACE, T0 + 30 * 600, BOOTH[0], BOOTH[1])


@test("ListEncounters: 24 encounters in pages of 7 (7, 7, 7, 3), each exactly once, in the SQL order")
def _():
    got, pages = list_all(P, page_size=7)
    want = sql_encounters(P)
    return [(e.id, e.version) for e in got] == want and pages == 4 and len(want) == 24, (pages, got[:1], want)


@test("ListEncounters: the default page (0) is 100: all 24 in one page without a token")
def _():
    r = conns.ListEncounters(svc.ListEncountersRequest(person_id=P), metadata=ORG, timeout=30)
    return len(r.encounters) == 24 and r.next_page_token == "", (len(r.encounters), r.next_page_token)


@test("ListEncounters: the fields are the SQL row's (other person, times, duration, matches, distance, place, floor)")
def _():
    got = {e.person.id: e for e in list_all(P)[0]}
    e = got[IN_PLACE]
    row = psql("SELECT e.id, extract(epoch FROM e.started_at)::int8, e.matches, e.min_distance_m, pl.id, pl.name,"
               "       pl.kind, e.latitude, e.longitude, p.first_name, p.company_name"
               "  FROM udaconnect.encounter e JOIN udaconnect.place pl ON pl.id = e.place_id"
               "  JOIN udaconnect.person p ON p.id = %d WHERE e.id = %d" % (IN_PLACE, e.id)).strip().split("\t")
    other = got[OTHERS[0]]
    ok = (str(e.id) == row[0] and e.started_at.seconds == int(row[1]) and e.matches == int(row[2])
          and abs(e.min_distance_m - float(row[3])) < 0.001 and e.place.id == int(row[4])
          and e.place.name == row[5] and e.place.kind == row[6] and e.place.HasField("floor")
          and e.place.floor.value == int(BOOTH[2]) and abs(e.latitude - float(row[7])) < 1e-9
          and abs(e.longitude - float(row[8])) < 1e-9 and e.person.first_name == row[9]
          and e.person.company_name == row[10] and e.duration_seconds == 0.0
          and not other.HasField("place") and other.started_at.seconds == T0)
    return ok, (e, row, other)


@test("ListEncounters: from_time/to_time keep the encounters overlapping [from, to)")
def _():
    got, _ = list_all(P, page_size=5, from_time=Timestamp(seconds=T0 + 600), to_time=Timestamp(seconds=T0 + 3 * 600))
    return sorted(e.person.id for e in got) == sorted(OTHERS[1:3]), [e.person.id for e in got]


@test("ListEncounters: an attendee lists their own encounters")
def _():
    got, _ = list_all(P, md=att(P), page_size=10)
    return len(got) == 24, len(got)


@test("ListEncounters: an attendee listing someone else's -> PERMISSION_DENIED")
def _():
    code, det = rpc_error(lambda: conns.ListEncounters(svc.ListEncountersRequest(person_id=P),
                                                       metadata=att(OTHERS[0]), timeout=30))
    return code == grpc.StatusCode.PERMISSION_DENIED and str(P) in det, (code, det)


@test("ListEncounters: a page token it did not give -> INVALID_ARGUMENT naming page_token")
def _():
    code, det = rpc_error(lambda: conns.ListEncounters(svc.ListEncountersRequest(person_id=P, page_token="12.x"),
                                                       metadata=ORG, timeout=30))
    return code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in det, (code, det)


@test("ListEncounters: page_size 1001, -1 and from_time after to_time -> INVALID_ARGUMENT naming the field")
def _():
    res = [rpc_error(lambda q=q: conns.ListEncounters(q, metadata=ORG, timeout=30)) for q in (
        svc.ListEncountersRequest(person_id=P, page_size=1001),
        svc.ListEncountersRequest(person_id=P, page_size=-1),
        svc.ListEncountersRequest(person_id=P, from_time=Timestamp(seconds=T0 + 1), to_time=Timestamp(seconds=T0)))]
    ok = all(c == grpc.StatusCode.INVALID_ARGUMENT for c, _ in res) and "page_size" in res[0][1] \
        and "page_size" in res[1][1] and "from_time" in res[2][1]
    return ok, res


@test("ListEncounters: an unknown person (organizer) -> NOT_FOUND; no token -> UNAUTHENTICATED")
def _():
    a = rpc_error(lambda: conns.ListEncounters(svc.ListEncountersRequest(person_id=999999), metadata=ORG, timeout=30))
    b = rpc_error(lambda: conns.ListEncounters(svc.ListEncountersRequest(person_id=P), timeout=30))
    return a[0] == grpc.StatusCode.NOT_FOUND and b[0] == grpc.StatusCode.UNAUTHENTICATED, (a, b)


# ---------------------------------------------------------------- WatchEncounters
def watch(pid, md=ORG, after=None, stub=None, timeout=120):
    """A watch call, returned once set up (its initial metadata arrived)."""
    req = svc.WatchEncountersRequest(person_id=pid)
    if after is not None:
        req.after.version, req.after.id = after
    w = (stub or conns).WatchEncounters(req, metadata=md, timeout=timeout)
    w.md = dict(w.initial_metadata())
    if "udaconnect-after-version" not in w.md:
        list(w)                 # ended before it was set up: raises its status
    return w


def take(w, n):
    """The next n events of w."""
    out = []
    for ev in w:
        out.append(ev)
        if len(out) == n:
            break
    return out


W = person()
WO = [person() for _ in range(6)]
meet(W, WO[0], T0 + 86400)
last = []


@test("WatchEncounters: set up (initial metadata with its start position); an event after matching points are inserted")
def _():
    w = watch(W)
    start = (int(w.md["udaconnect-after-version"]), int(w.md["udaconnect-after-id"]))
    # "now": the committed clock, and the largest id (nothing else writes meanwhile)
    now = (int(psql("SELECT version FROM udaconnect.encounter_clock")), 2 ** 63 - 1)
    meet(W, WO[1], T0 + 86400 + 3600)
    ev = take(w, 1)[0]
    row = psql("SELECT id, version FROM udaconnect.encounter WHERE person_a = least(%d, %d) AND person_b = greatest(%d, %d)"
               % (W, WO[1], W, WO[1])).split()
    w.cancel()
    last.append((ev.version, ev.id))
    ok = (ev.kind == E.ENCOUNTER and ev.encounter.person.id == WO[1] and [str(ev.id), str(ev.version)] == row
          and ev.encounter.id == ev.id and start == now)
    return ok, (ev, row, start, now)


@test("WatchEncounters: resuming after the last (version, id) gets exactly the missed events, then live ones")
def _():
    meet(W, WO[2], T0 + 86400 + 7200)
    meet(W, WO[3], T0 + 86400 + 7200 + 600)
    meet(W, WO[1], T0 + 86400 + 3600 + 30)       # extends the encounter already sent: a new version
    missed = sql_changes(W, *last[0])
    w = watch(W, after=last[0])
    got = take(w, len(missed))
    meet(W, WO[4], T0 + 86400 + 7200 + 1200)   # the next live event comes right after them
    nxt = take(w, 1)[0]
    w.cancel()
    ok = ([(e.version, e.id) for e in got] == [(v, i) for v, i, _ in missed] and len(missed) == 3
          and nxt.encounter.person.id == WO[4] and (nxt.version, nxt.id) > (got[-1].version, got[-1].id))
    return ok, (missed, [(e.version, e.id) for e in got], nxt)


@test("WatchEncounters: after {0, 0} replays every change of the person in (version, id) order")
def _():
    want = sql_changes(W, 0, 0)
    w = watch(W, after=(0, 0))
    got = take(w, len(want))
    w.cancel()
    return [(e.version, e.id) for e in got] == [(v, i) for v, i, _ in want], (want, got)


@test("WatchEncounters: an encounter merged into another is REMOVED with merged_into")
def _():
    # W-WO[5] twice, 2 gap-lengths apart; a point between bridges them into one
    meet(W, WO[5], T0 + 2 * 86400)
    meet(W, WO[5], T0 + 2 * 86400 + 500)
    w = watch(W)
    meet(W, WO[5], T0 + 2 * 86400 + 250)
    evs = take(w, 2)
    w.cancel()
    kinds = sorted((e.kind, e.merged_into) for e in evs)
    kept = [e for e in evs if e.kind == E.ENCOUNTER]
    ok = len(kept) == 1 and kinds[1][0] == E.REMOVED and kinds[1][1] == kept[0].id and kept[0].encounter.matches == 3
    return ok, evs


@test("WatchEncounters: an attendee watching someone else -> PERMISSION_DENIED (before any message)")
def _():
    code, det = rpc_error(lambda: list(conns.WatchEncounters(svc.WatchEncountersRequest(person_id=W),
                                                             metadata=att(WO[0]), timeout=30)))
    return code == grpc.StatusCode.PERMISSION_DENIED, (code, det)


@test("WatchEncounters: an attendee watches themself; an unknown person -> NOT_FOUND; no token -> UNAUTHENTICATED")
def _():
    w = watch(WO[0], md=att(WO[0]))
    w.cancel()
    a = rpc_error(lambda: list(conns.WatchEncounters(svc.WatchEncountersRequest(person_id=999999), metadata=ORG, timeout=30)))
    b = rpc_error(lambda: list(conns.WatchEncounters(svc.WatchEncountersRequest(person_id=W), timeout=30)))
    c = rpc_error(lambda: list(conns.WatchEncounters(svc.WatchEncountersRequest(person_id=0), metadata=ORG, timeout=30)))
    ok = (a[0] == grpc.StatusCode.NOT_FOUND and b[0] == grpc.StatusCode.UNAUTHENTICATED
          and c[0] == grpc.StatusCode.INVALID_ARGUMENT and "udaconnect-after-version" in w.md)
    return ok, (a, b, c, w.md)


@test("WatchEncounters: 50 concurrent watchers all get the event")
def _():
    C = person()
    ws = [watch(C) for _ in range(50)]
    meet(C, WO[0], T0 + 3 * 86400)
    res = [None] * 50

    def read(k):
        try:
            res[k] = (lambda e: (e.version, e.id, e.encounter.person.id))(take(ws[k], 1)[0])
        except Exception as e:
            res[k] = e
    ts = [threading.Thread(target=read, args=(k,)) for k in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for w in ws:
        w.cancel()
    return len(set(res)) == 1 and res[0][2] == WO[0], set(map(str, res))


# ---------------------------------------------------------------- private daemons
class Daemon:
    def __init__(self, name, *args, dburl=None):
        self.log = os.path.join(SUITE_DIR, name + ".log")
        env = dict(os.environ, UDACONNECT_KAFKA_BROKERS=BROKERS)
        self.p = subprocess.Popen([GRPCD, "--bind", "127.0.0.1", "--port", "0", "--database-url", dburl or DBURL,
                                   "--log-level", "debug"] + list(args),
                                  env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.addr = None
        for _ in range(300):
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.text())
            if m and "watch: listening for encounter changes" in self.text():
                self.addr = "127.0.0.1:" + m.group(1)
                break
            time.sleep(0.1)
        if self.addr is None:
            raise RuntimeError("daemon did not start: " + self.text())
        self.stub = svc_grpc.ConnectionServiceStub(grpc.insecure_channel(self.addr))

    def text(self):
        return open(self.log).read()

    def wait_log(self, pattern, count=1):
        """until pattern occurs count times in the log (bounded: 60 s)"""
        for _ in range(600):
            if len(re.findall(pattern, self.text())) >= count:
                return True
            time.sleep(0.1)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=60)


# ---------------------------------------------------------------- the live path by id
LOCK_KEY = 715518
BY_ID_FN = "udaconnect.api_encounter_changes_by_id(text,integer,integer,bigint[],bigint,bigint,integer)"


def sql_one(q, args=None):
    with DB.cursor() as c:
        c.execute(q, args)
        return c.fetchone() if c.description else None


class FetchGate:
    """Holds the live fetches: api_encounter_changes_by_id, replaced in place
    by itself waiting first for an advisory lock this object holds, and
    VOLATILE meanwhile, so that what it reads is what committed while it
    waited, as a fetch sent that late would read; restored on close."""

    def __init__(self):
        self.orig = sql_one("SELECT pg_get_functiondef(%s::regprocedure)", (BY_ID_FN,))[0]
        if "\nBEGIN\n" not in self.orig or " STABLE " not in self.orig:
            raise RuntimeError("unexpected definition: %r" % self.orig[:300])
        self.lk = psycopg2.connect(DBURL)
        self.lk.autocommit = True
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        sql_one(self.orig.replace(" STABLE ", " VOLATILE ", 1).replace(
            "\nBEGIN\n", "\nBEGIN\n    PERFORM pg_advisory_xact_lock_shared(%d);\n" % LOCK_KEY, 1))

    def wait_held(self, app):
        """True once a session of application_name app waits at the gate."""
        for _ in range(600):
            if sql_one("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = %s",
                       (app,))[0]:
                return True
            time.sleep(0.05)
        return False

    def open(self):
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def close(self):
        sql_one(self.orig)
        self.lk.close()


def points(rows):
    """One statement, one transaction: rows of (person, lat, lon, epoch seconds)."""
    sql_one("INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
            "SELECT r.p, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), to_timestamp(r.t) "
            "FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::float8[]) r(p, lat, lon, t)",
            tuple([r[k] for r in rows] for k in range(4)))


def enc_id(a, b, t):
    r = sql_one("SELECT id FROM udaconnect.encounter WHERE person_a = least(%s, %s) AND person_b = greatest(%s, %s) "
                "AND started_at <= to_timestamp(%s) AND ended_at >= to_timestamp(%s)", (a, b, a, b, t, t))
    return r[0] if r else None


DB = psycopg2.connect(DBURL)
DB.autocommit = True
# the gateways' least-privilege role (sql/src/60-http.sql): a connection limit holds it out
DBURL_API = re.sub(r"\buser=\S+", "user=udaconnect_api", DBURL) if "user=" in DBURL else DBURL + " user=udaconnect_api"
live = None
try:
    live = Daemon("live-grpcd")

    @test("WatchEncounters by id: an encounter announced at version v and changed again (with an older one of"
          " the person) by a later transaction before the daemon read it: the later version's two changes in"
          " (version, id) order, the encounter once, in its final state, then the next live event")
    def _():
        p, q, r = person(), person(), person()
        t = T0 + 7 * 86400
        lat, lon = 12.0 + next(spots) * 0.001, 34.0
        meet(p, r, t, lat, lon)                      # Z
        w = watch(p, stub=live.stub)
        meet(p, q, t + 2000, lat, lon)
        first = take(w, 1)[0]
        gate = FetchGate()
        try:
            meet(p, q, t + 4000, lat, lon)           # X, at version v
            held = gate.wait_held("udaconnect-grpcd-watch")
            points([(p, lat, lon, t + 30), (r, lat + 0.000009, lon, t + 30),
                    (p, lat, lon, t + 4030), (q, lat + 0.000009, lon, t + 4030)])
            gate.open()
        finally:
            gate.close()
        z, x = enc_id(p, r, t), enc_id(p, q, t + 4000)
        want = sql_changes(p, first.version, first.id)
        got = take(w, len(want))
        meet(p, q, t + 9000, lat, lon)
        nxt = take(w, 1)[0]
        w.cancel()
        xm = sql_one("SELECT matches FROM udaconnect.encounter WHERE id = %s", (x,))[0]
        ok = (held and [i for _, i, _ in want] == [z, x] and want[0][0] == want[1][0]
              and [(e.version, e.id) for e in got] == [(v, i) for v, i, _ in want]
              and got[1].encounter.matches == xm > 1 and nxt.id == enc_id(p, q, t + 9000))
        return ok, (held, want, [(e.version, e.id) for e in got], nxt, live.text()[-800:])

    @test("WatchEncounters by id: resuming with after = an event read by id gets exactly the missed events"
          " (a merge among them), then the next live one")
    def _():
        p, q = person(), person()
        t = T0 + 8 * 86400
        lat, lon = 12.0 + next(spots) * 0.001, 34.0
        w = watch(p, stub=live.stub)
        meet(p, q, t, lat, lon)
        ev = take(w, 1)[0]
        w.cancel()
        by_id = live.wait_log(r"watch: person %d: reading by id 1 encounter" % p)
        meet(p, q, t + 1000, lat, lon)
        meet(p, q, t + 1400, lat, lon)
        meet(p, q, t + 1200, lat, lon)               # bridges the two: one kept, one removed
        missed = sql_changes(p, ev.version, ev.id)
        w = watch(p, after=(ev.version, ev.id), stub=live.stub)
        got = take(w, len(missed))
        meet(p, q, t + 5000, lat, lon)
        nxt = take(w, 1)[0]
        w.cancel()
        ok = (by_id and [(e.version, e.id) for e in got] == [(v, i) for v, i, _ in missed]
              and "removed" in [k for _, _, k in missed] and nxt.id == enc_id(p, q, t + 5000)
              and (nxt.version, nxt.id) > (got[-1].version, got[-1].id))
        return ok, (by_id, missed, [(e.version, e.id) for e in got], nxt)

    @test("WatchEncounters by id: one commit makes an encounter of an attendee and one of two others; the"
          " attendee's watcher gets its own, and next the attendee's next one, nothing between")
    def _():
        v, y, a, b = person(), person(), person(), person()
        t = T0 + 9 * 86400
        s1, s2 = 12.0 + next(spots) * 0.001, 12.0 + next(spots) * 0.001
        w = watch(v, md=att(v), stub=live.stub)
        points([(v, s1, 34.0, t), (y, s1 + 0.000009, 34.0, t + 5),
                (a, s2, 34.0, t), (b, s2 + 0.000009, 34.0, t + 5)])
        ev = take(w, 1)[0]
        meet(v, y, t + 3000, s1, 34.0)
        nxt = take(w, 1)[0]
        w.cancel()
        ok = (ev.id == enc_id(v, y, t) and ev.encounter.person.id == y and enc_id(a, b, t) is not None
              and nxt.id == enc_id(v, y, t + 3000))
        return ok, (ev, nxt)
finally:
    if live:
        live.stop()

# ---------------------------------------------------------------- an erased person's watchers end
def forget(pid):
    psql("SELECT * FROM udaconnect.forget_person(%d)" % pid)


def ended_erased(w, pid):
    """w ends NOT_FOUND naming the erasure of pid (after any events)."""
    code, det = rpc_error(lambda: list(w))
    return code == grpc.StatusCode.NOT_FOUND and ("person %d was erased" % pid) in det, (code, det)


@test("WatchEncounters: X erased (forget_person): the organizer's and X's own watchers end NOT_FOUND naming"
      " the erasure; Y's watcher gets the removal of its encounter with X, then its next encounter")
def _():
    x, y, z = person(), person(), person()
    t = T0 + 11 * 86400
    meet(x, y, t)
    xy = enc_id(x, y, t)
    wo, wa, wy = watch(x), watch(x, md=att(x)), watch(y)
    forget(x)
    a, b = ended_erased(wo, x), ended_erased(wa, x)
    ev = take(wy, 1)[0]
    meet(y, z, t + 3000)
    nxt = take(wy, 1)[0]
    wy.cancel()
    ok = (a[0] and b[0] and ev.kind == E.REMOVED and ev.id == xy and nxt.kind == E.ENCOUNTER
          and nxt.encounter.person.id == z)
    return ok, (a, b, ev, nxt)


@test("WatchEncounters: an erased person watched again (organizer, with after, the attendee themself)"
      " -> NOT_FOUND naming the erasure")
def _():
    x = person()
    forget(x)
    res = [rpc_error(lambda kw=kw: watch(x, **kw)) for kw in ({}, {"after": (0, 0)}, {"md": att(x)})]
    ok = all(c == grpc.StatusCode.NOT_FOUND and ("person %d was erased" % x) in det for c, det in res)
    return ok, res


POS_KEY = 715520
POS_FN = "udaconnect.api_encounter_position(text,integer,integer)"
POS_MARK = "    -- no row before the first encounter was written"


class PositionGate(FetchGate):
    """Holds a watcher's first query (api_encounter_position, replaced in
    place by itself waiting, once it has found the person, for an advisory
    lock this object holds); restored on close."""

    def __init__(self):
        self.orig = sql_one("SELECT pg_get_functiondef(%s::regprocedure)", (POS_FN,))[0]
        if POS_MARK not in self.orig:
            raise RuntimeError("unexpected definition: %r" % self.orig[:300])
        self.lk = psycopg2.connect(DBURL)
        self.lk.autocommit = True
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_lock(%s)", (POS_KEY,))
        sql_one(self.orig.replace(POS_MARK, "    PERFORM pg_advisory_xact_lock_shared(%d);\n%s"
                                  % (POS_KEY, POS_MARK), 1))

    def open(self):
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_unlock_all()")


GONE_FN = "udaconnect.api_persons_gone(integer[])"


class CheckGate(PositionGate):
    """Holds every api_persons_gone (the check whether watched persons still
    exist) before it looks at them; restored on close."""

    def __init__(self):
        self.orig = sql_one("SELECT pg_get_functiondef(%s::regprocedure)", (GONE_FN,))[0]
        if "\nBEGIN\n" not in self.orig:
            raise RuntimeError("unexpected definition: %r" % self.orig[:300])
        self.lk = psycopg2.connect(DBURL)
        self.lk.autocommit = True
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_lock(%s)", (POS_KEY,))
        sql_one(self.orig.replace("\nBEGIN\n", "\nBEGIN\n    PERFORM pg_advisory_xact_lock_shared(%d);\n"
                                  % POS_KEY, 1))


class CheckCount:
    """Counts the calls of api_persons_gone made by grpcd's watch connection
    as udaconnect_api (not httpd's, not another daemon's), and the persons
    they asked about; restored on close."""

    def __init__(self):
        self.orig = sql_one("SELECT pg_get_functiondef(%s::regprocedure)", (GONE_FN,))[0]
        psql("CREATE TABLE IF NOT EXISTS public.gone_calls (n int); TRUNCATE public.gone_calls")
        # a STABLE function may not INSERT: the count goes through a VOLATILE one
        psql("CREATE OR REPLACE FUNCTION public.gone_count(n int) RETURNS void LANGUAGE sql VOLATILE"
             " AS 'INSERT INTO public.gone_calls VALUES (n)'")
        sql_one(self.orig.replace("\nBEGIN\n", "\nBEGIN\n    IF session_user = 'udaconnect_api' AND"
                                  " current_setting('application_name') = 'udaconnect-grpcd-watch' THEN"
                                  " PERFORM public.gone_count(cardinality(person_ids)); END IF;\n", 1))

    def counts(self):
        """(statements, persons asked about)"""
        return tuple(sql_one("SELECT count(*), coalesce(sum(n), 0) FROM public.gone_calls"))

    def close(self):
        sql_one(self.orig)
        psql("DROP FUNCTION public.gone_count(int); DROP TABLE public.gone_calls")


def forged_logged(d, want):
    """The counts of d's check-all log lines of payloads naming nobody, once
    they add up to want (bounded: 60 s)."""
    counts = []
    for _ in range(600):
        counts = [int(n) for n in re.findall(r'unexpected payload "forged \d+" of udaconnect_person_erased'
                                             r' \((\d+) such', d.text())]
        if sum(counts) >= want:
            break
        time.sleep(0.1)
    return counts


er = None
try:
    er = Daemon("erased-grpcd")

    @test("WatchEncounters: X erased, its check fails once (cancelled while held at a lock): the check is"
          " made again later and X's watcher ends NOT_FOUND naming the erasure")
    def _():
        x = person()
        w = watch(x, stub=er.stub, timeout=90)
        gate = CheckGate()
        try:
            forget(x)
            held = gate.wait_held("udaconnect-grpcd-watch")
            cancelled = sql_one("SELECT count(pg_cancel_backend(a.pid)) FROM pg_locks l JOIN pg_stat_activity a"
                                " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND NOT l.granted"
                                " AND a.application_name = 'udaconnect-grpcd-watch'")[0]
            failed = er.wait_log(r"checking that person\(s\) (?:\d+, )*%d\b[^(]* still exist failed"
                                 r" \(checked again in" % x)
            gate.open()
        finally:
            gate.close()
        r = ended_erased(w, x)
        return held and cancelled == 1 and failed and r[0], (held, cancelled, failed, r, er.text()[-1500:])

    @test("WatchEncounters: NOTIFY udaconnect_person_erased forged (X's id as the gateways' role; 20 payloads"
          " naming nobody in one commit): X's watcher stays open and gets X's next encounter; the 20 are"
          " checked and logged at most twice")
    def _():
        x, y = person(), person()
        t = T0 + 12 * 86400
        w = watch(x, stub=er.stub)
        api = psycopg2.connect(DBURL_API)
        api.autocommit = True
        try:
            with api.cursor() as c:
                c.execute("SELECT pg_notify('udaconnect_person_erased', %s)", (str(x),))
        finally:
            api.close()
        sql_one("SELECT count(pg_notify('udaconnect_person_erased', 'forged ' || g)) FROM generate_series(1, 20) g")
        counts = forged_logged(er, 20)
        meet(x, y, t)
        ev = take(w, 1)[0]
        w.cancel()
        ok = (ev.kind == E.ENCOUNTER and ev.id == enc_id(x, y, t) and sum(counts) == 20
              and 1 <= len(counts) <= 2)
        return ok, (ev, counts, er.text()[-1500:])

    @test("WatchEncounters: 40 watched persons and a payload naming nobody: all 40 checked in one statement"
          " (api_persons_gone; before 1.8, one statement a person); two of them erased in one commit: both"
          " their watchers end NOT_FOUND naming the erasure, another's stays open and gets its next encounter")
    def _():
        xs = [person() for _ in range(40)]
        y = person()
        t = T0 + 13 * 86400
        bd = Daemon("batch-grpcd", dburl=DBURL_API)
        cc = None
        try:
            ws = [watch(x, stub=bd.stub) for x in xs]
            cc = CheckCount()
            sql_one("SELECT pg_notify('udaconnect_person_erased', 'forged batch')")
            logged = bd.wait_log(r'unexpected payload "forged batch"')
            for _ in range(100):
                if cc.counts()[1] >= 40:
                    break
                time.sleep(0.1)
            time.sleep(0.5)     # a second statement, if any, has come by now
            all40 = cc.counts()
            psql("BEGIN; SELECT * FROM udaconnect.forget_person(%d); SELECT * FROM udaconnect.forget_person(%d);"
                 " COMMIT" % (xs[0], xs[1]))
            ended = [ended_erased(ws[0], xs[0]), ended_erased(ws[1], xs[1])]
            meet(xs[2], y, t)
            ev = take(ws[2], 1)[0]
            two = cc.counts()
            for w in ws[2:]:
                w.cancel()
            ok = (logged and all40 == (1, 40) and all(e[0] for e in ended) and ev.kind == E.ENCOUNTER
                  and ev.id == enc_id(xs[2], y, t) and 2 <= two[1] - all40[1] <= 4)
            return ok, (logged, all40, two, ended, ev, bd.text()[-1500:])
        finally:
            if cc:
                cc.close()
            bd.stop()

    @test("WatchEncounters: a watcher set up as X is erased (its first query saw X, the erasure commits"
          " before it is answered) ends NOT_FOUND naming the erasure once set up")
    def _():
        x = person()
        gate = PositionGate()
        got = []
        th = threading.Thread(target=lambda: got.append(watch(x, stub=er.stub)))
        try:
            th.start()
            held = gate.wait_held("udaconnect-grpcd-watch")
            forget(x)
            gate.open()
            th.join(60)
        finally:
            gate.close()
            th.join(60)
        if not got:
            return False, (held, "the watch did not set up", er.text()[-1500:])
        r = ended_erased(got[0], x)
        return held and r[0], (held, r, er.text()[-1500:])

    @test("WatchEncounters: X erased while the watch connection is cut and kept out: once it is back,"
          " X's watcher ends NOT_FOUND naming the erasure")
    def _():
        x = person()
        down = Daemon("erased-down-grpcd", dburl=DBURL_API)
        try:
            w = watch(x, stub=down.stub)
            sql_one("ALTER ROLE udaconnect_api CONNECTION LIMIT 0")
            try:
                sql_one("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'udaconnect-grpcd-watch' AND usename = 'udaconnect_api'")
                gone = False
                for _ in range(100):
                    if not sql_one("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                                   " 'udaconnect-grpcd-watch' AND usename = 'udaconnect_api'")[0]:
                        gone = True
                        break
                    time.sleep(0.1)
                forget(x)
            finally:
                sql_one("ALTER ROLE udaconnect_api CONNECTION LIMIT -1")
            r = ended_erased(w, x)
            back = down.wait_log("watch: listening for encounter changes", 2)
            return gone and back and r[0], (gone, back, r, down.text()[-1500:])
        finally:
            down.stop()
finally:
    if er:
        er.stop()

d = None
try:
    d = Daemon("watch-grpcd", "--max-watchers", "2")

    @test("WatchEncounters: over --max-watchers -> RESOURCE_EXHAUSTED; cancelled watchers are freed and their slots reused")
    def _():
        a, b = watch(W, stub=d.stub), watch(W, stub=d.stub)
        over = rpc_error(lambda: watch(W, stub=d.stub))
        a.cancel()
        b.cancel()
        freed = d.wait_log(r"watcher of person %d is freed \(0 open\)" % W)
        c, e = watch(W, stub=d.stub), watch(W, stub=d.stub)
        c.cancel()
        e.cancel()
        ok = over[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "max-watchers" in over[1] and freed \
            and "was cancelled" in d.text()
        return ok, (over, freed, d.text()[-1500:])

    @test("WatchEncounters: a client that does not read is ended RESOURCE_EXHAUSTED once --watch-queue events wait")
    def _():
        q = Daemon("watch-queue-grpcd", "--watch-queue", "32")
        try:
            # a small flow-control window, so that unread events stay in the daemon's queue
            stub = svc_grpc.ConnectionServiceStub(grpc.insecure_channel(q.addr, options=[
                ("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]))
            S = person()
            others = [int(x) for x in psql("SELECT (udaconnect.create_person('Slow' || g, 'Reader', 'Co'))"
                                           ".id FROM generate_series(1, 45) g").split()]
            w = watch(S, stub=stub)
            psql("SELECT " + ", ".join(
                "udaconnect.record_location(%d, 11.5, %r, to_timestamp(%d)),"
                " udaconnect.record_location(%d, 11.500009, %r, to_timestamp(%d))"
                % (S, 30 + k * 0.001, T0 + 5 * 86400, o, 30 + k * 0.001, T0 + 5 * 86400)
                for k, o in enumerate(others)))
            ended = False
            for k in range(40):          # more events, until the daemon gives up on the reader
                if re.search(r"watcher of person %d ends with status 8" % S, q.text()):
                    ended = True
                    break
                meet(S, others[k], T0 + 6 * 86400 + k * 600)
                time.sleep(0.2)
            code, det = rpc_error(lambda: list(w))
            return ended and code == grpc.StatusCode.RESOURCE_EXHAUSTED and "watch-queue" in det, (ended, code, det)
        finally:
            q.stop()

    @test("WatchEncounters: the watch connection terminated -> reconnected, the watcher caught up exactly once")
    def _():
        R = person()
        w = watch(R, stub=d.stub)
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'udaconnect-grpcd-watch'")
        meet(R, WO[0], T0 + 4 * 86400)                 # while it is down, or just after
        ev = take(w, 1)[0]
        back = d.wait_log("watch: listening for encounter changes", 2)
        meet(R, WO[1], T0 + 4 * 86400 + 3600)          # and live again afterwards
        ev2 = take(w, 1)[0]
        w.cancel()
        ok = (ev.encounter.person.id == WO[0] and ev2.encounter.person.id == WO[1] and back
              and "watch: lost the database connection" in d.text())
        return ok, (ev, ev2, d.text()[-1500:])

    @test("WatchEncounters: SIGTERM ends open watchers at once with UNAVAILABLE; the daemon exits 0")
    def _():
        w = watch(W, stub=d.stub)
        d.p.send_signal(signal.SIGTERM)
        code, det = rpc_error(lambda: list(w))
        rc = d.p.wait(timeout=60)
        return code == grpc.StatusCode.UNAVAILABLE and "shutting down" in det and rc == 0, (code, det, rc)
finally:
    if d:
        d.stop()

print("1..%d" % n_tests)
sys.exit(1 if n_failed else 0)
