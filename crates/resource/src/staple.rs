//! Status staples at the resource (docs/tokens.md, "Status staples"): instead of (or before)
//! fetching the issuer's status list, the resource hands out a challenge in the
//! [`STAPLE_NONCE_HEADER`] of its answers; the client obtains from the issuer a staple that
//! echoes it (`POST /v1/token/status/staple`) and sends it in [`STAPLE_HEADER`] with its
//! requests. The staple is verified with the status keys
//! ([`daas_token::verify_status_staple_with`]) and must be about the token's own status list
//! entry, echo a nonce this resource issued and that is still current, and not have expired
//! (staples live at most 60 s). Nothing is fetched by the resource.
//!
//! Nonces are the stateless [`NonceKey`] kind: every replica with the same key accepts them,
//! no state is kept. Use a key of its own (not the DPoP nonce key) and a short window: a nonce
//! is accepted for one to two windows.

use daas_token::{KeySet, NonceError, NonceKey, StatusError, StatusListRef, TokenStatus};
use http::{HeaderMap, HeaderValue};

/// The request header that carries a staple.
pub const STAPLE_HEADER: &str = "daas-status-staple";

/// The response header that carries this resource's current staple nonce.
pub const STAPLE_NONCE_HEADER: &str = "daas-status-nonce";

/// A staple could not establish the token's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StapleError {
    // --- peer ---
    /// No staple was sent (and no status list is configured to fall back on).
    #[error("no status staple was sent")]
    Missing,
    /// More than one staple header, or one that is not visible ASCII.
    #[error("status staple header {0}")]
    Header(&'static str),
    /// The staple echoes a nonce this resource issued, from a window no longer accepted.
    #[error("status staple nonce is stale")]
    StaleNonce,
    /// The staple echoes a nonce this resource did not issue.
    #[error("status staple nonce was not issued here")]
    ForeignNonce,
    /// The staple itself was rejected (signature, type, entry, lifetime, expiry...).
    #[error(transparent)]
    Invalid(StatusError),
}

impl StapleError {
    /// Whether the client should simply fetch a staple for the current nonce and retry.
    #[must_use]
    pub const fn asks_for_staple(&self) -> bool {
        matches!(self, Self::Missing | Self::StaleNonce)
    }
}

/// Checks status staples; give it to [`crate::DpopConfig::with_status_staples`].
#[derive(Debug)]
pub struct StapleChecker {
    keys: KeySet,
    nonce: NonceKey,
}

impl StapleChecker {
    /// Staples signed by one of `status_keys` (the issuer's status keys, never its token keys),
    /// answering nonces of `nonce_key`.
    #[must_use]
    pub fn new(status_keys: KeySet, nonce_key: NonceKey) -> Self {
        Self {
            keys: status_keys,
            nonce: nonce_key,
        }
    }

    /// The nonce to hand out now.
    #[must_use]
    pub fn nonce(&self, now: i64) -> String {
        self.nonce.issue(now)
    }

    /// Adds the current nonce to `headers`.
    pub fn add_nonce(&self, headers: &mut HeaderMap, now: i64) {
        if let Ok(value) = HeaderValue::from_str(&self.nonce(now)) {
            headers.insert(STAPLE_NONCE_HEADER, value);
        }
    }

    /// The staple sent with the request, if exactly one.
    ///
    /// # Errors
    /// [`StapleError::Header`] for repeated or non-ASCII values.
    pub fn staple_of(headers: &HeaderMap) -> Result<Option<&str>, StapleError> {
        let mut values = headers.get_all(STAPLE_HEADER).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => value
                .to_str()
                .map(Some)
                .map_err(|_| StapleError::Header("is not visible ascii")),
            (Some(_), Some(_)) => Err(StapleError::Header("is repeated")),
        }
    }

    /// The status `staple` vouches for, for the token whose status reference is `reference`.
    ///
    /// # Errors
    /// A [`StapleError`].
    pub fn check(
        &self,
        staple: &str,
        reference: &StatusListRef,
        now: i64,
    ) -> Result<TokenStatus, StapleError> {
        let mut nonce_answer = None;
        let verified = daas_token::verify_status_staple_with(
            staple,
            &self.keys,
            &reference.uri,
            reference.idx,
            |nonce| {
                let answer = self.nonce.verify(nonce, now);
                let ok = answer.is_ok();
                nonce_answer = Some(answer);
                ok
            },
            now,
        );
        match (verified, nonce_answer) {
            (Ok(verified), _) => Ok(verified.status()),
            (Err(StatusError::NonceMismatch), Some(Err(NonceError::Stale))) => {
                Err(StapleError::StaleNonce)
            }
            (Err(StatusError::NonceMismatch), _) => Err(StapleError::ForeignNonce),
            (Err(e), _) => Err(StapleError::Invalid(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daas_token::{Alg, SigningKey, StatusStapleClaims, sign_status_staple};
    use std::num::NonZeroU32;

    const NOW: i64 = 1_760_000_000;
    const URI: &str = "https://issuer.example/v1/token/status";

    fn fixture() -> (SigningKey, StapleChecker) {
        let key = SigningKey::generate(Alg::EdDsa).unwrap();
        let mut keys = KeySet::new();
        keys.insert("s", key.public_jwk().verifying_key().unwrap())
            .unwrap();
        let nonce = NonceKey::new([7; 32]).with_window(NonZeroU32::new(60).unwrap());
        (key, StapleChecker::new(keys, nonce))
    }

    fn staple(key: &SigningKey, nonce: &str, status: TokenStatus, iat: i64) -> String {
        let claims = StatusStapleClaims {
            sub: URI.into(),
            idx: 3,
            status,
            nonce: nonce.into(),
            iat,
            exp: iat + 60,
        };
        sign_status_staple(key, "s", &claims).unwrap()
    }

    fn reference(idx: u64) -> StatusListRef {
        StatusListRef {
            idx,
            uri: URI.into(),
        }
    }

    #[test]
    fn staples_must_echo_a_current_nonce_of_ours_and_be_about_the_token() {
        let (key, checker) = fixture();
        let nonce = checker.nonce(NOW);
        let good = staple(&key, &nonce, TokenStatus::Valid, NOW);
        assert_eq!(
            checker.check(&good, &reference(3), NOW),
            Ok(TokenStatus::Valid)
        );
        let revoked = staple(&key, &nonce, TokenStatus::Invalid, NOW);
        assert_eq!(
            checker.check(&revoked, &reference(3), NOW),
            Ok(TokenStatus::Invalid)
        );
        // Another token's entry.
        assert_eq!(
            checker.check(&good, &reference(4), NOW),
            Err(StapleError::Invalid(StatusError::StapleMismatch))
        );
        // A nonce another verifier (another key) issued, or made up.
        let foreign = NonceKey::new([8; 32]).issue(NOW);
        assert_eq!(
            checker.check(
                &staple(&key, &foreign, TokenStatus::Valid, NOW),
                &reference(3),
                NOW
            ),
            Err(StapleError::ForeignNonce)
        );
        assert_eq!(
            checker.check(
                &staple(&key, "made-up", TokenStatus::Valid, NOW),
                &reference(3),
                NOW
            ),
            Err(StapleError::ForeignNonce)
        );
        // Our nonce from three windows ago, in a staple signed just now: stale.
        let old = checker.nonce(NOW - 180);
        let stale = staple(&key, &old, TokenStatus::Valid, NOW);
        let err = checker.check(&stale, &reference(3), NOW).unwrap_err();
        assert_eq!(err, StapleError::StaleNonce);
        assert!(err.asks_for_staple());
        // A staple past its exp.
        assert_eq!(
            checker.check(&good, &reference(3), NOW + 66),
            Err(StapleError::Invalid(StatusError::Expired))
        );
        // Signed by another key (e.g. the issuer's token key).
        let other = SigningKey::generate(Alg::EdDsa).unwrap();
        assert!(matches!(
            checker.check(
                &staple(&other, &nonce, TokenStatus::Valid, NOW),
                &reference(3),
                NOW
            ),
            Err(StapleError::Invalid(StatusError::Jws(_)))
        ));
    }

    #[test]
    fn the_staple_header_is_single_and_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(StapleChecker::staple_of(&headers), Ok(None));
        headers.insert(STAPLE_HEADER, HeaderValue::from_static("a.b.c"));
        assert_eq!(StapleChecker::staple_of(&headers), Ok(Some("a.b.c")));
        headers.append(STAPLE_HEADER, HeaderValue::from_static("d.e.f"));
        assert_eq!(
            StapleChecker::staple_of(&headers),
            Err(StapleError::Header("is repeated"))
        );
        let mut headers = HeaderMap::new();
        headers.insert(STAPLE_HEADER, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(
            StapleChecker::staple_of(&headers),
            Err(StapleError::Header("is not visible ascii"))
        );
    }
}
