//! Replay stores for DPoP proofs: the asynchronous counterpart of
//! [`daas_token::ReplayCache`].
//!
//! The layer verifies a request with [`daas_token::verify_dpop_request_pending`], then records
//! the proof's [`ReplayKey`] here until [`daas_token::PendingReplayCheck::expires_at`]. The
//! insert must be atomic: of concurrent inserts of one key, at most one is told "fresh". Errors
//! fail closed (the request gets a 503).

use crate::BoxFuture;
use core::fmt;
use daas_token::{MemoryReplayCache, ReplayCache as _, ReplayCacheError, ReplayKey};
use std::time::Duration;

/// An atomic "insert if absent, with expiry" set of proof keys.
pub trait ReplayStore: Send + Sync + fmt::Debug {
    /// Records `key` until `expires_at` (Unix seconds) unless a live entry exists: `Ok(true)`
    /// if it was fresh and is now recorded, `Ok(false)` for a replay.
    ///
    /// # Errors
    /// [`ReplayCacheError`] when the answer is unknown; the request must be rejected.
    fn insert_if_absent<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayCacheError>>;
}

/// The in-process store: [`MemoryReplayCache`] behind the async interface. It protects one
/// process only; replicas need a shared store such as [`RedisReplayStore`].
#[derive(Debug)]
pub struct MemoryReplayStore(MemoryReplayCache);

impl MemoryReplayStore {
    /// A store holding at most `capacity` live entries (size it for the peak proof rate times
    /// the proof window); when full, inserts fail closed.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self(MemoryReplayCache::new(capacity))
    }
}

impl ReplayStore for MemoryReplayStore {
    fn insert_if_absent<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayCacheError>> {
        Box::pin(core::future::ready(
            self.0.insert_if_absent(key, expires_at, now),
        ))
    }
}

/// Connecting to Redis failed (a misconfiguration or an unreachable server at start-up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    // --- caller ---
    /// The URL is not a Redis URL.
    #[error("invalid redis url")]
    InvalidUrl,
    // --- internal ---
    /// The server could not be reached.
    #[error("redis is unreachable: {0}")]
    Unreachable(String),
}

/// Default bound on one Redis round trip; past it the proof is rejected (503).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A replay store shared by every replica through Redis: one `SET <prefix><key> 1 NX PX <ttl>`
/// per proof, which is atomic on the server, so of concurrent submissions of one proof to any
/// replicas exactly one is accepted. Keys are the fixed-size hex [`ReplayKey`]s, and expire on
/// their own when the proof could no longer pass the `iat` check.
///
/// Any Redis error or a round trip slower than the timeout is
/// [`ReplayCacheError::Unavailable`]: fail closed. The connection reconnects by itself.
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Connects to `url` (`redis://host:port[/db]`), with key prefix `daas:dpop:` and
    /// [`DEFAULT_REDIS_TIMEOUT`].
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`], [`RedisStoreError::Unreachable`].
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url).map_err(|_| RedisStoreError::InvalidUrl)?;
        let conn = tokio::time::timeout(
            DEFAULT_REDIS_TIMEOUT * 4,
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| RedisStoreError::Unreachable("connect timed out".into()))?
        .map_err(|e| RedisStoreError::Unreachable(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: "daas:dpop:".into(),
            timeout: DEFAULT_REDIS_TIMEOUT,
        })
    }

    /// Uses `prefix` before every key (e.g. to share one Redis between deployments).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each round trip.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl ReplayStore for RedisReplayStore {
    fn insert_if_absent<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayCacheError>> {
        Box::pin(async move {
            // At least 1 ms: `PX 0` is an error, and a key that is already expired by our clock
            // still must not be accepted twice in the same instant.
            let ttl_ms = expires_at
                .saturating_sub(now)
                .clamp(1, i64::MAX / 1000)
                .saturating_mul(1000);
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("{}{}", self.prefix, key.as_str()))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms);
            let answer: Result<Option<String>, _> =
                tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
                    .await
                    .map_err(|_| ReplayCacheError::Unavailable)?;
            match answer {
                Ok(Some(ok)) if ok == "OK" => Ok(true),
                Ok(None) => Ok(false),
                Ok(Some(_)) => {
                    tracing::warn!("redis replay store: unexpected answer to SET NX");
                    Err(ReplayCacheError::Unavailable)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis replay store unavailable");
                    Err(ReplayCacheError::Unavailable)
                }
            }
        })
    }
}
