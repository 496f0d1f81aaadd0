//! DPoP proof verification (`verify_proof`) on arbitrary input against a fixed request: never
//! panics, and a proof it accepts is consistent with the request (method, normalised `htu`,
//! `iat` window, `ath` and `cnf.jkt` of the token, nonce) and cannot be replayed.
//!
//! The fuzzer cannot forge signatures, so raw bytes (selector 0) only reach the parser and the
//! header rules. The other selectors build the header fields and claims from the input and sign
//! them with a fixed proof key, so the claim rules, the binding and the replay step are reached
//! too; flags swap in a real `ath` and nonce, which the fuzzer could not compute.
#![no_main]

use daas_token::jws::{HeaderFields, sign};
use daas_token::{
    AccessTokenClaims, Alg, DpopError, KeySet, MemoryReplayCache, NonceKey, ProofPolicy,
    ProofRequest, SigningKey, VerifiedAccessToken, access_token_hash, issue_access_token,
    normalize_htu, verify_access_token, verify_proof,
};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use std::sync::OnceLock;

const NOW: i64 = 1_760_000_000;
const METHOD: &str = "POST";
const URI: &str = "https://API.example.com:443/v1/things?page=2#top";
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

struct Fixture {
    /// Proof keys; the token is bound to the first.
    proof_keys: [SigningKey; 2],
    token: String,
    verified_token: VerifiedAccessToken,
    nonce_key: NonceKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let proof_keys = [
            SigningKey::generate(Alg::EdDsa).expect("key generation"),
            SigningKey::generate(Alg::Es256).expect("key generation"),
        ];
        let issuer = SigningKey::generate(Alg::EdDsa).expect("key generation");
        let mut keys = KeySet::new();
        keys.insert("iss", issuer.public_jwk().verifying_key().expect("own key"))
            .expect("one kid");
        let claims = AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "spiffe://fuzz.example/w".into(),
            aud: vec![AUDIENCE.into()],
            exp: NOW + 300,
            nbf: None,
            iat: NOW - 10,
            jti: "token-1".into(),
            scope: vec!["read".into()],
            jkt: proof_keys[0].public_jwk().thumbprint(),
            status: None,
            client_id: None,
        };
        let token = issue_access_token(&issuer, "iss", &claims).expect("issue");
        let verified_token =
            verify_access_token(&token, &keys, ISSUER, AUDIENCE, NOW, 0).expect("own token");
        Fixture {
            proof_keys,
            token,
            verified_token,
            nonce_key: NonceKey::new([0x5a; 32]),
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

/// Header fields and claims from the input, signed with one of the fixed proof keys.
fn signed_proof(u: &mut Unstructured<'_>, f: &Fixture) -> ArbResult<Option<String>> {
    let key = &f.proof_keys[usize::from(u.arbitrary::<bool>()?)];
    let typ: Option<String> = match u.int_in_range(0u8..=3)? {
        0..=1 => Some("dpop+jwt".into()),
        2 => None,
        _ => Some(u.arbitrary()?),
    };
    let kid: Option<String> = if u.ratio(1u8, 8)? {
        Some(u.arbitrary()?)
    } else {
        None
    };
    let embed_jwk = !u.ratio(1u8, 16)?;

    let jti = format!("jti-{}", u.arbitrary::<u32>()?);
    let htu = match u.int_in_range(0u8..=3)? {
        0 => "https://api.example.com/v1/things".to_owned(),
        1 => "HTTPS://api.EXAMPLE.com/v1/%74hings?x#y".to_owned(),
        2 => format!("https://api.example.com/{}", u.arbitrary::<&str>()?),
        _ => u.arbitrary()?,
    };
    let htm = if u.ratio(1u8, 8)? {
        u.arbitrary()?
    } else {
        METHOD.to_owned()
    };
    let iat = NOW + i64::from(u.arbitrary::<i8>()?);
    let ath = access_token_hash(&f.token);
    let nonce = f.nonce_key.issue(NOW);

    let mut claims = Map::new();
    for (name, good) in [
        ("jti", Value::from(jti)),
        ("htm", Value::from(htm)),
        ("htu", Value::from(htu)),
        ("iat", Value::from(iat)),
        ("ath", Value::from(ath)),
        ("nonce", Value::from(nonce)),
    ] {
        if let Some(value) = vary(u, good)? {
            claims.insert(name.into(), value);
        }
    }
    if u.ratio(1u8, 8)? {
        claims.insert(u.arbitrary()?, Value::String(u.arbitrary()?));
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
    let with_token = selector & 0x10 == 0;
    let with_nonce = selector & 0x20 == 0;
    let proof = if selector & 0x0f == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        match signed_proof(&mut Unstructured::new(rest), f) {
            Ok(Some(proof)) => proof,
            _ => return,
        }
    };

    let request = ProofRequest {
        method: METHOD,
        uri: URI,
        access_token: with_token.then_some(&f.verified_token),
    };
    let policy = ProofPolicy::default();
    let nonce_key = with_nonce.then_some(&f.nonce_key);
    let Ok(pending) = verify_proof(&[&proof], &request, &policy, nonce_key, NOW) else {
        return;
    };
    let cache = MemoryReplayCache::new(4);
    let verified = pending
        .check(&cache, NOW)
        .expect("a fresh cache has room and has not seen the proof");

    // Accepted: everything it reports matches the request it was checked against.
    assert_eq!(verified.htm(), METHOD);
    let request_htu = normalize_htu(URI).expect("fixed uri is valid");
    assert_eq!(verified.htu(), request_htu);
    assert_eq!(normalize_htu(verified.htu()).as_deref(), Ok(verified.htu()));
    assert_eq!(verified.jkt(), verified.jwk().thumbprint());
    assert!(verified.jwk().thumbprint_matches(verified.jkt()));
    assert!(
        (NOW - i64::from(policy.max_age_secs)..=NOW + i64::from(policy.future_leeway_secs))
            .contains(&verified.iat())
    );
    let jti = verified.jti();
    assert!(!jti.is_empty() && jti.len() <= 64 && jti.bytes().all(|b| b.is_ascii_graphic()));
    if with_token {
        // Bound to the token: only the key named by its cnf.jkt can have made it.
        assert_eq!(verified.jkt(), f.verified_token.jkt());
    }

    // The same proof a second time is a replay.
    let again = verify_proof(&[&proof], &request, &policy, nonce_key, NOW)
        .expect("verification is deterministic");
    assert_eq!(again.check(&cache, NOW), Err(DpopError::Replayed));
    // And two proofs at once are refused before anything else.
    assert_eq!(
        verify_proof(&[&proof, &proof], &request, &policy, nonce_key, NOW).err(),
        Some(DpopError::MultipleProofs)
    );
});
