//! XML binding of SASL in XMPP (RFC 6120 §6.4, XEP-0440).
//!
//! Nonzas in namespace [`NS_SASL`] are parsed from and serialized to
//! [`minidom::Element`]s. Payloads are base64 (RFC 4648 §4, padded, no line
//! breaks); an empty payload is written as `=`, and an element without text
//! means "no payload". Payload text longer than [`MAX_ENCODED_LEN`] is
//! rejected (`malformed-request`) before decoding; bad base64 is
//! `incorrect-encoding`.
//!
//! XEP-0474 needs no XML of its own: its `h` attribute travels inside the
//! SCRAM server-first-message and is computed from the [`SaslFeatures`]
//! parsed here.

use super::error::{ErrorKind, SaslCondition, SaslError};
use super::{MAX_MESSAGE_LEN, SaslFeatures};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// `urn:ietf:params:xml:ns:xmpp-sasl`.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0440 namespace `urn:xmpp:sasl-cb:0`.
pub const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// Largest base64 text accepted in a payload (encodes [`MAX_MESSAGE_LEN`]
/// bytes).
pub const MAX_ENCODED_LEN: usize = MAX_MESSAGE_LEN.div_ceil(3) * 4;
/// Largest number of mechanisms or channel-binding types parsed from one
/// feature element; more is malformed.
pub const MAX_FEATURE_ITEMS: usize = 64;
/// Largest mechanism or channel-binding name accepted (RFC 4422 §3.1 limits
/// mechanism names to 20 characters; this allows some slack).
pub const MAX_NAME_LEN: usize = 64;

/// Human-readable text in a `<failure/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureText {
    /// The `xml:lang` attribute, if present.
    pub lang: Option<String>,
    /// The text.
    pub text: String,
}

/// A SASL nonza (RFC 6120 §6.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslNonza {
    /// `<auth mechanism='…'>payload</auth>` (client).
    Auth {
        /// The mechanism name.
        mechanism: String,
        /// The initial response; `None` when the element is empty.
        initial_response: Option<Vec<u8>>,
    },
    /// `<challenge/>` (server); an empty element is an empty challenge.
    Challenge(Vec<u8>),
    /// `<response/>` (client); an empty element is an empty response.
    Response(Vec<u8>),
    /// `<success/>` (server) with optional additional data.
    Success(Option<Vec<u8>>),
    /// `<failure/>` (server).
    Failure {
        /// The defined condition. A missing or unknown condition is read as
        /// `not-authorized`: it is a failure either way.
        condition: SaslCondition,
        /// Optional `<text/>`.
        text: Option<FailureText>,
    },
    /// `<abort/>` (client).
    Abort,
}

fn ncname(name: &'static str) -> Option<NcName> {
    NcName::try_from(name).ok()
}

fn with_attr(el: &mut Element, name: &'static str, value: &str) {
    // Attribute names here are static, valid NCNames; `ncname` cannot fail.
    if let Some(n) = ncname(name) {
        el.set_attr(Namespace::NONE, n, value);
    }
}

/// Encodes a payload: base64, or `=` for an empty payload.
pub fn encode_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        B64.encode(data)
    }
}

/// Decodes payload text: `=` is empty; surrounding XML whitespace is
/// ignored.
///
/// # Errors
/// `malformed-request` ([`ErrorKind::TooLarge`]) if longer than
/// [`MAX_ENCODED_LEN`]; `incorrect-encoding` if not valid base64.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, SaslError> {
    if text.len() > MAX_ENCODED_LEN + 64 {
        return Err(SaslError::new(
            ErrorKind::TooLarge,
            "SASL payload too large",
        ));
    }
    let t = text.trim_matches([' ', '\t', '\r', '\n']);
    if t.len() > MAX_ENCODED_LEN {
        return Err(SaslError::new(
            ErrorKind::TooLarge,
            "SASL payload too large",
        ));
    }
    if t == "=" {
        return Ok(Vec::new());
    }
    B64.decode(t)
        .map_err(|_| SaslError::new(ErrorKind::IncorrectEncoding, "payload is not valid base64"))
}

/// Bounded text of an element: rejects oversized content before
/// concatenating it.
fn bounded_text(el: &Element, max: usize) -> Result<String, SaslError> {
    let mut total = 0usize;
    for t in el.texts() {
        total = total.saturating_add(t.len());
        if total > max {
            return Err(SaslError::new(
                ErrorKind::TooLarge,
                "element text too large",
            ));
        }
    }
    Ok(el.text())
}

fn payload(el: &Element) -> Result<Option<Vec<u8>>, SaslError> {
    if el.children().next().is_some() {
        return Err(SaslError::malformed(
            "SASL payload element has child elements",
        ));
    }
    let text = bounded_text(el, MAX_ENCODED_LEN + 64)?;
    if text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
        Ok(None)
    } else {
        decode_payload(&text).map(Some)
    }
}

impl SaslNonza {
    /// Parses a SASL nonza.
    ///
    /// # Errors
    /// `malformed-request` for an element that is not a SASL nonza or is
    /// oversized, `invalid-mechanism` for `<auth/>` without a valid mechanism
    /// name, `incorrect-encoding` for bad base64.
    pub fn from_element(el: &Element) -> Result<SaslNonza, SaslError> {
        if !el.has_ns(NS_SASL) {
            return Err(SaslError::malformed("not in the SASL namespace"));
        }
        match el.name() {
            "auth" => {
                let mechanism = el
                    .attr("mechanism")
                    .filter(|m| valid_mechanism_name(m))
                    .ok_or(SaslError::new(
                        ErrorKind::InvalidMechanism,
                        "auth without a valid mechanism attribute",
                    ))?;
                Ok(SaslNonza::Auth {
                    mechanism: mechanism.to_owned(),
                    initial_response: payload(el)?,
                })
            }
            "challenge" => Ok(SaslNonza::Challenge(payload(el)?.unwrap_or_default())),
            "response" => Ok(SaslNonza::Response(payload(el)?.unwrap_or_default())),
            "success" => Ok(SaslNonza::Success(payload(el)?)),
            "abort" => Ok(SaslNonza::Abort),
            "failure" => {
                let mut condition = None;
                let mut text = None;
                for child in el.children().filter(|c| c.has_ns(NS_SASL)) {
                    if child.name() == "text" {
                        text = Some(FailureText {
                            lang: child.attr_ns(&Namespace::XML, "lang").map(str::to_owned),
                            text: bounded_text(child, MAX_MESSAGE_LEN)?,
                        });
                    } else if condition.is_none() {
                        condition = SaslCondition::from_name(child.name());
                    }
                }
                Ok(SaslNonza::Failure {
                    condition: condition.unwrap_or(SaslCondition::NotAuthorized),
                    text,
                })
            }
            _ => Err(SaslError::malformed("unknown SASL element")),
        }
    }

    /// Serializes the nonza.
    pub fn to_element(&self) -> Element {
        let with_payload = |name: &str, data: Option<&[u8]>| {
            let mut el = Element::bare(name, NS_SASL);
            if let Some(d) = data {
                el.append_text(encode_payload(d));
            }
            el
        };
        match self {
            SaslNonza::Auth {
                mechanism,
                initial_response,
            } => {
                let mut el = with_payload("auth", initial_response.as_deref());
                with_attr(&mut el, "mechanism", mechanism);
                el
            }
            // A challenge/response is always sent with text ("=" if empty):
            // unambiguous for every peer.
            SaslNonza::Challenge(d) => with_payload("challenge", Some(d)),
            SaslNonza::Response(d) => with_payload("response", Some(d)),
            SaslNonza::Success(d) => with_payload("success", d.as_deref()),
            SaslNonza::Abort => Element::bare("abort", NS_SASL),
            SaslNonza::Failure { condition, text } => {
                let mut el = Element::bare("failure", NS_SASL);
                el.append_child(Element::bare(condition.name(), NS_SASL));
                if let Some(t) = text {
                    let mut te = Element::bare("text", NS_SASL);
                    if let Some(lang) = &t.lang
                        && let Some(n) = ncname("lang")
                    {
                        te.set_attr(Namespace::XML, n, lang.as_str());
                    }
                    te.append_text(t.text.clone());
                    el.append_child(te);
                }
                el
            }
        }
    }

    /// `<failure/>` for an error (condition only, no text).
    pub fn failure(error: &SaslError) -> SaslNonza {
        SaslNonza::Failure {
            condition: error.condition(),
            text: None,
        }
    }
}

fn valid_mechanism_name(name: &str) -> bool {
    // RFC 4422 §3.1: 1–20 of A-Z 0-9 - _ (we allow up to MAX_NAME_LEN).
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_cb_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

impl SaslFeatures {
    /// Extracts the SASL features from a `<stream:features/>` element:
    /// `<mechanisms/>` and the XEP-0440 `<sasl-channel-binding/>` sibling.
    /// Returns `Ok(None)` if there is no `<mechanisms/>`.
    ///
    /// # Errors
    /// `malformed-request` for invalid names or too many entries.
    pub fn from_stream_features(features: &Element) -> Result<Option<SaslFeatures>, SaslError> {
        let Some(mechs) = features.get_child("mechanisms", NS_SASL) else {
            return Ok(None);
        };
        let mut out = SaslFeatures::from_mechanisms_element(mechs)?;
        if let Some(cb) = features.get_child("sasl-channel-binding", NS_SASL_CB) {
            let mut types = Vec::new();
            for c in cb
                .children()
                .filter(|c| c.is("channel-binding", NS_SASL_CB))
            {
                let t = c
                    .attr("type")
                    .filter(|t| valid_cb_name(t))
                    .ok_or(SaslError::malformed("invalid channel-binding type"))?;
                if types.len() >= MAX_FEATURE_ITEMS {
                    return Err(SaslError::new(
                        ErrorKind::TooLarge,
                        "too many channel-binding types",
                    ));
                }
                types.push(t.to_owned());
            }
            out.channel_binding_types = Some(types);
        }
        Ok(Some(out))
    }

    /// Parses a `<mechanisms/>` element alone (no XEP-0440 information).
    ///
    /// # Errors
    /// `malformed-request` for invalid names or too many entries.
    pub fn from_mechanisms_element(mechs: &Element) -> Result<SaslFeatures, SaslError> {
        if !mechs.is("mechanisms", NS_SASL) {
            return Err(SaslError::malformed("not a SASL mechanisms element"));
        }
        let mut mechanisms = Vec::new();
        for m in mechs.children().filter(|c| c.is("mechanism", NS_SASL)) {
            let name = bounded_text(m, MAX_NAME_LEN)?;
            let name = name.trim_matches([' ', '\t', '\r', '\n']);
            if !valid_mechanism_name(name) {
                return Err(SaslError::malformed("invalid mechanism name"));
            }
            if mechanisms.len() >= MAX_FEATURE_ITEMS {
                return Err(SaslError::new(ErrorKind::TooLarge, "too many mechanisms"));
            }
            mechanisms.push(name.to_owned());
        }
        Ok(SaslFeatures {
            mechanisms,
            channel_binding_types: None,
        })
    }

    /// Serializes to the feature elements to put in `<stream:features/>`:
    /// `<mechanisms/>` and, if present, the XEP-0440
    /// `<sasl-channel-binding/>`.
    pub fn to_elements(&self) -> Vec<Element> {
        let mut mechs = Element::bare("mechanisms", NS_SASL);
        for m in &self.mechanisms {
            let mut e = Element::bare("mechanism", NS_SASL);
            e.append_text(m.clone());
            mechs.append_child(e);
        }
        let mut out = vec![mechs];
        if let Some(types) = &self.channel_binding_types {
            let mut cb = Element::bare("sasl-channel-binding", NS_SASL_CB);
            for t in types {
                let mut e = Element::bare("channel-binding", NS_SASL_CB);
                with_attr(&mut e, "type", t);
                cb.append_child(e);
            }
            out.push(cb);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    fn xml_of(el: &Element) -> String {
        String::from(el)
    }

    #[test]
    fn payload_encoding() {
        assert_eq!(encode_payload(b""), "=");
        assert_eq!(decode_payload("=").unwrap(), b"");
        assert_eq!(
            encode_payload(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
            "biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM"
        );
        assert_eq!(
            decode_payload(" AHRpbQB0YW5zdGFhZnRhbnN0YWFm\n").unwrap(),
            b"\0tim\0tanstaaftanstaaf"
        );
        for bad in ["!!!!", "AAA", "A=AA", "AA AA", "=="] {
            assert_eq!(
                decode_payload(bad).unwrap_err().kind,
                ErrorKind::IncorrectEncoding,
                "{bad}"
            );
        }
        let huge = "A".repeat(MAX_ENCODED_LEN + 4);
        assert_eq!(decode_payload(&huge).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn auth_round_trip() {
        let el = parse(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
        );
        let n = SaslNonza::from_element(&el).unwrap();
        assert_eq!(
            n,
            SaslNonza::Auth {
                mechanism: "PLAIN".into(),
                initial_response: Some(b"\0juliet\0r0m30myr0m30".to_vec())
            }
        );
        assert_eq!(SaslNonza::from_element(&n.to_element()).unwrap(), n);
        let empty = SaslNonza::Auth {
            mechanism: "EXTERNAL".into(),
            initial_response: Some(Vec::new()),
        };
        let el = empty.to_element();
        assert_eq!(el.text(), "=");
        assert_eq!(SaslNonza::from_element(&el).unwrap(), empty);
        let none =
            parse("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>");
        assert_eq!(
            SaslNonza::from_element(&none).unwrap(),
            SaslNonza::Auth {
                mechanism: "SCRAM-SHA-1".into(),
                initial_response: None
            }
        );
    }

    #[test]
    fn auth_errors() {
        let no_mech = parse("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</auth>");
        assert_eq!(
            SaslNonza::from_element(&no_mech).unwrap_err().condition(),
            SaslCondition::InvalidMechanism
        );
        let bad =
            parse("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>@@@@</auth>");
        assert_eq!(
            SaslNonza::from_element(&bad).unwrap_err().condition(),
            SaslCondition::IncorrectEncoding
        );
        let wrong_ns = parse("<auth xmlns='jabber:client' mechanism='PLAIN'/>");
        assert_eq!(
            SaslNonza::from_element(&wrong_ns).unwrap_err().condition(),
            SaslCondition::MalformedRequest
        );
        let child = parse("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><x/></response>");
        assert_eq!(
            SaslNonza::from_element(&child).unwrap_err().condition(),
            SaslCondition::MalformedRequest
        );
        let huge = format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            "A".repeat(100_000)
        );
        assert_eq!(
            SaslNonza::from_element(&parse(&huge)).unwrap_err().kind,
            ErrorKind::TooLarge
        );
    }

    #[test]
    fn other_nonzas_round_trip() {
        for n in [
            SaslNonza::Challenge(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096".to_vec()),
            SaslNonza::Challenge(Vec::new()),
            SaslNonza::Response(b"c=biws".to_vec()),
            SaslNonza::Success(None),
            SaslNonza::Success(Some(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec())),
            SaslNonza::Abort,
            SaslNonza::Failure {
                condition: SaslCondition::NotAuthorized,
                text: None,
            },
            SaslNonza::Failure {
                condition: SaslCondition::AccountDisabled,
                text: Some(FailureText {
                    lang: Some("en".into()),
                    text: "Call 212-555-1212".into(),
                }),
            },
        ] {
            let el = n.to_element();
            assert!(el.has_ns(NS_SASL));
            let back = SaslNonza::from_element(&parse(&xml_of(&el))).unwrap();
            assert_eq!(back, n, "{}", xml_of(&el));
        }
    }

    #[test]
    fn failure_parsing_rfc6120_example() {
        let el = parse(
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><account-disabled/>\
             <text xml:lang='en'>Call 212-555-1212 for assistance.</text></failure>",
        );
        let SaslNonza::Failure { condition, text } = SaslNonza::from_element(&el).unwrap() else {
            panic!("not a failure");
        };
        assert_eq!(condition, SaslCondition::AccountDisabled);
        let text = text.unwrap();
        assert_eq!(text.lang.as_deref(), Some("en"));
        assert_eq!(text.text, "Call 212-555-1212 for assistance.");
        let unknown = parse("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><bogus/></failure>");
        assert_eq!(
            SaslNonza::from_element(&unknown).unwrap(),
            SaslNonza::Failure {
                condition: SaslCondition::NotAuthorized,
                text: None
            }
        );
        let e = SaslError::new(ErrorKind::InvalidAuthzid, "x");
        assert!(xml_of(&SaslNonza::failure(&e).to_element()).contains("<invalid-authzid"));
    }

    #[test]
    fn features_round_trip_with_xep0440() {
        let el = parse(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
             <mechanism>X-OAUTH2</mechanism></mechanisms>\
             <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
             <channel-binding type='tls-server-end-point'/>\
             <channel-binding type='tls-exporter'/></sasl-channel-binding>\
             </stream:features>",
        );
        let f = SaslFeatures::from_stream_features(&el).unwrap().unwrap();
        assert_eq!(
            f.mechanisms,
            ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "X-OAUTH2"]
        );
        assert_eq!(
            f.channel_binding_types.as_deref(),
            Some(&["tls-server-end-point".to_owned(), "tls-exporter".to_owned()][..])
        );
        let mut root = Element::bare("features", "http://etherx.jabber.org/streams");
        for e in f.to_elements() {
            root.append_child(e);
        }
        let again = SaslFeatures::from_stream_features(&parse(&xml_of(&root)))
            .unwrap()
            .unwrap();
        assert_eq!(again, f);
        let no_sasl = parse("<features xmlns='http://etherx.jabber.org/streams'/>");
        assert_eq!(SaslFeatures::from_stream_features(&no_sasl).unwrap(), None);
        let only = SaslFeatures::new(["PLAIN"]);
        assert_eq!(only.to_elements().len(), 1);
    }

    #[test]
    fn features_bounds() {
        let many = format!(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</mechanisms>",
            "<mechanism>PLAIN</mechanism>".repeat(MAX_FEATURE_ITEMS + 1)
        );
        assert_eq!(
            SaslFeatures::from_mechanisms_element(&parse(&many))
                .unwrap_err()
                .kind,
            ErrorKind::TooLarge
        );
        let bad = parse(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>a b</mechanism></mechanisms>",
        );
        assert!(SaslFeatures::from_mechanisms_element(&bad).is_err());
    }
}
