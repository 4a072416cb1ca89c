//! The stanza router: where a stanza goes on a server (RFC 6120 §10,
//! RFC 6121 §8).
//!
//! [`Router`] is pure and deterministic. It holds the local domains and the
//! bound sessions (full JID, availability, priority) and, for each stanza a
//! local client sends, returns a [`Decision`]: deliver to which sessions,
//! handle at the server, bounce with which stanza error, drop silently,
//! store offline, or hand to another domain. It sends nothing and keeps no
//! queue; the host carries the decision out.
//!
//! ```
//! use std::collections::HashSet;
//! use xmpp_sansio::router::{ConflictPolicy, Decision, Router};
//! use xmpp_sansio::{BareJid, FullJid, Jid, stanza::Stanza};
//!
//! let mut router = Router::new(["example.com".to_owned()]);
//! let juliet: FullJid = "juliet@example.com/balcony".parse().unwrap();
//! let romeo: FullJid = "romeo@example.com/orchard".parse().unwrap();
//! router.bind(1, juliet.clone(), ConflictPolicy::RefuseNew);
//! router.bind(2, romeo.clone(), ConflictPolicy::RefuseNew);
//! router.set_presence(1, true, 0);
//!
//! let accounts: HashSet<BareJid> = [juliet.to_bare(), romeo.to_bare()].into();
//! let to: Jid = "juliet@example.com".parse().unwrap();
//! let chat = Stanza::chat(&to, "hi");
//! assert_eq!(router.route(&romeo, &chat, &accounts), Decision::Deliver(vec![1]));
//! ```
//!
//! # Terms
//!
//! * **connected** session: bound, but no available presence yet (or sent
//!   `unavailable`). It receives only traffic for its full JID.
//! * **available** session: bound and its last broadcast presence was
//!   available ([`Router::set_presence`]).
//! * **non-negative** session: available with priority ≥ 0. Only these
//!   receive messages addressed to the bare JID (RFC 6121 §8.5.2.1.1).
//! * An account **exists** if [`Accounts::exists`] says so *or* it has a bound
//!   session (an anonymous account exists only while it is bound).
//!
//! # Decision tables
//!
//! The checks run in this order; the first that applies decides.
//!
//! | # | Condition | Decision |
//! |---|---|---|
//! | 1 | iq without a known `type`, presence with an unknown `type` | `Bounce(bad-request)` (RFC 6120 §8.2.3, RFC 6121 §4.7.1) |
//! | 2 | `to` present but not a valid JID | `Bounce(jid-malformed)` (RFC 6120 §8.3.3.8) |
//! | 3 | no `to` | see *No `to`* below (RFC 6120 §10.3) |
//! | 4 | domain of `to` not local | `Remote(domain)` (RFC 6120 §10.4) |
//! | 5 | `to` = local domain or local `domain/resource` | `Server(Domain(to))` (RFC 6120 §10.5.1/§10.5.2) |
//! | 6 | `to` = `user@local` or `user@local/res` | the tables below (RFC 6121 §8.5) |
//!
//! **Errors are never answered** (RFC 6120 §8.3.1) and **iq results never
//! get a response** (RFC 6120 §8.2.3): wherever a table below says "bounce",
//! a `type='error'` stanza becomes `Drop(ErrorStanza)` and an iq `result`
//! becomes `Drop(IqResponse)`.
//!
//! ## No `to` (RFC 6120 §10.3)
//!
//! | Stanza | Decision |
//! |---|---|
//! | message (any type) | routed as if `to` were the sender's bare JID (§10.3.1) |
//! | presence available / `unavailable` | `Server(Broadcast(sender's bare JID))` (§10.3.2) |
//! | presence subscription types / `probe` | `Server(Account(sender's bare JID))` |
//! | presence `error` | `Drop(ErrorStanza)` |
//! | iq (any type) | `Server(Account(sender's bare JID))` (§10.3.3: also the client's replies to roster pushes) |
//!
//! ## Messages (RFC 6121 §8.5.1–§8.5.4)
//!
//! Legend: **D** `Deliver` to the matching session (connected or available);
//! **M** `Deliver` to the non-negative sessions of the highest priority
//! (ties: all of them); **A** `Deliver` to every non-negative session;
//! **O** `StoreOffline` if offline storage is enabled, else
//! `Bounce(service-unavailable)`; **E** `Bounce(service-unavailable)`;
//! **S** `Drop`; **O\*** `Drop(NoSuchAccount)` if offline storage is enabled,
//! else `Bounce(service-unavailable)`.
//!
//! | Account state / `to` | normal | chat | groupchat | headline | error |
//! |---|---|---|---|---|---|
//! | does not exist — bare | O\* | O\* | E | S | S |
//! | does not exist — full | S | O\* | S | S | S |
//! | exists, no available session — bare | O | O | E | S | S |
//! | — full, no match | S | O | S | S | S |
//! | only negative-priority sessions — bare | O | O | E | S | S |
//! | — full, no match | S | O | S | S | S |
//! | 1 non-negative session — bare | D | D | E | D | S |
//! | — full, no match | S | D | S | S | S |
//! | 2+ non-negative sessions — bare | M | M | E | A | S |
//! | — full, no match | S | M | S | S | S |
//! | any state — full, match (connected, negative or non-negative session) | D | D | D | D | D |
//!
//! "Only connected sessions" (bound, never available) counts as "no
//! available session" for the bare JID.
//! ## Presence (RFC 6121 §8.5, §3, §4.3)
//!
//! | `to` | available / `unavailable` / `error` | `subscribe` / `subscribed` / `unsubscribe` / `unsubscribed` | `probe` |
//! |---|---|---|---|
//! | account does not exist (bare or full) | `Drop(NoSuchAccount)` | `Drop(NoSuchAccount)` | `Drop(NoSuchAccount)` |
//! | bare, ≥ 1 available session | `Deliver` to every available session, negative priority included | `Server(Account(bare))` | `Server(Account(bare))` |
//! | bare, no available session | `Drop(NoAvailableResource)` | `Server(Account(bare))` | `Server(Account(bare))` |
//! | full, match (connected or available) | `Deliver` to it | `Server(Account(bare))` | `Server(Account(bare))` |
//! | full, no match | `Drop(NoSuchResource)` | `Server(Account(bare))` | `Server(Account(bare))` |
//!
//! ## IQ (RFC 6121 §8.5, RFC 6120 §8.2.3)
//!
//! | `to` | `get` / `set` | `result` / `error` |
//! |---|---|---|
//! | account does not exist (bare or full) | `Bounce(service-unavailable)` | `Drop(NoSuchAccount)` |
//! | bare, account exists (any session state) | `Server(Account(bare))`, never delivered to a client | `Server(Account(bare))` |
//! | full, match (connected or available) | `Deliver` to it | `Deliver` to it |
//! | full, no match | `Bounce(service-unavailable)` | `Drop(NoSuchResource)` |
//!
//! # Choices where the RFCs leave room
//!
//! | Where | RFC allows | Chosen | Why |
//! |---|---|---|---|
//! | RFC 6121 §8.5.1, message to a missing account | silently ignore, or bounce `service-unavailable` | the same answer as for an existing account without resources: normal/chat bounce only when offline storage is off (O\*), everything else dropped | an outsider cannot tell a missing account from an offline one (no account enumeration) |
//! | RFC 6121 §8.5.1, `probe` to a missing account | ignore, or reply `unsubscribed` | ignore (`Drop`) | no enumeration; the host answers probes of existing accounts |
//! | RFC 6121 §8.5.2.1.1, "most available" (M) | implementation-specific | highest priority among non-negative sessions; ties → all of them | deterministic, no hidden "latest" state |
//! | RFC 6121 §8.5.2.2.1, normal/chat with nobody online | offline storage, or bounce | `StoreOffline` when [`Router::with_offline_storage`] is on, else `Bounce(service-unavailable)` (the default) | |
//! | RFC 6121 §8.5.3.2.1, normal/groupchat/headline to a full JID without match | ignore, or bounce | ignore (`Drop(NoSuchResource)`) | matches the missing-account answer |
//! | iq `result`/`error` to a bare JID | not specified | `Server(Account)` | only the server, acting for the account, sends iqs from a bare JID; the host must never answer them |
//! | presence `error` to a bare JID | not specified | like available presence: all available sessions | lets clients learn that a subscription request (sent from the bare JID) failed |
//! | message `error` to a bare JID | not specified | `Drop(ErrorStanza)` | clients send from full JIDs, so bounces of their messages come back to a full JID |
//! | RFC 6120 §10.5.2, local `domain/resource` | server-specific | `Server(Domain(to))`: the host answers unknown resources (iq get/set → `service-unavailable`, others ignored) | the router knows no server resources |
//! | RFC 6120 §7.7.2.2, resource conflict at bind | refuse new, replace old, or rename | [`ConflictPolicy`], chosen by the host per bind | |
//!
//! The router does not look at subscriptions, privacy lists or blocking:
//! these belong to the IM layer, which runs on `Server(Account)` and
//! `Server(Broadcast)` decisions.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::{StanzaError, StanzaErrorCondition};
use crate::jid::{BareJid, FullJid, Jid};
use crate::stanza::{IqType, MessageType, PresenceType, Stanza, StanzaKind};

/// The host's identifier of a client connection (a c2s stream).
pub type SessionId = u64;

/// What to do when a client binds a full JID that another session holds
/// (RFC 6120 §7.7.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictPolicy {
    /// Keep the old session; the host answers the bind request with a
    /// `conflict` stanza error.
    RefuseNew,
    /// Bind the new session; the host closes the old one with a `conflict`
    /// stream error.
    ReplaceOld,
}

/// The result of [`Router::bind`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BindOutcome {
    /// The session is bound to the requested full JID.
    Bound,
    /// The full JID is held by another session and the policy was
    /// [`ConflictPolicy::RefuseNew`]: nothing changed; the host answers
    /// `conflict` (stanza error, type `cancel`).
    Refused,
    /// The full JID was held by session `old`, which is now unbound; the new
    /// session is bound. The host closes `old` with a `conflict` stream
    /// error ([`Router::unbind`] of `old` is then a no-op).
    Replaced {
        /// The session that lost the full JID.
        old: SessionId,
    },
    /// This session is already bound (to the JID given): only one resource
    /// per stream (RFC 6120 §7.1). Nothing changed; the host answers the
    /// request with an error (`not-allowed`, or `bad-request`).
    AlreadyBound(FullJid),
}

/// Account existence, as the host knows it.
///
/// Called synchronously from [`Router::route`]; the host may cache.
/// Implemented for `HashSet<BareJid>`, `BTreeSet<BareJid>` and any
/// `Fn(&BareJid) -> bool`.
pub trait Accounts {
    /// Whether an account exists for `user` (a bare JID with a localpart).
    fn exists(&self, user: &BareJid) -> bool;
}

impl Accounts for HashSet<BareJid> {
    fn exists(&self, user: &BareJid) -> bool {
        self.contains(user)
    }
}

impl Accounts for BTreeSet<BareJid> {
    fn exists(&self, user: &BareJid) -> bool {
        self.contains(user)
    }
}

impl<F: Fn(&BareJid) -> bool> Accounts for F {
    fn exists(&self, user: &BareJid) -> bool {
        self(user)
    }
}

/// What the server itself handles (see [`Decision::Server`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LocalTarget {
    /// The server: `to` is a local domain (`example.com`: disco, ping,
    /// version, …) or a local `domain/resource` (server-specific). The JID
    /// is the parsed `to`. The host answers iq get/set it does not support
    /// with `service-unavailable` and never answers iq results or errors.
    Domain(Jid),
    /// The account, on its behalf (RFC 6121 §8.5.2.1.3, RFC 6120 §10.3.3):
    /// iqs to a bare JID or without `to` (roster, vCard, blocking, …),
    /// subscription presences and probes (RFC 6121 §3, §4.3). Unsupported
    /// iq get/set → `service-unavailable`; iq results and errors are never
    /// answered.
    Account(BareJid),
    /// Presence without `to` (available or `unavailable`): the sender's
    /// broadcast presence (RFC 6120 §10.3.2, RFC 6121 §4.2, §4.5). The host
    /// updates the session with [`Router::set_presence`] and broadcasts to
    /// subscribers (the IM layer) and to the user's other available
    /// sessions.
    Broadcast(BareJid),
}

/// Why a stanza is dropped (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A `type='error'` stanza that cannot go anywhere: errors are never
    /// answered (RFC 6120 §8.3.1).
    ErrorStanza,
    /// An iq `result` that cannot go anywhere: responses are never answered
    /// (RFC 6120 §8.2.3).
    IqResponse,
    /// The account does not exist (RFC 6121 §8.5.1); silent, so as not to
    /// reveal which accounts exist.
    NoSuchAccount,
    /// Bare JID, and no session may receive this stanza (RFC 6121
    /// §8.5.2.2: headline or presence with nobody available).
    NoAvailableResource,
    /// Full JID without a matching bound session (RFC 6121 §8.5.3.2).
    NoSuchResource,
}

/// What the host does with a stanza (the result of [`Router::route`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send the stanza, unchanged, to each of these sessions (sorted
    /// ascending, never empty, all of the addressed user).
    Deliver(Vec<SessionId>),
    /// The server handles the stanza itself.
    Server(LocalTarget),
    /// Send `stanza.error_reply(&error)` back to the sender. Never returned
    /// for error stanzas or iq results.
    Bounce(StanzaError),
    /// Discard silently.
    Drop(DropReason),
    /// Put the message into offline storage of this account (only when
    /// [`Router::with_offline_storage`] is on).
    StoreOffline(BareJid),
    /// The `to` domain is not local: hand the stanza to federation (s2s).
    /// Until that exists the host bounces `remote-server-not-found`
    /// (not for error stanzas).
    Remote(String),
}

/// A bound session as the router knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundSession {
    /// The full JID bound to the session.
    pub jid: FullJid,
    /// Whether its last broadcast presence was available.
    pub available: bool,
    /// Its presence priority (meaningful only while available).
    pub priority: i8,
}

impl BoundSession {
    fn non_negative(&self) -> bool {
        self.available && self.priority >= 0
    }
}

/// The router: local domains and bound sessions. See the module
/// documentation for the decision tables.
#[derive(Clone, Debug, Default)]
pub struct Router {
    domains: BTreeSet<String>,
    offline_storage: bool,
    sessions: HashMap<SessionId, BoundSession>,
    by_jid: HashMap<FullJid, SessionId>,
    users: HashMap<BareJid, BTreeSet<SessionId>>,
}

/// A stanza kind with a known type.
#[derive(Clone, Copy)]
enum Class {
    Message(MessageType),
    Presence(PresenceType),
    Iq(IqType),
}

impl Class {
    fn of(stanza: &Stanza) -> Option<Class> {
        match stanza.kind() {
            StanzaKind::Message => stanza.message_type().map(Class::Message),
            StanzaKind::Presence => stanza.presence_type()?.ok().map(Class::Presence),
            StanzaKind::Iq => stanza.iq_type()?.ok().map(Class::Iq),
        }
    }
}

/// Prepares a domain as a JID domainpart; falls back to the input when it
/// is not a valid domainpart (it then matches no parsed JID).
fn prepare_domain(domain: &str) -> String {
    BareJid::new(None, domain)
        .map(|j| j.domain().to_owned())
        .unwrap_or_else(|_| domain.to_owned())
}

/// `Bounce(condition)`, or `Drop` for stanzas that are never answered.
fn refuse(stanza: &Stanza, condition: StanzaErrorCondition) -> Decision {
    if stanza.is_error() {
        Decision::Drop(DropReason::ErrorStanza)
    } else if stanza.iq_type() == Some(Ok(IqType::Result)) {
        Decision::Drop(DropReason::IqResponse)
    } else {
        Decision::Bounce(StanzaError::new(condition))
    }
}

fn service_unavailable() -> Decision {
    Decision::Bounce(StanzaError::new(StanzaErrorCondition::ServiceUnavailable))
}

impl Router {
    /// A router serving `local_domains` (prepared as JID domainparts, so
    /// `Example.COM` serves `example.com`), without sessions and without
    /// offline storage.
    pub fn new(local_domains: impl IntoIterator<Item = String>) -> Self {
        Router {
            domains: local_domains
                .into_iter()
                .map(|d| prepare_domain(&d))
                .collect(),
            ..Router::default()
        }
    }

    /// Whether messages for accounts without a non-negative session are
    /// stored offline (`true`: [`Decision::StoreOffline`]) or bounced with
    /// `service-unavailable` (`false`, the default). See the "O" cells.
    pub fn with_offline_storage(mut self, enabled: bool) -> Self {
        self.offline_storage = enabled;
        self
    }

    /// Whether `domain` (prepared first) is served here.
    pub fn is_local(&self, domain: &str) -> bool {
        self.domains.contains(domain) || self.domains.contains(&prepare_domain(domain))
    }

    /// Binds `session` to `jid` (RFC 6120 §7). A new session is connected
    /// (not available) with priority 0. On a resource conflict `policy`
    /// decides (RFC 6120 §7.7.2.2). The router does not check that the
    /// domain is local: the host binds only its own users.
    pub fn bind(
        &mut self,
        session: SessionId,
        jid: FullJid,
        policy: ConflictPolicy,
    ) -> BindOutcome {
        if let Some(s) = self.sessions.get(&session) {
            return BindOutcome::AlreadyBound(s.jid.clone());
        }
        let outcome = match self.by_jid.get(&jid).copied() {
            None => BindOutcome::Bound,
            Some(_) if policy == ConflictPolicy::RefuseNew => return BindOutcome::Refused,
            Some(old) => {
                self.unbind(old);
                BindOutcome::Replaced { old }
            }
        };
        self.by_jid.insert(jid.clone(), session);
        self.users.entry(jid.to_bare()).or_default().insert(session);
        self.sessions.insert(
            session,
            BoundSession {
                jid,
                available: false,
                priority: 0,
            },
        );
        outcome
    }

    /// Removes `session`; returns its full JID, or `None` if it was not
    /// bound (never bound, already unbound, or replaced).
    pub fn unbind(&mut self, session: SessionId) -> Option<FullJid> {
        let s = self.sessions.remove(&session)?;
        self.by_jid.remove(&s.jid);
        let bare = s.jid.to_bare();
        if let Some(set) = self.users.get_mut(&bare) {
            set.remove(&session);
            if set.is_empty() {
                self.users.remove(&bare);
            }
        }
        Some(s.jid)
    }

    /// Records the session's broadcast presence (presence without `to`):
    /// `available` for no type, `false` for `unavailable`; `priority` from
    /// `<priority/>` (RFC 6121 §4.7.2.3, default 0). Unknown sessions are
    /// ignored.
    pub fn set_presence(&mut self, session: SessionId, available: bool, priority: i8) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.available = available;
            s.priority = priority;
        }
    }

    /// The sessions of `user`, in ascending [`SessionId`] order.
    pub fn sessions_of(&self, user: &BareJid) -> impl Iterator<Item = (SessionId, &FullJid)> {
        self.users
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id).map(|s| (*id, &s.jid)))
    }

    /// The full JID bound to `session`.
    pub fn session_jid(&self, session: SessionId) -> Option<&FullJid> {
        self.sessions.get(&session).map(|s| &s.jid)
    }

    /// Everything the router knows about `session`.
    pub fn session(&self, session: SessionId) -> Option<&BoundSession> {
        self.sessions.get(&session)
    }

    /// The number of bound sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Decides where `stanza`, sent by the local session `from` (its `from`
    /// already stamped), goes. `to` is parsed here. Pure: the same router
    /// state and input give the same decision. See the module tables.
    pub fn route(&self, from: &FullJid, stanza: &Stanza, accounts: &impl Accounts) -> Decision {
        let Some(class) = Class::of(stanza) else {
            return refuse(stanza, StanzaErrorCondition::BadRequest);
        };
        match stanza.to_jid() {
            Some(Err(_)) => refuse(stanza, StanzaErrorCondition::JidMalformed),
            Some(Ok(to)) => self.route_to(&to, class, stanza, accounts),
            None => match class {
                Class::Message(_) => {
                    self.route_to(&Jid::Bare(from.to_bare()), class, stanza, accounts)
                }
                Class::Presence(PresenceType::Available | PresenceType::Unavailable) => {
                    Decision::Server(LocalTarget::Broadcast(from.to_bare()))
                }
                Class::Presence(PresenceType::Error) => Decision::Drop(DropReason::ErrorStanza),
                Class::Presence(_) | Class::Iq(_) => {
                    Decision::Server(LocalTarget::Account(from.to_bare()))
                }
            },
        }
    }

    fn route_to(
        &self,
        to: &Jid,
        class: Class,
        stanza: &Stanza,
        accounts: &impl Accounts,
    ) -> Decision {
        if !self.domains.contains(to.domain()) {
            return Decision::Remote(to.domain().to_owned());
        }
        if to.local().is_none() {
            return Decision::Server(LocalTarget::Domain(to.clone()));
        }
        let bare = to.to_bare();
        let exists = self.users.contains_key(&bare) || accounts.exists(&bare);
        // The session bound to a full `to`, connected or available.
        let matched = match to {
            Jid::Full(full) => self.by_jid.get(full).copied(),
            Jid::Bare(_) => None,
        };
        match class {
            Class::Iq(t) => {
                if !exists {
                    return self.no_such_account(stanza);
                }
                match (to, matched) {
                    (Jid::Bare(_), _) => Decision::Server(LocalTarget::Account(bare)),
                    (Jid::Full(_), Some(id)) => Decision::Deliver(vec![id]),
                    (Jid::Full(_), None) if t.is_request() => service_unavailable(),
                    (Jid::Full(_), None) => Decision::Drop(DropReason::NoSuchResource),
                }
            }
            Class::Presence(t) => {
                if !exists {
                    return Decision::Drop(DropReason::NoSuchAccount);
                }
                match t {
                    PresenceType::Subscribe
                    | PresenceType::Subscribed
                    | PresenceType::Unsubscribe
                    | PresenceType::Unsubscribed
                    | PresenceType::Probe => Decision::Server(LocalTarget::Account(bare)),
                    PresenceType::Available | PresenceType::Unavailable | PresenceType::Error => {
                        match (to, matched) {
                            (Jid::Full(_), Some(id)) => Decision::Deliver(vec![id]),
                            (Jid::Full(_), None) => Decision::Drop(DropReason::NoSuchResource),
                            (Jid::Bare(_), _) => {
                                let ids = self.select(&bare, |s| s.available);
                                if ids.is_empty() {
                                    Decision::Drop(DropReason::NoAvailableResource)
                                } else {
                                    Decision::Deliver(ids)
                                }
                            }
                        }
                    }
                }
            }
            Class::Message(t) => {
                if let Some(id) = matched {
                    return Decision::Deliver(vec![id]);
                }
                if !exists {
                    return match t {
                        MessageType::Chat => self.offline_hidden(stanza),
                        MessageType::Normal if to.is_bare() => self.offline_hidden(stanza),
                        MessageType::Groupchat if to.is_bare() => service_unavailable(),
                        _ => Decision::Drop(DropReason::NoSuchAccount),
                    };
                }
                match (t, to.is_bare()) {
                    (MessageType::Error, true) => Decision::Drop(DropReason::ErrorStanza),
                    (MessageType::Error, false) => Decision::Drop(DropReason::NoSuchResource),
                    (MessageType::Groupchat, true) => service_unavailable(),
                    (MessageType::Headline, true) => {
                        let ids = self.select(&bare, BoundSession::non_negative);
                        if ids.is_empty() {
                            Decision::Drop(DropReason::NoAvailableResource)
                        } else {
                            Decision::Deliver(ids)
                        }
                    }
                    (MessageType::Normal, true) | (MessageType::Chat, _) => {
                        let ids = self.most_available(&bare);
                        if !ids.is_empty() {
                            Decision::Deliver(ids)
                        } else if self.offline_storage {
                            Decision::StoreOffline(bare)
                        } else {
                            service_unavailable()
                        }
                    }
                    (
                        MessageType::Normal | MessageType::Groupchat | MessageType::Headline,
                        false,
                    ) => Decision::Drop(DropReason::NoSuchResource),
                }
            }
        }
    }

    /// A stanza other than presence to an account that does not exist.
    fn no_such_account(&self, stanza: &Stanza) -> Decision {
        match refuse(stanza, StanzaErrorCondition::ServiceUnavailable) {
            Decision::Drop(_) => Decision::Drop(DropReason::NoSuchAccount),
            other => other,
        }
    }

    /// The "O*" cell: what an existing account without sessions would get,
    /// so that a missing account looks the same from outside.
    fn offline_hidden(&self, stanza: &Stanza) -> Decision {
        if self.offline_storage {
            Decision::Drop(DropReason::NoSuchAccount)
        } else {
            self.no_such_account(stanza)
        }
    }

    /// The sessions of `user` for which `keep` holds, ascending.
    fn select(&self, user: &BareJid, keep: impl Fn(&BoundSession) -> bool) -> Vec<SessionId> {
        self.users
            .get(user)
            .into_iter()
            .flatten()
            .filter(|id| self.sessions.get(id).is_some_and(&keep))
            .copied()
            .collect()
    }

    /// The non-negative sessions of `user` with the highest priority
    /// (all of them on a tie), ascending.
    fn most_available(&self, user: &BareJid) -> Vec<SessionId> {
        let best = self
            .select(user, BoundSession::non_negative)
            .iter()
            .filter_map(|id| self.sessions.get(id).map(|s| s.priority))
            .max();
        match best {
            None => Vec::new(),
            Some(p) => self.select(user, |s| s.non_negative() && s.priority == p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        s.parse().unwrap()
    }

    #[test]
    fn local_domains_are_prepared() {
        let r = Router::new(["Example.COM.".to_owned(), "bad domain".to_owned()]);
        assert!(r.is_local("example.com"));
        assert!(r.is_local("EXAMPLE.com"));
        assert!(!r.is_local("example.org"));
        assert!(r.is_local("bad domain"));
    }

    #[test]
    fn bind_indexes_and_unbind_cleans_up() {
        let mut r = Router::new(["example.com".to_owned()]);
        let a = jid("a@example.com/1");
        assert_eq!(
            r.bind(7, a.clone(), ConflictPolicy::RefuseNew),
            BindOutcome::Bound
        );
        assert_eq!(r.by_jid.get(&a), Some(&7));
        assert_eq!(r.unbind(7), Some(a.clone()));
        assert!(r.by_jid.is_empty() && r.users.is_empty() && r.sessions.is_empty());
        assert_eq!(r.unbind(7), None);
    }

    #[test]
    fn most_available_ties_and_negatives() {
        let mut r = Router::new(["example.com".to_owned()]);
        let user: BareJid = "a@example.com".parse().unwrap();
        for (id, res, prio) in [(3, "x", 5), (1, "y", 5), (2, "z", -1), (4, "w", 2)] {
            r.bind(
                id,
                user.with_resource(res).unwrap(),
                ConflictPolicy::RefuseNew,
            );
            r.set_presence(id, true, prio);
        }
        assert_eq!(r.most_available(&user), vec![1, 3]);
        r.set_presence(1, false, 5);
        assert_eq!(r.most_available(&user), vec![3]);
        r.set_presence(3, true, -5);
        assert_eq!(r.most_available(&user), vec![4]);
    }
}
