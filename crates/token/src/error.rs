//! Errors, split by who is at fault.
//!
//! [`JwsError`] means the token (the peer) is wrong: it is safe to log and to answer with a
//! generic 401. [`KeyError`] means the caller's keys or inputs are wrong, or the crypto library
//! failed: that is a bug or a misconfiguration on our side. [`AccessTokenError`] and
//! [`DpopError`] mix the two and say which with [`Fault`]; they also say what to answer
//! ([`ErrorCode`]). Messages are lowercase, never contain secret bytes and never echo
//! attacker-chosen strings, so they may go into the audit log as is.

use crate::htu::HtuError;
use crate::nonce::NonceError;
use crate::replay::ReplayCacheError;

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
    /// Claims or request details to sign break a rule the verifier enforces (e.g. an empty
    /// audience, a malformed `cnf.jkt`, a URL that is not acceptable as `htu`), so the token or
    /// proof could never verify.
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
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

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The presenter sent something wrong: log, answer 4xx.
    Peer,
    /// The calling code passed an unusable argument or policy: a bug or misconfiguration.
    Caller,
    /// A dependency (e.g. the replay cache) could not answer: fail closed, answer 5xx.
    Internal,
}

/// What the HTTP layer answers, as the `error` of a `WWW-Authenticate: DPoP` challenge
/// (RFC 6750 §3.1, RFC 9449 §7.1 and §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The access token is invalid: 401, `error="invalid_token"`.
    InvalidToken,
    /// The DPoP proof is invalid: 401, `error="invalid_dpop_proof"`.
    InvalidDpopProof,
    /// The proof lacks a current server nonce: 401, `error="use_dpop_nonce"` and a fresh
    /// `DPoP-Nonce` header (an authorization server answers 400 instead, RFC 9449 §8).
    UseDpopNonce,
    /// The server could not decide (replay cache full or down, bad configuration): 503 with no
    /// challenge; the request may be retried.
    ServerError,
}

impl ErrorCode {
    /// The `error` parameter value, or `None` for [`ErrorCode::ServerError`].
    #[must_use]
    pub const fn as_challenge(self) -> Option<&'static str> {
        match self {
            Self::InvalidToken => Some("invalid_token"),
            Self::InvalidDpopProof => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
            Self::ServerError => None,
        }
    }

    /// The HTTP status a resource server answers with.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidToken | Self::InvalidDpopProof | Self::UseDpopNonce => 401,
            Self::ServerError => 503,
        }
    }
}

/// An access token (RFC 9068 profile, DESIGN.md §5) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    // --- peer ---
    /// Structure, header, key selection or signature (see [`JwsError`]).
    #[error("invalid access token: {0}")]
    Jws(JwsError),
    /// The `typ` header is not exactly `at+jwt` (e.g. a DPoP proof presented as a token).
    #[error("access token typ is not at+jwt")]
    WrongType,
    /// A claim is missing or has the wrong shape; the text names it.
    #[error("access token claim {0}")]
    Claim(&'static str),
    /// `iss` is not the expected issuer.
    #[error("access token issuer is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not contain this service.
    #[error("access token audience does not include this service")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("access token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("access token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("access token was issued in the future")]
    IssuedInFuture,
    // --- caller ---
    /// The verifier was called with an empty expected issuer or audience.
    #[error("access token verifier misconfigured: {0}")]
    InvalidExpectation(&'static str),
}

impl AccessTokenError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::InvalidExpectation(_) => Fault::Caller,
            _ => Fault::Peer,
        }
    }

    /// What to answer.
    #[must_use]
    pub const fn error_code(&self) -> ErrorCode {
        match self.fault() {
            Fault::Peer => ErrorCode::InvalidToken,
            Fault::Caller | Fault::Internal => ErrorCode::ServerError,
        }
    }
}

/// A DPoP-bound request (access token plus proof, RFC 9449 §4.3 and §7) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    // --- peer: the access token ---
    /// The access token was rejected.
    #[error(transparent)]
    AccessToken(#[from] AccessTokenError),
    // --- peer: the proof ---
    /// The request carries no `DPoP` header.
    #[error("dpop proof is missing")]
    MissingProof,
    /// The request carries more than one `DPoP` header (RFC 9449 §4.3 step 1).
    #[error("more than one dpop proof")]
    MultipleProofs,
    /// Structure, header, embedded key or signature (see [`JwsError`]).
    #[error("invalid dpop proof: {0}")]
    Proof(JwsError),
    /// The `typ` header is not exactly `dpop+jwt` (e.g. an access token presented as a proof).
    #[error("dpop proof typ is not dpop+jwt")]
    ProofType,
    /// A claim is missing or has the wrong shape; the text names it.
    #[error("dpop proof claim {0}")]
    ProofClaim(&'static str),
    /// `htm` differs from the request method.
    #[error("dpop proof htm does not match the request method")]
    MethodMismatch,
    /// `htu` differs from the request URI (after normalisation).
    #[error("dpop proof htu does not match the request uri")]
    UriMismatch,
    /// The request URI itself is outside the accepted language (e.g. dot segments).
    #[error("request {0}")]
    RequestUri(HtuError),
    /// `iat` is older than the proof window or too far in the future.
    #[error("dpop proof iat is outside the accepted window")]
    IatOutOfWindow,
    /// `ath` is not the hash of the presented access token.
    #[error("dpop proof ath does not match the access token")]
    AthMismatch,
    /// The proof's key is not the one the access token is bound to (`cnf.jkt`).
    #[error("dpop proof key does not match the access token binding")]
    KeyMismatch,
    /// The proof's `jti` was seen before within the proof window.
    #[error("dpop proof was replayed")]
    Replayed,
    // --- peer: nonce (answer `use_dpop_nonce`) ---
    /// The server requires a nonce and the proof has none.
    #[error("dpop nonce is missing")]
    NonceMissing,
    /// The proof's nonce is stale or not ours.
    #[error(transparent)]
    Nonce(NonceError),
    // --- internal ---
    /// The replay cache could not answer; the proof is rejected (fail closed).
    #[error(transparent)]
    ReplayCache(#[from] ReplayCacheError),
}

impl DpopError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match self {
            Self::AccessToken(e) => e.fault(),
            Self::ReplayCache(_) => Fault::Internal,
            _ => Fault::Peer,
        }
    }

    /// What to answer: `invalid_token` for the access token, `use_dpop_nonce` for a missing or
    /// stale nonce, `invalid_dpop_proof` for anything else the presenter did wrong.
    #[must_use]
    pub const fn error_code(&self) -> ErrorCode {
        match self {
            Self::AccessToken(e) => e.error_code(),
            Self::NonceMissing | Self::Nonce(_) => ErrorCode::UseDpopNonce,
            Self::ReplayCache(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidDpopProof,
        }
    }
}
