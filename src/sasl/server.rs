//! The server side: what to offer and the server state machines.

use super::error::{ErrorKind, SaslError};
use super::normalize::prepare_username;
use super::plain::{self, PlainMessage};
use super::scram::{
    self, ClientFirst, Gs2Flag, ScramHash, StoredCredentials, ct_eq, downgrade_protection_hash,
    encode_b64, valid_nonce, xor,
};
use super::{ChannelBindingType, MAX_MESSAGE_LEN, Mechanism, SaslFeatures, TlsInfo};
use crate::rng::SeededRng;

/// Server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's domain: an authzid equal to `username@domain` is the
    /// user's own bare JID and always allowed.
    pub domain: String,
    /// Server secret for deriving fake salts of unknown users
    /// (`HMAC(secret, username)`). Must be random (≥ 32 bytes) and stable
    /// across restarts, or unknown users become recognisable by salts that
    /// change.
    pub secret: Vec<u8>,
    /// Enabled mechanisms. [`ServerConfig::offered`] filters them by what the
    /// connection permits.
    pub mechanisms: Vec<Mechanism>,
    /// Offer and accept PLAIN on unencrypted streams. Default `false`.
    pub allow_plain_without_tls: bool,
    /// Allow an authzid other than the user's own bare JID. The session then
    /// reports it in the [`Identity`] and the host decides whether the
    /// authenticated user may act as it. Default `false`: such an authzid
    /// fails with `invalid-authzid`.
    pub allow_proxy_authz: bool,
    /// Iteration count reported for unknown users. Set it to the count the
    /// host uses for new accounts so fake and real answers look alike.
    pub unknown_user_iterations: u32,
    /// Advertise XEP-0440 `<sasl-channel-binding/>` when `-PLUS` is offered.
    /// Default `true`.
    pub advertise_channel_binding_types: bool,
    /// Send the XEP-0474 `h` attribute in the server-first-message. Default
    /// `true` (clients ignore unknown SCRAM attributes, RFC 5802 §5.1).
    pub downgrade_protection: bool,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("domain", &self.domain)
            .field("mechanisms", &self.mechanisms)
            .field("allow_plain_without_tls", &self.allow_plain_without_tls)
            .field("allow_proxy_authz", &self.allow_proxy_authz)
            .field("unknown_user_iterations", &self.unknown_user_iterations)
            .field(
                "advertise_channel_binding_types",
                &self.advertise_channel_binding_types,
            )
            .field("downgrade_protection", &self.downgrade_protection)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Default iteration count for new credentials and for unknown users
    /// (Prosody's default; above the RFC 5802/7677 minimum of 4096 and below
    /// the client's default cap of 100 000).
    pub const DEFAULT_ITERATIONS: u32 = 10_000;

    /// Configuration with all SCRAM variants and PLAIN enabled (PLAIN only
    /// over TLS), ANONYMOUS and EXTERNAL disabled.
    pub fn new(domain: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        ServerConfig {
            domain: domain.into(),
            secret: secret.into(),
            mechanisms: Mechanism::PASSWORD.to_vec(),
            allow_plain_without_tls: false,
            allow_proxy_authz: false,
            unknown_user_iterations: Self::DEFAULT_ITERATIONS,
            advertise_channel_binding_types: true,
            downgrade_protection: true,
        }
    }

    /// The SASL features to advertise on a connection, strongest first:
    /// `-PLUS` only when the host supplied usable channel-binding data;
    /// PLAIN only over TLS (unless explicitly allowed); EXTERNAL only when a
    /// validated client certificate yielded identities. The XEP-0440 list
    /// holds the usable binding types when a `-PLUS` mechanism is offered.
    pub fn offered(&self, tls: &TlsInfo) -> SaslFeatures {
        let cb_types = tls.usable_binding_types();
        let mechanisms: Vec<String> = Mechanism::PREFERENCE
            .into_iter()
            .filter(|m| self.mechanisms.contains(m))
            .filter(|m| match m {
                m if m.is_plus() => !cb_types.is_empty(),
                Mechanism::Plain => tls.is_encrypted() || self.allow_plain_without_tls,
                Mechanism::External => tls.is_encrypted() && !tls.peer_identities.is_empty(),
                _ => true,
            })
            .map(|m| m.name().to_owned())
            .collect();
        let any_plus = mechanisms.iter().any(|m| m.ends_with("-PLUS"));
        SaslFeatures {
            mechanisms,
            channel_binding_types: (self.advertise_channel_binding_types && any_plus)
                .then(|| cb_types.iter().map(|t| t.name().to_owned()).collect()),
        }
    }
}

/// The host's answer to [`ServerStep::NeedCredentials`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialLookup {
    /// The account exists and is usable.
    Found(StoredCredentials),
    /// The account exists but is disabled: reported as `account-disabled`
    /// only after a correct proof (so it reveals nothing to guessers).
    Disabled(StoredCredentials),
    /// The password has expired: reported as `credentials-expired` only after
    /// a correct proof.
    Expired(StoredCredentials),
    /// No such account (or no credentials for the requested hash). The
    /// exchange continues with a fake salt and fails with `not-authorized`.
    NotFound,
    /// The credential store is unavailable: `temporary-auth-failure`.
    TemporaryFailure,
}

impl From<Option<StoredCredentials>> for CredentialLookup {
    fn from(c: Option<StoredCredentials>) -> Self {
        c.map_or(CredentialLookup::NotFound, CredentialLookup::Found)
    }
}

impl From<StoredCredentials> for CredentialLookup {
    fn from(c: StoredCredentials) -> Self {
        CredentialLookup::Found(c)
    }
}

/// Who authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Password authentication (SCRAM, PLAIN).
    User {
        /// The username (localpart), prepared with UsernameCaseMapped.
        username: String,
        /// A requested authzid other than the user's own bare JID; only
        /// possible with [`ServerConfig::allow_proxy_authz`], and the host
        /// must decide whether it is permitted.
        authzid: Option<String>,
    },
    /// `EXTERNAL`: certificate authentication.
    External {
        /// The certificate identity that was authenticated (one of
        /// [`TlsInfo::peer_identities`]).
        identity: String,
        /// A requested authzid not among the certificate identities (only
        /// with [`ServerConfig::allow_proxy_authz`]; the host decides).
        authzid: Option<String>,
    },
    /// `ANONYMOUS`: the host assigns a temporary JID.
    Anonymous {
        /// The client's trace information, if it sent any.
        trace: Option<String>,
    },
}

/// What the server must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// Send `<challenge/>` with this payload and wait for `<response/>`.
    Challenge(Vec<u8>),
    /// Look up the credentials of `username` and call
    /// [`ServerSession::provide_credentials`].
    NeedCredentials {
        /// The username (localpart), prepared with UsernameCaseMapped.
        username: String,
        /// The authzid the client requested, if any (checked later).
        authzid: Option<String>,
        /// The mechanism: for SCRAM, return the credentials for its hash.
        mechanism: Mechanism,
    },
    /// Send `<success/>` with the additional data (SCRAM's `v=`) and restart
    /// the stream.
    Success {
        /// Additional data for `<success/>`; `None` for an empty element.
        additional_data: Option<Vec<u8>>,
        /// Who authenticated.
        identity: Identity,
    },
    /// Send `<failure/>` with [`SaslError::condition`]. The session is over.
    Failure(SaslError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccountStatus {
    Active,
    Disabled,
    Expired,
}

enum State {
    /// No initial response was sent; an empty challenge went out.
    AwaitInitial,
    PlainNeedCredentials {
        msg: PlainMessage,
        username: String,
    },
    ScramNeedCredentials {
        first: ClientFirst,
        username: String,
        cb_data: Vec<u8>,
    },
    ScramAwaitFinal(Box<ScramServerFinal>),
    Done,
}

struct ScramServerFinal {
    first: ClientFirst,
    username: String,
    cb_data: Vec<u8>,
    server_first: String,
    nonce: String,
    credentials: StoredCredentials,
    real: bool,
    status: AccountStatus,
}

/// A server SASL exchange for one `<auth/>`.
///
/// Created by [`ServerSession::start`] with the mechanism and initial
/// response from `<auth/>`. It pauses with [`ServerStep::NeedCredentials`]
/// for PLAIN and SCRAM; the host answers with
/// [`provide_credentials`](Self::provide_credentials). Each `<response/>` goes
/// to [`step`](Self::step), `<abort/>` to [`abort`](Self::abort). After
/// `Success` or `Failure` every further input yields `Failure`.
pub struct ServerSession(Box<Exchange>);

/// What a [`ServerSession`] holds, boxed: a connection keeps an
/// `Option<ServerSession>`, one pointer wide, for its whole life, and the
/// exchange itself (~0.4 KiB) only while it runs.
struct Exchange {
    mechanism: Option<Mechanism>,
    config: ServerConfig,
    features: SaslFeatures,
    tls: TlsInfo,
    server_nonce: String,
    state: State,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("mechanism", &self.0.mechanism)
            .finish_non_exhaustive()
    }
}

const SERVER_NONCE_LEN: usize = 24;

fn fail(kind: ErrorKind, detail: &'static str) -> ServerStep {
    ServerStep::Failure(SaslError::new(kind, detail))
}

const AUTH_FAILED: SaslError =
    SaslError::new(ErrorKind::AuthenticationFailed, "authentication failed");

impl ServerSession {
    /// Starts an exchange for `<auth mechanism='…'>`.
    ///
    /// `advertised` are the features sent on this stream (from
    /// [`ServerConfig::offered`]); they decide which mechanisms are
    /// acceptable, whether a `y` flag is a downgrade, and the XEP-0474 hash.
    /// `initial_response` is the decoded `<auth/>` payload, `None` when the
    /// element was empty (the server then sends an empty challenge).
    pub fn start(
        config: &ServerConfig,
        advertised: &SaslFeatures,
        mechanism: &str,
        initial_response: Option<&[u8]>,
        tls: &TlsInfo,
        rng: &mut SeededRng,
    ) -> (ServerSession, ServerStep) {
        let nonce = rng.token(SERVER_NONCE_LEN);
        Self::start_with_nonce(config, advertised, mechanism, initial_response, tls, &nonce)
    }

    /// As [`start`](Self::start) with an explicit server nonce part (appended
    /// to the client nonce), for test vectors.
    pub fn start_with_nonce(
        config: &ServerConfig,
        advertised: &SaslFeatures,
        mechanism: &str,
        initial_response: Option<&[u8]>,
        tls: &TlsInfo,
        server_nonce: &str,
    ) -> (ServerSession, ServerStep) {
        let mut session = ServerSession(Box::new(Exchange {
            mechanism: None,
            config: config.clone(),
            features: advertised.clone(),
            tls: tls.clone(),
            server_nonce: server_nonce.to_owned(),
            state: State::Done,
        }));
        let step = session.begin(mechanism, initial_response);
        session.settle(&step);
        (session, step)
    }

    fn begin(&mut self, name: &str, initial: Option<&[u8]>) -> ServerStep {
        if !valid_nonce(&self.0.server_nonce) {
            return fail(ErrorKind::InvalidInput, "invalid server nonce");
        }
        let Some(m) = Mechanism::from_name(name) else {
            return fail(ErrorKind::InvalidMechanism, "unknown mechanism");
        };
        if m.requires_tls() && !self.0.tls.is_encrypted() && !self.0.config.allow_plain_without_tls
        {
            return fail(
                ErrorKind::EncryptionRequired,
                "PLAIN requires an encrypted stream",
            );
        }
        if !self.0.config.mechanisms.contains(&m) || !self.0.features.offers(m) {
            return fail(ErrorKind::InvalidMechanism, "mechanism not offered");
        }
        self.0.mechanism = Some(m);
        match initial {
            None => {
                self.0.state = State::AwaitInitial;
                ServerStep::Challenge(Vec::new())
            }
            Some(data) => self.initial(m, data),
        }
    }

    /// Marks the session finished after a terminal step.
    fn settle(&mut self, step: &ServerStep) {
        if matches!(step, ServerStep::Success { .. } | ServerStep::Failure(_)) {
            self.0.state = State::Done;
        }
    }

    /// The mechanism in use (`None` if `start` rejected it).
    pub fn mechanism(&self) -> Option<Mechanism> {
        self.0.mechanism
    }

    /// Whether the session has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.0.state, State::Done)
    }

    fn initial(&mut self, m: Mechanism, data: &[u8]) -> ServerStep {
        if data.len() > MAX_MESSAGE_LEN {
            return fail(ErrorKind::TooLarge, "initial response too large");
        }
        match m {
            Mechanism::Plain => self.plain_initial(data),
            Mechanism::External => self.external(data),
            Mechanism::Anonymous => anonymous(data),
            _ => match m.scram_hash() {
                Some(_) => self.scram_initial(m, data),
                None => fail(ErrorKind::InvalidMechanism, "unsupported mechanism"),
            },
        }
    }

    fn plain_initial(&mut self, data: &[u8]) -> ServerStep {
        let msg = match plain::parse(data) {
            Ok(msg) => msg,
            Err(e) => return ServerStep::Failure(e),
        };
        let Some(username) = prepare_username(&msg.authcid) else {
            return fail(ErrorKind::Malformed, "username is not a valid localpart");
        };
        let authzid = Some(msg.authzid.clone()).filter(|a| !a.is_empty());
        let step = ServerStep::NeedCredentials {
            username: username.clone(),
            authzid,
            mechanism: Mechanism::Plain,
        };
        self.0.state = State::PlainNeedCredentials { msg, username };
        step
    }

    fn scram_initial(&mut self, m: Mechanism, data: &[u8]) -> ServerStep {
        let first = match scram::parse_client_first(data) {
            Ok(f) => f,
            Err(e) => return ServerStep::Failure(e),
        };
        let cb_data = match &first.flag {
            Gs2Flag::Used(name) => {
                if !m.is_plus() {
                    return fail(
                        ErrorKind::Malformed,
                        "channel binding requested with a non-PLUS mechanism",
                    );
                }
                let binding =
                    ChannelBindingType::from_name(name).and_then(|t| self.0.tls.usable_binding(t));
                match binding {
                    Some(b) => b.data.clone(),
                    None => {
                        return fail(
                            ErrorKind::ChannelBindingUnsupported,
                            "channel-binding type not available on this connection",
                        );
                    }
                }
            }
            _ if m.is_plus() => {
                return fail(
                    ErrorKind::Malformed,
                    "PLUS mechanism without channel binding",
                );
            }
            Gs2Flag::SupportedNotUsed if self.0.features.offers_plus() => {
                return fail(
                    ErrorKind::ChannelBindingDowngrade,
                    "client supports channel binding but server offered PLUS",
                );
            }
            _ => Vec::new(),
        };
        let Some(username) = prepare_username(&first.username) else {
            return fail(ErrorKind::Malformed, "username is not a valid localpart");
        };
        let step = ServerStep::NeedCredentials {
            username: username.clone(),
            authzid: first.authzid.clone().filter(|a| !a.is_empty()),
            mechanism: m,
        };
        self.0.state = State::ScramNeedCredentials {
            first,
            username,
            cb_data,
        };
        step
    }

    fn external(&mut self, data: &[u8]) -> ServerStep {
        let Ok(requested) = std::str::from_utf8(data) else {
            return fail(ErrorKind::Malformed, "EXTERNAL authzid is not UTF-8");
        };
        let ids = &self.0.tls.peer_identities;
        if ids.is_empty() || !self.0.tls.is_encrypted() {
            return ServerStep::Failure(AUTH_FAILED);
        }
        let identity = if requested.is_empty() {
            match ids.as_slice() {
                [one] => Identity::External {
                    identity: one.clone(),
                    authzid: None,
                },
                _ => {
                    return fail(
                        ErrorKind::InvalidAuthzid,
                        "certificate has several identities; an authzid is required",
                    );
                }
            }
        } else if let Some(id) = ids.iter().find(|i| i.eq_ignore_ascii_case(requested)) {
            Identity::External {
                identity: id.clone(),
                authzid: None,
            }
        } else if self.0.config.allow_proxy_authz {
            Identity::External {
                identity: ids[0].clone(),
                authzid: Some(requested.to_owned()),
            }
        } else {
            return fail(
                ErrorKind::InvalidAuthzid,
                "authzid is not an identity of the client certificate",
            );
        };
        ServerStep::Success {
            additional_data: None,
            identity,
        }
    }

    /// Continues after [`ServerStep::NeedCredentials`] with the host's
    /// answer. For SCRAM this returns the server-first challenge (also for
    /// unknown users, with a fake salt); for PLAIN the final result.
    pub fn provide_credentials(&mut self, lookup: impl Into<CredentialLookup>) -> ServerStep {
        let lookup = lookup.into();
        let state = std::mem::replace(&mut self.0.state, State::Done);
        let step = match state {
            State::PlainNeedCredentials { msg, username } => {
                self.plain_verify(&msg, username, lookup)
            }
            State::ScramNeedCredentials {
                first,
                username,
                cb_data,
            } => self.scram_server_first(first, username, cb_data, lookup),
            other => {
                self.0.state = other;
                return fail(
                    ErrorKind::UnexpectedMessage,
                    "no credentials were requested",
                );
            }
        };
        self.settle(&step);
        step
    }

    fn fake_credentials(&self, hash: ScramHash, username: &str) -> StoredCredentials {
        let label = [hash.output_len() as u8];
        let derive = |purpose: &[u8]| {
            hash.hmac(
                &self.0.config.secret,
                &[
                    b"xmpp-sansio SCRAM fake ",
                    purpose,
                    &label,
                    b"\0",
                    username.as_bytes(),
                ],
            )
        };
        let mut salt = derive(b"salt");
        salt.truncate(StoredCredentials::SALT_LEN);
        StoredCredentials {
            hash,
            salt,
            iterations: self.0.config.unknown_user_iterations.max(1),
            stored_key: derive(b"stored-key"),
            server_key: derive(b"server-key"),
        }
    }

    fn check_authzid(
        &self,
        username: &str,
        authzid: Option<&str>,
    ) -> Result<Option<String>, SaslError> {
        let Some(a) = authzid.filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let own = a.split_once('@').is_some_and(|(local, domain)| {
            !domain.contains('/')
                && domain
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(&self.0.config.domain)
                && prepare_username(local).as_deref() == Some(username)
        });
        if own {
            Ok(None)
        } else if self.0.config.allow_proxy_authz {
            Ok(Some(a.to_owned()))
        } else {
            Err(SaslError::new(
                ErrorKind::InvalidAuthzid,
                "authzid is not the user's own bare JID",
            ))
        }
    }

    fn finish_user(
        &self,
        status: AccountStatus,
        username: String,
        authzid: Option<&str>,
        additional_data: Option<Vec<u8>>,
    ) -> ServerStep {
        match status {
            AccountStatus::Disabled => {
                return fail(ErrorKind::AccountDisabled, "account is disabled");
            }
            AccountStatus::Expired => {
                return fail(ErrorKind::CredentialsExpired, "credentials have expired");
            }
            AccountStatus::Active => {}
        }
        match self.check_authzid(&username, authzid) {
            Ok(authzid) => ServerStep::Success {
                additional_data,
                identity: Identity::User { username, authzid },
            },
            Err(e) => ServerStep::Failure(e),
        }
    }

    fn plain_verify(
        &self,
        msg: &PlainMessage,
        username: String,
        lookup: CredentialLookup,
    ) -> ServerStep {
        let (creds, status, real) = match lookup {
            CredentialLookup::TemporaryFailure => {
                return fail(ErrorKind::TemporaryFailure, "credential store unavailable");
            }
            CredentialLookup::Found(c) => (c, AccountStatus::Active, true),
            CredentialLookup::Disabled(c) => (c, AccountStatus::Disabled, true),
            CredentialLookup::Expired(c) => (c, AccountStatus::Expired, true),
            CredentialLookup::NotFound => (
                self.fake_credentials(ScramHash::Sha256, &username),
                AccountStatus::Active,
                false,
            ),
        };
        // Unknown users cost the same PBKDF2 work as real ones.
        let ok = creds.verify_password(&msg.password) & real;
        if !ok {
            return ServerStep::Failure(AUTH_FAILED);
        }
        let authzid = Some(msg.authzid.as_str()).filter(|a| !a.is_empty());
        self.finish_user(status, username, authzid, None)
    }

    fn scram_server_first(
        &mut self,
        first: ClientFirst,
        username: String,
        cb_data: Vec<u8>,
        lookup: CredentialLookup,
    ) -> ServerStep {
        let Some(hash) = self.0.mechanism.and_then(Mechanism::scram_hash) else {
            return fail(ErrorKind::UnexpectedMessage, "not a SCRAM session");
        };
        let usable = |c: &StoredCredentials| c.hash == hash && c.is_well_formed();
        let (credentials, status, real) = match lookup {
            CredentialLookup::TemporaryFailure => {
                return fail(ErrorKind::TemporaryFailure, "credential store unavailable");
            }
            CredentialLookup::Found(c) if usable(&c) => (c, AccountStatus::Active, true),
            CredentialLookup::Disabled(c) if usable(&c) => (c, AccountStatus::Disabled, true),
            CredentialLookup::Expired(c) if usable(&c) => (c, AccountStatus::Expired, true),
            // Unknown user, or no credentials for this hash: continue with a
            // deterministic fake so the answer reveals nothing.
            _ => (
                self.fake_credentials(hash, &username),
                AccountStatus::Active,
                false,
            ),
        };
        let nonce = format!("{}{}", first.nonce, self.0.server_nonce);
        let mut server_first = format!(
            "r={nonce},s={},i={}",
            encode_b64(&credentials.salt),
            credentials.iterations
        );
        if self.0.config.downgrade_protection {
            server_first.push_str(",h=");
            server_first.push_str(&encode_b64(&downgrade_protection_hash(
                hash,
                &self.0.features,
            )));
        }
        let challenge = server_first.clone().into_bytes();
        self.0.state = State::ScramAwaitFinal(Box::new(ScramServerFinal {
            first,
            username,
            cb_data,
            server_first,
            nonce,
            credentials,
            real,
            status,
        }));
        ServerStep::Challenge(challenge)
    }

    /// Processes a `<response/>` payload.
    pub fn step(&mut self, response: &[u8]) -> ServerStep {
        let state = std::mem::replace(&mut self.0.state, State::Done);
        let step = match state {
            State::AwaitInitial => match self.0.mechanism {
                Some(m) => self.initial(m, response),
                None => fail(ErrorKind::UnexpectedMessage, "no mechanism"),
            },
            State::ScramAwaitFinal(s) => self.scram_final(&s, response),
            State::Done => fail(ErrorKind::UnexpectedMessage, "exchange already finished"),
            other => {
                self.0.state = other;
                return fail(
                    ErrorKind::UnexpectedMessage,
                    "response while waiting for credentials",
                );
            }
        };
        self.settle(&step);
        step
    }

    fn scram_final(&self, s: &ScramServerFinal, response: &[u8]) -> ServerStep {
        let cf = match scram::parse_client_final(response) {
            Ok(cf) => cf,
            Err(e) => return ServerStep::Failure(e),
        };
        if cf.nonce != s.nonce {
            return fail(ErrorKind::NonceMismatch, "final nonce differs");
        }
        let mut expected_cb = s.first.gs2_header.as_bytes().to_vec();
        expected_cb.extend_from_slice(&s.cb_data);
        if !ct_eq(&cf.channel_binding, &expected_cb) {
            return fail(
                ErrorKind::ChannelBindingMismatch,
                "channel-binding data does not match",
            );
        }
        let h = s.credentials.hash;
        if cf.proof.len() != h.output_len() {
            return fail(ErrorKind::Malformed, "SCRAM proof has the wrong length");
        }
        let auth_message = format!("{},{},{}", s.first.bare, s.server_first, cf.without_proof);
        let signature = h.hmac(&s.credentials.stored_key, &[auth_message.as_bytes()]);
        let client_key = xor(&cf.proof, &signature);
        let ok = ct_eq(&h.hash(&client_key), &s.credentials.stored_key) & s.real;
        if !ok {
            return ServerStep::Failure(AUTH_FAILED);
        }
        let server_signature = h.hmac(&s.credentials.server_key, &[auth_message.as_bytes()]);
        let v = format!("v={}", encode_b64(&server_signature)).into_bytes();
        self.finish_user(
            s.status,
            s.username.clone(),
            s.first.authzid.as_deref(),
            Some(v),
        )
    }

    /// Handles `<abort/>`: the session ends and the host replies with
    /// `<failure><aborted/></failure>`.
    pub fn abort(&mut self) -> ServerStep {
        self.0.state = State::Done;
        fail(ErrorKind::Aborted, "aborted by the client")
    }
}

fn anonymous(data: &[u8]) -> ServerStep {
    let Ok(trace) = std::str::from_utf8(data) else {
        return fail(ErrorKind::Malformed, "ANONYMOUS trace is not UTF-8");
    };
    if trace.chars().count() > 255 || trace.chars().any(char::is_control) {
        return fail(
            ErrorKind::Malformed,
            "ANONYMOUS trace must be at most 255 printable characters",
        );
    }
    ServerStep::Success {
        additional_data: None,
        identity: Identity::Anonymous {
            trace: Some(trace.to_owned()).filter(|t| !t.is_empty()),
        },
    }
}
