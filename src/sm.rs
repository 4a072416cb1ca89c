//! Stream management (XEP-0198, `urn:xmpp:sm:3`): the elements, the
//! counters and the queue of unacknowledged stanzas that both roles use.
//!
//! The connections ([`crate::client::ClientConnection`],
//! [`crate::server::ServerConnection`]) run the protocol; this module holds
//! the parts that are the same on both sides:
//!
//! * [`SmNonza`]: `<enable/>`, `<enabled/>`, `<r/>`, `<a/>`, `<resume/>`,
//!   `<resumed/>`, `<failed/>`, parsed strictly and serialized.
//! * [`SmSession`]: the two counters (stanzas handled from the peer, stanzas
//!   sent to it), the unacknowledged queue, and the ack-request policy.
//!   Counters are `u32` and wrap at 2³² (XEP-0198 §4); only stanzas count.
//! * [`Disposition`]: what a server does with a stanza that was never
//!   acknowledged when a session is finally destroyed (XEP-0198 §4,
//!   RFC 6121 §8.5).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use std::fmt;
use std::time::{Duration, Instant};

use minidom::Element;
use minidom::rxml::Namespace;

use crate::error::{StanzaErrorCondition, StreamError, StreamErrorCondition, ncname};
use crate::ns;
use crate::stanza::{IqType, MessageType, Stanza, StanzaKind};
use crate::xml::{StreamWriter, WriteError};

/// The XEP-0198 namespace.
pub use crate::stream::features::NS_SM;

/// Longest `id`/`previd` accepted from the peer (ours are 24 characters).
pub const MAX_ID_LEN: usize = 256;

/// A stream management element (all are nonzas: they are never counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmNonza {
    /// `<enable/>`: turn stream management on (client → server).
    Enable {
        /// `resume='true'`: the client asks for a resumable session.
        resume: bool,
        /// The client's preferred resumption timeout in seconds.
        max: Option<u32>,
    },
    /// `<enabled/>`: stream management is on (server → client).
    Enabled {
        /// The resumption id (present when resumable).
        id: Option<String>,
        /// The session can be resumed.
        resume: bool,
        /// The server's maximum resumption time in seconds.
        max: Option<u32>,
        /// Where the client should reconnect to resume (`host:port`).
        location: Option<String>,
    },
    /// `<r/>`: please acknowledge.
    Request,
    /// `<a h='…'/>`: the sender has handled `h` stanzas (mod 2³²).
    Ack {
        /// Stanzas handled.
        h: u32,
    },
    /// `<resume previd='…' h='…'/>` (client → server).
    Resume {
        /// The resumption id of the old session.
        previd: String,
        /// Stanzas the client handled from the server in the old session.
        h: u32,
    },
    /// `<resumed previd='…' h='…'/>` (server → client).
    Resumed {
        /// The resumption id of the old session.
        previd: String,
        /// Stanzas the server handled from the client in the old session.
        h: u32,
    },
    /// `<failed/>`: enable or resume refused.
    Failed {
        /// Stanzas the sender handled, when it tells (on a failed resume).
        h: Option<u32>,
        /// Why (a stanza error condition).
        condition: StanzaErrorCondition,
    },
}

/// Why an element is not a valid stream management element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmParseError {
    /// Not in the `urn:xmpp:sm:3` namespace.
    WrongNamespace,
    /// An element name XEP-0198 does not define.
    UnknownElement(String),
    /// A required attribute is missing.
    MissingAttribute(&'static str),
    /// An attribute has a value that is not allowed.
    BadAttribute(&'static str),
}

impl fmt::Display for SmParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmParseError::WrongNamespace => f.write_str("not a stream management element"),
            SmParseError::UnknownElement(name) => write!(f, "unknown element <{name}/>"),
            SmParseError::MissingAttribute(a) => write!(f, "missing attribute '{a}'"),
            SmParseError::BadAttribute(a) => write!(f, "bad value of attribute '{a}'"),
        }
    }
}

impl std::error::Error for SmParseError {}

/// A decimal u32 as XEP-0198 writes counters: digits only, no sign, no
/// overflow.
fn parse_u32(value: &str, name: &'static str) -> Result<u32, SmParseError> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SmParseError::BadAttribute(name));
    }
    value.parse().map_err(|_| SmParseError::BadAttribute(name))
}

fn required_u32(el: &Element, name: &'static str) -> Result<u32, SmParseError> {
    parse_u32(
        el.attr(name).ok_or(SmParseError::MissingAttribute(name))?,
        name,
    )
}

fn optional_u32(el: &Element, name: &'static str) -> Result<Option<u32>, SmParseError> {
    el.attr(name).map(|v| parse_u32(v, name)).transpose()
}

/// xs:boolean: `true`/`1`/`false`/`0`.
fn parse_bool(el: &Element, name: &'static str) -> Result<bool, SmParseError> {
    match el.attr(name) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(SmParseError::BadAttribute(name)),
    }
}

fn id_attr(el: &Element, name: &'static str) -> Result<Option<String>, SmParseError> {
    match el.attr(name) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.len() > MAX_ID_LEN => Err(SmParseError::BadAttribute(name)),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

impl SmNonza {
    /// Parses a first-level element in the `urn:xmpp:sm:3` namespace.
    pub fn from_element(el: &Element) -> Result<Self, SmParseError> {
        if el.ns() != NS_SM {
            return Err(SmParseError::WrongNamespace);
        }
        Ok(match el.name() {
            "enable" => SmNonza::Enable {
                resume: parse_bool(el, "resume")?,
                max: optional_u32(el, "max")?,
            },
            "enabled" => SmNonza::Enabled {
                id: id_attr(el, "id")?,
                resume: parse_bool(el, "resume")?,
                max: optional_u32(el, "max")?,
                location: el.attr("location").map(str::to_owned),
            },
            "r" => SmNonza::Request,
            "a" => SmNonza::Ack {
                h: required_u32(el, "h")?,
            },
            "resume" | "resumed" => {
                let previd =
                    id_attr(el, "previd")?.ok_or(SmParseError::MissingAttribute("previd"))?;
                let h = required_u32(el, "h")?;
                if el.name() == "resume" {
                    SmNonza::Resume { previd, h }
                } else {
                    SmNonza::Resumed { previd, h }
                }
            }
            "failed" => SmNonza::Failed {
                h: optional_u32(el, "h")?,
                condition: el
                    .children()
                    .filter(|c| c.ns() == ns::XMPP_STANZAS)
                    .find_map(|c| c.name().parse::<StanzaErrorCondition>().ok())
                    .unwrap_or(StanzaErrorCondition::UndefinedCondition),
            },
            other => return Err(SmParseError::UnknownElement(other.to_owned())),
        })
    }

    /// Serializes to an element in the `urn:xmpp:sm:3` namespace.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare(self.name(), NS_SM);
        match self {
            SmNonza::Enable { resume, max } => {
                set(&mut el, "resume", resume.then_some("true"));
                set(&mut el, "max", max.map(|m| m.to_string()).as_deref());
            }
            SmNonza::Enabled {
                id,
                resume,
                max,
                location,
            } => {
                set(&mut el, "id", id.as_deref());
                set(&mut el, "resume", resume.then_some("true"));
                set(&mut el, "max", max.map(|m| m.to_string()).as_deref());
                set(&mut el, "location", location.as_deref());
            }
            SmNonza::Request => {}
            SmNonza::Ack { h } => set(&mut el, "h", Some(&h.to_string())),
            SmNonza::Resume { previd, h } | SmNonza::Resumed { previd, h } => {
                set(&mut el, "previd", Some(previd));
                set(&mut el, "h", Some(&h.to_string()));
            }
            SmNonza::Failed { h, condition } => {
                set(&mut el, "h", h.map(|h| h.to_string()).as_deref());
                el.append_child(Element::bare(condition.name(), ns::XMPP_STANZAS));
            }
        }
        el
    }

    /// The element's local name.
    pub fn name(&self) -> &'static str {
        match self {
            SmNonza::Enable { .. } => "enable",
            SmNonza::Enabled { .. } => "enabled",
            SmNonza::Request => "r",
            SmNonza::Ack { .. } => "a",
            SmNonza::Resume { .. } => "resume",
            SmNonza::Resumed { .. } => "resumed",
            SmNonza::Failed { .. } => "failed",
        }
    }
}

fn set(el: &mut Element, name: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        el.set_attr(Namespace::NONE, ncname(name), value);
    }
}

/// The peer acknowledged more stanzas than were sent, or its count went
/// backwards (XEP-0198 §4: `handled-count-too-high`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckError {
    /// The `h` the peer sent.
    pub h: u32,
    /// How many stanzas we had sent (our outbound counter).
    pub sent: u32,
}

impl AckError {
    /// The stream error XEP-0198 §4 prescribes: `undefined-condition` with
    /// `<handled-count-too-high h='…' send-count='…'/>`.
    pub fn to_stream_error(self) -> StreamError {
        let mut error =
            StreamError::new(StreamErrorCondition::UndefinedCondition).with_text(format!(
                "acknowledged {} stanzas but {} were sent",
                self.h, self.sent
            ));
        let mut condition = Element::bare("handled-count-too-high", NS_SM);
        set(&mut condition, "h", Some(&self.h.to_string()));
        set(&mut condition, "send-count", Some(&self.sent.to_string()));
        error.application = Some(Box::new(condition));
        error
    }
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer acknowledged h={} but the send count is {}",
            self.h, self.sent
        )
    }
}

impl std::error::Error for AckError {}

/// When to ask the peer for an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckPolicy {
    /// Send `<r/>` once this many stanzas are unacknowledged (and no
    /// request is outstanding). At least 1.
    pub every: u32,
    /// Send `<r/>` when a stanza has been unacknowledged this long.
    pub after: Duration,
}

impl Default for AckPolicy {
    fn default() -> Self {
        AckPolicy {
            every: 5,
            after: Duration::from_secs(10),
        }
    }
}

/// The stream management state of one session, for either role: the
/// counters of both directions and the stanzas sent but not yet
/// acknowledged, oldest first. `T` is how a stanza is kept: the client
/// keeps [`Stanza`]s (it hands them back to its host on every
/// acknowledgement); the server keeps [`SentStanza`]s, the bytes it wrote,
/// ten times smaller than a parsed element, parsed again only when a stanza
/// must be handed back.
///
/// Invariant: `outbound == acked + unacked.len()` (mod 2³²).
#[derive(Clone, Debug, PartialEq)]
pub struct SmSession<T = Stanza> {
    inbound: u32,
    outbound: u32,
    acked: u32,
    unacked: VecDeque<T>,
    /// An `<r/>` was sent and no `<a/>` has come since.
    request_outstanding: bool,
    /// Stanzas sent since the last `<r/>`.
    since_request: u32,
    /// When the oldest stanza not covered by a request was sent.
    waiting_since: Option<Instant>,
}

impl<T> Default for SmSession<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SmSession<T> {
    /// Counters at zero, nothing unacknowledged.
    pub fn new() -> Self {
        Self::starting_at(0, 0)
    }

    /// Counters starting at the given values (for tests of the wrap at
    /// 2³², and for restoring a session).
    pub fn starting_at(inbound: u32, outbound: u32) -> Self {
        SmSession {
            inbound,
            outbound,
            acked: outbound,
            unacked: VecDeque::new(),
            request_outstanding: false,
            since_request: 0,
            waiting_since: None,
        }
    }

    /// Stanzas handled from the peer (the `h` we report), mod 2³².
    pub fn inbound(&self) -> u32 {
        self.inbound
    }

    /// Stanzas sent to the peer, mod 2³².
    pub fn outbound(&self) -> u32 {
        self.outbound
    }

    /// The last `h` the peer acknowledged.
    pub fn acked(&self) -> u32 {
        self.acked
    }

    /// The stanzas sent and not yet acknowledged, oldest first.
    pub fn unacked(&self) -> impl ExactSizeIterator<Item = &T> {
        self.unacked.iter()
    }

    /// How many stanzas are unacknowledged.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Counts one stanza from the peer as handled.
    pub fn handled_inbound(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }

    /// Records a stanza as sent: it counts and waits for its ack.
    pub fn sent(&mut self, now: Instant, stanza: T) {
        self.outbound = self.outbound.wrapping_add(1);
        self.unacked.push_back(stanza);
        self.since_request = self.since_request.saturating_add(1);
        self.waiting_since.get_or_insert(now);
    }

    /// Applies the peer's `h`: returns the stanzas it acknowledges, oldest
    /// first. An `h` beyond what was sent (or going backwards) is an
    /// [`AckError`] and changes nothing.
    pub fn acknowledge(&mut self, h: u32) -> Result<Vec<T>, AckError> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.unacked.len() {
            return Err(AckError {
                h,
                sent: self.outbound,
            });
        }
        self.acked = h;
        self.request_outstanding = false;
        Ok(self.unacked.drain(..newly).collect())
    }

    /// Like [`acknowledge`](Self::acknowledge) for an `<a/>` received at
    /// `now`: also restarts the ack-request timer for what is left.
    pub fn acknowledge_at(&mut self, now: Instant, h: u32) -> Result<Vec<T>, AckError> {
        let acked = self.acknowledge(h)?;
        self.since_request = 0;
        self.waiting_since = (!self.unacked.is_empty()).then_some(now);
        Ok(acked)
    }

    /// Whether the policy wants an `<r/>` now (after a send): enough
    /// stanzas unacknowledged and no request outstanding.
    pub fn wants_request(&self, policy: &AckPolicy) -> bool {
        !self.request_outstanding && self.since_request >= policy.every.max(1)
    }

    /// When an `<r/>` is due by time, if one is.
    pub fn request_deadline(&self, policy: &AckPolicy) -> Option<Instant> {
        if self.request_outstanding {
            return None;
        }
        self.waiting_since.and_then(|t| t.checked_add(policy.after))
    }

    /// Notes that an `<r/>` was sent.
    pub fn requested(&mut self) {
        self.request_outstanding = true;
        self.since_request = 0;
        self.waiting_since = None;
    }

    /// Takes every unacknowledged stanza out (the session is over); the
    /// counters then say they were all acknowledged.
    pub fn take_unacked(&mut self) -> Vec<T> {
        self.acked = self.outbound;
        self.waiting_since = None;
        self.unacked.drain(..).collect()
    }

    /// Prepares for retransmission on a resumed stream: the unacknowledged
    /// stanzas keep their places in the count (they are sent again, the
    /// outbound counter does not move) and a fresh ack request is due.
    pub fn resend(&mut self, now: Instant) -> impl Iterator<Item = &T> {
        self.request_outstanding = false;
        self.since_request = self.unacked.len().try_into().unwrap_or(u32::MAX);
        self.waiting_since = (!self.unacked.is_empty()).then_some(now);
        self.unacked.iter()
    }

    /// Appends a stanza for a detached session: it was never written, but
    /// it is queued exactly like a sent, unacknowledged one, so a resume
    /// delivers it and an expiry hands it back.
    pub fn queue(&mut self, stanza: T) {
        self.outbound = self.outbound.wrapping_add(1);
        self.unacked.push_back(stanza);
    }
}

/// A stanza as it was written on a stream: its bytes (without the content
/// namespace, which the stream declares). What a server keeps until the
/// client acknowledges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentStanza {
    bytes: Bytes,
    content_namespace: &'static str,
}

impl SentStanza {
    /// Keeps `bytes`, one stanza as written on a stream whose content
    /// namespace is `content_namespace`.
    pub fn new(bytes: Bytes, content_namespace: &'static str) -> Self {
        SentStanza {
            bytes,
            content_namespace,
        }
    }

    /// Serializes `stanza` (in `content_namespace`) as a stream writer
    /// would.
    pub fn write(stanza: &Stanza, content_namespace: &'static str) -> Result<Self, WriteError> {
        let mut out = BytesMut::new();
        StreamWriter::new(content_namespace).write_element(stanza.element(), &mut out)?;
        Ok(SentStanza::new(out.freeze(), content_namespace))
    }

    /// The bytes, to write again.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The stanza, parsed again. `None` only if the bytes are not one
    /// stanza (they always are when they come from this crate's writer).
    pub fn to_stanza(&self) -> Option<Stanza> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        let wrapped = format!("<w xmlns='{}'>{text}</w>", self.content_namespace);
        let wrapper: Element = wrapped.parse().ok()?;
        let element = wrapper.children().next()?.clone();
        Stanza::from_element(element, self.content_namespace).ok()
    }
}

/// What a server does with a stanza it sent to a client that never
/// acknowledged it, once the session is destroyed (resumption timed out or
/// was refused): XEP-0198 §4 and RFC 6121 §8.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Route it again as if it had just arrived for the user's bare JID:
    /// another resource, or offline storage, or the bounce the router
    /// chooses then. (A `message` of type normal or chat.)
    Reroute,
    /// Bounce it to the sender with this condition (an `iq` get/set: the
    /// requester must not wait forever).
    Bounce(StanzaErrorCondition),
    /// Drop it (presence, which is state; groupchat and headline messages;
    /// iq results; errors, which are never bounced).
    Drop,
}

impl Disposition {
    /// The disposition of one unacknowledged stanza.
    pub fn of(stanza: &Stanza) -> Disposition {
        if stanza.is_error() {
            return Disposition::Drop;
        }
        match stanza.kind() {
            StanzaKind::Message => match stanza.message_type() {
                Some(MessageType::Groupchat | MessageType::Headline | MessageType::Error) => {
                    Disposition::Drop
                }
                _ => Disposition::Reroute,
            },
            StanzaKind::Iq => match stanza.iq_type() {
                Some(Ok(IqType::Get | IqType::Set)) => {
                    Disposition::Bounce(StanzaErrorCondition::ServiceUnavailable)
                }
                _ => Disposition::Drop,
            },
            StanzaKind::Presence => Disposition::Drop,
        }
    }
}
