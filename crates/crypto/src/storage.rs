//! Sealing of everything the server stores (DESIGN.md §2).
//!
//! The master storage key is expanded with HKDF-SHA256 into independent subkeys
//! (labels in `labels`): `seal` (XChaCha20-Poly1305 for columns), `lookup` (HMAC for searchable
//! names), `audit` (HMAC chaining the audit log), `audit_value` (salted HMAC of sensitive values).
//! Sealed column = nonce(24) ‖ ciphertext ‖ tag, AAD = `"daas storage aad v1" ‖ lp(table) ‖ lp(row_id) ‖ lp(column)`
//! (lp = u32be length prefix), so a sealed value moved to another row or column fails to open.
use crate::{CryptoError, Key256, secret::SecretBytes};

/// Where a sealed value lives; bound into its AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub column: &'a str,
}

/// The subkeys derived from the master storage key. `Debug` is redacted.
#[derive(Clone)]
pub struct StorageKeys { /* private fields */ _private: () }

impl core::fmt::Debug for StorageKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str("StorageKeys(<redacted>)") }
}

impl StorageKeys {
    pub fn derive(master: &Key256) -> Self { todo!() }
    pub fn seal(&self, at: Location<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> { todo!() }
    pub fn open(&self, at: Location<'_>, sealed: &[u8]) -> Result<SecretBytes, CryptoError> { todo!() }
    /// Deterministic keyed lookup hash for searchable values (secret names, token ids):
    /// `HMAC(lookup, lp(domain) ‖ value)`, hex-encoded (64 chars).
    pub fn lookup(&self, domain: &str, value: &[u8]) -> String { todo!() }
    /// Key for chaining the audit log.
    pub fn audit_chain_key(&self) -> &Key256 { todo!() }
    /// Salted HMAC of a sensitive value for the audit log (hex, 32 chars = 128 bits).
    pub fn audit_value(&self, value: &[u8]) -> String { todo!() }
}

/// Check value stored beside Shamir-sealed deployments: `HMAC(master, "daas storage key check v1")`.
pub fn key_check(master: &Key256) -> [u8; 32] { todo!() }
/// Constant-time comparison against a stored key check.
pub fn verify_key_check(master: &Key256, expected: &[u8; 32]) -> Result<(), CryptoError> { todo!() }
