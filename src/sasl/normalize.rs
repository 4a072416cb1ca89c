//! String preparation for SASL identities and passwords.
//!
//! RFC 5802 §5.1 and RFC 4616 §2 specify SASLprep (RFC 4013), which is
//! obsoleted by the PRECIS framework (RFC 8264/8265). Following RFC 8265 §4.2
//! and current practice, passwords are prepared with the PRECIS
//! **OpaqueString** profile (non-ASCII spaces → U+0020, NFC, controls and
//! unassigned code points rejected, must be non-empty); usernames with the
//! **UsernameCaseMapped** profile, which is also the profile of XMPP
//! localparts (RFC 7622 §3.3). Both come from the maintained `precis-profiles`
//! crate (the same crate the JID module uses). For ASCII input both preparations
//! agree with SASLprep; neither ever panics.

use super::error::{ErrorKind, SaslError};
use precis_profiles::precis_core::profile::Profile;
use precis_profiles::{OpaqueString, UsernameCaseMapped};

/// Prepares a password with the PRECIS OpaqueString profile (RFC 8265 §4.2).
///
/// Both client and server apply this before PBKDF2, so a password typed with
/// a non-breaking space or in decomposed form still matches.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] if the password is empty or contains code
/// points the profile disallows (for example control characters).
pub fn prepare_password(password: &str) -> Result<String, SaslError> {
    OpaqueString::new()
        .enforce(password)
        .map(|s| s.into_owned())
        .map_err(|_| {
            SaslError::new(
                ErrorKind::InvalidInput,
                "password fails PRECIS OpaqueString preparation",
            )
        })
}

/// Prepares a username (XMPP localpart) with the PRECIS UsernameCaseMapped
/// profile; `None` if it is not a valid username.
pub(crate) fn prepare_username(username: &str) -> Option<String> {
    UsernameCaseMapped::new()
        .enforce(username)
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_password_unchanged() {
        assert_eq!(prepare_password("pencil").unwrap(), "pencil");
    }

    #[test]
    fn non_ascii_space_mapped_and_nfc() {
        // U+00A0 NO-BREAK SPACE → U+0020; "e" + U+0301 → U+00E9.
        assert_eq!(prepare_password("a\u{a0}b").unwrap(), "a b");
        assert_eq!(prepare_password("e\u{301}").unwrap(), "\u{e9}");
    }

    #[test]
    fn invalid_passwords_rejected() {
        for bad in ["", "tab\there", "nul\0", "\u{7}"] {
            let e = prepare_password(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn usernames_case_mapped() {
        assert_eq!(prepare_username("User").as_deref(), Some("user"));
        assert_eq!(prepare_username("a b"), None);
        assert_eq!(prepare_username(""), None);
    }
}
