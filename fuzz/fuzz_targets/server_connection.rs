//! Arbitrary client bytes into a `ServerConnection` at every stage of the
//! negotiation. The first input byte picks a valid prefix (nothing, after the
//! header, after STARTTLS, after SASL, after bind); the second picks the
//! chunk size; the rest is fed in chunks, with timeouts in between and an EOF
//! at the end. Requests are answered with fixed credentials and the requested
//! resource; TLS is the identity.
//!
//! Checks: no panic; everything the server sends parses as an XMPP stream
//! (restarting at `<proceed/>` and `<success/>`); exactly one `Closed` event
//! once closed, nothing after it, and `state()` agrees.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xmpp_sansio::ns;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{CredentialLookup, ScramHash, StoredCredentials, TlsInfo, TlsVersion};
use xmpp_sansio::server::{
    Answer, BindAnswer, Request, ServerConfig, ServerConnection, ServerEvent, ServerState,
};
use xmpp_sansio::stream::{Input, Output};
use xmpp_sansio::xml::{Frame, ReaderLimits, StreamReader};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";
const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
// PLAIN "\0juliet\0pencil"
const AUTH: &str =
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>";
const BIND: &str = "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";

fn config() -> Arc<ServerConfig> {
    static C: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = ServerConfig::new("example.org", vec![1u8; 32]);
        c.sasl.unknown_user_iterations = 1;
        c.pre_auth_limits.max_stanza_bytes = 2000;
        Arc::new(c)
    })
    .clone()
}

fn creds() -> StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| StoredCredentials::derive(ScramHash::Sha256, "pencil", b"salt", 1).unwrap())
        .clone()
}

struct Host {
    conn: ServerConnection,
    now: Instant,
    reader: StreamReader,
    closed: bool,
}

impl Host {
    fn input(&mut self, input: Input<'_>) {
        let _ = self.conn.handle_input(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.conn.poll_output() {
            assert!(!self.closed, "output after Closed: {out:?}");
            match out {
                Output::Transmit(bytes) => self.parse(&bytes),
                Output::Event(ServerEvent::StartTls { buffered }) => {
                    let tls = TlsInfo::encrypted(TlsVersion::Tls13, Vec::new());
                    self.conn
                        .handle_input(self.now, Input::TlsEstablished(tls))
                        .unwrap();
                    let _ = self.conn.handle_input(self.now, Input::Received(&buffered));
                }
                Output::Event(ServerEvent::Request { id, request }) => {
                    let answer = match request {
                        Request::Credentials { username, .. } => {
                            Answer::Credentials(if username == "juliet" {
                                CredentialLookup::Found(creds())
                            } else {
                                CredentialLookup::NotFound
                            })
                        }
                        Request::Bind { requested, .. } => Answer::Bind(match requested {
                            Some(r) if r.len() % 3 == 0 => BindAnswer::Refused(
                                xmpp_sansio::error::StanzaErrorCondition::Conflict,
                            ),
                            Some(r) => BindAnswer::Bound { resource: r },
                            None => BindAnswer::Bound {
                                resource: "gen".into(),
                            },
                        }),
                        Request::Resume { .. } => Answer::Resume(None),
                    };
                    self.conn.answer(self.now, id, answer).unwrap();
                }
                Output::Event(ServerEvent::Closed(reason)) => {
                    assert_eq!(self.conn.state(), &ServerState::Closed(reason));
                    self.closed = true;
                }
                Output::Event(_) => {}
            }
        }
        if !self.closed {
            assert!(!matches!(self.conn.state(), ServerState::Closed(_)));
        }
    }

    fn parse(&mut self, bytes: &[u8]) {
        self.reader.feed(bytes);
        loop {
            match self.reader.next_frame() {
                Ok(Some(Frame::Element(e))) => {
                    if e.is("proceed", ns::XMPP_TLS) {
                        let rest = self.reader.take_unparsed();
                        self.reader.feed(&rest);
                    } else if e.is("success", ns::XMPP_SASL) {
                        self.reader.reset();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("server output does not parse: {e}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (stage, chunk, rest) = match data {
        [s, c, rest @ ..] => (*s, usize::from(*c).max(1), rest),
        _ => return,
    };
    let now = Instant::now();
    let mut h = Host {
        conn: ServerConnection::new(config(), TlsInfo::plaintext(), SeededRng::from_u64(1), now),
        now,
        reader: StreamReader::new(ReaderLimits::default()),
        closed: false,
    };
    let prefix: &[&str] = match stage % 5 {
        0 => &[],
        1 => &[HEADER],
        2 => &[HEADER, STARTTLS, HEADER],
        3 => &[HEADER, STARTTLS, HEADER, AUTH, HEADER],
        _ => &[HEADER, STARTTLS, HEADER, AUTH, HEADER, BIND],
    };
    for p in prefix {
        h.input(Input::Received(p.as_bytes()));
    }
    assert!(!h.closed, "the valid prefix must not close the stream");
    for (i, piece) in rest.chunks(chunk).enumerate() {
        h.input(Input::Received(piece));
        if stage & 0x80 != 0 && i % 4 == 3 {
            h.now += Duration::from_secs(100);
            h.conn.handle_timeout(h.now);
            h.drain();
        }
    }
    if stage & 0x40 != 0 {
        h.conn.close(h.now);
        h.drain();
    }
    h.input(Input::Eof);
    assert!(h.closed);
    let _ = h.conn.poll_timeout();
});
