//! # xmpp-sansio
//!
//! XMPP (RFC 6120, RFC 6121, RFC 7622) as a pure, sans-IO state machine:
//! bytes go in, stanza events and bytes come out. The crate never opens a
//! socket, spawns a task, reads a clock, draws OS randomness or does TLS.
//! The host owns all of that and feeds it in, which is what lets the same
//! code run under any runtime, in a fuzzer, in a benchmark, and in tests
//! that are deterministic to the byte.
//!
//! ## Layers
//!
//! | module | what |
//! |---|---|
//! | [`xml`] | bytes ⇄ frames: push reader on `rxml` (restricted XML, limits, restarts), writer |
//! | [`jid`] | addresses (RFC 7622, PRECIS) |
//! | [`error`] | stream and stanza errors with every RFC 6120 condition |
//! | [`stanza`] | `message`/`presence`/`iq` over `minidom::Element` |
//! | [`sasl`] | PLAIN, SCRAM-SHA-1/256/512(-PLUS), ANONYMOUS, EXTERNAL, both roles |
//! | [`stream`] | what both roles share: [`stream::Input`], [`stream::Output`], close reasons, timeouts, the feature table |
//! | [`client`] | [`client::ClientConnection`]: the initiating side of a c2s stream |
//! | [`server`] | [`server::ServerConnection`]: the receiving side of a c2s stream |
//! | [`router`] | [`router::Router`]: pure routing decisions (RFC 6120 §10, RFC 6121 §8) |
//! | [`im`] | IM logic around the router: rosters, subscriptions, presence (RFC 6121 §2–§4, App. A); blocking, disco and caps, offline messages, carbons |
//! | [`rng`] | the host-seeded random source |
//!
//! ## The host loop
//!
//! Every connection is driven the same way (quinn-proto's and str0m's
//! shape): hand it input with the current time, then take its output in
//! order until there is none, and wake it at its deadline.
//!
//! ```
//! use std::time::Instant;
//! use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent};
//! use xmpp_sansio::rng::SeededRng;
//! use xmpp_sansio::stream::{Input, Output};
//!
//! let config = ClientConfig::new("juliet@example.com".parse()?, "secret");
//! // Seed from the OS in a real host; a constant makes tests reproducible.
//! let mut conn = ClientConnection::new(config, SeededRng::from_seed([1; 32]), Instant::now());
//! # let received: &[u8] = b"";
//! conn.handle_input(Instant::now(), Input::Received(received))?;
//! while let Some(output) = conn.poll_output() {
//!     match output {
//!         Output::Transmit(bytes) => { /* write to the socket (through TLS once it is up) */ }
//!         Output::Event(ClientEvent::StartTls { buffered }) => {
//!             /* run the TLS handshake, feeding `buffered` first, then
//!                conn.handle_input(now, Input::TlsEstablished(tls_info)) */
//!         }
//!         Output::Event(ClientEvent::Online { jid }) => { /* ready: send stanzas */ }
//!         Output::Event(ClientEvent::Stanza(stanza)) => { /* a message, presence or iq */ }
//!         // Stream management (XEP-0198): the server confirmed these stanzas …
//!         Output::Event(ClientEvent::Acknowledged(stanzas)) => {}
//!         // … or they were never confirmed and the session is over.
//!         Output::Event(ClientEvent::Unacknowledged(stanzas)) => { /* resend or report */ }
//!         Output::Event(ClientEvent::Resumed { jid }) => { /* a lost session goes on */ }
//!         Output::Event(ClientEvent::Closed(reason)) => {
//!             /* done; state() keeps the reason; after a lost connection,
//!                conn.take_resumption() feeds ClientConnection::resume */
//!         }
//!     }
//! }
//! if let Some(deadline) = conn.poll_timeout() {
//!     /* sleep until `deadline`, then conn.handle_timeout(now) */
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Host decisions on the server side (credentials for a username, approval of
//! a resource) come out as [`server::ServerEvent::Request`]s with an id that
//! the host answers later with [`server::ServerConnection::answer`]; the
//! machine never blocks. Errors of the peer end a connection with a sticky
//! [`stream::CloseReason`]; misuse of the API by the host is a
//! [`stream::UsageError`] and changes nothing.
//!
//! `examples/client.rs` and `examples/server.rs` are complete hosts on tokio
//! and rustls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod im;
pub mod jid;
pub mod ns;
pub mod rng;
pub mod router;
pub mod sasl;
pub mod server;
pub mod sm;
pub mod stanza;
pub mod stream;
pub mod xml;

pub use jid::{BareJid, FullJid, Jid, JidError};
