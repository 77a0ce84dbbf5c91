#!/usr/bin/env python3
"""Proves check_dockerfiles.py is not vacuous: each mutation of
deployment/docker/gateway.Dockerfile must make the named check fail.

    python3 test/deploy/dockerfile_mutations.py TOP WORKDIR

One TAP line per mutation ("ok - ..."/"not ok - ..."; the suite numbers them).
"""
import os
import sys

top, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dockerfiles as cd  # noqa: E402  (shares its apt/dpkg caches across mutations)
src = open(os.path.join(top, "deployment", "docker", "gateway.Dockerfile")).read()

MUTATIONS = [
    ("a floating base image tag", ("ARG DEBIAN_IMAGE=debian:12.11-slim", "ARG DEBIAN_IMAGE=debian:bookworm-slim"), "pinned Debian 12"),
    ("a COPY source missing from the tree", ("COPY build/deb/udaconnect-gateways_", "COPY build/deb/udaconnect-gatewayz_"), "COPY sources"),
    ("a package that is not in Debian 12", (" tini \\", " tini libjansson-runtime-udc \\"), "Debian 12 packages"),
    ("running as root", ("USER 10001:10001", "USER 0"), "non-root"),
    ("the tree's package not installed, its program run",
     ("        /tmp/debs/udaconnect-gateways_*.deb ", "        "), "ENTRYPOINT/CMD programs"),
    ("several .debs matched by one name (the debug symbols too)",
     ("udaconnect-gateways_*.deb", "udaconnect-gateways*.deb"), "this tree's packages"),
]

os.makedirs(work, exist_ok=True)
for desc, (old, new), words in MUTATIONS:
    if old not in src:
        print(f"not ok - the Dockerfile check catches {desc}")
        print(f"#   the text to mutate is gone from gateway.Dockerfile: {old!r}")
        continue
    path = os.path.join(work, "mutated.Dockerfile")
    with open(path, "w") as f:
        f.write(src.replace(old, new))  # every occurrence
    cd.results.clear()
    cd.check_file(top, path)
    failed = [f"not ok - {d}" for d, probs, skip in cd.results if probs and not skip]
    skipped = [skip for d, probs, skip in cd.results if skip and words in d]
    if skipped:
        print(f"ok - the Dockerfile check catches {desc} # SKIP {skipped[0]}")
    elif any(words in ln for ln in failed):
        print(f"ok - the Dockerfile check catches {desc}")
    else:
        print(f"not ok - the Dockerfile check catches {desc} (expected '{words}' to fail)")
        for ln in failed or ["(nothing failed)"]:
            print(f"#   {ln}")
