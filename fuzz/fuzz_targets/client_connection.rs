//! Arbitrary server bytes into a `ClientConnection` at every negotiation
//! stage. The first input byte picks a valid prefix (nothing; after the
//! header and STARTTLS; after SASL success; online), the second the chunk
//! size; the rest is fed in chunks with timeouts in between, then EOF.
//!
//! Checks: no panic; everything the client sends parses as an XMPP stream
//! (restarting where the client restarts); `Closed` is reported exactly once
//! and nothing follows it.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent, ClientState, TlsMode};
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{TlsInfo, TlsVersion};
use xmpp_sansio::stream::{Input, Output};
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s' version='1.0'>";
const TLS_FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\
    <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const SASL_FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>PLAIN</mechanism></mechanisms></stream:features><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const BIND_FEATURES: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

struct Host {
    conn: ClientConnection,
    now: Instant,
    /// The client's output, parsed as a stream.
    sent: StreamReader,
    closed: bool,
    bind_id: Option<String>,
}

impl Host {
    fn input(&mut self, input: Input<'_>) {
        let _ = self.conn.handle_input(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            assert!(!self.closed, "output after Closed");
            match out {
                Output::Transmit(bytes) => {
                    self.sent.feed(&bytes);
                    while let Some(frame) = self.sent.next_frame().expect("client output parses") {
                        match frame {
                            // The client restarts after STARTTLS and SASL.
                            Frame::Element(e) if e.name() == "starttls" || e.name() == "auth" => {
                                self.sent.reset();
                            }
                            Frame::Element(e) if e.name() == "iq" => {
                                self.bind_id = e.attr("id").map(str::to_owned);
                            }
                            _ => {}
                        }
                    }
                }
                Output::Event(ClientEvent::Closed(_)) => {
                    self.closed = true;
                    assert!(matches!(self.conn.state(), ClientState::Closed(_)));
                }
                Output::Event(ClientEvent::StartTls { .. }) => {
                    let info = TlsInfo::encrypted(TlsVersion::Tls13, Vec::new());
                    let _ = self.conn.handle_input(self.now, Input::TlsEstablished(info));
                }
                Output::Event(_) => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [stage, chunk, rest @ ..] = data else {
        return;
    };
    let now = Instant::now();
    let mut config = ClientConfig::new("juliet@example.com".parse().unwrap(), "pencil");
    config.tls = TlsMode::StartTlsOptional;
    config.sasl.allow_plain_without_tls = true;
    config.sasl.mechanisms = vec![xmpp_sansio::sasl::Mechanism::Plain];
    let conn = ClientConnection::new(config, SeededRng::from_u64(7), now);
    let mut host = Host {
        conn,
        now,
        sent: StreamReader::new(ReaderLimits::default()),
        closed: false,
        bind_id: None,
    };
    host.drain();
    let stage = stage % 4;
    if stage >= 1 {
        host.input(Input::Received(format!("{HEADER}{TLS_FEATURES}").as_bytes()));
    }
    if stage >= 2 {
        host.input(Input::Received(format!("{HEADER}{SASL_FEATURES}").as_bytes()));
    }
    if stage >= 3 {
        host.input(Input::Received(format!("{HEADER}{BIND_FEATURES}").as_bytes()));
        if let Some(id) = host.bind_id.clone() {
            let reply = format!(
                "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <jid>juliet@example.com/r</jid></bind></iq>"
            );
            host.input(Input::Received(reply.as_bytes()));
        }
    }
    let size = usize::from(*chunk).max(1);
    for piece in rest.chunks(size) {
        host.input(Input::Received(piece));
        host.now += Duration::from_secs(u64::from(piece[0] % 8) * 20);
        host.conn.handle_timeout(host.now);
        host.drain();
    }
    host.input(Input::Eof);
    assert!(host.closed, "EOF always ends the connection");
    assert!(host.conn.poll_timeout().is_none());
});
