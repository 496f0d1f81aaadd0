//! Audit read-out and chain verification (admin only).
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::apps::admin_only;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListResponse {
    entries: Vec<daas_store::AuditEntry>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let Query(q) = query
        .map_err(|_| ApiError::Malformed("after and limit must be non-negative integers".into()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::Malformed(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let entries = engine.store.list_audit(q.after.unwrap_or(0), limit).await?;
    Ok(Json(ListResponse { entries }))
}

#[derive(Debug, Serialize)]
pub(crate) struct VerifyResponse {
    entries: u64,
    head: Option<String>,
    first_broken: Option<u64>,
    ok: bool,
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyResponse>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let report = engine.store.verify_audit().await?;
    Ok(Json(VerifyResponse {
        ok: report.first_broken.is_none(),
        entries: report.entries,
        head: report.head,
        first_broken: report.first_broken,
    }))
}
