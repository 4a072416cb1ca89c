//! PLAIN message format (RFC 4616 §2).

use super::error::SaslError;
use super::{MAX_MESSAGE_LEN, MAX_PLAIN_FIELD};

/// A parsed PLAIN message: `[authzid] NUL authcid NUL passwd`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainMessage {
    /// Empty when the client sent no authzid.
    pub authzid: String,
    pub authcid: String,
    pub password: String,
}

/// Builds a PLAIN message. The caller has checked the fields contain no NUL.
pub(crate) fn encode(authzid: &str, authcid: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(authcid.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// Parses a PLAIN message (RFC 4616 §2 ABNF): exactly two NULs, UTF-8 fields,
/// non-empty authcid and password, each field at most [`MAX_PLAIN_FIELD`].
pub(crate) fn parse(msg: &[u8]) -> Result<PlainMessage, SaslError> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(SaslError::new(
            super::ErrorKind::TooLarge,
            "PLAIN message too large",
        ));
    }
    let mut parts = msg.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::malformed(
            "PLAIN message must have exactly three NUL-separated fields",
        ));
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::malformed(
            "PLAIN authcid and password must not be empty",
        ));
    }
    if [authzid, authcid, password]
        .iter()
        .any(|f| f.len() > MAX_PLAIN_FIELD)
    {
        return Err(SaslError::new(
            super::ErrorKind::TooLarge,
            "PLAIN field too long",
        ));
    }
    let utf8 = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| SaslError::malformed("PLAIN field is not UTF-8"))
    };
    Ok(PlainMessage {
        authzid: utf8(authzid)?,
        authcid: utf8(authcid)?,
        password: utf8(password)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::ErrorKind;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc4616_vectors() {
        assert_eq!(
            hex(&encode("", "tim", "tanstaaftanstaaf")),
            "0074696d0074616e737461616674616e7374616166"
        );
        assert_eq!(
            hex(&encode("Ursel", "Kurt", "xipj3plmq")),
            "557273656c004b757274007869706a33706c6d71"
        );
        let m = parse(&encode("Ursel", "Kurt", "xipj3plmq")).unwrap();
        assert_eq!(
            m,
            PlainMessage {
                authzid: "Ursel".into(),
                authcid: "Kurt".into(),
                password: "xipj3plmq".into()
            }
        );
    }

    #[test]
    fn malformed_plain() {
        for bad in [
            &b""[..],
            b"\0user",
            b"\0user\0pw\0x",
            b"\0\0pw",
            b"\0user\0",
            b"\0us\xffer\0pw",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().kind,
                ErrorKind::Malformed,
                "{bad:?}"
            );
        }
        let mut long = b"\0user\0".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_PLAIN_FIELD + 1));
        assert_eq!(parse(&long).unwrap_err().kind, ErrorKind::TooLarge);
    }
}
