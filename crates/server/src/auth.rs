//! Caller authentication: `Authorization: Bearer <admin token | app token>`.
//! Failures are opaque to the client (one 401) and precise in the audit log.
use std::fmt;
use std::sync::PoisonError;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use daas_store::AppRecord;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::{AppState, Engine};

pub const APP_TOKEN_PREFIX: &str = "daas_app_";
pub const ADMIN_TOKEN_PREFIX: &str = "daas_admin_";
/// Longest token we look at; anything longer is rejected before hashing or DB access.
const MAX_TOKEN_LEN: usize = 256;
/// At most this many unknown app ids are remembered; the set is cleared when it is full.
pub const UNKNOWN_APPS_MAX: usize = 10_000;
/// `auth.failure` audit rows: a token bucket of this many rows ...
pub const AUTH_FAILURE_AUDIT_BURST: f64 = 100.0;
/// ... refilled at this many rows per second.
pub const AUTH_FAILURE_AUDIT_PER_SEC: f64 = 20.0;

/// Rate limit for `auth.failure` audit rows. Unauthenticated callers cannot grow the audit log
/// faster than the bucket allows; failures beyond it are counted and the count is carried by the
/// next row written, so the log stays complete in number, and precise while within the budget.
#[derive(Debug)]
pub struct FailureBudget {
    tokens: f64,
    last: Instant,
    /// Failures since the last written row that were not itemised.
    suppressed: u64,
}

impl FailureBudget {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: AUTH_FAILURE_AUDIT_BURST,
            last: now,
            suppressed: 0,
        }
    }

    /// `Some(n)`: write this failure's row, noting `n` earlier failures that were not itemised.
    /// `None`: over budget; the failure is only counted.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens =
            (self.tokens + elapsed * AUTH_FAILURE_AUDIT_PER_SEC).min(AUTH_FAILURE_AUDIT_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    /// A row that should have carried `n` failures could not be written: count them again.
    fn restore(&mut self, n: u64) {
        self.suppressed = self.suppressed.saturating_add(n);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    App(String),
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::App(name) => write!(f, "app:{name}"),
        }
    }
}

/// An authenticated caller. Can only be built by verifying a token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub name: String,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Why authentication failed: for the audit log only.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Missing,
    Malformed,
    UnknownApp,
    WrongSecret,
}

impl Failure {
    fn detail(self) -> &'static str {
        match self {
            Self::Missing => "no bearer token",
            Self::Malformed => "malformed bearer token",
            Self::UnknownApp => "token names an unknown app",
            Self::WrongSecret => "token secret does not match",
        }
    }
}

async fn verify(
    engine: &Engine,
    header: Option<&str>,
) -> Result<Result<Principal, Failure>, ApiError> {
    let Some(header) = header else {
        return Ok(Err(Failure::Missing));
    };
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Ok(Err(Failure::Malformed));
    };
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Ok(Err(Failure::Malformed));
    }
    if token.starts_with(ADMIN_TOKEN_PREFIX) {
        let ok: bool = sha256(token.as_bytes())
            .ct_eq(&engine.admin_token_sha256)
            .into();
        return Ok(if ok {
            Ok(Principal::Admin)
        } else {
            Err(Failure::WrongSecret)
        });
    }
    let Some(rest) = token.strip_prefix(APP_TOKEN_PREFIX) else {
        return Ok(Err(Failure::Malformed));
    };
    let Some((id, _secret)) = rest.split_once('_') else {
        return Ok(Err(Failure::Malformed));
    };
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err(Failure::Malformed));
    }
    let app_id = format!("app_{id}");
    // The same keyed hash for every well-formed app token, before we know whether the id exists:
    // the time taken does not tell a caller whether it guessed an existing app id.
    let presented = engine.keys.lookup("app-token", token.as_bytes());
    let Some(app) = find_app(engine, &app_id).await? else {
        let same_work: bool = presented.as_bytes().ct_eq(presented.as_bytes()).into();
        std::hint::black_box(same_work);
        return Ok(Err(Failure::UnknownApp));
    };
    let ok: bool = presented.as_bytes().ct_eq(app.token_hash.as_bytes()).into();
    Ok(if ok {
        Ok(Principal::App(app.name))
    } else {
        Err(Failure::WrongSecret)
    })
}

/// The app with this id: from the cache of known apps, else (unless the id is remembered as
/// unknown) from the store. Unknown ids are remembered so that repeated bogus tokens naming them
/// do not reach the database.
async fn find_app(engine: &Engine, app_id: &str) -> Result<Option<AppRecord>, ApiError> {
    if let Some(app) = engine
        .apps
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(app_id)
    {
        return Ok(Some(app.clone()));
    }
    if engine
        .unknown_apps
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(app_id)
    {
        return Ok(None);
    }
    match engine.store.get_app(app_id).await {
        Ok(app) => {
            engine
                .apps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(app_id.to_owned(), app.clone());
            Ok(Some(app))
        }
        Err(daas_store::StoreError::NotFound) => {
            let mut unknown = engine
                .unknown_apps
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if unknown.len() >= UNKNOWN_APPS_MAX {
                unknown.clear();
            }
            unknown.insert(app_id.to_owned());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A new app's id must not stay remembered as unknown (ids are random, so this is belt and
/// braces).
pub fn forget_unknown_app(engine: &Engine, app_id: &str) {
    engine
        .unknown_apps
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(app_id);
}

/// Write the `auth.failure` row for this failure if the budget allows; otherwise count it.
async fn audit_auth_failure(engine: &Engine, route: &str, failure: Failure) {
    audit_credential_failure(engine, "auth.failure", route, failure.detail()).await;
}

/// An unauthenticated caller presented a bad credential (a bearer token, a join token): write
/// `action` with `detail` if the failure budget allows, otherwise count it, so that anonymous
/// callers cannot grow the audit log without bound.
pub(crate) async fn audit_credential_failure(
    engine: &Engine,
    action: &str,
    target: &str,
    detail: &str,
) {
    let admitted = engine
        .auth_failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(Instant::now());
    let Some(earlier) = admitted else {
        tracing::debug!(
            detail,
            "credential failure counted, not itemised (audit budget exhausted)"
        );
        return;
    };
    let detail = if earlier == 0 {
        detail.to_owned()
    } else {
        format!("{detail} ({earlier} earlier failures not itemised)")
    };
    let written = engine
        .audit("anonymous", action, target, "denied", &detail)
        .await;
    if written.is_err() {
        // Best effort, as for every failing request, but keep the count.
        engine
            .auth_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .restore(earlier.saturating_add(1));
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let engine = state.engine()?;
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        match verify(&engine, header).await? {
            Ok(principal) => Ok(Caller {
                name: principal.to_string(),
                principal,
            }),
            Err(failure) => {
                let route = parts
                    .uri
                    .path()
                    .split('/')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("/");
                audit_auth_failure(&engine, &route, failure).await;
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failure_budget_itemises_a_burst_then_counts_and_reports_the_rest() {
        let t0 = Instant::now();
        let mut b = FailureBudget::new(t0);
        for _ in 0..100 {
            assert_eq!(b.admit(t0), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(b.admit(t0), None);
        }
        // 20 rows per second: after 60 ms there is room for one row, carrying the 7.
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(b.admit(t1), Some(7));
        assert_eq!(b.admit(t1), None);
        b.restore(3);
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(b.admit(t2), Some(4));
        // Refill is capped at the burst.
        for _ in 0..99 {
            assert_eq!(b.admit(t2), Some(0));
        }
        assert_eq!(b.admit(t2), None);
        // A clock that goes backwards does not refill or panic.
        assert_eq!(b.admit(t0), None);
    }
}
