//! XEP-0191 Blocking Command (`src/im/blocking.rs`): the XEP's examples as
//! vectors (§3.2 blocklist, §3.3 block + pushes + the `<blocked/>` error,
//! §3.4 unblock, §3.5 unblock all), the §6 JID matching table, the
//! enforcement tables, and the presence side effects of §3.3/§3.4.

mod im_xep_common;

use im_xep_common::{arb_stanza, stanza, xml};
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::error::{StanzaError, StanzaErrorCondition, StanzaErrorType};
use xmpp_sansio::im::blocking::{
    BlockVerdict, BlockingRequest, BlockingSessions, Blocklist, NS_BLOCKING, NS_BLOCKING_ERRORS,
    PresenceView, blocked_error, check_inbound, check_outbound, item_matches,
};
use xmpp_sansio::router::SessionId;
use xmpp_sansio::stanza::{IqType, Stanza};
use xmpp_sansio::{BareJid, FullJid, Jid};

// --- helpers -----------------------------------------------------------------

fn jid(s: &str) -> Jid {
    s.parse().unwrap()
}

fn full(s: &str) -> FullJid {
    s.parse().unwrap()
}

fn bare(s: &str) -> BareJid {
    s.parse().unwrap()
}

const CHAMBER: SessionId = 1;
const BALCONY: SessionId = 2;
const HALL: SessionId = 3;

fn chamber() -> FullJid {
    full("juliet@capulet.com/chamber")
}

fn balcony() -> FullJid {
    full("juliet@capulet.com/balcony")
}

fn no_presence() -> PresenceView<'static> {
    PresenceView::default()
}

/// Chamber and balcony fetched the blocklist; hall did not.
fn interested_sessions(list: &mut Blocklist) -> BlockingSessions {
    let mut sessions = BlockingSessions::new();
    for (id, from) in [(CHAMBER, chamber()), (BALCONY, balcony())] {
        let get = stanza(
            "<iq xmlns='jabber:client' type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        );
        sessions
            .handle_iq(id, &from, &get, list, no_presence())
            .expect("a blocking iq");
    }
    sessions
}

fn condition(reply: &Stanza) -> StanzaErrorCondition {
    reply.error().expect("an error reply").condition
}

// --- §3.2 blocklist ----------------------------------------------------------

#[test]
fn blocklist_get_returns_items_xep_example_4() {
    let mut list: Blocklist = [jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        .into_iter()
        .collect();
    let mut sessions = BlockingSessions::new();
    let get = stanza(
        "<iq xmlns='jabber:client' type='get' id='blocklist1'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    let out = sessions
        .handle_iq(CHAMBER, &chamber(), &get, &mut list, no_presence())
        .unwrap();
    // XEP-0191 Example 4, items in the list's (prepared string) order.
    let expected = stanza(
        "<iq xmlns='jabber:client' type='result' id='blocklist1'>
           <blocklist xmlns='urn:xmpp:blocking'>
             <item jid='iago@shakespeare.lit'/>
             <item jid='romeo@montague.net'/>
           </blocklist>
         </iq>",
    );
    assert_eq!(out.reply, expected);
    assert!(out.pushes.is_empty() && !out.changed);
    assert_eq!(
        sessions
            .interested(&bare("juliet@capulet.com"))
            .collect::<Vec<_>>(),
        vec![(CHAMBER, &chamber())]
    );
}

#[test]
fn empty_blocklist_is_an_empty_element_xep_example_5() {
    let mut list = Blocklist::new();
    let get = stanza(
        "<iq xmlns='jabber:client' type='get' id='blocklist1'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &get, &mut list, no_presence())
        .unwrap();
    assert_eq!(
        out.reply,
        stanza(
            "<iq xmlns='jabber:client' type='result' id='blocklist1'><blocklist xmlns='urn:xmpp:blocking'/></iq>"
        )
    );
}

// --- §3.3 block ----------------------------------------------------------------

#[test]
fn block_answers_result_and_pushes_to_interested_resources_xep_examples_6_to_8() {
    let mut list = Blocklist::new();
    let mut sessions = interested_sessions(&mut list);
    let block = stanza(
        "<iq xmlns='jabber:client' from='juliet@capulet.com/chamber' type='set' id='block1'>
           <block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block>
         </iq>",
    );
    let out = sessions
        .handle_iq(CHAMBER, &chamber(), &block, &mut list, no_presence())
        .unwrap();
    // Example 7: an empty result (to the requester).
    assert_eq!(
        out.reply,
        stanza(
            "<iq xmlns='jabber:client' type='result' id='block1' to='juliet@capulet.com/chamber'/>"
        )
    );
    assert!(out.changed);
    assert_eq!(
        list.items().collect::<Vec<_>>(),
        vec![&jid("romeo@montague.net")]
    );
    // Example 8: one push per interested resource (the requester too), not to the hall.
    let expected_payload =
        xml("<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block>");
    let targets: Vec<SessionId> = out.pushes.iter().map(|(id, _)| *id).collect();
    assert_eq!(targets, vec![CHAMBER, BALCONY]);
    for ((_, push), to) in out.pushes.iter().zip([chamber(), balcony()]) {
        assert_eq!(push.type_attr(), Some("set"));
        assert_eq!(push.to(), Some(to.as_str()));
        assert_eq!(push.from(), None);
        assert_eq!(push.iq_payload(), Some(&expected_payload));
    }
    assert_ne!(
        out.pushes[0].1.id(),
        out.pushes[1].1.id(),
        "push ids differ"
    );
}

#[test]
fn block_several_items_prepared_and_deduplicated() {
    let mut list = Blocklist::new();
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'>
           <item jid='Romeo@Montague.NET'/><item jid='romeo@montague.net'/><item jid='iago@shakespeare.lit/x'/>
         </block></iq>",
    );
    assert_eq!(
        BlockingRequest::from_iq(&iq),
        Some(Ok(BlockingRequest::Block(vec![
            jid("romeo@montague.net"),
            jid("iago@shakespeare.lit/x")
        ])))
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, no_presence())
        .unwrap();
    assert!(out.reply.type_attr() == Some("result") && out.changed);
    assert_eq!(list.len(), 2);
    assert!(list.contains(&jid("romeo@montague.net")));
    // Blocking again: result, nothing changed, pushes still sent (none here: nobody fetched).
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, no_presence())
        .unwrap();
    assert!(out.reply.type_attr() == Some("result") && !out.changed);
}

#[test]
fn empty_block_is_bad_request() {
    let mut list = Blocklist::new();
    let mut sessions = interested_sessions(&mut list);
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'/></iq>",
    );
    let out = sessions
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, no_presence())
        .unwrap();
    assert_eq!(condition(&out.reply), StanzaErrorCondition::BadRequest);
    assert_eq!(out.reply.id(), Some("b"));
    assert!(out.pushes.is_empty() && !out.changed && list.is_empty());
}

#[test]
fn invalid_item_jid_is_jid_malformed_and_missing_jid_is_bad_request() {
    let mut list = Blocklist::new();
    let malformed = stanza(
        "<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'>
           <item jid='ok@example.com'/><item jid='a@b@c'/></block></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &malformed, &mut list, no_presence())
        .unwrap();
    assert_eq!(condition(&out.reply), StanzaErrorCondition::JidMalformed);
    assert_eq!(
        out.reply.error().unwrap().error_type,
        StanzaErrorType::Modify
    );
    assert!(list.is_empty(), "nothing is applied when one item is bad");
    let no_jid = stanza(
        "<iq xmlns='jabber:client' type='set' id='u'><unblock xmlns='urn:xmpp:blocking'><item/></unblock></iq>",
    );
    assert_eq!(
        BlockingRequest::from_iq(&no_jid)
            .unwrap()
            .unwrap_err()
            .condition,
        StanzaErrorCondition::BadRequest
    );
    let empty_jid = stanza(
        "<iq xmlns='jabber:client' type='set' id='u'><block xmlns='urn:xmpp:blocking'><item jid=''/></block></iq>",
    );
    assert_eq!(
        BlockingRequest::from_iq(&empty_jid)
            .unwrap()
            .unwrap_err()
            .condition,
        StanzaErrorCondition::JidMalformed
    );
}

#[test]
fn wrong_iq_type_extra_payload_and_unknown_element_are_bad_request() {
    for xml_text in [
        "<iq xmlns='jabber:client' type='get' id='x'><block xmlns='urn:xmpp:blocking'><item jid='a@b'/></block></iq>",
        "<iq xmlns='jabber:client' type='get' id='x'><unblock xmlns='urn:xmpp:blocking'/></iq>",
        "<iq xmlns='jabber:client' type='set' id='x'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        "<iq xmlns='jabber:client' type='set' id='x'><frobnicate xmlns='urn:xmpp:blocking'/></iq>",
        "<iq xmlns='jabber:client' type='get' id='x'><blocklist xmlns='urn:xmpp:blocking'/><ping xmlns='urn:xmpp:ping'/></iq>",
    ] {
        let iq = stanza(xml_text);
        assert_eq!(
            BlockingRequest::from_iq(&iq)
                .unwrap()
                .unwrap_err()
                .condition,
            StanzaErrorCondition::BadRequest,
            "{xml_text}"
        );
    }
}

#[test]
fn not_a_blocking_request_is_none() {
    let mut list = Blocklist::new();
    for xml_text in [
        "<iq xmlns='jabber:client' type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq xmlns='jabber:client' type='result' id='x'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        "<iq xmlns='jabber:client' type='error' id='x'><block xmlns='urn:xmpp:blocking'/></iq>",
        "<iq xmlns='jabber:client' id='x'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
        "<message xmlns='jabber:client'><blocklist xmlns='urn:xmpp:blocking'/></message>",
    ] {
        let s = stanza(xml_text);
        assert_eq!(BlockingRequest::from_iq(&s), None, "{xml_text}");
        assert!(
            BlockingSessions::new()
                .handle_iq(CHAMBER, &chamber(), &s, &mut list, no_presence())
                .is_none()
        );
    }
}

#[test]
fn request_to_another_account_is_forbidden_own_bare_jid_is_fine() {
    let mut list = Blocklist::new();
    let foreign = stanza(
        "<iq xmlns='jabber:client' type='set' id='b' to='romeo@montague.net'>
           <block xmlns='urn:xmpp:blocking'><item jid='iago@shakespeare.lit'/></block></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &foreign, &mut list, no_presence())
        .unwrap();
    assert_eq!(condition(&out.reply), StanzaErrorCondition::Forbidden);
    assert!(list.is_empty());
    let own = stanza(
        "<iq xmlns='jabber:client' type='set' id='b' to='juliet@capulet.com'>
           <block xmlns='urn:xmpp:blocking'><item jid='iago@shakespeare.lit'/></block></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &own, &mut list, no_presence())
        .unwrap();
    assert_eq!(out.reply.type_attr(), Some("result"));
    assert_eq!(out.reply.from(), Some("juliet@capulet.com"));
    assert!(list.contains(&jid("iago@shakespeare.lit")));
}

// --- §3.4, §3.5 unblock ---------------------------------------------------------

#[test]
fn unblock_pushes_items_xep_examples_10_to_12() {
    let mut list: Blocklist = [jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        .into_iter()
        .collect();
    let mut sessions = interested_sessions(&mut list);
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='unblock1'>
           <unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock></iq>",
    );
    let out = sessions
        .handle_iq(BALCONY, &balcony(), &iq, &mut list, no_presence())
        .unwrap();
    assert_eq!(out.reply.type_attr(), Some("result"));
    assert_eq!(out.reply.id(), Some("unblock1"));
    assert!(out.changed);
    assert_eq!(
        list.items().collect::<Vec<_>>(),
        vec![&jid("iago@shakespeare.lit")]
    );
    let payload =
        xml("<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock>");
    assert_eq!(out.pushes.len(), 2);
    assert!(
        out.pushes
            .iter()
            .all(|(_, p)| p.iq_payload() == Some(&payload))
    );
}

#[test]
fn unblock_all_pushes_empty_unblock_xep_examples_13_to_15() {
    let mut list: Blocklist = [jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        .into_iter()
        .collect();
    let mut sessions = interested_sessions(&mut list);
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='unblock2'><unblock xmlns='urn:xmpp:blocking'/></iq>",
    );
    assert_eq!(
        BlockingRequest::from_iq(&iq),
        Some(Ok(BlockingRequest::UnblockAll))
    );
    let out = sessions
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, no_presence())
        .unwrap();
    assert_eq!(out.reply.type_attr(), Some("result"));
    assert!(out.changed && list.is_empty());
    let payload = xml("<unblock xmlns='urn:xmpp:blocking'/>");
    assert_eq!(out.pushes.len(), 2);
    assert!(
        out.pushes
            .iter()
            .all(|(_, p)| p.iq_payload() == Some(&payload))
    );
    // Again: nothing left to unblock.
    let out = sessions
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, no_presence())
        .unwrap();
    assert!(!out.changed);
}

#[test]
fn ended_sessions_get_no_pushes() {
    let mut list = Blocklist::new();
    let mut sessions = interested_sessions(&mut list);
    sessions.session_ended(BALCONY, &balcony());
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='x@y'/></block></iq>",
    );
    let out = sessions
        .handle_iq(
            HALL,
            &full("juliet@capulet.com/hall"),
            &iq,
            &mut list,
            no_presence(),
        )
        .unwrap();
    assert_eq!(
        out.pushes.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![CHAMBER]
    );
    sessions.session_ended(CHAMBER, &chamber());
    assert_eq!(sessions.interested(&bare("juliet@capulet.com")).count(), 0);
}

/// A resumed session (a new id for the same full JID) keeps its interest.
#[test]
fn moved_sessions_keep_getting_pushes() {
    let mut list = Blocklist::new();
    let mut sessions = interested_sessions(&mut list);
    sessions.session_moved(BALCONY, 77, &balcony());
    sessions.session_moved(HALL, 78, &full("juliet@capulet.com/hall"));
    let user = bare("juliet@capulet.com");
    assert_eq!(
        sessions
            .interested(&user)
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        vec![CHAMBER, 77]
    );
    assert_eq!(
        sessions
            .interested(&user)
            .find(|(id, _)| *id == 77)
            .map(|(_, j)| j.clone()),
        Some(balcony())
    );
}

#[test]
fn request_elements_round_trip() {
    for request in [
        BlockingRequest::GetBlocklist,
        BlockingRequest::Block(vec![jid("a@example.com"), jid("example.org")]),
        BlockingRequest::Unblock(vec![jid("a@example.com/r")]),
        BlockingRequest::UnblockAll,
    ] {
        let iq = Stanza::iq(request.iq_type(), None, "r", request.to_element());
        assert_eq!(BlockingRequest::from_iq(&iq), Some(Ok(request.clone())));
    }
}

// --- §6 JID matching ----------------------------------------------------------------

#[test]
fn jid_matching_follows_xep_0191_section_6() {
    // (item, JID, matches)
    let table = [
        // 1. user@domain/resource: only that resource
        (
            "romeo@montague.net/orchard",
            "romeo@montague.net/orchard",
            true,
        ),
        (
            "romeo@montague.net/orchard",
            "romeo@montague.net/garden",
            false,
        ),
        ("romeo@montague.net/orchard", "romeo@montague.net", false),
        // 2. user@domain: any resource
        ("romeo@montague.net", "romeo@montague.net", true),
        ("romeo@montague.net", "romeo@montague.net/orchard", true),
        ("romeo@montague.net", "mercutio@montague.net", false),
        ("romeo@montague.net", "montague.net", false),
        // 3. domain/resource: only that resource
        ("montague.net/bot", "montague.net/bot", true),
        ("montague.net/bot", "romeo@montague.net/bot", false),
        ("montague.net/bot", "montague.net", false),
        // 4. domain: the domain, any user and any resource
        ("montague.net", "montague.net", true),
        ("montague.net", "romeo@montague.net", true),
        ("montague.net", "romeo@montague.net/orchard", true),
        ("montague.net", "montague.net/bot", true),
        ("montague.net", "chat.montague.net", false),
        ("montague.net", "romeo@capulet.com", false),
    ];
    for (item, target, expected) in table {
        assert_eq!(
            item_matches(&jid(item), &jid(target)),
            expected,
            "{item} vs {target}"
        );
        let list: Blocklist = [jid(item)].into_iter().collect();
        assert_eq!(
            list.blocks(&jid(target)),
            expected,
            "{item} vs {target} (list)"
        );
    }
    // Matching is on prepared JIDs.
    let list: Blocklist = [jid("ROMEO@Montague.Net")].into_iter().collect();
    assert!(list.blocks(&jid("romeo@montague.net/Orchard")));
    assert!(!Blocklist::new().blocks(&jid("romeo@montague.net")));
}

// --- enforcement ------------------------------------------------------------------

fn juliet_blocks_romeo() -> (BareJid, Blocklist) {
    (
        bare("juliet@capulet.com"),
        [jid("romeo@montague.net")].into_iter().collect(),
    )
}

#[test]
fn inbound_from_blocked_jid_table() {
    let (juliet, list) = juliet_blocks_romeo();
    let unavailable =
        BlockVerdict::Bounce(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
    let table = [
        (
            "<presence xmlns='jabber:client' from='romeo@montague.net/orchard' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<presence xmlns='jabber:client' type='unavailable' from='romeo@montague.net/orchard' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<presence xmlns='jabber:client' type='subscribe' from='romeo@montague.net' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<presence xmlns='jabber:client' type='probe' from='romeo@montague.net' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<message xmlns='jabber:client' type='chat' from='romeo@montague.net/orchard' to='juliet@capulet.com'><body>hi</body></message>",
            unavailable.clone(),
        ),
        (
            "<message xmlns='jabber:client' from='romeo@montague.net/orchard' to='juliet@capulet.com'><body>hi</body></message>",
            unavailable.clone(),
        ),
        (
            "<message xmlns='jabber:client' type='groupchat' from='romeo@montague.net/orchard' to='juliet@capulet.com'/>",
            unavailable.clone(),
        ),
        (
            "<message xmlns='jabber:client' type='headline' from='romeo@montague.net/orchard' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<message xmlns='jabber:client' type='error' from='romeo@montague.net/orchard' to='juliet@capulet.com'/>",
            BlockVerdict::Drop,
        ),
        (
            "<iq xmlns='jabber:client' type='get' id='1' from='romeo@montague.net/orchard' to='juliet@capulet.com/balcony'><ping xmlns='urn:xmpp:ping'/></iq>",
            unavailable.clone(),
        ),
        (
            "<iq xmlns='jabber:client' type='set' id='1' from='romeo@montague.net/orchard' to='juliet@capulet.com'><x xmlns='urn:x'/></iq>",
            unavailable.clone(),
        ),
        (
            "<iq xmlns='jabber:client' type='result' id='1' from='romeo@montague.net/orchard' to='juliet@capulet.com/balcony'/>",
            BlockVerdict::Drop,
        ),
        (
            "<iq xmlns='jabber:client' type='error' id='1' from='romeo@montague.net/orchard' to='juliet@capulet.com/balcony'/>",
            BlockVerdict::Drop,
        ),
        (
            "<iq xmlns='jabber:client' id='1' from='romeo@montague.net/orchard' to='juliet@capulet.com/balcony'/>",
            BlockVerdict::Drop,
        ),
        // Not from a blocked JID:
        (
            "<message xmlns='jabber:client' type='chat' from='mercutio@montague.net/x' to='juliet@capulet.com'/>",
            BlockVerdict::Pass,
        ),
        (
            "<message xmlns='jabber:client' type='chat' to='juliet@capulet.com'/>",
            BlockVerdict::Pass,
        ),
        (
            "<iq xmlns='jabber:client' type='set' id='1' from='capulet.com' to='juliet@capulet.com'/>",
            BlockVerdict::Pass,
        ),
    ];
    for (text, expected) in table {
        assert_eq!(
            check_inbound(&juliet, &list, &stanza(text)),
            expected,
            "{text}"
        );
    }
}

#[test]
fn own_resources_are_never_blocked() {
    // XEP-0191 §5 note: never block one resource of a user from another.
    let juliet = bare("juliet@capulet.com");
    let list: Blocklist = [jid("capulet.com"), jid("juliet@capulet.com")]
        .into_iter()
        .collect();
    let own = stanza(
        "<message xmlns='jabber:client' type='chat' from='juliet@capulet.com/chamber' to='juliet@capulet.com/balcony'/>",
    );
    assert_eq!(check_inbound(&juliet, &list, &own), BlockVerdict::Pass);
    assert_eq!(check_outbound(&juliet, &list, &own), BlockVerdict::Pass);
    let nurse = stanza(
        "<message xmlns='jabber:client' type='chat' from='nurse@capulet.com/x' to='juliet@capulet.com'/>",
    );
    assert_eq!(
        check_inbound(&juliet, &list, &nurse),
        BlockVerdict::Bounce(StanzaError::new(StanzaErrorCondition::ServiceUnavailable))
    );
}

#[test]
fn outbound_to_blocked_jid_bounces_not_acceptable_with_blocked_xep_example_9() {
    let (juliet, list) = juliet_blocks_romeo();
    let message = stanza(
        "<message xmlns='jabber:client' from='juliet@capulet.com/balcony' to='romeo@montague.net'><body>Can you hear me now?</body></message>",
    );
    let verdict = check_outbound(&juliet, &list, &message);
    assert_eq!(verdict, BlockVerdict::Bounce(blocked_error()));
    let BlockVerdict::Bounce(error) = verdict else {
        unreachable!()
    };
    let reply = message.error_reply(&error).unwrap();
    // Example 9 (the 'to'/'from' of the example are swapped relative to
    // RFC 6120 §8.3.1; the reply goes back to Juliet's resource).
    let expected = stanza(
        "<message xmlns='jabber:client' type='error' from='romeo@montague.net' to='juliet@capulet.com/balcony'>
           <body>Can you hear me now?</body>
           <error type='cancel'>
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
             <blocked xmlns='urn:xmpp:blocking:errors'/>
           </error>
         </message>",
    );
    assert_eq!(reply, expected);
    let parsed = reply.error().unwrap();
    assert_eq!(parsed.condition, StanzaErrorCondition::NotAcceptable);
    assert!(
        parsed
            .application
            .unwrap()
            .is("blocked", NS_BLOCKING_ERRORS)
    );
}

#[test]
fn outbound_table() {
    let (juliet, list) = juliet_blocks_romeo();
    let blocked = BlockVerdict::Bounce(blocked_error());
    let table = [
        (
            "<presence xmlns='jabber:client' to='romeo@montague.net'/>",
            blocked.clone(),
        ),
        (
            "<presence xmlns='jabber:client' type='subscribed' to='romeo@montague.net'/>",
            blocked.clone(),
        ),
        (
            "<iq xmlns='jabber:client' type='get' id='1' to='romeo@montague.net/orchard'><ping xmlns='urn:xmpp:ping'/></iq>",
            blocked.clone(),
        ),
        (
            "<iq xmlns='jabber:client' type='result' id='1' to='romeo@montague.net/orchard'/>",
            BlockVerdict::Drop,
        ),
        (
            "<message xmlns='jabber:client' type='error' to='romeo@montague.net/orchard'/>",
            BlockVerdict::Drop,
        ),
        (
            "<message xmlns='jabber:client' type='chat' to='mercutio@montague.net'/>",
            BlockVerdict::Pass,
        ),
        ("<presence xmlns='jabber:client'/>", BlockVerdict::Pass),
        (
            "<iq xmlns='jabber:client' type='get' id='1'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
            BlockVerdict::Pass,
        ),
        (
            "<message xmlns='jabber:client' type='chat' to='not a jid@@'/>",
            BlockVerdict::Pass,
        ),
    ];
    for (text, expected) in table {
        assert_eq!(
            check_outbound(&juliet, &list, &stanza(text)),
            expected,
            "{text}"
        );
    }
    let error = blocked_error();
    assert_eq!(error.error_type, StanzaErrorType::Cancel);
    assert_eq!(
        error.application.as_deref(),
        Some(&Element::bare("blocked", NS_BLOCKING_ERRORS))
    );
}

// --- presence on block / unblock ---------------------------------------------------

#[test]
fn block_sends_unavailable_from_each_available_resource_to_newly_blocked_recipients() {
    let mut list: Blocklist = [jid("iago@shakespeare.lit")].into_iter().collect();
    let resources = [chamber(), balcony()];
    let recipients = [
        jid("romeo@montague.net"),
        jid("mercutio@montague.net/x"),
        jid("nurse@capulet.com"),
        jid("iago@shakespeare.lit"),
    ];
    let view = PresenceView {
        available_resources: &resources,
        presence_recipients: &recipients,
    };
    // Blocking the domain montague.net covers romeo and mercutio; iago was
    // already blocked and gets nothing new.
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='b'><block xmlns='urn:xmpp:blocking'>
           <item jid='montague.net'/><item jid='iago@shakespeare.lit'/></block></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, view)
        .unwrap();
    let sent: Vec<(Option<&str>, Option<&str>, Option<&str>)> = out
        .unavailable_presence
        .iter()
        .map(|p| (p.from(), p.to(), p.type_attr()))
        .collect();
    assert_eq!(
        sent,
        vec![
            (
                Some("juliet@capulet.com/chamber"),
                Some("romeo@montague.net"),
                Some("unavailable")
            ),
            (
                Some("juliet@capulet.com/balcony"),
                Some("romeo@montague.net"),
                Some("unavailable")
            ),
            (
                Some("juliet@capulet.com/chamber"),
                Some("mercutio@montague.net/x"),
                Some("unavailable")
            ),
            (
                Some("juliet@capulet.com/balcony"),
                Some("mercutio@montague.net/x"),
                Some("unavailable")
            ),
        ]
    );
    assert!(
        out.unavailable_presence
            .iter()
            .all(|p| p.element().children().count() == 0)
    );
    assert!(out.send_current_presence_to.is_empty());
}

#[test]
fn unblock_lists_recipients_that_get_current_presence_again() {
    let mut list: Blocklist = [jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        .into_iter()
        .collect();
    let resources = [balcony()];
    let recipients = [
        jid("romeo@montague.net"),
        jid("nurse@capulet.com"),
        jid("iago@shakespeare.lit"),
    ];
    let view = PresenceView {
        available_resources: &resources,
        presence_recipients: &recipients,
    };
    let iq = stanza(
        "<iq xmlns='jabber:client' type='set' id='u'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock></iq>",
    );
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &iq, &mut list, view)
        .unwrap();
    assert_eq!(
        out.send_current_presence_to,
        vec![jid("romeo@montague.net")]
    );
    assert!(out.unavailable_presence.is_empty());
    // Unblock all with no available resource: nothing to send.
    let all = stanza(
        "<iq xmlns='jabber:client' type='set' id='a'><unblock xmlns='urn:xmpp:blocking'/></iq>",
    );
    let offline = PresenceView {
        available_resources: &[],
        presence_recipients: &recipients,
    };
    let out = BlockingSessions::new()
        .handle_iq(CHAMBER, &chamber(), &all, &mut list, offline)
        .unwrap();
    assert!(out.changed && out.send_current_presence_to.is_empty());
}

#[test]
fn blocklist_element_and_namespace() {
    let list: Blocklist = [jid("b@example.com"), jid("a@example.com")]
        .into_iter()
        .collect();
    assert_eq!(
        list.to_element(),
        xml(
            "<blocklist xmlns='urn:xmpp:blocking'><item jid='a@example.com'/><item jid='b@example.com'/></blocklist>"
        )
    );
    assert_eq!(NS_BLOCKING, "urn:xmpp:blocking");
    let mut list = list;
    assert_eq!(
        list.unblock(&[jid("a@example.com"), jid("z@example.com")]),
        vec![jid("a@example.com")]
    );
    assert_eq!(list.unblock_all(), vec![jid("b@example.com")]);
}

// --- any input ---------------------------------------------------------------------

proptest! {
    /// Arbitrary (often malformed) stanzas: nothing panics; a handled iq is
    /// answered with its own id, as `result` or `error`, and an error changes
    /// nothing and pushes nothing; a bounce is never for an error stanza or
    /// an iq result.
    #[test]
    fn any_stanza_is_handled_without_panic(s in arb_stanza()) {
        let juliet = bare("juliet@capulet.com");
        let mut list: Blocklist = [jid("romeo@montague.net"), jid("capulet.com/x")]
            .into_iter()
            .collect();
        let before = list.clone();
        let resources = [chamber()];
        let recipients = [jid("romeo@montague.net"), jid("juliet@capulet.com/balcony")];
        let view = PresenceView {
            available_resources: &resources,
            presence_recipients: &recipients,
        };
        let mut sessions = interested_sessions(&mut list);
        if let Some(out) = sessions.handle_iq(CHAMBER, &chamber(), &s, &mut list, view) {
            prop_assert_eq!(out.reply.id(), s.id());
            prop_assert!(matches!(out.reply.type_attr(), Some("result" | "error")));
            if out.reply.is_error() {
                prop_assert!(out.pushes.is_empty() && !out.changed);
                prop_assert_eq!(&list, &before);
            }
        }
        for verdict in [check_inbound(&juliet, &list, &s), check_outbound(&juliet, &list, &s)] {
            if let BlockVerdict::Bounce(error) = verdict {
                prop_assert!(s.error_reply(&error).is_some());
                prop_assert!(s.iq_type() != Some(Ok(IqType::Result)));
            }
        }
    }
}
