//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).
//!
//! Exactly one text decodes to a given byte string: padding, whitespace, the standard alphabet's
//! `+` and `/`, and non-zero trailing bits are all refused. Without that, one signed token would
//! have several spellings, which breaks replay caches keyed on the token and hides tampering.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The text is not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not canonical base64url")]
pub struct B64Error;

/// Encodes `bytes` as base64url without padding.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical unpadded base64url.
///
/// # Errors
/// [`B64Error`] on padding, whitespace, characters outside the URL-safe alphabet, an impossible
/// length, or non-zero trailing bits.
pub fn decode(text: &str) -> Result<Vec<u8>, B64Error> {
    // `URL_SAFE_NO_PAD` is configured with `decode_allow_trailing_bits(false)` and
    // `DecodePaddingMode::RequireNone`; the tests below pin that behaviour so a dependency
    // update cannot silently relax it.
    URL_SAFE_NO_PAD.decode(text).map_err(|_| B64Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_known_values() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_padding() {
        assert_eq!(decode("Zg=="), Err(B64Error));
        assert_eq!(decode("Zm8="), Err(B64Error));
        assert_eq!(decode("Zm9v="), Err(B64Error));
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "Zg" is 0x66; "Zh".."Zv" differ only in the 4 discarded bits.
        assert_eq!(decode("Zg").unwrap(), b"f");
        for alt in ["Zh", "Zi", "Zp", "Zv"] {
            assert_eq!(decode(alt), Err(B64Error), "{alt}");
        }
        // "Zm8" is "fo"; "Zm9" differs in the 2 discarded bits.
        assert_eq!(decode("Zm9"), Err(B64Error));
        assert_eq!(decode("-_9"), Err(B64Error));
    }

    #[test]
    fn rejects_whitespace_and_standard_alphabet() {
        for bad in [
            " Zm9v", "Zm9v ", "Zm 9v", "Zm9v\n", "\tZm9v", "Zm9v\r\n", "+/8", "-/8", "+_8",
        ] {
            assert_eq!(decode(bad), Err(B64Error), "{bad:?}");
        }
    }

    #[test]
    fn rejects_impossible_lengths_and_junk() {
        for bad in ["Z", "Zm9vY", ".", "Zm9v.", "é", "Zm9v\0", "%5A"] {
            assert_eq!(decode(bad), Err(B64Error), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }

        /// Canonicality: whatever decodes, re-encodes to the same text.
        #[test]
        fn decode_is_injective(text in "[A-Za-z0-9_\\-+/= ]{0,24}") {
            if let Ok(bytes) = decode(&text) {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }
}
