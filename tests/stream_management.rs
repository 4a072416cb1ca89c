//! XEP-0198 stream management: the counters and elements (`sm` module), and
//! our client against our server, wired in memory: enable, acks, loss of the
//! connection, resumption with retransmission, refused resumption, clean
//! close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xmpp_sansio::client::{ClientConfig, ClientConnection, ClientEvent};
use xmpp_sansio::error::StanzaErrorCondition;
use xmpp_sansio::jid::Jid;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{CredentialLookup, ScramHash, StoredCredentials, TlsInfo, TlsVersion};
use xmpp_sansio::server::{
    Answer, BindAnswer, DetachedSession, Request, ServerConfig, ServerConnection, ServerEvent,
};
use xmpp_sansio::sm::{AckError, Disposition, SmNonza, SmParseError, SmSession};
use xmpp_sansio::stanza::{IqType, Stanza};
use xmpp_sansio::stream::{CloseReason, Input, Output};

// ----------------------------------------------------------------------
// Counters and elements
// ----------------------------------------------------------------------

fn chat(n: u32) -> Stanza {
    Stanza::chat(&"romeo@example.org".parse().unwrap(), &n.to_string())
}

fn body(s: &Stanza) -> String {
    s.element()
        .get_child("body", "jabber:client")
        .map(|b| b.text())
        .unwrap_or_default()
}

fn bodies(stanzas: &[Stanza]) -> Vec<String> {
    stanzas.iter().map(body).collect()
}

#[test]
fn counters_wrap_at_2_pow_32() {
    let t = Instant::now();
    let mut sm = SmSession::starting_at(u32::MAX - 1, u32::MAX - 1);
    for n in 0..3 {
        sm.sent(t, chat(n));
        sm.handled_inbound();
    }
    assert_eq!(sm.outbound(), 1);
    assert_eq!(sm.inbound(), 1);
    // h=1 acknowledges all three across the wrap.
    let acked = sm.acknowledge(1).unwrap();
    assert_eq!(bodies(&acked), ["0", "1", "2"]);
    assert_eq!(sm.unacked_len(), 0);
    // Acknowledging the same h again acknowledges nothing.
    assert!(sm.acknowledge(1).unwrap().is_empty());
}

#[test]
fn ack_too_high_or_backwards_is_an_error_and_changes_nothing() {
    let t = Instant::now();
    let mut sm = SmSession::new();
    for n in 0..3 {
        sm.sent(t, chat(n));
    }
    assert_eq!(sm.acknowledge(5), Err(AckError { h: 5, sent: 3 }));
    assert_eq!(sm.unacked_len(), 3);
    assert_eq!(bodies(&sm.acknowledge(2).unwrap()), ["0", "1"]);
    // Backwards (1 < 2) is as wrong as too high.
    assert_eq!(sm.acknowledge(1), Err(AckError { h: 1, sent: 3 }));
    let error = AckError { h: 5, sent: 3 }.to_stream_error();
    let app = error.application.unwrap();
    assert_eq!(app.name(), "handled-count-too-high");
    assert_eq!(
        (app.attr("h"), app.attr("send-count")),
        (Some("5"), Some("3"))
    );
}

#[test]
fn ack_requests_by_count_and_by_time() {
    let t = Instant::now();
    let policy = xmpp_sansio::sm::AckPolicy {
        every: 2,
        after: Duration::from_secs(3),
    };
    let mut sm = SmSession::new();
    assert_eq!(sm.request_deadline(&policy), None);
    sm.sent(t, chat(0));
    assert!(!sm.wants_request(&policy));
    assert_eq!(
        sm.request_deadline(&policy),
        Some(t + Duration::from_secs(3))
    );
    sm.sent(t + Duration::from_secs(1), chat(1));
    assert!(sm.wants_request(&policy));
    sm.requested();
    assert!(!sm.wants_request(&policy));
    assert_eq!(sm.request_deadline(&policy), None);
    // The ack restarts the timer for what is left.
    let later = t + Duration::from_secs(5);
    sm.acknowledge_at(later, 1).unwrap();
    assert_eq!(
        sm.request_deadline(&policy),
        Some(later + Duration::from_secs(3))
    );
}

#[test]
fn queued_stanzas_keep_the_invariant_and_are_resent_in_order() {
    let t = Instant::now();
    let mut sm = SmSession::new();
    sm.sent(t, chat(0));
    sm.queue(chat(1));
    assert_eq!(sm.outbound(), 2);
    assert_eq!(
        bodies(&sm.resend(t).cloned().collect::<Vec<_>>()),
        ["0", "1"]
    );
    assert_eq!(sm.outbound(), 2, "resending does not count again");
    assert_eq!(bodies(&sm.take_unacked()), ["0", "1"]);
    assert_eq!(sm.acked(), 2);
}

#[test]
fn nonzas_round_trip() {
    for n in [
        SmNonza::Enable {
            resume: true,
            max: Some(60),
        },
        SmNonza::Enable {
            resume: false,
            max: None,
        },
        SmNonza::Enabled {
            id: Some("abc".into()),
            resume: true,
            max: Some(300),
            location: Some("[::1]:5222".into()),
        },
        SmNonza::Request,
        SmNonza::Ack { h: u32::MAX },
        SmNonza::Resume {
            previd: "abc".into(),
            h: 0,
        },
        SmNonza::Resumed {
            previd: "abc".into(),
            h: 7,
        },
        SmNonza::Failed {
            h: Some(3),
            condition: StanzaErrorCondition::ItemNotFound,
        },
        SmNonza::Failed {
            h: None,
            condition: StanzaErrorCondition::UnexpectedRequest,
        },
    ] {
        assert_eq!(SmNonza::from_element(&n.to_element()), Ok(n));
    }
}

#[test]
fn nonza_parse_errors() {
    let parse = |s: &str| SmNonza::from_element(&s.parse().unwrap());
    assert_eq!(
        parse("<a xmlns='urn:xmpp:sm:3'/>"),
        Err(SmParseError::MissingAttribute("h"))
    );
    for bad in [
        "",
        "-1",
        "+1",
        "4294967296",
        "1.0",
        " 1",
        "0x10",
        "99999999999",
    ] {
        assert_eq!(
            parse(&format!("<a xmlns='urn:xmpp:sm:3' h='{bad}'/>")),
            Err(SmParseError::BadAttribute("h")),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse("<a xmlns='urn:xmpp:sm:3' h='4294967295'/>"),
        Ok(SmNonza::Ack { h: u32::MAX })
    );
    assert_eq!(
        parse("<enable xmlns='urn:xmpp:sm:3' resume='yes'/>"),
        Err(SmParseError::BadAttribute("resume"))
    );
    assert_eq!(
        parse("<resume xmlns='urn:xmpp:sm:3' h='1'/>"),
        Err(SmParseError::MissingAttribute("previd"))
    );
    assert_eq!(
        parse("<resume xmlns='urn:xmpp:sm:3' previd='' h='1'/>"),
        Err(SmParseError::BadAttribute("previd"))
    );
    assert_eq!(
        parse("<x xmlns='urn:xmpp:sm:3'/>"),
        Err(SmParseError::UnknownElement("x".into()))
    );
    assert_eq!(
        parse("<a xmlns='urn:xmpp:sm:2' h='1'/>"),
        Err(SmParseError::WrongNamespace)
    );
    // An unknown failure condition is kept as undefined-condition.
    assert_eq!(
        parse("<failed xmlns='urn:xmpp:sm:3'><x xmlns='urn:example'/></failed>"),
        Ok(SmNonza::Failed {
            h: None,
            condition: StanzaErrorCondition::UndefinedCondition
        })
    );
}

#[test]
fn dispositions_of_unacknowledged_stanzas() {
    let to: Jid = "juliet@example.org/balcony".parse().unwrap();
    let msg = |t: Option<&str>| {
        let mut s = Stanza::chat(&to, "hi");
        s.set_attr("type", t);
        s
    };
    assert_eq!(Disposition::of(&msg(Some("chat"))), Disposition::Reroute);
    assert_eq!(Disposition::of(&msg(None)), Disposition::Reroute);
    assert_eq!(Disposition::of(&msg(Some("normal"))), Disposition::Reroute);
    assert_eq!(Disposition::of(&msg(Some("groupchat"))), Disposition::Drop);
    assert_eq!(Disposition::of(&msg(Some("headline"))), Disposition::Drop);
    assert_eq!(Disposition::of(&msg(Some("error"))), Disposition::Drop);
    let ping = minidom::Element::bare("ping", "urn:xmpp:ping");
    for (t, d) in [
        (
            IqType::Get,
            Disposition::Bounce(StanzaErrorCondition::ServiceUnavailable),
        ),
        (
            IqType::Set,
            Disposition::Bounce(StanzaErrorCondition::ServiceUnavailable),
        ),
        (IqType::Result, Disposition::Drop),
        (IqType::Error, Disposition::Drop),
    ] {
        assert_eq!(
            Disposition::of(&Stanza::iq(t, Some(&to), "i", ping.clone())),
            d
        );
    }
    let mut presence = Stanza::new(xmpp_sansio::stanza::StanzaKind::Presence, "jabber:client");
    presence.set_to(Some("juliet@example.org/balcony"));
    assert_eq!(Disposition::of(&presence), Disposition::Drop);
}

// ----------------------------------------------------------------------
// Our client against our server, in memory
// ----------------------------------------------------------------------

const PASSWORD: &str = "secret";

fn creds(hash: ScramHash) -> StoredCredentials {
    StoredCredentials::derive(hash, PASSWORD, b"0123456789abcdef", 4096).unwrap()
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new("juliet@example.org".parse().unwrap(), PASSWORD);
    c.resource = Some("balcony".into());
    c
}

fn tls() -> TlsInfo {
    TlsInfo::encrypted(TlsVersion::Tls13, Vec::new())
}

/// One client connection and one server connection, bytes delivered at
/// once (unless `cut`), with an identity TLS layer.
struct Pair {
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
    /// The session the server host keeps for resumption.
    detached: Option<DetachedSession>,
    /// Bytes from the client are lost from now on (the link is cut).
    cut: bool,
}

impl Pair {
    fn connect(
        now: Instant,
        client: ClientConnection,
        seed: u64,
        detached: Option<DetachedSession>,
    ) -> Pair {
        let server = ServerConnection::new(
            Arc::new(ServerConfig::new("example.org", vec![1; 32])),
            TlsInfo::plaintext(),
            SeededRng::from_u64(seed),
            now,
        );
        let mut p = Pair {
            now,
            client,
            server,
            client_events: Vec::new(),
            server_events: Vec::new(),
            detached,
            cut: false,
        };
        p.run();
        p
    }

    fn run(&mut self) {
        loop {
            let mut progress = false;
            while let Some(out) = self.client.poll_output() {
                progress = true;
                match out {
                    Output::Transmit(b) if !self.cut => self
                        .server
                        .handle_input(self.now, Input::Received(&b))
                        .unwrap(),
                    Output::Transmit(_) => {}
                    Output::Event(ClientEvent::StartTls { buffered }) => {
                        assert!(buffered.is_empty());
                        self.client
                            .handle_input(self.now, Input::TlsEstablished(tls()))
                            .unwrap();
                    }
                    Output::Event(e) => self.client_events.push(e),
                }
            }
            while let Some(out) = self.server.poll_output() {
                progress = true;
                match out {
                    Output::Transmit(b) if !self.cut => self
                        .client
                        .handle_input(self.now, Input::Received(&b))
                        .unwrap(),
                    Output::Transmit(_) => {}
                    Output::Event(ServerEvent::StartTls { buffered }) => {
                        self.server
                            .handle_input(self.now, Input::TlsEstablished(tls()))
                            .unwrap();
                        if !buffered.is_empty() {
                            self.server
                                .handle_input(self.now, Input::Received(&buffered))
                                .unwrap();
                        }
                    }
                    Output::Event(ServerEvent::Request { id, request }) => {
                        let answer = match request {
                            Request::Credentials { mechanism, .. } => {
                                let hash = mechanism.scram_hash().unwrap_or(ScramHash::Sha256);
                                Answer::Credentials(CredentialLookup::Found(creds(hash)))
                            }
                            Request::Bind { requested, .. } => Answer::Bind(BindAnswer::Bound {
                                resource: requested.unwrap(),
                            }),
                            Request::Resume { .. } => {
                                Answer::Resume(self.detached.take().map(Box::new))
                            }
                        };
                        self.server.answer(self.now, id, answer).unwrap();
                    }
                    Output::Event(e) => self.server_events.push(e),
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn send(&mut self, n: u32) {
        self.client.send_stanza(self.now, chat(n)).unwrap();
        self.run();
    }

    fn server_send(&mut self, n: u32) {
        let mut s = Stanza::chat(
            &"juliet@example.org/balcony".parse().unwrap(),
            &n.to_string(),
        );
        s.set_from(Some("romeo@example.org/garden"));
        self.server.send_stanza(&s).unwrap();
        self.run();
    }

    /// The connection is lost: both sides see the end of input.
    fn lose(&mut self) {
        self.cut = true;
        self.client.handle_input(self.now, Input::Eof).unwrap();
        self.server.handle_input(self.now, Input::Eof).unwrap();
        self.run();
        self.detached = self.server.detach();
    }

    fn received_by_server(&self) -> Vec<String> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Stanza(s) => Some(body(s)),
                _ => None,
            })
            .collect()
    }

    fn received_by_client(&self) -> Vec<String> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Stanza(s) => Some(body(s)),
                _ => None,
            })
            .collect()
    }

    fn acknowledged(&self) -> Vec<String> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Acknowledged(s) => Some(bodies(s)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn unacknowledged(&self) -> Vec<String> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Unacknowledged(s) => Some(bodies(s)),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn online_pair() -> Pair {
    let now = Instant::now();
    let client = ClientConnection::new(client_config(), SeededRng::from_u64(1), now);
    let p = Pair::connect(now, client, 2, None);
    assert!(
        p.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Online { .. })),
        "{:?}",
        p.client_events
    );
    assert!(p.client.resumption_id().is_some());
    assert_eq!(p.client.resumption_id(), p.server.resumption_id());
    p
}

#[test]
fn client_enables_and_gets_acknowledgements() {
    let mut p = online_pair();
    for n in 0..7 {
        p.send(n);
    }
    // The 5th stanza triggered <r/>; the server answered <a h='5'/>.
    assert_eq!(p.acknowledged(), ["0", "1", "2", "3", "4"]);
    assert_eq!(p.client.stream_management().unwrap().unacked_len(), 2);
    // The rest by time.
    p.now += Duration::from_secs(10);
    p.client.handle_timeout(p.now);
    p.run();
    assert_eq!(p.acknowledged().len(), 7);
    assert_eq!(p.received_by_server().len(), 7);
    // The server's outbound stanzas are acknowledged by the client.
    for n in 0..5 {
        p.server_send(n);
    }
    assert_eq!(p.received_by_client(), ["0", "1", "2", "3", "4"]);
    assert_eq!(p.server.stream_management().unwrap().unacked_len(), 0);
    assert_eq!(p.client.stream_management().unwrap().inbound(), 5);
}

#[test]
fn lost_connection_is_resumed_and_nothing_is_lost_or_doubled() {
    let mut p = online_pair();
    for n in 0..3 {
        p.send(n);
    }
    for n in 0..2 {
        p.server_send(n);
    }
    // The link dies: the client's 4th message and the server's 3rd never
    // arrive.
    p.cut = true;
    p.client.send_stanza(p.now, chat(3)).unwrap();
    let mut s = Stanza::chat(&"juliet@example.org/balcony".parse().unwrap(), "2");
    s.set_from(Some("romeo@example.org/garden"));
    p.server.send_stanza(&s).unwrap();
    p.run();
    p.lose();
    assert!(matches!(
        p.client_events.last(),
        Some(ClientEvent::Closed(CloseReason::Eof))
    ));
    assert!(p.unacknowledged().is_empty(), "kept for resumption");
    let resumption = p.client.take_resumption().expect("resumable");
    assert_eq!(resumption.session().unacked_len(), 4);
    let mut detached = p.detached.take().expect("server keeps the session");
    // Routed to the session while it is detached.
    let mut queued = Stanza::chat(&"juliet@example.org/balcony".parse().unwrap(), "3");
    queued.set_from(Some("romeo@example.org/garden"));
    detached.queue(queued).unwrap();

    let before_server = p.received_by_server();
    let before_client = p.received_by_client();
    assert_eq!(before_server, ["0", "1", "2"]);
    assert_eq!(before_client, ["0", "1"]);

    let client =
        ClientConnection::resume(client_config(), resumption, SeededRng::from_u64(3), p.now);
    let q = Pair::connect(p.now, client, 4, Some(detached));
    assert!(
        q.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Resumed { jid } if jid.as_str() == "juliet@example.org/balcony")),
        "{:?}",
        q.client_events
    );
    assert!(
        !q.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Online { .. }))
    );
    assert!(
        q.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Resumed { .. }))
    );
    // Exactly once, in order, on both sides.
    let mut server_all = before_server;
    server_all.extend(q.received_by_server());
    assert_eq!(server_all, ["0", "1", "2", "3"]);
    let mut client_all = before_client;
    client_all.extend(q.received_by_client());
    assert_eq!(client_all, ["0", "1", "2", "3"]);
    // The resumed <resumed h='3'/> confirmed the three the server had.
    let mut acked = p.acknowledged();
    acked.extend(q.acknowledged());
    assert!(acked.starts_with(&["0".to_owned(), "1".to_owned(), "2".to_owned()]));
    assert!(q.unacknowledged().is_empty());
}

#[test]
fn refused_resumption_reports_unacknowledged_and_binds_anew() {
    let mut p = online_pair();
    p.cut = true;
    p.client.send_stanza(p.now, chat(0)).unwrap();
    p.client.send_stanza(p.now, chat(1)).unwrap();
    p.run();
    p.lose();
    let resumption = p.client.take_resumption().unwrap();
    // The server host no longer has the session (expired).
    let expired = p.detached.take().unwrap();
    assert_eq!(expired.into_unacknowledged().len(), 0);
    let client =
        ClientConnection::resume(client_config(), resumption, SeededRng::from_u64(3), p.now);
    let q = Pair::connect(p.now, client, 4, None);
    assert_eq!(q.unacknowledged(), ["0", "1"]);
    let pos_unacked = q
        .client_events
        .iter()
        .position(|e| matches!(e, ClientEvent::Unacknowledged(_)))
        .unwrap();
    let pos_online = q
        .client_events
        .iter()
        .position(|e| matches!(e, ClientEvent::Online { .. }))
        .unwrap();
    assert!(pos_unacked < pos_online);
    // A fresh session, with stream management enabled again.
    assert!(q.client.resumption_id().is_some());
    assert_eq!(q.client.stream_management().unwrap().outbound(), 0);
}

#[test]
fn clean_close_confirms_everything() {
    let mut p = online_pair();
    p.send(0);
    p.send(1);
    p.server_send(7);
    assert_eq!(p.client.stream_management().unwrap().unacked_len(), 2);
    p.client.close(p.now);
    p.run();
    assert!(matches!(
        p.client_events.last(),
        Some(ClientEvent::Closed(CloseReason::Closed))
    ));
    assert_eq!(p.acknowledged(), ["0", "1"]);
    assert!(p.unacknowledged().is_empty());
    assert!(p.client.take_resumption().is_none());
    // The server got the client's final <a/>: nothing of its own is left.
    assert!(p.server.take_unacknowledged().is_empty());
    assert!(p.server.detach().is_none());
}

#[test]
fn lost_connection_without_resumption_reports_unacknowledged() {
    let now = Instant::now();
    let mut config = client_config();
    config.stream_management.as_mut().unwrap().resume = false;
    let client = ClientConnection::new(config, SeededRng::from_u64(1), now);
    let mut p = Pair::connect(now, client, 2, None);
    assert!(p.client.stream_management().is_some());
    assert!(p.client.resumption_id().is_none());
    p.cut = true;
    p.client.send_stanza(p.now, chat(0)).unwrap();
    p.run();
    p.lose();
    assert_eq!(p.unacknowledged(), ["0"]);
    assert!(p.client.take_resumption().is_none());
    assert!(p.detached.is_none());
}

#[test]
fn server_without_sm_means_online_without_it() {
    let now = Instant::now();
    let client = ClientConnection::new(client_config(), SeededRng::from_u64(1), now);
    let mut config = ServerConfig::new("example.org", vec![1; 32]);
    config.stream_management = None;
    let server = ServerConnection::new(
        Arc::new(config),
        TlsInfo::plaintext(),
        SeededRng::from_u64(2),
        now,
    );
    let mut p = Pair {
        now,
        client,
        server,
        client_events: Vec::new(),
        server_events: Vec::new(),
        detached: None,
        cut: false,
    };
    p.run();
    assert!(
        p.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Online { .. }))
    );
    assert!(p.client.stream_management().is_none());
    p.send(0);
    assert_eq!(p.received_by_server(), ["0"]);
}

#[test]
fn client_refuses_bogus_acks_from_the_server() {
    let mut p = online_pair();
    p.send(0);
    let bogus = SmNonza::Ack { h: 2 }.to_element();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(String::from(&bogus).as_bytes());
    p.client
        .handle_input(p.now, Input::Received(&bytes))
        .unwrap();
    p.run();
    assert!(matches!(
        p.client_events.last(),
        Some(ClientEvent::Closed(CloseReason::ProtocolViolation(e)))
            if e.application.as_ref().is_some_and(|a| a.name() == "handled-count-too-high")
    ));
    // Not resumable after a protocol error: the stanza is reported.
    assert_eq!(p.unacknowledged(), ["0"]);
}

#[test]
fn stanzas_the_machines_answer_themselves_count_on_both_sides() {
    let mut p = online_pair();
    // The server pings the client: the client answers by itself.
    let ping = Stanza::iq(
        IqType::Get,
        Some(&"juliet@example.org/balcony".parse().unwrap()),
        "p1",
        minidom::Element::bare("ping", "urn:xmpp:ping"),
    );
    p.server.send_stanza(&ping).unwrap();
    p.run();
    // The client sends an iq the server rejects by itself (no payload).
    let bogus: minidom::Element = "<iq xmlns='jabber:client' type='get' id='x'/>"
        .parse()
        .unwrap();
    let bogus = Stanza::from_element(bogus, "jabber:client").unwrap();
    p.client.send_stanza(p.now, bogus).unwrap();
    p.run();
    let (c, s) = (
        p.client.stream_management().unwrap().clone(),
        p.server.stream_management().unwrap().clone(),
    );
    // Two stanzas each way: ping + error reply; pong + bogus iq.
    assert_eq!((c.outbound(), s.inbound()), (2, 2));
    assert_eq!((s.outbound(), c.inbound()), (2, 2));
    // Acks by time on both sides agree with what was sent.
    p.now += Duration::from_secs(10);
    p.client.handle_timeout(p.now);
    p.server.handle_timeout(p.now);
    p.run();
    assert_eq!(p.client.stream_management().unwrap().unacked_len(), 0);
    assert_eq!(p.server.stream_management().unwrap().unacked_len(), 0);
    assert!(
        !p.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed(_)))
    );
}
