#!/usr/bin/python3
"""A writer that waited for the encounter lock while a place changed and was
worked off places its matches as the places are now (issue 15;
pg_udaconnect/src/encounter.c, enc_places_of()).

The race, with three connections to a scratch database of the stack's server:

  1. C takes the encounter lock (udaconnect.encounter_lock()) and holds it;
  2. W inserts two attendees' points where they meet, in one statement: its
     snapshot is taken, its rows written, and its encounter trigger waits for
     the lock (seen in pg_stat_activity);
  3. P draws a booth there and commits: the change is queued;
  4. C works the queue off (places_refresh(): it cannot see W's rows, so
     nothing is placed) and commits;
  5. W gets the lock, finds the match and commits.

W's match lies in the booth: its encounter must name it, equal to what
encounters_rebuild() makes of the locations, and the queue is empty, so
nothing would correct it later.  Placed on W's statement snapshot (taken
before step 3), the encounter would have no place for good.

Usage: test_places_race.py [FIRST]  (the number of its first TAP line, 1)
Connects with the libpq environment of the stack (PGHOST, PGPORT, PGUSER);
creates and drops the database udaconnect_places_race.  TAP lines.
"""
import sys
import threading
import time

import psycopg2

DB = "udaconnect_places_race"
WAIT_S = 60
COLS = ("person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id, "
        "place_ids, place_matches, latitude, longitude, closest_a, closest_b")
LAT, LON = 48.1351, 11.5820
DAY = "2022-03-04"

n = 0
failed = 0


def tap(ok, desc, diag=()):
    global n, failed
    n += 1
    print(("ok" if ok else "not ok") + " %d - %s" % (n, desc), flush=True)
    if not ok:
        failed += 1
        for line in diag:
            print("#   " + str(line), flush=True)


def connect(db, name):
    conn = psycopg2.connect(dbname=db, application_name=name)
    conn.autocommit = True
    return conn


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()


def race(c, w, p):
    """steps 1-5; returns W's error, if any"""
    cc, wc, pc = c.cursor(), w.cursor(), p.cursor()
    wpid = one(wc, "SELECT pg_backend_pid()")[0]
    cc.execute("BEGIN")
    cc.execute("SELECT udaconnect.encounter_lock()")
    error = []

    def writer():
        try:
            # 10 minutes 1 m apart, a point each every 30 s, one statement
            wc.execute("""
                INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
                SELECT p, udaconnect.make_point(%s, %s + p * 0.00001), %s::timestamptz + i * interval '30 seconds'
                  FROM generate_series(1, 2) p, generate_series(0, 20) i""", (LAT, LON, DAY + " 10:00Z"))
        except Exception as e:      # reported by the caller
            error.append(repr(e))

    t = threading.Thread(target=writer)
    t.start()
    start = time.time()
    waiting = False
    while time.time() - start < WAIT_S and not waiting:
        waiting = one(cc, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (wpid,))[0]
        time.sleep(0.05)
    tap(waiting, "the writer's statement waits for the encounter lock (pid %d)" % wpid)
    booth = one(pc, "SELECT (udaconnect.create_place_circle('Race booth', 'booth', %s, %s, 3)).id", (LAT, LON))[0]
    done = one(cc, "SELECT chunks FROM udaconnect.places_refresh()")[0]
    queued = one(cc, "SELECT count(*) FROM udaconnect.place_change")[0]
    cc.execute("COMMIT")
    tap(done >= 1 and queued == 0,
        "the booth drawn meanwhile was worked off while the writer waited (%d chunk(s), queue empty)" % done)
    t.join(WAIT_S)
    tap(not t.is_alive() and not error, "the writer committed after the refresh", error)
    return booth


def main():
    admin = connect("postgres", "places race test")
    acur = admin.cursor()
    acur.execute("DROP DATABASE IF EXISTS %s" % DB)
    acur.execute("CREATE DATABASE %s" % DB)
    try:
        c = connect(DB, "places race: lock holder")
        ccur = c.cursor()
        ccur.execute("SET client_min_messages = warning")
        ccur.execute("CREATE EXTENSION pg_udaconnect CASCADE")
        ccur.execute("""INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
                        VALUES (1, 'Race', 'One', 'Places'), (2, 'Race', 'Two', 'Places')""")
        w = connect(DB, "places race: writer")
        p = connect(DB, "places race: organizer")
        booth = race(c, w, p)
        row = one(ccur, "SELECT place_id, place_ids FROM udaconnect.encounter WHERE person_a = 1 AND person_b = 2")
        left = one(ccur, "SELECT count(*) FROM udaconnect.place_change")[0]
        tap(row is not None and row[0] == booth and left == 0,
            "the writer's encounter names the booth drawn while it waited (%s; booth %d), and nothing is left "
            "queued to correct it" % (row, booth))
        ccur.execute("BEGIN")
        q = "SELECT %s FROM udaconnect.encounter ORDER BY person_a, person_b, started_at" % COLS
        ccur.execute(q)
        kept = ccur.fetchall()
        ccur.execute("SELECT udaconnect.encounters_rebuild('-infinity', 'infinity')")
        ccur.execute(q)
        rebuilt = ccur.fetchall()
        ccur.execute("ROLLBACK")
        tap(kept == rebuilt and len(kept) == 1, "the encounter table equals encounters_rebuild()",
            ["kept %s" % (kept,), "rebuilt %s" % (rebuilt,)])
        for conn in (c, w, p):
            conn.close()
    finally:
        acur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
        admin.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    n = int(sys.argv[1]) - 1 if len(sys.argv) > 1 else 0
    try:
        main()
    except Exception as e:          # a crash of the test fails it
        tap(False, "the test ran to its end", [repr(e)])
        sys.exit(1)
