//! Compact JWS parsing and verification on arbitrary input: never panics, and never accepts a
//! token that was not signed by one of the fixed keys (the fuzzer cannot forge signatures, so any
//! success would mean a verification bypass).
#![no_main]

use daas_token::{Alg, HeaderPolicy, KeySet, SigningKey, Unverified};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Any claims type will do: the signature check fails before claims are decoded.
type Claims = BTreeMap<String, String>;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = KeySet::new();
        for (kid, alg) in [("ed", Alg::EdDsa), ("es", Alg::Es256)] {
            let key = SigningKey::generate(alg).expect("key generation");
            let vk = key.public_jwk().verifying_key().expect("own key is valid");
            keys.insert(kid, vk).expect("distinct kids");
        }
        keys
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(token) = Unverified::parse(&text) {
        let _ = token.header().kid();
        assert!(token.verify::<Claims>(keys(), None).is_err());
    }
    // DPoP-style proofs carry their own key: exercise the embedded-jwk path too. A self-signed
    // proof can verify only if the input contains a real signature, which random bytes do not.
    let policy = HeaderPolicy {
        allow_embedded_jwk: true,
    };
    if let Ok(token) = Unverified::parse_with_policy(&text, policy) {
        if let Some(jwk) = token.header().jwk() {
            let _ = jwk.thumbprint();
        }
        let _ = token.verify_with_embedded_jwk::<Claims>("dpop+jwt");
    }
});
