#!/usr/bin/python3
"""The maintenance worker applies a changed place to the encounters already
stored on its own (issue 15; sql/src/55-place-changes.sql,
src/maintenance.c): in the stack's database, the one udaconnect.database
names and the worker works in, with udaconnect.retention_naptime set to 1 s
for the test (ALTER SYSTEM, reset at the end):

  1. two attendees meet where there is no place: their encounter has none;
  2. a booth is drawn there: nothing in this test calls places_refresh(),
     yet within a bounded wait the encounter names the booth (same id, a
     new version), the queue is empty, and the row equals what
     encounters_rebuild() makes of the locations; and the server log
     ($RUN_DIR/log/postgresql.log, the stack's) has the worker's line
     "udaconnect places: 1 place changes applied ..." written after the
     booth was drawn: the worker did it, not another caller;
  3. the booth moves away: the encounter loses it the same way (and the
     worker logs it);
  4. the test's rows are deleted again.

How long each took is printed, not tested (no timing thresholds).
Usage: test_places_worker.py [FIRST]  (the number of its first TAP line, 1)
Connects with the libpq environment of the stack (PGHOST, PGPORT, PGUSER,
PGDATABASE).  TAP lines.
"""
import os
import re
import sys
import time

import psycopg2

WAIT_S = 120            # the bound: far above a naptime of 1 s
COLS = ("person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id, "
        "place_ids, place_matches, latitude, longitude, closest_a, closest_b")
LAT, LON = -41.2866, 174.7756          # no other test has points here
DAY = "2021-05-06"

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


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()


def wait_for(cur, sql, args, want):
    """polls until sql returns want or WAIT_S passed; (ok, seconds, last)"""
    start = time.time()
    got = None
    while time.time() - start < WAIT_S:
        got = one(cur, sql, args)
        if got == want:
            return True, time.time() - start, got
        time.sleep(0.1)
    return False, time.time() - start, got


LOG = os.path.join(os.environ["RUN_DIR"], "log", "postgresql.log") if os.environ.get("RUN_DIR") else None
WORKER_LINE = re.compile(r"udaconnect places: ([1-9][0-9]*) place changes applied")


def log_size():
    return os.path.getsize(LOG) if LOG and os.path.exists(LOG) else None


def worker_logged(since):
    """waits for the worker's line in the server log after byte since; (ok, line or why)"""
    if since is None:
        return None, "no server log (RUN_DIR unset): not checked"
    start = time.time()
    while time.time() - start < WAIT_S:
        with open(LOG, "rb") as f:
            f.seek(since)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if WORKER_LINE.search(line):
                    return True, line
        time.sleep(0.1)
    return False, "no line matching %r in %s after byte %d" % (WORKER_LINE.pattern, LOG, since)


def tap_worker_logged(since, what):
    global n
    ok, why = worker_logged(since)
    if ok is None:
        n += 1
        print("ok %d - %s # SKIP %s" % (n, what, why), flush=True)
    else:
        tap(ok, what, [why])


def vs_rebuild(conn, persons):
    """the persons' rows as stored, and as encounters_rebuild() makes them (undone)"""
    cur = conn.cursor()
    cur.execute("BEGIN")
    q = "SELECT %s FROM udaconnect.encounter WHERE person_a = %%s AND person_b = %%s ORDER BY started_at" % COLS
    cur.execute(q, persons)
    kept = cur.fetchall()
    cur.execute("SELECT udaconnect.encounters_rebuild(%s::timestamptz, %s::timestamptz + interval '1 day', %s)",
                (DAY, DAY, list(persons)))
    cur.execute(q, persons)
    rebuilt = cur.fetchall()
    cur.execute("ROLLBACK")
    return kept == rebuilt and len(kept) > 0, kept, rebuilt


def main():
    conn = psycopg2.connect(application_name="places worker test")
    conn.autocommit = True
    cur = conn.cursor()
    workers = one(cur, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'udaconnect maintenance'")[0]
    db_ok = one(cur, "SELECT current_setting('udaconnect.database') = current_database()")[0]
    tap(workers == 1 and db_ok, "the maintenance worker runs (%d) and works in this database (udaconnect.database)" % workers)
    naptime = one(cur, "SHOW udaconnect.retention_naptime")[0]
    cur.execute("ALTER SYSTEM SET udaconnect.retention_naptime = 1")
    cur.execute("SELECT pg_reload_conf()")
    persons = None
    try:
        # ids of their own, past every id given (or erased) so far
        cur.execute("""
            INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
            SELECT m + k, 'Worker', 'Test ' || k, 'Places'
              FROM (SELECT greatest((SELECT max(id) FROM udaconnect.person),
                                    (SELECT max(id) FROM udaconnect.erased_person), 0) + 1000 AS m) x,
                   generate_series(1, 2) k
            RETURNING id""")
        persons = tuple(sorted(r[0] for r in cur.fetchall()))
        # 10 minutes 1 m apart, a point each every 30 s
        cur.execute("""
            INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
            SELECT p, udaconnect.make_point(%s, %s + k * 0.00001), %s::timestamptz + i * interval '30 seconds'
              FROM unnest(%s::integer[]) WITH ORDINALITY u(p, k), generate_series(0, 20) i""",
                    (LAT, LON, DAY + " 10:00Z", list(persons)))
        enc_sql = "SELECT id, version, place_id FROM udaconnect.encounter WHERE person_a = %s AND person_b = %s"
        cur.execute(enc_sql, persons)
        rows = cur.fetchall()
        tap(len(rows) == 1 and rows[0][2] is None,
            "two attendees met where there is no place: one encounter, no place (%s)" % (rows,))
        enc_id, version = rows[0][0], rows[0][1]

        # 2. a booth drawn where they met; nobody here calls places_refresh()
        started = time.time()
        since = log_size()
        booth = one(cur, "SELECT (udaconnect.create_place_circle('Worker test booth', 'booth', %s, %s, 3)).id",
                    (LAT, LON))[0]
        ok, secs, got = wait_for(cur, "SELECT place_id FROM udaconnect.encounter WHERE id = %s", (enc_id,), (booth,))
        secs = time.time() - started
        print("# the worker placed the encounter at the new booth %.1f s after it was drawn" % secs, flush=True)
        row = one(cur, enc_sql, persons)
        left = one(cur, "SELECT count(*) FROM udaconnect.place_change")[0]
        tap(ok and row[0] == enc_id and row[1] > version and left == 0,
            "a booth drawn where they met: the worker placed their encounter there on its own within %d s "
            "(the same id, version %s -> %s; the queue is empty)" % (WAIT_S, version, row[1]),
            ["encounter %s: %s, queue %d" % (enc_id, got, left)])
        same, kept, rebuilt = vs_rebuild(conn, persons)
        tap(same, "the encounter as the worker left it equals what encounters_rebuild() makes of the locations",
            ["kept %s" % (kept,), "rebuilt %s" % (rebuilt,)])
        tap_worker_logged(since, "the maintenance worker did it: its 'udaconnect places: ... applied' line is in the server log")

        # 3. the booth moves 50 m north: the encounter loses it
        version = row[1]
        started = time.time()
        since = log_size()
        cur.execute("UPDATE udaconnect.place SET area = ST_Translate(area, 0, 0.00045) WHERE id = %s", (booth,))
        ok, secs, got = wait_for(cur, "SELECT place_id IS NULL FROM udaconnect.encounter WHERE id = %s",
                                 (enc_id,), (True,))
        secs = time.time() - started
        print("# the worker took the moved booth off the encounter %.1f s after the move" % secs, flush=True)
        row = one(cur, enc_sql, persons)
        same, kept, rebuilt = vs_rebuild(conn, persons)
        tap(ok and row[1] > version and same,
            "the booth moved away: the worker took it off their encounter on its own (version %s -> %s), "
            "equal to the rebuild" % (version, row[1]), ["kept %s" % (kept,), "rebuilt %s" % (rebuilt,)])
        tap_worker_logged(since, "the maintenance worker took the booth off: its line is in the server log")
        cur.execute("DELETE FROM udaconnect.place WHERE id = %s", (booth,))
    finally:
        if persons:
            cur.execute("DELETE FROM udaconnect.location WHERE person_id = ANY(%s)", (list(persons),))
            cur.execute("DELETE FROM udaconnect.person WHERE id = ANY(%s)", (list(persons),))
        cur.execute("ALTER SYSTEM RESET udaconnect.retention_naptime")
        cur.execute("SELECT pg_reload_conf()")
        print("# udaconnect.retention_naptime back to the configuration's (was %s)" % naptime, flush=True)
        conn.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    n = int(sys.argv[1]) - 1 if len(sys.argv) > 1 else 0
    try:
        main()
    except Exception as e:          # a crash of the test fails it
        tap(False, "the test ran to its end", [repr(e)])
        sys.exit(1)
