//! DPoP-protected resources for daas (RFC 9449 §7, DESIGN.md §5, docs/tokens.md).
//!
//! [`DpopLayer`] turns any axum/tower service into a resource that accepts only DPoP-bound
//! access tokens presented with a fresh proof of possession:
//!
//! ```no_run
//! # async fn demo(issuer_keys: daas_token::KeySet) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use daas_resource::{Authenticated, DpopConfig};
//!
//! let config = DpopConfig::new(
//!     "https://issuer.example.com",
//!     "https://api.example.com",
//!     issuer_keys,
//!     "https://api.example.com",
//! )?;
//! let app: Router = Router::new()
//!     .route("/v1/hello", get(|auth: Authenticated| async move { auth.token().claims().sub.clone() }))
//!     .layer(config.into_layer());
//! # let _ = app; Ok(()) }
//! ```
//!
//! The pieces:
//!
//! * [`layer`]: [`DpopConfig`], [`DpopLayer`], the [`Authenticated`] extractor, the
//!   [`Rejection`] reasons and the [`AuditHook`] they are reported to.
//! * [`replay`]: the asynchronous [`ReplayStore`], in process ([`MemoryReplayStore`]) or shared
//!   through Redis ([`RedisReplayStore`]).
//! * [`status`]: the [`StatusChecker`], which fetches, verifies and caches Token Status Lists
//!   and fails closed when they go stale.
//! * [`jwks`]: JWK sets into key sets ([`key_set_from_jwks`]).
//! * [`Clock`]: time, injectable so tests never sleep.
#![forbid(unsafe_code)]

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};

pub mod jwks;
pub mod layer;
pub mod replay;
pub mod staple;
pub mod status;

pub use jwks::{JwksError, JwksFetcher, RemoteJwksError, RemoteKeySet, key_set_from_jwks};
pub use layer::{
    AuditHook, Authenticated, ConfigError, DpopConfig, DpopLayer, DpopService, Rejection,
    TracingAudit,
};
pub use replay::{MemoryReplayStore, RedisReplayStore, RedisStoreError, ReplayStore};
pub use staple::{STAPLE_HEADER, STAPLE_NONCE_HEADER, StapleChecker, StapleError};
pub use status::{FetchError, HttpStatusFetcher, StatusCheckError, StatusChecker, StatusFetcher};

/// A boxed, sendable future: what the object-safe async traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The time source of the layer and the status checker (Unix seconds).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            })
    }
}

/// A clock that moves only when told to, for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now`.
    #[must_use]
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
