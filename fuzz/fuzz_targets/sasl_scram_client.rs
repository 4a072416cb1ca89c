//! Fuzzes the SCRAM client state machine: arbitrary server-first and
//! server-final messages (optionally with a valid server-first prefix so the
//! deeper checks run), and arbitrary base64 payload text. Must never panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xmpp_sansio::sasl::xml::decode_payload;
use xmpp_sansio::sasl::{ClientConfig, ClientSession, Mechanism, SaslFeatures, TlsInfo};

#[derive(Arbitrary, Debug)]
struct Input {
    mechanism: u8,
    valid_prefix: bool,
    success_as_challenge: bool,
    server_first: Vec<u8>,
    server_final: Vec<u8>,
    payload_text: String,
}

const MECHS: [Mechanism; 3] = [
    Mechanism::ScramSha1,
    Mechanism::ScramSha256,
    Mechanism::ScramSha512,
];

fuzz_target!(|input: Input| {
    let _ = decode_payload(&input.payload_text);
    let m = MECHS[usize::from(input.mechanism) % MECHS.len()];
    let mut config = ClientConfig::new("user", "pencil");
    config.mechanisms = vec![m];
    // Keep PBKDF2 cheap so the fuzzer explores parsing, not hashing.
    config.min_iterations = 1;
    config.max_iterations = 8;
    let features = SaslFeatures::new([m.name()]);
    let Ok((mut client, _)) =
        ClientSession::start_with_nonce(&config, &features, &TlsInfo::plaintext(), "fuzz")
    else {
        return;
    };
    let mut first = Vec::new();
    if input.valid_prefix {
        first.extend_from_slice(b"r=fuzzS,s=c2FsdA==,i=2");
    }
    first.extend_from_slice(&input.server_first);
    let _ = client.step(&first);
    if input.success_as_challenge {
        let _ = client.step(&input.server_final);
        let _ = client.finish(None);
    } else {
        let _ = client.finish(Some(&input.server_final));
    }
    assert!(client.is_done());
});
