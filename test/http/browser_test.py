#!/usr/bin/env python3
"""The web app in headless Chromium, driven through WebDriver: Debian's
python3-selenium and chromium-driver (the chromedriver of the installed
chromium), both from scripts/deps.sh.

Every wait is an explicit WebDriverWait on a condition of the page, with a
bounded timeout; so is every WebDriver command (RemoteConnection timeout) and
every page load.  The browser gets a fresh profile in $SUITE_DIR and is always
quit, whatever fails.

Env: UDACONNECT_HTTP_URL, SUITE_DIR, CHROMIUM (default /usr/bin/chromium),
CHROMEDRIVER (default /usr/bin/chromedriver), TAP_START (number of the first
test).  Prints TAP lines; screenshots go to $SUITE_DIR/webapp-*.png, the
driver's log to $SUITE_DIR/chromedriver.log.
"""
import json
import os
import sys
import tempfile
import time
import traceback
import urllib.parse
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


def api(path):
    with urllib.request.urlopen(BASE + path, timeout=30) as r:
        return json.load(r)


def start_token_daemon(port, token):
    """A second udaconnect-httpd on the same database that requires a token."""
    env = dict(os.environ, UDACONNECT_API_TOKEN=token, UDACONNECT_HTTP_DB_USER="udaconnect_api")
    return start_httpd(port, env, os.path.join(SUITE_DIR, "httpd-token-%d.log" % port))


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
    d = start_browser()
    try:
        run(Page(d))
    finally:
        d.quit()


def run(b):
    d = b.d
    CONN = "?start_date=2020-01-01&end_date=2020-12-30&distance=5"
    errors = []

    def t_load():
        d.get(BASE + "/")
        b.persons_listed()
        names = b.texts("#persons .name")
        return all(x in names for x in ("Pam Trexler", "Taco Fargo", "Frank Shader")) or names
    test("the web app loads and lists the persons", t_load)

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

    # The log is read (and emptied) before the second origin: a failure
    # there still reports the errors of the first part.
    errors += browser_errors(d)

    # ---- the API token field, against a second daemon that requires one
    tport = int(os.environ.get("UDACONNECT_HTTP_PORT", urllib.parse.urlparse(BASE).port)) + 1
    tbase = "http://127.0.0.1:%d" % tport
    token = "web-token-" + stamp
    daemon = start_token_daemon(tport, token)
    try:
        def t_token_needed():
            d.get(tbase + "/")
            b.persons_listed("the persons list (reads need no token)")
            before = len(api("/api/persons"))
            b.type("#add-person [name=first_name]", "Token")
            b.type("#add-person [name=last_name]", "Less " + stamp)
            b.type("#add-person [name=company_name]", "Nope Ltd.")
            b.click("#add-person button[type=submit]")
            msg = b.wait(lambda d: b.text("#add-status.error"), "the 401 error")
            r = {"open": b.find("#token-box").get_property("open"),
                 "focused": d.switch_to.active_element.get_attribute("id")}
            after = len(api("/api/persons"))
            print("# screenshot: " + b.screenshot("webapp-token-needed.png"), flush=True)
            return ("needs an API token" in msg and r["open"] and r["focused"] == "api-token"
                    and before == after) or (msg, r, before, after)
        test("with a token required, adding a person without one shows the need for a token "
             "and saves nothing", t_token_needed)

        def t_token_sent():
            b.type("#api-token", token)
            b.click("#add-person button[type=submit]")
            b.person_named("Token Less " + stamp)
            stored = d.execute_script("return sessionStorage.getItem('udaconnect.apiToken');")
            p = [x for x in api("/api/persons") if x["last_name"] == "Less " + stamp]
            return (len(p) == 1 and stored == token) or (p, stored)
        test("the API token field: the token is kept in sessionStorage and sent, and the person is added",
             t_token_sent)

        def t_token_kept():
            d.refresh()
            b.persons_listed("the reloaded app")
            value = b.find("#api-token").get_property("value")
            return value == token or value
        test("the API token survives a reload of the tab", t_token_kept)
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
