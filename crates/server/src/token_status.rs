//! Status staples (issue #4 item 5): `POST /v1/token/status/staple` answers a verifier's nonce
//! with a short-lived statement about one token, signed by the **status** key.
//!
//! Request `{"jti", "nonce"}`, no credential. Why none is needed (docs/tokens.md, "Status
//! staples"): a staple says nothing that the public status list does not already say, it is
//! not a credential (a resource still needs the token and a fresh proof by the bound key), and
//! the staple's `nonce` is what makes it fresh. Requiring a DPoP proof would keep a resource
//! server (which does not hold the client's key) from fetching staples itself, and sending the
//! access token would copy it to one more place for no gain; the `jti` is no secret. The token
//! is named by its `jti` so that the staple is always about an index the server allocated,
//! with the status the store holds now (revoked or replaced = invalid, as in the list).
use axum::Json;
use axum::extract::State;
use daas_token::status::{
    MAX_STAPLE_LIFETIME_SECS, MAX_STAPLE_NONCE_LEN, StatusStapleClaims, TokenStatus,
};
use serde::{Deserialize, Serialize};

use crate::auth::audit_credential_failure;
use crate::error::ApiError;
use crate::extract::{ApiJson, now_ms};
use crate::state::AppState;
use crate::tokens::{Issuer, STATUS_PATH};

/// Where staples are served.
pub const STAPLE_PATH: &str = "/v1/token/status/staple";

/// Lifetime of a staple (`exp - iat`): revocation reaches a verifier that relies on staples
/// within this time.
const STAPLE_LIFETIME_SECS: i64 = MAX_STAPLE_LIFETIME_SECS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StapleRequest {
    jti: String,
    nonce: String,
}

/// Where the token sits in the status list, in clear so that a client can build the
/// expectation it verifies the staple against (the signed claims must then equal it).
#[derive(Debug, Serialize)]
pub(crate) struct StatusListRef {
    idx: u64,
    uri: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct StapleResponse {
    staple: String,
    status_list: StatusListRef,
}

/// Why the request is malformed, if it is: `jti` 1–1024 bytes, `nonce` 1–256 visible ASCII
/// characters (what `sign_status_staple` accepts).
fn check_request(req: &StapleRequest) -> Result<(), ApiError> {
    if req.jti.is_empty() || req.jti.len() > daas_token::access::MAX_CLAIM_LEN {
        return Err(ApiError::Malformed("jti must be 1 to 1024 bytes".into()));
    }
    let nonce_ok = (1..=MAX_STAPLE_NONCE_LEN).contains(&req.nonce.len())
        && req.nonce.bytes().all(|b| b.is_ascii_graphic());
    if !nonce_ok {
        return Err(ApiError::Malformed(format!(
            "nonce must be 1 to {MAX_STAPLE_NONCE_LEN} visible ascii characters"
        )));
    }
    Ok(())
}

/// `POST /v1/token/status/staple` (no auth): `{"jti", "nonce"}` → `{"staple": <daas-status+jwt>,
/// "status_list": {"idx", "uri"}}`. Unknown jti: 404, audited within the anonymous-failure
/// budget. Successes are not itemised in the audit log: they disclose only what the public
/// status list does.
pub async fn staple(
    State(state): State<AppState>,
    issuer: Issuer,
    ApiJson(req): ApiJson<StapleRequest>,
) -> Result<Json<StapleResponse>, ApiError> {
    let engine = state.engine()?;
    check_request(&req)?;
    let tokens = engine.tokens().await?;
    let record = match engine.store.get_token(&req.jti).await {
        Ok(record) => record,
        Err(daas_store::StoreError::NotFound) => {
            audit_credential_failure(
                &engine,
                "token.status.staple",
                &req.jti,
                "no token has this jti",
            )
            .await;
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    let now = now_ms().div_euclid(1000);
    let claims = StatusStapleClaims {
        sub: issuer.url(STATUS_PATH),
        idx: record.status_idx,
        status: if record.revoked {
            TokenStatus::Invalid
        } else {
            TokenStatus::Valid
        },
        nonce: req.nonce,
        iat: now,
        exp: now.saturating_add(STAPLE_LIFETIME_SECS),
    };
    let staple = tokens.sign_staple(&claims)?;
    Ok(Json(StapleResponse {
        staple,
        status_list: StatusListRef {
            idx: claims.idx,
            uri: claims.sub,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(jti: &str, nonce: &str) -> StapleRequest {
        StapleRequest {
            jti: jti.into(),
            nonce: nonce.into(),
        }
    }

    #[test]
    fn jti_and_nonce_are_bounded() {
        assert!(check_request(&req("j", "n")).is_ok());
        assert!(check_request(&req("j", &"n".repeat(256))).is_ok());
        for (jti, nonce) in [
            ("", "n"),
            (&*"j".repeat(1025), "n"),
            ("j", ""),
            ("j", &*"n".repeat(257)),
            ("j", "a b"),
            ("j", "é"),
            ("j", "a\n"),
        ] {
            assert!(
                check_request(&req(jti, nonce)).is_err(),
                "{jti:?} {nonce:?}"
            );
        }
    }
}
