//! The tower layer: `Authorization: DPoP` + `DPoP` proof → [`Authenticated`], or a 401/503.
//!
//! Per request, in order: the `Authorization` header (exactly one, scheme `DPoP`; a token sent
//! as `Bearer` is refused with `invalid_token`, RFC 9449 §7.2), the `DPoP` header fields, the
//! access token and proof ([`daas_token::verify_dpop_request_pending`]), the replay store, then
//! the token's status. Only then does the inner service run, with [`Authenticated`] in the
//! request extensions.
//!
//! **Why `htu` is built from a configured origin and not from `Host`.** The proof binds a
//! request to `scheme://host/path`. `Host` (and `X-Forwarded-*`) are chosen by whoever sends
//! the request: an attacker holding a proof made for `https://other.example/v1/x` could send it
//! here with `Host: other.example` and the comparison would pass, so the proof would no longer
//! say which service it is for. Behind a TLS-terminating proxy the scheme and host the client
//! used are not visible anyway. The service therefore states its public origin once
//! ([`DpopConfig::new`]) and only the path comes from the request (the original path, before
//! any axum nesting).
//!
//! **Answers.** Every rejection is a `401` with `WWW-Authenticate: DPoP error="…",
//! algs="EdDSA ES256"` (no `error` when no credentials were sent at all), plus a fresh
//! `DPoP-Nonce` for `use_dpop_nonce`, or a `503` with `Retry-After` when the server cannot
//! decide (replay store or status source down). The JSON body `{"error": {"code", "message"}}`
//! carries a fixed message per code; the precise reason goes to the [`AuditHook`] only, and
//! never the token or proof.

use crate::jwks::RemoteKeySet;
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::staple::{StapleChecker, StapleError};
use crate::status::{StatusCheckError, StatusChecker, normalized_origin};
use crate::{Clock, SystemClock};
use axum::extract::{FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use core::fmt;
use core::task::{Context, Poll};
use daas_token::{
    AccessTokenError, DpopError, DpopPolicy, DpopRequest, ErrorCode, Fault, JwsError, KeySet,
    NonceKey, ProofPolicy, TokenStatus, VerifiedAccessToken, VerifiedProof, VerifiedTokenCache,
    verify_dpop_request_pending,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use std::sync::Arc;
use tower::{Layer, Service, ServiceExt as _};

/// The `algs` parameter of every challenge: the proof algorithms accepted.
pub const ALGS: &str = "EdDSA ES256";

/// Default capacity of the in-process replay store.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The configuration cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    // --- caller ---
    /// The issuer or audience is empty.
    #[error("dpop layer misconfigured: {0}")]
    Missing(&'static str),
    /// An origin is not `scheme://host[:port]`.
    #[error("invalid origin: {0}")]
    InvalidOrigin(&'static str),
}

/// A verified request: the access token and the proof that came with it. Put into the request
/// extensions by [`DpopLayer`]; extract it in handlers.
#[derive(Debug, Clone)]
pub struct Authenticated {
    token: Arc<VerifiedAccessToken>,
    proof: Arc<VerifiedProof>,
}

impl Authenticated {
    /// The verified access token.
    #[must_use]
    pub fn token(&self) -> &VerifiedAccessToken {
        &self.token
    }

    /// The verified proof.
    #[must_use]
    pub fn proof(&self) -> &VerifiedProof {
        &self.proof
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("Authenticated extracted on a route without the dpop layer");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the request cannot be authorized",
            )
        })
    }
}

/// Why a request was refused. The `Display` text is precise and audit-safe (it never contains
/// the token, the proof or other client text); clients only see the opaque answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    // --- peer ---
    /// No `Authorization` header.
    #[error("no authorization header")]
    NoCredentials,
    /// The `Authorization` header is malformed, repeated or of another scheme.
    #[error("authorization header {0}")]
    Authorization(&'static str),
    /// A token was sent with the `Bearer` scheme: DPoP-bound tokens must not be (RFC 9449
    /// §7.2), and this resource accepts no others.
    #[error("access token sent with the bearer scheme")]
    BearerScheme,
    /// A `DPoP` header value is not visible ASCII.
    #[error("dpop header is not visible ascii")]
    ProofHeader,
    /// The token or proof was rejected, or the replay store failed (see [`DpopError::fault`]).
    #[error(transparent)]
    Dpop(DpopError),
    /// A status checker is configured and the token has no `status` claim, so it could never
    /// be revoked.
    #[error("access token carries no status reference")]
    NoStatusReference,
    /// The token's status is not valid (revoked or suspended).
    #[error("access token status is {0:?}")]
    Revoked(TokenStatus),
    /// The status check failed (untrusted URI, index out of range, or no usable list).
    #[error(transparent)]
    Status(StatusCheckError),
    /// The status staple is missing or was rejected.
    #[error(transparent)]
    Staple(StapleError),
}

impl Rejection {
    /// Who caused the rejection.
    #[must_use]
    pub fn fault(&self) -> Fault {
        match self {
            Self::Dpop(e) => e.fault(),
            Self::Status(e) => e.fault(),
            Self::Staple(StapleError::Invalid(e)) => e.fault(),
            _ => Fault::Peer,
        }
    }

    /// What to answer.
    #[must_use]
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Dpop(e) => e.error_code(),
            Self::ProofHeader => ErrorCode::InvalidDpopProof,
            Self::Status(e) if e.fault() != Fault::Peer => ErrorCode::ServerError,
            _ => ErrorCode::InvalidToken,
        }
    }
}

/// Receives every rejection with its precise reason (for the audit log). The default,
/// [`TracingAudit`], logs a `tracing` event.
pub trait AuditHook: Send + Sync + fmt::Debug {
    /// A request to `method` `path` was refused for `rejection`.
    fn rejected(&self, rejection: &Rejection, method: &str, path: &str);
}

/// Logs rejections as `tracing` events with target `daas_resource::audit`: warnings for peer
/// faults, errors for internal ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditHook for TracingAudit {
    fn rejected(&self, rejection: &Rejection, method: &str, path: &str) {
        match rejection.fault() {
            Fault::Peer => tracing::warn!(
                target: "daas_resource::audit",
                reason = %rejection, method, path, "dpop request rejected"
            ),
            Fault::Caller | Fault::Internal => tracing::error!(
                target: "daas_resource::audit",
                reason = %rejection, method, path, "dpop request could not be authorized"
            ),
        }
    }
}

/// What a DPoP-protected resource accepts. Build with [`DpopConfig::new`], adjust with the
/// `with_*` methods, then [`DpopConfig::into_layer`].
#[derive(Debug)]
pub struct DpopConfig {
    issuer: String,
    audience: String,
    keys: IssuerKeys,
    origin: String,
    replay: Arc<dyn ReplayStore>,
    nonce: Option<NonceKey>,
    status: Option<StatusChecker>,
    staples: Option<StapleChecker>,
    proof: ProofPolicy,
    token_leeway_secs: u32,
    token_cache: Option<VerifiedTokenCache>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditHook>,
}

/// The issuer keys tokens are verified with.
#[derive(Debug)]
enum IssuerKeys {
    Fixed(Arc<KeySet>),
    Remote(Arc<RemoteKeySet>),
}

impl DpopConfig {
    /// Tokens from `issuer` (signed by `issuer_keys`) for `audience`, on a service whose
    /// public origin is `external_origin` (`https://api.example.com[:port]`, what clients put
    /// in `htu`). Defaults: an in-process replay store of [`DEFAULT_REPLAY_CAPACITY`], no
    /// nonce, no status check, [`ProofPolicy::default`], 5 s token leeway, a
    /// [`VerifiedTokenCache`] of the default capacity, the system clock, [`TracingAudit`].
    ///
    /// # Errors
    /// [`ConfigError`] for an empty issuer or audience or a malformed origin.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        issuer_keys: KeySet,
        external_origin: &str,
    ) -> Result<Self, ConfigError> {
        let issuer = issuer.into();
        let audience = audience.into();
        if issuer.is_empty() {
            return Err(ConfigError::Missing("issuer is empty"));
        }
        if audience.is_empty() {
            return Err(ConfigError::Missing("audience is empty"));
        }
        let origin = normalized_origin(external_origin).ok_or(ConfigError::InvalidOrigin(
            "external origin is not scheme://host[:port]",
        ))?;
        Ok(Self {
            issuer,
            audience,
            keys: IssuerKeys::Fixed(Arc::new(issuer_keys)),
            origin,
            replay: Arc::new(MemoryReplayStore::new(DEFAULT_REPLAY_CAPACITY)),
            nonce: None,
            status: None,
            staples: None,
            proof: ProofPolicy::default(),
            token_leeway_secs: 5,
            token_cache: Some(VerifiedTokenCache::default()),
            clock: Arc::new(SystemClock),
            audit: Arc::new(TracingAudit),
        })
    }

    /// Verifies tokens with the issuer's JWK set fetched from its URL and kept fresh (new keys
    /// after a rotation are picked up without a restart) instead of the fixed set given to
    /// [`DpopConfig::new`].
    #[must_use]
    pub fn with_remote_keys(mut self, keys: Arc<RemoteKeySet>) -> Self {
        self.keys = IssuerKeys::Remote(keys);
        self
    }

    /// Uses `store` for replay detection (e.g. a [`crate::RedisReplayStore`] shared by replicas).
    #[must_use]
    pub fn with_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = store;
        self
    }

    /// Requires proofs to carry a current nonce from `key` (RFC 9449 §8).
    #[must_use]
    pub fn with_nonce(mut self, key: NonceKey) -> Self {
        self.nonce = Some(key);
        self
    }

    /// Checks every token's status with `checker`; tokens without a `status` claim are refused.
    #[must_use]
    pub fn with_status(mut self, checker: StatusChecker) -> Self {
        self.status = Some(checker);
        self
    }

    /// Accepts status staples ([`crate::staple`]): every answer carries a fresh
    /// `DaaS-Status-Nonce`; a request with a `DaaS-Status-Staple` is decided by that staple
    /// alone (an invalid or stale one is refused, never passed on to the list). A request
    /// without one falls back to the status list if [`Self::with_status`] is configured, and is
    /// refused with `use_status_staple` otherwise. Tokens without a `status` claim are refused.
    #[must_use]
    pub fn with_status_staples(mut self, checker: StapleChecker) -> Self {
        self.staples = Some(checker);
        self
    }

    /// Sets the proofs' `iat` window.
    #[must_use]
    pub fn with_proof_policy(mut self, policy: ProofPolicy) -> Self {
        self.proof = policy;
        self
    }

    /// Sets the clock-skew allowance for the token's `exp`, `nbf` and `iat`.
    #[must_use]
    pub fn with_token_leeway(mut self, secs: u32) -> Self {
        self.token_leeway_secs = secs;
        self
    }

    /// Remembers up to `capacity` verified tokens, so that a token presented again (with a
    /// fresh proof) is not verified again; 0 turns the cache off. Key-set changes, issuer,
    /// audience and times are still checked on every request (see [`VerifiedTokenCache`]).
    #[must_use]
    pub fn with_token_cache(mut self, capacity: usize) -> Self {
        self.token_cache = (capacity > 0).then(|| VerifiedTokenCache::new(capacity));
        self
    }

    /// Uses `clock` for every time check.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports rejections to `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Arc<dyn AuditHook>) -> Self {
        self.audit = audit;
        self
    }

    /// The layer.
    #[must_use]
    pub fn into_layer(self) -> DpopLayer {
        DpopLayer {
            config: Arc::new(self),
        }
    }

    /// Verifies one request's headers; on success returns what handlers see.
    ///
    /// # Errors
    /// A [`Rejection`].
    pub async fn authenticate(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Authenticated, Rejection> {
        let access_token = dpop_token(headers)?;
        let proofs = headers
            .get_all("dpop")
            .iter()
            .map(|value| value.to_str().map_err(|_| Rejection::ProofHeader))
            .collect::<Result<Vec<_>, _>>()?;
        let uri = format!("{}{}", self.origin, path);
        let request = DpopRequest {
            access_token,
            proof_headers: &proofs,
            method,
            uri: &uri,
        };
        let verify = |keys: &KeySet| {
            let policy = DpopPolicy {
                keys,
                issuer: &self.issuer,
                audience: &self.audience,
                token_leeway_secs: self.token_leeway_secs,
                proof: self.proof,
                nonce_key: self.nonce.as_ref(),
                token_cache: self.token_cache.as_ref(),
            };
            verify_dpop_request_pending(&request, &policy, now)
        };
        let pending = match &self.keys {
            IssuerKeys::Fixed(keys) => verify(keys.as_ref()),
            IssuerKeys::Remote(remote) => match verify(remote.keys(now).await.as_ref()) {
                // A key the set does not hold yet may be the issuer's new key: fetch once more.
                Err(DpopError::AccessToken(AccessTokenError::Jws(JwsError::UnknownKey))) => {
                    match remote.refresh_for_unknown_kid(now).await {
                        Some(keys) => verify(keys.as_ref()),
                        None => Err(DpopError::AccessToken(AccessTokenError::Jws(
                            JwsError::UnknownKey,
                        ))),
                    }
                }
                other => other,
            },
        }
        .map_err(Rejection::Dpop)?;
        let fresh = self
            .replay
            .insert_if_absent(pending.replay_key(), pending.expires_at(), now)
            .await
            .map_err(|e| Rejection::Dpop(DpopError::ReplayCache(e)))?;
        let (token, proof) = pending.finish(fresh).map_err(Rejection::Dpop)?;
        self.check_status(&token, headers, now).await?;
        Ok(Authenticated {
            token: Arc::new(token),
            proof: Arc::new(proof),
        })
    }

    /// The token's status, from its staple if one was sent (and staples are accepted), else
    /// from the status list if configured. Nothing configured: no check.
    async fn check_status(
        &self,
        token: &VerifiedAccessToken,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<(), Rejection> {
        if self.staples.is_none() && self.status.is_none() {
            return Ok(());
        }
        let reference = token
            .claims()
            .status
            .as_ref()
            .ok_or(Rejection::NoStatusReference)?;
        let staple = match &self.staples {
            Some(_) => StapleChecker::staple_of(headers).map_err(Rejection::Staple)?,
            None => None,
        };
        let status = match (&self.staples, staple, &self.status) {
            (Some(staples), Some(staple), _) => staples
                .check(staple, reference, now)
                .map_err(Rejection::Staple)?,
            (_, None, Some(list)) => list
                .check(reference, now)
                .await
                .map_err(Rejection::Status)?,
            _ => return Err(Rejection::Staple(StapleError::Missing)),
        };
        if status.is_valid() {
            Ok(())
        } else {
            Err(Rejection::Revoked(status))
        }
    }

    /// The answer to a rejection.
    fn reject(&self, rejection: &Rejection, now: i64) -> Response {
        let code = rejection.error_code();
        let (status, body_code, message) = match code {
            ErrorCode::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is not valid for this request",
            ),
            ErrorCode::InvalidDpopProof => (
                StatusCode::UNAUTHORIZED,
                "invalid_dpop_proof",
                "the dpop proof is not valid for this request",
            ),
            ErrorCode::UseDpopNonce => (
                StatusCode::UNAUTHORIZED,
                "use_dpop_nonce",
                "sign the proof with the nonce in the DPoP-Nonce header",
            ),
            ErrorCode::ServerError => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the request cannot be authorized right now; retry later",
            ),
        };
        let (body_code, message) = match rejection {
            Rejection::Staple(e) if e.asks_for_staple() => (
                "use_status_staple",
                "send a status staple for the nonce in the DaaS-Status-Nonce header",
            ),
            _ => (body_code, message),
        };
        let mut response = error_response(status, body_code, message);
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match (rejection, code.as_challenge()) {
                (Rejection::NoCredentials, _) | (_, None) => format!("DPoP algs=\"{ALGS}\""),
                (_, Some(error)) => format!("DPoP error=\"{error}\", algs=\"{ALGS}\""),
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        } else {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if code == ErrorCode::UseDpopNonce {
            self.add_nonce(headers, now);
        }
        self.add_staple_nonce(headers, now);
        response
    }

    fn add_staple_nonce(&self, headers: &mut HeaderMap, now: i64) {
        if let Some(staples) = &self.staples {
            staples.add_nonce(headers, now);
        }
    }

    fn add_nonce(&self, headers: &mut HeaderMap, now: i64) {
        if let Some(key) = &self.nonce
            && let Ok(value) = HeaderValue::from_str(&key.issue(now))
        {
            headers.insert("dpop-nonce", value);
        }
    }
}

/// The token of `Authorization: DPoP <token>`.
fn dpop_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            Rejection::Authorization("is repeated")
        } else {
            Rejection::NoCredentials
        });
    };
    let value = value
        .to_str()
        .map_err(|_| Rejection::Authorization("is not visible ascii"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Rejection::Authorization("has no scheme and token"))?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::BearerScheme);
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(Rejection::Authorization("scheme is not dpop"));
    }
    if token.is_empty() || token.contains(' ') {
        return Err(Rejection::Authorization("token is empty or has spaces"));
    }
    Ok(token)
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// Protects the services it wraps; see the module documentation.
#[derive(Debug, Clone)]
pub struct DpopLayer {
    config: Arc<DpopConfig>,
}

impl<S> Layer<S> for DpopLayer {
    type Service = DpopService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DpopService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`DpopLayer`] makes.
#[derive(Debug, Clone)]
pub struct DpopService<S> {
    inner: S,
    config: Arc<DpopConfig>,
}

impl<S, B> Service<Request<B>> for DpopService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = crate::BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; the instance that was polled ready serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let now = config.clock.now();
            let (mut parts, body) = request.into_parts();
            let path = parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.path(), |original| original.0.path())
                .to_owned();
            match config
                .authenticate(parts.method.as_str(), &path, &parts.headers, now)
                .await
            {
                Ok(authenticated) => {
                    parts.extensions.insert(authenticated);
                    let mut response = inner.oneshot(Request::from_parts(parts, body)).await?;
                    // RFC 9449 §8.2: a server may hand out the next nonce with any response.
                    config.add_nonce(response.headers_mut(), now);
                    config.add_staple_nonce(response.headers_mut(), now);
                    Ok(response)
                }
                Err(rejection) => {
                    config
                        .audit
                        .rejected(&rejection, parts.method.as_str(), &path);
                    Ok(config.reject(&rejection, now))
                }
            }
        })
    }
}
