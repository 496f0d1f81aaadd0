//! Stored secrets (`/v1/secrets/{name}`): the same split-key construction as `safe`. The server
//! keeps the ciphertext and `t2`; the caller keeps `t1` (the share) and needs it to read.
//!
//! Every principal has its own namespace, the admin included: `name` is stored under the key
//! `"{principal}|{name}"` (`|` occurs in neither valid names nor principals), so one caller's
//! `GET`/`PUT`/`DELETE` can never reach, reveal, squat or overwrite another caller's secret —
//! another principal's secret simply does not exist (`404`) from where the caller stands.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use daas_crypto::envelope::Envelope;
use daas_store::SecretRecord;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, b64u, b64u_secret, now_ms, valid_secret_name};
use crate::safe::{SECRET_AUDIENCE_PREFIX, open_with, parse_share_for, seal_new};
use crate::state::{AppState, event};

pub const SHARE_HEADER: &str = "daas-share";

/// Separates the owning principal from the name in the stored key.
const SCOPE_SEPARATOR: char = '|';

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_secret_name(name) {
        Ok(())
    } else {
        Err(ApiError::Malformed(
            "secret names are 1-128 characters of [A-Za-z0-9._/-] and do not start with /".into(),
        ))
    }
}

/// The store key of `name` in `principal`'s namespace.
fn scoped_name(principal: &str, name: &str) -> String {
    format!("{principal}{SCOPE_SEPARATOR}{name}")
}

/// The audience bound into a secret's AAD: a ciphertext cannot be replayed under another name
/// or in another principal's namespace.
fn secret_audience(scoped: &str) -> String {
    format!("{SECRET_AUDIENCE_PREFIX}{scoped}")
}

/// Holds the value: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutRequest {
    value: String,
}

/// Holds the caller's share: no `Debug`.
#[derive(Serialize)]
pub(crate) struct PutResponse {
    name: String,
    version: u64,
    share: String,
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PutRequest>,
) -> Result<Json<PutResponse>, ApiError> {
    let engine = state.engine()?;
    check_name(&name)?;
    let scoped = scoped_name(&caller.name, &name);
    let target = engine.keys.audit_value(scoped.as_bytes());
    let value = b64u_secret("value", &req.value)?;
    let sealed = seal_new(
        &caller.name,
        secret_audience(&scoped),
        vec![caller.name.clone()],
        &value,
    )?;
    drop(value);
    let record = SecretRecord {
        name: scoped,
        version: 0,
        ciphertext: sealed.envelope.encode(),
        object: sealed.record,
        updated_at: now_ms(),
    };
    // Create or replace in one store transaction: only the caller's own namespace is reachable,
    // so there is no ownership check to race with.
    let version = engine
        .store
        .put_secret(
            &record,
            &event(&caller.name, "secret.put", &target, "ok", ""),
        )
        .await?;
    Ok(Json(PutResponse {
        name,
        version,
        share: sealed.client_share.encode(),
    }))
}

/// Holds the value: no `Debug`.
#[derive(Serialize)]
pub(crate) struct GetResponse {
    name: String,
    version: u64,
    value: String,
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<GetResponse>, ApiError> {
    let engine = state.engine()?;
    check_name(&name)?;
    let share = headers
        .get(SHARE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Malformed("the daas-share header is required".into()))?;
    let scoped = scoped_name(&caller.name, &name);
    let target = engine.keys.audit_value(scoped.as_bytes());
    let record = match engine.store.get_secret(&scoped).await {
        // The key names the caller, so the owner is the caller; checked anyway.
        Ok(r) if r.object.owner == caller.name => r,
        Ok(_) => {
            tracing::error!("a stored secret's owner does not match its namespace");
            return Err(ApiError::Internal);
        }
        Err(daas_store::StoreError::NotFound) => {
            engine
                .audit_failure(&caller.name, "secret.get", &target, "not_found", "")
                .await;
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    // The stored ciphertext is ours (and was sealed under the storage key): if it does not
    // parse, that is our fault, not the caller's.
    let envelope = Envelope::parse(record.ciphertext.trim()).map_err(|_| {
        tracing::error!("a stored secret's ciphertext does not parse");
        ApiError::Internal
    })?;
    // A share that is malformed or belongs to another object is a failed read of this secret
    // all the same: audited like a wrong share.
    let share = match parse_share_for(&envelope, share) {
        Ok(share) => share,
        Err(e) => {
            engine
                .audit_failure(
                    &caller.name,
                    "secret.get",
                    &target,
                    "invalid",
                    "share is malformed or belongs to another object",
                )
                .await;
            return Err(e);
        }
    };
    let value = match open_with(&record.object, &envelope, &share) {
        Ok(v) => v,
        Err(e) => {
            engine
                .audit_failure(
                    &caller.name,
                    "secret.get",
                    &target,
                    "invalid",
                    "share does not match the secret",
                )
                .await;
            return Err(e);
        }
    };
    engine
        .audit(
            &caller.name,
            "secret.get",
            &target,
            "ok",
            &format!("version {}", record.version),
        )
        .await?;
    Ok(Json(GetResponse {
        name,
        version: record.version,
        value: b64u(&value),
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    check_name(&name)?;
    let scoped = scoped_name(&caller.name, &name);
    let target = engine.keys.audit_value(scoped.as_bytes());
    engine
        .store
        .delete_secret(
            &scoped,
            &event(&caller.name, "secret.delete", &target, "ok", ""),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub(crate) struct ListResponse {
    secrets: Vec<daas_store::SecretSummary>,
}

/// The caller's own secrets (the admin's too: the admin does not see apps' secrets), with the
/// namespace prefix stripped from the names.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ListResponse>, ApiError> {
    let engine = state.engine()?;
    let prefix = scoped_name(&caller.name, "");
    let secrets = engine
        .store
        .list_secrets()
        .await?
        .into_iter()
        .filter(|s| s.owner == caller.name)
        .filter_map(|mut s| {
            s.name = s.name.strip_prefix(&prefix)?.to_owned();
            Some(s)
        })
        .collect();
    Ok(Json(ListResponse { secrets }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::valid_principal;

    #[test]
    fn scoped_names_are_unambiguous() {
        // The separator occurs in no valid name or principal, so (principal, name) is recoverable.
        assert!(!valid_secret_name("a|b"));
        assert!(!valid_principal("app:a|b"));
        assert_ne!(scoped_name("app:a", "b"), scoped_name("app:b", "b"));
        assert_eq!(scoped_name("admin", "db/pw"), "admin|db/pw");
        assert_eq!(secret_audience("admin|db/pw"), "secret:admin|db/pw");
    }
}
