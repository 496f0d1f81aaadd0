//! Status list tokens (`verify_status_list`) and `lst` decoding (`StatusList::decode_lst`) on
//! arbitrary input: never panics; never accepts raw input (the fuzzer cannot forge the status
//! key's signature); a decoded list is never empty nor larger than the cap; and a list token
//! it accepts has the expected subject, times and `ttl`.
//!
//! Selector 0 feeds the input as the token; 1 as an `lst` string; the others build the claims
//! (and, from the input's bytes, a real list) and sign them with the status key or a stranger's,
//! so the claim rules and the decoder are reached behind a valid signature.
#![no_main]

use daas_token::jws::{HeaderFields, sign};
use daas_token::status::{
    Bits, MAX_STATUS_LIST_BYTES, STATUS_LEEWAY_SECS, STATUS_LIST_TYP, StatusList,
    verify_status_list,
};
use daas_token::{Alg, KeySet, SigningKey};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const NOW: i64 = 1_760_000_000;
const URI: &str = "https://issuer.example.com/v1/token/status";

struct Fixture {
    status: SigningKey,
    stranger: SigningKey,
    keys: KeySet,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let status = SigningKey::generate(Alg::EdDsa).expect("key generation");
        let stranger = SigningKey::generate(Alg::EdDsa).expect("key generation");
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

fn bits(u: &mut Unstructured<'_>) -> ArbResult<Bits> {
    Ok(*u.choose(&[Bits::One, Bits::Two, Bits::Four, Bits::Eight])?)
}

/// `good` most of the time, otherwise absent or another value.
fn vary(u: &mut Unstructured<'_>, good: Value) -> ArbResult<Option<Value>> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => None,
        1 => Some(json!(u.arbitrary::<i64>()?)),
        2 => Some(json!(u.arbitrary::<String>()?)),
        3 => Some(json!(-1)),
        4 => Some(json!(1.5)),
        _ => Some(good),
    })
}

fn signed(u: &mut Unstructured<'_>) -> ArbResult<String> {
    let fx = fixture();
    let bits = bits(u)?;
    let raw: Vec<u8> = u.arbitrary()?;
    let lst = match (u.arbitrary::<bool>()?, StatusList::from_bytes(bits, raw)) {
        (true, Ok(list)) => list.encode_lst(),
        _ => u.arbitrary::<String>()?,
    };
    let iat = NOW + i64::from(u.int_in_range(-100..=100i8)?);
    let mut claims = Map::new();
    let fields = [
        ("sub", json!(URI)),
        ("iat", json!(iat)),
        ("exp", json!(iat + i64::from(u.arbitrary::<i16>()?))),
        ("ttl", json!(u.arbitrary::<u32>()?)),
        (
            "status_list",
            json!({"bits": bits.get() as u64 * u64::from(u.int_in_range(0..=2u8)?.max(1)), "lst": lst}),
        ),
    ];
    for (name, good) in fields {
        if let Some(value) = vary(u, good)? {
            claims.insert(name.into(), value);
        }
    }
    let stranger = u.int_in_range(0..=15u8)? == 0;
    let header = HeaderFields {
        kid: Some("status"),
        typ: Some(if u.int_in_range(0..=15u8)? == 0 {
            "at+jwt"
        } else {
            STATUS_LIST_TYP
        }),
        embed_jwk: false,
    };
    let key = if stranger { &fx.stranger } else { &fx.status };
    // `sign` caps tokens at the access-token size: enough for the lists a fuzzer builds.
    Ok(sign(&header, &claims, key).unwrap_or_default())
}

fn run(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let fx = fixture();
    match u.int_in_range(0..=3u8)? {
        0 => {
            let token = String::from_utf8_lossy(u.bytes(u.len())?).into_owned();
            assert!(verify_status_list(&token, &fx.keys, URI, NOW).is_err());
        }
        1 => {
            let bits = bits(u)?;
            let lst = String::from_utf8_lossy(u.bytes(u.len())?).into_owned();
            if let Ok(list) = StatusList::decode_lst(bits, &lst) {
                let len = list.as_bytes().len();
                assert!(len >= 1 && len <= MAX_STATUS_LIST_BYTES);
                // Canonical: what decodes re-encodes to the same bytes.
                let again = StatusList::decode_lst(bits, &list.encode_lst()).expect("roundtrip");
                assert_eq!(again.as_bytes(), list.as_bytes());
            }
        }
        _ => {
            let token = signed(u)?;
            if let Ok(list) = verify_status_list(&token, &fx.keys, URI, NOW) {
                assert_eq!(list.sub(), URI);
                assert_eq!(list.kid(), "status");
                assert!(list.iat() <= NOW + STATUS_LEEWAY_SECS);
                assert!(list.exp().is_none_or(|exp| exp > NOW - STATUS_LEEWAY_SECS));
                assert!(list.ttl().is_none_or(|ttl| ttl > 0));
                let len = list.list().as_bytes().len();
                assert!(len >= 1 && len <= MAX_STATUS_LIST_BYTES);
                assert!(list.status_of(list.list().len()).is_err());
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
