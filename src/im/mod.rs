//! The IM layer of a server: rosters and presence subscriptions
//! (RFC 6121 §2, §3 and Appendix A).

pub mod roster;
pub mod store;
pub mod subscription;

pub use roster::{RosterItem, RosterLimits, Subscription};
pub use store::{MemoryRosterStore, RosterStore};

/// The content namespace of the stanzas this layer builds.
#[allow(dead_code)]
pub(crate) const CONTENT_NS: &str = crate::ns::JABBER_CLIENT;
