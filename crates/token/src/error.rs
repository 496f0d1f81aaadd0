//! Errors, split by who is at fault.
//!
//! [`JwsError`] means the token (the peer) is wrong: it is safe to log and to answer with a
//! generic 401. [`KeyError`] means the caller's keys or inputs are wrong, or the crypto library
//! failed: that is a bug or a misconfiguration on our side. Messages are lowercase, never contain
//! secret bytes and never echo attacker-chosen strings, so they may go into the audit log as is.

/// A token was rejected. Every variant is the presenter's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// The token is longer than [`crate::MAX_TOKEN_LEN`].
    #[error("token is larger than {max} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The token's structure, encoding or JSON is not what RFC 7515 and this profile allow.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The `alg` header is not `EdDSA` or `ES256` (this includes `none` and every `HS*`).
    #[error("unsupported algorithm")]
    UnsupportedAlg,
    /// The `alg` header differs from the one algorithm the selected key is pinned to.
    #[error("algorithm does not match the key")]
    AlgMismatch,
    /// No key is known under the token's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The header carries a parameter this profile forbids (key URLs, certificates, `crit`, ...).
    #[error("forbidden header parameter {0}")]
    ForbiddenHeader(&'static str),
    /// The header carries a parameter this profile does not know; ignoring it could change the
    /// token's meaning for another implementation, so it is refused.
    #[error("unknown header parameter")]
    UnknownHeader,
    /// The `typ` header is missing or is not the type the verifier expects.
    #[error("unexpected token type")]
    WrongType,
    /// The signature does not verify under the selected key.
    #[error("signature verification failed")]
    BadSignature,
    /// The signature is valid but the claims do not have the shape the verifier expects.
    #[error("claims do not match the expected schema")]
    InvalidClaims,
}

/// A key or signing input supplied by the caller is unusable, or the crypto library failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A JWK is not a public Ed25519 or P-256 key in the exact form this crate accepts.
    #[error("invalid jwk: {0}")]
    InvalidJwk(&'static str),
    /// Key bytes (a public point or a PKCS#8 document) were rejected by the crypto library.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A key set already holds a key under this `kid`.
    #[error("duplicate key id")]
    DuplicateKid,
    /// A `kid` is empty or longer than [`crate::jwk::MAX_KID_LEN`].
    #[error("invalid key id")]
    InvalidKid,
    /// Claims to sign do not serialize to a JSON object.
    #[error("claims must serialize to a json object")]
    ClaimsNotObject,
    /// The token to be signed would exceed [`crate::MAX_TOKEN_LEN`] and could not be verified.
    #[error("token would be larger than {max} bytes")]
    TooLarge {
        /// The limit that would be exceeded.
        max: usize,
    },
    /// The crypto library failed to generate, export or sign.
    #[error("crypto operation failed: {0}")]
    Crypto(&'static str),
}
