//! What the client and server connections share: the host-facing input and
//! output types, the ordered output queue, close reasons, timeouts and the
//! stream-feature table.
//!
//! # The host loop
//!
//! Every connection (client or server role) is driven the same way:
//!
//! ```text
//! conn.handle_input(now, Input::Received(&buf[..n]));   // or Input::Eof, Input::TlsEstablished(info)
//! while let Some(out) = conn.poll_output() {
//!     match out {
//!         Output::Transmit(bytes) => socket.write_all(&bytes),
//!         Output::Event(event) => { /* stanzas, requests, StartTls, Closed … */ }
//!     }
//! }
//! if let Some(deadline) = conn.poll_timeout() { /* call conn.handle_timeout(now) at deadline */ }
//! ```
//!
//! Time is always an argument; the connection never reads a clock.

pub mod features;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::error::{StanzaError, StreamError};
use crate::sasl::{SaslCondition, TlsInfo};
use crate::xml::WriteError;

pub use features::{Feature, FeatureRule, Negotiated, Policy, StreamFeatures};

/// Something the host hands to a connection.
#[derive(Clone, Debug)]
pub enum Input<'a> {
    /// Bytes received from the peer (plaintext, or decrypted by the host's
    /// TLS layer), split any way.
    Received(&'a [u8]),
    /// The host finished the TLS handshake it was asked to start
    /// (`StartTls` event). Carries what SASL needs to know about it.
    TlsEstablished(TlsInfo),
    /// The peer closed the transport (TCP FIN or TLS close_notify).
    Eof,
}

/// Something a connection hands to the host, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output<E> {
    /// Bytes to send to the peer (through TLS when it is up).
    Transmit(Bytes),
    /// An event for the host.
    Event(E),
}

/// What the output buffer starts with after it was given back.
const INITIAL_OUTPUT_CAPACITY: usize = 512;

/// The ordered output queue. Consecutive writes are merged into one
/// `Transmit`, and bytes never overtake an event queued before them.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) struct Outbox<E> {
    queue: VecDeque<Output<E>>,
    pending: BytesMut,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            pending: BytesMut::new(),
        }
    }
}

#[allow(dead_code)]
impl<E> Outbox<E> {
    /// The buffer to append bytes to.
    pub(crate) fn bytes(&mut self) -> &mut BytesMut {
        if self.pending.capacity() == 0 {
            // Most writes (a stanza, a SASL step) fit: one allocation.
            self.pending.reserve(INITIAL_OUTPUT_CAPACITY);
        }
        &mut self.pending
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let bytes = self.pending.split().freeze();
            self.queue.push_back(Output::Transmit(bytes));
        }
    }

    pub(crate) fn event(&mut self, event: E) {
        self.flush();
        self.queue.push_back(Output::Event(event));
    }

    pub(crate) fn pop(&mut self) -> Option<Output<E>> {
        if self.queue.is_empty() {
            self.flush();
        }
        let out = self.queue.pop_front();
        if self.queue.is_empty() && self.pending.is_empty() {
            // Nothing waits: hold no memory until the next write (an idle
            // connection is the common case; the bytes handed out keep
            // their own allocation alive only as long as the host needs it).
            self.pending = BytesMut::new();
            self.queue = VecDeque::new();
        }
        out
    }

    /// Whether nothing is waiting for the host.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.pending.is_empty()
    }
}

/// Why a connection ended. Once closed, a connection stays closed and
/// `state()` keeps saying why.
#[derive(Clone, Debug, PartialEq)]
pub enum CloseReason {
    /// Both sides closed the stream with `</stream:stream>`.
    Closed,
    /// The host asked to close and the peer did not answer in time; the
    /// stream is considered closed anyway.
    CloseTimedOut,
    /// The peer sent this stream error.
    PeerStreamError(StreamError),
    /// The peer broke the protocol (or a limit); we sent this stream error.
    ProtocolViolation(StreamError),
    /// The transport ended without a closing tag.
    Eof,
    /// Negotiation did not finish in time (negotiation timeout).
    NegotiationTimeout,
    /// The peer sent nothing for too long (dead-peer detection).
    PeerTimeout,
    /// SASL failed with this condition (client: the server's `<failure/>`
    /// or a server that failed to prove itself; server: retries used up).
    AuthenticationFailed {
        /// The SASL condition.
        condition: SaslCondition,
        /// Details (the server's text, or why the client gave up).
        detail: String,
    },
    /// Resource binding failed (client).
    BindFailed(StanzaError),
    /// Local policy refused to go on, e.g. TLS required but not offered.
    PolicyRefused(String),
    /// The server refused STARTTLS with `<failure/>`.
    TlsRefused,
    /// The host ended the stream with this stream error (e.g. `conflict`
    /// when a session is replaced, `system-shutdown`).
    HostStreamError(StreamError),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Closed => f.write_str("stream closed"),
            CloseReason::CloseTimedOut => f.write_str("peer did not close the stream in time"),
            CloseReason::PeerStreamError(e) => write!(f, "peer sent {e}"),
            CloseReason::ProtocolViolation(e) => write!(f, "peer broke the protocol; we sent {e}"),
            CloseReason::Eof => f.write_str("connection closed without closing the stream"),
            CloseReason::NegotiationTimeout => f.write_str("stream negotiation timed out"),
            CloseReason::PeerTimeout => f.write_str("peer stopped responding"),
            CloseReason::AuthenticationFailed { condition, detail } => {
                write!(f, "authentication failed: {}", condition.name())?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            CloseReason::BindFailed(e) => write!(f, "resource binding failed: {e}"),
            CloseReason::PolicyRefused(why) => write!(f, "refused by local policy: {why}"),
            CloseReason::TlsRefused => f.write_str("server refused STARTTLS"),
            CloseReason::HostStreamError(e) => write!(f, "closed with {e}"),
        }
    }
}

/// The host called the API in a way the connection's state does not allow.
/// The connection is unchanged.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection is closed (or closing) and accepts no more stanzas.
    Closed,
    /// Stanzas can be sent only once the stream is ready (bound).
    NotReady,
    /// No pending request has this id, or it was answered already.
    UnknownRequest(u64),
    /// The answer does not fit the request it was given for.
    WrongAnswer(u64),
    /// TLS was reported established when no STARTTLS was under way.
    UnexpectedTls,
    /// The element cannot be serialized.
    Unwritable(WriteError),
    /// A stanza must be a `message`, `presence` or `iq`.
    NotAStanza,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Closed => f.write_str("connection is closed"),
            UsageError::NotReady => f.write_str("stream is not ready for stanzas yet"),
            UsageError::UnknownRequest(id) => write!(f, "no pending request {id}"),
            UsageError::WrongAnswer(id) => write!(f, "answer does not fit request {id}"),
            UsageError::UnexpectedTls => f.write_str("no STARTTLS under way"),
            UsageError::Unwritable(e) => write!(f, "element cannot be written: {e}"),
            UsageError::NotAStanza => f.write_str("not a message, presence or iq"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Timeouts of a connection. All are driven by the `now` the host passes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the start until the stream is ready for stanzas. Default 60 s.
    pub negotiation: Duration,
    /// After we send `</stream:stream>`, how long to wait for the peer's.
    /// Default 5 s.
    pub close: Duration,
    /// Send a whitespace keepalive after this long without sending anything.
    /// `None` disables it. Default `None`.
    pub keepalive: Option<Duration>,
    /// After this long without receiving anything, probe the peer with an
    /// XEP-0199 ping; if it stays silent for as long again, the connection
    /// closes with [`CloseReason::PeerTimeout`]. `None` disables it.
    /// Default 5 minutes.
    pub dead_peer: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            negotiation: Duration::from_secs(60),
            close: Duration::from_secs(5),
            keepalive: None,
            dead_peer: Some(Duration::from_secs(300)),
        }
    }
}

/// XEP-0199 ping namespace.
pub const NS_PING: &str = "urn:xmpp:ping";
