//! Application API credentials (until workload identities exist): admin-created, shown once.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use daas_store::AppRecord;
use serde::{Deserialize, Serialize};

use crate::auth::{APP_TOKEN_PREFIX, Caller, forget_unknown_app};
use crate::error::{ApiError, internal};
use crate::extract::{ApiJson, b64u, now_ms, valid_app_name};
use crate::state::{AppState, event};

pub fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    name: String,
}

/// Holds the app's token: no `Debug`.
#[derive(Serialize)]
pub(crate) struct CreateResponse {
    id: String,
    name: String,
    principal: String,
    token: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AppSummary {
    id: String,
    name: String,
    principal: String,
    created_at: i64,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<CreateResponse>), ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    if !valid_app_name(&req.name) {
        return Err(ApiError::Malformed(
            "app names are 1-63 characters of [a-z0-9-], starting with a letter or digit".into(),
        ));
    }
    let id_bytes: [u8; 8] = daas_crypto::random::bytes().map_err(internal)?;
    let secret: [u8; 32] = daas_crypto::random::bytes().map_err(internal)?;
    let id_hex = hex::encode(id_bytes);
    let token = zeroize::Zeroizing::new(format!("{APP_TOKEN_PREFIX}{id_hex}_{}", b64u(&secret)));
    let record = AppRecord {
        id: format!("app_{id_hex}"),
        name: req.name.clone(),
        token_hash: engine.keys.lookup("app-token", token.as_bytes()),
        created_at: now_ms(),
    };
    engine
        .store
        .put_app(
            &record,
            &event(
                &caller.name,
                "app.create",
                &format!("app:{}", req.name),
                "ok",
                "",
            ),
        )
        .await?;
    forget_unknown_app(&engine, &record.id);
    Ok((
        StatusCode::CREATED,
        Json(CreateResponse {
            id: record.id,
            principal: format!("app:{}", req.name),
            name: req.name,
            token: token.to_string(),
        }),
    ))
}

#[derive(Debug, Serialize)]
pub(crate) struct ListResponse {
    apps: Vec<AppSummary>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ListResponse>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let apps = engine.store.list_apps().await?;
    Ok(Json(ListResponse {
        apps: apps
            .into_iter()
            .map(|a| AppSummary {
                principal: format!("app:{}", a.name),
                id: a.id,
                name: a.name,
                created_at: a.created_at,
            })
            .collect(),
    }))
}
