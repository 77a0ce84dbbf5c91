#!/usr/bin/env python3
"""udaconnect-httpd over HTTPS (UDACONNECT_TLS_CERT_FILE, UDACONNECT_TLS_KEY_FILE).

Makes a self-signed certificate (and a CA chain) with openssl in
$SUITE_DIR/tls, starts a daemon of its own with TLS on a free port, and talks
to it with real clients: curl and Python's urllib / http.client with an
ssl context.  Checks the answers and the HSTS header, that plain HTTP and an
unverified certificate fail, that a refused oversized body still gets its
413 (the lingering close of discard.c over TLS) and that the request limits
hold, that a certificate file holding a chain is served whole, and that
start-up is refused (exit 2, the setting named) for every half or bad
configuration.

Prints TAP lines, numbered from TAP_START.  Needs the stack's environment
(UDACONNECT_HTTP_URL, UDACONNECT_DATABASE_URL, UDACONNECT_JWT_KEY_FILE),
TOP and SUITE_DIR.
"""
import http.client
import json
import os
import socket
import ssl
import subprocess
import traceback
import urllib.error
import urllib.request

import tokens
from httpd_daemon import start_httpd
from tap import Tap

TOP = os.environ["TOP"]
SUITE_DIR = os.environ["SUITE_DIR"]
BINARY = os.path.join(TOP, "gateway/httpd/udaconnect-httpd")
DIR = os.path.join(SUITE_DIR, "tls")
CAP = 65536                       # the daemon's default --max-body
ORG = tokens.bearer(tokens.organizer())
HSTS = "max-age=31536000"

tap = Tap()


def check(desc, fn):
    try:
        r = fn()
        tap(r is True, desc, r)
    except Exception:
        tap(False, desc, traceback.format_exc())


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, **kw)


def openssl(*args):
    r = run("openssl", *args, cwd=DIR)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


def p(name):
    return os.path.join(DIR, name)


def make_certificates():
    """cert.pem/key.pem: self-signed for localhost and 127.0.0.1; other.pem /
    other-key.pem: another pair; root.pem -> inter -> leaf, chain.pem = leaf +
    intermediate (the client trusts only root.pem)."""
    os.makedirs(DIR, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1")
    openssl("req", "-x509", *ec, "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", "key.pem", "-out", "cert.pem")
    openssl("req", "-x509", *ec, "-subj", "/CN=other", "-keyout", "other-key.pem", "-out", "other.pem")
    openssl("req", "-x509", *ec, "-subj", "/CN=udaconnect test root",
            "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=keyCertSign",
            "-keyout", "root-key.pem", "-out", "root.pem")
    openssl("req", *ec, "-subj", "/CN=udaconnect test intermediate",
            "-keyout", "inter-key.pem", "-out", "inter.csr")
    with open(p("inter.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=keyCertSign\n")
    openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root-key.pem",
            "-CAcreateserial", "-days", "1", "-extfile", "inter.ext", "-out", "inter.pem")
    openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", "leaf-key.pem", "-out", "leaf.csr")
    with open(p("leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "inter.pem", "-CAkey", "inter-key.pem",
            "-CAcreateserial", "-days", "1", "-extfile", "leaf.ext", "-out", "leaf.pem")
    with open(p("chain.pem"), "w") as out:
        for name in ("leaf.pem", "inter.pem"):
            with open(p(name)) as f:
                out.write(f.read())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_tls_daemon(cert, key, log):
    port = free_port()
    env = dict(os.environ, UDACONNECT_HTTP_DB_USER="udaconnect_api", UDACONNECT_AUTH="on",
               UDACONNECT_TLS_CERT_FILE=cert, UDACONNECT_TLS_KEY_FILE=key)
    return start_httpd(port, env, log), port


def stop(d):
    d.terminate()
    try:
        d.wait(10)
    except subprocess.TimeoutExpired:
        d.kill()
        d.wait()


def curl(*args):
    """curl's exit status, the HTTP status, the headers (lower-case names)
    and the body."""
    hdr, body = p("curl.headers"), p("curl.body")
    for f in (hdr, body):
        if os.path.exists(f):
            os.unlink(f)
    r = run("curl", "-sS", "-D", hdr, "-o", body, "-w", "%{http_code}", *args)
    headers = {}
    if os.path.exists(hdr):
        with open(hdr) as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
    text = open(body).read() if os.path.exists(body) else ""
    return r.returncode, r.stdout, headers, text, r.stderr


def urlopen(url, ctx, data=None, headers=None):
    """(status, headers, body) also for an error status."""
    req = urllib.request.Request(url, data=data, headers=dict(ORG, **(headers or {})))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def person5(body):
    j = json.loads(body)
    return j.get("id") == 5 and bool(j.get("first_name"))


def served(port, ctx):
    """An HTTPS request: 200 for person 5 with the HSTS header."""
    st, h, body = urlopen("https://127.0.0.1:%d/api/persons/5" % port, ctx)
    return (st == 200 and person5(body) and h.get("Strict-Transport-Security") == HSTS) \
        or (st, dict(h), body[:300])


def serving_checks(port):
    url = "https://127.0.0.1:%d" % port
    ctx = ssl.create_default_context(cafile=p("cert.pem"))

    def t_curl():
        rc, code, h, body, err = curl("--cacert", p("cert.pem"), url + "/api/persons/5",
                                      "-H", "Authorization: " + ORG["Authorization"])
        return (rc == 0 and code == "200" and person5(body)
                and h.get("strict-transport-security") == HSTS) or (rc, code, h, body, err)
    check("TLS: curl --cacert GET /api/persons/5 over HTTPS -> 200, the person, "
          "Strict-Transport-Security: max-age=31536000", t_curl)
    check("TLS: urllib (ssl context with the certificate) GET /api/persons/5 -> 200 with HSTS",
          lambda: served(port, ctx))

    def t_localhost():
        st, h, body = urlopen("https://localhost:%d/api/persons" % port, ctx)
        return (st == 200 and isinstance(json.loads(body), list)
                and h.get("Strict-Transport-Security") == HSTS) or (st, dict(h), body[:200])
    check("TLS: urllib GET https://localhost:PORT/api/persons (verified by name) -> 200 with HSTS",
          t_localhost)

    def t_401():
        req = urllib.request.Request(url + "/api/persons/5")
        try:
            urllib.request.urlopen(req, context=ctx, timeout=30)
            return "answered without a token"
        except urllib.error.HTTPError as e:
            return (e.code == 401 and e.headers.get("Strict-Transport-Security") == HSTS) \
                or (e.code, dict(e.headers))
    check("TLS: no token over HTTPS -> 401, the error answer with HSTS too", t_401)

    def t_plain_curl():
        rc, code, h, body, err = curl("http://127.0.0.1:%d/api/persons/5" % port,
                                      "-H", "Authorization: " + ORG["Authorization"])
        return (rc != 0 and code == "000" and not body) or (rc, code, h, body, err)
    check("TLS: plain http:// to the HTTPS port fails (curl gets no HTTP answer)", t_plain_curl)

    def t_plain_urllib():
        try:
            r = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=30)
            return "plain HTTP answered %d" % r.status
        except urllib.error.HTTPError as e:
            return "plain HTTP answered %d" % e.code
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            return True
    check("TLS: plain http:// with urllib fails (no HTTP answer)", t_plain_urllib)

    def t_noca_curl():
        rc, code, h, body, err = curl(url + "/api/persons/5",
                                      "-H", "Authorization: " + ORG["Authorization"])
        return (rc == 60 and code == "000") or (rc, code, err)
    check("TLS: curl without --cacert fails verification (exit 60, nothing sent)", t_noca_curl)

    def t_noca_urllib():
        try:
            urllib.request.urlopen(url + "/healthz", context=ssl.create_default_context(),
                                   timeout=30)
            return "verified a self-signed certificate"
        except urllib.error.URLError as e:
            return isinstance(e.reason, ssl.SSLCertVerificationError) or repr(e)
    check("TLS: urllib's default context refuses the self-signed certificate", t_noca_urllib)
    limit_checks(url, ctx)


def limit_checks(url, ctx):
    """The refusals of limits.c and discard.c over TLS."""
    big = b'{"first_name": "' + b"x" * (10 * CAP) + b'"}'

    def t_413_urllib():
        # urllib sends the whole body before it reads: only the lingering
        # close turns this into the 413 instead of a reset
        st, h, body = urlopen(url + "/api/persons", ctx, data=big,
                              headers={"Content-Type": "application/json"})
        j = json.loads(body)
        return (st == 413 and j["error"]["code"] == "payload_too_large"
                and h.get("Connection") == "close"
                and h.get("Strict-Transport-Security") == HSTS) or (st, dict(h), body[:300])
    check("TLS: a body 10x the cap POSTed by urllib -> 413 payload_too_large, "
          "Connection: close (not a reset)", t_413_urllib)
    check("TLS: after the 413 a new connection is served (200)",
          lambda: served(int(url.rsplit(":", 1)[1]), ctx))

    def t_413_chunked():
        c = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=ctx,
                                        timeout=30)
        c.putrequest("POST", "/api/locations")
        c.putheader("Authorization", ORG["Authorization"])
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        piece = b"x" * 16384
        for _ in range(2 * CAP // len(piece)):
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        body = r.read()
        c.close()
        return (r.status == 413 and json.loads(body)["error"]["code"] == "payload_too_large") \
            or (r.status, body[:300])
    check("TLS: a chunked body 2x the cap (http.client) -> 413", t_413_chunked)

    def t_413_curl():
        with open(p("big.json"), "wb") as f:
            f.write(big)
        rc, code, h, body, err = curl("--cacert", p("cert.pem"), url + "/api/persons",
                                      "-H", "Authorization: " + ORG["Authorization"],
                                      "-H", "Content-Type: application/json",
                                      "--data-binary", "@" + p("big.json"))
        return (code == "413" and json.loads(body)["error"]["code"] == "payload_too_large") \
            or (rc, code, body[:300], err)
    check("TLS: curl POSTing a body 10x the cap -> 413", t_413_curl)

    def t_414():
        st, h, body = urlopen(url + "/api/persons?x=" + "a" * 9000, ctx)
        return (st == 414 and json.loads(body)["error"]["code"] == "uri_too_long") \
            or (st, body[:300])
    check("TLS: a 9 KB request target -> 414 uri_too_long (the JSON error)", t_414)


def chain_check():
    """The certificate file holds leaf + intermediate; the client trusts only
    the root, so it verifies only if the daemon sends the whole chain."""
    d, port = start_tls_daemon(p("chain.pem"), p("leaf-key.pem"), p("httpd-chain.log"))
    try:
        check("TLS: a certificate file with the chain (leaf + intermediate): a client "
              "trusting only the root gets 200", lambda: served(port, ssl.create_default_context(
                  cafile=p("root.pem"))))
    finally:
        stop(d)


def refusals():
    cases = (
        ("the certificate without the key", {"UDACONNECT_TLS_CERT_FILE": p("cert.pem")}, (),
         "UDACONNECT_TLS_KEY_FILE (--tls-key) is not"),
        ("the key without the certificate", {"UDACONNECT_TLS_KEY_FILE": p("key.pem")}, (),
         "UDACONNECT_TLS_CERT_FILE (--tls-cert) is not"),
        ("--tls-key alone (the flag)", {}, ("--tls-key", p("key.pem")),
         "UDACONNECT_TLS_CERT_FILE (--tls-cert) is not"),
        ("a certificate file that does not exist",
         {"UDACONNECT_TLS_CERT_FILE": p("missing.pem"), "UDACONNECT_TLS_KEY_FILE": p("key.pem")},
         (), "UDACONNECT_TLS_CERT_FILE (--tls-cert): cannot open"),
        ("a key file that does not exist",
         {"UDACONNECT_TLS_CERT_FILE": p("cert.pem"), "UDACONNECT_TLS_KEY_FILE": p("missing.pem")},
         (), "UDACONNECT_TLS_KEY_FILE (--tls-key): cannot open"),
        ("a key that is not the certificate's",
         {"UDACONNECT_TLS_CERT_FILE": p("cert.pem"), "UDACONNECT_TLS_KEY_FILE": p("other-key.pem")},
         (), "UDACONNECT_TLS_KEY_FILE (--tls-key) \"%s\" is not the key of the certificate"
         % p("other-key.pem")),
        ("a key file given as the certificate",
         {"UDACONNECT_TLS_CERT_FILE": p("key.pem"), "UDACONNECT_TLS_KEY_FILE": p("key.pem")},
         (), "holds no usable PEM certificate"),
    )
    for what, extra, args, why in cases:
        def f(extra=extra, args=args, why=why):
            env = {k: v for k, v in os.environ.items() if not k.startswith("UDACONNECT_TLS_")}
            env.update(extra, UDACONNECT_AUTH="off")
            r = run(BINARY, "--port", "1", "--bind", "127.0.0.1", *args, env=env)
            return (r.returncode == 2 and why in r.stderr) or (r.returncode, r.stderr)
        check("TLS: %s -> refused at start (exit 2: %s)" % (what, why.split(" \"")[0]), f)


def plain_checks(log):
    def t_plain_no_hsts():
        base = os.environ["UDACONNECT_HTTP_URL"]
        st, h, body = urlopen(base + "/api/persons/5", None)
        return (st == 200 and "Strict-Transport-Security" not in h) or (st, dict(h))
    check("TLS off (the stack's daemon): plain HTTP answers without Strict-Transport-Security",
          t_plain_no_hsts)

    def t_log():
        with open(log) as f:
            text = f.read()
        return ("listening on https://127.0.0.1:" in text and "HTTPS only" in text) or text[-500:]
    check("TLS: the start-up log line says https:// and HTTPS only", t_log)


def main():
    try:
        make_certificates()
    except Exception:
        tap(False, "TLS: making the test certificates with openssl", traceback.format_exc())
        tap.exit()
    log = p("httpd-tls.log")
    d, port = start_tls_daemon(p("cert.pem"), p("key.pem"), log)
    try:
        serving_checks(port)
    finally:
        stop(d)
    plain_checks(log)
    chain_check()
    refusals()
    tap.exit()


if __name__ == "__main__":
    main()
