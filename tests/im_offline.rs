//! XEP-0160 offline messages with XEP-0203 delay and XEP-0082 stamps
//! (`src/im/offline.rs`, `src/im/delay.rs`): the XEP-0160 and XEP-0203
//! examples as vectors, the message-type table of XEP-0160 §3, the queue
//! bounds, delivery on presence, and the whole path through the router.

mod im_xep_common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use im_xep_common::{arb_stanza, stanza, xml};
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::error::{StanzaError, StanzaErrorCondition};
use xmpp_sansio::im::delay::{
    BeforeUnixEpoch, Delay, DelayError, InvalidTimestamp, NS_DELAY, Timestamp, remove_forged_delays,
};
use xmpp_sansio::im::offline::{
    Admission, FEATURE_MSGOFFLINE, MemoryOfflineStore, OfflineClass, OfflineDecision,
    OfflineLimits, OfflinePolicy, OfflineStore, QueueUsage, classify, is_delivery_trigger,
    offline_delay,
};
use xmpp_sansio::router::{ConflictPolicy, Decision, Router};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::xml::StreamWriter;
use xmpp_sansio::{BareJid, FullJid, Jid};

// --- helpers -----------------------------------------------------------------

fn juliet() -> BareJid {
    "juliet@capulet.com".parse().unwrap()
}

fn capulet() -> Jid {
    "capulet.com".parse().unwrap()
}

/// 2002-09-10T23:08:25Z, the stamp of the XEP-0160 and XEP-0203 examples.
fn stamp() -> Timestamp {
    Timestamp::from_unix_seconds(1_031_699_305)
}

fn policy(limits: OfflineLimits) -> OfflinePolicy {
    OfflinePolicy::new(capulet(), limits)
}

fn chat(body: &str) -> Stanza {
    let mut m = Stanza::chat(&Jid::Bare(juliet()), body);
    m.set_from(Some("romeo@montague.net/orchard"));
    m
}

fn size_of(stanza: &Stanza) -> usize {
    let mut out = bytes::BytesMut::new();
    StreamWriter::new("jabber:client")
        .write_element(stanza.element(), &mut out)
        .unwrap();
    out.len()
}

fn unavailable() -> StanzaError {
    StanzaError::new(StanzaErrorCondition::ServiceUnavailable)
}

// --- XEP-0082 timestamps --------------------------------------------------------

#[test]
fn timestamps_format_as_xep_0082_utc() {
    assert_eq!(stamp().to_string(), "2002-09-10T23:08:25Z");
    assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
    assert_eq!(
        Timestamp::from_unix_millis(951_782_400_123).to_string(),
        "2000-02-29T00:00:00.123Z"
    );
    assert_eq!(
        Timestamp::from_unix_millis(253_402_300_799_999).to_string(),
        "9999-12-31T23:59:59.999Z"
    );
    assert_eq!(
        Timestamp::from_unix_seconds(u64::MAX).to_string(),
        Timestamp::from_unix_millis(u64::MAX).to_string(),
        "saturates"
    );
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_031_699_305, 456_789_000);
    assert_eq!(
        Timestamp::try_from(t).unwrap().to_string(),
        "2002-09-10T23:08:25.456Z"
    );
    assert_eq!(
        Timestamp::try_from(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
        Err(BeforeUnixEpoch)
    );
}

#[test]
fn timestamps_parse_the_xep_0082_datetime_profile() {
    let t = stamp();
    for text in [
        "2002-09-10T23:08:25Z",
        "2002-09-10T18:08:25-05:00",
        "2002-09-11T01:08:25+02:00",
        "2002-09-10T23:08:25.000Z",
        "2002-09-10T23:08:25.0009Z",
    ] {
        assert_eq!(text.parse::<Timestamp>(), Ok(t), "{text}");
    }
    assert_eq!(
        "1969-07-20T21:56:15.3Z".parse::<Timestamp>(),
        Err(InvalidTimestamp),
        "before 1970"
    );
    assert_eq!(
        "2000-02-29T00:00:00.12Z"
            .parse::<Timestamp>()
            .map(Timestamp::unix_millis),
        Ok(951_782_400_120)
    );
    for bad in [
        "",
        "2002-09-10",
        "2002-09-10T23:08:25",
        "2002-13-10T23:08:25Z",
        "2001-02-29T00:00:00Z",
        "2002-09-31T00:00:00Z",
        "2002-09-10T24:00:00Z",
        "2002-09-10T23:60:00Z",
        "2002-09-10T23:08:60Z",
        "2002-09-10T23:08:25.Z",
        "2002-09-10T23:08:25+5:00",
        "2002-09-10T23:08:25+24:00",
        "02-09-10T23:08:25Z",
        "2002-9-10T23:08:25Z",
        "2002-09-10 23:08:25Z",
        "+002-09-10T23:08:25Z",
        "2002-09-10T23:08:2éZ",
        "2002-09-10T23:08:25é:00",
    ] {
        assert_eq!(bad.parse::<Timestamp>(), Err(InvalidTimestamp), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn timestamp_display_parses_back(millis in 0u64..=253_402_300_799_999) {
        let t = Timestamp::from_unix_millis(millis);
        prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
    }

    #[test]
    fn timestamp_parse_never_panics(s in "\\PC{0,40}", t in "[0-9T:.Z+-]{0,30}") {
        let _ = s.parse::<Timestamp>();
        let _ = t.parse::<Timestamp>();
    }
}

// --- XEP-0203 delay ---------------------------------------------------------------

#[test]
fn delay_element_xep_0203_example_1() {
    let delay = Delay::new(stamp())
        .with_from(capulet())
        .with_reason("Offline Storage");
    assert_eq!(
        delay.to_element(),
        xml(
            "<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay>"
        )
    );
    assert_eq!(Delay::from_element(&delay.to_element()), Ok(delay));
    // Example 2: presence, no reason.
    let presence = stanza(
        "<presence xmlns='jabber:client' from='juliet@capulet.com/balcony' to='romeo@montague.net'>
           <status>anon!</status><show>xa</show><priority>1</priority>
           <delay xmlns='urn:xmpp:delay' from='juliet@capulet.com/balcony' stamp='2002-09-10T23:41:07Z'/>
         </presence>",
    );
    let delay = Delay::of(&presence).unwrap().unwrap();
    assert_eq!(delay.stamp.to_string(), "2002-09-10T23:41:07Z");
    assert_eq!(delay.from.unwrap().as_str(), "juliet@capulet.com/balcony");
    assert_eq!(delay.reason, None);
    assert_eq!(
        Delay::from_element(&xml("<delay xmlns='urn:xmpp:delay'/>")),
        Err(DelayError::BadStamp)
    );
    assert_eq!(
        Delay::from_element(&xml(
            "<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:41:07Z' from='a@@b'/>"
        )),
        Err(DelayError::BadFrom)
    );
    assert_eq!(
        Delay::from_element(&xml(
            "<delay xmlns='jabber:x:delay' stamp='20020910T23:41:07'/>"
        )),
        Err(DelayError::NotADelay)
    );
}

#[test]
fn forged_server_delays_are_removed_others_kept() {
    let mut m = stanza(
        "<message xmlns='jabber:client' type='chat'><body>b</body>
           <delay xmlns='urn:xmpp:delay' from='Capulet.COM' stamp='1999-01-01T00:00:00Z'/>
           <delay xmlns='urn:xmpp:delay' from='coven@chat.shakespeare.lit' stamp='2002-09-10T23:05:37Z'/>
         </message>",
    );
    assert_eq!(remove_forged_delays(&mut m, &capulet()), 1);
    assert_eq!(
        m.element(),
        &xml("<message xmlns='jabber:client' type='chat'><body>b</body>
                <delay xmlns='urn:xmpp:delay' from='coven@chat.shakespeare.lit' stamp='2002-09-10T23:05:37Z'/>
              </message>")
    );
    assert_eq!(remove_forged_delays(&mut m, &capulet()), 0);
}

// --- XEP-0160 §3: which messages are stored ------------------------------------------

#[test]
fn message_type_table_xep_0160_section_3() {
    let table = [
        (
            "<message xmlns='jabber:client'><body>b</body></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='normal'><subject>s</subject></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><request xmlns='urn:xmpp:receipts'/><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            OfflineClass::Discard,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread><origin-id xmlns='urn:xmpp:sid:0' id='1'/></message>",
            OfflineClass::Discard,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><body>b</body></message>",
            OfflineClass::Store,
        ),
        ("<message xmlns='jabber:client'/>", OfflineClass::Discard),
        (
            "<message xmlns='jabber:client' type='groupchat'><body>b</body></message>",
            OfflineClass::Refuse,
        ),
        (
            "<message xmlns='jabber:client' type='groupchat'><body>b</body><store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Refuse,
        ),
        (
            "<message xmlns='jabber:client' type='headline'><body>b</body></message>",
            OfflineClass::Discard,
        ),
        (
            "<message xmlns='jabber:client' type='headline'><body>b</body><store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='error'><body>b</body><store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Discard,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><no-store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Refuse,
        ),
        (
            "<message xmlns='jabber:client' type='headline'><no-store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Discard,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Store,
        ),
        (
            "<message xmlns='jabber:client' type='chat'><body>b</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
            OfflineClass::Store,
        ),
        ("<presence xmlns='jabber:client'/>", OfflineClass::Discard),
        (
            "<iq xmlns='jabber:client' type='set' id='1'><body>b</body></iq>",
            OfflineClass::Discard,
        ),
    ];
    for (text, expected) in table {
        assert_eq!(classify(&stanza(text)), expected, "{text}");
    }
}

// --- admission, limits ----------------------------------------------------------------

#[test]
fn stored_message_is_the_xep_0160_example_3() {
    // Example 1 (the sender's message), stored and delivered as Example 3.
    let body = "\n    O blessed, blessed night! I am afeard.\n    Being in night, all this is but a dream,\n    Too flattering-sweet to be substantial.\n  ";
    let mut message = Stanza::new(xmpp_sansio::stanza::StanzaKind::Message, "jabber:client");
    message.set_from(Some("romeo@montague.net/orchard"));
    message.set_to(Some("juliet@capulet.com"));
    let mut b = Element::bare("body", "jabber:client");
    b.append_text(body);
    message.element_mut().append_child(b);
    let Admission::Store(stored) =
        policy(OfflineLimits::default()).admit(&message, QueueUsage::default(), stamp())
    else {
        panic!("stored");
    };
    let mut expected = message.clone();
    expected.element_mut().append_child(xml(
        "<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay>",
    ));
    assert_eq!(stored.message, expected);
    assert_eq!(stored.stored_at, stamp());
    assert_eq!(stored.size, size_of(&expected));
    assert_eq!(
        offline_delay(&stored.message, &capulet()).unwrap().stamp,
        stamp()
    );
}

#[test]
fn admission_strips_forged_delay_and_bounces_what_is_refused() {
    let p = policy(OfflineLimits::default());
    let forged = stanza(
        "<message xmlns='jabber:client' type='chat' to='juliet@capulet.com'><body>b</body>
           <delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='1999-01-01T00:00:00Z'/></message>",
    );
    let Admission::Store(stored) = p.admit(&forged, QueueUsage::default(), stamp()) else {
        panic!("stored");
    };
    let delays: Vec<Delay> = stored
        .message
        .element()
        .children()
        .filter(|c| c.is("delay", NS_DELAY))
        .map(|c| Delay::from_element(c).unwrap())
        .collect();
    assert_eq!(delays.len(), 1);
    assert_eq!(delays[0].stamp, stamp());
    let groupchat =
        stanza("<message xmlns='jabber:client' type='groupchat'><body>b</body></message>");
    assert_eq!(
        p.admit(&groupchat, QueueUsage::default(), stamp()),
        Admission::Bounce(unavailable())
    );
    let typing = stanza(
        "<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(
        p.admit(&typing, QueueUsage::default(), stamp()),
        Admission::Discard
    );
}

#[test]
fn queue_bounds_bounce_service_unavailable() {
    let mut store = MemoryOfflineStore::new();
    let p = policy(OfflineLimits {
        max_messages: 2,
        max_bytes: 10_000,
    });
    let user = juliet();
    for i in 0..2 {
        assert_eq!(
            p.store(&mut store, &user, &chat(&format!("m{i}")), stamp()),
            Ok(OfflineDecision::Stored)
        );
    }
    assert_eq!(
        p.store(&mut store, &user, &chat("m2"), stamp()),
        Ok(OfflineDecision::Bounce(unavailable()))
    );
    let usage = store.usage(&user).unwrap();
    assert_eq!(usage.messages, 2);
    assert_eq!(
        usage.bytes,
        store.peek(&user).map(|m| m.size).sum::<usize>()
    );
    // Another account has its own queue.
    let nurse: BareJid = "nurse@capulet.com".parse().unwrap();
    assert_eq!(
        p.store(&mut store, &nurse, &chat("n"), stamp()),
        Ok(OfflineDecision::Stored)
    );
    assert_eq!(store.accounts(), 2);

    // Bytes: exactly at the bound fits; one byte more does not.
    let one =
        match policy(OfflineLimits::default()).admit(&chat("x"), QueueUsage::default(), stamp()) {
            Admission::Store(s) => s.size,
            other => panic!("{other:?}"),
        };
    let exact = policy(OfflineLimits {
        max_messages: 10,
        max_bytes: 2 * one,
    });
    let used = QueueUsage {
        messages: 1,
        bytes: one,
    };
    assert!(matches!(
        exact.admit(&chat("x"), used, stamp()),
        Admission::Store(_)
    ));
    let over = QueueUsage {
        messages: 1,
        bytes: one + 1,
    };
    assert_eq!(
        exact.admit(&chat("x"), over, stamp()),
        Admission::Bounce(unavailable())
    );
    // A message larger than the whole queue.
    let tiny = policy(OfflineLimits {
        max_messages: 10,
        max_bytes: one - 1,
    });
    assert_eq!(
        tiny.admit(&chat("x"), QueueUsage::default(), stamp()),
        Admission::Bounce(unavailable())
    );
    // The bounce is an error reply RFC 6120 §8.3.1 style.
    let reply = chat("x").error_reply(&unavailable()).unwrap();
    assert_eq!(reply.to(), Some("romeo@montague.net/orchard"));
    assert_eq!(
        reply.error().unwrap().condition,
        StanzaErrorCondition::ServiceUnavailable
    );
}

#[test]
fn delivery_takes_the_queue_oldest_first() {
    let mut store = MemoryOfflineStore::new();
    let p = policy(OfflineLimits::default());
    let user = juliet();
    for (i, body) in ["first", "second", "third"].into_iter().enumerate() {
        let now = Timestamp::from_unix_seconds(1_031_699_305 + i as u64);
        assert_eq!(
            p.store(&mut store, &user, &chat(body), now),
            Ok(OfflineDecision::Stored)
        );
    }
    let delivered = p.take_for_delivery(&mut store, &user).unwrap();
    let bodies: Vec<String> = delivered
        .iter()
        .map(|m| {
            m.element()
                .get_child("body", "jabber:client")
                .unwrap()
                .text()
        })
        .collect();
    assert_eq!(bodies, vec!["first", "second", "third"]);
    let stamps: Vec<String> = delivered
        .iter()
        .map(|m| offline_delay(m, &capulet()).unwrap().stamp.to_string())
        .collect();
    assert_eq!(
        stamps,
        vec![
            "2002-09-10T23:08:25Z",
            "2002-09-10T23:08:26Z",
            "2002-09-10T23:08:27Z"
        ]
    );
    assert!(
        delivered
            .iter()
            .all(|m| m.to() == Some("juliet@capulet.com"))
    );
    assert_eq!(store.usage(&user), Ok(QueueUsage::default()));
    assert!(p.take_for_delivery(&mut store, &user).unwrap().is_empty());
    assert_eq!(store.accounts(), 0);
}

#[test]
fn delivery_trigger_is_the_first_non_negative_available_presence() {
    let table = [
        (false, "<presence xmlns='jabber:client'/>", true),
        (
            false,
            "<presence xmlns='jabber:client'><priority>1</priority></presence>",
            true,
        ),
        (
            false,
            "<presence xmlns='jabber:client'><priority>0</priority><show>away</show></presence>",
            true,
        ),
        (
            false,
            "<presence xmlns='jabber:client'><priority>-1</priority></presence>",
            false,
        ),
        (
            true,
            "<presence xmlns='jabber:client'><priority>5</priority></presence>",
            false,
        ),
        (
            false,
            "<presence xmlns='jabber:client' type='unavailable'/>",
            false,
        ),
        (
            false,
            "<presence xmlns='jabber:client' to='romeo@montague.net'/>",
            false,
        ),
        (
            false,
            "<presence xmlns='jabber:client' type='subscribe' to='romeo@montague.net'/>",
            false,
        ),
        (false, "<message xmlns='jabber:client'/>", false),
    ];
    for (was_non_negative, text, expected) in table {
        assert_eq!(
            is_delivery_trigger(was_non_negative, &stanza(text)),
            expected,
            "{was_non_negative} {text}"
        );
    }
    assert_eq!(FEATURE_MSGOFFLINE, "msgoffline");
}

/// The whole XEP-0160 §2 flow with the router: Romeo writes while Juliet is
/// offline, the router says StoreOffline, Juliet comes online, her initial
/// presence delivers the message with its delay.
#[test]
fn xep_0160_flow_through_the_router() {
    let mut router = Router::new(["capulet.com".to_owned(), "montague.net".to_owned()])
        .with_offline_storage(true);
    let accounts: HashSet<BareJid> = [juliet(), "romeo@montague.net".parse().unwrap()].into();
    let romeo: FullJid = "romeo@montague.net/orchard".parse().unwrap();
    router.bind(1, romeo.clone(), ConflictPolicy::RefuseNew);
    router.set_presence(1, true, 0);
    let message = chat("O blessed, blessed night!");
    let p = policy(OfflineLimits::default());
    let mut store = MemoryOfflineStore::new();

    let decision = router.route(&romeo, &message, &accounts);
    assert_eq!(decision, Decision::StoreOffline(juliet()));
    let Decision::StoreOffline(user) = decision else {
        unreachable!()
    };
    assert_eq!(
        p.store(&mut store, &user, &message, stamp()),
        Ok(OfflineDecision::Stored)
    );

    let balcony: FullJid = "juliet@capulet.com/balcony".parse().unwrap();
    router.bind(2, balcony.clone(), ConflictPolicy::RefuseNew);
    let initial = stanza(
        "<presence xmlns='jabber:client' from='juliet@capulet.com/balcony'><priority>1</priority></presence>",
    );
    let was_non_negative = router
        .session(2)
        .is_some_and(|s| s.available && s.priority >= 0);
    assert!(is_delivery_trigger(was_non_negative, &initial));
    router.set_presence(2, true, initial.priority().unwrap_or(0));
    let delivered = p.take_for_delivery(&mut store, &juliet()).unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].from(), Some("romeo@montague.net/orchard"));
    let delay = offline_delay(&delivered[0], &capulet()).unwrap();
    assert_eq!(delay.reason.as_deref(), Some("Offline Storage"));
    assert_eq!(delay.stamp.to_string(), "2002-09-10T23:08:25Z");
    // Now online: the next message is delivered, not stored.
    assert_eq!(
        router.route(&romeo, &message, &accounts),
        Decision::Deliver(vec![2])
    );
    // A second presence from the same session triggers nothing.
    let was_non_negative = router
        .session(2)
        .is_some_and(|s| s.available && s.priority >= 0);
    assert!(!is_delivery_trigger(was_non_negative, &initial));
}

// --- any input ---------------------------------------------------------------------

proptest! {
    /// Arbitrary (often malformed) stanzas stored over and over: nothing
    /// panics, the queue never exceeds its bounds, a bounce can always be
    /// sent, and every stored message carries exactly one delay from the
    /// server, at the end.
    #[test]
    fn any_stanza_is_classified_and_bounded_without_panic(s in arb_stanza()) {
        let limits = OfflineLimits { max_messages: 3, max_bytes: 2_000 };
        let p = policy(limits);
        let mut store = MemoryOfflineStore::new();
        let _ = Delay::of(&s);
        let _ = is_delivery_trigger(false, &s);
        for _ in 0..5 {
            match p.store(&mut store, &juliet(), &s, stamp()) {
                Ok(OfflineDecision::Bounce(error)) => {
                    prop_assert!(s.error_reply(&error).is_some());
                }
                Ok(OfflineDecision::Stored) => prop_assert_eq!(classify(&s), OfflineClass::Store),
                Ok(OfflineDecision::Discard) => prop_assert_eq!(classify(&s), OfflineClass::Discard),
                Err(never) => match never {},
            }
            let usage = store.usage(&juliet()).unwrap();
            prop_assert!(usage.messages <= limits.max_messages && usage.bytes <= limits.max_bytes);
        }
        for stored in store.peek(&juliet()) {
            let own: Vec<&Element> = stored
                .message
                .element()
                .children()
                .filter(|c| c.is("delay", NS_DELAY) && c.attr("from") == Some("capulet.com"))
                .collect();
            prop_assert_eq!(own.len(), 1);
            prop_assert_eq!(stored.message.element().children().last(), Some(own[0]));
        }
    }
}
