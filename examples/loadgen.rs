//! Load generator for XMPP servers, built on the sans-IO `ClientConnection`:
//! many authenticated sessions over STARTTLS on loopback.
//!
//! ```text
//! # 100 pairs: user1→user2, user3→user4, …; 100 chat messages per pair
//! cargo run --release --example loadgen -- --port 5222 --ca ca.crt \
//!     throughput --pairs 100 --messages 100
//! # 500 idle sessions (user1..user500), held until SIGINT/SIGTERM or --hold
//! cargo run --release --example loadgen -- --port 5222 --ca ca.crt \
//!     --server-pid 1234 idle --count 500 --hold 10
//! ```
//!
//! Runtime: one thread (tokio current-thread) by default, so on a 2-core
//! machine the load generator takes one core and the server under test the
//! other; `--threads N` uses a multi-thread runtime instead. With
//! `--server-pid` the generator samples the server's RSS (`VmRSS`) and CPU
//! time (`utime + stime`) from `/proc` at the phase boundaries, and reports
//! its own CPU time, so a saturated generator is visible in the results.
//!
//! Results go to stdout as `RESULT key=value` lines (for
//! `tests/interop/load`) after a human-readable summary on stderr.
//!
//! Every wait is bounded: each login by `--login-timeout`, the whole run by
//! `--timeout`.

#[path = "common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};

use common::Transport;
use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent};
use xmpp_sansio::stanza::{IqType, MessageType, Stanza, StanzaKind};
use xmpp_sansio::stream::Input;
use xmpp_sansio::stream::Output;
use xmpp_sansio::{BareJid, Jid};

#[derive(Parser, Debug)]
#[command(about = "XMPP load generator built on xmpp-sansio")]
struct Args {
    /// Server address to connect to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port (STARTTLS).
    #[arg(long, default_value_t = 5222)]
    port: u16,
    /// CA certificate(s) (PEM) to verify the server with.
    #[arg(long)]
    ca: PathBuf,
    /// The XMPP domain (JIDs are user@DOMAIN; also the TLS server name).
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Username pattern; `{}` is replaced by the session number (1-based).
    #[arg(long, default_value = "user{}")]
    user_pattern: String,
    /// Password pattern; `{}` is replaced by the session number.
    #[arg(long, default_value = "user{}-pass")]
    password_pattern: String,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 32)]
    login_concurrency: usize,
    /// Give up on one login after this many seconds.
    #[arg(long, default_value_t = 60)]
    login_timeout: u64,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Runtime threads: 1 = tokio current-thread, more = multi-thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Server process to sample RSS and CPU time of (from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug, Clone)]
enum Mode {
    /// Log in 2×PAIRS sessions; session 2k-1 sends MESSAGES chat messages to
    /// session 2k (bare JID), at most WINDOW unacknowledged per pair; measure
    /// messages/s from the first send to the last receive, and latency.
    Throughput {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        #[arg(long, default_value_t = 100)]
        messages: usize,
        /// Messages in flight per pair (sent, not yet received).
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Extra body bytes per message (the body is "SEQ NANOS" plus this).
        #[arg(long, default_value_t = 0)]
        padding: usize,
        /// Rounds on the same sessions; the median round is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Log in COUNT sessions, send initial presence, stay idle; sample the
    /// server's RSS before and after; hold until HOLD seconds passed or
    /// SIGINT/SIGTERM, then close every session.
    Idle {
        #[arg(long, default_value_t = 500)]
        count: usize,
        /// Seconds to hold the sessions after all are online (default: until a signal).
        #[arg(long)]
        hold: Option<u64>,
        /// Seconds to wait after the last login before sampling the RSS.
        #[arg(long, default_value_t = 3)]
        settle: u64,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limit = Duration::from_secs(args.timeout);
    let result = runtime.block_on(async move { tokio::time::timeout(limit, run(args)).await });
    // Sessions still open are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: timed out after {}s", limit.as_secs());
            ExitCode::FAILURE
        }
    }
}

/// What every session needs to connect.
struct Target {
    addr: std::net::SocketAddr,
    domain: String,
    connector: tokio_rustls::TlsConnector,
    user_pattern: String,
    password_pattern: String,
    login_timeout: Duration,
    logins: Semaphore,
}

async fn run(args: Args) -> Result<(), BoxError> {
    let addr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", args.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", args.host))?;
    let target = Arc::new(Target {
        addr,
        domain: args.domain.clone(),
        connector: tls_connector(&args.ca)?,
        user_pattern: args.user_pattern.clone(),
        password_pattern: args.password_pattern.clone(),
        login_timeout: Duration::from_secs(args.login_timeout),
        logins: Semaphore::new(args.login_concurrency.max(1)),
    });
    let probe = args.server_pid.map(Probe);
    match args.mode.clone() {
        Mode::Throughput {
            pairs,
            messages,
            window,
            padding,
            rounds,
        } => {
            throughput(
                target,
                probe,
                pairs,
                messages,
                window.max(1),
                padding,
                rounds,
            )
            .await
        }
        Mode::Idle {
            count,
            hold,
            settle,
        } => idle(target, probe, count, hold, settle).await,
    }
}

// ------------------------------------------------------------------ session ---

/// One logged-in client: the sans-IO core plus its transport.
struct Session {
    conn: ClientConnection,
    transport: Transport,
    buf: Box<[u8]>,
    events: VecDeque<ClientEvent>,
    closing: bool,
}

impl Session {
    /// Connects, negotiates STARTTLS and SASL, binds, sends initial presence
    /// and waits for the answer to a ping sent after it (so the server has
    /// processed the presence when this returns).
    async fn login(target: &Target, n: usize) -> Result<Session, BoxError> {
        let _permit = target.logins.acquire().await?;
        let user = target.user_pattern.replace("{}", &n.to_string());
        let password = target.password_pattern.replace("{}", &n.to_string());
        let jid: BareJid = format!("{user}@{}", target.domain)
            .parse()
            .map_err(|e| format!("bad JID for session {n}: {e}"))?;
        let work = async {
            let tcp = TcpStream::connect(target.addr)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
            tcp.set_nodelay(true)?;
            let config = ClientConfig::new(jid.clone(), password);
            let mut session = Session {
                conn: ClientConnection::new(config, common::os_rng()?, Instant::now()),
                transport: Transport::Plain(tcp),
                buf: vec![0u8; 16 * 1024].into_boxed_slice(),
                events: VecDeque::new(),
                closing: false,
            };
            loop {
                match session.next_event(Some(target)).await? {
                    ClientEvent::Online { .. } => break,
                    ClientEvent::Stanza(_) => {}
                    other => return Err(format!("unexpected during login: {other:?}").into()),
                }
            }
            let now = Instant::now();
            session
                .conn
                .send_stanza(now, Stanza::new(StanzaKind::Presence, "jabber:client"))?;
            let server: Jid = target.domain.parse()?;
            let ping = Element::bare("ping", "urn:xmpp:ping");
            let id = session
                .conn
                .send_stanza(now, Stanza::iq(IqType::Get, Some(&server), "ping", ping))?;
            loop {
                if let ClientEvent::Stanza(s) = session.next_event(None).await?
                    && s.kind() == StanzaKind::Iq
                    && s.id() == Some(id.as_str())
                {
                    if let Some(error) = s.error() {
                        return Err(format!("ping failed: {error}").into());
                    }
                    break;
                }
            }
            Ok::<_, BoxError>(session)
        };
        match tokio::time::timeout(target.login_timeout, work).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(format!("{jid}: {e}").into()),
            Err(_) => Err(format!("{jid}: login timed out").into()),
        }
    }

    /// Writes what the core queued and collects its events. `StartTls` is
    /// handled here when `target` is given (during login).
    async fn pump(&mut self, target: Option<&Target>) -> Result<(), BoxError> {
        let mut wrote = false;
        while let Some(output) = self.conn.poll_output() {
            match output {
                Output::Transmit(bytes) => {
                    self.transport.write_all(&bytes).await?;
                    wrote = true;
                }
                Output::Event(ClientEvent::StartTls { buffered }) => {
                    let target = target.ok_or("STARTTLS after login")?;
                    self.transport.flush().await?;
                    let t = std::mem::replace(&mut self.transport, Transport::Upgrading);
                    let (t, info) = common::client_tls_upgrade(
                        t,
                        buffered.to_vec(),
                        &target.connector,
                        &target.domain,
                    )
                    .await?;
                    self.transport = t;
                    self.conn
                        .handle_input(Instant::now(), Input::TlsEstablished(info))?;
                }
                Output::Event(ClientEvent::Closed(reason)) => {
                    if self.closing {
                        self.events.push_back(ClientEvent::Closed(reason));
                    } else {
                        return Err(format!("server closed the stream: {reason}").into());
                    }
                }
                Output::Event(event) => self.events.push_back(event),
            }
        }
        if wrote {
            self.transport.flush().await?;
        }
        Ok(())
    }

    /// Waits for bytes (or the core's next timer) and feeds the core.
    /// Cancel-safe: nothing is consumed unless the read completes.
    async fn read_once(&mut self) -> Result<(), BoxError> {
        let deadline = self.conn.poll_timeout();
        tokio::select! {
            read = self.transport.read(&mut self.buf) => {
                let now = Instant::now();
                match read {
                    Ok(0) => self.conn.handle_input(now, Input::Eof)?,
                    Ok(n) => self.conn.handle_input(now, Input::Received(&self.buf[..n]))?,
                    Err(e) => return Err(format!("read failed: {e}").into()),
                }
            }
            _ = common::sleep_until(deadline) => self.conn.handle_timeout(Instant::now()),
        }
        Ok(())
    }

    async fn next_event(&mut self, target: Option<&Target>) -> Result<ClientEvent, BoxError> {
        loop {
            self.pump(target).await?;
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            self.read_once().await?;
        }
    }

    /// Sends `</stream:stream>` and waits (bounded by the core's close
    /// timeout) for the server's.
    async fn close(mut self) {
        self.closing = true;
        self.conn.close(Instant::now());
        let work = async {
            loop {
                if let ClientEvent::Closed(_) = self.next_event(None).await? {
                    return Ok::<_, BoxError>(());
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(6), work).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.transport.shutdown()).await;
    }
}

/// Logs in sessions `first..=last` concurrently (bounded by the login
/// semaphore); returns them in order, or the first error.
async fn login_all(
    target: &Arc<Target>,
    numbers: impl Iterator<Item = usize>,
) -> Result<Vec<Session>, BoxError> {
    let mut tasks = Vec::new();
    for n in numbers {
        let target = target.clone();
        tasks.push(tokio::spawn(
            async move { Session::login(&target, n).await },
        ));
    }
    let mut sessions = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("login task failed: {e}").into());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(sessions),
    }
}

async fn close_all(sessions: Vec<Session>) {
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| tokio::spawn(s.close()))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

// --------------------------------------------------------------- throughput ---

/// Flow control between the two halves of a pair.
struct Pair {
    received: AtomicUsize,
    notify: Notify,
}

/// What the receivers share.
struct Tally {
    /// Messages received so far, all pairs.
    received: AtomicUsize,
    /// Time of the last receive, nanoseconds since `base`.
    last_nanos: AtomicU64,
    base: Instant,
}

/// One pair: the sender, the receiver, the receiver's bare JID.
type PairSessions = (Session, Session, Jid);

/// What one round measured.
struct Round {
    received: usize,
    elapsed: f64,
    latencies: Vec<u64>,
    loadgen_cpu: f64,
    server_cpu: Option<f64>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed
    }
}

async fn throughput(
    target: Arc<Target>,
    probe: Option<Probe>,
    pairs: usize,
    messages: usize,
    window: usize,
    padding: usize,
    rounds: usize,
) -> Result<(), BoxError> {
    let sessions = 2 * pairs;
    eprintln!("logging in {sessions} sessions…");
    let login_start = Instant::now();
    let mut all = login_all(&target, 1..=sessions).await?.into_iter();
    let login_secs = login_start.elapsed().as_secs_f64();
    eprintln!("{sessions} sessions online in {login_secs:.2}s");
    let mut set: Vec<PairSessions> = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let (Some(sender), Some(receiver)) = (all.next(), all.next()) else {
            return Err("session count mismatch".into());
        };
        let to: Jid = format!(
            "{}@{}",
            target.user_pattern.replace("{}", &(2 * p + 2).to_string()),
            target.domain
        )
        .parse()?;
        set.push((sender, receiver, to));
    }

    let pad = "x".repeat(padding);
    let mut results = Vec::with_capacity(rounds);
    for round in 1..=rounds.max(1) {
        let (back, r) = run_round(set, messages, window, &pad, probe.as_ref()).await?;
        set = back;
        eprintln!(
            "round {round}: {} messages in {:.3}s: {:.0} messages/s",
            r.received,
            r.elapsed,
            r.rate()
        );
        results.push(r);
    }
    // The median round (by rate) is the result.
    results.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let rates: Vec<String> = results.iter().map(|r| format!("{:.0}", r.rate())).collect();
    let mut r = results.swap_remove(results.len() / 2);
    let (received, elapsed, rate) = (r.received, r.elapsed, r.rate());
    r.latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        if r.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((r.latencies.len() as f64 - 1.0) * q).round() as usize;
        r.latencies[i] as f64 / 1e6
    };
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    let loadgen_pct = 100.0 * r.loadgen_cpu / elapsed;
    eprintln!(
        "median round: {received} messages in {elapsed:.3}s: {rate:.0} messages/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    eprintln!(
        "CPU during that round: load generator {:.2}s ({loadgen_pct:.0}% of one core){}",
        r.loadgen_cpu,
        r.server_cpu.map_or(String::new(), |s| format!(
            ", server {s:.2}s ({:.0}% of one core, {:.1} µs/message)",
            100.0 * s / elapsed,
            1e6 * s / received as f64
        ))
    );
    println!("RESULT mode=throughput");
    println!("RESULT sessions={sessions}");
    println!("RESULT login_secs={login_secs:.3}");
    println!("RESULT rates={}", rates.join(","));
    println!("RESULT messages={received}");
    println!("RESULT elapsed_secs={elapsed:.4}");
    println!("RESULT messages_per_sec={rate:.0}");
    println!("RESULT latency_p50_ms={p50:.2}");
    println!("RESULT latency_p99_ms={p99:.2}");
    println!("RESULT latency_max_ms={max:.2}");
    println!("RESULT loadgen_cpu_secs={:.3}", r.loadgen_cpu);
    println!("RESULT loadgen_cpu_pct={loadgen_pct:.0}");
    if let Some(s) = r.server_cpu {
        println!("RESULT server_cpu_secs={s:.3}");
        println!("RESULT server_cpu_pct={:.0}", 100.0 * s / elapsed);
        println!(
            "RESULT server_cpu_us_per_message={:.1}",
            1e6 * s / received as f64
        );
    }
    let mut back = Vec::with_capacity(sessions);
    for (s, r, _) in set {
        back.push(s);
        back.push(r);
    }
    close_all(back).await;
    Ok(())
}

/// One round: every pair sends `messages`; returns the sessions and the
/// measurements.
async fn run_round(
    set: Vec<PairSessions>,
    messages: usize,
    window: usize,
    pad: &str,
    probe: Option<&Probe>,
) -> Result<(Vec<PairSessions>, Round), BoxError> {
    let (go_tx, go_rx) = watch::channel(false);
    let tally = Arc::new(Tally {
        received: AtomicUsize::new(0),
        last_nanos: AtomicU64::new(0),
        base: Instant::now(),
    });
    let mut tasks = Vec::with_capacity(set.len());
    for (sender, receiver, to) in set {
        let pair = Arc::new(Pair {
            received: AtomicUsize::new(0),
            notify: Notify::new(),
        });
        let s = tokio::spawn(send_loop(
            sender,
            to.clone(),
            messages,
            window,
            pad.to_owned(),
            pair.clone(),
            tally.clone(),
            go_rx.clone(),
        ));
        let r = tokio::spawn(receive_loop(receiver, messages, pair, tally.clone()));
        tasks.push((s, r, to));
    }
    // Let every task reach its wait, then start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu_server_before = probe.and_then(Probe::cpu_ticks);
    let cpu_self_before = cpu_time::ProcessTime::now();
    let start = Instant::now();
    go_tx.send(true)?;

    let mut joined = Vec::with_capacity(tasks.len());
    let mut latencies = Vec::with_capacity(tasks.len() * messages);
    let mut first_error: Option<BoxError> = None;
    let mut receivers = Vec::with_capacity(tasks.len());
    for (s, r, to) in tasks {
        match r.await {
            Ok(Ok((session, mut l))) => {
                latencies.append(&mut l);
                receivers.push(Some(session));
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                receivers.push(None);
            }
            Err(e) => {
                first_error.get_or_insert(format!("receiver failed: {e}").into());
                receivers.push(None);
            }
        }
        joined.push((s, to));
    }
    let loadgen_cpu = cpu_self_before.elapsed().as_secs_f64();
    let cpu_server_after = probe.and_then(Probe::cpu_ticks);
    let mut back = Vec::with_capacity(joined.len());
    for ((s, to), receiver) in joined.into_iter().zip(receivers) {
        match s.await {
            Ok(Ok(sender)) => {
                if let Some(receiver) = receiver {
                    back.push((sender, receiver, to));
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("sender failed: {e}").into());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let received = tally.received.load(Ordering::Relaxed);
    let last = tally.base + Duration::from_nanos(tally.last_nanos.load(Ordering::Relaxed));
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    let server_cpu = match (cpu_server_before, cpu_server_after) {
        (Some(a), Some(b)) => Some((b - a) as f64 / CLOCK_TICKS),
        _ => None,
    };
    Ok((
        back,
        Round {
            received,
            elapsed,
            latencies,
            loadgen_cpu,
            server_cpu,
        },
    ))
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    mut session: Session,
    to: Jid,
    messages: usize,
    window: usize,
    pad: String,
    pair: Arc<Pair>,
    tally: Arc<Tally>,
    mut go: watch::Receiver<bool>,
) -> Result<Session, BoxError> {
    go.wait_for(|g| *g).await?;
    let mut sent = 0;
    let mut body = String::new();
    while sent < messages {
        let now = Instant::now();
        while sent < messages && sent - pair.received.load(Ordering::Acquire) < window {
            use std::fmt::Write;
            body.clear();
            let nanos = now.duration_since(tally.base).as_nanos();
            let _ = write!(body, "{sent} {nanos}");
            if !pad.is_empty() {
                body.push(' ');
                body.push_str(&pad);
            }
            session.conn.send_stanza(now, Stanza::chat(&to, &body))?;
            sent += 1;
        }
        session.pump(None).await?;
        while let Some(event) = session.events.pop_front() {
            check_stanza(&event)?;
        }
        if sent == messages {
            break;
        }
        tokio::select! {
            _ = pair.notify.notified() => {}
            r = session.read_once() => r?,
        }
    }
    Ok(session)
}

async fn receive_loop(
    mut session: Session,
    messages: usize,
    pair: Arc<Pair>,
    tally: Arc<Tally>,
) -> Result<(Session, Vec<u64>), BoxError> {
    let mut latencies = Vec::with_capacity(messages);
    let mut received = 0;
    while received < messages {
        session.read_once().await?;
        session.pump(None).await?;
        let now = Instant::now();
        let now_nanos = now.duration_since(tally.base).as_nanos() as u64;
        let before = received;
        while let Some(event) = session.events.pop_front() {
            check_stanza(&event)?;
            let ClientEvent::Stanza(stanza) = event else {
                continue;
            };
            if stanza.kind() != StanzaKind::Message {
                continue;
            }
            let Some(body) = stanza.element().get_child("body", "jabber:client") else {
                continue;
            };
            let text = body.text();
            let sent_nanos = text
                .split(' ')
                .nth(1)
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| format!("unexpected body {text:?}"))?;
            latencies.push(now_nanos.saturating_sub(sent_nanos));
            received += 1;
        }
        if received > before {
            pair.received
                .fetch_add(received - before, Ordering::Release);
            pair.notify.notify_one();
            tally
                .received
                .fetch_add(received - before, Ordering::Relaxed);
            tally.last_nanos.fetch_max(now_nanos, Ordering::Relaxed);
        }
    }
    Ok((session, latencies))
}

/// Fails on an error stanza (e.g. a bounced message).
fn check_stanza(event: &ClientEvent) -> Result<(), BoxError> {
    if let ClientEvent::Stanza(s) = event
        && (s.message_type() == Some(MessageType::Error) || s.is_error())
    {
        let error = s.error().map_or("?".to_owned(), |e| e.to_string());
        return Err(format!("error stanza from {}: {error}", s.from().unwrap_or("?")).into());
    }
    Ok(())
}

// --------------------------------------------------------------------- idle ---

async fn idle(
    target: Arc<Target>,
    probe: Option<Probe>,
    count: usize,
    hold: Option<u64>,
    settle: u64,
) -> Result<(), BoxError> {
    let rss_before = probe.as_ref().and_then(Probe::rss_kib);
    eprintln!("logging in {count} idle sessions…");
    let login_start = Instant::now();
    let sessions = login_all(&target, 1..=count).await?;
    let login_secs = login_start.elapsed().as_secs_f64();
    eprintln!("{count} sessions online in {login_secs:.2}s");
    println!("RESULT mode=idle");
    println!("RESULT sessions={count}");
    println!("RESULT login_secs={login_secs:.3}");

    // Keep servicing the sessions (keepalives, pings) while idle.
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| tokio::spawn(idle_loop(s, stop_rx.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(settle)).await;
    if let (Some(before), Some(after)) = (rss_before, probe.as_ref().and_then(Probe::rss_kib)) {
        let per = (after as f64 - before as f64) / count as f64;
        eprintln!(
            "server RSS: {before} KiB before, {after} KiB with {count} idle sessions: {per:.1} KiB/session"
        );
        println!("RESULT rss_before_kib={before}");
        println!("RESULT rss_after_kib={after}");
        println!("RESULT kib_per_session={per:.2}");
    }
    println!("RESULT online=1");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    match hold {
        Some(secs) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                _ = common::shutdown_signal() => {}
            }
        }
        None => common::shutdown_signal().await,
    }
    eprintln!("closing {count} sessions…");
    stop_tx.send(true)?;
    let mut back = Vec::with_capacity(count);
    for task in tasks {
        match task.await {
            Ok(Ok(s)) => back.push(s),
            Ok(Err(e)) => eprintln!("idle session failed: {e}"),
            Err(e) => eprintln!("idle session task failed: {e}"),
        }
    }
    close_all(back).await;
    Ok(())
}

async fn idle_loop(
    mut session: Session,
    mut stop: watch::Receiver<bool>,
) -> Result<Session, BoxError> {
    loop {
        session.pump(None).await?;
        session.events.clear();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(session),
            r = session.read_once() => r?,
        }
    }
}

// -------------------------------------------------------------------- probe ---

/// `USER_HZ`: the unit of utime/stime in /proc/PID/stat (100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// Reads another process's RSS and CPU time from /proc.
struct Probe(u32);

impl Probe {
    /// `VmRSS` in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// utime + stime in clock ticks.
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // The command name may contain spaces; fields resume after ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state); utime is field 14, stime 15.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }
}

// ---------------------------------------------------------------------- TLS ---

fn tls_connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in common::load_certs(ca)? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
