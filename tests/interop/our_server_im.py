#!/usr/bin/env python3
"""Interop test of OUR example server's IM features with slixmpp, across a
server restart. The shell script our-server-im runs it twice against the
same data directory, killing and restarting the server in between:

--phase before (fresh data directory):
  1. alice, bob and carol log in over STARTTLS (roster versioning is offered
     as a stream feature); their rosters are empty.
  2. alice and bob subscribe to each other (explicit subscribe/subscribed,
     no client automation): both rosters show subscription "both", each
     sees the other's available presence.
  3. alice blocks carol (XEP-0191): carol's message to alice bounces with
     service-unavailable and does not arrive; alice's message to carol
     bounces with not-acceptable + <blocked xmlns='urn:xmpp:blocking:errors'/>.
  4. bob logs out (alice sees him go unavailable); alice sends him
     --count messages (stored offline, no error); carol asks bob for a
     subscription while he is away.
--phase after (the same data directory, after the server was killed):
  5. alice and bob log in again; bob receives the --count messages, in
     order, each with a XEP-0203 <delay/> from the domain ("Offline
     Storage"), and carol's pending subscription request.
  6. the rosters survived (alice <-> bob "both", versioned), and each sees
     the other's presence again.
  7. alice's blocklist survived: it lists carol, carol's message still
     bounces; after an unblock it arrives.

Each step prints "ok: ..."; exits 0 on success, 1 with a "FAIL: ..." line,
bounded by --timeout.

    our_server_im.py --phase before|after --host 127.0.0.1 --port 36222 \
        --domain localhost --cafile CRT [--count 3]
"""

import argparse
import asyncio
import datetime
import logging
import sys

from smoke import Failure, make_client, run_bounded

NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


async def wait_for(fut, seconds, what):
    try:
        return await asyncio.wait_for(fut, seconds)
    except asyncio.TimeoutError:
        raise Failure(f"timed out after {seconds}s waiting for {what}") from None


class Client:
    """A slixmpp client that records what it receives, with futures to
    wait for what a step expects."""

    def __init__(self, user, password, args):
        self.user = user
        self.bare = f"{user}@{args.domain}"
        self.args = args
        self.xmpp = make_client(f"{self.bare}/im", password, args.host, args.port,
                                args.cafile, None)
        for plugin in ("xep_0191", "xep_0203"):
            self.xmpp.register_plugin(plugin)
        # No automatic answers to subscription requests: the test sends them.
        self.xmpp.roster.auto_authorize = None
        self.xmpp.roster.auto_subscribe = False
        self.messages = []  # (from, body, stanza)
        self.errors = []  # message errors
        self.presences = []  # (from, type)
        self.subscription = []  # (from, type) for subscribe/subscribed/...
        self.waiters = []
        x = self.xmpp
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("message_error", self._on_error)
        for ptype in ("available", "unavailable"):
            x.add_event_handler(f"presence_{ptype}", self._on_presence)
        for ptype in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            x.add_event_handler(f"presence_{ptype}", self._on_subscription)

    def _notify(self):
        for pred, fut in list(self.waiters):
            if not fut.done() and pred():
                fut.set_result(True)
                self.waiters.remove((pred, fut))

    def _on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.messages.append((str(msg["from"]), msg["body"], msg))
            self._notify()

    def _on_error(self, msg):
        self.errors.append(msg)
        self._notify()

    def _on_presence(self, pres):
        ptype = pres["type"] if pres["type"] in ("unavailable",) else "available"
        self.presences.append((str(pres["from"]), ptype))
        self._notify()

    def _on_subscription(self, pres):
        self.subscription.append((str(pres["from"]), pres["type"]))
        self._notify()

    async def until(self, pred, seconds, what):
        if pred():
            return
        fut = asyncio.get_event_loop().create_future()
        self.waiters.append((pred, fut))
        await wait_for(fut, seconds, f"{self.user}: {what}")

    def sees_available(self, other):
        """`other` (a Client) is available as far as this client knows:
        the last presence from one of its resources is available."""
        last = [t for f, t in self.presences if f.split("/")[0] == other.bare]
        return bool(last) and last[-1] == "available"

    def sees_unavailable(self, other):
        last = [t for f, t in self.presences if f.split("/")[0] == other.bare]
        return bool(last) and last[-1] == "unavailable"

    async def login(self):
        self.xmpp.connect(host=self.args.host, port=self.args.port)
        await wait_for(self.xmpp.state["session"], 20, f"{self.bare} to log in")

    async def logout(self):
        x = self.xmpp
        fut = x.state["session"]
        if fut.done() and not fut.cancelled():
            fut.exception()
        x.del_event_handler("disconnected", x.state["on_disconnected"])
        try:
            await asyncio.wait_for(x.disconnect(wait=2), 5)
        except Exception:  # noqa: BLE001 - best effort
            pass

    async def roster(self):
        """The roster as {jid: (subscription, ask)} and its version."""
        iq = self.xmpp.make_iq_get(queryxmlns=NS_ROSTER)
        iq.xml.find("{%s}query" % NS_ROSTER).set("ver", "")
        result = await iq.send(timeout=10)
        query = result.xml.find("{%s}query" % NS_ROSTER)
        if result["type"] != "result" or query is None:
            raise Failure(f"{self.user}: roster get: unexpected reply {result}")
        items = {i.get("jid"): (i.get("subscription"), i.get("ask"))
                 for i in query.findall("{%s}item" % NS_ROSTER)}
        return items, query.get("ver")

    async def ping(self):
        """A round trip: the server has handled everything sent before."""
        await self.xmpp.plugin["xep_0199"].ping(jid=self.args.domain, timeout=10)

    def send(self, to, body):
        self.xmpp.send_message(mto=to, mbody=body, mtype="chat")


def error_of(msg):
    """(condition, has <blocked/>) of an error stanza."""
    err = msg.xml.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None, False
    condition = next((c.tag.split("}")[1] for c in err
                      if c.tag.startswith("{%s}" % NS_STANZAS) and not c.tag.endswith("}text")),
                     None)
    return condition, err.find("{%s}blocked" % NS_BLOCKING_ERRORS) is not None


async def expect_bounce(sender, to, body, condition, blocked, receiver):
    """sender's message to `to` comes back as an error with `condition`
    (and <blocked/> when `blocked`); receiver gets nothing."""
    before = len(sender.errors)
    got_before = len(receiver.messages)
    sender.send(to, body)
    await sender.until(lambda: len(sender.errors) > before, 10, f"the bounce of {body!r}")
    got, has_blocked = error_of(sender.errors[before])
    if got != condition or has_blocked != blocked:
        raise Failure(f"{sender.user} -> {to}: expected {condition}"
                      f"{' with <blocked/>' if blocked else ''}, got {got} "
                      f"(blocked element: {has_blocked}): {sender.errors[before]}")
    await receiver.ping()
    if len(receiver.messages) != got_before:
        raise Failure(f"{receiver.user} received a blocked message: {receiver.messages[-1][:2]}")


async def subscribe_mutually(a, b):
    a.xmpp.send_presence(pto=b.bare, ptype="subscribe")
    await b.until(lambda: (a.bare, "subscribe") in b.subscription, 10,
                  f"the subscription request from {a.bare}")
    b.xmpp.send_presence(pto=a.bare, ptype="subscribed")
    b.xmpp.send_presence(pto=a.bare, ptype="subscribe")
    await a.until(lambda: (b.bare, "subscribed") in a.subscription, 10,
                  f"{b.bare}'s approval")
    await a.until(lambda: (b.bare, "subscribe") in a.subscription, 10,
                  f"the subscription request from {b.bare}")
    a.xmpp.send_presence(pto=b.bare, ptype="subscribed")
    await b.until(lambda: (a.bare, "subscribed") in b.subscription, 10,
                  f"{a.bare}'s approval")


async def check_mutual_roster(a, b):
    for me, other in ((a, b), (b, a)):
        items, ver = await me.roster()
        if items.get(other.bare) != ("both", None):
            raise Failure(f"{me.user}'s roster: expected {other.bare} with subscription "
                          f"both, got {items}")
        if not ver:
            raise Failure(f"{me.user}'s roster result has no version")
    print(f"ok: rosters: {a.user} <-> {b.user} subscription both (versioned)")


async def phase_before(args, alice, bob, carol):
    for c in (alice, bob, carol):
        await c.login()
    print("ok: alice, bob and carol logged in over STARTTLS")
    if "rosterver" not in alice.xmpp.features:
        raise Failure(f"no roster versioning stream feature (saw {sorted(alice.xmpp.features)})")
    print("ok: roster versioning offered in the stream features")
    for c in (alice, bob):
        items, _ = await c.roster()
        if items:
            raise Failure(f"{c.user}: a fresh server should have an empty roster, got {items}")
    print("ok: empty rosters on a fresh data directory")

    await subscribe_mutually(alice, bob)
    print("ok: alice and bob subscribed to each other (subscribe/subscribed both ways)")
    await alice.until(lambda: alice.sees_available(bob), 10, "bob's presence")
    await bob.until(lambda: bob.sees_available(alice), 10, "alice's presence")
    print("ok: alice and bob see each other's available presence")
    await check_mutual_roster(alice, bob)

    await alice.xmpp.plugin["xep_0191"].block([carol.bare], timeout=10)
    blocked = await alice.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=10)
    if {str(j) for j in blocked} != {carol.bare}:
        raise Failure(f"alice's blocklist: expected {carol.bare}, got {blocked}")
    await expect_bounce(carol, alice.bare, "carol to alice, blocked", "service-unavailable",
                        False, alice)
    print("ok: alice blocked carol: carol's message bounced with service-unavailable, "
          "not delivered")
    await expect_bounce(alice, carol.bare, "alice to carol, blocked", "not-acceptable",
                        True, carol)
    print("ok: alice's message to carol bounced with not-acceptable + <blocked/>")

    await bob.logout()
    await alice.until(lambda: alice.sees_unavailable(bob), 10, "bob's unavailable presence")
    print("ok: bob logged out; alice saw him go unavailable")
    errors = len(alice.errors)
    for i in range(1, args.count + 1):
        alice.send(bob.bare, f"offline message {i}")
    carol.xmpp.send_presence(pto=bob.bare, ptype="subscribe")
    await alice.ping()
    await carol.ping()
    if len(alice.errors) != errors:
        raise Failure(f"messages to offline bob bounced: {alice.errors[errors]}")
    print(f"ok: alice sent {args.count} messages to offline bob (stored, no error); "
          "carol asked bob for a subscription")


async def phase_after(args, alice, bob, carol):
    started = datetime.datetime.now(datetime.timezone.utc)
    await alice.login()
    await bob.login()
    print("ok: alice and bob logged in again after the restart")
    want = [f"offline message {i}" for i in range(1, args.count + 1)]
    await bob.until(lambda: len(bob.messages) >= args.count, 10,
                    f"{args.count} offline messages")
    bodies = [b for _, b, _ in bob.messages[:args.count]]
    if bodies != want:
        raise Failure(f"offline messages: expected {want}, got {bodies}")
    for frm, body, msg in bob.messages[:args.count]:
        if frm.split("/")[0] != alice.bare:
            raise Failure(f"offline message {body!r} from {frm}, expected {alice.bare}")
        delay = msg["delay"]
        stamp = delay["stamp"]
        if str(delay["from"]) != args.domain or not stamp:
            raise Failure(f"offline message {body!r}: no <delay/> from {args.domain}: {msg}")
        age = started - stamp
        if not datetime.timedelta(0) <= age <= datetime.timedelta(minutes=10):
            raise Failure(f"offline message {body!r}: delay stamp {stamp} is not from before "
                          f"the restart ({started})")
        if delay["text"] != "Offline Storage":
            raise Failure(f"offline message {body!r}: delay text {delay['text']!r}")
    print(f"ok: bob received the {args.count} offline messages in order, each with "
          f"<delay from='{args.domain}'>Offline Storage</delay> stamped before the restart")
    await bob.until(lambda: (carol.bare, "subscribe") in bob.subscription, 10,
                    "carol's pending subscription request")
    print("ok: carol's subscription request, made while bob was away, was delivered to him")

    await alice.until(lambda: alice.sees_available(bob), 10, "bob's presence after the restart")
    await bob.until(lambda: bob.sees_available(alice), 10, "alice's presence after the restart")
    print("ok: alice and bob see each other's presence after the restart")
    await check_mutual_roster(alice, bob)
    items, _ = await bob.roster()
    if carol.bare in items:
        raise Failure(f"bob's roster lists carol before he answered her request: {items}")

    blocked = await alice.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=10)
    if {str(j) for j in blocked} != {carol.bare}:
        raise Failure(f"alice's blocklist after the restart: expected {carol.bare}, got {blocked}")
    await carol.login()
    await expect_bounce(carol, alice.bare, "carol to alice, still blocked",
                        "service-unavailable", False, alice)
    print("ok: alice's blocklist survived the restart; carol is still blocked")
    await alice.xmpp.plugin["xep_0191"].unblock([carol.bare], timeout=10)
    carol.send(alice.bare, "carol to alice, unblocked")
    await alice.until(lambda: any(b == "carol to alice, unblocked" for _, b, _ in alice.messages),
                      10, "carol's message after the unblock")
    print("ok: after the unblock carol's message reached alice")


async def run(args):
    users = [a.split(":", 1) for a in (args.alice, args.bob, args.carol)]
    alice, bob, carol = (Client(u, p, args) for u, p in users)
    try:
        if args.phase == "before":
            await phase_before(args, alice, bob, carol)
        else:
            await phase_after(args, alice, bob, carol)
    finally:
        for c in (alice, bob, carol):
            await c.logout()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phase", choices=("before", "after"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--cafile", help="trust this certificate (else no verification)")
    p.add_argument("--alice", default="alice:wonderland", help="USER:PASSWORD")
    p.add_argument("--bob", default="bob:builder", help="USER:PASSWORD")
    p.add_argument("--carol", default="carol:c4rol-pass", help="USER:PASSWORD")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=90)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not run_bounded(run(args), args.timeout, f"{args.phase}: "):
        return 1
    print(f"PASS: slixmpp IM against our server ({args.phase} the restart)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
