//! Example XMPP server: the sans-IO `ServerConnection` and `Router` driven
//! by tokio and rustls, with accounts in an embedded redb database.
//!
//! ```text
//! cargo run --example server
//! cargo run --example server -- --domain example.org --listen 0.0.0.0:5222 \
//!     --direct-tls-listen 0.0.0.0:5223 --cert fullchain.pem --key key.pem
//! cargo run --example server -- --add-user carol:secret --no-demo-users
//! RUST_LOG=debug cargo run --example server
//! ```
//!
//! With no arguments it serves `localhost` on 127.0.0.1:5222 (STARTTLS) and
//! 127.0.0.1:5223 (direct TLS, XEP-0368) with a self-signed certificate it
//! generates once into the data directory, creates the demo accounts
//! `alice`/`wonderland` and `bob`/`builder` if they do not exist, and
//! prints how to log in.
//!
//! The host owns the sockets, TLS, the clock and the shared state; the core
//! only sees bytes, `Instant`s and events. One tokio task per connection
//! runs the host loop; one actor task (`server/hub.rs`) owns the router and
//! every session's mailbox, and drives the IM layer (`server/im.rs`:
//! rosters, presence, blocking, offline messages, carbons, disco). Accounts
//! (`server/store.rs`) hold only the SCRAM stored forms of the password
//! (SHA-1, SHA-256, SHA-512); rosters, blocklists and offline messages are
//! in `server/im_store.rs`.
//!
//! An idle session holds no buffers (issue 6, memory per idle session):
//! `server/io.rs` reads into one scratch buffer per worker thread and drives
//! rustls's unbuffered API, the mailbox allocates only while stanzas wait,
//! and the connection task keeps little besides the core across its awaits
//! (see `connection()`).

#[path = "common/mod.rs"]
mod common;
#[path = "server/hub.rs"]
mod hub;
#[path = "server/im.rs"]
mod im;
#[path = "server/im_store.rs"]
mod im_store;
#[path = "server/io.rs"]
mod io;
#[path = "server/store.rs"]
mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use hub::{Hub, HubMsg, Mailbox};
use im::Im;
use io::{Read, Socket};
use store::Store;
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::router::{BindOutcome, ConflictPolicy, SessionId};
use xmpp_sansio::sasl::{self, Identity, Mechanism, ScramHash, TlsInfo};
use xmpp_sansio::server::{
    Answer, BindAnswer, DetachedSession, Request, RequestId, ServerConfig, ServerConnection,
    ServerEvent, ServerState,
};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::stream::{CloseReason, Input, Output};
use xmpp_sansio::{BareJid, FullJid};

/// Demo accounts, created when absent (unless `--no-demo-users`).
const DEMO_USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];
/// TLS handshake limit (STARTTLS and direct TLS).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a resume waits for the old connection to give the session up.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes longer than this to accept our bytes is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sessions get to close on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Conflict {
    /// A second login with the same resource is refused (`conflict`).
    Refuse,
    /// A second login with the same resource replaces the first, which is
    /// closed with a `conflict` stream error.
    Replace,
}

#[derive(Parser, Debug)]
#[command(about = "A small XMPP server built on xmpp-sansio")]
struct Args {
    /// The domain to serve (JIDs are user@DOMAIN).
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Address for client connections with STARTTLS (repeatable).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5222")]
    listen: Vec<SocketAddr>,
    /// Address for direct TLS client connections, XEP-0368 (repeatable).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5223")]
    direct_tls_listen: Vec<SocketAddr>,
    /// Do not listen for direct TLS.
    #[arg(long)]
    no_direct_tls: bool,
    /// Certificate chain (PEM). Without --cert/--key a self-signed
    /// certificate is generated once and kept in the data directory.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Create an account, or set its password (repeatable). Only the SCRAM
    /// stored forms are saved, never the password.
    #[arg(long = "add-user", value_name = "NAME:PASSWORD")]
    add_user: Vec<String>,
    /// Do not create the demo accounts alice and bob.
    #[arg(long)]
    no_demo_users: bool,
    /// Directory for the account and IM databases and the generated
    /// certificate.
    #[arg(long, value_name = "DIR", default_value = "xmpp-server-data")]
    data: PathBuf,
    /// Allow clients to log in without TLS (SCRAM and PLAIN). Only accepted
    /// when every --listen address is a loopback address.
    #[arg(long)]
    allow_plaintext_loopback: bool,
    /// What a login with a resource that is already in use does.
    #[arg(long, value_enum, default_value_t = Conflict::Replace)]
    conflict: Conflict,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every connection task shares.
struct Ctx {
    config: Arc<ServerConfig>,
    tls: Arc<rustls::ServerConfig>,
    /// Our certificate (DER), for `tls-server-end-point`.
    cert_der: Vec<u8>,
    store: Arc<Store>,
    hub: mpsc::Sender<HubMsg>,
    next_id: AtomicU64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let domain = BareJid::new(None, &args.domain)
        .map_err(|e| format!("--domain {:?} is not a valid domain: {e}", args.domain))?
        .domain()
        .to_owned();
    if args.allow_plaintext_loopback
        && let Some(addr) = args.listen.iter().find(|a| !a.ip().is_loopback())
    {
        return Err(format!(
            "--allow-plaintext-loopback needs loopback listeners only, but --listen {addr} is not loopback"
        )
        .into());
    }
    let mut users = Vec::new();
    for spec in &args.add_user {
        let (name, password) = spec
            .split_once(':')
            .ok_or_else(|| format!("--add-user wants NAME:PASSWORD, got {:?}", redact(spec)))?;
        let user = BareJid::new(Some(name), &domain)
            .map_err(|e| format!("--add-user: {name:?} is not a valid username: {e}"))?;
        if password.is_empty() {
            return Err(format!("--add-user: empty password for {name:?}").into());
        }
        let node = user.node().unwrap_or(name).to_owned();
        users.push((node, password.to_owned()));
    }

    // Accounts.
    let mut rng = common::os_rng()?;
    let store = Arc::new(Store::open(&args.data)?);
    let secret = store.secret(&mut rng)?;
    let iterations = sasl::ServerConfig::DEFAULT_ITERATIONS;
    let mut demo = Vec::new();
    if !args.no_demo_users {
        for (name, password) in DEMO_USERS {
            if !store.exists(name)? {
                store.set_password(name, password, iterations, &mut rng)?;
                info!(user = name, "demo account created");
            }
            demo.push((name, password));
        }
    }
    for (name, password) in &users {
        let existed = store.exists(name)?;
        store.set_password(name, password, iterations, &mut rng)?;
        info!(user = %name, "{}", if existed { "password set" } else { "account created" });
    }

    // Rosters, blocklists, offline messages.
    let im = Im::open(&domain, &args.data)?;

    // TLS.
    let tls = tls_material(&args, &domain)?;
    let cert_der = tls.chain[0].to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(tls.chain.clone(), tls.key)
        .map_err(|e| format!("certificate/key rejected: {e}"))?;
    // Only for the tls-exporter channel binding (see server/io.rs).
    tls_config.key_log = Arc::new(io::ExporterCapture);

    // The XMPP configuration.
    let mut config = ServerConfig::new(domain.clone(), secret);
    config.sasl.unknown_user_iterations = iterations;
    // Roster versioning (RFC 6121 §2.6.1), next to <bind/>.
    config.post_auth_features = im::stream_features();
    if args.allow_plaintext_loopback {
        config.policy.require_tls = false;
        config.sasl.allow_plain_without_tls = true;
    }

    // Listeners.
    let mut listeners = Vec::new();
    for addr in &args.listen {
        listeners.push((bind(*addr).await?, false));
    }
    if !args.no_direct_tls {
        for addr in &args.direct_tls_listen {
            listeners.push((bind(*addr).await?, true));
        }
    }

    let policy = match args.conflict {
        Conflict::Refuse => ConflictPolicy::RefuseNew,
        Conflict::Replace => ConflictPolicy::ReplaceOld,
    };
    let (hub_tx, hub_rx) = mpsc::channel(1024);
    let hub_task = tokio::spawn(Hub::new(domain.clone(), policy, store.clone(), im).run(hub_rx));
    let ctx = Arc::new(Ctx {
        config: Arc::new(config),
        tls: Arc::new(tls_config),
        cert_der,
        store: store.clone(),
        hub: hub_tx.clone(),
        next_id: AtomicU64::new(1),
    });

    banner(
        &args,
        &domain,
        &listeners,
        &tls.origin,
        &ctx.cert_der,
        &store,
        &demo,
    );
    info!(%domain, conflict = ?policy, "server ready");

    // Every connection task holds a clone of `alive`; when all are gone,
    // `all_done` yields None.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut accept_tasks = Vec::new();
    for (listener, direct_tls) in listeners {
        let ctx = ctx.clone();
        let alive = alive.clone();
        accept_tasks.push(tokio::spawn(accept_loop(listener, direct_tls, ctx, alive)));
    }
    drop(alive);

    common::shutdown_signal().await;
    info!("shutting down: closing every session with system-shutdown");
    for task in &accept_tasks {
        task.abort();
    }
    for task in accept_tasks {
        let _ = task.await;
    }
    let _ = hub_tx.send(HubMsg::Shutdown).await;
    match tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await {
        Ok(_) => info!("all sessions closed"),
        Err(_) => warn!("sessions still open after {SHUTDOWN_GRACE:?}; exiting anyway"),
    }
    drop(ctx);
    drop(hub_tx);
    hub_task.abort();
    Ok(())
}

fn redact(spec: &str) -> String {
    match spec.split_once(':') {
        Some((name, _)) => format!("{name}:…"),
        None => "…".to_owned(),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BoxError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}").into())
}

async fn accept_loop(
    listener: TcpListener,
    direct_tls: bool,
    ctx: Arc<Ctx>,
    alive: mpsc::Sender<()>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
                info!(session = id, %peer, direct_tls, "connected");
                if let Err(e) = tcp.set_nodelay(true) {
                    info!(session = id, error = %e, "connection ended");
                    continue;
                }
                let socket = Socket::new(tcp);
                tokio::spawn(connection(
                    ctx.clone(),
                    id,
                    socket,
                    direct_tls,
                    alive.clone(),
                ));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client connection, from accept to close. Its log lines carry
/// `session` (no tracing span: a span per connection costs ~0.4 KiB in the
/// subscriber's registry for the connection's whole life).
///
/// The task's future is allocated once per connection and sized for its
/// largest await state, so it is kept small: a plain `fn` returning an
/// `async move` block (an `async fn` keeps each argument twice), every
/// rare or large wait boxed, the core's outputs handled by a synchronous
/// [`next_step`].
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn connection(
    ctx: Arc<Ctx>,
    id: SessionId,
    mut socket: Socket,
    direct_tls: bool,
    alive: mpsc::Sender<()>,
) -> impl Future<Output = ()> {
    async move {
        let mut left = Leftovers::default();
        match session(&ctx, id, &mut socket, direct_tls, &mut left).await {
            Ok(reason) => info!(session = id, reason = %reason, "closed"),
            Err(e) => info!(session = id, error = %e, "connection ended"),
        }
        let gone = HubMsg::Gone {
            id,
            detached: left.detached.map(Box::new),
            unacked: left.unacked,
        };
        let full = try_hub(&ctx, gone).unwrap_or(None);
        if let Some(wait) = full.map(|msg| Box::pin(ctx.hub.send(msg))) {
            let _ = wait.await;
        }
        drop(alive);
    }
}

/// What a closed connection leaves to the hub (XEP-0198).
#[derive(Default)]
struct Leftovers {
    /// The resumable session, when the connection was lost.
    detached: Option<DetachedSession>,
    /// Stanzas the client never acknowledged, when not resumable.
    unacked: Vec<Stanza>,
}

/// A login attempt whose outcome is not known yet.
struct AuthAttempt {
    session: SessionId,
    username: String,
    mechanism: Mechanism,
}

impl AuthAttempt {
    fn failed(self) {
        warn!(session = self.session, user = %self.username, mechanism = self.mechanism.name(), "authentication failed");
    }
}

/// What the connection loop has to wait for.
enum Step {
    /// Flush, then the TLS handshake.
    StartTls(bytes::Bytes),
    /// Ask the hub (router) to bind a resource.
    Bind {
        rid: RequestId,
        username: String,
        requested: Option<String>,
    },
    /// Ask the hub for a detached session to resume (XEP-0198).
    Resume {
        rid: RequestId,
        username: String,
        previd: String,
    },
    /// The hub's queue is full: wait for room.
    Hub(Box<HubMsg>),
    /// The connection ended: close the socket.
    Closed(Box<CloseReason>),
}

/// Handles the core's outputs that need no waiting, until one that does.
fn next_step(
    ctx: &Ctx,
    id: SessionId,
    conn: &mut ServerConnection,
    socket: &mut Socket,
    attempt: &mut Option<Box<AuthAttempt>>,
) -> Result<Option<Step>, BoxError> {
    while let Some(output) = conn.poll_output() {
        match output {
            Output::Transmit(bytes) => socket.send(&bytes)?,
            Output::Event(ServerEvent::StartTls { buffered }) => {
                return Ok(Some(Step::StartTls(buffered)));
            }
            Output::Event(ServerEvent::Request { id: rid, request }) => match request {
                Request::Credentials {
                    username,
                    mechanism,
                    ..
                } => {
                    if let Some(previous) = attempt.take() {
                        previous.failed();
                    }
                    // PLAIN verifies against the SHA-256 form.
                    let hash = mechanism.scram_hash().unwrap_or(ScramHash::Sha256);
                    let lookup = ctx.store.lookup(&username, hash);
                    debug!(session = id, user = %username, mechanism = mechanism.name(), "credentials looked up");
                    *attempt = Some(Box::new(AuthAttempt {
                        session: id,
                        username,
                        mechanism,
                    }));
                    conn.answer(Instant::now(), rid, Answer::Credentials(lookup))?;
                }
                Request::Bind {
                    username,
                    requested,
                } => {
                    return Ok(Some(Step::Bind {
                        rid,
                        username,
                        requested,
                    }));
                }
                Request::Resume { username, previd } => {
                    return Ok(Some(Step::Resume {
                        rid,
                        username,
                        previd,
                    }));
                }
            },
            Output::Event(ServerEvent::StreamManagementEnabled { resumption_id }) => {
                debug!(
                    session = id,
                    resumable = resumption_id.is_some(),
                    "stream management enabled"
                );
                if let Some(msg) = try_hub(ctx, HubMsg::SmEnabled { id, resumption_id })? {
                    return Ok(Some(Step::Hub(Box::new(msg))));
                }
            }
            Output::Event(ServerEvent::Resumed { jid, .. }) => {
                info!(session = id, %jid, "session resumed");
            }
            Output::Event(ServerEvent::Authenticated { identity }) => {
                let mechanism = attempt.take().map_or("?", |a| a.mechanism.name());
                match identity {
                    Identity::User { username, .. } => {
                        info!(session = id, user = %username, mechanism, "authenticated");
                    }
                    other => info!(session = id, identity = ?other, mechanism, "authenticated"),
                }
            }
            Output::Event(ServerEvent::Bound { jid }) => debug!(session = id, %jid, "ready"),
            Output::Event(ServerEvent::Stanza(stanza)) => {
                if let Some(msg) = try_hub(ctx, HubMsg::Stanza { id, stanza })? {
                    return Ok(Some(Step::Hub(Box::new(msg))));
                }
            }
            Output::Event(ServerEvent::Closed(reason)) => {
                if let Some(attempt) = attempt.take() {
                    attempt.failed();
                }
                return Ok(Some(Step::Closed(Box::new(reason))));
            }
        }
    }
    Ok(None)
}

async fn session(
    ctx: &Ctx,
    id: SessionId,
    socket: &mut Socket,
    direct_tls: bool,
    left: &mut Leftovers,
) -> Result<CloseReason, BoxError> {
    let mailbox = Arc::new(Mailbox::default());
    let register = HubMsg::Register {
        id,
        mailbox: mailbox.clone(),
    };
    // (Only the boxed future may live across the await: a message held in
    // this function's state would be there in every later state too.)
    let full = try_hub(ctx, register)?.map(|msg| Box::pin(ctx.hub.send(msg)));
    if let Some(wait) = full {
        wait.await.map_err(|_| "server is shutting down")?;
    }

    let mut conn = {
        let (tls, early) = if direct_tls {
            let (info, early) = Box::pin(start_tls(ctx, socket, &[])).await?;
            debug!(session = id, version = ?info.version, "direct TLS established");
            (info, early)
        } else {
            (TlsInfo::plaintext(), Vec::new())
        };
        let mut conn =
            ServerConnection::new(ctx.config.clone(), tls, common::os_rng()?, Instant::now());
        if !early.is_empty() {
            conn.handle_input(Instant::now(), Input::Received(&early))?;
        }
        conn
    };
    let result = drive(ctx, id, &mut conn, socket, &mailbox).await;
    if !matches!(conn.state(), ServerState::Closed(_)) {
        // An I/O error ended it: for the machine the connection is lost.
        let _ = conn.handle_input(Instant::now(), Input::Eof);
        while conn.poll_output().is_some() {}
    }
    left.detached = conn.detach();
    left.unacked = conn.take_unacknowledged();
    result
}

/// Runs the connection until it closes.
async fn drive(
    ctx: &Ctx,
    id: SessionId,
    conn: &mut ServerConnection,
    socket: &mut Socket,
    mailbox: &Mailbox,
) -> Result<CloseReason, BoxError> {
    let mut attempt = None;
    let mut eof = false;
    loop {
        while let Some(step) = next_step(ctx, id, conn, socket, &mut attempt)? {
            // Boxed: what a step waits on never sits in an idle task.
            if let Some(reason) = Box::pin(run_step(ctx, id, conn, socket, step)).await? {
                return Ok(reason);
            }
        }
        flush(socket).await?;
        let deadline = conn.poll_timeout();
        tokio::select! {
            ready = socket.readable(), if !eof => {
                ready?;
                if let Read::Eof(error) = socket.read(conn, Instant::now())? {
                    if let Some(e) = error {
                        debug!(session = id, error = %e, "read failed");
                    }
                    eof = true;
                }
            }
            _ = common::sleep_until(deadline) => conn.handle_timeout(Instant::now()),
            () = mailbox.changed() => {
                if let Some(error) = mailbox.take_close() {
                    info!(session = id, condition = error.condition.name(), "closing the session");
                    conn.close_with_error(Instant::now(), error);
                }
                // Up to 64 stanzas per round, so they go out in one write
                // and reads are not starved.
                for _ in 0..64 {
                    let Some(stanza) = mailbox.pop() else { break };
                    let _ = conn.send_stanza(&stanza);
                }
                mailbox.again_if_waiting();
            }
        }
    }
}

/// Does what a [`Step`] waits for. `Some(reason)` when the connection is
/// over.
async fn run_step(
    ctx: &Ctx,
    id: SessionId,
    conn: &mut ServerConnection,
    socket: &mut Socket,
    step: Step,
) -> Result<Option<CloseReason>, BoxError> {
    match step {
        Step::StartTls(buffered) => {
            flush(socket).await?;
            let (info, early) = Box::pin(start_tls(ctx, socket, &buffered)).await?;
            debug!(session = id, version = ?info.version, "STARTTLS established");
            conn.handle_input(Instant::now(), Input::TlsEstablished(info))?;
            if !early.is_empty() {
                conn.handle_input(Instant::now(), Input::Received(&early))?;
            }
        }
        Step::Bind {
            rid,
            username,
            requested,
        } => {
            let resource = match requested {
                Some(resource) => resource,
                None => common::os_rng()?.token(16),
            };
            let answer = bind_answer(ctx, id, conn, &username, resource).await?;
            conn.answer(Instant::now(), rid, Answer::Bind(answer))?;
        }
        Step::Resume {
            rid,
            username,
            previd,
        } => {
            let detached = resume_answer(ctx, id, username, previd).await?;
            conn.answer(Instant::now(), rid, Answer::Resume(detached))?;
        }
        Step::Hub(msg) => {
            ctx.hub
                .send(*msg)
                .await
                .map_err(|_| "server is shutting down")?;
        }
        Step::Closed(reason) => {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.shutdown()).await;
            return Ok(Some(*reason));
        }
    }
    Ok(None)
}

/// Hands a message to the hub without waiting; gives it back when the
/// hub's queue is full (the caller then waits for room, in a boxed future).
fn try_hub(ctx: &Ctx, msg: HubMsg) -> Result<Option<HubMsg>, BoxError> {
    match ctx.hub.try_send(msg) {
        Ok(()) => Ok(None),
        Err(mpsc::error::TrySendError::Full(msg)) => Ok(Some(msg)),
        Err(mpsc::error::TrySendError::Closed(_)) => Err("server is shutting down".into()),
    }
}

/// Writes what the socket has queued: at once when the socket takes it
/// all, else waiting for it (boxed, bounded by [`WRITE_TIMEOUT`]).
async fn flush(socket: &mut Socket) -> Result<(), BoxError> {
    if socket.try_flush()? {
        return Ok(());
    }
    Box::pin(timed(socket.flush())).await
}

/// The TLS handshake (STARTTLS or direct TLS), bounded by
/// [`HANDSHAKE_TIMEOUT`]. Awaited boxed: its state is large and lives only
/// while it runs, not in every idle connection's task.
async fn start_tls(
    ctx: &Ctx,
    socket: &mut Socket,
    buffered: &[u8],
) -> Result<(TlsInfo, Vec<u8>), BoxError> {
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        socket.start_tls(&ctx.tls, &ctx.cert_der, buffered),
    )
    .await
    .map_err(|_| "TLS handshake timed out")?
}

/// Asks the hub for the detached session `previd` (it may first have to
/// close a connection that still holds it; bounded by [`RESUME_TIMEOUT`]).
async fn resume_answer(
    ctx: &Ctx,
    id: SessionId,
    username: String,
    previd: String,
) -> Result<Option<Box<DetachedSession>>, BoxError> {
    let (reply, answer) = oneshot::channel();
    let resume = HubMsg::Resume {
        id,
        username,
        previd,
        reply,
    };
    ctx.hub
        .send(resume)
        .await
        .map_err(|_| "server is shutting down")?;
    Ok(tokio::time::timeout(RESUME_TIMEOUT, answer)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten())
}

async fn bind_answer(
    ctx: &Ctx,
    id: SessionId,
    conn: &ServerConnection,
    username: &str,
    resource: String,
) -> Result<BindAnswer, BoxError> {
    let domain = conn.domain().ok_or("bind before a domain")?;
    let Ok(jid) = FullJid::new(Some(username), domain, &resource) else {
        return Ok(BindAnswer::Refused(StanzaErrorCondition::BadRequest));
    };
    let (reply, outcome) = oneshot::channel();
    ctx.hub
        .send(HubMsg::Bind { id, jid, reply })
        .await
        .map_err(|_| "server is shutting down")?;
    Ok(
        match outcome.await.map_err(|_| "server is shutting down")? {
            BindOutcome::Bound | BindOutcome::Replaced { .. } => BindAnswer::Bound { resource },
            BindOutcome::Refused => BindAnswer::Refused(StanzaErrorCondition::Conflict),
            BindOutcome::AlreadyBound(_) => BindAnswer::Refused(StanzaErrorCondition::NotAllowed),
        },
    )
}

async fn timed(io: impl std::future::Future<Output = std::io::Result<()>>) -> Result<(), BoxError> {
    match tokio::time::timeout(WRITE_TIMEOUT, io).await {
        Ok(result) => result.map_err(|e| format!("write failed: {e}").into()),
        Err(_) => Err("write timed out: the client does not read".into()),
    }
}

/// The certificate chain and key, and where they came from.
struct TlsMaterial {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: String,
}

/// `--cert/--key`, or the self-signed certificate in `<data>/tls/`,
/// generated (rcgen, ECDSA P-256) on first use.
fn tls_material(args: &Args, domain: &str) -> Result<TlsMaterial, BoxError> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let chain = common::load_certs(cert)?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate found", cert.display()).into());
        }
        return Ok(TlsMaterial {
            chain,
            key: common::load_key(key)?,
            origin: cert.display().to_string(),
        });
    }
    let dir = args.data.join("tls");
    let cert_path = dir.join(format!("{domain}.crt"));
    let key_path = dir.join(format!("{domain}.key"));
    let origin = format!("self-signed, {}", cert_path.display());
    if cert_path.exists() && key_path.exists() {
        let chain = common::load_certs(&cert_path)?;
        if !chain.is_empty() {
            return Ok(TlsMaterial {
                chain,
                key: common::load_key(&key_path)?,
                origin,
            });
        }
    }
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key_pair)?;
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
    info!(path = %cert_path.display(), "generated a self-signed certificate");
    Ok(TlsMaterial {
        chain: vec![cert.der().clone()],
        key: common::load_key(&key_path)?,
        origin: format!("{origin} (generated now)"),
    })
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(data)
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn banner(
    args: &Args,
    domain: &str,
    listeners: &[(TcpListener, bool)],
    cert_origin: &str,
    cert_der: &[u8],
    store: &Store,
    demo: &[(&str, &str)],
) {
    let addrs = |direct: bool| -> Vec<SocketAddr> {
        listeners
            .iter()
            .filter(|(_, d)| *d == direct)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    };
    let list = |v: &[SocketAddr]| -> String {
        if v.is_empty() {
            "off".to_owned()
        } else {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let starttls = addrs(false);
    let direct = addrs(true);
    let data = std::path::absolute(&args.data).unwrap_or_else(|_| args.data.clone());
    let accounts = store.count().map_or("?".to_owned(), |n| n.to_string());
    println!("xmpp-sansio example server");
    println!("  domain:       {domain}");
    println!("  STARTTLS:     {}", list(&starttls));
    println!("  direct TLS:   {}", list(&direct));
    if args.allow_plaintext_loopback {
        println!("  plaintext:    allowed (loopback only)");
    }
    println!("  certificate:  {cert_origin}");
    println!("                SHA-256 {}", fingerprint(cert_der));
    println!("  data:         {} ({accounts} accounts)", data.display());
    let mut example = None;
    for (name, password) in demo {
        if store.check_password(name, password) {
            println!("  demo account: {name}@{domain}  password: {password}");
            example.get_or_insert((*name, *password));
        } else {
            println!("  demo account: {name}@{domain}  (password was changed)");
        }
    }
    if let (Some((name, password)), Some(addr)) = (example, starttls.first()) {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        println!("  log in with our client:");
        println!(
            "    cargo run --example client -- --jid {name}@{domain} --password {password} --insecure --host {host} --port {} listen",
            addr.port()
        );
        if let Some((other, other_password)) = demo.iter().find(|(n, _)| *n != name) {
            println!(
                "    cargo run --example client -- --jid {other}@{domain} --password {other_password} --insecure --host {host} --port {} send {name}@{domain} hello",
                addr.port()
            );
        }
    }
    println!("  or any XMPP client (accept the self-signed certificate)");
    println!("  Ctrl-C stops the server");
}
