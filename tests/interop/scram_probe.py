#!/usr/bin/env python3
"""Hand-rolled SCRAM login (stdlib only) to probe a server's SCRAM/channel
binding behaviour beyond what slixmpp will do: choose the mechanism, the gs2
flag (n, y, p=tls-unique) and the TLS version.

    scram_probe.py --port 25222 --mech SCRAM-SHA-1-PLUS --gs2 p=tls-unique [--tls-max 1.2]

Prints the TLS version, the tls-unique value Python sees, and the server's
<success/> or <failure/>. Exit 0 on <success/>, 1 otherwise. Loopback only.
"""

import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import sys

HDR = (b"<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
       b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def read_until(sock, pattern):
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"FAIL: connection closed; got {buf[:300]!r}")
        buf += chunk
        m = re.search(pattern, buf, re.S)
        if m:
            return m


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="alice-pass")
    p.add_argument("--mech", default="SCRAM-SHA-1",
                   help="SCRAM-SHA-1[-PLUS], SCRAM-SHA-256[-PLUS], SCRAM-SHA-512[-PLUS]")
    p.add_argument("--gs2", default="n", help="n | y | p=tls-unique")
    p.add_argument("--tls-max", choices=["1.2", "1.3"])
    a = p.parse_args()

    hname = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256",
             "SCRAM-SHA-512": "sha512"}[a.mech.removesuffix("-PLUS")]
    dom = a.domain.encode()

    s = socket.create_connection((a.host, a.port), timeout=10)
    s.sendall(HDR % dom)
    read_until(s, rb"</stream:features>")
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(s, rb"<proceed")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    t = ctx.wrap_socket(s, server_hostname=a.domain)
    t.sendall(HDR % dom)
    feats = read_until(t, rb"<stream:features.*?</stream:features>").group(0)
    offered = re.findall(rb"<mechanism>([^<]+)</mechanism>", feats)
    cb = t.get_channel_binding("tls-unique")
    print(f"{t.version()}; offered {[m.decode() for m in offered]}; "
          f"python tls-unique={cb.hex() if cb else None}")

    gs2 = a.gs2.encode() + b",,"
    bare = b"n=" + a.user.encode() + b",r=" + base64.b64encode(os.urandom(12))
    t.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>"
              % (a.mech.encode(), base64.b64encode(gs2 + bare)))
    m = read_until(t, rb"<(challenge|failure)[^>]*>(.*?)</(challenge|failure)>")
    if m.group(1) == b"failure":
        print(f"failure at client-first: {m.group(0).decode()}")
        return 1
    server_first = base64.b64decode(m.group(2))
    attrs = dict(x.split(b"=", 1) for x in server_first.split(b","))
    salted = hashlib.pbkdf2_hmac(hname, a.password.encode(),
                                 base64.b64decode(attrs[b"s"]), int(attrs[b"i"]))
    cbind = gs2 + (cb or b"" if a.gs2.startswith("p=") else b"")
    without_proof = b"c=" + base64.b64encode(cbind) + b",r=" + attrs[b"r"]
    auth_msg = bare + b"," + server_first + b"," + without_proof
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    sig = hmac.new(hashlib.new(hname, client_key).digest(), auth_msg, hname).digest()
    proof = bytes(x ^ y for x, y in zip(client_key, sig))
    t.sendall(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>"
              % base64.b64encode(without_proof + b",p=" + base64.b64encode(proof)))
    m = read_until(t, rb"<(success|failure)[^>]*?(/>|>.*?</(success|failure)>)")
    print(m.group(0).decode())
    return 0 if m.group(1) == b"success" else 1


if __name__ == "__main__":
    sys.exit(main())
