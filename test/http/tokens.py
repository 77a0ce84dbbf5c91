"""Tokens for the HTTP tests (test_api.py, test_oversized.py), minted with
PyJWT (Debian's python3-jwt), a client independent of the gateway's own
gateway/common/auth.c, with the stack's key ($UDACONNECT_JWT_KEY_FILE, made
by scripts/stack.d/05-auth.sh; the first line signs)."""
import base64
import json
import os
import time

import jwt

KEY_FILE = os.environ.get("UDACONNECT_JWT_KEY_FILE", "")
# what the stack's daemon was started with (05-auth.sh, 50-httpd.sh)
STACK_AUTH = os.environ.get("UDACONNECT_AUTH", "on") == "on"


def key():
    with open(KEY_FILE) as f:
        return f.readline().rstrip()


def mint(claims, signing_key=None, alg="HS256", ttl=3600):
    """A token of `claims`; exp = now + ttl unless claims has "exp" (None
    removes it)."""
    c = dict(claims)
    if "exp" not in c:
        c["exp"] = int(time.time()) + ttl
    c = {k: v for k, v in c.items() if v is not None}
    return jwt.encode(c, signing_key or key(), algorithm=alg)


def unsigned(claims):
    """alg "none": header and payload, empty signature."""
    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."


def organizer(name="test-organizer"):
    return mint({"sub": name, "role": "organizer"})


def attendee(person_id):
    return mint({"sub": str(person_id), "role": "attendee"})


def bearer(token):
    return {"Authorization": "Bearer " + token}


def stack_headers():
    """What a client of the stack's daemon sends to be an organizer (nothing
    when the stack runs with UDACONNECT_AUTH=off)."""
    return bearer(organizer()) if STACK_AUTH else {}
