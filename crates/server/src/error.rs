//! The HTTP error model: `{"error": {"code", "message"}}` with the right status.
//! Messages are fixed, lowercase sentences; internal details go to the log, never to the client.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use daas_crypto::CryptoError;
use daas_store::StoreError;

/// RFC 9449 §8: the header that carries the server's current DPoP nonce.
pub const DPOP_NONCE: axum::http::HeaderName = axum::http::HeaderName::from_static("dpop-nonce");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Malformed(String),
    InvalidCiphertext,
    UnsupportedVersion,
    InvalidShare,
    DecryptionFailed,
    /// `POST /v1/safe/decrypt` of an object deposited in client mode (decrypt it locally).
    ClientModeObject,
    /// RFC 9449 §5: the DPoP proof of a token request is missing or invalid (the audit log
    /// says why).
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry a current server nonce; the answer carries a fresh one
    /// in `DPoP-Nonce`.
    UseDpopNonce(String),
    /// RFC 6749 §5.2: the token to replace is unknown, revoked, bound to another key or at the
    /// end of its replacement chain (opaque; the audit log says which).
    InvalidGrant,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// 409 with the reason (e.g. a stale version); never internal details.
    ConflictBecause(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Sealed,
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_)
            | Self::InvalidCiphertext
            | Self::UnsupportedVersion
            | Self::InvalidShare
            | Self::DecryptionFailed
            | Self::ClientModeObject
            | Self::InvalidDpopProof
            | Self::UseDpopNonce(_)
            | Self::InvalidGrant => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::ConflictBecause(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::Sealed => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_request",
            Self::InvalidCiphertext => "invalid_ciphertext",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidShare => "invalid_share",
            Self::DecryptionFailed => "decryption_failed",
            Self::ClientModeObject => "client_mode_object",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce(_) => "use_dpop_nonce",
            Self::InvalidGrant => "invalid_grant",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict | Self::ConflictBecause(_) => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable => "unavailable",
            Self::Sealed => "sealed",
            Self::Internal => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Malformed(why) => format!("malformed request: {why}"),
            Self::InvalidCiphertext => "the ciphertext is not a valid daas:v1 envelope".into(),
            Self::UnsupportedVersion => "unsupported envelope or share version".into(),
            Self::InvalidShare => "the share is invalid or belongs to another object".into(),
            Self::DecryptionFailed => "the ciphertext and share do not decrypt together".into(),
            Self::ClientModeObject => "this object was encrypted in client mode; decrypt it \
                                       locally (daas decrypt --local)"
                .into(),
            Self::InvalidDpopProof => "the dpop proof is missing or invalid".into(),
            Self::UseDpopNonce(_) => {
                "the dpop proof must carry the nonce of the DPoP-Nonce header; retry with it".into()
            }
            Self::InvalidGrant => "the token cannot be replaced".into(),
            Self::Unauthenticated => "missing or invalid credentials".into(),
            Self::Forbidden => "the caller is not allowed to do this".into(),
            Self::NotFound => "not found".into(),
            Self::MethodNotAllowed => "method not allowed".into(),
            Self::Conflict => "already exists".into(),
            Self::ConflictBecause(why) => format!("conflict: {why}"),
            Self::PayloadTooLarge => "request body too large".into(),
            Self::UnsupportedMediaType => {
                "expected a json body (content-type: application/json)".into()
            }
            Self::Unavailable => {
                "the service is temporarily unavailable; nothing was changed".into()
            }
            Self::Sealed => "the server is sealed; unseal it with daas operator unseal".into(),
            Self::Internal => "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.message()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::UseDpopNonce(nonce) = &self
            && let Ok(value) = axum::http::HeaderValue::from_str(nonce)
        {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::Conflict,
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "storage unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::Internal
            }
        }
    }
}

/// Map parse failures of untrusted envelope text: only a `daas:` text of another version is
/// "unsupported"; anything else is simply not a ciphertext.
pub fn envelope_error(e: CryptoError, text: &str) -> ApiError {
    match e {
        CryptoError::UnsupportedFormat(_) if text.starts_with("daas:v") => {
            ApiError::UnsupportedVersion
        }
        _ => ApiError::InvalidCiphertext,
    }
}

/// Map parse failures of untrusted share text (same rule as envelopes).
pub fn share_error(e: CryptoError, text: &str) -> ApiError {
    match e {
        CryptoError::UnsupportedFormat(_)
            if text.starts_with("daas:share:") || text.starts_with("daas:unseal:") =>
        {
            ApiError::UnsupportedVersion
        }
        _ => ApiError::InvalidShare,
    }
}

pub fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError::Internal
}
