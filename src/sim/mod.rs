//! A deterministic, fault-injecting simulation of clients and a server,
//! for testing stream management (XEP-0198) end to end — and for embedders
//! to test their own host logic against the same clients, network and
//! property checks.
//!
//! Everything runs in one thread in virtual time. A run is a function of
//! its seed and [`Scenario`]: the same seed gives the same run, byte for
//! byte ([`Report::digest`]). The module reads no clock (virtual time,
//! [`VirtualClock`], is an offset from the [`Scenario::base`] instant the
//! caller gives), draws no
//! OS randomness (everything comes from [`SeededRng`](crate::rng::SeededRng)
//! seeded with the run's seed) and does no IO.
//!
//! # What is simulated
//!
//! * **Network** ([`NetworkConfig`], [`Cut`]): one link per connection,
//!   a byte stream in each direction. Every write is split into chunks of
//!   seeded sizes (anywhere: inside UTF-8 characters, tags, attribute
//!   values) that arrive after seeded delays, in order. A link can be cut
//!   at a byte offset of either direction: the bytes before the offset
//!   arrive, everything after is lost. The client learns of the cut by
//!   `Input::Eof` at a seeded time; the server either the same way or not
//!   at all, so that only its dead-peer timeout notices (a zombie session).
//! * **Clients**: a [`ClientConnection`](crate::client::ClientConnection)
//!   each (STARTTLS or direct TLS with an identity TLS layer, SCRAM or
//!   PLAIN, bind, stream management with resumption). An application sends chat messages
//!   numbered per sender (`{i}:{seq}` in the body, id `m-{i}-{seq}`) to
//!   the other clients' bare JIDs at seeded times, buffering them while
//!   offline, and sends initial presence after each fresh login. When a
//!   connection is lost the client reconnects after a seeded delay and
//!   resumes with
//!   [`take_resumption`](crate::client::ClientConnection::take_resumption)
//!   and [`ClientConnection::resume`](crate::client::ClientConnection::resume)
//!   (or logs in afresh when there is nothing to resume). Some clients also
//!   log out cleanly once ([`Scenario::logout_per_mille`]) and log in again
//!   later. Each client records what it sent, what was `Acknowledged`,
//!   what was reported `Unacknowledged`, what bounced, what it received,
//!   its resumption attempts and how its connections ended
//!   ([`ClientRecord`]).
//! * **Server**: anything that implements [`Host`] (sockets in, sockets
//!   out). [`ReferenceHost`] is one made of the crate's machines:
//!   [`ServerConnection`](crate::server::ServerConnection)s, a
//!   [`Router`](crate::router::Router), detached sessions kept until they
//!   expire, zombie takeover on resumption,
//!   [`Disposition`](crate::sm::Disposition) of unacknowledged stanzas, and
//!   a bounded offline store delivered on the next login (see its docs).
//!
//! # Properties
//!
//! After the active phase (traffic, logouts, faults) the run continues —
//! links opened from then on are not cut — until it comes to rest: every
//! client online, nothing in flight, every message delivered or reported
//! failed and every message acknowledged. Then [`Report::violations`]
//! lists every broken property:
//!
//! * every message a client sends is delivered to its recipient **exactly
//!   once**, **in order** per sender, or its sender learned that it failed
//!   (`Unacknowledged`, or an error bounce) — [`Violation::Lost`],
//!   [`Violation::Duplicated`], [`Violation::OutOfOrder`],
//!   [`Violation::Misdelivered`], [`Violation::Phantom`],
//!   [`Violation::AckedAndUnacked`];
//! * **every resumption answered within `max`** (the server's announced
//!   resumption time, counted from the moment the session's link was cut
//!   or closed by the server) **succeeds** — [`Violation::ResumeRefused`]
//!   (a session the client was logging out of is exempt: the server may
//!   have ended it);
//! * **no panic** ([`Violation::Panic`]), no usage error, no connection
//!   closed for a reason the faults cannot explain (e.g. a protocol
//!   violation between our own machines: [`Violation::UnexpectedClose`]),
//!   no anomaly reported by the host, no livelock, and the run comes to
//!   rest before [`Scenario::settle_limit`] ([`Violation::NotSettled`]).
//!
//! With [`Faults::Random`] the scenario guarantees that a client always
//! reconnects within the server's `max`: at most
//! [`RandomFaults::max_consecutive`] connections in a row are cut before
//! one gets through, and [`Scenario::check`] verifies that the worst case
//! of that still ends inside `max`. So in random runs no resumption of a
//! lost session is ever refused, and no message may even fail.
//!
//! What a fixed seed does is replayable and inspectable: set
//! [`Scenario::record_transcripts`] and print [`Report::render`] (every
//! client's record and every byte each link carried).
//!
//! # Running it
//!
//! ```
//! use std::time::Instant;
//! use xmpp_sansio::sim::{self, Scenario};
//!
//! let scenario = Scenario::random(Instant::now());
//! for seed in 0..3 {
//!     let report = sim::run(seed, &scenario);
//!     report.assert_ok(&format!("SIM_SEED={seed} cargo test --test simulation"));
//!     assert!(report.stats.messages >= report.stats.delivered);
//! }
//! ```
//!
//! `tests/simulation.rs` runs 1,000 seeds of [`Scenario::random`] in
//! every `cargo test` (in four shards that run in parallel), plus targeted
//! scenarios. The long run is
//!
//! ```text
//! SIM_SEEDS=100000 cargo test --release --test simulation random_seeds -- --nocapture
//! ```
//!
//! A failing seed panics with the seed and the command that replays it,
//! `SIM_SEED=n cargo test --test simulation random_seeds`;
//! `SIM_TRACE=n cargo test --test simulation trace -- --nocapture` prints
//! its [`Report::render`].
//!
//! # Testing your own host
//!
//! Implement [`Host`] around your host logic (it gets the accounts, a
//! suggested [`ServerConfig`] and a seeded
//! random source in a [`Setup`]) and build the simulation with
//! [`Simulation::new`]. The clients, the network, the faults and the
//! checks stay the same. A host that wraps the reference host and
//! watches the bytes it sends:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Instant;
//! use xmpp_sansio::sim::{Host, HostAction, LinkId, ReferenceHost, Scenario, Setup, Simulation};
//!
//! struct Counting {
//!     inner: ReferenceHost,
//!     bytes_out: u64,
//! }
//!
//! impl Host for Counting {
//!     fn connected(&mut self, now: Instant, link: LinkId) { self.inner.connected(now, link) }
//!     fn received(&mut self, now: Instant, link: LinkId, bytes: &[u8]) {
//!         self.inner.received(now, link, bytes)
//!     }
//!     fn eof(&mut self, now: Instant, link: LinkId) { self.inner.eof(now, link) }
//!     fn poll_timeout(&self) -> Option<Instant> { self.inner.poll_timeout() }
//!     fn handle_timeout(&mut self, now: Instant) { self.inner.handle_timeout(now) }
//!     fn poll_action(&mut self) -> Option<HostAction> {
//!         let action = self.inner.poll_action()?;
//!         if let HostAction::Transmit { bytes, .. } = &action {
//!             self.bytes_out += bytes.len() as u64;
//!         }
//!         Some(action)
//!     }
//!     fn anomalies(&mut self) -> Vec<String> { self.inner.anomalies() }
//!     fn stats(&self) -> BTreeMap<String, u64> {
//!         let mut stats = self.inner.stats();
//!         stats.insert("bytes_out".into(), self.bytes_out);
//!         stats
//!     }
//! }
//!
//! let scenario = Scenario::random(Instant::now());
//! let make = |setup: Setup| Counting { inner: ReferenceHost::new(setup), bytes_out: 0 };
//! let report = Simulation::new(7, &scenario, make).run();
//! report.assert_ok("the Counting host example, seed 7");
//! assert!(report.host_stat("bytes_out") > 0);
//! ```
//!
//! A host written from scratch has to: run a
//! [`ServerConnection`](crate::server::ServerConnection) per link (the TLS
//! layer is the identity: on `StartTls` feed
//! `Input::TlsEstablished(TlsInfo::encrypted(TlsVersion::Tls13, vec![]))`,
//! then the `buffered` bytes; with [`Setup::direct_tls`], start the
//! connection with that `TlsInfo` instead); answer `Credentials` for [`Setup::accounts`]
//! (SCRAM credentials derived with [`Setup::iterations`]); bind the
//! requested resource; route the clients' chat messages (addressed to bare
//! JIDs) and presence; answer XEP-0199 pings to the domain; keep and hand
//! over detached sessions on `Resume`; and close the link of every
//! connection that closed ([`HostAction::Close`]) — a client learns of a
//! server-side close only by end-of-file. [`Simulation::run_mut`] keeps the
//! host for inspection afterwards ([`Simulation::host`]).

mod client;
mod clock;
mod host;
mod net;
mod rand;
mod report;
mod sched;

use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::client::{ClientConfig, ClientSmConfig, TlsMode};
use crate::jid::BareJid;
use crate::sasl::Mechanism;
use crate::server::{ServerConfig, ServerSmConfig};
use crate::sm::AckPolicy;
use crate::stream::{Input, Timeouts};

pub use client::{ClientRecord, ReceivedMessage, ResumeAttempt, SentMessage};
pub use clock::VirtualClock;
pub use host::{Account, Host, HostAction, ReferenceHost, Setup};
pub use net::{Cut, LinkId, NetworkConfig, Side, Transcript};
pub use report::{Report, Stats, Violation};

use client::SimClient;
use net::Network;
use rand::SimRng;
use sched::{Event, Queue};

/// SCRAM iteration count of the simulated accounts (the crate's SASL is
/// tested elsewhere; here it only has to be cheap).
const ITERATIONS: u32 = 1;

/// Steps at one virtual instant before the run is declared a livelock.
const MAX_STEPS_AT_ONE_INSTANT: u32 = 100_000;

/// Which messages the applications send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Each client sends a seeded number of messages (drawn from the
    /// range) at seeded times of the active phase, each to a seeded other
    /// client.
    Random {
        /// Messages per client.
        messages: RangeInclusive<u32>,
    },
    /// Exactly these messages.
    Scripted(Vec<ScriptedMessage>),
}

/// One message of [`Traffic::Scripted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedMessage {
    /// When the application sends it (since the start).
    pub at: Duration,
    /// Sender (client index).
    pub from: usize,
    /// Recipient (client index).
    pub to: usize,
}

/// Which links are cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Faults {
    /// None.
    None,
    /// Seeded cuts.
    Random(RandomFaults),
    /// Exactly these cuts.
    Scripted(Vec<ScriptedCut>),
}

/// Seeded cuts: each link opened during the active phase is cut with some
/// probability, at a seeded byte offset of a seeded direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomFaults {
    /// Probability (per mille) that a link is planned to be cut.
    pub cut_per_mille: u32,
    /// A link is not cut when this many connections of its client in a
    /// row were cut before reaching `Online`/`Resumed` (so the client gets
    /// through, and resumes, within the server's `max`).
    pub max_consecutive: u32,
    /// Offsets are drawn from `0..=short_offsets` (half of the cuts: the
    /// negotiation and the first stanzas) or `0..=long_offsets`.
    pub short_offsets: u64,
    /// See `short_offsets`.
    pub long_offsets: u64,
    /// When the client learns of a cut.
    pub client_eof: RangeInclusive<Duration>,
    /// When the server learns of a cut, if it does.
    pub server_eof: RangeInclusive<Duration>,
    /// Probability (per mille) that the server is never told (its
    /// dead-peer timeout has to notice).
    pub server_silent_per_mille: u32,
}

impl Default for RandomFaults {
    fn default() -> Self {
        RandomFaults {
            cut_per_mille: 500,
            max_consecutive: 3,
            short_offsets: 3000,
            long_offsets: 8000,
            client_eof: Duration::ZERO..=Duration::from_secs(5),
            server_eof: Duration::ZERO..=Duration::from_secs(5),
            server_silent_per_mille: 500,
        }
    }
}

/// One cut of [`Faults::Scripted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedCut {
    /// The client whose link is cut.
    pub client: usize,
    /// Which of its connections (0 = the first).
    pub connection: u32,
    /// Where and how.
    pub cut: Cut,
}

/// Server timings and stream management settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTimings {
    /// Negotiation timeout.
    pub negotiation: Duration,
    /// Dead-peer timeout (ping after this much silence, close after as
    /// much again).
    pub dead_peer: Option<Duration>,
    /// How long detached sessions are kept (`max`).
    pub max_resume: Duration,
    /// The server asks for an ack after this many stanzas (drawn per run).
    pub ack_every: RangeInclusive<u32>,
    /// … or when a stanza is unacknowledged this long.
    pub ack_after: Duration,
}

/// Client timings and stream management settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTimings {
    /// Negotiation timeout.
    pub negotiation: Duration,
    /// Dead-peer timeout.
    pub dead_peer: Option<Duration>,
    /// The `max` the client asks for in `<enable/>`.
    pub max: Option<u32>,
    /// The client asks for an ack after this many stanzas (drawn per
    /// client).
    pub ack_every: RangeInclusive<u32>,
    /// … or when a stanza is unacknowledged this long.
    pub ack_after: Duration,
}

/// What a run looks like. Public fields; start from
/// [`random`](Self::random) or [`quiet`](Self::quiet) and adjust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The instant virtual time 0 stands for (the module never reads a
    /// clock; the machines only see `base + offset`).
    pub base: Instant,
    /// The served domain; client `i` is `c{i}@domain/sim`.
    pub domain: String,
    /// How many clients (drawn per run).
    pub clients: RangeInclusive<usize>,
    /// When each client first connects (drawn per client) …
    pub start: RangeInclusive<Duration>,
    /// … unless given here, by client index.
    pub client_starts: Vec<Duration>,
    /// The messages.
    pub traffic: Traffic,
    /// The cuts.
    pub faults: Faults,
    /// Probability (per mille) that a client logs out cleanly once, at a
    /// seeded time of the active phase (closing its stream after
    /// acknowledging what it handled), and logs in again after the
    /// reconnection delay.
    pub logout_per_mille: u32,
    /// Clean logouts at given times `(at, client)`, in addition.
    pub logouts: Vec<(Duration, usize)>,
    /// How long traffic and faults last. Then the run settles.
    pub active: Duration,
    /// How long after `active` the run may take to come to rest.
    pub settle_limit: Duration,
    /// Chunking and delays.
    pub network: NetworkConfig,
    /// How long a client waits before reconnecting (drawn per loss).
    pub reconnect_delay: RangeInclusive<Duration>,
    /// Server timings.
    pub server: ServerTimings,
    /// Client timings.
    pub client: ClientTimings,
    /// Offline messages kept per account.
    pub offline_capacity: usize,
    /// The SASL mechanisms the clients may use; one is drawn per run
    /// (default SCRAM-SHA-256 and PLAIN).
    pub mechanisms: Vec<Mechanism>,
    /// Probability (per mille) that a run uses direct TLS (XEP-0368: TLS
    /// from the first byte, no STARTTLS) instead of STARTTLS.
    pub direct_tls_per_mille: u32,
    /// Keep every link's traffic in [`Report::transcripts`].
    pub record_transcripts: bool,
}

impl Scenario {
    /// Two or three clients, up to 6 messages each during 60 s, random
    /// cuts (half of the links), 30 % of the clients logging out once,
    /// server resumption `max` 300 s.
    pub fn random(base: Instant) -> Self {
        Scenario {
            base,
            domain: "sim.example".to_owned(),
            clients: 2..=3,
            start: Duration::ZERO..=Duration::from_secs(2),
            client_starts: Vec::new(),
            traffic: Traffic::Random { messages: 0..=6 },
            faults: Faults::Random(RandomFaults::default()),
            logout_per_mille: 300,
            logouts: Vec::new(),
            active: Duration::from_secs(60),
            settle_limit: Duration::from_secs(1800),
            network: NetworkConfig::default(),
            reconnect_delay: Duration::from_millis(100)..=Duration::from_secs(15),
            server: ServerTimings {
                negotiation: Duration::from_secs(30),
                dead_peer: Some(Duration::from_secs(30)),
                max_resume: Duration::from_secs(300),
                ack_every: 1..=6,
                ack_after: Duration::from_secs(5),
            },
            client: ClientTimings {
                negotiation: Duration::from_secs(30),
                dead_peer: Some(Duration::from_secs(25)),
                max: None,
                ack_every: 1..=6,
                ack_after: Duration::from_secs(5),
            },
            offline_capacity: 1000,
            mechanisms: vec![Mechanism::ScramSha256, Mechanism::Plain],
            direct_tls_per_mille: 500,
            record_transcripts: false,
        }
    }

    /// Two clients, no traffic, no faults: a base for scripted scenarios.
    pub fn quiet(base: Instant) -> Self {
        Scenario {
            clients: 2..=2,
            start: Duration::ZERO..=Duration::ZERO,
            traffic: Traffic::Scripted(Vec::new()),
            faults: Faults::None,
            logout_per_mille: 0,
            active: Duration::from_secs(30),
            ..Scenario::random(base)
        }
    }

    /// Checks that the scenario is consistent: with random faults, that
    /// the worst case — the longest reconnection delay, the latest
    /// end-of-file, a negotiation cut at the last moment, for
    /// `max_consecutive + 1` connections in a row — still ends inside the
    /// server's resumption `max` (so every resumption must succeed).
    pub fn check(&self) -> Result<(), String> {
        if self.clients.is_empty() || *self.clients.start() == 0 {
            return Err("at least one client".to_owned());
        }
        if self.mechanisms.is_empty() {
            return Err("at least one SASL mechanism".to_owned());
        }
        let n = *self.clients.start();
        if let Some((_, c)) = self.logouts.iter().find(|(_, c)| *c >= n) {
            return Err(format!(
                "a scripted logout names client {c}, which may not exist"
            ));
        }
        if let Traffic::Scripted(messages) = &self.traffic
            && let Some(m) = messages.iter().find(|m| m.from >= n || m.to >= n)
        {
            return Err(format!(
                "scripted message {m:?} names a client that may not exist"
            ));
        }
        if let Faults::Random(f) = &self.faults {
            let cycle = *f.client_eof.end()
                + *self.network.latency.end() * 4
                + *self.reconnect_delay.end()
                + self.client.negotiation;
            let worst = cycle * (f.max_consecutive + 1);
            let max = self.client.max.map_or(self.server.max_resume, |m| {
                Duration::from_secs(m.into()).min(self.server.max_resume)
            });
            if worst >= max {
                return Err(format!(
                    "random faults can keep a client away for {worst:?}, beyond the resumption max {max:?}"
                ));
            }
        }
        Ok(())
    }

    fn server_config(&self, rng: &mut SimRng, ack_every: u32) -> ServerConfig {
        let mut secret = [0u8; 32];
        rng.seeded().fill(&mut secret);
        let mut config = ServerConfig::new(self.domain.clone(), secret.to_vec());
        config.sasl.unknown_user_iterations = ITERATIONS;
        config.timeouts = Timeouts {
            negotiation: self.server.negotiation,
            close: Duration::from_secs(5),
            keepalive: None,
            dead_peer: self.server.dead_peer,
        };
        config.stream_management = Some(ServerSmConfig {
            resume: true,
            max_resume: self.server.max_resume,
            max_unacked: 1000,
            acks: AckPolicy {
                every: ack_every,
                after: self.server.ack_after,
            },
        });
        config
    }

    fn client_config(&self, account: &Account, run: &RunChoices, ack_every: u32) -> ClientConfig {
        let mut config = ClientConfig::new(account.jid.clone(), account.password.clone());
        config.resource = Some("sim".to_owned());
        config.sasl.mechanisms = vec![run.mechanism];
        if run.direct_tls {
            config.tls = TlsMode::Direct(client::tls_info());
        }
        config.sasl.min_iterations = ITERATIONS;
        config.timeouts = Timeouts {
            negotiation: self.client.negotiation,
            close: Duration::from_secs(5),
            keepalive: None,
            dead_peer: self.client.dead_peer,
        };
        config.stream_management = Some(ClientSmConfig {
            resume: true,
            max: self.client.max,
            acks: AckPolicy {
                every: ack_every,
                after: self.client.ack_after,
            },
        });
        config
    }
}

/// What is drawn once per run.
struct RunChoices {
    mechanism: Mechanism,
    direct_tls: bool,
}

/// One run: the clients, the network, the host, the clock.
pub struct Simulation<H: Host> {
    seed: u64,
    scenario: Scenario,
    clock: VirtualClock,
    /// Virtual time since `scenario.base` (the clock's offset).
    now: Duration,
    queue: Queue,
    net: Network,
    host: H,
    clients: Vec<SimClient>,
    rng: SimRng,
    violations: Vec<Violation>,
    steps: u64,
    /// Each client's next deadline, as of the last time it was touched.
    client_deadlines: Vec<Option<Duration>>,
    /// Clients called since their deadline was last read.
    touched: Vec<bool>,
    host_deadline: Option<Duration>,
    host_touched: bool,
}

impl<H: Host> std::fmt::Debug for Simulation<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Runs `seed` of `scenario` against the [`ReferenceHost`].
pub fn run(seed: u64, scenario: &Scenario) -> Report {
    Simulation::new(seed, scenario, ReferenceHost::new).run()
}

impl<H: Host> Simulation<H> {
    /// Sets up a run: draws the clients, their traffic and settings from
    /// `seed`, and builds the host with `make_host`.
    ///
    /// # Panics
    /// If the scenario is inconsistent ([`Scenario::check`]).
    pub fn new(seed: u64, scenario: &Scenario, make_host: impl FnOnce(Setup) -> H) -> Self {
        if let Err(e) = scenario.check() {
            panic!("inconsistent scenario: {e}");
        }
        let mut rng = SimRng::new(seed);
        let n = rng.index_in(&scenario.clients);
        let accounts: Vec<Account> = (0..n)
            .map(|i| Account {
                jid: BareJid::new(Some(&format!("c{i}")), &scenario.domain)
                    .unwrap_or_else(|e| panic!("scenario domain: {e}")),
                password: format!("secret-{i}"),
            })
            .collect();
        let run = RunChoices {
            mechanism: scenario.mechanisms[rng.below(scenario.mechanisms.len() as u64) as usize],
            direct_tls: rng.chance(scenario.direct_tls_per_mille),
        };
        let server_ack = rng.between_u32(&scenario.server.ack_every);
        let server_config = scenario.server_config(&mut rng, server_ack);
        let setup = Setup {
            seed,
            domain: scenario.domain.clone(),
            accounts: accounts.clone(),
            server_config,
            iterations: ITERATIONS,
            offline_capacity: scenario.offline_capacity,
            direct_tls: run.direct_tls,
            rng: rng.seeded(),
            base: scenario.base,
        };
        let host = make_host(setup);
        let peers: Vec<BareJid> = accounts.iter().map(|a| a.jid.clone()).collect();
        let clients = accounts
            .iter()
            .enumerate()
            .map(|(i, account)| {
                let ack = rng.between_u32(&scenario.client.ack_every);
                SimClient::new(i, scenario.client_config(account, &run, ack), peers.clone())
            })
            .collect();
        let net = Network::new(
            scenario.network.clone(),
            rng.fork(),
            scenario.record_transcripts,
        );
        let mut queue = Queue::default();
        for client in 0..n {
            let drawn = rng.duration(&scenario.start);
            let at = scenario.client_starts.get(client).copied().unwrap_or(drawn);
            queue.push(at, Event::Connect { client });
        }
        for client in 0..n {
            if rng.chance(scenario.logout_per_mille) {
                let at = rng.duration(&(Duration::ZERO..=scenario.active));
                queue.push(at, Event::Logout { client });
            }
        }
        for &(at, client) in &scenario.logouts {
            queue.push(at, Event::Logout { client });
        }
        match &scenario.traffic {
            Traffic::Random { messages } if n > 1 => {
                let last = scenario.active.saturating_sub(Duration::from_micros(1));
                for from in 0..n {
                    for _ in 0..rng.between_u32(messages) {
                        let at = rng.duration(&(Duration::ZERO..=last));
                        let mut to = rng.below(n as u64 - 1) as usize;
                        if to >= from {
                            to += 1;
                        }
                        queue.push(at, Event::AppSend { client: from, to });
                    }
                }
            }
            Traffic::Random { .. } => {}
            Traffic::Scripted(messages) => {
                for m in messages {
                    queue.push(
                        m.at,
                        Event::AppSend {
                            client: m.from,
                            to: m.to,
                        },
                    );
                }
            }
        }
        Simulation {
            seed,
            scenario: scenario.clone(),
            clock: VirtualClock::new(scenario.base),
            now: Duration::ZERO,
            queue,
            net,
            host,
            clients,
            rng,
            violations: Vec::new(),
            steps: 0,
            client_deadlines: vec![None; n],
            touched: vec![true; n],
            host_deadline: None,
            host_touched: true,
        }
    }

    /// The host (e.g. to inspect it after [`run_mut`](Self::run_mut)).
    pub fn host(&self) -> &H {
        &self.host
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        self.run_mut()
    }

    /// Runs to the end and reports, keeping the simulation (and its host)
    /// for inspection. A panic anywhere in the run becomes a
    /// [`Violation::Panic`].
    pub fn run_mut(&mut self) -> Report {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.main_loop()));
        if let Err(payload) = outcome {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            self.violations.push(Violation::Panic { message });
        }
        self.report()
    }

    fn instant(&self) -> Instant {
        self.clock.now()
    }

    /// The virtual clock (where the run is, or ended).
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// The earliest deadline of a client machine or the host.
    fn next_deadline(&self) -> Option<Duration> {
        self.client_deadlines
            .iter()
            .flatten()
            .chain(&self.host_deadline)
            .min()
            .copied()
    }

    /// Reads the deadlines of what was called since the last time.
    fn refresh_deadlines(&mut self) {
        for (i, touched) in self.touched.iter_mut().enumerate() {
            if std::mem::take(touched) {
                self.client_deadlines[i] = self.clients[i]
                    .deadline()
                    .map(|at| self.clock.offset_of(at));
            }
        }
        if std::mem::take(&mut self.host_touched) {
            self.host_deadline = self.host.poll_timeout().map(|at| self.clock.offset_of(at));
        }
    }

    fn main_loop(&mut self) {
        let cap = self.scenario.active + self.scenario.settle_limit;
        let mut at_this_instant = 0u32;
        self.pump();
        loop {
            let deadline = self.next_deadline();
            let event_at = self.queue.next_time();
            let next = match (deadline, event_at) {
                (None, None) => break,
                (Some(d), Some(e)) => d.min(e),
                (d, e) => d.or(e).unwrap_or_default(),
            };
            let next = next.max(self.now);
            if next > cap {
                self.now = cap;
                self.clock.advance_to(cap);
                break;
            }
            if next == self.now {
                at_this_instant += 1;
                if at_this_instant > MAX_STEPS_AT_ONE_INSTANT {
                    let detail = if deadline.is_some_and(|d| d <= self.now) {
                        "a deadline stays due after handle_timeout"
                    } else {
                        "events keep being scheduled for the same instant"
                    };
                    self.violations.push(Violation::Livelock {
                        at: self.now,
                        detail: detail.to_owned(),
                    });
                    return;
                }
            } else {
                at_this_instant = 0;
            }
            self.now = next;
            self.clock.advance_to(next);
            self.steps += 1;
            let timeout_first = match (deadline, event_at) {
                (Some(d), Some(e)) => d <= e,
                (Some(_), None) => true,
                _ => false,
            };
            if timeout_first {
                self.fire_timeouts();
            } else if let Some((_, event)) = self.queue.pop() {
                self.handle(event);
            }
            self.pump();
            if self.now >= self.scenario.active && self.settled() {
                return;
            }
        }
    }

    fn fire_timeouts(&mut self) {
        let now = self.instant();
        let base = self.scenario.base;
        for (i, client) in self.clients.iter_mut().enumerate() {
            if self.client_deadlines[i].is_some_and(|d| d <= self.now) {
                client.handle_timeout(base, self.now);
                self.touched[i] = true;
            }
        }
        if self.host_deadline.is_some_and(|d| d <= self.now) {
            self.host.handle_timeout(now);
            self.host_touched = true;
        }
    }

    fn handle(&mut self, event: Event) {
        let base = self.scenario.base;
        let now = self.instant();
        match event {
            Event::Connect { client } => {
                self.connect(client);
                self.touched[client] = true;
            }
            Event::Accept { link } => {
                self.host.connected(now, link);
                self.host_touched = true;
            }
            Event::Deliver { link, to, bytes } => {
                if !self.net.arrive(self.now, link, to, &bytes) {
                    return;
                }
                match to {
                    Side::Server => {
                        self.host.received(now, link, &bytes);
                        self.host_touched = true;
                    }
                    Side::Client => {
                        if let Some(c) = self.net.client_of(link) {
                            self.clients[c].input(base, self.now, link, Input::Received(&bytes));
                            self.touched[c] = true;
                        }
                    }
                }
            }
            Event::Eof { link, to } => {
                if !self.net.eof_arrives(self.now, link, to) {
                    return;
                }
                match to {
                    Side::Server => {
                        self.host.eof(now, link);
                        self.host_touched = true;
                    }
                    Side::Client => {
                        if let Some(c) = self.net.client_of(link) {
                            self.clients[c].input(base, self.now, link, Input::Eof);
                            self.touched[c] = true;
                        }
                    }
                }
            }
            Event::AppSend { client, to } => {
                self.clients[client].app_send(base, self.now, to);
                self.touched[client] = true;
            }
            Event::Logout { client } => {
                self.clients[client].logout(base, self.now);
                self.touched[client] = true;
            }
        }
    }

    /// A client opens a connection, maybe planned to be cut.
    fn connect(&mut self, index: usize) {
        let connection = self.clients[index].record.connections;
        let cut = match &self.scenario.faults {
            Faults::None => None,
            Faults::Scripted(cuts) => cuts
                .iter()
                .find(|c| c.client == index && c.connection == connection)
                .map(|c| c.cut),
            Faults::Random(f) => {
                let allowed = self.now < self.scenario.active
                    && self.clients[index].consecutive_failures < f.max_consecutive;
                if allowed && self.rng.chance(f.cut_per_mille) {
                    let from = if self.rng.chance(500) {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    let range = if self.rng.chance(500) {
                        f.short_offsets
                    } else {
                        f.long_offsets
                    };
                    let offset = self.rng.between(0..=range);
                    let client_eof_after = self.rng.duration(&f.client_eof);
                    let server_eof_after = if self.rng.chance(f.server_silent_per_mille) {
                        None
                    } else {
                        Some(self.rng.duration(&f.server_eof))
                    };
                    Some(Cut {
                        from,
                        offset,
                        client_eof_after,
                        server_eof_after,
                    })
                } else {
                    None
                }
            }
        };
        let link = self
            .net
            .open(self.now, index, connection, cut, &mut self.queue);
        let rng = self.rng.seeded();
        self.clients[index].connect(self.scenario.base, self.now, link, rng);
    }

    /// Moves everything the clients and the host want to send onto the
    /// network.
    fn pump(&mut self) {
        let base = self.scenario.base;
        for i in 0..self.clients.len() {
            // Only a client that was called can have output.
            if !self.touched[i] || self.clients[i].machine().is_none() {
                continue;
            }
            if self.clients[i].drain(base, self.now, &mut self.net, &mut self.queue) {
                let delay = self.rng.duration(&self.scenario.reconnect_delay);
                self.queue
                    .push(self.now + delay, Event::Connect { client: i });
            }
        }
        while let Some(action) = self.host.poll_action() {
            match action {
                HostAction::Transmit { link, bytes } => {
                    self.net
                        .send(self.now, link, Side::Server, &bytes, &mut self.queue)
                }
                HostAction::Close { link } => {
                    self.net
                        .close(self.now, link, Side::Server, &mut self.queue)
                }
            }
        }
        self.refresh_deadlines();
    }

    /// Everyone online with nothing pending, nothing in flight, every
    /// message delivered or reported failed.
    fn settled(&self) -> bool {
        if !self.clients.iter().all(SimClient::idle) || self.net.busy() {
            return false;
        }
        if self.queue.any(|e| {
            matches!(
                e,
                Event::AppSend { .. } | Event::Connect { .. } | Event::Logout { .. }
            )
        }) {
            return false;
        }
        report::all_resolved(self.clients.iter().map(|c| &c.record))
    }

    fn report(&mut self) -> Report {
        let records: Vec<ClientRecord> = self.clients.iter().map(|c| c.record.clone()).collect();
        let mut violations = std::mem::take(&mut self.violations);
        let finished = !violations
            .iter()
            .any(|v| matches!(v, Violation::Panic { .. } | Violation::Livelock { .. }));
        if finished && !self.settled() {
            let pending = report::unresolved(records.iter());
            let not_idle: Vec<usize> = self
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.idle())
                .map(|(i, _)| i)
                .collect();
            violations.push(Violation::NotSettled {
                at: self.now,
                detail: format!(
                    "unresolved messages {pending:?}, clients not idle {not_idle:?}, bytes in flight: {}",
                    self.net.busy()
                ),
            });
        }
        for client in &mut self.clients {
            violations.append(&mut client.violations);
        }
        violations.extend(
            self.host
                .anomalies()
                .into_iter()
                .map(|message| Violation::Host { message }),
        );
        let (found, mut stats) = report::check(&records);
        violations.extend(found);
        stats.links = self.net.links_opened();
        stats.cuts = self.net.cuts();
        stats.steps = self.steps;
        stats.ended_at = self.now;
        Report {
            seed: self.seed,
            violations,
            stats,
            host_stats: self.host.stats(),
            clients: records,
            transcripts: self.net.transcripts(),
            digest: self.net.digest(),
        }
    }
}
