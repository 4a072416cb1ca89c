//! Rosters (RFC 6121 §2): get, set, remove, pushes to interested
//! resources, versioning (§2.6), the errors of bad roster sets (§2.3.3),
//! parsing and serializing the query, and store failures.

mod im_common;

use im_common::{World, bare, parse, pushed_item, roster_get, roster_set, rows, summary};
use minidom::Element;
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::im::roster::{
    NS_ROSTER, QueryItem, RosterQuery, RosterSet, SubscriptionAttr, removed_item_element,
    roster_query, validate_roster_set,
};
use xmpp_sansio::im::{
    ImAction, ImConfig, ImService, MemoryRosterStore, RosterItem, RosterLimits, RosterStore,
    Subscription,
};
use xmpp_sansio::router::{ConflictPolicy, Router};
use xmpp_sansio::stanza::Stanza;

const JULIET: &str = "juliet@example.com";

/// Juliet with three sessions: 1 = balcony and 2 = chamber asked for the
/// roster (2 with versioning), 3 = hall did not.
fn juliet() -> World {
    let mut w = World::new(ImConfig::default());
    w.bind(1, "juliet@example.com/balcony");
    w.bind(2, "juliet@example.com/chamber");
    w.bind(3, "juliet@example.com/hall");
    w.send(1, roster_get("g1", None));
    w.send(2, roster_get("g2", Some("")));
    w.clear();
    w
}

fn error_of(stanzas: &[Stanza]) -> StanzaErrorCondition {
    assert_eq!(stanzas.len(), 1, "{stanzas:?}");
    stanzas[0].error().expect("an error reply").condition
}

#[test]
fn empty_roster_get() {
    let mut w = World::new(ImConfig::default());
    w.bind(1, "juliet@example.com/balcony");
    assert!(!w.im.is_interested(1));
    w.send(1, roster_get("g1", None));
    let got = w.take(1);
    assert_eq!(
        summary(&got),
        rows(&[("iq:result", "", "juliet@example.com/balcony")])
    );
    assert_eq!(got[0].id(), Some("g1"));
    let query = got[0].iq_payload().unwrap();
    assert!(query.is("query", NS_ROSTER));
    assert_eq!(query.children().count(), 0);
    // No `ver` in the request: none in the answer (§2.6.1).
    assert_eq!(query.attr("ver"), None);
    assert!(w.im.is_interested(1));
}

/// §2.3.2, §2.1.6: a set is pushed to every interested resource (the
/// sender included) and answered with an empty result; resources that
/// never asked for the roster get nothing.
#[test]
fn set_is_pushed_to_interested_resources_only() {
    let mut w = juliet();
    w.send(
        1,
        roster_set(
            "s1",
            "<item jid='nurse@example.com' name='Nurse'><group>Servants</group></item>",
        ),
    );
    let got = w.take(1);
    assert_eq!(
        summary(&got),
        rows(&[
            ("iq:set", "", "juliet@example.com/balcony"),
            ("iq:result", "", "juliet@example.com/balcony"),
        ])
    );
    assert_eq!(got[1].id(), Some("s1"));
    assert_eq!(got[1].iq_payload(), None);
    let push = &got[0];
    assert_eq!(push.from(), None, "pushes have no from (§2.1.6)");
    let item = pushed_item(push);
    assert_eq!(item.attr("jid"), Some("nurse@example.com"));
    assert_eq!(item.attr("name"), Some("Nurse"));
    assert_eq!(item.attr("subscription"), Some("none"));
    assert_eq!(item.attr("ask"), None);
    assert_eq!(
        item.children().map(Element::text).collect::<Vec<_>>(),
        ["Servants"]
    );
    // Balcony asked without ver: its push has none. Chamber uses
    // versioning: its push carries the new version.
    assert_eq!(push.iq_payload().unwrap().attr("ver"), None);
    let chamber = w.take(2);
    assert_eq!(chamber.len(), 1);
    assert_eq!(chamber[0].iq_payload().unwrap().attr("ver"), Some("1"));
    assert_ne!(chamber[0].id(), push.id(), "every push has its own id");
    assert!(w.take(3).is_empty());

    // An update keeps the subscription state and replaces name and groups.
    let mut stored = w.item(JULIET, "nurse@example.com").unwrap();
    stored.subscription = Subscription::Both;
    w.seed(JULIET, stored);
    w.send(2, roster_set("s2", "<item jid='nurse@example.com'/>"));
    let item = w.item(JULIET, "nurse@example.com").unwrap();
    assert_eq!(
        (item.name, item.groups, item.subscription),
        (None, vec![], Subscription::Both)
    );
    assert_eq!(w.version(JULIET), 3);
}

/// §2.3.3 and §2.1.2: every refused set, with its error, and nothing
/// stored or pushed.
#[test]
fn bad_roster_sets() {
    let config = ImConfig {
        limits: RosterLimits {
            max_name_bytes: 8,
            max_group_bytes: 6,
        },
        ..ImConfig::default()
    };
    let cases: &[(&str, StanzaErrorCondition)] = &[
        // More than one item.
        (
            "<item jid='a@example.com'/><item jid='b@example.com'/>",
            StanzaErrorCondition::BadRequest,
        ),
        // No item.
        ("", StanzaErrorCondition::BadRequest),
        // No jid.
        ("<item name='x'/>", StanzaErrorCondition::BadRequest),
        // Not a JID.
        (
            "<item jid='@example.com'/>",
            StanzaErrorCondition::JidMalformed,
        ),
        // A full JID.
        (
            "<item jid='a@example.com/phone'/>",
            StanzaErrorCondition::JidMalformed,
        ),
        // The user's own JID.
        (
            "<item jid='juliet@example.com'/>",
            StanzaErrorCondition::NotAllowed,
        ),
        // Name over the configured limit (9 bytes > 8).
        (
            "<item jid='a@example.com' name='123456789'/>",
            StanzaErrorCondition::NotAcceptable,
        ),
        // Empty group.
        (
            "<item jid='a@example.com'><group/></item>",
            StanzaErrorCondition::NotAcceptable,
        ),
        // Group over the limit (7 > 6).
        (
            "<item jid='a@example.com'><group>1234567</group></item>",
            StanzaErrorCondition::NotAcceptable,
        ),
        // The same group twice.
        (
            "<item jid='a@example.com'><group>A</group><group>A</group></item>",
            StanzaErrorCondition::BadRequest,
        ),
    ];
    for (items, condition) in cases {
        let mut w = World::new(config);
        w.bind(1, "juliet@example.com/balcony");
        w.send(1, roster_get("g", None));
        w.clear();
        w.send(1, roster_set("bad", items));
        let got = w.take(1);
        assert_eq!(error_of(&got), *condition, "{items}");
        assert_eq!(got[0].id(), Some("bad"));
        assert!(w.store.is_empty(&bare(JULIET)), "{items}");
        assert_eq!(w.version(JULIET), 0);
    }
    // Exactly at the limits: accepted (multi-byte characters count bytes).
    let mut w = World::new(config);
    w.bind(1, "juliet@example.com/balcony");
    w.send(
        1,
        roster_set(
            "ok",
            "<item jid='a@example.com' name='12345678'><group>éèà</group><group>B</group></item>",
        ),
    );
    assert_eq!(w.take(1)[0].type_attr(), Some("result"));
}

/// §2.1.2.1, §2.1.2.2, §2.1.2.5: a client cannot set subscription, ask or
/// approved; the server ignores them.
#[test]
fn set_ignores_server_side_attributes() {
    let mut w = juliet();
    w.send(
        1,
        roster_set(
            "s",
            "<item jid='romeo@example.com' subscription='both' ask='subscribe' approved='true'/>",
        ),
    );
    let item = w.item(JULIET, "romeo@example.com").unwrap();
    assert_eq!(
        (item.subscription, item.pending_out, item.approved),
        (Subscription::None, false, false)
    );
}

/// §2.5: removal cancels the subscriptions both ways, is pushed as
/// subscription='remove', and removing what is not there is
/// item-not-found.
#[test]
fn remove() {
    let mut w = juliet();
    w.send(3, im_common::presence(None, None));
    let mut romeo = RosterItem::new(bare("romeo@verona.lit"));
    romeo.subscription = Subscription::Both;
    w.seed(JULIET, romeo);
    let version = w.version(JULIET);
    w.clear();
    w.send(
        2,
        roster_set("rm", "<item jid='romeo@verona.lit' subscription='remove'/>"),
    );
    // Romeo (remote) gets unavailable from the available session, then
    // unsubscribe and unsubscribed from the bare JID.
    assert_eq!(
        summary(&w.remote),
        rows(&[
            (
                "presence:unavailable",
                "juliet@example.com/hall",
                "romeo@verona.lit"
            ),
            ("presence:unsubscribe", JULIET, "romeo@verona.lit"),
            ("presence:unsubscribed", JULIET, "romeo@verona.lit"),
        ])
    );
    let got = w.take(2);
    assert_eq!(
        summary(&got),
        rows(&[
            ("iq:set", "", "juliet@example.com/chamber"),
            ("iq:result", "", "juliet@example.com/chamber"),
        ])
    );
    let item = pushed_item(&got[0]);
    assert_eq!(item.attr("subscription"), Some("remove"));
    assert_eq!(item.attr("jid"), Some("romeo@verona.lit"));
    assert_eq!(
        got[0].iq_payload().unwrap().attr("ver"),
        Some((version + 1).to_string().as_str())
    );
    assert_eq!(w.take(1).len(), 1);
    assert_eq!(w.item(JULIET, "romeo@verona.lit"), None);

    // Again: item-not-found, nothing pushed.
    w.clear();
    w.send(
        2,
        roster_set(
            "rm2",
            "<item jid='romeo@verona.lit' subscription='remove'/>",
        ),
    );
    assert_eq!(error_of(&w.take(2)), StanzaErrorCondition::ItemNotFound);
    assert!(w.take(1).is_empty());
    assert!(w.remote.is_empty());

    // A pending request from a contact not in the roster is not an item.
    let mut request = RosterItem::new(bare("tybalt@example.com"));
    request.in_roster = false;
    request.pending_in = Some(parse(
        "<presence xmlns='jabber:client' type='subscribe' from='tybalt@example.com' to='juliet@example.com'/>",
    ));
    w.seed(JULIET, request);
    w.send(
        2,
        roster_set(
            "rm3",
            "<item jid='tybalt@example.com' subscription='remove'/>",
        ),
    );
    assert_eq!(error_of(&w.take(2)), StanzaErrorCondition::ItemNotFound);
}

/// Removing an item with only pending requests sends the matching
/// cancellation: unsubscribe for Pending Out, unsubscribed for Pending In.
#[test]
fn remove_pending_item() {
    let mut w = juliet();
    let mut item = RosterItem::new(bare("paris@verona.lit"));
    item.pending_out = true;
    item.pending_in = Some(parse(
        "<presence xmlns='jabber:client' type='subscribe' from='paris@verona.lit' to='juliet@example.com'/>",
    ));
    w.seed(JULIET, item);
    w.send(
        1,
        roster_set("rm", "<item jid='paris@verona.lit' subscription='remove'/>"),
    );
    assert_eq!(
        summary(&w.remote),
        rows(&[
            ("presence:unsubscribe", JULIET, "paris@verona.lit"),
            ("presence:unsubscribed", JULIET, "paris@verona.lit"),
        ])
    );
}

/// §2.6: versioning with the counter scheme.
#[test]
fn versioning() {
    let mut w = juliet();
    for (i, jid) in ["a@example.com", "b@example.com"].iter().enumerate() {
        w.send(
            1,
            roster_set(&format!("s{i}"), &format!("<item jid='{jid}'/>")),
        );
    }
    assert_eq!(w.version(JULIET), 2);
    w.clear();
    // The current version: an empty result, no query.
    w.send(3, roster_get("v1", Some("2")));
    let got = w.take(3);
    assert_eq!(got[0].type_attr(), Some("result"));
    assert_eq!(got[0].iq_payload(), None);
    assert!(w.im.is_interested(3));
    // An older, empty or unknown version: the whole roster and the current
    // version.
    for ver in ["1", "", "0", "banana", "02"] {
        w.send(3, roster_get("v2", Some(ver)));
        let got = w.take(3);
        let query = got[0].iq_payload().unwrap();
        assert_eq!(query.attr("ver"), Some("2"), "{ver:?}");
        let jids: Vec<_> = query.children().filter_map(|c| c.attr("jid")).collect();
        assert_eq!(jids, ["a@example.com", "b@example.com"], "{ver:?}");
    }
    // Pushes to the versioning session carry each new version.
    w.send(1, roster_set("s3", "<item jid='c@example.com'/>"));
    let push = &w.take(3)[0];
    assert_eq!(push.iq_payload().unwrap().attr("ver"), Some("3"));
    // Then a get with that version is empty again.
    w.send(3, roster_get("v3", Some("3")));
    assert_eq!(w.take(3)[0].iq_payload(), None);
}

#[test]
fn versioning_off_ignores_ver() {
    let mut w = World::new(ImConfig {
        roster_versioning: false,
        ..ImConfig::default()
    });
    w.bind(1, "juliet@example.com/balcony");
    w.send(1, roster_get("g", Some("0")));
    let got = w.take(1);
    let query = got[0].iq_payload().expect("the whole roster");
    assert_eq!(query.attr("ver"), None);
    w.send(1, roster_set("s", "<item jid='a@example.com'/>"));
    let push = &w.take(1)[0];
    assert_eq!(push.iq_payload().unwrap().attr("ver"), None);
}

/// §2.3.3 `forbidden`, RFC 6120 §8.2.3 payload rules; results and errors
/// are never answered.
#[test]
fn roster_iq_addressing_and_payload() {
    let mut router = Router::new(["example.com".to_owned()]);
    router.bind(
        1,
        "juliet@example.com/balcony".parse().unwrap(),
        ConflictPolicy::RefuseNew,
    );
    let mut store = MemoryRosterStore::new();
    let mut im = ImService::new(ImConfig::default());
    let mut run = |xml: &str| -> Vec<ImAction> {
        let Ok(actions) = im.roster_iq(&router, &mut store, 1, &parse(xml));
        actions
    };
    let to_romeo = run(
        "<iq xmlns='jabber:client' type='get' id='x' from='juliet@example.com/balcony' to='romeo@example.com'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(
        to_romeo[0].stanza().error().unwrap().condition,
        StanzaErrorCondition::Forbidden
    );
    let to_self = run(
        "<iq xmlns='jabber:client' type='get' id='x' from='juliet@example.com/balcony' to='juliet@example.com'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(to_self[0].stanza().type_attr(), Some("result"));
    let two_payloads = run(
        "<iq xmlns='jabber:client' type='get' id='x' from='juliet@example.com/balcony'><query xmlns='jabber:iq:roster'/><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(
        two_payloads[0].stanza().error().unwrap().condition,
        StanzaErrorCondition::BadRequest
    );
    for ignored in [
        "<iq xmlns='jabber:client' type='result' id='push1' from='juliet@example.com/balcony'/>",
        "<iq xmlns='jabber:client' type='error' id='push2' from='juliet@example.com/balcony'><query xmlns='jabber:iq:roster'/></iq>",
    ] {
        assert_eq!(run(ignored), vec![]);
    }
    // An unknown session: nothing.
    let Ok(none) = im.roster_iq(&router, &mut store, 99, &im_common::roster_get("g", None));
    assert!(none.is_empty());
}

#[test]
fn query_parse_and_serialize() {
    let mut item = RosterItem::new(bare("romeo@example.net"));
    item.name = Some("Romeo".into());
    item.groups = vec!["Friends".into()];
    item.subscription = Subscription::To;
    item.approved = true;
    let hidden = RosterItem {
        in_roster: false,
        ..RosterItem::new(bare("tybalt@example.net"))
    };
    let query = roster_query([&item, &hidden], Some(12));
    let read = RosterQuery::from_element(&query).unwrap();
    assert_eq!(read.ver.as_deref(), Some("12"));
    assert_eq!(
        read.items,
        vec![QueryItem {
            jid: bare("romeo@example.net"),
            name: Some("Romeo".into()),
            groups: vec!["Friends".into()],
            subscription: Some(SubscriptionAttr::State(Subscription::To)),
            ask: false,
            approved: true,
        }]
    );
    let removed = QueryItem::from_element(&removed_item_element(&bare("a@b"))).unwrap();
    assert_eq!(removed.subscription, Some(SubscriptionAttr::Remove));
    // Unknown subscription values read as absent; not a roster query is
    // bad-request.
    let odd: Element = "<item xmlns='jabber:iq:roster' jid='a@b' subscription='maybe'/>"
        .parse()
        .unwrap();
    assert_eq!(QueryItem::from_element(&odd).unwrap().subscription, None);
    let not_roster: Element = "<query xmlns='urn:other'/>".parse().unwrap();
    assert_eq!(
        RosterQuery::from_element(&not_roster)
            .unwrap_err()
            .condition,
        StanzaErrorCondition::BadRequest
    );
    // validate_roster_set directly: remove skips the name/group checks.
    let q: Element = "<query xmlns='jabber:iq:roster'><item jid='a@b' subscription='remove'><group/></item></query>"
        .parse()
        .unwrap();
    assert_eq!(
        validate_roster_set(&bare(JULIET), &q, &RosterLimits::default()),
        Ok(RosterSet::Remove(bare("a@b")))
    );
}

/// A record of a pending request is not in the roster until the user adds
/// the contact; adding keeps the request pending.
#[test]
fn adding_a_contact_with_a_pending_request() {
    let mut w = juliet();
    w.receive_remote(
        parse("<presence xmlns='jabber:client' type='subscribe' from='romeo@verona.lit' to='juliet@example.com'/>"),
    );
    assert_eq!(w.version(JULIET), 0);
    w.send(
        1,
        roster_set("add", "<item jid='romeo@verona.lit' name='R'/>"),
    );
    let item = w.item(JULIET, "romeo@verona.lit").unwrap();
    assert!(item.in_roster && item.pending_in.is_some());
    assert_eq!(w.version(JULIET), 1);
    // The pending request is not on the wire.
    let push = &w.take(1)[0];
    assert_eq!(
        pushed_item(push).attrs().len(),
        3,
        "jid, name, subscription"
    );
    // Approving it now gives "from".
    w.send(1, im_common::presence(None, None));
    w.clear();
    w.send(
        1,
        im_common::presence(Some("subscribed"), Some("romeo@verona.lit")),
    );
    let item = w.item(JULIET, "romeo@verona.lit").unwrap();
    assert_eq!(
        (item.subscription, item.pending_in),
        (Subscription::From, None)
    );
    assert_eq!(
        summary(&w.remote),
        rows(&[
            ("presence:subscribed", JULIET, "romeo@verona.lit"),
            ("presence", "juliet@example.com/balcony", "romeo@verona.lit"),
        ])
    );
}

/// A store that fails: the error comes back and nothing is returned or
/// changed.
#[derive(Default)]
struct FailingStore {
    inner: MemoryRosterStore,
    fail_reads: bool,
    fail_writes: bool,
}

impl RosterStore for FailingStore {
    type Error = String;
    fn items(&self, user: &xmpp_sansio::BareJid) -> Result<Vec<RosterItem>, String> {
        if self.fail_reads {
            return Err("read".into());
        }
        let Ok(items) = self.inner.items(user);
        Ok(items)
    }
    fn item(
        &self,
        user: &xmpp_sansio::BareJid,
        contact: &xmpp_sansio::BareJid,
    ) -> Result<Option<RosterItem>, String> {
        if self.fail_reads {
            return Err("read".into());
        }
        let Ok(item) = self.inner.item(user, contact);
        Ok(item)
    }
    fn version(&self, user: &xmpp_sansio::BareJid) -> Result<u64, String> {
        if self.fail_reads {
            return Err("read".into());
        }
        let Ok(v) = self.inner.version(user);
        Ok(v)
    }
    fn put_item(
        &mut self,
        user: &xmpp_sansio::BareJid,
        item: RosterItem,
        version: u64,
    ) -> Result<(), String> {
        if self.fail_writes {
            return Err("write".into());
        }
        let Ok(()) = self.inner.put_item(user, item, version);
        Ok(())
    }
    fn remove_item(
        &mut self,
        user: &xmpp_sansio::BareJid,
        contact: &xmpp_sansio::BareJid,
        version: u64,
    ) -> Result<(), String> {
        if self.fail_writes {
            return Err("write".into());
        }
        let Ok(()) = self.inner.remove_item(user, contact, version);
        Ok(())
    }
}

#[test]
fn store_errors_are_returned() {
    let mut router = Router::new(["example.com".to_owned()]);
    router.bind(
        1,
        "juliet@example.com/balcony".parse().unwrap(),
        ConflictPolicy::RefuseNew,
    );
    let mut im = ImService::new(ImConfig::default());
    let mut store = FailingStore {
        fail_writes: true,
        ..FailingStore::default()
    };
    let mut set = roster_set("s", "<item jid='a@example.com'/>");
    set.set_from(Some("juliet@example.com/balcony"));
    assert_eq!(
        im.roster_iq(&router, &mut store, 1, &set),
        Err("write".to_owned())
    );
    assert!(store.inner.is_empty(&bare(JULIET)));
    store.fail_writes = false;
    store.fail_reads = true;
    let mut get = roster_get("g", None);
    get.set_from(Some("juliet@example.com/balcony"));
    assert_eq!(
        im.roster_iq(&router, &mut store, 1, &get),
        Err("read".to_owned())
    );
    assert!(!im.is_interested(1), "a failed get changes nothing");
    let mut subscribe = im_common::presence(Some("subscribe"), Some("romeo@example.com"));
    subscribe.set_from(Some(JULIET));
    assert_eq!(
        im.outbound_subscription(&router, &mut store, 1, &subscribe),
        Err("read".to_owned())
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn nc(name: &'static str) -> rxml::NcName {
        rxml::NcName::try_from(name).unwrap()
    }

    proptest! {
        /// Any roster set query: never a panic; an accepted update has
        /// distinct, non-empty groups within the limits and a name within
        /// the limit.
        #[test]
        fn roster_set_validation_is_total(
            items in prop::collection::vec(
                (
                    prop::option::of(prop_oneof![
                        prop::sample::select(vec![
                            "romeo@example.com", "example.net", "juliet@example.com",
                            "a@b/c", "@x", "a@", "",
                        ]).prop_map(str::to_owned),
                        "\\PC{0,12}",
                    ]),
                    prop::option::of(prop_oneof!["[a-zé]{0,5}", "\\PC{0,12}"]),
                    prop::option::of(prop::sample::select(vec!["none", "to", "from", "both", "remove", "x"])),
                    prop::collection::vec(prop::sample::select(vec!["", "a", "b", "é", "ab"]), 0..4),
                ),
                0..3,
            )
        ) {
            let mut query = Element::bare("query", NS_ROSTER);
            for (jid, name, subscription, groups) in &items {
                let mut item = Element::bare("item", NS_ROSTER);
                if let Some(j) = jid {
                    item.set_attr(rxml::Namespace::NONE, nc("jid"), j.clone());
                }
                if let Some(n) = name {
                    item.set_attr(rxml::Namespace::NONE, nc("name"), n.clone());
                }
                if let Some(s) = subscription {
                    item.set_attr(rxml::Namespace::NONE, nc("subscription"), *s);
                }
                for g in groups {
                    let mut group = Element::bare("group", NS_ROSTER);
                    group.append_text(*g);
                    item.append_child(group);
                }
                query.append_child(item);
            }
            let limits = RosterLimits { max_name_bytes: 6, max_group_bytes: 2 };
            match validate_roster_set(&bare(JULIET), &query, &limits) {
                Ok(RosterSet::Update { jid, name, groups }) => {
                    prop_assert_eq!(items.len(), 1);
                    prop_assert_ne!(jid, bare(JULIET));
                    prop_assert!(name.is_none_or(|n| !n.is_empty() && n.len() <= 6));
                    for (i, g) in groups.iter().enumerate() {
                        prop_assert!(!g.is_empty() && g.len() <= 2);
                        prop_assert!(!groups[..i].contains(g));
                    }
                }
                Ok(RosterSet::Remove(_)) => {
                    prop_assert_eq!(items.len(), 1);
                    prop_assert_eq!(items[0].2, Some("remove"));
                }
                Err(e) => {
                    prop_assert!(matches!(
                        e.condition,
                        StanzaErrorCondition::BadRequest
                            | StanzaErrorCondition::JidMalformed
                            | StanzaErrorCondition::NotAllowed
                            | StanzaErrorCondition::NotAcceptable
                    ));
                }
            }
        }
    }
}
