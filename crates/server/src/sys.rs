//! System endpoints: health, whoami, unseal, the OpenAPI document.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use daas_crypto::shamir::{self, ShamirShare};
use daas_crypto::storage::{self, StorageKeys};
use daas_store::Store;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

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

/// Domain label of the per-share unseal checks kept in `seal.json` (`share_checks`).
pub const UNSEAL_SHARE_CHECK_V1: &[u8] = b"daas unseal share check v1";

/// The check that lets a single unseal share prove itself before it joins the pending set:
/// `SHA-256(label ‖ threshold ‖ index ‖ value)`. The label has a fixed length and the other
/// fields are fixed-width, so the encoding is injective. A share value is 256 uniformly random
/// bits, so publishing its hash beside the key check reveals nothing usable.
pub fn unseal_share_check(share: &ShamirShare) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(UNSEAL_SHARE_CHECK_V1);
    ctx.update(&[share.threshold, share.index]);
    ctx.update(share.value.expose());
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `seal.json`'s `share_checks`: share index (decimal) → hex of `unseal_share_check`.
pub(crate) fn encode_share_checks(shares: &[ShamirShare]) -> BTreeMap<String, String> {
    shares
        .iter()
        .map(|s| (s.index.to_string(), hex::encode(unseal_share_check(s))))
        .collect()
}

/// Read `seal.json`'s `share_checks` back: exactly one 32-byte check for each index `1..=shares`.
pub(crate) fn decode_share_checks(
    map: &BTreeMap<String, String>,
    shares: u8,
) -> Result<Vec<(u8, [u8; 32])>, String> {
    if map.is_empty() {
        return Err(
            "seal.json has no share_checks (it predates per-share unseal checks): \
                    re-initialise the deployment with daas operator init"
                .into(),
        );
    }
    let mut out: Vec<(u8, [u8; 32])> = Vec::with_capacity(map.len());
    for (index, check) in map {
        let index = index
            .parse::<u8>()
            .ok()
            .filter(|i| (1..=shares).contains(i))
            .ok_or_else(|| format!("seal.json: share_checks has an invalid index {index:?}"))?;
        let check: [u8; 32] = hex::decode(check)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("seal.json: share_checks[{index}] is not 32 bytes of hex"))?;
        if out.iter().any(|(i, _)| *i == index) {
            return Err(format!("seal.json: share_checks lists index {index} twice"));
        }
        out.push((index, check));
    }
    if out.len() != usize::from(shares) {
        return Err(format!(
            "seal.json: share_checks has {} entries for {shares} shares",
            out.len()
        ));
    }
    out.sort_unstable_by_key(|(i, _)| *i);
    Ok(out)
}

/// Does `share` match the check recorded for its index at `operator init`? (constant time in
/// the share value; the index is public)
fn share_proves_itself(checks: &[(u8, [u8; 32])], share: &ShamirShare) -> bool {
    let Some((_, expected)) = checks.iter().find(|(i, _)| *i == share.index) else {
        return false;
    };
    unseal_share_check(share).ct_eq(expected).into()
}

/// Holds an unseal share: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsealRequest {
    share: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct UnsealStatus {
    sealed: bool,
    progress: usize,
    threshold: u8,
}

/// Takes one Shamir share at a time (unauthenticated, as the shares themselves are the
/// credential). Each share must match its own check from `seal.json` before it is kept, so an
/// anonymous caller cannot poison or reset the operators' progress with a made-up share. When
/// the threshold is met the combined key must match the stored key check; since every share
/// proved itself, a mismatch means `seal.json` is inconsistent (`500 internal`, progress reset).
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
    if share.threshold != seal.threshold || !share_proves_itself(&seal.share_checks, &share) {
        // Rejected before the pending set is even locked: progress is untouched.
        tracing::warn!(
            index = share.index,
            "unseal share rejected: it does not match its check"
        );
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
            tracing::error!(
                "unseal shares passed their checks but did not reconstruct the storage key: \
                 seal.json is inconsistent; progress reset"
            );
            return Err(ApiError::Internal);
        }
    };
    let keys = StorageKeys::derive(&master);
    drop(master);
    let store = Store::open(&seal.store_url, keys.clone()).await?;
    let _first = state.0.engine.set(Arc::new(
        Engine::new(store, keys, seal.admin_token_sha256)
            .with_trust_domain(seal.trust_domain.clone())
            .with_token_config(seal.token_config.clone()),
    ));
    tracing::info!("server unsealed");
    Ok(Json(UnsealStatus {
        sealed: false,
        progress: 0,
        threshold: seal.threshold,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(index: u8, byte: u8) -> ShamirShare {
        ShamirShare {
            threshold: 2,
            index,
            value: daas_crypto::Key256::from_slice(&[byte; 32]).unwrap(),
        }
    }

    #[test]
    fn share_checks_roundtrip_and_bind_every_field() {
        let shares = [share(1, 1), share(2, 2), share(3, 3)];
        let checks = decode_share_checks(&encode_share_checks(&shares), 3).unwrap();
        assert_eq!(checks.len(), 3);
        assert!(shares.iter().all(|s| share_proves_itself(&checks, s)));
        // Another value, another index or another threshold does not pass.
        assert!(!share_proves_itself(&checks, &share(1, 9)));
        assert!(!share_proves_itself(&checks, &share(4, 1)));
        let mut other_threshold = share(1, 1);
        other_threshold.threshold = 3;
        assert!(!share_proves_itself(&checks, &other_threshold));
    }

    #[test]
    fn share_checks_in_seal_json_are_strict() {
        let good = encode_share_checks(&[share(1, 1), share(2, 2)]);
        assert!(decode_share_checks(&good, 2).is_ok());
        assert!(decode_share_checks(&BTreeMap::new(), 2).is_err(), "missing");
        assert!(decode_share_checks(&good, 3).is_err(), "one check short");
        let mut bad = good.clone();
        bad.insert("01".into(), bad["1"].clone());
        assert!(decode_share_checks(&bad, 3).is_err(), "index twice");
        let mut bad = good.clone();
        bad.insert("1".into(), "abcd".into());
        assert!(decode_share_checks(&bad, 2).is_err(), "short check");
        let mut bad = good;
        bad.insert("0".into(), hex::encode([0u8; 32]));
        assert!(decode_share_checks(&bad, 2).is_err(), "index 0");
    }
}
