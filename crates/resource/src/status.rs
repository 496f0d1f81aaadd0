//! Token status checks for a resource server: fetch the issuer's status list, verify it, cache
//! it for its `ttl`, and fail closed when it cannot be kept fresh.
//!
//! Rules (docs/tokens.md, "Status at the resource"):
//!
//! * The list URI comes from the verified access token, but is fetched only if it lies under
//!   one of the configured origins ([`StatusChecker::new`]); a token naming any other URL is
//!   rejected (`invalid_token`) and nothing is fetched. No redirects are followed.
//! * The list is verified with the status keys ([`daas_token::verify_status_list`]), which are
//!   not the issuer's keys, and its `sub` must equal the URI.
//! * A verified list is used for its `ttl` (or [`DEFAULT_TTL_SECS`] without one, at most
//!   [`MAX_TTL_SECS`]) from when it was fetched. After that it is fetched again; if that fails
//!   the old list is still used for the grace period, then no more: every request whose token
//!   points into it is refused with 503 until a fresh list arrives. A list past its own `exp`
//!   is never used.
//! * After a failed fetch the next attempt waits [`RETRY_SECS`], so an unreachable source does
//!   not add a timeout to every request; one fetch per URI runs at a time.

use crate::BoxFuture;
use core::fmt;
use daas_token::status::MAX_STATUS_LIST_TOKEN_LEN;
use daas_token::{
    KeySet, StatusError, StatusListRef, TokenStatus, VerifiedStatusList, normalize_htu,
    verify_status_list,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Cache lifetime of a list without `ttl`.
pub const DEFAULT_TTL_SECS: u64 = 300;
/// Longest cache lifetime, whatever the list's `ttl` says.
pub const MAX_TTL_SECS: u64 = 3600;
/// Default grace after `ttl` during which a list that cannot be refreshed is still used.
pub const DEFAULT_GRACE_SECS: u64 = 60;
/// Wait after a failed fetch before the next attempt.
pub const RETRY_SECS: i64 = 5;

/// Fetching a status list failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No answer (connection refused, timeout, TLS failure).
    #[error("status source is unreachable")]
    Unreachable,
    /// An answer other than 200.
    #[error("status source answered http {0}")]
    HttpStatus(u16),
    /// The body exceeds the largest status list token.
    #[error("status response is too large")]
    TooLarge,
    /// The body is not UTF-8.
    #[error("status response is not text")]
    NotText,
}

/// Where status list tokens come from; injectable so tests can simulate outages.
pub trait StatusFetcher: Send + Sync + fmt::Debug {
    /// Fetches the status list token published at `uri` (already allow-listed).
    ///
    /// # Errors
    /// [`FetchError`].
    fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>>;
}

/// Fetches status lists over HTTP(S) with `reqwest`: no redirects, a timeout, and a body cap
/// of [`MAX_STATUS_LIST_TOKEN_LEN`].
#[derive(Debug, Clone)]
pub struct HttpStatusFetcher {
    client: reqwest::Client,
}

impl HttpStatusFetcher {
    /// A fetcher whose every request is bounded by `timeout`.
    ///
    /// # Errors
    /// [`FetchError::Unreachable`] if the HTTP client cannot be built (no TLS backend).
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|_| FetchError::Unreachable)?;
        Ok(Self { client })
    }
}

impl HttpStatusFetcher {
    /// As [`HttpStatusFetcher::new`], trusting only the CA certificates in `ca_pem` (e.g. a
    /// daas server's generated CA) for HTTPS.
    ///
    /// # Errors
    /// [`FetchError::Unreachable`] if `ca_pem` holds no usable certificate or the client cannot
    /// be built.
    pub fn with_ca(timeout: Duration, ca_pem: &[u8]) -> Result<Self, FetchError> {
        let roots =
            reqwest::Certificate::from_pem_bundle(ca_pem).map_err(|_| FetchError::Unreachable)?;
        if roots.is_empty() {
            return Err(FetchError::Unreachable);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .tls_certs_only(roots)
            .build()
            .map_err(|_| FetchError::Unreachable)?;
        Ok(Self { client })
    }
}

impl HttpStatusFetcher {
    /// GET `uri` with `accept`: 200 only, no redirects, at most `limit` bytes.
    async fn get_capped(
        &self,
        uri: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let mut response = self
            .client
            .get(uri)
            .header(http::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|_| FetchError::Unreachable)?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::HttpStatus(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| FetchError::Unreachable)?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl StatusFetcher for HttpStatusFetcher {
    fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async move {
            let body = self
                .get_capped(uri, "application/statuslist+jwt", MAX_STATUS_LIST_TOKEN_LEN)
                .await?;
            let text = String::from_utf8(body).map_err(|_| FetchError::NotText)?;
            Ok(text.trim_end().to_owned())
        })
    }
}

/// The largest JWK set document fetched.
const MAX_JWKS_LEN: usize = 64 * 1024;

impl crate::jwks::JwksFetcher for HttpStatusFetcher {
    fn fetch_jwks<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(self.get_capped(
            url,
            "application/jwk-set+json, application/json",
            MAX_JWKS_LEN,
        ))
    }
}

/// The status of a token could not be established as valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusCheckError {
    // --- peer ---
    /// The token's status URI is not under an allowed origin (or is not a URI at all).
    #[error("status list uri is not under an allowed origin")]
    UntrustedUri,
    /// The token's index is past the end of its list.
    #[error("status list index is out of range")]
    IndexOutOfRange,
    // --- internal ---
    /// No list fresh enough to decide: fetching or verifying failed and the cached copy (if
    /// any) is past `ttl + grace` or its `exp`. The reason is for the log.
    #[error("token status is unavailable: {0}")]
    Unavailable(String),
}

impl StatusCheckError {
    /// Who caused the error.
    #[must_use]
    pub const fn fault(&self) -> daas_token::Fault {
        match self {
            Self::UntrustedUri | Self::IndexOutOfRange => daas_token::Fault::Peer,
            Self::Unavailable(_) => daas_token::Fault::Internal,
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    list: Option<Arc<VerifiedStatusList>>,
    fetched_at: i64,
    last_failure: Option<i64>,
}

/// Fetches, verifies and caches status lists; see the module documentation for the rules.
pub struct StatusChecker {
    keys: KeySet,
    origins: Vec<String>,
    fetcher: Arc<dyn StatusFetcher>,
    grace_secs: u64,
    max_age_secs: u64,
    cache: Mutex<HashMap<String, Entry>>,
    fetch_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for StatusChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusChecker")
            .field("origins", &self.origins)
            .field("keys", &self.keys.len())
            .field("fetcher", &self.fetcher)
            .field("grace_secs", &self.grace_secs)
            .finish_non_exhaustive()
    }
}

/// The origin of an absolute `http(s)` URI in normal form (`https://host[:port]`).
pub(crate) fn normalized_origin(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#']) {
        return None;
    }
    let normal = normalize_htu(&format!("{origin}/")).ok()?;
    normal.strip_suffix('/').map(str::to_owned)
}

impl StatusChecker {
    /// A checker that verifies lists with `status_keys` and fetches them only from URIs under
    /// `allowed_origins` (each `scheme://host[:port]`, no path), through `fetcher`.
    ///
    /// # Errors
    /// [`crate::ConfigError::InvalidOrigin`] for an origin that is not of that form, or none.
    pub fn new<'o>(
        status_keys: KeySet,
        allowed_origins: impl IntoIterator<Item = &'o str>,
        fetcher: Arc<dyn StatusFetcher>,
    ) -> Result<Self, crate::ConfigError> {
        let origins = allowed_origins
            .into_iter()
            .map(|origin| {
                normalized_origin(origin).ok_or(crate::ConfigError::InvalidOrigin(
                    "status origin is not scheme://host[:port]",
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(crate::ConfigError::InvalidOrigin(
                "no status origin is allowed",
            ));
        }
        Ok(Self {
            keys: status_keys,
            origins,
            fetcher,
            grace_secs: DEFAULT_GRACE_SECS,
            max_age_secs: MAX_TTL_SECS,
            cache: Mutex::new(HashMap::new()),
            fetch_locks: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches a list again after at most `secs`, even if its `ttl` allows caching it longer
    /// (the `ttl` is an upper bound: a relying party that wants revocations to reach it
    /// sooner may ask more often). At least 1 s.
    #[must_use]
    pub fn with_max_age(mut self, secs: u64) -> Self {
        self.max_age_secs = secs.clamp(1, MAX_TTL_SECS);
        self
    }

    /// How long past its `ttl` a list that cannot be refreshed is still used.
    #[must_use]
    pub fn with_grace(mut self, grace_secs: u64) -> Self {
        self.grace_secs = grace_secs;
        self
    }

    fn allowed(&self, uri: &str) -> bool {
        normalize_htu(uri).is_ok_and(|normal| {
            self.origins.iter().any(|origin| {
                normal
                    .strip_prefix(origin.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        })
    }

    /// The status of the token referenced by `status`, at `now`.
    ///
    /// # Errors
    /// [`StatusCheckError`]: untrusted URI or index out of range (the token's fault), or no
    /// usable list (fail closed).
    pub async fn check(
        &self,
        status: &StatusListRef,
        now: i64,
    ) -> Result<TokenStatus, StatusCheckError> {
        if !self.allowed(&status.uri) {
            return Err(StatusCheckError::UntrustedUri);
        }
        let list = match self.fresh(&status.uri, now) {
            Some(list) => list,
            None => self.refresh(&status.uri, now).await?,
        };
        list.status_of(status.idx)
            .map_err(|_| StatusCheckError::IndexOutOfRange)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Entries are replaced whole; a panic elsewhere cannot leave one half-written.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a fetched list is used before it is fetched again: its `ttl`, capped by ours.
    fn ttl_of(&self, list: &VerifiedStatusList) -> i64 {
        let ttl = list
            .ttl()
            .unwrap_or(DEFAULT_TTL_SECS)
            .min(MAX_TTL_SECS)
            .min(self.max_age_secs);
        i64::try_from(ttl).unwrap_or(i64::MAX)
    }

    fn not_expired(list: &VerifiedStatusList, now: i64) -> bool {
        list.exp().is_none_or(|exp| now < exp)
    }

    /// The cached list if it is within its ttl.
    fn fresh(&self, uri: &str, now: i64) -> Option<Arc<VerifiedStatusList>> {
        let cache = self.lock_cache();
        let entry = cache.get(uri)?;
        let list = entry.list.as_ref()?;
        (now < entry.fetched_at.saturating_add(self.ttl_of(list)) && Self::not_expired(list, now))
            .then(|| Arc::clone(list))
    }

    /// The cached list if it is within ttl + grace, with the reason it is not fresher.
    fn usable(
        &self,
        uri: &str,
        now: i64,
        reason: &str,
    ) -> Result<Arc<VerifiedStatusList>, StatusCheckError> {
        let grace = i64::try_from(self.grace_secs).unwrap_or(i64::MAX);
        let cache = self.lock_cache();
        match cache
            .get(uri)
            .and_then(|entry| entry.list.as_ref().map(|list| (entry, list)))
        {
            Some((entry, list))
                if now
                    < entry
                        .fetched_at
                        .saturating_add(self.ttl_of(list))
                        .saturating_add(grace)
                    && Self::not_expired(list, now) =>
            {
                tracing::warn!(
                    uri,
                    reason,
                    "using a stale status list within its grace period"
                );
                Ok(Arc::clone(list))
            }
            _ => Err(StatusCheckError::Unavailable(reason.to_owned())),
        }
    }

    async fn refresh(
        &self,
        uri: &str,
        now: i64,
    ) -> Result<Arc<VerifiedStatusList>, StatusCheckError> {
        let lock = {
            let mut locks = self
                .fetch_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(uri.to_owned()).or_default())
        };
        let _single_flight = lock.lock().await;
        // Another request may have refreshed the list while this one waited.
        if let Some(list) = self.fresh(uri, now) {
            return Ok(list);
        }
        let recently_failed = self
            .lock_cache()
            .get(uri)
            .and_then(|entry| entry.last_failure)
            .is_some_and(|failed| now < failed.saturating_add(RETRY_SECS));
        if recently_failed {
            return self.usable(uri, now, "status source failed recently");
        }
        let fetched = match self.fetcher.fetch(uri).await {
            Ok(token) => verify_status_list(&token, &self.keys, uri, now)
                .map_err(|e: StatusError| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match fetched {
            Ok(list) => {
                let list = Arc::new(list);
                self.lock_cache().insert(
                    uri.to_owned(),
                    Entry {
                        list: Some(Arc::clone(&list)),
                        fetched_at: now,
                        last_failure: None,
                    },
                );
                Ok(list)
            }
            Err(reason) => {
                tracing::warn!(uri, reason = %reason, "status list refresh failed");
                self.lock_cache()
                    .entry(uri.to_owned())
                    .or_default()
                    .last_failure = Some(now);
                self.usable(uri, now, &reason)
            }
        }
    }
}
