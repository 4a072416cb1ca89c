//! # xmpp-sansio
//!
//! XMPP as a pure, sans-IO state machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod jid;
pub mod ns;
pub mod rng;
pub mod router;
pub mod sasl;
pub mod stanza;
pub mod stream;
pub mod xml;

pub use jid::{BareJid, FullJid, Jid, JidError};
