//! Strict base64url (RFC 4648 §5) without padding, shared by every text format.
//!
//! `URL_SAFE_NO_PAD` rejects padding, characters outside the url-safe alphabet, whitespace,
//! impossible lengths and non-zero trailing bits, so every byte string has exactly one accepted
//! text form (`encode(parse(x)) == x`).
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::CryptoError;

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Number of characters of the unpadded encoding of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    (n / 3) * 4
        + match n % 3 {
            0 => 0,
            1 => 2,
            _ => 3,
        }
}

/// Decode public bytes of any length.
pub(crate) fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CryptoError::Malformed(what))
}

/// Decode exactly `N` (secret-bearing) bytes into a zeroizing buffer; nothing is heap-allocated.
pub(crate) fn decode_exact<const N: usize>(
    text: &str,
    what: &'static str,
) -> Result<Zeroizing<[u8; N]>, CryptoError> {
    if text.len() != encoded_len(N) {
        return Err(CryptoError::Malformed(what));
    }
    // The decoder's output-size check is conservative, so decode into a slightly larger buffer.
    let mut buf = Zeroizing::new([0u8; 264]);
    if N + 3 > buf.len() {
        return Err(CryptoError::Internal);
    }
    let n = URL_SAFE_NO_PAD
        .decode_slice(text, &mut buf[..])
        .map_err(|_| CryptoError::Malformed(what))?;
    if n != N {
        return Err(CryptoError::Malformed(what));
    }
    let mut out = Zeroizing::new([0u8; N]);
    out.copy_from_slice(&buf[..N]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoded_len_matches_engine() {
        for n in 0..100 {
            assert_eq!(encode(&vec![0xffu8; n]).len(), encoded_len(n), "n={n}");
        }
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // 1 leftover byte -> 2 chars, 4 unused low bits in the last char.
        // 2 leftover bytes -> 3 chars, 2 unused low bits in the last char.
        for n in [1usize, 2, 4, 5, 34, 49] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let text = encode(&bytes);
            assert_eq!(decode(&text, "x").unwrap(), bytes);
            let last = text.as_bytes()[text.len() - 1];
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let idx = alphabet.iter().position(|&c| c == last).unwrap();
            let flipped = alphabet[idx ^ 1] as char;
            let mut bad = text[..text.len() - 1].to_string();
            bad.push(flipped);
            assert_eq!(
                decode(&bad, "x"),
                Err(CryptoError::Malformed("x")),
                "n={n} {bad}"
            );
        }
    }

    #[test]
    fn rejects_padding_whitespace_and_std_alphabet() {
        let text = encode(b"\xfb\xff\x01");
        assert_eq!(text, "-_8B");
        assert!(decode("-_8B", "x").is_ok());
        assert!(decode("+/8B", "x").is_err());
        assert!(decode("AQ==", "x").is_err());
        assert!(decode("AQ", "x").is_ok());
        assert!(decode("A", "x").is_err());
        assert!(decode(" AQ", "x").is_err());
        assert!(decode("AQ\n", "x").is_err());
    }

    #[test]
    fn decode_exact_lengths() {
        let text = encode(&[7u8; 34]);
        assert_eq!(*decode_exact::<34>(&text, "x").unwrap(), [7u8; 34]);
        assert!(decode_exact::<33>(&text, "x").is_err());
        assert!(decode_exact::<35>(&text, "x").is_err());
        assert!(decode_exact::<34>(&text[..text.len() - 1], "x").is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes), "x").unwrap(), bytes);
        }

        #[test]
        fn canonical(s in "[A-Za-z0-9_=+/-]{0,40}") {
            if let Ok(b) = decode(&s, "x") {
                prop_assert_eq!(encode(&b), s);
            }
        }
    }
}
