//! XEP-0030 Service Discovery, with XEP-0128 extended information and the
//! XEP-0115 Entity Capabilities verification string.
//!
//! * Data: [`DiscoInfo`] (identities, features, [`DataForm`]s), [`DiscoItems`],
//!   both serialized to and parsed from `<query/>` elements.
//! * Requests: [`DiscoQuery::from_iq`] reads a disco#info / disco#items get
//!   with its optional `node`.
//! * The server's answers: [`ServerDisco`] holds what the domain and its
//!   accounts advertise, built from the host's list of what is really
//!   implemented, and answers queries to the domain
//!   ([`ServerDisco::respond_domain`]) and, on behalf of an account, to its
//!   bare JID ([`ServerDisco::respond_account`], with the access rules of
//!   XEP-0030 §8).
//! * Caps: [`DiscoInfo::caps_verification_string`] and [`DiscoInfo::caps_ver`]
//!   (XEP-0115 §5.1, SHA-1), [`Caps`] for the `<c/>` element of presence and
//!   stream features, and [`Caps::verify`] (§5.4). The server passes `<c/>`
//!   in presence through unchanged; [`Caps::of`] reads it where wanted.
//!
//! ```
//! use xmpp_sansio::im::disco::{DiscoInfo, Identity};
//!
//! // XEP-0115 §5.2
//! let info = DiscoInfo::new()
//!     .with_identity(Identity::new("client", "pc").with_name("Exodus 0.9.1"))
//!     .with_features([
//!         "http://jabber.org/protocol/caps",
//!         "http://jabber.org/protocol/disco#info",
//!         "http://jabber.org/protocol/disco#items",
//!         "http://jabber.org/protocol/muc",
//!     ]);
//! assert_eq!(info.caps_ver().unwrap(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
//! ```
//!
//! # Choices
//!
//! | Where | XEP allows | Chosen |
//! |---|---|---|
//! | disco#info to the domain with an unknown node | `item-not-found` | `item-not-found`; the only known node is the caps node `node#ver` when [`ServerDisco::with_caps_node`] is set |
//! | disco#items to the domain with a node | `item-not-found` | `item-not-found` (no item nodes) |
//! | disco#info to an account, requester not allowed | §8: MUST `service-unavailable` | `service-unavailable`, the same as for a missing account |
//! | disco#items to an account, requester not allowed or no account | §8: MUST empty result | empty result, with or without node (a node error would reveal the account) |
//! | disco#info/#items to an account with a node, requester allowed | `item-not-found` | `item-not-found` (accounts have no nodes here) |
//! | iq set with a disco query | not defined (queries are get) | `bad-request` |
//! | features always listed | disco#info MUST be | `disco#info` and `disco#items` on the domain and on accounts (this module answers both), then the host's list, de-duplicated |

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use minidom::Element;
use sha1::{Digest, Sha1};

use crate::error::{StanzaError, StanzaErrorCondition, ncname, xml_lang};
use crate::jid::{FullJid, Jid};
use crate::ns;
use crate::stanza::{IqType, Stanza};

/// `http://jabber.org/protocol/disco#info`.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// `http://jabber.org/protocol/disco#items`.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// `jabber:x:data` (XEP-0004 data forms, used by XEP-0128).
pub const NS_DATA_FORMS: &str = "jabber:x:data";
/// `http://jabber.org/protocol/caps` (XEP-0115).
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";

/// The name of the field that types an XEP-0128 form.
pub const FORM_TYPE: &str = "FORM_TYPE";

/// A disco `<identity/>` (XEP-0030 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// `category`, e.g. `server`, `account`, `client`.
    pub category: String,
    /// The `type` attribute, e.g. `im`, `registered`, `pc`.
    pub kind: String,
    /// `xml:lang`, if the name is localized.
    pub lang: Option<String>,
    /// `name`: natural-language name.
    pub name: Option<String>,
}

impl Identity {
    /// An identity with `category` and `type`, without name or language.
    pub fn new(category: impl Into<String>, kind: impl Into<String>) -> Identity {
        Identity {
            category: category.into(),
            kind: kind.into(),
            lang: None,
            name: None,
        }
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Identity {
        self.name = Some(name.into());
        self
    }

    /// Sets `xml:lang`.
    pub fn with_lang(mut self, lang: impl Into<String>) -> Identity {
        self.lang = Some(lang.into());
        self
    }

    fn to_element(&self) -> Element {
        let mut el = Element::builder("identity", NS_DISCO_INFO)
            .attr(ncname("category"), self.category.as_str())
            .attr(ncname("type"), self.kind.as_str())
            .build();
        if let Some(lang) = &self.lang {
            let (lang_ns, lang_name) = xml_lang();
            el.set_attr(lang_ns, lang_name, lang.as_str());
        }
        if let Some(name) = &self.name {
            el.set_attr(rxml::Namespace::NONE, ncname("name"), name.as_str());
        }
        el
    }
}

/// One field of a data form: `var`, optional `type`, values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormField {
    /// `var` (absent only on `fixed` fields).
    pub var: Option<String>,
    /// `type` (`hidden`, `text-single`, `list-multi`, …), if given.
    pub field_type: Option<String>,
    /// The `<value/>` texts, in order.
    pub values: Vec<String>,
}

/// A `jabber:x:data` form as used for XEP-0128 extended disco information:
/// a `result` form whose hidden `FORM_TYPE` field names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    /// The form's `type` attribute (`result` for disco extensions).
    pub form_kind: String,
    /// The fields, in order, `FORM_TYPE` included.
    pub fields: Vec<FormField>,
}

impl DataForm {
    /// A `result` form with a hidden `FORM_TYPE` of `form_type`.
    pub fn extended_info(form_type: impl Into<String>) -> DataForm {
        DataForm {
            form_kind: "result".to_owned(),
            fields: vec![FormField {
                var: Some(FORM_TYPE.to_owned()),
                field_type: Some("hidden".to_owned()),
                values: vec![form_type.into()],
            }],
        }
    }

    /// Appends a field `var` (without `type`) with `values`.
    pub fn with_field<V: Into<String>>(
        mut self,
        var: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> DataForm {
        self.fields.push(FormField {
            var: Some(var.into()),
            field_type: None,
            values: values.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// The `FORM_TYPE` field, if the form has one of type `hidden`
    /// (XEP-0115 §5.4 ignores forms without it).
    fn form_type_field(&self) -> Option<&FormField> {
        self.fields
            .iter()
            .find(|f| f.var.as_deref() == Some(FORM_TYPE))
            .filter(|f| f.field_type.as_deref() == Some("hidden"))
    }

    /// The value of a hidden `FORM_TYPE` field.
    pub fn form_type(&self) -> Option<&str> {
        self.form_type_field()?.values.first().map(String::as_str)
    }

    /// The `<x xmlns='jabber:x:data'/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::builder("x", NS_DATA_FORMS)
            .attr(ncname("type"), self.form_kind.as_str())
            .build();
        for field in &self.fields {
            let mut f = Element::bare("field", NS_DATA_FORMS);
            if let Some(var) = &field.var {
                f.set_attr(rxml::Namespace::NONE, ncname("var"), var.as_str());
            }
            if let Some(t) = &field.field_type {
                f.set_attr(rxml::Namespace::NONE, ncname("type"), t.as_str());
            }
            for value in &field.values {
                let mut v = Element::bare("value", NS_DATA_FORMS);
                v.append_text(value.clone());
                f.append_child(v);
            }
            el.append_child(f);
        }
        el
    }

    /// Reads an `<x xmlns='jabber:x:data'/>` element (`None` for anything
    /// else). A form without `type` reads as `form`.
    pub fn from_element(el: &Element) -> Option<DataForm> {
        if !el.is("x", NS_DATA_FORMS) {
            return None;
        }
        let fields = el
            .children()
            .filter(|c| c.is("field", NS_DATA_FORMS))
            .map(|f| FormField {
                var: f.attr("var").map(str::to_owned),
                field_type: f.attr("type").map(str::to_owned),
                values: f
                    .children()
                    .filter(|v| v.is("value", NS_DATA_FORMS))
                    .map(Element::text)
                    .collect(),
            })
            .collect();
        Some(DataForm {
            form_kind: el.attr("type").unwrap_or("form").to_owned(),
            fields,
        })
    }
}

/// A disco#info result (XEP-0030 §3.1): identities, features and XEP-0128
/// extended information, for a JID and optional node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoInfo {
    /// The node the information is about (mirrored from the request).
    pub node: Option<String>,
    /// The identities, in order.
    pub identities: Vec<Identity>,
    /// The feature `var`s, in order.
    pub features: Vec<String>,
    /// XEP-0128 extended information forms.
    pub extensions: Vec<DataForm>,
}

/// Why an element is not a valid disco result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoError {
    /// Not a `<query/>` in the expected namespace.
    WrongElement,
    /// A required attribute is missing.
    MissingAttribute {
        /// The element, e.g. `identity`.
        element: &'static str,
        /// The attribute, e.g. `category`.
        attribute: &'static str,
    },
    /// An `<item/>` whose `jid` is not a JID.
    BadItemJid(String),
}

impl fmt::Display for DiscoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoError::WrongElement => f.write_str("not a disco <query/>"),
            DiscoError::MissingAttribute { element, attribute } => {
                write!(f, "<{element}/> without '{attribute}'")
            }
            DiscoError::BadItemJid(jid) => write!(f, "item jid {jid:?} is not a JID"),
        }
    }
}

impl std::error::Error for DiscoError {}

fn required<'a>(
    el: &'a Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str, DiscoError> {
    el.attr(attribute)
        .ok_or(DiscoError::MissingAttribute { element, attribute })
}

impl DiscoInfo {
    /// Nothing yet: add identities and features.
    pub fn new() -> DiscoInfo {
        DiscoInfo::default()
    }

    /// Adds an identity (an equal one already present is not repeated).
    pub fn with_identity(mut self, identity: Identity) -> DiscoInfo {
        if !self.identities.contains(&identity) {
            self.identities.push(identity);
        }
        self
    }

    /// Adds a feature (one already present is not repeated).
    pub fn with_feature(mut self, feature: impl Into<String>) -> DiscoInfo {
        let feature = feature.into();
        if !self.has_feature(&feature) {
            self.features.push(feature);
        }
        self
    }

    /// Adds features in order, skipping those already present.
    pub fn with_features<F: Into<String>>(
        self,
        features: impl IntoIterator<Item = F>,
    ) -> DiscoInfo {
        features.into_iter().fold(self, DiscoInfo::with_feature)
    }

    /// Adds an XEP-0128 form.
    pub fn with_extension(mut self, form: DataForm) -> DiscoInfo {
        self.extensions.push(form);
        self
    }

    /// Sets the node.
    pub fn with_node(mut self, node: impl Into<String>) -> DiscoInfo {
        self.node = Some(node.into());
        self
    }

    /// Whether `feature` is listed.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The `<query xmlns='http://jabber.org/protocol/disco#info'/>` element.
    pub fn to_element(&self) -> Element {
        let mut query = Element::bare("query", NS_DISCO_INFO);
        if let Some(node) = &self.node {
            query.set_attr(rxml::Namespace::NONE, ncname("node"), node.as_str());
        }
        for identity in &self.identities {
            query.append_child(identity.to_element());
        }
        for feature in &self.features {
            query.append_child(
                Element::builder("feature", NS_DISCO_INFO)
                    .attr(ncname("var"), feature.as_str())
                    .build(),
            );
        }
        for form in &self.extensions {
            query.append_child(form.to_element());
        }
        query
    }

    /// Reads a disco#info `<query/>` (a result). Children in other
    /// namespaces than disco#info and data forms are ignored; duplicates are
    /// kept as received (XEP-0115 verification must see them).
    pub fn from_element(el: &Element) -> Result<DiscoInfo, DiscoError> {
        if !el.is("query", NS_DISCO_INFO) {
            return Err(DiscoError::WrongElement);
        }
        let mut info = DiscoInfo {
            node: el.attr("node").map(str::to_owned),
            ..DiscoInfo::default()
        };
        for child in el.children() {
            if child.is("identity", NS_DISCO_INFO) {
                info.identities.push(Identity {
                    category: required(child, "identity", "category")?.to_owned(),
                    kind: required(child, "identity", "type")?.to_owned(),
                    lang: child.attr_ns(ns::XML, "lang").map(str::to_owned),
                    name: child.attr("name").map(str::to_owned),
                });
            } else if child.is("feature", NS_DISCO_INFO) {
                info.features
                    .push(required(child, "feature", "var")?.to_owned());
            } else if let Some(form) = DataForm::from_element(child) {
                info.extensions.push(form);
            }
        }
        Ok(info)
    }

    /// The XEP-0115 §5.1 verification string S (before hashing):
    /// identities sorted by category/type/lang as `category/type/lang/name<`,
    /// sorted features each followed by `<`, then for each form with a
    /// hidden `FORM_TYPE` (sorted by it): `FORM_TYPE<`, and per field other
    /// than `FORM_TYPE` (sorted by `var`) `var<` and its sorted values each
    /// followed by `<`. All sorting is by octets ("i;octet").
    ///
    /// Errors are the §5.4 ill-formed cases: a repeated identity, a repeated
    /// feature, two forms with the same `FORM_TYPE`, or a `FORM_TYPE` with
    /// differing values. Forms without a hidden `FORM_TYPE` are left out
    /// (§5.4 "ignore the form but continue processing").
    pub fn caps_verification_string(&self) -> Result<String, CapsError> {
        let mut identities: Vec<&Identity> = self.identities.iter().collect();
        identities.sort_by(|a, b| {
            (&a.category, &a.kind, &a.lang, &a.name).cmp(&(&b.category, &b.kind, &b.lang, &b.name))
        });
        if identities.windows(2).any(|w| w[0] == w[1]) {
            return Err(CapsError::DuplicateIdentity);
        }
        let mut features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        features.sort_unstable();
        if features.windows(2).any(|w| w[0] == w[1]) {
            return Err(CapsError::DuplicateFeature);
        }
        let mut forms: Vec<(&str, &DataForm)> = Vec::new();
        for form in &self.extensions {
            let Some(field) = form.form_type_field() else {
                continue;
            };
            let Some(first) = field.values.first() else {
                continue;
            };
            if field.values.iter().any(|v| v != first) {
                return Err(CapsError::AmbiguousFormType);
            }
            forms.push((first.as_str(), form));
        }
        forms.sort_by(|a, b| a.0.cmp(b.0));
        if forms.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(CapsError::DuplicateFormType);
        }

        let mut s = String::new();
        for identity in identities {
            for part in [
                identity.category.as_str(),
                "/",
                identity.kind.as_str(),
                "/",
                identity.lang.as_deref().unwrap_or(""),
                "/",
                identity.name.as_deref().unwrap_or(""),
                "<",
            ] {
                s.push_str(part);
            }
        }
        for feature in features {
            s.push_str(feature);
            s.push('<');
        }
        for (form_type, form) in forms {
            s.push_str(form_type);
            s.push('<');
            let mut fields: Vec<(&str, &FormField)> = form
                .fields
                .iter()
                .filter_map(|f| f.var.as_deref().map(|var| (var, f)))
                .filter(|(var, _)| *var != FORM_TYPE)
                .collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            for (var, field) in fields {
                s.push_str(var);
                s.push('<');
                let mut values: Vec<&str> = field.values.iter().map(String::as_str).collect();
                values.sort_unstable();
                for value in values {
                    s.push_str(value);
                    s.push('<');
                }
            }
        }
        Ok(s)
    }

    /// The XEP-0115 `ver` with `hash='sha-1'`: Base64 (padded, no
    /// whitespace) of SHA-1 over the UTF-8 verification string.
    pub fn caps_ver(&self) -> Result<String, CapsError> {
        let s = self.caps_verification_string()?;
        Ok(BASE64.encode(Sha1::digest(s.as_bytes())))
    }
}

/// A disco#info result that XEP-0115 §5.4 calls ill-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapsError {
    /// Two identities with the same category/type/lang/name.
    DuplicateIdentity,
    /// The same feature twice.
    DuplicateFeature,
    /// Two extended-information forms with the same `FORM_TYPE`.
    DuplicateFormType,
    /// A `FORM_TYPE` field with differing values.
    AmbiguousFormType,
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapsError::DuplicateIdentity => "an identity is listed twice",
            CapsError::DuplicateFeature => "a feature is listed twice",
            CapsError::DuplicateFormType => "two forms have the same FORM_TYPE",
            CapsError::AmbiguousFormType => "a FORM_TYPE has differing values",
        })
    }
}

impl std::error::Error for CapsError {}

/// One disco `<item/>` (XEP-0030 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoItem {
    /// `jid` (required).
    pub jid: Jid,
    /// `node`, for items not addressable by a JID alone.
    pub node: Option<String>,
    /// `name`.
    pub name: Option<String>,
}

impl DiscoItem {
    /// An item with only a JID.
    pub fn new(jid: Jid) -> DiscoItem {
        DiscoItem {
            jid,
            node: None,
            name: None,
        }
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> DiscoItem {
        self.name = Some(name.into());
        self
    }

    /// Sets the node.
    pub fn with_node(mut self, node: impl Into<String>) -> DiscoItem {
        self.node = Some(node.into());
        self
    }
}

/// A disco#items result (XEP-0030 §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoItems {
    /// The node queried (mirrored).
    pub node: Option<String>,
    /// The items, in order.
    pub items: Vec<DiscoItem>,
}

impl DiscoItems {
    /// The `<query xmlns='http://jabber.org/protocol/disco#items'/>` element.
    pub fn to_element(&self) -> Element {
        let mut query = Element::bare("query", NS_DISCO_ITEMS);
        if let Some(node) = &self.node {
            query.set_attr(rxml::Namespace::NONE, ncname("node"), node.as_str());
        }
        for item in &self.items {
            let mut el = Element::builder("item", NS_DISCO_ITEMS)
                .attr(ncname("jid"), item.jid.as_str())
                .build();
            if let Some(node) = &item.node {
                el.set_attr(rxml::Namespace::NONE, ncname("node"), node.as_str());
            }
            if let Some(name) = &item.name {
                el.set_attr(rxml::Namespace::NONE, ncname("name"), name.as_str());
            }
            query.append_child(el);
        }
        query
    }

    /// Reads a disco#items `<query/>` (a result).
    pub fn from_element(el: &Element) -> Result<DiscoItems, DiscoError> {
        if !el.is("query", NS_DISCO_ITEMS) {
            return Err(DiscoError::WrongElement);
        }
        let mut items = Vec::new();
        for child in el.children().filter(|c| c.is("item", NS_DISCO_ITEMS)) {
            let raw = required(child, "item", "jid")?;
            items.push(DiscoItem {
                jid: raw
                    .parse()
                    .map_err(|_| DiscoError::BadItemJid(raw.to_owned()))?,
                node: child.attr("node").map(str::to_owned),
                name: child.attr("name").map(str::to_owned),
            });
        }
        Ok(DiscoItems {
            node: el.attr("node").map(str::to_owned),
            items,
        })
    }
}

/// A disco request (iq get with a `<query/>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoQuery {
    /// disco#info, optionally about a node.
    Info {
        /// The `node` attribute.
        node: Option<String>,
    },
    /// disco#items, optionally of a node.
    Items {
        /// The `node` attribute.
        node: Option<String>,
    },
}

impl DiscoQuery {
    /// Reads a disco request. `None` if `iq` is not an iq request with a
    /// disco#info or disco#items `<query/>`; `Some(Err(bad-request))` for
    /// an iq set or more than one payload.
    pub fn from_iq(iq: &Stanza) -> Option<Result<DiscoQuery, StanzaError>> {
        let Some(Ok(iq_type)) = iq.iq_type() else {
            return None;
        };
        if !iq_type.is_request() {
            return None;
        }
        let element = iq.element();
        let query = element
            .children()
            .find(|c| c.is("query", NS_DISCO_INFO) || c.is("query", NS_DISCO_ITEMS))?;
        if element.children().count() != 1 {
            return Some(Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                .with_text("an iq request carries exactly one payload")));
        }
        if iq_type == IqType::Set {
            return Some(Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                .with_text("service discovery queries are iq get")));
        }
        let node = query.attr("node").map(str::to_owned);
        Some(Ok(if query.has_ns(NS_DISCO_INFO) {
            DiscoQuery::Info { node }
        } else {
            DiscoQuery::Items { node }
        }))
    }

    /// The `node` of the request.
    pub fn node(&self) -> Option<&str> {
        match self {
            DiscoQuery::Info { node } | DiscoQuery::Items { node } => node.as_deref(),
        }
    }

    /// The request's `<query/>` element (as a client sends it).
    pub fn to_element(&self) -> Element {
        let (namespace, node) = match self {
            DiscoQuery::Info { node } => (NS_DISCO_INFO, node),
            DiscoQuery::Items { node } => (NS_DISCO_ITEMS, node),
        };
        let mut query = Element::bare("query", namespace);
        if let Some(node) = node {
            query.set_attr(rxml::Namespace::NONE, ncname("node"), node.as_str());
        }
        query
    }
}

/// Who asks about an account, for the access rules of XEP-0030 §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// The account itself (any of its resources).
    Owner,
    /// An entity allowed to receive the account's presence (the account
    /// has a subscription of type `from` or `both` to it) or otherwise
    /// trusted by the server.
    Authorized,
    /// Anyone else.
    Other,
}

/// The host's facts about the account a disco query is addressed to.
#[derive(Clone, Copy, Debug)]
pub struct AccountDisco<'a> {
    /// Whether the account exists.
    pub exists: bool,
    /// Who asks.
    pub requester: Requester,
    /// The account's connected or available resources, listed as items for
    /// an allowed requester (XEP-0030 §4.1).
    pub resources: &'a [FullJid],
}

/// What the server advertises about its domain and its accounts, and the
/// answers to disco queries addressed to them.
///
/// ```
/// use xmpp_sansio::im::disco::{Identity, ServerDisco, NS_DISCO_INFO};
///
/// // The host lists only what it really implements.
/// let disco = ServerDisco::new(
///     Identity::new("server", "im").with_name("example"),
///     ["urn:xmpp:ping", "urn:xmpp:blocking", "msgoffline"],
/// );
/// assert!(disco.domain_info().has_feature(NS_DISCO_INFO));
/// assert!(disco.domain_info().has_feature("msgoffline"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerDisco {
    domain_info: DiscoInfo,
    domain_items: Vec<DiscoItem>,
    account_info: DiscoInfo,
    caps_node: Option<String>,
}

impl ServerDisco {
    /// The domain's disco: `identity` (normally `server/im`), the features
    /// `disco#info` and `disco#items`, then `features` (de-duplicated). An
    /// account answers with identity `account/registered` and the two disco
    /// features, until changed with [`with_account_identity`] and
    /// [`with_account_features`].
    ///
    /// [`with_account_identity`]: ServerDisco::with_account_identity
    /// [`with_account_features`]: ServerDisco::with_account_features
    pub fn new<F: Into<String>>(
        identity: Identity,
        features: impl IntoIterator<Item = F>,
    ) -> ServerDisco {
        let base = DiscoInfo::new().with_features([NS_DISCO_INFO, NS_DISCO_ITEMS]);
        ServerDisco {
            domain_info: base.clone().with_identity(identity).with_features(features),
            domain_items: Vec::new(),
            account_info: base.with_identity(Identity::new("account", "registered")),
            caps_node: None,
        }
    }

    /// Adds a disco#items item of the domain (a component, a MUC service…).
    pub fn with_item(mut self, item: DiscoItem) -> ServerDisco {
        self.domain_items.push(item);
        self
    }

    /// Adds an XEP-0128 form to the domain's disco#info (e.g. XEP-0157
    /// contact addresses).
    pub fn with_extension(mut self, form: DataForm) -> ServerDisco {
        self.domain_info = self.domain_info.with_extension(form);
        self
    }

    /// Adds an identity to accounts (e.g. `pubsub/pep` when PEP is
    /// implemented).
    pub fn with_account_identity(mut self, identity: Identity) -> ServerDisco {
        self.account_info = self.account_info.with_identity(identity);
        self
    }

    /// Adds features that accounts advertise (answered on their behalf).
    pub fn with_account_features<F: Into<String>>(
        mut self,
        features: impl IntoIterator<Item = F>,
    ) -> ServerDisco {
        self.account_info = self.account_info.with_features(features);
        self
    }

    /// Advertises XEP-0115 caps for the domain under `node` (a URI naming
    /// the software): [`caps`](ServerDisco::caps) gives the `<c/>` for
    /// stream features (XEP-0115 §6.3), and disco#info to `node#ver` is
    /// answered.
    pub fn with_caps_node(mut self, node: impl Into<String>) -> ServerDisco {
        self.caps_node = Some(node.into());
        self
    }

    /// The domain's disco#info.
    pub fn domain_info(&self) -> &DiscoInfo {
        &self.domain_info
    }

    /// What accounts advertise.
    pub fn account_info(&self) -> &DiscoInfo {
        &self.account_info
    }

    /// The domain's caps, if a caps node is set and the domain's info is
    /// well-formed for XEP-0115.
    pub fn caps(&self) -> Option<Caps> {
        let node = self.caps_node.as_ref()?;
        Caps::for_info(node.clone(), &self.domain_info).ok()
    }

    /// The answer to `query` addressed to the domain: the `<query/>` result
    /// payload, or the error.
    pub fn answer_domain(&self, query: &DiscoQuery) -> Result<Element, StanzaError> {
        match query {
            DiscoQuery::Info { node: None } => Ok(self.domain_info.to_element()),
            DiscoQuery::Info { node: Some(node) } => match self.caps() {
                Some(caps) if *node == caps.disco_node() => Ok(self
                    .domain_info
                    .clone()
                    .with_node(node.clone())
                    .to_element()),
                _ => Err(item_not_found()),
            },
            DiscoQuery::Items { node: None } => Ok(DiscoItems {
                node: None,
                items: self.domain_items.clone(),
            }
            .to_element()),
            DiscoQuery::Items { node: Some(_) } => Err(item_not_found()),
        }
    }

    /// The answer to `query` addressed to an account's bare JID, given by
    /// the server on its behalf (XEP-0030 §3.1, §4.1, §8):
    ///
    /// | query | no account, or requester `Other` | `Owner` / `Authorized` |
    /// |---|---|---|
    /// | info, no node | `service-unavailable` | account identity and features |
    /// | info, node | `service-unavailable` | `item-not-found` |
    /// | items, no node | empty result | the account's resources |
    /// | items, node | empty result | `item-not-found` |
    pub fn answer_account(
        &self,
        query: &DiscoQuery,
        account: &AccountDisco<'_>,
    ) -> Result<Element, StanzaError> {
        let allowed = account.exists && account.requester != Requester::Other;
        match query {
            DiscoQuery::Info { .. } if !allowed => {
                Err(StanzaError::new(StanzaErrorCondition::ServiceUnavailable))
            }
            DiscoQuery::Info { node: None } => Ok(self.account_info.to_element()),
            DiscoQuery::Items { node } if !allowed => Ok(DiscoItems {
                node: node.clone(),
                items: Vec::new(),
            }
            .to_element()),
            DiscoQuery::Items { node: None } => Ok(DiscoItems {
                node: None,
                items: account
                    .resources
                    .iter()
                    .map(|r| DiscoItem::new(Jid::Full(r.clone())))
                    .collect(),
            }
            .to_element()),
            DiscoQuery::Info { node: Some(_) } | DiscoQuery::Items { node: Some(_) } => {
                Err(item_not_found())
            }
        }
    }

    /// The reply stanza to a disco iq addressed to the domain; `None` if
    /// `iq` is not a disco request.
    pub fn respond_domain(&self, iq: &Stanza) -> Option<Stanza> {
        respond(iq, |query| self.answer_domain(query))
    }

    /// The reply stanza to a disco iq addressed to an account's bare JID;
    /// `None` if `iq` is not a disco request.
    pub fn respond_account(&self, iq: &Stanza, account: &AccountDisco<'_>) -> Option<Stanza> {
        respond(iq, |query| self.answer_account(query, account))
    }
}

fn item_not_found() -> StanzaError {
    StanzaError::new(StanzaErrorCondition::ItemNotFound)
}

fn respond(
    iq: &Stanza,
    answer: impl FnOnce(&DiscoQuery) -> Result<Element, StanzaError>,
) -> Option<Stanza> {
    match DiscoQuery::from_iq(iq)?.and_then(|query| answer(&query)) {
        Ok(payload) => iq.iq_result(Some(payload)),
        Err(error) => iq.error_reply(&error),
    }
}

/// An XEP-0115 `<c xmlns='http://jabber.org/protocol/caps'/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// `hash`: the hash function (`sha-1`); absent in the legacy format.
    pub hash: Option<String>,
    /// `node`: a URI naming the software.
    pub node: String,
    /// `ver`: the verification string (or a legacy version).
    pub ver: String,
    /// `ext`: legacy extension names (deprecated).
    pub ext: Option<String>,
}

/// The result of checking a [`Caps`] against a disco#info result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapsVerification {
    /// `ver` is the SHA-1 of the info: cache it for the `ver` globally.
    Valid,
    /// `ver` does not match: do not cache it (§5.4 step 3.9).
    Mismatch,
    /// The info is ill-formed (§5.4 steps 3.3–3.5).
    IllFormed(CapsError),
    /// A `hash` other than `sha-1`: associate the info only with the JID.
    UnsupportedHash,
    /// No `hash`: the legacy format, nothing to verify.
    Legacy,
}

impl Caps {
    /// Reads a `<c/>` element; `None` if it is not one or lacks `node` or
    /// `ver` (both required).
    pub fn from_element(el: &Element) -> Option<Caps> {
        if !el.is("c", NS_CAPS) {
            return None;
        }
        Some(Caps {
            hash: el.attr("hash").map(str::to_owned),
            node: el.attr("node")?.to_owned(),
            ver: el.attr("ver")?.to_owned(),
            ext: el.attr("ext").map(str::to_owned),
        })
    }

    /// The caps in a presence stanza (or stream features), if any. The
    /// server forwards presence with its `<c/>` untouched; this only reads.
    pub fn of(stanza: &Stanza) -> Option<Caps> {
        stanza
            .element()
            .get_child("c", NS_CAPS)
            .and_then(Caps::from_element)
    }

    /// The SHA-1 caps of `info` under `node`.
    pub fn for_info(node: impl Into<String>, info: &DiscoInfo) -> Result<Caps, CapsError> {
        Ok(Caps {
            hash: Some("sha-1".to_owned()),
            node: node.into(),
            ver: info.caps_ver()?,
            ext: None,
        })
    }

    /// The `<c/>` element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("c", NS_CAPS);
        if let Some(hash) = &self.hash {
            el.set_attr(rxml::Namespace::NONE, ncname("hash"), hash.as_str());
        }
        el.set_attr(rxml::Namespace::NONE, ncname("node"), self.node.as_str());
        el.set_attr(rxml::Namespace::NONE, ncname("ver"), self.ver.as_str());
        if let Some(ext) = &self.ext {
            el.set_attr(rxml::Namespace::NONE, ncname("ext"), ext.as_str());
        }
        el
    }

    /// The disco node to query for these caps: `node#ver` (XEP-0115 §6.2).
    pub fn disco_node(&self) -> String {
        format!("{}#{}", self.node, self.ver)
    }

    /// Checks `info` (the disco#info result for [`disco_node`]) against
    /// `ver` (XEP-0115 §5.4).
    ///
    /// [`disco_node`]: Caps::disco_node
    pub fn verify(&self, info: &DiscoInfo) -> CapsVerification {
        match self.hash.as_deref() {
            None => CapsVerification::Legacy,
            Some("sha-1") => match info.caps_ver() {
                Err(e) => CapsVerification::IllFormed(e),
                Ok(ver) if ver == self.ver => CapsVerification::Valid,
                Ok(_) => CapsVerification::Mismatch,
            },
            Some(_) => CapsVerification::UnsupportedHash,
        }
    }
}
