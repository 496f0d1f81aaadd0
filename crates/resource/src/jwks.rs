//! JWK sets (RFC 7517 §5) into [`KeySet`]s: the issuer's published keys, or the status keys;
//! and [`RemoteKeySet`], an issuer's JWK set fetched from its URL and kept fresh, so that a
//! resource server follows the issuer's key rotations without a restart.

use std::sync::{Arc, Mutex, PoisonError};

use daas_token::{KeySet, PublicJwk, parse_strict_json_object};

use crate::BoxFuture;
use crate::status::FetchError;

/// A JWK set could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not a JSON object with a `keys` array, or it has duplicate JSON keys.
    #[error("jwk set is not a json object with a keys array")]
    Malformed,
    /// A key has no string `kid`.
    #[error("jwk set has a key without a kid")]
    MissingKid,
    /// A key is not an acceptable public Ed25519 or P-256 key, or its `kid` is repeated.
    #[error("jwk set has an unusable key: {0}")]
    Key(daas_token::KeyError),
}

/// Parses `{"keys": [...]}` strictly: every key must be a public Ed25519 or P-256 JWK with a
/// `kid`, pinned to its one algorithm.
///
/// # Errors
/// [`JwksError`] for the first problem; nothing is accepted partially.
pub fn key_set_from_jwks(bytes: &[u8]) -> Result<KeySet, JwksError> {
    let map = parse_strict_json_object(bytes).map_err(|_| JwksError::Malformed)?;
    let keys = map
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or(JwksError::Malformed)?;
    let mut set = KeySet::new();
    for key in keys {
        let kid = key
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .ok_or(JwksError::MissingKid)?;
        let text = serde_json::to_vec(key).map_err(|_| JwksError::Malformed)?;
        let verifying = PublicJwk::from_json(&text)
            .and_then(|jwk| jwk.verifying_key())
            .map_err(JwksError::Key)?;
        set.insert(kid, verifying).map_err(JwksError::Key)?;
    }
    Ok(set)
}

/// Where JWK sets come from; injectable so tests can rotate keys and simulate outages.
/// [`crate::HttpStatusFetcher`] implements it over HTTPS.
pub trait JwksFetcher: Send + Sync + core::fmt::Debug {
    /// Fetches the JWK set document at `url`.
    ///
    /// # Errors
    /// [`FetchError`].
    fn fetch_jwks<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>>;
}

/// Fetching or parsing a remote JWK set failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteJwksError {
    /// The document could not be fetched.
    #[error("cannot fetch the jwk set: {0}")]
    Fetch(FetchError),
    /// The document is not an acceptable JWK set.
    #[error(transparent)]
    Jwks(JwksError),
}

/// Default: fetch the set again after this long, even if nothing asked for a new key.
pub const DEFAULT_JWKS_MAX_AGE_SECS: i64 = 300;
/// Default: at most one fetch for an unknown `kid` per this many seconds.
pub const DEFAULT_JWKS_MIN_GAP_SECS: i64 = 30;

#[derive(Debug)]
struct Fetched {
    keys: Arc<KeySet>,
    /// When `keys` was fetched.
    fetched_at: i64,
    /// When a fetch was last tried (successful or not).
    tried_at: i64,
}

/// An issuer's JWK set at a URL, fetched at start and again
///
/// * every [`DEFAULT_JWKS_MAX_AGE_SECS`] (on the next request after that), and
/// * when a token names a `kid` the set does not hold (a new key after a rotation), at most
///   once per [`DEFAULT_JWKS_MIN_GAP_SECS`]: a stream of tokens with invented `kid`s cannot
///   turn the resource server into a load generator against the issuer.
///
/// A failed refresh keeps the last good set (and is logged): tokens signed by keys it holds
/// keep working through an issuer outage, new keys arrive once it is back. One fetch runs at a
/// time. Give it to [`crate::DpopConfig::with_remote_keys`].
#[derive(Debug)]
pub struct RemoteKeySet {
    url: Arc<str>,
    fetcher: Arc<dyn JwksFetcher>,
    /// Shared with the task a refresh runs in, which outlives the request that started it.
    state: Arc<Mutex<Fetched>>,
    refresh: Arc<tokio::sync::Mutex<()>>,
    max_age_secs: i64,
    min_gap_secs: i64,
}

impl RemoteKeySet {
    /// Fetches the set at `url` now; it must be usable.
    ///
    /// # Errors
    /// [`RemoteJwksError`] if the first fetch fails or the set is not acceptable.
    pub async fn fetch(
        url: impl Into<String>,
        fetcher: Arc<dyn JwksFetcher>,
        now: i64,
    ) -> Result<Self, RemoteJwksError> {
        let url: Arc<str> = url.into().into();
        let keys = Self::load(&url, fetcher.as_ref()).await?;
        Ok(Self {
            url,
            fetcher,
            state: Arc::new(Mutex::new(Fetched {
                keys: Arc::new(keys),
                fetched_at: now,
                tried_at: now,
            })),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
            max_age_secs: DEFAULT_JWKS_MAX_AGE_SECS,
            min_gap_secs: DEFAULT_JWKS_MIN_GAP_SECS,
        })
    }

    /// Sets how long a fetched set is used before it is fetched again, and the least time
    /// between two fetches for unknown `kid`s (both at least 1 s).
    #[must_use]
    pub fn with_intervals(mut self, max_age_secs: u32, min_gap_secs: u32) -> Self {
        self.max_age_secs = i64::from(max_age_secs.max(1));
        self.min_gap_secs = i64::from(min_gap_secs.max(1));
        self
    }

    async fn load(url: &str, fetcher: &dyn JwksFetcher) -> Result<KeySet, RemoteJwksError> {
        let bytes = fetcher
            .fetch_jwks(url)
            .await
            .map_err(RemoteJwksError::Fetch)?;
        key_set_from_jwks(&bytes).map_err(RemoteJwksError::Jwks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fetched> {
        lock_state(&self.state)
    }

    /// The set as last fetched, without fetching.
    #[must_use]
    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.lock().keys)
    }

    /// The set to verify with at `now`: fetched again first if it is older than the max age.
    pub(crate) async fn keys(&self, now: i64) -> Arc<KeySet> {
        let due = {
            let state = self.lock();
            now >= state.fetched_at.saturating_add(self.max_age_secs)
                && now
                    >= state
                        .tried_at
                        .saturating_add(self.min_gap_secs.min(self.max_age_secs))
        };
        if due {
            self.refresh(now, "max age reached").await;
        }
        self.current()
    }

    /// After a token named a `kid` not in the set: fetches the set again unless that was done
    /// less than the min gap ago; returns the new set if one was fetched.
    pub(crate) async fn refresh_for_unknown_kid(&self, now: i64) -> Option<Arc<KeySet>> {
        let allowed = now >= self.lock().tried_at.saturating_add(self.min_gap_secs);
        if allowed && self.refresh(now, "unknown kid").await {
            Some(self.current())
        } else {
            None
        }
    }

    /// Fetches once (single flight); whether a new set was installed.
    async fn refresh(&self, now: i64, why: &'static str) -> bool {
        let tried_before = self.lock().tried_at;
        let single_flight = Arc::clone(&self.refresh).lock_owned().await;
        if self.lock().tried_at != tried_before {
            // Another request fetched while this one waited: use its result.
            return true;
        }
        self.lock().tried_at = now;
        // The fetch runs in a task of its own, holding the single-flight lock: a request
        // dropped mid-fetch (its client disconnected) must not cancel it, or a client that
        // disconnects right after triggering each refresh would keep the set from ever being
        // replaced (a retired key trusted, a new one unknown) while `tried_at` says it was.
        let (url, fetcher, state) = (
            Arc::clone(&self.url),
            Arc::clone(&self.fetcher),
            Arc::clone(&self.state),
        );
        let fetch = tokio::spawn(async move {
            let _single_flight = single_flight;
            match Self::load(&url, fetcher.as_ref()).await {
                Ok(keys) => {
                    let mut state = lock_state(&state);
                    state.keys = Arc::new(keys);
                    state.fetched_at = now;
                    true
                }
                Err(e) => {
                    tracing::warn!(url = %url, why, error = %e, "issuer jwk set refresh failed; keeping the last good set");
                    false
                }
            }
        });
        // A panicking fetcher installed nothing.
        fetch.await.unwrap_or(false)
    }
}

fn lock_state(state: &Mutex<Fetched>) -> std::sync::MutexGuard<'_, Fetched> {
    // The state is replaced field by field under the lock; every value is usable alone.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use daas_token::{Alg, SigningKey};

    #[test]
    fn parses_and_refuses() {
        let ed = SigningKey::generate(Alg::EdDsa).unwrap();
        let es = SigningKey::generate(Alg::Es256).unwrap();
        let with_kid = |key: &SigningKey, kid: &str| {
            let mut value: serde_json::Value =
                serde_json::from_str(&key.public_jwk().to_json()).unwrap();
            value["kid"] = kid.into();
            value
        };
        let jwks = serde_json::json!({"keys": [with_kid(&ed, "a"), with_kid(&es, "b")]});
        let set = key_set_from_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("a").is_some() && set.get("b").is_some());

        let dup = serde_json::json!({"keys": [with_kid(&ed, "a"), with_kid(&es, "a")]});
        assert!(matches!(
            key_set_from_jwks(dup.to_string().as_bytes()),
            Err(JwksError::Key(_))
        ));
        let mut no_kid = with_kid(&ed, "a");
        no_kid.as_object_mut().unwrap().remove("kid");
        let missing = serde_json::json!({"keys": [no_kid]});
        assert_eq!(
            key_set_from_jwks(missing.to_string().as_bytes()).err(),
            Some(JwksError::MissingKid)
        );
        let mut private = with_kid(&ed, "a");
        private["d"] = "AAAA".into();
        assert!(matches!(
            key_set_from_jwks(
                serde_json::json!({"keys": [private]})
                    .to_string()
                    .as_bytes()
            ),
            Err(JwksError::Key(_))
        ));
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"keys":{}}"#,
            br#"{"keys":[],"keys":[]}"#,
        ] {
            assert_eq!(key_set_from_jwks(bad).err(), Some(JwksError::Malformed));
        }
    }

    /// A JWK set whose fetches wait until the test lets one through.
    #[derive(Debug)]
    struct GatedJwks {
        document: std::sync::Mutex<String>,
        gate: tokio::sync::Semaphore,
    }

    impl JwksFetcher for GatedJwks {
        fn fetch_jwks<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
            Box::pin(async move {
                self.gate.acquire().await.unwrap().forget();
                Ok(self.document.lock().unwrap().clone().into_bytes())
            })
        }
    }

    fn jwks_of(keys: &[(&str, &SigningKey)]) -> String {
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|(kid, key)| {
                let mut jwk: serde_json::Value =
                    serde_json::from_str(&key.public_jwk().to_json()).unwrap();
                jwk["kid"] = (*kid).into();
                jwk
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// A client can start a refresh (a token with an unknown kid, or the first request after
    /// the max age) and disconnect at once, dropping its request. The fetch must still complete
    /// and install the set: otherwise, with `tried_at` already moved, nothing fetches for a min
    /// gap, and a client doing this every gap keeps a retired key trusted and new keys unknown.
    #[tokio::test]
    async fn a_refresh_whose_request_is_dropped_still_installs_the_new_set() {
        let old = SigningKey::generate(Alg::EdDsa).unwrap();
        let new = SigningKey::generate(Alg::Es256).unwrap();
        let fetcher = Arc::new(GatedJwks {
            document: std::sync::Mutex::new(jwks_of(&[("old", &old)])),
            gate: tokio::sync::Semaphore::new(1),
        });
        let remote =
            RemoteKeySet::fetch("https://issuer.example/jwks", Arc::clone(&fetcher) as _, 0)
                .await
                .unwrap()
                .with_intervals(300, 30);
        // The issuer rotates the old key out.
        *fetcher.document.lock().unwrap() = jwks_of(&[("new", &new)]);

        // The request that triggers the refresh goes away while the fetch is in flight.
        let dropped =
            tokio::time::timeout(Duration::ZERO, remote.refresh_for_unknown_kid(31)).await;
        assert!(dropped.is_err(), "the fetch was held at the gate");
        fetcher.gate.add_permits(1);
        for _ in 0..100 {
            if remote.current().get("new").is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let keys = remote.current();
        assert!(keys.get("new").is_some(), "the new key was installed");
        assert!(keys.get("old").is_none(), "the retired key is gone");
        // And later requests see it without another fetch (none is allowed within the gap).
        assert!(remote.refresh_for_unknown_kid(32).await.is_none());
    }
}
