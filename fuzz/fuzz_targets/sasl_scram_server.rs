//! Fuzzes the SCRAM server state machine: arbitrary client-first and
//! client-final messages (optionally after a valid client-first, so the
//! final-message paths are reached), for every SCRAM mechanism, with known
//! and unknown users. Must never panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::xml::SaslNonza;
use xmpp_sansio::sasl::{
    ChannelBinding, ChannelBindingType, CredentialLookup, Mechanism, ServerConfig, ServerSession,
    ServerStep, StoredCredentials, TlsInfo, TlsVersion,
};

#[derive(Arbitrary, Debug)]
struct Input {
    mechanism: u8,
    known_user: bool,
    valid_first: bool,
    first: Vec<u8>,
    last: Vec<u8>,
}

const MECHS: [Mechanism; 6] = [
    Mechanism::ScramSha1,
    Mechanism::ScramSha1Plus,
    Mechanism::ScramSha256,
    Mechanism::ScramSha256Plus,
    Mechanism::ScramSha512,
    Mechanism::ScramSha512Plus,
];

fuzz_target!(|input: Input| {
    let m = MECHS[usize::from(input.mechanism) % MECHS.len()];
    let tls = TlsInfo::encrypted(
        TlsVersion::Tls13,
        vec![ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            vec![7; 32],
        )],
    );
    let config = ServerConfig::new("example.com", b"fuzz secret".to_vec());
    let features = config.offered(&tls);
    let first: Vec<u8> = if input.valid_first {
        let flag = if m.is_plus() { "p=tls-exporter" } else { "n" };
        format!("{flag},,n=user,r=fuzznonce").into_bytes()
    } else {
        input.first.clone()
    };
    let (mut session, mut step) = ServerSession::start(
        &config,
        &features,
        m.name(),
        Some(&first),
        &tls,
        &mut SeededRng::from_u64(0),
    );
    for message in [&input.first, &input.last, &input.last] {
        step = match step {
            ServerStep::NeedCredentials { mechanism, .. } => {
                let lookup = match mechanism.scram_hash() {
                    Some(hash) if input.known_user => {
                        match StoredCredentials::derive(hash, "pencil", b"salt", 1) {
                            Ok(c) => CredentialLookup::Found(c),
                            Err(_) => CredentialLookup::NotFound,
                        }
                    }
                    _ => CredentialLookup::NotFound,
                };
                session.provide_credentials(lookup)
            }
            ServerStep::Challenge(c) => {
                // The XML binding must round-trip every challenge.
                let el = SaslNonza::Challenge(c.clone()).to_element();
                assert_eq!(
                    SaslNonza::from_element(&el).ok(),
                    Some(SaslNonza::Challenge(c))
                );
                session.step(message)
            }
            ServerStep::Success { .. } | ServerStep::Failure(_) => {
                assert!(session.is_done());
                session.step(message)
            }
        };
    }
    let _ = session.abort();
});
