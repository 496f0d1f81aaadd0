//! The `tokens` engine (DESIGN.md §5, issue #4): DPoP-bound access tokens.
//!
//! * Keys: an Ed25519 issuer key and a separate Ed25519 status key, generated on first use and
//!   stored sealed (`token_keys`); `kid` is the key's RFC 7638 thumbprint. Rotation retires the
//!   active key by compare-and-swap; retired issuer keys stay in the JWKS for the overlap window
//!   so that tokens they signed keep verifying.
//! * `POST /v1/token`: an authenticated caller (admin or app token) with a DPoP proof for
//!   `POST <issuer>/v1/token` gets an `at+jwt` bound to the proof key (`cnf.jkt`).
//! * `POST /v1/token/replace`: no credential but a proof by the bound key; replaces a token
//!   (lost or expired) by a new one with the same binding and claims, within a total lifetime
//!   cap counted from the first token of the chain.
//! * `POST /v1/token/revoke` (admin): revokes by `jti` or subject.
//!
//! The issuer URL is `token_issuer` from the configuration, or else `https://<host>` where
//! `<host>` is the authority the client addressed (HTTP/2 `:authority`, else `Host`),
//! normalised. The token endpoints' `htu` is compared against that issuer + the endpoint path.
//! A client therefore cannot make us accept a proof made for another URL, but it chooses the
//! `iss` of a Host-derived issuer: production servers should configure `token_issuer`.
use std::sync::{Arc, PoisonError, RwLock};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use daas_resource::{MemoryReplayStore, RedisReplayStore, RedisStoreError, ReplayStore};
use daas_store::{TokenKeyPurpose, TokenKeyRecord, TokenRecord, TokenSelector};
use daas_token::{
    AccessTokenClaims, Alg, NonceKey, ProofPolicy, ProofRequest, SigningKey, StatusListRef,
    VerifiedProof,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::apps::admin_only;
use crate::auth::{Caller, audit_credential_failure};
use crate::error::{ApiError, DPOP_NONCE, internal};
use crate::extract::{ApiJson, b64u, now_ms};
use crate::state::{AppState, Engine, event};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/v1/token";
/// The replacement endpoint's path.
pub const REPLACE_PATH: &str = "/v1/token/replace";
/// Where the Token Status List is published.
pub const STATUS_PATH: &str = "/v1/token/status";
/// Where the status key is published.
pub const STATUS_JWKS_PATH: &str = "/v1/token/status/jwks";
/// The JWKS path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Proofs remembered at once by the server's replay cache (peak proofs/s × the 60 s window).
const REPLAY_CAPACITY: usize = 1 << 20;
const DAY_SECS: u64 = 24 * 3600;

/// The Redis URL of the shared proof replay store. It may carry a password: `Debug` shows
/// only that one is set.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayRedisUrl(String);

impl ReplayRedisUrl {
    /// Checks the scheme (`redis://` or `rediss://`); the server connects on first use.
    pub fn new(url: &str) -> Result<Self, String> {
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(Self(url.to_owned()))
        } else {
            Err("token_replay_redis must be a redis:// or rediss:// url".into())
        }
    }
}

impl std::fmt::Debug for ReplayRedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplayRedisUrl(<redacted>)")
    }
}

/// Issuer, lifetimes, nonces and replay store of the tokens engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The issuer URL (`https://host[:port]`, no path); `None`: derived from each request's
    /// authority.
    pub issuer: Option<String>,
    /// Lifetime of a token whose request names none.
    pub default_ttl_secs: u64,
    /// Longest lifetime of one token.
    pub max_ttl_secs: u64,
    /// Longest total lifetime of a replacement chain, from its first token's issue.
    pub max_chain_secs: u64,
    /// How long a retired issuer key stays published after a rotation. At least
    /// `max_ttl_secs`, so every token a key signed can be verified until it expires.
    pub key_overlap_secs: u64,
    /// Whether `POST /v1/token` and `/v1/token/replace` require a server nonce in the proof
    /// (RFC 9449 §8). Default on.
    pub require_nonce: bool,
    /// The shared replay store of the token endpoints' proofs; `None`: in process (one
    /// replica only).
    pub replay_redis: Option<ReplayRedisUrl>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            default_ttl_secs: DAY_SECS,
            max_ttl_secs: 30 * DAY_SECS,
            max_chain_secs: 90 * DAY_SECS,
            key_overlap_secs: 30 * DAY_SECS,
            require_nonce: true,
            replay_redis: None,
        }
    }
}

impl TokenConfig {
    /// Checks a configured issuer: an `https` URL with a host, no path, query or fragment, in
    /// normal form (so `iss` and `htu` are compared as clients will spell them).
    pub fn validate_issuer(issuer: &str) -> Result<(), String> {
        let normal = daas_token::normalize_htu(&format!("{issuer}/"))
            .map_err(|e| format!("token_issuer: {}", e.0))?;
        let has_path = issuer
            .strip_prefix("https://")
            .is_none_or(|rest| rest.contains('/'));
        if has_path || normal != format!("{issuer}/") {
            return Err(
                "token_issuer must be https://host[:port] in lowercase, without path or default port"
                    .into(),
            );
        }
        Ok(())
    }
}

fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------- keys

/// An active signing key and its `kid`.
#[derive(Debug)]
struct ActiveKey {
    kid: String,
    key: SigningKey,
}

/// The keys in use, rebuilt from the store after a change.
#[derive(Debug)]
struct KeyState {
    issuer: ActiveKey,
    status: ActiveKey,
    /// The published issuer keys (active and within the overlap), as served.
    jwks: Value,
    /// The status key, published apart from the issuer keys (it must never verify a token).
    status_jwks: Value,
}

fn key_error(e: &daas_token::KeyError) -> ApiError {
    internal(format!("token key: {e}"))
}

fn new_key(purpose: TokenKeyPurpose, now: i64) -> Result<TokenKeyRecord, ApiError> {
    let key = SigningKey::generate(Alg::EdDsa).map_err(|e| key_error(&e))?;
    Ok(TokenKeyRecord {
        kid: key.public_jwk().thumbprint(),
        purpose,
        pkcs8: key.to_pkcs8().map_err(|e| key_error(&e))?,
        created_at: now,
        retired_at: None,
    })
}

/// Loads a stored key, checking that its `kid` is its thumbprint (an edited row is refused).
fn load_key(record: &TokenKeyRecord) -> Result<SigningKey, ApiError> {
    let key = SigningKey::from_pkcs8(Alg::EdDsa, &record.pkcs8).map_err(|e| key_error(&e))?;
    if !key.public_jwk().thumbprint_matches(&record.kid) {
        return Err(internal("a stored token key does not match its kid"));
    }
    Ok(key)
}

/// Whether an issuer key is published at `now`: active, or retired less than `overlap` ago.
fn is_published(record: &TokenKeyRecord, now: i64, overlap_secs: u64) -> bool {
    record
        .retired_at
        .is_none_or(|retired| retired.saturating_add(secs(overlap_secs)) > now)
}

fn jwk_entry(kid: &str, key: &SigningKey) -> Result<Value, ApiError> {
    let mut jwk: serde_json::Map<String, Value> =
        serde_json::from_str(&key.public_jwk().to_json()).map_err(internal)?;
    jwk.insert("kid".into(), kid.into());
    jwk.insert("alg".into(), key.alg().as_str().into());
    jwk.insert("use".into(), "sig".into());
    Ok(Value::Object(jwk))
}

fn active(records: &[TokenKeyRecord], purpose: TokenKeyPurpose) -> Option<&TokenKeyRecord> {
    records
        .iter()
        .find(|k| k.purpose == purpose && k.retired_at.is_none())
}

fn key_state(
    records: &[TokenKeyRecord],
    now: i64,
    config: &TokenConfig,
) -> Result<KeyState, ApiError> {
    let activate = |purpose| -> Result<ActiveKey, ApiError> {
        let record = active(records, purpose)
            .ok_or_else(|| internal(format!("no active {} key", purpose.as_str())))?;
        Ok(ActiveKey {
            kid: record.kid.clone(),
            key: load_key(record)?,
        })
    };
    let mut keys = Vec::new();
    for record in records.iter().filter(|k| {
        k.purpose == TokenKeyPurpose::Issuer && is_published(k, now, config.key_overlap_secs)
    }) {
        keys.push(jwk_entry(&record.kid, &load_key(record)?)?);
    }
    let status = activate(TokenKeyPurpose::Status)?;
    Ok(KeyState {
        issuer: activate(TokenKeyPurpose::Issuer)?,
        status_jwks: json!({ "keys": [jwk_entry(&status.kid, &status.key)?] }),
        status,
        jwks: json!({ "keys": keys }),
    })
}

/// The loaded tokens engine.
#[derive(Debug)]
pub struct Tokens {
    keys: RwLock<Arc<KeyState>>,
    /// Proof `jti`s seen in their window: in this process, or in Redis shared by the replicas.
    replay: Box<dyn ReplayStore>,
    /// The key of the token endpoints' stateless nonces, when they are required. Derived from
    /// the storage key, so every replica issues and accepts the same nonces.
    nonce: Option<NonceKey>,
}

/// The configured replay store: Redis (connected now, so a wrong URL or an unreachable server
/// is reported at first use rather than on every proof) or in process.
async fn replay_store(config: &TokenConfig) -> Result<Box<dyn ReplayStore>, ApiError> {
    match &config.replay_redis {
        None => Ok(Box::new(MemoryReplayStore::new(REPLAY_CAPACITY))),
        Some(url) => match RedisReplayStore::connect(&url.0).await {
            Ok(store) => Ok(Box::new(store.with_prefix("daas:token:dpop:"))),
            Err(RedisStoreError::Unreachable(why)) => {
                tracing::warn!(error = %why, "the token replay store (redis) is unreachable");
                Err(ApiError::Unavailable)
            }
            Err(e) => Err(internal(format!("token replay store: {e}"))),
        },
    }
}

impl Tokens {
    /// Load the keys, creating the issuer and status keys if the store has none.
    pub(crate) async fn load(engine: &Engine) -> Result<Self, ApiError> {
        let now = now_secs();
        let mut records = engine.store.list_token_keys().await?;
        let mut created = false;
        for purpose in [TokenKeyPurpose::Issuer, TokenKeyPurpose::Status] {
            if active(&records, purpose).is_none() {
                let key = new_key(purpose, now)?;
                // Several replicas may start at once: the first stored key wins.
                engine
                    .store
                    .create_token_key(
                        &key,
                        &event(
                            "server",
                            "token.key.create",
                            &key.kid,
                            "ok",
                            purpose.as_str(),
                        ),
                    )
                    .await?;
                created = true;
            }
        }
        if created {
            records = engine.store.list_token_keys().await?;
        }
        Ok(Self {
            keys: RwLock::new(Arc::new(key_state(&records, now, &engine.token_config)?)),
            replay: replay_store(&engine.token_config).await?,
            nonce: engine
                .token_config
                .require_nonce
                .then(|| NonceKey::new(*engine.keys.dpop_nonce_key().expose())),
        })
    }

    fn keys(&self) -> Arc<KeyState> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Rotate the key of `purpose`: a new key becomes active, the old one is retired (and, for
    /// the issuer, stays published for the overlap window). Returns (new kid, retired kid).
    pub(crate) async fn rotate(
        &self,
        engine: &Engine,
        purpose: TokenKeyPurpose,
        actor: &str,
    ) -> Result<(String, String), ApiError> {
        let now = now_secs();
        let state = self.keys();
        let current = match purpose {
            TokenKeyPurpose::Issuer => &state.issuer.kid,
            TokenKeyPurpose::Status => &state.status.kid,
        };
        let key = new_key(purpose, now)?;
        let rotated = engine
            .store
            .rotate_token_key(
                current,
                &key,
                &event(
                    actor,
                    "token.key.rotate",
                    &key.kid,
                    "ok",
                    &format!("{} key; retired {current}", purpose.as_str()),
                ),
            )
            .await;
        // Whatever happened, continue with what is stored (another replica may have rotated).
        let records = engine.store.list_token_keys().await?;
        let fresh = Arc::new(key_state(&records, now, &engine.token_config)?);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        match rotated {
            Ok(()) => Ok((key.kid, current.clone())),
            Err(daas_store::StoreError::Conflict) => Err(ApiError::ConflictBecause(
                "the key was rotated concurrently; the newer key is in use".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Sign a status staple with the active status key (never the issuer key).
    pub(crate) fn sign_staple(
        &self,
        claims: &daas_token::status::StatusStapleClaims,
    ) -> Result<String, ApiError> {
        let state = self.keys();
        daas_token::status::sign_status_staple(&state.status.key, &state.status.kid, claims)
            .map_err(|e| key_error(&e))
    }

    /// Sign `claims` with the active issuer key.
    fn sign(&self, claims: &AccessTokenClaims) -> Result<String, ApiError> {
        let state = self.keys();
        daas_token::issue_access_token(&state.issuer.key, &state.issuer.kid, claims)
            .map_err(|e| key_error(&e))
    }
}

// ---------------------------------------------------------------- request origin

/// The issuer this request is answered as: the configured one, or `https://<authority>`.
#[derive(Debug, Clone)]
pub(crate) struct Issuer(pub String);

impl Issuer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl FromRequestParts<AppState> for Issuer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let engine = state.engine()?;
        if let Some(issuer) = &engine.token_config.issuer {
            return Ok(Self(issuer.clone()));
        }
        let authority = match parts.uri.authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::Malformed("the request names no host".into()))?
                .to_owned(),
        };
        let normal = daas_token::normalize_htu(&format!("https://{authority}/"))
            .map_err(|_| ApiError::Malformed("the request's host is not a valid host".into()))?;
        Ok(Self(normal.trim_end_matches('/').to_owned()))
    }
}

// ---------------------------------------------------------------- proofs

/// A refused proof: what the client is told, and why (for the audit log).
struct ProofRefusal {
    answer: ApiError,
    reason: String,
}

/// Verify the request's DPoP proof for `POST <url>` (no access token; the server nonce when
/// required) and record it in the replay store. Refusals: `use_dpop_nonce` with a fresh nonce
/// (only for an otherwise valid proof), `invalid_dpop_proof` (RFC 9449 §5), or 503 when the
/// replay store cannot answer (fail closed).
async fn check_proof(
    tokens: &Tokens,
    headers: &HeaderMap,
    url: &str,
) -> Result<VerifiedProof, ProofRefusal> {
    let values: Vec<&str> = headers
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let now = now_secs();
    let refused = |e: &daas_token::DpopError| ProofRefusal {
        answer: match (e.error_code(), &tokens.nonce) {
            (daas_token::ErrorCode::ServerError, _) => ApiError::Unavailable,
            (daas_token::ErrorCode::UseDpopNonce, Some(key)) => {
                ApiError::UseDpopNonce(key.issue(now))
            }
            _ => ApiError::InvalidDpopProof,
        },
        reason: e.to_string(),
    };
    let pending = daas_token::verify_proof(
        &values,
        &ProofRequest {
            method: "POST",
            uri: url,
            access_token: None,
        },
        &ProofPolicy::default(),
        tokens.nonce.as_ref(),
        now,
    )
    .map_err(|e| refused(&e))?;
    let fresh = tokens
        .replay
        .insert_if_absent(pending.replay_key(), pending.expires_at(), now)
        .await
        .map_err(|e| ProofRefusal {
            answer: ApiError::Unavailable,
            reason: format!("proof replay store: {e}"),
        })?;
    pending.finish(fresh).map_err(|e| refused(&e))
}

impl Tokens {
    /// The headers of a successful answer: the next `DPoP-Nonce`, when nonces are required.
    fn success_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.nonce
            && let Ok(value) = HeaderValue::from_str(&key.issue(now_secs()))
        {
            headers.insert(DPOP_NONCE, value);
        }
        headers
    }
}

// ---------------------------------------------------------------- client authentication

/// Who asks `POST /v1/token`: a bearer credential (admin or app token) when an
/// `Authorization` header is sent, else the X.509-SVID of a workload of this trust domain
/// presented in the TLS handshake. The token's subject is `admin`, `app:<name>` or the SPIFFE
/// ID. Every failure is one opaque 401; the audit log (`auth.failure`) says why.
#[derive(Debug, Clone)]
pub(crate) struct TokenClient {
    name: String,
}

impl FromRequestParts<AppState> for TokenClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let caller = Caller::from_request_parts(parts, state).await?;
            return Ok(Self { name: caller.name });
        }
        let engine = state.engine()?;
        let chain = parts
            .extensions
            .get::<crate::tls::PeerCertificates>()
            .and_then(|p| p.0.clone());
        let Some(chain) = chain else {
            audit_credential_failure(
                &engine,
                "auth.failure",
                TOKEN_PATH,
                "no bearer token and no client certificate",
            )
            .await;
            return Err(ApiError::Unauthenticated);
        };
        // The bundle the handshake checked against is loaded with the identity engine.
        engine.identity().await?;
        let verdict = match daas_identity::verify_x509_svid(
            &chain,
            &engine.bundle.get(),
            time::OffsetDateTime::now_utc(),
        ) {
            Err(_) => Err("client certificate is not a valid svid of this trust domain"),
            Ok(id) if daas_identity::entry::is_node_id(&id) => {
                Err("client svid is a node's, not a workload's")
            }
            Ok(id) => Ok(id),
        };
        match verdict {
            Ok(id) => Ok(Self {
                name: id.to_string(),
            }),
            Err(detail) => {
                audit_credential_failure(&engine, "auth.failure", TOKEN_PATH, detail).await;
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

// ---------------------------------------------------------------- issue

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueRequest {
    aud: String,
    scope: Option<String>,
    ttl_secs: Option<u64>,
}

/// RFC 6749 §5.1. Holds the token: no `Debug`.
#[derive(Serialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn random_jti() -> Result<String, ApiError> {
    let bytes: [u8; 16] = daas_crypto::random::bytes().map_err(internal)?;
    Ok(b64u(&bytes))
}

fn parse_scope(scope: Option<&str>) -> Vec<String> {
    scope
        .filter(|s| !s.is_empty())
        .map(|s| s.split(' ').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The claims of a token for `record`, to be checked before the record is stored.
fn claims_for(issuer: &Issuer, record: &TokenRecord) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: issuer.0.clone(),
        sub: record.subject.clone(),
        aud: vec![record.audience.clone()],
        exp: record.expires_at,
        nbf: None,
        iat: record.issued_at,
        jti: record.jti.clone(),
        scope: record.scope.clone(),
        jkt: record.jkt.clone(),
        status: Some(StatusListRef {
            idx: record.status_idx,
            uri: issuer.url(STATUS_PATH),
        }),
        client_id: Some(record.subject.clone()),
    }
}

fn token_response(token: String, record: &TokenRecord) -> Json<TokenResponse> {
    Json(TokenResponse {
        access_token: token,
        token_type: "DPoP",
        expires_in: u64::try_from(record.expires_at - record.issued_at).unwrap_or(0),
        scope: (!record.scope.is_empty()).then(|| record.scope.join(" ")),
    })
}

/// `POST /v1/token`.
pub async fn issue(
    State(state): State<AppState>,
    caller: TokenClient,
    issuer: Issuer,
    headers: HeaderMap,
    ApiJson(req): ApiJson<IssueRequest>,
) -> Result<(HeaderMap, Json<TokenResponse>), ApiError> {
    let engine = state.engine()?;
    let tokens = engine.tokens().await?;
    let config = &engine.token_config;
    let proof = match check_proof(tokens, &headers, &issuer.url(TOKEN_PATH)).await {
        Ok(proof) => proof,
        Err(refusal) => {
            // A nonce challenge is the protocol's normal first round trip, not a failure.
            if !matches!(refusal.answer, ApiError::UseDpopNonce(_)) {
                engine
                    .audit_failure(
                        &caller.name,
                        "token.issue",
                        &req.aud,
                        "denied",
                        &refusal.reason,
                    )
                    .await;
            }
            return Err(refusal.answer);
        }
    };
    let ttl = req.ttl_secs.unwrap_or(config.default_ttl_secs);
    if ttl == 0 || ttl > config.max_ttl_secs {
        return Err(ApiError::Malformed(format!(
            "ttl_secs must be between 1 and {}",
            config.max_ttl_secs
        )));
    }
    let now = now_secs();
    let mut record = TokenRecord {
        jti: random_jti()?,
        jkt: proof.jkt().to_owned(),
        subject: caller.name.clone(),
        audience: req.aud,
        scope: parse_scope(req.scope.as_deref()),
        issued_at: now,
        chain_started_at: now,
        expires_at: now.saturating_add(secs(ttl)),
        status_idx: 0,
        revoked: false,
        replaced_by: None,
    };
    daas_token::check_access_token_claims(&claims_for(&issuer, &record)).map_err(|e| match e {
        daas_token::KeyError::InvalidClaims(why) => ApiError::Malformed(why.into()),
        other => key_error(&other),
    })?;
    record.status_idx = engine
        .store
        .insert_token(
            &record,
            &event(
                &caller.name,
                "token.issue",
                &record.jti,
                "ok",
                &format!("aud {}; ttl {ttl}s", record.audience),
            ),
        )
        .await?;
    let token = tokens.sign(&claims_for(&issuer, &record))?;
    Ok((tokens.success_headers(), token_response(token, &record)))
}

// ---------------------------------------------------------------- replace

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaceRequest {
    jti: String,
}

/// Why a replacement is refused (audit only; the client sees `invalid_grant`).
fn replacement_refusal(
    record: &TokenRecord,
    proof: &VerifiedProof,
    now: i64,
    config: &TokenConfig,
) -> Option<&'static str> {
    if !proof.jwk().thumbprint_matches(&record.jkt) {
        return Some("the proof key is not the key the token is bound to");
    }
    if record.revoked {
        return Some(if record.replaced_by.is_some() {
            "the token was already replaced"
        } else {
            "the token was revoked"
        });
    }
    if record
        .chain_started_at
        .saturating_add(secs(config.max_chain_secs))
        <= now
    {
        return Some("the replacement chain reached its total lifetime cap");
    }
    None
}

/// `POST /v1/token/replace`: no bearer credential; the proof shows possession of the key the
/// token named by `jti` is bound to.
pub async fn replace(
    State(state): State<AppState>,
    issuer: Issuer,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ReplaceRequest>,
) -> Result<(HeaderMap, Json<TokenResponse>), ApiError> {
    let engine = state.engine()?;
    let tokens = engine.tokens().await?;
    let config = &engine.token_config;
    let target = if req.jti.len() <= daas_token::access::MAX_CLAIM_LEN {
        req.jti.as_str()
    } else {
        "<oversize jti>"
    };
    let proof = match check_proof(tokens, &headers, &issuer.url(REPLACE_PATH)).await {
        Ok(proof) => proof,
        Err(refusal) => {
            if !matches!(refusal.answer, ApiError::UseDpopNonce(_)) {
                audit_credential_failure(&engine, "token.replace", target, &refusal.reason).await;
            }
            return Err(refusal.answer);
        }
    };
    let now = now_secs();
    let old = match engine.store.get_token(target).await {
        Ok(record) => record,
        Err(daas_store::StoreError::NotFound) => {
            audit_credential_failure(&engine, "token.replace", target, "no token has this jti")
                .await;
            return Err(ApiError::InvalidGrant);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(reason) = replacement_refusal(&old, &proof, now, config) {
        audit_credential_failure(&engine, "token.replace", target, reason).await;
        return Err(ApiError::InvalidGrant);
    }
    // The same lifetime as the lost token, cut at the chain's cap.
    let cap = old
        .chain_started_at
        .saturating_add(secs(config.max_chain_secs));
    let ttl = old.expires_at.saturating_sub(old.issued_at).max(1);
    let mut record = TokenRecord {
        jti: random_jti()?,
        issued_at: now,
        expires_at: now.saturating_add(ttl).min(cap),
        status_idx: 0,
        revoked: false,
        replaced_by: None,
        ..old.clone()
    };
    record.status_idx = match engine
        .store
        .replace_token(
            &old.jti,
            &record,
            &event(
                &old.subject,
                "token.replace",
                &old.jti,
                "ok",
                &format!("replaced by {}", record.jti),
            ),
        )
        .await
    {
        Ok(idx) => idx,
        Err(daas_store::StoreError::Conflict) => {
            audit_credential_failure(
                &engine,
                "token.replace",
                target,
                "the token was replaced concurrently",
            )
            .await;
            return Err(ApiError::InvalidGrant);
        }
        Err(e) => return Err(e.into()),
    };
    let token = tokens.sign(&claims_for(&issuer, &record))?;
    Ok((tokens.success_headers(), token_response(token, &record)))
}

// ---------------------------------------------------------------- revoke

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    jti: Option<String>,
    subject: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RevokeResponse {
    revoked: u64,
}

/// `POST /v1/token/revoke` (admin): `{"jti"}` or `{"subject"}`.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let (selector, target) = match (&req.jti, &req.subject) {
        (Some(jti), None) if !jti.is_empty() => (TokenSelector::Jti(jti), jti.clone()),
        (None, Some(sub)) if !sub.is_empty() => {
            (TokenSelector::Subject(sub), format!("subject {sub}"))
        }
        _ => {
            return Err(ApiError::Malformed(
                "give exactly one of jti and subject, non-empty".into(),
            ));
        }
    };
    let revoked = engine
        .store
        .revoke_tokens(
            selector,
            &event(&caller.name, "token.revoke", &target, "ok", ""),
        )
        .await?;
    Ok(Json(RevokeResponse { revoked }))
}

// ---------------------------------------------------------------- keys and metadata

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// `issuer` (default) or `status`.
    purpose: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RotateResponse {
    kid: String,
    retired: String,
}

/// `POST /v1/token/keys/rotate` (admin).
pub async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Json<RotateResponse>, ApiError> {
    let engine = state.engine()?;
    admin_only(&caller)?;
    let purpose = match req.purpose.as_deref() {
        None | Some("issuer") => TokenKeyPurpose::Issuer,
        Some("status") => TokenKeyPurpose::Status,
        Some(_) => {
            return Err(ApiError::Malformed(
                "purpose must be issuer or status".into(),
            ));
        }
    };
    let tokens = engine.tokens().await?;
    let (kid, retired) = tokens.rotate(&engine, purpose, &caller.name).await?;
    Ok(Json(RotateResponse { kid, retired }))
}

/// `GET /.well-known/jwks.json` (no auth): the issuer keys, active and within the overlap.
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let tokens = engine.tokens().await?;
    Ok(Json(tokens.keys().jwks.clone()))
}

// ---------------------------------------------------------------- status list

/// The status list's `ttl`: how long a relying party may cache it (seconds).
const STATUS_LIST_TTL_SECS: u64 = 60;
/// The status list's `exp`, after `iat` (seconds).
const STATUS_LIST_EXP_SECS: i64 = 600;

/// The status list of `snapshot`: one bit per allocated index (the draft's §4.1 order, least
/// significant bit first); revoked or replaced = `INVALID`, else `VALID`. At least one entry.
pub(crate) fn status_list_of(
    snapshot: &daas_store::TokenStatusSnapshot,
) -> Result<daas_token::status::StatusList, ApiError> {
    use daas_token::status::{Bits, StatusList, TokenStatus};
    let mut list = StatusList::new(Bits::One, snapshot.allocated.max(1)).map_err(internal)?;
    // An index past the allocation is never stored so; skip it rather than fail the list.
    for &idx in snapshot.revoked.iter().filter(|&&i| i < snapshot.allocated) {
        list.set(idx, TokenStatus::Invalid).map_err(internal)?;
    }
    Ok(list)
}

/// `GET /v1/token/status` (no auth): the Token Status List in JWT form, signed by the status
/// key (`typ: statuslist+jwt`, `sub` = this URI, `iat`, `exp`, `ttl`,
/// `status_list: {bits: 1, lst}`), built from the store on every request.
pub async fn status_list(
    State(state): State<AppState>,
    issuer: Issuer,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let engine = state.engine()?;
    let tokens = engine.tokens().await?;
    let snapshot = engine.store.revoked_status_indexes().await?;
    let now = now_secs();
    let keys = tokens.keys();
    let jwt = daas_token::status::sign_status_list(
        &keys.status.key,
        &keys.status.kid,
        &issuer.url(STATUS_PATH),
        now,
        Some(now.saturating_add(STATUS_LIST_EXP_SECS)),
        Some(STATUS_LIST_TTL_SECS),
        &status_list_of(&snapshot)?,
    )
    .map_err(|e| key_error(&e))?;
    Ok(([(header::CONTENT_TYPE, "application/statuslist+jwt")], jwt))
}

/// `GET /v1/token/status/jwks` (no auth): the status key that signs the status list.
pub async fn status_jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let tokens = engine.tokens().await?;
    Ok(Json(tokens.keys().status_jwks.clone()))
}

/// `GET /.well-known/oauth-authorization-server` (no auth): RFC 8414 metadata.
pub async fn metadata(issuer: Issuer) -> Json<Value> {
    Json(json!({
        "issuer": issuer.0,
        "token_endpoint": issuer.url(TOKEN_PATH),
        "jwks_uri": issuer.url(JWKS_PATH),
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["daas_bearer"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "daas_token_replace_endpoint": issuer.url(REPLACE_PATH),
        "daas_token_status_list_uri": issuer.url(STATUS_PATH),
        "daas_token_status_jwks_uri": issuer.url(STATUS_JWKS_PATH),
        "daas_token_status_staple_endpoint": issuer.url(crate::token_status::STAPLE_PATH),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(retired_at: Option<i64>) -> TokenKeyRecord {
        TokenKeyRecord {
            kid: "k".into(),
            purpose: TokenKeyPurpose::Issuer,
            pkcs8: zeroize::Zeroizing::new(Vec::new()),
            created_at: 0,
            retired_at,
        }
    }

    #[test]
    fn retired_keys_are_published_for_the_overlap_only() {
        assert!(is_published(&record(None), 1_000_000, 10));
        assert!(is_published(&record(Some(100)), 109, 10));
        assert!(!is_published(&record(Some(100)), 110, 10));
    }

    #[test]
    fn configured_issuers_must_be_normal_https_origins() {
        for ok in [
            "https://daas.example",
            "https://daas.example:8443",
            "https://10.0.0.1",
        ] {
            assert_eq!(TokenConfig::validate_issuer(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://daas.example",
            "https://DAAS.example",
            "https://daas.example/",
            "https://daas.example/x",
            "https://daas.example:443",
            "https://user@daas.example",
            "daas.example",
            "",
        ] {
            assert!(TokenConfig::validate_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_bits_are_lsb_first_one_bit_per_index() {
        let bits = |allocated, revoked: &[u64]| {
            status_list_of(&daas_store::TokenStatusSnapshot {
                allocated,
                revoked: revoked.to_vec(),
            })
            .unwrap()
            .as_bytes()
            .to_vec()
        };
        assert_eq!(bits(0, &[]), [0]);
        assert_eq!(bits(8, &[]), [0]);
        assert_eq!(bits(9, &[0, 3, 8]), [0b0000_1001, 0b0000_0001]);
        assert_eq!(bits(16, &[7, 15]), [0x80, 0x80]);
        // An index past the allocation (never stored so) is ignored rather than failing.
        assert_eq!(bits(1, &[100]), [0]);
    }

    #[test]
    fn scopes_split_on_single_spaces() {
        assert!(parse_scope(None).is_empty());
        assert!(parse_scope(Some("")).is_empty());
        assert_eq!(parse_scope(Some("a b")), ["a", "b"]);
        // Double spaces give an empty scope token, which the claims check refuses.
        assert_eq!(parse_scope(Some("a  b")), ["a", "", "b"]);
    }
}
