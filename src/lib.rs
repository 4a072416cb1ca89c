//! # xmpp-sansio
//!
//! XMPP as a pure, sans-IO state machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod ns;
pub mod rng;
pub mod xml;
