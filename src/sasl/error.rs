//! SASL failure conditions (RFC 6120 §6.5) and the typed error of this module.

use std::fmt;

/// A SASL failure condition as defined by RFC 6120 §6.5.
///
/// These are the children of `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`.
/// Every [`SaslError`] maps to exactly one condition via [`SaslError::condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaslCondition {
    /// `<aborted/>`: the exchange was aborted by the initiating entity (§6.5.1).
    Aborted,
    /// `<account-disabled/>`: the account is temporarily disabled (§6.5.2).
    AccountDisabled,
    /// `<credentials-expired/>`: the credentials have expired (§6.5.3).
    CredentialsExpired,
    /// `<encryption-required/>`: the mechanism needs an encrypted stream (§6.5.4).
    EncryptionRequired,
    /// `<incorrect-encoding/>`: the base64 payload is invalid (§6.5.5).
    IncorrectEncoding,
    /// `<invalid-authzid/>`: the authorization identity is not allowed (§6.5.6).
    InvalidAuthzid,
    /// `<invalid-mechanism/>`: the mechanism is unknown or not offered (§6.5.7).
    InvalidMechanism,
    /// `<malformed-request/>`: the request violates the mechanism's syntax (§6.5.8).
    MalformedRequest,
    /// `<mechanism-too-weak/>`: the mechanism is weaker than policy permits (§6.5.9).
    MechanismTooWeak,
    /// `<not-authorized/>`: the credentials are wrong (§6.5.10).
    NotAuthorized,
    /// `<temporary-auth-failure/>`: a temporary error on the receiving side (§6.5.11).
    TemporaryAuthFailure,
}

impl SaslCondition {
    /// Every condition, in RFC 6120 order.
    pub const ALL: [SaslCondition; 11] = [
        SaslCondition::Aborted,
        SaslCondition::AccountDisabled,
        SaslCondition::CredentialsExpired,
        SaslCondition::EncryptionRequired,
        SaslCondition::IncorrectEncoding,
        SaslCondition::InvalidAuthzid,
        SaslCondition::InvalidMechanism,
        SaslCondition::MalformedRequest,
        SaslCondition::MechanismTooWeak,
        SaslCondition::NotAuthorized,
        SaslCondition::TemporaryAuthFailure,
    ];

    /// The XML element name of the condition, e.g. `"not-authorized"`.
    pub fn name(self) -> &'static str {
        match self {
            SaslCondition::Aborted => "aborted",
            SaslCondition::AccountDisabled => "account-disabled",
            SaslCondition::CredentialsExpired => "credentials-expired",
            SaslCondition::EncryptionRequired => "encryption-required",
            SaslCondition::IncorrectEncoding => "incorrect-encoding",
            SaslCondition::InvalidAuthzid => "invalid-authzid",
            SaslCondition::InvalidMechanism => "invalid-mechanism",
            SaslCondition::MalformedRequest => "malformed-request",
            SaslCondition::MechanismTooWeak => "mechanism-too-weak",
            SaslCondition::NotAuthorized => "not-authorized",
            SaslCondition::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }

    /// Parses an element name back into a condition; `None` if unknown.
    pub fn from_name(name: &str) -> Option<SaslCondition> {
        SaslCondition::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for SaslCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong, precisely. Each kind maps to one [`SaslCondition`].
///
/// Kinds detected by the server are sent to the client as that condition.
/// Kinds detected by the client describe why the client gave up (it then sends
/// `<abort/>`); their condition is the closest RFC 6120 equivalent and is used
/// for reporting only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A payload is not valid base64. → `incorrect-encoding`.
    IncorrectEncoding,
    /// A payload exceeds the size bound; rejected before decoding. → `malformed-request`.
    TooLarge,
    /// A message does not follow the mechanism's syntax (including invalid
    /// UTF-8 and forbidden characters). → `malformed-request`.
    Malformed,
    /// A message arrived in a state where none was expected (for example after
    /// the exchange finished). → `malformed-request`.
    UnexpectedMessage,
    /// SCRAM: the peer sent a mandatory extension (`m=`) that is not supported.
    /// → `malformed-request`.
    UnsupportedExtension,
    /// SCRAM: the combined nonce does not extend the client nonce, or the final
    /// message repeats a different nonce. → `malformed-request`.
    NonceMismatch,
    /// The mechanism is unknown, disabled, or not offered; or client and
    /// server have no mechanism in common. → `invalid-mechanism`.
    InvalidMechanism,
    /// The mechanism may only be used over TLS (PLAIN). → `encryption-required`.
    EncryptionRequired,
    /// Client: the server's SCRAM iteration count is below the configured
    /// minimum. → `mechanism-too-weak`.
    IterationsTooLow,
    /// Client: the server's SCRAM iteration count is above the configured cap
    /// (CPU exhaustion guard). → `aborted`.
    IterationsTooHigh,
    /// Wrong password, wrong proof or unknown user (deliberately not
    /// distinguished). → `not-authorized`.
    AuthenticationFailed,
    /// Client: the server signature (`v=`) is wrong. → `not-authorized`.
    ServerSignatureMismatch,
    /// Client: the server reported success without a server signature.
    /// → `not-authorized`.
    MissingServerSignature,
    /// Client: the server sent a SCRAM `e=` error. → `not-authorized`.
    ServerError,
    /// The channel-binding data in `c=` does not match. → `not-authorized`.
    ChannelBindingMismatch,
    /// Server: the client sent the `y` flag although the server offers
    /// `-PLUS` (downgrade attack detected). → `not-authorized`.
    ChannelBindingDowngrade,
    /// The requested channel-binding type is not available on this
    /// connection. → `not-authorized`.
    ChannelBindingUnsupported,
    /// Client: the XEP-0474 `h` attribute does not match the advertised
    /// mechanisms/channel-binding types (downgrade attack detected), or is
    /// missing although required. → `aborted`.
    DowngradeDetected,
    /// The authorization identity is not permitted. → `invalid-authzid`.
    InvalidAuthzid,
    /// The account is disabled (reported only after a valid proof).
    /// → `account-disabled`.
    AccountDisabled,
    /// The credentials have expired (reported only after a valid proof).
    /// → `credentials-expired`.
    CredentialsExpired,
    /// The host could not look up credentials. → `temporary-auth-failure`.
    TemporaryFailure,
    /// The exchange was aborted. → `aborted`.
    Aborted,
    /// Client: local configuration unusable for the chosen mechanism (for
    /// example a password that fails OpaqueString preparation or an invalid
    /// nonce). → `malformed-request`.
    InvalidInput,
}

impl ErrorKind {
    /// The RFC 6120 §6.5 condition for this kind.
    pub fn condition(self) -> SaslCondition {
        use ErrorKind::*;
        match self {
            IncorrectEncoding => SaslCondition::IncorrectEncoding,
            TooLarge | Malformed | UnexpectedMessage | UnsupportedExtension | NonceMismatch
            | InvalidInput => SaslCondition::MalformedRequest,
            InvalidMechanism => SaslCondition::InvalidMechanism,
            EncryptionRequired => SaslCondition::EncryptionRequired,
            IterationsTooLow => SaslCondition::MechanismTooWeak,
            IterationsTooHigh | DowngradeDetected | Aborted => SaslCondition::Aborted,
            AuthenticationFailed
            | ServerSignatureMismatch
            | MissingServerSignature
            | ServerError
            | ChannelBindingMismatch
            | ChannelBindingDowngrade
            | ChannelBindingUnsupported => SaslCondition::NotAuthorized,
            InvalidAuthzid => SaslCondition::InvalidAuthzid,
            AccountDisabled => SaslCondition::AccountDisabled,
            CredentialsExpired => SaslCondition::CredentialsExpired,
            TemporaryFailure => SaslCondition::TemporaryAuthFailure,
        }
    }
}

/// A SASL failure: a typed [`ErrorKind`] plus a static, non-secret detail.
///
/// The detail never contains user input, passwords or key material, so it is
/// safe to log. It may be sent as `<text/>` inside `<failure/>`, except that a
/// server should not distinguish unknown users from wrong passwords — the
/// detail for both is identical by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaslError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Human-readable explanation (static, contains no input data).
    pub detail: &'static str,
}

impl SaslError {
    /// Creates an error.
    pub const fn new(kind: ErrorKind, detail: &'static str) -> Self {
        SaslError { kind, detail }
    }

    /// The RFC 6120 §6.5 condition to report.
    pub fn condition(&self) -> SaslCondition {
        self.kind.condition()
    }

    pub(crate) const fn malformed(detail: &'static str) -> Self {
        SaslError::new(ErrorKind::Malformed, detail)
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SASL {}: {}", self.condition(), self.detail)
    }
}

impl std::error::Error for SaslError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_names_round_trip() {
        for c in SaslCondition::ALL {
            assert_eq!(SaslCondition::from_name(c.name()), Some(c));
        }
        assert_eq!(SaslCondition::from_name("bogus"), None);
        assert_eq!(SaslCondition::NotAuthorized.to_string(), "not-authorized");
    }

    #[test]
    fn error_display_names_condition() {
        let e = SaslError::new(ErrorKind::IterationsTooLow, "too few");
        assert_eq!(e.condition(), SaslCondition::MechanismTooWeak);
        assert_eq!(e.to_string(), "SASL mechanism-too-weak: too few");
    }
}
