//! Strict JWS / JWK, DPoP proofs and DPoP-bound access tokens for daas (RFC 7515, 7517, 7638,
//! 9068, 9449 under the rules of RFC 8725 and DESIGN.md §5).
//!
//! The crate does no I/O: time comes in as a parameter (Unix seconds), replay state through the
//! [`ReplayCache`] trait. The JWS layer:
//!
//! * [`b64`]: base64url without padding that accepts exactly one spelling per byte string, so a
//!   token cannot be re-encoded into a different string that verifies the same way.
//! * [`jwk`]: public keys as JWKs ([`PublicJwk`]), their RFC 7638 thumbprints, verification keys
//!   pinned to one algorithm ([`VerifyingKey`], [`KeySet`]) and private signing keys
//!   ([`SigningKey`]).
//! * [`jws`]: compact JWS signing ([`sign`]) and verification through a type state: parsing gives
//!   an [`Unverified`] token that exposes only the header needed to pick a key; only
//!   [`Unverified::verify`] (and its siblings) give a [`Verified`] token with claims.
//!
//! Only `EdDSA` (Ed25519) and `ES256` (P-256, 64-byte `r || s` signatures) exist here: every
//! other algorithm, including `none` and the HMAC family, is rejected before any cryptography.
//!
//! On top of it, proof of possession (docs/tokens.md):
//!
//! * [`access`]: access tokens (`typ: at+jwt`, `cnf.jkt`, `status`), [`issue_access_token`],
//!   [`verify_access_token`] and the resource server's complete check [`verify_dpop_request`].
//! * [`dpop`]: DPoP proofs, [`build_proof`] for clients and [`verify_proof`] (every rule of
//!   RFC 9449 §4.3) for servers, giving a [`VerifiedProof`].
//! * [`htu`]: the normal form in which `htu` and the request URI are compared.
//! * [`nonce`]: stateless server nonces ([`NonceKey`]).
//! * [`replay`]: replay keys, the [`ReplayCache`] trait, an in-process [`MemoryReplayCache`],
//!   and [`PendingReplayCheck`], which releases a verified proof only after the replay check.
//! * [`status`]: Token Status Lists (draft-ietf-oauth-status-list, [`sign_status_list`],
//!   [`verify_status_list`]) and short-lived, nonce'd status staples ([`sign_status_staple`],
//!   [`verify_status_staple`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod b64;
pub mod dpop;
mod error;
pub mod htu;
mod json;
pub mod jwk;
pub mod jws;
pub mod nonce;
pub mod replay;
pub mod status;
pub mod token_cache;

pub use access::{
    ACCESS_TOKEN_TYP, AccessTokenClaims, DpopPolicy, DpopRequest, StatusListRef,
    VerifiedAccessToken, check_access_token_claims, issue_access_token, verify_access_token,
    verify_access_token_cached, verify_dpop_request, verify_dpop_request_pending,
};
pub use dpop::{
    PROOF_TYP, ProofPolicy, ProofRequest, VerifiedProof, access_token_hash, build_proof,
    single_proof, verify_proof,
};
pub use error::{AccessTokenError, DpopError, ErrorCode, Fault, JwsError, KeyError};
pub use htu::{HtuError, normalize_htu};
pub use jwk::{KeySet, PublicJwk, SigningKey, VerifyingKey};
pub use jws::{
    Header, HeaderFields, HeaderPolicy, MAX_TOKEN_LEN, Unverified, Verified, sign, verify_signature,
};
pub use nonce::{NonceError, NonceKey};
pub use replay::{MemoryReplayCache, PendingReplayCheck, ReplayCache, ReplayCacheError, ReplayKey};
pub use status::{
    Bits, STATUS_LIST_TYP, STATUS_STAPLE_TYP, StapleExpectation, StatusError, StatusList,
    StatusStapleClaims, TokenStatus, VerifiedStatusList, VerifiedStatusStaple, sign_status_list,
    sign_status_staple, verify_status_list, verify_status_staple, verify_status_staple_with,
};
pub use token_cache::{DEFAULT_TOKEN_CACHE_CAPACITY, VerifiedTokenCache};

/// Parses `bytes` as one JSON object, refusing duplicate keys at any depth (the same strict
/// parser tokens go through). For JWK sets and other untrusted JSON that holds keys: two
/// parsers that disagree on which duplicate wins must never see different keys.
///
/// # Errors
/// [`JwsError::Malformed`] if `bytes` is not JSON, has trailing data or a duplicate key, or is
/// not an object.
pub fn parse_strict_json_object(
    bytes: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, JwsError> {
    json::parse_object(bytes).map_err(|e| match e {
        json::JsonError::Invalid => JwsError::Malformed("not json without duplicate keys"),
        json::JsonError::NotObject => JwsError::Malformed("not a json object"),
    })
}

/// The only two signature algorithms this crate signs or verifies.
///
/// A key carries exactly one of these (RFC 8725 §3.1): a token's `alg` header must equal its key's,
/// so a token can never make the verifier use a key with an algorithm it was not made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519 (RFC 8037), `"EdDSA"`.
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), `"ES256"`, signature `r || s`, 64 bytes.
    Es256,
}

impl Alg {
    /// The `alg` header value, exactly as it must appear in a token.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// Parses an `alg` header value; the match is exact (case-sensitive, RFC 7515 §4.1.1), so
    /// `"none"`, `"NONE"`, `"HS256"` and `"eddsa"` all give `None`.
    #[must_use]
    pub fn from_header(value: &str) -> Option<Self> {
        match value {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

impl core::fmt::Display for Alg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_are_exact() {
        assert_eq!(Alg::from_header("EdDSA"), Some(Alg::EdDsa));
        assert_eq!(Alg::from_header("ES256"), Some(Alg::Es256));
        for bad in [
            "none", "None", "NONE", "nOnE", "HS256", "RS256", "eddsa", "EDDSA", "es256", "ES384",
            "ES256K", "Ed25519", "", " EdDSA", "EdDSA ",
        ] {
            assert_eq!(Alg::from_header(bad), None, "{bad:?}");
        }
        assert_eq!(Alg::EdDsa.to_string(), "EdDSA");
        assert_eq!(Alg::Es256.as_str(), "ES256");
    }
}
