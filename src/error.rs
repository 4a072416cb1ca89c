//! Stream errors (RFC 6120 §4.9).
//!
//! [`StreamErrorCondition`] covers every defined condition of RFC 6120
//! §4.9.3; [`StreamError`] is the whole `<stream:error/>` element with its
//! optional `<text/>` and application-specific child, parsed from and
//! serialized to a [`minidom::Element`].

use std::fmt;
use std::str::FromStr;

use minidom::Element;

use crate::ns;

macro_rules! conditions {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// A defined stream error condition (RFC 6120 §4.9.3).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StreamErrorCondition {
            $( $(#[$doc])* $variant, )*
        }

        impl StreamErrorCondition {
            /// Every condition, in the order of RFC 6120 §4.9.3.
            pub const ALL: &'static [StreamErrorCondition] = &[ $( StreamErrorCondition::$variant, )* ];

            /// The element name of the condition, e.g. `"not-well-formed"`.
            pub fn name(self) -> &'static str {
                match self { $( StreamErrorCondition::$variant => $name, )* }
            }
        }

        impl FromStr for StreamErrorCondition {
            type Err = UnknownCondition;
            fn from_str(s: &str) -> Result<Self, UnknownCondition> {
                match s {
                    $( $name => Ok(StreamErrorCondition::$variant), )*
                    // RFC 3920 name, replaced by not-well-formed in RFC 6120 §4.9.3.13.
                    "xml-not-well-formed" => Ok(StreamErrorCondition::NotWellFormed),
                    _ => Err(UnknownCondition(s.to_owned())),
                }
            }
        }
    };
}

conditions! {
    /// Well-formed XML that cannot be processed (§4.9.3.1).
    BadFormat => "bad-format",
    /// Unsupported namespace prefix, or none where one is needed (§4.9.3.2).
    BadNamespacePrefix => "bad-namespace-prefix",
    /// A new stream for this entity replaces this one (§4.9.3.3).
    Conflict => "conflict",
    /// The peer has not generated traffic for too long (§4.9.3.4).
    ConnectionTimeout => "connection-timeout",
    /// The `to` domain is no longer served here (§4.9.3.5).
    HostGone => "host-gone",
    /// The `to` domain is not served here (§4.9.3.6).
    HostUnknown => "host-unknown",
    /// A stanza lacks a required `to` or `from` (§4.9.3.7).
    ImproperAddressing => "improper-addressing",
    /// Internal failure of the server (§4.9.3.8).
    InternalServerError => "internal-server-error",
    /// The `from` does not match an authenticated identity (§4.9.3.9).
    InvalidFrom => "invalid-from",
    /// Wrong stream or content namespace (§4.9.3.10).
    InvalidNamespace => "invalid-namespace",
    /// Invalid XML for a validating receiver (§4.9.3.11).
    InvalidXml => "invalid-xml",
    /// Data sent before the stream was authenticated (§4.9.3.12).
    NotAuthorized => "not-authorized",
    /// The input is not well-formed XML (§4.9.3.13).
    NotWellFormed => "not-well-formed",
    /// A local policy was violated, e.g. a size limit (§4.9.3.14).
    PolicyViolation => "policy-violation",
    /// A remote entity needed for the stream could not be reached (§4.9.3.15).
    RemoteConnectionFailed => "remote-connection-failed",
    /// The stream must be renegotiated (§4.9.3.16).
    Reset => "reset",
    /// Not enough resources to serve the stream (§4.9.3.17).
    ResourceConstraint => "resource-constraint",
    /// Comments, processing instructions, DTDs or entity references (§4.9.3.18).
    RestrictedXml => "restricted-xml",
    /// Connect to another host instead; the host is the condition's text (§4.9.3.19).
    SeeOtherHost => "see-other-host",
    /// The server is shutting down (§4.9.3.20).
    SystemShutdown => "system-shutdown",
    /// No other condition applies (§4.9.3.21).
    UndefinedCondition => "undefined-condition",
    /// An encoding other than UTF-8 (§4.9.3.22).
    UnsupportedEncoding => "unsupported-encoding",
    /// A mandatory feature is not offered (§4.9.3.23).
    UnsupportedFeature => "unsupported-feature",
    /// A first-level element the receiver does not understand (§4.9.3.24).
    UnsupportedStanzaType => "unsupported-stanza-type",
    /// The stream `version` is not supported (§4.9.3.25).
    UnsupportedVersion => "unsupported-version",
}

impl fmt::Display for StreamErrorCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A condition name that RFC 6120 does not define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCondition(pub String);

impl fmt::Display for UnknownCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown condition {:?}", self.0)
    }
}

impl std::error::Error for UnknownCondition {}

/// Human-readable text of an error, with its language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorText {
    /// The `xml:lang` of the text, if given.
    pub lang: Option<String>,
    /// The text itself.
    pub text: String,
}

/// A `<stream:error/>` (RFC 6120 §4.9.2).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamError {
    /// The defined condition.
    pub condition: StreamErrorCondition,
    /// Character data of the condition element: the new host for
    /// [`StreamErrorCondition::SeeOtherHost`], otherwise normally `None`.
    pub condition_data: Option<String>,
    /// Optional descriptive text.
    pub text: Option<ErrorText>,
    /// Optional application-specific condition element.
    pub application: Option<Element>,
}

impl StreamError {
    /// A stream error with only a condition.
    pub fn new(condition: StreamErrorCondition) -> Self {
        Self {
            condition,
            condition_data: None,
            text: None,
            application: None,
        }
    }

    /// Adds descriptive text (in English).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(ErrorText {
            lang: Some("en".to_owned()),
            text: text.into(),
        });
        self
    }

    /// A `see-other-host` redirect to `host` (`host`, `host:port` or `[v6]:port`).
    pub fn see_other_host(host: impl Into<String>) -> Self {
        Self {
            condition_data: Some(host.into()),
            ..Self::new(StreamErrorCondition::SeeOtherHost)
        }
    }

    /// Parses a `<stream:error/>` element.
    ///
    /// An unknown or missing condition is read as `undefined-condition`
    /// (RFC 6120 §4.9.3.21 says an unknown condition is to be treated so),
    /// and the RFC 3920 name `xml-not-well-formed` as `not-well-formed`.
    pub fn from_element(el: &Element) -> Result<Self, NotAStreamError> {
        if !el.is("error", ns::STREAMS) {
            return Err(NotAStreamError);
        }
        let mut out = Self::new(StreamErrorCondition::UndefinedCondition);
        let mut have_condition = false;
        for child in el.children() {
            if child.ns() == ns::XMPP_STREAMS {
                if child.name() == "text" {
                    out.text = Some(ErrorText {
                        lang: child.attr_ns(ns::XML, "lang").map(str::to_owned),
                        text: child.text(),
                    });
                } else if !have_condition {
                    have_condition = true;
                    out.condition = child
                        .name()
                        .parse()
                        .unwrap_or(StreamErrorCondition::UndefinedCondition);
                    let data = child.text();
                    if !data.is_empty() {
                        out.condition_data = Some(data);
                    }
                }
            } else if out.application.is_none() {
                out.application = Some(child.clone());
            }
        }
        Ok(out)
    }

    /// Serializes to a `<stream:error/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("error", ns::STREAMS);
        let mut cond = Element::bare(self.condition.name(), ns::XMPP_STREAMS);
        if let Some(data) = &self.condition_data {
            cond.append_text(data.clone());
        }
        el.append_child(cond);
        if let Some(text) = &self.text {
            let mut t = Element::bare("text", ns::XMPP_STREAMS);
            if let Some(lang) = &text.lang {
                let (lang_ns, lang_name) = xml_lang();
                t.set_attr(lang_ns, lang_name, lang.clone());
            }
            t.append_text(text.text.clone());
            el.append_child(t);
        }
        if let Some(app) = &self.application {
            el.append_child(app.clone());
        }
        el
    }
}

/// The attribute key of `xml:lang` for [`Element::set_attr`].
pub(crate) fn xml_lang() -> (rxml::Namespace<'static>, rxml::NcName) {
    (
        rxml::Namespace::from_str(ns::XML),
        rxml::NcName::try_from("lang").expect("`lang` is a valid NCName"),
    )
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream error <{}/>", self.condition)?;
        if let Some(data) = &self.condition_data {
            write!(f, " ({data})")?;
        }
        if let Some(text) = &self.text {
            write!(f, ": {}", text.text)?;
        }
        Ok(())
    }
}

impl std::error::Error for StreamError {}

/// The element given to [`StreamError::from_element`] is not a `<stream:error/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAStreamError;

impl fmt::Display for NotAStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("element is not a <stream:error/>")
    }
}

impl std::error::Error for NotAStreamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_round_trips_by_name() {
        assert_eq!(StreamErrorCondition::ALL.len(), 25);
        for &c in StreamErrorCondition::ALL {
            assert_eq!(c.name().parse::<StreamErrorCondition>(), Ok(c));
        }
    }

    #[test]
    fn legacy_and_unknown_names() {
        assert_eq!(
            "xml-not-well-formed".parse::<StreamErrorCondition>(),
            Ok(StreamErrorCondition::NotWellFormed)
        );
        assert!("invalid-id".parse::<StreamErrorCondition>().is_err());
    }
}
