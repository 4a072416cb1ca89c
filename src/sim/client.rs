//! Simulated clients: a [`ClientConnection`] with stream management, an
//! application that sends numbered messages (buffering them while offline),
//! reconnection with resumption, and a record of everything that happened.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::client::{ClientConfig, ClientConnection, ClientEvent, ClientState, Phase, Resumption};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::rng::SeededRng;
use crate::sasl::{TlsInfo, TlsVersion};
use crate::stanza::{Stanza, StanzaKind};
use crate::stream::{CloseReason, Input, Output};

use super::net::{LinkId, Network, Side};
use super::report::Violation;
use super::sched::Queue;

/// A message the application handed over for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The sender's sequence number (0, 1, 2, … per sender).
    pub seq: u64,
    /// The recipient (client index).
    pub to: usize,
    /// When the application sent it (virtual time since the start).
    pub at: Duration,
}

/// A message a client received from another client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The sender (client index).
    pub from: usize,
    /// The sender's sequence number.
    pub seq: u64,
    /// When it arrived (virtual time since the start).
    pub at: Duration,
}

/// The outcome of one resumption attempt that got an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeAttempt {
    /// When the client learned the outcome.
    pub at: Duration,
    /// When the session being resumed was lost (its link cut or closed by
    /// the server).
    pub lost_at: Duration,
    /// The `max` the server announced in `<enabled/>`, in seconds.
    pub max: Option<u32>,
    /// Resumed (`true`) or refused (`false`).
    pub resumed: bool,
    /// The session was left by a logout whose close the server never
    /// confirmed (the server may well have ended it: a refusal is no
    /// violation then).
    pub after_logout: bool,
}

/// Everything one simulated client did and saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRecord {
    /// The client's index.
    pub index: usize,
    /// Its account.
    pub jid: BareJid,
    /// Every message its application sent, in order (`seq` = position).
    pub sent: Vec<SentMessage>,
    /// Sequence numbers the server acknowledged (XEP-0198 `Acknowledged`).
    pub acknowledged: BTreeSet<u64>,
    /// Sequence numbers reported `Unacknowledged` (fate unknown: failed
    /// as far as the application knows).
    pub unacknowledged: BTreeSet<u64>,
    /// Sequence numbers that came back as an error (bounced).
    pub bounced: BTreeSet<u64>,
    /// Every message received from another client, in arrival order.
    pub received: Vec<ReceivedMessage>,
    /// Connections opened.
    pub connections: u32,
    /// Sessions started by binding a resource (`Online`).
    pub fresh_logins: u32,
    /// Clean logouts (the application closed the stream).
    pub logouts: u32,
    /// Resumption attempts that were answered.
    pub resume_attempts: Vec<ResumeAttempt>,
    /// How each connection ended.
    pub closes: Vec<(Duration, CloseReason)>,
}

/// What a client connection is doing.
#[derive(Debug)]
struct Live {
    machine: ClientConnection,
    link: LinkId,
    /// This connection resumes a session.
    resuming: bool,
    /// The server's `max` of the session being resumed.
    max: Option<u32>,
    /// The resumption was answered.
    answered: bool,
    /// The connection reached `Online` or `Resumed`.
    online: bool,
    /// The application closed the stream (a clean logout).
    logging_out: bool,
}

/// One simulated client.
#[derive(Debug)]
pub(crate) struct SimClient {
    config: ClientConfig,
    /// Accounts of all clients, by index (recipients).
    peers: Vec<BareJid>,
    live: Option<Live>,
    resumption: Option<Resumption>,
    /// When the session to resume was lost.
    lost_at: Option<Duration>,
    /// The session to resume was left by a logout.
    left_by_logout: bool,
    /// Messages (recipient, seq) waiting for the stream to be ready.
    outbox: VecDeque<(usize, u64)>,
    /// Connections in a row that ended before reaching `Online`/`Resumed`.
    pub(crate) consecutive_failures: u32,
    pub(crate) record: ClientRecord,
    pub(crate) violations: Vec<Violation>,
}

/// The identity "TLS layer" of the simulation.
pub(crate) fn tls_info() -> TlsInfo {
    TlsInfo::encrypted(TlsVersion::Tls13, Vec::new())
}

/// The message id of `(sender, seq)`.
fn message_id(sender: usize, seq: u64) -> String {
    format!("m-{sender}-{seq}")
}

/// The sequence number in one of `sender`'s message ids.
fn seq_of(sender: usize, id: Option<&str>) -> Option<u64> {
    id?.strip_prefix(&format!("m-{sender}-"))?.parse().ok()
}

impl SimClient {
    pub(crate) fn new(index: usize, config: ClientConfig, peers: Vec<BareJid>) -> Self {
        let jid = config.jid.clone();
        SimClient {
            config,
            peers,
            live: None,
            resumption: None,
            lost_at: None,
            left_by_logout: false,
            outbox: VecDeque::new(),
            consecutive_failures: 0,
            record: ClientRecord {
                index,
                jid,
                sent: Vec::new(),
                acknowledged: BTreeSet::new(),
                unacknowledged: BTreeSet::new(),
                bounced: BTreeSet::new(),
                received: Vec::new(),
                connections: 0,
                fresh_logins: 0,
                logouts: 0,
                resume_attempts: Vec::new(),
                closes: Vec::new(),
            },
            violations: Vec::new(),
        }
    }

    fn index(&self) -> usize {
        self.record.index
    }

    /// The connection's machine, while connected.
    pub(crate) fn machine(&self) -> Option<&ClientConnection> {
        self.live.as_ref().map(|l| &l.machine)
    }

    /// Opens a connection on `link`: resumes the lost session if there is
    /// one, else logs in afresh.
    pub(crate) fn connect(&mut self, base: Instant, now: Duration, link: LinkId, rng: SeededRng) {
        self.record.connections += 1;
        let config = self.config.clone();
        let at = base + now;
        let live = match self.resumption.take() {
            Some(resumption) => {
                let max = resumption.max();
                Live {
                    machine: ClientConnection::resume(config, resumption, rng, at),
                    link,
                    resuming: true,
                    max,
                    answered: false,
                    online: false,
                    logging_out: false,
                }
            }
            None => Live {
                machine: ClientConnection::new(config, rng, at),
                link,
                resuming: false,
                max: None,
                answered: false,
                online: false,
                logging_out: false,
            },
        };
        self.live = Some(live);
    }

    /// The application sends the next message to `to` (now, or once the
    /// stream is ready).
    pub(crate) fn app_send(&mut self, base: Instant, now: Duration, to: usize) {
        let seq = self.record.sent.len() as u64;
        self.record.sent.push(SentMessage { seq, to, at: now });
        self.outbox.push_back((to, seq));
        self.flush(base, now);
    }

    /// Sends what the application buffered, in order, if the stream is ready.
    fn flush(&mut self, base: Instant, now: Duration) {
        let index = self.index();
        while let Some(&(to, seq)) = self.outbox.front() {
            let Some(live) = self.live.as_mut() else {
                return;
            };
            if !matches!(live.machine.state(), ClientState::Online { .. }) {
                return;
            }
            let recipient: Jid = self.peers[to].clone().into();
            let mut stanza = Stanza::chat(&recipient, &format!("{index}:{seq}"));
            stanza.set_id(Some(&message_id(index, seq)));
            match live.machine.send_stanza(base + now, stanza) {
                Ok(_) => {
                    self.outbox.pop_front();
                }
                Err(e) => {
                    self.violations.push(Violation::Usage {
                        who: format!("client {index}"),
                        error: format!("send_stanza: {e}"),
                    });
                    return;
                }
            }
        }
    }

    /// The application logs out: closes the stream cleanly if online
    /// (the connection then tells the server what it handled and asks
    /// what the server handled before `</stream:stream>`).
    pub(crate) fn logout(&mut self, base: Instant, now: Duration) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if matches!(live.machine.state(), ClientState::Online { .. }) {
            live.logging_out = true;
            self.record.logouts += 1;
            live.machine.close(base + now);
        }
    }

    /// Bytes or end-of-file from the link.
    pub(crate) fn input(&mut self, base: Instant, now: Duration, link: LinkId, input: Input<'_>) {
        let Some(live) = self.live.as_mut().filter(|l| l.link == link) else {
            return;
        };
        if let Err(e) = live.machine.handle_input(base + now, input) {
            let who = format!("client {}", self.record.index);
            self.violations.push(Violation::Usage {
                who,
                error: format!("handle_input: {e}"),
            });
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.live.as_ref().and_then(|l| l.machine.poll_timeout())
    }

    pub(crate) fn handle_timeout(&mut self, base: Instant, now: Duration) {
        if let Some(live) = self.live.as_mut() {
            live.machine.handle_timeout(base + now);
        }
    }

    /// Whether the client is online with none of its application's
    /// messages left to send or to be acknowledged. (Pings and presence
    /// may be unacknowledged for a while: they come and go forever.)
    pub(crate) fn idle(&self) -> bool {
        self.outbox.is_empty()
            && self.live.as_ref().is_some_and(|l| {
                matches!(l.machine.state(), ClientState::Online { .. })
                    && l.machine
                        .stream_management()
                        .is_some_and(|sm| sm.unacked().all(|s| s.kind() != StanzaKind::Message))
            })
    }

    /// Takes everything the connection has for the host: bytes go onto the
    /// link, events into the record. Returns whether the connection closed
    /// (its link is then closed too).
    pub(crate) fn drain(
        &mut self,
        base: Instant,
        now: Duration,
        net: &mut Network,
        queue: &mut Queue,
    ) -> bool {
        loop {
            let Some(live) = self.live.as_mut() else {
                return false;
            };
            let link = live.link;
            let Some(output) = live.machine.poll_output() else {
                break;
            };
            match output {
                Output::Transmit(bytes) => net.send(now, link, Side::Client, &bytes, queue),
                Output::Event(event) => {
                    self.on_event(base, now, net, queue, event);
                    if self.live.is_none() {
                        return true;
                    }
                }
            }
        }
        self.check_resume_refused(now);
        false
    }

    /// A resuming connection that moved on to binding was refused.
    fn check_resume_refused(&mut self, now: Duration) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.resuming
            && !live.answered
            && matches!(
                live.machine.state(),
                ClientState::Negotiating(Phase::Binding | Phase::Session | Phase::Enabling)
                    | ClientState::Online { .. }
            )
        {
            live.answered = true;
            self.record.resume_attempts.push(ResumeAttempt {
                at: now,
                lost_at: self.lost_at.unwrap_or(now),
                max: live.max,
                resumed: false,
                after_logout: self.left_by_logout,
            });
        }
    }

    fn on_event(
        &mut self,
        base: Instant,
        now: Duration,
        net: &mut Network,
        queue: &mut Queue,
        event: ClientEvent,
    ) {
        let index = self.index();
        match event {
            ClientEvent::StartTls { buffered } => {
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                let at = base + now;
                let mut result = live
                    .machine
                    .handle_input(at, Input::TlsEstablished(tls_info()));
                if result.is_ok() && !buffered.is_empty() {
                    result = live.machine.handle_input(at, Input::Received(&buffered));
                }
                if let Err(e) = result {
                    self.violations.push(Violation::Usage {
                        who: format!("client {index}"),
                        error: format!("TLS: {e}"),
                    });
                }
            }
            ClientEvent::Online { .. } => {
                self.check_resume_refused(now);
                self.record.fresh_logins += 1;
                self.consecutive_failures = 0;
                self.lost_at = None;
                self.left_by_logout = false;
                if let Some(live) = self.live.as_mut() {
                    live.online = true;
                    // Initial presence: the server delivers offline
                    // messages once the session is available.
                    let presence = Stanza::new(StanzaKind::Presence, ns::JABBER_CLIENT);
                    if let Err(e) = live.machine.send_stanza(base + now, presence) {
                        self.violations.push(Violation::Usage {
                            who: format!("client {index}"),
                            error: format!("presence: {e}"),
                        });
                    }
                }
                self.flush(base, now);
            }
            ClientEvent::Resumed { .. } => {
                self.consecutive_failures = 0;
                if let Some(live) = self.live.as_mut() {
                    live.online = true;
                    live.answered = true;
                    self.record.resume_attempts.push(ResumeAttempt {
                        at: now,
                        lost_at: self.lost_at.unwrap_or(now),
                        max: live.max,
                        resumed: true,
                        after_logout: self.left_by_logout,
                    });
                }
                self.lost_at = None;
                self.left_by_logout = false;
                self.flush(base, now);
            }
            ClientEvent::Stanza(stanza) => self.on_stanza(now, &stanza),
            ClientEvent::Acknowledged(stanzas) => {
                for s in &stanzas {
                    if let Some(seq) = seq_of(index, s.id()) {
                        self.record.acknowledged.insert(seq);
                    }
                }
            }
            ClientEvent::Unacknowledged(stanzas) => {
                for s in &stanzas {
                    if let Some(seq) = seq_of(index, s.id()) {
                        self.record.unacknowledged.insert(seq);
                    }
                }
            }
            ClientEvent::Closed(reason) => self.on_closed(now, net, queue, reason),
        }
    }

    fn on_stanza(&mut self, now: Duration, stanza: &Stanza) {
        if stanza.kind() != StanzaKind::Message {
            return;
        }
        let index = self.index();
        if stanza.is_error() {
            if let Some(seq) = seq_of(index, stanza.id()) {
                self.record.bounced.insert(seq);
            }
            return;
        }
        let body = stanza
            .element()
            .get_child("body", ns::JABBER_CLIENT)
            .map(|b| b.text());
        let parsed = body.as_deref().and_then(|b| {
            let (from, seq) = b.split_once(':')?;
            Some((from.parse::<usize>().ok()?, seq.parse::<u64>().ok()?))
        });
        let sender = stanza
            .from()
            .and_then(|f| f.parse::<Jid>().ok())
            .map(|j| j.to_bare());
        match parsed {
            Some((from, seq))
                if from < self.peers.len()
                    && sender.as_ref() == Some(&self.peers[from])
                    && stanza.id() == Some(message_id(from, seq).as_str()) =>
            {
                self.record
                    .received
                    .push(ReceivedMessage { from, seq, at: now });
            }
            _ => self.violations.push(Violation::Garbled {
                client: index,
                stanza: String::from(stanza.element()),
            }),
        }
    }

    fn on_closed(
        &mut self,
        now: Duration,
        net: &mut Network,
        queue: &mut Queue,
        reason: CloseReason,
    ) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        let index = self.index();
        let severed = net.was_cut(live.link);
        // The faults explain an end of input, a timeout on a cut link, and
        // a logout's confirmed close.
        let expected = matches!(reason, CloseReason::Eof)
            || (live.logging_out && matches!(reason, CloseReason::Closed))
            || (severed
                && matches!(
                    reason,
                    CloseReason::PeerTimeout
                        | CloseReason::NegotiationTimeout
                        | CloseReason::CloseTimedOut
                ));
        if !expected {
            self.violations.push(Violation::UnexpectedClose {
                who: format!("client {index}"),
                at: now,
                reason: reason.to_string(),
            });
        }
        self.record.closes.push((now, reason));
        if !live.online {
            self.consecutive_failures += 1;
        }
        self.resumption = live.machine.take_resumption();
        // Unless an unanswered resumption attempt failed (the session to
        // resume is the same as before), there is a new session to resume,
        // lost when its link was.
        let same_session = live.resuming && !live.answered;
        if self.resumption.is_some() && !same_session {
            self.lost_at = Some(net.lost_at(live.link).unwrap_or(now));
            self.left_by_logout = live.logging_out;
        } else if self.resumption.is_none() {
            self.lost_at = None;
            self.left_by_logout = false;
        }
        net.close(now, live.link, Side::Client, queue);
    }
}
