//! Router tests (RFC 6120 §10, RFC 6121 §8). The `m*`, `p*` and `q*` tests
//! are the rows of the decision tables in the `router` module docs (and of
//! `shared/spec/routing.md` §4–§6), one test per row; each asserts every
//! column of its row. Then: no `to`, domains, remote, malformed `to`, error
//! stanzas, priorities, bind/unbind/conflicts, presence, scale, proptest.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use xmpp_sansio::error::{StanzaError, StanzaErrorCondition};
use xmpp_sansio::ns::JABBER_CLIENT;
use xmpp_sansio::router::{
    Accounts, BindOutcome, ConflictPolicy, Decision, DropReason, LocalTarget, Router, SessionId,
};
use xmpp_sansio::stanza::{Stanza, StanzaKind};
use xmpp_sansio::{BareJid, FullJid, Jid};

// --- fixture -----------------------------------------------------------------

const JULIET: &str = "juliet@example.com";
const ROMEO: &str = "romeo@example.com";
/// Romeo's session: the sender of every stanza unless said otherwise.
const ROMEO_SESSION: SessionId = 100;

/// The state of Juliet's account (the addressee). Session 1 is always the
/// resource `balcony` (the "full, match" JID) when there are sessions.
#[derive(Clone, Copy, Debug)]
enum State {
    /// No account.
    Missing,
    /// Account, no session.
    NoSessions,
    /// 1 = balcony, bound but never available.
    ConnectedOnly,
    /// 1 = balcony, available with priority −1.
    NegativeOnly,
    /// 1 = balcony (1), 2 = garden (−1), 3 = hall (connected only).
    OneNonNegative,
    /// 1 = balcony (1), 2 = garden (5), 3 = hall (5), 4 = attic (−1),
    /// 5 = cellar (connected only).
    TwoNonNegative,
}

fn bare(s: &str) -> BareJid {
    s.parse().unwrap()
}

fn full(s: &str) -> FullJid {
    s.parse().unwrap()
}

fn romeo() -> FullJid {
    full("romeo@example.com/orchard")
}

fn setup(state: State, offline: bool) -> (Router, HashSet<BareJid>) {
    let mut r = Router::new(["example.com".to_owned()]).with_offline_storage(offline);
    let mut accounts: HashSet<BareJid> = [bare(ROMEO)].into();
    assert_eq!(
        r.bind(ROMEO_SESSION, romeo(), ConflictPolicy::RefuseNew),
        BindOutcome::Bound
    );
    r.set_presence(ROMEO_SESSION, true, 0);
    let sessions: &[(SessionId, &str, Option<i8>)] = match state {
        State::Missing => return (r, accounts),
        State::NoSessions => &[],
        State::ConnectedOnly => &[(1, "balcony", None)],
        State::NegativeOnly => &[(1, "balcony", Some(-1))],
        State::OneNonNegative => &[
            (1, "balcony", Some(1)),
            (2, "garden", Some(-1)),
            (3, "hall", None),
        ],
        State::TwoNonNegative => &[
            (1, "balcony", Some(1)),
            (2, "garden", Some(5)),
            (3, "hall", Some(5)),
            (4, "attic", Some(-1)),
            (5, "cellar", None),
        ],
    };
    accounts.insert(bare(JULIET));
    for &(id, res, prio) in sessions {
        let jid = bare(JULIET).with_resource(res).unwrap();
        assert_eq!(
            r.bind(id, jid, ConflictPolicy::RefuseNew),
            BindOutcome::Bound
        );
        if let Some(p) = prio {
            r.set_presence(id, true, p);
        }
    }
    (r, accounts)
}

fn stanza(kind: StanzaKind, ty: Option<&str>, to: Option<&str>) -> Stanza {
    let mut s = Stanza::new(kind, JABBER_CLIENT);
    s.set_attr("type", ty);
    s.set_to(to);
    s.set_id(Some("s1"));
    s.set_from(Some(romeo().as_str()));
    s
}

fn message(ty: &str, to: &str) -> Stanza {
    stanza(StanzaKind::Message, Some(ty), Some(to))
}

fn presence(ty: Option<&str>, to: &str) -> Stanza {
    stanza(StanzaKind::Presence, ty, Some(to))
}

fn iq(ty: &str, to: &str) -> Stanza {
    stanza(StanzaKind::Iq, Some(ty), Some(to))
}

const BARE: &str = JULIET;
const FULL_MATCH: &str = "juliet@example.com/balcony";
const FULL_NO_MATCH: &str = "juliet@example.com/nowhere";

fn deliver(ids: &[SessionId]) -> Decision {
    Decision::Deliver(ids.to_vec())
}

fn bounce(c: StanzaErrorCondition) -> Decision {
    Decision::Bounce(StanzaError::new(c))
}

fn e() -> Decision {
    bounce(StanzaErrorCondition::ServiceUnavailable)
}

fn s(reason: DropReason) -> Decision {
    Decision::Drop(reason)
}

fn account(user: &str) -> Decision {
    Decision::Server(LocalTarget::Account(bare(user)))
}

/// Offline storage for Juliet when on, `service-unavailable` when off.
fn o(offline: bool) -> Decision {
    if offline {
        Decision::StoreOffline(bare(JULIET))
    } else {
        e()
    }
}

/// "O*": what a missing account gets so that it looks like an offline one.
fn o_star(offline: bool) -> Decision {
    if offline {
        s(DropReason::NoSuchAccount)
    } else {
        e()
    }
}

const MESSAGE_TYPES: [&str; 5] = ["normal", "chat", "groupchat", "headline", "error"];

/// Routes a message of each type (in `MESSAGE_TYPES` order) to `to`, with
/// offline storage off and on, and compares with `expected(offline)`.
fn message_row(state: State, to: &str, expected: impl Fn(bool) -> [Decision; 5]) {
    for offline in [false, true] {
        let (r, accounts) = setup(state, offline);
        let want = expected(offline);
        for (ty, want) in MESSAGE_TYPES.iter().zip(want) {
            let got = r.route(&romeo(), &message(ty, to), &accounts);
            assert_eq!(
                got, want,
                "{state:?}, message type={ty} to={to}, offline={offline}"
            );
        }
    }
}

// --- messages: one test per row ---------------------------------------------

#[test]
fn m01_missing_account_bare() {
    use DropReason::NoSuchAccount;
    message_row(State::Missing, BARE, |o| {
        [
            o_star(o),
            o_star(o),
            e(),
            s(NoSuchAccount),
            s(NoSuchAccount),
        ]
    });
}

#[test]
fn m02_missing_account_full() {
    use DropReason::NoSuchAccount;
    message_row(State::Missing, FULL_NO_MATCH, |o| {
        [
            s(NoSuchAccount),
            o_star(o),
            s(NoSuchAccount),
            s(NoSuchAccount),
            s(NoSuchAccount),
        ]
    });
}

#[test]
fn m03_no_sessions_bare() {
    use DropReason::*;
    message_row(State::NoSessions, BARE, |off| {
        [o(off), o(off), e(), s(NoAvailableResource), s(ErrorStanza)]
    });
}

#[test]
fn m04_no_sessions_full_no_match() {
    use DropReason::NoSuchResource;
    message_row(State::NoSessions, FULL_NO_MATCH, |off| {
        [
            s(NoSuchResource),
            o(off),
            s(NoSuchResource),
            s(NoSuchResource),
            s(NoSuchResource),
        ]
    });
}

#[test]
fn m05_connected_only_bare() {
    use DropReason::*;
    message_row(State::ConnectedOnly, BARE, |off| {
        [o(off), o(off), e(), s(NoAvailableResource), s(ErrorStanza)]
    });
}

#[test]
fn m06_connected_only_full_match() {
    message_row(State::ConnectedOnly, FULL_MATCH, |_| {
        [
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
        ]
    });
}

#[test]
fn m07_connected_only_full_no_match() {
    use DropReason::NoSuchResource;
    message_row(State::ConnectedOnly, FULL_NO_MATCH, |off| {
        [
            s(NoSuchResource),
            o(off),
            s(NoSuchResource),
            s(NoSuchResource),
            s(NoSuchResource),
        ]
    });
}

#[test]
fn m08_negative_only_bare() {
    use DropReason::*;
    message_row(State::NegativeOnly, BARE, |off| {
        [o(off), o(off), e(), s(NoAvailableResource), s(ErrorStanza)]
    });
}

#[test]
fn m09_negative_only_full_match() {
    message_row(State::NegativeOnly, FULL_MATCH, |_| {
        [
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
        ]
    });
}

#[test]
fn m10_negative_only_full_no_match() {
    use DropReason::NoSuchResource;
    message_row(State::NegativeOnly, FULL_NO_MATCH, |off| {
        [
            s(NoSuchResource),
            o(off),
            s(NoSuchResource),
            s(NoSuchResource),
            s(NoSuchResource),
        ]
    });
}

#[test]
fn m11_one_non_negative_bare() {
    message_row(State::OneNonNegative, BARE, |_| {
        [
            deliver(&[1]),
            deliver(&[1]),
            e(),
            deliver(&[1]),
            s(DropReason::ErrorStanza),
        ]
    });
}

#[test]
fn m12_one_non_negative_full_match() {
    message_row(State::OneNonNegative, FULL_MATCH, |_| {
        [
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
        ]
    });
}

#[test]
fn m13_one_non_negative_full_no_match() {
    use DropReason::NoSuchResource;
    message_row(State::OneNonNegative, FULL_NO_MATCH, |_| {
        [
            s(NoSuchResource),
            deliver(&[1]),
            s(NoSuchResource),
            s(NoSuchResource),
            s(NoSuchResource),
        ]
    });
}

#[test]
fn m14_two_non_negative_bare() {
    // M = highest priority (5: garden and hall, a tie → both); A = every
    // non-negative session (balcony 1, garden 5, hall 5), never attic (−1)
    // or cellar (connected only).
    message_row(State::TwoNonNegative, BARE, |_| {
        [
            deliver(&[2, 3]),
            deliver(&[2, 3]),
            e(),
            deliver(&[1, 2, 3]),
            s(DropReason::ErrorStanza),
        ]
    });
}

#[test]
fn m15_two_non_negative_full_match() {
    // Balcony has the lowest non-negative priority; a full JID still wins.
    message_row(State::TwoNonNegative, FULL_MATCH, |_| {
        [
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
            deliver(&[1]),
        ]
    });
}

#[test]
fn m16_two_non_negative_full_no_match() {
    use DropReason::NoSuchResource;
    message_row(State::TwoNonNegative, FULL_NO_MATCH, |_| {
        [
            s(NoSuchResource),
            deliver(&[2, 3]),
            s(NoSuchResource),
            s(NoSuchResource),
            s(NoSuchResource),
        ]
    });
}

#[test]
fn m17_full_match_of_negative_session_among_others() {
    // Attic (−1) never gets bare-JID traffic but does get its full JID.
    let (r, accounts) = setup(State::TwoNonNegative, false);
    for ty in MESSAGE_TYPES {
        assert_eq!(
            r.route(
                &romeo(),
                &message(ty, "juliet@example.com/attic"),
                &accounts
            ),
            deliver(&[4]),
            "{ty}"
        );
    }
}

#[test]
fn m18_unknown_message_type_is_normal() {
    let (r, accounts) = setup(State::NoSessions, false);
    assert_eq!(r.route(&romeo(), &message("bogus", BARE), &accounts), e());
    let (r, accounts) = setup(State::OneNonNegative, false);
    let mut m = stanza(StanzaKind::Message, None, Some(FULL_NO_MATCH));
    assert_eq!(
        r.route(&romeo(), &m, &accounts),
        s(DropReason::NoSuchResource)
    );
    m.set_to(Some(BARE));
    assert_eq!(r.route(&romeo(), &m, &accounts), deliver(&[1]));
}

// --- presence: one test per row ---------------------------------------------

const AVAILABILITY: [Option<&str>; 3] = [None, Some("unavailable"), Some("error")];
const SUBSCRIPTION: [Option<&str>; 5] = [
    Some("subscribe"),
    Some("subscribed"),
    Some("unsubscribe"),
    Some("unsubscribed"),
    Some("probe"),
];

fn presence_row(state: State, to: &str, availability: Decision) {
    let (r, accounts) = setup(state, false);
    for ty in AVAILABILITY {
        let got = r.route(&romeo(), &presence(ty, to), &accounts);
        assert_eq!(got, availability, "{state:?} presence {ty:?} to {to}");
    }
    for ty in SUBSCRIPTION {
        let got = r.route(&romeo(), &presence(ty, to), &accounts);
        assert_eq!(got, account(JULIET), "{state:?} presence {ty:?} to {to}");
    }
}

#[test]
fn p01_missing_account_every_type_is_dropped() {
    let (r, accounts) = setup(State::Missing, false);
    for to in [BARE, FULL_NO_MATCH] {
        for ty in AVAILABILITY.iter().chain(&SUBSCRIPTION) {
            assert_eq!(
                r.route(&romeo(), &presence(*ty, to), &accounts),
                s(DropReason::NoSuchAccount),
                "{ty:?} to {to}"
            );
        }
    }
}

#[test]
fn p02_bare_with_available_sessions_all_of_them_negative_included() {
    presence_row(State::TwoNonNegative, BARE, deliver(&[1, 2, 3, 4]));
}

#[test]
fn p03_bare_only_negative_session_still_gets_presence() {
    presence_row(State::NegativeOnly, BARE, deliver(&[1]));
}

#[test]
fn p04_bare_no_available_session() {
    presence_row(
        State::ConnectedOnly,
        BARE,
        s(DropReason::NoAvailableResource),
    );
    presence_row(State::NoSessions, BARE, s(DropReason::NoAvailableResource));
}

#[test]
fn p05_full_match_connected_session() {
    presence_row(State::ConnectedOnly, FULL_MATCH, deliver(&[1]));
}

#[test]
fn p06_full_match_available_session() {
    presence_row(State::TwoNonNegative, FULL_MATCH, deliver(&[1]));
}

#[test]
fn p07_full_no_match() {
    presence_row(
        State::TwoNonNegative,
        FULL_NO_MATCH,
        s(DropReason::NoSuchResource),
    );
    presence_row(
        State::NoSessions,
        FULL_NO_MATCH,
        s(DropReason::NoSuchResource),
    );
}

#[test]
fn p08_unknown_presence_type_is_bad_request() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    assert_eq!(
        r.route(&romeo(), &presence(Some("bogus"), BARE), &accounts),
        bounce(StanzaErrorCondition::BadRequest)
    );
}

// --- iq: one test per row ----------------------------------------------------

const IQ_TYPES: [&str; 4] = ["get", "set", "result", "error"];

fn iq_row(state: State, to: &str, expected: [Decision; 4]) {
    let (r, accounts) = setup(state, false);
    for (ty, want) in IQ_TYPES.iter().zip(expected) {
        let got = r.route(&romeo(), &iq(ty, to), &accounts);
        assert_eq!(got, want, "{state:?} iq {ty} to {to}");
    }
}

#[test]
fn q01_missing_account_bare() {
    use DropReason::NoSuchAccount;
    iq_row(
        State::Missing,
        BARE,
        [e(), e(), s(NoSuchAccount), s(NoSuchAccount)],
    );
}

#[test]
fn q02_missing_account_full() {
    use DropReason::NoSuchAccount;
    iq_row(
        State::Missing,
        FULL_NO_MATCH,
        [e(), e(), s(NoSuchAccount), s(NoSuchAccount)],
    );
}

#[test]
fn q03_bare_handled_for_the_account_in_every_session_state() {
    for state in [
        State::NoSessions,
        State::ConnectedOnly,
        State::NegativeOnly,
        State::OneNonNegative,
        State::TwoNonNegative,
    ] {
        iq_row(
            state,
            BARE,
            [
                account(JULIET),
                account(JULIET),
                account(JULIET),
                account(JULIET),
            ],
        );
    }
}

#[test]
fn q04_full_match_connected_session() {
    iq_row(
        State::ConnectedOnly,
        FULL_MATCH,
        [deliver(&[1]), deliver(&[1]), deliver(&[1]), deliver(&[1])],
    );
}

#[test]
fn q05_full_match_negative_session() {
    iq_row(
        State::NegativeOnly,
        FULL_MATCH,
        [deliver(&[1]), deliver(&[1]), deliver(&[1]), deliver(&[1])],
    );
}

#[test]
fn q06_full_no_match() {
    use DropReason::NoSuchResource;
    for state in [State::NoSessions, State::TwoNonNegative] {
        iq_row(
            state,
            FULL_NO_MATCH,
            [e(), e(), s(NoSuchResource), s(NoSuchResource)],
        );
    }
}

#[test]
fn q07_iq_without_valid_type_is_bad_request() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    let bad = bounce(StanzaErrorCondition::BadRequest);
    assert_eq!(
        r.route(
            &romeo(),
            &stanza(StanzaKind::Iq, None, Some(FULL_MATCH)),
            &accounts
        ),
        bad
    );
    assert_eq!(r.route(&romeo(), &iq("query", FULL_MATCH), &accounts), bad);
}

// --- no `to` (RFC 6120 §10.3) ------------------------------------------------

#[test]
fn n01_message_without_to_goes_to_senders_bare_jid() {
    let (mut r, accounts) = setup(State::OneNonNegative, false);
    r.bind(
        101,
        full("romeo@example.com/car"),
        ConflictPolicy::RefuseNew,
    );
    r.set_presence(101, true, 3);
    for ty in ["normal", "chat", "headline"] {
        let m = stanza(StanzaKind::Message, Some(ty), None);
        let want = if ty == "headline" {
            deliver(&[ROMEO_SESSION, 101])
        } else {
            deliver(&[101])
        };
        assert_eq!(r.route(&romeo(), &m, &accounts), want, "{ty}");
    }
    let m = stanza(StanzaKind::Message, Some("groupchat"), None);
    assert_eq!(r.route(&romeo(), &m, &accounts), e());
}

#[test]
fn n02_message_without_to_sender_not_available() {
    let (mut r, accounts) = setup(State::Missing, true);
    r.set_presence(ROMEO_SESSION, false, 0);
    let m = stanza(StanzaKind::Message, Some("chat"), None);
    assert_eq!(
        r.route(&romeo(), &m, &accounts),
        Decision::StoreOffline(bare(ROMEO))
    );
}

#[test]
fn n03_presence_without_to_is_broadcast() {
    let (r, accounts) = setup(State::Missing, false);
    for ty in [None, Some("unavailable")] {
        assert_eq!(
            r.route(&romeo(), &stanza(StanzaKind::Presence, ty, None), &accounts),
            Decision::Server(LocalTarget::Broadcast(bare(ROMEO)))
        );
    }
}

#[test]
fn n04_typed_presence_without_to_is_for_the_account() {
    let (r, accounts) = setup(State::Missing, false);
    for ty in SUBSCRIPTION {
        assert_eq!(
            r.route(&romeo(), &stanza(StanzaKind::Presence, ty, None), &accounts),
            account(ROMEO)
        );
    }
    assert_eq!(
        r.route(
            &romeo(),
            &stanza(StanzaKind::Presence, Some("error"), None),
            &accounts
        ),
        s(DropReason::ErrorStanza)
    );
}

#[test]
fn n05_iq_without_to_is_for_the_account() {
    let (r, accounts) = setup(State::Missing, false);
    for ty in IQ_TYPES {
        assert_eq!(
            r.route(&romeo(), &stanza(StanzaKind::Iq, Some(ty), None), &accounts),
            account(ROMEO),
            "{ty}"
        );
    }
}

#[test]
fn n06_iq_to_own_bare_jid_is_for_the_account() {
    let (r, accounts) = setup(State::Missing, false);
    for ty in IQ_TYPES {
        assert_eq!(r.route(&romeo(), &iq(ty, ROMEO), &accounts), account(ROMEO));
    }
}

// --- domains, remote, malformed ----------------------------------------------

fn every_stanza(to: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    for ty in MESSAGE_TYPES {
        out.push(message(ty, to));
    }
    for ty in AVAILABILITY.iter().chain(&SUBSCRIPTION) {
        out.push(presence(*ty, to));
    }
    for ty in IQ_TYPES {
        out.push(iq(ty, to));
    }
    out
}

#[test]
fn d01_local_domain_is_the_server() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    let domain: Jid = "example.com".parse().unwrap();
    for st in every_stanza("example.com") {
        assert_eq!(
            r.route(&romeo(), &st, &accounts),
            Decision::Server(LocalTarget::Domain(domain.clone()))
        );
    }
}

#[test]
fn d02_local_domain_with_resource_is_the_server() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    let to: Jid = "example.com/announce".parse().unwrap();
    for st in every_stanza("example.com/announce") {
        assert_eq!(
            r.route(&romeo(), &st, &accounts),
            Decision::Server(LocalTarget::Domain(to.clone()))
        );
    }
}

#[test]
fn d03_domains_compare_prepared() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    assert_eq!(
        r.route(&romeo(), &message("chat", "JULIET@Example.COM"), &accounts),
        deliver(&[1])
    );
    assert_eq!(
        r.route(&romeo(), &iq("get", "EXAMPLE.com"), &accounts),
        Decision::Server(LocalTarget::Domain("example.com".parse().unwrap()))
    );
    assert!(r.is_local("Example.Com"));
}

#[test]
fn d04_second_local_domain() {
    let mut r = Router::new(["example.com".to_owned(), "example.net".to_owned()]);
    r.bind(1, full("a@example.net/x"), ConflictPolicy::RefuseNew);
    r.set_presence(1, true, 0);
    let none = |_: &BareJid| false;
    assert_eq!(
        r.route(&romeo(), &message("chat", "a@example.net"), &none),
        deliver(&[1])
    );
}

#[test]
fn r01_remote_domain_goes_to_federation() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    for to in [
        "juliet@example.org",
        "juliet@example.org/balcony",
        "example.org",
        "example.org/x",
        "sub.example.com",
    ] {
        let domain = to.parse::<Jid>().unwrap().domain().to_owned();
        for st in every_stanza(to) {
            assert_eq!(
                r.route(&romeo(), &st, &accounts),
                Decision::Remote(domain.clone()),
                "{to}"
            );
        }
    }
}

#[test]
fn x01_malformed_to_bounces_jid_malformed() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    let want = bounce(StanzaErrorCondition::JidMalformed);
    for to in [
        "",
        "@example.com",
        "juliet@",
        "juliet@example.com/",
        "a b@example.com",
    ] {
        for st in [
            message("chat", to),
            presence(None, to),
            presence(Some("subscribe"), to),
            iq("get", to),
            iq("set", to),
        ] {
            assert_eq!(r.route(&romeo(), &st, &accounts), want, "{to:?}");
            // The host can build the bounce.
            assert!(
                st.error_reply(&StanzaError::new(StanzaErrorCondition::JidMalformed))
                    .is_some()
            );
        }
    }
}

#[test]
fn x02_malformed_to_on_error_or_result_is_dropped() {
    let (r, accounts) = setup(State::OneNonNegative, false);
    for st in [
        message("error", "@x"),
        presence(Some("error"), "@x"),
        iq("error", "@x"),
    ] {
        assert_eq!(
            r.route(&romeo(), &st, &accounts),
            s(DropReason::ErrorStanza)
        );
    }
    assert_eq!(
        r.route(&romeo(), &iq("result", "@x"), &accounts),
        s(DropReason::IqResponse)
    );
}

#[test]
fn x03_error_stanzas_are_never_bounced() {
    for state in [
        State::Missing,
        State::NoSessions,
        State::ConnectedOnly,
        State::NegativeOnly,
        State::OneNonNegative,
        State::TwoNonNegative,
    ] {
        for offline in [false, true] {
            let (r, accounts) = setup(state, offline);
            for to in [
                Some(BARE),
                Some(FULL_MATCH),
                Some(FULL_NO_MATCH),
                Some("example.com"),
                Some("@bad"),
                None,
            ] {
                for kind in [StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq] {
                    let st = stanza(kind, Some("error"), to);
                    let d = r.route(&romeo(), &st, &accounts);
                    assert!(
                        !matches!(d, Decision::Bounce(_)),
                        "{state:?} {kind:?} {to:?}"
                    );
                    assert!(!matches!(d, Decision::StoreOffline(_)));
                }
                let st = stanza(StanzaKind::Iq, Some("result"), to);
                let d = r.route(&romeo(), &st, &accounts);
                assert!(!matches!(d, Decision::Bounce(_)), "{state:?} result {to:?}");
            }
        }
    }
}

// --- priorities --------------------------------------------------------------

fn user_with(prios: &[(SessionId, Option<i8>)]) -> Router {
    let mut r = Router::new(["example.com".to_owned()]);
    for &(id, prio) in prios {
        r.bind(
            id,
            bare(JULIET).with_resource(&format!("r{id}")).unwrap(),
            ConflictPolicy::RefuseNew,
        );
        if let Some(p) = prio {
            r.set_presence(id, true, p);
        }
    }
    r
}

fn no_accounts(_: &BareJid) -> bool {
    false
}

#[test]
fn y01_negative_priority_never_receives_bare_traffic() {
    let r = user_with(&[(1, Some(-128)), (2, Some(-1)), (3, Some(0))]);
    for ty in ["normal", "chat", "headline"] {
        assert_eq!(
            r.route(&romeo(), &message(ty, BARE), &no_accounts),
            deliver(&[3])
        );
    }
}

#[test]
fn y02_priority_zero_is_non_negative() {
    let r = user_with(&[(1, Some(0))]);
    assert_eq!(
        r.route(&romeo(), &message("chat", BARE), &no_accounts),
        deliver(&[1])
    );
}

#[test]
fn y03_highest_priority_wins_and_ties_get_all_sorted() {
    let r = user_with(&[(9, Some(127)), (3, Some(127)), (5, Some(126)), (1, Some(0))]);
    assert_eq!(
        r.route(&romeo(), &message("normal", BARE), &no_accounts),
        deliver(&[3, 9])
    );
    assert_eq!(
        r.route(&romeo(), &message("headline", BARE), &no_accounts),
        deliver(&[1, 3, 5, 9])
    );
}

#[test]
fn y04_connected_sessions_are_ignored_for_bare_jid() {
    let r = user_with(&[(1, None), (2, None), (3, Some(-1))]);
    assert_eq!(r.route(&romeo(), &message("chat", BARE), &no_accounts), e());
    assert_eq!(
        r.route(&romeo(), &presence(None, BARE), &no_accounts),
        deliver(&[3])
    );
}

// --- accounts ----------------------------------------------------------------

#[test]
fn a01_bound_sessions_imply_the_account_exists() {
    let r = user_with(&[(1, None)]);
    assert_eq!(
        r.route(&romeo(), &iq("get", FULL_NO_MATCH), &no_accounts),
        e()
    );
    assert_eq!(
        r.route(&romeo(), &iq("get", BARE), &no_accounts),
        account(JULIET)
    );
}

#[test]
fn a02_accounts_from_sets_and_closures() {
    let r = Router::new(["example.com".to_owned()]);
    let set: BTreeSet<BareJid> = [bare(JULIET)].into();
    let hash: HashSet<BareJid> = [bare(JULIET)].into();
    let closure = |u: &BareJid| u.local() == Some("juliet");
    fn check(r: &Router, accounts: &impl Accounts) {
        assert_eq!(
            r.route(&romeo(), &iq("get", BARE), accounts),
            account(JULIET)
        );
        assert_eq!(
            r.route(&romeo(), &iq("get", "nobody@example.com"), accounts),
            e()
        );
    }
    check(&r, &set);
    check(&r, &hash);
    check(&r, &closure);
}

// --- bind, unbind, conflicts, presence ----------------------------------------

#[test]
fn b01_bind_then_lookup() {
    let mut r = Router::new(["example.com".to_owned()]);
    let j = full(FULL_MATCH);
    assert_eq!(
        r.bind(42, j.clone(), ConflictPolicy::RefuseNew),
        BindOutcome::Bound
    );
    assert_eq!(r.session_jid(42), Some(&j));
    let s = r.session(42).unwrap();
    assert!(!s.available);
    assert_eq!(s.priority, 0);
    assert_eq!(
        r.sessions_of(&bare(JULIET)).collect::<Vec<_>>(),
        vec![(42, &j)]
    );
    assert_eq!(r.session_count(), 1);
}

#[test]
fn b02_conflict_refuse_new_keeps_old() {
    let mut r = Router::new(["example.com".to_owned()]);
    let j = full(FULL_MATCH);
    r.bind(1, j.clone(), ConflictPolicy::RefuseNew);
    assert_eq!(
        r.bind(2, j.clone(), ConflictPolicy::RefuseNew),
        BindOutcome::Refused
    );
    assert_eq!(r.session_jid(1), Some(&j));
    assert_eq!(r.session_jid(2), None);
    assert_eq!(
        r.route(&romeo(), &message("chat", FULL_MATCH), &no_accounts),
        deliver(&[1])
    );
}

#[test]
fn b03_conflict_replace_old_unbinds_old() {
    let mut r = Router::new(["example.com".to_owned()]);
    let j = full(FULL_MATCH);
    r.bind(1, j.clone(), ConflictPolicy::RefuseNew);
    r.set_presence(1, true, 10);
    assert_eq!(
        r.bind(2, j.clone(), ConflictPolicy::ReplaceOld),
        BindOutcome::Replaced { old: 1 }
    );
    assert_eq!(r.session_jid(1), None);
    assert_eq!(r.session_jid(2), Some(&j));
    // The new session starts connected, not with the old one's presence.
    assert!(!r.session(2).unwrap().available);
    assert_eq!(
        r.route(&romeo(), &message("chat", FULL_MATCH), &no_accounts),
        deliver(&[2])
    );
    // The host closes the old stream and unbinds it: harmless.
    assert_eq!(r.unbind(1), None);
    assert_eq!(r.session_jid(2), Some(&j));
    assert_eq!(r.session_count(), 1);
}

#[test]
fn b04_replace_policy_without_conflict_just_binds() {
    let mut r = Router::new(["example.com".to_owned()]);
    r.bind(1, full(FULL_MATCH), ConflictPolicy::ReplaceOld);
    assert_eq!(
        r.bind(2, full(FULL_NO_MATCH), ConflictPolicy::ReplaceOld),
        BindOutcome::Bound
    );
    assert_eq!(r.sessions_of(&bare(JULIET)).count(), 2);
}

#[test]
fn b05_second_bind_on_a_session_is_refused() {
    let mut r = Router::new(["example.com".to_owned()]);
    r.bind(1, full(FULL_MATCH), ConflictPolicy::RefuseNew);
    for policy in [ConflictPolicy::RefuseNew, ConflictPolicy::ReplaceOld] {
        assert_eq!(
            r.bind(1, full(FULL_NO_MATCH), policy),
            BindOutcome::AlreadyBound(full(FULL_MATCH))
        );
        assert_eq!(
            r.bind(1, full(FULL_MATCH), policy),
            BindOutcome::AlreadyBound(full(FULL_MATCH))
        );
    }
    assert_eq!(r.session_count(), 1);
}

#[test]
fn b06_unbind_removes_from_routing() {
    let mut r = user_with(&[(1, Some(0)), (2, Some(0))]);
    assert_eq!(r.unbind(1), Some(full("juliet@example.com/r1")));
    assert_eq!(r.unbind(1), None);
    assert_eq!(r.unbind(99), None);
    assert_eq!(
        r.route(&romeo(), &message("chat", BARE), &no_accounts),
        deliver(&[2])
    );
    assert_eq!(
        r.route(&romeo(), &iq("get", "juliet@example.com/r1"), &no_accounts),
        e()
    );
    r.unbind(2);
    assert_eq!(r.sessions_of(&bare(JULIET)).count(), 0);
    // The last session is gone and Accounts knows nothing: missing account.
    assert_eq!(r.route(&romeo(), &iq("get", BARE), &no_accounts), e());
    // The resource can be bound again.
    assert_eq!(
        r.bind(3, full("juliet@example.com/r1"), ConflictPolicy::RefuseNew),
        BindOutcome::Bound
    );
}

#[test]
fn b07_set_presence_changes_routing() {
    let mut r = user_with(&[(1, None)]);
    assert_eq!(r.route(&romeo(), &message("chat", BARE), &no_accounts), e());
    r.set_presence(1, true, 0);
    assert_eq!(
        r.route(&romeo(), &message("chat", BARE), &no_accounts),
        deliver(&[1])
    );
    r.set_presence(1, true, -1);
    assert_eq!(r.route(&romeo(), &message("chat", BARE), &no_accounts), e());
    r.set_presence(1, false, 50);
    assert_eq!(r.route(&romeo(), &message("chat", BARE), &no_accounts), e());
    assert_eq!(
        r.route(&romeo(), &presence(None, BARE), &no_accounts),
        s(DropReason::NoAvailableResource)
    );
    let s1 = r.session(1).unwrap();
    assert_eq!((s1.available, s1.priority), (false, 50));
    // Unknown sessions are ignored.
    r.set_presence(77, true, 1);
    assert!(r.session(77).is_none());
}

#[test]
fn b08_sessions_of_is_sorted_and_per_user() {
    let mut r = Router::new(["example.com".to_owned()]);
    for id in [30, 10, 20] {
        r.bind(
            id,
            full(&format!("juliet@example.com/{id}")),
            ConflictPolicy::RefuseNew,
        );
    }
    r.bind(15, full("romeo@example.com/x"), ConflictPolicy::RefuseNew);
    let ids: Vec<_> = r.sessions_of(&bare(JULIET)).map(|(id, _)| id).collect();
    assert_eq!(ids, vec![10, 20, 30]);
    assert_eq!(r.sessions_of(&bare("nobody@example.com")).count(), 0);
}

// --- scale and determinism ----------------------------------------------------

/// 1000 sessions over 100 users, priorities and availability from a fixed
/// formula; the expected decision is computed independently.
#[test]
fn z01_many_sessions_route_correctly_and_deterministically() {
    let mut r = Router::new(["example.com".to_owned()]);
    let mut expected_sessions: Vec<Vec<(SessionId, bool, i8)>> = vec![Vec::new(); 100];
    // Bind in a scrambled order.
    for k in 0..1000u64 {
        let id = (k * 7919) % 1000;
        let user = (id % 100) as usize;
        let jid = full(&format!("u{user}@example.com/res{id}"));
        assert_eq!(
            r.bind(id, jid, ConflictPolicy::RefuseNew),
            BindOutcome::Bound
        );
        let available = id % 3 != 0;
        let priority = ((id * 37) % 11) as i8 - 5;
        if available {
            r.set_presence(id, true, priority);
        }
        expected_sessions[user].push((id, available, priority));
    }
    assert_eq!(r.session_count(), 1000);
    let sender = full("u0@example.com/res0");
    for (user, sessions) in expected_sessions.iter().enumerate() {
        let to = format!("u{user}@example.com");
        let non_neg: Vec<_> = sessions.iter().filter(|(_, a, p)| *a && *p >= 0).collect();
        let best = non_neg.iter().map(|(_, _, p)| *p).max();
        let mut want: Vec<SessionId> = non_neg
            .iter()
            .filter(|(_, _, p)| Some(*p) == best)
            .map(|(id, _, _)| *id)
            .collect();
        want.sort_unstable();
        let want = if want.is_empty() { e() } else { deliver(&want) };
        let chat = message("chat", &to);
        let first = r.route(&sender, &chat, &no_accounts);
        assert_eq!(first, want, "user {user}");
        for _ in 0..3 {
            assert_eq!(r.route(&sender, &chat, &no_accounts), first);
        }
        // Every full JID reaches exactly its own session.
        for (id, _, _) in sessions {
            let to = format!("u{user}@example.com/res{id}");
            assert_eq!(
                r.route(&sender, &iq("get", &to), &no_accounts),
                deliver(&[*id])
            );
        }
    }
    // A clone built in another order decides the same.
    let mut r2 = Router::new(["example.com".to_owned()]);
    for id in (0..1000u64).rev() {
        let user = id % 100;
        r2.bind(
            id,
            full(&format!("u{user}@example.com/res{id}")),
            ConflictPolicy::RefuseNew,
        );
        if id % 3 != 0 {
            r2.set_presence(id, true, ((id * 37) % 11) as i8 - 5);
        }
    }
    for user in 0..100 {
        for ty in MESSAGE_TYPES {
            let m = message(ty, &format!("u{user}@example.com"));
            assert_eq!(
                r.route(&sender, &m, &no_accounts),
                r2.route(&sender, &m, &no_accounts)
            );
        }
    }
}

// --- proptest ----------------------------------------------------------------

const USERS: [&str; 4] = ["a", "b", "c", "d"];
const RESOURCES: [&str; 3] = ["r1", "r2", "r3"];

fn to_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (0..USERS.len()).prop_map(|u| Some(format!("{}@example.com", USERS[u]))),
        (0..USERS.len(), 0..RESOURCES.len() + 1).prop_map(|(u, r)| Some(format!(
            "{}@example.com/{}",
            USERS[u],
            RESOURCES.get(r).copied().unwrap_or("gone")
        ))),
        Just(Some("example.com".to_owned())),
        Just(Some("example.com/x".to_owned())),
        Just(Some("a@example.org/r1".to_owned())),
        "[a-z@/. ]{0,12}".prop_map(Some),
    ]
}

fn type_strategy() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("normal"),
        Some("chat"),
        Some("groupchat"),
        Some("headline"),
        Some("error"),
        Some("unavailable"),
        Some("subscribe"),
        Some("subscribed"),
        Some("unsubscribe"),
        Some("unsubscribed"),
        Some("probe"),
        Some("get"),
        Some("set"),
        Some("result"),
        Some("bogus"),
    ])
}

type SessionSpec = (usize, usize, bool, i8);

fn sessions_strategy() -> impl Strategy<Value = Vec<SessionSpec>> {
    prop::collection::vec(
        (0..USERS.len(), 0..RESOURCES.len(), any::<bool>(), -3i8..=3),
        0..12,
    )
}

fn build(specs: &[SessionSpec], reverse: bool, offline: bool) -> Router {
    let mut r = Router::new(["example.com".to_owned()]).with_offline_storage(offline);
    let mut order: Vec<_> = specs.iter().enumerate().collect();
    if reverse {
        order.reverse();
    }
    for (i, &(u, res, available, prio)) in order {
        let jid = full(&format!("{}@example.com/{}", USERS[u], RESOURCES[res]));
        // Conflicts are refused, so the first spec (by index) must win in
        // both orders: replace when binding in reverse.
        let policy = if reverse {
            ConflictPolicy::ReplaceOld
        } else {
            ConflictPolicy::RefuseNew
        };
        r.bind(i as SessionId, jid, policy);
        r.set_presence(i as SessionId, available, prio);
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn route_invariants(
        specs in sessions_strategy(),
        sender in 0..USERS.len(),
        kind in prop::sample::select(vec![StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq]),
        ty in type_strategy(),
        to in to_strategy(),
        accounts_mask in 0u8..16,
        offline in any::<bool>(),
    ) {
        let r = build(&specs, false, offline);
        let accounts = move |u: &BareJid| {
            USERS.iter().position(|n| u.local() == Some(n) && u.domain() == "example.com")
                .is_some_and(|i| accounts_mask & (1 << i) != 0)
        };
        let from = full(&format!("{}@example.com/me", USERS[sender]));
        let st = stanza(kind, ty, to.as_deref());
        let d = r.route(&from, &st, &accounts);

        // Deterministic, also for a router built in another order.
        prop_assert_eq!(&d, &r.route(&from, &st, &accounts));
        prop_assert_eq!(&d, &build(&specs, true, offline).route(&from, &st, &accounts));

        // Errors and iq results are never answered.
        if ty == Some("error") || (kind == StanzaKind::Iq && ty == Some("result")) {
            prop_assert!(!matches!(d, Decision::Bounce(_)), "{:?}", d);
        }
        if let Decision::Bounce(err) = &d {
            prop_assert!(st.error_reply(err).is_some());
        }

        if let Decision::Deliver(ids) = &d {
            prop_assert!(!ids.is_empty());
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, unique: {:?}", ids);
            let target: Jid = match &to {
                Some(t) => t.parse().unwrap(),
                None => Jid::Bare(from.to_bare()),
            };
            for id in ids {
                let s = r.session(*id).unwrap();
                // Never a session of another user.
                prop_assert_eq!(s.jid.to_bare(), target.to_bare());
                match &target {
                    Jid::Full(f) if &s.jid == f => {}
                    Jid::Full(f) => {
                        // Only chat to an unbound full JID falls back to the
                        // bare JID's non-negative sessions (RFC 6121 §8.5.3.2.1).
                        prop_assert!(kind == StanzaKind::Message && ty == Some("chat"));
                        prop_assert!(r.sessions_of(&f.to_bare()).all(|(_, j)| j != f));
                        prop_assert!(s.available && s.priority >= 0, "{:?}", s);
                    }
                    Jid::Bare(_) => {
                        if kind == StanzaKind::Message {
                            // Bare-JID messages: available, non-negative only.
                            prop_assert!(s.available && s.priority >= 0, "{:?}", s);
                        } else {
                            prop_assert!(s.available, "{:?}", s);
                        }
                    }
                }
            }
            // Never deliver groupchat to a bare JID, nor iq to a bare JID.
            if target.is_bare() {
                prop_assert!(kind != StanzaKind::Iq);
                prop_assert!(!(kind == StanzaKind::Message && ty == Some("groupchat")));
            }
        }
        if let Decision::StoreOffline(_) = d {
            prop_assert!(offline && kind == StanzaKind::Message);
        }
    }
}
