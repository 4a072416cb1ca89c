//! Stanzas: `<message/>`, `<presence/>` and `<iq/>` (RFC 6120 §8).
//!
//! A [`Stanza`] is a [`minidom::Element`] whose kind is known, with cheap
//! accessors for the attributes routing needs. The element stays the source
//! of truth, so forwarding a stanza never loses an extension.

use std::fmt;

use minidom::Element;
use rxml::Namespace;

use crate::error::{StanzaError, ncname};
use crate::jid::{Jid, JidError};

/// The three stanza kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `<message/>`
    Message,
    /// `<presence/>`
    Presence,
    /// `<iq/>`
    Iq,
}

impl StanzaKind {
    /// The element name.
    pub fn name(self) -> &'static str {
        match self {
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
            StanzaKind::Iq => "iq",
        }
    }
}

/// The `type` of a message (RFC 6121 §5.2.2). An unknown or absent type is
/// `normal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `normal` (the default).
    Normal,
    /// `chat`
    Chat,
    /// `groupchat`
    Groupchat,
    /// `headline`
    Headline,
    /// `error`
    Error,
}

/// The `type` of a presence (RFC 6121 §4.7.1). Absent means available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// No `type`: the sender is available.
    Available,
    /// `unavailable`
    Unavailable,
    /// `subscribe`
    Subscribe,
    /// `subscribed`
    Subscribed,
    /// `unsubscribe`
    Unsubscribe,
    /// `unsubscribed`
    Unsubscribed,
    /// `probe`
    Probe,
    /// `error`
    Error,
}

impl PresenceType {
    /// `subscribe`, `subscribed`, `unsubscribe` or `unsubscribed`.
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed
        )
    }
}

/// The `type` of an iq (RFC 6120 §8.2.3); required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IqType {
    /// `get`
    Get,
    /// `set`
    Set,
    /// `result`
    Result,
    /// `error`
    Error,
}

impl IqType {
    /// Whether this is a request (`get`/`set`), which needs exactly one reply.
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

/// A stanza: a first-level `message`, `presence` or `iq` in the stream's
/// content namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Stanza {
    kind: StanzaKind,
    element: Element,
}

/// An element that is not a stanza of the given content namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct NotAStanza(pub Element);

impl fmt::Display for NotAStanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{} xmlns='{}'/> is not a stanza",
            self.0.name(),
            self.0.ns()
        )
    }
}

impl std::error::Error for NotAStanza {}

impl Stanza {
    /// Wraps `element` if it is a stanza in `content_namespace`
    /// (`jabber:client`, `jabber:server`, …); gives it back otherwise.
    pub fn from_element(element: Element, content_namespace: &str) -> Result<Stanza, NotAStanza> {
        if element.ns() != content_namespace {
            return Err(NotAStanza(element));
        }
        let kind = match element.name() {
            "message" => StanzaKind::Message,
            "presence" => StanzaKind::Presence,
            "iq" => StanzaKind::Iq,
            _ => return Err(NotAStanza(element)),
        };
        Ok(Stanza { kind, element })
    }

    /// A new, empty stanza of `kind` in `content_namespace`.
    pub fn new(kind: StanzaKind, content_namespace: &str) -> Stanza {
        Stanza {
            kind,
            element: Element::bare(kind.name(), content_namespace),
        }
    }

    /// A `<message type='chat'>` with a `<body/>`.
    pub fn chat(to: &Jid, body: &str) -> Stanza {
        let mut s = Stanza::new(StanzaKind::Message, crate::ns::JABBER_CLIENT);
        s.set_to(Some(to.as_str()));
        s.set_attr("type", Some("chat"));
        let mut b = Element::bare("body", crate::ns::JABBER_CLIENT);
        b.append_text(body.to_owned());
        s.element.append_child(b);
        s
    }

    /// An `<iq/>` request of `iq_type` (`get`/`set`) with one payload.
    pub fn iq(iq_type: IqType, to: Option<&Jid>, id: &str, payload: Element) -> Stanza {
        let mut s = Stanza::new(StanzaKind::Iq, crate::ns::JABBER_CLIENT);
        s.set_attr(
            "type",
            Some(match iq_type {
                IqType::Get => "get",
                IqType::Set => "set",
                IqType::Result => "result",
                IqType::Error => "error",
            }),
        );
        s.set_id(Some(id));
        s.set_to(to.map(Jid::as_str));
        s.element.append_child(payload);
        s
    }

    /// The kind.
    pub fn kind(&self) -> StanzaKind {
        self.kind
    }

    /// The element.
    pub fn element(&self) -> &Element {
        &self.element
    }

    /// The element, mutably (the kind cannot change).
    pub fn element_mut(&mut self) -> &mut Element {
        &mut self.element
    }

    /// The element, by value.
    pub fn into_element(self) -> Element {
        self.element
    }

    /// The raw `to` attribute.
    pub fn to(&self) -> Option<&str> {
        self.element.attr("to")
    }

    /// The raw `from` attribute.
    pub fn from(&self) -> Option<&str> {
        self.element.attr("from")
    }

    /// The `id` attribute.
    pub fn id(&self) -> Option<&str> {
        self.element.attr("id")
    }

    /// The raw `type` attribute.
    pub fn type_attr(&self) -> Option<&str> {
        self.element.attr("type")
    }

    /// `to` as a JID: `None` when absent.
    pub fn to_jid(&self) -> Option<Result<Jid, JidError>> {
        self.to().map(str::parse)
    }

    /// `from` as a JID: `None` when absent.
    pub fn from_jid(&self) -> Option<Result<Jid, JidError>> {
        self.from().map(str::parse)
    }

    /// Sets or removes an attribute without namespace.
    pub fn set_attr(&mut self, name: &'static str, value: Option<&str>) {
        let attrs = self.element.attrs_mut();
        match value {
            Some(v) => {
                attrs.insert(Namespace::NONE, ncname(name), v.to_owned());
            }
            None => {
                attrs.remove(Namespace::none(), name);
            }
        }
    }

    /// Sets or removes `to`.
    pub fn set_to(&mut self, to: Option<&str>) {
        self.set_attr("to", to);
    }

    /// Sets or removes `from`.
    pub fn set_from(&mut self, from: Option<&str>) {
        self.set_attr("from", from);
    }

    /// Sets or removes `id`.
    pub fn set_id(&mut self, id: Option<&str>) {
        self.set_attr("id", id);
    }

    /// Whether `type='error'`.
    pub fn is_error(&self) -> bool {
        self.type_attr() == Some("error")
    }

    /// The message type (for messages; unknown values are `normal`).
    pub fn message_type(&self) -> Option<MessageType> {
        (self.kind == StanzaKind::Message).then(|| match self.type_attr() {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        })
    }

    /// The presence type (for presences); `Some(Err(()))` for an unknown value.
    pub fn presence_type(&self) -> Option<Result<PresenceType, ()>> {
        (self.kind == StanzaKind::Presence).then(|| {
            Ok(match self.type_attr() {
                None => PresenceType::Available,
                Some("unavailable") => PresenceType::Unavailable,
                Some("subscribe") => PresenceType::Subscribe,
                Some("subscribed") => PresenceType::Subscribed,
                Some("unsubscribe") => PresenceType::Unsubscribe,
                Some("unsubscribed") => PresenceType::Unsubscribed,
                Some("probe") => PresenceType::Probe,
                Some("error") => PresenceType::Error,
                Some(_) => return Err(()),
            })
        })
    }

    /// Whether this is a subscription presence (`subscribe`,
    /// `subscribed`, `unsubscribe`, `unsubscribed`; RFC 6121 §3), which
    /// servers stamp with the sender's bare JID and handle apart.
    pub fn is_subscription_presence(&self) -> bool {
        self.presence_type()
            .and_then(Result::ok)
            .is_some_and(PresenceType::is_subscription)
    }

    /// The iq type (for iqs); `Some(Err(()))` when absent or unknown.
    pub fn iq_type(&self) -> Option<Result<IqType, ()>> {
        (self.kind == StanzaKind::Iq).then(|| match self.type_attr() {
            Some("get") => Ok(IqType::Get),
            Some("set") => Ok(IqType::Set),
            Some("result") => Ok(IqType::Result),
            Some("error") => Ok(IqType::Error),
            _ => Err(()),
        })
    }

    /// The payload of an iq: its only child element, if exactly one.
    pub fn iq_payload(&self) -> Option<&Element> {
        let mut children = self.element.children();
        let first = children.next()?;
        children.next().is_none().then_some(first)
    }

    /// The presence priority (RFC 6121 §4.7.2.3): `0` when absent,
    /// `None` when not an integer in −128..=127.
    pub fn priority(&self) -> Option<i8> {
        match self
            .element
            .get_child("priority", self.element.ns().as_str())
        {
            None => Some(0),
            Some(p) => p.text().trim().parse().ok(),
        }
    }

    /// The stanza error, for `type='error'` stanzas.
    pub fn error(&self) -> Option<StanzaError> {
        if self.is_error() {
            StanzaError::from_stanza(&self.element)
        } else {
            None
        }
    }

    /// The error reply to this stanza (RFC 6120 §8.3.1): same kind and id,
    /// `to`/`from` swapped, `type='error'`, the original payload kept.
    /// `None` for an error stanza: errors are never answered with errors.
    pub fn error_reply(&self, error: &StanzaError) -> Option<Stanza> {
        if self.is_error() {
            return None;
        }
        let ns = self.element.ns();
        let mut reply = Stanza::new(self.kind, &ns);
        reply.set_id(self.id());
        reply.set_to(self.from());
        reply.set_from(self.to());
        reply.set_attr("type", Some("error"));
        for child in self.element.children() {
            reply.element.append_child(child.clone());
        }
        reply.element.append_child(error.to_element(&ns));
        Some(reply)
    }

    /// The empty `result` reply to an iq request (to/from swapped, same id).
    pub fn iq_result(&self, payload: Option<Element>) -> Option<Stanza> {
        if self.iq_type() != Some(Ok(IqType::Get)) && self.iq_type() != Some(Ok(IqType::Set)) {
            return None;
        }
        let mut reply = Stanza::new(StanzaKind::Iq, &self.element.ns());
        reply.set_attr("type", Some("result"));
        reply.set_id(self.id());
        reply.set_to(self.from());
        reply.set_from(self.to());
        if let Some(p) = payload {
            reply.element.append_child(p);
        }
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StanzaErrorCondition;

    fn parse(xml: &str) -> Stanza {
        Stanza::from_element(xml.parse().unwrap(), "jabber:client").unwrap()
    }

    #[test]
    fn kinds_and_types() {
        let m = parse("<message xmlns='jabber:client' type='bogus'/>");
        assert_eq!(m.message_type(), Some(MessageType::Normal));
        let p = parse("<presence xmlns='jabber:client'><priority>-5</priority></presence>");
        assert_eq!(p.presence_type(), Some(Ok(PresenceType::Available)));
        assert_eq!(p.priority(), Some(-5));
        let p =
            parse("<presence xmlns='jabber:client' type='x'><priority>300</priority></presence>");
        assert_eq!(p.presence_type(), Some(Err(())));
        assert_eq!(p.priority(), None);
        let iq = parse("<iq xmlns='jabber:client' id='1'/>");
        assert_eq!(iq.iq_type(), Some(Err(())));
        assert!(
            Stanza::from_element(
                "<iq xmlns='jabber:server'/>".parse().unwrap(),
                "jabber:client"
            )
            .is_err()
        );
        assert!(
            Stanza::from_element(
                "<foo xmlns='jabber:client'/>".parse().unwrap(),
                "jabber:client"
            )
            .is_err()
        );
    }

    #[test]
    fn error_reply_swaps_and_never_answers_errors() {
        let iq = parse(
            "<iq xmlns='jabber:client' type='get' id='q1' from='a@b/c' to='d'><query xmlns='urn:x'/></iq>",
        );
        let err = StanzaError::new(StanzaErrorCondition::ServiceUnavailable);
        let reply = iq.error_reply(&err).unwrap();
        assert_eq!(reply.to(), Some("a@b/c"));
        assert_eq!(reply.from(), Some("d"));
        assert_eq!(reply.id(), Some("q1"));
        assert!(reply.is_error());
        assert_eq!(reply.error(), Some(err.clone()));
        assert!(reply.element().has_child("query", "urn:x"));
        assert_eq!(reply.error_reply(&err), None);
    }
}
