#!/usr/bin/env python3
"""udaconnect-httpd over real HTTP: every route and error case, the original's
API collection, limits, JWT callers and who may see what, CORS, 503/504 and
reconnection.

Prints TAP lines ("ok N - ...").  Needs the stack's environment
(UDACONNECT_HTTP_URL, UDACONNECT_DATABASE_URL, PGHOST/PGPORT/...,
UDACONNECT_AUTH, UDACONNECT_JWT_KEY_FILE), TOP and SUITE_DIR.  Extra daemons
for the limit and auth tests listen on UDACONNECT_HTTP_PORT+1..+3.  Requests
carry an organizer's token (minted with PyJWT, tokens.py) unless a test says
otherwise (auth=None: no token; auth="<jwt>": that one).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

import jwt

import tokens
from httpd_daemon import start_httpd
from tap import Tap

BASE = os.environ["UDACONNECT_HTTP_URL"]
U = urllib.parse.urlparse(BASE)
HOST, PORT = U.hostname, U.port
TOP = os.environ["TOP"]
SUITE_DIR = os.environ["SUITE_DIR"]
HTTP_PORT = int(os.environ.get("UDACONNECT_HTTP_PORT", PORT))

tap = Tap(start=1)


def check(desc, fn):
    try:
        r = fn()
        tap(r is None or r is True, desc, None if r in (None, True) else r)
    except Exception:
        tap(False, desc, traceback.format_exc())


ORG = "organizer"     # auth= default: an organizer's token when the daemon asks for one
AUTH = tokens.stack_headers()


def req(method, path, body=None, headers=None, port=None, host=None, raw=None, auth=ORG):
    """One request on a fresh connection: (status, headers dict lower-case, body bytes)."""
    c = http.client.HTTPConnection(host or HOST, port or PORT, timeout=30)
    h = dict(headers or {})
    if auth == ORG:
        h.update(AUTH)
    elif auth is not None:
        h.update(tokens.bearer(auth))
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if raw is not None:
        data = raw
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    b = r.read()
    hs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hs, b


def jreq(method, path, body=None, headers=None, **kw):
    s, h, b = req(method, path, body, headers, **kw)
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = ("NOT JSON", b[:200])
    return s, h, j


def psql(sql):
    out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def is_error(j, status, code=None, field="__any__"):
    """The one error shape."""
    if not isinstance(j, dict) or set(j) != {"error"}:
        return "not an error body: %r" % (j,)
    e = j["error"]
    for k in ("status", "code", "message", "field"):
        if k not in e:
            return "missing %s in %r" % (k, e)
    if e["status"] != status:
        return "status %r != %r" % (e["status"], status)
    if code and e["code"] != code:
        return "code %r != %r" % (e["code"], code)
    if field != "__any__" and e["field"] != field:
        return "field %r != %r (%r)" % (e["field"], field, e)
    if not isinstance(e["message"], str) or not e["message"]:
        return "empty message"
    return True


def expect_error(method, path, status, code=None, field="__any__", **kw):
    def f():
        s, h, j = jreq(method, path, **kw)
        if s != status:
            return "HTTP %d != %d: %r" % (s, status, j)
        if h.get("content-type", "").split(";")[0] != "application/json":
            return "content-type %r" % h.get("content-type")
        return is_error(j, status, code, field)
    return f


# ---------------------------------------------------------------------------
# extra daemons (token, CORS, limits, unreachable database, timeouts)
# ---------------------------------------------------------------------------
procs = []


def start_daemon(port, args=(), env_extra=None, dburl=None):
    env = dict(os.environ)
    env["UDACONNECT_DATABASE_URL"] = dburl or os.environ["UDACONNECT_DATABASE_URL"]
    env["UDACONNECT_HTTP_DB_USER"] = "udaconnect_api"
    env.update(env_extra or {})
    p = start_httpd(port, env, os.path.join(SUITE_DIR, "httpd-%d.log" % port), args)
    procs.append(p)
    return p


def stop_daemon(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in procs:
        procs.remove(p)


# ---------------------------------------------------------------------------
# JWT callers and who may see what (issue 14; sql/src/40-privacy.sql)
# ---------------------------------------------------------------------------
CONN_Q = "?start_date=2019-01-01&end_date=2030-12-31&distance=5"


def expect_status(method, path, want, auth, port, code=None, body=None, why=None, **kw):
    """HTTP `want`; for an error, the error shape (403: the database's own
    message, SQLSTATE 42501)."""
    def f():
        s, h, j = jreq(method, path, body, port=port, auth=auth, **kw)
        if s != want:
            return "HTTP %d != %d: %r" % (s, want, j)
        if want == 403:
            r = is_error(j, 403, "forbidden")
            return r if r is not True else (j["error"].get("sqlstate") == "42501" or j)
        if want >= 400:
            r = is_error(j, want, code)
            if r is True and why and why not in j["error"]["message"]:
                return "message %r lacks %r" % (j["error"]["message"], why)
            return r
        return True
    return f


def unauthorized(method, path, port, auth=None, why=None, body=None):
    """401: the error shape and the RFC 6750 challenge (realm when no token
    was given, error="invalid_token" with the reason otherwise)."""
    def f():
        s, h, j = jreq(method, path, body, port=port, auth=auth)
        if s != 401:
            return "HTTP %d != 401: %r" % (s, j)
        www = h.get("www-authenticate", "")
        if auth is None:
            r = is_error(j, 401, "unauthorized")
            return r if r is not True else (www == 'Bearer realm="udaconnect"' or www)
        r = is_error(j, 401, "invalid_token")
        if r is not True:
            return r
        if not www.startswith('Bearer error="invalid_token", error_description="'):
            return www
        return (why in j["error"]["message"] and why.replace('"', "'") in www) or (j, www)
    return f


def person_ids(port, auth):
    s, h, j = jreq("GET", "/api/persons", port=port, auth=auth)
    if s != 200:
        raise AssertionError((s, j))
    return {p["id"] for p in j}


def mentions(doc, pid, name):
    """Whether an API answer names the person: the name anywhere in its text,
    or the id as a person's id (a person object, a person_id field)."""
    if name in json.dumps(doc):
        return True
    if isinstance(doc, dict):
        if doc.get("person_id") == pid or ("first_name" in doc and doc.get("id") == pid):
            return True
        return any(mentions(v, pid, name) for v in doc.values())
    if isinstance(doc, list):
        return any(mentions(v, pid, name) for v in doc)
    return False


def auth_matrix(port):
    """Attendee (seed person 5), organizer and no token against a daemon
    with UDACONNECT_AUTH=on."""
    stamp = "%d" % (time.time() * 1000)
    A, MET, OTHER = 5, 6, 8
    att = tokens.attendee(A)
    org = tokens.organizer()
    met = set(int(x) for x in psql("select udaconnect.met_persons(%d)" % A).split())
    other_loc = int(psql("select min(id) from udaconnect.location where person_id = %d" % OTHER))
    own_loc = int(psql("select min(id) from udaconnect.location where person_id = %d" % A))
    st = {}

    def t_setup():
        s, h, j = jreq("POST", "/api/persons", {"first_name": "Una", "last_name": "Met " + stamp,
                                                "company_name": "Nobody"}, port=port, auth=org)
        st["unmet"] = j.get("id") if s == 201 else None
        return (s == 201 and MET in met and OTHER != A) or (s, j, met)
    check("auth: organizer POST /api/persons -> 201 (a person nobody has met)", t_setup)
    U = st.get("unmet") or 0

    # ---- GET /api/persons
    def t_list_att():
        want = {A} | met
        got = person_ids(port, att)
        return (got == want and U not in got) or (got, want)
    check("auth: attendee GET /api/persons lists themself and the persons they met, no one else",
          t_list_att)

    def t_list_org():
        got = person_ids(port, org)
        want = set(int(x) for x in psql("select id from udaconnect.person").split())
        return (got == want and U in got) or (got, want)
    check("auth: organizer GET /api/persons lists every person", t_list_org)

    # ---- GET /api/persons/{id}
    check("auth: attendee GET /api/persons/{self} -> 200",
          expect_status("GET", "/api/persons/%d" % A, 200, att, port))
    check("auth: attendee GET /api/persons/{met} -> 200",
          expect_status("GET", "/api/persons/%d" % MET, 200, att, port))
    check("auth: attendee GET /api/persons/{unmet} -> 403 forbidden (the database's 42501)",
          expect_status("GET", "/api/persons/%d" % U, 403, att, port))
    check("auth: organizer GET /api/persons/{unmet} -> 200",
          expect_status("GET", "/api/persons/%d" % U, 200, org, port))

    # ---- connections
    for route in ("connection", "connections"):
        check("auth: attendee GET /api/persons/{other}/%s -> 403" % route,
              expect_status("GET", "/api/persons/%d/%s%s" % (OTHER, route, CONN_Q), 403, att, port))
        check("auth: attendee GET /api/persons/{self}/%s -> 200" % route,
              expect_status("GET", "/api/persons/%d/%s%s" % (A, route, CONN_Q), 200, att, port))
        check("auth: organizer GET /api/persons/{other}/%s -> 200" % route,
              expect_status("GET", "/api/persons/%d/%s%s" % (OTHER, route, CONN_Q), 200, org, port))
    check("auth: attendee connection search wider than attendee_max_distance -> 403",
          expect_status("GET", "/api/persons/%d/connections?start_date=2019-01-01&end_date=2030-12-31"
                        "&distance=100000" % A, 403, att, port))

    check("auth: attendee connection search longer than attendee_max_window (300 s) -> 403",
          expect_status("GET", "/api/persons/%d/connections%s&window=301" % (A, CONN_Q), 403, att, port))

    def t_same_answer():
        # an attendee's search without a window gets attendee_max_window
        a = jreq("GET", "/api/persons/%d/connections%s" % (A, CONN_Q), port=port, auth=att)
        o = jreq("GET", "/api/persons/%d/connections%s&window=300" % (A, CONN_Q), port=port, auth=org)
        wide = jreq("GET", "/api/persons/%d/connections%s" % (A, CONN_Q), port=port, auth=org)
        return (a[0] == o[0] == 200 and a[2] == o[2] and len(a[2]) > 0 and a[2] != wide[2]) or (a, o, wide)
    check("auth: an attendee's own connections (no window: 300 s) equal what an organizer sees "
          "with window=300, and differ from the organizer's any-time answer", t_same_answer)

    # ---- locations
    def t_locs_att():
        s, h, j = jreq("GET", "/api/locations?limit=1000", port=port, auth=att)
        n = int(psql("select count(*) from udaconnect.location where person_id = %d" % A))
        if s != 200:
            return (s, j)
        return ({e["person_id"] for e in j} == {A} and len(j) == n) or (len(j), n, j[:3])
    check("auth: attendee GET /api/locations -> only their own locations, all of them", t_locs_att)

    def t_locs_org():
        s, h, j = jreq("GET", "/api/locations?limit=1000", port=port, auth=org)
        n = int(psql("select count(*) from udaconnect.location"))
        return (s == 200 and len(j) == min(n, 1000) and len({e["person_id"] for e in j}) > 1) \
            or (s, len(j), n)
    check("auth: organizer GET /api/locations -> everyone's", t_locs_org)
    check("auth: attendee GET /api/locations?person_id={other} -> 403",
          expect_status("GET", "/api/locations?person_id=%d" % OTHER, 403, att, port))
    check("auth: attendee GET /api/locations/{other's} -> 403",
          expect_status("GET", "/api/locations/%d" % other_loc, 403, att, port))
    check("auth: attendee GET /api/locations/{own} -> 200",
          expect_status("GET", "/api/locations/%d" % own_loc, 200, att, port))
    check("auth: organizer GET /api/locations/{anyone's} -> 200",
          expect_status("GET", "/api/locations/%d" % other_loc, 200, org, port))
    check("auth: attendee POST /api/locations for another person -> 403",
          expect_status("POST", "/api/locations", 403, att, port,
                        body={"person_id": OTHER, "latitude": 37.55, "longitude": -122.29}))
    check("auth: attendee POST /api/locations for themself -> 201",
          expect_status("POST", "/api/locations", 201, att, port,
                        body={"person_id": A, "latitude": 37.55, "longitude": -122.29}))

    # how far back an attendee may report (udaconnect.attendee_max_report_age, 1 h)
    def t_report_age():
        iso = lambda ago: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - ago))
        old, recent = iso(7200), iso(600)
        s1, h1, j1 = jreq("POST", "/api/locations", {"person_id": A, "latitude": 37.5511, "longitude": -122.2911,
                                                     "creation_time": old}, port=port, auth=att)
        r = is_error(j1, 403, "forbidden") if s1 == 403 else "HTTP %d != 403: %r" % (s1, j1)
        if r is not True:
            return ("2 h old", r)
        msg = j1["error"]["message"]
        if ("at most 3600 s old" not in msg or "creation_time %s.000000Z is before" % old[:-1] not in msg
                or j1["error"].get("sqlstate") != "42501"):
            return ("2 h old: message", j1)
        stored = psql("select count(*) from udaconnect.location where person_id = %d "
                      "and creation_time = '%s'" % (A, old))
        if stored != "0":
            return ("2 h old point stored", stored)
        s2, h2, j2 = jreq("POST", "/api/locations", {"person_id": A, "latitude": 37.5512, "longitude": -122.2912,
                                                     "creation_time": recent}, port=port, auth=att)
        if s2 != 201 or not j2["creation_time"].startswith(recent[:-1]):
            return ("10 min old", s2, j2)
        s3, h3, j3 = jreq("POST", "/api/locations", {"person_id": A, "latitude": 37.5513, "longitude": -122.2913,
                                                     "creation_time": old}, port=port, auth=org)
        return s3 == 201 or ("organizer, 2 h old", s3, j3)
    check("auth: attendee POST /api/locations with creation_time 2 h ago -> 403 naming the limit and the time, "
          "nothing stored; 10 min ago -> 201; an organizer's 2 h old -> 201", t_report_age)

    # ---- persons: create, tokens, erasure
    check("auth: attendee POST /api/persons -> 403",
          expect_status("POST", "/api/persons", 403, att, port,
                        body={"first_name": "No", "last_name": "Way", "company_name": "X"}))
    check("auth: attendee POST /api/persons/{id}/token -> 403",
          expect_status("POST", "/api/persons/%d/token" % MET, 403, att, port))
    check("auth: attendee DELETE /api/persons/{other} -> 403",
          expect_status("DELETE", "/api/persons/%d" % OTHER, 403, att, port))

    def t_token():
        s, h, j = jreq("POST", "/api/persons/%d/token?ttl=120" % U, port=port, auth=org)
        if s != 201 or set(j) != {"token", "person_id", "expires_at"} or j["person_id"] != U:
            return (s, j)
        c = jwt.decode(j["token"], tokens.key(), algorithms=["HS256"])
        exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c["exp"]))
        if (c["sub"], c["role"], c["exp"] - c["iat"], exp) != (str(U), "attendee", 120, j["expires_at"]):
            return (c, j)
        if h.get("cache-control") != "no-store":
            return h
        st["utoken"] = j["token"]
        return True
    check("auth: organizer POST /api/persons/{id}/token?ttl=120 -> 201 {token, person_id, expires_at}: "
          "an HS256 attendee token with the stack's key, exp = iat + 120 = expires_at", t_token)

    def t_token_works():
        tok = st.get("utoken")
        a = jreq("GET", "/api/persons/%d" % U, port=port, auth=tok)
        b = jreq("GET", "/api/persons/%d" % A, port=port, auth=tok)
        return (a[0] == 200 and a[2]["id"] == U and b[0] == 403) or (a, b)
    check("auth: the issued token works: its person sees themself, not the persons they never met",
          t_token_works)

    def t_token_default():
        s, h, j = jreq("POST", "/api/persons/%d/token" % U, port=port, auth=org)
        c = jwt.decode(j["token"], tokens.key(), algorithms=["HS256"]) if s == 201 else {}
        return (c.get("exp", 0) - c.get("iat", 0) == 86400) or (s, j, c)
    check("auth: the token's ttl defaults to 86400 s", t_token_default)
    for q in ("ttl=59", "ttl=31536001", "ttl=abc", "ttl=60&ttl=61"):
        check("auth: POST /api/persons/{id}/token?%s -> 400 field ttl" % q,
              expect_status("POST", "/api/persons/%d/token?%s" % (U, q), 400, org, port,
                            code="invalid_parameter"))
    check("auth: POST /api/persons/{unknown}/token -> 404",
          expect_status("POST", "/api/persons/2000000000/token", 404, org, port, code="not_found"))

    def t_org_delete():
        s, h, j = jreq("POST", "/api/persons", {"first_name": "Era", "last_name": "Sed " + stamp,
                                                "company_name": "Gone"}, port=port, auth=org)
        pid = j["id"]
        d1 = jreq("DELETE", "/api/persons/%d" % pid, port=port, auth=org)
        g = jreq("GET", "/api/persons/%d" % pid, port=port, auth=org)
        d2 = jreq("DELETE", "/api/persons/%d" % pid, port=port, auth=org)
        return (d1[0] == 200 and d1[2].get("erased") is True and g[0] == 404 and d2[0] == 404) \
            or (d1, g, d2)
    check("auth: organizer DELETE /api/persons/{id} -> 200 {erased}; then GET and DELETE -> 404",
          t_org_delete)

    # ---- an attendee erases themself: afterwards no answer names them
    def t_forget_self():
        name = "Forget " + stamp
        s, h, j = jreq("POST", "/api/persons", {"first_name": "Fay", "last_name": name,
                                                "company_name": "Ephemeral"}, port=port, auth=org)
        D = j["id"]
        lat, lon, t = psql("select st_y(coordinate), st_x(coordinate), "
                           "to_char((creation_time + interval '30 seconds') at time zone 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from udaconnect.location "
                           "where id = %d" % own_loc).split("|")
        for dt in (0, 1):
            s, h, j = jreq("POST", "/api/locations", {"person_id": D, "latitude": float(lat),
                                                      "longitude": float(lon) + dt * 1e-6,
                                                      "creation_time": t}, port=port, auth=org)
            if s != 201:
                return ("location", s, j)
        s, h, j = jreq("POST", "/api/persons/%d/token" % D, port=port, auth=org)
        tok = j["token"]
        paths = ["/api/persons", "/api/persons/%d/connection%s" % (A, CONN_Q),
                 "/api/persons/%d/connections%s" % (A, CONN_Q), "/api/locations?limit=1000",
                 "/api/locations?person_id=%d&limit=1000" % D]
        before = [jreq("GET", p, port=port, auth=org)[2] for p in paths]
        if not all(mentions(b, D, name) for b in before[:4]):
            return ("the searches did not find the person before", [mentions(b, D, name) for b in before])
        s, h, j = jreq("DELETE", "/api/persons/%d" % D, port=port, auth=tok)
        if s != 200 or j != {"erased": True, "locations": 2, "rejects": 0}:
            return ("DELETE", s, j)
        after = []
        for p in paths + ["/api/persons/%d" % D]:
            s, h, b = req("GET", p, port=port, auth=org)
            if s not in (200, 404) or name.encode() in b or mentions(json.loads(b), D, name):
                after.append((p, s, b[:200]))
        left = psql("select (select count(*) from udaconnect.location where person_id = %d) + "
                    "(select count(*) from udaconnect.person where id = %d)" % (D, D))
        return (not after and left == "0") or (after, left)
    check("auth: attendee DELETE /api/persons/{self} -> 200; afterwards no organizer's answer "
          "(persons, connection, connections, locations) names them or their id", t_forget_self)

    # ---- no token: 401 on every /api route; the rest stays open
    for method, path, body in (
            ("GET", "/api/persons", None), ("GET", "/api/persons/%d" % A, None),
            ("GET", "/api/persons/%d/connection%s" % (A, CONN_Q), None),
            ("GET", "/api/persons/%d/connections%s" % (A, CONN_Q), None),
            ("GET", "/api/locations", None), ("GET", "/api/locations/%d" % own_loc, None),
            ("POST", "/api/locations", {"person_id": A, "latitude": 1, "longitude": 2}),
            ("POST", "/api/persons", {"first_name": "a", "last_name": "b", "company_name": "c"}),
            ("POST", "/api/persons/%d/token" % A, None), ("DELETE", "/api/persons/%d" % A, None)):
        check("auth: no token: %s %s -> 401, WWW-Authenticate: Bearer realm=\"udaconnect\""
              % (method, path.split("?")[0]), unauthorized(method, path, port, body=body))
    check("auth: Authorization: Basic ... -> 401 (no bearer token)",
          expect_status("GET", "/api/persons", 401, None, port, code="unauthorized",
                        headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    for path in ("/healthz", "/metrics", "/", "/api/openapi.json"):
        check("auth: %s needs no token" % path, lambda p=path: req("GET", p, port=port, auth=None)[0] == 200)

    # ---- bad tokens: each 401 with its own reason
    now = int(time.time())
    bad = (
        ("alg none", tokens.unsigned({"sub": "ops", "role": "organizer", "exp": now + 600}),
         'alg "none"'),
        ("signed with another key", tokens.mint({"sub": "ops", "role": "organizer"}, "k" * 40),
         "signature does not match"),
        ("expired", tokens.mint({"sub": "ops", "role": "organizer", "exp": now - 60}), "expired"),
        ("nbf in the future", tokens.mint({"sub": "ops", "role": "organizer", "nbf": now + 3600}),
         "not valid yet"),
        ("malformed", "not-a-jwt", "malformed token"),
        ("malformed payload", "eyJhbGciOiJIUzI1NiJ9.!!!.abc", "malformed token"),
        ("without exp", tokens.mint({"sub": "ops", "role": "organizer", "exp": None}), "no exp"),
        ("without sub", tokens.mint({"role": "organizer"}), "no sub"),
        ("without role", tokens.mint({"sub": "ops"}), "no role"),
        ("with an unknown role", tokens.mint({"sub": "ops", "role": "admin"}),
         "neither attendee nor organizer"),
        ("attendee with a sub that is not a number", tokens.mint({"sub": "abc", "role": "attendee"}),
         "person id"),
        ("HS512-signed", tokens.mint({"sub": "ops", "role": "organizer"}, alg="HS512"), 'alg "HS512"'),
    )
    for what, tok, why in bad:
        check("auth: a token %s -> 401 invalid_token naming why (%s)" % (what, why),
              unauthorized("GET", "/api/persons/%d" % A, port, auth=tok, why=why))


def auth_off(port):
    """UDACONNECT_AUTH=off: the original's open API, every caller an organizer."""
    check("auth off: GET /api/persons without a token -> 200, every person",
          lambda: (lambda r: (r[0] == 200 and {p["id"] for p in r[2]} ==
                              set(int(x) for x in psql("select id from udaconnect.person").split()))
                   or r[:3:2])(jreq("GET", "/api/persons", port=port, auth=None)))
    for path in ("/api/persons/5", "/api/persons/1/connection" + CONN_Q,
                 "/api/persons/1/connections" + CONN_Q, "/api/locations?person_id=8",
                 "/api/locations/29"):
        check("auth off: GET %s without a token -> 200" % path.split("?")[0],
              expect_status("GET", path, 200, None, port))
    check("auth off: POST /api/persons without a token -> 201",
          expect_status("POST", "/api/persons", 201, None, port,
                        body={"first_name": "Open", "last_name": "Api", "company_name": "Trial"}))
    check("auth off: a token is not looked at (even a bad one) -> 200",
          expect_status("GET", "/api/persons/5", 200, "not-a-jwt", port))
    check("auth off: POST /api/persons/{id}/token -> 409 (tokens need UDACONNECT_AUTH=on)",
          expect_status("POST", "/api/persons/5/token", 409, None, port, code="auth_off",
                        why="UDACONNECT_AUTH=on"))


def auth_settings():
    """Start-up refuses auth on without a usable key (exit 2, a clear message)."""
    binary = os.path.join(TOP, "gateway/httpd/udaconnect-httpd")
    short = os.path.join(SUITE_DIR, "short.key")
    with open(short, "w") as f:
        f.write("too-short\n")
    cases = (
        ("UDACONNECT_AUTH=on without UDACONNECT_JWT_KEY_FILE",
         {"UDACONNECT_AUTH": "on", "UDACONNECT_JWT_KEY_FILE": ""}, "UDACONNECT_JWT_KEY_FILE"),
        ("a key file that does not exist",
         {"UDACONNECT_AUTH": "on", "UDACONNECT_JWT_KEY_FILE": "/nonexistent/jwt.key"}, "cannot open"),
        ("a key shorter than 32 bytes",
         {"UDACONNECT_AUTH": "on", "UDACONNECT_JWT_KEY_FILE": short}, "at least 32"),
        ("UDACONNECT_AUTH=yes", {"UDACONNECT_AUTH": "yes"}, "on or off"),
    )
    for what, extra, why in cases:
        def f(extra=extra, why=why):
            env = dict(os.environ, **extra)
            r = subprocess.run([binary, "--port", "1", "--bind", "127.0.0.1"], env=env,
                               capture_output=True, text=True, timeout=30)
            return (r.returncode == 2 and why in r.stderr) or (r.returncode, r.stderr)
        check("auth: %s -> refused at start (exit 2: %s)" % (what, why), f)


def main():
    # ------------------------------------------------------------------ basics
    def t_health():
        s, h, j = jreq("GET", "/healthz")
        return s == 200 and j.get("status") == "ok" or (s, j)
    check("GET /healthz answers 200 when the database answers", t_health)

    # ---------------------------------------- the original's API collection
    created = {}

    def t_post_person():
        s, h, j = jreq("POST", "/api/persons",
                       {"first_name": "Ada", "last_name": "Lovelace", "company_name": "Analytical Engines"})
        if s != 201:
            return (s, j)
        created.update(j)
        return (isinstance(j.get("id"), int) and j["first_name"] == "Ada"
                and h.get("location") == "/api/persons/%d" % j["id"]) or (h, j)
    check("collection: POST /api/persons -> 201 with the person and Location", t_post_person)

    def t_persons():
        s, h, j = jreq("GET", "/api/persons")
        ids = [p["id"] for p in j]
        want = {1, 5, 6, 8, 9, created.get("id")}
        if s != 200 or not want <= set(ids):
            return (s, ids)
        p = [p for p in j if p["id"] == 1][0]
        return set(p) == {"id", "first_name", "last_name", "company_name"} or p
    check("collection: GET /api/persons lists the seed persons and the new one", t_persons)

    def t_person5():
        s, h, j = jreq("GET", "/api/persons/5")
        return (s == 200 and j == {"id": 5, "first_name": "Taco", "last_name": "Fargo",
                                   "company_name": "Alpha Omega Upholstery"}) or (s, j)
    check("collection: GET /api/persons/5 is Taco Fargo", t_person5)

    def t_locations_all():
        s, h, j = jreq("GET", "/api/locations")
        total = int(psql("select count(*) from udaconnect.location"))
        if s != 200 or not isinstance(j, list):
            return (s, j)
        return len(j) == min(total, 100) or (len(j), total)
    check("collection: GET /api/locations returns the first page (default limit 100)", t_locations_all)

    def t_location29():
        s, h, j = jreq("GET", "/api/location/29")
        lat, lon = map(float, psql("select st_y(coordinate), st_x(coordinate) from udaconnect.location "
                                   "where id = 29").split("|"))
        if s != 200:
            return (s, j)
        ok = (j["id"] == 29 and j["person_id"] == 1 and isinstance(j["latitude"], float)
              and isinstance(j["longitude"], float) and abs(j["latitude"] - lat) < 1e-9
              and abs(j["longitude"] - lon) < 1e-9 and 37 < j["latitude"] < 38
              and -123 < j["longitude"] < -122)
        return ok or (j, lat, lon)
    check("collection: GET /api/location/29: latitude/longitude are numbers, the right way round",
          t_location29)

    def t_location_alias():
        a = jreq("GET", "/api/location/29")
        b = jreq("GET", "/api/locations/29")
        return (a[0] == b[0] == 200 and a[2] == b[2]) or (a, b)
    check("GET /api/locations/29 equals the alias /api/location/29", t_location_alias)

    def t_start_after_end():
        s, h, j = jreq("GET", "/api/persons/1/connection?distance=10&end_date=2020-01-01&start_date=2020-12-30")
        if s != 400:
            return (s, j)
        r = is_error(j, 400, "invalid_parameter", "start_date")
        return r if r is not True else ("after" in j["error"]["message"] or j)
    check("collection: connection with start_date after end_date -> 400 with the error body",
          t_start_after_end)

    finder_rows = []

    def t_web_client_request():
        path = "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5"
        s, h, j = jreq("GET", path)
        if s != 200 or not isinstance(j, list):
            return (s, j)
        want = psql("select coalesce(string_agg(location_id::text || ':' || person_id, ',' "
                    "order by creation_time, location_id), '') from "
                    "udaconnect.find_connections(1, '2020-01-01', '2020-12-30', 5)")
        got = ",".join("%d:%d" % (e["location"]["id"], e["location"]["person_id"]) for e in j)
        if want != got:
            return ("finder", want, "api", got)
        for e in j:
            if set(e) != {"location", "person"}:
                return e
            if set(e["location"]) != {"id", "person_id", "latitude", "longitude", "creation_time"}:
                return e
            if set(e["person"]) != {"id", "first_name", "last_name", "company_name"}:
                return e
            if e["person"]["id"] != e["location"]["person_id"] or e["person"]["id"] == 1:
                return e
            if not all(isinstance(e["location"][k], (int, float)) for k in ("latitude", "longitude")):
                return e
        finder_rows.extend(j)
        return True
    check("collection: the web client's connection request matches find_connections row for row",
          t_web_client_request)

    # ----------------------------------------------------------- persons
    def t_created_get():
        s, h, j = jreq("GET", "/api/persons/%d" % created["id"])
        return (s == 200 and j == created) or (s, j)
    check("GET /api/persons/{id} returns the created person", t_created_get)

    check("GET /api/persons/{unknown} -> 404 field id",
          expect_error("GET", "/api/persons/2000000000", 404, "not_found", "id"))
    check("GET /api/persons/abc -> 400 field id",
          expect_error("GET", "/api/persons/abc", 400, "invalid_parameter", "id"))
    check("GET /api/persons/99999999999 (out of integer range) -> 400",
          expect_error("GET", "/api/persons/99999999999", 400, "invalid_parameter", "id"))
    check("GET /api/persons/ (trailing slash) is the list",
          lambda: jreq("GET", "/api/persons/")[0] == 200)

    def t_trim():
        s, h, j = jreq("POST", "/api/persons", {"first_name": "  Grace ", "last_name": "Hopper",
                                                "company_name": "Navy", "unknown": 1})
        return (s == 201 and j["first_name"] == "Grace") or (s, j)
    check("POST /api/persons trims names (the extension's rule), ignores unknown fields", t_trim)

    P = "/api/persons"
    check("POST person with an empty name -> 400 field first_name",
          expect_error("POST", P, 400, "invalid_parameter", "first_name",
                       body={"first_name": "  ", "last_name": "x", "company_name": "y"}))
    check("POST person with a 201-character name -> 400 field last_name",
          expect_error("POST", P, 400, None, "last_name",
                       body={"first_name": "a", "last_name": "x" * 201, "company_name": "y"}))
    check("POST person without company_name -> 400 missing_field",
          expect_error("POST", P, 400, "missing_field", "company_name",
                       body={"first_name": "a", "last_name": "b"}))
    check("POST person with a number as first_name -> 400 invalid_type",
          expect_error("POST", P, 400, "invalid_type", "first_name",
                       body={"first_name": 5, "last_name": "b", "company_name": "c"}))
    check("POST person with malformed JSON -> 400 invalid_json",
          expect_error("POST", P, 400, "invalid_json", None,
                       raw=b'{"first_name": "a",', headers={"Content-Type": "application/json"}))
    check("POST person with a JSON array -> 400",
          expect_error("POST", P, 400, "invalid_json", raw=b'[1,2]',
                       headers={"Content-Type": "application/json"}))
    check("POST person with duplicate keys -> 400",
          expect_error("POST", P, 400, "invalid_json",
                       raw=b'{"first_name":"a","first_name":"b","last_name":"c","company_name":"d"}',
                       headers={"Content-Type": "application/json"}))
    check("POST person with an empty body -> 400",
          expect_error("POST", P, 400, "invalid_json", raw=b'',
                       headers={"Content-Type": "application/json"}))
    check("POST person with invalid UTF-8 -> 400",
          expect_error("POST", P, 400, "invalid_json",
                       raw=b'{"first_name":"\xff","last_name":"c","company_name":"d"}',
                       headers={"Content-Type": "application/json"}))
    check("POST person as text/plain -> 415",
          expect_error("POST", P, 415, "unsupported_media_type", raw=b'{}',
                       headers={"Content-Type": "text/plain"}))
    check("POST person without Content-Type -> 415",
          expect_error("POST", P, 415, "unsupported_media_type", raw=b'{}'))
    check("POST person with 100 KB body (Content-Length) -> 413",
          expect_error("POST", P, 413, "payload_too_large", raw=b' ' * 100000,
                       headers={"Content-Type": "application/json"}))

    def t_413_early():
        # the 413 comes back without the body being sent at all
        sk = socket.create_connection((HOST, PORT), timeout=10)
        sk.sendall(b"POST /api/persons HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + "".join("%s: %s\r\n" % kv for kv in AUTH.items()).encode()
                   + b"Content-Length: 10000000000\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sk.recv(4096)
            if not chunk:
                break
            data += chunk
        sk.close()
        return data.startswith(b"HTTP/1.1 413") or data[:200]
    check("POST with Content-Length 10 GB is refused with 413 before any body is sent", t_413_early)

    def t_413_chunked():
        c = http.client.HTTPConnection(HOST, PORT, timeout=30)
        c.putrequest("POST", "/api/persons")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        for k, v in AUTH.items():
            c.putheader(k, v)
        c.endheaders()
        for _ in range(20):
            c.send(b"1000\r\n" + b" " * 4096 + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        j = json.loads(r.read())
        return (r.status == 413 and is_error(j, 413, "payload_too_large") is True) or (r.status, j)
    check("POST with an 80 KB chunked body -> 413", t_413_chunked)

    # -------------------------------------------------------- methods, routes
    def t_405():
        s, h, j = jreq("PATCH", "/api/persons/5")
        r = is_error(j, 405, "method_not_allowed")
        return (s == 405 and r is True and h.get("allow") == "GET, HEAD, DELETE") or (s, h, j)
    check("PATCH /api/persons/5 -> 405 with Allow: GET, HEAD, DELETE", t_405)
    check("GET /api/persons/5/token -> 405 (POST only)",
          expect_error("GET", "/api/persons/5/token", 405, "method_not_allowed"))

    def t_405b():
        s, h, j = jreq("PUT", "/api/persons", body={})
        return (s == 405 and h.get("allow") == "GET, HEAD, POST") or (s, h, j)
    check("PUT /api/persons -> 405 with Allow: GET, HEAD, POST", t_405b)
    check("POST /api/persons/5 -> 405",
          expect_error("POST", "/api/persons/5", 405, "method_not_allowed", body={}))
    check("GET /api/unknown -> 404", expect_error("GET", "/api/unknown", 404, "not_found"))
    check("GET /api/persons/5/unknown -> 404", expect_error("GET", "/api/persons/5/unknown", 404))
    check("OPTIONS without CORS -> 405", expect_error("OPTIONS", "/api/persons", 405))

    def t_head():
        s, h, b = req("HEAD", "/api/persons/5")
        return (s == 200 and b == b"") or (s, b)
    check("HEAD /api/persons/5 -> 200 without a body", t_head)

    def t_keepalive():
        c = http.client.HTTPConnection(HOST, PORT, timeout=10)
        out = []
        for path in ("/api/persons/5", "/api/persons/6", "/api/persons/abc", "/api/location/29"):
            c.request("GET", path, headers=AUTH)
            r = c.getresponse()
            r.read()
            out.append(r.status)
            if r.getheader("Connection", "").lower() == "close":
                return ("closed after", path)
        c.close()
        return out == [200, 200, 400, 200] or out
    check("keep-alive: four requests on one connection", t_keepalive)

    check("a 9000-byte path -> 414 in the JSON error shape",
          expect_error("GET", "/api/persons/" + "1" * 9000, 414, "uri_too_long"))
    check("a 9000-byte query string -> 414 in the JSON error shape",
          expect_error("GET", "/api/locations?limit=" + "1" * 9000, 414, "uri_too_long"))
    check("17 KB of request headers -> 431 in the JSON error shape",
          expect_error("GET", "/api/persons/5", 431, "headers_too_large", headers={"X-Big": "a" * 17000}))

    # ----------------------------------------------------------- connection
    C1 = "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-12-30"
    check("connection without start_date -> 400 field start_date",
          expect_error("GET", "/api/persons/1/connection?end_date=2020-12-30", 400, None, "start_date"))
    check("connection without end_date -> 400 field end_date",
          expect_error("GET", "/api/persons/1/connection?start_date=2020-12-30", 400, None, "end_date"))
    check("connection with 2020-02-30 -> 400 field end_date",
          expect_error("GET", "/api/persons/1/connection?start_date=2020-01-01&end_date=2020-02-30",
                       400, "invalid_parameter", "end_date"))
    check("connection with start_date=yesterday -> 400",
          expect_error("GET", "/api/persons/1/connection?start_date=yesterday&end_date=2020-02-03",
                       400, "invalid_parameter", "start_date"))
    check("connection with distance=abc -> 400 field distance",
          expect_error("GET", C1 + "&distance=abc", 400, "invalid_parameter", "distance"))
    check("connection with distance=-1 -> 400 field distance",
          expect_error("GET", C1 + "&distance=-1", 400, "invalid_parameter", "distance"))
    check("connection with distance=nan -> 400",
          expect_error("GET", C1 + "&distance=nan", 400, "invalid_parameter", "distance"))
    check("connection with distance=1e12 (above the finder's cap) -> 400 field distance",
          expect_error("GET", C1 + "&distance=1e12", 400, None, "distance"))
    check("connection with window=-5 -> 400 field window",
          expect_error("GET", C1 + "&window=-5", 400, "invalid_parameter", "window"))
    check("connection of an unknown person -> 404",
          expect_error("GET", "/api/persons/2000000000/connection?start_date=2020-01-01&end_date=2020-12-30",
                       404, "not_found", "id"))

    def t_default_distance():
        a = jreq("GET", C1)
        b = jreq("GET", C1 + "&distance=5")
        return (a[0] == 200 and a[2] == b[2]) or (a, b)
    check("connection: distance defaults to 5 m", t_default_distance)

    def t_window():
        s, h, j = jreq("GET", C1 + "&distance=5&window=60")
        want = psql("select count(*) from udaconnect.find_connections(1, '2020-01-01', '2020-12-30', 5, "
                    "interval '60 seconds')")
        return (s == 200 and len(j) == int(want)) or (s, j, want)
    check("connection with window=60 matches find_connections with a 60 s window", t_window)

    def t_connections():
        s, h, j = jreq("GET", "/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30&distance=5")
        want = psql("select coalesce(string_agg(person_id || ':' || meetings, ',' order by first_met, person_id), '') "
                    "from udaconnect.connected_persons(1, '2020-01-01', '2020-12-30', 5)")
        got = ",".join("%d:%d" % (e["person_id"], e["meetings"]) for e in j) if s == 200 else None
        if got != want:
            return (s, want, got)
        for e in j:
            for k in ("person_id", "first_name", "last_name", "company_name", "first_met", "last_met",
                      "meetings", "min_distance_m", "latitude", "longitude"):
                if k not in e:
                    return ("missing", k, e)
        return True
    check("GET /api/persons/1/connections matches connected_persons", t_connections)

    # ------------------------------------------------------------ locations
    def t_paging():
        all_ = jreq("GET", "/api/locations?limit=1000")[2]
        if len(all_) >= 1000:
            return ("the stack holds 1000 locations or more: other suites left rows behind", len(all_))
        got, path, pages = [], "/api/locations?limit=7", 0
        while path and pages < 200:
            s, h, j = jreq("GET", path)
            if s != 200:
                return (s, j)
            got += j
            pages += 1
            nxt = h.get("x-next-cursor")
            if nxt:
                if "after=%s" % nxt not in h.get("link", ""):
                    return ("link", h)
                path = "/api/locations?limit=7&after=" + nxt
            else:
                path = None
        return (got == all_ and len(all_) > 7) or (len(got), len(all_))
    check("GET /api/locations pages with the cursor (X-Next-Cursor, Link) through every location", t_paging)

    def t_offset():
        all_ = jreq("GET", "/api/locations?limit=1000")[2]
        s, h, j = jreq("GET", "/api/locations?limit=3&offset=2")
        return (s == 200 and j == all_[2:5]) or (s, j)
    check("GET /api/locations with offset", t_offset)

    def t_filters():
        s, h, j = jreq("GET", "/api/locations?person_id=5&start_date=2020-08-15&end_date=2020-08-15&limit=1000")
        want = psql("select coalesce(string_agg(id::text, ',' order by id), '') from udaconnect.location "
                    "where person_id = 5 and creation_time >= '2020-08-15 00:00+00' "
                    "and creation_time < '2020-08-16 00:00+00'")
        got = ",".join(str(e["id"]) for e in j) if s == 200 else None
        return (got == want and got != "") or (s, want, got)
    check("GET /api/locations filters by person_id and UTC date range", t_filters)

    for q, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
                     ("offset=-1", "offset"), ("after=x", "after"), ("after=3&offset=2", "offset"),
                     ("person_id=1.5", "person_id"), ("start_date=2020-13-01", "start_date"),
                     ("start_date=2020-02-02&end_date=2020-02-01", "start_date")):
        check("GET /api/locations?%s -> 400 field %s" % (q, field),
              expect_error("GET", "/api/locations?" + q, 400, "invalid_parameter", field))
    # hostile query strings: nothing is silently truncated, reinterpreted or
    # picked from two values
    for q, field in (("limit=5&limit=7", "limit"), ("start_date=2020-01-01%00junk", "start_date"),
                     ("person_id=1&person_id=5", "person_id"), ("after=1&cursor=2", "cursor"),
                     ("offset=1&offset=2", "offset")):
        check("GET /api/locations?%s -> 400 field %s" % (q, field),
              expect_error("GET", "/api/locations?" + q, 400, "invalid_parameter", field))
    for q, field in (("&distance=0x10", "distance"), ("&distance=%2010", "distance"),
                     ("&window=0x1p4", "window"), ("&window=infinity", "window"),
                     ("&distance=5&distance=500", "distance"), ("&window=1&window=2", "window"),
                     ("&start_date=2020-01-01", "start_date"), ("&distance=5%00abc", "distance")):
        check("GET connection ...%s -> 400 field %s" % (q, field),
              expect_error("GET", C1 + q, 400, "invalid_parameter", field))
    check("GET /api/persons/1%00 -> 400 (a NUL does not cut the id short)",
          expect_error("GET", "/api/persons/1%00", 400, "invalid_parameter", "id"))
    check("GET /api/persons/%31 (percent-encoded digit) still works",
          lambda: jreq("GET", "/api/persons/%31")[0] == 200 or jreq("GET", "/api/persons/%31"))
    check("GET /api/locations/999999999 -> 404",
          expect_error("GET", "/api/locations/999999999", 404, "not_found", "id"))
    check("GET /api/locations/x -> 400", expect_error("GET", "/api/locations/x", 400, None, "id"))

    L = "/api/locations"

    def t_post_location():
        s, h, j = jreq("POST", L, {"person_id": 5, "latitude": 37.5536, "longitude": -122.2908,
                                   "creation_time": "2020-08-15T10:37:06Z"})
        if s != 201:
            return (s, j)
        g = jreq("GET", h.get("location", "/nowhere"))
        return (j["latitude"] == 37.5536 and j["longitude"] == -122.2908 and j["person_id"] == 5
                and j["creation_time"].startswith("2020-08-15T10:37:06") and g[2] == j) or (j, g)
    check("POST /api/locations -> 201, stored the right way round, readable at Location", t_post_location)

    def t_post_location_now():
        s, h, j = jreq("POST", L, {"person_id": 5, "latitude": 1, "longitude": 2})
        return (s == 201 and j["latitude"] == 1 and bool(j["creation_time"])) or (s, j)
    check("POST /api/locations without creation_time uses now()", t_post_location_now)

    check("POST location with latitude 95 -> 400 field latitude",
          expect_error("POST", L, 400, None, "latitude", body={"person_id": 5, "latitude": 95, "longitude": 2}))
    check("POST location with longitude -181 -> 400 field longitude",
          expect_error("POST", L, 400, None, "longitude", body={"person_id": 5, "latitude": 5, "longitude": -181}))
    check("POST location of an unknown person -> 409 field person_id",
          expect_error("POST", L, 409, None, "person_id",
                       body={"person_id": 2000000000, "latitude": 5, "longitude": 2}))
    check("POST location with latitude as a string -> 400 invalid_type",
          expect_error("POST", L, 400, "invalid_type", "latitude",
                       body={"person_id": 5, "latitude": "5", "longitude": 2}))
    check("POST location with person_id 1.5 -> 400 invalid_type",
          expect_error("POST", L, 400, "invalid_type", "person_id",
                       body={"person_id": 1.5, "latitude": 5, "longitude": 2}))
    check("POST location without longitude -> 400 missing_field",
          expect_error("POST", L, 400, "missing_field", "longitude", body={"person_id": 5, "latitude": 5}))
    check("POST location with creation_time 'soon' -> 400 field creation_time",
          expect_error("POST", L, 400, None, "creation_time",
                       body={"person_id": 5, "latitude": 5, "longitude": 2, "creation_time": "soon"}))
    check("POST location with creation_time 'infinity' -> 400 field creation_time",
          expect_error("POST", L, 400, None, "creation_time",
                       body={"person_id": 5, "latitude": 5, "longitude": 2, "creation_time": "infinity"}))
    # the one location rule of every entry path (the ingest would reject these)
    check("POST location with creation_time 9999-12-31 -> 400 field creation_time (future skew)",
          expect_error("POST", L, 400, None, "creation_time",
                       body={"person_id": 5, "latitude": 5, "longitude": 2,
                             "creation_time": "9999-12-31T00:00:00Z"}))
    check("POST location with creation_time 10 minutes ahead -> 400 field creation_time",
          expect_error("POST", L, 400, None, "creation_time",
                       body={"person_id": 5, "latitude": 5, "longitude": 2,
                             "creation_time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime(time.time() + 600))}))

    # ------------------------------------------------------- openapi, metrics
    def t_openapi():
        s, h, j = jreq("GET", "/api/openapi.json")
        if s != 200 or not str(j.get("openapi", "")).startswith("3.0"):
            return (s, j)
        want = {"/api/persons", "/api/persons/{id}", "/api/persons/{id}/connection",
                "/api/persons/{id}/connections", "/api/locations", "/api/locations/{id}",
                "/api/location/{id}", "/api/persons/{id}/token", "/api/places", "/api/places/{id}",
                "/api/persons/{id}/encounters", "/api/persons/{id}/encounters/stream",
                "/healthz", "/metrics"}
        missing = want - set(j.get("paths", {}))
        return not missing or ("missing", missing)
    check("GET /api/openapi.json is an OpenAPI 3.0 document of every route", t_openapi)

    def t_metrics():
        s, h, b = req("GET", "/metrics")
        t = b.decode()
        need = ['udaconnect_http_requests_total{route="/api/persons/{id}",status="200"}',
                'udaconnect_http_requests_total{route="/api/persons/{id}",status="404"}',
                'udaconnect_http_request_duration_seconds_bucket{route="/api/persons",le="+Inf"}',
                'udaconnect_http_db_errors_total{kind="client_error"}',
                'udaconnect_http_db_connections ', 'udaconnect_http_db_pool_size ']
        missing = [x for x in need if x not in t]
        return (s == 200 and h["content-type"].startswith("text/plain") and not missing) or missing
    check("GET /metrics: Prometheus text with requests, latency histogram, db errors, pool", t_metrics)

    # --------------------------------------------------------------- static
    def t_static():
        s, h, b = req("GET", "/")
        s2, h2, b2 = req("GET", "/app.js")
        return (s == 200 and h["content-type"].startswith("text/html") and b"<html" in b.lower()
                and s2 == 200 and h2["content-type"].startswith("text/javascript")) or (s, h, s2, h2)
    check("GET / serves the web app (index.html, JavaScript modules)", t_static)
    check("GET /nothing.html -> 404", expect_error("GET", "/nothing.html", 404))

    def t_traversal():
        for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/.hidden", "/..%2fhttpd.c"):
            s, h, b = req("GET", path)
            if s != 404 or b"root:" in b:
                return (path, s, b[:100])
        return True
    check("static files: no path traversal, no hidden files", t_traversal)

    def t_nul():
        # %00 must not cut the path short (it served index.html before)
        s, h, b = req("GET", "/index.html%00.png")
        return s == 404 or (s, h.get("content-type"), b[:80])
    check("static files: /index.html%00.png -> 404, not index.html", t_nul)

    # ---------------------------------------------------- reconnect by itself
    def t_reconnect():
        killed = psql("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                      "where application_name = 'udaconnect-httpd'")
        statuses = [jreq("GET", "/api/persons/5")[0] for _ in range(6)]
        return (int(killed) >= 1 and statuses == [200] * 6) or (killed, statuses)
    check("after its database sessions are terminated, the next requests reconnect and succeed",
          t_reconnect)

    def t_write_after_terminate():
        # a write whose session was terminated before it ran (57P01 before
        # any answer) is run again on a new connection: not a 503, and once
        names = []
        statuses = []
        for i in range(8):
            psql("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                 "where application_name = 'udaconnect-httpd'")
            name = "Terminated %d %d" % (os.getpid(), i)
            names.append(name)
            statuses.append(jreq("POST", "/api/persons",
                                 {"first_name": "Write", "last_name": name, "company_name": "Reconnect"})[0])
        made = psql("select count(*) from udaconnect.person where last_name like 'Terminated %d %%'" % os.getpid())
        return (statuses == [201] * 8 and int(made) == 8) or (statuses, made)
    check("a POST right after its database sessions are terminated: 201 each time, each person created once",
          t_write_after_terminate)

    def t_pipelined_mix():
        # many keep-alive clients at once: the statements of their requests
        # share pipelined round trips (gateway/httpd/worker.c); an error in one
        # (an unknown person) must not disturb the others in the same batch
        import threading
        conn = "/api/persons/%s/connection?start_date=2020-01-01&end_date=2020-12-30&distance=5"
        cases = ["/api/persons/5", "/api/persons/555", conn % 1, conn % 2000000000,
                 "/api/persons/6", "/api/locations/29", conn % 5]
        want = {p: jreq("GET", p)[:3:2] for p in cases}     # one at a time
        bad = []

        def client(k):
            try:
                c = http.client.HTTPConnection(HOST, PORT, timeout=30)
                for i in range(30):
                    p = cases[(k + i) % len(cases)]
                    c.request("GET", p, headers=AUTH)
                    r = c.getresponse()
                    got = (r.status, json.loads(r.read()))
                    if got != want[p]:
                        bad.append((p, got, want[p]))
                c.close()
            except Exception as e:
                bad.append(("client %d" % k, repr(e)))
        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted({w[0] for w in want.values()})
        return (not bad and statuses == [200, 404]) or (statuses, bad[:5])
    check("16 concurrent keep-alive clients, mixed hits, misses and 404 errors: every answer "
          "equals the one-at-a-time answer", t_pipelined_mix)

    # ------------------------------------- JWT callers (the stack, or port +1)
    auth_settings()
    if tokens.STACK_AUTH:
        auth_matrix(PORT)
    else:
        d = start_daemon(HTTP_PORT + 1, [], {"UDACONNECT_AUTH": "on"})
        try:
            auth_matrix(HTTP_PORT + 1)
        finally:
            stop_daemon(d)

    # ------------------------------------------- auth off, CORS (port +1)
    p1 = HTTP_PORT + 1
    d = start_daemon(p1, ["--cors-origin", "https://example.org"], {"UDACONNECT_AUTH": "off"})
    try:
        auth_off(p1)

        def t_cors():
            s, h, j = jreq("GET", "/api/persons/5", port=p1, headers={"Origin": "https://example.org"})
            s2, h2, b2 = req("OPTIONS", "/api/persons/5", port=p1,
                             headers={"Origin": "https://example.org",
                                      "Access-Control-Request-Method": "DELETE"})
            return (h.get("access-control-allow-origin") == "https://example.org" and s2 == 204
                    and "DELETE" in h2.get("access-control-allow-methods", "")
                    and "Authorization" in h2.get("access-control-allow-headers", "")) or (h, s2, h2)
        check("CORS when configured: Allow-Origin on responses, 204 preflight", t_cors)

        def t_no_cors():
            s, h, j = jreq("GET", "/api/persons/5", headers={"Origin": "https://example.org"})
            return "access-control-allow-origin" not in h or h
        check("CORS is off by default", t_no_cors)
    finally:
        stop_daemon(d)

    # --------------------- limits: per-IP, idle timeout, body cap (port +2)
    p2 = HTTP_PORT + 2
    d = start_daemon(p2, ["--max-connections-per-ip", "2", "--connection-timeout", "1",
                          "--max-body", "100", "--threads", "1"])
    try:
        def t_per_ip():
            time.sleep(0.5)     # the start-up probe's connection is gone
            a = socket.create_connection(("127.0.0.1", p2), timeout=10)
            b = socket.create_connection(("127.0.0.1", p2), timeout=10)
            for s_ in (a, b):   # both established and counted
                s_.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if not s_.recv(100).startswith(b"HTTP/1.1 200"):
                    return "the first two connections should work"
            c = socket.create_connection(("127.0.0.1", p2), timeout=10)
            try:
                c.sendall(b"GET /api/persons/5 HTTP/1.1\r\nHost: x\r\n\r\n")
                data = c.recv(100)
            except OSError:
                data = b""
            for s_ in (a, b, c):
                s_.close()
            return data == b"" or data
        check("--max-connections-per-ip 2: a third connection from the same IP is refused", t_per_ip)

        def t_idle():
            a = socket.create_connection(("127.0.0.1", p2), timeout=20)
            t0 = time.time()
            try:
                data = a.recv(100)
            except OSError:
                data = b""
            a.close()
            return (data == b"" and time.time() - t0 < 20) or data
        check("--connection-timeout 1: an idle connection is closed by the server", t_idle)

        # the per-IP count frees a slot only once the server has noticed the
        # closes above: wait (bounded) until a new connection is served again
        for _ in range(100):
            try:
                if req("GET", "/healthz", port=p2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        check("--max-body 100: a 101-byte body -> 413",
              expect_error("POST", "/api/persons", 413, "payload_too_large", port=p2,
                           raw=b"{" + b" " * 99 + b"}", headers={"Content-Type": "application/json"}))
        check("--max-body 100: a small body still works",
              lambda: jreq("POST", "/api/persons", {"first_name": "S", "last_name": "M", "company_name": "L"},
                           port=p2)[0] == 201)
    finally:
        stop_daemon(d)

    # ----------------------- statement timeout -> 504 (port +3, 300 ms)
    p3 = HTTP_PORT + 3
    d = start_daemon(p3, ["--statement-timeout", "300"])
    locker = None
    try:
        locker = subprocess.Popen(["psql", "-X", "-q", "-c",
                                   "begin; lock table udaconnect.person in access exclusive mode; "
                                   "select pg_sleep(5); commit;"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if psql("select count(*) from pg_locks l join pg_class c on c.oid = l.relation "
                        "where c.relname = 'person' and l.mode = 'AccessExclusiveLock' "
                        "and l.granted") == "1":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        check("a statement past --statement-timeout -> 504",
              expect_error("GET", "/api/persons/5", 504, "statement_timeout", port=p3))
    finally:
        if locker:
            locker.terminate()
            locker.wait()
        stop_daemon(d)

    # ------------------------- database unreachable -> 503 (port +3 again)
    dead = "host=127.0.0.1 port=1 dbname=geoconnections connect_timeout=2"
    d = start_daemon(p3, [], dburl=dead)
    try:
        check("database unreachable: GET /healthz -> 503",
              expect_error("GET", "/healthz", 503, "database_unavailable", port=p3))
        check("database unreachable: GET /api/persons -> 503",
              expect_error("GET", "/api/persons", 503, "database_unavailable", port=p3))
        if tokens.STACK_AUTH:
            check("database unreachable: no token -> 401, not 503 (the token is checked first)",
                  unauthorized("GET", "/api/persons", p3))
        check("database unreachable: static files are still served",
              lambda: req("GET", "/", port=p3)[0] == 200)
    finally:
        stop_daemon(d)

    # ------------- directory redirects stay on this site (port +3 again)
    root = os.path.join(SUITE_DIR, "webroot")
    os.makedirs(os.path.join(root, "evil.example"), exist_ok=True)
    with open(os.path.join(root, "evil.example", "index.html"), "w") as f:
        f.write("<p>x</p>")
    d = start_daemon(p3, ["--web-root", root])
    try:
        def t_redirect():
            out = []
            for path in ("/evil.example", "//evil.example", "///evil.example"):
                s, h, b = req("GET", path, port=p3)
                out.append((path, s, h.get("location")))
            return all(s == 301 and loc == "/evil.example/" for _, s, loc in out) or out
        check("a directory redirects to dir/ on this site, never to //host/ (open redirect)", t_redirect)
    finally:
        stop_daemon(d)

    # ------------------------------------------------------- least privilege
    def t_role():
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-U", "udaconnect_api", "-c",
                            "select count(*) from udaconnect.person"], capture_output=True, text=True)
        r2 = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-U", "udaconnect_api", "-c",
                             "select udaconnect.api_person('organizer', null, 5)::text"], capture_output=True, text=True)
        # the one relation it may read (api_person is inlined, so it runs with
        # the caller's rights): the published person fields, read-only
        r3 = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-U", "udaconnect_api", "-c",
                             "select count(*) from udaconnect.api_person_public"],
                            capture_output=True, text=True)
        denied = []
        for sql in ("select count(*) from udaconnect.location",
                    "insert into udaconnect.api_person_public (first_name, last_name, company_name) "
                    "values ('x', 'y', 'z')",
                    "update udaconnect.api_person_public set first_name = 'x'",
                    "delete from udaconnect.api_person_public"):
            d = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-U", "udaconnect_api", "-c", sql],
                               capture_output=True, text=True)
            denied.append(d.returncode != 0 and "permission denied" in d.stderr)
        return (r.returncode != 0 and "permission denied" in r.stderr and r2.returncode == 0
                and "Taco" in r2.stdout and r3.returncode == 0 and int(r3.stdout) > 0
                and all(denied)) or (r.stderr, r2.stdout, r2.stderr, r3.stdout, r3.stderr, denied)
    check("udaconnect_api may call the API functions and read the published person fields, "
          "nothing else (no table, no writes)", t_role)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in list(procs):
            stop_daemon(p)
    tap.exit()
