//! The stream header, `<stream:stream …>` (RFC 6120 §4.7).

use std::fmt;
use std::str::FromStr;

/// The `version` attribute of a stream header (RFC 6120 §4.7.5).
///
/// Major and minor are compared numerically: `1.10` is newer than `1.9`,
/// leading zeros are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl StreamVersion {
    /// Version 1.0, the only one RFC 6120 defines.
    pub const V1_0: StreamVersion = StreamVersion { major: 1, minor: 0 };
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A `version` value that is not `MAJOR.MINOR` with decimal digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadVersion(pub String);

impl fmt::Display for BadVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed stream version {:?}", self.0)
    }
}

impl std::error::Error for BadVersion {}

impl FromStr for StreamVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, BadVersion> {
        let bad = || BadVersion(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let number = |part: &str| -> Result<u32, BadVersion> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let digits = part.trim_start_matches('0');
            if digits.is_empty() {
                Ok(0)
            } else {
                digits.parse().map_err(|_| bad())
            }
        };
        Ok(StreamVersion {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

/// A parsed stream header: the attributes of `<stream:stream>` and the
/// namespaces it declares.
///
/// The reader only checks what XML and the stream namespace demand; which
/// `to`, content namespace and version are acceptable is the business of the
/// connection that reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// `to`: the entity the stream is addressed to.
    pub to: Option<String>,
    /// `from`: the entity that opened the stream.
    pub from: Option<String>,
    /// `id`: the stream id (set by the receiving entity only).
    pub id: Option<String>,
    /// `version`; `None` when absent (a pre-1.0 peer).
    pub version: Option<StreamVersion>,
    /// `xml:lang`: the default language of the stream.
    pub lang: Option<String>,
    /// The default namespace declared on the root: the content namespace
    /// (`jabber:client`, `jabber:server`, …).
    pub content_namespace: Option<String>,
    /// The prefix the root uses for `http://etherx.jabber.org/streams`
    /// (`Some("stream")` conventionally; `None` when that namespace is the
    /// root's default namespace).
    pub stream_prefix: Option<String>,
    /// Other prefixed namespace declarations on the root, e.g.
    /// `("db", "jabber:server:dialback")`. Stanzas inherit them.
    pub namespaces: Vec<(String, String)>,
}

impl StreamHeader {
    /// A header for the initiating entity of a client stream:
    /// `to` the server's domain, version 1.0, content namespace `jabber:client`.
    pub fn client_to(domain: impl Into<String>) -> Self {
        Self {
            to: Some(domain.into()),
            version: Some(StreamVersion::V1_0),
            content_namespace: Some(crate::ns::JABBER_CLIENT.to_owned()),
            stream_prefix: Some("stream".to_owned()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let v = |s: &str| s.parse::<StreamVersion>().unwrap();
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("01.00"), StreamVersion::V1_0);
        assert_eq!(v("1.0").to_string(), "1.0");
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.b",
            "1.0.0",
            "-1.0",
            "1.+0",
            "99999999999.0",
        ] {
            assert!(bad.parse::<StreamVersion>().is_err(), "{bad:?}");
        }
    }
}
