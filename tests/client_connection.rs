//! The client connection driven by scripted servers: the whole negotiation
//! with every chunking, and every failure path.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::client::{
    ClientConfig, ClientConnection, ClientEvent, ClientState, Phase, TlsMode,
};
use xmpp_sansio::error::{StanzaErrorCondition, StreamErrorCondition};
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{
    self, ChannelBinding, ChannelBindingType, CredentialLookup, SaslCondition, ScramHash,
    ServerSession, ServerStep, StoredCredentials, TlsInfo, TlsVersion, xml::SaslNonza,
};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::stream::{CloseReason, Input, Output, UsageError};
use xmpp_sansio::xml::{
    Frame, ReaderLimits, StreamHeader, StreamReader, StreamVersion, StreamWriter,
};

const PASSWORD: &str = "pencil";

fn tls13() -> TlsInfo {
    TlsInfo::encrypted(
        TlsVersion::Tls13,
        vec![ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            vec![42; 32],
        )],
    )
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new("juliet@example.com".parse().unwrap(), PASSWORD);
    c.resource = Some("balcony".into());
    c
}

/// Collects what the client hands out.
#[derive(Default, Debug)]
struct Drained {
    bytes: Vec<u8>,
    events: Vec<ClientEvent>,
}

fn drain(conn: &mut ClientConnection) -> Drained {
    let mut d = Drained::default();
    while let Some(out) = conn.poll_output() {
        match out {
            Output::Transmit(b) => d.bytes.extend_from_slice(&b),
            Output::Event(e) => d.events.push(e),
        }
    }
    d
}

/// A server written with the crate's own pieces, answering as a real one:
/// STARTTLS required, SCRAM (with channel binding after TLS), bind.
struct FakeServer {
    reader: StreamReader,
    writer: StreamWriter,
    tls: bool,
    authenticated: bool,
    sasl: Option<ServerSession>,
    rng: SeededRng,
    session_feature: Option<bool>,
    mechanisms: Vec<sasl::Mechanism>,
    /// Every byte the server sent, cut where TLS starts.
    plaintext: Vec<u8>,
    encrypted: Vec<u8>,
}

impl FakeServer {
    fn new() -> Self {
        FakeServer {
            reader: StreamReader::new(ReaderLimits::default()),
            writer: StreamWriter::default(),
            tls: false,
            authenticated: false,
            sasl: None,
            rng: SeededRng::from_u64(99),
            session_feature: Some(true),
            mechanisms: sasl::ServerConfig::new("example.com", b"k".to_vec()).mechanisms,
            plaintext: Vec::new(),
            encrypted: Vec::new(),
        }
    }

    fn sasl_config(&self) -> sasl::ServerConfig {
        let mut c = sasl::ServerConfig::new("example.com", b"secret".to_vec());
        c.mechanisms = self.mechanisms.clone();
        c
    }

    fn tls_info(&self) -> TlsInfo {
        if self.tls {
            tls13()
        } else {
            TlsInfo::plaintext()
        }
    }

    /// Handles client bytes; returns the reply bytes.
    fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.reader.feed(bytes);
        let mut out = BytesMut::new();
        while let Some(frame) = self.reader.next_frame().expect("client sends valid XML") {
            match frame {
                Frame::StreamOpen(h) => {
                    assert_eq!(h.to.as_deref(), Some("example.com"));
                    let header = StreamHeader {
                        from: Some("example.com".into()),
                        id: Some(self.rng.token(16)),
                        version: Some(StreamVersion::V1_0),
                        content_namespace: Some("jabber:client".into()),
                        ..StreamHeader::default()
                    };
                    self.writer.write_header(&header, &mut out);
                    let mut f = xmpp_sansio::stream::StreamFeatures::default();
                    if !self.tls {
                        f.starttls = Some(true);
                    } else if !self.authenticated {
                        f.sasl = Some(self.sasl_config().offered(&self.tls_info()));
                    } else {
                        f.bind = true;
                        f.session = self.session_feature;
                    }
                    self.writer
                        .write_element(&f.to_element(), &mut out)
                        .unwrap();
                }
                Frame::Element(el) if el.is("starttls", "urn:ietf:params:xml:ns:xmpp-tls") => {
                    let proceed = Element::bare("proceed", "urn:ietf:params:xml:ns:xmpp-tls");
                    self.writer.write_element(&proceed, &mut out).unwrap();
                    self.tls = true;
                    self.reader.take_unparsed();
                    self.plaintext.extend_from_slice(&out);
                    return out.to_vec();
                }
                Frame::Element(el) if el.ns() == "urn:ietf:params:xml:ns:xmpp-sasl" => {
                    let step = match SaslNonza::from_element(&el).unwrap() {
                        SaslNonza::Auth {
                            mechanism,
                            initial_response,
                        } => {
                            let offered = self.sasl_config().offered(&self.tls_info());
                            let (session, step) = ServerSession::start(
                                &self.sasl_config(),
                                &offered,
                                &mechanism,
                                initial_response.as_deref(),
                                &self.tls_info(),
                                &mut self.rng,
                            );
                            self.sasl = Some(session);
                            step
                        }
                        SaslNonza::Response(r) => self.sasl.as_mut().unwrap().step(&r),
                        other => panic!("unexpected {other:?}"),
                    };
                    let step = match step {
                        ServerStep::NeedCredentials {
                            username,
                            mechanism,
                            ..
                        } => {
                            assert_eq!(username, "juliet");
                            let hash = mechanism.scram_hash().unwrap_or(ScramHash::Sha256);
                            let creds =
                                StoredCredentials::derive(hash, PASSWORD, b"saltsalt", 4096)
                                    .unwrap();
                            self.sasl
                                .as_mut()
                                .unwrap()
                                .provide_credentials(CredentialLookup::Found(creds))
                        }
                        s => s,
                    };
                    let reply = match step {
                        ServerStep::Challenge(c) => SaslNonza::Challenge(c),
                        ServerStep::Success {
                            additional_data, ..
                        } => {
                            self.authenticated = true;
                            self.reader.reset();
                            SaslNonza::Success(additional_data)
                        }
                        ServerStep::Failure(e) => SaslNonza::failure(&e),
                        ServerStep::NeedCredentials { .. } => unreachable!(),
                    };
                    self.writer
                        .write_element(&reply.to_element(), &mut out)
                        .unwrap();
                }
                Frame::Element(el) if el.is("iq", "jabber:client") => {
                    let iq = Stanza::from_element(el, "jabber:client").unwrap();
                    let payload = iq.iq_payload().cloned();
                    let reply = match payload {
                        Some(b) if b.is("bind", "urn:ietf:params:xml:ns:xmpp-bind") => {
                            let res = b
                                .get_child("resource", "urn:ietf:params:xml:ns:xmpp-bind")
                                .map(|r| r.text())
                                .unwrap_or_else(|| "generated".into());
                            let mut jid = Element::bare("jid", "urn:ietf:params:xml:ns:xmpp-bind");
                            jid.append_text(format!("juliet@example.com/{res}"));
                            let mut bind =
                                Element::bare("bind", "urn:ietf:params:xml:ns:xmpp-bind");
                            bind.append_child(jid);
                            iq.iq_result(Some(bind)).unwrap()
                        }
                        _ => iq.iq_result(None).unwrap(),
                    };
                    self.writer
                        .write_element(reply.element(), &mut out)
                        .unwrap();
                }
                Frame::Element(el) => {
                    // Echo stanzas back, as if from a contact.
                    let mut s = Stanza::from_element(el, "jabber:client").unwrap();
                    s.set_from(Some("romeo@example.net/orchard"));
                    self.writer.write_element(s.element(), &mut out).unwrap();
                }
                Frame::StreamClose => self.writer.write_close(&mut out),
                Frame::Whitespace => {}
            }
        }
        if self.tls {
            self.encrypted.extend_from_slice(&out);
        } else {
            self.plaintext.extend_from_slice(&out);
        }
        out.to_vec()
    }
}

/// Runs a whole session against the fake server, conversing live.
/// Returns the client's events and the server's two byte segments.
fn live_session(server: &mut FakeServer, config: ClientConfig) -> Vec<ClientEvent> {
    let now = Instant::now();
    let mut client = ClientConnection::new(config, SeededRng::from_u64(1), now);
    let mut events = Vec::new();
    for _ in 0..20 {
        let d = drain(&mut client);
        let mut start_tls = false;
        for e in &d.events {
            if let ClientEvent::StartTls { buffered } = e {
                assert!(buffered.is_empty());
                start_tls = true;
            }
            if let ClientEvent::Online { jid } = e {
                assert_eq!(jid.as_str(), "juliet@example.com/balcony");
            }
        }
        let online = d
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Online { .. }));
        events.extend(d.events);
        let reply = server.receive(&d.bytes);
        if start_tls {
            client
                .handle_input(now, Input::TlsEstablished(tls13()))
                .unwrap();
            continue;
        }
        if online {
            let to = "romeo@example.net".parse().unwrap();
            client.send_stanza(now, Stanza::chat(&to, "hi")).unwrap();
            continue;
        }
        if reply.is_empty() {
            break;
        }
        client.handle_input(now, Input::Received(&reply)).unwrap();
    }
    events
}

#[test]
fn full_negotiation_against_a_live_fake_server() {
    let mut server = FakeServer::new();
    let events = live_session(&mut server, config());
    let names: Vec<&str> = events
        .iter()
        .map(|e| match e {
            ClientEvent::StartTls { .. } => "starttls",
            ClientEvent::Online { .. } => "online",
            ClientEvent::Stanza(_) => "stanza",
            ClientEvent::Resumed { .. } => "resumed",
            ClientEvent::Acknowledged(_) => "acknowledged",
            ClientEvent::Unacknowledged(_) => "unacknowledged",
            ClientEvent::Closed(_) => "closed",
        })
        .collect();
    assert_eq!(names, ["starttls", "online", "stanza"], "{events:?}");
    // SCRAM-SHA-512-PLUS with tls-exporter was chosen: the strongest offered.
    assert!(!server.encrypted.is_empty());
}

/// Replays the server's recorded bytes to a fresh client (same seed, so
/// same nonces), split at `cuts`, with `tls_garbage` after `<proceed/>`.
fn replay(
    plaintext: &[u8],
    encrypted: &[u8],
    cuts: &[usize],
    tls_garbage: &[u8],
) -> (Vec<u8>, Vec<ClientEvent>) {
    let now = Instant::now();
    let mut client = ClientConnection::new(config(), SeededRng::from_u64(1), now);
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut first = plaintext.to_vec();
    first.extend_from_slice(tls_garbage);
    let mut in_tls = false;
    for (segment_index, segment) in [first.as_slice(), encrypted].into_iter().enumerate() {
        let mut start = 0;
        let mut pieces = Vec::new();
        for &c in cuts {
            let c = c.min(segment.len());
            if c > start {
                pieces.push(&segment[start..c]);
                start = c;
            }
        }
        pieces.push(&segment[start..]);
        for piece in pieces {
            if segment_index == 0 && in_tls {
                // Everything after <proceed/> goes to TLS, not the client.
                continue;
            }
            client.handle_input(now, Input::Received(piece)).unwrap();
            let d = drain(&mut client);
            sent.extend(d.bytes);
            for e in d.events {
                if let ClientEvent::StartTls { buffered } = &e {
                    assert!(
                        tls_garbage.starts_with(buffered),
                        "buffered bytes are TLS bytes"
                    );
                    in_tls = true;
                }
                events.push(e);
            }
        }
        if segment_index == 0 {
            assert!(in_tls, "STARTTLS happened");
            client
                .handle_input(now, Input::TlsEstablished(tls13()))
                .unwrap();
            let d = drain(&mut client);
            sent.extend(d.bytes);
            events.extend(d.events);
        }
    }
    (sent, events)
}

/// The server's bytes of one live session (computed once: SCRAM is slow
/// in debug builds).
fn recorded() -> (Vec<u8>, Vec<u8>) {
    static RECORDED: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    RECORDED
        .get_or_init(|| {
            let mut server = FakeServer::new();
            live_session(&mut server, config());
            (server.plaintext, server.encrypted)
        })
        .clone()
}

#[test]
fn replay_byte_by_byte_equals_one_piece() {
    let (plain, enc) = recorded();
    let whole = replay(&plain, &enc, &[], b"");
    let every: Vec<usize> = (0..plain.len().max(enc.len())).collect();
    let bytes = replay(&plain, &enc, &every, b"");
    assert_eq!(whole.0, bytes.0);
    assert_eq!(whole.1, bytes.1);
    assert!(
        whole
            .1
            .iter()
            .any(|e| matches!(e, ClientEvent::Online { .. }))
    );
    assert!(matches!(whole.1.last(), Some(ClientEvent::Stanza(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Same bytes out and same events, however the server's bytes are
    /// split, and the bytes after <proceed/> are handed back untouched.
    #[test]
    fn every_chunking_gives_the_same_session(
        cuts in proptest::collection::vec(0usize..3000, 0..30),
        garbage in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (plain, enc) = recorded();
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let whole = replay(&plain, &enc, &[], b"");
        let split = replay(&plain, &enc, &cuts, &garbage);
        prop_assert_eq!(whole.0, split.0);
        prop_assert_eq!(whole.1.len(), split.1.len());
        for (a, b) in whole.1.iter().zip(&split.1) {
            match (a, b) {
                (ClientEvent::StartTls { .. }, ClientEvent::StartTls { .. }) => {}
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }

    /// Arbitrary server bytes at any stage never panic, and a closed client
    /// stays closed.
    #[test]
    fn arbitrary_server_bytes(stage in 0usize..4, junk in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (plain, enc) = recorded();
        let now = Instant::now();
        let mut client = ClientConnection::new(config(), SeededRng::from_u64(1), now);
        let header_end = plain.windows(17).position(|w| w == b"<stream:features>").unwrap_or(0);
        match stage {
            0 => {}
            1 => { client.handle_input(now, Input::Received(&plain[..header_end])).unwrap(); }
            _ => {
                client.handle_input(now, Input::Received(&plain)).unwrap();
                client.handle_input(now, Input::TlsEstablished(tls13())).unwrap();
                if stage == 3 {
                    client.handle_input(now, Input::Received(&enc)).unwrap();
                }
            }
        }
        client.handle_input(now, Input::Received(&junk)).unwrap();
        drain(&mut client);
        if let ClientState::Closed(_) = client.state() {
            client.handle_input(now, Input::Received(b"<presence/>")).unwrap();
            let d = drain(&mut client);
            prop_assert!(d.bytes.is_empty() && d.events.is_empty());
        }
    }
}

// ---- Scripted failure paths -------------------------------------------------

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s1' version='1.0'>";

/// A client that has sent its header, with `script` fed as server bytes.
fn scripted(config: ClientConfig, script: &str) -> (ClientConnection, Drained) {
    let now = Instant::now();
    let mut client = ClientConnection::new(config, SeededRng::from_u64(1), now);
    drain(&mut client);
    client
        .handle_input(now, Input::Received(script.as_bytes()))
        .unwrap();
    let d = drain(&mut client);
    (client, d)
}

fn closed_reason(d: &Drained) -> CloseReason {
    match d.events.last() {
        Some(ClientEvent::Closed(r)) => r.clone(),
        other => panic!("not closed: {other:?}"),
    }
}

/// The stream error the client sent, if any.
fn sent_stream_error(bytes: &[u8]) -> Option<StreamErrorCondition> {
    let mut r = StreamReader::new(ReaderLimits::default());
    r.feed(HEADER.as_bytes());
    r.feed(bytes);
    let mut found = None;
    while let Ok(Some(f)) = r.next_frame() {
        if let Frame::Element(e) = f
            && e.is("error", "http://etherx.jabber.org/streams")
        {
            found = Some(
                xmpp_sansio::error::StreamError::from_element(&e)
                    .unwrap()
                    .condition,
            );
        }
    }
    found
}

fn plaintext_config() -> ClientConfig {
    let mut c = config();
    c.tls = TlsMode::Plaintext;
    c.sasl.allow_plain_without_tls = true;
    c
}

#[test]
fn refuses_to_continue_without_starttls() {
    let (client, d) = scripted(
        config(),
        &format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        ),
    );
    assert!(matches!(closed_reason(&d), CloseReason::PolicyRefused(_)));
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(
        !sent.contains("<auth"),
        "no credentials on a plaintext stream"
    );
    assert!(sent.ends_with("</stream:stream>"));
    assert!(matches!(client.state(), ClientState::Closed(_)));
}

#[test]
fn starttls_failure() {
    let (_, d) = scripted(
        config(),
        &format!(
            "{HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\
            <failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        ),
    );
    assert_eq!(closed_reason(&d), CloseReason::TlsRefused);
}

#[test]
fn plaintext_only_plain_is_refused_by_default() {
    let mut c = config();
    c.tls = TlsMode::StartTlsOptional;
    let (_, d) = scripted(
        c,
        &format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        ),
    );
    match closed_reason(&d) {
        CloseReason::AuthenticationFailed { condition, .. } => {
            assert_eq!(condition, SaslCondition::EncryptionRequired)
        }
        other => panic!("{other:?}"),
    }
    assert!(!String::from_utf8(d.bytes).unwrap().contains("<auth"));
}

#[test]
fn sasl_failure_reports_the_condition_and_text() {
    let (_, d) = scripted(
        plaintext_config(),
        &format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
            <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Wrong password</text></failure>"
        ),
    );
    assert_eq!(
        closed_reason(&d),
        CloseReason::AuthenticationFailed {
            condition: SaslCondition::NotAuthorized,
            detail: "Wrong password".into()
        }
    );
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(sent.contains("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>"), "{sent}");
}

#[test]
fn no_mechanism_in_common() {
    let (_, d) = scripted(
        plaintext_config(),
        &format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>"
        ),
    );
    assert!(matches!(
        closed_reason(&d),
        CloseReason::AuthenticationFailed {
            condition: SaslCondition::InvalidMechanism,
            ..
        }
    ));
}

#[test]
fn server_that_cannot_prove_itself_is_rejected() {
    // A SCRAM server that answers with a wrong server signature.
    let mut c = plaintext_config();
    c.sasl.mechanisms = vec![sasl::Mechanism::ScramSha1];
    let now = Instant::now();
    let mut client = ClientConnection::new(c, SeededRng::from_u64(1), now);
    drain(&mut client);
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    let sent = String::from_utf8(d.bytes).unwrap();
    let b64 = sent
        .split("mechanism='SCRAM-SHA-1'>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let first = SaslNonza::from_element(
        &format!("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{b64}</response>")
            .parse()
            .unwrap(),
    )
    .unwrap();
    let SaslNonza::Response(first) = first else {
        panic!()
    };
    let first = String::from_utf8(first).unwrap();
    let cnonce = first.split("r=").nth(1).unwrap();
    let challenge = format!("r={cnonce}srv,s=QSXCR+Q6sek8bf92,i=4096");
    let chal = SaslNonza::Challenge(challenge.into_bytes()).to_element();
    let w = StreamWriter::default();
    let mut out = BytesMut::new();
    w.write_element(&chal, &mut out).unwrap();
    client.handle_input(now, Input::Received(&out)).unwrap();
    drain(&mut client);
    let mut out = BytesMut::new();
    let success = SaslNonza::Success(Some(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec())).to_element();
    w.write_element(&success, &mut out).unwrap();
    client.handle_input(now, Input::Received(&out)).unwrap();
    let d = drain(&mut client);
    assert!(
        matches!(closed_reason(&d), CloseReason::AuthenticationFailed { .. }),
        "{:?}",
        d.events
    );
    assert!(client.jid().is_none());
}

fn after_auth(script: &str) -> (ClientConnection, Drained) {
    // Drive a PLAIN login on a loopback plaintext stream to the bind step.
    let now = Instant::now();
    let mut client = ClientConnection::new(plaintext_config(), SeededRng::from_u64(1), now);
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
            <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    let sent = String::from_utf8(d.bytes).unwrap();
    assert_eq!(
        sent.matches("<stream:stream").count(),
        2,
        "restarted after success"
    );
    client
        .handle_input(now, Input::Received(script.as_bytes()))
        .unwrap();
    let d = drain(&mut client);
    (client, d)
}

fn bind_id(client_bytes: &str) -> String {
    client_bytes
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn success_and_restart_in_one_chunk_then_bind() {
    let now = Instant::now();
    let mut client = ClientConnection::new(plaintext_config(), SeededRng::from_u64(1), now);
    drain(&mut client);
    // success, the new header and features all in one read.
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
            <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}<stream:features>\
            <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(
        sent.contains(
            "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind>"
        ),
        "{sent}"
    );
    let id = bind_id(sent.split("<iq").nth(1).unwrap());
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>juliet@example.com/balcony</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert_eq!(d.events.len(), 1);
    assert!(
        matches!(&d.events[0], ClientEvent::Online { jid } if jid.as_str() == "juliet@example.com/balcony")
    );
}

fn bound_client(features: &str) -> (ClientConnection, String) {
    let (client, d) = after_auth(&format!(
        "{HEADER}<stream:features>{features}</stream:features>"
    ));
    let sent = String::from_utf8(d.bytes).unwrap();
    (client, sent)
}

#[test]
fn bind_conflict_is_reported() {
    let (mut client, sent) = bound_client("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    let id = bind_id(&sent);
    client
        .handle_input(
            Instant::now(),
            Input::Received(
                format!(
                    "<iq type='error' id='{id}'><error type='cancel'>\
            <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    match closed_reason(&d) {
        CloseReason::BindFailed(e) => assert_eq!(e.condition, StanzaErrorCondition::Conflict),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bind_result_for_another_account_is_refused() {
    let (mut client, sent) = bound_client("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    let id = bind_id(&sent);
    client
        .handle_input(
            Instant::now(),
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>mallory@evil.example/x</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(matches!(
        closed_reason(&d),
        CloseReason::ProtocolViolation(_)
    ));
    assert_eq!(
        sent_stream_error(&d.bytes),
        Some(StreamErrorCondition::BadFormat)
    );
}

#[test]
fn mandatory_legacy_session_is_established() {
    let (mut client, sent) = bound_client(
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>",
    );
    let now = Instant::now();
    let id = bind_id(&sent);
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>juliet@example.com/balcony</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(d.events.is_empty());
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(
        sent.contains("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"),
        "{sent}"
    );
    assert_eq!(client.state(), &ClientState::Negotiating(Phase::Session));
    let id = bind_id(&sent);
    client
        .handle_input(
            now,
            Input::Received(format!("<iq type='result' id='{id}'/>").as_bytes()),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(matches!(&d.events[..], [ClientEvent::Online { .. }]));
}

#[test]
fn optional_legacy_session_is_skipped() {
    let (mut client, sent) = bound_client(
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>",
    );
    let id = bind_id(&sent);
    client
        .handle_input(
            Instant::now(),
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>juliet@example.com/balcony</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(matches!(&d.events[..], [ClientEvent::Online { .. }]));
}

fn online_client() -> (ClientConnection, Instant) {
    let (mut client, sent) = bound_client("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    let id = bind_id(&sent);
    let now = Instant::now();
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>juliet@example.com/balcony</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    drain(&mut client);
    (client, now)
}

#[test]
fn stanzas_both_ways_and_ids_generated() {
    let (mut client, now) = online_client();
    let id = client
        .send_stanza(
            now,
            Stanza::chat(&"romeo@example.net".parse().unwrap(), "<3 & kisses"),
        )
        .unwrap();
    let d = drain(&mut client);
    assert_eq!(
        String::from_utf8(d.bytes).unwrap(),
        format!(
            "<message id='{id}' to='romeo@example.net' type='chat'><body>&lt;3 &amp; kisses</body></message>"
        )
    );
    client
        .handle_input(
            now,
            Input::Received(
                b"<message from='romeo@example.net/orchard' type='chat'><body>hi</body></message>",
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    let [ClientEvent::Stanza(s)] = &d.events[..] else {
        panic!("{:?}", d.events)
    };
    assert_eq!(s.from(), Some("romeo@example.net/orchard"));
}

#[test]
fn server_ping_is_answered_automatically() {
    let (mut client, now) = online_client();
    client
        .handle_input(
            now,
            Input::Received(
                b"<iq from='example.com' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(d.events.is_empty());
    assert_eq!(
        String::from_utf8(d.bytes).unwrap(),
        "<iq id='p1' to='example.com' type='result'/>"
    );
}

#[test]
fn unknown_first_level_element_after_bind() {
    let (mut client, now) = online_client();
    client
        .handle_input(now, Input::Received(b"<foo xmlns='urn:x'/>"))
        .unwrap();
    let d = drain(&mut client);
    assert_eq!(
        sent_stream_error(&d.bytes),
        Some(StreamErrorCondition::UnsupportedStanzaType)
    );
    assert!(matches!(
        closed_reason(&d),
        CloseReason::ProtocolViolation(_)
    ));
}

#[test]
fn stream_error_from_the_server() {
    let (mut client, now) = online_client();
    client
        .handle_input(now, Input::Received(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error></stream:stream>"))
        .unwrap();
    let d = drain(&mut client);
    match closed_reason(&d) {
        CloseReason::PeerStreamError(e) => {
            assert_eq!(e.condition, StreamErrorCondition::Conflict);
            assert_eq!(e.text.unwrap().text, "Replaced by new connection");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(String::from_utf8(d.bytes).unwrap(), "</stream:stream>");
    // Sticky: closed stays closed, and sending is refused.
    assert_eq!(
        client.send_stanza(now, Stanza::chat(&"a@b".parse().unwrap(), "x")),
        Err(UsageError::Closed)
    );
    client
        .handle_input(now, Input::Received(b"<message/>"))
        .unwrap();
    assert!(client.poll_output().is_none());
}

#[test]
fn malformed_xml_from_the_server() {
    let (mut client, now) = online_client();
    client
        .handle_input(now, Input::Received(b"<message><!-- x --></message>"))
        .unwrap();
    let d = drain(&mut client);
    assert_eq!(
        sent_stream_error(&d.bytes),
        Some(StreamErrorCondition::RestrictedXml)
    );
    assert!(
        matches!(closed_reason(&d), CloseReason::ProtocolViolation(e) if e.condition == StreamErrorCondition::RestrictedXml)
    );
}

#[test]
fn bad_server_headers() {
    for (header, condition) in [
        (
            "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            StreamErrorCondition::InvalidNamespace,
        ),
        (
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            StreamErrorCondition::UnsupportedVersion,
        ),
        (
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>",
            StreamErrorCondition::UnsupportedVersion,
        ),
        (
            "<stream xmlns='jabber:client' version='1.0'>",
            StreamErrorCondition::BadNamespacePrefix,
        ),
    ] {
        let (_, d) = scripted(config(), header);
        assert_eq!(sent_stream_error(&d.bytes), Some(condition), "{header}");
        assert!(matches!(
            closed_reason(&d),
            CloseReason::ProtocolViolation(_)
        ));
    }
}

#[test]
fn unexpected_element_while_negotiating() {
    let (_, d) = scripted(
        config(),
        &format!("{HEADER}<message><body>too early</body></message>"),
    );
    assert_eq!(
        sent_stream_error(&d.bytes),
        Some(StreamErrorCondition::BadFormat)
    );
}

#[test]
fn negotiation_timeout() {
    let now = Instant::now();
    let mut client = ClientConnection::new(config(), SeededRng::from_u64(1), now);
    drain(&mut client);
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(60));
    client.handle_timeout(deadline - Duration::from_millis(1));
    assert!(drain(&mut client).events.is_empty());
    client.handle_timeout(deadline);
    let d = drain(&mut client);
    assert_eq!(closed_reason(&d), CloseReason::NegotiationTimeout);
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn dead_peer_is_probed_then_dropped() {
    let (mut client, now) = online_client();
    let dead = Duration::from_secs(300);
    assert_eq!(client.poll_timeout(), Some(now + dead));
    client.handle_timeout(now + dead);
    let d = drain(&mut client);
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(sent.contains("<ping xmlns='urn:xmpp:ping'/>"), "{sent}");
    // The answer keeps the session alive and is not surfaced.
    let id = bind_id(&sent);
    let t1 = now + dead + Duration::from_secs(1);
    client
        .handle_input(
            t1,
            Input::Received(format!("<iq type='result' id='{id}' from='example.com'/>").as_bytes()),
        )
        .unwrap();
    assert!(drain(&mut client).events.is_empty());
    assert_eq!(client.poll_timeout(), Some(t1 + dead));
    // Silence after the next probe ends it.
    client.handle_timeout(t1 + dead);
    drain(&mut client);
    client.handle_timeout(t1 + dead + dead);
    let d = drain(&mut client);
    assert_eq!(closed_reason(&d), CloseReason::PeerTimeout);
}

#[test]
fn whitespace_keepalive() {
    let mut c = plaintext_config();
    c.timeouts.keepalive = Some(Duration::from_secs(30));
    c.timeouts.dead_peer = None;
    let now = Instant::now();
    let mut client = ClientConnection::new(c, SeededRng::from_u64(1), now);
    client
        .handle_input(now, Input::Received(format!("{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
            {HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>").as_bytes()))
        .unwrap();
    let sent = String::from_utf8(drain(&mut client).bytes).unwrap();
    let id = bind_id(sent.split("<iq").nth(1).unwrap());
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
            <jid>juliet@example.com/balcony</jid></bind></iq>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    drain(&mut client);
    let t = client.poll_timeout().unwrap();
    assert_eq!(t, now + Duration::from_secs(30));
    client.handle_timeout(t);
    assert_eq!(drain(&mut client).bytes, b" ");
    assert_eq!(client.poll_timeout(), Some(t + Duration::from_secs(30)));
}

#[test]
fn clean_close_both_ways() {
    let (mut client, now) = online_client();
    client.close(now);
    assert_eq!(drain(&mut client).bytes, b"</stream:stream>");
    assert_eq!(client.state(), &ClientState::Closing);
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(5)));
    // Stanzas in flight are still delivered.
    client
        .handle_input(
            now,
            Input::Received(b"<message><body>late</body></message></stream:stream>"),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(matches!(
        &d.events[..],
        [
            ClientEvent::Stanza(_),
            ClientEvent::Closed(CloseReason::Closed)
        ]
    ));
    assert!(d.bytes.is_empty(), "nothing after our close tag");

    let (mut client, now) = online_client();
    client.close(now);
    drain(&mut client);
    client.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(
        closed_reason(&drain(&mut client)),
        CloseReason::CloseTimedOut
    );

    // The server closes first: we answer with our close tag.
    let (mut client, now) = online_client();
    client
        .handle_input(now, Input::Received(b"</stream:stream>"))
        .unwrap();
    let d = drain(&mut client);
    assert_eq!(d.bytes, b"</stream:stream>");
    assert_eq!(closed_reason(&d), CloseReason::Closed);
}

#[test]
fn eof_mid_stanza_is_an_abrupt_close() {
    let (mut client, now) = online_client();
    client
        .handle_input(now, Input::Received(b"<message><bo"))
        .unwrap();
    client.handle_input(now, Input::Eof).unwrap();
    let d = drain(&mut client);
    assert_eq!(closed_reason(&d), CloseReason::Eof);
    assert!(d.bytes.is_empty());
}

#[test]
fn usage_errors() {
    let now = Instant::now();
    let mut client = ClientConnection::new(config(), SeededRng::from_u64(1), now);
    assert_eq!(
        client.send_stanza(now, Stanza::chat(&"a@b".parse().unwrap(), "x")),
        Err(UsageError::NotReady)
    );
    assert_eq!(
        client.handle_input(now, Input::TlsEstablished(tls13())),
        Err(UsageError::UnexpectedTls)
    );
    let (mut client, now) = online_client();
    let mut bad = Stanza::chat(&"a@b".parse().unwrap(), "x");
    bad.element_mut().append_text("\u{1}");
    assert!(matches!(
        client.send_stanza(now, bad),
        Err(UsageError::Unwritable(_))
    ));
    assert!(drain(&mut client).bytes.is_empty(), "nothing half-written");
}

#[test]
fn unwritable_configured_resource_ends_the_connection() {
    let mut c = plaintext_config();
    c.resource = Some("bad\u{1}resource".into());
    let now = Instant::now();
    let mut client = ClientConnection::new(c, SeededRng::from_u64(1), now);
    client
        .handle_input(
            now,
            Input::Received(
                format!(
                    "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                     <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
                     <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}<stream:features>\
                     <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
                )
                .as_bytes(),
            ),
        )
        .unwrap();
    let d = drain(&mut client);
    assert!(matches!(closed_reason(&d), CloseReason::PolicyRefused(_)));
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(!sent.contains("<iq"), "nothing half-written: {sent}");
    assert!(sent.ends_with("</stream:stream>"));
    assert!(matches!(
        client.state(),
        ClientState::Closed(CloseReason::PolicyRefused(_))
    ));
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn direct_tls_skips_starttls() {
    let mut c = config();
    c.tls = TlsMode::Direct(tls13());
    let (_, d) = scripted(
        c,
        &format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>\
            <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding>\
            </stream:features>"
        ),
    );
    let sent = String::from_utf8(d.bytes).unwrap();
    assert!(sent.contains("mechanism='SCRAM-SHA-256-PLUS'"), "{sent}");
    assert!(!sent.contains("starttls"));
}
