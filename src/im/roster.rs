//! Rosters (RFC 6121 §2): items, the `jabber:iq:roster` query, validation
//! of a client's roster set, results, pushes and versioning (§2.6, formerly
//! XEP-0237).
//!
//! # Versioning scheme
//!
//! The version of a user's roster is a counter, starting at 0, that goes up
//! by one with every change a client can see (an item added, updated or
//! removed; a change of `subscription`, `ask` or `approved`). On the wire it
//! is the decimal number (`ver='7'`). A roster get whose `ver` equals the
//! current version is answered with an empty result; any other `ver` (older,
//! unknown, empty, garbage) gets the whole roster with the current version.
//! Changes after that reach the client as pushes, each with the version it
//! produced. The counter keeps no history, so the server never sends "the
//! pushes since version N"; the full roster is the fallback RFC 6121 §2.6.3
//! allows.

use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition, ncname};
use crate::im::subscription::SubscriptionState;
use crate::jid::{BareJid, FullJid, Jid};
use crate::stanza::{IqType, Stanza};

/// `jabber:iq:roster` (RFC 6121 §2).
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// `urn:xmpp:features:rosterver`: the stream feature announcing roster
/// versioning (RFC 6121 §2.6.1).
pub const NS_ROSTER_VERSIONING: &str = "urn:xmpp:features:rosterver";
/// `urn:xmpp:features:pre-approval`: the stream feature announcing
/// subscription pre-approval (RFC 6121 §3.4).
pub const NS_PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";

/// The `<ver xmlns='urn:xmpp:features:rosterver'/>` stream feature.
pub fn roster_versioning_feature() -> Element {
    Element::bare("ver", NS_ROSTER_VERSIONING)
}

/// The `<sub xmlns='urn:xmpp:features:pre-approval'/>` stream feature.
pub fn pre_approval_feature() -> Element {
    Element::bare("sub", NS_PRE_APPROVAL)
}

/// The subscription between the user and a contact (RFC 6121 §2.1.2.5),
/// from the user's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subscription {
    /// Neither sees the other's presence.
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    /// Both see each other's presence.
    Both,
}

impl Subscription {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses the attribute value (not `remove`: see [`SubscriptionAttr`]).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => return None,
        })
    }

    /// Whether the user receives the contact's presence (`to` or `both`).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether the contact receives the user's presence (`from` or `both`).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    /// The subscription with the given `to` and `from` halves.
    pub fn from_halves(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

/// The `subscription` attribute of an item in a query: a [`Subscription`]
/// or `remove` (RFC 6121 §2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionAttr {
    /// A subscription state (in results and pushes).
    State(Subscription),
    /// `remove`: in a set, the client removes the item; in a push, the
    /// item was removed.
    Remove,
}

impl SubscriptionAttr {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            SubscriptionAttr::State(s) => s.name(),
            SubscriptionAttr::Remove => "remove",
        }
    }

    /// Parses the attribute value.
    pub fn from_name(s: &str) -> Option<Self> {
        if s == "remove" {
            Some(SubscriptionAttr::Remove)
        } else {
            Subscription::from_name(s).map(SubscriptionAttr::State)
        }
    }
}

/// A roster item as the server stores it (RFC 6121 §2.1.2).
///
/// `pending_in` and `in_roster` are server-side only: they never appear on
/// the wire ([`to_element`](Self::to_element) leaves them out).
#[derive(Clone, Debug, PartialEq)]
pub struct RosterItem {
    /// The contact (a bare JID).
    pub jid: BareJid,
    /// The name the user gave the contact.
    pub name: Option<String>,
    /// The groups, in the order the user gave them, without duplicates.
    pub groups: Vec<String>,
    /// The subscription state.
    pub subscription: Subscription,
    /// The user asked to subscribe to the contact's presence and has no
    /// answer yet (`ask='subscribe'`, "Pending Out").
    pub pending_out: bool,
    /// The user pre-approved a subscription request from the contact
    /// (`approved='true'`, RFC 6121 §3.4).
    pub approved: bool,
    /// The contact asked to subscribe to the user's presence and the user
    /// has not answered ("Pending In"): the request as it arrived, kept to
    /// be delivered again whenever the user becomes available (RFC 6121
    /// §3.1.3). Never sent as an attribute.
    pub pending_in: Option<Stanza>,
    /// Whether the item belongs to the roster the user sees. `false` only
    /// for the record of a subscription request from a contact the user
    /// never added ("None + Pending In" without an item): it is neither in
    /// roster results nor pushed (RFC 6121 Appendix A.1), and it is deleted
    /// when the request is answered or withdrawn.
    pub in_roster: bool,
}

impl RosterItem {
    /// A new item in the roster, with subscription `none` and nothing
    /// pending.
    pub fn new(jid: BareJid) -> Self {
        RosterItem {
            jid,
            name: None,
            groups: Vec::new(),
            subscription: Subscription::None,
            pending_out: false,
            approved: false,
            pending_in: None,
            in_roster: true,
        }
    }

    /// The subscription state of Appendix A (subscription, Pending Out,
    /// Pending In).
    pub fn state(&self) -> SubscriptionState {
        SubscriptionState {
            subscription: self.subscription,
            pending_out: self.pending_out,
            pending_in: self.pending_in.is_some(),
        }
    }

    /// The `<item/>` element of results and pushes: `jid`, `name`,
    /// `subscription`, `ask='subscribe'` when Pending Out,
    /// `approved='true'` when pre-approved, and the groups.
    pub fn to_element(&self) -> Element {
        let mut item = Element::builder("item", NS_ROSTER)
            .attr(ncname("jid"), self.jid.as_str())
            .attr(ncname("subscription"), self.subscription.name());
        if let Some(name) = &self.name {
            item = item.attr(ncname("name"), name.as_str());
        }
        if self.pending_out {
            item = item.attr(ncname("ask"), "subscribe");
        }
        if self.approved {
            item = item.attr(ncname("approved"), "true");
        }
        let mut item = item.build();
        for group in &self.groups {
            let mut g = Element::bare("group", NS_ROSTER);
            g.append_text(group.clone());
            item.append_child(g);
        }
        item
    }
}

/// The `<item jid='…' subscription='remove'/>` of a push announcing that
/// `jid` was removed (RFC 6121 §2.5.2).
pub fn removed_item_element(jid: &BareJid) -> Element {
    Element::builder("item", NS_ROSTER)
        .attr(ncname("jid"), jid.as_str())
        .attr(ncname("subscription"), "remove")
        .build()
}

/// An `<item/>` of a `jabber:iq:roster` query as sent (a client's set, a
/// server's result or push), read without judging it: groups may repeat or
/// be empty here; [`validate_roster_set`] applies the rules for sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryItem {
    /// The `jid` attribute.
    pub jid: BareJid,
    /// The `name` attribute (`None` when absent or empty).
    pub name: Option<String>,
    /// The text of each `<group/>`, in order.
    pub groups: Vec<String>,
    /// The `subscription` attribute; `None` when absent or unknown.
    pub subscription: Option<SubscriptionAttr>,
    /// `ask='subscribe'`.
    pub ask: bool,
    /// `approved='true'` (or `'1'`).
    pub approved: bool,
}

/// A `<query xmlns='jabber:iq:roster'/>`: its `ver` and items.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RosterQuery {
    /// The `ver` attribute (RFC 6121 §2.6), as sent.
    pub ver: Option<String>,
    /// The items.
    pub items: Vec<QueryItem>,
}

impl RosterQuery {
    /// Reads a query element. Errors (as the stanza error a server
    /// answers): not a roster query, or an item without `jid` →
    /// `bad-request`; a `jid` that is not a JID or has a resource →
    /// `jid-malformed`.
    pub fn from_element(query: &Element) -> Result<Self, StanzaError> {
        if !query.is("query", NS_ROSTER) {
            return Err(bad_request("not a jabber:iq:roster query"));
        }
        let items = query
            .children()
            .filter(|c| c.is("item", NS_ROSTER))
            .map(QueryItem::from_element)
            .collect::<Result<_, _>>()?;
        Ok(RosterQuery {
            ver: query.attr("ver").map(str::to_owned),
            items,
        })
    }
}

impl QueryItem {
    /// Reads one `<item/>` (see [`RosterQuery::from_element`]).
    pub fn from_element(item: &Element) -> Result<Self, StanzaError> {
        let Some(raw) = item.attr("jid") else {
            return Err(bad_request("the item has no 'jid'"));
        };
        let jid = match raw.parse::<Jid>() {
            Ok(Jid::Bare(bare)) => bare,
            Ok(Jid::Full(_)) => {
                return Err(StanzaError::new(StanzaErrorCondition::JidMalformed)
                    .with_text("a roster item's 'jid' is a bare JID"));
            }
            Err(e) => {
                return Err(StanzaError::new(StanzaErrorCondition::JidMalformed)
                    .with_text(format!("'jid': {e}")));
            }
        };
        Ok(QueryItem {
            jid,
            name: item
                .attr("name")
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            groups: item
                .children()
                .filter(|c| c.is("group", NS_ROSTER))
                .map(Element::text)
                .collect(),
            subscription: item
                .attr("subscription")
                .and_then(SubscriptionAttr::from_name),
            ask: item.attr("ask") == Some("subscribe"),
            approved: matches!(item.attr("approved"), Some("true" | "1")),
        })
    }
}

/// Limits a server puts on roster sets (RFC 6121 §2.3.3: over them the set
/// is refused with `not-acceptable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosterLimits {
    /// The longest `name`, in UTF-8 bytes.
    pub max_name_bytes: usize,
    /// The longest group name, in UTF-8 bytes.
    pub max_group_bytes: usize,
}

impl Default for RosterLimits {
    /// 1024 bytes for names and for group names.
    fn default() -> Self {
        RosterLimits {
            max_name_bytes: 1024,
            max_group_bytes: 1024,
        }
    }
}

/// A valid roster set: what the client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterSet {
    /// Add the contact, or change its name and groups (RFC 6121 §2.3, §2.4).
    Update {
        /// The contact.
        jid: BareJid,
        /// The new name (`None`: no name).
        name: Option<String>,
        /// The new groups, distinct and non-empty.
        groups: Vec<String>,
    },
    /// Remove the contact (RFC 6121 §2.5).
    Remove(BareJid),
}

/// Checks the `<query/>` of a roster set from `user` (RFC 6121 §2.3.3,
/// §2.1.2) and says what it asks for. The errors, in the order checked:
///
/// | violation | error |
/// |---|---|
/// | not exactly one `<item/>` | `bad-request` |
/// | `<item/>` without `jid` | `bad-request` |
/// | `jid` not a JID, or with a resource | `jid-malformed` |
/// | `jid` is the user's own bare JID | `not-allowed` (a user is not a contact of itself) |
/// | `name` longer than [`RosterLimits::max_name_bytes`] | `not-acceptable` |
/// | an empty `<group/>` | `not-acceptable` |
/// | a group longer than [`RosterLimits::max_group_bytes`] | `not-acceptable` |
/// | the same group twice | `bad-request` |
///
/// `subscription='remove'` makes it a [`RosterSet::Remove`] (name and groups
/// are then not checked). Any other `subscription`, `ask` and `approved`
/// are ignored: only the server sets them (§2.1.2.1, §2.1.2.2, §2.1.2.5).
pub fn validate_roster_set(
    user: &BareJid,
    query: &Element,
    limits: &RosterLimits,
) -> Result<RosterSet, StanzaError> {
    if !query.is("query", NS_ROSTER) {
        return Err(bad_request("not a jabber:iq:roster query"));
    }
    let mut items = query.children().filter(|c| c.is("item", NS_ROSTER));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(bad_request("a roster set has exactly one item"));
    };
    let item = QueryItem::from_element(item)?;
    if item.jid == *user {
        return Err(StanzaError::new(StanzaErrorCondition::NotAllowed)
            .with_text("the user's own JID is not a roster item"));
    }
    if item.subscription == Some(SubscriptionAttr::Remove) {
        return Ok(RosterSet::Remove(item.jid));
    }
    if item
        .name
        .as_ref()
        .is_some_and(|n| n.len() > limits.max_name_bytes)
    {
        return Err(not_acceptable("the name is too long"));
    }
    for group in &item.groups {
        if group.is_empty() {
            return Err(not_acceptable("empty group name"));
        }
        if group.len() > limits.max_group_bytes {
            return Err(not_acceptable("a group name is too long"));
        }
    }
    for (i, group) in item.groups.iter().enumerate() {
        if item.groups[..i].contains(group) {
            return Err(bad_request("the same group twice"));
        }
    }
    Ok(RosterSet::Update {
        jid: item.jid,
        name: item.name,
        groups: item.groups,
    })
}

/// The wire form of a roster version.
pub fn version_string(version: u64) -> String {
    version.to_string()
}

/// Whether a client's `ver` names the current version (then the answer
/// to its roster get is an empty result, RFC 6121 §2.6.3).
pub fn is_current_version(requested: &str, current: u64) -> bool {
    requested == version_string(current)
}

/// The `<query/>` of a roster result: every item with `in_roster`, and
/// `ver` when given.
pub fn roster_query<'a>(
    items: impl IntoIterator<Item = &'a RosterItem>,
    version: Option<u64>,
) -> Element {
    let mut query = Element::bare("query", NS_ROSTER);
    if let Some(v) = version {
        query.set_attr(rxml::Namespace::NONE, ncname("ver"), version_string(v));
    }
    for item in items.into_iter().filter(|i| i.in_roster) {
        query.append_child(item.to_element());
    }
    query
}

/// A roster push (RFC 6121 §2.1.6): an iq `set` to the interested resource
/// `to`, without `from` (the client takes that as its own account), with
/// one item and, for clients that use versioning, the new version.
pub fn roster_push(to: &FullJid, id: &str, item: Element, version: Option<u64>) -> Stanza {
    let mut query = Element::bare("query", NS_ROSTER);
    if let Some(v) = version {
        query.set_attr(rxml::Namespace::NONE, ncname("ver"), version_string(v));
    }
    query.append_child(item);
    let mut push = Stanza::iq(IqType::Set, None, id, query);
    push.set_to(Some(to.as_str()));
    push
}

/// Whether `stanza` is an iq whose payload is a roster query.
pub fn is_roster_iq(stanza: &Stanza) -> bool {
    stanza.iq_type().is_some()
        && stanza
            .iq_payload()
            .is_some_and(|p| p.is("query", NS_ROSTER))
}

fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
}

fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::CONTENT_NS;

    #[test]
    fn item_element_leaves_server_side_fields_out() {
        let mut item = RosterItem::new("romeo@example.net".parse().unwrap());
        item.name = Some("Romeo".into());
        item.groups = vec!["Friends".into(), "Lovers".into()];
        item.subscription = Subscription::From;
        item.pending_out = true;
        item.pending_in = Some(Stanza::new(crate::stanza::StanzaKind::Presence, CONTENT_NS));
        let el = item.to_element();
        assert_eq!(el.attr("jid"), Some("romeo@example.net"));
        assert_eq!(el.attr("subscription"), Some("from"));
        assert_eq!(el.attr("ask"), Some("subscribe"));
        assert_eq!(el.attr("approved"), None);
        assert_eq!(el.attrs().len(), 4);
        let read = QueryItem::from_element(&el).unwrap();
        assert_eq!(read.groups, item.groups);
        assert_eq!(read.name.as_deref(), Some("Romeo"));
    }

    #[test]
    fn subscription_halves() {
        for s in [
            Subscription::None,
            Subscription::To,
            Subscription::From,
            Subscription::Both,
        ] {
            assert_eq!(Subscription::from_halves(s.has_to(), s.has_from()), s);
            assert_eq!(Subscription::from_name(s.name()), Some(s));
        }
    }
}
