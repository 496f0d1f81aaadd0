//! The SDK error type, grouped by who is at fault.
use daas_crypto::CryptoError;
use serde::Deserialize;

pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Errors of the daas client. Messages never carry tokens, shares or plaintexts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request; `code` and `message` come from its JSON error body
    /// (`docs/api.md`, "Errors"). `message` is sanitized (printable, bounded length).
    #[error("{message} (http {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },

    /// The server could not be reached, TLS verification failed, or the connection broke or
    /// timed out. `message` names the server and the root cause in one line.
    #[error("{message}")]
    Transport {
        message: String,
        timeout: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The caller passed something unusable (bad address, missing environment, invalid name ...).
    #[error("{0}")]
    InvalidInput(String),

    /// Peer data failed a cryptographic check or parse: malformed ciphertext or share, a share of
    /// another object, key commitment mismatch, failed authentication of the ciphertext.
    #[error("{0}")]
    Crypto(#[from] CryptoError),

    /// The server answered 2xx with a body that does not follow the API contract.
    #[error("unexpected response from the server: {0}")]
    InvalidResponse(String),
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API error code (`forbidden`, `not_found`, `decryption_failed` ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether a transport error was a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport { timeout: true, .. })
    }

    pub(crate) fn invalid_input(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }

    pub(crate) fn invalid_response(msg: impl Into<String>) -> Self {
        Self::InvalidResponse(msg.into())
    }
}

/// A transport failure as one clear line: which server, and the root cause (the innermost
/// error: "Connection refused", "invalid peer certificate: UnknownIssuer" ...), plus a hint for
/// certificate problems.
pub(crate) fn transport(e: reqwest::Error) -> Error {
    let server = e.url().map_or_else(
        || "the daas server".to_owned(),
        |u| format!("the daas server at {}", u.origin().ascii_serialization()),
    );
    let timeout = e.is_timeout();
    let mut cause = None;
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        cause = Some(s.to_string());
        src = s.source();
    }
    let message = if timeout {
        format!("{server} did not answer in time")
    } else {
        let cause = cause.unwrap_or_else(|| e.to_string());
        let hint = if cause.contains("certificate") {
            " (is DAAS_CACERT the CA certificate of this server?)"
        } else {
            ""
        };
        format!(
            "cannot connect to {server}: {}{hint}",
            sanitize(&cause, MAX_MESSAGE)
        )
    };
    Error::Transport {
        message,
        timeout,
        source: Box::new(e),
    }
}

/// Longest server message we keep (bytes); longer ones are cut.
const MAX_MESSAGE: usize = 300;

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// Build an [`Error::Api`] from a non-2xx response status and body. A body that is not the
/// documented error JSON (a proxy's HTML page, say) yields a generic message from the status.
pub(crate) fn api_error(status: reqwest::StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error }) if !error.code.is_empty() => Error::Api {
            status: status.as_u16(),
            code: sanitize(&error.code, 64),
            message: sanitize(&error.message, MAX_MESSAGE),
        },
        _ => {
            let reason = status
                .canonical_reason()
                .unwrap_or("unknown status")
                .to_lowercase();
            Error::Api {
                status: status.as_u16(),
                code: "unexpected_response".to_owned(),
                message: format!("the server answered {} {reason}", status.as_u16()),
            }
        }
    }
}

/// Keep server-provided text safe to print on a terminal: no control characters (escape
/// sequences, newlines), bounded length.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "(no message)".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn parses_documented_error_body() {
        let body = br#"{"error": {"code": "forbidden", "message": "the caller is not allowed to do this"}}"#;
        let err = api_error(StatusCode::FORBIDDEN, body);
        match &err {
            Error::Api {
                status,
                code,
                message,
            } => {
                assert_eq!(*status, 403);
                assert_eq!(code, "forbidden");
                assert_eq!(message, "the caller is not allowed to do this");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.code(), Some("forbidden"));
        assert_eq!(err.status(), Some(403));
        assert_eq!(
            err.to_string(),
            "the caller is not allowed to do this (http 403, forbidden)"
        );
    }

    #[test]
    fn non_json_body_gives_generic_message() {
        let err = api_error(StatusCode::BAD_GATEWAY, b"<html>proxy error</html>");
        match err {
            Error::Api {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 502);
                assert_eq!(code, "unexpected_response");
                assert_eq!(message, "the server answered 502 bad gateway");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_of_other_shape_gives_generic_message() {
        for body in [
            &br#"{"errors": []}"#[..],
            br#"{"error": {"code": "", "message": "x"}}"#,
            b"",
            b"null",
        ] {
            let err = api_error(StatusCode::INTERNAL_SERVER_ERROR, body);
            assert_eq!(err.code(), Some("unexpected_response"), "{body:?}");
        }
    }

    #[test]
    fn server_text_is_sanitized() {
        let body = "{\"error\": {\"code\": \"x\\u001b[31m\", \"message\": \"line1\\nline2\\u001b]0;pwned\\u0007\"}}";
        let err = api_error(StatusCode::BAD_REQUEST, body.as_bytes());
        let text = err.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.starts_with("line1 line2"));

        let long = "é".repeat(1000);
        let cut = sanitize(&long, MAX_MESSAGE);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(sanitize("  \n ", 10), "(no message)");
    }
}
