//! Caller authentication: `Authorization: Bearer <admin token | app token>`.
//! Failures are opaque to the client (one 401) and precise in the audit log.
use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::{AppState, Engine};

pub const APP_TOKEN_PREFIX: &str = "daas_app_";
pub const ADMIN_TOKEN_PREFIX: &str = "daas_admin_";
/// Longest token we look at; anything longer is rejected before hashing or DB access.
const MAX_TOKEN_LEN: usize = 256;

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
    let cached = engine
        .apps
        .lock()
        .ok()
        .and_then(|apps| apps.get(&app_id).cloned());
    let app = match cached {
        Some(app) => app,
        None => match engine.store.get_app(&app_id).await {
            Ok(app) => {
                if let Ok(mut apps) = engine.apps.lock() {
                    apps.insert(app_id.clone(), app.clone());
                }
                app
            }
            Err(daas_store::StoreError::NotFound) => return Ok(Err(Failure::UnknownApp)),
            Err(e) => return Err(e.into()),
        },
    };
    let presented = engine.keys.lookup("app-token", token.as_bytes());
    let ok: bool = presented.as_bytes().ct_eq(app.token_hash.as_bytes()).into();
    Ok(if ok {
        Ok(Principal::App(app.name))
    } else {
        Err(Failure::WrongSecret)
    })
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
                engine
                    .audit_failure(
                        "anonymous",
                        "auth.failure",
                        &route,
                        "denied",
                        failure.detail(),
                    )
                    .await;
                Err(ApiError::Unauthenticated)
            }
        }
    }
}
