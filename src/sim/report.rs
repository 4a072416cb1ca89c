//! What a run found: the property checks and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use super::client::ClientRecord;
use super::net::Transcript;

/// A broken property, with what is needed to understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Something panicked (a machine, the host or the harness).
    Panic {
        /// The panic message.
        message: String,
    },
    /// A message was neither delivered nor reported failed to its sender.
    Lost {
        /// Sender (client index).
        from: usize,
        /// Sender's sequence number.
        seq: u64,
        /// Intended recipient.
        to: usize,
    },
    /// A message was delivered more than once.
    Duplicated {
        /// Sender.
        from: usize,
        /// Sequence number.
        seq: u64,
        /// Recipient.
        to: usize,
        /// How many times it arrived.
        times: usize,
    },
    /// A message reached a client it was not addressed to.
    Misdelivered {
        /// Sender.
        from: usize,
        /// Sequence number.
        seq: u64,
        /// Intended recipient.
        intended: usize,
        /// Who got it.
        got: usize,
    },
    /// A client received a message that was never sent.
    Phantom {
        /// Receiver.
        receiver: usize,
        /// Claimed sender.
        from: usize,
        /// Claimed sequence number.
        seq: u64,
    },
    /// Messages from one sender arrived out of order.
    OutOfOrder {
        /// Receiver.
        receiver: usize,
        /// Sender.
        from: usize,
        /// The sequence number that arrived …
        seq: u64,
        /// … after this one.
        after: u64,
    },
    /// A message was both acknowledged and reported unacknowledged.
    AckedAndUnacked {
        /// Sender.
        client: usize,
        /// Sequence number.
        seq: u64,
    },
    /// A resumption was refused although it was answered before the
    /// session's `max` had run out since the session was lost.
    ResumeRefused {
        /// The client.
        client: usize,
        /// When it learned of the refusal.
        at: Duration,
        /// When the session was lost.
        lost_at: Duration,
        /// The server's `max` (seconds).
        max: u32,
    },
    /// A connection ended for a reason the fault model cannot explain
    /// (e.g. a protocol violation).
    UnexpectedClose {
        /// Which end (`client N` or the host's description).
        who: String,
        /// When.
        at: Duration,
        /// The close reason.
        reason: String,
    },
    /// An API call of a machine returned a usage error.
    Usage {
        /// Who called.
        who: String,
        /// The call and the error.
        error: String,
    },
    /// A client received a message it cannot attribute to a sender.
    Garbled {
        /// Receiver.
        client: usize,
        /// The stanza.
        stanza: String,
    },
    /// The host reported an anomaly.
    Host {
        /// What it said.
        message: String,
    },
    /// The run did not come to rest (everyone online, everything
    /// delivered or reported) before the settle limit.
    NotSettled {
        /// When the run was stopped.
        at: Duration,
        /// What was still pending.
        detail: String,
    },
    /// Virtual time stopped advancing: a deadline that stays due, or an
    /// event storm.
    Livelock {
        /// The virtual time it happened at.
        at: Duration,
        /// What kept firing.
        detail: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Panic { message } => write!(f, "panic: {message}"),
            Violation::Lost { from, seq, to } => write!(
                f,
                "message {from}:{seq} to client {to} was lost: never delivered, never reported failed"
            ),
            Violation::Duplicated {
                from,
                seq,
                to,
                times,
            } => write!(f, "message {from}:{seq} reached client {to} {times} times"),
            Violation::Misdelivered {
                from,
                seq,
                intended,
                got,
            } => write!(
                f,
                "message {from}:{seq} for client {intended} reached client {got}"
            ),
            Violation::Phantom {
                receiver,
                from,
                seq,
            } => write!(
                f,
                "client {receiver} received {from}:{seq}, which was never sent"
            ),
            Violation::OutOfOrder {
                receiver,
                from,
                seq,
                after,
            } => write!(
                f,
                "client {receiver} received {from}:{seq} after {from}:{after}"
            ),
            Violation::AckedAndUnacked { client, seq } => write!(
                f,
                "message {client}:{seq} was both acknowledged and reported unacknowledged"
            ),
            Violation::ResumeRefused {
                client,
                at,
                lost_at,
                max,
            } => write!(
                f,
                "client {client}: resumption refused at {at:?}, {:?} after the session was lost (max {max} s)",
                at.saturating_sub(*lost_at)
            ),
            Violation::UnexpectedClose { who, at, reason } => {
                write!(f, "{who}: connection closed at {at:?}: {reason}")
            }
            Violation::Usage { who, error } => write!(f, "{who}: usage error: {error}"),
            Violation::Garbled { client, stanza } => {
                write!(
                    f,
                    "client {client} received an unattributable message: {stanza}"
                )
            }
            Violation::Host { message } => write!(f, "host: {message}"),
            Violation::NotSettled { at, detail } => {
                write!(f, "not settled at {at:?}: {detail}")
            }
            Violation::Livelock { at, detail } => write!(f, "livelock at {at:?}: {detail}"),
        }
    }
}

/// Counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Simulated clients.
    pub clients: usize,
    /// Messages the applications sent.
    pub messages: u64,
    /// Messages delivered to their recipient.
    pub delivered: u64,
    /// Messages whose sender learned they failed (unacknowledged or
    /// bounced).
    pub failed: u64,
    /// Of those, messages that were delivered all the same.
    pub failed_but_delivered: u64,
    /// Messages the server acknowledged.
    pub acknowledged: u64,
    /// Links (transport connections) opened.
    pub links: u64,
    /// Links cut.
    pub cuts: u64,
    /// Sessions started by binding.
    pub fresh_logins: u64,
    /// Sessions resumed.
    pub resumes: u64,
    /// Resumptions refused.
    pub resume_refusals: u64,
    /// Simulation steps (events and timeouts handled).
    pub steps: u64,
    /// Virtual time at the end of the run.
    pub ended_at: Duration,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Every broken property (empty when the run passed).
    pub violations: Vec<Violation>,
    /// Counts.
    pub stats: Stats,
    /// The host's own counters ([`Host::stats`](super::Host::stats)).
    pub host_stats: BTreeMap<String, u64>,
    /// What each client did and saw.
    pub clients: Vec<ClientRecord>,
    /// The links' traffic, when recorded.
    pub transcripts: Vec<Transcript>,
    /// A hash of every delivery (time, link, direction, bytes) and
    /// end-of-file: equal for two runs of the same seed and scenario.
    pub digest: u64,
}

impl Report {
    /// Whether every property held.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// A host counter (0 when the host does not report it).
    pub fn host_stat(&self, name: &str) -> u64 {
        self.host_stats.get(name).copied().unwrap_or(0)
    }

    /// A description of the failure: the seed, the violations (the first
    /// 20), the counts, and `reproduce` (the command that replays it).
    pub fn failure_message(&self, reproduce: &str) -> String {
        let mut out = format!(
            "simulation seed {} failed with {} violation(s):\n",
            self.seed,
            self.violations.len()
        );
        for v in self.violations.iter().take(20) {
            out.push_str(&format!("  - {v}\n"));
        }
        if self.violations.len() > 20 {
            out.push_str(&format!("  … and {} more\n", self.violations.len() - 20));
        }
        out.push_str(&format!(
            "stats: {:?}\nhost: {:?}\n",
            self.stats, self.host_stats
        ));
        out.push_str(&format!("reproduce with: {reproduce}"));
        out
    }

    /// Everything in the report as text: violations, counts, what each
    /// client sent, had acknowledged, unacknowledged, bounced and received,
    /// how its connections ended, and the transcripts (when recorded).
    pub fn render(&self) -> String {
        let mut out = if self.is_ok() {
            format!("seed {}: every property held\n", self.seed)
        } else {
            self.failure_message("-")
        };
        out.push_str(&format!(
            "\nstats: {:?}\nhost: {:?}\n",
            self.stats, self.host_stats
        ));
        for c in &self.clients {
            out.push_str(&format!(
                "\nclient {} ({}): {} connections, {} fresh logins, {} logouts\n",
                c.index, c.jid, c.connections, c.fresh_logins, c.logouts
            ));
            let sent: Vec<String> = c
                .sent
                .iter()
                .map(|m| format!("{}→{}@{:?}", m.seq, m.to, m.at))
                .collect();
            out.push_str(&format!("  sent: {}\n", sent.join(" ")));
            out.push_str(&format!("  acknowledged: {:?}\n", c.acknowledged));
            out.push_str(&format!("  unacknowledged: {:?}\n", c.unacknowledged));
            out.push_str(&format!("  bounced: {:?}\n", c.bounced));
            let received: Vec<String> = c
                .received
                .iter()
                .map(|m| format!("{}:{}@{:?}", m.from, m.seq, m.at))
                .collect();
            out.push_str(&format!("  received: {}\n", received.join(" ")));
            out.push_str(&format!("  resumptions: {:?}\n", c.resume_attempts));
            out.push_str(&format!("  closes: {:?}\n", c.closes));
        }
        for t in &self.transcripts {
            out.push_str(&format!(
                "\n=== {} client {} connection {} cut {:?} at {:?}\n--- to server:\n{}\n--- to client:\n{}\n",
                t.link,
                t.client,
                t.connection,
                t.cut,
                t.cut_at,
                String::from_utf8_lossy(&t.to_server),
                String::from_utf8_lossy(&t.to_client)
            ));
        }
        out
    }

    /// Panics with [`failure_message`](Self::failure_message) unless every
    /// property held.
    #[track_caller]
    pub fn assert_ok(&self, reproduce: &str) {
        assert!(self.is_ok(), "{}", self.failure_message(reproduce));
    }
}

/// The end-to-end properties over the clients' records: every message
/// delivered to its recipient exactly once and in per-sender order, or its
/// sender told it failed; nothing delivered that was not sent or to the
/// wrong client; nothing both acknowledged and unacknowledged; no
/// resumption refused within `max` of the loss.
pub(crate) fn check(clients: &[ClientRecord]) -> (Vec<Violation>, Stats) {
    let mut violations = Vec::new();
    let mut stats = Stats {
        clients: clients.len(),
        ..Stats::default()
    };
    // (sender, seq) → receivers, in arrival order.
    let mut deliveries: BTreeMap<(usize, u64), Vec<usize>> = BTreeMap::new();
    for receiver in clients {
        let mut last: BTreeMap<usize, u64> = BTreeMap::new();
        for m in &receiver.received {
            let sent = clients
                .get(m.from)
                .and_then(|c| c.sent.get(usize::try_from(m.seq).unwrap_or(usize::MAX)));
            if sent.is_none() {
                violations.push(Violation::Phantom {
                    receiver: receiver.index,
                    from: m.from,
                    seq: m.seq,
                });
                continue;
            }
            deliveries
                .entry((m.from, m.seq))
                .or_default()
                .push(receiver.index);
            if let Some(&after) = last.get(&m.from)
                && m.seq < after
            {
                violations.push(Violation::OutOfOrder {
                    receiver: receiver.index,
                    from: m.from,
                    seq: m.seq,
                    after,
                });
            }
            last.insert(m.from, m.seq);
        }
    }
    for sender in clients {
        let failed_set: BTreeSet<u64> = sender
            .unacknowledged
            .union(&sender.bounced)
            .copied()
            .collect();
        for m in &sender.sent {
            stats.messages += 1;
            let receivers = deliveries
                .get(&(sender.index, m.seq))
                .map(Vec::as_slice)
                .unwrap_or_default();
            for &got in receivers.iter().filter(|&&r| r != m.to) {
                violations.push(Violation::Misdelivered {
                    from: sender.index,
                    seq: m.seq,
                    intended: m.to,
                    got,
                });
            }
            let times = receivers.iter().filter(|&&r| r == m.to).count();
            let failed = failed_set.contains(&m.seq);
            if times > 0 {
                stats.delivered += 1;
            }
            if failed {
                stats.failed += 1;
                if times > 0 {
                    stats.failed_but_delivered += 1;
                }
            }
            if sender.acknowledged.contains(&m.seq) {
                stats.acknowledged += 1;
                if sender.unacknowledged.contains(&m.seq) {
                    violations.push(Violation::AckedAndUnacked {
                        client: sender.index,
                        seq: m.seq,
                    });
                }
            }
            if times > 1 {
                violations.push(Violation::Duplicated {
                    from: sender.index,
                    seq: m.seq,
                    to: m.to,
                    times,
                });
            }
            if times == 0 && !failed {
                violations.push(Violation::Lost {
                    from: sender.index,
                    seq: m.seq,
                    to: m.to,
                });
            }
        }
        stats.fresh_logins += u64::from(sender.fresh_logins);
        for attempt in &sender.resume_attempts {
            if attempt.resumed {
                stats.resumes += 1;
                continue;
            }
            stats.resume_refusals += 1;
            if let Some(max) = attempt.max
                && !attempt.after_logout
                && attempt.at < attempt.lost_at + Duration::from_secs(max.into())
            {
                violations.push(Violation::ResumeRefused {
                    client: sender.index,
                    at: attempt.at,
                    lost_at: attempt.lost_at,
                    max,
                });
            }
        }
    }
    (violations, stats)
}

/// Whether every message sent is delivered or reported failed (cheap
/// enough to ask when the run looks quiet).
pub(crate) fn all_resolved<'a>(clients: impl Iterator<Item = &'a ClientRecord> + Clone) -> bool {
    let delivered: BTreeSet<(usize, u64)> = clients
        .clone()
        .flat_map(|c| c.received.iter().map(|m| (m.from, m.seq)))
        .collect();
    let mut clients = clients;
    clients.all(|c| {
        c.sent.iter().all(|m| {
            delivered.contains(&(c.index, m.seq))
                || c.unacknowledged.contains(&m.seq)
                || c.bounced.contains(&m.seq)
        })
    })
}

/// The messages still unresolved, for a `NotSettled` report.
pub(crate) fn unresolved<'a>(
    clients: impl Iterator<Item = &'a ClientRecord> + Clone,
) -> Vec<(usize, u64)> {
    let delivered: BTreeSet<(usize, u64)> = clients
        .clone()
        .flat_map(|c| c.received.iter().map(|m| (m.from, m.seq)))
        .collect();
    clients
        .flat_map(|c| {
            c.sent
                .iter()
                .filter(|m| {
                    !delivered.contains(&(c.index, m.seq))
                        && !c.unacknowledged.contains(&m.seq)
                        && !c.bounced.contains(&m.seq)
                })
                .map(|m| (c.index, m.seq))
        })
        .collect()
}
