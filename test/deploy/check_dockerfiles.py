#!/usr/bin/env python3
"""Static checks of the container images' Dockerfiles (issue 6).

No Docker engine runs here, so the Dockerfiles are checked against the tree
and against Debian 12's package index instead:

    python3 test/deploy/check_dockerfiles.py TOP deployment/docker/*.Dockerfile

One TAP line per check and Dockerfile ("ok - ..." / "not ok - ..." or
"ok - ... # SKIP why"); the suite numbers them.
  - multi-stage, every FROM a pinned Debian 12 (bookworm) slim image
  - every COPY source from the build context exists in the tree and is not
    excluded by the Dockerfile's .dockerignore
  - every package named by apt-get install exists in Debian 12 (apt-cache)
  - the final stage runs as a non-root numeric user
  - ENTRYPOINT/CMD programs exist: copied from the tree (and executable) or
    shipped by a package the stage installs (dpkg -S, then apt-cache depends)
  - every shared library the built artefacts link (ldd on the binaries built
    in this tree, when they are built) comes from a package of the final
    stage or one of its dependencies
An image may instead install this tree's own Debian packages (build/deb,
`make deb`, docs/packages.md): then it needs no build stage, the .debs it
copies must be there at the extension's version with dependencies in
Debian 12, its programs are looked up in the .debs, and the binaries they
ship are the artefacts whose libraries are checked.
"""
import atexit
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

results = []


def check(desc, problems, skip=None):
    results.append((desc, list(problems), skip))


def emit():
    for desc, problems, skip in results:
        if skip:
            print(f"ok - {desc} # SKIP {skip}")
        elif problems:
            print(f"not ok - {desc}")
            for p in problems[:40]:
                print(f"#   {p}")
        else:
            print(f"ok - {desc}")


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout


# ---------------------------------------------------------------------------
# Dockerfile parsing (the subset these files use)
# ---------------------------------------------------------------------------
def parse(path):
    lines, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not cur and (line.strip().startswith("#") or not line.strip()):
            continue
        if line.strip().startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        lines.append(cur.strip())
        cur = ""
    if cur.strip():
        lines.append(cur.strip())
    args, stages = {}, []
    for ln in lines:
        instr, _, rest = ln.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')
            continue
        if instr == "FROM":
            toks = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), toks[0])
            name = toks[2] if len(toks) >= 3 and toks[1].upper() == "AS" else None
            stages.append({"image": image, "name": name, "instr": []})
            continue
        if stages:
            stages[-1]["instr"].append((instr, rest))
    return stages


def exec_form(rest):
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return shlex.split(rest)


def copy_parts(rest):
    toks = shlex.split(rest)
    opts = [t for t in toks if t.startswith("--")]
    toks = [t for t in toks if not t.startswith("--")]
    frm = None
    for o in opts:
        if o.startswith("--from="):
            frm = o.split("=", 1)[1]
    return frm, toks[:-1], toks[-1]


def apt_packages(stage):
    pkgs = []
    for instr, rest in stage["instr"]:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", rest):
            toks = cmd.split()
            if len(toks) >= 2 and toks[0] in ("apt-get", "apt") and "install" in toks:
                for t in toks[toks.index("install") + 1:]:
                    if t.startswith("-") or t in ("\\",) or "/" in t:
                        continue  # options, and local .deb files (installed_debs)
                    pkgs.append(t)
    return pkgs


def installed_debs(stage, top):
    """The tree's .deb files a stage installs: `apt-get install /dir/NAME_*.deb`
    of a file a COPY put in /dir/, mapped back to the tree ({token: [files]})."""
    copies = []
    for instr, rest in stage["instr"]:
        if instr == "COPY":
            frm, srcs, dst = copy_parts(rest)
            if not frm:
                copies += [(src, dst) for src in srcs]
    found = {}
    for instr, rest in stage["instr"]:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", rest):
            toks = cmd.split()
            if not (len(toks) >= 2 and toks[0] in ("apt-get", "apt") and "install" in toks):
                continue
            for t in toks[toks.index("install") + 1:]:
                if "/" not in t or not t.endswith(".deb"):
                    continue
                files = []
                for src, dst in copies:
                    if dst.endswith("/") and os.path.dirname(t) == dst.rstrip("/") and \
                            fnmatch.fnmatch(os.path.basename(t), os.path.basename(src)):
                        files += sorted(glob.glob(os.path.join(top, os.path.dirname(src), os.path.basename(t))))
                found[t] = files
    return found


def deb_field(path, field):
    rc, out = run(["dpkg-deb", "-f", path, field])
    return out.strip() if rc == 0 else ""


def deb_depends(path):
    """Every package name in a .deb's Depends and Pre-Depends (alternatives included)."""
    names = []
    for f in ("Depends", "Pre-Depends"):
        for alt in re.split(r"[,|]", deb_field(path, f)):
            m = re.match(r"\s*([a-z0-9][a-z0-9+.-]*)", alt)
            if m:
                names.append(m.group(1))
    return names


def provided(name):
    """A virtual package some Debian package provides (apt-cache showpkg)."""
    rc, out = run(["apt-cache", "showpkg", name])
    tail = out.split("Reverse Provides:", 1)
    return rc == 0 and len(tail) == 2 and tail[1].strip() != ""


def deb_paths(path):
    """The paths a .deb installs (files and symlinks), as absolute paths."""
    rc, out = run(["dpkg-deb", "-c", path])
    paths = set()
    for ln in out.splitlines():
        parts = ln.split(None, 5)
        if len(parts) == 6:
            paths.add(parts[5].split(" -> ")[0].lstrip(".").rstrip("/") or "/")
    return paths


def dockerignore_patterns(dockerfile, top):
    for cand in (dockerfile + ".dockerignore", os.path.join(top, ".dockerignore")):
        if os.path.exists(cand):
            pats = []
            for ln in open(cand):
                ln = ln.strip()
                if ln and not ln.startswith("#"):
                    pats.append(ln.rstrip("/"))
            return pats
    return []


def ignored(rel, pats):
    rel = rel.rstrip("/")
    out = False
    for p in pats:
        neg = p.startswith("!")
        p = p.lstrip("!")
        hit = fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.replace("**/", "")) or \
            any(fnmatch.fnmatch(rel, p + "/" + "*") for _ in [0]) or rel.startswith(p + "/")
        if hit:
            out = not neg
    return out


# ---------------------------------------------------------------------------
# Debian package knowledge (apt-cache / dpkg)
# ---------------------------------------------------------------------------
_apt_ok = None


def apt_usable():
    global _apt_ok
    if _apt_ok is None:
        rc, out = run(["apt-cache", "show", "--no-all-versions", "libc6"])
        _apt_ok = rc == 0 and "Package: libc6" in out
    return _apt_ok


_policy_cache = {}


def debian12_check(pkgs):
    """{pkg: problem or None} for many packages with one apt-cache call."""
    todo = [p for p in pkgs if p not in _policy_cache]
    if todo:
        _policy_cache.update(_debian12_check(todo))
    return {p: _policy_cache[p] for p in pkgs}


def _debian12_check(pkgs):
    rc, out = run(["apt-cache", "policy", *pkgs])
    blocks, cur = {}, None
    for ln in out.splitlines():
        m = re.match(r"^(\S+?)(?::\w+)?:$", ln)
        if m:
            cur = m.group(1)
            blocks[cur] = ""
        elif cur:
            blocks[cur] += ln + "\n"
    res = {}
    for p in pkgs:
        b = blocks.get(p)
        if b is None:
            res[p] = "not found"
        elif "Candidate: (none)" in b:
            res[p] = "no installable version"
        elif not re.search(r"\bbookworm(-updates|-security)?[/ ]|bookworm-security|/var/lib/dpkg/status", b):
            res[p] = "not from bookworm"
        else:
            res[p] = None
    return res


_closure_cache = {}
_essential = None


def essential():
    """Essential packages: in every Debian image."""
    global _essential
    if _essential is None:
        rc, out = run(["dpkg-query", "-W", "-f=${Package} ${Essential}\n"])
        _essential = {ln.split()[0] for ln in out.splitlines() if ln.endswith(" yes")}
    return _essential


def dep_closure(pkgs):
    key = tuple(sorted(pkgs))
    if key in _closure_cache:
        return _closure_cache[key]
    rc, out = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                   "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *pkgs])
    closure = set(pkgs)
    for ln in out.splitlines():
        ln = ln.strip()
        m = re.match(r"^(?:\|?(?:Pre)?Depends: )?<?([a-z0-9][a-z0-9+.-]*)(?::\w+)?>?$", ln)
        if m:
            closure.add(m.group(1))
    closure |= essential()
    _closure_cache[key] = closure
    return closure


_owner_cache = {}
_ldd_cache = {}
_pc_cache = {}


def owners(paths):
    """{path: [Debian packages shipping it] or None}, one dpkg -S call (symlinks resolved)."""
    todo = [p for p in dict.fromkeys(paths) if p not in _owner_cache]
    if todo:
        _owner_cache.update(_owners(todo))
    return {p: _owner_cache[p] for p in paths}


def _owners(paths):
    paths = list(dict.fromkeys(paths))
    if not paths:
        return {}
    real = {p: os.path.realpath(p) for p in paths}
    rc, out = run(["dpkg", "-S", *paths, *[r for r in real.values() if r not in paths]])
    found = {}
    for ln in out.splitlines():
        if ln.startswith("diversion by"):
            continue
        pk, _, fp = ln.partition(": ")
        pkgs = [x.strip().split(":")[0] for x in pk.split(",") if x.strip()]
        found.setdefault(fp.strip(), []).extend(pkgs)
    return {p: found.get(p) or found.get(real[p]) for p in paths}


def any_in(pkgs, closure):
    return any(p in closure for p in pkgs or [])


# ---------------------------------------------------------------------------
def check_file(top, df):
    """All checks of one Dockerfile (results accumulate in `results`)."""
    rel_df = os.path.relpath(df, top)
    stages = parse(df)
    final = stages[-1] if stages else None

    debs = installed_debs(final, top) if final else {}
    deb_files = [f for fs in debs.values() for f in fs]

    # -- base images pinned, multi-stage ----------------------------------
    probs = []
    if len(stages) < 2 and not debs:
        probs.append("neither multi-stage nor installing this tree's packages (build/deb)")
    names = {s["name"] for s in stages if s["name"]}
    for s in stages:
        img = s["image"]
        if img in names:
            continue
        if "@sha256:" in img:
            if not img.startswith("debian:"):
                probs.append(f"FROM {img}: not a Debian image")
            continue
        if not re.fullmatch(r"debian:(12\.\d+-slim|bookworm-\d{8}-slim)", img):
            probs.append(f"FROM {img}: not a pinned debian bookworm slim image (debian:12.N-slim, debian:bookworm-YYYYMMDD-slim or a digest)")
    if final and len(stages) >= 2 and not any(i == "COPY" and copy_parts(r)[0] for i, r in final["instr"]):
        probs.append("the final stage copies nothing from a build stage")
    how = "this tree's packages" if debs else "multi-stage"
    check(f"{rel_df}: {how}, every FROM a pinned Debian 12 slim image", probs)

    # -- COPY sources -------------------------------------------------------
    probs = []
    pats = dockerignore_patterns(df, top)
    n = 0
    for s in stages:
        for instr, rest in s["instr"]:
            if instr not in ("COPY", "ADD"):
                continue
            frm, srcs, _dst = copy_parts(rest)
            if frm:
                if frm not in names:
                    probs.append(f"COPY --from={frm}: no such stage")
                continue
            for src in srcs:
                n += 1
                p = os.path.join(top, src)
                if src.startswith(("/", "..")) or re.match(r"^\w+://", src):
                    probs.append(f"COPY {src}: outside the build context")
                elif "*" in src or "?" in src:
                    hits = sorted(glob.glob(p))
                    if not hits:
                        probs.append(f"COPY {src}: nothing matches in the tree" +
                                     (" (run make deb)" if src.startswith("build/deb/") else ""))
                    for h in hits:
                        if ignored(os.path.relpath(h, top), pats):
                            probs.append(f"COPY {src}: {os.path.relpath(h, top)} is excluded by the .dockerignore")
                elif not os.path.exists(p):
                    probs.append(f"COPY {src}: missing in the tree")
                elif ignored(src, pats):
                    probs.append(f"COPY {src}: excluded by the .dockerignore")
    check(f"{rel_df}: all {n} COPY sources exist in the tree and are in the build context", probs)

    # -- apt packages in Debian 12 ------------------------------------------
    allpkgs = sorted({p for s in stages for p in apt_packages(s)})
    if not apt_usable():
        check(f"{rel_df}: every apt package is a Debian 12 package", [],
              skip="apt-cache has no package lists (run apt-get update)")
    else:
        probs = [f"{p}: {why}" for p, why in debian12_check(allpkgs).items() if why]
        check(f"{rel_df}: all {len(allpkgs)} apt packages are Debian 12 packages", probs)

    # -- non-root -------------------------------------------------------------
    probs = []
    users = [r for i, r in final["instr"] if i == "USER"] if final else []
    if not users:
        probs.append("no USER in the final stage")
    else:
        u = users[-1].split(":")[0]
        if not u.isdigit():
            probs.append(f"USER {users[-1]} is not numeric (runAsNonRoot needs a uid)")
        elif int(u) == 0:
            probs.append("USER is root")
    check(f"{rel_df}: the final stage runs as a numeric non-root user", probs)

    # -- entrypoints ---------------------------------------------------------------
    probs, skipped = [], []
    copied = {}
    for instr, rest in final["instr"]:
        if instr == "COPY":
            frm, srcs, dst = copy_parts(rest)
            if len(srcs) == 1:
                copied[dst] = (frm, srcs[0])
    chmodded = " ".join(r for i, r in final["instr"] if i == "RUN")
    # this tree's packages are not in apt's lists: their dependencies stand in
    final_pkgs = apt_packages(final)
    in_debs = set()
    for f in deb_files:
        final_pkgs = final_pkgs + deb_depends(f)
        in_debs |= deb_paths(f)
    progs = []
    for instr, rest in final["instr"]:
        if instr in ("ENTRYPOINT", "CMD"):
            progs += [a for a in exec_form(rest) if a.startswith("/")]
    prog_owner = owners([p for p in progs if p not in copied and p not in in_debs])
    tree_dirs = [d for d, (frm, src) in copied.items() if d.endswith("/") and not frm]
    for prog in progs:
        if prog in in_debs:
            continue  # shipped by this tree's package the stage installs
        if prog in copied:
            frm, src = copied[prog]
            if frm:
                continue  # built in a stage (checked by the build)
            p = os.path.join(top, src)
            if not os.path.exists(p):
                probs.append(f"{prog}: copied from missing {src}")
            elif not os.access(p, os.X_OK) and "chmod" not in chmodded:
                probs.append(f"{prog}: {src} is not executable")
            continue
        hit = [d for d in tree_dirs if prog.startswith(d)]
        if hit:
            src = os.path.join(top, copied[hit[0]][1], prog[len(hit[0]):])
            if not os.path.exists(src):
                probs.append(f"{prog}: not in the copied directory {copied[hit[0]][1]}")
            continue
        pkg = prog_owner.get(prog)
        if pkg is None:
            skipped.append(prog)
            continue
        if not any_in(pkg, dep_closure(final_pkgs)):
            probs.append(f"{prog} is shipped by {', '.join(pkg)}, which the final stage does not install")
    if skipped and not probs:
        check(f"{rel_df}: ENTRYPOINT/CMD programs exist", [],
              skip=f"{', '.join(skipped)} not installed here (dpkg -S cannot tell)")
    else:
        check(f"{rel_df}: ENTRYPOINT/CMD programs exist ({', '.join(progs)})", probs)

    # -- this tree's packages: there, at the extension's version, with Debian
    #    12 dependencies ----------------------------------------------------------
    if debs:
        probs = []
        ctl = os.path.join(top, "pg_udaconnect", "pg_udaconnect.control")
        m = re.search(r"^default_version = '(.*)'", open(ctl).read(), re.M) if os.path.exists(ctl) else None
        version = m.group(1) if m else None
        for token, files in sorted(debs.items()):
            if not files:
                probs.append(f"{token}: no such .deb in the tree (run make deb)")
            elif len(files) > 1:
                probs.append(f"{token}: {len(files)} files match, the image would install them all")
            for f in files:
                v = deb_field(f, "Version")
                if version and v != version:
                    probs.append(f"{os.path.relpath(f, top)} is version {v}, the tree is {version} (run make deb)")
        if deb_files and apt_usable():
            deps = sorted({d for f in deb_files for d in deb_depends(f)})
            ours = {deb_field(f, "Package") for f in glob.glob(os.path.join(top, "build", "deb", "*.deb"))}
            probs += [f"a dependency, {p}: {why}" for p, why in debian12_check([d for d in deps if d not in ours]).items()
                      if why and not provided(p)]
        names = ", ".join(sorted(os.path.basename(f) for f in deb_files)) or "none"
        check(f"{rel_df}: installs this tree's packages at its version, their dependencies in Debian 12 ({names})", probs)

    # -- build stages: the packages behind the Makefiles' pkg-config names,
    #    -l libraries and tools ------------------------------------------------
    if len(stages) < 2:
        pass  # nothing is built in the image
    elif not apt_usable():
        check(f"{rel_df}: the build stage installs what the copied Makefiles use", [],
              skip="apt-cache has no package lists")
    else:
        probs, used = [], []
        for s in stages[:-1]:
            dirs = []
            for instr, rest in s["instr"]:
                if instr == "COPY":
                    frm, srcs, _dst = copy_parts(rest)
                    if not frm:
                        dirs += [os.path.join(top, x) for x in srcs if os.path.isdir(os.path.join(top, x))]
            mk_text = ""
            for d in dirs:
                for root, _ds, fs in os.walk(d):
                    for fn in fs:
                        if fn == "Makefile" or fn.endswith(".mk"):
                            mk_text += open(os.path.join(root, fn), errors="replace").read() + "\n"
            if not mk_text:
                continue
            needs = {}  # what -> file to find its package by
            for m in re.finditer(r"pkg-config\s+((?:--[\w=-]+\s+)*)([\w+. -]+?)(?:\)|2>|\|\||$)", mk_text, re.M):
                for name in m.group(2).split():
                    if name not in _pc_cache:
                        rc, pc = run(["pkg-config", "--path", name])
                        _pc_cache[name] = pc.strip() if rc == 0 else None
                    needs[f"pkg-config {name}"] = _pc_cache[name]
            for lib in sorted(set(re.findall(r"(?<![\w-])-l([a-zA-Z][\w+-]*)", mk_text)) - {"m", "c", "pthread", "dl", "rt"}):
                cand = [f"/usr/lib/x86_64-linux-gnu/lib{lib}.so", f"/usr/lib/lib{lib}.so"]
                needs[f"-l{lib}"] = next((c for c in cand if os.path.exists(c)), None)
            for tool in ("protoc-c", "pg_config", "protoc"):
                if re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(tool), mk_text):
                    needs[tool] = "/usr/bin/" + tool
            own = owners([f for f in needs.values() if f])
            closure = dep_closure(apt_packages(s))
            for what, f in sorted(needs.items()):
                used.append(what)
                if f is None:
                    probs.append(f"{what}: not found on this machine either (scripts/deps.sh?)")
                elif own.get(f) is None:
                    probs.append(f"{what}: {f} belongs to no Debian package")
                elif not any_in(own[f], closure):
                    probs.append(f"{what} needs {' or '.join(own[f])}, which the build stage does not install")
        check(f"{rel_df}: the build stage installs what the copied Makefiles use ({', '.join(used) or 'nothing'})", probs)

    # -- shared libraries of the artefacts --------------------------------------
    artefacts = []
    for instr, rest in final["instr"]:
        if instr == "COPY":
            frm, srcs, dst = copy_parts(rest)
            for src in srcs:
                if frm:
                    # /src/<path> in the build stage is <path> in the tree;
                    # /out/usr/... is "make install" of pg_udaconnect
                    if src.startswith("/src/"):
                        artefacts.append(os.path.join(top, src[len("/src/"):]))
                    elif src.startswith("/out/usr"):
                        so = "/usr/lib/postgresql/15/lib/pg_udaconnect.so"
                        tree_so = os.path.join(top, "pg_udaconnect", "pg_udaconnect.so")
                        artefacts.append(tree_so if os.path.exists(tree_so) else so)
    if deb_files:
        unpacked = tempfile.mkdtemp(prefix="udc-debs-")
        atexit.register(shutil.rmtree, unpacked, True)
        for f in deb_files:
            run(["dpkg-deb", "-x", f, unpacked])
        for r, _ds, fs in os.walk(unpacked):
            for fn in fs:
                fp = os.path.join(r, fn)
                if not os.path.islink(fp) and open(fp, "rb").read(4) == b"\x7fELF":
                    artefacts.append(fp)
    built = [a for a in artefacts if os.path.isfile(a)]
    if not built:
        check(f"{rel_df}: the final stage has every shared library its binaries link", [],
              skip="no artefact built in this tree yet (run make)")
        return
    if not apt_usable():
        check(f"{rel_df}: the final stage has every shared library its binaries link", [],
              skip="apt-cache has no package lists")
        return
    probs = []
    closure = dep_closure(final_pkgs + (["postgresql-15"] if "postgresql-15" in final_pkgs else []))
    libs = []
    for a in built:
        rc, out = run(["ldd", a])
        if rc != 0:
            probs.append(f"ldd {os.path.relpath(a, top)} failed")
            continue
        for ln in out.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", ln)
            # sanitizer runtimes only appear in a developer's instrumented
            # build (CFLAGS=-fsanitize=...); the image builds with the defaults
            if m and re.match(r"lib(asan|ubsan|tsan|lsan)\.so", m.group(1)):
                continue
            if m:
                libs.append((os.path.basename(a), m.group(1), m.group(2)))
    libs_seen = len(libs)
    lib_owner = owners([lib[2] for lib in libs])
    for binary, soname, path in libs:
        pkg = lib_owner.get(path)
        if pkg is None:
            probs.append(f"{binary}: {soname} ({path}) belongs to no Debian package")
        elif not any_in(pkg, closure):
            probs.append(f"{binary}: {soname} comes from {', '.join(pkg)}, not installed in the final stage")
    check(f"{rel_df}: the final stage has every shared library its {len(built)} binaries link ({libs_seen} libraries)", probs)



def main():
    top = sys.argv[1]
    for df in sys.argv[2:]:
        check_file(top, df)
    emit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
