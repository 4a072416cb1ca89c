//! XEP-0280 Message Carbons (`urn:xmpp:carbons:2`), version 1.0.1.
//!
//! * [`CarbonsSessions`] keeps which sessions enabled carbons (the state is
//!   per resource, for the life of the session) and answers the
//!   `<enable/>`/`<disable/>` iqs ([`CarbonsSessions::handle_iq`]).
//! * [`is_eligible`] is the §6.1 rule set; [`CarbonsSessions::copies`] is
//!   the fan-out decision for one routed message: which sessions get a
//!   `<sent/>` or `<received/>` copy wrapped in XEP-0297 `<forwarded/>`.
//! * [`Carbon::from_message`] is the client's side: unwrap a copy, refusing
//!   one that is not from the account's own bare JID (§11).
//!
//! # Where the host calls it
//!
//! After [`Router::route`] and delivery of a message, the host calls
//! [`CarbonsSessions::copies`] with a [`MessageRoute`]: the sending local
//! session (if the sender is local) and the local recipient with the
//! sessions that received the original (the `Deliver` list; empty for
//! `StoreOffline`). Only for messages that were delivered or stored: a
//! bounced or dropped message has no recipient copies.
//!
//! # Choices
//!
//! | Where | XEP says | Chosen |
//! |---|---|---|
//! | §6.1 error messages "sent in response to" an eligible message | eligible | not copied: it needs per-message tracking, so `urn:xmpp:carbons:rules:0` is **not** advertised ([`FEATURES`]) |
//! | §6.1 `<private/>` | a message with it is not eligible | not eligible, with or without `<no-copy/>` |
//! | XEP-0334 §4.3 `<no-copy/>` alone | "should not be copied … for example through XEP-0280" | not eligible |
//! | §9 removal of `<private/>` on delivery | earlier versions asked for it; 1.0 lifted it as a security risk | the original is delivered unchanged, `<private/>` included |
//! | a message that already carries `<sent/>`/`<received/>` | not said | never copied again (no nesting) |
//! | a message between two resources of one account | not said | one copy per other enabled session, as `<received/>`; the sending and the receiving session get none |
//! | §4 enable/disable addressed to another account | `not-allowed` | `not-allowed`; iq get → `bad-request` |
//!
//! [`Router::route`]: crate::router::Router::route

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::SessionId;
use crate::stanza::{IqType, MessageType, Stanza, StanzaKind};

/// `urn:xmpp:carbons:2`: the protocol and its disco feature.
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
/// `urn:xmpp:carbons:rules:0`: the promise to follow every §6.1 rule
/// (not advertised here, see the module docs).
pub const NS_CARBONS_RULES: &str = "urn:xmpp:carbons:rules:0";
/// `urn:xmpp:forward:0` (XEP-0297 Stanza Forwarding).
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// `urn:xmpp:hints` (XEP-0334; `<no-copy/>`).
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// `http://jabber.org/protocol/muc#user` (XEP-0045).
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// `jabber:x:conference` (XEP-0249 direct MUC invitations).
pub const NS_DIRECT_INVITE: &str = "jabber:x:conference";
/// `urn:xmpp:receipts` (XEP-0184).
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
/// `http://jabber.org/protocol/chatstates` (XEP-0085).
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// `urn:xmpp:chat-markers:0` (XEP-0333).
pub const NS_CHAT_MARKERS: &str = "urn:xmpp:chat-markers:0";

/// The disco features a server using this module advertises.
pub const FEATURES: &[&str] = &[NS_CARBONS];

/// A carbons iq from a client (XEP-0280 §4, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CarbonsRequest {
    /// iq set `<enable/>`.
    Enable,
    /// iq set `<disable/>`.
    Disable,
}

impl CarbonsRequest {
    /// Reads a carbons request. `None` if `iq` is not an iq request with a
    /// child in `urn:xmpp:carbons:2`; `Some(Err(bad-request))` for an iq
    /// get, more than one payload, or another element than
    /// `<enable/>`/`<disable/>`.
    pub fn from_iq(iq: &Stanza) -> Option<Result<CarbonsRequest, StanzaError>> {
        let Some(Ok(iq_type)) = iq.iq_type() else {
            return None;
        };
        if !iq_type.is_request() {
            return None;
        }
        let element = iq.element();
        let payload = element.children().find(|c| c.has_ns(NS_CARBONS))?;
        let bad = |text: &str| {
            Some(Err(
                StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
            ))
        };
        if element.children().count() != 1 {
            return bad("an iq request carries exactly one payload");
        }
        if iq_type == IqType::Get {
            return bad("carbons are enabled and disabled with iq set");
        }
        match payload.name() {
            "enable" => Some(Ok(CarbonsRequest::Enable)),
            "disable" => Some(Ok(CarbonsRequest::Disable)),
            _ => bad("expected <enable/> or <disable/>"),
        }
    }

    /// The payload element (as a client sends it).
    pub fn to_element(self) -> Element {
        Element::bare(
            match self {
                CarbonsRequest::Enable => "enable",
                CarbonsRequest::Disable => "disable",
            },
            NS_CARBONS,
        )
    }
}

/// Which side of a conversation a copy shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The user sent the message from another resource (`<sent/>`, §8).
    Sent,
    /// The user received the message on another resource (`<received/>`, §7).
    Received,
}

impl Direction {
    /// The wrapper element's name.
    pub fn element_name(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// Whether `message` is copied, seen from `direction` (XEP-0280 §6.1):
///
/// * never: not a message; type `error` or `groupchat`; a `<private/>`
///   child or an XEP-0334 `<no-copy/>` hint; already a carbon copy
///   (`<sent/>`/`<received/>` child);
/// * yes: a MUC invitation, mediated (`<x xmlns='…muc#user'><invite/></x>`)
///   or direct (XEP-0249);
/// * no: a received MUC private message (`<x xmlns='…muc#user'/>` without
///   invitation; the MUC service already sends it to every joined client);
///   a sent one is copied;
/// * yes: type `chat`; type `normal` with a `<body/>`; any message with an
///   XEP-0184 receipt, XEP-0085 chat state or XEP-0333 marker;
/// * no: anything else.
pub fn is_eligible(message: &Stanza, direction: Direction) -> bool {
    let Some(message_type) = message.message_type() else {
        return false;
    };
    if matches!(message_type, MessageType::Error | MessageType::Groupchat) {
        return false;
    }
    let element = message.element();
    if element.has_child("private", NS_CARBONS)
        || element.has_child("no-copy", NS_HINTS)
        || element.has_child("sent", NS_CARBONS)
        || element.has_child("received", NS_CARBONS)
    {
        return false;
    }
    let muc_user = element.get_child("x", NS_MUC_USER);
    if muc_user.is_some_and(|x| x.has_child("invite", NS_MUC_USER))
        || element.has_child("x", NS_DIRECT_INVITE)
    {
        return true;
    }
    if direction == Direction::Received && muc_user.is_some() {
        return false;
    }
    match message_type {
        MessageType::Chat => return true,
        MessageType::Normal if element.has_child("body", element.ns().as_str()) => return true,
        _ => {}
    }
    element.children().any(|child| {
        child.has_ns(NS_RECEIPTS) || child.has_ns(NS_CHATSTATES) || child.has_ns(NS_CHAT_MARKERS)
    })
}

/// The copy of `message` for `resource`, a session of `user`:
///
/// ```xml
/// <message xmlns='jabber:client' from='user' to='resource' [type='as the original']>
///   <sent|received xmlns='urn:xmpp:carbons:2'>
///     <forwarded xmlns='urn:xmpp:forward:0'>the original, unchanged</forwarded>
///   </sent|received>
/// </message>
/// ```
///
/// The wrapper is in `jabber:client` (it goes to a local client); the
/// original keeps its element as routed, which on a c2s server is
/// `jabber:client` as XEP-0297 expects.
pub fn wrap(direction: Direction, user: &BareJid, resource: &FullJid, message: &Stanza) -> Stanza {
    let mut copy = Stanza::new(StanzaKind::Message, ns::JABBER_CLIENT);
    copy.set_from(Some(user.as_str()));
    copy.set_to(Some(resource.as_str()));
    copy.set_attr("type", message.type_attr());
    let mut forwarded = Element::bare("forwarded", NS_FORWARD);
    forwarded.append_child(message.element().clone());
    let mut side = Element::bare(direction.element_name(), NS_CARBONS);
    side.append_child(forwarded);
    copy.element_mut().append_child(side);
    copy
}

/// How a message was routed, as [`CarbonsSessions::copies`] needs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageRoute<'a> {
    /// The local session that sent the message and its full JID; `None`
    /// when the sender is remote.
    pub sender: Option<(SessionId, &'a FullJid)>,
    /// The local account the message was addressed to and the sessions
    /// that received the original under RFC 6121 (the router's `Deliver`
    /// list; empty when it was stored offline); `None` when the addressee
    /// is remote or the message was not delivered.
    pub recipient: Option<(&'a BareJid, &'a [SessionId])>,
}

/// One carbon copy: the stanza to deliver to the session.
#[derive(Clone, Debug, PartialEq)]
pub struct CarbonCopy {
    /// The session that gets the copy.
    pub session: SessionId,
    /// The wrapped message ([`wrap`]).
    pub stanza: Stanza,
}

/// Which sessions have carbons enabled, by account.
#[derive(Clone, Debug, Default)]
pub struct CarbonsSessions {
    enabled: HashMap<BareJid, BTreeMap<SessionId, FullJid>>,
}

impl CarbonsSessions {
    /// No session has carbons enabled.
    pub fn new() -> CarbonsSessions {
        CarbonsSessions::default()
    }

    /// Handles a carbons iq from `session`, bound to `from`; returns the
    /// reply, or `None` if `iq` is not a carbons request. Enable and
    /// disable are idempotent (§10.1: repeats answer `result`). A request
    /// addressed to another account (a `to` other than the sender's bare
    /// JID) is answered `not-allowed` (§5) and changes nothing.
    pub fn handle_iq(&mut self, session: SessionId, from: &FullJid, iq: &Stanza) -> Option<Stanza> {
        let request = match CarbonsRequest::from_iq(iq)? {
            Ok(request) => request,
            Err(error) => return iq.error_reply(&error),
        };
        let own_account = match iq.to_jid() {
            None => true,
            Some(Ok(to)) => to == from.to_bare(),
            Some(Err(_)) => false,
        };
        if !own_account {
            return iq.error_reply(
                &StanzaError::new(StanzaErrorCondition::NotAllowed)
                    .with_text("carbons are set by each session for itself"),
            );
        }
        match request {
            CarbonsRequest::Enable => self.enable(session, from),
            CarbonsRequest::Disable => self.disable(session, from),
        }
        iq.iq_result(None)
    }

    /// Enables carbons for `session` (also for XEP-0386 Bind 2 inline
    /// enable).
    pub fn enable(&mut self, session: SessionId, jid: &FullJid) {
        self.enabled
            .entry(jid.to_bare())
            .or_default()
            .insert(session, jid.clone());
    }

    /// Disables carbons for `session`.
    pub fn disable(&mut self, session: SessionId, jid: &FullJid) {
        let user = jid.to_bare();
        if let Some(sessions) = self.enabled.get_mut(&user) {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.enabled.remove(&user);
            }
        }
    }

    /// Forgets `session` (it ended or unbound).
    pub fn session_ended(&mut self, session: SessionId, jid: &FullJid) {
        self.disable(session, jid);
    }

    /// The session `old`, bound to `jid`, goes on as `new` (XEP-0198
    /// resumption on a new connection): carbons stay enabled if they were.
    pub fn session_moved(&mut self, old: SessionId, new: SessionId, jid: &FullJid) {
        if self.is_enabled(old, jid) {
            self.disable(old, jid);
            self.enable(new, jid);
        }
    }

    /// Whether `session` of `jid` has carbons enabled.
    pub fn is_enabled(&self, session: SessionId, jid: &FullJid) -> bool {
        self.enabled
            .get(&jid.to_bare())
            .is_some_and(|sessions| sessions.contains_key(&session))
    }

    /// The carbons-enabled sessions of `user`, ascending.
    pub fn enabled_sessions(&self, user: &BareJid) -> impl Iterator<Item = (SessionId, &FullJid)> {
        self.enabled
            .get(user)
            .into_iter()
            .flatten()
            .map(|(id, jid)| (*id, jid))
    }

    /// The carbon copies of a routed message: first the `<sent/>` copies
    /// to the sender's other carbons-enabled sessions (§8; whether or not
    /// the sending session enabled carbons), then the `<received/>` copies
    /// to the recipient's carbons-enabled sessions that did not receive the
    /// original (§7). Each list is ascending by session; no session gets
    /// two copies; the sending session and the receiving sessions get
    /// none. Empty for messages that are not eligible ([`is_eligible`]).
    pub fn copies(&self, message: &Stanza, route: &MessageRoute<'_>) -> Vec<CarbonCopy> {
        let mut copies = Vec::new();
        let sender_session = route.sender.map(|(id, _)| id);
        let sender_account = route.sender.map(|(_, jid)| jid.to_bare());
        let to_own_account = matches!(
            (&sender_account, route.recipient),
            (Some(sender), Some((recipient, _))) if sender == recipient
        );
        if let (Some(sender), Some(account), false) =
            (sender_session, &sender_account, to_own_account)
            && is_eligible(message, Direction::Sent)
        {
            for (id, resource) in self.enabled_sessions(account) {
                if id != sender {
                    copies.push(CarbonCopy {
                        session: id,
                        stanza: wrap(Direction::Sent, account, resource, message),
                    });
                }
            }
        }
        if let Some((recipient, delivered)) = route.recipient
            && is_eligible(message, Direction::Received)
        {
            for (id, resource) in self.enabled_sessions(recipient) {
                if !delivered.contains(&id) && Some(id) != sender_session {
                    copies.push(CarbonCopy {
                        session: id,
                        stanza: wrap(Direction::Received, recipient, resource, message),
                    });
                }
            }
        }
        copies
    }
}

/// A carbon copy as a client receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Carbon {
    /// Sent from another resource, or received by another resource.
    pub direction: Direction,
    /// The forwarded original.
    pub message: Stanza,
}

/// Why a message with a carbons wrapper is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarbonError {
    /// The wrapper's `from` is not the account's own bare JID: a spoofing
    /// attempt (§11), to be ignored.
    NotFromOwnAccount,
    /// No `<forwarded/>` with one `<message/>` inside.
    Malformed,
}

impl fmt::Display for CarbonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CarbonError::NotFromOwnAccount => "carbon copy not from the account's bare JID",
            CarbonError::Malformed => "carbon copy without a forwarded message",
        })
    }
}

impl std::error::Error for CarbonError {}

impl Carbon {
    /// Unwraps a carbon copy received by a client of `own_account`.
    /// `None` if `message` has no `<sent/>`/`<received/>` child in
    /// `urn:xmpp:carbons:2`. The wrapper must come from exactly
    /// `own_account` (§11: "any copies that do not meet this requirement
    /// MUST be ignored").
    pub fn from_message(
        own_account: &BareJid,
        message: &Stanza,
    ) -> Option<Result<Carbon, CarbonError>> {
        if message.kind() != StanzaKind::Message {
            return None;
        }
        let element = message.element();
        let (direction, side) = [Direction::Sent, Direction::Received]
            .into_iter()
            .find_map(|d| {
                element
                    .get_child(d.element_name(), NS_CARBONS)
                    .map(|s| (d, s))
            })?;
        let from_own =
            matches!(message.from_jid(), Some(Ok(Jid::Bare(from))) if from == *own_account);
        if !from_own {
            return Some(Err(CarbonError::NotFromOwnAccount));
        }
        let inner = side
            .get_child("forwarded", NS_FORWARD)
            .and_then(|f| {
                f.children().find(|c| {
                    c.is("message", ns::JABBER_CLIENT) || c.is("message", ns::JABBER_SERVER)
                })
            })
            .and_then(|m| Stanza::from_element(m.clone(), &m.ns()).ok());
        Some(
            inner
                .map(|message| Carbon { direction, message })
                .ok_or(CarbonError::Malformed),
        )
    }
}
