#!/usr/bin/env python3
"""Reference for the HTTP benchmark: the original's stack (Flask + psycopg2)
serving the same two routes from the same database and the same SQL:

  GET /api/persons/<id>
  GET /api/persons/<id>/connection?start_date=&end_date=&distance=

werkzeug's threaded server (as `flask run` uses; it starts a thread per
request, so connections come from a psycopg2 ThreadedConnectionPool), request
logging off.  Usage:
  UDACONNECT_DATABASE_URL=... ref_flask_server.py PORT
"""
import logging
import os
import sys

import psycopg2
import psycopg2.pool
from flask import Flask, abort, g, jsonify, request

app = Flask(__name__)
app.json.sort_keys = False
# minconn = maxconn: psycopg2's pool closes every connection returned beyond
# minconn, which would mean a new database connection per request.
POOL = int(os.environ.get("UDACONNECT_BENCH_FLASK_POOL", "40"))
pool = psycopg2.pool.ThreadedConnectionPool(POOL, POOL, os.environ["UDACONNECT_DATABASE_URL"])


def db():
    if "conn" not in g:
        g.conn = pool.getconn()
        g.conn.autocommit = True
    return g.conn


@app.teardown_appcontext
def release(exc):
    c = g.pop("conn", None)
    if c is not None:
        pool.putconn(c, close=c.closed != 0)


@app.route("/api/persons/<int:person_id>")
def person(person_id):
    with db().cursor() as cur:
        cur.execute("SELECT id, first_name, last_name, company_name FROM udaconnect.person "
                    "WHERE id = %s", (person_id,))
        row = cur.fetchone()
    if row is None:
        abort(404)
    return jsonify(id=row[0], first_name=row[1], last_name=row[2], company_name=row[3])


@app.route("/api/persons/<int:person_id>/connection")
def connection(person_id):
    start, end = request.args["start_date"], request.args["end_date"]
    distance = float(request.args.get("distance", 5))
    with db().cursor() as cur:
        cur.execute("SELECT f.location_id, f.person_id, f.latitude, f.longitude, f.creation_time, "
                    "p.first_name, p.last_name, p.company_name "
                    "FROM udaconnect.find_connections(%s, %s, %s, %s) f "
                    "JOIN udaconnect.person p ON p.id = f.person_id "
                    "ORDER BY f.creation_time, f.location_id", (person_id, start, end, distance))
        rows = cur.fetchall()
    return jsonify([{"location": {"id": r[0], "person_id": r[1], "latitude": r[2], "longitude": r[3],
                                  "creation_time": r[4].isoformat()},
                     "person": {"id": r[1], "first_name": r[5], "last_name": r[6], "company_name": r[7]}}
                    for r in rows])


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True, debug=False)
