//! The client side: mechanism selection and the client state machines.

use super::error::{ErrorKind, SaslError};
use super::normalize::prepare_password;
use super::scram::{
    self, Gs2Flag, ScramHash, ServerFinal, ct_eq, downgrade_protection_hash, encode_b64,
    encode_saslname, gs2_header, valid_nonce, xor,
};
use super::{ChannelBindingType, MAX_MESSAGE_LEN, Mechanism, SaslFeatures, TlsInfo, plain};
use crate::rng::SeededRng;

/// Client configuration.
#[derive(Clone)]
pub struct ClientConfig {
    /// Authentication identity: the JID localpart, already prepared by the
    /// JID layer (UsernameCaseMapped, RFC 7622). Sent as-is (SCRAM-escaped).
    pub username: String,
    /// The password (prepared with OpaqueString before use). Unused by
    /// `EXTERNAL` and `ANONYMOUS`.
    pub password: String,
    /// Optional authorization identity (a bare JID). `None` means "derive
    /// from the authentication identity" and is what clients normally want.
    pub authzid: Option<String>,
    /// Allow-list of mechanisms the client may use. Selection picks the
    /// strongest offered one in [`Mechanism::PREFERENCE`] order, whatever the
    /// order here. After a SCRAM success for an account, hosts should remove
    /// `PLAIN` for that account ("pinning").
    pub mechanisms: Vec<Mechanism>,
    /// Allow PLAIN on an unencrypted stream. Default `false`; only for
    /// testing against local servers.
    pub allow_plain_without_tls: bool,
    /// Smallest SCRAM iteration count accepted (default 4096, the RFC 5802 /
    /// RFC 7677 minimum).
    pub min_iterations: u32,
    /// Largest SCRAM iteration count accepted (default 100 000), so a
    /// hostile server cannot make the client burn CPU.
    pub max_iterations: u32,
    /// Verify the XEP-0474 `h` attribute when the server sends it (default
    /// `true`).
    pub downgrade_protection: bool,
    /// Fail SCRAM if the server does not send the XEP-0474 `h` attribute
    /// (default `false`: few servers implement it yet).
    pub require_downgrade_protection: bool,
    /// Trace information sent with `ANONYMOUS` (RFC 4505), at most 255
    /// characters.
    pub anonymous_trace: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .field("mechanisms", &self.mechanisms)
            .field("allow_plain_without_tls", &self.allow_plain_without_tls)
            .field("min_iterations", &self.min_iterations)
            .field("max_iterations", &self.max_iterations)
            .field("downgrade_protection", &self.downgrade_protection)
            .field(
                "require_downgrade_protection",
                &self.require_downgrade_protection,
            )
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Default minimum SCRAM iteration count (RFC 5802 §5.1, RFC 7677 §4).
    pub const DEFAULT_MIN_ITERATIONS: u32 = 4096;
    /// Default maximum SCRAM iteration count. Ten times Prosody's default
    /// (10 000) and ~24× ejabberd's (4096): legitimate servers fit, while a
    /// hostile server can cost at most a fraction of a second of CPU per
    /// attempt.
    pub const DEFAULT_MAX_ITERATIONS: u32 = 100_000;

    /// Password authentication with the default allow-list: all SCRAM
    /// variants and PLAIN (PLAIN only over TLS).
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        ClientConfig {
            username: username.into(),
            password: password.into(),
            authzid: None,
            mechanisms: Mechanism::PASSWORD.to_vec(),
            allow_plain_without_tls: false,
            min_iterations: Self::DEFAULT_MIN_ITERATIONS,
            max_iterations: Self::DEFAULT_MAX_ITERATIONS,
            downgrade_protection: true,
            require_downgrade_protection: false,
            anonymous_trace: None,
        }
    }

    /// `ANONYMOUS` only, with optional trace information.
    pub fn anonymous(trace: Option<String>) -> Self {
        ClientConfig {
            mechanisms: vec![Mechanism::Anonymous],
            anonymous_trace: trace,
            ..ClientConfig::new("", "")
        }
    }

    /// `EXTERNAL` only (the host presented a client certificate), with an
    /// optional authzid.
    pub fn external(authzid: Option<String>) -> Self {
        ClientConfig {
            mechanisms: vec![Mechanism::External],
            authzid,
            ..ClientConfig::new("", "")
        }
    }
}

/// The outcome of a successful client exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The mechanism used.
    pub mechanism: Mechanism,
    /// The channel-binding type used (`-PLUS` mechanisms only).
    pub channel_binding: Option<ChannelBindingType>,
}

#[derive(Debug)]
struct Plan {
    mechanism: Mechanism,
    flag: Gs2Flag,
    cb_type: Option<ChannelBindingType>,
    cb_data: Vec<u8>,
}

fn select(
    config: &ClientConfig,
    features: &SaslFeatures,
    tls: &TlsInfo,
) -> Result<Plan, SaslError> {
    // Binding types both sides can use. Without XEP-0440 the only type the
    // server is known to support is RFC 5802's default, `tls-unique`:
    // guessing another one fails against servers that offer -PLUS with
    // tls-unique only (ejabberd 23.01 does, even on TLS 1.3).
    let usable: Vec<ChannelBindingType> = tls
        .usable_binding_types()
        .into_iter()
        .filter(|t| {
            features
                .advertises_binding(*t)
                .unwrap_or(*t == ChannelBindingType::TlsUnique)
        })
        .collect();
    let client_supports_cb =
        !tls.usable_binding_types().is_empty() && config.mechanisms.iter().any(|m| m.is_plus());
    let mut plain_blocked = false;
    for m in Mechanism::PREFERENCE {
        if !config.mechanisms.contains(&m) || !features.offers(m) {
            continue;
        }
        let mut plan = Plan {
            mechanism: m,
            flag: Gs2Flag::NotSupported,
            cb_type: None,
            cb_data: Vec::new(),
        };
        if m.is_plus() {
            let Some(t) = usable.first().copied() else {
                continue;
            };
            let Some(binding) = tls.usable_binding(t) else {
                continue;
            };
            plan.flag = Gs2Flag::Used(t.name().to_owned());
            plan.cb_type = Some(t);
            plan.cb_data = binding.data.clone();
        } else if m.scram_hash().is_some() {
            // RFC 5802 §6: "y" when we could bind but the server offers no
            // -PLUS; "n" otherwise (including "offered -PLUS but no common
            // type", where "y" would make the server fail us).
            if client_supports_cb && !features.offers_plus() {
                plan.flag = Gs2Flag::SupportedNotUsed;
            }
        } else if m == Mechanism::Plain && !tls.is_encrypted() && !config.allow_plain_without_tls {
            plain_blocked = true;
            continue;
        }
        return Ok(plan);
    }
    if plain_blocked {
        Err(SaslError::new(
            ErrorKind::EncryptionRequired,
            "only PLAIN is usable and the stream is not encrypted",
        ))
    } else {
        Err(SaslError::new(
            ErrorKind::InvalidMechanism,
            "no usable mechanism in common with the server",
        ))
    }
}

#[derive(Debug)]
enum ScramStage {
    AwaitServerFirst,
    AwaitServerFinal { server_signature: Vec<u8> },
    Verified,
}

struct ScramClient {
    hash: ScramHash,
    gs2_header: String,
    cb_data: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    password: String,
    features: SaslFeatures,
    min_iterations: u32,
    max_iterations: u32,
    downgrade_protection: bool,
    require_downgrade_protection: bool,
    stage: ScramStage,
}

enum State {
    Scram(Box<ScramClient>),
    /// PLAIN, EXTERNAL, ANONYMOUS: initial response sent, success expected.
    Simple,
    Done,
}

/// A client SASL exchange.
///
/// Created by [`ClientSession::start`], which selects the mechanism and
/// produces the initial response for `<auth/>`. Feed each `<challenge/>`
/// payload to [`step`](Self::step) and the `<success/>` payload to
/// [`finish`](Self::finish). Any error ends the session; the host then sends
/// `<abort/>` (if the server has not already sent `<failure/>`).
pub struct ClientSession {
    mechanism: Mechanism,
    cb_type: Option<ChannelBindingType>,
    state: State,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("mechanism", &self.mechanism)
            .field("channel_binding", &self.cb_type)
            .finish_non_exhaustive()
    }
}

/// Length of the generated client nonce (characters of 6 random bits: 144 bits).
const CLIENT_NONCE_LEN: usize = 24;

impl ClientSession {
    /// Selects the strongest usable mechanism and starts it.
    ///
    /// `features` are the SASL features the server advertised on the
    /// current (post-TLS) stream; `tls` describes the connection. Returns
    /// the session and the initial response to put in `<auth/>` (possibly
    /// empty, which is sent as `=`).
    ///
    /// # Errors
    /// `invalid-mechanism` when nothing usable is offered,
    /// `encryption-required` when only PLAIN is and the stream is not
    /// encrypted, `malformed-request` ([`ErrorKind::InvalidInput`]) when the
    /// configuration cannot be used (empty username, unpreparable password).
    pub fn start(
        config: &ClientConfig,
        features: &SaslFeatures,
        tls: &TlsInfo,
        rng: &mut SeededRng,
    ) -> Result<(ClientSession, Vec<u8>), SaslError> {
        let nonce = rng.token(CLIENT_NONCE_LEN);
        Self::start_with_nonce(config, features, tls, &nonce)
    }

    /// As [`start`](Self::start) with an explicit SCRAM client nonce (for
    /// test vectors). The nonce must be printable ASCII without `,`.
    ///
    /// # Errors
    /// As [`start`](Self::start); an invalid nonce is
    /// [`ErrorKind::InvalidInput`].
    pub fn start_with_nonce(
        config: &ClientConfig,
        features: &SaslFeatures,
        tls: &TlsInfo,
        nonce: &str,
    ) -> Result<(ClientSession, Vec<u8>), SaslError> {
        let plan = select(config, features, tls)?;
        let invalid = |d| SaslError::new(ErrorKind::InvalidInput, d);
        let authzid = config.authzid.as_deref().filter(|a| !a.is_empty());
        let mechanism = plan.mechanism;
        let (state, initial) = match mechanism {
            Mechanism::Plain => {
                let password = prepare_password(&config.password)?;
                let authz = authzid.unwrap_or("");
                if config.username.is_empty()
                    || [authz, &config.username, &password]
                        .iter()
                        .any(|f| f.contains('\0') || f.len() > super::MAX_PLAIN_FIELD)
                {
                    return Err(invalid(
                        "PLAIN fields must be non-empty, NUL-free and bounded",
                    ));
                }
                (
                    State::Simple,
                    plain::encode(authz, &config.username, &password),
                )
            }
            Mechanism::External => {
                let a = authzid.unwrap_or("");
                if a.len() > MAX_MESSAGE_LEN {
                    return Err(invalid("EXTERNAL authzid too long"));
                }
                (State::Simple, a.as_bytes().to_vec())
            }
            Mechanism::Anonymous => {
                let trace = config.anonymous_trace.as_deref().unwrap_or("");
                if trace.chars().count() > 255 || trace.chars().any(char::is_control) {
                    return Err(invalid("ANONYMOUS trace must be ≤255 printable characters"));
                }
                (State::Simple, trace.as_bytes().to_vec())
            }
            _ => {
                let Some(hash) = mechanism.scram_hash() else {
                    return Err(invalid("unsupported mechanism"));
                };
                if !valid_nonce(nonce) {
                    return Err(invalid("SCRAM nonce must be printable ASCII without ','"));
                }
                if config.username.is_empty() || config.username.contains('\0') {
                    return Err(invalid("SCRAM username must be non-empty"));
                }
                if authzid.is_some_and(|a| a.contains('\0')) {
                    return Err(invalid("SCRAM authzid contains NUL"));
                }
                let password = prepare_password(&config.password)?;
                let gs2 = gs2_header(&plan.flag, authzid);
                let bare = format!("n={},r={}", encode_saslname(&config.username), nonce);
                let first = format!("{gs2}{bare}");
                if first.len() > MAX_MESSAGE_LEN {
                    return Err(invalid("SCRAM client-first-message too long"));
                }
                let scram = ScramClient {
                    hash,
                    gs2_header: gs2,
                    cb_data: plan.cb_data,
                    client_first_bare: bare,
                    nonce: nonce.to_owned(),
                    password,
                    features: features.clone(),
                    min_iterations: config.min_iterations,
                    max_iterations: config.max_iterations,
                    downgrade_protection: config.downgrade_protection,
                    require_downgrade_protection: config.require_downgrade_protection,
                    stage: ScramStage::AwaitServerFirst,
                };
                (State::Scram(Box::new(scram)), first.into_bytes())
            }
        };
        Ok((
            ClientSession {
                mechanism,
                cb_type: plan.cb_type,
                state,
            },
            initial,
        ))
    }

    /// The selected mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The channel-binding type in use, if any.
    pub fn channel_binding(&self) -> Option<ChannelBindingType> {
        self.cb_type
    }

    /// Whether the session has ended (success, failure or abort).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Processes a `<challenge/>` payload and returns the `<response/>`
    /// payload.
    ///
    /// For SCRAM the first challenge is the server-first-message; a second
    /// challenge may carry the server-final-message (`v=`), which is verified
    /// here (the response is then empty).
    ///
    /// # Errors
    /// Any error ends the session. See [`ErrorKind`] for the conditions.
    pub fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let result = self.step_inner(challenge);
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn step_inner(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        if challenge.len() > MAX_MESSAGE_LEN {
            return Err(SaslError::new(ErrorKind::TooLarge, "challenge too large"));
        }
        let State::Scram(scram) = &mut self.state else {
            return Err(SaslError::new(
                ErrorKind::UnexpectedMessage,
                "no challenge expected for this mechanism or state",
            ));
        };
        match &scram.stage {
            ScramStage::AwaitServerFirst => scram.server_first(challenge),
            ScramStage::AwaitServerFinal { .. } => {
                scram.server_final(challenge)?;
                Ok(Vec::new())
            }
            ScramStage::Verified => Err(SaslError::new(
                ErrorKind::UnexpectedMessage,
                "challenge after the server signature was verified",
            )),
        }
    }

    /// Processes `<success/>` with its additional data (`None` when the
    /// element was empty). For SCRAM, success is reported only after the
    /// server signature has been verified in constant time, here or in an
    /// earlier [`step`](Self::step).
    ///
    /// # Errors
    /// `not-authorized` ([`ErrorKind::MissingServerSignature`],
    /// [`ErrorKind::ServerSignatureMismatch`]) if the server did not prove
    /// knowledge of the credentials; `malformed-request` for a premature or
    /// malformed success.
    pub fn finish(&mut self, additional_data: Option<&[u8]>) -> Result<Authenticated, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let data = additional_data.filter(|d| !d.is_empty());
        match state {
            State::Done => Err(SaslError::new(
                ErrorKind::UnexpectedMessage,
                "session already finished",
            )),
            State::Simple => {
                if data.is_some() {
                    return Err(SaslError::malformed(
                        "unexpected additional data with success",
                    ));
                }
                Ok(self.authenticated())
            }
            State::Scram(mut scram) => {
                match (&scram.stage, data) {
                    (ScramStage::AwaitServerFinal { .. }, Some(d)) => scram.server_final(d)?,
                    (ScramStage::AwaitServerFinal { .. }, None) => {
                        return Err(SaslError::new(
                            ErrorKind::MissingServerSignature,
                            "success without SCRAM server signature",
                        ));
                    }
                    (ScramStage::Verified, None) => {}
                    (ScramStage::Verified, Some(_)) => {
                        return Err(SaslError::malformed(
                            "additional data after the server signature was verified",
                        ));
                    }
                    (ScramStage::AwaitServerFirst, _) => {
                        return Err(SaslError::new(
                            ErrorKind::UnexpectedMessage,
                            "success before the SCRAM exchange completed",
                        ));
                    }
                }
                Ok(self.authenticated())
            }
        }
    }

    /// Abandons the exchange (the host sends `<abort/>`).
    pub fn abort(&mut self) {
        self.state = State::Done;
    }

    fn authenticated(&self) -> Authenticated {
        Authenticated {
            mechanism: self.mechanism,
            channel_binding: self.cb_type,
        }
    }
}

impl ScramClient {
    fn server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        let sf = scram::parse_server_first(msg)?;
        if sf.nonce.len() <= self.nonce.len() || !sf.nonce.starts_with(&self.nonce) {
            return Err(SaslError::new(
                ErrorKind::NonceMismatch,
                "server nonce does not extend the client nonce",
            ));
        }
        if sf.iterations < self.min_iterations {
            return Err(SaslError::new(
                ErrorKind::IterationsTooLow,
                "SCRAM iteration count below the configured minimum",
            ));
        }
        if sf.iterations > self.max_iterations {
            return Err(SaslError::new(
                ErrorKind::IterationsTooHigh,
                "SCRAM iteration count above the configured maximum",
            ));
        }
        if self.downgrade_protection {
            match &sf.downgrade_hash {
                Some(h) => {
                    let expected = downgrade_protection_hash(self.hash, &self.features);
                    if !ct_eq(h, &expected) {
                        return Err(SaslError::new(
                            ErrorKind::DowngradeDetected,
                            "XEP-0474 hash does not match the advertised features",
                        ));
                    }
                }
                None if self.require_downgrade_protection => {
                    return Err(SaslError::new(
                        ErrorKind::DowngradeDetected,
                        "server sent no XEP-0474 downgrade-protection hash",
                    ));
                }
                None => {}
            }
        }
        // check_text in the parser guarantees UTF-8.
        let server_first = String::from_utf8_lossy(msg);
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = h.client_key(&salted);
        let stored_key = h.hash(&client_key);
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={}", encode_b64(&cbind), sf.nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let signature = h.hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof = xor(&client_key, &signature);
        let server_key = h.server_key(&salted);
        let server_signature = h.hmac(&server_key, &[auth_message.as_bytes()]);
        self.stage = ScramStage::AwaitServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", encode_b64(&proof)).into_bytes())
    }

    fn server_final(&mut self, msg: &[u8]) -> Result<(), SaslError> {
        let ScramStage::AwaitServerFinal { server_signature } = &self.stage else {
            return Err(SaslError::new(
                ErrorKind::UnexpectedMessage,
                "server-final-message not expected now",
            ));
        };
        match scram::parse_server_final(msg)? {
            ServerFinal::Verifier(v) => {
                if ct_eq(&v, server_signature) {
                    self.stage = ScramStage::Verified;
                    Ok(())
                } else {
                    Err(SaslError::new(
                        ErrorKind::ServerSignatureMismatch,
                        "SCRAM server signature is wrong",
                    ))
                }
            }
            ServerFinal::Error(_) => Err(SaslError::new(
                ErrorKind::ServerError,
                "server reported a SCRAM error",
            )),
        }
    }
}
