//! The example server's shared state: one actor task owns the [`Router`],
//! the IM layer ([`Im`]: rosters, presence, blocking, offline messages,
//! carbons, disco) and the outboxes of all sessions, and carries out the
//! router's decisions. Connection tasks talk to it through one channel
//! ([`HubMsg`]); it never awaits a connection, so one slow or broken client
//! cannot stall the others.
//!
//! Every stanza from a bound session goes to [`Im::stanza`] (`server/im.rs`
//! says what is answered and how), binds go through [`Im::bind`], and a
//! session that ends goes through [`Im::session_ended`] before the router
//! forgets it; the hub writes what these return to the sessions.
//!
//! Stream management (XEP-0198): a connection that is lost with a
//! resumable session leaves its [`DetachedSession`] here. The session stays
//! bound in the router (and available to its contacts); stanzas routed to it
//! are queued in it. A resume on a new connection (matched by resumption id
//! and account, after closing a still-open old connection with `conflict`)
//! moves the session to the new connection; when the resumption time is up
//! the session ends: `unavailable` goes out and what the client never
//! acknowledged is handled by [`Disposition`] (messages routed again with
//! [`Im::reroute`], so into offline storage when nobody else takes them,
//! iq requests bounced, the rest dropped). A resumed session keeps its IM
//! state ([`Im::session_moved`]). A session that ends without
//! resumption hands its unacknowledged stanzas over the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use xmpp_sansio::error::{StanzaError, StreamError, StreamErrorCondition};
use xmpp_sansio::router::{BindOutcome, ConflictPolicy, Router, SessionId};
use xmpp_sansio::server::DetachedSession;
use xmpp_sansio::sm::Disposition;
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::{BareJid, FullJid};

use crate::im::{Deliveries, Im};
use crate::store::Store;

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

/// The actor's state.
pub struct Hub {
    domain: String,
    router: Router,
    policy: ConflictPolicy,
    store: Arc<Store>,
    im: Im,
    sessions: HashMap<SessionId, Session>,
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
    pub fn new(domain: String, policy: ConflictPolicy, store: Arc<Store>, im: Im) -> Hub {
        Hub {
            router: Im::router(&domain),
            domain,
            policy,
            store,
            im,
            sessions: HashMap::new(),
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
        let accounts = Accounts::new(&self.domain, &self.store);
        let (outcome, out) =
            self.im
                .bind(&mut self.router, &accounts, id, jid.clone(), self.policy);
        match &outcome {
            BindOutcome::Bound => {
                info!(session = id, %jid, sessions = self.router.session_count(), "bound");
            }
            BindOutcome::Refused => {
                info!(session = id, %jid, "bind refused: resource in use (conflict)");
            }
            BindOutcome::Replaced { old } => {
                info!(session = id, old_session = old, %jid, "bound, replacing the old session (conflict)");
                if let Some(old) = self.sessions.get(old) {
                    let error = StreamError::new(StreamErrorCondition::Conflict)
                        .with_text("replaced by a new session for the same resource");
                    old.mailbox.close(error);
                }
            }
            BindOutcome::AlreadyBound(jid) => {
                warn!(session = id, %jid, "second bind on one stream");
            }
        }
        self.deliver_all(out);
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

    /// The session is over: its `unavailable` goes out (the IM layer), it
    /// is unbound, and what its client never acknowledged is handled
    /// (XEP-0198 §4: messages routed again, iq requests bounced, the rest
    /// dropped).
    fn end_session(&mut self, id: SessionId, unacked: Vec<Stanza>) {
        self.resumable.retain(|_, sid| *sid != id);
        if self.router.session(id).is_some() {
            let accounts = Accounts::new(&self.domain, &self.store);
            let out = self.im.session_ended(&mut self.router, &accounts, id);
            if let Some(jid) = self.router.unbind(id) {
                debug!(session = id, %jid, sessions = self.router.session_count(), "unbound");
            }
            self.deliver_all(out);
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

    /// Routes a stanza again that a session never got, by its `to`: to
    /// another session, or into offline storage.
    fn reroute(&mut self, stanza: Stanza) {
        let accounts = Accounts::new(&self.domain, &self.store);
        let out = self.im.reroute(&mut self.router, &accounts, stanza);
        self.deliver_all(out);
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
        if !self.move_session(old, new, detached.jid(), detached.id()) {
            warn!(session = new, jid = %detached.jid(), "resumed JID already bound; resume refused");
            self.end_session(old, detached.into_unacknowledged());
            let _ = reply.send(None);
            return;
        }
        info!(session = new, old_session = old, jid = %detached.jid(), "resumed");
        if let Err(Some(d)) = reply.send(Some(Box::new(detached))) {
            // The connection stopped waiting: keep the session detached.
            self.move_session(new, old, d.jid(), d.id());
            self.detached.insert(old, *d);
        }
    }

    /// Moves the bound session `jid` from id `from` to id `to`: its router
    /// binding with its presence, its IM state and its resumption id.
    /// `false` (and nothing changed but the old binding gone) when `jid`
    /// cannot be bound under `to`.
    fn move_session(&mut self, from: SessionId, to: SessionId, jid: &FullJid, rid: &str) -> bool {
        let (available, priority) = self
            .router
            .session(from)
            .map_or((false, 0), |s| (s.available, s.priority));
        self.router.unbind(from);
        if !matches!(
            self.router.bind(to, jid.clone(), ConflictPolicy::RefuseNew),
            BindOutcome::Bound
        ) {
            return false;
        }
        self.router.set_presence(to, available, priority);
        self.im.session_moved(from, to, jid);
        self.resumable.insert(rid.to_owned(), to);
        true
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

    fn route(&mut self, id: SessionId, stanza: Stanza) {
        let accounts = Accounts::new(&self.domain, &self.store);
        let out = self.im.stanza(&mut self.router, &accounts, id, stanza);
        self.deliver_all(out);
    }

    fn deliver_all(&mut self, out: Deliveries) {
        for (target, stanza) in out {
            self.deliver(target, stanza);
        }
    }

    /// Queues `stanza` for session `target`. A session whose queue is full
    /// is not reading: it is closed with `policy-violation` (the stanza is
    /// lost), so it cannot hold the hub up.
    fn deliver(&mut self, target: SessionId, stanza: Stanza) {
        if let Some(detached) = self.detached.get_mut(&target) {
            // Sent on resumption, or handled when the session expires.
            if let Err(stanza) = detached.queue(stanza) {
                // Routed stanzas were parsed from a stream: always writable.
                warn!(
                    session = target,
                    id = stanza.id(),
                    "unwritable stanza dropped"
                );
                return;
            }
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
}

/// Account existence for the router: an account in the store, on this
/// domain.
struct Accounts<'a> {
    domain: &'a str,
    store: &'a Store,
}

impl<'a> Accounts<'a> {
    fn new(domain: &'a str, store: &'a Store) -> Accounts<'a> {
        Accounts { domain, store }
    }
}

impl xmpp_sansio::router::Accounts for Accounts<'_> {
    fn exists(&self, user: &BareJid) -> bool {
        user.domain() == self.domain
            && user.node().is_some_and(|n| {
                self.store.exists(n).unwrap_or_else(|e| {
                    warn!(error = %e, "account lookup failed");
                    false
                })
            })
    }
}

fn shutdown_error() -> StreamError {
    StreamError::new(StreamErrorCondition::SystemShutdown).with_text("the server is shutting down")
}
