//! Shamir k-of-n over GF(256) (vsss-rs) for 32-byte keys, e.g. the storage key at `daas operator init`.
//!
//! Text form: `daas:unseal:v1:` + base64url-nopad(threshold(1) ‖ index(1) ‖ value(32)).
//! `combine` rejects index 0, duplicate indices, differing thresholds, fewer shares than the
//! threshold, and length mismatch. Shamir shares carry no integrity: callers must check the
//! combined key against a commitment (see `storage::key_check`).
use crate::{CryptoError, Key256};

pub const PREFIX: &str = "daas:unseal:v1:";

#[derive(Clone, PartialEq, Eq)]
pub struct ShamirShare {
    pub threshold: u8,
    pub index: u8,
    pub value: Key256,
}
impl core::fmt::Debug for ShamirShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ShamirShare {{ threshold: {}, index: {}, value: <redacted> }}", self.threshold, self.index)
    }
}

impl ShamirShare {
    pub fn encode(&self) -> String { todo!() }
    pub fn parse(text: &str) -> Result<Self, CryptoError> { todo!() }
}

/// Split into `n` shares, any `threshold` of which recover `secret`. 2 <= threshold <= n <= 255.
pub fn split(secret: &Key256, threshold: u8, n: u8) -> Result<Vec<ShamirShare>, CryptoError> { todo!() }
/// Recombine (uses the first `threshold` distinct shares after validation).
pub fn combine(shares: &[ShamirShare]) -> Result<Key256, CryptoError> { todo!() }
