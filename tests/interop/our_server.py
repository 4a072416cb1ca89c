#!/usr/bin/env python3
"""Interop test of OUR example server (examples/server.rs) with slixmpp.

Logs in as alice and bob over STARTTLS (plaintext and direct TLS disabled),
alice sends bob COUNT chat messages to his bare JID, which must arrive
complete and in order; then disco#info on the domain (identity server/im,
features disco#info and ping), XEP-0199 ping, an empty roster get, a
roster set (adding bob: it must succeed, and a roster get then lists bob
with subscription none); then XEP-0198 resumption both ways: alice's TCP
connection is cut mid-conversation and she resumes, bob's is cut while
alice sends to him and he resumes and gets what was queued, every message
exactly once and in order; finally a third login (alice, PLAIN over TLS).
Exits 0 on success, 1 with a "FAIL: ..." line,
bounded by --timeout.

    our_server.py --host 127.0.0.1 --port 35222 --domain localhost --cafile CRT \
        [--alice alice:wonderland] [--bob bob:builder] [--count 100]
"""

import argparse
import asyncio
import logging
import sys

from smoke import Failure, make_client, run_bounded

NS_ROSTER = "jabber:iq:roster"


async def wait_for(fut, seconds, what):
    try:
        return await asyncio.wait_for(fut, seconds)
    except asyncio.TimeoutError:
        raise Failure(f"timed out after {seconds}s waiting for {what}") from None


async def run(args):
    from slixmpp.exceptions import IqError

    a_user, a_pass = args.alice.split(":", 1)
    b_user, b_pass = args.bob.split(":", 1)
    alice = make_client(f"{a_user}@{args.domain}/interop", a_pass,
                        args.host, args.port, args.cafile, None)
    bob = make_client(f"{b_user}@{args.domain}/interop", b_pass,
                      args.host, args.port, args.cafile, None)
    clients = (alice, bob)
    for c in clients:
        c.register_plugin("xep_0198")  # stream management, resumable
    loop = asyncio.get_event_loop()

    # bob's own available presence comes back to him (RFC 6121 §4.2.2):
    # once it has, the server routes messages for his bare JID to him.
    bob_available = loop.create_future()

    def on_bob_presence(pres):
        if pres["from"] == bob.boundjid and pres["type"] in ("available", "") \
                and not bob_available.done():
            bob_available.set_result(True)

    bob.add_event_handler("presence_available", on_bob_presence)

    expected = [f"interop message {i}" for i in range(1, args.count + 1)]
    received = []
    all_received = loop.create_future()

    def on_message(msg):
        if msg["type"] not in ("chat", "normal"):
            return
        received.append((str(msg["from"]), msg["body"]))
        if len(received) >= args.count and not all_received.done():
            all_received.set_result(True)

    bob.add_event_handler("message", on_message)
    try:
        for c in clients:
            c.connect(host=args.host, port=args.port)
        for c in clients:
            await wait_for(c.state["session"], 20, f"{c.boundjid.bare} to log in")
        print(f"ok: alice and bob logged in over STARTTLS "
              f"(bound {alice.boundjid.full}, {bob.boundjid.full})")
        await wait_for(bob_available, 10, "bob's own presence to come back")
        print("ok: bob's available presence was reflected to him")

        for body in expected:
            alice.send_message(mto=f"{b_user}@{args.domain}", mbody=body, mtype="chat")
        await wait_for(all_received, 30, f"{args.count} messages on bob")
        bodies = [b for _, b in received]
        if bodies != expected:
            first_bad = next(i for i, (g, e) in enumerate(zip(bodies, expected)) if g != e) \
                if len(bodies) == len(expected) else min(len(bodies), len(expected))
            raise Failure(f"messages out of order or wrong: first difference at index "
                          f"{first_bad}: got {bodies[first_bad:first_bad + 3]!r}")
        senders = {f for f, _ in received}
        if senders != {alice.boundjid.full}:
            raise Failure(f"messages came from {senders}, expected {alice.boundjid.full}")
        print(f"ok: bob received all {args.count} messages, complete and in order")

        info = await alice.plugin["xep_0030"].get_info(jid=args.domain, timeout=10)
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        features = set(info["disco_info"]["features"])
        if ("server", "im") not in identities:
            raise Failure(f"disco#info identities {identities} lack server/im")
        for needed in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping"):
            if needed not in features:
                raise Failure(f"disco#info features {sorted(features)} lack {needed}")
        print(f"ok: disco#info {args.domain}: identities={sorted(identities)} "
              f"features={sorted(features)}")

        rtt = await alice.plugin["xep_0199"].ping(jid=args.domain, timeout=10)
        print(f"ok: ping {args.domain} rtt={rtt * 1000:.1f} ms")

        iq = alice.make_iq_get(queryxmlns=NS_ROSTER)
        result = await iq.send(timeout=10)
        query = result.xml.find("{%s}query" % NS_ROSTER)
        if result["type"] != "result" or query is None:
            raise Failure(f"roster get: unexpected reply {result}")
        if len(list(query)) != 0:
            raise Failure(f"roster get: expected an empty roster, got {result}")
        print("ok: roster get returned an empty roster")

        iq = alice.make_iq_set()
        q = iq.xml.makeelement("{%s}query" % NS_ROSTER, {})
        q.append(q.makeelement("{%s}item" % NS_ROSTER,
                               {"jid": f"{b_user}@{args.domain}", "name": "Bob"}))
        iq.xml.append(q)
        try:
            result = await iq.send(timeout=10)
        except IqError as e:
            raise Failure(f"roster set refused: {e.iq['error']['condition']}") from None
        if result["type"] != "result":
            raise Failure(f"roster set: unexpected reply {result}")
        iq = alice.make_iq_get(queryxmlns=NS_ROSTER)
        result = await iq.send(timeout=10)
        items = [(i.get("jid"), i.get("name"), i.get("subscription"))
                 for i in result.xml.find("{%s}query" % NS_ROSTER)]
        if items != [(f"{b_user}@{args.domain}", "Bob", "none")]:
            raise Failure(f"roster get after the set: expected bob (none), got {items}")
        print("ok: roster set stored bob; roster get lists him (subscription none)")

        await resume_scenario(args, alice, bob, received)

        # PLAIN (over TLS) verifies against the stored SCRAM-SHA-256 form.
        plain = make_client(f"{a_user}@{args.domain}/plain", a_pass,
                            args.host, args.port, args.cafile, None)
        plain.plugin["feature_mechanisms"].use_mech = "PLAIN"
        clients = (alice, bob, plain)
        plain.connect(host=args.host, port=args.port)
        await wait_for(plain.state["session"], 20, "a PLAIN login")
        rtt = await plain.plugin["xep_0199"].ping(jid=args.domain, timeout=10)
        print(f"ok: PLAIN login as {plain.boundjid.full}, ping rtt={rtt * 1000:.1f} ms")
    finally:
        for c in clients:
            fut = c.state["session"]
            if fut.done() and not fut.cancelled():
                fut.exception()
        waits = []
        for c in clients:
            c.del_event_handler("disconnected", c.state["on_disconnected"])
            try:
                waits.append(c.disconnect(wait=1))
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=2)


async def cut_and_resume(client, args, what):
    """Cuts the client's TCP connection (no closing tag) and waits until it
    has resumed its XEP-0198 session on a new one."""
    loop = asyncio.get_event_loop()
    resumed = loop.create_future()
    disconnected = loop.create_future()

    def on_resumed(_):
        if not resumed.done():
            resumed.set_result(True)

    def on_disconnected(_):
        if not disconnected.done():
            disconnected.set_result(True)

    client.add_event_handler("session_resumed", on_resumed)
    client.add_event_handler("disconnected", on_disconnected)
    sm = client.plugin["xep_0198"]
    if not sm.sm_id:
        raise Failure(f"{what}: the server did not enable resumable stream management")
    client.abort()
    await wait_for(disconnected, 10, f"{what} to notice the cut")
    client.connect(host=args.host, port=args.port)
    await wait_for(resumed, 20, f"{what} to resume")
    client.del_event_handler("session_resumed", on_resumed)
    client.del_event_handler("disconnected", on_disconnected)


async def resume_scenario(args, alice, bob, received):
    b_user = args.bob.split(":", 1)[0]
    loop = asyncio.get_event_loop()

    async def expect(bodies, what, start):
        done = loop.create_future()

        def check(_=None):
            if len(received) - start >= len(bodies) and not done.done():
                done.set_result(True)

        bob.add_event_handler("message", check)
        check()
        try:
            await wait_for(done, 20, what)
        finally:
            bob.del_event_handler("message", check)
        await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
        got = [b for _, b in received[start:]]
        if got != bodies:
            raise Failure(f"{what}: expected {bodies}, got {got}")

    # alice is cut off right after sending: what the server had not
    # acknowledged is resent on resumption, never twice.
    start = len(received)
    first = [f"sm alice {i}" for i in range(1, 6)]
    for body in first:
        alice.send_message(mto=f"{b_user}@{args.domain}", mbody=body, mtype="chat")
    await cut_and_resume(alice, args, "alice")
    second = [f"sm alice {i}" for i in range(6, 11)]
    for body in second:
        alice.send_message(mto=f"{b_user}@{args.domain}", mbody=body, mtype="chat")
    await expect(first + second, "10 messages around alice's resumption", start)
    print("ok: alice resumed her session after a cut; bob got 10 messages exactly once, in order")

    # bob is cut off; messages for him wait in his detached session.
    sm = bob.plugin["xep_0198"]
    if not sm.sm_id:
        raise Failure("bob: the server did not enable resumable stream management")
    bob_lost = loop.create_future()
    bob.add_event_handler("disconnected",
                          lambda _: bob_lost.done() or bob_lost.set_result(True))
    bob.abort()
    await wait_for(bob_lost, 10, "bob to notice the cut")
    await asyncio.sleep(1)  # the server notices the cut too
    start = len(received)
    queued = [f"sm queued {i}" for i in range(1, 4)]
    for body in queued:
        alice.send_message(mto=bob.boundjid.full, mbody=body, mtype="chat")
    await asyncio.sleep(0.5)
    resumed = loop.create_future()
    bob.add_event_handler("session_resumed",
                          lambda _: resumed.done() or resumed.set_result(True))
    bob.connect(host=args.host, port=args.port)
    await wait_for(resumed, 20, "bob to resume")
    await expect(queued, "3 messages queued while bob was away", start)
    print("ok: bob resumed and received the 3 messages sent while he was cut off")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--cafile", help="trust this certificate (else no verification)")
    p.add_argument("--alice", default="alice:wonderland", help="USER:PASSWORD")
    p.add_argument("--bob", default="bob:builder", help="USER:PASSWORD")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not run_bounded(run(args), args.timeout):
        return 1
    print("PASS: slixmpp against our server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
