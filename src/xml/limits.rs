//! Resource limits of the stream reader.

use std::fmt;

/// Limits the [`StreamReader`](super::StreamReader) enforces while it reads,
/// so that a peer can never make it hold more than they allow.
///
/// Exceeding one is a fatal `policy-violation` stream error
/// ([`XmlError::LimitExceeded`](super::XmlError::LimitExceeded)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest first-level element (stanza or nonza), in bytes of input from
    /// its `<` to its final `>`. Default 256 KiB, Prosody's
    /// `c2s_stanza_size_limit`. Hosts lower it before authentication
    /// ([`StreamReader::set_limits`](super::StreamReader::set_limits)).
    pub max_stanza_bytes: usize,
    /// Largest stream header, in bytes from the start of the stream (XML
    /// declaration and whitespace included) to the `>` of `<stream:stream>`.
    /// Default 4 KiB.
    pub max_header_bytes: usize,
    /// Deepest nesting inside a first-level element; the first-level element
    /// itself is depth 1. Default 64.
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    /// Default 64.
    pub max_attributes: usize,
    /// Most elements in one first-level element, itself included. Bounds the
    /// memory a stanza of many tiny elements costs. Default 25 000.
    pub max_elements: usize,
    /// Longest single token: an element or attribute name or an attribute
    /// value. Longer text content is fine (it is read in pieces); only
    /// `max_stanza_bytes` bounds it. Default 64 KiB.
    pub max_token_bytes: usize,
}

impl ReaderLimits {
    /// Prosody's limit for streams that are not authenticated yet (10 000 bytes).
    pub const PRE_AUTH_STANZA_BYTES: usize = 10_000;

    /// The defaults, with `max_stanza_bytes` lowered for a stream that has
    /// not authenticated yet.
    pub fn pre_auth() -> Self {
        Self {
            max_stanza_bytes: Self::PRE_AUTH_STANZA_BYTES,
            ..Self::default()
        }
    }
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_header_bytes: 4 * 1024,
            max_depth: 64,
            max_attributes: 64,
            max_elements: 25_000,
            max_token_bytes: 64 * 1024,
        }
    }
}

/// Which limit of [`ReaderLimits`] was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`ReaderLimits::max_stanza_bytes`].
    StanzaBytes,
    /// [`ReaderLimits::max_header_bytes`].
    HeaderBytes,
    /// [`ReaderLimits::max_depth`].
    Depth,
    /// [`ReaderLimits::max_attributes`].
    Attributes,
    /// [`ReaderLimits::max_elements`].
    Elements,
    /// [`ReaderLimits::max_token_bytes`].
    TokenBytes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::StanzaBytes => "stanza size",
            Limit::HeaderBytes => "stream header size",
            Limit::Depth => "nesting depth",
            Limit::Attributes => "attributes per element",
            Limit::Elements => "elements per stanza",
            Limit::TokenBytes => "name or attribute value length",
        })
    }
}
