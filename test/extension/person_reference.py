#!/usr/bin/env python3
"""The location -> person reference holds as a foreign key would.

A person that still has locations cannot be deleted, at READ COMMITTED,
REPEATABLE READ and SERIALIZABLE, in the two orders that a statement-level
check with the transaction's snapshot gets wrong:
  - snapshot: the deleting transaction took its snapshot before another
    transaction inserted (and committed) a location of that person;
  - concurrent: the delete runs while the inserting transaction is still open
    (it holds FOR KEY SHARE on the person) and that one commits.
Each case must end with the DELETE failing (23503 as a foreign key raises it,
or 40001) and no orphaned location.  Also: a person without locations can be
deleted at every level (the check does not refuse everything).

usage: person_reference.py DSN FIRST_TAP_NUMBER   (prints TAP lines)
"""
import sys
import threading
import time

import psycopg2

DSN = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
failed = 0


def tap(ok, what, detail=None):
    global n, failed
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, what))
    if detail and not ok:
        for line in str(detail).splitlines():
            print("#   " + line)
    n += 1
    failed += 0 if ok else 1


def connect():
    c = psycopg2.connect(DSN)
    c.autocommit = True
    return c


admin = connect()
cur = admin.cursor()


def new_person():
    cur.execute("SELECT (udaconnect.create_person('Reference', 'Check', 'Isolation Ltd')).id")
    return cur.fetchone()[0]


def orphans(pid):
    cur.execute("""SELECT count(*) FROM udaconnect.location l
                    WHERE l.person_id = %s
                      AND NOT EXISTS (SELECT 1 FROM udaconnect.person p WHERE p.id = l.person_id)""", (pid,))
    return cur.fetchone()[0]


def cleanup(pid):
    cur.execute("DELETE FROM udaconnect.location WHERE person_id = %s", (pid,))
    cur.execute("DELETE FROM udaconnect.person WHERE id = %s", (pid,))


def try_delete(conn, pid):
    """DELETE the person in conn's open transaction and commit; the outcome."""
    c = conn.cursor()
    try:
        c.execute("DELETE FROM udaconnect.person WHERE id = %s", (pid,))
        conn.commit()
        return "committed"
    except psycopg2.Error as e:
        conn.rollback()
        return e.pgcode


for level in ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"):
    # 1. the deleter's snapshot predates the committed location
    pid = new_person()
    deleter = psycopg2.connect(DSN)
    inserter = connect()
    d = deleter.cursor()
    d.execute("SET TRANSACTION ISOLATION LEVEL " + level)
    d.execute("SELECT count(*) FROM udaconnect.location WHERE person_id = %s", (pid,))  # takes the snapshot
    inserter.cursor().execute("SELECT udaconnect.record_location(%s, 37.5, -122.3, now())", (pid,))
    got = try_delete(deleter, pid)
    # (at READ COMMITTED each statement takes a new snapshot: the control case)
    tap(got in ("23503", "40001") and orphans(pid) == 0,
        "%s: deleting a person whose location was committed after the snapshot fails (%s), no orphan"
        % (level, got), "DELETE %s, %d orphaned locations" % (got, orphans(pid)))
    cleanup(pid)
    deleter.close()
    inserter.close()

    # 2. the delete runs while the inserting transaction is open
    pid = new_person()
    inserter = psycopg2.connect(DSN)
    inserter.cursor().execute("SELECT udaconnect.record_location(%s, 37.5, -122.3, now())", (pid,))
    result = []

    def delete_it():
        conn = psycopg2.connect(DSN)
        conn.cursor().execute("SET TRANSACTION ISOLATION LEVEL " + level)
        result.append(try_delete(conn, pid))
        conn.close()

    t = threading.Thread(target=delete_it)
    t.start()
    # wait (bounded) until the delete waits for the inserter's row lock
    waited = False
    for _ in range(200):
        cur.execute("""SELECT count(*) FROM pg_stat_activity
                        WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM udaconnect.person%%'""")
        if cur.fetchone()[0] > 0:
            waited = True
            break
        time.sleep(0.05)
    inserter.commit()
    t.join(30)
    got = result[0] if result else "no answer"
    # without the wait this would be the first case again, not the race
    tap(waited and got in ("23503", "40001") and orphans(pid) == 0,
        "%s: deleting a person while a location of theirs is being inserted waits, then fails (%s), no orphan"
        % (level, got), "waited for the inserter: %s; DELETE %s, %d orphaned locations"
        % (waited, got, orphans(pid)))
    cleanup(pid)
    inserter.close()

    # 3. without locations the delete goes through
    pid = new_person()
    conn = psycopg2.connect(DSN)
    conn.cursor().execute("SET TRANSACTION ISOLATION LEVEL " + level)
    got = try_delete(conn, pid)
    cur.execute("SELECT count(*) FROM udaconnect.person WHERE id = %s", (pid,))
    tap(got == "committed" and cur.fetchone()[0] == 0,
        "%s: a person without locations can be deleted" % level, got)
    conn.close()

sys.exit(1 if failed else 0)
