//! The IM layer of a server: rosters, presence subscriptions and presence
//! (RFC 6121 §2, §3, §4 and Appendix A), and the IM XEPs around routing:
//! blocking, service discovery, offline messages, carbons.
//!
//! Like the rest of the crate this layer does no IO: it reads and writes the
//! roster through a [`RosterStore`] the host implements (synchronously; an
//! in-memory [`MemoryRosterStore`] is included), reads and updates the
//! sessions the [`Router`](crate::router::Router) knows, and answers every
//! event with a list of [`ImAction`]s: stanzas to deliver to a local session
//! or to route by their `to`. The host carries them out in order.
//!
//! | module | what |
//! |---|---|
//! | [`roster`] | roster items, the `jabber:iq:roster` query (parse, serialize, validate a roster set), versioning |
//! | [`store`] | [`RosterStore`], the storage the host implements, and [`MemoryRosterStore`] |
//! | [`subscription`] | the subscription state machine of RFC 6121 Appendix A, as a pure function |
//! | [`presence`] | pure presence decisions: broadcast, probes, directed presence, probe answers |
//! | [`service`] | [`ImService`]: the per-server state (interested resources, last presences, directed presence) that ties the rest to the router and the store |
//! | [`blocking`] | XEP-0191 Blocking Command: the blocklist, its iqs and pushes, and enforcement |
//! | [`disco`] | XEP-0030 Service Discovery answers for the domain and for accounts, XEP-0115 caps |
//! | [`delay`] | XEP-0203 `<delay/>` and XEP-0082 UTC timestamps (times come in as values) |
//! | [`offline`] | XEP-0160 offline messages: what is stored, a bounded queue ([`offline::OfflineStore`]), delivery |
//! | [`carbons`] | XEP-0280 Message Carbons: enable/disable per session, which copies go where |
//!
//! # How a host uses it
//!
//! One [`ImService`] per server, next to the [`Router`](crate::router::Router)
//! and the store. For each stanza a local client sends (its `from` stamped
//! by [`ServerConnection`](crate::server::ServerConnection)):
//!
//! | stanza from session `s` | call | then |
//! |---|---|---|
//! | presence `subscribe`/`subscribed`/`unsubscribe`/`unsubscribed` | [`ImService::outbound_subscription`] **instead of** routing it | carry out the actions (a `Route` of the stamped stanza goes to the contact) |
//! | presence available/`unavailable` **with** `to` (directed) | [`ImService::directed_presence`] | route the stanza as usual |
//! | anything else | [`Router::route`](crate::router::Router::route) | see below |
//!
//! And for the router's decisions:
//!
//! | decision | call |
//! |---|---|
//! | `Server(Broadcast(user))` (presence without `to`) | [`ImService::broadcast_presence`] (it calls [`Router::set_presence`](crate::router::Router::set_presence) itself) |
//! | `Server(Account(user))`, iq with a `jabber:iq:roster` query | [`ImService::roster_iq`] |
//! | `Server(Account(user))`, subscription presence (from a local contact) | [`ImService::inbound_subscription`] |
//! | `Server(Account(user))`, presence `probe` | [`ImService::inbound_probe`] |
//! | `Server(Account(user))`, iq `result`/`error` (replies to roster pushes) | nothing |
//!
//! Subscription presences and probes that arrive from other domains (once
//! there is federation) go to the same two calls, with the addressed local
//! user.
//!
//! When a session ends, call [`ImService::session_ended`] **before**
//! [`Router::unbind`](crate::router::Router::unbind): it broadcasts the
//! `unavailable` the session can no longer send.
//!
//! Carrying out an [`ImAction`]: `Deliver { session, stanza }` writes the
//! stanza to that session's stream; `Route(stanza)` sends the stanza like
//! any stanza of this server: through `Router::route` when its `to` is
//! local (a subscription presence or probe for a local account comes back as
//! `Server(Account)` and is fed to the calls above), to federation when not.
//!
//! ```
//! use xmpp_sansio::im::{ImAction, ImConfig, ImService, MemoryRosterStore};
//! use xmpp_sansio::router::{ConflictPolicy, Router};
//! use xmpp_sansio::stanza::{IqType, Stanza};
//! use minidom::Element;
//!
//! let mut router = Router::new(["example.com".to_owned()]);
//! let mut store = MemoryRosterStore::new();
//! let mut im = ImService::new(ImConfig::default());
//! let juliet = "juliet@example.com/balcony".parse()?;
//! router.bind(1, juliet, ConflictPolicy::RefuseNew);
//!
//! // The client asks for its roster.
//! let mut get = Stanza::iq(IqType::Get, None, "r1", Element::bare("query", "jabber:iq:roster"));
//! get.set_from(Some("juliet@example.com/balcony"));
//! let Ok(actions) = im.roster_iq(&router, &mut store, 1, &get);
//! assert!(matches!(&actions[..], [ImAction::Deliver { session: 1, .. }]));
//! assert!(im.is_interested(1));
//! # Ok::<(), xmpp_sansio::JidError>(())
//! ```

pub mod blocking;
pub mod carbons;
pub mod delay;
pub mod disco;
pub mod offline;
pub mod presence;
pub mod roster;
pub mod service;
pub mod store;
pub mod subscription;

pub use presence::NonSubscriberProbe;
pub use roster::{RosterItem, RosterLimits, Subscription};
pub use service::{ImConfig, ImService};
pub use store::{MemoryRosterStore, RosterStore};

use crate::router::SessionId;
use crate::stanza::Stanza;

/// The content namespace of the stanzas this layer builds.
pub(crate) const CONTENT_NS: &str = crate::ns::JABBER_CLIENT;

/// One thing the host does for the IM layer. Actions come in a list, in the
/// order they must be carried out.
#[derive(Clone, Debug, PartialEq)]
pub enum ImAction {
    /// Write `stanza` to the stream of the local session `session` (a
    /// session of the user the event was about), as it is.
    Deliver {
        /// The receiving session.
        session: SessionId,
        /// The stanza, `to` and `from` set.
        stanza: Stanza,
    },
    /// Send `stanza` by its `to`, as any stanza of this server: a local
    /// address through [`Router::route`](crate::router::Router::route), a
    /// remote one through federation. `from` is set.
    Route(Stanza),
}

impl ImAction {
    /// The stanza, whichever way it goes.
    pub fn stanza(&self) -> &Stanza {
        match self {
            ImAction::Deliver { stanza, .. } | ImAction::Route(stanza) => stanza,
        }
    }
}
