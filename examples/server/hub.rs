//! The example server's shared state: one actor task owns the [`Router`],
//! the outboxes of all sessions and the last broadcast presence of each, and
//! carries out the router's decisions. Connection tasks talk to it through
//! one channel ([`HubMsg`]); it never awaits a connection, so one slow or
//! broken client cannot stall the others.
//!
//! What the server answers itself ([`Decision::Server`]):
//!
//! | target | stanza | answer |
//! |---|---|---|
//! | the domain | iq get disco#info (no node) | identity `server/im`, features [`SERVER_FEATURES`] |
//! | the domain | iq get disco#info with a node | `item-not-found` |
//! | the domain, the own account, or no `to` | iq get XEP-0199 ping | empty result |
//! | the own account or no `to` | iq get `jabber:iq:roster` | empty `<query/>` (RFC 6121 §2.1.3: no contacts yet) |
//! | the own account or no `to` | iq set `jabber:iq:roster` | `feature-not-implemented`: rosters are not stored yet |
//! | an existing account's bare JID | iq get disco#info (no node) | identity `account/registered` |
//! | anything | other iq get/set | `service-unavailable` |
//! | anything | iq result/error, message | ignored |
//! | an account | subscription presence, probe | ignored (no rosters yet) |
//! | — (presence without `to`) | available / unavailable | [`Router::set_presence`], then sent to each available resource of the user (the sender included); a newly available resource gets the others' last presence |

//!
//! Stream management (XEP-0198): a connection that is lost with a
//! resumable session leaves its [`DetachedSession`] here. The session stays
//! bound in the router (and available to its contacts); stanzas routed to it
//! are queued in it. A resume on a new connection (matched by resumption id
//! and account, after closing a still-open old connection with `conflict`)
//! moves the session to the new connection; when the resumption time is up
//! the session ends: `unavailable` goes out and what the client never
//! acknowledged is handled by [`Disposition`] (messages routed again, iq
//! requests bounced, the rest dropped). A session that ends without
//! resumption hands its unacknowledged stanzas over the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Instant;

use minidom::Element;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use xmpp_sansio::error::{StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition};
use xmpp_sansio::router::{BindOutcome, ConflictPolicy, Decision, LocalTarget, Router, SessionId};
use xmpp_sansio::server::DetachedSession;
use xmpp_sansio::sm::Disposition;
use xmpp_sansio::stanza::{IqType, PresenceType, Stanza, StanzaKind};
use xmpp_sansio::stream::NS_PING;
use xmpp_sansio::{BareJid, FullJid, ns};

use crate::store::Store;

/// disco#info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Roster namespace (RFC 6121 §2).
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// The features advertised on the domain: only what is implemented.
pub const SERVER_FEATURES: [&str; 4] = [NS_DISCO_INFO, NS_PING, NS_ROSTER, ns::XMPP_SESSION];
/// Stanzas that may wait for a detached session (XEP-0198) before it is
/// ended instead of kept for resumption.
pub const DETACHED_QUEUE_LIMIT: usize = 1000;
/// Stanzas that may wait for one session before it counts as stuck.
pub const OUTBOX_CAPACITY: usize = 4096;

/// What the hub hands one connection: stanzas to send and a request to
/// close. It holds no allocation while empty (a bounded tokio mpsc channel
/// allocates a block of 32 slots up front, ~4 KiB per session, and a watch
/// channel ~0.4 KiB), which is what almost every session is almost always.
/// The connection waits on it with [`changed`](Self::changed), a future of
/// one pointer (a `Notified` is 64 bytes, in every idle connection's task).
#[derive(Default)]
pub struct Mailbox {
    state: Mutex<MailboxState>,
}

#[derive(Default)]
struct MailboxState {
    stanzas: VecDeque<Stanza>,
    close: Option<Box<StreamError>>,
    /// Something happened since the connection last looked.
    changed: bool,
    /// The connection's task, when it waits.
    waker: Option<Waker>,
}

impl MailboxState {
    /// Marks a change; the caller wakes the returned task after unlocking.
    #[must_use]
    fn changed(&mut self) -> Option<Waker> {
        self.changed = true;
        self.waker.take()
    }
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a stanza (hub side). Gives it back when
    /// [`OUTBOX_CAPACITY`] stanzas are waiting already.
    fn push(&self, stanza: Stanza) -> Result<(), Stanza> {
        let mut state = self.lock();
        if state.stanzas.len() >= OUTBOX_CAPACITY {
            return Err(stanza);
        }
        state.stanzas.push_back(stanza);
        let waker = state.changed();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Asks the connection to close the stream with `error` (hub side).
    fn close(&self, error: StreamError) {
        let mut state = self.lock();
        state.close = Some(Box::new(error));
        let waker = state.changed();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Waits until something happened since the last wait (connection
    /// side; one waiting task at a time).
    pub fn changed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if std::mem::take(&mut state.changed) {
                return Poll::Ready(());
            }
            match &mut state.waker {
                Some(waker) => waker.clone_from(cx.waker()),
                None => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// The next stanza to send (connection side). The queue's memory goes
    /// back when it runs empty.
    pub fn pop(&self) -> Option<Stanza> {
        let mut state = self.lock();
        let stanza = state.stanzas.pop_front();
        if state.stanzas.is_empty() && state.stanzas.capacity() > 0 {
            state.stanzas = VecDeque::new();
        }
        stanza
    }

    /// The close request, if any (connection side).
    pub fn take_close(&self) -> Option<StreamError> {
        self.lock().close.take().map(|e| *e)
    }

    /// Makes the next [`changed`](Self::changed) return at once if stanzas
    /// are still waiting (connection side, after a round of at most
    /// 64).
    pub fn again_if_waiting(&self) {
        let mut state = self.lock();
        if !state.stanzas.is_empty() {
            state.changed = true;
        }
    }
}

/// A message to the hub.
pub enum HubMsg {
    /// A new connection: where its stanzas and close requests go.
    Register {
        id: SessionId,
        mailbox: Arc<Mailbox>,
    },
    /// The connection asks to bind `jid` (the answer is the router's).
    Bind {
        id: SessionId,
        jid: FullJid,
        reply: oneshot::Sender<BindOutcome>,
    },
    /// A stanza from a bound session (validated, `from` stamped).
    Stanza { id: SessionId, stanza: Stanza },
    /// Stream management (XEP-0198) was enabled on a bound session.
    SmEnabled {
        id: SessionId,
        resumption_id: Option<String>,
    },
    /// A new connection of `username` asks to resume the session with
    /// resumption id `previd` (XEP-0198 §5). The answer is the detached
    /// session, or `None`.
    Resume {
        id: SessionId,
        username: String,
        previd: String,
        reply: oneshot::Sender<Option<Box<DetachedSession>>>,
    },
    /// The connection ended. `detached`: its resumable stream-management
    /// session, to keep until it expires; `unacked`: stanzas sent to it that
    /// it never acknowledged (when not resumable).
    Gone {
        id: SessionId,
        detached: Option<Box<DetachedSession>>,
        unacked: Vec<Stanza>,
    },
    /// Close every session with `system-shutdown`.
    Shutdown,
}

struct Session {
    mailbox: Arc<Mailbox>,
}

/// A session's last available presence, for the user's resources that
/// become available later.
enum LastPresence {
    /// `<presence/>` with nothing in it but the sender's full JID and an
    /// `id`: only the id is stored, the stanza is rebuilt when needed. A
    /// parsed element costs ~1.3 KiB (its attribute map alone allocates a
    /// B-tree node for 11 entries).
    Plain { id: Option<Box<str>> },
    /// Anything else (`<show/>`, `<status/>`, a priority, caps, `xml:lang`,
    /// …), as it came (boxed: the map's entries stay small).
    Full(Box<Stanza>),
}

impl LastPresence {
    fn keep(stanza: Stanza, sender: Option<&FullJid>) -> LastPresence {
        let element = stanza.element();
        let from_sender = sender.is_some_and(|jid| stanza.from() == Some(jid.as_str()));
        let attrs = usize::from(stanza.id().is_some()) + 1;
        if from_sender && element.attrs().len() == attrs && element.nodes().next().is_none() {
            LastPresence::Plain {
                id: stanza.id().map(Box::from),
            }
        } else {
            LastPresence::Full(Box::new(stanza))
        }
    }

    fn stanza(&self, sender: &FullJid) -> Stanza {
        match self {
            LastPresence::Plain { id } => {
                let mut presence = Stanza::new(StanzaKind::Presence, ns::JABBER_CLIENT);
                presence.set_from(Some(sender.as_str()));
                presence.set_id(id.as_deref());
                presence
            }
            LastPresence::Full(stanza) => (**stanza).clone(),
        }
    }
}

/// The actor's state.
pub struct Hub {
    domain: String,
    router: Router,
    policy: ConflictPolicy,
    store: Arc<Store>,
    sessions: HashMap<SessionId, Session>,
    last_presence: HashMap<SessionId, LastPresence>,
    /// Sessions whose connection is gone but which can be resumed
    /// (XEP-0198): still bound in the router (and available: presence
    /// `unavailable` goes out only when one expires), stanzas for them
    /// queued in the detached session.
    detached: HashMap<SessionId, DetachedSession>,
    /// Resumption id → the session it resumes (live or detached).
    resumable: HashMap<String, SessionId>,
    /// Resumes waiting for a still-open old connection to close: old
    /// session → (new session, the answer).
    takeovers: HashMap<SessionId, Takeover>,
    shutting_down: bool,
}

/// A resume waiting for the old connection to let go of the session.
struct Takeover {
    new: SessionId,
    reply: oneshot::Sender<Option<Box<DetachedSession>>>,
}

impl Hub {
    pub fn new(domain: String, policy: ConflictPolicy, store: Arc<Store>) -> Hub {
        Hub {
            router: Router::new([domain.clone()]),
            domain,
            policy,
            store,
            sessions: HashMap::new(),
            last_presence: HashMap::new(),
            detached: HashMap::new(),
            resumable: HashMap::new(),
            takeovers: HashMap::new(),
            shutting_down: false,
        }
    }

    /// Runs until every sender of `rx` is gone; ends detached sessions when
    /// their resumption time is up.
    pub async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
        loop {
            let next_expiry = self
                .detached
                .values()
                .map(DetachedSession::expires_at)
                .min();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                () = crate::common::sleep_until(next_expiry) => self.expire(Instant::now()),
            }
        }
    }

    fn handle(&mut self, msg: HubMsg) {
        match msg {
            HubMsg::Register { id, mailbox } => {
                if self.shutting_down {
                    mailbox.close(shutdown_error());
                }
                self.sessions.insert(id, Session { mailbox });
            }
            HubMsg::Bind { id, jid, reply } => {
                let outcome = self.bind(id, jid);
                let _ = reply.send(outcome);
            }
            HubMsg::Stanza { id, stanza } => self.route(id, stanza),
            HubMsg::SmEnabled { id, resumption_id } => {
                if let Some(rid) = resumption_id {
                    self.resumable.insert(rid, id);
                }
            }
            HubMsg::Resume {
                id,
                username,
                previd,
                reply,
            } => self.resume(id, &username, &previd, reply),
            HubMsg::Gone {
                id,
                detached,
                unacked,
            } => self.gone(id, detached.map(|d| *d), unacked),
            HubMsg::Shutdown => {
                self.shutting_down = true;
                for session in self.sessions.values() {
                    session.mailbox.close(shutdown_error());
                }
                // Nobody can resume any more: end every detached session.
                let ids: Vec<SessionId> = self.detached.keys().copied().collect();
                for id in ids {
                    if let Some(d) = self.detached.remove(&id) {
                        self.end_session(id, d.into_unacknowledged());
                    }
                }
            }
        }
    }

    fn bind(&mut self, id: SessionId, jid: FullJid) -> BindOutcome {
        if self.shutting_down {
            return BindOutcome::Refused;
        }
        let holder = self
            .router
            .sessions_of(&jid.to_bare())
            .find(|(_, j)| **j == jid)
            .map(|(sid, _)| sid);
        let holder_available = holder
            .and_then(|sid| self.router.session(sid))
            .is_some_and(|s| s.available);
        let outcome = self.router.bind(id, jid.clone(), self.policy);
        match &outcome {
            BindOutcome::Bound => {
                info!(session = id, %jid, sessions = self.router.session_count(), "bound");
            }
            BindOutcome::Refused => {
                info!(session = id, %jid, "bind refused: resource in use (conflict)");
            }
            BindOutcome::Replaced { old } => {
                info!(session = id, old_session = old, %jid, "bound, replacing the old session (conflict)");
                self.last_presence.remove(old);
                if let Some(old) = self.sessions.get(old) {
                    let error = StreamError::new(StreamErrorCondition::Conflict)
                        .with_text("replaced by a new session for the same resource");
                    old.mailbox.close(error);
                }
                if holder_available {
                    self.broadcast_unavailable(&jid, Some(id));
                }
            }
            BindOutcome::AlreadyBound(jid) => {
                warn!(session = id, %jid, "second bind on one stream");
            }
        }
        outcome
    }

    /// A connection ended: keep its session for resumption, hand it to a
    /// waiting resume, or end it.
    fn gone(&mut self, id: SessionId, detached: Option<DetachedSession>, unacked: Vec<Stanza>) {
        self.sessions.remove(&id);
        let takeover = self.takeovers.remove(&id);
        match detached {
            Some(d) if !self.shutting_down && self.router.session(id).is_some() => {
                if let Some(Takeover { new, reply }) = takeover {
                    return self.hand_over(id, d, new, reply);
                }
                info!(session = id, jid = %d.jid(), "detached; resumable");
                self.detached.insert(id, d);
            }
            other => {
                if let Some(Takeover { reply, .. }) = takeover {
                    let _ = reply.send(None);
                }
                let mut unacked = unacked;
                if let Some(d) = other {
                    unacked.extend(d.into_unacknowledged());
                }
                self.end_session(id, unacked);
            }
        }
    }

    /// The session is over: unbind it, tell the user's other resources,
    /// and handle what its client never acknowledged (XEP-0198 §4: messages
    /// routed again, iq requests bounced, the rest dropped).
    fn end_session(&mut self, id: SessionId, unacked: Vec<Stanza>) {
        self.last_presence.remove(&id);
        self.resumable.retain(|_, sid| *sid != id);
        let was = self
            .router
            .session(id)
            .map(|s| (s.jid.clone(), s.available));
        self.router.unbind(id);
        if let Some((jid, available)) = was {
            debug!(session = id, %jid, sessions = self.router.session_count(), "unbound");
            if available {
                self.broadcast_unavailable(&jid, None);
            }
        }
        for stanza in unacked {
            match Disposition::of(&stanza) {
                Disposition::Reroute => self.reroute(stanza),
                Disposition::Bounce(condition) => {
                    if let Some(reply) = stanza.error_reply(&StanzaError::new(condition)) {
                        self.reroute(reply);
                    }
                }
                Disposition::Drop => {}
            }
        }
    }

    /// Routes a stanza again that a session never got: from its original
    /// sender, as if it had just arrived.
    fn reroute(&mut self, stanza: Stanza) {
        let Some(Ok(from)) = stanza.from().map(str::parse::<FullJid>) else {
            debug!("unacknowledged stanza without a full from dropped");
            return;
        };
        let sender = self
            .router
            .sessions_of(&from.to_bare())
            .find(|(_, jid)| **jid == from)
            .map(|(sid, _)| sid);
        match self.decide(&from, &stanza) {
            Decision::Deliver(targets) => {
                for target in targets {
                    self.deliver(target, stanza.clone());
                }
            }
            Decision::Bounce(error) => {
                if let (Some(sender), Some(reply)) = (sender, stanza.error_reply(&error)) {
                    self.deliver(sender, reply);
                }
            }
            decision => debug!(?decision, "unacknowledged stanza not routed again"),
        }
    }

    /// A new connection asks to resume `previd`.
    fn resume(
        &mut self,
        new: SessionId,
        username: &str,
        previd: &str,
        reply: oneshot::Sender<Option<Box<DetachedSession>>>,
    ) {
        let Some(&old) = self.resumable.get(previd) else {
            let _ = reply.send(None);
            return;
        };
        let owner = self.router.session_jid(old).and_then(|j| j.node());
        if owner != Some(username) || self.shutting_down {
            let _ = reply.send(None);
            return;
        }
        if let Some(d) = self.detached.remove(&old) {
            return self.hand_over(old, d, new, reply);
        }
        // The old connection still looks alive (a zombie): close it; its
        // session comes back with its `Gone`.
        if let Some(session) = self.sessions.get(&old) {
            info!(
                session = old,
                new_session = new,
                "resumed elsewhere: closing the old connection"
            );
            session.mailbox.close(
                StreamError::new(StreamErrorCondition::Conflict)
                    .with_text("the session was resumed on another connection"),
            );
            self.takeovers.insert(old, Takeover { new, reply });
        } else {
            let _ = reply.send(None);
        }
    }

    /// Moves the session `old` to the connection `new` and answers the
    /// resume with it.
    fn hand_over(
        &mut self,
        old: SessionId,
        detached: DetachedSession,
        new: SessionId,
        reply: oneshot::Sender<Option<Box<DetachedSession>>>,
    ) {
        if !self.sessions.contains_key(&new) {
            // The new connection went away meanwhile: keep it detached.
            self.detached.insert(old, detached);
            let _ = reply.send(None);
            return;
        }
        let (available, priority) = self
            .router
            .session(old)
            .map_or((false, 0), |s| (s.available, s.priority));
        self.router.unbind(old);
        let jid = detached.jid().clone();
        if !matches!(
            self.router
                .bind(new, jid.clone(), ConflictPolicy::RefuseNew),
            BindOutcome::Bound
        ) {
            warn!(session = new, %jid, "resumed JID already bound; resume refused");
            self.end_session(old, detached.into_unacknowledged());
            let _ = reply.send(None);
            return;
        }
        self.router.set_presence(new, available, priority);
        if let Some(last) = self.last_presence.remove(&old) {
            self.last_presence.insert(new, last);
        }
        self.resumable.insert(detached.id().to_owned(), new);
        info!(session = new, old_session = old, %jid, "resumed");
        if let Err(Some(d)) = reply.send(Some(Box::new(detached))) {
            // The connection stopped waiting: keep the session detached.
            self.router.unbind(new);
            let _ = self.router.bind(old, jid, ConflictPolicy::RefuseNew);
            self.router.set_presence(old, available, priority);
            if let Some(last) = self.last_presence.remove(&new) {
                self.last_presence.insert(old, last);
            }
            self.resumable.insert(d.id().to_owned(), old);
            self.detached.insert(old, *d);
        }
    }

    /// Ends the detached sessions whose resumption time is up.
    fn expire(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .detached
            .iter()
            .filter(|(_, d)| d.expires_at() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(d) = self.detached.remove(&id) {
                info!(session = id, jid = %d.jid(), "resumption time is up; session ended");
                self.end_session(id, d.into_unacknowledged());
            }
        }
    }

    /// Tells the other available resources of `jid`'s user that `jid` went
    /// offline (not `except`).
    fn broadcast_unavailable(&mut self, jid: &FullJid, except: Option<SessionId>) {
        let mut presence = Stanza::new(StanzaKind::Presence, ns::JABBER_CLIENT);
        presence.set_attr("type", Some("unavailable"));
        presence.set_from(Some(jid.as_str()));
        let targets: Vec<SessionId> = self
            .available_sessions(&jid.to_bare())
            .into_iter()
            .filter(|sid| Some(*sid) != except)
            .collect();
        for target in targets {
            self.deliver(target, presence.clone());
        }
    }

    fn available_sessions(&self, user: &BareJid) -> Vec<SessionId> {
        self.router
            .sessions_of(user)
            .map(|(sid, _)| sid)
            .filter(|sid| self.router.session(*sid).is_some_and(|s| s.available))
            .collect()
    }

    /// The router's decision for `stanza` from `from`.
    fn decide(&self, from: &FullJid, stanza: &Stanza) -> Decision {
        let store = &self.store;
        let domain = self.domain.as_str();
        let exists = |user: &BareJid| {
            user.domain() == domain
                && user.node().is_some_and(|n| {
                    store.exists(n).unwrap_or_else(|e| {
                        warn!(error = %e, "account lookup failed");
                        false
                    })
                })
        };
        self.router.route(from, stanza, &exists)
    }

    fn route(&mut self, id: SessionId, stanza: Stanza) {
        let Some(from) = self.router.session_jid(id).cloned() else {
            // Replaced or already gone: its stanzas go nowhere.
            debug!(session = id, "stanza from an unbound session dropped");
            return;
        };
        let decision = self.decide(&from, &stanza);
        debug!(
            session = id,
            kind = stanza.kind().name(),
            to = stanza.to(),
            ?decision,
            "route"
        );
        match decision {
            Decision::Deliver(targets) => {
                for target in targets {
                    self.deliver(target, stanza.clone());
                }
            }
            Decision::Server(target) => self.local(id, &from, stanza, target),
            Decision::Bounce(error) => {
                if let Some(reply) = stanza.error_reply(&error) {
                    self.deliver(id, reply);
                }
            }
            Decision::Drop(reason) => {
                debug!(session = id, ?reason, "stanza dropped");
            }
            Decision::StoreOffline(user) => {
                // Offline storage is not enabled on the router; never here.
                warn!(session = id, %user, "no offline storage");
                self.refuse(id, &stanza, StanzaErrorCondition::ServiceUnavailable);
            }
            Decision::Remote(domain) => {
                debug!(session = id, %domain, "no federation: remote-server-not-found");
                self.refuse(id, &stanza, StanzaErrorCondition::RemoteServerNotFound);
            }
        }
    }

    /// Bounces `stanza` to its sender, except errors and iq results (those
    /// are never answered).
    fn refuse(&mut self, id: SessionId, stanza: &Stanza, condition: StanzaErrorCondition) {
        if stanza.iq_type() == Some(Ok(IqType::Result)) {
            return;
        }
        if let Some(reply) = stanza.error_reply(&StanzaError::new(condition)) {
            self.deliver(id, reply);
        }
    }

    fn refuse_with_text(
        &mut self,
        id: SessionId,
        stanza: &Stanza,
        condition: StanzaErrorCondition,
        text: &str,
    ) {
        if let Some(reply) = stanza.error_reply(&StanzaError::new(condition).with_text(text)) {
            self.deliver(id, reply);
        }
    }

    fn answer(&mut self, id: SessionId, stanza: &Stanza, payload: Option<Element>) {
        if let Some(reply) = stanza.iq_result(payload) {
            self.deliver(id, reply);
        }
    }

    /// Queues `stanza` for session `target`. A session whose queue is full
    /// is not reading: it is closed with `policy-violation` (the stanza is
    /// lost), so it cannot hold the hub up.
    fn deliver(&mut self, target: SessionId, stanza: Stanza) {
        if let Some(detached) = self.detached.get_mut(&target) {
            // Sent on resumption, or handled when the session expires.
            detached.queue(stanza);
            if detached.session().unacked_len() > DETACHED_QUEUE_LIMIT
                && let Some(d) = self.detached.remove(&target)
            {
                warn!(
                    session = target,
                    "too much waiting for a detached session; ended"
                );
                self.end_session(target, d.into_unacknowledged());
            }
            return;
        }
        let Some(session) = self.sessions.get(&target) else {
            return;
        };
        if session.mailbox.push(stanza).is_err() {
            warn!(
                session = target,
                "outbox full: the client does not read; closing it"
            );
            let error = StreamError::new(StreamErrorCondition::PolicyViolation)
                .with_text("too many stanzas waiting for this client");
            session.mailbox.close(error);
        }
    }

    fn local(&mut self, id: SessionId, from: &FullJid, stanza: Stanza, target: LocalTarget) {
        match target {
            LocalTarget::Broadcast(user) => self.presence(id, &user, stanza),
            LocalTarget::Domain(jid) => {
                if jid.resource().is_some() {
                    // No server resources exist.
                    return self.unsupported(id, &stanza);
                }
                self.domain_iq(id, &stanza);
            }
            LocalTarget::Account(user) => self.account(id, from, &user, &stanza),
        }
    }

    fn unsupported(&mut self, id: SessionId, stanza: &Stanza) {
        if stanza
            .iq_type()
            .and_then(Result::ok)
            .is_some_and(IqType::is_request)
        {
            self.refuse(id, stanza, StanzaErrorCondition::ServiceUnavailable);
        }
    }

    fn domain_iq(&mut self, id: SessionId, stanza: &Stanza) {
        let Some(Ok(iq_type)) = stanza.iq_type() else {
            return; // messages and presence to the server: ignored
        };
        let Some(payload) = stanza.iq_payload() else {
            return;
        };
        match iq_type {
            IqType::Get if payload.is("query", NS_DISCO_INFO) => {
                if payload.attr("node").is_some() {
                    return self.refuse(id, stanza, StanzaErrorCondition::ItemNotFound);
                }
                let mut query = Element::bare("query", NS_DISCO_INFO);
                query.append_child(
                    Element::builder("identity", NS_DISCO_INFO)
                        .attr(nc("category"), "server")
                        .attr(nc("type"), "im")
                        .attr(nc("name"), "xmpp-sansio example server")
                        .build(),
                );
                for feature in SERVER_FEATURES {
                    query.append_child(
                        Element::builder("feature", NS_DISCO_INFO)
                            .attr(nc("var"), feature)
                            .build(),
                    );
                }
                self.answer(id, stanza, Some(query));
            }
            IqType::Get if payload.is("ping", NS_PING) => self.answer(id, stanza, None),
            _ => self.unsupported(id, stanza),
        }
    }

    fn account(&mut self, id: SessionId, from: &FullJid, user: &BareJid, stanza: &Stanza) {
        let own = *user == from.to_bare();
        let Some(Ok(iq_type)) = stanza.iq_type() else {
            // Subscription presences and probes need rosters: not yet.
            debug!(session = id, %user, "presence for the account ignored (no rosters yet)");
            return;
        };
        let Some(payload) = stanza.iq_payload() else {
            return;
        };
        match iq_type {
            IqType::Get if own && payload.is("query", NS_ROSTER) => {
                self.answer(id, stanza, Some(Element::bare("query", NS_ROSTER)));
            }
            IqType::Set if own && payload.is("query", NS_ROSTER) => self.refuse_with_text(
                id,
                stanza,
                StanzaErrorCondition::FeatureNotImplemented,
                "rosters are not stored by this server yet",
            ),
            IqType::Get if own && payload.is("ping", NS_PING) => self.answer(id, stanza, None),
            IqType::Get if payload.is("query", NS_DISCO_INFO) && payload.attr("node").is_none() => {
                let mut query = Element::bare("query", NS_DISCO_INFO);
                query.append_child(
                    Element::builder("identity", NS_DISCO_INFO)
                        .attr(nc("category"), "account")
                        .attr(nc("type"), "registered")
                        .build(),
                );
                query.append_child(
                    Element::builder("feature", NS_DISCO_INFO)
                        .attr(nc("var"), NS_DISCO_INFO)
                        .build(),
                );
                self.answer(id, stanza, Some(query));
            }
            _ => self.unsupported(id, stanza),
        }
    }

    fn presence(&mut self, id: SessionId, user: &BareJid, stanza: Stanza) {
        let available = match stanza.presence_type() {
            Some(Ok(PresenceType::Available)) => true,
            Some(Ok(PresenceType::Unavailable)) => false,
            _ => return,
        };
        let was_available = self.router.session(id).is_some_and(|s| s.available);
        let priority = stanza.priority().unwrap_or(0);
        self.router.set_presence(id, available, priority);
        debug!(session = id, available, priority, "presence");
        let mut targets = self.available_sessions(user);
        if !targets.contains(&id) {
            targets.push(id);
        }
        for target in targets {
            self.deliver(target, stanza.clone());
        }
        if available {
            let last = LastPresence::keep(stanza, self.router.session_jid(id));
            self.last_presence.insert(id, last);
            if !was_available {
                // A newly available resource learns about the others.
                let others: Vec<Stanza> = self
                    .available_sessions(user)
                    .into_iter()
                    .filter(|sid| *sid != id)
                    .filter_map(|sid| {
                        let jid = self.router.session_jid(sid)?;
                        Some(self.last_presence.get(&sid)?.stanza(jid))
                    })
                    .collect();
                for p in others {
                    self.deliver(id, p);
                }
            }
        } else {
            self.last_presence.remove(&id);
        }
    }
}

/// An attribute name (a literal, so always a valid NCName).
fn nc(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("literal NCName")
}

fn shutdown_error() -> StreamError {
    StreamError::new(StreamErrorCondition::SystemShutdown).with_text("the server is shutting down")
}
