#!/usr/bin/python3
"""The central claim of issue 15: the incrementally maintained table
udaconnect.encounter equals what udaconnect.encounters_rebuild('-infinity',
'infinity') makes of the same locations, row for row (every column but id and
version), however the locations arrived.

For each seed, in a scratch database of the stack's server:
  1. a dense conference: persons moving between booths of a 100 m hall,
     reporting every ~30 s with jitter, sometimes silent; booths and the hall
     are places;
  2. the points arrive mostly in time order, some minutes and some hours
     late (or, for one profile, in a random order), in batches of random
     size, through every path (multi-row INSERT with and without explicit
     ids, COPY, record_location, several statements in one transaction),
     from several connections writing at once; some transactions roll back,
     some backends are terminated mid-transaction (pg_terminate_backend),
     both on purpose after their insert and at random moments (in the
     trigger, waiting for the encounter lock, in COMMIT); what did not
     commit is sent again;
  3. every point is in location exactly once;
  4. the maintained table equals the full rebuild (EXCEPT ALL both ways;
     the first differences are printed);
  5. the rebuild equals an independent SQL oracle: a self-join of location
     with geodesic_distance and |dt| <= window, then gaps-and-islands, per
     pair: started_at, ended_at, matches, min_distance_m, the places and the
     closest match;
  6. encounters_rebuild(from, to[, persons]) over random parts leaves the
     table equal to the full rebuild;
  7. after deleting, moving and re-personing locations, an erasure and a
     retention sweep in small batches, the maintained table equals the
     rebuild again.
While the points arrive, places change too (booths drawn, moved, reshaped,
renumbered and deleted, halls that are queued as tiles; next to the
antimeridian in its profile) and places_refresh(1) runs now and then from
another connection, as the maintenance worker runs it; after the writes,
places_refresh() works off the rest of the queue before step 4 (issue 15:
a changed place applies to the encounters already stored).

Usage: test_equal_rebuild.py [SEED...]   (default: 1 2 3; the profile is
seed % 3: 0 random order, 1 time order with late points, 2 antimeridian;
a seed of 100 or more has 200 persons over 200 minutes, ~59,000 points, so a
rebuild reads them in more than one chunk).
Connects with the libpq environment (PGHOST, PGPORT, PGUSER).  TAP lines.
"""
import datetime
import io
import math
import os
import queue
import random
import sys
import threading
import time

import psycopg2
import psycopg2.extras

COLS = ("person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id, "
        "place_ids, place_matches, latitude, longitude, closest_a, closest_b")
T0 = datetime.datetime(2024, 3, 5, 9, 0, tzinfo=datetime.timezone.utc)
EXPLICIT_ID_BASE = 10_000_000


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def __call__(self, ok, desc, diag=()):
        self.n += 1
        print(("ok" if ok else "not ok") + " %d - %s" % (self.n, desc), flush=True)
        if not ok:
            self.failed += 1
        for line in diag if not ok else ():
            print("#   " + line, flush=True)


tap = Tap()


def note(msg):
    print("# " + msg, flush=True)


# ---------------------------------------------------------------------------
# 1. the conference
# ---------------------------------------------------------------------------
class Profile:
    def __init__(self, seed):
        kind = seed % 3
        self.name = ("random order", "time order, late points", "antimeridian")[kind]
        self.persons = 60 if kind == 1 else 40
        self.booths = 20
        self.minutes = 120 if kind == 1 else 75
        if seed >= 100:
            # more locations than encounter_add_range reads per matcher
            # call (RANGE_CHUNK, 50,000): a rebuild spans chunks
            self.persons, self.minutes = 200, 200
        self.places = kind != 2
        self.shuffled = kind == 0
        self.writers = (3, 4, 2)[kind]
        self.lat0 = (48.137, -23.55, 64.2)[kind]
        # the hall straddles the antimeridian in the third profile
        self.lon0 = (11.575, -46.63, 180.0)[kind]
        self.antimeridian = kind == 2


def to_deg(p, north, east):
    lat = p.lat0 + north / 111_320.0
    lon = p.lon0 + east / (111_320.0 * math.cos(math.radians(p.lat0)))
    if lon > 180.0:
        lon -= 360.0
    return lat, lon


def conference(rnd, p):
    """[(person, time, lat, lon)], booth centres in metres"""
    booths = []
    while len(booths) < p.booths:
        b = (rnd.uniform(-44, 44), rnd.uniform(-44, 44))
        if all(math.hypot(b[0] - c[0], b[1] - c[1]) >= 8 for c in booths):
            booths.append(b)
    if p.antimeridian:
        # the antimeridian runs through the first booth, 5 cm east of its centre
        p.lon0 = 180.0 - (booths[0][1] + 0.05) / (111_320.0 * math.cos(math.radians(p.lat0)))
    end = T0 + datetime.timedelta(minutes=p.minutes)
    points = []
    for person in range(1, p.persons + 1):
        t = T0 + datetime.timedelta(seconds=rnd.randint(0, 30))
        booth = rnd.randrange(p.booths)
        spot = (rnd.uniform(-2, 2), rnd.uniform(-2, 2))
        dwell_end = t + datetime.timedelta(seconds=rnd.randint(120, 900))
        walk = None
        while t < end:
            if walk is None and t >= dwell_end:
                nxt = rnd.randrange(p.booths)
                a, b = booths[booth], booths[nxt]
                secs = max(30, math.hypot(a[0] - b[0], a[1] - b[1]) / 0.8)
                walk = (t, t + datetime.timedelta(seconds=secs), a, b)
                booth = nxt
            if walk is not None and t >= walk[1]:
                walk = None
                spot = (rnd.uniform(-2, 2), rnd.uniform(-2, 2))
                dwell_end = t + datetime.timedelta(seconds=rnd.randint(120, 900))
            if walk is not None:
                f = (t - walk[0]).total_seconds() / (walk[1] - walk[0]).total_seconds()
                north = walk[2][0] + f * (walk[3][0] - walk[2][0])
                east = walk[2][1] + f * (walk[3][1] - walk[2][1])
            elif rnd.random() < 0.03:
                north, east = booths[booth]          # exactly the centre
            else:
                spot = (max(-2.4, min(2.4, spot[0] + rnd.uniform(-0.4, 0.4))),
                        max(-2.4, min(2.4, spot[1] + rnd.uniform(-0.4, 0.4))))
                north, east = booths[booth][0] + spot[0], booths[booth][1] + spot[1]
            lat, lon = to_deg(p, north, east)
            tt = t
            if rnd.random() < 0.1:
                tt = t + datetime.timedelta(microseconds=rnd.randint(1, 999_999))
            points.append((person, tt, lat, lon))
            step = 30 + rnd.randint(-10, 10)
            if rnd.random() < 0.02:
                step += rnd.randint(300, 720)        # the phone was off
            t += datetime.timedelta(seconds=step)
    return points, booths


def arrival_batches(rnd, p, points):
    """the points in arrival order, cut into batches; (#minutes late, #hours late)"""
    late_min = late_h = 0
    if p.shuffled:
        order = points[:]
        rnd.shuffle(order)
    else:
        keyed = []
        for pt in points:
            r = rnd.random()
            if r < 0.07:
                delay = rnd.uniform(3600, 3 * 3600)
                late_h += 1
            elif r < 0.12:
                delay = rnd.uniform(60, 600)
                late_min += 1
            else:
                delay = rnd.uniform(0, 20)
            keyed.append((pt[1] + datetime.timedelta(seconds=delay), pt))
        keyed.sort(key=lambda k: k[0])
        order = [k[1] for k in keyed]
    batches = []
    i = 0
    while i < len(order):
        r = rnd.random()
        if r < 0.25:
            n = 1
        elif r < 0.55:
            n = rnd.randint(2, 20)
        elif r < 0.9:
            n = rnd.randint(20, 200)
        else:
            n = rnd.randint(200, 1500 if p.shuffled else 700)
        batches.append(order[i:i + n])
        i += n
    return batches, late_min, late_h


# ---------------------------------------------------------------------------
# 2. writing
# ---------------------------------------------------------------------------
def connect(db):
    return psycopg2.connect(dbname=db, application_name="encounters test")


class Writers:
    """W threads writing batches from one queue; see the module comment."""

    def __init__(self, db, rnd, p, batches, ids):
        self.db = db
        self.p = p
        self.ids = ids                       # point -> explicit id
        self.q = queue.Queue()
        self.pending = len(batches)
        self.lock = threading.Lock()
        self.stats = {}
        self.errors = []
        self.active = {}                     # writer index -> backend pid (in a transaction)
        self.done = threading.Event()
        # every 13th batch rolls back, every 11th is terminated before it
        # commits (and a few more by chance); a batch that goes again commits
        for i, b in enumerate(batches):
            self.q.put((b, "rollback" if i % 13 == 6 else "kill" if i % 11 == 4 else None))
        self.rnds = [random.Random(rnd.random()) for _ in range(p.writers + 1)]

    def count(self, what, n=1):
        with self.lock:
            self.stats[what] = self.stats.get(what, 0) + n

    def terminate(self, pid):
        try:
            c = connect(self.db)
            c.autocommit = True
            c.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
            c.close()
        except psycopg2.Error as e:
            self.errors.append("pg_terminate_backend(%s): %s" % (pid, e))

    def write(self, cur, rnd, batch):
        """one path for the batch; returns its name"""
        path = rnd.choices(["values", "values_ids", "copy", "record", "statements"],
                           [30, 15, 25, 15 if len(batch) <= 60 else 0, 15])[0]
        if path == "values":
            psycopg2.extras.execute_values(
                cur, "INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
                     "SELECT v.p, udaconnect.make_point(v.lat, v.lon), v.t FROM (VALUES %s) v(p, t, lat, lon)",
                batch, page_size=len(batch))
        elif path == "values_ids":
            psycopg2.extras.execute_values(
                cur, "INSERT INTO udaconnect.location (id, person_id, coordinate, creation_time) "
                     "SELECT v.id, v.p, udaconnect.make_point(v.lat, v.lon), v.t FROM (VALUES %s) v(id, p, t, lat, lon)",
                [(self.ids[b],) + b for b in batch], page_size=len(batch))
        elif path == "copy":
            buf = io.StringIO()
            for (person, t, lat, lon) in batch:
                buf.write("%d\tSRID=4326;POINT(%r %r)\t%s\n" % (person, lon, lat, t.isoformat()))
            buf.seek(0)
            cur.copy_expert("COPY udaconnect.location (person_id, coordinate, creation_time) FROM STDIN", buf)
        elif path == "record":
            psycopg2.extras.execute_values(
                cur, "SELECT count(udaconnect.record_location(v.p, v.lat, v.lon, v.t)) FROM (VALUES %s) v(p, t, lat, lon)",
                batch, page_size=len(batch))
        else:
            cuts = sorted(rnd.sample(range(1, len(batch)), min(2, len(batch) - 1))) if len(batch) > 1 else []
            parts = [batch[a:b] for a, b in zip([0] + cuts, cuts + [len(batch)])]
            for part in parts:
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO udaconnect.location (person_id, coordinate, creation_time) "
                         "SELECT v.p, udaconnect.make_point(v.lat, v.lon), v.t FROM (VALUES %s) v(p, t, lat, lon)",
                    part, page_size=len(part))
        return path

    def landed(self, batch):
        """how many of the batch's points are in location (its keys are unique)"""
        c = connect(self.db)
        try:
            cur = c.cursor()
            psycopg2.extras.execute_values(
                cur, "SELECT count(*) FROM udaconnect.location l JOIN (VALUES %s) v(p, t) "
                     "ON l.person_id = v.p AND l.creation_time = v.t",
                [(b[0], b[1]) for b in batch], page_size=len(batch))
            return cur.fetchone()[0]
        finally:
            c.close()

    def finished(self, batch):
        with self.lock:
            self.pending -= 1
            if self.pending == 0:
                self.done.set()

    def writer(self, k):
        rnd = self.rnds[k]
        conn = None
        while not self.done.is_set():
            try:
                batch, fate = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            orig = fate = fate or rnd.choices(["commit", "rollback", "kill"], [96, 2, 2])[0]
            level = rnd.choices(["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"], [80, 10, 10])[0]
            try:
                if conn is None or conn.closed:
                    conn = connect(self.db)
                cur = conn.cursor()
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
                conn.rollback()
                with self.lock:
                    self.active[k] = pid
                cur.execute("SET TRANSACTION ISOLATION LEVEL " + level)
                if level != "READ COMMITTED":
                    # the snapshot is taken now, before the batch: a writer
                    # that commits meanwhile makes the encounter lock 40001
                    cur.execute("SELECT 1")
                try:
                    path = self.write(cur, rnd, batch)
                except psycopg2.errors.SerializationFailure:
                    conn.rollback()
                    self.count("40001 at " + level.lower())
                    with self.lock:
                        self.active.pop(k, None)
                    # again, as the error asks; a batch meant to be rolled
                    # back or terminated keeps that fate (the tap below
                    # wants both to have happened, whatever the timing)
                    self.q.put((batch, orig if orig in ("rollback", "kill") else "commit"))
                    continue
                if level != "READ COMMITTED":
                    self.count("committed at " + level.lower())
                if fate == "rollback":
                    conn.rollback()
                    self.count("rolled back")
                elif fate == "kill":
                    # terminated while it holds its batch uncommitted (it
                    # waits in pg_sleep, or has not started it yet)
                    threading.Timer(0.05, self.terminate, (pid,)).start()
                    cur.execute("SELECT pg_sleep(30)")
                    self.errors.append("a backend survived pg_terminate_backend")
                    conn.rollback()
                else:
                    conn.commit()
                    self.count(path)
                    self.count("points", len(batch))
            except psycopg2.Error as e:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                # terminated: 57P01, or the connection just went away
                if e.pgcode not in (None, "57P01"):
                    self.errors.append("%s: %s" % (e.pgcode, str(e).strip()))
                fate = "killed" if fate == "kill" else "killed at random"
                self.count(fate)
            finally:
                with self.lock:
                    self.active.pop(k, None)
            if fate == "commit":
                self.finished(batch)
                continue
            # not committed on purpose, or terminated at some point: did it land?
            try:
                got = self.landed(batch)
            except psycopg2.Error as e:
                self.errors.append("checking a batch: %s" % e)
                got = -1
            if got == len(batch) and fate == "killed at random":
                self.count("committed before the kill")
                self.count("points", len(batch))
                self.finished(batch)
            elif got == 0 and len(self.errors) < 20:
                # again, later: a late batch (one meant to be rolled back
                # but terminated at random first is rolled back again)
                self.q.put((batch, "rollback" if orig == "rollback" and fate != "rollback" else "commit"))
            else:
                self.errors.append("%s batch of %d points: %d landed" % (fate, len(batch), got))
                self.finished(batch)
        if conn is not None:
            conn.close()

    def chaos(self):
        """terminates a writer that is in a transaction, now and then"""
        rnd = self.rnds[-1]
        while not self.done.wait(rnd.uniform(0.2, 1.2)):
            with self.lock:
                pids = list(self.active.values())
            if pids:
                self.terminate(rnd.choice(pids))
                self.count("random terminations")

    def run(self):
        threads = [threading.Thread(target=self.writer, args=(k,)) for k in range(self.p.writers)]
        threads.append(threading.Thread(target=self.chaos))
        for th in threads:
            th.start()
        for th in threads:
            th.join()


class PlaceChanger:
    """changes places while the writers write, and works the queue a chunk
    at a time now and then (what the maintenance worker does)"""

    def __init__(self, db, rnd, p, booths):
        self.db = db
        self.rnd = random.Random(rnd.random())
        self.p = p
        self.booths = booths
        self.stop = threading.Event()
        self.stats = {}
        self.errors = []
        # every kind of change at least twice, in a random order, then at random
        self.todo = ["create"] * 4 + ["move", "reshape", "delete", "renumber", "hall", "refresh"] * 2
        self.rnd.shuffle(self.todo)
        self.todo.append("create")           # the first: something to move

    def count(self, what, n=1):
        self.stats[what] = self.stats.get(what, 0) + n

    def box(self, north, east, half):
        """an envelope of half metres around the spot, cut at the antimeridian"""
        lat, lon = to_deg(self.p, north, east)
        dlat = half / 111_320.0
        dlon = half / (111_320.0 * math.cos(math.radians(lat)))
        x0, x1 = lon - dlon, lon + dlon
        if x1 > 180.0:
            x1 = 180.0
        if x0 < -180.0:
            x0 = -180.0
        return (x0, lat - dlat, x1, lat + dlat)

    def step(self, cur):
        rnd = self.rnd
        cur.execute("SELECT id FROM udaconnect.place ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
        if self.todo:
            op = self.todo.pop()
        else:
            op = rnd.choices(["create", "move", "reshape", "delete", "renumber", "hall", "refresh"],
                             [25, 20, 10, 12, 5, 3, 25])[0]
        if op in ("move", "reshape", "delete", "renumber") and not ids:
            op = "create"
        if op == "create":
            n, e = rnd.choice(self.booths)
            if self.p.antimeridian and not self.stats.get("create"):
                n, e = self.booths[0]        # the first booth: up to the antimeridian
            else:
                n, e = n + rnd.uniform(-3, 3), e + rnd.uniform(-3, 3)
            cur.execute("SELECT udaconnect.create_place(%s, 'booth', ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                        ("Drawn %d" % rnd.randrange(10 ** 6),) + self.box(n, e, rnd.uniform(1.5, 4)))
        elif op == "move":
            cur.execute("UPDATE udaconnect.place SET area = ST_Translate(area, %s, %s) WHERE id = %s "
                        "AND ST_XMax(area) + %s <= 180 AND ST_XMin(area) + %s >= -180",
                        (rnd.uniform(-4, 4) / 80_000.0, rnd.uniform(-4, 4) / 111_320.0, rnd.choice(ids),
                         4 / 80_000.0, -4 / 80_000.0))
        elif op == "reshape":
            n, e = rnd.choice(self.booths)
            cur.execute("UPDATE udaconnect.place SET area = ST_MakeEnvelope(%s, %s, %s, %s, 4326) WHERE id = %s",
                        self.box(n + rnd.uniform(-2, 2), e + rnd.uniform(-2, 2), rnd.uniform(1, 6)) + (rnd.choice(ids),))
        elif op == "delete":
            cur.execute("SELECT udaconnect.delete_place(%s)", (rnd.choice(ids),))
        elif op == "renumber":
            cur.execute("UPDATE udaconnect.place SET id = %s WHERE id = %s",
                        (1_000_000 + rnd.randrange(10 ** 6), rnd.choice(ids)))
        elif op == "hall":
            cur.execute("SELECT udaconnect.create_place('Hall part %s', 'room', ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                        (rnd.randrange(10 ** 6),) + self.box(rnd.uniform(-20, 20), rnd.uniform(-20, 20), rnd.uniform(30, 45)))
        else:
            cur.execute("SELECT chunks, encounters FROM udaconnect.places_refresh(1)")
            chunks, n = cur.fetchone()
            self.count("refresh chunks during the writes", chunks)
            self.count("encounters placed anew during the writes", n)
        self.count(op)

    def run(self):
        conn = None
        # the first changes go on after the writes if these end first
        while not self.stop.wait(self.rnd.uniform(0.02, 0.2)) or self.todo:
            try:
                if conn is None or conn.closed:
                    conn = connect(self.db)
                self.step(conn.cursor())
                conn.commit()
            except psycopg2.Error as e:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                self.errors.append("%s: %s" % (e.pgcode, str(e).strip()))
        if conn is not None:
            conn.close()


def refresh_places(conn):
    """places_refresh() until the queue is empty: (chunks, areas, encounters)"""
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM udaconnect.place_change")
    areas = cur.fetchone()[0]
    cur.execute("SELECT chunks, encounters, remaining FROM udaconnect.places_refresh()")
    chunks, n, left = cur.fetchone()
    conn.commit()
    return chunks, areas, n, left


# ---------------------------------------------------------------------------
# 4.-7. comparisons
# ---------------------------------------------------------------------------
def snapshot(cur, name):
    cur.execute("DROP TABLE IF EXISTS %s; CREATE TABLE %s AS SELECT %s FROM udaconnect.encounter"
                % (name, name, COLS))


def differences(cur, a, b, limit=8):
    """(count, diagnostics) of the rows of a not in b and of b not in a"""
    cur.execute("SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) x" % (a, b))
    na = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) x" % (b, a))
    nb = cur.fetchone()[0]
    diag = []
    for (x, y, n) in ((a, b, na), (b, a, nb)):
        if n:
            cur.execute("SELECT d::text FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) d "
                        "ORDER BY d.person_a, d.person_b, d.started_at LIMIT %d" % (x, y, limit))
            diag += ["only in %s (%d): %s" % (x, n, r[0]) for r in cur.fetchall()]
    return na + nb, diag


def rebuild_equals(cur, label, kept="kept", rebuilt="rebuilt"):
    """the table as it is vs a full rebuild; leaves the rebuilt table"""
    snapshot(cur, kept)
    cur.execute("SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')")
    snapshot(cur, rebuilt)
    cur.execute("SELECT count(*), coalesce(sum(matches), 0) FROM %s" % rebuilt)
    n, m = cur.fetchone()
    nd, diag = differences(cur, kept, rebuilt)
    return nd, diag, n, m


ORACLE = """
CREATE TEMP TABLE l ON COMMIT DROP AS
    SELECT id, person_id AS p, ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon, creation_time AS t
      FROM udaconnect.location;
CREATE INDEX ON l (t);
ANALYZE l;
-- every match once, person_a's point first
CREATE TEMP TABLE om ON COMMIT DROP AS
    SELECT a.p AS pa, b.p AS pb, a.id AS ra, b.id AS rb, least(a.t, b.t) AS s, greatest(a.t, b.t) AS e,
           udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) AS d,
           a.lat AS alat, a.lon AS alon, b.lat AS blat, b.lon AS blon
      FROM l a JOIN l b
        ON b.t BETWEEN a.t - udaconnect.encounter_window() AND a.t + udaconnect.encounter_window()
       AND a.p < b.p AND abs(a.lat - b.lat) < 1e-4
     WHERE udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) BETWEEN 0 AND udaconnect.encounter_distance();
-- the midpoint (across the antimeridian too) and its place
CREATE TEMP TABLE omp ON COMMIT DROP AS
    SELECT om.*, mid.lat, mid.lon,
           CASE WHEN EXISTS (SELECT 1 FROM udaconnect.place) THEN udaconnect.place_at(mid.lat, mid.lon) END AS place
      FROM om, LATERAL (SELECT (om.alat + om.blat) / 2 AS lat,
                               CASE WHEN m > 180 THEN m - 360 WHEN m < -180 THEN m + 360 ELSE m END AS lon
                          FROM (SELECT (om.alon + CASE WHEN om.blon - om.alon > 180 THEN om.blon - 360
                                                      WHEN om.blon - om.alon < -180 THEN om.blon + 360
                                                      ELSE om.blon END) / 2 AS m) mm) mid;
-- islands: a match starts a new encounter when it starts more than the gap
-- after every match before it (sorted by start) has ended
CREATE TEMP TABLE oi ON COMMIT DROP AS
    SELECT k.*, sum(k.brk) OVER (PARTITION BY k.pa, k.pb ORDER BY k.s, k.e, k.ra, k.rb) AS isl
      FROM (SELECT omp.*,
                   CASE WHEN omp.s > max(omp.e) OVER (PARTITION BY omp.pa, omp.pb ORDER BY omp.s, omp.e, omp.ra, omp.rb
                                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                                     + udaconnect.encounter_gap()
                        THEN 1 ELSE 0 END AS brk
              FROM omp) k;
CREATE TEMP TABLE oracle ON COMMIT DROP AS
    SELECT g.pa AS person_a, g.pb AS person_b, g.s AS started_at, g.e AS ended_at, g.n AS matches,
           g.d AS min_distance_m, pl.top AS place_id, coalesce(pl.ids, '{}') AS place_ids,
           coalesce(pl.cnts, '{}') AS place_matches, g.lat AS latitude, g.lon AS longitude,
           g.ra AS closest_a, g.rb AS closest_b
      FROM (SELECT pa, pb, isl, min(s) AS s, max(e) AS e, count(*) AS n, min(d) AS d,
                   (array_agg(lat ORDER BY d, ra, rb))[1] AS lat, (array_agg(lon ORDER BY d, ra, rb))[1] AS lon,
                   (array_agg(ra ORDER BY d, ra, rb))[1] AS ra, (array_agg(rb ORDER BY d, ra, rb))[1] AS rb
              FROM oi GROUP BY pa, pb, isl) g
      LEFT JOIN (SELECT pa, pb, isl, array_agg(place ORDER BY place) AS ids, array_agg(c ORDER BY place) AS cnts,
                        (array_agg(place ORDER BY c DESC, place))[1] AS top
                   FROM (SELECT pa, pb, isl, place, count(*) AS c FROM oi WHERE place IS NOT NULL
                          GROUP BY pa, pb, isl, place) pc
                  GROUP BY pa, pb, isl) pl USING (pa, pb, isl);
"""

ORACLE_DIFF = """
SELECT coalesce(o.person_a, r.person_a), coalesce(o.person_b, r.person_b), coalesce(o.started_at, r.started_at),
       CASE WHEN o.person_a IS NULL THEN 'only in the rebuild: ' || r::text
            WHEN r.person_a IS NULL THEN 'only in the oracle: ' || row(o.*)::text
            ELSE 'rebuild ' || r::text || ' oracle ' || row(o.*)::text END
  FROM oracle o FULL JOIN rebuilt r
    ON (r.person_a, r.person_b, r.started_at) = (o.person_a, o.person_b, o.started_at)
 WHERE o.person_a IS NULL OR r.person_a IS NULL
    OR (r.ended_at, r.matches, r.place_id, r.place_ids, r.place_matches, r.closest_a, r.closest_b)
       IS DISTINCT FROM (o.ended_at, o.matches, o.place_id, o.place_ids, o.place_matches, o.closest_a, o.closest_b)
    OR abs(r.min_distance_m - o.min_distance_m) > 1e-6
    OR abs(r.latitude - o.latitude) > 1e-12 OR abs(r.longitude - o.longitude) > 1e-12
 ORDER BY 1, 2, 3
"""


def check_oracle(conn, seed):
    cur = conn.cursor()
    cur.execute(ORACLE)
    cur.execute("SELECT count(*), (SELECT count(*) FROM om), (SELECT count(*) FROM om WHERE s = e), "
                "(SELECT count(*) FROM oracle WHERE matches > 1), (SELECT count(*) FROM oracle WHERE place_id IS NOT NULL), "
                "(SELECT count(*) FROM om WHERE e - s = udaconnect.encounter_window()), "
                "(SELECT count(*) FROM (SELECT DISTINCT person_a, person_b FROM oracle) x), "
                "(SELECT count(*) FROM om WHERE sign(alon) <> sign(blon)) FROM oracle")
    n, nm, nsame, nmulti, nplace, nedge, npairs, nanti = cur.fetchone()
    cur.execute(ORACLE_DIFF)
    rows = cur.fetchall()
    conn.commit()
    tap(not rows and nm > 0,
        "seed %d: the rebuild equals the SQL oracle (self-join with geodesic_distance and |dt| <= window, "
        "gaps and islands): %d encounters of %d pairs (%d of several matches, %d at a place), %d matches "
        "(%d at the same instant, %d exactly the window apart, %d across the antimeridian)"
        % (seed, n, npairs, nmulti, nplace, nm, nsame, nedge, nanti),
        ["%d differences, the first:" % len(rows)] + [r[3] for r in rows[:10]])


def partial_rebuilds(conn, rnd, p, seed):
    cur = conn.cursor()
    bad = []
    span = p.minutes * 60
    for i in range(8):
        a = T0 + datetime.timedelta(seconds=rnd.uniform(-60, span))
        b = a + datetime.timedelta(seconds=rnd.choice([0, 1, 60, 300, 900, 3600]) * rnd.random())
        persons = None if i % 2 == 0 else sorted(rnd.sample(range(1, p.persons + 1), rnd.randint(1, 6)))
        if i == 7:
            a, b = T0 - datetime.timedelta(days=1), T0 + datetime.timedelta(days=1)
        cur.execute("SELECT udaconnect.encounters_rebuild(%s, %s, %s)", (a, b, persons))
        snapshot(cur, "partial")
        nd, diag = differences(cur, "partial", "rebuilt", 4)
        if nd:
            bad.append("encounters_rebuild(%s, %s, %s): %d rows differ" % (a, b, persons, nd))
            bad += diag
    conn.commit()
    tap(not bad, "seed %d: 8 encounters_rebuild(from, to[, persons]) over random parts (an instant, minutes, "
        "an hour; all persons or a few) each leave the table equal to the full rebuild" % seed, bad)


def changes(conn, rnd, p, seed, booths):
    """deletes, moves, new persons of points, an erasure, a retention sweep"""
    cur = conn.cursor()
    cur.execute("SELECT id FROM udaconnect.location ORDER BY id")
    ids = [r[0] for r in cur.fetchall()]
    sample = rnd.sample(ids, len(ids) // 25)
    gone, moved = sample[:len(sample) // 2], sample[len(sample) // 2:]
    k = len(gone) // 3
    for part in (gone[:k], gone[k:2 * k], gone[2 * k:]):
        cur.execute("DELETE FROM udaconnect.location WHERE id = ANY(%s)", (part,))
        conn.commit()
    k = len(moved) // 3
    cur.execute("UPDATE udaconnect.location SET creation_time = creation_time + make_interval(secs => (random() * 1200 - 600)::int) "
                "WHERE id = ANY(%s)", (moved[:k],))
    conn.commit()
    for i in moved[k:2 * k]:
        lat, lon = to_deg(p, *booths[rnd.randrange(len(booths))])
        cur.execute("UPDATE udaconnect.location SET coordinate = udaconnect.make_point(%s, %s) WHERE id = %s", (lat, lon, i))
    conn.commit()
    cur.execute("UPDATE udaconnect.location SET person_id = 1 + (person_id %% %s) WHERE id = ANY(%s)",
                (p.persons, moved[2 * k:]))
    conn.commit()
    nd, diag, n, m = rebuild_equals(cur, "changes")
    conn.commit()
    tap(nd == 0, "seed %d: after deleting %d locations (3 statements) and moving %d (in time, in space, to another "
        "person) the maintained table equals the rebuild (%d encounters, %d matches)" % (seed, len(gone), len(moved), n, m), diag)

    victim = rnd.randint(1, p.persons)
    cur.execute("SELECT count(*) FROM udaconnect.encounter WHERE %s IN (person_a, person_b)", (victim,))
    had = cur.fetchone()[0]
    cur.execute("SELECT locations FROM udaconnect.forget_person(%s, 'encounters test')", (victim,))
    conn.commit()
    cutoff = T0 + datetime.timedelta(minutes=p.minutes // 3)
    sweeps = 0
    while True:
        cur.execute("SELECT locations FROM udaconnect.retention_sweep(%s, 500)", (cutoff,))
        sweeps += 1
        left = cur.fetchone()[0]
        conn.commit()
        if left < 500:
            break
    cur.execute("SELECT count(*) FROM udaconnect.encounter WHERE started_at < %s OR %s IN (person_a, person_b)",
                (cutoff, victim))
    stale = cur.fetchone()[0]
    nd, diag, n, m = rebuild_equals(cur, "retention")
    conn.commit()
    tap(nd == 0 and stale == 0 and had > 0,
        "seed %d: after erasing person %d (%d encounters) and %d retention sweeps of 500 rows (cutoff T0 + %d min) "
        "the maintained table equals the rebuild (%d encounters; none before the cutoff or of the erased person: %d)"
        % (seed, victim, had, sweeps, p.minutes // 3, n, stale), diag)


# ---------------------------------------------------------------------------
def run_seed(admin, seed):
    rnd = random.Random("udaconnect-encounters-%d" % seed)
    p = Profile(seed)
    db = "encounters_%d_%d" % (os.getpid(), seed)
    admin.cursor().execute("DROP DATABASE IF EXISTS %s" % db)
    admin.cursor().execute("CREATE DATABASE %s" % db)
    try:
        conn = connect(db)
        cur = conn.cursor()
        cur.execute("SET client_min_messages = warning; CREATE EXTENSION pg_udaconnect CASCADE")
        cur.execute("INSERT INTO udaconnect.person (id, first_name, last_name, company_name) "
                    "SELECT g, 'P' || g, 'Enc', 'Encounters' FROM generate_series(1, %s) g", (p.persons,))
        points, booths = conference(rnd, p)
        if p.places:
            for i, (n, e) in enumerate(booths):
                lat, lon = to_deg(p, n, e)
                cur.execute("SELECT udaconnect.create_place_circle(%s, 'booth', %s, %s, 3)", ("Booth %d" % i, lat, lon))
            lat1, lon1 = to_deg(p, -50, -50)
            lat2, lon2 = to_deg(p, 50, 50)
            cur.execute("SELECT udaconnect.create_place('Hall', 'room', ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                        (lon1, lat1, lon2, lat2))
        conn.commit()
        batches, late_min, late_h = arrival_batches(rnd, p, points)
        ids = {pt: EXPLICIT_ID_BASE + i for i, pt in enumerate(sorted(points, key=lambda x: (x[1], x[0])))}
        tap(len(points) > 1000 and len(batches) > 20 and (p.shuffled or late_h > 0),
            "seed %d (%s): %d points of %d persons at %d booths over %d min, %d batches (1..%d points), %s"
            % (seed, p.name, len(points), p.persons, p.booths, p.minutes, len(batches),
               max(len(b) for b in batches),
               "in a random order" if p.shuffled else "%d points minutes late, %d hours late" % (late_min, late_h)))

        started = time.time()
        w = Writers(db, rnd, p, batches, ids)
        pc = PlaceChanger(db, rnd, p, booths)
        changer = threading.Thread(target=pc.run)
        changer.start()
        try:
            w.run()
        finally:
            pc.stop.set()
            changer.join()
        st = w.stats
        note("seed %d: written in %.1f s: %s" % (seed, time.time() - started,
                                                 ", ".join("%s %d" % kv for kv in sorted(st.items()))))
        cur.execute("CREATE TEMP TABLE want (p int, t timestamptz, lat float8, lon float8)")
        buf = io.StringIO("".join("%d\t%s\t%r\t%r\n" % (pp, t.isoformat(), la, lo) for (pp, t, la, lo) in points))
        cur.copy_expert("COPY want FROM STDIN", buf)
        cur.execute("SELECT (SELECT count(*) FROM udaconnect.location), "
                    "(SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT person_id, creation_time, ST_Y(coordinate), ST_X(coordinate) FROM udaconnect.location) m), "
                    "(SELECT count(*) FROM (SELECT person_id, creation_time, ST_Y(coordinate), ST_X(coordinate) FROM udaconnect.location EXCEPT ALL SELECT * FROM want) x)")
        nloc, missing, extra = cur.fetchone()
        conn.commit()
        paths = [k for k in ("values", "values_ids", "copy", "record", "statements") if st.get(k)]
        tap(nloc == len(points) and missing == 0 and extra == 0 and not w.errors and len(paths) == 5
            and st.get("rolled back", 0) > 0 and st.get("killed", 0) > 0,
            "seed %d: %d writers at once through %s; %d transactions at REPEATABLE READ or SERIALIZABLE "
            "committed (%d others got 40001 and went again), %d rolled back, %d backends terminated "
            "mid-transaction on purpose and %d at random moments (%d of those had committed); "
            "every point is in location exactly once (%d rows, %d missing, %d extra)"
            % (seed, p.writers, ", ".join(paths),
               st.get("committed at repeatable read", 0) + st.get("committed at serializable", 0),
               st.get("40001 at repeatable read", 0) + st.get("40001 at serializable", 0),
               st.get("rolled back", 0), st.get("killed", 0),
               st.get("random terminations", 0), st.get("committed before the kill", 0), nloc, missing, extra),
            w.errors[:10])

        chunks, areas, placed, left = refresh_places(conn)
        ps = pc.stats
        cur.execute("SELECT count(*) FROM udaconnect.place")
        nplaces = cur.fetchone()[0]
        conn.commit()
        tap(not pc.errors and left == 0 and all(ps.get(k, 0) >= 1 for k in
                                                 ("create", "move", "reshape", "delete", "renumber", "hall", "refresh")),
            "seed %d: while the points arrived, places changed (%s; %d places now) and "
            "places_refresh(1) ran %d times from another connection (%d chunks, %d encounters placed anew); "
            "then places_refresh() worked off the %d areas left in %d chunks (%d encounters placed anew)"
            % (seed, ", ".join("%s %d" % (k, ps.get(k, 0)) for k in ("create", "move", "reshape", "delete", "renumber", "hall")),
               nplaces, ps.get("refresh", 0), ps.get("refresh chunks during the writes", 0),
               ps.get("encounters placed anew during the writes", 0), areas, chunks, placed),
            pc.errors[:10] + (["%d areas left" % left] if left else []))
        nd, diag, n, m = rebuild_equals(cur, "incremental")
        conn.commit()
        tap(nd == 0 and n > 0, "seed %d: the incrementally maintained encounters equal "
            "encounters_rebuild('-infinity', 'infinity') row for row, every column but id and version, "
            "with the places as they are now "
            "(%d encounters, %d matches; %d rows differ)" % (seed, n, m, nd), diag)
        check_oracle(conn, seed)
        partial_rebuilds(conn, rnd, p, seed)
        changes(conn, rnd, p, seed, booths)
        conn.close()
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)


def main():
    seeds = [int(s) for s in (sys.argv[1:] or ["1", "2", "3"])]
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    for seed in seeds:
        started = time.time()
        try:
            run_seed(admin, seed)
        except Exception as e:                # a crash of the test fails it
            tap(False, "seed %d: the test ran to its end" % seed, [repr(e)])
        note("seed %d took %.0f s" % (seed, time.time() - started))
    sys.exit(1 if tap.failed else 0)


if __name__ == "__main__":
    main()
