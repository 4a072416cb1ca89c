//! The writer: stream header, elements and the close into a `BytesMut`.

use std::fmt;

use bytes::{BufMut, BytesMut};
use minidom::{Element, Node};

use super::header::StreamHeader;
use crate::ns;

/// Serializes a stream: header, first-level elements, whitespace and close.
///
/// Elements in the stream's content namespace (`jabber:client` on a client
/// stream) are written without a redundant `xmlns`; elements in the stream
/// namespace use the `stream:` prefix the header declares; any other
/// namespace is declared where it starts. Text and attribute values are
/// escaped so that reading the output gives back the same elements.
#[derive(Clone, Debug)]
pub struct StreamWriter {
    content_namespace: String,
}

/// An element that cannot be written as XML 1.0.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// An element or attribute name that is not an XML NCName.
    InvalidName(String),
    /// A character that XML 1.0 does not allow (e.g. U+0000) in text or an
    /// attribute value.
    InvalidChar(char),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::InvalidName(n) => write!(f, "{n:?} is not a valid XML name"),
            WriteError::InvalidChar(c) => {
                write!(f, "character U+{:04X} is not allowed in XML", *c as u32)
            }
        }
    }
}

impl std::error::Error for WriteError {}

impl Default for StreamWriter {
    fn default() -> Self {
        Self::new(ns::JABBER_CLIENT)
    }
}

impl StreamWriter {
    /// A writer for a stream whose content namespace is `content_namespace`.
    pub fn new(content_namespace: &str) -> Self {
        Self {
            content_namespace: content_namespace.to_owned(),
        }
    }

    /// The content namespace elements are written relative to.
    pub fn content_namespace(&self) -> &str {
        &self.content_namespace
    }

    /// Writes `<?xml version='1.0'?>` and the stream header. The header's
    /// content namespace (default `jabber:client`) becomes the writer's. The
    /// stream namespace is always bound to the `stream` prefix.
    pub fn write_header(&mut self, header: &StreamHeader, out: &mut BytesMut) {
        if let Some(content) = &header.content_namespace {
            self.content_namespace.clone_from(content);
        }
        out.put_slice(b"<?xml version='1.0'?><stream:stream xmlns='");
        escape_attr_unchecked(&self.content_namespace, out);
        out.put_slice(b"' xmlns:stream='");
        out.put_slice(ns::STREAMS.as_bytes());
        out.put_u8(b'\'');
        for (prefix, namespace) in &header.namespaces {
            if prefix == "stream" || rxml::strings::validate_ncname(prefix).is_err() {
                continue;
            }
            out.put_slice(b" xmlns:");
            out.put_slice(prefix.as_bytes());
            out.put_slice(b"='");
            escape_attr_unchecked(namespace, out);
            out.put_u8(b'\'');
        }
        let attrs = [
            ("to", header.to.as_deref()),
            ("from", header.from.as_deref()),
            ("id", header.id.as_deref()),
            ("xml:lang", header.lang.as_deref()),
        ];
        for (name, value) in attrs {
            if let Some(value) = value {
                out.put_u8(b' ');
                out.put_slice(name.as_bytes());
                out.put_slice(b"='");
                escape_attr_unchecked(value, out);
                out.put_u8(b'\'');
            }
        }
        if let Some(version) = header.version {
            out.put_slice(format!(" version='{version}'").as_bytes());
        }
        out.put_u8(b'>');
    }

    /// Writes one first-level element. On error nothing is written.
    pub fn write_element(&self, element: &Element, out: &mut BytesMut) -> Result<(), WriteError> {
        let start = out.len();
        let result = write_element(element, &self.content_namespace, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Writes a whitespace keepalive (RFC 6120 §4.6.1).
    pub fn write_whitespace(&self, out: &mut BytesMut) {
        out.put_u8(b' ');
    }

    /// Writes `</stream:stream>`.
    pub fn write_close(&self, out: &mut BytesMut) {
        out.put_slice(b"</stream:stream>");
    }
}

fn check_name(name: &str) -> Result<(), WriteError> {
    rxml::strings::validate_ncname(name).map_err(|_| WriteError::InvalidName(name.to_owned()))
}

fn write_element(el: &Element, default_ns: &str, out: &mut BytesMut) -> Result<(), WriteError> {
    let name = el.name();
    check_name(name)?;
    let namespace = el.ns();
    let prefixed = namespace == ns::STREAMS;
    out.put_u8(b'<');
    if prefixed {
        out.put_slice(b"stream:");
    }
    out.put_slice(name.as_bytes());
    let child_default: &str = if prefixed || namespace == default_ns {
        default_ns
    } else {
        out.put_slice(b" xmlns='");
        escape_attr(&namespace, out)?;
        out.put_u8(b'\'');
        &namespace
    };
    let mut declared: Vec<&str> = Vec::new();
    for ((attr_ns, attr_name), value) in el.attrs() {
        let attr_name = attr_name.as_str();
        out.put_u8(b' ');
        if attr_ns.is_none() {
            if attr_name == "xmlns" {
                // The namespace is the element's; never written as an attribute.
                out.truncate(out.len() - 1);
                continue;
            }
        } else if attr_ns.as_str() == ns::XML {
            out.put_slice(b"xml:");
        } else {
            let index = match declared.iter().position(|d| *d == attr_ns.as_str()) {
                Some(i) => i,
                None => {
                    declared.push(attr_ns.as_str());
                    let i = declared.len() - 1;
                    out.put_slice(format!("xmlns:ans{i}='").as_bytes());
                    escape_attr(attr_ns.as_str(), out)?;
                    out.put_slice(b"' ");
                    i
                }
            };
            out.put_slice(format!("ans{index}:").as_bytes());
        }
        out.put_slice(attr_name.as_bytes());
        out.put_slice(b"='");
        escape_attr(value, out)?;
        out.put_u8(b'\'');
    }
    let mut nodes = el.nodes().peekable();
    if nodes.peek().is_none() {
        out.put_slice(b"/>");
        return Ok(());
    }
    out.put_u8(b'>');
    for node in nodes {
        match node {
            Node::Element(child) => write_element(child, child_default, out)?,
            Node::Text(text) => escape_text(text, out)?,
        }
    }
    out.put_slice(b"</");
    if prefixed {
        out.put_slice(b"stream:");
    }
    out.put_slice(name.as_bytes());
    out.put_u8(b'>');
    Ok(())
}

/// The replacement for byte `b` in text, if it needs one.
fn text_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        // A literal CR would be normalized away by the reader.
        b'\r' => Some(b"&#13;"),
        _ => None,
    }
}

/// The replacement for byte `b` in a single-quoted attribute value.
fn attr_escape(b: u8) -> Option<&'static [u8]> {
    match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\'' => Some(b"&apos;"),
        b'"' => Some(b"&quot;"),
        // Attribute value normalization would turn these into spaces.
        b'\t' => Some(b"&#9;"),
        b'\n' => Some(b"&#10;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    }
}

fn escape_text(s: &str, out: &mut BytesMut) -> Result<(), WriteError> {
    escape(s, out, text_escape)
}

fn escape_attr(s: &str, out: &mut BytesMut) -> Result<(), WriteError> {
    escape(s, out, attr_escape)
}

/// For values the writer controls or that came from a parsed header: an
/// invalid character is replaced by U+FFFD rather than failing.
fn escape_attr_unchecked(s: &str, out: &mut BytesMut) {
    if escape_attr(s, out).is_err() {
        let cleaned: String = s
            .chars()
            .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
            .collect();
        // Cannot fail: every character is now allowed.
        let _ = escape_attr(&cleaned, out);
    }
}

/// Whether XML 1.0 allows `c` (production [2] Char).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn escape(
    s: &str,
    out: &mut BytesMut,
    table: fn(u8) -> Option<&'static [u8]>,
) -> Result<(), WriteError> {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == 0xEF || matches!(b, b'&' | b'<' | b'>' | b'\'' | b'"') {
            if let Some(replacement) = table(b) {
                out.put_slice(&bytes[start..i]);
                out.put_slice(replacement);
                start = i + 1;
            } else if b < 0x20 && b != b'\t' && b != b'\n' {
                return Err(WriteError::InvalidChar(char::from(b)));
            } else if b == 0xEF && bytes.get(i + 1) == Some(&0xBF) {
                // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
                if let Some(&third @ (0xBE | 0xBF)) = bytes.get(i + 2) {
                    let c = if third == 0xBE {
                        '\u{FFFE}'
                    } else {
                        '\u{FFFF}'
                    };
                    return Err(WriteError::InvalidChar(c));
                }
            }
        }
    }
    out.put_slice(&bytes[start..]);
    Ok(())
}
