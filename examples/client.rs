//! Example XMPP client: the sans-IO `ClientConnection` driven by tokio and
//! rustls.
//!
//! ```text
//! cargo run --example client -- --jid alice@localhost --password alice-pass --insecure send bob@localhost "hello"
//! cargo run --example client -- --jid bob@localhost --password bob-pass --insecure listen --count 1
//! cargo run --example client -- --jid alice@localhost --password alice-pass --insecure disco
//! cargo run --example client -- --jid alice@localhost --password alice-pass --insecure roster --add bob@localhost
//! ```
//!
//! The host owns the socket, TLS and the clock; the core only sees bytes,
//! `Instant`s and events.

#[path = "common/mod.rs"]
mod common;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, Subcommand};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::Transport;
use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent, TlsMode};
use xmpp_sansio::im::delay::Delay;
use xmpp_sansio::im::roster::NS_ROSTER;
use xmpp_sansio::stanza::{IqType, MessageType, Stanza, StanzaKind};
use xmpp_sansio::stream::{CloseReason, Input, Output};
use xmpp_sansio::xml::StreamWriter;
use xmpp_sansio::{BareJid, Jid};

#[derive(Parser, Debug)]
#[command(about = "A small XMPP client built on xmpp-sansio")]
struct Args {
    /// The account, e.g. alice@localhost.
    #[arg(long)]
    jid: BareJid,
    /// The password (or set XMPP_PASSWORD).
    #[arg(long, env = "XMPP_PASSWORD", hide_env_values = true)]
    password: String,
    /// Server host to connect to (default: the JID's domain).
    #[arg(long)]
    host: Option<String>,
    /// Server port.
    #[arg(long, default_value_t = 5222)]
    port: u16,
    /// Resource to request (default: chosen by the server).
    #[arg(long)]
    resource: Option<String>,
    /// Connect with direct TLS (XEP-0368, usually port 5223) instead of STARTTLS.
    #[arg(long)]
    direct_tls: bool,
    /// Accept any server certificate (for self-signed test servers only).
    #[arg(long)]
    insecure: bool,
    /// Trust the CA certificates in this PEM file instead of the built-in roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print every byte sent and received to stderr.
    #[arg(long, short)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Send one chat message, then disconnect.
    Send { to: Jid, text: String },
    /// Send `count` numbered messages "PREFIX 1" … "PREFIX count" in order.
    SendMany {
        to: Jid,
        count: usize,
        #[arg(long, default_value = "message")]
        prefix: String,
    },
    /// Announce presence and print incoming stanzas (until `--count` messages arrived).
    Listen {
        #[arg(long)]
        count: Option<usize>,
    },
    /// Query disco#info of the server (or TARGET) and print identities and features.
    Disco { target: Option<Jid> },
    /// Ping the server (XEP-0199) and print the round trip.
    Ping,
    /// Print the roster (RFC 6121 §2), one `item JID subscription=… [ask=…]
    /// [name=…]` line per contact, after adding each `--add` contact with a
    /// roster set.
    Roster {
        #[arg(long = "add", value_name = "JID")]
        add: Vec<BareJid>,
    },
    /// Stream management check (XEP-0198): send `count` numbered messages
    /// "PREFIX 1…count", drop the TCP connection without closing the
    /// stream, reconnect and resume the session, send `count` more, then
    /// close cleanly. Fails unless the resume succeeded and every message
    /// was acknowledged.
    ResumeCheck {
        to: Jid,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[arg(long, default_value = "resume")]
        prefix: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let limit = Duration::from_secs(args.timeout);
    match tokio::time::timeout(limit, run(args)).await {
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

type BoxError = Box<dyn std::error::Error>;

/// What the client is doing once online.
struct App {
    command: Command,
    received: usize,
    pending_iq: Option<(String, Instant)>,
    /// Ids of roster sets not yet answered.
    pending_sets: Vec<String>,
    done: bool,
    writer: StreamWriter,
    /// Drop the connection without closing the stream (resume-check).
    drop_now: bool,
    /// Messages the server acknowledged (XEP-0198).
    acknowledged: usize,
    /// Messages whose delivery was never confirmed.
    unacknowledged: usize,
    /// The session was resumed.
    resumed: bool,
}

impl App {
    fn online(&mut self, conn: &mut ClientConnection, now: Instant) -> Result<(), BoxError> {
        match &self.command {
            Command::Send { to, text } => {
                conn.send_stanza(now, Stanza::chat(to, text))?;
                self.done = true;
            }
            Command::SendMany { to, count, prefix } => {
                for i in 1..=*count {
                    conn.send_stanza(now, Stanza::chat(to, &format!("{prefix} {i}")))?;
                }
                self.done = true;
            }
            Command::Listen { .. } => {
                conn.send_stanza(now, Stanza::new(StanzaKind::Presence, "jabber:client"))?;
            }
            Command::Disco { target } => {
                let target = match target {
                    Some(t) => t.clone(),
                    None => conn.jid().ok_or("not bound")?.domain().parse()?,
                };
                let query = Element::bare("query", "http://jabber.org/protocol/disco#info");
                let id =
                    conn.send_stanza(now, Stanza::iq(IqType::Get, Some(&target), "disco1", query))?;
                self.pending_iq = Some((id, now));
            }
            Command::Ping => {
                let target: Jid = conn.jid().ok_or("not bound")?.domain().parse()?;
                let ping = Element::bare("ping", "urn:xmpp:ping");
                let id =
                    conn.send_stanza(now, Stanza::iq(IqType::Get, Some(&target), "ping1", ping))?;
                self.pending_iq = Some((id, now));
            }
            Command::Roster { add } => {
                for (i, jid) in add.iter().enumerate() {
                    let mut query = Element::bare("query", NS_ROSTER);
                    query.append_child(
                        Element::builder("item", NS_ROSTER)
                            .attr(nc("jid"), jid.as_str())
                            .build(),
                    );
                    let id = conn.send_stanza(
                        now,
                        Stanza::iq(IqType::Set, None, &format!("add{i}"), query),
                    )?;
                    self.pending_sets.push(id);
                }
                let query = Element::bare("query", NS_ROSTER);
                let id = conn.send_stanza(now, Stanza::iq(IqType::Get, None, "roster1", query))?;
                self.pending_iq = Some((id, now));
            }
            Command::ResumeCheck { to, count, prefix } => {
                if conn.resumption_id().is_none() {
                    return Err("the server did not enable resumable stream management".into());
                }
                for i in 1..=*count {
                    conn.send_stanza(now, Stanza::chat(to, &format!("{prefix} {i}")))?;
                }
                self.drop_now = true;
            }
        }
        Ok(())
    }

    /// The stream-management session was resumed on a new connection.
    fn resumed(&mut self, conn: &mut ClientConnection, now: Instant) -> Result<(), BoxError> {
        self.resumed = true;
        if let Command::ResumeCheck { to, count, prefix } = &self.command {
            for i in count + 1..=2 * count {
                conn.send_stanza(now, Stanza::chat(to, &format!("{prefix} {i}")))?;
            }
            self.done = true;
        }
        Ok(())
    }

    fn stanza(
        &mut self,
        conn: &mut ClientConnection,
        stanza: &Stanza,
        now: Instant,
    ) -> Result<(), BoxError> {
        if let Some(pos) = self
            .pending_sets
            .iter()
            .position(|id| stanza.id() == Some(id.as_str()))
        {
            self.pending_sets.remove(pos);
            if let Some(error) = stanza.error() {
                return Err(format!("roster set failed: {error}").into());
            }
            return Ok(());
        }
        // A roster push (RFC 6121 §2.1.6) from our own account: acknowledge.
        let own = match stanza.from_jid() {
            None => true,
            Some(Ok(from)) => conn.jid().is_some_and(|j| from == j.to_bare()),
            Some(Err(_)) => false,
        };
        if own
            && stanza.iq_type() == Some(Ok(IqType::Set))
            && stanza
                .iq_payload()
                .is_some_and(|p| p.is("query", NS_ROSTER))
        {
            if let Some(reply) = stanza.iq_result(None) {
                conn.send_stanza(now, reply)?;
            }
            return Ok(());
        }
        if let Some((id, sent)) = &self.pending_iq
            && stanza.id() == Some(id.as_str())
        {
            if let Some(error) = stanza.error() {
                return Err(format!("query failed: {error}").into());
            }
            match self.command {
                Command::Disco { .. } => print_disco(stanza),
                Command::Ping => println!(
                    "pong from {} in {:?}",
                    stanza.from().unwrap_or("server"),
                    now - *sent
                ),
                Command::Roster { .. } => print_roster(stanza),
                _ => {}
            }
            self.done = true;
            return Ok(());
        }
        if let Command::Listen { count } = self.command {
            if stanza
                .message_type()
                .is_some_and(|t| t != MessageType::Error)
            {
                let body = stanza
                    .element()
                    .get_child("body", "jabber:client")
                    .map(Element::text);
                if let Some(body) = body {
                    println!("{}: {body}", stanza.from().unwrap_or("?"));
                    // XEP-0203: stored and delivered later (offline storage).
                    if let Some(Ok(delay)) = Delay::of(stanza) {
                        let from = delay.from.as_ref().map_or("?", |j| j.as_str());
                        eprintln!("-- delayed: from {from} stamp {}", delay.stamp);
                    }
                    self.received += 1;
                    if count.is_some_and(|c| self.received >= c) {
                        self.done = true;
                    }
                    return Ok(());
                }
            }
            let mut out = BytesMut::new();
            self.writer.write_element(stanza.element(), &mut out)?;
            eprintln!("<- {}", String::from_utf8_lossy(&out));
        }
        Ok(())
    }
}

fn print_roster(stanza: &Stanza) {
    let Some(query) = stanza.element().get_child("query", NS_ROSTER) else {
        println!("(no roster payload)");
        return;
    };
    let mut empty = true;
    for item in query.children().filter(|c| c.is("item", NS_ROSTER)) {
        empty = false;
        let mut line = format!(
            "item {} subscription={}",
            item.attr("jid").unwrap_or("?"),
            item.attr("subscription").unwrap_or("none")
        );
        if let Some(ask) = item.attr("ask") {
            line.push_str(&format!(" ask={ask}"));
        }
        if let Some(name) = item.attr("name") {
            line.push_str(&format!(" name={name}"));
        }
        println!("{line}");
    }
    if empty {
        println!("(empty roster)");
    }
}

/// An attribute name (a literal, so always a valid NCName).
fn nc(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("literal NCName")
}

fn print_disco(stanza: &Stanza) {
    let Some(query) = stanza
        .element()
        .get_child("query", "http://jabber.org/protocol/disco#info")
    else {
        println!("(no disco#info payload)");
        return;
    };
    for child in query.children() {
        match child.name() {
            "identity" => println!(
                "identity category={} type={} name={}",
                child.attr("category").unwrap_or(""),
                child.attr("type").unwrap_or(""),
                child.attr("name").unwrap_or("")
            ),
            "feature" => println!("feature {}", child.attr("var").unwrap_or("")),
            _ => {}
        }
    }
}

fn tls_connector(args: &Args) -> Result<tokio_rustls::TlsConnector, BoxError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?;
    let config = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCert::new()))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &args.ca {
            Some(path) => {
                for cert in common::load_certs(path)? {
                    roots.add(cert)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn connect(args: &Args) -> Result<TcpStream, BoxError> {
    let domain = args.jid.domain().to_owned();
    let host = args.host.clone().unwrap_or_else(|| domain.clone());
    let addrs: Vec<_> = (host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    // Try every address in order (`localhost` may resolve to ::1 first while
    // the server listens on 127.0.0.1 only).
    let mut last_error = format!("no address for {host}");
    let mut connected = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                connected = Some(tcp);
                break;
            }
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    let tcp = connected.ok_or(last_error)?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// How a connection ended.
enum Ended {
    /// The stream closed (cleanly or not): the reason.
    Closed(CloseReason),
    /// The app dropped the connection on purpose (resume-check).
    Dropped,
}

async fn run(args: Args) -> Result<(), BoxError> {
    let domain = args.jid.domain().to_owned();
    let connector = tls_connector(&args)?;
    let mut config = ClientConfig::new(args.jid.clone(), args.password.clone());
    config.resource = args.resource.clone();
    let mut app = App {
        command: args.command.clone(),
        received: 0,
        pending_iq: None,
        pending_sets: Vec::new(),
        done: false,
        writer: StreamWriter::default(),
        drop_now: false,
        acknowledged: 0,
        unacknowledged: 0,
        resumed: false,
    };
    let mut resumption = None;
    loop {
        let mut transport = Transport::Plain(connect(&args).await?);
        let mut config = config.clone();
        if args.direct_tls {
            let (t, info) =
                common::client_tls_upgrade(transport, Vec::new(), &connector, &domain).await?;
            transport = t;
            config.tls = TlsMode::Direct(info);
        }
        let conn = match resumption.take() {
            Some(r) => ClientConnection::resume(config, r, common::os_rng()?, Instant::now()),
            None => ClientConnection::new(config, common::os_rng()?, Instant::now()),
        };
        let (mut conn, ended) =
            drive(&args, &connector, &domain, conn, transport, &mut app).await?;
        match ended {
            Ended::Dropped => {
                // The connection is gone; the session is not (XEP-0198).
                conn.handle_input(Instant::now(), Input::Eof)?;
                while let Some(output) = conn.poll_output() {
                    if let Output::Event(ClientEvent::Unacknowledged(lost)) = output {
                        app.unacknowledged += lost.len();
                    }
                }
                resumption = Some(
                    conn.take_resumption()
                        .ok_or("the dropped session is not resumable")?,
                );
                app.drop_now = false;
                eprintln!("connection dropped; resuming");
            }
            Ended::Closed(CloseReason::Closed) if app.done => break,
            Ended::Closed(reason) => return Err(reason.to_string().into()),
        }
    }
    if let Command::ResumeCheck { count, .. } = app.command {
        if !app.resumed {
            return Err("the session was not resumed".into());
        }
        if app.unacknowledged > 0 || app.acknowledged != 2 * count {
            return Err(format!(
                "{} of {} messages acknowledged, {} unacknowledged",
                app.acknowledged,
                2 * count,
                app.unacknowledged
            )
            .into());
        }
        println!("resumed; all {} messages acknowledged", 2 * count);
    }
    Ok(())
}

/// Runs one connection until it ends or the app drops it.
async fn drive(
    args: &Args,
    connector: &tokio_rustls::TlsConnector,
    domain: &str,
    mut conn: ClientConnection,
    mut transport: Transport,
    app: &mut App,
) -> Result<(ClientConnection, Ended), BoxError> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut closing = false;
    loop {
        while let Some(output) = conn.poll_output() {
            match output {
                Output::Transmit(bytes) => {
                    if args.verbose {
                        eprintln!("-> {}", String::from_utf8_lossy(&bytes));
                    }
                    transport.write_all(&bytes).await?;
                }
                Output::Event(ClientEvent::StartTls { buffered }) => {
                    transport.flush().await?;
                    let t = std::mem::replace(&mut transport, Transport::Upgrading);
                    let (t, info) =
                        common::client_tls_upgrade(t, buffered.to_vec(), connector, domain).await?;
                    transport = t;
                    if args.verbose {
                        eprintln!("-- TLS established ({:?})", info.version);
                    }
                    conn.handle_input(Instant::now(), Input::TlsEstablished(info))?;
                }
                Output::Event(ClientEvent::Online { jid }) => {
                    match conn.authentication() {
                        Some(auth) => eprintln!(
                            "online as {jid} ({}, channel binding: {})",
                            auth.mechanism.name(),
                            auth.channel_binding.map_or("none", |c| c.name())
                        ),
                        None => eprintln!("online as {jid}"),
                    }
                    app.online(&mut conn, Instant::now())?;
                }
                Output::Event(ClientEvent::Stanza(stanza)) => {
                    app.stanza(&mut conn, &stanza, Instant::now())?
                }
                Output::Event(ClientEvent::Resumed { jid }) => {
                    eprintln!("resumed as {jid}");
                    app.resumed(&mut conn, Instant::now())?;
                }
                Output::Event(ClientEvent::Acknowledged(stanzas)) => {
                    app.acknowledged += stanzas.len();
                    if args.verbose {
                        eprintln!("-- server acknowledged {} stanza(s)", stanzas.len());
                    }
                }
                Output::Event(ClientEvent::Unacknowledged(stanzas)) => {
                    app.unacknowledged += stanzas.len();
                    eprintln!(
                        "warning: {} stanza(s) were sent but never acknowledged",
                        stanzas.len()
                    );
                }
                Output::Event(ClientEvent::Closed(reason)) => {
                    let _ = transport.shutdown().await;
                    return Ok((conn, Ended::Closed(reason)));
                }
            }
        }
        transport.flush().await?;
        if app.drop_now {
            // No closing tag, no TLS close_notify: as if the network died.
            drop(transport);
            return Ok((conn, Ended::Dropped));
        }
        if app.done && !closing {
            closing = true;
            conn.close(Instant::now());
            continue;
        }
        let deadline = conn.poll_timeout();
        tokio::select! {
            read = transport.read(&mut buf) => {
                let n = read.map_err(|e| format!("connection failed: {e}"))?;
                let now = Instant::now();
                if n == 0 {
                    conn.handle_input(now, Input::Eof)?;
                } else {
                    if args.verbose {
                        eprintln!("<- {}", String::from_utf8_lossy(&buf[..n]));
                    }
                    conn.handle_input(now, Input::Received(&buf[..n]))?;
                }
            }
            _ = common::sleep_until(deadline) => conn.handle_timeout(Instant::now()),
        }
    }
}

mod insecure {
    //! A certificate verifier that accepts anything, for `--insecure`.
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub struct AcceptAnyCert(rustls::crypto::CryptoProvider);

    impl AcceptAnyCert {
        pub fn new() -> Self {
            AcceptAnyCert(rustls::crypto::ring::default_provider())
        }
    }

    impl ServerCertVerifier for AcceptAnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
