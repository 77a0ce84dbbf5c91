#!/usr/bin/python3
"""A write never shares a pipelined round with other requests.

udaconnect-httpd sends the reads that arrive together on one worker to
PostgreSQL as one pipelined round, under one Sync: one implicit transaction.
A write in such a round would be rolled back by another request's error after
its own answer had gone out ("erased": true, and the person still there).
This test makes that likely if the code allowed it: many erasures (DELETE)
interleaved, on many connections at once, with reads that fail (an attendee's
403); then every erasure answered 200 must really have happened.

Prints TAP lines from $TAP_START.  Needs the stack's environment.
"""
import http.client
import json
import os
import threading
import urllib.parse

import tokens
from tap import Tap

URL = urllib.parse.urlparse(os.environ["UDACONNECT_HTTP_URL"])
ORG = tokens.organizer("write-rounds")
ATT = tokens.mint({"sub": "5", "role": "attendee"})
N = 60          # erasures
DENIED = 8      # failing reads around each erasure


def request(method, path, token, body=None):
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=60)
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def main():
    tap = Tap()
    ids = []
    for i in range(N):
        st, data = request("POST", "/api/persons", ORG,
                           {"first_name": "Round", "last_name": "Trip %d" % i, "company_name": "Rounds"})
        if st == 201:
            ids.append(json.loads(data)["id"])
    tap(len(ids) == N, "%d persons to erase created" % N, "created %d" % len(ids))

    answers = {}
    lock = threading.Lock()

    def erase(pid):
        st, data = request("DELETE", "/api/persons/%d" % pid, ORG)
        with lock:
            answers[pid] = (st, data)

    def denied(pid):
        # an attendee asking for another person's connections: 403 from the
        # database, i.e. a statement that fails in whatever round it is in
        request("GET", "/api/persons/%d/connection?start_date=2020-01-01&end_date=2020-12-30" % pid, ATT)

    threads = []
    for pid in ids:
        for _ in range(DENIED // 2):
            threads.append(threading.Thread(target=denied, args=(pid,)))
        threads.append(threading.Thread(target=erase, args=(pid,)))
        for _ in range(DENIED - DENIED // 2):
            threads.append(threading.Thread(target=denied, args=(pid,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    ok200 = [pid for pid, (st, _) in answers.items() if st == 200]
    tap(len(ok200) == len(ids), "every erasure answered 200 (%d of %d)" % (len(ok200), len(ids)),
        "answers: %s" % sorted({st for st, _ in answers.values()}))
    still = []
    for pid in ok200:
        st, _ = request("GET", "/api/persons/%d" % pid, ORG)
        if st != 404:
            still.append((pid, st))
    tap(not still, "every erasure answered 200 really happened: the person is gone (404), "
        "though failing reads ran around it", "still there: %s" % still[:10])
    tap.exit()


if __name__ == "__main__":
    main()
