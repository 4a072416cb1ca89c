//! Namespace names used on XMPP streams (RFC 6120 and the XEPs).
//!
//! Elements are always matched by (namespace, local name), never by prefix.

/// `http://etherx.jabber.org/streams`: `<stream:stream>`, `<stream:features>`, `<stream:error>`.
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// `jabber:client`: stanzas on client-to-server streams.
pub const JABBER_CLIENT: &str = "jabber:client";
/// `jabber:server`: stanzas on server-to-server streams.
pub const JABBER_SERVER: &str = "jabber:server";
/// `jabber:component:accept`: stanzas on XEP-0114 component streams.
pub const JABBER_COMPONENT_ACCEPT: &str = "jabber:component:accept";
/// `urn:ietf:params:xml:ns:xmpp-streams`: stream error conditions and their `<text/>`.
pub const XMPP_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// `urn:ietf:params:xml:ns:xmpp-stanzas`: stanza error conditions and their `<text/>`.
pub const XMPP_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// `urn:ietf:params:xml:ns:xmpp-tls`: STARTTLS.
pub const XMPP_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// `urn:ietf:params:xml:ns:xmpp-sasl`: SASL.
pub const XMPP_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// `urn:ietf:params:xml:ns:xmpp-bind`: resource binding.
pub const XMPP_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// `urn:ietf:params:xml:ns:xmpp-session`: legacy session establishment (RFC 3921).
pub const XMPP_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The `xml:` namespace (`xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
