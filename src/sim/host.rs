//! The server side of a simulation: the [`Host`] trait (the boundary an
//! embedder implements with their own host logic) and [`ReferenceHost`],
//! a complete host made of the crate's own machines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::error::{StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition};
use crate::jid::{BareJid, FullJid};
use crate::rng::SeededRng;
use crate::router::{BindOutcome, ConflictPolicy, Decision, LocalTarget, Router, SessionId};
use crate::sasl::{CredentialLookup, ScramHash, StoredCredentials};
use crate::server::{
    Answer, BindAnswer, DetachedSession, Request, RequestId, ServerConfig, ServerConnection,
    ServerEvent, ServerState,
};
use crate::sm::Disposition;
use crate::stanza::{IqType, PresenceType, Stanza};
use crate::stream::{CloseReason, Input, NS_PING, Output};

use super::client::tls_info;
use super::net::LinkId;

/// What a host does to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostAction {
    /// Write bytes to a link.
    Transmit {
        /// The link.
        link: LinkId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close a link (the client gets end-of-file after what is in flight).
    Close {
        /// The link.
        link: LinkId,
    },
}

/// A server as the simulation sees it: sockets in, sockets out, one clock.
///
/// The simulation calls the input methods as the network delivers, then
/// takes every [`HostAction`] with [`poll_action`](Self::poll_action), and
/// calls [`handle_timeout`](Self::handle_timeout) once virtual time reaches
/// [`poll_timeout`](Self::poll_timeout). Everything is single-threaded and
/// must be deterministic: draw randomness only from the [`Setup::rng`]
/// given at construction, iterate ordered collections.
pub trait Host {
    /// A client connected on `link`.
    fn connected(&mut self, now: Instant, link: LinkId);
    /// Bytes arrived on `link`.
    fn received(&mut self, now: Instant, link: LinkId, bytes: &[u8]);
    /// The client's end of `link` is gone (TCP FIN or reset).
    fn eof(&mut self, now: Instant, link: LinkId);
    /// The earliest deadline of the host, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Lets deadlines up to `now` take effect.
    fn handle_timeout(&mut self, now: Instant);
    /// The next thing to do to the network, in order.
    fn poll_action(&mut self) -> Option<HostAction>;
    /// Problems the host noticed about itself or the machines it drives
    /// (each becomes a [`Violation::Host`](super::Violation::Host)),
    /// taken once at the end of the run.
    fn anomalies(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Counters for the report.
    fn stats(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// An account of the simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The account's bare JID (client index `i` is `c{i}@{domain}`).
    pub jid: BareJid,
    /// Its password.
    pub password: String,
}

/// What a host is built from: the accounts, a server configuration that
/// fits the scenario's timings, and a random source.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The seed of the run.
    pub seed: u64,
    /// The served domain.
    pub domain: String,
    /// The accounts, one per client, by client index.
    pub accounts: Vec<Account>,
    /// A server configuration with the scenario's timeouts, stream
    /// management settings and SASL mechanisms.
    pub server_config: ServerConfig,
    /// SCRAM iteration count to derive stored credentials with.
    pub iterations: u32,
    /// Offline messages kept per account (more are bounced).
    pub offline_capacity: usize,
    /// The clients connect with direct TLS (XEP-0368): connections are
    /// encrypted from the first byte, STARTTLS is not offered.
    pub direct_tls: bool,
    /// The host's own random source (seeded from the run's seed).
    pub rng: SeededRng,
    /// The instant virtual time starts at.
    pub base: Instant,
}

/// A connection of the reference host.
#[derive(Debug)]
struct Conn {
    machine: ServerConnection,
    /// The session this connection carries (bound or resumed).
    session: Option<SessionId>,
    /// Closed; the link is closed once its output is drained.
    closed: bool,
}

/// Where a session lives.
#[derive(Debug)]
enum Slot {
    Live(LinkId),
    Detached(Box<DetachedSession>),
}

#[derive(Debug)]
struct Session {
    jid: FullJid,
    slot: Slot,
    resumption_id: Option<String>,
}

/// The reference host: [`ServerConnection`]s, a [`Router`] with a bounded
/// offline store, and detached stream-management sessions.
///
/// * Bind: the router binds with [`ConflictPolicy::ReplaceOld`]; a replaced
///   live session is closed with a `conflict` stream error; the stanzas it
///   (or a replaced detached session) never got acknowledged are handled
///   by [`Disposition`].
/// * Detached sessions are kept by resumption id until
///   [`DetachedSession::expires_at`]; stanzas routed to them are queued with
///   [`DetachedSession::queue`].
/// * [`Request::Resume`]: a detached session of the same account that has
///   not expired is handed over; if the session's connection still looks
///   alive (a zombie: the server has not noticed the drop), it is closed
///   with a `conflict` stream error and detached first. Another account's
///   session is refused without handing it over.
/// * On expiry, and when a session ends without being resumable, its
///   unacknowledged stanzas are handled by [`Disposition`]: `Reroute` routes
///   them again to the account's bare JID (offline storage when no session
///   is available), `Bounce` returns an error to the sender, `Drop` drops.
/// * Offline messages are delivered when a session of the account becomes
///   available (its initial presence), which on a stream-management client
///   comes after `<enable/>`: they are counted and resumable like any other.
///   The store keeps [`Setup::offline_capacity`] messages per account and
///   bounces more with `service-unavailable`.
/// * iq get/set to the server: XEP-0199 ping is answered, anything else
///   gets `service-unavailable`.
#[derive(Debug)]
pub struct ReferenceHost {
    config: Arc<ServerConfig>,
    domain: String,
    rng: SeededRng,
    router: Router,
    accounts: BTreeSet<BareJid>,
    credentials: BTreeMap<(String, u8), StoredCredentials>,
    conns: BTreeMap<LinkId, Conn>,
    sessions: BTreeMap<SessionId, Session>,
    by_resumption_id: BTreeMap<String, SessionId>,
    offline: BTreeMap<BareJid, VecDeque<Stanza>>,
    offline_capacity: usize,
    direct_tls: bool,
    actions: VecDeque<HostAction>,
    dirty: BTreeSet<LinkId>,
    next_session: SessionId,
    stats: BTreeMap<&'static str, u64>,
    anomalies: Vec<String>,
    now: Instant,
}

fn hash_key(hash: ScramHash) -> u8 {
    match hash {
        ScramHash::Sha1 => 1,
        ScramHash::Sha256 => 2,
        ScramHash::Sha512 => 3,
    }
}

impl ReferenceHost {
    /// A host for `setup`'s accounts and configuration.
    pub fn new(setup: Setup) -> Self {
        let mut rng = setup.rng;
        let mut salt_rng = SeededRng::from_u64(rng.next_u64());
        let mut credentials = BTreeMap::new();
        for account in &setup.accounts {
            let Some(user) = account.jid.node() else {
                continue;
            };
            let mut salt = [0u8; 16];
            salt_rng.fill(&mut salt);
            for hash in [ScramHash::Sha1, ScramHash::Sha256, ScramHash::Sha512] {
                if let Ok(c) =
                    StoredCredentials::derive(hash, &account.password, &salt, setup.iterations)
                {
                    credentials.insert((user.to_owned(), hash_key(hash)), c);
                }
            }
        }
        let router = Router::new([setup.domain.clone()]).with_offline_storage(true);
        ReferenceHost {
            config: Arc::new(setup.server_config),
            domain: setup.domain,
            rng,
            router,
            accounts: setup.accounts.into_iter().map(|a| a.jid).collect(),
            credentials,
            conns: BTreeMap::new(),
            sessions: BTreeMap::new(),
            by_resumption_id: BTreeMap::new(),
            offline: BTreeMap::new(),
            offline_capacity: setup.offline_capacity,
            direct_tls: setup.direct_tls,
            actions: VecDeque::new(),
            dirty: BTreeSet::new(),
            next_session: 1,
            stats: BTreeMap::new(),
            anomalies: Vec::new(),
            now: setup.base,
        }
    }

    /// The router (bound sessions, presence).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// How many sessions are detached (waiting for resumption).
    pub fn detached_sessions(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| matches!(s.slot, Slot::Detached(_)))
            .count()
    }

    /// Messages waiting in offline storage for `user`.
    pub fn offline_messages(&self, user: &BareJid) -> usize {
        self.offline.get(user).map_or(0, VecDeque::len)
    }

    fn count(&mut self, name: &'static str) {
        *self.stats.entry(name).or_default() += 1;
    }

    fn anomaly(&mut self, message: String) {
        self.anomalies.push(message);
    }

    fn touch(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Drains every connection that may have output, until none has.
    fn flush(&mut self) {
        while let Some(link) = self.dirty.pop_first() {
            self.drain(link);
        }
    }

    /// Takes a connection's output: bytes become actions, events are
    /// handled (which may give other connections output).
    fn drain(&mut self, link: LinkId) {
        loop {
            let Some(conn) = self.conns.get_mut(&link) else {
                return;
            };
            let Some(output) = conn.machine.poll_output() else {
                break;
            };
            match output {
                Output::Transmit(bytes) => {
                    self.actions.push_back(HostAction::Transmit { link, bytes })
                }
                Output::Event(event) => self.on_event(link, event),
            }
        }
        if self.conns.get(&link).is_some_and(|c| c.closed) {
            self.conns.remove(&link);
            self.actions.push_back(HostAction::Close { link });
        }
    }

    fn on_event(&mut self, link: LinkId, event: ServerEvent) {
        let now = self.now;
        match event {
            ServerEvent::StartTls { buffered } => {
                let Some(conn) = self.conns.get_mut(&link) else {
                    return;
                };
                let mut result = conn
                    .machine
                    .handle_input(now, Input::TlsEstablished(tls_info()));
                if result.is_ok() && !buffered.is_empty() {
                    result = conn.machine.handle_input(now, Input::Received(&buffered));
                }
                if let Err(e) = result {
                    self.anomaly(format!("{link}: TLS: {e}"));
                }
            }
            ServerEvent::Request { id, request } => self.on_request(link, id, request),
            ServerEvent::Authenticated { .. } | ServerEvent::Bound { .. } => {}
            ServerEvent::StreamManagementEnabled { resumption_id } => {
                let sid = self.conns.get(&link).and_then(|c| c.session);
                if let (Some(id), Some(sid)) = (resumption_id, sid)
                    && let Some(session) = self.sessions.get_mut(&sid)
                {
                    session.resumption_id = Some(id.clone());
                    self.by_resumption_id.insert(id, sid);
                }
            }
            ServerEvent::Resumed { .. } => self.count("resumed"),
            ServerEvent::Stanza(stanza) => {
                let sid = self.conns.get(&link).and_then(|c| c.session);
                let Some(sender) = sid
                    .and_then(|s| self.sessions.get(&s))
                    .map(|s| s.jid.clone())
                else {
                    return self.anomaly(format!("{link}: a stanza outside a session"));
                };
                self.route(sid, &sender, stanza);
            }
            ServerEvent::Closed(reason) => self.on_closed(link, reason),
        }
    }

    fn answer(&mut self, link: LinkId, id: RequestId, answer: Answer) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&link) else {
            return;
        };
        if let Err(e) = conn.machine.answer(now, id, answer) {
            self.anomaly(format!("{link}: answer: {e}"));
        }
    }

    fn on_request(&mut self, link: LinkId, id: RequestId, request: Request) {
        match request {
            Request::Credentials {
                username,
                mechanism,
                ..
            } => {
                let hash = mechanism.scram_hash().unwrap_or(ScramHash::Sha256);
                let lookup = match self.credentials.get(&(username, hash_key(hash))) {
                    Some(c) => CredentialLookup::Found(c.clone()),
                    None => CredentialLookup::NotFound,
                };
                self.answer(link, id, Answer::Credentials(lookup));
            }
            Request::Bind {
                username,
                requested,
            } => {
                let resource = requested.unwrap_or_else(|| self.rng.token(16));
                let Ok(jid) = FullJid::new(Some(&username), &self.domain, &resource) else {
                    return self.answer(
                        link,
                        id,
                        Answer::Bind(BindAnswer::Refused(StanzaErrorCondition::BadRequest)),
                    );
                };
                let sid = self.next_session;
                self.next_session += 1;
                let outcome = self
                    .router
                    .bind(sid, jid.clone(), ConflictPolicy::ReplaceOld);
                let old = match outcome {
                    BindOutcome::Bound => None,
                    BindOutcome::Replaced { old } => Some(old),
                    BindOutcome::Refused | BindOutcome::AlreadyBound(_) => {
                        self.anomaly(format!("{link}: router refused to bind {jid}: {outcome:?}"));
                        return self.answer(
                            link,
                            id,
                            Answer::Bind(BindAnswer::Refused(StanzaErrorCondition::Conflict)),
                        );
                    }
                };
                self.sessions.insert(
                    sid,
                    Session {
                        jid,
                        slot: Slot::Live(link),
                        resumption_id: None,
                    },
                );
                if let Some(conn) = self.conns.get_mut(&link) {
                    conn.session = Some(sid);
                }
                self.count("fresh_binds");
                if let Some(old) = old {
                    self.replace(old);
                }
                self.answer(link, id, Answer::Bind(BindAnswer::Bound { resource }));
            }
            Request::Resume { username, previd } => self.on_resume(link, id, &username, &previd),
        }
    }

    /// A fresh bind took over `old`'s full JID (the router unbound it).
    fn replace(&mut self, old: SessionId) {
        let now = self.now;
        let Some(session) = self.sessions.remove(&old) else {
            return;
        };
        self.count("replaced");
        if let Some(id) = &session.resumption_id {
            self.by_resumption_id.remove(id);
        }
        let unacked = match session.slot {
            Slot::Live(link) => {
                let Some(conn) = self.conns.get_mut(&link) else {
                    return;
                };
                conn.session = None;
                conn.machine.close_with_error(
                    now,
                    StreamError::new(StreamErrorCondition::Conflict)
                        .with_text("replaced by a new session"),
                );
                self.dirty.insert(link);
                conn.machine.take_unacknowledged()
            }
            Slot::Detached(d) => d.into_unacknowledged(),
        };
        self.dispose(&session.jid, unacked);
    }

    fn on_resume(&mut self, link: LinkId, id: RequestId, username: &str, previd: &str) {
        let now = self.now;
        let found = self.by_resumption_id.get(previd).copied().filter(|sid| {
            self.sessions
                .get(sid)
                .is_some_and(|s| s.jid.node() == Some(username))
        });
        let Some(sid) = found else {
            self.count("resume_refused");
            return self.answer(link, id, Answer::Resume(None));
        };
        let jid = self.sessions[&sid].jid.clone();
        // Take the session out of its slot; it goes back if not resumed.
        let detached = match self.sessions.get(&sid).map(|s| &s.slot) {
            Some(Slot::Detached(d)) if d.expires_at() > now => {
                match self
                    .sessions
                    .get_mut(&sid)
                    .map(|s| std::mem::replace(&mut s.slot, Slot::Live(link)))
                {
                    Some(Slot::Detached(d)) => Some(*d),
                    _ => None,
                }
            }
            Some(Slot::Detached(_)) => {
                // Expired, the timer has not run yet.
                self.expire(sid);
                None
            }
            Some(Slot::Live(zombie)) if *zombie != link => {
                // The old connection looks alive but the client is here:
                // take the session over.
                let zombie = *zombie;
                self.count("zombie_takeovers");
                let taken = self.conns.get_mut(&zombie).map(|conn| {
                    conn.session = None;
                    conn.machine.close_with_error(
                        now,
                        StreamError::new(StreamErrorCondition::Conflict)
                            .with_text("the session was resumed on another connection"),
                    );
                    match conn.machine.detach() {
                        Some(d) => Ok(d),
                        None => Err(conn.machine.take_unacknowledged()),
                    }
                });
                self.dirty.insert(zombie);
                match taken {
                    Some(Ok(d)) => {
                        if let Some(s) = self.sessions.get_mut(&sid) {
                            s.slot = Slot::Live(link);
                        }
                        Some(d)
                    }
                    Some(Err(unacked)) => {
                        self.end_session(sid);
                        self.dispose(&jid, unacked);
                        None
                    }
                    None => {
                        self.anomaly(format!(
                            "session {sid} lives on a missing connection {zombie}"
                        ));
                        self.end_session(sid);
                        None
                    }
                }
            }
            _ => None,
        };
        let Some(detached) = detached else {
            self.count("resume_refused");
            return self.answer(link, id, Answer::Resume(None));
        };
        let spare = detached.clone();
        self.answer(link, id, Answer::Resume(Some(Box::new(detached))));
        let state = self.conns.get(&link).map(|c| c.machine.state().clone());
        match state {
            Some(ServerState::Ready | ServerState::Closed(_)) => {
                // Resumed (or failed on the way: the Closed event hands
                // back the stanzas through take_unacknowledged).
                if let Some(conn) = self.conns.get_mut(&link) {
                    conn.session = Some(sid);
                }
            }
            _ => {
                // The machine refused it: keep it detached.
                self.anomaly(format!(
                    "{link}: the machine refused session {previd} of {username}"
                ));
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.slot = Slot::Detached(Box::new(spare));
                }
            }
        }
    }

    fn on_closed(&mut self, link: LinkId, reason: CloseReason) {
        let expected = matches!(
            reason,
            CloseReason::Eof
                | CloseReason::PeerTimeout
                | CloseReason::NegotiationTimeout
                | CloseReason::Closed
                | CloseReason::HostStreamError(_)
        );
        if !expected {
            self.anomaly(format!("{link}: connection closed: {reason}"));
        }
        let Some(conn) = self.conns.get_mut(&link) else {
            return;
        };
        conn.closed = true;
        let Some(sid) = conn.session.take() else {
            return;
        };
        match conn.machine.detach() {
            Some(d) => {
                self.count("detached");
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.slot = Slot::Detached(Box::new(d));
                }
            }
            None => {
                let unacked = conn.machine.take_unacknowledged();
                let jid = self.sessions.get(&sid).map(|s| s.jid.clone());
                self.end_session(sid);
                if let Some(jid) = jid {
                    self.dispose(&jid, unacked);
                }
            }
        }
    }

    /// Forgets a session (router, resumption id).
    fn end_session(&mut self, sid: SessionId) {
        self.router.unbind(sid);
        if let Some(session) = self.sessions.remove(&sid)
            && let Some(id) = session.resumption_id
        {
            self.by_resumption_id.remove(&id);
        }
    }

    /// A detached session ran out of time.
    fn expire(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let jid = session.jid.clone();
        self.count("expired");
        let slot = self.sessions.remove(&sid).map(|s| {
            if let Some(id) = &s.resumption_id {
                self.by_resumption_id.remove(id);
            }
            s.slot
        });
        self.router.unbind(sid);
        if let Some(Slot::Detached(d)) = slot {
            self.dispose(&jid, d.into_unacknowledged());
        }
    }

    /// Stanzas a session never got acknowledged, now that it is over
    /// (XEP-0198 §4, RFC 6121 §8.5).
    fn dispose(&mut self, owner: &FullJid, stanzas: Vec<Stanza>) {
        for stanza in stanzas {
            match Disposition::of(&stanza) {
                Disposition::Reroute => {
                    self.count("rerouted");
                    let sender = stanza
                        .from()
                        .and_then(|f| f.parse::<FullJid>().ok())
                        .unwrap_or_else(|| owner.clone());
                    let mut stanza = stanza;
                    stanza.set_to(Some(owner.to_bare().as_str()));
                    self.route(None, &sender, stanza);
                }
                Disposition::Bounce(condition) => {
                    self.count("bounced_unacked");
                    if let Some(reply) = stanza.error_reply(&StanzaError::new(condition)) {
                        self.route(None, owner, reply);
                    }
                }
                Disposition::Drop => self.count("dropped_unacked"),
            }
        }
    }

    /// Carries out the router's decision for `stanza` from `sender` (on
    /// session `from_session`, when it comes from a client).
    fn route(&mut self, from_session: Option<SessionId>, sender: &FullJid, stanza: Stanza) {
        match self.router.route(sender, &stanza, &self.accounts) {
            Decision::Deliver(ids) => {
                for sid in ids {
                    self.deliver(sid, stanza.clone());
                }
            }
            Decision::Server(target) => self.serve(from_session, target, stanza),
            Decision::Bounce(error) => self.bounce(sender, &stanza, error),
            Decision::Drop(_) => self.count("dropped"),
            Decision::StoreOffline(user) => {
                let capacity = self.offline_capacity;
                let queue = self.offline.entry(user).or_default();
                if queue.len() < capacity {
                    queue.push_back(stanza);
                    self.count("stored_offline");
                } else {
                    self.count("offline_full");
                    self.bounce(
                        sender,
                        &stanza,
                        StanzaError::new(StanzaErrorCondition::ServiceUnavailable)
                            .with_text("offline storage is full"),
                    );
                }
            }
            Decision::Remote(_) => self.bounce(
                sender,
                &stanza,
                StanzaError::new(StanzaErrorCondition::RemoteServerNotFound),
            ),
        }
    }

    fn bounce(&mut self, sender: &FullJid, stanza: &Stanza, error: StanzaError) {
        if let Some(reply) = stanza.error_reply(&error) {
            self.count("bounced");
            self.route(None, sender, reply);
        }
    }

    /// Sends `stanza` to a session: on its connection, or into its queue
    /// while detached.
    fn deliver(&mut self, sid: SessionId, stanza: Stanza) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return self.anomaly(format!("routed to unknown session {sid}"));
        };
        let owner = session.jid.clone();
        let link = match &mut session.slot {
            Slot::Detached(d) => {
                if d.queue(stanza).is_err() {
                    return self.anomaly(format!("unwritable stanza for detached session {sid}"));
                }
                self.count("queued_detached");
                return;
            }
            Slot::Live(link) => *link,
        };
        let result = match self.conns.get_mut(&link) {
            Some(conn) => conn.machine.send_stanza(&stanza),
            None => return self.anomaly(format!("session {sid} lives on a missing connection")),
        };
        match result {
            Ok(()) => {
                self.dirty.insert(link);
            }
            Err(_)
                if self
                    .conns
                    .get(&link)
                    .is_some_and(|c| matches!(c.machine.state(), ServerState::Closed(_))) =>
            {
                // Closed and not drained yet: handle that first, then
                // deliver to wherever the session is now.
                self.drain(link);
                match self.sessions.get(&sid).map(|s| &s.slot) {
                    Some(Slot::Detached(_)) => self.deliver(sid, stanza),
                    Some(Slot::Live(_)) => self.anomaly(format!("{link}: closed but still live")),
                    // The session ended: the stanza is one it never got.
                    None => self.dispose(&owner, vec![stanza]),
                }
            }
            Err(e) => self.anomaly(format!("{link}: send_stanza: {e}")),
        }
    }

    /// Stanzas for the server itself.
    fn serve(&mut self, from_session: Option<SessionId>, target: LocalTarget, stanza: Stanza) {
        match target {
            LocalTarget::Domain(_) | LocalTarget::Account(_) => {
                let sender = stanza.from().and_then(|f| f.parse::<FullJid>().ok());
                match (stanza.iq_type(), sender) {
                    (Some(Ok(IqType::Get | IqType::Set)), Some(sender)) => {
                        let ping = matches!(target, LocalTarget::Domain(_))
                            && stanza.iq_payload().is_some_and(|p| p.is("ping", NS_PING));
                        if ping {
                            if let Some(reply) = stanza.iq_result(None) {
                                self.route(None, &sender, reply);
                            }
                        } else {
                            self.bounce(
                                &sender,
                                &stanza,
                                StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
                            );
                        }
                    }
                    _ => self.count("dropped"),
                }
            }
            LocalTarget::Broadcast(user) => {
                let (Some(sid), Some(Ok(kind))) = (from_session, stanza.presence_type()) else {
                    return;
                };
                let available = kind == PresenceType::Available;
                let priority = stanza.priority().unwrap_or(0);
                self.router.set_presence(sid, available, priority);
                if available && priority >= 0 {
                    self.deliver_offline(&user);
                }
            }
        }
    }

    /// Routes the offline messages of `user` again (now that a session is
    /// available), oldest first.
    fn deliver_offline(&mut self, user: &BareJid) {
        let Some(stored) = self.offline.remove(user) else {
            return;
        };
        for stanza in stored {
            self.count("offline_delivered");
            let sender = stanza.from().and_then(|f| f.parse::<FullJid>().ok());
            match sender {
                Some(sender) => self.route(None, &sender, stanza),
                None => self.anomaly("an offline message without a sender".to_owned()),
            }
        }
    }
}

impl Host for ReferenceHost {
    fn connected(&mut self, now: Instant, link: LinkId) {
        self.touch(now);
        self.count("connections");
        let rng = SeededRng::from_u64(self.rng.next_u64());
        let tls = if self.direct_tls {
            tls_info()
        } else {
            crate::sasl::TlsInfo::plaintext()
        };
        let machine = ServerConnection::new(self.config.clone(), tls, rng, now);
        self.conns.insert(
            link,
            Conn {
                machine,
                session: None,
                closed: false,
            },
        );
        self.dirty.insert(link);
        self.flush();
    }

    fn received(&mut self, now: Instant, link: LinkId, bytes: &[u8]) {
        self.touch(now);
        let Some(conn) = self.conns.get_mut(&link) else {
            return;
        };
        if let Err(e) = conn.machine.handle_input(now, Input::Received(bytes)) {
            self.anomaly(format!("{link}: handle_input: {e}"));
        }
        self.dirty.insert(link);
        self.flush();
    }

    fn eof(&mut self, now: Instant, link: LinkId) {
        self.touch(now);
        let Some(conn) = self.conns.get_mut(&link) else {
            return;
        };
        if let Err(e) = conn.machine.handle_input(now, Input::Eof) {
            self.anomaly(format!("{link}: handle_input: {e}"));
        }
        self.dirty.insert(link);
        self.flush();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.conns.values().filter_map(|c| c.machine.poll_timeout());
        let expiries = self.sessions.values().filter_map(|s| match &s.slot {
            Slot::Detached(d) => Some(d.expires_at()),
            Slot::Live(_) => None,
        });
        conns.chain(expiries).min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        let due: Vec<LinkId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.machine.poll_timeout().is_some_and(|d| d <= now))
            .map(|(l, _)| *l)
            .collect();
        for link in due {
            if let Some(conn) = self.conns.get_mut(&link) {
                conn.machine.handle_timeout(now);
                self.dirty.insert(link);
            }
        }
        self.flush();
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(&s.slot, Slot::Detached(d) if d.expires_at() <= now))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in expired {
            self.expire(sid);
        }
        self.flush();
    }

    fn poll_action(&mut self) -> Option<HostAction> {
        self.actions.pop_front()
    }

    fn anomalies(&mut self) -> Vec<String> {
        std::mem::take(&mut self.anomalies)
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        self.stats
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }
}
