//! The push reader: bytes in, [`Frame`]s out.

use std::fmt;

use bytes::{Buf, BytesMut};
use minidom::Element;
use rxml::error::EndOrError;

use rxml::{AttrMap, Namespace, NcName, Parse, RawEvent, RawParser, WithOptions};

use super::header::StreamHeader;
use super::limits::{Limit, ReaderLimits};
use crate::error::StreamErrorCondition;
use crate::ns;

/// One unit of an XMPP stream, in the order it arrived.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// The stream header `<stream:stream …>` was read.
    StreamOpen(StreamHeader),
    /// A complete first-level element: a stanza (`message`, `presence`,
    /// `iq`) or a nonza (`stream:features`, SASL, STARTTLS, …).
    Element(Element),
    /// Whitespace between first-level elements (a keepalive, RFC 6120
    /// §4.6.1). One frame per run of whitespace, reported at its first byte,
    /// so a lone keepalive is seen at once whatever the chunking.
    Whitespace,
    /// The closing `</stream:stream>` was read. The reader reads nothing
    /// after it.
    StreamClose,
}

/// Why the reader failed. Every error is fatal and sticky: the reader
/// returns it again on every later call. [`XmlError::condition`] gives the
/// stream error to send to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlError {
    /// The input is not well-formed XML (or not namespace-well-formed).
    NotWellFormed(String),
    /// A construct restricted XML forbids (RFC 6120 §11.1): a comment,
    /// processing instruction, DTD or entity reference.
    RestrictedXml(&'static str),
    /// The input is not UTF-8 (RFC 6120 §11.6).
    UnsupportedEncoding(&'static str),
    /// A namespace prefix that is not declared, or a stream root without
    /// the prefix of the stream namespace.
    BadNamespacePrefix(String),
    /// The stream root is in the wrong namespace.
    InvalidNamespace(String),
    /// Well-formed XML that is not an XMPP stream (e.g. a first-level
    /// element without a namespace, or a root that is not `stream`).
    InvalidXml(String),
    /// Character data between first-level elements that is not whitespace.
    BadFormat(&'static str),
    /// The stream header's `version` is not `MAJOR.MINOR`.
    UnsupportedVersion(String),
    /// A [`ReaderLimits`] bound was exceeded.
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: usize,
    },
}

impl XmlError {
    /// The stream error condition RFC 6120 prescribes for this error.
    pub fn condition(&self) -> StreamErrorCondition {
        match self {
            XmlError::NotWellFormed(_) => StreamErrorCondition::NotWellFormed,
            XmlError::RestrictedXml(_) => StreamErrorCondition::RestrictedXml,
            XmlError::UnsupportedEncoding(_) => StreamErrorCondition::UnsupportedEncoding,
            XmlError::BadNamespacePrefix(_) => StreamErrorCondition::BadNamespacePrefix,
            XmlError::InvalidNamespace(_) => StreamErrorCondition::InvalidNamespace,
            XmlError::InvalidXml(_) => StreamErrorCondition::InvalidXml,
            XmlError::BadFormat(_) => StreamErrorCondition::BadFormat,
            XmlError::UnsupportedVersion(_) => StreamErrorCondition::UnsupportedVersion,
            XmlError::LimitExceeded { .. } => StreamErrorCondition::PolicyViolation,
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlError::NotWellFormed(d) => write!(f, "not well-formed: {d}"),
            XmlError::RestrictedXml(d) => write!(f, "restricted XML: {d} not allowed"),
            XmlError::UnsupportedEncoding(d) => write!(f, "unsupported encoding: {d}"),
            XmlError::BadNamespacePrefix(d) => write!(f, "bad namespace prefix: {d}"),
            XmlError::InvalidNamespace(d) => write!(f, "invalid namespace: {d}"),
            XmlError::InvalidXml(d) => write!(f, "invalid XML: {d}"),
            XmlError::BadFormat(d) => write!(f, "bad format: {d}"),
            XmlError::UnsupportedVersion(v) => write!(f, "malformed stream version {v:?}"),
            XmlError::LimitExceeded { limit, max } => write!(f, "{limit} limit of {max} exceeded"),
        }
    }
}

impl std::error::Error for XmlError {}

impl XmlError {
    fn from_rxml(e: rxml::Error) -> Self {
        use rxml::Error as E;
        match e {
            E::RestrictedXml("only utf-8 encoding is allowed") => {
                XmlError::UnsupportedEncoding("XML declaration names an encoding other than UTF-8")
            }
            E::RestrictedXml("long name or reference") | E::RestrictedXml("event too long") => {
                // Turned into LimitExceeded by the caller, which knows the limit.
                XmlError::LimitExceeded {
                    limit: Limit::TokenBytes,
                    max: 0,
                }
            }
            E::RestrictedXml(what) => XmlError::RestrictedXml(what),
            E::UndeclaredEntity => XmlError::RestrictedXml("entity reference"),
            // rxml reports `<!` followed by anything but `--` or `[CDATA[`
            // this way: that is a DOCTYPE or other markup declaration.
            E::InvalidSyntax(s) if s.contains("cdata or comment section start") => {
                XmlError::RestrictedXml("document type declaration")
            }
            E::UndeclaredNamespacePrefix(_) => {
                XmlError::BadNamespacePrefix("undeclared namespace prefix".to_owned())
            }
            other => XmlError::NotWellFormed(other.to_string()),
        }
    }
}

/// What [`StreamReader::skip_keepalive`] found.
enum Skipped {
    /// The first whitespace of a run.
    Whitespace,
    /// The input is used up.
    NeedMore,
    /// Markup follows.
    Markup,
}

/// A namespace declaration in scope: `xmlns[:prefix]='ns'` on the element
/// at `level`.
#[derive(Debug)]
struct Decl {
    level: usize,
    prefix: Option<NcName>,
    ns: String,
}

/// An element head whose attributes are still arriving.
#[derive(Debug)]
struct PendingHead {
    prefix: Option<NcName>,
    local: NcName,
    attrs: Vec<(Option<NcName>, NcName, String)>,
}

#[derive(Clone, Debug)]
enum State {
    /// Waiting for (or reading) a stream header.
    BeforeHeader,
    /// Inside the stream.
    Open,
    /// `</stream:stream>` was read.
    Closed,
    /// A fatal error; sticky.
    Failed(XmlError),
}

/// A push reader for one XMPP stream (and its restarts).
///
/// Hand it bytes with [`feed`](Self::feed) in any chunking, then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)` (it needs
/// more bytes). The frames are the same however the input was split.
///
/// ```
/// use xmpp_sansio::xml::{Frame, StreamReader, ReaderLimits};
///
/// let mut reader = StreamReader::new(ReaderLimits::default());
/// reader.feed(b"<stream:stream xmlns='jabber:client' \
///     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>\
///     <message to='juliet@example.org'><body>hi</bo");
/// let Some(Frame::StreamOpen(header)) = reader.next_frame()? else { panic!() };
/// assert_eq!(header.to.as_deref(), Some("example.org"));
/// assert_eq!(reader.next_frame()?, None); // the message is not complete yet
/// reader.feed(b"dy></message>");
/// let Some(Frame::Element(message)) = reader.next_frame()? else { panic!() };
/// assert_eq!(message.name(), "message");
/// assert_eq!(message.ns(), "jabber:client");
/// # Ok::<(), xmpp_sansio::xml::XmlError>(())
/// ```
///
/// Restarts: after a STARTTLS `<proceed/>` frame, [`take_unparsed`](Self::take_unparsed)
/// returns the bytes after it untouched (they are TLS records) and readies
/// the reader for the stream inside TLS. After SASL `<success/>`,
/// [`reset`](Self::reset) starts a new stream and keeps the bytes already
/// buffered, which belong to it.
#[derive(Debug)]
pub struct StreamReader {
    limits: ReaderLimits,
    /// `None` between first-level elements of an idle stream: a parser is
    /// ~0.3 KiB plus its element stack, and what it knows there (it is
    /// inside the root element, nothing pending) is rebuilt by
    /// [`Self::primed_parser`] when bytes arrive.
    parser: Option<Box<RawParser>>,
    /// The stream root's prefix as written (`stream` in `<stream:stream>`),
    /// for [`Self::primed_parser`].
    root_prefix: Option<NcName>,
    input: BytesMut,
    state: State,
    /// At the start of a document, before the encoding was checked.
    sniffing: bool,
    /// Bytes consumed before the stream header was complete.
    header_bytes: usize,
    /// Open elements, the root included: 1 inside the stream, 2 inside a stanza.
    level: usize,
    scopes: Vec<Decl>,
    pending: Option<PendingHead>,
    /// The elements under construction, the first-level element at the bottom.
    stack: Vec<Element>,
    stanza_bytes: usize,
    stanza_elements: usize,
    last_element_bytes: usize,
    whitespace_reported: bool,
    /// Bytes the parser consumed that no event has accounted for yet (a
    /// token in progress, or a byte of lookahead).
    unreported: usize,
}

impl StreamReader {
    /// A reader waiting for a stream header.
    pub fn new(limits: ReaderLimits) -> Self {
        Self {
            limits,
            parser: Some(Box::new(Self::make_parser(&limits))),
            root_prefix: None,
            input: BytesMut::new(),
            state: State::BeforeHeader,
            sniffing: true,
            header_bytes: 0,
            level: 0,
            scopes: Vec::new(),
            pending: None,
            stack: Vec::new(),
            stanza_bytes: 0,
            stanza_elements: 0,
            last_element_bytes: 0,
            whitespace_reported: false,
            unreported: 0,
        }
    }

    fn make_parser(limits: &ReaderLimits) -> RawParser {
        let options = rxml::Options {
            max_token_length: limits.max_token_bytes.max(1),
            ..Default::default()
        };
        // Text is buffered until its run ends, so a text event never depends
        // on how the input was split. Whitespace between first-level
        // elements never reaches the parser: `skip_keepalive` takes it.
        RawParser::with_options(options)
    }

    /// A parser in the state the stream's parser is in between first-level
    /// elements: inside the root element, at a token boundary. It is fed
    /// the root's start tag (without attributes: this parser checks only
    /// that end tags match) and its two events are dropped.
    fn primed_parser(&self) -> Result<RawParser, XmlError> {
        let mut parser = Self::make_parser(&self.limits);
        let mut root = String::from("<");
        if let Some(prefix) = &self.root_prefix {
            root.push_str(prefix.as_str());
            root.push(':');
        }
        root.push_str("stream>");
        let mut slice = root.as_bytes();
        let mut events = 0;
        loop {
            match parser.parse(&mut slice, false) {
                Ok(Some(_)) => events += 1,
                Ok(None) | Err(EndOrError::NeedMoreData) => break,
                Err(EndOrError::Error(e)) => return Err(XmlError::from_rxml(e)),
            }
        }
        if events != 2 || !slice.is_empty() {
            return Err(XmlError::InvalidXml(
                "cannot resume parsing the stream".to_owned(),
            ));
        }
        Ok(parser)
    }

    /// The limits in force.
    pub fn limits(&self) -> &ReaderLimits {
        &self.limits
    }

    /// Changes the limits. `max_token_bytes` takes effect at the next
    /// stream (restart); the others at once.
    pub fn set_limits(&mut self, limits: ReaderLimits) {
        self.limits = limits;
    }

    /// Appends input bytes. They are parsed by [`next_frame`](Self::next_frame).
    /// After a fatal error or the end of the stream, bytes are dropped.
    pub fn feed(&mut self, data: &[u8]) {
        if matches!(self.state, State::BeforeHeader | State::Open) {
            self.input.extend_from_slice(data);
        }
    }

    /// Bytes fed but not parsed yet.
    pub fn buffered_len(&self) -> usize {
        self.input.len()
    }

    /// Whether the reader is inside a first-level element (a partial
    /// stanza is buffered). An end of input here is an abrupt close.
    pub fn in_element(&self) -> bool {
        self.level >= 2 || (self.level == 1 && self.pending.is_some())
    }

    /// Whether the stream header has been read and the stream is not closed.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The sticky error, if the reader failed.
    pub fn error(&self) -> Option<&XmlError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Size in bytes of the input of the last complete first-level element.
    pub fn last_element_bytes(&self) -> usize {
        self.last_element_bytes
    }

    /// Starts a new stream (RFC 6120 §4.3.3 restart) keeping the buffered
    /// bytes, which belong to the new stream: use it after SASL success.
    /// A failed reader stays failed.
    pub fn reset(&mut self) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.parser = Some(Box::new(Self::make_parser(&self.limits)));
        self.root_prefix = None;
        self.state = State::BeforeHeader;
        self.sniffing = true;
        self.header_bytes = 0;
        self.level = 0;
        self.scopes.clear();
        self.pending = None;
        self.stack.clear();
        self.stanza_bytes = 0;
        self.stanza_elements = 0;
        self.whitespace_reported = false;
        self.unreported = 0;
    }

    /// Returns every byte fed but not parsed, and readies the reader for a
    /// new stream with an empty buffer: use it after STARTTLS `<proceed/>`,
    /// where the following bytes are TLS records for the host's TLS layer.
    ///
    /// Call it right after the frame that ends the plaintext stream; the
    /// reader never parses ahead of the frame it returned.
    pub fn take_unparsed(&mut self) -> BytesMut {
        let rest = std::mem::take(&mut self.input);
        self.reset();
        rest
    }

    /// Parses the next frame. `Ok(None)` means more bytes are needed (or the
    /// stream is closed).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, XmlError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Closed => return Ok(None),
            State::BeforeHeader | State::Open => {}
        }
        match self.parse_next() {
            Ok(frame) => Ok(frame),
            Err(e) => {
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    fn fail(&mut self, e: XmlError) {
        self.state = State::Failed(e);
        self.input = BytesMut::new();
        self.stack = Vec::new();
        self.scopes = Vec::new();
        self.pending = None;
        self.parser = None;
    }

    fn limit(&self, limit: Limit) -> XmlError {
        let max = match limit {
            Limit::StanzaBytes => self.limits.max_stanza_bytes,
            Limit::HeaderBytes => self.limits.max_header_bytes,
            Limit::Depth => self.limits.max_depth,
            Limit::Attributes => self.limits.max_attributes,
            Limit::Elements => self.limits.max_elements,
            Limit::TokenBytes => self.limits.max_token_bytes,
        };
        XmlError::LimitExceeded { limit, max }
    }

    /// Checks the first bytes of a document for encodings other than UTF-8
    /// and drops a UTF-8 byte order mark. Returns false if more bytes are
    /// needed to decide.
    fn sniff_encoding(&mut self) -> Result<bool, XmlError> {
        let b = &self.input[..];
        match b {
            [] => Ok(false),
            [0xFE, 0xFF, ..] | [0xFF, 0xFE, ..] => {
                Err(XmlError::UnsupportedEncoding("UTF-16 byte order mark"))
            }
            [0x00, ..] | [_, 0x00, ..] => Err(XmlError::UnsupportedEncoding("UTF-16 or UTF-32")),
            [0xEF, 0xBB, 0xBF, ..] => {
                self.input.advance(3);
                Ok(true)
            }
            [0xEF] | [0xEF, 0xBB] | [0xFE] | [0xFF] | [_] => Ok(false),
            _ => Ok(true),
        }
    }

    fn parse_next(&mut self) -> Result<Option<Frame>, XmlError> {
        loop {
            if self.sniffing {
                if !self.sniff_encoding()? {
                    return Ok(None);
                }
                self.sniffing = false;
            }
            if self.level == 1 && self.pending.is_none() && self.unreported == 0 {
                match self.skip_keepalive()? {
                    Skipped::Whitespace => return Ok(Some(Frame::Whitespace)),
                    Skipped::NeedMore => {
                        self.release_idle_memory();
                        return Ok(None);
                    }
                    Skipped::Markup => {}
                }
            }
            let parser = match &mut self.parser {
                Some(parser) => parser,
                None => self.parser.insert(Box::new(self.primed_parser()?)),
            };
            let mut slice = &self.input[..];
            let before = slice.len();
            let result = parser.parse(&mut slice, false);
            let consumed = before - slice.len();
            self.input.advance(consumed);
            if matches!(self.state, State::BeforeHeader) {
                self.header_bytes += consumed;
                if self.header_bytes > self.limits.max_header_bytes {
                    return Err(self.limit(Limit::HeaderBytes));
                }
            }
            self.unreported += consumed;
            if let Ok(Some(event)) = &result {
                self.unreported = self.unreported.saturating_sub(event.metrics().len());
            }
            match result {
                Ok(Some(event)) => {
                    if let Some(frame) = self.handle(event)? {
                        return Ok(Some(frame));
                    }
                }
                Ok(None) | Err(EndOrError::NeedMoreData) => {
                    self.release_idle_memory();
                    return Ok(None);
                }
                Err(EndOrError::Error(e)) => {
                    return Err(match XmlError::from_rxml(e) {
                        XmlError::LimitExceeded { limit, .. } => self.limit(limit),
                        other => other,
                    });
                }
            }
        }
    }

    /// Between first-level elements: drops whitespace (reporting the first
    /// of a run as a keepalive) and refuses character data, byte by byte, so
    /// the outcome is the same for every chunking.
    fn skip_keepalive(&mut self) -> Result<Skipped, XmlError> {
        let ws = self
            .input
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        self.input.advance(ws);
        if ws > 0 && !self.whitespace_reported {
            self.whitespace_reported = true;
            return Ok(Skipped::Whitespace);
        }
        match self.input.first() {
            None => Ok(Skipped::NeedMore),
            Some(b'<') => Ok(Skipped::Markup),
            Some(_) => Err(XmlError::BadFormat(
                "character data between first-level elements",
            )),
        }
    }

    /// Between first-level elements with no input left: gives back every
    /// buffer and the parser, so an idle stream holds only the root's
    /// namespace declarations. The next `feed` allocates what it needs.
    fn release_idle_memory(&mut self) {
        if self.level <= 1 && self.input.is_empty() {
            if self.level == 1 && self.pending.is_none() && self.unreported == 0 {
                // At a token boundary inside the root: nothing to keep.
                self.parser = None;
            } else if let Some(parser) = &mut self.parser {
                parser.release_temporaries();
            }
            self.input = BytesMut::new();
            if self.stack.is_empty() {
                self.stack = Vec::new();
            }
            self.scopes.shrink_to_fit();
        }
    }

    fn count_stanza_bytes(&mut self, n: usize) -> Result<(), XmlError> {
        if self.level >= 2 || self.pending.is_some() && self.level == 1 {
            self.stanza_bytes += n;
            if self.stanza_bytes > self.limits.max_stanza_bytes {
                return Err(self.limit(Limit::StanzaBytes));
            }
        }
        Ok(())
    }

    fn handle(&mut self, event: RawEvent) -> Result<Option<Frame>, XmlError> {
        match event {
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(m, (prefix, local)) => {
                if self.level == 1 {
                    self.stanza_bytes = 0;
                    self.stanza_elements = 0;
                }
                if self.level >= 1 {
                    // The new element is at depth `level` inside the stanza.
                    if self.level > self.limits.max_depth {
                        return Err(self.limit(Limit::Depth));
                    }
                    self.stanza_elements += 1;
                    if self.stanza_elements > self.limits.max_elements {
                        return Err(self.limit(Limit::Elements));
                    }
                }
                self.pending = Some(PendingHead {
                    prefix,
                    local,
                    attrs: Vec::new(),
                });
                self.count_stanza_bytes(m.len())?;
                Ok(None)
            }
            RawEvent::Attribute(m, (prefix, local), value) => {
                self.count_stanza_bytes(m.len())?;
                let too_many = self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.attrs.len() >= self.limits.max_attributes);
                if too_many {
                    return Err(self.limit(Limit::Attributes));
                }
                if let Some(head) = self.pending.as_mut() {
                    head.attrs.push((prefix, local, value));
                }
                Ok(None)
            }
            RawEvent::ElementHeadClose(m) => {
                self.count_stanza_bytes(m.len())?;
                let Some(head) = self.pending.take() else {
                    return Err(XmlError::NotWellFormed("element head without start".into()));
                };
                if self.level == 0 {
                    let header = self.open_stream(head)?;
                    self.level = 1;
                    self.state = State::Open;
                    self.whitespace_reported = false;
                    return Ok(Some(Frame::StreamOpen(header)));
                }
                let element = self.open_element(head)?;
                self.stack.push(element);
                self.level += 1;
                Ok(None)
            }
            RawEvent::ElementFoot(m) => {
                self.count_stanza_bytes(m.len())?;
                let level = self.level;
                while self.scopes.last().is_some_and(|d| d.level == level) {
                    self.scopes.pop();
                }
                self.level -= 1;
                if self.level == 0 {
                    self.state = State::Closed;
                    self.input = BytesMut::new();
                    return Ok(Some(Frame::StreamClose));
                }
                let Some(element) = self.stack.pop() else {
                    return Err(XmlError::NotWellFormed("unbalanced end tag".into()));
                };
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(element);
                        Ok(None)
                    }
                    None => {
                        self.whitespace_reported = false;
                        self.last_element_bytes = self.stanza_bytes;
                        Ok(Some(Frame::Element(element)))
                    }
                }
            }
            RawEvent::Text(m, text) => {
                if self.level == 1 {
                    if !text
                        .bytes()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                    {
                        return Err(XmlError::BadFormat(
                            "character data between first-level elements",
                        ));
                    }
                    if self.whitespace_reported {
                        return Ok(None);
                    }
                    self.whitespace_reported = true;
                    return Ok(Some(Frame::Whitespace));
                }
                self.count_stanza_bytes(m.len())?;
                if let Some(top) = self.stack.last_mut() {
                    top.append_text(text);
                }
                Ok(None)
            }
        }
    }

    /// Records the namespace declarations of `head` at `level` and returns
    /// its other attributes.
    fn declare(
        &mut self,
        level: usize,
        attrs: Vec<(Option<NcName>, NcName, String)>,
    ) -> Vec<(Option<NcName>, NcName, String)> {
        let mut rest = Vec::with_capacity(attrs.len());
        for (prefix, local, mut value) in attrs {
            if level == 1 {
                // The root's declarations live as long as the stream.
                value.shrink_to_fit();
            }
            match &prefix {
                None if local.as_str() == "xmlns" => self.scopes.push(Decl {
                    level,
                    prefix: None,
                    ns: value,
                }),
                Some(p) if p.as_str() == "xmlns" => self.scopes.push(Decl {
                    level,
                    prefix: Some(local),
                    ns: value,
                }),
                _ => rest.push((prefix, local, value)),
            }
        }
        rest
    }

    /// The namespace bound to `prefix` (`None`: the default namespace, which
    /// is "no namespace" when undeclared).
    fn resolve(&self, prefix: Option<&NcName>) -> Result<&str, XmlError> {
        match prefix {
            Some(p) if p.as_str() == "xml" => Ok(ns::XML),
            _ => match self
                .scopes
                .iter()
                .rev()
                .find(|d| d.prefix.as_ref() == prefix)
            {
                Some(d) => Ok(&d.ns),
                None if prefix.is_none() => Ok(""),
                None => Err(XmlError::BadNamespacePrefix(format!(
                    "undeclared prefix {:?}",
                    prefix.map(NcName::as_str).unwrap_or_default()
                ))),
            },
        }
    }

    fn resolve_attrs(
        &self,
        attrs: Vec<(Option<NcName>, NcName, String)>,
    ) -> Result<AttrMap, XmlError> {
        let mut map = AttrMap::new();
        for (prefix, local, value) in attrs {
            let namespace = match prefix {
                None => Namespace::NONE,
                Some(p) => Namespace::from(self.resolve(Some(&p))?.to_owned()),
            };
            if map.insert(namespace, local, value).is_some() {
                return Err(XmlError::NotWellFormed("duplicate attribute".into()));
            }
        }
        Ok(map)
    }

    fn open_element(&mut self, head: PendingHead) -> Result<Element, XmlError> {
        let level = self.level + 1;
        let attrs = self.declare(level, head.attrs);
        let namespace = self.resolve(head.prefix.as_ref())?;
        if namespace.is_empty() && self.level == 1 {
            return Err(XmlError::InvalidXml(format!(
                "first-level element <{}> has no namespace",
                head.local.as_str()
            )));
        }
        let mut element = Element::bare(head.local.as_str(), namespace);
        *element.attrs_mut() = self.resolve_attrs(attrs)?;
        Ok(element)
    }

    fn open_stream(&mut self, head: PendingHead) -> Result<StreamHeader, XmlError> {
        self.root_prefix.clone_from(&head.prefix);
        let attrs = self.declare(1, head.attrs);
        let namespace = self.resolve(head.prefix.as_ref())?;
        if namespace != ns::STREAMS {
            return Err(match head.prefix {
                None => XmlError::BadNamespacePrefix(format!(
                    "stream root <{}> in namespace {namespace:?} has no prefix for {}",
                    head.local.as_str(),
                    ns::STREAMS
                )),
                Some(_) => {
                    XmlError::InvalidNamespace(format!("stream root in namespace {namespace:?}"))
                }
            });
        }
        if head.local.as_str() != "stream" {
            return Err(XmlError::InvalidXml(format!(
                "stream root is <{}>, not <stream>",
                head.local.as_str()
            )));
        }
        let attrs = self.resolve_attrs(attrs)?;
        let get = |name: &str| attrs.get(Namespace::none(), name).cloned();
        let version = match attrs.get(Namespace::none(), "version") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| XmlError::UnsupportedVersion(v.clone()))?,
            ),
        };
        let stream_prefix = head.prefix.as_ref().map(|p| p.as_str().to_owned());
        let mut header = StreamHeader {
            to: get("to"),
            from: get("from"),
            id: get("id"),
            version,
            lang: attrs.get(Namespace::xml(), "lang").cloned(),
            content_namespace: None,
            stream_prefix: stream_prefix.clone(),
            namespaces: Vec::new(),
        };
        for decl in &self.scopes {
            match &decl.prefix {
                None if !decl.ns.is_empty() => header.content_namespace = Some(decl.ns.clone()),
                None => header.content_namespace = None,
                Some(p) if Some(p.as_str()) != stream_prefix.as_deref() => {
                    header
                        .namespaces
                        .push((p.as_str().to_owned(), decl.ns.clone()));
                }
                Some(_) => {}
            }
        }
        Ok(header)
    }
}
