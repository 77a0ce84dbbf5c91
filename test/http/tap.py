"""TAP output shared by the HTTP test scripts (test_api.py, test_oversized.py,
browser_test.py): numbered "ok N - ..." / "not ok N - ..." lines, the
numbering continuing from $TAP_START when a suite runs several scripts."""
import os
import sys


class Tap:
    def __init__(self, start=None, diag_lines=20):
        self.n = int(os.environ.get("TAP_START", "1")) - 1 if start is None else start - 1
        self.failed = 0
        self.diag_lines = diag_lines

    def __call__(self, ok, desc, diag=None):
        self.n += 1
        print(("ok" if ok else "not ok") + " %d - %s" % (self.n, desc), flush=True)
        if not ok:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines()[:self.diag_lines]:
                    print("#   " + line, flush=True)

    def skip(self, why):
        self.n += 1
        print("ok %d # SKIP %s" % (self.n, why), flush=True)

    def exit(self):
        sys.exit(1 if self.failed else 0)
