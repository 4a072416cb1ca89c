//! XEP-0191 Blocking Command (`urn:xmpp:blocking`).
//!
//! Three parts, all pure:
//!
//! * [`Blocklist`]: one account's blocked JIDs, with the JID matching rules
//!   of XEP-0191 §6 / XEP-0016 ([`Blocklist::blocks`]). The host persists it
//!   (it applies across sessions) and hands it in.
//! * [`BlockingSessions`]: answers the blocklist iqs of a session
//!   ([`BlockingSessions::handle_iq`]) and remembers which sessions asked for
//!   the blocklist (the *interested* resources that get pushes). The result,
//!   a [`BlockingOutcome`], lists every stanza the host sends: the reply, the
//!   pushes, and the presence changes XEP-0191 §3.3/§3.4 require.
//! * Enforcement: [`check_inbound`] for a stanza about to reach a user,
//!   [`check_outbound`] for a stanza a user sends; both return a
//!   [`BlockVerdict`].
//!
//! # Where the host calls it
//!
//! For a stanza from a local session, before [`Router::route`]: run
//! [`check_outbound`] with the sender's blocklist (a bounce is sent back as
//! `stanza.error_reply(&error)`). After routing, when the decision delivers
//! to a local account (`Deliver`, `StoreOffline`, or `Server(Account)` for
//! subscription presence and iqs to the bare JID), run [`check_inbound`] with
//! the addressee's blocklist first. Presence broadcasts (`Server(Broadcast)`)
//! skip every recipient that [`Blocklist::blocks`]. Iqs for
//! `Server(Account)` of the sender's own account go to
//! [`BlockingSessions::handle_iq`].
//!
//! # Choices
//!
//! | Where | XEP allows | Chosen |
//! |---|---|---|
//! | §3.3 inbound message from a blocked JID | SHOULD return an error, SHOULD be `service-unavailable` | `service-unavailable` for normal, chat and groupchat; headline and error messages dropped, as for an offline user (RFC 6121 §8.5.2.2.1), so the user appears offline |
//! | §3.3 pushes | "containing the blocked item(s)" | the items of the request, prepared and de-duplicated, also when some were already blocked (clients apply pushes idempotently) |
//! | block/unblock/get addressed to another account | not specified | `forbidden` (as RFC 6121 §2.3.3 for rosters) |
//! | iq with more than one payload, wrong type for the element, unknown element | not specified | `bad-request` |
//! | §3.3/§3.4 presence on (un)block | "only if the JID is allowed to receive presence" | the host lists who receives presence ([`PresenceView`]); unavailable goes from each available resource |
//!
//! [`Router::route`]: crate::router::Router::route

use std::collections::{BTreeMap, HashMap};

use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition, StanzaErrorType, ncname};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::SessionId;
use crate::stanza::{IqType, MessageType, Stanza, StanzaKind};

/// `urn:xmpp:blocking`: the protocol and its disco feature.
pub const NS_BLOCKING: &str = "urn:xmpp:blocking";
/// `urn:xmpp:blocking:errors`: the `<blocked/>` application error.
pub const NS_BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";

/// Whether a blocklist item matches `jid` (XEP-0191 §6, as XEP-0016):
///
/// 1. `user@domain/resource` matches only that full JID;
/// 2. `user@domain` matches the bare JID and every resource of it;
/// 3. `domain/resource` matches only that JID;
/// 4. `domain` matches the domain itself and every `user@domain`,
///    `user@domain/resource` and `domain/resource`.
pub fn item_matches(item: &Jid, jid: &Jid) -> bool {
    match (item.local(), item.resource()) {
        (Some(_), Some(_)) => item == jid,
        (Some(local), None) => jid.local() == Some(local) && jid.domain() == item.domain(),
        (None, Some(resource)) => {
            jid.local().is_none()
                && jid.domain() == item.domain()
                && jid.resource() == Some(resource)
        }
        (None, None) => jid.domain() == item.domain(),
    }
}

/// One account's blocklist: a set of JIDs, kept in the order of their
/// prepared string form (so every listing is deterministic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// Keyed by the prepared string, which is the JID's identity.
    items: BTreeMap<String, Jid>,
}

impl Blocklist {
    /// An empty blocklist.
    pub fn new() -> Blocklist {
        Blocklist::default()
    }

    /// The number of blocked JIDs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The blocked JIDs, ordered by their prepared string form.
    pub fn items(&self) -> impl Iterator<Item = &Jid> {
        self.items.values()
    }

    /// Whether `item` itself is on the list (exact item, no matching).
    pub fn contains(&self, item: &Jid) -> bool {
        self.items.contains_key(item.as_str())
    }

    /// Whether any item matches `jid` by the rules of [`item_matches`].
    /// At most three map lookups, whatever the list's length.
    pub fn blocks(&self, jid: &Jid) -> bool {
        if self.items.is_empty() {
            return false;
        }
        if self.items.contains_key(jid.as_str()) {
            return true;
        }
        // A prepared localpart and domainpart never contain '/', so the
        // first '/' starts the resource.
        if jid.local().is_some()
            && jid.resource().is_some()
            && let Some((bare, _)) = jid.as_str().split_once('/')
            && self.items.contains_key(bare)
        {
            return true;
        }
        (jid.local().is_some() || jid.resource().is_some()) && self.items.contains_key(jid.domain())
    }

    /// Adds `items`; returns those that were not on the list, in order.
    pub fn block(&mut self, items: impl IntoIterator<Item = Jid>) -> Vec<Jid> {
        let mut added = Vec::new();
        for item in items {
            if !self.items.contains_key(item.as_str()) {
                self.items.insert(item.as_str().to_owned(), item.clone());
                added.push(item);
            }
        }
        added
    }

    /// Removes `items`; returns those that were on the list, in order.
    pub fn unblock<'a>(&mut self, items: impl IntoIterator<Item = &'a Jid>) -> Vec<Jid> {
        items
            .into_iter()
            .filter_map(|item| self.items.remove(item.as_str()))
            .collect()
    }

    /// Empties the list; returns what was on it.
    pub fn unblock_all(&mut self) -> Vec<Jid> {
        std::mem::take(&mut self.items).into_values().collect()
    }

    /// `<blocklist xmlns='urn:xmpp:blocking'>` with one `<item/>` per JID
    /// (the result of a blocklist get, XEP-0191 §3.2).
    pub fn to_element(&self) -> Element {
        items_element("blocklist", self.items.values())
    }
}

impl FromIterator<Jid> for Blocklist {
    fn from_iter<I: IntoIterator<Item = Jid>>(iter: I) -> Blocklist {
        let mut list = Blocklist::new();
        list.block(iter);
        list
    }
}

fn items_element<'a>(name: &str, items: impl IntoIterator<Item = &'a Jid>) -> Element {
    let mut el = Element::bare(name, NS_BLOCKING);
    for item in items {
        el.append_child(
            Element::builder("item", NS_BLOCKING)
                .attr(ncname("jid"), item.as_str())
                .build(),
        );
    }
    el
}

/// A blocking command from a client (XEP-0191 §3.2–§3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockingRequest {
    /// iq get `<blocklist/>`.
    GetBlocklist,
    /// iq set `<block/>` with at least one item (prepared, de-duplicated,
    /// in request order).
    Block(Vec<Jid>),
    /// iq set `<unblock/>` with at least one item.
    Unblock(Vec<Jid>),
    /// iq set `<unblock/>` without items.
    UnblockAll,
}

fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
}

impl BlockingRequest {
    /// Reads a blocking command from an iq. `None` when the iq is not a
    /// request (`get`/`set`) with a child in `urn:xmpp:blocking`: not for
    /// this module. `Some(Err(_))` carries the error to answer with:
    /// `bad-request` for an empty `<block/>`, an item without `jid`, more
    /// than one payload, or an element used with the wrong iq type;
    /// `jid-malformed` for an item whose `jid` is not a JID.
    pub fn from_iq(iq: &Stanza) -> Option<Result<BlockingRequest, StanzaError>> {
        let Some(Ok(iq_type)) = iq.iq_type() else {
            return None;
        };
        if !iq_type.is_request() {
            return None;
        }
        let element = iq.element();
        let payload = element.children().find(|c| c.has_ns(NS_BLOCKING))?;
        if element.children().count() != 1 {
            return Some(Err(bad_request(
                "an iq request carries exactly one payload",
            )));
        }
        Some(match (iq_type, payload.name()) {
            (IqType::Get, "blocklist") => Ok(BlockingRequest::GetBlocklist),
            (IqType::Set, "block") => match read_items(payload) {
                Ok(items) if items.is_empty() => {
                    Err(bad_request("<block/> needs at least one <item/>"))
                }
                Ok(items) => Ok(BlockingRequest::Block(items)),
                Err(e) => Err(e),
            },
            (IqType::Set, "unblock") => read_items(payload).map(|items| {
                if items.is_empty() {
                    BlockingRequest::UnblockAll
                } else {
                    BlockingRequest::Unblock(items)
                }
            }),
            (IqType::Get, "block" | "unblock") => {
                Err(bad_request("<block/> and <unblock/> are iq set"))
            }
            (IqType::Set, "blocklist") => Err(bad_request("<blocklist/> is iq get")),
            _ => Err(bad_request("unknown urn:xmpp:blocking element")),
        })
    }

    /// The payload element of this command (as a client sends it, and as a
    /// server pushes `block`/`unblock`).
    pub fn to_element(&self) -> Element {
        match self {
            BlockingRequest::GetBlocklist => Element::bare("blocklist", NS_BLOCKING),
            BlockingRequest::Block(items) => items_element("block", items),
            BlockingRequest::Unblock(items) => items_element("unblock", items),
            BlockingRequest::UnblockAll => Element::bare("unblock", NS_BLOCKING),
        }
    }

    /// The iq type this command is sent with.
    pub fn iq_type(&self) -> IqType {
        match self {
            BlockingRequest::GetBlocklist => IqType::Get,
            _ => IqType::Set,
        }
    }
}

/// The `<item jid='…'/>` children, prepared and de-duplicated.
fn read_items(payload: &Element) -> Result<Vec<Jid>, StanzaError> {
    let mut items: Vec<Jid> = Vec::new();
    for item in payload.children().filter(|c| c.is("item", NS_BLOCKING)) {
        let raw = item
            .attr("jid")
            .ok_or_else(|| bad_request("<item/> without 'jid'"))?;
        let jid: Jid = raw.parse().map_err(|_| {
            StanzaError::new(StanzaErrorCondition::JidMalformed)
                .with_text(format!("{raw:?} is not a JID"))
        })?;
        if !items.contains(&jid) {
            items.push(jid);
        }
    }
    Ok(items)
}

/// What the host knows about the user's presence when a block or unblock
/// changes who may see it (XEP-0191 §3.3, §3.4).
#[derive(Clone, Copy, Debug, Default)]
pub struct PresenceView<'a> {
    /// The user's available resources: each sends `unavailable` to a newly
    /// blocked contact.
    pub available_resources: &'a [FullJid],
    /// Every JID currently allowed to receive the user's presence: contacts
    /// with a subscription of type `from` or `both` (bare JIDs) and targets
    /// of directed presence (as addressed).
    pub presence_recipients: &'a [Jid],
}

/// Everything the host sends for one blocking iq, in this order.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockingOutcome {
    /// The reply to the requesting session: a `result` (with the
    /// `<blocklist/>` for a get) or an error.
    pub reply: Stanza,
    /// iq set pushes of the command, one per interested session (the
    /// requester included if it fetched the blocklist), ascending by
    /// session. The host ignores their `result` replies.
    pub pushes: Vec<(SessionId, Stanza)>,
    /// `<presence type='unavailable'/>` from each available resource to each
    /// presence recipient that the block newly covers (§3.3). Routed like
    /// any presence from those resources.
    pub unavailable_presence: Vec<Stanza>,
    /// Presence recipients that the unblock uncovered (§3.4): the host sends
    /// each the current presence of every available resource. Empty when
    /// the user has no available resource.
    pub send_current_presence_to: Vec<Jid>,
    /// Whether the blocklist changed: the host persists it.
    pub changed: bool,
}

/// The server side of the blocking command for all sessions: which sessions
/// asked for the blocklist (interested resources, XEP-0191 §3.3) and a
/// counter for push ids. Knows nothing else; blocklists come from the host.
#[derive(Clone, Debug, Default)]
pub struct BlockingSessions {
    interested: HashMap<BareJid, BTreeMap<SessionId, FullJid>>,
    pushes_sent: u64,
}

impl BlockingSessions {
    /// No interested sessions.
    pub fn new() -> BlockingSessions {
        BlockingSessions::default()
    }

    /// Handles a blocking iq sent by `session`, bound to `from`, with
    /// `blocklist` the account's list (changed in place).
    ///
    /// `None` if `iq` is not a blocking request ([`BlockingRequest::from_iq`]).
    /// A request addressed to anyone but the sender's own account (no `to`,
    /// or its bare JID) is answered `forbidden` and changes nothing.
    pub fn handle_iq(
        &mut self,
        session: SessionId,
        from: &FullJid,
        iq: &Stanza,
        blocklist: &mut Blocklist,
        presence: PresenceView<'_>,
    ) -> Option<BlockingOutcome> {
        let parsed = BlockingRequest::from_iq(iq)?;
        let user = from.to_bare();
        let own_account = match iq.to_jid() {
            None => true,
            Some(Ok(to)) => to == user,
            Some(Err(_)) => false,
        };
        let request = match parsed {
            Ok(_) if !own_account => {
                return refusal(
                    iq,
                    StanzaError::new(StanzaErrorCondition::Forbidden)
                        .with_text("a blocklist belongs to its own account"),
                );
            }
            Ok(request) => request,
            Err(error) => return refusal(iq, error),
        };
        let mut outcome = BlockingOutcome {
            reply: iq.iq_result(None)?,
            pushes: Vec::new(),
            unavailable_presence: Vec::new(),
            send_current_presence_to: Vec::new(),
            changed: false,
        };
        if request == BlockingRequest::GetBlocklist {
            self.interested
                .entry(user)
                .or_default()
                .insert(session, from.clone());
            outcome.reply = iq.iq_result(Some(blocklist.to_element()))?;
            return Some(outcome);
        }
        let was_blocked: Vec<bool> = presence
            .presence_recipients
            .iter()
            .map(|r| blocklist.blocks(r))
            .collect();
        outcome.changed = match &request {
            BlockingRequest::Block(items) => !blocklist.block(items.iter().cloned()).is_empty(),
            BlockingRequest::Unblock(items) => !blocklist.unblock(items).is_empty(),
            BlockingRequest::UnblockAll => !blocklist.unblock_all().is_empty(),
            BlockingRequest::GetBlocklist => false,
        };
        for (recipient, was) in presence.presence_recipients.iter().zip(was_blocked) {
            let now = blocklist.blocks(recipient);
            if now && !was {
                for resource in presence.available_resources {
                    outcome
                        .unavailable_presence
                        .push(unavailable(resource, recipient));
                }
            } else if was && !now && !presence.available_resources.is_empty() {
                outcome.send_current_presence_to.push(recipient.clone());
            }
        }
        let payload = request.to_element();
        let targets: Vec<(SessionId, FullJid)> = self
            .interested
            .get(&user)
            .into_iter()
            .flatten()
            .map(|(id, jid)| (*id, jid.clone()))
            .collect();
        for (id, jid) in targets {
            self.pushes_sent += 1;
            let push_id = format!("blocking-push-{}", self.pushes_sent);
            let push = Stanza::iq(
                IqType::Set,
                Some(&Jid::Full(jid)),
                &push_id,
                payload.clone(),
            );
            outcome.pushes.push((id, push));
        }
        Some(outcome)
    }

    /// Forgets `session` (it ended or unbound); `jid` is the full JID it was
    /// bound to.
    pub fn session_ended(&mut self, session: SessionId, jid: &FullJid) {
        let user = jid.to_bare();
        if let Some(sessions) = self.interested.get_mut(&user) {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.interested.remove(&user);
            }
        }
    }

    /// The session `old`, bound to `jid`, goes on as `new` (XEP-0198
    /// resumption on a new connection): if `old` was interested, `new` is
    /// now.
    pub fn session_moved(&mut self, old: SessionId, new: SessionId, jid: &FullJid) {
        if let Some(sessions) = self.interested.get_mut(&jid.to_bare())
            && let Some(bound) = sessions.remove(&old)
        {
            sessions.insert(new, bound);
        }
    }

    /// The sessions of `user` that fetched the blocklist, ascending.
    pub fn interested(&self, user: &BareJid) -> impl Iterator<Item = (SessionId, &FullJid)> {
        self.interested
            .get(user)
            .into_iter()
            .flatten()
            .map(|(id, jid)| (*id, jid))
    }
}

fn refusal(iq: &Stanza, error: StanzaError) -> Option<BlockingOutcome> {
    Some(BlockingOutcome {
        reply: iq.error_reply(&error)?,
        pushes: Vec::new(),
        unavailable_presence: Vec::new(),
        send_current_presence_to: Vec::new(),
        changed: false,
    })
}

fn unavailable(from: &FullJid, to: &Jid) -> Stanza {
    let mut presence = Stanza::new(StanzaKind::Presence, ns::JABBER_CLIENT);
    presence.set_attr("type", Some("unavailable"));
    presence.set_from(Some(from.as_str()));
    presence.set_to(Some(to.as_str()));
    presence
}

/// What to do with a stanza, as far as a blocklist is concerned.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockVerdict {
    /// The blocklist does not apply: route or deliver as usual.
    Pass,
    /// Discard silently.
    Drop,
    /// Do not route; send `stanza.error_reply(&error)` to its sender.
    Bounce(StanzaError),
}

/// The error for a stanza a user sends to a JID they block (XEP-0191 §3.3):
/// `not-acceptable` (type `cancel`, as in the XEP's example) with
/// `<blocked xmlns='urn:xmpp:blocking:errors'/>`.
pub fn blocked_error() -> StanzaError {
    let mut error = StanzaError::new(StanzaErrorCondition::NotAcceptable);
    error.error_type = StanzaErrorType::Cancel;
    error.application = Some(Box::new(Element::bare("blocked", NS_BLOCKING_ERRORS)));
    error
}

/// Enforcement for a stanza about to reach `recipient` (XEP-0191 §3.3),
/// whose blocklist is `blocklist`. The sender is the stanza's `from`.
///
/// | stanza from a blocked JID | verdict |
/// |---|---|
/// | presence (any type, probes and subscriptions included) | `Drop` |
/// | message normal / chat / groupchat | `Bounce(service-unavailable)` |
/// | message headline / error | `Drop` |
/// | iq get / set | `Bounce(service-unavailable)` |
/// | iq result / error, or unknown iq type | `Drop` |
///
/// `Pass` when the stanza has no `from` (the server's own), a `from` that is
/// not a JID (the router answers that), a `from` of the recipient's own
/// account (XEP-0191 §5 note: never block one's own resources), or a `from` no
/// item matches.
pub fn check_inbound(recipient: &BareJid, blocklist: &Blocklist, stanza: &Stanza) -> BlockVerdict {
    let Some(Ok(from)) = stanza.from_jid() else {
        return BlockVerdict::Pass;
    };
    if from.to_bare() == *recipient || !blocklist.blocks(&from) {
        return BlockVerdict::Pass;
    }
    let service_unavailable =
        || BlockVerdict::Bounce(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
    match stanza.kind() {
        StanzaKind::Presence => BlockVerdict::Drop,
        StanzaKind::Message => match stanza.message_type() {
            Some(MessageType::Normal | MessageType::Chat | MessageType::Groupchat) => {
                service_unavailable()
            }
            _ => BlockVerdict::Drop,
        },
        StanzaKind::Iq => match stanza.iq_type() {
            Some(Ok(t)) if t.is_request() => service_unavailable(),
            _ => BlockVerdict::Drop,
        },
    }
}

/// Enforcement for a stanza `sender` sends (XEP-0191 §3.3), with the
/// sender's `blocklist`: to a blocked JID it is not routed and bounces with
/// [`blocked_error`]; error stanzas and iq results to a blocked JID are
/// dropped (they are never answered). `Pass` for stanzas without `to`, to
/// the sender's own account, with a `to` that is not a JID (the router
/// answers that), or to a JID no item matches.
pub fn check_outbound(sender: &BareJid, blocklist: &Blocklist, stanza: &Stanza) -> BlockVerdict {
    let Some(Ok(to)) = stanza.to_jid() else {
        return BlockVerdict::Pass;
    };
    if to.to_bare() == *sender || !blocklist.blocks(&to) {
        return BlockVerdict::Pass;
    }
    if stanza.is_error() || stanza.iq_type() == Some(Ok(IqType::Result)) {
        BlockVerdict::Drop
    } else {
        BlockVerdict::Bounce(blocked_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap()
    }

    /// `Blocklist::blocks` (map lookups) agrees with `item_matches` (the
    /// rule table) for every item shape against every JID shape.
    #[test]
    fn lookup_agrees_with_matching_rules() {
        let shapes = [
            "u@d.example/r",
            "u@d.example/other",
            "u@d.example",
            "v@d.example/r",
            "v@d.example",
            "d.example/r",
            "d.example/other",
            "d.example",
            "u@e.example/r",
            "u@e.example",
            "e.example",
        ];
        for item in shapes {
            let list: Blocklist = [jid(item)].into_iter().collect();
            for target in shapes {
                assert_eq!(
                    list.blocks(&jid(target)),
                    item_matches(&jid(item), &jid(target)),
                    "item {item}, target {target}"
                );
            }
        }
    }
}
