//! Stored secrets (`/v1/secrets/{name}`): the same split-key construction as `safe`. The server
//! keeps the ciphertext and `t2`; the caller keeps `t1` (the share) and needs it to read.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use daas_store::SecretRecord;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, b64u, b64u_secret, now_ms, valid_secret_name};
use crate::safe::{open_with, parse_pair, seal_new};
use crate::state::{AppState, event};

pub const SHARE_HEADER: &str = "daas-share";

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_secret_name(name) {
        Ok(())
    } else {
        Err(ApiError::Malformed(
            "secret names are 1-128 characters of [A-Za-z0-9._/-] and do not start with /".into(),
        ))
    }
}

/// The audience bound into a secret's AAD: a ciphertext cannot be replayed under another name.
fn secret_audience(name: &str) -> String {
    format!("secret:{name}")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    value: String,
}

#[derive(Debug, Serialize)]
pub struct PutResponse {
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
    let target = engine.keys.audit_value(name.as_bytes());
    match engine.store.get_secret(&name).await {
        Ok(existing) if !(caller.principal.is_admin() || existing.object.owner == caller.name) => {
            engine
                .audit_failure(
                    &caller.name,
                    "secret.put",
                    &target,
                    "denied",
                    "not owner or admin",
                )
                .await;
            return Err(ApiError::Forbidden);
        }
        Ok(_) | Err(daas_store::StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let value = b64u_secret("value", &req.value)?;
    let sealed = seal_new(
        &caller.name,
        secret_audience(&name),
        vec![caller.name.clone()],
        &value,
    )?;
    drop(value);
    let record = SecretRecord {
        name: name.clone(),
        version: 0,
        ciphertext: sealed.envelope.encode(),
        object: sealed.record,
        updated_at: now_ms(),
    };
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

#[derive(Debug, Serialize)]
pub struct GetResponse {
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
    let target = engine.keys.audit_value(name.as_bytes());
    let record = match engine.store.get_secret(&name).await {
        Ok(r) => r,
        Err(daas_store::StoreError::NotFound) => {
            engine
                .audit_failure(&caller.name, "secret.get", &target, "not_found", "")
                .await;
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    if !(caller.principal.is_admin() || record.object.owner == caller.name) {
        engine
            .audit_failure(
                &caller.name,
                "secret.get",
                &target,
                "denied",
                "not owner or admin",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    let (envelope, share) = parse_pair(&record.ciphertext, share)?;
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
    let target = engine.keys.audit_value(name.as_bytes());
    let record = engine.store.get_secret(&name).await?;
    if !(caller.principal.is_admin() || record.object.owner == caller.name) {
        engine
            .audit_failure(
                &caller.name,
                "secret.delete",
                &target,
                "denied",
                "not owner or admin",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    engine
        .store
        .delete_secret(
            &name,
            &event(&caller.name, "secret.delete", &target, "ok", ""),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct ListResponse {
    secrets: Vec<daas_store::SecretSummary>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ListResponse>, ApiError> {
    let engine = state.engine()?;
    let mut secrets = engine.store.list_secrets().await?;
    if !caller.principal.is_admin() {
        secrets.retain(|s| s.owner == caller.name);
    }
    Ok(Json(ListResponse { secrets }))
}
