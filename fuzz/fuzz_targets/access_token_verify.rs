//! Access token verification (`verify_access_token`) on arbitrary input against a fixed
//! `KeySet`: never panics; never accepts raw input (the fuzzer cannot forge the issuer keys'
//! signatures, so an accepted raw token would be a verification bypass); and a token it accepts
//! has the expected type, issuer, audience, times and a well-formed `cnf.jkt`.
//!
//! Selector 0 feeds the input as the token. The other selectors build the header fields and
//! claims from the input and sign them with one of the issuer keys (or a stranger's), so the
//! claim rules are reached, not only the parser.
#![no_main]

use daas_token::jws::{HeaderFields, sign};
use daas_token::{
    ACCESS_TOKEN_TYP, Alg, KeySet, SigningKey, access_token_hash, b64, verify_access_token,
};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const NOW: i64 = 1_760_000_000;
const LEEWAY: u32 = 30;
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

struct Fixture {
    /// `ed` and `es` are in `keys`; `stranger` is not.
    ed: SigningKey,
    es: SigningKey,
    stranger: SigningKey,
    keys: KeySet,
    jkt: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ed = SigningKey::generate(Alg::EdDsa).expect("key generation");
        let es = SigningKey::generate(Alg::Es256).expect("key generation");
        let stranger = SigningKey::generate(Alg::EdDsa).expect("key generation");
        let mut keys = KeySet::new();
        for (kid, key) in [("ed", &ed), ("es", &es)] {
            keys.insert(kid, key.public_jwk().verifying_key().expect("own key"))
                .expect("distinct kids");
        }
        let jkt = SigningKey::generate(Alg::Es256)
            .expect("key generation")
            .public_jwk()
            .thumbprint();
        Fixture {
            ed,
            es,
            stranger,
            keys,
            jkt,
        }
    })
}

/// `good` most of the time, otherwise absent or a value of another shape.
fn vary(u: &mut Unstructured<'_>, good: Value) -> ArbResult<Option<Value>> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=2 => Some(good),
        3 => None,
        4 => Some(Value::String(u.arbitrary()?)),
        5 => Some(Value::from(u.arbitrary::<i64>()?)),
        6 => Some(Value::from(u.arbitrary::<f64>()?)),
        _ => Some(Value::Array(vec![good, Value::Null])),
    })
}

fn time(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    Ok(Value::from(NOW + i64::from(u.arbitrary::<i16>()?)))
}

fn signed_token(u: &mut Unstructured<'_>, f: &Fixture) -> ArbResult<Option<String>> {
    let (key, default_kid) = match u.int_in_range(0u8..=7)? {
        0..=2 => (&f.ed, "ed"),
        3..=5 => (&f.es, "es"),
        6 => (&f.ed, "es"),
        _ => (&f.stranger, "ed"),
    };
    let kid: Option<String> = match u.int_in_range(0u8..=7)? {
        0..=5 => Some(default_kid.into()),
        6 => None,
        _ => Some(u.arbitrary()?),
    };
    let typ: Option<String> = match u.int_in_range(0u8..=7)? {
        0..=5 => Some(ACCESS_TOKEN_TYP.into()),
        6 => None,
        _ => Some(u.arbitrary()?),
    };
    let embed_jwk = u.ratio(1u8, 16)?;

    let aud = match u.int_in_range(0u8..=3)? {
        0 => json!(AUDIENCE),
        1 => json!(["other", AUDIENCE]),
        2 => json!([]),
        _ => json!([u.arbitrary::<String>()?]),
    };
    let jkt = if u.ratio(1u8, 4)? {
        Value::String(u.arbitrary()?)
    } else {
        Value::from(f.jkt.clone())
    };
    let cnf = if u.ratio(1u8, 8)? {
        json!({ "jkt": jkt, "x5t#S256": "x" })
    } else {
        json!({ "jkt": jkt })
    };
    let status = json!({ "status_list": { "idx": u.arbitrary::<u64>()?, "uri": "https://s" } });
    let scope = Value::String(if u.ratio(1u8, 2)? {
        "read write".into()
    } else {
        u.arbitrary()?
    });

    let mut claims = Map::new();
    for (name, good) in [
        ("iss", Value::from(ISSUER)),
        ("sub", Value::String(u.arbitrary()?)),
        ("aud", aud),
        ("exp", time(u)?),
        ("nbf", time(u)?),
        ("iat", time(u)?),
        ("jti", Value::String(u.arbitrary()?)),
        ("cnf", cnf),
        ("scope", scope),
        ("status", status),
        ("client_id", Value::String(u.arbitrary()?)),
    ] {
        if let Some(value) = vary(u, good)? {
            claims.insert(name.into(), value);
        }
    }
    Ok(sign(
        &HeaderFields {
            kid: kid.as_deref(),
            typ: typ.as_deref(),
            embed_jwk,
        },
        &claims,
        key,
    )
    .ok())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let raw = selector % 4 == 0;
    let token = if raw {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        match signed_token(&mut Unstructured::new(rest), f) {
            Ok(Some(token)) => token,
            _ => return,
        }
    };
    let result = verify_access_token(&token, &f.keys, ISSUER, AUDIENCE, NOW, LEEWAY);
    let Ok(verified) = result else {
        return;
    };
    assert!(!raw, "accepted a token the fuzzer made up: {token:?}");

    let claims = verified.claims();
    let leeway = i64::from(LEEWAY);
    assert!(verified.kid() == "ed" || verified.kid() == "es");
    assert!(f.keys.get(verified.kid()).is_some());
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.aud.iter().any(|a| a == AUDIENCE));
    assert!(NOW - leeway < claims.exp);
    assert!(claims.iat <= NOW + leeway);
    assert!(claims.nbf.is_none_or(|nbf| nbf <= NOW + leeway));
    assert!(!claims.sub.is_empty() && !claims.jti.is_empty());
    assert!(
        claims
            .scope
            .iter()
            .all(|s| !s.is_empty() && !s.contains(' '))
    );
    assert_eq!(claims.jkt.len(), 43);
    assert_eq!(b64::decode(&claims.jkt).ok().map(|b| b.len()), Some(32));
    assert_eq!(verified.jkt(), claims.jkt);
    assert_eq!(verified.access_token_hash(), access_token_hash(&token));
    // Deterministic: the same input verifies the same way again.
    assert_eq!(
        verify_access_token(&token, &f.keys, ISSUER, AUDIENCE, NOW, LEEWAY).as_ref(),
        Ok(&verified)
    );
});
