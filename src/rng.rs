//! Seeded randomness.
//!
//! The core never asks the operating system for entropy. Every source of
//! randomness (stream ids, SCRAM nonces, salts, generated resources) is drawn
//! from a [`SeededRng`] that the host creates from a 32-byte seed. A host
//! seeds it from the operating system (`getrandom`); a test seeds it with a
//! constant and gets the same bytes on every run.
//!
//! The generator is ChaCha20 (`rand_chacha`): cryptographically strong, so
//! values drawn from it are fit for nonces and stream ids.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A deterministic, cryptographically strong random source seeded by the host.
#[derive(Clone, Debug)]
pub struct SeededRng {
    inner: ChaCha20Rng,
}

impl SeededRng {
    /// Creates a generator from a 32-byte seed.
    ///
    /// Production hosts must use a seed from the operating system's entropy
    /// source; tests may use any constant.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            inner: ChaCha20Rng::from_seed(seed),
        }
    }

    /// Creates a generator from a 64-bit seed (for tests and simulations).
    pub fn from_u64(seed: u64) -> Self {
        Self {
            inner: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Fills `dest` with random bytes.
    pub fn fill(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest);
    }

    /// Returns a random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Returns `len` random characters from the unreserved URL alphabet
    /// (`A-Z a-z 0-9 - _`), 6 bits of entropy each. Used for stream ids,
    /// nonces and generated resources, which must be printable and need no
    /// escaping in XML or SCRAM attributes.
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut raw = vec![0u8; len];
        self.fill(&mut raw);
        raw.iter()
            .map(|b| ALPHABET[usize::from(b & 0x3f)] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let mut a = SeededRng::from_u64(7);
        let mut b = SeededRng::from_u64(7);
        assert_eq!(a.token(32), b.token(32));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn different_seeds_differ() {
        let mut a = SeededRng::from_u64(1);
        let mut b = SeededRng::from_u64(2);
        assert_ne!(a.token(32), b.token(32));
    }

    #[test]
    fn token_alphabet_and_length() {
        let mut r = SeededRng::from_seed([9; 32]);
        let t = r.token(100);
        assert_eq!(t.len(), 100);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
