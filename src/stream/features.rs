//! `<stream:features/>` (RFC 6120 §4.3.2) and the declarative table of which
//! feature is offered when.

use minidom::Element;

use crate::error::{StreamError, StreamErrorCondition};
use crate::ns;
use crate::sasl::SaslFeatures;

/// XEP-0198 stream management namespace.
pub const NS_SM: &str = "urn:xmpp:sm:3";
/// Roster versioning stream feature (RFC 6121 §2.6.1).
pub const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";

/// A parsed `<stream:features/>` element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamFeatures {
    /// STARTTLS offered; `Some(true)` when marked `<required/>`.
    pub starttls: Option<bool>,
    /// SASL mechanisms (and XEP-0440 channel-binding types), if offered.
    pub sasl: Option<SaslFeatures>,
    /// Resource binding offered.
    pub bind: bool,
    /// Legacy session establishment offered; `Some(true)` when marked
    /// `<optional/>` (so a client may skip it).
    pub session: Option<bool>,
    /// XEP-0198 stream management offered.
    pub stream_management: bool,
    /// Roster versioning supported.
    pub roster_versioning: bool,
    /// Every other feature child, as sent.
    pub other: Vec<Element>,
}

impl StreamFeatures {
    /// Parses a `<stream:features/>` element. Malformed SASL content is a
    /// `bad-format` stream error.
    pub fn from_element(el: &Element) -> Result<Self, StreamError> {
        if !el.is("features", ns::STREAMS) {
            return Err(StreamError::new(StreamErrorCondition::BadFormat)
                .with_text("expected <stream:features/>"));
        }
        let mut out = StreamFeatures {
            sasl: SaslFeatures::from_stream_features(el).map_err(|e| {
                StreamError::new(StreamErrorCondition::BadFormat)
                    .with_text(format!("bad SASL feature: {e}"))
            })?,
            ..StreamFeatures::default()
        };
        for child in el.children() {
            match (child.ns().as_str(), child.name()) {
                (ns::XMPP_TLS, "starttls") => {
                    out.starttls = Some(child.has_child("required", ns::XMPP_TLS));
                }
                (ns::XMPP_BIND, "bind") => out.bind = true,
                (ns::XMPP_SESSION, "session") => {
                    out.session = Some(child.has_child("optional", ns::XMPP_SESSION));
                }
                (NS_SM, "sm") => out.stream_management = true,
                (NS_ROSTERVER, "ver") => out.roster_versioning = true,
                (crate::sasl::xml::NS_SASL, "mechanisms")
                | (crate::sasl::xml::NS_SASL_CB, "sasl-channel-binding") => {}
                _ => out.other.push(child.clone()),
            }
        }
        Ok(out)
    }

    /// Serializes to a `<stream:features/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("features", ns::STREAMS);
        if let Some(required) = self.starttls {
            let mut tls = Element::bare("starttls", ns::XMPP_TLS);
            if required {
                tls.append_child(Element::bare("required", ns::XMPP_TLS));
            }
            el.append_child(tls);
        }
        if let Some(sasl) = &self.sasl {
            for child in sasl.to_elements() {
                el.append_child(child);
            }
        }
        if self.bind {
            el.append_child(Element::bare("bind", ns::XMPP_BIND));
        }
        if let Some(optional) = self.session {
            let mut s = Element::bare("session", ns::XMPP_SESSION);
            if optional {
                s.append_child(Element::bare("optional", ns::XMPP_SESSION));
            }
            el.append_child(s);
        }
        if self.stream_management {
            el.append_child(Element::bare("sm", NS_SM));
        }
        if self.roster_versioning {
            el.append_child(Element::bare("ver", NS_ROSTERVER));
        }
        for other in &self.other {
            el.append_child(other.clone());
        }
        el
    }
}

/// A stream feature that the negotiation table knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// STARTTLS (RFC 6120 §5).
    StartTls,
    /// SASL (RFC 6120 §6).
    Sasl,
    /// Resource binding (RFC 6120 §7).
    Bind,
    /// Legacy session establishment (RFC 3921 §3).
    Session,
    /// Stream management (XEP-0198): offered with bind; `<enable/>` comes
    /// after binding, `<resume/>` instead of it.
    StreamManagement,
}

/// What a c2s stream has negotiated so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// TLS is up (STARTTLS or direct TLS).
    pub tls: bool,
    /// SASL succeeded.
    pub authenticated: bool,
    /// A resource is bound.
    pub bound: bool,
}

/// One row of the feature table: when a feature may be offered, whether it
/// must be negotiated before stanzas flow, and whether it restarts the stream.
#[derive(Clone, Copy, Debug)]
pub struct FeatureRule {
    /// The feature.
    pub feature: Feature,
    /// Must be negotiated before the stream is ready for stanzas.
    pub necessary: bool,
    /// Negotiating it restarts the stream (RFC 6120 §4.3.3).
    pub restarts: bool,
    /// Offered only when this holds.
    pub available: fn(&Negotiated, &Policy) -> bool,
}

/// Local policy that the table consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// TLS must be negotiated before SASL (the default, and RFC 6120's
    /// advice). Only a host that knowingly runs without TLS, e.g. on
    /// loopback for tests, turns it off.
    pub require_tls: bool,
    /// STARTTLS can be offered (the server has a certificate).
    pub tls_available: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_tls: true,
            tls_available: true,
        }
    }
}

/// The c2s feature table, in negotiation order (RFC 6120 §4.3, §5–§7;
/// RFC 3921 §3 for the legacy session). A feature is offered when its row is
/// available and it has not been negotiated yet.
pub const C2S_FEATURES: &[FeatureRule] = &[
    FeatureRule {
        feature: Feature::StartTls,
        necessary: true,
        restarts: true,
        available: |n, p| !n.tls && p.tls_available,
    },
    FeatureRule {
        feature: Feature::Sasl,
        necessary: true,
        restarts: true,
        available: |n, p| !n.authenticated && (n.tls || !p.require_tls),
    },
    FeatureRule {
        feature: Feature::Bind,
        necessary: true,
        restarts: false,
        available: |n, _| n.authenticated && !n.bound,
    },
    FeatureRule {
        feature: Feature::Session,
        necessary: false,
        restarts: false,
        available: |n, _| n.authenticated && !n.bound,
    },
    FeatureRule {
        feature: Feature::StreamManagement,
        necessary: false,
        restarts: false,
        available: |n, _| n.authenticated && !n.bound,
    },
];

/// The features to offer in the current state, in table order.
///
/// Before TLS with `require_tls`, only STARTTLS is offered (RFC 6120
/// §5.3.1 advises offering nothing else when TLS is mandatory).
pub fn offered(negotiated: &Negotiated, policy: &Policy) -> Vec<Feature> {
    C2S_FEATURES
        .iter()
        .filter(|rule| (rule.available)(negotiated, policy))
        .map(|rule| rule.feature)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_and_policy() {
        let p = Policy::default();
        let mut n = Negotiated::default();
        assert_eq!(offered(&n, &p), [Feature::StartTls]);
        n.tls = true;
        assert_eq!(offered(&n, &p), [Feature::Sasl]);
        n.authenticated = true;
        assert_eq!(
            offered(&n, &p),
            [Feature::Bind, Feature::Session, Feature::StreamManagement]
        );
        n.bound = true;
        assert!(offered(&n, &p).is_empty());
        let loopback = Policy {
            require_tls: false,
            tls_available: false,
        };
        assert_eq!(offered(&Negotiated::default(), &loopback), [Feature::Sasl]);
        let optional_tls = Policy {
            require_tls: false,
            tls_available: true,
        };
        assert_eq!(
            offered(&Negotiated::default(), &optional_tls),
            [Feature::StartTls, Feature::Sasl]
        );
    }

    #[test]
    fn features_round_trip() {
        let f = StreamFeatures {
            starttls: Some(true),
            sasl: Some(
                SaslFeatures::new(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
                    .with_channel_binding_types(["tls-exporter"]),
            ),
            bind: true,
            session: Some(true),
            stream_management: true,
            roster_versioning: true,
            other: vec![Element::bare(
                "register",
                "http://jabber.org/features/iq-register",
            )],
        };
        assert_eq!(StreamFeatures::from_element(&f.to_element()), Ok(f));
    }
}
