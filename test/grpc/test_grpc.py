#!/usr/bin/python3
"""Tests for udaconnect-grpcd with clients generated from proto/ by Debian's
python3-grpcio + python3-grpc-tools (stubs generated into $SUITE_DIR by
test/suites/50-grpc.sh).  Output: TAP lines ("ok N - ..." / "not ok N - ...").

Uses the running stack (UDACONNECT_GRPC_ADDR, UDACONNECT_KAFKA_BROKERS,
PostgreSQL through the libpq environment, the signing key
UDACONNECT_JWT_KEY_FILE: tokens are minted here with PyJWT) and, for the broker-outage and
shutdown tests, a private broker (udaconnect-devkafka) and private daemons
started in $SUITE_DIR.
"""
import math
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
sys.path[:0] = [os.path.join(SUITE_DIR, "gen"), os.path.join(SUITE_DIR, "gen_health"),
                os.path.join(SUITE_DIR, "gen_orig")]

import grpc  # noqa: E402
import jwt  # noqa: E402  (PyJWT: the independent client of the tokens)
from google.protobuf import timestamp_pb2  # noqa: E402
from udaconnect.v1 import location_pb2 as v1  # noqa: E402
from udaconnect.v1 import location_service_pb2 as svc  # noqa: E402
from udaconnect.v1 import location_service_pb2_grpc as svc_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import location_pb2 as orig  # noqa: E402  (the original proto, no package)
import location_pb2_grpc as orig_grpc  # noqa: E402

ADDR = os.environ["UDACONNECT_GRPC_ADDR"]
BROKERS = os.environ["UDACONNECT_KAFKA_BROKERS"]
TOPIC = os.environ.get("UDACONNECT_KAFKA_TOPIC", "locations")
GRPCD = os.path.join(TOP, "gateway/grpcd/udaconnect-grpcd")
DEVKAFKA = os.path.join(TOP, "scripts/devkafka/udaconnect-devkafka")
DBURL = os.environ.get("UDACONNECT_DATABASE_URL")

AUTH_ON = os.environ.get("UDACONNECT_AUTH", "on") != "off"
KEY_FILE = os.environ.get("UDACONNECT_JWT_KEY_FILE")

n_tests = 0
n_failed = 0


def tap(ok, desc, diag=None):
    global n_tests, n_failed
    n_tests += 1
    if not ok:
        n_failed += 1
    print(("ok" if ok else "not ok"), n_tests, "-", desc, flush=True)
    if diag and not ok:
        for line in str(diag).splitlines():
            print("#", line, flush=True)


def test(desc):
    """Decorator: run now, report one TAP line; an exception is a failure."""
    def run(fn):
        try:
            r = fn()
            if isinstance(r, tuple):
                tap(r[0], desc, r[1])
            else:
                tap(bool(r) or r is None, desc)
        except Exception:
            tap(False, desc, traceback.format_exc())
        return fn
    return run


def rpc_error(fn, *a, **kw):
    """Call fn, expect grpc.RpcError; return (code, details)."""
    try:
        r = fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("expected an error, got a response: %r" % (r,))


def psql(sql, *args):
    cmd = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def kafka_read(brokers, topic, partition, offset):
    """(key, value) of one message, read with kcat."""
    out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-p", str(partition),
                          "-o", str(offset), "-c", "1", "-e", "-q", "-f", "%k\n%S\n%s"],
                         check=True, capture_output=True, timeout=30).stdout
    key, size, rest = out.split(b"\n", 2)
    return key.decode(), rest[:int(size)]


def kafka_all(brokers, topic):
    """Every message of the topic as a list of (key, value)."""
    out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
                          "-f", "%k\n%S\n%s\n"], check=True, capture_output=True, timeout=60).stdout
    msgs = []
    while out:
        key, size, rest = out.split(b"\n", 2)
        n = int(size)
        msgs.append((key.decode(), rest[:n]))
        out = rest[n + 1:]
    return msgs


def ts(seconds, nanos=0):
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def signing_key():
    """The first line of the stack's key file: the key that signs (used as text)."""
    with open(KEY_FILE) as f:
        return f.readline().rstrip(" \t\r\n")


def token(role="organizer", sub="test-suite", key=None, alg="HS256", ttl=3600, **claims):
    """A token as udaconnect-token would sign it; a claim given as None is left out."""
    now = int(time.time())
    body = {"sub": sub, "role": role, "iat": now, "exp": now + ttl}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    if alg == "none":
        return jwt.encode(body, None, algorithm="none")
    return jwt.encode(body, key if key is not None else signing_key(), algorithm=alg)


def bearer(tok):
    """Call metadata carrying tok (None: no authorization at all)."""
    return [] if tok is None else [("authorization", "Bearer " + tok)]


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.wait_for_ready, self.compression = d.wait_for_ready, d.compression
        self.metadata = metadata


class _WithToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                 grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the authorization metadata to every call without any."""

    def __init__(self, tok):
        self.md = bearer(tok)

    def _d(self, d):
        md = list(d.metadata or [])
        if not any(k == "authorization" for k, _ in md):
            md += self.md
        return _CallDetails(d, md)

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._d(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._d(d), req)

    def intercept_stream_unary(self, cont, d, reqs):
        return cont(self._d(d), reqs)

    def intercept_stream_stream(self, cont, d, reqs):
        return cont(self._d(d), reqs)


ORGANIZER = token(ttl=86400) if KEY_FILE else None


def channel(addr, tok="organizer"):
    """A channel whose calls carry tok (default: an organizer's token, which
    the tests written before authentication act as)."""
    tok = ORGANIZER if tok == "organizer" else tok
    return grpc.intercept_channel(grpc.insecure_channel(addr), _WithToken(tok))


ch = channel(ADDR)
grpc.channel_ready_future(ch).result(timeout=30)
health = health_pb2_grpc.HealthStub(ch)
locs = svc_grpc.LocationServiceStub(ch)
conns = svc_grpc.ConnectionServiceStub(ch)
legacy = orig_grpc.LocationServiceStub(ch)
NOW = int(time.time())

# ---------------------------------------------------------------- health
S = health_pb2.HealthCheckResponse


@test("health: a service name with a NUL is not cut short to a known one -> INVALID_ARGUMENT")
def _():
    code, det = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="LocationService\x00junk"), timeout=10)
    return code == grpc.StatusCode.INVALID_ARGUMENT and "service" in det, (code, det)


@test("health: Check('') is SERVING")
def _():
    return health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == S.SERVING


@test("health: Check of each served service is SERVING")
def _():
    for s in ("udaconnect.v1.LocationService", "udaconnect.v1.ConnectionService", "LocationService"):
        r = health.Check(health_pb2.HealthCheckRequest(service=s), timeout=10)
        if r.status != S.SERVING:
            return False, "%s: %s" % (s, r)
    return True


@test("health: Check of an unknown service is NOT_FOUND")
def _():
    code, det = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    return code == grpc.StatusCode.NOT_FOUND and "no.such.Service" in det, (code, det)


@test("health: Watch is UNIMPLEMENTED")
def _():
    code, det = rpc_error(lambda: list(health.Watch(health_pb2.HealthCheckRequest(), timeout=10)))
    return code == grpc.StatusCode.UNIMPLEMENTED, (code, det)

# ---------------------------------------------------------------- RecordLocation
SENT = v1.Location(person_id=5, latitude=37.553441, longitude=-122.290524, creation_time=ts(NOW - 60, 123456789))
resp = None


@test("RecordLocation: OK with the partition and offset the broker acknowledged")
def _():
    global resp
    resp = locs.RecordLocation(SENT, timeout=30)
    return resp.partition >= 0 and resp.offset >= 0, resp


@test("RecordLocation: the Kafka message at that offset has key = person id, value = the serialised Location")
def _():
    key, value = kafka_read(BROKERS, TOPIC, resp.partition, resp.offset)
    got = v1.Location.FromString(value)
    return key == "5" and got == SENT, (key, got)


@test("RecordLocation: without creation_time is accepted and produced without one")
def _():
    r = locs.RecordLocation(v1.Location(person_id=6, latitude=-33.5, longitude=151.25), timeout=30)
    key, value = kafka_read(BROKERS, TOPIC, r.partition, r.offset)
    got = v1.Location.FromString(value)
    return key == "6" and not got.HasField("creation_time") and got.latitude == -33.5, (key, got)


@test("RecordLocation: boundary coordinates (+-90, +-180) are accepted")
def _():
    for lat, lon in ((90, 180), (-90, -180), (0, 0)):
        locs.RecordLocation(v1.Location(person_id=1, latitude=lat, longitude=lon), timeout=30)
    return True


@test("RecordLocation: one person's points land in one partition, in order")
def _():
    parts, offs = set(), []
    for i in range(5):
        r = locs.RecordLocation(v1.Location(person_id=8, latitude=10 + i, longitude=20), timeout=30)
        parts.add(r.partition)
        offs.append(r.offset)
    return len(parts) == 1 and offs == sorted(offs) and len(set(offs)) == 5, (parts, offs)


@test("RecordLocation then RecordLocations (two producers): one person's points share a partition, in call order")
def _():
    # unary calls and client streams use separate producers (different
    # linger.ms); the key must still pick the same partition, and a stream
    # sent after an acknowledged unary call must follow it in the partition
    first = locs.RecordLocation(v1.Location(person_id=9, latitude=1.5, longitude=2), timeout=30)
    r = locs.RecordLocations(iter([v1.Location(person_id=9, latitude=1.5, longitude=3 + i) for i in range(20)]),
                             timeout=60)
    last = locs.RecordLocation(v1.Location(person_id=9, latitude=1.5, longitude=99), timeout=30)
    out = subprocess.run(["kcat", "-C", "-b", BROKERS, "-t", TOPIC, "-p", str(first.partition),
                          "-o", str(first.offset), "-c", str(last.offset - first.offset + 1), "-e", "-q",
                          "-f", "%k\n%S\n%s\n"], check=True, capture_output=True, timeout=30).stdout
    lons = []
    while out:
        key, size, rest = out.split(b"\n", 2)
        n = int(size)
        if key == b"9":
            lons.append(v1.Location.FromString(rest[:n]).longitude)
        out = rest[n + 1:]
    return (r.accepted == 20 and last.partition == first.partition
            and lons == [2] + [3 + i for i in range(20)] + [99]), (first, r, last, lons)


BAD = [
    ("person_id 0", v1.Location(person_id=0, latitude=1, longitude=1), "person_id"),
    ("person_id -7", v1.Location(person_id=-7, latitude=1, longitude=1), "person_id"),
    ("latitude 90.0001", v1.Location(person_id=1, latitude=90.0001, longitude=1), "latitude"),
    ("latitude NaN", v1.Location(person_id=1, latitude=math.nan, longitude=1), "latitude"),
    ("latitude -inf", v1.Location(person_id=1, latitude=-math.inf, longitude=1), "latitude"),
    ("longitude -180.5", v1.Location(person_id=1, latitude=1, longitude=-180.5), "longitude"),
    ("longitude inf", v1.Location(person_id=1, latitude=1, longitude=math.inf), "longitude"),
    ("nanos -1", v1.Location(person_id=1, latitude=1, longitude=1, creation_time=ts(NOW, -1)), "creation_time.nanos"),
    ("nanos 1e9", v1.Location(person_id=1, latitude=1, longitude=1, creation_time=ts(NOW, 1000000000)), "creation_time.nanos"),
    ("creation_time a day ahead", v1.Location(person_id=1, latitude=1, longitude=1, creation_time=ts(NOW + 86400)), "creation_time"),
    ("creation_time year 10000", v1.Location(person_id=1, latitude=1, longitude=1, creation_time=ts(253402300800)), "creation_time.seconds"),
]
for what, msg, field in BAD:
    @test("RecordLocation: %s -> INVALID_ARGUMENT naming %s" % (what, field))
    def _(msg=msg, field=field):
        code, det = rpc_error(locs.RecordLocation, msg, timeout=10)
        return code == grpc.StatusCode.INVALID_ARGUMENT and det.startswith(field + " "), (code, det)


@test("RecordLocation: undecodable bytes -> INVALID_ARGUMENT")
def _():
    raw = ch.unary_unary("/udaconnect.v1.LocationService/RecordLocation")
    code, det = rpc_error(raw, b"\xff\xff\xff\xff\x0f garbage", timeout=10)
    return code == grpc.StatusCode.INVALID_ARGUMENT and "udaconnect.v1.Location" in det, (code, det)


@test("RecordLocation: a 100 kB message -> RESOURCE_EXHAUSTED")
def _():
    raw = ch.unary_unary("/udaconnect.v1.LocationService/RecordLocation")
    # field 15, length-delimited, 100 000 bytes: valid protobuf, unknown field
    big = v1.Location(person_id=1, latitude=1, longitude=1).SerializeToString() + b"\x7a" + \
        bytes([0xa0, 0x8d, 0x06]) + b"x" * 100000
    code, det = rpc_error(raw, big, timeout=10)
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, det)


@test("unknown method -> UNIMPLEMENTED")
def _():
    raw = ch.unary_unary("/udaconnect.v1.LocationService/NoSuchMethod")
    code, det = rpc_error(raw, b"", timeout=10)
    return code == grpc.StatusCode.UNIMPLEMENTED, (code, det)


@test("unknown service -> UNIMPLEMENTED")
def _():
    raw = ch.unary_unary("/no.Such/Thing")
    code, det = rpc_error(raw, b"", timeout=10)
    return code == grpc.StatusCode.UNIMPLEMENTED, (code, det)

# ---------------------------------------------------------------- RecordLocations


@test("RecordLocations: counts accepted and rejected points and lists each rejection's index and field")
def _():
    pts = []
    bad_idx = {}
    for i in range(200):
        if i % 50 == 7:
            pts.append(v1.Location(person_id=0, latitude=1, longitude=1)); bad_idx[i] = "person_id"
        elif i % 50 == 21:
            pts.append(v1.Location(person_id=1, latitude=math.nan, longitude=1)); bad_idx[i] = "latitude"
        else:
            pts.append(v1.Location(person_id=1 + i % 5, latitude=i / 10.0, longitude=-i / 10.0))
    r = locs.RecordLocations(iter(pts), timeout=60)
    got = {x.index: x.reason.split(" ")[0] for x in r.rejections}
    return (r.accepted == 200 - len(bad_idx) and r.rejected == len(bad_idx) and got == bad_idx), r


@test("RecordLocations: 1005 rejections are counted, the first 1000 listed in order")
def _():
    r = locs.RecordLocations(iter([v1.Location(person_id=0, latitude=1, longitude=1)] * 1005), timeout=60)
    idx = [x.index for x in r.rejections]
    return (r.accepted == 0 and r.rejected == 1005 and idx == list(range(1000))), (r.accepted, r.rejected, len(idx))


@test("RecordLocations: an empty stream is OK with nothing accepted")
def _():
    r = locs.RecordLocations(iter([]), timeout=30)
    return r.accepted == 0 and r.rejected == 0, r


@test("RecordLocations: undecodable stream messages are rejected, the others accepted")
def _():
    raw = ch.stream_unary("/udaconnect.v1.LocationService/RecordLocations",
                          response_deserializer=svc.RecordLocationsResponse.FromString)
    good = v1.Location(person_id=1, latitude=2, longitude=3).SerializeToString()
    r = raw(iter([good, b"\xff\xff\xff", good]), timeout=30)
    return r.accepted == 2 and r.rejected == 1 and r.rejections[0].index == 1, r


@test("RecordLocations: a stream message over the size limit -> RESOURCE_EXHAUSTED")
def _():
    raw = ch.stream_unary("/udaconnect.v1.LocationService/RecordLocations")
    good = v1.Location(person_id=1, latitude=2, longitude=3).SerializeToString()
    code, det = rpc_error(raw, iter([good, good + b"\x7a\xa0\x8d\x06" + b"x" * 100000]), timeout=30)
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, det)

# ---------------------------------------------------------------- unknown fields


def varint(v):
    out = b""
    while True:
        b, v = v & 0x7f, v >> 7
        if not v:
            return out + bytes([b])
        out += bytes([b | 0x80])


def unknown_field(n):
    """Field 15, length-delimited, n bytes: legal protobuf that a newer
    client may send and this server does not know."""
    return b"" if n == 0 else b"\x7a" + varint(n) + b"u" * n


UNKNOWN_SIZES = (0, 200, 10000)
# one point per size and RPC, all of one person, each with its own place and
# time: the end-to-end test below counts each one's rows in udaconnect.location
UNK_PID = int(psql("SELECT min(id) FROM udaconnect.person").strip())
UNK_T = NOW - 8 * 86400
UNK_POINTS = {}     # (rpc, size) -> v1.Location as the ingest workers must see it


def unk_point(rpc, k, n):
    m = v1.Location(person_id=UNK_PID, latitude=42.5 + k / 1000.0, longitude=3.25 + UNKNOWN_SIZES.index(n) / 1000.0,
                    creation_time=ts(UNK_T + k * 10 + UNKNOWN_SIZES.index(n)))
    UNK_POINTS[(rpc, n)] = m
    return m


@test("unknown fields of 0, 200 and 10000 bytes: RecordLocation OK; the Kafka value holds the known fields only")
def _():
    raw = ch.unary_unary("/udaconnect.v1.LocationService/RecordLocation",
                         response_deserializer=svc.RecordLocationResponse.FromString)
    out = []
    for n in UNKNOWN_SIZES:
        m = unk_point("unary", 1, n)
        try:
            r = raw(m.SerializeToString() + unknown_field(n), timeout=30)
        except grpc.RpcError as e:      # was UNAVAILABLE (a retryable status) from 200 bytes on
            out.append((n, e.code(), e.details()))
            continue
        key, value = kafka_read(BROKERS, TOPIC, r.partition, r.offset)
        if key != str(UNK_PID) or value != m.SerializeToString():
            out.append((n, key, value[:80]))
    return not out, out


@test("unknown fields of 0, 200 and 10000 bytes in one RecordLocations stream: all accepted")
def _():
    raw = ch.stream_unary("/udaconnect.v1.LocationService/RecordLocations",
                          response_deserializer=svc.RecordLocationsResponse.FromString)
    msgs = [unk_point("stream", 2, n).SerializeToString() + unknown_field(n) for n in UNKNOWN_SIZES]
    r = raw(iter(msgs), timeout=60)
    return r.accepted == 3 and r.rejected == 0, r


@test("unknown fields of 0, 200 and 10000 bytes: original updateLocation OK (also inside createdTime)")
def _():
    raw = ch.unary_unary("/LocationService/updateLocation", response_deserializer=orig.Status.FromString)
    out = []
    for n in UNKNOWN_SIZES:
        i = UNKNOWN_SIZES.index(n)
        # integer degrees in the original proto; a place of its own per size
        m = orig.Location(personId=UNK_PID, latitude=44 + i, longitude=5, createdTime=ts(UNK_T + 100 + i))
        UNK_POINTS[("legacy", n)] = v1.Location(person_id=UNK_PID, latitude=44 + i, longitude=5,
                                                creation_time=ts(UNK_T + 100 + i))
        # an unknown field inside the Timestamp (field 4) as well
        stamp = m.createdTime.SerializeToString() + unknown_field(min(n, 200))
        body = orig.Location(personId=UNK_PID, latitude=44 + i, longitude=5).SerializeToString() + \
            b"\x22" + varint(len(stamp)) + stamp + unknown_field(n)
        try:
            r = raw(body, timeout=30)
            if r.currentState != "Received":
                out.append((n, r))
        except grpc.RpcError as e:
            out.append((n, e.code(), e.details()))
    return not out, out

# ---------------------------------------------------------------- original clients


@test("original client: /LocationService/updateLocation answers currentState 'Received'")
def _():
    r = legacy.updateLocation(orig.Location(personId=6, latitude=-12, longitude=130,
                                            createdTime=ts(NOW - 3600)), timeout=30)
    return r.currentState == "Received", r


@test("original client: the point is produced as a udaconnect.v1.Location")
def _():
    # find it: the newest message with key 6 whose latitude is -12
    for key, value in reversed(kafka_all(BROKERS, TOPIC)):
        m = v1.Location.FromString(value)
        if key == "6" and m.latitude == -12:
            return (m.longitude == 130 and m.creation_time.seconds == NOW - 3600), m
    return False, "not found on the topic"


@test("original client: personId 0 -> INVALID_ARGUMENT naming personId")
def _():
    code, det = rpc_error(legacy.updateLocation, orig.Location(personId=0, latitude=1, longitude=1), timeout=10)
    return code == grpc.StatusCode.INVALID_ARGUMENT and det.startswith("personId "), (code, det)


@test("original client: latitude 100 -> INVALID_ARGUMENT naming latitude")
def _():
    code, det = rpc_error(legacy.updateLocation, orig.Location(personId=1, latitude=100, longitude=1), timeout=10)
    return code == grpc.StatusCode.INVALID_ARGUMENT and det.startswith("latitude "), (code, det)

# ---------------------------------------------------------------- FindConnections


def sql_connections(pid, start, end, meters, window=None):
    rows = psql("SELECT location_id, person_id, latitude, longitude,"
                " (extract(epoch FROM creation_time) * 1000000)::int8, distance_m"
                " FROM udaconnect.find_connections(%d, '%s', '%s', %r, %s)"
                % (pid, start, end, meters, "NULL" if window is None else "'%d seconds'" % window))
    out = []
    for line in rows.splitlines():
        a = line.split("\t")
        out.append((int(a[0]), int(a[1]), float(a[2]), float(a[3]), int(a[4]), float(a[5])))
    return out


def grpc_rows(stream):
    return [(c.location_id, c.person_id, c.latitude, c.longitude,
             c.creation_time.seconds * 1000000 + c.creation_time.nanos // 1000, c.distance_m) for c in stream]


@test("FindConnections: streams exactly the rows of udaconnect.find_connections (seed data, person 1, 2020)")
def _():
    want = sql_connections(1, "2020-01-01", "2020-12-31", 5.0)
    got = grpc_rows(conns.FindConnections(svc.FindConnectionsRequest(
        person_id=1, start_date="2020-01-01", end_date="2020-12-31"), timeout=30))
    return len(want) > 0 and got == want, "want %d rows, got %d\n%r\n%r" % (len(want), len(got), want[:3], got[:3])


# a result of many chunks: person 950000 has one location; 950001 has 12000
# at the same place on the same day
BIG_PID, BIG_ROWS = 950000, 12000
psql("INSERT INTO udaconnect.person (id, first_name, last_name, company_name)"
     " VALUES (950000, 'Big', 'Result', 'Test'), (950001, 'Many', 'Points', 'Test');"
     " INSERT INTO udaconnect.location (person_id, coordinate, creation_time)"
     " SELECT 950000, udaconnect.make_point(10, 10), timestamptz '2021-06-01 12:00:00+00';"
     " INSERT INTO udaconnect.location (person_id, coordinate, creation_time)"
     " SELECT 950001, udaconnect.make_point(10, 10), timestamptz '2021-06-01 00:00:00+00' + g * interval '7 seconds'"
     "   FROM generate_series(1, %d) g;"
     " ANALYZE udaconnect.location" % BIG_ROWS)


@test("FindConnections: a 12000-row result (many chunks of a cursor) is streamed identical and in order")
def _():
    want = sql_connections(BIG_PID, "2021-06-01", "2021-06-01", 5.0)
    got = grpc_rows(conns.FindConnections(svc.FindConnectionsRequest(
        person_id=BIG_PID, start_date="2021-06-01", end_date="2021-06-01"), timeout=60))
    return len(want) == BIG_ROWS and got == want, "want %d rows, got %d" % (len(want), len(got))


@test("FindConnections: meters and time_window_seconds are passed through")
def _():
    want = psql("SELECT count(*) FROM udaconnect.find_connections(1, '2020-01-01', '2020-12-31', 1000,"
                " interval '1 hour')").strip()
    got = list(conns.FindConnections(svc.FindConnectionsRequest(
        person_id=1, start_date="2020-01-01", end_date="2020-12-31", meters=1000,
        time_window_seconds=3600), timeout=30))
    return str(len(got)) == want, (want, len(got))


@test("FindConnections: unknown person -> NOT_FOUND")
def _():
    code, det = rpc_error(lambda: list(conns.FindConnections(svc.FindConnectionsRequest(
        person_id=987654, start_date="2020-01-01", end_date="2020-12-31"), timeout=30)))
    return code == grpc.StatusCode.NOT_FOUND, (code, det)


FIND_BAD = [
    ("person_id 0", dict(person_id=0, start_date="2020-01-01", end_date="2020-12-31"), "person_id"),
    ("missing start_date", dict(person_id=1, end_date="2020-12-31"), "start_date"),
    ("missing end_date", dict(person_id=1, start_date="2020-01-01"), "end_date"),
    ("negative meters", dict(person_id=1, start_date="2020-01-01", end_date="2020-12-31", meters=-1), "meters"),
    ("NaN time window", dict(person_id=1, start_date="2020-01-01", end_date="2020-12-31",
                             time_window_seconds=math.nan), "time_window_seconds"),
    # make_interval() saturates past ~1e13 s: it used to reach PostgreSQL as a
    # "negative" window ("time_window must not be negative")
    ("time window 1e13 s", dict(person_id=1, start_date="2020-01-01", end_date="2020-12-31",
                                time_window_seconds=1e13), "time_window_seconds"),
    # PostgreSQL's date input also takes these; the API takes ISO dates only
    ("start_date 'epoch'", dict(person_id=1, start_date="epoch", end_date="2020-12-31"), "start_date"),
    ("end_date 'infinity'", dict(person_id=1, start_date="2020-01-01", end_date="infinity"), "end_date"),
    ("start_date 'Jan 1 2020'", dict(person_id=1, start_date="Jan 1 2020", end_date="2020-12-31"), "start_date"),
    # protobuf-c's C strings used to cut this short to a valid "2020-12-31"
    ("end_date with a NUL", dict(person_id=1, start_date="2020-01-01", end_date="2020-12-31\x00junk"), "end_date"),
]
for what, req, field in FIND_BAD:
    @test("FindConnections: %s -> INVALID_ARGUMENT naming %s" % (what, field))
    def _(req=req, field=field):
        code, det = rpc_error(lambda: list(conns.FindConnections(svc.FindConnectionsRequest(**req), timeout=30)))
        return code == grpc.StatusCode.INVALID_ARGUMENT and det.startswith(field + " "), (code, det)


@test("FindConnections: 300 concurrent NOT_FOUND answers from the db threads; the daemon survives")
def _():
    # The final status sent from a db thread used to read the call after
    # starting the batch, which a worker thread may already have freed
    # (heap-use-after-free; an ASan build aborts here).  Beyond
    # --max-find-calls (64) in flight, calls get RESOURCE_EXHAUSTED at once;
    # the first 64 always get in.
    futs = [conns.FindConnections(svc.FindConnectionsRequest(
        person_id=900000 + i, start_date="2020-01-01", end_date="2020-12-31"), timeout=60) for i in range(300)]
    codes = {}
    for f in futs:
        code = rpc_error(lambda: list(f))[0]
        codes[code] = codes.get(code, 0) + 1
    ok = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == S.SERVING
    return (set(codes) <= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
            and codes.get(grpc.StatusCode.NOT_FOUND, 0) >= 64 and ok), codes


@test("FindConnections: the query ends at the call's deadline and frees its db thread")
def _():
    # A lock makes the query wait; it used to keep waiting (holding one of
    # the two db threads) for the full 30 s statement_timeout after the
    # client had given up.
    locker = subprocess.Popen(["psql", "-X", "-q", "-c", "BEGIN; LOCK TABLE udaconnect.location IN ACCESS "
                               "EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT"],
                              env=dict(os.environ, PGAPPNAME="udaconnect-test-locker"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if psql("SELECT count(*) FROM pg_locks WHERE relation = 'udaconnect.location'::regclass"
                    " AND mode = 'AccessExclusiveLock' AND granted").strip() == "1":
                break
            time.sleep(0.1)
        code, det = rpc_error(lambda: list(conns.FindConnections(svc.FindConnectionsRequest(
            person_id=1, start_date="2020-01-01", end_date="2020-12-31"), timeout=1)))
        waiting = None
        for _ in range(50):     # the server side gives up too (not after 30 s)
            waiting = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'udaconnect-grpcd'"
                           " AND state = 'active' AND wait_event_type = 'Lock'").strip()
            if waiting == "0":
                break
            time.sleep(0.1)
        return code == grpc.StatusCode.DEADLINE_EXCEEDED and waiting == "0", (code, det, waiting)
    finally:
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE application_name = 'udaconnect-test-locker'")
        locker.wait(timeout=30)


@test("FindConnections: malformed date -> INVALID_ARGUMENT (from PostgreSQL)")
def _():
    code, det = rpc_error(lambda: list(conns.FindConnections(svc.FindConnectionsRequest(
        person_id=1, start_date="2020-13-45", end_date="2020-12-31"), timeout=30)))
    return code == grpc.StatusCode.INVALID_ARGUMENT and "2020-13-45" in det, (code, det)

# ---------------------------------------------------------------- end to end


@test("end to end: a point sent over gRPC appears in udaconnect.location (ingest workers)")
def _():
    if psql("SELECT to_regclass('udaconnect.ingest_status') IS NOT NULL").strip() != "t":
        print("# SKIP: this build has no Kafka ingest workers (udaconnect.ingest_status missing)")
        return True
    pid = int(psql("SELECT min(id) FROM udaconnect.person").strip())
    t = NOW - 7 * 86400
    lat, lon = 41.123456, 2.654321
    locs.RecordLocation(v1.Location(person_id=pid, latitude=lat, longitude=lon,
                                    creation_time=ts(t, 250000000)), timeout=30)
    q = ("SELECT count(*) FROM udaconnect.location WHERE person_id = %d AND creation_time = "
         "to_timestamp(%d.25) AND abs(ST_Y(coordinate) - %r) < 1e-9 AND abs(ST_X(coordinate) - %r) < 1e-9"
         % (pid, t, lat, lon))
    err = ""
    for _ in range(600):                          # bounded wait: 60 s
        try:
            n = psql(q).strip()
        except subprocess.CalledProcessError as e:  # e.g. PostgreSQL restarting
            err = e.stderr
            time.sleep(0.1)
            continue
        if n != "0":
            return n == "1", "rows: " + n
        time.sleep(0.1)
    return False, "the point did not reach udaconnect.location within 60 s " + err



@test("end to end: every unknown-field point (unary, stream, original) is stored exactly once")
def _():
    if psql("SELECT to_regclass('udaconnect.ingest_status') IS NOT NULL").strip() != "t":
        print("# SKIP: this build has no Kafka ingest workers (udaconnect.ingest_status missing)")
        return True
    conds = " OR ".join(
        "(creation_time = to_timestamp(%d) AND abs(ST_Y(coordinate) - %r) < 1e-9 AND abs(ST_X(coordinate) - %r) < 1e-9)"
        % (m.creation_time.seconds, m.latitude, m.longitude) for m in UNK_POINTS.values())
    q = ("SELECT count(*), count(DISTINCT (creation_time, coordinate)) FROM udaconnect.location"
         " WHERE person_id = %d AND (%s)" % (UNK_PID, conds))
    want = len(UNK_POINTS)
    got = None
    for _ in range(600):                          # bounded wait: 60 s
        try:
            got = psql(q).split()
        except subprocess.CalledProcessError:
            time.sleep(0.1)
            continue
        if got[1] == str(want):
            break
        time.sleep(0.1)
    return got == [str(want), str(want)], "want %d points once each; rows, distinct points: %r" % (want, got)

# ---------------------------------------------------------------- private broker + daemon


class Daemon:
    """A private udaconnect-grpcd on an ephemeral port."""

    def __init__(self, name, brokers, *args, env=None):
        """env: extra environment (the database is configured by --database-url only)"""
        self.log = os.path.join(SUITE_DIR, name + ".log")
        env = dict(os.environ, UDACONNECT_KAFKA_BROKERS=brokers, **(env or {}))
        env.pop("UDACONNECT_DATABASE_URL", None)
        self.p = subprocess.Popen([GRPCD, "--bind", "127.0.0.1", "--port", "0"] + list(args),
                                  env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        self.port = None
        for _ in range(300):
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        if self.port is None:
            raise RuntimeError("daemon did not start: " + open(self.log).read())
        self.addr = "127.0.0.1:%d" % self.port

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=60)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=30)

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def rss_settled_kb(self, ready=lambda: True):
        """VmRSS once ready() holds and it stopped growing (bounded: 20 s)"""
        prev = None
        for _ in range(40):
            time.sleep(0.5)
            cur = self.rss_kb()
            if prev is not None and ready() and abs(cur - prev) < 256:
                return cur
            prev = cur
        return cur


class Broker:
    def __init__(self, name):
        self.boot = os.path.join(SUITE_DIR, name + ".bootstrap")
        self.pidf = os.path.join(SUITE_DIR, name + ".pid")
        self.p = subprocess.Popen([DEVKAFKA, "-q", "-t", "locations", "-p", "2", "-f", self.boot,
                                   "-P", self.pidf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(self.boot) and open(self.boot).read().strip():
                break
            time.sleep(0.1)
        self.brokers = open(self.boot).read().strip()

    def down(self):
        self.p.send_signal(signal.SIGUSR1)

    def up(self):
        self.p.send_signal(signal.SIGUSR2)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=30)


broker = daemon = None
try:
    broker = Broker("outage-broker")
    daemon = Daemon("outage-grpcd", broker.brokers, "--kafka-timeout-ms", "3000", "--max-stream", "50",
                    "--database-url", "host=127.0.0.1 port=1 dbname=nothing connect_timeout=5")
    dch = channel(daemon.addr)
    dlocs = svc_grpc.LocationServiceStub(dch)
    dlegacy = orig_grpc.LocationServiceStub(dch)
    accepted = []

    @test("private daemon: RecordLocation OK while the broker is up")
    def _():
        m = v1.Location(person_id=11, latitude=1, longitude=1)
        dlocs.RecordLocation(m, timeout=30)
        accepted.append(m)

    @test("FindConnections: database unreachable -> UNAVAILABLE")
    def _():
        dconns = svc_grpc.ConnectionServiceStub(dch)
        code, det = rpc_error(lambda: list(dconns.FindConnections(svc.FindConnectionsRequest(
            person_id=1, start_date="2020-01-01", end_date="2020-12-31"), timeout=30)))
        return code == grpc.StatusCode.UNAVAILABLE and "database" in det, (code, det)

    @test("RecordLocations: a stream longer than --max-stream -> RESOURCE_EXHAUSTED")
    def _():
        pts = [v1.Location(person_id=12, latitude=1, longitude=i / 100) for i in range(60)]
        code, det = rpc_error(dlocs.RecordLocations, iter(pts), timeout=30)
        return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "50" in det, (code, det)

    broker.down()
    time.sleep(0.5)
    outage_ok = []

    @test("broker down: RecordLocation -> UNAVAILABLE before a 2 s deadline (not DEADLINE_EXCEEDED)")
    def _():
        m = v1.Location(person_id=13, latitude=1, longitude=1)
        try:
            dlocs.RecordLocation(m, timeout=2)
            outage_ok.append(m)
            return False, "answered OK with the broker down"
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())

    @test("broker down: RecordLocation without a short deadline -> UNAVAILABLE after the Kafka timeout")
    def _():
        m = v1.Location(person_id=14, latitude=1, longitude=1)
        try:
            dlocs.RecordLocation(m, timeout=60)
            outage_ok.append(m)
            return False, "answered OK with the broker down"
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())

    @test("broker down: RecordLocations -> UNAVAILABLE, nothing reported as accepted")
    def _():
        pts = [v1.Location(person_id=15, latitude=1, longitude=i / 100) for i in range(10)]
        try:
            r = dlocs.RecordLocations(iter(pts), timeout=60)
            return False, "answered OK: %r" % r
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())

    @test("broker down: original updateLocation -> UNAVAILABLE")
    def _():
        code, det = rpc_error(dlegacy.updateLocation, orig.Location(personId=16, latitude=1, longitude=1), timeout=60)
        return code == grpc.StatusCode.UNAVAILABLE, (code, det)

    broker.up()

    @test("broker back: RecordLocation OK again")
    def _():
        m = v1.Location(person_id=17, latitude=1, longitude=1)
        deadline = time.time() + 60
        while True:
            try:
                dlocs.RecordLocation(m, timeout=10)
                accepted.append(m)
                return True
            except grpc.RpcError as e:
                if time.time() > deadline:
                    return False, (e.code(), e.details())
                time.sleep(0.5)

    @test("every point reported accepted is on the topic")
    def _():
        on_topic = [(k, v1.Location.FromString(v)) for k, v in kafka_all(broker.brokers, "locations")]
        missing = [m for m in accepted if (str(m.person_id), m) not in on_topic]
        return not missing and not outage_ok, ("missing: %r, OK during outage: %r" % (missing, outage_ok))

    @test("SIGTERM: an open stream is drained (accepted) and the daemon exits with status 0")
    def _():
        pts = [v1.Location(person_id=18, latitude=1, longitude=i / 100) for i in range(20)]

        def gen():
            for i, p in enumerate(pts):
                if i == 10:
                    # let the server take the call first: a call gRPC core has
                    # received but not yet handed to the daemon is cancelled
                    # by the shutdown, which is not what this test is about
                    time.sleep(0.5)
                    daemon.p.send_signal(signal.SIGTERM)
                    time.sleep(0.5)
                yield p
        r = dlocs.RecordLocations(gen(), timeout=60)
        rc = daemon.p.wait(timeout=60)
        log = open(daemon.log).read()
        return r.accepted == 20 and rc == 0 and "stopped" in log, (r, rc, log[-2000:])

    @test("SIGTERM: new calls after shutdown fail with UNAVAILABLE")
    def _():
        code, det = rpc_error(dlocs.RecordLocation, v1.Location(person_id=19, latitude=1, longitude=1), timeout=5)
        return code == grpc.StatusCode.UNAVAILABLE, (code, det)
finally:
    if daemon:
        daemon.stop()
    if broker:
        broker.stop()

# ---------------------------------------------------------------- limits: a full producer queue, open streams, unread calls
# The new limits are set through their environment variables, which older
# daemons ignore: the same tests then show what those did.

ONE_BAD = v1.Location(person_id=0, latitude=1, longitude=1)


def code_counts(futs):
    out = {}
    for f in futs:
        if f.done():
            e = f.exception()
            c = e.code() if e is not None else grpc.StatusCode.OK
            out[c] = out.get(c, 0) + 1
    return out


stuck = None
try:
    # no broker at all (nothing listens on port 1) and room for 100 messages
    stuck = Daemon("stuck-grpcd", "127.0.0.1:1", "-X", "queue.buffering.max.messages=100",
                   "--kafka-timeout-ms", "30000")
    sch = channel(stuck.addr)
    slocs = svc_grpc.LocationServiceStub(sch)
    shealth = health_pb2_grpc.HealthStub(sch)
    yielded = [0]

    def big_stream():
        for i in range(5000):
            yielded[0] = i + 1
            yield v1.Location(person_id=20, latitude=1, longitude=i / 1000.0)

    sfut = slocs.RecordLocations.future(big_stream(), timeout=8)
    for _ in range(100):            # the queue is full after 100 points
        if yielded[0] >= 1000:
            break
        time.sleep(0.1)

    @test("broker unreachable, producer queue full under a large stream: health checks are still answered")
    def _():
        # the only worker thread used to block in rd_kafka_producev
        # (RD_KAFKA_MSG_F_BLOCK) until the queued messages timed out
        out = []
        for _ in range(3):
            try:
                out.append(shealth.Check(health_pb2.HealthCheckRequest(), timeout=5).status)
            except grpc.RpcError as e:
                out.append(e.code())
            time.sleep(0.3)
        return out == [S.SERVING] * 3, out

    @test("broker unreachable, queue full: a unary call is answered UNAVAILABLE (not the client's DEADLINE_EXCEEDED)")
    def _():
        code, det = rpc_error(slocs.RecordLocation, v1.Location(person_id=21, latitude=1, longitude=1), timeout=3)
        return code == grpc.StatusCode.UNAVAILABLE, (code, det)

    @test("broker unreachable, queue full: the stream gets UNAVAILABLE/RESOURCE_EXHAUSTED saying it was cut at index 100")
    def _():
        try:
            r = sfut.result(timeout=60)
            return False, "answered OK: %r" % r
        except grpc.RpcError as e:
            return (e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
                    and "cut at index 100" in e.details()), (e.code(), e.details())
finally:
    if stuck:
        stuck.kill()

streamd = None
try:
    streamd = Daemon("streams-grpcd", "127.0.0.1:1", env={"UDACONNECT_GRPC_MAX_STREAMS": "40"})
    dch = channel(streamd.addr)
    dlocs = svc_grpc.LocationServiceStub(dch)
    release = threading.Event()

    def bad_then_wait():
        for _ in range(1000):
            yield ONE_BAD
        release.wait(60)

    @test("200 open streams with 1000 rejections each: 40 admitted (--max-streams), 160 RESOURCE_EXHAUSTED, RSS +<20 MB")
    def _():
        # each stream used to keep 1000 x 260 bytes of rejections: +52 MB here
        dlocs.RecordLocations(iter([ONE_BAD] * 1005), timeout=60)     # warm-up
        before = streamd.rss_kb()
        futs = [dlocs.RecordLocations.future(bad_then_wait(), timeout=120) for _ in range(200)]
        after = streamd.rss_settled_kb(lambda: sum(f.done() for f in futs) >= 160)
        codes = code_counts(futs)
        release.set()
        results = []
        for f in futs:
            try:
                results.append(f.result(timeout=60))
            except grpc.RpcError:
                pass
        listed = all(r.rejected == 1000 and [x.index for x in r.rejections] == list(range(1000)) for r in results)
        grown_mb = (after - before) / 1024.0
        print("# streams: RSS %d -> %d kB (+%.1f MB)" % (before, after, grown_mb))
        return (grown_mb < 20 and codes == {grpc.StatusCode.RESOURCE_EXHAUSTED: 160} and len(results) == 40
                and listed), "RSS %d -> %d kB (+%.1f MB); while open: %r; answered OK: %d, all listed: %s" % (
                    before, after, grown_mb, codes, len(results), listed)

    @test("after those streams ended, a new stream is admitted again")
    def _():
        r = dlocs.RecordLocations(iter([ONE_BAD] * 3), timeout=30)
        return r.rejected == 3, r
finally:
    if streamd:
        streamd.stop()

idled = None
try:
    idled = Daemon("idle-grpcd", "127.0.0.1:1", env={"UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT": "2"})
    ich = channel(idled.addr)
    ilocs = svc_grpc.LocationServiceStub(ich)

    @test("a stream without a deadline that stops sending is ended after --stream-idle-timeout")
    def _():
        stop = threading.Event()

        def three_then_wait():
            for _ in range(3):
                yield ONE_BAD
            stop.wait(60)
        f = ilocs.RecordLocations.future(three_then_wait())
        try:
            r = f.result(timeout=30)            # bounded wait: it used to stay open
            return False, "answered OK: %r" % r
        except grpc.RpcError as e:
            return (e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "--stream-idle-timeout" in e.details()
                    and "3 messages" in e.details()), (e.code(), e.details())
        except Exception as e:
            f.cancel()
            return False, "no answer within 30 s: %r" % e
        finally:
            stop.set()
finally:
    if idled:
        idled.stop()

findd = None
try:
    findd = Daemon("find-grpcd", BROKERS, "--database-url", DBURL, env={"UDACONNECT_GRPC_MAX_FIND_CALLS": "30"})
    fch = channel(findd.addr)
    fconns = svc_grpc.ConnectionServiceStub(fch)
    BIG = svc.FindConnectionsRequest(person_id=BIG_PID, start_date="2021-06-01", end_date="2021-06-01")

    @test("40 unread FindConnections calls of 12000 rows: 30 in flight (--max-find-calls), 10 RESOURCE_EXHAUSTED, RSS +<20 MB")
    def _():
        # each call used to hold its whole result (12000 rows): about +80 MB here
        warm = list(fconns.FindConnections(BIG, timeout=60))
        before = findd.rss_kb()
        calls = [fconns.FindConnections(BIG, timeout=120) for _ in range(40)]
        for c in calls:
            c.initial_metadata()        # the first row was sent, or the call ended
        after = findd.rss_settled_kb()
        refused = sum(1 for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
        for c in calls:
            c.cancel()
        grown_mb = (after - before) / 1024.0
        print("# FindConnections: RSS %d -> %d kB (+%.1f MB)" % (before, after, grown_mb))
        return (len(warm) == BIG_ROWS and grown_mb < 20 and refused == 10), \
            "RSS %d -> %d kB (+%.1f MB); RESOURCE_EXHAUSTED: %d" % (before, after, grown_mb, refused)

    @test("after the unread calls were cancelled, FindConnections streams the whole result again")
    def _():
        for _ in range(100):                # bounded: the cancellations are processed asynchronously
            try:
                got = grpc_rows(fconns.FindConnections(BIG, timeout=60))
                return got == sql_connections(BIG_PID, "2021-06-01", "2021-06-01", 5.0), len(got)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return False, (e.code(), e.details())
                time.sleep(0.1)
        return False, "still RESOURCE_EXHAUSTED"

    @test("FindConnections daemon with open cursors cancelled: SIGTERM exits with status 0")
    def _():
        rc = findd.stop()
        return rc == 0, rc
finally:
    if findd:
        findd.kill()

# ---------------------------------------------------------------- FindConnections: whose time limit


class TableLocked:
    """udaconnect.location locked ACCESS EXCLUSIVE (at most 20 s): every query on it waits"""

    def __enter__(self):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-c", "BEGIN; LOCK TABLE udaconnect.location IN ACCESS "
                                   "EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT"],
                                  env=dict(os.environ, PGAPPNAME="udaconnect-test-locker"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if psql("SELECT count(*) FROM pg_locks WHERE relation = 'udaconnect.location'::regclass"
                    " AND mode = 'AccessExclusiveLock' AND granted").strip() == "1":
                break
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE application_name = 'udaconnect-test-locker'")
        self.p.wait(timeout=30)


stmtd = None
try:
    # the server's own limit, short: --statement-timeout-ms 1500
    stmtd = Daemon("stmt-grpcd", BROKERS, "--database-url", DBURL, "--statement-timeout-ms", "1500",
                   "--log-level", "debug")
    tconns = svc_grpc.ConnectionServiceStub(channel(stmtd.addr))
    P1 = svc.FindConnectionsRequest(person_id=1, start_date="2020-01-01", end_date="2020-12-31")

    @test("FindConnections without a deadline, the server's statement timeout reached -> UNAVAILABLE saying so")
    def _():
        # it used to be DEADLINE_EXCEEDED, though the client had set no deadline
        with TableLocked():
            code, det = rpc_error(lambda: list(tconns.FindConnections(P1)))
        return code == grpc.StatusCode.UNAVAILABLE and "statement timeout (1500 ms)" in det, (code, det)

    @test("FindConnections with a deadline before the server's timeout -> DEADLINE_EXCEEDED (the server's status too)")
    def _():
        with TableLocked():
            code, det = rpc_error(lambda: list(tconns.FindConnections(P1, timeout=0.8)))
        # the client reports its own deadline either way: the daemon's log says what it answered
        pat = re.compile(r"FindConnections -> status (\d+): (.*)")
        logged = None
        for _ in range(100):
            logged = [m.groups() for m in pat.finditer(open(stmtd.log).read())]
            if len(logged) >= 2:
                break
            time.sleep(0.1)
        return (code == grpc.StatusCode.DEADLINE_EXCEEDED and logged is not None and len(logged) == 2
                and logged[1][0] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])), (code, det, logged)
finally:
    if stmtd:
        stmtd.stop()

# ---------------------------------------------------------------- FindConnections: the database down

nodbd = None
try:
    # nothing listens on port 1: every connect fails at once; one db thread
    nodbd = Daemon("nodb-grpcd", BROKERS, "--db-threads", "1",
                   "--database-url", "host=127.0.0.1 port=1 dbname=nothing connect_timeout=5")
    nch = channel(nodbd.addr)
    nconns = svc_grpc.ConnectionServiceStub(nch)
    nhealth = health_pb2_grpc.HealthStub(nch)

    @test("database down: 20 FindConnections calls all UNAVAILABLE, at most 2 connect attempts (back-off), health SERVING")
    def _():
        # every call used to try a fresh connect (up to connect_timeout each) on a db thread
        futs = [nconns.FindConnections(svc.FindConnectionsRequest(
            person_id=1, start_date="2020-01-01", end_date="2020-12-31"), timeout=30) for _ in range(20)]
        res = [rpc_error(lambda: list(f)) for f in futs]
        codes = set(r[0] for r in res)
        fast = sum(1 for r in res if "retry later" in r[1])
        attempts = open(nodbd.log).read().count("cannot connect to the database")
        st = nhealth.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        return (codes == {grpc.StatusCode.UNAVAILABLE} and attempts <= 2 and fast >= 18 and st == S.SERVING), \
            (codes, "connect attempts: %d, failed fast: %d" % (attempts, fast), st, res[:2])
finally:
    if nodbd:
        nodbd.stop()

# ---------------------------------------------------------------- authentication and the privacy rules
# Tokens are minted here with PyJWT from the stack's key file.  With
# UDACONNECT_AUTH on (the stack's default) the stack's daemon is the one under
# test; otherwise a private daemon with authentication on.


def wait_count(q, want, tries=600):
    """The first line of q once it equals want (bounded wait: 60 s), else its last value."""
    got = None
    for _ in range(tries):
        try:
            got = psql(q).strip()
        except subprocess.CalledProcessError:
            time.sleep(0.1)
            continue
        if got == want:
            break
        time.sleep(0.1)
    return got


def point_rows(pid, pts):
    """How many rows of person pid in udaconnect.location are one of pts (v1.Location)."""
    conds = " OR ".join(
        "(creation_time = to_timestamp(%d) AND abs(ST_Y(coordinate) - %r) < 1e-9 AND abs(ST_X(coordinate) - %r) < 1e-9)"
        % (m.creation_time.seconds, m.latitude, m.longitude) for m in pts)
    return "SELECT count(*) FROM udaconnect.location WHERE person_id = %d AND (%s)" % (pid, conds)


def on_topic(pts):
    """Those of pts (v1.Location) that are on the stack's topic, whatever their key."""
    values = {v for _, v in kafka_all(BROKERS, TOPIC)}
    return [m for m in pts if m.SerializeToString() in values]


ATT, OTHER = [int(x) for x in psql("SELECT id FROM udaconnect.person WHERE id IN (1, 5) ORDER BY id").split()]
# recent enough for an attendee (--attendee-max-report-age, 1 h by default)
AUTH_T = int(time.time()) - 900
OLD_T = int(time.time()) - 7200     # 2 h old: too old for an attendee, not for an organizer
auth_pts = iter(range(1, 1000))


def auth_point(pid):
    """A point of its own place and time, to be found again in the database."""
    k = next(auth_pts)
    return v1.Location(person_id=pid, latitude=43.5 + k / 1000.0, longitude=1.25 + k / 1000.0,
                       creation_time=ts(AUTH_T + k))


authd = offd = None
try:
    if not AUTH_ON:
        authd = Daemon("auth-grpcd", BROKERS, "--database-url", DBURL, env={"UDACONNECT_AUTH": "on"})
    AUTH_ADDR = authd.addr if authd else ADDR
    bare = grpc.insecure_channel(AUTH_ADDR)
    b_locs = svc_grpc.LocationServiceStub(bare)
    b_conns = svc_grpc.ConnectionServiceStub(bare)
    b_legacy = orig_grpc.LocationServiceStub(bare)
    b_health = health_pb2_grpc.HealthStub(bare)
    ATT_MD = bearer(token("attendee", str(ATT)))
    ORG_MD = bearer(ORGANIZER)

    @test("auth: Health Check answers SERVING without a token")
    def _():
        return b_health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == S.SERVING

    NO_TOKEN = [
        ("RecordLocation", lambda md: b_locs.RecordLocation(v1.Location(person_id=ATT, latitude=1, longitude=1),
                                                             timeout=10, metadata=md)),
        ("RecordLocations", lambda md: b_locs.RecordLocations(iter([v1.Location(person_id=ATT, latitude=1, longitude=1)]),
                                                               timeout=10, metadata=md)),
        ("updateLocation", lambda md: b_legacy.updateLocation(orig.Location(personId=ATT, latitude=1, longitude=1),
                                                               timeout=10, metadata=md)),
        ("FindConnections", lambda md: list(b_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=ATT, start_date="2020-01-01", end_date="2020-12-31"), timeout=10, metadata=md))),
    ]
    for name, fn in NO_TOKEN:
        @test("auth: %s without a token -> UNAUTHENTICATED saying so" % name)
        def _(fn=fn):
            code, det = rpc_error(fn, [])
            return code == grpc.StatusCode.UNAUTHENTICATED and "no token" in det, (code, det)

    now = int(time.time())
    BAD_TOKENS = [
        ("alg none", bearer(token("organizer", alg="none")), 'alg "none"'),
        ("signed with another key", bearer(token("organizer", key="another-key-of-at-least-32-bytes-0123456789")),
         "signature does not match"),
        ("expired", bearer(token("organizer", exp=now - 10)), "expired"),
        ("nbf in the future", bearer(token("organizer", nbf=now + 3600)), "not valid yet"),
        ("malformed (not a JWT)", bearer("not-a-jwt"), "malformed token"),
        ("malformed (garbage parts)", bearer("a.b.c"), "malformed token"),
        ("without exp", bearer(token("organizer", exp=None)), "no exp"),
        ("without sub", bearer(token("organizer", sub=None)), "no sub"),
        ("without role", bearer(token(None)), "no role"),
        ("unknown role 'admin'", bearer(token("admin")), 'role "admin" is neither'),
        ("attendee sub not a person id", bearer(token("attendee", "alice")), "person id"),
        ("another scheme (Basic)", [("authorization", "Basic dXNlcjpwYXNz")], "Bearer"),
    ]
    for what, md, reason in BAD_TOKENS:
        @test("auth: token %s -> UNAUTHENTICATED with the reason (%s)" % (what, reason))
        def _(md=md, reason=reason):
            code, det = rpc_error(b_locs.RecordLocation, v1.Location(person_id=ATT, latitude=1, longitude=1),
                                  timeout=10, metadata=md)
            return code == grpc.StatusCode.UNAUTHENTICATED and reason in det, (code, det)

    @test("auth: an expired token on every other method -> UNAUTHENTICATED with the reason")
    def _():
        out = []
        for name, fn in NO_TOKEN:
            code, det = rpc_error(fn, bearer(token("organizer", exp=now - 10)))
            if code != grpc.StatusCode.UNAUTHENTICATED or "expired" not in det:
                out.append((name, code, det))
        return not out, out

    att_ok = []

    @test("auth: an attendee records a location for themself (RecordLocation OK)")
    def _():
        m = auth_point(ATT)
        r = b_locs.RecordLocation(m, timeout=30, metadata=ATT_MD)
        att_ok.append(m)
        return r.offset >= 0, r

    @test("auth: an attendee records for another person -> PERMISSION_DENIED naming both ids, nothing produced")
    def _():
        m = auth_point(OTHER)
        code, det = rpc_error(b_locs.RecordLocation, m, timeout=10, metadata=ATT_MD)
        return (code == grpc.StatusCode.PERMISSION_DENIED
                and "attendee %d may not report locations for person %d" % (ATT, OTHER) in det
                and not on_topic([m])), (code, det)

    @test("auth: original updateLocation: an attendee for themself OK, for another -> PERMISSION_DENIED")
    def _():
        k = next(auth_pts)
        mine = orig.Location(personId=ATT, latitude=45, longitude=2, createdTime=ts(AUTH_T + k))
        r = b_legacy.updateLocation(mine, timeout=30, metadata=ATT_MD)
        att_ok.append(v1.Location(person_id=ATT, latitude=45, longitude=2, creation_time=ts(AUTH_T + k)))
        code, det = rpc_error(b_legacy.updateLocation, orig.Location(personId=OTHER, latitude=45, longitude=3),
                              timeout=10, metadata=ATT_MD)
        return (r.currentState == "Received" and code == grpc.StatusCode.PERMISSION_DENIED
                and "attendee %d may not report locations for person %d" % (ATT, OTHER) in det), (r, code, det)

    def old_point(pid):
        m = auth_point(pid)
        m.creation_time.CopyFrom(ts(OLD_T + m.creation_time.seconds - AUTH_T))
        return m

    AGE_REASON = "an attendee may report a location at most 3600 s old"
    foreign = []

    @test("auth: an attendee's own point 2 h old -> PERMISSION_DENIED naming the limit and both times, nothing produced")
    def _():
        m = old_point(ATT)
        code, det = rpc_error(b_locs.RecordLocation, m, timeout=10, metadata=ATT_MD)
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(m.creation_time.seconds))
        foreign.append(m)
        return (code == grpc.StatusCode.PERMISSION_DENIED and AGE_REASON in det
                and "creation_time %s is before " % when in det and not on_topic([m])), (code, det)

    @test("auth: original updateLocation: an attendee's own point 2 h old -> PERMISSION_DENIED naming the limit")
    def _():
        m = old_point(ATT)
        # the original proto's degrees are integers: a place of its own
        code, det = rpc_error(b_legacy.updateLocation, orig.Location(
            personId=ATT, latitude=44, longitude=3, createdTime=m.creation_time),
            timeout=10, metadata=ATT_MD)
        foreign.append(v1.Location(person_id=ATT, latitude=44, longitude=3, creation_time=m.creation_time))
        return code == grpc.StatusCode.PERMISSION_DENIED and AGE_REASON in det, (code, det)

    @test("auth: in an attendee's stream a 2 h old point is rejected with the reason; fresh ones and one "
          "without creation_time accepted")
    def _():
        pts = [auth_point(ATT), old_point(ATT), auth_point(ATT), v1.Location(person_id=ATT, latitude=43.4, longitude=1.2)]
        r = b_locs.RecordLocations(iter(pts), timeout=60, metadata=ATT_MD)
        att_ok.extend([pts[0], pts[2]])
        foreign.append(pts[1])
        rej = [(x.index, x.reason) for x in r.rejections]
        return (r.accepted == 3 and r.rejected == 1 and len(rej) == 1 and rej[0][0] == 1
                and AGE_REASON in rej[0][1]), r

    @test("auth: an organizer's point 2 h old, for an attendee, is accepted (RecordLocation OK)")
    def _():
        m = old_point(ATT)
        r = b_locs.RecordLocation(m, timeout=30, metadata=ORG_MD)
        att_ok.append(m)
        return r.offset >= 0, r

    @test("auth: in an attendee's stream the other person's point is rejected with the reason, the others accepted")
    def _():
        pts = [auth_point(ATT), auth_point(OTHER), auth_point(ATT), auth_point(ATT)]
        r = b_locs.RecordLocations(iter(pts), timeout=60, metadata=ATT_MD)
        att_ok.extend([pts[0], pts[2], pts[3]])
        foreign.append(pts[1])
        rej = [(x.index, x.reason) for x in r.rejections]
        return (r.accepted == 3 and r.rejected == 1 and len(rej) == 1 and rej[0][0] == 1
                and "attendee %d may not report locations for person %d" % (ATT, OTHER) in rej[0][1]), r

    @test("auth: an organizer records for any person (RecordLocation OK)")
    def _():
        m = auth_point(OTHER)
        r = b_locs.RecordLocation(m, timeout=30, metadata=ORG_MD)
        return r.offset >= 0, r

    @test("auth: the attendee's accepted points reach udaconnect.location once each, the rejected one nowhere")
    def _():
        got = wait_count(point_rows(ATT, att_ok), str(len(att_ok)))
        # the rejected point was never produced: it cannot reach the database
        return got == str(len(att_ok)) and not on_topic(foreign), \
            "rows %r of %d; rejected point on the topic: %r" % (got, len(att_ok), on_topic(foreign))

    @test("auth: FindConnections: an attendee for themself (no window: attendee_max_window, 300 s) "
          "streams the rows of find_connections with that window")
    def _():
        want = sql_connections(ATT, "2020-01-01", "2020-12-31", 5.0, 300)
        got = grpc_rows(b_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=ATT, start_date="2020-01-01", end_date="2020-12-31"), timeout=30, metadata=ATT_MD))
        return len(want) > 0 and got == want, (len(want), len(got))

    @test("auth: FindConnections: an attendee for another person -> PERMISSION_DENIED with the database's message")
    def _():
        code, det = rpc_error(lambda: list(b_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=OTHER, start_date="2020-01-01", end_date="2020-12-31"), timeout=30, metadata=ATT_MD)))
        return (code == grpc.StatusCode.PERMISSION_DENIED
                and "attendee %d may not search the connections of person %d" % (ATT, OTHER) in det), (code, det)

    @test("auth: FindConnections: an attendee wider than 10 m -> PERMISSION_DENIED with the database's message")
    def _():
        code, det = rpc_error(lambda: list(b_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=ATT, start_date="2020-01-01", end_date="2020-12-31", meters=11), timeout=30, metadata=ATT_MD)))
        return code == grpc.StatusCode.PERMISSION_DENIED and "at most 10 m" in det, (code, det)

    @test("auth: FindConnections: an organizer for any person, any width")
    def _():
        want = sql_connections(OTHER, "2020-01-01", "2020-12-31", 1000.0)
        got = grpc_rows(b_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=OTHER, start_date="2020-01-01", end_date="2020-12-31", meters=1000), timeout=30,
            metadata=ORG_MD))
        return len(want) > 0 and got == want, (len(want), len(got))

    # UDACONNECT_AUTH=off: the original's open API; every caller is an organizer
    offd = Daemon("noauth-grpcd", BROKERS, "--database-url", DBURL, env={"UDACONNECT_AUTH": "off"})
    och = grpc.insecure_channel(offd.addr)
    o_locs = svc_grpc.LocationServiceStub(och)
    o_conns = svc_grpc.ConnectionServiceStub(och)
    o_legacy = orig_grpc.LocationServiceStub(och)
    off_pts = []

    @test("auth off: RecordLocation, RecordLocations and updateLocation without a token, for any person: OK")
    def _():
        a, b, c = auth_point(OTHER), auth_point(OTHER), auth_point(ATT)
        r1 = o_locs.RecordLocation(a, timeout=30)
        r2 = o_locs.RecordLocations(iter([b, c]), timeout=30)
        r3 = o_legacy.updateLocation(orig.Location(personId=OTHER, latitude=46, longitude=2), timeout=30)
        off_pts.extend([a, b])
        return r1.offset >= 0 and r2.accepted == 2 and r2.rejected == 0 and r3.currentState == "Received", (r1, r2, r3)

    @test("auth off: an attendee's token is not looked at: the caller is still an organizer")
    def _():
        m = auth_point(OTHER)
        r = o_locs.RecordLocation(m, timeout=30, metadata=ATT_MD)
        off_pts.append(m)
        return r.offset >= 0, r

    @test("auth off: the points reach udaconnect.location")
    def _():
        got = wait_count(point_rows(OTHER, off_pts), str(len(off_pts)))
        return got == str(len(off_pts)), (got, len(off_pts))

    @test("auth off: FindConnections without a token, any person, any width: the rows of find_connections")
    def _():
        want = sql_connections(OTHER, "2020-01-01", "2020-12-31", 1000.0)
        got = grpc_rows(o_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=OTHER, start_date="2020-01-01", end_date="2020-12-31", meters=1000), timeout=30))
        return len(want) > 0 and got == want, (len(want), len(got))
finally:
    if authd:
        authd.stop()
    if offd:
        offd.stop()

# ---------------------------------------------------------------- TLS (UDACONNECT_TLS_CERT_FILE / _KEY_FILE)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


def self_signed(name, cn="localhost"):
    """A self-signed EC certificate for localhost and 127.0.0.1: (cert path, key path)."""
    crt, key = (os.path.join(SUITE_DIR, name + ext) for ext in (".crt", ".key"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1",
            "-keyout", key, "-out", crt)
    return crt, key


def signed_by(name, ca_crt, ca_key, cn, ext):
    """An EC certificate signed by ca: (cert path, key path); ext: its x509v3 extensions."""
    crt, key, csr, extf = (os.path.join(SUITE_DIR, name + e) for e in (".crt", ".key", ".csr", ".ext"))
    with open(extf, "w") as f:
        f.write(ext + "\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=" + cn, "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", "1", "-days", "1",
            "-extfile", extf, "-out", crt)
    return crt, key


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def refused(env=None, args=()):
    """Start a daemon that must refuse: (exit status, stderr)."""
    e = dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1")
    for k in ("UDACONNECT_TLS_CERT_FILE", "UDACONNECT_TLS_KEY_FILE"):
        e.pop(k, None)
    e.update(env or {})
    r = subprocess.run([GRPCD, "--port", "0"] + list(args), capture_output=True, text=True, timeout=30, env=e)
    return r.returncode, r.stderr


TLS_CRT, TLS_KEY = self_signed("tls-server")
OTHER_CRT, OTHER_KEY = self_signed("tls-other")
# a chain: root -> intermediate -> leaf; the daemon's file holds leaf + intermediate,
# the client trusts the root only, so it verifies only if the daemon sends the chain
ROOT_CRT, ROOT_KEY = self_signed("tls-root", cn="udaconnect test root")
INT_CRT, INT_KEY = signed_by("tls-int", ROOT_CRT, ROOT_KEY, "udaconnect test intermediate",
                             "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign")
LEAF_CRT, LEAF_KEY = signed_by("tls-leaf", INT_CRT, INT_KEY, "localhost",
                               "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
CHAIN_CRT = os.path.join(SUITE_DIR, "tls-chain.crt")
with open(CHAIN_CRT, "wb") as f:
    f.write(read_bytes(LEAF_CRT) + read_bytes(INT_CRT))


def secure(addr, root):
    return grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates=read_bytes(root)))


tlsd = chaind = None
try:
    tlsd = Daemon("tls-grpcd", BROKERS, "--database-url", DBURL,
                  env={"UDACONNECT_AUTH": "on", "UDACONNECT_TLS_CERT_FILE": TLS_CRT,
                       "UDACONNECT_TLS_KEY_FILE": TLS_KEY})
    sch = secure(tlsd.addr, TLS_CRT)
    s_locs = svc_grpc.LocationServiceStub(sch)
    s_conns = svc_grpc.ConnectionServiceStub(sch)
    s_health = health_pb2_grpc.HealthStub(sch)
    TLS_ORG_MD = bearer(token(sub="tls-test"))

    @test("TLS: the log says the port serves TLS; a daemon without the settings says plaintext")
    def _():
        tls_log = open(tlsd.log).read()
        plain_log = open(offd.log).read() if offd else ""
        return (re.search(r"listening on 127\.0\.0\.1:%d \(TLS" % tlsd.port, tls_log) is not None
                and "plaintext" not in tls_log
                and "plaintext: terminate TLS in front of it" in plain_log
                and re.search(r"listening on 127\.0\.0\.1:%d \(plaintext" % offd.port, plain_log) is not None), \
            (tls_log, plain_log)

    @test("TLS: a secure channel trusting the certificate: health check SERVING")
    def _():
        return s_health.Check(health_pb2.HealthCheckRequest(), timeout=30).status == S.SERVING

    tls_pts = []

    @test("TLS: an organizer records a location over TLS, and it reaches udaconnect.location")
    def _():
        m = auth_point(OTHER)
        r = s_locs.RecordLocation(m, timeout=30, metadata=TLS_ORG_MD)
        tls_pts.append(m)
        got = wait_count(point_rows(OTHER, tls_pts), "1")
        return r.offset >= 0 and got == "1", (r, got)

    @test("TLS: FindConnections over TLS: the rows of find_connections")
    def _():
        want = sql_connections(OTHER, "2020-01-01", "2020-12-31", 1000.0)
        got = grpc_rows(s_conns.FindConnections(svc.FindConnectionsRequest(
            person_id=OTHER, start_date="2020-01-01", end_date="2020-12-31", meters=1000), timeout=30,
            metadata=TLS_ORG_MD))
        return len(want) > 0 and got == want, (len(want), len(got))

    @test("TLS: tokens are still required over TLS: no token -> UNAUTHENTICATED")
    def _():
        code, det = rpc_error(s_locs.RecordLocation, auth_point(OTHER), timeout=30)
        return code == grpc.StatusCode.UNAUTHENTICATED and "no token" in det, (code, det)

    @test("TLS: a plaintext channel to the TLS port -> UNAVAILABLE, nothing recorded")
    def _():
        m = auth_point(OTHER)
        pch = grpc.insecure_channel(tlsd.addr)
        c1, d1 = rpc_error(health_pb2_grpc.HealthStub(pch).Check, health_pb2.HealthCheckRequest(), timeout=10)
        c2, d2 = rpc_error(svc_grpc.LocationServiceStub(pch).RecordLocation, m, timeout=10, metadata=TLS_ORG_MD)
        pch.close()
        return c1 == c2 == grpc.StatusCode.UNAVAILABLE and on_topic([m]) == [], (c1, d1, c2, d2)

    @test("TLS: a secure channel trusting another CA -> UNAVAILABLE (the certificate does not verify)")
    def _():
        och2 = secure(tlsd.addr, OTHER_CRT)
        code, det = rpc_error(health_pb2_grpc.HealthStub(och2).Check, health_pb2.HealthCheckRequest(), timeout=10)
        och2.close()
        return code == grpc.StatusCode.UNAVAILABLE, (code, det)

    # flags instead of the environment; a certificate file holding the chain
    chaind = Daemon("tls-chain-grpcd", BROKERS, "--tls-cert", CHAIN_CRT, "--tls-key", LEAF_KEY,
                    env={"UDACONNECT_AUTH": "on"})

    @test("TLS: --tls-cert with leaf + intermediate: a client trusting only the root records a location")
    def _():
        cch = secure(chaind.addr, ROOT_CRT)
        r = svc_grpc.LocationServiceStub(cch).RecordLocation(v1.Location(person_id=OTHER, latitude=1, longitude=1),
                                                              timeout=30, metadata=TLS_ORG_MD)
        cch.close()
        return r.offset >= 0, r
finally:
    if tlsd:
        tlsd.stop()
    if chaind:
        chaind.stop()


@test("TLS: start refused (exit 2, naming the setting) for a certificate without key, or a key without certificate")
def _():
    r1 = refused({"UDACONNECT_TLS_CERT_FILE": TLS_CRT})
    r2 = refused(args=["--tls-key", TLS_KEY])
    return (r1[0] == 2 and "UDACONNECT_TLS_KEY_FILE" in r1[1] and "is not" in r1[1]
            and r2[0] == 2 and "--tls-cert" in r2[1] and "is not" in r2[1]), (r1, r2)


ENC_KEY = os.path.join(SUITE_DIR, "tls-encrypted.key")
openssl("pkey", "-in", TLS_KEY, "-aes256", "-passout", "pass:secret", "-out", ENC_KEY)
TLS_REFUSALS = [
    ("a missing certificate file", os.path.join(SUITE_DIR, "no-such.crt"), TLS_KEY,
     "UDACONNECT_TLS_CERT_FILE", "No such file"),
    ("a missing key file", TLS_CRT, os.path.join(SUITE_DIR, "no-such.key"), "UDACONNECT_TLS_KEY_FILE", "No such file"),
    ("a key that does not match the certificate", TLS_CRT, OTHER_KEY, "UDACONNECT_TLS_KEY_FILE",
     "does not belong to the certificate"),
    ("a certificate file holding a key only", TLS_KEY, TLS_KEY, "UDACONNECT_TLS_CERT_FILE", "no PEM certificate"),
    ("a key file holding a certificate only", TLS_CRT, TLS_CRT, "UDACONNECT_TLS_KEY_FILE", "no PEM private key"),
    ("an encrypted key", TLS_CRT, ENC_KEY, "UDACONNECT_TLS_KEY_FILE", "encrypted"),
]
for what, crt, key, setting, reason in TLS_REFUSALS:
    @test("TLS: start refused for %s: exit 2, naming %s and the problem" % (what, setting))
    def _(crt=crt, key=key, setting=setting, reason=reason):
        rc, err = refused({"UDACONNECT_TLS_CERT_FILE": crt, "UDACONNECT_TLS_KEY_FILE": key})
        return rc == 2 and setting in err and reason in err, (rc, err)


# ---------------------------------------------------------------- configuration errors


@test("bad flag value: exit status 2 with a message naming the flag")
def _():
    r = subprocess.run([GRPCD, "--threads", "0"], capture_output=True, text=True,
                       env=dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1"))
    return r.returncode == 2 and "--threads" in r.stderr, (r.returncode, r.stderr)


@test("bad --stream-linger-ms: exit status 2 with a message naming the flag")
def _():
    r = subprocess.run([GRPCD, "--stream-linger-ms", "-1"], capture_output=True, text=True,
                       env=dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1"))
    return r.returncode == 2 and "--stream-linger-ms" in r.stderr, (r.returncode, r.stderr)


@test("bad --max-streams / UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT: exit status 2 naming the setting")
def _():
    env = dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1")
    r1 = subprocess.run([GRPCD, "--max-streams", "0"], capture_output=True, text=True, env=env)
    r2 = subprocess.run([GRPCD], capture_output=True, text=True,
                        env=dict(env, UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT="soon"))
    return (r1.returncode == 2 and "--max-streams" in r1.stderr and r2.returncode == 2
            and "UDACONNECT_GRPC_STREAM_IDLE_TIMEOUT" in r2.stderr), (r1.returncode, r1.stderr, r2.returncode, r2.stderr)


@test("--attendee-max-report-age / UDACONNECT_ATTENDEE_MAX_REPORT_AGE outside 60..604800: exit status 2 naming it")
def _():
    env = dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1")
    r1 = subprocess.run([GRPCD, "--port", "0", "--attendee-max-report-age", "59"], capture_output=True, text=True,
                        env=env, timeout=30)
    r2 = subprocess.run([GRPCD, "--port", "0"], capture_output=True, text=True, timeout=30,
                        env=dict(env, UDACONNECT_ATTENDEE_MAX_REPORT_AGE="604801"))
    return (r1.returncode == 2 and "--attendee-max-report-age" in r1.stderr and r2.returncode == 2
            and "UDACONNECT_ATTENDEE_MAX_REPORT_AGE" in r2.stderr), (r1.returncode, r1.stderr, r2.returncode, r2.stderr)


@test("no brokers configured: exit status 2 naming UDACONNECT_KAFKA_BROKERS")
def _():
    env = dict(os.environ)
    env.pop("UDACONNECT_KAFKA_BROKERS", None)
    r = subprocess.run([GRPCD], capture_output=True, text=True, env=env)
    return r.returncode == 2 and "UDACONNECT_KAFKA_BROKERS" in r.stderr, (r.returncode, r.stderr)


@test("bad librdkafka setting in --kafka-opt: refused with librdkafka's message")
def _():
    r = subprocess.run([GRPCD, "--port", "0", "-X", "no.such.setting=1"], capture_output=True, text=True,
                       env=dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1"), timeout=30)
    return r.returncode != 0 and "no.such.setting" in r.stderr, (r.returncode, r.stderr)


@test("auth on without a key file: exit status 2 naming UDACONNECT_JWT_KEY_FILE")
def _():
    env = dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1", UDACONNECT_AUTH="on")
    env.pop("UDACONNECT_JWT_KEY_FILE", None)
    r = subprocess.run([GRPCD, "--port", "0"], capture_output=True, text=True, env=env, timeout=30)
    return r.returncode == 2 and "UDACONNECT_JWT_KEY_FILE" in r.stderr, (r.returncode, r.stderr)


@test("auth on with an unusable key file (missing; key under 32 bytes): exit status 2 with the reason")
def _():
    short = os.path.join(SUITE_DIR, "short.key")
    with open(short, "w") as f:
        f.write("too-short\n")
    out = []
    for path, reason in ((os.path.join(SUITE_DIR, "no-such.key"), "no-such.key"), (short, "32")):
        r = subprocess.run([GRPCD, "--port", "0"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1", UDACONNECT_AUTH="on",
                                    UDACONNECT_JWT_KEY_FILE=path))
        if r.returncode != 2 or "UDACONNECT_JWT_KEY_FILE" not in r.stderr or reason not in r.stderr:
            out.append((path, r.returncode, r.stderr))
    return not out, out


@test("UDACONNECT_AUTH neither on nor off: exit status 2 naming it")
def _():
    r = subprocess.run([GRPCD, "--port", "0"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, UDACONNECT_KAFKA_BROKERS="127.0.0.1:1", UDACONNECT_AUTH="yes"))
    return r.returncode == 2 and "UDACONNECT_AUTH" in r.stderr, (r.returncode, r.stderr)


# leave the shared stack as the suites after this one expect it: the
# 12000-row person of the chunked FindConnections test goes again
psql("DELETE FROM udaconnect.location WHERE person_id IN (950000, 950001);"
     " DELETE FROM udaconnect.person WHERE id IN (950000, 950001)")

print("1..%d" % n_tests)
sys.exit(1 if n_failed else 0)
