//! The server role of a c2s stream (`xmpp_sansio::server`): full sessions
//! under every chunking, every negotiation failure path, timeouts, closing,
//! usage errors, and many concurrent sessions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use minidom::Element;
use proptest::prelude::*;
use xmpp_sansio::error::{StanzaErrorCondition, StreamError, StreamErrorCondition};
use xmpp_sansio::jid::FullJid;
use xmpp_sansio::ns;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::xml::{SaslNonza, encode_payload};
use xmpp_sansio::sasl::{
    ClientConfig, ClientSession, CredentialLookup, Identity, Mechanism, SaslCondition,
    SaslFeatures, ScramHash, StoredCredentials, TlsInfo, TlsVersion,
};
use xmpp_sansio::server::{
    Answer, BindAnswer, DetachedSession, NegotiationStage, Request, RequestId, ServerConfig,
    ServerConnection, ServerEvent, ServerState,
};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::stream::{CloseReason, Input, Negotiated, Output, Policy, UsageError};
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader, XmlError};

const DOMAIN: &str = "example.org";
const USER: &str = "juliet";
const PASSWORD: &str = "r0m30myr0m30";
const ITERATIONS: u32 = 64;

fn header_to(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0' xml:lang='en'>"
    )
}

fn header() -> String {
    header_to(DOMAIN)
}

const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const CLOSE: &str = "</stream:stream>";

fn creds() -> StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| {
        StoredCredentials::derive(ScramHash::Sha256, PASSWORD, b"0123456789abcdef", ITERATIONS)
            .unwrap()
    })
    .clone()
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(DOMAIN, vec![7u8; 32]);
    c.sasl.unknown_user_iterations = ITERATIONS;
    c
}

fn tls() -> TlsInfo {
    TlsInfo::encrypted(TlsVersion::Tls13, Vec::new())
}

fn plain_auth(user: &str, password: &str) -> String {
    let payload = format!("\0{user}\0{password}");
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        encode_payload(payload.as_bytes())
    )
}

fn bind_iq(id: &str, resource: Option<&str>) -> String {
    match resource {
        Some(r) => format!(
            "<iq type='set' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{r}</resource></bind></iq>"
        ),
        None => format!(
            "<iq type='set' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        ),
    }
}

/// Parses what the server sent, restarting where the stream restarts.
struct OutParser {
    reader: StreamReader,
    frames: Vec<Frame>,
    error: Option<XmlError>,
}

impl OutParser {
    fn new() -> Self {
        OutParser {
            reader: StreamReader::new(ReaderLimits::default()),
            frames: Vec::new(),
            error: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.reader.feed(bytes);
        loop {
            match self.reader.next_frame() {
                Ok(Some(frame)) => {
                    let proceed =
                        matches!(&frame, Frame::Element(e) if e.is("proceed", ns::XMPP_TLS));
                    let success =
                        matches!(&frame, Frame::Element(e) if e.is("success", ns::XMPP_SASL));
                    self.frames.push(frame);
                    if proceed {
                        let rest = self.reader.take_unparsed();
                        self.reader.feed(&rest);
                    }
                    if success {
                        self.reader.reset();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
        }
    }
}

/// (id, condition, to, from) of an error reply.
type ErrorReply = (
    Option<String>,
    StanzaErrorCondition,
    Option<String>,
    Option<String>,
);

type BindPolicy = Box<dyn FnMut(&str, Option<&str>) -> BindAnswer>;

/// A host: drives a connection, answers requests, plays the TLS layer
/// (identity), records events and parses the output.
struct Host {
    conn: ServerConnection,
    now: Instant,
    events: Vec<ServerEvent>,
    out: Vec<u8>,
    parser: OutParser,
    auto_answer: bool,
    bind: BindPolicy,
    /// The answer to a resume request.
    detached: Option<Box<DetachedSession>>,
}

impl Host {
    fn with(config: ServerConfig, tls_info: TlsInfo) -> Self {
        let now = Instant::now();
        Host {
            conn: ServerConnection::new(Arc::new(config), tls_info, SeededRng::from_u64(42), now),
            now,
            events: Vec::new(),
            out: Vec::new(),
            parser: OutParser::new(),
            auto_answer: true,
            bind: Box::new(|_, r| BindAnswer::Bound {
                resource: r.unwrap_or("generated").to_owned(),
            }),
            detached: None,
        }
    }

    fn new() -> Self {
        Host::with(config(), TlsInfo::plaintext())
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.conn
            .handle_input(self.now, Input::Received(bytes))
            .unwrap();
        self.drain();
    }

    fn send(&mut self, s: &str) {
        self.feed(s.as_bytes());
    }

    fn drain(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            match out {
                Output::Transmit(b) => {
                    self.out.extend_from_slice(&b);
                    self.parser.feed(&b);
                }
                Output::Event(ServerEvent::StartTls { buffered }) => {
                    self.events.push(ServerEvent::StartTls {
                        buffered: Bytes::new(),
                    });
                    self.conn
                        .handle_input(self.now, Input::TlsEstablished(tls()))
                        .unwrap();
                    // The identity TLS layer: what was buffered is the
                    // "decrypted" start of the new stream.
                    self.conn
                        .handle_input(self.now, Input::Received(&buffered))
                        .unwrap();
                }
                Output::Event(ServerEvent::Request { id, request }) => {
                    self.events.push(ServerEvent::Request {
                        id,
                        request: request.clone(),
                    });
                    if self.auto_answer {
                        let answer = match &request {
                            Request::Credentials { username, .. } => {
                                Answer::Credentials(if username == USER || username == "romeo" {
                                    CredentialLookup::Found(creds())
                                } else {
                                    CredentialLookup::NotFound
                                })
                            }
                            Request::Bind {
                                username,
                                requested,
                            } => Answer::Bind((self.bind)(username, requested.as_deref())),
                            Request::Resume { .. } => Answer::Resume(self.detached.take()),
                        };
                        self.conn.answer(self.now, id, answer).unwrap();
                    }
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.handle_timeout(self.now);
        self.drain();
    }

    fn names(&self) -> Vec<String> {
        names(&self.parser.frames)
    }

    fn closed_reason(&self) -> Option<CloseReason> {
        self.events.iter().find_map(|e| match e {
            ServerEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// The stream error condition the server sent, if any.
    fn stream_error(&self) -> Option<StreamErrorCondition> {
        self.parser.frames.iter().find_map(|f| match f {
            Frame::Element(e) if e.is("error", ns::STREAMS) => {
                Some(StreamError::from_element(e).unwrap().condition)
            }
            _ => None,
        })
    }

    fn last_element(&self) -> Element {
        self.parser
            .frames
            .iter()
            .rev()
            .find_map(|f| match f {
                Frame::Element(e) => Some(e.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn stanzas(&self) -> Vec<Stanza> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Stanza(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Runs the client side up to the authenticated restart (features with
    /// `<bind/>` received), with PLAIN over STARTTLS.
    fn authenticated() -> Self {
        let mut h = Host::new();
        h.send(&header());
        h.send(STARTTLS);
        h.send(&header());
        h.send(&plain_auth(USER, PASSWORD));
        h.send(&header());
        assert!(h.parser.error.is_none());
        assert_eq!(
            h.conn.state(),
            &ServerState::Negotiating {
                stage: NegotiationStage::Binding,
                negotiated: Negotiated {
                    tls: true,
                    authenticated: true,
                    bound: false
                }
            }
        );
        h
    }

    fn bound() -> Self {
        let mut h = Host::authenticated();
        h.send(&bind_iq("b1", Some("balcony")));
        assert_eq!(h.conn.state(), &ServerState::Ready);
        h
    }
}

fn names(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Frame::StreamOpen(_) => "open".to_owned(),
            Frame::Element(e) => e.name().to_owned(),
            Frame::Whitespace => " ".to_owned(),
            Frame::StreamClose => "close".to_owned(),
        })
        .collect()
}

fn juliet() -> FullJid {
    "juliet@example.org/balcony".parse().unwrap()
}

fn assert_violation(h: &Host, condition: StreamErrorCondition) {
    assert_eq!(h.stream_error(), Some(condition), "{:?}", h.names());
    match h.closed_reason() {
        Some(CloseReason::ProtocolViolation(e)) => assert_eq!(e.condition, condition),
        other => panic!("expected protocol violation, got {other:?}"),
    }
    assert!(matches!(h.conn.state(), ServerState::Closed(_)));
    assert_eq!(h.names().last().map(String::as_str), Some("close"));
    assert!(h.parser.error.is_none());
}

// ----------------------------------------------------------------------
// The full session, scripted once with a real SCRAM client, then replayed
// under every chunking.
// ----------------------------------------------------------------------

/// The client's whole byte stream for a SCRAM-SHA-256 session over
/// STARTTLS, computed interactively once (the server is deterministic).
fn scripted_client() -> &'static Vec<u8> {
    static SCRIPT: OnceLock<Vec<u8>> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        let mut h = Host::new();
        let mut script = Vec::new();
        let mut send = |h: &mut Host, s: &[u8]| {
            script.extend_from_slice(s);
            h.feed(s);
        };
        send(&mut h, header().as_bytes());
        send(&mut h, STARTTLS.as_bytes());
        send(&mut h, header().as_bytes());
        let Some(Frame::Element(features)) = h.parser.frames.last().cloned() else {
            panic!("no features");
        };
        let offered = SaslFeatures::from_stream_features(&features).unwrap().unwrap();
        let mut cc = ClientConfig::new(USER, PASSWORD);
        cc.mechanisms = vec![Mechanism::ScramSha256];
        cc.min_iterations = 1;
        let (mut client, initial) =
            ClientSession::start_with_nonce(&cc, &offered, &tls(), "fyko+d2lbbFgONRv9qkxdawL")
                .unwrap();
        let auth = SaslNonza::Auth {
            mechanism: "SCRAM-SHA-256".into(),
            initial_response: Some(initial),
        };
        send(&mut h, &element_bytes(&auth.to_element()));
        let challenge = match SaslNonza::from_element(&h.last_element()).unwrap() {
            SaslNonza::Challenge(c) => c,
            other => panic!("{other:?}"),
        };
        let response = client.step(&challenge).unwrap();
        send(&mut h, &element_bytes(&SaslNonza::Response(response).to_element()));
        match SaslNonza::from_element(&h.last_element()).unwrap() {
            SaslNonza::Success(data) => {
                client.finish(data.as_deref()).unwrap();
            }
            other => panic!("{other:?}"),
        }
        send(&mut h, header().as_bytes());
        send(&mut h, bind_iq("b1", Some("balcony")).as_bytes());
        send(
            &mut h,
            b"<message to='romeo@example.net' type='chat' id='m1'><body>Art thou not Romeo?</body></message>\
              <presence/>",
        );
        send(&mut h, CLOSE.as_bytes());
        assert_eq!(h.closed_reason(), Some(CloseReason::Closed));
        script
    })
}

fn element_bytes(el: &Element) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    xmpp_sansio::xml::StreamWriter::default()
        .write_element(el, &mut out)
        .unwrap();
    out.to_vec()
}

/// Replays the script split at `cuts`; returns events and output bytes.
fn replay(cuts: &[usize]) -> Host {
    let script = scripted_client();
    let mut h = Host::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (script.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts.into_iter().chain([script.len()]) {
        if c > start {
            h.feed(&script[start..c]);
            start = c;
        }
    }
    h
}

fn expected_session_events() -> Vec<ServerEvent> {
    let mut message: Stanza = Stanza::from_element(
        "<message xmlns='jabber:client' to='romeo@example.net' type='chat' id='m1'><body>Art thou not Romeo?</body></message>"
            .parse()
            .unwrap(),
        ns::JABBER_CLIENT,
    )
    .unwrap();
    message.set_from(Some("juliet@example.org/balcony"));
    let mut presence = Stanza::from_element(
        "<presence xmlns='jabber:client'/>".parse().unwrap(),
        ns::JABBER_CLIENT,
    )
    .unwrap();
    presence.set_from(Some("juliet@example.org/balcony"));
    vec![
        ServerEvent::StartTls {
            buffered: Bytes::new(),
        },
        ServerEvent::Request {
            id: RequestId(1),
            request: Request::Credentials {
                username: USER.into(),
                authzid: None,
                mechanism: Mechanism::ScramSha256,
            },
        },
        ServerEvent::Authenticated {
            identity: Identity::User {
                username: USER.into(),
                authzid: None,
            },
        },
        ServerEvent::Request {
            id: RequestId(2),
            request: Request::Bind {
                username: USER.into(),
                requested: Some("balcony".into()),
            },
        },
        ServerEvent::Bound { jid: juliet() },
        ServerEvent::Stanza(message),
        ServerEvent::Stanza(presence),
        ServerEvent::Closed(CloseReason::Closed),
    ]
}

/// Events and output of the session fed in one piece.
fn whole() -> &'static (Vec<ServerEvent>, Vec<u8>) {
    static WHOLE: OnceLock<(Vec<ServerEvent>, Vec<u8>)> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let h = replay(&[]);
        (h.events, h.out)
    })
}

#[test]
fn full_session_events_and_output() {
    let h = replay(&[]);
    assert_eq!(h.events, expected_session_events());
    assert!(h.parser.error.is_none(), "{:?}", h.parser.error);
    assert_eq!(
        h.names(),
        [
            "open",
            "features",
            "proceed", // plaintext stream
            "open",
            "features",
            "challenge",
            "success", // TLS stream
            "open",
            "features",
            "iq", // authenticated stream
            "close"
        ]
    );
    // Features in order: STARTTLS required; SASL without PLAIN-less
    // surprises; then bind and optional session.
    let features: Vec<&Element> = h
        .parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) if e.is("features", ns::STREAMS) => Some(e),
            _ => None,
        })
        .collect();
    let tls = features[0].get_child("starttls", ns::XMPP_TLS).unwrap();
    assert!(tls.has_child("required", ns::XMPP_TLS));
    assert_eq!(features[0].children().count(), 1);
    let sasl = SaslFeatures::from_stream_features(features[1])
        .unwrap()
        .unwrap();
    assert!(sasl.offers(Mechanism::ScramSha256));
    assert!(sasl.offers(Mechanism::Plain), "PLAIN is offered over TLS");
    assert!(features[1].get_child("starttls", ns::XMPP_TLS).is_none());
    assert!(features[2].has_child("bind", ns::XMPP_BIND));
    let session = features[2].get_child("session", ns::XMPP_SESSION).unwrap();
    assert!(session.has_child("optional", ns::XMPP_SESSION));
    // Three headers, three different ids from our domain.
    let ids: Vec<String> = h
        .parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::StreamOpen(hd) => {
                assert_eq!(hd.from.as_deref(), Some(DOMAIN));
                assert_eq!(hd.content_namespace.as_deref(), Some(ns::JABBER_CLIENT));
                hd.id.clone()
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| i.len() >= 22));
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    // The bind result carries the full JID.
    let bind_result = h
        .parser
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Element(e) if e.name() == "iq" => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(bind_result.attr("type"), Some("result"));
    assert_eq!(bind_result.attr("id"), Some("b1"));
    let jid = bind_result
        .get_child("bind", ns::XMPP_BIND)
        .and_then(|b| b.get_child("jid", ns::XMPP_BIND))
        .unwrap()
        .text();
    assert_eq!(jid, "juliet@example.org/balcony");
    assert_eq!(h.conn.state(), &ServerState::Closed(CloseReason::Closed));
    assert_eq!(h.conn.jid(), Some(&juliet()));
}

#[test]
fn full_session_byte_at_a_time() {
    let (events, out) = whole();
    let script = scripted_client();
    let cuts: Vec<usize> = (1..script.len()).collect();
    let h = replay(&cuts);
    assert_eq!(&h.events, events);
    assert_eq!(&h.out, out);
}

#[test]
fn full_session_every_single_split_point() {
    let (events, out) = whole();
    let script = scripted_client();
    for k in 0..=script.len() {
        let h = replay(&[k]);
        assert_eq!(&h.events, events, "split at {k}");
        assert_eq!(&h.out, out, "split at {k}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn full_session_any_chunking(cuts in proptest::collection::vec(0usize..4000, 0..40)) {
        let (events, out) = whole();
        let h = replay(&cuts);
        prop_assert_eq!(&h.events, events);
        prop_assert_eq!(&h.out, out);
    }
}

#[test]
fn bytes_after_starttls_are_handed_to_tls() {
    let mut h = Host::new();
    h.auto_answer = false;
    h.send(&header());
    h.conn
        .handle_input(
            h.now,
            Input::Received(
                b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01\x00\xa5",
            ),
        )
        .unwrap();
    let mut got = Vec::new();
    while let Some(o) = h.conn.poll_output() {
        got.push(o);
    }
    match &got[..] {
        [
            Output::Transmit(b),
            Output::Event(ServerEvent::StartTls { buffered }),
        ] => {
            assert!(b.ends_with(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
            assert_eq!(&buffered[..], b"\x16\x03\x01\x00\xa5");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.conn.state(),
        ServerState::Negotiating {
            stage: NegotiationStage::TlsHandshake,
            ..
        }
    ));
    // More bytes before TLS is up are TLS records: discarded.
    h.send("<message/>");
    assert!(h.conn.poll_output().is_none());
    h.conn
        .handle_input(h.now, Input::TlsEstablished(tls()))
        .unwrap();
    h.send(&header());
    assert_eq!(h.names().last().map(String::as_str), Some("features"));
}

// ----------------------------------------------------------------------
// Stream header
// ----------------------------------------------------------------------

#[test]
fn unknown_or_missing_to_is_host_unknown() {
    for hdr in [
        header_to("other.example"),
        header_to("juliet@example.org"),
        header_to("example.org/res"),
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>".to_owned(),
    ] {
        let mut h = Host::new();
        h.send(&hdr);
        assert_violation(&h, StreamErrorCondition::HostUnknown);
        assert_eq!(h.names(), ["open", "error", "close"]);
    }
}

#[test]
fn to_is_compared_prepared() {
    let mut h = Host::new();
    h.send(&header_to("EXAMPLE.org."));
    assert_eq!(h.names(), ["open", "features"]);
    assert_eq!(h.conn.domain(), Some(DOMAIN));
}

#[test]
fn wrong_content_namespace_is_invalid_namespace() {
    let mut h = Host::new();
    h.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>");
    assert_violation(&h, StreamErrorCondition::InvalidNamespace);
}

#[test]
fn wrong_stream_namespace_gets_header_then_error() {
    let mut h = Host::new();
    h.send("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='example.org' version='1.0'>");
    assert_violation(&h, StreamErrorCondition::InvalidNamespace);
    assert_eq!(h.names(), ["open", "error", "close"]);
}

#[test]
fn version_rules() {
    for (version, ok) in [
        ("", false),
        ("version='2.0'", false),
        ("version='0.9'", false),
        ("version='1.5'", true),
    ] {
        let mut h = Host::new();
        h.send(&format!("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' {version}>"));
        if ok {
            assert_eq!(h.names(), ["open", "features"], "{version}");
            let Frame::StreamOpen(hd) = &h.parser.frames[0] else {
                panic!()
            };
            assert_eq!(hd.version.unwrap().to_string(), "1.0");
        } else {
            assert_violation(&h, StreamErrorCondition::UnsupportedVersion);
        }
    }
    let mut h = Host::new();
    h.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='x'>");
    assert_violation(&h, StreamErrorCondition::UnsupportedVersion);
}

#[test]
fn response_header_mirrors_from_and_lang_and_ignores_id() {
    let mut h = Host::new();
    h.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' from='juliet@example.org' id='client-chosen' xml:lang='de' version='1.0'>");
    let Frame::StreamOpen(hd) = &h.parser.frames[0] else {
        panic!()
    };
    assert_eq!(hd.to.as_deref(), Some("juliet@example.org"));
    assert_eq!(hd.lang.as_deref(), Some("de"));
    assert_ne!(hd.id.as_deref(), Some("client-chosen"));
    assert_eq!(h.conn.stream_id(), hd.id.as_deref());
}

#[test]
fn domain_change_on_restart_is_host_unknown() {
    let mut c = config();
    c.domains.push("other.example".into());
    let mut h = Host::with(c, TlsInfo::plaintext());
    h.send(&header());
    h.send(STARTTLS);
    h.send(&header_to("other.example"));
    assert_violation(&h, StreamErrorCondition::HostUnknown);
    // The error went out on the new (TLS) stream, after a new header.
    assert_eq!(
        h.names(),
        ["open", "features", "proceed", "open", "error", "close"]
    );
}

// ----------------------------------------------------------------------
// TLS and SASL
// ----------------------------------------------------------------------

#[test]
fn stanza_before_auth_is_not_authorized() {
    let mut h = Host::new();
    h.send(&header());
    h.send("<message to='romeo@example.net'><body>hi</body></message>");
    assert_violation(&h, StreamErrorCondition::NotAuthorized);
}

#[test]
fn auth_before_tls_is_encryption_required_and_counted() {
    let mut h = Host::new();
    h.send(&header());
    for attempt in 1..=3 {
        h.send(&plain_auth(USER, PASSWORD));
        let failure = h
            .parser
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::Element(e) if e.is("failure", ns::XMPP_SASL)))
            .count();
        assert_eq!(failure, attempt);
    }
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, ServerEvent::Request { .. })),
        "credentials never looked up"
    );
    let first_failure = h
        .parser
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Element(e) if e.is("failure", ns::XMPP_SASL) => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert!(first_failure.has_child("encryption-required", ns::XMPP_SASL));
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::PolicyViolation)
    );
    assert!(matches!(
        h.closed_reason(),
        Some(CloseReason::AuthenticationFailed {
            condition: SaslCondition::EncryptionRequired,
            ..
        })
    ));
}

fn tls_stream() -> Host {
    let mut h = Host::new();
    h.send(&header());
    h.send(STARTTLS);
    h.send(&header());
    h
}

fn last_sasl(h: &Host) -> SaslNonza {
    SaslNonza::from_element(&h.last_element()).unwrap()
}

#[test]
fn unknown_mechanism_is_invalid_mechanism() {
    let mut h = tls_stream();
    h.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>");
    assert!(matches!(
        last_sasl(&h),
        SaslNonza::Failure {
            condition: SaslCondition::InvalidMechanism,
            ..
        }
    ));
    // Not fatal: a correct attempt follows.
    h.send(&plain_auth(USER, PASSWORD));
    assert!(matches!(last_sasl(&h), SaslNonza::Success(None)));
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let run = |user: &str, password: &str| {
        let mut h = tls_stream();
        h.send(&plain_auth(user, password));
        assert!(matches!(
            last_sasl(&h),
            SaslNonza::Failure {
                condition: SaslCondition::NotAuthorized,
                ..
            }
        ));
        assert_eq!(
            h.conn.state(),
            &ServerState::Negotiating {
                stage: NegotiationStage::Authenticating,
                negotiated: Negotiated {
                    tls: true,
                    authenticated: false,
                    bound: false
                },
            }
        );
        h.out
    };
    assert_eq!(run(USER, "wrong"), run("nobody", PASSWORD));
}

#[test]
fn unknown_user_scram_gets_a_stable_fake_challenge() {
    let challenge = |user: &str| {
        let mut h = tls_stream();
        let first = format!("n,,n={user},r=clientnonce");
        h.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            encode_payload(first.as_bytes())
        ));
        match last_sasl(&h) {
            SaslNonza::Challenge(c) => String::from_utf8(c).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let a = challenge("nobody");
    assert_eq!(a, challenge("nobody"));
    assert!(a.contains(&format!("i={ITERATIONS}")));
}

#[test]
fn too_many_failures_close_with_policy_violation() {
    let mut h = tls_stream();
    h.send(&plain_auth(USER, "wrong1"));
    h.send(&plain_auth(USER, "wrong2"));
    assert!(matches!(h.conn.state(), ServerState::Negotiating { .. }));
    h.send(&plain_auth(USER, "wrong3"));
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::PolicyViolation)
    );
    assert_eq!(
        &h.names()[h.names().len() - 3..],
        ["failure", "error", "close"]
    );
    assert!(matches!(
        h.closed_reason(),
        Some(CloseReason::AuthenticationFailed {
            condition: SaslCondition::NotAuthorized,
            ..
        })
    ));
    // A configurable limit.
    let mut c = config();
    c.max_auth_failures = 1;
    let mut h = Host::with(c, tls());
    h.send(&header());
    h.send(&plain_auth(USER, "wrong"));
    assert!(matches!(
        h.closed_reason(),
        Some(CloseReason::AuthenticationFailed { .. })
    ));
}

#[test]
fn abort_gets_aborted_failure() {
    let mut h = tls_stream();
    h.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>");
    assert_eq!(last_sasl(&h), SaslNonza::Challenge(Vec::new()));
    h.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert!(matches!(
        last_sasl(&h),
        SaslNonza::Failure {
            condition: SaslCondition::Aborted,
            ..
        }
    ));
    h.send(&plain_auth(USER, PASSWORD));
    assert!(matches!(last_sasl(&h), SaslNonza::Success(None)));
}

#[test]
fn plain_is_not_offered_without_tls_even_when_tls_is_optional() {
    let mut c = config();
    c.policy = Policy {
        require_tls: false,
        tls_available: true,
    };
    let mut h = Host::with(c, TlsInfo::plaintext());
    h.send(&header());
    let Frame::Element(f) = &h.parser.frames[1] else {
        panic!()
    };
    let tls = f.get_child("starttls", ns::XMPP_TLS).unwrap();
    assert!(!tls.has_child("required", ns::XMPP_TLS));
    let sasl = SaslFeatures::from_stream_features(f).unwrap().unwrap();
    assert!(!sasl.offers(Mechanism::Plain));
    assert!(sasl.offers(Mechanism::ScramSha256));
    h.send(&plain_auth(USER, PASSWORD));
    assert!(matches!(
        last_sasl(&h),
        SaslNonza::Failure {
            condition: SaslCondition::EncryptionRequired,
            ..
        }
    ));
}

#[test]
fn plaintext_loopback_when_explicitly_allowed() {
    let mut c = config();
    c.policy = Policy {
        require_tls: false,
        tls_available: false,
    };
    c.sasl.allow_plain_without_tls = true;
    let mut h = Host::with(c, TlsInfo::plaintext());
    h.send(&header());
    h.send(&plain_auth(USER, PASSWORD));
    h.send(&header());
    h.send(&bind_iq("b", Some("r")));
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

#[test]
fn tls_required_but_unavailable_is_refused() {
    let mut c = config();
    c.policy = Policy {
        require_tls: true,
        tls_available: false,
    };
    let mut h = Host::with(c, TlsInfo::plaintext());
    h.send(&header());
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::InternalServerError)
    );
    assert!(matches!(
        h.closed_reason(),
        Some(CloseReason::PolicyRefused(_))
    ));
}

#[test]
fn direct_tls_offers_no_starttls_and_refuses_it() {
    let mut h = Host::with(config(), tls());
    h.send(&header());
    let Frame::Element(f) = &h.parser.frames[1] else {
        panic!()
    };
    assert!(f.get_child("starttls", ns::XMPP_TLS).is_none());
    assert!(
        SaslFeatures::from_stream_features(f)
            .unwrap()
            .unwrap()
            .offers(Mechanism::Plain)
    );
    h.send(STARTTLS);
    assert_eq!(&h.names()[2..], ["failure", "close"]);
    assert_eq!(h.closed_reason(), Some(CloseReason::TlsRefused));
}

#[test]
fn pre_auth_limit_then_normal_limits() {
    let mut h = tls_stream();
    let big = "A".repeat(20_000);
    h.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{big}</auth>"
    ));
    assert_violation(&h, StreamErrorCondition::PolicyViolation);

    let mut h = Host::bound();
    h.send(&format!(
        "<message to='romeo@example.net'><body>{big}</body></message>"
    ));
    assert_eq!(h.stanzas().len(), 1);
}

#[test]
fn anonymous_binds_a_random_localpart() {
    let mut c = config();
    c.sasl.mechanisms.push(Mechanism::Anonymous);
    let mut h = Host::with(c, tls());
    h.send(&header());
    h.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>=</auth>");
    assert!(matches!(
        h.events.last(),
        Some(ServerEvent::Authenticated {
            identity: Identity::Anonymous { .. }
        })
    ));
    h.send(&header());
    h.send(&bind_iq("b", None));
    let Some(ServerEvent::Request {
        request: Request::Bind {
            username,
            requested,
        },
        ..
    }) = h
        .events
        .iter()
        .find(|e| matches!(e, ServerEvent::Request { .. }))
        .cloned()
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!(username.len(), 16);
    assert_eq!(username, username.to_lowercase());
    assert_eq!(
        requested.as_deref().map(str::len),
        Some(16),
        "resource generated"
    );
    let jid = h.conn.jid().unwrap();
    assert_eq!(jid.local(), Some(username.as_str()));
    assert_eq!(jid.domain(), DOMAIN);
}

// ----------------------------------------------------------------------
// Binding
// ----------------------------------------------------------------------

#[test]
fn bind_generates_a_resource_when_none_is_requested() {
    let mut h = Host::authenticated();
    h.send(&bind_iq("b1", None));
    let jid = h.conn.jid().unwrap().clone();
    assert_eq!(jid.resource().len(), 16);
    assert_eq!(h.events.last(), Some(&ServerEvent::Bound { jid }));
}

#[test]
fn bind_conflict_refused_then_retry() {
    let mut h = Host::authenticated();
    h.bind = Box::new(|_, r| match r {
        Some("balcony") => BindAnswer::Refused(StanzaErrorCondition::Conflict),
        r => BindAnswer::Bound {
            resource: r.unwrap().to_owned(),
        },
    });
    h.send(&bind_iq("b1", Some("balcony")));
    let reply = Stanza::from_element(h.last_element(), ns::JABBER_CLIENT).unwrap();
    assert_eq!(reply.id(), Some("b1"));
    assert_eq!(
        reply.error().unwrap().condition,
        StanzaErrorCondition::Conflict
    );
    assert!(matches!(
        h.conn.state(),
        ServerState::Negotiating {
            stage: NegotiationStage::Binding,
            ..
        }
    ));
    h.send(&bind_iq("b2", Some("garden")));
    assert_eq!(
        h.conn.jid().map(FullJid::as_str),
        Some("juliet@example.org/garden")
    );
}

#[test]
fn host_may_bind_another_resource() {
    let mut h = Host::authenticated();
    h.bind = Box::new(|_, _| BindAnswer::Bound {
        resource: "renamed".into(),
    });
    h.send(&bind_iq("b1", Some("balcony")));
    assert_eq!(
        h.conn.jid().map(FullJid::as_str),
        Some("juliet@example.org/renamed")
    );
}

#[test]
fn bad_resource_is_bad_request_without_asking_the_host() {
    for bad in ["\u{0378}", ""] {
        let mut h = Host::authenticated();
        h.send(&bind_iq("b1", Some(bad)));
        let reply = Stanza::from_element(h.last_element(), ns::JABBER_CLIENT).unwrap();
        assert_eq!(
            reply.error().unwrap().condition,
            StanzaErrorCondition::BadRequest
        );
        assert!(!h.events.iter().any(|e| matches!(
            e,
            ServerEvent::Request {
                request: Request::Bind { .. },
                ..
            }
        )));
    }
    // Bind without id, or as a get.
    let mut h = Host::authenticated();
    h.send("<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    h.send("<iq type='get' id='g'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    let errors = h
        .parser
        .frames
        .iter()
        .filter(|f| matches!(f, Frame::Element(e) if e.attr("type") == Some("error")))
        .count();
    assert_eq!(errors, 2);
    assert!(matches!(h.conn.state(), ServerState::Negotiating { .. }));
}

#[test]
fn resource_is_prepared() {
    let mut h = Host::authenticated();
    // U+2163 ROMAN NUMERAL FOUR is mapped by NFKC? OpaqueString only does NFC:
    // decomposed é becomes precomposed.
    h.send(&bind_iq("b1", Some("cafe\u{301}")));
    assert_eq!(h.conn.jid().unwrap().resource(), "caf\u{e9}");
}

#[test]
fn stanza_before_bind_is_not_authorized() {
    let mut h = Host::authenticated();
    h.send("<presence/>");
    assert_violation(&h, StreamErrorCondition::NotAuthorized);
}

#[test]
fn session_iq_gets_empty_result_and_second_bind_not_allowed() {
    let mut h = Host::bound();
    h.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    let reply = h.last_element();
    assert_eq!(reply.attr("type"), Some("result"));
    assert_eq!(reply.attr("id"), Some("s1"));
    assert_eq!(reply.children().count(), 0);
    h.send(&bind_iq("b2", Some("other")));
    let reply = Stanza::from_element(h.last_element(), ns::JABBER_CLIENT).unwrap();
    assert_eq!(
        reply.error().unwrap().condition,
        StanzaErrorCondition::NotAllowed
    );
    assert!(h.stanzas().is_empty());
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

// ----------------------------------------------------------------------
// Stanzas
// ----------------------------------------------------------------------

#[test]
fn from_is_stamped_and_spoofing_is_invalid_from() {
    let mut h = Host::bound();
    h.send("<message to='romeo@example.net' from='juliet@example.org'/>");
    h.send("<message to='romeo@example.net' from='juliet@example.org/balcony'/>");
    h.send("<presence to='romeo@example.net' type='subscribe' from='juliet@example.org/balcony'/>");
    h.send("<presence type='unavailable'/>");
    let froms: Vec<_> = h
        .stanzas()
        .iter()
        .map(|s| s.from().unwrap().to_owned())
        .collect();
    assert_eq!(
        froms,
        [
            "juliet@example.org/balcony",
            "juliet@example.org/balcony",
            "juliet@example.org",
            "juliet@example.org/balcony"
        ]
    );
    h.send("<message to='romeo@example.net' from='romeo@example.net/orchard'/>");
    assert_violation(&h, StreamErrorCondition::InvalidFrom);
    assert_eq!(h.stanzas().len(), 4);

    for spoof in ["juliet@example.org/other", "example.org", "not a jid@@"] {
        let mut h = Host::bound();
        h.send(&format!("<message from='{spoof}'/>"));
        assert_violation(&h, StreamErrorCondition::InvalidFrom);
    }
}

#[test]
fn stanza_level_problems_never_kill_the_session() {
    let mut h = Host::bound();
    h.send("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"); // no id
    h.send("<iq type='bogus' id='i2'><ping xmlns='urn:xmpp:ping'/></iq>"); // bad type
    h.send("<iq id='i3'><ping xmlns='urn:xmpp:ping'/></iq>"); // no type
    h.send("<iq type='get' id='i4'/>"); // no payload
    h.send("<message to='@bad'><body>x</body></message>"); // malformed to
    h.send("<presence type='bogus'/>"); // unknown presence type
    h.send("<message type='error' to='@bad'/>"); // error: never answered
    h.send("<message to='romeo@example.net'><body>still here</body></message>");
    let errors: Vec<ErrorReply> = h
        .parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) if e.attr("type") == Some("error") => {
                let s = Stanza::from_element(e.clone(), ns::JABBER_CLIENT).unwrap();
                Some((
                    s.id().map(str::to_owned),
                    s.error().unwrap().condition,
                    s.to().map(str::to_owned),
                    s.from().map(str::to_owned),
                ))
            }
            _ => None,
        })
        .collect();
    use StanzaErrorCondition::*;
    let me = Some("juliet@example.org/balcony".to_owned());
    assert_eq!(
        errors,
        [
            (None, BadRequest, me.clone(), None),
            (Some("i2".into()), BadRequest, me.clone(), None),
            (Some("i3".into()), BadRequest, me.clone(), None),
            (Some("i4".into()), BadRequest, me.clone(), None),
            (None, JidMalformed, me.clone(), None),
            (None, BadRequest, me.clone(), None),
        ]
    );
    assert_eq!(h.stanzas().len(), 1);
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

#[test]
fn ping_from_the_client_is_a_stanza_for_the_host() {
    let mut h = Host::bound();
    h.send("<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>");
    h.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(h.stanzas().len(), 2);
    // The host answers through send_stanza.
    let reply = h.stanzas()[0].iq_result(None).unwrap();
    h.conn.send_stanza(&reply).unwrap();
    h.drain();
    let last = h.last_element();
    assert_eq!(last.attr("id"), Some("p1"));
    assert_eq!(last.attr("to"), Some("juliet@example.org/balcony"));
}

#[test]
fn unknown_first_level_elements_are_unsupported_stanza_type() {
    for (setup, el) in [
        (0, "<foo xmlns='urn:example'/>"),
        (1, "<foo xmlns='urn:example'/>"),
        (2, "<enabled xmlns='urn:xmpp:sm:3'/>"),
        (2, "<bogus/>"),
        (2, "<stream:features/>"),
        (0, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
    ] {
        let mut h = match setup {
            0 => tls_stream(),
            1 => Host::authenticated(),
            _ => Host::bound(),
        };
        h.send(el);
        assert_violation(&h, StreamErrorCondition::UnsupportedStanzaType);
    }
}

#[test]
fn peer_stream_error_is_reported() {
    let mut h = Host::bound();
    h.send("<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    assert_eq!(
        h.closed_reason(),
        Some(CloseReason::PeerStreamError(StreamError::new(
            StreamErrorCondition::SystemShutdown
        )))
    );
    assert_eq!(h.names().last().map(String::as_str), Some("close"));
}

// ----------------------------------------------------------------------
// Malformed input
// ----------------------------------------------------------------------

#[test]
fn malformed_xml_is_not_well_formed_with_a_header_first() {
    let mut h = Host::new();
    h.send("<<garbage");
    assert_violation(&h, StreamErrorCondition::NotWellFormed);
    assert_eq!(h.names(), ["open", "error", "close"]);

    let mut h = Host::bound();
    h.send("<message><body></message>");
    assert_violation(&h, StreamErrorCondition::NotWellFormed);

    let mut h = tls_stream();
    h.send("<!-- comment -->");
    assert_violation(&h, StreamErrorCondition::RestrictedXml);
}

#[test]
fn eof_mid_stanza_closes_without_output() {
    let mut h = Host::bound();
    let before = h.out.len();
    h.send("<message to='romeo@example.net'><bo");
    h.conn.handle_input(h.now, Input::Eof).unwrap();
    h.drain();
    assert_eq!(h.out.len(), before);
    assert_eq!(h.closed_reason(), Some(CloseReason::Eof));
    assert!(h.stanzas().is_empty());
}

#[test]
fn sticky_closed_state() {
    let mut h = Host::bound();
    h.send("<bogus xmlns='urn:x'/>");
    let reason = h.closed_reason().unwrap();
    let out = h.out.len();
    let events = h.events.len();
    h.send("<message to='romeo@example.net'/>");
    h.send(CLOSE);
    h.conn.handle_input(h.now, Input::Eof).unwrap();
    h.conn
        .handle_input(h.now, Input::TlsEstablished(tls()))
        .unwrap();
    h.conn.close(h.now);
    h.conn
        .close_with_error(h.now, StreamError::new(StreamErrorCondition::Conflict));
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.out.len(), out);
    assert_eq!(h.events.len(), events);
    assert_eq!(h.conn.state(), &ServerState::Closed(reason));
    assert_eq!(h.conn.poll_timeout(), None);
    let m = Stanza::chat(&"romeo@example.net".parse().unwrap(), "x");
    assert_eq!(h.conn.send_stanza(&m), Err(UsageError::Closed));
}

// ----------------------------------------------------------------------
// Time
// ----------------------------------------------------------------------

#[test]
fn negotiation_timeout() {
    let mut h = Host::new();
    let start = h.now;
    h.send(&header());
    assert_eq!(h.conn.poll_timeout(), Some(start + Duration::from_secs(60)));
    h.advance(Duration::from_secs(59));
    assert!(h.closed_reason().is_none());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::ConnectionTimeout)
    );
    assert_eq!(h.closed_reason(), Some(CloseReason::NegotiationTimeout));
    // Also while the host runs TLS: nothing can be written then.
    let mut h = Host::new();
    h.auto_answer = false;
    h.send(&header());
    h.conn
        .handle_input(h.now, Input::Received(STARTTLS.as_bytes()))
        .unwrap();
    while h.conn.poll_output().is_some() {}
    h.now += Duration::from_secs(61);
    h.conn.handle_timeout(h.now);
    assert_eq!(
        h.conn.poll_output(),
        Some(Output::Event(ServerEvent::Closed(
            CloseReason::NegotiationTimeout
        )))
    );
}

#[test]
fn dead_peer_ping_answered_then_timeout() {
    let mut h = Host::bound();
    let bound_at = h.now;
    assert_eq!(
        h.conn.poll_timeout(),
        Some(bound_at + Duration::from_secs(300))
    );
    h.advance(Duration::from_secs(300));
    let ping = Stanza::from_element(h.last_element(), ns::JABBER_CLIENT).unwrap();
    assert_eq!(ping.type_attr(), Some("get"));
    assert_eq!(ping.from(), Some(DOMAIN));
    assert_eq!(ping.to(), Some("juliet@example.org/balcony"));
    assert!(ping.element().has_child("ping", "urn:xmpp:ping"));
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_secs(300))
    );
    // The client answers: consumed, not surfaced; the timer restarts.
    h.send(&format!(
        "<iq type='result' id='{}' to='example.org'/>",
        ping.id().unwrap()
    ));
    assert!(h.stanzas().is_empty());
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_secs(300))
    );
    // Silence: ping, then timeout.
    h.advance(Duration::from_secs(300));
    h.advance(Duration::from_secs(299));
    assert_eq!(h.conn.state(), &ServerState::Ready);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::ConnectionTimeout)
    );
    assert_eq!(h.closed_reason(), Some(CloseReason::PeerTimeout));
}

#[test]
fn any_traffic_is_a_sign_of_life_and_keepalives_are_sent() {
    let mut c = config();
    c.timeouts.keepalive = Some(Duration::from_secs(60));
    let mut h = Host::with(c, tls());
    h.send(&header());
    h.send(&plain_auth(USER, PASSWORD));
    h.send(&header());
    h.send(&bind_iq("b", Some("r")));
    let before = h.out.len();
    for _ in 0..10 {
        h.advance(Duration::from_secs(60));
        h.send(" ");
    }
    assert_eq!(h.conn.state(), &ServerState::Ready);
    assert_eq!(
        &h.out[before..],
        b"          ",
        "one keepalive per idle minute"
    );
    assert!(!h.out.windows(4).any(|w| w == b"ping"));
}

// ----------------------------------------------------------------------
// Closing
// ----------------------------------------------------------------------

#[test]
fn client_initiated_close() {
    let mut h = Host::bound();
    h.send("<message to='romeo@example.net'/></stream:stream>");
    assert_eq!(h.stanzas().len(), 1);
    assert_eq!(h.names().last().map(String::as_str), Some("close"));
    assert_eq!(h.conn.state(), &ServerState::Closed(CloseReason::Closed));
}

#[test]
fn host_initiated_close_waits_for_the_client() {
    let mut h = Host::bound();
    h.conn.close(h.now);
    h.drain();
    assert_eq!(h.conn.state(), &ServerState::Closing);
    assert_eq!(h.names().last().map(String::as_str), Some("close"));
    let m = Stanza::chat(&"romeo@example.net".parse().unwrap(), "x");
    assert_eq!(h.conn.send_stanza(&m), Err(UsageError::Closed));
    // In-flight stanzas from the client are still reported.
    h.send("<message to='romeo@example.net'/>");
    assert_eq!(h.stanzas().len(), 1);
    let out = h.out.len();
    h.send(CLOSE);
    assert_eq!(h.out.len(), out, "our close tag went out already");
    assert_eq!(h.conn.state(), &ServerState::Closed(CloseReason::Closed));

    let mut h = Host::bound();
    h.conn.close(h.now);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed_reason(), Some(CloseReason::CloseTimedOut));
}

#[test]
fn close_during_a_restart_stays_closing() {
    let mut h = tls_stream();
    h.auto_answer = false;
    h.send(&plain_auth(USER, PASSWORD));
    let id = h.conn.pending_request().unwrap();
    h.conn
        .answer(
            h.now,
            id,
            Answer::Credentials(CredentialLookup::Found(creds())),
        )
        .unwrap();
    h.drain();
    // Authenticated, waiting for the new header: the host closes.
    h.conn.close(h.now);
    h.drain();
    assert_eq!(
        &h.names()[h.names().len() - 3..],
        ["success", "open", "close"]
    );
    let out = h.out.len();
    h.send(&header());
    h.send(&bind_iq("b", Some("r")));
    assert_eq!(h.conn.state(), &ServerState::Closing);
    assert_eq!(h.out.len(), out);
    h.send(CLOSE);
    assert_eq!(h.conn.state(), &ServerState::Closed(CloseReason::Closed));
}

#[test]
fn close_with_error_sends_it() {
    let mut h = Host::bound();
    let conflict = StreamError::new(StreamErrorCondition::Conflict);
    h.conn.close_with_error(h.now, conflict.clone());
    h.drain();
    assert_eq!(h.stream_error(), Some(StreamErrorCondition::Conflict));
    assert_eq!(
        h.closed_reason(),
        Some(CloseReason::HostStreamError(conflict))
    );
    // Before any header: a header goes first.
    let mut h = Host::new();
    h.conn.close_with_error(
        h.now,
        StreamError::new(StreamErrorCondition::SystemShutdown),
    );
    h.drain();
    assert_eq!(h.names(), ["open", "error", "close"]);
}

// ----------------------------------------------------------------------
// Usage errors
// ----------------------------------------------------------------------

#[test]
fn usage_errors() {
    let mut h = Host::new();
    assert_eq!(
        h.conn.handle_input(h.now, Input::TlsEstablished(tls())),
        Err(UsageError::UnexpectedTls)
    );
    h.send(&header());
    assert_eq!(
        h.conn.handle_input(h.now, Input::TlsEstablished(tls())),
        Err(UsageError::UnexpectedTls)
    );
    let m = Stanza::chat(&"romeo@example.net".parse().unwrap(), "x");
    assert_eq!(h.conn.send_stanza(&m), Err(UsageError::NotReady));
    assert_eq!(
        h.conn.answer(
            h.now,
            RequestId(9),
            Answer::Credentials(CredentialLookup::NotFound)
        ),
        Err(UsageError::UnknownRequest(9))
    );

    let mut h = tls_stream();
    h.auto_answer = false;
    h.send(&plain_auth(USER, PASSWORD));
    let id = h.conn.pending_request().unwrap();
    assert_eq!(
        h.conn.answer(
            h.now,
            id,
            Answer::Bind(BindAnswer::Bound {
                resource: "x".into()
            })
        ),
        Err(UsageError::WrongAnswer(id.0))
    );
    h.conn
        .answer(
            h.now,
            id,
            Answer::Credentials(CredentialLookup::Found(creds())),
        )
        .unwrap();
    assert_eq!(
        h.conn
            .answer(h.now, id, Answer::Credentials(CredentialLookup::NotFound)),
        Err(UsageError::UnknownRequest(id.0))
    );
    h.drain();
    h.send(&header());
    h.send(&bind_iq("b", Some("r")));
    let id = h.conn.pending_request().unwrap();
    // A resource that is not a resourcepart does not fit; still pending.
    assert_eq!(
        h.conn.answer(
            h.now,
            id,
            Answer::Bind(BindAnswer::Bound {
                resource: String::new()
            })
        ),
        Err(UsageError::WrongAnswer(id.0))
    );
    h.conn
        .answer(
            h.now,
            id,
            Answer::Bind(BindAnswer::Bound {
                resource: "r".into(),
            }),
        )
        .unwrap();
    h.drain();
    assert_eq!(h.conn.state(), &ServerState::Ready);
    let s2s = Stanza::from_element(
        "<message xmlns='jabber:server'/>".parse().unwrap(),
        ns::JABBER_SERVER,
    )
    .unwrap();
    assert_eq!(h.conn.send_stanza(&s2s), Err(UsageError::NotAStanza));
    let mut bad = m.clone();
    bad.set_attr("type", Some("a\u{1}"));
    assert!(matches!(
        h.conn.send_stanza(&bad),
        Err(UsageError::Unwritable(_))
    ));
    h.conn.send_stanza(&m).unwrap();

    // Answer after close.
    let mut h = tls_stream();
    h.auto_answer = false;
    h.send(&plain_auth(USER, PASSWORD));
    let id = h.conn.pending_request().unwrap();
    h.conn.close(h.now);
    assert_eq!(
        h.conn
            .answer(h.now, id, Answer::Credentials(CredentialLookup::NotFound)),
        Err(UsageError::Closed)
    );
}

#[test]
fn input_waits_while_the_host_decides_and_is_bounded() {
    let mut h = tls_stream();
    h.auto_answer = false;
    // Auth and the next (bogus) element in one chunk: the bogus one is read
    // only after the answer, so the SASL outcome goes out first.
    h.send(
        &(plain_auth(USER, "wrong")
            + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X'/>"),
    );
    assert_eq!(h.names().last().map(String::as_str), Some("features"));
    let id = h.conn.pending_request().unwrap();
    h.conn
        .answer(
            h.now,
            id,
            Answer::Credentials(CredentialLookup::Found(creds())),
        )
        .unwrap();
    h.drain();
    let failures: Vec<SaslCondition> = h
        .parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) if e.is("failure", ns::XMPP_SASL) => {
                match SaslNonza::from_element(e).unwrap() {
                    SaslNonza::Failure { condition, .. } => Some(condition),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        [
            SaslCondition::NotAuthorized,
            SaslCondition::InvalidMechanism
        ]
    );

    let mut h = tls_stream();
    h.auto_answer = false;
    h.send(&plain_auth(USER, PASSWORD));
    h.send(&" ".repeat(20_000));
    assert_violation(&h, StreamErrorCondition::PolicyViolation);
}

// ----------------------------------------------------------------------
// Many sessions
// ----------------------------------------------------------------------

#[test]
fn two_hundred_sessions_exchange_messages() {
    const N: usize = 200;
    let config = Arc::new({
        let mut c = config();
        c.timeouts.dead_peer = None;
        c
    });
    let start = Instant::now();
    let mut conns: Vec<ServerConnection> = (0..N)
        .map(|i| ServerConnection::new(config.clone(), tls(), SeededRng::from_u64(i as u64), start))
        .collect();
    let mut sessions: HashMap<FullJid, usize> = HashMap::new();
    let mut received: Vec<Vec<Element>> = vec![Vec::new(); N];
    let mut queue: Vec<(usize, Vec<u8>)> = Vec::new();
    for i in 0..N {
        let user = format!("user{i}");
        let script = format!(
            "{}{}{}{}",
            header(),
            plain_auth(&user, PASSWORD),
            header(),
            bind_iq("b", Some("res"))
        );
        queue.push((i, script.into_bytes()));
    }
    // Interleave: feed each connection its script in 3 pieces, round-robin.
    let mut delivery: Vec<(FullJid, Stanza)> = Vec::new();
    for piece in 0..3 {
        for (i, script) in &queue {
            let len = script.len();
            let (a, b) = (len * piece / 3, len * (piece + 1) / 3);
            let conn = &mut conns[*i];
            conn.handle_input(start, Input::Received(&script[a..b]))
                .unwrap();
            while let Some(out) = conn.poll_output() {
                match out {
                    Output::Transmit(_) => {}
                    Output::Event(ServerEvent::Request { id, request }) => {
                        let answer = match request {
                            Request::Credentials { username, .. } => {
                                assert_eq!(username, format!("user{i}"));
                                Answer::Credentials(CredentialLookup::Found(creds()))
                            }
                            Request::Bind { requested, .. } => Answer::Bind(BindAnswer::Bound {
                                resource: requested.unwrap(),
                            }),
                            Request::Resume { .. } => Answer::Resume(None),
                        };
                        conn.answer(start, id, answer).unwrap();
                    }
                    Output::Event(ServerEvent::Bound { jid }) => {
                        sessions.insert(jid, *i);
                    }
                    Output::Event(ServerEvent::Authenticated { .. }) => {}
                    Output::Event(e) => panic!("{i}: {e:?}"),
                }
            }
        }
    }
    assert_eq!(sessions.len(), N);
    // Each session sends one message to the next one.
    for (i, conn) in conns.iter_mut().enumerate() {
        let to = format!("user{}@example.org/res", (i + 1) % N);
        let msg = format!("<message to='{to}' id='m{i}'><body>hello from {i}</body></message>");
        conn.handle_input(start, Input::Received(msg.as_bytes()))
            .unwrap();
        while let Some(out) = conn.poll_output() {
            if let Output::Event(ServerEvent::Stanza(s)) = out {
                let to: FullJid = s.to().unwrap().parse().unwrap();
                delivery.push((to, s));
            }
        }
    }
    // The tiny router: deliver each stanza to its full JID.
    for (to, stanza) in delivery {
        let target = sessions[&to];
        conns[target].send_stanza(&stanza).unwrap();
        let mut parser = OutParser::new();
        parser.feed(&crate_header_bytes());
        while let Some(out) = conns[target].poll_output() {
            if let Output::Transmit(b) = out {
                parser.feed(&b);
            }
        }
        assert!(parser.error.is_none());
        for f in parser.frames {
            if let Frame::Element(e) = f {
                received[target].push(e);
            }
        }
    }
    for (i, got) in received.iter().enumerate() {
        assert_eq!(got.len(), 1, "session {i}");
        let from = (i + N - 1) % N;
        assert_eq!(
            got[0].attr("from"),
            Some(format!("user{from}@example.org/res").as_str())
        );
        assert_eq!(
            got[0].get_child("body", ns::JABBER_CLIENT).unwrap().text(),
            format!("hello from {from}")
        );
    }
    for c in &mut conns {
        c.handle_input(start, Input::Received(CLOSE.as_bytes()))
            .unwrap();
        assert_eq!(c.state(), &ServerState::Closed(CloseReason::Closed));
    }
}

/// A stream header to parse a fragment of server output on its own.
fn crate_header_bytes() -> Vec<u8> {
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>".to_vec()
}

// ----------------------------------------------------------------------
// Stream management (XEP-0198)
// ----------------------------------------------------------------------

const SM: &str = "urn:xmpp:sm:3";

fn sm_elements(h: &Host) -> Vec<Element> {
    h.parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) if e.ns() == SM => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn last_sm(h: &Host) -> Element {
    sm_elements(h).pop().expect("a stream management element")
}

fn body(e: &Element) -> String {
    e.get_child("body", ns::JABBER_CLIENT)
        .map(Element::text)
        .unwrap_or_default()
}

fn failed_condition(e: &Element) -> Option<String> {
    (e.name() == "failed").then(|| e.children().next().unwrap().name().to_owned())
}

fn enabled() -> Host {
    let mut h = Host::bound();
    h.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let e = last_sm(&h);
    assert_eq!(e.name(), "enabled");
    assert_eq!(e.attr("resume"), Some("true"));
    assert_eq!(e.attr("max"), Some("300"));
    let id = e.attr("id").unwrap().to_owned();
    assert!(id.len() >= 16);
    assert!(h.events.contains(&ServerEvent::StreamManagementEnabled {
        resumption_id: Some(id)
    }));
    h
}

fn message_to_client(n: u32) -> Stanza {
    let mut s = Stanza::chat(
        &"juliet@example.org/balcony".parse().unwrap(),
        &n.to_string(),
    );
    s.set_from(Some("romeo@example.net/orchard"));
    s
}

#[test]
fn sm_is_offered_with_bind_and_enable_before_bind_fails() {
    let mut h = Host::authenticated();
    let features = h
        .parser
        .frames
        .iter()
        .rev()
        .find_map(|f| match f {
            Frame::Element(e) if e.is("features", ns::STREAMS) => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert!(features.has_child("sm", SM));
    h.send("<enable xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("unexpected-request")
    );
    // The stream goes on: binding still works.
    h.send(&bind_iq("b1", Some("balcony")));
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

#[test]
fn sm_enable_twice_fails_and_r_right_after_enable_is_zero() {
    let mut h = enabled();
    h.send("<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(last_sm(&h).attr("h"), Some("0"));
    h.send("<enable xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("unexpected-request")
    );
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

#[test]
fn sm_only_stanzas_count() {
    let mut h = enabled();
    h.send("<message to='romeo@example.net'><body>1</body></message>  \n");
    h.send("<a xmlns='urn:xmpp:sm:3' h='0'/>");
    h.send("<presence/>");
    h.send("<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(last_sm(&h).attr("h"), Some("2"));
    // An iq the server answers itself (bad request) is handled too.
    h.send("<iq type='get' id='x'/>");
    h.send("<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(last_sm(&h).attr("h"), Some("3"));
    assert_eq!(h.conn.stream_management().unwrap().inbound(), 3);
}

#[test]
fn sm_outbound_is_queued_acknowledged_and_requested() {
    let mut h = enabled();
    for n in 0..5 {
        h.conn.send_stanza(&message_to_client(n)).unwrap();
    }
    h.drain();
    // The default policy asks for an ack after 5 stanzas.
    assert_eq!(last_sm(&h).name(), "r");
    let sm = h.conn.stream_management().unwrap();
    assert_eq!((sm.outbound(), sm.unacked_len()), (5, 5));
    h.send("<a xmlns='urn:xmpp:sm:3' h='3'/>");
    let sm = h.conn.stream_management().unwrap();
    assert_eq!((sm.acked(), sm.unacked_len()), (3, 2));
    let left: Vec<_> = sm
        .unacked()
        .map(|s| body(s.to_stanza().unwrap().element()))
        .collect();
    assert_eq!(left, ["3", "4"]);
    // An ack going backwards or beyond what was sent is a stream error.
    h.send("<a xmlns='urn:xmpp:sm:3' h='6'/>");
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::UndefinedCondition)
    );
    let error = h
        .parser
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Element(e) if e.is("error", ns::STREAMS) => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    let app = error.get_child("handled-count-too-high", SM).unwrap();
    assert_eq!(
        (app.attr("h"), app.attr("send-count")),
        (Some("6"), Some("5"))
    );
    // Closed by a protocol error: not resumable, the queue is handed back.
    assert!(h.conn.detach().is_none());
    assert_eq!(h.conn.take_unacknowledged().len(), 2);
}

#[test]
fn sm_ack_request_by_time() {
    let mut h = enabled();
    h.conn.send_stanza(&message_to_client(1)).unwrap();
    h.drain();
    assert_ne!(last_sm(&h).name(), "r");
    let deadline = h.conn.poll_timeout().unwrap();
    assert!(deadline <= h.now + Duration::from_secs(10));
    h.advance(Duration::from_secs(10));
    assert_eq!(last_sm(&h).name(), "r");
}

#[test]
fn sm_bad_elements_are_stream_errors() {
    for el in [
        "<a xmlns='urn:xmpp:sm:3'/>",
        "<a xmlns='urn:xmpp:sm:3' h='-1'/>",
        "<a xmlns='urn:xmpp:sm:3' h='4294967296'/>",
        "<a xmlns='urn:xmpp:sm:3' h='+1'/>",
        "<enable xmlns='urn:xmpp:sm:3' resume='yes'/>",
        "<bogus xmlns='urn:xmpp:sm:3'/>",
    ] {
        let mut h = enabled();
        h.send(el);
        assert_eq!(
            h.stream_error(),
            Some(StreamErrorCondition::BadFormat),
            "{el}"
        );
    }
    // <r/> and <a/> before enabling.
    let mut h = Host::bound();
    h.send("<r xmlns='urn:xmpp:sm:3'/>");
    assert_violation(&h, StreamErrorCondition::UnsupportedStanzaType);
}

#[test]
fn sm_resume_before_auth_or_after_bind_fails() {
    let mut h = tls_stream();
    h.send("<resume xmlns='urn:xmpp:sm:3' previd='abc' h='0'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("unexpected-request")
    );
    assert!(h.closed_reason().is_none());
    let mut h = Host::bound();
    h.send("<resume xmlns='urn:xmpp:sm:3' previd='abc' h='0'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("unexpected-request")
    );
}

#[test]
fn sm_resume_unknown_id_is_item_not_found() {
    let mut h = Host::authenticated();
    h.send("<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>");
    assert!(h.events.iter().any(|e| matches!(
        e,
        ServerEvent::Request { request: Request::Resume { username, previd }, .. }
            if username == USER && previd == "nope"
    )));
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("item-not-found")
    );
    // The client can still bind.
    h.send(&bind_iq("b1", None));
    assert_eq!(h.conn.state(), &ServerState::Ready);
}

/// A session with stanzas 0..5 sent, 0..2 acknowledged, 3 received from the
/// client, then the connection lost.
fn lost_session() -> (DetachedSession, String) {
    let mut h = enabled();
    let id = h.conn.resumption_id().unwrap().to_owned();
    for n in 0..5 {
        h.conn.send_stanza(&message_to_client(n)).unwrap();
    }
    h.send("<a xmlns='urn:xmpp:sm:3' h='2'/>");
    for n in 0..3 {
        h.send(&format!(
            "<message to='romeo@example.net'><body>{n}</body></message>"
        ));
    }
    h.conn.handle_input(h.now, Input::Eof).unwrap();
    h.drain();
    assert_eq!(h.closed_reason(), Some(CloseReason::Eof));
    let detached = h.conn.detach().expect("resumable");
    assert!(h.conn.detach().is_none(), "only once");
    assert_eq!(detached.id(), id);
    assert_eq!(detached.jid(), &juliet());
    assert_eq!(detached.expires_at(), h.now + Duration::from_secs(300));
    (detached, id)
}

#[test]
fn sm_resume_retransmits_what_the_client_did_not_handle() {
    let (mut detached, id) = lost_session();
    // Routed to the session while it was detached.
    detached.queue(message_to_client(5)).unwrap();
    let mut h = Host::authenticated();
    h.detached = Some(Box::new(detached));
    let before = h.parser.frames.len();
    // The client handled 0..4 (one more than it acknowledged).
    h.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='4'/>"
    ));
    let after: Vec<Element> = h.parser.frames[before..]
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(after[0].name(), "resumed");
    assert_eq!(after[0].attr("previd"), Some(id.as_str()));
    // The server handled the client's three messages.
    assert_eq!(after[0].attr("h"), Some("3"));
    let bodies: Vec<String> = after[1..]
        .iter()
        .filter(|e| e.name() == "message")
        .map(body)
        .collect();
    assert_eq!(bodies, ["4", "5"]);
    assert_eq!(h.conn.state(), &ServerState::Ready);
    assert_eq!(h.conn.jid(), Some(&juliet()));
    assert!(h.events.contains(&ServerEvent::Resumed {
        jid: juliet(),
        resumption_id: id.clone()
    }));
    // Counters go on from where they were.
    h.send("<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(last_sm(&h).attr("h"), Some("3"));
    h.send("<message to='romeo@example.net'><body>3</body></message><r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(last_sm(&h).attr("h"), Some("4"));
    let sm = h.conn.stream_management().unwrap();
    assert_eq!((sm.outbound(), sm.acked(), sm.unacked_len()), (6, 4, 2));
}

#[test]
fn sm_resume_of_another_account_is_item_not_found() {
    let (detached, id) = lost_session();
    // romeo authenticates and presents juliet's resumption id; a careless
    // host hands over juliet's session. The machine refuses it exactly like
    // an unknown id.
    let mut h = Host::new();
    h.send(&header());
    h.send(STARTTLS);
    h.send(&header());
    h.send(&plain_auth("romeo", PASSWORD));
    h.send(&header());
    h.detached = Some(Box::new(detached.clone()));
    h.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ));
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("item-not-found")
    );
    assert!(h.conn.jid().is_none());
    // Not lost: the host gets juliet's session back, once.
    assert_eq!(h.conn.take_refused_resumption(), Some(detached.clone()));
    assert_eq!(h.conn.take_refused_resumption(), None);
    // juliet asking for another id than the session handed over: refused,
    // and handed back too.
    let mut h = Host::authenticated();
    h.detached = Some(Box::new(detached.clone()));
    h.send("<resume xmlns='urn:xmpp:sm:3' previd='other-id' h='0'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("item-not-found")
    );
    assert_eq!(h.conn.take_refused_resumption(), Some(detached));
}

#[test]
fn sm_resume_with_too_high_h_is_a_stream_error_and_keeps_the_queue() {
    let (detached, id) = lost_session();
    let mut h = Host::authenticated();
    h.detached = Some(Box::new(detached));
    h.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='9'/>"
    ));
    assert_eq!(
        h.stream_error(),
        Some(StreamErrorCondition::UndefinedCondition)
    );
    // Nothing lost: the host gets the three unacknowledged stanzas back.
    let left: Vec<String> = h
        .conn
        .take_unacknowledged()
        .iter()
        .map(|s| body(s.element()))
        .collect();
    assert_eq!(left, ["2", "3", "4"]);
}

#[test]
fn sm_clean_close_is_not_resumable_and_hands_back_the_queue() {
    let mut h = enabled();
    h.conn.send_stanza(&message_to_client(0)).unwrap();
    h.send(CLOSE);
    assert_eq!(h.closed_reason(), Some(CloseReason::Closed));
    assert!(h.conn.detach().is_none());
    assert_eq!(h.conn.take_unacknowledged().len(), 1);
    assert!(h.conn.take_unacknowledged().is_empty());
}

#[test]
fn sm_zombie_closed_by_the_host_can_be_detached() {
    let mut h = enabled();
    h.conn.send_stanza(&message_to_client(0)).unwrap();
    h.conn.close_with_error(
        h.now,
        StreamError::new(StreamErrorCondition::Conflict).with_text("resumed elsewhere"),
    );
    h.drain();
    let d = h
        .conn
        .detach()
        .expect("detachable after a host stream error");
    assert_eq!(d.session().unacked_len(), 1);
}

#[test]
fn sm_disabled_server_refuses_enable_and_does_not_offer_it() {
    let mut c = config();
    c.stream_management = None;
    let mut h = Host::with(c, TlsInfo::plaintext());
    h.send(&header());
    h.send(STARTTLS);
    h.send(&header());
    h.send(&plain_auth(USER, PASSWORD));
    h.send(&header());
    h.send(&bind_iq("b1", Some("balcony")));
    assert!(!h.parser.frames.iter().any(
        |f| matches!(f, Frame::Element(e) if e.is("features", ns::STREAMS) && e.has_child("sm", SM))
    ));
    h.send("<enable xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(
        failed_condition(&last_sm(&h)).as_deref(),
        Some("feature-not-implemented")
    );
}

#[test]
fn sm_resume_not_requested_gives_no_id_and_no_detach() {
    let mut h = Host::bound();
    h.send("<enable xmlns='urn:xmpp:sm:3'/>");
    let e = last_sm(&h);
    assert_eq!((e.attr("id"), e.attr("resume")), (None, None));
    h.conn.handle_input(h.now, Input::Eof).unwrap();
    h.drain();
    assert!(h.conn.detach().is_none());
}

#[test]
fn sm_client_max_shortens_the_resumption_time() {
    let mut h = Host::bound();
    h.send("<enable xmlns='urn:xmpp:sm:3' resume='1' max='60'/>");
    assert_eq!(last_sm(&h).attr("max"), Some("60"));
    h.conn.handle_input(h.now, Input::Eof).unwrap();
    h.drain();
    let d = h.conn.detach().unwrap();
    assert_eq!(d.expires_at(), h.now + Duration::from_secs(60));
}

#[test]
fn post_auth_features_are_offered_with_bind_only() {
    let mut config = config();
    config.post_auth_features = vec![xmpp_sansio::im::roster::roster_versioning_feature()];
    let mut h = Host::with(config, TlsInfo::plaintext());
    h.send(&header());
    h.send(STARTTLS);
    h.send(&header());
    h.send(&plain_auth(USER, PASSWORD));
    h.send(&header());
    let features: Vec<&Element> = h
        .parser
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) if e.is("features", ns::STREAMS) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(features.len(), 3);
    let rosterver = "urn:xmpp:features:rosterver";
    assert!(!features[0].has_child("ver", rosterver));
    assert!(!features[1].has_child("ver", rosterver));
    assert!(features[2].has_child("bind", ns::XMPP_BIND));
    assert!(features[2].has_child("ver", rosterver));
    let parsed = xmpp_sansio::stream::StreamFeatures::from_element(features[2]).unwrap();
    assert!(parsed.roster_versioning && parsed.bind);
}
