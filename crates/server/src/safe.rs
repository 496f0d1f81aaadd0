//! The `safe` engine (DESIGN.md §3): split-key encryption in server mode and client mode.
//!
//! Server mode: fresh `k`, seal, `k = t1 ⊕ t2`, store `t2` + commitment, return `t1`, erase `k`.
//! Client mode: the client did all of that locally and deposits `t2` + commitment.
//! Decrypt needs `t1` *and* an authenticated caller on the object's access list.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use daas_crypto::envelope::{self, Context, Envelope, Suite};
use daas_crypto::share::{Share, ShareIndex};
use daas_crypto::{Key256, ObjectId, commit, xor};
use daas_store::{ObjectMode, ObjectRecord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::auth::Caller;
use crate::error::{ApiError, envelope_error, internal, share_error};
use crate::extract::{ApiJson, access_list, audience, b64u, b64u_secret, now_ms};
use crate::state::{AppState, Engine, event};

pub const KEY_VERSION: u32 = 1;

/// Audiences starting with this are reserved for the objects backing stored secrets
/// (`secrets.rs`). Such objects are reachable only through `/v1/secrets/*`: every
/// `/v1/safe/objects/{id}*` route and `/v1/safe/decrypt` answer `404` for them.
pub(crate) const SECRET_AUDIENCE_PREFIX: &str = "secret:";

fn is_secret_backed(record: &ObjectRecord) -> bool {
    record.audience.starts_with(SECRET_AUDIENCE_PREFIX)
}

/// A caller-chosen audience: validated, and never in the reserved `secret:` space.
fn caller_audience(requested: Option<String>) -> Result<String, ApiError> {
    let audience = audience(requested)?;
    if audience.starts_with(SECRET_AUDIENCE_PREFIX) {
        return Err(ApiError::Malformed(format!(
            "audiences starting with {SECRET_AUDIENCE_PREFIX:?} are reserved for stored secrets"
        )));
    }
    Ok(audience)
}

/// A freshly sealed object: the record to store, the envelope and the caller's share.
pub(crate) struct Sealed {
    pub record: ObjectRecord,
    pub envelope: Envelope,
    pub client_share: Share,
}

/// Server-mode seal: the only place a server-generated object key exists, and only for this call.
pub(crate) fn seal_new(
    owner: &str,
    audience: String,
    access: Vec<String>,
    plaintext: &[u8],
) -> Result<Sealed, ApiError> {
    let id = ObjectId::generate().map_err(internal)?;
    let k = Key256::generate().map_err(internal)?;
    let suite = Suite::Aes256Gcm;
    let ctx = Context {
        object_id: id,
        key_version: KEY_VERSION,
        owner,
        audience: &audience,
    };
    let envelope = envelope::seal(&k, suite, &ctx, plaintext).map_err(internal)?;
    let commitment = commit::commitment(&k, &id);
    let (t1, t2) = xor::split(&k).map_err(internal)?;
    drop(k); // zeroized on drop
    let record = ObjectRecord {
        id,
        owner: owner.to_owned(),
        audience,
        key_version: KEY_VERSION,
        suite: suite as u8,
        mode: ObjectMode::Server,
        server_share: t2,
        commitment,
        access,
        created_at: now_ms(),
    };
    Ok(Sealed {
        record,
        envelope,
        client_share: Share {
            object_id: id,
            index: ShareIndex::Client,
            key: t1,
        },
    })
}

/// Parse untrusted ciphertext and share text and check they name the same object, before any
/// storage access or crypto.
pub(crate) fn parse_pair(ciphertext: &str, share: &str) -> Result<(Envelope, Share), ApiError> {
    let (ciphertext, share) = (ciphertext.trim(), share.trim());
    let envelope = Envelope::parse(ciphertext).map_err(|e| envelope_error(e, ciphertext))?;
    let share = parse_share_for(&envelope, share)?;
    Ok((envelope, share))
}

/// The caller's client share of `envelope`'s object.
pub(crate) fn parse_share_for(envelope: &Envelope, share: &str) -> Result<Share, ApiError> {
    let share = share.trim();
    let share = Share::parse(share).map_err(|e| share_error(e, share))?;
    if share.index != ShareIndex::Client || share.object_id != envelope.object_id {
        return Err(ApiError::InvalidShare);
    }
    Ok(share)
}

/// Combine `t1` with the stored `t2`, check the key commitment, open. Every failure is the same
/// opaque `DecryptionFailed` to the client.
pub(crate) fn open_with(
    record: &ObjectRecord,
    envelope: &Envelope,
    share: &Share,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    if envelope.suite as u8 != record.suite {
        return Err(ApiError::DecryptionFailed);
    }
    let k = xor::combine(&share.key, &record.server_share);
    commit::verify(&k, &record.id, &record.commitment).map_err(|_| ApiError::DecryptionFailed)?;
    let ctx = Context {
        object_id: record.id,
        key_version: record.key_version,
        owner: &record.owner,
        audience: &record.audience,
    };
    let plaintext = envelope::open(&k, envelope, &ctx).map_err(|_| ApiError::DecryptionFailed)?;
    Ok(Zeroizing::new(plaintext.expose().to_vec()))
}

fn may_read(caller: &Caller, record: &ObjectRecord) -> bool {
    record.access.contains(&caller.name)
}

fn may_manage(caller: &Caller, record: &ObjectRecord) -> bool {
    caller.principal.is_admin() || record.owner == caller.name
}

/// Holds plaintext: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptRequest {
    plaintext: String,
    audience: Option<String>,
    access: Option<Vec<String>>,
}

/// Holds the caller's share: no `Debug`.
#[derive(Serialize)]
pub(crate) struct EncryptResponse {
    object_id: String,
    ciphertext: String,
    share: String,
}

pub async fn encrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<EncryptRequest>,
) -> Result<Json<EncryptResponse>, ApiError> {
    let engine = state.engine()?;
    let plaintext = b64u_secret("plaintext", &req.plaintext)?;
    let audience = caller_audience(req.audience)?;
    let access = access_list(&caller.name, req.access.as_deref())?;
    let sealed = seal_new(&caller.name, audience, access, &plaintext)?;
    drop(plaintext);
    let id = sealed.record.id.to_hex();
    engine
        .store
        .put_object(
            &sealed.record,
            &event(&caller.name, "safe.encrypt", &id, "ok", "server mode"),
        )
        .await?;
    Ok(Json(EncryptResponse {
        object_id: id,
        ciphertext: sealed.envelope.encode(),
        share: sealed.client_share.encode(),
    }))
}

/// Holds a share: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecryptRequest {
    ciphertext: String,
    share: String,
}

/// Holds plaintext: no `Debug`.
#[derive(Serialize)]
pub(crate) struct DecryptResponse {
    plaintext: String,
}

pub async fn decrypt(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> Result<Json<DecryptResponse>, ApiError> {
    let engine = state.engine()?;
    let (envelope, share) = parse_pair(&req.ciphertext, &req.share)?;
    let id = envelope.object_id.to_hex();
    let record = load_for_read(&engine, &caller, &envelope.object_id, "safe.decrypt").await?;
    if record.mode == ObjectMode::Client {
        // Client mode means end-to-end: the server must not be the one combining the shares.
        engine
            .audit_failure(
                &caller.name,
                "safe.decrypt",
                &id,
                "refused",
                "client-mode object: decrypt locally",
            )
            .await;
        return Err(ApiError::ClientModeObject);
    }
    let plaintext = match open_with(&record, &envelope, &share) {
        Ok(p) => p,
        Err(e) => {
            engine
                .audit_failure(
                    &caller.name,
                    "safe.decrypt",
                    &id,
                    "invalid",
                    "share or ciphertext does not match the object",
                )
                .await;
            return Err(e);
        }
    };
    // Fail closed: no plaintext leaves unless its release is on the audit log.
    engine
        .audit(&caller.name, "safe.decrypt", &id, "ok", "")
        .await?;
    Ok(Json(DecryptResponse {
        plaintext: b64u(&plaintext),
    }))
}

/// Load an object for the `/v1/safe` routes: objects backing stored secrets do not exist here.
async fn load_object(engine: &Engine, id: &ObjectId) -> Result<ObjectRecord, ApiError> {
    let record = engine.store.get_object(id).await?;
    if is_secret_backed(&record) {
        return Err(ApiError::NotFound);
    }
    Ok(record)
}

/// Load an object and check the caller is on its access list; denials and misses are audited.
async fn load_for_read(
    engine: &Engine,
    caller: &Caller,
    id: &ObjectId,
    action: &str,
) -> Result<ObjectRecord, ApiError> {
    let hex = id.to_hex();
    let record = match load_object(engine, id).await {
        Ok(r) => r,
        Err(ApiError::NotFound) => {
            engine
                .audit_failure(&caller.name, action, &hex, "not_found", "")
                .await;
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e),
    };
    if !may_read(caller, &record) {
        engine
            .audit_failure(
                &caller.name,
                action,
                &hex,
                "denied",
                "caller not on the access list",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    Ok(record)
}

/// Holds the server share: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepositRequest {
    share: String,
    commitment: String,
    suite: u8,
    audience: Option<String>,
    access: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DepositResponse {
    object_id: String,
    owner: String,
    key_version: u32,
}

pub async fn deposit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DepositRequest>,
) -> Result<(StatusCode, Json<DepositResponse>), ApiError> {
    let engine = state.engine()?;
    let share = Share::parse(req.share.trim()).map_err(|e| share_error(e, req.share.trim()))?;
    if share.index != ShareIndex::Server {
        return Err(ApiError::Malformed(
            "deposit the server share (index 2), keep the client share".into(),
        ));
    }
    let commitment_bytes = b64u_secret("commitment", &req.commitment)?;
    let commitment: [u8; 32] = commitment_bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::Malformed("commitment must be 32 bytes".into()))?;
    if req.suite != Suite::Aes256Gcm as u8 && req.suite != Suite::XChaCha20Poly1305 as u8 {
        return Err(ApiError::Malformed(
            "suite must be 1 (aes-256-gcm) or 2 (xchacha20-poly1305)".into(),
        ));
    }
    let record = ObjectRecord {
        id: share.object_id,
        owner: caller.name.clone(),
        audience: caller_audience(req.audience)?,
        key_version: KEY_VERSION,
        suite: req.suite,
        mode: ObjectMode::Client,
        server_share: share.key.clone(),
        commitment,
        access: access_list(&caller.name, req.access.as_deref())?,
        created_at: now_ms(),
    };
    let id = record.id.to_hex();
    engine
        .store
        .put_object(
            &record,
            &event(&caller.name, "safe.deposit", &id, "ok", "client mode"),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DepositResponse {
            object_id: id,
            owner: caller.name,
            key_version: KEY_VERSION,
        }),
    ))
}

/// Holds the server share: no `Debug`.
#[derive(Serialize)]
pub(crate) struct ShareResponse {
    share: String,
    commitment: String,
    owner: String,
    audience: String,
    key_version: u32,
    suite: u8,
}

fn parse_id(id: &str) -> Result<ObjectId, ApiError> {
    ObjectId::from_hex(id).map_err(|_| ApiError::NotFound)
}

pub async fn fetch_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ShareResponse>, ApiError> {
    let engine = state.engine()?;
    let id = parse_id(&id)?;
    let record = load_for_read(&engine, &caller, &id, "safe.fetch_share").await?;
    if record.mode != ObjectMode::Client {
        engine
            .audit_failure(
                &caller.name,
                "safe.fetch_share",
                &id.to_hex(),
                "denied",
                "server-mode shares are never released",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    engine
        .audit(&caller.name, "safe.fetch_share", &id.to_hex(), "ok", "")
        .await?;
    let share = Share {
        object_id: record.id,
        index: ShareIndex::Server,
        key: record.server_share.clone(),
    };
    Ok(Json(ShareResponse {
        share: share.encode(),
        commitment: b64u(&record.commitment),
        owner: record.owner.clone(),
        audience: record.audience.clone(),
        key_version: record.key_version,
        suite: record.suite,
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct ObjectMeta {
    object_id: String,
    owner: String,
    audience: String,
    mode: ObjectMode,
    access: Vec<String>,
    created_at: i64,
}

fn meta(r: &ObjectRecord) -> ObjectMeta {
    ObjectMeta {
        object_id: r.id.to_hex(),
        owner: r.owner.clone(),
        audience: r.audience.clone(),
        mode: r.mode,
        access: r.access.clone(),
        created_at: r.created_at,
    }
}

pub async fn get_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ObjectMeta>, ApiError> {
    let engine = state.engine()?;
    let id = parse_id(&id)?;
    let record = load_object(&engine, &id).await?;
    if !(may_manage(&caller, &record) || may_read(&caller, &record)) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(meta(&record)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessRequest {
    access: Vec<String>,
}

pub async fn set_access(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AccessRequest>,
) -> Result<Json<ObjectMeta>, ApiError> {
    let engine = state.engine()?;
    let id = parse_id(&id)?;
    let mut record = load_object(&engine, &id).await?;
    if !may_manage(&caller, &record) {
        engine
            .audit_failure(
                &caller.name,
                "safe.set_access",
                &id.to_hex(),
                "denied",
                "not owner or admin",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    let access = access_list(&record.owner, Some(&req.access))?;
    // Granting stays with the owner: the admin may only take principals off a list (or delete
    // the object), so holding the admin token never lets an operator read an app's objects.
    if record.owner != caller.name && access.iter().any(|p| !record.access.contains(p)) {
        engine
            .audit_failure(
                &caller.name,
                "safe.set_access",
                &id.to_hex(),
                "denied",
                "only the owner may add principals",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    record.access = access;
    let detail = format!("access: {}", record.access.join(","));
    engine
        .store
        .set_object_access(
            &id,
            &record.access,
            &event(&caller.name, "safe.set_access", &id.to_hex(), "ok", &detail),
        )
        .await?;
    Ok(Json(meta(&record)))
}

pub async fn delete_object(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let engine = state.engine()?;
    let id = parse_id(&id)?;
    let record = load_object(&engine, &id).await?;
    if !may_manage(&caller, &record) {
        engine
            .audit_failure(
                &caller.name,
                "safe.delete",
                &id.to_hex(),
                "denied",
                "not owner or admin",
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    engine
        .store
        .delete_object(
            &id,
            &event(
                &caller.name,
                "safe.delete",
                &id.to_hex(),
                "ok",
                "crypto-shredded",
            ),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
