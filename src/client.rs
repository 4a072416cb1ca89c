//! The client role of a client-to-server stream (RFC 6120, initiating
//! entity): [`ClientConnection`].
//!
//! It negotiates in the order the server requires — STARTTLS, SASL, stream
//! restart, resource binding, and the legacy session when the server marks
//! it mandatory — and then carries stanzas both ways.
//!
//! ```
//! use std::time::Instant;
//! use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent};
//! use xmpp_sansio::rng::SeededRng;
//! use xmpp_sansio::stream::Output;
//!
//! let config = ClientConfig::new("juliet@example.com".parse()?, "secret");
//! let mut conn = ClientConnection::new(config, SeededRng::from_seed([7; 32]), Instant::now());
//! // The first output is our stream header, ready for the socket.
//! let Some(Output::Transmit(bytes)) = conn.poll_output() else { panic!() };
//! assert!(bytes.starts_with(b"<?xml version='1.0'?><stream:stream"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Instant;

use bytes::Bytes;
use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::rng::SeededRng;
use crate::sasl::{self, ClientSession, SaslCondition, TlsInfo, xml::SaslNonza};
use crate::sm::{AckPolicy, NS_SM, SmNonza, SmSession};
use crate::stanza::{IqType, Stanza};
use crate::stream::{
    CloseReason, Input, NS_PING, Negotiated, Outbox, Output, StreamFeatures, Timeouts, UsageError,
};
use crate::xml::{Frame, ReaderLimits, StreamHeader, StreamReader, StreamVersion, StreamWriter};

/// How the client uses TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Negotiate STARTTLS and refuse to go on without it (the default).
    StartTlsRequired,
    /// The host connected with direct TLS (XEP-0368) before the first
    /// byte; STARTTLS is not negotiated.
    Direct(TlsInfo),
    /// Use STARTTLS when offered, go on in plaintext otherwise. Insecure:
    /// only for tests on loopback. PLAIN still needs
    /// [`sasl::ClientConfig::allow_plain_without_tls`].
    StartTlsOptional,
    /// Never use TLS. Insecure: only for tests on loopback.
    Plaintext,
}

/// Configuration of a [`ClientConnection`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The account: its domain is the server to talk to, its localpart the
    /// SASL username.
    pub jid: BareJid,
    /// Resource to request at bind; `None` lets the server choose.
    pub resource: Option<String>,
    /// SASL settings (credentials, allowed mechanisms, iteration caps).
    pub sasl: sasl::ClientConfig,
    /// TLS policy.
    pub tls: TlsMode,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits for what the server sends.
    pub limits: ReaderLimits,
    /// `xml:lang` of our stream header.
    pub lang: Option<String>,
    /// Stream management (XEP-0198), used when the server offers it.
    /// `None` never enables it. Default: on, resumable.
    pub stream_management: Option<ClientSmConfig>,
}

/// How the client uses stream management (XEP-0198).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSmConfig {
    /// Ask for a resumable session (`resume='true'`). Default `true`.
    pub resume: bool,
    /// Preferred resumption timeout in seconds to ask for (`max`).
    pub max: Option<u32>,
    /// When to ask the server for acknowledgements.
    pub acks: AckPolicy,
}

impl Default for ClientSmConfig {
    fn default() -> Self {
        ClientSmConfig {
            resume: true,
            max: None,
            acks: AckPolicy::default(),
        }
    }
}

/// What is needed to resume a stream-management session on a new
/// connection (XEP-0198 §5), taken from a connection that was lost with
/// [`ClientConnection::take_resumption`] and given to
/// [`ClientConnection::resume`].
#[derive(Clone, Debug, PartialEq)]
pub struct Resumption {
    id: String,
    jid: FullJid,
    max: Option<u32>,
    location: Option<String>,
    session: SmSession,
}

impl Resumption {
    /// The resumption id the server gave.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The full JID of the session.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// How long (seconds) the server keeps the session, if it said.
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    /// Where the server asked to reconnect for resumption (`host:port`).
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The counters and the stanzas not yet acknowledged.
    pub fn session(&self) -> &SmSession {
        &self.session
    }

    /// Gives up on resuming: the stanzas whose delivery was never
    /// confirmed, oldest first.
    pub fn into_unacknowledged(mut self) -> Vec<Stanza> {
        self.session.take_unacked()
    }
}

/// Stream management on the current stream.
#[derive(Clone, Debug)]
struct ActiveSm {
    session: SmSession,
    /// The session's JID.
    jid: FullJid,
    /// Resumption id, when the server made the session resumable.
    id: Option<String>,
    max: Option<u32>,
    location: Option<String>,
}

impl ClientConfig {
    /// A client for `jid` with `password`: STARTTLS required, SCRAM
    /// preferred (the strongest the server offers), server-chosen resource.
    pub fn new(jid: BareJid, password: impl Into<String>) -> Self {
        let username = jid.node().unwrap_or_default().to_owned();
        ClientConfig {
            jid,
            resource: None,
            sasl: sasl::ClientConfig::new(username, password),
            tls: TlsMode::StartTlsRequired,
            timeouts: Timeouts::default(),
            limits: ReaderLimits::default(),
            lang: Some("en".to_owned()),
            stream_management: Some(ClientSmConfig::default()),
        }
    }
}

/// Something the client tells its host.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// The server accepted STARTTLS: after sending the bytes queued before
    /// this event, the host runs the TLS handshake over the socket (feeding
    /// it `buffered` first: bytes the server already sent after
    /// `<proceed/>`), then calls
    /// [`handle_input`](ClientConnection::handle_input) with
    /// [`Input::TlsEstablished`].
    StartTls {
        /// Bytes received after `<proceed/>`: TLS records, untouched.
        buffered: Bytes,
    },
    /// Negotiation is complete: stanzas may flow. `jid` is the bound full
    /// JID, which the server may have chosen.
    Online {
        /// The bound JID.
        jid: FullJid,
    },
    /// A stanza from the server.
    Stanza(Stanza),
    /// The stream-management session was resumed on this connection
    /// (instead of `Online`): the stanzas the server had not handled were
    /// sent again, and the session goes on as `jid`.
    Resumed {
        /// The session's JID.
        jid: FullJid,
    },
    /// The server confirmed (XEP-0198 `<a/>`) that it handled these
    /// stanzas, oldest first.
    Acknowledged(Vec<Stanza>),
    /// These stanzas were sent but their delivery was never confirmed, and
    /// the stream-management session that could confirm them is over
    /// (closed, not resumable, or resumption refused). The host decides:
    /// send them again (risking a duplicate) or report them as failed.
    Unacknowledged(Vec<Stanza>),
    /// The connection ended; nothing more will happen.
    Closed(CloseReason),
}

/// Where negotiation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the server's stream header.
    AwaitHeader,
    /// Waiting for `<stream:features/>`.
    AwaitFeatures,
    /// Sent `<starttls/>`, waiting for `<proceed/>`.
    AwaitProceed,
    /// The host is running the TLS handshake.
    AwaitTls,
    /// SASL exchange under way.
    Authenticating,
    /// Sent the bind request.
    Binding,
    /// Sent the legacy session request.
    Session,
    /// Sent `<enable/>` (XEP-0198), waiting for `<enabled/>` or `<failed/>`.
    Enabling,
    /// Sent `<resume/>` (XEP-0198), waiting for `<resumed/>` or `<failed/>`.
    Resuming,
}

/// The inspectable state of a [`ClientConnection`].
#[derive(Clone, Debug, PartialEq)]
pub enum ClientState {
    /// Negotiating the stream.
    Negotiating(Phase),
    /// Ready for stanzas as `jid`.
    Online {
        /// The bound JID.
        jid: FullJid,
    },
    /// We sent `</stream:stream>` and wait for the server's.
    Closing,
    /// Closed, for this reason (sticky).
    Closed(CloseReason),
}

/// The client side of a c2s stream, from the first byte to the closing tag.
#[derive(Debug)]
pub struct ClientConnection {
    config: ClientConfig,
    rng: SeededRng,
    reader: StreamReader,
    writer: StreamWriter,
    out: Outbox<ClientEvent>,
    state: ClientState,
    tls: TlsInfo,
    negotiated: Negotiated,
    features: StreamFeatures,
    sasl: Option<ClientSession>,
    /// Id of the bind or session request in flight.
    request_id: String,
    stream_id: Option<String>,
    negotiation_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    last_received: Instant,
    last_sent: Instant,
    /// The last dead-peer ping: its id and when it was sent.
    probe: Option<(String, Instant)>,
    /// The bound JID while the legacy session is being established.
    bound: Option<FullJid>,
    /// How SASL succeeded.
    authenticated: Option<sasl::Authenticated>,
    /// Stream management on this stream, once enabled or resumed.
    sm: Option<ActiveSm>,
    /// The session to resume instead of binding (until resumed or refused).
    resuming: Option<Resumption>,
    /// A lost session that can be resumed (after `Closed`).
    resumption: Option<Resumption>,
}

impl ClientConnection {
    /// Starts a connection: queues our stream header at once.
    pub fn new(config: ClientConfig, rng: SeededRng, now: Instant) -> Self {
        let tls = match &config.tls {
            TlsMode::Direct(info) => info.clone(),
            _ => TlsInfo::plaintext(),
        };
        let negotiated = Negotiated {
            tls: tls.is_encrypted(),
            ..Negotiated::default()
        };
        let mut conn = ClientConnection {
            reader: StreamReader::new(config.limits),
            writer: StreamWriter::new(ns::JABBER_CLIENT),
            out: Outbox::default(),
            state: ClientState::Negotiating(Phase::AwaitHeader),
            tls,
            negotiated,
            features: StreamFeatures::default(),
            sasl: None,
            request_id: String::new(),
            stream_id: None,
            negotiation_deadline: Some(now + config.timeouts.negotiation),
            close_deadline: None,
            last_received: now,
            last_sent: now,
            probe: None,
            bound: None,
            authenticated: None,
            sm: None,
            resuming: None,
            resumption: None,
            rng,
            config,
        };
        conn.send_header(now);
        conn
    }

    /// Starts a connection that resumes the stream-management session of a
    /// lost one (XEP-0198 §5) instead of binding a resource: after TLS and
    /// SASL it sends `<resume/>`. On success the connection reports
    /// [`ClientEvent::Resumed`] and sends again what the server had not
    /// handled; if the server refuses, it reports the stanzas whose fate is
    /// unknown as [`ClientEvent::Unacknowledged`] and binds a resource as
    /// usual ([`ClientEvent::Online`]).
    pub fn resume(
        config: ClientConfig,
        resumption: Resumption,
        rng: SeededRng,
        now: Instant,
    ) -> Self {
        let mut conn = ClientConnection::new(config, rng, now);
        if resumption.jid.to_bare() == conn.config.jid {
            conn.resuming = Some(resumption);
        } else {
            conn.out.event(ClientEvent::Unacknowledged(
                resumption.into_unacknowledged(),
            ));
        }
        conn
    }

    /// After the connection was lost (closed by end of input or dead-peer
    /// timeout, not by a clean close or an error), the resumable
    /// stream-management session, once. `None` when there is none: then
    /// every unconfirmed stanza was reported as
    /// [`ClientEvent::Unacknowledged`] before [`ClientEvent::Closed`].
    pub fn take_resumption(&mut self) -> Option<Resumption> {
        self.resumption.take()
    }

    /// Stream management on this stream (counters and the stanzas not yet
    /// acknowledged), once enabled or resumed.
    pub fn stream_management(&self) -> Option<&SmSession> {
        self.sm.as_ref().map(|sm| &sm.session)
    }

    /// The resumption id, when stream management is on and resumable.
    pub fn resumption_id(&self) -> Option<&str> {
        self.sm.as_ref().and_then(|sm| sm.id.as_deref())
    }

    /// The state: negotiating (and where), online, closing, or closed and why.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// The bound JID once online.
    pub fn jid(&self) -> Option<&FullJid> {
        match &self.state {
            ClientState::Online { jid } => Some(jid),
            _ => None,
        }
    }

    /// The id of the current stream, as the server set it.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// What the TLS layer reported (plaintext until TLS is up).
    pub fn tls(&self) -> &TlsInfo {
        &self.tls
    }

    /// The SASL mechanism (and channel binding) that authenticated this
    /// stream, once it has.
    pub fn authentication(&self) -> Option<&sasl::Authenticated> {
        self.authenticated.as_ref()
    }

    /// The features of the current stream, as the server offered them.
    pub fn features(&self) -> &StreamFeatures {
        &self.features
    }

    /// Hands input to the connection. Errors only for API misuse; problems
    /// of the peer end the connection with a `Closed` event.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), UsageError> {
        if matches!(self.state, ClientState::Closed(_)) {
            return Ok(());
        }
        match input {
            Input::Received(bytes) => {
                self.last_received = now;
                self.reader.feed(bytes);
                self.process_frames(now);
                Ok(())
            }
            Input::TlsEstablished(info) => {
                if self.state != ClientState::Negotiating(Phase::AwaitTls) {
                    return Err(UsageError::UnexpectedTls);
                }
                self.tls = info;
                self.negotiated.tls = true;
                self.state = ClientState::Negotiating(Phase::AwaitHeader);
                self.send_header(now);
                Ok(())
            }
            Input::Eof => {
                let reason = if self.state == ClientState::Closing {
                    CloseReason::Closed
                } else {
                    CloseReason::Eof
                };
                self.finish(reason);
                Ok(())
            }
        }
    }

    /// The next output for the host, in order; `None` when there is nothing.
    pub fn poll_output(&mut self) -> Option<Output<ClientEvent>> {
        self.out.pop()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ClientState::Closed(_) => None,
            ClientState::Closing => self.close_deadline,
            ClientState::Negotiating(_) => self.negotiation_deadline,
            ClientState::Online { .. } => {
                let t = &self.config.timeouts;
                let keepalive = t.keepalive.map(|k| self.last_sent + k);
                let dead_peer = t.dead_peer.map(|d| match self.unanswered_probe() {
                    Some(sent) => sent + d,
                    None => self.last_received + d,
                });
                let ack = self.sm_ack_deadline();
                [keepalive, dead_peer, ack].into_iter().flatten().min()
            }
        }
    }

    /// Lets deadlines that have passed at `now` take effect.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state.clone() {
            ClientState::Closed(_) => {}
            ClientState::Closing => {
                if self.close_deadline.is_some_and(|d| now >= d) {
                    self.finish(CloseReason::CloseTimedOut);
                }
            }
            ClientState::Negotiating(_) => {
                if self.negotiation_deadline.is_some_and(|d| now >= d) {
                    self.fail_with(
                        StreamError::new(StreamErrorCondition::ConnectionTimeout)
                            .with_text("stream negotiation timed out"),
                        CloseReason::NegotiationTimeout,
                    );
                }
            }
            ClientState::Online { .. } => {
                let t = self.config.timeouts;
                if let Some(dead) = t.dead_peer {
                    match self.unanswered_probe() {
                        Some(sent) if now >= sent + dead => {
                            self.fail_with(
                                StreamError::new(StreamErrorCondition::ConnectionTimeout),
                                CloseReason::PeerTimeout,
                            );
                            return;
                        }
                        Some(_) => {}
                        None if now >= self.last_received + dead => self.send_probe(now),
                        None => {}
                    }
                }
                if self.sm_ack_deadline().is_some_and(|d| now >= d) {
                    self.request_ack(now);
                }
                if let Some(k) = t.keepalive
                    && now >= self.last_sent + k
                {
                    self.writer.write_whitespace(self.out.bytes());
                    self.last_sent = now;
                }
            }
        }
    }

    /// Sends a stanza. An iq, message or presence without `id` gets a
    /// generated one; the id is returned so the host can match the reply.
    pub fn send_stanza(&mut self, now: Instant, mut stanza: Stanza) -> Result<String, UsageError> {
        match &self.state {
            ClientState::Online { .. } => {}
            ClientState::Negotiating(_) => return Err(UsageError::NotReady),
            ClientState::Closing | ClientState::Closed(_) => return Err(UsageError::Closed),
        }
        let id = match stanza.id() {
            Some(id) => id.to_owned(),
            None => {
                let id = self.rng.token(16);
                stanza.set_id(Some(&id));
                id
            }
        };
        self.writer
            .write_element(stanza.element(), self.out.bytes())
            .map_err(UsageError::Unwritable)?;
        self.last_sent = now;
        if let Some(sm) = self.sm.as_mut() {
            sm.session.sent(now, stanza);
            let policy = self.sm_policy();
            if self
                .sm
                .as_ref()
                .is_some_and(|sm| sm.session.wants_request(&policy))
            {
                self.request_ack(now);
            }
        }
        Ok(id)
    }

    /// Closes the stream: sends `</stream:stream>` and waits (up to
    /// [`Timeouts::close`]) for the server's.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            ClientState::Closed(_) | ClientState::Closing => {}
            _ => {
                // XEP-0198: tell the server what we handled and ask what it
                // handled, so the close leaves nothing uncertain.
                if let Some(sm) = &self.sm {
                    let ack = SmNonza::Ack {
                        h: sm.session.inbound(),
                    };
                    let want_ack = sm.session.unacked_len() > 0;
                    if !self.send(&ack.to_element()) {
                        return;
                    }
                    if want_ack && !self.send(&SmNonza::Request.to_element()) {
                        return;
                    }
                }
                self.writer.write_close(self.out.bytes());
                self.state = ClientState::Closing;
                self.close_deadline = Some(now + self.config.timeouts.close);
            }
        }
    }

    fn sm_policy(&self) -> AckPolicy {
        self.config
            .stream_management
            .map(|c| c.acks)
            .unwrap_or_default()
    }

    fn sm_ack_deadline(&self) -> Option<Instant> {
        let policy = self.sm_policy();
        self.sm
            .as_ref()
            .and_then(|sm| sm.session.request_deadline(&policy))
    }

    fn request_ack(&mut self, now: Instant) {
        if self.send(&SmNonza::Request.to_element()) {
            self.last_sent = now;
            if let Some(sm) = self.sm.as_mut() {
                sm.session.requested();
            }
        }
    }

    fn send_header(&mut self, now: Instant) {
        let header = StreamHeader {
            to: Some(self.config.jid.domain().to_owned()),
            // RFC 6120 §4.7.1: `from` only once the stream is encrypted.
            from: self
                .negotiated
                .tls
                .then(|| self.config.jid.as_str().to_owned()),
            version: Some(StreamVersion::V1_0),
            lang: self.config.lang.clone(),
            content_namespace: Some(ns::JABBER_CLIENT.to_owned()),
            stream_prefix: Some("stream".to_owned()),
            ..StreamHeader::default()
        };
        self.writer.write_header(&header, self.out.bytes());
        self.last_sent = now;
    }

    /// Writes an element the connection built itself. Only configured
    /// values (e.g. a requested resource with a character XML forbids) can
    /// make that fail; the connection then ends instead of sending garbage.
    /// Returns whether it was sent (the caller stops otherwise).
    #[must_use]
    fn send(&mut self, element: &Element) -> bool {
        match self.writer.write_element(element, self.out.bytes()) {
            Ok(()) => {
                // A stanza of our own (a ping answer, a probe) counts for
                // stream management like the host's.
                if let Some(sm) = self.sm.as_mut()
                    && let Ok(stanza) = Stanza::from_element(element.clone(), ns::JABBER_CLIENT)
                {
                    sm.session
                        .sent(self.last_received.max(self.last_sent), stanza);
                }
                true
            }
            Err(e) => {
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::PolicyRefused(format!(
                    "cannot send <{}/>: {e}",
                    element.name()
                )));
                false
            }
        }
    }

    fn process_frames(&mut self, now: Instant) {
        loop {
            if matches!(
                self.state,
                ClientState::Closed(_) | ClientState::Negotiating(Phase::AwaitTls)
            ) {
                return;
            }
            match self.reader.next_frame() {
                Ok(None) => return,
                Ok(Some(frame)) => self.handle_frame(now, frame),
                Err(e) => {
                    let error = StreamError::new(e.condition()).with_text(e.to_string());
                    self.fail_with(error.clone(), CloseReason::ProtocolViolation(error));
                    return;
                }
            }
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Whitespace => {}
            Frame::StreamOpen(header) => self.handle_header(header),
            Frame::StreamClose => {
                if self.state != ClientState::Closing {
                    self.writer.write_close(self.out.bytes());
                }
                self.finish(CloseReason::Closed);
            }
            Frame::Element(el) => {
                if el.is("error", ns::STREAMS) {
                    let error = StreamError::from_element(&el).unwrap_or_else(|_| {
                        StreamError::new(StreamErrorCondition::UndefinedCondition)
                    });
                    if self.state != ClientState::Closing {
                        self.writer.write_close(self.out.bytes());
                    }
                    self.finish(CloseReason::PeerStreamError(error));
                    return;
                }
                match self.state.clone() {
                    ClientState::Negotiating(phase) => self.handle_negotiation(now, phase, el),
                    ClientState::Online { jid } => self.handle_online(now, &jid, el),
                    // Stanzas after our close may still be processed (RFC 6120 §4.4).
                    ClientState::Closing => {
                        if el.ns() == NS_SM {
                            self.handle_sm(now, &el);
                        } else if let Ok(stanza) = Stanza::from_element(el, ns::JABBER_CLIENT) {
                            if let Some(sm) = self.sm.as_mut() {
                                sm.session.handled_inbound();
                            }
                            self.out.event(ClientEvent::Stanza(stanza));
                        }
                    }
                    ClientState::Closed(_) => {}
                }
            }
        }
    }

    fn handle_header(&mut self, header: StreamHeader) {
        if self.state != ClientState::Negotiating(Phase::AwaitHeader) {
            self.violation(StreamErrorCondition::BadFormat, "unexpected stream header");
            return;
        }
        if header.content_namespace.as_deref() != Some(ns::JABBER_CLIENT) {
            self.violation(
                StreamErrorCondition::InvalidNamespace,
                "content namespace is not jabber:client",
            );
            return;
        }
        if header.version.is_none_or(|v| v.major != 1) {
            self.violation(
                StreamErrorCondition::UnsupportedVersion,
                "XMPP 1.0 streams only",
            );
            return;
        }
        self.stream_id = header.id;
        self.state = ClientState::Negotiating(Phase::AwaitFeatures);
    }

    fn handle_negotiation(&mut self, now: Instant, phase: Phase, el: Element) {
        match phase {
            Phase::AwaitFeatures if el.is("features", ns::STREAMS) => {
                match StreamFeatures::from_element(&el) {
                    Ok(features) => {
                        self.features = features;
                        self.negotiate();
                    }
                    Err(error) => {
                        self.fail_with(error.clone(), CloseReason::ProtocolViolation(error))
                    }
                }
            }
            Phase::AwaitProceed if el.is("proceed", ns::XMPP_TLS) => {
                let buffered = self.reader.take_unparsed().freeze();
                self.state = ClientState::Negotiating(Phase::AwaitTls);
                self.out.event(ClientEvent::StartTls { buffered });
            }
            Phase::AwaitProceed if el.is("failure", ns::XMPP_TLS) => {
                // The server closes the stream and the connection after this.
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::TlsRefused);
            }
            Phase::Authenticating if el.ns() == ns::XMPP_SASL => self.handle_sasl(now, &el),
            Phase::Binding | Phase::Session if el.is("iq", ns::JABBER_CLIENT) => {
                self.handle_bind_reply(now, phase, el)
            }
            Phase::Enabling | Phase::Resuming if el.ns() == NS_SM => {
                self.handle_sm_negotiation(now, phase, &el)
            }
            // The server may send stanzas before it answers `<enable/>`;
            // they are not counted (counting starts at `<enabled/>`).
            Phase::Enabling if el.ns() == ns::JABBER_CLIENT => {
                if let Ok(stanza) = Stanza::from_element(el, ns::JABBER_CLIENT) {
                    self.out.event(ClientEvent::Stanza(stanza));
                }
            }
            _ => self.violation(
                StreamErrorCondition::BadFormat,
                &format!("unexpected <{}/> while negotiating", el.name()),
            ),
        }
    }

    /// Picks the next feature to negotiate: STARTTLS, then SASL, then bind.
    fn negotiate(&mut self) {
        if !self.negotiated.tls {
            let offered = self.features.starttls.is_some();
            let want = !matches!(self.config.tls, TlsMode::Plaintext);
            if offered && want {
                if !self.send(&Element::bare("starttls", ns::XMPP_TLS)) {
                    return;
                }
                self.state = ClientState::Negotiating(Phase::AwaitProceed);
                return;
            }
            if self.config.tls == TlsMode::StartTlsRequired {
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::PolicyRefused(
                    "TLS is required but the server does not offer STARTTLS".to_owned(),
                ));
                return;
            }
            if self.features.starttls == Some(true) {
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::PolicyRefused(
                    "the server requires STARTTLS but TLS is disabled".to_owned(),
                ));
                return;
            }
        }
        if !self.negotiated.authenticated {
            let Some(offer) = self.features.sasl.clone() else {
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::AuthenticationFailed {
                    condition: SaslCondition::InvalidMechanism,
                    detail: "the server offers no SASL mechanism".to_owned(),
                });
                return;
            };
            match ClientSession::start(&self.config.sasl, &offer, &self.tls, &mut self.rng) {
                Ok((session, initial)) => {
                    let auth = SaslNonza::Auth {
                        mechanism: session.mechanism().name().to_owned(),
                        initial_response: Some(initial),
                    };
                    self.sasl = Some(session);
                    if !self.send(&auth.to_element()) {
                        return;
                    }
                    self.state = ClientState::Negotiating(Phase::Authenticating);
                }
                Err(e) => {
                    self.writer.write_close(self.out.bytes());
                    self.finish(CloseReason::AuthenticationFailed {
                        condition: e.condition(),
                        detail: e.to_string(),
                    });
                }
            }
            return;
        }
        if let Some(resumption) = &self.resuming {
            if self.features.stream_management {
                let resume = SmNonza::Resume {
                    previd: resumption.id.clone(),
                    h: resumption.session.inbound(),
                };
                if self.send(&resume.to_element()) {
                    self.state = ClientState::Negotiating(Phase::Resuming);
                }
                return;
            }
            // The server no longer offers stream management: the old
            // session cannot be resumed.
            if let Some(resumption) = self.resuming.take() {
                let lost = resumption.into_unacknowledged();
                self.out.event(ClientEvent::Unacknowledged(lost));
            }
        }
        if self.features.bind {
            self.request_id = self.rng.token(16);
            let mut bind = Element::bare("bind", ns::XMPP_BIND);
            if let Some(resource) = &self.config.resource {
                let mut r = Element::bare("resource", ns::XMPP_BIND);
                r.append_text(resource.clone());
                bind.append_child(r);
            }
            let iq = Stanza::iq(IqType::Set, None, &self.request_id, bind);
            if !self.send(iq.element()) {
                return;
            }
            self.state = ClientState::Negotiating(Phase::Binding);
            return;
        }
        self.violation(
            StreamErrorCondition::UnsupportedFeature,
            "resource binding is not offered",
        );
    }

    fn handle_sasl(&mut self, now: Instant, el: &Element) {
        let nonza = match SaslNonza::from_element(el) {
            Ok(n) => n,
            Err(e) => {
                self.violation(StreamErrorCondition::BadFormat, &e.to_string());
                return;
            }
        };
        let Some(session) = self.sasl.as_mut() else {
            return;
        };
        match nonza {
            SaslNonza::Challenge(data) => match session.step(&data) {
                Ok(response) => {
                    let _sent = self.send(&SaslNonza::Response(response).to_element());
                }
                Err(e) => {
                    // RFC 6120 §6.4.4: abort, then give up on this server.
                    if !self.send(&SaslNonza::Abort.to_element()) {
                        return;
                    }
                    self.writer.write_close(self.out.bytes());
                    self.finish(CloseReason::AuthenticationFailed {
                        condition: e.condition(),
                        detail: e.to_string(),
                    });
                }
            },
            SaslNonza::Success(data) => match session.finish(data.as_deref()) {
                Ok(authenticated) => {
                    self.authenticated = Some(authenticated);
                    self.sasl = None;
                    self.negotiated.authenticated = true;
                    self.features = StreamFeatures::default();
                    // RFC 6120 §6.4.6: restart; bytes already buffered belong
                    // to the new stream.
                    self.reader.reset();
                    self.state = ClientState::Negotiating(Phase::AwaitHeader);
                    self.send_header(now);
                }
                Err(e) => {
                    self.writer.write_close(self.out.bytes());
                    self.finish(CloseReason::AuthenticationFailed {
                        condition: e.condition(),
                        detail: format!("the server did not prove it knows the credentials: {e}"),
                    });
                }
            },
            SaslNonza::Failure { condition, text } => {
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::AuthenticationFailed {
                    condition,
                    detail: text.map(|t| t.text).unwrap_or_default(),
                });
            }
            SaslNonza::Auth { .. } | SaslNonza::Response(_) | SaslNonza::Abort => {
                self.violation(
                    StreamErrorCondition::BadFormat,
                    "client-only SASL element from the server",
                );
            }
        }
    }

    fn handle_bind_reply(&mut self, now: Instant, phase: Phase, el: Element) {
        let Ok(iq) = Stanza::from_element(el, ns::JABBER_CLIENT) else {
            return;
        };
        if iq.id() != Some(self.request_id.as_str()) {
            self.violation(
                StreamErrorCondition::BadFormat,
                "unexpected iq while binding",
            );
            return;
        }
        match iq.iq_type() {
            Some(Ok(IqType::Result)) => {}
            Some(Ok(IqType::Error)) => {
                let error = iq
                    .error()
                    .unwrap_or_else(|| StanzaError::new(StanzaErrorCondition::UndefinedCondition));
                self.writer.write_close(self.out.bytes());
                self.finish(CloseReason::BindFailed(error));
                return;
            }
            _ => {
                self.violation(StreamErrorCondition::BadFormat, "bad iq type in bind reply");
                return;
            }
        }
        let jid = if phase == Phase::Binding {
            let text = iq
                .element()
                .get_child("bind", ns::XMPP_BIND)
                .and_then(|b| b.get_child("jid", ns::XMPP_BIND))
                .map(Element::text);
            match text.as_deref().map(str::parse::<FullJid>) {
                Some(Ok(jid))
                    if jid.to_bare() == self.config.jid || self.config.jid.node().is_none() =>
                {
                    jid
                }
                _ => {
                    self.violation(
                        StreamErrorCondition::BadFormat,
                        "bind result without a valid full JID of this account",
                    );
                    return;
                }
            }
        } else {
            match self.bound.take() {
                Some(jid) => jid,
                None => return,
            }
        };
        // A mandatory legacy session (RFC 3921 §3) is established before
        // going online; an optional one is skipped.
        if phase == Phase::Binding && self.features.session == Some(false) {
            self.request_id = self.rng.token(16);
            let session = Element::bare("session", ns::XMPP_SESSION);
            let domain: Jid = match self.config.jid.domain().parse() {
                Ok(d) => d,
                Err(_) => return,
            };
            let iq = Stanza::iq(IqType::Set, Some(&domain), &self.request_id, session);
            if !self.send(iq.element()) {
                return;
            }
            self.bound = Some(jid);
            self.state = ClientState::Negotiating(Phase::Session);
            return;
        }
        self.bound_ready(now, jid);
    }

    /// A resource is bound (and the session established): enable stream
    /// management if the server offers it, else go online.
    fn bound_ready(&mut self, now: Instant, jid: FullJid) {
        if let Some(sm) = self.config.stream_management
            && self.features.stream_management
        {
            let enable = SmNonza::Enable {
                resume: sm.resume,
                max: sm.max,
            };
            if self.send(&enable.to_element()) {
                self.bound = Some(jid);
                self.state = ClientState::Negotiating(Phase::Enabling);
            }
            return;
        }
        self.go_online(now, jid);
    }

    fn go_online(&mut self, now: Instant, jid: FullJid) {
        self.negotiation_deadline = None;
        self.last_received = now;
        self.state = ClientState::Online { jid: jid.clone() };
        self.out.event(ClientEvent::Online { jid });
    }

    /// `<enabled/>`, `<resumed/>` or `<failed/>` while enabling or resuming.
    fn handle_sm_negotiation(&mut self, now: Instant, phase: Phase, el: &Element) {
        let nonza = match SmNonza::from_element(el) {
            Ok(n) => n,
            Err(e) => return self.violation(StreamErrorCondition::BadFormat, &e.to_string()),
        };
        match (phase, nonza) {
            (
                Phase::Enabling,
                SmNonza::Enabled {
                    id,
                    resume,
                    max,
                    location,
                },
            ) => {
                if let Some(jid) = self.bound.take() {
                    self.sm = Some(ActiveSm {
                        session: SmSession::new(),
                        jid: jid.clone(),
                        id: id.filter(|_| resume),
                        max,
                        location,
                    });
                    self.go_online(now, jid);
                }
            }
            (Phase::Enabling, SmNonza::Failed { .. }) => {
                // Stream management refused: go on without it.
                if let Some(jid) = self.bound.take() {
                    self.go_online(now, jid);
                }
            }
            (Phase::Resuming, SmNonza::Resumed { previd, h }) => {
                let Some(mut resumption) = self.resuming.take() else {
                    return;
                };
                if previd != resumption.id {
                    return self.violation(
                        StreamErrorCondition::BadFormat,
                        "<resumed/> for another session",
                    );
                }
                match resumption.session.acknowledge_at(now, h) {
                    Ok(acked) if acked.is_empty() => {}
                    Ok(acked) => self.out.event(ClientEvent::Acknowledged(acked)),
                    Err(e) => {
                        self.resuming = Some(resumption);
                        let error = e.to_stream_error();
                        return self
                            .fail_with(error.clone(), CloseReason::ProtocolViolation(error));
                    }
                }
                // Send again, in order, what the server had not handled.
                let mut session = resumption.session;
                for stanza in session.resend(now) {
                    if self
                        .writer
                        .write_element(stanza.element(), self.out.bytes())
                        .is_err()
                    {
                        // It was written once; it cannot fail now.
                        continue;
                    }
                }
                let jid = resumption.jid;
                self.sm = Some(ActiveSm {
                    session,
                    jid: jid.clone(),
                    id: Some(resumption.id),
                    max: resumption.max,
                    location: resumption.location,
                });
                self.negotiation_deadline = None;
                self.last_received = now;
                self.last_sent = now;
                self.state = ClientState::Online { jid: jid.clone() };
                self.out.event(ClientEvent::Resumed { jid });
                let policy = self.sm_policy();
                if self
                    .sm
                    .as_ref()
                    .is_some_and(|sm| sm.session.wants_request(&policy))
                {
                    self.request_ack(now);
                }
            }
            (Phase::Resuming, SmNonza::Failed { h, .. }) => {
                let Some(mut resumption) = self.resuming.take() else {
                    return;
                };
                // A `h` on a failed resume still tells what the server
                // handled; a bogus one is ignored (the session is over).
                if let Some(h) = h
                    && let Ok(acked) = resumption.session.acknowledge(h)
                    && !acked.is_empty()
                {
                    self.out.event(ClientEvent::Acknowledged(acked));
                }
                let lost = resumption.into_unacknowledged();
                if !lost.is_empty() {
                    self.out.event(ClientEvent::Unacknowledged(lost));
                }
                self.negotiate();
            }
            (_, other) => self.violation(
                StreamErrorCondition::BadFormat,
                &format!("unexpected <{}/> while negotiating", other.name()),
            ),
        }
    }

    /// `<r/>` and `<a/>` on an established stream.
    fn handle_sm(&mut self, now: Instant, el: &Element) {
        if self.sm.is_none() {
            return self.violation(
                StreamErrorCondition::UnsupportedStanzaType,
                "stream management is not enabled",
            );
        }
        let nonza = match SmNonza::from_element(el) {
            Ok(n) => n,
            Err(e) => return self.violation(StreamErrorCondition::BadFormat, &e.to_string()),
        };
        match nonza {
            SmNonza::Request => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.session.inbound());
                if self.state != ClientState::Closing && self.send(&SmNonza::Ack { h }.to_element())
                {
                    self.last_sent = now;
                }
            }
            SmNonza::Ack { h } => {
                let Some(sm) = self.sm.as_mut() else {
                    return;
                };
                match sm.session.acknowledge_at(now, h) {
                    Ok(acked) if acked.is_empty() => {}
                    Ok(acked) => self.out.event(ClientEvent::Acknowledged(acked)),
                    Err(e) => {
                        let error = e.to_stream_error();
                        self.fail_with(error.clone(), CloseReason::ProtocolViolation(error));
                    }
                }
            }
            other => self.violation(
                StreamErrorCondition::BadFormat,
                &format!("unexpected <{}/> on an established stream", other.name()),
            ),
        }
    }

    fn handle_online(&mut self, now: Instant, jid: &FullJid, el: Element) {
        if el.ns() == NS_SM {
            return self.handle_sm(now, &el);
        }
        let stanza = match Stanza::from_element(el, ns::JABBER_CLIENT) {
            Ok(s) => s,
            Err(not) => {
                self.violation(
                    StreamErrorCondition::UnsupportedStanzaType,
                    &format!("<{}/> in {}", not.0.name(), not.0.ns()),
                );
                return;
            }
        };
        // Every stanza is handled here: given to the host or answered.
        if let Some(sm) = self.sm.as_mut() {
            sm.session.handled_inbound();
        }
        let from_server = stanza
            .from()
            .is_none_or(|f| f == jid.domain() || f == jid.to_bare().as_str());
        if let Some(Ok(iq_type)) = stanza.iq_type() {
            // The answer to our dead-peer probe is ours, not the host's.
            if let Some((probe_id, _)) = &self.probe
                && matches!(iq_type, IqType::Result | IqType::Error)
                && stanza.id() == Some(probe_id.as_str())
                && from_server
            {
                self.probe = None;
                return;
            }
            // XEP-0199: answer pings so the server knows we are alive.
            if iq_type == IqType::Get && stanza.iq_payload().is_some_and(|p| p.is("ping", NS_PING))
            {
                if let Some(reply) = stanza.iq_result(None)
                    && self.send(reply.element())
                {
                    self.last_sent = now;
                }
                return;
            }
        }
        self.out.event(ClientEvent::Stanza(stanza));
    }

    /// When the last probe was sent, if nothing has been received since.
    fn unanswered_probe(&self) -> Option<Instant> {
        self.probe
            .as_ref()
            .map(|(_, sent)| *sent)
            .filter(|sent| self.last_received <= *sent)
    }

    fn send_probe(&mut self, now: Instant) {
        let id = self.rng.token(16);
        let domain: Option<Jid> = self.config.jid.domain().parse().ok();
        let iq = Stanza::iq(
            IqType::Get,
            domain.as_ref(),
            &id,
            Element::bare("ping", NS_PING),
        );
        if self.send(iq.element()) {
            self.last_sent = now;
            self.probe = Some((id, now));
        }
    }

    /// The server broke the protocol: send a stream error, close.
    fn violation(&mut self, condition: StreamErrorCondition, text: &str) {
        let error = StreamError::new(condition).with_text(text);
        self.fail_with(error.clone(), CloseReason::ProtocolViolation(error));
    }

    fn fail_with(&mut self, error: StreamError, reason: CloseReason) {
        if !matches!(self.state, ClientState::Closing | ClientState::Closed(_)) {
            if !self.send(&error.to_element()) {
                return;
            }
            self.writer.write_close(self.out.bytes());
        }
        self.finish(reason);
    }

    fn finish(&mut self, reason: CloseReason) {
        if matches!(self.state, ClientState::Closed(_)) {
            return;
        }
        // Stream management: a lost connection keeps a resumable session
        // for `take_resumption`; any other end reports what stays
        // unconfirmed.
        let lost_transport = matches!(
            reason,
            CloseReason::Eof | CloseReason::PeerTimeout | CloseReason::NegotiationTimeout
        );
        let resumable = match self.sm.take() {
            Some(ActiveSm {
                id: Some(id),
                session,
                jid,
                max,
                location,
            }) => Some(Resumption {
                id,
                jid,
                max,
                location,
                session,
            }),
            Some(mut sm) => {
                let lost = sm.session.take_unacked();
                if !lost.is_empty() {
                    self.out.event(ClientEvent::Unacknowledged(lost));
                }
                None
            }
            None => None,
        };
        for resumption in [self.resuming.take(), resumable].into_iter().flatten() {
            if lost_transport {
                self.resumption = Some(resumption);
            } else {
                let lost = resumption.into_unacknowledged();
                if !lost.is_empty() {
                    self.out.event(ClientEvent::Unacknowledged(lost));
                }
            }
        }
        self.state = ClientState::Closed(reason.clone());
        self.sasl = None;
        self.negotiation_deadline = None;
        self.close_deadline = None;
        self.out.event(ClientEvent::Closed(reason));
    }
}
