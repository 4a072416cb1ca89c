//! Stream management (XEP-0198): our own client and server connections
//! wired back to back (regressions found by the simulation harness,
//! `tests/simulation.rs`), and counters across 2³² on a resumed session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xmpp_sansio::client::{
    ClientConfig, ClientConnection, ClientEvent, ClientSmConfig, ClientState,
};
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{
    CredentialLookup, Mechanism, ScramHash, StoredCredentials, TlsInfo, TlsVersion,
};
use xmpp_sansio::server::{
    Answer, BindAnswer, DetachedSession, Request, ServerConfig, ServerConnection, ServerEvent,
    ServerSmConfig, ServerState,
};
use xmpp_sansio::sm::{AckPolicy, SmSession};
use xmpp_sansio::stanza::{IqType, Stanza, StanzaKind};
use xmpp_sansio::stream::{Input, NS_PING, Output, Timeouts};

const PASSWORD: &str = "pencil";

fn tls() -> TlsInfo {
    TlsInfo::encrypted(TlsVersion::Tls13, Vec::new())
}

/// Acks after every stanza, so that a miscount shows at once.
fn every_stanza() -> AckPolicy {
    AckPolicy {
        every: 1,
        after: Duration::from_secs(10),
    }
}

fn client_config(dead_peer: Option<Duration>, max: Option<u32>) -> ClientConfig {
    let mut c = ClientConfig::new("juliet@example.org".parse().unwrap(), PASSWORD);
    c.resource = Some("balcony".into());
    c.sasl.mechanisms = vec![Mechanism::ScramSha256];
    c.sasl.min_iterations = 1;
    c.timeouts = Timeouts {
        dead_peer,
        ..Timeouts::default()
    };
    c.stream_management = Some(ClientSmConfig {
        resume: true,
        max,
        acks: every_stanza(),
    });
    c
}

fn server_config(dead_peer: Option<Duration>) -> Arc<ServerConfig> {
    let mut c = ServerConfig::new("example.org", vec![3u8; 32]);
    c.sasl.unknown_user_iterations = 1;
    c.timeouts = Timeouts {
        dead_peer,
        ..Timeouts::default()
    };
    c.stream_management = Some(ServerSmConfig {
        acks: every_stanza(),
        ..ServerSmConfig::default()
    });
    Arc::new(c)
}

/// A client and a server connection exchanging bytes directly; the server
/// side answers requests like a host (and XEP-0199 pings to the domain).
struct Pair {
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
    /// The answer to a resume request.
    detached: Option<DetachedSession>,
}

impl Pair {
    /// Connects `client` to a new server connection (which answers a
    /// resume request with `detached`) and runs the negotiation.
    fn new(
        now: Instant,
        client: ClientConnection,
        server: Arc<ServerConfig>,
        detached: Option<DetachedSession>,
    ) -> Pair {
        let server =
            ServerConnection::new(server, TlsInfo::plaintext(), SeededRng::from_u64(2), now);
        let mut pair = Pair {
            now,
            client,
            server,
            client_events: Vec::new(),
            server_events: Vec::new(),
            detached,
        };
        pair.pump();
        pair
    }

    fn online(client: ClientConfig, server: Arc<ServerConfig>) -> Pair {
        let now = Instant::now();
        let client = ClientConnection::new(client, SeededRng::from_u64(1), now);
        let pair = Pair::new(now, client, server, None);
        assert!(
            matches!(pair.client.state(), ClientState::Online { .. }),
            "{:?}",
            pair.client_events
        );
        assert!(pair.client.stream_management().is_some());
        pair
    }

    /// Moves bytes both ways until both sides are quiet.
    fn pump(&mut self) {
        loop {
            let mut to_server = Vec::new();
            while let Some(out) = self.client.poll_output() {
                match out {
                    Output::Transmit(b) => to_server.extend_from_slice(&b),
                    Output::Event(ClientEvent::StartTls { .. }) => self
                        .client
                        .handle_input(self.now, Input::TlsEstablished(tls()))
                        .unwrap(),
                    Output::Event(e) => self.client_events.push(e),
                }
            }
            if !to_server.is_empty() {
                self.server
                    .handle_input(self.now, Input::Received(&to_server))
                    .unwrap();
            }
            let mut to_client = Vec::new();
            while let Some(out) = self.server.poll_output() {
                match out {
                    Output::Transmit(b) => to_client.extend_from_slice(&b),
                    Output::Event(e) => self.server_event(e),
                }
            }
            if !to_client.is_empty() {
                self.client
                    .handle_input(self.now, Input::Received(&to_client))
                    .unwrap();
            }
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
        }
    }

    fn server_event(&mut self, event: ServerEvent) {
        let now = self.now;
        match &event {
            ServerEvent::StartTls { .. } => {
                self.server
                    .handle_input(now, Input::TlsEstablished(tls()))
                    .unwrap();
            }
            ServerEvent::Request { id, request } => {
                let answer = match request {
                    Request::Credentials { .. } => Answer::Credentials(CredentialLookup::Found(
                        StoredCredentials::derive(ScramHash::Sha256, PASSWORD, b"salt", 1).unwrap(),
                    )),
                    Request::Bind { requested, .. } => Answer::Bind(BindAnswer::Bound {
                        resource: requested.clone().unwrap(),
                    }),
                    Request::Resume { .. } => Answer::Resume(self.detached.take().map(Box::new)),
                };
                self.server.answer(now, *id, answer).unwrap();
            }
            ServerEvent::Stanza(s)
                if s.iq_type() == Some(Ok(IqType::Get))
                    && s.iq_payload().is_some_and(|p| p.is("ping", NS_PING)) =>
            {
                self.server
                    .send_stanza(&s.iq_result(None).unwrap())
                    .unwrap();
            }
            _ => {}
        }
        self.server_events.push(event);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.pump();
    }

    fn assert_alive(&self) {
        assert!(
            matches!(self.client.state(), ClientState::Online { .. }),
            "client: {:?}",
            self.client.state()
        );
        assert_eq!(self.server.state(), &ServerState::Ready);
    }
}

#[test]
fn server_pings_and_the_clients_replies_count_as_stanzas() {
    let mut pair = Pair::online(
        client_config(None, None),
        server_config(Some(Duration::from_secs(30))),
    );
    // The server probes the silent client; the client answers.
    pair.advance(Duration::from_secs(31));
    pair.assert_alive();
    let server = pair.server.stream_management().unwrap();
    let client = pair.client.stream_management().unwrap();
    // The ping went out and was acknowledged (h = 1, not "1 but 0 sent").
    assert_eq!(
        (server.outbound(), server.acked(), server.unacked_len()),
        (1, 1, 0)
    );
    assert_eq!(client.inbound(), 1);
    // The client's reply (and its presence-less session) counted too.
    assert_eq!(
        (client.outbound(), client.acked(), client.unacked_len()),
        (1, 1, 0)
    );
    assert_eq!(server.inbound(), 1);
}

#[test]
fn the_clients_own_ping_probe_counts_as_a_stanza() {
    let mut pair = Pair::online(
        client_config(Some(Duration::from_secs(30)), None),
        server_config(None),
    );
    pair.advance(Duration::from_secs(31));
    pair.assert_alive();
    let client = pair.client.stream_management().unwrap();
    let server = pair.server.stream_management().unwrap();
    assert_eq!(
        (client.outbound(), client.acked(), client.unacked_len()),
        (1, 1, 0)
    );
    assert_eq!(
        (server.inbound(), server.outbound(), server.acked()),
        (1, 1, 1)
    );
    assert_eq!(client.inbound(), 1);
}

#[test]
fn stanza_errors_from_the_server_count_as_stanzas() {
    let mut pair = Pair::online(client_config(None, None), server_config(None));
    let mut presence = Stanza::new(StanzaKind::Presence, "jabber:client");
    presence.set_attr("type", Some("bogus"));
    pair.client.send_stanza(pair.now, presence).unwrap();
    pair.pump();
    pair.assert_alive();
    let error = pair.client_events.iter().find_map(|e| match e {
        ClientEvent::Stanza(s) => s.error(),
        _ => None,
    });
    assert_eq!(
        error.map(|e| e.condition),
        Some(StanzaErrorCondition::BadRequest)
    );
    let server = pair.server.stream_management().unwrap();
    assert_eq!(
        (server.outbound(), server.acked(), server.unacked_len()),
        (1, 1, 0)
    );
    assert_eq!(pair.client.stream_management().unwrap().inbound(), 1);
}

#[test]
fn a_resumed_session_keeps_the_negotiated_resumption_time() {
    let config = client_config(None, Some(60));
    let mut pair = Pair::online(config.clone(), server_config(None));
    // The connection is lost; the server keeps the session for the 60 s
    // the client asked for (not its own 300).
    pair.advance(Duration::from_secs(1));
    pair.server.handle_input(pair.now, Input::Eof).unwrap();
    pair.client.handle_input(pair.now, Input::Eof).unwrap();
    let detached = pair.server.detach().unwrap();
    assert_eq!(detached.max(), Duration::from_secs(60));
    assert_eq!(detached.expires_at(), pair.now + Duration::from_secs(60));
    let resumption = pair.client.take_resumption().unwrap();
    assert_eq!(resumption.max(), Some(60));
    // Resume on a new connection.
    let now = pair.now + Duration::from_secs(5);
    let client = ClientConnection::resume(config, resumption, SeededRng::from_u64(3), now);
    let mut pair2 = Pair::new(now, client, server_config(None), Some(detached));
    assert!(
        pair2
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Resumed { .. })),
        "{:?}",
        pair2.client_events
    );
    // Lost again: the negotiated 60 s still apply.
    pair2.advance(Duration::from_secs(1));
    pair2.server.handle_input(pair2.now, Input::Eof).unwrap();
    let again = pair2.server.detach().unwrap();
    assert_eq!(again.max(), Duration::from_secs(60));
    assert_eq!(again.expires_at(), pair2.now + Duration::from_secs(60));
}

#[test]
fn stanzas_arriving_after_a_clean_close_are_left_to_the_server() {
    let mut pair = Pair::online(client_config(None, None), server_config(None));
    // The client closes while the server is sending it a message: the
    // client's last `<a/>` cannot cover it.
    pair.client.close(pair.now);
    let to = "juliet@example.org".parse().unwrap();
    let mut message = Stanza::chat(&to, "in flight");
    message.set_from(Some("romeo@example.org/orchard"));
    pair.server.send_stanza(&message).unwrap();
    pair.pump();
    assert!(matches!(pair.client.state(), ClientState::Closed(_)));
    assert!(matches!(pair.server.state(), ServerState::Closed(_)));
    // Not handed to the client's host…
    assert!(
        !pair
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Stanza(_))),
        "{:?}",
        pair.client_events
    );
    // … because the server still has it as unacknowledged, to re-route:
    // it is delivered once, not twice.
    let unacked = pair.server.take_unacknowledged();
    assert_eq!(unacked.len(), 1);
    assert_eq!(unacked[0].id(), message.id());
}

/// Takes what a connection wrote, without delivering it.
fn written<E>(poll: impl FnMut() -> Option<Output<E>>) -> (Vec<u8>, Vec<E>) {
    let (mut bytes, mut events) = (Vec::new(), Vec::new());
    for out in std::iter::from_fn(poll) {
        match out {
            Output::Transmit(b) => bytes.extend_from_slice(&b),
            Output::Event(e) => events.push(e),
        }
    }
    (bytes, events)
}

#[test]
fn a_close_the_server_never_saw_keeps_the_session_resumable() {
    let config = client_config(None, None);
    let mut pair = Pair::online(config.clone(), server_config(None));
    // The server sends a message; the client handles it, but its ack and
    // then its close are lost with the connection.
    let to = "juliet@example.org".parse().unwrap();
    let mut message = Stanza::chat(&to, "handled once");
    message.set_from(Some("romeo@example.org/orchard"));
    pair.server.send_stanza(&message).unwrap();
    let (to_client, _) = written(|| pair.server.poll_output());
    pair.client
        .handle_input(pair.now, Input::Received(&to_client))
        .unwrap();
    pair.client.close(pair.now);
    let (lost, events) = written(|| pair.client.poll_output());
    assert!(find(&lost, b"</stream:stream>"));
    assert!(
        matches!(&events[..], [ClientEvent::Stanza(_)]),
        "{events:?}"
    );
    pair.client.handle_input(pair.now, Input::Eof).unwrap();
    pair.server.handle_input(pair.now, Input::Eof).unwrap();
    let (_, events) = written(|| pair.client.poll_output());
    // Not a confirmed close: the session stays resumable, nothing is
    // reported unacknowledged.
    assert_eq!(
        events,
        [ClientEvent::Closed(xmpp_sansio::stream::CloseReason::Eof)]
    );
    let resumption = pair.client.take_resumption().expect("resumable");
    assert_eq!(resumption.session().inbound(), 1);
    let detached = pair.server.detach().unwrap();
    assert_eq!(detached.session().unacked_len(), 1);
    // Resuming tells the server the message was handled: it is not sent
    // again (nor re-routed later).
    let client = ClientConnection::resume(config, resumption, SeededRng::from_u64(4), pair.now);
    let pair = Pair::new(pair.now, client, server_config(None), Some(detached));
    assert!(
        pair.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Resumed { .. }))
    );
    assert!(
        !pair
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Stanza(_))),
        "{:?}",
        pair.client_events
    );
    assert_eq!(pair.server.stream_management().unwrap().unacked_len(), 0);
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_second_enable_is_an_unexpected_request() {
    let mut pair = Pair::online(client_config(None, None), server_config(None));
    pair.server
        .handle_input(
            pair.now,
            Input::Received(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"),
        )
        .unwrap();
    let (bytes, events) = written(|| pair.server.poll_output());
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
    );
    assert!(events.is_empty());
    assert_eq!(pair.server.state(), &ServerState::Ready);
}

// ---------------------------------------------------------------------------
// Counters across 2^32 on a resumed session (the counters and elements on
// their own are tested in tests/stream_management.rs)
// ---------------------------------------------------------------------------

fn chat(body: &str) -> Stanza {
    Stanza::chat(&"juliet@example.org".parse().unwrap(), body)
}

#[test]
fn a_resumed_session_crosses_2_pow_32() {
    // The server's view of a detached session near the wrap, and the
    // client's: the server sent 3 stanzas (queued while detached), the
    // client handled 2 of them before the loss.
    let now = Instant::now();
    let mut server = SmSession::starting_at(10, u32::MAX - 1);
    server.sent(now, chat("1"));
    server.sent(now, chat("2"));
    server.queue(chat("3"));
    assert_eq!(server.outbound(), 1);
    let mut client: SmSession = SmSession::starting_at(u32::MAX - 1, 10);
    client.handled_inbound();
    client.handled_inbound();
    assert_eq!(client.inbound(), 0);
    // <resume h='0'/>: the server drops what the client handled and sends
    // the rest again, keeping its place in the count.
    assert_eq!(
        server.acknowledge_at(now, client.inbound()).unwrap().len(),
        2
    );
    let again: Vec<_> = server.resend(now).cloned().collect();
    assert_eq!(again, [chat("3")]);
    assert_eq!(server.outbound(), 1);
    client.handled_inbound();
    assert_eq!(server.acknowledge(client.inbound()).unwrap(), [chat("3")]);
    assert_eq!(server.unacked_len(), 0);
}
