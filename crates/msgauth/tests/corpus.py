#!/usr/bin/python3
"""The independent side of crates/msgauth/tests/lab.rs: Debian's
python3-dkim (dkimpy) signs the DKIM corpus and verifies it, python3-spf
(pyspf) checks the SPF cases, both against the lab DNS (run inside the
lab host with `netlab.sh exec`).

  corpus.py sign KEYDIR OUTDIR   writes OUTDIR/NAME.eml for each case
  corpus.py verify CASES.json    prints JSON results on stdout
"""
import json
import os
import sys
import time

import dkim
import spf

BASE = (b"From: Alice <alice@sig.test>\r\nTo: bob@rcpt.test\r\n"
        b"Subject: a  folded\r\n  subject\r\nDate: Wed, 2 Dec 2026 12:00:00 +0000\r\n"
        b"Message-ID: <%s@sig.test>\r\n\r\nHello,  world  \r\n\r\nsecond line\r\n\r\n\r\n")
HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


def key(keydir, name):
    with open(os.path.join(keydir, name), "rb") as f:
        return f.read()


def sign(msg, sel, dom, pk, canon=(b"relaxed", b"relaxed"), length=False, expired=False,
         alg=b"rsa-sha256"):
    real = time.time
    orig = dkim.DKIM.gen_header
    if expired:
        # t= and x= three days back: past dkimpy's 10-hour slop and
        # mail-auth's check alike.
        past = int(real()) - 3 * 86400
        time.time = lambda: past

        def gen_header(self, fields, *a):
            i = [f[0] for f in fields].index(b"t")
            fields = fields[: i + 1] + [(b"x", str(past + 3600).encode())] + fields[i + 1:]
            return orig(self, fields, *a)

        dkim.DKIM.gen_header = gen_header
    try:
        sig = dkim.sign(msg, sel, dom, pk, canonicalize=canon, include_headers=HEADERS,
                        length=length, signature_algorithm=alg)
    finally:
        time.time = real
        dkim.DKIM.gen_header = orig
    return sig + msg


def do_sign(keydir, out):
    k1 = key(keydir, "k1.pem")
    k2 = key(keydir, "k2.pem")
    # Ed25519 (RFC 8463): dkimpy takes the base64 seed; the public key for
    # the zone goes to KEYDIR/ed.pub.
    import base64
    import nacl.signing
    sk = nacl.signing.SigningKey.generate()
    ed = base64.b64encode(bytes(sk))
    with open(os.path.join(keydir, "ed.pub"), "wb") as f:
        f.write(base64.b64encode(bytes(sk.verify_key)))
    cases = {}
    cases["ed25519"] = sign(BASE % b"ed", b"ed", b"sig.test", ed, alg=b"ed25519-sha256")
    # RFC 8463 section 4's dual signing: RSA and Ed25519 by the same domain.
    m = sign(BASE % b"dual", b"s1", b"sig.test", k1)
    cases["rsa-and-ed25519"] = sign(m, b"ed", b"sig.test", ed, alg=b"ed25519-sha256")
    m = sign(BASE % b"edbad", b"ed", b"sig.test", ed, alg=b"ed25519-sha256")
    cases["ed25519-broken"] = m.replace(b"second line", b"2nd line")
    for c in [(b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple"),
              (b"simple", b"relaxed")]:
        name = "canon-%s-%s" % (c[0].decode(), c[1].decode())
        cases[name] = sign(BASE % name.encode(), b"s1", b"sig.test", k1, canon=c)
    m = sign(BASE % b"len", b"s1", b"sig.test", k1, length=True)
    cases["l-appended"] = m + b"appended after signing\r\n"
    cases["l-intact"] = sign(BASE % b"len2", b"s1", b"sig.test", k1, length=True,
                             canon=(b"simple", b"simple"))
    m = sign(BASE % b"body", b"s1", b"sig.test", k1)
    cases["broken-body"] = m.replace(b"second line", b"2nd line")
    m = sign(BASE % b"hdr", b"s1", b"sig.test", k1)
    cases["broken-header"] = m.replace(b"Subject: a  folded", b"Subject: b  folded")
    cases["expired"] = sign(BASE % b"exp", b"s1", b"sig.test", k1, expired=True)
    cases["no-key"] = sign(BASE % b"nokey", b"absent", b"sig.test", k1)
    cases["revoked"] = sign(BASE % b"rev", b"revoked", b"sig.test", k1)
    cases["wrong-key"] = sign(BASE % b"wrong", b"s2", b"sig.test", k1)
    cases["big-key"] = sign(BASE % b"big", b"big", b"sig.test", k1)
    # Two signatures: a third party (other.test) over the author's.
    m = sign(BASE % b"two", b"s1", b"sig.test", k1)
    cases["two-signatures"] = sign(m, b"s2", b"other.test", k2)
    m = sign(BASE % b"twobad", b"s1", b"sig.test", k1)
    m = sign(m, b"absent", b"other.test", k2)
    cases["two-one-broken"] = m
    m = sign(BASE % b"three", b"s1", b"sig.test", k1, canon=(b"simple", b"simple"))
    m = sign(m, b"s2", b"other.test", k2, canon=(b"relaxed", b"simple"))
    cases["three-one-tampered"] = sign(m, b"s1", b"sig.test", k1).replace(b"Hello", b"Jello")
    for name, m in cases.items():
        with open(os.path.join(out, name + ".eml"), "wb") as f:
            f.write(m)


def do_verify(path):
    with open(path) as f:
        cases = json.load(f)
    out = {"spf": [], "dkim": {}}
    for c in cases["spf"]:
        # check2(i, s, h): s empty checks the HELO identity (RFC 7208 2.3).
        r, _ = spf.check2(i=c["ip"], s=c["sender"], h=c["helo"], querytime=20)
        out["spf"].append(r)
    for f in cases["dkim"]:
        with open(f, "rb") as fh:
            m = fh.read()
        d = dkim.DKIM(m, minkey=1024)
        n = len([1 for x, _ in d.headers if x.lower() == b"dkim-signature"])
        res = []
        for i in range(n):
            try:
                ok = d.verify(idx=i)
            except Exception:
                ok = False
            res.append("pass" if ok else "fail")
        out["dkim"][f] = res
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        do_sign(sys.argv[2], sys.argv[3])
    else:
        do_verify(sys.argv[2])
