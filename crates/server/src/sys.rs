//! System endpoints: health, whoami, unseal, the OpenAPI document.
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use daas_crypto::shamir::{self, ShamirShare};
use daas_crypto::storage::{self, StorageKeys};
use daas_store::Store;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, share_error};
use crate::extract::ApiJson;
use crate::state::{AppState, Engine};

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine()?;
    engine.store.ping().await?;
    Ok(Json(serde_json::json!({"status": "ok"})))
}

pub async fn whoami(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({"principal": caller.name}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    share: String,
}

#[derive(Debug, Serialize)]
pub struct UnsealStatus {
    sealed: bool,
    progress: usize,
    threshold: u8,
}

/// Takes one Shamir share at a time (unauthenticated, as the shares themselves are the
/// credential). When the threshold is met the combined key must match the stored key check;
/// otherwise all pending shares are discarded and the operators start again.
pub async fn unseal(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<UnsealRequest>,
) -> Result<Json<UnsealStatus>, ApiError> {
    let Some(seal) = state.0.seal.as_ref() else {
        return Err(ApiError::Malformed(
            "this server is not shamir-sealed".into(),
        ));
    };
    if state.0.engine.get().is_some() {
        return Ok(Json(UnsealStatus {
            sealed: false,
            progress: 0,
            threshold: seal.threshold,
        }));
    }
    let share =
        ShamirShare::parse(req.share.trim()).map_err(|e| share_error(e, req.share.trim()))?;
    if share.threshold != seal.threshold {
        return Err(ApiError::InvalidShare);
    }
    let mut pending = seal.pending.lock().await;
    if state.0.engine.get().is_some() {
        return Ok(Json(UnsealStatus {
            sealed: false,
            progress: 0,
            threshold: seal.threshold,
        }));
    }
    if pending.iter().any(|s| s.index == share.index) {
        return Err(ApiError::Malformed(
            "this unseal share was already given".into(),
        ));
    }
    pending.push(share);
    if pending.len() < usize::from(seal.threshold) {
        tracing::info!(
            progress = pending.len(),
            threshold = seal.threshold,
            "unseal share accepted"
        );
        return Ok(Json(UnsealStatus {
            sealed: true,
            progress: pending.len(),
            threshold: seal.threshold,
        }));
    }
    let combined = shamir::combine(&pending);
    pending.clear();
    let master = match combined {
        Ok(k) if storage::verify_key_check(&k, &seal.key_check).is_ok() => k,
        _ => {
            tracing::warn!("unseal shares did not reconstruct the storage key; progress reset");
            return Err(ApiError::InvalidShare);
        }
    };
    let keys = StorageKeys::derive(&master);
    drop(master);
    let store = Store::open(&seal.store_url, keys.clone()).await?;
    let _first = state
        .0
        .engine
        .set(Arc::new(Engine::new(store, keys, seal.admin_token_sha256)));
    tracing::info!("server unsealed");
    Ok(Json(UnsealStatus {
        sealed: false,
        progress: 0,
        threshold: seal.threshold,
    }))
}
