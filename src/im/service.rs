//! [`ImService`]: the IM layer's state for one server, and the entry points
//! a host calls (see the [module docs](crate::im) for the host loop).
//!
//! It keeps, per session: whether it is *interested* (asked for the
//! roster, RFC 6121 §2.1.6) and uses roster versioning, its last broadcast
//! presence, and the entities it sent directed presence to; per user, the
//! last `unavailable` (to answer probes while nobody is online). Rosters
//! are in the host's [`RosterStore`]; bound sessions, availability and
//! priority in the [`Router`], which this service reads and, for
//! presence, updates with [`Router::set_presence`].

use std::collections::{BTreeSet, HashMap};

use minidom::Element;

use crate::error::{StanzaError, StanzaErrorCondition};
use crate::im::presence::{
    self, NonSubscriberProbe, PresenceView, UserResource, broadcast_available,
    broadcast_unavailable,
};
use crate::im::roster::{
    self, RosterItem, RosterLimits, RosterSet, Subscription, is_current_version,
    removed_item_element, roster_push, roster_query, validate_roster_set,
};
use crate::im::store::RosterStore;
use crate::im::subscription::{
    Direction, PresenceEffect, SubscriptionStanza, Transition, transition,
};
use crate::im::{CONTENT_NS, ImAction};
use crate::jid::{BareJid, FullJid, Jid};
use crate::router::{Router, SessionId};
use crate::stanza::{IqType, PresenceType, Stanza, StanzaKind};

/// Settings of the IM layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImConfig {
    /// Limits on names and groups in roster sets.
    pub limits: RosterLimits,
    /// Roster versioning (RFC 6121 §2.6). When on, the host advertises
    /// [`roster_versioning_feature`](crate::im::roster::roster_versioning_feature);
    /// when off, `ver` in roster gets is ignored and never sent.
    pub roster_versioning: bool,
    /// The answer to probes from non-subscribers.
    pub non_subscriber_probe: NonSubscriberProbe,
}

impl Default for ImConfig {
    /// Default limits, versioning on, `unsubscribed` to non-subscribers'
    /// probes.
    fn default() -> Self {
        ImConfig {
            limits: RosterLimits::default(),
            roster_versioning: true,
            non_subscriber_probe: NonSubscriberProbe::ReplyUnsubscribed,
        }
    }
}

/// What the service knows of one session.
#[derive(Clone, Debug, Default)]
struct SessionState {
    /// Asked for the roster: gets roster pushes.
    interested: bool,
    /// Sent `ver` with its roster get: pushes carry the version.
    versioning: bool,
    /// The last broadcast available presence (`from` stamped, no `to`).
    presence: Option<KeptPresence>,
    /// Entities that got directed available presence from this session
    /// and are not subscribers.
    directed: BTreeSet<Jid>,
}

/// A session's last broadcast presence, kept small. Most clients send a
/// bare `<presence/>` (with an `id`): that is kept as its `from` and `id`
/// and rebuilt when needed, as a parsed element costs ~1.3 KiB (its
/// attribute map alone) in every idle session. Anything else is kept as it
/// came.
#[derive(Clone, Debug)]
enum KeptPresence {
    Plain {
        from: Box<str>,
        id: Option<Box<str>>,
    },
    Full(Box<Stanza>),
}

impl KeptPresence {
    fn keep(stanza: Stanza) -> KeptPresence {
        let element = stanza.element();
        let attrs = 1 + usize::from(stanza.id().is_some());
        match stanza.from() {
            Some(from)
                if element.ns() == CONTENT_NS
                    && element.attrs().len() == attrs
                    && element.nodes().next().is_none() =>
            {
                KeptPresence::Plain {
                    from: from.into(),
                    id: stanza.id().map(Box::from),
                }
            }
            _ => KeptPresence::Full(Box::new(stanza)),
        }
    }

    fn stanza(&self) -> Stanza {
        match self {
            KeptPresence::Plain { from, id } => {
                let mut presence = Stanza::new(StanzaKind::Presence, CONTENT_NS);
                presence.set_from(Some(from));
                presence.set_id(id.as_deref());
                presence
            }
            KeptPresence::Full(stanza) => (**stanza).clone(),
        }
    }
}

/// The IM layer of a server: see the [module docs](crate::im).
///
/// Every entry point is deterministic: the same router, store and service
/// state and the same input give the same actions. Store errors are
/// returned as they are; the service state is then unchanged.
#[derive(Clone, Debug, Default)]
pub struct ImService {
    config: ImConfig,
    sessions: HashMap<SessionId, SessionState>,
    last_unavailable: HashMap<BareJid, Stanza>,
    pushes_sent: u64,
}

/// The error reply to `stanza`, to its sender's session.
fn refuse(session: SessionId, stanza: &Stanza, error: StanzaError) -> Vec<ImAction> {
    stanza
        .error_reply(&error)
        .map(|stanza| ImAction::Deliver { session, stanza })
        .into_iter()
        .collect()
}

/// An empty record for `contact`: state None, not in the roster.
fn absent(contact: BareJid) -> RosterItem {
    RosterItem {
        in_roster: false,
        ..RosterItem::new(contact)
    }
}

/// Whether the client would see anything of this item.
fn visible(item: &RosterItem) -> bool {
    item.subscription != Subscription::None || item.pending_out || item.approved
}

/// `presence` as the user's broadcast: `from` the session's full JID, no `to`.
fn as_broadcast(presence: &Stanza, from: &FullJid) -> Stanza {
    let mut p = presence.clone();
    p.set_from(Some(from.as_str()));
    p.set_to(None);
    p
}

impl ImService {
    /// A service without sessions.
    pub fn new(config: ImConfig) -> Self {
        ImService {
            config,
            ..ImService::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &ImConfig {
        &self.config
    }

    /// Whether `session` asked for the roster (and so gets pushes).
    pub fn is_interested(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.interested)
    }

    /// The last broadcast available presence of `session`, while it is
    /// available (rebuilt: a plain `<presence/>` is kept as its `from` and
    /// `id` only).
    pub fn last_presence(&self, session: SessionId) -> Option<Stanza> {
        Some(self.sessions.get(&session)?.presence.as_ref()?.stanza())
    }

    /// The entities `session` sent directed presence to that will get its
    /// `unavailable` (RFC 6121 §4.6.3).
    pub fn directed_presence_targets(&self, session: SessionId) -> impl Iterator<Item = &Jid> {
        self.sessions
            .get(&session)
            .into_iter()
            .flat_map(|s| s.directed.iter())
    }

    // --- roster (RFC 6121 §2) ---------------------------------------------

    /// A roster iq (`get` or `set` with a `jabber:iq:roster` query) from
    /// the local `session`, addressed to its own account (no `to`, or its
    /// bare JID): the reply, and for a set the pushes to every interested
    /// session of the user and the subscription stanzas a removal sends
    /// (RFC 6121 §2.5.2). Errors:
    ///
    /// * `to` another account → `forbidden` (§2.3.3; only the user manages
    ///   its roster). Roster iqs from remote entities never reach here:
    ///   the host answers them `forbidden` with [`Stanza::error_reply`].
    /// * no roster query as the only payload → `bad-request`;
    /// * a set that [`validate_roster_set`] refuses → its error;
    /// * removing an item not in the roster → `item-not-found` (§2.5.3).
    ///
    /// A get makes the session interested; with `ver` (and versioning on)
    /// also a versioning client: its pushes carry `ver`. iq results and
    /// errors, and unknown sessions, give no actions.
    pub fn roster_iq<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        session: SessionId,
        iq: &Stanza,
    ) -> Result<Vec<ImAction>, S::Error> {
        let Some(jid) = router.session_jid(session) else {
            return Ok(Vec::new());
        };
        let user = jid.to_bare();
        let Some(Ok(iq_type)) = iq.iq_type() else {
            return Ok(Vec::new());
        };
        if !iq_type.is_request() {
            return Ok(Vec::new());
        }
        match iq.to_jid() {
            None => {}
            Some(Ok(Jid::Bare(to))) if to == user => {}
            Some(_) => {
                return Ok(refuse(
                    session,
                    iq,
                    StanzaError::new(StanzaErrorCondition::Forbidden)
                        .with_text("only the user manages its roster"),
                ));
            }
        }
        let Some(query) = iq.iq_payload().filter(|p| p.is("query", roster::NS_ROSTER)) else {
            return Ok(refuse(
                session,
                iq,
                StanzaError::new(StanzaErrorCondition::BadRequest)
                    .with_text("expected one jabber:iq:roster query"),
            ));
        };
        if iq_type == IqType::Get {
            return self.roster_get(store, session, &user, iq, query);
        }
        match validate_roster_set(&user, query, &self.config.limits) {
            Err(error) => Ok(refuse(session, iq, error)),
            Ok(RosterSet::Update { jid, name, groups }) => {
                let before = store.item(&user, &jid)?;
                let version = store.version(&user)? + 1;
                let mut item = before.unwrap_or_else(|| RosterItem::new(jid));
                item.name = name;
                item.groups = groups;
                item.in_roster = true;
                let element = item.to_element();
                store.put_item(&user, item, version)?;
                let mut out = self.pushes(router, &user, &element, version);
                out.extend(self.result(session, iq, None));
                Ok(out)
            }
            Ok(RosterSet::Remove(contact)) => {
                let Some(item) = store.item(&user, &contact)?.filter(|i| i.in_roster) else {
                    return Ok(refuse(
                        session,
                        iq,
                        StanzaError::new(StanzaErrorCondition::ItemNotFound),
                    ));
                };
                let version = store.version(&user)? + 1;
                let resources = self.resources(router, &user);
                let view = PresenceView {
                    user: &user,
                    roster: &[],
                    resources: &resources,
                };
                let mut out = Vec::new();
                // §2.5.2: cancel both directions. Losing `from` also sends
                // the contact `unavailable`, as a revocation does (§3.2.2).
                if item.subscription.has_from() {
                    out.extend(presence::unavailable_to(&view, &contact));
                }
                if item.subscription.has_to() || item.pending_out {
                    out.push(ImAction::Route(presence::subscription_stanza(
                        SubscriptionStanza::Unsubscribe,
                        &user,
                        &contact,
                    )));
                }
                if item.subscription.has_from() || item.pending_in.is_some() {
                    out.push(ImAction::Route(presence::subscription_stanza(
                        SubscriptionStanza::Unsubscribed,
                        &user,
                        &contact,
                    )));
                }
                store.remove_item(&user, &contact, version)?;
                out.extend(self.pushes(router, &user, &removed_item_element(&contact), version));
                out.extend(self.result(session, iq, None));
                Ok(out)
            }
        }
    }

    fn roster_get<S: RosterStore>(
        &mut self,
        store: &S,
        session: SessionId,
        user: &BareJid,
        iq: &Stanza,
        query: &Element,
    ) -> Result<Vec<ImAction>, S::Error> {
        let requested = query.attr("ver").filter(|_| self.config.roster_versioning);
        let version = store.version(user)?;
        let payload = match requested {
            Some(ver) if is_current_version(ver, version) => None,
            _ => {
                let mut items = store.items(user)?;
                items.sort_by(|a, b| a.jid.cmp(&b.jid));
                Some(roster_query(&items, requested.map(|_| version)))
            }
        };
        let state = self.sessions.entry(session).or_default();
        state.interested = true;
        state.versioning = requested.is_some();
        Ok(self.result(session, iq, payload))
    }

    fn result(&self, session: SessionId, iq: &Stanza, payload: Option<Element>) -> Vec<ImAction> {
        iq.iq_result(payload)
            .map(|stanza| ImAction::Deliver { session, stanza })
            .into_iter()
            .collect()
    }

    /// A push of `item` to every interested session of `user`.
    fn pushes(
        &mut self,
        router: &Router,
        user: &BareJid,
        item: &Element,
        version: u64,
    ) -> Vec<ImAction> {
        let mut out = Vec::new();
        for (session, jid) in router.sessions_of(user) {
            let Some(state) = self.sessions.get(&session).filter(|s| s.interested) else {
                continue;
            };
            let ver = (state.versioning && self.config.roster_versioning).then_some(version);
            self.pushes_sent += 1;
            let id = format!("push{}", self.pushes_sent);
            out.push(ImAction::Deliver {
                session,
                stanza: roster_push(jid, &id, item.clone(), ver),
            });
        }
        out
    }

    // --- subscriptions (RFC 6121 §3, Appendix A) ----------------------------

    /// A subscription presence (`subscribe`, `subscribed`, `unsubscribe`,
    /// `unsubscribed`) the local `session` sent: Appendix A.2. Call it
    /// instead of routing the stanza. Returns, in order: `unavailable` to
    /// the contact (revocation), the stanza stamped with the user's bare
    /// JID as `from` and the contact's bare JID as `to` (when it is to be
    /// routed), the user's current presence to the contact (approval), the
    /// roster pushes. A missing `to` → `bad-request`, an invalid one →
    /// `jid-malformed`; to the user's own JID, other presence types and
    /// unknown sessions → nothing.
    pub fn outbound_subscription<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        session: SessionId,
        stanza: &Stanza,
    ) -> Result<Vec<ImAction>, S::Error> {
        let Some(jid) = router.session_jid(session) else {
            return Ok(Vec::new());
        };
        let user = jid.to_bare();
        let Some(event) = subscription_type(stanza) else {
            return Ok(Vec::new());
        };
        let contact = match stanza.to_jid() {
            None => {
                return Ok(refuse(
                    session,
                    stanza,
                    StanzaError::new(StanzaErrorCondition::BadRequest)
                        .with_text("a subscription request needs 'to'"),
                ));
            }
            Some(Err(_)) => {
                return Ok(refuse(
                    session,
                    stanza,
                    StanzaError::new(StanzaErrorCondition::JidMalformed),
                ));
            }
            Some(Ok(to)) => to.into_bare(),
        };
        if contact == user {
            return Ok(Vec::new());
        }
        let before = store.item(&user, &contact)?;
        let old = before.clone().unwrap_or_else(|| absent(contact.clone()));
        let t = transition(old.state(), old.approved, Direction::Outbound, event);
        let mut routed = stanza.clone();
        routed.set_from(Some(user.as_str()));
        routed.set_to(Some(contact.as_str()));
        let after = apply(&old, &t, None);
        let resources = self.resources(router, &user);
        let forwarded = vec![ImAction::Route(routed)];
        self.subscription_outcome(
            router, store, &user, &contact, &resources, before, after, &t, forwarded,
        )
    }

    /// A subscription presence from a contact (local or remote) to the
    /// local `user` (the router's `Server(Account(user))`): Appendix A.3.
    /// Returns, in order: `unavailable` to the contact (it unsubscribed),
    /// the stanza as it came to each available session (`subscribe`) or
    /// each interested session (the others, RFC 6121 §3.1.6, §3.2.3,
    /// §3.3.3), the automatic `subscribed`, the user's current presence to
    /// the contact, the roster pushes. A `subscribe` that waits for the
    /// user is stored with the contact's record and delivered again at each
    /// initial presence until answered (§3.1.3). Without a valid `from`, or
    /// from the user itself: nothing.
    pub fn inbound_subscription<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        user: &BareJid,
        stanza: &Stanza,
    ) -> Result<Vec<ImAction>, S::Error> {
        let Some(event) = subscription_type(stanza) else {
            return Ok(Vec::new());
        };
        let Some(Ok(from)) = stanza.from_jid() else {
            return Ok(Vec::new());
        };
        let contact = from.into_bare();
        if contact == *user {
            return Ok(Vec::new());
        }
        let before = store.item(user, &contact)?;
        let old = before.clone().unwrap_or_else(|| absent(contact.clone()));
        let t = transition(old.state(), old.approved, Direction::Inbound, event);
        let after = apply(&old, &t, Some(stanza));
        let resources = self.resources(router, user);
        let forwarded = resources
            .iter()
            .filter(|r| {
                if event == SubscriptionStanza::Subscribe {
                    r.is_available()
                } else {
                    self.is_interested(r.session)
                }
            })
            .map(|r| ImAction::Deliver {
                session: r.session,
                stanza: stanza.clone(),
            })
            .collect();
        self.subscription_outcome(
            router, store, user, &contact, &resources, before, after, &t, forwarded,
        )
    }

    /// The shared tail of both directions: the actions in order
    /// (`forwarded`: the routed or delivered stanza, if `t.forward`), then
    /// the one write.
    #[allow(clippy::too_many_arguments)]
    fn subscription_outcome<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        user: &BareJid,
        contact: &BareJid,
        resources: &[UserResource],
        before: Option<RosterItem>,
        after: RosterItem,
        t: &Transition,
        forwarded: Vec<ImAction>,
    ) -> Result<Vec<ImAction>, S::Error> {
        let view = PresenceView {
            user,
            roster: &[],
            resources,
        };
        let mut out = Vec::new();
        if t.presence == PresenceEffect::SendUnavailable {
            out.extend(presence::unavailable_to(&view, contact));
        }
        if t.forward {
            out.extend(forwarded);
        }
        if let Some(reply) = t.auto_reply {
            out.push(ImAction::Route(presence::subscription_stanza(
                reply, user, contact,
            )));
        }
        if t.presence == PresenceEffect::SendCurrent {
            out.extend(presence::current_presence_to(&view, contact));
        }
        // The one write: drop a record that holds nothing any more, store a
        // changed one; the version moves only with a visible change.
        let listed_now = after.in_roster && !before.as_ref().is_some_and(|b| b.in_roster);
        let push = t.roster_push || listed_now;
        if !after.in_roster && after.pending_in.is_none() {
            if before.is_some() {
                let version = store.version(user)?;
                store.remove_item(user, contact, version)?;
            }
        } else if before.as_ref() != Some(&after) {
            let version = store.version(user)? + u64::from(push);
            let element = after.to_element();
            store.put_item(user, after, version)?;
            if push {
                out.extend(self.pushes(router, user, &element, version));
            }
        }
        Ok(out)
    }

    // --- presence (RFC 6121 §4) ----------------------------------------------

    /// A presence probe to the local `user` (the router's
    /// `Server(Account(user))`): RFC 6121 §4.3.2. To a subscriber (or the
    /// user itself): the last presence of each available session to the
    /// prober, or the last `unavailable`. To anyone else: per
    /// [`ImConfig::non_subscriber_probe`]. Not a probe: nothing.
    pub fn inbound_probe<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        user: &BareJid,
        probe: &Stanza,
    ) -> Result<Vec<ImAction>, S::Error> {
        if probe.presence_type() != Some(Ok(PresenceType::Probe)) {
            return Ok(Vec::new());
        }
        let Some(Ok(prober)) = probe.from_jid() else {
            return Ok(Vec::new());
        };
        let record: Vec<RosterItem> = store.item(user, &prober.to_bare())?.into_iter().collect();
        let resources = self.resources(router, user);
        let view = PresenceView {
            user,
            roster: &record,
            resources: &resources,
        };
        Ok(presence::answer_probe(
            &view,
            probe,
            self.last_unavailable.get(user),
            self.config.non_subscriber_probe,
        ))
    }

    /// Presence without `to` from the local `session` (the router's
    /// `Server(Broadcast(user))`): initial presence, an update or
    /// `unavailable` (RFC 6121 §4.2, §4.4, §4.5; see
    /// [`presence`] for who gets what). Records the
    /// session's availability and priority with [`Router::set_presence`].
    /// A `<priority/>` that is not an integer in −128..=127 →
    /// `bad-request`, nothing else changes. Other types, stanzas with `to`
    /// and unknown sessions: nothing.
    pub fn broadcast_presence<S: RosterStore>(
        &mut self,
        router: &mut Router,
        store: &mut S,
        session: SessionId,
        stanza: &Stanza,
    ) -> Result<Vec<ImAction>, S::Error> {
        let Some(jid) = router.session_jid(session).cloned() else {
            return Ok(Vec::new());
        };
        if stanza.to().is_some() {
            return Ok(Vec::new());
        }
        let user = jid.to_bare();
        let broadcast = as_broadcast(stanza, &jid);
        match stanza.presence_type() {
            Some(Ok(PresenceType::Available)) => {
                let Some(priority) = stanza.priority() else {
                    return Ok(refuse(
                        session,
                        stanza,
                        StanzaError::new(StanzaErrorCondition::BadRequest)
                            .with_text("priority is an integer from -128 to 127"),
                    ));
                };
                let roster = sorted_items(store, &user)?;
                let resources = self.resources(router, &user);
                let view = PresenceView {
                    user: &user,
                    roster: &roster,
                    resources: &resources,
                };
                let out = broadcast_available(&view, session, &broadcast);
                router.set_presence(session, true, priority);
                self.sessions.entry(session).or_default().presence =
                    Some(KeptPresence::keep(broadcast));
                Ok(out)
            }
            Some(Ok(PresenceType::Unavailable)) => {
                self.unavailable(router, store, session, &jid, broadcast, true)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Available or `unavailable` presence **with** `to` from the local
    /// `session` (directed presence, RFC 6121 §4.6): remembers the
    /// recipient of available presence unless it gets the user's
    /// broadcasts anyway, forgets it on `unavailable`. The host routes the
    /// stanza itself, as usual. Anything else: nothing.
    pub fn directed_presence<S: RosterStore>(
        &mut self,
        router: &Router,
        store: &mut S,
        session: SessionId,
        stanza: &Stanza,
    ) -> Result<(), S::Error> {
        let Some(jid) = router.session_jid(session) else {
            return Ok(());
        };
        let user = jid.to_bare();
        let Some(Ok(to)) = stanza.to_jid() else {
            return Ok(());
        };
        match stanza.presence_type() {
            Some(Ok(PresenceType::Available)) => {
                let record: Vec<RosterItem> =
                    store.item(&user, &to.to_bare())?.into_iter().collect();
                let view = PresenceView {
                    user: &user,
                    roster: &record,
                    resources: &[],
                };
                if presence::tracks_directed(&view, &to) {
                    self.sessions
                        .entry(session)
                        .or_default()
                        .directed
                        .insert(to);
                }
            }
            Some(Ok(PresenceType::Unavailable)) => {
                if let Some(state) = self.sessions.get_mut(&session) {
                    state.directed.remove(&to);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The local `session` ended (its stream closed or broke). Call before
    /// [`Router::unbind`]. If it was available, its contacts, its
    /// directed-presence recipients and the user's other available sessions
    /// get `unavailable` from it (RFC 6121 §4.5.2, §4.6.3); recipients of
    /// directed presence get it in any case. Forgets the session.
    pub fn session_ended<S: RosterStore>(
        &mut self,
        router: &mut Router,
        store: &mut S,
        session: SessionId,
    ) -> Result<Vec<ImAction>, S::Error> {
        let Some(jid) = router.session_jid(session).cloned() else {
            self.sessions.remove(&session);
            return Ok(Vec::new());
        };
        let mut unavailable = Stanza::new(StanzaKind::Presence, CONTENT_NS);
        unavailable.set_from(Some(jid.as_str()));
        unavailable.set_attr("type", Some("unavailable"));
        let out = self.unavailable(router, store, session, &jid, unavailable, false)?;
        self.sessions.remove(&session);
        Ok(out)
    }

    /// The local session `old` goes on as `new`: the same full JID, now
    /// bound under another id (XEP-0198 resumption on a new connection,
    /// after the host moved the router's binding the same way). What the
    /// service knows of `old` (roster interest and versioning, last
    /// presence, directed-presence recipients) is `new`'s from now on;
    /// `old` is forgotten. Nothing is sent.
    pub fn session_moved(&mut self, old: SessionId, new: SessionId) {
        if let Some(state) = self.sessions.remove(&old) {
            self.sessions.insert(new, state);
        }
    }

    fn unavailable<S: RosterStore>(
        &mut self,
        router: &mut Router,
        store: &mut S,
        session: SessionId,
        jid: &FullJid,
        broadcast: Stanza,
        still_connected: bool,
    ) -> Result<Vec<ImAction>, S::Error> {
        let user = jid.to_bare();
        let roster = sorted_items(store, &user)?;
        let resources = self.resources(router, &user);
        let view = PresenceView {
            user: &user,
            roster: &roster,
            resources: &resources,
        };
        let no_targets = BTreeSet::new();
        let directed = self
            .sessions
            .get(&session)
            .map_or(&no_targets, |s| &s.directed);
        let out = broadcast_unavailable(&view, session, &broadcast, directed, still_connected);
        let was_available = view
            .resource(session)
            .is_some_and(UserResource::is_available);
        let others_available = view.available().any(|r| r.session != session);
        router.set_presence(session, false, 0);
        if let Some(state) = self.sessions.get_mut(&session) {
            state.presence = None;
            state.directed.clear();
        }
        if was_available && !others_available {
            self.last_unavailable.insert(user, broadcast);
        }
        Ok(out)
    }

    /// The bound sessions of `user`, ascending, with their presence: the
    /// router says which are available, this service what they sent (a
    /// session the host marked available without this service counts as
    /// having sent `<presence/>`).
    fn resources(&self, router: &Router, user: &BareJid) -> Vec<UserResource> {
        router
            .sessions_of(user)
            .map(|(session, jid)| {
                let available = router.session(session).is_some_and(|s| s.available);
                let presence = available.then(|| {
                    self.sessions
                        .get(&session)
                        .and_then(|s| s.presence.as_ref())
                        .map(KeptPresence::stanza)
                        .unwrap_or_else(|| {
                            let mut p = Stanza::new(StanzaKind::Presence, CONTENT_NS);
                            p.set_from(Some(jid.as_str()));
                            p
                        })
                });
                UserResource {
                    session,
                    jid: jid.clone(),
                    presence,
                }
            })
            .collect()
    }
}

/// The subscription type of a presence stanza.
fn subscription_type(stanza: &Stanza) -> Option<SubscriptionStanza> {
    SubscriptionStanza::from_presence_type(stanza.presence_type()?.ok()?)
}

/// `old` after transition `t`. `request`: the inbound stanza, stored when
/// it makes the state Pending In.
fn apply(old: &RosterItem, t: &Transition, request: Option<&Stanza>) -> RosterItem {
    let mut item = old.clone();
    item.subscription = t.state.subscription;
    item.pending_out = t.state.pending_out;
    item.approved = t.approved;
    item.pending_in = match (&old.pending_in, t.state.pending_in) {
        (_, false) => None,
        (Some(kept), true) => Some(kept.clone()),
        (None, true) => request.cloned(),
    };
    item.in_roster = old.in_roster || visible(&item);
    item
}

/// Every record of `user`, by JID.
fn sorted_items<S: RosterStore>(store: &S, user: &BareJid) -> Result<Vec<RosterItem>, S::Error> {
    let mut items = store.items(user)?;
    items.sort_by(|a, b| a.jid.cmp(&b.jid));
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Stanza {
        Stanza::from_element(xml.parse().unwrap(), CONTENT_NS).unwrap()
    }

    /// What is kept small comes back equal; everything else is kept whole.
    #[test]
    fn kept_presence_round_trips() {
        for (xml, plain) in [
            (
                "<presence xmlns='jabber:client' from='a@b/c' id='x1'/>",
                true,
            ),
            ("<presence xmlns='jabber:client' from='a@b/c'/>", true),
            (
                "<presence xmlns='jabber:client' from='a@b/c' id='x'><show>away</show></presence>",
                false,
            ),
            (
                "<presence xmlns='jabber:client' from='a@b/c' xml:lang='en'/>",
                false,
            ),
            (
                "<presence xmlns='jabber:client' from='a@b/c' type='weird'/>",
                false,
            ),
            ("<presence xmlns='jabber:client' id='no-from'/>", false),
            (
                "<presence xmlns='jabber:client' from='a@b/c'> </presence>",
                false,
            ),
        ] {
            let stanza = parse(xml);
            let kept = KeptPresence::keep(stanza.clone());
            assert_eq!(matches!(kept, KeptPresence::Plain { .. }), plain, "{xml}");
            assert_eq!(kept.stanza(), stanza, "{xml}");
        }
    }
}
