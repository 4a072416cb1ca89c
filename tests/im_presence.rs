//! Presence (RFC 6121 §4): initial presence, updates, unavailable, probes,
//! directed presence, session end and priority, with several resources on
//! both sides. Local users go through the router and `ImService`
//! (`im_common::World`); remote contacts are at `verona.lit`.

mod im_common;

use im_common::{World, available, bare, full, parse, presence, roster_get, rows, summary};
use minidom::Element;
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::im::presence::{PresenceView, UserResource, answer_probe, broadcast_available};
use xmpp_sansio::im::{ImAction, ImConfig, NonSubscriberProbe, RosterItem, Subscription};
use xmpp_sansio::router::{ConflictPolicy, Decision};
use xmpp_sansio::stanza::Stanza;

const JULIET: &str = "juliet@example.com";
const ROMEO: &str = "romeo@example.com";
const BALCONY: &str = "juliet@example.com/balcony";
const CHAMBER: &str = "juliet@example.com/chamber";
const ORCHARD: &str = "romeo@example.com/orchard";
const GARDEN: &str = "romeo@example.com/garden";
const BENVOLIO: &str = "benvolio@verona.lit";
const MERCUTIO: &str = "mercutio@verona.lit";
const TYBALT: &str = "tybalt@verona.lit";

fn contact(jid: &str, subscription: Subscription) -> RosterItem {
    let mut item = RosterItem::new(bare(jid));
    item.subscription = subscription;
    item
}

/// Juliet: 1 = balcony, 2 = chamber, 5 = hall (bound, never available).
/// Romeo: 3 = orchard (away), 4 = garden (chat), both available.
/// Juliet's roster: Romeo both, Benvolio from, Mercutio to, the Nurse none,
/// and Tybalt's pending request (not in the roster). Romeo's: Juliet both.
fn verona(config: ImConfig) -> World {
    let mut w = World::new(config);
    w.bind(1, BALCONY);
    w.bind(2, CHAMBER);
    w.bind(5, "juliet@example.com/hall");
    w.bind(3, ORCHARD);
    w.bind(4, GARDEN);
    w.seed(JULIET, contact(ROMEO, Subscription::Both));
    w.seed(JULIET, contact(BENVOLIO, Subscription::From));
    w.seed(JULIET, contact(MERCUTIO, Subscription::To));
    w.seed(JULIET, contact("nurse@example.com", Subscription::None));
    let mut request = RosterItem::new(bare(TYBALT));
    request.in_roster = false;
    request.pending_in = Some(parse(
        "<presence xmlns='jabber:client' type='subscribe' from='tybalt@verona.lit' to='juliet@example.com'/>",
    ));
    w.seed(JULIET, request);
    w.seed(ROMEO, contact(JULIET, Subscription::Both));
    w.send(3, available("away", 0));
    w.send(4, available("chat", 0));
    w.clear();
    w
}

fn show(stanza: &Stanza) -> Option<String> {
    stanza
        .element()
        .get_child("show", "jabber:client")
        .map(Element::text)
}

/// §4.2.2, §4.3.1, §3.1.3: the initial presence of a second resource.
#[test]
fn initial_presence_fan_out() {
    let mut w = verona(ImConfig::default());
    w.send(1, available("chat", 2));
    w.clear();
    w.send(2, available("away", 5));

    // To the subscribers: Romeo's available resources (through his bare
    // JID) and Benvolio's server; a probe to Mercutio's server (Romeo's
    // probe is answered locally).
    assert_eq!(
        summary(&w.remote),
        rows(&[
            ("presence", CHAMBER, BENVOLIO),
            ("presence:probe", CHAMBER, MERCUTIO)
        ])
    );
    for s in [3, 4] {
        let got = w.take(s);
        assert_eq!(summary(&got), rows(&[("presence", CHAMBER, ROMEO)]));
        assert_eq!(show(&got[0]).as_deref(), Some("away"));
    }
    // The new resource: Romeo's answers to the probe, its own presence,
    // the balcony's presence, then Tybalt's stored request.
    let got = w.take(2);
    assert_eq!(
        summary(&got),
        rows(&[
            ("presence", ORCHARD, CHAMBER),
            ("presence", GARDEN, CHAMBER),
            ("presence", CHAMBER, CHAMBER),
            ("presence", BALCONY, CHAMBER),
            ("presence:subscribe", TYBALT, JULIET),
        ])
    );
    assert_eq!(show(&got[0]).as_deref(), Some("away"));
    assert_eq!(show(&got[1]).as_deref(), Some("chat"));
    assert_eq!(show(&got[3]).as_deref(), Some("chat"));
    // The other available resource sees the new one; the connected-only
    // hall gets nothing.
    assert_eq!(summary(&w.take(1)), rows(&[("presence", CHAMBER, BALCONY)]));
    assert!(w.take(5).is_empty());
    // The router knows the priority.
    let s = w.router.session(2).unwrap();
    assert!(s.available);
    assert_eq!(s.priority, 5);
    assert_eq!(
        w.im.last_presence(2).as_ref().and_then(show).as_deref(),
        Some("away")
    );
}

/// §4.4.2: an update goes to subscribers and own resources; no probes.
#[test]
fn presence_update() {
    let mut w = verona(ImConfig::default());
    w.send(1, available("chat", 2));
    w.send(2, available("away", 5));
    w.clear();
    w.send(2, available("dnd", -3));
    assert_eq!(summary(&w.remote), rows(&[("presence", CHAMBER, BENVOLIO)]));
    assert_eq!(summary(&w.take(3)), rows(&[("presence", CHAMBER, ROMEO)]));
    assert_eq!(summary(&w.take(1)), rows(&[("presence", CHAMBER, BALCONY)]));
    assert_eq!(summary(&w.take(2)), rows(&[("presence", CHAMBER, CHAMBER)]));
    assert_eq!(w.router.session(2).unwrap().priority, -3);
}

/// §4.5.2, §4.6.3: unavailable goes to subscribers, to entities that got
/// directed presence, and to the user's available resources.
#[test]
fn unavailable_broadcast_and_directed_presence() {
    let mut w = verona(ImConfig::default());
    w.send(1, available("chat", 2));
    w.send(2, available("away", 5));
    // Directed presence: to a stranger (remembered), to a subscriber's
    // full JID (not: it gets the broadcast anyway), to oneself (not).
    w.send(2, presence(None, Some("friar@verona.lit/cell")));
    w.send(2, presence(None, Some(ORCHARD)));
    w.send(2, presence(None, Some(BALCONY)));
    let targets: Vec<String> =
        w.im.directed_presence_targets(2)
            .map(|j| j.to_string())
            .collect();
    assert_eq!(targets, ["friar@verona.lit/cell"]);
    w.clear();

    let mut bye = presence(Some("unavailable"), None);
    let mut status = Element::bare("status", "jabber:client");
    status.append_text("gone to bed".to_owned());
    bye.element_mut().append_child(status);
    w.send(2, bye);
    assert_eq!(
        summary(&w.remote),
        rows(&[
            ("presence:unavailable", CHAMBER, BENVOLIO),
            ("presence:unavailable", CHAMBER, "friar@verona.lit/cell"),
        ])
    );
    assert!(w.remote[0].element().has_child("status", "jabber:client"));
    for s in [3, 4] {
        assert_eq!(
            summary(&w.take(s)),
            rows(&[("presence:unavailable", CHAMBER, ROMEO)])
        );
    }
    assert_eq!(
        summary(&w.take(1)),
        rows(&[("presence:unavailable", CHAMBER, BALCONY)])
    );
    assert_eq!(
        summary(&w.take(2)),
        rows(&[("presence:unavailable", CHAMBER, CHAMBER)])
    );
    assert!(!w.router.session(2).unwrap().available);
    assert_eq!(w.im.directed_presence_targets(2).count(), 0);
    assert_eq!(w.im.last_presence(2), None);

    // A probe from Romeo now gets only the balcony's presence.
    w.clear();
    w.send(3, presence(Some("probe"), Some(JULIET)));
    assert_eq!(summary(&w.take(3)), rows(&[("presence", BALCONY, ORCHARD)]));

    // Directed unavailable forgets the target; a later unavailable does
    // not go there.
    w.send(1, presence(None, Some("friar@verona.lit")));
    w.send(1, presence(Some("unavailable"), Some("friar@verona.lit")));
    assert_eq!(w.im.directed_presence_targets(1).count(), 0);
    w.clear();
    w.send(1, presence(Some("unavailable"), None));
    assert_eq!(
        summary(&w.remote),
        rows(&[("presence:unavailable", BALCONY, BENVOLIO)])
    );
}

/// §4.3.2: who gets an answer to a probe, and which.
#[test]
fn probe_answers() {
    let mut w = verona(ImConfig::default());
    // Nobody of Juliet's is available and nothing is known: a bare
    // unavailable.
    w.send(3, presence(Some("probe"), Some(JULIET)));
    assert_eq!(
        summary(&w.take(3)),
        rows(&[("presence:unavailable", JULIET, ORCHARD)])
    );
    // Her last unavailable, status included, once she has been online.
    w.send(1, available("chat", 0));
    let mut bye = presence(Some("unavailable"), None);
    let mut status = Element::bare("status", "jabber:client");
    status.append_text("at the ball".to_owned());
    bye.element_mut().append_child(status);
    w.send(1, bye);
    w.clear();
    w.send(4, presence(Some("probe"), Some(JULIET)));
    let got = w.take(4);
    assert_eq!(
        summary(&got),
        rows(&[("presence:unavailable", BALCONY, GARDEN)])
    );
    assert!(got[0].element().has_child("status", "jabber:client"));
    // A remote subscriber (Benvolio has "from") gets the current presence.
    w.send(2, available("xa", 0));
    w.clear();
    w.receive_remote(
        parse("<presence xmlns='jabber:client' type='probe' from='benvolio@verona.lit/home' to='juliet@example.com'/>"),
    );
    assert_eq!(
        summary(&w.remote),
        rows(&[("presence", CHAMBER, "benvolio@verona.lit/home")])
    );
    // Mercutio has only "to" (Juliet sees him, not he her): unsubscribed.
    w.clear();
    w.receive_remote(
        parse("<presence xmlns='jabber:client' type='probe' from='mercutio@verona.lit/sword' to='juliet@example.com'/>"),
    );
    assert_eq!(
        summary(&w.remote),
        rows(&[("presence:unsubscribed", JULIET, MERCUTIO)])
    );

    // With NonSubscriberProbe::Ignore: nothing.
    let mut w = verona(ImConfig {
        non_subscriber_probe: NonSubscriberProbe::Ignore,
        ..ImConfig::default()
    });
    w.receive_remote(
        parse("<presence xmlns='jabber:client' type='probe' from='paris@verona.lit' to='juliet@example.com'/>"),
    );
    assert!(w.remote.is_empty());
}

/// §4.7.2.3 and §8.5.2.1.1 through the router: negative priority gets
/// presence but no messages to the bare JID; a bad priority is refused.
#[test]
fn priority_goes_to_the_router() {
    let mut w = verona(ImConfig::default());
    w.send(1, available("chat", 1));
    w.send(2, available("away", -1));
    let romeo = full(ORCHARD);
    let to_juliet: xmpp_sansio::Jid = JULIET.parse().unwrap();
    let chat = Stanza::chat(&to_juliet, "wherefore art thou");
    assert_eq!(
        w.router.route(&romeo, &chat, &w.accounts),
        Decision::Deliver(vec![1])
    );
    // Presence to the bare JID reaches both.
    w.clear();
    w.send(3, available("away", 0));
    assert_eq!(w.take(1).len(), 1);
    assert_eq!(w.take(2).len(), 1);
    // The balcony leaves: only a negative-priority session is left.
    w.send(1, presence(Some("unavailable"), None));
    assert!(matches!(
        w.router.route(&romeo, &chat, &w.accounts),
        Decision::Bounce(_)
    ));
    // A priority out of range: bad-request, nothing else.
    w.clear();
    w.send(1, available("chat", 300));
    let got = w.take(1);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].error().unwrap().condition,
        StanzaErrorCondition::BadRequest
    );
    assert!(w.remote.is_empty() && w.take(3).is_empty());
    assert!(!w.router.session(1).unwrap().available);
}

/// §4.5.2 for a stream that ends without unavailable; §4.6.3 for directed
/// presence of a session that was never available.
#[test]
fn session_end() {
    let mut w = verona(ImConfig::default());
    w.send(1, available("chat", 0));
    w.send(2, available("away", 0));
    w.send(5, presence(None, Some("friar@verona.lit")));
    w.send(5, presence(None, Some("nurse@example.com")));
    // The nurse becomes a subscriber afterwards: as the hall never
    // broadcast, she still needs its unavailable.
    w.seed(JULIET, contact("nurse@example.com", Subscription::From));
    w.clear();
    w.end(2);
    assert_eq!(
        summary(&w.remote),
        rows(&[("presence:unavailable", CHAMBER, BENVOLIO)])
    );
    w.bind(6, "nurse@example.com/kitchen");
    w.send(6, presence(None, None));
    assert_eq!(
        summary(&w.take(1)),
        rows(&[("presence:unavailable", CHAMBER, BALCONY)])
    );
    assert_eq!(
        summary(&w.take(3)),
        rows(&[("presence:unavailable", CHAMBER, ROMEO)])
    );
    assert!(w.router.session(2).is_none());
    assert!(!w.im.is_interested(2) && w.im.last_presence(2).is_none());
    // The hall never was available: only its directed presence is undone.
    w.clear();
    w.end(5);
    assert_eq!(
        summary(&w.remote),
        rows(&[(
            "presence:unavailable",
            "juliet@example.com/hall",
            "friar@verona.lit"
        )])
    );
    assert_eq!(
        summary(&w.take(6)),
        rows(&[(
            "presence:unavailable",
            "juliet@example.com/hall",
            "nurse@example.com"
        )])
    );
    assert!(w.take(1).is_empty());
    // The last session ends: probes get its unavailable.
    w.end(1);
    w.clear();
    w.send(3, presence(Some("probe"), Some(JULIET)));
    assert_eq!(
        summary(&w.take(3)),
        rows(&[("presence:unavailable", BALCONY, ORCHARD)])
    );
    // Unknown or ended sessions: nothing.
    let Ok(none) = w.im.session_ended(&mut w.router, &mut w.store, 1);
    assert!(none.is_empty());
}

/// A session that goes on under a new id (XEP-0198 resumption) keeps its
/// roster interest, last presence and directed presence.
#[test]
fn moved_session_keeps_its_state() {
    let mut w = verona(ImConfig::default());
    w.send(1, roster_get("r", None));
    w.send(1, available("chat", 0));
    w.send(1, presence(None, Some("friar@verona.lit")));
    w.clear();
    // The host moves the binding, then tells the service.
    w.router.unbind(1);
    w.router.bind(9, full(BALCONY), ConflictPolicy::RefuseNew);
    w.router.set_presence(9, true, 0);
    w.im.session_moved(1, 9);
    assert!(w.im.is_interested(9) && !w.im.is_interested(1));
    assert_eq!(
        w.im.last_presence(9).as_ref().and_then(show),
        Some("chat".to_owned())
    );
    assert!(w.im.last_presence(1).is_none());
    assert_eq!(
        w.im.directed_presence_targets(9)
            .map(|j| j.to_string())
            .collect::<Vec<_>>(),
        vec!["friar@verona.lit".to_owned()]
    );
    // A probe is answered with the moved session's presence.
    w.send(3, presence(Some("probe"), Some(JULIET)));
    assert!(
        w.take(3)
            .iter()
            .any(|p| p.from() == Some(BALCONY) && show(p).as_deref() == Some("chat"))
    );
    // Its end undoes the directed presence.
    w.clear();
    w.end(9);
    assert!(
        summary(&w.remote)
            .iter()
            .any(|(kind, from, to)| kind == "presence:unavailable"
                && from == BALCONY
                && to == "friar@verona.lit")
    );
}

/// Things that are not broadcasts give nothing.
#[test]
fn not_broadcasts() {
    let mut w = verona(ImConfig::default());
    let Ok(none) =
        w.im.broadcast_presence(&mut w.router, &mut w.store, 1, &presence(None, Some(ROMEO)));
    assert!(none.is_empty());
    let Ok(none) =
        w.im.broadcast_presence(&mut w.router, &mut w.store, 99, &presence(None, None));
    assert!(none.is_empty());
    let Ok(none) = w.im.broadcast_presence(
        &mut w.router,
        &mut w.store,
        1,
        &presence(Some("probe"), None),
    );
    assert!(none.is_empty());
    assert!(!w.router.session(1).unwrap().available);
}

/// The pure functions on their own: exact actions, Deliver vs Route.
#[test]
fn pure_decisions() {
    let user = bare(JULIET);
    let roster = [
        contact(ROMEO, Subscription::To),
        contact(BENVOLIO, Subscription::From),
    ];
    let mut balcony_presence = presence(None, None);
    balcony_presence.set_from(Some(BALCONY));
    let resources = [
        UserResource {
            session: 1,
            jid: full(BALCONY),
            presence: Some(balcony_presence),
        },
        UserResource {
            session: 2,
            jid: full(CHAMBER),
            presence: None,
        },
    ];
    let view = PresenceView {
        user: &user,
        roster: &roster,
        resources: &resources,
    };
    let mut new = presence(None, None);
    new.set_from(Some(CHAMBER));
    let actions = broadcast_available(&view, 2, &new);
    let shape: Vec<(Option<u64>, (String, String, String))> = actions
        .iter()
        .map(|a| {
            let session = match a {
                ImAction::Deliver { session, .. } => Some(*session),
                ImAction::Route(_) => None,
            };
            (session, summary(std::slice::from_ref(a.stanza())).remove(0))
        })
        .collect();
    let expect = |s: Option<u64>, k: &str, f: &str, t: &str| (s, (k.into(), f.into(), t.into()));
    assert_eq!(
        shape,
        vec![
            expect(None, "presence", CHAMBER, BENVOLIO),
            expect(None, "presence:probe", CHAMBER, ROMEO),
            expect(Some(1), "presence", CHAMBER, BALCONY),
            expect(Some(2), "presence", CHAMBER, CHAMBER),
            expect(Some(2), "presence", BALCONY, CHAMBER),
        ]
    );
    // A session that is not the user's: nothing.
    assert!(broadcast_available(&view, 9, &new).is_empty());
    // Probe answers: Benvolio is a subscriber, Romeo is not.
    let probe =
        parse("<presence xmlns='jabber:client' type='probe' from='benvolio@verona.lit/x'/>");
    let answer = answer_probe(&view, &probe, None, NonSubscriberProbe::ReplyUnsubscribed);
    assert_eq!(
        summary(
            &answer
                .iter()
                .map(|a| a.stanza().clone())
                .collect::<Vec<_>>()
        ),
        rows(&[("presence", BALCONY, "benvolio@verona.lit/x")])
    );
    let probe = parse("<presence xmlns='jabber:client' type='probe' from='romeo@example.com/x'/>");
    let answer = answer_probe(&view, &probe, None, NonSubscriberProbe::ReplyUnsubscribed);
    assert_eq!(
        summary(
            &answer
                .iter()
                .map(|a| a.stanza().clone())
                .collect::<Vec<_>>()
        ),
        rows(&[("presence:unsubscribed", JULIET, ROMEO)])
    );
    let no_from = parse("<presence xmlns='jabber:client' type='probe'/>");
    assert!(answer_probe(&view, &no_from, None, NonSubscriberProbe::ReplyUnsubscribed).is_empty());
}

/// The same script twice gives the same actions, byte for byte.
#[test]
fn deterministic() {
    let script = |w: &mut World| {
        w.send(1, available("chat", 1));
        w.send(2, available("away", 0));
        w.send(3, presence(Some("probe"), Some(JULIET)));
        w.send(2, presence(None, Some("friar@verona.lit")));
        w.send(1, presence(Some("subscribe"), Some("nurse@example.com")));
        w.end(2);
        w.send(1, presence(Some("unavailable"), None));
    };
    let mut a = verona(ImConfig::default());
    let mut b = verona(ImConfig::default());
    script(&mut a);
    script(&mut b);
    assert!(!a.actions.is_empty());
    let text = |w: &World| -> Vec<String> {
        w.actions
            .iter()
            .map(|x| String::from(x.stanza().element()))
            .collect()
    };
    assert_eq!(text(&a), text(&b));
    assert_eq!(a.actions, b.actions);
}
