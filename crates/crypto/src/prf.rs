//! HMAC-SHA256 and HKDF-SHA256 (aws-lc-rs), the only paths through which this crate uses them.
//!
//! Every MAC, commitment, chain link and subkey in the crate goes through these functions, so the
//! Wycheproof vectors in `tests/wycheproof.rs` exercise the same code as the compositions.
use aws_lc_rs::{hkdf, hmac};
use subtle::ConstantTimeEq;

use crate::CryptoError;

/// Output length of HMAC-SHA256.
pub const HMAC_SHA256_LEN: usize = 32;
/// Largest HKDF-SHA256 output (RFC 5869: 255 · HashLen).
pub const HKDF_SHA256_MAX_OUTPUT: usize = 255 * 32;

/// `HMAC-SHA256(key, parts[0] ‖ parts[1] ‖ …)`. The caller is responsible for making the
/// concatenation injective (fixed-length fields or length prefixes).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; HMAC_SHA256_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    let tag = ctx.sign();
    let mut out = [0u8; HMAC_SHA256_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time check of a full-length (32-byte) HMAC-SHA256 tag. Truncated tags are rejected.
/// Returns `mismatch` on any difference, so callers pick the precise error.
pub fn verify_hmac_sha256(
    key: &[u8],
    parts: &[&[u8]],
    expected: &[u8],
    mismatch: CryptoError,
) -> Result<(), CryptoError> {
    if expected.len() != HMAC_SHA256_LEN {
        return Err(mismatch);
    }
    let actual = hmac_sha256(key, parts);
    if bool::from(actual.ct_eq(expected)) {
        Ok(())
    } else {
        Err(mismatch)
    }
}

/// Length adaptor for `hkdf::Prk::expand`.
struct OutLen(usize);
impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand into `out`. An empty `salt` means HashLen zero
/// bytes. `out.len()` must be at most [`HKDF_SHA256_MAX_OUTPUT`].
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.len() > HKDF_SHA256_MAX_OUTPUT {
        return Err(CryptoError::InvalidParameter(
            "hkdf output longer than 255 blocks",
        ));
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, OutLen(out.len()))
        .map_err(|_| CryptoError::InvalidParameter("hkdf output length"))?;
    okm.fill(out).map_err(|_| CryptoError::Internal)
}

/// Appends `u32be(len(bytes)) ‖ bytes`. Lengths above `u32::MAX` saturate; every public entry
/// point that feeds caller data here rejects such lengths first (see `checked_lp_len`).
pub(crate) fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Rejects a field that cannot be length-prefixed with a u32.
pub(crate) fn checked_lp_len(bytes: &[u8], what: &'static str) -> Result<(), CryptoError> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(CryptoError::InvalidParameter(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // RFC 4231 test case 2.
    #[test]
    fn hmac_rfc4231_case2() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            tag.to_vec(),
            unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        verify_hmac_sha256(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &tag,
            CryptoError::CommitmentMismatch,
        )
        .unwrap();
    }

    #[test]
    fn hmac_verify_rejects() {
        let tag = hmac_sha256(b"k", &[b"m"]);
        let e = CryptoError::CommitmentMismatch;
        assert_eq!(
            verify_hmac_sha256(b"k", &[b"m"], &tag[..16], e.clone()),
            Err(e.clone())
        );
        assert_eq!(
            verify_hmac_sha256(b"k", &[b"m"], &[], e.clone()),
            Err(e.clone())
        );
        assert_eq!(
            verify_hmac_sha256(b"k", &[b"n"], &tag, e.clone()),
            Err(e.clone())
        );
        assert_eq!(
            verify_hmac_sha256(b"j", &[b"m"], &tag, e.clone()),
            Err(e.clone())
        );
        for bit in 0..256 {
            let mut bad = tag;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                verify_hmac_sha256(b"k", &[b"m"], &bad, e.clone()),
                Err(e.clone())
            );
        }
    }

    // RFC 5869 test case 1 and 3.
    #[test]
    fn hkdf_rfc5869() {
        let mut okm = [0u8; 42];
        hkdf_sha256(
            &unhex("000102030405060708090a0b0c"),
            &unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
            &unhex("f0f1f2f3f4f5f6f7f8f9"),
            &mut okm,
        )
        .unwrap();
        assert_eq!(
            okm.to_vec(),
            unhex(
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
            )
        );
        hkdf_sha256(
            &[],
            &unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
            &[],
            &mut okm,
        )
        .unwrap();
        assert_eq!(
            okm.to_vec(),
            unhex(
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
            )
        );
    }

    #[test]
    fn hkdf_length_limits() {
        let mut max = vec![0u8; HKDF_SHA256_MAX_OUTPUT];
        hkdf_sha256(b"s", b"ikm", b"i", &mut max).unwrap();
        let mut over = vec![0u8; HKDF_SHA256_MAX_OUTPUT + 1];
        assert!(matches!(
            hkdf_sha256(b"s", b"ikm", b"i", &mut over),
            Err(CryptoError::InvalidParameter(_))
        ));
        hkdf_sha256(b"s", b"ikm", b"i", &mut []).unwrap();
    }

    #[test]
    fn lp_encoding() {
        let mut v = Vec::new();
        push_lp(&mut v, b"ab");
        push_lp(&mut v, b"");
        assert_eq!(v, [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]);
        checked_lp_len(b"abc", "x").unwrap();
    }
}
