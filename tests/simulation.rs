//! The simulation harness (`xmpp_sansio::sim`) against the reference host:
//! many random seeds with cuts anywhere, and targeted scenarios (a drop at
//! every byte offset of a short session, zombie takeover, resumption after
//! expiry, the bounded offline store), plus checks that the property
//! checker does catch broken hosts.
//!
//! * `cargo test --test simulation` runs 1,000 random seeds (four shards,
//!   in parallel) and the targeted scenarios.
//! * `SIM_SEEDS=100000 cargo test --release --test simulation random_seeds
//!   -- --nocapture` is the long run.
//! * `SIM_SEED=n cargo test --test simulation random_seeds` replays seed
//!   `n` (a failing seed's panic message gives exactly this command);
//!   `SIM_TRACE=n cargo test --test simulation trace -- --nocapture`
//!   prints everything that happened in it.
//! * `SIM_EXHAUSTIVE=1 cargo test --release --test simulation drop_at`
//!   cuts the short session at every byte offset, TLS and SASL included
//!   (by default every offset from stream management on, and a stride
//!   before).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use xmpp_sansio::sasl::Mechanism;
use xmpp_sansio::sim::{
    self, Cut, Faults, Host, HostAction, LinkId, ReferenceHost, Report, Scenario, ScriptedCut,
    ScriptedMessage, Setup, Side, Simulation, Traffic, Transcript, Violation,
};

const SHARDS: u64 = 4;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The seeds of one shard: `SIM_SEED` alone, or `0..SIM_SEEDS` (1,000 by
/// default).
fn seeds_of(shard: u64) -> Vec<u64> {
    if let Ok(v) = std::env::var("SIM_SEED") {
        let seed: u64 = v.trim().parse().expect("SIM_SEED must be a number");
        return if seed % SHARDS == shard {
            vec![seed]
        } else {
            Vec::new()
        };
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .map(|v| v.trim().parse().expect("SIM_SEEDS must be a number"))
        .unwrap_or(1000);
    (0..n).filter(|s| s % SHARDS == shard).collect()
}

#[derive(Default, Debug)]
struct Totals {
    seeds: u64,
    messages: u64,
    delivered: u64,
    failed: u64,
    links: u64,
    cuts: u64,
    resumes: u64,
    refusals: u64,
    logouts: u64,
    fresh_logins: u64,
    zombie_takeovers: u64,
    steps: u64,
}

impl Totals {
    fn add(&mut self, r: &Report) {
        self.seeds += 1;
        self.messages += r.stats.messages;
        self.delivered += r.stats.delivered;
        self.failed += r.stats.failed;
        self.links += r.stats.links;
        self.cuts += r.stats.cuts;
        self.resumes += r.stats.resumes;
        // Refusals of sessions that were lost (not left by a logout).
        self.refusals += r
            .clients
            .iter()
            .flat_map(|c| &c.resume_attempts)
            .filter(|a| !a.resumed && !a.after_logout)
            .count() as u64;
        self.logouts += r.clients.iter().map(|c| u64::from(c.logouts)).sum::<u64>();
        self.fresh_logins += r.stats.fresh_logins;
        self.zombie_takeovers += r.host_stat("zombie_takeovers");
        self.steps += r.stats.steps;
    }
}

fn random_shard(shard: u64) {
    let scenario = Scenario::random(Instant::now());
    let started = Instant::now();
    let mut totals = Totals::default();
    for seed in seeds_of(shard) {
        let report = sim::run(seed, &scenario);
        report.assert_ok(&format!(
            "SIM_SEED={seed} cargo test --test simulation random_seeds"
        ));
        totals.add(&report);
    }
    println!(
        "random_seeds shard {shard}/{SHARDS}: {} seeds in {:.2?}: {totals:?}",
        totals.seeds,
        started.elapsed()
    );
    // Every resumption of a lost session must succeed (the random faults
    // keep clients within max; only a logout the server may have completed
    // can be refused), and a full shard must actually exercise the
    // interesting paths.
    assert_eq!(totals.refusals, 0, "{totals:?}");
    if totals.seeds >= 200 {
        assert!(totals.cuts > totals.seeds / 2, "{totals:?}");
        assert!(totals.resumes > totals.seeds / 10, "{totals:?}");
        assert!(totals.zombie_takeovers > 0, "{totals:?}");
        assert!(totals.logouts > totals.seeds / 2, "{totals:?}");
        assert!(totals.fresh_logins > totals.seeds * 2, "{totals:?}");
        assert_eq!(totals.delivered, totals.messages, "{totals:?}");
    }
}

#[test]
fn random_seeds_0() {
    random_shard(0);
}

#[test]
fn random_seeds_1() {
    random_shard(1);
}

#[test]
fn random_seeds_2() {
    random_shard(2);
}

#[test]
fn random_seeds_3() {
    random_shard(3);
}

#[test]
fn same_seed_same_run_byte_for_byte() {
    let base = Instant::now();
    let mut scenario = Scenario::random(base);
    scenario.record_transcripts = true;
    let seed = (0..100)
        .find(|&s| {
            let r = sim::run(s, &scenario);
            r.stats.cuts > 0 && r.stats.resumes > 0
        })
        .expect("a seed with a cut and a resumption");
    let a = sim::run(seed, &scenario);
    let b = sim::run(seed, &scenario);
    // Another base instant: the machines only see offsets from it.
    let mut later = scenario.clone();
    later.base = base + secs(86_400 * 365);
    let c = sim::run(seed, &later);
    for other in [&b, &c] {
        assert_eq!(a.digest, other.digest);
        assert_eq!(a.stats, other.stats);
        assert_eq!(a.clients, other.clients);
        assert_eq!(a.host_stats, other.host_stats);
        assert_eq!(a.transcripts, other.transcripts);
    }
    let d = sim::run(seed + 1, &scenario);
    assert_ne!(a.digest, d.digest);
}

/// Client 0 sends three messages to client 1 once both are online.
fn short_session(base: Instant) -> Scenario {
    let mut s = Scenario::quiet(base);
    s.traffic = scripted(&[(10_000, 0, 1), (10_200, 0, 1), (10_400, 0, 1)]);
    s.reconnect_delay = millis(500)..=secs(3);
    s
}

/// Messages `(at in ms, from, to)`.
fn scripted(messages: &[(u64, usize, usize)]) -> Traffic {
    Traffic::Scripted(
        messages
            .iter()
            .map(|&(at, from, to)| ScriptedMessage {
                at: millis(at),
                from,
                to,
            })
            .collect(),
    )
}

fn cut_once(client: usize, from: Side, offset: u64, server_eof: Option<Duration>) -> Faults {
    Faults::Scripted(vec![ScriptedCut {
        client,
        connection: 0,
        cut: Cut {
            from,
            offset,
            client_eof_after: millis(300),
            server_eof_after: server_eof,
        },
    }])
}

fn transcript(report: &Report, client: usize, connection: u32) -> &Transcript {
    report
        .transcripts
        .iter()
        .find(|t| t.client == client && t.connection == connection)
        .expect("the link was recorded")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn received_from(report: &Report, receiver: usize, sender: usize) -> Vec<u64> {
    report.clients[receiver]
        .received
        .iter()
        .filter(|m| m.from == sender)
        .map(|m| m.seq)
        .collect()
}

/// Cuts client 0's first link at byte offsets of the stream written by
/// `from`. With `SIM_EXHAUSTIVE=1`, at every offset. By default (to stay
/// quick in a debug build): at every offset from the first stream
/// management element on (`<enable/>`, `<enabled/>`, the messages, the
/// acks: where exactly-once is at stake), every 4th offset of the bound
/// stream before it, and every 16th of TLS and SASL.
fn sweep(from: Side) {
    let exhaustive = std::env::var("SIM_EXHAUSTIVE").is_ok_and(|v| v != "0");
    let base = Instant::now();
    let seed = 7;
    let mut scenario = short_session(base);
    scenario.mechanisms = vec![Mechanism::Plain];
    scenario.direct_tls_per_mille = 0;
    scenario.record_transcripts = true;
    let baseline = sim::run(seed, &scenario);
    baseline.assert_ok("cargo test --test simulation drop_at_every_byte_offset (baseline)");
    assert_eq!(baseline.stats.delivered, 3);
    let link = transcript(&baseline, 0, 0);
    let stream = match from {
        Side::Client => &link.to_server,
        Side::Server => &link.to_client,
    };
    let bound_from = rfind(stream, b"<?xml").expect("a stream restart") as u64;
    let sm_from = find(stream, b"urn:xmpp:sm:3").expect("stream management") as u64;
    assert!(sm_from > bound_from);
    // From the end of `<enable/>` (the client's stream) or `<enabled/>`
    // (the server's), the session is resumable: a cut there must end in a
    // resumption, a cut before it in a fresh login.
    let enable: &[u8] = match from {
        Side::Client => b"<enable ",
        Side::Server => b"<enabled ",
    };
    let enable_at = find(stream, enable).unwrap();
    let resumable_from = (enable_at + find(&stream[enable_at..], b"/>").unwrap() + 2) as u64;
    scenario.record_transcripts = false;
    let (mut runs, mut resumed, mut relogged, mut zombies) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for offset in 0..stream.len() as u64 {
        let stride = match offset {
            _ if exhaustive || offset >= sm_from => 1,
            _ if offset >= bound_from => 4,
            _ => 16,
        };
        if offset % stride != 0 {
            continue;
        }
        let mut s = scenario.clone();
        // Every other offset, the server is never told: its dead-peer
        // timeout, or the resumption, finds out.
        let server_eof = (offset % 2 == 0).then_some(millis(200));
        s.faults = cut_once(0, from, offset, server_eof);
        let report = sim::run(seed, &s);
        let context = format!("cut of the {from:?}'s stream at byte {offset}");
        report.assert_ok(&format!(
            "cargo test --test simulation drop_at_every_byte_offset ({context})"
        ));
        assert_eq!(report.stats.cuts, 1, "{context}");
        // Resumption always succeeds here, so nothing may even be reported
        // failed: each message arrives exactly once, in order.
        assert_eq!(report.stats.delivered, 3, "{context}");
        assert_eq!(report.stats.failed, 0, "{context}");
        assert_eq!(received_from(&report, 1, 0), [0, 1, 2], "{context}");
        let c0 = &report.clients[0];
        assert_eq!(c0.connections, 2, "{context}");
        if offset >= resumable_from {
            assert_eq!((report.stats.resumes, c0.fresh_logins), (1, 1), "{context}");
            resumed += 1;
        } else {
            assert_eq!((report.stats.resumes, c0.fresh_logins), (0, 1), "{context}");
            relogged += 1;
        }
        runs += 1;
        zombies += report.host_stat("zombie_takeovers");
    }
    println!(
        "{from:?} stream of {} bytes, {runs} cuts in {:.2?}: {resumed} resumed, {relogged} logged in again, {zombies} zombie takeovers",
        stream.len(),
        started.elapsed()
    );
    assert!(runs > stream.len() as u64 - sm_from, "{runs}");
    assert!(resumed > 0 && relogged > 0);
    // Half of the cuts leave the server uninformed: the resumptions among
    // them take a zombie over.
    assert!(zombies > 0 && zombies <= resumed, "{zombies} of {resumed}");
}

#[test]
fn drop_at_every_byte_offset_of_the_client_stream() {
    sweep(Side::Client);
}

#[test]
fn drop_at_every_byte_offset_of_the_server_stream() {
    sweep(Side::Server);
}

#[test]
fn zombie_takeover_when_the_server_notices_only_after_the_resumption() {
    let base = Instant::now();
    let seed = 3;
    let mut s = Scenario::quiet(base);
    s.traffic = scripted(&[
        (10_000, 1, 0),
        (10_200, 1, 0),
        (10_400, 1, 0),
        (11_000, 0, 1),
        (12_000, 1, 0),
        (14_000, 1, 0),
    ]);
    s.reconnect_delay = secs(1)..=secs(1);
    // The server would take four minutes to notice on its own.
    s.server.dead_peer = Some(secs(120));
    s.record_transcripts = true;
    let baseline = sim::run(seed, &s);
    baseline.assert_ok("cargo test --test simulation zombie_takeover (baseline)");
    // Cut the server's stream to client 0 right where client 1's first
    // message starts; the server is never told.
    let offset = find(&transcript(&baseline, 0, 0).to_client, b"<message").unwrap() as u64;
    s.faults = cut_once(0, Side::Server, offset, None);
    let report = sim::run(seed, &s);
    report.assert_ok("cargo test --test simulation zombie_takeover");
    assert_eq!(report.stats.cuts, 1);
    assert_eq!(report.host_stat("zombie_takeovers"), 1);
    assert_eq!(report.host_stat("resumed"), 1);
    // The server never detached the session by itself: the resumption
    // closed the zombie with `conflict` and took its session over.
    assert_eq!(report.host_stat("detached"), 0);
    let attempts = &report.clients[0].resume_attempts;
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].resumed);
    // What the zombie had sent into the void came again on the new
    // connection, and everything arrived exactly once, in order.
    assert!(find(&transcript(&report, 0, 1).to_client, b"<body>1:0</body>").is_some());
    assert_eq!(received_from(&report, 0, 1), [0, 1, 2, 3, 4]);
    assert_eq!(received_from(&report, 1, 0), [0]);
    assert_eq!(report.stats.failed, 0);
}

#[test]
fn resumption_after_expiry_is_item_not_found_then_bind_and_unacknowledged() {
    let base = Instant::now();
    let seed = 5;
    let mut s = Scenario::quiet(base);
    s.server.max_resume = secs(30);
    s.reconnect_delay = secs(60)..=secs(60);
    s.traffic = scripted(&[
        // Written before client 0 learns of the cut (300 ms after it).
        (10_000, 0, 1),
        (10_050, 0, 1),
        (10_100, 0, 1),
        // While client 0 is away: queued in its detached session, re-routed
        // to offline storage when it expires.
        (20_000, 1, 0),
        (20_500, 1, 0),
    ]);
    s.record_transcripts = true;
    let baseline = sim::run(seed, &s);
    baseline.assert_ok("cargo test --test simulation resumption_after_expiry (baseline)");
    // Cut client 0's stream where its first message starts: none of the
    // three reaches the server.
    let offset = find(&transcript(&baseline, 0, 0).to_server, b"<message").unwrap() as u64;
    s.faults = cut_once(0, Side::Client, offset, Some(millis(500)));
    let report = sim::run(seed, &s);
    report.assert_ok("cargo test --test simulation resumption_after_expiry");
    let c0 = &report.clients[0];
    assert_eq!(c0.resume_attempts.len(), 1);
    let attempt = &c0.resume_attempts[0];
    assert!(!attempt.resumed);
    assert_eq!(attempt.max, Some(30));
    assert!(attempt.at >= attempt.lost_at + secs(30));
    let refused = &transcript(&report, 0, 1).to_client;
    assert!(
        find(
            refused,
            b"<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
        )
        .is_some(),
        "{}",
        String::from_utf8_lossy(refused)
    );
    // It fell back to binding, and learned that its three messages are
    // unconfirmed.
    let sent = &transcript(&report, 0, 1).to_server;
    assert!(find(sent, b"<resume ").unwrap() < find(sent, b"<bind xmlns").unwrap());
    assert!(
        find(refused, b"<failed ").unwrap()
            < find(refused, b"<jid>c0@sim.example/sim</jid>").unwrap()
    );
    assert_eq!(c0.fresh_logins, 2);
    assert_eq!(
        c0.unacknowledged.iter().copied().collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(c0.acknowledged.is_empty());
    assert_eq!(received_from(&report, 1, 0), Vec::<u64>::new());
    // The messages queued for it went to offline storage on expiry and
    // reached it once it was back.
    assert_eq!(received_from(&report, 0, 1), [0, 1]);
    assert_eq!(report.host_stat("expired"), 1);
    assert_eq!(report.host_stat("rerouted"), 2);
    assert_eq!(report.host_stat("stored_offline"), 2);
    assert_eq!(report.host_stat("offline_delivered"), 2);
    assert_eq!((report.stats.delivered, report.stats.failed), (2, 3));
}

#[test]
fn offline_storage_is_bounded_and_the_rest_bounces() {
    let mut s = Scenario::quiet(Instant::now());
    s.offline_capacity = 2;
    s.client_starts = vec![Duration::ZERO, secs(60)];
    s.traffic = scripted(&[
        (10_000, 0, 1),
        (11_000, 0, 1),
        (12_000, 0, 1),
        (13_000, 0, 1),
    ]);
    let report = sim::run(11, &s);
    report.assert_ok("cargo test --test simulation offline_storage_is_bounded");
    assert_eq!(received_from(&report, 1, 0), [0, 1]);
    assert_eq!(
        report.clients[0]
            .bounced
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(report.host_stat("stored_offline"), 2);
    assert_eq!(report.host_stat("offline_full"), 2);
    assert_eq!(report.host_stat("offline_delivered"), 2);
}

// ---------------------------------------------------------------------------
// The checks catch broken hosts
// ---------------------------------------------------------------------------

/// What a [`Tampering`] host does to its output.
#[derive(Clone, Copy)]
enum Tamper {
    /// Swallow the first write containing the needle.
    Drop(&'static [u8]),
    /// Send the first write containing the needle twice.
    Duplicate(&'static [u8]),
    /// Replace the first write containing the needle.
    Replace(&'static [u8], &'static [u8]),
    /// Panic on the first write containing the needle.
    Panic(&'static [u8]),
}

/// The reference host with one deliberate fault in what it sends.
struct Tampering {
    inner: ReferenceHost,
    tamper: Tamper,
    done: bool,
    extra: Option<HostAction>,
}

impl Tampering {
    fn with(tamper: Tamper) -> impl FnOnce(Setup) -> Tampering {
        move |setup| Tampering {
            inner: ReferenceHost::new(setup),
            tamper,
            done: false,
            extra: None,
        }
    }
}

impl Host for Tampering {
    fn connected(&mut self, now: Instant, link: LinkId) {
        self.inner.connected(now, link);
    }

    fn received(&mut self, now: Instant, link: LinkId, bytes: &[u8]) {
        self.inner.received(now, link, bytes);
    }

    fn eof(&mut self, now: Instant, link: LinkId) {
        self.inner.eof(now, link);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_action(&mut self) -> Option<HostAction> {
        if let Some(extra) = self.extra.take() {
            return Some(extra);
        }
        let action = self.inner.poll_action()?;
        let HostAction::Transmit { link, bytes } = &action else {
            return Some(action);
        };
        let needle = match self.tamper {
            Tamper::Drop(n) | Tamper::Duplicate(n) | Tamper::Replace(n, _) | Tamper::Panic(n) => n,
        };
        if self.done || find(bytes, needle).is_none() {
            return Some(action);
        }
        self.done = true;
        match self.tamper {
            Tamper::Drop(_) => self.inner.poll_action(),
            Tamper::Duplicate(_) => {
                self.extra = Some(action.clone());
                Some(action)
            }
            Tamper::Replace(_, with) => Some(HostAction::Transmit {
                link: *link,
                bytes: Bytes::from_static(with),
            }),
            Tamper::Panic(_) => panic!("tampering host gives up"),
        }
    }

    fn anomalies(&mut self) -> Vec<String> {
        self.inner.anomalies()
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        self.inner.stats()
    }
}

fn tampered(scenario: &Scenario, tamper: Tamper) -> Report {
    let report = Simulation::new(1, scenario, Tampering::with(tamper)).run();
    assert!(!report.is_ok(), "the tampering went unnoticed");
    let message = report.failure_message("REPRO");
    assert!(message.contains("seed 1") && message.ends_with("reproduce with: REPRO"));
    report
}

#[test]
fn a_message_the_host_swallows_is_reported_lost() {
    let report = tampered(
        &short_session(Instant::now()),
        Tamper::Drop(b"<body>0:1</body>"),
    );
    assert!(
        report.violations.contains(&Violation::Lost {
            from: 0,
            seq: 1,
            to: 1
        }),
        "{:?}",
        report.violations
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::NotSettled { .. }))
    );
}

#[test]
fn a_message_the_host_sends_twice_is_reported_duplicated() {
    let report = tampered(
        &short_session(Instant::now()),
        Tamper::Duplicate(b"<body>0:1</body>"),
    );
    assert!(
        report.violations.iter().any(|v| matches!(
            v,
            Violation::Duplicated {
                from: 0,
                seq: 1,
                to: 1,
                ..
            }
        )),
        "{:?}",
        report.violations
    );
    // Client 1 counted the stanza twice: its ack is beyond what the server
    // sent, which the server rejects.
    assert!(report.violations.iter().any(|v| matches!(
        v,
        Violation::Host { message } if message.contains("acknowledged")
    )));
}

#[test]
fn a_resumption_refused_within_max_is_reported() {
    let base = Instant::now();
    let mut s = short_session(base);
    s.record_transcripts = true;
    let baseline = sim::run(1, &s);
    let offset = find(&transcript(&baseline, 0, 0).to_client, b"<a xmlns").unwrap() as u64;
    s.faults = cut_once(0, Side::Server, offset, Some(millis(100)));
    s.record_transcripts = false;
    sim::run(1, &s).assert_ok("the untampered run");
    let report = tampered(
        &s,
        Tamper::Replace(
            b"<resumed ",
            b"<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        ),
    );
    assert!(
        report.violations.iter().any(|v| matches!(
            v,
            Violation::ResumeRefused {
                client: 0,
                max: 300,
                ..
            }
        )),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_panic_is_reported_with_the_seed() {
    let report = tampered(
        &short_session(Instant::now()),
        Tamper::Panic(b"<body>0:0</body>"),
    );
    assert!(report.violations.iter().any(|v| matches!(
        v,
        Violation::Panic { message } if message == "tampering host gives up"
    )));
}

/// `SIM_TRACE=n cargo test --test simulation trace -- --nocapture` runs
/// seed `n` of the random scenario with transcripts and prints what every
/// client did and every link carried (without `SIM_TRACE` it does nothing).
#[test]
fn trace() {
    let Ok(seed) = std::env::var("SIM_TRACE") else {
        return;
    };
    let seed: u64 = seed.trim().parse().expect("SIM_TRACE must be a seed");
    let mut scenario = Scenario::random(Instant::now());
    scenario.record_transcripts = true;
    println!("{}", sim::run(seed, &scenario).render());
}
