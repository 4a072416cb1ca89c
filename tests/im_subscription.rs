//! Presence subscriptions (RFC 6121 §3, Appendix A).
//!
//! `appendix_a` is the state machine table: one row per (state, direction,
//! stanza type), all 9 × 2 × 4 = 72 of Appendix A.2 and A.3, then the 24
//! rows with a pre-approval (§3.4), each commented with the table and row it
//! checks. The other tests run whole exchanges through `ImService`, the
//! router and the store (`im_common::World`).

mod im_common;

use im_common::{World, bare, parse, presence, pushed_item, roster_get, rows, summary};
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::im::subscription::{
    Direction, PresenceEffect, SubscriptionStanza, SubscriptionState, Transition, transition,
};
use xmpp_sansio::im::{ImConfig, RosterItem, Subscription};

// --- Appendix A as a table ----------------------------------------------------

const N: SubscriptionState = SubscriptionState::NONE;
const NO: SubscriptionState = SubscriptionState::NONE_PENDING_OUT;
const NI: SubscriptionState = SubscriptionState::NONE_PENDING_IN;
const NOI: SubscriptionState = SubscriptionState::NONE_PENDING_OUT_IN;
const T: SubscriptionState = SubscriptionState::TO;
const TI: SubscriptionState = SubscriptionState::TO_PENDING_IN;
const F: SubscriptionState = SubscriptionState::FROM;
const FO: SubscriptionState = SubscriptionState::FROM_PENDING_OUT;
const B: SubscriptionState = SubscriptionState::BOTH;

const OUT: Direction = Direction::Outbound;
const IN: Direction = Direction::Inbound;

use SubscriptionStanza::{
    Subscribe as SUB, Subscribed as SUBD, Unsubscribe as UNSUB, Unsubscribed as UNSUBD,
};

/// Forward (route / deliver) or not.
const FWD: bool = true;
const NOFWD: bool = false;
/// Roster push or not.
const PUSH: bool = true;
const NOPUSH: bool = false;
/// Pre-approval flag before / after.
const A: bool = true;
const NA: bool = false;
const REPLY: Option<SubscriptionStanza> = Some(SubscriptionStanza::Subscribed);
const NOREPLY: Option<SubscriptionStanza> = None;
const P0: PresenceEffect = PresenceEffect::None;
const PCUR: PresenceEffect = PresenceEffect::SendCurrent;
const PUNAV: PresenceEffect = PresenceEffect::SendUnavailable;

/// (state, approved, direction, stanza) → (new state, approved, forward,
/// auto-reply, presence, push)
type Row = (
    SubscriptionState,
    bool,
    Direction,
    SubscriptionStanza,
    (
        SubscriptionState,
        bool,
        bool,
        Option<SubscriptionStanza>,
        PresenceEffect,
        bool,
    ),
);

#[rustfmt::skip]
const APPENDIX_A: &[Row] = &[
    // A.2.1 Table 1, outbound "subscribe": always routed.
    (N,   NA, OUT, SUB,    (NO,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "None" → "None + Pending Out"
    (NO,  NA, OUT, SUB,    (NO,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending Out": no change
    (NI,  NA, OUT, SUB,    (NOI, NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending In" → "None + Pending Out+In"
    (NOI, NA, OUT, SUB,    (NOI, NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending Out+In": no change
    (T,   NA, OUT, SUB,    (T,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "To": no change
    (TI,  NA, OUT, SUB,    (TI,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "To + Pending In": no change
    (F,   NA, OUT, SUB,    (FO,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "From" → "From + Pending Out"
    (FO,  NA, OUT, SUB,    (FO,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "From + Pending Out": no change
    (B,   NA, OUT, SUB,    (B,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "Both": no change
    // A.2.2 Table 2, outbound "unsubscribe": always routed.
    (N,   NA, OUT, UNSUB,  (N,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None": no change
    (NO,  NA, OUT, UNSUB,  (N,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out" → "None"
    (NI,  NA, OUT, UNSUB,  (NI,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending In": no change
    (NOI, NA, OUT, UNSUB,  (NI,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out+In" → "None + Pending In"
    (T,   NA, OUT, UNSUB,  (N,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "To" → "None"
    (TI,  NA, OUT, UNSUB,  (NI,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "To + Pending In" → "None + Pending In"
    (F,   NA, OUT, UNSUB,  (F,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "From": no change
    (FO,  NA, OUT, UNSUB,  (F,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "From + Pending Out" → "From"
    (B,   NA, OUT, UNSUB,  (F,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "Both" → "From"
    // A.2.3 Table 3, outbound "subscribed": routed only on a state change; pre-approval (§3.4) where nothing is pending.
    (N,   NA, OUT, SUBD,   (N,   A,  NOFWD, NOREPLY, P0,    PUSH)),   // "None": pre-approval
    (NO,  NA, OUT, SUBD,   (NO,  A,  NOFWD, NOREPLY, P0,    PUSH)),   // "None + Pending Out": pre-approval
    (NI,  NA, OUT, SUBD,   (F,   NA, FWD,   NOREPLY, PCUR,  PUSH)),   // "None + Pending In" → "From" (+ presence, §3.1.5)
    (NOI, NA, OUT, SUBD,   (FO,  NA, FWD,   NOREPLY, PCUR,  PUSH)),   // "None + Pending Out+In" → "From + Pending Out"
    (T,   NA, OUT, SUBD,   (T,   A,  NOFWD, NOREPLY, P0,    PUSH)),   // "To": pre-approval
    (TI,  NA, OUT, SUBD,   (B,   NA, FWD,   NOREPLY, PCUR,  PUSH)),   // "To + Pending In" → "Both"
    (F,   NA, OUT, SUBD,   (F,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "From": no change, not routed
    (FO,  NA, OUT, SUBD,   (FO,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "From + Pending Out": no change, not routed
    (B,   NA, OUT, SUBD,   (B,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "Both": no change, not routed
    // A.2.4 Table 4, outbound "unsubscribed": routed only on a state change.
    (N,   NA, OUT, UNSUBD, (N,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None": no change
    (NO,  NA, OUT, UNSUBD, (NO,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending Out": no change
    (NI,  NA, OUT, UNSUBD, (N,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending In" → "None" (Pending In is not on the wire: no push)
    (NOI, NA, OUT, UNSUBD, (NO,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending Out+In" → "None + Pending Out"
    (T,   NA, OUT, UNSUBD, (T,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "To": no change
    (TI,  NA, OUT, UNSUBD, (T,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "To + Pending In" → "To"
    (F,   NA, OUT, UNSUBD, (N,   NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "From" → "None" (+ unavailable first, §3.2.2)
    (FO,  NA, OUT, UNSUBD, (NO,  NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "From + Pending Out" → "None + Pending Out"
    (B,   NA, OUT, UNSUBD, (T,   NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "Both" → "To"
    // A.3.1 Table 5, inbound "subscribe": delivered unless already recorded or granted.
    (N,   NA, IN,  SUB,    (NI,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None" → "None + Pending In"
    (NO,  NA, IN,  SUB,    (NOI, NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending Out" → "None + Pending Out+In"
    (NI,  NA, IN,  SUB,    (NI,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending In": no change, not delivered
    (NOI, NA, IN,  SUB,    (NOI, NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending Out+In": no change
    (T,   NA, IN,  SUB,    (TI,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "To" → "To + Pending In"
    (TI,  NA, IN,  SUB,    (TI,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "To + Pending In": no change
    (F,   NA, IN,  SUB,    (F,   NA, NOFWD, REPLY,   PCUR,  NOPUSH)), // "From": no change, auto-reply "subscribed" (*)
    (FO,  NA, IN,  SUB,    (FO,  NA, NOFWD, REPLY,   PCUR,  NOPUSH)), // "From + Pending Out": auto-reply (*)
    (B,   NA, IN,  SUB,    (B,   NA, NOFWD, REPLY,   PCUR,  NOPUSH)), // "Both": auto-reply (*)
    // A.3.2 Table 6, inbound "unsubscribe": delivered only on a state change.
    (N,   NA, IN,  UNSUB,  (N,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None": no change
    (NO,  NA, IN,  UNSUB,  (NO,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending Out": no change
    (NI,  NA, IN,  UNSUB,  (N,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending In" → "None"
    (NOI, NA, IN,  UNSUB,  (NO,  NA, FWD,   NOREPLY, P0,    NOPUSH)), // "None + Pending Out+In" → "None + Pending Out"
    (T,   NA, IN,  UNSUB,  (T,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "To": no change
    (TI,  NA, IN,  UNSUB,  (T,   NA, FWD,   NOREPLY, P0,    NOPUSH)), // "To + Pending In" → "To"
    (F,   NA, IN,  UNSUB,  (N,   NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "From" → "None" (+ unavailable, §3.3.3)
    (FO,  NA, IN,  UNSUB,  (NO,  NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "From + Pending Out" → "None + Pending Out"
    (B,   NA, IN,  UNSUB,  (T,   NA, FWD,   NOREPLY, PUNAV, PUSH)),   // "Both" → "To"
    // A.3.3 Table 7, inbound "subscribed": delivered only on a state change.
    (N,   NA, IN,  SUBD,   (N,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None": no change
    (NO,  NA, IN,  SUBD,   (T,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out" → "To"
    (NI,  NA, IN,  SUBD,   (NI,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending In": no change
    (NOI, NA, IN,  SUBD,   (TI,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out+In" → "To + Pending In"
    (T,   NA, IN,  SUBD,   (T,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "To": no change
    (TI,  NA, IN,  SUBD,   (TI,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "To + Pending In": no change
    (F,   NA, IN,  SUBD,   (F,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "From": no change
    (FO,  NA, IN,  SUBD,   (B,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "From + Pending Out" → "Both"
    (B,   NA, IN,  SUBD,   (B,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "Both": no change
    // A.3.4 Table 8, inbound "unsubscribed": delivered only on a state change.
    (N,   NA, IN,  UNSUBD, (N,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None": no change
    (NO,  NA, IN,  UNSUBD, (N,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out" → "None"
    (NI,  NA, IN,  UNSUBD, (NI,  NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "None + Pending In": no change
    (NOI, NA, IN,  UNSUBD, (NI,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "None + Pending Out+In" → "None + Pending In"
    (T,   NA, IN,  UNSUBD, (N,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "To" → "None"
    (TI,  NA, IN,  UNSUBD, (NI,  NA, FWD,   NOREPLY, P0,    PUSH)),   // "To + Pending In" → "None + Pending In"
    (F,   NA, IN,  UNSUBD, (F,   NA, NOFWD, NOREPLY, P0,    NOPUSH)), // "From": no change
    (FO,  NA, IN,  UNSUBD, (F,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "From + Pending Out" → "From"
    (B,   NA, IN,  UNSUBD, (F,   NA, FWD,   NOREPLY, P0,    PUSH)),   // "Both" → "From"
    // §3.4 pre-approval set (approved='true'), in the three states where it can be: None, None + Pending Out, To.
    (N,   A,  OUT, SUB,    (NO,  A,  FWD,   NOREPLY, P0,    PUSH)),   // A.2.1 "None" → "None + Pending Out", approval kept
    (NO,  A,  OUT, SUB,    (NO,  A,  FWD,   NOREPLY, P0,    NOPUSH)), // A.2.1 "None + Pending Out": no change
    (T,   A,  OUT, SUB,    (T,   A,  FWD,   NOREPLY, P0,    NOPUSH)), // A.2.1 "To": no change
    (N,   A,  OUT, UNSUB,  (N,   A,  FWD,   NOREPLY, P0,    NOPUSH)), // A.2.2 "None": no change
    (NO,  A,  OUT, UNSUB,  (N,   A,  FWD,   NOREPLY, P0,    PUSH)),   // A.2.2 "None + Pending Out" → "None"
    (T,   A,  OUT, UNSUB,  (N,   A,  FWD,   NOREPLY, P0,    PUSH)),   // A.2.2 "To" → "None"
    (N,   A,  OUT, SUBD,   (N,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.2.3 "None": already pre-approved
    (NO,  A,  OUT, SUBD,   (NO,  A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.2.3 "None + Pending Out": already pre-approved
    (T,   A,  OUT, SUBD,   (T,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.2.3 "To": already pre-approved
    (N,   A,  OUT, UNSUBD, (N,   NA, NOFWD, NOREPLY, P0,    PUSH)),   // A.2.4 "None": cancels the pre-approval (§3.4)
    (NO,  A,  OUT, UNSUBD, (NO,  NA, NOFWD, NOREPLY, P0,    PUSH)),   // A.2.4 "None + Pending Out": cancels it
    (T,   A,  OUT, UNSUBD, (T,   NA, NOFWD, NOREPLY, P0,    PUSH)),   // A.2.4 "To": cancels it
    (N,   A,  IN,  SUB,    (F,   NA, NOFWD, REPLY,   PCUR,  PUSH)),   // A.3.1 "None", pre-approved → "From", answered for the user (§3.4)
    (NO,  A,  IN,  SUB,    (FO,  NA, NOFWD, REPLY,   PCUR,  PUSH)),   // A.3.1 "None + Pending Out", pre-approved → "From + Pending Out"
    (T,   A,  IN,  SUB,    (B,   NA, NOFWD, REPLY,   PCUR,  PUSH)),   // A.3.1 "To", pre-approved → "Both"
    (N,   A,  IN,  UNSUB,  (N,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.2 "None": no change
    (NO,  A,  IN,  UNSUB,  (NO,  A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.2 "None + Pending Out": no change
    (T,   A,  IN,  UNSUB,  (T,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.2 "To": no change
    (N,   A,  IN,  SUBD,   (N,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.3 "None": no change
    (NO,  A,  IN,  SUBD,   (T,   A,  FWD,   NOREPLY, P0,    PUSH)),   // A.3.3 "None + Pending Out" → "To", approval kept
    (T,   A,  IN,  SUBD,   (T,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.3 "To": no change
    (N,   A,  IN,  UNSUBD, (N,   A,  NOFWD, NOREPLY, P0,    NOPUSH)), // A.3.4 "None": no change
    (NO,  A,  IN,  UNSUBD, (N,   A,  FWD,   NOREPLY, P0,    PUSH)),   // A.3.4 "None + Pending Out" → "None"
    (T,   A,  IN,  UNSUBD, (N,   A,  FWD,   NOREPLY, P0,    PUSH)),   // A.3.4 "To" → "None"
];

#[test]
fn appendix_a() {
    for &(state, approved, direction, event, expected) in APPENDIX_A {
        let (new_state, new_approved, forward, auto_reply, presence, roster_push) = expected;
        let want = Transition {
            state: new_state,
            approved: new_approved,
            forward,
            auto_reply,
            presence,
            roster_push,
        };
        let got = transition(state, approved, direction, event);
        assert_eq!(
            got,
            want,
            "{state} (approved {approved}), {direction:?} {}",
            event.name()
        );
    }
}

#[test]
fn appendix_a_covers_every_defined_state_and_event_once() {
    assert_eq!(APPENDIX_A.len(), 72 + 24);
    for state in SubscriptionState::ALL {
        for direction in [OUT, IN] {
            for event in SubscriptionStanza::ALL {
                let n = APPENDIX_A
                    .iter()
                    .filter(|r| (r.0, r.1, r.2, r.3) == (state, false, direction, event))
                    .count();
                assert_eq!(n, 1, "{state} {direction:?} {}", event.name());
            }
        }
    }
}

/// A.1 names, and states a store should never hold: they are read as the
/// nearest defined state; a pre-approval flag next to `from` means nothing.
#[test]
fn state_names_and_undefined_states() {
    let names: Vec<&str> = SubscriptionState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "None",
            "None + Pending Out",
            "None + Pending In",
            "None + Pending Out+In",
            "To",
            "To + Pending In",
            "From",
            "From + Pending Out",
            "Both"
        ]
    );
    let to_out = SubscriptionState {
        pending_out: true,
        ..T
    };
    assert!(!to_out.is_defined());
    assert_eq!(transition(to_out, false, IN, UNSUBD).state, N);
    let both_in_out = SubscriptionState {
        pending_out: true,
        pending_in: true,
        ..B
    };
    let t = transition(both_in_out, true, OUT, UNSUBD);
    assert_eq!((t.state, t.approved, t.forward), (T, false, true));
    // approved next to "From" is ignored: the inbound subscribe is answered
    // because of "From", not the flag, and nothing is pushed.
    let t = transition(F, true, IN, SUB);
    assert_eq!(
        (t.state, t.approved, t.auto_reply, t.roster_push),
        (F, false, REPLY, false)
    );
}

// --- whole exchanges -------------------------------------------------------------

const JULIET: &str = "juliet@example.com";
const ROMEO: &str = "romeo@example.com";

/// Juliet: 1 = balcony, 2 = chamber; Romeo: 3 = orchard, 4 = garden. All
/// available and interested.
fn lovers() -> World {
    let mut w = World::new(ImConfig::default());
    w.bind(1, "juliet@example.com/balcony");
    w.bind(2, "juliet@example.com/chamber");
    w.bind(3, "romeo@example.com/orchard");
    w.bind(4, "romeo@example.com/garden");
    for s in 1..=4 {
        w.send(s, roster_get("r", None));
        w.send(s, presence(None, None));
    }
    w.clear();
    w
}

fn state_of(w: &World, user: &str, contact: &str) -> Option<(SubscriptionState, bool, bool)> {
    w.item(user, contact)
        .map(|i| (i.state(), i.approved, i.in_roster))
}

/// §3.1: request, approval, presence; then the reverse direction.
#[test]
fn subscription_handshake_between_local_users() {
    let mut w = lovers();
    // §3.1.1–§3.1.3: Juliet asks; her item gets ask='subscribe' (pushed to
    // both her resources); Romeo's available resources get the request
    // stamped with her bare JID; his roster holds an unlisted record.
    w.send(
        1,
        presence(Some("subscribe"), Some("romeo@example.com/orchard")),
    );
    for s in [1, 2] {
        let got = w.take(s);
        assert_eq!(got.len(), 1);
        let item = pushed_item(&got[0]);
        assert_eq!(item.attr("jid"), Some(ROMEO));
        assert_eq!(item.attr("ask"), Some("subscribe"));
        assert_eq!(item.attr("subscription"), Some("none"));
    }
    for s in [3, 4] {
        assert_eq!(
            summary(&w.take(s)),
            rows(&[("presence:subscribe", JULIET, ROMEO)])
        );
    }
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((NO, false, true)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((NI, false, false)));
    assert_eq!(
        w.version(ROMEO),
        0,
        "an unlisted record is not a roster change"
    );

    // §3.1.4–§3.1.6: Romeo approves. His item becomes "from" (listed,
    // pushed); Juliet's resources get the approval and a push with "to",
    // then Romeo's presence from each of his resources.
    w.send(4, presence(Some("subscribed"), Some(JULIET)));
    for s in [3, 4] {
        let got = w.take(s);
        assert_eq!(got.len(), 1);
        assert_eq!(pushed_item(&got[0]).attr("subscription"), Some("from"));
    }
    for s in [1, 2] {
        let got = w.take(s);
        let kinds: Vec<_> = summary(&got).into_iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            kinds,
            [
                ("presence:subscribed".to_owned(), ROMEO.to_owned()),
                ("iq:set".to_owned(), String::new()),
                (
                    "presence".to_owned(),
                    "romeo@example.com/orchard".to_owned()
                ),
                ("presence".to_owned(), "romeo@example.com/garden".to_owned()),
            ]
        );
        let item = pushed_item(&got[1]);
        assert_eq!(item.attr("subscription"), Some("to"));
        assert_eq!(item.attr("ask"), None);
    }
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((T, false, true)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((F, false, true)));

    // The reverse: Romeo asks, Juliet approves → both.
    w.send(3, presence(Some("subscribe"), Some(JULIET)));
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((TI, false, true)));
    w.send(2, presence(Some("subscribed"), Some(ROMEO)));
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((B, false, true)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((B, false, true)));
    // Romeo's resources got Juliet's presence from both her resources.
    let got = w.take(3);
    let from_juliet: Vec<_> = summary(&got)
        .into_iter()
        .filter(|r| r.0 == "presence")
        .map(|r| r.1)
        .collect();
    assert_eq!(
        from_juliet,
        ["juliet@example.com/balcony", "juliet@example.com/chamber"]
    );
}

/// §3.4: pre-approval, then the request is answered by the server.
#[test]
fn pre_approved_request_is_answered_for_the_user() {
    let mut w = lovers();
    // Romeo pre-approves Juliet, who is not in his roster: a new item with
    // approved='true' is pushed, nothing is routed.
    w.send(3, presence(Some("subscribed"), Some(JULIET)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((N, true, true)));
    let got = w.take(4);
    assert_eq!(pushed_item(&got[0]).attr("approved"), Some("true"));
    assert!(w.take(1).is_empty() && w.take(2).is_empty());
    w.clear();

    // Juliet asks: Romeo's clients never see the request; Juliet gets
    // "subscribed" from Romeo's bare JID and his presence.
    w.send(1, presence(Some("subscribe"), Some(ROMEO)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((F, false, true)));
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((T, false, true)));
    for s in [3, 4] {
        let got = w.take(s);
        assert!(got.iter().all(|st| st.type_attr() != Some("subscribe")));
        let item = pushed_item(&got[0]);
        assert_eq!(item.attr("subscription"), Some("from"));
        assert_eq!(item.attr("approved"), None);
    }
    let got = summary(&w.take(1));
    assert!(got.contains(&("presence:subscribed".into(), ROMEO.into(), JULIET.into())));
    assert!(got.contains(&(
        "presence".into(),
        "romeo@example.com/orchard".into(),
        JULIET.into()
    )));

    // Cancelling a pre-approval: outbound unsubscribed, not routed.
    w.send(3, presence(Some("subscribed"), Some("nurse@example.com")));
    w.clear();
    w.send(3, presence(Some("unsubscribed"), Some("nurse@example.com")));
    assert_eq!(
        state_of(&w, ROMEO, "nurse@example.com"),
        Some((N, false, true))
    );
    assert_eq!(pushed_item(&w.take(3)[0]).attr("approved"), None);
}

/// §3.1.3: a request waiting for an offline user is stored and delivered at
/// each initial presence until answered; a denial removes the record.
#[test]
fn pending_request_is_redelivered_until_denied() {
    let mut w = World::new(ImConfig::default());
    w.bind(1, "juliet@example.com/balcony");
    w.bind(3, "romeo@example.com/orchard");
    w.send(3, roster_get("g0", None));
    w.send(3, presence(None, None));
    // Juliet is bound but not available: the request is recorded only.
    let mut request = presence(Some("subscribe"), Some(JULIET));
    let mut nick = minidom::Element::bare("nick", "http://jabber.org/protocol/nick");
    nick.append_text("Romeo".to_owned());
    request.element_mut().append_child(nick);
    w.send(3, request);
    assert!(w.take(1).is_empty());
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((NI, false, false)));
    // A roster get does not show the unlisted record.
    w.send(1, roster_get("g1", None));
    let got = w.take(1);
    assert_eq!(got[0].iq_payload().unwrap().children().count(), 0);
    // Initial presence: the request, with its extension, arrives last.
    w.send(1, presence(None, None));
    let got = w.take(1);
    let last = got.last().unwrap();
    assert_eq!(last.type_attr(), Some("subscribe"));
    assert_eq!(last.from(), Some(ROMEO));
    assert!(
        last.element()
            .has_child("nick", "http://jabber.org/protocol/nick")
    );
    // Again on the next session.
    w.bind(2, "juliet@example.com/chamber");
    w.send(2, presence(None, None));
    assert_eq!(w.take(2).last().unwrap().type_attr(), Some("subscribe"));
    // Denial: the record is gone, nothing is pushed to Juliet; Romeo gets
    // the denial and a push without ask (None + Pending Out → None).
    w.clear();
    w.send(1, presence(Some("unsubscribed"), Some(ROMEO)));
    assert_eq!(w.item(JULIET, ROMEO), None);
    assert!(w.take(1).is_empty() && w.take(2).is_empty());
    let got = w.take(3);
    assert_eq!(
        summary(&got),
        rows(&[
            ("presence:unsubscribed", JULIET, ROMEO),
            ("iq:set", "", "romeo@example.com/orchard")
        ])
    );
    assert_eq!(pushed_item(&got[1]).attr("ask"), None);
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((N, false, true)));
}

/// A.3.1 (*): a subscribe from a contact that already has "from" is
/// answered "subscribed" by the server (resynchronisation), not delivered.
#[test]
fn resubscribe_from_a_subscriber_is_auto_answered() {
    let mut w = lovers();
    let mut item = RosterItem::new(bare(ROMEO));
    item.subscription = Subscription::From;
    w.seed(JULIET, item);
    // Romeo's side thinks the request is still pending (lost state).
    let mut item = RosterItem::new(bare(JULIET));
    item.pending_out = true;
    w.seed(ROMEO, item);
    w.send(3, presence(Some("subscribe"), Some(JULIET)));
    assert!(w.take(1).is_empty() && w.take(2).is_empty());
    // The answer fixes Romeo's state; Juliet's presence follows (our
    // choice, see the subscription module docs).
    assert_eq!(
        summary(&w.take(3)),
        rows(&[
            ("presence:subscribed", JULIET, ROMEO),
            ("iq:set", "", "romeo@example.com/orchard"),
            ("presence", "juliet@example.com/balcony", ROMEO),
            ("presence", "juliet@example.com/chamber", ROMEO),
        ])
    );
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((T, false, true)));
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((F, false, true)));
}

/// §3.2.2: revoking "from" sends unavailable from each available resource
/// before the unsubscribed; §3.3.3 likewise for an inbound unsubscribe.
#[test]
fn revocation_sends_unavailable_first() {
    let mut w = lovers();
    for (user, contact) in [(JULIET, ROMEO), (ROMEO, JULIET)] {
        let mut item = RosterItem::new(bare(contact));
        item.subscription = Subscription::Both;
        w.seed(user, item);
    }
    w.send(1, presence(Some("unsubscribed"), Some(ROMEO)));
    let got = summary(&w.take(3));
    assert_eq!(
        got,
        rows(&[
            ("presence:unavailable", "juliet@example.com/balcony", ROMEO),
            ("presence:unavailable", "juliet@example.com/chamber", ROMEO),
            ("presence:unsubscribed", JULIET, ROMEO),
            ("iq:set", "", "romeo@example.com/orchard"),
        ])
    );
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((T, false, true)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((F, false, true)));

    // Juliet now unsubscribes from Romeo (§3.3): she loses "to", he loses
    // "from"; his server sends her unavailable from his resources, then
    // delivers the unsubscribe to him and pushes.
    w.clear();
    w.send(1, presence(Some("unsubscribe"), Some(ROMEO)));
    assert_eq!(state_of(&w, JULIET, ROMEO), Some((N, false, true)));
    assert_eq!(state_of(&w, ROMEO, JULIET), Some((N, false, true)));
    assert_eq!(
        summary(&w.take(1)),
        rows(&[
            ("presence:unavailable", "romeo@example.com/orchard", JULIET),
            ("presence:unavailable", "romeo@example.com/garden", JULIET),
            ("iq:set", "", "juliet@example.com/balcony"),
        ])
    );
    assert_eq!(
        summary(&w.take(3)),
        rows(&[
            ("presence:unsubscribe", JULIET, ROMEO),
            ("iq:set", "", "romeo@example.com/orchard"),
        ])
    );
}

/// Remote contacts: outbound stanzas leave stamped with bare JIDs; the
/// inbound answer changes the state.
#[test]
fn remote_contact() {
    let mut w = lovers();
    let mut request = presence(Some("subscribe"), Some("mercutio@verona.lit/sword"));
    request.set_id(Some("s1"));
    w.send(1, request);
    assert_eq!(
        summary(&w.remote),
        rows(&[("presence:subscribe", JULIET, "mercutio@verona.lit")])
    );
    assert_eq!(w.remote[0].id(), Some("s1"));
    w.receive_remote(presence(Some("subscribed"), Some(JULIET)).tap_from("mercutio@verona.lit"));
    assert_eq!(
        state_of(&w, JULIET, "mercutio@verona.lit"),
        Some((T, false, true))
    );
    // A second "subscribed" changes nothing: neither delivered nor
    // written.
    w.clear();
    let before = w.version(JULIET);
    w.receive_remote(presence(Some("subscribed"), Some(JULIET)).tap_from("mercutio@verona.lit"));
    assert!(w.take(1).is_empty());
    assert_eq!(w.version(JULIET), before);
}

#[test]
fn bad_outbound_subscriptions() {
    let mut w = lovers();
    w.send(1, presence(Some("subscribe"), None));
    let got = w.take(1);
    assert_eq!(
        got[0].error().unwrap().condition,
        StanzaErrorCondition::BadRequest
    );
    w.send(1, presence(Some("subscribe"), Some("@@")));
    assert_eq!(
        w.take(1)[0].error().unwrap().condition,
        StanzaErrorCondition::JidMalformed
    );
    // To oneself: ignored.
    w.send(1, presence(Some("subscribe"), Some(JULIET)));
    assert!(w.take(1).is_empty() && w.take(2).is_empty());
    assert_eq!(w.item(JULIET, JULIET), None);
    // Inbound without a usable from: ignored.
    let actions =
        w.im.inbound_subscription(
            &w.router,
            &mut w.store,
            &bare(JULIET),
            &parse("<presence xmlns='jabber:client' type='subscribe' to='juliet@example.com'/>"),
        )
        .unwrap();
    assert!(actions.is_empty());
}

trait TapFrom {
    fn tap_from(self, from: &str) -> Self;
}

impl TapFrom for xmpp_sansio::stanza::Stanza {
    fn tap_from(mut self, from: &str) -> Self {
        self.set_from(Some(from));
        self
    }
}

// --- properties ------------------------------------------------------------------

mod properties {
    use super::*;
    use im_common::roster_set;
    use proptest::prelude::*;

    /// What one of the two users does.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Send(SubscriptionStanza),
        RemoveItem,
        AddItem,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop::sample::select(SubscriptionStanza::ALL.to_vec()).prop_map(Op::Send),
            1 => Just(Op::RemoveItem),
            1 => Just(Op::AddItem),
        ]
    }

    /// (subscription, pending out, pending in, approved) of `contact` in
    /// `user`'s roster; an absent record is None.
    fn view(w: &World, user: &str, contact: &str) -> (Subscription, bool, bool, bool) {
        w.item(user, contact)
            .map_or((Subscription::None, false, false, false), |i| {
                (
                    i.subscription,
                    i.pending_out,
                    i.pending_in.is_some(),
                    i.approved,
                )
            })
    }

    proptest! {
        /// Between two local users every stanza arrives, so the two
        /// rosters always mirror each other (RFC 6121 §3): Juliet has "to"
        /// exactly when Romeo has "from", Juliet is Pending Out exactly when
        /// Romeo is Pending In, and the same the other way; every state is
        /// one of Appendix A.1; `approved` is only set in None, None +
        /// Pending Out or To; a record outside the roster is a bare
        /// pending request.
        #[test]
        fn local_rosters_mirror_each_other(ops in prop::collection::vec((any::<bool>(), op()), 0..24)) {
            let mut w = lovers();
            for (by_juliet, op) in ops {
                let (session, contact) = if by_juliet { (1, ROMEO) } else { (3, JULIET) };
                match op {
                    Op::Send(kind) => w.send(session, presence(Some(kind.name()), Some(contact))),
                    Op::RemoveItem => w.send(session, roster_set("rm", &format!("<item jid='{contact}' subscription='remove'/>"))),
                    Op::AddItem => w.send(session, roster_set("add", &format!("<item jid='{contact}'/>"))),
                }
                let j = view(&w, JULIET, ROMEO);
                let r = view(&w, ROMEO, JULIET);
                prop_assert_eq!(j.0.has_to(), r.0.has_from(), "{:?} {:?}", j, r);
                prop_assert_eq!(j.0.has_from(), r.0.has_to(), "{:?} {:?}", j, r);
                prop_assert_eq!(j.1, r.2, "{:?} {:?}", j, r);
                prop_assert_eq!(j.2, r.1, "{:?} {:?}", j, r);
                for (user, contact) in [(JULIET, ROMEO), (ROMEO, JULIET)] {
                    if let Some(item) = w.item(user, contact) {
                        prop_assert!(item.state().is_defined());
                        if item.approved {
                            prop_assert!(!item.subscription.has_from() && item.pending_in.is_none());
                        }
                        if !item.in_roster {
                            prop_assert_eq!(item.state(), NI);
                            prop_assert!(!item.approved);
                        }
                    }
                }
            }
        }
    }
}
