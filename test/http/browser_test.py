#!/usr/bin/env python3
"""The web app in headless Chromium, driven through WebDriver: Debian's
python3-selenium and chromium-driver (the chromedriver of the installed
chromium), both from scripts/deps.sh.

Every wait is an explicit WebDriverWait on a condition of the page, with a
bounded timeout; so is every WebDriver command (RemoteConnection timeout) and
every page load.  The browser gets a fresh profile in $SUITE_DIR and is always
quit, whatever fails.

The stack's daemon asks for tokens (UDACONNECT_AUTH=on, the default): the
tests mint them with PyJWT (python3-jwt, the independent client; tokens.py)
from the stack's key file, sign the browser in through the badge link /#token=<jwt>
and call the API as an organizer to compare.  A second daemon with
UDACONNECT_AUTH=off checks that the app works without any token.

Env: UDACONNECT_HTTP_URL, UDACONNECT_JWT_KEY_FILE, SUITE_DIR,
CHROMIUM (default /usr/bin/chromium),
CHROMEDRIVER (default /usr/bin/chromedriver), TAP_START (number of the first
test).  Prints TAP lines; screenshots go to $SUITE_DIR/webapp-*.png, the
driver's log to $SUITE_DIR/chromedriver.log.
"""
import json
import os
import re
import tempfile
import time
import traceback
import urllib.parse
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (JavascriptException, NoSuchElementException,
                                        StaleElementReferenceException, TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.remote_connection import RemoteConnection
from selenium.webdriver.support.ui import WebDriverWait

from httpd_daemon import start_httpd
from tap import Tap
import tokens

BASE = os.environ["UDACONNECT_HTTP_URL"]
SUITE_DIR = os.environ["SUITE_DIR"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 900
WAIT = 20               # seconds for any one condition of the page
COMMAND_TIMEOUT = 60    # seconds for any one WebDriver command
tap = Tap(diag_lines=15)


def start_browser():
    """Chromium through chromedriver; headless, fresh profile, 1280x900."""
    RemoteConnection.set_timeout(COMMAND_TIMEOUT)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # --no-sandbox: the suite runs Chromium as an unprivileged user in
    # containers without user namespaces, where the sandbox cannot start.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--no-first-run", "--mute-audio", "--no-proxy-server",
                "--window-size=%d,%d" % (WIDTH, HEIGHT),
                "--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-profile-", dir=SUITE_DIR)):
        opts.add_argument(arg)
    # The browser log (console.error, uncaught exceptions) for the last test.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.ignore_local_proxy_environment_variables()
    service = Service(CHROMEDRIVER, log_path=os.path.join(SUITE_DIR, "chromedriver.log"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(COMMAND_TIMEOUT)
    d.set_script_timeout(COMMAND_TIMEOUT)
    return d


def new_person(first, last):
    """A person made through the API as an organizer (its JSON)."""
    status, p = call("POST", "/api/persons", {"first_name": first, "last_name": last,
                                              "company_name": "Gone GmbH"})
    if status != 201:
        raise AssertionError("POST /api/persons: HTTP %d %r" % (status, p))
    return p


def mint(sub, role, ttl=3600):
    """A token as the server issues them; ttl < 0: already expired."""
    return tokens.mint({"sub": str(sub), "role": role}, ttl=ttl)


ORGANIZER = None        # the organizer token of api(), set in main()


def call(method, path, body=None, token=None, base=None):
    """(status, parsed JSON body) of one API call; token None = organizer."""
    token = ORGANIZER if token is None else token
    req = urllib.request.Request((base or BASE) + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Accept": "application/json"})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def api(path, token=None):
    status, body = call("GET", path, token=token)
    if status != 200:
        raise AssertionError("GET %s answered %d: %r" % (path, status, body))
    return body


def grpc_record(person, lat, lon):
    """LocationService/RecordLocation through the stack's grpcd (now), as an
    organizer; the stubs are generated by 60-http.sh into $SUITE_DIR/gen."""
    import sys
    sys.path.insert(0, os.path.join(SUITE_DIR, "gen"))
    import grpc
    from google.protobuf import timestamp_pb2
    from udaconnect.v1 import location_pb2 as v1
    from udaconnect.v1 import location_service_pb2_grpc as svc_grpc
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    with grpc.insecure_channel(os.environ["UDACONNECT_GRPC_ADDR"]) as ch:
        svc_grpc.LocationServiceStub(ch).RecordLocation(
            v1.Location(person_id=person, latitude=lat, longitude=lon, creation_time=ts),
            timeout=10, metadata=[("authorization", "Bearer " + ORGANIZER)])


def start_open_daemon(port):
    """A second udaconnect-httpd on the same database with authentication off."""
    env = dict(os.environ, UDACONNECT_AUTH="off", UDACONNECT_HTTP_DB_USER="udaconnect_api")
    return start_httpd(port, env, os.path.join(SUITE_DIR, "httpd-open-%d.log" % port))


def describe(exc):
    """A failure in a few lines: what went wrong, then where in this file
    (a WebDriver error without chromedriver's native stack)."""
    msg = getattr(exc, "msg", None) or str(exc)
    lines = ["%s: %s" % (type(exc).__name__, msg)]
    for f in traceback.extract_tb(exc.__traceback__):
        if os.path.basename(f.filename) == os.path.basename(__file__):
            lines.append("  line %d, in %s: %s" % (f.lineno, f.name, f.line))
    return "\n".join(lines)


def test(desc, fn):
    try:
        r = fn()
        tap(r is None or r is True, desc, None if r in (None, True) else r)
    except Exception as e:
        tap(False, desc, describe(e))


class Page:
    """The few page operations the tests need, on top of one WebDriver."""

    def __init__(self, driver):
        self.d = driver

    def wait(self, cond, what, timeout=WAIT):
        """Wait until cond(driver) is truthy and return its value; on timeout
        fail with what was awaited and the last value seen."""
        last = [None]

        def probe(d):
            last[0] = cond(d)
            return last[0]
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                                     JavascriptException)).until(probe)
        except TimeoutException:
            raise AssertionError("timed out after %d s waiting for %s (last: %r; the page says: %r)"
                                 % (timeout, what, last[0], self.statuses())) from None

    def statuses(self):
        """The app's status lines, for a failure's diagnosis."""
        try:
            return [t for t in self.texts(".status") if t]
        except Exception as e:
            return "(unreadable: %s)" % type(e).__name__

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        """textContent of the first match ('' if there is none): exactly what
        the app wrote, whatever the CSS does to it."""
        found = self.all(css)
        return found[0].get_property("textContent") if found else ""

    def texts(self, css):
        return [e.get_property("textContent") for e in self.all(css)]

    def click(self, css):
        """A WebDriver click: scrolled into view, a real mouse click at the
        element's centre, refused if another element would get it."""
        self.find(css).click()

    def type(self, css, text):
        e = self.find(css)
        e.click()
        e.send_keys(text)

    def replace(self, css, text):
        e = self.find(css)
        e.clear()
        e.send_keys(text)

    def set_value(self, css, value):
        """Date inputs: typing depends on the browser's locale; set the value."""
        self.d.execute_script("arguments[0].value = arguments[1];", self.find(css), value)

    def persons_listed(self, what="the persons list"):
        self.wait(lambda d: len(self.all("#persons button[data-person-id]")) >= 5, what)

    def person_named(self, name):
        self.wait(lambda d: name in self.texts("#persons .name"), "%r in the persons list" % name)

    def connections_settled(self, what):
        """#connections-status neither loading nor busy; returns its classes."""
        def cond(d):
            s = self.find("#connections-status")
            cls = s.get_attribute("class").split()
            return "loading" not in cls and s.get_attribute("aria-busy") != "true" and (cls + ["settled"])
        return self.wait(cond, what)

    def stored_token(self):
        return self.d.execute_script("return sessionStorage.getItem('udaconnect.token');")

    def href(self):
        return self.d.execute_script("return location.href;")

    def shown(self, css):
        found = self.all(css)
        return bool(found) and found[0].is_displayed()

    def sign_in_page(self, what):
        """Waits for the sign-in page (and the app gone); returns its text."""
        return self.wait(lambda d: self.shown("#signin") and not self.shown("#app")
                         and self.text("#signin"), what)

    def signed_in_as(self, name, what):
        self.wait(lambda d: self.shown("#session") and self.text("#session-name") == name, what)

    def screenshot(self, name):
        """The whole page, not just the viewport: the window is grown to the
        page's height for the shot and set back afterwards."""
        path = os.path.join(SUITE_DIR, name)
        size = self.d.get_window_size()
        extra = self.d.execute_script("return window.outerHeight - window.innerHeight;") or 0
        height = self.d.execute_script("return document.documentElement.scrollHeight;")
        self.d.set_window_size(size["width"], min(max(height + extra, size["height"]), 8000))
        try:
            if not self.d.save_screenshot(path):
                raise RuntimeError("no screenshot written to " + path)
        finally:
            self.d.set_window_size(size["width"], size["height"])
        return path


def browser_errors(d):
    """console.error calls and uncaught exceptions in the browser log.  Failed
    requests (source 'network': the 400 and 401 the tests provoke) are the
    app's expected errors, shown to the user; they are not JavaScript errors."""
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and e.get("source") != "network"]


def main():
    global ORGANIZER
    ORGANIZER = mint("browser-test organizer", "organizer")
    d = start_browser()
    try:
        run(Page(d))
    finally:
        d.quit()


def run(b):
    d = b.d
    CONN = "?start_date=2020-01-01&end_date=2020-12-30&distance=5"
    errors = []

    def t_no_token():
        d.get(BASE + "/")
        text = b.sign_in_page("the sign-in page")
        status, body = call("GET", "/api/persons", token="")
        reason = body["error"]["message"] if status == 401 else None
        r = {"persons": len(b.all("#persons li")), "reason": b.text("#signin-reason"), "server": (status, reason)}
        return (status == 401 and "Scan the QR code on your badge" in text and r["persons"] == 0
                and reason in r["reason"]) or r
    test("without a token: the sign-in page (scan your badge / open your sign-in link) "
         "with the server's reason, no app", t_no_token)

    def t_load():
        d.get("about:blank")
        d.get(BASE + "/#token=" + ORGANIZER)
        b.persons_listed()
        b.signed_in_as("browser-test organizer", "the organizer's name in the header")
        names = b.texts("#persons .name")
        r = {"href": b.href(), "stored": b.stored_token() == ORGANIZER, "role": b.text("#session-role")}
        return (all(x in names for x in ("Pam Trexler", "Taco Fargo", "Frank Shader"))
                and r["href"] == BASE + "/" and r["stored"] and r["role"] == "organizer") or (names, r)
    test("an organizer signs in with /#token=<jwt>: the token moves to sessionStorage, the address "
         "loses the fragment, the header names the organizer, all persons are listed", t_load)

    def t_click():
        b.click('#persons button[data-person-id="1"]')
        b.wait(lambda d: "Pam Trexler" in b.text("#detail-title"), "the title naming person 1")
        b.connections_settled("the connections of person 1")
        got = [{"id": int(li.get_attribute("data-person-id")),
                "name": li.find_element(By.CSS_SELECTOR, ".name").get_property("textContent"),
                "company": li.find_element(By.CSS_SELECTOR, ".company").get_property("textContent"),
                "met": li.find_element(By.CSS_SELECTOR, ".met").get_property("textContent")}
               for li in b.all("#connections li.connection")]
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
        plot = b.find("#plot")
        r = {"hidden": plot.get_property("hidden"), "displayed": plot.is_displayed(),
             "own": len(b.all("#plot svg g.own circle")), "met": len(b.all("#plot svg g.met path"))}
        own = api("/api/locations?person_id=1&start_date=2020-01-01&end_date=2020-12-30&limit=1000")
        met = api("/api/persons/1/connection" + CONN)
        return (not r["hidden"] and r["displayed"] and r["own"] == len(own) and r["met"] == len(met)
                and r["met"] > 0) or (r, len(own), len(met))
    test("the SVG plot shows the person's locations and the meeting points", t_plot)

    def t_shot1():
        print("# screenshot: " + b.screenshot("webapp-connections.png"), flush=True)
    test("screenshot of the connections view saved", t_shot1)

    def t_error():
        b.set_value("#filters [name=start_date]", "2020-12-30")
        b.set_value("#filters [name=end_date]", "2020-01-01")
        b.click("#filters button[type=submit]")
        msg = b.wait(lambda d: b.text("#connections-status.error"), "the error state")
        b.set_value("#filters [name=start_date]", "2020-01-01")
        b.set_value("#filters [name=end_date]", "2020-12-30")
        return "start_date must not be after end_date" in msg or msg
    test("a start date after the end date shows the server's error to the user", t_error)

    def t_window():
        b.replace("#filters [name=window]", "60")
        b.replace("#filters [name=distance]", "10")
        b.click("#filters button[type=submit]")
        cls = b.connections_settled("the reloaded connections")
        if "error" in cls:
            return ("error shown", b.text("#connections-status"))
        got = len(b.all("#connections li.connection"))
        want = api("/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30&distance=10&window=60")
        return got == len(want) or (got, len(want))
    test("the distance and time window controls change the query", t_window)

    stamp = "%x" % int(time.time() * 1000)

    def t_add():
        b.type("#add-person [name=first_name]", "Chromium")
        b.type("#add-person [name=last_name]", "Tester " + stamp)
        b.type("#add-person [name=company_name]", "Headless Inc.")
        b.click("#add-person button[type=submit]")
        b.person_named("Chromium Tester " + stamp)
        p = [x for x in api("/api/persons") if x["last_name"] == "Tester " + stamp]
        status = b.text("#add-status")
        return (len(p) == 1 and p[0]["company_name"] == "Headless Inc." and "Added" in status) or (p, status)
    test("adding a person through the form shows them in the list", t_add)

    def t_new_person_empty():
        pid = [x for x in api("/api/persons") if x["last_name"] == "Tester " + stamp][0]["id"]
        b.click('#persons button[data-person-id="%d"]' % pid)
        b.wait(lambda d: "Chromium Tester" in b.text("#detail-title"), "the new person's title")
        b.connections_settled("the new person's view")
        msg = b.wait(lambda d: b.text("#connections-status"), "the new person's status text")
        r = {"items": len(b.all("#connections li")), "svg": b.text("#plot svg text")}
        return ("No connections" in msg and r["items"] == 0 and "No locations" in r["svg"]) or (msg, r)
    test("a person without locations: 'no connections' and an empty plot, no error", t_new_person_empty)

    def t_empty():
        before = len(api("/api/persons"))
        b.click("#add-person button[type=submit]")
        msg = b.wait(lambda d: b.text("#add-status.error"), "the form error")
        after = len(api("/api/persons"))
        return (before == after and "fill in" in msg) or (before, after, msg)
    test("submitting the form empty shows an error and saves nothing", t_empty)

    def t_shot2():
        print("# screenshot: " + b.screenshot("webapp-added-person.png"), flush=True)
    test("screenshot after adding a person saved", t_shot2)

    def t_org_erase():
        pid = [x for x in api("/api/persons") if x["last_name"] == "Tester " + stamp][0]["id"]
        b.click('#persons button[data-person-id="%d"]' % pid)
        b.wait(lambda d: "Chromium Tester" in b.text("#detail-title"), "the person to delete")
        b.click("#erase-button")
        b.wait(lambda d: b.shown("#erase-confirm"), "the confirmation step")
        b.click("#erase-yes")
        msg = b.wait(lambda d: "Deleted" in b.text("#connections-status") and b.text("#connections-status"),
                     "what was deleted")
        b.wait(lambda d: not b.all('#persons button[data-person-id="%d"]' % pid), "the person gone from the list")
        status, _ = call("GET", "/api/persons/%d" % pid)
        want = "Deleted Chromium Tester %s: the person record, 0 locations and 0 rejected" % stamp
        return (status == 404 and want in msg and b.stored_token() == ORGANIZER) or (status, msg)
    test("an organizer's 'delete this person' (confirmed) erases the chosen person, says what went "
         "and the organizer stays signed in", t_org_erase)

    def t_sign_out():
        b.click("#sign-out")
        text = b.sign_in_page("the sign-in page after signing out")
        stored = b.stored_token()
        d.refresh()
        again = b.sign_in_page("the sign-in page after a reload")
        return ("signed out" in text and stored is None and "Scan the QR code" in again) or (text, stored, again)
    test("sign out forgets the token (sessionStorage) and shows the sign-in page, also after a reload",
         t_sign_out)

    # ---- an attendee: person 1, signed in from the page already open (only
    # the fragment changes, so the page is not reloaded)
    pam = mint(1, "attendee")

    def t_attendee_signin():
        d.get(BASE + "/#token=" + pam)
        b.signed_in_as("Pam Trexler", "the attendee's name in the header")
        r = {"href": b.href(), "stored": b.stored_token() == pam, "role": b.text("#session-role"),
             "chooser": [e.get_attribute("data-person-id") for e in b.all("#persons button")],
             "title": b.text("#people-title"), "add": b.shown("#add-person"),
             "erase": b.shown("#erase-button") and b.text("#erase-button")}
        return (r["href"] == BASE + "/" and r["stored"] and r["role"] == "attendee" and r["chooser"] == ["1"]
                and r["title"] == "You" and not r["add"] and r["erase"] == "Delete my data") or r
    test("an attendee signs in with /#token=<jwt> in an open tab: fragment gone, token in sessionStorage, "
         "their name (GET /api/persons/{sub}) and role shown, the chooser is themself", t_attendee_signin)

    def t_attendee_connections():
        b.wait(lambda d: "Pam Trexler" in b.text("#detail-title"), "the attendee's own connections")
        b.connections_settled("the attendee's connections")
        got = [int(li.get_attribute("data-person-id")) for li in b.all("#connections li.connection")]
        want = [c["person_id"] for c in api("/api/persons/1/connections" + CONN, token=pam)]
        plot = len(b.all("#plot svg g.own circle"))
        own = len(api("/api/locations?person_id=1&start_date=2020-01-01&end_date=2020-12-30&limit=1000"))
        print("# screenshot: " + b.screenshot("webapp-attendee.png"), flush=True)
        return (got == want and got and plot == own) or (got, want, plot, own)
    test("the signed-in attendee's own connections and locations render", t_attendee_connections)

    def t_live_encounter():
        # Pam's page is open on her encounters; a colleague's point and then
        # Pam's own, both sent through gRPC (grpcd -> Kafka -> the ingest
        # -> the encounter -> NOTIFY -> httpd's stream -> fetch() in the
        # page), make a new encounter that appears without a reload.
        b.wait(lambda d: b.shown("#encounters-card") and "Live" in b.text("#encounters-status"),
               "the attendee's encounters timeline, live")
        before = {e.get_attribute("data-encounter-id") for e in b.all("#encounters li.encounter")}
        d.execute_script("window.__udcNoReload = true;")
        lat, lon = 48.0 + (time.time() % 1000) / 1e4, 11.5
        t0 = time.time()
        grpc_record(5, lat, lon)
        grpc_record(1, lat, lon + 0.00001)
        sent = time.time()

        def appeared(dd):
            rows = [e for e in b.all("#encounters li.encounter")
                    if e.get_attribute("data-encounter-id") not in before]
            return rows and rows[0].get_property("textContent")
        text = b.wait(appeared, "the new encounter in the open page")
        seen = time.time()
        print("# the encounter appeared %.2f s after the second point was acknowledged (%.2f s after the first)"
              % (seen - sent, seen - t0), flush=True)
        same_page = d.execute_script("return window.__udcNoReload === true;")
        return (same_page and "Taco Fargo" in text) or (text, same_page)
    test("live: a colleague's point and the attendee's own, sent through gRPC, make a new encounter "
         "(\"Taco Fargo ... match\") appear in the open page without a reload", t_live_encounter)

    def t_attendee_403():
        b.replace("#filters [name=distance]", "50")
        b.click("#filters button[type=submit]")
        msg = b.wait(lambda d: b.text("#connections-status.error"), "the 403 error")
        status, body = call("GET", "/api/persons/1/connections?start_date=2020-01-01&end_date=2020-12-30"
                            "&distance=50", token=pam)
        b.replace("#filters [name=distance]", "5")
        reason = body["error"]["message"] if status == 403 else None
        return (status == 403 and reason in msg and b.shown("#app")) or (msg, status, body)
    test("an attendee's search wider than allowed shows the server's 403 message", t_attendee_403)

    def t_attendee_reload():
        d.refresh()
        b.signed_in_as("Pam Trexler", "the attendee after a reload")
        return b.href() == BASE + "/" or b.href()
    test("the sign-in survives a reload of the tab (sessionStorage)", t_attendee_reload)

    def t_expired():
        expired = mint(1, "attendee", ttl=-120)
        d.execute_script("sessionStorage.setItem('udaconnect.token', arguments[0]);", expired)
        d.refresh()
        b.sign_in_page("the sign-in page for an expired token")
        status, body = call("GET", "/api/persons/1", token=expired)
        reason = body["error"]["message"] if status == 401 else None
        shown = b.text("#signin-reason")
        print("# screenshot: " + b.screenshot("webapp-signin-expired.png"), flush=True)
        # the reason names the server's clock ("now <seconds>"): compared without numbers
        same = reason and re.sub(r"[0-9]+", "#", reason) in re.sub(r"[0-9]+", "#", shown)
        return (status == 401 and same and b.stored_token() is None) or (shown, status, body)
    test("an expired token: the sign-in page with the server's reason, the token forgotten", t_expired)

    # ---- Delete my data: a person of this test's own, with two locations
    def t_erase_self():
        p = new_person("Erase", "Me " + stamp)
        for lat in (35.0585136, 35.0585137):
            st, loc = call("POST", "/api/locations", {"person_id": p["id"], "latitude": lat,
                                                      "longitude": -106.5719566,
                                                      "creation_time": "2020-07-07T10:00:00Z"})
            if st != 201:
                return ("POST /api/locations", st, loc)
        me = mint(p["id"], "attendee")
        d.get(BASE + "/#token=" + me)
        b.signed_in_as("Erase Me " + stamp, "the attendee to erase")
        b.click("#erase-button")
        b.wait(lambda d: b.shown("#erase-confirm"), "the confirmation step")
        b.click("#erase-no")
        b.wait(lambda d: not b.shown("#erase-confirm"), "the confirmation withdrawn")
        kept = call("GET", "/api/persons/%d" % p["id"])[0]
        b.click("#erase-button")
        b.wait(lambda d: b.shown("#erase-confirm"), "the confirmation step again")
        b.click("#erase-yes")
        b.sign_in_page("the sign-in page after the erasure")
        done = b.text("#signin-done")
        print("# screenshot: " + b.screenshot("webapp-data-deleted.png"), flush=True)
        r = {"kept after cancel": kept, "done": done, "stored": b.stored_token(),
             "organizer GET": call("GET", "/api/persons/%d" % p["id"])[0],
             "own token GET": call("GET", "/api/persons/%d" % p["id"], token=me)[0]}
        return (kept == 200 and "your person record, 2 locations and 0 rejected location messages" in done
                and r["stored"] is None and r["organizer GET"] == 404
                and r["own token GET"] in (401, 403, 404)) or r
    test("Delete my data: cancel keeps everything; confirmed, the person is erased (organizer GET -> 404), "
         "the app says what went and signs out", t_erase_self)

    # ---- erased elsewhere: an attendee's page is open on their live
    # encounters when an organizer erases them; the stream's last event
    # ("erased") signs the page out instead of leaving it retrying
    def t_erased_elsewhere():
        p = new_person("Erased", "Elsewhere " + stamp)
        d.get(BASE + "/#token=" + mint(p["id"], "attendee"))
        b.signed_in_as("Erased Elsewhere " + stamp, "the attendee to be erased")
        b.wait(lambda d: b.shown("#encounters-card") and "Live" in b.text("#encounters-status"),
               "the attendee's encounters timeline, live")
        d.execute_script("window.__udcNoReload = true;")
        gone = call("DELETE", "/api/persons/%d" % p["id"])[0]
        b.sign_in_page("the sign-in page once the attendee is erased by an organizer")
        r = {"DELETE": gone, "done": b.text("#signin-done"), "stored": b.stored_token(),
             "same page": d.execute_script("return window.__udcNoReload === true;")}
        return (gone == 200 and "Your data was deleted" in r["done"] and r["stored"] is None
                and r["same page"]) or r
    test("an attendee's page open on their live encounters, erased by an organizer meanwhile: the stream's "
         "last event (erased) signs the page out, saying the data was deleted", t_erased_elsewhere)

    # The log is read (and emptied) before the second origin: a failure
    # there still reports the errors of the first part.
    errors += browser_errors(d)

    # ---- authentication off: the app works without any token
    oport = int(os.environ.get("UDACONNECT_HTTP_PORT", urllib.parse.urlparse(BASE).port)) + 1
    obase = "http://127.0.0.1:%d" % oport
    daemon = start_open_daemon(oport)
    try:
        def t_open():
            d.get(obase + "/")
            b.persons_listed("the persons list without a token")
            b.click('#persons button[data-person-id="1"]')
            b.connections_settled("the connections of person 1 without a token")
            got = len(b.all("#connections li.connection"))
            want = len(api("/api/persons/1/connections" + CONN))
            r = {"session": b.shown("#session"), "signin": b.shown("#signin"), "add": b.shown("#add-person"),
                 "erase": b.text("#erase-button")}
            return (got == want and got > 0 and not r["session"] and not r["signin"] and r["add"]
                    and r["erase"] == "Delete this person") or (got, want, r)
        test("with the server's authentication off the app works without a token, as before", t_open)
    finally:
        daemon.terminate()
        daemon.wait(10)

    def t_noerrors():
        errors.extend(browser_errors(d))
        return not errors or errors[:3]
    test("no JavaScript errors", t_noerrors)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        tap(False, "the browser test ran", describe(e))
    tap.exit()
