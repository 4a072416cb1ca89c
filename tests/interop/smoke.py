#!/usr/bin/env python3
"""Interop smoke test against a real XMPP server, using slixmpp.

Logs in as alice and bob (STARTTLS required), sends alice -> bob a message and
waits for it on bob, queries disco#info on the server and pings it (XEP-0199).
Exits 0 on success, 1 with a "FAIL: ..." line on failure, bounded by --timeout.

    smoke.py --jid-domain localhost --host 127.0.0.1 --port 15222 [--cafile CRT]

--show-features additionally prints, without slixmpp, the raw <stream:features>
the server sends before TLS and after STARTTLS (SASL mechanisms, channel
binding types), and the post-auth features seen by slixmpp (bind, session, sm).
"""

import argparse
import asyncio
import logging
import re
import socket
import ssl
import sys
import time
import uuid

NS_STREAMS = "http://etherx.jabber.org/streams"


def tls_context(cafile, tls_max=None):
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ----------------------------------------------------------------- probe ---

def _read_until(sock, pattern, timeout):
    """Read from sock until the regex `pattern` matches the accumulated text."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        m = re.search(pattern, buf, re.S)
        if m:
            return buf.decode("utf-8", "replace"), m
    raise RuntimeError(f"did not see {pattern!r} from server; got: {buf[:500]!r}")


def _header(domain):
    return (
        f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' "
        f"xmlns='jabber:client' xmlns:stream='{NS_STREAMS}'>"
    ).encode()


def probe_features(host, port, domain, cafile, timeout, tls_max=None):
    """Return (features_before_tls, features_after_tls, tls_version, cipher)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.sendall(_header(domain))
        text, m = _read_until(raw, rb"<stream:features.*?</stream:features>", timeout)
        before = m.group(0).decode()
        raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        _read_until(raw, rb"<proceed[^>]*/>", timeout)
        tls = tls_context(cafile, tls_max).wrap_socket(raw, server_hostname=domain)
        tls.sendall(_header(domain))
        text, m = _read_until(tls, rb"<stream:features.*?</stream:features>", timeout)
        after = m.group(0).decode()
        info = (tls.version(), tls.cipher()[0])
        try:
            tls.sendall(b"</stream:stream>")
        except OSError:
            pass
        tls.close()
        return before, after, info
    finally:
        raw.close()


# ----------------------------------------------------------------- smoke ---

class Failure(Exception):
    pass


def run_bounded(coro, timeout, fail_prefix=""):
    """Runs `coro` on a fresh event loop, bounded by `timeout` seconds.
    Prints a "FAIL: ..." line and returns False on a timeout, a Failure or
    any other exception; True on success. slixmpp's background tasks are
    cancelled and awaited before the loop goes away."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(coro, timeout))
        return True
    except asyncio.TimeoutError:
        print(f"FAIL: {fail_prefix}timed out after {timeout:.0f}s")
    except Failure as e:
        print(f"FAIL: {fail_prefix}{e}")
    except Exception as e:  # noqa: BLE001 - report anything as a failure
        print(f"FAIL: {fail_prefix}{type(e).__name__}: {e}")
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
    return False


def make_client(jid, password, host, port, cafile, post_auth_features, tls_max=None):
    import slixmpp  # imported late so --help works without the venv

    c = slixmpp.ClientXMPP(jid, password)
    c.register_plugin("xep_0030")  # disco
    c.register_plugin("xep_0199")  # ping
    c.ssl_context = tls_context(cafile, tls_max)
    c.enable_starttls = True
    c.enable_direct_tls = False
    c.enable_plaintext = False
    c.force_starttls = True
    c.disable_starttls = False
    c.plugin["feature_mechanisms"].unencrypted_plain = False

    if post_auth_features is not None:
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        def on_features(stanza):
            post_auth_features.append((jid, str(stanza)))

        c.register_handler(Callback(
            "interop features dump",
            MatchXPath("{%s}features" % NS_STREAMS),
            on_features))

    state = {"failed": None, "session": asyncio.get_event_loop().create_future()}

    def session_start(_):
        c.send_presence()
        if not state["session"].done():
            state["session"].set_result(True)

    def fail(reason):
        def handler(event):
            if not state["session"].done():
                state["session"].set_exception(Failure(f"{jid}: {reason}: {event}"))
        return handler

    c.add_event_handler("session_start", session_start)
    c.add_event_handler("failed_auth", fail("authentication failed"))
    c.add_event_handler("connection_failed", fail("connection failed"))
    c.add_event_handler("stream_error", fail("stream error"))
    state["on_disconnected"] = fail("disconnected before session start")
    c.add_event_handler("disconnected", state["on_disconnected"])
    c.state = state
    c._interop_target = (host, port)
    return c


async def run_smoke(args, post_auth_features):
    alice = make_client(f"alice@{args.jid_domain}/smoke", args.alice_password,
                        args.host, args.port, args.cafile, post_auth_features,
                      args.tls_max)
    bob = make_client(f"bob@{args.jid_domain}/smoke", args.bob_password,
                      args.host, args.port, args.cafile, post_auth_features,
                      args.tls_max)
    clients = (alice, bob)
    try:
        for c in clients:
            c.connect(host=args.host, port=args.port)
        for c in clients:
            await c.state["session"]
        print(f"ok: alice and bob logged in (bound {alice.boundjid.full}, {bob.boundjid.full})")

        # alice -> bob message, received on bob.
        body = f"interop smoke {uuid.uuid4()}"
        got = asyncio.get_event_loop().create_future()

        def on_message(msg):
            if msg["body"] == body and not got.done():
                got.set_result(msg)

        bob.add_event_handler("message", on_message)
        alice.send_message(mto=bob.boundjid.full, mbody=body, mtype="chat")
        msg = await asyncio.wait_for(got, 10)
        if msg["from"].bare != alice.boundjid.bare:
            raise Failure(f"message came from {msg['from']}, expected {alice.boundjid.bare}")
        print(f"ok: bob received alice's message from {msg['from']}")

        # disco#info on the server domain.
        info = await alice.plugin["xep_0030"].get_info(jid=args.jid_domain, timeout=10)
        features = sorted(info["disco_info"]["features"])
        identities = sorted(f"{i[0]}/{i[1]}" for i in info["disco_info"]["identities"])
        if not identities and not features:
            raise Failure("disco#info on the server returned nothing")
        print(f"ok: disco#info {args.jid_domain}: identities={identities}")
        print(f"    features={features}")

        # XEP-0199 ping of the server.
        rtt = await alice.plugin["xep_0199"].ping(jid=args.jid_domain, timeout=10)
        print(f"ok: ping {args.jid_domain} rtt={rtt * 1000:.1f} ms")
    finally:
        for c in clients:
            fut = c.state["session"]
            if fut.done() and not fut.cancelled():
                fut.exception()  # mark as retrieved; the first failure is reported
        waits = []
        for c in clients:
            c.del_event_handler("disconnected", c.state["on_disconnected"])
            try:
                waits.append(c.disconnect(wait=1))
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jid-domain", default="localhost")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=15222)
    p.add_argument("--cafile", help="trust this CA/self-signed cert; default: no verification")
    p.add_argument("--alice-password", default="alice-pass")
    p.add_argument("--bob-password", default="bob-pass")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--show-features", action="store_true")
    p.add_argument("--tls-max", choices=["1.2", "1.3"], default=None,
                   help="cap the TLS version (probe and slixmpp clients)")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log (XML) on stderr")
    args = p.parse_args()

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="%(levelname)-8s %(name)s %(message)s")
    label = f"{args.host}:{args.port} ({args.jid_domain})"
    started = time.monotonic()

    if args.show_features:
        try:
            before, after, (ver, cipher) = probe_features(
                args.host, args.port, args.jid_domain, args.cafile,
                min(args.timeout, 10), tls_max=args.tls_max)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL: {label}: feature probe: {e}")
            return 1
        if args.tls_max != "1.2":
            try:
                _, after12, (ver12, cipher12) = probe_features(
                    args.host, args.port, args.jid_domain, args.cafile,
                    min(args.timeout, 10), tls_max="1.2")
                mechs12 = re.findall(r"<mechanism>([^<]+)</mechanism>", after12)
                print(f"SASL mechanisms over {ver12} (TLS capped at 1.2): {mechs12}")
            except Exception as e:  # noqa: BLE001
                print(f"TLS 1.2 probe failed: {e}")
        print(f"features before TLS:\n  {before}")
        print(f"TLS: {ver} {cipher}")
        print(f"features after STARTTLS:\n  {after}")
        mechs = re.findall(r"<mechanism>([^<]+)</mechanism>", after)
        cbs = re.findall(r"<channel-binding[^>]*type=['\"]([^'\"]+)", after)
        print(f"SASL mechanisms over TLS: {mechs}")
        print(f"channel-binding types (XEP-0440): {cbs or 'not advertised'}")

    post_auth = [] if args.show_features else None
    ok = run_bounded(run_smoke(args, post_auth), args.timeout, f"{label}: ")
    if post_auth:
        # The last features a client saw are the post-SASL ones.
        seen = {}
        for jid, xml in post_auth:
            seen[jid] = xml
        for jid, xml in seen.items():
            print(f"post-auth features seen by {jid}:\n  {xml}")
    if not ok:
        return 1
    print(f"PASS: {label} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
