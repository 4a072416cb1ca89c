//! SASL (RFC 4422) for XMPP, both roles, as pure state machines.
//!
//! Nothing here performs IO, reads a clock or asks the OS for randomness:
//! randomness comes from a host-seeded [`SeededRng`](crate::rng::SeededRng),
//! TLS facts (version, channel-binding data, client-certificate identities)
//! come from the host in a [`TlsInfo`], and credentials are looked up by the
//! host when the server session pauses with
//! [`ServerStep::NeedCredentials`].
//!
//! Mechanisms: `PLAIN` (RFC 4616), `SCRAM-SHA-1`, `SCRAM-SHA-256`,
//! `SCRAM-SHA-512` and their `-PLUS` variants (RFC 5802, RFC 7677, channel
//! binding per RFC 5056/5929/9266), `ANONYMOUS` (RFC 4505) and `EXTERNAL`
//! (RFC 4422 App. A). XEP-0440 channel-binding capability and XEP-0474
//! (v0.5.0) SCRAM downgrade protection are supported on both sides.
//!
//! * [`ClientSession`]: picks the strongest usable mechanism and runs it.
//! * [`ServerSession`]: runs the mechanism the client chose.
//! * [`xml`]: the `urn:ietf:params:xml:ns:xmpp-sasl` nonzas and features as
//!   [`minidom::Element`]s, with base64 payload handling and size bounds.
//! * [`StoredCredentials`]: the SCRAM stored form (salt, iterations,
//!   StoredKey, ServerKey) and the helper that derives it from a password.
//!
//! Payloads passed to and returned by the sessions are raw mechanism bytes;
//! base64 is handled by [`xml`].

mod client;
mod error;
mod normalize;
mod plain;
mod scram;
mod server;
pub mod xml;

pub use client::{Authenticated, ClientConfig, ClientSession};
pub use error::{ErrorKind, SaslCondition, SaslError};
pub use normalize::prepare_password;
pub use scram::{ScramHash, StoredCredentials, downgrade_protection_hash};
pub use server::{CredentialLookup, Identity, ServerConfig, ServerSession, ServerStep};

/// Largest raw (decoded) mechanism message accepted from a peer, in bytes.
///
/// Every legitimate message of the supported mechanisms is far smaller (PLAIN
/// fields are bounded at [`MAX_PLAIN_FIELD`], SCRAM messages are a few
/// hundred bytes). Larger input is rejected with `malformed-request` before it
/// is parsed.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Largest PLAIN field (authzid, authcid, password) accepted, in bytes.
///
/// RFC 4616 requires accepting at least 255 octets per field; long passwords
/// from password managers are common, so this is more generous.
pub const MAX_PLAIN_FIELD: usize = 1024;

/// A SASL mechanism supported by this crate.
///
/// The declaration order is the client's order of preference, strongest
/// first (see [`Mechanism::PREFERENCE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// `EXTERNAL` (RFC 4422 App. A): identity from the TLS client certificate.
    /// Preferred when the client enables it (it has a certificate).
    External,
    /// `SCRAM-SHA-512-PLUS`.
    ScramSha512Plus,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677).
    ScramSha256Plus,
    /// `SCRAM-SHA-1-PLUS` (RFC 5802).
    ScramSha1Plus,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `PLAIN` (RFC 4616): only over TLS unless explicitly allowed.
    Plain,
    /// `ANONYMOUS` (RFC 4505).
    Anonymous,
}

impl Mechanism {
    /// All mechanisms, strongest first: the client's order of preference.
    pub const PREFERENCE: [Mechanism; 9] = [
        Mechanism::External,
        Mechanism::ScramSha512Plus,
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
        Mechanism::Anonymous,
    ];

    /// The mechanisms that authenticate with a password, strongest first:
    /// the default allow-list of both roles.
    pub const PASSWORD: [Mechanism; 7] = [
        Mechanism::ScramSha512Plus,
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA mechanism name, e.g. `"SCRAM-SHA-256-PLUS"`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Anonymous => "ANONYMOUS",
            Mechanism::External => "EXTERNAL",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::ScramSha512Plus => "SCRAM-SHA-512-PLUS",
        }
    }

    /// Parses a mechanism name (exact, case-sensitive as RFC 4422 §3.1
    /// registers names in upper case); `None` for unsupported names.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::PREFERENCE.into_iter().find(|m| m.name() == name)
    }

    /// Rank in the preference order: 0 is the strongest.
    pub fn strength_rank(self) -> usize {
        self as usize
    }

    /// The SCRAM hash if this is a SCRAM mechanism.
    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 | Mechanism::ScramSha512Plus => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    /// Whether this is a `-PLUS` (channel-binding) SCRAM variant.
    pub fn is_plus(self) -> bool {
        matches!(
            self,
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus | Mechanism::ScramSha512Plus
        )
    }

    /// Whether this mechanism sends the password in the clear (PLAIN) and so
    /// needs an encrypted stream.
    pub fn requires_tls(self) -> bool {
        self == Mechanism::Plain
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A TLS channel-binding type (RFC 5056 registry).
///
/// Declaration order is the client's preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266): the preferred type for TLS 1.3.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929 §4): hash of the server certificate.
    TlsServerEndPoint,
    /// `tls-unique` (RFC 5929 §3): only defined for TLS ≤ 1.2.
    TlsUnique,
}

impl ChannelBindingType {
    /// All types, in the client's order of preference.
    pub const PREFERENCE: [ChannelBindingType; 3] = [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
        ChannelBindingType::TlsUnique,
    ];

    /// The registered name, e.g. `"tls-exporter"`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
            ChannelBindingType::TlsUnique => "tls-unique",
        }
    }

    /// Parses a registered name; `None` for unknown types.
    pub fn from_name(name: &str) -> Option<ChannelBindingType> {
        ChannelBindingType::PREFERENCE
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// Channel-binding data of one type, computed by the host's TLS library.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The binding type.
    pub kind: ChannelBindingType,
    /// The binding bytes (e.g. the 32-byte `EXPORTER-Channel-Binding` value).
    pub data: Vec<u8>,
}

impl ChannelBinding {
    /// Creates channel-binding data.
    pub fn new(kind: ChannelBindingType, data: impl Into<Vec<u8>>) -> Self {
        ChannelBinding {
            kind,
            data: data.into(),
        }
    }
}

impl std::fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("kind", &self.kind)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The negotiated TLS protocol version, as far as SASL cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 or older: `tls-unique` is defined.
    Tls12OrOlder,
    /// TLS 1.3: `tls-unique` is undefined and never used (RFC 9266 §3).
    Tls13,
}

/// What the host knows about the connection's TLS layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The TLS version, or `None` when the stream is not encrypted.
    pub version: Option<TlsVersion>,
    /// Channel-binding data the host can compute for this connection.
    pub channel_bindings: Vec<ChannelBinding>,
    /// Server side: identities (bare JIDs for c2s, domains for s2s) taken
    /// from the peer's validated TLS client certificate, for `EXTERNAL`.
    /// Empty when no certificate was presented or validation failed.
    pub peer_identities: Vec<String>,
}

impl TlsInfo {
    /// An unencrypted connection.
    pub fn plaintext() -> Self {
        TlsInfo::default()
    }

    /// An encrypted connection of `version` with the given binding data.
    pub fn encrypted(version: TlsVersion, channel_bindings: Vec<ChannelBinding>) -> Self {
        TlsInfo {
            version: Some(version),
            channel_bindings,
            peer_identities: Vec::new(),
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.version.is_some()
    }

    /// The binding data usable on this connection: none without TLS, never
    /// `tls-unique` on TLS 1.3, never empty data.
    pub fn usable_binding(&self, kind: ChannelBindingType) -> Option<&ChannelBinding> {
        let version = self.version?;
        if kind == ChannelBindingType::TlsUnique && version == TlsVersion::Tls13 {
            return None;
        }
        self.channel_bindings
            .iter()
            .find(|b| b.kind == kind && !b.data.is_empty())
    }

    /// All usable binding types, in preference order.
    pub fn usable_binding_types(&self) -> Vec<ChannelBindingType> {
        ChannelBindingType::PREFERENCE
            .into_iter()
            .filter(|t| self.usable_binding(*t).is_some())
            .collect()
    }
}

/// The SASL part of a stream-features element, exactly as advertised.
///
/// Names are kept as strings (not [`Mechanism`]s) because XEP-0474 hashes the
/// advertised list verbatim, including mechanisms this crate does not know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslFeatures {
    /// `<mechanism>` names of `<mechanisms/>`, in document order.
    pub mechanisms: Vec<String>,
    /// XEP-0440 `<sasl-channel-binding/>` types, in document order; `None`
    /// when that feature was not advertised at all.
    pub channel_binding_types: Option<Vec<String>>,
}

impl SaslFeatures {
    /// Features with the given mechanisms and no XEP-0440 element.
    pub fn new<I, S>(mechanisms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SaslFeatures {
            mechanisms: mechanisms.into_iter().map(Into::into).collect(),
            channel_binding_types: None,
        }
    }

    /// Adds an XEP-0440 channel-binding list.
    pub fn with_channel_binding_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.channel_binding_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Whether `mechanism` was advertised.
    pub fn offers(&self, mechanism: Mechanism) -> bool {
        self.mechanisms.iter().any(|m| m == mechanism.name())
    }

    /// Whether any `-PLUS` mechanism was advertised (the server supports
    /// channel binding, RFC 5802 §6).
    pub fn offers_plus(&self) -> bool {
        self.mechanisms.iter().any(|m| m.ends_with("-PLUS"))
    }

    /// Whether the XEP-0440 list contains `kind`. `None` if no list was
    /// advertised.
    pub fn advertises_binding(&self, kind: ChannelBindingType) -> Option<bool> {
        self.channel_binding_types
            .as_ref()
            .map(|l| l.iter().any(|t| t == kind.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip_and_order() {
        for m in Mechanism::PREFERENCE {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert!(
            Mechanism::ScramSha512Plus.strength_rank() < Mechanism::ScramSha1Plus.strength_rank()
        );
        assert!(Mechanism::ScramSha1Plus.strength_rank() < Mechanism::ScramSha512.strength_rank());
        assert!(Mechanism::ScramSha1.strength_rank() < Mechanism::Plain.strength_rank());
        let mut sorted = Mechanism::PREFERENCE;
        sorted.sort();
        assert_eq!(sorted, Mechanism::PREFERENCE);
    }

    #[test]
    fn tls_unique_unusable_on_tls13() {
        let cb = vec![
            ChannelBinding::new(ChannelBindingType::TlsUnique, vec![1; 12]),
            ChannelBinding::new(ChannelBindingType::TlsServerEndPoint, vec![2; 32]),
        ];
        let t13 = TlsInfo::encrypted(TlsVersion::Tls13, cb.clone());
        assert_eq!(
            t13.usable_binding_types(),
            vec![ChannelBindingType::TlsServerEndPoint]
        );
        let t12 = TlsInfo::encrypted(TlsVersion::Tls12OrOlder, cb.clone());
        assert_eq!(
            t12.usable_binding_types(),
            vec![
                ChannelBindingType::TlsServerEndPoint,
                ChannelBindingType::TlsUnique
            ]
        );
        let plain = TlsInfo {
            channel_bindings: cb,
            ..TlsInfo::default()
        };
        assert!(plain.usable_binding_types().is_empty());
    }

    #[test]
    fn binding_type_names() {
        for t in ChannelBindingType::PREFERENCE {
            assert_eq!(ChannelBindingType::from_name(t.name()), Some(t));
        }
        assert_eq!(ChannelBindingType::from_name("tls-foo"), None);
    }
}
