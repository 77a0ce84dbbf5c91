#!/usr/bin/python3
"""Start a daemon as its installed systemd unit would, without systemd as PID 1.

    run_unit.py UNIT_FILE PORT [KEY=VALUE...]

Reads the unit's User=, Group=, EnvironmentFile= and ExecStart=, loads the
environment file (KEY=VALUE lines, "double quotes", # comments, as systemd
reads ours), applies the KEY=VALUE overrides (the test's port, or a key file
the caller can read), and runs ExecStart with only that environment: as
User/Group with no new privileges (setpriv) when run as root, else as the
caller.  It plays the service manager's part of Type=notify: a datagram
socket in NOTIFY_SOCKET must receive READY=1 while PORT accepts
connections, then SIGTERM must bring STOPPING=1 and a clean exit (0).

TAP lines ("ok - ..."/"not ok - ..."), numbered by the suite; exit 1 on a
failure.  The waits are generous limits for a hung daemon, not timings.
"""
import os
import pwd
import select
import socket
import subprocess
import sys
import tempfile
import time

LIMIT = 60.0  # seconds a step may take before the daemon counts as hung
failed = False


def tap(ok, desc, detail=()):
    global failed
    print(("ok - " if ok else "not ok - ") + desc)
    if not ok:
        failed = True
        for d in detail:
            print("#   " + d)


def read_unit(path):
    keys = {}
    section = None
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        if section == "Service":
            keys.setdefault(k, []).append(v)
    return keys


def read_envfile(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        env[k.strip()] = v
    return env


def wait_for(sock, want, proc, deadline):
    """Datagrams until one holds the line `want`; all received in order."""
    got = []
    while time.monotonic() < deadline:
        if proc.poll() is not None and not select.select([sock], [], [], 0)[0]:
            break
        r, _, _ = select.select([sock], [], [], 0.2)
        if r:
            msg = sock.recv(4096).decode(errors="replace")
            got.append(msg.replace("\n", " "))
            if want in msg.split("\n"):
                return True, got
    return False, got


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def main():
    unit_path, port = sys.argv[1], int(sys.argv[2])
    overrides = dict(a.split("=", 1) for a in sys.argv[3:])
    name = os.path.basename(unit_path)
    unit = read_unit(unit_path)
    user = unit.get("User", [""])[-1]
    group = unit.get("Group", [user])[-1]
    execstart = unit["ExecStart"][-1].split()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for f in unit.get("EnvironmentFile", []):
        env.update(read_envfile(f.lstrip("-")))
    env.update(overrides)

    tmp = tempfile.mkdtemp(prefix="udc-notify-")
    os.chmod(tmp, 0o755)
    sock_path = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chmod(sock_path, 0o666)  # the unit's user writes to it
    env["NOTIFY_SOCKET"] = sock_path

    as_user = os.geteuid() == 0 and user
    cmd = execstart
    if as_user:
        pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
               "--no-new-privs", "--"] + execstart
    me = pwd.getpwuid(os.geteuid()).pw_name
    who = f"as {user}" if as_user else f"as {me} (not root: not as {user})" if user else f"as {me}"
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/")

    def logtail():
        log.flush()
        log.seek(0)
        return log.read().splitlines()[-15:]

    ready, got = wait_for(sock, "READY=1", proc, time.monotonic() + LIMIT)
    tap(ready, f"{name}: {execstart[0]} {who} with the packaged settings sends READY=1 (sd_notify)",
        got + logtail())
    listening = ready and port_open(port)
    tap(listening, f"{name}: port {port} accepts connections once READY=1 is sent", logtail())
    if proc.poll() is None:
        proc.terminate()
    stopping, got = wait_for(sock, "STOPPING=1", proc, time.monotonic() + LIMIT)
    try:
        rc = proc.wait(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    tap(stopping and rc == 0, f"{name}: SIGTERM sends STOPPING=1 and the daemon exits 0",
        got + [f"exit status {rc}"] + logtail())
    sock.close()
    log.close()
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
