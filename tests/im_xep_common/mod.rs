//! Helpers shared by the `im_*` integration tests: XML parsing for the XEP
//! examples and a proptest strategy of arbitrary, often malformed stanzas
//! for the "no panic on any input" properties.
#![allow(dead_code)]

use minidom::{Element, Node};
use proptest::prelude::*;
use xmpp_sansio::stanza::Stanza;

/// Parses XML and drops whitespace-only text (the XEP examples are indented).
pub fn xml(s: &str) -> Element {
    strip(s.parse().expect("test XML parses"))
}

fn strip(mut el: Element) -> Element {
    for node in el.take_nodes() {
        match node {
            Node::Element(child) => {
                el.append_child(strip(child));
            }
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(t) => el.append_text(t),
        }
    }
    el
}

/// A `jabber:client` stanza from XML.
pub fn stanza(s: &str) -> Stanza {
    Stanza::from_element(xml(s), "jabber:client").expect("a jabber:client stanza")
}

const NAMES: &[&str] = &[
    "blocklist",
    "block",
    "unblock",
    "item",
    "query",
    "identity",
    "feature",
    "x",
    "field",
    "value",
    "c",
    "delay",
    "body",
    "thread",
    "enable",
    "disable",
    "private",
    "sent",
    "received",
    "forwarded",
    "message",
    "no-copy",
    "no-store",
    "store",
    "composing",
    "invite",
    "request",
];

const NAMESPACES: &[&str] = &[
    "jabber:client",
    "urn:xmpp:blocking",
    "urn:xmpp:blocking:errors",
    "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items",
    "jabber:x:data",
    "http://jabber.org/protocol/caps",
    "urn:xmpp:delay",
    "urn:xmpp:carbons:2",
    "urn:xmpp:forward:0",
    "urn:xmpp:hints",
    "http://jabber.org/protocol/chatstates",
    "http://jabber.org/protocol/muc#user",
    "urn:xmpp:receipts",
    "urn:other",
];

const ATTRS: &[&str] = &[
    "jid", "node", "var", "category", "type", "name", "stamp", "from", "to", "hash", "ver", "id",
];

const VALUES: &[&str] = &[
    "",
    "juliet@capulet.com",
    "juliet@capulet.com/balcony",
    "romeo@montague.net",
    "romeo@montague.net/orchard",
    "capulet.com",
    "montague.net",
    "a@b@c",
    "@",
    "/x",
    "hidden",
    "FORM_TYPE",
    "sha-1",
    "2002-09-10T23:08:25Z",
    "2002-02-30T00:00:00Z",
    "chat",
    "get",
    "set",
    "\u{3A8} <&>",
];

fn element(depth: u32) -> BoxedStrategy<Element> {
    let leaf = (
        prop::sample::select(NAMES),
        prop::sample::select(NAMESPACES),
        prop::collection::vec(
            (prop::sample::select(ATTRS), prop::sample::select(VALUES)),
            0..3,
        ),
        prop::option::of(prop::sample::select(VALUES)),
    )
        .prop_map(|(name, ns, attrs, text)| {
            let mut el = Element::bare(name, ns);
            for (attr, value) in attrs {
                let name = minidom::rxml::NcName::try_from(attr).expect("literal NCName");
                el.attrs_mut()
                    .insert(minidom::rxml::Namespace::NONE, name, value.to_owned());
            }
            if let Some(text) = text {
                el.append_text(text);
            }
            el
        });
    if depth == 0 {
        return leaf.boxed();
    }
    (leaf, prop::collection::vec(element(depth - 1), 0..4))
        .prop_map(|(mut el, children)| {
            for child in children {
                el.append_child(child);
            }
            el
        })
        .boxed()
}

/// Arbitrary stanzas: half of them free-form ([`arb_free_stanza`]), half
/// iq requests shaped like the IM protocols' ([`arb_request`]), so that
/// both the parsers' error paths and their handlers are reached.
pub fn arb_stanza() -> impl Strategy<Value = Stanza> {
    prop_oneof![arb_free_stanza(), arb_request()]
}

const REQUESTS: &[(&str, &str)] = &[
    ("blocklist", "urn:xmpp:blocking"),
    ("block", "urn:xmpp:blocking"),
    ("unblock", "urn:xmpp:blocking"),
    ("query", "http://jabber.org/protocol/disco#info"),
    ("query", "http://jabber.org/protocol/disco#items"),
    ("enable", "urn:xmpp:carbons:2"),
    ("disable", "urn:xmpp:carbons:2"),
    ("private", "urn:xmpp:carbons:2"),
];

/// `<iq type='get|set' id='q' [to]>` with one IM payload (or, rarely, a
/// second element), optional `node`, and `<item jid='…'/>` children.
pub fn arb_request() -> impl Strategy<Value = Stanza> {
    (
        prop::sample::select(&["get", "set", "result"][..]),
        prop::option::of(prop::sample::select(VALUES)),
        prop::sample::select(REQUESTS),
        prop::option::of(prop::sample::select(VALUES)),
        prop::collection::vec(prop::option::of(prop::sample::select(VALUES)), 0..4),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(iq_type, to, (name, ns), node, items, extra)| {
            let mut payload = Element::bare(name, ns);
            if let Some(node) = node {
                set(&mut payload, "node", node);
            }
            for jid in items {
                let mut item = Element::bare("item", ns);
                if let Some(jid) = jid {
                    set(&mut item, "jid", jid);
                }
                payload.append_child(item);
            }
            let mut iq = Element::bare("iq", "jabber:client");
            set(&mut iq, "type", iq_type);
            set(&mut iq, "id", "q");
            if let Some(to) = to {
                set(&mut iq, "to", to);
            }
            iq.append_child(payload);
            if extra {
                iq.append_child(Element::bare("ping", "urn:xmpp:ping"));
            }
            Stanza::from_element(iq, "jabber:client").expect("an iq")
        })
}

fn set(el: &mut Element, attr: &'static str, value: &str) {
    let name = minidom::rxml::NcName::try_from(attr).expect("literal NCName");
    el.attrs_mut()
        .insert(minidom::rxml::Namespace::NONE, name, value.to_owned());
}

/// Arbitrary `message`/`presence`/`iq` stanzas in `jabber:client` with
/// arbitrary `type`, `to`, `from`, `id` and up to three levels of children
/// drawn from the IM namespaces.
pub fn arb_free_stanza() -> impl Strategy<Value = Stanza> {
    (
        prop::sample::select(&["message", "presence", "iq"][..]),
        prop::collection::vec(
            (
                prop::sample::select(&["type", "to", "from", "id"][..]),
                prop::sample::select(
                    &[
                        "",
                        "get",
                        "set",
                        "result",
                        "error",
                        "chat",
                        "normal",
                        "groupchat",
                        "headline",
                        "unavailable",
                        "subscribe",
                        "bogus",
                        "juliet@capulet.com",
                        "juliet@capulet.com/balcony",
                        "romeo@montague.net/orchard",
                        "capulet.com",
                        "a@b@c",
                    ][..],
                ),
            ),
            0..5,
        ),
        prop::collection::vec(element(2), 0..4),
    )
        .prop_map(|(kind, attrs, children)| {
            let mut el = Element::bare(kind, "jabber:client");
            for (attr, value) in attrs {
                let name = minidom::rxml::NcName::try_from(attr).expect("literal NCName");
                el.attrs_mut()
                    .insert(minidom::rxml::Namespace::NONE, name, value.to_owned());
            }
            for child in children {
                el.append_child(child);
            }
            Stanza::from_element(el, "jabber:client").expect("a stanza kind")
        })
}
