//! Stateless DPoP server nonces (RFC 9449 §8, DESIGN.md §5 "challenge–response").
//!
//! A nonce is `base64url(version || window || HMAC-SHA256(key, label || version || window))`
//! where `window = floor(now / window_secs)` as a big-endian `i64`. Any server holding the key
//! can check one without shared state; a client cannot make one for a future window, so a stolen
//! key pair cannot be used to pre-compute proofs for later. Nonces of the current and the
//! previous window are accepted, so a nonce lives between one and two windows.

use crate::{KeyError, b64};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use core::fmt;
use core::num::NonZeroU32;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Domain separation for the nonce MAC. The token crate does not depend on `daas-crypto`, whose
/// `labels.rs` holds the other labels; this one lives here and must stay unique across daas.
pub const NONCE_MAC_LABEL: &[u8] = b"daas dpop nonce v1";

/// Default nonce window: a nonce is accepted for 5 to 10 minutes after it was issued.
pub const DEFAULT_NONCE_WINDOW_SECS: u32 = 300;

const DEFAULT_WINDOW: NonZeroU32 = match NonZeroU32::new(DEFAULT_NONCE_WINDOW_SECS) {
    Some(window) => window,
    None => NonZeroU32::MIN,
};

const VERSION: u8 = 1;
const WINDOW_LEN: usize = 8;
const TAG_LEN: usize = 32;
const NONCE_BYTES: usize = 1 + WINDOW_LEN + TAG_LEN;
/// base64url length of [`NONCE_BYTES`] (41 bytes → 55 characters).
const NONCE_TEXT_LEN: usize = (NONCE_BYTES * 4).div_ceil(3);

/// Why a nonce was refused. Either way the server answers `use_dpop_nonce` with a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Authentic, but from a window that is no longer (or not yet) accepted.
    #[error("dpop nonce is stale")]
    Stale,
    /// Not a nonce this key issued: wrong length, encoding, version or MAC.
    #[error("dpop nonce is invalid")]
    Invalid,
}

/// The HMAC key behind stateless nonces. Zeroized on drop; `Debug` shows only the window.
pub struct NonceKey {
    key: Zeroizing<[u8; 32]>,
    window_secs: NonZeroU32,
}

impl NonceKey {
    /// A key from 32 secret bytes (e.g. derived from the server's master key), with the default
    /// window of [`DEFAULT_NONCE_WINDOW_SECS`]. Every server that must accept the nonces of the
    /// others needs the same bytes and window. The argument is moved into zeroized storage; the
    /// caller should zeroize any copy it keeps.
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(key),
            window_secs: DEFAULT_WINDOW,
        }
    }

    /// A fresh random key (single-server deployments, tests).
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the system CSPRNG fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| KeyError::Crypto("random nonce key"))?;
        Ok(Self::new(*bytes))
    }

    /// The same key with another window length.
    #[must_use]
    pub fn with_window(mut self, window_secs: NonZeroU32) -> Self {
        self.window_secs = window_secs;
        self
    }

    /// A nonce for the window containing `now` (Unix seconds), to send as `DPoP-Nonce`.
    #[must_use]
    pub fn issue(&self, now: i64) -> String {
        let window = self.window_of(now).to_be_bytes();
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[0] = VERSION;
        nonce[1..=WINDOW_LEN].copy_from_slice(&window);
        nonce[1 + WINDOW_LEN..].copy_from_slice(&self.tag(window));
        b64::encode(&nonce)
    }

    /// Checks a nonce from a proof: issued by this key for the window of `now` or the one before.
    ///
    /// # Errors
    /// [`NonceError::Invalid`] unless the MAC verifies (checked first, in constant time);
    /// [`NonceError::Stale`] for an authentic nonce of any other window.
    pub fn verify(&self, nonce: &str, now: i64) -> Result<(), NonceError> {
        if nonce.len() != NONCE_TEXT_LEN {
            return Err(NonceError::Invalid);
        }
        let bytes = b64::decode(nonce).map_err(|_| NonceError::Invalid)?;
        let (Some(&version), Some(window), Some(tag)) = (
            bytes.first(),
            bytes.get(1..=WINDOW_LEN),
            bytes.get(1 + WINDOW_LEN..),
        ) else {
            return Err(NonceError::Invalid);
        };
        let window: [u8; WINDOW_LEN] = window.try_into().map_err(|_| NonceError::Invalid)?;
        if version != VERSION || tag.len() != TAG_LEN {
            return Err(NonceError::Invalid);
        }
        if !bool::from(self.tag(window).as_slice().ct_eq(tag)) {
            return Err(NonceError::Invalid);
        }
        let current = self.window_of(now);
        let issued = i64::from_be_bytes(window);
        if issued == current || Some(issued) == current.checked_sub(1) {
            Ok(())
        } else {
            Err(NonceError::Stale)
        }
    }

    fn window_of(&self, now: i64) -> i64 {
        now.div_euclid(i64::from(self.window_secs.get()))
    }

    fn tag(&self, window: [u8; WINDOW_LEN]) -> [u8; TAG_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(NONCE_MAC_LABEL);
        ctx.update(&[VERSION]);
        ctx.update(&window);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceKey")
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_760_000_000;

    fn key() -> NonceKey {
        NonceKey::new([7; 32])
    }

    #[test]
    fn accepts_current_and_previous_window_only() {
        let key = key();
        let window = i64::from(DEFAULT_NONCE_WINDOW_SECS);
        let start = NOW - NOW.rem_euclid(window);
        let nonce = key.issue(start);
        assert_eq!(nonce.len(), NONCE_TEXT_LEN);
        assert_eq!(key.verify(&nonce, start), Ok(()));
        assert_eq!(key.verify(&nonce, start + window - 1), Ok(()));
        assert_eq!(key.verify(&nonce, start + 2 * window - 1), Ok(()));
        assert_eq!(
            key.verify(&nonce, start + 2 * window),
            Err(NonceError::Stale)
        );
        assert_eq!(key.verify(&nonce, start - 1), Err(NonceError::Stale));
        assert_eq!(key.verify(&nonce, i64::MIN), Err(NonceError::Stale));
        assert_eq!(key.verify(&nonce, i64::MAX), Err(NonceError::Stale));
        // The same window gives the same nonce: stateless, shared by every server with the key.
        assert_eq!(key.issue(start + 17), nonce);
        assert_ne!(key.issue(start + window), nonce);
    }

    #[test]
    fn window_is_configurable() {
        let key = key().with_window(NonZeroU32::new(10).unwrap());
        let nonce = key.issue(100);
        assert_eq!(key.verify(&nonce, 119), Ok(()));
        assert_eq!(key.verify(&nonce, 120), Err(NonceError::Stale));
        // A different window length is a different clock: the nonce means another time.
        assert_eq!(self::key().verify(&nonce, 100), Err(NonceError::Stale));
    }

    #[test]
    fn foreign_and_malformed_nonces_are_invalid() {
        let nonce = key().issue(NOW);
        assert_eq!(
            NonceKey::new([8; 32]).verify(&nonce, NOW),
            Err(NonceError::Invalid)
        );
        let mut bytes = b64::decode(&nonce).unwrap();
        bytes[0] = 2;
        assert_eq!(
            key().verify(&b64::encode(&bytes), NOW),
            Err(NonceError::Invalid)
        );
        for bad in [
            "",
            "x",
            &nonce[1..],
            &format!("{nonce}A"),
            &format!("{nonce}="),
        ] {
            assert_eq!(key().verify(bad, NOW), Err(NonceError::Invalid), "{bad:?}");
        }
        // A MAC over another window does not transfer.
        let mut moved = b64::decode(&nonce).unwrap();
        moved[8] ^= 1;
        assert_eq!(
            key().verify(&b64::encode(&moved), NOW),
            Err(NonceError::Invalid)
        );
    }

    #[test]
    fn debug_redacts_the_key() {
        let key = NonceKey::new([0xab; 32]);
        let debug = format!("{key:?}");
        assert!(!debug.contains("ab, ") && !debug.contains("171"), "{debug}");
        assert!(debug.contains("window_secs"));
        NonceKey::generate()
            .unwrap()
            .verify(&NonceKey::generate().unwrap().issue(NOW), NOW)
            .unwrap_err();
    }

    proptest! {
        #[test]
        fn prop_roundtrip(key in any::<[u8; 32]>(), now in any::<i64>(), window in 1u32..100_000) {
            let key = NonceKey::new(key).with_window(NonZeroU32::new(window).unwrap());
            let nonce = key.issue(now);
            prop_assert_eq!(key.verify(&nonce, now), Ok(()));
        }

        #[test]
        fn prop_any_tamper_is_invalid(index in 0usize..NONCE_TEXT_LEN, replacement in "[A-Za-z0-9_-]") {
            let key = key();
            let nonce = key.issue(NOW);
            let mut chars: Vec<char> = nonce.chars().collect();
            let replacement = replacement.chars().next().unwrap();
            prop_assume!(chars[index] != replacement);
            chars[index] = replacement;
            let tampered: String = chars.into_iter().collect();
            prop_assert_eq!(key.verify(&tampered, NOW), Err(NonceError::Invalid));
        }
    }
}
