//! Client share text: `daas:share:v1:` + base64url-nopad(object_id(16) ‖ index(1) ‖ share(32)).
//! Strict parsing: exact prefix, canonical base64url without padding, exact length, index ∈ {1, 2}.
use crate::{CryptoError, Key256, ObjectId, b64};
use zeroize::Zeroizing;

pub const PREFIX: &str = "daas:share:v1:";

/// Which half of the 2-of-2 split: 1 = the caller's `t1`, 2 = the server's `t2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareIndex {
    Client = 1,
    Server = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub object_id: ObjectId,
    pub index: ShareIndex,
    pub key: Key256,
}

/// Decoded length: object_id(16) ‖ index(1) ‖ share(32).
const RAW_LEN: usize = 16 + 1 + 32;

impl Share {
    pub fn encode(&self) -> String {
        let mut raw = Zeroizing::new([0u8; RAW_LEN]);
        raw[..16].copy_from_slice(&self.object_id.0);
        raw[16] = self.index as u8;
        raw[17..].copy_from_slice(self.key.expose());
        let mut out = String::with_capacity(PREFIX.len() + b64::encoded_len(RAW_LEN));
        out.push_str(PREFIX);
        out.push_str(&Zeroizing::new(b64::encode(&raw[..])));
        out
    }

    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(CryptoError::UnsupportedFormat(
                "expected a daas:share:v1: share",
            ));
        };
        let raw =
            b64::decode_exact::<RAW_LEN>(body, "share: not 66 canonical base64url characters")?;
        let index = match raw[16] {
            1 => ShareIndex::Client,
            2 => ShareIndex::Server,
            _ => return Err(CryptoError::Malformed("share: index must be 1 or 2")),
        };
        let mut object_id = [0u8; 16];
        object_id.copy_from_slice(&raw[..16]);
        Ok(Self {
            object_id: ObjectId(object_id),
            index,
            key: Key256::from_slice(&raw[17..])?,
        })
    }

    /// `Err(ShareObjectMismatch)` unless this share belongs to `object_id`. Call before any crypto.
    pub fn check_object(&self, object_id: &ObjectId) -> Result<(), CryptoError> {
        if self.object_id == *object_id {
            Ok(())
        } else {
            Err(CryptoError::ShareObjectMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    fn sample() -> Share {
        Share {
            object_id: ObjectId([0x11; 16]),
            index: ShareIndex::Client,
            key: Key256::from_bytes([0x22; 32]),
        }
    }

    fn raw_text(raw: &[u8]) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    #[test]
    fn encode_format_and_roundtrip() {
        let s = sample();
        let text = s.encode();
        assert!(text.starts_with("daas:share:v1:"));
        assert_eq!(text.len(), PREFIX.len() + 66);
        let mut raw = vec![0x11; 16];
        raw.push(1);
        raw.extend_from_slice(&[0x22; 32]);
        assert_eq!(text, raw_text(&raw));
        assert_eq!(Share::parse(&text).unwrap(), s);
        let server = Share {
            index: ShareIndex::Server,
            ..sample()
        };
        assert_eq!(Share::parse(&server.encode()).unwrap(), server);
        // Debug never prints the key.
        assert!(!format!("{s:?}").contains("34")); // 0x22 = 34
        assert!(format!("{s:?}").contains("redacted"));
    }

    #[test]
    fn rejects_wrong_prefix_and_version() {
        let body = &sample().encode()[PREFIX.len()..];
        for p in [
            "daas:share:v2:",
            "daas:share:",
            "daas:v1:",
            "DAAS:SHARE:V1:",
            "",
            " daas:share:v1:",
        ] {
            assert!(
                matches!(
                    Share::parse(&format!("{p}{body}")),
                    Err(CryptoError::UnsupportedFormat(_))
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn rejects_truncated_and_extended() {
        let text = sample().encode();
        for cut in [1, 2, 3, 4, 10, 66] {
            assert!(matches!(
                Share::parse(&text[..text.len() - cut]),
                Err(CryptoError::Malformed(_))
            ));
        }
        assert!(matches!(
            Share::parse(&format!("{text}A")),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            Share::parse(&format!("{text}AAAA")),
            Err(CryptoError::Malformed(_))
        ));
        // right character count, but one more byte hidden via a longer raw value is impossible;
        // a 48- or 50-byte payload has a different length.
        assert!(Share::parse(&raw_text(&[1u8; 48])).is_err());
        assert!(Share::parse(&raw_text(&[1u8; 50])).is_err());
    }

    #[test]
    fn rejects_wrong_index() {
        for idx in [0u8, 3, 255] {
            let mut raw = vec![0x11; 16];
            raw.push(idx);
            raw.extend_from_slice(&[0x22; 32]);
            assert_eq!(
                Share::parse(&raw_text(&raw)),
                Err(CryptoError::Malformed("share: index must be 1 or 2"))
            );
        }
    }

    #[test]
    fn rejects_non_canonical_base64() {
        let text = sample().encode();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = *text.as_bytes().last().unwrap();
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        for flip in [1usize, 2, 3] {
            let mut bad = text[..text.len() - 1].to_string();
            bad.push(alphabet[idx ^ flip] as char);
            assert!(
                matches!(Share::parse(&bad), Err(CryptoError::Malformed(_))),
                "{bad}"
            );
        }
        // padding, standard alphabet, whitespace
        assert!(Share::parse(&format!("{text}==")).is_err());
        let std = text.replace('-', "+").replace('_', "/");
        if std != text {
            assert!(Share::parse(&std).is_err());
        }
        assert!(Share::parse(&format!("{text}\n")).is_err());
    }

    #[test]
    fn share_of_another_object() {
        let s = sample();
        s.check_object(&ObjectId([0x11; 16])).unwrap();
        assert_eq!(
            s.check_object(&ObjectId([0x12; 16])),
            Err(CryptoError::ShareObjectMismatch)
        );
    }

    fn arb_share() -> impl Strategy<Value = Share> {
        (
            any::<[u8; 16]>(),
            prop_oneof![Just(ShareIndex::Client), Just(ShareIndex::Server)],
            any::<[u8; 32]>(),
        )
            .prop_map(|(id, index, k)| Share {
                object_id: ObjectId(id),
                index,
                key: Key256::from_bytes(k),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(s in arb_share()) {
            let text = s.encode();
            let back = Share::parse(&text).unwrap();
            prop_assert_eq!(&back, &s);
            prop_assert_eq!(back.encode(), text);
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            if let Ok(share) = Share::parse(&s) {
                prop_assert_eq!(share.encode(), s);
            }
        }

        #[test]
        fn parser_never_panics_near_valid(body in "[A-Za-z0-9_=-]{60,70}") {
            let text = format!("{PREFIX}{body}");
            if let Ok(share) = Share::parse(&text) {
                prop_assert_eq!(share.encode(), text);
            }
        }
    }
}
