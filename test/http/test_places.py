#!/usr/bin/env python3
"""udaconnect-httpd: the named places (/api/places, issue 15) over real HTTP:
organizers create them from a polygon or a centre and radius and delete
them; every established caller reads them; each bad body is a 400 naming
its field.

Prints TAP lines numbered from TAP_START.  Needs the stack's environment
(UDACONNECT_HTTP_URL, UDACONNECT_AUTH, UDACONNECT_JWT_KEY_FILE).  Tokens are
minted with PyJWT (tokens.py); the attendee is seed person 5 (an attendee's
rights over places do not depend on their person).
"""
import http.client
import json
import math
import os
import traceback
import urllib.parse

import tokens
from tap import Tap

U = urllib.parse.urlparse(os.environ["UDACONNECT_HTTP_URL"])
HOST, PORT = U.hostname, U.port
AUTH = tokens.STACK_AUTH
ORG = tokens.organizer() if AUTH else None
ATT = tokens.attendee(5) if AUTH else None
P = "/api/places"

tap = Tap()


def check(desc, fn):
    try:
        r = fn()
        tap(r is True, desc, None if r is True else r)
    except Exception:
        tap(False, desc, traceback.format_exc())


def req(method, path, body=None, token="org", raw=None):
    """(status, headers lower-case, parsed JSON or None).  A 503 is asked
    again, as its Retry-After says: test_api.py, just before, terminates
    the daemon's database connections, and a POST that meets a lost one is
    not retried by the daemon (it cannot know whether it ran)."""
    for _ in range(3):
        r = req_once(method, path, body, token, raw)
        if r[0] != 503:
            break
    return r


def req_once(method, path, body, token, raw):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    h = {}
    t = ORG if token == "org" else token
    if t:
        h.update(tokens.bearer(t))
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    b = r.read()
    hs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = ("NOT JSON", b[:200])
    return r.status, hs, j


def error_is(s, j, status, field=None, code=None):
    if s != status:
        return "HTTP %d != %d: %r" % (s, status, j)
    e = (j or {}).get("error") if isinstance(j, dict) else None
    if not isinstance(e, dict) or not e.get("message"):
        return "not an error body: %r" % (j,)
    if field is not None and e.get("field") != field:
        return "field %r != %r: %r" % (e.get("field"), field, e)
    if code is not None and e.get("code") != code:
        return "code %r != %r: %r" % (e.get("code"), code, e)
    return True


# a room of about 37 x 55 m and a booth inside it, near (48.1, 11.1)
ROOM = [{"latitude": 48.1, "longitude": 11.1}, {"latitude": 48.1, "longitude": 11.1005},
        {"latitude": 48.1005, "longitude": 11.1005}, {"latitude": 48.1005, "longitude": 11.1}]
created = {}


def t_post_polygon():
    s, h, j = req("POST", P, {"name": " HTTP room ", "kind": "room", "floor": 2, "polygon": ROOM})
    if s != 201:
        return (s, j)
    created["room"] = j["id"]
    want = {"id", "name", "kind", "floor", "area_m2", "polygon"}
    if set(j) != want:
        return ("keys", sorted(j))
    if (j["name"], j["kind"], j["floor"]) != ("HTTP room", "room", 2):
        return j
    if j["polygon"] != ROOM:
        return ("the outline comes back as given", j["polygon"])
    # 0.0005 degrees: ~55.6 m of latitude x ~37.2 m of longitude at 48.1 N
    if not 2000 < j["area_m2"] < 2150:
        return ("area_m2", j["area_m2"])
    if h.get("location") != "%s/%d" % (P, j["id"]):
        return ("Location", h.get("location"))
    return True


def t_post_circle():
    s, h, j = req("POST", P, {"name": "HTTP booth", "kind": "booth", "latitude": 48.1002,
                              "longitude": 11.1002, "radius_m": 2.5})
    if s != 201:
        return (s, j)
    created["booth"] = j["id"]
    if j["floor"] is not None or len(j["polygon"]) != 128:
        return ("floor, vertices", j["floor"], len(j["polygon"]))
    if abs(j["area_m2"] / (math.pi * 2.5 ** 2) - 1) > 0.002:
        return ("area_m2 is not pi r^2", j["area_m2"])
    lat = [v["latitude"] for v in j["polygon"]]
    return abs((max(lat) + min(lat)) / 2 - 48.1002) < 1e-6 or ("centre", min(lat), max(lat))


def t_closed_ring():
    ring = ROOM[:1] + [{"latitude": 48.1, "longitude": 11.1003},
                       {"latitude": 48.1003, "longitude": 11.1003}] + ROOM[:1]
    s, h, j = req("POST", P, {"name": "closed", "kind": "area", "polygon": ring})
    if s != 201:
        return (s, j)
    created["closed"] = j["id"]
    return len(j["polygon"]) == 3 or j["polygon"]


def t_get_list():
    s, h, j = req("GET", P, token=ATT if AUTH else "org")
    if s != 200 or not isinstance(j, list):
        return (s, j)
    ids = [p["id"] for p in j]
    mine = [created.get(k) for k in ("room", "booth", "closed")]
    return (ids == sorted(ids) and all(i in ids for i in mine)) or (ids, mine)


def t_get_one():
    s, h, j = req("GET", "%s/%d" % (P, created["booth"]), token=ATT if AUTH else "org")
    return (s == 200 and j["id"] == created["booth"] and j["name"] == "HTTP booth") or (s, j)


def bad(body, field, code=None, status=400):
    def f():
        s, h, j = req("POST", P, body)
        return error_is(s, j, status, field, code)
    return f


def main():
    check("POST /api/places with a polygon (organizer): 201, the place, its Location; the outline comes back as given", t_post_polygon)
    check("POST /api/places with latitude, longitude, radius_m: 201, a 128-vertex circle of area pi r^2", t_post_circle)
    check("POST /api/places with a closed ring: the closing vertex is not repeated in the answer", t_closed_ring)
    if AUTH:
        check("POST /api/places as an attendee: 403 forbidden",
              lambda: error_is(*req("POST", P, {"name": "x", "kind": "booth", "latitude": 48,
                                                "longitude": 11, "radius_m": 2}, token=ATT)[::2],
                               403, code="forbidden"))
        check("POST /api/places without a token: 401",
              lambda: error_is(*req("POST", P, {"name": "x", "kind": "booth", "latitude": 48,
                                                "longitude": 11, "radius_m": 2}, token=None)[::2], 401))
        check("GET /api/places without a token: 401",
              lambda: error_is(*req("GET", P, token=None)[::2], 401))
    else:
        for _ in range(3):
            tap.skip("UDACONNECT_AUTH=off: every caller is an organizer")
    circle = {"latitude": 48.2, "longitude": 11.2, "radius_m": 2}
    cases = [
        ("no name", {"kind": "booth", **circle}, "name", "missing_field"),
        ("an empty name", {"name": "  ", "kind": "booth", **circle}, "name", None),
        ("a name of 201 characters", {"name": "x" * 201, "kind": "booth", **circle}, "name", None),
        ("kind hall", {"name": "x", "kind": "hall", **circle}, "kind", None),
        ("kind 3", {"name": "x", "kind": 3, **circle}, "kind", "invalid_type"),
        ("floor \"2\"", {"name": "x", "kind": "booth", "floor": "2", **circle}, "floor", "invalid_type"),
        ("floor 2^31", {"name": "x", "kind": "booth", "floor": 2 ** 31, **circle}, "floor", None),
        ("neither polygon nor centre", {"name": "x", "kind": "booth"}, "polygon", None),
        ("both polygon and centre", {"name": "x", "kind": "booth", "polygon": ROOM, **circle}, "polygon", None),
        ("polygon not an array", {"name": "x", "kind": "booth", "polygon": {"type": "Polygon"}}, "polygon", "invalid_type"),
        ("polygon of two vertices", {"name": "x", "kind": "booth", "polygon": ROOM[:2]}, "polygon", None),
        ("polygon vertex [lat, lon]", {"name": "x", "kind": "booth", "polygon": ROOM[:2] + [[48.1005, 11.1]]}, "polygon", None),
        ("polygon vertex latitude 95", {"name": "x", "kind": "booth",
                                        "polygon": ROOM[:2] + [{"latitude": 95, "longitude": 11.1}]}, "polygon", None),
        ("a polygon crossing itself", {"name": "x", "kind": "booth",
                                       "polygon": [ROOM[0], ROOM[2], ROOM[1], ROOM[3]]}, "polygon", None),
        ("a polygon over 1 km2", {"name": "x", "kind": "area", "polygon": [
            {"latitude": 48, "longitude": 11}, {"latitude": 48, "longitude": 11.02},
            {"latitude": 48.02, "longitude": 11.02}, {"latitude": 48.02, "longitude": 11}]}, "polygon", None),
        ("a polygon of 1001 vertices", {"name": "x", "kind": "area", "polygon": [
            {"latitude": round(48.3 + 0.0001 * math.sin(2 * math.pi * i / 1001), 7),
             "longitude": round(11.3 + 0.0001 * math.cos(2 * math.pi * i / 1001), 7)}
            for i in range(1001)]}, "polygon", None),
        ("radius_m 1000", {"name": "x", "kind": "booth", **dict(circle, radius_m=1000)}, "radius_m", None),
        ("radius_m missing", {"name": "x", "kind": "booth", "latitude": 48.2, "longitude": 11.2}, "radius_m", None),
        ("longitude missing", {"name": "x", "kind": "booth", "latitude": 48.2, "radius_m": 2}, "longitude", None),
        ("latitude 91", {"name": "x", "kind": "booth", **dict(circle, latitude=91)}, "latitude", None),
        ("latitude \"48\"", {"name": "x", "kind": "booth", **dict(circle, latitude="48")}, "latitude", "invalid_type"),
    ]
    for what, body, field, code in cases:
        check("POST /api/places with %s: 400 naming %s" % (what, field), bad(body, field, code))
    check("POST /api/places with malformed JSON: 400 invalid_json",
          lambda: error_is(*req("POST", P, raw=b'{"name": ')[::2], 400, code="invalid_json"))
    check("GET /api/places/{id} of no place: 404",
          lambda: error_is(*req("GET", P + "/2147483647")[::2], 404, "id", "not_found"))
    check("GET /api/places/abc: 400 naming id",
          lambda: error_is(*req("GET", P + "/abc")[::2], 400, "id"))
    check("PUT /api/places: 405 with Allow",
          lambda: (lambda s, h, j: error_is(s, j, 405) is True and "POST" in h.get("allow", "")
                   or (s, h.get("allow"), j))(*req("PUT", P, raw=b"{}")))
    check("GET /api/places as an attendee: every place in id order, the new ones among them", t_get_list)
    check("GET /api/places/{id} as an attendee: the place", t_get_one)
    if AUTH:
        check("DELETE /api/places/{id} as an attendee: 403",
              lambda: error_is(*req("DELETE", "%s/%d" % (P, created["booth"]), token=ATT)[::2], 403))
    else:
        tap.skip("UDACONNECT_AUTH=off: every caller is an organizer")

    def t_delete():
        url = "%s/%d" % (P, created["booth"])
        s, h, j = req("DELETE", url)
        if s != 200 or j != {"deleted": True, "id": created["booth"]}:
            return (s, j)
        s2, h2, j2 = req("DELETE", url)
        s3, h3, j3 = req("GET", url)
        return (error_is(s2, j2, 404) is True and error_is(s3, j3, 404) is True) or (s2, j2, s3, j3)
    check("DELETE /api/places/{id} (organizer): 200, then 404, and GET finds it gone", t_delete)
    for k in ("room", "closed"):
        if k in created:
            req("DELETE", "%s/%d" % (P, created[k]))
    tap.exit()


if __name__ == "__main__":
    main()
