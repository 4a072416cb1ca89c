//! The instant-messaging layer: what a server does with stanzas beyond
//! routing them (RFC 6121 and the IM XEPs).
//!
//! Like the rest of the crate this layer does no IO, reads no clock and
//! keeps no task: each module is a set of pure functions and small state
//! objects that the host calls around [`Router::route`](crate::router::Router::route).
//!
//! | module | what |
//! |---|---|
//! | [`blocking`] | XEP-0191 Blocking Command: the blocklist, its iqs and pushes, and enforcement |
//! | [`disco`] | XEP-0030 Service Discovery answers for the domain and for accounts, XEP-0115 caps |

pub mod blocking;
pub mod disco;
