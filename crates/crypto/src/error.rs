//! One error type for the crate, grouped by who is at fault.
use thiserror::Error;

/// Errors of the crypto compositions. Messages are lowercase, precise and never carry secret bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    // --- the peer / input is at fault ---
    /// Text did not have the expected `daas:...` prefix or version.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(&'static str),
    /// Bytes were malformed (bad base64url, wrong length, trailing data ...).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A share belongs to another object than the ciphertext or record.
    #[error("share belongs to another object")]
    ShareObjectMismatch,
    /// The combined key does not match the stored commitment (wrong or tampered share).
    #[error("key commitment mismatch")]
    CommitmentMismatch,
    /// AEAD authentication failed (tampered ciphertext, wrong key or wrong context).
    #[error("authentication failed")]
    AuthenticationFailed,
    /// Shamir shares were inconsistent (index 0, duplicates, length mismatch, too few).
    #[error("invalid shamir shares: {0}")]
    InvalidShares(&'static str),
    // --- the caller is at fault ---
    /// Parameters out of range (threshold > n, n > 255, plaintext too large ...).
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    // --- internal ---
    /// The underlying primitive failed unexpectedly (RNG failure ...).
    #[error("internal cryptographic failure")]
    Internal,
}
