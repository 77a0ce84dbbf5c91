#!/usr/bin/env python3
"""udaconnect-httpd: an oversized request body is answered 413 to every
common client, not only to those that read a response before they have sent
their whole body.

Python's http.client and requests send the whole body first and read the
answer after.  A server that answers 413 and closes its socket while body
bytes are still unread makes the kernel send a reset, and such a client sees
ECONNRESET / BrokenPipe instead of the 413.  The server reads and throws away
the rest of such a body (up to a bound), then answers 413 with
"Connection: close".

Prints TAP lines, numbered from TAP_START.  Needs UDACONNECT_HTTP_URL (the
stack's daemon, with the default --max-body unless UDACONNECT_HTTP_MAX_BODY
says otherwise).  Every request carries an organizer's token (tokens.py):
without one, the answer would be the 401, decided as early as the 413.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import traceback
import urllib.parse
from tap import Tap
from tokens import stack_headers

AUTH = stack_headers()
AUTH_LINE = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in AUTH.items())

BASE = os.environ["UDACONNECT_HTTP_URL"]
U = urllib.parse.urlparse(BASE)
HOST, PORT = U.hostname, U.port
CAP = int(os.environ.get("UDACONNECT_HTTP_MAX_BODY") or 65536)
# the default discard bound (docs/http.md): 8 MiB or 4 x the cap
DISCARD = int(os.environ.get("UDACONNECT_HTTP_MAX_DISCARD") or max(8 << 20, 4 * CAP))
ROUTES = ("/api/locations", "/api/persons")
FACTORS = (2, 10)

tap = Tap()


skip = tap.skip


def check(desc, fn):
    try:
        r = fn()
        tap(r is True, desc, r)
    except (ConnectionResetError, BrokenPipeError) as e:
        tap(False, desc, "the connection was reset instead of answered: %r" % e)
    except Exception:
        tap(False, desc, traceback.format_exc())


def body_of(size):
    """A JSON object of exactly `size` bytes."""
    head, tail = b'{"first_name": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def pieces(data, size=16384):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def is_413(status, headers, body):
    """The 413 in the one error shape, and the connection closed after it."""
    try:
        j = json.loads(body)
    except ValueError:
        return "HTTP %d, not JSON: %r" % (status, body[:200])
    e = j.get("error") if isinstance(j, dict) else None
    if status != 413 or not isinstance(e, dict) or e.get("status") != 413 \
            or e.get("code") != "payload_too_large" or not e.get("message"):
        return "HTTP %d %r" % (status, j)
    if headers.get("content-type", "").split(";")[0] != "application/json":
        return "content-type %r" % headers.get("content-type")
    if headers.get("connection", "").lower() != "close":
        return "no Connection: close (%r)" % headers
    return True


def still_serving():
    """A normal request on a new connection."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    c.request("GET", "/api/persons/5", headers=AUTH)
    r = c.getresponse()
    j = json.loads(r.read())
    c.close()
    return (r.status == 200 and j.get("id") == 5) or ("afterwards: GET /api/persons/5", r.status, j)


def post_http_client(path, data, chunked):
    c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    h = dict(AUTH, **{"Content-Type": "application/json"})
    if chunked:
        # an iterable body without a length: http.client sends it chunked
        c.request("POST", path, body=pieces(data), headers=h, encode_chunked=True)
    else:
        c.request("POST", path, body=data, headers=h)
    r = c.getresponse()
    b = r.read()
    hs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hs, b


def post_requests(path, data, chunked):
    import requests
    h = dict(AUTH, **{"Content-Type": "application/json"})
    r = requests.post(BASE + path, data=pieces(data) if chunked else data, headers=h, timeout=60)
    if chunked and r.request.headers.get("Transfer-Encoding") != "chunked":
        raise AssertionError("requests did not send the body chunked: %r" % r.request.headers)
    return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def t_post(client, path, factor, chunked):
    def f():
        s, h, b = client(path, body_of(factor * CAP), chunked)
        ok = is_413(s, h, b)
        return still_serving() if ok is True else ok
    return f


def main():
    clients = [("http.client", post_http_client)]
    try:
        import requests     # noqa: F401  (python3-requests, scripts/deps.sh)
        clients.append(("requests", post_requests))
    except ImportError:
        skip("python3-requests is not installed: no tests with requests")
    for name, client in clients:
        for path in ROUTES:
            for factor in FACTORS:
                for chunked in (False, True):
                    check("%s: POST %s with a body %dx the cap (%s) -> 413 payload_too_large, "
                          "then a new connection is served"
                          % (name, path, factor, "chunked" if chunked else "Content-Length"),
                          t_post(client, path, factor, chunked))

    def t_415():
        # any refusal decided before the body is read waits for the body too
        c = http.client.HTTPConnection(HOST, PORT, timeout=60)
        c.request("POST", "/api/persons", body=body_of(10 * CAP),
                  headers=dict(AUTH, **{"Content-Type": "text/plain"}))
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        return (r.status == 415 and j["error"]["code"] == "unsupported_media_type") or (r.status, j)
    check("http.client: POST text/plain with a body 10x the cap -> 415, not a reset", t_415)

    def exchange(request):
        """Sends the request's head (no body) and reads until the server
        closes: (the whole answer, its head, its body)."""
        sk = socket.create_connection((HOST, PORT), timeout=30)
        sk.sendall(request)
        data = b""
        while True:
            chunk = sk.recv(65536)
            if not chunk:
                break
            data += chunk
        sk.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return data, head, body

    def t_expect():
        # Expect: 100-continue (curl's way for bodies over 1 KiB): the 413
        # comes back at once and the body is never sent
        data, head, body = exchange(
            b"POST /api/locations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + AUTH_LINE + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (2 * CAP))
        return (head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head
                and json.loads(body)["error"]["code"] == "payload_too_large") or data[:300]
    check("Expect: 100-continue with a body 2x the cap -> 413 at once, no 100 Continue", t_expect)

    def t_get_expect():
        # a GET with a body it asks to send (Expect: 100-continue): answered
        # before the body, when the server cannot put the request aside for
        # the database, so it is refused (413) rather than run on the thread
        # that serves other connections
        data, head, body = exchange(b"GET /api/persons/5 HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE +
                                    b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        if not (head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head
                and json.loads(body)["error"]["code"] == "payload_too_large"
                and "no request body" in json.loads(body)["error"]["message"]):
            return data[:300]
        return still_serving()
    check("GET /api/persons/5 with Expect: 100-continue and a body -> 413 (the route takes no "
          "body), no 100 Continue; then a new connection is served", t_get_expect)

    def curl(*args):
        with tempfile.NamedTemporaryFile() as f:
            f.write(body_of(10 * CAP))
            f.flush()
            out = subprocess.run(["curl", "-sS", "-o", "/dev/stdout", "-w", "\\n%{http_code} %{size_upload}",
                                  "-H", "Content-Type: application/json", "--data-binary", "@" + f.name]
                                 + [x for k, v in AUTH.items() for x in ("-H", "%s: %s" % (k, v))]
                                 + list(args) + [BASE + "/api/persons"],
                                 capture_output=True, text=True, timeout=60)
        body, _, tail = out.stdout.rpartition("\n")
        code, up = tail.split()
        ok = code == "413" and json.loads(body)["error"]["code"] == "payload_too_large"
        return ok, int(up), (out.stdout[-300:], out.stderr)

    def t_curl():
        ok, up, diag = curl()
        return ok or diag
    check("curl: a body 10x the cap -> 413 payload_too_large", t_curl)

    def t_curl_expect():
        # curl asks with Expect: 100-continue for bodies over 1 MiB (here
        # forced): it gets the 413 without uploading anything
        ok, up, diag = curl("-H", "Expect: 100-continue")
        return (ok and up == 0) or diag
    check("curl with Expect: 100-continue: a body 10x the cap -> 413 before any of it is uploaded",
          t_curl_expect)

    def t_bounded():
        # a chunked body past the discard bound: the server stops reading and
        # closes the connection (no answer; what matters is that it ends)
        sk = socket.create_connection((HOST, PORT), timeout=60)
        sk.sendall(b"POST /api/persons HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + AUTH_LINE + b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        sent = 0
        try:
            while sent < 2 * DISCARD:
                sk.sendall(piece)
                sent += 65536
            sk.sendall(b"0\r\n\r\n")
            data = sk.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        sk.close()
        if data:
            return "the server read %d bytes past the discard bound (%d) and answered %r" % (
                sent, DISCARD, data[:100])
        return still_serving()
    check("a chunked body 2x past the discard bound: the connection is closed, "
          "then a new connection is served", t_bounded)

    def t_discard_below_cap():
        # a discard bound at or below the cap would cut off, unanswered, every
        # chunked body just past the cap: refused at start, naming the setting
        binary = os.path.join(os.environ.get("TOP", "."), "gateway/httpd/udaconnect-httpd")
        r = subprocess.run([binary, "--max-body", "1000", "--max-discard", "1000"],
                           capture_output=True, text=True, timeout=30)
        return (r.returncode == 2 and "--max-discard" in r.stderr) or (r.returncode, r.stderr)
    check("--max-discard not above --max-body: refused at start (exit 2) naming --max-discard",
          t_discard_below_cap)


if __name__ == "__main__":
    main()
    tap.exit()
