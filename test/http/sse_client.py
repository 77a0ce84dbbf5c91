"""A small Server-Sent Events client for the stream tests (test_encounters.py):
a raw socket speaking HTTP/1.1, decoding the chunked body and the event
stream (id, event, data lines; comment lines; retry), independent of the
gateway's code.  Not a general HTTP client: one GET per connection."""
import json
import socket
import time


class Stream:
    def __init__(self, host, port, path, headers=None, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""        # raw bytes not decoded yet
        self.body = b""       # decoded body not parsed into items yet
        self.eof = False
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
                 "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._headers(timeout)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing came in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("the server closed the stream")
        self.buf += data

    def _headers(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._recv(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.json = None
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._recv(deadline)
            try:
                self.json = json.loads(self.buf[:n]) if n else None
            except ValueError:
                self.json = ("NOT JSON", self.buf[:200])

    def _decode(self):
        """Moves the complete chunks of buf into body."""
        if not self.chunked:
            self.body += self.buf
            self.buf = b""
            return
        while b"\r\n" in self.buf:
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.eof = True
                self.buf = b""
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.buf = rest[size + 2:]

    def next(self, timeout=30):
        """The next item: {"comment": text}, {"retry": ms} or an event
        {"id", "event", "data"}; EOFError at the end of the stream."""
        deadline = time.monotonic() + timeout
        while True:
            self._decode()
            if b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                return parse_block(block.decode())
            if self.eof:
                raise EOFError("the stream ended")
            self._recv(deadline)

    def events(self, n, timeout=30):
        """The next n events (comments and retry skipped)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            it = self.next(max(0.01, deadline - time.monotonic()))
            if "event" in it:
                out.append(it)
        return out

    def until(self, pred, timeout=30):
        """Items up to and including the first for which pred is true."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            it = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(it)
            if pred(it):
                return seen

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_block(block):
    item = {}
    data = []
    for line in block.split("\n"):
        if line.startswith(":"):
            item["comment"] = line[1:].strip()
            continue
        k, _, v = line.partition(":")
        v = v[1:] if v.startswith(" ") else v
        if k == "data":
            data.append(v)
        elif k in ("id", "event"):
            item[k] = v
        elif k == "retry":
            item["retry"] = int(v)
    if data:
        item["data"] = json.loads("\n".join(data))
    return item
