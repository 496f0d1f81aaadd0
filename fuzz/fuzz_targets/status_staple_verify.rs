//! Status staples (`verify_status_staple`, `verify_status_staple_with`) on arbitrary input:
//! never panics; never accepts raw input (the fuzzer cannot forge the status key's
//! signature); the two entry points agree; and an accepted staple is about the expected entry,
//! echoes the expected nonce, lives 1–60 s and is current.
//!
//! Selector 0 feeds the input as the staple; the others build the claims from the input and
//! sign them with the status key or a stranger's, so every claim rule is reached.
#![no_main]

use daas_token::jws::{HeaderFields, sign};
use daas_token::status::{
    MAX_STAPLE_LIFETIME_SECS, STATUS_LEEWAY_SECS, STATUS_STAPLE_TYP, StapleExpectation,
    verify_status_staple, verify_status_staple_with,
};
use daas_token::{Alg, KeySet, SigningKey};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const NOW: i64 = 1_760_000_000;
const URI: &str = "https://issuer.example.com/v1/token/status";
const IDX: u64 = 42;
const NONCE: &str = "challenge-1";

struct Fixture {
    status: SigningKey,
    stranger: SigningKey,
    keys: KeySet,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let status = SigningKey::generate(Alg::Es256).expect("key generation");
        let stranger = SigningKey::generate(Alg::Es256).expect("key generation");
        let mut keys = KeySet::new();
        keys.insert(
            "status",
            status.public_jwk().verifying_key().expect("own key"),
        )
        .expect("one kid");
        Fixture {
            status,
            stranger,
            keys,
        }
    })
}

/// `good` most of the time, otherwise absent or another value.
fn vary(u: &mut Unstructured<'_>, good: Value) -> ArbResult<Option<Value>> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => None,
        1 => Some(json!(u.arbitrary::<i64>()?)),
        2 => Some(json!(u.arbitrary::<String>()?)),
        3 => Some(json!(u.arbitrary::<u64>()?)),
        4 => Some(json!([good])),
        _ => Some(good),
    })
}

fn signed(u: &mut Unstructured<'_>) -> ArbResult<String> {
    let fx = fixture();
    let iat = NOW + i64::from(u.int_in_range(-100..=100i8)?);
    let mut claims = Map::new();
    let fields = [
        ("sub", json!(URI)),
        ("idx", json!(IDX)),
        ("status", json!(u.arbitrary::<u16>()? % 300)),
        ("nonce", json!(NONCE)),
        ("iat", json!(iat)),
        ("exp", json!(iat + i64::from(u.int_in_range(-5..=90i8)?))),
    ];
    for (name, good) in fields {
        if let Some(value) = vary(u, good)? {
            claims.insert(name.into(), value);
        }
    }
    let header = HeaderFields {
        kid: Some("status"),
        typ: Some(if u.int_in_range(0..=15u8)? == 0 {
            "statuslist+jwt"
        } else {
            STATUS_STAPLE_TYP
        }),
        embed_jwk: false,
    };
    let key = if u.int_in_range(0..=15u8)? == 0 {
        &fx.stranger
    } else {
        &fx.status
    };
    Ok(sign(&header, &claims, key).unwrap_or_default())
}

fn run(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let fx = fixture();
    let raw = u.int_in_range(0..=3u8)? == 0;
    let token = if raw {
        String::from_utf8_lossy(u.bytes(u.len())?).into_owned()
    } else {
        signed(u)?
    };
    let expect = StapleExpectation {
        sub: URI,
        idx: IDX,
        nonce: NONCE,
    };
    let exact = verify_status_staple(&token, &fx.keys, &expect, NOW);
    let with = verify_status_staple_with(&token, &fx.keys, URI, IDX, |n| n == NONCE, NOW);
    assert_eq!(exact, with);
    if raw {
        assert!(exact.is_err());
    }
    if let Ok(staple) = exact {
        let claims = staple.claims();
        assert_eq!(
            (claims.sub.as_str(), claims.idx, claims.nonce.as_str()),
            (URI, IDX, NONCE)
        );
        assert!((1..=MAX_STAPLE_LIFETIME_SECS).contains(&(claims.exp - claims.iat)));
        assert!(claims.iat <= NOW + STATUS_LEEWAY_SECS);
        assert!(claims.exp > NOW - STATUS_LEEWAY_SECS);
        assert_eq!(staple.kid(), "status");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
