//! XEP-0198 in both roles: a connection brought to a bound session with
//! stream management enabled, then driven by operations the input chooses:
//! `<r/>`, `<a h=…/>` with arbitrary counts, stanzas both ways, arbitrary
//! stream-management elements (any name, any attribute text), timeouts, and
//! loss of the connection followed by a resume attempt with an arbitrary
//! `previd`/`h` (server role) or an arbitrary `<resumed/>`/`<failed/>`
//! answer (client role).
//!
//! Checks: no panic; `outbound == acked + unacked` (mod 2³²) whenever stream
//! management is on; `Closed` once and nothing after it; a server stanza
//! handed to a lost session is never lost (it is either in the detached
//! session, or returned by `take_unacknowledged`).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent, TlsMode};
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{CredentialLookup, ScramHash, StoredCredentials, TlsInfo, TlsVersion};
use xmpp_sansio::server::{
    Answer, BindAnswer, DetachedSession, Request, ServerConfig, ServerConnection, ServerEvent,
};
use xmpp_sansio::sm::{SentStanza, SmSession};
use xmpp_sansio::stanza::Stanza;
use xmpp_sansio::stream::{Input, Output};

const C_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";
const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
// PLAIN "\0juliet\0pencil"
const AUTH: &str =
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>";
const BIND: &str = "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";
const ENABLE: &str = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>";

const S_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s' version='1.0'>";
const TLS_FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\
    <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const SASL_FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>PLAIN</mechanism></mechanisms></stream:features><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const BIND_FEATURES: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <sm xmlns='urn:xmpp:sm:3'/></stream:features>";

const NAMES: [&str; 8] = [
    "r", "a", "enable", "enabled", "resume", "resumed", "failed", "x",
];

fn config() -> Arc<ServerConfig> {
    static C: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = ServerConfig::new("example.org", vec![1u8; 32]);
        c.sasl.unknown_user_iterations = 1;
        if let Some(sm) = c.stream_management.as_mut() {
            sm.max_unacked = 40;
        }
        Arc::new(c)
    })
    .clone()
}

fn creds() -> StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| StoredCredentials::derive(ScramHash::Sha256, "pencil", b"salt", 1).unwrap())
        .clone()
}

/// How many of `stanzas` are messages.
fn messages<'a>(stanzas: impl Iterator<Item = &'a Stanza>) -> usize {
    stanzas
        .filter(|s| s.kind() == xmpp_sansio::stanza::StanzaKind::Message)
        .count()
}

/// How many of the stanzas a server kept are messages.
fn kept_messages<'a>(kept: impl Iterator<Item = &'a SentStanza>) -> usize {
    let parsed: Vec<Stanza> = kept
        .map(|k| k.to_stanza().expect("what the server wrote parses"))
        .collect();
    messages(parsed.iter())
}

fn check<T>(sm: Option<&SmSession<T>>) {
    if let Some(sm) = sm {
        assert_eq!(
            sm.outbound(),
            sm.acked().wrapping_add(sm.unacked_len() as u32),
            "send counter invariant"
        );
    }
}

/// Input operations: one byte each, some with operands.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn u32(&mut self) -> u32 {
        let mut v = 0u32;
        for _ in 0..4 {
            v = (v << 8) | u32::from(self.byte().unwrap_or(0));
        }
        v
    }

    /// A small count, or (rarely) any u32.
    fn count(&mut self) -> u32 {
        match self.byte().unwrap_or(0) {
            b @ 0..=200 => u32::from(b % 16),
            _ => self.u32(),
        }
    }

    /// Up to 16 bytes of attribute text, XML-escaped.
    fn text(&mut self) -> String {
        let len = self.byte().unwrap_or(0) % 16;
        let mut s = String::new();
        for _ in 0..len {
            match self.byte().unwrap_or(b'0') {
                b'\'' => s.push_str("&apos;"),
                b'<' => s.push_str("&lt;"),
                b'&' => s.push_str("&amp;"),
                b if b.is_ascii_graphic() || b == b' ' => s.push(char::from(b)),
                b => s.push_str(&format!("&#{};", u32::from(b % 0x60) + 0x20)),
            }
        }
        s
    }

    fn sm_element(&mut self) -> String {
        let name = NAMES[usize::from(self.byte().unwrap_or(0) % 8)];
        let mut el = format!("<{name} xmlns='urn:xmpp:sm:3'");
        for attr in ["h", "previd", "resume", "max", "id"] {
            if self.byte().unwrap_or(0) & 1 == 1 {
                el.push_str(&format!(" {attr}='{}'", self.text()));
            }
        }
        el.push_str("/>");
        el
    }
}

// ----------------------------------------------------------------------
// Server role
// ----------------------------------------------------------------------

struct ServerHost {
    conn: ServerConnection,
    now: Instant,
    closed: bool,
    detached: Option<DetachedSession>,
    /// Messages the host gave to sessions (the connection writes iq
    /// stanzas of its own — pings, errors — which count too, so only
    /// messages are compared with this).
    in_flight: usize,
}

impl ServerHost {
    fn new(now: Instant, seed: u64) -> Self {
        ServerHost {
            conn: ServerConnection::new(
                config(),
                TlsInfo::plaintext(),
                SeededRng::from_u64(seed),
                now,
            ),
            now,
            closed: false,
            detached: None,
            in_flight: 0,
        }
    }

    fn feed(&mut self, s: &str) {
        let _ = self
            .conn
            .handle_input(self.now, Input::Received(s.as_bytes()));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            assert!(!self.closed, "output after Closed");
            match out {
                Output::Transmit(_) => {}
                Output::Event(ServerEvent::StartTls { .. }) => {
                    let tls = TlsInfo::encrypted(TlsVersion::Tls13, Vec::new());
                    self.conn
                        .handle_input(self.now, Input::TlsEstablished(tls))
                        .unwrap();
                }
                Output::Event(ServerEvent::Request { id, request }) => {
                    let answer = match request {
                        Request::Credentials { .. } => {
                            Answer::Credentials(CredentialLookup::Found(creds()))
                        }
                        Request::Bind { requested, .. } => Answer::Bind(BindAnswer::Bound {
                            resource: requested.unwrap_or_else(|| "gen".into()),
                        }),
                        Request::Resume { .. } => {
                            Answer::Resume(self.detached.take().map(Box::new))
                        }
                    };
                    self.conn.answer(self.now, id, answer).unwrap();
                }
                Output::Event(ServerEvent::Closed(_)) => self.closed = true,
                Output::Event(_) => {}
            }
        }
        check(self.conn.stream_management());
    }
}

fn server(mut ops: Ops<'_>) {
    let now = Instant::now();
    let mut h = ServerHost::new(now, 1);
    for p in [C_HEADER, STARTTLS, C_HEADER, AUTH, C_HEADER, BIND, ENABLE] {
        h.feed(p);
    }
    assert!(h.conn.resumption_id().is_some());
    let mut seed = 2;
    while let Some(op) = ops.byte() {
        match op % 9 {
            0 => h.feed("<r xmlns='urn:xmpp:sm:3'/>"),
            1 => {
                let n = ops.count();
                h.feed(&format!("<a xmlns='urn:xmpp:sm:3' h='{n}'/>"));
            }
            2 => h.feed("<message to='romeo@example.org'><body>hi</body></message>"),
            3 => {
                let to = "juliet@example.org/r".parse().unwrap();
                if h.conn.send_stanza(&Stanza::chat(&to, "hello")).is_ok() {
                    h.in_flight += 1;
                }
                h.drain();
            }
            4 => {
                h.now += Duration::from_secs(u64::from(ops.byte().unwrap_or(0)));
                h.conn.handle_timeout(h.now);
                h.drain();
            }
            5 => {
                let el = ops.sm_element();
                h.feed(&el);
            }
            6 => {
                // Lose the connection and try to resume on a new one.
                let _ = h.conn.handle_input(h.now, Input::Eof);
                h.drain();
                assert!(h.closed);
                let previd = match ops.byte().unwrap_or(0) % 3 {
                    0 => ops.text(),
                    _ => h.conn.resumption_id().unwrap_or("x").to_owned(),
                };
                let detached = h.conn.detach();
                let kept = match &detached {
                    Some(d) => kept_messages(d.session().unacked()),
                    None => messages(h.conn.take_unacknowledged().iter()),
                };
                assert!(kept <= h.in_flight, "only messages the host sent are queued");
                assert!(h.conn.stream_management().is_none(), "all handed over");
                seed += 1;
                let mut next = ServerHost::new(h.now, seed);
                next.detached = detached;
                next.in_flight = h.in_flight;
                for p in [C_HEADER, STARTTLS, C_HEADER, AUTH, C_HEADER] {
                    next.feed(p);
                }
                let hh = ops.count();
                next.feed(&format!(
                    "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{hh}'/>"
                ));
                if next.conn.jid().is_none() && !next.closed {
                    next.feed(BIND);
                    next.feed(ENABLE);
                }
                h = next;
            }
            7 => h.feed("</stream:stream>"),
            _ => {
                let el = ops.sm_element();
                h.feed(&format!(
                    "<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>{el}"
                ));
            }
        }
        if h.closed {
            // A closed connection hands back every stanza exactly once.
            let queued = h.conn.detach().map_or_else(
                || messages(h.conn.take_unacknowledged().iter()),
                |d| kept_messages(d.session().unacked()),
            );
            assert!(queued <= h.in_flight);
            assert!(h.conn.take_unacknowledged().is_empty());
            return;
        }
    }
}

// ----------------------------------------------------------------------
// Client role
// ----------------------------------------------------------------------

struct ClientHost {
    conn: ClientConnection,
    now: Instant,
    closed: bool,
    /// The id of the last iq the client sent (bind).
    last_iq: Option<String>,
    sent: xmpp_sansio::xml::StreamReader,
}

impl ClientHost {
    fn feed(&mut self, s: &str) {
        let _ = self
            .conn
            .handle_input(self.now, Input::Received(s.as_bytes()));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            assert!(!self.closed, "output after Closed");
            match out {
                Output::Transmit(bytes) => {
                    self.sent.feed(&bytes);
                    while let Some(frame) = self.sent.next_frame().expect("client output parses") {
                        if let xmpp_sansio::xml::Frame::Element(e) = frame {
                            if e.name() == "starttls" || e.name() == "auth" {
                                self.sent.reset();
                            } else if e.name() == "iq" {
                                self.last_iq = e.attr("id").map(str::to_owned);
                            }
                        }
                    }
                }
                Output::Event(ClientEvent::StartTls { .. }) => {
                    let info = TlsInfo::encrypted(TlsVersion::Tls13, Vec::new());
                    let _ = self
                        .conn
                        .handle_input(self.now, Input::TlsEstablished(info));
                }
                Output::Event(ClientEvent::Closed(_)) => self.closed = true,
                Output::Event(_) => {}
            }
        }
        check(self.conn.stream_management());
    }

    fn negotiate(&mut self) {
        self.feed(&format!("{S_HEADER}{TLS_FEATURES}"));
        self.feed(&format!("{S_HEADER}{SASL_FEATURES}"));
        self.feed(&format!("{S_HEADER}{BIND_FEATURES}"));
    }

    fn bind_reply(&mut self) {
        if let Some(id) = self.last_iq.clone() {
            self.feed(&format!(
                "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <jid>juliet@example.com/r</jid></bind></iq>"
            ));
        }
    }
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new("juliet@example.com".parse().unwrap(), "pencil");
    config.tls = TlsMode::StartTlsOptional;
    config.sasl.allow_plain_without_tls = true;
    config.sasl.mechanisms = vec![xmpp_sansio::sasl::Mechanism::Plain];
    config
}

fn client(mut ops: Ops<'_>) {
    let now = Instant::now();
    let mut h = ClientHost {
        conn: ClientConnection::new(client_config(), SeededRng::from_u64(7), now),
        now,
        closed: false,
        last_iq: None,
        sent: xmpp_sansio::xml::StreamReader::new(Default::default()),
    };
    h.drain();
    h.negotiate();
    h.bind_reply();
    h.feed("<enabled xmlns='urn:xmpp:sm:3' id='s1' resume='true'/>");
    assert!(h.conn.resumption_id().is_some());
    let mut seed = 8;
    while let Some(op) = ops.byte() {
        match op % 9 {
            0 => h.feed("<r xmlns='urn:xmpp:sm:3'/>"),
            1 => {
                let n = ops.count();
                h.feed(&format!("<a xmlns='urn:xmpp:sm:3' h='{n}'/>"));
            }
            2 => h.feed("<message from='romeo@example.com/x'><body>hi</body></message>"),
            3 => {
                let to = "romeo@example.com".parse().unwrap();
                let _ = h.conn.send_stanza(h.now, Stanza::chat(&to, "hello"));
                h.drain();
            }
            4 => {
                h.now += Duration::from_secs(u64::from(ops.byte().unwrap_or(0)));
                h.conn.handle_timeout(h.now);
                h.drain();
            }
            5 => {
                let el = ops.sm_element();
                h.feed(&el);
            }
            6 => {
                let _ = h.conn.handle_input(h.now, Input::Eof);
                h.drain();
                assert!(h.closed);
                let Some(resumption) = h.conn.take_resumption() else {
                    return;
                };
                seed += 1;
                h = ClientHost {
                    conn: ClientConnection::resume(
                        client_config(),
                        resumption,
                        SeededRng::from_u64(seed),
                        h.now,
                    ),
                    now: h.now,
                    closed: false,
                    last_iq: None,
                    sent: xmpp_sansio::xml::StreamReader::new(Default::default()),
                };
                h.drain();
                h.negotiate();
                let n = ops.count();
                match ops.byte().unwrap_or(0) % 4 {
                    0 => h.feed(&format!(
                        "<failed xmlns='urn:xmpp:sm:3' h='{n}'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
                    )),
                    1 => {
                        let id = ops.text();
                        h.feed(&format!("<resumed xmlns='urn:xmpp:sm:3' previd='{id}' h='{n}'/>"));
                    }
                    _ => h.feed(&format!("<resumed xmlns='urn:xmpp:sm:3' previd='s1' h='{n}'/>")),
                }
                if h.conn.jid().is_none() && !h.closed {
                    h.bind_reply();
                    h.feed("<enabled xmlns='urn:xmpp:sm:3' id='s1' resume='1'/>");
                }
            }
            7 => {
                h.conn.close(h.now);
                h.drain();
            }
            _ => h.feed("</stream:stream>"),
        }
        if h.closed {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [role, rest @ ..] = data else {
        return;
    };
    if role & 1 == 0 {
        server(Ops(rest));
    } else {
        client(Ops(rest));
    }
});
