//! A host for the IM tests: one server (`example.com`) with a [`Router`], a
//! [`MemoryRosterStore`] and an [`ImService`], driven the way the `im`
//! module docs say a host drives them. Stanzas delivered to local sessions
//! land in per-session inboxes; stanzas for other domains in `remote`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

use minidom::Element;
use xmpp_sansio::im::roster::{NS_ROSTER, is_roster_iq};
use xmpp_sansio::im::{ImAction, ImConfig, ImService, MemoryRosterStore, RosterItem, RosterStore};
use xmpp_sansio::router::{ConflictPolicy, Decision, LocalTarget, Router, SessionId};
use xmpp_sansio::stanza::{IqType, PresenceType, Stanza, StanzaKind};
use xmpp_sansio::{BareJid, FullJid, Jid};

pub const DOMAIN: &str = "example.com";

pub fn bare(s: &str) -> BareJid {
    s.parse().unwrap()
}

pub fn full(s: &str) -> FullJid {
    s.parse().unwrap()
}

pub fn parse(xml: &str) -> Stanza {
    Stanza::from_element(xml.parse().unwrap(), "jabber:client").unwrap()
}

/// `<presence/>` of `presence_type` (None: available) to `to`.
pub fn presence(presence_type: Option<&str>, to: Option<&str>) -> Stanza {
    let mut p = Stanza::new(StanzaKind::Presence, "jabber:client");
    p.set_attr("type", presence_type);
    p.set_to(to);
    p
}

/// Available presence with a `<show/>` and a `<priority/>`.
pub fn available(show: &str, priority: i16) -> Stanza {
    let mut p = presence(None, None);
    let mut s = Element::bare("show", "jabber:client");
    s.append_text(show.to_owned());
    p.element_mut().append_child(s);
    let mut pr = Element::bare("priority", "jabber:client");
    pr.append_text(priority.to_string());
    p.element_mut().append_child(pr);
    p
}

/// A roster get, with `ver` if given.
pub fn roster_get(id: &str, ver: Option<&str>) -> Stanza {
    let mut q = Element::bare("query", NS_ROSTER);
    if let Some(v) = ver {
        q.set_attr(
            rxml::Namespace::NONE,
            rxml::NcName::try_from("ver").unwrap(),
            v,
        );
    }
    Stanza::iq(IqType::Get, None, id, q)
}

/// A roster set whose query holds `items_xml` (items in the roster
/// namespace).
pub fn roster_set(id: &str, items_xml: &str) -> Stanza {
    let q: Element = format!("<query xmlns='jabber:iq:roster'>{items_xml}</query>")
        .parse()
        .unwrap();
    Stanza::iq(IqType::Set, None, id, q)
}

pub struct World {
    pub router: Router,
    pub store: MemoryRosterStore,
    pub im: ImService,
    pub accounts: HashSet<BareJid>,
    pub inbox: BTreeMap<SessionId, Vec<Stanza>>,
    /// Stanzas routed to other domains, in order.
    pub remote: Vec<Stanza>,
    /// Every action the IM layer returned, in order.
    pub actions: Vec<ImAction>,
}

impl World {
    pub fn new(config: ImConfig) -> World {
        World {
            router: Router::new([DOMAIN.to_owned()]),
            store: MemoryRosterStore::new(),
            im: ImService::new(config),
            accounts: HashSet::new(),
            inbox: BTreeMap::new(),
            remote: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Binds `session` to `jid` (creating the account).
    pub fn bind(&mut self, session: SessionId, jid: &str) {
        let jid = full(jid);
        self.accounts.insert(jid.to_bare());
        self.router.bind(session, jid, ConflictPolicy::RefuseNew);
    }

    /// Writes an item straight into the store (a roster that already
    /// exists when the test starts); bumps the version.
    pub fn seed(&mut self, user: &str, item: RosterItem) {
        let user = bare(user);
        let v = self.store.version(&user).unwrap() + 1;
        self.store.put_item(&user, item, v).unwrap();
    }

    pub fn item(&self, user: &str, contact: &str) -> Option<RosterItem> {
        self.store.item(&bare(user), &bare(contact)).unwrap()
    }

    pub fn version(&self, user: &str) -> u64 {
        self.store.version(&bare(user)).unwrap()
    }

    /// Everything delivered to `session` since the last call.
    pub fn take(&mut self, session: SessionId) -> Vec<Stanza> {
        self.inbox.remove(&session).unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.inbox.clear();
        self.remote.clear();
        self.actions.clear();
    }

    /// A stanza from the client of `session`, as `ServerConnection` hands
    /// it over (`from` stamped: bare for subscription presence, else full).
    pub fn send(&mut self, session: SessionId, mut stanza: Stanza) {
        let jid = self.router.session_jid(session).unwrap().clone();
        if stanza.is_subscription_presence() {
            stanza.set_from(Some(jid.to_bare().as_str()));
            let actions = self
                .im
                .outbound_subscription(&self.router, &mut self.store, session, &stanza)
                .unwrap();
            return self.carry_out(actions);
        }
        let directed = stanza.to().is_some()
            && matches!(
                stanza.presence_type(),
                Some(Ok(PresenceType::Available | PresenceType::Unavailable))
            );
        stanza.set_from(Some(jid.as_str()));
        if directed {
            self.im
                .directed_presence(&self.router, &mut self.store, session, &stanza)
                .unwrap();
        }
        let decision = self.router.route(&jid, &stanza, &self.accounts);
        self.decide(Some(session), stanza, decision);
    }

    /// The stream of `session` ended.
    pub fn end(&mut self, session: SessionId) {
        let actions = self
            .im
            .session_ended(&mut self.router, &mut self.store, session)
            .unwrap();
        self.router.unbind(session);
        self.inbox.remove(&session);
        self.carry_out(actions);
    }

    /// A stanza arriving from another domain, addressed to a local user.
    pub fn receive_remote(&mut self, stanza: Stanza) {
        let sender = server_jid(&stanza);
        let decision = self.router.route(&sender, &stanza, &self.accounts);
        self.decide(None, stanza, decision);
    }

    pub fn carry_out(&mut self, actions: Vec<ImAction>) {
        for action in actions {
            self.actions.push(action.clone());
            match action {
                ImAction::Deliver { session, stanza } => {
                    self.inbox.entry(session).or_default().push(stanza)
                }
                ImAction::Route(stanza) => {
                    let sender = server_jid(&stanza);
                    let decision = self.router.route(&sender, &stanza, &self.accounts);
                    self.decide(None, stanza, decision);
                }
            }
        }
    }

    fn decide(&mut self, session: Option<SessionId>, stanza: Stanza, decision: Decision) {
        match decision {
            Decision::Deliver(ids) => {
                for id in ids {
                    self.inbox.entry(id).or_default().push(stanza.clone());
                }
            }
            Decision::Server(LocalTarget::Broadcast(_)) => {
                let session = session.expect("broadcasts come from sessions");
                let actions = self
                    .im
                    .broadcast_presence(&mut self.router, &mut self.store, session, &stanza)
                    .unwrap();
                self.carry_out(actions);
            }
            Decision::Server(LocalTarget::Account(user)) => {
                let actions = if is_roster_iq(&stanza) {
                    match session {
                        Some(s) => self
                            .im
                            .roster_iq(&self.router, &mut self.store, s, &stanza)
                            .unwrap(),
                        None => Vec::new(),
                    }
                } else if stanza.presence_type() == Some(Ok(PresenceType::Probe)) {
                    self.im
                        .inbound_probe(&self.router, &mut self.store, &user, &stanza)
                        .unwrap()
                } else if stanza.kind() == StanzaKind::Presence {
                    self.im
                        .inbound_subscription(&self.router, &mut self.store, &user, &stanza)
                        .unwrap()
                } else {
                    Vec::new()
                };
                self.carry_out(actions);
            }
            Decision::Server(LocalTarget::Domain(_)) | Decision::Drop(_) => {}
            Decision::Bounce(error) => {
                if let (Some(s), Some(reply)) = (session, stanza.error_reply(&error)) {
                    self.inbox.entry(s).or_default().push(reply);
                }
            }
            Decision::StoreOffline(_) => {}
            Decision::Remote(_) => self.remote.push(stanza),
        }
    }
}

/// A full JID standing for the sender of a server-generated stanza (the
/// router reads it only for stanzas without `to`).
fn server_jid(stanza: &Stanza) -> FullJid {
    match stanza.from_jid() {
        Some(Ok(Jid::Full(f))) => f,
        Some(Ok(Jid::Bare(b))) => b.with_resource("server").unwrap(),
        _ => full("example.com/server"),
    }
}

/// (kind/type, from, to) of each stanza: enough to compare fan-outs.
pub fn summary(stanzas: &[Stanza]) -> Vec<(String, String, String)> {
    stanzas
        .iter()
        .map(|s| {
            let kind = match (s.kind(), s.type_attr()) {
                (StanzaKind::Presence, None) => "presence".to_owned(),
                (k, Some(t)) => format!("{}:{t}", k.name()),
                (k, None) => k.name().to_owned(),
            };
            (
                kind,
                s.from().unwrap_or("").to_owned(),
                s.to().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `summary` rows from string literals.
pub fn rows(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

/// The `<item/>` of a roster push or result.
pub fn pushed_item(stanza: &Stanza) -> &Element {
    stanza
        .iq_payload()
        .and_then(|q| q.get_child("item", NS_ROSTER))
        .expect("a roster push")
}
