#!/usr/bin/env python3
"""Runs the build stages of the Dockerfiles without Docker (issue 6).

    python3 test/deploy/emulate_build.py TOP WORKDIR deployment/docker/*.Dockerfile

For each build stage: a scratch root stands for the image's filesystem;
WORKDIR and COPY (from the build context, filtered by the Dockerfile's
.dockerignore, as Docker sends it) are applied into it, and every RUN that is
not a package installation runs there with bash, its absolute paths outside
the system directories (/src, /out, ...) mapped into the scratch root.  The
packages themselves are this machine's (the same Debian 12 packages; that the
stage installs them is check_dockerfiles.py's business).  Then every
`COPY --from=<stage>` of the final stage must find its source.

This proves the build needs nothing outside what the Dockerfile copies.
An image without a build stage installs this tree's .debs (make deb): they
must be there and unpack.
One TAP line per check ("ok - ..."/"not ok - ..."; the suite numbers them).
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dockerfiles as cd  # noqa: E402

SYSTEM = ("/usr", "/etc", "/lib", "/lib64", "/bin", "/sbin", "/var", "/tmp", "/dev", "/proc", "/opt", "/run", "/home")


def mapper(root):
    def m(path):
        if not path.startswith("/") or path.startswith(SYSTEM) or path == "/":
            return path
        return root + path
    return m


def map_command(cmd, root):
    """Map absolute non-system paths in a shell command into root."""
    return re.sub(r"(?<=[\s=])(/[A-Za-z0-9_.][^\s;&|]*)", lambda mo: mapper(root)(mo.group(1)), " " + cmd)[1:]


def copy_context(top, srcs, dst, pats):
    for src in srcs:
        s = os.path.join(top, src)
        if os.path.isdir(s):
            os.makedirs(dst, exist_ok=True)
            for r, ds, fs in os.walk(s):
                rel_dir = os.path.relpath(r, top)
                ds[:] = [d for d in ds if not cd.ignored(os.path.join(rel_dir, d), pats)]
                for f in fs:
                    rel = os.path.join(rel_dir, f)
                    if cd.ignored(rel, pats):
                        continue
                    target = os.path.join(dst, os.path.relpath(os.path.join(r, f), s))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(os.path.join(r, f), target)
        else:
            target = os.path.join(dst, os.path.basename(src)) if dst.endswith("/") else dst
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(s, target)


def main():
    top, work, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    for df in files:
        rel_df = os.path.relpath(df, top)
        stages = cd.parse(df)
        pats = cd.dockerignore_patterns(df, top)
        roots, probs, ran = {}, [], 0
        if len(stages) < 2:
            # no build stage: the image installs this tree's packages, built by
            # `make deb` (its build is test/suites/80-packages.sh's business)
            debs = cd.installed_debs(stages[-1], top) if stages else {}
            files = [f for fs in debs.values() for f in fs]
            bad = [t for t, fs in debs.items() if not fs]
            bad += [os.path.relpath(f, top) for f in files
                    if subprocess.run(["dpkg-deb", "--contents", f], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL).returncode != 0]
            desc = f"{rel_df}: nothing is built in the image; the .debs of make deb it installs unpack"
            if debs and not bad:
                print(f"ok - {desc} ({', '.join(os.path.basename(f) for f in files)})")
            else:
                print(f"not ok - {desc}")
                for b in bad or ["no build stage and no .deb of this tree installed"]:
                    print(f"#   {b}")
            continue
        base = os.path.join(work, os.path.basename(df))
        shutil.rmtree(base, ignore_errors=True)
        for i, st in enumerate(stages[:-1]):
            name = st["name"] or str(i)
            root = os.path.join(base, name)
            roots[name] = root
            os.makedirs(root)
            cwd = root
            for instr, rest in st["instr"]:
                if instr == "WORKDIR":
                    cwd = mapper(root)(rest) if rest.startswith("/") else os.path.join(cwd, rest)
                    os.makedirs(cwd, exist_ok=True)
                elif instr in ("COPY", "ADD"):
                    frm, srcs, dst = cd.copy_parts(rest)
                    if frm:
                        continue
                    d = mapper(root)(dst) if dst.startswith("/") else os.path.join(cwd, dst)
                    copy_context(top, srcs, d if not dst.endswith("/") else d.rstrip("/") + "/", pats)
                elif instr == "RUN":
                    if "apt-get" in rest:
                        continue
                    cmd = map_command(rest, root)
                    ran += 1
                    p = subprocess.run(["bash", "-ec", cmd], cwd=cwd, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    if p.returncode != 0:
                        probs.append(f"RUN {rest[:100]} failed ({p.returncode}):")
                        probs += ["  " + ln for ln in p.stdout.splitlines()[-15:]]
                        break
            if probs:
                break
        if probs:
            print(f"not ok - {rel_df}: the build stage's {ran} RUN step(s) succeed on the copied context alone")
            for ln in probs:
                print(f"#   {ln}")
            continue
        print(f"ok - {rel_df}: the build stage's {ran} RUN step(s) succeed on the copied context alone (no Docker: scratch root)")
        missing, found = [], []
        for instr, rest in stages[-1]["instr"]:
            if instr != "COPY":
                continue
            frm, srcs, _dst = cd.copy_parts(rest)
            if not frm:
                continue
            for s in srcs:
                path = roots.get(frm, "/nonexistent") + s
                (found if os.path.exists(path) else missing).append(s)
        if missing:
            print(f"not ok - {rel_df}: every COPY --from source exists after the build")
            for s in missing:
                print(f"#   missing: {s}")
        else:
            print(f"ok - {rel_df}: every COPY --from source exists after the build ({', '.join(found)})")
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
