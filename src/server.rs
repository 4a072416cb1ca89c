//! The server role of a client-to-server stream (RFC 6120 §4–§10, server
//! side), as a sans-IO state machine.
//!
//! A [`ServerConnection`] is driven like every connection of this crate (see
//! [`crate::stream`]): bytes in through [`ServerConnection::handle_input`],
//! bytes and [`ServerEvent`]s out through [`ServerConnection::poll_output`],
//! time in through the `now` arguments and
//! [`ServerConnection::handle_timeout`].
//!
//! # Negotiation
//!
//! ```text
//! C: <stream:stream to=D>        S: header(id1) <features><starttls><required/></starttls></features>
//! C: <starttls/>                 S: <proceed/>   → Event StartTls { buffered }
//!    (host runs TLS, then handle_input(Input::TlsEstablished(info)))
//! C: <stream:stream to=D>        S: header(id2) <features><mechanisms>…</mechanisms></features>
//! C: <auth mechanism=…>          → Event Request(Credentials) … answer(Answer::Credentials)
//!                                S: <challenge/> … <success/>   → Event Authenticated
//! C: <stream:stream to=D>        S: header(id3) <features><bind/><session><optional/></session>[<sm/>][post_auth_features]</features>
//! C: <iq type=set><bind/></iq>   → Event Request(Bind) … answer(Answer::Bind)
//!                                S: <iq type=result><bind><jid>u@D/r</jid></bind></iq> → Event Bound
//! C: stanzas                     → Event Stanza (validated, `from` stamped)
//! ```
//!
//! Host decisions are [`Request`]s answered with
//! [`ServerConnection::answer`]; the machine never blocks. While a request is
//! outstanding it does not read further input (the bytes stay buffered, up to
//! one stanza's worth), so everything the client pipelines is processed in
//! order once the host answered.
//!
//! # Decisions
//!
//! * `<auth/>` on a stream where TLS is required but not yet negotiated gets
//!   the SASL failure `<encryption-required/>` and counts as a failed attempt
//!   (the client learns exactly what is wrong; a persistent one is closed by
//!   the retry limit).
//! * Failed SASL attempts (wrong password, unknown user, malformed request,
//!   `<abort/>`, …) are counted; at [`ServerConfig::max_auth_failures`] the
//!   `<failure/>` is followed by a `policy-violation` stream error and the
//!   connection closes with [`CloseReason::AuthenticationFailed`].
//! * A client that asks for no resource gets 16 random characters
//!   ([`SeededRng::token`]); the host is still asked, with the generated
//!   resource as [`Request::Bind::requested`], so a host has one code path
//!   (and may still pick another resource). A requested resource that fails
//!   OpaqueString preparation, or an empty `<resource/>`, gets `bad-request`
//!   without asking the host.
//! * Anonymous identities bind as `random@domain`: a lower-case 16-character
//!   localpart from the seeded RNG. `EXTERNAL` identities must be a bare JID
//!   with a localpart on the stream's domain, else the SASL exchange fails
//!   with `not-authorized`. A proxy authzid (only possible with
//!   `allow_proxy_authz`) is reported in [`ServerEvent::Authenticated`] but
//!   not applied: the session binds the *authenticated* account.
//! * A spoofed `from` (anything but the session's full or bare JID) is an
//!   `invalid-from` stream error; accepted stanzas are stamped with the full
//!   JID, subscription presences with the bare JID (RFC 6121 §3).
//! * Stanza problems get stanza errors and the session goes on: iq without
//!   `id`, with a missing/unknown `type`, a `get`/`set` without exactly one
//!   payload, a presence with an unknown `type` → `bad-request`; a malformed
//!   `to` → `jid-malformed`; a second `<bind/>` → `not-allowed`. Errors are
//!   never answered with errors.
//! * Stream errors close at once: header (if none was sent on this stream),
//!   `<stream:error/>`, `</stream:stream>`, then [`ServerEvent::Closed`]. The
//!   machine does not wait for the peer's closing tag after a stream error.
//!   Closed is sticky: later input is ignored and produces nothing.
//! * The negotiation timeout and dead-peer timeout send `connection-timeout`.
//!   Dead-peer probes are XEP-0199 pings from the server's domain, sent only
//!   once bound; their results (or errors) are consumed, not surfaced. Any
//!   received byte counts as a sign of life.
//! * Bytes received while the host runs the TLS handshake (after
//!   `<proceed/>`, before [`Input::TlsEstablished`]) are discarded: they are
//!   TLS records that belong to the host's TLS layer, or an attack.
//! * STARTTLS when it was not offered (already encrypted, no certificate, or
//!   during a SASL exchange) is answered with the TLS `<failure/>` and
//!   `</stream:stream>` (RFC 6120 §5.4.2.2); the connection closes with
//!   [`CloseReason::TlsRefused`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::rng::SeededRng;
use crate::sasl::xml::SaslNonza;
use crate::sasl::{
    self, CredentialLookup, Identity, Mechanism, SaslCondition, SaslFeatures, ServerSession,
    ServerStep, TlsInfo,
};
use crate::sm::{AckPolicy, NS_SM, SentStanza, SmNonza, SmSession};
use crate::stanza::{IqType, NotAStanza, Stanza, StanzaKind};
use crate::stream::features::{Feature, offered};
use crate::stream::{
    CloseReason, Input, NS_PING, Negotiated, Outbox, Output, Policy, StreamFeatures, Timeouts,
    UsageError,
};
use crate::xml::{Frame, ReaderLimits, StreamHeader, StreamReader, StreamVersion, StreamWriter};

/// Length of a stream id from [`SeededRng::token`]: 24 × 6 = 144 bits.
const STREAM_ID_LEN: usize = 24;
/// Length of a generated resource or anonymous localpart.
const GENERATED_LEN: usize = 16;
/// Dead-peer ping ids remembered (their results are consumed).
const MAX_PING_IDS: usize = 4;

/// Configuration shared by all client connections of a server (keep it in
/// an [`Arc`]).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Served domains (prepared JID domainparts). A stream header whose `to`
    /// is not one of them gets `host-unknown`.
    pub domains: Vec<String>,
    /// SASL configuration. Its `domain` is replaced per connection by the
    /// stream's domain (for the authzid check).
    pub sasl: sasl::ServerConfig,
    /// TLS policy: `require_tls` (default) and `tls_available`.
    pub policy: Policy,
    /// Negotiation, close, keepalive and dead-peer timeouts.
    pub timeouts: Timeouts,
    /// Reader limits once authenticated.
    pub limits: ReaderLimits,
    /// Reader limits before authentication.
    pub pre_auth_limits: ReaderLimits,
    /// Failed SASL attempts allowed before the stream is closed (default 3;
    /// 0 acts as 1).
    pub max_auth_failures: u32,
    /// Advertise legacy `<session><optional/></session>` (default `true`).
    pub offer_session: bool,
    /// Stream management (XEP-0198); `None` does not offer it. Default: on,
    /// resumable for 5 minutes.
    pub stream_management: Option<ServerSmConfig>,
    /// Extra children of the stream features offered after authentication
    /// (next to `<bind/>`), for features the host implements, such as
    /// roster versioning
    /// ([`roster_versioning_feature`](crate::im::roster::roster_versioning_feature)).
    /// Sent as they are. Default: none.
    pub post_auth_features: Vec<Element>,
}

/// Stream management (XEP-0198) settings of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSmConfig {
    /// Offer resumption when the client asks for it.
    pub resume: bool,
    /// The longest a detached session is kept for resumption (the client's
    /// `max` can only shorten it). Default 300 s.
    pub max_resume: Duration,
    /// Most stanzas kept unacknowledged; a client that lets more pile up
    /// is disconnected with `resource-constraint` (its stanzas are then
    /// available from [`ServerConnection::take_unacknowledged`]).
    /// Default 1000.
    pub max_unacked: usize,
    /// When to ask the client for acknowledgements.
    pub acks: AckPolicy,
}

impl Default for ServerSmConfig {
    fn default() -> Self {
        ServerSmConfig {
            resume: true,
            max_resume: Duration::from_secs(300),
            max_unacked: 1000,
            acks: AckPolicy::default(),
        }
    }
}

/// A stream-management session whose connection was lost, kept by the host
/// so the client can resume it (XEP-0198 §5) until
/// [`expires_at`](Self::expires_at). Take it from the old connection with
/// [`ServerConnection::detach`]; give it to the new one with
/// [`Answer::Resume`]. Stanzas routed to the session meanwhile go into it
/// with [`queue`](Self::queue); if it expires, the host handles
/// [`into_unacknowledged`](Self::into_unacknowledged) by
/// [`crate::sm::Disposition`].
#[derive(Clone, Debug, PartialEq)]
pub struct DetachedSession {
    id: String,
    jid: FullJid,
    session: SmSession<SentStanza>,
    expires_at: Instant,
    /// The resumption time negotiated at `<enable/>` (the client's `max`,
    /// capped by the server's): it applies again when a resumed session
    /// is lost.
    max: Duration,
}

impl DetachedSession {
    /// The resumption id (`previd` in the client's `<resume/>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's full JID.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// When resumption stops being possible.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// How long the session is kept once its connection is lost: the
    /// resumption time negotiated when stream management was enabled.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Counters and the stanzas waiting for the client.
    pub fn session(&self) -> &SmSession<SentStanza> {
        &self.session
    }

    /// Queues a stanza routed to the session while it is detached: it is
    /// sent on resumption, or handed back on expiry.
    ///
    /// # Errors
    /// A stanza that cannot be serialized (a character or name XML
    /// forbids) is given back, not queued.
    pub fn queue(&mut self, stanza: Stanza) -> Result<(), Stanza> {
        match SentStanza::write(&stanza, ns::JABBER_CLIENT) {
            Ok(kept) => {
                self.session.queue(kept);
                Ok(())
            }
            Err(_) => Err(stanza),
        }
    }

    /// The session is over: every stanza the client never acknowledged
    /// (sent before the loss or queued since), oldest first.
    pub fn into_unacknowledged(mut self) -> Vec<Stanza> {
        parse_all(self.session.take_unacked())
    }
}

/// The stanzas a server kept, parsed again (they were written by this
/// crate's writer, so each parses).
fn parse_all(kept: Vec<SentStanza>) -> Vec<Stanza> {
    kept.iter().filter_map(SentStanza::to_stanza).collect()
}

/// Stream management on the current stream.
#[derive(Debug)]
struct ServerSm {
    session: SmSession<SentStanza>,
    /// Resumption id, when resumable.
    id: Option<String>,
    /// How long a detached session is kept.
    max: Duration,
}

impl ServerConfig {
    /// A configuration for one domain with the defaults: TLS required, SASL
    /// with all SCRAM variants and PLAIN (over TLS), 3 auth attempts.
    pub fn new(domain: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let domain = domain.into();
        ServerConfig {
            domains: vec![domain.clone()],
            sasl: sasl::ServerConfig::new(domain, secret),
            policy: Policy::default(),
            timeouts: Timeouts::default(),
            limits: ReaderLimits::default(),
            pre_auth_limits: ReaderLimits::pre_auth(),
            max_auth_failures: 3,
            offer_session: true,
            stream_management: Some(ServerSmConfig::default()),
            post_auth_features: Vec::new(),
        }
    }
}

/// Identifies a [`Request`] to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// A decision the machine needs from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Look up the credentials of `username` on [`ServerConnection::domain`]
    /// and answer with [`Answer::Credentials`].
    Credentials {
        /// The username (localpart), prepared with UsernameCaseMapped.
        username: String,
        /// The authzid the client asked for (checked by the SASL layer).
        authzid: Option<String>,
        /// The mechanism; for SCRAM return the credentials of its hash.
        mechanism: Mechanism,
    },
    /// Approve binding a resource; answer with [`Answer::Bind`]. The host
    /// (its router) applies its conflict policy (RFC 6120 §7.7.2.2): refuse
    /// with `conflict`, or replace the old session (closing it with
    /// [`ServerConnection::close_with_error`] and a `conflict` stream
    /// error), or bind another resource.
    Bind {
        /// Localpart of the authenticated account.
        username: String,
        /// The resourcepart, already prepared (OpaqueString). When the
        /// client requested none, the machine generated one (16 random
        /// characters) and it is given here, so this is always `Some` from
        /// this machine; `None` is kept for hosts that want to generate.
        requested: Option<String>,
    },
    /// The client asks to resume a stream-management session (XEP-0198 §5)
    /// instead of binding. Answer with [`Answer::Resume`]: the
    /// [`DetachedSession`] with this id if the host keeps one and it has
    /// not expired — if its connection still looks alive, close that one
    /// (e.g. [`ServerConnection::close_with_error`] with `conflict`) and
    /// [`ServerConnection::detach`] it first — or `None`. The machine checks
    /// that the session belongs to this account; another account's session
    /// is refused exactly like an unknown id (`item-not-found`) and handed
    /// back by [`ServerConnection::take_refused_resumption`].
    Resume {
        /// Localpart of the authenticated account.
        username: String,
        /// The resumption id the client gave.
        previd: String,
    },
}

/// The host's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// For [`Request::Credentials`].
    Credentials(CredentialLookup),
    /// For [`Request::Bind`].
    Bind(BindAnswer),
    /// For [`Request::Resume`]: the detached session, or `None` when there
    /// is no such session (any more).
    Resume(Option<Box<DetachedSession>>),
}

/// The host's decision on a bind request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAnswer {
    /// Bind this resource (it must be a valid resourcepart).
    Bound {
        /// The resource to bind; the client is told the full JID.
        resource: String,
    },
    /// Refuse with this stanza error condition (e.g. `conflict`,
    /// `not-allowed`, `resource-constraint`); the client may try again.
    Refused(StanzaErrorCondition),
}

/// What a server connection tells its host.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// `<proceed/>` was queued (before this event). Run the TLS handshake as
    /// the server, feeding it `buffered` first (the start of the client's
    /// handshake, received after `<starttls/>`), then call
    /// `handle_input(now, Input::TlsEstablished(info))`.
    StartTls {
        /// Bytes received after `<starttls/>`.
        buffered: Bytes,
    },
    /// The host must decide something; answer with
    /// [`ServerConnection::answer`].
    Request {
        /// The request's id.
        id: RequestId,
        /// What is asked.
        request: Request,
    },
    /// SASL succeeded.
    Authenticated {
        /// Who authenticated.
        identity: Identity,
    },
    /// A resource was bound: the stream is ready for stanzas.
    Bound {
        /// The session's full JID.
        jid: FullJid,
    },
    /// Stream management was enabled on the bound session.
    StreamManagementEnabled {
        /// The resumption id when the session is resumable.
        resumption_id: Option<String>,
    },
    /// A detached session was resumed on this connection (instead of
    /// `Bound`): the stream is ready for stanzas as `jid`, the stanzas the
    /// client had not acknowledged were sent again.
    Resumed {
        /// The session's full JID.
        jid: FullJid,
        /// The resumption id (unchanged).
        resumption_id: String,
    },
    /// A stanza from the client: validated, `from` stamped.
    Stanza(Stanza),
    /// The connection ended. Nothing follows.
    Closed(CloseReason),
}

/// Where the negotiation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiationStage {
    /// Waiting for the client's stream header (the first, or after a
    /// restart).
    AwaitingHeader,
    /// `<proceed/>` was sent; the host runs the TLS handshake.
    TlsHandshake,
    /// Features sent; waiting for STARTTLS or SASL (or in a SASL exchange).
    Authenticating,
    /// Authenticated; waiting for the bind request (or the host's answer).
    Binding,
}

/// The state of a server connection.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerState {
    /// Stream negotiation is under way.
    Negotiating {
        /// The current step.
        stage: NegotiationStage,
        /// What has been negotiated.
        negotiated: Negotiated,
    },
    /// A resource is bound; stanzas flow.
    Ready,
    /// We sent `</stream:stream>` and wait for the client's.
    Closing,
    /// The connection is over (sticky).
    Closed(CloseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitHeader,
    AwaitTls,
    PreAuth,
    PreBind,
    Ready,
    Closing,
    Closed,
}

#[derive(Debug)]
enum Pending {
    Credentials,
    Bind(Box<Stanza>),
    Resume { previd: String, h: u32 },
}

/// The server side of one client-to-server stream.
pub struct ServerConnection {
    config: Arc<ServerConfig>,
    tls: TlsInfo,
    rng: SeededRng,
    reader: StreamReader,
    writer: StreamWriter,
    out: Outbox<ServerEvent>,
    state: ServerState,
    phase: Phase,
    negotiated: Negotiated,
    offered: Vec<Feature>,
    sasl_config: Option<sasl::ServerConfig>,
    sasl_offered: Option<SaslFeatures>,
    sasl: Option<ServerSession>,
    auth_failures: u32,
    identity: Option<Identity>,
    account: Option<String>,
    domain: Option<String>,
    peer_from: Option<String>,
    lang: Option<String>,
    stream_id: Option<String>,
    header_sent: bool,
    close_sent: bool,
    jid: Option<FullJid>,
    pending: Option<(RequestId, Pending)>,
    next_request: u64,
    negotiation_deadline: Option<Instant>,
    last_now: Instant,
    last_received: Instant,
    last_sent: Instant,
    ping_ids: VecDeque<String>,
    ping_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    sm: Option<ServerSm>,
    /// A detached session the host offered for a resume that does not
    /// belong to this stream's account or id: given back, not dropped.
    refused: Option<Box<DetachedSession>>,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("state", &self.state)
            .field("domain", &self.domain)
            .field("jid", &self.jid)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl ServerConnection {
    /// A connection that waits for the client's stream header. `tls` is
    /// [`TlsInfo::plaintext`] for a plain TCP connection (STARTTLS follows),
    /// or the facts of an already encrypted connection (direct TLS,
    /// XEP-0368: STARTTLS is then not offered).
    pub fn new(config: Arc<ServerConfig>, tls: TlsInfo, rng: SeededRng, now: Instant) -> Self {
        let negotiated = Negotiated {
            tls: tls.is_encrypted(),
            ..Negotiated::default()
        };
        let negotiation_deadline = after(now, config.timeouts.negotiation);
        let reader = StreamReader::new(config.pre_auth_limits);
        let mut conn = ServerConnection {
            config,
            tls,
            rng,
            reader,
            writer: StreamWriter::new(ns::JABBER_CLIENT),
            out: Outbox::default(),
            state: ServerState::Negotiating {
                stage: NegotiationStage::AwaitingHeader,
                negotiated,
            },
            phase: Phase::AwaitHeader,
            negotiated,
            offered: Vec::new(),
            sasl_config: None,
            sasl_offered: None,
            sasl: None,
            auth_failures: 0,
            identity: None,
            account: None,
            domain: None,
            peer_from: None,
            lang: None,
            stream_id: None,
            header_sent: false,
            close_sent: false,
            jid: None,
            pending: None,
            next_request: 0,
            negotiation_deadline,
            last_now: now,
            last_received: now,
            last_sent: now,
            ping_ids: VecDeque::new(),
            ping_deadline: None,
            close_deadline: None,
            sm: None,
            refused: None,
        };
        conn.set_phase(Phase::AwaitHeader);
        conn
    }

    // ------------------------------------------------------------------
    // Public API
    // ------------------------------------------------------------------

    /// Hands the connection input from the host.
    ///
    /// # Errors
    /// [`UsageError::UnexpectedTls`] for [`Input::TlsEstablished`] when no
    /// STARTTLS handshake is under way. After the connection closed, all
    /// input is ignored.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), UsageError> {
        self.touch(now);
        if self.phase == Phase::Closed {
            return Ok(());
        }
        match input {
            Input::Received(data) => {
                if data.is_empty() || self.phase == Phase::AwaitTls {
                    // After <proceed/> every byte belongs to the TLS layer.
                    return Ok(());
                }
                self.last_received = now;
                self.ping_deadline = None;
                self.reader.feed(data);
                self.pump();
            }
            Input::Eof => self.finish(CloseReason::Eof),
            Input::TlsEstablished(info) => {
                if self.phase != Phase::AwaitTls {
                    return Err(UsageError::UnexpectedTls);
                }
                self.tls = info;
                self.negotiated.tls = true;
                self.header_sent = false;
                self.last_received = now;
                self.set_phase(Phase::AwaitHeader);
            }
        }
        Ok(())
    }

    /// Acts on deadlines that have passed at `now` (see
    /// [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        match self.phase {
            Phase::Closed => return,
            Phase::Closing => {
                if self.close_deadline.is_some_and(|d| now >= d) {
                    self.finish(CloseReason::CloseTimedOut);
                }
                return;
            }
            _ => {}
        }
        if self.phase != Phase::Ready && self.negotiation_deadline.is_some_and(|d| now >= d) {
            let error = StreamError::new(StreamErrorCondition::ConnectionTimeout)
                .with_text("stream negotiation timed out");
            self.fatal(error, CloseReason::NegotiationTimeout);
            return;
        }
        if self.phase == Phase::Ready
            && let Some(dead_peer) = self.config.timeouts.dead_peer
        {
            match self.ping_deadline {
                Some(d) if now >= d => {
                    let error = StreamError::new(StreamErrorCondition::ConnectionTimeout)
                        .with_text("no response to ping");
                    self.fatal(error, CloseReason::PeerTimeout);
                    return;
                }
                Some(_) => {}
                None => {
                    if after(self.last_received, dead_peer).is_some_and(|d| now >= d) {
                        self.send_ping();
                        self.ping_deadline = after(now, dead_peer);
                    }
                }
            }
        }
        if self.phase == Phase::Ready && self.sm_ack_deadline().is_some_and(|d| now >= d) {
            self.request_ack();
        }
        if let Some(keepalive) = self.config.timeouts.keepalive
            && self.stream_open()
            && after(self.last_sent, keepalive).is_some_and(|d| now >= d)
        {
            self.writer.write_whitespace(self.out.bytes());
            self.last_sent = now;
        }
    }

    /// The next output for the host, in order.
    pub fn poll_output(&mut self) -> Option<Output<ServerEvent>> {
        self.out.pop()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next;
    /// `None` when no deadline is pending (e.g. closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeouts = &self.config.timeouts;
        match self.phase {
            Phase::Closed => None,
            Phase::Closing => self.close_deadline,
            phase => {
                let mut next = None;
                if phase != Phase::Ready {
                    next = self.negotiation_deadline;
                } else {
                    if let Some(dead_peer) = timeouts.dead_peer {
                        let probe = match self.ping_deadline {
                            Some(d) => Some(d),
                            None => after(self.last_received, dead_peer),
                        };
                        next = min_deadline(next, probe);
                    }
                    next = min_deadline(next, self.sm_ack_deadline());
                }
                if let Some(keepalive) = timeouts.keepalive
                    && self.stream_open()
                {
                    next = min_deadline(next, after(self.last_sent, keepalive));
                }
                next
            }
        }
    }

    /// Answers the request `id` (from [`ServerEvent::Request`]).
    ///
    /// # Errors
    /// [`UsageError::UnknownRequest`] if no such request is pending,
    /// [`UsageError::WrongAnswer`] if the answer does not fit (including a
    /// bound resource that is not a valid resourcepart; the request then
    /// stays pending), [`UsageError::Closed`] after the connection closed.
    pub fn answer(
        &mut self,
        now: Instant,
        id: RequestId,
        answer: Answer,
    ) -> Result<(), UsageError> {
        self.touch(now);
        if matches!(self.phase, Phase::Closed | Phase::Closing) {
            return Err(UsageError::Closed);
        }
        match &self.pending {
            Some((pending_id, _)) if *pending_id == id => {}
            _ => return Err(UsageError::UnknownRequest(id.0)),
        }
        let credentials = matches!(self.pending, Some((_, Pending::Credentials)));
        let is_bind = matches!(self.pending, Some((_, Pending::Bind(_))));
        match answer {
            Answer::Resume(detached) => {
                let Some((_, Pending::Resume { previd, h })) = self.pending.take() else {
                    return Err(UsageError::WrongAnswer(id.0));
                };
                self.on_resume_answer(now, &previd, h, detached);
            }
            Answer::Credentials(lookup) if credentials => {
                self.pending = None;
                let step = match self.sasl.as_mut() {
                    Some(session) => session.provide_credentials(lookup),
                    None => ServerStep::Failure(sasl::SaslError::new(
                        sasl::ErrorKind::TemporaryFailure,
                        "no SASL exchange",
                    )),
                };
                self.on_step(step);
            }
            Answer::Bind(bind) if is_bind => {
                if let BindAnswer::Bound { resource } = &bind {
                    let (Some(account), Some(domain)) = (&self.account, &self.domain) else {
                        return Err(UsageError::WrongAnswer(id.0));
                    };
                    if FullJid::new(Some(account), domain, resource).is_err() {
                        return Err(UsageError::WrongAnswer(id.0));
                    }
                }
                let Some((_, Pending::Bind(iq))) = self.pending.take() else {
                    return Err(UsageError::WrongAnswer(id.0));
                };
                self.on_bind_answer(now, &iq, bind);
            }
            _ => return Err(UsageError::WrongAnswer(id.0)),
        }
        self.pump();
        Ok(())
    }

    /// Sends a stanza to the client. The stanza must be in `jabber:client`.
    ///
    /// # Errors
    /// [`UsageError::NotReady`] before binding, [`UsageError::Closed`] once
    /// closing or closed, [`UsageError::NotAStanza`] for another content
    /// namespace, [`UsageError::Unwritable`] if it cannot be serialized
    /// (nothing is sent then).
    pub fn send_stanza(&mut self, stanza: &Stanza) -> Result<(), UsageError> {
        match self.phase {
            Phase::Ready => {}
            Phase::Closing | Phase::Closed => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotReady),
        }
        if stanza.element().ns() != ns::JABBER_CLIENT {
            return Err(UsageError::NotAStanza);
        }
        let start = self.out.bytes().len();
        self.writer
            .write_element(stanza.element(), self.out.bytes())
            .map_err(UsageError::Unwritable)?;
        self.last_sent = self.last_now;
        self.sm_sent(start);
        Ok(())
    }

    /// Writes a stanza the connection built itself (a stanza error, a
    /// ping, the session reply), counting it for stream management.
    fn write_stanza(&mut self, stanza: &Stanza) {
        if !self.writable() {
            return;
        }
        let start = self.out.bytes().len();
        if self
            .writer
            .write_element(stanza.element(), self.out.bytes())
            .is_ok()
        {
            self.last_sent = self.last_now;
            self.sm_sent(start);
        }
    }

    /// XEP-0198: a stanza written on a stream with stream management is
    /// counted and kept until acknowledged, whoever wrote it (the host, or
    /// the connection itself: the client counts every stanza it handles,
    /// pings and stanza errors included).
    /// The stanza is what was written to the output buffer from `start`;
    /// it is kept as those bytes.
    fn sm_sent(&mut self, start: usize) {
        if let Some(sm) = self.sm.as_mut() {
            let written = self.out.bytes().get(start..).unwrap_or_default();
            let kept = SentStanza::new(Bytes::copy_from_slice(written), ns::JABBER_CLIENT);
            sm.session.sent(self.last_now, kept);
            let config = self.config.stream_management.unwrap_or_default();
            if sm.session.unacked_len() > config.max_unacked {
                let error = StreamError::new(StreamErrorCondition::ResourceConstraint)
                    .with_text("too many unacknowledged stanzas");
                self.fatal(
                    error,
                    CloseReason::PolicyRefused(
                        "the client does not acknowledge stanzas".to_owned(),
                    ),
                );
            } else if sm.session.wants_request(&config.acks) {
                self.request_ack();
            }
        }
    }

    fn sm_ack_deadline(&self) -> Option<Instant> {
        let policy = self.config.stream_management.unwrap_or_default().acks;
        self.sm
            .as_ref()
            .and_then(|sm| sm.session.request_deadline(&policy))
    }

    fn request_ack(&mut self) {
        self.write(&SmNonza::Request.to_element());
        if let Some(sm) = self.sm.as_mut() {
            sm.session.requested();
        }
    }

    /// Closes the stream: sends `</stream:stream>` (after a header if none
    /// was sent on this stream) and waits up to [`Timeouts::close`] for the
    /// client's. Stanzas the client still sends meanwhile are reported.
    /// During the host's TLS handshake there is no stream to close: the
    /// connection is closed at once. No effect once closing or closed.
    pub fn close(&mut self, now: Instant) {
        self.touch(now);
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            Phase::AwaitTls => self.finish(CloseReason::Closed),
            _ => {
                self.send_header();
                self.writer.write_close(self.out.bytes());
                self.close_sent = true;
                self.last_sent = now;
                self.pending = None;
                self.sasl = None;
                self.close_deadline = after(now, self.config.timeouts.close);
                self.set_phase(Phase::Closing);
            }
        }
    }

    /// Ends the stream with `error` (e.g. `conflict` for a replaced session,
    /// `system-shutdown`): header if needed, `<stream:error/>`,
    /// `</stream:stream>`; closes with [`CloseReason::HostStreamError`].
    /// When closing already, the error cannot be sent any more; the
    /// connection just closes with that reason.
    pub fn close_with_error(&mut self, now: Instant, error: StreamError) {
        self.touch(now);
        match self.phase {
            Phase::Closed => {}
            _ => self.fatal(error.clone(), CloseReason::HostStreamError(error)),
        }
    }

    /// The state.
    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// The bound full JID.
    pub fn jid(&self) -> Option<&FullJid> {
        self.jid.as_ref()
    }

    /// The id of the current stream (new on every restart).
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// The served domain the client addressed (known after its first
    /// header). Credentials are looked up on this domain.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Who authenticated, once SASL succeeded.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The facts of the connection's TLS layer.
    pub fn tls(&self) -> &TlsInfo {
        &self.tls
    }

    /// The request waiting for an answer, if any.
    pub fn pending_request(&self) -> Option<RequestId> {
        self.pending.as_ref().map(|(id, _)| *id)
    }

    /// Stream management on this stream (counters, unacknowledged
    /// stanzas), once enabled or resumed.
    pub fn stream_management(&self) -> Option<&SmSession<SentStanza>> {
        self.sm.as_ref().map(|sm| &sm.session)
    }

    /// The resumption id, when stream management is on and resumable.
    pub fn resumption_id(&self) -> Option<&str> {
        self.sm.as_ref().and_then(|sm| sm.id.as_deref())
    }

    /// After the connection closed because it was lost (end of input,
    /// dead-peer timeout) or closed by the host with a stream error (e.g.
    /// `conflict` when a resume takes over a zombie connection): the
    /// resumable stream-management session, once, to keep until it
    /// expires. `None` if the session was not resumable, ended cleanly or
    /// by a protocol error, or was taken already; then use
    /// [`take_unacknowledged`](Self::take_unacknowledged).
    pub fn detach(&mut self) -> Option<DetachedSession> {
        let ServerState::Closed(reason) = &self.state else {
            return None;
        };
        if !matches!(
            reason,
            CloseReason::Eof | CloseReason::PeerTimeout | CloseReason::HostStreamError(_)
        ) {
            return None;
        }
        let jid = self.jid.clone()?;
        self.sm.as_ref()?.id.as_ref()?;
        let sm = self.sm.take()?;
        let expires_at = self.last_now.checked_add(sm.max).unwrap_or(self.last_now);
        Some(DetachedSession {
            id: sm.id?,
            jid,
            session: sm.session,
            expires_at,
            max: sm.max,
        })
    }

    /// A detached session the host answered a resume with although it
    /// belongs to another account or another resumption id: the resume was
    /// refused (`item-not-found`) and the session is handed back here, once,
    /// so the host can keep it for its owner.
    pub fn take_refused_resumption(&mut self) -> Option<DetachedSession> {
        self.refused.take().map(|d| *d)
    }

    /// After the connection closed (and unless it was
    /// [`detach`](Self::detach)ed): the stanzas sent to the client that it
    /// never acknowledged, oldest first, for the host to handle by
    /// [`crate::sm::Disposition`] (re-route messages, bounce iq requests).
    /// Empty without stream management: then nothing is known.
    pub fn take_unacknowledged(&mut self) -> Vec<Stanza> {
        if !matches!(self.state, ServerState::Closed(_)) {
            return Vec::new();
        }
        self.sm
            .take()
            .map(|mut sm| parse_all(sm.session.take_unacked()))
            .unwrap_or_default()
    }

    // ------------------------------------------------------------------
    // State and output helpers
    // ------------------------------------------------------------------

    fn touch(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        let stage = match phase {
            Phase::AwaitHeader => NegotiationStage::AwaitingHeader,
            Phase::AwaitTls => NegotiationStage::TlsHandshake,
            Phase::PreAuth => NegotiationStage::Authenticating,
            Phase::PreBind => NegotiationStage::Binding,
            Phase::Ready => {
                self.state = ServerState::Ready;
                return;
            }
            Phase::Closing => {
                self.state = ServerState::Closing;
                return;
            }
            // Set by `finish` with the reason.
            Phase::Closed => return,
        };
        self.state = ServerState::Negotiating {
            stage,
            negotiated: self.negotiated,
        };
    }

    /// Whether bytes may be written: not after our closing tag, not while
    /// the host runs TLS, not once closed.
    fn writable(&self) -> bool {
        !self.close_sent && !matches!(self.phase, Phase::AwaitTls | Phase::Closed)
    }

    /// Whether a stream is open in our direction (whitespace is allowed).
    fn stream_open(&self) -> bool {
        self.header_sent && self.writable()
    }

    /// Writes a nonza or stream element the machine built (stanzas go
    /// through [`write_stanza`](Self::write_stanza), which counts them).
    fn write(&mut self, element: &Element) {
        if !self.writable() {
            return;
        }
        if self.writer.write_element(element, self.out.bytes()).is_ok() {
            self.last_sent = self.last_now;
        }
    }

    /// Sends our response header with a fresh stream id, once per stream.
    fn send_header(&mut self) {
        if self.header_sent || !self.writable() {
            return;
        }
        let id = self.rng.token(STREAM_ID_LEN);
        let header = StreamHeader {
            to: self.peer_from.clone(),
            from: self.domain.clone(),
            id: Some(id.clone()),
            version: Some(StreamVersion::V1_0),
            lang: Some(self.lang.clone().unwrap_or_else(|| "en".to_owned())),
            content_namespace: Some(ns::JABBER_CLIENT.to_owned()),
            stream_prefix: Some("stream".to_owned()),
            namespaces: Vec::new(),
        };
        self.writer.write_header(&header, self.out.bytes());
        self.stream_id = Some(id);
        self.header_sent = true;
        self.last_sent = self.last_now;
    }

    /// Ends the connection: sticky `Closed` state and the event.
    fn finish(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.state = ServerState::Closed(reason.clone());
        self.pending = None;
        self.sasl = None;
        self.out.event(ServerEvent::Closed(reason));
    }

    /// Sends a stream error (header first if needed) and the close, then
    /// ends the connection with `reason`.
    fn fatal(&mut self, error: StreamError, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.writable() {
            self.send_header();
            self.write(&error.to_element());
            self.writer.write_close(self.out.bytes());
            self.close_sent = true;
        }
        self.finish(reason);
    }

    /// The peer broke the protocol: stream error `condition`.
    fn violation(&mut self, condition: StreamErrorCondition, text: impl Into<String>) {
        let error = StreamError::new(condition).with_text(text);
        self.fatal(error.clone(), CloseReason::ProtocolViolation(error));
    }

    fn request(&mut self, pending: Pending, request: Request) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending = Some((id, pending));
        self.out.event(ServerEvent::Request { id, request });
    }

    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    fn reading(&self) -> bool {
        self.pending.is_none() && !matches!(self.phase, Phase::AwaitTls | Phase::Closed)
    }

    fn pump(&mut self) {
        while self.reading() {
            match self.reader.next_frame() {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => break,
                Err(e) => {
                    self.violation(e.condition(), e.to_string());
                    break;
                }
            }
        }
        if self.pending.is_some() && self.phase != Phase::Closed {
            // While the host decides, input waits in the reader; bound it.
            let limits = self.reader.limits();
            let cap = limits
                .max_stanza_bytes
                .saturating_add(limits.max_header_bytes);
            if self.reader.buffered_len() > cap {
                self.violation(
                    StreamErrorCondition::PolicyViolation,
                    "too much data sent while a request is being processed",
                );
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Whitespace => {}
            // A header after our close (e.g. the client restarting while the
            // host closes) opens nothing.
            Frame::StreamOpen(header) if self.phase == Phase::AwaitHeader => self.on_header(header),
            Frame::StreamOpen(_) => {}
            Frame::StreamClose => {
                if self.writable() {
                    self.send_header();
                    self.writer.write_close(self.out.bytes());
                    self.close_sent = true;
                }
                self.finish(CloseReason::Closed);
            }
            Frame::Element(element) => match self.phase {
                Phase::PreAuth => self.on_pre_auth(element),
                Phase::PreBind => self.on_pre_bind(element),
                Phase::Ready => self.on_ready(element),
                Phase::Closing => self.on_closing(element),
                // The reader yields elements only inside a stream, which
                // starts with its header: not reached.
                Phase::AwaitHeader | Phase::AwaitTls | Phase::Closed => {}
            },
        }
    }

    /// The prepared served domain that `to` names, if any.
    fn served_domain(&self, to: &str) -> Option<String> {
        let Ok(Jid::Bare(jid)) = to.parse::<Jid>() else {
            return None;
        };
        if jid.node().is_some() {
            return None;
        }
        let domain = jid.domain();
        self.config
            .domains
            .iter()
            .any(|d| {
                d == domain
                    || d.parse::<Jid>()
                        .is_ok_and(|j| j.node().is_none() && j.is_bare() && j.domain() == domain)
            })
            .then(|| domain.to_owned())
    }

    fn on_header(&mut self, header: StreamHeader) {
        self.peer_from = header
            .from
            .as_deref()
            .filter(|f| f.parse::<Jid>().is_ok())
            .map(str::to_owned);
        self.lang = header.lang.filter(|l| {
            !l.is_empty()
                && l.len() <= 64
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let served = header.to.as_deref().and_then(|to| self.served_domain(to));
        match (&self.domain, served) {
            (_, None) => {
                return self.violation(
                    StreamErrorCondition::HostUnknown,
                    "this server does not serve that domain",
                );
            }
            (Some(current), Some(requested)) if *current != requested => {
                return self.violation(
                    StreamErrorCondition::HostUnknown,
                    "the domain changed on a restarted stream",
                );
            }
            (_, Some(requested)) => self.domain = Some(requested),
        }
        if header.content_namespace.as_deref() != Some(ns::JABBER_CLIENT) {
            return self.violation(
                StreamErrorCondition::InvalidNamespace,
                "the content namespace must be jabber:client",
            );
        }
        match header.version {
            Some(v) if v.major == 1 => {}
            _ => {
                return self.violation(
                    StreamErrorCondition::UnsupportedVersion,
                    "version 1.0 is required",
                );
            }
        }
        self.send_header();
        self.send_features();
    }

    fn send_features(&mut self) {
        let policy = self.config.policy;
        self.offered = offered(&self.negotiated, &policy);
        self.sasl_offered = None;
        if self.sasl_config.is_none() {
            let mut sasl = self.config.sasl.clone();
            if let Some(domain) = &self.domain {
                sasl.domain.clone_from(domain);
            }
            self.sasl_config = Some(sasl);
        }
        let mut features = StreamFeatures::default();
        for feature in self.offered.clone() {
            match feature {
                Feature::StartTls => features.starttls = Some(policy.require_tls),
                Feature::Sasl => {
                    let sasl = self
                        .sasl_config
                        .as_ref()
                        .map(|c| c.offered(&self.tls))
                        .unwrap_or_default();
                    features.sasl = Some(sasl.clone());
                    self.sasl_offered = Some(sasl);
                }
                Feature::Bind => features.bind = true,
                Feature::Session => {
                    if self.config.offer_session {
                        features.session = Some(true);
                    }
                }
                Feature::StreamManagement => {
                    features.stream_management = self.config.stream_management.is_some();
                }
            }
        }
        if !self.negotiated.authenticated {
            let can_tls = self.offered.contains(&Feature::StartTls);
            let can_sasl = self
                .sasl_offered
                .as_ref()
                .is_some_and(|s| !s.mechanisms.is_empty());
            if !can_tls && !can_sasl {
                let why = if self.sasl_offered.is_some() {
                    "no SASL mechanism is usable on this stream"
                } else {
                    "TLS is required but not available"
                };
                let error =
                    StreamError::new(StreamErrorCondition::InternalServerError).with_text(why);
                return self.fatal(error, CloseReason::PolicyRefused(why.to_owned()));
            }
        }
        if self.negotiated.authenticated {
            features
                .other
                .extend(self.config.post_auth_features.iter().cloned());
        }
        self.write(&features.to_element());
        let phase = if self.negotiated.authenticated {
            Phase::PreBind
        } else {
            Phase::PreAuth
        };
        self.set_phase(phase);
    }

    /// A first-level element that is neither a stanza nor a nonza valid in
    /// this phase.
    fn other_element(&mut self, element: &Element) {
        if element.is("error", ns::STREAMS) {
            let error = StreamError::from_element(element)
                .unwrap_or_else(|_| StreamError::new(StreamErrorCondition::UndefinedCondition));
            if self.writable() {
                self.send_header();
                self.writer.write_close(self.out.bytes());
                self.close_sent = true;
            }
            return self.finish(CloseReason::PeerStreamError(error));
        }
        let text = format!(
            "<{} xmlns='{}'/> is not supported here",
            element.name(),
            element.ns()
        );
        self.violation(StreamErrorCondition::UnsupportedStanzaType, text);
    }

    fn on_pre_auth(&mut self, element: Element) {
        if element.is("starttls", ns::XMPP_TLS) {
            return self.on_starttls();
        }
        if element.ns() == ns::XMPP_SASL {
            return self.on_sasl(&element);
        }
        if element.ns() == NS_SM {
            return self.on_sm(element);
        }
        match Stanza::from_element(element, ns::JABBER_CLIENT) {
            Ok(_) => self.violation(
                StreamErrorCondition::NotAuthorized,
                "stanza before authentication",
            ),
            Err(NotAStanza(element)) => self.other_element(&element),
        }
    }

    fn on_starttls(&mut self) {
        if !self.offered.contains(&Feature::StartTls) || self.sasl.is_some() {
            self.write(&Element::bare("failure", ns::XMPP_TLS));
            if self.writable() {
                self.writer.write_close(self.out.bytes());
                self.close_sent = true;
            }
            return self.finish(CloseReason::TlsRefused);
        }
        self.write(&Element::bare("proceed", ns::XMPP_TLS));
        let buffered = self.reader.take_unparsed().freeze();
        self.header_sent = false;
        self.offered.clear();
        self.sasl_offered = None;
        self.set_phase(Phase::AwaitTls);
        self.out.event(ServerEvent::StartTls { buffered });
    }

    fn on_sasl(&mut self, element: &Element) {
        let nonza = match SaslNonza::from_element(element) {
            Ok(n) => n,
            Err(e) => return self.sasl_failure(e.condition(), e.detail),
        };
        match nonza {
            SaslNonza::Auth {
                mechanism,
                initial_response,
            } => {
                if self.sasl.is_some() {
                    return self.sasl_failure(
                        SaslCondition::MalformedRequest,
                        "<auth/> during an exchange",
                    );
                }
                let (Some(config), Some(advertised)) = (&self.sasl_config, &self.sasl_offered)
                else {
                    return self.sasl_failure(
                        SaslCondition::EncryptionRequired,
                        "TLS must be negotiated before SASL",
                    );
                };
                let (session, step) = ServerSession::start(
                    config,
                    advertised,
                    &mechanism,
                    initial_response.as_deref(),
                    &self.tls,
                    &mut self.rng,
                );
                self.sasl = Some(session);
                self.on_step(step);
            }
            SaslNonza::Response(data) => match self.sasl.as_mut() {
                Some(session) => {
                    let step = session.step(&data);
                    self.on_step(step);
                }
                None => self.sasl_failure(
                    SaslCondition::MalformedRequest,
                    "<response/> without an exchange",
                ),
            },
            SaslNonza::Abort => self.sasl_failure(SaslCondition::Aborted, "aborted by the client"),
            SaslNonza::Challenge(_) | SaslNonza::Success(_) | SaslNonza::Failure { .. } => self
                .violation(
                    StreamErrorCondition::UnsupportedStanzaType,
                    "a client does not send that SASL element",
                ),
        }
    }

    fn on_step(&mut self, step: ServerStep) {
        match step {
            ServerStep::Challenge(data) => {
                self.write(&SaslNonza::Challenge(data).to_element());
            }
            ServerStep::NeedCredentials {
                username,
                authzid,
                mechanism,
            } => self.request(
                Pending::Credentials,
                Request::Credentials {
                    username,
                    authzid,
                    mechanism,
                },
            ),
            ServerStep::Success {
                additional_data,
                identity,
            } => self.on_sasl_success(additional_data, identity),
            ServerStep::Failure(e) => self.sasl_failure(e.condition(), e.detail),
        }
    }

    /// Sends `<failure/>`, counts the attempt and closes at the limit.
    fn sasl_failure(&mut self, condition: SaslCondition, detail: &str) {
        self.sasl = None;
        self.write(
            &SaslNonza::Failure {
                condition,
                text: None,
            }
            .to_element(),
        );
        self.auth_failures = self.auth_failures.saturating_add(1);
        if self.auth_failures >= self.config.max_auth_failures.max(1) {
            let error = StreamError::new(StreamErrorCondition::PolicyViolation)
                .with_text("too many failed authentication attempts");
            self.fatal(
                error,
                CloseReason::AuthenticationFailed {
                    condition,
                    detail: format!("{detail} (attempt {})", self.auth_failures),
                },
            );
        }
    }

    /// The account localpart an identity binds as, on the stream's domain.
    fn account_for(&mut self, identity: &Identity) -> Option<String> {
        let domain = self.domain.clone()?;
        let local = match identity {
            Identity::User { username, .. } => username.clone(),
            Identity::External { identity, .. } => {
                let jid = identity.parse::<BareJid>().ok()?;
                if jid.domain() != domain {
                    return None;
                }
                jid.node()?.to_owned()
            }
            Identity::Anonymous { .. } => self.rng.token(GENERATED_LEN).to_ascii_lowercase(),
        };
        let jid = BareJid::new(Some(&local), &domain).ok()?;
        jid.node().map(str::to_owned)
    }

    fn on_sasl_success(&mut self, additional_data: Option<Vec<u8>>, identity: Identity) {
        let Some(account) = self.account_for(&identity) else {
            return self.sasl_failure(
                SaslCondition::NotAuthorized,
                "identity is not an account on this domain",
            );
        };
        self.sasl = None;
        self.write(&SaslNonza::Success(additional_data).to_element());
        self.account = Some(account);
        self.identity = Some(identity.clone());
        self.negotiated.authenticated = true;
        self.header_sent = false;
        self.offered.clear();
        self.sasl_offered = None;
        // Limits first: reset() rebuilds the parser with them.
        self.reader.set_limits(self.config.limits);
        self.reader.reset();
        self.set_phase(Phase::AwaitHeader);
        self.out.event(ServerEvent::Authenticated { identity });
    }

    fn on_pre_bind(&mut self, element: Element) {
        if element.ns() == NS_SM {
            return self.on_sm(element);
        }
        match Stanza::from_element(element, ns::JABBER_CLIENT) {
            Ok(stanza) => {
                if stanza.kind() == StanzaKind::Iq
                    && stanza.element().has_child("bind", ns::XMPP_BIND)
                {
                    self.on_bind_request(stanza);
                } else {
                    self.violation(
                        StreamErrorCondition::NotAuthorized,
                        "stanza before resource binding",
                    );
                }
            }
            Err(NotAStanza(element)) => self.other_element(&element),
        }
    }

    /// Replies to `stanza` with a stanza error (never to an error).
    fn stanza_error(&mut self, stanza: &Stanza, condition: StanzaErrorCondition, text: &str) {
        let error = StanzaError::new(condition).with_text(text);
        let Some(mut reply) = stanza.error_reply(&error) else {
            return;
        };
        reply.set_to(self.jid.as_ref().map(FullJid::as_str));
        if condition == StanzaErrorCondition::JidMalformed {
            reply.set_from(None);
        }
        self.write_stanza(&reply);
    }

    fn on_bind_request(&mut self, stanza: Stanza) {
        let payload = match stanza.iq_payload() {
            Some(p) if stanza.id().is_some() && stanza.iq_type() == Some(Ok(IqType::Set)) => p,
            _ => {
                return self.stanza_error(
                    &stanza,
                    StanzaErrorCondition::BadRequest,
                    "bind must be an iq of type set with an id and one <bind/>",
                );
            }
        };
        let raw = payload
            .get_child("resource", ns::XMPP_BIND)
            .map(Element::text);
        let (Some(domain), Some(account)) = (self.domain.clone(), self.account.clone()) else {
            return;
        };
        let resource = match raw {
            None => self.rng.token(GENERATED_LEN),
            Some(raw) => match BareJid::new(None, &domain).and_then(|d| d.with_resource(&raw)) {
                Ok(jid) => jid.resource().to_owned(),
                Err(_) => {
                    return self.stanza_error(
                        &stanza,
                        StanzaErrorCondition::BadRequest,
                        "the resource is not a valid resourcepart",
                    );
                }
            },
        };
        self.request(
            Pending::Bind(Box::new(stanza)),
            Request::Bind {
                username: account,
                requested: Some(resource),
            },
        );
    }

    fn on_bind_answer(&mut self, now: Instant, iq: &Stanza, answer: BindAnswer) {
        match answer {
            BindAnswer::Refused(condition) => {
                self.stanza_error(iq, condition, "resource binding refused");
            }
            BindAnswer::Bound { resource } => {
                let (Some(account), Some(domain)) = (&self.account, &self.domain) else {
                    return;
                };
                let Ok(jid) = FullJid::new(Some(account), domain, &resource) else {
                    return;
                };
                let mut bind = Element::bare("bind", ns::XMPP_BIND);
                let mut jid_el = Element::bare("jid", ns::XMPP_BIND);
                jid_el.append_text(jid.as_str().to_owned());
                bind.append_child(jid_el);
                let mut reply = Stanza::new(StanzaKind::Iq, ns::JABBER_CLIENT);
                reply.set_attr("type", Some("result"));
                reply.set_id(iq.id());
                reply.element_mut().append_child(bind);
                self.write(reply.element());
                self.jid = Some(jid.clone());
                self.negotiated.bound = true;
                self.last_received = now;
                self.set_phase(Phase::Ready);
                self.out.event(ServerEvent::Bound { jid });
            }
        }
    }

    fn on_ready(&mut self, element: Element) {
        if element.ns() == NS_SM {
            return self.on_sm(element);
        }
        match Stanza::from_element(element, ns::JABBER_CLIENT) {
            Ok(stanza) => {
                // Every stanza is handled here: reported to the host,
                // answered, or bounced with a stanza error.
                if let Some(sm) = self.sm.as_mut() {
                    sm.session.handled_inbound();
                }
                self.on_stanza(stanza)
            }
            Err(NotAStanza(element)) => self.other_element(&element),
        }
    }

    /// Refuses an `<enable/>` or `<resume/>` with `<failed/>`.
    fn sm_failed(&mut self, condition: StanzaErrorCondition) {
        self.write(&SmNonza::Failed { h: None, condition }.to_element());
    }

    /// A stream management element (XEP-0198) in any phase.
    fn on_sm(&mut self, element: Element) {
        let nonza = match SmNonza::from_element(&element) {
            Ok(n) => n,
            Err(e) => return self.violation(StreamErrorCondition::BadFormat, e.to_string()),
        };
        let Some(config) = self.config.stream_management else {
            return match nonza {
                SmNonza::Enable { .. } | SmNonza::Resume { .. } => {
                    self.sm_failed(StanzaErrorCondition::FeatureNotImplemented)
                }
                _ => self.other_element(&element),
            };
        };
        match nonza {
            SmNonza::Enable { resume, max } => {
                if self.phase != Phase::Ready || self.sm.is_some() {
                    // Before binding, or a second time (XEP-0198 §3).
                    return self.sm_failed(StanzaErrorCondition::UnexpectedRequest);
                }
                let resumable = resume && config.resume;
                let max_resume = max
                    .map(|m| Duration::from_secs(m.into()).min(config.max_resume))
                    .unwrap_or(config.max_resume);
                let id = resumable.then(|| self.rng.token(STREAM_ID_LEN));
                let enabled = SmNonza::Enabled {
                    id: id.clone(),
                    resume: resumable,
                    max: resumable.then(|| u32::try_from(max_resume.as_secs()).unwrap_or(u32::MAX)),
                    location: None,
                };
                self.write(&enabled.to_element());
                self.sm = Some(ServerSm {
                    session: SmSession::new(),
                    id: id.clone(),
                    max: max_resume,
                });
                self.out
                    .event(ServerEvent::StreamManagementEnabled { resumption_id: id });
            }
            SmNonza::Resume { previd, h } => {
                // Only after authentication and instead of binding.
                let (Phase::PreBind, Some(username)) = (self.phase, self.account.clone()) else {
                    return self.sm_failed(StanzaErrorCondition::UnexpectedRequest);
                };
                if !config.resume {
                    return self.sm_failed(StanzaErrorCondition::ItemNotFound);
                }
                self.request(
                    Pending::Resume {
                        previd: previd.clone(),
                        h,
                    },
                    Request::Resume { username, previd },
                );
            }
            SmNonza::Request if self.sm.is_some() => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.session.inbound());
                self.write(&SmNonza::Ack { h }.to_element());
            }
            SmNonza::Ack { h } if self.sm.is_some() => {
                let now = self.last_now;
                let Some(sm) = self.sm.as_mut() else {
                    return;
                };
                if let Err(e) = sm.session.acknowledge_at(now, h) {
                    let error = e.to_stream_error();
                    self.fatal(error.clone(), CloseReason::ProtocolViolation(error));
                }
            }
            SmNonza::Request | SmNonza::Ack { .. } => self.violation(
                StreamErrorCondition::UnsupportedStanzaType,
                "stream management is not enabled",
            ),
            SmNonza::Enabled { .. } | SmNonza::Resumed { .. } | SmNonza::Failed { .. } => self
                .violation(
                    StreamErrorCondition::UnsupportedStanzaType,
                    "a client does not send that stream management element",
                ),
        }
    }

    /// The host's answer to a `<resume/>`.
    fn on_resume_answer(
        &mut self,
        now: Instant,
        previd: &str,
        h: u32,
        detached: Option<Box<DetachedSession>>,
    ) {
        let owner_ok = |d: &DetachedSession| {
            d.id == previd
                && d.jid.node() == self.account.as_deref()
                && Some(d.jid.domain()) == self.domain.as_deref()
        };
        let detached = match detached {
            Some(d) if owner_ok(&d) => d,
            other => {
                // Another account's (or id's) session: refused exactly like
                // an unknown id, and kept for the host to take back.
                self.refused = other;
                return self.sm_failed(StanzaErrorCondition::ItemNotFound);
            }
        };
        // The session keeps the resumption time negotiated at `<enable/>`
        // (the client may have asked for less than the server's maximum).
        let DetachedSession {
            id,
            jid,
            mut session,
            max,
            ..
        } = *detached;
        if let Err(e) = session.acknowledge_at(now, h) {
            // Keep the queue for take_unacknowledged.
            self.sm = Some(ServerSm {
                session,
                id: None,
                max,
            });
            self.jid = Some(jid);
            let error = e.to_stream_error();
            return self.fatal(error.clone(), CloseReason::ProtocolViolation(error));
        }
        let resumed = SmNonza::Resumed {
            previd: id.clone(),
            h: session.inbound(),
        };
        self.write(&resumed.to_element());
        for stanza in session.resend(now) {
            if self.writable() {
                // The bytes as they were written the first time.
                self.out.bytes().extend_from_slice(stanza.bytes());
            }
        }
        self.sm = Some(ServerSm {
            session,
            id: Some(id.clone()),
            max,
        });
        self.jid = Some(jid.clone());
        self.negotiated.bound = true;
        self.last_received = now;
        self.last_sent = now;
        self.set_phase(Phase::Ready);
        self.out.event(ServerEvent::Resumed {
            jid,
            resumption_id: id,
        });
        let acks = self.config.stream_management.unwrap_or_default().acks;
        if self
            .sm
            .as_ref()
            .is_some_and(|sm| sm.session.wants_request(&acks))
        {
            self.request_ack();
        }
    }

    fn on_closing(&mut self, element: Element) {
        if element.ns() == NS_SM {
            // After our close only acknowledgements still matter.
            if let (Ok(SmNonza::Ack { h }), Some(sm)) =
                (SmNonza::from_element(&element), self.sm.as_mut())
            {
                let _ = sm.session.acknowledge_at(self.last_now, h);
            }
            return;
        }
        if self.jid.is_none() {
            if element.is("error", ns::STREAMS) {
                self.other_element(&element);
            }
            return;
        }
        self.on_ready(element);
    }

    fn on_stanza(&mut self, mut stanza: Stanza) {
        let Some(jid) = self.jid.clone() else {
            return;
        };
        if let Some(from) = stanza.from() {
            let own = match from.parse::<Jid>() {
                Ok(Jid::Full(f)) => f == jid,
                Ok(Jid::Bare(b)) => b == jid.to_bare(),
                Err(_) => false,
            };
            if !own {
                return self.violation(
                    StreamErrorCondition::InvalidFrom,
                    "from is not the session's JID",
                );
            }
        }
        match stanza.kind() {
            StanzaKind::Iq => {
                let iq_type = match stanza.iq_type() {
                    Some(Ok(t)) => t,
                    _ => {
                        return self.stanza_error(
                            &stanza,
                            StanzaErrorCondition::BadRequest,
                            "iq type must be get, set, result or error",
                        );
                    }
                };
                let Some(id) = stanza.id() else {
                    return self.stanza_error(
                        &stanza,
                        StanzaErrorCondition::BadRequest,
                        "iq without id",
                    );
                };
                if !iq_type.is_request() {
                    if let Some(pos) = self.ping_ids.iter().position(|p| p == id) {
                        // The answer to our dead-peer probe.
                        self.ping_ids.remove(pos);
                        return;
                    }
                } else if stanza.iq_payload().is_none() {
                    return self.stanza_error(
                        &stanza,
                        StanzaErrorCondition::BadRequest,
                        "iq get/set must have exactly one payload",
                    );
                }
            }
            StanzaKind::Presence => {
                if stanza.presence_type() == Some(Err(())) {
                    return self.stanza_error(
                        &stanza,
                        StanzaErrorCondition::BadRequest,
                        "unknown presence type",
                    );
                }
            }
            StanzaKind::Message => {}
        }
        if let Some(Err(_)) = stanza.to_jid() {
            return self.stanza_error(
                &stanza,
                StanzaErrorCondition::JidMalformed,
                "the to address is not a valid JID",
            );
        }
        if stanza.kind() == StanzaKind::Iq && stanza.iq_type() == Some(Ok(IqType::Set)) {
            let to_server = stanza
                .to()
                .is_none_or(|to| Some(to) == self.domain.as_deref());
            if let Some(payload) = stanza.iq_payload() {
                if payload.is("session", ns::XMPP_SESSION) && to_server {
                    // Legacy session establishment: nothing to do.
                    let mut reply = Stanza::new(StanzaKind::Iq, ns::JABBER_CLIENT);
                    reply.set_attr("type", Some("result"));
                    reply.set_id(stanza.id());
                    reply.set_to(Some(jid.as_str()));
                    reply.set_from(stanza.to());
                    self.write_stanza(&reply);
                    return;
                }
                if payload.is("bind", ns::XMPP_BIND) && to_server {
                    return self.stanza_error(
                        &stanza,
                        StanzaErrorCondition::NotAllowed,
                        "a resource is already bound",
                    );
                }
            }
        }
        if stanza.is_subscription_presence() {
            stanza.set_from(Some(jid.to_bare().as_str()));
        } else {
            stanza.set_from(Some(jid.as_str()));
        }
        self.out.event(ServerEvent::Stanza(stanza));
    }

    fn send_ping(&mut self) {
        let Some(jid) = self.jid.clone() else {
            return;
        };
        let id = format!("ping-{}", self.rng.token(12));
        let mut ping = Stanza::iq(
            IqType::Get,
            Some(&Jid::from(jid)),
            &id,
            Element::bare("ping", NS_PING),
        );
        ping.set_from(self.domain.as_deref());
        self.write_stanza(&ping);
        if self.ping_ids.len() >= MAX_PING_IDS {
            self.ping_ids.pop_front();
        }
        self.ping_ids.push_back(id);
    }
}
