//! Request extraction with JSON errors, and validation of untrusted fields.
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// `axum::Json` whose rejections become our JSON errors (400 / 413 / 415).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        _ => match rejection {
            // serde's message names fields and types, not values: safe and useful to return.
            JsonRejection::JsonDataError(e) => ApiError::Malformed(strip_location(&e.body_text())),
            _ => ApiError::Malformed("the body is not valid json".into()),
        },
    }
}

/// serde_json messages look like "Failed to deserialize the JSON body into the target type: missing field `share` at line 1 column 2".
fn strip_location(text: &str) -> String {
    let text = text.rsplit_once(": ").map_or(text, |(_, tail)| tail);
    let text = text.split(" at line ").next().unwrap_or(text);
    text.to_lowercase()
}

/// Strict base64url without padding, into a zeroizing buffer.
pub fn b64u_secret(field: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| ApiError::Malformed(format!("{field} is not base64url without padding")))
}

pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Principals are `admin` or `app:<name>`.
pub fn valid_principal(p: &str) -> bool {
    p == "admin" || p.strip_prefix("app:").is_some_and(valid_app_name)
}

/// App names: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Secret names: 1–128 chars of `[A-Za-z0-9._/-]`, not starting with `/`, no `..` segment.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

pub const MAX_ACCESS_ENTRIES: usize = 64;
pub const MAX_AUDIENCE_LEN: usize = 256;

/// The access list to store: the owner first, then the requested principals, deduplicated.
pub fn access_list(owner: &str, requested: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let requested = requested.unwrap_or(&[]);
    if requested.len() > MAX_ACCESS_ENTRIES {
        return Err(ApiError::Malformed(format!(
            "access lists hold at most {MAX_ACCESS_ENTRIES} principals"
        )));
    }
    let mut list = vec![owner.to_owned()];
    for p in requested {
        if !valid_principal(p) {
            return Err(ApiError::Malformed(
                "access entries must be \"admin\" or \"app:<name>\"".into(),
            ));
        }
        if !list.contains(p) {
            list.push(p.clone());
        }
    }
    Ok(list)
}

pub fn audience(requested: Option<String>) -> Result<String, ApiError> {
    let a = requested.unwrap_or_default();
    if a.len() > MAX_AUDIENCE_LEN || a.chars().any(char::is_control) {
        return Err(ApiError::Malformed(format!(
            "audience must be at most {MAX_AUDIENCE_LEN} printable characters"
        )));
    }
    Ok(a)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Compile-time probe for tests: does `T` implement `Debug`? (An inherent method applies only
/// when `T: Debug`; otherwise method resolution falls back to the `NoDebug` trait's method.)
#[cfg(test)]
pub(crate) struct DebugProbe<T>(pub std::marker::PhantomData<T>);

#[cfg(test)]
pub(crate) trait NoDebug {
    fn implements_debug(&self) -> bool {
        false
    }
}

#[cfg(test)]
impl<T> NoDebug for DebugProbe<T> {}

#[cfg(test)]
impl<T: std::fmt::Debug> DebugProbe<T> {
    pub(crate) fn implements_debug(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;

    /// Bodies holding plaintext, values, shares or tokens must never be printable with `{:?}`
    /// (a stray `tracing::debug!(?req)` would log them).
    #[test]
    fn secret_bearing_bodies_have_no_debug() {
        macro_rules! debug {
            ($t:ty) => {
                DebugProbe::<$t>(PhantomData).implements_debug()
            };
        }
        // The probe works both ways.
        assert!(debug!(crate::safe::ObjectMeta));
        assert!(debug!(crate::sys::UnsealStatus));
        assert!(!debug!(crate::safe::EncryptRequest));
        assert!(!debug!(crate::safe::EncryptResponse));
        assert!(!debug!(crate::safe::DecryptRequest));
        assert!(!debug!(crate::safe::DecryptResponse));
        assert!(!debug!(crate::safe::DepositRequest));
        assert!(!debug!(crate::safe::ShareResponse));
        assert!(!debug!(crate::safe::Sealed));
        assert!(!debug!(crate::secrets::PutRequest));
        assert!(!debug!(crate::secrets::PutResponse));
        assert!(!debug!(crate::secrets::GetResponse));
        assert!(!debug!(crate::apps::CreateResponse));
        assert!(!debug!(crate::sys::UnsealRequest));
    }

    #[test]
    fn names() {
        assert!(valid_app_name("billing-2"));
        assert!(!valid_app_name("-x"));
        assert!(!valid_app_name("Billing"));
        assert!(!valid_app_name(""));
        assert!(valid_principal("app:web"));
        assert!(!valid_principal("app:"));
        assert!(!valid_principal("root"));
        assert!(valid_secret_name("db/password"));
        assert!(!valid_secret_name("/abs"));
        assert!(!valid_secret_name("a/../b"));
        assert!(!valid_secret_name("a//b"));
        assert!(!valid_secret_name(&"x".repeat(129)));
    }

    #[test]
    fn access_list_keeps_owner_first_and_dedups() {
        let l = access_list(
            "app:a",
            Some(&["app:b".into(), "app:a".into(), "app:b".into()]),
        )
        .unwrap();
        assert_eq!(l, vec!["app:a", "app:b"]);
        assert!(access_list("admin", Some(&["nobody".into()])).is_err());
    }

    #[test]
    fn strict_base64url() {
        assert!(b64u_secret("x", "aGk").is_ok());
        assert!(b64u_secret("x", "aGk=").is_err());
        assert!(
            b64u_secret("x", "aGl").is_err(),
            "non-canonical trailing bits"
        );
    }
}
