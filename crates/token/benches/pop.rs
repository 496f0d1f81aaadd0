//! Proof-of-possession verification cost beside plain JWS verification with `jsonwebtoken`,
//! measured in one run and one group so the numbers compare (issue #4 goals):
//!
//! - `jsonwebtoken/{eddsa,es256}/key_per_call`: `decode` with the `DecodingKey` built from the
//!   issuer's JWK on every call, as a service that keeps a JWK set does;
//! - `jsonwebtoken/{eddsa,es256}/key_once`: the same with one `DecodingKey` kept (it still hands
//!   raw key bytes to the crypto library, which parses them on every verification);
//! - `daas/access_token/{eddsa,es256}`: [`verify_access_token`] with a prebuilt [`KeySet`];
//! - `daas/pop/{eddsa,es256}`: [`verify_dpop_request`]: token, proof, `ath`/`cnf.jkt` binding,
//!   nonce and an insert into a [`MemoryReplayCache`]. Every iteration gets a fresh proof (unique
//!   `jti`), built outside the timed routine by `iter_batched`;
//! - `aws_lc/{eddsa,es256}/{parsed,unparsed}_key`: the bare signature check over the token's
//!   signing input, with a parsed key and with raw key bytes: the floor under every row above
//!   (one of these per token, two per token + proof).
//!
//! All variants verify the same token bytes (`typ: at+jwt`, `kid`, `cnf.jkt`); the
//! `jsonwebtoken` ones check signature, `exp`, `iss` and `aud`, ours check everything
//! docs/tokens.md lists. Both use aws-lc-rs for the signatures.
//!
//! `cargo bench -p daas-token --bench pop -- --warm-up-time 1 --measurement-time 3`
#![expect(
    clippy::unwrap_used,
    reason = "benchmark setup: a failure aborts the run"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, UnparsedPublicKey, VerificationAlgorithm,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use daas_token::{
    AccessTokenClaims, Alg, DpopPolicy, DpopRequest, KeySet, MemoryReplayCache, NonceKey,
    ProofPolicy, SigningKey, VerifiedTokenCache, b64, build_proof, issue_access_token,
    verify_access_token, verify_access_token_cached, verify_dpop_request,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde::Deserialize;

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";
const METHOD: &str = "GET";
const URI: &str = "https://api.example.com/v1/things/42?expand=owner";
const KID: &str = "issuer-2026";

/// What a `jsonwebtoken` user would deserialize from our access tokens.
#[derive(Debug, Deserialize)]
struct JwtClaims {
    sub: String,
    jti: String,
    cnf: Cnf,
}

#[derive(Debug, Deserialize)]
struct Cnf {
    jkt: String,
}

/// One algorithm's fixture: an issuer key, its JWK for `jsonwebtoken`, a proof key and a token
/// bound to it.
struct Case {
    name: &'static str,
    jwt_alg: Algorithm,
    issuer_jwk: Jwk,
    keys: KeySet,
    proof_key: SigningKey,
    token: String,
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

fn case(name: &'static str, alg: Alg, jwt_alg: Algorithm, now: i64) -> Case {
    let issuer = SigningKey::generate(alg).unwrap();
    let proof_key = SigningKey::generate(alg).unwrap();
    let mut keys = KeySet::new();
    keys.insert(KID, issuer.public_jwk().verifying_key().unwrap())
        .unwrap();
    let issuer_jwk: Jwk = serde_json::from_str(&issuer.public_jwk().to_json()).unwrap();
    let claims = AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "spiffe://example.org/bench/workload".into(),
        aud: vec![AUDIENCE.into()],
        exp: now + 3600,
        nbf: None,
        iat: now,
        jti: "f3b1c2d4-token".into(),
        scope: vec!["things:read".into()],
        jkt: proof_key.public_jwk().thumbprint(),
        status: None,
        client_id: Some("bench-client".into()),
    };
    let token = issue_access_token(&issuer, KID, &claims).unwrap();
    Case {
        name,
        jwt_alg,
        issuer_jwk,
        keys,
        proof_key,
        token,
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn jwt_decode(token: &str, key: &DecodingKey, validation: &Validation) -> JwtClaims {
    let claims = jsonwebtoken::decode::<JwtClaims>(token, key, validation)
        .unwrap()
        .claims;
    assert!(!claims.sub.is_empty() && !claims.jti.is_empty() && claims.cnf.jkt.len() == 43);
    claims
}

/// The raw public key (32 bytes, or `04 || x || y`), signing input and signature of a case.
fn raw_parts(case: &Case) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let issuer = case.keys.get(KID).unwrap();
    let jwk: serde_json::Value = serde_json::from_str(&issuer.jwk().to_json()).unwrap();
    let coordinate = |name: &str| b64::decode(jwk[name].as_str().unwrap()).unwrap();
    let raw_key = match issuer.alg() {
        Alg::EdDsa => coordinate("x"),
        Alg::Es256 => [vec![4], coordinate("x"), coordinate("y")].concat(),
    };
    let (input, signature) = case.token.rsplit_once('.').unwrap();
    (
        raw_key,
        input.as_bytes().to_vec(),
        b64::decode(signature).unwrap(),
    )
}

fn bench_pop(c: &mut Criterion) {
    let now = now();
    let cases = [
        case("eddsa", Alg::EdDsa, Algorithm::EdDSA, now),
        case("es256", Alg::Es256, Algorithm::ES256, now),
    ];
    let nonce_key = NonceKey::generate().unwrap();
    let nonce = nonce_key.issue(now);
    let counter = AtomicU64::new(0);

    let mut g = c.benchmark_group("token_verify");
    g.throughput(Throughput::Elements(1));
    for case in &cases {
        let validation = validation(case.jwt_alg);
        g.bench_function(format!("jsonwebtoken/{}/key_per_call", case.name), |b| {
            b.iter(|| {
                let key = DecodingKey::from_jwk(black_box(&case.issuer_jwk)).unwrap();
                jwt_decode(black_box(&case.token), &key, &validation)
            });
        });
        let key = DecodingKey::from_jwk(&case.issuer_jwk).unwrap();
        g.bench_function(format!("jsonwebtoken/{}/key_once", case.name), |b| {
            b.iter(|| jwt_decode(black_box(&case.token), &key, &validation));
        });
        g.bench_function(format!("daas/access_token/{}", case.name), |b| {
            b.iter(|| {
                verify_access_token(black_box(&case.token), &case.keys, ISSUER, AUDIENCE, now, 0)
                    .unwrap()
            });
        });

        // What a resource server does by default: a token presented again is not re-verified.
        let token_cache = VerifiedTokenCache::default();
        g.bench_function(format!("daas/access_token_cached/{}", case.name), |b| {
            b.iter(|| {
                verify_access_token_cached(
                    black_box(&case.token),
                    &case.keys,
                    ISSUER,
                    AUDIENCE,
                    now,
                    0,
                    &token_cache,
                )
                .unwrap()
            });
        });

        // Sized for every iteration of the run: `now` is fixed, so nothing expires.
        let cache = MemoryReplayCache::new(usize::MAX);
        for (label, token_cache) in [("pop", None), ("pop_cached", Some(&token_cache))] {
            let policy = DpopPolicy {
                keys: &case.keys,
                issuer: ISSUER,
                audience: AUDIENCE,
                token_leeway_secs: 0,
                proof: ProofPolicy::default(),
                nonce_key: Some(&nonce_key),
                token_cache,
            };
            g.bench_function(format!("daas/{label}/{}", case.name), |b| {
                b.iter_batched(
                    || {
                        let jti = format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed));
                        build_proof(
                            &case.proof_key,
                            METHOD,
                            URI,
                            now,
                            Some(&jti),
                            Some(&case.token),
                            Some(&nonce),
                        )
                        .unwrap()
                    },
                    |proof| {
                        let proofs = [proof.as_str()];
                        let request = DpopRequest {
                            access_token: &case.token,
                            proof_headers: &proofs,
                            method: METHOD,
                            uri: URI,
                        };
                        verify_dpop_request(black_box(&request), &policy, &cache, now).unwrap()
                    },
                    BatchSize::SmallInput,
                );
            });
        }

        let (raw_key, input, signature) = raw_parts(case);
        let alg: &'static dyn VerificationAlgorithm = match case.jwt_alg {
            Algorithm::EdDSA => &ED25519,
            _ => &ECDSA_P256_SHA256_FIXED,
        };
        let parsed = ParsedPublicKey::new(alg, &raw_key).unwrap();
        g.bench_function(format!("aws_lc/{}/parsed_key", case.name), |b| {
            b.iter(|| parsed.verify_sig(black_box(&input), &signature).unwrap());
        });
        g.bench_function(format!("aws_lc/{}/unparsed_key", case.name), |b| {
            b.iter(|| {
                UnparsedPublicKey::new(alg, black_box(&raw_key))
                    .verify(black_box(&input), &signature)
                    .unwrap()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pop);
criterion_main!(benches);
