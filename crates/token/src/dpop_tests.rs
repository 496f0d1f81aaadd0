use super::*;
use crate::access::{AccessTokenClaims, issue_access_token, verify_access_token};
use crate::jwk::KeySet;
use crate::replay::{MemoryReplayCache, ReplayCache};
use crate::{Alg, ErrorCode, Fault, NonceError};
use proptest::prelude::*;
use serde_json::json;
use std::sync::{Arc, Barrier};

const NOW: i64 = 1_760_000_000;
const URI: &str = "https://api.example.com/v1/things";
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

fn key(alg: Alg) -> SigningKey {
    SigningKey::generate(alg).unwrap()
}

fn request(method: &'static str, uri: &'static str) -> ProofRequest<'static> {
    ProofRequest {
        method,
        uri,
        access_token: None,
    }
}

/// Verifies `proof` for `req` and records it in a fresh cache.
fn verify(proof: &str, req: &ProofRequest<'_>) -> Result<VerifiedProof, DpopError> {
    verify_with(proof, req, None, &MemoryReplayCache::new(16))
}

fn verify_with(
    proof: &str,
    req: &ProofRequest<'_>,
    nonce_key: Option<&NonceKey>,
    cache: &dyn ReplayCache,
) -> Result<VerifiedProof, DpopError> {
    verify_proof(&[proof], req, &ProofPolicy::default(), nonce_key, NOW)?.check(cache, NOW)
}

fn proof(key: &SigningKey, method: &str, uri: &str) -> String {
    build_proof(key, method, uri, NOW, None, None, None).unwrap()
}

/// Signs arbitrary header and claims with a real key: a rejection can then only come from the
/// rule under test, never from the signature.
fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    forge_text(&header.to_string(), &claims.to_string(), key)
}

fn forge_text(header: &str, claims: &str, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(claims.as_bytes())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

fn good_header(key: &SigningKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": key.public_jwk().to_value()})
}

fn good_claims() -> Value {
    json!({"jti": "jti-1", "htm": "GET", "htu": URI, "iat": NOW})
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().unwrap().remove(name);
    value
}

struct Issuer {
    key: SigningKey,
    keys: KeySet,
}

fn issuer() -> Issuer {
    let key = key(Alg::EdDsa);
    let mut keys = KeySet::new();
    keys.insert("issuer-1", key.public_jwk().verifying_key().unwrap())
        .unwrap();
    Issuer { key, keys }
}

fn token_claims(jkt: String) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "spiffe://daas/app/alice".into(),
        aud: vec![AUDIENCE.into()],
        exp: NOW + 300,
        nbf: None,
        iat: NOW,
        jti: "token-1".into(),
        scope: vec!["things:read".into()],
        jkt,
        status: None,
        client_id: None,
    }
}

/// An access token bound to `client`, as text and verified.
fn bound_token(issuer: &Issuer, client: &SigningKey) -> (String, VerifiedAccessToken) {
    let text = issue_access_token(
        &issuer.key,
        "issuer-1",
        &token_claims(client.public_jwk().thumbprint()),
    )
    .unwrap();
    let verified = verify_access_token(&text, &issuer.keys, ISSUER, AUDIENCE, NOW, 0).unwrap();
    (text, verified)
}

#[test]
fn roundtrip_both_algs() {
    for alg in [Alg::EdDsa, Alg::Es256] {
        let client = key(alg);
        let text = build_proof(
            &client,
            "POST",
            "HTTPS://API.example.com:443/v1/things?x=1#f",
            NOW - 3,
            Some("my-jti"),
            None,
            None,
        )
        .unwrap();
        let parsed = Unverified::parse_with_policy(
            &text,
            HeaderPolicy {
                allow_embedded_jwk: true,
            },
        )
        .unwrap();
        assert_eq!(parsed.header().typ(), Some("dpop+jwt"));
        assert_eq!(parsed.header().alg(), alg);
        assert_eq!(parsed.header().kid(), None);
        assert_eq!(parsed.header().jwk(), Some(client.public_jwk()));

        let verified = verify(&text, &request("POST", URI)).unwrap();
        assert_eq!(verified.jkt(), client.public_jwk().thumbprint());
        assert_eq!(verified.jwk(), client.public_jwk());
        assert_eq!(verified.jti(), "my-jti");
        assert_eq!(verified.iat(), NOW - 3);
        assert_eq!(verified.htm(), "POST");
        assert_eq!(verified.htu(), URI);
    }
}

#[test]
fn generated_jti_is_random_and_long_enough() {
    let client = key(Alg::EdDsa);
    let a = verify(&proof(&client, "GET", URI), &request("GET", URI)).unwrap();
    let b = verify(&proof(&client, "GET", URI), &request("GET", URI)).unwrap();
    assert_ne!(a.jti(), b.jti());
    assert_eq!(b64::decode(a.jti()).unwrap().len(), 16);
}

#[test]
fn bound_to_an_access_token() {
    let issuer = issuer();
    for alg in [Alg::EdDsa, Alg::Es256] {
        let client = key(alg);
        let (text, token) = bound_token(&issuer, &client);
        let proof = build_proof(&client, "GET", URI, NOW, None, Some(&text), None).unwrap();
        let req = ProofRequest {
            access_token: Some(&token),
            ..request("GET", URI)
        };
        let verified = verify(&proof, &req).unwrap();
        assert_eq!(verified.jkt(), token.jkt());
        assert_eq!(token.access_token_hash(), access_token_hash(&text));
    }
}

#[test]
fn ath_is_rfc9449_example() {
    // RFC 9449 §7.1: the example access token and its ath.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn exactly_one_proof_header() {
    let client = key(Alg::EdDsa);
    let p = proof(&client, "GET", URI);
    assert_eq!(single_proof(&[&p]), Ok(p.as_str()));
    assert_eq!(single_proof(&[]), Err(DpopError::MissingProof));
    assert_eq!(single_proof(&[&p, &p]), Err(DpopError::MultipleProofs));
    let pending = verify_proof(
        &[&p, &p],
        &request("GET", URI),
        &ProofPolicy::default(),
        None,
        NOW,
    );
    assert_eq!(pending.unwrap_err(), DpopError::MultipleProofs);
    let pending = verify_proof(
        &[],
        &request("GET", URI),
        &ProofPolicy::default(),
        None,
        NOW,
    );
    assert_eq!(pending.unwrap_err(), DpopError::MissingProof);
    // Two proofs joined as one field value are not one well-formed JWS.
    assert_eq!(
        verify(&format!("{p}, {p}"), &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::Malformed("expected three dot-separated segments"))
    );
}

#[test]
fn typ_must_be_exactly_dpop_jwt() {
    let client = key(Alg::EdDsa);
    for typ in [
        json!("application/dpop+jwt"),
        json!("DPOP+JWT"),
        json!("dpop+jwt "),
        json!("at+jwt"),
        json!("JWT"),
        json!(""),
    ] {
        let p = forge(
            &with(good_header(&client), "typ", typ.clone()),
            &good_claims(),
            &client,
        );
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::ProofType,
            "{typ}"
        );
    }
    let p = forge(
        &without(good_header(&client), "typ"),
        &good_claims(),
        &client,
    );
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::ProofType
    );
    let p = forge(
        &with(good_header(&client), "typ", json!(1)),
        &good_claims(),
        &client,
    );
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::Malformed("typ is not a string"))
    );
}

#[test]
fn an_access_token_is_not_a_proof() {
    let issuer = issuer();
    let client = key(Alg::EdDsa);
    let (text, _) = bound_token(&issuer, &client);
    assert_eq!(
        verify(&text, &request("GET", URI)).unwrap_err(),
        DpopError::ProofType
    );
    // Even re-signed by the client with its jwk embedded, `at+jwt` is refused.
    let header = with(good_header(&client), "typ", json!("at+jwt"));
    let p = forge(&header, &good_claims(), &client);
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::ProofType
    );
}

#[test]
fn only_eddsa_and_es256() {
    let client = key(Alg::EdDsa);
    for alg in [
        "none", "None", "NONE", "nOnE", "HS256", "hs256", "RS256", "ES384", "eddsa", "",
    ] {
        let p = forge(
            &with(good_header(&client), "alg", json!(alg)),
            &good_claims(),
            &client,
        );
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::Proof(JwsError::UnsupportedAlg),
            "{alg}"
        );
    }
    // `alg: none` with an empty signature, the classic form.
    let header = with(good_header(&client), "alg", json!("none"));
    let unsigned = format!(
        "{}.{}.",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(good_claims().to_string().as_bytes())
    );
    assert_eq!(
        verify(&unsigned, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::UnsupportedAlg)
    );
}

#[test]
fn hs256_with_the_public_jwk_as_secret_is_rejected() {
    use aws_lc_rs::hmac;
    let client = key(Alg::EdDsa);
    let header = with(good_header(&client), "alg", json!("HS256"));
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(good_claims().to_string().as_bytes())
    );
    for secret in [
        client.public_jwk().to_json().into_bytes(),
        match client.public_jwk() {
            PublicJwk::Ed25519 { x } => x.to_vec(),
            PublicJwk::P256 { .. } => unreachable!(),
        },
    ] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let p = format!("{input}.{}", b64::encode(tag.as_ref()));
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::Proof(JwsError::UnsupportedAlg)
        );
    }
}

#[test]
fn jwk_must_be_present_public_and_the_signer() {
    let client = key(Alg::EdDsa);
    let other = key(Alg::EdDsa);
    let p = forge(
        &without(good_header(&client), "jwk"),
        &good_claims(),
        &client,
    );
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::Malformed("jwk is missing"))
    );
    // Signed by another key than the embedded one.
    let p = forge(&good_header(&client), &good_claims(), &other);
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::BadSignature)
    );
    // A private member.
    let mut jwk = client.public_jwk().to_value();
    jwk["d"] = json!(b64::encode(&[1; 32]));
    let p = forge(
        &with(good_header(&client), "jwk", jwk),
        &good_claims(),
        &client,
    );
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::Malformed("jwk is not an acceptable public key"))
    );
    // An ES256 header over an Ed25519 jwk.
    let p = forge(
        &with(good_header(&client), "alg", json!("ES256")),
        &good_claims(),
        &client,
    );
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::Proof(JwsError::AlgMismatch)
    );
    // Symmetric and malformed jwks.
    for jwk in [
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!("not an object"),
        json!({"kty": "OKP", "crv": "Ed25519"}),
        json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
    ] {
        let p = forge(
            &with(good_header(&client), "jwk", jwk.clone()),
            &good_claims(),
            &client,
        );
        assert!(
            matches!(
                verify(&p, &request("GET", URI)),
                Err(DpopError::Proof(JwsError::Malformed(_)))
            ),
            "{jwk}"
        );
    }
}

#[test]
fn forbidden_and_unknown_header_parameters() {
    let client = key(Alg::EdDsa);
    for (name, value, expected) in [
        ("kid", json!("k1"), JwsError::ForbiddenHeader("kid")),
        (
            "jku",
            json!("https://evil.example/jwks"),
            JwsError::ForbiddenHeader("jku"),
        ),
        (
            "x5u",
            json!("https://evil.example/cert"),
            JwsError::ForbiddenHeader("x5u"),
        ),
        ("x5c", json!(["MIIB"]), JwsError::ForbiddenHeader("x5c")),
        (
            "x5t#S256",
            json!("AA"),
            JwsError::ForbiddenHeader("x5t#S256"),
        ),
        ("crit", json!(["exp"]), JwsError::ForbiddenHeader("crit")),
        ("crit", json!([]), JwsError::ForbiddenHeader("crit")),
        ("b64", json!(false), JwsError::ForbiddenHeader("b64")),
        ("exp", json!(1), JwsError::UnknownHeader),
    ] {
        let p = forge(
            &with(good_header(&client), name, value),
            &good_claims(),
            &client,
        );
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::Proof(expected),
            "{name}"
        );
    }
}

#[test]
fn structure_is_strict() {
    let client = key(Alg::EdDsa);
    let p = proof(&client, "GET", URI);
    let (input, sig) = p.rsplit_once('.').unwrap();
    for bad in [
        String::new(),
        input.to_owned(),
        format!("{p}."),
        format!("{p}.{sig}"),
        format!("{input}.{sig}="),
        format!(" {p}"),
        format!("{p}\n"),
        "a".repeat(crate::MAX_TOKEN_LEN + 1),
    ] {
        assert!(
            matches!(verify(&bad, &request("GET", URI)), Err(DpopError::Proof(_))),
            "{bad:?}"
        );
    }
    // Duplicate keys in the header and in the claims.
    let dup_header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"none","jwk":{}}}"#,
        client.public_jwk().to_json()
    );
    let p = forge_text(&dup_header, &good_claims().to_string(), &client);
    assert!(matches!(
        verify(&p, &request("GET", URI)),
        Err(DpopError::Proof(JwsError::Malformed(_)))
    ));
    let dup_claims = format!(r#"{{"jti":"a","jti":"b","htm":"GET","htu":"{URI}","iat":{NOW}}}"#);
    let p = forge_text(&good_header(&client).to_string(), &dup_claims, &client);
    assert!(matches!(
        verify(&p, &request("GET", URI)),
        Err(DpopError::Proof(JwsError::Malformed(_)))
    ));
    let dup_jwk = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","x":"{x}"}}}}"#,
        x = match client.public_jwk() {
            PublicJwk::Ed25519 { x } => b64::encode(x),
            PublicJwk::P256 { .. } => unreachable!(),
        }
    );
    let p = forge_text(&dup_jwk, &good_claims().to_string(), &client);
    assert!(matches!(
        verify(&p, &request("GET", URI)),
        Err(DpopError::Proof(JwsError::Malformed(_)))
    ));
}

#[test]
fn required_claims_and_their_types() {
    let client = key(Alg::EdDsa);
    for (claims, expected) in [
        (
            without(good_claims(), "jti"),
            "jti is missing or not a string",
        ),
        (
            with(good_claims(), "jti", json!(1)),
            "jti is missing or not a string",
        ),
        (
            with(good_claims(), "jti", json!("")),
            "jti is not 1-64 visible ascii characters",
        ),
        (
            with(good_claims(), "jti", json!("a".repeat(65))),
            "jti is not 1-64 visible ascii characters",
        ),
        (
            with(good_claims(), "jti", json!("a b")),
            "jti is not 1-64 visible ascii characters",
        ),
        (
            with(good_claims(), "jti", json!("é")),
            "jti is not 1-64 visible ascii characters",
        ),
        (
            without(good_claims(), "htm"),
            "htm is missing or not a string",
        ),
        (
            with(good_claims(), "htm", json!(["GET"])),
            "htm is missing or not a string",
        ),
        (
            without(good_claims(), "htu"),
            "htu is missing or not a string",
        ),
        (
            without(good_claims(), "iat"),
            "iat is missing or not an integer",
        ),
        (
            with(good_claims(), "iat", json!(1.5)),
            "iat is missing or not an integer",
        ),
        (
            with(good_claims(), "iat", json!(NOW.to_string())),
            "iat is missing or not an integer",
        ),
        (
            with(good_claims(), "iat", json!(u64::MAX)),
            "iat is missing or not an integer",
        ),
        (with(good_claims(), "ath", json!(1)), "ath is not a string"),
        (
            with(good_claims(), "nonce", json!(1)),
            "nonce is not a string",
        ),
    ] {
        let p = forge(&good_header(&client), &claims, &client);
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::ProofClaim(expected),
            "{claims}"
        );
    }
    let p = forge(
        &good_header(&client),
        &with(good_claims(), "jti", json!("a".repeat(64))),
        &client,
    );
    verify(&p, &request("GET", URI)).unwrap();
    // Extra claims are allowed (RFC 9449 §4.2), and ignored.
    let p = forge(
        &good_header(&client),
        &with(good_claims(), "extra", json!({"a": 1})),
        &client,
    );
    verify(&p, &request("GET", URI)).unwrap();
}

#[test]
fn htm_must_match_exactly() {
    let client = key(Alg::EdDsa);
    let p = proof(&client, "GET", URI);
    for method in ["get", "Get", "POST", "GET ", "HEAD", ""] {
        assert_eq!(
            verify(&p, &request(method, URI)).unwrap_err(),
            DpopError::MethodMismatch,
            "{method:?}"
        );
    }
    for bad in ["", "GE T", "GET\r\n", "GÉT"] {
        assert_eq!(
            build_proof(&client, bad, URI, NOW, None, None, None).unwrap_err(),
            KeyError::InvalidClaims("method is not an http method token")
        );
    }
}

#[test]
fn htu_must_match_after_normalisation() {
    let client = key(Alg::EdDsa);
    let p = proof(&client, "GET", URI);
    // Equivalent spellings of the request URI, and query and fragment, are ignored.
    for uri in [
        "https://api.example.com/v1/things",
        "HTTPS://API.EXAMPLE.COM/v1/things",
        "https://api.example.com:443/v1/things",
        "https://api.example.com/v1/thing%73",
        "https://api.example.com/v1/things?page=2",
        "https://api.example.com/v1/things#top",
    ] {
        let cache = MemoryReplayCache::new(4);
        verify_with(&p, &request("GET", uri), None, &cache).unwrap();
    }
    for uri in [
        "http://api.example.com/v1/things",
        "https://api.example.com:8443/v1/things",
        "https://api.example.org/v1/things",
        "https://evil.example/v1/things",
        "https://api.example.com/v1/things/",
        "https://api.example.com/v1/Things",
        "https://api.example.com/v1/things/1",
        "https://api.example.com/v1",
        "https://api.example.com/v1%2Fthings",
    ] {
        assert_eq!(
            verify(&p, &request("GET", uri)).unwrap_err(),
            DpopError::UriMismatch,
            "{uri}"
        );
    }
    // A proof whose htu uses dot segments or user information is refused outright.
    for htu in [
        "https://api.example.com/v1/x/../things",
        "https://api.example.com/v1/./things",
        "https://api.example.com/v1/%2e%2e/v1/things",
        "https://user@api.example.com/v1/things",
        "/v1/things",
        "api.example.com/v1/things",
    ] {
        let p = forge(
            &good_header(&client),
            &with(good_claims(), "htu", json!(htu)),
            &client,
        );
        assert_eq!(
            verify(&p, &request("GET", URI)).unwrap_err(),
            DpopError::ProofClaim("htu is not an acceptable uri"),
            "{htu}"
        );
    }
    // So is a request URI of that kind.
    assert!(matches!(
        verify(
            &p,
            &request("GET", "https://api.example.com/v1/x/../things")
        ),
        Err(DpopError::RequestUri(_))
    ));
    assert!(
        build_proof(
            &client,
            "GET",
            "https://a.example/x/../y",
            NOW,
            None,
            None,
            None
        )
        .is_err()
    );
}

#[test]
fn iat_window() {
    let client = key(Alg::EdDsa);
    let at = |iat: i64| build_proof(&client, "GET", URI, iat, None, None, None).unwrap();
    for ok in [NOW, NOW - 60, NOW + 5, NOW - 1] {
        verify(&at(ok), &request("GET", URI)).unwrap();
    }
    for bad in [
        NOW - 61,
        NOW + 6,
        NOW - 3600,
        NOW + 3600,
        0,
        i64::MIN,
        i64::MAX,
    ] {
        assert_eq!(
            verify(&at(bad), &request("GET", URI)).unwrap_err(),
            DpopError::IatOutOfWindow,
            "{bad}"
        );
    }
    // The window is configurable.
    let policy = ProofPolicy {
        max_age_secs: 300,
        future_leeway_secs: 0,
    };
    let p = at(NOW - 300);
    verify_proof(&[&p], &request("GET", URI), &policy, None, NOW)
        .unwrap()
        .finish(true)
        .unwrap();
    let p = at(NOW + 1);
    assert_eq!(
        verify_proof(&[&p], &request("GET", URI), &policy, None, NOW).unwrap_err(),
        DpopError::IatOutOfWindow
    );
}

#[test]
fn ath_must_match_the_presented_token() {
    let issuer = issuer();
    let client = key(Alg::EdDsa);
    let (text, token) = bound_token(&issuer, &client);
    let req = ProofRequest {
        access_token: Some(&token),
        ..request("GET", URI)
    };
    // No ath.
    let p = proof(&client, "GET", URI);
    assert_eq!(
        verify(&p, &req).unwrap_err(),
        DpopError::ProofClaim("ath is missing")
    );
    // The ath of another token, of a modified token, or not even a hash.
    for other in [format!("{text}x"), "other".to_owned(), text.to_uppercase()] {
        let p = build_proof(&client, "GET", URI, NOW, None, Some(&other), None).unwrap();
        assert_eq!(verify(&p, &req).unwrap_err(), DpopError::AthMismatch);
    }
    for ath in ["", "AAAA", &access_token_hash(&text)[..42]] {
        let claims = with(good_claims(), "ath", json!(ath));
        let p = forge(&good_header(&client), &claims, &client);
        assert_eq!(verify(&p, &req).unwrap_err(), DpopError::AthMismatch);
    }
    // ath without a token.
    let p = build_proof(&client, "GET", URI, NOW, None, Some(&text), None).unwrap();
    assert_eq!(
        verify(&p, &request("GET", URI)).unwrap_err(),
        DpopError::ProofClaim("ath is present without an access token")
    );
    verify(&p, &req).unwrap();
}

#[test]
fn proof_key_must_be_the_bound_key() {
    let issuer = issuer();
    let client = key(Alg::EdDsa);
    let thief = key(Alg::EdDsa);
    let (text, token) = bound_token(&issuer, &client);
    let req = ProofRequest {
        access_token: Some(&token),
        ..request("GET", URI)
    };
    // A stolen token with a well-formed proof from the thief's own key.
    let p = build_proof(&thief, "GET", URI, NOW, None, Some(&text), None).unwrap();
    assert_eq!(verify(&p, &req).unwrap_err(), DpopError::KeyMismatch);
    // Same for a key of the other algorithm.
    let p = build_proof(&key(Alg::Es256), "GET", URI, NOW, None, Some(&text), None).unwrap();
    assert_eq!(verify(&p, &req).unwrap_err(), DpopError::KeyMismatch);
}

#[test]
fn nonce_when_required() {
    let client = key(Alg::EdDsa);
    let nonce_key = NonceKey::new([9; 32]);
    let cache = MemoryReplayCache::new(16);
    let req = request("GET", URI);

    let p = proof(&client, "GET", URI);
    let missing = verify_with(&p, &req, Some(&nonce_key), &cache).unwrap_err();
    assert_eq!(missing, DpopError::NonceMissing);
    assert_eq!(missing.error_code(), ErrorCode::UseDpopNonce);
    assert_eq!(missing.error_code().as_challenge(), Some("use_dpop_nonce"));
    // The refusal did not burn the proof's jti: without a nonce requirement it passes.
    verify_with(&p, &req, None, &cache).unwrap();

    let current = nonce_key.issue(NOW);
    let p = build_proof(&client, "GET", URI, NOW, None, None, Some(&current)).unwrap();
    verify_with(&p, &req, Some(&nonce_key), &cache).unwrap();

    let stale = nonce_key.issue(NOW - 3600);
    let p = build_proof(&client, "GET", URI, NOW, None, None, Some(&stale)).unwrap();
    let err = verify_with(&p, &req, Some(&nonce_key), &cache).unwrap_err();
    assert_eq!(err, DpopError::Nonce(NonceError::Stale));
    assert_eq!(err.error_code(), ErrorCode::UseDpopNonce);

    for forged in [
        NonceKey::new([1; 32]).issue(NOW),
        "abc".into(),
        String::new(),
    ] {
        let p = build_proof(&client, "GET", URI, NOW, None, None, Some(&forged)).unwrap();
        let err = verify_with(&p, &req, Some(&nonce_key), &cache).unwrap_err();
        assert_eq!(err, DpopError::Nonce(NonceError::Invalid));
        assert_eq!(err.error_code(), ErrorCode::UseDpopNonce);
    }
}

#[test]
fn sequential_replay_is_refused() {
    let client = key(Alg::EdDsa);
    let cache = MemoryReplayCache::new(16);
    let req = request("GET", URI);
    let p = proof(&client, "GET", URI);
    verify_with(&p, &req, None, &cache).unwrap();
    let err = verify_with(&p, &req, None, &cache).unwrap_err();
    assert_eq!(err, DpopError::Replayed);
    assert_eq!(err.error_code(), ErrorCode::InvalidDpopProof);
    // The same jti from another key is another proof.
    let other = key(Alg::EdDsa);
    let mine = build_proof(&client, "GET", URI, NOW, Some("shared"), None, None).unwrap();
    let theirs = build_proof(&other, "GET", URI, NOW, Some("shared"), None, None).unwrap();
    verify_with(&mine, &req, None, &cache).unwrap();
    verify_with(&theirs, &req, None, &cache).unwrap();
    // The same jti from the same key for another request is still a replay.
    let again = build_proof(&client, "POST", URI, NOW, Some("shared"), None, None).unwrap();
    assert_eq!(
        verify_with(&again, &request("POST", URI), None, &cache).unwrap_err(),
        DpopError::Replayed
    );
}

#[test]
fn failed_proofs_do_not_burn_the_jti() {
    let client = key(Alg::EdDsa);
    let cache = MemoryReplayCache::new(16);
    let p = proof(&client, "GET", URI);
    assert_eq!(
        verify_with(&p, &request("POST", URI), None, &cache).unwrap_err(),
        DpopError::MethodMismatch
    );
    assert!(cache.is_empty());
    verify_with(&p, &request("GET", URI), None, &cache).unwrap();
}

#[test]
fn replay_entry_lives_exactly_as_long_as_the_proof() {
    let client = key(Alg::EdDsa);
    let p = build_proof(&client, "GET", URI, NOW, Some("jti-7"), None, None).unwrap();
    let at = |now: i64| {
        verify_proof(
            &[&p],
            &request("GET", URI),
            &ProofPolicy::default(),
            None,
            now,
        )
    };
    let pending = at(NOW).unwrap();
    assert_eq!(pending.expires_at(), NOW + 61);
    assert_eq!(
        pending.replay_key(),
        &ReplayKey::derive(&client.public_jwk().thumbprint(), "jti-7")
    );
    // At NOW + 60 the proof still verifies, and the cache still remembers it.
    let cache = MemoryReplayCache::new(4);
    pending.check(&cache, NOW).unwrap();
    assert_eq!(
        at(NOW + 60).unwrap().check(&cache, NOW + 60).unwrap_err(),
        DpopError::Replayed
    );
    // At NOW + 61 the proof is too old, whatever the cache says.
    assert_eq!(at(NOW + 61).unwrap_err(), DpopError::IatOutOfWindow);
}

#[test]
fn concurrent_replay_admits_exactly_one() {
    const THREADS: usize = 8;
    let client = key(Alg::Es256);
    let p = Arc::new(proof(&client, "GET", URI));
    let cache = Arc::new(MemoryReplayCache::new(64));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (p, cache, barrier) = (Arc::clone(&p), Arc::clone(&cache), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                verify_with(&p, &request("GET", URI), None, cache.as_ref())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| *e == DpopError::Replayed)
    );
}

#[test]
fn full_replay_cache_fails_closed() {
    let client = key(Alg::EdDsa);
    let err = verify_with(
        &proof(&client, "GET", URI),
        &request("GET", URI),
        None,
        &MemoryReplayCache::new(0),
    )
    .unwrap_err();
    assert_eq!(err, DpopError::ReplayCache(crate::ReplayCacheError::Full));
    assert_eq!(err.fault(), Fault::Internal);
    assert_eq!(err.error_code(), ErrorCode::ServerError);
    assert_eq!(err.error_code().http_status(), 503);
    assert_eq!(err.error_code().as_challenge(), None);
}

#[test]
fn build_refuses_what_cannot_verify() {
    let client = key(Alg::EdDsa);
    for jti in ["", "a b", "é", &"a".repeat(65)] {
        assert_eq!(
            build_proof(&client, "GET", URI, NOW, Some(jti), None, None).unwrap_err(),
            KeyError::InvalidClaims("jti is not 1-64 visible ascii characters")
        );
    }
    for url in ["", "/relative", "ftp://a.example/", "https://a.example/a b"] {
        assert_eq!(
            build_proof(&client, "GET", url, NOW, None, None, None).unwrap_err(),
            KeyError::InvalidClaims("url is not acceptable as htu")
        );
    }
}

#[test]
fn error_reasons_are_lowercase_and_audit_safe() {
    let errors = [
        DpopError::MissingProof,
        DpopError::MultipleProofs,
        DpopError::Proof(JwsError::BadSignature),
        DpopError::ProofType,
        DpopError::ProofClaim("jti is missing or not a string"),
        DpopError::MethodMismatch,
        DpopError::UriMismatch,
        DpopError::RequestUri(crate::HtuError("dot segment in path")),
        DpopError::IatOutOfWindow,
        DpopError::AthMismatch,
        DpopError::KeyMismatch,
        DpopError::Replayed,
        DpopError::NonceMissing,
        DpopError::Nonce(NonceError::Stale),
        DpopError::ReplayCache(crate::ReplayCacheError::Unavailable),
        DpopError::AccessToken(crate::AccessTokenError::Expired),
    ];
    for e in errors {
        let text = e.to_string();
        assert_eq!(text, text.to_lowercase(), "{e:?}");
        assert!(!text.is_empty());
        let expected = match e {
            DpopError::AccessToken(_) => ErrorCode::InvalidToken,
            DpopError::NonceMissing | DpopError::Nonce(_) => ErrorCode::UseDpopNonce,
            DpopError::ReplayCache(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidDpopProof,
        };
        assert_eq!(e.error_code(), expected, "{e:?}");
        if expected != ErrorCode::ServerError {
            assert_eq!(e.fault(), Fault::Peer);
            assert_eq!(e.error_code().http_status(), 401);
        }
    }
}

fn method_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z!#$%&'*+.^_`|~-]{1,12}",
    ]
}

fn url_strategy() -> impl Strategy<Value = String> {
    let host = "[a-z0-9]{1,10}(\\.[a-z0-9-]{1,10}){0,3}";
    let port = prop::option::of(1u16..);
    let segments = prop::collection::vec("([a-zA-Z0-9_~!$&'()*+,;=:@-]|%[0-9A-F]{2}){1,8}", 0..4);
    let query = prop::option::of("[a-z0-9=&]{0,12}");
    (any::<bool>(), host, port, segments, query).prop_map(|(tls, host, port, segments, query)| {
        let mut url = format!("{}://{host}", if tls { "https" } else { "http" });
        if let Some(port) = port {
            url.push_str(&format!(":{port}"));
        }
        for s in segments {
            url.push('/');
            url.push_str(&s);
        }
        if let Some(q) = query {
            url.push('?');
            url.push_str(&q);
        }
        url
    })
}

/// Keys are slow-ish to make; the property tests share a few.
fn shared_keys() -> &'static [SigningKey; 2] {
    static KEYS: std::sync::OnceLock<[SigningKey; 2]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| [key(Alg::EdDsa), key(Alg::Es256)])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_build_verify_roundtrip(
        es in any::<bool>(),
        method in method_strategy(),
        url in url_strategy(),
        age in 0i64..=60,
        jti in prop::option::of("[!-~]{1,64}"),
        token in prop::option::of("[A-Za-z0-9._~+/-]{1,80}"),
    ) {
        let client = &shared_keys()[usize::from(es)];
        prop_assume!(normalize_htu(&url).is_ok());
        let p = build_proof(client, &method, &url, NOW - age, jti.as_deref(), token.as_deref(), None).unwrap();
        // Stand-in for a verified token: only its hash and binding matter to the proof.
        let verified_token = token.as_ref().map(|t| VerifiedAccessToken::for_tests(t, client.public_jwk().thumbprint()));
        let req = ProofRequest { method: &method, uri: &url, access_token: verified_token.as_ref() };
        let verified = verify(&p, &req).unwrap();
        prop_assert_eq!(verified.htm(), method.as_str());
        prop_assert_eq!(verified.iat(), NOW - age);
        prop_assert_eq!(verified.htu(), normalize_htu(&url).unwrap());
        if let Some(jti) = jti {
            prop_assert_eq!(verified.jti(), jti.as_str());
        }
    }

    #[test]
    fn prop_any_single_byte_change_is_rejected(
        es in any::<bool>(),
        index in any::<prop::sample::Index>(),
        replacement in 0x21u8..0x7f,
    ) {
        let client = &shared_keys()[usize::from(es)];
        let p = build_proof(client, "GET", URI, NOW, Some("fixed"), None, None).unwrap();
        let i = index.index(p.len());
        prop_assume!(p.as_bytes()[i] != replacement);
        let mut bytes = p.into_bytes();
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(verify(&mutated, &request("GET", URI)).is_err());
    }
}

/// ECDSA signatures are malleable: `(r, n - s)` verifies too, so one ES256 proof has two valid
/// spellings. The replay key is made from the key and `jti`, not from the proof's bytes, so the
/// second spelling is still a replay.
#[test]
fn malleated_es256_proof_is_still_a_replay() {
    const P256_N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let client = key(Alg::Es256);
    let p = proof(&client, "GET", URI);
    let (input, sig) = p.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    // s := n - s, big-endian with borrow.
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(P256_N[i]) - i16::from(sig[32 + i]) - borrow;
        sig[32 + i] = (diff & 0xff) as u8;
        borrow = i16::from(diff < 0);
    }
    let twin = format!("{input}.{}", b64::encode(&sig));
    assert_ne!(twin, p);
    let cache = MemoryReplayCache::new(4);
    let req = request("GET", URI);
    // The twin is a valid proof on its own...
    verify_with(&twin, &req, None, &MemoryReplayCache::new(4)).unwrap();
    // ...but after the original, it is a replay.
    verify_with(&p, &req, None, &cache).unwrap();
    assert_eq!(
        verify_with(&twin, &req, None, &cache).unwrap_err(),
        DpopError::Replayed
    );
}
