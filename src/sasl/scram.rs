//! SCRAM (RFC 5802, RFC 7677, SHA-512 per draft-melnikov-scram-sha-512):
//! key derivation, stored credentials, message syntax, XEP-0474.
//!
//! Hashes, HMAC and PBKDF2 come from the RustCrypto crates (`sha1`, `sha2`,
//! `hmac`, `pbkdf2`); base64 from `base64`; secret comparisons from `subtle`.

use super::error::{ErrorKind, SaslError};
use super::normalize::prepare_password;
use super::{MAX_MESSAGE_LEN, SaslFeatures};
use crate::rng::SeededRng;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-1 (`SCRAM-SHA-1`), 20-byte keys.
    Sha1,
    /// SHA-256 (`SCRAM-SHA-256`), 32-byte keys.
    Sha256,
    /// SHA-512 (`SCRAM-SHA-512`), 64-byte keys.
    Sha512,
}

fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails; the fallback
    // keeps the function total without a panic path.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

impl ScramHash {
    /// Output length in bytes (= key length): 20, 32 or 64.
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    /// `H(data)`.
    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, parts[0] || parts[1] || …)`.
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => hmac_parts::<Hmac<Sha1>>(key, parts),
            ScramHash::Sha256 => hmac_parts::<Hmac<Sha256>>(key, parts),
            ScramHash::Sha512 => hmac_parts::<Hmac<Sha512>>(key, parts),
        }
    }

    /// `Hi(password, salt, i)` = PBKDF2-HMAC-H with dkLen = output length.
    /// `iterations` must be ≥ 1 (callers check).
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let rounds = iterations.max(1);
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, rounds, &mut out),
            ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut out),
            ScramHash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut out),
        }
        out
    }

    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`.
    pub(crate) fn client_key(self, salted: &[u8]) -> Vec<u8> {
        self.hmac(salted, &[b"Client Key"])
    }

    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub(crate) fn server_key(self, salted: &[u8]) -> Vec<u8> {
        self.hmac(salted, &[b"Server Key"])
    }
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `a XOR b` for equal-length inputs.
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The SCRAM stored form of a password (RFC 5802 §3): what a server keeps
/// instead of the password.
///
/// The server never needs the plaintext password and never runs PBKDF2 for a
/// SCRAM login: it verifies proofs with `StoredKey` and signs with
/// `ServerKey`. A user may have one of these per hash; the host returns the
/// one whose [`hash`](Self::hash) matches the requested mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The hash these keys were derived with.
    pub hash: ScramHash,
    /// The salt (non-empty).
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("hash", &self.hash)
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl StoredCredentials {
    /// Salt length used by [`StoredCredentials::generate`] and for fake
    /// salts of unknown users, in bytes.
    pub const SALT_LEN: usize = 16;

    /// Derives the stored form from a password with an explicit salt.
    ///
    /// The password is prepared with OpaqueString (see
    /// [`prepare_password`]) first, as the client does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the password fails preparation, the
    /// salt is empty or `iterations` is 0.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        if salt.is_empty() || iterations == 0 {
            return Err(SaslError::new(
                ErrorKind::InvalidInput,
                "salt must be non-empty and iterations positive",
            ));
        }
        let prepared = prepare_password(password)?;
        let salted = hash.salted_password(prepared.as_bytes(), salt, iterations);
        Ok(StoredCredentials::from_salted_password(
            hash, &salted, salt, iterations,
        ))
    }

    /// Derives the stored form with a fresh random salt of
    /// [`Self::SALT_LEN`] bytes drawn from `rng`.
    ///
    /// # Errors
    /// As [`StoredCredentials::derive`].
    pub fn generate(
        hash: ScramHash,
        password: &str,
        iterations: u32,
        rng: &mut SeededRng,
    ) -> Result<Self, SaslError> {
        let mut salt = [0u8; Self::SALT_LEN];
        rng.fill(&mut salt);
        StoredCredentials::derive(hash, password, &salt, iterations)
    }

    pub(crate) fn from_salted_password(
        hash: ScramHash,
        salted: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        StoredCredentials {
            hash,
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&hash.client_key(salted)),
            server_key: hash.server_key(salted),
        }
    }

    /// Whether `password` matches (used by the PLAIN server): derives with
    /// the stored salt and iteration count and compares StoredKey in
    /// constant time. A password failing preparation never matches.
    pub(crate) fn verify_password(&self, password: &str) -> bool {
        let Ok(prepared) = prepare_password(password) else {
            return false;
        };
        if self.salt.is_empty() || self.iterations == 0 {
            return false;
        }
        let salted = self
            .hash
            .salted_password(prepared.as_bytes(), &self.salt, self.iterations);
        let stored = self.hash.hash(&self.hash.client_key(&salted));
        ct_eq(&stored, &self.stored_key)
    }

    /// Whether the stored form is internally consistent for its hash.
    pub(crate) fn is_well_formed(&self) -> bool {
        !self.salt.is_empty()
            && self.iterations > 0
            && self.stored_key.len() == self.hash.output_len()
            && self.server_key.len() == self.hash.output_len()
    }
}

/// XEP-0474 (v0.5.0) downgrade-protection hash: `H(S)` where `S` is the
/// advertised mechanism names sorted by octets and joined with `0x1E`,
/// followed — if XEP-0440 was advertised — by `0x1F` and the sorted
/// channel-binding type names joined with `0x1E`.
///
/// The SCRAM attribute is `h=` + base64 of this value.
pub fn downgrade_protection_hash(hash: ScramHash, features: &SaslFeatures) -> Vec<u8> {
    fn sorted_joined(items: &[String], out: &mut Vec<u8>) {
        let mut v: Vec<&[u8]> = items.iter().map(|s| s.as_bytes()).collect();
        v.sort_unstable();
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                out.push(0x1e);
            }
            out.extend_from_slice(s);
        }
    }
    let mut s = Vec::new();
    sorted_joined(&features.mechanisms, &mut s);
    if let Some(cb) = &features.channel_binding_types {
        s.push(0x1f);
        sorted_joined(cb, &mut s);
    }
    hash.hash(&s)
}

// ---------------------------------------------------------------------------
// Message syntax (RFC 5802 §7)
// ---------------------------------------------------------------------------

/// Encodes a `saslname`: `=` → `=3D`, `,` → `=2C`.
pub(crate) fn encode_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes a `saslname`; any `=` not starting `=2C`/`=3D` is an error, as is
/// an empty name or a NUL.
pub(crate) fn decode_saslname(raw: &str) -> Result<String, SaslError> {
    if raw.is_empty() || raw.contains('\0') {
        return Err(SaslError::malformed("empty or invalid SCRAM name"));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let esc = rest.get(pos..pos + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::malformed("invalid '=' escape in SCRAM name")),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `nonce` is a valid SCRAM nonce: non-empty printable ASCII
/// (0x21–0x7E) except `,`.
pub(crate) fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Splits a SCRAM message into `(letter, value)` attributes.
fn attributes(msg: &str) -> Result<Vec<(u8, &str)>, SaslError> {
    msg.split(',')
        .map(|part| {
            let b = part.as_bytes();
            if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'=' {
                Ok((b[0], &part[2..]))
            } else {
                Err(SaslError::malformed(
                    "SCRAM attribute is not of the form x=value",
                ))
            }
        })
        .collect()
}

fn check_text(msg: &[u8]) -> Result<&str, SaslError> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(SaslError::new(
            ErrorKind::TooLarge,
            "SCRAM message too large",
        ));
    }
    let s =
        std::str::from_utf8(msg).map_err(|_| SaslError::malformed("SCRAM message is not UTF-8"))?;
    if s.contains('\0') {
        return Err(SaslError::malformed("SCRAM message contains NUL"));
    }
    Ok(s)
}

fn decode_b64(value: &str, what: &'static str) -> Result<Vec<u8>, SaslError> {
    B64.decode(value).map_err(|_| SaslError::malformed(what))
}

pub(crate) fn encode_b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// The GS2 channel-binding flag (RFC 5802 §7 `gs2-cbind-flag`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gs2Flag {
    /// `n`: client does not support channel binding.
    NotSupported,
    /// `y`: client supports it but thinks the server does not.
    SupportedNotUsed,
    /// `p=name`: client uses channel binding of this type.
    Used(String),
}

/// A parsed client-first-message.
#[derive(Debug)]
pub(crate) struct ClientFirst {
    /// The GS2 header including its trailing comma, verbatim.
    pub gs2_header: String,
    pub flag: Gs2Flag,
    pub authzid: Option<String>,
    pub username: String,
    pub nonce: String,
    /// client-first-message-bare, verbatim.
    pub bare: String,
}

pub(crate) fn gs2_header(flag: &Gs2Flag, authzid: Option<&str>) -> String {
    let mut h = match flag {
        Gs2Flag::NotSupported => "n".to_owned(),
        Gs2Flag::SupportedNotUsed => "y".to_owned(),
        Gs2Flag::Used(name) => format!("p={name}"),
    };
    h.push(',');
    if let Some(a) = authzid {
        h.push_str("a=");
        h.push_str(&encode_saslname(a));
    }
    h.push(',');
    h
}

pub(crate) fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, SaslError> {
    let s = check_text(msg)?;
    let (flag_raw, rest) = s
        .split_once(',')
        .ok_or(SaslError::malformed("SCRAM GS2 header missing"))?;
    let flag = match flag_raw {
        "n" => Gs2Flag::NotSupported,
        "y" => Gs2Flag::SupportedNotUsed,
        p => match p.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Gs2Flag::Used(name.to_owned())
            }
            _ => return Err(SaslError::malformed("invalid GS2 channel-binding flag")),
        },
    };
    let (authz_raw, bare) = rest
        .split_once(',')
        .ok_or(SaslError::malformed("SCRAM GS2 header incomplete"))?;
    let authzid = if authz_raw.is_empty() {
        None
    } else {
        let a = authz_raw
            .strip_prefix("a=")
            .ok_or(SaslError::malformed("invalid GS2 authzid"))?;
        Some(decode_saslname(a)?)
    };
    let gs2_len = flag_raw.len() + authz_raw.len() + 2;
    let attrs = attributes(bare)?;
    let mut it = attrs.into_iter();
    let username = match it.next() {
        Some((b'm', _)) => {
            return Err(SaslError::new(
                ErrorKind::UnsupportedExtension,
                "mandatory SCRAM extension not supported",
            ));
        }
        Some((b'n', v)) => decode_saslname(v)?,
        _ => return Err(SaslError::malformed("SCRAM n= attribute expected")),
    };
    let nonce = match it.next() {
        Some((b'r', v)) if valid_nonce(v) => v.to_owned(),
        _ => return Err(SaslError::malformed("SCRAM r= attribute expected")),
    };
    // Remaining attributes are optional extensions: ignored (RFC 5802 §5.1).
    Ok(ClientFirst {
        gs2_header: s[..gs2_len].to_owned(),
        flag,
        authzid,
        username,
        nonce,
        bare: bare.to_owned(),
    })
}

/// A parsed server-first-message.
#[derive(Debug)]
pub(crate) struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// XEP-0474 `h` attribute, decoded.
    pub downgrade_hash: Option<Vec<u8>>,
}

fn parse_iterations(v: &str) -> Result<u32, SaslError> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return Err(SaslError::malformed(
            "SCRAM i= is not a positive decimal number",
        ));
    }
    v.parse::<u32>()
        .map_err(|_| SaslError::malformed("SCRAM i= out of range"))
}

pub(crate) fn parse_server_first(msg: &[u8]) -> Result<ServerFirst, SaslError> {
    let s = check_text(msg)?;
    let attrs = attributes(s)?;
    let mut it = attrs.into_iter();
    let nonce = match it.next() {
        Some((b'm', _)) => {
            return Err(SaslError::new(
                ErrorKind::UnsupportedExtension,
                "mandatory SCRAM extension not supported",
            ));
        }
        Some((b'r', v)) if valid_nonce(v) => v.to_owned(),
        _ => return Err(SaslError::malformed("SCRAM r= attribute expected")),
    };
    let salt = match it.next() {
        Some((b's', v)) => decode_b64(v, "SCRAM salt is not base64")?,
        _ => return Err(SaslError::malformed("SCRAM s= attribute expected")),
    };
    if salt.is_empty() {
        return Err(SaslError::malformed("SCRAM salt is empty"));
    }
    let iterations = match it.next() {
        Some((b'i', v)) => parse_iterations(v)?,
        _ => return Err(SaslError::malformed("SCRAM i= attribute expected")),
    };
    let mut downgrade_hash = None;
    for (k, v) in it {
        if k == b'h' {
            if downgrade_hash.is_some() {
                return Err(SaslError::malformed("duplicate SCRAM h= attribute"));
            }
            downgrade_hash = Some(decode_b64(v, "SCRAM h= is not base64")?);
        }
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
        downgrade_hash,
    })
}

/// A parsed client-final-message.
#[derive(Debug)]
pub(crate) struct ClientFinal {
    /// client-final-message-without-proof, verbatim.
    pub without_proof: String,
    /// Decoded `c=`: GS2 header followed by channel-binding data.
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
}

pub(crate) fn parse_client_final(msg: &[u8]) -> Result<ClientFinal, SaslError> {
    let s = check_text(msg)?;
    let (without_proof, proof_b64) = s
        .rsplit_once(",p=")
        .ok_or(SaslError::malformed("SCRAM p= attribute expected last"))?;
    let attrs = attributes(without_proof)?;
    let mut it = attrs.into_iter();
    let channel_binding = match it.next() {
        Some((b'c', v)) => decode_b64(v, "SCRAM c= is not base64")?,
        _ => return Err(SaslError::malformed("SCRAM c= attribute expected")),
    };
    let nonce = match it.next() {
        Some((b'r', v)) if valid_nonce(v) => v.to_owned(),
        _ => return Err(SaslError::malformed("SCRAM r= attribute expected")),
    };
    if it.any(|(k, _)| k == b'p') {
        return Err(SaslError::malformed("SCRAM p= attribute repeated"));
    }
    let proof = decode_b64(proof_b64, "SCRAM p= is not base64")?;
    Ok(ClientFinal {
        without_proof: without_proof.to_owned(),
        channel_binding,
        nonce,
        proof,
    })
}

/// A parsed server-final-message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerFinal {
    /// `v=`: the decoded server signature.
    Verifier(Vec<u8>),
    /// `e=`: the server's error value.
    Error(String),
}

pub(crate) fn parse_server_final(msg: &[u8]) -> Result<ServerFinal, SaslError> {
    let s = check_text(msg)?;
    let attrs = attributes(s)?;
    match attrs.first() {
        Some((b'v', v)) => Ok(ServerFinal::Verifier(decode_b64(
            v,
            "SCRAM v= is not base64",
        )?)),
        Some((b'e', v)) if !v.is_empty() => Ok(ServerFinal::Error((*v).to_owned())),
        _ => Err(SaslError::malformed("SCRAM v= or e= attribute expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc5802_intermediate_values() {
        let h = ScramHash::Sha1;
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let salted = h.salted_password(b"pencil", &salt, 4096);
        assert_eq!(hex(&salted), "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d");
        let ck = h.client_key(&salted);
        assert_eq!(hex(&ck), "e234c47bf6c36696dd6d852b99aaa2ba26555728");
        assert_eq!(
            hex(&h.hash(&ck)),
            "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
        );
        assert_eq!(
            hex(&h.server_key(&salted)),
            "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
        );
        let sc = StoredCredentials::derive(h, "pencil", &salt, 4096).unwrap();
        assert_eq!(
            hex(&sc.stored_key),
            "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
        );
        assert!(sc.verify_password("pencil"));
        assert!(!sc.verify_password("pencil2"));
        assert!(!format!("{sc:?}").contains("e9d9"));
    }

    #[test]
    fn rfc7677_intermediate_values() {
        let h = ScramHash::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = h.salted_password(b"pencil", &salt, 4096);
        assert_eq!(
            hex(&salted),
            "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d"
        );
        assert_eq!(
            hex(&h.hash(&h.client_key(&salted))),
            "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"
        );
        assert_eq!(
            hex(&h.server_key(&salted)),
            "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"
        );
    }

    #[test]
    fn xep0474_example() {
        let f = SaslFeatures::new(["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"])
            .with_channel_binding_types(["tls-server-end-point", "tls-exporter"]);
        assert_eq!(
            encode_b64(&downgrade_protection_hash(ScramHash::Sha1, &f)),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
        // Without XEP-0440 the 0x1F part is absent, so the hash differs.
        let g = SaslFeatures::new(["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]);
        assert_ne!(
            downgrade_protection_hash(ScramHash::Sha1, &f),
            downgrade_protection_hash(ScramHash::Sha1, &g)
        );
    }

    #[test]
    fn saslname_escaping() {
        assert_eq!(encode_saslname("a=b,c"), "a=3Db=2Cc");
        assert_eq!(decode_saslname("a=3Db=2Cc").unwrap(), "a=b,c");
        for bad in ["", "a=", "a=2", "a=41", "=2c", "x\0"] {
            assert!(decode_saslname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_first_parsing() {
        let m = parse_client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.flag, Gs2Flag::NotSupported);
        assert_eq!(m.username, "user");
        assert_eq!(m.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let m = parse_client_first(b"p=tls-exporter,a=me@x,n=u,r=abc,x=ext").unwrap();
        assert_eq!(m.gs2_header, "p=tls-exporter,a=me@x,");
        assert_eq!(m.flag, Gs2Flag::Used("tls-exporter".into()));
        assert_eq!(m.authzid.as_deref(), Some("me@x"));
        let m = parse_client_first(b"y,a=a=3Db,n=u,r=abc").unwrap();
        assert_eq!(m.flag, Gs2Flag::SupportedNotUsed);
        assert_eq!(m.authzid.as_deref(), Some("a=b"));
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"x,,n=u,r=a",
            b"p=,,n=u,r=a",
            b"n,b=x,n=u,r=a",
            b"n,,r=a,n=u",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=u,r=a b",
            b"n,,n=,r=a",
            b"n,,n=u,r=a,",
            b"n,,n=u\xff,r=a",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_client_first(b"n,,m=x,n=u,r=a").unwrap_err().kind,
            ErrorKind::UnsupportedExtension
        );
    }

    #[test]
    fn server_first_parsing() {
        let m = parse_server_first(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096,h=AAAA,z=1").unwrap();
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.iterations, 4096);
        assert_eq!(m.downgrade_hash, Some(vec![0, 0, 0]));
        for bad in [
            &b"r=abc,s=,i=4096"[..],
            b"r=abc,s=!!,i=4096",
            b"r=abc,s=QSXC,i=04096",
            b"r=abc,s=QSXC,i=0",
            b"r=abc,s=QSXC,i=-1",
            b"r=abc,s=QSXC,i=+5",
            b"r=abc,s=QSXC,i=4294967296",
            b"r=abc,s=QSXC,i=99999999999",
            b"r=abc,s=QSXC",
            b"s=QSXC,r=abc,i=1",
            b"r=abc,s=QSXC,i=1,h=AAAA,h=AAAA",
        ] {
            assert!(
                parse_server_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_server_first(b"r=a,s=QSXC,i=4294967295")
                .unwrap()
                .iterations,
            u32::MAX
        );
    }

    #[test]
    fn client_final_and_server_final_parsing() {
        let m = parse_client_final(b"c=biws,r=abc,x=1,p=AAAA").unwrap();
        assert_eq!(m.without_proof, "c=biws,r=abc,x=1");
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.proof, vec![0, 0, 0]);
        for bad in [
            &b"c=biws,r=abc"[..],
            b"r=abc,c=biws,p=AAAA",
            b"c=biws,r=abc,p=AAA",
            b"c=biws,r=abc,p=AAAA,p=AAAA",
            b"c=b,r=abc,p=AAAA",
        ] {
            assert!(parse_client_final(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_server_final(b"v=AAAA").unwrap(),
            ServerFinal::Verifier(vec![0, 0, 0])
        );
        assert_eq!(
            parse_server_final(b"e=invalid-proof").unwrap(),
            ServerFinal::Error("invalid-proof".into())
        );
        for bad in [&b""[..], b"v=!", b"x=1", b"e="] {
            assert!(parse_server_final(bad).is_err());
        }
    }

    #[test]
    fn oversized_messages_rejected_before_parsing() {
        let big = vec![b'a'; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            parse_client_first(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        assert_eq!(
            parse_server_first(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        assert_eq!(
            parse_client_final(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        assert_eq!(
            parse_server_final(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
    }
}
