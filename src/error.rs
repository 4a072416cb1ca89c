//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3).
//!
//! [`StreamErrorCondition`] covers every defined condition of RFC 6120
//! §4.9.3; [`StreamError`] is the whole `<stream:error/>` element with its
//! optional `<text/>` and application-specific child. [`StanzaError`] is the
//! `<error/>` child of an error stanza, with [`StanzaErrorCondition`] (all of
//! §8.3.3) and [`StanzaErrorType`]. All parse from and serialize to
//! [`minidom::Element`].

use std::fmt;
use std::str::FromStr;

use minidom::Element;
use rxml::Namespace;

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

impl ErrorText {
    /// Text in English (`xml:lang='en'`).
    pub fn english(text: impl Into<String>) -> Self {
        ErrorText {
            lang: Some("en".to_owned()),
            text: text.into(),
        }
    }
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
    pub application: Option<Box<Element>>,
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
        self.text = Some(ErrorText::english(text));
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
        let parts = ErrorChildren::read(el, ns::XMPP_STREAMS);
        let out = StreamError {
            condition: parts
                .condition
                .and_then(|c| c.parse().ok())
                .unwrap_or(StreamErrorCondition::UndefinedCondition),
            condition_data: parts.condition_data,
            text: parts.text,
            application: parts.application,
        };
        Ok(out)
    }

    /// Serializes to a `<stream:error/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("error", ns::STREAMS);
        ErrorChildren::write(
            &mut el,
            ns::XMPP_STREAMS,
            self.condition.name(),
            &self.condition_data,
            &self.text,
            &self.application,
        );
        el
    }
}

/// The children stream and stanza errors share (RFC 6120 §4.9.2, §8.3.2):
/// a defined condition (the first element in the defined-conditions
/// namespace other than `<text/>`), with optional character data; optional
/// `<text/>` in that namespace; optional application-specific element in any
/// other namespace.
struct ErrorChildren {
    condition: Option<String>,
    condition_data: Option<String>,
    text: Option<ErrorText>,
    application: Option<Box<Element>>,
}

impl ErrorChildren {
    fn read(el: &Element, defined_ns: &str) -> Self {
        let mut out = ErrorChildren {
            condition: None,
            condition_data: None,
            text: None,
            application: None,
        };
        for child in el.children() {
            if child.ns() == defined_ns {
                if child.name() == "text" {
                    out.text = Some(ErrorText {
                        lang: child.attr_ns(ns::XML, "lang").map(str::to_owned),
                        text: child.text(),
                    });
                } else if out.condition.is_none() {
                    out.condition = Some(child.name().to_owned());
                    let data = child.text();
                    if !data.is_empty() {
                        out.condition_data = Some(data);
                    }
                }
            } else if out.application.is_none() {
                out.application = Some(Box::new(child.clone()));
            }
        }
        out
    }

    fn write(
        el: &mut Element,
        defined_ns: &str,
        condition: &str,
        condition_data: &Option<String>,
        text: &Option<ErrorText>,
        application: &Option<Box<Element>>,
    ) {
        let mut cond = Element::bare(condition, defined_ns);
        if let Some(data) = condition_data {
            cond.append_text(data.clone());
        }
        el.append_child(cond);
        if let Some(text) = text {
            let mut t = Element::bare("text", defined_ns);
            if let Some(lang) = &text.lang {
                let (lang_ns, lang_name) = xml_lang();
                t.set_attr(lang_ns, lang_name, lang.clone());
            }
            t.append_text(text.text.clone());
            el.append_child(t);
        }
        if let Some(app) = application {
            el.append_child((**app).clone());
        }
    }
}

/// The attribute key of `xml:lang` for [`Element::set_attr`].
pub(crate) fn xml_lang() -> (rxml::Namespace<'static>, rxml::NcName) {
    (Namespace::from_str(ns::XML), ncname("lang"))
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
    fn stanza_conditions_round_trip() {
        assert_eq!(StanzaErrorCondition::ALL.len(), 22);
        for &c in StanzaErrorCondition::ALL {
            assert_eq!(c.name().parse::<StanzaErrorCondition>(), Ok(c));
            let err = StanzaError::new(c).with_text("t");
            let mut iq = Element::bare("iq", ns::JABBER_CLIENT);
            iq.append_child(err.to_element(ns::JABBER_CLIENT));
            assert_eq!(StanzaError::from_stanza(&iq), Some(err));
        }
        assert_eq!(
            StanzaErrorCondition::ServiceUnavailable.default_type(),
            StanzaErrorType::Cancel
        );
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

macro_rules! stanza_conditions {
    ($( $(#[$doc:meta])* $variant:ident => ($name:literal, $default:ident), )*) => {
        /// A defined stanza error condition (RFC 6120 §8.3.3).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StanzaErrorCondition {
            $( $(#[$doc])* $variant, )*
        }

        impl StanzaErrorCondition {
            /// Every condition, in the order of RFC 6120 §8.3.3.
            pub const ALL: &'static [StanzaErrorCondition] = &[ $( StanzaErrorCondition::$variant, )* ];

            /// The element name of the condition, e.g. `"service-unavailable"`.
            pub fn name(self) -> &'static str {
                match self { $( StanzaErrorCondition::$variant => $name, )* }
            }

            /// The error type RFC 6120 §8.3.3 suggests for the condition.
            pub fn default_type(self) -> StanzaErrorType {
                match self { $( StanzaErrorCondition::$variant => StanzaErrorType::$default, )* }
            }
        }

        impl FromStr for StanzaErrorCondition {
            type Err = UnknownCondition;
            fn from_str(s: &str) -> Result<Self, UnknownCondition> {
                match s {
                    $( $name => Ok(StanzaErrorCondition::$variant), )*
                    _ => Err(UnknownCondition(s.to_owned())),
                }
            }
        }
    };
}

stanza_conditions! {
    /// Malformed or unprocessable request (§8.3.3.1).
    BadRequest => ("bad-request", Modify),
    /// A resource or session with that name already exists (§8.3.3.2).
    Conflict => ("conflict", Cancel),
    /// Recognized but not implemented (§8.3.3.3).
    FeatureNotImplemented => ("feature-not-implemented", Cancel),
    /// The requester lacks permission (§8.3.3.4).
    Forbidden => ("forbidden", Auth),
    /// The recipient is no longer at this address (§8.3.3.5).
    Gone => ("gone", Cancel),
    /// Internal failure (§8.3.3.6).
    InternalServerError => ("internal-server-error", Cancel),
    /// The addressed JID or item does not exist (§8.3.3.7).
    ItemNotFound => ("item-not-found", Cancel),
    /// The JID does not parse (§8.3.3.8).
    JidMalformed => ("jid-malformed", Modify),
    /// The request violates the recipient's criteria (§8.3.3.9).
    NotAcceptable => ("not-acceptable", Modify),
    /// Nobody may perform the action (§8.3.3.10).
    NotAllowed => ("not-allowed", Cancel),
    /// Authentication is needed first (§8.3.3.11).
    NotAuthorized => ("not-authorized", Auth),
    /// A local policy was violated (§8.3.3.12).
    PolicyViolation => ("policy-violation", Modify),
    /// The recipient is temporarily unavailable (§8.3.3.13).
    RecipientUnavailable => ("recipient-unavailable", Wait),
    /// Redirect to the URI in the condition's text (§8.3.3.14).
    Redirect => ("redirect", Modify),
    /// Registration is needed first (§8.3.3.15).
    RegistrationRequired => ("registration-required", Auth),
    /// The remote domain does not exist or cannot be reached (§8.3.3.16).
    RemoteServerNotFound => ("remote-server-not-found", Cancel),
    /// The remote server timed out (§8.3.3.17).
    RemoteServerTimeout => ("remote-server-timeout", Wait),
    /// The server is too busy (§8.3.3.18).
    ResourceConstraint => ("resource-constraint", Wait),
    /// The service is not offered (§8.3.3.19).
    ServiceUnavailable => ("service-unavailable", Cancel),
    /// A presence subscription is needed first (§8.3.3.20).
    SubscriptionRequired => ("subscription-required", Auth),
    /// No other condition applies (§8.3.3.21).
    UndefinedCondition => ("undefined-condition", Cancel),
    /// Out of order (§8.3.3.22).
    UnexpectedRequest => ("unexpected-request", Wait),
}

impl fmt::Display for StanzaErrorCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `type` of a stanza error (RFC 6120 §8.3.2): what the sender may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StanzaErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed; the condition was only a warning.
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl StanzaErrorType {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            StanzaErrorType::Auth => "auth",
            StanzaErrorType::Cancel => "cancel",
            StanzaErrorType::Continue => "continue",
            StanzaErrorType::Modify => "modify",
            StanzaErrorType::Wait => "wait",
        }
    }

    /// Parses the attribute value.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "auth" => StanzaErrorType::Auth,
            "cancel" => StanzaErrorType::Cancel,
            "continue" => StanzaErrorType::Continue,
            "modify" => StanzaErrorType::Modify,
            "wait" => StanzaErrorType::Wait,
            _ => return None,
        })
    }
}

/// The `<error/>` child of a stanza of type `error` (RFC 6120 §8.3).
#[derive(Clone, Debug, PartialEq)]
pub struct StanzaError {
    /// What the sender may do.
    pub error_type: StanzaErrorType,
    /// The defined condition.
    pub condition: StanzaErrorCondition,
    /// Character data of the condition (`gone`, `redirect`: an XMPP URI).
    pub condition_data: Option<String>,
    /// The `by` attribute: the entity that generated the error.
    pub by: Option<String>,
    /// Optional descriptive text.
    pub text: Option<ErrorText>,
    /// Optional application-specific condition element.
    pub application: Option<Box<Element>>,
}

impl StanzaError {
    /// An error with the condition's default type.
    pub fn new(condition: StanzaErrorCondition) -> Self {
        Self {
            error_type: condition.default_type(),
            condition,
            condition_data: None,
            by: None,
            text: None,
            application: None,
        }
    }

    /// Adds descriptive text (in English).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(ErrorText::english(text));
        self
    }

    /// Parses the `<error/>` child of `stanza` (in its namespace).
    /// Unknown or missing conditions read as `undefined-condition`, a
    /// missing or unknown type as the condition's default type.
    pub fn from_stanza(stanza: &Element) -> Option<Self> {
        let el = stanza.get_child("error", stanza.ns().as_str())?;
        let parts = ErrorChildren::read(el, ns::XMPP_STANZAS);
        // RFC 3920's payment-required, like any unknown name, reads as
        // undefined-condition.
        let condition = parts
            .condition
            .and_then(|c| c.parse().ok())
            .unwrap_or(StanzaErrorCondition::UndefinedCondition);
        Some(StanzaError {
            error_type: el
                .attr("type")
                .and_then(StanzaErrorType::from_name)
                .unwrap_or(condition.default_type()),
            condition,
            condition_data: parts.condition_data,
            by: el.attr("by").map(str::to_owned),
            text: parts.text,
            application: parts.application,
        })
    }

    /// Serializes to an `<error/>` element in `content_namespace`.
    pub fn to_element(&self, content_namespace: &str) -> Element {
        let mut el = Element::bare("error", content_namespace);
        el.set_attr(Namespace::NONE, ncname("type"), self.error_type.name());
        if let Some(by) = &self.by {
            el.set_attr(Namespace::NONE, ncname("by"), by.clone());
        }
        ErrorChildren::write(
            &mut el,
            ns::XMPP_STANZAS,
            self.condition.name(),
            &self.condition_data,
            &self.text,
            &self.application,
        );
        el
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stanza error <{}/> ({})",
            self.condition,
            self.error_type.name()
        )?;
        if let Some(text) = &self.text {
            write!(f, ": {}", text.text)?;
        }
        Ok(())
    }
}

impl std::error::Error for StanzaError {}

/// An NCName from a literal known to be valid.
pub(crate) fn ncname(name: &'static str) -> rxml::NcName {
    rxml::NcName::try_from(name).expect("literal NCName")
}
