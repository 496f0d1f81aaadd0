//! Replay protection for DPoP proofs (RFC 9449 §11.1, DESIGN.md §5: "`jti` inserted atomically
//! into a replay cache for the proof window").
//!
//! The cache stores a [`ReplayKey`] per accepted proof until the proof could no longer pass the
//! `iat` check. Verification never hands out a [`crate::VerifiedProof`] directly: it returns a
//! [`PendingReplayCheck`], which yields its value only once a cache says the key is fresh. The
//! insert is the last step, so a proof that fails any other check never burns its `jti`.
//!
//! The [`ReplayCache`] trait is synchronous, for in-process caches. A server with a shared,
//! asynchronous store (Redis `SET key 1 NX EXAT expires_at`) does the insert itself with
//! [`PendingReplayCheck::replay_key`] and [`PendingReplayCheck::expires_at`] and hands the
//! answer to [`PendingReplayCheck::finish`].

use aws_lc_rs::digest;
use core::fmt;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Domain separation for replay keys. The token crate does not depend on `daas-crypto`, whose
/// `labels.rs` holds the other labels; this one lives here and must stay unique across daas.
pub const REPLAY_KEY_LABEL: &[u8] = b"daas dpop replay v1";

/// The cache key of one proof: lowercase hex of
/// `SHA-256(label || 0x00 || len(jkt) as u32 BE || jkt || jti)`, always 64 characters, so keys in
/// a shared store have a fixed size whatever the client sends, and carry no client text.
///
/// The key includes the proof key's thumbprint: `jti` values are the client's choice and need
/// only be unique per key (RFC 9449 §4.2), so one client cannot block another's `jti`. It is not
/// made from the proof's bytes: an ES256 signature can be re-spelled as `(r, n - s)`, and that
/// second valid spelling must still count as the same proof.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// Derives the key for a proof made by the key with thumbprint `jkt`, carrying `jti`.
    #[must_use]
    pub fn derive(jkt: &str, jti: &str) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(REPLAY_KEY_LABEL);
        ctx.update(&[0]);
        // The length prefix keeps (jkt, jti) pairs from running into each other. `jkt` is a
        // thumbprint (43 characters) in practice; the saturation is for the type, not for use.
        ctx.update(&u32::try_from(jkt.len()).unwrap_or(u32::MAX).to_be_bytes());
        ctx.update(jkt.as_bytes());
        ctx.update(jti.as_bytes());
        let digest = ctx.finish();
        let mut hex = String::with_capacity(64);
        for byte in digest.as_ref() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }

    /// The 64 lowercase hex characters, for use as a store key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReplayKey").field(&self.0).finish()
    }
}

/// The replay cache could not answer. Verification then fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayCacheError {
    /// Every slot holds an unexpired entry; accepting the proof unrecorded would allow a replay.
    #[error("replay cache is full")]
    Full,
    /// A shared store is unreachable or failed.
    #[error("replay cache is unavailable")]
    Unavailable,
}

/// A set of proof keys with expiry, for replay detection.
pub trait ReplayCache {
    /// Atomically records `key` until `expires_at` (Unix seconds; the entry is live while
    /// `now < expires_at`) unless a live entry already exists.
    ///
    /// Returns `Ok(true)` if the key was fresh and is now recorded, `Ok(false)` if it is a
    /// replay. Two concurrent calls with the same key must not both return `Ok(true)`.
    ///
    /// # Errors
    /// [`ReplayCacheError`] when the answer is unknown; the caller must reject the proof.
    fn insert_if_absent(
        &self,
        key: &ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayCacheError>;
}

/// A verified value held back until its proof has passed the replay check.
#[must_use = "the value is only available after the replay check"]
#[derive(Debug)]
pub struct PendingReplayCheck<T> {
    value: T,
    key: ReplayKey,
    expires_at: i64,
}

impl<T> PendingReplayCheck<T> {
    pub(crate) fn new(value: T, key: ReplayKey, expires_at: i64) -> Self {
        Self {
            value,
            key,
            expires_at,
        }
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> PendingReplayCheck<U> {
        PendingReplayCheck {
            value: f(self.value),
            key: self.key,
            expires_at: self.expires_at,
        }
    }

    /// The key to record.
    #[must_use]
    pub fn replay_key(&self) -> &ReplayKey {
        &self.key
    }

    /// When the record may be dropped (Unix seconds): after this the proof fails the `iat`
    /// check anyway.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Records the key in `cache` and releases the value if it was fresh.
    ///
    /// # Errors
    /// [`crate::DpopError::Replayed`] for a replay, [`crate::DpopError::ReplayCache`] if the
    /// cache cannot answer.
    pub fn check(
        self,
        cache: &(impl ReplayCache + ?Sized),
        now: i64,
    ) -> Result<T, crate::DpopError> {
        let fresh = cache.insert_if_absent(&self.key, self.expires_at, now)?;
        self.finish(fresh)
    }

    /// Releases the value given the answer of an external atomic insert of
    /// [`PendingReplayCheck::replay_key`] (`true`: it was absent and is now recorded).
    ///
    /// # Errors
    /// [`crate::DpopError::Replayed`] if `fresh` is false.
    pub fn finish(self, fresh: bool) -> Result<T, crate::DpopError> {
        if fresh {
            Ok(self.value)
        } else {
            Err(crate::DpopError::Replayed)
        }
    }
}

/// An in-process [`ReplayCache`]: one mutex around a map, bounded to a fixed number of entries.
///
/// When full, expired entries are purged; if none are, the insert fails with
/// [`ReplayCacheError::Full`] (fail closed) and no rescan happens until the earliest entry can
/// have expired, so a flood costs one comparison per request, not a scan.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<ReplayKey, i64>,
    /// No entry expires before this; `i64::MIN` when unknown.
    earliest_expiry: i64,
}

impl MemoryReplayCache {
    /// A cache holding at most `capacity` live entries. Size it for the peak proof rate times
    /// the proof window (e.g. 10 000 requests/s × 65 s).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State {
                entries: HashMap::new(),
                earliest_expiry: i64::MIN,
            }),
        }
    }

    /// Number of entries held, expired or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entries are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The map is consistent after every statement that mutates it, so a panic elsewhere
        // while the lock was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReplayCache for MemoryReplayCache {
    fn insert_if_absent(
        &self,
        key: &ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayCacheError> {
        let mut state = self.lock();
        if let Some(existing) = state.entries.get_mut(key) {
            if *existing > now {
                return Ok(false);
            }
            *existing = expires_at;
            state.earliest_expiry = state.earliest_expiry.min(expires_at);
            return Ok(true);
        }
        if state.entries.len() >= self.capacity {
            if now < state.earliest_expiry {
                return Err(ReplayCacheError::Full);
            }
            state.entries.retain(|_, expiry| *expiry > now);
            state.earliest_expiry = state.entries.values().copied().min().unwrap_or(i64::MAX);
            if state.entries.len() >= self.capacity {
                return Err(ReplayCacheError::Full);
            }
        }
        state.entries.insert(key.clone(), expires_at);
        state.earliest_expiry = state.earliest_expiry.min(expires_at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn key(jti: &str) -> ReplayKey {
        ReplayKey::derive("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", jti)
    }

    #[test]
    fn keys_are_fixed_length_and_separate_fields() {
        let k = key("a");
        assert_eq!(k.as_str().len(), 64);
        assert!(k.as_str().bytes().all(|b| HEX.contains(&b)));
        assert_eq!(k, key("a"));
        assert_ne!(k, key("b"));
        assert_eq!(key(&"x".repeat(10_000)).as_str().len(), 64);
        // The boundary between jkt and jti is fixed by the length prefix.
        assert_ne!(ReplayKey::derive("ab", "c"), ReplayKey::derive("a", "bc"));
        assert_ne!(ReplayKey::derive("", "abc"), ReplayKey::derive("abc", ""));
        // Pinned: servers sharing a store must derive the same key.
        let expected = {
            let mut input = REPLAY_KEY_LABEL.to_vec();
            input.extend_from_slice(&[0, 0, 0, 0, 1, b'k', b'j']);
            hex::encode(digest::digest(&digest::SHA256, &input))
        };
        assert_eq!(ReplayKey::derive("k", "j").as_str(), expected);
    }

    #[test]
    fn sequential_replay_is_detected_until_expiry() {
        let cache = MemoryReplayCache::new(8);
        assert!(cache.is_empty());
        assert_eq!(cache.insert_if_absent(&key("a"), 160, 100), Ok(true));
        assert_eq!(cache.insert_if_absent(&key("a"), 160, 100), Ok(false));
        assert_eq!(cache.insert_if_absent(&key("a"), 170, 159), Ok(false));
        assert_eq!(cache.insert_if_absent(&key("b"), 160, 100), Ok(true));
        // Expired entries no longer count.
        assert_eq!(cache.insert_if_absent(&key("a"), 220, 160), Ok(true));
        assert_eq!(cache.insert_if_absent(&key("a"), 220, 161), Ok(false));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn full_cache_fails_closed_and_evicts_expired_first() {
        let cache = MemoryReplayCache::new(2);
        assert_eq!(cache.insert_if_absent(&key("a"), 110, 100), Ok(true));
        assert_eq!(cache.insert_if_absent(&key("b"), 120, 100), Ok(true));
        assert_eq!(
            cache.insert_if_absent(&key("c"), 130, 105),
            Err(ReplayCacheError::Full)
        );
        // A replay is still recognised when full.
        assert_eq!(cache.insert_if_absent(&key("a"), 130, 105), Ok(false));
        // Once "a" expired, there is room again; "b" is kept.
        assert_eq!(cache.insert_if_absent(&key("c"), 130, 110), Ok(true));
        assert_eq!(cache.insert_if_absent(&key("b"), 130, 110), Ok(false));
        assert_eq!(
            cache.insert_if_absent(&key("d"), 130, 111),
            Err(ReplayCacheError::Full)
        );
        assert_eq!(cache.insert_if_absent(&key("d"), 140, 130), Ok(true));
        assert_eq!(
            MemoryReplayCache::new(0).insert_if_absent(&key("a"), 1, 0),
            Err(ReplayCacheError::Full)
        );
    }

    #[test]
    fn concurrent_inserts_of_one_key_admit_exactly_one() {
        const THREADS: usize = 16;
        for round in 0..20 {
            let cache = Arc::new(MemoryReplayCache::new(1024));
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let cache = Arc::clone(&cache);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        cache.insert_if_absent(&key(&format!("jti-{round}")), 200, 100)
                    })
                })
                .collect();
            let fresh = handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .filter(|fresh| *fresh)
                .count();
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    #[test]
    fn pending_check_releases_only_fresh() {
        let cache = MemoryReplayCache::new(4);
        let pending = PendingReplayCheck::new("v", key("p"), 200);
        assert_eq!(pending.expires_at(), 200);
        assert_eq!(pending.replay_key(), &key("p"));
        assert_eq!(pending.check(&cache, 100).unwrap(), "v");
        let again = PendingReplayCheck::new("v", key("p"), 200);
        assert_eq!(again.check(&cache, 100), Err(crate::DpopError::Replayed));
        assert_eq!(
            PendingReplayCheck::new("v", key("q"), 200).check(&MemoryReplayCache::new(0), 100),
            Err(crate::DpopError::ReplayCache(ReplayCacheError::Full))
        );
        assert_eq!(
            PendingReplayCheck::new(1, key("r"), 2).finish(false),
            Err(crate::DpopError::Replayed)
        );
        assert_eq!(PendingReplayCheck::new(1, key("r"), 2).finish(true), Ok(1));
    }
}
