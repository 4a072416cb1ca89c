//! XEP-0280 Message Carbons 1.0.1 (`src/im/carbons.rs`): the XEP's
//! examples as vectors (§4 enable, §5 disable, §7 received and the
//! impersonation attempt, §8 sent, §9 private), the §6.1 eligibility rules, the fan-out
//! decision, and the path through the router.

mod im_xep_common;

use std::collections::HashSet;

use im_xep_common::{arb_stanza, stanza};
use proptest::prelude::*;
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::im::carbons::{
    Carbon, CarbonError, CarbonsRequest, CarbonsSessions, Direction, FEATURES, MessageRoute,
    NS_CARBONS, is_eligible, wrap,
};
use xmpp_sansio::router::{ConflictPolicy, Decision, Router, SessionId};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::{BareJid, FullJid};

// --- helpers -----------------------------------------------------------------

fn full(s: &str) -> FullJid {
    s.parse().unwrap()
}

fn romeo() -> BareJid {
    "romeo@montague.example".parse().unwrap()
}

const GARDEN: SessionId = 1;
const HOME: SessionId = 2;
const PHONE: SessionId = 3;

fn garden() -> FullJid {
    full("romeo@montague.example/garden")
}

fn home() -> FullJid {
    full("romeo@montague.example/home")
}

fn phone() -> FullJid {
    full("romeo@montague.example/phone")
}

fn enable_iq() -> Stanza {
    stanza(
        "<iq xmlns='jabber:client' from='romeo@montague.example/garden' id='enable1' type='set'>
           <enable xmlns='urn:xmpp:carbons:2'/></iq>",
    )
}

/// Romeo's garden, home and phone; `enabled` have carbons on.
fn sessions(enabled: &[(SessionId, FullJid)]) -> CarbonsSessions {
    let mut s = CarbonsSessions::new();
    for (id, jid) in enabled {
        s.enable(*id, jid);
    }
    s
}

/// XEP-0280 Example 9: Juliet sends Romeo a directed message.
fn juliet_to_garden() -> Stanza {
    stanza(
        "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>
           <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
           <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
         </message>",
    )
}

/// XEP-0280 Example 12: Romeo responds to Juliet.
fn romeo_to_juliet() -> Stanza {
    stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example/home' to='juliet@capulet.example/balcony' type='chat'>
           <body>Neither, fair saint, if either thee dislike.</body>
           <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
         </message>",
    )
}

// --- §4, §5 enable / disable ---------------------------------------------------------

#[test]
fn enable_and_disable_xep_examples_3_4_6_7() {
    let mut carbons = CarbonsSessions::new();
    let reply = carbons.handle_iq(GARDEN, &garden(), &enable_iq()).unwrap();
    // Example 4 (the reply's 'from' is absent here: the iq had no 'to').
    assert_eq!(
        reply,
        stanza(
            "<iq xmlns='jabber:client' id='enable1' to='romeo@montague.example/garden' type='result'/>"
        )
    );
    assert!(carbons.is_enabled(GARDEN, &garden()));
    assert!(!carbons.is_enabled(HOME, &home()));
    // §10.1: a second enable is a plain result.
    let again = carbons.handle_iq(GARDEN, &garden(), &enable_iq()).unwrap();
    assert_eq!(again.type_attr(), Some("result"));
    assert_eq!(
        carbons.enabled_sessions(&romeo()).collect::<Vec<_>>(),
        vec![(GARDEN, &garden())]
    );
    let disable = stanza(
        "<iq xmlns='jabber:client' from='romeo@montague.example/garden' id='disable1' type='set'>
           <disable xmlns='urn:xmpp:carbons:2'/></iq>",
    );
    let reply = carbons.handle_iq(GARDEN, &garden(), &disable).unwrap();
    assert_eq!(
        reply,
        stanza(
            "<iq xmlns='jabber:client' id='disable1' to='romeo@montague.example/garden' type='result'/>"
        )
    );
    assert!(!carbons.is_enabled(GARDEN, &garden()));
    assert_eq!(
        carbons
            .handle_iq(GARDEN, &garden(), &disable)
            .unwrap()
            .type_attr(),
        Some("result")
    );
    assert_eq!(carbons.enabled_sessions(&romeo()).count(), 0);
}

#[test]
fn enable_addressed_to_own_bare_jid_works_to_another_account_is_not_allowed() {
    let mut carbons = CarbonsSessions::new();
    let own = stanza(
        "<iq xmlns='jabber:client' id='e' type='set' to='romeo@montague.example'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
    );
    let reply = carbons.handle_iq(GARDEN, &garden(), &own).unwrap();
    assert_eq!(reply.type_attr(), Some("result"));
    assert_eq!(reply.from(), Some("romeo@montague.example"));
    // Example 8: disabling another's carbons.
    let foreign = stanza(
        "<iq xmlns='jabber:client' id='disable1' type='set' to='juliet@capulet.example'><disable xmlns='urn:xmpp:carbons:2'/></iq>",
    );
    let reply = carbons.handle_iq(GARDEN, &garden(), &foreign).unwrap();
    assert_eq!(
        reply.error().unwrap().condition,
        StanzaErrorCondition::NotAllowed
    );
    assert!(carbons.is_enabled(GARDEN, &garden()), "unchanged");
}

#[test]
fn malformed_requests_and_other_iqs() {
    let mut carbons = CarbonsSessions::new();
    for bad in [
        "<iq xmlns='jabber:client' id='g' type='get'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
        "<iq xmlns='jabber:client' id='g' type='set'><private xmlns='urn:xmpp:carbons:2'/></iq>",
        "<iq xmlns='jabber:client' id='g' type='set'><enable xmlns='urn:xmpp:carbons:2'/><disable xmlns='urn:xmpp:carbons:2'/></iq>",
    ] {
        let reply = carbons.handle_iq(GARDEN, &garden(), &stanza(bad)).unwrap();
        assert_eq!(
            reply.error().unwrap().condition,
            StanzaErrorCondition::BadRequest,
            "{bad}"
        );
    }
    assert_eq!(carbons.enabled_sessions(&romeo()).count(), 0);
    for none in [
        "<iq xmlns='jabber:client' id='r' type='result'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
        "<iq xmlns='jabber:client' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<message xmlns='jabber:client'><enable xmlns='urn:xmpp:carbons:2'/></message>",
    ] {
        assert_eq!(
            carbons.handle_iq(GARDEN, &garden(), &stanza(none)),
            None,
            "{none}"
        );
    }
    for request in [CarbonsRequest::Enable, CarbonsRequest::Disable] {
        let iq = Stanza::iq(
            xmpp_sansio::stanza::IqType::Set,
            None,
            "x",
            request.to_element(),
        );
        assert_eq!(CarbonsRequest::from_iq(&iq), Some(Ok(request)));
    }
    assert_eq!(FEATURES, &[NS_CARBONS]);
}

// --- §6.1 eligibility -------------------------------------------------------------------

#[test]
fn eligibility_rules_section_6_1() {
    use Direction::{Received, Sent};
    // (message, sent eligible, received eligible)
    let table = [
        ("<message xmlns='jabber:client' type='chat'/>", true, true),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client'><body>b</body></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client' type='normal'><body>b</body></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client' type='normal'><subject>s</subject></message>",
            false,
            false,
        ),
        (
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='1'/></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client'><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client' type='headline'><body>b</body></message>",
            false,
            false,
        ),
        (
            "<message xmlns='jabber:client' type='groupchat'><body>b</body></message>",
            false,
            false,
        ),
        (
            "<message xmlns='jabber:client' type='error'><body>b</body></message>",
            false,
            false,
        ),
        // private (with or without no-copy), no-copy alone
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>",
            false,
            false,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><private xmlns='urn:xmpp:carbons:2'/></message>",
            false,
            false,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><no-copy xmlns='urn:xmpp:hints'/></message>",
            false,
            false,
        ),
        // already a carbon
        (
            "<message xmlns='jabber:client' type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>",
            false,
            false,
        ),
        // MUC: private messages copied when sent, not when received
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            true,
            false,
        ),
        // MUC invitations, mediated and direct (XEP-0249)
        (
            "<message xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='crone1@shakespeare.lit/desktop'/></x></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client'><x xmlns='jabber:x:conference' jid='darkcave@macbeth.shakespeare.lit'/></message>",
            true,
            true,
        ),
        (
            "<message xmlns='jabber:client' type='headline'><x xmlns='jabber:x:conference' jid='darkcave@macbeth.shakespeare.lit'/></message>",
            true,
            true,
        ),
        ("<presence xmlns='jabber:client'/>", false, false),
    ];
    for (text, sent, received) in table {
        let m = stanza(text);
        assert_eq!(is_eligible(&m, Sent), sent, "sent: {text}");
        assert_eq!(is_eligible(&m, Received), received, "received: {text}");
    }
}

// --- §7 received ------------------------------------------------------------------------

#[test]
fn received_copy_is_xep_example_10() {
    let carbons = sessions(&[(GARDEN, garden()), (HOME, home())]);
    let message = juliet_to_garden();
    let romeo = romeo();
    let route = MessageRoute {
        sender: None,
        recipient: Some((&romeo, &[GARDEN])),
    };
    let copies = carbons.copies(&message, &route);
    assert_eq!(copies.len(), 1, "garden got the original, home a copy");
    assert_eq!(copies[0].session, HOME);
    // Example 10.
    let expected = stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example' to='romeo@montague.example/home' type='chat'>
           <received xmlns='urn:xmpp:carbons:2'>
             <forwarded xmlns='urn:xmpp:forward:0'>
               <message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>
                 <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
                 <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
               </message>
             </forwarded>
           </received>
         </message>",
    );
    assert_eq!(copies[0].stanza, expected);
}

#[test]
fn received_copies_go_only_to_enabled_sessions_that_missed_the_original() {
    let carbons = sessions(&[(GARDEN, garden()), (PHONE, phone())]);
    let message = stanza(
        "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat'><body>b</body></message>",
    );
    let romeo = romeo();
    // Delivered to garden and home (tie on priority): phone gets a copy, home
    // (carbons off) nothing.
    let copies = carbons.copies(
        &message,
        &MessageRoute {
            sender: None,
            recipient: Some((&romeo, &[GARDEN, HOME])),
        },
    );
    assert_eq!(
        copies.iter().map(|c| c.session).collect::<Vec<_>>(),
        vec![PHONE]
    );
    assert_eq!(copies[0].stanza.to(), Some("romeo@montague.example/phone"));
    // Stored offline (nobody got the original): every enabled session.
    let copies = carbons.copies(
        &message,
        &MessageRoute {
            sender: None,
            recipient: Some((&romeo, &[])),
        },
    );
    assert_eq!(
        copies.iter().map(|c| c.session).collect::<Vec<_>>(),
        vec![GARDEN, PHONE]
    );
    // A normal message keeps no type on the wrapper.
    let normal = stanza(
        "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example'><body>b</body></message>",
    );
    let copies = carbons.copies(
        &normal,
        &MessageRoute {
            sender: None,
            recipient: Some((&romeo, &[GARDEN])),
        },
    );
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].stanza.type_attr(), None);
}

// --- §8 sent -----------------------------------------------------------------------

#[test]
fn sent_copy_is_xep_example_13_and_skips_the_sender() {
    // Home (the sender) has carbons on too: it gets no copy of its own message.
    let carbons = sessions(&[(GARDEN, garden()), (HOME, home())]);
    let message = romeo_to_juliet();
    let home = home();
    let copies = carbons.copies(
        &message,
        &MessageRoute {
            sender: Some((HOME, &home)),
            recipient: None,
        },
    );
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].session, GARDEN);
    // Example 13.
    let expected = stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example' to='romeo@montague.example/garden' type='chat'>
           <sent xmlns='urn:xmpp:carbons:2'>
             <forwarded xmlns='urn:xmpp:forward:0'>
               <message xmlns='jabber:client' to='juliet@capulet.example/balcony' from='romeo@montague.example/home' type='chat'>
                 <body>Neither, fair saint, if either thee dislike.</body>
                 <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
               </message>
             </forwarded>
           </sent>
         </message>",
    );
    assert_eq!(copies[0].stanza, expected);
    // §8: irrespective of whether the sender enabled carbons.
    let only_garden = sessions(&[(GARDEN, garden())]);
    assert_eq!(
        only_garden
            .copies(
                &message,
                &MessageRoute {
                    sender: Some((HOME, &home)),
                    recipient: None
                }
            )
            .len(),
        1
    );
    // Nobody else enabled: nothing.
    let only_home = sessions(&[(HOME, home.clone())]);
    assert!(
        only_home
            .copies(
                &message,
                &MessageRoute {
                    sender: Some((HOME, &home)),
                    recipient: None
                }
            )
            .is_empty()
    );
}

#[test]
fn local_to_local_gives_sent_and_received_copies_to_each_side() {
    let mut carbons = sessions(&[(GARDEN, garden()), (HOME, home())]);
    let balcony = full("juliet@capulet.example/balcony");
    let chamber = full("juliet@capulet.example/chamber");
    carbons.enable(10, &balcony);
    carbons.enable(11, &chamber);
    let juliet: BareJid = "juliet@capulet.example".parse().unwrap();
    let message = romeo_to_juliet();
    let home = home();
    let copies = carbons.copies(
        &message,
        &MessageRoute {
            sender: Some((HOME, &home)),
            recipient: Some((&juliet, &[10])),
        },
    );
    let summary: Vec<(SessionId, Option<&str>, bool)> = copies
        .iter()
        .map(|c| {
            (
                c.session,
                c.stanza.from(),
                c.stanza.element().has_child("sent", NS_CARBONS),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (GARDEN, Some("romeo@montague.example"), true),
            (11, Some("juliet@capulet.example"), false),
        ]
    );
}

#[test]
fn message_to_own_account_gives_one_received_copy_per_other_session() {
    let carbons = sessions(&[(GARDEN, garden()), (HOME, home()), (PHONE, phone())]);
    let note = stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example/home' to='romeo@montague.example' type='chat'><body>note</body></message>",
    );
    let home = home();
    let romeo = romeo();
    let copies = carbons.copies(
        &note,
        &MessageRoute {
            sender: Some((HOME, &home)),
            recipient: Some((&romeo, &[GARDEN])),
        },
    );
    assert_eq!(
        copies.iter().map(|c| c.session).collect::<Vec<_>>(),
        vec![PHONE]
    );
    assert!(copies[0].stanza.element().has_child("received", NS_CARBONS));
}

// --- §9 private ----------------------------------------------------------------------

#[test]
fn private_messages_are_not_copied_and_keep_private_xep_examples_14_15() {
    let carbons = sessions(&[(GARDEN, garden()), (HOME, home()), (PHONE, phone())]);
    let message = stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example/home' to='juliet@capulet.example/home' type='chat'>
           <body>Neither, fair saint, if either thee dislike.</body>
           <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
           <private xmlns='urn:xmpp:carbons:2'/>
           <no-copy xmlns='urn:xmpp:hints'/>
         </message>",
    );
    let original = message.clone();
    let home = home();
    let romeo = romeo();
    assert!(
        carbons
            .copies(
                &message,
                &MessageRoute {
                    sender: Some((HOME, &home)),
                    recipient: Some((&romeo, &[]))
                }
            )
            .is_empty()
    );
    // Example 15: the original goes out unchanged, <private/> included
    // (XEP-0280 1.0 no longer strips it).
    assert_eq!(message, original);
    assert!(message.element().has_child("private", NS_CARBONS));
}

// --- §11 client side ------------------------------------------------------------------

#[test]
fn client_unwraps_own_carbons_and_rejects_impersonation_xep_example_11() {
    let romeo = romeo();
    let copy = wrap(Direction::Received, &romeo, &home(), &juliet_to_garden());
    let carbon = Carbon::from_message(&romeo, &copy).unwrap().unwrap();
    assert_eq!(carbon.direction, Direction::Received);
    assert_eq!(carbon.message, juliet_to_garden());
    let sent = wrap(Direction::Sent, &romeo, &garden(), &romeo_to_juliet());
    assert_eq!(
        Carbon::from_message(&romeo, &sent)
            .unwrap()
            .unwrap()
            .direction,
        Direction::Sent
    );
    // Example 11: Tybalt's impersonation attempt.
    let spoof = stanza(
        "<message xmlns='jabber:client' from='tybalt@capulet.example/home' to='romeo@montague.example' type='chat'>
           <received xmlns='urn:xmpp:carbons:2'>
             <forwarded xmlns='urn:xmpp:forward:0'>
               <message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>
                 <body>Thou shall meet me tonite, at our house's hall!</body>
               </message>
             </forwarded>
           </received>
         </message>",
    );
    assert_eq!(
        Carbon::from_message(&romeo, &spoof),
        Some(Err(CarbonError::NotFromOwnAccount))
    );
    // From one of Romeo's own full JIDs, or without 'from': not the bare JID either.
    let mut from_resource = copy.clone();
    from_resource.set_from(Some("romeo@montague.example/home"));
    assert_eq!(
        Carbon::from_message(&romeo, &from_resource),
        Some(Err(CarbonError::NotFromOwnAccount))
    );
    let mut no_from = copy.clone();
    no_from.set_from(None);
    assert_eq!(
        Carbon::from_message(&romeo, &no_from),
        Some(Err(CarbonError::NotFromOwnAccount))
    );
    let empty = stanza(
        "<message xmlns='jabber:client' from='romeo@montague.example'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></sent></message>",
    );
    assert_eq!(
        Carbon::from_message(&romeo, &empty),
        Some(Err(CarbonError::Malformed))
    );
    assert_eq!(Carbon::from_message(&romeo, &juliet_to_garden()), None);
}

#[test]
fn ended_sessions_get_no_copies() {
    let mut carbons = sessions(&[(GARDEN, garden()), (PHONE, phone())]);
    carbons.session_ended(PHONE, &phone());
    let romeo = romeo();
    let copies = carbons.copies(
        &juliet_to_garden(),
        &MessageRoute {
            sender: None,
            recipient: Some((&romeo, &[])),
        },
    );
    assert_eq!(
        copies.iter().map(|c| c.session).collect::<Vec<_>>(),
        vec![GARDEN]
    );
}

#[test]
fn moved_sessions_keep_carbons() {
    let mut carbons = sessions(&[(GARDEN, garden())]);
    carbons.session_moved(GARDEN, 40, &garden());
    carbons.session_moved(PHONE, 41, &phone());
    assert!(carbons.is_enabled(40, &garden()));
    assert!(!carbons.is_enabled(GARDEN, &garden()));
    assert!(!carbons.is_enabled(41, &phone()));
}

/// With the router: a chat to Romeo's bare JID goes to the most available
/// session; his other carbons-enabled sessions get `<received/>` copies.
#[test]
fn fan_out_around_the_router() {
    let mut router = Router::new(["montague.example".to_owned(), "capulet.example".to_owned()]);
    let juliet = full("juliet@capulet.example/balcony");
    let accounts: HashSet<BareJid> = [romeo(), juliet.to_bare()].into();
    router.bind(9, juliet.clone(), ConflictPolicy::RefuseNew);
    router.set_presence(9, true, 0);
    for (id, jid, priority) in [
        (GARDEN, garden(), 5),
        (HOME, home(), 1),
        (PHONE, phone(), -1),
    ] {
        router.bind(id, jid, ConflictPolicy::RefuseNew);
        router.set_presence(id, true, priority);
    }
    let carbons = sessions(&[(GARDEN, garden()), (HOME, home()), (PHONE, phone())]);
    let message = stanza(
        "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat'><body>b</body></message>",
    );
    let Decision::Deliver(delivered) = router.route(&juliet, &message, &accounts) else {
        panic!("delivered");
    };
    assert_eq!(delivered, vec![GARDEN]);
    let romeo = romeo();
    let copies = carbons.copies(
        &message,
        &MessageRoute {
            sender: Some((9, &juliet)),
            recipient: Some((&romeo, &delivered)),
        },
    );
    // Juliet's session has carbons off: no sent copies; Romeo's home and
    // (negative-priority) phone get received copies.
    assert_eq!(
        copies.iter().map(|c| c.session).collect::<Vec<_>>(),
        vec![HOME, PHONE]
    );
}

// --- any input ---------------------------------------------------------------------

proptest! {
    /// Arbitrary (often malformed) stanzas: nothing panics; iq replies keep
    /// the id; every copy goes to a distinct enabled session that is neither
    /// the sender nor a receiver of the original, comes from the account's
    /// bare JID, and unwraps to the original.
    #[test]
    fn any_stanza_fans_out_without_panic(s in arb_stanza()) {
        let mut carbons = sessions(&[(GARDEN, garden()), (HOME, home()), (PHONE, phone())]);
        let juliet = full("juliet@capulet.example/balcony");
        carbons.enable(10, &juliet);
        let romeo = romeo();
        let juliet_bare = juliet.to_bare();
        let home = home();
        let routes = [
            MessageRoute { sender: Some((HOME, &home)), recipient: Some((&juliet_bare, &[])) },
            MessageRoute { sender: Some((10, &juliet)), recipient: Some((&romeo, &[GARDEN])) },
            MessageRoute { sender: Some((HOME, &home)), recipient: Some((&romeo, &[PHONE])) },
        ];
        for route in routes {
            let copies = carbons.copies(&s, &route);
            let mut seen = HashSet::new();
            for copy in &copies {
                prop_assert!(seen.insert(copy.session));
                prop_assert!(Some(copy.session) != route.sender.map(|(id, _)| id));
                prop_assert!(!route.recipient.is_some_and(|(_, d)| d.contains(&copy.session)));
                let owner: BareJid = copy.stanza.from().unwrap().parse().unwrap();
                let carbon = Carbon::from_message(&owner, &copy.stanza).unwrap().unwrap();
                prop_assert_eq!(&carbon.message, &s);
            }
        }
        let _ = Carbon::from_message(&romeo, &s);
        if let Some(reply) = carbons.handle_iq(GARDEN, &garden(), &s) {
            prop_assert_eq!(reply.id(), s.id());
            prop_assert!(matches!(reply.type_attr(), Some("result" | "error")));
        }
    }
}
