//! Request extraction with JSON errors, and validation of untrusted fields.
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// `axum::Json` whose rejections become our JSON errors (400 / 413 / 415).
///
/// Request types must stay `deny_unknown_fields` structs of plain fields (strings, integers,
/// booleans, options and vectors of those): no maps, `serde_json::Value`, `flatten`, untagged
/// enums or custom deserializers. `describe_data_error` relies on that to keep the caller's
/// bytes out of error messages (a map key would become a field path; `flatten` changes serde's
/// wording of unknown fields).
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
            JsonRejection::JsonDataError(e) => {
                ApiError::Malformed(describe_data_error(&e.body_text()))
            }
            _ => ApiError::Malformed("the body is not valid json".into()),
        },
    }
}

/// What was wrong with a well-formed JSON body, in our words only. serde's messages quote what
/// the caller sent (the value of a wrong type, the name of an unknown field: possibly a secret
/// pasted into the wrong place), so they are never returned as they are: only the field path
/// (our field names), the kind of mistake and what was expected (our schema) are kept.
/// axum's text looks like "Failed to deserialize the JSON body into the target type:
/// access: invalid type: string \"…\", expected a sequence at line 1 column 20".
fn describe_data_error(text: &str) -> String {
    let text = text
        .split_once("target type: ")
        .map_or(text, |(_, rest)| rest);
    let text = text.rsplit_once(" at line ").map_or(text, |(head, _)| head);
    // An unknown field's path is its name, which is the caller's: say only what was expected.
    if text.starts_with("unknown field `") || text.contains(": unknown field `") {
        return match text.rsplit_once(", expected ") {
            Some((_, what)) => format!("unknown field, expected {}", plain_expectation(what)),
            None => "unknown field".to_owned(),
        };
    }
    // "path: message" when the error is inside a field; the path is kept only if it is made of
    // identifiers and indexes (our fields).
    let (path, message) = match text.split_once(": ") {
        Some((path, message)) if is_field_path(path) => (Some(path), message),
        _ => (None, text),
    };
    let quoted_ident = |m: &str, prefix: &str| {
        m.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .filter(|name| is_field_path(name))
            .map(str::to_owned)
    };
    let expected = || {
        message
            .rsplit_once(", expected ")
            .map(|(_, what)| format!(", expected {}", plain_expectation(what)))
            .unwrap_or_default()
    };
    let described = if let Some(field) = quoted_ident(message, "missing field `") {
        format!("missing field `{field}`")
    } else if let Some(field) = quoted_ident(message, "duplicate field `") {
        format!("duplicate field `{field}`")
    } else if message.starts_with("unknown variant") {
        format!("unknown variant{}", expected())
    } else if message.starts_with("invalid type") {
        format!("invalid type{}", expected())
    } else if message.starts_with("invalid value") {
        format!("invalid value{}", expected())
    } else if message.starts_with("invalid length") {
        format!("invalid length{}", expected())
    } else {
        "the body does not have the expected shape".to_owned()
    };
    match path {
        Some(path) => format!("{path}: {described}"),
        None => described,
    }
}

/// "`a`, `b_c`" or "`a` or `b`": backquoted lowercase identifiers separated by ", " or " or ".
fn is_name_list(list: &str) -> bool {
    list.split(", ").flat_map(|i| i.split(" or ")).all(|item| {
        item.strip_prefix('`')
            .and_then(|i| i.strip_suffix('`'))
            .is_some_and(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
    })
}

/// `a`, `a.b`, `a[0].b`: lowercase identifiers and indexes, as our request fields are named.
fn is_field_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 64
        && path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.[]".contains(&b))
}

/// serde's expectation text comes from our schema, but names Rust types; say it in JSON terms.
/// Anything unexpected is dropped rather than returned.
fn plain_expectation(what: &str) -> String {
    match what {
        w if w.starts_with("struct ") || w == "a map" => "a json object".to_owned(),
        "u8" => "an integer from 0 to 255".to_owned(),
        "u16" => "an integer from 0 to 65535".to_owned(),
        "u32" => "an integer from 0 to 4294967295".to_owned(),
        "u64" | "usize" => "a non-negative integer".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a string" | "a boolean" | "a borrowed string" => what.replace("borrowed ", ""),
        // "one of `a`, `b`" or "`a`": field or variant names of our schema, nothing else.
        w if is_name_list(w.strip_prefix("one of ").unwrap_or(w)) => w.to_owned(),
        _ => "another shape".to_owned(),
    }
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

    /// What serde says about a body, through axum's wording, for a request type like ours.
    fn axum_text(body: &str) -> String {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialised, to get serde's errors")]
        struct Req {
            share: String,
            suite: u8,
            access: Option<Vec<String>>,
            mode: Option<Mode>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Server,
        }
        axum_text_for::<Req>(body)
    }

    fn axum_text_for<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(body);
        let err = serde_path_to_error::deserialize::<_, T>(de).unwrap_err();
        format!("Failed to deserialize the JSON body into the target type: {err}")
    }

    /// serde words the field list of a two-field struct as "`a` or `b`".
    #[test]
    fn two_field_bodies_list_their_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialised, to get serde's errors")]
        struct Pair {
            ciphertext: String,
            share: String,
        }
        let text = axum_text_for::<Pair>(r#"{"ciphertext": "c", "share": "s", "Secret": 1}"#);
        assert_eq!(
            describe_data_error(&text),
            "unknown field, expected `ciphertext` or `share`"
        );
    }

    #[test]
    fn data_errors_keep_our_words_and_drop_the_callers() {
        let canary = "Secret, expected `x` Canary";
        let cases = [
            (
                format!(r#"{{"share": "s", "suite": "{canary}"}}"#),
                "suite: invalid type, expected an integer from 0 to 255",
            ),
            (
                format!(r#"{{"share": "s", "suite": 1, "{canary}": 1}}"#),
                "unknown field, expected one of `share`, `suite`, `access`, `mode`",
            ),
            (
                format!(r#"{{"share": "s", "suite": 1, "access": "{canary}"}}"#),
                "access: invalid type, expected an array",
            ),
            (
                r#"{"share": "s", "suite": 1, "access": [1]}"#.to_owned(),
                "access[0]: invalid type, expected a string",
            ),
            (
                format!(r#"{{"share": "s", "suite": 1, "mode": "{canary}"}}"#),
                "mode: unknown variant, expected `server`",
            ),
            (r#"{"suite": 1}"#.to_owned(), "missing field `share`"),
            (
                format!(r#"{{"share": "s", "share": "{canary}", "suite": 1}}"#),
                "duplicate field `share`",
            ),
            (
                format!(r#""{canary}""#),
                "invalid type, expected a json object",
            ),
            (
                format!(r#"["{canary}"]"#),
                "invalid length, expected a json object",
            ),
            (
                r#"{"share": "s", "suite": 300}"#.to_owned(),
                "suite: invalid value, expected an integer from 0 to 255",
            ),
        ];
        for (body, want) in cases {
            let text = axum_text(&body);
            let got = describe_data_error(&text);
            assert_eq!(got, want, "for {body} (serde said {text})");
            let lower = got.to_lowercase();
            assert!(
                !lower.contains("secret") && !lower.contains("canary"),
                "{got}"
            );
        }
    }

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
