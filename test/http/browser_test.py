#!/usr/bin/env python3
"""Headless Chromium drives the web app through the DevTools protocol
(chromium's own remote debugging; a minimal WebSocket client from the
standard library: no npm, no extra packages).

Env: UDACONNECT_HTTP_URL, SUITE_DIR, CHROMIUM (default /usr/bin/chromium),
TAP_START (number of the first test).  Prints TAP lines; screenshots go to
$SUITE_DIR/webapp-*.png.
"""
import base64
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

from httpd_daemon import start_httpd

BASE = os.environ["UDACONNECT_HTTP_URL"]
SUITE_DIR = os.environ["SUITE_DIR"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
n = int(os.environ.get("TAP_START", "1")) - 1
failed = 0


def tap(ok, desc, diag=None):
    global n, failed
    n += 1
    print(("ok" if ok else "not ok") + " %d - %s" % (n, desc), flush=True)
    if not ok:
        failed += 1
        if diag is not None:
            for line in str(diag).splitlines()[:15]:
                print("#   " + line, flush=True)


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol (text frames)."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (u.path, u.hostname, u.port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake failed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("websocket handshake refused: %r" % head[:200])

    def _read(self, k):
        while len(self.buf) < k:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:k], self.buf[k:]
        return out

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n_ = len(data)
        if n_ < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n_)
        elif n_ < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n_)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n_)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            op, ln = b0 & 0x0F, b1 & 0x7F
            if ln == 126:
                ln = struct.unpack("!H", self._read(2))[0]
            elif ln == 127:
                ln = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(ln)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x8:
                raise RuntimeError("websocket closed by the browser")
            if op == 0x9:       # ping -> pong
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
                continue
            if op in (0x1, 0x2, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=SUITE_DIR)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             "--disable-extensions", "--mute-audio", "--window-size=1280,900",
             "--user-data-dir=" + self.profile, "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log, end = b"", time.time() + 60
        while time.time() < end:
            r, _, _ = select.select([self.proc.stderr], [], [], 1)
            if r:
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                log += chunk
                m = re.search(rb"DevTools listening on (ws://\S+)", log)
                if m:
                    break
        else:
            m = None
        if not m:
            raise RuntimeError("chromium did not start: %s" % log[-2000:].decode(errors="replace"))
        self.ws = WebSocket(m.group(1).decode())
        self.next_id = 0
        self.events = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            if "method" in r:
                self.events.append(r)

    def S(self, method, params=None):
        return self.send(method, params, self.session)

    def evaluate(self, expr):
        r = self.S("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text"))
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=20):
        end, last = time.time() + timeout, None
        while time.time() < end:
            try:
                last = self.evaluate(expr)
            except RuntimeError as e:
                last = str(e)
            if last:
                return last
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for %s (last: %r)" % (what, last))

    def click(self, selector):
        """A real mouse click at the element's centre."""
        box = self.evaluate("""(() => { const e = document.querySelector(%s);
            if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();
            return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()""" % json.dumps(selector))
        if not box:
            raise RuntimeError("no element " + selector)
        for t in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.S("Input.dispatchMouseEvent", {"type": t, "x": box["x"], "y": box["y"],
                                                "button": "left", "clickCount": 1})

    def type(self, selector, text):
        self.click(selector)
        self.S("Input.insertText", {"text": text})

    def set_value(self, selector, value):
        self.evaluate("document.querySelector(%s).value = %s; true" % (json.dumps(selector), json.dumps(value)))

    def screenshot(self, name):
        data = self.S("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path = os.path.join(SUITE_DIR, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        self.ws.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def api(path):
    with urllib.request.urlopen(BASE + path, timeout=30) as r:
        return json.load(r)


def start_token_daemon(port, token):
    """A second udaconnect-httpd on the same database that requires a token."""
    env = dict(os.environ, UDACONNECT_API_TOKEN=token, UDACONNECT_HTTP_DB_USER="udaconnect_api")
    return start_httpd(port, env, os.path.join(SUITE_DIR, "httpd-token-%d.log" % port))


def test(desc, fn):
    try:
        r = fn()
        tap(r is None or r is True, desc, None if r in (None, True) else r)
    except Exception:
        tap(False, desc, traceback.format_exc())


def main():
    b = Browser()
    try:
        b.S("Page.enable")
        b.S("Runtime.enable")
        b.S("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900,
                                                   "deviceScaleFactor": 1, "mobile": False})
        CONN = "?start_date=2020-01-01&end_date=2020-12-30&distance=5"

        def t_load():
            b.S("Page.navigate", {"url": BASE + "/"})
            b.wait_for("document.querySelectorAll('#persons button[data-person-id]').length >= 5",
                       "the persons list")
            names = b.evaluate("[...document.querySelectorAll('#persons .name')].map(e => e.textContent)")
            return all(x in names for x in ("Pam Trexler", "Taco Fargo", "Frank Shader")) or names
        test("the web app loads and lists the persons", t_load)

        def t_click():
            b.click('#persons button[data-person-id="1"]')
            b.wait_for("""/Pam Trexler/.test(document.querySelector('#detail-title').textContent)
                && document.querySelector('#connections-status').getAttribute('aria-busy') === 'false'
                && !document.querySelector('#connections-status').classList.contains('loading')""",
                       "the connections of person 1")
            got = b.evaluate("""[...document.querySelectorAll('#connections li.connection')].map(li => ({
                id: Number(li.dataset.personId), name: li.querySelector('.name').textContent,
                company: li.querySelector('.company').textContent,
                met: li.querySelector('.met').textContent}))""")
            want = api("/api/persons/1/connections" + CONN)
            if len(got) != len(want) or not got:
                return (got, want)
            for g, w in zip(got, want):
                text = "met at %s, %s on %s" % (json.dumps(w["latitude"]), json.dumps(w["longitude"]),
                                                w["first_met"][:10])
                if (g["id"] != w["person_id"] or g["name"] != "%s %s" % (w["first_name"], w["last_name"])
                        or g["company"] != w["company_name"] or not g["met"].startswith(text)):
                    return (g, w, text)
            return True
        test("clicking a person shows one entry per connected person (name, company, where and when)", t_click)

        def t_plot():
            r = b.evaluate("""({hidden: document.querySelector('#plot').hidden,
                own: document.querySelectorAll('#plot svg g.own circle').length,
                met: document.querySelectorAll('#plot svg g.met path').length})""")
            own = api("/api/locations?person_id=1&start_date=2020-01-01&end_date=2020-12-30&limit=1000")
            met = api("/api/persons/1/connection" + CONN)
            return (not r["hidden"] and r["own"] == len(own) and r["met"] == len(met) and r["met"] > 0) \
                or (r, len(own), len(met))
        test("the SVG plot shows the person's locations and the meeting points", t_plot)

        def t_shot1():
            print("# screenshot: " + b.screenshot("webapp-connections.png"), flush=True)
        test("screenshot of the connections view saved", t_shot1)

        def t_error():
            b.set_value("#filters [name=start_date]", "2020-12-30")
            b.set_value("#filters [name=end_date]", "2020-01-01")
            b.click("#filters button[type=submit]")
            msg = b.wait_for("document.querySelector('#connections-status.error')?.textContent", "the error state")
            b.set_value("#filters [name=start_date]", "2020-01-01")
            b.set_value("#filters [name=end_date]", "2020-12-30")
            return "start_date must not be after end_date" in msg or msg
        test("a start date after the end date shows the server's error to the user", t_error)

        def t_window():
            b.set_value("#filters [name=window]", "60")
            b.set_value("#filters [name=distance]", "10")
            b.click("#filters button[type=submit]")
            b.wait_for("""!document.querySelector('#connections-status').classList.contains('loading')
                && !document.querySelector('#connections-status').classList.contains('error')""", "reload")
            got = b.evaluate("document.querySelectorAll('#connections li.connection').length")
            want = api("/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30&distance=10&window=60")
            return got == len(want) or (got, len(want))
        test("the distance and time window controls change the query", t_window)

        stamp = "%x" % int(time.time() * 1000)

        def t_add():
            b.type("#add-person [name=first_name]", "Chromium")
            b.type("#add-person [name=last_name]", "Tester " + stamp)
            b.type("#add-person [name=company_name]", "Headless Inc.")
            b.click("#add-person button[type=submit]")
            b.wait_for("[...document.querySelectorAll('#persons .name')].some(e => e.textContent === %s)"
                       % json.dumps("Chromium Tester " + stamp), "the new person in the list")
            p = [x for x in api("/api/persons") if x["last_name"] == "Tester " + stamp]
            status = b.evaluate("document.querySelector('#add-status').textContent")
            return (len(p) == 1 and p[0]["company_name"] == "Headless Inc." and "Added" in status) or (p, status)
        test("adding a person through the form shows them in the list", t_add)

        def t_new_person_empty():
            pid = [x for x in api("/api/persons") if x["last_name"] == "Tester " + stamp][0]["id"]
            b.click('#persons button[data-person-id="%d"]' % pid)
            msg = b.wait_for("""(() => { const s = document.querySelector('#connections-status');
                return /Chromium Tester/.test(document.querySelector('#detail-title').textContent)
                    && !s.classList.contains('loading') && s.textContent; })()""", "the new person's view")
            r = b.evaluate("""({items: document.querySelectorAll('#connections li').length,
                svg: document.querySelector('#plot svg text')?.textContent})""")
            return ("No connections" in msg and r["items"] == 0 and "No locations" in (r["svg"] or "")) \
                or (msg, r)
        test("a person without locations: 'no connections' and an empty plot, no error", t_new_person_empty)

        def t_empty():
            before = len(api("/api/persons"))
            b.click("#add-person button[type=submit]")
            msg = b.wait_for("document.querySelector('#add-status.error')?.textContent", "the form error")
            after = len(api("/api/persons"))
            return (before == after and "fill in" in msg) or (before, after, msg)
        test("submitting the form empty shows an error and saves nothing", t_empty)

        def t_shot2():
            print("# screenshot: " + b.screenshot("webapp-added-person.png"), flush=True)
        test("screenshot after adding a person saved", t_shot2)

        # ---- the API token field, against a second daemon that requires one
        tport = int(os.environ.get("UDACONNECT_HTTP_PORT", urllib.parse.urlparse(BASE).port)) + 1
        tbase = "http://127.0.0.1:%d" % tport
        token = "web-token-" + stamp
        daemon = start_token_daemon(tport, token)
        try:
            def t_token_needed():
                b.S("Page.navigate", {"url": tbase + "/"})
                b.wait_for("document.querySelectorAll('#persons button[data-person-id]').length >= 5",
                           "the persons list (reads need no token)")
                before = len(api("/api/persons"))
                b.type("#add-person [name=first_name]", "Token")
                b.type("#add-person [name=last_name]", "Less " + stamp)
                b.type("#add-person [name=company_name]", "Nope Ltd.")
                b.click("#add-person button[type=submit]")
                msg = b.wait_for("document.querySelector('#add-status.error')?.textContent", "the 401 error")
                r = b.evaluate("""({open: document.querySelector('#token-box').open,
                    focused: document.activeElement?.id})""")
                after = len(api("/api/persons"))
                print("# screenshot: " + b.screenshot("webapp-token-needed.png"), flush=True)
                return ("needs an API token" in msg and r["open"] and r["focused"] == "api-token"
                        and before == after) or (msg, r, before, after)
            test("with a token required, adding a person without one shows the need for a token "
                 "and saves nothing", t_token_needed)

            def t_token_sent():
                b.type("#api-token", token)
                b.click("#add-person button[type=submit]")
                b.wait_for("[...document.querySelectorAll('#persons .name')].some(e => e.textContent === %s)"
                           % json.dumps("Token Less " + stamp), "the person added with the token")
                stored = b.evaluate("sessionStorage.getItem('udaconnect.apiToken')")
                p = [x for x in api("/api/persons") if x["last_name"] == "Less " + stamp]
                return (len(p) == 1 and stored == token) or (p, stored)
            test("the API token field: the token is kept in sessionStorage and sent, and the person is added",
                 t_token_sent)

            def t_token_kept():
                b.S("Page.reload")
                b.wait_for("document.querySelectorAll('#persons button[data-person-id]').length >= 5",
                           "the reloaded app")
                return b.evaluate("document.querySelector('#api-token').value") == token
            test("the API token survives a reload of the tab", t_token_kept)
        finally:
            daemon.terminate()
            daemon.wait(10)

        def t_noerrors():
            bad = [e["params"] for e in b.events if e["method"] == "Runtime.exceptionThrown"
                   or (e["method"] == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")]
            return not bad or bad[:3]
        test("no JavaScript errors", t_noerrors)
    finally:
        b.close()


if __name__ == "__main__":
    try:
        main()
    except Exception:
        tap(False, "the browser test ran", traceback.format_exc())
    sys.exit(1 if failed else 0)
