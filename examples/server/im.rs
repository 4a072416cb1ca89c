//! The example server's IM layer: the core's `xmpp_sansio::im` driven as
//! `src/im/mod.rs` describes, with the state in redb ([`ImStore`]).
//!
//! [`Im`] sits between the hub and the [`Router`]: the hub hands it every
//! stanza a bound session sends ([`Im::stanza`]), the binds
//! ([`Im::bind`]) and the ends of sessions ([`Im::session_ended`]), and
//! writes what comes back — `(session, stanza)` pairs, in order — to those
//! sessions. Nothing here awaits or does network IO; storage is
//! synchronous (redb, one transaction per write).
//!
//! What happens to a stanza from a session:
//!
//! | stanza | handling |
//! |---|---|
//! | anything with a `to` the sender blocks (XEP-0191) | not routed: `not-acceptable` + `<blocked/>` back (errors and iq results dropped) |
//! | presence `subscribe`/`subscribed`/`unsubscribe`/`unsubscribed` | [`ImService::outbound_subscription`] instead of routing |
//! | presence available/`unavailable` with `to` | [`ImService::directed_presence`], then routed |
//! | everything else | [`Router::route`], then by decision (below) |
//!
//! | decision | handling |
//! |---|---|
//! | `Deliver` | XEP-0191 inbound check of the addressee's blocklist (`service-unavailable` back for messages and iq requests from a blocked JID, everything else dropped), then delivered; messages get XEP-0280 carbon copies |
//! | `StoreOffline(user)` | inbound check, then [`OfflinePolicy::store`]: a full queue or a message never stored bounces `service-unavailable`; stored messages get `<sent/>` carbons |
//! | `Server(Broadcast)` | [`ImService::broadcast_presence`]; a first non-negative available presence then gets the offline queue, each message with its `<delay/>` |
//! | `Server(Account)`, subscription presence / probe | inbound check, then [`ImService::inbound_subscription`] / [`ImService::inbound_probe`] |
//! | `Server(Account)`, iq `jabber:iq:roster` | [`ImService::roster_iq`] (get, set, remove; versioned) |
//! | `Server(Account)`, iq `urn:xmpp:blocking` | [`BlockingSessions::handle_iq`], the blocklist saved when it changed, pushes and presence changes carried out |
//! | `Server(Account)`, iq `urn:xmpp:carbons:2` | [`CarbonsSessions::handle_iq`] |
//! | `Server(Account)`, iq disco#info / disco#items | [`ServerDisco::respond_account`] (XEP-0030 §8 access rules: owner, subscribers with `from`/`both`, others) |
//! | `Server(Account)`, own account, iq ping | empty result |
//! | `Server(Domain)`, iq disco#info / disco#items | [`ServerDisco::respond_domain`] with [`DOMAIN_FEATURES`] |
//! | `Server(Domain)`, iq ping | empty result |
//! | other iq get/set to the server or an account | `service-unavailable` |
//! | `Bounce(error)` | the error back to the sender |
//! | `Remote` | `remote-server-not-found` back (no federation) |
//! | `Drop` | nothing |
//!
//! Stanzas the IM layer generates (`ImAction::Route`: presence to contacts,
//! probes, subscription answers) and stanzas routed again
//! ([`Im::reroute`]: unacknowledged messages of an ended XEP-0198 session)
//! go through the same decisions, but errors are never sent back for them,
//! they get no carbon copies, and presence (not subscription management)
//! from a user to a JID the user blocks is dropped. A session
//! that ends goes through [`ImService::session_ended`] (its `unavailable`)
//! before the router forgets it.
//!
//! Blocklists are read for every routed stanza, so all non-empty ones are
//! kept in memory (loaded at start, written through on change); rosters and
//! offline queues are read from redb when needed.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::SystemTime;

use minidom::Element;
use tracing::{debug, warn};
use xmpp_sansio::error::{StanzaError, StanzaErrorCondition};
use xmpp_sansio::im::blocking::{
    self, BlockVerdict, BlockingSessions, Blocklist, NS_BLOCKING, PresenceView,
};
use xmpp_sansio::im::carbons::{CarbonsSessions, MessageRoute, NS_CARBONS};
use xmpp_sansio::im::delay::Timestamp;
use xmpp_sansio::im::disco::{AccountDisco, DiscoQuery, Identity, Requester, ServerDisco};
use xmpp_sansio::im::offline::{
    self, FEATURE_MSGOFFLINE, OfflineDecision, OfflineLimits, OfflinePolicy,
};
use xmpp_sansio::im::roster::{NS_ROSTER, roster_versioning_feature};
use xmpp_sansio::im::{ImAction, ImConfig, ImService, RosterStore};
use xmpp_sansio::router::{
    Accounts, BindOutcome, ConflictPolicy, Decision, LocalTarget, Router, SessionId,
};
use xmpp_sansio::stanza::{IqType, PresenceType, Stanza, StanzaKind};
use xmpp_sansio::stream::NS_PING;
use xmpp_sansio::{BareJid, FullJid, Jid, ns};

use crate::im_store::{ImStore, ImStoreError};

/// The features advertised on the domain besides disco#info and
/// disco#items: only what is implemented. (Roster versioning is a stream
/// feature, [`stream_features`], not a disco feature.)
pub const DOMAIN_FEATURES: [&str; 6] = [
    NS_PING,
    NS_ROSTER,
    ns::XMPP_SESSION,
    NS_BLOCKING,
    NS_CARBONS,
    FEATURE_MSGOFFLINE,
];

/// Stanzas one input may cause (routed, generated, answered) before the
/// rest is dropped: a guard against a loop, far above any real exchange.
const MAX_STEPS: usize = 10_000;

/// Stanzas to write to local sessions, in order.
pub type Deliveries = Vec<(SessionId, Stanza)>;

/// The stream features offered after authentication: roster versioning
/// (RFC 6121 §2.6.1).
pub fn stream_features() -> Vec<Element> {
    vec![roster_versioning_feature()]
}

/// Where a stanza in the work queue came from.
#[derive(Clone)]
enum Origin {
    /// Sent by this local session (bound to this JID): errors go back to
    /// it, carbons count it as the sender.
    Session(SessionId, FullJid),
    /// Generated by the IM layer for a user, or routed again after a
    /// session ended: never answered with errors, no carbon copies.
    Server,
}

/// The IM state of the server. See the module docs.
pub struct Im {
    service: ImService,
    blocking: BlockingSessions,
    carbons: CarbonsSessions,
    offline: OfflinePolicy,
    disco: ServerDisco,
    store: ImStore,
    /// Every non-empty blocklist.
    blocklists: HashMap<BareJid, Blocklist>,
    /// Answers `blocklist()` for users without one.
    empty: Blocklist,
}

impl Im {
    /// Opens the IM database in `dir` for the server of `domain` (a
    /// prepared domainpart).
    pub fn open(domain: &str, dir: &Path) -> Result<Im, ImStoreError> {
        let store = ImStore::open(dir)?;
        let blocklists = store.blocklists()?;
        let server: Jid = domain
            .parse()
            .map_err(|e| ImStoreError::new(format!("domain {domain:?}: {e}")))?;
        Ok(Im {
            service: ImService::new(ImConfig::default()),
            blocking: BlockingSessions::new(),
            carbons: CarbonsSessions::new(),
            offline: OfflinePolicy::new(server, OfflineLimits::default()),
            disco: ServerDisco::new(
                Identity::new("server", "im").with_name("xmpp-sansio example server"),
                DOMAIN_FEATURES,
            ),
            store,
            blocklists,
            empty: Blocklist::new(),
        })
    }

    /// A router for `domain` with offline storage on (this layer stores).
    pub fn router(domain: &str) -> Router {
        Router::new([domain.to_owned()]).with_offline_storage(true)
    }

    fn blocklist(&self, user: &BareJid) -> &Blocklist {
        self.blocklists.get(user).unwrap_or(&self.empty)
    }

    /// Binds `session` to `jid`. A session that loses its full JID to this
    /// one (`ReplaceOld`) ends first: its contacts see it go unavailable.
    pub fn bind(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        session: SessionId,
        jid: FullJid,
        policy: ConflictPolicy,
    ) -> (BindOutcome, Deliveries) {
        let mut out = Deliveries::new();
        let holder = router
            .sessions_of(&jid.to_bare())
            .find(|(_, j)| **j == jid)
            .map(|(id, _)| id);
        if let Some(old) = holder
            && policy == ConflictPolicy::ReplaceOld
            && router.session(session).is_none()
        {
            out = self.session_ended(router, accounts, old);
        }
        (router.bind(session, jid, policy), out)
    }

    /// The local `session` ended: its `unavailable` goes out and every IM
    /// record of it is dropped. Call before [`Router::unbind`].
    pub fn session_ended(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        session: SessionId,
    ) -> Deliveries {
        let mut run = Run::default();
        let jid = router.session_jid(session).cloned();
        match self.service.session_ended(router, &mut self.store, session) {
            Ok(actions) => {
                if let Some(jid) = &jid {
                    self.actions(&mut run, &jid.to_bare(), actions);
                }
            }
            Err(e) => warn!(session, error = %e, "IM storage failed at session end"),
        }
        if let Some(jid) = &jid {
            self.blocking.session_ended(session, jid);
            self.carbons.session_ended(session, jid);
        }
        self.drain(router, accounts, &mut run);
        run.out
    }

    /// The session `old` goes on as `new`, bound to the same `jid`
    /// (XEP-0198 resumption on a new connection; the router's binding has
    /// moved already): its roster interest, presence, directed presence,
    /// blocklist interest and carbons follow it.
    pub fn session_moved(&mut self, old: SessionId, new: SessionId, jid: &FullJid) {
        self.service.session_moved(old, new);
        self.blocking.session_moved(old, new, jid);
        self.carbons.session_moved(old, new, jid);
    }

    /// Routes `stanza` again, by its `to`, as the server: a message a
    /// session was given but never acknowledged (XEP-0198), or an error
    /// about it. It may go to another session or into offline storage; it
    /// is never bounced and gets no carbon copies (it had them).
    pub fn reroute(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        stanza: Stanza,
    ) -> Deliveries {
        let mut run = Run::default();
        run.queue.push_back((Origin::Server, stanza));
        self.drain(router, accounts, &mut run);
        run.out
    }

    /// A stanza from the bound `session` (validated, `from` stamped).
    pub fn stanza(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        session: SessionId,
        stanza: Stanza,
    ) -> Deliveries {
        let mut run = Run::default();
        let Some(from) = router.session_jid(session).cloned() else {
            debug!(session, "stanza from an unbound session dropped");
            return run.out;
        };
        run.queue
            .push_back((Origin::Session(session, from), stanza));
        self.drain(router, accounts, &mut run);
        run.out
    }

    fn drain(&mut self, router: &mut Router, accounts: &impl Accounts, run: &mut Run) {
        let mut steps = 0;
        while let Some((origin, stanza)) = run.queue.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                warn!(
                    dropped = run.queue.len() + 1,
                    "too many stanzas from one input; the rest is dropped"
                );
                run.queue.clear();
                break;
            }
            match &origin {
                Origin::Session(session, from) => {
                    let (session, from) = (*session, from.clone());
                    self.session_stanza(router, accounts, run, session, &from, stanza);
                }
                Origin::Server => self.generated(router, accounts, run, stanza),
            }
        }
    }

    // --- the stanza's way ----------------------------------------------------

    fn session_stanza(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        run: &mut Run,
        session: SessionId,
        from: &FullJid,
        stanza: Stanza,
    ) {
        let user = from.to_bare();
        match blocking::check_outbound(&user, self.blocklist(&user), &stanza) {
            BlockVerdict::Pass => {}
            BlockVerdict::Drop => return,
            BlockVerdict::Bounce(error) => return run.reply(session, &stanza, &error),
        }
        if stanza.kind() == StanzaKind::Presence {
            match stanza.presence_type() {
                Some(Ok(t)) if t.is_subscription() => {
                    match self.service.outbound_subscription(
                        router,
                        &mut self.store,
                        session,
                        &stanza,
                    ) {
                        Ok(actions) => self.actions(run, &user, actions),
                        Err(e) => warn!(session, error = %e, "IM storage failed"),
                    }
                    return;
                }
                Some(Ok(PresenceType::Available | PresenceType::Unavailable))
                    if stanza.to().is_some() =>
                {
                    if let Err(e) =
                        self.service
                            .directed_presence(router, &mut self.store, session, &stanza)
                    {
                        warn!(session, error = %e, "IM storage failed");
                    }
                }
                _ => {}
            }
        }
        let decision = router.route(from, &stanza, accounts);
        debug!(
            session,
            kind = stanza.kind().name(),
            to = stanza.to(),
            ?decision,
            "route"
        );
        let origin = Origin::Session(session, from.clone());
        self.decided(router, accounts, run, &origin, stanza, decision);
    }

    fn generated(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        run: &mut Run,
        stanza: Stanza,
    ) {
        // Generated stanzas carry `to`; the router looks at `from` only
        // without one, but needs a full JID.
        let from = match stanza.from_jid() {
            Some(Ok(Jid::Full(full))) => Some(full),
            Some(Ok(Jid::Bare(bare))) => bare.with_resource("im").ok(),
            _ => None,
        };
        let (Some(from), Some(_)) = (from, stanza.to()) else {
            debug!("generated stanza without from or to dropped");
            return;
        };
        let decision = router.route(&from, &stanza, accounts);
        debug!(
            kind = stanza.kind().name(),
            to = stanza.to(),
            ?decision,
            "route (generated)"
        );
        self.decided(router, accounts, run, &Origin::Server, stanza, decision);
    }

    fn decided(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        run: &mut Run,
        origin: &Origin,
        stanza: Stanza,
        decision: Decision,
    ) {
        match decision {
            Decision::Deliver(targets) => {
                let Some(recipient) = targets
                    .first()
                    .and_then(|t| router.session_jid(*t))
                    .map(FullJid::to_bare)
                else {
                    return;
                };
                if !self.inbound_allowed(run, origin, &recipient, &stanza) {
                    return;
                }
                let copies = if stanza.kind() == StanzaKind::Message
                    && matches!(origin, Origin::Session(..))
                {
                    self.carbons.copies(
                        &stanza,
                        &MessageRoute {
                            sender: sender(origin),
                            recipient: Some((&recipient, &targets)),
                        },
                    )
                } else {
                    Vec::new()
                };
                for target in targets {
                    run.out.push((target, stanza.clone()));
                }
                run.out
                    .extend(copies.into_iter().map(|c| (c.session, c.stanza)));
            }
            Decision::StoreOffline(user) => self.store_offline(run, origin, &user, &stanza),
            Decision::Server(LocalTarget::Broadcast(_)) => {
                if let Origin::Session(session, _) = origin {
                    self.broadcast(router, run, *session, &stanza);
                }
            }
            Decision::Server(LocalTarget::Account(user)) => {
                self.account(router, accounts, run, origin, &user, &stanza);
            }
            Decision::Server(LocalTarget::Domain(jid)) => {
                if let Origin::Session(session, _) = origin {
                    self.domain(run, *session, &jid, &stanza);
                }
            }
            Decision::Bounce(error) => {
                if let Origin::Session(session, _) = origin {
                    run.reply(*session, &stanza, &error);
                }
            }
            Decision::Drop(reason) => debug!(?reason, "stanza dropped"),
            Decision::Remote(domain) => {
                debug!(%domain, "no federation: remote-server-not-found");
                if let Origin::Session(session, _) = origin {
                    run.refuse(
                        *session,
                        &stanza,
                        StanzaErrorCondition::RemoteServerNotFound,
                    );
                }
            }
        }
    }

    /// XEP-0191 for a stanza about to reach `recipient`: whether it may.
    /// A bounce goes back to a sending session.
    fn inbound_allowed(
        &self,
        run: &mut Run,
        origin: &Origin,
        recipient: &BareJid,
        stanza: &Stanza,
    ) -> bool {
        match blocking::check_inbound(recipient, self.blocklist(recipient), stanza) {
            BlockVerdict::Pass => true,
            BlockVerdict::Drop => false,
            BlockVerdict::Bounce(error) => {
                if let Origin::Session(session, _) = origin {
                    run.reply(*session, stanza, &error);
                }
                false
            }
        }
    }

    fn store_offline(&mut self, run: &mut Run, origin: &Origin, user: &BareJid, stanza: &Stanza) {
        if !self.inbound_allowed(run, origin, user, stanza) {
            return;
        }
        let now = Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
        match self.offline.store(&mut self.store, user, stanza, now) {
            Ok(OfflineDecision::Stored) => {
                debug!(%user, "message stored offline");
                let Origin::Session(..) = origin else {
                    return;
                };
                let copies = self.carbons.copies(
                    stanza,
                    &MessageRoute {
                        sender: sender(origin),
                        recipient: Some((user, &[])),
                    },
                );
                run.out
                    .extend(copies.into_iter().map(|c| (c.session, c.stanza)));
            }
            Ok(OfflineDecision::Discard) => debug!(%user, "offline message discarded"),
            Ok(OfflineDecision::Bounce(error)) => {
                debug!(%user, condition = error.condition.name(), "offline message refused");
                if let Origin::Session(session, _) = origin {
                    run.reply(*session, stanza, &error);
                }
            }
            Err(e) => {
                warn!(%user, error = %e, "offline storage failed");
                if let Origin::Session(session, _) = origin {
                    run.refuse(*session, stanza, StanzaErrorCondition::InternalServerError);
                }
            }
        }
    }

    /// Presence without `to` from `session`; then its offline messages if
    /// this made it available with a non-negative priority (XEP-0160 §2).
    fn broadcast(
        &mut self,
        router: &mut Router,
        run: &mut Run,
        session: SessionId,
        stanza: &Stanza,
    ) {
        let Some(user) = router.session_jid(session).map(FullJid::to_bare) else {
            return;
        };
        let was_non_negative = router
            .session(session)
            .is_some_and(|s| s.available && s.priority >= 0);
        match self
            .service
            .broadcast_presence(router, &mut self.store, session, stanza)
        {
            Ok(actions) => self.actions(run, &user, actions),
            Err(e) => {
                warn!(session, error = %e, "IM storage failed");
                return;
            }
        }
        let now_non_negative = router
            .session(session)
            .is_some_and(|s| s.available && s.priority >= 0);
        if !(now_non_negative && offline::is_delivery_trigger(was_non_negative, stanza)) {
            return;
        }
        match self.offline.take_for_delivery(&mut self.store, &user) {
            Ok(messages) => {
                if !messages.is_empty() {
                    debug!(
                        session,
                        count = messages.len(),
                        "offline messages delivered"
                    );
                }
                for message in messages {
                    // Blocked since it was stored: not delivered.
                    let verdict = blocking::check_inbound(&user, self.blocklist(&user), &message);
                    if verdict == BlockVerdict::Pass {
                        run.out.push((session, message));
                    }
                }
            }
            Err(e) => warn!(session, error = %e, "offline storage failed"),
        }
    }

    fn account(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        run: &mut Run,
        origin: &Origin,
        user: &BareJid,
        stanza: &Stanza,
    ) {
        let sender_bare = stanza.from_jid().and_then(Result::ok).map(Jid::into_bare);
        if sender_bare.as_ref() != Some(user) && !self.inbound_allowed(run, origin, user, stanza) {
            return;
        }
        match stanza.kind() {
            StanzaKind::Presence => {
                let result = if stanza.presence_type() == Some(Ok(PresenceType::Probe)) {
                    self.service
                        .inbound_probe(router, &mut self.store, user, stanza)
                } else {
                    self.service
                        .inbound_subscription(router, &mut self.store, user, stanza)
                };
                match result {
                    Ok(actions) => self.actions(run, user, actions),
                    Err(e) => warn!(%user, error = %e, "IM storage failed"),
                }
            }
            StanzaKind::Iq => {
                // Iqs the IM layer generates go to sessions directly; only
                // clients' iqs get here.
                if let Origin::Session(session, from) = origin {
                    let (session, from) = (*session, from.clone());
                    self.account_iq(router, accounts, run, session, &from, user, stanza);
                }
            }
            StanzaKind::Message => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn account_iq(
        &mut self,
        router: &mut Router,
        accounts: &impl Accounts,
        run: &mut Run,
        session: SessionId,
        from: &FullJid,
        user: &BareJid,
        iq: &Stanza,
    ) {
        if !iq
            .iq_type()
            .and_then(Result::ok)
            .is_some_and(IqType::is_request)
        {
            return; // results and errors (e.g. to roster pushes): never answered
        }
        let own = from.to_bare() == *user;
        let in_ns = |ns: &str| iq.element().children().any(|c| c.has_ns(ns));
        if in_ns(NS_ROSTER) {
            match self.service.roster_iq(router, &mut self.store, session, iq) {
                Ok(actions) => self.actions(run, &from.to_bare(), actions),
                Err(e) => {
                    warn!(session, error = %e, "roster storage failed");
                    run.refuse(session, iq, StanzaErrorCondition::InternalServerError);
                }
            }
        } else if in_ns(NS_BLOCKING) {
            self.blocking_iq(router, run, session, from, iq);
        } else if in_ns(NS_CARBONS) {
            match self.carbons.handle_iq(session, from, iq) {
                Some(reply) => run.out.push((session, reply)),
                None => run.refuse(session, iq, StanzaErrorCondition::ServiceUnavailable),
            }
        } else if DiscoQuery::from_iq(iq).is_some() {
            let Some(requester) = self.requester(from, user, own) else {
                return run.refuse(session, iq, StanzaErrorCondition::InternalServerError);
            };
            let resources: Vec<FullJid> =
                router.sessions_of(user).map(|(_, j)| j.clone()).collect();
            let account = AccountDisco {
                exists: accounts.exists(user) || !resources.is_empty(),
                requester,
                resources: &resources,
            };
            match self.disco.respond_account(iq, &account) {
                Some(reply) => run.out.push((session, reply)),
                None => run.refuse(session, iq, StanzaErrorCondition::ServiceUnavailable),
            }
        } else if own
            && iq.iq_type() == Some(Ok(IqType::Get))
            && iq.iq_payload().is_some_and(|p| p.is("ping", NS_PING))
        {
            run.answer(session, iq);
        } else {
            run.refuse(session, iq, StanzaErrorCondition::ServiceUnavailable);
        }
    }

    /// Who `from` is to `user`, for XEP-0030 §8; `None` if the roster
    /// cannot be read.
    fn requester(&self, from: &FullJid, user: &BareJid, own: bool) -> Option<Requester> {
        if own {
            return Some(Requester::Owner);
        }
        match self.store.item(user, &from.to_bare()) {
            Ok(Some(item)) if item.subscription.has_from() => Some(Requester::Authorized),
            Ok(_) => Some(Requester::Other),
            Err(e) => {
                warn!(%user, error = %e, "roster storage failed");
                None
            }
        }
    }

    fn blocking_iq(
        &mut self,
        router: &mut Router,
        run: &mut Run,
        session: SessionId,
        from: &FullJid,
        iq: &Stanza,
    ) {
        let user = from.to_bare();
        let roster = match self.store.items(&user) {
            Ok(items) => items,
            Err(e) => {
                warn!(session, error = %e, "roster storage failed");
                return run.refuse(session, iq, StanzaErrorCondition::InternalServerError);
            }
        };
        let sessions: Vec<SessionId> = router.sessions_of(&user).map(|(id, _)| id).collect();
        let available: Vec<FullJid> = router
            .sessions_of(&user)
            .filter(|(id, _)| router.session(*id).is_some_and(|s| s.available))
            .map(|(_, jid)| jid.clone())
            .collect();
        let mut recipients: Vec<Jid> = roster
            .iter()
            .filter(|item| item.subscription.has_from())
            .map(|item| Jid::Bare(item.jid.clone()))
            .collect();
        for id in &sessions {
            for target in self.service.directed_presence_targets(*id) {
                if !recipients.contains(target) {
                    recipients.push(target.clone());
                }
            }
        }
        let mut list = self.blocklist(&user).clone();
        let view = PresenceView {
            available_resources: &available,
            presence_recipients: &recipients,
        };
        let Some(outcome) = self.blocking.handle_iq(session, from, iq, &mut list, view) else {
            return run.refuse(session, iq, StanzaErrorCondition::ServiceUnavailable);
        };
        if outcome.changed {
            if let Err(e) = self.store.save_blocklist(&user, &list) {
                warn!(%user, error = %e, "blocklist storage failed");
                return run.refuse(session, iq, StanzaErrorCondition::InternalServerError);
            }
            if list.is_empty() {
                self.blocklists.remove(&user);
            } else {
                self.blocklists.insert(user.clone(), list);
            }
        }
        run.out.push((session, outcome.reply));
        run.out.extend(outcome.pushes);
        // §3.3: unavailable to the newly blocked (the user's own outbound
        // check would stop it, so it is queued as the server's).
        for presence in outcome.unavailable_presence {
            run.queue.push_back((Origin::Server, presence));
        }
        // §3.4: the current presence to the newly unblocked.
        for recipient in outcome.send_current_presence_to {
            for id in &sessions {
                if let Some(mut presence) = self.service.last_presence(*id) {
                    presence.set_to(Some(recipient.as_str()));
                    run.queue.push_back((Origin::Server, presence));
                }
            }
        }
    }

    fn domain(&mut self, run: &mut Run, session: SessionId, jid: &Jid, stanza: &Stanza) {
        let Some(Ok(iq_type)) = stanza.iq_type() else {
            return; // messages and presence to the server: ignored
        };
        if !iq_type.is_request() {
            return;
        }
        if jid.resource().is_some() {
            // No server resources exist.
            return run.refuse(session, stanza, StanzaErrorCondition::ServiceUnavailable);
        }
        if let Some(reply) = self.disco.respond_domain(stanza) {
            return run.out.push((session, reply));
        }
        let ping = stanza.iq_payload().is_some_and(|p| p.is("ping", NS_PING));
        if ping && iq_type == IqType::Get {
            run.answer(session, stanza);
        } else {
            run.refuse(session, stanza, StanzaErrorCondition::ServiceUnavailable);
        }
    }

    /// Carries out the IM layer's actions about `user`: deliveries now,
    /// routes queued; presence (not subscription management) from `user`
    /// to a JID `user` blocks is dropped (XEP-0191 §3.3).
    fn actions(&self, run: &mut Run, user: &BareJid, actions: Vec<ImAction>) {
        for action in actions {
            match action {
                ImAction::Deliver { session, stanza } => run.out.push((session, stanza)),
                ImAction::Route(stanza) => {
                    if blocked_presence(user, self.blocklist(user), &stanza) {
                        debug!(to = stanza.to(), "presence to a blocked JID dropped");
                        continue;
                    }
                    run.queue.push_back((Origin::Server, stanza));
                }
            }
        }
    }
}

/// Whether `stanza` is presence other than subscription management from
/// `user` to a JID on `user`'s blocklist.
fn blocked_presence(user: &BareJid, list: &Blocklist, stanza: &Stanza) -> bool {
    let presence = matches!(
        stanza.presence_type(),
        Some(Ok(PresenceType::Available
            | PresenceType::Unavailable
            | PresenceType::Probe))
    );
    presence
        && stanza
            .from_jid()
            .and_then(Result::ok)
            .is_some_and(|from| from.to_bare() == *user)
        && stanza
            .to_jid()
            .and_then(Result::ok)
            .is_some_and(|to| list.blocks(&to))
}

fn sender(origin: &Origin) -> Option<(SessionId, &FullJid)> {
    match origin {
        Origin::Session(id, jid) => Some((*id, jid)),
        Origin::Server => None,
    }
}

/// One input's work: the queue of stanzas still to route and what goes out.
#[derive(Default)]
struct Run {
    queue: VecDeque<(Origin, Stanza)>,
    out: Deliveries,
}

impl Run {
    fn reply(&mut self, session: SessionId, stanza: &Stanza, error: &StanzaError) {
        if let Some(reply) = stanza.error_reply(error) {
            self.out.push((session, reply));
        }
    }

    /// Bounces `stanza` to `session`, except errors and iq results.
    fn refuse(&mut self, session: SessionId, stanza: &Stanza, condition: StanzaErrorCondition) {
        if stanza.iq_type() == Some(Ok(IqType::Result)) {
            return;
        }
        self.reply(session, stanza, &StanzaError::new(condition));
    }

    fn answer(&mut self, session: SessionId, iq: &Stanza) {
        if let Some(reply) = iq.iq_result(None) {
            self.out.push((session, reply));
        }
    }
}
