//! The example server's account store: an embedded redb database.
//!
//! Each account keeps the SCRAM stored form of its password for SHA-1,
//! SHA-256 and SHA-512 (salt, iterations, StoredKey, ServerKey; RFC 5802
//! §3), never the password itself, so every SCRAM variant works and PLAIN
//! verifies against the SHA-256 form. The server secret (for the fake salts
//! of unknown users) is random, created once and kept in the same file, so
//! unknown users look the same across restarts.
//!
//! Layout (`<data dir>/accounts.redb`):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"secret"` | 32 random bytes |
//! | `accounts` | prepared localpart | version byte `1`, then for SHA-1, SHA-256, SHA-512: `hash tag (u8)`, `iterations (u32 BE)`, `salt length (u8)`, salt, StoredKey, ServerKey (key lengths follow from the hash) |

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use xmpp_sansio::rng::SeededRng;
use xmpp_sansio::sasl::{CredentialLookup, ScramHash, StoredCredentials};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const SECRET_KEY: &str = "secret";
const SECRET_LEN: usize = 32;
const RECORD_VERSION: u8 = 1;
/// The hashes stored for every account, in record order.
pub const HASHES: [ScramHash; 3] = [ScramHash::Sha1, ScramHash::Sha256, ScramHash::Sha512];

/// A store error, with what was being done.
#[derive(Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn ctx<E: Into<redb::Error>>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError(format!("{what}: {}", e.into()))
}

/// redb's page cache (default 1 GiB). Logins read an account's record once
/// (the SCRAM stored forms); with the default, every account that ever
/// logged in stays cached, ~0.8 KiB per account. The OS page cache still
/// serves the file.
const CACHE_BYTES: usize = 256 * 1024;

/// The account database. Cheap to share behind an `Arc`; redb serializes
/// writers and lets readers run concurrently.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `<dir>/accounts.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("accounts.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| {
                StoreError(format!(
                    "cannot open {}: {e} (is another server using this data directory?)",
                    path.display()
                ))
            })?;
        let store = Store { db };
        // Create the tables so read transactions always find them.
        let tx = store.db.begin_write().map_err(ctx("begin write"))?;
        tx.open_table(META).map_err(ctx("open meta"))?;
        tx.open_table(ACCOUNTS).map_err(ctx("open accounts"))?;
        tx.commit().map_err(ctx("commit"))?;
        Ok(store)
    }

    /// The server secret for fake salts; created (random) on first use.
    pub fn secret(&self, rng: &mut SeededRng) -> Result<Vec<u8>, StoreError> {
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        let secret = {
            let mut table = tx.open_table(META).map_err(ctx("open meta"))?;
            let existing = table
                .get(SECRET_KEY)
                .map_err(ctx("read secret"))?
                .map(|v| v.value().to_vec());
            match existing {
                Some(secret) if secret.len() == SECRET_LEN => secret,
                _ => {
                    let mut secret = vec![0u8; SECRET_LEN];
                    rng.fill(&mut secret);
                    table
                        .insert(SECRET_KEY, secret.as_slice())
                        .map_err(ctx("write secret"))?;
                    secret
                }
            }
        };
        tx.commit().map_err(ctx("commit"))?;
        Ok(secret)
    }

    /// Whether `username` (a prepared localpart) has an account.
    pub fn exists(&self, username: &str) -> Result<bool, StoreError> {
        Ok(self.record(username)?.is_some())
    }

    fn record(&self, username: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx.open_table(ACCOUNTS).map_err(ctx("open accounts"))?;
        let value = table.get(username).map_err(ctx("read account"))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// All stored credentials of `username`, or `None` without an account.
    pub fn credentials(
        &self,
        username: &str,
    ) -> Result<Option<Vec<StoredCredentials>>, StoreError> {
        match self.record(username)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes)
                .map(Some)
                .ok_or_else(|| StoreError(format!("corrupt record for account {username:?}"))),
        }
    }

    /// The SASL answer for `username` and `hash`: `Found` with the stored
    /// form of that hash, `NotFound` without an account, `TemporaryFailure`
    /// if the store fails.
    pub fn lookup(&self, username: &str, hash: ScramHash) -> CredentialLookup {
        match self.credentials(username) {
            Ok(Some(all)) => all
                .into_iter()
                .find(|c| c.hash == hash)
                .map_or(CredentialLookup::NotFound, CredentialLookup::Found),
            Ok(None) => CredentialLookup::NotFound,
            Err(e) => {
                tracing::error!(error = %e, "credential lookup failed");
                CredentialLookup::TemporaryFailure
            }
        }
    }

    /// Creates the account or replaces its password. Only the SCRAM stored
    /// forms are written.
    pub fn set_password(
        &self,
        username: &str,
        password: &str,
        iterations: u32,
        rng: &mut SeededRng,
    ) -> Result<(), StoreError> {
        let mut creds = Vec::with_capacity(HASHES.len());
        for hash in HASHES {
            let c = StoredCredentials::generate(hash, password, iterations, rng)
                .map_err(|e| StoreError(format!("unusable password for {username:?}: {e}")))?;
            creds.push(c);
        }
        let record = encode(&creds);
        let tx = self.db.begin_write().map_err(ctx("begin write"))?;
        {
            let mut table = tx.open_table(ACCOUNTS).map_err(ctx("open accounts"))?;
            table
                .insert(username, record.as_slice())
                .map_err(ctx("write account"))?;
        }
        tx.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Whether `password` is the account's current password (derived with
    /// the stored SHA-256 salt and iterations, compared with StoredKey).
    pub fn check_password(&self, username: &str, password: &str) -> bool {
        let Ok(Some(all)) = self.credentials(username) else {
            return false;
        };
        all.iter().filter(|c| c.hash == ScramHash::Sha256).any(|c| {
            StoredCredentials::derive(c.hash, password, &c.salt, c.iterations)
                .is_ok_and(|d| d.stored_key == c.stored_key)
        })
    }

    /// The number of accounts.
    pub fn count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(ctx("begin read"))?;
        let table = tx.open_table(ACCOUNTS).map_err(ctx("open accounts"))?;
        table.len().map_err(ctx("count accounts"))
    }
}

fn hash_tag(hash: ScramHash) -> u8 {
    match hash {
        ScramHash::Sha1 => 1,
        ScramHash::Sha256 => 2,
        ScramHash::Sha512 => 5,
    }
}

fn hash_from_tag(tag: u8) -> Option<ScramHash> {
    HASHES.into_iter().find(|h| hash_tag(*h) == tag)
}

fn encode(creds: &[StoredCredentials]) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    for c in creds {
        out.push(hash_tag(c.hash));
        out.extend_from_slice(&c.iterations.to_be_bytes());
        // Salts are SALT_LEN (16) bytes: they fit a u8 length.
        out.push(c.salt.len() as u8);
        out.extend_from_slice(&c.salt);
        out.extend_from_slice(&c.stored_key);
        out.extend_from_slice(&c.server_key);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Vec<StoredCredentials>> {
    let (&version, mut rest) = bytes.split_first()?;
    if version != RECORD_VERSION {
        return None;
    }
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    };
    let mut creds = Vec::new();
    while let Some(tag) = take(1) {
        let hash = hash_from_tag(tag[0])?;
        let iterations = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let salt_len = take(1)?[0] as usize;
        let salt = take(salt_len)?.to_vec();
        let stored_key = take(hash.output_len())?.to_vec();
        let server_key = take(hash.output_len())?.to_vec();
        if salt.is_empty() || iterations == 0 {
            return None;
        }
        creds.push(StoredCredentials {
            hash,
            salt,
            iterations,
            stored_key,
            server_key,
        });
    }
    (!creds.is_empty()).then_some(creds)
}
