#!/usr/bin/env python3
"""udaconnect-httpd: the encounters (issue 15) over real HTTP.

REST: GET /api/persons/{id}/encounters (pages walked with X-Next-Cursor,
from/to, who may read whose, each bad parameter a 400 naming it).
Live: GET /api/persons/{id}/encounters/stream as Server-Sent Events, read
by sse_client.py (a raw socket) and by curl: an event after matching
locations are inserted, Last-Event-ID resuming with exactly the missed
events, ?since=0, heartbeats, a burst after idling, who may watch whom,
200 subscribers at once, 200 persons changed by one commit, the stream
cap (503), catching up after the stream connection to the database was
cut, a stream ending with its token, and the memory of 1000 idle
subscribers (printed as a diagnostic line).  The live path by id: NOTIFY
udaconnect_encounter's payload, an encounter changed again before the
gateway read what was announced (the read held at an advisory lock),
resuming after an event read by id, an attendee's stream given only its
own when the announcement names others.  An erased person's streams
(organizer's, curl's, the attendee's own) end with the event erased,
another person's goes on; reopening is 404; a stream opened as the
erasure commits, or watched while the stream connection was down, ends
too.

Encounters are made by inserting locations with SQL (record_location: the
trigger maintains udaconnect.encounter): two persons within 5 m and 60 s.
Each run makes new persons at a place of its own, so runs do not meet.
The stream tests run against a daemon of their own (heartbeat 1 s, limits
raised) on a free port; the REST tests against the stack's.

Prints TAP lines numbered from TAP_START.  Needs the stack's environment
(UDACONNECT_HTTP_URL, UDACONNECT_DATABASE_URL, PG*, UDACONNECT_JWT_KEY_FILE,
TOP, SUITE_DIR).
"""
import contextlib
import json
import os
import re
import socket
import subprocess
import time
import traceback
import urllib.parse
import http.client

import resource
import select
import signal
import threading

import psycopg2

import tokens
from httpd_daemon import start_httpd
from sse_client import Stream
from tap import Tap

U = urllib.parse.urlparse(os.environ["UDACONNECT_HTTP_URL"])
HOST, PORT = U.hostname, U.port
SUITE_DIR = os.environ.get("SUITE_DIR", "/tmp")
ORG = tokens.organizer()

# 1000 streams are 1000 descriptors here too (a login's soft limit is often 1024)
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

tap = Tap()
db = psycopg2.connect("")
db.autocommit = True


def sql(q, args=None):
    with db.cursor() as c:
        c.execute(q, args)
        return c.fetchall() if c.description else None


def check(desc, fn):
    try:
        r = fn()
        tap(r is True, desc, None if r is True else r)
    except Exception:
        tap(False, desc, traceback.format_exc())


def get(path, token=ORG, port=None, headers=None):
    c = http.client.HTTPConnection(HOST, port or PORT, timeout=30)
    h = dict(headers or {})
    if token:
        h.update(tokens.bearer(token))
    c.request("GET", path, headers=h)
    r = c.getresponse()
    b = r.read()
    hs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = ("NOT JSON", b[:200])
    return r.status, hs, j


def error_is(s, j, status, field=None, words=None):
    if s != status:
        return "HTTP %d != %d: %r" % (s, status, j)
    e = (j or {}).get("error") if isinstance(j, dict) else None
    if not isinstance(e, dict) or not e.get("message"):
        return "not an error body: %r" % (j,)
    if field is not None and e.get("field") != field:
        return "field %r != %r: %r" % (e.get("field"), field, e)
    if words and words not in e["message"]:
        return "message lacks %r: %r" % (words, e["message"])
    return True


# ---------------------------------------------------------------------------
# the data: persons A..D, at a place of this run's own
# ---------------------------------------------------------------------------
def person(name):
    return sql("INSERT INTO udaconnect.person (first_name, last_name, company_name) "
               "VALUES (%s, 'Encounter', 'Test') RETURNING id", (name,))[0][0]


A, B, C, D = person("A"), person("B"), person("C"), person("D")
LAT = 20 + (A % 5000) * 0.01
LON = 30.0
T0 = 1772442000          # 2026-03-02 09:00:00 UTC, in the past
DAY = "2026-03-02"


def at(p, t, dlon=0.0):
    sql("SELECT udaconnect.record_location(%s, %s, %s, to_timestamp(%s))", (p, LAT, LON + dlon, t))


def meet(p, q, t, dt=5):
    """p and q about a metre apart, dt seconds apart: one match."""
    at(p, t)
    at(q, t + dt, 0.00001)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


for k in range(7):
    meet(A, B, T0 + 600 * k)
for k in range(3):
    at(C, T0 + 600 * k + 10, 0.00001)
ENC = "/api/persons/%d/encounters" % A
ALL = sql("SELECT id FROM udaconnect.encounter WHERE %s IN (person_a, person_b) ORDER BY started_at, id", (A,))
ALL = [r[0] for r in ALL]


def walk(limit, extra=""):
    """Every page: (ids of each page, cursors, last status)."""
    pages, cursors = [], []
    q = "%s?limit=%d%s" % (ENC, limit, extra)
    for _ in range(50):
        s, h, j = get(q)
        if s != 200:
            return pages, cursors, (s, j)
        pages.append([e["id"] for e in j])
        cur = h.get("x-next-cursor")
        if not cur:
            return pages, cursors, None
        cursors.append((cur, h.get("link")))
        q = "%s?limit=%d&cursor=%s%s" % (ENC, limit, urllib.parse.quote(cur), extra)
    return pages, cursors, "did not end"


def t_all():
    s, h, j = get(ENC)
    if s != 200 or not isinstance(j, list):
        return "HTTP %d %r" % (s, j)
    if len(ALL) != 10:
        return "the data made %d encounters, not 10" % len(ALL)
    ids = [e["id"] for e in j]
    if ids != ALL:
        return "ids %r != %r" % (ids, ALL)
    others = sorted(e["person"]["id"] for e in j)
    if others != sorted([B] * 7 + [C] * 3):
        return "other persons %r" % others
    e = j[0]
    if e["started_at"] != iso(T0).replace("Z", ".000000Z") or e["matches"] != 1:
        return "first encounter %r" % e
    if "x-next-cursor" in h or "link" in h:
        return "a cursor on the only page: %r" % h
    return True


def t_pages(limit):
    def t():
        pages, cursors, err = walk(limit)
        if err:
            return "walk stopped: %r" % (err,)
        flat = [i for p in pages for i in p]
        if flat != ALL:
            return "pages %r != %r" % (pages, ALL)
        if any(len(p) > limit for p in pages) or len(flat) != len(set(flat)):
            return "pages %r" % pages
        if not cursors or "rel=\"next\"" not in (cursors[0][1] or "") or \
                "cursor=" not in cursors[0][1]:
            return "no Link rel=next: %r" % cursors
        return True
    return t


def t_range():
    # [from, to): 09:20+00 given as 11:20+02:00 up to 09:50Z: k = 2, 3, 4 with B, k = 2 with C
    frm = urllib.parse.quote(time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(T0 + 1200 + 7200)))
    s, h, j = get("%s?from=%s&to=%s" % (ENC, frm, iso(T0 + 3000)))
    if s != 200:
        return "HTTP %d %r" % (s, j)
    want = [r[0] for r in sql(
        "SELECT id FROM udaconnect.encounter WHERE %s IN (person_a, person_b) "
        "AND started_at < to_timestamp(%s) AND ended_at >= to_timestamp(%s) ORDER BY started_at, id",
        (A, T0 + 3000, T0 + 1200))]
    got = [e["id"] for e in j]
    if got != want or len(got) != 4:
        return "got %r, want %r (4)" % (got, want)
    s, h, j = get("%s?from=%s&to=%s" % (ENC, DAY, DAY))
    if s != 200 or [e["id"] for e in j] != ALL:
        return "the whole day: HTTP %d %r" % (s, j)
    s, h, j = get("%s?to=2026-03-01" % ENC)
    if s != 200 or j != []:
        return "the day before: HTTP %d %r" % (s, j)
    return True


def t_attendee_self():
    s, h, j = get(ENC, token=tokens.attendee(A))
    return True if s == 200 and [e["id"] for e in j] == ALL else "HTTP %d %r" % (s, j)


def run_rest():
    check("encounters: organizer GET /api/persons/A/encounters -> 200, the 10 encounters "
          "in time order with the other person", t_all)
    check("encounters: limit=3 pages walk every encounter exactly once (X-Next-Cursor, Link)",
          t_pages(3))
    check("encounters: limit=5 pages (the last one full, then an empty one) walk every "
          "encounter exactly once", t_pages(5))
    check("encounters: from (an offset +02:00) / to (Z) select the overlapping ones; "
          "from=to=a day is that whole day", t_range)
    check("encounters: an attendee reads their own -> 200", t_attendee_self)
    check("encounters: an attendee reading another person's -> 403",
          lambda: error_is(*_sj(get(ENC, token=tokens.attendee(B))), 403, words="encounters"))
    check("encounters: an attendee asking for a person that does not exist -> 403",
          lambda: error_is(*_sj(get("/api/persons/2147483647/encounters",
                                    token=tokens.attendee(B))), 403))
    check("encounters: organizer, unknown person -> 404 naming id",
          lambda: error_is(*_sj(get("/api/persons/2147483647/encounters")), 404, "id",
                           "does not exist"))
    check("encounters: no token -> 401",
          lambda: error_is(*_sj(get(ENC, token=None)), 401))
    for q, field, words in [
            ("limit=0", "limit", "limit must be an integer between 1 and 1000"),
            ("limit=1001", "limit", "limit must be an integer between 1 and 1000"),
            ("limit=ten", "limit", "not \"ten\""),
            ("limit=1&limit=2", "limit", "more than once"),
            ("cursor=abc", "cursor", "cursor \"abc\" is not one this API gave"),
            ("cursor=1.2&after=1.2", "cursor", "not both"),
            ("from=2026-02-30", "from", "ISO 8601"),
            ("from=yesterday", "from", "not \"yesterday\""),
            ("to=2026-03-02T25:00:00Z", "to", "ISO 8601"),
            ("from=2026-03-03&to=2026-03-02", "from", "must not be after"),
            ("from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z", "from", "must not be after")]:
        check("encounters: ?%s -> 400 naming %s" % (q, field),
              lambda q=q, field=field, words=words:
              error_is(*_sj(get("%s?%s" % (ENC, q))), 400, field, words))
    check("encounters: /api/persons/x/encounters -> 400 naming id",
          lambda: error_is(*_sj(get("/api/persons/x/encounters")), 400, "id"))


def _sj(r):
    return r[0], r[2]


# ---------------------------------------------------------------------------
# the live stream
# ---------------------------------------------------------------------------
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


procs = []


def daemon(args):
    port = free_port()
    env = dict(os.environ, UDACONNECT_HTTP_DB_USER="udaconnect_api", UDACONNECT_HTTP_THREADS="2")
    p = start_httpd(port, env, os.path.join(SUITE_DIR, "httpd-stream-%d.log" % port), args)
    procs.append(p)
    return port, p


SP = None       # the stream daemon's port
SPROC = None
STREAM = "/api/persons/%d/encounters/stream"
T1 = T0 + 7200  # the stream tests' matches, after the REST ones


def open_stream(person, token=ORG, headers=None, query="", port=None):
    h = dict(headers or {})
    if token:
        h.update(tokens.bearer(token))
    return Stream("127.0.0.1", port or SP, (STREAM % person) + query, h)


def changes_after(person, v, i):
    return ["%d.%d" % (r[0], r[1]) for r in sql(
        "SELECT version, id FROM udaconnect.api_encounter_changes('organizer', NULL, %s, %s, %s, 10000)",
        (person, v, i))]


def enc_of(p, q, t):
    r = sql("SELECT id FROM udaconnect.encounter WHERE person_a = least(%s, %s) AND "
            "person_b = greatest(%s, %s) AND started_at <= to_timestamp(%s) AND "
            "ended_at >= to_timestamp(%s)", (p, q, p, q, t, t))
    return r[0][0] if r else None


state = {}


def t_event():
    s = open_stream(A)
    curl = subprocess.Popen(["curl", "-sN", "--max-time", "60", "-H",
                             "Authorization: Bearer " + ORG,
                             "http://127.0.0.1:%d%s" % (SP, STREAM % A)],
                            stdout=subprocess.PIPE, text=True)
    try:
        if s.status != 200 or not s.headers.get("content-type", "").startswith("text/event-stream"):
            return "HTTP %d %r %r" % (s.status, s.headers, s.json)
        first = s.next()
        if first.get("retry") != 3000:
            return "first item %r" % first
        # curl is connected once its first line is out
        if not curl.stdout.readline().startswith("retry:"):
            return "curl did not get the stream's start"
        meet(A, D, T1)
        e = s.events(1)[0]
        eid = enc_of(A, D, T1)
        if e["event"] != "encounter" or e["data"]["id"] != eid or e["data"]["person"]["id"] != D:
            return "event %r (encounter %r)" % (e, eid)
        v, i = e["id"].split(".")
        if int(i) != eid or int(v) != e["data"]["version"]:
            return "id line %r for %r" % (e["id"], e["data"])
        lines = []
        while True:
            line = curl.stdout.readline()
            if not line:
                return "curl's stream ended: %r" % lines
            lines.append(line.strip())
            if line.startswith("data:"):
                break
        if "id: " + e["id"] not in lines or "event: encounter" not in lines:
            return "curl read %r" % lines
        state["last"] = e["id"]
        state["stream"] = s
        s = None
        return True
    finally:
        curl.kill()
        curl.wait()
        if s:
            s.close()


def t_heartbeat():
    s = state.get("stream") or open_stream(A)
    try:
        seen = s.until(lambda it: it.get("comment") == "heartbeat", timeout=30)
        return True if all("event" not in it for it in seen) else "events before it: %r" % seen
    finally:
        s.close()


def t_resume():
    last = state.get("last")
    if not last:
        return "no event before to resume from"
    # missed while disconnected: two new encounters, then a match between
    # them that merges them (one changed, one removed)
    meet(A, D, T1 + 600)
    meet(A, D, T1 + 1000)
    meet(A, D, T1 + 800)
    v, i = map(int, last.split("."))
    want = changes_after(A, v, i)
    s = open_stream(A, headers={"Last-Event-ID": last})
    try:
        got = s.events(len(want))
        ids = [e["id"] for e in got]
        if ids != want:
            return "got %r, want %r" % (ids, want)
        if "removed" not in [e["event"] for e in got]:
            return "no removed event among %r" % got
        rm = [e for e in got if e["event"] == "removed"][0]["data"]
        if set(rm) != {"id", "merged_into"}:
            return "removed body %r" % rm
        # nothing more (no duplicate): the next item is a heartbeat
        more = s.until(lambda it: it.get("comment") == "heartbeat" or "event" in it)
        if "event" in more[-1]:
            return "an event after the missed ones: %r" % more[-1]
        return True
    finally:
        s.close()


def t_since0():
    want = changes_after(A, 0, 0)
    s = open_stream(A, query="?since=0")
    try:
        got = [e["id"] for e in s.events(len(want))]
        return True if got == want and len(want) >= 11 else "got %r, want %r" % (got, want)
    finally:
        s.close()


def t_burst_after_idle():
    """An idle stream gives the whole pages of its write buffer back to the
    kernel (hub.c, release_pages); events written into them afterwards, many
    pages at once, must arrive whole."""
    g, h = person("G"), person("H")
    n = 60
    s = open_stream(g)
    try:
        s.next()
        # heartbeats: the stream has gone idle (and released) more than once
        s.until(lambda it: it.get("comment") == "heartbeat")
        s.until(lambda it: it.get("comment") == "heartbeat")
        sql("INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
            "SELECT p, ST_SetSRID(ST_MakePoint(%s + d, %s), 4326), to_timestamp(%s + 600 * k + dt) "
            "FROM generate_series(0, %s - 1) k, (VALUES (%s, 0.0, 0), (%s, 0.00001, 5)) v(p, d, dt)",
            (LON, LAT + 0.6, T0, n, g, h))
        want = changes_after(g, 0, 0)
        if len(want) != n:
            return "the data made %d changes, not %d" % (len(want), n)
        got = s.events(n)
        ids = [e["id"] for e in got]
        if ids != want:
            return "got %r, want %r" % (ids, want)
        bad = [e for e in got if e["event"] != "encounter" or e["data"]["person"]["id"] != h
               or "%d.%d" % (e["data"]["version"], e["data"]["id"]) != e["id"]]
        return True if not bad else "%d events not whole, e.g. %r" % (len(bad), bad[0])
    finally:
        s.close()


def t_stream_status(person, token, status, field=None, headers=None, query="", words=None):
    def t():
        s = open_stream(person, token=token, headers=headers, query=query)
        try:
            if status == 200:
                return True if s.status == 200 and s.next().get("retry") else "HTTP %d" % s.status
            if s.chunked:
                return "a stream, not an answer: %r" % s.headers
            return error_is(s.status, s.json, status, field, words)
        finally:
            s.close()
    return t


def t_many(n):
    def t():
        subs = []
        try:
            for k in range(n):
                p, tok = (A, ORG) if k % 2 == 0 else (D, tokens.attendee(D))
                s = open_stream(p, token=tok)
                if s.status != 200:
                    return "subscriber %d: HTTP %d %r" % (k, s.status, s.json)
                s.next()
                subs.append(s)
            meet(D, A, T1 + 3000)
            eid = enc_of(A, D, T1 + 3000)
            bad = []
            for k, s in enumerate(subs):
                e = s.events(1)[0]
                if e["data"]["id"] != eid:
                    bad.append((k, e))
            return True if not bad else "%d of %d got another event: %r" % (len(bad), n, bad[:3])
        finally:
            for s in subs:
                s.close()
    return t


def t_many_persons(n):
    """One commit changes the encounters of 2n watched persons (n pairs): the
    stream thread fetches many persons in one statement (listen.c); each
    stream must get its own person's encounter, once."""
    def t():
        ps = [person("M%d" % k) for k in range(2 * n)]
        subs = []
        try:
            for p in ps:
                s = open_stream(p)
                if s.status != 200:
                    return "person %d: HTTP %d %r" % (p, s.status, s.json)
                s.next()
                subs.append(s)
            # pair k meets at its own spot, 100 m from the next
            sql("INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
                "SELECT CASE WHEN v.b THEN q.b ELSE q.a END, "
                "ST_SetSRID(ST_MakePoint(%s + q.k * 0.001 + CASE WHEN v.b THEN 0.00001 ELSE 0 END, %s), 4326), "
                "to_timestamp(%s + CASE WHEN v.b THEN 5 ELSE 0 END) "
                "FROM unnest(%s::int[], %s::int[]) WITH ORDINALITY q(a, b, k), (VALUES (false), (true)) v(b)",
                (LON, LAT + 0.7, T1, ps[0::2], ps[1::2]))
            bad = []
            for k, s in enumerate(subs):
                me, other = ps[k], ps[k ^ 1]
                e = s.events(1)[0]
                if e["event"] != "encounter" or e["data"]["id"] != enc_of(me, other, T1 + 5) \
                        or e["data"]["person"]["id"] != other:
                    bad.append((me, e))
                more = s.until(lambda it: it.get("comment") == "heartbeat" or "event" in it)
                if "event" in more[-1]:
                    bad.append((me, "a second event %r" % more[-1]))
            return True if not bad else "%d of %d streams wrong: %r" % (len(bad), 2 * n, bad[:3])
        finally:
            for s in subs:
                s.close()
    return t


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_memory(n):
    def t():
        subs = []
        try:
            # warm up: the first streams allocate the daemon's pools
            for _ in range(50):
                s = open_stream(B)
                s.next()
                subs.append(s)
            time.sleep(1.5)
            before = rss_kb(SPROC.pid)
            for k in range(n):
                s = open_stream(B)
                if s.status != 200:
                    return "subscriber %d: HTTP %d %r" % (k, s.status, s.json)
                s.next()
                subs.append(s)
            # a heartbeat round through all of them
            for s in subs[-10:]:
                s.until(lambda it: it.get("comment") == "heartbeat")
            after = rss_kb(SPROC.pid)
            per = (after - before) * 1024.0 / n
            print("# memory: %d idle subscribers: RSS %d kB -> %d kB, %.1f kB per subscriber"
                  % (n, before, after, per / 1024), flush=True)
            # an idle stream gives the zeroed pages of its connection's memory
            # back (hub.c, release_pages): about 6 kB each; 22 kB or more when
            # it does not, or when a per-stream buffer is not freed
            return True if per < 16 * 1024 else "%.0f bytes per subscriber" % per
        finally:
            for s in subs:
                s.close()
    return t


def t_cap():
    port, _ = daemon(["--stream-max", "2", "--stream-heartbeat", "1"])
    subs = []
    try:
        for _ in range(2):
            subs.append(open_stream(A, port=port))
        s = open_stream(A, port=port)
        subs.append(s)
        r = error_is(s.status, s.json, 503, words="--stream-max")
        if r is not True:
            return r
        if not s.headers.get("retry-after"):
            return "no Retry-After: %r" % s.headers
        # a closed stream's slot is free once the daemon sees it closed: at
        # the next heartbeat it writes to it (every second here)
        subs.pop(0).close()
        for _ in range(100):
            s = open_stream(A, port=port)
            subs.append(s)
            if s.status != 503:
                break
            time.sleep(0.2)
        return True if s.status == 200 else "after one left: HTTP %d" % s.status
    finally:
        for s in subs:
            s.close()


def stream_backends():
    return sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'udaconnect-httpd streams'")


@contextlib.contextmanager
def streams_kept_out():
    """The stream connections cut, and kept from coming back until the
    block is over (a connection limit); yields whether they went."""
    sql("ALTER ROLE udaconnect_api CONNECTION LIMIT 0")
    try:
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'udaconnect-httpd streams'")
        for _ in range(100):
            if not stream_backends():
                break
            time.sleep(0.1)
        yield not stream_backends()
    finally:
        sql("ALTER ROLE udaconnect_api CONNECTION LIMIT -1")


def t_reconnect():
    s = open_stream(A)
    try:
        s.next()
        with streams_kept_out():
            meet(A, D, T1 + 5000)
            time.sleep(1.5)  # attempts to reconnect are refused meanwhile
        eid = enc_of(A, D, T1 + 5000)
        e = s.events(1, timeout=60)[0]
        return True if e["data"]["id"] == eid else "event %r, not encounter %r" % (e, eid)
    finally:
        s.close()


def t_expiry():
    tok = tokens.mint({"sub": str(A), "role": "attendee"}, ttl=2)
    s = open_stream(A, token=tok)
    try:
        if s.status != 200:
            return "HTTP %d %r" % (s.status, s.json)
        try:
            s.until(lambda it: False, timeout=60)
        except EOFError:
            return True
        return "the stream went on"
    finally:
        s.close()


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ---------------------------------------------------------------------------
# the live path by id (docs/encounters.md, "Live"): what NOTIFY announces,
# read by primary key while a stream is live
# ---------------------------------------------------------------------------
BY_ID = 'udaconnect_http_stream_fetches_total{kind="by_id"}'
SCANS = 'udaconnect_http_stream_fetches_total{kind="scan"}'
LOCK_KEY = 715517
BY_ID_FN = "udaconnect.api_encounter_changes_by_id(text,integer,integer,bigint[],bigint,bigint,integer)"


class FetchGate:
    """Holds the gateways' live fetches: api_encounter_changes_by_id, replaced
    in place (same oid: prepared statements call it) by itself waiting first
    for an advisory lock this object holds, and VOLATILE meanwhile, so that
    what it reads is what committed while it waited, as a fetch sent that
    late would read; restored on close."""

    def __init__(self):
        self.orig = sql("SELECT pg_get_functiondef(%s::regprocedure)", (BY_ID_FN,))[0][0]
        if "\nBEGIN\n" not in self.orig or " STABLE " not in self.orig:
            raise RuntimeError("unexpected definition: %r" % self.orig[:300])
        self.lk = psycopg2.connect("")
        self.lk.autocommit = True
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        sql(self.orig.replace(" STABLE ", " VOLATILE ", 1).replace(
            "\nBEGIN\n", "\nBEGIN\n    PERFORM pg_advisory_xact_lock_shared(%d);\n" % LOCK_KEY, 1))

    def wait_held(self, app):
        """True once a session of application_name app waits at the gate."""
        for _ in range(600):
            if sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                   "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = %s",
                   (app,))[0][0]:
                return True
            time.sleep(0.05)
        return False

    def open(self):
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def close(self):
        sql(self.orig)
        self.lk.close()


def insert_points(rows):
    """One statement, so one transaction: rows of (person, lat, lon, epoch seconds)."""
    sql("INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
        "SELECT r.p, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), to_timestamp(r.t) "
        "FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::float8[]) r(p, lat, lon, t)",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]))


def no_more_events(s):
    """None when the next item is a heartbeat, else what came."""
    more = s.until(lambda it: it.get("comment") == "heartbeat" or "event" in it)
    return more[-1] if "event" in more[-1] else None


def t_changed_before_fetch():
    """Version v announces a new encounter X of P; before the gateway reads
    it, a later transaction changes X again and an older encounter Z of P
    (a lower id), both at version w > v.  Read by id, X is no longer at v:
    the fetch of v must send nothing, the fetch of w sends Z then X.  (A
    gateway that sent X as it found it, at w, would move the stream past
    (w, Z): Z would never come.)"""
    p, q, r = person("P"), person("Q"), person("R")
    base = T1 + 20000
    meet(p, r, base)                         # Z
    s = open_stream(p)
    gate = None
    try:
        s.next()
        meet(p, q, base + 2000)              # a first event: the stream is live
        pos = s.events(1)[0]["id"]
        gate = FetchGate()
        meet(p, q, base + 4000)              # X, at version v
        x = enc_of(p, q, base + 4000)
        if not gate.wait_held("udaconnect-httpd streams"):
            return "no live fetch of X's version started"
        insert_points([(p, LAT, LON, base + 30), (r, LAT, LON + 0.00001, base + 35),
                       (p, LAT, LON, base + 4030), (q, LAT, LON + 0.00001, base + 4035)])
        z = enc_of(p, r, base)
        gate.open()
        want = changes_after(p, *map(int, pos.split(".")))
        if [w.split(".")[1] for w in want] != [str(z), str(x)] or want[0].split(".")[0] != want[1].split(".")[0]:
            return "the data: changes %r, want Z %d then X %d at one version" % (want, z, x)
        got = s.events(len(want))
        if [e["id"] for e in got] != want:
            return "got %r, want %r" % ([e["id"] for e in got], want)
        m, v = sql("SELECT matches, version FROM udaconnect.encounter WHERE id = %s", (x,))[0]
        if got[1]["data"]["matches"] != m or got[1]["data"]["version"] != v or m < 2:
            return "X as sent: %r; in the table %d matches, version %d" % (got[1]["data"], m, v)
        extra = no_more_events(s)
        return True if extra is None else "an event more: %r" % extra
    finally:
        if gate:
            gate.close()
        s.close()


def t_resume_after_live():
    """An event read by id, the stream closed, changes meanwhile (a merge
    among them), then Last-Event-ID: exactly the missed events, and the next
    live one by id again."""
    p, q = person("S"), person("U")
    base = T1 + 30000
    s = open_stream(p)
    try:
        s.next()
        by_id, scans = metric(SP, BY_ID), metric(SP, SCANS)
        meet(p, q, base)
        last = s.events(1)[0]["id"]
        if metric(SP, BY_ID) <= by_id or metric(SP, SCANS) != scans:
            return "the event was not read by id (by id %s -> %s, scans %s -> %s)" % (
                by_id, metric(SP, BY_ID), scans, metric(SP, SCANS))
    finally:
        s.close()
    meet(p, q, base + 1000)
    meet(p, q, base + 1400)
    meet(p, q, base + 1200)                  # bridges the two: one kept, one removed
    want = changes_after(p, *map(int, last.split(".")))
    s = open_stream(p, headers={"Last-Event-ID": last})
    try:
        got = s.events(len(want))
        if [e["id"] for e in got] != want or "removed" not in [e["event"] for e in got]:
            return "got %r, want %r (a removed among them)" % ([(e["id"], e["event"]) for e in got], want)
        by_id = metric(SP, BY_ID)
        meet(p, q, base + 5000)
        e = s.events(1)[0]
        if e["data"]["id"] != enc_of(p, q, base + 5000) or metric(SP, BY_ID) <= by_id:
            return "the next live event %r (by id %s -> %s)" % (e, by_id, metric(SP, BY_ID))
        extra = no_more_events(s)
        return True if extra is None else "an event more: %r" % extra
    finally:
        s.close()


def notifications(conn, want, timeout=30):
    """The payloads of udaconnect_encounter that came on conn, once `want` is among them
    (or the timeout passed)."""
    got = []
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        select.select([conn], [], [], 0.2)
        conn.poll()
        while conn.notifies:
            got.append(conn.notifies.pop(0).payload)
    return got


def t_attendee_only_own():
    """One commit makes an encounter of the attendee V (with Y) and one of W
    and X elsewhere: the notification names both, with their persons and the
    version; V's stream (an attendee's token) gets V's alone."""
    v, w, x, y = person("V"), person("W"), person("X"), person("Y")
    base = T1 + 40000
    lis = psycopg2.connect("")
    lis.autocommit = True
    with lis.cursor() as c:
        c.execute("LISTEN udaconnect_encounter")
    s = open_stream(v, token=tokens.attendee(v))
    try:
        s.next()
        insert_points([(v, LAT, LON, base), (y, LAT, LON + 0.00001, base + 5),
                       (w, LAT + 0.01, LON, base), (x, LAT + 0.01, LON + 0.00001, base + 5)])
        vy, wx = enc_of(v, y, base), enc_of(w, x, base)
        version = sql("SELECT version FROM udaconnect.encounter WHERE id = %s", (vy,))[0][0]
        want = "v%d.1/1:%s" % (version, ",".join(
            "%d.%d.%d" % r for r in sorted([(vy, min(v, y), max(v, y)), (wx, min(w, x), max(w, x))])))
        got = notifications(lis, want)
        if want not in got:
            return "NOTIFY udaconnect_encounter: %r, want %r among them" % (got, want)
        e = s.events(1)[0]
        if e["data"]["id"] != vy or e["data"]["person"]["id"] != y:
            return "V's stream got %r, not encounter %d" % (e, vy)
        extra = no_more_events(s)
        return True if extra is None else "V's stream got another person's encounter: %r" % extra
    finally:
        s.close()
        lis.close()


# ---------------------------------------------------------------------------
# an erased person's streams end (docs/encounters.md, "Live")
# ---------------------------------------------------------------------------
def forget(p):
    sql("SELECT * FROM udaconnect.forget_person(%s)", (p,))


def ends_erased(s, p, who):
    """True when the next event of s is its last, "erased" naming p (no id
    line: Last-Event-ID stays the last change), and the stream then ends."""
    last = s.events(1)[0]
    if last.get("event") != "erased" or last.get("data") != {"person_id": p} or "id" in last:
        return "%s: the next event is %r, not erased naming %d" % (who, last, p)
    try:
        more = s.next()
    except EOFError:
        return True
    return "%s: the stream went on after erased: %r" % (who, more)


def t_erased_streams():
    """X met Y.  An organizer's stream of X (sse client and curl), X's own
    (an attendee's token) and Y's are open; X is erased: X's streams end
    with the event erased; Y's stays open, gets the removal of its
    encounter with X, then its next encounter."""
    x, y, w = person("X"), person("Y"), person("W")
    base = T1 + 50000
    meet(x, y, base)
    xy = enc_of(x, y, base)
    subs = [open_stream(x), open_stream(x, token=tokens.attendee(x)), open_stream(y)]
    curl = subprocess.Popen(["curl", "-sN", "--max-time", "60", "-H", "Authorization: Bearer " + ORG,
                             "http://127.0.0.1:%d%s" % (SP, STREAM % x)], stdout=subprocess.PIPE, text=True)
    try:
        for s in subs:
            if s.status != 200:
                return "HTTP %d %r" % (s.status, s.json)
            s.next()
        if not curl.stdout.readline().startswith("retry:"):
            return "curl did not get the stream's start"
        forget(x)
        for s, who in zip(subs, ["the organizer's stream of X", "X's own stream"]):
            r = ends_erased(s, x, who)
            if r is not True:
                return r
        out = curl.communicate(timeout=60)[0]
        if curl.returncode != 0 or "event: erased\ndata: {\"person_id\": %d}\n" % x not in out:
            return "curl: exit %d (0: the server ended the stream), read %r" % (curl.returncode, out[-300:])
        e = subs[2].events(1)[0]
        if e["event"] != "removed" or e["data"]["id"] != xy:
            return "Y's stream: %r, not the removal of %d" % (e, xy)
        meet(y, w, base + 1000)
        e = subs[2].events(1)[0]
        if e["event"] != "encounter" or e["data"]["id"] != enc_of(y, w, base + 1000):
            return "Y's stream after the erasure: %r" % (e,)
        return True
    finally:
        curl.kill()
        curl.wait()
        for s in subs:
            s.close()


def t_erased_reopen():
    """Reopening an erased person's stream (as EventSource would, with
    Last-Event-ID) is answered 404 naming the erasure: EventSource stops
    there instead of retrying."""
    x = person("X")
    forget(x)
    for token, headers in [(ORG, None), (ORG, {"Last-Event-ID": "1.1"}), (tokens.attendee(x), None)]:
        s = open_stream(x, token=token, headers=headers)
        try:
            r = error_is(s.status, s.json, 404, "id", "person %d was erased" % x)
        finally:
            s.close()
        if r is not True:
            return "%s%s: %s" % ("an attendee" if token != ORG else "an organizer",
                                 " with Last-Event-ID" if headers else "", r)
    return True


POS_KEY = 715519
POS_FN = "udaconnect.api_encounter_position(text,integer,integer)"
POS_MARK = "    -- no row before the first encounter was written"


class PositionGate:
    """Holds a stream's opening between its check and its subscribing:
    api_encounter_position, replaced in place by itself waiting, once it
    has found the person, for an advisory lock this object holds; restored
    on close."""
    wait_held = FetchGate.wait_held

    def __init__(self):
        self.orig = sql("SELECT pg_get_functiondef(%s::regprocedure)", (POS_FN,))[0][0]
        if POS_MARK not in self.orig:
            raise RuntimeError("unexpected definition: %r" % self.orig[:300])
        self.lk = psycopg2.connect("")
        self.lk.autocommit = True
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_lock(%s)", (POS_KEY,))
        sql(self.orig.replace(POS_MARK, "    PERFORM pg_advisory_xact_lock_shared(%d);\n%s"
                              % (POS_KEY, POS_MARK), 1))

    def open(self):
        with self.lk.cursor() as c:
            c.execute("SELECT pg_advisory_unlock_all()")

    def close(self):
        sql(self.orig)
        self.lk.close()


def t_erased_while_opening():
    """X's stream is being opened: its check found X, then X is erased and
    the daemon hears of it before the subscriber joins; the stream, opened,
    ends erased at once.  "Heard": the stream thread has sent the fetch of
    Y's next change, announced after the erasure (notifications come in
    commit order), and waits at a FetchGate, on the stream thread's own
    connection: that it waits there is what says the erasure was heard,
    before the gate of the check opens."""
    x, y, w = person("X"), person("Y"), person("W")
    base = T1 + 60000
    ys = open_stream(y)
    gate, fgate, opened, th = None, None, [], None
    try:
        ys.next()
        gate = PositionGate()
        fgate = FetchGate()
        th = threading.Thread(target=lambda: opened.append(open_stream(x)))
        th.start()
        held = gate.wait_held("udaconnect-httpd")
        forget(x)
        meet(y, w, base)
        heard = fgate.wait_held("udaconnect-httpd streams")
        gate.open()
        th.join(60)
        fgate.open()
        if not held or not heard or not opened:
            return "held at the gate %r, the erasure heard %r, X's stream %r" % (held, heard, opened)
        e = ys.events(1)[0]
        if e["data"]["id"] != enc_of(y, w, base):
            return "Y's event %r, not encounter %d" % (e, enc_of(y, w, base))
        s = opened[0]
        if s.status != 200:
            return "X's stream: HTTP %d %r (its check came before the erasure)" % (s.status, s.json)
        s.next()
        return ends_erased(s, x, "X's stream opened as X was erased")
    finally:
        if gate:
            gate.close()
        if fgate:
            fgate.close()
        if th:
            th.join(60)
        for s in opened + [ys]:
            s.close()


def post_person(port, name):
    c = http.client.HTTPConnection(HOST, port, timeout=60)
    h = {"Content-Type": "application/json"}
    h.update(tokens.bearer(ORG))
    c.request("POST", "/api/persons", headers=h,
              body=json.dumps({"first_name": name, "last_name": "Held", "company_name": "Test"}))
    r = c.getresponse()
    b = r.read()
    c.close()
    return r.status, json.loads(b) if b else None


def t_held_statement(db_threads):
    """A daemon with ONE worker thread and `db_threads` statement threads.
    A stream's check is held in the database (PositionGate).  Meanwhile the
    worker serves: Y's open stream gets its next event, a pipelined read
    (GET /api/persons/{y}) and /metrics are answered.  A write (POST
    /api/persons) is answered at once when a statement thread is free;
    with only one, it waits in the queue (udaconnect_http_db_queued 1)
    and is answered once the gate opens.  Then the held stream starts.
    Before the statement threads, the held check blocked the worker and
    everything it serves."""
    def f():
        port, _p = daemon(["--threads", "1", "--db-threads", str(db_threads),
                           "--statement-timeout", "60000"])
        x, y, w = person("X"), person("Y"), person("W")
        base = T1 + 70000 + 1000 * db_threads
        ys = open_stream(y, port=port)
        gate, opened, wrote, ths = None, [], [], []
        try:
            ys.next()
            gate = PositionGate()
            ths.append(threading.Thread(target=lambda: opened.append(open_stream(x, port=port))))
            ths[0].start()
            if not gate.wait_held("udaconnect-httpd"):
                return "the stream's check never waited at the gate"
            meet(y, w, base)
            e = ys.events(1)[0]
            if e["data"]["id"] != enc_of(y, w, base):
                return "Y's event %r, not encounter %d" % (e, enc_of(y, w, base))
            s, _h, j = get("/api/persons/%d" % y, port=port)
            if s != 200 or j.get("id") != y:
                return "GET /api/persons/%d while the check is held: %d %r" % (y, s, j)
            ths.append(threading.Thread(target=lambda: wrote.append(post_person(port, "Q"))))
            ths[1].start()
            if db_threads > 1:
                ths[1].join(30)
                if not wrote or wrote[0][0] != 201:
                    return "POST /api/persons with a statement thread free: %r" % (wrote,)
            else:
                queued = None
                for _ in range(200):
                    queued = metric(port, "udaconnect_http_db_queued")
                    if queued == 1:
                        break
                    time.sleep(0.05)
                if queued != 1 or wrote:
                    return "POST /api/persons with the only statement thread held: " \
                        "queued %r, answered %r" % (queued, wrote)
            if opened or not ths[0].is_alive():
                return "the held stream was answered before its gate opened: %r" % opened
            gate.open()
            for t in ths:
                t.join(60)
            if not wrote or wrote[0][0] != 201 or "id" not in (wrote[0][1] or {}):
                return "POST /api/persons after the gate opened: %r" % (wrote,)
            if not opened or opened[0].status != 200:
                return "the held stream after its gate opened: %r" % (
                    opened and (opened[0].status, opened[0].json))
            return metric(port, "udaconnect_http_db_queued") == 0 or "db_queued not back to 0"
        finally:
            if gate:
                gate.close()
            for t in ths:
                t.join(60)
            for s in opened + [ys]:
                s.close()
    return f


def waits_for_lock():
    """True once a session of the daemons (application udaconnect-httpd)
    waits for a lock (within 10 s)."""
    for _ in range(200):
        if sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'udaconnect-httpd' "
               "AND wait_event_type = 'Lock'")[0][0]:
            return True
        time.sleep(0.05)
    return False


def t_pipeline_stalled():
    """One worker thread.  A pipelined read held by a lock (GET /api/places
    while the place table is locked) does not hold the worker's next reads
    behind it: once it has been out 100 ms, GET /api/persons/{id} goes to a
    statement thread and is answered while the first still waits
    (udaconnect_http_db_pipe_stalled_total counts it); the lock gone, the
    held read is answered too."""
    port, _p = daemon(["--threads", "1", "--db-threads", "2", "--statement-timeout", "60000"])
    x = person("X")
    lk = psycopg2.connect("")
    held, th = [], None
    try:
        get("/api/persons/%d" % x, port=port)     # the pipelined connection made
        with lk.cursor() as c:
            c.execute("LOCK TABLE udaconnect.place IN ACCESS EXCLUSIVE MODE")
        th = threading.Thread(target=lambda: held.append(get("/api/places", port=port)))
        th.start()
        if not waits_for_lock():
            return "GET /api/places never waited for the lock"
        time.sleep(0.2)
        s, _h, j = get("/api/persons/%d" % x, port=port)
        if s != 200 or (j or {}).get("id") != x:
            return "GET /api/persons/%d behind the held read: %d %r" % (x, s, j)
        if held or not th.is_alive():
            return "the held read was answered before the lock went: %r" % held
        stalled = metric(port, "udaconnect_http_db_pipe_stalled_total")
        lk.rollback()
        th.join(30)
        if not held or held[0][0] != 200:
            return "GET /api/places after the lock went: %r" % (held,)
        return (stalled or 0) >= 1 or "udaconnect_http_db_pipe_stalled_total %r" % stalled
    finally:
        lk.close()
        if th:
            th.join(30)


def t_stop_answers_waiting():
    """SIGTERM while a write waits in the database (POST /api/persons
    behind a lock on the person table, on a statement thread): the daemon
    answers it once the lock goes, then exits 0; nothing is cut off."""
    port, p = daemon(["--threads", "1", "--db-threads", "1"])
    lk = psycopg2.connect("")
    wrote, th = [], None
    try:
        with lk.cursor() as c:
            c.execute("LOCK TABLE udaconnect.person IN EXCLUSIVE MODE")
        th = threading.Thread(target=lambda: wrote.append(post_person(port, "Stopping")))
        th.start()
        if not waits_for_lock():
            return "the POST never waited for the lock"
        p.send_signal(signal.SIGTERM)
        time.sleep(1)
        if p.poll() is not None:
            return "the daemon exited (%r) while a request waited for the database" % p.returncode
        lk.rollback()
        th.join(30)
        rc = p.wait(30)
        if not wrote or wrote[0][0] != 201:
            return "the waiting POST: %r" % (wrote,)
        return rc == 0 or "exit status %r" % rc
    finally:
        lk.close()
        if th:
            th.join(30)


def t_stop_gives_back():
    """SIGTERM with more writes waiting than the drain allows (one statement
    thread, --statement-timeout 1000, 14 POSTs behind a lock: each times
    out after 1 s, the drain gives up after 11 s): the ones still queued
    are answered 503 server_stopping, not run; every POST is answered
    (503 or 504), none is cut off; the daemon exits 0 (libmicrohttpd
    stopped with no connection suspended); nothing was written."""
    port, p = daemon(["--threads", "1", "--db-threads", "1", "--statement-timeout", "1000"])
    lk = psycopg2.connect("")
    answers, ths = [], []
    before = sql("SELECT count(*) FROM udaconnect.person WHERE first_name = 'GivenBack'")[0][0]
    try:
        with lk.cursor() as c:
            c.execute("LOCK TABLE udaconnect.person IN EXCLUSIVE MODE")

        def one():
            try:
                answers.append(post_person(port, "GivenBack"))
            except Exception as e:       # a connection cut off: the failure looked for
                answers.append(("no answer", repr(e)))
        for _ in range(14):
            ths.append(threading.Thread(target=one))
            ths[-1].start()
        queued = None
        for _ in range(200):
            queued = metric(port, "udaconnect_http_db_queued")
            if queued == 13:
                break
            time.sleep(0.05)
        if queued != 13:
            return "13 POSTs should wait in the queue, not %r" % queued
        p.send_signal(signal.SIGTERM)
        for t in ths:
            t.join(60)
        rc = p.wait(60)
        lk.rollback()
        statuses = sorted(a[0] for a in answers)
        stopping = [a for a in answers if a[0] == 503 and (a[1] or {}).get("error", {}).get(
            "code") == "server_stopping" and "did not run" in a[1]["error"]["message"]]
        after = sql("SELECT count(*) FROM udaconnect.person WHERE first_name = 'GivenBack'")[0][0]
        if len(answers) != 14 or any(st not in (503, 504) for st in statuses):
            return "answers %r" % answers
        if not stopping:
            return "no POST given back unrun (503 server_stopping): %r" % statuses
        if after != before:
            return "%d persons were written" % (after - before)
        return rc == 0 or "exit status %r (statuses %r)" % (rc, statuses)
    finally:
        lk.close()
        for t in ths:
            t.join(30)


def t_erased_while_down():
    """X is erased while the stream connection to the database is cut and
    kept out (the notification is heard by nobody): once it is back, X's
    stream ends erased."""
    x = person("X")
    s = open_stream(x)
    try:
        s.next()
        with streams_kept_out() as gone:
            if not gone:
                return "the stream connections did not go"
            forget(x)
        return ends_erased(s, x, "X's stream")
    finally:
        s.close()


def t_erased_old_extension():
    """Against an extension older than 1.8 (api_persons_gone renamed away,
    as before ALTER EXTENSION ... UPDATE): the stream connection's checks
    fall back to api_person_public (logged once) instead of failing again
    and again, and X's stream still ends erased.  Afterwards the function
    is back and the stream connection remade (it asks the function again)."""
    x = person("X")
    log = os.path.join(SUITE_DIR, "httpd-stream-%d.log" % SP)
    before = open(log).read().count("older than 1.8")
    sql("ALTER FUNCTION udaconnect.api_persons_gone(integer[]) RENAME TO api_persons_gone_hidden")
    s = None
    try:
        s = open_stream(x)
        if s.status != 200:
            return "HTTP %d %r" % (s.status, s.json)
        s.next()
        forget(x)
        r = ends_erased(s, x, "X's stream")
        if r is not True:
            return r
        logged = open(log).read().count("older than 1.8") - before
        return True if logged == 1 else "the fallback was logged %d times, not once" % logged
    finally:
        sql("ALTER FUNCTION udaconnect.api_persons_gone_hidden(integer[]) RENAME TO api_persons_gone")
        listening = open(log).read().count("listening for encounter changes")
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'udaconnect-httpd streams'")
        if s:
            s.close()
        # the next tests need the stream connection listening again
        for _ in range(300):
            if open(log).read().count("listening for encounter changes") > listening:
                break
            time.sleep(0.1)


def t_slow_reader():
    """A client that never reads a long replay: the daemon's queue for it
    stays bounded (--stream-queue 1024) and, when nothing can be written
    for --connection-timeout (2 s), the daemon closes the stream."""
    e, f = person("E"), person("F")
    n = 400
    sql("INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
        "SELECT p, ST_SetSRID(ST_MakePoint(%s + d, %s), 4326), to_timestamp(%s + 600 * k + dt) "
        "FROM generate_series(0, %s - 1) k, (VALUES (%s, 0.0, 0), (%s, 0.00001, 5)) v(p, d, dt)",
        (LON, LAT + 0.5, T0, n, e, f))
    got = sql("SELECT count(*) FROM udaconnect.encounter WHERE person_a = least(%s, %s) "
              "AND person_b = greatest(%s, %s)", (e, f, e, f))[0][0]
    if got != n:
        return "the data made %d encounters, not %d" % (got, n)
    port, _ = daemon(["--connection-timeout", "2", "--stream-queue", "1024"])
    sk = socket.socket()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sk.connect(("127.0.0.1", port))
    try:
        sk.sendall(("GET %s?since=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                    % (STREAM % e, ORG)).encode())
        for _ in range(300):
            if metric(port, "udaconnect_http_streams") == 1:
                break
            time.sleep(0.1)
        else:
            return "the stream did not open"
        # nothing is read: the daemon must give up on it
        for _ in range(600):
            if metric(port, "udaconnect_http_streams") == 0:
                break
            time.sleep(0.1)
        else:
            return "the daemon still holds the stream of a client that reads nothing"
        # what had gone out ends short of the whole replay, then the socket closes
        total = b""
        sk.settimeout(30)
        try:
            while True:
                d = sk.recv(65536)
                if not d:
                    break
                total += d
        except ConnectionResetError:
            pass
        events = total.count(b"\nevent: encounter\n")
        return True if 0 < events < n else "%d of %d events came before the close" % (events, n)
    finally:
        sk.close()


def t_start_id():
    # The stream's first block names where it starts (an id without data);
    # a client that drops before any event and reconnects with it gets
    # what happened meanwhile, nothing missed.
    s = open_stream(B)
    try:
        first = s.next()
        v, i = sql("SELECT version, id FROM udaconnect.api_encounter_position('organizer', NULL, %s)", (B,))[0]
    finally:
        s.close()
    want = "%d.%d" % (v, i)
    if first.get("retry") != 3000 or first.get("id") != want or "event" in first:
        return "first block %r, expected retry 3000 and id %s" % (first, want)
    meet(B, C, T1 + 3600)
    again = open_stream(B, headers={"Last-Event-ID": first["id"]})
    try:
        e = again.events(1)[0]
    finally:
        again.close()
    eid = enc_of(B, C, T1 + 3600)
    return (e["event"] == "encounter" and e["data"]["id"] == eid) or "after reconnecting: %r (encounter %r)" % (e, eid)


def forged_logged(log, want):
    """The counts of the check-all log lines of payloads naming nobody, once
    they add up to want (bounded: 60 s)."""
    counts = []
    for _ in range(600):
        with open(log) as f:
            counts = [int(n) for n in re.findall(
                r'unexpected payload "forged \d+" of udaconnect_person_erased \((\d+) such', f.read())]
        if sum(counts) >= want:
            break
        time.sleep(0.1)
    return counts


def t_forged_erased():
    """NOTIFY udaconnect_person_erased sent by hand ends no stream (any role
    may notify any channel; only a check that finds the person gone does):
    X's id, as the gateways' own role, and 20 payloads naming nobody, in
    one commit, as another role.  X's streams (sse client and curl) stay
    open and get X's next encounter; the 20 are checked and logged at most
    twice (the first at once, the rest together a second later)."""
    x, y = person("X"), person("Y")
    base = T1 + 70000
    s = open_stream(x)
    curl = subprocess.Popen(["curl", "-sN", "--max-time", "90", "-H", "Authorization: Bearer " + ORG,
                             "http://127.0.0.1:%d%s" % (SP, STREAM % x)], stdout=subprocess.PIPE, text=True)
    api = None
    try:
        if s.status != 200:
            return "HTTP %d %r" % (s.status, s.json)
        s.next()
        if not curl.stdout.readline().startswith("retry:"):
            return "curl did not get the stream's start"
        api = psycopg2.connect("user=udaconnect_api")
        api.autocommit = True
        with api.cursor() as c:
            c.execute("SELECT pg_notify('udaconnect_person_erased', %s)", (str(x),))
        sql("SELECT pg_notify('udaconnect_person_erased', 'forged ' || g) FROM generate_series(1, 20) g")
        counts = forged_logged(os.path.join(SUITE_DIR, "httpd-stream-%d.log" % SP), 20)
        meet(x, y, base)
        want = enc_of(x, y, base)
        e = s.events(1)[0]
        if e.get("event") != "encounter" or e["data"]["id"] != want:
            return "X's stream after the forged notifications: %r, not encounter %d" % (e, want)
        ev = None
        for line in curl.stdout:
            if line.startswith("event: "):
                ev = line.strip()
            elif ev and line.startswith("data: "):
                break
        if ev != "event: encounter" or json.loads(line[6:])["id"] != want:
            return "curl after the forged notifications: %r %r, not encounter %d" % (ev, line, want)
        if sum(counts) != 20 or not 1 <= len(counts) <= 2:
            return "the 20 payloads naming nobody were logged as %r (want 1 or 2 lines, 20 in all)" % counts
        return True
    finally:
        if api:
            api.close()
        curl.kill()
        curl.wait()
        s.close()


def run_stream():
    global SP, SPROC
    # The gates (FetchGate, PositionGate) hold a daemon's statement while
    # the test erases and meets persons; on a loaded machine that outlasts
    # the default 5 s statement timeout and the held statement answers 504.
    SP, SPROC = daemon(["--stream-heartbeat", "1", "--max-connections", "3000",
                        "--max-connections-per-ip", "3000", "--statement-timeout", "60000"])
    check("stream: organizer watches A (sse client and curl): 200 text/event-stream, "
          "retry first, then an encounter event when A and D meet (id <version>.<id>)", t_event)
    check("stream: the first block names the start position as an id without data (the committed "
          "clock); reconnecting with it before any event came gets the change made meanwhile", t_start_id)
    check("stream: a heartbeat comment comes on an idle stream", t_heartbeat)
    check("stream: Last-Event-ID resumes with exactly the events missed meanwhile "
          "(two new encounters, then a merge: encounter and removed), nothing twice", t_resume)
    check("stream: ?since=0 replays every change of A's in order", t_since0)
    check("stream: after idling (its buffer's pages given back), a burst of 60 events "
          "(many pages written at once) arrives whole and in order", t_burst_after_idle)
    check("stream: an attendee watches themself -> 200",
          t_stream_status(A, tokens.attendee(A), 200))
    check("stream: an attendee watching another person -> 403 (an answer, not a stream)",
          t_stream_status(A, tokens.attendee(B), 403, words="encounters"))
    check("stream: no token -> 401", t_stream_status(A, None, 401))
    check("stream: organizer, unknown person -> 404 naming id",
          t_stream_status(2147483647, ORG, 404, "id"))
    for bad in ["abc", "1.2.3", "-1.5", "7", ""]:
        check("stream: Last-Event-ID %r -> 400 naming it" % bad,
              t_stream_status(A, ORG, 400, "Last-Event-ID", {"Last-Event-ID": bad},
                              words="Last-Event-ID must be <version>.<id>"))
    check("stream: ?since=yesterday -> 400 naming since",
          t_stream_status(A, ORG, 400, "since", query="?since=yesterday"))
    check("stream: 200 subscribers at once (A as organizer, D as attendee) all get the event",
          t_many(200))
    check("stream: one commit changes 200 watched persons (100 pairs): each stream gets its "
          "own person's encounter, once", t_many_persons(100))
    check("stream by id: an encounter announced at version v and changed again (with an older "
          "one of the person) by a later transaction before the gateway read it: the stream gets "
          "the later version's two changes in (version, id) order, X once, in its final state, "
          "nothing more", t_changed_before_fetch)
    check("stream by id: resuming with Last-Event-ID after an event read by id gets exactly the "
          "missed changes (a merge among them), then the next live one by id", t_resume_after_live)
    check("stream by id: one commit makes encounters of an attendee and of two others; "
          "NOTIFY udaconnect_encounter names both (v<version>.1/1:<id>.<a>.<b>,...); the "
          "attendee's stream gets only its own", t_attendee_only_own)
    check("stream: X erased (forget_person): the organizer's stream of X (sse client and curl) "
          "and X's own end with a last event erased {\"person_id\": X} (no id line); Y's stream "
          "stays open, gets the removal of its encounter with X, then its next encounter",
          t_erased_streams)
    check("stream: an erased person's stream reopened (organizer, with Last-Event-ID as "
          "EventSource reconnects, the attendee themself) -> 404 naming the erasure",
          t_erased_reopen)
    check("stream: opened as X is erased (its check saw X; the erasure heard before the "
          "subscriber joined): it ends erased once open", t_erased_while_opening)
    check("a statement held in the database, with one worker thread and two statement threads: "
          "the worker's stream gets its event, a pipelined read, /metrics and a write are "
          "answered meanwhile; then the held stream opens", t_held_statement(2))
    check("a statement held in the database, with one worker thread and one statement thread: "
          "a write waits in the queue (udaconnect_http_db_queued 1) while the worker's stream "
          "and reads are served; once the gate opens both are answered", t_held_statement(1))
    check("one worker thread: a pipelined read held by a lock (GET /api/places) does not hold the "
          "next read (GET /api/persons/{id}): it goes to a statement thread and is answered "
          "meanwhile (pipe_stalled counted); then the held read is answered", t_pipeline_stalled)
    check("SIGTERM while a write waits in the database on a statement thread: it is answered "
          "(201) once the lock goes, then the daemon exits 0", t_stop_answers_waiting)
    check("SIGTERM with 14 writes waiting behind a lock, more than the drain allows: the queued "
          "ones are answered 503 server_stopping (not run), every one is answered, nothing is "
          "written, the daemon exits 0", t_stop_gives_back)
    check("stream: X erased while the stream connection to the database is cut and kept out: "
          "once it is back, X's stream ends erased", t_erased_while_down)
    check("stream against an extension older than 1.8 (no api_persons_gone): the checks fall "
          "back to api_person_public, logged once, and an erased person's stream still ends "
          "erased", t_erased_old_extension)
    check("stream: NOTIFY udaconnect_person_erased forged (X's id as the gateways' role; 20 "
          "payloads naming nobody in one commit): X's streams (sse client and curl) stay open and "
          "get X's next encounter; the 20 are checked and logged at most twice", t_forged_erased)
    check("stream: over --stream-max -> 503 with Retry-After; one leaves, the next is taken",
          t_cap)
    check("stream: the stream database connection cut and kept out while A and D meet: "
          "after it is back the subscriber gets the event", t_reconnect)
    check("stream: a stream opened with a token ends when the token expires", t_expiry)
    check("stream: a client that reads nothing of a 400-event replay is disconnected "
          "(bounded queue, then the idle timeout), not buffered", t_slow_reader)
    check("stream: 1000 idle subscribers (memory per subscriber printed)", t_memory(1000))


try:
    run_rest()
    run_stream()
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
tap.exit()
