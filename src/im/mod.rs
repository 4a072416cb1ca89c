//! The instant-messaging layer: what a server does with stanzas beyond
//! routing them (RFC 6121 and the IM XEPs).
//!
//! Like the rest of the crate this layer does no IO, reads no clock and
//! keeps no task: each module is a set of pure functions and small state
//! objects that the host calls around [`Router::route`](crate::router::Router::route).
//! Times come in as values ([`delay::Timestamp`]); storage the host owns is
//! reached through traits ([`offline::OfflineStore`]).
//!
//! | module | what |
//! |---|---|
//! | [`blocking`] | XEP-0191 Blocking Command: the blocklist, its iqs and pushes, and enforcement |
//! | [`disco`] | XEP-0030 Service Discovery answers for the domain and for accounts, XEP-0115 caps |
//! | [`delay`] | XEP-0203 `<delay/>` and XEP-0082 UTC timestamps |
//! | [`offline`] | XEP-0160 offline messages: what is stored, a bounded queue, delivery |
//! | [`carbons`] | XEP-0280 Message Carbons: enable/disable per session, which copies go where |

pub mod blocking;
pub mod carbons;
pub mod delay;
pub mod disco;
pub mod offline;
