//! The presence-subscription state machine of RFC 6121 Appendix A, as one
//! pure function: [`transition`].
//!
//! The state of a contact in the user's roster is the subscription
//! (`none`/`to`/`from`/`both`) with two flags: Pending Out (the user asked
//! the contact, `ask='subscribe'`) and Pending In (the contact asked the
//! user; kept by the server, never sent as an attribute). Appendix A.1
//! defines nine combinations ([`SubscriptionState::ALL`]). Next to the state
//! the server keeps the pre-approval flag (`approved`, RFC 6121 §3.4).
//!
//! Events are the four subscription presence types, either **outbound**
//! (sent by the user, Appendix A.2: the user's server decides whether to
//! route it to the contact) or **inbound** (sent by the contact,
//! Appendix A.3: the user's server decides whether to deliver it to the
//! user).
//!
//! # The table
//!
//! Cells: new state, then what happens. "route" = route the stanza to the
//! contact; "deliver" = deliver it to the user; "–" = no state change and
//! nothing sent; "subscribed↩" = the server answers the contact with
//! `subscribed` for the user; "pre-approve" = set `approved`, don't route;
//! "+presence" = send the current presence of the user's available
//! resources to the contact; "+unavailable" = send `unavailable` from each
//! of them to the contact.
//!
//! | state | out `subscribe` | out `unsubscribe` | out `subscribed` | out `unsubscribed` |
//! |---|---|---|---|---|
//! | None | None+Out, route | route | pre-approve | – (clears pre-approval) |
//! | None+Out | route | None, route | pre-approve | – (clears pre-approval) |
//! | None+In | None+Out+In, route | route | From, route, +presence | None, route |
//! | None+Out+In | route | None+In, route | From+Out, route, +presence | None+Out, route |
//! | To | route | None, route | pre-approve | – (clears pre-approval) |
//! | To+In | route | None+In, route | Both, route, +presence | To, route |
//! | From | From+Out, route | route | – | None, +unavailable, route |
//! | From+Out | route | From, route | – | None+Out, +unavailable, route |
//! | Both | route | From, route | – | To, +unavailable, route |
//!
//! | state | in `subscribe` | in `unsubscribe` | in `subscribed` | in `unsubscribed` |
//! |---|---|---|---|---|
//! | None | None+In, deliver (pre-approved: From, subscribed↩, +presence) | – | – | – |
//! | None+Out | None+Out+In, deliver (pre-approved: From+Out, subscribed↩, +presence) | – | To, deliver | None, deliver |
//! | None+In | – | None, deliver | – | – |
//! | None+Out+In | – | None+Out, deliver | To+In, deliver | None+In, deliver |
//! | To | To+In, deliver (pre-approved: Both, subscribed↩, +presence) | – | – | None, deliver |
//! | To+In | – | To, deliver | – | None+In, deliver |
//! | From | subscribed↩, +presence | None, deliver, +unavailable | – | – |
//! | From+Out | subscribed↩, +presence | None+Out, deliver, +unavailable | Both, deliver | From, deliver |
//! | Both | subscribed↩, +presence | To, deliver, +unavailable | – | From, deliver |
//!
//! A roster push follows every change of what the client sees: the
//! subscription, Pending Out (`ask`) or `approved`. A change of Pending In
//! alone is not pushed: it is not part of the item on the wire.
//!
//! Where this goes beyond the Appendix A tables, with the RFC text it
//! follows:
//!
//! * "+presence" after an approval: §3.1.5 ("the contact's server MUST then
//!   also send current presence to the user from each of the contact's
//!   available resources"); "+unavailable" on a revocation (§3.2.2) and on
//!   an inbound `unsubscribe` from a contact with `from`/`both` (§3.3.3).
//! * Pre-approval (§3.4): outbound `subscribed` in None, None+Out or To
//!   sets `approved` instead of routing; an inbound `subscribe` then is
//!   answered for the user. Outbound `unsubscribed` in those states
//!   cancels the pre-approval (§3.4: "the user can cancel the
//!   pre-approval by sending unsubscribed").
//! * "+presence" after the automatic `subscribed` to a contact that
//!   already has `from`/`both` is our choice (the RFC only requires the
//!   `subscribed`): the contact re-subscribes because its server lost the
//!   state, so it also lacks the presence (Prosody does the same).

use std::fmt;

use crate::im::roster::Subscription;
use crate::stanza::PresenceType;

/// A subscription state of RFC 6121 Appendix A.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionState {
    /// `none`, `to`, `from` or `both`.
    pub subscription: Subscription,
    /// Pending Out: the user asked to subscribe (`ask='subscribe'`).
    pub pending_out: bool,
    /// Pending In: the contact asked to subscribe.
    pub pending_in: bool,
}

const fn state(
    subscription: Subscription,
    pending_out: bool,
    pending_in: bool,
) -> SubscriptionState {
    SubscriptionState {
        subscription,
        pending_out,
        pending_in,
    }
}

impl SubscriptionState {
    /// "None"
    pub const NONE: Self = state(Subscription::None, false, false);
    /// "None + Pending Out"
    pub const NONE_PENDING_OUT: Self = state(Subscription::None, true, false);
    /// "None + Pending In"
    pub const NONE_PENDING_IN: Self = state(Subscription::None, false, true);
    /// "None + Pending Out+In"
    pub const NONE_PENDING_OUT_IN: Self = state(Subscription::None, true, true);
    /// "To"
    pub const TO: Self = state(Subscription::To, false, false);
    /// "To + Pending In"
    pub const TO_PENDING_IN: Self = state(Subscription::To, false, true);
    /// "From"
    pub const FROM: Self = state(Subscription::From, false, false);
    /// "From + Pending Out"
    pub const FROM_PENDING_OUT: Self = state(Subscription::From, true, false);
    /// "Both"
    pub const BOTH: Self = state(Subscription::Both, false, false);

    /// The nine defined states, in the order of Appendix A.1.
    pub const ALL: [Self; 9] = [
        Self::NONE,
        Self::NONE_PENDING_OUT,
        Self::NONE_PENDING_IN,
        Self::NONE_PENDING_OUT_IN,
        Self::TO,
        Self::TO_PENDING_IN,
        Self::FROM,
        Self::FROM_PENDING_OUT,
        Self::BOTH,
    ];

    /// Whether this is one of the nine defined states. The other three
    /// (To + Pending Out, From + Pending In, Both + anything) cannot be
    /// reached: a subscription that exists cannot also be pending.
    pub fn is_defined(self) -> bool {
        !(self.subscription.has_to() && self.pending_out
            || self.subscription.has_from() && self.pending_in)
    }

    /// The nearest defined state: drops Pending Out when the user already
    /// has `to`, Pending In when the contact already has `from` (a store
    /// could hold such a record only if written by something else).
    pub fn normalized(self) -> Self {
        SubscriptionState {
            subscription: self.subscription,
            pending_out: self.pending_out && !self.subscription.has_to(),
            pending_in: self.pending_in && !self.subscription.has_from(),
        }
    }

    /// The name of Appendix A.1 ("None + Pending Out+In", …).
    pub fn name(self) -> &'static str {
        let s = self.normalized();
        match (s.subscription, s.pending_out, s.pending_in) {
            (Subscription::None, false, false) => "None",
            (Subscription::None, true, false) => "None + Pending Out",
            (Subscription::None, false, true) => "None + Pending In",
            (Subscription::None, true, true) => "None + Pending Out+In",
            (Subscription::To, _, false) => "To",
            (Subscription::To, _, true) => "To + Pending In",
            (Subscription::From, false, _) => "From",
            (Subscription::From, true, _) => "From + Pending Out",
            (Subscription::Both, _, _) => "Both",
        }
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four subscription presence types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionStanza {
    /// `subscribe`: ask for the other side's presence.
    Subscribe,
    /// `subscribed`: grant the other side access to one's presence.
    Subscribed,
    /// `unsubscribe`: stop receiving the other side's presence.
    Unsubscribe,
    /// `unsubscribed`: deny or revoke the other side's access.
    Unsubscribed,
}

impl SubscriptionStanza {
    /// All four.
    pub const ALL: [Self; 4] = [
        Self::Subscribe,
        Self::Subscribed,
        Self::Unsubscribe,
        Self::Unsubscribed,
    ];

    /// The `type` attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Subscribed => "subscribed",
            Self::Unsubscribe => "unsubscribe",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    /// The subscription type of a presence type; `None` for the others.
    pub fn from_presence_type(t: PresenceType) -> Option<Self> {
        Some(match t {
            PresenceType::Subscribe => Self::Subscribe,
            PresenceType::Subscribed => Self::Subscribed,
            PresenceType::Unsubscribe => Self::Unsubscribe,
            PresenceType::Unsubscribed => Self::Unsubscribed,
            _ => return None,
        })
    }
}

/// Who sent the subscription stanza, seen from the user's server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The user sent it, to the contact (Appendix A.2).
    Outbound,
    /// The contact sent it, to the user (Appendix A.3).
    Inbound,
}

/// Presence the user's server sends to the contact because of a
/// subscription change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceEffect {
    /// Nothing.
    None,
    /// The contact just got `from`: send it the current presence of each
    /// of the user's available resources, after the `subscribed`
    /// (RFC 6121 §3.1.5).
    SendCurrent,
    /// The contact just lost `from`: send it `unavailable` from each of the
    /// user's available resources, before the stanza is routed
    /// (RFC 6121 §3.2.2, §3.3.3).
    SendUnavailable,
}

/// The outcome of one event in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The new state (the old one when nothing changes).
    pub state: SubscriptionState,
    /// The new pre-approval flag.
    pub approved: bool,
    /// Outbound: route the stanza to the contact. Inbound: deliver it to
    /// the user.
    pub forward: bool,
    /// A stanza the user's server sends to the contact on the user's
    /// behalf (only `subscribed`, in answer to an inbound `subscribe`).
    pub auto_reply: Option<SubscriptionStanza>,
    /// Presence to send to the contact.
    pub presence: PresenceEffect,
    /// Whether the user's interested resources get a roster push: the
    /// subscription, Pending Out or `approved` changed.
    pub roster_push: bool,
}

/// What `event`, sent in `direction`, does to a contact in `state` with
/// pre-approval `approved`. Total and pure: undefined states are first
/// [normalized](SubscriptionState::normalized); `approved` only counts in
/// None, None + Pending Out and To (the states where it can be set).
/// See the module docs for the table.
pub fn transition(
    state: SubscriptionState,
    approved: bool,
    direction: Direction,
    event: SubscriptionStanza,
) -> Transition {
    use Direction::{Inbound, Outbound};
    use SubscriptionStanza::{Subscribe, Subscribed, Unsubscribe, Unsubscribed};

    let old = state.normalized();
    // The pre-approval flag means something only before the contact has
    // `from` and while no request of the contact is pending.
    let approved = approved && !old.subscription.has_from() && !old.pending_in;
    let to = old.subscription.has_to();
    let from = old.subscription.has_from();
    let with = |to: bool, from: bool, pending_out: bool, pending_in: bool| SubscriptionState {
        subscription: Subscription::from_halves(to, from),
        pending_out,
        pending_in,
    };

    let mut new = old;
    let mut new_approved = approved;
    let mut forward = false;
    let mut auto_reply = None;
    let mut presence = PresenceEffect::None;

    match (direction, event) {
        // A.2.1: always routed; asks when the user has no `to` yet.
        (Outbound, Subscribe) => {
            forward = true;
            if !to {
                new.pending_out = true;
            }
        }
        // A.2.2: always routed; ends `to` and cancels Pending Out.
        (Outbound, Unsubscribe) => {
            forward = true;
            new = with(false, from, false, old.pending_in);
        }
        // A.2.3: approves a pending request, or pre-approves.
        (Outbound, Subscribed) => {
            if from {
                // No change; not routed.
            } else if old.pending_in {
                new = with(to, true, old.pending_out, false);
                new_approved = false;
                forward = true;
                presence = PresenceEffect::SendCurrent;
            } else {
                new_approved = true;
            }
        }
        // A.2.4: denies a pending request or revokes `from`.
        (Outbound, Unsubscribed) => {
            if from || old.pending_in {
                new = with(to, false, old.pending_out, false);
                forward = true;
                if from {
                    presence = PresenceEffect::SendUnavailable;
                }
            } else {
                // Not routed; cancels a pre-approval.
                new_approved = false;
            }
        }
        // A.3.1: a request from the contact.
        (Inbound, Subscribe) => {
            if from {
                auto_reply = Some(Subscribed);
                presence = PresenceEffect::SendCurrent;
            } else if old.pending_in {
                // Recorded already; not delivered again.
            } else if approved {
                new = with(to, true, old.pending_out, false);
                new_approved = false;
                auto_reply = Some(Subscribed);
                presence = PresenceEffect::SendCurrent;
            } else {
                new.pending_in = true;
                forward = true;
            }
        }
        // A.3.2: the contact no longer wants the user's presence.
        (Inbound, Unsubscribe) => {
            if from || old.pending_in {
                new = with(to, false, old.pending_out, false);
                forward = true;
                if from {
                    presence = PresenceEffect::SendUnavailable;
                }
            }
        }
        // A.3.3: the contact approved the user's request.
        (Inbound, Subscribed) => {
            if old.pending_out {
                new = with(true, from, false, old.pending_in);
                forward = true;
            }
        }
        // A.3.4: the contact denied the request or revoked `to`.
        (Inbound, Unsubscribed) => {
            if to || old.pending_out {
                new = with(false, from, false, old.pending_in);
                forward = true;
            }
        }
    }

    let roster_push = new.subscription != old.subscription
        || new.pending_out != old.pending_out
        || new_approved != approved;
    Transition {
        state: new,
        approved: new_approved,
        forward,
        auto_reply,
        presence,
        roster_push,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_states_are_closed_under_every_event() {
        for s in SubscriptionState::ALL {
            assert!(s.is_defined(), "{s}");
            for approved in [false, true] {
                for d in [Direction::Outbound, Direction::Inbound] {
                    for e in SubscriptionStanza::ALL {
                        let t = transition(s, approved, d, e);
                        assert!(t.state.is_defined(), "{s} {d:?} {e:?} → {}", t.state);
                    }
                }
            }
        }
        let undefined = SubscriptionState {
            subscription: Subscription::Both,
            pending_out: true,
            pending_in: true,
        };
        assert!(!undefined.is_defined());
        assert_eq!(undefined.normalized(), SubscriptionState::BOTH);
    }
}
