#!/usr/bin/python3
"""Cross-checks the gateways' JWT layer (gateway/common/auth.c) against PyJWT
(Debian's python3-jwt), an independent implementation.

Tokens printed by udaconnect-token must decode in PyJWT with the key file's
first line; tokens PyJWT signs must be accepted or refused by the C verifier
(test/unit/auth_verify) with the reason expected.  Also checks
udaconnect-token's flags.  Output is TAP; run with /usr/bin/python3.

Usage: auth_pyjwt.py [TOP]   (TOP: the source tree, default from $TOP or this file)
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import jwt

TOP = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "TOP", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOKEN = os.path.join(TOP, "gateway", "token", "udaconnect-token")
VERIFY = os.path.join(TOP, "test", "unit", "auth_verify")

n = 0
failed = 0


def report(ok, what, detail=None):
    global n, failed
    n += 1
    if not ok:
        failed += 1
        if detail:
            for line in str(detail).splitlines():
                print("# " + line)
    print(("ok" if ok else "not ok") + " %d - %s" % (n, what))


def run(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


tmp = tempfile.mkdtemp(prefix="auth_pyjwt.")


def keyfile(name, *lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def genkey():
    rc, out, err = run([TOKEN, "--genkey"])
    assert rc == 0, err
    return out


# --------------------------------------------------------- udaconnect-token
k_old = genkey()
k_new = genkey()
raw = b64url_decode(k_old)
report(len(k_old) == 64 and len(raw) == 48 and k_old != k_new
       and all(c.isalnum() or c in "-_" for c in k_old),
       "--genkey: 64 base64url characters of 48 random bytes, a new key each time", k_old)

K1 = keyfile("old", k_old)
K21 = keyfile("rotated", k_new, k_old)

rc, tok, err = run([TOKEN, "--key-file", K1, "--person", "5"])
try:
    claims = jwt.decode(tok, k_old, algorithms=["HS256"])
    hdr = jwt.get_unverified_header(tok)
    ok = (rc == 0 and claims["sub"] == "5" and claims["role"] == "attendee"
          and claims["exp"] - claims["iat"] == 86400 and abs(claims["iat"] - time.time()) < 60
          and hdr["alg"] == "HS256")
except Exception as e:  # noqa: BLE001 -- any failure is the test's
    ok, claims = False, repr(e)
report(ok, "udaconnect-token --person 5: PyJWT decodes it with the key (sub \"5\", attendee, HS256, 24 h)", claims)

env = dict(os.environ, UDACONNECT_JWT_KEY_FILE=K21)
rc, tok, err = run([TOKEN, "--organizer", "ops-team", "--ttl", "90m"], env=env)
try:
    claims = jwt.decode(tok, k_new, algorithms=["HS256"])
    ok = rc == 0 and claims["sub"] == "ops-team" and claims["role"] == "organizer" \
        and claims["exp"] - claims["iat"] == 5400
    try:
        jwt.decode(tok, k_old, algorithms=["HS256"])
        ok = False
    except jwt.InvalidSignatureError:
        pass
except Exception as e:  # noqa: BLE001
    ok, claims = False, repr(e)
report(ok, "udaconnect-token --organizer (key file from the environment) signs with the first key; --ttl 90m", claims)

ttls = {"45s": 45, "2h": 7200, "7d": 604800, "365d": 31536000}
ok = True
for t, secs in ttls.items():
    rc, tok, err = run([TOKEN, "--key-file", K1, "--person", "9", "--ttl", t])
    c = jwt.decode(tok, k_old, algorithms=["HS256"]) if rc == 0 else {}
    ok &= rc == 0 and c.get("exp", 0) - c.get("iat", 0) == secs
report(ok, "udaconnect-token --ttl: 45s, 2h, 7d, 365d")

bad = [["--person", "0"], ["--person", "x"], ["--person", "2147483648"], ["--person", "1", "--ttl", "5"],
       ["--person", "1", "--ttl", "366d"], ["--person", "1", "--ttl", "0h"], ["--person", "1", "--ttl", "1w"],
       ["--bogus"], [], ["--person", "1", "--organizer", "x"], ["--person", "1", "extra"],
       ["--organizer", ""], ["--organizer", "x" * 64], ["--ttl"]]
wrong = []
for args in bad:
    rc, out, err = run([TOKEN, "--key-file", K1] + args)
    if rc != 2 or out != "" or "udaconnect-token" not in err:
        wrong.append((args, rc, out, err))
rc, out, err = run([TOKEN, "--person", "1"], env={k: v for k, v in os.environ.items()
                                                  if k != "UDACONNECT_JWT_KEY_FILE"})
if rc != 2 or "UDACONNECT_JWT_KEY_FILE" not in err:
    wrong.append(("no key file", rc, out, err))
report(not wrong, "udaconnect-token: bad flags, no mode, two modes, operands, no key file exit 2 with a message",
       "\n".join(map(repr, wrong)))

# ------------------------------------------------ PyJWT tokens, C verifier
now = int(time.time())


def verify(key_path, token):
    rc, out, err = run([VERIFY, key_path, token, str(now)])
    return rc, out + err


def pyjwt(payload, key=k_old, alg="HS256", headers=None):
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def att(sub, **kw):
    p = {"sub": sub, "role": "attendee", "exp": now + 600}
    p.update(kw)
    return p


def expect(token, want, what, key_path=K1):
    """want: 'ok attendee 5 5' (start of the line) or a piece of the reason"""
    rc, out = verify(key_path, token)
    if want.startswith("ok "):
        good = rc == 0 and out.startswith(want + " ")
    else:
        good = rc == 1 and out.startswith("invalid: ") and want in out
    report(good, "C verifier, PyJWT token: %s -> %s" % (what, want), "got rc %d: %s" % (rc, out))


def tamper_payload(token, **changes):
    h, p, s = token.split(".")
    claims = json.loads(b64url_decode(p))
    claims.update(changes)
    return ".".join([h, b64url(json.dumps(claims, separators=(",", ":")).encode()), s])


def rs256_token(payload):
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives import serialization
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        return pyjwt(payload, pem, "RS256")
    except ImportError:  # no python3-cryptography: the same header, a random signature
        return ".".join([b64url(b'{"alg":"RS256","typ":"JWT"}'),
                         b64url(json.dumps(payload).encode()), b64url(os.urandom(256))])


expect(pyjwt(att("5")), "ok attendee 5 5", "valid attendee, sub \"5\"")
expect(pyjwt(att(77)), "ok attendee 77 77", "valid attendee, sub a JSON integer")
expect(pyjwt({"sub": "Ada Lovelace", "role": "organizer", "exp": now + 60, "iat": now}),
       "ok organizer 0 Ada Lovelace", "valid organizer")
expect(pyjwt(att("5"), key=k_old), "ok attendee 5 5", "signed with the old key (line 2) of a rotated file",
       key_path=K21)
expect(pyjwt(att("5"), key=k_new), "signature does not match any key", "signed with the new key, old file only")
expect(pyjwt(att("5"), key=None, alg="none"), 'alg "none"', "alg none")
expect(pyjwt(att("5"), alg="HS512"), 'alg "HS512" is refused', "HS512 with the right key")
expect(rs256_token(att("5")), 'alg "RS256" is refused', "RS256 with another key")
expect(pyjwt(att("5"), key="another-key-of-enough-length-0123456789"), "signature does not match any key",
       "wrong key")
expect(tamper_payload(pyjwt(att("5")), sub="6"), "signature does not match any key",
       "payload changed (sub 5 -> 6), signature kept")
expect(pyjwt(att("5", exp=now - 1)), "expired", "expired a second ago")
expect(pyjwt(att("5", exp=now)), "expired", "exp == now")
expect(pyjwt(att("5", nbf=now + 30)), "not valid yet", "nbf 30 s ahead")
expect(pyjwt({"sub": "5", "role": "attendee"}), "has no exp", "missing exp")
expect(pyjwt({"role": "attendee", "exp": now + 60}), "has no sub", "missing sub")
expect(pyjwt({"sub": "5", "exp": now + 60}), "has no role", "missing role")
expect(pyjwt({"sub": "5", "role": "admin", "exp": now + 60}), 'role "admin" is neither', "role admin")
for sub in ["abc", "0", "-1", "99999999999"]:
    expect(pyjwt(att(sub)), "attendee's sub must be a person id", "attendee sub \"%s\"" % sub)
expect("garbage.garbage.garbage", "malformed token", "three parts of garbage")
expect(".".join(pyjwt(att("5")).split(".")[:2]), "not three base64url parts", "two parts")
expect(pyjwt(att("5", pad="x" * 4000)), "longer than 4096 bytes", "a 4 kB claim")

# a random token refused by PyJWT is refused by the C verifier too, and the reverse
ok = True
for i in range(20):
    t = pyjwt(att(str(i + 1), exp=now + (-1) ** i * 100))
    try:
        jwt.decode(t, k_old, algorithms=["HS256"])
        py = True
    except jwt.InvalidTokenError:
        py = False
    ok &= (verify(K1, t)[0] == 0) == py
report(ok, "C verifier and PyJWT agree on 20 tokens alternately valid and expired")

for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
print("1..%d" % n)
sys.exit(1 if failed else 0)
