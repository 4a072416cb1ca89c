//! XML stream framing: bytes ⇄ frames.
//!
//! An XMPP stream is one XML document whose root, `<stream:stream>`, stays
//! open for the whole session; every child of the root is a self-contained
//! unit (a stanza or a nonza). [`StreamReader`] turns bytes, split any way,
//! into [`Frame`]s: the typed [`StreamHeader`], each first-level element as a
//! [`minidom::Element`], whitespace keepalives and the close.
//! [`StreamWriter`] does the reverse into a [`bytes::BytesMut`].
//!
//! The reader parses with `rxml`, which already refuses what restricted XML
//! (RFC 6120 §11.1) forbids; this layer maps each refusal to its stream error
//! condition ([`XmlError::condition`]), resolves namespaces, and enforces
//! [`ReaderLimits`] while it reads, before it allocates.

mod header;
mod limits;
mod reader;
mod writer;

pub use header::{BadVersion, StreamHeader, StreamVersion};
pub use limits::{Limit, ReaderLimits};
pub use reader::{Frame, StreamReader, XmlError};
pub use writer::{StreamWriter, WriteError};
