//! Shamir k-of-n over GF(256) (vsss-rs) for 32-byte keys, e.g. the storage key at `daas operator init`.
//!
//! Text form: `daas:unseal:v1:` + base64url-nopad(threshold(1) ‖ index(1) ‖ value(32)).
//! `combine` rejects index 0, duplicate indices, differing thresholds, fewer shares than the
//! threshold, and length mismatch. Shamir shares carry no integrity: callers must check the
//! combined key against a commitment (see `storage::key_check`).
//!
//! Sharing is byte-wise: each of the 32 key bytes is the constant term of its own random
//! polynomial of degree `threshold - 1` over GF(2^8) (AES polynomial), evaluated at x = index.
//! vsss-rs 6 does this with `Gf256::split_bytes_with_participant_ids_iter` / `Gf256::combine_bytes`,
//! constant time (no lookup tables). Lengths cannot mismatch in this typed API (`value` is always
//! 32 bytes); text of any other length is rejected by `parse`.
use core::convert::Infallible;

use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, Key256, b64};

pub const PREFIX: &str = "daas:unseal:v1:";

#[derive(Clone, PartialEq, Eq)]
pub struct ShamirShare {
    pub threshold: u8,
    pub index: u8,
    pub value: Key256,
}
impl core::fmt::Debug for ShamirShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ShamirShare {{ threshold: {}, index: {}, value: <redacted> }}",
            self.threshold, self.index
        )
    }
}

/// Decoded text length: threshold(1) ‖ index(1) ‖ value(32).
const RAW_LEN: usize = 34;

impl ShamirShare {
    pub fn encode(&self) -> String {
        let mut raw = Zeroizing::new([0u8; RAW_LEN]);
        raw[0] = self.threshold;
        raw[1] = self.index;
        raw[2..].copy_from_slice(self.value.expose());
        let mut out = String::with_capacity(PREFIX.len() + b64::encoded_len(RAW_LEN));
        out.push_str(PREFIX);
        out.push_str(&Zeroizing::new(b64::encode(&raw[..])));
        out
    }

    /// Strict: exact prefix, canonical base64url of exactly 34 bytes, threshold >= 2, index != 0.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(CryptoError::UnsupportedFormat(
                "expected a daas:unseal:v1: share",
            ));
        };
        let raw = b64::decode_exact::<RAW_LEN>(
            body,
            "unseal share: not 46 canonical base64url characters",
        )?;
        if raw[0] < 2 {
            return Err(CryptoError::Malformed("unseal share: threshold below 2"));
        }
        if raw[1] == 0 {
            return Err(CryptoError::Malformed("unseal share: index 0"));
        }
        Ok(Self {
            threshold: raw[0],
            index: raw[1],
            value: Key256::from_slice(&raw[2..])?,
        })
    }
}

/// Adapts the aws-lc-rs CSPRNG to the infallible rand_core 0.10 `CryptoRng` that vsss-rs wants.
/// A (practically impossible) RNG failure is recorded and turned into `CryptoError::Internal`
/// after the fact; the shares produced meanwhile are discarded (and zeroized).
struct OsRng {
    failed: bool,
}

impl rand_core::TryRng for OsRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        let v = u32::from_le_bytes(b);
        b.zeroize();
        Ok(v)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        let v = u64::from_le_bytes(b);
        b.zeroize();
        Ok(v)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if crate::random::fill(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for OsRng {}

/// Split into `n` shares, any `threshold` of which recover `secret`. 2 <= threshold <= n <= 255.
/// Share indices are 1..=n.
pub fn split(secret: &Key256, threshold: u8, n: u8) -> Result<Vec<ShamirShare>, CryptoError> {
    if threshold < 2 {
        return Err(CryptoError::InvalidParameter(
            "shamir threshold must be at least 2",
        ));
    }
    if n < threshold {
        return Err(CryptoError::InvalidParameter(
            "shamir share count below threshold",
        ));
    }
    let mut rng = OsRng { failed: false };
    let ids = (1..=n).map(|i| IdentifierGf256(Gf256(i)));
    let raw = Zeroizing::new(
        Gf256::split_bytes_with_participant_ids_iter(
            usize::from(threshold),
            usize::from(n),
            secret.expose(),
            &mut rng,
            ids,
        )
        .map_err(|_| CryptoError::Internal)?,
    );
    if rng.failed || raw.len() != usize::from(n) {
        return Err(CryptoError::Internal);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (share, expected_index) in raw.iter().zip(1..=n) {
        // Each vsss-rs byte share is identifier(1) ‖ value(32).
        if share.len() != 33 || share[0] != expected_index {
            return Err(CryptoError::Internal);
        }
        out.push(ShamirShare {
            threshold,
            index: share[0],
            value: Key256::from_slice(&share[1..])?,
        });
    }
    Ok(out)
}

/// Recombine (uses the first `threshold` distinct shares after validation).
pub fn combine(shares: &[ShamirShare]) -> Result<Key256, CryptoError> {
    let Some(first) = shares.first() else {
        return Err(CryptoError::InvalidShares("no shares"));
    };
    let threshold = first.threshold;
    if threshold < 2 {
        return Err(CryptoError::InvalidShares("threshold below 2"));
    }
    let mut seen = [false; 256];
    for s in shares {
        if s.threshold != threshold {
            return Err(CryptoError::InvalidShares("differing thresholds"));
        }
        if s.index == 0 {
            return Err(CryptoError::InvalidShares("index 0"));
        }
        let slot = &mut seen[usize::from(s.index)];
        if *slot {
            return Err(CryptoError::InvalidShares("duplicate index"));
        }
        *slot = true;
    }
    if shares.len() < usize::from(threshold) {
        return Err(CryptoError::InvalidShares(
            "fewer shares than the threshold",
        ));
    }
    let mut raw: Zeroizing<Vec<Vec<u8>>> =
        Zeroizing::new(Vec::with_capacity(usize::from(threshold)));
    for s in shares.iter().take(usize::from(threshold)) {
        let mut v = Vec::with_capacity(33);
        v.push(s.index);
        v.extend_from_slice(s.value.expose());
        raw.push(v);
    }
    let secret = Zeroizing::new(Gf256::combine_bytes(&raw[..]).map_err(|e| match e {
        vsss_rs::Error::SharingDuplicateIdentifier => CryptoError::InvalidShares("duplicate index"),
        vsss_rs::Error::SharingInvalidIdentifier => CryptoError::InvalidShares("index 0"),
        _ => CryptoError::Internal,
    })?);
    Key256::from_slice(&secret).map_err(|_| CryptoError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> Key256 {
        Key256::from_bytes(core::array::from_fn(|i| i as u8 * 7 + 1))
    }

    #[test]
    fn split_shape_and_combine() {
        let k = key();
        let shares = split(&k, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.threshold, 3);
            assert_eq!(usize::from(s.index), i + 1);
            assert_ne!(s.value, k);
        }
        assert_eq!(combine(&shares[..3]).unwrap(), k);
        assert_eq!(combine(&shares[2..]).unwrap(), k);
        assert_eq!(
            combine(&[shares[4].clone(), shares[0].clone(), shares[2].clone()]).unwrap(),
            k
        );
        assert_eq!(combine(&shares).unwrap(), k);
        // randomised
        let again = split(&k, 3, 5).unwrap();
        assert_ne!(again[0].value, shares[0].value);
    }

    #[test]
    fn extreme_parameters() {
        let k = key();
        let s = split(&k, 2, 2).unwrap();
        assert_eq!(combine(&s).unwrap(), k);
        let s = split(&k, 255, 255).unwrap();
        assert_eq!(s.len(), 255);
        assert_eq!(s[254].index, 255);
        assert_eq!(combine(&s).unwrap(), k);
        assert!(combine(&s[..254]).is_err());
    }

    #[test]
    fn split_rejects_bad_parameters() {
        let k = key();
        for (t, n) in [(0, 5), (1, 5), (4, 3), (2, 1), (2, 0), (255, 254)] {
            assert!(
                matches!(split(&k, t, n), Err(CryptoError::InvalidParameter(_))),
                "t={t} n={n}"
            );
        }
    }

    #[test]
    fn combine_rejections() {
        let k = key();
        let shares = split(&k, 3, 5).unwrap();
        assert_eq!(combine(&[]), Err(CryptoError::InvalidShares("no shares")));
        assert_eq!(
            combine(&shares[..2]),
            Err(CryptoError::InvalidShares(
                "fewer shares than the threshold"
            ))
        );

        let mut zero = shares[..3].to_vec();
        zero[1].index = 0;
        assert_eq!(combine(&zero), Err(CryptoError::InvalidShares("index 0")));

        let dup = vec![shares[0].clone(), shares[1].clone(), shares[0].clone()];
        assert_eq!(
            combine(&dup),
            Err(CryptoError::InvalidShares("duplicate index"))
        );
        // same index, different value
        let mut dup2 = shares[..3].to_vec();
        dup2[2].index = dup2[0].index;
        assert_eq!(
            combine(&dup2),
            Err(CryptoError::InvalidShares("duplicate index"))
        );

        let mut thr = shares[..3].to_vec();
        thr[2].threshold = 2;
        assert_eq!(
            combine(&thr),
            Err(CryptoError::InvalidShares("differing thresholds"))
        );

        let mut low = shares[..3].to_vec();
        for s in &mut low {
            s.threshold = 1;
        }
        assert_eq!(
            combine(&low),
            Err(CryptoError::InvalidShares("threshold below 2"))
        );

        // a tampered share gives a wrong key (no integrity; callers check a commitment)
        let mut bad = shares[..3].to_vec();
        bad[0].value.0[0] ^= 1;
        assert_ne!(combine(&bad).unwrap(), k);
    }

    #[test]
    fn text_roundtrip_and_format() {
        let k = key();
        for s in split(&k, 3, 5).unwrap() {
            let t = s.encode();
            assert!(t.starts_with(PREFIX));
            assert_eq!(t.len(), PREFIX.len() + 46);
            assert_eq!(ShamirShare::parse(&t).unwrap(), s);
            assert!(format!("{s:?}").contains("<redacted>"));
        }
    }

    #[test]
    fn parse_rejections() {
        let s = ShamirShare {
            threshold: 3,
            index: 1,
            value: key(),
        };
        let t = s.encode();
        let body = &t[PREFIX.len()..];
        for p in ["daas:unseal:v2:", "daas:share:v1:", "daas:unseal:", ""] {
            assert!(matches!(
                ShamirShare::parse(&format!("{p}{body}")),
                Err(CryptoError::UnsupportedFormat(_))
            ));
        }
        assert!(matches!(
            ShamirShare::parse(&t[..t.len() - 1]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            ShamirShare::parse(&format!("{t}A")),
            Err(CryptoError::Malformed(_))
        ));
        let enc = |raw: &[u8]| format!("{PREFIX}{}", b64::encode(raw));
        let mut raw = [0u8; 34];
        raw[0] = 3;
        raw[1] = 0;
        assert_eq!(
            ShamirShare::parse(&enc(&raw)),
            Err(CryptoError::Malformed("unseal share: index 0"))
        );
        raw[0] = 1;
        raw[1] = 1;
        assert_eq!(
            ShamirShare::parse(&enc(&raw)),
            Err(CryptoError::Malformed("unseal share: threshold below 2"))
        );
        assert!(ShamirShare::parse(&enc(&[2u8; 33])).is_err());
        assert!(ShamirShare::parse(&enc(&[2u8; 35])).is_err());
        // non-canonical trailing bits (34 bytes -> 46 chars, 4 unused bits in the last char)
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = *t.as_bytes().last().unwrap();
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let mut bad = t[..t.len() - 1].to_string();
        bad.push(alphabet[idx ^ 1] as char);
        assert!(matches!(
            ShamirShare::parse(&bad),
            Err(CryptoError::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_t_of_n_recover(
            secret in any::<[u8; 32]>(),
            (t, n) in (2u8..=8).prop_flat_map(|t| (Just(t), t..=12)),
            seed in any::<u64>(),
        ) {
            let k = Key256::from_bytes(secret);
            let shares = split(&k, t, n).unwrap();
            // pick a pseudo-random subset of size t (Fisher-Yates driven by the seed)
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (s >> 33) as usize % (i + 1);
                order.swap(i, j);
            }
            let subset: Vec<ShamirShare> = order[..usize::from(t)].iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(combine(&subset).unwrap(), k.clone());
            let fewer = &subset[..usize::from(t) - 1];
            prop_assert!(combine(fewer).is_err());
        }

        #[test]
        fn text_roundtrip(t in 2u8..=255, i in 1u8..=255, v in any::<[u8; 32]>()) {
            let s = ShamirShare { threshold: t, index: i, value: Key256::from_bytes(v) };
            let text = s.encode();
            let back = ShamirShare::parse(&text).unwrap();
            prop_assert_eq!(back.encode(), text);
            prop_assert_eq!(back, s);
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            if let Ok(share) = ShamirShare::parse(&s) {
                prop_assert_eq!(share.encode(), s);
            }
        }
    }
}
