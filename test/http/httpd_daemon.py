"""Starting an extra udaconnect-httpd for the HTTP tests (test_api.py, browser_test.py)."""
import os
import socket
import subprocess
import time

TOP = os.environ.get("TOP") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def start_httpd(port, env, log_path, args=()):
    """udaconnect-httpd on 127.0.0.1:port with environment env; returns the
    process once it accepts connections."""
    log = open(log_path, "ab")
    p = subprocess.Popen([os.path.join(TOP, "gateway/httpd/udaconnect-httpd"), "--bind", "127.0.0.1",
                          "--port", str(port), "--web-root", os.path.join(TOP, "gateway/web")] + list(args),
                         env=env, stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("udaconnect-httpd on port %d did not start (log: %s)" % (port, log_path))
