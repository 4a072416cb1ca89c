//! The example server's IM layer (`examples/server/im.rs`) and its storage
//! (`examples/server/im_store.rs`), driven here as the hub drives them: a
//! `Router`, bound sessions, stanzas in, deliveries out. The storage's own
//! unit tests are compiled here too, so `cargo test` runs them (tests inside
//! an example run only with `cargo test --example server`).

#[allow(dead_code)]
#[path = "../examples/server/im.rs"]
mod im;
#[allow(dead_code)]
#[path = "../examples/server/im_store.rs"]
mod im_store;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use im::Im;
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::im::delay::{Delay, NS_DELAY};
use xmpp_sansio::router::{BindOutcome, ConflictPolicy, Router, SessionId};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::{BareJid, FullJid, Jid};

const DOMAIN: &str = "localhost";

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xmpp-sansio-example-im-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(xml: &str) -> Stanza {
    Stanza::from_element(xml.parse().expect("XML"), "jabber:client").expect("a stanza")
}

/// The hub's part, in miniature: the router, the IM layer, accounts, and an
/// inbox per session for what the IM layer delivers.
struct Host {
    router: Router,
    im: Im,
    accounts: HashSet<BareJid>,
    next: SessionId,
    inbox: BTreeMap<SessionId, Vec<Stanza>>,
}

impl Host {
    fn open(dir: &TempDir) -> Host {
        Host {
            router: Im::router(DOMAIN),
            im: Im::open(DOMAIN, &dir.0).expect("open the IM store"),
            accounts: ["alice", "bob", "carol"]
                .into_iter()
                .map(|n| BareJid::new(Some(n), DOMAIN).unwrap())
                .collect(),
            next: 1,
            inbox: BTreeMap::new(),
        }
    }

    fn deliver(&mut self, out: im::Deliveries) {
        for (session, stanza) in out {
            assert!(
                self.router.session(session).is_some(),
                "delivery to unbound session {session}: {stanza:?}"
            );
            self.inbox.entry(session).or_default().push(stanza);
        }
    }

    fn bind(&mut self, jid: &str) -> SessionId {
        let id = self.next;
        self.next += 1;
        let jid: FullJid = jid.parse().unwrap();
        let (outcome, out) = self.im.bind(
            &mut self.router,
            &self.accounts,
            id,
            jid,
            ConflictPolicy::ReplaceOld,
        );
        assert!(matches!(
            outcome,
            BindOutcome::Bound | BindOutcome::Replaced { .. }
        ));
        self.deliver(out);
        id
    }

    /// What the ServerConnection does (stamp `from`), then the hub.
    fn send(&mut self, session: SessionId, mut stanza: Stanza) {
        let from = self.router.session_jid(session).unwrap().clone();
        stanza.set_from(Some(from.as_str()));
        let out = self
            .im
            .stanza(&mut self.router, &self.accounts, session, stanza);
        self.deliver(out);
    }

    fn send_xml(&mut self, session: SessionId, xml: &str) {
        self.send(session, parse(xml));
    }

    fn end(&mut self, session: SessionId) {
        let out = self
            .im
            .session_ended(&mut self.router, &self.accounts, session);
        self.router.unbind(session);
        self.deliver(out);
        self.inbox.remove(&session);
    }

    fn take(&mut self, session: SessionId) -> Vec<Stanza> {
        self.inbox.remove(&session).unwrap_or_default()
    }

    /// A logged-in client: bound, roster fetched, initial presence sent;
    /// its inbox emptied.
    fn online(&mut self, jid: &str) -> SessionId {
        let id = self.bind(jid);
        self.send_xml(
            id,
            "<iq xmlns='jabber:client' type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>",
        );
        self.send_xml(id, "<presence xmlns='jabber:client'/>");
        id
    }
}

fn of_type<'a>(stanzas: &'a [Stanza], name: &str, type_attr: Option<&str>) -> Vec<&'a Stanza> {
    stanzas
        .iter()
        .filter(|s| s.element().name() == name && s.type_attr() == type_attr)
        .collect()
}

fn roster_items(result: &Stanza) -> Vec<(String, String, Option<String>)> {
    result
        .element()
        .get_child("query", "jabber:iq:roster")
        .map(|q| {
            q.children()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or("").to_owned(),
                        i.attr("subscription").unwrap_or("").to_owned(),
                        i.attr("ask").map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn error_condition(stanza: &Stanza) -> Option<String> {
    stanza.error().map(|e| e.condition.name().to_owned())
}

fn body(stanza: &Stanza) -> Option<String> {
    stanza
        .element()
        .get_child("body", "jabber:client")
        .map(Element::text)
}

/// Alice and Bob subscribe to each other and see each other's presence;
/// after a restart (a new `Im` on the same directory) the rosters, their
/// versions and the subscriptions are still there and presence flows.
#[test]
fn mutual_subscription_presence_and_a_restart() {
    let dir = TempDir::new("subscription");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    let bob = host.online("bob@localhost/b");
    host.take(alice);
    host.take(bob);

    host.send_xml(
        alice,
        "<presence xmlns='jabber:client' to='bob@localhost' type='subscribe'/>",
    );
    let got = host.take(bob);
    let requests = of_type(&got, "presence", Some("subscribe"));
    assert_eq!(requests.len(), 1, "{got:?}");
    assert_eq!(requests[0].from(), Some("alice@localhost"));
    // Alice's roster push: bob, none, ask=subscribe.
    let pushes = host.take(alice);
    let push = pushes
        .iter()
        .find(|s| s.type_attr() == Some("set"))
        .expect("a push");
    assert_eq!(
        roster_items(push),
        vec![(
            "bob@localhost".into(),
            "none".into(),
            Some("subscribe".into())
        )]
    );

    host.send_xml(
        bob,
        "<presence xmlns='jabber:client' to='alice@localhost' type='subscribed'/>",
    );
    host.send_xml(
        bob,
        "<presence xmlns='jabber:client' to='alice@localhost' type='subscribe'/>",
    );
    let got = host.take(alice);
    assert_eq!(
        of_type(&got, "presence", Some("subscribed")).len(),
        1,
        "{got:?}"
    );
    // Bob's current presence follows the approval (RFC 6121 §3.1.5).
    assert!(
        got.iter().any(|s| s.element().name() == "presence"
            && s.type_attr().is_none()
            && s.from() == Some("bob@localhost/b")),
        "{got:?}"
    );
    assert_eq!(
        of_type(&got, "presence", Some("subscribe")).len(),
        1,
        "{got:?}"
    );
    host.send_xml(
        alice,
        "<presence xmlns='jabber:client' to='bob@localhost' type='subscribed'/>",
    );
    let got = host.take(bob);
    assert!(
        got.iter()
            .any(|s| s.type_attr().is_none() && s.from() == Some("alice@localhost/a")),
        "bob sees alice's presence: {got:?}"
    );

    // A presence update reaches the contact.
    host.send_xml(
        alice,
        "<presence xmlns='jabber:client'><show>away</show></presence>",
    );
    let got = host.take(bob);
    assert!(
        got.iter().any(|s| s
            .element()
            .get_child("show", "jabber:client")
            .map(Element::text)
            == Some("away".into())),
        "{got:?}"
    );
    host.send_xml(bob, "<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>");
    let got = host.take(bob);
    let result = got.iter().find(|s| s.id() == Some("r1")).unwrap();
    assert_eq!(
        roster_items(result),
        vec![("alice@localhost".into(), "both".into(), None)]
    );
    let version = result
        .element()
        .get_child("query", "jabber:iq:roster")
        .and_then(|q| q.attr("ver"))
        .unwrap()
        .to_owned();
    drop(host);

    // Restart.
    let mut host = Host::open(&dir);
    let bob = host.bind("bob@localhost/b2");
    host.send_xml(bob, &format!("<iq xmlns='jabber:client' type='get' id='r2'><query xmlns='jabber:iq:roster' ver='{version}'/></iq>"));
    let got = host.take(bob);
    let result = got.iter().find(|s| s.id() == Some("r2")).unwrap();
    assert_eq!(result.type_attr(), Some("result"));
    assert!(
        result.iq_payload().is_none(),
        "same version: empty result, got {result:?}"
    );
    host.send_xml(
        bob,
        "<iq xmlns='jabber:client' type='get' id='r3'><query xmlns='jabber:iq:roster'/></iq>",
    );
    let got = host.take(bob);
    let result = got.iter().find(|s| s.id() == Some("r3")).unwrap();
    assert_eq!(
        roster_items(result),
        vec![("alice@localhost".into(), "both".into(), None)]
    );
    host.send_xml(bob, "<presence xmlns='jabber:client'/>");
    host.take(bob);
    let alice = host.online("alice@localhost/a2");
    let got = host.take(alice);
    assert!(
        got.iter()
            .any(|s| s.type_attr().is_none() && s.from() == Some("bob@localhost/b2")),
        "alice's probe is answered with bob's presence: {got:?}"
    );
    assert!(
        host.take(bob)
            .iter()
            .any(|s| s.type_attr().is_none() && s.from() == Some("alice@localhost/a2")),
        "bob gets alice's initial presence"
    );
    // Alice logs off: bob sees it.
    host.end(alice);
    let got = host.take(bob);
    assert!(
        got.iter().any(|s| s.type_attr() == Some("unavailable") && s.from() == Some("alice@localhost/a2")),
        "{got:?}"
    );
}

/// A chat message to an offline user is stored, survives a restart and is
/// delivered, with the server's `<delay/>`, on the next initial presence;
/// only once.
#[test]
fn offline_messages_survive_a_restart() {
    let dir = TempDir::new("offline");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    host.take(alice);
    for i in 1..=3 {
        host.send_xml(alice, &format!("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m{i}'><body>hello {i}</body></message>"));
    }
    // Chat states only: not stored, no error either.
    host.send_xml(alice, "<message xmlns='jabber:client' to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>");
    assert!(host.take(alice).is_empty(), "stored without an error");
    drop(host);

    let mut host = Host::open(&dir);
    let bob = host.bind("bob@localhost/b");
    host.send_xml(bob, "<presence xmlns='jabber:client'/>");
    let got = host.take(bob);
    let messages: Vec<&Stanza> = got
        .iter()
        .filter(|s| s.element().name() == "message")
        .collect();
    assert_eq!(
        messages
            .iter()
            .map(|m| body(m).unwrap())
            .collect::<Vec<_>>(),
        ["hello 1", "hello 2", "hello 3"]
    );
    for m in &messages {
        assert_eq!(m.from(), Some("alice@localhost/a"));
        let delay = m
            .element()
            .get_child("delay", NS_DELAY)
            .map(|d| Delay::from_element(d).unwrap())
            .expect("a delay stamp");
        assert_eq!(
            delay.from,
            Some(Jid::Bare(BareJid::new(None, DOMAIN).unwrap()))
        );
        assert!(delay.stamp.unix_millis() > 1_600_000_000_000);
    }
    // Not again: neither on a presence update nor on a second session.
    host.send_xml(
        bob,
        "<presence xmlns='jabber:client'><show>dnd</show></presence>",
    );
    let bob2 = host.online("bob@localhost/b2");
    assert!(
        host.take(bob)
            .iter()
            .all(|s| s.element().name() != "message")
    );
    assert!(
        host.take(bob2)
            .iter()
            .all(|s| s.element().name() != "message")
    );
}

/// XEP-0191: a block stops delivery both ways with the XEP's errors, is
/// pushed, and survives a restart; an unblock lets messages through again.
#[test]
fn blocking_is_enforced_and_survives_a_restart() {
    let dir = TempDir::new("blocking");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    let bob = host.online("bob@localhost/b");
    host.send_xml(
        bob,
        "<iq xmlns='jabber:client' type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    host.take(bob);
    host.send_xml(bob, "<iq xmlns='jabber:client' type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>");
    let got = host.take(bob);
    assert!(
        got.iter()
            .any(|s| s.id() == Some("b1") && s.type_attr() == Some("result")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|s| s.type_attr() == Some("set")
                && s.element().has_child("block", "urn:xmpp:blocking")),
        "the interested session gets the push: {got:?}"
    );
    host.take(alice);

    // Alice → Bob: service-unavailable back; Bob gets nothing.
    host.send_xml(alice, "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x1'><body>hi</body></message>");
    let got = host.take(alice);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
    assert!(host.take(bob).is_empty());
    // Bob → Alice: not-acceptable with <blocked/>.
    host.send_xml(bob, "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='x2'><body>hi</body></message>");
    let got = host.take(bob);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("not-acceptable"));
    let error = got[0]
        .element()
        .get_child("error", "jabber:client")
        .unwrap();
    assert!(
        error.has_child("blocked", "urn:xmpp:blocking:errors"),
        "{got:?}"
    );
    assert!(host.take(alice).is_empty());
    // Offline too: nothing stored for bob from alice.
    host.end(bob);
    host.send_xml(alice, "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x3'><body>later</body></message>");
    let got = host.take(alice);
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
    drop(host);

    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    let bob = host.online("bob@localhost/b");
    assert!(
        host.take(bob)
            .iter()
            .all(|s| s.element().name() != "message")
    );
    host.send_xml(
        bob,
        "<iq xmlns='jabber:client' type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    let got = host.take(bob);
    let list = got.iter().find(|s| s.id() == Some("bl2")).unwrap();
    assert_eq!(item_jids(list), ["alice@localhost"]);
    host.take(alice);
    host.send_xml(alice, "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x4'><body>hi again</body></message>");
    assert_eq!(
        error_condition(&host.take(alice)[0]).as_deref(),
        Some("service-unavailable")
    );
    host.send_xml(
        bob,
        "<iq xmlns='jabber:client' type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>",
    );
    host.take(bob);
    host.send_xml(alice, "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x5'><body>through</body></message>");
    assert!(host.take(alice).is_empty());
    let got = host.take(bob);
    assert_eq!(got.iter().filter_map(body).collect::<Vec<_>>(), ["through"]);
}

/// The `jid` of each item in an iq's payload.
fn item_jids(stanza: &Stanza) -> Vec<String> {
    stanza
        .iq_payload()
        .map(|p| {
            p.children()
                .filter_map(|i| i.attr("jid"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// XEP-0280: with carbons enabled, the other resource gets `<received/>`
/// and `<sent/>` copies.
#[test]
fn carbons_copy_to_the_other_resources() {
    let dir = TempDir::new("carbons");
    let mut host = Host::open(&dir);
    let a1 = host.online("alice@localhost/one");
    let a2 = host.online("alice@localhost/two");
    let bob = host.online("bob@localhost/b");
    for s in [a1, a2] {
        host.send_xml(s, "<iq xmlns='jabber:client' type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
        let got = host.take(s);
        assert!(
            got.iter()
                .any(|r| r.id() == Some("c1") && r.type_attr() == Some("result")),
            "{got:?}"
        );
    }
    host.take(bob);
    host.send_xml(bob, "<message xmlns='jabber:client' to='alice@localhost/one' type='chat'><body>to one</body></message>");
    assert_eq!(
        host.take(a1).iter().filter_map(body).collect::<Vec<_>>(),
        ["to one"]
    );
    let copies = host.take(a2);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0]
            .element()
            .has_child("received", "urn:xmpp:carbons:2")
    );
    host.send_xml(a1, "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>from one</body></message>");
    assert_eq!(
        host.take(bob).iter().filter_map(body).collect::<Vec<_>>(),
        ["from one"]
    );
    let copies = host.take(a2);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(copies[0].element().has_child("sent", "urn:xmpp:carbons:2"));
    assert!(host.take(a1).is_empty());
}

/// Disco answers list what is implemented; an account answers its owner
/// and hides from strangers (XEP-0030 §8).
#[test]
fn disco_of_the_domain_and_of_accounts() {
    let dir = TempDir::new("disco");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    host.take(alice);
    host.send_xml(alice, "<iq xmlns='jabber:client' type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let got = host.take(alice);
    let query = got[0].iq_payload().unwrap();
    let features: Vec<&str> = query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "urn:xmpp:ping",
        "jabber:iq:roster",
        "urn:xmpp:blocking",
        "urn:xmpp:carbons:2",
        "msgoffline",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    host.send_xml(alice, "<iq xmlns='jabber:client' type='get' id='d2' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let got = host.take(alice);
    assert_eq!(got[0].type_attr(), Some("result"), "{got:?}");
    host.send_xml(alice, "<iq xmlns='jabber:client' type='get' id='d3' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let got = host.take(alice);
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
    host.send_xml(alice, "<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(host.take(alice)[0].type_attr(), Some("result"));
    host.send_xml(
        alice,
        "<iq xmlns='jabber:client' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(
        error_condition(&host.take(alice)[0]).as_deref(),
        Some("service-unavailable")
    );
}

/// A roster set succeeds, is pushed and read back after a restart; a
/// replaced session's contacts see it leave.
#[test]
fn roster_set_persists() {
    let dir = TempDir::new("roster");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    host.take(alice);
    host.send_xml(alice, "<iq xmlns='jabber:client' type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='Carol'><group>Friends</group></item></query></iq>");
    let got = host.take(alice);
    assert!(
        got.iter()
            .any(|s| s.id() == Some("s1") && s.type_attr() == Some("result")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|s| s.type_attr() == Some("set")),
        "push: {got:?}"
    );
    // Garbage in a set: an error, nothing stored.
    host.send_xml(alice, "<iq xmlns='jabber:client' type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='@@'/></query></iq>");
    assert!(host.take(alice)[0].error().is_some());
    drop(host);
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    let got = host.take(alice);
    let result = got.iter().find(|s| s.id() == Some("r0")).unwrap();
    assert_eq!(
        roster_items(result),
        vec![("carol@localhost".into(), "none".into(), None)]
    );
    let item = result.iq_payload().unwrap().children().next().unwrap();
    assert_eq!(item.attr("name"), Some("Carol"));
}

fn arbitrary_stanza() -> impl Strategy<Value = String> {
    let kind = prop_oneof![Just("message"), Just("presence"), Just("iq")];
    let type_attr = prop_oneof![
        Just(""),
        Just(" type='get'"),
        Just(" type='set'"),
        Just(" type='result'"),
        Just(" type='error'"),
        Just(" type='chat'"),
        Just(" type='subscribe'"),
        Just(" type='subscribed'"),
        Just(" type='unsubscribe'"),
        Just(" type='unsubscribed'"),
        Just(" type='probe'"),
        Just(" type='unavailable'"),
        Just(" type='bogus'"),
    ];
    let to = prop_oneof![
        Just(""),
        Just(" to='localhost'"),
        Just(" to='localhost/res'"),
        Just(" to='alice@localhost'"),
        Just(" to='alice@localhost/a'"),
        Just(" to='bob@localhost'"),
        Just(" to='bob@localhost/b'"),
        Just(" to='nobody@localhost'"),
        Just(" to='x@remote.example'"),
        Just(" to='@@bad'"),
    ];
    let payload = prop_oneof![
        Just(""),
        Just("<body>hi</body>"),
        Just("<query xmlns='jabber:iq:roster'/>"),
        Just("<query xmlns='jabber:iq:roster' ver='x'/>"),
        Just("<query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query>"),
        Just(
            "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>"
        ),
        Just("<query xmlns='jabber:iq:roster'><item/></query>"),
        Just("<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>"),
        Just("<block xmlns='urn:xmpp:blocking'><item jid='@'/></block>"),
        Just("<unblock xmlns='urn:xmpp:blocking'/>"),
        Just("<blocklist xmlns='urn:xmpp:blocking'/>"),
        Just("<enable xmlns='urn:xmpp:carbons:2'/>"),
        Just("<disable xmlns='urn:xmpp:carbons:2'/><x xmlns='y'/>"),
        Just("<query xmlns='http://jabber.org/protocol/disco#info' node='n'/>"),
        Just("<query xmlns='http://jabber.org/protocol/disco#items'/>"),
        Just("<ping xmlns='urn:xmpp:ping'/>"),
        Just("<priority>500</priority>"),
        Just("<priority>-1</priority>"),
    ];
    (kind, type_attr, to, payload)
        .prop_map(|(k, t, to, p)| format!("<{k} xmlns='jabber:client' id='i'{t}{to}>{p}</{k}>"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any sequence of stanzas from two clients, with restarts and session
    /// ends in between: no panic, deliveries only to bound sessions
    /// (checked in `Host::deliver`), and never more than one error reply
    /// per stanza to its sender.
    #[test]
    fn any_input_is_handled(steps in proptest::collection::vec((0..3usize, arbitrary_stanza()), 1..24)) {
        let dir = TempDir::new("any");
        let mut host = Host::open(&dir);
        let mut alice = host.online("alice@localhost/a");
        let mut bob = host.online("bob@localhost/b");
        for (who, xml) in steps {
            match who {
                0 => host.send_xml(alice, &xml),
                1 => host.send_xml(bob, &xml),
                _ => {
                    host.end(alice);
                    host.end(bob);
                    drop(host);
                    host = Host::open(&dir);
                    alice = host.online("alice@localhost/a");
                    bob = host.online("bob@localhost/b");
                    continue;
                }
            }
            for s in [alice, bob] {
                let got = host.take(s);
                let errors = got.iter().filter(|g| g.is_error() && g.id() == Some("i")).count();
                prop_assert!(errors <= 1, "{xml}: {got:?}");
            }
        }
    }
}

#[test]
fn presence_of_a_bad_priority_is_refused() {
    let dir = TempDir::new("priority");
    let mut host = Host::open(&dir);
    let alice = host.bind("alice@localhost/a");
    host.send_xml(
        alice,
        "<presence xmlns='jabber:client'><priority>999</priority></presence>",
    );
    let got = host.take(alice);
    assert_eq!(error_condition(&got[0]).as_deref(), Some("bad-request"));
    assert!(!host.router.session(alice).unwrap().available);
}

/// XEP-0198 in the hub: a resumed session (a new id, the router's binding
/// moved) keeps its IM state; messages it never acknowledged are routed
/// again when it ends, into offline storage when nobody else is there.
#[test]
fn resumed_sessions_keep_their_state_and_unacked_messages_go_offline() {
    let dir = TempDir::new("resume");
    let mut host = Host::open(&dir);
    let alice = host.online("alice@localhost/a");
    let phone = host.online("alice@localhost/phone");
    let bob = host.online("bob@localhost/b");
    for s in [alice, phone] {
        host.send_xml(
            s,
            "<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
        );
    }
    host.take(alice);
    host.take(phone);
    host.take(bob);

    // The hub moves alice's binding to a new connection, then tells Im.
    let moved: SessionId = 100;
    let jid: FullJid = "alice@localhost/a".parse().unwrap();
    let (available, priority) = {
        let s = host.router.session(alice).unwrap();
        (s.available, s.priority)
    };
    host.router.unbind(alice);
    host.router
        .bind(moved, jid.clone(), ConflictPolicy::RefuseNew);
    host.router.set_presence(moved, available, priority);
    host.im.session_moved(alice, moved, &jid);
    host.inbox.remove(&alice);

    host.send_xml(bob, "<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>after the move</body></message>");
    assert_eq!(
        host.take(moved).iter().filter_map(body).collect::<Vec<_>>(),
        ["after the move"]
    );
    let copies = host.take(phone);
    assert!(
        copies.len() == 1
            && copies[0]
                .element()
                .has_child("received", "urn:xmpp:carbons:2"),
        "the phone still gets carbons of the moved session's messages: {copies:?}"
    );
    // Still interested in the roster: a roster set by the phone is pushed
    // to the moved session too.
    host.send_xml(phone, "<iq xmlns='jabber:client' type='set' id='s'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>");
    assert!(
        host.take(moved)
            .iter()
            .any(|s| s.type_attr() == Some("set")
                && s.element().has_child("query", "jabber:iq:roster")),
        "roster push to the moved session"
    );
    host.take(phone);

    // Alice's sessions end; a message the moved one never acknowledged is
    // routed again: with nobody left, into offline storage.
    let unacked = parse(
        "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/a' type='chat'><body>unacked</body></message>",
    );
    host.end(phone);
    host.end(moved);
    let out = host.im.reroute(&mut host.router, &host.accounts, unacked);
    assert!(out.is_empty(), "nothing to deliver now: {out:?}");
    assert!(
        host.take(bob).iter().all(|s| !s.is_error()),
        "no bounce to bob"
    );
    let back = host.online("alice@localhost/a");
    let got = host.take(back);
    let messages: Vec<&Stanza> = got.iter().filter(|s| body(s).is_some()).collect();
    assert_eq!(messages.len(), 1, "{got:?}");
    assert_eq!(body(messages[0]).as_deref(), Some("unacked"));
    assert!(messages[0].element().has_child("delay", NS_DELAY));
}
