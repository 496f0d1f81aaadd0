//! A cache of verified access tokens, for resource servers.
//!
//! A DPoP-bound token is long-lived and presented again with every request, each time with a
//! fresh proof. Its signature does not change between requests, so verifying it again is
//! wasted work: the whole cost of a request becomes two signature verifications where one
//! (the proof's) is necessary. This cache remembers a token's verification by the SHA-256 of
//! its exact bytes — the `ath` its proofs carry anyway — so a repeated token costs a hash
//! and a map lookup (Envoy's `jwt_authn` filter caches verified tokens for the same reason).
//!
//! What a hit still checks, every time (see [`crate::verify_access_token_cached`]):
//! * the issuer key that verified the token is still in the caller's key set, as the same
//!   public key: removing or replacing a key invalidates every token it verified;
//! * issuer, audience, `exp`, `nbf` and `iat` against this request's expectations and clock.
//!
//! What it cannot change: the header and claims are those of the exact bytes verified before
//! (a different token has a different hash; finding two tokens with one SHA-256 is infeasible).
//! Only verified tokens are inserted, so garbage cannot fill it; it is bounded, and a full cache
//! first drops expired tokens, then arbitrary ones — a miss only costs a verification.
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::access::VerifiedAccessToken;
use crate::jwk::{KeySet, PublicJwk};

/// Tokens a [`VerifiedTokenCache::default`] remembers.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 16 * 1024;

struct CachedToken {
    token: VerifiedAccessToken,
    /// The public key that verified the token, to notice a key removed or replaced under its kid.
    key: PublicJwk,
}

/// Verified access tokens by `ath` (SHA-256 of the token), bounded. Share one per resource
/// server (it is `Sync`); see the [module documentation](self) for what a hit still checks.
pub struct VerifiedTokenCache {
    entries: Mutex<HashMap<String, CachedToken>>,
    capacity: usize,
}

impl core::fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for VerifiedTokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_TOKEN_CACHE_CAPACITY)
    }
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` tokens (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many tokens are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every token.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedToken>> {
        // A panic while holding the lock leaves a map of complete entries: still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token verified earlier whose `ath` is `ath`, if the key that verified it is still
    /// in `keys` unchanged. Expectations and times are the caller's to check again.
    pub(crate) fn get(&self, ath: &str, keys: &KeySet) -> Option<VerifiedAccessToken> {
        let mut entries = self.lock();
        let entry = entries.get(ath)?;
        let still_trusted = keys
            .get(entry.token.kid())
            .is_some_and(|key| key.jwk() == &entry.key);
        if still_trusted {
            Some(entry.token.clone())
        } else {
            entries.remove(ath);
            None
        }
    }

    /// Remembers `token`, just verified with `keys`.
    pub(crate) fn insert(&self, token: &VerifiedAccessToken, keys: &KeySet, now: i64) {
        let Some(key) = keys.get(token.kid()) else {
            return;
        };
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, cached| cached.token.claims().exp > now);
            // Still full of live tokens: drop an eighth, so the sweep above is not paid again on
            // every insert.
            let keep = self.capacity - self.capacity / 8 - 1;
            if entries.len() > keep {
                let excess = entries.len() - keep;
                let victims: Vec<String> = entries.keys().take(excess).cloned().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(
            token.access_token_hash().to_owned(),
            CachedToken {
                token: token.clone(),
                key: key.jwk().clone(),
            },
        );
    }
}
