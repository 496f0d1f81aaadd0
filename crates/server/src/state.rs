//! Shared server state: the unsealed engine (store + storage keys) behind a once-cell, so a
//! production server can start sealed and become usable after `POST /v1/sys/unseal`.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use daas_crypto::shamir::ShamirShare;
use daas_crypto::storage::StorageKeys;
use daas_store::{AppRecord, AuditEvent, Store, StoreUrl};

use crate::auth::FailureBudget;
use crate::error::ApiError;

/// Everything a request needs once the storage key is known.
#[derive(Debug)]
pub struct Engine {
    pub store: Store,
    pub keys: StorageKeys,
    /// SHA-256 of the admin token (tokens are 256-bit random, so an unkeyed hash suffices).
    pub admin_token_sha256: [u8; 32],
    /// App records are immutable once created: cache them to keep authentication off the DB.
    pub apps: Mutex<HashMap<String, AppRecord>>,
    /// App ids recently looked up and not found (bounded, see `auth::UNKNOWN_APPS_MAX`): bogus
    /// tokens naming the same id again are answered without touching the database.
    pub unknown_apps: Mutex<HashSet<String>>,
    /// Token bucket for `auth.failure` audit rows (unauthenticated callers must not be able to
    /// grow the audit log without bound); failures beyond it are counted, not itemised.
    pub auth_failures: Mutex<FailureBudget>,
    /// The trust domain this server is the authority of.
    pub trust_domain: daas_identity::TrustDomain,
    /// The identity engine's CA, loaded from the store on first use.
    identity: tokio::sync::OnceCell<crate::identity::Identity>,
    /// The CA certificates the TLS listener checks node client certificates against.
    pub bundle: crate::tls::TrustBundle,
    /// Issuer and lifetimes of the tokens engine.
    pub token_config: crate::tokens::TokenConfig,
    /// The tokens engine's keys and replay cache, loaded from the store on first use.
    tokens: tokio::sync::OnceCell<crate::tokens::Tokens>,
}

impl Engine {
    pub fn new(store: Store, keys: StorageKeys, admin_token_sha256: [u8; 32]) -> Self {
        Self {
            store,
            keys,
            admin_token_sha256,
            apps: Mutex::new(HashMap::new()),
            unknown_apps: Mutex::new(HashSet::new()),
            auth_failures: Mutex::new(FailureBudget::new(std::time::Instant::now())),
            trust_domain: crate::identity::default_trust_domain(),
            identity: tokio::sync::OnceCell::new(),
            bundle: crate::tls::TrustBundle::default(),
            token_config: crate::tokens::TokenConfig::default(),
            tokens: tokio::sync::OnceCell::new(),
        }
    }

    /// The same engine with another tokens configuration (before first use).
    #[must_use]
    pub fn with_token_config(mut self, config: crate::tokens::TokenConfig) -> Self {
        self.token_config = config;
        self
    }

    /// The tokens engine, loading (or creating) its keys on first use.
    pub(crate) async fn tokens(&self) -> Result<&crate::tokens::Tokens, ApiError> {
        self.tokens
            .get_or_try_init(|| crate::tokens::Tokens::load(self))
            .await
    }

    /// Share `bundle` with the TLS listener (before first use).
    #[must_use]
    pub fn with_bundle(mut self, bundle: crate::tls::TrustBundle) -> Self {
        self.bundle = bundle;
        self
    }

    /// Load the identity engine now (so nodes can authenticate right after a start), logging
    /// rather than failing: the other engines work without it.
    pub fn load_identity_in_background(self: &Arc<Self>) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = engine.identity().await {
                tracing::error!(error = ?e, "the identity engine could not be loaded");
            }
        });
    }

    /// The same engine for another trust domain (before first use).
    #[must_use]
    pub fn with_trust_domain(mut self, trust_domain: daas_identity::TrustDomain) -> Self {
        self.trust_domain = trust_domain;
        self
    }

    /// The identity engine, loading (or creating) the CA on first use.
    pub(crate) async fn identity(
        &self,
    ) -> Result<&crate::identity::Identity, crate::error::ApiError> {
        self.identity
            .get_or_try_init(|| crate::identity::Identity::load(self))
            .await
    }

    /// Append an audit entry; failures are reported to the caller (fail closed where it matters).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<(), ApiError> {
        self.store
            .append_audit(&event(actor, action, target, outcome, detail))
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::warn!(error = %e, action, "audit append failed");
                ApiError::Unavailable
            })
    }

    /// Best-effort audit for failure paths: the request already fails, so a failing audit write
    /// must not change the answer, but it is logged.
    pub async fn audit_failure(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) {
        let _ignored = self.audit(actor, action, target, outcome, detail).await;
    }
}

pub fn event(actor: &str, action: &str, target: &str, outcome: &str, detail: &str) -> AuditEvent {
    AuditEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Shamir unseal progress for a sealed production server.
#[derive(Debug)]
pub struct SealState {
    pub threshold: u8,
    pub key_check: [u8; 32],
    pub store_url: StoreUrl,
    pub admin_token_sha256: [u8; 32],
    /// `(index, sys::unseal_share_check(share))` for every share made at `operator init`: a
    /// share must match its check before it joins `pending`, so a forged share cannot discard
    /// the legitimate shares already given.
    pub share_checks: Vec<(u8, [u8; 32])>,
    pub pending: tokio::sync::Mutex<Vec<ShamirShare>>,
    /// The trust domain of the engine made at unseal.
    pub trust_domain: daas_identity::TrustDomain,
    /// The tokens configuration of the engine made at unseal.
    pub token_config: crate::tokens::TokenConfig,
    /// Shared with the TLS listener (node client certificates).
    pub bundle: crate::tls::TrustBundle,
}

#[derive(Debug)]
pub struct Inner {
    pub engine: OnceLock<Arc<Engine>>,
    pub seal: Option<SealState>,
    pub max_body_bytes: usize,
}

/// Cheap to clone; what axum hands to every handler.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

impl AppState {
    pub fn unsealed(engine: Engine, max_body_bytes: usize) -> Self {
        let cell = OnceLock::new();
        let _first = cell.set(Arc::new(engine));
        Self(Arc::new(Inner {
            engine: cell,
            seal: None,
            max_body_bytes,
        }))
    }

    pub fn sealed(seal: SealState, max_body_bytes: usize) -> Self {
        Self(Arc::new(Inner {
            engine: OnceLock::new(),
            seal: Some(seal),
            max_body_bytes,
        }))
    }

    pub fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        self.0.engine.get().cloned().ok_or(ApiError::Sealed)
    }
}
