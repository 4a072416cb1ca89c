//! Pure presence decisions (RFC 6121 §4): who gets a presence broadcast,
//! which probes go out, what answers a probe, which directed presence is
//! remembered. Each function takes a [`PresenceView`] of one user (roster,
//! bound sessions with their last presence) and returns the
//! [`ImAction`]s, in order; [`ImService`](crate::im::ImService) keeps that
//! view up to date and calls them.
//!
//! | event | actions, in this order | RFC 6121 |
//! |---|---|---|
//! | initial presence from session *s* | the presence to each contact with `from`/`both` (to its bare JID); a probe from *s* to each contact with `to`/`both`; the presence to each available session of the user, *s* included; the last presence of each other available session to *s*; each pending subscription request to *s* | §4.2.2, §4.3.1, §3.1.3 |
//! | presence update from *s* | the presence to each contact with `from`/`both`; to each available session, *s* included | §4.4.2 |
//! | `unavailable` from available *s* | to each contact with `from`/`both`; to each entity *s* sent directed presence to and is not such a contact; to each available session, *s* included while connected | §4.5.2, §4.6.3 |
//! | `unavailable` from *s* never available | to each entity *s* sent directed presence to | §4.6.3 |
//! | probe from a contact with `from`/`both` (or the user) | the last presence of each available session; with none, the last `unavailable` (or a bare `unavailable` from the user's bare JID) | §4.3.2 |
//! | probe from anyone else | `unsubscribed` from the user's bare JID, or nothing ([`NonSubscriberProbe`]) | §4.3.2 |
//!
//! Priority is not handled here: [`ImService`](crate::im::ImService)
//! passes it to [`Router::set_presence`](crate::router::Router::set_presence),
//! which alone decides who gets messages to the bare JID (RFC 6121
//! §8.5.2.1.1: negative priority gets none).

use std::collections::BTreeSet;

use crate::im::roster::RosterItem;
use crate::im::subscription::SubscriptionStanza;
use crate::im::{CONTENT_NS, ImAction};
use crate::jid::{BareJid, FullJid, Jid};
use crate::router::SessionId;
use crate::stanza::{Stanza, StanzaKind};

/// How to answer a probe from someone who has no `from`/`both`
/// subscription (RFC 6121 §4.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NonSubscriberProbe {
    /// Send `unsubscribed` from the user's bare JID (the RFC's SHOULD: it
    /// lets the prober's server fix a stale `to`).
    #[default]
    ReplyUnsubscribed,
    /// Send nothing (does not confirm that the account exists).
    Ignore,
}

/// One bound session of the user.
#[derive(Clone, Debug, PartialEq)]
pub struct UserResource {
    /// The host's session id.
    pub session: SessionId,
    /// Its full JID.
    pub jid: FullJid,
    /// Its last broadcast available presence (`from` its full JID, no
    /// `to`); `None` while the session is not available.
    pub presence: Option<Stanza>,
}

impl UserResource {
    /// Whether the session is available (has sent available presence and
    /// not `unavailable` since).
    pub fn is_available(&self) -> bool {
        self.presence.is_some()
    }
}

/// What presence decisions know about one user.
#[derive(Clone, Copy, Debug)]
pub struct PresenceView<'a> {
    /// The user.
    pub user: &'a BareJid,
    /// Every record of the user's roster, including pending requests from
    /// contacts not in the roster.
    pub roster: &'a [RosterItem],
    /// The user's bound sessions, ascending by session id, in their state
    /// before the event.
    pub resources: &'a [UserResource],
}

impl PresenceView<'_> {
    /// The contacts that receive the user's presence (`from`/`both`).
    pub fn subscribers(&self) -> impl Iterator<Item = &BareJid> {
        self.roster
            .iter()
            .filter(|i| i.subscription.has_from())
            .map(|i| &i.jid)
    }

    /// The contacts whose presence the user receives (`to`/`both`).
    pub fn subscriptions(&self) -> impl Iterator<Item = &BareJid> {
        self.roster
            .iter()
            .filter(|i| i.subscription.has_to())
            .map(|i| &i.jid)
    }

    /// Whether `contact` receives the user's presence.
    pub fn is_subscriber(&self, contact: &BareJid) -> bool {
        self.roster
            .iter()
            .any(|i| i.jid == *contact && i.subscription.has_from())
    }

    /// The available sessions.
    pub fn available(&self) -> impl Iterator<Item = &UserResource> {
        self.resources.iter().filter(|r| r.is_available())
    }

    /// The session `session`, if it is the user's.
    pub fn resource(&self, session: SessionId) -> Option<&UserResource> {
        self.resources.iter().find(|r| r.session == session)
    }
}

/// `stanza` with `to` set.
fn addressed(stanza: &Stanza, to: &str) -> Stanza {
    let mut s = stanza.clone();
    s.set_to(Some(to));
    s
}

/// A `<presence/>` of `presence_type` (`None`: available).
pub fn presence_stanza(presence_type: Option<&str>, from: &str, to: &str) -> Stanza {
    let mut p = Stanza::new(StanzaKind::Presence, CONTENT_NS);
    p.set_from(Some(from));
    p.set_to(Some(to));
    if presence_type.is_some() {
        p.set_attr("type", presence_type);
    }
    p
}

/// A subscription presence from the user's bare JID to `contact`.
pub fn subscription_stanza(kind: SubscriptionStanza, user: &BareJid, contact: &BareJid) -> Stanza {
    presence_stanza(Some(kind.name()), user.as_str(), contact.as_str())
}

/// Available presence (initial or update) from `sender`: `presence` is the
/// new broadcast presence, `from` its full JID and no `to`. Initial when
/// the sender is not available in `view`. Sessions not in `view` get
/// nothing.
pub fn broadcast_available(
    view: &PresenceView<'_>,
    sender: SessionId,
    presence: &Stanza,
) -> Vec<ImAction> {
    let Some(sender_resource) = view.resource(sender) else {
        return Vec::new();
    };
    let initial = !sender_resource.is_available();
    let mut out: Vec<ImAction> = view
        .subscribers()
        .map(|contact| ImAction::Route(addressed(presence, contact.as_str())))
        .collect();
    if initial {
        out.extend(view.subscriptions().map(|contact| {
            ImAction::Route(presence_stanza(
                Some("probe"),
                sender_resource.jid.as_str(),
                contact.as_str(),
            ))
        }));
    }
    for r in view.resources {
        if r.is_available() || r.session == sender {
            out.push(ImAction::Deliver {
                session: r.session,
                stanza: addressed(presence, r.jid.as_str()),
            });
        }
    }
    if initial {
        for r in view.available().filter(|r| r.session != sender) {
            if let Some(p) = &r.presence {
                out.push(ImAction::Deliver {
                    session: sender,
                    stanza: addressed(p, sender_resource.jid.as_str()),
                });
            }
        }
        for request in view.roster.iter().filter_map(|i| i.pending_in.as_ref()) {
            out.push(ImAction::Deliver {
                session: sender,
                stanza: request.clone(),
            });
        }
    }
    out
}

/// `unavailable` from `sender` (`presence`: `from` its full JID, no `to`),
/// or the end of its session. `directed`: the entities it sent directed
/// available presence to. `still_connected`: whether the sender gets its
/// own `unavailable` (false when its stream is gone).
pub fn broadcast_unavailable(
    view: &PresenceView<'_>,
    sender: SessionId,
    presence: &Stanza,
    directed: &BTreeSet<Jid>,
    still_connected: bool,
) -> Vec<ImAction> {
    let was_available = view
        .resource(sender)
        .is_some_and(UserResource::is_available);
    let mut out = Vec::new();
    if was_available {
        out.extend(
            view.subscribers()
                .map(|contact| ImAction::Route(addressed(presence, contact.as_str()))),
        );
    }
    for target in directed {
        // A subscriber already got the broadcast at its bare JID.
        if was_available && view.is_subscriber(&target.to_bare()) {
            continue;
        }
        out.push(ImAction::Route(addressed(presence, target.as_str())));
    }
    if was_available {
        for r in view.available() {
            if r.session != sender || still_connected {
                out.push(ImAction::Deliver {
                    session: r.session,
                    stanza: addressed(presence, r.jid.as_str()),
                });
            }
        }
    }
    out
}

/// Whether directed available presence from the user to `to` must be
/// remembered, so that `to` gets `unavailable` when the session goes
/// (RFC 6121 §4.6.3): when `to` is neither the user nor a contact that
/// gets the user's broadcasts anyway.
pub fn tracks_directed(view: &PresenceView<'_>, to: &Jid) -> bool {
    let bare = to.to_bare();
    bare != *view.user && !view.is_subscriber(&bare)
}

/// The current presence of each available session, to `contact` (after it
/// got `from`, RFC 6121 §3.1.5).
pub fn current_presence_to(view: &PresenceView<'_>, contact: &BareJid) -> Vec<ImAction> {
    view.available()
        .filter_map(|r| r.presence.as_ref())
        .map(|p| ImAction::Route(addressed(p, contact.as_str())))
        .collect()
}

/// `unavailable` from each available session, to `contact` (after it lost
/// `from`, RFC 6121 §3.2.2, §3.3.3).
pub fn unavailable_to(view: &PresenceView<'_>, contact: &BareJid) -> Vec<ImAction> {
    view.available()
        .map(|r| {
            ImAction::Route(presence_stanza(
                Some("unavailable"),
                r.jid.as_str(),
                contact.as_str(),
            ))
        })
        .collect()
}

/// The answer to `probe` (RFC 6121 §4.3.2). `last_unavailable`: the last
/// `unavailable` broadcast of the user, if the server kept it. A probe
/// without a valid `from` gets nothing.
pub fn answer_probe(
    view: &PresenceView<'_>,
    probe: &Stanza,
    last_unavailable: Option<&Stanza>,
    non_subscriber: NonSubscriberProbe,
) -> Vec<ImAction> {
    let Some(Ok(prober)) = probe.from_jid() else {
        return Vec::new();
    };
    let prober_bare = prober.to_bare();
    if prober_bare != *view.user && !view.is_subscriber(&prober_bare) {
        return match non_subscriber {
            NonSubscriberProbe::ReplyUnsubscribed => vec![ImAction::Route(subscription_stanza(
                SubscriptionStanza::Unsubscribed,
                view.user,
                &prober_bare,
            ))],
            NonSubscriberProbe::Ignore => Vec::new(),
        };
    }
    let current: Vec<ImAction> = view
        .available()
        .filter_map(|r| r.presence.as_ref())
        .map(|p| ImAction::Route(addressed(p, prober.as_str())))
        .collect();
    if !current.is_empty() {
        return current;
    }
    let unavailable = match last_unavailable {
        Some(last) => addressed(last, prober.as_str()),
        None => presence_stanza(Some("unavailable"), view.user.as_str(), prober.as_str()),
    };
    vec![ImAction::Route(unavailable)]
}
