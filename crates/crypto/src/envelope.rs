//! The `daas:v1:` ciphertext envelope (DESIGN.md §3).
//!
//! Text: `daas:v1:` + base64url-nopad(version(1)=1 ‖ suite(1) ‖ object_id(16) ‖ nonce ‖ ciphertext ‖ tag).
//! Suites: 1 = AES-256-GCM (12-byte nonce, aws-lc-rs), 2 = XChaCha20-Poly1305 (24-byte nonce).
//! AAD = canonical encoding of `{version, suite, object_id, key_version, owner, audience}`:
//! `"daas safe aad v1" ‖ version ‖ suite ‖ object_id ‖ u32be(key_version) ‖ u32be(len) owner ‖ u32be(len) audience`.
//! Each object key is fresh and used for exactly one seal, so random nonces never repeat under a key.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag as XTag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{CryptoError, Key256, ObjectId, b64, labels, prf, secret::SecretBytes};

pub const PREFIX: &str = "daas:v1:";
pub const VERSION: u8 = 1;
/// Upper bound on plaintext accepted by `seal` (64 MiB); servers apply their own smaller body limits.
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;
/// Authentication tag length of both suites.
pub const TAG_LEN: usize = 16;
/// version(1) ‖ suite(1) ‖ object_id(16).
const HEADER_LEN: usize = 18;
/// Longest envelope text `parse` reads (largest nonce, `MAX_PLAINTEXT`, tag); longer text is
/// rejected before it is decoded.
pub const MAX_TEXT_LEN: usize =
    PREFIX.len() + b64::encoded_len(HEADER_LEN + 24 + MAX_PLAINTEXT + TAG_LEN);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Aes256Gcm = 1,
    XChaCha20Poly1305 = 2,
}

impl Suite {
    /// Nonce length in bytes: 12 for AES-256-GCM, 24 for XChaCha20-Poly1305.
    pub const fn nonce_len(self) -> usize {
        match self {
            Suite::Aes256Gcm => 12,
            Suite::XChaCha20Poly1305 => 24,
        }
    }
    /// The suite with wire identifier `id`, if known.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Suite::Aes256Gcm),
            2 => Some(Suite::XChaCha20Poly1305),
            _ => None,
        }
    }
}

/// Context bound into the AAD; everything here must be known again at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub object_id: ObjectId,
    pub key_version: u32,
    pub owner: &'a str,
    pub audience: &'a str,
}

/// A parsed envelope (not yet authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub suite: Suite,
    pub object_id: ObjectId,
    pub nonce: Vec<u8>,
    /// ciphertext ‖ tag
    pub sealed: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(HEADER_LEN + self.nonce.len() + self.sealed.len());
        raw.push(VERSION);
        raw.push(self.suite as u8);
        raw.extend_from_slice(&self.object_id.0);
        raw.extend_from_slice(&self.nonce);
        raw.extend_from_slice(&self.sealed);
        let mut out = String::with_capacity(PREFIX.len() + b64::encoded_len(raw.len()));
        out.push_str(PREFIX);
        out.push_str(&b64::encode(&raw));
        out
    }

    /// Strict parse: prefix, canonical base64url, version == 1 (else UnsupportedFormat), known suite, min length.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(CryptoError::UnsupportedFormat(
                "expected a daas:v1: envelope",
            ));
        };
        if text.len() > MAX_TEXT_LEN {
            return Err(CryptoError::Malformed("envelope: longer than the maximum"));
        }
        let raw = b64::decode(body, "envelope: not canonical base64url")?;
        if raw.len() < 2 {
            return Err(CryptoError::Malformed("envelope: truncated"));
        }
        if raw[0] != VERSION {
            return Err(CryptoError::UnsupportedFormat("envelope version is not 1"));
        }
        let Some(suite) = Suite::from_id(raw[1]) else {
            return Err(CryptoError::UnsupportedFormat("unknown envelope suite"));
        };
        let nonce_end = HEADER_LEN + suite.nonce_len();
        if raw.len() < nonce_end + TAG_LEN {
            return Err(CryptoError::Malformed("envelope: truncated"));
        }
        let mut object_id = [0u8; 16];
        object_id.copy_from_slice(&raw[2..HEADER_LEN]);
        Ok(Self {
            suite,
            object_id: ObjectId(object_id),
            nonce: raw[HEADER_LEN..nonce_end].to_vec(),
            sealed: raw[nonce_end..].to_vec(),
        })
    }
}

/// Encrypt `plaintext` under `k` with a random nonce.
pub fn seal(
    k: &Key256,
    suite: Suite,
    ctx: &Context<'_>,
    plaintext: &[u8],
) -> Result<Envelope, CryptoError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CryptoError::InvalidParameter(
            "plaintext larger than 64 mib",
        ));
    }
    check_context(ctx)?;
    let mut nonce = vec![0u8; suite.nonce_len()];
    crate::random::fill(&mut nonce)?;
    let sealed = raw_seal(suite, k, &nonce, &aad(suite, ctx), plaintext)?;
    Ok(Envelope {
        suite,
        object_id: ctx.object_id,
        nonce,
        sealed,
    })
}

/// Decrypt; `ctx.object_id` must equal `env.object_id` (else ShareObjectMismatch) before any crypto.
pub fn open(k: &Key256, env: &Envelope, ctx: &Context<'_>) -> Result<SecretBytes, CryptoError> {
    if env.object_id != ctx.object_id {
        return Err(CryptoError::ShareObjectMismatch);
    }
    check_context(ctx)?;
    if env.nonce.len() != env.suite.nonce_len() {
        return Err(CryptoError::Malformed(
            "envelope: nonce length does not match suite",
        ));
    }
    if env.sealed.len() < TAG_LEN {
        return Err(CryptoError::Malformed("envelope: truncated"));
    }
    raw_open(env.suite, k, &env.nonce, &aad(env.suite, ctx), &env.sealed)
}

/// The canonical AAD bytes (exposed for tests and docs).
pub fn aad(suite: Suite, ctx: &Context<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        labels::SAFE_AAD_V1.len() + 2 + 16 + 4 + 8 + ctx.owner.len() + ctx.audience.len(),
    );
    out.extend_from_slice(labels::SAFE_AAD_V1);
    out.push(VERSION);
    out.push(suite as u8);
    out.extend_from_slice(&ctx.object_id.0);
    out.extend_from_slice(&ctx.key_version.to_be_bytes());
    // `seal`/`open` reject owners and audiences longer than u32::MAX before calling this.
    prf::push_lp(&mut out, ctx.owner.as_bytes());
    prf::push_lp(&mut out, ctx.audience.as_bytes());
    out
}

fn check_context(ctx: &Context<'_>) -> Result<(), CryptoError> {
    prf::checked_lp_len(ctx.owner.as_bytes(), "owner longer than u32::MAX bytes")?;
    prf::checked_lp_len(
        ctx.audience.as_bytes(),
        "audience longer than u32::MAX bytes",
    )
}

/// Raw AEAD seal with a caller-supplied nonce: returns `ciphertext ‖ tag`.
///
/// This is the single AEAD code path of the crate (`seal` and `storage` use it), exposed so the
/// Wycheproof vectors run through it. **The caller guarantees the nonce is never reused under
/// `key`**; use [`seal`] or `storage::StorageKeys::seal` instead.
#[doc(hidden)]
pub fn raw_seal(
    suite: Suite,
    key: &Key256,
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != suite.nonce_len() {
        return Err(CryptoError::InvalidParameter(
            "nonce length does not match suite",
        ));
    }
    // Encrypt in place in a zeroizing buffer sized so that it never reallocates: if anything
    // fails, the plaintext copy is wiped on drop.
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    match suite {
        Suite::Aes256Gcm => {
            let key = aes_key(key)?;
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Internal)?;
            key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut *buf)
                .map_err(|_| CryptoError::InvalidParameter("plaintext too long for the aead"))?;
        }
        Suite::XChaCha20Poly1305 => {
            let cipher = XChaCha20Poly1305::new(key.expose().into());
            let tag = cipher
                .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut buf[..])
                .map_err(|_| CryptoError::InvalidParameter("plaintext too long for the aead"))?;
            buf.extend_from_slice(&tag);
        }
    }
    Ok(core::mem::take(&mut *buf))
}

/// Raw AEAD open of `ciphertext ‖ tag` with a caller-supplied nonce (see [`raw_seal`]).
/// Any failure is `AuthenticationFailed`, except a wrong nonce length (`InvalidParameter`).
#[doc(hidden)]
pub fn raw_open(
    suite: Suite,
    key: &Key256,
    nonce: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<SecretBytes, CryptoError> {
    if nonce.len() != suite.nonce_len() {
        return Err(CryptoError::InvalidParameter(
            "nonce length does not match suite",
        ));
    }
    let Some(ct_len) = sealed.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::AuthenticationFailed);
    };
    let mut buf = Zeroizing::new(Vec::with_capacity(sealed.len()));
    buf.extend_from_slice(sealed);
    match suite {
        Suite::Aes256Gcm => {
            let key = aes_key(key)?;
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Internal)?;
            key.open_in_place(nonce, Aad::from(aad), &mut buf[..])
                .map_err(|_| CryptoError::AuthenticationFailed)?;
        }
        Suite::XChaCha20Poly1305 => {
            let cipher = XChaCha20Poly1305::new(key.expose().into());
            let (ct, tag) = buf.split_at_mut(ct_len);
            cipher
                .decrypt_in_place_detached(
                    XNonce::from_slice(nonce),
                    aad,
                    ct,
                    XTag::from_slice(tag),
                )
                .map_err(|_| CryptoError::AuthenticationFailed)?;
        }
    }
    buf.truncate(ct_len);
    Ok(SecretBytes(core::mem::take(&mut *buf)))
}

fn aes_key(key: &Key256) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUITES: [Suite; 2] = [Suite::Aes256Gcm, Suite::XChaCha20Poly1305];

    fn ctx() -> Context<'static> {
        Context {
            object_id: ObjectId([0x42; 16]),
            key_version: 1,
            owner: "app:alice",
            audience: "svc:db",
        }
    }

    #[test]
    fn seal_open_roundtrip_both_suites() {
        let k = Key256::generate().unwrap();
        for suite in SUITES {
            for pt in [&b""[..], b"x", b"hello world", &[0u8; 1000]] {
                let env = seal(&k, suite, &ctx(), pt).unwrap();
                assert_eq!(env.suite, suite);
                assert_eq!(env.object_id, ctx().object_id);
                assert_eq!(env.nonce.len(), suite.nonce_len());
                assert_eq!(env.sealed.len(), pt.len() + TAG_LEN);
                let text = env.encode();
                assert!(text.starts_with("daas:v1:"));
                let parsed = Envelope::parse(&text).unwrap();
                assert_eq!(parsed, env);
                assert_eq!(open(&k, &parsed, &ctx()).unwrap().expose(), pt);
            }
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let k = Key256::generate().unwrap();
        let a = seal(&k, Suite::Aes256Gcm, &ctx(), b"m").unwrap();
        let b = seal(&k, Suite::Aes256Gcm, &ctx(), b"m").unwrap();
        assert_ne!(a.nonce, b.nonce);
    }

    #[test]
    fn wire_layout() {
        let k = Key256::from_bytes([1; 32]);
        let env = seal(&k, Suite::XChaCha20Poly1305, &ctx(), b"abc").unwrap();
        let raw = b64::decode(&env.encode()[PREFIX.len()..], "x").unwrap();
        assert_eq!(raw[0], 1);
        assert_eq!(raw[1], 2);
        assert_eq!(&raw[2..18], &[0x42; 16]);
        assert_eq!(&raw[18..42], &env.nonce[..]);
        assert_eq!(&raw[42..], &env.sealed[..]);
        assert_eq!(raw.len(), 18 + 24 + 3 + 16);
    }

    #[test]
    fn aad_exact_bytes() {
        let c = Context {
            object_id: ObjectId([0xAB; 16]),
            key_version: 0x0102_0304,
            owner: "ow",
            audience: "aud",
        };
        let mut want = b"daas safe aad v1".to_vec();
        want.extend_from_slice(&[1, 1]);
        want.extend_from_slice(&[0xAB; 16]);
        want.extend_from_slice(&[1, 2, 3, 4]);
        want.extend_from_slice(&[0, 0, 0, 2, b'o', b'w']);
        want.extend_from_slice(&[0, 0, 0, 3, b'a', b'u', b'd']);
        assert_eq!(aad(Suite::Aes256Gcm, &c), want);
        want[17] = 2;
        assert_eq!(aad(Suite::XChaCha20Poly1305, &c), want);
        // field boundaries are unambiguous
        let c2 = Context {
            owner: "owa",
            audience: "ud",
            ..c.clone()
        };
        assert_ne!(aad(Suite::Aes256Gcm, &c), aad(Suite::Aes256Gcm, &c2));
    }

    #[test]
    fn context_mismatch_fails() {
        let k = Key256::generate().unwrap();
        for suite in SUITES {
            let env = seal(&k, suite, &ctx(), b"secret").unwrap();
            let variants = [
                Context {
                    key_version: 2,
                    ..ctx()
                },
                Context {
                    owner: "app:mallory",
                    ..ctx()
                },
                Context {
                    audience: "svc:other",
                    ..ctx()
                },
                Context {
                    owner: "app:alicesvc:db",
                    audience: "",
                    ..ctx()
                },
            ];
            for c in variants {
                assert_eq!(
                    open(&k, &env, &c),
                    Err(CryptoError::AuthenticationFailed),
                    "{c:?}"
                );
            }
            // other object: rejected before crypto
            let other = Context {
                object_id: ObjectId([0x43; 16]),
                ..ctx()
            };
            assert_eq!(
                open(&k, &env, &other),
                Err(CryptoError::ShareObjectMismatch)
            );
            // wrong key
            let k2 = Key256::generate().unwrap();
            assert_eq!(
                open(&k2, &env, &ctx()),
                Err(CryptoError::AuthenticationFailed)
            );
        }
    }

    #[test]
    fn object_check_precedes_crypto() {
        // Even a structurally broken envelope reports the object mismatch first.
        let env = Envelope {
            suite: Suite::Aes256Gcm,
            object_id: ObjectId([9; 16]),
            nonce: vec![],
            sealed: vec![],
        };
        let k = Key256::from_bytes([0; 32]);
        assert_eq!(
            open(&k, &env, &ctx()),
            Err(CryptoError::ShareObjectMismatch)
        );
        let env = Envelope {
            object_id: ctx().object_id,
            ..env
        };
        assert!(matches!(
            open(&k, &env, &ctx()),
            Err(CryptoError::Malformed(_))
        ));
        let env = Envelope {
            nonce: vec![0; 12],
            sealed: vec![0; 15],
            ..env
        };
        assert!(matches!(
            open(&k, &env, &ctx()),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn tamper_nonce_ciphertext_tag() {
        let k = Key256::generate().unwrap();
        for suite in SUITES {
            let env = seal(&k, suite, &ctx(), b"attack at dawn").unwrap();
            let mut e = env.clone();
            e.nonce[0] ^= 1;
            assert_eq!(open(&k, &e, &ctx()), Err(CryptoError::AuthenticationFailed));
            let mut e = env.clone();
            e.sealed[0] ^= 1;
            assert_eq!(open(&k, &e, &ctx()), Err(CryptoError::AuthenticationFailed));
            let mut e = env.clone();
            let last = e.sealed.len() - 1;
            e.sealed[last] ^= 0x80;
            assert_eq!(open(&k, &e, &ctx()), Err(CryptoError::AuthenticationFailed));
            let mut e = env.clone();
            e.sealed.pop();
            assert_eq!(open(&k, &e, &ctx()), Err(CryptoError::AuthenticationFailed));
            let mut e = env.clone();
            e.sealed.push(0);
            assert_eq!(open(&k, &e, &ctx()), Err(CryptoError::AuthenticationFailed));
            // suite swap: the nonce length no longer matches
            let mut e = env.clone();
            e.suite = if suite == Suite::Aes256Gcm {
                Suite::XChaCha20Poly1305
            } else {
                Suite::Aes256Gcm
            };
            assert!(open(&k, &e, &ctx()).is_err());
        }
    }

    #[test]
    fn parse_rejections() {
        let k = Key256::from_bytes([5; 32]);
        let env = seal(&k, Suite::Aes256Gcm, &ctx(), b"pt").unwrap();
        let text = env.encode();
        let body = &text[PREFIX.len()..];
        for p in [
            "daas:v2:",
            "daas:v1",
            "daas:V1:",
            "DAAS:v1:",
            "daas:share:v1:",
            "",
        ] {
            assert!(
                matches!(
                    Envelope::parse(&format!("{p}{body}")),
                    Err(CryptoError::UnsupportedFormat(_))
                ),
                "{p}"
            );
        }
        let mut raw = b64::decode(body, "x").unwrap();
        // wrong version byte
        for v in [0u8, 2, 255] {
            raw[0] = v;
            assert_eq!(
                Envelope::parse(&format!("{PREFIX}{}", b64::encode(&raw))),
                Err(CryptoError::UnsupportedFormat("envelope version is not 1"))
            );
        }
        raw[0] = 1;
        for s in [0u8, 3, 255] {
            raw[1] = s;
            assert_eq!(
                Envelope::parse(&format!("{PREFIX}{}", b64::encode(&raw))),
                Err(CryptoError::UnsupportedFormat("unknown envelope suite"))
            );
        }
        raw[1] = 1;
        // truncated: below header + nonce + tag
        let min = 18 + 12 + 16;
        assert!(Envelope::parse(&format!("{PREFIX}{}", b64::encode(&raw[..min]))).is_ok());
        for n in [0, 1, 2, 17, 18, 29, 30, min - 1] {
            assert!(
                matches!(
                    Envelope::parse(&format!("{PREFIX}{}", b64::encode(&raw[..n]))),
                    Err(CryptoError::Malformed(_))
                ),
                "n={n}"
            );
        }
        // non-canonical base64 / padding / whitespace / std alphabet
        assert!(matches!(
            Envelope::parse(&format!("{text}=")),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::parse(&format!("{text} ")),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::parse(&format!("{PREFIX}+/{}", &body[2..])),
            Err(CryptoError::Malformed(_))
        ));
        // 18+12+2+16 = 48 bytes = 64 chars: no spare bits, so build a length with spare bits.
        let env2 = seal(&k, Suite::Aes256Gcm, &ctx(), b"p").unwrap();
        let t2 = env2.encode();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = *t2.as_bytes().last().unwrap();
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let mut bad = t2[..t2.len() - 1].to_string();
        bad.push(alphabet[idx ^ 1] as char);
        assert!(matches!(
            Envelope::parse(&bad),
            Err(CryptoError::Malformed(_))
        ));
        // too long is rejected before decoding
        let huge = format!("{PREFIX}{}", "A".repeat(MAX_TEXT_LEN));
        assert_eq!(
            Envelope::parse(&huge),
            Err(CryptoError::Malformed("envelope: longer than the maximum"))
        );
    }

    #[test]
    fn seal_rejects_oversize_plaintext() {
        let k = Key256::from_bytes([5; 32]);
        let big = vec![0u8; MAX_PLAINTEXT + 1];
        assert!(matches!(
            seal(&k, Suite::Aes256Gcm, &ctx(), &big),
            Err(CryptoError::InvalidParameter(_))
        ));
    }

    #[test]
    fn raw_nonce_length_checked() {
        let k = Key256::from_bytes([5; 32]);
        assert!(matches!(
            raw_seal(Suite::Aes256Gcm, &k, &[0; 24], b"", b""),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert!(matches!(
            raw_seal(Suite::XChaCha20Poly1305, &k, &[0; 12], b"", b""),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert!(matches!(
            raw_open(Suite::Aes256Gcm, &k, &[0; 11], b"", &[0; 16]),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert_eq!(
            raw_open(Suite::Aes256Gcm, &k, &[0; 12], b"", &[0; 15]),
            Err(CryptoError::AuthenticationFailed)
        );
    }

    #[test]
    fn suite_ids() {
        assert_eq!(Suite::from_id(1), Some(Suite::Aes256Gcm));
        assert_eq!(Suite::from_id(2), Some(Suite::XChaCha20Poly1305));
        assert_eq!(Suite::from_id(0), None);
        assert_eq!(Suite::from_id(3), None);
    }

    fn arb_suite() -> impl Strategy<Value = Suite> {
        prop_oneof![Just(Suite::Aes256Gcm), Just(Suite::XChaCha20Poly1305)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn seal_open_any(
            suite in arb_suite(),
            key in any::<[u8; 32]>(),
            id in any::<[u8; 16]>(),
            kv in any::<u32>(),
            owner in ".{0,20}",
            audience in ".{0,20}",
            pt in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let k = Key256::from_bytes(key);
            let c = Context { object_id: ObjectId(id), key_version: kv, owner: &owner, audience: &audience };
            let env = seal(&k, suite, &c, &pt).unwrap();
            let text = env.encode();
            let parsed = Envelope::parse(&text).unwrap();
            prop_assert_eq!(parsed.encode(), text);
            let opened = open(&k, &parsed, &c).unwrap();
            prop_assert_eq!(opened.expose(), &pt[..]);
        }

        #[test]
        fn any_single_bit_flip_fails(
            suite in arb_suite(),
            pt in proptest::collection::vec(any::<u8>(), 0..64),
            bit_seed in any::<usize>(),
        ) {
            let k = Key256::from_bytes([7; 32]);
            let env = seal(&k, suite, &ctx(), &pt).unwrap();
            let mut raw = b64::decode(&env.encode()[PREFIX.len()..], "x").unwrap();
            let bit = bit_seed % (raw.len() * 8);
            raw[bit / 8] ^= 1 << (bit % 8);
            let text = format!("{PREFIX}{}", b64::encode(&raw));
            match Envelope::parse(&text) {
                Err(_) => {}
                Ok(e) => prop_assert!(open(&k, &e, &ctx()).is_err()),
            }
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            if let Ok(e) = Envelope::parse(&s) {
                prop_assert_eq!(e.encode(), s);
            }
        }

        #[test]
        fn parser_never_panics_prefixed(body in "[A-Za-z0-9_-]{0,120}") {
            let text = format!("{PREFIX}{body}");
            if let Ok(e) = Envelope::parse(&text) {
                prop_assert_eq!(e.encode(), text);
            }
        }
    }
}
